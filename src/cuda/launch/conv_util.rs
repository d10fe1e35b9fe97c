//! Launches of cuda/pool.cu, norm.cu and util.cu (cudaconv2/conv_util.cu; CPU side
//! src/cudaconv2/conv_util/).
//!
//! One wrapper per CPU function, of the same name and arguments (the device matrices as
//! [`DevMat`]s), running the CPU function's host checks ([`crate::cudaconv2::conv_util`]'s
//! `*_checks`) and variant choices (the undo kernels' `add` flags) on the matrices'
//! shapes. Targets are not resized: the caller passes a row-major target of the shape
//! the CPU function gives it (checked); where the CPU function reads its target (scaled
//! writes), the kernel reads it. Each kernel computes every output with the CPU
//! port's operation sequence; tiers are the CPU functions' (the `__powf` /
//! `__fdividef` kernels bounded on a GPU, every kernel exact in the emulation).

use super::{check_targets, int, launch, shape_error};
use crate::cuda::{Backend, DevMat, GpuError, Param};
use crate::cudaconv2::conv_util::norm::{
    forward_checks, local_weights_checks, response_norm_undo_add, tica_checks, undo_checks,
    undo_prelims_scale, Geo, Undo2Add,
};
use crate::cudaconv2::conv_util::pool::{
    avg_undo_checks, check_local_pool, local_avg_undo_variant, local_max_undo_variant,
    max_undo_checks, AvgPooler, MaxAbsPooler, MaxPooler, Pooler,
};
use crate::cudaconv2::conv_util::util::{
    bed_of_nails_checks, bed_of_nails_undo_checks, blur_shape, colour_shape, crop_checks,
    dequantize_checks, reflect_checks, resize_center_scale, resize_checks, Nails,
};
use crate::cudaconv2::divup;

// ---------------------------------------------------------------------------------
// Pooling (pool.cu)
// ---------------------------------------------------------------------------------

/// A pooler [`conv_local_pool`] runs on the device: the CPU pooler and its kernel.
pub trait DevPooler: Pooler {
    /// The pool.cu kernel applying this pooler.
    const KERNEL: &'static str;
}
impl DevPooler for AvgPooler {
    const KERNEL: &'static str = "pool_local_avg";
}
impl DevPooler for MaxPooler {
    const KERNEL: &'static str = "pool_local_max";
}
impl DevPooler for MaxAbsPooler {
    const KERNEL: &'static str = "pool_local_maxabs";
}

/// The parameters the forward pooling kernels share after `(target, images)`.
#[allow(clippy::too_many_arguments)]
fn pool_forward(
    b: &dyn Backend,
    function: &'static str,
    kernel: &str,
    images: &DevMat,
    target: &DevMat,
    num_filters: usize,
    subs_x: usize,
    start_x: i32,
    stride_x: usize,
    outputs_x: usize,
    extra: &[Param],
) -> Result<(), GpuError> {
    let (img_size, n) = check_local_pool(function, images.shape(), target.shape(), num_filters)
        .map_err(shape_error)?;
    check_targets(function, target, num_filters * outputs_x * outputs_x, n)?;
    let mut params = vec![
        target.param(),
        images.param(),
        int(num_filters)?,
        int(img_size)?,
        int(n)?,
        int(subs_x)?,
        Param::I32(start_x),
        int(stride_x)?,
        int(outputs_x)?,
    ];
    params.extend_from_slice(extra);
    launch(b, kernel, target.len(), &params)
}

/// `convLocalPool<Pooler>` ([`crate::cudaconv2::conv_util::pool::conv_local_pool`]),
/// kernels `pool_local_{avg,max,maxabs}`: `target` is
/// `(numFilters*outputsX², numImages)`. Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_local_pool<P: DevPooler>(
    b: &dyn Backend,
    images: &DevMat,
    target: &DevMat,
    num_filters: usize,
    subs_x: usize,
    start_x: i32,
    stride_x: usize,
    outputs_x: usize,
    _pooler: P,
) -> Result<(), GpuError> {
    pool_forward(
        b,
        "convLocalPool",
        P::KERNEL,
        images,
        target,
        num_filters,
        subs_x,
        start_x,
        stride_x,
        outputs_x,
        &[],
    )
}

