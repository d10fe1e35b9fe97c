//! Neurons (neuron.cuh) and layer kernels (layer_kernels.cu, the 2012 cost operators):
//! float64 references, numerical gradients, measured tiers, regression goldens
//! (golden/kernels/layers.tsv) and the thread-count check.

mod common;

use common::{assert_close, same_bits_any_threads_or_lanes, Regression};
use convnet::config::specs::parse_neuron;
use convnet::config::Generation::{A12, C1};
use convnet::layers::kernels as k;
use convnet::layers::neuron::{GradOperand, Neuron};
use convnet::synthetic::{uniform, SplitMix64};

// ---------------------------------------------------------------- helpers

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Inputs uniform in `[lo, hi)` kept at least `gap` away from each kink.
fn inputs(seed: u64, n: usize, lo: f32, hi: f32, kinks: &[f32], gap: f32) -> Vec<f32> {
    let mut g = SplitMix64::new(seed);
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let x = g.uniform(lo, hi);
        if kinks.iter().all(|&k| (x - k).abs() > gap) {
            v.push(x);
        }
    }
    v
}

/// Every neuron of both generations, with parameters, named for the goldens.
fn all_neurons() -> Vec<(String, Neuron)> {
    let mut v = Vec::new();
    for gen in [C1, A12] {
        let g = if gen == C1 { "c1" } else { "a12" };
        for spec in [
            "ident",
            "logistic",
            "abs",
            "relu",
            "nrelu",
            "softrelu",
            "square",
            "sqrt",
            "tanh[1.7159,0.6666]",
            "brelu[6]",
            "linear[1.5,-0.25]",
            "drelu[2.5]",
        ] {
            let Ok(d) = parse_neuron(gen, spec) else {
                assert!(gen == C1 && (spec == "nrelu" || spec.starts_with("drelu")));
                continue;
            };
            v.push((format!("{g}/{spec}"), Neuron::from_dict(gen, &d).unwrap()));
        }
    }
    v.push((
        "c1/softrelu-fixed".into(),
        Neuron::SoftRelu {
            gen: C1,
            fix_grad: true,
        },
    ));
    v
}

/// The input range each neuron is tested on (sqrt needs x > 0) and its kinks.
fn domain(n: &Neuron) -> (f32, f32, Vec<f32>) {
    match *n {
        Neuron::Sqrt => (0.05, 9.0, vec![]),
        Neuron::SoftRelu { .. } => (-8.0, 8.0, vec![4.0]),
        Neuron::BRelu { a } => (-8.0, 8.0, vec![0.0, a]),
        Neuron::Abs | Neuron::Relu | Neuron::NRelu => (-8.0, 8.0, vec![0.0]),
        _ => (-8.0, 8.0, vec![]),
    }
}

/// Float64 activation (the mathematics, not the kernel's operations).
fn fwd64(n: &Neuron, x: f64, noise: f64) -> f64 {
    match *n {
        Neuron::Ident => x,
        Neuron::Logistic => sigmoid(x),
        Neuron::Abs => x.abs(),
        Neuron::Relu => x.max(0.0),
        Neuron::NRelu => {
            let r = x.max(0.0);
            (r + r * noise).max(0.0)
        }
        Neuron::SoftRelu { .. } => {
            if x > 4.0 {
                x
            } else {
                x.exp().ln_1p()
            }
        }
        Neuron::Square => x * x,
        Neuron::Sqrt => x.sqrt(),
        Neuron::Tanh { a, b, .. } => a as f64 * (b as f64 * x).tanh(),
        Neuron::BRelu { a } => x.max(0.0).min(a as f64),
        Neuron::Linear { a, b } => a as f64 * x + b as f64,
        Neuron::DRelu { a } => x - a as f64 * (x / a as f64).tanh(),
    }
}

/// Float64 evaluation of the original's gradient formula on the operand it reads
/// (`u` = outputs or inputs as f32 from our forward pass).
fn grad64(n: &Neuron, g: f64, u: f64) -> f64 {
    match *n {
        Neuron::Ident => g,
        Neuron::Logistic => g * u * (1.0 - u),
        Neuron::Abs => g * if u > 0.0 { 1.0 } else { -1.0 },
        Neuron::Relu | Neuron::NRelu => g * (u > 0.0) as u8 as f64,
        Neuron::SoftRelu { .. } => {
            if u > 4.0 {
                g
            } else {
                g * sigmoid(u)
            }
        }
        Neuron::Square => 2.0 * g * u,
        Neuron::Sqrt => g / (2.0 * u),
        Neuron::Tanh { a, b, .. } => {
            let (a, b) = (a as f64, b as f64);
            g * b * (a - u * u / a)
        }
        Neuron::BRelu { a } => g * ((u > 0.0) && (u < a as f64)) as u8 as f64,
        Neuron::Linear { a, .. } => g * a as f64,
        Neuron::DRelu { a } => g * (u / a as f64).tanh().powi(2),
    }
}

fn operand<'a>(n: &Neuron, x: &'a [f32], y: &'a [f32]) -> &'a [f32] {
    match n.grad_operand() {
        GradOperand::Nothing => &[],
        GradOperand::Acts => y,
        GradOperand::Inputs => x,
    }
}

fn activate(n: &Neuron, x: &[f32], noise: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    if n.needs_noise() {
        n.activate_noisy(x, noise, &mut y).unwrap();
    } else {
        n.activate(x, &mut y).unwrap();
    }
    y
}

/// `x` as f32 bits apart from `want`, in units of the f32 spacing at `scale`.
fn ulps(got: f32, want: f64, scale: f64) -> f64 {
    let s = want.abs().max(scale) as f32;
    let ulp = (f32::from_bits(s.to_bits() + 1) - s) as f64;
    (got as f64 - want).abs() / ulp
}

