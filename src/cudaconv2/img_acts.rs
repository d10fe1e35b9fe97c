//! Port of cudaconv2/img_acts.cu: `convImgActs`, `localImgActs`, `convImgActsSparse`,
//! `localImgActsSparse` (declared in cudaconv2.cuh), their host dispatch `_imgActs` /
//! `_imgActsSparse`, and the kernels `img_acts_color`, `img_acts_mediumcolor`,
//! `conv_img_acts_manycolor`, `img_acts_mediumcolor_sparse_rand` and
//! `img_acts_manycolor_sparse_rand`: the gradient of a convolutional (or locally
//! connected) layer with respect to its input images.
//!
//! # What every variant computes
//!
//! For image colour `c'` (filter colour `c` of group `g`), pixel `(y, x)` and image `n`:
//!
//! ```text
//! acc = 0
//! for my ascending, for mx ascending, over the modules whose window contains (y, x):
//!     for f over the filters of group g, ascending (the kernels take them 16 at a time,
//!     in chunks of 16 ascending, which is the same order):
//!         acc = fma(w[(m,) c, (y - top(my))*filterSize + (x - left(mx)), f], hid[f, m, n], acc)
//! target = scaleTargets != 0 ? fma(target, scaleTargets, scaleOutput*acc)   (the "scale" kernels)
//!                            : scaleOutput*acc
//! ```
//!
//! The three dense kernels pick the modules differently but visit the same set in the
//! same order: `conv_img_acts_manycolor` computes the module range exactly for its one
//! pixel; `img_acts_color` and `img_acts_mediumcolor` take the range covering their 4x4
//! pixel region and skip, per pixel, the modules whose window misses it (the skip is
//! exact: no term, not a zero term). Each thread holds one fp32 accumulator per (colour,
//! image) and there is no reduction across threads, so the order above is the whole
//! story. The PTX of the original kernels (nvcc 13, `-arch=sm_75`, default `-fmad=true`)
//! has one `fma.rn.f32` per term, and for the final write `mul.f32 p, acc, scaleOutput;
//! fma.rn.f32 t', t, scaleTargets, p`: the product with the target is the fused one,
//! `scaleOutput*acc` is rounded first. The non-scale write is one `mul.f32`.
//!
//! # CPU layout
//!
//! Per call, `hidActs` is copied into `[module][image block of 16][filter][16 images]`
//! (zero past `numImages`) and the filters into `[(module,)][filter pixel][group][colour
//! block][filter][colour of the block]`, so that the inner loop streams contiguous memory
//! (in the original layouts consecutive filters of one module are `numModules*numImages`
//! floats apart). The copies live in buffers kept by the calling thread between calls.
//! Tasks are (block of 16 images, pixel, up to 16 blocks of up to 4 colours of one
//! group; with AVX-512 blocks of 32 images and of up to 8 colours), in that order so
//! that one image block's hidActs around the current pixel row stay in L2. A task walks
//! the pixel's modules a few at a time (row by row, columns ascending); for each colour
//! block it runs those modules' filters with 4 colours x 16 images (8 x 32) of
//! accumulators in registers, the images being SIMD lanes that all run the same
//! operation sequence. Every output element is computed entirely inside one task, in
//! the order above, so the bits do not depend on the thread count, the lane width or
//! the blocking.

// The host code's divisibility tests keep the original's `a % b == 0` form.
#![allow(clippy::manual_is_multiple_of)]

use super::lanes::{self, F32x8 as V8, Simd};
use super::{divup, require, MatShape, ShapeError};
use crate::nvmatrix::NvMatrix;
use crate::parallel::{for_each_task, SharedOut};

/// Images per task with eight-lane vectors (two of them).
const LANES: usize = 16;
/// Images per task with AVX-512 (two vectors of sixteen); the accumulators' width.
const MAX_LANES: usize = 32;

/// Images per task with these vectors.
fn block_lanes(simd: Simd) -> usize {
    match simd {
        Simd::Avx2 => LANES,
        Simd::Avx512 => MAX_LANES,
    }
}
/// Most colours per colour block: the register block is 4 colours x 2 vectors of 8
/// images (8 accumulators; with 6 colours LLVM hoists the broadcasts and spills), or
/// with AVX-512 8 colours x 1 vector of 16.
const COLOR_BLOCK: usize = 8;

/// The most colours per block with these vectors.
fn color_block(simd: Simd) -> usize {
    match simd {
        Simd::Avx2 => 4,
        Simd::Avx512 => COLOR_BLOCK,
    }
}

/// Splits a group's `n` filter colours into consecutive blocks of at most `max`, as
/// even as possible: `(first colour, count)`.
fn color_blocks(n: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let blocks = divup(n, max);
    let (base, extra) = (
        n.checked_div(blocks).unwrap_or(0),
        n.checked_rem(blocks).unwrap_or(0),
    );
    (0..blocks).map(move |b| (b * base + b.min(extra), base + usize::from(b < extra)))
}

/// Which kernel template of img_acts.cu the original host code launches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImgActsKernel {
    /// `img_acts_color<imgsPerThread, numColors, ...>` (`numFilterColors <= 3`), block 16x16.
    Color {
        /// `numColors` (1, 2 or 3).
        num_colors: usize,
    },
    /// `img_acts_mediumcolor<imgsPerThread, colorsPerThread, ...>` (`numFilterColors > 3`,
    /// not a multiple of 8), block 16x16 over 4x4 pixel regions.
    MediumColor,
    /// `conv_img_acts_manycolor<4, 32, imgsPerThread, colorsPerThread, ...>`
    /// (`numFilterColors % 8 == 0`), one block per pixel.
    ManyColor,
    /// `img_acts_mediumcolor_sparse_rand<imgsPerThread, colorsPerThread, ...>`.
    MediumColorSparseRand,
    /// `img_acts_manycolor_sparse_rand<4, 32, imgsPerThread, colorsPerThread, ...>`.
    ManyColorSparseRand,
}