/// `convLocalRandomPool` of the 2012 code
/// ([`crate::cudaconv2::conv_util::pool::conv_local_random_pool`], inferred), kernel
/// `pool_local_random`: the same draws from `seed`. Tier: **exact** (w.r.t. our CPU port).
#[allow(clippy::too_many_arguments)]
pub fn conv_local_random_pool(
    b: &dyn Backend,
    images: &DevMat,
    target: &DevMat,
    num_filters: usize,
    subs_x: usize,
    start_x: i32,
    stride_x: usize,
    outputs_x: usize,
    seed: u64,
) -> Result<(), GpuError> {
    pool_forward(
        b,
        "convLocalRandomPool",
        "pool_local_random",
        images,
        target,
        num_filters,
        subs_x,
        start_x,
        stride_x,
        outputs_x,
        &[
            Param::I32(seed as u32 as i32),
            Param::I32((seed >> 32) as u32 as i32),
        ],
    )
}

/// `convLocalMaxUndo` ([`crate::cudaconv2::conv_util::pool::conv_local_max_undo`]),
/// kernel `pool_local_max_undo`: `target` has the images' size and is read when
/// accumulating (`add` of [`local_max_undo_variant`]). Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_local_max_undo(
    b: &dyn Backend,
    images: &DevMat,
    max_grads: &DevMat,
    max_acts: &DevMat,
    target: &DevMat,
    subs_x: usize,
    start_x: i32,
    stride_x: usize,
    outputs_x: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    const F: &str = "convLocalMaxUndo";
    let (img_size, num_filters) = max_undo_checks(
        images.shape(),
        max_grads.shape(),
        max_acts.shape(),
        target.shape(),
        subs_x,
        stride_x,
        outputs_x,
    )
    .map_err(shape_error)?;
    let num_images = images.cols();
    check_targets(F, target, images.rows(), num_images)?;
    let add = local_max_undo_variant(num_images, scale_targets, scale_output).add;
    launch(
        b,
        "pool_local_max_undo",
        images.len(),
        &[
            target.param(),
            images.param(),
            max_grads.param(),
            max_acts.param(),
            int(num_filters)?,
            int(img_size)?,
            int(num_images)?,
            int(subs_x)?,
            Param::I32(start_x),
            int(stride_x)?,
            int(outputs_x)?,
            Param::I32(add.into()),
            Param::F32(scale_targets),
            Param::F32(scale_output),
        ],
    )
}

/// `convLocalAvgUndo` ([`crate::cudaconv2::conv_util::pool::conv_local_avg_undo`]),
/// kernel `pool_local_avg_undo`: `target` is `(numFilters*imgSize², numImages)` and
/// is read when accumulating (`add` of [`local_avg_undo_variant`]). Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_local_avg_undo(
    b: &dyn Backend,
    avg_grads: &DevMat,
    target: &DevMat,
    subs_x: usize,
    start_x: i32,
    stride_x: usize,
    outputs_x: usize,
    img_size: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    const F: &str = "convLocalAvgUndo";
    let num_filters = avg_undo_checks(
        avg_grads.shape(),
        target.shape(),
        subs_x,
        stride_x,
        outputs_x,
    )
    .map_err(shape_error)?;
    let num_images = avg_grads.cols();
    check_targets(F, target, num_filters * img_size * img_size, num_images)?;
    let add = local_avg_undo_variant(num_images, scale_targets, scale_output).add;
    launch(
        b,
        "pool_local_avg_undo",
        target.len(),
        &[
            target.param(),
            avg_grads.param(),
            int(num_filters)?,
            int(img_size)?,
            int(num_images)?,
            int(subs_x)?,
            Param::I32(start_x),
            int(stride_x)?,
            int(outputs_x)?,
            Param::I32(add.into()),
            Param::F32(scale_targets),
            Param::F32(scale_output),
        ],
    )
}

// ---------------------------------------------------------------------------------
// Normalisation (norm.cu)
// ---------------------------------------------------------------------------------

/// `(numFilters, imgSize, numImages)` of a normalisation's geometry.
fn geo_params(g: Geo) -> Result<[Param; 3], GpuError> {
    Ok([int(g.nf)?, int(g.size)?, int(g.n)?])
}

/// The forward normalisations: `cross_map` is `Some((sizeF, blocked))` for the cross-map
/// ones, else `size` is `sizeX`; `mean_diffs` is the images for the response forms.
#[allow(clippy::too_many_arguments)]
fn norm_forward(
    b: &dyn Backend,
    function: &'static str,
    images: &DevMat,
    mean_diffs: &DevMat,
    denoms: &DevMat,
    target: &DevMat,
    num_filters: usize,
    size: usize,
    cross_map: Option<bool>,
    add_scale: f32,
    pow_scale: f32,
    min_div: f32,
) -> Result<(), GpuError> {
    let g = forward_checks(
        function,
        images.shape(),
        mean_diffs.shape(),
        num_filters,
        cross_map.map(|_| size),
    )
    .map_err(shape_error)?;
    check_targets(function, target, images.rows(), images.cols())?;
    check_targets(function, denoms, images.rows(), images.cols())?;
    let [nf, sz, n] = geo_params(g)?;
    launch(
        b,
        "norm_forward",
        images.len(),
        &[
            denoms.param(),
            target.param(),
            images.param(),
            mean_diffs.param(),
            nf,
            sz,
            n,
            int(size)?,
            Param::I32(cross_map.is_some().into()),
            Param::I32(cross_map.unwrap_or(false).into()),
            Param::F32(add_scale),
            Param::F32(pow_scale),
            Param::F32(min_div),
        ],
    )
}

