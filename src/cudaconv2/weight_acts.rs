//! Port of cudaconv2/weight_acts.cu (and its declarations in cudaconv2.cuh):
//! `convWeightActs`, `localWeightActs`, `convWeightActsSparse`, `localWeightActsSparse`,
//! the host dispatch `_weightActs` / `_weightActsSparse` and the kernels
//! `conv_weight_acts_c`, `conv_weight_acts_mc_mf` and `conv_weight_acts_mc_mf_rand`.
//!
//! weightActs is the gradient with respect to the filters:
//! `t[g, c, p, f] = Σ_{m in partial-sum group g} Σ_n img[c', y0(m)+py, x0(m)+px, n] *
//! hid[f, m, n]`, with `c'` the image colour of filter colour `c` for the filter's group
//! (`group*numFilterColors + c`, or `colorIndices[group][c]` for the sparse forms),
//! `p = py*filterSize + px`, and pixels outside the image reading 0.
//!
//! # Layouts
//! - `images`: `(numImgColors*imgPixels, numImages)`, row-major (images innermost).
//! - `hidActs`: `(numFilters*numModules, numImages)`, module `m = my*numModulesX + mx`.
//! - `targets`: `((numModules/partialSum)*numFilterColors*filterPixels, numFilters)`:
//!   one partial result per group of `partialSum` consecutive modules (`partialSum == 0`
//!   means all modules, one group). The weight layer, not this kernel, then sums the
//!   `numModules/partialSum` groups (a serial column aggregation, INVENTORY §5.4) into
//!   the filter gradient; local layers call with `partialSum = 1`, i.e. one filter bank
//!   per module, and need no sum.
//!
//! # Numerics (tier: exact)
//! Every output lives in one fp32 register of one GPU thread, starts at `+0` and
//! receives `prod = fma(img, hid, prod)` (nvcc contracts `prod += a*b`; checked in the
//! PTX of the original kernels with nvcc 13 for sm_75) for: the modules of its
//! partial-sum group ascending; for each module, the cases in chunks of
//! `preloadCases = 32` ascending; inside a chunk, its 32 cases ascending. The order is
//! the same in all 72 instantiations the dispatches can pick (the template parameters
//! only change which outputs a thread block owns), so one loop serves them all.
//! Terms that the kernel includes and we include too:
//! - filter pixels outside the image (padding) load image value 0: the term is
//!   `fma(0, hid, prod)`, a no-op except for the sign of zero (and NaN from a
//!   non-finite hidAct);
//! - when `numImages % 32 != 0` (`checkCaseBounds`), the last chunk is still run over
//!   all 32 slots. Its cases past `numImages` load image value 0, and their hidAct
//!   slot in shared memory is not refreshed: it still holds the previous chunk's value
//!   for the same filter and module, `hid[f, m, n - 32]`. When `numImages < 32` there
//!   is no previous chunk and the slot is shared memory this kernel never wrote
//!   (undefined in the original; a NaN/Inf bit pattern left there by another kernel
//!   would poison the output via `0*NaN`). We use `+0` there.
//!
//! The final write is `scaleOutput*prod` when `scaleTargets == 0` (targets resized, not
//! read), else `fma(targets, scaleTargets, scaleOutput*prod)`: nvcc rounds the
//! `scaleOutputs*prod` product and fuses `scaleTargets*targets` into the add
//! (`mul.f32` + `fma.rn.f32` in the PTX of every instantiation checked), i.e.
//! `scale_targets.mul_add(t, scale_output * prod)`.
//!
//! "Exact" is by construction from the source and its PTX; no outputs of the original
//! kernels on a GPU have been compared yet (golden/kernels/README.md, "original").
//!
//! # Original bugs (INVENTORY §4.1, §13)
//! The overloads of `convWeightActsSparse`/`localWeightActsSparse` without the scale
//! arguments pass `scaleTargets = 1, scaleOutput = 0`: they compute nothing and keep
//! the old targets (which must already have the output's size), up to the sign of zero
//! and NaN. Reproduced in [`conv_weight_acts_sparse_short`] and
//! [`local_weight_acts_sparse_short`]; the layers only use the long forms.
//!
//! # Not reproduced
//! The CUDA grid limit (65535 blocks per dimension on the original's sm_20): a launch
//! past it fails at run time in the original (`cutilCheckMsg` exits); we compute it.
//!
//! # CPU implementation
//! The sum runs over cases, so SIMD lanes cannot be cases of one output. Lanes are 8
//! (16 with AVX-512) filters of one (colour, pixel) row instead, each lane running the
//! identical ordered sum; a 12-row x 16-filter register block (a GEMM micro-kernel over
//! the module-then-case dimension, with the hidActs of a few modules transposed to
//! `[case][filter]`; with AVX-512 two such blocks at once) and tasks of (partial-sum
//! group, filter group, row range) spread over threads by
//! [`crate::parallel::for_each_task`]. Results do not depend on the thread count, the
//! lane width or the blocking.

// The original's conditions are written as `%` tests; we keep them that way.
#![allow(clippy::manual_is_multiple_of)]

use super::lanes::{self, F32x8 as F8, Simd};
use super::{divup, require, MatShape, ShapeError};
use crate::nvmatrix::NvMatrix;
use crate::parallel::{for_each_task, SharedOut};
use std::fmt;

