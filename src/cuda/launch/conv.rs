//! Launches of cuda/filter_acts.cu, img_acts.cu and weight_acts.cu (cudaconv2's
//! convolution kernels; CPU side src/cudaconv2/{filter,img,weight}_acts.rs).
//!
//! Each wrapper mirrors the CPU function of the same name (same arguments, the device
//! matrices as [`DevMat`]s) and runs the CPU port's own host asserts and variant
//! choice (its `*_plan` functions), then launches the kernel with one thread per output.
//! Tier: exact, as the CPU port (the kernels use no fast intrinsics). One difference:
//! device targets are not resized, so where the CPU port resizes them (`scaleTargets ==
//! 0`) they must already have the output's shape (`Err` otherwise); elements the kernel
//! does not write (the `img_acts_mediumcolor_sparse_rand` region quirk) keep their
//! contents.

use super::{check_targets, int, launch, shape_error};
use crate::cuda::{Backend, DevBuf, DevMat, GpuError, Param};
use crate::cudaconv2::filter_acts::{filter_acts_plan, filter_acts_sparse_plan, FilterActsPlan};
use crate::cudaconv2::img_acts::{img_acts_plan, img_acts_sparse_plan, Geometry, ImgActsPlan};
use crate::cudaconv2::weight_acts::{weight_acts_plan, Args, Colours, WeightActsPlan};

/// The colour table of a plan (image colour of each (group, filter colour)) on the device.
fn upload_colors(b: &dyn Backend, colors: &[usize]) -> Result<DevBuf, GpuError> {
    let words = colors
        .iter()
        .map(|&c| u32::try_from(c).map_err(|_| GpuError(format!("colour {c} too large"))))
        .collect::<Result<Vec<u32>, GpuError>>()?;
    let buf = b.alloc(words.len())?;
    b.write_words(&buf, 0, &words)?;
    Ok(buf)
}

/// Launches the `filter_acts` kernel for a checked call.
fn run_filter_acts(
    b: &dyn Backend,
    function: &str,
    p: &FilterActsPlan,
    images: &DevMat,
    filters: &DevMat,
    targets: &DevMat,
) -> Result<(), GpuError> {
    let rows = p.num_filters * p.num_modules();
    check_targets(function, targets, rows, p.num_images)?;
    let colors = upload_colors(b, &p.colors)?;
    let params = [
        targets.param(),
        images.param(),
        filters.param(),
        colors.param(),
        int(p.num_images)?,
        int(p.num_filters)?,
        int(p.num_groups)?,
        int(p.num_filter_colors)?,
        int(p.color_group)?,
        int(p.img_size_y)?,
        int(p.img_size_x)?,
        int(p.filter_size)?,
        Param::I32(p.padding_start as i32),
        int(p.module_stride)?,
        int(p.num_modules_y)?,
        int(p.num_modules_x)?,
        Param::I32(p.conv as i32),
        Param::F32(p.scale_targets),
        Param::F32(p.scale_output),
    ];
    launch(b, "filter_acts", rows * p.num_images, &params)
}

/// `convFilterActs` on the device: [`crate::cudaconv2::filter_acts::conv_filter_acts`].
/// Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn conv_filter_acts(
    b: &dyn Backend,
    images: &DevMat,
    filters: &DevMat,
    targets: &DevMat,
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    let f = "convFilterActs";
    let p = filter_acts_plan(
        f,
        images.shape(),
        filters.shape(),
        targets.shape(),
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
    )
    .map_err(shape_error)?;
    run_filter_acts(b, f, &p, images, filters, targets)
}

/// `localFilterActs` on the device: [`crate::cudaconv2::filter_acts::local_filter_acts`].
/// Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn local_filter_acts(
    b: &dyn Backend,
    images: &DevMat,
    filters: &DevMat,
    targets: &DevMat,
    img_size_y: usize,
    num_modules_y: usize,
    num_modules_x: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    let f = "localFilterActs";
    let p = filter_acts_plan(
        f,
        images.shape(),
        filters.shape(),
        targets.shape(),
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
    )
    .map_err(shape_error)?;
    run_filter_acts(b, f, &p, images, filters, targets)
}

