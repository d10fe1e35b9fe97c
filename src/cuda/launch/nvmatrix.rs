//! Launches of cuda/nvmatrix.cu (NVMatrix's kernels, nvmatrix.cu / nvmatrix_kernels.cu;
//! CPU side src/nvmatrix/) and NVMatrix's products through [`Backend::gemm`].
//!
//! Matrices are [`DevMat`]s: a buffer with the shape and orientation of an
//! [`NvMatrix`](crate::nvmatrix::NvMatrix). Targets are allocated by the caller; where
//! the CPU function would resize its target, the wrapper requires the shape it would
//! get. Tiers are the CPU functions' (functor by functor for the elementwise ones).

use super::{int, launch};
use crate::cuda::{grid_for, Backend, DevBuf, DevMat, DevPtr, Gemm, GpuError, Param};
use crate::nvmatrix::aggregate::{
    aggregates_columns, host_finish, row_agg_kernel, sum_params, Finish, RowAggKernel, CPUSUM_MAX,
};
use crate::nvmatrix::curand::{subsequence_jump_words, CurandState, NUM_RND_STREAMS};
use crate::nvmatrix::ops::{binary, check_bounds, unary, vector_strides, BinaryOp, UnaryOp};
use crate::nvmatrix::{Max, Min, Sum};

/// The elementwise kernels' views of a matrix.
impl DevMat<'_> {
    /// `(row stride, column stride)` of the elements.
    fn strides(&self) -> (usize, usize) {
        if self.trans {
            (1, self.rows)
        } else {
            (self.cols, 1)
        }
    }
    fn same_dims(&self, o: &DevMat) -> bool {
        self.rows == o.rows && self.cols == o.cols
    }
    /// Whole-matrix operand.
    fn operand(&self) -> Operand {
        let (rs, cs) = self.strides();
        Operand {
            ptr: self.buf.ptr(),
            rs,
            cs,
        }
    }
    /// Whole-matrix target.
    fn target(&self) -> Target {
        Target {
            ptr: self.buf.ptr(),
            rows: self.rows,
            cols: self.cols,
            trans: self.trans,
            stride: self.leading_dim(),
        }
    }
}

fn shape_err(f: &str, what: &str) -> GpuError {
    GpuError(format!("{f}: {what}"))
}

fn ensure(cond: bool, f: &str, what: &str) -> Result<(), GpuError> {
    if cond {
        Ok(())
    } else {
        Err(shape_err(f, what))
    }
}

/// `target` must have `like`'s dimensions (and its orientation when `same_trans`).
fn check_target(f: &str, target: &DevMat, like: &DevMat, same_trans: bool) -> Result<(), GpuError> {
    ensure(
        target.same_dims(like) && (!same_trans || target.trans == like.trans),
        f,
        &format!(
            "target is {}x{}{}, needs {}x{}{}",
            target.rows,
            target.cols,
            if target.trans { " (column-major)" } else { "" },
            like.rows,
            like.cols,
            if like.trans { " (column-major)" } else { "" }
        ),
    )
}

/// An operand may be the target itself only element for element.
fn check_alias(f: &str, target: &DevMat, operand: &DevMat) -> Result<(), GpuError> {
    ensure(
        target.buf.ptr() != operand.buf.ptr() || target.trans == operand.trans,
        f,
        "an operand shares the target's memory in the other orientation",
    )
}

/// `NVMatrixOps`: the unary functors, with their scalar parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Exp,
    Logistic,
    Log,
    Square,
    Sqrt,
    Reciprocal,
    Abs,
    Sign,
    Identity,
    Zero,
    One,
    SmallerThanScalar(f32),
    BiggerThanScalar(f32),
    AddScalar(f32),
    WeightedAddScalar { weight: f32, scalar: f32 },
    MultByScalar(f32),
    Pow(f32),
    InRangeExc { lower: f32, upper: f32 },
    InRangeInc { lower: f32, upper: f32 },
    MinWithScalar(f32),
    MaxWithScalar(f32),
}