/// `preloadCases`: the cases one chunk stages in shared memory.
pub const PRELOAD_CASES: usize = 32;

/// The kernel template `_weightActs` / `_weightActsSparse` pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightActsKernel {
    /// `conv_weight_acts_c<B_Y, B_X, pixelsPerThread, 32, numColors, scale,
    /// checkCaseBounds>`: 1, 2 or 3 colours, one group.
    Color {
        b_y: usize,
        b_x: usize,
        pixels_per_thread: usize,
        num_colors: usize,
    },
    /// `conv_weight_acts_mc_mf<B_Y, B_X, filtersPerThread, colorsPerThread, 32, scale,
    /// checkCaseBounds>` (or `conv_weight_acts_mc_mf_rand` when `rand`, the sparse form).
    ManyColor {
        b_y: usize,
        b_x: usize,
        filters_per_thread: usize,
        colors_per_thread: usize,
        rand: bool,
    },
}

/// One launch of the original: kernel, template flags, grid and block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightActsLaunch {
    /// The template.
    pub kernel: WeightActsKernel,
    /// The `scale` flag (`scaleTargets != 0`).
    pub scale: bool,
    /// `checkCaseBounds` (`numImages % 32 != 0`).
    pub check_case_bounds: bool,
    /// Grid `(x, y)`.
    pub blocks: (usize, usize),
    /// Block `(x, y)` = `(B_X, B_Y)`.
    pub threads: (usize, usize),
}

impl fmt::Display for WeightActsLaunch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kernel {
            WeightActsKernel::Color { b_y, b_x, pixels_per_thread, num_colors } => write!(
                f,
                "conv_weight_acts_c<{b_y},{b_x},{pixels_per_thread},{PRELOAD_CASES},{num_colors},{},{}>",
                self.scale, self.check_case_bounds
            ),
            WeightActsKernel::ManyColor { b_y, b_x, filters_per_thread, colors_per_thread, rand } => write!(
                f,
                "conv_weight_acts_mc_mf{}<{b_y},{b_x},{filters_per_thread},{colors_per_thread},{PRELOAD_CASES},{},{}>",
                if rand { "_rand" } else { "" },
                self.scale,
                self.check_case_bounds
            ),
        }
    }
}

/// The template choice of `_weightActs` (`sparse == false`) or `_weightActsSparse`
/// (`sparse == true`), with `partial_sum` already resolved (0 → `numModules`).
///
/// More than 3 filter colours (always when sparse): `(B_Y, B_X, filtersPerThread) =
/// (4, 32, 2)` if `numFiltersPerGroup % 64 == 0`, `(8, 16, 2)` if `% 32 == 0`, else
/// `(8, 16, 1)`; `colorsPerThread = 8` if `numFilterColors % 8 == 0` else 4. Otherwise
/// (1-3 colours): `(4, 32, pixelsPerThread = 8 for 1 colour, else 5)` if
/// `numFilters % 32 == 0`, else `(8, 16, 5 for 1 colour, else 2)`.
#[allow(clippy::too_many_arguments)]
pub fn weight_acts_launch(
    num_filter_colors: usize,
    num_filters: usize,
    num_groups: usize,
    num_images: usize,
    num_modules: usize,
    partial_sum: usize,
    filter_pixels: usize,
    scale: bool,
    sparse: bool,
) -> WeightActsLaunch {
    let per_group = num_filters / num_groups.max(1);
    let out_groups = num_modules / partial_sum.max(1);
    let (kernel, blocks, threads) = if sparse || num_filter_colors > 3 {
        let fpt = if per_group % 32 == 0 { 2 } else { 1 };
        let cpt = if num_filter_colors % 8 == 0 { 8 } else { 4 };
        let (by, bx) = if per_group % 64 == 0 {
            (4, 32)
        } else {
            (8, 16)
        };
        let k = WeightActsKernel::ManyColor {
            b_y: by,
            b_x: bx,
            filters_per_thread: fpt,
            colors_per_thread: cpt,
            rand: sparse,
        };
        (
            k,
            (
                out_groups * (num_filters / (bx * fpt)),
                divup(filter_pixels, by) * (num_filter_colors / cpt),
            ),
            (bx, by),
        )
    } else {
        let wide = num_filters % 32 == 0;
        let ppt = match (wide, num_filter_colors == 1) {
            (true, true) => 8,
            (true, false) => 5,
            (false, true) => 5,
            (false, false) => 2,
        };
        let (by, bx) = if wide { (4, 32) } else { (8, 16) };
        let k = WeightActsKernel::Color {
            b_y: by,
            b_x: bx,
            pixels_per_thread: ppt,
            num_colors: num_filter_colors,
        };
        (
            k,
            (
                out_groups * (num_filters / bx),
                divup(filter_pixels, by * ppt),
            ),
            (bx, by),
        )
    };
    WeightActsLaunch {
        kernel,
        scale,
        check_case_bounds: num_images % PRELOAD_CASES != 0,
        blocks,
        threads,
    }
}

