//! Launches of cuda/pool.cu, norm.cu and util.cu (cudaconv2/conv_util.cu; CPU side
//! src/cudaconv2/conv_util/).
//!
//! One wrapper per CPU function, of the same name and with the same shape arguments,
//! running the CPU function's host checks ([`crate::cudaconv2::conv_util`]'s `*_checks`)
//! and variant choices (the undo kernels' `add` flags) on the buffers' shapes. Device
//! buffers hold row-major matrices; their shapes come from `num_images` (the column
//! count of the images and of every matrix laid out like them, > 0): `rows = len /
//! num_images`. Targets are not resized: the caller passes a buffer of the size the CPU
//! function resizes to (checked); where the CPU function reads its target (scaled
//! writes), the kernel reads the buffer. Each kernel computes every output with the CPU
//! port's operation sequence; tiers are the CPU functions' (the `__powf` /
//! `__fdividef` kernels bounded on a GPU, every kernel exact in the emulation).

use crate::cuda::{grid_for, Backend, DevBuf, GpuError, Param};
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
use crate::cudaconv2::{divup, MatShape, ShapeError};

fn shape_error(e: ShapeError) -> GpuError {
    GpuError(e.to_string())
}

/// The shape of `buf` as a row-major matrix of `cols` columns.
fn mat(what: &str, buf: &DevBuf, cols: usize) -> Result<MatShape, GpuError> {
    if cols == 0 || !buf.len().is_multiple_of(cols) {
        return Err(GpuError(format!(
            "{what}: {} words are not a matrix of {cols} columns",
            buf.len()
        )));
    }
    if buf.len() > i32::MAX as usize {
        return Err(GpuError(format!(
            "{what}: {} words exceed the kernels' int indices",
            buf.len()
        )));
    }
    Ok(MatShape {
        rows: buf.len() / cols,
        cols,
        trans: false,
    })
}

/// Checks that `buf` (a target) has exactly `len` words.
fn expect_len(what: &str, buf: &DevBuf, len: usize) -> Result<(), GpuError> {
    if buf.len() != len {
        return Err(GpuError(format!(
            "{what}: the target has {} words, the result {len}",
            buf.len()
        )));
    }
    Ok(())
}

/// An `int` kernel parameter.
fn int(v: usize) -> Result<Param, GpuError> {
    i32::try_from(v)
        .map(Param::I32)
        .map_err(|_| GpuError(format!("{v} does not fit the kernels' int parameters")))
}

/// Launches `name` over `n` outputs (one thread each).
fn run(b: &dyn Backend, name: &str, n: usize, params: &[Param]) -> Result<(), GpuError> {
    let (grid, block) = grid_for(n);
    b.launch(name, grid, block, params)
}

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
    images: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    num_filters: usize,
    subs_x: usize,
    start_x: i32,
    stride_x: usize,
    outputs_x: usize,
    extra: &[Param],
) -> Result<(), GpuError> {
    let im = mat(function, images, num_images)?;
    let tg = mat(function, target, num_images)?;
    let (img_size, n) = check_local_pool(function, im, tg, num_filters).map_err(shape_error)?;
    let len = num_filters * outputs_x * outputs_x * n;
    expect_len(function, target, len)?;
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
    run(b, kernel, len, &params)
}

