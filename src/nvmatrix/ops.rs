//! Port of nvmatrix_operators.cuh (the elementwise functors `NVMatrixOps`,
//! `NVMatrixBinaryOps`, `NVMatrixTernaryOps`) and of the elementwise part of
//! nvmatrix.cu / nvmatrix_kernels.cuh: `apply`, `applyBinary`, `applyTernary`,
//! `applyBinaryV`, the named operations built on them (`add`, `addVector`,
//! `eltwiseDivideByVector`, `scale`, ...), copies, slices, `flipTrans`, hard
//! `transpose` and `tile`.
//!
//! Every elementwise kernel of the original (`kEltwiseUnaryOp`, `kEltwiseUnaryOpTrans`,
//! `kEltwiseBinaryOp`, the three `kEltwiseBinaryOpTrans` cases, `kEltwiseTernaryOp`,
//! `kRowVectorOp`, `kColVectorOp`) computes each output element as one call of the
//! functor on the operands' elements at the same logical position; the transposing
//! kernels only change which thread does it. So one loop does them all here
//! (`eltwise`), over the target's memory order, reading each operand through its own
//! row and column strides. What we port exactly is the *target rule*: which shape and
//! orientation the target gets (see each function).
//!
//! Functor numerics were checked in the PTX nvcc 13 emits for the original kernels
//! (sm_75): `WeightedAdd` (`a*sA + b*sB`) fuses the first product in every elementwise
//! and vector kernel (`fma(sA, a, sB*b)`); `WeightedAddScalar` is `fma(w, a, s)`;
//! `SquaredDiff` is `(a-b)*(a-b)` with one subtraction; ternary `Add` is `(a+b)+c`.
//! `Exp`, `Log`, `Pow`, `Logistic`, `Divide` use the fast intrinsics
//! ([`super::intrinsics`]) and are tier bounded (2 ulp per `ex2.approx`/`div.approx`, as
//! PTX states); every other functor is exact.

use super::{intrinsics, NvMatrix};
use crate::cudaconv2::{require, ShapeError};
use crate::parallel::for_each_task;

/// A unary elementwise functor (`NVMatrixOps::*`); closures `Fn(f32) -> f32` are ones
/// too (the layers' neuron operators).
pub trait UnaryOp: Sync {
    /// The functor's `operator()`.
    fn op(&self, a: f32) -> f32;
}
impl<F: Fn(f32) -> f32 + Sync> UnaryOp for F {
    fn op(&self, a: f32) -> f32 {
        self(a)
    }
}

/// A binary elementwise functor (`NVMatrixBinaryOps::*`, or a closure).
pub trait BinaryOp: Sync {
    /// The functor's `operator()(a, b)`.
    fn op(&self, a: f32, b: f32) -> f32;
}
impl<F: Fn(f32, f32) -> f32 + Sync> BinaryOp for F {
    fn op(&self, a: f32, b: f32) -> f32 {
        self(a, b)
    }
}

/// A ternary elementwise functor (`NVMatrixTernaryOps::*`, or a closure).
pub trait TernaryOp: Sync {
    /// The functor's `operator()(a, b, c)`.
    fn op(&self, a: f32, b: f32, c: f32) -> f32;
}
impl<F: Fn(f32, f32, f32) -> f32 + Sync> TernaryOp for F {
    fn op(&self, a: f32, b: f32, c: f32) -> f32 {
        self(a, b, c)
    }
}

fn b2f(b: bool) -> f32 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// `NVMatrixOps`: the unary functors.
pub mod unary {
    use super::{b2f, intrinsics, UnaryOp};

