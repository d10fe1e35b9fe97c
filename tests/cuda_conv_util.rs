//! Our CUDA conv_util kernels (cuda/pool.cu, norm.cu, util.cu, launched through
//! src/cuda/launch/conv_util.rs) against the CPU port (src/cudaconv2/conv_util/) on
//! every backend: the CPU's bits in the emulation and for exact-tier kernels on a GPU,
//! the kernel's stated bound for the `__powf` / `__fdividef` kernels on a GPU. Shapes:
//! the pooling and normalisation layers of the 80sec / 18pct / conv-local nets and of
//! AlexNet 2012 (a few images), and awkward ones (image counts not divisible by 32,
//! scaled targets, start/stride/outputsX choices, every blur group remainder).

mod common;

use common::emu::backends;
use convnet::cuda::launch::conv_util as dev;
use convnet::cuda::{Backend, DevBuf, DevMat};
use convnet::cudaconv2::conv_util::norm::{self, Undo2Add};
use convnet::cudaconv2::conv_util::pool::{self, AvgPooler, MaxAbsPooler, MaxPooler};
use convnet::cudaconv2::conv_util::util;
use convnet::nvmatrix::NvMatrix;
use convnet::synthetic::uniform;

/// How a device result must match the CPU's on a GPU (in the emulation: always exactly).
#[derive(Clone, Copy, Debug)]
enum Tier {
    Exact,
    /// Within `n` ulp of the CPU value's magnitude, or of a thousandth of the output's
    /// largest magnitude for values near zero.
    Ulps(f32),
    /// Within `n` ulp of the output's largest magnitude: for outputs that are
    /// differences of terms of about that size (the undo kernels, LAB's a and b).
    Terms(f32),
}

/// Asserts `got` matches `want` on backend `b` (NaN matches NaN: the GPU's payload is
/// canonical). For a bounded tier on a GPU it prints the largest error found, in ulp of
/// the value and in ulp of the output's largest magnitude.
fn check(b: &dyn Backend, what: &str, got: &[f32], want: &[f32], tier: Tier) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let exact = b.emulated() || matches!(tier, Tier::Exact);
    let top = want
        .iter()
        .fold(0f32, |m, x| if x.is_finite() { m.max(x.abs()) } else { m });
    let (mut worst, mut worst_top) = (0f32, 0f32);
    let mut first_bad = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if g.is_nan() || w.is_nan() {
            g.is_nan() && w.is_nan()
        } else if exact {
            g.to_bits() == w.to_bits()
        } else {
            let err = (g - w).abs() / f32::EPSILON;
            worst = worst.max(if w == 0.0 { err / top } else { err / w.abs() });
            worst_top = worst_top.max(err / top);
            match tier {
                Tier::Ulps(n) => err <= n * w.abs().max(top * 1e-3),
                Tier::Terms(n) => err <= n * top,
                Tier::Exact => unreachable!(),
            }
        };
        if !ok && first_bad.is_none() {
            first_bad = Some((i, g, w));
        }
    }
    if !exact {
        eprintln!("{what}: largest error {worst:.2} ulp of the value, {worst_top:.2} ulp of the largest |value| ({tier:?})");
    }
    if let Some((i, g, w)) = first_bad {
        panic!(
            "{what} on {}: element {i}: got {g:e} ({:#010x}), CPU {w:e} ({:#010x})",
            b.name(),
            g.to_bits(),
            w.to_bits()
        );
    }
}

fn mat(seed: u64, rows: usize, cols: usize, lo: f32, hi: f32) -> NvMatrix {
    NvMatrix::from_vec(rows, cols, false, uniform(seed, rows * cols, lo, hi))
}

/// A row-major matrix on the device: its memory and shape.
struct Dev {
    buf: DevBuf,
    rows: usize,
    cols: usize,
}

impl Dev {
    /// The matrix as the wrappers take it.
    fn m(&self) -> DevMat<'_> {
        DevMat::new(&self.buf, self.rows, self.cols).unwrap()
    }
}

fn up(b: &dyn Backend, m: &NvMatrix) -> Dev {
    Dev {
        buf: b.upload(m.data()).unwrap(),
        rows: m.rows(),
        cols: m.cols(),
    }
}

fn zeros(b: &dyn Backend, rows: usize, cols: usize) -> Dev {
    Dev {
        buf: b.alloc(rows * cols).unwrap(),
        rows,
        cols,
    }
}

