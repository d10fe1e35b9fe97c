//! Port of conv_util.cu / conv_util.cuh (cuda-convnet rev 6627f67): the image utilities
//! the layers of both generations call — `convBedOfNails` / `convBedOfNailsUndo`,
//! `convGaussianBlur`, `convResizeBilinear`, `convRGBToYUV`, `convRGBToLAB`, `convCrop`
//! — and the 2012 code's A12-missing `convReflectHorizontal`, `convQuantizeHalf`,
//! `convDequantizeHalf`. (`normalizeLocalWeights` and `convTICA` / `convTICAGrad` are in
//! [`super::norm`]; an independent port of them, checked in the PTX interpreter below,
//! gave the same bits on every shape we compared and was dropped.)
//!
//! Every function keeps the original's arguments and host checks (a failed host assert
//! is `Err(ShapeError)`); images are `(channels, y, x, images)` row-major matrices with
//! the images innermost. Each kernel performs, for every output element, the single
//! precision operations of the original kernel as CUDA 13.5 compiles it: we read the
//! PTX and the sm_90 SASS (`nvcc -ptx` / `-cubin` + `nvdisasm`) of the original kernels
//! built beside the project, and use `f32::mul_add` exactly where they have an FMA
//! (`fma.rn.f32` in the PTX, `FFMA` in the SASS; ptxas also contracts a few plain
//! `mul`/`sub` pairs, noted where it does). The tier of each function is in its doc.
//! The C1 kernels (blur, bed of nails, resize, YUV, LAB, TICA, local-weight norm) were
//! also run from that PTX in a small PTX interpreter beside the project (no GPU was
//! lent): our outputs matched bit for bit, with the special-function intrinsics
//! evaluated as [`intrinsics`] does.
//!
//! Speed: these kernels are memory bound. Work is split over threads by output rows or
//! image lines ([`for_each_task`]); the images of a row are processed as contiguous
//! slices or in `[f32; LANES]` lane arrays, every lane running the identical sequence,
//! so the bits depend neither on the lane width nor on the thread count.

// Lane loops index several arrays at the same lane; written as such for the vectoriser.
#![allow(clippy::needless_range_loop)]

use super::shape_of;
use crate::cudaconv2::{divup, require, MatShape, ShapeError};
use crate::nvmatrix::{intrinsics, NvMatrix};
use crate::parallel::{for_each_task, SharedOut};

/// `target = scaleTargets * target + scaleOutput * x` as every utility kernel writes it:
/// `scaleOutput * x` when `scaleTargets == 0` (the target is not read), else
/// `fma(target, scaleTargets, x * scaleOutput)` — nvcc fuses the target's product and
/// rounds the other (PTX `mul.f32` then `fma.rn.f32`, SASS `FMUL` + `FFMA`).
#[inline(always)]
fn scaled(t: f32, x: f32, st: f32, so: f32) -> f32 {
    if st != 0.0 {
        st.mul_add(t, x * so)
    } else {
        x * so
    }
}

/// `dst[i] = scaled(dst[i], src[i])` over a row of images.
#[inline]
fn scaled_row(dst: &mut [f32], src: &[f32], st: f32, so: f32) {
    if st != 0.0 {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = st.mul_add(*d, s * so);
        }
    } else {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s * so;
        }
    }
}

fn not_trans(m: MatShape, function: &'static str, name: &str) -> Result<(), ShapeError> {
    require(!m.trans, function, &format!("!{name}.isTrans()"))
}

/// The images of `m` (a `(rows, numImages)` row-major matrix), one row at a time.
#[inline]
fn row(m: &[f32], n: usize, r: usize) -> &[f32] {
    &m[r * n..(r + 1) * n]
}

// ---------------------------------------------------------------------------------
// Bed of nails
// ---------------------------------------------------------------------------------

/// `convBedOfNails(images, target, numChannels, imgSize, startX, strideX, scaleTargets,
/// scaleOutput)` — `kBedOfNails<4, 32, ipt, chansPerThread, ccb>` with `reverse =
/// false`: output `(c, oy, ox)` is the image pixel `(c, startX + oy*strideX, startX +
/// ox*strideX)`; `outputsX = DIVUP(imgSize, strideX)`; target `(numChannels *
/// outputsX², numImages)`, resized when `scaleTargets == 0`.
///
/// Tier **exact**: `scaleOutput * x`, or `fma(target, scaleTargets, x * scaleOutput)`
/// (PTX/SASS of the original). The variants (`imgsPerThread` 4/2/1 by `numImages %
/// 128/64`, `chansPerThread` 2 if `numChannels % 8 == 0`, `checkCaseBounds`) only
/// change the thread mapping, not the arithmetic.
///
/// Host checks as the original (`strideX > 1`, no transposed matrices, row counts);
/// one more: every nail must lie in the image (`0 ≤ startX` and `startX +
/// (outputsX-1)*strideX < imgSize`) — the original does not check and would read out
/// of bounds; the layer parser always chooses such a `startX`.
#[allow(clippy::too_many_arguments)]
pub fn conv_bed_of_nails(
    images: &NvMatrix,
    target: &mut NvMatrix,
    num_channels: usize,
    img_size: usize,
    start_x: i32,
    stride_x: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let num_images = images.cols();
    let g = bed_of_nails_checks(
        shape_of(images),
        shape_of(target),
        num_channels,
        img_size,
        start_x,
        stride_x,
        scale_targets,
    )?;
    if scale_targets == 0.0 {
        target.resize(num_channels * g.outputs, num_images);
    }
    let src = images.data();
    let out = SharedOut::new(target.data_mut());
    for_each_task(num_channels * g.outputs, |r| {
        let c = r / g.outputs;
        let px = g.nail_pixel(r % g.outputs);
        // SAFETY: output row r belongs to this task only.
        let dst = unsafe { out.slice(r * num_images, num_images) };
        scaled_row(
            dst,
            row(src, num_images, c * g.img_pixels + px),
            scale_targets,
            scale_output,
        );
    });
    Ok(())
}

/// The host checks of `convBedOfNails` (the target's shape only when `scaleTargets !=
/// 0`).
pub(crate) fn bed_of_nails_checks(
    images: MatShape,
    target: MatShape,
    num_channels: usize,
    img_size: usize,
    start_x: i32,
    stride_x: usize,
    scale_targets: f32,
) -> Result<Nails, ShapeError> {
    const F: &str = "convBedOfNails";
    let g = nails_geometry(F, images, target, img_size, start_x, stride_x)?;
    require(
        images.rows == num_channels * g.img_pixels,
        F,
        "images.getNumRows() == numChannels * imgPixels",
    )?;
    if scale_targets != 0.0 {
        require(
            target.rows == num_channels * g.outputs,
            F,
            "target.getNumRows() == numChannels * outputs",
        )?;
        require(
            target.cols == images.cols,
            F,
            "target.getNumCols() == numImages",
        )?;
    }
    Ok(g)
}

