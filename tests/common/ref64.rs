//! An independent float64 reference of a net's training step: forward pass, backward
//! pass and one weight update, computed with plain loops from the parsed layer
//! dictionaries ([`convnet::config::Net`]) in the original's layouts. It calls none of
//! the crate's kernels; only the dictionaries' values and the formulas of INVENTORY §1-3
//! and §6.2 go in.
//!
//! Layouts (all row-major, as the original's `(outputs, cases)` activations):
//! - activations and their gradients: `(outputs, cases)`, cases innermost; image layers
//!   index outputs `(channel, y, x)`, conv/local outputs `(filter, moduleY, moduleX)`;
//! - conv weights `(filterChannels*filterSize², filters)`, rows `(channel, fy, fx)`;
//!   local weights `(modules*filterChannels*filterSize², filters)`, rows `(module,
//!   channel, fy, fx)`; fc weights `(inputs, outputs)`, `act[o,c] = Σ_i in[i,c]*W[i,o]
//!   + b[o]`;
//! - biases: fc `(1, outputs)`, shared conv `(filters, 1)`, unshared conv and local
//!   `(filters*modules, 1)` indexed like the output rows `(filter, module)`.
//!
//! Gradients: [`Backward`] holds ordinary derivatives `dE/d·` of `E = Σ_cost layers
//! coeff * Σ_cases -log p[label]`; [`RefNet::expect`] turns them into what the
//! original's buffers hold (negative gradients, scaled per generation; INVENTORY §3.2).
//!
//! Supported: `data`, `conv`, `local` (any number of inputs, groups without random
//! sparsity, no weight sharing), `fc`, `pool` (`max`, `avg`), `rnorm`, `cmrnorm`,
//! `softmax`, `neuron` (ident, relu, logistic, tanh, abs, square, sqrt, brelu, linear),
//! `hs` (the training pass: the dropout mask is an input) and `cost.logreg`.
#![allow(dead_code)]

use convnet::config::value::{Array, Dict, Value};
use convnet::config::{Generation, Net};
use std::collections::HashMap;

/// A dense row-major float64 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Mat {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Mat {
    pub fn zeros(rows: usize, cols: usize) -> Mat {
        Mat {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// A parsed numpy array (C or Fortran order) in row-major float64.
    pub fn from_array(a: &Array) -> Mat {
        let mut m = Mat::zeros(a.rows, a.cols);
        for r in 0..a.rows {
            for c in 0..a.cols {
                let k = if a.fortran {
                    c * a.rows + r
                } else {
                    r * a.cols + c
                };
                m.data[r * a.cols + c] = a.data[k] as f64;
            }
        }
        m
    }

    pub fn at(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }
}

/// A neuron function (INVENTORY §2), exact math.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Neuron {
    Ident,
    Relu,
    Logistic,
    /// `a * tanh(b * x)`.
    Tanh(f64, f64),
    Abs,
    Square,
    Sqrt,
    /// `min(a, max(0, x))`.
    Brelu(f64),
    /// `a * x + b`.
    Linear(f64, f64),
}

impl Neuron {
    fn from_dict(d: &Dict) -> Neuron {
        let kind = d["type"].as_str().expect("neuron type");
        let p = |n: &str| match &d["params"] {
            Value::Dict(p) => p[n].as_f64().expect("neuron parameter"),
            _ => panic!("neuron params"),
        };
        match kind {
            "ident" => Neuron::Ident,
            "relu" => Neuron::Relu,
            "logistic" => Neuron::Logistic,
            "tanh" => Neuron::Tanh(p("a"), p("b")),
            "abs" => Neuron::Abs,
            "square" => Neuron::Square,
            "sqrt" => Neuron::Sqrt,
            "brelu" => Neuron::Brelu(p("a")),
            "linear" => Neuron::Linear(p("a"), p("b")),
            k => panic!("ref64: neuron {k} is not in the reference"),
        }
    }

    fn f(self, x: f64) -> f64 {
        match self {
            Neuron::Ident => x,
            Neuron::Relu => x.max(0.0),
            Neuron::Logistic => 1.0 / (1.0 + (-x).exp()),
            Neuron::Tanh(a, b) => a * (b * x).tanh(),
            Neuron::Abs => x.abs(),
            Neuron::Square => x * x,
            Neuron::Sqrt => x.sqrt(),
            Neuron::Brelu(a) => x.max(0.0).min(a),
            Neuron::Linear(a, b) => a * x + b,
        }
    }

    /// `dy/dx` from the input `x` and output `y`, with the original's choices at the
    /// kinks (relu/brelu: `y > 0`, `y < a`; abs: `x > 0 ? 1 : -1`).
    fn df(self, x: f64, y: f64) -> f64 {
        match self {
            Neuron::Ident => 1.0,
            Neuron::Relu => (y > 0.0) as i32 as f64,
            Neuron::Logistic => y * (1.0 - y),
            Neuron::Tanh(a, b) => b * (a - y * y / a),
            Neuron::Abs => {
                if x > 0.0 {
                    1.0
                } else {
                    -1.0
                }
            }
            Neuron::Square => 2.0 * x,
            Neuron::Sqrt => 1.0 / (2.0 * y),
            Neuron::Brelu(a) => ((y > 0.0) && (y < a)) as i32 as f64,
            Neuron::Linear(a, _) => a,
        }
    }
}