fn down(b: &dyn Backend, d: &Dev) -> Vec<f32> {
    b.download(&d.buf).unwrap()
}

// ---------------------------------------------------------------------------------
// Pooling
// ---------------------------------------------------------------------------------

/// A pooling layer: `f` filters of `s`x`s`, `n` images, windows of `subs` from `start`
/// every `stride`, `outs`x`outs` outputs.
#[derive(Clone, Copy, Debug)]
struct PoolGeo {
    name: &'static str,
    f: usize,
    s: usize,
    n: usize,
    subs: usize,
    start: i32,
    stride: usize,
    outs: usize,
}

const fn layer(
    name: &'static str,
    f: usize,
    s: usize,
    n: usize,
    subs: usize,
    stride: usize,
) -> PoolGeo {
    PoolGeo {
        name,
        f,
        s,
        n,
        subs,
        start: 0,
        stride,
        outs: (s - subs).div_ceil(stride) + 1,
    }
}

const POOLS: &[PoolGeo] = &[
    // 80sec and 18pct share their pooling layers (pool1 max, pool2/pool3 avg).
    layer("18pct-pool1", 32, 32, 5, 3, 2),
    layer("18pct-pool2", 32, 16, 5, 3, 2),
    layer("18pct-pool3", 64, 8, 33, 3, 2),
    layer("convlocal-pool1", 64, 32, 3, 3, 2),
    layer("alexnet-pool1", 48, 55, 2, 3, 2),
    layer("alexnet-pool2", 128, 27, 2, 3, 2),
    layer("alexnet-pool3", 128, 13, 3, 3, 2),
    // kLocalPool2 (stride 1, subsX >= 6), a negative start, windows past the image
    // (empty windows: max -2e38, avg NaN), 64 and 128 images.
    PoolGeo {
        name: "pool2-variant",
        f: 16,
        s: 10,
        n: 7,
        subs: 6,
        start: -2,
        stride: 1,
        outs: 7,
    },
    PoolGeo {
        name: "start-1",
        f: 16,
        s: 9,
        n: 64,
        subs: 3,
        start: -1,
        stride: 2,
        outs: 5,
    },
    PoolGeo {
        name: "start+1-overhang",
        f: 32,
        s: 7,
        n: 3,
        subs: 2,
        start: 1,
        stride: 2,
        outs: 5,
    },
    PoolGeo {
        name: "128-images",
        f: 16,
        s: 6,
        n: 128,
        subs: 4,
        start: 0,
        stride: 3,
        outs: 2,
    },
];

impl PoolGeo {
    fn rows_in(&self) -> usize {
        self.f * self.s * self.s
    }
    fn rows_out(&self) -> usize {
        self.f * self.outs * self.outs
    }
}

