//! `--write-features` (shownet.py's `do_write_features`, both generations): for every
//! batch of the test range, from the first until the provider comes back to it, the
//! layer's outputs on the batch are pickled as `<feature-path>/data_batch_<n>` =
//! `{'data': float32 (cases, outputs), 'labels': the provider's float32 (1, cases)
//! label row}`, and `Wrote feature file <path>` printed; then `batches.meta` =
//! `{'source_model': <the -f path as given>, 'num_vis': <outputs>}`. Pickles are
//! protocol 2 as cPickle wrote them (dict keys in Python 2.7's order).

use super::cli::Args;
use super::{int_of, Loaded, Res, Runner};
use crate::checkpoint::model::pystr;
use crate::checkpoint::value::{Dtype, NdArray, Obj, PyObj};
use crate::checkpoint::writer;
use crate::config::dictorder::iteration_order;
use crate::driver::state::path_join;
use crate::nvmatrix::NvMatrix;
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

/// A float32 C-order numpy array of a row-major matrix.
pub fn f32_array(m: &NvMatrix) -> Obj {
    let data = (0..m.rows())
        .flat_map(|r| (0..m.cols()).map(move |c| (r, c)))
        .flat_map(|(r, c)| m.get(r, c).to_le_bytes())
        .collect();
    Rc::new(PyObj::Array(RefCell::new(NdArray {
        dtype: Dtype {
            kind: 'f',
            size: 4,
            big_endian: false,
        },
        shape: vec![m.rows() as u64, m.cols() as u64],
        fortran: false,
        data,
    })))
}

/// A Python dict with string keys, in the order CPython 2.7 iterates them.
pub fn py_dict(items: Vec<(&str, Obj)>) -> Obj {
    let keys: Vec<&str> = items.iter().map(|(k, _)| *k).collect();
    let ordered = iteration_order(&keys)
        .into_iter()
        .map(|i| (pystr(items[i].0), items[i].1.clone()))
        .collect();
    Rc::new(PyObj::Dict(RefCell::new(ordered)))
}

fn save(path: &str, obj: &Obj) -> Res<()> {
    writer::save_atomic(Path::new(path), &writer::dumps(obj), false)
        .map_err(|e| format!("{path}: {e}"))
}

/// The mode; `print` receives each line as it is due.
pub fn write_features(
    m: &Loaded,
    args: &Args,
    runner: &mut Runner,
    layer: &str,
    print: &mut dyn FnMut(&str) -> Res<()>,
) -> Res<()> {
    let dir = args.feature_path.clone().unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{dir}: {e}"))?;
    let num_ftrs = m
        .layer(layer)
        .and_then(|l| int_of(l, "outputs"))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("Layer '{layer}' has no outputs to write"))?;
    let mut next = runner.test_dp.next_batch()?;
    let first = next.batchnum;
    loop {
        let batch = next;
        let (_, ftrs) = runner
            .convnet
            .features(&batch.data, layer)
            .map_err(|e| e.to_string())?;
        if ftrs.cols() != num_ftrs as usize {
            return Err(format!(
                "Layer '{layer}' gave {} outputs per case, its dict says {num_ftrs}",
                ftrs.cols()
            ));
        }
        next = runner.test_dp.next_batch()?;
        let path = path_join(&dir, &format!("data_batch_{}", batch.batchnum));
        let obj = py_dict(vec![
            ("data", f32_array(&ftrs)),
            ("labels", f32_array(&batch.data[1])),
        ]);
        save(&path, &obj)?;
        print(&format!("Wrote feature file {path}"))?;
        if next.batchnum == first {
            break;
        }
    }
    let meta = py_dict(vec![
        ("source_model", pystr(&args.load_file.display().to_string())),
        ("num_vis", Rc::new(PyObj::Int(num_ftrs))),
    ]);
    save(&path_join(&dir, "batches.meta"), &meta)
}
