//! Port of layer_kernels.cu / layer_kernels.cuh of both generations (the cost and
//! softmax kernels), and of the element-wise cost operators of the 2012 layer.cuh
//! (`CrossEnt2CostLayer`, `RobustFlickrCost`) and the fused logistic + `cost.crossent2`
//! gradient of the 2012 `NeuronLayer::bpropActs`.
//!
//! Layout: every matrix here is `(numOut, numCases)` in memory, row-major, cases
//! innermost: element `(k, c)` at `k * num_cases + c` (the trans layers' column-major
//! `(numCases, numOut)` view of the same memory, as the kernels index it). Labels are
//! `(1, numCases)` float class indices, read as `int(label)` (truncation).
//!
//! Each kernel computes every output element with the original thread's operations;
//! `add` is the original's template flag (`scaleTargets == 1` at the call sites):
//! `target += v`, which nvcc contracts with the last product of `v` into one FFMA
//! where noted. Targets must have their final size (the original resizes them like
//! the probabilities when `add` is false). Host asserts and out-of-range labels (which
//! the original would read past its buffer with) give `Err(ShapeError)`.
//!
//! Not ported from these files, on purpose: `MSMBackward` / `kMSMBackward` (the
//! unfinished GPU lattice of `cost.msm`: debug prints, returns early outside block 0,
//! only called by test.cu) and the declarations `MultiSoftmaxCPU`,
//! `MultiSoftmaxCPU_T` (never defined). `cost.msm`'s real forward/backward,
//! `MultiSoftmaxCPU_T_parallel`, is double-precision host code in multisoftmax.cpp:
//! [`super::multisoftmax`].
//!
//! The softmax layer's forward pass is NVMatrix operations, not a kernel of these
//! files; per case, over the classes `k = 0, 1, ...` (the trans view), the original
//! runs: `max(1)` (serial from class 0, `m = x > m ? x : m`), `addVector(max, -1)`
//! (`x*1 + m*(-1)`: `x - m` rounded once), `apply(Exp)` (`__expf`), `sum(1)` (serial
//! from `e_0`) and `eltwiseDivideByVector(sum)` (`__fdividef(e, s)`). Its backward is
//! the fused [`logreg_softmax_grad`] when the only consumer is `cost.logreg` (2012:
//! on the same GPU), else the softmax gradient kernel.

use super::{div_approx_parts, update3, update3_add, update4_add};
use crate::cudaconv2::{require, ShapeError};
use crate::nvmatrix::intrinsics::logf;
use crate::nvmatrix::NvMatrix;
use crate::parallel::{for_each_task, SharedOut};

/// Cases per task of the per-case kernels.
const CASE_BLOCK: usize = 256;

/// `int(label)` as the kernels convert it (`F2I.TRUNC`: truncation, saturating, NaN
/// to 0, like Rust's `as`).
#[inline(always)]
fn label_index(l: f32) -> i64 {
    l as i32 as i64
}

/// The 2012 `safelog`: `x > 0 ? __logf(x) : -50`.
#[inline(always)]
fn safelog(x: f32) -> f32 {
    if x > 0.0 {
        logf(x)
    } else {
        -50.0
    }
}

