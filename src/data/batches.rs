//! Port of data.py (cuda-convnet 1): batch files (`data_batch_<N>`, `batches.meta`),
//! batch ranges, and the cursor `DataProvider` keeps over them (epoch, batch number,
//! wrap-around), with `LabeledMemoryDataProvider`'s loading of a whole range.
//!
//! Sub-batches (`data_batch_<N>.1`, `.2`, ...) are only joined by the base
//! `DataProvider.get_batch`, which no provider of ours calls; they are not read.

use crate::checkpoint::{self, value::PyObj};
use std::path::{Path, PathBuf};

/// `BATCH_META_FILE`.
pub const BATCH_META_FILE: &str = "batches.meta";

/// The numbers `N` of the `data_batch_<N>[.<k>]` files in `dir`, ascending
/// (`DataProvider.get_batch_nums`).
pub fn batch_nums(dir: &Path) -> Result<Vec<usize>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut nums: Vec<usize> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let rest = name.strip_prefix("data_batch_")?;
            let (num, sub) = rest
                .split_once('.')
                .map_or((rest, None), |(a, b)| (a, Some(b)));
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            (digits(num) && sub.is_none_or(digits)).then(|| num.parse().ok())?
        })
        .collect();
    nums.sort_unstable();
    nums.dedup();
    Ok(nums)
}

/// A numeric numpy array as f64 values in C order, with its shape.
pub fn array_f64(o: &PyObj, what: &str) -> Result<(Vec<usize>, Vec<f64>), String> {
    let PyObj::Array(a) = o else {
        return Err(format!("{what} is not a numpy array"));
    };
    let a = a.borrow();
    let bytes = a.c_order_le_bytes();
    let (k, size) = (a.dtype.kind, a.dtype.size);
    let chunk = |c: &[u8]| -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        b
    };
    let vals: Vec<f64> = match (k, size) {
        ('u', 1) | ('b', 1) => bytes.iter().map(|&b| b as f64).collect(),
        ('f', 4) => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        ('f', 8) => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        ('i', 1 | 2 | 4 | 8) => bytes
            .chunks_exact(size)
            .map(|c| {
                let shift = 64 - 8 * size as u32;
                ((i64::from_le_bytes(chunk(c)) << shift) >> shift) as f64
            })
            .collect(),
        ('u', 2 | 4 | 8) => bytes
            .chunks_exact(size)
            .map(|c| u64::from_le_bytes(chunk(c)) as f64)
            .collect(),
        _ => return Err(format!("{what}: unsupported dtype {}", a.dtype.code())),
    };
    Ok((a.shape.iter().map(|&d| d as usize).collect(), vals))
}

/// A list of numbers (or a numeric array) as f64 values.
fn numbers(o: &PyObj, what: &str) -> Result<Vec<f64>, String> {
    match o {
        PyObj::List(l) => l
            .borrow()
            .iter()
            .map(|v| match &**v {
                PyObj::Int(i) => Ok(*i as f64),
                PyObj::Float(f) => Ok(*f),
                PyObj::Bool(b) => Ok(*b as u8 as f64),
                other => Err(format!("{what}: not a number: {other:?}")),
            })
            .collect(),
        PyObj::Array(_) => Ok(array_f64(o, what)?.1),
        _ => Err(format!("{what} is neither a list nor an array")),
    }
}

/// `batches.meta`: what the providers use of it.
#[derive(Clone, Debug)]
pub struct BatchMeta {
    /// `num_vis`: values per case.
    pub num_vis: usize,
    /// `label_names`.
    pub label_names: Vec<String>,
    /// `data_mean`, one value per visible dimension.
    pub data_mean: Vec<f64>,
    /// `num_colors` and `img_size` where the file gives them (ours do; CIFAR's do
    /// not, and its providers assume 3 colours of 32x32).
    pub num_colors: Option<usize>,
    pub img_size: Option<usize>,
    /// `dp_type`: the provider to use when none is named.
    pub dp_type: Option<String>,
}

/// A `batches.meta` dict's `label_names` list (entries that are not strings as ""), if
/// it has one.
pub(crate) fn label_names(meta: &PyObj) -> Option<Vec<String>> {
    match meta.get("label_names").as_deref() {
        Some(PyObj::List(l)) => Some(
            l.borrow()
                .iter()
                .map(|n| n.as_text().unwrap_or_default())
                .collect(),
        ),
        _ => None,
    }
}

