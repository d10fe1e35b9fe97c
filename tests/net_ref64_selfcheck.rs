//! Self-check of the float64 reference (tests/common/ref64.rs) that tests/net_e2e.rs
//! compares the net with: its analytic gradients must match central finite differences
//! of its own forward cost, for every weight matrix, every bias vector and the input,
//! on the 2011 and the 2012 test nets (tests/data/e2e/). Needs no `ConvNet`.
//!
//! Each matrix is checked element by element on up to `PER_MATRIX` elements (all of a
//! small one) and along `DIRECTIONS` random directions over the whole matrix (so every
//! element takes part). Central differences in f64 with step `H`: truncation error
//! O(H²·E''') ~ 1e-10 and rounding error ~ |E|·1e-16/H ~ 1e-9 against gradients of
//! order 0.01-10, so a correct gradient agrees to ~1e-7 relative; a wrong term (a
//! missing factor, a wrong window) shows as O(1e-4) or worse. Relu and max-pooling
//! make the cost piecewise smooth: a difference whose two sides take other branches
//! than the unperturbed pass (`Forward::branches`) is retaken with a smaller step.
//! Each net is checked a second time with the normalisation scales multiplied by
//! `STRONG` (denominators up to ~3 instead of ~1.2), other data and other masks.

mod common;

use common::ref64::{Backward, Inputs, Kind, RefNet};
use convnet::config::{self, Generation, Model};
use std::collections::HashMap;
use std::path::PathBuf;

const CASES: usize = 12;
const H: f64 = 1e-5;
const PER_MATRIX: usize = 60;
const DIRECTIONS: usize = 3;
const STRONG: f64 = 10.0;
/// Allowed error relative to the matrix's largest analytic derivative.
const TOL: f64 = 1e-6;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/e2e")
}

fn parse(gen: Generation) -> config::Net {
    let tag = if gen == Generation::C1 {
        "2011"
    } else {
        "2012"
    };
    let model = Model {
        data_dims: vec![192, 1],
        num_classes: 10,
        num_gpus: 1,
        conserve_mem: 0,
        seed: 7,
    };
    let mut log = Vec::new();
    config::parse_layers(
        gen,
        &data_dir().join(format!("layers-{tag}.cfg")),
        &data_dir().join(format!("params-{tag}.cfg")),
        &model,
        &mut log,
    )
    .unwrap_or_else(|e| panic!("{tag}: {e:?}"))
}

/// Data `(192, cases)` uniform in [-1, 1), labels in 0..10, and dropout masks.
fn inputs(r: &RefNet, seed: u64, cases: usize) -> (Vec<Vec<f64>>, HashMap<String, Vec<f64>>) {
    let data: Vec<f64> = convnet::synthetic::uniform(seed, 192 * cases, -1.0, 1.0)
        .into_iter()
        .map(f64::from)
        .collect();
    let labels: Vec<f64> = convnet::synthetic::uniform(seed + 1, cases, 0.0, 10.0)
        .into_iter()
        .map(|v| (v as f64).floor())
        .collect();
    let mut masks = HashMap::new();
    for l in &r.layers {
        if let Kind::Hs { keep, enable: true } = l.kind {
            let m = convnet::synthetic::uniform(seed + 2, l.outputs * cases, 0.0, 1.0)
                .into_iter()
                .map(|u| ((u as f64) < keep) as i32 as f64)
                .collect();
            masks.insert(l.name.clone(), m);
        }
    }
    (vec![data, labels], masks)
}

/// A parameter (or the input) the check perturbs.
#[derive(Clone, Copy, Debug)]
enum Target {
    Weights(usize, usize),
    Biases(usize),
    Data(usize),
}

fn slot<'a>(r: &'a mut RefNet, data: &'a mut [Vec<f64>], t: Target) -> &'a mut Vec<f64> {
    match t {
        Target::Weights(l, k) => &mut r.layers[l].weights[k].data,
        Target::Biases(l) => &mut r.layers[l].biases.as_mut().unwrap().data,
        Target::Data(i) => &mut data[i],
    }
}

fn analytic(b: &Backward, t: Target) -> Vec<f64> {
    match t {
        Target::Weights(l, k) => b.dweights[l][k].data.clone(),
        Target::Biases(l) => b.dbiases[l].as_ref().unwrap().data.clone(),
        Target::Data(i) => b.ddata[i].clone(),
    }
}