#[test]
fn pooling_matches_the_cpu() {
    for b in backends() {
        let b = b.as_ref();
        for (k, g) in POOLS.iter().enumerate() {
            let seed = 100 * k as u64;
            // Quantised pixels: ties inside windows, so several outputs share a maximum.
            let mut images = mat(seed, g.rows_in(), g.n, -4.0, 4.0);
            images
                .data_mut()
                .iter_mut()
                .for_each(|x| *x = (*x * 2.0).round() / 2.0);
            let di = up(b, &images);
            let dt = zeros(b, g.rows_out(), g.n);
            let mut t = NvMatrix::default();
            let (f, subs, start, stride, outs) = (g.f, g.subs, g.start, g.stride, g.outs);
            macro_rules! pooler {
                ($p:expr) => {{
                    pool::conv_local_pool(&images, &mut t, f, subs, start, stride, outs, $p)
                        .unwrap();
                    dev::conv_local_pool(b, &di.m(), &dt.m(), f, subs, start, stride, outs, $p)
                        .unwrap();
                    check(
                        b,
                        &format!("{} {:?}", g.name, $p),
                        &down(b, &dt),
                        t.data(),
                        Tier::Exact,
                    );
                }};
            }
            pooler!(AvgPooler);
            pooler!(MaxAbsPooler);
            pooler!(MaxPooler);
            let max_acts = t.clone();

            pool::conv_local_random_pool(&images, &mut t, f, subs, start, stride, outs, 77)
                .unwrap();
            dev::conv_local_random_pool(b, &di.m(), &dt.m(), f, subs, start, stride, outs, 77)
                .unwrap();
            check(
                b,
                &format!("{} random", g.name),
                &down(b, &dt),
                t.data(),
                Tier::Exact,
            );

            // The undo kernels need numFilters % 16 == 0 and strideX <= subsX.
            if g.f % 16 != 0 || g.stride > g.subs {
                continue;
            }
            let grads = mat(seed + 1, g.rows_out(), g.n, -1.0, 1.0);
            let old = mat(seed + 2, g.rows_in(), g.n, -1.0, 1.0);
            let (dg, da) = (up(b, &grads), up(b, &max_acts));
            for (st, so) in [(0.0, 1.0), (0.5, 2.0), (0.0, 0.25)] {
                let mut t = old.clone();
                let dt = up(b, &old);
                pool::conv_local_max_undo(
                    &images, &grads, &max_acts, &mut t, subs, start, stride, outs, st, so,
                )
                .unwrap();
                dev::conv_local_max_undo(
                    b,
                    &di.m(),
                    &dg.m(),
                    &da.m(),
                    &dt.m(),
                    subs,
                    start,
                    stride,
                    outs,
                    st,
                    so,
                )
                .unwrap();
                let what = format!("{} max undo {st} {so}", g.name);
                check(b, &what, &down(b, &dt), t.data(), Tier::Exact);

                let mut t = old.clone();
                let dt = up(b, &old);
                pool::conv_local_avg_undo(&grads, &mut t, subs, start, stride, outs, g.s, st, so)
                    .unwrap();
                dev::conv_local_avg_undo(
                    b,
                    &dg.m(),
                    &dt.m(),
                    subs,
                    start,
                    stride,
                    outs,
                    g.s,
                    st,
                    so,
                )
                .unwrap();
                let what = format!("{} avg undo {st} {so}", g.name);
                check(b, &what, &down(b, &dt), t.data(), Tier::Exact);
            }
        }
    }
}

#[test]
fn pooling_wrappers_check_shapes() {
    for b in backends() {
        let b = b.as_ref();
        let images = zeros(b, 16 * 36, 4);
        let small = zeros(b, 10, 1);
        // A target of the wrong size, a non-square image, numFilters % 16 for the undo.
        assert!(
            dev::conv_local_pool(b, &images.m(), &small.m(), 16, 3, 0, 2, 3, MaxPooler).is_err()
        );
        assert!(
            dev::conv_local_pool(b, &images.m(), &small.m(), 15, 3, 0, 2, 3, MaxPooler).is_err()
        );
        let t = zeros(b, 16 * 9, 4);
        assert!(dev::conv_local_pool(b, &images.m(), &t.m(), 16, 3, 0, 2, 3, MaxPooler).is_ok());
        let g = zeros(b, 8 * 9, 4);
        assert!(dev::conv_local_avg_undo(b, &g.m(), &images.m(), 3, 0, 2, 3, 6, 0.0, 1.0).is_err());
    }
}

// ---------------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------------

/// A normalisation layer: `f` filters of `s`x`s`, `n` images, window `size`, cross-map
/// (`Some(blocked)`) or same-map, the layer's scale, pow and minDiv.
#[derive(Clone, Copy, Debug)]
struct NormGeo {
    name: &'static str,
    f: usize,
    s: usize,
    n: usize,
    size: usize,
    cross: Option<bool>,
    add: f32,
    pow: f32,
    min_div: f32,
}

