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
/// of `c` (column-major, `ldc`). `a` holds 16 values per `p`; `b` holds the 6 values
/// of step `p` at `b[p*ldb..]`.
#[inline(always)]
fn micro(kc: usize, a: &[f32], b: &[f32], ldb: usize, c: &mut [f32], ldc: usize) {
    assert!(a.len() >= kc * MR && (kc == 0 || b.len() >= (kc - 1) * ldb + NR));
    assert!(c.len() >= (NR - 1) * ldc + MR);
    let mut acc = [[0f32; MR]; NR];
    for (j, col) in acc.iter_mut().enumerate() {
        col.copy_from_slice(&c[j * ldc..j * ldc + MR]);
    }
    for p in 0..kc {
        // SAFETY: in bounds by the asserts above.
        let ap: &[f32; MR] = unsafe { &*(a.as_ptr().add(p * MR) as *const [f32; MR]) };
        let bp: &[f32; NR] = unsafe { &*(b.as_ptr().add(p * ldb) as *const [f32; NR]) };
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

thread_local! {
    /// Per-thread scratch: the accumulator tile and a packed `B` strip.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// `A` packed once: for each strip of 16 rows, for each `p`, the strip's 16 values
/// (zero past the last row).
fn pack_a(a: &MatView<'_>) -> Vec<f32> {
    let (m, k) = (a.rows(), a.cols());
    let strips = m.div_ceil(MR);
    let mut packed = vec![0f32; strips * MR * k];
    let out = SharedOut::new(&mut packed);
    let task = |s: usize| {
        // SAFETY: strip `s` owns its `16*k` values.
        let strip = unsafe { out.slice(s * MR * k, MR * k) };
        let rows = (m - s * MR).min(MR);
        for ii in 0..rows {
            let i = s * MR + ii;
            for p in 0..k {
                strip[p * MR + ii] = at(a, i, p);
            }
        }
    };
    if m * k < 1 << 18 {
        (0..strips).for_each(task);
    } else {
        for_each_task(strips, task);
    }
    packed
}

/// `C = alpha*A*B + beta*C` with `C` column-major `m x n` (`ldc = m`), in the order of
/// the module doc. `A` is `m x k`, `B` is `k x n`.
fn sgemm(a: &MatView<'_>, b: &MatView<'_>, alpha: f32, beta: f32, c: &mut [f32]) {
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    if m == 0 || n == 0 {
        return;
    }
    let apacked = pack_a(a);
    let (mblocks, nblocks) = (m.div_ceil(MC), n.div_ceil(NB));
    let out = SharedOut::new(c);
    let task = |t: usize| {
        let (ib, jb) = (t % mblocks, t / mblocks);
        let (i0, j0) = (ib * MC, jb * NB);
        let (mc, nb) = ((m - i0).min(MC), (n - j0).min(NB));
        let (mp, np) = (mc.div_ceil(MR) * MR, nb.div_ceil(NR) * NR);
        SCRATCH.with(|scratch| {
            let (tile, bpack) = &mut *scratch.borrow_mut();
            tile.clear();
            tile.resize(mp * np, 0.0);
            bpack.resize(NR * KC, 0.0);
            for p0 in (0..k).step_by(KC) {
                let kc = (k - p0).min(KC);
                for s in 0..np / NR {
                    let j = j0 + s * NR;
                    // Packed (also for a row-major B, whose rows may be 4 KiB apart
                    // and then collide in the cache).
                    let bd = b.data();
                    if b.is_trans() {
                        for jj in 0..NR {
                            let col = (j + jj < n)
                                .then(|| &bd[(j + jj) * k + p0..(j + jj) * k + p0 + kc]);
                            for p in 0..kc {
                                bpack[p * NR + jj] = col.map_or(0.0, |c| c[p]);
                            }
                        }
                    } else {
                        let w = (n - j).min(NR);
                        for p in 0..kc {
                            let row = &bd[(p0 + p) * n + j..];
                            let dst = &mut bpack[p * NR..(p + 1) * NR];
                            for (jj, d) in dst.iter_mut().enumerate() {
                                *d = if jj < w { row[jj] } else { 0.0 };
                            }
                        }
                    }
                    let (bs, ldb) = (&bpack[..], NR);
                    for r in 0..mp / MR {
                        let strip = (i0 / MR + r) * MR * k + p0 * MR;
                        micro(
                            kc,
                            &apacked[strip..],
                            bs,
                            ldb,
                            &mut tile[s * NR * mp + r * MR..],
                            mp,
                        );
                    }
                }
            }
            for j in 0..nb {
                // SAFETY: this task owns rows i0..i0+mc of column j0+j.
                let col = unsafe { out.slice((j0 + j) * m + i0, mc) };
                let acc = &tile[j * mp..j * mp + mc];
                if beta == 0.0 {
                    for (c, &x) in col.iter_mut().zip(acc) {
                        *c = alpha * x;
                    }
                } else {
                    for (c, &x) in col.iter_mut().zip(acc) {
                        *c = beta.mul_add(*c, alpha * x);
                    }
                }
            }
        });
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