fn cost(r: &RefNet, data: &[Vec<f64>], masks: &HashMap<String, Vec<f64>>) -> (f64, u64) {
    let f = r.forward(&Inputs {
        data,
        cases: CASES,
        masks,
    });
    (f.cost, f.branches)
}

/// Central difference of the cost along `dir`, with the step shrunk until both sides
/// take the same branches (relu sides, pooling arg-maxes) as the unperturbed pass.
fn numeric(
    r: &mut RefNet,
    data: &mut Vec<Vec<f64>>,
    masks: &HashMap<String, Vec<f64>>,
    t: Target,
    dir: &[(usize, f64)],
    base: u64,
) -> f64 {
    let mut h = H;
    for _ in 0..8 {
        let (d, same) = numeric_h(r, data, masks, t, dir, h, base);
        if same {
            return d;
        }
        h /= 4.0;
    }
    panic!("no step keeps {t:?} in one smooth piece");
}

fn numeric_h(
    r: &mut RefNet,
    data: &mut Vec<Vec<f64>>,
    masks: &HashMap<String, Vec<f64>>,
    t: Target,
    dir: &[(usize, f64)],
    h: f64,
    base: u64,
) -> (f64, bool) {
    let orig: Vec<f64> = {
        let s = slot(r, data, t);
        dir.iter().map(|&(i, _)| s[i]).collect()
    };
    let at = |sign: f64, r: &mut RefNet, data: &mut Vec<Vec<f64>>| {
        let s = slot(r, data, t);
        for (&(i, v), o) in dir.iter().zip(&orig) {
            s[i] = o + sign * h * v;
        }
        cost(r, data, masks)
    };
    let (plus, bp) = at(1.0, r, data);
    let (minus, bm) = at(-1.0, r, data);
    let s = slot(r, data, t);
    for (&(i, _), o) in dir.iter().zip(&orig) {
        s[i] = *o;
    }
    ((plus - minus) / (2.0 * h), bp == base && bm == base)
}

/// Checks every target; returns the worst (element-wise, directional) relative errors.
fn check(r: &mut RefNet, what: &str, seed: u64) -> (f64, f64) {
    let (mut data, masks) = inputs(r, seed, CASES);
    let inp = Inputs {
        data: &data,
        cases: CASES,
        masks: &masks,
    };
    let fwd = r.forward(&inp);
    let bwd = r.backward(&fwd, &inp);
    eprintln!(
        "{what}: cost {:.6} over {CASES} cases; margins kink {:.2e} max-pool {:.2e} argmax {:.2e}",
        fwd.cost, fwd.margins.kink, fwd.margins.max_pool, fwd.margins.argmax
    );
    for (li, l) in r.layers.iter().enumerate() {
        if !fwd.denoms[li].is_empty() {
            let d = &fwd.denoms[li];
            let (lo, hi) = d
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            eprintln!("  {}: denominators in [{lo:.4}, {hi:.4}]", l.name);
        }
    }
    let mut targets = Vec::new();
    for (li, l) in r.layers.iter().enumerate() {
        for k in 0..l.weights.len() {
            targets.push((format!("{}.weights[{k}]", l.name), Target::Weights(li, k)));
        }
        if l.biases.is_some() {
            targets.push((format!("{}.biases", l.name), Target::Biases(li)));
        }
        if let Kind::Data { idx: 0 } = l.kind {
            targets.push((format!("{} (input)", l.name), Target::Data(0)));
        }
    }
    let mut rng = convnet::synthetic::SplitMix64::new(seed ^ 0x5eed);
    let (mut worst_el, mut worst_dir) = (0f64, 0f64);
    for (name, t) in targets {
        let ana = analytic(&bwd, t);
        let n = ana.len();
        let scale = ana.iter().fold(0f64, |m, x| m.max(x.abs()));
        assert!(scale > 0.0, "{what} {name}: all-zero gradient");
        let picks: Vec<usize> = if n <= PER_MATRIX {
            (0..n).collect()
        } else {
            (0..PER_MATRIX)
                .map(|_| (rng.next_u64() % n as u64) as usize)
                .collect()
        };
        let mut el = 0f64;
        for &i in &picks {
            let num = numeric(r, &mut data, &masks, t, &[(i, 1.0)], fwd.branches);
            let e = (num - ana[i]).abs() / scale;
            assert!(
                e < TOL,
                "{what} {name}[{i}]: analytic {:e}, numeric {num:e} (error {e:e} of max {scale:e})",
                ana[i]
            );
            el = el.max(e);
        }
        let mut dir_err = 0f64;
        for _ in 0..DIRECTIONS {
            let dir: Vec<(usize, f64)> =
                (0..n).map(|i| (i, rng.uniform(-1.0, 1.0) as f64)).collect();
            let num = numeric(r, &mut data, &masks, t, &dir, fwd.branches);
            let want: f64 = dir.iter().map(|&(i, v)| v * ana[i]).sum();
            let norm: f64 = dir.iter().map(|&(i, v)| (v * ana[i]).abs()).sum();
            let e = (num - want).abs() / norm;
            assert!(
                e < TOL,
                "{what} {name}: directional derivative analytic {want:e}, numeric {num:e} (error {e:e})"
            );
            dir_err = dir_err.max(e);
        }
        eprintln!(
            "  {name:<18} {n:>6} elements, max |dE| {scale:.3e}: element-wise error {el:.2e} ({} checked), directional {dir_err:.2e}",
            picks.len()
        );
        worst_el = worst_el.max(el);
        worst_dir = worst_dir.max(dir_err);
    }
    eprintln!("{what}: worst element-wise {worst_el:.2e}, directional {worst_dir:.2e}");
    (worst_el, worst_dir)
}

