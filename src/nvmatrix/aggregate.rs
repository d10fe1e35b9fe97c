//! Port of the aggregations of nvmatrix.cu / nvmatrix_kernels.cuh: `_aggregate` (`sum`,
//! `max`, `min` along an axis, `addSum`) with the original's choice of reduction kernel
//! and each kernel's reduction tree, `_totalAgg` (`sum()`, `max()`, `min()`, `mean()`)
//! and `dotProduct` / `norm2` / `norm`; the aggregator functors `NVMatrixAggs::{Sum,
//! Max, Min}`.
//!
//! All are tier **exact**: the trees below are the kernels' (with the pre-Volta
//! lock-step semantics of their warp-synchronous steps), the final `op(target, acc)`
//! is fused the way nvcc 13 fuses it in each kernel (checked in the PTX of the
//! original kernels instantiated with `WeightedAdd`: `kDumbAggCols`, `kAggShortRows`,
//! `kAggShortRows2` compute `fma(scaleSum, acc, scaleThis*target)`; `kAggRows` and
//! `kAggRows_wholerow_nosync` compute `fma(scaleThis, target, scaleSum*acc)`), and
//! `kDotProduct_r` accumulates with `fma(a, b, acc)`.
//! Each output element is computed by one task, so results do not depend on the
//! thread count. `ArgMax` is not ported: no layer of either generation calls
//! `argMax`, and the original's `_totalAgg` asserts on it for more than one element.

use super::NvMatrix;
use crate::cudaconv2::{divup, require, ShapeError};
use crate::parallel::{for_each_task, SharedOut};

/// An aggregator functor (`NVMatrixAggs::*`), with the host `Matrix` function that
/// finishes `_totalAgg` on the CPU.
pub trait Aggregator: Copy + Send + Sync {
    /// `getBaseValue()`.
    fn base(&self) -> f32;
    /// `operator()(a, b)`.
    fn agg(&self, a: f32, b: f32) -> f32;
    /// The host `Matrix` aggregate's initial value (`0`, `-FLT_MAX`, `FLT_MAX`).
    fn host_init(&self) -> f32;
    /// The host `Matrix` aggregate's step `v = f(x, v)` (`_add`, `std::max`, `std::min`).
    fn host(&self, x: f32, v: f32) -> f32;
}

/// `NVMatrixAggs::Sum`: `a + b`, base 0.
#[derive(Clone, Copy, Debug)]
pub struct Sum;
impl Aggregator for Sum {
    fn base(&self) -> f32 {
        0.0
    }
    fn agg(&self, a: f32, b: f32) -> f32 {
        a + b
    }
    fn host_init(&self) -> f32 {
        0.0
    }
    fn host(&self, x: f32, v: f32) -> f32 {
        x + v
    }
}

/// `NVMatrixAggs::Max`: `a > b ? a : b`, base `-2e38`.
#[derive(Clone, Copy, Debug)]
pub struct Max;
impl Aggregator for Max {
    fn base(&self) -> f32 {
        -2e38
    }
    fn agg(&self, a: f32, b: f32) -> f32 {
        if a > b {
            a
        } else {
            b
        }
    }
    fn host_init(&self) -> f32 {
        -f32::MAX
    }
    fn host(&self, x: f32, v: f32) -> f32 {
        if x < v {
            v
        } else {
            x
        }
    }
}

/// `NVMatrixAggs::Min`: `a > b ? b : a`, base `2e38`.
#[derive(Clone, Copy, Debug)]
pub struct Min;
impl Aggregator for Min {
    fn base(&self) -> f32 {
        2e38
    }
    fn agg(&self, a: f32, b: f32) -> f32 {
        if a > b {
            b
        } else {
            a
        }
    }
    fn host_init(&self) -> f32 {
        f32::MAX
    }
    fn host(&self, x: f32, v: f32) -> f32 {
        if v < x {
            v
        } else {
            x
        }
    }
}