    /// `Exp`: `__expf(a)`. Bounded (ex2.approx).
    #[derive(Clone, Copy, Debug)]
    pub struct Exp;
    impl UnaryOp for Exp {
        fn op(&self, a: f32) -> f32 {
            intrinsics::expf(a)
        }
    }
    /// `Logistic`: `__fdividef(1, 1 + __expf(-a))`. Bounded.
    #[derive(Clone, Copy, Debug)]
    pub struct Logistic;
    impl UnaryOp for Logistic {
        fn op(&self, a: f32) -> f32 {
            intrinsics::fdividef(1.0, 1.0 + intrinsics::expf(-a))
        }
    }
    /// `Log`: `__logf(a)`. Bounded.
    #[derive(Clone, Copy, Debug)]
    pub struct Log;
    impl UnaryOp for Log {
        fn op(&self, a: f32) -> f32 {
            intrinsics::logf(a)
        }
    }
    /// `Square`: `a*a`.
    #[derive(Clone, Copy, Debug)]
    pub struct Square;
    impl UnaryOp for Square {
        fn op(&self, a: f32) -> f32 {
            a * a
        }
    }
    /// `Sqrt`: `sqrtf(a)` (correctly rounded, `sqrt.rn`).
    #[derive(Clone, Copy, Debug)]
    pub struct Sqrt;
    impl UnaryOp for Sqrt {
        fn op(&self, a: f32) -> f32 {
            a.sqrt()
        }
    }
    /// `Reciprocal`: `1.0f/a` (correctly rounded, `rcp.rn`).
    #[derive(Clone, Copy, Debug)]
    pub struct Reciprocal;
    impl UnaryOp for Reciprocal {
        fn op(&self, a: f32) -> f32 {
            1.0 / a
        }
    }
    /// `Abs`: `a > 0 ? a : -a` (so `-0` gives `+0` and NaN flips sign, as the original).
    #[derive(Clone, Copy, Debug)]
    pub struct Abs;
    impl UnaryOp for Abs {
        fn op(&self, a: f32) -> f32 {
            if a > 0.0 {
                a
            } else {
                -a
            }
        }
    }
    /// `Sign`: `(a > 0) - (a < 0)` (0 for zeros and NaN).
    #[derive(Clone, Copy, Debug)]
    pub struct Sign;
    impl UnaryOp for Sign {
        fn op(&self, a: f32) -> f32 {
            ((a > 0.0) as i32 - (a < 0.0) as i32) as f32
        }
    }
    /// `Identity`.
    #[derive(Clone, Copy, Debug)]
    pub struct Identity;
    impl UnaryOp for Identity {
        fn op(&self, a: f32) -> f32 {
            a
        }
    }
    /// `Zero`.
    #[derive(Clone, Copy, Debug)]
    pub struct Zero;
    impl UnaryOp for Zero {
        fn op(&self, _a: f32) -> f32 {
            0.0
        }
    }
    /// `One`.
    #[derive(Clone, Copy, Debug)]
    pub struct One;
    impl UnaryOp for One {
        fn op(&self, _a: f32) -> f32 {
            1.0
        }
    }
    /// `SmallerThanScalar(s)`: `a < s`.
    #[derive(Clone, Copy, Debug)]
    pub struct SmallerThanScalar(pub f32);
    impl UnaryOp for SmallerThanScalar {
        fn op(&self, a: f32) -> f32 {
            b2f(a < self.0)
        }
    }
    /// `BiggerThanScalar(s)`: `a > s`.
    #[derive(Clone, Copy, Debug)]
    pub struct BiggerThanScalar(pub f32);
    impl UnaryOp for BiggerThanScalar {
        fn op(&self, a: f32) -> f32 {
            b2f(a > self.0)
        }
    }
    /// `AddScalar(s)`: `a + s`.
    #[derive(Clone, Copy, Debug)]
    pub struct AddScalar(pub f32);
    impl UnaryOp for AddScalar {
        fn op(&self, a: f32) -> f32 {
            a + self.0
        }
    }
    /// `WeightedAddScalar(w, s)`: `w*a + s`, one FMA as nvcc emits it.
    #[derive(Clone, Copy, Debug)]
    pub struct WeightedAddScalar {
        /// `weight`.
        pub weight: f32,
        /// `scalar`.
        pub scalar: f32,
    }
    impl UnaryOp for WeightedAddScalar {
        fn op(&self, a: f32) -> f32 {
            self.weight.mul_add(a, self.scalar)
        }
    }
    /// `MultByScalar(s)`: `a * s`.
    #[derive(Clone, Copy, Debug)]
    pub struct MultByScalar(pub f32);
    impl UnaryOp for MultByScalar {
        fn op(&self, a: f32) -> f32 {
            a * self.0
        }
    }
    /// `Pow(p)`: `__powf(a, p)`. Bounded.
    #[derive(Clone, Copy, Debug)]
    pub struct Pow(pub f32);
    impl UnaryOp for Pow {
        fn op(&self, a: f32) -> f32 {
            intrinsics::powf(a, self.0)
        }
    }
    /// `InRange<exclusive>(lower, upper)`: `lower < a < upper` (exclusive) or
    /// `lower <= a <= upper`.
    #[derive(Clone, Copy, Debug)]
    pub struct InRange<const EXCLUSIVE: bool> {
        /// `lower`.
        pub lower: f32,
        /// `upper`.
        pub upper: f32,
    }
    impl<const EXCLUSIVE: bool> UnaryOp for InRange<EXCLUSIVE> {
        fn op(&self, a: f32) -> f32 {
            if EXCLUSIVE {
                b2f(a > self.lower && a < self.upper)
            } else {
                b2f(a >= self.lower && a <= self.upper)
            }
        }
    }
    /// `MinWithScalar(s)`: `a > s ? s : a`.
    #[derive(Clone, Copy, Debug)]
    pub struct MinWithScalar(pub f32);
    impl UnaryOp for MinWithScalar {
        fn op(&self, a: f32) -> f32 {
            if a > self.0 {
                self.0
            } else {
                a
            }
        }
    }
    /// `MaxWithScalar(s)`: `a > s ? a : s`.
    #[derive(Clone, Copy, Debug)]
    pub struct MaxWithScalar(pub f32);
    impl UnaryOp for MaxWithScalar {
        fn op(&self, a: f32) -> f32 {
            if a > self.0 {
                a
            } else {
                self.0
            }
        }
    }
}

/// `NVMatrixBinaryOps`: the binary functors.
pub mod binary {
    use super::{b2f, intrinsics, BinaryOp};

