//! `convnet bench kernels` (ours, not a port): throughput of the kernels at the
//! shapes of our nets, against the machine's measured fp32 FMA peak and copy bandwidth.
//!
//! Each kernel runs repeatedly on seeded inputs; the best time per call counts. Lines
//! are JSON objects, one per measurement, e.g.
//! `{"kernel": "filterActs", "case": "18pct-conv2", "gflops": 61.2, "of_peak": 0.55}`.
//! With `--device cuda`, the convolution kernels of `cuda/` on a GPU instead
//! ([`gpu_kernels`]; no peak measured there).

use crate::cuda::launch::conv as dev;
use crate::cuda::{Backend, DevBuf, DevMat, GpuError};
use crate::cudaconv2::conv_util::norm::{
    conv_response_norm, conv_response_norm_cross_map, conv_response_norm_cross_map_undo,
    conv_response_norm_undo,
};
use crate::cudaconv2::conv_util::pool::{
    conv_local_avg_undo, conv_local_max_undo, conv_local_pool, AvgPooler, MaxPooler,
};
use crate::cudaconv2::filter_acts::{conv_filter_acts, local_filter_acts};
use crate::cudaconv2::img_acts::{conv_img_acts, local_img_acts};
use crate::cudaconv2::lanes::{self, F32x16, F32x8, Lanes, Simd};
use crate::cudaconv2::shapes::{ConvShape, NET_SHAPES};
use crate::cudaconv2::weight_acts::{conv_weight_acts, local_weight_acts};
use crate::nvmatrix::NvMatrix;
use crate::parallel;
use crate::synthetic::uniform;
use std::hint::black_box;
use std::time::Instant;

/// Best seconds per call of `f` over repeated runs lasting at least `min_secs`.
pub fn best_secs(mut f: impl FnMut(), min_secs: f64) -> f64 {
    f();
    let start = Instant::now();
    let mut best = f64::INFINITY;
    while start.elapsed().as_secs_f64() < min_secs || best == f64::INFINITY {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

/// Independent chains of fused multiply-adds, enough to cover the FMA units' latency.
const CHAINS: usize = 12;

/// `CHAINS` chains of FMAs on vectors `V`; returns a value so the work cannot be
/// skipped.
///
/// # Safety
/// The CPU runs `V` ([`Lanes`]).
#[inline(always)]
unsafe fn fma_chains<V: Lanes>(iters: usize, seed: f32) -> f32 {
    let mut acc = [V::splat(seed); CHAINS];
    let (a, b) = (V::splat(black_box(0.999_999)), V::splat(black_box(1e-7)));
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = x.mul_add(a, b);
        }
    }
    let mut out = [0f32; 16];
    acc.iter().fold(0.0, |s, x| {
        x.store_ptr(out.as_mut_ptr());
        s + out[..V::WIDTH].iter().sum::<f32>()
    })
}

/// [`fma_chains`] on 16-lane vectors, compiled for AVX-512.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn fma_chains_wide(iters: usize, seed: f32) -> f32 {
    fma_chains::<F32x16>(iters, seed)
}

/// The machine's fp32 FMA peak in GFLOP/s (2 flops per FMA), all worker threads busy,
/// with the vectors the kernels use ([`lanes::simd`]): the lanes and the figure.
pub fn peak_gflops() -> (usize, f64) {
    let iters = 2_000_000;
    let simd = lanes::simd();
    let width = match simd {
        Simd::Avx2 => 8,
        Simd::Avx512 => 16,
    };
    let flops_per_thread = (iters * CHAINS * width * 2) as f64;
    let n = parallel::threads();
    let secs = best_secs(
        || {
            parallel::for_each_task(n, |i| {
                let seed = i as f32;
                black_box(match simd {
                    // SAFETY: eight lanes are the build's baseline.
                    Simd::Avx2 => unsafe { fma_chains::<F32x8>(iters, seed) },
                    // SAFETY: `simd()` said the CPU has AVX-512F.
                    Simd::Avx512 => unsafe { fma_chains_wide(iters, seed) },
                });
            })
        },
        0.5,
    );
    (width, flops_per_thread * n as f64 / secs / 1e9)
}