/// `DataProvider.get_batch_meta(dir)`.
pub fn batch_meta(dir: &Path) -> Result<BatchMeta, String> {
    let path = dir.join(BATCH_META_FILE);
    let meta = checkpoint::load(&path).map_err(|e| e.to_string())?;
    let err = |m: &str| format!("{}: {m}", path.display());
    let int = |k: &str| match meta.get(k).as_deref() {
        Some(PyObj::Int(i)) if *i > 0 => Ok(Some(*i as usize)),
        None => Ok(None),
        _ => Err(err(&format!("{k} is not a positive int"))),
    };
    let num_vis = int("num_vis")?.ok_or_else(|| err("no num_vis"))?;
    let label_names = label_names(&meta).unwrap_or_default();
    let data_mean = match meta.get("data_mean") {
        Some(m) => array_f64(&m, "data_mean").map_err(|e| err(&e))?.1,
        None => Vec::new(),
    };
    if !data_mean.is_empty() && data_mean.len() != num_vis {
        return Err(err(&format!(
            "data_mean has {} values, num_vis is {num_vis}",
            data_mean.len()
        )));
    }
    Ok(BatchMeta {
        num_vis,
        label_names,
        data_mean,
        num_colors: int("num_colors")?,
        img_size: int("img_size")?,
        dp_type: meta.get("dp_type").and_then(|t| t.as_text()),
    })
}

/// One batch file: `data` `(num_vis, cases)` row-major and `labels`.
#[derive(Clone, Debug)]
pub struct RawBatch {
    /// Values per case (rows of `data`).
    pub num_vis: usize,
    /// Cases (columns of `data`).
    pub cases: usize,
    /// The data as stored (uint8 pixels for image batches), row-major.
    pub data: Vec<f64>,
    /// One label per case.
    pub labels: Vec<f64>,
}

/// The file name of batch `n` in `dir` (`get_data_file_name`).
pub fn batch_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("data_batch_{n}"))
}

/// Reads batch `n` of `dir`.
pub fn load_batch(dir: &Path, n: usize) -> Result<RawBatch, String> {
    let path = batch_path(dir, n);
    let d = checkpoint::load(&path).map_err(|e| e.to_string())?;
    let err = |m: String| format!("{}: {m}", path.display());
    let (shape, data) = array_f64(
        &*d.get("data").ok_or_else(|| err("no data".into()))?,
        "data",
    )
    .map_err(err)?;
    let labels = numbers(
        &*d.get("labels").ok_or_else(|| err("no labels".into()))?,
        "labels",
    )
    .map_err(err)?;
    if shape.len() != 2 || shape[1] != labels.len() {
        return Err(err(format!(
            "data of shape {shape:?} for {} labels (want (num_vis, cases))",
            labels.len()
        )));
    }
    Ok(RawBatch {
        num_vis: shape[0],
        cases: shape[1],
        data,
        labels,
    })
}

/// `DataProvider`'s position: the batch range, the index in it, the epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct Cursor {
    /// `batch_range`.
    pub range: Vec<usize>,
    /// `batch_idx`.
    pub idx: usize,
    /// `curr_epoch`.
    pub epoch: usize,
}

impl Cursor {
    /// `init_batchnum` outside the range (or absent) means the first batch.
    pub fn new(range: Vec<usize>, epoch: usize, batchnum: Option<usize>) -> Cursor {
        let idx = batchnum
            .and_then(|b| range.iter().position(|&r| r == b))
            .unwrap_or(0);
        Cursor { range, idx, epoch }
    }
    /// `curr_batchnum`.
    pub fn batchnum(&self) -> usize {
        self.range[self.idx]
    }
    /// `get_next_batch`'s bookkeeping: returns `(epoch, batchnum)` of the batch handed
    /// out and advances, starting a new epoch when the index wraps.
    pub fn advance(&mut self) -> (usize, usize) {
        let here = (self.epoch, self.batchnum());
        self.idx = (self.idx + 1) % self.range.len();
        if self.idx == 0 {
            self.epoch += 1;
        }
        here
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_wraps_into_the_next_epoch() {
        let mut c = Cursor::new(vec![1, 2, 3], 1, Some(3));
        assert_eq!(c.advance(), (1, 3));
        assert_eq!(c.advance(), (2, 1));
        assert_eq!(Cursor::new(vec![4, 5], 1, Some(9)).batchnum(), 4);
    }
}