fn strengthen(r: &mut RefNet) {
    for l in &mut r.layers {
        if let Kind::Norm { scale, .. } = &mut l.kind {
            *scale *= STRONG;
        }
    }
}

fn run(gen: Generation, tag: &str) {
    let net = parse(gen);
    let mut r = RefNet::new(&net);
    check(&mut r, tag, 11);
    strengthen(&mut r);
    check(&mut r, &format!("{tag}, norm scales x{STRONG}"), 12);
}

#[test]
fn gradients_2011() {
    run(Generation::C1, "2011");
}

#[test]
fn gradients_2012() {
    run(Generation::A12, "2012");
}

/// The update rules on a hand-sized case: one fc weight, gradient known.
#[test]
fn update_rules() {
    for gen in [Generation::C1, Generation::A12] {
        let net = parse(gen);
        let r = RefNet::new(&net);
        let (data, masks) = inputs(&r, 3, 4);
        let inp = Inputs {
            data: &data,
            cases: 4,
            masks: &masks,
        };
        let fwd = r.forward(&inp);
        let bwd = r.backward(&fwd, &inp);
        let ex = r.expect(&fwd, &bwd);
        let (eps, mom, wc) = (0.01, 0.9, 0.0005);
        for (li, l) in r.layers.iter().enumerate() {
            for (k, e) in ex.weights[li].iter().enumerate() {
                let (w, inc0, dw) = (&l.weights[k], &l.weights_inc[k], &bwd.dweights[li][k]);
                for i in [0, w.data.len() / 2, w.data.len() - 1] {
                    let g = -dw.data[i] / 4.0; // the negative gradient per case
                    let inc = mom * inc0.data[i] + eps * g - wc * eps * w.data[i];
                    assert!((e.inc_update.data[i] - inc).abs() <= 1e-15 * (1.0 + inc.abs()));
                    assert!((e.w_update.data[i] - (w.data[i] + inc)).abs() <= 1e-15);
                    if l.ltype == "conv" {
                        let want = if gen == Generation::C1 { eps * g } else { g };
                        assert!(
                            (e.grad.as_ref().unwrap().data[i] - want).abs()
                                <= 1e-18 + 1e-15 * want.abs()
                        );
                        assert_eq!(e.inc_bprop.data[i], inc0.data[i]);
                    } else {
                        assert!(e.grad.is_none());
                        assert!(
                            (e.inc_bprop.data[i] - (mom * inc0.data[i] + eps * g)).abs() <= 1e-15
                        );
                    }
                }
            }
            if let Some(e) = &ex.biases[li] {
                let (b, dw) = (
                    l.biases.as_ref().unwrap(),
                    bwd.dbiases[li].as_ref().unwrap(),
                );
                let g = -dw.data[0] / 4.0;
                let eps_b = 0.02;
                assert!(
                    (e.inc_update.data[0] - eps_b * g).abs() <= 1e-15,
                    "{}",
                    l.name
                );
                assert!((e.w_update.data[0] - (b.data[0] + eps_b * g)).abs() <= 1e-15);
            }
        }
    }
}