/// Copy bandwidth in GB/s (bytes read plus bytes written) for a buffer of `bytes`
/// (so moving `2*bytes`),
/// split over the worker threads as the kernels split their outputs.
pub fn copy_gbps(bytes: usize) -> f64 {
    let n = bytes / 4;
    let src = vec![1.0f32; n];
    let mut dst = vec![0.0f32; n];
    let tasks = parallel::threads();
    let secs = best_secs(
        || {
            let out = parallel::SharedOut::new(&mut dst);
            parallel::for_each_task(tasks, |t| {
                let (a, b) = (n * t / tasks, n * (t + 1) / tasks);
                // SAFETY: tasks own disjoint ranges.
                unsafe { out.slice(a, b - a) }.copy_from_slice(&src[a..b]);
            });
            black_box(&dst);
        },
        0.3,
    );
    2.0 * bytes as f64 / secs / 1e9
}

/// One benchmark line.
pub struct Line {
    /// The original kernel's name, e.g. `filterActs`.
    pub kernel: &'static str,
    /// The shape, e.g. `18pct-conv2`.
    pub case: String,
    /// Best seconds per call.
    pub secs: f64,
    /// Floating-point operations per call (compute-bound kernels).
    pub flops: Option<f64>,
    /// Bytes read plus written per call (memory-bound kernels).
    pub bytes: Option<f64>,
}

/// A convolution kernel's line: its shape's floating-point operations per call.
fn conv_line(kernel: &'static str, s: ConvShape, secs: f64) -> Line {
    Line {
        kernel,
        case: s.name.into(),
        secs,
        flops: Some(s.flops()),
        bytes: None,
    }
}

/// A memory-bound line: its time against a copy of the same number of bytes.
fn mem_line(kernel: &'static str, case: &str, secs: f64, bytes: f64) -> Line {
    Line {
        kernel,
        case: case.into(),
        secs,
        flops: None,
        bytes: Some(bytes),
    }
}

impl Line {
    /// The JSON object printed for this line, given the machine's peak (none on a GPU);
    /// memory-bound lines are compared with a copy of the same number of bytes, measured
    /// here.
    pub fn json(&self, peak_gflops: Option<f64>) -> String {
        let mut s = format!(
            "{{\"kernel\": \"{}\", \"case\": \"{}\"",
            self.kernel, self.case
        );
        if let Some(f) = self.flops {
            let g = f / self.secs / 1e9;
            s += &format!(", \"gflops\": {g:.1}");
            if let Some(peak) = peak_gflops {
                s += &format!(", \"of_peak\": {:.2}", g / peak);
            }
        }
        if let Some(b) = self.bytes {
            let g = b / self.secs / 1e9;
            let copy_gbps = copy_gbps(b as usize / 2);
            s += &format!(
                ", \"gbps\": {g:.1}, \"copy_time_ratio\": {:.2}",
                copy_gbps / g
            );
        }
        s + &format!(", \"ms\": {:.3}}}", self.secs * 1e3)
    }
}