const NORMS: &[NormGeo] = &[
    NormGeo {
        name: "18pct-rnorm1",
        f: 32,
        s: 16,
        n: 5,
        size: 3,
        cross: None,
        add: 0.00005 / 9.0,
        pow: 0.75,
        min_div: 1.0,
    },
    NormGeo {
        name: "18pct-rnorm2",
        f: 32,
        s: 8,
        n: 33,
        size: 3,
        cross: None,
        add: 0.00005 / 9.0,
        pow: 0.75,
        min_div: 1.0,
    },
    NormGeo {
        name: "convlocal-cmrnorm",
        f: 64,
        s: 16,
        n: 3,
        size: 9,
        cross: Some(false),
        add: 0.001 / 9.0,
        pow: 0.75,
        min_div: 1.0,
    },
    NormGeo {
        name: "alexnet-cmrnorm1",
        f: 48,
        s: 55,
        n: 2,
        size: 5,
        cross: Some(false),
        add: 0.0001 / 5.0,
        pow: 0.75,
        min_div: 2.0,
    },
    NormGeo {
        name: "alexnet-cmrnorm2",
        f: 128,
        s: 27,
        n: 2,
        size: 5,
        cross: Some(false),
        add: 0.0001 / 5.0,
        pow: 0.75,
        min_div: 2.0,
    },
    // kCNorm2 / kRNormUndo2 (sizeX >= 6, its inverted add flag), few filters, blocked
    // cross-map, an even window, strong normalisation.
    NormGeo {
        name: "size7",
        f: 16,
        s: 9,
        n: 7,
        size: 7,
        cross: None,
        add: 0.01,
        pow: 0.75,
        min_div: 1.0,
    },
    NormGeo {
        name: "few-filters",
        f: 3,
        s: 6,
        n: 9,
        size: 4,
        cross: None,
        add: 0.1,
        pow: 0.5,
        min_div: 1.0,
    },
    NormGeo {
        name: "blocked",
        f: 32,
        s: 5,
        n: 6,
        size: 5,
        cross: Some(true),
        add: 0.05,
        pow: 0.75,
        min_div: 1.0,
    },
    NormGeo {
        name: "even-cross",
        f: 16,
        s: 4,
        n: 64,
        size: 4,
        cross: Some(false),
        add: 0.5,
        pow: 1.5,
        min_div: 2.0,
    },
];

/// Bounds on a GPU (norm.rs): forward 8 ulp, undo 16 ulp of the output's largest
/// magnitude (its terms cancel).
const FORWARD: Tier = Tier::Ulps(8.0);
const UNDO: Tier = Tier::Terms(16.0);

