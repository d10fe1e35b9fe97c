//! Port of the `layers` entry of convnet.py's `model_state` as it is pickled: the parsed
//! layer dicts (a list in 2011, a dict by name in 2012) with every `inputLayers` entry
//! the very dict of that layer and every shared weight matrix (`weightSource`) the very
//! array of its source, so the pickle shares them through its memo as cPickle did.

use super::value::{Dtype, NdArray, Obj, PyObj};
use crate::config::value::{Dict, Value};
use crate::config::{Generation, Net};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A Python 2 `str` from our latin-1 text.
pub fn pystr(s: &str) -> Obj {
    Rc::new(PyObj::Bytes(s.chars().map(|c| c as u32 as u8).collect()))
}

/// A layer-dict value as its Python object; `LayerRef`s become the named layer dicts.
pub fn value_to_pyobj(v: &Value, layers: &HashMap<String, Obj>) -> Obj {
    Rc::new(match v {
        Value::None => PyObj::None,
        Value::Bool(b) => PyObj::Bool(*b),
        Value::Int(i) => PyObj::Int(*i),
        Value::Float(f) => PyObj::Float(*f),
        Value::Str(s) => return pystr(s),
        Value::List(items) => PyObj::List(RefCell::new(
            items.iter().map(|i| value_to_pyobj(i, layers)).collect(),
        )),
        Value::Dict(d) => PyObj::Dict(RefCell::new(entries(d, layers))),
        Value::Array(a) => PyObj::Array(RefCell::new(NdArray {
            dtype: Dtype {
                kind: 'f',
                size: 4,
                big_endian: false,
            },
            shape: vec![a.rows as u64, a.cols as u64],
            fortran: a.fortran,
            data: a.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })),
        Value::LayerRef(name) => return layers[name].clone(),
    })
}

fn entries(d: &Dict, layers: &HashMap<String, Obj>) -> Vec<(Obj, Obj)> {
    d.iter()
        .map(|(k, v)| (pystr(k), value_to_pyobj(v, layers)))
        .collect()
}

/// `(matrix, source layer name, source matrix)` for each shared weight matrix of `l`.
fn weight_sources(net: &Net, l: &Dict) -> Vec<(usize, String, usize)> {
    let int_list = |k: &str| l.get(k).and_then(Value::as_list).unwrap_or(&[]).to_vec();
    let matrices = int_list("weightSourceMatrixIndices");
    let sources = match net.generation {
        Generation::C1 => int_list("weightSourceLayerIndices")
            .iter()
            .map(|v| {
                v.as_int()
                    .filter(|&i| i >= 0)
                    .and_then(|i| net.layers.get(i as usize))
                    .map(|s| s["name"].as_str().unwrap_or_default().to_string())
            })
            .collect::<Vec<_>>(),
        Generation::A12 => int_list("weightSourceLayers")
            .iter()
            .map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
            .collect(),
    };
    sources
        .into_iter()
        .zip(matrices)
        .enumerate()
        .filter_map(|(i, (src, m))| Some((i, src?, m.as_int()? as usize)))
        .collect()
}

/// Matrix `m` of a layer dict's `key` list.
fn matrix(layer: &Obj, key: &str, m: usize) -> Option<Obj> {
    match layer.get(key).as_deref() {
        Some(PyObj::List(l)) => l.borrow().get(m).cloned(),
        _ => None,
    }
}

/// The layers of `net` as the original pickled them.
pub fn layers(net: &Net) -> Obj {
    let name = |l: &Dict| l["name"].as_str().unwrap_or_default().to_string();
    // Every layer dict exists before any is filled, so references can point at it.
    let shells: HashMap<String, Obj> = net
        .layers
        .iter()
        .map(|l| (name(l), Rc::new(PyObj::Dict(RefCell::new(vec![])))))
        .collect();
    for l in &net.layers {
        if let PyObj::Dict(d) = &*shells[&name(l)] {
            *d.borrow_mut() = entries(l, &shells);
        }
    }
    // In definition order, so a source is final before its sharers take its arrays.
    for l in &net.layers {
        for (i, src, m) in weight_sources(net, l) {
            for key in ["weights", "weightsInc"] {
                let shared = matrix(&shells[&src], key, m);
                if let (Some(shared), Some(PyObj::List(list))) =
                    (shared, shells[&name(l)].get(key).as_deref())
                {
                    list.borrow_mut()[i] = shared;
                }
            }
        }
    }
    let ordered = net.order().into_iter().map(|i| &net.layers[i]);
    Rc::new(match net.generation {
        Generation::C1 => PyObj::List(RefCell::new(
            ordered.map(|l| shells[&name(l)].clone()).collect(),
        )),
        Generation::A12 => PyObj::Dict(RefCell::new(
            ordered
                .map(|l| (pystr(&name(l)), shells[&name(l)].clone()))
                .collect(),
        )),
    })
}

