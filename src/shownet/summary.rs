//! shownet without a mode (ours; the original then only printed its options): what the
//! checkpoint holds: its layers with type, inputs, output shape and parameter count,
//! where training stands, the data it was trained on and the last training and test
//! costs.

use super::{count, int_at, int_of, str_of, Loaded};
use crate::config::value::{Dict, Value};
use crate::config::Generation;
use crate::driver::format::CostStyle;
use crate::driver::state::CostRecord;
use std::path::Path;

/// `(own parameters, shared matrices)` of a layer: the sizes of its weight matrices
/// that are its own and of its biases; matrices taken from another layer
/// (`weightSourceLayerIndices` / 2012 `weightSourceLayers`) are counted there.
pub fn parameters(gen: Generation, l: &Dict) -> (usize, usize) {
    let size = |v: &Value| match v {
        Value::Array(a) => a.rows * a.cols,
        _ => 0,
    };
    let mut own = 0;
    let mut shared = 0;
    if let Some(ws) = l.get("weights").and_then(Value::as_list) {
        for (i, w) in ws.iter().enumerate() {
            let from_other = match gen {
                Generation::C1 => int_at(l, "weightSourceLayerIndices", i).is_some_and(|s| s >= 0),
                Generation::A12 => l
                    .get("weightSourceLayers")
                    .and_then(Value::as_list)
                    .and_then(|v| v.get(i))
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty()),
            };
            if from_other {
                shared += 1;
            } else {
                own += size(w);
            }
        }
    }
    own += l.get("biases").map_or(0, size);
    (own, shared)
}

/// The names of a layer's inputs (2011: indices into the list; 2012: names).
pub fn input_names(m: &Loaded, l: &Dict) -> Vec<String> {
    l.get("inputs")
        .and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .map(|v| match v {
            Value::Int(i) => m
                .net
                .layers
                .get(*i as usize)
                .map_or(format!("#{i}"), |x| str_of(x, "name").to_string()),
            Value::Str(s) => s.clone(),
            _ => "?".into(),
        })
        .collect()
}

/// `channels x size x size` where the layer's dict tells it.
fn shape(m: &Loaded, l: &Dict, depth: usize) -> Option<(i64, i64)> {
    let outputs = int_of(l, "outputs")?;
    let int = |k: &str| int_of(l, k).filter(|&v| v > 0);
    if let (Some(f), Some(x)) = (int("filters"), int("modulesX")) {
        return Some((f, x));
    }
    if let (Some(c), Some(x)) = (int("channels"), int("outputsX")) {
        return Some((c, x));
    }
    if let (Some(c), Some(s)) = (int("channels"), int("imgSize")) {
        if c * s * s == outputs {
            return Some((c, s));
        }
    }
    // Neuron layers and the like keep their input's shape.
    let inputs = input_names(m, l);
    if depth < 64 && inputs.len() == 1 {
        let src = m.layer(&inputs[0])?;
        if int_of(src, "outputs") == Some(outputs) {
            return shape(m, src, depth + 1);
        }
    }
    None
}

fn costs_line(r: &CostRecord, style: CostStyle) -> String {
    r.costs
        .iter()
        .map(|(n, v)| {
            let vals: Vec<String> = v.iter().map(|x| style.value(*x)).collect();
            format!("{n}: {}", vals.join(", "))
        })
        .collect::<Vec<_>>()
        .join("  ")
}

fn range_text(r: &[i64]) -> String {
    match (r.first(), r.last()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => "none".into(),
    }
}

/// The summary's lines.
pub fn summary(m: &Loaded, path: &Path) -> Vec<String> {
    let (gen_text, style) = match m.gen {
        Generation::C1 => ("cuda-convnet 2011 layers", CostStyle::C1),
        Generation::A12 => ("2012 code layers", CostStyle::A12),
    };
    let mut out = vec![
        format!("Checkpoint {} ({gen_text})", path.display()),
        format!(
            "Epoch {}, batch {}: {} and {} recorded",
            m.epoch,
            m.batchnum,
            count(m.train_outputs.len(), "training batch"),
            count(m.test_outputs.len(), "test")
        ),
        format!(
            "Data {} (provider {}), training batches {}, test batches {}, tested every {} batches, minibatches of {}",
            m.opt_text("data_path"),
            m.opt_text("dp_type"),
            range_text(&m.opt_range("train_batch_range")),
            range_text(&m.opt_range("test_batch_range")),
            m.opt_int("testing_freq").unwrap_or(0),
            m.opt_int("minibatch_size").unwrap_or(0),
        ),
        String::new(),
    ];
    // A 2012 net on several GPUs also gets each layer's `gpu` (its tower).
    let gpu = |l: &Dict| match str_of(l, "type") {
        "data" => None,
        _ => int_of(l, "gpu"),
    };
    let mut towers: Vec<i64> = m.net.layers.iter().filter_map(gpu).collect();
    towers.sort_unstable();
    towers.dedup();
    let with_gpu = towers.len() > 1;
    let rows: Vec<Vec<String>> = m
        .net
        .order()
        .into_iter()
        .map(|i| {
            let l = &m.net.layers[i];
            let (own, shared) = parameters(m.gen, l);
            let params = match shared {
                0 => own.to_string(),
                s => format!("{own} (+{s} shared)"),
            };
            let shape = shape(m, l, 0).map_or(String::new(), |(c, s)| format!("{c}x{s}x{s}"));
            let mut row = vec![
                str_of(l, "name").to_string(),
                str_of(l, "type").to_string(),
                input_names(m, l).join(","),
                int_of(l, "outputs").map_or(String::new(), |o| o.to_string()),
                shape,
                params,
            ];
            if with_gpu {
                row.insert(2, gpu(l).map_or(String::new(), |g| g.to_string()));
            }
            row
        })
        .collect();
    let mut header: Vec<String> = ["layer", "type", "inputs", "outputs", "shape", "parameters"]
        .map(String::from)
        .to_vec();
    if with_gpu {
        header.insert(2, "gpu".into());
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|k| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|r| r[k].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push(cells.join("  ").trim_end().to_string());
    }
    let total: usize = m.net.layers.iter().map(|l| parameters(m.gen, l).0).sum();
    out.push(format!("Parameters: {total}"));
    out.push(String::new());
    match m.train_outputs.last() {
        Some(r) => out.push(format!("Last training batch: {}", costs_line(r, style))),
        None => out.push("No training batches recorded".into()),
    }
    match m.test_outputs.last() {
        Some(r) => out.push(format!("Last test:           {}", costs_line(r, style))),
        None => out.push("No tests recorded".into()),
    }
    out
}