/// `convResponseNorm` ([`crate::cudaconv2::conv_util::norm::conv_response_norm`]),
/// kernel `norm_forward`: `denoms` and `target` have the images' size. Tier:
/// **bounded(8 ulp)** against the CPU on a GPU (`__powf`; 6.9
/// measured on an H200, where it gives the original kernel's bits).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm(
    b: &dyn Backend,
    images: &DevMat,
    denoms: &DevMat,
    target: &DevMat,
    num_filters: usize,
    size_x: usize,
    add_scale: f32,
    pow_scale: f32,
) -> Result<(), GpuError> {
    norm_forward(
        b,
        "convResponseNorm",
        images,
        images,
        denoms,
        target,
        num_filters,
        size_x,
        None,
        add_scale,
        pow_scale,
        1.0,
    )
}

/// `convContrastNorm` ([`crate::cudaconv2::conv_util::norm::conv_contrast_norm`]),
/// kernel `norm_forward`. Tier: **bounded(8 ulp)** against the CPU on a GPU (`__powf`; 6.9
/// measured on an H200, where it gives the original kernel's bits).
#[allow(clippy::too_many_arguments)]
pub fn conv_contrast_norm(
    b: &dyn Backend,
    images: &DevMat,
    mean_diffs: &DevMat,
    denoms: &DevMat,
    target: &DevMat,
    num_filters: usize,
    size_x: usize,
    add_scale: f32,
    pow_scale: f32,
) -> Result<(), GpuError> {
    norm_forward(
        b,
        "convContrastNorm",
        images,
        mean_diffs,
        denoms,
        target,
        num_filters,
        size_x,
        None,
        add_scale,
        pow_scale,
        1.0,
    )
}

/// `convContrastNormCrossMap`
/// ([`crate::cudaconv2::conv_util::norm::conv_contrast_norm_cross_map`]), kernel
/// `norm_forward`. Tier: **bounded(8 ulp)** against the CPU on a GPU (`__powf`; 6.9
/// measured on an H200, where it gives the original kernel's bits).
#[allow(clippy::too_many_arguments)]
pub fn conv_contrast_norm_cross_map(
    b: &dyn Backend,
    images: &DevMat,
    mean_diffs: &DevMat,
    denoms: &DevMat,
    target: &DevMat,
    num_filters: usize,
    size_f: usize,
    add_scale: f32,
    pow_scale: f32,
    blocked: bool,
) -> Result<(), GpuError> {
    norm_forward(
        b,
        "convContrastNormCrossMap",
        images,
        mean_diffs,
        denoms,
        target,
        num_filters,
        size_f,
        Some(blocked),
        add_scale,
        pow_scale,
        1.0,
    )
}

/// `convResponseNormCrossMap` (2011)
/// ([`crate::cudaconv2::conv_util::norm::conv_response_norm_cross_map`]), kernel
/// `norm_forward`. Tier: **bounded(8 ulp)** against the CPU on a GPU (`__powf`; 6.9
/// measured on an H200, where it gives the original kernel's bits).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_cross_map(
    b: &dyn Backend,
    images: &DevMat,
    denoms: &DevMat,
    target: &DevMat,
    num_filters: usize,
    size_f: usize,
    add_scale: f32,
    pow_scale: f32,
    blocked: bool,
) -> Result<(), GpuError> {
    conv_response_norm_cross_map_min_div(
        b,
        images,
        denoms,
        target,
        num_filters,
        size_f,
        add_scale,
        pow_scale,
        1.0,
        blocked,
    )
}