/// `probs.max(0)` of a row-major `(rows, cols)` matrix, through NVMatrix's
/// aggregation (`kDumbAggCols`: per column, serial from row 0).
fn col_max(m: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>, ShapeError> {
    let mut out = NvMatrix::default();
    NvMatrix::from_vec(rows, cols, false, m.to_vec()).max(0, &mut out)?;
    Ok(out.into_vec())
}

fn check_matrix(
    function: &'static str,
    what: &str,
    m: &[f32],
    num_out: usize,
    num_cases: usize,
) -> Result<(), ShapeError> {
    require(
        m.len() == num_out * num_cases,
        function,
        &format!("{what} of numOut x numCases = {num_out} x {num_cases} elements"),
    )
}

fn check_cases(
    function: &'static str,
    what: &str,
    v: &[f32],
    num_cases: usize,
) -> Result<(), ShapeError> {
    require(
        v.len() == num_cases,
        function,
        &format!("{what} of numCases = {num_cases} elements"),
    )
}

/// Labels must index a row of the probabilities (the original reads
/// `probs[label * numCases + c]` unchecked).
fn check_labels(function: &'static str, labels: &[f32], num_out: usize) -> Result<(), ShapeError> {
    require(
        labels
            .iter()
            .all(|&l| (0..num_out as i64).contains(&label_index(l))),
        function,
        &format!("every int(label) in 0..{num_out}"),
    )
}

/// Runs `body(c0, c1)` over blocks of cases on the worker threads.
fn case_blocks(num_cases: usize, body: impl Fn(usize, usize) + Sync) {
    for_each_task(num_cases.div_ceil(CASE_BLOCK), |b| {
        let c0 = b * CASE_BLOCK;
        body(c0, (c0 + CASE_BLOCK).min(num_cases));
    });
}

/// `kLogregCost` (both generations): per case `c` with `l = int(labels[c])`,
/// `labelLogProbs[c] = __logf(probs[l, c])` and `correctProbs[c] = 0` if
/// `probs[l, c] != maxProbs[c]`, else `1 / (number of classes k with probs[k, c] ==
/// maxProbs[c])`. `max_probs` is `probs.max(0)` (see [`compute_logreg_cost`]).
/// Tier: `correct_probs` exact; `label_log_probs` bounded (`__logf`: 2^-22
/// absolute for probabilities in [0.5, 2], 1 ulp + 2^-22.6 relative beyond).
#[allow(clippy::too_many_arguments)]
pub fn logreg_cost(
    labels: &[f32],
    probs: &[f32],
    max_probs: &[f32],
    num_out: usize,
    num_cases: usize,
    label_log_probs: &mut [f32],
    correct_probs: &mut [f32],
) -> Result<(), ShapeError> {
    // kLogregCost is kMultiSoftmaxCost_engs's top-1 half with probs as the ranking.
    per_case_cost(
        "computeLogregCost",
        labels,
        probs,
        probs,
        max_probs,
        num_out,
        num_cases,
        0,
        label_log_probs,
        correct_probs,
        None,
    )
}

/// `computeLogregCost` (both generations): `maxProbs = probs.max(0)`, then [`logreg_cost`].
/// The layer's costs are then `-Σ labelLogProbs` and `numCases - Σ correctProbs`
/// (NVMatrix `sum()`), the 2012 code adding the top-k value (see
/// [`compute_multi_softmax_cost`]).
pub fn compute_logreg_cost(
    labels: &[f32],
    probs: &[f32],
    num_out: usize,
    num_cases: usize,
    label_log_probs: &mut [f32],
    correct_probs: &mut [f32],
) -> Result<(), ShapeError> {
    check_matrix("computeLogregCost", "probs", probs, num_out, num_cases)?;
    require(num_out > 0, "computeLogregCost", "numOut > 0")?;
    let max_probs = col_max(probs, num_out, num_cases)?;
    logreg_cost(
        labels,
        probs,
        &max_probs,
        num_out,
        num_cases,
        label_log_probs,
        correct_probs,
    )
}

/// `kMultiSoftmaxCost` and `kMultiSoftmaxCost_engs` (2012) (one implementation; the
/// first ranks classes by `probs`, the second by `energies`: pass `ranking = probs` or
/// the energies, and `max_ranking` = its `max(0)`). Per case with `l = int(label)`:
/// `labelLogProbs = __logf(probs[l])`; with `nb = #{k: r_k > r_l}` and `ne = #{k: r_k
/// == r_l}`, `slots = setSize - nb`: `topkProbs = slots <= 0 ? 0 : ne <= slots ? 1 :
/// float(slots) / ne`, and `correctProbs = r_l != max ? 0 : 1 / float(ne)`.
/// Tier as [`logreg_cost`] (the divisions are IEEE).
#[allow(clippy::too_many_arguments)]
pub fn multi_softmax_cost(
    labels: &[f32],
    probs: &[f32],
    ranking: &[f32],
    max_ranking: &[f32],
    num_out: usize,
    num_cases: usize,
    set_size: usize,
    label_log_probs: &mut [f32],
    correct_probs: &mut [f32],
    topk_probs: &mut [f32],
) -> Result<(), ShapeError> {
    per_case_cost(
        "computeMultiSoftmaxCost",
        labels,
        probs,
        ranking,
        max_ranking,
        num_out,
        num_cases,
        set_size,
        label_log_probs,
        correct_probs,
        Some(topk_probs),
    )
}

/// `computeMultiSoftmaxCost(labels, probs, energies, ..., setSize, useEnergies)`
/// (2012): the max of the ranking matrix (`energies` if `use_energies`, else `probs`),
/// then [`multi_softmax_cost`]. `cost.logreg` with `topk > 1` calls it with
/// `energies = probs` and `use_energies = false`; its costs are then
/// `[-Σ labelLogProbs, numCases - Σ correct, numCases - Σ topk]` (sums as doubles of
/// NVMatrix `sum()` results).
#[allow(clippy::too_many_arguments)]
pub fn compute_multi_softmax_cost(
    labels: &[f32],
    probs: &[f32],
    energies: &[f32],
    num_out: usize,
    num_cases: usize,
    set_size: usize,
    use_energies: bool,
    label_log_probs: &mut [f32],
    correct_probs: &mut [f32],
    topk_probs: &mut [f32],
) -> Result<(), ShapeError> {
    const F: &str = "computeMultiSoftmaxCost";
    check_matrix(F, "probs", probs, num_out, num_cases)?;
    check_matrix(F, "energies", energies, num_out, num_cases)?;
    require(num_out > 0, F, "numOut > 0")?;
    let ranking = if use_energies { energies } else { probs };
    let max = col_max(ranking, num_out, num_cases)?;
    multi_softmax_cost(
        labels,
        probs,
        ranking,
        &max,
        num_out,
        num_cases,
        set_size,
        label_log_probs,
        correct_probs,
        topk_probs,
    )
}

/// The per-case cost kernels (`kLogregCost`, `kMultiSoftmaxCost(_engs)`): the class
/// counts only compare, so they are gathered row by row over a block of cases.
#[allow(clippy::too_many_arguments)]
fn per_case_cost(
    function: &'static str,
    labels: &[f32],
    probs: &[f32],
    ranking: &[f32],
    max_ranking: &[f32],
    num_out: usize,
    num_cases: usize,
    set_size: usize,
    label_log_probs: &mut [f32],
    correct_probs: &mut [f32],
    topk_probs: Option<&mut [f32]>,
) -> Result<(), ShapeError> {
    check_matrix(function, "probs", probs, num_out, num_cases)?;
    check_matrix(function, "ranking", ranking, num_out, num_cases)?;
    check_cases(function, "labels", labels, num_cases)?;
    check_cases(function, "max", max_ranking, num_cases)?;
    check_cases(function, "labelLogProbs", label_log_probs, num_cases)?;
    check_cases(function, "correctProbs", correct_probs, num_cases)?;
    if let Some(t) = &topk_probs {
        check_cases(function, "topkProbs", t, num_cases)?;
    }
    check_labels(function, labels, num_out)?;
    let llp = SharedOut::new(label_log_probs);
    let cp = SharedOut::new(correct_probs);
    let tk = topk_probs.map(SharedOut::new);
    case_blocks(num_cases, |c0, c1| {
        let w = c1 - c0;
        let mut label_r = [0f32; CASE_BLOCK];
        let mut bigger = [0i64; CASE_BLOCK];
        let mut equal = [0i64; CASE_BLOCK];
        for c in c0..c1 {
            let l = label_index(labels[c]) as usize;
            label_r[c - c0] = ranking[l * num_cases + c];
            llp.set(c, logf(probs[l * num_cases + c]));
        }
        for k in 0..num_out {
            let row = &ranking[k * num_cases + c0..k * num_cases + c1];
            for i in 0..w {
                bigger[i] += (row[i] > label_r[i]) as i64;
                equal[i] += (row[i] == label_r[i]) as i64;
            }
        }
        for c in c0..c1 {
            let (lr, ne) = (label_r[c - c0], equal[c - c0]);
            // kLogregCost counts the classes equal to the max, and only when the
            // label's value is the max: then they are the ones equal to the label's.
            cp.set(
                c,
                if lr != max_ranking[c] {
                    0.0
                } else {
                    1.0 / ne as f32
                },
            );
            if let Some(tk) = &tk {
                let slots = set_size as i64 - bigger[c - c0];
                tk.set(
                    c,
                    if slots <= 0 {
                        0.0
                    } else if ne <= slots {
                        1.0
                    } else {
                        slots as f32 / ne as f32
                    },
                );
            }
        }
    });
    Ok(())
}

/// Runs `row(k, target_row)` for every class row `k` of a `(num_out, num_cases)`
/// target, grouping rows so that a task has about `work_per_row`·rows ≥ 2^16 steps.
fn rows(
    target: &mut [f32],
    num_out: usize,
    num_cases: usize,
    work_per_row: usize,
    row: impl Fn(usize, &mut [f32]) + Sync + Copy,
) {
    let per_task = (1usize << 16)
        .div_ceil(work_per_row.max(1))
        .clamp(1, num_out.max(1));
    let t = SharedOut::new(target);
    for_each_task(num_out.div_ceil(per_task), |b| {
        // A local copy: its captures are then known not to alias the target.
        let row_op = row;
        for k in b * per_task..((b + 1) * per_task).min(num_out) {
            // SAFETY: row k belongs to this task only.
            row_op(k, unsafe { t.slice(k * num_cases, num_cases) });
        }
    });
}

/// `kLogregCostGrad<add>` (both generations) (`computeLogregGrad`): `v = coeff * (int(label) ==
/// k)`, `dE/dy[k] = __fdividef(v, y[k])` (so `coeff/y` on the label's row and `0/y`
/// elsewhere: NaN where `y == 0`), written or added (`add`: ptxas fuses the division's
/// product by the reciprocal with the addition). Bounded (`div.approx`: 2 ulp on the
/// GPU; ours is `v * (1/y)` correctly rounded reciprocal).
#[allow(clippy::too_many_arguments)]
pub fn logreg_grad(
    labels: &[f32],
    probs: &[f32],
    num_out: usize,
    num_cases: usize,
    target: &mut [f32],
    add: bool,
    coeff: f32,
) -> Result<(), ShapeError> {
    const F: &str = "computeLogregGrad";
    check_matrix(F, "probs", probs, num_out, num_cases)?;
    check_matrix(F, "target", target, num_out, num_cases)?;
    check_cases(F, "labels", labels, num_cases)?;
    let row = move |k: usize, t: &mut [f32], add: bool| {
        let y = &probs[k * num_cases..(k + 1) * num_cases];
        for ((t, &y), &l) in t.iter_mut().zip(y).zip(labels) {
            let v = coeff * ((label_index(l) == k as i64) as u8 as f32);
            let (v, r) = div_approx_parts(v, y);
            *t = if add { r.mul_add(v, *t) } else { r * v };
        }
    };
    if add {
        rows(target, num_out, num_cases, num_cases, move |k, t| {
            row(k, t, true)
        });
    } else {
        rows(target, num_out, num_cases, num_cases, move |k, t| {
            row(k, t, false)
        });
    }
    Ok(())
}

/// `kLogregSoftmaxGrad<add>` (both generations) (`computeLogregSoftmaxGrad`, the fused
/// logreg + softmax gradient the softmax layer uses when its only consumer is
/// `cost.logreg`): `dE/dx[k] = coeff * ((int(label) == k) - y[k])`; with `add`,
/// `FFMA((label == k) - y, coeff, target)`. Exact.
#[allow(clippy::too_many_arguments)]
pub fn logreg_softmax_grad(
    labels: &[f32],
    probs: &[f32],
    num_out: usize,
    num_cases: usize,
    target: &mut [f32],
    add: bool,
    coeff: f32,
) -> Result<(), ShapeError> {
    const F: &str = "computeLogregSoftmaxGrad";
    check_matrix(F, "probs", probs, num_out, num_cases)?;
    check_matrix(F, "target", target, num_out, num_cases)?;
    check_cases(F, "labels", labels, num_cases)?;
    let row = move |k: usize, t: &mut [f32], add: bool| {
        let y = &probs[k * num_cases..(k + 1) * num_cases];
        for ((t, &y), &l) in t.iter_mut().zip(y).zip(labels) {
            let d = (label_index(l) == k as i64) as u8 as f32 - y;
            *t = if add { d.mul_add(coeff, *t) } else { d * coeff };
        }
    };
    if add {
        rows(target, num_out, num_cases, num_cases, move |k, t| {
            row(k, t, true)
        });
    } else {
        rows(target, num_out, num_cases, num_cases, move |k, t| {
            row(k, t, false)
        });
    }
    Ok(())
}

/// The class-loop gradient kernels (`kSoftmaxGrad`, `kCrossEntSoftmaxGrad`): for
/// output row `k` and case `c`, `v = 0; for j in 0..numOut: v = FFMA(a, b, v)` with
/// `(a, b) = term(j == k, ja[j, c], jb[j, c], kr[k, c])`, then `finish`. Blocks of
/// `R` rows by `L` cases run side by side (each element with the identical
/// sequence), sharing the loads of row `j`.
struct ClassLoop<'a, T, F> {
    num_out: usize,
    num_cases: usize,
    ja: &'a [f32],
    jb: &'a [f32],
    kr: &'a [f32],
    term: T,
    finish: F,
}