// ---------------------------------------------------------------- neurons

#[test]
fn neuron_table_matches_parser() {
    for (name, n) in all_neurons() {
        let gen = if name.starts_with("c1") { C1 } else { A12 };
        let spec = name.split('/').nth(1).unwrap().trim_end_matches("-fixed");
        let d = parse_neuron(gen, spec).ok().unwrap();
        assert_eq!(n.uses_acts(), d["usesActs"].truthy(), "{name}");
        assert_eq!(n.uses_inputs(), d["usesInputs"].truthy(), "{name}");
        assert_eq!(n.type_name(), d["type"].as_str().unwrap(), "{name}");
    }
    assert!(Neuron::new(C1, "nrelu", &[]).is_err());
    assert!(Neuron::new(C1, "drelu", &[1.0]).is_err());
    assert!(Neuron::new(A12, "tanh", &[1.0]).is_err());
    assert!(Neuron::new(A12, "abstanh", &[1.0, 1.0]).is_err());
    // The C++ reads what the parser table does not always say.
    let sr = |gen, fix_grad| Neuron::SoftRelu { gen, fix_grad }.grad_operand();
    assert_eq!(sr(C1, false), GradOperand::Acts);
    assert_eq!(sr(C1, true), GradOperand::Inputs);
    assert_eq!(sr(A12, false), GradOperand::Inputs);
    assert_eq!(
        Neuron::Linear { a: 1.0, b: 0.0 }.grad_operand(),
        GradOperand::Nothing
    );
}

#[test]
fn neurons_reference() {
    let n_el = 4099;
    for (name, n) in all_neurons() {
        let (lo, hi, kinks) = domain(&n);
        let x = inputs(11, n_el, lo, hi, &kinks, 1e-3);
        let noise = uniform(12, n_el, -1.5, 1.5);
        let g = uniform(13, n_el, -2.0, 2.0);
        let t0 = uniform(14, n_el, -1.0, 1.0);
        let y = activate(&n, &x, &noise);
        let want: Vec<f64> = (0..n_el)
            .map(|i| fwd64(&n, x[i] as f64, noise[i] as f64))
            .collect();
        assert_close(&format!("{name} forward"), &y, &want, 1e-5);
        let u = operand(&n, &x, &y);
        for add in [false, true] {
            let mut t = t0.clone();
            n.compute_input_grad(&g, u, &mut t, add).unwrap();
            let want: Vec<f64> = (0..n_el)
                .map(|i| {
                    let ui = if u.is_empty() { 0.0 } else { u[i] as f64 };
                    grad64(&n, g[i] as f64, ui) + if add { t0[i] as f64 } else { 0.0 }
                })
                .collect();
            assert_close(&format!("{name} grad add={add}"), &t, &want, 1e-5);
        }
    }
}

/// In-place forms give the same bits as the separate-buffer forms, and the original's
/// asserts become errors.
#[test]
fn neurons_in_place() {
    let n_el = 40_000;
    for (name, n) in all_neurons() {
        let (lo, hi, kinks) = domain(&n);
        let x = inputs(21, n_el, lo, hi, &kinks, 1e-3);
        let noise = uniform(22, n_el, -1.5, 1.5);
        let g = uniform(23, n_el, -2.0, 2.0);
        let y = activate(&n, &x, &noise);
        let mut d = x.clone();
        let r = if n.needs_noise() {
            n.activate_noisy_in_place(&mut d, &noise)
        } else {
            n.activate_in_place(&mut d)
        };
        if n.in_place_ok() {
            r.unwrap();
            assert_eq!(d, y, "{name}");
        } else {
            assert!(r.is_err(), "{name} must refuse in place");
        }
        let u = operand(&n, &x, &y).to_vec();
        for add in [false, true] {
            // target == actsGrad: the gradient is its own previous value.
            let mut sep = g.clone();
            n.compute_input_grad(&g, &u, &mut sep, add).unwrap();
            let mut inp = g.clone();
            n.compute_input_grad_in_place(&mut inp, &u, add).unwrap();
            if matches!(n, Neuron::Ident) {
                assert_eq!(inp, g, "{name}: ident in place does nothing");
            } else {
                assert_eq!(inp, sep, "{name} add={add}");
            }
        }
    }
}

/// `f64` central differences of the activation against the gradient kernel (which
/// reads our f32 forward's outputs or inputs).
fn numeric_grad_error(n: &Neuron, seed: u64) -> f64 {
    let n_el = 2000;
    let (lo, hi, kinks) = domain(n);
    let x = inputs(seed, n_el, lo, hi, &kinks, 1e-2);
    let noise = uniform(seed + 1, n_el, -0.9, 0.9);
    let g = uniform(seed + 2, n_el, -2.0, 2.0);
    let y = activate(n, &x, &noise);
    let mut t = vec![0.0; n_el];
    n.compute_input_grad(&g, operand(n, &x, &y), &mut t, false)
        .unwrap();
    let h = 1e-6;
    let mut worst = 0f64;
    for i in 0..n_el {
        let (xi, ni) = (x[i] as f64, noise[i] as f64);
        let d = (fwd64(n, xi + h, ni) - fwd64(n, xi - h, ni)) / (2.0 * h);
        worst = worst.max((t[i] as f64 - g[i] as f64 * d).abs());
    }
    worst
}