/// `convResponseNormCrossMap` with `minDiv` (2012, inferred)
/// ([`crate::cudaconv2::conv_util::norm::conv_response_norm_cross_map_min_div`]),
/// kernel `norm_forward`. Tier: **bounded(8 ulp)** against the CPU on a GPU (`__powf`; 6.9
/// measured on an H200, where it gives the original kernel's bits).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_cross_map_min_div(
    b: &dyn Backend,
    images: &DevMat,
    denoms: &DevMat,
    target: &DevMat,
    num_filters: usize,
    size_f: usize,
    add_scale: f32,
    pow_scale: f32,
    min_div: f32,
    blocked: bool,
) -> Result<(), GpuError> {
    norm_forward(
        b,
        "convResponseNormCrossMap",
        images,
        images,
        denoms,
        target,
        num_filters,
        size_f,
        Some(blocked),
        add_scale,
        pow_scale,
        min_div,
    )
}

/// The undo functions: checks, `norm_undo_prelims` over `acts` (overwritten, as the
/// original), then `norm_undo` with `add`; `cross_map` as in [`norm_forward`].
#[allow(clippy::too_many_arguments)]
fn norm_undo(
    b: &dyn Backend,
    function: &'static str,
    out_grads: &DevMat,
    denoms: &DevMat,
    inputs: &DevMat,
    acts: &DevMat,
    target: &DevMat,
    num_filters: usize,
    size: usize,
    cross_map: Option<bool>,
    add_scale: f32,
    pow_scale: f32,
    add: bool,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    let g = undo_checks(
        function,
        out_grads.shape(),
        denoms.shape(),
        inputs.shape(),
        acts.shape(),
        target.shape(),
        num_filters,
        cross_map.map(|_| size),
    )
    .map_err(shape_error)?;
    check_targets(function, target, out_grads.rows(), out_grads.cols())?;
    launch(
        b,
        "norm_undo_prelims",
        acts.len(),
        &[
            acts.param(),
            out_grads.param(),
            denoms.param(),
            int(acts.len())?,
            Param::F32(undo_prelims_scale(add_scale, pow_scale)),
        ],
    )?;
    let [nf, sz, n] = geo_params(g)?;
    launch(
        b,
        "norm_undo",
        out_grads.len(),
        &[
            target.param(),
            acts.param(),
            out_grads.param(),
            denoms.param(),
            inputs.param(),
            nf,
            sz,
            n,
            int(size)?,
            Param::I32(cross_map.is_some().into()),
            Param::I32(cross_map.unwrap_or(false).into()),
            Param::F32(pow_scale),
            Param::I32(add.into()),
            Param::F32(scale_targets),
            Param::F32(scale_output),
        ],
    )
}

/// `convResponseNormUndo` ([`crate::cudaconv2::conv_util::norm::conv_response_norm_undo`]):
/// overwrites `acts` with the prelims; `kRNormUndo2`'s inverted `add` flag reproduced
/// (the kernel reads `target`). Tier: **bounded(16 ulp of the output's largest
/// magnitude)** against the CPU on a GPU (2.0 measured on an H200).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_undo(
    b: &dyn Backend,
    out_grads: &DevMat,
    denoms: &DevMat,
    inputs: &DevMat,
    acts: &DevMat,
    target: &DevMat,
    num_filters: usize,
    size_x: usize,
    add_scale: f32,
    pow_scale: f32,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    conv_response_norm_undo_with(
        b,
        out_grads,
        denoms,
        inputs,
        acts,
        target,
        num_filters,
        size_x,
        add_scale,
        pow_scale,
        scale_targets,
        scale_output,
        Undo2Add::AsOriginal,
    )
}

/// [`conv_response_norm_undo`] reproducing or fixing `kRNormUndo2`'s `add` flag
/// ([`crate::cudaconv2::conv_util::norm::conv_response_norm_undo_with`]). Tier:
/// **bounded(16 ulp of the output's largest magnitude)** against the CPU on a GPU (2.0
/// measured on an H200).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_undo_with(
    b: &dyn Backend,
    out_grads: &DevMat,
    denoms: &DevMat,
    inputs: &DevMat,
    acts: &DevMat,
    target: &DevMat,
    num_filters: usize,
    size_x: usize,
    add_scale: f32,
    pow_scale: f32,
    scale_targets: f32,
    scale_output: f32,
    undo2: Undo2Add,
) -> Result<(), GpuError> {
    let add = response_norm_undo_add(num_filters, size_x, scale_targets, scale_output, undo2);
    norm_undo(
        b,
        "convResponseNormUndo",
        out_grads,
        denoms,
        inputs,
        acts,
        target,
        num_filters,
        size_x,
        None,
        add_scale,
        pow_scale,
        add,
        scale_targets,
        scale_output,
    )
}

