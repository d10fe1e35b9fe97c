//! Port of util.py's `pickle`/`unpickle` and gpumodel.py's `load_checkpoint` and the
//! file half of `save_state`: cuda-convnet checkpoints are pickles, plain, zipped with
//! member `data`, or gzipped; a checkpoint directory holds `<epoch>.<batchnum>` files and
//! means its newest one by `alphanum_key`.

pub mod model;
pub mod pickle;
pub mod value;
pub mod writer;

use std::cmp::Ordering;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use value::Obj;

/// Decompressed checkpoints larger than this are refused (AlexNet's is about 0.5 GB).
const MAX_DECOMPRESSED: u64 = 8 << 30;

#[derive(Debug)]
pub struct CheckpointError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for CheckpointError {}

/// `load_checkpoint`: a directory's newest file, else the file itself.
pub fn load(path: &Path) -> Result<Obj, CheckpointError> {
    let err = |p: &Path, m: String| CheckpointError {
        path: p.to_path_buf(),
        message: m,
    };
    let file = if path.is_dir() {
        let mut names = checkpoint_files(path).map_err(|e| err(path, e.to_string()))?;
        let newest = names
            .pop()
            .ok_or_else(|| err(path, "the checkpoint directory is empty".into()))?;
        path.join(newest)
    } else {
        path.to_path_buf()
    };
    let bytes = read_container(&file).map_err(|m| err(&file, m))?;
    pickle::loads(&bytes).map_err(|e| err(&file, e.to_string()))
}

/// The checkpoint files of a directory in `alphanum_key` order. Dot files (our
/// temporary files, if a save was killed) are not checkpoints.
fn checkpoint_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort_by(|a, b| alphanum_cmp(a, b));
    Ok(names)
}

/// `save_state`'s file work: write `<dir>/<epoch>.<batchnum>` atomically, then prune as
/// the original does: walk the files oldest first and delete while the directory holds
/// more than `max_filesize_mb` MiB, stopping at the file just written (never deleted)
/// or at the first file the limit lets stay.
pub fn save(
    dir: &Path,
    epoch: u64,
    batchnum: u64,
    pickle: &[u8],
    zip: bool,
    max_filesize_mb: u64,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = format!("{epoch}.{batchnum}");
    let path = dir.join(&name);
    writer::save_atomic(&path, pickle, zip)?;
    let total = || -> std::io::Result<u64> {
        Ok(checkpoint_files(dir)?
            .iter()
            .filter_map(|n| std::fs::metadata(dir.join(n)).ok())
            .map(|m| m.len())
            .sum())
    };
    for f in checkpoint_files(dir)? {
        if total()? > max_filesize_mb * 1024 * 1024 && f != name {
            std::fs::remove_file(dir.join(&f))?;
        } else {
            break;
        }
    }
    Ok(path)
}

/// The pickle bytes of a checkpoint file: zip member `data`, gunzipped, or as is.
pub fn read_container(file: &Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    let mut out = Vec::new();
    if raw.starts_with(b"PK\x03\x04") {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&raw))
            .map_err(|e| format!("broken zip: {e}"))?;
        let member = zip
            .by_name("data")
            .map_err(|e| format!("zip without member 'data': {e}"))?;
        member
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("broken zip member 'data': {e}"))?;
    } else if raw.starts_with(b"\x1f\x8b") {
        flate2::read::GzDecoder::new(&raw[..])
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("broken gzip: {e}"))?;
    } else {
        return Ok(raw);
    }
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(format!(
            "decompresses to more than {MAX_DECOMPRESSED} bytes"
        ));
    }
    Ok(out)
}

/// util.py's `alphanum_key` order: digit runs compare as numbers.
pub fn alphanum_cmp(a: &str, b: &str) -> Ordering {
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let b = s.as_bytes();
        for i in 1..=b.len() {
            if i == b.len() || b[i].is_ascii_digit() != b[start].is_ascii_digit() {
                out.push((b[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(&rb) {
        let o = match (x, y) {
            ((true, p), (true, q)) => {
                let (p, q) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                p.len().cmp(&q.len()).then(p.cmp(q))
            }
            // Python 2 orders ints before strings.
            ((true, _), (false, _)) => Ordering::Less,
            ((false, _), (true, _)) => Ordering::Greater,
            ((false, p), (false, q)) => p.cmp(q),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ra.len().cmp(&rb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_of_checkpoint_names() {
        let mut v = vec!["1.10", "1.2", "2.1", "1.3", "10.1"];
        v.sort_by(|a, b| alphanum_cmp(a, b));
        assert_eq!(v, ["1.2", "1.3", "1.10", "2.1", "10.1"]);
    }
}