impl<T, F> ClassLoop<'_, T, F>
where
    T: Fn(bool, f32, f32, f32) -> (f32, f32) + Sync,
    F: Fn(f32, usize, f32) -> f32 + Sync,
{
    /// Rows `k0..k0+R`, cases `c0..c0+L`; `out` holds rows `k0..` of the target.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    fn block<const R: usize, const L: usize>(&self, k0: usize, c0: usize, out: &mut [f32]) {
        let n = self.num_cases;
        let lanes = |m: &[f32], row: usize| -> [f32; L] {
            m[row * n + c0..row * n + c0 + L].try_into().unwrap()
        };
        let mut kr = [[0f32; L]; R];
        for (r, kr) in kr.iter_mut().enumerate() {
            *kr = lanes(self.kr, k0 + r);
        }
        let mut v = [[0f32; L]; R];
        for j in 0..self.num_out {
            let (ja, jb) = (lanes(self.ja, j), lanes(self.jb, j));
            for r in 0..R {
                let eq = j == k0 + r;
                for l in 0..L {
                    let (a, b) = (self.term)(eq, ja[l], jb[l], kr[r][l]);
                    v[r][l] = a.mul_add(b, v[r][l]);
                }
            }
        }
        for r in 0..R {
            for l in 0..L {
                let i = r * n + c0 + l;
                out[i] = (self.finish)(v[r][l], (k0 + r) * n + c0 + l, out[i]);
            }
        }
    }

    /// Rows `k0..k0+rows` (their part of the target in `out`), case block by case
    /// block, so that a block's `numOut x L` slabs are reused by all these rows.
    fn rows(&self, k0: usize, rows: usize, out: &mut [f32]) {
        const R: usize = 8;
        const L: usize = 8;
        let n = self.num_cases;
        let full_c = n / L * L;
        let full_r = rows / R * R;
        let mut c0 = 0;
        while c0 < n {
            for r0 in (0..full_r).step_by(R) {
                let o = &mut out[r0 * n..];
                if c0 < full_c {
                    self.block::<R, L>(k0 + r0, c0, o);
                } else {
                    self.block::<R, 1>(k0 + r0, c0, o);
                }
            }
            for r0 in full_r..rows {
                let o = &mut out[r0 * n..];
                if c0 < full_c {
                    self.block::<1, L>(k0 + r0, c0, o);
                } else {
                    self.block::<1, 1>(k0 + r0, c0, o);
                }
            }
            c0 += if c0 < full_c { L } else { 1 };
        }
    }

    fn run(&self, target: &mut [f32]) {
        // 64 rows per task.
        const ROWS: usize = 64;
        let n = self.num_cases;
        let t = SharedOut::new(target);
        for_each_task(self.num_out.div_ceil(ROWS), |b| {
            let k0 = b * ROWS;
            let rows = ROWS.min(self.num_out - k0);
            // SAFETY: rows k0..k0+rows belong to this task only.
            let out = unsafe { t.slice(k0 * n, rows * n) };
            self.rows(k0, rows, out);
        });
    }
}