/// `convContrastNormUndo` ([`crate::cudaconv2::conv_util::norm::conv_contrast_norm_undo`]):
/// [`conv_response_norm_undo`] with `inputs = meanDiffs`. Tier: **bounded(16 ulp of the
/// output's largest magnitude)** against the CPU on a GPU (2.0 measured on an H200).
#[allow(clippy::too_many_arguments)]
pub fn conv_contrast_norm_undo(
    b: &dyn Backend,
    out_grads: &DevMat,
    denoms: &DevMat,
    mean_diffs: &DevMat,
    acts: &DevMat,
    target: &DevMat,
    num_filters: usize,
    size_x: usize,
    add_scale: f32,
    pow_scale: f32,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    conv_response_norm_undo(
        b,
        out_grads,
        denoms,
        mean_diffs,
        acts,
        target,
        num_filters,
        size_x,
        add_scale,
        pow_scale,
        scale_targets,
        scale_output,
    )
}

/// `convResponseNormCrossMapUndo`
/// ([`crate::cudaconv2::conv_util::norm::conv_response_norm_cross_map_undo`]): overwrites
/// `acts`; `add = !(scaleTargets == 0 && scaleOutput == 1)`. Tier: **bounded(16 ulp of
/// the output's largest magnitude)** against the CPU on a GPU (2.0 measured on an H200).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_cross_map_undo(
    b: &dyn Backend,
    out_grads: &DevMat,
    denoms: &DevMat,
    inputs: &DevMat,
    acts: &DevMat,
    target: &DevMat,
    num_filters: usize,
    size_f: usize,
    add_scale: f32,
    pow_scale: f32,
    blocked: bool,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    norm_undo(
        b,
        "convResponseNormCrossMapUndo",
        out_grads,
        denoms,
        inputs,
        acts,
        target,
        num_filters,
        size_f,
        Some(blocked),
        add_scale,
        pow_scale,
        !(scale_targets == 0.0 && scale_output == 1.0),
        scale_targets,
        scale_output,
    )
}

/// `convTICA` ([`crate::cudaconv2::conv_util::norm::conv_tica`]), kernel `norm_tica`:
/// `target` has the images' size (read when `scaleTarget != 0`). Tier: **bounded(2
/// ulp)** on a GPU (`__fdividef`).
#[allow(clippy::too_many_arguments)]
pub fn conv_tica(
    b: &dyn Backend,
    images: &DevMat,
    target: &DevMat,
    num_filters: usize,
    size_x: usize,
    scale_target: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    const F: &str = "convTICA";
    let g = tica_checks(
        F,
        images.shape(),
        None,
        target.shape(),
        num_filters,
        size_x,
        scale_target,
    )
    .map_err(shape_error)?;
    check_targets(F, target, images.rows(), images.cols())?;
    let [nf, sz, n] = geo_params(g)?;
    launch(
        b,
        "norm_tica",
        images.len(),
        &[
            target.param(),
            images.param(),
            nf,
            sz,
            n,
            int(size_x)?,
            Param::F32(scale_target),
            Param::F32(scale_output),
        ],
    )
}

/// `convTICAGrad` ([`crate::cudaconv2::conv_util::norm::conv_tica_grad`]), kernel
/// `norm_tica_grad` (its half-finished branches reproduced). Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_tica_grad(
    b: &dyn Backend,
    images: &DevMat,
    ticas: &DevMat,
    target: &DevMat,
    num_filters: usize,
    size_x: usize,
    scale_target: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    const F: &str = "convTICAGrad";
    let g = tica_checks(
        F,
        images.shape(),
        Some(ticas.shape()),
        target.shape(),
        num_filters,
        size_x,
        scale_target,
    )
    .map_err(shape_error)?;
    check_targets(F, target, images.rows(), images.cols())?;
    let [nf, sz, n] = geo_params(g)?;
    launch(
        b,
        "norm_tica_grad",
        images.len(),
        &[
            target.param(),
            images.param(),
            ticas.param(),
            nf,
            sz,
            n,
            int(size_x)?,
            Param::F32(scale_target),
            Param::F32(scale_output),
        ],
    )
}

/// `normalizeLocalWeights`
/// ([`crate::cudaconv2::conv_util::norm::normalize_local_weights`]), kernel
/// `norm_local_weights`, in place on `weights` (one column per filter). Tier:
/// **bounded(2 ulp)** on a GPU (`__fdividef`).
pub fn normalize_local_weights(
    b: &dyn Backend,
    weights: &DevMat,
    num_modules: usize,
    norm: f32,
) -> Result<(), GpuError> {
    let per = local_weights_checks(weights.shape(), num_modules).map_err(shape_error)?;
    let num_filters = weights.cols();
    launch(
        b,
        "norm_local_weights",
        num_modules * num_filters,
        &[
            weights.param(),
            int(num_modules)?,
            int(per)?,
            int(num_filters)?,
            Param::F32(norm),
        ],
    )
}

