//! Port of layer.cu, layer_kernels.cu, neuron.cuh, cost.cu, weights.cu and lr.cu (so
//! far: neurons, layer kernels and the 2012 learning-rate schedules), and of the 2012
//! host lattice multisoftmax.cpp and label tree softmaxtree.cu.
//!
//! - [`neuron`]: neuron.cuh of both generations (and the 2012 neuron.cu factory): every
//!   neuron's activation and input gradient, as pure kernels over slices.
//! - [`kernels`]: layer_kernels.cu of both generations (logistic-regression cost and
//!   gradients, softmax gradient, element-wise max gradient, the 2012 cross-entropy and
//!   multi-softmax cost kernels), plus the element-wise cost operators of the 2012
//!   layer.cuh (`cost.crossent2`, `cost.rflickr`) and the fused logistic +
//!   `cost.crossent2` gradient of the 2012 `NeuronLayer`.
//! - [`lr`]: lr.cu of the 2012 code, the learning-rate schedules.
//! - [`weights`]: the update rule of `Weights::update` (weights.cuh / weights.cu).
//! - [`multisoftmax`]: multisoftmax.cpp, the `cost.msm` lattice (double precision, host).
//! - [`softmaxtree`]: softmaxtree.cu, the label tree of the `treefc` layer.
//!
//! Every output element goes through the same single-precision operations as the
//! original's CUDA code for it. Where the fast intrinsics appear we call
//! [`crate::nvmatrix::intrinsics`]; `f32::mul_add` stands exactly where nvcc (CUDA 13,
//! `-arch=sm_75`, default `--fmad=true`) emits an `FFMA` in the final machine code
//! (SASS). That is sometimes more than the PTX shows: ptxas also contracts a
//! `div.approx` (a multiplication by a reciprocal) or a `mul.f32` with a following
//! add; each such site says so in its comment. The same fusions come out for sm_80
//! and sm_90.
//!
//! Work is split over threads by blocks of output elements ([`crate::parallel`]); each
//! element is computed by one task, so results do not depend on the thread count.

pub mod kernels;
pub mod lr;
pub mod multisoftmax;
pub mod neuron;
pub mod softmaxtree;
pub mod weights;

use crate::parallel::{for_each_task, SharedOut};

/// Elements per task of the element-wise drivers.
const CHUNK: usize = 1 << 14;

/// `__fdividef(x, y)` in its two operands (`nvmatrix::intrinsics::fdividef_parts`), so
/// that a caller can reproduce ptxas' contraction of the final product into an FFMA.
use crate::nvmatrix::intrinsics::fdividef_parts as div_approx_parts;

/// [`div_approx_parts`] for a divisor that is the same for every element: `(s, r)`
/// with `x' = x * s` (`s` is 1 or 2^24).
#[inline(always)]
fn div_approx_const(y: f32) -> (f32, f32) {
    let (s, r) = div_approx_parts(1.0, y);
    (s, r)
}

/// `__fdividef(x, y)` (see [`div_approx_parts`]).
#[inline(always)]
fn div_approx(x: f32, y: f32) -> f32 {
    let (x, r) = div_approx_parts(x, y);
    x * r
}

/// Runs `body(start, end)` over `0..n` in blocks of [`CHUNK`], on [`crate::parallel`]
/// threads.
fn chunked(n: usize, body: impl Fn(usize, usize) + Sync) {
    for_each_task(n.div_ceil(CHUNK), |t| {
        let s = t * CHUNK;
        body(s, (s + CHUNK).min(n));
    });
}

/// `out[i] = f(input[i])`.
fn map_into(input: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32 + Sync + Copy) {
    assert_eq!(input.len(), out.len());
    let o = SharedOut::new(out);
    chunked(input.len(), |s, e| {
        // A local copy of the closure: its captures become locals that LLVM knows the
        // stores do not touch, so the loop vectorises.
        let op = f;
        // SAFETY: chunks are disjoint; each is written by one task only.
        let out = unsafe { o.slice(s, e - s) };
        for (y, &x) in out.iter_mut().zip(&input[s..e]) {
            *y = op(x);
        }
    });
}

