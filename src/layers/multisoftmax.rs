//! Port of multisoftmax.cpp / multisoftmax.h (2012): `MultiSoftmaxCPU_T_parallel`,
//! the host-side lattice of the `cost.msm` layer, and its per-thread body
//! `MultiSoftmaxCPU_T_logspace` (`MultiSoftmaxWorker`).
//!
//! For each case (a row of `elts`, `numOut = N` energies `e_i`) the subsets `S` of
//! exactly `size` classes are weighted by `exp(Σ_{i∈S} e_i)`; the lattice gives each
//! class's marginal probability of membership `P(i ∈ S)`. With a `fixed` class `f`
//! (the label) only subsets containing `f` count, and the output is `P(i ∈ S | f ∈ S)`
//! minus the value `probs` held: run after the free forward pass on the same `probs`,
//! that is the gradient of `log P(f ∈ S)` with respect to the energies.
//!
//! Precision, as the original: the tables (`logB`, `(N+1) × (size+1)`, and the forward
//! column `logF`) are host `Matrix`es of `float` (`MTYPE`), so every table entry is
//! rounded to f32; each entry is computed in double from the f32 entries it reads, and
//! the per-class log-marginal `logy` stays in double until the final `exp`. `INF` is
//! the float literal `1e35f`; "minus infinity" is `-1e35` (`logadd` treats anything at
//! or below it as zero probability). `exp`/`log` are libm's, in double.
//!
//! Threads: the original splits the cases into `threads` contiguous slices, each
//! worker with its own `logB` (kept by the layer across calls). Every table cell a
//! case reads is written earlier in the same case or never written at all (those keep
//! the constructor's `-INF`), so results do not depend on the split or on earlier
//! calls; we allocate the tables per call and split the same way.

use crate::cudaconv2::{require, ShapeError};
use crate::parallel::{for_each_task, SharedOut};

/// `INF` (`1e35f`), as the double the comparisons see.
const INF: f64 = 1e35f32 as f64;

/// `logadd(x, y)`: `log(exp(x) + exp(y))` with the original's cut-offs: the larger
/// term alone when they differ by more than 15, `M + exp(-diff)` beyond 5.
fn logadd(x: f64, y: f64) -> f64 {
    if x <= -INF && y <= -INF {
        return -INF;
    }
    // std::max / std::min.
    let big = if x < y { y } else { x };
    let small = if y < x { y } else { x };
    let diff = big - small;
    if diff > 15.0 {
        big
    } else if diff > 5.0 {
        big + (-diff).exp()
    } else {
        big + (1.0 + (-diff).exp()).ln()
    }
}

/// `MultiSoftmaxCPU_T_logspace` for one case: `elts` its `N` energies, `probs` its `N`
/// outputs (read too when `fixed` is set), `logb` a `(N+1) × (size+1)` table whose
/// cells outside the computed band hold `-INF`, `logf` a `size+1` column.
fn lattice_case(
    elts: &[f32],
    probs: &mut [f32],
    fixed: Option<usize>,
    size: usize,
    logb: &mut [f32],
    logf: &mut [f32],
) {
    let n = elts.len();
    let w = size + 1;
    let minf = -(INF as f32);
    // `fx`: the fixed class, -1 (never equal to an index) without one.
    let fx = fixed.map_or(-1, |f| f as i64);
    let is_fx = |i: usize| fx == i as i64;
    // Backward pass: logB(i, s) = log Σ over size-s subsets of {i..N-1}.
    for i in (0..n).rev() {
        let elt = elts[i] as f64;
        logb[i * w] = if i as i64 <= fx { minf } else { 0.0 };
        for s in size.saturating_sub(i).max(1)..=size {
            let with = logb[(i + 1) * w + s - 1] as f64 + elt;
            logb[i * w + s] = if is_fx(i) {
                with
            } else {
                logadd(with, logb[(i + 1) * w + s] as f64)
            } as f32;
        }
    }
    let log_z = logb[size] as f64;
    // Forward pass, one class at a time.
    logf.fill(minf);
    logf[0] = 0.0;
    for i in 1..=n {
        let mut logy = -INF;
        let elt = elts[i - 1] as f64;
        for s in (0..=size).rev() {
            if s < size {
                logy = logadd(logy, logf[s] as f64 + logb[i * w + size - 1 - s] as f64);
            }
            if s > 0 {
                let with = logf[s - 1] as f64 + elt;
                logf[s] = if is_fx(i - 1) {
                    with
                } else {
                    logadd(with, logf[s] as f64)
                } as f32;
            } else if is_fx(i - 1) {
                logf[0] = minf;
            }
        }
        logy += elt - log_z;
        let free = if fx >= 0 { probs[i - 1] as f64 } else { 0.0 };
        probs[i - 1] = (logy.exp() - free) as f32;
    }
}