/// The template arguments `_imgActs` / `_imgActsSparse` choose for a shape. They decide
/// the launch geometry; the per-output operation order is the same for all of them (see
/// the module documentation), except for the region arithmetic of
/// [`ImgActsKernel::MediumColorSparseRand`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImgActsVariant {
    /// The kernel.
    pub kernel: ImgActsKernel,
    /// `threads.x`: images per thread row (16 or 32).
    pub threads_x: usize,
    /// `imgsPerThread`.
    pub imgs_per_thread: usize,
    /// `colorsPerThread` (the colour kernel: `numColors`).
    pub colors_per_thread: usize,
    /// `checkCaseBounds = numImages % (threads.x * imgsPerThread) != 0`.
    pub check_case_bounds: bool,
    /// `scale = scaleTargets != 0`.
    pub scale: bool,
    /// `conv` (shared filters) rather than local.
    pub conv: bool,
}

/// The variant selection of `_imgActs` (`sparse == false`) and `_imgActsSparse`
/// (`sparse == true`, which requires `numFilterColors > 3`).
pub fn img_acts_variant(
    num_images: usize,
    num_filter_colors: usize,
    sparse: bool,
    scale: bool,
    conv: bool,
) -> ImgActsVariant {
    let ipt_of = |a: usize, b: usize, c: usize| {
        if num_images % 128 == 0 {
            a
        } else if num_images % 64 == 0 {
            b
        } else {
            c
        }
    };
    let (kernel, threads_x, imgs_per_thread, colors_per_thread) = if num_filter_colors % 8 == 0 {
        let k = if sparse {
            ImgActsKernel::ManyColorSparseRand
        } else {
            ImgActsKernel::ManyColor
        };
        (
            k,
            32,
            ipt_of(4, 2, 1),
            if num_filter_colors % 16 == 0 { 4 } else { 2 },
        )
    } else if num_filter_colors > 3 {
        let k = if sparse {
            ImgActsKernel::MediumColorSparseRand
        } else {
            ImgActsKernel::MediumColor
        };
        (
            k,
            16,
            ipt_of(8, 4, 2),
            if num_filter_colors % 4 == 0 { 4 } else { 2 },
        )
    } else {
        (
            ImgActsKernel::Color {
                num_colors: num_filter_colors,
            },
            16,
            ipt_of(8, 4, 2),
            num_filter_colors,
        )
    };
    ImgActsVariant {
        kernel,
        threads_x,
        imgs_per_thread,
        colors_per_thread,
        check_case_bounds: num_images % (threads_x * imgs_per_thread) != 0,
        scale,
        conv,
    }
}

/// `convImgActs(hidActs, filters, targets, imgSizeY, imgSizeX, numModulesY, paddingStart,
/// moduleStride, numImgColors, numGroups, scaleTargets, scaleOutput)` (the overload
/// without scales is `scale_targets = 0, scale_output = 1`).
///
/// `hidActs (numFilters*numModules, numImages)`, `filters (numFilterColors*filterPixels,
/// numFilters)`, `targets (numImgColors*imgSizeY*imgSizeX, numImages)`, all row-major.
/// With `scale_targets == 0` the targets are resized and not read; otherwise
/// `targets = scale_targets*targets + scale_output*result` and their size must match.
///
/// Tier: **exact** (the operation sequence of the original kernels; see the module
/// documentation). Bad shapes (the original's host asserts) give `Err`, and so do the
/// zero divisors its host code would crash on and `moduleStride == 0`. Where the
/// original's launch itself fails (no images or no pixels: an empty grid; more than
/// 65535 pixels with `numFilterColors % 8 == 0`: grid `y` too large) we compute anyway.
#[allow(clippy::too_many_arguments)]
pub fn conv_img_acts(
    hid_acts: &NvMatrix,
    filters: &NvMatrix,
    targets: &mut NvMatrix,
    img_size_y: usize,
    img_size_x: usize,
    num_modules_y: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let geo = Geometry {
        img_size_y,
        img_size_x,
        num_modules_y,
        padding_start,
        module_stride,
    };
    img_acts_plan(
        hid_acts.into(),
        filters.into(),
        (&*targets).into(),
        geo,
        num_img_colors,
        num_groups,
        scale_targets,
        scale_output,
        true,
    )?
    .run_cpu(hid_acts, filters, targets);
    Ok(())
}

/// `localImgActs(...)`: as [`conv_img_acts`] with unshared filters
/// `(numModules*numFilterColors*filterPixels, numFilters)`.
///
/// Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn local_img_acts(
    hid_acts: &NvMatrix,
    filters: &NvMatrix,
    targets: &mut NvMatrix,
    img_size_y: usize,
    img_size_x: usize,
    num_modules_y: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let geo = Geometry {
        img_size_y,
        img_size_x,
        num_modules_y,
        padding_start,
        module_stride,
    };
    img_acts_plan(
        hid_acts.into(),
        filters.into(),
        (&*targets).into(),
        geo,
        num_img_colors,
        num_groups,
        scale_targets,
        scale_output,
        false,
    )?
    .run_cpu(hid_acts, filters, targets);
    Ok(())
}

