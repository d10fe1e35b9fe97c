//! Port of conv_util.cuh and conv_util.cu (cuda-convnet rev 6627f67): local pooling
//! (`convLocalPool` with the poolers `AvgPooler`, `MaxPooler`, `MaxAbsPooler`, kernels
//! `kLocalPool` and `kLocalPool2`), its undo (`convLocalMaxUndo` / `kLocalMaxUndo`,
//! `convLocalAvgUndo` / `kLocalAvgUndo`), and the 2012 code's `convLocalRandomPool`
//! (A12-missing; inferred, see [`conv_local_random_pool`]).
//!
//! Layouts as in the original: images `(numFilters, imgSize, imgSize, numImages)` and
//! pooled outputs `(numFilters, outputsX, outputsX, numImages)`, row-major with images
//! innermost. Output `(oy, ox)` pools the window of rows `[startX + oy*strideX, +subsX)`
//! and columns `[startX + ox*strideX, +subsX)`, clipped to the image.
//!
//! Every output element is one task's lane: images run in fixed-width lane arrays (32,
//! then 8, then 1 for the remainder), each lane doing the original thread's operation
//! sequence for its image, so results depend neither on the lane width nor on the
//! thread count. Tasks are (filter, output row) for the forward kernels and
//! (filter, image row) for the undo kernels; per-axis windows, covering output ranges
//! and (avg undo) `regionSizeInv` values are tabulated once per call with the
//! kernels' own float operations.
//!
//! nvcc facts these kernels rely on (CUDA 13, `-arch=sm_75`, default flags; the
//! original's build uses `-use_fast_math` only with `make fastmath=1`): `fmaxf` is
//! `max.f32` (a NaN operand yields the other, `+0.0 > -0.0`); `a / regionSize` is
//! `cvt.rn.f32.s32` then `div.rn.f32`; `1.0f / x` is `rcp.rn.f32` (correctly
//! rounded); `prod += (img == ma) * mg` is `selp` of 1.0/0.0 then
//! `fma.rn.f32(mg, sel, prod)`; `prod += g * inv` is `fma.rn.f32(g, inv, prod)`; the
//! accumulating write `scaleTargets * t + scaleOutputs * prod` is
//! `fma.rn.f32(prod, scaleOutputs, scaleTargets * t)`.
//!
//! "Exact" covers every non-NaN result; a NaN result is NaN here too, but its payload
//! is the CPU's (the GPU returns 0x7FFFFFFF for any NaN result).

use super::{same_dims, shape_of};
use crate::cudaconv2::{require, MatShape, ShapeError};
use crate::nvmatrix::NvMatrix;
use crate::parallel::{for_each_task, SharedOut};
use crate::synthetic::SplitMix64;

/// A pooling operator, as the original's pooler classes: a base value, a binary
/// aggregation applied pixel by pixel, and a final output from the aggregate and the
/// number of pixels aggregated.
pub trait Pooler: Copy + Send + Sync {
    /// `getBaseValue()`: the aggregate before the first pixel.
    fn base_value(&self) -> f32;
    /// `operator()(a, b)`: the aggregate `a` with the next pixel `b`.
    fn aggregate(&self, a: f32, b: f32) -> f32;
    /// `output(a, regionSize)`: the pooled value.
    fn output(&self, a: f32, region_size: i32) -> f32;
    /// [`Pooler::aggregate`] of a running aggregate that started at
    /// [`Pooler::base_value`] and was only updated by this method (what the kernels
    /// call): the same result, but a pooler may skip cases that cannot arise there.
    #[inline(always)]
    fn accumulate(&self, acc: f32, b: f32) -> f32 {
        self.aggregate(acc, b)
    }
}

/// `AvgPooler`: `a + b` from 0, output `a / regionSize` (IEEE division of the sum by
/// the in-image pixel count converted to float). An empty window gives `0/0` = NaN.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AvgPooler;

/// `MaxPooler`: `fmaxf(a, b)` from `-2e38` (PTX `max.f32`: a NaN pixel is skipped,
/// `+0.0` beats `-0.0`), output `a`. An empty window gives `-2e38`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MaxPooler;

/// `MaxAbsPooler`: keeps the aggregate when `|a| > |b|`, else takes the pixel (ties
/// and NaNs go to the pixel), from 0, output `a`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MaxAbsPooler;

/// `MaxPooler::getBaseValue()`: the double literal `-2e38` returned as float
/// (0xFF167699).
pub const MAX_POOLER_BASE: f32 = -2e38;

/// The canonical NaN of single-precision GPU arithmetic.
const CANONICAL_NAN: f32 = f32::from_bits(0x7FFF_FFFF);

/// PTX `max.f32` (what `fmaxf` compiles to): a NaN operand yields the other one (two
/// NaNs the canonical NaN); `+0.0` counts as greater than `-0.0`.
#[inline(always)]
fn fmaxf(a: f32, b: f32) -> f32 {
    if a.is_nan() {
        if b.is_nan() {
            CANONICAL_NAN
        } else {
            b
        }
    } else {
        fmaxf_num(a, b)
    }
}

