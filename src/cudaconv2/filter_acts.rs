//! Port of cudaconv2/filter_acts.cu (cuda-convnet rev 6627f67) and its declarations in
//! cudaconv2.cuh: `convFilterActs`, `localFilterActs`, `convFilterActsSparse`,
//! `localFilterActsSparse`, their host dispatch `_filterActs` / `_filterActsSparse` and
//! the kernels `filterActs_YxX_color`, `filterActs_YxX_sparse`,
//! `filterActs_YxX_sparse_random` — the forward pass of convolutional (`conv`) and
//! locally connected (`local`) layers.
//!
//! Layouts (INVENTORY §4.0): `images` is `(numImgColors, imgSizeY, imgSizeX, numImages)`
//! as a row-major `(numImgColors*imgPixels, numImages)` matrix; `filters` is
//! `(numFilterColors, filterPixels, numFilters)` (conv) or `(numModules,
//! numFilterColors, filterPixels, numFilters)` (local); `targets` is `(numFilters,
//! numModulesY, numModulesX, numImages)`. Module `(my, mx)` sees the image window whose
//! top-left pixel is `(paddingStart + my*moduleStride, paddingStart + mx*moduleStride)`;
//! pixels outside the image count as 0.
//!
//! # Numerics (tier: exact)
//!
//! Every output is one fp32 accumulator, started at +0, to which the kernel adds
//! `img*w` with `fma.rn.f32` (nvcc contracts `prod += a*b`; checked in the PTX of
//! nvcc 13 for sm_75), in the order its shared-memory staging visits the terms:
//! the filter pixels are staged in chunks of `B_Y = 4`; the colour kernel
//! (`numImgColors <= 3`) adds, per chunk, colour 0's four pixels, then colour 1's, then
//! colour 2's; the sparse kernels (`> 3` colours, `colorCache = 2`) loop over colour
//! pairs `(oc, oc+1)` outside the pixel chunks and add, per chunk, colour `oc`'s four
//! pixels then colour `oc+1`'s. The variant's other template parameters
//! (`imgsPerThread`, `filtersPerThread`, `checkImgBounds`) only change which GPU thread
//! owns which outputs, not any output's operations. The write is
//! `fma(t, scaleTargets, scaleOutput*acc)` (the PTX rounds `scaleOutputs*prod` and fuses
//! the other product) when `scaleTargets != 0`, else `scaleOutput*acc` (target resized,
//! not read).
//!
//! Terms the kernel adds that contribute an exact zero product:
//! - out-of-image (padding) pixels: the image slot holds 0 and the filter its real
//!   weight, so the kernel adds `0*w`;
//! - INVENTORY §13 (reproduced): in the last chunk of a colour group, the filter slots of
//!   pixels `>= filterPixels` hold 0 while the image slots keep what the previous chunk
//!   of the same colour left there (pixel `p - 4` of the same colour, or 0 if that was
//!   padding), so the kernel adds `stale*0`. When `filterSize == 1` there is no previous
//!   chunk and those slots are uninitialised shared memory, whose content no port can
//!   know: we take it as 0 (a NaN there would make the GPU's output NaN).
//!
//! Such a term changes the accumulator only if it is `-0` (to `+0`, unless the product
//! is `-0`) or if the product is NaN (`0*±Inf`, `0*NaN`). We reproduce them exactly, but
//! cheaply: a task adds all of them literally (the "literal" term list, the kernel's own
//! sequence) when a padding term meets a non-finite weight or a stale term a non-finite
//! image value; otherwise it skips them (the "fast" list) and recomputes literally any
//! tile whose accumulator ends at `-0`. This is exact because the accumulators of the
//! two lists can only ever differ by fast `-0` against literal `+0` (adding a zero
//! product turns `-0` into `+0` or keeps the value; a later common term either gives
//! both the same value or keeps that difference), so a fast result other than `-0` is
//! the literal one. NaN payloads are not reproduced (the GPU makes canonical NaNs).
//!
//! # Speed
//!
//! Tasks ([`crate::parallel::for_each_task`]) are (module, group) pairs; each computes
//! all the group's filters for all images. Its term list is run through register tiles
//! of 4 filters × 24 images (three 8-lane vectors; 16 at the end of the batch), or with
//! AVX-512 4 filters × 48 images (three 16-lane vectors; 16 or 32 at the end), every
//! lane performing one output's operation sequence, so results depend on neither the
//! thread count nor the lane width. Image vectors are read in place from the image rows
//! (zero-padded copies only for a last block of images that is not whole vectors); the
//! terms go in chunks of 32 that stay in L1 while every filter block runs over them;
//! filter values are packed per block of 4 filters (for conv, once per call for each
//! window of in-image filter pixels: the modules sharing a window share it). The FMAs
//! are AVX/FMA vector instructions (intrinsics, so that the test profile's opt-level 2
//! also vectorises them).

use super::lanes::{self, F32x8 as V8, Simd};
use super::{require, MatShape, ShapeError};
use crate::nvmatrix::NvMatrix;
use crate::parallel::{for_each_task, SharedOut};
use std::sync::OnceLock;