#[test]
fn neurons_numerical_gradient() {
    for (name, n) in all_neurons() {
        let e = numeric_grad_error(&n, 31);
        match n {
            // 2011 softrelu: derivative taken at the output (BUG, reproduced).
            Neuron::SoftRelu {
                gen: C1,
                fix_grad: false,
            } => assert!(e > 0.5, "{name}: the documented bug should show ({e})"),
            // nrelu: the gradient ignores the noise (std = relu output): the
            // derivative with the noise frozen is (1 + n) on the active side.
            Neuron::NRelu => assert!(e > 0.5, "{name}: noise factor ignored ({e})"),
            _ => assert!(e < 2e-4, "{name}: |analytic - numeric| = {e}"),
        }
    }
    // The 2011 softrelu gradient is what its formula says on the outputs: (1 + e^x) /
    // (2 + e^x) below the threshold.
    let n = Neuron::SoftRelu {
        gen: C1,
        fix_grad: false,
    };
    let x = [-6.0f32, -1.0, 0.0, 2.0];
    let y = activate(&n, &x, &[]);
    let mut t = [0.0f32; 4];
    n.compute_input_grad(&[1.0; 4], &y, &mut t, false).unwrap();
    for i in 0..4 {
        let e = (x[i] as f64).exp();
        assert!((t[i] as f64 - (1.0 + e) / (2.0 + e)).abs() < 1e-6);
    }
    // nrelu without noise is relu, gradient included.
    let n = Neuron::NRelu;
    let x = inputs(41, 1000, -4.0, 4.0, &[0.0], 1e-2);
    let y = activate(&n, &x, &vec![0.0; 1000]);
    assert_eq!(y, activate(&Neuron::Relu, &x, &[]));
}

/// Measured tiers (stated in src/layers/neuron.rs): worst error in f32 ulps against
/// float64 mathematics, on inputs in [-8, 8] (sqrt: (0, 9]).
#[test]
fn tiers() {
    let n_el = 200_000;
    let x = uniform(51, n_el, -8.0, 8.0);
    let g = uniform(52, n_el, -2.0, 2.0);
    let check = |what: &str, got: &[f32], want: &dyn Fn(usize) -> (f64, f64), bound: f64| {
        let mut worst = 0f64;
        for (i, &v) in got.iter().enumerate() {
            let (w, s) = want(i);
            worst = worst.max(ulps(v, w, s));
        }
        eprintln!("tier {what}: {worst:.2} ulp (bound {bound})");
        assert!(worst <= bound, "{what}: {worst} ulp > {bound}");
    };
    let run = |n: &Neuron, x: &[f32]| -> (Vec<f32>, Vec<f32>) {
        let y = activate(n, x, &[]);
        let mut t = vec![0.0; x.len()];
        n.compute_input_grad(&g[..x.len()], operand(n, x, &y), &mut t, false)
            .unwrap();
        (y, t)
    };
    // logistic: forward (the rounding of x*log2(e) before ex2 grows with |x|).
    let (y, _) = run(&Neuron::Logistic, &x);
    check("logistic fwd", &y, &|i| (sigmoid(x[i] as f64), 0.0), 9.0);
    // softrelu: forward in ulps of max(|y|, 1) (lg2's error is absolute).
    let n = Neuron::SoftRelu {
        gen: A12,
        fix_grad: false,
    };
    let (y, t) = run(&n, &x);
    check(
        "softrelu fwd",
        &y,
        &|i| (fwd64(&n, x[i] as f64, 0.0), 1.0),
        3.0,
    );
    check(
        "softrelu grad",
        &t,
        &|i| (grad64(&n, g[i] as f64, x[i] as f64), 0.0),
        10.0,
    );
    // sqrt gradient.
    let xs = uniform(53, n_el, 0.01, 9.0);
    let (y, t) = run(&Neuron::Sqrt, &xs);
    check(
        "sqrt grad",
        &t,
        &|i| (g[i] as f64 / (2.0 * y[i] as f64), 0.0),
        1.5,
    );
    // tanh: forward in ulps of a (cancellation near 0); gradient in ulps of g*a*b.
    for gen in [C1, A12] {
        let n = Neuron::Tanh {
            a: 1.7159,
            b: 0.6666,
            gen,
        };
        let (y, t) = run(&n, &x);
        check(
            &format!("tanh fwd {gen:?}"),
            &y,
            &|i| (fwd64(&n, x[i] as f64, 0.0), 1.7159),
            3.5,
        );
        check(
            &format!("tanh grad {gen:?}"),
            &t,
            &|i| {
                (
                    grad64(&n, g[i] as f64, y[i] as f64),
                    (g[i] as f64).abs() * 1.7159 * 0.6666,
                )
            },
            4.0,
        );
    }
    // drelu: forward in ulps of max(|x|, a), gradient in ulps of g.
    let n = Neuron::DRelu { a: 2.5 };
    let (y, t) = run(&n, &x);
    check(
        "drelu fwd",
        &y,
        &|i| (fwd64(&n, x[i] as f64, 0.0), (x[i] as f64).abs().max(2.5)),
        2.5,
    );
    check(
        "drelu grad",
        &t,
        &|i| (grad64(&n, g[i] as f64, x[i] as f64), (g[i] as f64).abs()),
        7.0,
    );
}

#[test]
fn neuron_bad_shapes() {
    let n = Neuron::Logistic;
    let mut out = vec![0.0; 3];
    assert!(n.activate(&[1.0; 4], &mut out).is_err());
    assert!(n
        .compute_input_grad(&[1.0; 3], &[1.0; 2], &mut out, false)
        .is_err());
    assert!(n
        .compute_input_grad(&[1.0; 4], &[1.0; 4], &mut out, true)
        .is_err());
    assert!(Neuron::NRelu.activate(&[1.0; 3], &mut out).is_err());
    assert!(Neuron::NRelu
        .activate_noisy(&[1.0; 3], &[1.0; 2], &mut out)
        .is_err());
    assert!(Neuron::Relu
        .activate_noisy(&[1.0; 3], &[1.0; 3], &mut out)
        .is_err());
    // ident and linear read nothing: an empty operand is fine.
    let l = Neuron::Linear { a: 2.0, b: 1.0 };
    l.compute_input_grad(&[1.0; 3], &[], &mut out, false)
        .unwrap();
    assert_eq!(out, [2.0; 3]);
}