    /// `Equals`: `a == b`.
    #[derive(Clone, Copy, Debug)]
    pub struct Equals;
    impl BinaryOp for Equals {
        fn op(&self, a: f32, b: f32) -> f32 {
            b2f(a == b)
        }
    }
    /// `BiggerThan`: `a > b`.
    #[derive(Clone, Copy, Debug)]
    pub struct BiggerThan;
    impl BinaryOp for BiggerThan {
        fn op(&self, a: f32, b: f32) -> f32 {
            b2f(a > b)
        }
    }
    /// `Divide`: `__fdividef(a, b)`. Bounded (div.approx, 2 ulp).
    #[derive(Clone, Copy, Debug)]
    pub struct Divide;
    impl BinaryOp for Divide {
        fn op(&self, a: f32, b: f32) -> f32 {
            intrinsics::fdividef(a, b)
        }
    }
    /// `Multiply`: `a * b`.
    #[derive(Clone, Copy, Debug)]
    pub struct Multiply;
    impl BinaryOp for Multiply {
        fn op(&self, a: f32, b: f32) -> f32 {
            a * b
        }
    }
    /// `SquaredDiff`: `(a - b) * (a - b)`.
    #[derive(Clone, Copy, Debug)]
    pub struct SquaredDiff;
    impl BinaryOp for SquaredDiff {
        fn op(&self, a: f32, b: f32) -> f32 {
            let d = a - b;
            d * d
        }
    }
    /// `WeightedAdd(scaleA, scaleB)`: `a*scaleA + b*scaleB`; in the elementwise and
    /// vector kernels nvcc fuses the first product: `fma(scaleA, a, scaleB*b)`. (The
    /// aggregation kernels apply it differently; see `aggregate`.)
    #[derive(Clone, Copy, Debug)]
    pub struct WeightedAdd {
        /// `scaleA`.
        pub scale_a: f32,
        /// `scaleB`.
        pub scale_b: f32,
    }
    impl BinaryOp for WeightedAdd {
        fn op(&self, a: f32, b: f32) -> f32 {
            self.scale_a.mul_add(a, self.scale_b * b)
        }
    }
    /// `Add`: `a + b`.
    #[derive(Clone, Copy, Debug)]
    pub struct Add;
    impl BinaryOp for Add {
        fn op(&self, a: f32, b: f32) -> f32 {
            a + b
        }
    }
    /// `First`: `a`.
    #[derive(Clone, Copy, Debug)]
    pub struct First;
    impl BinaryOp for First {
        fn op(&self, a: f32, _b: f32) -> f32 {
            a
        }
    }
    /// `Second`: `b`.
    #[derive(Clone, Copy, Debug)]
    pub struct Second;
    impl BinaryOp for Second {
        fn op(&self, _a: f32, b: f32) -> f32 {
            b
        }
    }
    /// `SecondScaled(s)`: `s * b`.
    #[derive(Clone, Copy, Debug)]
    pub struct SecondScaled(pub f32);
    impl BinaryOp for SecondScaled {
        fn op(&self, _a: f32, b: f32) -> f32 {
            self.0 * b
        }
    }
}

/// `NVMatrixTernaryOps`: the ternary functors.
pub mod ternary {
    use super::TernaryOp;

    /// `Add`: `a + b + c`, i.e. `(a + b) + c`.
    #[derive(Clone, Copy, Debug)]
    pub struct Add;
    impl TernaryOp for Add {
        fn op(&self, a: f32, b: f32, c: f32) -> f32 {
            (a + b) + c
        }
    }
}

/// One operand of the elementwise loop: element `(i, j)` is at `ptr + i*rs + j*cs`.
#[derive(Clone, Copy)]
pub(crate) struct Src {
    ptr: *const f32,
    rs: usize,
    cs: usize,
}

/// The target of the elementwise loop: a `rows x cols` block in the given
/// orientation whose consecutive lines are `stride` apart.
#[derive(Clone, Copy)]
pub(crate) struct Dst {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    trans: bool,
    stride: usize,
}

// SAFETY: the pointers are only dereferenced inside `eltwise`, whose tasks write
// disjoint target elements (see there).
unsafe impl Send for Src {}
unsafe impl Sync for Src {}
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}

impl Src {
    /// Element `(i, j)` (a method, so that closures capture the whole `Src`).
    #[inline]
    unsafe fn at(&self, i: usize, j: usize) -> f32 {
        *self.ptr.add(i * self.rs + j * self.cs)
    }
    /// The operand's pointer `offset` elements on (a method, so that closures capture
    /// the whole `Src`).
    #[inline]
    unsafe fn line(&self, offset: usize) -> *const f32 {
        self.ptr.add(offset)
    }
    /// A block of `m` from `(r0, c0)`.
    fn of(m: &NvMatrix, r0: usize, c0: usize) -> Src {
        let (rs, cs) = if m.is_trans() {
            (1, m.rows())
        } else {
            (m.cols(), 1)
        };
        Src {
            ptr: m.data()[m.index(r0, c0).min(m.len())..].as_ptr(),
            rs,
            cs,
        }
    }
    /// The target itself as an operand (the original's in-place forms).
    fn of_dst(d: Dst) -> Src {
        let (rs, cs) = if d.trans {
            (1, d.stride)
        } else {
            (d.stride, 1)
        };
        Src { ptr: d.ptr, rs, cs }
    }
}

impl Dst {
    /// Writes memory line `f`, position `l` (a method, so that closures capture the
    /// whole `Dst`).
    #[inline]
    unsafe fn put(&self, f: usize, l: usize, v: f32) {
        *self.ptr.add(f * self.stride + l) = v;
    }
    /// The start of memory line `f`.
    #[inline]
    unsafe fn line(&self, f: usize) -> *mut f32 {
        self.ptr.add(f * self.stride)
    }
    /// A `rows x cols` block of `m` from `(r0, c0)`.
    fn block(m: &mut NvMatrix, r0: usize, c0: usize, rows: usize, cols: usize) -> Dst {
        let (trans, stride, k) = (m.is_trans(), m.leading_dim(), m.index(r0, c0).min(m.len()));
        Dst {
            ptr: m.data_mut()[k..].as_mut_ptr(),
            rows,
            cols,
            trans,
            stride,
        }
    }
    fn of(m: &mut NvMatrix) -> Dst {
        let (r, c) = (m.rows(), m.cols());
        Dst::block(m, 0, 0, r, c)
    }
}

