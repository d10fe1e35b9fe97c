//! The 2012 additions to `ConvNet` (tests/data/a12/): the cost layers `cost.crossent`,
//! `cost.crossent2` (fused into a lone logistic layer, or "the stupid way" with its
//! sign bug), `cost.rflickr`, `cost.gsum2`, `cost.tica`, `cost.msm`; the multiview
//! protocol of `cost.logreg` and the feature pass; the layers `href`, `rscale` and
//! `treefc`; `constrainWeights` and the `superEps` update.
//!
//! Every formula is checked against an independent float64 computation here (from the
//! net's own inputs and activations, never through the crate's kernels), and
//! `ConvNet::check_gradients` runs wherever the layer has a real gradient.
//!
//! Tolerances: the f32 net against f64 formulas of a few terms: `1e-5` of the largest
//! value (f32 roundoff 6e-8 times sums of at most a few hundred terms, and the fast
//! intrinsics `__logf`/`__fdividef` at a few ulp); `cost.msm` `2e-4` (its lattice
//! approximates `log(1 + e^-d)` by `e^-d` for `d > 5`: up to `e^-10/2` per step).

use convnet::config::value::{Array, Value};
use convnet::config::{self, Generation, Model};
use convnet::layers::lr::GlibcRandom;
use convnet::net::{ConvNet, NetOptions, Pass};
use convnet::nvmatrix::NvMatrix;
use convnet::synthetic::uniform;
use std::path::PathBuf;

const SEED: u64 = 7;

fn model(data_dims: &[i64], num_classes: i64) -> Model {
    Model {
        data_dims: data_dims.to_vec(),
        num_classes,
        num_gpus: 2,
        conserve_mem: 0,
        seed: SEED,
    }
}

/// `tests/data/a12/<name>.cfg` with `<name>-params.cfg`, 2012 format.
fn parse(name: &str, m: &Model) -> config::Net {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/a12");
    let mut log = Vec::new();
    config::parse_layers(
        Generation::A12,
        &dir.join(format!("{name}.cfg")),
        &dir.join(format!("{name}-params.cfg")),
        m,
        &mut log,
    )
    .unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn build(cfg: &config::Net, minibatch_size: usize) -> ConvNet {
    let opts = NetOptions {
        minibatch_size,
        wupdate_freq: 1,
        random_seed: SEED,
    };
    ConvNet::new(cfg, opts).unwrap_or_else(|e| panic!("{e}"))
}

/// A `(rows, cases)` data matrix.
fn mat(rows: usize, cases: usize, v: Vec<f32>) -> NvMatrix {
    NvMatrix::from_vec(rows, cases, false, v)
}

/// Class indices `(1, cases)` in `0..classes`.
fn labels(seed: u64, cases: usize, classes: usize) -> Vec<f32> {
    uniform(seed, cases, 0.0, classes as f32)
        .into_iter()
        .map(f32::floor)
        .collect()
}

/// `m` as `(rows, cols)` row-major f64, whichever orientation the net keeps it in
/// (the trans layers hold `(cases, outputs)` column-major views of the same memory).
fn logical(what: &str, m: &NvMatrix, rows: usize, cols: usize) -> Vec<f64> {
    let at = |i, j| -> f64 {
        if (m.rows(), m.cols()) == (rows, cols) {
            m.get(i, j) as f64
        } else if (m.rows(), m.cols()) == (cols, rows) {
            m.get(j, i) as f64
        } else {
            panic!("{what}: {}x{}, expected {rows}x{cols}", m.rows(), m.cols())
        }
    };
    (0..rows)
        .flat_map(|i| (0..cols).map(move |j| (i, j)))
        .map(|(i, j)| at(i, j))
        .collect()
}

fn acts(net: &ConvNet, layer: &str, rows: usize, cols: usize) -> Vec<f64> {
    logical(layer, &net.acts(layer).expect(layer), rows, cols)
}

fn grad(net: &ConvNet, layer: &str, rows: usize, cols: usize) -> Vec<f64> {
    let what = format!("{layer} acts grad");
    logical(&what, &net.acts_grad(layer).expect(layer), rows, cols)
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// `|got - want| <= tol * max|want|` element-wise (plus 1e-12).
fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * scale + 1e-12,
            "{what}[{i}]: {g} vs {w} (scale {scale})"
        );
    }
}

fn cost_of(net: &ConvNet, layer: &str) -> Vec<f64> {
    net.cost().values[layer].1.clone()
}

/// Runs the gradient check and asserts every test passed. As `checkGradients`, on a
/// net that has not back-propagated since its last update (gradients of an earlier
/// bprop would add to the check's: a shared matrix's rule).
fn gradients_pass(net: &mut ConvNet, data: &[NvMatrix]) -> String {
    let mut out = Vec::new();
    let s = net.check_gradients(data, &mut out).unwrap();
    let report = String::from_utf8(out).unwrap();
    assert_eq!(s.failures, 0, "{report}");
    assert!(s.tests > 0);
    report
}

// ---------------------------------------------------------------------------------
// Cost layers
// ---------------------------------------------------------------------------------

const N: usize = 16;

/// data (12, N) in [-1, 1), targets (4, N) in [0, 1) with about half exact zeros,
/// labels (1, N) in 0..4.
fn cost_data() -> Vec<NvMatrix> {
    let t = uniform(SEED + 2, 4 * N, -1.0, 1.0)
        .into_iter()
        .map(|u| u.max(0.0))
        .collect();
    vec![
        mat(12, N, uniform(SEED + 1, 12 * N, -1.0, 1.0)),
        mat(4, N, t),
        mat(1, N, labels(SEED + 3, N, 4)),
    ]
}