/// `convImgActsSparse(hidActs, filters, targets, dColorIndices, imgSizeY, imgSizeX,
/// numModulesY, paddingStart, moduleStride, numImgColors, numFilterColors, numGroups,
/// scaleTargets, scaleOutput)`: random sparse connectivity. Filter colour `c` of group
/// `g` is image colour `color_indices[g*numFilterColors + c]`. The targets are
/// `(overSample*numImgColors*imgPixels, numImages)` with `overSample =
/// numFilterColors*numGroups/numImgColors`: slice `s` receives the gradient through
/// groups `s*groupsPerSample ..` (the caller sums the slices).
///
/// `color_indices` must hold, for every slice the kernel writes, each image colour at
/// most once (the layer's random connections are a permutation of the colours per
/// slice): the original's blocks would otherwise race on one target element. Indices
/// outside `0..numImgColors` would make it write outside the targets. Both give `Err`.
///
/// **Quirk (reproduced)**: `img_acts_mediumcolor_sparse_rand` (used when
/// `numFilterColors % 8 != 0`) counts the 4x4 pixel regions of one slice as
/// `DIVUP(imgSizeX,4)²`, i.e. assumes square images, while the host launches
/// `overSample*DIVUP(imgSizeY,4)*DIVUP(imgSizeX,4)` region blocks. When
/// `DIVUP(imgSizeY,4) == DIVUP(imgSizeX,4)` nothing changes. Otherwise we compute what
/// that grid computes: the kernel's `overSample' = gridDim.y / DIVUP(imgSizeX,4)²` and
/// `groupsPerSample' = numGroups / overSample'`, slice `s` of block row `b` is `b /
/// DIVUP(imgSizeX,4)²`, its region `b % DIVUP(imgSizeX,4)²`, and the target elements no
/// block writes keep their previous contents (after a `resize` that reallocates: zeros,
/// where the original leaves device memory uninitialised). Where that grid would write
/// outside the targets (`DIVUP(imgSizeY,4) > DIVUP(imgSizeX,4)`), read filters of a
/// group that does not exist, or divide by `overSample' == 0`, the original's behaviour
/// is undefined and we return `Err`. `img_acts_manycolor_sparse_rand` is not affected.
///
/// Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_img_acts_sparse(
    hid_acts: &NvMatrix,
    filters: &NvMatrix,
    targets: &mut NvMatrix,
    color_indices: &[i32],
    img_size_y: usize,
    img_size_x: usize,
    num_modules_y: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_filter_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let geo = Geometry {
        img_size_y,
        img_size_x,
        num_modules_y,
        padding_start,
        module_stride,
    };
    img_acts_sparse_plan(
        hid_acts.into(),
        filters.into(),
        (&*targets).into(),
        color_indices,
        geo,
        num_img_colors,
        num_filter_colors,
        num_groups,
        scale_targets,
        scale_output,
        true,
    )?
    .run_cpu(hid_acts, filters, targets);
    Ok(())
}

/// `localImgActsSparse(...)`: as [`conv_img_acts_sparse`] with unshared filters.
///
/// Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn local_img_acts_sparse(
    hid_acts: &NvMatrix,
    filters: &NvMatrix,
    targets: &mut NvMatrix,
    color_indices: &[i32],
    img_size_y: usize,
    img_size_x: usize,
    num_modules_y: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_filter_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let geo = Geometry {
        img_size_y,
        img_size_x,
        num_modules_y,
        padding_start,
        module_stride,
    };
    img_acts_sparse_plan(
        hid_acts.into(),
        filters.into(),
        (&*targets).into(),
        color_indices,
        geo,
        num_img_colors,
        num_filter_colors,
        num_groups,
        scale_targets,
        scale_output,
        false,
    )?
    .run_cpu(hid_acts, filters, targets);
    Ok(())
}

/// The caller's geometry arguments.
#[derive(Clone, Copy)]
pub(crate) struct Geometry {
    pub img_size_y: usize,
    pub img_size_x: usize,
    pub num_modules_y: usize,
    pub padding_start: i32,
    pub module_stride: usize,
}

/// Sizes derived and checked by the host code (shared part of `_imgActs` and
/// `_imgActsSparse`).
#[derive(Clone, Copy)]
pub(crate) struct Dims {
    pub num_images: usize,
    pub num_filters: usize,
    pub num_modules: usize,
    pub modules_x: usize,
    pub modules_y: usize,
    pub filter_size: usize,
    pub filter_pixels: usize,
    pub img_x: usize,
    pub img_pixels: usize,
    pub padding_start: isize,
    pub stride: usize,
    pub num_filter_colors: usize,
    pub filters_per_group: usize,
    pub conv: bool,
}

