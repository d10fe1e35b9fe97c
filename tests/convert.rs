//! `--conv-to-local` and `--unshare-weights` edits against the original layer.py's
//! `conv_to_local` / `unshare_weights` on the same net (tests/data/README.md): same
//! printed lines, types, shapes, sharing links, and which layers hold the same array.

use convnet::checkpoint::value::PyObj;
use convnet::checkpoint::{model, pickle, writer};
use convnet::config::convert::{conv_to_local, layer_index, unshare_weights};
use convnet::config::value::Value;
use convnet::config::{parse_layers, Generation, Model, Net};
use serde_json::json;
use std::path::Path;
use std::rc::Rc;

fn net() -> Net {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let model = Model {
        data_dims: vec![3 * 8 * 8, 1],
        num_classes: 10,
        num_gpus: 1,
        conserve_mem: 0,
        seed: 9,
    };
    parse_layers(
        Generation::C1,
        &data.join("shared-weights.layers.cfg"),
        &data.join("shared-weights.params.cfg"),
        &model,
        &mut Vec::new(),
    )
    .unwrap()
}

/// What the reference recorded per layer, computed from our net.
fn describe(net: &Net) -> serde_json::Value {
    // Which layers hold the very same array: pickle and look at object identity.
    let back = pickle::loads(&writer::dumps(&model::layers(net))).unwrap();
    let PyObj::List(pl) = &*back else { panic!() };
    let pl = pl.borrow().clone();
    let matrices = |l: &Rc<PyObj>| match l.get("weights").as_deref() {
        Some(PyObj::List(v)) => v.borrow().clone(),
        _ => vec![],
    };
    let shape = |v: &Value| match v {
        Value::Array(a) => json!([a.rows, a.cols]),
        _ => panic!(),
    };
    let mut out = Vec::new();
    for (li, l) in net.layers.iter().enumerate() {
        let mut d = serde_json::Map::new();
        d.insert("name".into(), json!(l["name"].as_str()));
        d.insert("type".into(), json!(l["type"].as_str()));
        for k in ["weightSourceLayerIndices", "weightSourceMatrixIndices"] {
            if let Some(v) = l.get(k) {
                d.insert(
                    k.into(),
                    json!(v
                        .as_list()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_int().unwrap())
                        .collect::<Vec<_>>()),
                );
            }
        }
        if let Some(b) = l.get("sharedBiases") {
            d.insert("sharedBiases".into(), json!(b.truthy()));
        }
        for k in ["weights", "weightsInc"] {
            if let Some(v) = l.get(k) {
                d.insert(
                    k.into(),
                    json!(v.as_list().unwrap().iter().map(shape).collect::<Vec<_>>()),
                );
            }
        }
        for k in ["biases", "biasesInc"] {
            if let Some(v) = l.get(k) {
                d.insert(k.into(), shape(v));
            }
        }
        if l.contains_key("weights") {
            let shared: Vec<Vec<usize>> = matrices(&pl[li])
                .iter()
                .map(|w| {
                    (0..pl.len())
                        .filter(|&j| matrices(&pl[j]).iter().any(|w2| Rc::ptr_eq(w, w2)))
                        .collect()
                })
                .collect();
            d.insert("shared".into(), json!(shared));
        }
        out.push(serde_json::Value::Object(d));
    }
    serde_json::Value::Array(out)
}

#[test]
fn conversions_match_the_original() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/shared-weights.convert.json");
    let cases: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let mut net = net();
        let mut log = Vec::new();
        let convert: Vec<&str> = case["conv_to_local"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        // convnet.py's loop: every conv layer named in the list, in list order of the net.
        for i in 0..net.layers.len() {
            if net.layers[i]["type"] == Value::Str("conv".into())
                && convert.contains(&net.layers[i]["name"].as_str().unwrap())
            {
                conv_to_local(&mut net, i, &mut log).unwrap();
            }
        }
        for spec in case["unshare"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
        {
            let (name, m) = match spec.split_once('[') {
                Some((n, m)) => (n, Some(m.trim_end_matches(']').parse().unwrap())),
                None => (spec, None),
            };
            let idx = layer_index(&net, name).unwrap();
            unshare_weights(&mut net, idx, m, &mut log);
        }
        let printed: Vec<&str> = case["printed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(log, printed, "{case:#}");
        assert_eq!(
            describe(&net),
            case["layers"],
            "conv_to_local {convert:?} unshare {}",
            case["unshare"]
        );
    }
}

#[test]
fn local_weights_are_the_conv_filters_tiled_per_module() {
    let mut net = net();
    let conv2 = layer_index(&net, "conv2").unwrap();
    let Value::Array(before) = net.layers[conv2]["weights"].as_list().unwrap()[0].clone() else {
        panic!()
    };
    conv_to_local(&mut net, conv2, &mut Vec::new()).unwrap();
    let Value::Array(after) = &net.layers[conv2]["weights"].as_list().unwrap()[0] else {
        panic!()
    };
    let modules = net.layers[conv2]["modules"].as_int().unwrap() as usize;
    assert_eq!(
        (after.rows, after.cols),
        (modules * before.rows, before.cols)
    );
    for m in 0..modules {
        assert_eq!(
            &after.data[m * before.data.len()..(m + 1) * before.data.len()],
            &before.data[..],
            "module {m}"
        );
    }
}