fn costs_net() -> (config::Net, ConvNet) {
    let cfg = parse("costs", &model(&[12, 4, 1], 4));
    let net = build(&cfg, N);
    (cfg, net)
}

/// `P(i ∈ S)` over the `size`-subsets `S` weighted by `exp(Σ_S e)` (those containing
/// `fixed` only, if given), by enumeration.
fn subset_marginals(e: &[f64], size: usize, fixed: Option<usize>) -> Vec<f64> {
    let n = e.len();
    let (mut z, mut m) = (0.0, vec![0.0; n]);
    for mask in 0u32..1 << n {
        if mask.count_ones() as usize != size || fixed.is_some_and(|f| mask & 1 << f == 0) {
            continue;
        }
        let w = (0..n)
            .filter(|i| mask & 1 << i != 0)
            .map(|i| e[i])
            .sum::<f64>()
            .exp();
        z += w;
        for (i, mi) in m.iter_mut().enumerate() {
            if mask & 1 << i != 0 {
                *mi += w;
            }
        }
    }
    m.iter().map(|x| x / z).collect()
}

/// The rank errors of one case: top-1 (`1/#ties` when the label's score is the
/// maximum) and top-`k` (all of it if the label fits among the `k` best, sharing the
/// last slots with its ties).
fn rank_correct(scores: &[f64], label: usize, k: usize) -> (f64, f64) {
    let l = scores[label];
    let bigger = scores.iter().filter(|&&s| s > l).count() as f64;
    let equal = scores.iter().filter(|&&s| s == l).count() as f64;
    let top1 = if bigger == 0.0 { 1.0 / equal } else { 0.0 };
    let slots = k as f64 - bigger;
    let topk = if slots <= 0.0 {
        0.0
    } else if equal <= slots {
        1.0
    } else {
        slots / equal
    };
    (top1, topk)
}

#[test]
fn cost_layers_match_float64_and_their_gradients_check() {
    let (_, mut net) = costs_net();
    let data = cost_data();
    net.fprop(&data, Pass::Train).unwrap();
    net.bprop(Pass::Train).unwrap();
    let t = f64s(data[1].data());
    let lab: Vec<usize> = data[2].data().iter().map(|&l| l as usize).collect();
    let tol = 1e-5;

    // crossent2, fused into sigA: the cost layer writes nothing, the neuron layer
    // writes coeff * (t - y) into fcA's gradient.
    let c = 0.5;
    let y = acts(&net, "sigA", 4, N);
    let ce2: f64 = t
        .iter()
        .zip(&y)
        .map(|(t, y)| t * y.ln() + (1.0 - t) * (1.0 - y).ln())
        .sum();
    close("ce2 cost", &cost_of(&net, "ce2"), &[-ce2], tol);
    let want: Vec<f64> = t.iter().zip(&y).map(|(t, y)| c * (t - y)).collect();
    close(
        "fused crossent2 gradient",
        &grad(&net, "fcA", 4, N),
        &want,
        tol,
    );
    assert!(
        net.acts_grad("sigA").unwrap().is_empty(),
        "ce2 wrote a gradient"
    );

    // rflickr: Σ log(1 + d²), gradient -coeff * 2d / (1 + d²), d = y - t.
    let c = 2.0;
    let y = acts(&net, "sigB", 4, N);
    let d: Vec<f64> = y.iter().zip(&t).map(|(y, t)| y - t).collect();
    let cost: f64 = d.iter().map(|d| (1.0 + d * d).ln()).sum();
    close("rflickr cost", &cost_of(&net, "flickr"), &[cost], tol);
    let want: Vec<f64> = d.iter().map(|d| -c * 2.0 * d / (1.0 + d * d)).collect();
    close("rflickr gradient", &grad(&net, "sigB", 4, N), &want, tol);

    // crossent: [-Σ t log y, N - Σ correct]; gradient coeff * t / y.
    let c = 1.5;
    let y = acts(&net, "probsC", 4, N);
    let nll: f64 = -t.iter().zip(&y).map(|(t, y)| t * y.ln()).sum::<f64>();
    let correct: f64 = (0..N)
        .map(|j| {
            let col: Vec<f64> = (0..4).map(|k| y[k * N + j]).collect();
            let max = col.iter().cloned().fold(f64::MIN, f64::max);
            let ties = col.iter().filter(|&&v| v == max).count() as f64;
            let hit = (0..4).any(|k| col[k] == max && t[k * N + j] > 0.0);
            if hit {
                1.0 / ties
            } else {
                0.0
            }
        })
        .sum();
    assert!(
        correct > 0.0 && correct < N as f64,
        "a test of both outcomes"
    );
    close(
        "crossent cost",
        &cost_of(&net, "ce"),
        &[nll, N as f64 - correct],
        tol,
    );
    let want: Vec<f64> = t.iter().zip(&y).map(|(t, y)| c * t / y).collect();
    close("crossent gradient", &grad(&net, "probsC", 4, N), &want, tol);

    // gsum2: Σ_c g_c Σ_i x_ic²; gradients -coeff Σ_i x² (gates), -2 coeff g x.
    let c = 0.3;
    let (g, x) = (acts(&net, "fcD", 1, N), acts(&net, "fcE", 3, N));
    let sq: Vec<f64> = (0..N)
        .map(|j| (0..3).map(|i| x[i * N + j].powi(2)).sum())
        .collect();
    let cost: f64 = (0..N).map(|j| g[j] * sq[j]).sum();
    close("gsum2 cost", &cost_of(&net, "gated"), &[cost], tol);
    let want: Vec<f64> = sq.iter().map(|s| -c * s).collect();
    close("gsum2 gate gradient", &grad(&net, "fcD", 1, N), &want, tol);
    let want: Vec<f64> = (0..3 * N).map(|k| -2.0 * c * g[k % N] * x[k]).collect();
    close("gsum2 input gradient", &grad(&net, "fcE", 3, N), &want, tol);

    // msm: the marginals, [-Σ log P(label ∈ S), top-1 and top-2 errors by energy];
    // gradient coeff * (P(i ∈ S | label ∈ S) - P(i ∈ S)).
    let (c, tol_msm) = (0.7, 2e-4);
    let e = acts(&net, "fcF", 4, N);
    let (mut marg, mut grad_want) = (vec![0.0; 4 * N], vec![0.0; 4 * N]);
    let (mut nll, mut top1, mut top2) = (0.0, 0.0, 0.0);
    for j in 0..N {
        let col: Vec<f64> = (0..4).map(|k| e[k * N + j]).collect();
        let free = subset_marginals(&col, 2, None);
        let fixed = subset_marginals(&col, 2, Some(lab[j]));
        for k in 0..4 {
            marg[k * N + j] = free[k];
            grad_want[k * N + j] = c * (fixed[k] - free[k]);
        }
        nll -= free[lab[j]].ln();
        let (a, b) = rank_correct(&col, lab[j], 2);
        top1 += a;
        top2 += b;
    }
    close("msm marginals", &acts(&net, "msm", 4, N), &marg, tol_msm);
    let want = [nll, N as f64 - top1, N as f64 - top2];
    close("msm cost", &cost_of(&net, "msm"), &want, tol_msm);
    close(
        "msm gradient",
        &grad(&net, "fcF", 4, N),
        &grad_want,
        tol_msm,
    );

    gradients_pass(&mut costs_net().1, &data);
}

