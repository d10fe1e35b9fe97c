//! Port of NVMatrix's products (nvmatrix.cu): `rightMult` and `addProduct`, which call
//! cuBLAS v1 `cublasSgemm`, here a CPU sgemm with one fixed, documented order.
//!
//! Argument semantics are the original's: `rightMult(b, scaleAB, target)` resizes
//! `target` to `(rows, b.cols)` and forces it column-major (cuBLAS writes `C` with
//! `ldc = rows`); `addProduct(a, b, scaleThis, scaleAB)` is `a.rightMult(b, scaleAB,
//! this)` when `scaleThis == 0`, and otherwise needs `this` column-major (the original
//! asserts `_isTrans`) and computes `this = scaleThis*this + scaleAB*a*b`.
//!
//! Tier **bounded against cuBLAS**: cuBLAS publishes no summation order, so ours is
//! fixed and documented instead: for every element, `acc = +0`, then
//! `acc = fma(a[i][p], b[p][j], acc)` for `p = 0, 1, ..., k-1`, then
//! `c = alpha*acc` (`beta == 0`: `C` is not read, as BLAS) or
//! `c = fma(beta, c, alpha*acc)`. The error against the exact product is within the
//! usual `k * 2^-24 * sum|a||b|` recursive-summation bound; cuBLAS's own order (split
//! and tiled sums) has a bound of the same form. No GPU was available to measure the
//! actual difference from cuBLAS.
//!
//! Speed: a blocked kernel (packed 16x6 register tiles, `KC = 256` deep, vectorised
//! over the 16 rows, whose fused multiply-adds are per element in `p` order, so the
//! blocking does not change any sum) split over threads by output blocks.

use super::{MatView, NvMatrix};
use crate::cudaconv2::{require, ShapeError};
use crate::parallel::{for_each_task, SharedOut};

const MR: usize = 16;
const NR: usize = 6;
const KC: usize = 256;
const MC: usize = 128;
const NB: usize = 96;

/// `A(i, p)` of a view.
#[inline]
fn at(v: &MatView<'_>, i: usize, j: usize) -> f32 {
    let d = v.data();
    if v.is_trans() {
        d[j * v.rows() + i]
    } else {
        d[i * v.cols() + j]
    }
}

/// `acc[j][i] = fma(a[p][i], b[p][j], acc[j][i])` for `p` in order, on one 16x6 tile
/// of `c` (column-major, `ldc`).
#[inline(always)]
fn micro(a: &[f32], b: &[f32], c: &mut [f32], ldc: usize) {
    let mut acc = [[0f32; MR]; NR];
    for (j, col) in acc.iter_mut().enumerate() {
        col.copy_from_slice(&c[j * ldc..j * ldc + MR]);
    }
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        let ap: &[f32; MR] = ap.try_into().unwrap();
        for (col, &bj) in acc.iter_mut().zip(bp) {
            for (x, &ai) in col.iter_mut().zip(ap) {
                *x = ai.mul_add(bj, *x);
            }
        }
    }
    for (j, col) in acc.iter().enumerate() {
        c[j * ldc..j * ldc + MR].copy_from_slice(col);
    }
}