/// `kSoftmaxGrad<add>` (both generations) (`computeSoftmaxGrad`: the softmax layer's gradient
/// when its consumer is not a lone `cost.logreg`): `v = Σ_j dE/dy[j] * ((j == k) -
/// y[j])` as an FFMA chain from 0 over `j = 0, 1, ...`, then `v * y[k]` (with `add`:
/// `FFMA(y[k], v, target)`). `O(numOut²)` per case. Exact.
pub fn softmax_grad(
    acts: &[f32],
    acts_grad: &[f32],
    num_out: usize,
    num_cases: usize,
    target: &mut [f32],
    add: bool,
) -> Result<(), ShapeError> {
    const F: &str = "computeSoftmaxGrad";
    check_matrix(F, "acts", acts, num_out, num_cases)?;
    check_matrix(F, "actsGrad", acts_grad, num_out, num_cases)?;
    check_matrix(F, "target", target, num_out, num_cases)?;
    let eq = |e: bool| e as u8 as f32;
    let term = move |e: bool, dy: f32, y: f32, _| (dy, eq(e) - y);
    let (ja, jb, kr) = (acts_grad, acts, acts);
    if add {
        ClassLoop {
            num_out,
            num_cases,
            ja,
            jb,
            kr,
            term,
            finish: |v: f32, i: usize, t| acts[i].mul_add(v, t),
        }
        .run(target);
    } else {
        ClassLoop {
            num_out,
            num_cases,
            ja,
            jb,
            kr,
            term,
            finish: |v: f32, i: usize, _| v * acts[i],
        }
        .run(target);
    }
    Ok(())
}