#[test]
fn crossent2_across_gpus_takes_the_stupid_way_with_its_sign_bug() {
    let cfg = parse("crossent2-gpus", &model(&[12, 4], 4));
    let mut net = build(&cfg, N);
    let data = &cost_data()[..2];
    net.fprop(data, Pass::Train).unwrap();
    net.bprop(Pass::Train).unwrap();
    let (c, t, y) = (0.5, f64s(data[1].data()), acts(&net, "sig", 4, N));
    // The original's formula: + (1-t)/(1-y) where the derivative has a minus.
    let v: Vec<f64> = t
        .iter()
        .zip(&y)
        .map(|(t, y)| c * (t / y + (1.0 - t) / (1.0 - y)))
        .collect();
    close(
        "crossent2 gradient (BUG)",
        &grad(&net, "sig", 4, N),
        &v,
        1e-5,
    );
    // Then the logistic layer's own backward pass: v * y * (1 - y).
    let want: Vec<f64> = v.iter().zip(&y).map(|(v, y)| v * y * (1.0 - y)).collect();
    close("through the logistic", &grad(&net, "fc", 4, N), &want, 1e-5);
    // The wrong sign shows in the gradient check.
    let mut fresh = build(&cfg, N);
    let mut out = Vec::new();
    let s = fresh.check_gradients(data, &mut out).unwrap();
    assert!(s.failures > 0, "{}", String::from_utf8_lossy(&out));
}

#[test]
fn crossent_on_a_lone_softmax_leaves_it_without_a_gradient() {
    // costs.cfg without probsC's second consumer: cost.crossent leaves the gradient
    // to the softmax, which only fuses cost.logreg (BUG): its backward pass finds no
    // gradient to start from.
    let mut cfg = parse("costs", &model(&[12, 4, 1], 4));
    cfg.layers
        .retain(|d| d.get("name").and_then(Value::as_str) != Some("probsC_sq"));
    let mut net = build(&cfg, N);
    net.fprop(&cost_data(), Pass::Train).unwrap();
    let e = net.bprop(Pass::Train).unwrap_err();
    assert_eq!(e.layer.as_deref(), Some("probsC"), "{e}");
}

#[test]
fn tica_cost_and_its_half_finished_gradient() {
    let cfg = parse("tica", &model(&[12], 4));
    let mut net = build(&cfg, N);
    let data = &cost_data()[..1];
    net.fprop(data, Pass::Train).unwrap();
    net.bprop(Pass::Train).unwrap();
    let (ch, side, size, c) = (16, 4, 3usize, 0.4);
    let x = acts(&net, "fc", ch * side * side, N);
    let at = |k: usize, py: usize, px: usize, j: usize| (k * side * side + py * side + px) * N + j;
    // The forward window [p - size/2, p - size/2 + size) of each channel, clipped.
    let window = |p: usize| p.saturating_sub(size / 2)..(p + size - size / 2).min(side);
    let pool = |m: &[f64], sq: bool| -> Vec<f64> {
        let mut out = vec![0.0; m.len()];
        for k in 0..ch {
            for py in 0..side {
                for px in 0..side {
                    for j in 0..N {
                        let mut s = 0.0;
                        for wy in window(py) {
                            for wx in window(px) {
                                let v = m[at(k, wy, wx, j)];
                                s += if sq { v * v } else { v };
                            }
                        }
                        out[at(k, py, px, j)] = s;
                    }
                }
            }
        }
        out
    };
    // acts = 1 / (0.001 + sqrt(Σ_window x²)); the cost is their sum ("wrong").
    let ticas: Vec<f64> = pool(&x, true)
        .iter()
        .map(|s| 1.0 / (0.001 + s.sqrt()))
        .collect();
    close(
        "tica acts",
        &acts(&net, "tica", ch * side * side, N),
        &ticas,
        1e-5,
    );
    close(
        "tica cost",
        &cost_of(&net, "tica"),
        &[ticas.iter().sum()],
        1e-5,
    );
    // Gradient (scaleTargets 0): -coeff * x * Σ_window acts.
    let want: Vec<f64> = pool(&ticas, false)
        .iter()
        .zip(&x)
        .map(|(s, x)| -c * x * s)
        .collect();
    close(
        "tica gradient",
        &grad(&net, "fc", ch * side * side, N),
        &want,
        1e-5,
    );
}