/// `B_Y`: threads in y of every filterActs block = filter pixels per shared-memory chunk.
const B_Y: usize = 4;
/// `B_X`: threads in x (images per thread row).
const B_X: usize = 32;
/// `colorCache` of the sparse kernels: colours per shared-memory stage.
const COLOR_CACHE: usize = 2;

/// Lanes of one vector of images.
const LANES: usize = 8;
type Lane = [f32; LANES];
/// Filters per register tile.
const TILE_F: usize = 4;
/// Image vectors (of `LANES`) per register tile: 3 with eight-lane vectors, 6 (three
/// of sixteen lanes) with AVX-512.
const TILE_V: usize = 6;

/// One register tile's accumulators: `TILE_F` filters x up to `TILE_V` vectors of images.
type Tile = [[Lane; TILE_V]; TILE_F];
/// Terms per chunk: a chunk's image vectors stay in L1 while every filter block runs
/// over them (16 to 64 measured alike; 256 and more lose 10-15%).
const CHUNK: usize = 32;

/// The kernel template the original host code launches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// `filterActs_YxX_color<..., numColors, ...>` (1, 2 or 3 colours, one group).
    Color(usize),
    /// `filterActs_YxX_sparse<..., colorCache = 2, ...>` (more than 3 colours, grouped or not).
    Sparse,
    /// `filterActs_YxX_sparse_random<..., colorCache = 2, ...>` (colours from `colorIndices`).
    SparseRandom,
}

/// A kernel instantiation: the template arguments `_filterActs` / `_filterActsSparse`
/// pick for a call (`B_Y = 4`, `B_X = 32` always).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variant {
    pub kernel: Kernel,
    /// `imgsPerThread`: 4 if `numImages % 128 == 0`, 2 if `% 64 == 0`, else 1.
    pub imgs_per_thread: usize,
    /// `filtersPerThread`: 8 if the filters per group are a multiple of 32, else 4.
    pub filters_per_thread: usize,
    /// `scale`: `scaleTargets != 0`.
    pub scale: bool,
    /// `checkImgBounds`: `numImages % (32*imgsPerThread) != 0`.
    pub check_img_bounds: bool,
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, colors) = match self.kernel {
            Kernel::Color(c) => ("color", c),
            Kernel::Sparse => ("sparse", COLOR_CACHE),
            Kernel::SparseRandom => ("sparse_random", COLOR_CACHE),
        };
        write!(
            f,
            "filterActs_YxX_{name}<{B_Y}, {B_X}, {}, {}, {colors}, {}, {}>",
            self.imgs_per_thread, self.filters_per_thread, self.scale, self.check_img_bounds
        )
    }
}

/// The instantiation the original launches for these arguments: `random` for
/// `_filterActsSparse`, else `_filterActs` (colour kernel up to 3 colours).
pub fn filter_acts_variant(
    num_images: usize,
    num_img_colors: usize,
    num_filters_per_group: usize,
    scale_targets: f32,
    random: bool,
) -> Variant {
    let imgs_per_thread = if num_images.is_multiple_of(128) {
        4
    } else if num_images.is_multiple_of(64) {
        2
    } else {
        1
    };
    let kernel = if random {
        Kernel::SparseRandom
    } else if num_img_colors <= 3 {
        Kernel::Color(num_img_colors)
    } else {
        Kernel::Sparse
    };
    Variant {
        kernel,
        imgs_per_thread,
        filters_per_thread: if num_filters_per_group.is_multiple_of(32) {
            8
        } else {
            4
        },
        scale: scale_targets != 0.0,
        check_img_bounds: !num_images.is_multiple_of(B_X * imgs_per_thread),
    }
}

/// `convFilterActs(images, filters, targets, imgSizeY, numModulesY, numModulesX,
/// paddingStart, moduleStride, numImgColors, numGroups, scaleTargets, scaleOutput)`:
/// `targets = scaleTargets*targets + scaleOutput*conv(images, filters)` (the short
/// overload is `scale_targets = 0, scale_output = 1`). Tier: exact (see the module doc).
#[allow(clippy::too_many_arguments)]
pub fn conv_filter_acts(
    images: &NvMatrix,
    filters: &NvMatrix,
    targets: &mut NvMatrix,
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    filter_acts_plan(
        "convFilterActs",
        images.into(),
        filters.into(),
        (&*targets).into(),
        img_size_y,
        num_modules_y,
        num_modules_x,
        padding_start,
        module_stride,
        num_img_colors,
        num_groups,
        scale_targets,
        scale_output,
        true,
    )?
    .run_cpu(images, filters, targets);
    Ok(())
}

/// `localFilterActs(...)`: as [`conv_filter_acts`] with one filter bank per module
/// (filters `(numModules, numFilterColors, filterPixels, numFilters)`). Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn local_filter_acts(
    images: &NvMatrix,
    filters: &NvMatrix,
    targets: &mut NvMatrix,
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    filter_acts_plan(
        "localFilterActs",
        images.into(),
        filters.into(),
        (&*targets).into(),
        img_size_y,
        num_modules_y,
        num_modules_x,
        padding_start,
        module_stride,
        num_img_colors,
        num_groups,
        scale_targets,
        scale_output,
        false,
    )?
    .run_cpu(images, filters, targets);
    Ok(())
}