impl Unary {
    /// The kernel's functor number and scalars (`nvm_unary_op`).
    fn code(self) -> (i32, f32, f32) {
        use Unary::*;
        match self {
            Exp => (0, 0.0, 0.0),
            Logistic => (1, 0.0, 0.0),
            Log => (2, 0.0, 0.0),
            Square => (3, 0.0, 0.0),
            Sqrt => (4, 0.0, 0.0),
            Reciprocal => (5, 0.0, 0.0),
            Abs => (6, 0.0, 0.0),
            Sign => (7, 0.0, 0.0),
            Identity => (8, 0.0, 0.0),
            Zero => (9, 0.0, 0.0),
            One => (10, 0.0, 0.0),
            SmallerThanScalar(s) => (11, s, 0.0),
            BiggerThanScalar(s) => (12, s, 0.0),
            AddScalar(s) => (13, s, 0.0),
            WeightedAddScalar { weight, scalar } => (14, weight, scalar),
            MultByScalar(s) => (15, s, 0.0),
            Pow(p) => (16, p, 0.0),
            InRangeExc { lower, upper } => (17, lower, upper),
            InRangeInc { lower, upper } => (18, lower, upper),
            MinWithScalar(s) => (19, s, 0.0),
            MaxWithScalar(s) => (20, s, 0.0),
        }
    }
}

/// The CPU functor of the same name (what the kernel computes).
impl UnaryOp for Unary {
    fn op(&self, a: f32) -> f32 {
        use Unary::*;
        match *self {
            Exp => unary::Exp.op(a),
            Logistic => unary::Logistic.op(a),
            Log => unary::Log.op(a),
            Square => unary::Square.op(a),
            Sqrt => unary::Sqrt.op(a),
            Reciprocal => unary::Reciprocal.op(a),
            Abs => unary::Abs.op(a),
            Sign => unary::Sign.op(a),
            Identity => unary::Identity.op(a),
            Zero => unary::Zero.op(a),
            One => unary::One.op(a),
            SmallerThanScalar(s) => unary::SmallerThanScalar(s).op(a),
            BiggerThanScalar(s) => unary::BiggerThanScalar(s).op(a),
            AddScalar(s) => unary::AddScalar(s).op(a),
            WeightedAddScalar { weight, scalar } => {
                unary::WeightedAddScalar { weight, scalar }.op(a)
            }
            MultByScalar(s) => unary::MultByScalar(s).op(a),
            Pow(p) => unary::Pow(p).op(a),
            InRangeExc { lower, upper } => unary::InRange::<true> { lower, upper }.op(a),
            InRangeInc { lower, upper } => unary::InRange::<false> { lower, upper }.op(a),
            MinWithScalar(s) => unary::MinWithScalar(s).op(a),
            MaxWithScalar(s) => unary::MaxWithScalar(s).op(a),
        }
    }
}

/// `NVMatrixBinaryOps`: the binary functors, with their scalar parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Binary {
    Equals,
    BiggerThan,
    Divide,
    Multiply,
    SquaredDiff,
    WeightedAdd { scale_a: f32, scale_b: f32 },
    Add,
    First,
    Second,
    SecondScaled(f32),
}

impl Binary {
    /// The kernel's functor number and scalars (`nvm_binary_op`).
    fn code(self) -> (i32, f32, f32) {
        use Binary::*;
        match self {
            Equals => (0, 0.0, 0.0),
            BiggerThan => (1, 0.0, 0.0),
            Divide => (2, 0.0, 0.0),
            Multiply => (3, 0.0, 0.0),
            SquaredDiff => (4, 0.0, 0.0),
            WeightedAdd { scale_a, scale_b } => (5, scale_a, scale_b),
            Add => (6, 0.0, 0.0),
            First => (7, 0.0, 0.0),
            Second => (8, 0.0, 0.0),
            SecondScaled(s) => (9, s, 0.0),
        }
    }
}

/// The CPU functor of the same name (what the kernel computes).
impl BinaryOp for Binary {
    fn op(&self, a: f32, b: f32) -> f32 {
        use Binary::*;
        match *self {
            Equals => binary::Equals.op(a, b),
            BiggerThan => binary::BiggerThan.op(a, b),
            Divide => binary::Divide.op(a, b),
            Multiply => binary::Multiply.op(a, b),
            SquaredDiff => binary::SquaredDiff.op(a, b),
            WeightedAdd { scale_a, scale_b } => binary::WeightedAdd { scale_a, scale_b }.op(a, b),
            Add => binary::Add.op(a, b),
            First => binary::First.op(a, b),
            Second => binary::Second.op(a, b),
            SecondScaled(s) => binary::SecondScaled(s).op(a, b),
        }
    }
}