/// `convWeightActs(images, hidActs, targets, imgSizeY, numModulesY, numModulesX,
/// filterSize, paddingStart, moduleStride, numImgColors, numGroups, partialSum,
/// scaleTargets, scaleOutput)`; the overload without scale arguments is
/// `scale_targets = 0, scale_output = 1`. `partial_sum == 0` means `numModules`.
/// Tier: exact (see the module documentation for the operation sequence).
#[allow(clippy::too_many_arguments)]
pub fn conv_weight_acts(
    images: &NvMatrix,
    hid_acts: &NvMatrix,
    targets: &mut NvMatrix,
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    filter_size: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_groups: usize,
    partial_sum: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let a = Args {
        img_size_y,
        num_modules_y,
        num_modules_x,
        filter_size,
        padding_start,
        module_stride,
        num_img_colors,
    };
    weight_acts_plan(
        images.into(),
        hid_acts.into(),
        (&*targets).into(),
        &a,
        Colours::Grouped { num_groups },
        partial_sum,
        scale_targets,
        scale_output,
        "convWeightActs",
    )?
    .run_cpu(images, hid_acts, targets);
    Ok(())
}

/// `localWeightActs(images, hidActs, targets, imgSizeY, numModulesY, numModulesX,
/// filterSize, paddingStart, moduleStride, numImgColors, numGroups, scaleTargets,
/// scaleOutput)`: [`conv_weight_acts`] with `partialSum = 1` (one filter bank per
/// module). Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn local_weight_acts(
    images: &NvMatrix,
    hid_acts: &NvMatrix,
    targets: &mut NvMatrix,
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    filter_size: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let a = Args {
        img_size_y,
        num_modules_y,
        num_modules_x,
        filter_size,
        padding_start,
        module_stride,
        num_img_colors,
    };
    weight_acts_plan(
        images.into(),
        hid_acts.into(),
        (&*targets).into(),
        &a,
        Colours::Grouped { num_groups },
        1,
        scale_targets,
        scale_output,
        "localWeightActs",
    )?
    .run_cpu(images, hid_acts, targets);
    Ok(())
}

/// `convWeightActsSparse(images, hidActs, targets, dColorIndices, imgSizeY,
/// numModulesY, numModulesX, filterSize, paddingStart, moduleStride, numImgColors,
/// numFilterColors, numGroups, partialSum, scaleTargets, scaleOutput)`: random sparse
/// connectivity; filter colour `c` of group `g` reads image colour
/// `color_indices[g*numFilterColors + c]` (the `(numGroups, numFilterColors)` device
/// array of the original). Kernel `conv_weight_acts_mc_mf_rand`. Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn conv_weight_acts_sparse(
    images: &NvMatrix,
    hid_acts: &NvMatrix,
    targets: &mut NvMatrix,
    color_indices: &[i32],
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    filter_size: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_filter_colors: usize,
    num_groups: usize,
    partial_sum: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let a = Args {
        img_size_y,
        num_modules_y,
        num_modules_x,
        filter_size,
        padding_start,
        module_stride,
        num_img_colors,
    };
    let c = Colours::Sparse {
        indices: color_indices,
        num_filter_colors,
        num_groups,
    };
    weight_acts_plan(
        images.into(),
        hid_acts.into(),
        (&*targets).into(),
        &a,
        c,
        partial_sum,
        scale_targets,
        scale_output,
        "convWeightActsSparse",
    )?
    .run_cpu(images, hid_acts, targets);
    Ok(())
}

/// `localWeightActsSparse(...)` with scale arguments: [`conv_weight_acts_sparse`] with
/// `partialSum = 1`. Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn local_weight_acts_sparse(
    images: &NvMatrix,
    hid_acts: &NvMatrix,
    targets: &mut NvMatrix,
    color_indices: &[i32],
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    filter_size: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_filter_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let a = Args {
        img_size_y,
        num_modules_y,
        num_modules_x,
        filter_size,
        padding_start,
        module_stride,
        num_img_colors,
    };
    let c = Colours::Sparse {
        indices: color_indices,
        num_filter_colors,
        num_groups,
    };
    weight_acts_plan(
        images.into(),
        hid_acts.into(),
        (&*targets).into(),
        &a,
        c,
        1,
        scale_targets,
        scale_output,
        "localWeightActsSparse",
    )?
    .run_cpu(images, hid_acts, targets);
    Ok(())
}

/// The original's short overload `convWeightActsSparse(images, hidActs, targets,
/// dColorIndices, imgSizeY, numModulesY, numModulesX, filterSize, paddingStart,
/// moduleStride, numImgColors, numFilterColors, numGroups)`. **BUG reproduced**
/// (INVENTORY §4.1, §13): it passes `partialSum = 0, scaleTargets = 1, scaleOutput = 0`,
/// so it computes the sums and then keeps the old targets (`fma(t, 1, 0*prod)`: equal
/// to `t` except `-0 → +0` and NaN from non-finite sums); `targets` must already have
/// the output's size, or this returns `Err`.
#[allow(clippy::too_many_arguments)]
pub fn conv_weight_acts_sparse_short(
    images: &NvMatrix,
    hid_acts: &NvMatrix,
    targets: &mut NvMatrix,
    color_indices: &[i32],
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    filter_size: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_filter_colors: usize,
    num_groups: usize,
) -> Result<(), ShapeError> {
    conv_weight_acts_sparse(
        images,
        hid_acts,
        targets,
        color_indices,
        img_size_y,
        num_modules_y,
        num_modules_x,
        filter_size,
        padding_start,
        module_stride,
        num_img_colors,
        num_filter_colors,
        num_groups,
        0,
        1.0,
        0.0,
    )
}