/// `convFilterActsSparse` on the device:
/// [`crate::cudaconv2::filter_acts::conv_filter_acts_sparse`] (`color_indices` is the
/// host copy of `dColorIndices`). Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn conv_filter_acts_sparse(
    b: &dyn Backend,
    images: &DevMat,
    filters: &DevMat,
    targets: &DevMat,
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
) -> Result<(), GpuError> {
    let f = "convFilterActsSparse";
    let p = filter_acts_sparse_plan(
        f,
        images.shape(),
        filters.shape(),
        targets.shape(),
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
    )
    .map_err(shape_error)?;
    run_filter_acts(b, f, &p, images, filters, targets)
}

/// `localFilterActsSparse` on the device:
/// [`crate::cudaconv2::filter_acts::local_filter_acts_sparse`]. Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn local_filter_acts_sparse(
    b: &dyn Backend,
    images: &DevMat,
    filters: &DevMat,
    targets: &DevMat,
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
) -> Result<(), GpuError> {
    let f = "localFilterActsSparse";
    let p = filter_acts_sparse_plan(
        f,
        images.shape(),
        filters.shape(),
        targets.shape(),
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
    )
    .map_err(shape_error)?;
    run_filter_acts(b, f, &p, images, filters, targets)
}

/// Launches the `img_acts` kernel for a checked call.
fn run_img_acts(
    b: &dyn Backend,
    function: &str,
    p: &ImgActsPlan,
    hid_acts: &DevMat,
    filters: &DevMat,
    targets: &DevMat,
) -> Result<(), GpuError> {
    let d = &p.d;
    check_targets(function, targets, p.rows, d.num_images)?;
    let colors = upload_colors(b, &p.colors)?;
    let (rx, kr, gr) = p
        .regions
        .map_or((0, 0, 0), |q| (q.regions_x, q.kernel_regions, q.grid_rows));
    let params = [
        targets.param(),
        hid_acts.param(),
        filters.param(),
        colors.param(),
        int(d.num_images)?,
        int(d.num_filters)?,
        int(d.num_filters / d.filters_per_group)?,
        int(d.num_filter_colors)?,
        int(p.num_img_colors)?,
        int(d.img_pixels / d.img_x)?,
        int(d.img_x)?,
        int(d.filter_size)?,
        Param::I32(d.padding_start as i32),
        int(d.stride)?,
        int(d.modules_y)?,
        int(d.modules_x)?,
        Param::I32(d.conv as i32),
        int(p.slices)?,
        int(p.groups_per_slice)?,
        int(p.groups_per_sample)?,
        int(rx)?,
        int(kr)?,
        int(gr)?,
        Param::F32(p.scale_targets),
        Param::F32(p.scale_output),
    ];
    let n = p.slices * p.groups_per_slice * d.num_filter_colors * d.img_pixels * d.num_images;
    launch(b, "img_acts", n, &params)
}

/// `convImgActs` on the device: [`crate::cudaconv2::img_acts::conv_img_acts`].
/// Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn conv_img_acts(
    b: &dyn Backend,
    hid_acts: &DevMat,
    filters: &DevMat,
    targets: &DevMat,
    img_size_y: usize,
    img_size_x: usize,
    num_modules_y: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    let geo = Geometry {
        img_size_y,
        img_size_x,
        num_modules_y,
        padding_start,
        module_stride,
    };
    let p = img_acts_plan(
        hid_acts.shape(),
        filters.shape(),
        targets.shape(),
        geo,
        num_img_colors,
        num_groups,
        scale_targets,
        scale_output,
        true,
    )
    .map_err(shape_error)?;
    run_img_acts(b, "convImgActs", &p, hid_acts, filters, targets)
}