#[test]
fn normalisation_matches_the_cpu() {
    for b in backends() {
        let b = b.as_ref();
        for (k, g) in NORMS.iter().enumerate() {
            let seed = 1000 + 100 * k as u64;
            let rows = g.f * g.s * g.s;
            let images = mat(seed, rows, g.n, 0.0, 8.0);
            let mean_diffs = mat(seed + 1, rows, g.n, -2.0, 2.0);
            let (di, dm) = (up(b, &images), up(b, &mean_diffs));
            let (dd, dt) = (zeros(b, rows, g.n), zeros(b, rows, g.n));
            let (mut d, mut t) = (NvMatrix::default(), NvMatrix::default());
            let (f, size, a, p) = (g.f, g.size, g.add, g.pow);
            let what = |s: &str| format!("{} {s}", g.name);
            match g.cross {
                None => {
                    if f % 16 == 0 || f <= 8 {
                        norm::conv_contrast_norm(
                            &images,
                            &mean_diffs,
                            &mut d,
                            &mut t,
                            f,
                            size,
                            a,
                            p,
                        )
                        .unwrap();
                        dev::conv_contrast_norm(
                            b,
                            &di.m(),
                            &dm.m(),
                            &dd.m(),
                            &dt.m(),
                            f,
                            size,
                            a,
                            p,
                        )
                        .unwrap();
                        check(
                            b,
                            &what("cnorm denoms"),
                            &down(b, &dd),
                            d.data(),
                            Tier::Exact,
                        );
                        check(b, &what("cnorm"), &down(b, &dt), t.data(), FORWARD);
                    }
                    norm::conv_response_norm(&images, &mut d, &mut t, f, size, a, p).unwrap();
                    dev::conv_response_norm(b, &di.m(), &dd.m(), &dt.m(), f, size, a, p).unwrap();
                }
                Some(blocked) => {
                    norm::conv_contrast_norm_cross_map(
                        &images,
                        &mean_diffs,
                        &mut d,
                        &mut t,
                        f,
                        size,
                        a,
                        p,
                        blocked,
                    )
                    .unwrap();
                    dev::conv_contrast_norm_cross_map(
                        b,
                        &di.m(),
                        &dm.m(),
                        &dd.m(),
                        &dt.m(),
                        f,
                        size,
                        a,
                        p,
                        blocked,
                    )
                    .unwrap();
                    check(
                        b,
                        &what("cross cnorm denoms"),
                        &down(b, &dd),
                        d.data(),
                        Tier::Exact,
                    );
                    check(b, &what("cross cnorm"), &down(b, &dt), t.data(), FORWARD);
                    norm::conv_response_norm_cross_map(
                        &images, &mut d, &mut t, f, size, a, p, blocked,
                    )
                    .unwrap();
                    dev::conv_response_norm_cross_map(
                        b,
                        &di.m(),
                        &dd.m(),
                        &dt.m(),
                        f,
                        size,
                        a,
                        p,
                        blocked,
                    )
                    .unwrap();
                    check(b, &what("cmrnorm 2011"), &down(b, &dt), t.data(), FORWARD);
                    norm::conv_response_norm_cross_map_min_div(
                        &images, &mut d, &mut t, f, size, a, p, g.min_div, blocked,
                    )
                    .unwrap();
                    dev::conv_response_norm_cross_map_min_div(
                        b,
                        &di.m(),
                        &dd.m(),
                        &dt.m(),
                        f,
                        size,
                        a,
                        p,
                        g.min_div,
                        blocked,
                    )
                    .unwrap();
                }
            }
            check(b, &what("denoms"), &down(b, &dd), d.data(), Tier::Exact);
            check(b, &what("forward"), &down(b, &dt), t.data(), FORWARD);
            if f % 16 != 0 {
                continue;
            }
            // The undo, from this forward pass's denominators and outputs.
            let (denoms, acts) = (d, t);
            let out_grads = mat(seed + 2, rows, g.n, -0.01, 0.01);
            let old = mat(seed + 3, rows, g.n, -1.0, 1.0);
            let (dog, dden) = (up(b, &out_grads), up(b, &denoms));
            for (st, so) in [(0.0, 1.0), (0.5, 2.0), (0.0, 0.5)] {
                let undo2s: &[Undo2Add] = match g.cross {
                    None => &[Undo2Add::AsOriginal, Undo2Add::Fixed],
                    Some(_) => &[Undo2Add::AsOriginal],
                };
                for &undo2 in undo2s {
                    let (mut ac, mut t) = (acts.clone(), old.clone());
                    let (dac, dt) = (up(b, &acts), up(b, &old));
                    match g.cross {
                        None => {
                            norm::conv_response_norm_undo_with(
                                &out_grads, &denoms, &images, &mut ac, &mut t, f, size, a, p, st,
                                so, undo2,
                            )
                            .unwrap();
                            dev::conv_response_norm_undo_with(
                                b,
                                &dog.m(),
                                &dden.m(),
                                &di.m(),
                                &dac.m(),
                                &dt.m(),
                                f,
                                size,
                                a,
                                p,
                                st,
                                so,
                                undo2,
                            )
                            .unwrap();
                        }
                        Some(blocked) => {
                            norm::conv_response_norm_cross_map_undo(
                                &out_grads, &denoms, &images, &mut ac, &mut t, f, size, a, p,
                                blocked, st, so,
                            )
                            .unwrap();
                            dev::conv_response_norm_cross_map_undo(
                                b,
                                &dog.m(),
                                &dden.m(),
                                &di.m(),
                                &dac.m(),
                                &dt.m(),
                                f,
                                size,
                                a,
                                p,
                                blocked,
                                st,
                                so,
                            )
                            .unwrap();
                        }
                    }
                    let w = what(&format!("undo {st} {so} {undo2:?}"));
                    check(
                        b,
                        &format!("{w} prelims"),
                        &down(b, &dac),
                        ac.data(),
                        Tier::Ulps(2.0),
                    );
                    check(b, &w, &down(b, &dt), t.data(), UNDO);
                }
            }
            if g.cross.is_none() {
                let (mut ac, mut t) = (acts.clone(), old.clone());
                let (dac, dt) = (up(b, &acts), up(b, &old));
                norm::conv_contrast_norm_undo(
                    &out_grads,
                    &denoms,
                    &mean_diffs,
                    &mut ac,
                    &mut t,
                    f,
                    size,
                    a,
                    p,
                    0.0,
                    1.0,
                )
                .unwrap();
                dev::conv_contrast_norm_undo(
                    b,
                    &dog.m(),
                    &dden.m(),
                    &dm.m(),
                    &dac.m(),
                    &dt.m(),
                    f,
                    size,
                    a,
                    p,
                    0.0,
                    1.0,
                )
                .unwrap();
                check(b, &what("cnorm undo"), &down(b, &dt), t.data(), UNDO);
            }
        }
    }
}