/// One input of a conv/local layer.
#[derive(Debug, Clone)]
pub struct ConvIn {
    pub channels: usize,
    pub img_size: usize,
    pub filter_size: usize,
    /// `paddingStart` (≤ 0): the dict's negated `padding`.
    pub padding_start: i64,
    pub stride: usize,
    pub filter_channels: usize,
    pub groups: usize,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Data {
        idx: usize,
    },
    Conv {
        local: bool,
        ins: Vec<ConvIn>,
        filters: usize,
        modules_x: usize,
        shared_biases: bool,
    },
    Fc,
    Pool {
        max: bool,
        channels: usize,
        img_size: usize,
        size_x: usize,
        start: i64,
        stride: usize,
        outputs_x: usize,
    },
    /// `rnorm` (same map, spatial window) and `cmrnorm` (cross-map window):
    /// `d = min_div + scale * Σ_window x²`, `out = x * d^-pow`.
    Norm {
        cross_map: bool,
        blocked: bool,
        channels: usize,
        img_size: usize,
        size: usize,
        scale: f64,
        pow: f64,
        min_div: f64,
    },
    Softmax,
    Neuron(Neuron),
    Hs {
        keep: f64,
        enable: bool,
    },
    Logreg {
        coeff: f64,
    },
}

/// Learning hyper-parameters of a weight layer (2012: constant schedules only).
#[derive(Debug, Clone)]
pub struct Hyper {
    pub eps_w: Vec<f64>,
    pub mom_w: Vec<f64>,
    pub wc: Vec<f64>,
    pub eps_b: f64,
    pub mom_b: f64,
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    pub ltype: String,
    pub kind: Kind,
    /// Indices into [`RefNet::layers`].
    pub inputs: Vec<usize>,
    pub outputs: usize,
    pub weights: Vec<Mat>,
    pub weights_inc: Vec<Mat>,
    pub biases: Option<Mat>,
    pub biases_inc: Option<Mat>,
    pub hyper: Option<Hyper>,
}

/// The net in an evaluation order (every layer after its inputs).
#[derive(Debug, Clone)]
pub struct RefNet {
    pub generation: Generation,
    pub layers: Vec<Layer>,
}

fn int(d: &Dict, k: &str) -> i64 {
    d.get(k)
        .and_then(Value::as_int)
        .unwrap_or_else(|| panic!("ref64: layer {:?}: int key {k}", d.get("name")))
}

fn float(d: &Dict, k: &str) -> f64 {
    d.get(k)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("ref64: layer {:?}: float key {k}", d.get("name")))
}

fn list<'a>(d: &'a Dict, k: &str) -> &'a [Value] {
    d.get(k)
        .and_then(Value::as_list)
        .unwrap_or_else(|| panic!("ref64: layer {:?}: list key {k}", d.get("name")))
}

fn ints(d: &Dict, k: &str) -> Vec<i64> {
    list(d, k).iter().map(|v| v.as_int().unwrap()).collect()
}

fn floats(d: &Dict, k: &str) -> Vec<f64> {
    list(d, k).iter().map(|v| v.as_f64().unwrap()).collect()
}

fn arrays(d: &Dict, k: &str) -> Vec<Mat> {
    list(d, k)
        .iter()
        .map(|v| match v {
            Value::Array(a) => Mat::from_array(a),
            _ => panic!("ref64: {k} holds a non-array"),
        })
        .collect()
}

fn array(d: &Dict, k: &str) -> Mat {
    match &d[k] {
        Value::Array(a) => Mat::from_array(a),
        _ => panic!("ref64: {k} is not an array"),
    }
}

fn truthy(d: &Dict, k: &str) -> bool {
    d.get(k).is_some_and(Value::truthy)
}