// ---------------------------------------------------------------- layer kernels

/// A softmax in f64 (rounded to f32) over seeded energies; `ties` copies class 0 of
/// every third case onto class 1 so that arg-max ties occur.
fn probs(seed: u64, num_out: usize, num_cases: usize, ties: bool) -> (Vec<f32>, Vec<f32>) {
    let mut e = uniform(seed, num_out * num_cases, -4.0, 4.0);
    if ties && num_out > 1 {
        for c in (0..num_cases).step_by(3) {
            e[num_cases + c] = e[c];
            e[c] += 8.0;
            e[num_cases + c] += 8.0;
        }
    }
    let mut p = vec![0.0; e.len()];
    for c in 0..num_cases {
        let s: f64 = (0..num_out)
            .map(|k| (e[k * num_cases + c] as f64).exp())
            .sum();
        for k in 0..num_out {
            p[k * num_cases + c] = ((e[k * num_cases + c] as f64).exp() / s) as f32;
        }
    }
    (e, p)
}

fn labels(seed: u64, num_out: usize, num_cases: usize) -> Vec<f32> {
    let mut g = SplitMix64::new(seed);
    (0..num_cases)
        .map(|_| (g.next_u64() % num_out as u64) as f32)
        .collect()
}

/// Case-wise counts of the arg max and the label's rank.
fn counts(
    r: &[f32],
    num_out: usize,
    num_cases: usize,
    c: usize,
    l: usize,
) -> (f32, usize, usize, usize) {
    let col: Vec<f32> = (0..num_out).map(|k| r[k * num_cases + c]).collect();
    let max = col.iter().cloned().fold(f32::MIN, f32::max);
    let nmax = col.iter().filter(|&&v| v == max).count();
    let bigger = col.iter().filter(|&&v| v > col[l]).count();
    let equal = col.iter().filter(|&&v| v == col[l]).count();
    (max, nmax, bigger, equal)
}

#[test]
fn logreg_cost_reference() {
    for &(no, nc) in &[(10usize, 128usize), (13, 37), (1, 5), (1000, 19)] {
        let (_, p) = probs(61, no, nc, true);
        let l = labels(62, no, nc);
        let mut llp = vec![0.0; nc];
        let mut cp = vec![0.0; nc];
        k::compute_logreg_cost(&l, &p, no, nc, &mut llp, &mut cp).unwrap();
        let mut want_llp = vec![0.0; nc];
        let mut want_cp = vec![0.0; nc];
        for c in 0..nc {
            let li = l[c] as usize;
            want_llp[c] = (p[li * nc + c] as f64).ln();
            let (max, nmax, _, _) = counts(&p, no, nc, c, li);
            want_cp[c] = if p[li * nc + c] == max {
                1.0 / nmax as f64
            } else {
                0.0
            };
        }
        assert_close("labelLogProbs", &llp, &want_llp, 1e-6);
        assert_close("correctProbs", &cp, &want_cp, 0.0);
        // top-k (A12) on probabilities and on energies; top-1 agrees with logreg.
        for set_size in [1usize, 2, 5] {
            let (e, _) = probs(61, no, nc, true);
            for use_e in [false, true] {
                let mut llp2 = vec![0.0; nc];
                let mut cp2 = vec![0.0; nc];
                let mut tk = vec![0.0; nc];
                k::compute_multi_softmax_cost(
                    &l, &p, &e, no, nc, set_size, use_e, &mut llp2, &mut cp2, &mut tk,
                )
                .unwrap();
                assert_eq!(llp2, llp);
                let r = if use_e { &e } else { &p };
                let mut want_tk = vec![0.0; nc];
                let mut want_cp = vec![0.0; nc];
                for c in 0..nc {
                    let li = l[c] as usize;
                    let (max, _, bigger, equal) = counts(r, no, nc, c, li);
                    let slots = set_size as f64 - bigger as f64;
                    want_tk[c] = if slots <= 0.0 {
                        0.0
                    } else if equal as f64 <= slots {
                        1.0
                    } else {
                        slots / equal as f64
                    };
                    want_cp[c] = if r[li * nc + c] == max {
                        1.0 / equal as f64
                    } else {
                        0.0
                    };
                }
                assert_close("topk", &tk, &want_tk, 1e-7);
                assert_close("top1", &cp2, &want_cp, 1e-7);
                if !use_e {
                    assert_eq!(cp2, cp);
                }
            }
        }
    }
}

