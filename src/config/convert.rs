//! Port of layer.py's model-state edits that `--conv-to-local` and `--unshare-weights`
//! make on resume: `LocalLayerParser.conv_to_local` and `WeightLayerParser.unshare_weights`.
//!
//! Shared matrices are not separate objects here; they are linked by
//! `weightSourceLayerIndices` / `weightSourceLayers`, which is what these edits change.

use super::layer::{int_of, str_of};
use super::value::{Array, Dict, Value};
use super::{ConfigError, Generation, Net};

fn ints(l: &Dict, key: &str) -> Vec<i64> {
    l.get(key)
        .and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .filter_map(Value::as_int)
        .collect()
}

fn matrices<'d>(l: &'d mut Dict, key: &str) -> &'d mut Vec<Value> {
    match l.get_mut(key) {
        Some(Value::List(v)) => v,
        _ => panic!("weight layer without '{key}'"),
    }
}

/// An array's elements in C order (numpy's default `reshape` order).
fn c_order(a: &Array) -> Vec<f32> {
    if !a.fortran {
        return a.data.clone();
    }
    (0..a.rows * a.cols)
        .map(|k| a.data[(k % a.cols) * a.rows + k / a.cols])
        .collect()
}

/// `conv_to_local(layers, idx)` (2011): the conv layer becomes `local`, each own weight
/// matrix tiled once per module, shared ones taken from their (converted) source, shared
/// biases repeated per module; then every layer sharing its weights is converted too.
pub fn conv_to_local(net: &mut Net, idx: usize, log: &mut Vec<String>) -> Result<(), ConfigError> {
    if net.generation == Generation::A12 {
        let name = str_of(&net.layers[idx], "name");
        return Err(ConfigError::layer(
            name,
            "--conv-to-local: the 2012 code iterates its layers dict as a list here and fails (TypeError)",
        )
        .crash());
    }
    convert_c1(&mut net.layers, idx, log);
    Ok(())
}

fn convert_c1(layers: &mut [Dict], idx: usize, log: &mut Vec<String>) {
    if str_of(&layers[idx], "type") != "conv" {
        return;
    }
    layers[idx].insert("type".into(), "local".into());
    let sources = ints(&layers[idx], "weightSourceLayerIndices");
    let src_matrices = ints(&layers[idx], "weightSourceMatrixIndices");
    let (modules, filters) = (
        int_of(&layers[idx], "modules") as usize,
        int_of(&layers[idx], "filters") as usize,
    );
    for (inp, &src) in sources.iter().enumerate() {
        if src >= 0 {
            convert_c1(layers, src as usize, log);
            let m = src_matrices[inp] as usize;
            for key in ["weights", "weightsInc"] {
                let shared = matrices(&mut layers[src as usize], key)[m].clone();
                matrices(&mut layers[idx], key)[inp] = shared;
            }
        } else {
            let Value::Array(w) = &matrices(&mut layers[idx], "weights")[inp] else {
                unreachable!()
            };
            let flat = c_order(w);
            let rows = modules * w.rows;
            let tiled = Array {
                rows,
                cols: filters,
                fortran: false,
                data: flat.repeat(modules),
            };
            matrices(&mut layers[idx], "weightsInc")[inp] =
                Array::filled(rows, filters, false, 0.0).into();
            matrices(&mut layers[idx], "weights")[inp] = tiled.into();
        }
    }
    if layers[idx]["sharedBiases"].truthy() {
        let Value::Array(b) = &layers[idx]["biases"] else {
            unreachable!()
        };
        // numpy.repeat(biases, modules, axis=0): each row `modules` times in a row.
        let data: Vec<f32> = c_order(b)
            .chunks(b.cols)
            .flat_map(|row| row.repeat(modules))
            .collect();
        let (rows, cols) = (b.rows * modules, b.cols);
        layers[idx].insert(
            "biases".into(),
            Array {
                rows,
                cols,
                fortran: false,
                data,
            }
            .into(),
        );
        layers[idx].insert(
            "biasesInc".into(),
            Array::filled(rows, cols, false, 0.0).into(),
        );
    }
    log.push(format!(
        "Converted layer '{}' from convolutional to unshared, locally-connected",
        str_of(&layers[idx], "name")
    ));
    for i in 0..layers.len() {
        if ints(&layers[i], "weightSourceLayerIndices").contains(&(idx as i64)) {
            convert_c1(layers, i, log);
        }
    }
}

/// `unshare_weights(layer, layers, matrix_idx)`: each chosen matrix gets its own copy
/// and zero increments. The 2012 code compares a layer name with 0 (`str >= int`,
/// always true in Python 2), so it "unshares" every matrix and names no source.
pub fn unshare_weights(net: &mut Net, idx: usize, matrix: Option<usize>, log: &mut Vec<String>) {
    let gen = net.generation;
    let name = str_of(&net.layers[idx], "name").to_string();
    let src_key = match gen {
        Generation::C1 => "weightSourceLayerIndices",
        Generation::A12 => "weightSourceLayers",
    };
    let Some(sources) = net.layers[idx]
        .get(src_key)
        .and_then(Value::as_list)
        .map(<[Value]>::to_vec)
    else {
        return;
    };
    let chosen: Vec<usize> = match matrix {
        Some(m) => vec![m],
        None => (0..net.layers[idx]["inputs"]
            .as_list()
            .map_or(0, <[Value]>::len))
            .collect(),
    };
    for i in chosen {
        let src_matrix = ints(&net.layers[idx], "weightSourceMatrixIndices")[i];
        let src_name = match (&sources[i], gen) {
            (Value::Int(s), Generation::C1) if *s >= 0 => {
                str_of(&net.layers[*s as usize], "name").to_string()
            }
            (_, Generation::C1) => {
                log.push(format!("Weight matrix {name}[{i}] already unshared."));
                continue;
            }
            (_, Generation::A12) => String::new(),
        };
        let layer = &mut net.layers[idx];
        let none = match gen {
            Generation::C1 => Value::Int(-1),
            Generation::A12 => Value::Str(String::new()),
        };
        matrices(layer, src_key)[i] = none;
        matrices(layer, "weightSourceMatrixIndices")[i] = Value::Int(-1);
        // ndarray.copy() makes a C-order copy, also of a Fortran-order (fc) matrix.
        let Value::Array(w) = &matrices(layer, "weights")[i] else {
            unreachable!()
        };
        let copy = Array {
            rows: w.rows,
            cols: w.cols,
            fortran: false,
            data: c_order(w),
        };
        matrices(layer, "weightsInc")[i] = Array::filled(copy.rows, copy.cols, false, 0.0).into();
        matrices(layer, "weights")[i] = copy.into();
        log.push(format!(
            "Unshared weight matrix {name}[{i}] from {src_name}[{src_matrix}]."
        ));
    }
}

/// The index of the layer named `name`.
pub fn layer_index(net: &Net, name: &str) -> Option<usize> {
    net.layers.iter().position(|l| str_of(l, "name") == name)
}