/// A convolution kernel's name and how to run it on a [`Conv`].
type ConvRun = (&'static str, fn(&mut Conv));

/// The three convolution kernels of one shape, run on seeded inputs.
struct Conv {
    s: ConvShape,
    images: NvMatrix,
    filters: NvMatrix,
    hid: NvMatrix,
    out: NvMatrix,
}

impl Conv {
    fn new(s: ConvShape) -> Conv {
        let n = s.images;
        let pixels = s.img_size * s.img_size;
        let m = |rows: usize, cols: usize, seed: u64| {
            NvMatrix::from_vec(rows, cols, false, uniform(seed, rows * cols, -1.0, 1.0))
        };
        Conv {
            images: m(s.colors * pixels, n, 1),
            filters: m(s.filter_rows(), s.filters, 2),
            hid: m(s.filters * s.modules(), n, 3),
            out: NvMatrix::default(),
            s,
        }
    }

    fn filter_acts(&mut self) {
        let s = self.s;
        let f = if s.local {
            local_filter_acts
        } else {
            conv_filter_acts
        };
        f(
            &self.images,
            &self.filters,
            &mut self.out,
            s.img_size,
            s.modules_x,
            s.modules_x,
            s.padding_start(),
            s.stride,
            s.colors,
            s.groups,
            0.0,
            1.0,
        )
        .expect("bench shapes are valid");
    }

    fn img_acts(&mut self) {
        let s = self.s;
        let f = if s.local {
            local_img_acts
        } else {
            conv_img_acts
        };
        f(
            &self.hid,
            &self.filters,
            &mut self.out,
            s.img_size,
            s.img_size,
            s.modules_x,
            s.padding_start(),
            s.stride,
            s.colors,
            s.groups,
            0.0,
            1.0,
        )
        .expect("bench shapes are valid");
    }

    fn weight_acts(&mut self) {
        let s = self.s;
        let (args, p) = (
            (
                s.img_size,
                s.modules_x,
                s.modules_x,
                s.filter_size,
                s.padding_start(),
                s.stride,
                s.colors,
                s.groups,
            ),
            s.partial_sum,
        );
        let r = if s.local {
            local_weight_acts(
                &self.images,
                &self.hid,
                &mut self.out,
                args.0,
                args.1,
                args.2,
                args.3,
                args.4,
                args.5,
                args.6,
                args.7,
                0.0,
                1.0,
            )
        } else {
            conv_weight_acts(
                &self.images,
                &self.hid,
                &mut self.out,
                args.0,
                args.1,
                args.2,
                args.3,
                args.4,
                args.5,
                args.6,
                args.7,
                p,
                0.0,
                1.0,
            )
        };
        r.expect("bench shapes are valid");
    }
}

/// A pooling layer of our nets: channels, image size, window, stride, pooler.
struct Pool {
    name: &'static str,
    channels: usize,
    img: usize,
    size: usize,
    stride: usize,
    max: bool,
}

const POOLS: &[Pool] = &[
    Pool {
        name: "18pct-pool1",
        channels: 32,
        img: 32,
        size: 3,
        stride: 2,
        max: true,
    },
    Pool {
        name: "18pct-pool2",
        channels: 32,
        img: 16,
        size: 3,
        stride: 2,
        max: false,
    },
    Pool {
        name: "alexnet-pool1",
        channels: 48,
        img: 55,
        size: 3,
        stride: 2,
        max: true,
    },
];

/// Output size of a pooling layer (the parser's `outputsX` for start 0).
fn pool_outputs(img: usize, size: usize, stride: usize) -> usize {
    (img - size).div_ceil(stride) + 1
}

fn pool_lines(p: &Pool, min_secs: f64) -> Vec<Line> {
    let n = 128;
    let px = p.img * p.img;
    let out_x = pool_outputs(p.img, p.size, p.stride);
    let images = NvMatrix::from_vec(
        p.channels * px,
        n,
        false,
        uniform(4, p.channels * px * n, -1.0, 1.0),
    );
    let mut acts = NvMatrix::default();
    let in_bytes = (p.channels * px * n * 4) as f64;
    let out_bytes = (p.channels * out_x * out_x * n * 4) as f64;
    let fwd = |acts: &mut NvMatrix| {
        let r = if p.max {
            conv_local_pool(
                &images, acts, p.channels, p.size, 0, p.stride, out_x, MaxPooler,
            )
        } else {
            conv_local_pool(
                &images, acts, p.channels, p.size, 0, p.stride, out_x, AvgPooler,
            )
        };
        r.expect("bench shapes are valid");
    };
    let secs = best_secs(|| fwd(&mut acts), min_secs);
    let mut lines = vec![mem_line(
        "convLocalPool",
        p.name,
        secs,
        in_bytes + out_bytes,
    )];
    let grads = NvMatrix::from_vec(acts.rows(), n, false, uniform(5, acts.len(), -1.0, 1.0));
    let mut target = NvMatrix::default();
    let (kernel, secs, bytes) = if p.max {
        let secs = best_secs(
            || {
                conv_local_max_undo(
                    &images,
                    &grads,
                    &acts,
                    &mut target,
                    p.size,
                    0,
                    p.stride,
                    out_x,
                    0.0,
                    1.0,
                )
                .expect("bench shapes are valid")
            },
            min_secs,
        );
        ("convLocalMaxUndo", secs, 2.0 * in_bytes + 2.0 * out_bytes)
    } else {
        let secs = best_secs(
            || {
                conv_local_avg_undo(
                    &grads,
                    &mut target,
                    p.size,
                    0,
                    p.stride,
                    out_x,
                    p.img,
                    0.0,
                    1.0,
                )
                .expect("bench shapes are valid")
            },
            min_secs,
        );
        ("convLocalAvgUndo", secs, in_bytes + out_bytes)
    };
    lines.push(mem_line(kernel, p.name, secs, bytes));
    lines
}

/// A normalisation layer of our nets: channels, image size, window, cross-map or not.
struct Norm {
    name: &'static str,
    channels: usize,
    img: usize,
    size: usize,
    cross_map: bool,
}

const NORMS: &[Norm] = &[
    Norm {
        name: "18pct-rnorm2",
        channels: 32,
        img: 8,
        size: 3,
        cross_map: false,
    },
    Norm {
        name: "18pct-rnorm1",
        channels: 32,
        img: 16,
        size: 3,
        cross_map: false,
    },
    Norm {
        name: "alexnet-cmrnorm1",
        channels: 48,
        img: 55,
        size: 5,
        cross_map: true,
    },
];

/// Forward and undo of one normalisation layer. The forward moves images, denoms and
/// target; the undo reads outGrads, denoms, inputs and acts, rewrites acts, writes
/// the target.
fn norm_lines(p: &Norm, min_secs: f64) -> Vec<Line> {
    let (n, rows) = (128, p.channels * p.img * p.img);
    let m = |seed| NvMatrix::from_vec(rows, n, false, uniform(seed, rows * n, -1.0, 1.0));
    let (images, grads) = (m(6), m(7));
    let (mut denoms, mut acts, mut target) = (
        NvMatrix::default(),
        NvMatrix::default(),
        NvMatrix::default(),
    );
    let (add, pow) = (0.001, 0.75);
    let bytes = (rows * n * 4) as f64;
    let fwd = |denoms: &mut NvMatrix, acts: &mut NvMatrix| {
        let r = if p.cross_map {
            conv_response_norm_cross_map(&images, denoms, acts, p.channels, p.size, add, pow, false)
        } else {
            conv_response_norm(&images, denoms, acts, p.channels, p.size, add, pow)
        };
        r.expect("bench shapes are valid");
    };
    let (kernel, undo) = if p.cross_map {
        ("convResponseNormCrossMap", "convResponseNormCrossMapUndo")
    } else {
        ("convResponseNorm", "convResponseNormUndo")
    };
    let secs = best_secs(|| fwd(&mut denoms, &mut acts), min_secs);
    let mut lines = vec![mem_line(kernel, p.name, secs, 3.0 * bytes)];
    let secs = best_secs(
        || {
            fwd(&mut denoms, &mut acts);
            let r = if p.cross_map {
                conv_response_norm_cross_map_undo(
                    &grads,
                    &denoms,
                    &images,
                    &mut acts,
                    &mut target,
                    p.channels,
                    p.size,
                    add,
                    pow,
                    false,
                    0.0,
                    1.0,
                )
            } else {
                conv_response_norm_undo(
                    &grads,
                    &denoms,
                    &images,
                    &mut acts,
                    &mut target,
                    p.channels,
                    p.size,
                    add,
                    pow,
                    0.0,
                    1.0,
                )
            };
            r.expect("bench shapes are valid");
        },
        min_secs,
    );
    // The undo overwrites acts, so each run redoes the forward; its time is subtracted.
    let secs = secs - lines[0].secs;
    lines.push(mem_line(undo, p.name, secs, 6.0 * bytes));
    lines
}

/// Runs every kernel benchmark whose kernel or case name contains `only`, each for at
/// least `min_secs`: filterActs, imgActs and weightActs at every shape of
/// [`NET_SHAPES`] (128 images), then the pooling and normalisation layers of our nets.
/// Memory-bound lines count the bytes the kernel must read and write.
pub fn kernels(only: Option<&str>, min_secs: f64, mut emit: impl FnMut(Line)) {
    let wanted =
        |kernel: &str, case: &str| only.is_none_or(|o| kernel.contains(o) || case.contains(o));
    for &s in NET_SHAPES {
        let mut c = Conv::new(s);
        let runs: [ConvRun; 3] = [
            ("filterActs", Conv::filter_acts),
            ("imgActs", Conv::img_acts),
            ("weightActs", Conv::weight_acts),
        ];
        for (kernel, run) in runs {
            if wanted(kernel, s.name) {
                let secs = best_secs(|| run(&mut c), min_secs);
                emit(conv_line(kernel, s, secs));
            }
        }
    }
    for p in POOLS {
        if wanted("convLocalPool", p.name)
            || wanted("convLocalMaxUndo", p.name)
            || wanted("convLocalAvgUndo", p.name)
        {
            pool_lines(p, min_secs)
                .into_iter()
                .filter(|l| wanted(l.kernel, &l.case))
                .for_each(&mut emit);
        }
    }
    for p in NORMS {
        if wanted("convResponseNorm", p.name) {
            norm_lines(p, min_secs)
                .into_iter()
                .filter(|l| wanted(l.kernel, &l.case))
                .for_each(&mut emit);
        }
    }
}

/// The device filterActs and imgActs: `(backend, images or hidActs, filters, targets,
/// three geometry sizes, paddingStart, moduleStride, numImgColors, numGroups,
/// scaleTargets, scaleOutput)`.
type DevActs = fn(
    &dyn Backend,
    &DevMat,
    &DevMat,
    &DevMat,
    usize,
    usize,
    usize,
    i32,
    usize,
    usize,
    usize,
    f32,
    f32,
) -> Result<(), GpuError>;

/// [`best_secs`] of a fallible GPU operation: its first error, if any.
fn gpu_best_secs(
    mut f: impl FnMut() -> Result<(), GpuError>,
    min_secs: f64,
) -> Result<f64, GpuError> {
    let mut failed = Ok(());
    let secs = best_secs(
        || {
            if let Err(e) = f() {
                failed = Err(e);
            }
        },
        min_secs,
    );
    failed.map(|()| secs)
}

/// On the GPU `b`: copies of 64 MiB to and from the device (`upload`, `download`), then
/// the filterActs, imgActs and weightActs kernels of `cuda/` at every shape of
/// [`NET_SHAPES`]; only those whose kernel or case name contains `only`. Kernels are
/// timed from launch to completion (a one-word read of the output waits for them).
pub fn gpu_kernels(
    b: &dyn Backend,
    only: Option<&str>,
    min_secs: f64,
    mut emit: impl FnMut(Line),
) -> Result<(), GpuError> {
    let wanted =
        |kernel: &str, case: &str| only.is_none_or(|o| kernel.contains(o) || case.contains(o));
    let words = 16 << 20;
    let (host, dev) = (vec![0x3f80_0000u32; words], b.alloc(words)?);
    let mut back = vec![0u32; words];
    for kernel in ["upload", "download"] {
        if wanted(kernel, "64MiB") {
            let copy = || match kernel {
                "upload" => b.write_words(&dev, 0, &host),
                _ => b.read_words(&dev, 0, &mut back),
            };
            let secs = gpu_best_secs(copy, min_secs)?;
            emit(mem_line(kernel, "64MiB", secs, 4.0 * words as f64));
        }
    }
    for &s in NET_SHAPES {
        let c = Conv::new(s);
        let up = |m: &NvMatrix| -> Result<(DevBuf, usize, usize), GpuError> {
            Ok((b.upload(m.data())?, m.rows(), m.cols()))
        };
        let (images, filters, hid) = (up(&c.images)?, up(&c.filters)?, up(&c.hid)?);
        fn mat(m: &(DevBuf, usize, usize)) -> Result<DevMat<'_>, GpuError> {
            DevMat::new(&m.0, m.1, m.2)
        }
        let (im, fi, hi) = (mat(&images)?, mat(&filters)?, mat(&hid)?);
        let n = s.images;
        let outs = [
            (s.filters * s.modules(), n),
            (s.colors * s.img_size * s.img_size, n),
            (s.weight_acts_rows(), s.filters),
        ];
        let (pad, img, mx) = (s.padding_start(), s.img_size, s.modules_x);
        let (st, c, g) = (s.stride, s.colors, s.groups);
        let (f, p) = (s.filter_size, s.partial_sum);
        for (k, kernel) in ["filterActs", "imgActs", "weightActs"]
            .into_iter()
            .enumerate()
        {
            if !wanted(kernel, s.name) {
                continue;
            }
            let buf = b.alloc(outs[k].0 * outs[k].1)?;
            let out = DevMat::new(&buf, outs[k].0, outs[k].1)?;
            let run = || -> Result<(), GpuError> {
                // filterActs and imgActs: (conv, local) kernels, first input, geometry.
                let acts = |f: [DevActs; 2], x: &DevMat, [g0, g1, g2]: [usize; 3]| {
                    f[s.local as usize](b, x, &fi, &out, g0, g1, g2, pad, st, c, g, 0.0, 1.0)
                };
                match k {
                    0 => acts(
                        [dev::conv_filter_acts, dev::local_filter_acts],
                        &im,
                        [img, mx, mx],
                    ),
                    1 => acts(
                        [dev::conv_img_acts, dev::local_img_acts],
                        &hi,
                        [img, img, mx],
                    ),
                    _ if s.local => dev::local_weight_acts(
                        b, &im, &hi, &out, img, mx, mx, f, pad, st, c, g, 0.0, 1.0,
                    ),
                    _ => dev::conv_weight_acts(
                        b, &im, &hi, &out, img, mx, mx, f, pad, st, c, g, p, 0.0, 1.0,
                    ),
                }?;
                b.read_words(&buf, 0, &mut [0u32])
            };
            run()?;
            let secs = gpu_best_secs(run, min_secs)?;
            emit(conv_line(kernel, s, secs));
        }
    }
    Ok(())
}