/// An operand of the elementwise kernels: element `(i, j)` at word `i*rs + j*cs`.
#[derive(Clone, Copy)]
struct Operand {
    ptr: DevPtr,
    rs: usize,
    cs: usize,
}

/// The target of the elementwise kernels: a `rows x cols` block whose memory lines
/// are `stride` apart.
#[derive(Clone, Copy)]
struct Target {
    ptr: DevPtr,
    rows: usize,
    cols: usize,
    trans: bool,
    stride: usize,
}

/// Launches elementwise kernel `kernel` over `dst` in its memory order with the
/// operands' strides taken along and across its lines (as the CPU's `eltwise`),
/// followed by `tail`.
fn eltwise(
    b: &dyn Backend,
    kernel: &str,
    dst: Target,
    srcs: &[Operand],
    tail: &[Param],
) -> Result<(), GpuError> {
    let (following, leading) = if dst.trans {
        (dst.cols, dst.rows)
    } else {
        (dst.rows, dst.cols)
    };
    let n = following * leading;
    if n == 0 {
        return Ok(());
    }
    let mut params = vec![
        Param::Ptr(dst.ptr),
        int(following)?,
        int(leading)?,
        int(dst.stride)?,
    ];
    for s in srcs {
        let (across, along) = if dst.trans {
            (s.cs, s.rs)
        } else {
            (s.rs, s.cs)
        };
        params.extend([Param::Ptr(s.ptr), int(across)?, int(along)?]);
    }
    params.extend_from_slice(tail);
    launch(b, kernel, n, &params)
}

fn unary_tail(op: Unary) -> [Param; 3] {
    let (code, p, q) = op.code();
    [Param::I32(code), Param::F32(p), Param::F32(q)]
}

/// `apply(op, target)` (`kEltwiseUnaryOp`, `kEltwiseUnaryOpTrans`): `target` of the
/// same dimensions, either orientation; `target` may be `src` itself (in place).
pub fn apply(b: &dyn Backend, op: Unary, src: DevMat, target: DevMat) -> Result<(), GpuError> {
    let f = "NVMatrix::apply";
    check_target(f, &target, &src, false)?;
    check_alias(f, &target, &src)?;
    eltwise(
        b,
        "nvm_eltwise_unary",
        target.target(),
        &[src.operand()],
        &unary_tail(op),
    )
}

/// `applyBinary(op, b, target)` (`kEltwiseBinaryOp`, `kEltwiseBinaryOpTrans`):
/// `target = op(a, b)`, all of one shape, any orientations; `target` may be `a` or `b`
/// in their own orientation.
pub fn apply_binary(
    b: &dyn Backend,
    op: Binary,
    a: DevMat,
    m: DevMat,
    target: DevMat,
) -> Result<(), GpuError> {
    let f = "NVMatrix::applyBinary";
    ensure(a.same_dims(&m), f, "isSameDims(b)")?;
    check_target(f, &target, &a, false)?;
    check_alias(f, &target, &a)?;
    check_alias(f, &target, &m)?;
    let (code, p, q) = op.code();
    eltwise(
        b,
        "nvm_eltwise_binary",
        target.target(),
        &[a.operand(), m.operand()],
        &[Param::I32(code), Param::F32(p), Param::F32(q)],
    )
}

/// `applyTernary(NVMatrixTernaryOps::Add, b, c, target)` (`kEltwiseTernaryOp`):
/// `(a + b) + c`; all operands and the target of one shape and orientation.
pub fn apply_ternary_add(
    b: &dyn Backend,
    a: DevMat,
    m: DevMat,
    c: DevMat,
    target: DevMat,
) -> Result<(), GpuError> {
    let f = "NVMatrix::applyTernary";
    ensure(
        a.same_dims(&m) && a.same_dims(&c),
        f,
        "isSameDims(b) && isSameDims(c)",
    )?;
    ensure(
        a.trans == m.trans && a.trans == c.trans,
        f,
        "isTrans() == b.isTrans() == c.isTrans()",
    )?;
    check_target(f, &target, &a, true)?;
    eltwise(
        b,
        "nvm_eltwise_ternary_add",
        target.target(),
        &[a.operand(), m.operand(), c.operand()],
        &[],
    )
}