/// `convLocalPool<Pooler>` ([`crate::cudaconv2::conv_util::pool::conv_local_pool`]),
/// kernels `pool_local_{avg,max,maxabs}`: `target` has `numFilters*outputsX²*numImages`
/// words. Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_local_pool<P: DevPooler>(
    b: &dyn Backend,
    images: &DevBuf,
    target: &DevBuf,
    num_images: usize,
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
        num_images,
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
    images: &DevBuf,
    target: &DevBuf,
    num_images: usize,
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
        num_images,
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
    images: &DevBuf,
    max_grads: &DevBuf,
    max_acts: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    subs_x: usize,
    start_x: i32,
    stride_x: usize,
    outputs_x: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    const F: &str = "convLocalMaxUndo";
    let (im, mg) = (mat(F, images, num_images)?, mat(F, max_grads, num_images)?);
    let (ma, tg) = (mat(F, max_acts, num_images)?, mat(F, target, num_images)?);
    let (img_size, num_filters) =
        max_undo_checks(im, mg, ma, tg, subs_x, stride_x, outputs_x).map_err(shape_error)?;
    expect_len(F, target, images.len())?;
    let add = local_max_undo_variant(num_images, scale_targets, scale_output).add;
    run(
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
/// kernel `pool_local_avg_undo`: `target` has `numFilters*imgSize²*numImages` words and
/// is read when accumulating (`add` of [`local_avg_undo_variant`]). Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_local_avg_undo(
    b: &dyn Backend,
    avg_grads: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    subs_x: usize,
    start_x: i32,
    stride_x: usize,
    outputs_x: usize,
    img_size: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    const F: &str = "convLocalAvgUndo";
    let (ag, tg) = (mat(F, avg_grads, num_images)?, mat(F, target, num_images)?);
    let num_filters = avg_undo_checks(ag, tg, subs_x, stride_x, outputs_x).map_err(shape_error)?;
    let len = num_filters * img_size * img_size * num_images;
    expect_len(F, target, len)?;
    let add = local_avg_undo_variant(num_images, scale_targets, scale_output).add;
    run(
        b,
        "pool_local_avg_undo",
        len,
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
    images: &DevBuf,
    mean_diffs: &DevBuf,
    denoms: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    num_filters: usize,
    size: usize,
    cross_map: Option<bool>,
    add_scale: f32,
    pow_scale: f32,
    min_div: f32,
) -> Result<(), GpuError> {
    let (im, md) = (
        mat(function, images, num_images)?,
        mat(function, mean_diffs, num_images)?,
    );
    let g = forward_checks(function, im, md, num_filters, cross_map.map(|_| size))
        .map_err(shape_error)?;
    expect_len(function, target, images.len())?;
    expect_len(function, denoms, images.len())?;
    let [nf, sz, n] = geo_params(g)?;
    run(
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
/// **bounded(5 ulp)** on a GPU (`__powf`).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm(
    b: &dyn Backend,
    images: &DevBuf,
    denoms: &DevBuf,
    target: &DevBuf,
    num_images: usize,
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
        num_images,
        num_filters,
        size_x,
        None,
        add_scale,
        pow_scale,
        1.0,
    )
}

/// `convContrastNorm` ([`crate::cudaconv2::conv_util::norm::conv_contrast_norm`]),
/// kernel `norm_forward`. Tier: **bounded(5 ulp)** on a GPU (`__powf`).
#[allow(clippy::too_many_arguments)]
pub fn conv_contrast_norm(
    b: &dyn Backend,
    images: &DevBuf,
    mean_diffs: &DevBuf,
    denoms: &DevBuf,
    target: &DevBuf,
    num_images: usize,
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
        num_images,
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
/// `norm_forward`. Tier: **bounded(5 ulp)** on a GPU (`__powf`).
#[allow(clippy::too_many_arguments)]
pub fn conv_contrast_norm_cross_map(
    b: &dyn Backend,
    images: &DevBuf,
    mean_diffs: &DevBuf,
    denoms: &DevBuf,
    target: &DevBuf,
    num_images: usize,
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
        num_images,
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
/// `norm_forward`. Tier: **bounded(5 ulp)** on a GPU (`__powf`).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_cross_map(
    b: &dyn Backend,
    images: &DevBuf,
    denoms: &DevBuf,
    target: &DevBuf,
    num_images: usize,
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
        num_images,
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
/// kernel `norm_forward`. Tier: **bounded(5 ulp)** on a GPU (`__powf`).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_cross_map_min_div(
    b: &dyn Backend,
    images: &DevBuf,
    denoms: &DevBuf,
    target: &DevBuf,
    num_images: usize,
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
        num_images,
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
    out_grads: &DevBuf,
    denoms: &DevBuf,
    inputs: &DevBuf,
    acts: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    num_filters: usize,
    size: usize,
    cross_map: Option<bool>,
    add_scale: f32,
    pow_scale: f32,
    add: bool,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    let og = mat(function, out_grads, num_images)?;
    let (de, inp) = (
        mat(function, denoms, num_images)?,
        mat(function, inputs, num_images)?,
    );
    let (ac, tg) = (
        mat(function, acts, num_images)?,
        mat(function, target, num_images)?,
    );
    let g = undo_checks(
        function,
        og,
        de,
        inp,
        ac,
        tg,
        num_filters,
        cross_map.map(|_| size),
    )
    .map_err(shape_error)?;
    expect_len(function, target, out_grads.len())?;
    run(
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
    run(
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
/// (the kernel reads `target`). Tier: **bounded(6 ulp)** on a GPU.
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_undo(
    b: &dyn Backend,
    out_grads: &DevBuf,
    denoms: &DevBuf,
    inputs: &DevBuf,
    acts: &DevBuf,
    target: &DevBuf,
    num_images: usize,
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
        num_images,
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
/// **bounded(6 ulp)** on a GPU.
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_undo_with(
    b: &dyn Backend,
    out_grads: &DevBuf,
    denoms: &DevBuf,
    inputs: &DevBuf,
    acts: &DevBuf,
    target: &DevBuf,
    num_images: usize,
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
        num_images,
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
/// [`conv_response_norm_undo`] with `inputs = meanDiffs`. Tier: **bounded(6 ulp)** on a
/// GPU.
#[allow(clippy::too_many_arguments)]
pub fn conv_contrast_norm_undo(
    b: &dyn Backend,
    out_grads: &DevBuf,
    denoms: &DevBuf,
    mean_diffs: &DevBuf,
    acts: &DevBuf,
    target: &DevBuf,
    num_images: usize,
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
        num_images,
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
/// `acts`; `add = !(scaleTargets == 0 && scaleOutput == 1)`. Tier: **bounded(6 ulp)** on
/// a GPU.
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_cross_map_undo(
    b: &dyn Backend,
    out_grads: &DevBuf,
    denoms: &DevBuf,
    inputs: &DevBuf,
    acts: &DevBuf,
    target: &DevBuf,
    num_images: usize,
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
        num_images,
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
    images: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    num_filters: usize,
    size_x: usize,
    scale_target: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    const F: &str = "convTICA";
    let (im, tg) = (mat(F, images, num_images)?, mat(F, target, num_images)?);
    let g = tica_checks(F, im, None, tg, num_filters, size_x, scale_target).map_err(shape_error)?;
    expect_len(F, target, images.len())?;
    let [nf, sz, n] = geo_params(g)?;
    run(
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
    images: &DevBuf,
    ticas: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    num_filters: usize,
    size_x: usize,
    scale_target: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    const F: &str = "convTICAGrad";
    let (im, ti) = (mat(F, images, num_images)?, mat(F, ticas, num_images)?);
    let tg = mat(F, target, num_images)?;
    let g =
        tica_checks(F, im, Some(ti), tg, num_filters, size_x, scale_target).map_err(shape_error)?;
    expect_len(F, target, images.len())?;
    let [nf, sz, n] = geo_params(g)?;
    run(
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
/// `norm_local_weights`, in place on `weights` of `num_filters` columns. Tier:
/// **bounded(2 ulp)** on a GPU (`__fdividef`).
pub fn normalize_local_weights(
    b: &dyn Backend,
    weights: &DevBuf,
    num_filters: usize,
    num_modules: usize,
    norm: f32,
) -> Result<(), GpuError> {
    let w = mat("normalizeLocalWeights", weights, num_filters)?;
    let per = local_weights_checks(w, num_modules).map_err(shape_error)?;
    run(
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

/// The bed-of-nails kernels: `util_bed_of_nails{,_undo}` over `outputs` elements.
#[allow(clippy::too_many_arguments)]
fn bed_of_nails_launch(
    b: &dyn Backend,
    kernel: &str,
    target: &DevBuf,
    src: &DevBuf,
    outputs: usize,
    g: Nails,
    num_channels: usize,
    num_images: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    run(
        b,
        kernel,
        outputs,
        &[
            target.param(),
            src.param(),
            int(num_channels)?,
            int(g.img_size)?,
            int(num_images)?,
            int(g.start)?,
            int(g.stride)?,
            int(g.outputs_x)?,
            Param::F32(scale_targets),
            Param::F32(scale_output),
        ],
    )
}

/// `convBedOfNails` ([`crate::cudaconv2::conv_util::util::conv_bed_of_nails`]), kernel
/// `util_bed_of_nails`: `target` has `numChannels*outputsX²*numImages` words. Tier:
/// **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_bed_of_nails(
    b: &dyn Backend,
    images: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    num_channels: usize,
    img_size: usize,
    start_x: i32,
    stride_x: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    const F: &str = "convBedOfNails";
    let (im, tg) = (mat(F, images, num_images)?, mat(F, target, num_images)?);
    let g = bed_of_nails_checks(
        im,
        tg,
        num_channels,
        img_size,
        start_x,
        stride_x,
        scale_targets,
    )
    .map_err(shape_error)?;
    let len = num_channels * g.outputs * num_images;
    expect_len(F, target, len)?;
    bed_of_nails_launch(
        b,
        "util_bed_of_nails",
        target,
        images,
        len,
        g,
        num_channels,
        num_images,
        scale_targets,
        scale_output,
    )
}

/// The two undo forms (`fixed`: the corrected shape check).
#[allow(clippy::too_many_arguments)]
fn bed_of_nails_undo(
    b: &dyn Backend,
    acts_grad: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    num_channels: usize,
    img_size: usize,
    start_x: i32,
    stride_x: usize,
    scale_targets: f32,
    scale_output: f32,
    fixed: bool,
) -> Result<(), GpuError> {
    const F: &str = "convBedOfNailsUndo";
    let (ag, tg) = (mat(F, acts_grad, num_images)?, mat(F, target, num_images)?);
    let g = bed_of_nails_undo_checks(
        ag,
        tg,
        num_channels,
        img_size,
        start_x,
        stride_x,
        scale_targets,
        fixed,
    )
    .map_err(shape_error)?;
    let len = num_channels * g.img_pixels * num_images;
    expect_len(F, target, len)?;
    bed_of_nails_launch(
        b,
        "util_bed_of_nails_undo",
        target,
        acts_grad,
        len,
        g,
        num_channels,
        num_images,
        scale_targets,
        scale_output,
    )
}

/// `convBedOfNailsUndo` ([`crate::cudaconv2::conv_util::util::conv_bed_of_nails_undo`],
/// its shape-check BUG reproduced), kernel `util_bed_of_nails_undo`: `target` has
/// `numChannels*imgSize²*numImages` words. Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_bed_of_nails_undo(
    b: &dyn Backend,
    acts_grad: &DevBuf,
    target: &DevBuf,
    num_images: usize,
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
        num_images,
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
    acts_grad: &DevBuf,
    target: &DevBuf,
    num_images: usize,
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
        num_images,
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
    images: &DevBuf,
    filter: &DevBuf,
    old: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    horiz: bool,
    num_channels: usize,
    scale_targets: f32,
    scale_outputs: f32,
) -> Result<(), GpuError> {
    const F: &str = "convGaussianBlur";
    let im = mat(F, images, num_images)?;
    let fl = mat(F, filter, filter.len().max(1))?;
    let (radius, img_size) = blur_shape(im, fl, num_channels).map_err(shape_error)?;
    expect_len(F, target, images.len())?;
    run(
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
            int(num_images)?,
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
    images: &DevBuf,
    filter: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    horiz: bool,
    num_channels: usize,
    scale_targets: f32,
    scale_outputs: f32,
) -> Result<(), GpuError> {
    if images.ptr() == target.ptr() && !images.is_empty() {
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
        num_images,
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
    images: &DevBuf,
    filter: &DevBuf,
    num_images: usize,
    horiz: bool,
    num_channels: usize,
    scale_targets: f32,
    scale_outputs: f32,
) -> Result<(), GpuError> {
    let scratch = b.alloc(images.len())?;
    blur_launch(
        b,
        images,
        filter,
        images,
        &scratch,
        num_images,
        horiz,
        num_channels,
        scale_targets,
        scale_outputs,
    )?;
    run(
        b,
        "util_copy",
        images.len(),
        &[images.param(), scratch.param(), int(images.len())?],
    )
}

/// `convResizeBilinear` ([`crate::cudaconv2::conv_util::util::conv_resize_bilinear`]),
/// kernel `util_resize_bilinear`: `target` has `numChannels*tgtSize²*numImages` words.
/// Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_resize_bilinear(
    b: &dyn Backend,
    images: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    img_size: usize,
    tgt_size: usize,
    scale: f32,
) -> Result<(), GpuError> {
    const F: &str = "convResizeBilinear";
    let (im, tg) = (mat(F, images, num_images)?, mat(F, target, num_images)?);
    let num_channels = resize_checks(im, tg, img_size).map_err(shape_error)?;
    let len = num_channels * tgt_size * tgt_size * num_images;
    expect_len(F, target, len)?;
    run(
        b,
        "util_resize_bilinear",
        len,
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
    images: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    extra: &[Param],
) -> Result<(), GpuError> {
    let (im, tg) = (
        mat(function, images, num_images)?,
        mat(function, target, num_images)?,
    );
    let img_pixels = colour_shape(function, im, tg).map_err(shape_error)?;
    expect_len(function, target, images.len())?;
    let mut params = vec![
        target.param(),
        images.param(),
        int(img_pixels)?,
        int(num_images)?,
    ];
    params.extend_from_slice(extra);
    run(b, kernel, img_pixels * num_images, &params)
}

/// `convRGBToYUV` ([`crate::cudaconv2::conv_util::util::conv_rgb_to_yuv`]), kernel
/// `util_rgb_to_yuv`: `target` has the images' size. Tier: **exact**.
pub fn conv_rgb_to_yuv(
    b: &dyn Backend,
    images: &DevBuf,
    target: &DevBuf,
    num_images: usize,
) -> Result<(), GpuError> {
    colour_launch(
        b,
        "convRGBToYUV",
        "util_rgb_to_yuv",
        images,
        target,
        num_images,
        &[],
    )
}

/// `convRGBToLAB` ([`crate::cudaconv2::conv_util::util::conv_rgb_to_lab`]), kernel
/// `util_rgb_to_lab`: `target` has the images' size. Tier: **bounded** on a GPU
/// (`__powf`, 3 ulp in `f`).
pub fn conv_rgb_to_lab(
    b: &dyn Backend,
    images: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    center: bool,
) -> Result<(), GpuError> {
    colour_launch(
        b,
        "convRGBToLAB",
        "util_rgb_to_lab",
        images,
        target,
        num_images,
        &[Param::I32(center.into())],
    )
}

/// `convCrop` ([`crate::cudaconv2::conv_util::util::conv_crop`]), kernel `util_crop`:
/// `target` has `numChannels*tgtSize²*numImages` words. Tier: **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_crop(
    b: &dyn Backend,
    imgs: &DevBuf,
    target: &DevBuf,
    num_images: usize,
    img_size: usize,
    tgt_size: usize,
    start_y: i32,
    start_x: i32,
) -> Result<(), GpuError> {
    const F: &str = "convCrop";
    let (im, tg) = (mat(F, imgs, num_images)?, mat(F, target, num_images)?);
    let num_channels =
        crop_checks(im, tg, img_size, tgt_size, start_y, start_x).map_err(shape_error)?;
    let len = num_channels * tgt_size * tgt_size * num_images;
    expect_len(F, target, len)?;
    run(
        b,
        "util_crop",
        len,
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
    images: &DevBuf,
    targets: &DevBuf,
    num_images: usize,
    img_size: usize,
) -> Result<(), GpuError> {
    const F: &str = "convReflectHorizontal";
    let im = mat(F, images, num_images)?;
    let num_colors = reflect_checks(im, img_size).map_err(shape_error)?;
    expect_len(F, targets, images.len())?;
    run(
        b,
        "util_reflect_horizontal",
        images.len(),
        &[
            targets.param(),
            images.param(),
            int(num_colors)?,
            int(img_size)?,
            int(num_images)?,
        ],
    )
}

/// `convQuantizeHalf` ([`crate::cudaconv2::conv_util::util::conv_quantize_half`],
/// inferred), kernel `util_quantize_half`: `tgt` has `DIVUP(src.len(), 2)` words of
/// packed halves. Tier: **exact**.
pub fn conv_quantize_half(b: &dyn Backend, src: &DevBuf, tgt: &DevBuf) -> Result<(), GpuError> {
    let n = src.len();
    expect_len("convQuantizeHalf", tgt, divup(n, 2))?;
    run(
        b,
        "util_quantize_half",
        divup(n, 2),
        &[tgt.param(), src.param(), int(n)?],
    )
}

/// `convDequantizeHalf` ([`crate::cudaconv2::conv_util::util::conv_dequantize_half`],
/// inferred), kernel `util_dequantize_half`: `tgt` has `numElements` words (read when
/// `scaleTarget != 0`). Tier: **exact**.
pub fn conv_dequantize_half(
    b: &dyn Backend,
    src: &DevBuf,
    tgt: &DevBuf,
    num_elements: usize,
    scale_target: f32,
    scale_output: f32,
) -> Result<(), GpuError> {
    const F: &str = "convDequantizeHalf";
    dequantize_checks(src.len(), tgt.len(), num_elements, scale_target).map_err(shape_error)?;
    expect_len(F, tgt, num_elements)?;
    run(
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
