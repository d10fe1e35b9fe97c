//! Port of the 2012 scripts avg-test.py (a weighted sum of several models'
//! `--test-out` predictions: `convnet avg-test`), avg-valid.py (the top-1 and top-5
//! validation errors of such a sum, or a search for its coefficients: `convnet
//! avg-valid`) and txt-preds.py (each case's five most probable classes as text:
//! `convnet txt-preds`).

use crate::checkpoint::value::{Dtype, NdArray, Obj, PyObj};
use crate::checkpoint::{model, pickle, read_container, writer};
use crate::driver::format::fixed;
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

/// The batch number of a file named `test_preds_<n>...` of directory `dir` (the
/// scripts' `re.match('test_preds_(\\d+)', name)`).
fn batch_number(dir: &Path, name: &str) -> Result<u64, String> {
    let digits: String = (name.strip_prefix("test_preds_").unwrap_or(""))
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .map_err(|_| format!("{}: not a test_preds_<n> file", dir.join(name).display()))
}

/// `0 + c1*d1 + c2*d2 + ...` in numpy's float32 arithmetic (each coefficient rounded to
/// float32, products and sums in float32, in order); `zip` stops at the shorter of the
/// two lists. `names` name the parts in errors.
fn weighted_sum(parts: &[Preds], coeffs: &[f64], names: &[PathBuf]) -> Result<Preds, String> {
    let mut sum: Option<Preds> = None;
    for ((p, &c), name) in parts.iter().zip(coeffs).zip(names) {
        let c = c as f32;
        match &mut sum {
            None => {
                sum = Some(Preds {
                    data: p.data.iter().map(|&d| 0.0 + c * d).collect(),
                    ..*p
                })
            }
            Some(s) => {
                if (s.rows, s.cols) != (p.rows, p.cols) {
                    return Err(format!(
                        "{}: {}x{} predictions where {} has {}x{}",
                        name.display(),
                        p.rows,
                        p.cols,
                        names[0].display(),
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
    sum.ok_or_else(|| "no coefficients".to_string())
}

/// avg-test.py `do_avg(dirs, out, coeffs)`: for each file of the first directory (by
/// name; each must start `test_preds_<n>`), `{'data': 0 + c1*d1 + c2*d2 + ...}` over
/// the same file of every directory (`weighted_sum`), written to
/// `<out>/test_preds_<n>`, printing `Wrote batch <n>`.
pub fn avg_test(
    dirs: &[PathBuf],
    out: &Path,
    coeffs: &[f64],
    log: &mut dyn Write,
) -> Result<(), String> {
    let first = dirs.first().ok_or("no prediction directories")?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for name in sorted_names(first)? {
        let batch = batch_number(first, &name)?;
        let files: Vec<PathBuf> = dirs
            .iter()
            .zip(coeffs)
            .map(|(d, _)| d.join(&name))
            .collect();
        let parts = files
            .iter()
            .map(|f| read(f))
            .collect::<Result<Vec<_>, _>>()?;
        let sum = weighted_sum(&parts, coeffs, &files)?;
        write(&out.join(format!("test_preds_{batch}")), &sum)?;
        writeln!(log, "Wrote batch {batch}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The models' predictions and the true labels of every validation batch, as
/// avg-valid.py's `do_avg` reads them (it re-read them for every evaluation).
pub struct Ensemble {
    /// Per batch: each directory's predictions, their files, and the labels.
    batches: Vec<(Vec<Preds>, Vec<PathBuf>, Vec<i64>)>,
}

impl Ensemble {
    /// For each file of the first directory (by name, each `test_preds_<n>`): that file
    /// of every directory, and the labels of `<valid>/data_batch_<n>`, `[d[1] +
    /// label_offset for d in batch[2]]` (`label_offset` from `<valid>/batches.meta`).
    pub fn load(dirs: &[PathBuf], valid: &Path) -> Result<Ensemble, String> {
        let first = dirs.first().ok_or("no prediction directories")?;
        let meta_path = valid.join("batches.meta");
        let meta = crate::checkpoint::load(&meta_path).map_err(|e| e.to_string())?;
        let offset = match meta.get("label_offset").as_deref() {
            Some(PyObj::Int(i)) => *i,
            _ => return Err(format!("{}: no int 'label_offset'", meta_path.display())),
        };
        let mut batches = Vec::new();
        for name in sorted_names(first)? {
            let b = batch_number(first, &name)?;
            let files: Vec<PathBuf> = dirs.iter().map(|d| d.join(&name)).collect();
            let preds = files
                .iter()
                .map(|f| read(f))
                .collect::<Result<Vec<_>, _>>()?;
            let path = valid.join(format!("data_batch_{b}"));
            let err = |m: String| format!("{}: {m}", path.display());
            let batch = crate::checkpoint::load(&path).map_err(|e| e.to_string())?;
            let (_, indices) = crate::data::jpeg::batch_parts(&batch).map_err(err)?;
            // The script adds the offset to every index (None, as in a test batch,
            // made it crash).
            let labels = (indices.iter().enumerate())
                .map(|(k, i)| {
                    i.map(|i| i + offset)
                        .ok_or_else(|| err(format!("labels[{k}] has no class index")))
                })
                .collect::<Result<Vec<i64>, String>>()?;
            batches.push((preds, files, labels));
        }
        Ok(Ensemble { batches })
    }

    /// avg-valid.py `do_avg(paths, coeffs, top5)`: the top-1 and (with `top5`, else 0)
    /// top-5 error rates of the weighted sum over all batches. Its asserts (labels below
    /// 1000, 1000 classes) and its crashes (label count differing from the cases, no
    /// case) are errors.
    pub fn errors(&self, coeffs: &[f64], top5: bool) -> Result<(f64, f64), String> {
        let (mut errs1, mut errs5, mut cases) = (0u64, 0u64, 0u64);
        for (preds, files, labels) in &self.batches {
            let mut sum = weighted_sum(preds, coeffs, files)?;
            let file = files[0].display();
            if labels.iter().max().is_none_or(|&m| m >= 1000) {
                return Err(format!(
                    "{file}: the validation labels are not all below 1000"
                ));
            }
            if sum.cols != 1000 || sum.rows != labels.len() {
                return Err(format!(
                    "{file}: {}x{} predictions for {} labels of 1000 classes",
                    sum.rows,
                    sum.cols,
                    labels.len()
                ));
            }
            for (row, &label) in sum.data.chunks_exact_mut(1000).zip(labels) {
                errs1 += u64::from(argmax(row) as i64 != label);
                if top5 {
                    errs5 += u64::from(!in_top5(row, label));
                }
            }
            cases += sum.rows as u64;
        }
        if cases == 0 {
            return Err("no validation cases".into());
        }
        Ok((errs1 as f64 / cases as f64, errs5 as f64 / cases as f64))
    }
}

/// numpy's `argmax`: the first largest value's index (a NaN counts as largest).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate().skip(1) {
        if row[best].is_nan() {
            break;
        }
        if x > row[best] || x.is_nan() {
            best = i;
        }
    }
    best
}

/// avg-valid.py `compute_top5` for one case: up to five times, the arg-max is the label
/// (no error) or is set to -1 (the row is changed, as in the script).
fn in_top5(row: &mut [f32], label: i64) -> bool {
    for _ in 0..5 {
        let top = argmax(row);
        if top as i64 == label {
            return true;
        }
        row[top] = -1.0;
    }
    false
}

/// avg-valid.py with coefficients: `Average error rate with coeffs 0.30, 0.70: <top-1>
/// <top-5>`.
pub fn avg_valid(e: &Ensemble, coeffs: &[f64], out: &mut dyn Write) -> Result<(), String> {
    let (e1, e5) = e.errors(coeffs, true)?;
    let cs: Vec<String> = coeffs.iter().map(|&c| fixed(c, 0, 2)).collect();
    writeln!(
        out,
        "Average error rate with coeffs {}: {} {}",
        cs.join(", "),
        fixed(e1, 0, 4),
        fixed(e5, 0, 4)
    )
    .map_err(|e| e.to_string())
}

/// avg-valid.py `find_coeffs(paths)` (no coefficients given): from 0.5 each, up to five
/// passes over the models; for each model in turn every coefficient 0, 0.05, ..., 1 is
/// kept when it lowers the top-5 error, then `Best error rate: <top-5>, coeffs: [...]`
/// is printed; the search stops when it comes back to the model that last improved.
pub fn find_coeffs(e: &Ensemble, models: usize, out: &mut dyn Write) -> Result<(), String> {
    let (passes, cmin, cmax, step) = (5, 0.0f64, 1.0f64, 0.05f64);
    let grid: Vec<f64> = (0..=((cmax - cmin) / step) as usize)
        .map(|k| cmin + k as f64 * step)
        .collect();
    let mut coeffs = vec![(cmax - cmin) / 2.0; models];
    let mut best = e.errors(&coeffs, true)?.1;
    // The model that last lowered the error (-1: none yet; -2: converged).
    let mut changed: i64 = -1;
    let io = |r: std::io::Result<()>| r.map_err(|e| e.to_string());
    for p in 0..passes {
        io(writeln!(out, "Pass {p}"))?;
        for i in 0..models {
            if changed == i as i64 {
                changed = -2;
                break;
            }
            for &c in &grid {
                let old = coeffs[i];
                coeffs[i] = c;
                let err = e.errors(&coeffs, true)?.1;
                if err < best {
                    best = err;
                    changed = i as i64;
                } else {
                    coeffs[i] = old;
                }
            }
            let cs: Vec<String> = coeffs.iter().map(|&c| fixed(c, 0, 2)).collect();
            io(writeln!(
                out,
                "Best error rate: {}, coeffs: [{}]",
                fixed(best, 0, 4),
                cs.join(",")
            ))?;
        }
        if changed == -2 {
            break;
        }
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