/// `MultiSoftmaxCPU_T_parallel(elts, B, probs, fixed, size, nofix)`: `elts` and
/// `probs` are `(numCases, numOut)` row-major; `fixed` (the labels, one per case, read
/// as `int(label)`) is `None` for `nofix`. `probs` must already have the shape of
/// `elts` (`probs.resize(elts)` keeps a same-shaped matrix's values, which the fixed
/// pass reads). `threads` is the layer's `threads` (the length of `B`).
pub fn multi_softmax_cpu_t_parallel(
    elts: &[f32],
    num_out: usize,
    probs: &mut [f32],
    fixed: Option<&[f32]>,
    size: usize,
    threads: usize,
) -> Result<(), ShapeError> {
    const F: &str = "MultiSoftmaxCPU_T_parallel";
    require(num_out > 0, F, "numOut > 0")?;
    require(
        elts.len().is_multiple_of(num_out),
        F,
        "elts (numCases, numOut)",
    )?;
    require(probs.len() == elts.len(), F, "probs.isSameDims(elts)")?;
    require(size <= num_out, F, "size <= numOut")?;
    require(threads > 0, F, "B.size() > 0")?;
    let cases = elts.len() / num_out;
    let fixed: Option<Vec<usize>> = match fixed {
        None => None,
        Some(l) => {
            require(l.len() == cases, F, "fixed.getNumRows() == numCases")?;
            let ok = l
                .iter()
                .all(|&x| (x as i64) >= 0 && (x as i64) < num_out as i64);
            require(ok, F, "0 <= int(fixed) < numOut")?;
            Some(l.iter().map(|&x| x as usize).collect())
        }
    };
    if cases == 0 {
        return Ok(());
    }
    let per_worker = cases.div_ceil(threads);
    let workers = cases.div_ceil(per_worker);
    let out = SharedOut::new(probs);
    for_each_task(workers, |k| {
        let mut logb = vec![-(INF as f32); (num_out + 1) * (size + 1)];
        logb[num_out * (size + 1)] = 0.0;
        let mut logf = vec![0f32; size + 1];
        for c in k * per_worker..((k + 1) * per_worker).min(cases) {
            // SAFETY: case c's row belongs to this worker only.
            let p = unsafe { out.slice(c * num_out, num_out) };
            let f = fixed.as_ref().map(|f| f[c]);
            let e = &elts[c * num_out..(c + 1) * num_out];
            lattice_case(e, p, f, size, &mut logb, &mut logf);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force over all subsets of `size` classes, in f64.
    fn marginals(e: &[f64], size: usize, fixed: Option<usize>) -> Vec<f64> {
        let n = e.len();
        let (mut z, mut m) = (0.0, vec![0.0; n]);
        for mask in 0u32..1 << n {
            if mask.count_ones() as usize != size || fixed.is_some_and(|f| mask & 1 << f == 0) {
                continue;
            }
            let w: f64 = (0..n).filter(|i| mask & 1 << i != 0).map(|i| e[i]).sum();
            let w = w.exp();
            z += w;
            for (i, mi) in m.iter_mut().enumerate() {
                if mask & 1 << i != 0 {
                    *mi += w;
                }
            }
        }
        m.iter().map(|x| x / z).collect()
    }

    #[test]
    fn the_lattice_gives_the_subset_marginals() {
        let (n, size) = (7, 3);
        let elts: Vec<f32> = crate::synthetic::uniform(5, 3 * n, -2.0, 1.0);
        let labels = [2.0f32, 0.0, 6.0];
        let mut probs = vec![0f32; elts.len()];
        multi_softmax_cpu_t_parallel(&elts, n, &mut probs, None, size, 2).unwrap();
        let free = probs.clone();
        multi_softmax_cpu_t_parallel(&elts, n, &mut probs, Some(&labels), size, 3).unwrap();
        // `logadd` drops up to e^-10/2 (5 < diff <= 15: `M + exp(-diff)` for `M +
        // log(1 + exp(-diff))`) from a log-sum: a few 1e-5 relative at worst.
        let tol = 5e-5;
        for c in 0..3 {
            let e: Vec<f64> = elts[c * n..(c + 1) * n].iter().map(|&x| x as f64).collect();
            let want = marginals(&e, size, None);
            let want_fixed = marginals(&e, size, Some(labels[c] as usize));
            for i in 0..n {
                assert!((free[c * n + i] as f64 - want[i]).abs() < tol, "{c} {i}");
                let g = want_fixed[i] - want[i];
                assert!((probs[c * n + i] as f64 - g).abs() < tol, "{c} {i}");
            }
        }
        // The thread split does not matter.
        let mut one = vec![0f32; elts.len()];
        multi_softmax_cpu_t_parallel(&elts, n, &mut one, None, size, 1).unwrap();
        assert_eq!(one, free);
    }
}
