//! Tests of the pooling kernels (src/cudaconv2/conv_util/pool.rs): float64 references on
//! small and awkward shapes, finite-difference gradient checks of both undo kernels,
//! exact-bits regression goldens (golden/kernels/pool.tsv) for every variant the
//! dispatch can pick and for the pooling layers of our nets, the scaled writes, and
//! shape errors.

mod common;

use common::{assert_close, same_bits_any_threads_or_lanes, Regression};
use convnet::cudaconv2::conv_util::pool::*;
use convnet::nvmatrix::NvMatrix;
use convnet::parallel::with_threads;
use convnet::synthetic::uniform;

/// A pooling problem: `f` filters of `s`x`s` pixels, `n` images, windows of `subs`
/// from `start` every `stride`, `outs`x`outs` outputs.
#[derive(Clone, Copy, Debug)]
struct Geo {
    f: usize,
    s: usize,
    n: usize,
    subs: usize,
    start: i32,
    stride: usize,
    outs: usize,
}

impl Geo {
    const fn new(
        f: usize,
        s: usize,
        n: usize,
        subs: usize,
        start: i32,
        stride: usize,
        outs: usize,
    ) -> Geo {
        Geo {
            f,
            s,
            n,
            subs,
            start,
            stride,
            outs,
        }
    }
    /// A net layer: `outputsX = ceil((imgSize - start - sizeX)/stride) + 1`, start 0.
    const fn layer(f: usize, s: usize, subs: usize, stride: usize) -> Geo {
        Geo::new(f, s, 128, subs, 0, stride, (s - subs).div_ceil(stride) + 1)
    }
    fn pixels(&self) -> usize {
        self.s * self.s
    }
    fn outputs(&self) -> usize {
        self.outs * self.outs
    }
    fn in_len(&self) -> usize {
        self.f * self.pixels() * self.n
    }
    fn out_len(&self) -> usize {
        self.f * self.outputs() * self.n
    }
    /// The clipped window `(y0, y1, x0, x1)` of output `o`.
    fn window(&self, o: usize) -> (usize, usize, usize, usize) {
        let clip = |k: usize| {
            let a = self.start as i64 + (k * self.stride) as i64;
            let lo = a.max(0).min(self.s as i64) as usize;
            let hi = (a + self.subs as i64).max(0).min(self.s as i64) as usize;
            (lo, hi.max(lo))
        };
        let ((y0, y1), (x0, x1)) = (clip(o / self.outs), clip(o % self.outs));
        (y0, y1, x0, x1)
    }
    /// Input offsets of the window of output `o` of filter `f`, image `i`, in order.
    fn window_offsets(&self, f: usize, o: usize, i: usize) -> Vec<usize> {
        let (y0, y1, x0, x1) = self.window(o);
        let mut v = Vec::new();
        for y in y0..y1 {
            for x in x0..x1 {
                v.push((f * self.pixels() + y * self.s + x) * self.n + i);
            }
        }
        v
    }
    fn images(&self, seed: u64, lo: f32, hi: f32) -> NvMatrix {
        NvMatrix::from_vec(
            self.f * self.pixels(),
            self.n,
            false,
            uniform(seed, self.in_len(), lo, hi),
        )
    }
    fn grads(&self, seed: u64) -> NvMatrix {
        NvMatrix::from_vec(
            self.f * self.outputs(),
            self.n,
            false,
            uniform(seed, self.out_len(), -1.0, 1.0),
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Max,
    Avg,
    MaxAbs,
}

const KINDS: [Kind; 3] = [Kind::Max, Kind::Avg, Kind::MaxAbs];

fn pool(g: &Geo, images: &NvMatrix, kind: Kind) -> Vec<f32> {
    let mut t = NvMatrix::default();
    let (f, subs, start, stride, outs) = (g.f, g.subs, g.start, g.stride, g.outs);
    match kind {
        Kind::Max => conv_local_pool(images, &mut t, f, subs, start, stride, outs, MaxPooler),
        Kind::Avg => conv_local_pool(images, &mut t, f, subs, start, stride, outs, AvgPooler),
        Kind::MaxAbs => conv_local_pool(images, &mut t, f, subs, start, stride, outs, MaxAbsPooler),
    }
    .unwrap();
    assert_eq!((t.rows(), t.cols()), (g.f * g.outputs(), g.n));
    t.into_vec()
}

fn max_undo(
    g: &Geo,
    images: &NvMatrix,
    grads: &NvMatrix,
    acts: &NvMatrix,
    t0: Option<&NvMatrix>,
    st: f32,
    so: f32,
) -> Vec<f32> {
    let mut t = t0.cloned().unwrap_or_default();
    conv_local_max_undo(
        images, grads, acts, &mut t, g.subs, g.start, g.stride, g.outs, st, so,
    )
    .unwrap();
    assert_eq!((t.rows(), t.cols()), (g.f * g.pixels(), g.n));
    t.into_vec()
}

fn avg_undo(g: &Geo, grads: &NvMatrix, t0: Option<&NvMatrix>, st: f32, so: f32) -> Vec<f32> {
    let mut t = t0.cloned().unwrap_or_default();
    conv_local_avg_undo(
        grads, &mut t, g.subs, g.start, g.stride, g.outs, g.s, st, so,
    )
    .unwrap();
    assert_eq!((t.rows(), t.cols()), (g.f * g.pixels(), g.n));
    t.into_vec()
}

// ---------------------------------------------------------------- float64 references

/// Pooled values from the definition: max / mean / largest-magnitude (later pixel on
/// ties, as `|a| > |b| ? a : b`) of the window's in-image pixels.
fn ref_pool(g: &Geo, x: &[f32], kind: Kind) -> Vec<f64> {
    let mut out = vec![0f64; g.out_len()];
    for f in 0..g.f {
        for o in 0..g.outputs() {
            for i in 0..g.n {
                let v: Vec<f64> = g
                    .window_offsets(f, o, i)
                    .iter()
                    .map(|&k| x[k] as f64)
                    .collect();
                out[(f * g.outputs() + o) * g.n + i] = match kind {
                    Kind::Max => v.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                    Kind::Avg => v.iter().sum::<f64>() / v.len() as f64,
                    Kind::MaxAbs => v
                        .iter()
                        .fold(0.0, |a, &b| if a.abs() > b.abs() { a } else { b }),
                };
            }
        }
    }
    out
}

/// Outputs whose window contains pixel `(y, x)`.
fn covering(g: &Geo, y: usize, x: usize) -> Vec<usize> {
    (0..g.outputs())
        .filter(|&o| {
            let (y0, y1, x0, x1) = g.window(o);
            (y0..y1).contains(&y) && (x0..x1).contains(&x)
        })
        .collect()
}

/// Σ over covering windows of `grad` where the pixel equals the window's pooled value.
fn ref_max_undo(g: &Geo, x: &[f32], grads: &[f32], acts: &[f32]) -> Vec<f64> {
    let mut out = vec![0f64; g.in_len()];
    for f in 0..g.f {
        for p in 0..g.pixels() {
            let cov = covering(g, p / g.s, p % g.s);
            for i in 0..g.n {
                let k = (f * g.pixels() + p) * g.n + i;
                out[k] = cov
                    .iter()
                    .map(|&o| (f * g.outputs() + o) * g.n + i)
                    .filter(|&q| x[k] == acts[q])
                    .map(|q| grads[q] as f64)
                    .sum();
            }
        }
    }
    out
}

/// Σ over covering windows of `grad / (in-image window area)`.
fn ref_avg_undo(g: &Geo, grads: &[f32]) -> Vec<f64> {
    let mut out = vec![0f64; g.in_len()];
    for f in 0..g.f {
        for p in 0..g.pixels() {
            let cov = covering(g, p / g.s, p % g.s);
            for i in 0..g.n {
                out[(f * g.pixels() + p) * g.n + i] = cov
                    .iter()
                    .map(|&o| {
                        let (y0, y1, x0, x1) = g.window(o);
                        grads[(f * g.outputs() + o) * g.n + i] as f64
                            / ((y1 - y0) * (x1 - x0)) as f64
                    })
                    .sum();
            }
        }
    }
    out
}

/// Forward shapes: odd filter and image counts, start < 0 and > 0, windows clipped at
/// both edges, strides 1-3, and stride 1 with subsX >= 6 (kLocalPool2).
const FWD_SHAPES: &[Geo] = &[
    Geo::new(3, 7, 1, 3, 0, 2, 3),
    Geo::new(8, 9, 37, 3, -1, 2, 5),
    Geo::new(16, 10, 100, 4, 1, 3, 3),
    Geo::new(2, 13, 64, 3, 0, 3, 5),
    Geo::new(4, 9, 256, 2, 0, 2, 5),
    Geo::new(5, 12, 130, 6, -2, 1, 9),
    Geo::new(6, 11, 64, 7, -3, 1, 11),
    Geo::new(12, 8, 128, 6, 0, 1, 3),
    Geo::new(7, 10, 33, 8, -4, 1, 10),
];

/// Undo shapes (numFilters % 16 == 0).
const UNDO_SHAPES: &[Geo] = &[
    Geo::new(16, 7, 1, 3, 0, 2, 3),
    Geo::new(16, 7, 37, 3, 0, 2, 3),
    Geo::new(16, 9, 64, 3, -1, 2, 5),
    Geo::new(32, 8, 128, 4, 1, 3, 2),
    Geo::new(16, 10, 130, 6, -2, 1, 7),
    Geo::new(16, 6, 100, 2, 0, 2, 3),
    Geo::new(16, 9, 33, 5, -2, 3, 4),
];

#[test]
fn dispatch_picks_the_originals_variants() {
    let v = local_pool_variant(12, 128, 6, 1);
    assert_eq!(
        (
            v.kernel,
            v.imgs_per_thread,
            v.filters_per_thread,
            v.check_case_bounds
        ),
        ("kLocalPool2", 8, 4, false)
    );
    let v = local_pool_variant(9, 100, 7, 1);
    assert_eq!(
        (
            v.kernel,
            v.imgs_per_thread,
            v.filters_per_thread,
            v.check_case_bounds
        ),
        ("kLocalPool2", 4, 3, true)
    );
    let v = local_pool_variant(10, 64, 6, 1);
    assert_eq!(
        (v.kernel, v.filters_per_thread, v.check_case_bounds),
        ("kLocalPool2", 2, false)
    );
    assert_eq!(local_pool_variant(7, 64, 9, 1).filters_per_thread, 1);
    let v = local_pool_variant(32, 128, 5, 1);
    assert_eq!(
        (v.kernel, v.imgs_per_thread, v.filters_per_thread),
        ("kLocalPool", 4, 2)
    );
    let v = local_pool_variant(12, 64, 6, 2);
    assert_eq!(
        (
            v.kernel,
            v.imgs_per_thread,
            v.filters_per_thread,
            v.check_case_bounds
        ),
        ("kLocalPool", 2, 1, false)
    );
    assert!(local_pool_variant(8, 37, 3, 2).check_case_bounds);
    let v = local_max_undo_variant(130, 1.0, 1.0);
    assert_eq!(
        (
            v.imgs_per_thread,
            v.filters_per_thread,
            v.check_case_bounds,
            v.add
        ),
        (1, 2, true, true)
    );
    assert!(!local_avg_undo_variant(128, 0.0, 1.0).add);
    assert!(local_avg_undo_variant(128, 0.0, 2.0).add);
    assert_eq!(local_avg_undo_variant(128, 0.0, 1.0).filters_per_thread, 4);
    for g in &FWD_SHAPES[5..] {
        assert_eq!(
            local_pool_variant(g.f, g.n, g.subs, g.stride).kernel,
            "kLocalPool2",
            "{g:?}"
        );
    }
}

#[test]
fn pool_matches_float64_reference() {
    for (k, g) in FWD_SHAPES.iter().enumerate() {
        let images = g.images(100 + k as u64, -2.0, 2.0);
        for kind in KINDS {
            let got = pool(g, &images, kind);
            let want = ref_pool(g, images.data(), kind);
            // Max and maxabs select a value: exact.
            let tol = if kind == Kind::Avg { 1e-6 } else { 0.0 };
            assert_close(&format!("{kind:?} {g:?}"), &got, &want, tol);
        }
    }
}

#[test]
fn empty_windows_give_the_base_value_or_nan() {
    // outputsX too large: the last windows lie wholly outside the image.
    let g = Geo::new(2, 5, 3, 2, 0, 2, 5);
    let images = g.images(7, -1.0, 1.0);
    let (max, avg, maxabs) = (
        pool(&g, &images, Kind::Max),
        pool(&g, &images, Kind::Avg),
        pool(&g, &images, Kind::MaxAbs),
    );
    for f in 0..g.f {
        for o in 0..g.outputs() {
            let empty = g.window(o).0 == g.window(o).1 || g.window(o).2 == g.window(o).3;
            for i in 0..g.n {
                let q = (f * g.outputs() + o) * g.n + i;
                if empty {
                    assert_eq!(max[q], MAX_POOLER_BASE);
                    assert!(avg[q].is_nan());
                    assert_eq!(maxabs[q], 0.0);
                } else {
                    assert!(max[q] > -2.0 && !avg[q].is_nan());
                }
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_lane_width() {
    // 45 images run as 32 + 8 + 5x1 lanes; each image alone runs in 1 lane.
    let g = Geo::new(16, 9, 45, 3, -1, 2, 5);
    let one = Geo { n: 1, ..g };
    let images = g.images(11, -1.0, 1.0);
    let grads = g.grads(12);
    let column = |m: &[f32], rows: usize, i: usize| -> NvMatrix {
        NvMatrix::from_vec(rows, 1, false, (0..rows).map(|r| m[r * g.n + i]).collect())
    };
    let avg = pool(&g, &images, Kind::Avg);
    let back = avg_undo(&g, &grads, None, 0.0, 1.0);
    for i in [0, 31, 32, 39, 40, 44] {
        let img_i = column(images.data(), g.f * g.pixels(), i);
        let a = pool(&one, &img_i, Kind::Avg);
        let b = avg_undo(
            &one,
            &column(grads.data(), g.f * g.outputs(), i),
            None,
            0.0,
            1.0,
        );
        for r in 0..g.f * g.outputs() {
            assert_eq!(
                a[r].to_bits(),
                avg[r * g.n + i].to_bits(),
                "image {i} output row {r}"
            );
        }
        for r in 0..g.f * g.pixels() {
            assert_eq!(
                b[r].to_bits(),
                back[r * g.n + i].to_bits(),
                "image {i} pixel row {r}"
            );
        }
    }
}

#[test]
fn max_undo_matches_float64_reference() {
    for (k, g) in UNDO_SHAPES.iter().enumerate() {
        // Values on a coarse grid so that windows have tied maxima (all receive the
        // gradient).
        let mut images = g.images(200 + k as u64, -2.0, 2.0);
        images
            .data_mut()
            .iter_mut()
            .for_each(|v| *v = (*v * 4.0).round() / 4.0);
        for kind in [Kind::Max, Kind::MaxAbs] {
            let acts = NvMatrix::from_vec(g.f * g.outputs(), g.n, false, pool(g, &images, kind));
            let grads = g.grads(300 + k as u64);
            let got = max_undo(g, &images, &grads, &acts, None, 0.0, 1.0);
            let want = ref_max_undo(g, images.data(), grads.data(), acts.data());
            assert_close(&format!("maxUndo {kind:?} {g:?}"), &got, &want, 1e-6);
        }
    }
}

#[test]
fn avg_undo_matches_float64_reference() {
    for (k, g) in UNDO_SHAPES.iter().enumerate() {
        let grads = g.grads(400 + k as u64);
        let got = avg_undo(g, &grads, None, 0.0, 1.0);
        assert_close(
            &format!("avgUndo {g:?}"),
            &got,
            &ref_avg_undo(g, grads.data()),
            1e-6,
        );
    }
}

/// `Σ_o w_o * pool(x)_o` in float64 over our f32 forward.
fn loss(g: &Geo, x: &[f32], w: &[f32], kind: Kind) -> f64 {
    let images = NvMatrix::from_vec(g.f * g.pixels(), g.n, false, x.to_vec());
    pool(g, &images, kind)
        .iter()
        .zip(w)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Central differences of [`loss`] against the undo kernel's output at every input.
fn gradient_check(g: &Geo, x: Vec<f32>, h: f32, kind: Kind, tol: f64) {
    let w = g.grads(77);
    let images = NvMatrix::from_vec(g.f * g.pixels(), g.n, false, x.clone());
    let analytic = match kind {
        Kind::Avg => avg_undo(g, &w, None, 0.0, 1.0),
        _ => {
            let acts = NvMatrix::from_vec(g.f * g.outputs(), g.n, false, pool(g, &images, kind));
            max_undo(g, &images, &w, &acts, None, 0.0, 1.0)
        }
    };
    let mut numeric = vec![0f64; x.len()];
    with_threads(1, || {
        let mut xp = x.clone();
        for k in 0..x.len() {
            xp[k] = x[k] + h;
            let up = loss(g, &xp, w.data(), kind);
            xp[k] = x[k] - h;
            let down = loss(g, &xp, w.data(), kind);
            xp[k] = x[k];
            numeric[k] = (up - down) / (2.0 * h as f64);
        }
    });
    assert_close(
        &format!("gradient {kind:?} {g:?}"),
        &analytic,
        &numeric,
        tol,
    );
}

#[test]
fn undo_kernels_are_the_gradients_of_their_forward() {
    for g in [
        Geo::new(16, 7, 3, 3, -1, 2, 4),
        Geo::new(16, 8, 2, 6, -2, 1, 6),
        Geo::new(16, 6, 2, 2, 1, 2, 3),
    ] {
        // Avg pooling is linear: any step works (rounding of the f32 forward aside).
        gradient_check(&g, uniform(5, g.in_len(), -1.0, 1.0), 0.25, Kind::Avg, 1e-5);
        // Max / maxabs away from ties: distinct integers, step 1/4 (exact in f32).
        let mut perm: Vec<usize> = (0..g.in_len()).collect();
        let mut r = convnet::synthetic::SplitMix64::new(9);
        for i in (1..perm.len()).rev() {
            perm.swap(i, (r.next_u64() % (i as u64 + 1)) as usize);
        }
        let x: Vec<f32> = perm.iter().map(|&p| p as f32).collect();
        gradient_check(&g, x, 0.25, Kind::Max, 1e-6);
        // Signed, with distinct magnitudes (fractions .25 and .75), step 1/8.
        let half = (g.in_len() / 2) as f32;
        let x: Vec<f32> = perm.iter().map(|&p| p as f32 - half + 0.25).collect();
        gradient_check(&g, x, 0.125, Kind::MaxAbs, 1e-6);
    }
}

#[test]
fn scaled_writes_accumulate_with_the_fused_first_product() {
    let g = Geo::new(16, 9, 37, 3, -1, 2, 5);
    let images = g.images(21, -1.0, 1.0);
    let acts = NvMatrix::from_vec(g.f * g.outputs(), g.n, false, pool(&g, &images, Kind::Max));
    let grads = g.grads(22);
    let t0 = g.images(23, -3.0, 3.0);
    let plain_max = max_undo(&g, &images, &grads, &acts, None, 0.0, 1.0);
    let plain_avg = avg_undo(&g, &grads, None, 0.0, 1.0);
    for (st, so) in [(1.0f32, 1.0f32), (0.5, 2.0), (0.0, 0.75), (-1.25, 0.3)] {
        let m = max_undo(&g, &images, &grads, &acts, Some(&t0), st, so);
        let a = avg_undo(&g, &grads, Some(&t0), st, so);
        for k in 0..g.in_len() {
            let want_m = st.mul_add(t0.data()[k], plain_max[k] * so);
            let want_a = st.mul_add(t0.data()[k], plain_avg[k] * so);
            assert_eq!(
                m[k].to_bits(),
                want_m.to_bits(),
                "max undo ({st}, {so}) element {k}"
            );
            assert_eq!(
                a[k].to_bits(),
                want_a.to_bits(),
                "avg undo ({st}, {so}) element {k}"
            );
        }
        // Against float64: st*t0 + so*reference.
        let r = ref_avg_undo(&g, grads.data());
        let want: Vec<f64> = r
            .iter()
            .zip(t0.data())
            .map(|(&p, &t)| st as f64 * t as f64 + so as f64 * p)
            .collect();
        assert_close(&format!("avg undo ({st}, {so})"), &a, &want, 1e-6);
    }
    // (0, 1) overwrites whatever the target held; (0, 0.75) reads it: 0*inf = NaN, as
    // the original's add kernel does.
    let inf = NvMatrix::from_vec(
        g.f * g.pixels(),
        g.n,
        false,
        vec![f32::INFINITY; g.in_len()],
    );
    assert_eq!(avg_undo(&g, &grads, Some(&inf), 0.0, 1.0), plain_avg);
    assert_eq!(
        max_undo(&g, &images, &grads, &acts, Some(&inf), 0.0, 1.0),
        plain_max
    );
    assert!(avg_undo(&g, &grads, Some(&inf), 0.0, 0.75)
        .iter()
        .all(|v| v.is_nan()));
    assert!(max_undo(&g, &images, &grads, &acts, Some(&inf), 0.0, 0.75)
        .iter()
        .all(|v| v.is_nan()));
    // A target of another size is resized (then reads as zeros).
    let small = NvMatrix::new(3, 3, false);
    assert_eq!(avg_undo(&g, &grads, Some(&small), 1.0, 1.0), plain_avg);
}

#[test]
fn random_pool_picks_window_pixels_in_proportion_to_their_values() {
    for (k, g) in FWD_SHAPES.iter().enumerate() {
        let images = g.images(500 + k as u64, -0.5, 2.0);
        let mut t = NvMatrix::default();
        conv_local_random_pool(&images, &mut t, g.f, g.subs, g.start, g.stride, g.outs, 42)
            .unwrap();
        let max = pool(g, &images, Kind::Max);
        let x = images.data();
        for f in 0..g.f {
            for o in 0..g.outputs() {
                for i in 0..g.n {
                    let q = (f * g.outputs() + o) * g.n + i;
                    let v = t.data()[q];
                    let win: Vec<f32> = g.window_offsets(f, o, i).iter().map(|&p| x[p]).collect();
                    if win.iter().any(|&w| w > 0.0) {
                        assert!(
                            v > 0.0 && win.contains(&v),
                            "{g:?} output {q}: {v} not a positive pixel of {win:?}"
                        );
                    } else {
                        assert_eq!(v.to_bits(), max[q].to_bits());
                    }
                }
            }
        }
    }
    // A 3x3 image pooled by one 2x2 window at (0,0) holding 1, 0, 2, 3 (the other
    // pixels, 4, lie outside it), for 20000 images.
    let n = 20000;
    let mut img = vec![4.0f32; 9 * n];
    for (p, v) in [(0usize, 1.0f32), (1, 0.0), (3, 2.0), (4, 3.0)] {
        img[p * n..(p + 1) * n].iter_mut().for_each(|e| *e = v);
    }
    let images = NvMatrix::from_vec(9, n, false, img);
    let mut t = NvMatrix::default();
    conv_local_random_pool(&images, &mut t, 1, 2, 0, 2, 1, 7).unwrap();
    for (v, p) in [(1.0f32, 1.0 / 6.0), (2.0, 2.0 / 6.0), (3.0, 3.0 / 6.0)] {
        let freq = t.data().iter().filter(|&&e| e == v).count() as f64 / n as f64;
        assert!(
            (freq - p).abs() < 0.015,
            "value {v}: frequency {freq}, expected {p}"
        );
    }
    assert!(!t.data().contains(&0.0));
    // Same seed, same draws; another seed, other draws.
    let mut t2 = NvMatrix::default();
    conv_local_random_pool(&images, &mut t2, 1, 2, 0, 2, 1, 7).unwrap();
    assert_eq!(t.data(), t2.data());
    conv_local_random_pool(&images, &mut t2, 1, 2, 0, 2, 1, 8).unwrap();
    assert_ne!(t.data(), t2.data());
}

#[test]
fn bad_shapes_are_errors() {
    let m = |r: usize, c: usize| NvMatrix::new(r, c, false);
    let mut t = NvMatrix::default();
    // convLocalPool: rows not a multiple of numFilters, non-square, transposed, no filters.
    assert!(conv_local_pool(&m(49 * 3 + 1, 4), &mut t, 3, 3, 0, 2, 3, MaxPooler).is_err());
    assert!(conv_local_pool(&m(3 * 12, 4), &mut t, 3, 3, 0, 2, 3, AvgPooler).is_err());
    assert!(conv_local_pool(
        &NvMatrix::new(3 * 49, 4, true),
        &mut t,
        3,
        3,
        0,
        2,
        3,
        MaxPooler
    )
    .is_err());
    assert!(conv_local_pool(
        &m(3 * 49, 4),
        &mut NvMatrix::new(1, 1, true),
        3,
        3,
        0,
        2,
        3,
        MaxPooler
    )
    .is_err());
    assert!(conv_local_pool(&m(3 * 49, 4), &mut t, 0, 3, 0, 2, 3, MaxAbsPooler).is_err());
    assert!(conv_local_random_pool(&m(3 * 12, 4), &mut t, 3, 3, 0, 2, 3, 1).is_err());
    assert!(conv_local_pool(&m(3 * 49, 4), &mut t, 3, 3, 0, 2, 3, MaxPooler).is_ok());
    // convLocalMaxUndo.
    let (img, g9, bad) = (m(16 * 49, 5), m(16 * 9, 5), m(16 * 9, 4));
    assert!(conv_local_max_undo(&img, &g9, &g9, &mut t, 3, 0, 2, 3, 0.0, 1.0).is_ok());
    assert!(conv_local_max_undo(&img, &g9, &bad, &mut t, 3, 0, 2, 3, 0.0, 1.0).is_err());
    assert!(conv_local_max_undo(&img, &bad, &bad, &mut t, 3, 0, 2, 3, 0.0, 1.0).is_err());
    assert!(conv_local_max_undo(&m(16 * 48, 5), &g9, &g9, &mut t, 3, 0, 2, 3, 0.0, 1.0).is_err());
    assert!(conv_local_max_undo(
        &m(8 * 49, 5),
        &m(8 * 9, 5),
        &m(8 * 9, 5),
        &mut t,
        3,
        0,
        2,
        3,
        0.0,
        1.0
    )
    .is_err());
    assert!(conv_local_max_undo(&img, &g9, &g9, &mut t, 2, 0, 3, 3, 0.0, 1.0).is_err());
    assert!(conv_local_max_undo(&img, &g9, &g9, &mut t, 3, 0, 0, 3, 0.0, 1.0).is_err());
    assert!(conv_local_max_undo(&img, &g9, &g9, &mut t, 3, 0, 2, 0, 0.0, 1.0).is_err());
    assert!(conv_local_max_undo(&img, &m(5, 5), &m(5, 5), &mut t, 3, 0, 2, 3, 0.0, 1.0).is_err());
    assert!(conv_local_max_undo(
        &NvMatrix::new(16 * 49, 5, true),
        &g9,
        &g9,
        &mut t,
        3,
        0,
        2,
        3,
        0.0,
        1.0
    )
    .is_err());
    assert!(conv_local_max_undo(
        &img,
        &NvMatrix::new(16 * 9, 5, true),
        &g9,
        &mut t,
        3,
        0,
        2,
        3,
        0.0,
        1.0
    )
    .is_err());
    assert!(conv_local_max_undo(
        &img,
        &g9,
        &g9,
        &mut NvMatrix::new(1, 1, true),
        3,
        0,
        2,
        3,
        0.0,
        1.0
    )
    .is_err());
    // convLocalAvgUndo.
    assert!(conv_local_avg_undo(&g9, &mut t, 3, 0, 2, 3, 7, 0.0, 1.0).is_ok());
    assert!(conv_local_avg_undo(&m(16 * 9 + 1, 5), &mut t, 3, 0, 2, 3, 7, 0.0, 1.0).is_err());
    assert!(conv_local_avg_undo(&m(8 * 9, 5), &mut t, 3, 0, 2, 3, 7, 0.0, 1.0).is_err());
    assert!(conv_local_avg_undo(&g9, &mut t, 2, 0, 3, 3, 7, 0.0, 1.0).is_err());
    assert!(conv_local_avg_undo(&g9, &mut t, 3, 0, 0, 3, 7, 0.0, 1.0).is_err());
    assert!(conv_local_avg_undo(&g9, &mut t, 3, 0, 2, 0, 7, 0.0, 1.0).is_err());
    assert!(conv_local_avg_undo(
        &NvMatrix::new(16 * 9, 5, true),
        &mut t,
        3,
        0,
        2,
        3,
        7,
        0.0,
        1.0
    )
    .is_err());
    assert!(
        conv_local_avg_undo(&g9, &mut NvMatrix::new(1, 1, true), 3, 0, 2, 3, 7, 0.0, 1.0).is_err()
    );
}

// ---------------------------------------------------------------- regression goldens

/// Forward cases: every `kLocalPool` (ipt 4/2/1 x fpt 2/1 x ccb) and `kLocalPool2`
/// (ipt 8/4 x fpt 4/3/2/1 x ccb) variant.
const FWD_VARIANTS: &[Geo] = &[
    Geo::new(8, 11, 128, 3, -1, 2, 6),
    Geo::new(6, 11, 128, 3, 0, 2, 5),
    Geo::new(16, 9, 64, 4, 1, 3, 3),
    Geo::new(3, 9, 192, 2, 0, 2, 5),
    Geo::new(8, 7, 96, 3, 0, 2, 3),
    Geo::new(5, 7, 32, 3, -1, 2, 4),
    Geo::new(8, 8, 37, 3, 0, 2, 4),
    Geo::new(5, 8, 1, 3, -1, 2, 5),
    Geo::new(8, 10, 128, 6, -2, 1, 9),
    Geo::new(9, 10, 256, 7, -3, 1, 10),
    Geo::new(10, 9, 128, 6, 0, 1, 4),
    Geo::new(7, 9, 128, 6, -1, 1, 5),
    Geo::new(4, 10, 96, 6, -2, 1, 9),
    Geo::new(3, 12, 64, 8, -3, 1, 11),
    Geo::new(2, 9, 32, 6, 0, 1, 4),
    Geo::new(1, 9, 160, 6, -1, 1, 5),
    Geo::new(4, 10, 100, 6, -2, 1, 9),
    Geo::new(6, 9, 130, 7, -3, 1, 9),
    Geo::new(2, 9, 37, 6, 0, 1, 4),
    Geo::new(5, 8, 1, 6, -1, 1, 4),
];

/// Undo cases: ipt 4/2/1 x ccb, each written plainly and accumulated (add).
const UNDO_VARIANTS: &[Geo] = &[
    Geo::new(16, 11, 128, 3, -1, 2, 6),
    Geo::new(32, 9, 64, 4, 1, 3, 3),
    Geo::new(16, 7, 96, 3, 0, 2, 3),
    Geo::new(16, 8, 37, 3, 0, 2, 4),
    Geo::new(16, 10, 130, 6, -2, 1, 7),
];

/// The pooling layers of our nets at 128 images: 18pct pool1 (max), pool2, pool3
/// (avg); conv-local pool1, pool2 (max); AlexNet pool1-pool3 (max, one GPU's half).
const NET_POOLS: &[(&str, Kind, Geo)] = &[
    ("18pct-pool1", Kind::Max, Geo::layer(32, 32, 3, 2)),
    ("18pct-pool2", Kind::Avg, Geo::layer(32, 16, 3, 2)),
    ("18pct-pool3", Kind::Avg, Geo::layer(64, 8, 3, 2)),
    ("convlocal-pool1", Kind::Max, Geo::layer(64, 32, 3, 2)),
    ("convlocal-pool2", Kind::Max, Geo::layer(64, 16, 3, 2)),
    ("alexnet-pool1", Kind::Max, Geo::layer(48, 55, 3, 2)),
    ("alexnet-pool2", Kind::Max, Geo::layer(128, 27, 3, 2)),
    ("alexnet-pool3", Kind::Max, Geo::layer(128, 13, 3, 2)),
];

fn name(g: &Geo, v: &Variant) -> String {
    format!(
        "{}<ipt{},fpt{},ccb{},add{}> f{} s{} n{} subs{} start{} stride{} outs{}",
        v.kernel,
        v.imgs_per_thread,
        v.filters_per_thread,
        v.check_case_bounds as u8,
        v.add as u8,
        g.f,
        g.s,
        g.n,
        g.subs,
        g.start,
        g.stride,
        g.outs
    )
}

#[test]
fn regression_goldens() {
    let mut reg = Regression::new("pool");
    let mut seen = Vec::new();
    for (k, g) in FWD_VARIANTS.iter().enumerate() {
        let v = local_pool_variant(g.f, g.n, g.subs, g.stride);
        seen.push(v);
        let images = g.images(1000 + k as u64, -1.0, 1.0);
        for kind in KINDS {
            let case = format!("{kind:?} {}", name(g, &v));
            reg.case(
                &case,
                &same_bits_any_threads_or_lanes(&case, || pool(g, &images, kind)),
            );
        }
        let case = format!("rand {}", name(g, &v));
        let out = same_bits_any_threads_or_lanes(&case, || {
            let mut t = NvMatrix::default();
            conv_local_random_pool(&images, &mut t, g.f, g.subs, g.start, g.stride, g.outs, 99)
                .unwrap();
            t.into_vec()
        });
        reg.case(&case, &out);
    }
    // Every forward variant the dispatch can pick, each once.
    let mut kinds: Vec<_> = seen
        .iter()
        .map(|v| {
            (
                v.kernel,
                v.imgs_per_thread,
                v.filters_per_thread,
                v.check_case_bounds,
            )
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), 8 + 12, "{kinds:?}");

    for (k, g) in UNDO_VARIANTS.iter().enumerate() {
        let images = g.images(2000 + k as u64, -1.0, 1.0);
        let acts = NvMatrix::from_vec(g.f * g.outputs(), g.n, false, pool(g, &images, Kind::Max));
        let grads = g.grads(3000 + k as u64);
        let t0 = g.images(4000 + k as u64, -1.0, 1.0);
        for (st, so) in [(0.0f32, 1.0f32), (1.0, 1.0), (0.5, -2.0)] {
            let v = local_max_undo_variant(g.n, st, so);
            let case = format!("{} scale({st},{so})", name(g, &v));
            let out = same_bits_any_threads_or_lanes(&case, || {
                max_undo(g, &images, &grads, &acts, Some(&t0), st, so)
            });
            reg.case(&case, &out);
            let v = local_avg_undo_variant(g.n, st, so);
            let case = format!("{} scale({st},{so})", name(g, &v));
            reg.case(
                &case,
                &same_bits_any_threads_or_lanes(&case, || avg_undo(g, &grads, Some(&t0), st, so)),
            );
        }
    }

    for (k, (net, kind, g)) in NET_POOLS.iter().enumerate() {
        let images = g.images(5000 + k as u64, -1.0, 1.0);
        let case = format!(
            "{net} {kind:?} fprop {}",
            name(g, &local_pool_variant(g.f, g.n, g.subs, g.stride))
        );
        let out = same_bits_any_threads_or_lanes(&case, || pool(g, &images, *kind));
        reg.case(&case, &out);
        let grads = g.grads(6000 + k as u64);
        let back = match kind {
            Kind::Avg => {
                let case = format!(
                    "{net} bprop {}",
                    name(g, &local_avg_undo_variant(g.n, 0.0, 1.0))
                );
                (
                    case.clone(),
                    same_bits_any_threads_or_lanes(&case, || avg_undo(g, &grads, None, 0.0, 1.0)),
                )
            }
            _ => {
                let acts = NvMatrix::from_vec(g.f * g.outputs(), g.n, false, out);
                let case = format!(
                    "{net} bprop {}",
                    name(g, &local_max_undo_variant(g.n, 0.0, 1.0))
                );
                (
                    case.clone(),
                    same_bits_any_threads_or_lanes(&case, || {
                        max_undo(g, &images, &grads, &acts, None, 0.0, 1.0)
                    }),
                )
            }
        };
        reg.case(&back.0, &back.1);
    }
    reg.finish();
}
