//! Port of the 2012 scripts avg-test.py (a weighted sum of several models'
//! `--test-out` predictions: `convnet avg-test`) and txt-preds.py (each case's five
//! most probable classes as text: `convnet txt-preds`).

use crate::checkpoint::value::{Dtype, NdArray, Obj, PyObj};
use crate::checkpoint::{model, pickle, read_container, writer};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// A `test_preds_<n>` file's `data`: `(cases, classes)` float32, row-major.
struct Preds {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

/// `unpickle(path)['data']`, which must be a two-dimensional float32 array.
fn read(path: &Path) -> Result<Preds, String> {
    let err = |m: String| format!("{}: {m}", path.display());
    let obj = pickle::loads(&read_container(path).map_err(err)?).map_err(|e| err(e.to_string()))?;
    let data = obj
        .get("data")
        .ok_or_else(|| err("no 'data' entry".into()))?;
    let PyObj::Array(a) = &*data else {
        return Err(err("'data' is not a numpy array".into()));
    };
    let a = a.borrow();
    let (kind, size) = (a.dtype.kind, a.dtype.size);
    match (kind, size, a.shape.as_slice()) {
        ('f', 4, &[rows, cols]) => Ok(Preds {
            rows: rows as usize,
            cols: cols as usize,
            data: a
                .c_order_le_bytes()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
        }),
        _ => Err(err(format!(
            "'data' is a {kind}{size} array of shape {:?}, not a float32 matrix",
            a.shape
        ))),
    }
}

/// `sorted(os.listdir(dir))`: file names in byte order.
fn sorted_names(dir: &Path) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// avg-test.py `do_avg(dirs, out, coeffs)`: for each file of the first directory (by
/// name; each must start `test_preds_<n>`), `{'data': 0 + c1*d1 + c2*d2 + ...}` over
/// the same file of every directory, written to `<out>/test_preds_<n>` (numpy's float32
/// arithmetic: each coefficient rounded to float32, products and sums in float32, in
/// directory order), printing `Wrote batch <n>`.
pub fn avg_test(
    dirs: &[PathBuf],
    out: &Path,
    coeffs: &[f64],
    log: &mut dyn Write,
) -> Result<(), String> {
    let first = dirs.first().ok_or("no prediction directories")?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for name in sorted_names(first)? {
        let digits: String = (name.strip_prefix("test_preds_").unwrap_or(""))
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let batch: u64 = digits
            .parse()
            .map_err(|_| format!("{}: not a test_preds_<n> file", first.join(&name).display()))?;
        let mut sum: Option<Preds> = None;
        // `zip` stops at the shorter of the directories and the coefficients.
        for (dir, &c) in dirs.iter().zip(coeffs) {
            let p = read(&dir.join(&name))?;
            let c = c as f32;
            match &mut sum {
                None => {
                    sum = Some(Preds {
                        data: p.data.iter().map(|&d| 0.0 + c * d).collect(),
                        ..p
                    })
                }
                Some(s) => {
                    if (s.rows, s.cols) != (p.rows, p.cols) {
                        return Err(format!(
                            "{}: {}x{} predictions where {} has {}x{}",
                            dir.join(&name).display(),
                            p.rows,
                            p.cols,
                            first.join(&name).display(),
                            s.rows,
                            s.cols
                        ));
                    }
                    for (x, &d) in s.data.iter_mut().zip(&p.data) {
                        *x += c * d;
                    }
                }
            }
        }
        let sum = sum.ok_or("no coefficients")?;
        write(&out.join(format!("test_preds_{batch}")), &sum)?;
        writeln!(log, "Wrote batch {batch}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `pickle(path, {'data': preds})`.
fn write(path: &Path, p: &Preds) -> Result<(), String> {
    let array = NdArray {
        dtype: Dtype {
            kind: 'f',
            size: 4,
            big_endian: false,
        },
        shape: vec![p.rows as u64, p.cols as u64],
        fortran: false,
        data: p.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
    };
    let obj: Obj = Rc::new(PyObj::Dict(RefCell::new(vec![(
        model::pystr("data"),
        Rc::new(PyObj::Array(RefCell::new(array))),
    )])));
    writer::save_atomic(path, &writer::dumps(&obj), false)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// txt-preds.py: for every file of `dir` (by name), one line per case: the 1-based
/// indices of its five largest predictions, largest first (of equal values, the higher
/// index first, as Python's stable sort reversed gives them). The predictions must have
/// 1000 classes, as the script asserts (it wrote ILSVRC submissions).
pub fn txt_preds(dir: &Path, out: &mut dyn Write) -> Result<(), String> {
    for name in sorted_names(dir)? {
        let path = dir.join(&name);
        let p = read(&path)?;
        if p.cols != 1000 {
            return Err(format!(
                "{}: {} classes; txt-preds writes the 1000-class ILSVRC format",
                path.display(),
                p.cols
            ));
        }
        for row in p.data.chunks_exact(p.cols) {
            let mut order: Vec<usize> = (0..p.cols).collect();
            // Stable, ascending by value: ties keep the lower index first.
            order.sort_by(|&a, &b| row[a].partial_cmp(&row[b]).unwrap_or(Ordering::Equal));
            let top: Vec<String> = order
                .iter()
                .rev()
                .take(5)
                .map(|&k| (k + 1).to_string())
                .collect();
            writeln!(out, "{}", top.join(" ")).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