/// The binary op `_aggregate` applies to `(target, aggregate)`: `Second` (`sum`,
/// `max`, `min`), `SecondScaled(scaleSum)` and `WeightedAdd(scaleThis, scaleSum)`
/// (`addSum`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Finish {
    Second,
    SecondScaled(f32),
    WeightedAdd(f32, f32),
}

impl Finish {
    /// `addSum`'s op: `WeightedAdd(scaleThis, scaleSum)`, or `SecondScaled(scaleSum)`
    /// when `scaleThis == 0`.
    pub(crate) fn add_sum(scale_this: f32, scale_sum: f32) -> Finish {
        if scale_this != 0.0 {
            Finish::WeightedAdd(scale_this, scale_sum)
        } else {
            Finish::SecondScaled(scale_sum)
        }
    }
    /// `op(target, acc)`; `fuse_first` says which product of `WeightedAdd` nvcc fused
    /// in the kernel at hand.
    fn apply(self, target: f32, acc: f32, fuse_first: bool) -> f32 {
        match self {
            Finish::Second => acc,
            Finish::SecondScaled(s) => s * acc,
            Finish::WeightedAdd(sa, sb) => {
                if fuse_first {
                    sa.mul_add(target, sb * acc)
                } else {
                    sb.mul_add(acc, sa * target)
                }
            }
        }
    }
}

/// The row-aggregation kernel `_aggregate` picks (`width` = the reduced length, the
/// leading dimension; `height` = the number of results).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowAggKernel {
    /// `width == 1`: `copy(target)`; the op is not applied (quirk kept: `addSum` then
    /// overwrites the target with the input).
    Copy,
    /// `kAggShortRows<LOOPS_X, THREADS_X>` (`height >= 16384`, `width <= 64`).
    ShortRows {
        /// `LOOPS_X`.
        loops_x: usize,
        /// `THREADS_X`.
        threads_x: usize,
    },
    /// `kAggShortRows2` (`height >= 16384`, `width > 64`).
    ShortRows2,
    /// `kAggRows_wholerow_nosync` (`width >= 512`).
    WholeRowNoSync,
    /// `kAggRows<blockSize>` (one pass: `width <= 2*blockSize`).
    AggRows {
        /// `blockSize`.
        block_size: usize,
    },
}

/// The original's dispatch for row aggregation.
pub fn row_agg_kernel(width: usize, height: usize) -> RowAggKernel {
    if width == 1 {
        RowAggKernel::Copy
    } else if height >= 16384 {
        let short = |loops_x, threads_x| RowAggKernel::ShortRows { loops_x, threads_x };
        if width <= 16 {
            short(1, [4, 8, 12, 16][(width - 1) / 4])
        } else if width <= 64 {
            short(width.div_ceil(16), 32)
        } else {
            RowAggKernel::ShortRows2
        }
    } else if width >= 512 {
        RowAggKernel::WholeRowNoSync
    } else {
        // blockSize 32/64/128/256/512 for width <= 64/128/256/512/more.
        let block_size = (width.next_power_of_two() / 2).clamp(32, 512);
        RowAggKernel::AggRows { block_size }
    }
}

/// `kAggShortRows` / `kAggShortRows2` for one row: lane `l` folds `agg(x, s)` over
/// `x_l, x_{l+THREADS_X}, ...` from the base value, then one thread folds
/// `agg(acc, lane)` over the lanes in order, from the base value.
fn short_rows<A: Aggregator>(row: &[f32], loops_x: usize, threads_x: usize, agg: A) -> f32 {
    let mut acc = agg.base();
    for l in 0..threads_x {
        let mut s = agg.base();
        for x in (0..loops_x * threads_x).step_by(threads_x) {
            if x + l < row.len() {
                s = agg.agg(row[x + l], s);
            }
        }
        acc = agg.agg(acc, s);
    }
    acc
}

/// Lock-step `v[i] = agg(v[i], v[i+d])` for `d = 1, 2, 4, ...` (the warp-synchronous
/// reductions of `kAggRows_wholerow_nosync`): the value left in `v[0]`.
fn adjacent_tree<A: Aggregator>(v: &mut [f32], agg: A) -> f32 {
    let mut d = 1;
    while d < v.len() {
        for i in (0..v.len()).step_by(2 * d) {
            v[i] = agg.agg(v[i], v[i + d]);
        }
        d *= 2;
    }
    v[0]
}