#[test]
fn tica_and_local_weights_match_the_cpu() {
    for b in backends() {
        let b = b.as_ref();
        for (k, &(f, s, n, size)) in [
            (16usize, 8usize, 5usize, 3usize),
            (32, 5, 33, 4),
            (16, 3, 2, 5),
        ]
        .iter()
        .enumerate()
        {
            let rows = f * s * s;
            let seed = 3000 + 10 * k as u64;
            let images = mat(seed, rows, n, -1.0, 1.0);
            let ticas = mat(seed + 1, rows, n, 0.0, 2.0);
            let old = mat(seed + 2, rows, n, -1.0, 1.0);
            let (di, dti) = (up(b, &images), up(b, &ticas));
            for (st, so) in [(0.0, 1.0), (0.5, -2.0)] {
                let (mut t, dt) = (old.clone(), up(b, &old));
                norm::conv_tica(&images, &mut t, f, size, st, so).unwrap();
                dev::conv_tica(b, &di.m(), &dt.m(), f, size, st, so).unwrap();
                let w = format!("tica {f}x{s} size {size} {st} {so}");
                check(b, &w, &down(b, &dt), t.data(), Tier::Ulps(2.0));
                let (mut t, dt) = (old.clone(), up(b, &old));
                norm::conv_tica_grad(&images, &ticas, &mut t, f, size, st, so).unwrap();
                dev::conv_tica_grad(b, &di.m(), &dti.m(), &dt.m(), f, size, st, so).unwrap();
                check(
                    b,
                    &format!("{w} grad"),
                    &down(b, &dt),
                    t.data(),
                    Tier::Exact,
                );
            }
        }
        // Local weights (modules, colors*filterPixels, filters); some columns over norm.
        for (modules, per, nf) in [(4usize, 27usize, 16usize), (9, 75, 32)] {
            let mut w = mat(per as u64, modules * per, nf, -0.3, 0.3);
            let dw = up(b, &w);
            // About the columns' typical norm: some are scaled, some are not.
            let norm_ = (per as f32 * 0.03).sqrt();
            norm::normalize_local_weights(&mut w, modules, norm_).unwrap();
            dev::normalize_local_weights(b, &dw.m(), modules, norm_).unwrap();
            let what = format!("normalizeLocalWeights {modules}x{per}x{nf}");
            check(b, &what, &down(b, &dw), w.data(), Tier::Ulps(2.0));
        }
    }
}

// ---------------------------------------------------------------------------------
// Image utilities
// ---------------------------------------------------------------------------------

#[test]
fn bed_of_nails_matches_the_cpu() {
    for b in backends() {
        let b = b.as_ref();
        for (k, &(nc, size, n, start, stride)) in [
            (3usize, 8usize, 5usize, 1i32, 2usize),
            (16, 9, 33, 0, 3),
            (1, 12, 2, 2, 4),
        ]
        .iter()
        .enumerate()
        {
            let outs = size.div_ceil(stride);
            let seed = 4000 + 10 * k as u64;
            let images = mat(seed, nc * size * size, n, -1.0, 1.0);
            let grads = mat(seed + 1, nc * outs * outs, n, -1.0, 1.0);
            let old_out = mat(seed + 2, nc * outs * outs, n, -1.0, 1.0);
            let old_in = mat(seed + 3, nc * size * size, n, -1.0, 1.0);
            let (di, dg) = (up(b, &images), up(b, &grads));
            for (st, so) in [(0.0, 1.0), (0.5, -2.0)] {
                let w = format!("bed of nails {nc}x{size} start {start} stride {stride} {st} {so}");
                let (mut t, dt) = (old_out.clone(), up(b, &old_out));
                util::conv_bed_of_nails(&images, &mut t, nc, size, start, stride, st, so).unwrap();
                dev::conv_bed_of_nails(b, &di.m(), &dt.m(), nc, size, start, stride, st, so)
                    .unwrap();
                check(b, &w, &down(b, &dt), t.data(), Tier::Exact);
                let (mut t, dt) = (old_in.clone(), up(b, &old_in));
                util::conv_bed_of_nails_undo_fixed(&grads, &mut t, nc, size, start, stride, st, so)
                    .unwrap();
                dev::conv_bed_of_nails_undo_fixed(
                    b,
                    &dg.m(),
                    &dt.m(),
                    nc,
                    size,
                    start,
                    stride,
                    st,
                    so,
                )
                .unwrap();
                check(
                    b,
                    &format!("{w} undo"),
                    &down(b, &dt),
                    t.data(),
                    Tier::Exact,
                );
                // The original's shape check (BUG): fails when accumulating, on both.
                let (mut t, dt) = (old_in.clone(), up(b, &old_in));
                let cpu =
                    util::conv_bed_of_nails_undo(&grads, &mut t, nc, size, start, stride, st, so);
                let gpu = dev::conv_bed_of_nails_undo(
                    b,
                    &dg.m(),
                    &dt.m(),
                    nc,
                    size,
                    start,
                    stride,
                    st,
                    so,
                );
                assert_eq!(cpu.is_ok(), gpu.is_ok(), "{w}: undo check");
                if cpu.is_ok() {
                    check(
                        b,
                        &format!("{w} undo (original)"),
                        &down(b, &dt),
                        t.data(),
                        Tier::Exact,
                    );
                }
            }
        }
    }
}