/// `convFilterActsSparse(images, filters, targets, dColorIndices, imgSizeY, numModulesY,
/// numModulesX, paddingStart, moduleStride, numImgColors, numFilterColors, numGroups,
/// scaleTargets, scaleOutput)`: random sparse connectivity; filter colour `c` of group
/// `g` reads image colour `color_indices[g*numFilterColors + c]` (`dColorIndices`,
/// `(numGroups, numFilterColors)`). Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn conv_filter_acts_sparse(
    images: &NvMatrix,
    filters: &NvMatrix,
    targets: &mut NvMatrix,
    color_indices: &[i32],
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_filter_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    filter_acts_sparse_plan(
        "convFilterActsSparse",
        images.into(),
        filters.into(),
        (&*targets).into(),
        color_indices,
        img_size_y,
        num_modules_y,
        num_modules_x,
        padding_start,
        module_stride,
        num_img_colors,
        num_filter_colors,
        num_groups,
        scale_targets,
        scale_output,
        true,
    )?
    .run_cpu(images, filters, targets);
    Ok(())
}

/// `localFilterActsSparse(...)`: [`conv_filter_acts_sparse`] with one filter bank per
/// module. Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn local_filter_acts_sparse(
    images: &NvMatrix,
    filters: &NvMatrix,
    targets: &mut NvMatrix,
    color_indices: &[i32],
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_filter_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    filter_acts_sparse_plan(
        "localFilterActsSparse",
        images.into(),
        filters.into(),
        (&*targets).into(),
        color_indices,
        img_size_y,
        num_modules_y,
        num_modules_x,
        padding_start,
        module_stride,
        num_img_colors,
        num_filter_colors,
        num_groups,
        scale_targets,
        scale_output,
        false,
    )?
    .run_cpu(images, filters, targets);
    Ok(())
}

/// A call after the host asserts: the shapes, the variant's colour grouping and the
/// image colour of every filter colour. The CPU port runs it ([`Launch`]); the CUDA
/// launch (`crate::cuda::launch::conv`) passes it to the `filter_acts` kernel.
pub(crate) struct FilterActsPlan {
    pub num_images: usize,
    pub num_filters: usize,
    pub img_size_y: usize,
    pub img_size_x: usize,
    pub filter_size: usize,
    pub padding_start: i64,
    pub module_stride: usize,
    pub num_modules_y: usize,
    pub num_modules_x: usize,
    pub num_filter_colors: usize,
    pub num_groups: usize,
    /// Colours per shared-memory stage: `numColors` (colour kernel) or `colorCache`.
    pub color_group: usize,
    /// Image colour of filter colour `c` of group `g`, at `g*numFilterColors + c`:
    /// `g*numFilterColors + c` (colour and sparse kernels) or `colorIndices[..]`
    /// (sparse_random kernel).
    pub colors: Vec<usize>,
    pub conv: bool,
    pub scale_targets: f32,
    pub scale_output: f32,
}

impl FilterActsPlan {
    pub(crate) fn num_modules(&self) -> usize {
        self.num_modules_y * self.num_modules_x
    }

    fn filters_per_group(&self) -> usize {
        self.num_filters / self.num_groups
    }

    /// Runs the call on the CPU: resizes `targets` when not scaling, then computes.
    fn run_cpu(&self, images: &NvMatrix, filters: &NvMatrix, targets: &mut NvMatrix) {
        if self.scale_targets == 0.0 {
            targets.resize(self.num_filters * self.num_modules(), self.num_images);
        }
        let launch = Launch {
            plan: self,
            images: images.data(),
            filters: filters.data(),
            img_stride: images.stride(),
            simd: lanes::simd(),
        };
        launch.run(targets.data_mut());
    }
}

/// A plan with its data: what the CPU kernel reads.
struct Launch<'a> {
    plan: &'a FilterActsPlan,
    images: &'a [f32],
    filters: &'a [f32],
    img_stride: usize,
    simd: Simd,
}

impl std::ops::Deref for Launch<'_> {
    type Target = FilterActsPlan;
    fn deref(&self) -> &FilterActsPlan {
        self.plan
    }
}