/// The original's short overload `localWeightActsSparse(...)` without scale arguments.
/// **BUG reproduced**: it passes `partialSum = 1, scaleTargets = 1, scaleOutput = 0`;
/// see [`conv_weight_acts_sparse_short`].
#[allow(clippy::too_many_arguments)]
pub fn local_weight_acts_sparse_short(
    images: &NvMatrix,
    hid_acts: &NvMatrix,
    targets: &mut NvMatrix,
    color_indices: &[i32],
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    filter_size: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_filter_colors: usize,
    num_groups: usize,
) -> Result<(), ShapeError> {
    local_weight_acts_sparse(
        images,
        hid_acts,
        targets,
        color_indices,
        img_size_y,
        num_modules_y,
        num_modules_x,
        filter_size,
        padding_start,
        module_stride,
        num_img_colors,
        num_filter_colors,
        num_groups,
        1.0,
        0.0,
    )
}

/// The geometry arguments common to all forms.
pub(crate) struct Args {
    pub img_size_y: usize,
    pub num_modules_y: usize,
    pub num_modules_x: usize,
    pub filter_size: usize,
    pub padding_start: i32,
    pub module_stride: usize,
    pub num_img_colors: usize,
}

/// How filter colours map to image colours.
#[derive(Clone, Copy)]
pub(crate) enum Colours<'a> {
    /// `_weightActs`: group `g`'s colours are `g*numFilterColors ..`.
    Grouped { num_groups: usize },
    /// `_weightActsSparse`: `colorIndices[g][c]`.
    Sparse {
        indices: &'a [i32],
        num_filter_colors: usize,
        num_groups: usize,
    },
}

/// `_weightActs` and `_weightActsSparse`: the host asserts (in the original's order,
/// as `Err`) and the call's geometry.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_acts_plan(
    images: MatShape,
    hid_acts: MatShape,
    targets: MatShape,
    a: &Args,
    colours: Colours,
    partial_sum: usize,
    scale_targets: f32,
    scale_output: f32,
    function: &'static str,
) -> Result<WeightActsPlan, ShapeError> {
    let num_img_colors = a.num_img_colors;
    let num_modules = a.num_modules_y * a.num_modules_x;
    // Divisions the original performs before its asserts (a zero divisor crashes it).
    require(num_img_colors > 0, function, "numImgColors > 0")?;
    require(num_modules > 0, function, "numModulesY*numModulesX > 0")?;
    require(a.img_size_y > 0, function, "imgSizeY > 0")?;
    let num_images = images.cols;
    let img_stride = images.cols; // our matrices are contiguous
    let img_pixels = images.rows / num_img_colors;
    let img_size_x = img_pixels / a.img_size_y;
    let num_filters = hid_acts.rows / num_modules;
    let (num_groups, num_filter_colors, sparse) = match colours {
        Colours::Grouped { num_groups } => {
            require(num_groups > 0, function, "numGroups > 0")?;
            let nfc = num_img_colors / num_groups;
            require(
                num_img_colors % num_groups == 0,
                function,
                "numImgColors % numGroups == 0",
            )?;
            require(
                num_filters % (16 * num_groups) == 0,
                function,
                "numFilters % (16*numGroups) == 0",
            )?;
            require(
                num_groups > 1 || (num_img_colors > 0 && (num_img_colors <= 3 || num_img_colors % 4 == 0)),
                function,
                "numGroups > 1 || (numImgColors > 0 && (numImgColors <= 3 || numImgColors % 4 == 0))",
            )?;
            require(
                num_groups == 1 || nfc % 4 == 0,
                function,
                "numGroups == 1 || numFilterColors % 4 == 0",
            )?;
            (num_groups, nfc, false)
        }
        Colours::Sparse {
            num_filter_colors,
            num_groups,
            ..
        } => {
            require(num_groups > 1, function, "numGroups > 1")?;
            require(num_filter_colors > 0, function, "numFilterColors > 0")?;
            require(
                num_img_colors % num_filter_colors == 0,
                function,
                "numImgColors % numFilterColors == 0",
            )?;
            require(
                (num_filter_colors * num_groups) % num_img_colors == 0,
                function,
                "(numFilterColors * numGroups) % numImgColors == 0",
            )?;
            require(
                num_filters % (16 * num_groups) == 0,
                function,
                "numFilters % (16*numGroups) == 0",
            )?;
            require(
                num_filter_colors % 4 == 0,
                function,
                "numFilterColors % 4 == 0",
            )?;
            (num_groups, num_filter_colors, true)
        }
    };
    require(
        a.img_size_y * img_size_x == img_pixels,
        function,
        "imgSizeY * imgSizeX == imgPixels",
    )?;
    require(
        images.rows == img_pixels * num_img_colors,
        function,
        "images.getNumRows() == imgPixels * numImgColors",
    )?;
    let filter_pixels = a.filter_size * a.filter_size;
    let partial_sum = if partial_sum == 0 {
        num_modules
    } else {
        partial_sum
    };
    require(
        num_modules % partial_sum == 0,
        function,
        "numModules % partialSum == 0",
    )?;
    require(
        hid_acts.cols == num_images,
        function,
        "hidActs.getNumCols() == numImages",
    )?;
    require(a.padding_start <= 0, function, "paddingStart <= 0")?;
    let reach = |modules: usize| {
        a.padding_start as i64
            + (modules as i64 - 1) * a.module_stride as i64
            + a.filter_size as i64
    };
    require(
        reach(a.num_modules_x) >= img_size_x as i64,
        function,
        "paddingStart + (numModulesX-1)*moduleStride + filterSize >= imgSizeX",
    )?;
    require(
        reach(a.num_modules_y) >= a.img_size_y as i64,
        function,
        "paddingStart + (numModulesY-1)*moduleStride + filterSize >= imgSizeY",
    )?;
    require(
        a.module_stride <= a.filter_size,
        function,
        "moduleStride <= filterSize",
    )?;
    require(
        num_modules * num_filters == hid_acts.rows,
        function,
        "numModules * numFilters == hidActs.getNumRows()",
    )?;
    require(!images.trans, function, "!images.isTrans()")?;
    require(!hid_acts.trans, function, "!hidActs.isTrans()")?;
    require(!targets.trans, function, "!targets.isTrans()")?;
    if !sparse && num_filter_colors <= 3 {
        require(num_groups == 1, function, "numGroups == 1 (1-3 colours)")?;
    }
    // An empty grid is a failed launch in the original (cutilCheckMsg exits).
    require(
        num_filters > 0 && filter_pixels > 0,
        function,
        "a non-empty grid (numFilters > 0, filterSize > 0)",
    )?;
    let out_rows = (num_modules / partial_sum) * num_filter_colors * filter_pixels;
    let scale = scale_targets != 0.0;
    if scale {
        require(
            targets.rows == out_rows,
            function,
            "targets.getNumRows() == (numModules/partialSum) * numFilterColors*filterPixels",
        )?;
        require(
            targets.cols == num_filters,
            function,
            "targets.getNumCols() == numFilters",
        )?;
    }
    // Image colour of (group, filter colour).
    let colour_of: Vec<usize> = match colours {
        Colours::Grouped { .. } => (0..num_groups * num_filter_colors).collect(),
        Colours::Sparse { indices, .. } => {
            // Ours: the original reads whatever lies past a short or wrong array.
            require(
                indices.len() == num_groups * num_filter_colors,
                function,
                "dColorIndices has numGroups*numFilterColors entries",
            )?;
            require(
                indices
                    .iter()
                    .all(|&i| i >= 0 && (i as usize) < num_img_colors),
                function,
                "0 <= dColorIndices[i] < numImgColors",
            )?;
            indices.iter().map(|&i| i as usize).collect()
        }
    };
    let g = Geometry {
        num_images,
        img_stride,
        img_pixels,
        img_size_y: a.img_size_y,
        img_size_x,
        num_filters,
        num_modules,
        num_modules_x: a.num_modules_x,
        filter_size: a.filter_size,
        padding_start: a.padding_start as i64,
        module_stride: a.module_stride,
        num_filter_colors,
        num_groups,
        partial_sum,
    };
    Ok(WeightActsPlan {
        g,
        colour_of,
        out_rows,
        scale_targets,
        scale_output,
    })
}