/// [`fmaxf`] for a first operand that is not NaN, written as selects that map onto
/// `maxps`, `cmpps` and `blendvps`.
#[inline(always)]
fn fmaxf_num(a: f32, b: f32) -> f32 {
    let larger = if b > a { b } else { a };
    // Equal: the same value, or zeros of both signs (then +0.0 if either is +0.0).
    if a == b {
        f32::from_bits(a.to_bits() & b.to_bits())
    } else {
        larger
    }
}

/// PTX `min.f32` (what `fminf` compiles to): a NaN operand yields the other one (two
/// NaNs the canonical NaN); `-0.0` counts as less than `+0.0`.
#[inline(always)]
fn fminf(a: f32, b: f32) -> f32 {
    if a.is_nan() {
        if b.is_nan() {
            CANONICAL_NAN
        } else {
            b
        }
    } else if b.is_nan() || a < b {
        a
    } else if b < a {
        b
    } else {
        f32::from_bits(a.to_bits() | b.to_bits())
    }
}

impl Pooler for AvgPooler {
    #[inline(always)]
    fn base_value(&self) -> f32 {
        0.0
    }
    #[inline(always)]
    fn aggregate(&self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn output(&self, a: f32, region_size: i32) -> f32 {
        a / region_size as f32
    }
}

impl Pooler for MaxPooler {
    #[inline(always)]
    fn base_value(&self) -> f32 {
        MAX_POOLER_BASE
    }
    #[inline(always)]
    fn aggregate(&self, a: f32, b: f32) -> f32 {
        fmaxf(a, b)
    }
    /// The running maximum is never NaN (the base is not, and `fmaxf` of a non-NaN
    /// value never gives NaN), so the NaN-aggregate case is skipped.
    #[inline(always)]
    fn accumulate(&self, acc: f32, b: f32) -> f32 {
        fmaxf_num(acc, b)
    }
    #[inline(always)]
    fn output(&self, a: f32, _region_size: i32) -> f32 {
        a
    }
}

impl Pooler for MaxAbsPooler {
    #[inline(always)]
    fn base_value(&self) -> f32 {
        0.0
    }
    #[inline(always)]
    fn aggregate(&self, a: f32, b: f32) -> f32 {
        if a.abs() > b.abs() {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn output(&self, a: f32, _region_size: i32) -> f32 {
        a
    }
}

/// The kernel and template arguments the original host code picks for a call (for
/// tests and benchmarks: it names the variant; the numerics follow from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// The kernel's name in the original, e.g. `kLocalPool2`.
    pub kernel: &'static str,
    /// `imgsPerThread`.
    pub imgs_per_thread: usize,
    /// `filtersPerThread`.
    pub filters_per_thread: usize,
    /// `checkCaseBounds`.
    pub check_case_bounds: bool,
    /// The undo kernels' `add` flag (`false` for the forward kernels).
    pub add: bool,
}

/// The variant `convLocalPool` launches: `kLocalPool2<Pooler, B_X=8, ipt, fpt, ccb>`
/// when `strideX == 1 && subsX >= 6` (ipt 8 if `numImages % 128 == 0` else 4; fpt 4,
/// 3, 2 or 1, the first that divides `numFilters`; ccb `numImages % (8*ipt) != 0`),
/// else `kLocalPool<Pooler, B_Y=4, B_X=32, ipt, fpt, ccb>` (ipt 4/2/1 by
/// `numImages % 128` / `% 64`; fpt 2 if `numFilters % 8 == 0` else 1; ccb
/// `numImages % (32*ipt) != 0`).
pub fn local_pool_variant(
    num_filters: usize,
    num_images: usize,
    subs_x: usize,
    stride_x: usize,
) -> Variant {
    if stride_x == 1 && subs_x >= 6 {
        let ipt = if num_images.is_multiple_of(128) { 8 } else { 4 };
        let fpt = [4, 3, 2]
            .into_iter()
            .find(|&d| num_filters.is_multiple_of(d))
            .unwrap_or(1);
        Variant {
            kernel: "kLocalPool2",
            imgs_per_thread: ipt,
            filters_per_thread: fpt,
            check_case_bounds: !num_images.is_multiple_of(8 * ipt),
            add: false,
        }
    } else {
        let ipt = images_per_thread(num_images);
        Variant {
            kernel: "kLocalPool",
            imgs_per_thread: ipt,
            filters_per_thread: if num_filters.is_multiple_of(8) { 2 } else { 1 },
            check_case_bounds: !num_images.is_multiple_of(32 * ipt),
            add: false,
        }
    }
}

/// The variant `convLocalMaxUndo` launches: `kLocalMaxUndo<4, 32, ipt, 2, add, ccb>`.
pub fn local_max_undo_variant(num_images: usize, scale_targets: f32, scale_output: f32) -> Variant {
    undo_variant("kLocalMaxUndo", 2, num_images, scale_targets, scale_output)
}

/// The variant `convLocalAvgUndo` launches: `kLocalAvgUndo<4, 32, ipt, 4, add, ccb>`.
pub fn local_avg_undo_variant(num_images: usize, scale_targets: f32, scale_output: f32) -> Variant {
    undo_variant("kLocalAvgUndo", 4, num_images, scale_targets, scale_output)
}

fn undo_variant(kernel: &'static str, fpt: usize, num_images: usize, st: f32, so: f32) -> Variant {
    let ipt = images_per_thread(num_images);
    Variant {
        kernel,
        imgs_per_thread: ipt,
        filters_per_thread: fpt,
        check_case_bounds: !num_images.is_multiple_of(32 * ipt),
        add: !(st == 0.0 && so == 1.0),
    }
}

/// `imgsPerThread` of the B_X = 32 kernels: 4 if `numImages % 128 == 0`, 2 if `% 64`,
/// else 1.
fn images_per_thread(num_images: usize) -> usize {
    if num_images.is_multiple_of(128) {
        4
    } else if num_images.is_multiple_of(64) {
        2
    } else {
        1
    }
}

/// `int(sqrt(imgPixels))` as the host code computes the image side.
fn image_side(img_pixels: usize) -> usize {
    (img_pixels as f64).sqrt() as usize
}

/// The clipped range `[max(0, s), min(size, s + subs))` of window start `s` (as i64;
/// empty when the window misses the image).
#[inline]
fn clip(start: i64, subs: usize, size: usize) -> (usize, usize) {
    let lo = start.max(0);
    let hi = (start + subs as i64).min(size as i64);
    if hi <= lo {
        (0, 0)
    } else {
        (lo as usize, hi as usize)
    }
}

/// The clipped window `[lo, hi)` of each output index along one axis.
fn windows(
    start_x: i32,
    subs_x: usize,
    stride_x: usize,
    outputs_x: usize,
    img_size: usize,
) -> Vec<(usize, usize)> {
    (0..outputs_x)
        .map(|o| clip(start_x as i64 + (o * stride_x) as i64, subs_x, img_size))
        .collect()
}

/// A kernel body over one lane chunk of images: `chunk::<L>(c)` handles images
/// `c..c+L`. [`for_lane_chunks`] covers `0..n` with widths 32, 8, then 1.
trait LaneKernel {
    fn chunk<const L: usize>(&mut self, c: usize);
}

#[inline(always)]
fn for_lane_chunks(n: usize, k: &mut impl LaneKernel) {
    let mut c = 0;
    while c + 32 <= n {
        k.chunk::<32>(c);
        c += 32;
    }
    while c + 8 <= n {
        k.chunk::<8>(c);
        c += 8;
    }
    while c < n {
        k.chunk::<1>(c);
        c += 1;
    }
}

/// `L` consecutive values from `off`.
#[inline(always)]
fn lanes<const L: usize>(v: &[f32], off: usize) -> &[f32; L] {
    v[off..off + L].try_into().unwrap()
}

/// Checks of `convLocalPool` (and of the inferred `convLocalRandomPool`); returns
/// `(imgSize, numImages)`.
pub(crate) fn check_local_pool(
    function: &'static str,
    images: MatShape,
    target: MatShape,
    num_filters: usize,
) -> Result<(usize, usize), ShapeError> {
    // The original divides by numFilters; 0 would be a division by zero.
    require(num_filters > 0, function, "numFilters > 0")?;
    let img_pixels = images.rows / num_filters;
    require(
        images.rows == num_filters * img_pixels,
        function,
        "images.getNumRows() == numFilters * imgPixels",
    )?;
    let img_size = image_side(img_pixels);
    require(
        img_size * img_size == img_pixels,
        function,
        "imgSize * imgSize == imgPixels",
    )?;
    require(!images.trans, function, "!images.isTrans()")?;
    require(!target.trans, function, "!target.isTrans()")?;
    Ok((img_size, images.cols))
}

/// `convLocalPool<Pooler>(images, target, numFilters, subsX, startX, strideX,
/// outputsX, pooler)` (conv_util.cuh), kernels `kLocalPool` and `kLocalPool2`.
/// Tier: **exact**.
///
/// `images` is `(numFilters*imgSize², numImages)`; `target` is resized to
/// `(numFilters*outputsX², numImages)`. Each output is the pooler's aggregate, from
/// its base value, over the window's in-image pixels, rows ascending and within a row
/// columns ascending, then `pooler.output(aggregate, regionSize)` with regionSize the
/// number of in-image pixels.
///
/// Variants ([`local_pool_variant`]): `kLocalPool` gives each thread one output for
/// its images and filters and loops over the clipped window directly. `kLocalPool2`
/// (stride 1, `subsX >= 6`) stages the union window of a 4x4 block of outputs in
/// shared memory pixel by pixel, rows then columns, and each thread aggregates the
/// staged pixels inside its own window and counts them. Both visit exactly the
/// window's in-image pixels in the same row-then-column order and divide by the same
/// count, so their per-output operation sequences are identical and one
/// implementation serves both; the variant is reported, not needed for the numerics.
///
/// Host asserts become `Err(ShapeError)`: `numFilters > 0` (the original divides by
/// it), `images.getNumRows() == numFilters*imgPixels`, square images, neither matrix
/// transposed. Windows outside the image are not checked by the original (nor here):
/// an empty window gives the base value (max: `-2e38`, maxabs: 0) or `0/0` (avg: NaN).
#[allow(clippy::too_many_arguments)]
pub fn conv_local_pool<P: Pooler>(
    images: &NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    subs_x: usize,
    start_x: i32,
    stride_x: usize,
    outputs_x: usize,
    pooler: P,
) -> Result<(), ShapeError> {
    let (img_size, n) = check_local_pool(
        "convLocalPool",
        shape_of(images),
        shape_of(target),
        num_filters,
    )?;
    let outputs = outputs_x * outputs_x;
    target.resize(num_filters * outputs, n);
    let img_pixels = img_size * img_size;
    let src = images.data();
    let out = SharedOut::new(target.data_mut());

    struct Body<'a, P> {
        pooler: P,
        src: &'a [f32],
        dst: &'a mut [f32],
        /// Offset of the window's first row's first pixel (times n).
        base: usize,
        rows: usize,
        cols: usize,
        /// Distance between rows (imgSize*n).
        row_step: usize,
        n: usize,
        region: i32,
    }
    impl<P: Pooler> LaneKernel for Body<'_, P> {
        #[inline(always)]
        fn chunk<const L: usize>(&mut self, c: usize) {
            let p = self.pooler;
            let mut acc = [p.base_value(); L];
            for y in 0..self.rows {
                let row = self.base + y * self.row_step + c;
                for x in 0..self.cols {
                    let v = lanes::<L>(self.src, row + x * self.n);
                    for i in 0..L {
                        acc[i] = p.accumulate(acc[i], v[i]);
                    }
                }
            }
            let d: &mut [f32; L] = (&mut self.dst[c..c + L]).try_into().unwrap();
            for i in 0..L {
                d[i] = p.output(acc[i], self.region);
            }
        }
    }