/// The checks `_filterActs` and `_filterActsSparse` share after their own: filter size,
/// padding coverage, orientation; then the target's size when scaling (the caller
/// resizes it otherwise).
#[allow(clippy::too_many_arguments)]
fn common_asserts(
    function: &'static str,
    images: MatShape,
    filters: MatShape,
    targets: MatShape,
    num_filter_colors: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    img_size_y: usize,
    img_size_x: usize,
    padding_start: i32,
    module_stride: usize,
    filter_module_mult: usize,
    scale_targets: f32,
) -> Result<usize, ShapeError> {
    let num_modules = num_modules_y * num_modules_x;
    require(
        filter_module_mult * num_filter_colors > 0,
        function,
        "numModules > 0 and numFilterColors > 0 (the original divides by them)",
    )?;
    let filter_pixels = filters.rows / (filter_module_mult * num_filter_colors);
    let filter_size = (filter_pixels as f64).sqrt() as usize;
    require(
        filter_size * filter_size == filter_pixels,
        function,
        "filterSize * filterSize == filterPixels",
    )?;
    require(
        filters.rows == filter_module_mult * num_filter_colors * filter_pixels,
        function,
        "filters.getNumRows() == filterModuleMult * numFilterColors * filterPixels",
    )?;
    let (ps, ms, fs) = (
        padding_start as i64,
        module_stride as i64,
        filter_size as i64,
    );
    require(padding_start <= 0, function, "paddingStart <= 0")?;
    require(
        ps + (num_modules_x as i64 - 1) * ms + fs >= img_size_x as i64,
        function,
        "paddingStart + (numModulesX-1)*moduleStride + filterSize >= imgSizeX",
    )?;
    require(
        ps + (num_modules_y as i64 - 1) * ms + fs >= img_size_y as i64,
        function,
        "paddingStart + (numModulesY-1)*moduleStride + filterSize >= imgSizeY",
    )?;
    require(
        module_stride <= filter_size,
        function,
        "moduleStride <= filterSize",
    )?;
    require(!images.trans, function, "!images.isTrans()")?;
    require(!filters.trans, function, "!filters.isTrans()")?;
    require(!targets.trans, function, "!targets.isTrans()")?;
    // filters.isContiguous() and targets.isContiguous(): our matrices always are.
    require(
        num_modules > 0 && images.cols > 0,
        function,
        "numModules > 0 and numImages > 0 (the original's launch of an empty grid fails)",
    )?;
    let num_filters = filters.cols;
    if scale_targets != 0.0 {
        require(
            targets.rows == num_filters * num_modules,
            function,
            "targets.getNumRows() == numFilters * numModules",
        )?;
        require(
            targets.cols == images.cols,
            function,
            "targets.getNumCols() == numImages",
        )?;
    }
    Ok(filter_size)
}

/// `_filterActs`: the host asserts and the choice of the colour (`<= 3` colours) or
/// sparse kernel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn filter_acts_plan(
    function: &'static str,
    images: MatShape,
    filters: MatShape,
    targets: MatShape,
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
    conv: bool,
) -> Result<FilterActsPlan, ShapeError> {
    require(
        num_groups > 0 && num_img_colors > 0 && img_size_y > 0,
        function,
        "numGroups > 0, numImgColors > 0 and imgSizeY > 0 (the original divides by them)",
    )?;
    let num_filter_colors = num_img_colors / num_groups;
    let num_filters = filters.cols;
    let num_modules = num_modules_y * num_modules_x;
    let img_pixels = images.rows / num_img_colors;
    let img_size_x = img_pixels / img_size_y;
    let filter_module_mult = if conv { 1 } else { num_modules };
    require(
        num_groups > 1 || (num_img_colors <= 3 || num_img_colors.is_multiple_of(2)),
        function,
        "numGroups > 1 || (numImgColors > 0 && (numImgColors <= 3 || numImgColors % 2 == 0))",
    )?;
    require(
        num_groups == 1 || num_filter_colors.is_multiple_of(2),
        function,
        "numGroups == 1 || numFilterColors % 2 == 0",
    )?;
    require(
        num_filters.is_multiple_of(16 * num_groups),
        function,
        "numFilters % (16 * numGroups) == 0",
    )?;
    require(
        num_img_colors.is_multiple_of(num_groups),
        function,
        "numImgColors % numGroups == 0",
    )?;
    require(
        images.rows == img_pixels * num_img_colors,
        function,
        "images.getNumRows() == imgPixels * numImgColors",
    )?;
    require(
        img_size_y * img_size_x == img_pixels,
        function,
        "imgSizeY * imgSizeX == imgPixels",
    )?;
    let filter_size = common_asserts(
        function,
        images,
        filters,
        targets,
        num_filter_colors,
        num_modules_y,
        num_modules_x,
        img_size_y,
        img_size_x,
        padding_start,
        module_stride,
        filter_module_mult,
        scale_targets,
    )?;
    let variant = filter_acts_variant(
        images.cols,
        num_img_colors,
        num_filters / num_groups,
        scale_targets,
        false,
    );
    let color_group = match variant.kernel {
        Kernel::Color(c) => c,
        _ => COLOR_CACHE,
    };
    Ok(FilterActsPlan {
        num_images: images.cols,
        num_filters,
        img_size_y,
        img_size_x,
        filter_size,
        padding_start: padding_start as i64,
        module_stride,
        num_modules_y,
        num_modules_x,
        num_filter_colors,
        num_groups,
        color_group,
        colors: (0..num_groups * num_filter_colors).collect(),
        conv,
        scale_targets,
        scale_output,
    })
}