/// `applyBinaryV(op, vec, target)` (`kRowVectorOp` / `kColVectorOp`): `op(src, vec
/// broadcast)` by the original's rule (`vector_strides`, shared with the CPU);
/// `target` has `src`'s shape and orientation and may be `src` itself.
pub fn apply_binary_v(
    b: &dyn Backend,
    op: Binary,
    src: DevMat,
    vec: DevMat,
    target: DevMat,
) -> Result<(), GpuError> {
    let f = "NVMatrix::applyBinaryV";
    let (rs, cs) = vector_strides((src.rows, src.cols, src.trans), (vec.rows, vec.cols))
        .map_err(|e| GpuError(e.to_string()))?;
    check_target(f, &target, &src, true)?;
    let (code, p, q) = op.code();
    eltwise(
        b,
        "nvm_eltwise_binary",
        target.target(),
        &[
            src.operand(),
            Operand {
                ptr: vec.buf.ptr(),
                rs,
                cs,
            },
        ],
        &[Param::I32(code), Param::F32(p), Param::F32(q)],
    )
}

/// `add(b, scaleA, scaleB, target)`: `scaleA == 0` → `scaleB * b` (`MultByScalar`,
/// the original's `b.scale(scaleB, target)`); `1, 1` → `Add`; else `WeightedAdd`.
/// Exact.
pub fn add(
    b: &dyn Backend,
    a: DevMat,
    m: DevMat,
    scale_a: f32,
    scale_b: f32,
    target: DevMat,
) -> Result<(), GpuError> {
    if scale_a == 0.0 {
        apply(b, Unary::MultByScalar(scale_b), m, target)
    } else if scale_a == 1.0 && scale_b == 1.0 {
        apply_binary(b, Binary::Add, a, m, target)
    } else {
        apply_binary(b, Binary::WeightedAdd { scale_a, scale_b }, a, m, target)
    }
}

/// `scale(s, target)`: `MultByScalar(s)`; in place (`target` is `src`) nothing runs
/// when `s == 1`, as in the original. Exact.
pub fn scale(b: &dyn Backend, src: DevMat, s: f32, target: DevMat) -> Result<(), GpuError> {
    if s == 1.0 && src.buf.ptr() == target.buf.ptr() {
        return check_target("NVMatrix::scale", &target, &src, true);
    }
    apply(b, Unary::MultByScalar(s), src, target)
}

/// `copy(dest, srcStartRow, srcEndRow, srcStartCol, srcEndCol, destStartRow,
/// destStartCol)`: copies a block (`None` end = to the end) into `dest` at `(destStartRow,
/// destStartCol)` (`apply(Identity)` on two slice views; orientations may differ). Bounds
/// as the original's `_checkBounds`. Exact.
#[allow(clippy::too_many_arguments)]
pub fn copy_block(
    b: &dyn Backend,
    src: DevMat,
    dest: DevMat,
    src_start_row: usize,
    src_end_row: Option<usize>,
    src_start_col: usize,
    src_end_col: Option<usize>,
    dest_start_row: usize,
    dest_start_col: usize,
) -> Result<(), GpuError> {
    let (r1, c1) = (
        src_end_row.unwrap_or(src.rows),
        src_end_col.unwrap_or(src.cols),
    );
    let bounds = |m: &DevMat, r0, r1, c0, c1| {
        check_bounds((m.rows, m.cols), r0, r1, c0, c1).map_err(|e| GpuError(e.to_string()))
    };
    bounds(&src, src_start_row, r1, src_start_col, c1)?;
    let (h, w) = (r1 - src_start_row, c1 - src_start_col);
    bounds(
        &dest,
        dest_start_row,
        dest_start_row + h,
        dest_start_col,
        dest_start_col + w,
    )?;
    ensure(
        src.buf.ptr() != dest.buf.ptr(),
        "NVMatrix::copy",
        "source and destination share memory",
    )?;
    let at = |m: &DevMat, i: usize, j: usize| {
        let (rs, cs) = m.strides();
        m.buf.ptr_at(i * rs + j * cs)
    };
    let s = Operand {
        ptr: at(&src, src_start_row, src_start_col),
        ..src.operand()
    };
    let d = Target {
        ptr: at(&dest, dest_start_row, dest_start_col),
        rows: h,
        cols: w,
        ..dest.target()
    };
    eltwise(
        b,
        "nvm_eltwise_unary",
        d,
        &[s],
        &unary_tail(Unary::Identity),
    )
}