/// The derivations and asserts the two host functions share, in the original's terms.
#[allow(clippy::too_many_arguments)]
fn derive_dims(
    function: &'static str,
    hid_acts: MatShape,
    filters: MatShape,
    targets: MatShape,
    geo: Geometry,
    num_filter_colors: usize,
    num_groups: usize,
    conv: bool,
) -> Result<Dims, ShapeError> {
    // Divisions the original performs before its asserts (a zero divisor there is a crash).
    let num_images = hid_acts.cols;
    let num_filters = filters.cols;
    require(num_filters > 0, function, "numFilters > 0")?;
    let num_modules = hid_acts.rows / num_filters;
    let module_mult = if conv { 1 } else { num_modules };
    require(
        module_mult * num_filter_colors > 0,
        function,
        "filterModuleMult * numFilterColors > 0",
    )?;
    let filter_pixels = filters.rows / (module_mult * num_filter_colors);
    let filter_size = (filter_pixels as f64).sqrt() as usize;
    require(geo.num_modules_y > 0, function, "numModulesY > 0")?;
    let modules_x = num_modules / geo.num_modules_y;
    require(
        num_filters % (16 * num_groups) == 0,
        function,
        "numFilters % (16*numGroups) == 0",
    )?;

    require(
        filter_pixels == filter_size * filter_size,
        function,
        "filterPixels == filterSize * filterSize",
    )?;
    require(
        hid_acts.rows == num_modules * num_filters,
        function,
        "hidActs.getNumRows() == numModules * numFilters",
    )?;
    require(
        filters.rows == module_mult * num_filter_colors * filter_pixels,
        function,
        "filters.getNumRows() == filterModuleMult * numFilterColors * filterPixels",
    )?;
    require(
        num_modules == geo.num_modules_y * modules_x,
        function,
        "numModules == numModulesY * numModulesX",
    )?;
    require(!hid_acts.trans, function, "!hidActs.isTrans()")?;
    require(!filters.trans, function, "!filters.isTrans()")?;
    require(!targets.trans, function, "!targets.isTrans()")?;
    let pad = geo.padding_start as i64;
    let (stride, fs) = (geo.module_stride as i64, filter_size as i64);
    require(pad <= 0, function, "paddingStart <= 0")?;
    require(
        pad + (modules_x as i64 - 1) * stride + fs >= geo.img_size_x as i64,
        function,
        "paddingStart + (numModulesX-1)*moduleStride + filterSize >= imgSizeX",
    )?;
    require(
        pad + (geo.num_modules_y as i64 - 1) * stride + fs >= geo.img_size_y as i64,
        function,
        "paddingStart + (numModulesY-1)*moduleStride + filterSize >= imgSizeY",
    )?;
    require(
        geo.module_stride <= filter_size,
        function,
        "moduleStride <= filterSize",
    )?;
    // Not an assert of the original, whose kernels divide by it: a zero stride is a
    // device-side division by zero there.
    require(geo.module_stride > 0, function, "moduleStride > 0")?;
    Ok(Dims {
        num_images,
        num_filters,
        num_modules,
        modules_x,
        modules_y: geo.num_modules_y,
        filter_size,
        filter_pixels,
        img_x: geo.img_size_x,
        img_pixels: geo.img_size_y * geo.img_size_x,
        padding_start: geo.padding_start as isize,
        stride: geo.module_stride,
        num_filter_colors,
        filters_per_group: num_filters / num_groups,
        conv,
    })
}

/// `_imgActs`: the host asserts and the variant's checks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn img_acts_plan(
    hid_acts: MatShape,
    filters: MatShape,
    targets: MatShape,
    geo: Geometry,
    num_img_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
    conv: bool,
) -> Result<ImgActsPlan, ShapeError> {
    let function = if conv { "convImgActs" } else { "localImgActs" };
    require(num_groups > 0, function, "numGroups > 0")?;
    let num_filter_colors = num_img_colors / num_groups;
    require(
        num_img_colors % num_groups == 0,
        function,
        "numImgColors % numGroups == 0",
    )?;
    // (numFilters % (16*numGroups) is checked in derive_dims, after the divisions.)
    require(
        num_groups > 1 || (num_img_colors > 0 && (num_img_colors <= 3 || num_img_colors % 2 == 0)),
        function,
        "numGroups > 1 || (numImgColors > 0 && (numImgColors <= 3 || numImgColors % 2 == 0))",
    )?;
    require(
        num_groups == 1 || num_filter_colors % 4 == 0,
        function,
        "numGroups == 1 || numFilterColors % 4 == 0",
    )?;
    let d = derive_dims(
        function,
        hid_acts,
        filters,
        targets,
        geo,
        num_filter_colors,
        num_groups,
        conv,
    )?;
    let variant = img_acts_variant(
        d.num_images,
        num_filter_colors,
        false,
        scale_targets != 0.0,
        conv,
    );
    if variant.kernel == ImgActsKernel::ManyColor {
        // Always holds (numFilterColors % 8 == 0 and colorsPerThread is 2 or 4 only if
        // % 16 == 0), kept because the original asserts it.
        require(
            num_filter_colors % (4 * variant.colors_per_thread) == 0,
            function,
            "numFilterColors % (threads.y * colorsPerThread) == 0",
        )?;
    }
    let rows = num_img_colors * d.img_pixels;
    if scale_targets != 0.0 {
        require(
            targets.rows == rows,
            function,
            "targets.getNumRows() == numImgColors * imgPixels",
        )?;
        require(
            targets.cols == d.num_images,
            function,
            "targets.getNumCols() == numImages",
        )?;
    }
    // One slice of all groups; output colour = group * numFilterColors + filter colour.
    Ok(ImgActsPlan {
        d,
        num_img_colors,
        rows,
        slices: 1,
        groups_per_slice: num_groups,
        groups_per_sample: 0,
        colors: (0..num_groups * num_filter_colors).collect(),
        regions: None,
        scale_targets,
        scale_output,
    })
}