/// `localImgActs` on the device: [`crate::cudaconv2::img_acts::local_img_acts`].
/// Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn local_img_acts(
    b: &dyn Backend,
    hid_acts: &DevMat,
    filters: &DevMat,
    targets: &DevMat,
    img_size_y: usize,
    img_size_x: usize,
    num_modules_y: usize,
    padding_start: i32,
    module_stride: usize,
    num_img_colors: usize,
    num_groups: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    let geo = Geometry {
        img_size_y,
        img_size_x,
        num_modules_y,
        padding_start,
        module_stride,
    };
    let p = img_acts_plan(
        hid_acts.shape(),
        filters.shape(),
        targets.shape(),
        geo,
        num_img_colors,
        num_groups,
        scale_targets,
        scale_output,
        false,
    )
    .map_err(shape_error)?;
    run_img_acts(b, "localImgActs", &p, hid_acts, filters, targets)
}

/// `convImgActsSparse` on the device:
/// [`crate::cudaconv2::img_acts::conv_img_acts_sparse`] (its region quirk included).
/// Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn conv_img_acts_sparse(
    b: &dyn Backend,
    hid_acts: &DevMat,
    filters: &DevMat,
    targets: &DevMat,
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
) -> Result<(), GpuError> {
    let geo = Geometry {
        img_size_y,
        img_size_x,
        num_modules_y,
        padding_start,
        module_stride,
    };
    let p = img_acts_sparse_plan(
        hid_acts.shape(),
        filters.shape(),
        targets.shape(),
        color_indices,
        geo,
        num_img_colors,
        num_filter_colors,
        num_groups,
        scale_targets,
        scale_output,
        true,
    )
    .map_err(shape_error)?;
    run_img_acts(b, "convImgActsSparse", &p, hid_acts, filters, targets)
}

/// `localImgActsSparse` on the device:
/// [`crate::cudaconv2::img_acts::local_img_acts_sparse`]. Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn local_img_acts_sparse(
    b: &dyn Backend,
    hid_acts: &DevMat,
    filters: &DevMat,
    targets: &DevMat,
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
) -> Result<(), GpuError> {
    let geo = Geometry {
        img_size_y,
        img_size_x,
        num_modules_y,
        padding_start,
        module_stride,
    };
    let p = img_acts_sparse_plan(
        hid_acts.shape(),
        filters.shape(),
        targets.shape(),
        color_indices,
        geo,
        num_img_colors,
        num_filter_colors,
        num_groups,
        scale_targets,
        scale_output,
        false,
    )
    .map_err(shape_error)?;
    run_img_acts(b, "localImgActsSparse", &p, hid_acts, filters, targets)
}

/// The host asserts of `_weightActs` / `_weightActsSparse` (the CPU port's), then the
/// `weight_acts` kernel.
#[allow(clippy::too_many_arguments)]
fn weight_acts(
    b: &dyn Backend,
    function: &'static str,
    images: &DevMat,
    hid_acts: &DevMat,
    targets: &DevMat,
    a: &Args,
    colours: Colours,
    partial_sum: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    let p: WeightActsPlan = weight_acts_plan(
        images.shape(),
        hid_acts.shape(),
        targets.shape(),
        a,
        colours,
        partial_sum,
        scale_targets,
        scale_output,
        function,
    )
    .map_err(shape_error)?;
    let g = &p.g;
    check_targets(function, targets, p.out_rows, g.num_filters)?;
    let colors = upload_colors(b, &p.colour_of)?;
    let params = [
        targets.param(),
        images.param(),
        hid_acts.param(),
        colors.param(),
        int(g.num_images)?,
        int(g.num_filters)?,
        int(g.num_groups)?,
        int(g.num_filter_colors)?,
        int(g.img_size_y)?,
        int(g.img_size_x)?,
        int(g.filter_size)?,
        Param::I32(g.padding_start as i32),
        int(g.module_stride)?,
        int(g.num_modules)?,
        int(g.num_modules_x)?,
        int(g.partial_sum)?,
        Param::F32(p.scale_targets),
        Param::F32(p.scale_output),
    ];
    launch(b, "weight_acts", p.out_rows * g.num_filters, &params)
}