/// `-Σ log p[label]` differentiated numerically in f64, against kLogregCostGrad;
/// through the softmax against kLogregSoftmaxGrad; kSoftmaxGrad against the f64
/// Jacobian-vector product.
#[test]
fn logreg_and_softmax_gradients_numerical() {
    let (no, nc) = (13usize, 37usize);
    let coeff = 0.75f32;
    let (e, p) = probs(71, no, nc, false);
    let l = labels(72, no, nc);
    let softmax64 = |x: &[f64], c: usize| -> Vec<f64> {
        let m = (0..no).map(|k| x[k * nc + c]).fold(f64::MIN, f64::max);
        let s: f64 = (0..no).map(|k| (x[k * nc + c] - m).exp()).sum();
        (0..no).map(|k| (x[k * nc + c] - m).exp() / s).collect()
    };
    let cost = |x: &[f64]| -> f64 {
        (0..nc)
            .map(|c| -coeff as f64 * softmax64(x, c)[l[c] as usize].ln())
            .sum()
    };
    let e64 = f64s(&e);
    let h = 1e-6;
    let mut num = vec![0.0; no * nc];
    for i in 0..no * nc {
        let mut a = e64.clone();
        a[i] += h;
        let mut b = e64.clone();
        b[i] -= h;
        // The gradient buffers hold minus the derivative.
        num[i] = -(cost(&a) - cost(&b)) / (2.0 * h);
    }
    let mut fused = vec![0.0; no * nc];
    k::logreg_softmax_grad(&l, &p, no, nc, &mut fused, false, coeff).unwrap();
    assert_close("logreg+softmax vs numeric", &fused, &num, 1e-5);
    // Two-step path: d cost / d y, then through the softmax.
    let mut dy = vec![0.0; no * nc];
    k::logreg_grad(&l, &p, no, nc, &mut dy, false, coeff).unwrap();
    let mut want_dy = vec![0.0; no * nc];
    for c in 0..nc {
        let li = l[c] as usize;
        let y = p[li * nc + c] as f64;
        let lp = |y: f64| -coeff as f64 * y.ln();
        want_dy[li * nc + c] = -(lp(y + 1e-9) - lp(y - 1e-9)) / 2e-9;
    }
    assert_close("logreg grad vs numeric", &dy, &want_dy, 1e-5);
    let mut dx = vec![0.0; no * nc];
    k::softmax_grad(&p, &dy, no, nc, &mut dx, false).unwrap();
    assert_close("softmax(logreg) vs numeric", &dx, &num, 1e-4);
    // kSoftmaxGrad for an arbitrary incoming gradient: Σ_j v_j ∂y_j/∂x_i.
    let v = uniform(73, no * nc, -1.0, 1.0);
    let mut got = vec![0.0; no * nc];
    k::softmax_grad(&p, &v, no, nc, &mut got, false).unwrap();
    let mut want = vec![0.0; no * nc];
    for c in 0..nc {
        for i in 0..no {
            let mut a = e64.clone();
            a[i * nc + c] += h;
            let mut b = e64.clone();
            b[i * nc + c] -= h;
            let (ya, yb) = (softmax64(&a, c), softmax64(&b, c));
            want[i * nc + c] = (0..no)
                .map(|j| v[j * nc + c] as f64 * (ya[j] - yb[j]) / (2.0 * h))
                .sum();
        }
    }
    assert_close("softmax grad vs numeric", &got, &want, 1e-5);
}

#[test]
fn layer_kernels_reference() {
    let (no, nc) = (11usize, 45usize);
    let n = no * nc;
    let (_, p) = probs(81, no, nc, true);
    let l = labels(82, no, nc);
    let t0 = uniform(83, n, -1.0, 1.0);
    let coeff = -1.25f32;
    for add in [false, true] {
        let base = |i: usize| if add { t0[i] as f64 } else { 0.0 };
        let mut t = t0.clone();
        k::logreg_grad(&l, &p, no, nc, &mut t, add, coeff).unwrap();
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let (kk, c) = (i / nc, i % nc);
                coeff as f64 * (l[c] as usize == kk) as u8 as f64 / p[i] as f64 + base(i)
            })
            .collect();
        assert_close("logreg grad", &t, &want, 1e-6);
        let mut t = t0.clone();
        k::logreg_softmax_grad(&l, &p, no, nc, &mut t, add, coeff).unwrap();
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let (kk, c) = (i / nc, i % nc);
                coeff as f64 * ((l[c] as usize == kk) as u8 as f64 - p[i] as f64) + base(i)
            })
            .collect();
        assert_close("logreg softmax grad", &t, &want, 1e-6);
        let dy = uniform(84, n, -1.0, 1.0);
        let mut t = t0.clone();
        k::softmax_grad(&p, &dy, no, nc, &mut t, add).unwrap();
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let (kk, c) = (i / nc, i % nc);
                let s: f64 = (0..no)
                    .map(|j| {
                        dy[j * nc + c] as f64 * ((j == kk) as u8 as f64 - p[j * nc + c] as f64)
                    })
                    .sum();
                s * p[i] as f64 + base(i)
            })
            .collect();
        assert_close("softmax grad", &t, &want, 1e-6);
        // eltwise max: every input equal to the output gets the gradient.
        let a = uniform(85, n, -1.0, 1.0);
        let mut b = uniform(86, n, -1.0, 1.0);
        b[..20].copy_from_slice(&a[..20]);
        let out: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x.max(*y)).collect();
        let g = uniform(87, n, -1.0, 1.0);
        for inp in [&a, &b] {
            let mut t = t0.clone();
            k::eltwise_max_grad(&g, inp, &out, &mut t, add).unwrap();
            let want: Vec<f64> = (0..n)
                .map(|i| g[i] as f64 * (out[i] == inp[i]) as u8 as f64 + base(i))
                .collect();
            assert_close("eltmax grad", &t, &want, 1e-7);
        }
    }
}