/// `v[t] = agg(v[t], v[t+d])` for `t < d`, `d` halving from `v.len()/2` to 1
/// (`kAggRows`, `kTotalAgg`, `kDotProduct_r`): the value left in `v[0]`.
fn halving_tree<A: Aggregator>(v: &mut [f32], agg: A) -> f32 {
    let mut d = v.len() / 2;
    while d >= 1 {
        for t in 0..d {
            v[t] = agg.agg(v[t], v[t + d]);
        }
        d /= 2;
    }
    v[0]
}

/// `kAggRows_wholerow_nosync` (256 threads) for one row.
fn wholerow_nosync<A: Aggregator>(row: &[f32], agg: A) -> f32 {
    const THREADS: usize = 256;
    // Thread t folds row[t], row[t + 256], ... in order; walking the row a block of 256
    // at a time keeps every thread's order and reads memory in sequence.
    let mut part = [agg.base(); THREADS];
    for block in row.chunks(THREADS) {
        for (p, &x) in part.iter_mut().zip(block) {
            *p = agg.agg(*p, x);
        }
    }
    let mut warps = [0f32; THREADS / 32];
    for (w, out) in warps.iter_mut().enumerate() {
        *out = adjacent_tree(&mut part[w * 32..(w + 1) * 32], agg);
    }
    adjacent_tree(&mut warps, agg)
}

/// `kAggRows<blockSize>` for one row (`width <= 2*blockSize`).
fn agg_rows<A: Aggregator>(row: &[f32], block_size: usize, agg: A, buf: &mut Vec<f32>) -> f32 {
    buf.clear();
    buf.resize(2 * block_size, agg.base());
    buf[..row.len()].copy_from_slice(row);
    halving_tree(buf, agg)
}

/// Results computed by one task of the row and column kernels.
const ROWS_PER_TASK: usize = 64;

impl NvMatrix {
    /// `_aggregate(axis, target, agg, op)`.
    fn aggregate<A: Aggregator>(
        &self,
        axis: usize,
        target: &mut NvMatrix,
        agg: A,
        op: Finish,
    ) -> Result<(), ShapeError> {
        let f = "NVMatrix::_aggregate";
        require(axis == 0 || axis == 1, f, "axis == 0 || axis == 1")?;
        let (width, height) = (self.leading_dim(), self.following_dim());
        require(width > 0 && height > 0, f, "width > 0 && height > 0")?;
        target.set_trans(self.is_trans());
        let src = self.data();
        if aggregates_columns(axis, self.is_trans()) {
            // Column aggregation: kDumbAggCols, one thread per memory column, serial
            // over the lines from the first element.
            if self.is_trans() {
                target.resize(self.rows(), 1);
            } else {
                target.resize(1, self.cols());
            }
            let out = SharedOut::new(target.data_mut());
            let task = |t: usize| {
                let (c0, c1) = (t * ROWS_PER_TASK, ((t + 1) * ROWS_PER_TASK).min(width));
                let mut acc = [0f32; ROWS_PER_TASK];
                let acc = &mut acc[..c1 - c0];
                acc.copy_from_slice(&src[c0..c1]);
                for line in 1..height {
                    let x = &src[line * width + c0..line * width + c1];
                    for (a, &v) in acc.iter_mut().zip(x) {
                        *a = agg.agg(v, *a);
                    }
                }
                for (c, &a) in (c0..c1).zip(acc.iter()) {
                    out.set(c, op.apply(out.get(c), a, false));
                }
            };
            run_tasks(width.div_ceil(ROWS_PER_TASK), width * height, task);
            return Ok(());
        }
        // Row aggregation.
        if self.is_trans() {
            target.resize(1, self.cols());
        } else {
            target.resize(self.rows(), 1);
        }
        let kernel = row_agg_kernel(width, height);
        if kernel == RowAggKernel::Copy {
            self.copy_to(target);
            return Ok(());
        }
        let out = SharedOut::new(target.data_mut());
        let task = |t: usize| {
            let mut buf = Vec::new();
            for r in t * ROWS_PER_TASK..((t + 1) * ROWS_PER_TASK).min(height) {
                let row = &src[r * width..(r + 1) * width];
                let (acc, fuse_first) = match kernel {
                    RowAggKernel::ShortRows { loops_x, threads_x } => {
                        (short_rows(row, loops_x, threads_x, agg), false)
                    }
                    RowAggKernel::ShortRows2 => {
                        (short_rows(row, width.div_ceil(32), 32, agg), false)
                    }
                    RowAggKernel::WholeRowNoSync => (wholerow_nosync(row, agg), true),
                    RowAggKernel::AggRows { block_size } => {
                        (agg_rows(row, block_size, agg, &mut buf), true)
                    }
                    RowAggKernel::Copy => unreachable!(),
                };
                out.set(r, op.apply(out.get(r), acc, fuse_first));
            }
        };
        run_tasks(height.div_ceil(ROWS_PER_TASK), width * height, task);
        Ok(())
    }