/// A call after the host asserts. The CPU port runs it ([`Self::run_cpu`]); the CUDA
/// launch (`crate::cuda::launch::conv`) passes it to the `weight_acts` kernel.
pub(crate) struct WeightActsPlan {
    pub g: Geometry,
    /// Image colour of filter colour `c` of group `g`, at `g*numFilterColors + c`.
    pub colour_of: Vec<usize>,
    /// Target rows: `(numModules/partialSum) * numFilterColors * filterPixels`.
    pub out_rows: usize,
    pub scale_targets: f32,
    pub scale_output: f32,
}

impl WeightActsPlan {
    /// Runs the call on the CPU: resizes `targets` when not scaling, then computes.
    fn run_cpu(&self, images: &NvMatrix, hid_acts: &NvMatrix, targets: &mut NvMatrix) {
        if self.scale_targets == 0.0 {
            targets.resize(self.out_rows, self.g.num_filters);
        }
        run(
            images.data(),
            hid_acts.data(),
            targets.data_mut(),
            &self.g,
            &self.colour_of,
            self.scale_targets,
            self.scale_output,
        );
    }
}

/// Everything the kernel needs to know about the shapes.
pub(crate) struct Geometry {
    pub num_images: usize,
    pub img_stride: usize,
    pub img_pixels: usize,
    pub img_size_y: usize,
    pub img_size_x: usize,
    pub num_filters: usize,
    pub num_modules: usize,
    pub num_modules_x: usize,
    pub filter_size: usize,
    pub padding_start: i64,
    pub module_stride: usize,
    pub num_filter_colors: usize,
    pub num_groups: usize,
    pub partial_sum: usize,
}

/// Rows (filter colour, filter pixel) per register block.
const ROWS: usize = 12;
/// Rows per 8-lane register block: [`block_sum`] runs a block's rows in two halves.
const HALF: usize = ROWS / 2;
/// Filters per register block (two 8-lane vectors); every group has a multiple of 16.
const FILTERS: usize = 16;
/// Target size, in floats, of one task's transposed hidActs (modules x cases x
/// filters of its group); bounds the modules staged at once.
const STAGE_FLOATS: usize = 1 << 16;
/// Below this many (partial-sum group, filter group) pairs, tasks also split rows.
const MIN_TASKS: usize = 32;