/// A few outputs recomputed by hand from the layouts (independent of the loops in
/// ref64.rs): a conv1 corner module (padding), a clipped avg-pooling window, a
/// cross-map window at the last channel, an fc output.
#[test]
fn forward_spot_checks() {
    let net = parse(Generation::A12);
    let r = RefNet::new(&net);
    let (data, masks) = inputs(&r, 5, 3);
    let n = 3;
    let f = r.forward(&Inputs {
        data: &data,
        cases: n,
        masks: &masks,
    });
    let acts = |name: &str| &f.acts[r.index(name).unwrap()];
    let close = |a: f64, b: f64| assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");

    // conv1, filter 5, module (y=0, x=7), case 2: padding 1 means taps y-1..y+1 and
    // x-1..x+1 of the 8x8 image, of which row -1 and column 8 fall outside.
    let conv = r.layer("conv1");
    let (w, b) = (&conv.weights[0], conv.biases.as_ref().unwrap());
    let mut s = b.at(5, 0);
    for ch in 0..3 {
        for fy in 0..3 {
            for fx in 0..3 {
                let (y, x) = (fy as i64 - 1, 7 + fx as i64 - 1);
                if (0..8).contains(&y) && (0..8).contains(&x) {
                    let pix = data[0][((ch * 64 + y as usize * 8 + x as usize) * n) + 2];
                    s += pix * w.at(ch * 9 + fy * 3 + fx, 5);
                }
            }
        }
    }
    close(acts("conv1")[(5 * 64 + 7) * n + 2], s);

    // pool2 (avg, 3x3 at stride 2 over 4x4): output (1,1) of channel 9 covers rows and
    // columns 2..4 only: 4 pixels, divided by 4.
    let src = acts("cmrnorm2");
    let mut s = 0.0;
    for y in 2..4 {
        for x in 2..4 {
            s += src[((9 * 16) + y * 4 + x) * n + 1];
        }
    }
    close(acts("pool2")[((9 * 4) + 3) * n + 1], s / 4.0);
    // Output (0,0) covers 3x3 pixels.
    let mut s = 0.0;
    for y in 0..3 {
        for x in 0..3 {
            s += src[((9 * 16) + y * 4 + x) * n + 1];
        }
    }
    close(acts("pool2")[(9 * 4) * n + 1], s / 9.0);

    // cmrnorm2 at channel 15, pixel 6: window [15-2, 15+3) ∩ [0,16) = 13..16;
    // denominator minDiv (2) + scale/size * Σ x².
    let x = acts("local2_neuron");
    let sum: f64 = (13..16).map(|c| x[(c * 16 + 6) * n].powi(2)).sum();
    let d = 2.0 + 0.3 / 5.0 * sum;
    close(
        acts("cmrnorm2")[(15 * 16 + 6) * n],
        x[(15 * 16 + 6) * n] * d.powf(-0.75),
    );

    // rnorm1 at channel 2, pixel (0, 3): window rows [-1, 2) ∩ [0,4), columns [2, 5) ∩
    // [0,4); scale 0.3 / 3².
    let x = acts("pool1");
    let mut sum = 0.0;
    for y in 0..2 {
        for xx in 2..4 {
            sum += x[(2 * 16 + y * 4 + xx) * n + 1].powi(2);
        }
    }
    let d = 1.0 + 0.3 / 9.0 * sum;
    close(
        acts("rnorm1")[(2 * 16 + 3) * n + 1],
        x[(2 * 16 + 3) * n + 1] * d.powf(-0.75),
    );

    // fc4 output 7, case 0: Σ_i hs3[i] W[i,7] + b[7].
    let fc = r.layer("fc4");
    let h = acts("hs3");
    let s: f64 = (0..32)
        .map(|i| h[i * n] * fc.weights[0].at(i, 7))
        .sum::<f64>()
        + fc.biases.as_ref().unwrap().at(0, 7);
    close(acts("fc4")[7 * n], s);
}