    /// `sum(axis, target)`: the sums along `axis` (0: over rows, giving a row vector;
    /// 1: over columns, giving a column vector), in this matrix's orientation, with the
    /// original's kernel for the shape ([`row_agg_kernel`] or `kDumbAggCols`). Exact.
    pub fn sum(&self, axis: usize, target: &mut NvMatrix) -> Result<(), ShapeError> {
        self.aggregate(axis, target, Sum, Finish::Second)
    }
    /// `max(axis, target)`; see [`NvMatrix::sum`]. Exact.
    pub fn max(&self, axis: usize, target: &mut NvMatrix) -> Result<(), ShapeError> {
        self.aggregate(axis, target, Max, Finish::Second)
    }
    /// `min(axis, target)`; see [`NvMatrix::sum`]. Exact.
    pub fn min(&self, axis: usize, target: &mut NvMatrix) -> Result<(), ShapeError> {
        self.aggregate(axis, target, Min, Finish::Second)
    }
    /// `addSum(a, axis, scaleThis, scaleSum)`: `this = scaleThis*this + scaleSum*Σa`
    /// (`WeightedAdd`, fused per kernel as the module doc says), or `scaleSum*Σa`
    /// (`SecondScaled`) when `scaleThis == 0`. Exact.
    pub fn add_sum(
        &mut self,
        a: &NvMatrix,
        axis: usize,
        scale_this: f32,
        scale_sum: f32,
    ) -> Result<(), ShapeError> {
        a.aggregate(axis, self, Sum, Finish::add_sum(scale_this, scale_sum))
    }

    /// `_totalAgg(agg)`: while more than `CPUSUM_MAX` (4096) values remain, `kTotalAgg`
    /// reduces them to one per 512-thread block; the rest is aggregated on the host,
    /// serially in memory order (`Matrix::sum/max/min`), or returned as is if one.
    fn total_agg<A: Aggregator>(&self, agg: A) -> f32 {
        let mut cur: Vec<f32>;
        let mut src = self.data();
        while src.len() > CPUSUM_MAX {
            let v = src;
            cur = total_pass(v.len(), agg, |e, s| agg.agg(s, v[e]));
            src = &cur;
        }
        host_finish(src, agg)
    }

    /// `sum()`: see `_totalAgg`. Exact.
    pub fn sum_all(&self) -> f32 {
        self.total_agg(Sum)
    }
    /// `max()`: see `_totalAgg`. Exact.
    pub fn max_all(&self) -> f32 {
        self.total_agg(Max)
    }
    /// `min()`: see `_totalAgg`. Exact.
    pub fn min_all(&self) -> f32 {
        self.total_agg(Min)
    }
    /// `mean()`: `sum() / getNumElements()` in float. Exact.
    pub fn mean(&self) -> f32 {
        self.sum_all() / self.len() as f32
    }

