//! Port of the 2012 `fix-big-imgnet.py` and `fix-flickr.py`: re-pack JPEG batch files,
//! dropping the images that do not decode (`convnet fix-batches imgnet|flickr`).
//!
//! Both read source batches `0 .. n-1` of `(jpeg_strings, orig_sizes, labels)` tuples,
//! keep each image that decodes (PIL's `Image.open(...).convert('RGB')` there, the
//! decoder of [`super::jpeg`] here), print `Batch <b> failed: <count>` after each source
//! batch, and write `data_batch_<n>` files of a fixed number of images, the last one
//! shorter, pickled as `util.pickle` does (protocol 2, not zipped). They differ in what
//! they keep and how they number:
//! - `imgnet` (fix-big-imgnet.py): 49 source batches, 1024 images per batch, numbered
//!   from 2000; writes `(jpeg_strings, labels, wnids)` with `labels[k] = l[1]` and
//!   `wnids[k] = l[0]` of each source label `l`;
//! - `flickr` (fix-flickr.py): 977 source batches, 2048 per batch, numbered from 1;
//!   writes `(jpeg_strings, orig_sizes, labels)` as read.
//!
//! The scripts' fixed paths are the defaults of `--src` and `--dst`; `--batches` and
//! `--batch-size` are ours (the scripts' constants by default). Where the script would
//! stop with a traceback (a missing or unreadable source batch, an entry that is not a
//! string, a label without two items) we stop with an error naming the file.

use super::import::{list, tuple, write_pickle};
use super::jpeg::{decode_planes, items};
use crate::checkpoint::{self, value::Obj, value::PyObj};
use std::io::Write;
use std::path::PathBuf;

/// Which script: what it keeps and its constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Script {
    /// fix-big-imgnet.py.
    Imgnet,
    /// fix-flickr.py.
    Flickr,
}

/// One run's settings.
#[derive(Clone, Debug)]
pub struct FixBatches {
    pub script: Script,
    pub src: PathBuf,
    pub dst: PathBuf,
    /// Source batches `0 .. batches - 1`.
    pub batches: usize,
    /// Images per written batch.
    pub batch_size: usize,
}

impl Script {
    /// The script's own settings: its paths and constants.
    pub fn defaults(self) -> FixBatches {
        let (src, dst, batches, batch_size) = match self {
            Script::Imgnet => (
                "/ais/gobi3/u/ilya/jpg_valid_2010_85/",
                "/ais/gobi3/u/kriz/lsvrc-2010-jpg/",
                49,
                1024,
            ),
            Script::Flickr => (
                "/ais/gobi3/u/ilya/flickr_85/",
                "/ais/gobi3/u/kriz/flickr-85-1024/",
                977,
                2048,
            ),
        };
        FixBatches {
            script: self,
            src: src.into(),
            dst: dst.into(),
            batches,
            batch_size,
        }
    }
    /// The number of the first written batch.
    fn first(self) -> usize {
        match self {
            Script::Imgnet => 2000,
            Script::Flickr => 1,
        }
    }
}

/// The images kept so far, in the three lists the script writes.
#[derive(Default)]
struct Kept {
    strings: Vec<Obj>,
    second: Vec<Obj>,
    third: Vec<Obj>,
}

/// Runs the script: prints its lines to `out`, writes the batches to `r.dst`.
pub fn fix_batches(r: &FixBatches, out: &mut dyn Write) -> Result<(), String> {
    if r.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    let mut kept = Kept::default();
    let mut next = r.script.first();
    let mut save = |kept: &mut Kept| -> Result<(), String> {
        let k = std::mem::take(kept);
        let obj = tuple(vec![list(k.strings), list(k.second), list(k.third)]);
        write_pickle(&r.dst, &format!("data_batch_{next}"), &obj, false)?;
        next += 1;
        Ok(())
    };
    for b in 0..r.batches {
        let path = r.src.join(b.to_string());
        let err = |m: &str| format!("{}: {m}", path.display());
        let obj = checkpoint::load(&path).map_err(|e| e.to_string())?;
        let parts = items(&obj)
            .filter(|p| p.len() == 3)
            .ok_or_else(|| err("not a (jpeg_strings, orig_sizes, labels) tuple"))?;
        let lists: Vec<Vec<Obj>> = (parts.iter().map(|p| items(p)))
            .collect::<Option<_>>()
            .ok_or_else(|| err("jpeg_strings, orig_sizes and labels must be lists"))?;
        let mut failed = 0;
        // Python's zip: as many entries as the shortest list.
        for ((s, z), l) in lists[0].iter().zip(&lists[1]).zip(&lists[2]) {
            let PyObj::Bytes(jpeg) = &**s else {
                return Err(err("a jpeg string is not a str"));
            };
            if decode_planes(jpeg).is_err() {
                failed += 1;
                continue;
            }
            let (second, third) = match r.script {
                Script::Flickr => (z.clone(), l.clone()),
                Script::Imgnet => match items(l).as_deref() {
                    Some([wnid, label, ..]) => (label.clone(), wnid.clone()),
                    _ => return Err(err("a label is not a (wnid, label) pair")),
                },
            };
            kept.strings.push(s.clone());
            kept.second.push(second);
            kept.third.push(third);
            if kept.strings.len() == r.batch_size {
                save(&mut kept)?;
            }
        }
        writeln!(out, "Batch {b} failed: {failed}").map_err(|e| e.to_string())?;
    }
    if !kept.strings.is_empty() {
        save(&mut kept)?;
    }
    Ok(())
}