/// `data[i] = f(data[i])`.
fn map_in_place(data: &mut [f32], f: impl Fn(f32) -> f32 + Sync + Copy) {
    let n = data.len();
    let o = SharedOut::new(data);
    chunked(n, |s, e| {
        let op = f;
        // SAFETY: chunks are disjoint; each is written by one task only.
        for y in unsafe { o.slice(s, e - s) } {
            *y = op(*y);
        }
    });
}

/// `t[i] = f(g[i], t[i])`, where `g` is `t` itself (its value before the update) when
/// `None` (the original's `target == actsGrad`).
fn update2(g: Option<&[f32]>, t: &mut [f32], f: impl Fn(f32, f32) -> f32 + Sync + Copy) {
    let n = t.len();
    if let Some(g) = g {
        assert_eq!(g.len(), n);
    }
    let o = SharedOut::new(t);
    chunked(n, |s, e| {
        let op = f;
        // SAFETY: chunks are disjoint; each is written by one task only.
        let t = unsafe { o.slice(s, e - s) };
        match g {
            Some(g) => {
                for (t, &g) in t.iter_mut().zip(&g[s..e]) {
                    *t = op(g, *t);
                }
            }
            None => {
                for t in t.iter_mut() {
                    *t = op(*t, *t);
                }
            }
        }
    });
}

/// `t[i] = f(g[i], u[i], t[i])`, with `g = t` (before the update) when `None`.
fn update3(
    g: Option<&[f32]>,
    u: &[f32],
    t: &mut [f32],
    f: impl Fn(f32, f32, f32) -> f32 + Sync + Copy,
) {
    let n = t.len();
    assert_eq!(u.len(), n);
    if let Some(g) = g {
        assert_eq!(g.len(), n);
    }
    let o = SharedOut::new(t);
    chunked(n, |s, e| {
        let op = f;
        // SAFETY: chunks are disjoint; each is written by one task only.
        let t = unsafe { o.slice(s, e - s) };
        let u = &u[s..e];
        match g {
            Some(g) => {
                for ((t, &g), &u) in t.iter_mut().zip(&g[s..e]).zip(u) {
                    *t = op(g, u, *t);
                }
            }
            None => {
                for (t, &u) in t.iter_mut().zip(u) {
                    *t = op(*t, u, *t);
                }
            }
        }
    });
}

/// `t[i] = f(a[i], b[i], c[i], t[i])`.
fn update4(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    t: &mut [f32],
    f: impl Fn(f32, f32, f32, f32) -> f32 + Sync + Copy,
) {
    let n = t.len();
    assert!(a.len() == n && b.len() == n && c.len() == n);
    let o = SharedOut::new(t);
    chunked(n, |s, e| {
        let op = f;
        // SAFETY: chunks are disjoint; each is written by one task only.
        let t = unsafe { o.slice(s, e - s) };
        let (a, b, c) = (&a[s..e], &b[s..e], &c[s..e]);
        for i in 0..t.len() {
            t[i] = op(a[i], b[i], c[i], t[i]);
        }
    });
}

/// [`update3`] with the original's `add` template flag as a constant in each of two
/// instantiations (no branch on it inside the loop): `f(g, u, t, add)`.
fn update3_add(
    add: bool,
    g: Option<&[f32]>,
    u: &[f32],
    t: &mut [f32],
    f: impl Fn(f32, f32, f32, bool) -> f32 + Sync + Copy,
) {
    if add {
        update3(g, u, t, move |g, u, t| f(g, u, t, true))
    } else {
        update3(g, u, t, move |g, u, t| f(g, u, t, false))
    }
}

/// [`update4`] with a constant `add` (see [`update3_add`]).
fn update4_add(
    add: bool,
    a: &[f32],
    b: &[f32],
    c: &[f32],
    t: &mut [f32],
    f: impl Fn(f32, f32, f32, f32, bool) -> f32 + Sync + Copy,
) {
    if add {
        update4(a, b, c, t, move |a, b, c, t| f(a, b, c, t, true))
    } else {
        update4(a, b, c, t, move |a, b, c, t| f(a, b, c, t, false))
    }
}