/// The 2012 cross-entropy kernels and element-wise costs.
#[test]
fn cross_entropy_reference_and_numerical() {
    let (no, nc) = (9usize, 33usize);
    let n = no * nc;
    let (_, p) = probs(91, no, nc, true);
    // Probability targets: a softmax of other energies, with some exact zeros.
    let (_, mut tgt) = probs(92, no, nc, false);
    for v in tgt.iter_mut().step_by(5) {
        *v = 0.0;
    }
    let mut llp = vec![0.0; nc];
    let mut cp = vec![0.0; nc];
    k::compute_cross_ent_cost(&tgt, &p, no, nc, &mut llp, &mut cp).unwrap();
    for c in 0..nc {
        let col = |m: &[f32], k: usize| m[k * nc + c] as f64;
        let ce: f64 = (0..no).map(|k| col(&tgt, k) * col(&p, k).ln()).sum();
        assert!((llp[c] as f64 - ce).abs() < 1e-5, "crossent cost case {c}");
        let max = (0..no).map(|k| col(&p, k)).fold(f64::MIN, f64::max);
        let nmax = (0..no).filter(|&k| col(&p, k) == max).count();
        let ok = (0..no).any(|k| col(&p, k) == max && col(&tgt, k) > 0.0);
        assert_eq!(cp[c] as f64, if ok { 1.0 / nmax as f64 } else { 0.0 });
    }
    let coeff = 0.5f32;
    // kCrossEntGrad = minus d/dy of -coeff Σ t log y.
    let mut t = vec![0.0; n];
    k::cross_ent_grad(&tgt, &p, &mut t, false, coeff).unwrap();
    let want: Vec<f64> = (0..n)
        .map(|i| coeff as f64 * tgt[i] as f64 / p[i] as f64)
        .collect();
    assert_close("crossent grad", &t, &want, 1e-6);
    // kCrossEntSoftmaxGrad = minus d/dx of -coeff Σ t log softmax(x) = coeff (t_k - y_k Σ t).
    let mut t = vec![0.0; n];
    k::cross_ent_softmax_grad(&tgt, &p, no, nc, &mut t, false, coeff).unwrap();
    let want: Vec<f64> = (0..n)
        .map(|i| {
            let c = i % nc;
            let st: f64 = (0..no).map(|j| tgt[j * nc + c] as f64).sum();
            coeff as f64 * (tgt[i] as f64 - p[i] as f64 * st)
        })
        .collect();
    assert_close("crossent softmax grad", &t, &want, 1e-6);

    // Element-wise costs with their numerical gradients (minus the derivative).
    let y = uniform(93, n, 0.02, 0.98);
    let lab = uniform(94, n, 0.0, 1.0);
    let h = 1e-7;
    let ce2 = |t: f64, y: f64| t * y.ln() + (1.0 - t) * (1.0 - y).ln();
    let mut out = vec![0.0; n];
    k::cross_ent2_cost(&lab, &y, &mut out).unwrap();
    let want: Vec<f64> = (0..n).map(|i| ce2(lab[i] as f64, y[i] as f64)).collect();
    assert_close("crossent2 cost", &out, &want, 1e-5);
    // layer cost = -Σ ce2; minus derivative = coeff * d ce2 / dy.
    let num: Vec<f64> = (0..n)
        .map(|i| {
            let (t, v) = (lab[i] as f64, y[i] as f64);
            coeff as f64 * (ce2(t, v + h) - ce2(t, v - h)) / (2.0 * h)
        })
        .collect();
    let mut fixed = vec![0.0; n];
    k::cross_ent2_grad(&lab, &y, &mut fixed, false, coeff, true).unwrap();
    assert_close("crossent2 grad (fixed) vs numeric", &fixed, &num, 1e-5);
    let mut orig = vec![0.0; n];
    k::cross_ent2_grad(&lab, &y, &mut orig, false, coeff, false).unwrap();
    let dev = orig
        .iter()
        .zip(&num)
        .map(|(&a, b)| (a as f64 - b).abs())
        .fold(0.0, f64::max);
    assert!(dev > 1.0, "the 2012 sign bug should show ({dev})");
    let want: Vec<f64> = (0..n)
        .map(|i| {
            let (t, v) = (lab[i] as f64, y[i] as f64);
            coeff as f64 * (t / v + (1.0 - t) / (1.0 - v))
        })
        .collect();
    assert_close("crossent2 grad (original)", &orig, &want, 1e-6);
    // Fused logistic + crossent2: minus d/dx of -coeff Σ ce2(t, sigmoid(x)) = coeff (t - y).
    let x = uniform(95, n, -4.0, 4.0);
    let ys: Vec<f32> = activate(&Neuron::Logistic, &x, &[]);
    let mut t = vec![0.0; n];
    k::logistic_cross_ent2_grad(&lab, &ys, &mut t, false, coeff).unwrap();
    let num: Vec<f64> = (0..n)
        .map(|i| {
            let (tt, xx) = (lab[i] as f64, x[i] as f64);
            coeff as f64 * (ce2(tt, sigmoid(xx + 1e-6)) - ce2(tt, sigmoid(xx - 1e-6))) / 2e-6
        })
        .collect();
    assert_close("logistic+crossent2 vs numeric", &t, &num, 1e-5);
    // rflickr: cost Σ log(1 + (y-t)²); minus derivative times coeff.
    let rf = |t: f64, y: f64| (1.0 + (y - t) * (y - t)).ln();
    let mut out = vec![0.0; n];
    k::rflickr_cost(&lab, &y, &mut out).unwrap();
    let want: Vec<f64> = (0..n).map(|i| rf(lab[i] as f64, y[i] as f64)).collect();
    assert_close("rflickr cost", &out, &want, 1e-6);
    let mut t = vec![0.0; n];
    k::rflickr_grad(&lab, &y, &mut t, false, coeff).unwrap();
    let num: Vec<f64> = (0..n)
        .map(|i| {
            let (tt, v) = (lab[i] as f64, y[i] as f64);
            -coeff as f64 * (rf(tt, v + h) - rf(tt, v - h)) / (2.0 * h)
        })
        .collect();
    assert_close("rflickr grad vs numeric", &t, &num, 1e-5);
    // add = target + (the same value); checked on every element-wise cost gradient.
    let t0 = uniform(96, n, -1.0, 1.0);
    type G =
        fn(&[f32], &[f32], &mut [f32], bool, f32) -> Result<(), convnet::cudaconv2::ShapeError>;
    let grads: [(&str, G); 3] = [
        ("crossent", k::cross_ent_grad),
        ("logistic+crossent2", k::logistic_cross_ent2_grad),
        ("rflickr", k::rflickr_grad),
    ];
    for (name, f) in grads {
        let mut plain = vec![0.0; n];
        f(&lab, &y, &mut plain, false, coeff).unwrap();
        let mut added = t0.clone();
        f(&lab, &y, &mut added, true, coeff).unwrap();
        let want: Vec<f64> = (0..n).map(|i| plain[i] as f64 + t0[i] as f64).collect();
        assert_close(name, &added, &want, 1e-6);
    }
}