/// `convBedOfNailsUndo(actsGrad, target, numChannels, imgSize, startX, strideX,
/// scaleTargets, scaleOutput)` — `kBedOfNails` with `reverse = true`: the gradient of
/// every nail goes back to its image pixel. When `scaleTargets == 0` the target is
/// resized to `(numChannels*imgSize², numImages)` and zeroed first (`apply(Zero)`), then
/// the nails get `scaleOutput * grad`; otherwise the nails get `fma(target,
/// scaleTargets, grad * scaleOutput)` and the other pixels keep their value.
///
/// Tier **exact** (as [`conv_bed_of_nails`]).
///
/// **BUG reproduced**: with `scaleTargets != 0` the original asserts that the *image*
/// gradient has `numChannels * outputs` rows (it means `numChannels * imgPixels`), which
/// cannot hold for `imgSize > 1`, so accumulating into an existing gradient aborts; we
/// return that `Err`. [`conv_bed_of_nails_undo_fixed`] checks the intended shape.
#[allow(clippy::too_many_arguments)]
pub fn conv_bed_of_nails_undo(
    acts_grad: &NvMatrix,
    target: &mut NvMatrix,
    num_channels: usize,
    img_size: usize,
    start_x: i32,
    stride_x: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    bed_of_nails_undo(
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

/// [`conv_bed_of_nails_undo`] with the scale path's shape check corrected: the target
/// must be `(numChannels * imgPixels, numImages)`. Same arithmetic, tier **exact**.
#[allow(clippy::too_many_arguments)]
pub fn conv_bed_of_nails_undo_fixed(
    acts_grad: &NvMatrix,
    target: &mut NvMatrix,
    num_channels: usize,
    img_size: usize,
    start_x: i32,
    stride_x: usize,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    bed_of_nails_undo(
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

#[allow(clippy::too_many_arguments)]
fn bed_of_nails_undo(
    acts_grad: &NvMatrix,
    target: &mut NvMatrix,
    num_channels: usize,
    img_size: usize,
    start_x: i32,
    stride_x: usize,
    scale_targets: f32,
    scale_output: f32,
    fixed: bool,
) -> Result<(), ShapeError> {
    let num_images = acts_grad.cols();
    let g = bed_of_nails_undo_checks(
        shape_of(acts_grad),
        shape_of(target),
        num_channels,
        img_size,
        start_x,
        stride_x,
        scale_targets,
        fixed,
    )?;
    if scale_targets == 0.0 {
        target.resize(num_channels * g.img_pixels, num_images);
        target.data_mut().fill(0.0);
    }
    let src = acts_grad.data();
    let out = SharedOut::new(target.data_mut());
    for_each_task(num_channels * g.outputs, |r| {
        let c = r / g.outputs;
        let px = g.nail_pixel(r % g.outputs);
        // SAFETY: the nails are distinct pixels (strideX > 1), so image row
        // (c, px) belongs to the task of output row r only.
        let dst = unsafe { out.slice((c * g.img_pixels + px) * num_images, num_images) };
        scaled_row(dst, row(src, num_images, r), scale_targets, scale_output);
    });
    Ok(())
}

/// The host checks of `convBedOfNailsUndo` (the target's shape only when
/// `scaleTargets != 0`; `fixed`: the intended row count, else the original's).
#[allow(clippy::too_many_arguments)]
pub(crate) fn bed_of_nails_undo_checks(
    acts_grad: MatShape,
    target: MatShape,
    num_channels: usize,
    img_size: usize,
    start_x: i32,
    stride_x: usize,
    scale_targets: f32,
    fixed: bool,
) -> Result<Nails, ShapeError> {
    const F: &str = "convBedOfNailsUndo";
    let g = nails_geometry(F, target, acts_grad, img_size, start_x, stride_x)?;
    require(
        acts_grad.rows == num_channels * g.outputs,
        F,
        "actsGrad.getNumRows() == numChannels * outputs",
    )?;
    if scale_targets != 0.0 {
        if fixed {
            require(
                target.rows == num_channels * g.img_pixels,
                F,
                "target.getNumRows() == numChannels * imgPixels",
            )?;
        } else {
            // The original's check (see the BUG note above).
            require(
                target.rows == num_channels * g.outputs,
                F,
                "target.getNumRows() == numChannels * outputs",
            )?;
        }
        require(
            target.cols == acts_grad.cols,
            F,
            "target.getNumCols() == numImages",
        )?;
    }
    Ok(g)
}

/// The nails of a bed-of-nails call: output `(oy, ox)` samples image pixel `(start +
/// oy*stride, start + ox*stride)`.
#[derive(Clone, Copy)]
pub(crate) struct Nails {
    pub img_size: usize,
    pub img_pixels: usize,
    pub start: usize,
    pub stride: usize,
    pub outputs_x: usize,
    pub outputs: usize,
}

impl Nails {
    /// The image pixel of output `o = oy*outputsX + ox`.
    #[inline]
    fn nail_pixel(&self, o: usize) -> usize {
        let (oy, ox) = (o / self.outputs_x, o % self.outputs_x);
        (self.start + oy * self.stride) * self.img_size + self.start + ox * self.stride
    }
}

/// The host checks `_convBedOfNails` makes on both directions, plus the nails-inside
/// check.
fn nails_geometry(
    f: &'static str,
    images: MatShape,
    target: MatShape,
    img_size: usize,
    start_x: i32,
    stride_x: usize,
) -> Result<Nails, ShapeError> {
    not_trans(images, f, "images")?;
    not_trans(target, f, "target")?;
    require(stride_x > 1, f, "strideX > 1")?;
    let outputs_x = divup(img_size, stride_x);
    require(
        start_x >= 0 && (img_size == 0 || start_x as usize + (outputs_x - 1) * stride_x < img_size),
        f,
        "0 <= startX && startX + (outputsX-1)*strideX < imgSize (the nails inside the image)",
    )?;
    Ok(Nails {
        img_size,
        img_pixels: img_size * img_size,
        start: start_x as usize,
        stride: stride_x,
        outputs_x,
        outputs: outputs_x * outputs_x,
    })
}

// ---------------------------------------------------------------------------------
// Gaussian blur
// ---------------------------------------------------------------------------------

/// `convGaussianBlur(images, filter, target, horiz, numChannels, scaleTargets,
/// scaleOutputs)` — `kGaussianBlur<4, 32, radius>`, `radius = filter.cols/2 ∈ 1..4`:
/// one pass of a separable blur along rows (`horiz`) or columns, zero outside the
/// image. Target `(numChannels*imgSize², numImages)`, resized when `scaleTargets == 0`.
///
/// **What the kernel computes.** Each GPU thread streams along one line of one image
/// with `2r` rolling partial sums. The filter is staged in a shared array declared with
/// `radius` entries, and threads `0..2r` store taps `0..2r` into it (**BUG**, INVENTORY
/// §13): the stores past the array land in the block's shared-memory allocation
/// padding (allocated in ≥128-byte granules) and read back as written, so taps
/// `g[0..2r]` are the filter's own; tap `2r` is never loaded and the kernel uses
/// `g[0]` in its place (it relies on a symmetric filter). With `x[j]` the line's
/// pixels and `y[p]` the output, the kernel's sum is
/// `y[p] = Σ_{c} x[c]·g[r + c - p]` over the first `r` pixels `c < r` (a correlation,
/// added in the first `r` steps) and `x[c]·g[p + r - c]` for `c ≥ r` (a convolution),
/// with `g[2r] := g[0]`: both agree for a symmetric filter. We reproduce that exactly.
///
/// **Order and FMA sites** (PTX and SASS of the original, CUDA 13.5, identical for
/// sm_75 and sm_90): the first `r` pixels add into fresh sums with `fma(x, g, 0)`,
/// later taps with `fma(x, g, sum)`. The main loop (pixels `r..imgSize`, one output
/// each) is unrolled by nvcc in groups of 4 steps, the `(imgSize - r) % 4` last steps
/// running one at a time, and the contraction depends on the step's place in its
/// group: the product `x·g[0]` that starts the newest partial sum is not rounded
/// inside a group — steps 1..3 of a group update the second-newest sum with
/// `fma(x_prev, g[0], round(x·g[2r-1]))` — while at the group's last step, and in
/// every single step, it is rounded, and that step's output is `sum + round(x·g[0])`
/// instead of `fma(x, g[0], sum)`. The output is then `sum * scaleOutputs` or
/// `fma(target, scaleTargets, sum * scaleOutputs)`. Tier **exact** with respect to
/// that compiled kernel (checked bit for bit against its PTX for every radius, both
/// directions and scale paths, and image sizes giving every group remainder). The
/// grouping is nvcc's choice: another compiler version may group differently, which
/// moves single roundings (each within half an ulp of one product).
///
/// Host checks as the original (square images, `1 ≤ radius ≤ 4`, `imgSize ≥ 2r+1`,
/// `filter.rows == 1`, no transposed matrices). The original launches
/// `DIVUP(numChannels*imgSize, 4)*4` lines; when `numChannels*imgSize` is not a
/// multiple of 4 the extra lines read and write past the matrices — we compute only
/// the real lines.
#[allow(clippy::too_many_arguments)]
pub fn conv_gaussian_blur(
    images: &NvMatrix,
    filter: &NvMatrix,
    target: &mut NvMatrix,
    horiz: bool,
    num_channels: usize,
    scale_targets: f32,
    scale_outputs: f32,
) -> Result<(), ShapeError> {
    let b = blur_checks(images, filter, num_channels)?;
    not_trans(shape_of(target), "convGaussianBlur", "target")?;
    if scale_targets == 0.0 {
        target.resize_like(images);
    } else {
        require(
            target.same_dims(images),
            "convGaussianBlur",
            "target.isSameDims(images)",
        )?;
    }
    let src = Ptr(images.data().as_ptr() as *mut f32);
    let out = Ptr(target.data_mut().as_mut_ptr());
    blur_run(b, src, out, horiz, scale_targets, scale_outputs);
    Ok(())
}

/// [`conv_gaussian_blur`] with the target the same matrix as the images (the layer's
/// vertical pass: `convGaussianBlur(getActs(), _filter, getActs(), false, ...)`), which
/// the original supports: each line is read ahead of where it is written. With
/// `scaleTargets != 0` the target values read are the original pixels. Tier **exact**.
pub fn conv_gaussian_blur_in_place(
    images: &mut NvMatrix,
    filter: &NvMatrix,
    horiz: bool,
    num_channels: usize,
    scale_targets: f32,
    scale_outputs: f32,
) -> Result<(), ShapeError> {
    let b = blur_checks(images, filter, num_channels)?;
    // Reading through the output: a task reads only its own lines, each pixel before
    // the write `r` steps later that replaces it.
    let out = Ptr(images.data_mut().as_mut_ptr());
    blur_run(b, out, out, horiz, scale_targets, scale_outputs);
    Ok(())
}

#[derive(Clone, Copy)]
struct Blur {
    radius: usize,
    img_size: usize,
    num_images: usize,
    num_channels: usize,
    taps: [f32; 8],
}

fn blur_checks(
    images: &NvMatrix,
    filter: &NvMatrix,
    num_channels: usize,
) -> Result<Blur, ShapeError> {
    let (radius, img_size) = blur_shape(shape_of(images), shape_of(filter), num_channels)?;
    let mut taps = [0.0; 8];
    taps[..2 * radius].copy_from_slice(&filter.data()[..2 * radius]);
    Ok(Blur {
        radius,
        img_size,
        num_images: images.cols(),
        num_channels,
        taps,
    })
}

/// The host checks of `convGaussianBlur` on the images and filter; returns `(radius,
/// imgSize)`.
pub(crate) fn blur_shape(
    images: MatShape,
    filter: MatShape,
    num_channels: usize,
) -> Result<(usize, usize), ShapeError> {
    const F: &str = "convGaussianBlur";
    require(num_channels > 0, F, "numChannels > 0")?;
    let radius = filter.cols / 2;
    let img_pixels = images.rows / num_channels;
    let img_size = (img_pixels as f64).sqrt() as usize;
    require(
        img_pixels == img_size * img_size,
        F,
        "imgPixels == imgSize * imgSize",
    )?;
    require((1..=4).contains(&radius), F, "radius >= 1 && radius <= 4")?;
    require(img_size > 2 * radius, F, "imgSize >= 2 * radius + 1")?;
    require(filter.rows == 1, F, "filter.getNumRows() == 1")?;
    require(
        images.rows == num_channels * img_pixels,
        F,
        "images.getNumRows() == numChannels * imgPixels",
    )?;
    not_trans(images, F, "images")?;
    not_trans(filter, F, "filter")?;
    Ok((radius, img_size))
}

/// A matrix's elements for the blur's tasks: the source (only read) and the target,
/// which may be the same memory (in place). Each task reads and writes only its own
/// lines, so the raw accesses never race.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: see above; the pointers outlive the `for_each_task` call that uses them.
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

fn blur_run(b: Blur, src: Ptr, out: Ptr, horiz: bool, st: f32, so: f32) {
    // Lane arrays of 16 floats for r <= 2 and 8 for r > 2 keep the 2r partial sums in
    // the 16 AVX registers.
    match (b.radius, st != 0.0) {
        (1, false) => blur_lines::<1, 2, 16, false>(b, src, out, horiz, st, so),
        (1, true) => blur_lines::<1, 2, 16, true>(b, src, out, horiz, st, so),
        (2, false) => blur_lines::<2, 4, 16, false>(b, src, out, horiz, st, so),
        (2, true) => blur_lines::<2, 4, 16, true>(b, src, out, horiz, st, so),
        (3, false) => blur_lines::<3, 6, 8, false>(b, src, out, horiz, st, so),
        (3, true) => blur_lines::<3, 6, 8, true>(b, src, out, horiz, st, so),
        (_, false) => blur_lines::<4, 8, 8, false>(b, src, out, horiz, st, so),
        (_, true) => blur_lines::<4, 8, 8, true>(b, src, out, horiz, st, so),
    }
}

/// Floats of a line's payload per task (at most `MAX_CHUNKS` lane arrays).
const BLUR_SPAN: usize = 512;
/// Lane arrays per task: `BLUR_SPAN / 8`.
const MAX_CHUNKS: usize = 64;

/// The blur as lines of `n` positions whose payload at each position is a contiguous
/// span of floats that all run the identical sequence: for the horizontal pass a line
/// is an image row and the payload the images of a pixel; for the vertical pass every
/// column of a channel moves down together and the payload is the whole image row
/// (columns × images). Tasks are (line, payload span ≤ 512 floats) pairs; a task walks
/// the positions in order and, at each, sweeps its span in lane arrays of `L` floats
/// (the last one padded), each with its own partial sums — memory is read and written
/// row by row, the sums stay in L1.
fn blur_lines<const R: usize, const W: usize, const L: usize, const SCALE: bool>(
    b: Blur,
    src: Ptr,
    out: Ptr,
    horiz: bool,
    st: f32,
    so: f32,
) {
    let n = b.img_size;
    let ni = b.num_images;
    let plane = n * n * ni;
    // (lines, position stride, payload width) in floats.
    let (lines, pos_stride, width) = if horiz {
        (b.num_channels * n, ni, ni)
    } else {
        (b.num_channels, n * ni, n * ni)
    };
    let spans = divup(width, BLUR_SPAN);
    let g = &b.taps;
    for_each_task(lines * spans, |task| {
        let (line, span) = (task / spans, task % spans);
        let base = if horiz {
            (line / n) * plane + (line % n) * n * ni
        } else {
            line * plane
        };
        let (w0, w1) = (span * BLUR_SPAN, ((span + 1) * BLUR_SPAN).min(width));
        let full = (w1 - w0) / L;
        let chunks = divup(w1 - w0, L);
        let io = |c: usize| LineIo::<L, SCALE> {
            src,
            out,
            base: base + w0 + c * L,
            pos_stride,
            cnt: L.min(w1 - w0 - c * L),
            st,
            so,
        };
        // The used chunks' states, zeroed (no allocation, no clearing of unused ones).
        let mut buf = [const { std::mem::MaybeUninit::<BlurState<W, L>>::uninit() }; MAX_CHUNKS];
        for b in &mut buf[..chunks] {
            b.write(BlurState {
                sums: [[0.0; L]; W],
                prev: [0.0; L],
            });
        }
        // SAFETY: the first `chunks` entries are initialised; BlurState is plain data.
        let states = unsafe {
            &mut *(&mut buf[..chunks] as *mut [std::mem::MaybeUninit<BlurState<W, L>>]
                as *mut [BlurState<W, L>])
        };
        // Each lane chunk runs the kernel's loop (see `conv_gaussian_blur`); FULL
        // chunks use whole-array loads and stores.
        macro_rules! sweep {
            (|$c:ident, $st:ident, $io:ident| $body:expr) => {
                for ($c, $st) in states.iter_mut().enumerate() {
                    if $c < full {
                        let $io = io($c).full();
                        $body
                    } else {
                        let $io = io($c);
                        $body
                    }
                }
            };
        }
        // The first r pixels start the sums: sum k += x[col] * g[r + col - k], from 0.
        for col in 0..R {
            sweep!(|c, s, io| {
                let p = io.load(col);
                for (k, a) in s.sums.iter_mut().enumerate().take(R + 1 + col) {
                    let gk = g[R + col - k];
                    for l in 0..L {
                        a[l] = p[l].mul_add(gk, a[l]);
                    }
                }
            });
        }
        // The main loop: pixels r..n in nvcc's groups of 4 steps, then single steps.
        let steps = n - R;
        let mut t = 0;
        while t + 4 <= steps {
            sweep!(|c, s, io| blur_step::<W, L, SCALE, true, false>(g, s, &io.load(R + t), t, &io));
            sweep!(|c, s, io| blur_step::<W, L, SCALE, true, true>(
                g,
                s,
                &io.load(R + t + 1),
                t + 1,
                &io
            ));
            sweep!(|c, s, io| blur_step::<W, L, SCALE, true, true>(
                g,
                s,
                &io.load(R + t + 2),
                t + 2,
                &io
            ));
            sweep!(|c, s, io| blur_step::<W, L, SCALE, false, true>(
                g,
                s,
                &io.load(R + t + 3),
                t + 3,
                &io
            ));
            t += 4;
        }
        while t < steps {
            sweep!(|c, s, io| blur_step::<W, L, SCALE, false, false>(
                g,
                s,
                &io.load(R + t),
                t,
                &io
            ));
            t += 1;
        }
        for k in 0..R {
            sweep!(|c, s, io| io.store(n - R + k, &s.sums[k]));
        }
    });
}

/// Reads and writes of one lane chunk of a line: position `j` is at `base + j *
/// pos_stride`, `cnt ≤ L` floats. Every position of the line and its `cnt` floats lie
/// inside the matrices (the task ranges are built so).
#[derive(Clone, Copy)]
struct LineIo<const L: usize, const SCALE: bool> {
    src: Ptr,
    out: Ptr,
    base: usize,
    pos_stride: usize,
    cnt: usize,
    st: f32,
    so: f32,
}

/// A [`LineIo`] whose chunk has all `L` floats: whole-array loads and stores.
#[derive(Clone, Copy)]
struct FullIo<const L: usize, const SCALE: bool>(LineIo<L, SCALE>);

/// Loads and (scaled) stores of a lane chunk.
trait ChunkIo<const L: usize> {
    fn load(&self, j: usize) -> [f32; L];
    fn store(&self, j: usize, v: &[f32; L]);
}

impl<const L: usize, const SCALE: bool> LineIo<L, SCALE> {
    #[inline(always)]
    fn full(self) -> FullIo<L, SCALE> {
        debug_assert_eq!(self.cnt, L);
        FullIo(self)
    }
}

impl<const L: usize, const SCALE: bool> ChunkIo<L> for LineIo<L, SCALE> {
    #[inline(always)]
    fn load(&self, j: usize) -> [f32; L] {
        let mut v = [0.0; L];
        // SAFETY: in bounds (see the struct); in place, position j is read before the
        // write `r` steps later that replaces it, by this task only.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.src.0.add(self.base + j * self.pos_stride),
                v.as_mut_ptr(),
                self.cnt,
            )
        };
        v
    }

    #[inline(always)]
    fn store(&self, j: usize, v: &[f32; L]) {
        let (st, so) = (self.st, self.so);
        for (l, &v) in v.iter().enumerate().take(self.cnt) {
            // SAFETY: in bounds (see the struct); this task's own elements.
            unsafe {
                let t = self.out.0.add(self.base + j * self.pos_stride + l);
                *t = if SCALE {
                    st.mul_add(*t, v * so)
                } else {
                    v * so
                };
            }
        }
    }
}

impl<const L: usize, const SCALE: bool> ChunkIo<L> for FullIo<L, SCALE> {
    #[inline(always)]
    fn load(&self, j: usize) -> [f32; L] {
        let io = &self.0;
        // SAFETY: as for LineIo, with cnt == L.
        unsafe {
            std::ptr::read_unaligned(io.src.0.add(io.base + j * io.pos_stride) as *const [f32; L])
        }
    }

    #[inline(always)]
    fn store(&self, j: usize, v: &[f32; L]) {
        let io = &self.0;
        let (st, so) = (io.st, io.so);
        // SAFETY: as for LineIo, with cnt == L.
        unsafe {
            let d = io.out.0.add(io.base + j * io.pos_stride) as *mut [f32; L];
            let mut o = [0.0f32; L];
            if SCALE {
                let t = std::ptr::read_unaligned(d);
                for l in 0..L {
                    o[l] = st.mul_add(t[l], v[l] * so);
                }
            } else {
                for l in 0..L {
                    o[l] = v[l] * so;
                }
            }
            std::ptr::write_unaligned(d, o);
        }
    }
}

/// The partial sums of one lane chunk: `sums[k]` collects output `out + k` (see
/// [`conv_gaussian_blur`]); `prev` is the pixel whose product `prev * g[0]` is the
/// newest sum while it is still unrounded (inside one of nvcc's 4-step groups).
#[derive(Clone, Copy)]
struct BlurState<const W: usize, const L: usize> {
    sums: [[f32; L]; W],
    prev: [f32; L],
}

/// One main-loop step with pixel `p`, writing output `at`. `FUSED`: the output is
/// `fma(p, g[0], sums[0])` and the newest sum stays unrounded (steps 0..2 of a group);
/// else the output is `sums[0] + round(p*g[0])` (a group's last step, single steps).
/// `PENDING`: the newest sum is the unrounded `prev * g[0]` (steps 1..3 of a group).
#[inline(always)]
fn blur_step<
    const W: usize,
    const L: usize,
    const SCALE: bool,
    const FUSED: bool,
    const PENDING: bool,
>(
    g: &[f32; 8],
    st: &mut BlurState<W, L>,
    p: &[f32; L],
    at: usize,
    io: &impl ChunkIo<L>,
) {
    let mut o = [0.0f32; L];
    let mut m = [0.0f32; L];
    if FUSED {
        for l in 0..L {
            o[l] = p[l].mul_add(g[0], st.sums[0][l]);
        }
    } else {
        for l in 0..L {
            m[l] = p[l] * g[0];
            o[l] = st.sums[0][l] + m[l];
        }
    }
    io.store(at, &o);
    for j in 1..W - 1 {
        for l in 0..L {
            st.sums[j - 1][l] = p[l].mul_add(g[j], st.sums[j][l]);
        }
    }
    if PENDING {
        for l in 0..L {
            st.sums[W - 2][l] = st.prev[l].mul_add(g[0], p[l] * g[W - 1]);
        }
    } else {
        for l in 0..L {
            st.sums[W - 2][l] = p[l].mul_add(g[W - 1], st.sums[W - 1][l]);
        }
    }
    if FUSED {
        st.prev = *p;
    } else {
        st.sums[W - 1] = m;
    }
}

// ---------------------------------------------------------------------------------
// Resize, colour transforms, crop, reflection
// ---------------------------------------------------------------------------------

/// `convResizeBilinear(images, target, imgSize, tgtSize, scale)` —
/// `kResizeBilinear<ipt, ccb>`: target `(numChannels*tgtSize², numImages)` (resized).
/// For output pixel `(py, px)`: `s = fmaxf(0, fminf(float(imgSize) - 1.01f,
/// fma(float(p), scale, centerScale)))` per axis, `centerScale = imgSize/2 -
/// (tgtSize/2)*scale` computed in double on the host and passed as a float; `u =
/// floorf(sx + 1) - sx`, `w = sy - floorf(sy)`; with the four neighbours of
/// `(floor(sy), floor(sx))`: `c0 = fma(u, v00 - v01, v01)`, `c1 = fma(u, v10 - v11,
/// v11)`, `out = fma(w, c1 - c0, c0)`.
///
/// Tier **exact** (PTX `cvt.rn.f32.s32`, `fma.rn.f32`, `min/max.f32`, `cvt.rmi`; SASS
/// the same). Host checks as the original; one more: `imgSize ≥ 2` (with `imgSize ==
/// 1` the original reads a neighbour outside the image).
pub fn conv_resize_bilinear(
    images: &NvMatrix,
    target: &mut NvMatrix,
    img_size: usize,
    tgt_size: usize,
    scale: f32,
) -> Result<(), ShapeError> {
    let num_channels = resize_checks(shape_of(images), shape_of(target), img_size)?;
    let img_pixels = img_size * img_size;
    let tgt_pixels = tgt_size * tgt_size;
    let num_images = images.cols();
    target.resize(num_channels * tgt_pixels, num_images);
    let center_scale = resize_center_scale(img_size, tgt_size, scale);
    let hi = img_size as f32 - 1.01f32;
    let coord = |p: usize| -> f32 { (p as f32).mul_add(scale, center_scale).min(hi).max(0.0) };
    let src = images.data();
    let out = SharedOut::new(target.data_mut());
    for_each_task(num_channels * tgt_pixels, |r| {
        let (c, q) = (r / tgt_pixels, r % tgt_pixels);
        let (sy, sx) = (coord(q / tgt_size), coord(q % tgt_size));
        let u = (sx + 1.0).floor() - sx;
        let w = sy - sy.floor();
        let p0 = c * img_pixels + sy.floor() as usize * img_size + sx.floor() as usize;
        let (v0, v1) = (row(src, num_images, p0), row(src, num_images, p0 + 1));
        let (v2, v3) = (
            row(src, num_images, p0 + img_size),
            row(src, num_images, p0 + img_size + 1),
        );
        // SAFETY: output row r belongs to this task only.
        let dst = unsafe { out.slice(r * num_images, num_images) };
        for i in 0..num_images {
            let c0 = u.mul_add(v0[i] - v1[i], v1[i]);
            let c1 = u.mul_add(v2[i] - v3[i], v3[i]);
            dst[i] = w.mul_add(c1 - c0, c0);
        }
    });
    Ok(())
}

/// The host checks of `convResizeBilinear`; returns `numChannels`.
pub(crate) fn resize_checks(
    images: MatShape,
    target: MatShape,
    img_size: usize,
) -> Result<usize, ShapeError> {
    const F: &str = "convResizeBilinear";
    not_trans(images, F, "images")?;
    not_trans(target, F, "target")?;
    require(
        img_size >= 2,
        F,
        "imgSize >= 2 (the bilinear neighbours inside the image)",
    )?;
    let img_pixels = img_size * img_size;
    let num_channels = images.rows / img_pixels;
    require(
        images.rows == num_channels * img_pixels,
        F,
        "images.getNumRows() == numChannels * imgPixels",
    )?;
    Ok(num_channels)
}

/// `centerScale` of `convResizeBilinear`: `imgSize/2 - (tgtSize/2)*scale` in double on
/// the host, passed to the kernel as a float.
pub(crate) fn resize_center_scale(img_size: usize, tgt_size: usize, scale: f32) -> f32 {
    (img_size as f64 * 0.5 - tgt_size as f64 * 0.5 * scale as f64) as f32
}

/// The host checks shared by the colour transforms; returns `imgPixels`.
pub(crate) fn colour_shape(
    f: &'static str,
    images: MatShape,
    target: MatShape,
) -> Result<usize, ShapeError> {
    not_trans(images, f, "images")?;
    not_trans(target, f, "target")?;
    let img_pixels = images.rows / 3;
    require(
        images.rows == 3 * img_pixels,
        f,
        "images.getNumRows() == 3 * imgPixels",
    )?;
    Ok(img_pixels)
}

/// [`colour_shape`], then resizes the target to the images.
fn colour_checks(
    f: &'static str,
    images: &NvMatrix,
    target: &mut NvMatrix,
) -> Result<usize, ShapeError> {
    let img_pixels = colour_shape(f, shape_of(images), shape_of(target))?;
    target.resize(3 * img_pixels, images.cols());
    Ok(img_pixels)
}

/// Runs `f(r, g, b) -> (c0, c1, c2)` over every pixel and image of a 3-channel image.
fn per_pixel3(
    images: &NvMatrix,
    target: &mut NvMatrix,
    img_pixels: usize,
    f: impl Fn(f32, f32, f32) -> (f32, f32, f32) + Sync,
) {
    let n = images.cols();
    let src = images.data();
    let out = SharedOut::new(target.data_mut());
    let plane = img_pixels * n;
    for_each_task(img_pixels, |p| {
        let (s0, s1, s2) = (
            &src[p * n..][..n],
            &src[plane + p * n..][..n],
            &src[2 * plane + p * n..][..n],
        );
        // SAFETY: pixel p's three output rows belong to this task only.
        let (o0, o1, o2) = unsafe {
            (
                out.slice(p * n, n),
                out.slice(plane + p * n, n),
                out.slice(2 * plane + p * n, n),
            )
        };
        for i in 0..n {
            (o0[i], o1[i], o2[i]) = f(s0[i], s1[i], s2[i]);
        }
    });
}

/// `convRGBToYUV(images, target)` — `kRGBToYUV<ipt, ccb>`: `Y = 0.2126R + 0.7152G +
/// 0.0722B`, `U = -0.09991R - 0.33609G + 0.436B`, `V = 0.615R - 0.55861G - 0.05639B`;
/// target `(3*imgPixels, numImages)` (resized).
///
/// Tier **exact**. FMA sites (PTX and SASS of the original): `Y = fma(B, .0722,
/// fma(R, .2126, G*.7152))`, `U = fma(B, .436, fma(G, -.33609, R*-.09991))`, `V =
/// fma(B, -.05639, fma(R, .615, G*-.55861))` — nvcc rounds the G product of Y and V
/// but the R product of U.
pub fn conv_rgb_to_yuv(images: &NvMatrix, target: &mut NvMatrix) -> Result<(), ShapeError> {
    let img_pixels = colour_checks("convRGBToYUV", images, target)?;
    per_pixel3(images, target, img_pixels, |r, g, b| {
        let y = 0.0722f32.mul_add(b, 0.2126f32.mul_add(r, g * 0.7152));
        let u = 0.436f32.mul_add(b, (-0.33609f32).mul_add(g, r * -0.09991));
        let v = (-0.05639f32).mul_add(b, 0.615f32.mul_add(r, g * -0.55861));
        (y, u, v)
    });
    Ok(())
}

/// `labf` of conv_util.cu: `t > 0.0088564517 ? __powf(t, 0.3333) : 7.787037*t +
/// 0.13793103` (the second contracted to one FMA).
#[inline]
#[allow(clippy::excessive_precision)] // the original's constants, as written
fn labf(t: f32) -> f32 {
    if t > 0.008_856_451_7 {
        intrinsics::powf(t, 0.3333)
    } else {
        7.787_037f32.mul_add(t, 0.137_931_03)
    }
}

/// `convRGBToLAB(images, target, center)` — `kRGBToLAB<ipt, ccb, center>`: RGB (in
/// `[0,1]`) to XYZ, `X = 0.49R + 0.31G + 0.2B`, `Y = 0.17697R + 0.8124G + 0.01063B`,
/// `Z = 0.01G + 0.99B` (the source comment's factor 5.6506753 is not applied), then
/// `L = 116 f(Y) - 16` (`- 50` more if `center`), `a = 500 (f(X) - f(Y))`, `b = 200
/// (f(Y) - f(Z))` with `f` = `labf` (`__powf(t, 0.3333)` above 0.0088564517, else
/// `7.787037t + 0.13793103`). Target `(3*imgPixels, numImages)` (resized).
///
/// FMA sites (PTX/SASS of the original): `X = fma(B, .2, fma(R, .49, G*.31))`, `Y =
/// fma(B, .01063, fma(R, .17697, G*.8124))`, `Z = fma(G, .01, B*.99)`, the linear `f`
/// branch one FMA, `L = fma(f(Y), 116, -16)` then `- 50` as a separate add.
/// Tier **bounded**: `__powf` is `ex2.approx(0.3333 * lg2.approx(t))` on the GPU's
/// special-function unit, emulated by [`intrinsics::powf`] (correctly rounded steps);
/// the PTX ISA bounds (`lg2.approx` 2^-22.6 absolute, `ex2.approx` 2 ulp) put `f`
/// within 3 ulp of the GPU's, and `L`, `a`, `b` are exact functions of the `f` values.
pub fn conv_rgb_to_lab(
    images: &NvMatrix,
    target: &mut NvMatrix,
    center: bool,
) -> Result<(), ShapeError> {
    let img_pixels = colour_checks("convRGBToLAB", images, target)?;
    per_pixel3(images, target, img_pixels, |r, g, b| {
        let x = 0.2f32.mul_add(b, 0.49f32.mul_add(r, g * 0.31));
        let y = 0.01063f32.mul_add(b, 0.17697f32.mul_add(r, g * 0.8124));
        let z = 0.01f32.mul_add(g, b * 0.99);
        let (lx, ly, lz) = (labf(x), labf(y), labf(z));
        let mut l = 116.0f32.mul_add(ly, -16.0);
        if center {
            l -= 50.0;
        }
        (l, (lx - ly) * 500.0, (ly - lz) * 200.0)
    });
    Ok(())
}

/// `convCrop(imgs, target, imgSize, tgtSize, startY, startX)` — `kCrop<ipt, ccb>`: copies
/// the `tgtSize × tgtSize` window at `(startY, startX)` of every channel; target
/// `(numChannels*tgtSize², numImages)` (resized). Tier **exact** (a copy).
///
/// Host checks as the original (`imgSize - startY ≥ tgtSize`, `imgSize - startX ≥
/// tgtSize`, `startY, startX ≥ 0`, row count); more: `imgSize > 0` (the original
/// divides by it) and no transposed matrices (the original does not check and would
/// copy a column-major matrix as if it were row-major).
pub fn conv_crop(
    imgs: &NvMatrix,
    target: &mut NvMatrix,
    img_size: usize,
    tgt_size: usize,
    start_y: i32,
    start_x: i32,
) -> Result<(), ShapeError> {
    let num_channels = crop_checks(
        shape_of(imgs),
        shape_of(target),
        img_size,
        tgt_size,
        start_y,
        start_x,
    )?;
    let num_images = imgs.cols();
    let img_pixels = img_size * img_size;
    let tgt_pixels = tgt_size * tgt_size;
    let (sy, sx) = (start_y as usize, start_x as usize);
    target.resize(num_channels * tgt_pixels, num_images);
    let src = imgs.data();
    let out = SharedOut::new(target.data_mut());
    for_each_task(num_channels * tgt_pixels, |r| {
        let (c, q) = (r / tgt_pixels, r % tgt_pixels);
        let px = c * img_pixels + (sy + q / tgt_size) * img_size + sx + q % tgt_size;
        // SAFETY: output row r belongs to this task only.
        unsafe { out.slice(r * num_images, num_images) }.copy_from_slice(row(src, num_images, px));
    });
    Ok(())
}

/// The host checks of `convCrop`; returns `numChannels`.
pub(crate) fn crop_checks(
    imgs: MatShape,
    target: MatShape,
    img_size: usize,
    tgt_size: usize,
    start_y: i32,
    start_x: i32,
) -> Result<usize, ShapeError> {
    const F: &str = "convCrop";
    require(img_size > 0, F, "imgSize > 0")?;
    not_trans(imgs, F, "imgs")?;
    not_trans(target, F, "target")?;
    let img_pixels = img_size * img_size;
    let num_channels = imgs.rows / img_pixels;
    require(
        imgs.rows == img_pixels * num_channels,
        F,
        "imgs.getNumRows() == imgPixels * numChannels",
    )?;
    require(start_y >= 0, F, "startY >= 0")?;
    require(start_x >= 0, F, "startX >= 0")?;
    let (sy, sx) = (start_y as usize, start_x as usize);
    require(
        img_size >= sy && img_size - sy >= tgt_size,
        F,
        "imgSize - startY >= tgtSize",
    )?;
    require(
        img_size >= sx && img_size - sx >= tgt_size,
        F,
        "imgSize - startX >= tgtSize",
    )?;
    Ok(num_channels)
}

/// `convReflectHorizontal(images, targets, imgSize)` — A12-missing; the 2012
/// `HorizontalReflectionLayer` calls it forwards (`inputs → acts`) and backwards
/// (`v → prev actsGrad`, overwriting: it ignores `scaleTargets`). Ported from the
/// version in cuda-convnet2 (`kReflectH<numColors, ipt, ccb>`): `targets[c, y, x] =
/// images[c, y, imgSize-1-x]` for `numColors ∈ 1..3`; targets resized like the images.
/// Tier **exact** (a copy).
///
/// Host checks as cuda-convnet2 (`numColors * imgPixels == rows`, `1 ≤ numColors ≤ 3`);
/// more: `imgSize > 0` and a row-major `images` (the original reads memory as
/// row-major whatever the flag).
pub fn conv_reflect_horizontal(
    images: &NvMatrix,
    targets: &mut NvMatrix,
    img_size: usize,
) -> Result<(), ShapeError> {
    let num_colors = reflect_checks(shape_of(images), img_size)?;
    let num_cases = images.cols();
    let img_pixels = img_size * img_size;
    targets.resize_like(images);
    let src = images.data();
    let out = SharedOut::new(targets.data_mut());
    for_each_task(num_colors * img_pixels, |r| {
        let (c, q) = (r / img_pixels, r % img_pixels);
        let mirror = c * img_pixels + (q / img_size) * img_size + (img_size - 1 - q % img_size);
        // SAFETY: output row r belongs to this task only.
        unsafe { out.slice(r * num_cases, num_cases) }.copy_from_slice(row(src, num_cases, mirror));
    });
    Ok(())
}

/// The host checks of `convReflectHorizontal`; returns `numColors`.
pub(crate) fn reflect_checks(images: MatShape, img_size: usize) -> Result<usize, ShapeError> {
    const F: &str = "convReflectHorizontal";
    require(img_size > 0, F, "imgSize > 0")?;
    not_trans(images, F, "images")?;
    let img_pixels = img_size * img_size;
    let num_colors = images.rows / img_pixels;
    require(
        num_colors * img_pixels == images.rows,
        F,
        "numColors * imgPixels == images.getNumRows()",
    )?;
    require(
        num_colors > 0 && num_colors <= 3,
        F,
        "numColors > 0 && numColors <= 3",
    )?;
    Ok(num_colors)
}

// ---------------------------------------------------------------------------------
// Half-precision quantisation (A12-missing)
// ---------------------------------------------------------------------------------

/// `__float2half_rn`: IEEE binary16 bits of `x`, rounded to nearest even (PTX
/// `cvt.rn.f16.f32`): overflow to ±infinity (from ±65520 up), subnormal halves kept
/// (no flush), NaN → the canonical `0x7FFF`.
pub fn float2half_rn(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let abs = bits & 0x7FFF_FFFF;
    if abs > 0x7F80_0000 {
        return 0x7FFF;
    }
    if abs >= 0x477F_F000 {
        // |x| >= 65520 (the midpoint between 65504 and 2^16) or infinite.
        return sign | 0x7C00;
    }
    let exp = (abs >> 23) as i32;
    let mant = abs & 0x7F_FFFF;
    let round = |q: u32, rem: u32, half: u32| -> u32 {
        if rem > half || (rem == half && q & 1 == 1) {
            q + 1
        } else {
            q
        }
    };
    if exp >= 113 {
        // Normal half: |x| >= 2^-14. A carry out of the mantissa bumps the exponent.
        let q = (((exp - 112) as u32) << 10) | (mant >> 13);
        return sign | round(q, mant & 0x1FFF, 0x1000) as u16;
    }
    if exp == 0 {
        return sign; // f32 subnormals are far below half's smallest subnormal
    }
    // Subnormal half: the result is round(|x| * 2^24) in units of 2^-24.
    let m = mant | 0x80_0000;
    let shift = (126 - exp) as u32; // >= 14
    if shift > 25 {
        return sign;
    }
    let q = m >> shift;
    sign | round(q, m & ((1 << shift) - 1), 1 << (shift - 1)) as u16
}

/// `__half2float`: the exact value of binary16 bits `h` (NaN payloads kept).
pub fn half2float(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1F) as u32;
    let mant = (h & 0x3FF) as u32;
    let abs = match exp {
        0 => {
            // Subnormal (or zero): mant * 2^-24, exact in f32.
            let v = mant as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        31 => 0x7F80_0000 | (mant << 13),
        _ => ((exp + 112) << 23) | (mant << 13),
    };
    f32::from_bits(sign | abs)
}

/// `convQuantizeHalf(src, tgt)` — A12-missing; the 2012 `HalfQuantizer` (`quantF/quantB
/// = half`) calls it to send a layer's activations or gradients through host memory
/// between GPUs that cannot reach each other. Inferred kernel: every element of `src`,
/// in memory order (the `Quantizer` records the shape and orientation itself), becomes
/// an IEEE binary16 value by `__float2half_rn` (round to nearest even, see
/// [`float2half_rn`]). Our representation of the half buffer: `tgt` is resized to a
/// row-major `(1, DIVUP(n, 2))` matrix whose word `k` holds half `2k` in its low 16
/// bits and half `2k+1` in its high 16 bits (a `half` array in little-endian memory;
/// the last high half is 0 when `n` is odd). Tier **exact** (rounding is exact IEEE).
pub fn conv_quantize_half(src: &NvMatrix, tgt: &mut NvMatrix) -> Result<(), ShapeError> {
    let n = src.len();
    let words = divup(n, 2);
    tgt.resize(1, words);
    tgt.set_trans(false);
    let s = src.data();
    let out = SharedOut::new(tgt.data_mut());
    const CHUNK: usize = 4096;
    for_each_task(divup(words, CHUNK), |t| {
        let w0 = t * CHUNK;
        let cnt = CHUNK.min(words - w0);
        // SAFETY: words w0..w0+cnt belong to this task only.
        let dst = unsafe { out.slice(w0, cnt) };
        for (k, d) in dst.iter_mut().enumerate() {
            let i = 2 * (w0 + k);
            let lo = float2half_rn(s[i]) as u32;
            let hi = if i + 1 < n {
                float2half_rn(s[i + 1]) as u32
            } else {
                0
            };
            *d = f32::from_bits(lo | (hi << 16));
        }
    });
    Ok(())
}

/// `convDequantizeHalf(src, tgt, numElements, scaleTarget, scaleOutput)` —
/// A12-missing, the inverse of [`conv_quantize_half`] for `numElements` halves:
/// `tgt = scaleOutput * half2float(h)` when `scaleTarget == 0` (tgt resized to `(1,
/// numElements)`; the `Quantizer` then reshapes it), else `fma(tgt, scaleTarget,
/// half2float(h) * scaleOutput)` over `tgt`'s memory order (it must have `numElements`
/// elements). Inferred kernel, written as the other conv_util kernels write a scaled
/// target (nvcc contracts it so; our own excerpt's PTX/SASS); `__half2float` is exact.
/// Tier **exact** for that inferred kernel.
pub fn conv_dequantize_half(
    src: &NvMatrix,
    tgt: &mut NvMatrix,
    num_elements: usize,
    scale_target: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    dequantize_checks(src.len(), tgt.len(), num_elements, scale_target)?;
    if scale_target == 0.0 {
        tgt.resize(1, num_elements);
    }
    let s = src.data();
    let out = SharedOut::new(tgt.data_mut());
    const CHUNK: usize = 8192;
    for_each_task(divup(num_elements, CHUNK), |t| {
        let e0 = t * CHUNK;
        let cnt = CHUNK.min(num_elements - e0);
        // SAFETY: elements e0..e0+cnt belong to this task only.
        let dst = unsafe { out.slice(e0, cnt) };
        for (k, d) in dst.iter_mut().enumerate() {
            let i = e0 + k;
            let word = s[i / 2].to_bits();
            let h = if i.is_multiple_of(2) {
                word as u16
            } else {
                (word >> 16) as u16
            };
            *d = scaled(*d, half2float(h), scale_target, scale_output);
        }
    });
    Ok(())
}

/// The checks of `convDequantizeHalf` on the element counts of `src` and `tgt` (the
/// target's only when `scaleTarget != 0`).
pub(crate) fn dequantize_checks(
    src_len: usize,
    tgt_len: usize,
    num_elements: usize,
    scale_target: f32,
) -> Result<(), ShapeError> {
    const F: &str = "convDequantizeHalf";
    require(
        src_len >= divup(num_elements, 2),
        F,
        "src holds DIVUP(numElements, 2) words of halves",
    )?;
    if scale_target != 0.0 {
        require(
            tgt_len == num_elements,
            F,
            "tgt.getNumElements() == numElements",
        )?;
    }
    Ok(())
}