// ---------------------------------------------------------------------------------
// Workers: multiview test, features
// ---------------------------------------------------------------------------------

const VIEWS: usize = 3;
const REAL: usize = 10;

/// `VIEWS` view-major blocks of `REAL` cases; the labels repeat per view.
fn mv_data() -> Vec<NvMatrix> {
    let l = labels(SEED + 5, REAL, 5);
    let tiled: Vec<f32> = (0..VIEWS).flat_map(|_| l.iter().copied()).collect();
    vec![
        mat(
            12,
            VIEWS * REAL,
            uniform(SEED + 4, 12 * VIEWS * REAL, -1.0, 1.0),
        ),
        mat(1, VIEWS * REAL, tiled),
    ]
}

fn slice_cases(data: &[NvMatrix], s: usize, e: usize) -> Vec<NvMatrix> {
    data.iter()
        .map(|m| {
            let mut t = NvMatrix::default();
            m.slice_cols(s, Some(e), &mut t).unwrap();
            t
        })
        .collect()
}

#[test]
fn multiview_2012_averages_the_views_in_the_logreg_layer() {
    let cfg = parse("mv", &model(&[12, 1], 5));
    let data = mv_data();
    let (mb, k) = (4, 5);
    let mut net = build(&cfg, mb);
    let (cost, probs) = net
        .multiview_test_2012(&data, VIEWS, Some("logprob"))
        .unwrap();
    let probs = probs.expect("the averaged probabilities");

    // Reference: each view's softmax output from a plain test pass (the multiview
    // passes compute the same below the cost layer), averaged in f64.
    let mut avg = vec![0.0; REAL * k];
    for v in 0..VIEWS {
        net.fprop(&slice_cases(&data, v * REAL, (v + 1) * REAL), Pass::Test)
            .unwrap();
        let p = acts(&net, "probs", k, REAL);
        for c in 0..REAL {
            for j in 0..k {
                avg[c * k + j] += p[j * REAL + c] / VIEWS as f64;
            }
        }
    }
    close(
        "averaged probs",
        &logical("probs", &probs, REAL, k),
        &avg,
        1e-6,
    );
    let lab = data[1].data();
    let (mut nll, mut top1, mut top2) = (0.0, 0.0, 0.0);
    for c in 0..REAL {
        let row = &avg[c * k..(c + 1) * k];
        nll -= row[lab[c] as usize].ln();
        let (a, b) = rank_correct(row, lab[c] as usize, 2);
        top1 += a;
        top2 += b;
    }
    assert!(top1 > 0.0 && top2 > top1 && top2 < REAL as f64);
    let want = [nll, REAL as f64 - top1, REAL as f64 - top2];
    close("multiview costs", &cost.values["logprob"].1, &want, 1e-5);
    // One cost per minibatch of real cases, counting the last view's cases.
    assert_eq!(cost.num_cases, REAL);

    // The generic entry point runs the 2012 protocol for a 2012 net.
    let again = net.multiview_test(&data, VIEWS, "logprob").unwrap();
    assert_eq!(again, cost);

    // One view is only ever a START: the logreg layer never computes (edge case).
    let mut fresh = build(&cfg, mb);
    let (one, _) = fresh
        .multiview_test_2012(&slice_cases(&data, 0, REAL), 1, None)
        .unwrap();
    assert!(one.values["logprob"].1.is_empty());
}