/// `_filterActsSparse`: the host asserts of the sparse_random kernel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn filter_acts_sparse_plan(
    function: &'static str,
    images: MatShape,
    filters: MatShape,
    targets: MatShape,
    color_indices: &[i32],
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_filter_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
    conv: bool,
) -> Result<FilterActsPlan, ShapeError> {
    require(
        num_img_colors > 0 && num_filter_colors > 0 && img_size_y > 0,
        function,
        "numImgColors > 0, numFilterColors > 0 and imgSizeY > 0 (the original divides by them)",
    )?;
    let num_filters = filters.cols;
    let num_modules = num_modules_y * num_modules_x;
    let img_pixels = images.rows / num_img_colors;
    let img_size_x = img_pixels / img_size_y;
    let filter_module_mult = if conv { 1 } else { num_modules };
    require(num_groups > 1, function, "numGroups > 1")?;
    require(
        num_img_colors.is_multiple_of(num_filter_colors),
        function,
        "numImgColors % numFilterColors == 0",
    )?;
    require(
        (num_filter_colors * num_groups).is_multiple_of(num_img_colors),
        function,
        "(numFilterColors * numGroups) % numImgColors == 0",
    )?;
    require(
        num_filters.is_multiple_of(16 * num_groups),
        function,
        "numFilters % (16 * numGroups) == 0",
    )?;
    require(
        num_filter_colors.is_multiple_of(2),
        function,
        "numFilterColors % 2 == 0",
    )?;
    require(
        img_size_y * img_size_x == img_pixels,
        function,
        "imgSizeY * imgSizeX == imgPixels",
    )?;
    require(
        images.rows == img_pixels * num_img_colors,
        function,
        "images.getNumRows() == imgPixels * numImgColors",
    )?;
    // Ours: the original reads whatever dColorIndices points at.
    require(
        color_indices.len() == num_groups * num_filter_colors
            && color_indices
                .iter()
                .all(|&c| c >= 0 && (c as usize) < num_img_colors),
        function,
        "dColorIndices holds numGroups*numFilterColors image colours in [0, numImgColors)",
    )?;
    let filter_size = common_asserts(
        function,
        images,
        filters,
        targets,
        num_filter_colors,
        num_modules_y,
        num_modules_x,
        img_size_y,
        img_size_x,
        padding_start,
        module_stride,
        filter_module_mult,
        scale_targets,
    )?;
    Ok(FilterActsPlan {
        num_images: images.cols,
        num_filters,
        img_size_y,
        img_size_x,
        filter_size,
        padding_start: padding_start as i64,
        module_stride,
        num_modules_y,
        num_modules_x,
        num_filter_colors,
        num_groups,
        color_group: COLOR_CACHE,
        colors: color_indices.iter().map(|&c| c as usize).collect(),
        conv,
        scale_targets,
        scale_output,
    })
}

/// One term of an output's sum: the image row (element offset of the row's first
/// image) and filter row (element offset of the row's first filter) it multiplies;
/// `None` reads 0.
#[derive(Clone, Copy)]
struct Term {
    img: Option<usize>,
    filt: Option<usize>,
}

/// A block of images: the first, the count, and the 8-lane vectors that hold them
/// (past the count, zeros).
#[derive(Clone, Copy)]
struct ImageBlock {
    n0: usize,
    width: usize,
    vecs: usize,
}

/// What an out-of-image (or unstaged) term reads in place of an image row.
static ZERO_ROW: [Lane; TILE_V] = [[0.0; LANES]; TILE_V];

/// True when every value is finite (branch-free, so that it vectorises).
fn all_finite(v: &[f32]) -> bool {
    v.iter().fold(true, |ok, x| ok & x.is_finite())
}