/// A 2012 schedule must be the constant `default` one.
fn check_schedule(d: &Dict, k: &str) {
    if let Some(v) = d.get(k) {
        let name = match v {
            Value::Str(s) => s.clone(),
            Value::Dict(s) => s
                .get("type")
                .or_else(|| s.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string(),
            Value::List(l) => l
                .first()
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string(),
            _ => "default".to_string(),
        };
        assert!(
            name.starts_with("default"),
            "ref64: layer {:?}: only the constant schedule is in the reference ({k} = {name})",
            d.get("name")
        );
    }
}

impl RefNet {
    pub fn new(net: &Net) -> RefNet {
        let gen = net.generation;
        let names: Vec<String> = net
            .layers
            .iter()
            .map(|l| l["name"].as_str().unwrap().to_string())
            .collect();
        // Input names of every dict layer.
        let input_names: Vec<Vec<String>> = net
            .layers
            .iter()
            .map(|l| match l.get("inputs") {
                None => vec![],
                Some(v) => v
                    .as_list()
                    .unwrap()
                    .iter()
                    .map(|x| match x {
                        Value::Int(i) => names[*i as usize].clone(),
                        Value::Str(s) => s.clone(),
                        other => panic!("ref64: input {other:?}"),
                    })
                    .collect(),
            })
            .collect();
        // Evaluation order: repeatedly take the first layer (dict order) whose inputs
        // are all placed.
        let mut placed: Vec<usize> = Vec::new();
        let mut done = vec![false; names.len()];
        while placed.len() < names.len() {
            let next = (0..names.len())
                .find(|&i| {
                    !done[i]
                        && input_names[i]
                            .iter()
                            .all(|n| placed.iter().any(|&p| &names[p] == n))
                })
                .expect("ref64: the layers have a cycle or a missing input");
            done[next] = true;
            placed.push(next);
        }
        let pos = |n: &str| placed.iter().position(|&p| names[p] == n).unwrap();
        let mut layers = Vec::new();
        for &i in &placed {
            let d = &net.layers[i];
            let ltype = d["type"].as_str().unwrap().to_string();
            let inputs: Vec<usize> = input_names[i].iter().map(|n| pos(n)).collect();
            let outputs = d.get("outputs").and_then(Value::as_int).unwrap_or(0) as usize;
            let kind = match ltype.as_str() {
                "data" => Kind::Data {
                    idx: int(d, "dataIdx") as usize,
                },
                "conv" | "local" => {
                    let n = inputs.len();
                    let (ch, img, fs, pad, st, fc, gr) = (
                        ints(d, "channels"),
                        ints(d, "imgSize"),
                        ints(d, "filterSize"),
                        ints(d, "padding"),
                        ints(d, "stride"),
                        ints(d, "filterChannels"),
                        ints(d, "groups"),
                    );
                    for c in list(d, "filterConns") {
                        assert!(
                            !c.truthy(),
                            "ref64: random sparse connectivity is not in the reference"
                        );
                    }
                    Kind::Conv {
                        local: ltype == "local",
                        ins: (0..n)
                            .map(|k| ConvIn {
                                channels: ch[k] as usize,
                                img_size: img[k] as usize,
                                filter_size: fs[k] as usize,
                                padding_start: pad[k],
                                stride: st[k] as usize,
                                filter_channels: fc[k] as usize,
                                groups: gr[k] as usize,
                            })
                            .collect(),
                        filters: int(d, "filters") as usize,
                        modules_x: int(d, "modulesX") as usize,
                        shared_biases: ltype == "conv" && truthy(d, "sharedBiases"),
                    }
                }
                "fc" => Kind::Fc,
                "pool" => {
                    let pool = d["pool"].as_str().unwrap();
                    assert!(pool == "max" || pool == "avg", "ref64: pool={pool}");
                    Kind::Pool {
                        max: pool == "max",
                        channels: int(d, "channels") as usize,
                        img_size: int(d, "imgSize") as usize,
                        size_x: int(d, "sizeX") as usize,
                        start: int(d, "start"),
                        stride: int(d, "stride") as usize,
                        outputs_x: int(d, "outputsX") as usize,
                    }
                }
                "rnorm" | "cmrnorm" => Kind::Norm {
                    cross_map: ltype == "cmrnorm",
                    blocked: truthy(d, "blocked"),
                    channels: int(d, "channels") as usize,
                    img_size: int(d, "imgSize") as usize,
                    size: int(d, "size") as usize,
                    scale: float(d, "scale"),
                    pow: float(d, "pow"),
                    min_div: d.get("minDiv").and_then(Value::as_f64).unwrap_or(1.0),
                },
                "softmax" => Kind::Softmax,
                "neuron" => match &d["neuron"] {
                    Value::Dict(n) => Kind::Neuron(Neuron::from_dict(n)),
                    _ => panic!("ref64: neuron layer without a neuron dict"),
                },
                "hs" => Kind::Hs {
                    keep: float(d, "keep"),
                    enable: truthy(d, "enable"),
                },
                "cost.logreg" => Kind::Logreg {
                    coeff: float(d, "coeff"),
                },
                t => panic!("ref64: layer type {t} is not in the reference"),
            };
            let is_weight = matches!(kind, Kind::Conv { .. } | Kind::Fc);
            let (mut weights, mut weights_inc, mut biases, mut biases_inc, mut hyper) =
                (vec![], vec![], None, None, None);
            if is_weight {
                for s in list(d, "weightSource") {
                    assert!(!s.truthy(), "ref64: weight sharing is not in the reference");
                }
                weights = arrays(d, "weights");
                weights_inc = arrays(d, "weightsInc");
                biases = Some(array(d, "biases"));
                biases_inc = Some(array(d, "biasesInc"));
                if gen == Generation::A12 {
                    check_schedule(d, "schedW");
                    check_schedule(d, "schedB");
                    if d.get("superEps").and_then(Value::as_f64).unwrap_or(0.0) > 0.0 {
                        panic!("ref64: superEps is not in the reference");
                    }
                    if floats(d, "wball").iter().any(|&w| w > 0.0)
                        || d.get("wcNormMax")
                            .is_some_and(|_| floats(d, "wcNormMax").iter().any(|&w| w > 0.0))
                    {
                        panic!("ref64: weight constraints are not in the reference");
                    }
                }
                hyper = Some(Hyper {
                    eps_w: floats(d, "epsW"),
                    mom_w: floats(d, "momW"),
                    wc: floats(d, "wc"),
                    eps_b: float(d, "epsB"),
                    mom_b: float(d, "momB"),
                });
            }
            layers.push(Layer {
                name: names[i].clone(),
                ltype,
                kind,
                inputs,
                outputs,
                weights,
                weights_inc,
                biases,
                biases_inc,
                hyper,
            });
        }
        RefNet {
            generation: gen,
            layers,
        }
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name == name)
    }

    pub fn layer(&self, name: &str) -> &Layer {
        &self.layers[self
            .index(name)
            .unwrap_or_else(|| panic!("ref64: no layer {name}"))]
    }

    pub fn layer_mut(&mut self, name: &str) -> &mut Layer {
        let i = self
            .index(name)
            .unwrap_or_else(|| panic!("ref64: no layer {name}"));
        &mut self.layers[i]
    }
}