#[test]
fn layer_kernel_bad_shapes() {
    let p = vec![0.5f32; 6];
    let mut o = vec![0.0; 3];
    let mut o2 = vec![0.0; 3];
    let mut t = vec![0.0; 6];
    // label out of range: the original would read past the matrix.
    assert!(k::compute_logreg_cost(&[0.0, 1.0, 2.0], &p, 2, 3, &mut o, &mut o2).is_err());
    assert!(k::compute_logreg_cost(&[0.0, 1.0, -1.0], &p, 2, 3, &mut o, &mut o2).is_err());
    assert!(k::compute_logreg_cost(&[0.0, 1.0], &p, 2, 3, &mut o, &mut o2).is_err());
    assert!(k::compute_logreg_cost(&[0.0; 3], &p, 3, 3, &mut o, &mut o2).is_err());
    k::compute_logreg_cost(&[0.0, 1.0, 1.9], &p, 2, 3, &mut o, &mut o2).unwrap();
    assert!(k::logreg_grad(&[0.0; 3], &p, 2, 3, &mut t[..5], false, 1.0).is_err());
    assert!(k::softmax_grad(&p, &p[..5], 2, 3, &mut t, false).is_err());
    assert!(k::logreg_softmax_grad(&[0.0; 2], &p, 2, 3, &mut t, false, 1.0).is_err());
    assert!(k::eltwise_max_grad(&p, &p[..5], &p, &mut t, true).is_err());
    assert!(k::cross_ent_softmax_grad(&p, &p, 3, 3, &mut t, false, 1.0).is_err());
    assert!(k::cross_ent_grad(&p[..5], &p, &mut t, false, 1.0).is_err());
    assert!(k::rflickr_cost(&p, &p, &mut t[..2]).is_err());
    let mut tk = vec![0.0; 2];
    assert!(k::compute_multi_softmax_cost(
        &[0.0; 3], &p, &p, 2, 3, 1, false, &mut o, &mut o2, &mut tk
    )
    .is_err());
    assert!(k::compute_cross_ent_cost(&p, &p, 0, 0, &mut [], &mut []).is_err());
}

// ---------------------------------------------------------------- regression