impl Launch<'_> {
    /// Image colour of filter colour `c` in group `g`.
    fn image_color(&self, g: usize, c: usize) -> usize {
        self.colors[g * self.num_filter_colors + c]
    }

    /// The terms of module `m`, group `g` in the kernel's order, zero-product terms
    /// included (padding pixels, and the stale slots past `filterPixels`).
    fn literal_terms(&self, m: usize, g: usize) -> Vec<Term> {
        let (fs, nf) = (self.filter_size, self.num_filters);
        let fp = fs * fs;
        let pixels = self.img_size_y * self.img_size_x;
        let y0 = self.padding_start + ((m / self.num_modules_x) * self.module_stride) as i64;
        let x0 = self.padding_start + ((m % self.num_modules_x) * self.module_stride) as i64;
        // Offset of each filter pixel's image pixel inside a colour plane (None: padding).
        let pixel: Vec<Option<usize>> = (0..fp)
            .map(|pix| {
                let (y, x) = (y0 + (pix / fs) as i64, x0 + (pix % fs) as i64);
                let inside = (0..self.img_size_y as i64).contains(&y)
                    && (0..self.img_size_x as i64).contains(&x);
                inside.then(|| self.img_stride * (y as usize * self.img_size_x + x as usize))
            })
            .collect();
        let base = if self.conv {
            0
        } else {
            m * self.num_filter_colors * fp * nf
        };
        let mut terms = Vec::with_capacity(self.num_filter_colors * fp.next_multiple_of(B_Y));
        for oc in (0..self.num_filter_colors).step_by(self.color_group) {
            for p in (0..fp).step_by(B_Y) {
                for c in oc..oc + self.color_group {
                    let plane = self.img_stride * pixels * self.image_color(g, c);
                    for pix in p..p + B_Y {
                        terms.push(if pix < fp {
                            Term {
                                img: pixel[pix].map(|o| plane + o),
                                filt: Some(base + (c * fp + pix) * nf),
                            }
                        } else {
                            // The slot still holds this colour's pixel of the previous chunk
                            // (uninitialised, taken as 0, when there is none).
                            let img = if p >= B_Y {
                                pixel[pix - B_Y].map(|o| plane + o)
                            } else {
                                None
                            };
                            Term { img, filt: None }
                        });
                    }
                }
            }
        }
        terms
    }

    /// True when a zero-product term for filters `f0..f0+nf` could give NaN (a padding
    /// pixel meets a non-finite weight, or a stale slot holds a non-finite image value),
    /// so that the zero-product terms must be added literally.
    fn needs_literal(&self, terms: &[Term], f0: usize, nf: usize) -> bool {
        terms.iter().any(|t| match *t {
            Term {
                img: None,
                filt: Some(r),
            } => !all_finite(&self.filters[r + f0..r + f0 + nf]),
            Term {
                img: Some(r),
                filt: None,
            } => !all_finite(&self.images[r..r + self.num_images]),
            _ => false,
        })
    }

    /// The filter values of `terms` for filters `f0..f0+nf`, per block of `TILE_F`
    /// filters: `[filter block][term][TILE_F]`.
    fn filter_panel(&self, terms: &[Term], f0: usize, nf: usize, panel: &mut Vec<[f32; TILE_F]>) {
        let k = terms.len();
        panel.clear();
        panel.resize(k * nf / TILE_F, [0.0; TILE_F]);
        for (t, term) in terms.iter().enumerate() {
            if let Some(r) = term.filt {
                let (row, _) = self.filters[r + f0..r + f0 + nf].as_chunks::<TILE_F>();
                for (b, w) in row.iter().enumerate() {
                    panel[b * k + t] = *w;
                }
            }
        }
    }

    /// Runs every task (module, group) and writes `out` (`numFilters x numModules x
    /// numImages`).
    fn run(&self, out: &mut [f32]) {
        let out = SharedOut::new(out);
        let groups = self.num_groups;
        let blocks = image_blocks(self.num_images, self.simd);
        // conv: each module's window, and the filter panel of each (group, window),
        // made by the first task that needs it (local: every module its own).
        let (window, windows) = if self.conv {
            self.windows()
        } else {
            (Vec::new(), 0)
        };
        let panels: Vec<OnceLock<Vec<[f32; TILE_F]>>> =
            (0..groups * windows).map(|_| OnceLock::new()).collect();
        for_each_task(self.num_modules() * groups, |task| {
            let (m, g) = (task / groups, task % groups);
            let panel = window.get(m).map(|&w| &panels[g * windows + w]);
            self.task(m, g, &blocks, panel, out)
        });
    }

    /// Each module's window of in-image filter pixels, numbered, and how many there
    /// are. Modules with the same window add the same filter rows in the same order.
    fn windows(&self) -> (Vec<usize>, usize) {
        let fs = self.filter_size as i64;
        // The in-image filter offsets [lo, hi) along one axis for a window from `start`.
        let clip = |start: i64, size: usize| {
            let lo = (-start).clamp(0, fs);
            (lo, (size as i64 - start).clamp(lo, fs))
        };
        let mut seen: Vec<((i64, i64), (i64, i64))> = Vec::new();
        let window = (0..self.num_modules())
            .map(|m| {
                let at = |i: usize| self.padding_start + (i * self.module_stride) as i64;
                let key = (
                    clip(at(m / self.num_modules_x), self.img_size_y),
                    clip(at(m % self.num_modules_x), self.img_size_x),
                );
                seen.iter().position(|&k| k == key).unwrap_or_else(|| {
                    seen.push(key);
                    seen.len() - 1
                })
            })
            .collect();
        (window, seen.len())
    }

    /// Module `m`, group `g`: all the group's filters for all images. `panel`: the
    /// filter panel of the module's window in the group (conv), made here if no task
    /// has made it yet.
    fn task(
        &self,
        m: usize,
        g: usize,
        blocks: &[ImageBlock],
        panel: Option<&OnceLock<Vec<[f32; TILE_F]>>>,
        out: SharedOut,
    ) {
        let nfg = self.filters_per_group();
        let f0 = g * nfg;
        let literal_terms = self.literal_terms(m, g);
        let literal = self.needs_literal(&literal_terms, f0, nfg);
        let fast: Vec<Term> = if literal {
            literal_terms.clone()
        } else {
            literal_terms
                .iter()
                .copied()
                .filter(|t| t.img.is_some() && t.filt.is_some())
                .collect()
        };
        let make = |terms: &[Term]| {
            let mut p = Vec::new();
            self.filter_panel(terms, f0, nfg, &mut p);
            p
        };
        let own;
        let filt = match panel {
            Some(p) if !literal => p.get_or_init(|| make(&fast)),
            _ => {
                own = make(&fast);
                &own
            }
        };
        let mut exact_filt = Vec::new();
        let mut acc = vec![[[[0.0; LANES]; TILE_V]; TILE_F]; nfg / TILE_F];
        let mut scratch = Vec::new();
        for blk in blocks {
            self.accumulate(&fast, filt, blk, 0, &mut acc, &mut scratch);
            for (b, acc) in acc.iter_mut().enumerate() {
                if !literal && has_negative_zero(acc, blk.width) {
                    // A skipped zero-product term could have turned this -0 into +0.
                    if exact_filt.is_empty() {
                        self.filter_panel(&literal_terms, f0, nfg, &mut exact_filt);
                    }
                    let one = std::slice::from_mut(acc);
                    self.accumulate(&literal_terms, &exact_filt, blk, b, one, &mut scratch);
                }
                self.write(acc, f0 + b * TILE_F, m, blk.n0, blk.width, out);
            }
        }
    }

    /// Sums `terms` for image block `blk` into the tiles of filter blocks
    /// `b0..b0+acc.len()` (from +0, whatever they held), in term order, with `filt`
    /// from [`Self::filter_panel`].
    fn accumulate(
        &self,
        terms: &[Term],
        filt: &[[f32; TILE_F]],
        blk: &ImageBlock,
        b0: usize,
        acc: &mut [Tile],
        scratch: &mut Vec<Lane>,
    ) {
        if terms.is_empty() {
            acc.fill([[[0.0; LANES]; TILE_V]; TILE_F]);
        }
        match blk.vecs {
            1 => self.accumulate_v::<1>(terms, filt, blk, b0, acc, scratch),
            2 => self.accumulate_v::<2>(terms, filt, blk, b0, acc, scratch),
            3 => self.accumulate_v::<3>(terms, filt, blk, b0, acc, scratch),
            4 => self.accumulate_v::<4>(terms, filt, blk, b0, acc, scratch),
            _ => self.accumulate_v::<TILE_V>(terms, filt, blk, b0, acc, scratch),
        }
    }

    /// [`Self::accumulate`] for a block of `V` vectors. The terms go in chunks of
    /// `CHUNK` whose image vectors stay in L1 while every filter block runs over them;
    /// the vectors are read in place, or from zero-padded copies in `scratch` when the
    /// block is not whole vectors.
    fn accumulate_v<const V: usize>(
        &self,
        terms: &[Term],
        filt: &[[f32; TILE_F]],
        blk: &ImageBlock,
        b0: usize,
        acc: &mut [Tile],
        scratch: &mut Vec<Lane>,
    ) {
        let k = terms.len();
        let zero: &[Lane; V] = ZERO_ROW[..V].try_into().unwrap();
        let n0 = blk.n0;
        if blk.width < V * LANES {
            scratch.clear();
            scratch.resize(k * V, [0.0; LANES]);
            for (x, t) in scratch.chunks_exact_mut(V).zip(terms) {
                if let Some(r) = t.img {
                    x.as_flattened_mut()[..blk.width]
                        .copy_from_slice(&self.images[r + n0..r + n0 + blk.width]);
                }
            }
        }
        let rows: Vec<&[Lane; V]> = if blk.width < V * LANES {
            scratch.as_chunks::<V>().0.iter().collect()
        } else {
            let row = |r: usize| {
                self.images[r + n0..r + n0 + V * LANES]
                    .as_chunks::<LANES>()
                    .0
                    .try_into()
                    .unwrap()
            };
            terms.iter().map(|t| t.img.map_or(zero, row)).collect()
        };
        for c0 in (0..k).step_by(CHUNK) {
            let c1 = (c0 + CHUNK).min(k);
            let rows = &rows[c0..c1];
            let filt = |b: usize| &filt[(b0 + b) * k + c0..(b0 + b) * k + c1];
            match self.simd {
                Simd::Avx2 => {
                    for (b, acc) in acc.iter_mut().enumerate() {
                        tile::<V>(rows, filt(b), acc, c0 == 0);
                    }
                }
                // Two filter blocks at once (24 accumulators of 16 lanes).
                // SAFETY: `simd()` said the CPU has AVX-512F.
                Simd::Avx512 => unsafe {
                    for (i, pair) in acc.chunks_mut(2).enumerate() {
                        match pair {
                            [a, b] => tile_wide::<V, 2>(
                                rows,
                                [filt(2 * i), filt(2 * i + 1)],
                                [a, b],
                                c0 == 0,
                            ),
                            [a] => tile_wide::<V, 1>(rows, [filt(2 * i)], [a], c0 == 0),
                            _ => unreachable!("chunks of 1 or 2"),
                        }
                    }
                },
            }
        }
    }

    /// Writes a tile's accumulators for filters `f..f+TILE_F`, module `m`, images
    /// `n0..n0+width`: `fma(t, scaleTargets, scaleOutput*acc)` or `scaleOutput*acc`.
    fn write(&self, acc: &Tile, f: usize, m: usize, n0: usize, width: usize, out: SharedOut) {
        let n = self.num_images;
        for (i, a) in acc.iter().enumerate() {
            let start = ((f + i) * self.num_modules() + m) * n + n0;
            // SAFETY: row (f+i, m) images n0..n0+width belong to this task only.
            let t = unsafe { out.slice(start, width) };
            let a = a.as_flattened();
            if self.scale_targets != 0.0 {
                for (t, &v) in t.iter_mut().zip(a) {
                    *t = t.mul_add(self.scale_targets, self.scale_output * v);
                }
            } else {
                for (t, &v) in t.iter_mut().zip(a) {
                    *t = self.scale_output * v;
                }
            }
        }
    }
}