/// Below this many elements the loop runs on the calling thread.
const PARALLEL_MIN: usize = 1 << 16;
/// Tasks the elementwise loop aims for when its target is large.
const TASKS_MIN: usize = 16;
/// The fewest elements of one elementwise task split off a line.
const SEGMENT_MIN: usize = 1 << 14;

/// The one elementwise loop (all of `kEltwise*Op*`, `kRowVectorOp`, `kColVectorOp`):
/// `dst(i, j) = f(src_0(i, j), ..., src_{N-1}(i, j))` for every element, in tiles of
/// the target's memory order, split over threads by blocks of target lines and, when
/// the lines are few and long, by segments of them.
///
/// # Safety
/// Every operand must cover the target's shape. An operand may share memory with the
/// target only element for element (same orientation and stride): each element is
/// read and then written by the same task.
unsafe fn eltwise<const N: usize>(srcs: [Src; N], dst: Dst, f: impl Fn([f32; N]) -> f32 + Sync) {
    const FB: usize = 32;
    const LB: usize = 64;
    let (following, leading) = if dst.trans {
        (dst.cols, dst.rows)
    } else {
        (dst.rows, dst.cols)
    };
    if following == 0 || leading == 0 {
        return;
    }
    let line_blocks = following.div_ceil(FB);
    // Segments per line block: enough tasks for the threads, each at least SEGMENT_MIN
    // elements (a whole number of LB-tiles).
    let segments = (TASKS_MIN.div_ceil(line_blocks))
        .min((FB.min(following) * leading) / SEGMENT_MIN)
        .max(1);
    let seg_len = leading.div_ceil(segments).next_multiple_of(LB);
    // Each operand's steps along a memory line of the target and across lines.
    let along: [usize; N] =
        std::array::from_fn(|k| if dst.trans { srcs[k].rs } else { srcs[k].cs });
    let across: [usize; N] =
        std::array::from_fn(|k| if dst.trans { srcs[k].cs } else { srcs[k].rs });
    let lines = along.iter().all(|&s| s <= 1);
    let run = |t: usize| {
        let (b, seg) = (t / segments, t % segments);
        let (f0, f1) = (b * FB, ((b + 1) * FB).min(following));
        let (l0, l1) = (
            (seg * seg_len).min(leading),
            ((seg + 1) * seg_len).min(leading),
        );
        if lines {
            // Operands along the target's lines or broadcast along them (`kColVectorOp`):
            // tiles of LB elements, a broadcast value filled in once per line, so the
            // loop vectorises.
            let mut x = [[0f32; LB]; N];
            for fi in f0..f1 {
                let base: [*const f32; N] =
                    std::array::from_fn(|k| unsafe { srcs[k].line(fi * across[k]) });
                let out = unsafe { dst.line(fi) };
                for k in (0..N).filter(|&k| along[k] == 0) {
                    x[k] = [unsafe { *base[k] }; LB];
                }
                for c0 in (l0..l1).step_by(LB) {
                    let len = LB.min(l1 - c0);
                    for k in (0..N).filter(|&k| along[k] != 0) {
                        if len == LB {
                            // A whole tile: a fixed-size copy, compiled inline.
                            x[k] = unsafe { *base[k].add(c0).cast::<[f32; LB]>() };
                        } else {
                            let line = unsafe { std::slice::from_raw_parts(base[k].add(c0), len) };
                            x[k][..len].copy_from_slice(line);
                        }
                    }
                    // Results go to a local tile first: stores to the target could alias
                    // the operator's parameters as far as the compiler knows, which
                    // would keep it from vectorising.
                    let mut y = [0f32; LB];
                    for (li, o) in y.iter_mut().enumerate() {
                        *o = f(std::array::from_fn(|k| x[k][li]));
                    }
                    unsafe { std::ptr::copy_nonoverlapping(y.as_ptr(), out.add(c0), len) };
                }
            }
            return;
        }
        for c0 in (l0..l1).step_by(LB) {
            let c1 = (c0 + LB).min(l1);
            for fi in f0..f1 {
                for li in c0..c1 {
                    let (i, j) = if dst.trans { (li, fi) } else { (fi, li) };
                    let x: [f32; N] = std::array::from_fn(|k| unsafe { srcs[k].at(i, j) });
                    unsafe { dst.put(fi, li, f(x)) };
                }
            }
        }
    };
    let tasks = line_blocks * segments;
    if following * leading < PARALLEL_MIN {
        (0..tasks).for_each(run);
    } else {
        for_each_task(tasks, run);
    }
}