// ---------------------------------------------------------------------------------
// Image utilities (util.cu)
// ---------------------------------------------------------------------------------

/// The bed-of-nails kernels: `util_bed_of_nails{,_undo}` over the (checked) target.
#[allow(clippy::too_many_arguments)]
fn bed_of_nails_launch(
    b: &dyn Backend,
    kernel: &str,
    target: &DevMat,
    src: &DevMat,
    g: Nails,
    num_channels: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    launch(
        b,
        kernel,
        target.len(),
        &[
            target.param(),
            src.param(),
            int(num_channels)?,
            int(g.img_size)?,
            int(src.cols())?,
            int(g.start)?,
            int(g.stride)?,
            int(g.outputs_x)?,
            Param::F32(scale_targets),
            Param::F32(scale_output),
        ],
    )
}

/// `convBedOfNails` ([`crate::cudaconv2::conv_util::util::conv_bed_of_nails`]), kernel
/// `util_bed_of_nails`: `target` is `(numChannels*outputsX², numImages)`. Tier:
/// **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_bed_of_nails(
    b: &dyn Backend,
    images: &DevMat,
    target: &DevMat,
    num_channels: usize,
    img_size: usize,
    start_x: i32,
    stride_x: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    const F: &str = "convBedOfNails";
    let g = bed_of_nails_checks(
        images.shape(),
        target.shape(),
        num_channels,
        img_size,
        start_x,
        stride_x,
        scale_targets,
    )
    .map_err(shape_error)?;
    check_targets(F, target, num_channels * g.outputs, images.cols())?;
    bed_of_nails_launch(
        b,
        "util_bed_of_nails",
        target,
        images,
        g,
        num_channels,
        scale_targets,
        scale_output,
    )
}

/// The two undo forms (`fixed`: the corrected shape check).
#[allow(clippy::too_many_arguments)]
fn bed_of_nails_undo(
    b: &dyn Backend,
    acts_grad: &DevMat,
    target: &DevMat,
    num_channels: usize,
    img_size: usize,
    start_x: i32,
    stride_x: usize,
    scale_targets: f32,
    scale_output: f32,
    fixed: bool,
) -> Result<(), GpuError> {
    const F: &str = "convBedOfNailsUndo";
    let g = bed_of_nails_undo_checks(
        acts_grad.shape(),
        target.shape(),
        num_channels,
        img_size,
        start_x,
        stride_x,
        scale_targets,
        fixed,
    )
    .map_err(shape_error)?;
    check_targets(F, target, num_channels * g.img_pixels, acts_grad.cols())?;
    bed_of_nails_launch(
        b,
        "util_bed_of_nails_undo",
        target,
        acts_grad,
        g,
        num_channels,
        scale_targets,
        scale_output,
    )
}

/// `convBedOfNailsUndo` ([`crate::cudaconv2::conv_util::util::conv_bed_of_nails_undo`],
/// its shape-check BUG reproduced), kernel `util_bed_of_nails_undo`: `target` is
/// `(numChannels*imgSize², numImages)`. Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_bed_of_nails_undo(
    b: &dyn Backend,
    acts_grad: &DevMat,
    target: &DevMat,
    num_channels: usize,
    img_size: usize,
    start_x: i32,
    stride_x: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    bed_of_nails_undo(
        b,
        acts_grad,
        target,
        num_channels,
        img_size,
        start_x,
        stride_x,
        scale_targets,
        scale_output,
        false,
    )
}

/// [`conv_bed_of_nails_undo`] with the corrected shape check
/// ([`crate::cudaconv2::conv_util::util::conv_bed_of_nails_undo_fixed`]). Tier:
/// **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_bed_of_nails_undo_fixed(
    b: &dyn Backend,
    acts_grad: &DevMat,
    target: &DevMat,
    num_channels: usize,
    img_size: usize,
    start_x: i32,
    stride_x: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    bed_of_nails_undo(
        b,
        acts_grad,
        target,
        num_channels,
        img_size,
        start_x,
        stride_x,
        scale_targets,
        scale_output,
        true,
    )
}