    let win = windows(start_x, subs_x, stride_x, outputs_x, img_size);
    // One task per (filter, output row).
    for_each_task(num_filters * outputs_x, |t| {
        let (f, oy) = (t / outputs_x, t % outputs_x);
        let (y0, y1) = win[oy];
        // SAFETY: output row t (outputs_x pixels of n images) belongs to task t only.
        let row = unsafe { out.slice(t * outputs_x * n, outputs_x * n) };
        for (ox, dst) in row.chunks_exact_mut(n.max(1)).enumerate() {
            let (x0, x1) = win[ox];
            let mut body = Body {
                pooler,
                src,
                dst,
                base: (f * img_pixels + y0 * img_size + x0) * n,
                rows: y1 - y0,
                cols: x1 - x0,
                row_step: img_size * n,
                n,
                region: ((y1 - y0) * (x1 - x0)) as i32,
            };
            for_lane_chunks(n, &mut body);
        }
    });
    Ok(())
}

/// The outputs whose windows contain image coordinate `p` (one axis), as the undo
/// kernels compute them: `[p - startX < subsX ? 0 : 1 + (p - startX - subsX)/strideX,
/// min(outputsX, 1 + (p - startX)/strideX))`, and whether `p` lies in the covered
/// range `[startX, startX + strideX*(outputsX-1) + subsX)` at all.
#[inline]
fn covering(
    p: usize,
    start_x: i64,
    subs_x: usize,
    stride_x: usize,
    outputs_x: usize,
) -> Option<(usize, usize)> {
    let (p, s, subs, stride) = (p as i64, start_x, subs_x as i64, stride_x as i64);
    if p < s || p >= s + stride * (outputs_x as i64 - 1) + subs {
        return None;
    }
    let first = if p - s < subs {
        0
    } else {
        1 + (p - s - subs) / stride
    };
    let end = (outputs_x as i64).min(1 + (p - s) / stride);
    Some((first as usize, end.max(first) as usize))
}