/// `kEltwiseMaxGrad<128, add>` (both generations) (`computeEltwiseMaxGrad`, the `eltmax` layer's
/// gradient for one input): `target = actGrad * (output == input)` (ties: every
/// input equal to the max gets the gradient); with `add`, `FFMA(output == input,
/// actGrad, target)`. Exact.
pub fn eltwise_max_grad(
    act_grad: &[f32],
    input: &[f32],
    output: &[f32],
    target: &mut [f32],
    add: bool,
) -> Result<(), ShapeError> {
    let n = act_grad.len();
    require(
        input.len() == n && output.len() == n && target.len() == n,
        "computeEltwiseMaxGrad",
        "actGrad, input, output and target of the same dims",
    )?;
    update4_add(add, act_grad, input, output, target, |g, x, y, t, add| {
        let b = (y == x) as u8 as f32;
        if add {
            b.mul_add(g, t)
        } else {
            b * g
        }
    });
    Ok(())
}

/// `kCrossEntCost` (2012) (`computeCrossEntCost`, `cost.crossent`): labels are
/// probability vectors `(numOut, numCases)`. Per case: `labelLogProbs = Σ_k t_k *
/// safelog(y_k)` (FFMA chain from 0, `safelog(x) = x > 0 ? __logf(x) : -50`) and
/// `correctProbs = 1/numMax` if some class with `y_k == maxProbs` has `t_k > 0`, else
/// 0 (`numMax` = classes equal to the max). Tier: correct exact, cost bounded
/// (`__logf`).
#[allow(clippy::too_many_arguments)]
pub fn cross_ent_cost(
    labels: &[f32],
    probs: &[f32],
    max_probs: &[f32],
    num_out: usize,
    num_cases: usize,
    label_log_probs: &mut [f32],
    correct_probs: &mut [f32],
) -> Result<(), ShapeError> {
    const F: &str = "computeCrossEntCost";
    check_matrix(F, "labels", labels, num_out, num_cases)?;
    check_matrix(F, "probs", probs, num_out, num_cases)?;
    check_cases(F, "maxProbs", max_probs, num_cases)?;
    check_cases(F, "labelLogProbs", label_log_probs, num_cases)?;
    check_cases(F, "correctProbs", correct_probs, num_cases)?;
    let llp = SharedOut::new(label_log_probs);
    let cp = SharedOut::new(correct_probs);
    case_blocks(num_cases, |c0, c1| {
        let w = c1 - c0;
        let mut ce = [0f32; CASE_BLOCK];
        let mut num_max = [0i64; CASE_BLOCK];
        let mut ok = [false; CASE_BLOCK];
        let maxp = &max_probs[c0..c1];
        for k in 0..num_out {
            let t = &labels[k * num_cases + c0..k * num_cases + c1];
            let y = &probs[k * num_cases + c0..k * num_cases + c1];
            for i in 0..w {
                num_max[i] += (y[i] == maxp[i]) as i64;
                ce[i] = t[i].mul_add(safelog(y[i]), ce[i]);
                ok[i] |= y[i] == maxp[i] && t[i] > 0.0;
            }
        }
        for i in 0..w {
            llp.set(c0 + i, ce[i]);
            cp.set(c0 + i, if ok[i] { 1.0 / num_max[i] as f32 } else { 0.0 });
        }
    });
    Ok(())
}