/// A checkpoint's `model_state['layers']` back as parsed layers: a list means the 2011
/// code, a dict by name the 2012 code (kept in pickle order, which is the order the
/// original's unpickled dict was filled in). Layer dicts met inside other layers
/// become references by name.
pub fn layers_from(obj: &Obj) -> Result<Net, String> {
    let (generation, dicts): (Generation, Vec<Obj>) = match &**obj {
        PyObj::List(l) => (Generation::C1, l.borrow().clone()),
        PyObj::Dict(d) => (
            Generation::A12,
            d.borrow().iter().map(|(_, v)| v.clone()).collect(),
        ),
        _ => return Err("'layers' is neither a list nor a dict".into()),
    };
    let names: HashMap<*const PyObj, String> = dicts
        .iter()
        .map(|l| {
            Ok((
                Rc::as_ptr(l),
                l.get("name")
                    .and_then(|n| n.as_text())
                    .ok_or("a layer without a name")?,
            ))
        })
        .collect::<Result<_, String>>()?;
    let layers = dicts
        .iter()
        .map(|l| match &**l {
            PyObj::Dict(d) => d
                .borrow()
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.as_text().ok_or("a non-string key in a layer")?,
                        pyobj_to_value(v, &names)?,
                    ))
                })
                .collect::<Result<Dict, String>>(),
            _ => Err("a layer is not a dict".into()),
        })
        .collect::<Result<_, _>>()?;
    Ok(Net { generation, layers })
}

/// A Python object from a layer dict as our value; objects in `layers` (layer dicts by
/// address) become references by name.
pub fn pyobj_to_value(o: &Obj, layers: &HashMap<*const PyObj, String>) -> Result<Value, String> {
    if let Some(name) = layers.get(&Rc::as_ptr(o)) {
        return Ok(Value::LayerRef(name.clone()));
    }
    Ok(match &**o {
        PyObj::None => Value::None,
        PyObj::Bool(b) => Value::Bool(*b),
        PyObj::Int(i) => Value::Int(*i),
        PyObj::Float(f) => Value::Float(*f),
        PyObj::Bytes(_) | PyObj::Unicode(_) => Value::Str(o.as_text().unwrap_or_default()),
        PyObj::Tuple(items) => Value::List(
            items
                .iter()
                .map(|x| pyobj_to_value(x, layers))
                .collect::<Result<_, _>>()?,
        ),
        PyObj::List(items) => Value::List(
            items
                .borrow()
                .iter()
                .map(|x| pyobj_to_value(x, layers))
                .collect::<Result<_, _>>()?,
        ),
        PyObj::Dict(items) => Value::Dict(
            items
                .borrow()
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.as_text().ok_or("a non-string key")?,
                        pyobj_to_value(v, layers)?,
                    ))
                })
                .collect::<Result<_, String>>()?,
        ),
        // filterConns entries are numpy ints.
        PyObj::Scalar { dtype, bytes }
            if matches!(dtype.kind, 'i' | 'u') && dtype.size == 8 && !dtype.big_endian =>
        {
            Value::Int(i64::from_le_bytes(bytes[..8].try_into().unwrap()))
        }
        PyObj::Array(a) => {
            let a = a.borrow();
            let f4 = a.dtype
                == Dtype {
                    kind: 'f',
                    size: 4,
                    big_endian: false,
                };
            let [rows, cols] = a.shape[..] else {
                return Err(format!("a {}-dimensional array in a layer", a.shape.len()));
            };
            if !f4 {
                return Err(format!(
                    "a {} array in a layer (float32 expected)",
                    a.dtype.code()
                ));
            }
            Value::Array(crate::config::value::Array {
                rows: rows as usize,
                cols: cols as usize,
                fortran: a.fortran,
                data: a
                    .data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            })
        }
        _ => return Err("a value of a kind layers do not hold".into()),
    })
}

/// The object `save_state` pickles: `{'model_state': {'layers', 'train_outputs',
/// 'test_outputs', 'epoch', 'batchnum'}, 'op': <OptionsParser>}`.
pub fn checkpoint(
    layers: Obj,
    train_outputs: Obj,
    test_outputs: Obj,
    epoch: i64,
    batchnum: i64,
    op: Obj,
) -> Obj {
    let dict = |items: Vec<(&str, Obj)>| {
        Rc::new(PyObj::Dict(RefCell::new(
            items.into_iter().map(|(k, v)| (pystr(k), v)).collect(),
        )))
    };
    let state = dict(vec![
        ("layers", layers),
        ("train_outputs", train_outputs),
        ("test_outputs", test_outputs),
        ("epoch", Rc::new(PyObj::Int(epoch))),
        ("batchnum", Rc::new(PyObj::Int(batchnum))),
    ]);
    dict(vec![("model_state", state), ("op", op)])
}