/// `flipTrans(target)`: the same logical matrix in the other memory order; `target`
/// has `src`'s dimensions and the other orientation. Exact.
pub fn flip_trans(b: &dyn Backend, src: DevMat, target: DevMat) -> Result<(), GpuError> {
    ensure(
        target.same_dims(&src) && target.trans != src.trans,
        "NVMatrix::flipTrans",
        "target of the same dimensions in the other orientation",
    )?;
    apply(b, Unary::Identity, src, target)
}

/// `transpose(target)` (hard): `target` (`cols x rows`, `src`'s orientation) becomes
/// the transpose. Exact.
pub fn transpose(b: &dyn Backend, src: DevMat, target: DevMat) -> Result<(), GpuError> {
    ensure(
        target.rows == src.cols && target.cols == src.rows && target.trans == src.trans,
        "NVMatrix::transpose",
        "target of the transposed dimensions in the same orientation",
    )?;
    // The transpose read in the other orientation is `src` flipped.
    flip_trans(b, src, target.get_transpose())
}

/// `tile(timesY, timesX, target)` (`kTile`): `target` is `(rows*timesY) x
/// (cols*timesX)` in `src`'s orientation. Exact.
pub fn tile(
    b: &dyn Backend,
    src: DevMat,
    times_y: usize,
    times_x: usize,
    target: DevMat,
) -> Result<(), GpuError> {
    let f = "NVMatrix::tile";
    ensure(times_x > 0 && times_y > 0, f, "timesX > 0 && timesY > 0")?;
    ensure(
        target.rows == src.rows * times_y
            && target.cols == src.cols * times_x
            && target.trans == src.trans,
        f,
        "target of (rows*timesY) x (cols*timesX) in the source's orientation",
    )?;
    let n = target.len();
    if n == 0 {
        return Ok(());
    }
    launch(
        b,
        "nvm_tile",
        n,
        &[
            target.buf.param(),
            src.buf.param(),
            int(src.leading_dim())?,
            int(src.following_dim())?,
            int(target.leading_dim())?,
            int(n)?,
        ],
    )
}

/// `NVMatrixAggs`: the aggregators of `sum`/`max`/`min`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    Sum,
    Max,
    Min,
}

impl Agg {
    fn code(self) -> i32 {
        self as i32
    }
    /// The host end of `_totalAgg` with the CPU's aggregator.
    fn host_finish(self, v: &[f32]) -> f32 {
        match self {
            Agg::Sum => host_finish(v, Sum),
            Agg::Max => host_finish(v, Max),
            Agg::Min => host_finish(v, Min),
        }
    }
}