/// [`covering`] of every coordinate `0..img_size` (the same for both axes).
fn coverings(
    img_size: usize,
    start_x: i32,
    subs_x: usize,
    stride_x: usize,
    outputs_x: usize,
) -> Vec<Option<(usize, usize)>> {
    (0..img_size)
        .map(|p| covering(p, start_x as i64, subs_x, stride_x, outputs_x))
        .collect()
}

/// The final write of the undo kernels: `prod` when `!add`, else
/// `scaleTargets * t + scaleOutputs * prod` with the first product fused, as nvcc
/// contracts it (`fma(t, scaleTargets, prod * scaleOutputs)` in the original's PTX).
#[inline(always)]
fn write_lanes<const L: usize>(d: &mut [f32; L], acc: &[f32; L], add: bool, st: f32, so: f32) {
    if add {
        for i in 0..L {
            d[i] = st.mul_add(d[i], acc[i] * so);
        }
    } else {
        *d = *acc;
    }
}

/// The host checks of `convLocalMaxUndo` (see [`conv_local_max_undo`]); returns
/// `(imgSize, numFilters)`.
pub(crate) fn max_undo_checks(
    images: MatShape,
    max_grads: MatShape,
    max_acts: MatShape,
    target: MatShape,
    subs_x: usize,
    stride_x: usize,
    outputs_x: usize,
) -> Result<(usize, usize), ShapeError> {
    const F: &str = "convLocalMaxUndo";
    let outputs = outputs_x * outputs_x;
    require(outputs > 0, F, "outputsX > 0")?;
    let n = images.cols;
    let num_filters = max_grads.rows / outputs;
    require(num_filters > 0, F, "numFilters > 0")?;
    let img_pixels = images.rows / num_filters;
    require(
        images.rows == num_filters * img_pixels,
        F,
        "images.getNumRows() == numFilters * imgPixels",
    )?;
    let img_size = image_side(img_pixels);
    require(
        img_size * img_size == img_pixels,
        F,
        "imgSize * imgSize == imgPixels",
    )?;
    require(
        max_grads.rows == num_filters * outputs,
        F,
        "maxGrads.getNumRows() == numFilters * outputs",
    )?;
    require(max_grads.cols == n, F, "maxGrads.getNumCols() == numImages")?;
    require(!images.trans, F, "!images.isTrans()")?;
    require(!target.trans, F, "!target.isTrans()")?;
    require(!max_grads.trans, F, "!maxGrads.isTrans()")?;
    require(!max_acts.trans, F, "!maxActs.isTrans()")?;
    require(
        same_dims(max_grads, max_acts),
        F,
        "maxGrads.isSameDims(maxActs)",
    )?;
    require(num_filters.is_multiple_of(16), F, "numFilters % 16 == 0")?;
    require(stride_x <= subs_x, F, "strideX <= subsX")?;
    require(stride_x > 0, F, "strideX > 0")?;
    Ok((img_size, num_filters))
}