/// `_imgActsSparse`: the host asserts, the variant's checks and the slices its grid
/// writes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn img_acts_sparse_plan(
    hid_acts: MatShape,
    filters: MatShape,
    targets: MatShape,
    color_indices: &[i32],
    geo: Geometry,
    num_img_colors: usize,
    num_filter_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
    conv: bool,
) -> Result<ImgActsPlan, ShapeError> {
    let function = if conv {
        "convImgActsSparse"
    } else {
        "localImgActsSparse"
    };
    require(num_img_colors > 0, function, "numImgColors > 0")?;
    let over_sample = (num_filter_colors * num_groups) / num_img_colors;
    require(num_filter_colors > 0, function, "numFilterColors > 0")?;
    require(
        num_img_colors % num_filter_colors == 0,
        function,
        "numImgColors % numFilterColors == 0",
    )?;
    require(num_groups > 0, function, "numGroups > 0")?;
    require(
        (num_filter_colors * num_groups) % num_img_colors == 0,
        function,
        "(numFilterColors * numGroups) % numImgColors == 0",
    )?;
    require(num_groups > 1, function, "numGroups > 1")?;
    require(
        num_filter_colors > 3 && num_filter_colors % 2 == 0,
        function,
        "numFilterColors > 3 && numFilterColors % 2 == 0",
    )?;
    let d = derive_dims(
        function,
        hid_acts,
        filters,
        targets,
        geo,
        num_filter_colors,
        num_groups,
        conv,
    )?;
    let variant = img_acts_variant(
        d.num_images,
        num_filter_colors,
        true,
        scale_targets != 0.0,
        conv,
    );
    if variant.kernel == ImgActsKernel::ManyColorSparseRand {
        require(
            num_filter_colors % (4 * variant.colors_per_thread) == 0,
            function,
            "numFilterColors % (threads.y * colorsPerThread) == 0",
        )?;
    }
    let rows = over_sample * num_img_colors * d.img_pixels;
    if scale_targets != 0.0 {
        require(
            targets.rows == rows,
            function,
            "targets.getNumRows() == overSample * numImgColors * imgPixels",
        )?;
        require(
            targets.cols == d.num_images,
            function,
            "targets.getNumCols() == numImages",
        )?;
    }
    // Not asserted by the original, which indexes the device array blindly.
    require(
        color_indices.len() >= num_groups * num_filter_colors,
        function,
        "dColorIndices holds numGroups * numFilterColors entries",
    )?;

    let colors = color_indices[..num_groups * num_filter_colors]
        .iter()
        .map(|&c| c as usize)
        .collect();
    let mut plan = ImgActsPlan {
        d,
        num_img_colors,
        rows,
        slices: 0,
        groups_per_slice: num_img_colors / num_filter_colors, // = numGroups / overSample
        groups_per_sample: 0,
        colors,
        regions: None,
        scale_targets,
        scale_output,
    };
    if d.img_pixels == 0 || d.num_images == 0 {
        return Ok(plan); // nothing to compute (the original's empty grid fails to launch)
    }
    // The slices the kernel's grid writes, with their groups (the region-count quirk of
    // the mediumcolor kernel; see conv_img_acts_sparse).
    let regions = match variant.kernel {
        ImgActsKernel::MediumColorSparseRand => {
            let rx = divup(geo.img_size_x, 4);
            let ry = divup(geo.img_size_y, 4);
            let quirk = RegionQuirk {
                regions_x: rx,
                kernel_regions: rx * rx,
                grid_rows: over_sample * ry * rx,
            };
            Some(quirk)
        }
        _ => None,
    };
    let (slices, groups_per_sample) = match regions {
        None => (over_sample, num_groups / over_sample),
        Some(q) => {
            let kernel_over_sample = q.grid_rows / q.kernel_regions;
            require(
                kernel_over_sample > 0,
                function,
                "DIVUP(imgSizeY,4) == DIVUP(imgSizeX,4) (img_acts_mediumcolor_sparse_rand assumes square images; here its overSample is 0)",
            )?;
            (
                divup(q.grid_rows, q.kernel_regions),
                num_groups / kernel_over_sample,
            )
        }
    };
    require(
        slices <= over_sample,
        function,
        "DIVUP(imgSizeY,4) <= DIVUP(imgSizeX,4) (img_acts_mediumcolor_sparse_rand assumes square images and would write past the targets)",
    )?;
    for s in 0..slices {
        let mut seen = vec![false; num_img_colors];
        for cg in 0..plan.groups_per_slice {
            let g = cg + s * groups_per_sample;
            require(
                g < num_groups,
                function,
                "DIVUP(imgSizeY,4) == DIVUP(imgSizeX,4) (img_acts_mediumcolor_sparse_rand assumes square images and would read a group past numGroups)",
            )?;
            for &ci in &color_indices[g * num_filter_colors..(g + 1) * num_filter_colors] {
                require(
                    ci >= 0 && (ci as usize) < num_img_colors,
                    function,
                    "0 <= dColorIndices[i] < numImgColors",
                )?;
                require(
                    !seen[ci as usize],
                    function,
                    "each image colour at most once per overSample slice in dColorIndices",
                )?;
                seen[ci as usize] = true;
            }
        }
    }
    plan.slices = slices;
    plan.groups_per_sample = groups_per_sample;
    plan.regions = regions;
    Ok(plan)
}

/// A call after the host asserts: what every variant computes (see the module doc).
/// Slice `s` of the targets receives groups `cg + s*groupsPerSample` for `cg <
/// groupsPerSlice`; filter colour `c` of group `g` goes to image colour
/// `colors[g*numFilterColors + c]`. The CPU port runs it ([`Self::run_cpu`]); the CUDA
/// launch (`crate::cuda::launch::conv`) passes it to the `img_acts` kernel.
pub(crate) struct ImgActsPlan {
    pub d: Dims,
    pub num_img_colors: usize,
    /// Target rows: `[overSample *] numImgColors * imgPixels`.
    pub rows: usize,
    /// Target slices computed (the dense forms: 1).
    pub slices: usize,
    pub groups_per_slice: usize,
    pub groups_per_sample: usize,
    pub colors: Vec<usize>,
    /// The region arithmetic of `img_acts_mediumcolor_sparse_rand`, when it is the kernel.
    pub regions: Option<RegionQuirk>,
    pub scale_targets: f32,
    pub scale_output: f32,
}