/// `computeCrossEntCost` (2012): `maxProbs = probs.max(0)`, then [`cross_ent_cost`].
/// The layer's costs: `[-Σ labelLogProbs, numCases - Σ correctProbs]`.
pub fn compute_cross_ent_cost(
    labels: &[f32],
    probs: &[f32],
    num_out: usize,
    num_cases: usize,
    label_log_probs: &mut [f32],
    correct_probs: &mut [f32],
) -> Result<(), ShapeError> {
    check_matrix("computeCrossEntCost", "probs", probs, num_out, num_cases)?;
    require(num_out > 0, "computeCrossEntCost", "numOut > 0")?;
    let max_probs = col_max(probs, num_out, num_cases)?;
    cross_ent_cost(
        labels,
        probs,
        &max_probs,
        num_out,
        num_cases,
        label_log_probs,
        correct_probs,
    )
}

/// `kCrossEntGrad<add>` (2012) (`computeCrossEntGrad`): `dE/dy = coeff *
/// __fdividef(t, y)` element-wise (with `add`, `FFMA(t/y, coeff, target)`). Bounded
/// (`div.approx`). (The `cost.crossent` layer skips it when its input is a softmax
/// with one consumer, and the softmax layer never calls the fused
/// [`cross_ent_softmax_grad`]: INVENTORY §13, no gradient at all then — a layer
/// matter, not this kernel's.)
pub fn cross_ent_grad(
    labels: &[f32],
    probs: &[f32],
    target: &mut [f32],
    add: bool,
    coeff: f32,
) -> Result<(), ShapeError> {
    require(
        labels.len() == probs.len() && target.len() == probs.len(),
        "computeCrossEntGrad",
        "labels, probs and target of the same dims",
    )?;
    update3_add(add, Some(labels), probs, target, |t, y, old, add| {
        let (t, r) = div_approx_parts(t, y);
        let q = r * t;
        if add {
            q.mul_add(coeff, old)
        } else {
            q * coeff
        }
    });
    Ok(())
}