#[test]
fn feature_pass_collects_several_layers() {
    let cfg = parse("mv", &model(&[12, 1], 5));
    let data = slice_cases(&mv_data(), 0, REAL);
    let mut net = build(&cfg, 4);
    let (cost, f) = net.features_of(&data, &["fc2", "probs"]).unwrap();
    assert_eq!(cost.num_cases, REAL);
    // PASS_FEATURE_GEN scales the dropout layer by keep, as a test pass does.
    net.fprop(&data, Pass::Test).unwrap();
    for (layer, m) in ["fc2", "probs"].iter().zip(&f) {
        let want = acts(&net, layer, 5, REAL);
        let got = logical(layer, m, REAL, 5);
        for c in 0..REAL {
            for j in 0..5 {
                assert_eq!(got[c * 5 + j], want[j * REAL + c], "{layer}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// href, rscale
// ---------------------------------------------------------------------------------

/// data (108, N): 3 channels of 6x6; labels in 0..4.
fn image_data() -> Vec<NvMatrix> {
    vec![
        mat(108, N, uniform(SEED + 6, 108 * N, -1.0, 1.0)),
        mat(1, N, labels(SEED + 7, N, 4)),
    ]
}

/// Row `(c, y, x)` of a `(channels * side², N)` image matrix, mirrored in x.
fn mirrored(m: &[f64], channels: usize, side: usize) -> Vec<f64> {
    let mut out = vec![0.0; m.len()];
    for c in 0..channels {
        for y in 0..side {
            for x in 0..side {
                let (to, from) = (
                    (c * side + y) * side + x,
                    (c * side + y) * side + side - 1 - x,
                );
                out[to * N..(to + 1) * N].copy_from_slice(&m[from * N..(from + 1) * N]);
            }
        }
    }
    out
}

#[test]
fn href_mirrors_forward_and_backward() {
    let cfg = parse("href", &model(&[12, 1], 4));
    let mut net = build(&cfg, N);
    let data = [cost_data().swap_remove(0), image_data().swap_remove(1)];
    net.fprop(&data, Pass::Train).unwrap();
    net.bprop(Pass::Train).unwrap();
    let x = acts(&net, "fc0", 32, N);
    assert_eq!(acts(&net, "mirror", 32, N), mirrored(&x, 2, 4));
    let v = grad(&net, "mirror", 32, N);
    assert_eq!(grad(&net, "fc0", 32, N), mirrored(&v, 2, 4));
    gradients_pass(&mut build(&cfg, N), &data);
}

/// Bilinear interpolation as `convResizeBilinear` samples (output pixel `p` reads
/// `p * scale + img/2 - out/2 * scale`, clamped to `[0, img - 1.01]`), in f64.
fn resize(m: &[f64], channels: usize, img: usize, out: usize, scale: f64) -> Vec<f64> {
    let center = img as f64 / 2.0 - out as f64 / 2.0 * scale;
    let coord = |p: usize| (p as f64 * scale + center).clamp(0.0, img as f64 - 1.01);
    let mut r = vec![0.0; channels * out * out * N];
    for c in 0..channels {
        for py in 0..out {
            for px in 0..out {
                let (sy, sx) = (coord(py), coord(px));
                let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
                let (fy, fx) = (sy - y0 as f64, sx - x0 as f64);
                let at = |y: usize, x: usize, j: usize| m[((c * img + y) * img + x) * N + j];
                for j in 0..N {
                    let top = (1.0 - fx) * at(y0, x0, j) + fx * at(y0, x0 + 1, j);
                    let bottom = (1.0 - fx) * at(y0 + 1, x0, j) + fx * at(y0 + 1, x0 + 1, j);
                    r[((c * out + py) * out + px) * N + j] = (1.0 - fy) * top + fy * bottom;
                }
            }
        }
    }
    r
}

/// The `size x size` window at `(y0, x0)` of each channel.
fn crop(m: &[f64], channels: usize, img: usize, size: usize, y0: usize, x0: usize) -> Vec<f64> {
    let mut r = Vec::with_capacity(channels * size * size * N);
    for c in 0..channels {
        for y in 0..size {
            for x in 0..size {
                let from = (c * img + y0 + y) * img + x0 + x;
                r.extend_from_slice(&m[from * N..(from + 1) * N]);
            }
        }
    }
    r
}

#[test]
fn rscale_draws_a_scale_and_a_crop_in_training_only() {
    let cfg = parse("rscale", &model(&[108, 1], 4));
    let mut net = build(&cfg, N);
    let data = image_data();
    let x = f64s(data[0].data());
    let (img, tgt) = (6usize, 4usize);
    // The same libc rand() stream (glibc's random()): randf = (float)rand() / RAND_MAX.
    let mut libc = GlibcRandom::new(SEED as u32);
    let randf = |g: &mut GlibcRandom| g.random() as f32 / 2_147_483_647f32;
    let mut sizes = Vec::new();
    for _ in 0..12 {
        net.fprop(&data, Pass::Train).unwrap();
        // Scale s (size 4 + s) with probability (s+1)² / (1 + 4 + 9), cumulatively.
        let r = randf(&mut libc) as f64;
        let mut cum = 0.0;
        let s = (0..3usize)
            .find(|&s| {
                cum += ((s + 1) * (s + 1)) as f64 / 14.0;
                r <= cum
            })
            .expect("the probabilities sum to 1");
        let size = tgt + s;
        let (end, start) = (
            img as f64 / size as f64,
            (img as f64 / (size + 1) as f64).max(1.0),
        );
        let scale = start + randf(&mut libc) as f64 * (end - start);
        let span = (1 + size - tgt) as u32;
        let y0 = (libc.random() % span) as usize;
        let x0 = (libc.random() % span) as usize;
        let want = if size == img {
            crop(&x, 3, img, tgt, y0, x0)
        } else {
            crop(&resize(&x, 3, img, size, scale), 3, size, tgt, y0, x0)
        };
        close(
            "rscale crop",
            &acts(&net, "rs", 3 * tgt * tgt, N),
            &want,
            1e-5,
        );
        sizes.push(size);
    }
    assert!(
        sizes.contains(&6) && sizes.iter().any(|&s| s < 6),
        "{sizes:?}"
    );
    // The gradient check and feature passes leave the crop as it was; a test pass
    // copies the whole image (the bit-test BUG), which the fc layer cannot take.
    let last = acts(&net, "rs", 3 * tgt * tgt, N);
    for pass in [Pass::Gc, Pass::FeatureGen] {
        net.fprop(&data, pass).unwrap();
        assert_eq!(acts(&net, "rs", 3 * tgt * tgt, N), last);
    }
    for pass in [Pass::Test, Pass::MultiviewTestStart] {
        assert!(net.fprop(&data, pass).is_err());
        assert_eq!(net.acts("rs").unwrap().len(), 3 * img * img * N);
    }
}

// ---------------------------------------------------------------------------------
// treefc
// ---------------------------------------------------------------------------------

/// Leaves 0..3; node 4 over 0, 1; node 5 over 2, 3; the root 6 over 4, 5.
const TREE: [&[i64]; 7] = [&[], &[], &[], &[], &[0, 1], &[2, 3], &[4, 5]];
const PARENT: [Option<usize>; 7] = [Some(4), Some(4), Some(5), Some(5), Some(6), Some(6), None];
const LEAVES_UNDER: [f64; 7] = [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 4.0];

fn layer_mut<'a>(cfg: &'a mut config::Net, name: &str) -> &'a mut config::value::Dict {
    cfg.layers
        .iter_mut()
        .find(|d| d.get("name").and_then(Value::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no layer {name}"))
}

/// tree.cfg with fcT made a treefc layer: the tree, its root, one output (and bias)
/// per leaf; the weights keep a column per node.
fn tree_cfg() -> config::Net {
    let mut cfg = parse("tree", &model(&[12, 1], 7));
    let d = layer_mut(&mut cfg, "fcT");
    d.insert("type".into(), Value::Str("treefc".into()));
    let tree = TREE
        .iter()
        .map(|kids| Value::List(kids.iter().map(|&k| Value::Int(k)).collect()))
        .collect();
    d.insert("tree".into(), Value::List(tree));
    d.insert("rootLabel".into(), Value::Int(6));
    d.insert("outputs".into(), Value::Int(4));
    for key in ["biases", "biasesInc"] {
        let b = Array::filled(1, 4, true, 0.1);
        d.insert(key.into(), Value::Array(b));
    }
    cfg
}

/// A `(rows, cols)` weight matrix as f64 rows.
fn weights_f64(m: &NvMatrix) -> Vec<Vec<f64>> {
    (0..m.rows())
        .map(|i| (0..m.cols()).map(|j| m.get(i, j) as f64).collect())
        .collect()
}

/// The leaves' effective weights: each the sum of the raw weights on its root path.
fn effective(w: &[Vec<f64>]) -> Vec<Vec<f64>> {
    w.iter()
        .map(|row| {
            (0..4)
                .map(|leaf| {
                    let (mut s, mut n) = (0.0, Some(leaf));
                    while let Some(k) = n {
                        s += row[k];
                        n = PARENT[k];
                    }
                    s
                })
                .collect()
        })
        .collect()
}

/// `x · W + b` for `x` (6, N) row-major, `W` (6, 4), `b` the biases: (4, N).
fn fc_f64(x: &[f64], w: &[Vec<f64>], b: &NvMatrix) -> Vec<f64> {
    let mut out = vec![0.0; 4 * N];
    for k in 0..4 {
        for j in 0..N {
            out[k * N + j] =
                b.get(0, k) as f64 + (0..6).map(|i| x[i * N + j] * w[i][k]).sum::<f64>();
        }
    }
    out
}

#[test]
fn treefc_uses_path_sums_and_updates_every_node() {
    let cfg = tree_cfg();
    let data = [
        cost_data().swap_remove(0),
        mat(1, N, labels(SEED + 8, N, 4)),
    ];
    let mut net = build(&cfg, N);
    net.fprop(&data, Pass::Train).unwrap();
    let x = acts(&net, "fc0_neuron", 6, N);
    let (w0, b0) = {
        let v = net.weights("fcT", 0).unwrap();
        (weights_f64(v.w), net.biases("fcT").unwrap().w.clone())
    };
    assert_eq!((w0.len(), w0[0].len()), (6, 7), "a column per node");
    let out = fc_f64(&x, &effective(&w0), &b0);
    close("treefc acts", &acts(&net, "fcT", 4, N), &out, 1e-5);

    // One update: the leaves' gradients (1/N Σ x v) go up the tree (a node's is the sum
    // of its children's), then inc = mom*inc + eps/n (grad - wc/n w) with n the leaves
    // under the node, w += inc.
    net.bprop(Pass::Train).unwrap();
    let (g, inc0) = {
        let v = net.weights("fcT", 0).unwrap();
        (weights_f64(v.grad), weights_f64(v.inc))
    };
    net.update_weights(0.0).unwrap();
    let (mom, eps, wc) = (0.9, 0.01f32 as f64, 0.0005f32 as f64);
    let mut g = g;
    for row in &mut g {
        row[4] = row[0] + row[1];
        row[5] = row[2] + row[3];
        row[6] = row[4] + row[5];
    }
    let (mut inc1, mut w1) = (w0.clone(), w0.clone());
    for i in 0..6 {
        for k in 0..7 {
            let n = LEAVES_UNDER[k];
            inc1[i][k] = mom * inc0[i][k] + eps / n * (g[i][k] - wc / n * w0[i][k]);
            w1[i][k] = w0[i][k] + inc1[i][k];
        }
    }
    let v = net.weights("fcT", 0).unwrap();
    let flat = |m: &[Vec<f64>]| m.concat();
    close(
        "tree increments",
        &flat(&weights_f64(v.inc)),
        &flat(&inc1),
        1e-5,
    );
    close("tree weights", &flat(&weights_f64(v.w)), &flat(&w1), 1e-6);
    // The effective weights are rebuilt after the update.
    let b1 = net.biases("fcT").unwrap().w.clone();
    net.fprop(&data, Pass::Test).unwrap();
    let x = acts(&net, "fc0_neuron", 6, N);
    let out = fc_f64(&x, &effective(&w1), &b1);
    close(
        "treefc acts after the update",
        &acts(&net, "fcT", 4, N),
        &out,
        1e-5,
    );

    // The check perturbs every node (the effective weights are rebuilt in each
    // gradient-check fprop, the gradients distributed in its bprop).
    let report = gradients_pass(&mut build(&cfg, N), &data);
    assert!(
        report.contains("(PASS) fcT weights GRADIENT CHECK"),
        "{report}"
    );
}

// ---------------------------------------------------------------------------------
// constrainWeights, superEps
// ---------------------------------------------------------------------------------

/// The midpoint between the `k`-th and `k+1`-th smallest of `v`.
fn between(v: &[f64], k: usize) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (s[k] + s[k + 1]) / 2.0
}

/// Column `j` of `w`.
fn column(w: &[Vec<f64>], j: usize) -> Vec<f64> {
    w.iter().map(|r| r[j]).collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `sqrt(Σ (w - mean)²) / n` of a filter: the conv constraint's "spread".
fn spread(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    norm(&v.iter().map(|x| x - mean).collect::<Vec<_>>()) / v.len() as f64
}

/// Scales `v` to length `r` if it is longer; returns whether it did.
fn into_ball(v: &mut [f64], r: f64) -> bool {
    let n = norm(v);
    if n > r {
        v.iter_mut().for_each(|x| *x *= r / n);
    }
    n > r
}

/// The conv rule: the spread into `[min, max]`, then the ball; per filter (column).
/// Returns the columns and how many filters each rule scaled.
fn conv_rule(w: &[Vec<f64>], min: f64, max: f64, r: f64) -> (Vec<Vec<f64>>, [usize; 3]) {
    let mut count = [0; 3];
    let cols = (0..w[0].len())
        .map(|j| {
            let mut c = column(w, j);
            let a = spread(&c);
            let f = if a < min {
                count[0] += 1;
                min / a
            } else if a > max {
                count[1] += 1;
                max / a
            } else {
                1.0
            };
            c.iter_mut().for_each(|x| *x *= f);
            count[2] += into_ball(&mut c, r) as usize;
            c
        })
        .collect();
    (cols, count)
}

fn set_floats(cfg: &mut config::Net, layer: &str, key: &str, v: f64) {
    layer_mut(cfg, layer).insert(key.into(), Value::List(vec![Value::Float(v)]));
}

fn weights_of(cfg: &config::Net, layer: &str) -> Vec<Vec<f64>> {
    let d = cfg
        .layers
        .iter()
        .find(|d| d.get("name").and_then(Value::as_str) == Some(layer))
        .unwrap();
    let Some(Value::List(l)) = d.get("weights") else {
        panic!("{layer} has no weights")
    };
    let Value::Array(a) = &l[0] else { panic!() };
    let at = |i: usize, j: usize| {
        if a.fortran {
            a.data[j * a.rows + i]
        } else {
            a.data[i * a.cols + j]
        }
    };
    (0..a.rows)
        .map(|i| (0..a.cols).map(|j| at(i, j) as f64).collect())
        .collect()
}

/// Per module of `per` rows, per filter: the weight vectors of a local layer.
fn local_filters(w: &[Vec<f64>], per: usize) -> Vec<Vec<f64>> {
    (0..w.len() / per)
        .flat_map(|m| (0..w[0].len()).map(move |f| (m, f)))
        .map(|(m, f)| (0..per).map(|p| w[m * per + p][f]).collect())
        .collect()
}

/// constrain.cfg with bounds and radii between the initial weights' values.
fn constrain_cfg() -> config::Net {
    let mut cfg = parse("constrain", &model(&[48, 1], 4));
    let w = weights_of(&cfg, "conv1");
    let spreads: Vec<f64> = (0..16).map(|j| spread(&column(&w, j))).collect();
    let (min, max) = (between(&spreads, 3), between(&spreads, 11));
    let (scaled, _) = conv_rule(&w, min, max, f64::INFINITY);
    let norms: Vec<f64> = scaled.iter().map(|c| norm(c)).collect();
    set_floats(&mut cfg, "conv1", "wcNormMin", min);
    set_floats(&mut cfg, "conv1", "wcNormMax", max);
    set_floats(&mut cfg, "conv1", "wballNormed", between(&norms, 7));
    let w = weights_of(&cfg, "local2");
    let norms: Vec<f64> = local_filters(&w, 144).iter().map(|f| norm(f)).collect();
    set_floats(&mut cfg, "local2", "wballNormed", between(&norms, 127));
    let w = weights_of(&cfg, "fc3");
    let norms: Vec<f64> = (0..4).map(|j| norm(&column(&w, j))).collect();
    set_floats(&mut cfg, "fc3", "wballNormed", between(&norms, 1));
    cfg
}

fn radius(cfg: &config::Net, layer: &str, key: &str) -> f64 {
    let d = cfg
        .layers
        .iter()
        .find(|d| d.get("name").and_then(Value::as_str) == Some(layer))
        .unwrap();
    d[key].as_list().unwrap()[0].as_f64().unwrap() as f32 as f64
}

/// `W + inc` as the net adds them (one f32 addition), as f64.
fn stepped(w: &[Vec<f64>], inc: &NvMatrix) -> Vec<Vec<f64>> {
    let inc = weights_f64(inc);
    w.iter()
        .zip(&inc)
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (*x as f32 + *y as f32) as f64)
                .collect()
        })
        .collect()
}

#[test]
fn weights_are_constrained_after_each_update() {
    let cfg = constrain_cfg();
    let data = [
        mat(48, N, uniform(SEED + 9, 48 * N, -1.0, 1.0)),
        mat(1, N, labels(SEED + 10, N, 4)),
    ];
    let mut net = build(&cfg, N);
    let w0: Vec<Vec<Vec<f64>>> = ["conv1", "local2", "fc3"]
        .iter()
        .map(|l| weights_f64(net.weights(l, 0).unwrap().w))
        .collect();
    net.fprop(&data, Pass::Train).unwrap();
    net.bprop(Pass::Train).unwrap();
    net.update_weights(0.0).unwrap();
    let pre: Vec<Vec<Vec<f64>>> = ["conv1", "local2", "fc3"]
        .iter()
        .zip(&w0)
        .map(|(l, w)| stepped(w, net.weights(l, 0).unwrap().inc))
        .collect();
    let tol = 1e-5;
    let flat = |m: &[Vec<f64>]| m.concat();

    // conv1: spread into [wcNormMin, wcNormMax], then the ball.
    let (min, max) = (
        radius(&cfg, "conv1", "wcNormMin"),
        radius(&cfg, "conv1", "wcNormMax"),
    );
    let (cols, count) = conv_rule(&pre[0], min, max, radius(&cfg, "conv1", "wballNormed"));
    assert!(count.iter().all(|&c| c > 0 && c < 16), "{count:?}");
    let want: Vec<Vec<f64>> = (0..pre[0].len())
        .map(|i| cols.iter().map(|c| c[i]).collect())
        .collect();
    let got = weights_f64(net.weights("conv1", 0).unwrap().w);
    close("conv1 constrained", &flat(&got), &flat(&want), tol);

    // local2: each module's filter into the ball.
    let r = radius(&cfg, "local2", "wballNormed");
    let mut filters = local_filters(&pre[1], 144);
    let scaled = filters
        .iter_mut()
        .map(|f| into_ball(f, r))
        .filter(|&s| s)
        .count();
    assert!(scaled > 0 && scaled < filters.len());
    let got = local_filters(&weights_f64(net.weights("local2", 0).unwrap().w), 144);
    close("local2 constrained", &got.concat(), &filters.concat(), tol);

    // fc3: each output's weights into the ball.
    let r = radius(&cfg, "fc3", "wballNormed");
    let mut cols: Vec<Vec<f64>> = (0..4).map(|j| column(&pre[2], j)).collect();
    let scaled = cols
        .iter_mut()
        .map(|c| into_ball(c, r))
        .filter(|&s| s)
        .count();
    assert!(scaled > 0 && scaled < 4);
    let got: Vec<Vec<f64>> = {
        let w = weights_f64(net.weights("fc3", 0).unwrap().w);
        (0..4).map(|j| column(&w, j)).collect()
    };
    close("fc3 constrained", &got.concat(), &cols.concat(), tol);
}

#[test]
fn super_eps_updates_with_running_gradient_averages() {
    let cfg = constrain_cfg();
    let mut net = build(&cfg, N);
    let (mom, super_eps, wc) = (0.9, 0.5, 0.0005f32 as f64);
    // Running averages of the gradient and its square, from zero.
    let (mut gw, mut g2w, mut gb, mut g2b) =
        (vec![0.0; 1024], vec![0.0; 1024], vec![0.0; 4], vec![0.0; 4]);
    for step in 0..2 {
        let data = [
            mat(48, N, uniform(SEED + 11 + step, 48 * N, -1.0, 1.0)),
            mat(1, N, labels(SEED + 13 + step, N, 4)),
        ];
        net.fprop(&data, Pass::Train).unwrap();
        net.bprop(Pass::Train).unwrap();
        let snap = |v: convnet::net::WeightsView| {
            (
                weights_f64(v.w).concat(),
                weights_f64(v.inc).concat(),
                weights_f64(v.grad).concat(),
            )
        };
        let (w0, inc0, g) = snap(net.weights("fc3", 0).unwrap());
        let (_, binc0, bg) = snap(net.biases("fc3").unwrap());
        net.update_weights(0.0).unwrap();
        // With superEps fc3 keeps a gradient: (1/N) Σ, not the rate-scaled increment.
        // G = mom G + (1-mom) g, G2 = mom G2 + (1-mom) g², then
        // inc = 0.9 inc + rate * g / sqrt(G2 - G + superEps) (G where G² was meant),
        // then the weight decay, -wc * rate * w (weights only).
        let rule = |inc0: &[f64],
                    g: &[f64],
                    ga: &mut [f64],
                    g2a: &mut [f64],
                    rate: f64,
                    w: Option<&[f64]>| {
            (0..g.len())
                .map(|k| {
                    ga[k] = mom * ga[k] + (1.0 - mom) * g[k];
                    g2a[k] = mom * g2a[k] + (1.0 - mom) * g[k] * g[k];
                    let v = 0.9 * inc0[k] + rate * g[k] / (g2a[k] - ga[k] + super_eps).sqrt();
                    v - w.map_or(0.0, |w| wc * rate * w[k])
                })
                .collect::<Vec<f64>>()
        };
        let want = rule(&inc0, &g, &mut gw, &mut g2w, 0.01f32 as f64, Some(&w0));
        let got = weights_f64(net.weights("fc3", 0).unwrap().inc).concat();
        close(&format!("fc3 increments, step {step}"), &got, &want, 1e-5);
        let want = rule(&binc0, &bg, &mut gb, &mut g2b, 0.02f32 as f64, None);
        let got = weights_f64(net.biases("fc3").unwrap().inc).concat();
        close(
            &format!("fc3 bias increments, step {step}"),
            &got,
            &want,
            1e-5,
        );
    }
}