impl ImgActsPlan {
    /// The colour blocks ([`color_blocks`]) of every group of every slice.
    fn jobs(&self, max: usize) -> Vec<ColorJob> {
        let nfc = self.d.num_filter_colors;
        let mut jobs = Vec::new();
        for slice in 0..self.slices {
            for cg in 0..self.groups_per_slice {
                let group = cg + slice * self.groups_per_sample;
                for (fc0, n) in color_blocks(nfc, max) {
                    let mut out_colors = [0; COLOR_BLOCK];
                    out_colors[..n].copy_from_slice(&self.colors[group * nfc + fc0..][..n]);
                    jobs.push(ColorJob {
                        slice,
                        group,
                        fc0,
                        n,
                        out_colors,
                    });
                }
            }
        }
        jobs
    }

    /// Runs the call on the CPU: resizes `targets` when not scaling, then computes.
    fn run_cpu(&self, hid_acts: &NvMatrix, filters: &NvMatrix, targets: &mut NvMatrix) {
        if self.scale_targets == 0.0 {
            targets.resize(self.rows, self.d.num_images);
        }
        let simd = lanes::simd();
        run(
            hid_acts.data(),
            filters.data(),
            targets,
            &self.d,
            self.num_img_colors,
            (&self.jobs(color_block(simd)), simd),
            self.regions,
            self.scale_targets,
            self.scale_output,
        );
    }
}

/// The block-to-region arithmetic of `img_acts_mediumcolor_sparse_rand`.
#[derive(Clone, Copy)]
pub(crate) struct RegionQuirk {
    /// `numRegionsX = DIVUP(imgSizeX, 4)`.
    pub regions_x: usize,
    /// The kernel's `numRegions = numRegionsX * numRegionsX`.
    pub kernel_regions: usize,
    /// The host's `gridDim.y = overSample * DIVUP(imgSizeY,4) * DIVUP(imgSizeX,4)`.
    pub grid_rows: usize,
}

impl RegionQuirk {
    /// Whether some block of the grid computes pixel `(y, x)` of slice `s`.
    fn visits(&self, s: usize, y: usize, x: usize) -> bool {
        let (ry, rx) = (y / 4, x / 4);
        ry < self.regions_x && s * self.kernel_regions + ry * self.regions_x + rx < self.grid_rows
    }
}

/// A block of up to [`COLOR_BLOCK`] consecutive filter colours `fc0..fc0+n` of group
/// `group`, written to image colours `out_colors` of target slice `slice`.
#[derive(Clone, Copy)]
struct ColorJob {
    slice: usize,
    group: usize,
    fc0: usize,
    n: usize,
    out_colors: [usize; COLOR_BLOCK],
}

/// Colour blocks per task: their accumulators live in a stack array (16 x 8 colours x
/// 16 images = 8 KiB) while the task walks the modules.
const JOBS_PER_TASK: usize = 16;

/// The arguments every task shares.
struct Shared<'a> {
    packed: &'a [f32],
    packed_filters: &'a [f32],
    d: &'a Dims,
    regions: Option<RegionQuirk>,
    out: SharedOut,
    num_img_colors: usize,
    simd: Simd,
    scale_targets: f32,
    scale_output: f32,
}

/// Computes every job over every pixel and image block and writes the targets.
#[allow(clippy::too_many_arguments)]
fn run(
    hid: &[f32],
    filters: &[f32],
    targets: &mut NvMatrix,
    d: &Dims,
    num_img_colors: usize,
    (jobs, simd): (&[ColorJob], Simd),
    regions: Option<RegionQuirk>,
    scale_targets: f32,
    scale_output: f32,
) {
    if d.num_images == 0 || d.img_pixels == 0 || jobs.is_empty() {
        return;
    }
    let lanes = block_lanes(simd);
    let blocks = divup(d.num_images, lanes);
    PACKED.with(|cell| {
        let (packed, packed_filters) = &mut *cell.borrow_mut();
        pack_hid_acts(hid, d, lanes, packed);
        pack_filters(filters, d, color_block(simd), packed_filters);
        let sh = Shared {
            packed,
            packed_filters,
            d,
            regions,
            out: SharedOut::new(targets.data_mut()),
            num_img_colors,
            simd,
            scale_targets,
            scale_output,
        };
        // Conv: tasks in the order (image block, pixel, colour blocks), so that one
        // image block's hidActs of the module rows around the current pixel row and all
        // the (shared) filters stay in L2. Local: (pixel, image block, colour blocks),
        // so that the pixel's modules' own filters are reused by every image block.
        let chunks = divup(jobs.len(), JOBS_PER_TASK);
        let per_block = d.img_pixels * chunks;
        for_each_task(blocks * per_block, |t| {
            let chunk = t % chunks;
            let (nb, p) = if d.conv {
                (t / per_block, (t % per_block) / chunks)
            } else {
                ((t / chunks) % blocks, t / (blocks * chunks))
            };
            let jobs = &jobs[chunk * JOBS_PER_TASK..jobs.len().min((chunk + 1) * JOBS_PER_TASK)];
            pixel_task(&sh, jobs, p / d.img_x, p % d.img_x, nb);
        });
    });
}

type Scratch = (Vec<f32>, Vec<f32>);