/// The blur's checks and launch: `util_gaussian_blur` writing `target` with the scaled
/// write reading `old`.
#[allow(clippy::too_many_arguments)]
fn blur_launch(
    b: &dyn Backend,
    images: &DevMat,
    filter: &DevMat,
    old: &DevMat,
    target: &DevMat,
    horiz: bool,
    num_channels: usize,
    scale_targets: f32,
    scale_outputs: f32,
) -> Result<(), GpuError> {
    const F: &str = "convGaussianBlur";
    let (radius, img_size) =
        blur_shape(images.shape(), filter.shape(), num_channels).map_err(shape_error)?;
    check_targets(F, target, images.rows(), images.cols())?;
    launch(
        b,
        "util_gaussian_blur",
        images.len(),
        &[
            target.param(),
            old.param(),
            images.param(),
            filter.param(),
            int(num_channels)?,
            int(img_size)?,
            int(images.cols())?,
            int(radius)?,
            Param::I32(horiz.into()),
            Param::F32(scale_targets),
            Param::F32(scale_outputs),
        ],
    )
}

/// `convGaussianBlur` ([`crate::cudaconv2::conv_util::util::conv_gaussian_blur`]),
/// kernel `util_gaussian_blur`: `filter` is the `1 x (2r+1)` filter, `target` has the
/// images' size (read when `scaleTargets != 0`) and is not the images (see
/// [`conv_gaussian_blur_in_place`]). Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_gaussian_blur(
    b: &dyn Backend,
    images: &DevMat,
    filter: &DevMat,
    target: &DevMat,
    horiz: bool,
    num_channels: usize,
    scale_targets: f32,
    scale_outputs: f32,
) -> Result<(), GpuError> {
    if images.buf().ptr() == target.buf().ptr() && !images.is_empty() {
        return Err(GpuError(
            "convGaussianBlur: the target is the images (use conv_gaussian_blur_in_place)".into(),
        ));
    }
    blur_launch(
        b,
        images,
        filter,
        target,
        target,
        horiz,
        num_channels,
        scale_targets,
        scale_outputs,
    )
}

/// [`conv_gaussian_blur`] with the images as the target
/// ([`crate::cudaconv2::conv_util::util::conv_gaussian_blur_in_place`]): blurred into a
/// scratch buffer (the scaled write reading the original pixels), then copied back
/// (`util_copy`). Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_gaussian_blur_in_place(
    b: &dyn Backend,
    images: &DevMat,
    filter: &DevMat,
    horiz: bool,
    num_channels: usize,
    scale_targets: f32,
    scale_outputs: f32,
) -> Result<(), GpuError> {
    let scratch = b.alloc(images.len())?;
    let scratch = DevMat::new(&scratch, images.rows(), images.cols())?;
    blur_launch(
        b,
        images,
        filter,
        images,
        &scratch,
        horiz,
        num_channels,
        scale_targets,
        scale_outputs,
    )?;
    launch(
        b,
        "util_copy",
        images.len(),
        &[images.param(), scratch.param(), int(images.len())?],
    )
}

/// `convResizeBilinear` ([`crate::cudaconv2::conv_util::util::conv_resize_bilinear`]),
/// kernel `util_resize_bilinear`: `target` is `(numChannels*tgtSize², numImages)`.
/// Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_resize_bilinear(
    b: &dyn Backend,
    images: &DevMat,
    target: &DevMat,
    img_size: usize,
    tgt_size: usize,
    scale: f32,
) -> Result<(), GpuError> {
    const F: &str = "convResizeBilinear";
    let num_channels =
        resize_checks(images.shape(), target.shape(), img_size).map_err(shape_error)?;
    let num_images = images.cols();
    check_targets(F, target, num_channels * tgt_size * tgt_size, num_images)?;
    launch(
        b,
        "util_resize_bilinear",
        target.len(),
        &[
            target.param(),
            images.param(),
            int(num_channels)?,
            int(img_size)?,
            int(tgt_size)?,
            int(num_images)?,
            Param::F32(scale),
            Param::F32(resize_center_scale(img_size, tgt_size, scale)),
        ],
    )
}

/// The colour transforms' checks and launch (one thread per pixel and image).
fn colour_launch(
    b: &dyn Backend,
    function: &'static str,
    kernel: &str,
    images: &DevMat,
    target: &DevMat,
    extra: &[Param],
) -> Result<(), GpuError> {
    let img_pixels = colour_shape(function, images.shape(), target.shape()).map_err(shape_error)?;
    let num_images = images.cols();
    check_targets(function, target, images.rows(), num_images)?;
    let mut params = vec![
        target.param(),
        images.param(),
        int(img_pixels)?,
        int(num_images)?,
    ];
    params.extend_from_slice(extra);
    launch(b, kernel, img_pixels * num_images, &params)
}