/// A training pass's inputs: the data matrices by `dataIdx` (`(dims, cases)` row-major)
/// and the dropout mask of every enabled `hs` layer (`(outputs, cases)`, 0 or 1).
pub struct Inputs<'a> {
    pub data: &'a [Vec<f64>],
    pub cases: usize,
    pub masks: &'a HashMap<String, Vec<f64>>,
}

/// The forward pass: every layer's activations, the cost layers' values and what the
/// backward pass needs (normalisation denominators).
#[derive(Debug, Clone)]
pub struct Forward {
    pub cases: usize,
    pub acts: Vec<Vec<f64>>,
    /// Normalisation layers: the denominators `d`, like the acts.
    pub denoms: Vec<Vec<f64>>,
    /// Cost layer name → (coeff, [Σ -log p, Σ errors]) (the original's `_costv`:
    /// a case with `k` classes tied at the maximum, the label among them, counts
    /// `1 - 1/k` errors).
    pub costs: Vec<(String, f64, Vec<f64>)>,
    /// `E = Σ coeff * value[0]`.
    pub cost: f64,
    /// Well-conditioning figures (see [`Margins`]).
    pub margins: Margins,
    /// A hash of every branch the pass took (relu/abs/brelu sides, max-pooling
    /// arg-max positions): two passes with equal `branches` lie in the same smooth
    /// piece of the cost, so a finite difference between them is meaningful.
    pub branches: u64,
}

/// How close the forward pass came to a discontinuity of the derivatives, so a test
/// can tell whether an f32 computation could take the other branch.
#[derive(Debug, Clone, Default)]
pub struct Margins {
    /// Smallest `|x|` over the inputs of relu/abs/brelu neurons (brelu: also `|x-a|`),
    /// relative to the largest `|x|` of that layer.
    pub kink: f64,
    /// Smallest gap between the largest and the second largest distinct value of a
    /// max-pooling window whose maximum is non-zero, relative to the layer's largest
    /// `|x|` (ties at exactly 0 come from relus and stay exact in f32).
    pub max_pool: f64,
    /// Smallest gap between the top two probabilities of a case (the error count's
    /// decision).
    pub argmax: f64,
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

/// Output `(k, m)` rows and the iteration over one conv/local input's taps.
struct Taps<'a> {
    ci: &'a ConvIn,
    filters: usize,
    modules_x: usize,
    local: bool,
}