/// `C = alpha*A*B + beta*C` with `C` column-major `m x n` (`ldc = m`), in the order of
/// the module doc. `A` is `m x k`, `B` is `k x n`.
fn sgemm(a: &MatView<'_>, b: &MatView<'_>, alpha: f32, beta: f32, c: &mut [f32]) {
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    if m == 0 || n == 0 {
        return;
    }
    let (mblocks, nblocks) = (m.div_ceil(MC), n.div_ceil(NB));
    let out = SharedOut::new(c);
    let task = |t: usize| {
        let (ib, jb) = (t % mblocks, t / mblocks);
        let (i0, j0) = (ib * MC, jb * NB);
        let (mc, nb) = ((m - i0).min(MC), (n - j0).min(NB));
        let (mp, np) = (mc.div_ceil(MR) * MR, nb.div_ceil(NR) * NR);
        let mut tile = vec![0f32; mp * np];
        let mut apack = vec![0f32; mp * KC];
        let mut bpack = vec![0f32; np * KC];
        for p0 in (0..k).step_by(KC) {
            let kc = (k - p0).min(KC);
            for s in 0..mp / MR {
                let strip = &mut apack[s * MR * kc..(s + 1) * MR * kc];
                for p in 0..kc {
                    for ii in 0..MR {
                        let i = s * MR + ii;
                        strip[p * MR + ii] = if i < mc { at(a, i0 + i, p0 + p) } else { 0.0 };
                    }
                }
            }
            for s in 0..np / NR {
                let strip = &mut bpack[s * NR * kc..(s + 1) * NR * kc];
                for p in 0..kc {
                    for jj in 0..NR {
                        let j = s * NR + jj;
                        strip[p * NR + jj] = if j < nb { at(b, p0 + p, j0 + j) } else { 0.0 };
                    }
                }
            }
            for s in 0..np / NR {
                let bs = &bpack[s * NR * kc..(s + 1) * NR * kc];
                for r in 0..mp / MR {
                    let as_ = &apack[r * MR * kc..(r + 1) * MR * kc];
                    micro(as_, bs, &mut tile[s * NR * mp + r * MR..], mp);
                }
            }
        }
        for j in 0..nb {
            for i in 0..mc {
                let acc = tile[j * mp + i];
                let k_out = (j0 + j) * m + i0 + i;
                let v = if beta == 0.0 {
                    alpha * acc
                } else {
                    beta.mul_add(out.get(k_out), alpha * acc)
                };
                out.set(k_out, v);
            }
        }
    };
    let tasks = mblocks * nblocks;
    if m * n * k < 1 << 18 {
        (0..tasks).for_each(task);
    } else {
        for_each_task(tasks, task);
    }
}

/// `rightMult(b, scaleAB, target)` for views (e.g. `getTranspose()` operands):
/// `target = scaleAB * a * b`, resized to `(a.rows, b.cols)` and made column-major.
/// Bounded against cuBLAS (module doc).
pub fn right_mult<'a, 'b>(
    a: impl Into<MatView<'a>>,
    b: impl Into<MatView<'b>>,
    scale_ab: f32,
    target: &mut NvMatrix,
) -> Result<(), ShapeError> {
    let (a, b) = (a.into(), b.into());
    require(
        a.cols() == b.rows(),
        "NVMatrix::rightMult",
        "_numCols == b.getNumRows()",
    )?;
    target.resize(a.rows(), b.cols());
    target.set_trans(true);
    sgemm(&a, &b, scale_ab, 0.0, target.data_mut());
    Ok(())
}

impl NvMatrix {
    /// `rightMult(b, scaleAB, target)`: see [`right_mult`]. (The in-place form
    /// `rightMult(b, scaleAB)`, where cuBLAS would read and write the same matrix, is
    /// not provided; no layer calls it.)
    pub fn right_mult(
        &self,
        b: &NvMatrix,
        scale_ab: f32,
        target: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        right_mult(self, b, scale_ab, target)
    }

    /// `addProduct(a, b, scaleThis, scaleAB)`: `scaleThis == 0` → `a.rightMult(b,
    /// scaleAB, this)`; otherwise `this = scaleThis*this + scaleAB*a*b`, which needs
    /// `this` to be `(a.rows, b.cols)` and column-major, as the original asserts.
    /// Bounded against cuBLAS (module doc).
    pub fn add_product<'a, 'b>(
        &mut self,
        a: impl Into<MatView<'a>>,
        b: impl Into<MatView<'b>>,
        scale_this: f32,
        scale_ab: f32,
    ) -> Result<(), ShapeError> {
        let (a, b) = (a.into(), b.into());
        if scale_this == 0.0 {
            return right_mult(a, b, scale_ab, self);
        }
        let f = "NVMatrix::addProduct";
        require(a.cols() == b.rows(), f, "a.getNumCols() == b.getNumRows()")?;
        require(
            self.rows() == a.rows() && self.cols() == b.cols(),
            f,
            "getNumRows() == a.getNumRows() && getNumCols() == b.getNumCols()",
        )?;
        require(self.is_trans(), f, "_isTrans (this must be column-major)")?;
        sgemm(&a, &b, scale_ab, scale_this, self.data_mut());
        Ok(())
    }
}