/// `convRGBToYUV` ([`crate::cudaconv2::conv_util::util::conv_rgb_to_yuv`]), kernel
/// `util_rgb_to_yuv`: `target` has the images' size. Tier: **exact**.
pub fn conv_rgb_to_yuv(b: &dyn Backend, images: &DevMat, target: &DevMat) -> Result<(), GpuError> {
    colour_launch(b, "convRGBToYUV", "util_rgb_to_yuv", images, target, &[])
}

/// `convRGBToLAB` ([`crate::cudaconv2::conv_util::util::conv_rgb_to_lab`]), kernel
/// `util_rgb_to_lab`: `target` has the images' size. Tier: **bounded** on a GPU
/// (`__powf`, 3 ulp in `f`; the outputs within 16 ulp of their largest magnitude, 5.1
/// measured on an H200).
pub fn conv_rgb_to_lab(
    b: &dyn Backend,
    images: &DevMat,
    target: &DevMat,
    center: bool,
) -> Result<(), GpuError> {
    colour_launch(
        b,
        "convRGBToLAB",
        "util_rgb_to_lab",
        images,
        target,
        &[Param::I32(center.into())],
    )
}

/// `convCrop` ([`crate::cudaconv2::conv_util::util::conv_crop`]), kernel `util_crop`:
/// `target` is `(numChannels*tgtSize², numImages)`. Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_crop(
    b: &dyn Backend,
    imgs: &DevMat,
    target: &DevMat,
    img_size: usize,
    tgt_size: usize,
    start_y: i32,
    start_x: i32,
) -> Result<(), GpuError> {
    const F: &str = "convCrop";
    let num_channels = crop_checks(
        imgs.shape(),
        target.shape(),
        img_size,
        tgt_size,
        start_y,
        start_x,
    )
    .map_err(shape_error)?;
    let num_images = imgs.cols();
    check_targets(F, target, num_channels * tgt_size * tgt_size, num_images)?;
    launch(
        b,
        "util_crop",
        target.len(),
        &[
            target.param(),
            imgs.param(),
            int(num_channels)?,
            int(img_size)?,
            int(tgt_size)?,
            int(num_images)?,
            Param::I32(start_y),
            Param::I32(start_x),
        ],
    )
}

/// `convReflectHorizontal`
/// ([`crate::cudaconv2::conv_util::util::conv_reflect_horizontal`]), kernel
/// `util_reflect_horizontal`: `targets` has the images' size. Tier: **exact**.
pub fn conv_reflect_horizontal(
    b: &dyn Backend,
    images: &DevMat,
    targets: &DevMat,
    img_size: usize,
) -> Result<(), GpuError> {
    const F: &str = "convReflectHorizontal";
    let num_colors = reflect_checks(images.shape(), img_size).map_err(shape_error)?;
    check_targets(F, targets, images.rows(), images.cols())?;
    launch(
        b,
        "util_reflect_horizontal",
        images.len(),
        &[
            targets.param(),
            images.param(),
            int(num_colors)?,
            int(img_size)?,
            int(images.cols())?,
        ],
    )
}

/// `convQuantizeHalf` ([`crate::cudaconv2::conv_util::util::conv_quantize_half`],
/// inferred), kernel `util_quantize_half`: `tgt` is `1 x DIVUP(src.len(), 2)` words of
/// packed halves (the elements of `src` in memory order). Tier: **exact**.
pub fn conv_quantize_half(b: &dyn Backend, src: &DevMat, tgt: &DevMat) -> Result<(), GpuError> {
    let n = src.len();
    check_targets("convQuantizeHalf", tgt, 1, divup(n, 2))?;
    launch(
        b,
        "util_quantize_half",
        divup(n, 2),
        &[tgt.param(), src.param(), int(n)?],
    )
}

/// `convDequantizeHalf` ([`crate::cudaconv2::conv_util::util::conv_dequantize_half`],
/// inferred), kernel `util_dequantize_half`: `tgt` is `1 x numElements` when
/// `scaleTarget == 0`, else any matrix of `numElements` (read, in memory order). Tier:
/// **exact**.
pub fn conv_dequantize_half(
    b: &dyn Backend,
    src: &DevMat,
    tgt: &DevMat,
    num_elements: usize,
    scale_target: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    const F: &str = "convDequantizeHalf";
    dequantize_checks(src.len(), tgt.len(), num_elements, scale_target).map_err(shape_error)?;
    if scale_target == 0.0 {
        check_targets(F, tgt, 1, num_elements)?;
    }
    launch(
        b,
        "util_dequantize_half",
        num_elements,
        &[
            tgt.param(),
            src.param(),
            int(num_elements)?,
            Param::F32(scale_target),
            Param::F32(scale_output),
        ],
    )
}