    /// `dotProduct(b)`: same shape and orientation; `kDotProduct_r` (the `kTotalAgg`
    /// scheme with `acc = fma(a, b, acc)` from 0) then `sum()` of the block results.
    /// Exact. (For one element the original divides by `ceil(log2 1) = 0`; we use 1.
    /// For none we return 0.)
    pub fn dot_product(&self, b: &NvMatrix) -> Result<f32, ShapeError> {
        let f = "NVMatrix::dotProduct";
        require(self.same_dims(b), f, "isSameDims(b)")?;
        require(
            self.is_trans() == b.is_trans(),
            f,
            "isTrans() == b.isTrans()",
        )?;
        if self.is_empty() {
            return Ok(0.0);
        }
        let (x, y) = (self.data(), b.data());
        let blocks = total_pass(x.len(), Sum, |e, s| x[e].mul_add(y[e], s));
        Ok(NvMatrix::from_vec(1, blocks.len(), false, blocks).sum_all())
    }
    /// `norm2()`: `dotProduct(this)`. Exact.
    pub fn norm2(&self) -> f32 {
        self.dot_product(self).expect("a matrix has its own shape")
    }
    /// `norm()`: `sqrt(norm2())`. Exact.
    pub fn norm(&self) -> f32 {
        self.norm2().sqrt()
    }
}

/// True when `_aggregate` along `axis` reduces memory columns (`kDumbAggCols`, one
/// result per position along the lines), false when it reduces memory lines.
pub(crate) fn aggregates_columns(axis: usize, trans: bool) -> bool {
    (axis == 0) != trans
}

/// `CPUSUM_MAX`.
pub(crate) const CPUSUM_MAX: usize = 4096;
/// `DP_BLOCKSIZE`.
const DP_BLOCKSIZE: usize = 512;

/// `_sum_setParams(n)`: `numCols = DIVUP(n, ceil(log(n)/log(2)))` (host doubles, as
/// the original), and `DIVUP(numCols, 512)` blocks.
pub(crate) fn sum_params(n: usize) -> (usize, usize) {
    let logn = ((n as f64).ln() / 2f64.ln()).ceil().max(1.0) as usize;
    let num_cols = divup(n, logn);
    (num_cols, divup(num_cols, DP_BLOCKSIZE))
}

/// One pass of `kTotalAgg` / `kDotProduct_r` over `n` values: thread `t` of block `b`
/// (global index `e0 = 512*b + t`) folds `step(e, s)` over `e = e0, e0+numCols, ...`
/// from the base value if `e0 < numCols`; the block then reduces its 512 values with
/// the halving tree (256, 128, ..., 1). One value per block.
fn total_pass<A: Aggregator>(
    n: usize,
    agg: A,
    step: impl Fn(usize, f32) -> f32 + Sync,
) -> Vec<f32> {
    let (num_cols, blocks) = sum_params(n);
    let mut out = vec![0f32; blocks];
    let o = SharedOut::new(&mut out);
    run_tasks(blocks, n, |b| {
        let mut sh = [0f32; DP_BLOCKSIZE];
        for (t, s) in sh.iter_mut().enumerate() {
            let mut acc = agg.base();
            let mut e = DP_BLOCKSIZE * b + t;
            if e < num_cols {
                while e < n {
                    acc = step(e, acc);
                    e += num_cols;
                }
            }
            *s = acc;
        }
        o.set(b, halving_tree(&mut sh, agg));
    });
    out
}

/// The host end of `_totalAgg`: one value is returned as is; more are folded with the
/// host `Matrix` aggregate in memory order. (None: the host initial value; the
/// original reads past its empty buffer.)
pub(crate) fn host_finish<A: Aggregator>(v: &[f32], agg: A) -> f32 {
    match v.len() {
        1 => v[0],
        _ => v.iter().fold(agg.host_init(), |acc, &x| agg.host(x, acc)),
    }
}

/// Runs `tasks` tasks, on the calling thread for small problems.
fn run_tasks(tasks: usize, work: usize, task: impl Fn(usize) + Sync) {
    if work < 1 << 16 {
        (0..tasks).for_each(task);
    } else {
        for_each_task(tasks, task);
    }
}
