//! `convnet bench kernels` (ours, not a port): throughput of the kernels at the
//! shapes of our nets, against the machine's measured fp32 FMA peak and copy bandwidth.
//!
//! Each kernel runs repeatedly on seeded inputs; the best time per call counts. Lines
//! are JSON objects, one per measurement, e.g.
//! `{"kernel": "filterActs", "case": "18pct-conv2", "gflops": 61.2, "of_peak": 0.55}`.

use crate::parallel;
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

/// Chains of fused multiply-adds on `LANES`-wide vectors, enough independent chains to
/// cover the FMA units' latency; returns a value so the work cannot be skipped.
fn fma_chains(iters: usize, seed: f32) -> f32 {
    const CHAINS: usize = 12;
    const LANES: usize = 8;
    let mut acc = [[seed; LANES]; CHAINS];
    let (a, b) = (black_box(0.999_999f32), black_box(1e-7f32));
    for _ in 0..iters {
        for chain in acc.iter_mut() {
            for x in chain.iter_mut() {
                *x = x.mul_add(a, b);
            }
        }
    }
    acc.iter().flatten().sum()
}

/// The machine's fp32 FMA peak in GFLOP/s (2 flops per FMA), all worker threads busy.
pub fn peak_gflops() -> f64 {
    let iters = 2_000_000;
    let flops_per_thread = (iters * 12 * 8 * 2) as f64;
    let n = parallel::threads();
    let secs = best_secs(
        || {
            parallel::for_each_task(n, |i| {
                black_box(fma_chains(iters, i as f32));
            })
        },
        0.5,
    );
    flops_per_thread * n as f64 / secs / 1e9
}

/// Copy bandwidth in GB/s (bytes read plus bytes written) for a buffer of `bytes`,
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

impl Line {
    /// The JSON object printed for this line, given the machine's peak and copy rate.
    pub fn json(&self, peak_gflops: f64, copy_gbps: f64) -> String {
        let mut s = format!(
            "{{\"kernel\": \"{}\", \"case\": \"{}\"",
            self.kernel, self.case
        );
        if let Some(f) = self.flops {
            let g = f / self.secs / 1e9;
            s += &format!(", \"gflops\": {g:.1}, \"of_peak\": {:.2}", g / peak_gflops);
        }
        if let Some(b) = self.bytes {
            let g = b / self.secs / 1e9;
            s += &format!(
                ", \"gbps\": {g:.1}, \"copy_time_ratio\": {:.2}",
                copy_gbps / g
            );
        }
        s + &format!(", \"ms\": {:.3}}}", self.secs * 1e3)
    }
}

/// Runs every kernel benchmark whose kernel or case name contains `only`, each for at
/// least `min_secs`.
pub fn kernels(only: Option<&str>, min_secs: f64) -> Vec<Line> {
    let _ = (only, min_secs);
    Vec::new()
}