impl Taps<'_> {
    /// Calls `f(out_row, in_row, w_row)` for every tap of every output row (filter,
    /// module) of this input whose pixel lies in the image.
    fn each(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        let ci = self.ci;
        let fs = ci.filter_size;
        let s = ci.img_size as i64;
        let mx = self.modules_x;
        let filters_per_group = self.filters / ci.groups;
        let fpix = ci.filter_channels * fs * fs;
        for k in 0..self.filters {
            let g = k / filters_per_group;
            for my in 0..mx {
                for mxx in 0..mx {
                    let m = my * mx + mxx;
                    let out_row = k * mx * mx + m;
                    let wbase = if self.local { m * fpix } else { 0 };
                    for cl in 0..ci.filter_channels {
                        let ch = g * ci.filter_channels + cl;
                        for fy in 0..fs {
                            let y = ci.padding_start + (my * ci.stride + fy) as i64;
                            if y < 0 || y >= s {
                                continue;
                            }
                            for fx in 0..fs {
                                let x = ci.padding_start + (mxx * ci.stride + fx) as i64;
                                if x < 0 || x >= s {
                                    continue;
                                }
                                let in_row =
                                    (ch * ci.img_size + y as usize) * ci.img_size + x as usize;
                                let w_row = wbase + (cl * fs + fy) * fs + fx;
                                f(out_row, in_row, w_row, k);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The clipped window `[lo, lo + size) ∩ [0, len)`.
fn window(lo: i64, size: usize, len: usize) -> std::ops::Range<usize> {
    let a = lo.max(0) as usize;
    let b = (lo + size as i64).clamp(0, len as i64) as usize;
    a.min(b)..b
}

impl Kind {
    /// The normalisation window of position `p` (spatial row/column or channel).
    fn norm_window(&self, p: usize, len: usize) -> std::ops::Range<usize> {
        match *self {
            Kind::Norm {
                size,
                blocked,
                cross_map,
                ..
            } => {
                if cross_map && blocked {
                    window((p / size * size) as i64, size, len)
                } else {
                    window(p as i64 - (size / 2) as i64, size, len)
                }
            }
            _ => unreachable!(),
        }
    }
}

impl RefNet {
    /// The forward pass of a training minibatch (`PASS_TRAIN`).
    pub fn forward(&self, inp: &Inputs) -> Forward {
        let n = inp.cases;
        let mut acts: Vec<Vec<f64>> = Vec::with_capacity(self.layers.len());
        let mut denoms = vec![vec![]; self.layers.len()];
        let mut costs = Vec::new();
        let mut branches: u64 = 0xcbf2_9ce4_8422_2325;
        let mut branch = |b: u64| {
            branches = (branches ^ b).wrapping_mul(0x0000_0100_0000_01b3);
        };
        let mut margins = Margins {
            kink: f64::INFINITY,
            max_pool: f64::INFINITY,
            argmax: f64::INFINITY,
        };
        for (li, l) in self.layers.iter().enumerate() {
            let input = |k: usize| -> &Vec<f64> { &acts[l.inputs[k]] };
            let out: Vec<f64> = match &l.kind {
                Kind::Data { idx } => {
                    let d = inp.data[*idx].clone();
                    assert_eq!(d.len(), l.outputs * n, "ref64: data {idx} size");
                    d
                }
                Kind::Conv {
                    local,
                    ins,
                    filters,
                    modules_x,
                    shared_biases,
                } => {
                    let mut o = vec![0.0; l.outputs * n];
                    for (k, ci) in ins.iter().enumerate() {
                        let x = input(k);
                        let w = &l.weights[k];
                        let taps = Taps {
                            ci,
                            filters: *filters,
                            modules_x: *modules_x,
                            local: *local,
                        };
                        taps.each(|orow, irow, wrow, f| {
                            let wv = w.at(wrow, f);
                            for c in 0..n {
                                o[orow * n + c] += x[irow * n + c] * wv;
                            }
                        });
                    }
                    let b = l.biases.as_ref().unwrap();
                    let mods = modules_x * modules_x;
                    for r in 0..l.outputs {
                        let bv = if *shared_biases {
                            b.data[r / mods]
                        } else {
                            b.data[r]
                        };
                        for c in 0..n {
                            o[r * n + c] += bv;
                        }
                    }
                    o
                }
                Kind::Fc => {
                    let mut o = vec![0.0; l.outputs * n];
                    for k in 0..l.inputs.len() {
                        let x = input(k);
                        let w = &l.weights[k];
                        for i in 0..w.rows {
                            for j in 0..w.cols {
                                let wv = w.at(i, j);
                                for c in 0..n {
                                    o[j * n + c] += x[i * n + c] * wv;
                                }
                            }
                        }
                    }
                    let b = l.biases.as_ref().unwrap();
                    for j in 0..l.outputs {
                        for c in 0..n {
                            o[j * n + c] += b.data[j];
                        }
                    }
                    o
                }
                Kind::Pool {
                    max,
                    channels,
                    img_size,
                    size_x,
                    start,
                    stride,
                    outputs_x,
                } => {
                    let x = input(0);
                    let scale = max_abs(x);
                    let mut o = vec![0.0; l.outputs * n];
                    for ch in 0..*channels {
                        for oy in 0..*outputs_x {
                            let ry = window(start + (oy * stride) as i64, *size_x, *img_size);
                            for ox in 0..*outputs_x {
                                let rx = window(start + (ox * stride) as i64, *size_x, *img_size);
                                let orow = (ch * outputs_x + oy) * outputs_x + ox;
                                for c in 0..n {
                                    let mut vals = Vec::new();
                                    for y in ry.clone() {
                                        for xx in rx.clone() {
                                            vals.push(
                                                x[((ch * img_size + y) * img_size + xx) * n + c],
                                            );
                                        }
                                    }
                                    o[orow * n + c] = if *max {
                                        let m = vals.iter().cloned().fold(f64::MIN, f64::max);
                                        branch(vals.iter().position(|&v| v == m).unwrap() as u64);
                                        if m != 0.0 {
                                            let second = vals
                                                .iter()
                                                .cloned()
                                                .filter(|&v| v != m)
                                                .fold(f64::MIN, f64::max);
                                            if second > f64::MIN {
                                                margins.max_pool =
                                                    margins.max_pool.min((m - second) / scale);
                                            }
                                        }
                                        m
                                    } else {
                                        vals.iter().sum::<f64>() / vals.len() as f64
                                    };
                                }
                            }
                        }
                    }
                    o
                }
                kind @ Kind::Norm {
                    cross_map,
                    channels,
                    img_size,
                    scale,
                    pow,
                    min_div,
                    ..
                } => {
                    let x = input(0);
                    let (c_n, s) = (*channels, *img_size);
                    let mut o = vec![0.0; l.outputs * n];
                    let mut d = vec![0.0; l.outputs * n];
                    for f in 0..c_n {
                        for y in 0..s {
                            for xx in 0..s {
                                let row = (f * s + y) * s + xx;
                                for c in 0..n {
                                    let mut acc = 0.0;
                                    if *cross_map {
                                        for f2 in kind.norm_window(f, c_n) {
                                            let v = x[((f2 * s + y) * s + xx) * n + c];
                                            acc += v * v;
                                        }
                                    } else {
                                        for y2 in kind.norm_window(y, s) {
                                            for x2 in kind.norm_window(xx, s) {
                                                let v = x[((f * s + y2) * s + x2) * n + c];
                                                acc += v * v;
                                            }
                                        }
                                    }
                                    let dv = min_div + scale * acc;
                                    d[row * n + c] = dv;
                                    o[row * n + c] = x[row * n + c] * dv.powf(-pow);
                                }
                            }
                        }
                    }
                    denoms[li] = d;
                    o
                }
                Kind::Softmax => {
                    let x = input(0);
                    let k = l.outputs;
                    let mut o = vec![0.0; k * n];
                    for c in 0..n {
                        let m = (0..k).map(|i| x[i * n + c]).fold(f64::MIN, f64::max);
                        let s: f64 = (0..k).map(|i| (x[i * n + c] - m).exp()).sum();
                        for i in 0..k {
                            o[i * n + c] = (x[i * n + c] - m).exp() / s;
                        }
                    }
                    o
                }
                Kind::Neuron(nr) => {
                    let x = input(0);
                    if matches!(nr, Neuron::Relu | Neuron::Abs | Neuron::Brelu(_)) {
                        let scale = max_abs(x).max(f64::MIN_POSITIVE);
                        for &v in x.iter() {
                            let mut m = v.abs();
                            branch((v > 0.0) as u64);
                            if let Neuron::Brelu(a) = nr {
                                m = m.min((v - a).abs());
                                branch(2 + (v < *a) as u64);
                            }
                            margins.kink = margins.kink.min(m / scale);
                        }
                    }
                    x.iter().map(|&v| nr.f(v)).collect()
                }
                Kind::Hs { keep, enable } => {
                    let x = input(0);
                    if *enable {
                        let mask = inp
                            .masks
                            .get(&l.name)
                            .unwrap_or_else(|| panic!("ref64: no dropout mask for {}", l.name));
                        assert_eq!(mask.len(), x.len());
                        x.iter().zip(mask).map(|(a, m)| a * m).collect()
                    } else {
                        x.iter().map(|a| a * keep).collect()
                    }
                }
                Kind::Logreg { coeff } => {
                    let (labels, p) = (input(0), input(1));
                    let k = self.layers[l.inputs[1]].outputs;
                    let (mut nll, mut err) = (0.0, 0.0);
                    for c in 0..n {
                        let lab = labels[c] as usize;
                        let pl = p[lab * n + c];
                        nll -= pl.ln();
                        let mut col: Vec<f64> = (0..k).map(|i| p[i * n + c]).collect();
                        let maxp = col.iter().cloned().fold(f64::MIN, f64::max);
                        let ties = col.iter().filter(|&&v| v == maxp).count();
                        err += 1.0 - if pl == maxp { 1.0 / ties as f64 } else { 0.0 };
                        col.sort_by(|a, b| b.partial_cmp(a).unwrap());
                        margins.argmax = margins.argmax.min(col[0] - col[1]);
                    }
                    costs.push((l.name.clone(), *coeff, vec![nll, err]));
                    vec![]
                }
            };
            acts.push(out);
        }
        let cost = costs.iter().map(|(_, c, v)| c * v[0]).sum();
        Forward {
            cases: n,
            acts,
            denoms,
            costs,
            cost,
            margins,
            branches,
        }
    }

    /// The ordinary derivatives of `E` ([`Forward::cost`]): `dacts[l] = dE/dacts`
    /// (empty for cost layers), `dweights`, `dbiases` per layer, and `ddata` per
    /// `dataIdx` (the data layers' `dacts`).
    pub fn backward(&self, fwd: &Forward, inp: &Inputs) -> Backward {
        let n = fwd.cases;
        let nl = self.layers.len();
        let mut g: Vec<Vec<f64>> = self
            .layers
            .iter()
            .map(|l| vec![0.0; l.outputs * n])
            .collect();
        let mut dweights: Vec<Vec<Mat>> = self
            .layers
            .iter()
            .map(|l| {
                l.weights
                    .iter()
                    .map(|w| Mat::zeros(w.rows, w.cols))
                    .collect()
            })
            .collect();
        let mut dbiases: Vec<Option<Mat>> = self
            .layers
            .iter()
            .map(|l| l.biases.as_ref().map(|b| Mat::zeros(b.rows, b.cols)))
            .collect();
        for li in (0..nl).rev() {
            let l = &self.layers[li];
            let (before, rest) = g.split_at_mut(li);
            let gout = &rest[0];
            let x = |k: usize| -> &Vec<f64> { &fwd.acts[l.inputs[k]] };
            match &l.kind {
                Kind::Data { .. } => {}
                Kind::Logreg { coeff } => {
                    let (labels, p) = (x(0), x(1));
                    let gp = &mut before[l.inputs[1]];
                    for c in 0..n {
                        let lab = labels[c] as usize;
                        gp[lab * n + c] -= coeff / p[lab * n + c];
                    }
                }
                Kind::Softmax => {
                    let p = &fwd.acts[li];
                    let k = l.outputs;
                    let gi = &mut before[l.inputs[0]];
                    for c in 0..n {
                        let dot: f64 = (0..k).map(|j| gout[j * n + c] * p[j * n + c]).sum();
                        for i in 0..k {
                            gi[i * n + c] += p[i * n + c] * (gout[i * n + c] - dot);
                        }
                    }
                }
                Kind::Neuron(nr) => {
                    let (xi, y) = (x(0), &fwd.acts[li]);
                    let gi = &mut before[l.inputs[0]];
                    for e in 0..xi.len() {
                        gi[e] += gout[e] * nr.df(xi[e], y[e]);
                    }
                }
                Kind::Hs { keep, enable } => {
                    let gi = &mut before[l.inputs[0]];
                    if *enable {
                        let mask = &inp.masks[&l.name];
                        for e in 0..gi.len() {
                            gi[e] += gout[e] * mask[e];
                        }
                    } else {
                        for e in 0..gi.len() {
                            gi[e] += gout[e] * keep;
                        }
                    }
                }
                Kind::Fc => {
                    for k in 0..l.inputs.len() {
                        let xi = x(k);
                        let w = &l.weights[k];
                        let dw = &mut dweights[li][k];
                        let gi = &mut before[l.inputs[k]];
                        for i in 0..w.rows {
                            for j in 0..w.cols {
                                let (mut s, wv) = (0.0, w.at(i, j));
                                for c in 0..n {
                                    s += xi[i * n + c] * gout[j * n + c];
                                    gi[i * n + c] += wv * gout[j * n + c];
                                }
                                dw.data[i * w.cols + j] = s;
                            }
                        }
                    }
                    let db = dbiases[li].as_mut().unwrap();
                    for j in 0..l.outputs {
                        db.data[j] = (0..n).map(|c| gout[j * n + c]).sum();
                    }
                }
                Kind::Conv {
                    local,
                    ins,
                    filters,
                    modules_x,
                    shared_biases,
                } => {
                    for (k, ci) in ins.iter().enumerate() {
                        let xi = x(k);
                        let w = &l.weights[k];
                        let dw = &mut dweights[li][k];
                        let gi = &mut before[l.inputs[k]];
                        let taps = Taps {
                            ci,
                            filters: *filters,
                            modules_x: *modules_x,
                            local: *local,
                        };
                        taps.each(|orow, irow, wrow, f| {
                            let wv = w.at(wrow, f);
                            let mut s = 0.0;
                            for c in 0..n {
                                s += xi[irow * n + c] * gout[orow * n + c];
                                gi[irow * n + c] += wv * gout[orow * n + c];
                            }
                            dw.data[wrow * w.cols + f] += s;
                        });
                    }
                    let db = dbiases[li].as_mut().unwrap();
                    let mods = modules_x * modules_x;
                    for r in 0..l.outputs {
                        let s: f64 = (0..n).map(|c| gout[r * n + c]).sum();
                        if *shared_biases {
                            db.data[r / mods] += s;
                        } else {
                            db.data[r] += s;
                        }
                    }
                }
                Kind::Pool {
                    max,
                    channels,
                    img_size,
                    size_x,
                    start,
                    stride,
                    outputs_x,
                } => {
                    let (xi, y) = (x(0), &fwd.acts[li]);
                    let gi = &mut before[l.inputs[0]];
                    for ch in 0..*channels {
                        for oy in 0..*outputs_x {
                            let ry = window(start + (oy * stride) as i64, *size_x, *img_size);
                            for ox in 0..*outputs_x {
                                let rx = window(start + (ox * stride) as i64, *size_x, *img_size);
                                let orow = (ch * outputs_x + oy) * outputs_x + ox;
                                let count = (ry.len() * rx.len()) as f64;
                                for c in 0..n {
                                    let go = gout[orow * n + c];
                                    for yy in ry.clone() {
                                        for xx in rx.clone() {
                                            let ir = ((ch * img_size + yy) * img_size + xx) * n + c;
                                            if *max {
                                                // Every pixel equal to the window's
                                                // maximum receives the gradient (ties
                                                // all, as the original).
                                                if xi[ir] == y[orow * n + c] {
                                                    gi[ir] += go;
                                                }
                                            } else {
                                                gi[ir] += go / count;
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                kind @ Kind::Norm {
                    cross_map,
                    channels,
                    img_size,
                    scale,
                    pow,
                    ..
                } => {
                    // out_q = x_q d_q^-pow, d_q = minDiv + scale Σ_{p ∈ W(q)} x_p²:
                    // dE/dx_p = g_p d_p^-pow + Σ_{q: p ∈ W(q)} g_q x_q (-pow) d_q^(-pow-1)
                    //           * 2 scale x_p.
                    let xi = x(0);
                    let d = &fwd.denoms[li];
                    let (c_n, s) = (*channels, *img_size);
                    let gi = &mut before[l.inputs[0]];
                    for f in 0..c_n {
                        for yy in 0..s {
                            for xx in 0..s {
                                let q = (f * s + yy) * s + xx;
                                for c in 0..n {
                                    let e = q * n + c;
                                    gi[e] += gout[e] * d[e].powf(-pow);
                                    let t = gout[e]
                                        * xi[e]
                                        * (-pow)
                                        * d[e].powf(-pow - 1.0)
                                        * 2.0
                                        * scale;
                                    if *cross_map {
                                        for f2 in kind.norm_window(f, c_n) {
                                            let p = ((f2 * s + yy) * s + xx) * n + c;
                                            gi[p] += t * xi[p];
                                        }
                                    } else {
                                        for y2 in kind.norm_window(yy, s) {
                                            for x2 in kind.norm_window(xx, s) {
                                                let p = ((f * s + y2) * s + x2) * n + c;
                                                gi[p] += t * xi[p];
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut ddata = Vec::new();
        for (li, l) in self.layers.iter().enumerate() {
            if let Kind::Data { idx } = l.kind {
                if ddata.len() <= idx {
                    ddata.resize(idx + 1, vec![]);
                }
                ddata[idx] = g[li].clone();
            }
        }
        Backward {
            dacts: g,
            dweights,
            dbiases,
            ddata,
        }
    }
}

/// Ordinary derivatives of the cost (see [`RefNet::backward`]).
#[derive(Debug, Clone)]
pub struct Backward {
    pub dacts: Vec<Vec<f64>>,
    pub dweights: Vec<Vec<Mat>>,
    pub dbiases: Vec<Option<Mat>>,
    pub ddata: Vec<Vec<f64>>,
}

/// What one weight matrix (or bias vector) of the original holds after `bprop` and
/// after `updateWeights`.
#[derive(Debug, Clone)]
pub struct WeightsExpect {
    /// `useGrad`: the separate gradient matrix exists (conv weights, biases).
    pub use_grad: bool,
    /// Whether a gradient is computed and the matrix updated at all (rate > 0).
    pub learns: bool,
    /// The separate gradient after bprop (`useGrad` only): 2011 `(eps/numCases) *
    /// (-dE/dW)`, 2012 `(1/numCases) * (-dE/dW)`.
    pub grad: Option<Mat>,
    /// The increment after bprop: `useGrad` unchanged; otherwise `mom*inc +
    /// (eps/numCases) * (-dE/dW)` (2012: `lr` for `eps`).
    pub inc_bprop: Mat,
    /// Weights and increment after the update.
    pub w_update: Mat,
    pub inc_update: Mat,
}

/// The original's view of one training step.
#[derive(Debug, Clone)]
pub struct Expect {
    /// Per layer (RefNet order): activations `(outputs, cases)`.
    pub acts: Vec<Vec<f64>>,
    /// Per layer: the original's activity gradient `-dE/dacts`.
    pub acts_grad: Vec<Vec<f64>>,
    /// Per layer: weight matrices.
    pub weights: Vec<Vec<WeightsExpect>>,
    pub biases: Vec<Option<WeightsExpect>>,
}

impl RefNet {
    /// The step's expectations in the original's conventions (INVENTORY §3.2), for
    /// `wupdate_freq == 1` (`numCases` = the minibatch's cases) and constant rates.
    pub fn expect(&self, fwd: &Forward, bwd: &Backward) -> Expect {
        let n = fwd.cases as f64;
        let gen = self.generation;
        let one = |w: &Mat, inc: &Mat, dw: &Mat, use_grad: bool, eps: f64, mom: f64, wc: f64| {
            let learns = eps > 0.0;
            // The gradient as the original's bprop scales it.
            let s = match gen {
                Generation::C1 => eps / n,
                Generation::A12 => 1.0 / n,
            };
            // The rate the 2012 update applies to the separate gradient.
            let lr_in_update = match gen {
                Generation::C1 => 1.0,
                Generation::A12 => eps,
            };
            let neg: Vec<f64> = dw.data.iter().map(|d| -d).collect();
            if !learns {
                return WeightsExpect {
                    use_grad,
                    learns,
                    grad: None,
                    inc_bprop: inc.clone(),
                    w_update: w.clone(),
                    inc_update: inc.clone(),
                };
            }
            let mut grad = None;
            let mut inc_b = inc.clone();
            let mut inc_u = inc.clone();
            if use_grad {
                let gm = Mat {
                    rows: w.rows,
                    cols: w.cols,
                    data: neg.iter().map(|d| s * d).collect(),
                };
                for e in 0..inc_u.data.len() {
                    inc_u.data[e] = mom * inc.data[e] + lr_in_update * gm.data[e];
                }
                grad = Some(gm);
            } else {
                // fc/local: bprop accumulates straight into the increment, with the
                // rate in both generations (2011 epsW/numCases, 2012 lr/numCases).
                let sb = eps / n;
                for ((b, &i), &g) in inc_b.data.iter_mut().zip(&inc.data).zip(&neg) {
                    *b = mom * i + sb * g;
                }
                inc_u = inc_b.clone();
            }
            if wc > 0.0 {
                for e in 0..inc_u.data.len() {
                    inc_u.data[e] -= wc * eps * w.data[e];
                }
            }
            let mut w_u = w.clone();
            for e in 0..w_u.data.len() {
                w_u.data[e] += inc_u.data[e];
            }
            WeightsExpect {
                use_grad,
                learns,
                grad,
                inc_bprop: inc_b,
                w_update: w_u,
                inc_update: inc_u,
            }
        };
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for (li, l) in self.layers.iter().enumerate() {
            let mut ws = Vec::new();
            let mut b = None;
            if let Some(h) = &l.hyper {
                let w_use_grad = l.ltype == "conv";
                for k in 0..l.weights.len() {
                    ws.push(one(
                        &l.weights[k],
                        &l.weights_inc[k],
                        &bwd.dweights[li][k],
                        w_use_grad,
                        h.eps_w[k],
                        h.mom_w[k],
                        h.wc[k],
                    ));
                }
                // Biases: useGrad, no weight decay in either generation.
                b = Some(one(
                    l.biases.as_ref().unwrap(),
                    l.biases_inc.as_ref().unwrap(),
                    bwd.dbiases[li].as_ref().unwrap(),
                    true,
                    h.eps_b,
                    h.mom_b,
                    0.0,
                ));
            }
            weights.push(ws);
            biases.push(b);
        }
        Expect {
            acts: fwd.acts.clone(),
            acts_grad: bwd
                .dacts
                .iter()
                .map(|g| g.iter().map(|v| -v).collect())
                .collect(),
            weights,
            biases,
        }
    }
}