/// `_aggregate(axis, target, agg, op)`: `target` must have the shape the CPU gives it
/// (`1 x cols` or `rows x 1`, `src`'s orientation).
fn aggregate(
    b: &dyn Backend,
    src: DevMat,
    axis: usize,
    target: DevMat,
    agg: Agg,
    op: Finish,
) -> Result<(), GpuError> {
    let f = "NVMatrix::_aggregate";
    ensure(axis == 0 || axis == 1, f, "axis == 0 || axis == 1")?;
    let (width, height) = (src.leading_dim(), src.following_dim());
    ensure(width > 0 && height > 0, f, "width > 0 && height > 0")?;
    let cols = aggregates_columns(axis, src.trans);
    let (rows_out, cols_out) = if cols == src.trans {
        (src.rows, 1)
    } else {
        (1, src.cols)
    };
    ensure(
        target.rows == rows_out && target.cols == cols_out && target.trans == src.trans,
        f,
        &format!("target of {rows_out}x{cols_out} in the source's orientation"),
    )?;
    ensure(
        target.buf.ptr() != src.buf.ptr(),
        f,
        "target shares the source's memory",
    )?;
    let (finish, scale_this, scale_sum) = match op {
        Finish::Second => (0, 0.0, 0.0),
        Finish::SecondScaled(s) => (1, 0.0, s),
        Finish::WeightedAdd(t, s) => (2, t, s),
    };
    let tail = [
        Param::I32(agg.code()),
        Param::I32(finish),
        Param::F32(scale_this),
        Param::F32(scale_sum),
    ];
    if cols {
        let (grid, block) = grid_for(width);
        let mut params = vec![
            target.buf.param(),
            src.buf.param(),
            int(width)?,
            int(height)?,
        ];
        params.extend(tail);
        return b.launch("nvm_agg_cols", grid, block, &params);
    }
    // Row kernels (kind, loopsX, threadsX) of `nvm_agg_rows`, as the CPU maps them.
    let (kind, loops_x, threads_x) = match row_agg_kernel(width, height) {
        RowAggKernel::Copy => return apply(b, Unary::Identity, src, target.reshaped(src)),
        RowAggKernel::ShortRows { loops_x, threads_x } => (0, loops_x, threads_x),
        RowAggKernel::ShortRows2 => (0, width.div_ceil(32), 32),
        RowAggKernel::WholeRowNoSync => (1, 0, 256),
        RowAggKernel::AggRows { block_size } => (2, 0, 2 * block_size),
    };
    let (grid, block) = grid_for(height);
    let mut params = vec![
        target.buf.param(),
        src.buf.param(),
        int(width)?,
        int(height)?,
        Param::I32(kind),
        int(loops_x)?,
        int(threads_x)?,
    ];
    params.extend(tail);
    b.launch("nvm_agg_rows", grid, block, &params)
}

impl DevMat<'_> {
    /// The same buffer with `like`'s shape and orientation (same element count).
    fn reshaped(self, like: DevMat) -> Self {
        DevMat {
            rows: like.rows,
            cols: like.cols,
            trans: like.trans,
            ..self
        }
    }
}

/// `sum(axis, target)`, `max(axis, target)`, `min(axis, target)`: the aggregates
/// along `axis` with the original's kernel for the shape. Exact.
pub fn agg_axis(
    b: &dyn Backend,
    agg: Agg,
    src: DevMat,
    axis: usize,
    target: DevMat,
) -> Result<(), GpuError> {
    aggregate(b, src, axis, target, agg, Finish::Second)
}

/// `addSum(a, axis, scaleThis, scaleSum)`: `target = scaleThis*target + scaleSum*Σa`.
/// Exact.
pub fn add_sum(
    b: &dyn Backend,
    target: DevMat,
    a: DevMat,
    axis: usize,
    scale_this: f32,
    scale_sum: f32,
) -> Result<(), GpuError> {
    aggregate(
        b,
        a,
        axis,
        target,
        Agg::Sum,
        Finish::add_sum(scale_this, scale_sum),
    )
}

/// One `kTotalAgg` / `kDotProduct_r` pass over `n` values: one value per block.
fn total_pass(
    b: &dyn Backend,
    x: &DevBuf,
    y: Option<&DevBuf>,
    n: usize,
    agg: Agg,
) -> Result<DevBuf, GpuError> {
    let (num_cols, blocks) = sum_params(n);
    let out = b.alloc(blocks)?;
    let (grid, block) = grid_for(blocks);
    b.launch(
        "nvm_total_agg",
        grid,
        block,
        &[
            out.param(),
            x.param(),
            Param::Ptr(y.map_or(0, DevBuf::ptr)),
            int(n)?,
            int(num_cols)?,
            Param::I32(agg.code()),
            Param::I32(y.is_some() as i32),
        ],
    )?;
    Ok(out)
}

