//! Port of the 2012 `verify-test-preds.py` (`convnet verify-test-preds PREDS DATA_PATH`):
//! one test image and the five classes predicted for it, to check a submission by eye.
//!
//! The script picks a random test batch (`data_batch_3000` .. `data_batch_3097` of
//! `DATA_PATH`, JPEG batches of 1024 images) and a random image in it, prints `Batch:
//! <b>, img idx: <i>`, then that image's line of `PREDS` (the output of `txt-preds`: five
//! 1-based classes per line, one line per test image in batch order) as a numpy array of
//! 0-based classes, and `Label <k>: <name>` for each (`batches.meta`'s `label_names`,
//! indexed as Python indexes: -1 is the last name), and shows the image.
//!
//! Ours draws the batch and the image from `--seed` (the script's numpy generator was
//! unseeded), or takes them from `--batch` and `--index`, and writes the image to
//! `--out` as a PNG where the script opened a window. Where the script stops with a
//! traceback (a missing file, a line that is not integers, an image or a class index
//! out of range, an image that does not decode) we stop with an error.

use crate::checkpoint::{self, value::PyObj};
use crate::data::batches::label_names;
use crate::data::jpeg::{decode_planes, items};
use crate::shownet::canvas::Canvas;
use crate::synthetic::SplitMix64;
use std::io::Write;
use std::path::PathBuf;

/// The first test batch and how many there are.
const FIRST_BATCH: usize = 3000;
const BATCHES: usize = 98;
/// Images per test batch, for the line of the predictions file.
const BATCH_SIZE: usize = 1024;

/// What to show.
pub struct Verify {
    pub preds: PathBuf,
    pub data_path: PathBuf,
    /// The batch number (3000 ..= 3097); random when `None`.
    pub batch: Option<usize>,
    /// The image's index in its batch; random when `None`.
    pub index: Option<usize>,
    pub seed: u64,
    /// Where to write the image (PNG).
    pub out: Option<PathBuf>,
}

/// numpy's `print` of a one-dimensional int array: the values right-aligned to the
/// widest, space-separated, in brackets.
fn numpy_ints(v: &[i64]) -> String {
    let s: Vec<String> = v.iter().map(i64::to_string).collect();
    let w = s.iter().map(String::len).max().unwrap_or(0);
    let cells: Vec<String> = s.iter().map(|x| format!("{x:>w$}")).collect();
    format!("[{}]", cells.join(" "))
}

/// Runs the script: its lines to `out`, the image to `v.out`.
pub fn verify_test_preds(v: &Verify, out: &mut dyn Write) -> Result<(), String> {
    let mut rng = SplitMix64::new(v.seed);
    let batch = v.batch.unwrap_or_else(|| FIRST_BATCH + rng.below(BATCHES));
    if !(FIRST_BATCH..FIRST_BATCH + BATCHES).contains(&batch) {
        return Err(format!(
            "--batch {batch}: the test batches are {FIRST_BATCH} to {}",
            FIRST_BATCH + BATCHES - 1
        ));
    }
    let path = v.data_path.join(format!("data_batch_{batch}"));
    let obj = checkpoint::load(&path).map_err(|e| e.to_string())?;
    let strings = (items(&obj).and_then(|p| p.first().and_then(|s| items(s))))
        .ok_or_else(|| format!("{}: not a (jpeg_strings, ...) tuple", path.display()))?;
    let text =
        std::fs::read_to_string(&v.preds).map_err(|e| format!("{}: {e}", v.preds.display()))?;
    let preds: Vec<Vec<i64>> = (text.lines().enumerate())
        .map(|(n, l)| {
            (l.split(' '))
                .map(|x| x.trim().parse::<i64>().map(|c| c - 1))
                .collect::<Result<_, _>>()
                .map_err(|_| format!("{}: line {}: not integers", v.preds.display(), n + 1))
        })
        .collect::<Result<_, _>>()?;
    if strings.is_empty() {
        return Err(format!("{}: no images", path.display()));
    }
    let index = v.index.unwrap_or_else(|| rng.below(strings.len()));
    let meta_path = v.data_path.join("batches.meta");
    let meta = checkpoint::load(&meta_path).map_err(|e| e.to_string())?;
    let names = label_names(&meta)
        .ok_or_else(|| format!("{}: no label_names list", meta_path.display()))?;
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").map_err(|e| e.to_string());
    w(out, format!("Batch: {batch}, img idx: {index}"))?;
    let jpeg = match strings.get(index).map(|s| &**s) {
        Some(PyObj::Bytes(b)) => b.clone(),
        Some(_) => return Err(format!("{}: image {index} is not a str", path.display())),
        None => return Err(format!("{}: no image {index}", path.display())),
    };
    let (h, wd, planes) =
        decode_planes(&jpeg).map_err(|e| format!("{}: image {index}: {e}", path.display()))?;
    let line = (batch - FIRST_BATCH) * BATCH_SIZE + index;
    let top = preds.get(line).ok_or_else(|| {
        format!(
            "{}: no line {} (batch {batch}, image {index})",
            v.preds.display(),
            line + 1
        )
    })?;
    w(out, numpy_ints(top))?;
    for (k, &c) in top.iter().enumerate() {
        // Python indexing: negative counts from the end.
        let at = if c < 0 { c + names.len() as i64 } else { c };
        let name = usize::try_from(at).ok().and_then(|i| names.get(i));
        let name = name.ok_or_else(|| format!("class {c} of {} names", names.len()))?;
        w(out, format!("Label {k}: {name}"))?;
    }
    if let Some(png) = &v.out {
        let mut canvas = Canvas::new(wd, h, [0, 0, 0]);
        canvas.planes(0, 0, &planes, h, wd);
        std::fs::write(png, canvas.to_png()).map_err(|e| format!("{}: {e}", png.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::numpy_ints;

    #[test]
    fn numpy_prints_int_arrays_right_aligned() {
        assert_eq!(numpy_ints(&[2, 9, 998, 0, -1]), "[  2   9 998   0  -1]");
        assert_eq!(numpy_ints(&[0, 1]), "[0 1]");
        assert_eq!(numpy_ints(&[-1, 5]), "[-1  5]");
    }
}