/// `kCrossEntSoftmaxGrad<add>` (2012) (`computeCrossEntSoftmaxGrad`, never called by
/// the 2012 layers): `v = Σ_j t_j * ((j == k) - y_k)` as an FFMA chain from 0, then
/// `v * coeff` (with `add`: `FFMA(v, coeff, target)`). Exact.
pub fn cross_ent_softmax_grad(
    labels: &[f32],
    probs: &[f32],
    num_out: usize,
    num_cases: usize,
    target: &mut [f32],
    add: bool,
    coeff: f32,
) -> Result<(), ShapeError> {
    const F: &str = "computeCrossEntSoftmaxGrad";
    check_matrix(F, "labels", labels, num_out, num_cases)?;
    check_matrix(F, "probs", probs, num_out, num_cases)?;
    check_matrix(F, "target", target, num_out, num_cases)?;
    let term = |e: bool, t: f32, _, yk: f32| (e as u8 as f32 - yk, t);
    let (ja, jb, kr) = (labels, labels, probs);
    if add {
        ClassLoop {
            num_out,
            num_cases,
            ja,
            jb,
            kr,
            term,
            finish: |v: f32, _, t| v.mul_add(coeff, t),
        }
        .run(target);
    } else {
        ClassLoop {
            num_out,
            num_cases,
            ja,
            jb,
            kr,
            term,
            finish: |v: f32, _, _| v * coeff,
        }
        .run(target);
    }
    Ok(())
}

/// `CrossEnt2CostLayer::CrossEntOperator` (2012) (`cost.crossent2`, element-wise binary
/// cross-entropy; the layer's cost is `-Σ` of this): `t*safelog(y) +
/// (1-t)*safelog(1-y)`, the first product fused. Bounded (`__logf`).
pub fn cross_ent2_cost(labels: &[f32], probs: &[f32], out: &mut [f32]) -> Result<(), ShapeError> {
    require(
        labels.len() == probs.len() && out.len() == probs.len(),
        "CrossEnt2CostLayer::fpropActs",
        "labels, probs and acts of the same dims",
    )?;
    update3(Some(labels), probs, out, |t, y, _| {
        t.mul_add(safelog(y), (1.0 - t) * safelog(1.0 - y))
    });
    Ok(())
}