/// `_totalAgg(agg)`: `sum()`, `max()`, `min()` of `n` values of `buf`: device passes
/// while more than `CPUSUM_MAX` remain, the rest on the host. Exact.
pub fn total_agg(b: &dyn Backend, agg: Agg, buf: &DevBuf) -> Result<f32, GpuError> {
    let mut cur: Option<DevBuf> = None;
    loop {
        let src = cur.as_ref().unwrap_or(buf);
        if src.len() <= CPUSUM_MAX {
            return Ok(agg.host_finish(&b.download(src)?));
        }
        cur = Some(total_pass(b, src, None, src.len(), agg)?);
    }
}

/// `dotProduct(b)`: same shape and orientation; `kDotProduct_r` then `sum()` of the
/// block results. Exact. (Empty: 0.)
pub fn dot_product(b: &dyn Backend, x: DevMat, y: DevMat) -> Result<f32, GpuError> {
    let f = "NVMatrix::dotProduct";
    ensure(x.same_dims(&y), f, "isSameDims(b)")?;
    ensure(x.trans == y.trans, f, "isTrans() == b.isTrans()")?;
    if x.is_empty() {
        return Ok(0.0);
    }
    let blocks = total_pass(b, x.buf, Some(y.buf), x.len(), Agg::Sum)?;
    total_agg(b, Agg::Sum, &blocks)
}

/// Words per XORWOW state in device memory (`CurandState::words`).
pub const STATE_WORDS: usize = 8;

/// `initRandom(seed)` (`kSetupCurand`): the device's random streams, thread `t`'s state
/// `curand_init(1 + 2*seed, t, 0)` in words `8t..8t+8`. Exact.
pub fn init_random(b: &dyn Backend, seed: u64) -> Result<DevBuf, GpuError> {
    let first = CurandState::curand_init(1u64.wrapping_add(seed.wrapping_mul(2)), 0, 0);
    let jumps = (usize::BITS - (NUM_RND_STREAMS - 1).leading_zeros()) as usize;
    let first_buf = b.alloc(STATE_WORDS)?;
    b.write_words(&first_buf, 0, &first.words())?;
    let jump_words = subsequence_jump_words(jumps);
    let jump_buf = b.alloc(jump_words.len())?;
    b.write_words(&jump_buf, 0, &jump_words)?;
    let states = b.alloc(STATE_WORDS * NUM_RND_STREAMS)?;
    let (grid, block) = grid_for(NUM_RND_STREAMS);
    b.launch(
        "nvm_curand_setup",
        grid,
        block,
        &[
            states.param(),
            first_buf.param(),
            jump_buf.param(),
            Param::I32(jumps as i32),
            Param::I32(NUM_RND_STREAMS as i32),
        ],
    )?;
    Ok(states)
}

/// The randomizers of `kUnaryRandomize` / `kBinaryRandomize`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Randomizer {
    /// `randomizeUniform()`: `curand_uniform`. Exact.
    Uniform,
    /// `randomizeGaussian(mean, stdev)`: `fma(normal, stdev, mean)`. Bounded.
    Gaussian { mean: f32, stdev: f32 },
    /// `randomizeGaussian(stdevs)`: `stdevs * normal` (data2 = stdevs). Bounded.
    GaussianStdevs,
    /// `addGaussianNoise(stdev)`: `fma(stdev, normal, a)`. Bounded.
    AddGaussian { stdev: f32 },
    /// `addGaussianNoise(stdevs, var)`: `fma(var ? sd*sd : sd, normal, a)` (data2 =
    /// stdevs). Bounded.
    AddGaussianStdevs { var: bool },
    /// `binarizeProbs()`: `a > curand_uniform`. Exact.
    Binarize,
}

impl Randomizer {
    /// The kernel's kind and scalars, and whether it reads data2.
    fn code(self) -> (i32, f32, f32, bool) {
        match self {
            Randomizer::Uniform => (0, 0.0, 0.0, false),
            Randomizer::Gaussian { mean, stdev } => (1, mean, stdev, false),
            Randomizer::GaussianStdevs => (2, 0.0, 0.0, true),
            Randomizer::AddGaussian { stdev } => (3, stdev, 0.0, false),
            Randomizer::AddGaussianStdevs { var } => (4 + var as i32, 0.0, 0.0, true),
            Randomizer::Binarize => (6, 0.0, 0.0, false),
        }
    }
}