/// The image blocks, in order: register tiles of 3 vectors of 8 images, and 2 (never
/// 1, which runs at half speed) where the count of vectors leaves a remainder; with
/// AVX-512 tiles of 3 vectors of 16 (6 of 8), the remainder in one tile of 1 or 2
/// (an even count of 8-lane vectors, the last padded with zeros).
fn image_blocks(num_images: usize, simd: Simd) -> Vec<ImageBlock> {
    let vecs = num_images.div_ceil(LANES);
    let sizes: Vec<usize> = match simd {
        Simd::Avx2 => {
            let twos = match vecs % 3 {
                _ if vecs == 1 => 0,
                1 => 2,
                2 => 1,
                _ => 0,
            };
            let threes = (vecs - 2 * twos) / 3;
            let mut v = vec![3; threes];
            v.extend(std::iter::repeat_n(2, twos));
            v.extend((vecs == 1).then_some(1));
            v
        }
        Simd::Avx512 => {
            let mut v = vec![TILE_V; vecs / TILE_V];
            v.extend((!vecs.is_multiple_of(TILE_V)).then(|| (vecs % TILE_V).next_multiple_of(2)));
            v
        }
    };
    let mut n0 = 0;
    sizes
        .into_iter()
        .map(|v| {
            let width = (v * LANES).min(num_images - n0);
            n0 += width;
            ImageBlock {
                n0: n0 - width,
                width,
                vecs: v,
            }
        })
        .collect()
}

