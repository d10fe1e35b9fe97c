//! Tests of cudaconv2/conv_util's normalisation kernels (src/cudaconv2/conv_util/norm.rs):
//! float64 references of the formulas for every variant the dispatch can pick,
//! numerical (f64 finite-difference) gradient checks of every undo against its
//! forward, the reproduced bugs, measured ulp bounds, exact-bits regression goldens
//! (golden/kernels/norm.tsv) through 1 and 2 threads, and bad shapes.

mod common;

use common::{assert_close, same_bits_any_threads_or_lanes, Regression};
use convnet::cudaconv2::conv_util::norm::*;
use convnet::nvmatrix::NvMatrix;
use convnet::synthetic::uniform;

fn mat(seed: u64, rows: usize, cols: usize, lo: f32, hi: f32) -> NvMatrix {
    NvMatrix::from_vec(rows, cols, false, uniform(seed, rows * cols, lo, hi))
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// `(numFilters, imgSize, numImages)` of a test case.
#[derive(Clone, Copy, Debug)]
struct Shape {
    nf: usize,
    s: usize,
    n: usize,
}

impl Shape {
    fn rows(&self) -> usize {
        self.nf * self.s * self.s
    }
    fn len(&self) -> usize {
        self.rows() * self.n
    }
    fn at(&self, f: usize, y: usize, x: usize, i: usize) -> usize {
        ((f * self.s + y) * self.s + x) * self.n + i
    }
}

/// The window of `p` (forward: `[p - size/2, p - size/2 + size)`), clipped to `[0, len)`.
fn fwd_window(p: usize, size: usize, len: usize) -> std::ops::Range<usize> {
    let start = p as i64 - (size / 2) as i64;
    let lo = start.max(0) as usize;
    let hi = (start + size as i64).clamp(0, len as i64) as usize;
    lo..hi.max(lo)
}

/// The cross-map channel window of `f`.
fn chan_window(f: usize, size: usize, nf: usize, blocked: bool) -> std::ops::Range<usize> {
    if blocked {
        let b = f / size * size;
        b..(b + size).min(nf)
    } else {
        fwd_window(f, size, nf)
    }
}

/// Same-map: `d = k + a Σ_window md²`, `t = x d^-p`, in f64.
fn ref_spatial(
    sh: Shape,
    x: &[f64],
    md: &[f64],
    size: usize,
    a: f64,
    p: f64,
    k: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut den = vec![0.0; sh.len()];
    let mut tgt = vec![0.0; sh.len()];
    for f in 0..sh.nf {
        for y in 0..sh.s {
            for xx in 0..sh.s {
                for i in 0..sh.n {
                    let mut sum = 0.0;
                    for wy in fwd_window(y, size, sh.s) {
                        for wx in fwd_window(xx, size, sh.s) {
                            sum += md[sh.at(f, wy, wx, i)].powi(2);
                        }
                    }
                    let j = sh.at(f, y, xx, i);
                    den[j] = k + a * sum;
                    tgt[j] = x[j] * den[j].powf(-p);
                }
            }
        }
    }
    (den, tgt)
}

/// Cross-map: `d = k + a Σ_{W(f)} md²`, `t = x d^-p`, in f64.
#[allow(clippy::too_many_arguments)]
fn ref_cross(
    sh: Shape,
    x: &[f64],
    md: &[f64],
    size: usize,
    a: f64,
    p: f64,
    k: f64,
    blocked: bool,
) -> (Vec<f64>, Vec<f64>) {
    let mut den = vec![0.0; sh.len()];
    let mut tgt = vec![0.0; sh.len()];
    for f in 0..sh.nf {
        for y in 0..sh.s {
            for xx in 0..sh.s {
                for i in 0..sh.n {
                    let sum: f64 = chan_window(f, size, sh.nf, blocked)
                        .map(|c| md[sh.at(c, y, xx, i)].powi(2))
                        .sum();
                    let j = sh.at(f, y, xx, i);
                    den[j] = k + a * sum;
                    tgt[j] = x[j] * den[j].powf(-p);
                }
            }
        }
    }
    (den, tgt)
}

/// Runs the same-map forward; returns `(denoms, target)`.
fn run_spatial(
    sh: Shape,
    img: &NvMatrix,
    md: Option<&NvMatrix>,
    size: usize,
    a: f32,
    p: f32,
) -> (Vec<f32>, Vec<f32>) {
    let (mut den, mut tgt) = (NvMatrix::default(), NvMatrix::default());
    match md {
        None => conv_response_norm(img, &mut den, &mut tgt, sh.nf, size, a, p).unwrap(),
        Some(md) => conv_contrast_norm(img, md, &mut den, &mut tgt, sh.nf, size, a, p).unwrap(),
    }
    (den.into_vec(), tgt.into_vec())
}

#[allow(clippy::too_many_arguments)]
fn run_cross(
    sh: Shape,
    img: &NvMatrix,
    md: Option<&NvMatrix>,
    size: usize,
    a: f32,
    p: f32,
    k: Option<f32>,
    blocked: bool,
) -> (Vec<f32>, Vec<f32>) {
    let (mut den, mut tgt) = (NvMatrix::default(), NvMatrix::default());
    match (md, k) {
        (None, None) => {
            conv_response_norm_cross_map(img, &mut den, &mut tgt, sh.nf, size, a, p, blocked)
                .unwrap()
        }
        (None, Some(k)) => conv_response_norm_cross_map_min_div(
            img, &mut den, &mut tgt, sh.nf, size, a, p, k, blocked,
        )
        .unwrap(),
        (Some(md), _) => {
            conv_contrast_norm_cross_map(img, md, &mut den, &mut tgt, sh.nf, size, a, p, blocked)
                .unwrap()
        }
    }
    (den.into_vec(), tgt.into_vec())
}

const IMAGE_COUNTS: [usize; 4] = [1, 37, 100, 130];

#[test]
fn dispatch_picks_the_originals_kernels() {
    use ContrastNormKernel::*;
    assert_eq!(contrast_norm_kernel(32, 3), ManyFilter);
    assert_eq!(contrast_norm_kernel(32, 6), CNorm2);
    assert_eq!(contrast_norm_kernel(8, 6), CNorm2);
    assert_eq!(contrast_norm_kernel(5, 6), FewFilter { num_filters: 5 });
    assert_eq!(contrast_norm_kernel(3, 3), FewFilter { num_filters: 3 });
    assert_eq!(
        response_norm_undo_kernel(32, 5),
        ResponseNormUndoKernel::RNormUndo
    );
    assert_eq!(
        response_norm_undo_kernel(32, 6),
        ResponseNormUndoKernel::RNormUndo2
    );
}

#[test]
fn same_map_forward_matches_float64() {
    // kCNorm_fewfilter (1..8 filters), kCNorm_manyfilter, kCNorm2 (sizeX >= 6, also
    // with 4 and 8 filters), on awkward image sizes and counts.
    let mut cases = Vec::new();
    for nf in 1..=8 {
        cases.push((
            Shape {
                nf,
                s: 5,
                n: IMAGE_COUNTS[nf % 4],
            },
            3,
        ));
    }
    for (k, &n) in IMAGE_COUNTS.iter().enumerate() {
        cases.push((Shape { nf: 16, s: 7, n }, [3, 5, 2, 4][k]));
        cases.push((Shape { nf: 16, s: 9, n }, [6, 7, 9, 6][k]));
    }
    cases.push((Shape { nf: 4, s: 6, n: 37 }, 6));
    cases.push((
        Shape {
            nf: 8,
            s: 5,
            n: 130,
        },
        8,
    ));
    for (c, &(sh, size)) in cases.iter().enumerate() {
        let (a, p) = (0.3f32, 0.75f32);
        let img = mat(100 + c as u64, sh.rows(), sh.n, -1.0, 1.0);
        let md = mat(200 + c as u64, sh.rows(), sh.n, -1.0, 1.0);
        let what = format!(
            "{:?} size {size} ({:?})",
            sh,
            contrast_norm_kernel(sh.nf, size)
        );
        // response norm: meanDiffs = images
        let (den, tgt) = run_spatial(sh, &img, None, size, a, p);
        let x = f64s(img.data());
        let (rd, rt) = ref_spatial(sh, &x, &x, size, a as f64, p as f64, 1.0);
        assert_close(&format!("rnorm denoms {what}"), &den, &rd, 2e-6);
        assert_close(&format!("rnorm target {what}"), &tgt, &rt, 2e-6);
        // contrast norm
        let (den, tgt) = run_spatial(sh, &img, Some(&md), size, a, p);
        let (rd, rt) = ref_spatial(sh, &x, &f64s(md.data()), size, a as f64, p as f64, 1.0);
        assert_close(&format!("cnorm denoms {what}"), &den, &rd, 2e-6);
        assert_close(&format!("cnorm target {what}"), &tgt, &rt, 2e-6);
    }
}

#[test]
fn cross_map_forward_matches_float64() {
    for (c, &n) in IMAGE_COUNTS.iter().enumerate() {
        for &(nf, size) in &[(16usize, 5usize), (32, 9), (16, 16), (32, 1), (16, 4)] {
            for blocked in [false, true] {
                let sh = Shape { nf, s: 3 + c, n };
                let img = mat(300 + c as u64, sh.rows(), n, -1.0, 1.0);
                let md = mat(400 + c as u64, sh.rows(), n, -1.0, 1.0);
                let x = f64s(img.data());
                let what = format!("{sh:?} size {size} blocked {blocked}");
                let (a, p) = (0.2f32, 0.75f32);
                let (den, tgt) = run_cross(sh, &img, None, size, a, p, None, blocked);
                let (rd, rt) = ref_cross(sh, &x, &x, size, a as f64, p as f64, 1.0, blocked);
                assert_close(&format!("cmrnorm denoms {what}"), &den, &rd, 2e-6);
                assert_close(&format!("cmrnorm target {what}"), &tgt, &rt, 2e-6);
                // 2012 minDiv form (AlexNet: k = 2)
                let (den, tgt) = run_cross(sh, &img, None, size, a, p, Some(2.0), blocked);
                let (rd, rt) = ref_cross(sh, &x, &x, size, a as f64, p as f64, 2.0, blocked);
                assert_close(&format!("cmrnorm minDiv denoms {what}"), &den, &rd, 2e-6);
                assert_close(&format!("cmrnorm minDiv target {what}"), &tgt, &rt, 2e-6);
                // contrast form
                let (den, tgt) = run_cross(sh, &img, Some(&md), size, a, p, None, blocked);
                let (rd, rt) = ref_cross(
                    sh,
                    &x,
                    &f64s(md.data()),
                    size,
                    a as f64,
                    p as f64,
                    1.0,
                    blocked,
                );
                assert_close(&format!("cross-map cnorm denoms {what}"), &den, &rd, 2e-6);
                assert_close(&format!("cross-map cnorm target {what}"), &tgt, &rt, 2e-6);
            }
        }
    }
}

#[test]
fn min_div_one_is_the_2011_function() {
    let sh = Shape {
        nf: 16,
        s: 5,
        n: 37,
    };
    let img = mat(5, sh.rows(), sh.n, -2.0, 2.0);
    for blocked in [false, true] {
        let a = run_cross(sh, &img, None, 5, 0.1, 0.75, None, blocked);
        let b = run_cross(sh, &img, None, 5, 0.1, 0.75, Some(1.0), blocked);
        assert!(a == b);
    }
}

/// Central-difference gradient of `loss` at `x` (f64).
fn numerical_gradient(x: &[f64], loss: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut x = x.to_vec();
    let mut g = vec![0.0; x.len()];
    for j in 0..x.len() {
        let h = 1e-5 * x[j].abs().max(1.0);
        let v = x[j];
        x[j] = v + h;
        let up = loss(&x);
        x[j] = v - h;
        let down = loss(&x);
        x[j] = v;
        g[j] = (up - down) / (2.0 * h);
    }
    g
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Runs the same-map undo on the outputs of our forward; returns `(target, acts)`.
#[allow(clippy::too_many_arguments)]
fn run_spatial_undo(
    sh: Shape,
    img: &NvMatrix,
    md: Option<&NvMatrix>,
    og: &NvMatrix,
    size: usize,
    a: f32,
    p: f32,
    target: NvMatrix,
    st: f32,
    so: f32,
    flag: Undo2Add,
) -> (Vec<f32>, Vec<f32>) {
    let (mut den, mut acts) = (NvMatrix::default(), NvMatrix::default());
    match md {
        None => conv_response_norm(img, &mut den, &mut acts, sh.nf, size, a, p).unwrap(),
        Some(md) => conv_contrast_norm(img, md, &mut den, &mut acts, sh.nf, size, a, p).unwrap(),
    }
    let inputs = md.unwrap_or(img);
    let mut target = target;
    conv_response_norm_undo_with(
        og,
        &den,
        inputs,
        &mut acts,
        &mut target,
        sh.nf,
        size,
        a,
        p,
        st,
        so,
        flag,
    )
    .unwrap();
    (target.into_vec(), acts.into_vec())
}

#[test]
fn rnorm_undo_is_the_gradient() {
    // kRNormUndo (size 3, 5) and kRNormUndo2 (size 6, 7; plain write on a fresh target,
    // where the original's inverted flag reads zeros).
    for (c, &(s, n, size)) in [(6usize, 3usize, 3usize), (5, 2, 5), (8, 2, 6), (7, 1, 7)]
        .iter()
        .enumerate()
    {
        let sh = Shape { nf: 16, s, n };
        let (a, p) = (0.4f32, 0.75f32);
        let img = mat(500 + c as u64, sh.rows(), n, -1.0, 1.0);
        let og = mat(600 + c as u64, sh.rows(), n, -1.0, 1.0);
        let (got, _) = run_spatial_undo(
            sh,
            &img,
            None,
            &og,
            size,
            a,
            p,
            NvMatrix::default(),
            0.0,
            1.0,
            Undo2Add::AsOriginal,
        );
        let g = f64s(og.data());
        let want = numerical_gradient(&f64s(img.data()), |x| {
            dot(&g, &ref_spatial(sh, x, x, size, a as f64, p as f64, 1.0).1)
        });
        assert_close(&format!("rnorm undo {sh:?} size {size}"), &got, &want, 2e-5);
    }
}

#[test]
fn cnorm_undo_is_the_gradient_with_the_mean_held_fixed() {
    // The original ignores the mean's dependence on the input: the undo is the
    // gradient of x * (1 + a Σ (x - m)²)^-p with m frozen.
    for (c, &(s, n, size)) in [(6usize, 3usize, 3usize), (8, 2, 6)].iter().enumerate() {
        let sh = Shape { nf: 16, s, n };
        let (a, p) = (0.4f32, 0.75f32);
        let img = mat(700 + c as u64, sh.rows(), n, -1.0, 1.0);
        let mean = uniform(710 + c as u64, sh.len(), -0.3, 0.3);
        let md_v: Vec<f32> = img.data().iter().zip(&mean).map(|(x, m)| x - m).collect();
        let md = NvMatrix::from_vec(sh.rows(), n, false, md_v.clone());
        let og = mat(720 + c as u64, sh.rows(), n, -1.0, 1.0);
        let (got, _) = run_spatial_undo(
            sh,
            &img,
            Some(&md),
            &og,
            size,
            a,
            p,
            NvMatrix::default(),
            0.0,
            1.0,
            Undo2Add::AsOriginal,
        );
        let g = f64s(og.data());
        let x0 = f64s(img.data());
        // m = x0 - md, exactly as the kernel sees it.
        let m: Vec<f64> = x0.iter().zip(&md_v).map(|(x, d)| x - *d as f64).collect();
        let want = numerical_gradient(&x0, |x| {
            let md: Vec<f64> = x.iter().zip(&m).map(|(x, m)| x - m).collect();
            dot(
                &g,
                &ref_spatial(sh, x, &md, size, a as f64, p as f64, 1.0).1,
            )
        });
        assert_close(&format!("cnorm undo {sh:?} size {size}"), &got, &want, 2e-5);
    }
}

#[test]
fn cmrnorm_undo_is_the_gradient() {
    for (c, &(nf, size, blocked, k)) in [
        (16usize, 5usize, false, 1.0f32),
        (16, 5, true, 1.0),
        (32, 9, false, 2.0),
        (16, 4, false, 2.0),
        (16, 3, true, 0.25),
    ]
    .iter()
    .enumerate()
    {
        let sh = Shape { nf, s: 3, n: 3 };
        let (a, p) = (0.3f32, 0.75f32);
        let img = mat(800 + c as u64, sh.rows(), sh.n, -1.0, 1.0);
        let og = mat(810 + c as u64, sh.rows(), sh.n, -1.0, 1.0);
        let (mut den, mut acts, mut tgt) = (
            NvMatrix::default(),
            NvMatrix::default(),
            NvMatrix::default(),
        );
        conv_response_norm_cross_map_min_div(&img, &mut den, &mut acts, nf, size, a, p, k, blocked)
            .unwrap();
        conv_response_norm_cross_map_undo(
            &og, &den, &img, &mut acts, &mut tgt, nf, size, a, p, blocked, 0.0, 1.0,
        )
        .unwrap();
        let g = f64s(og.data());
        let want = numerical_gradient(&f64s(img.data()), |x| {
            dot(
                &g,
                &ref_cross(sh, x, x, size, a as f64, p as f64, k as f64, blocked).1,
            )
        });
        assert_close(
            &format!("cmrnorm undo {sh:?} size {size} blocked {blocked} minDiv {k}"),
            tgt.data(),
            &want,
            2e-5,
        );
    }
}

/// Every undo leaves `acts` holding the prelims,
/// `__fdividef((-2 * addScale * powScale * outGrads) * acts, denoms)`, in every element
/// (each task makes them for the elements it sums, so this checks that none is left
/// out), with both thread counts and lane widths.
#[test]
fn undo_overwrites_acts_with_the_prelims() {
    use convnet::nvmatrix::intrinsics::fdividef;
    let sh = Shape {
        nf: 32,
        s: 5,
        n: 70,
    };
    let (a, p) = (0.3f32, 0.75f32);
    let img = mat(1, sh.rows(), sh.n, -1.0, 1.0);
    let og = mat(2, sh.rows(), sh.n, -1.0, 1.0);
    // Same-map with sizeX 3 (kRNormUndo) and 7 (kRNormUndo2), cross-map with sizeF 5
    // and 3, blocked or not.
    for (name, size, cross_map, blocked) in [
        ("same-map 3", 3, false, false),
        ("same-map 7", 7, false, false),
        ("cross-map 5", 5, true, false),
        ("cross-map 3 blocked", 3, true, true),
    ] {
        let (mut den, mut acts) = (NvMatrix::default(), NvMatrix::default());
        if cross_map {
            conv_response_norm_cross_map(&img, &mut den, &mut acts, sh.nf, size, a, p, blocked)
        } else {
            conv_response_norm(&img, &mut den, &mut acts, sh.nf, size, a, p)
        }
        .unwrap();
        let scale = -2.0f32 * a * p;
        let want: Vec<u32> = (acts.data().iter().zip(og.data()).zip(den.data()))
            .map(|((&x, &g), &d)| fdividef(scale * g * x, d).to_bits())
            .collect();
        let before = acts.clone();
        let out = same_bits_any_threads_or_lanes(name, || {
            let (mut acts, mut tgt) = (before.clone(), NvMatrix::default());
            if cross_map {
                conv_response_norm_cross_map_undo(
                    &og, &den, &img, &mut acts, &mut tgt, sh.nf, size, a, p, blocked, 0.0, 1.0,
                )
            } else {
                conv_response_norm_undo(
                    &og, &den, &img, &mut acts, &mut tgt, sh.nf, size, a, p, 0.0, 1.0,
                )
            }
            .unwrap();
            acts.data().to_vec()
        });
        let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
        assert!(got == want, "{name}: acts are not the prelims everywhere");
    }
}

/// The accumulate and overwrite paths, and kRNormUndo2's inverted flag.
#[test]
fn undo_write_modes_and_the_inverted_add_flag() {
    let (a, p) = (0.3f32, 0.75f32);
    for size in [3usize, 6] {
        let sh = Shape {
            nf: 16,
            s: 7,
            n: 37,
        };
        let img = mat(11, sh.rows(), sh.n, -1.0, 1.0);
        let og = mat(12, sh.rows(), sh.n, -1.0, 1.0);
        let old = mat(13, sh.rows(), sh.n, -1.0, 1.0);
        let fresh = NvMatrix::default();
        let run = |t: &NvMatrix, st, so, flag| {
            run_spatial_undo(sh, &img, None, &og, size, a, p, t.clone(), st, so, flag).0
        };
        let v = run(&fresh, 0.0, 1.0, Undo2Add::Fixed);
        // Accumulate: target = 0.5 * old + 2 * v (fused as the original).
        let acc = run(&old, 0.5, 2.0, Undo2Add::Fixed);
        let want: Vec<f64> = old
            .data()
            .iter()
            .zip(&v)
            .map(|(&t, &v)| 0.5 * t as f64 + 2.0 * v as f64)
            .collect();
        assert_close(&format!("accumulate size {size}"), &acc, &want, 1e-6);
        let orig = run(&old, 0.5, 2.0, Undo2Add::AsOriginal);
        let nan = NvMatrix::from_vec(sh.rows(), sh.n, false, vec![f32::NAN; sh.len()]);
        let plain_on_nan = run(&nan, 0.0, 1.0, Undo2Add::AsOriginal);
        if size < 6 {
            // kRNormUndo: the flag is right; the plain write never reads the target.
            assert!(orig == acc);
            assert!(plain_on_nan == v);
        } else {
            // kRNormUndo2: accumulate becomes overwrite (scales ignored)...
            assert!(
                orig == v,
                "size {size}: the original drops scaleTargets*target and scaleOutput"
            );
            // ...and the plain write reads the target times 0: NaN stays NaN.
            assert!(plain_on_nan.iter().all(|x| x.is_nan()));
            // On a fresh (zeroed) target it gives v.
            assert!(run(&fresh, 0.0, 1.0, Undo2Add::AsOriginal) == v);
            assert!(run(&nan, 0.0, 1.0, Undo2Add::Fixed) == v);
        }
    }
}

#[test]
fn cross_map_undo_accumulates() {
    let sh = Shape {
        nf: 32,
        s: 5,
        n: 100,
    };
    let (a, p) = (0.3f32, 0.75f32);
    let img = mat(21, sh.rows(), sh.n, -1.0, 1.0);
    let og = mat(22, sh.rows(), sh.n, -1.0, 1.0);
    let old = mat(23, sh.rows(), sh.n, -1.0, 1.0);
    for blocked in [false, true] {
        let run = |t: NvMatrix, st: f32, so: f32| {
            let (mut den, mut acts) = (NvMatrix::default(), NvMatrix::default());
            conv_response_norm_cross_map(&img, &mut den, &mut acts, sh.nf, 5, a, p, blocked)
                .unwrap();
            let mut t = t;
            conv_response_norm_cross_map_undo(
                &og, &den, &img, &mut acts, &mut t, sh.nf, 5, a, p, blocked, st, so,
            )
            .unwrap();
            t.into_vec()
        };
        let v = run(NvMatrix::default(), 0.0, 1.0);
        let acc = run(old.clone(), 1.0, 0.5);
        let want: Vec<f64> = old
            .data()
            .iter()
            .zip(&v)
            .map(|(&t, &v)| t as f64 + 0.5 * v as f64)
            .collect();
        assert_close("cross-map accumulate", &acc, &want, 1e-6);
        // The plain write never reads the target.
        let nan = NvMatrix::from_vec(sh.rows(), sh.n, false, vec![f32::NAN; sh.len()]);
        assert!(run(nan, 0.0, 1.0) == v);
    }
}

/// `1 / (0.001 + sqrt(Σ_window x²))`, in f64.
fn ref_tica(sh: Shape, x: &[f64], size: usize) -> Vec<f64> {
    let mut out = vec![0.0; sh.len()];
    for f in 0..sh.nf {
        for y in 0..sh.s {
            for xx in 0..sh.s {
                for i in 0..sh.n {
                    let mut sum = 0.0;
                    for wy in fwd_window(y, size, sh.s) {
                        for wx in fwd_window(xx, size, sh.s) {
                            sum += x[sh.at(f, wy, wx, i)].powi(2);
                        }
                    }
                    out[sh.at(f, y, xx, i)] = 1.0 / (0.001 + sum.sqrt());
                }
            }
        }
    }
    out
}

/// Σ_window t (forward window), in f64.
fn ref_window_sum(sh: Shape, t: &[f64], size: usize) -> Vec<f64> {
    let mut out = vec![0.0; sh.len()];
    for f in 0..sh.nf {
        for y in 0..sh.s {
            for xx in 0..sh.s {
                for i in 0..sh.n {
                    let mut sum = 0.0;
                    for wy in fwd_window(y, size, sh.s) {
                        for wx in fwd_window(xx, size, sh.s) {
                            sum += t[sh.at(f, wy, wx, i)];
                        }
                    }
                    out[sh.at(f, y, xx, i)] = sum;
                }
            }
        }
    }
    out
}

#[test]
fn tica_matches_float64() {
    for (c, &n) in IMAGE_COUNTS.iter().enumerate() {
        let sh = Shape { nf: 16, s: 5, n };
        let size = [3, 5, 2, 4][c];
        let img = mat(900 + c as u64, sh.rows(), n, -1.0, 1.0);
        let old = mat(910 + c as u64, sh.rows(), n, -1.0, 1.0);
        let x = f64s(img.data());
        let r = ref_tica(sh, &x, size);
        let mut t = NvMatrix::default();
        conv_tica(&img, &mut t, sh.nf, size, 0.0, 2.0).unwrap();
        let want: Vec<f64> = r.iter().map(|v| 2.0 * v).collect();
        assert_close(&format!("tica {sh:?} size {size}"), t.data(), &want, 2e-6);
        let mut t = old.clone();
        conv_tica(&img, &mut t, sh.nf, size, 0.5, 2.0).unwrap();
        let want: Vec<f64> = r
            .iter()
            .zip(old.data())
            .map(|(v, &o)| 0.5 * o as f64 + 2.0 * v)
            .collect();
        assert_close(
            &format!("tica scaled {sh:?} size {size}"),
            t.data(),
            &want,
            2e-6,
        );

        // TICAGrad: Σ when scaleTarget == 0, sqrt(Σ) otherwise (HALF-FINISHED, reproduced).
        let ticas = mat(920 + c as u64, sh.rows(), n, 0.0, 1.0);
        let s = ref_window_sum(sh, &f64s(ticas.data()), size);
        let mut t = NvMatrix::default();
        conv_tica_grad(&img, &ticas, &mut t, sh.nf, size, 0.0, 2.0).unwrap();
        let want: Vec<f64> = s.iter().zip(&x).map(|(s, x)| -2.0 * x * s).collect();
        assert_close(
            &format!("tica grad {sh:?} size {size}"),
            t.data(),
            &want,
            2e-6,
        );
        let mut t = old.clone();
        conv_tica_grad(&img, &ticas, &mut t, sh.nf, size, 0.5, 2.0).unwrap();
        let want: Vec<f64> = s
            .iter()
            .zip(&x)
            .zip(old.data())
            .map(|((s, x), &o)| 0.5 * o as f64 - 2.0 * x * s.sqrt())
            .collect();
        assert_close(
            &format!("tica grad scaled {sh:?} size {size}"),
            t.data(),
            &want,
            2e-6,
        );
    }
}

#[test]
fn tica_grad_is_the_gradient_for_odd_sizes() {
    // With scaleTarget == 0 and ticas = convTICA(x), convTICAGrad(x) is the gradient of
    // L(x) = -Σ_q (u_q - 0.001 ln(0.001 + u_q)), u_q = sqrt(Σ_{W(q)} x²).
    for &size in &[3usize, 5] {
        let sh = Shape { nf: 16, s: 5, n: 2 };
        let img = mat(31, sh.rows(), sh.n, -1.0, 1.0);
        let (mut ticas, mut g) = (NvMatrix::default(), NvMatrix::default());
        conv_tica(&img, &mut ticas, sh.nf, size, 0.0, 1.0).unwrap();
        conv_tica_grad(&img, &ticas, &mut g, sh.nf, size, 0.0, 1.0).unwrap();
        let want = numerical_gradient(&f64s(img.data()), |x| {
            let sq: Vec<f64> = x.iter().map(|v| v * v).collect();
            ref_window_sum(sh, &sq, size)
                .iter()
                .map(|s| -(s.sqrt() - 0.001 * (0.001 + s.sqrt()).ln()))
                .sum()
        });
        assert_close(&format!("tica grad size {size}"), g.data(), &want, 2e-5);
    }
}

#[test]
fn normalize_local_weights_matches_float64() {
    for &(modules, per, nf) in &[
        (3usize, 25usize, 16usize),
        (4, 9, 32),
        (2, 27, 64),
        (5, 4, 128),
        (1, 50, 48),
    ] {
        let w = mat(41 + nf as u64, modules * per, nf, -1.0, 1.0);
        let norm = (per as f32 / 3.0).sqrt();
        let mut got = w.clone();
        normalize_local_weights(&mut got, modules, norm).unwrap();
        let mut want = f64s(w.data());
        for m in 0..modules {
            for f in 0..nf {
                let s: f64 = (0..per)
                    .map(|p| want[(m * per + p) * nf + f].powi(2))
                    .sum::<f64>()
                    .sqrt();
                if s > norm as f64 {
                    for p in 0..per {
                        want[(m * per + p) * nf + f] *= norm as f64 / s;
                    }
                }
            }
        }
        assert_close(
            &format!("normalizeLocalWeights {modules}x{per}x{nf}"),
            got.data(),
            &want,
            2e-6,
        );
        assert!(
            got.data().iter().zip(w.data()).any(|(a, b)| a != b),
            "some filter must be rescaled"
        );
        assert!(
            got.data().iter().zip(w.data()).any(|(a, b)| a == b),
            "some filter must be kept"
        );
    }
}

/// Units in the last place of `v` as an f32.
fn ulp32(v: f64) -> f64 {
    let a = (v.abs() as f32).max(f32::MIN_POSITIVE);
    (f32::from_bits(a.to_bits() + 1) - a) as f64
}

/// Largest error of `got` against the f64 evaluation `want`, in ulps of `scale`.
fn max_ulps(got: &[f32], want: &[f64], scale: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .zip(scale)
        .map(|((&g, &w), &s)| (g as f64 - w).abs() / ulp32(s))
        .fold(0.0, f64::max)
}

/// Σ over the reverse window `[p + size/2 - size + 1, p + size/2]` (the undo's), in f64.
fn ref_reverse_sum(sh: Shape, t: &[f64], size: usize) -> Vec<f64> {
    let rev = |q: usize| {
        let lo = q as i64 + (size / 2) as i64 - size as i64 + 1;
        (lo.max(0) as usize)..((lo + size as i64).clamp(0, sh.s as i64) as usize)
    };
    let mut out = vec![0.0; sh.len()];
    for f in 0..sh.nf {
        for y in 0..sh.s {
            for xx in 0..sh.s {
                for i in 0..sh.n {
                    let mut sum = 0.0;
                    for wy in rev(y) {
                        for wx in rev(xx) {
                            sum += t[sh.at(f, wy, wx, i)];
                        }
                    }
                    out[sh.at(f, y, xx, i)] = sum;
                }
            }
        }
    }
    out
}

/// The tiers' ulp bounds. The kernels' f32 operations are the original's; only the
/// fast intrinsics (`__powf`, `__fdividef`) can make them differ from it. So the
/// bound of each kernel is measured against an f64 evaluation of its operation
/// sequence from the intrinsic's (bit-exact) f32 inputs on, and asserted here as the
/// doc comments state it: forward target 5 ulp, undo 6 ulp (of its larger term: the
/// two can cancel), prelims 2, TICA 2, normalizeLocalWeights 2. Also printed: the
/// end-to-end error against an f64 evaluation of the whole sequence (window sums in
/// f64 too), which adds the f32 accumulation error the original has as well.
#[test]
fn ulp_bounds() {
    let sh = Shape {
        nf: 16,
        s: 8,
        n: 130,
    };
    let img = mat(51, sh.rows(), sh.n, -4.0, 4.0);
    let og = mat(52, sh.rows(), sh.n, -1.0, 1.0);
    let x = f64s(img.data());
    let g = f64s(og.data());
    let mut tier = [0f64; 5];
    let mut end = [0f64; 3];
    for &(a, p, size) in &[
        (0.00005f32 / 9.0, 0.75f32, 3usize),
        (0.001 / 81.0, 0.75, 9),
        (0.5, 0.75, 3),
        (0.05, 0.75, 6),
    ] {
        let (den, tgt) = run_spatial(sh, &img, None, size, a, p);
        let d = f64s(&den);
        let pw: Vec<f64> = d.iter().map(|d| d.powf(-p as f64)).collect();
        // forward target from the (exact) denominators on
        let want: Vec<f64> = (0..sh.len()).map(|j| x[j] * pw[j]).collect();
        tier[0] = tier[0].max(max_ulps(&tgt, &want, &want));
        // end to end
        let (rd, rt) = ref_spatial(sh, &x, &x, size, a as f64, p as f64, 1.0);
        end[0] = end[0].max(max_ulps(&den, &rd, &rd));
        end[1] = end[1].max(max_ulps(&tgt, &rt, &rt));
        // undo, from the prelims' f32 inputs on: prelim = z / d with z = (scale*og)*acts
        // in f32, summed over the reverse window in f64, v = inputs * Σ + og * d^-p.
        let mut acts = NvMatrix::from_vec(sh.rows(), sh.n, false, tgt.clone());
        let den_m = NvMatrix::from_vec(sh.rows(), sh.n, false, den.clone());
        let mut t = NvMatrix::default();
        let scale = -2.0f32 * a * p;
        let prelim: Vec<f64> = (0..sh.len())
            .map(|j| (scale * og.data()[j] * tgt[j]) as f64 / d[j])
            .collect();
        conv_response_norm_undo(
            &og, &den_m, &img, &mut acts, &mut t, sh.nf, size, a, p, 0.0, 1.0,
        )
        .unwrap();
        tier[1] = tier[1].max(max_ulps(acts.data(), &prelim, &prelim));
        let sum = ref_reverse_sum(sh, &prelim, size);
        let abs: Vec<f64> = prelim.iter().map(|v| v.abs()).collect();
        let abs_sum = ref_reverse_sum(sh, &abs, size);
        let want: Vec<f64> = (0..sh.len())
            .map(|j| x[j] * sum[j] + g[j] * pw[j])
            .collect();
        let mag: Vec<f64> = (0..sh.len())
            .map(|j| (x[j] * abs_sum[j]).abs().max((g[j] * pw[j]).abs()))
            .collect();
        tier[2] = tier[2].max(max_ulps(t.data(), &want, &mag));
        // end to end: prelims from the f64 forward
        let prelim: Vec<f64> = (0..sh.len())
            .map(|j| -2.0 * a as f64 * p as f64 * g[j] * rt[j] / rd[j])
            .collect();
        let sum = ref_reverse_sum(sh, &prelim, size);
        let want: Vec<f64> = (0..sh.len())
            .map(|j| x[j] * sum[j] + g[j] * rd[j].powf(-p as f64))
            .collect();
        end[2] = end[2].max(max_ulps(t.data(), &want, &mag));
    }
    // TICA: scaleOutput * (1 / r), r = f32(f64(sqrtf(Σ x²)) + 0.001) (computed in f32
    // with the kernel's order: rows, then columns, FMA).
    let mut t = NvMatrix::default();
    conv_tica(&img, &mut t, sh.nf, 3, 0.0, 1.0).unwrap();
    let mut want = vec![0.0; sh.len()];
    for f in 0..sh.nf {
        for y in 0..sh.s {
            for xx in 0..sh.s {
                for i in 0..sh.n {
                    let mut acc = 0f32;
                    for wy in fwd_window(y, 3, sh.s) {
                        for wx in fwd_window(xx, 3, sh.s) {
                            let v = img.data()[sh.at(f, wy, wx, i)];
                            acc = v.mul_add(v, acc);
                        }
                    }
                    want[sh.at(f, y, xx, i)] = 1.0 / ((acc.sqrt() as f64 + 0.001) as f32) as f64;
                }
            }
        }
    }
    tier[3] = max_ulps(t.data(), &want, &want);
    // normalizeLocalWeights: w * (norm / sqrtf(Σ w²)).
    let w = mat(53, 9 * 75, 64, -1.0, 1.0);
    let mut got = w.clone();
    normalize_local_weights(&mut got, 9, 2.0).unwrap();
    let mut want = f64s(w.data());
    for m in 0..9 {
        for f in 0..64 {
            let acc = (0..75).fold(0f32, |acc, p| {
                let v = w.data()[(m * 75 + p) * 64 + f];
                v.mul_add(v, acc)
            });
            let s = acc.sqrt();
            if s > 2.0 {
                for p in 0..75 {
                    want[(m * 75 + p) * 64 + f] *= 2.0 / s as f64;
                }
            }
        }
    }
    tier[4] = max_ulps(got.data(), &want, &want);
    eprintln!(
        "tier ulps: target {:.2}, prelims {:.2}, undo {:.2}, tica {:.2}, normalizeLocalWeights {:.2}",
        tier[0], tier[1], tier[2], tier[3], tier[4]
    );
    eprintln!(
        "end-to-end ulps: denoms {:.2}, target {:.2}, undo {:.2}",
        end[0], end[1], end[2]
    );
    assert!(
        tier[0] <= 5.0 && tier[1] <= 2.0 && tier[2] <= 6.0 && tier[3] <= 2.0 && tier[4] <= 2.0,
        "{tier:?}"
    );
}

#[test]
fn bad_shapes_are_errors() {
    let e = |r: Result<(), convnet::cudaconv2::ShapeError>| assert!(r.is_err());
    let (mut d, mut t) = (NvMatrix::default(), NvMatrix::default());
    let img = mat(1, 16 * 25, 7, -1.0, 1.0);
    let odd = mat(1, 16 * 24, 7, -1.0, 1.0); // 24 pixels: not square
    let twelve = mat(1, 12 * 25, 7, -1.0, 1.0);
    e(conv_response_norm(&odd, &mut d, &mut t, 16, 3, 0.1, 0.75));
    e(conv_response_norm(&img, &mut d, &mut t, 0, 3, 0.1, 0.75));
    e(conv_response_norm(&img, &mut d, &mut t, 7, 3, 0.1, 0.75)); // 400 rows / 7
    e(conv_response_norm(
        &twelve, &mut d, &mut t, 12, 3, 0.1, 0.75,
    )); // 12 filters
    e(conv_contrast_norm(
        &img,
        &mat(2, 16 * 25, 8, 0.0, 1.0),
        &mut d,
        &mut t,
        16,
        3,
        0.1,
        0.75,
    ));
    let mut tr = img.clone();
    tr.set_trans(true);
    e(conv_response_norm(&tr, &mut d, &mut t, 16, 3, 0.1, 0.75));
    e(conv_response_norm_cross_map(
        &img, &mut d, &mut t, 16, 0, 0.1, 0.75, false,
    ));
    e(conv_response_norm_cross_map(
        &img, &mut d, &mut t, 16, 17, 0.1, 0.75, false,
    ));
    let eight = mat(1, 8 * 25, 7, -1.0, 1.0);
    e(conv_response_norm_cross_map(
        &eight, &mut d, &mut t, 8, 3, 0.1, 0.75, false,
    ));
    e(conv_response_norm_cross_map_min_div(
        &odd, &mut d, &mut t, 16, 3, 0.1, 0.75, 2.0, true,
    ));
    e(conv_contrast_norm_cross_map(
        &img,
        &mat(2, 16 * 25, 8, 0.0, 1.0),
        &mut d,
        &mut t,
        16,
        3,
        0.1,
        0.75,
        false,
    ));
    // undo
    conv_response_norm(&img, &mut d, &mut t, 16, 3, 0.1, 0.75).unwrap();
    let mut acts = t.clone();
    let mut tgt = NvMatrix::default();
    let og = mat(3, 16 * 25, 7, -1.0, 1.0);
    let small = mat(3, 16 * 25, 6, -1.0, 1.0);
    e(conv_response_norm_undo(
        &og, &d, &small, &mut acts, &mut tgt, 16, 3, 0.1, 0.75, 0.0, 1.0,
    ));
    e(conv_response_norm_undo(
        &og, &small, &img, &mut acts, &mut tgt, 16, 3, 0.1, 0.75, 0.0, 1.0,
    ));
    e(conv_response_norm_undo(
        &small, &d, &img, &mut acts, &mut tgt, 16, 3, 0.1, 0.75, 0.0, 1.0,
    ));
    let mut acts8 = eight.clone();
    e(conv_contrast_norm_undo(
        &eight, &eight, &eight, &mut acts8, &mut tgt, 8, 3, 0.1, 0.75, 0.0, 1.0,
    ));
    let mut ttr = NvMatrix::default();
    ttr.set_trans(true);
    e(conv_response_norm_undo(
        &og, &d, &img, &mut acts, &mut ttr, 16, 3, 0.1, 0.75, 0.0, 1.0,
    ));
    e(conv_response_norm_cross_map_undo(
        &og, &d, &img, &mut acts, &mut tgt, 16, 0, 0.1, 0.75, false, 0.0, 1.0,
    ));
    e(conv_response_norm_cross_map_undo(
        &og, &d, &img, &mut acts, &mut tgt, 16, 20, 0.1, 0.75, true, 0.0, 1.0,
    ));
    assert!(
        acts.data() == t.data(),
        "a refused undo must not touch acts"
    );
    // TICA
    e(conv_tica(&eight, &mut tgt, 8, 3, 0.0, 1.0));
    e(conv_tica(&img, &mut tgt, 16, 6, 0.0, 1.0));
    e(conv_tica(&img, &mut NvMatrix::default(), 16, 3, 1.0, 1.0));
    e(conv_tica_grad(&img, &small, &mut tgt, 16, 3, 0.0, 1.0));
    e(conv_tica_grad(&img, &img, &mut tgt, 16, 7, 0.0, 1.0));
    // normalizeLocalWeights
    e(normalize_local_weights(
        &mut mat(1, 10, 16, 0.0, 1.0),
        3,
        1.0,
    ));
    e(normalize_local_weights(&mut mat(1, 9, 8, 0.0, 1.0), 3, 1.0));
    e(normalize_local_weights(
        &mut mat(1, 9, 16, 0.0, 1.0),
        0,
        1.0,
    ));
    let mut wt = mat(1, 9, 16, 0.0, 1.0);
    wt.set_trans(true);
    e(normalize_local_weights(&mut wt, 3, 1.0));
}

/// Forward outputs `denoms ++ target`.
fn fwd_bits(f: impl Fn(&mut NvMatrix, &mut NvMatrix)) -> Vec<f32> {
    let (mut d, mut t) = (NvMatrix::default(), NvMatrix::default());
    f(&mut d, &mut t);
    let mut v = d.into_vec();
    v.extend(t.into_vec());
    v
}

#[test]
fn regression_goldens() {
    let mut reg = Regression::new("norm");
    let (a, p) = (0.3f32, 0.75f32);

    // Every same-map variant (rnorm and cnorm forward; undo through kRNormUndo and
    // kRNormUndo2, both flags and both write modes).
    let mut spatial = Vec::new();
    for nf in 1..=8 {
        spatial.push((
            Shape {
                nf,
                s: 5,
                n: IMAGE_COUNTS[nf % 4],
            },
            3,
        ));
    }
    spatial.push((
        Shape {
            nf: 16,
            s: 7,
            n: 130,
        },
        3,
    ));
    spatial.push((
        Shape {
            nf: 32,
            s: 6,
            n: 100,
        },
        5,
    ));
    spatial.push((
        Shape {
            nf: 16,
            s: 9,
            n: 37,
        },
        6,
    ));
    spatial.push((Shape { nf: 8, s: 10, n: 1 }, 7));
    for (c, &(sh, size)) in spatial.iter().enumerate() {
        let kind = contrast_norm_kernel(sh.nf, size);
        let img = mat(1000 + c as u64, sh.rows(), sh.n, -1.0, 1.0);
        let md = mat(1100 + c as u64, sh.rows(), sh.n, -1.0, 1.0);
        let name = format!("{:?} f{} s{} n{} size{}", kind, sh.nf, sh.s, sh.n, size);
        let out = same_bits_any_threads_or_lanes(&name, || {
            fwd_bits(|d, t| conv_response_norm(&img, d, t, sh.nf, size, a, p).unwrap())
        });
        reg.case(&format!("rnorm {name}"), &out);
        let out = same_bits_any_threads_or_lanes(&name, || {
            fwd_bits(|d, t| conv_contrast_norm(&img, &md, d, t, sh.nf, size, a, p).unwrap())
        });
        reg.case(&format!("cnorm {name}"), &out);
        if sh.nf.is_multiple_of(16) {
            let og = mat(1200 + c as u64, sh.rows(), sh.n, -1.0, 1.0);
            let old = mat(1300 + c as u64, sh.rows(), sh.n, -1.0, 1.0);
            let kind = response_norm_undo_kernel(sh.nf, size);
            for (tag, inputs) in [("rnorm", None), ("cnorm", Some(&md))] {
                for (st, so, t0) in [
                    (0.0f32, 1.0f32, NvMatrix::default()),
                    (0.5, 2.0, old.clone()),
                ] {
                    for flag in [Undo2Add::AsOriginal, Undo2Add::Fixed] {
                        let name = format!(
                            "{tag} undo {kind:?} {flag:?} f{} s{} n{} size{size} st{st} so{so}",
                            sh.nf, sh.s, sh.n
                        );
                        let out = same_bits_any_threads_or_lanes(&name, || {
                            let (mut t, mut acts) = run_spatial_undo(
                                sh,
                                &img,
                                inputs,
                                &og,
                                size,
                                a,
                                p,
                                t0.clone(),
                                st,
                                so,
                                flag,
                            );
                            t.append(&mut acts);
                            t
                        });
                        reg.case(&name, &out);
                    }
                }
            }
        }
    }

    // Cross-map: blocked and not, minDiv, contrast form, undo (plain and accumulate).
    for (c, &(nf, s, n, size)) in [
        (16usize, 5usize, 37usize, 5usize),
        (32, 4, 130, 9),
        (16, 3, 1, 16),
        (32, 6, 100, 4),
        (16, 7, 128, 1),
    ]
    .iter()
    .enumerate()
    {
        let sh = Shape { nf, s, n };
        let img = mat(2000 + c as u64, sh.rows(), n, -1.0, 1.0);
        let md = mat(2100 + c as u64, sh.rows(), n, -1.0, 1.0);
        let og = mat(2200 + c as u64, sh.rows(), n, -1.0, 1.0);
        let old = mat(2300 + c as u64, sh.rows(), n, -1.0, 1.0);
        for blocked in [false, true] {
            let name = format!("f{nf} s{s} n{n} size{size} blocked{blocked}");
            let out = same_bits_any_threads_or_lanes(&name, || {
                fwd_bits(|d, t| {
                    conv_response_norm_cross_map(&img, d, t, nf, size, a, p, blocked).unwrap()
                })
            });
            reg.case(&format!("cmrnorm {name}"), &out);
            let out = same_bits_any_threads_or_lanes(&name, || {
                fwd_bits(|d, t| {
                    conv_response_norm_cross_map_min_div(&img, d, t, nf, size, a, p, 2.0, blocked)
                        .unwrap()
                })
            });
            reg.case(&format!("cmrnorm minDiv2 {name}"), &out);
            let out = same_bits_any_threads_or_lanes(&name, || {
                fwd_bits(|d, t| {
                    conv_contrast_norm_cross_map(&img, &md, d, t, nf, size, a, p, blocked).unwrap()
                })
            });
            reg.case(&format!("cross-map cnorm {name}"), &out);
            for (st, so, t0) in [
                (0.0f32, 1.0f32, NvMatrix::default()),
                (1.0, 0.5, old.clone()),
            ] {
                let name = format!("cmrnorm undo {name} st{st} so{so}");
                let out = same_bits_any_threads_or_lanes(&name, || {
                    let (mut d, mut acts) = (NvMatrix::default(), NvMatrix::default());
                    conv_response_norm_cross_map_min_div(
                        &img, &mut d, &mut acts, nf, size, a, p, 2.0, blocked,
                    )
                    .unwrap();
                    let mut t = t0.clone();
                    conv_response_norm_cross_map_undo(
                        &og, &d, &img, &mut acts, &mut t, nf, size, a, p, blocked, st, so,
                    )
                    .unwrap();
                    let mut v = t.into_vec();
                    v.extend(acts.into_vec());
                    v
                });
                reg.case(&name, &out);
            }
        }
    }

    // TICA, TICAGrad, normalizeLocalWeights.
    for (c, &(s, n, size)) in [(5usize, 37usize, 3usize), (8, 130, 5), (4, 1, 2)]
        .iter()
        .enumerate()
    {
        let sh = Shape { nf: 32, s, n };
        let img = mat(3000 + c as u64, sh.rows(), n, -1.0, 1.0);
        let old = mat(3100 + c as u64, sh.rows(), n, -1.0, 1.0);
        for (st, so) in [(0.0f32, 1.0f32), (0.5, 2.0)] {
            let name = format!("f32 s{s} n{n} size{size} st{st} so{so}");
            let ticas = same_bits_any_threads_or_lanes(&name, || {
                let mut t = old.clone();
                conv_tica(&img, &mut t, 32, size, st, so).unwrap();
                t.into_vec()
            });
            reg.case(&format!("tica {name}"), &ticas);
            let ticas = NvMatrix::from_vec(sh.rows(), n, false, ticas);
            let out = same_bits_any_threads_or_lanes(&name, || {
                let mut t = old.clone();
                conv_tica_grad(&img, &ticas, &mut t, 32, size, st, so).unwrap();
                t.into_vec()
            });
            reg.case(&format!("tica grad {name}"), &out);
        }
    }
    for &(modules, per, nf) in &[
        (64usize, 27usize, 16usize),
        (9, 75, 32),
        (16, 9, 64),
        (4, 25, 128),
    ] {
        let w = mat(4000 + nf as u64, modules * per, nf, -1.0, 1.0);
        let name = format!("normalizeLocalWeights {modules}x{per}x{nf}");
        let out = same_bits_any_threads_or_lanes(&name, || {
            let mut w = w.clone();
            normalize_local_weights(&mut w, modules, 0.5 * (per as f32 / 3.0).sqrt()).unwrap();
            w.into_vec()
        });
        reg.case(&name, &out);
    }

    // The norm layers of our nets, 128 images, the nets' scale/pow (scale already
    // divided by size² or size as the parsers do), inputs like post-relu activations.
    let n = 128;
    let nets: [(&str, usize, usize, usize, bool, f32, f32); 6] = [
        (
            "18pct rnorm1 16x16x32",
            32,
            16,
            3,
            false,
            0.00005 / 9.0,
            1.0,
        ),
        ("18pct rnorm2 8x8x32", 32, 8, 3, false, 0.00005 / 9.0, 1.0),
        (
            "conv-local cmrnorm 16x16x64",
            64,
            16,
            9,
            true,
            0.001 / 9.0,
            1.0,
        ),
        (
            "conv-local cmrnorm 12x12x64",
            64,
            12,
            9,
            true,
            0.001 / 9.0,
            1.0,
        ),
        (
            "alexnet cmrnorm1 55x55x48",
            48,
            55,
            5,
            true,
            0.0001 / 5.0,
            2.0,
        ),
        (
            "alexnet cmrnorm2 27x27x128",
            128,
            27,
            5,
            true,
            0.0001 / 5.0,
            2.0,
        ),
    ];
    for (c, &(name, nf, s, size, cross, a, k)) in nets.iter().enumerate() {
        let sh = Shape { nf, s, n };
        let img = mat(5000 + c as u64, sh.rows(), n, 0.0, 8.0);
        let og = mat(5100 + c as u64, sh.rows(), n, -0.01, 0.01);
        let p = 0.75;
        let forward = |d: &mut NvMatrix, t: &mut NvMatrix| {
            if cross {
                conv_response_norm_cross_map_min_div(&img, d, t, nf, size, a, p, k, false).unwrap()
            } else {
                conv_response_norm(&img, d, t, nf, size, a, p).unwrap()
            }
        };
        let (mut d, mut acts) = (NvMatrix::default(), NvMatrix::default());
        let fwd = same_bits_any_threads_or_lanes(name, || fwd_bits(|d, t| forward(d, t)));
        reg.case(&format!("net {name}"), &fwd);
        forward(&mut d, &mut acts);
        let out = same_bits_any_threads_or_lanes(name, || {
            let mut acts = acts.clone();
            let mut t = NvMatrix::default();
            if cross {
                conv_response_norm_cross_map_undo(
                    &og, &d, &img, &mut acts, &mut t, nf, size, a, p, false, 0.0, 1.0,
                )
                .unwrap()
            } else {
                conv_response_norm_undo(&og, &d, &img, &mut acts, &mut t, nf, size, a, p, 0.0, 1.0)
                    .unwrap()
            }
            let mut v = t.into_vec();
            v.extend(acts.into_vec());
            v
        });
        reg.case(&format!("net {name} undo"), &out);
    }
    reg.finish();
}