/// `_unaryRandomize` / `_binaryRandomize`: `target[i] = randomizer(src[i], data2[i])`
/// with stream `i mod NUM_RND_STREAMS` of `states` ([`init_random`]), advancing the
/// streams. `data2` and `target` have `src`'s shape and orientation; `target` may be
/// `src`.
pub fn randomize(
    b: &dyn Backend,
    states: &DevBuf,
    r: Randomizer,
    src: DevMat,
    data2: Option<DevMat>,
    target: DevMat,
) -> Result<(), GpuError> {
    let f = "NVMatrix::_binaryRandomize";
    ensure(
        states.len() == STATE_WORDS * NUM_RND_STREAMS,
        f,
        "states from init_random",
    )?;
    let (kind, p, q, binary) = r.code();
    ensure(
        binary == data2.is_some(),
        f,
        "data2 given exactly to the binary randomizers",
    )?;
    if let Some(d) = data2 {
        check_target(f, &d, &src, true)?;
    }
    check_target(f, &target, &src, true)?;
    let n = src.len();
    let (grid, block) = grid_for(NUM_RND_STREAMS);
    b.launch(
        "nvm_randomize",
        grid,
        block,
        &[
            target.buf.param(),
            src.buf.param(),
            Param::Ptr(data2.map_or(0, |d| d.buf.ptr())),
            states.param(),
            Param::I32(NUM_RND_STREAMS as i32),
            int(n)?,
            Param::I32(kind),
            Param::F32(p),
            Param::F32(q),
        ],
    )
}

/// The cuBLAS call of `rightMult` / `addProduct`: `this = beta*this + alpha*a*m` with
/// `this` column-major `(a.rows, m.cols)`; the operands' `getTransChar()` (`'n'` for a
/// column-major operand) and leading dimensions, as nvmatrix.cu passes them.
fn product(
    b: &dyn Backend,
    a: DevMat,
    m: DevMat,
    alpha: f32,
    beta: f32,
    target: DevMat,
) -> Result<(), GpuError> {
    let g = Gemm {
        trans_a: !a.trans,
        trans_b: !m.trans,
        m: a.rows,
        n: m.cols,
        k: a.cols,
        alpha,
        lda: a.leading_dim(),
        ldb: m.leading_dim(),
        beta,
        ldc: a.rows,
    };
    b.gemm(&g, a.buf, m.buf, target.buf)
}

/// `rightMult(b, scaleAB, target)`: `target = scaleAB * a * m`, `target` column-major
/// `(a.rows, m.cols)`. Bounded against cuBLAS (src/nvmatrix/product.rs).
pub fn right_mult(
    b: &dyn Backend,
    a: DevMat,
    m: DevMat,
    scale_ab: f32,
    target: DevMat,
) -> Result<(), GpuError> {
    let f = "NVMatrix::rightMult";
    ensure(a.cols == m.rows, f, "_numCols == b.getNumRows()")?;
    ensure(
        target.rows == a.rows && target.cols == m.cols && target.trans,
        f,
        "target column-major (rows, b.cols)",
    )?;
    product(b, a, m, scale_ab, 0.0, target)
}

/// `addProduct(a, b, scaleThis, scaleAB)`: `scaleThis == 0` → `rightMult`; else
/// `this = scaleThis*this + scaleAB*a*m` with `this` column-major, as the original
/// asserts. Bounded against cuBLAS.
pub fn add_product(
    b: &dyn Backend,
    this: DevMat,
    a: DevMat,
    m: DevMat,
    scale_this: f32,
    scale_ab: f32,
) -> Result<(), GpuError> {
    if scale_this == 0.0 {
        return right_mult(b, a, m, scale_ab, this);
    }
    let f = "NVMatrix::addProduct";
    ensure(a.cols == m.rows, f, "a.getNumCols() == b.getNumRows()")?;
    ensure(
        this.rows == a.rows && this.cols == m.cols,
        f,
        "getNumRows() == a.getNumRows() && getNumCols() == b.getNumCols()",
    )?;
    ensure(this.trans, f, "_isTrans (this must be column-major)")?;
    product(b, a, m, scale_ab, scale_this, this)
}