macro_rules! unary_named {
    ($(#[$doc:meta])* $name:ident, $name_to:ident, ($($arg:ident: $t:ty),*), $op:expr) => {
        $(#[$doc])*
        /// In place (`target == this`).
        pub fn $name(&mut self, $($arg: $t),*) {
            self.apply($op)
        }
        $(#[$doc])*
        /// Into `target` (resized like `this` unless it has the same dimensions).
        pub fn $name_to(&self, $($arg: $t,)* target: &mut NvMatrix) {
            self.apply_to($op, target)
        }
    };
}

macro_rules! binary_named {
    ($(#[$doc:meta])* $name:ident, $name_to:ident, $op:expr) => {
        $(#[$doc])*
        /// In place (`target == this`).
        pub fn $name(&mut self, b: &NvMatrix) -> Result<(), ShapeError> {
            self.apply_binary($op, b)
        }
        $(#[$doc])*
        /// Into `target` (resized like `this` unless it has the same dimensions).
        pub fn $name_to(&self, b: &NvMatrix, target: &mut NvMatrix) -> Result<(), ShapeError> {
            self.apply_binary_to($op, b, target)
        }
    };
}

macro_rules! vector_named {
    ($(#[$doc:meta])* $name:ident, $name_to:ident, ($($arg:ident: $t:ty),*), $op:expr) => {
        $(#[$doc])*
        /// In place (`target == this`).
        pub fn $name(&mut self, vec: &NvMatrix, $($arg: $t),*) -> Result<(), ShapeError> {
            self.apply_binary_v($op, vec)
        }
        $(#[$doc])*
        /// Into `target` (always resized like `this`, orientation included).
        pub fn $name_to(&self, vec: &NvMatrix, $($arg: $t,)* target: &mut NvMatrix) -> Result<(), ShapeError> {
            self.apply_binary_v_to($op, vec, target)
        }
    };
}

impl NvMatrix {
    /// `apply(op)` in place: `kEltwiseUnaryOp`. Exact up to the functor's own tier.
    pub fn apply(&mut self, op: impl UnaryOp) {
        let d = Dst::of(self);
        // SAFETY: the operand is the target, element for element.
        unsafe { eltwise([Src::of_dst(d)], d, |[a]| op.op(a)) }
    }

    /// `apply(op, target)`: `target` is resized like `this` (shape and orientation)
    /// only if its dimensions differ; a target of the same dimensions keeps its
    /// orientation, and the original then runs `kEltwiseUnaryOpTrans` (same values).
    pub fn apply_to(&self, op: impl UnaryOp, target: &mut NvMatrix) {
        if !target.same_dims(self) {
            target.resize_like(self);
        }
        // SAFETY: distinct matrices of the same shape.
        unsafe { eltwise([Src::of(self, 0, 0)], Dst::of(target), |[a]| op.op(a)) }
    }

    /// `applyBinary(op, b)` in place (`target == this`): `op(this, b)`.
    pub fn apply_binary(&mut self, op: impl BinaryOp, b: &NvMatrix) -> Result<(), ShapeError> {
        require(self.same_dims(b), "NVMatrix::applyBinary", "isSameDims(b)")?;
        let d = Dst::of(self);
        // SAFETY: `this` is the target, element for element; `b` has its shape.
        unsafe { eltwise([Src::of_dst(d), Src::of(b, 0, 0)], d, |[x, y]| op.op(x, y)) };
        Ok(())
    }

    /// `applyBinary(op, b, target)`: `target = op(this, b)`; shapes must match; the
    /// target rule is `apply`'s (`kEltwiseBinaryOp` or one of the three
    /// `kEltwiseBinaryOpTrans` cases; the argument order of `op` is always `(this, b)`).
    pub fn apply_binary_to(
        &self,
        op: impl BinaryOp,
        b: &NvMatrix,
        target: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        require(self.same_dims(b), "NVMatrix::applyBinary", "isSameDims(b)")?;
        if !target.same_dims(self) {
            target.resize_like(self);
        }
        // SAFETY: distinct matrices of the same shape.
        unsafe {
            eltwise(
                [Src::of(self, 0, 0), Src::of(b, 0, 0)],
                Dst::of(target),
                |[x, y]| op.op(x, y),
            )
        };
        Ok(())
    }

    /// `applyBinary(op, b, b)`: the result replaces `b` (`b = op(this, b)`), as the
    /// neurons' `actsGrad.applyBinary(op, target, target)`.
    pub fn apply_binary_into_b(
        &self,
        op: impl BinaryOp,
        b: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        require(self.same_dims(b), "NVMatrix::applyBinary", "isSameDims(b)")?;
        let d = Dst::of(b);
        // SAFETY: `b` is the target, element for element; `this` has its shape.
        unsafe {
            eltwise([Src::of(self, 0, 0), Src::of_dst(d)], d, |[x, y]| {
                op.op(x, y)
            })
        };
        Ok(())
    }

    fn check_ternary(&self, b: &NvMatrix, c: &NvMatrix) -> Result<(), ShapeError> {
        require(
            self.same_dims(b) && self.same_dims(c),
            "NVMatrix::applyTernary",
            "isSameDims(b) && isSameDims(c)",
        )?;
        require(
            self.is_trans() == b.is_trans() && self.is_trans() == c.is_trans(),
            "NVMatrix::applyTernary",
            "isTrans() == b.isTrans() == c.isTrans()",
        )
    }

    /// `applyTernary(op, b, c, target)` (`kEltwiseTernaryOp`): all operands of one
    /// orientation; `target` is resized like `this` if its dimensions or orientation
    /// differ.
    pub fn apply_ternary_to(
        &self,
        op: impl TernaryOp,
        b: &NvMatrix,
        c: &NvMatrix,
        target: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        self.check_ternary(b, c)?;
        if !target.same_dims(self) || target.is_trans() != self.is_trans() {
            target.resize_like(self);
        }
        let s = [Src::of(self, 0, 0), Src::of(b, 0, 0), Src::of(c, 0, 0)];
        // SAFETY: distinct matrices of the same shape.
        unsafe { eltwise(s, Dst::of(target), |[x, y, z]| op.op(x, y, z)) };
        Ok(())
    }

    /// `applyTernary(op, b, c, c)`: the result replaces `c`, as the neurons'
    /// `actsGrad.applyTernary(AddGradient..., outputs, target, target)`.
    pub fn apply_ternary_into_c(
        &self,
        op: impl TernaryOp,
        b: &NvMatrix,
        c: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        self.check_ternary(b, c)?;
        let d = Dst::of(c);
        // SAFETY: `c` is the target, element for element; the others have its shape.
        unsafe {
            eltwise(
                [Src::of(self, 0, 0), Src::of(b, 0, 0), Src::of_dst(d)],
                d,
                |[x, y, z]| op.op(x, y, z),
            )
        };
        Ok(())
    }

    /// `applyTernary(op, b, c, *this)`: in place.
    pub fn apply_ternary(
        &mut self,
        op: impl TernaryOp,
        b: &NvMatrix,
        c: &NvMatrix,
    ) -> Result<(), ShapeError> {
        self.check_ternary(b, c)?;
        let d = Dst::of(self);
        // SAFETY: `this` is the target, element for element.
        unsafe {
            eltwise(
                [Src::of_dst(d), Src::of(b, 0, 0), Src::of(c, 0, 0)],
                d,
                |[x, y, z]| op.op(x, y, z),
            )
        };
        Ok(())
    }

    /// The broadcast operand of `applyBinaryV` (see [`vector_strides`]).
    fn vector_src(&self, vec: &NvMatrix) -> Result<Src, ShapeError> {
        let (rs, cs) = vector_strides(
            (self.rows(), self.cols(), self.is_trans()),
            (vec.rows(), vec.cols()),
        )?;
        Ok(Src {
            ptr: vec.data().as_ptr(),
            rs,
            cs,
        })
    }

    /// `applyBinaryV(op, vec, *this)`: `this = op(this, vec broadcast)` in place.
    pub fn apply_binary_v(&mut self, op: impl BinaryOp, vec: &NvMatrix) -> Result<(), ShapeError> {
        let v = self.vector_src(vec)?;
        let d = Dst::of(self);
        // SAFETY: `this` is the target element for element; `vec` is distinct and covers the broadcast.
        unsafe { eltwise([Src::of_dst(d), v], d, |[x, y]| op.op(x, y)) };
        Ok(())
    }

    /// `applyBinaryV(op, vec, target)`: `target` is always resized like `this`
    /// (orientation included); `op(this(i,j), vec[k])` with `k` by the rule of
    /// the original: `k` is the memory line (a row of a row-major matrix, a column of a
    /// column-major one; `kColVectorOp`) when `vec.rows == rows && !isTrans() ||
    /// vec.cols == cols && isTrans()`, else the position along the line
    /// (`kRowVectorOp`).
    pub fn apply_binary_v_to(
        &self,
        op: impl BinaryOp,
        vec: &NvMatrix,
        target: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        let v = self.vector_src(vec)?;
        target.resize_like(self);
        // SAFETY: distinct matrices; `vec` covers the broadcast.
        unsafe {
            eltwise([Src::of(self, 0, 0), v], Dst::of(target), |[x, y]| {
                op.op(x, y)
            })
        };
        Ok(())
    }

    unary_named!(
        /// `inRangeInc(lower, upper)`: `lower <= a <= upper` (`InRange<false>`). Exact.
        in_range_inc, in_range_inc_to, (lower: f32, upper: f32), unary::InRange::<false> { lower, upper });
    unary_named!(
        /// `inRangeExc(lower, upper)`: `lower < a < upper` (`InRange<true>`). Exact.
        in_range_exc, in_range_exc_to, (lower: f32, upper: f32), unary::InRange::<true> { lower, upper });
    unary_named!(
        /// `biggerThanScalar(s)`: `a > s`. Exact.
        bigger_than_scalar, bigger_than_scalar_to, (scalar: f32), unary::BiggerThanScalar(scalar));
    unary_named!(
        /// `smallerThanScalar(s)`: `a < s`. Exact.
        smaller_than_scalar, smaller_than_scalar_to, (scalar: f32), unary::SmallerThanScalar(scalar));
    unary_named!(
        /// `addScalar(scaleThis, s)`: `fma(scaleThis, a, s)` (`WeightedAddScalar`);
        /// `addScalar(s)` (`AddScalar`, `a + s`) is `add_scalar(1, s)`, bit for bit. Exact.
        add_scalar, add_scalar_to, (scale_this: f32, scalar: f32), unary::WeightedAddScalar { weight: scale_this, scalar });
    unary_named!(
        /// `minWithScalar(s)`: `a > s ? s : a`. Exact.
        min_with_scalar, min_with_scalar_to, (scalar: f32), unary::MinWithScalar(scalar));
    unary_named!(
        /// `maxWithScalar(s)`: `a > s ? a : s`. Exact.
        max_with_scalar, max_with_scalar_to, (scalar: f32), unary::MaxWithScalar(scalar));
    unary_named!(
        /// `pow(p)`: `__powf(a, p)`. Bounded (ex2.approx of `p*lg2.approx(a)`).
        pow, pow_to, (p: f32), unary::Pow(p));

    /// `scale(s)` in place: `a * s` (`MultByScalar`); nothing runs when `s == 1`, as in
    /// the original. Exact.
    pub fn scale(&mut self, scale: f32) {
        if scale != 1.0 {
            self.apply(unary::MultByScalar(scale));
        }
    }
    /// `scale(s, target)`: `target = this * s`. Exact.
    pub fn scale_to(&self, scale: f32, target: &mut NvMatrix) {
        self.apply_to(unary::MultByScalar(scale), target)
    }

    /// `add(b, scaleA, scaleB)` in place: `scaleA == 0` → `this = scaleB*b` (the
    /// original's `b.scale(scaleB, *this)`, which resizes `this` like `b` if their
    /// dimensions differ); `1, 1` → `a + b` (`Add`); else `fma(scaleA, a, scaleB*b)`
    /// (`WeightedAdd`). Exact.
    pub fn add(&mut self, b: &NvMatrix, scale_a: f32, scale_b: f32) -> Result<(), ShapeError> {
        if scale_a == 0.0 {
            b.scale_to(scale_b, self);
            Ok(())
        } else if scale_a == 1.0 && scale_b == 1.0 {
            self.apply_binary(binary::Add, b)
        } else {
            self.apply_binary(binary::WeightedAdd { scale_a, scale_b }, b)
        }
    }
    /// `add(b, scaleA, scaleB, target)`; see [`NvMatrix::add`]. Exact.
    pub fn add_to(
        &self,
        b: &NvMatrix,
        scale_a: f32,
        scale_b: f32,
        target: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        if scale_a == 0.0 {
            b.scale_to(scale_b, target);
            Ok(())
        } else if scale_a == 1.0 && scale_b == 1.0 {
            self.apply_binary_to(binary::Add, b, target)
        } else {
            self.apply_binary_to(binary::WeightedAdd { scale_a, scale_b }, b, target)
        }
    }
    /// `subtract(b)`: `add(b, 1, -1)`. Exact.
    pub fn subtract(&mut self, b: &NvMatrix) -> Result<(), ShapeError> {
        self.add(b, 1.0, -1.0)
    }
    /// `subtract(b, target)`: `add(b, 1, -1, target)`. Exact.
    pub fn subtract_to(&self, b: &NvMatrix, target: &mut NvMatrix) -> Result<(), ShapeError> {
        self.add_to(b, 1.0, -1.0, target)
    }

    binary_named!(
        /// `eltwiseMult(b)`: `a * b`. Exact.
        eltwise_mult, eltwise_mult_to, binary::Multiply);
    binary_named!(
        /// `eltwiseDivide(b)`: `__fdividef(a, b)`. Bounded (2 ulp).
        eltwise_divide, eltwise_divide_to, binary::Divide);
    binary_named!(
        /// `squaredDiff(b)`: `(a - b)^2`. Exact.
        squared_diff, squared_diff_to, binary::SquaredDiff);
    binary_named!(
        /// `biggerThan(b)`: `a > b`. Exact.
        bigger_than, bigger_than_to, binary::BiggerThan);
    binary_named!(
        /// `equals(b)`: `a == b`. Exact.
        equals, equals_to, binary::Equals);

    vector_named!(
        /// `addVector(vec, scaleVec)`: `fma(1, a, scaleVec*vec)` (`WeightedAdd(1,
        /// scaleVec)`), broadcast by the rule of `applyBinaryV`. Exact.
        add_vector, add_vector_to, (scale_vec: f32), binary::WeightedAdd { scale_a: 1.0, scale_b: scale_vec });
    vector_named!(
        /// `equalsVector(vec)`: `a == vec`. Exact.
        equals_vector, equals_vector_to, (), binary::Equals);
    vector_named!(
        /// `eltwiseMultByVector(vec)`: `a * vec`. Exact.
        eltwise_mult_by_vector, eltwise_mult_by_vector_to, (), binary::Multiply);
    vector_named!(
        /// `eltwiseDivideByVector(vec)`: `__fdividef(a, vec)`. Bounded (2 ulp).
        eltwise_divide_by_vector, eltwise_divide_by_vector_to, (), binary::Divide);
    vector_named!(
        /// `biggerThanVector(vec)`: `a > vec`. Exact.
        bigger_than_vector, bigger_than_vector_to, (), binary::BiggerThan);

    /// `copy(dest)`: `dest` takes this matrix's shape and orientation and its values.
    /// Exact.
    pub fn copy_to(&self, dest: &mut NvMatrix) {
        dest.resize_like(self);
        dest.data_mut().copy_from_slice(self.data());
    }

    /// `copy(dest, srcStartRow, srcEndRow, srcStartCol, srcEndCol, destStartRow,
    /// destStartCol)`: copies a block (`None` end = to the end, the original's -1) into
    /// `dest` at `(destStartRow, destStartCol)`, through `apply(Identity)` on two slice
    /// views, so the orientations may differ. Bounds are the original's
    /// `_checkBounds` on both slices. Exact.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_block(
        &self,
        dest: &mut NvMatrix,
        src_start_row: usize,
        src_end_row: Option<usize>,
        src_start_col: usize,
        src_end_col: Option<usize>,
        dest_start_row: usize,
        dest_start_col: usize,
    ) -> Result<(), ShapeError> {
        let (r1, c1) = (
            src_end_row.unwrap_or(self.rows()),
            src_end_col.unwrap_or(self.cols()),
        );
        check_bounds(
            (self.rows(), self.cols()),
            src_start_row,
            r1,
            src_start_col,
            c1,
        )?;
        let (h, w) = (r1 - src_start_row, c1 - src_start_col);
        check_bounds(
            (dest.rows(), dest.cols()),
            dest_start_row,
            dest_start_row + h,
            dest_start_col,
            dest_start_col + w,
        )?;
        let s = Src::of(self, src_start_row, src_start_col);
        // SAFETY: distinct matrices; both blocks are in bounds.
        unsafe {
            eltwise(
                [s],
                Dst::block(dest, dest_start_row, dest_start_col, h, w),
                |[a]| a,
            )
        };
        Ok(())
    }

    /// `slice(startRow, endRow, startCol, endCol, target)`: the form that always
    /// copies (`None` end = to the end). `target` is resized to the block's shape if
    /// its dimensions differ and keeps its own orientation. Exact.
    pub fn slice(
        &self,
        start_row: usize,
        end_row: Option<usize>,
        start_col: usize,
        end_col: Option<usize>,
        target: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        let (r1, c1) = (
            end_row.unwrap_or(self.rows()),
            end_col.unwrap_or(self.cols()),
        );
        check_bounds((self.rows(), self.cols()), start_row, r1, start_col, c1)?;
        if target.rows() != r1 - start_row || target.cols() != c1 - start_col {
            target.resize(r1 - start_row, c1 - start_col);
        }
        self.copy_block(target, start_row, Some(r1), start_col, Some(c1), 0, 0)
    }
    /// `sliceRows(startRow, endRow, target)`.
    pub fn slice_rows(
        &self,
        start_row: usize,
        end_row: Option<usize>,
        target: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        self.slice(start_row, end_row, 0, None, target)
    }
    /// `sliceCols(startCol, endCol, target)`.
    pub fn slice_cols(
        &self,
        start_col: usize,
        end_col: Option<usize>,
        target: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        self.slice(0, None, start_col, end_col, target)
    }

    /// `flipTrans(target)`: the same logical matrix in the other memory order
    /// (`target.resize(rows, cols)`, `setTrans(!isTrans())`, `apply(Identity)`). Exact.
    pub fn flip_trans_to(&self, target: &mut NvMatrix) {
        target.resize(self.rows(), self.cols());
        target.set_trans(!self.is_trans());
        self.apply_to(unary::Identity, target);
    }
    /// `flipTrans()`: a new matrix, the same logical matrix in the other memory order.
    pub fn flip_trans(&self) -> NvMatrix {
        let mut t = NvMatrix::like(self);
        self.flip_trans_to(&mut t);
        t
    }
    /// `transpose(target)` (hard): `target` becomes the transpose, in this matrix's
    /// orientation (`flipTrans`, then reinterpret and reshape). Exact.
    pub fn transpose_into(&self, target: &mut NvMatrix) {
        self.flip_trans_to(target);
        let t = !target.is_trans();
        target.set_trans(t);
        target.reshape(self.cols(), self.rows());
    }

    /// `tile(timesY, timesX, target)` (`kTile`): `target` is `(rows*timesY) x
    /// (cols*timesX)` in this matrix's orientation, element `(y, x)` of its memory
    /// order copying `(y mod srcFollowing, x mod srcLeading)`. Exact.
    pub fn tile(
        &self,
        times_y: usize,
        times_x: usize,
        target: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        require(
            times_x > 0 && times_y > 0,
            "NVMatrix::tile",
            "timesX > 0 && timesY > 0",
        )?;
        target.resize(self.rows() * times_y, self.cols() * times_x);
        target.set_trans(self.is_trans());
        let (sw, sh) = (self.leading_dim(), self.following_dim());
        let tw = target.leading_dim();
        let src = self.data();
        for (i, t) in target.data_mut().iter_mut().enumerate() {
            let (y, x) = (i / tw, i % tw);
            *t = src[(y % sh) * sw + x % sw];
        }
        Ok(())
    }
}

/// The row and column strides `(rs, cs)` through which `applyBinaryV` reads its
/// vector (`vec_rows x vec_cols`) over a `(rows, cols, trans)` matrix: the original's
/// rule picks `kColVectorOp` (one vector element per memory line, i.e. per row of a
/// row-major matrix or per column of a column-major one) when `vec.rows == rows &&
/// !isTrans() || vec.cols == cols && isTrans()`, and `kRowVectorOp` (one element per
/// position along the line) otherwise. Both read the vector as plain memory. Quirk
/// kept: a `1 x n` row-major matrix with a `1 x n` vector takes the column rule and uses
/// `vec[0]` everywhere.
pub(crate) fn vector_strides(
    (rows, cols, trans): (usize, usize, bool),
    (vec_rows, vec_cols): (usize, usize),
) -> Result<(usize, usize), ShapeError> {
    let f = "NVMatrix::applyBinaryV";
    require(
        vec_rows == 1 || vec_cols == 1,
        f,
        "vec.getNumRows() == 1 || vec.getNumCols() == 1",
    )?;
    require(
        vec_rows == rows || vec_cols == cols,
        f,
        "vec.getNumRows() == _numRows || vec.getNumCols() == _numCols",
    )?;
    let col_op = (vec_rows == rows && !trans) || (vec_cols == cols && trans);
    let (leading, following) = if trans { (rows, cols) } else { (cols, rows) };
    let need = if col_op { following } else { leading };
    require(
        vec_rows * vec_cols >= need || rows * cols == 0,
        f,
        "a vector element for every line (kColVectorOp) or column (kRowVectorOp)",
    )?;
    // Index along the memory line (leading) or across lines (following).
    let along_line = !col_op;
    Ok(match (trans, along_line) {
        (false, true) | (true, false) => (0, 1),
        (false, false) | (true, true) => (1, 0),
    })
}

/// The original's `_checkBounds` (asserts there) on a `rows x cols` matrix.
pub(crate) fn check_bounds(
    (rows, cols): (usize, usize),
    start_row: usize,
    end_row: usize,
    start_col: usize,
    end_col: usize,
) -> Result<(), ShapeError> {
    require(
        start_row < rows
            && end_row > start_row
            && end_row <= rows
            && start_col < cols
            && end_col > start_col
            && end_col <= cols,
        "NVMatrix::_checkBounds",
        "0 <= startRow < endRow <= numRows && 0 <= startCol < endCol <= numCols",
    )
}