/// `CrossEnt2CostLayer::CrossEntGradientOperator` (2012) (`cost.crossent2` when its
/// input is not a lone logistic neuron on the same GPU; the original also prints
/// "Computing cross-ent gradient the stupid way" on each call, which is the layer's
/// business): `coeff * (__fdividef(t, y) + __fdividef(1-t, 1-y))`, the first
/// quotient's product fused with the sum; with `add`, `FFMA(sum, coeff, target)`.
///
/// **BUG reproduced by default** (INVENTORY §13): the second term should be
/// subtracted (the gradient of `t*log(y) + (1-t)*log(1-y)`). `fix_sign = true`
/// subtracts it (`FFMA(rcp(y), t, -((1-t)*rcp(1-y)))`, as nvcc compiles the minus
/// form). Bounded (`div.approx`).
pub fn cross_ent2_grad(
    labels: &[f32],
    probs: &[f32],
    target: &mut [f32],
    add: bool,
    coeff: f32,
    fix_sign: bool,
) -> Result<(), ShapeError> {
    require(
        labels.len() == probs.len() && target.len() == probs.len(),
        "CrossEnt2CostLayer::bpropActs",
        "labels, probs and target of the same dims",
    )?;
    update3_add(add, Some(labels), probs, target, |t, y, old, add| {
        let (t1, r1) = div_approx_parts(t, y);
        let (t2, r2) = div_approx_parts(1.0 - t, 1.0 - y);
        let second = r2 * t2;
        let s = r1.mul_add(t1, if fix_sign { -second } else { second });
        if add {
            s.mul_add(coeff, old)
        } else {
            s * coeff
        }
    });
    Ok(())
}

/// The fused logistic + `cost.crossent2` input gradient of the 2012
/// `NeuronLayer::bpropActs` (a `logistic` neuron layer whose only consumer is a
/// `cost.crossent2` on the same GPU): `acts.add(labels, -coeff, coeff, target)`, i.e.
/// `WeightedAdd`: `y*(-coeff) + t*coeff`, or with `add` (`AddGradientBinaryOperator`)
/// that value `+ target` (not fused). The first product is the fused one, as in every
/// `WeightedAdd` (sm_75 SASS: `FMUL t, coeff` then `FFMA y, -coeff`). Exact.
pub fn logistic_cross_ent2_grad(
    labels: &[f32],
    acts: &[f32],
    target: &mut [f32],
    add: bool,
    coeff: f32,
) -> Result<(), ShapeError> {
    require(
        labels.len() == acts.len() && target.len() == acts.len(),
        "NeuronLayer::bpropActs",
        "labels, acts and target of the same dims",
    )?;
    update3_add(add, Some(acts), labels, target, |y, t, old, add| {
        let w = y.mul_add(-coeff, t * coeff);
        if add {
            w + old
        } else {
            w
        }
    });
    Ok(())
}

/// `RobustFlickrCost::RobustFlickrCostOperator` (2012) (`cost.rflickr`; the layer's
/// cost is `Σ` of this): `__logf(1 + (y-t)²)`, the square fused with the `1 +`.
/// Bounded (`__logf`).
pub fn rflickr_cost(labels: &[f32], probs: &[f32], out: &mut [f32]) -> Result<(), ShapeError> {
    require(
        labels.len() == probs.len() && out.len() == probs.len(),
        "RobustFlickrCost::fpropActs",
        "labels, probs and acts of the same dims",
    )?;
    update3(Some(labels), probs, out, |t, y, _| {
        let d = y - t;
        logf(d.mul_add(d, 1.0))
    });
    Ok(())
}

/// `RobustFlickrCost::RobustFlickrCostGradientOperator` (2012): `-coeff *
/// __fdividef(2d, 1 + d²)`, `d = y - t` (`1 + d²` fused; the final product and
/// negation compiled as `FFMA(-q, coeff, -0)`, with `add` as `FFMA(-q, coeff,
/// target)`). Bounded (`div.approx`).
pub fn rflickr_grad(
    labels: &[f32],
    probs: &[f32],
    target: &mut [f32],
    add: bool,
    coeff: f32,
) -> Result<(), ShapeError> {
    require(
        labels.len() == probs.len() && target.len() == probs.len(),
        "RobustFlickrCost::bpropActs",
        "labels, probs and target of the same dims",
    )?;
    update3_add(add, Some(labels), probs, target, |t, y, old, add| {
        let d = y - t;
        let (n, r) = div_approx_parts(d + d, d.mul_add(d, 1.0));
        let q = r * n;
        (-q).mul_add(coeff, if add { old } else { -0.0 })
    });
    Ok(())
}