#[test]
fn gaussian_blur_matches_the_cpu() {
    for b in backends() {
        let b = b.as_ref();
        for r in 1..=4usize {
            // An asymmetric filter shows the kernel's exact tap use.
            let filter = mat(r as u64, 1, 2 * r + 1, 0.05, 0.5);
            let df = up(b, &filter);
            // Every remainder of the main loop's groups of 4, and a larger image.
            for size in (2 * r + 1..=2 * r + 5).chain([2 * r + 12]) {
                let (nc, n) = (2, 3);
                let rows = nc * size * size;
                let seed = 5000 + 100 * r as u64 + size as u64;
                let images = mat(seed, rows, n, -1.0, 1.0);
                let old = mat(seed + 1, rows, n, -1.0, 1.0);
                let di = up(b, &images);
                for horiz in [true, false] {
                    for (st, so) in [(0.0, 1.0), (0.5, 2.0)] {
                        let w = format!("blur r {r} size {size} horiz {horiz} {st} {so}");
                        let (mut t, dt) = (old.clone(), up(b, &old));
                        util::conv_gaussian_blur(&images, &filter, &mut t, horiz, nc, st, so)
                            .unwrap();
                        dev::conv_gaussian_blur(b, &di.m(), &df.m(), &dt.m(), horiz, nc, st, so)
                            .unwrap();
                        check(b, &w, &down(b, &dt), t.data(), Tier::Exact);
                        let mut t = images.clone();
                        let dt = up(b, &images);
                        util::conv_gaussian_blur_in_place(&mut t, &filter, horiz, nc, st, so)
                            .unwrap();
                        dev::conv_gaussian_blur_in_place(b, &dt.m(), &df.m(), horiz, nc, st, so)
                            .unwrap();
                        check(
                            b,
                            &format!("{w} in place"),
                            &down(b, &dt),
                            t.data(),
                            Tier::Exact,
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn resize_colour_crop_reflect_match_the_cpu() {
    for b in backends() {
        let b = b.as_ref();
        for (k, &(nc, size, tgt, n, scale)) in [
            (3usize, 32usize, 24usize, 5usize, 32.0f32 / 24.0),
            (2, 9, 16, 33, 0.5),
            (1, 16, 16, 2, 1.0),
            (3, 7, 3, 4, 2.1),
        ]
        .iter()
        .enumerate()
        {
            let images = mat(6000 + k as u64, nc * size * size, n, -1.0, 1.0);
            let di = up(b, &images);
            let dt = zeros(b, nc * tgt * tgt, n);
            let mut t = NvMatrix::default();
            util::conv_resize_bilinear(&images, &mut t, size, tgt, scale).unwrap();
            dev::conv_resize_bilinear(b, &di.m(), &dt.m(), size, tgt, scale).unwrap();
            check(
                b,
                &format!("resize {size}->{tgt}"),
                &down(b, &dt),
                t.data(),
                Tier::Exact,
            );
        }
        for (size, n) in [(8usize, 5usize), (5, 33)] {
            // RGB in [0, 1], both branches of labf.
            let mut images = mat(size as u64, 3 * size * size, n, 0.0, 1.0);
            let plane = size * size * n;
            for c in 0..3 {
                // Pixel 0 dark: labf's linear branch.
                images.data_mut()[c * plane..c * plane + n]
                    .iter_mut()
                    .for_each(|x| *x *= 0.005);
            }
            let di = up(b, &images);
            let dt = zeros(b, images.rows(), images.cols());
            let mut t = NvMatrix::default();
            util::conv_rgb_to_yuv(&images, &mut t).unwrap();
            dev::conv_rgb_to_yuv(b, &di.m(), &dt.m()).unwrap();
            check(b, "rgb to yuv", &down(b, &dt), t.data(), Tier::Exact);
            for center in [false, true] {
                util::conv_rgb_to_lab(&images, &mut t, center).unwrap();
                dev::conv_rgb_to_lab(b, &di.m(), &dt.m(), center).unwrap();
                // f within 3 ulp on a GPU; L = 116f - 16 and the differences in a, b
                // cancel, so the bound on the outputs is looser.
                check(b, "rgb to lab", &down(b, &dt), t.data(), Tier::Terms(16.0));
            }
        }
        for (nc, size, tgt, n, sy, sx) in [
            (3usize, 32usize, 24usize, 5usize, 4i32, 1i32),
            (2, 9, 9, 3, 0, 0),
            (1, 6, 2, 33, 4, 3),
        ] {
            let images = mat(7000 + size as u64, nc * size * size, n, -1.0, 1.0);
            let di = up(b, &images);
            let dt = zeros(b, nc * tgt * tgt, n);
            let mut t = NvMatrix::default();
            util::conv_crop(&images, &mut t, size, tgt, sy, sx).unwrap();
            dev::conv_crop(b, &di.m(), &dt.m(), size, tgt, sy, sx).unwrap();
            check(
                b,
                &format!("crop {size}->{tgt}"),
                &down(b, &dt),
                t.data(),
                Tier::Exact,
            );
            if nc <= 3 {
                let dt = zeros(b, images.rows(), images.cols());
                util::conv_reflect_horizontal(&images, &mut t, size).unwrap();
                dev::conv_reflect_horizontal(b, &di.m(), &dt.m(), size).unwrap();
                check(
                    b,
                    &format!("reflect {size}"),
                    &down(b, &dt),
                    t.data(),
                    Tier::Exact,
                );
            }
        }
        let bad = zeros(b, 10, 1);
        let images = zeros(b, 3 * 16, 2);
        assert!(dev::conv_crop(b, &images.m(), &bad.m(), 4, 3, 0, 0).is_err());
        assert!(dev::conv_crop(b, &images.m(), &bad.m(), 4, 3, 2, 0).is_err());
    }
}

#[test]
fn half_quantisation_matches_the_cpu() {
    for b in backends() {
        let b = b.as_ref();
        let mut values = uniform(8000, 1001, -70000.0, 70000.0);
        values.extend(uniform(8001, 500, -1e-4, 1e-4));
        values.extend([
            0.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            65504.0,
            65519.99,
            65520.0,
            1e-8,
            -3e-8,
            f32::from_bits(1),
            1.0 + f32::EPSILON * 4096.0, // a tie between two halves
            2.0f32.powi(-24) * 1.5,
        ]);
        let src = NvMatrix::from_vec(1, values.len(), false, values);
        let ds = up(b, &src);
        let mut q = NvMatrix::default();
        util::conv_quantize_half(&src, &mut q).unwrap();
        let dq = zeros(b, q.rows(), q.cols());
        dev::conv_quantize_half(b, &ds.m(), &dq.m()).unwrap();
        let got: Vec<u32> = down(b, &dq).iter().map(|x| x.to_bits()).collect();
        let want: Vec<u32> = q.data().iter().map(|x| x.to_bits()).collect();
        assert_eq!(got, want, "quantize half on {}", b.name());
        let count = src.len();
        for (st, so) in [(0.0, 1.0), (0.5, -2.0)] {
            let old = mat(8002, 1, count, -1.0, 1.0);
            let (mut t, dt) = (old.clone(), up(b, &old));
            util::conv_dequantize_half(&q, &mut t, count, st, so).unwrap();
            dev::conv_dequantize_half(b, &dq.m(), &dt.m(), count, st, so).unwrap();
            let what = format!("dequantize half {st} {so}");
            check(b, &what, &down(b, &dt), t.data(), Tier::Exact);
        }
    }
}