/// `convLocalMaxUndo(images, maxGrads, maxActs, target, subsX, startX, strideX,
/// outputsX, scaleTargets, scaleOutput)` (conv_util.cu), kernel `kLocalMaxUndo<4, 32,
/// ipt, 2, add, ccb>` ([`local_max_undo_variant`]). Tier: **exact**.
///
/// For every image pixel `p` of every filter and image: `prod = 0`, then, when `p` is
/// in the covered range `[startX, startX + strideX*(outputsX-1) + subsX)` in both
/// axes, over the covering outputs (rows `my` ascending, then columns `mx`):
/// `prod = fma(maxGrad, (img == maxAct) ? 1 : 0, prod)` (so a NaN or infinite gradient
/// of a window whose maximum is elsewhere still poisons the sum as `0*inf`, as on the
/// GPU). Pixels outside the covered range get 0. `target` is always resized to the
/// images; with `add = !(scaleTargets == 0 && scaleOutput == 1)` it becomes
/// `scaleTargets*target + scaleOutput*prod` (reading the target even when
/// `scaleTargets == 0`, so `0*inf` there gives NaN as on the GPU; a freshly resized
/// target reads as zeros here, uninitialised memory in the original), else `prod`.
/// The no-scale overload of the original is `(0, 1)`.
///
/// Host asserts become `Err(ShapeError)`: `maxGrads.getNumRows() == numFilters*outputs`
/// and `maxGrads.getNumCols() == numImages`, `images.getNumRows() ==
/// numFilters*imgPixels`, square images, no transposed matrix, `maxGrads` and
/// `maxActs` the same size, `numFilters % 16 == 0`, `strideX <= subsX`; also
/// `outputsX > 0`, `numFilters > 0` and `strideX > 0`, which the original divides by.
#[allow(clippy::too_many_arguments)]
pub fn conv_local_max_undo(
    images: &NvMatrix,
    max_grads: &NvMatrix,
    max_acts: &NvMatrix,
    target: &mut NvMatrix,
    subs_x: usize,
    start_x: i32,
    stride_x: usize,
    outputs_x: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let (img_size, num_filters) = max_undo_checks(
        shape_of(images),
        shape_of(max_grads),
        shape_of(max_acts),
        shape_of(target),
        subs_x,
        stride_x,
        outputs_x,
    )?;
    let outputs = outputs_x * outputs_x;
    let n = images.cols();
    target.resize(images.rows(), n);
    let add = local_max_undo_variant(n, scale_targets, scale_output).add;
    let (imgs, grads, acts) = (images.data(), max_grads.data(), max_acts.data());
    let out = SharedOut::new(target.data_mut());

    struct Body<'a> {
        imgs: &'a [f32],
        grads: &'a [f32],
        acts: &'a [f32],
        dst: &'a mut [f32],
        /// Offset of this pixel's images (row of `imgs`, times n).
        px: usize,
        /// Offset of this filter's first output row (times n).
        obase: usize,
        ys: Option<(usize, usize)>,
        xs: Option<(usize, usize)>,
        outputs_x: usize,
        n: usize,
        add: bool,
        st: f32,
        so: f32,
    }
    impl LaneKernel for Body<'_> {
        #[inline(always)]
        fn chunk<const L: usize>(&mut self, c: usize) {
            let mut acc = [0.0f32; L];
            if let (Some((my0, my1)), Some((mx0, mx1))) = (self.ys, self.xs) {
                let img = lanes::<L>(self.imgs, self.px + c);
                for my in my0..my1 {
                    for mx in mx0..mx1 {
                        let off = self.obase + (my * self.outputs_x + mx) * self.n + c;
                        let (ma, mg) = (lanes::<L>(self.acts, off), lanes::<L>(self.grads, off));
                        for i in 0..L {
                            let hit = if img[i] == ma[i] { 1.0f32 } else { 0.0 };
                            acc[i] = mg[i].mul_add(hit, acc[i]);
                        }
                    }
                }
            }
            let d: &mut [f32; L] = (&mut self.dst[c..c + L]).try_into().unwrap();
            write_lanes(d, &acc, self.add, self.st, self.so);
        }
    }

    let cover = coverings(img_size, start_x, subs_x, stride_x, outputs_x);
    // One task per (filter, image row).
    for_each_task(num_filters * img_size, |t| {
        let (f, py) = (t / img_size, t % img_size);
        // SAFETY: image row t (img_size pixels of n images) belongs to task t only.
        let row = unsafe { out.slice(t * img_size * n, img_size * n) };
        for (px, dst) in row.chunks_exact_mut(n.max(1)).enumerate() {
            let mut body = Body {
                imgs,
                grads,
                acts,
                dst,
                px: (t * img_size + px) * n,
                obase: f * outputs * n,
                ys: cover[py],
                xs: cover[px],
                outputs_x,
                n,
                add,
                st: scale_targets,
                so: scale_output,
            };
            for_lane_chunks(n, &mut body);
        }
    });
    Ok(())
}