/// The kernels' common loop: every output of every variant (see the module doc).
fn run(
    images: &[f32],
    hid: &[f32],
    targets: &mut [f32],
    g: &Geometry,
    colour_of: &[usize],
    st: f32,
    so: f32,
) {
    let n = g.num_images;
    let npad = n.div_ceil(PRELOAD_CASES) * PRELOAD_CASES;
    let fp = g.filter_pixels();
    let rows = g.num_filter_colors * fp;
    let row_blocks = rows.div_ceil(ROWS);
    let per_group = g.num_filters / g.num_groups;
    let fblocks = per_group / FILTERS;
    let out_groups = g.num_modules / g.partial_sum;
    let pairs = out_groups * g.num_groups;
    let chunks = MIN_TASKS.div_ceil(pairs).clamp(1, row_blocks.max(1));
    // Modules staged per pass (their transposed hidActs fit STAGE_FLOATS).
    let stage = (STAGE_FLOATS / (npad * per_group).max(1)).clamp(1, g.partial_sum);
    // Image values read for out-of-image pixels and cases past numImages.
    let zeros = vec![0f32; npad.max(1)];
    let out = SharedOut::new(targets);
    let simd = lanes::simd();
    let taps = taps(g, colour_of);
    for_each_task(pairs * chunks, |task| {
        let (pair, chunk) = (task / chunks, task % chunks);
        let (og, fg) = (pair / g.num_groups, pair % g.num_groups);
        let (rb0, rb1) = (
            row_blocks * chunk / chunks,
            row_blocks * (chunk + 1) / chunks,
        );
        let nrb = rb1 - rb0;
        let mut scratch = SCRATCH.with(|s| s.take());
        let (acc, bt) = scratch.split(
            nrb * fblocks * ROWS * FILTERS,
            fblocks * stage * npad * FILTERS,
        );
        // Image row pointers of one row block for the staged modules.
        let mut ptrs: Vec<[*const f32; ROWS]> = vec![[zeros.as_ptr(); ROWS]; stage];
        let group_taps = &taps[fg * rows..(fg + 1) * rows];
        let block_taps = |rb: usize| &group_taps[rb * ROWS..((rb + 1) * ROWS).min(rows)];
        let m_first = og * g.partial_sum;
        let mut m0 = m_first;
        while m0 < m_first + g.partial_sum {
            let ms = stage.min(m_first + g.partial_sum - m0);
            stage_hid(hid, bt, g, fg, m0, ms, stage, npad);
            for rb in 0..nrb {
                for (j, p) in ptrs.iter_mut().enumerate().take(ms) {
                    *p = row_pointers(images, &zeros, g, block_taps(rb0 + rb), m0 + j);
                }
                let a = &mut acc[rb * fblocks * ROWS * FILTERS..][..fblocks * ROWS * FILTERS];
                let (p, z) = (&ptrs[..ms], zeros.as_ptr());
                // SAFETY (both arms): each pointer of `ptrs` addresses `n` readable floats
                // (an image row or `zeros`), `zeros` has `npad`, and each filter block of
                // `bt` holds `ms` modules of `npad` cases of 16 filters; `simd()` said
                // whether the CPU has AVX-512F.
                match simd {
                    Simd::Avx2 => {
                        for (fb, a) in a.chunks_exact_mut(ROWS * FILTERS).enumerate() {
                            let b = &bt[fb * stage * npad * FILTERS..];
                            unsafe { block_sum(a, p, z, b, n, npad) };
                        }
                    }
                    Simd::Avx512 => {
                        // Two filter blocks at once: 12 rows x 2 vectors of 16 lanes.
                        for (i, a) in a.chunks_mut(2 * ROWS * FILTERS).enumerate() {
                            let b = &bt[2 * i * stage * npad * FILTERS..];
                            let next = stage * npad * FILTERS;
                            unsafe { block_sum_wide(a, p, z, b, next, n, npad) };
                        }
                    }
                }
            }
            m0 += ms;
        }
        // Final write of the task's outputs.
        for rb in 0..nrb {
            for r in 0..ROWS {
                let row = (rb0 + rb) * ROWS + r;
                if row >= rows {
                    break;
                }
                let t_row = (og * g.num_filter_colors * fp + row) * g.num_filters + fg * per_group;
                // SAFETY: the group's filters of output row `row` of partial-sum group
                // `og` belong to this task only.
                let t = unsafe { out.slice(t_row, per_group) };
                for (fb, t) in t.chunks_exact_mut(FILTERS).enumerate() {
                    let a = &acc[((rb * fblocks + fb) * ROWS + r) * FILTERS..][..FILTERS];
                    if st != 0.0 {
                        for (t, &prod) in t.iter_mut().zip(a) {
                            *t = st.mul_add(*t, so * prod);
                        }
                    } else {
                        for (t, &prod) in t.iter_mut().zip(a) {
                            *t = so * prod;
                        }
                    }
                }
            }
        }
        SCRATCH.with(|s| s.set(scratch));
    });
}