thread_local! {
    /// The packed copies of hidActs and of the filters, kept between calls on the
    /// calling thread so that repeated calls (one per minibatch) reuse their pages.
    static PACKED: std::cell::RefCell<Scratch> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// `filters ((numModules,) numFilterColors, filterPixels, numFilters)` copied to
/// `[(module,)][filter pixel][group][colour block][filter of the group][colour of the
/// block]` (blocks of [`color_blocks`]), so that a task's colour block reads one
/// contiguous run per (module, pixel).
fn pack_filters(filters: &[f32], d: &Dims, max: usize, packed: &mut Vec<f32>) {
    let (nfc, fp, nf, nfg) = (
        d.num_filter_colors,
        d.filter_pixels,
        d.num_filters,
        d.filters_per_group,
    );
    let modules = if d.conv { 1 } else { d.num_modules };
    let per_pixel = nf * nfc;
    let len = modules * fp * per_pixel;
    if packed.len() < len {
        *packed = vec![0f32; len];
    }
    let out = SharedOut::new(&mut packed[..len]);
    for_each_task(modules * fp, |t| {
        let (m, pim) = (t / fp, t % fp);
        // SAFETY: task t owns the packed filters of (module, pixel) t.
        let dst = unsafe { out.slice(t * per_pixel, per_pixel) };
        for (fc0, n) in color_blocks(nfc, max) {
            for c in fc0..fc0 + n {
                let src = &filters[((m * nfc + c) * fp + pim) * nf..][..nf];
                for (f, &v) in src.iter().enumerate() {
                    let (g, fl) = (f / nfg, f % nfg);
                    dst[g * nfc * nfg + fc0 * nfg + fl * n + (c - fc0)] = v;
                }
            }
        }
    });
}

/// `hidActs (numFilters, numModules, numImages)` copied to `[module][image block][filter]
/// [lanes]` in `packed` (every element written; images past `numImages` are zero and
/// their results are never written).
fn pack_hid_acts(hid: &[f32], d: &Dims, lanes: usize, packed: &mut Vec<f32>) {
    let blocks = divup(d.num_images, lanes);
    let per_module = blocks * d.num_filters * lanes;
    let len = d.num_modules * per_module;
    if packed.len() < len {
        *packed = vec![0f32; len];
    }
    let out = SharedOut::new(&mut packed[..len]);
    for_each_task(d.num_modules, |m| {
        // SAFETY: task m owns module m's part of the packed copy.
        let dst = unsafe { out.slice(m * per_module, per_module) };
        for f in 0..d.num_filters {
            let row = &hid[(f * d.num_modules + m) * d.num_images..][..d.num_images];
            for nb in 0..blocks {
                let src = &row[nb * lanes..row.len().min((nb + 1) * lanes)];
                let block = &mut dst[(nb * d.num_filters + f) * lanes..][..lanes];
                block[..src.len()].copy_from_slice(src);
                block[src.len()..].fill(0.0);
            }
        }
    });
}

/// One task: the colour blocks `jobs` at pixel `(y, x)` for images `nb*lanes ..`. The
/// modules are the outer loop (each module's hidActs stay in L1 while every colour block
/// uses them); each output still sees its modules, then its filters, in ascending order.
fn pixel_task(sh: &Shared, jobs: &[ColorJob], y: usize, x: usize, nb: usize) {
    let d = sh.d;
    let lanes = block_lanes(sh.simd);
    let blocks = divup(d.num_images, lanes);
    let nf = d.filters_per_group;
    let (my0, my1) = module_range(y, d.padding_start, d.filter_size, d.stride, d.modules_y);
    let (mx0, mx1) = module_range(x, d.padding_start, d.filter_size, d.stride, d.modules_x);
    let mut visit = [true; JOBS_PER_TASK];
    if let Some(q) = sh.regions {
        for (v, job) in visit.iter_mut().zip(jobs) {
            *v = q.visits(job.slice, y, x);
        }
    }
    let mut acc = [[[0f32; MAX_LANES]; COLOR_BLOCK]; JOBS_PER_TASK];
    // A few modules of one row at a time: each colour block runs over them with its
    // accumulators in registers, and their hidActs (about 16 KiB) stay in L1 for the
    // next colour block.
    const ROW: usize = 8;
    let row = (16384 / (nf * lanes * 4)).clamp(1, ROW);
    let mut h_at = [0usize; ROW];
    let mut w_at = [0usize; ROW];
    for my in my0..my1 {
        let py = (y as isize - d.padding_start) as usize - my * d.stride;
        let mut mx = mx0;
        while mx < mx1 {
            let k = row.min(mx1 - mx);
            for (i, (h, w)) in h_at.iter_mut().zip(&mut w_at).take(k).enumerate() {
                let px = (x as isize - d.padding_start) as usize - (mx + i) * d.stride;
                let m = my * d.modules_x + mx + i;
                let module = if d.conv { 0 } else { m };
                *w = (module * d.filter_pixels + py * d.filter_size + px)
                    * d.num_filters
                    * d.num_filter_colors;
                *h = (m * blocks + nb) * d.num_filters * lanes;
            }
            mx += k;
            for (j, job) in jobs.iter().enumerate() {
                if !visit[j] {
                    continue;
                }
                let h_job = job.group * nf * lanes;
                let w_job = (job.group * d.num_filter_colors + job.fc0) * nf;
                let modules = (&h_at[..k], h_job, &w_at[..k], w_job);
                let (a, h, w) = (&mut acc[j], sh.packed, sh.packed_filters);
                match sh.simd {
                    Simd::Avx2 => match job.n {
                        1 => accumulate::<1>(a, h, w, modules, nf),
                        2 => accumulate::<2>(a, h, w, modules, nf),
                        3 => accumulate::<3>(a, h, w, modules, nf),
                        _ => accumulate::<4>(a, h, w, modules, nf),
                    },
                    // SAFETY: `simd()` said the CPU has AVX-512F.
                    Simd::Avx512 => unsafe {
                        match job.n {
                            1 => accumulate_wide::<1>(a, h, w, modules, nf),
                            2 => accumulate_wide::<2>(a, h, w, modules, nf),
                            3 => accumulate_wide::<3>(a, h, w, modules, nf),
                            4 => accumulate_wide::<4>(a, h, w, modules, nf),
                            5 => accumulate_wide::<5>(a, h, w, modules, nf),
                            6 => accumulate_wide::<6>(a, h, w, modules, nf),
                            7 => accumulate_wide::<7>(a, h, w, modules, nf),
                            _ => accumulate_wide::<8>(a, h, w, modules, nf),
                        }
                    },
                }
            }
        }
    }
    let n0 = nb * lanes;
    let valid = lanes.min(d.num_images - n0);
    for (j, job) in jobs.iter().enumerate() {
        if !visit[j] {
            continue;
        }
        for (c, a) in acc[j].iter().enumerate().take(job.n) {
            let row = (job.slice * sh.num_img_colors + job.out_colors[c]) * d.img_pixels
                + y * d.img_x
                + x;
            // SAFETY: this task is the only one writing these images of this (slice,
            // colour, pixel) row: jobs have distinct output colours per slice.
            let t = unsafe { sh.out.slice(row * d.num_images + n0, valid) };
            if sh.scale_targets == 0.0 {
                for (t, &a) in t.iter_mut().zip(a) {
                    *t = sh.scale_output * a;
                }
            } else {
                for (t, &a) in t.iter_mut().zip(a) {
                    *t = t.mul_add(sh.scale_targets, sh.scale_output * a);
                }
            }
        }
    }
}

/// The modules `[start, end)` along one axis whose window contains pixel coordinate `p`
/// (`startY`/`endY` of `conv_img_acts_manycolor`).
#[inline(always)]
fn module_range(
    p: usize,
    padding_start: isize,
    filter_size: usize,
    stride: usize,
    modules: usize,
) -> (usize, usize) {
    let rel = (p as isize - padding_start) as usize; // >= 0: paddingStart <= 0
    let start = if rel < filter_size {
        0
    } else {
        1 + (rel - filter_size) / stride
    };
    let end = modules.min(1 + rel / stride);
    (start, end.max(start))
}

/// For each module `k` in order, `acc[c][i] = fma(w[f*C + c], h[f*LANES + i], acc[c][i])`
/// for f ascending, with `h = packed[h_at[k] + h_job..]` and `w = filters[w_at[k] +
/// w_job..]`: the inner loop, on the first `C` colours of `acc`.
#[inline(always)]
fn accumulate<const C: usize>(
    acc: &mut [[f32; MAX_LANES]; COLOR_BLOCK],
    packed: &[f32],
    filters: &[f32],
    (h_at, h_job, w_at, w_job): (&[usize], usize, &[usize], usize),
    nf: usize,
) {
    const V: usize = LANES / 8;
    // numFiltersPerGroup is a multiple of 16 (asserted); UNROLL filters per iteration.
    const UNROLL: usize = 4;
    assert!(nf % UNROLL == 0);
    let mut a: [[V8; V]; C] =
        std::array::from_fn(|c| std::array::from_fn(|v| V8::load(&acc[c][v * 8..])));
    for (&hk, &wk) in h_at.iter().zip(w_at) {
        let h = &packed[hk + h_job..][..nf * LANES];
        let w = &filters[wk + w_job..][..nf * C];
        for (hs, ws) in h
            .chunks_exact(UNROLL * LANES)
            .zip(w.chunks_exact(UNROLL * C))
        {
            for u in 0..UNROLL {
                let hv: [V8; V] = std::array::from_fn(|v| V8::load(&hs[u * LANES + v * 8..]));
                for c in 0..C {
                    let wv = ws[u * C + c];
                    for v in 0..V {
                        a[c][v] = V8::splat(wv).mul_add(hv[v], a[c][v]);
                    }
                }
            }
        }
    }
    for c in 0..C {
        for v in 0..V {
            a[c][v].store(&mut acc[c][v * 8..]);
        }
    }
}

/// [`accumulate`] with AVX-512: two vectors of 16 images ([`MAX_LANES`]) per colour, up
/// to 8 colours.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn accumulate_wide<const C: usize>(
    acc: &mut [[f32; MAX_LANES]; COLOR_BLOCK],
    packed: &[f32],
    filters: &[f32],
    (h_at, h_job, w_at, w_job): (&[usize], usize, &[usize], usize),
    nf: usize,
) {
    use super::lanes::F32x16 as V16;
    const { assert!(MAX_LANES == 32 && C <= COLOR_BLOCK) };
    let mut a: [[V16; 2]; C] = std::array::from_fn(|c| {
        let p = acc[c].as_ptr();
        [V16::load_ptr(p), V16::load_ptr(p.add(16))]
    });
    for (&hk, &wk) in h_at.iter().zip(w_at) {
        let h = &packed[hk + h_job..][..nf * MAX_LANES];
        let w = &filters[wk + w_job..][..nf * C];
        for (hs, ws) in h.chunks_exact(MAX_LANES).zip(w.chunks_exact(C)) {
            let hv = [
                V16::load_ptr(hs.as_ptr()),
                V16::load_ptr(hs.as_ptr().add(16)),
            ];
            for c in 0..C {
                let wc = V16::splat(ws[c]);
                a[c][0] = wc.mul_add(hv[0], a[c][0]);
                a[c][1] = wc.mul_add(hv[1], a[c][1]);
            }
        }
    }
    for c in 0..C {
        let p = acc[c].as_mut_ptr();
        a[c][0].store_ptr(p);
        a[c][1].store_ptr(p.add(16));
    }
}