/// True when a written accumulator (of the first `width` images) is `-0`.
fn has_negative_zero(acc: &Tile, width: usize) -> bool {
    // Branch-free, so that it vectorises.
    acc.iter().fold(false, |found, a| {
        a.as_flattened()[..width]
            .iter()
            .fold(found, |found, x| found | (x.to_bits() == 0x8000_0000))
    })
}

/// `acc[f][v] = fma(x[k][v], w[k][f], acc[f][v])` for every term `k` in order, in every
/// lane (one GPU accumulator per lane), over the first `V` image vectors; the
/// accumulators start from `out`, or from +0 when `first`.
#[inline(always)]
fn tile<const V: usize>(rows: &[&[Lane; V]], filt: &[[f32; TILE_F]], out: &mut Tile, first: bool) {
    let mut acc: [[V8; V]; TILE_F] = std::array::from_fn(|f| {
        std::array::from_fn(|v| {
            if first {
                V8::zero()
            } else {
                V8::load(&out[f][v])
            }
        })
    });
    for (x, w) in rows.iter().zip(filt) {
        let x: [V8; V] = std::array::from_fn(|v| V8::load(&x[v]));
        for f in 0..TILE_F {
            for v in 0..V {
                acc[f][v] = x[v].mul_add(V8::splat(w[f]), acc[f][v]);
            }
        }
    }
    for f in 0..TILE_F {
        for v in 0..V {
            acc[f][v].store(&mut out[f][v]);
        }
    }
}

/// [`tile`] with sixteen lanes, for `P` (1 or 2) filter blocks at once: `V` (even)
/// 8-lane vectors as `V/2` AVX-512 vectors.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn tile_wide<const V: usize, const P: usize>(
    rows: &[&[Lane; V]],
    filt: [&[[f32; TILE_F]]; P],
    out: [&mut Tile; P],
    first: bool,
) {
    use super::lanes::F32x16 as V16;
    // Only even `V` are called (blocks of whole 16-lane vectors).
    assert!(V.is_multiple_of(2) && V <= TILE_V);
    let z = V / 2;
    let mut acc = [[[V16::zero(); TILE_V / 2]; TILE_F]; P];
    for (acc, out) in acc.iter_mut().zip(&out).filter(|_| !first) {
        for f in 0..TILE_F {
            let o = out[f].as_ptr().cast::<f32>();
            for (i, a) in acc[f][..z].iter_mut().enumerate() {
                *a = V16::load_ptr(o.add(16 * i));
            }
        }
    }
    for (k, x) in rows.iter().enumerate() {
        let p = x.as_ptr().cast::<f32>();
        let mut xv = [V16::zero(); TILE_V / 2];
        for (i, v) in xv[..z].iter_mut().enumerate() {
            *v = V16::load_ptr(p.add(16 * i));
        }
        for (acc, filt) in acc.iter_mut().zip(&filt) {
            let w = &filt[k];
            for f in 0..TILE_F {
                let wf = V16::splat(w[f]);
                for i in 0..z {
                    acc[f][i] = xv[i].mul_add(wf, acc[f][i]);
                }
            }
        }
    }
    for (acc, out) in acc.iter().zip(out) {
        for f in 0..TILE_F {
            let o = out[f].as_mut_ptr().cast::<f32>();
            for (i, a) in acc[f][..z].iter().enumerate() {
                a.store_ptr(o.add(16 * i));
            }
        }
    }
}