#[test]
fn regression() {
    let mut reg = Regression::new("layers");
    // Neurons: more than three chunks so that several tasks run.
    let n_el = 3 * 16384 + 123;
    let x = uniform(101, n_el, -8.0, 8.0);
    let xs = uniform(102, n_el, 0.0, 9.0);
    let noise = uniform(103, n_el, -2.0, 2.0);
    let g = uniform(104, n_el, -2.0, 2.0);
    let t0 = uniform(105, n_el, -1.0, 1.0);
    for (name, n) in all_neurons() {
        let x = if matches!(n, Neuron::Sqrt) { &xs } else { &x };
        let y = same_bits_any_threads_or_lanes(&name, || activate(&n, x, &noise));
        reg.case(&format!("{name}/fwd"), &y);
        let u = operand(&n, x, &y);
        for add in [false, true] {
            let t = same_bits_any_threads_or_lanes(&name, || {
                let mut t = t0.clone();
                n.compute_input_grad(&g, u, &mut t, add).unwrap();
                t
            });
            reg.case(&format!("{name}/grad/add={add}"), &t);
        }
    }
    // Layer kernels: CIFAR (10 classes), AlexNet (1000), and awkward shapes, 128
    // cases and not.
    for &(no, nc) in &[(10usize, 128usize), (1000, 128), (13, 37), (3, 1000)] {
        let tag = format!("{no}x{nc}");
        let (e, p) = probs(111 + no as u64, no, nc, true);
        let l = labels(112, no, nc);
        let t0 = uniform(113, no * nc, -1.0, 1.0);
        let dy = uniform(114, no * nc, -1.0, 1.0);
        let cost = same_bits_any_threads_or_lanes("logreg cost", || {
            let mut a = vec![0.0; nc];
            let mut b = vec![0.0; nc];
            k::compute_logreg_cost(&l, &p, no, nc, &mut a, &mut b).unwrap();
            [a, b].concat()
        });
        reg.case(&format!("logreg_cost/{tag}"), &cost);
        for (set_size, use_e) in [(5usize, false), (5, true), (2, true)] {
            let v = same_bits_any_threads_or_lanes("msm cost", || {
                let mut a = vec![0.0; nc];
                let mut b = vec![0.0; nc];
                let mut c = vec![0.0; nc];
                k::compute_multi_softmax_cost(
                    &l, &p, &e, no, nc, set_size, use_e, &mut a, &mut b, &mut c,
                )
                .unwrap();
                [a, b, c].concat()
            });
            reg.case(
                &format!("multi_softmax_cost/{tag}/k{set_size}/e={use_e}"),
                &v,
            );
        }
        let (_, tgt) = probs(115, no, nc, false);
        let v = same_bits_any_threads_or_lanes("crossent cost", || {
            let mut a = vec![0.0; nc];
            let mut b = vec![0.0; nc];
            k::compute_cross_ent_cost(&tgt, &p, no, nc, &mut a, &mut b).unwrap();
            [a, b].concat()
        });
        reg.case(&format!("cross_ent_cost/{tag}"), &v);
        for add in [false, true] {
            let run = |f: &dyn Fn(&mut [f32])| {
                same_bits_any_threads_or_lanes(&tag, || {
                    let mut t = t0.clone();
                    f(&mut t);
                    t
                })
            };
            let c = 0.8f32;
            let cases: Vec<(&str, Vec<f32>)> = vec![
                (
                    "logreg_grad",
                    run(&|t| k::logreg_grad(&l, &p, no, nc, t, add, c).unwrap()),
                ),
                (
                    "logreg_softmax_grad",
                    run(&|t| k::logreg_softmax_grad(&l, &p, no, nc, t, add, c).unwrap()),
                ),
                (
                    "softmax_grad",
                    run(&|t| k::softmax_grad(&p, &dy, no, nc, t, add).unwrap()),
                ),
                (
                    "cross_ent_grad",
                    run(&|t| k::cross_ent_grad(&tgt, &p, t, add, c).unwrap()),
                ),
                (
                    "cross_ent_softmax_grad",
                    run(&|t| k::cross_ent_softmax_grad(&tgt, &p, no, nc, t, add, c).unwrap()),
                ),
                (
                    "eltwise_max_grad",
                    run(&|t| k::eltwise_max_grad(&dy, &p, &tgt, t, add).unwrap()),
                ),
            ];
            for (name, v) in cases {
                reg.case(&format!("{name}/{tag}/add={add}"), &v);
            }
        }
    }
    // Element-wise 2012 cost operators, on more than one chunk.
    let lab = uniform(121, n_el, 0.0, 1.0);
    let y = uniform(122, n_el, 0.0, 1.0);
    let v = same_bits_any_threads_or_lanes("crossent2", || {
        let mut o = vec![0.0; n_el];
        k::cross_ent2_cost(&lab, &y, &mut o).unwrap();
        o
    });
    reg.case("cross_ent2_cost", &v);
    let v = same_bits_any_threads_or_lanes("rflickr", || {
        let mut o = vec![0.0; n_el];
        k::rflickr_cost(&lab, &y, &mut o).unwrap();
        o
    });
    reg.case("rflickr_cost", &v);
    for add in [false, true] {
        for fix in [false, true] {
            let v = same_bits_any_threads_or_lanes("crossent2 grad", || {
                let mut t = t0.clone();
                k::cross_ent2_grad(&lab, &y, &mut t, add, 0.3, fix).unwrap();
                t
            });
            reg.case(&format!("cross_ent2_grad/add={add}/fix={fix}"), &v);
        }
        let v = same_bits_any_threads_or_lanes("logistic crossent2", || {
            let mut t = t0.clone();
            k::logistic_cross_ent2_grad(&lab, &y, &mut t, add, 0.3).unwrap();
            t
        });
        reg.case(&format!("logistic_cross_ent2_grad/add={add}"), &v);
        let v = same_bits_any_threads_or_lanes("rflickr grad", || {
            let mut t = t0.clone();
            k::rflickr_grad(&lab, &y, &mut t, add, 0.3).unwrap();
            t
        });
        reg.case(&format!("rflickr_grad/add={add}"), &v);
    }
    reg.finish();
}

/// Hand-checked FMA sites: the bits of single elements against explicit f32
/// sequences (what nvcc's SASS does), so that a refactor cannot silently move a
/// rounding.
#[test]
fn fma_sites() {
    let (g, y, t) = (0.3f32, 0.7f32, 0.1f32);
    let mut out = [t];
    Neuron::Logistic
        .compute_input_grad(&[g], &[y], &mut out, true)
        .unwrap();
    assert_eq!(out[0], (g * y).mul_add(1.0 - y, t));
    // softrelu: the add is not fused.
    let n = Neuron::SoftRelu {
        gen: A12,
        fix_grad: false,
    };
    let mut out = [t];
    n.compute_input_grad(&[g], &[y], &mut out, true).unwrap();
    let e = convnet::nvmatrix::intrinsics::expf(y);
    assert_eq!(
        out[0],
        t + g * convnet::nvmatrix::intrinsics::fdividef(e, 1.0 + e)
    );
    // linear forward is one FMA.
    let mut out = [0.0];
    Neuron::Linear { a: 1.1, b: 0.2 }
        .activate(&[y], &mut out)
        .unwrap();
    assert_eq!(out[0], 1.1f32.mul_add(y, 0.2));
    // kSoftmaxGrad: FFMA chain from zero.
    let (p, d) = ([0.25f32, 0.75], [0.5f32, -0.125]);
    let mut out = [0.0f32; 2];
    k::softmax_grad(&p, &d, 2, 1, &mut out, false).unwrap();
    let v = d[1].mul_add(0.0 - p[1], d[0].mul_add(1.0 - p[0], 0.0));
    assert_eq!(out[0], v * p[0]);
    // The fused logistic + crossent2 gradient (`WeightedAdd`): the first product fused.
    let mut out = [0.0f32];
    k::logistic_cross_ent2_grad(&[0.9], &[0.3], &mut out, false, 0.7).unwrap();
    assert_eq!(out[0], 0.3f32.mul_add(-0.7, 0.9 * 0.7));
}