/// The host checks of `convLocalAvgUndo` (see [`conv_local_avg_undo`]); returns
/// `numFilters`.
pub(crate) fn avg_undo_checks(
    avg_grads: MatShape,
    target: MatShape,
    subs_x: usize,
    stride_x: usize,
    outputs_x: usize,
) -> Result<usize, ShapeError> {
    const F: &str = "convLocalAvgUndo";
    let outputs = outputs_x * outputs_x;
    require(outputs > 0, F, "outputsX > 0")?;
    let num_filters = avg_grads.rows / outputs;
    require(
        avg_grads.rows == num_filters * outputs,
        F,
        "avgGrads.getNumRows() == numFilters * outputs",
    )?;
    require(!target.trans, F, "!target.isTrans()")?;
    require(!avg_grads.trans, F, "!avgGrads.isTrans()")?;
    require(num_filters.is_multiple_of(16), F, "numFilters % 16 == 0")?;
    require(stride_x <= subs_x, F, "strideX <= subsX")?;
    require(stride_x > 0, F, "strideX > 0")?;
    Ok(num_filters)
}

/// `convLocalAvgUndo(avgGrads, target, subsX, startX, strideX, outputsX, imgSize,
/// scaleTargets, scaleOutput)` (conv_util.cu), kernel `kLocalAvgUndo<4, 32, ipt, 4,
/// add, ccb>` ([`local_avg_undo_variant`]). Tier: **exact**.
///
/// For every image pixel `p` of every filter and image: `prod = 0`, then, when `p` is
/// in the covered range (as in [`conv_local_max_undo`]), over the covering outputs
/// (rows `my` ascending, then columns `mx`): `prod = fma(avgGrad, regionSizeInv,
/// prod)`, where per output, in float: `regionSizeY = fminf(imgSize, startX +
/// my*strideX + subsX) - fmaxf(0, startX + my*strideX)` (the ints converted to
/// float), the same for X, and `regionSizeInv = 1.0f / (regionSizeX * regionSizeY)`
/// (`rcp.rn.f32`). `target` is resized to `(numFilters*imgSize², numImages)`; the
/// write is as in [`conv_local_max_undo`] (`add = !(scaleTargets == 0 && scaleOutput
/// == 1)`). The no-scale overload of the original is `(0, 1)`.
///
/// Host asserts become `Err(ShapeError)`: `avgGrads.getNumRows() ==
/// numFilters*outputs`, no transposed matrix, `numFilters % 16 == 0`, `strideX <=
/// subsX`; also `outputsX > 0` and `strideX > 0`, which the original divides by.
#[allow(clippy::too_many_arguments)]
pub fn conv_local_avg_undo(
    avg_grads: &NvMatrix,
    target: &mut NvMatrix,
    subs_x: usize,
    start_x: i32,
    stride_x: usize,
    outputs_x: usize,
    img_size: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let num_filters = avg_undo_checks(
        shape_of(avg_grads),
        shape_of(target),
        subs_x,
        stride_x,
        outputs_x,
    )?;
    let n = avg_grads.cols();
    let outputs = outputs_x * outputs_x;
    let img_pixels = img_size * img_size;
    target.resize(num_filters * img_pixels, n);
    let add = local_avg_undo_variant(n, scale_targets, scale_output).add;
    let grads = avg_grads.data();
    let out = SharedOut::new(target.data_mut());

    // regionSizeInv of every output: per axis `fminf(imgSize, s + subsX) - fmaxf(0, s)`
    // in float (s = startX + m*strideX), then `1.0f / (regionSizeX * regionSizeY)`.
    let side: Vec<f32> = (0..outputs_x)
        .map(|m| {
            let s = start_x as i64 + (m * stride_x) as i64;
            let lo = fmaxf(0.0, s as i32 as f32);
            let hi = fminf(img_size as i32 as f32, (s + subs_x as i64) as i32 as f32);
            hi - lo
        })
        .collect();
    let inv: Vec<f32> = (0..outputs)
        .map(|o| 1.0f32 / (side[o % outputs_x] * side[o / outputs_x]))
        .collect();

    struct Body<'a> {
        grads: &'a [f32],
        dst: &'a mut [f32],
        obase: usize,
        ys: Option<(usize, usize)>,
        xs: Option<(usize, usize)>,
        outputs_x: usize,
        inv: &'a [f32],
        n: usize,
        add: bool,
        st: f32,
        so: f32,
    }
    impl LaneKernel for Body<'_> {
        #[inline(always)]
        fn chunk<const L: usize>(&mut self, c: usize) {
            let mut acc = [0.0f32; L];
            if let (Some((my0, my1)), Some((mx0, mx1))) = (self.ys, self.xs) {
                for my in my0..my1 {
                    for mx in mx0..mx1 {
                        let o = my * self.outputs_x + mx;
                        let inv = self.inv[o];
                        let g = lanes::<L>(self.grads, self.obase + o * self.n + c);
                        for i in 0..L {
                            acc[i] = g[i].mul_add(inv, acc[i]);
                        }
                    }
                }
            }
            let d: &mut [f32; L] = (&mut self.dst[c..c + L]).try_into().unwrap();
            write_lanes(d, &acc, self.add, self.st, self.so);
        }
    }

    let cover = coverings(img_size, start_x, subs_x, stride_x, outputs_x);
    // One task per (filter, image row).
    for_each_task(num_filters * img_size, |t| {
        let f = t / img_size;
        let py = t % img_size;
        // SAFETY: image row t (img_size pixels of n images) belongs to task t only.
        let row = unsafe { out.slice(t * img_size * n, img_size * n) };
        for (px, dst) in row.chunks_exact_mut(n.max(1)).enumerate() {
            let mut body = Body {
                grads,
                dst,
                obase: f * outputs * n,
                ys: cover[py],
                xs: cover[px],
                outputs_x,
                inv: &inv,
                n,
                add,
                st: scale_targets,
                so: scale_output,
            };
            for_lane_chunks(n, &mut body);
        }
    });
    Ok(())
}