/// `convWeightActs` on the device: [`crate::cudaconv2::weight_acts::conv_weight_acts`]
/// (`partial_sum == 0` means `numModules`). Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn conv_weight_acts(
    b: &dyn Backend,
    images: &DevMat,
    hid_acts: &DevMat,
    targets: &DevMat,
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
) -> Result<(), GpuError> {
    let a = Args {
        img_size_y,
        num_modules_y,
        num_modules_x,
        filter_size,
        padding_start,
        module_stride,
        num_img_colors,
    };
    let c = Colours::Grouped { num_groups };
    weight_acts(
        b,
        "convWeightActs",
        images,
        hid_acts,
        targets,
        &a,
        c,
        partial_sum,
        scale_targets,
        scale_output,
    )
}

/// `localWeightActs` on the device: [`crate::cudaconv2::weight_acts::local_weight_acts`].
/// Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn local_weight_acts(
    b: &dyn Backend,
    images: &DevMat,
    hid_acts: &DevMat,
    targets: &DevMat,
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
) -> Result<(), GpuError> {
    let a = Args {
        img_size_y,
        num_modules_y,
        num_modules_x,
        filter_size,
        padding_start,
        module_stride,
        num_img_colors,
    };
    let c = Colours::Grouped { num_groups };
    weight_acts(
        b,
        "localWeightActs",
        images,
        hid_acts,
        targets,
        &a,
        c,
        1,
        scale_targets,
        scale_output,
    )
}

/// `convWeightActsSparse` on the device:
/// [`crate::cudaconv2::weight_acts::conv_weight_acts_sparse`]. Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn conv_weight_acts_sparse(
    b: &dyn Backend,
    images: &DevMat,
    hid_acts: &DevMat,
    targets: &DevMat,
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
) -> Result<(), GpuError> {
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
    weight_acts(
        b,
        "convWeightActsSparse",
        images,
        hid_acts,
        targets,
        &a,
        c,
        partial_sum,
        scale_targets,
        scale_output,
    )
}

/// `localWeightActsSparse` on the device:
/// [`crate::cudaconv2::weight_acts::local_weight_acts_sparse`]. Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn local_weight_acts_sparse(
    b: &dyn Backend,
    images: &DevMat,
    hid_acts: &DevMat,
    targets: &DevMat,
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
) -> Result<(), GpuError> {
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
    weight_acts(
        b,
        "localWeightActsSparse",
        images,
        hid_acts,
        targets,
        &a,
        c,
        1,
        scale_targets,
        scale_output,
    )
}

/// The original's short overload `convWeightActsSparse(...)` without scale arguments on
/// the device: [`crate::cudaconv2::weight_acts::conv_weight_acts_sparse_short`] (**BUG
/// reproduced**: `partialSum = 0, scaleTargets = 1, scaleOutput = 0`). Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn conv_weight_acts_sparse_short(
    b: &dyn Backend,
    images: &DevMat,
    hid_acts: &DevMat,
    targets: &DevMat,
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
) -> Result<(), GpuError> {
    conv_weight_acts_sparse(
        b,
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

/// The original's short overload `localWeightActsSparse(...)` on the device:
/// [`crate::cudaconv2::weight_acts::local_weight_acts_sparse_short`] (**BUG
/// reproduced**: `scaleTargets = 1, scaleOutput = 0`). Tier: exact.
#[allow(clippy::too_many_arguments)]
pub fn local_weight_acts_sparse_short(
    b: &dyn Backend,
    images: &DevMat,
    hid_acts: &DevMat,
    targets: &DevMat,
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
) -> Result<(), GpuError> {
    local_weight_acts_sparse(
        b,
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
