//! Port of the `layers` entry of convnet.py's `model_state` as it is pickled: the parsed
//! layer dicts (a list in 2011, a dict by name in 2012) with every `inputLayers` entry
//! the very dict of that layer, so the pickle shares it through its memo as cPickle did.

use super::value::{Dtype, NdArray, Obj, PyObj};
use crate::config::value::{Dict, Value};
use crate::config::{Generation, Net};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A Python 2 `str` from our latin-1 text.
fn pystr(s: &str) -> Obj {
    Rc::new(PyObj::Bytes(s.chars().map(|c| c as u32 as u8).collect()))
}

fn convert(v: &Value, layers: &HashMap<String, Obj>) -> Obj {
    Rc::new(match v {
        Value::None => PyObj::None,
        Value::Bool(b) => PyObj::Bool(*b),
        Value::Int(i) => PyObj::Int(*i),
        Value::Float(f) => PyObj::Float(*f),
        Value::Str(s) => return pystr(s),
        Value::List(items) => PyObj::List(RefCell::new(
            items.iter().map(|i| convert(i, layers)).collect(),
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
        .map(|(k, v)| (pystr(k), convert(v, layers)))
        .collect()
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