/// `convLocalRandomPool(images, target, numFilters, subsX, startX, strideX, outputsX)`
/// of the 2012 code (A12-missing: `RandomPoolLayer::fpropActs` calls it for `pool=rand`
/// unless `doMax`, but its source is in neither the 2012 repository, cuda-convnet 1 nor
/// cuda-convnet2). Tier: **inferred** (not comparable with the original, whose random
/// numbers came from the library's cuRAND states that this call does not receive).
///
/// What is known from the callers: the layer's backward pass is `convLocalMaxUndo`
/// with this function's output as `maxActs`, so each output must be one of its
/// window's pixel values; `doMax=true` ("turning off randomness", layer-params-178.cfg)
/// replaces it by max pooling; the net using it (layers-178, started 2013-01-19, three
/// days after Zeiler and Fergus posted "Stochastic Pooling", arXiv 1301.3557) pools
/// non-negative response-normalised ReLU outputs. We therefore implement stochastic
/// pooling: per (filter, output, image), pixel `i` of the clipped window is picked with
/// probability `a_i / Σ a_j` over the positive pixels, and its value is the output.
///
/// Exactly: `total` = the f32 sum, from 0, of the window's positive pixels in window
/// order (rows, then columns); `r = u * total` with `u` the `k`-th uniform of
/// [`SplitMix64`]`(seed)` (`(next_u64 >> 40) / 2^24`), `k` the output's index in
/// `target` memory order; the output is the first positive pixel whose running sum
/// (same order) exceeds `r`; if rounding leaves none, the last positive pixel; if the
/// window has no positive pixel, the `MaxPooler` result. Same draws whatever the
/// thread count. `seed` is our addition (the caller owns the random stream).
///
/// Checks as [`conv_local_pool`].
#[allow(clippy::too_many_arguments)]
pub fn conv_local_random_pool(
    images: &NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    subs_x: usize,
    start_x: i32,
    stride_x: usize,
    outputs_x: usize,
    seed: u64,
) -> Result<(), ShapeError> {
    let (img_size, n) = check_local_pool(
        "convLocalRandomPool",
        shape_of(images),
        shape_of(target),
        num_filters,
    )?;
    let outputs = outputs_x * outputs_x;
    target.resize(num_filters * outputs, n);
    let img_pixels = img_size * img_size;
    let src = images.data();
    let out = SharedOut::new(target.data_mut());
    let win = windows(start_x, subs_x, stride_x, outputs_x, img_size);
    // One task per (filter, output row).
    for_each_task(num_filters * outputs_x, |t| {
        let (f, oy) = (t / outputs_x, t % outputs_x);
        let (y0, y1) = win[oy];
        // SAFETY: output row t (outputs_x pixels of n images) belongs to task t only.
        let row = unsafe { out.slice(t * outputs_x * n, outputs_x * n) };
        for (ox, dst) in row.chunks_exact_mut(n.max(1)).enumerate() {
            let (x0, x1) = win[ox];
            let first = (t * outputs_x + ox) * n;
            let window = || {
                (y0..y1).flat_map(move |y| {
                    (x0..x1).map(move |x| (f * img_pixels + y * img_size + x) * n)
                })
            };
            for (i, d) in dst.iter_mut().enumerate() {
                let k = (first + i) as u64;
                let u = SplitMix64::new(seed.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
                    .uniform(0.0, 1.0);
                let total = window()
                    .map(|p| src[p + i])
                    .filter(|&v| v > 0.0)
                    .fold(0.0f32, |s, v| s + v);
                *d = if total > 0.0 {
                    let r = u * total;
                    let mut cum = 0.0f32;
                    let mut last = 0.0f32;
                    let mut pick = None;
                    for v in window().map(|p| src[p + i]).filter(|&v| v > 0.0) {
                        cum += v;
                        last = v;
                        if r < cum {
                            pick = Some(v);
                            break;
                        }
                    }
                    pick.unwrap_or(last)
                } else {
                    window().fold(MAX_POOLER_BASE, |a, p| fmaxf(a, src[p + i]))
                };
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmaxf_is_ptx_max() {
        assert_eq!(fmaxf(0.0, -0.0).to_bits(), 0);
        assert_eq!(fmaxf(-0.0, 0.0).to_bits(), 0);
        assert_eq!(fmaxf(-0.0, -0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(fmaxf(f32::NAN, 1.0), 1.0);
        assert_eq!(fmaxf(1.0, f32::NAN), 1.0);
        assert_eq!(fmaxf(f32::NAN, f32::NAN).to_bits(), 0x7FFF_FFFF);
        assert_eq!(fmaxf(-3.0, 2.0), 2.0);
        assert_eq!(MAX_POOLER_BASE.to_bits(), 0xFF16_7699);
        let specials = [
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            MAX_POOLER_BASE,
        ];
        for a in specials.into_iter().filter(|a| !a.is_nan()) {
            for b in specials {
                assert_eq!(
                    MaxPooler.accumulate(a, b).to_bits(),
                    MaxPooler.aggregate(a, b).to_bits(),
                    "{a} {b}"
                );
            }
        }
        assert_eq!(MAX_POOLER_BASE, -2e38f64 as f32);
    }

    #[test]
    fn covering_matches_a_scan() {
        for (start, subs, stride, outs) in
            [(0i64, 3, 2, 16), (-1, 3, 2, 5), (2, 4, 1, 6), (-2, 5, 3, 4)]
        {
            for p in 0..40usize {
                let want: Vec<usize> = (0..outs)
                    .filter(|&o| {
                        let s = start + (o * stride) as i64;
                        (p as i64) >= s && (p as i64) < s + subs as i64
                    })
                    .collect();
                let got = covering(p, start, subs, stride, outs)
                    .map_or(vec![], |(a, b)| (a..b).collect());
                assert_eq!(got, want, "p {p} start {start} subs {subs} stride {stride}");
            }
        }
    }
}