/// A task's working memory, kept per thread between tasks (no allocation per task).
#[derive(Default)]
struct Scratch(Vec<f32>);

impl Scratch {
    /// Two buffers: `a` floats of zeros (the accumulators) and `b` floats of anything.
    fn split(&mut self, a: usize, b: usize) -> (&mut [f32], &mut [f32]) {
        if self.0.len() < a + b {
            self.0.resize(a + b, 0.0);
        }
        let (x, y) = self.0.split_at_mut(a);
        x.fill(0.0);
        (x, &mut y[..b])
    }
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
}

impl Geometry {
    fn filter_pixels(&self) -> usize {
        self.filter_size * self.filter_size
    }
}

/// Transposes the hidActs of filter group `fg`, modules `m0..m0+ms`, into
/// `bt[filter block][module - m0][case][16]`, cases `0..npad`: past `numImages` the
/// shared-memory slot the kernel reads still holds the previous chunk's value
/// (`hid[f, m, n-32]`), or, with fewer than 32 cases, memory never written (+0 here).
#[allow(clippy::too_many_arguments)]
fn stage_hid(
    hid: &[f32],
    bt: &mut [f32],
    g: &Geometry,
    fg: usize,
    m0: usize,
    ms: usize,
    stage: usize,
    npad: usize,
) {
    let n = g.num_images;
    let per_group = g.num_filters / g.num_groups;
    for fb in 0..per_group / FILTERS {
        for j in 0..ms {
            let src: [&[f32]; FILTERS] = std::array::from_fn(|lane| {
                let f = fg * per_group + fb * FILTERS + lane;
                &hid[(f * g.num_modules + m0 + j) * n..][..n]
            });
            let dst = &mut bt[(fb * stage + j) * npad * FILTERS..][..npad * FILTERS];
            // Each case's 16 filters in turn: the writes run through `dst` in order,
            // by two 8 x 8 transposes per whole block of 8 cases, then case by case.
            let (cases, pad) = dst.split_at_mut(n * FILTERS);
            let (blocks, rest) = cases.as_chunks_mut::<{ 8 * FILTERS }>();
            for (b, d) in blocks.iter_mut().enumerate() {
                let half = |h: usize| {
                    F8::transpose(std::array::from_fn(|l| F8::load(&src[8 * h + l][8 * b..])))
                };
                let (lo, hi) = (half(0), half(1));
                for (c, d) in d.chunks_exact_mut(FILTERS).enumerate() {
                    lo[c].store(&mut d[..8]);
                    hi[c].store(&mut d[8..]);
                }
            }
            for (c, d) in (8 * blocks.len()..).zip(rest.chunks_exact_mut(FILTERS)) {
                for (v, s) in d.iter_mut().zip(&src) {
                    *v = s[c];
                }
            }
            for (c, d) in (n..).zip(pad.chunks_exact_mut(FILTERS)) {
                for (v, s) in d.iter_mut().zip(&src) {
                    *v = if n > PRELOAD_CASES {
                        s[c - PRELOAD_CASES]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// Where row `(c, p)` (filter colour, filter pixel) of a filter group reads: the first
/// element of its image colour plane and the pixel's offset in the filter window.
#[derive(Clone, Copy)]
struct Tap {
    plane: usize,
    dy: i64,
    dx: i64,
}

/// The [`Tap`] of every row of every filter group: `[group][row]`.
fn taps(g: &Geometry, colour_of: &[usize]) -> Vec<Tap> {
    let fp = g.filter_pixels();
    (0..g.num_groups * g.num_filter_colors * fp)
        .map(|i| {
            let (c, px) = (i / fp, i % fp);
            Tap {
                plane: colour_of[c] * g.img_pixels,
                dy: (px / g.filter_size) as i64,
                dx: (px % g.filter_size) as i64,
            }
        })
        .collect()
}

/// The image rows (cases contiguous) of the rows whose [`Tap`]s are `taps` (at most
/// 12) at module `m`; `zeros` for pixels outside the image and rows past the last.
fn row_pointers(
    images: &[f32],
    zeros: &[f32],
    g: &Geometry,
    taps: &[Tap],
    m: usize,
) -> [*const f32; ROWS] {
    let y0 = g.padding_start + ((m / g.num_modules_x) * g.module_stride) as i64;
    let x0 = g.padding_start + ((m % g.num_modules_x) * g.module_stride) as i64;
    let mut p = [zeros.as_ptr(); ROWS];
    for (ptr, t) in p.iter_mut().zip(taps) {
        let (y, x) = (y0 + t.dy, x0 + t.dx);
        if y >= 0 && (y as usize) < g.img_size_y && x >= 0 && (x as usize) < g.img_size_x {
            let start = (t.plane + y as usize * g.img_size_x + x as usize) * g.img_stride;
            *ptr = images[start..start + g.num_images].as_ptr();
        }
    }
    p
}

/// Adds the staged modules' terms to one 12 x 16 block of accumulators (`acc`,
/// row-major), 6 rows at a time: per module, cases `0..n` from the image rows, then
/// cases `n..npad` with image 0.
///
/// # Safety
/// Each pointer of `ptrs` must address `n` floats, `zeros` `npad` floats, and `b`
/// `ptrs.len() * npad * 16` floats.
unsafe fn block_sum(
    acc: &mut [f32],
    ptrs: &[[*const f32; ROWS]],
    zeros: *const f32,
    b: &[f32],
    n: usize,
    npad: usize,
) {
    assert!(acc.len() == ROWS * FILTERS && b.len() >= ptrs.len() * npad * FILTERS);
    for h in [0, HALF] {
        let at = |r: usize| (h + r) * FILTERS;
        let mut c = [[F8::zero(); 2]; HALF];
        for (r, cr) in c.iter_mut().enumerate() {
            cr[0] = F8::load_ptr(acc.as_ptr().add(at(r)));
            cr[1] = F8::load_ptr(acc.as_ptr().add(at(r) + 8));
        }
        for (j, p) in ptrs.iter().enumerate() {
            let bj = b.as_ptr().add(j * npad * FILTERS);
            micro(&mut c, p[h..h + HALF].try_into().unwrap(), bj, n);
            if npad > n {
                micro(&mut c, &[zeros; HALF], bj.add(n * FILTERS), npad - n);
            }
        }
        for (r, cr) in c.iter().enumerate() {
            cr[0].store_ptr(acc.as_mut_ptr().add(at(r)));
            cr[1].store_ptr(acc.as_mut_ptr().add(at(r) + 8));
        }
    }
}

/// [`block_sum`] with sixteen lanes, for one or two filter blocks (`acc` holds one or
/// two 12 x 16 blocks; the second block's hidActs start `next` floats after `b`): all
/// 12 rows x 2 AVX-512 vectors of accumulators at once.
///
/// # Safety
/// The CPU has AVX-512F; as [`block_sum`], for each block.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn block_sum_wide(
    acc: &mut [f32],
    ptrs: &[[*const f32; ROWS]],
    zeros: *const f32,
    b: &[f32],
    next: usize,
    n: usize,
    npad: usize,
) {
    use super::lanes::F32x16 as F16;
    let blocks = acc.len() / (ROWS * FILTERS);
    assert!((1..=2).contains(&blocks) && acc.len() == blocks * ROWS * FILTERS);
    assert!(b.len() >= (blocks - 1) * next + ptrs.len() * npad * FILTERS);
    let mut c = [[F16::zero(); 2]; ROWS];
    for (r, cr) in c.iter_mut().enumerate() {
        for (k, v) in cr.iter_mut().enumerate().take(blocks) {
            *v = F16::load_ptr(acc.as_ptr().add((k * ROWS + r) * FILTERS));
        }
    }
    let bp = [b.as_ptr(), b.as_ptr().add((blocks - 1) * next)];
    for (j, p) in ptrs.iter().enumerate() {
        let bj = bp.map(|q| q.add(j * npad * FILTERS));
        if blocks == 2 {
            micro_wide::<2>(&mut c, p, bj, n);
        } else {
            micro_wide::<1>(&mut c, p, bj, n);
        }
        if npad > n {
            let bz = bj.map(|q| q.add(n * FILTERS));
            if blocks == 2 {
                micro_wide::<2>(&mut c, &[zeros; ROWS], bz, npad - n);
            } else {
                micro_wide::<1>(&mut c, &[zeros; ROWS], bz, npad - n);
            }
        }
    }
    for (r, cr) in c.iter().enumerate() {
        for (k, v) in cr.iter().enumerate().take(blocks) {
            v.store_ptr(acc.as_mut_ptr().add((k * ROWS + r) * FILTERS));
        }
    }
}

/// [`micro`] with sixteen lanes over `P` filter blocks: `acc[r][p] = fma(a[r][k],
/// b[p][k], acc[r][p])`.
///
/// # Safety
/// The CPU has AVX-512F; `a[r]` addresses `len` floats, each `b[p]` `16*len`.
#[inline(always)]
unsafe fn micro_wide<const P: usize>(
    c: &mut [[super::lanes::F32x16; 2]; ROWS],
    a: &[*const f32; ROWS],
    b: [*const f32; 2],
    len: usize,
) {
    use super::lanes::F32x16 as F16;
    let mut acc = *c;
    for k in 0..len {
        let bv: [F16; P] = std::array::from_fn(|p| F16::load_ptr(b[p].add(k * FILTERS)));
        for r in 0..ROWS {
            let x = F16::splat(*a[r].add(k));
            for p in 0..P {
                acc[r][p] = x.mul_add(bv[p], acc[r][p]);
            }
        }
    }
    *c = acc;
}

/// The register block: for each case `k < len`, `acc[r][v] = fma(a[r][k], b[k][v], acc[r][v])`.
///
/// # Safety
/// `a[r]` must address `len` floats, `b` `16*len` floats.
#[inline(always)]
unsafe fn micro(c: &mut [[F8; 2]; HALF], a: &[*const f32; HALF], b: *const f32, len: usize) {
    let mut acc = *c;
    for k in 0..len {
        let b0 = F8::load_ptr(b.add(k * FILTERS));
        let b1 = F8::load_ptr(b.add(k * FILTERS + 8));
        for r in 0..HALF {
            let x = F8::splat(*a[r].add(k));
            acc[r][0] = x.mul_add(b0, acc[r][0]);
            acc[r][1] = x.mul_add(b1, acc[r][1]);
        }
    }
    *c = acc;
}
