//! Port of conv_util.cu / conv_util.cuh (the normalisation part): same-map response and
//! contrast normalisation (`convResponseNorm`, `convContrastNorm`) and their undo,
//! cross-map response normalisation (`convContrastNormCrossMap`,
//! `convResponseNormCrossMap`, the 2012 `minDiv` form) and its undo, TICA
//! (`convTICA`, `convTICAGrad`) and `normalizeLocalWeights`.
//!
//! Layout as in the original: every matrix is `(numFilters, imgPixels, numImages)`
//! row-major, images innermost; `imgPixels = imgSize²`.
//!
//! # Per-element operation sequences (from the PTX of the original kernels)
//!
//! The original kernels were compiled with nvcc 13 (`-arch=sm_75`, default
//! `--fmad=true`) beside the project and their PTX read; the sequences below are what
//! every output element goes through, and what this module performs in f32:
//!
//! - **forward** (`kCNorm_fewfilter`, `kCNorm_manyfilter`, `kCNorm2`, `kFCNorm`):
//!   `acc = 0; acc = fma(m, m, acc)` over the window (spatial: window rows ascending,
//!   then columns; cross-map: channels ascending); `d = fma(addScale, acc, 1)` (the
//!   2012 form: `minDiv` instead of 1); `denoms = d`; `target = img * __powf(d,
//!   -powScale)` with `__powf(x, y) = ex2.approx(y * lg2.approx(x))`. The three
//!   same-map variants differ only in how threads share loads (`kCNorm2` stages the
//!   union of a 4×4 pixel block's windows in shared memory, and each thread adds the
//!   pixels of its own window as the block walks the union in raster order): every
//!   element sees the same terms in the same order, so one implementation serves all
//!   three ([`contrast_norm_kernel`] names the one the original picks).
//! - **undo prelims** (`kRNormUndoPrelims`): `acts = __fdividef((scale * outGrads) *
//!   acts, denoms)` with `scale = (-2 * addScale) * powScale` formed on the host.
//! - **undo** (`kRNormUndo`, `kRNormUndo2`, `kFRNormUndo`): `acc = 0; acc = acc + a`
//!   over the reverse window (plain adds, no FMA); `v = fma(inputs, acc, outGrads *
//!   __powf(denoms, -powScale))`; write `target = v`, or, accumulating,
//!   `target = fma(scaleTargets, target, v * scaleOutput)`.
//! - **TICA** (`kTICA_manyfilter`): `acc = fma(x, x, acc)` over the window;
//!   `q = __fdividef(1, f32(f64(sqrtf(acc)) + 0.001))` (the literal `0.001` is a
//!   double, so the addition is done in double and rounded back to float);
//!   `target = q * scaleOutput` or `fma(scaleTarget, target, q * scaleOutput)`.
//! - **TICA gradient** (`kTICAGrad_manyfilter`): `acc = acc + t` over the window;
//!   `target = -((x * scaleOutput) * acc)`, or `target * scaleTarget - (x *
//!   scaleOutput) * sqrtf(acc)` (no FMA: nvcc keeps the subtraction unfused).
//! - **local weight normalisation** (`kNormalizeLCWeights`): `acc = fma(w, w, acc)`
//!   over the filter's weights in order; `s = sqrtf(acc)`; if `s > norm`, `w = w *
//!   __fdividef(norm, s)`.
//!
//! # Tiers
//! Kernels that call `__powf` or `__fdividef` are **bounded**: we emulate the
//! special-function unit with correctly rounded `ex2`/`lg2` and `x * (1/y)`
//! ([`crate::nvmatrix::intrinsics`]); every other operation is the original's f32
//! operation, so only the intrinsics' results can differ from the GPU's. Each bound
//! is measured (tests/kernel_norm.rs, `ulp_bounds`) against an f64 evaluation of the
//! kernel's operation sequence from the intrinsic's f32 inputs on (which are
//! bit-identical to the original's): forward target 4.9 ulp (it is the f32 formula
//! `ex2(y * lg2(d))` itself that loses precision as `|powScale * log2 d|` grows; the
//! test covers `d` up to ~70), undo 5.0 ulp of its larger term (the two terms can
//! cancel), prelims 1.4, TICA 0.5, normalizeLocalWeights 1.1; the bounds stated
//! below round these up. The GPU's own `ex2.approx` (2 ulp) and `lg2.approx`
//! (2^-22.6 absolute on [0.5, 2], 2^-22 relative elsewhere, per the PTX ISA) add to
//! that on its side. `convTICAGrad` calls no intrinsic and is **exact**; the
//! denominators written by the forward kernels are exact too. Against the GPU itself
//! (an NVIDIA H200; tests/cuda_conv_util.rs and tests/original_goldens.rs) the forward
//! targets came within 6.9 ulp, the undo within 2.0 ulp of the output's largest
//! magnitude, TICA and normalizeLocalWeights within 2 ulp, and the original kernels'
//! outputs within 2 ulp (forward) and 1.5 ulp of the largest magnitude (undo).
//!
//! # Speed
//! Images are the innermost dimension: each output row's images are processed in
//! chunks of `CHUNK` lanes that all run the identical sequence, and a full chunk's
//! window sums stay in registers across the window's terms; `__powf` runs 32
//! lanes at a time through a vectorised evaluation that is bit-identical to
//! [`crate::nvmatrix::intrinsics::powf`] (see `fast_pow`), compiled for AVX-512 too and
//! taken where [`lanes::simd`] says so. Threads take tasks ([`for_each_task`]):
//! same-map kernels one filter's output row each (the undo one filter's plane),
//! cross-map kernels a run of pixels (all filters) each. The undo's prelims are
//! computed by the task that sums them, just before it does, so `acts` is read once
//! for both.
//! The bit-exact `__powf` (two correctly rounded transcendental evaluations per
//! output, about 2.1 ns per element and core with AVX-512, 3.5 with AVX2, some 65
//! vector operations per eight f64 lanes) dominates: with it, two threads run the
//! forward kernels at 4-4.4x the time of a copy of the same bytes for AlexNet's
//! cross-map shape and 7.5-19x for the small same-map shapes, whose copies stay in
//! cache, and the undo kernels at 3.4-5.8x (`convnet bench kernels`). With `__powf` replaced
//! by a multiply (a measurement, not a mode) the same passes ran at 1.6-2.9x (forward;
//! the small rnorm2 6.5-7x) and 1.5-2.2x (undo).

use super::{same_dims, shape_of};
use crate::cudaconv2::lanes;
use crate::cudaconv2::{require, MatShape, ShapeError};
use crate::nvmatrix::intrinsics::fdividef;
use crate::nvmatrix::NvMatrix;
use crate::parallel::{for_each_task, SharedOut};
use std::ops::Range;

/// Images processed together as one block of SIMD lanes (each lane one image).
const CHUNK: usize = 64;

/// Pixels per task of the cross-map kernels.
const PIXEL_RUN: usize = 16;

/// The same-map normalisation kernel `convContrastNorm` launches for a shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContrastNormKernel {
    /// `kCNorm2<8, 8, 4, ccb>` (4×4 pixel blocks): `sizeX ≥ 6 && numFilters % 4 == 0`.
    CNorm2,
    /// `kCNorm_fewfilter<1, numFilters, ccb>`: otherwise, when `numFilters ≤ 8`.
    FewFilter {
        /// The `numFilters` template argument (1..=8).
        num_filters: usize,
    },
    /// `kCNorm_manyfilter<4, 32, 4, 2, ccb>`: otherwise.
    ManyFilter,
}

/// The kernel `convContrastNorm` / `convResponseNorm` picks (host dispatch of the
/// original). All three give each element the same operation sequence (module docs).
pub fn contrast_norm_kernel(num_filters: usize, size_x: usize) -> ContrastNormKernel {
    if size_x >= 6 && num_filters.is_multiple_of(4) {
        ContrastNormKernel::CNorm2
    } else if num_filters <= 8 {
        ContrastNormKernel::FewFilter { num_filters }
    } else {
        ContrastNormKernel::ManyFilter
    }
}

/// The main kernel `convResponseNormUndo` launches after the prelims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseNormUndoKernel {
    /// `kRNormUndo<4, 32, ipt, 2, add, ccb>`: `sizeX < 6` (or `numFilters % 4 != 0`,
    /// which the `numFilters % 16 == 0` assert rules out).
    RNormUndo,
    /// `kRNormUndo2<16, ipt, 4, add, ccb>` (4×4 pixel blocks): `sizeX ≥ 6 &&
    /// numFilters % 4 == 0`; the host passes it the inverted `add` flag (BUG).
    RNormUndo2,
}

/// The kernel `convResponseNormUndo` / `convContrastNormUndo` picks.
pub fn response_norm_undo_kernel(num_filters: usize, size_x: usize) -> ResponseNormUndoKernel {
    if size_x >= 6 && num_filters.is_multiple_of(4) {
        ResponseNormUndoKernel::RNormUndo2
    } else {
        ResponseNormUndoKernel::RNormUndo
    }
}

/// How `convResponseNormUndo` treats `kRNormUndo2`'s `add` template argument.
///
/// **BUG (INVENTORY §13)**: for `sizeX ≥ 6` the original host code launches
/// `kRNormUndo2<..., add = (scaleTargets == 0 && scaleOutput == 1), ...>`, the
/// inverse of what it passes `kRNormUndo`. So the plain case (`0, 1`) computes
/// `fma(0, target, v * 1)`, reading the freshly resized target: memory nobody wrote,
/// times 0 (NaN or infinity there poisons the element), and every other case
/// overwrites the target with `v`, dropping `scaleTargets * target` and ignoring
/// `scaleOutput` (a layer with several consumers loses the others' gradients).
///
/// **Stand-in for the uninitialised memory**: whatever the target holds after
/// `resize`: zeros when it was (re)allocated (our `NvMatrix` never exposes unwritten
/// memory), its previous contents when the element count did not change (as on the
/// GPU, where `resize` keeps the allocation). So the plain case gives `v`, except that
/// `-0` becomes `+0` (`+0 + -0`) and a non-finite old value gives NaN, exactly as the
/// original does with the same memory contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Undo2Add {
    /// Reproduce the original (default).
    #[default]
    AsOriginal,
    /// Our fix: `kRNormUndo2` gets the same `add` flag as `kRNormUndo`.
    Fixed,
}

/// `(numFilters, imgSize, imgPixels, numImages)` of an activation matrix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geo {
    pub nf: usize,
    pub size: usize,
    pub pixels: usize,
    pub n: usize,
}

/// `imgPixels = rows / numFilters`, `imgSize = int(sqrt(imgPixels))` and the
/// original's asserts on them.
fn geometry(function: &'static str, m: MatShape, num_filters: usize) -> Result<Geo, ShapeError> {
    require(num_filters > 0, function, "numFilters > 0")?;
    let pixels = m.rows / num_filters;
    require(
        m.rows == num_filters * pixels,
        function,
        "getNumRows() == numFilters * imgPixels",
    )?;
    let mut size = (pixels as f64).sqrt() as usize;
    while size * size > pixels {
        size -= 1;
    }
    require(
        size * size == pixels,
        function,
        "imgSize * imgSize == imgPixels",
    )?;
    Ok(Geo {
        nf: num_filters,
        size,
        pixels,
        n: m.cols,
    })
}

/// Which of the two windows of a normalisation a pass sums over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Window {
    /// The forward window of `p`: `[p - size/2, p - size/2 + size)`.
    Forward,
    /// The positions whose forward window contains `p`: `[p + size/2 - size + 1,
    /// p + size/2]` (the undo kernels).
    Reverse,
}

/// The window of position `p` clipped to `[0, len)` (spatial rows/columns, or
/// channels when not blocked).
fn window(p: usize, size: usize, len: usize, w: Window) -> Range<usize> {
    let (p, s) = (p as i64, size as i64);
    let start = match w {
        Window::Forward => p - s / 2,
        Window::Reverse => p + s / 2 - s + 1,
    };
    let lo = start.max(0) as usize;
    let hi = (start + s).clamp(0, len as i64) as usize;
    lo..hi.max(lo)
}

/// The channel window of filter `f` in the cross-map kernels: the forward or reverse
/// window, or for `blocked` the block `[f/size*size, +size)` (the same both ways).
fn channel_window(f: usize, size: usize, nf: usize, blocked: bool, w: Window) -> Range<usize> {
    if blocked {
        let start = f / size * size;
        start..(start + size).min(nf)
    } else {
        window(f, size, nf, w)
    }
}

/// `acc[i] = fma(v, v, acc[i])` (`SQUARES`) or `acc[i] + v` over one row of images.
#[inline(always)]
fn accumulate<const SQUARES: bool>(acc: &mut [f32], row: &[f32]) {
    for (a, &v) in acc.iter_mut().zip(row) {
        *a = if SQUARES { v.mul_add(v, *a) } else { *a + v };
    }
}

/// Sums, from 0, images `c0..c0 + acc.len()` of the rows `terms` (one output's window,
/// in the kernel's order) into `acc`. A full chunk keeps its sums in registers across
/// the window's terms; a short one goes term by term through memory.
#[inline(always)]
fn window_sum<const SQUARES: bool>(terms: &[&[f32]], c0: usize, acc: &mut [f32]) {
    if let Ok(acc) = <&mut [f32; CHUNK]>::try_from(&mut *acc) {
        let mut sums = [0f32; CHUNK];
        for row in terms {
            let row: &[f32; CHUNK] = row[c0..c0 + CHUNK].try_into().unwrap();
            accumulate::<SQUARES>(&mut sums, row);
        }
        *acc = sums;
    } else {
        acc.fill(0.0);
        let len = acc.len();
        for row in terms {
            accumulate::<SQUARES>(acc, &row[c0..c0 + len]);
        }
    }
}

/// What a pass sums over: values as they are (the forward's images), or the undo's
/// `acts`, which `kRNormUndoPrelims` first turns into `__fdividef((scale * outGrads) *
/// acts, denoms)` in place. The prelims are computed by the task that sums them, just
/// before it reads them, so each element is read from memory once for both.
enum Source<'a> {
    Plain(&'a [f32]),
    Prelims {
        acts: SharedOut,
        out_grads: &'a [f32],
        denoms: &'a [f32],
        scale: f32,
    },
}

impl Source<'_> {
    /// Elements `at..at + len`, ready to be summed.
    ///
    /// # Safety
    /// The calling task owns these elements and takes each of them once.
    unsafe fn take(&self, at: usize, len: usize) -> &[f32] {
        match *self {
            Source::Plain(v) => &v[at..at + len],
            Source::Prelims {
                ref acts,
                out_grads,
                denoms,
                scale,
            } => {
                let a = acts.slice(at, len);
                let (og, den) = (&out_grads[at..at + len], &denoms[at..at + len]);
                for ((a, &o), &d) in a.iter_mut().zip(og).zip(den) {
                    *a = fdividef(scale * o * *a, d);
                }
                a
            }
        }
    }
}

/// For every output element of a same-map kernel, sums `src` over the element's
/// window (rows ascending, then columns) from 0, and hands the sums of one output row
/// and image chunk to `finish(row, first_image, sums)`. A task takes one filter's
/// output row, or its whole plane when the source makes prelims (each element of the
/// plane is then taken once, by the task that reads it); `finish` is called once per
/// (row, chunk), by the task that owns it.
fn spatial_pass<const SQUARES: bool>(
    src: &Source,
    g: Geo,
    size_x: usize,
    w: Window,
    finish: impl Fn(usize, usize, &[f32]) + Sync,
) {
    let (s, n) = (g.size, g.n);
    let band = match src {
        Source::Plain(_) => 1,
        Source::Prelims { .. } => s,
    };
    let bands = s.div_ceil(band);
    for_each_task(g.nf * bands, |task| {
        let (f, y0) = (task / bands, task % bands * band);
        // SAFETY: a Prelims task owns filter f's plane and takes it once (a Plain
        // source is only read).
        let plane = unsafe { src.take(f * g.pixels * n, g.pixels * n) };
        let mut acc = [0f32; CHUNK];
        let mut terms: Vec<&[f32]> = Vec::with_capacity(size_x * size_x);
        for y in y0..(y0 + band).min(s) {
            let rows = window(y, size_x, s, w);
            for x in 0..s {
                let cols = window(x, size_x, s, w);
                terms.clear();
                for wy in rows.clone() {
                    terms.extend(cols.clone().map(|wx| &plane[(wy * s + wx) * n..][..n]));
                }
                for c0 in (0..n).step_by(CHUNK) {
                    let acc = &mut acc[..CHUNK.min(n - c0)];
                    window_sum::<SQUARES>(&terms, c0, acc);
                    finish(f * g.pixels + y * s + x, c0, acc);
                }
            }
        }
    });
}

/// The cross-map counterpart of [`spatial_pass`]: sums over the channel window
/// (ascending) at the same pixel. Tasks are runs of [`PIXEL_RUN`] pixels, all
/// channels.
fn cross_map_pass<const SQUARES: bool>(
    src: &Source,
    g: Geo,
    size_f: usize,
    blocked: bool,
    w: Window,
    finish: impl Fn(usize, usize, &[f32]) + Sync,
) {
    let n = g.n;
    // A task takes a run of pixels and, filter by filter, walks them in order, so that
    // each channel's rows are read (and each output's rows written) as contiguous runs.
    for_each_task(g.pixels.div_ceil(PIXEL_RUN), |task| {
        let pixels = task * PIXEL_RUN..((task + 1) * PIXEL_RUN).min(g.pixels);
        // The run's rows of each channel, taken as the windows first reach them.
        let mut runs: Vec<&[f32]> = Vec::with_capacity(g.nf);
        let mut terms: Vec<&[f32]> = Vec::with_capacity(size_f);
        let mut acc = [0f32; CHUNK];
        for f in 0..g.nf {
            let chans = channel_window(f, size_f, g.nf, blocked, w);
            while runs.len() < chans.end {
                let at = (runs.len() * g.pixels + pixels.start) * n;
                // SAFETY: the task owns its pixels' rows in every channel; each once.
                runs.push(unsafe { src.take(at, pixels.len() * n) });
            }
            for px in pixels.clone() {
                let at = (px - pixels.start) * n;
                terms.clear();
                terms.extend(chans.clone().map(|fc| &runs[fc][at..at + n]));
                for c0 in (0..n).step_by(CHUNK) {
                    let acc = &mut acc[..CHUNK.min(n - c0)];
                    window_sum::<SQUARES>(&terms, c0, acc);
                    finish(f * g.pixels + px, c0, acc);
                }
            }
        }
    });
}

/// The forward finish: `denoms = fma(addScale, acc, minDiv)`, `target = img *
/// __powf(denoms, -powScale)`, for the output row/chunk `(row, c0)`.
fn forward_finish<'a>(
    images: &'a [f32],
    denoms: SharedOut,
    target: SharedOut,
    n: usize,
    add_scale: f32,
    pow_scale: f32,
    min_div: f32,
) -> impl Fn(usize, usize, &[f32]) + Sync + 'a {
    let simd = lanes::simd();
    move |row, c0, acc| {
        let at = row * n + c0;
        let len = acc.len();
        // SAFETY: (row, chunk) belongs to the calling task alone.
        let (den, tgt) = unsafe { (denoms.slice(at, len), target.slice(at, len)) };
        for (d, &a) in den.iter_mut().zip(acc) {
            *d = add_scale.mul_add(a, min_div);
        }
        fast_pow::powf_slice(den, -pow_scale, tgt, simd);
        for (t, &x) in tgt.iter_mut().zip(&images[at..at + len]) {
            *t *= x;
        }
    }
}

/// The host checks of the forward normalisations: same-map (`cross_map_size` `None`:
/// `numFilters % 16 == 0 || numFilters <= 8`) or cross-map (`Some(sizeF)`: `0 < sizeF
/// <= numFilters`, `numFilters % 16 == 0`); `meanDiffs` is the images for the response
/// forms.
pub(crate) fn forward_checks(
    function: &'static str,
    images: MatShape,
    mean_diffs: MatShape,
    num_filters: usize,
    cross_map_size: Option<usize>,
) -> Result<Geo, ShapeError> {
    let g = geometry(function, images, num_filters)?;
    require(
        same_dims(mean_diffs, images),
        function,
        "meanDiffs.isSameDims(images)",
    )?;
    if let Some(size_f) = cross_map_size {
        require(
            size_f > 0 && size_f <= num_filters,
            function,
            "sizeF > 0 && sizeF <= numFilters",
        )?;
    }
    require(!mean_diffs.trans, function, "!meanDiffs.isTrans()")?;
    require(!images.trans, function, "!images.isTrans()")?;
    if cross_map_size.is_some() {
        require(
            num_filters.is_multiple_of(16),
            function,
            "numFilters % 16 == 0",
        )?;
    } else {
        require(
            num_filters.is_multiple_of(16) || num_filters <= 8,
            function,
            "numFilters % 16 == 0 || numFilters <= 8",
        )?;
    }
    Ok(g)
}

/// Shared body of `convContrastNorm` (same-map forward).
#[allow(clippy::too_many_arguments)]
fn spatial_forward(
    function: &'static str,
    images: &NvMatrix,
    mean_diffs: Option<&NvMatrix>,
    denoms: &mut NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    size_x: usize,
    add_scale: f32,
    pow_scale: f32,
) -> Result<(), ShapeError> {
    let md = mean_diffs.unwrap_or(images);
    let g = forward_checks(function, shape_of(images), shape_of(md), num_filters, None)?;
    target.resize_like(images);
    denoms.resize_like(images);
    let finish = forward_finish(
        images.data(),
        SharedOut::new(denoms.data_mut()),
        SharedOut::new(target.data_mut()),
        g.n,
        add_scale,
        pow_scale,
        1.0,
    );
    spatial_pass::<true>(
        &Source::Plain(md.data()),
        g,
        size_x,
        Window::Forward,
        finish,
    );
    Ok(())
}

/// `convResponseNorm(images, denoms, target, numFilters, sizeX, addScale, powScale)`
/// = [`conv_contrast_norm`] with `meanDiffs = images`: same-map response
/// normalisation, `denoms = 1 + addScale * Σ_window x²`, `target = x *
/// denoms^(-powScale)` over the `sizeX × sizeX` window `[p - sizeX/2, p - sizeX/2 +
/// sizeX)` clipped to the image. `target` and `denoms` are resized to `images`.
///
/// Tier: **bounded(5 ulp)** (`__powf`; see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm(
    images: &NvMatrix,
    denoms: &mut NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    size_x: usize,
    add_scale: f32,
    pow_scale: f32,
) -> Result<(), ShapeError> {
    spatial_forward(
        "convResponseNorm",
        images,
        None,
        denoms,
        target,
        num_filters,
        size_x,
        add_scale,
        pow_scale,
    )
}

/// `convContrastNorm(images, meanDiffs, denoms, target, numFilters, sizeX, addScale,
/// powScale)`: `denoms = 1 + addScale * Σ_window meanDiffs²`, `target = images *
/// denoms^(-powScale)`. The original dispatches to `kCNorm2`, `kCNorm_fewfilter` or
/// `kCNorm_manyfilter` ([`contrast_norm_kernel`]); all three give the same bits.
/// Asserts (→ `Err`): `numFilters % 16 == 0 || numFilters ≤ 8`, square images, same
/// dims, no transposed input.
///
/// Tier: **bounded(5 ulp)** (`__powf`; see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn conv_contrast_norm(
    images: &NvMatrix,
    mean_diffs: &NvMatrix,
    denoms: &mut NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    size_x: usize,
    add_scale: f32,
    pow_scale: f32,
) -> Result<(), ShapeError> {
    spatial_forward(
        "convContrastNorm",
        images,
        Some(mean_diffs),
        denoms,
        target,
        num_filters,
        size_x,
        add_scale,
        pow_scale,
    )
}

/// `convContrastNormCrossMap(images, meanDiffs, denoms, target, numFilters, sizeF,
/// addScale, powScale, blocked)` (`kFCNorm<4, 32, 4, ccb, blocked>`): `denoms = 1 +
/// addScale * Σ_{f' ∈ W(f)} meanDiffs[f']²` at the same pixel, `target = images *
/// denoms^(-powScale)`; `W(f) = [f - sizeF/2, f - sizeF/2 + sizeF) ∩ [0, numFilters)`,
/// or for `blocked` the block `[f/sizeF*sizeF, +sizeF) ∩ [0, numFilters)`. Asserts:
/// `numFilters % 16 == 0`, `0 < sizeF ≤ numFilters`.
///
/// Tier: **bounded(5 ulp)** (`__powf`; see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn conv_contrast_norm_cross_map(
    images: &NvMatrix,
    mean_diffs: &NvMatrix,
    denoms: &mut NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    size_f: usize,
    add_scale: f32,
    pow_scale: f32,
    blocked: bool,
) -> Result<(), ShapeError> {
    cross_map_forward(
        "convContrastNormCrossMap",
        images,
        Some(mean_diffs),
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

/// `convResponseNormCrossMap(images, denoms, target, numFilters, sizeF, addScale,
/// powScale, blocked)` = [`conv_contrast_norm_cross_map`] with `meanDiffs = images`
/// (the 2011 `cmrnorm`).
///
/// Tier: **bounded(5 ulp)** (`__powf`; see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_cross_map(
    images: &NvMatrix,
    denoms: &mut NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    size_f: usize,
    add_scale: f32,
    pow_scale: f32,
    blocked: bool,
) -> Result<(), ShapeError> {
    cross_map_forward(
        "convResponseNormCrossMap",
        images,
        None,
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

/// `convResponseNormCrossMap(images, denoms, target, numFilters, sizeF, addScale,
/// powScale, minDiv, blocked)`: the 2012 form the AlexNet `cmrnorm` layer calls
/// (A12-missing: the 2012 repository does not contain its cudaconv2).
///
/// **Inferred semantics**: `denoms = minDiv + addScale * Σ_{f' ∈ W(f)} x[f']²` — the
/// constant 1 of the 2011 kernel replaced by `minDiv` (AlexNet's `k = 2`), everything
/// else as [`conv_response_norm_cross_map`]. Evidence: cuda-convnet2's cudaconv3
/// `kFCNorm` (2014) computes `minDiv + addScale * prod` where the 2011 one has `1 +
/// addScale * prod`, its `minDiv`-less overload passes `minDiv = 1`, and the 2012
/// layer (`CrossMapResponseNormLayer::fpropActs`) passes `_denoms` as in 2011, so the
/// 2012 kernel still writes the denominators, which its undo
/// (`convResponseNormCrossMapUndo`, called without `minDiv`) reads; the undo formula
/// needs no `minDiv` since the constant has no derivative. With `minDiv = 1` this is
/// bit-identical to the 2011 function (`fma(addScale, acc, minDiv)` is the same
/// operation).
///
/// Tier: **bounded(5 ulp)** (`__powf`; see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_cross_map_min_div(
    images: &NvMatrix,
    denoms: &mut NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    size_f: usize,
    add_scale: f32,
    pow_scale: f32,
    min_div: f32,
    blocked: bool,
) -> Result<(), ShapeError> {
    cross_map_forward(
        "convResponseNormCrossMap",
        images,
        None,
        denoms,
        target,
        num_filters,
        size_f,
        add_scale,
        pow_scale,
        min_div,
        blocked,
    )
}

/// Shared body of the cross-map forward functions.
#[allow(clippy::too_many_arguments)]
fn cross_map_forward(
    function: &'static str,
    images: &NvMatrix,
    mean_diffs: Option<&NvMatrix>,
    denoms: &mut NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    size_f: usize,
    add_scale: f32,
    pow_scale: f32,
    min_div: f32,
    blocked: bool,
) -> Result<(), ShapeError> {
    let md = mean_diffs.unwrap_or(images);
    let g = forward_checks(
        function,
        shape_of(images),
        shape_of(md),
        num_filters,
        Some(size_f),
    )?;
    target.resize_like(images);
    denoms.resize_like(images);
    let finish = forward_finish(
        images.data(),
        SharedOut::new(denoms.data_mut()),
        SharedOut::new(target.data_mut()),
        g.n,
        add_scale,
        pow_scale,
        min_div,
    );
    cross_map_pass::<true>(
        &Source::Plain(md.data()),
        g,
        size_f,
        blocked,
        Window::Forward,
        finish,
    );
    Ok(())
}

/// How an undo kernel writes its result `v`.
#[derive(Clone, Copy, Debug)]
enum UndoWrite {
    /// The kernel's `add == false` path: `target = v`.
    Overwrite,
    /// The `add == true` path: `target = fma(scaleTargets, target, v * scaleOutput)`.
    Accumulate {
        scale_targets: f32,
        scale_output: f32,
    },
}

/// The host checks of the undo functions (`cross_map_size`: `Some(sizeF)` for the
/// cross-map one).
#[allow(clippy::too_many_arguments)]
pub(crate) fn undo_checks(
    function: &'static str,
    out_grads: MatShape,
    denoms: MatShape,
    inputs: MatShape,
    acts: MatShape,
    target: MatShape,
    num_filters: usize,
    cross_map_size: Option<usize>,
) -> Result<Geo, ShapeError> {
    let g = geometry(function, out_grads, num_filters)?;
    if let Some(size_f) = cross_map_size {
        require(
            size_f > 0 && size_f <= num_filters,
            function,
            "sizeF > 0 && sizeF <= numFilters",
        )?;
    }
    require(
        same_dims(denoms, out_grads),
        function,
        "denoms.isSameDims(outGrads)",
    )?;
    require(same_dims(acts, denoms), function, "acts.isSameDims(denoms)")?;
    // Not asserted by the original (which would read out of bounds); ours.
    require(
        same_dims(inputs, out_grads),
        function,
        "inputs.isSameDims(outGrads)",
    )?;
    require(!denoms.trans, function, "!denoms.isTrans()")?;
    require(!out_grads.trans, function, "!outGrads.isTrans()")?;
    require(!acts.trans, function, "!acts.isTrans()")?;
    require(!inputs.trans, function, "!inputs.isTrans()")?;
    require(!target.trans, function, "!target.isTrans()")?;
    require(
        num_filters.is_multiple_of(16),
        function,
        "numFilters % 16 == 0",
    )?;
    Ok(g)
}

/// The checks shared by the undo functions ([`undo_checks`]), the target resized, and
/// the [`Source`] that gives the passes the prelims (`kRNormUndoPrelims`): `acts :=
/// __fdividef((-2 * addScale * powScale * outGrads) * acts, denoms)`.
#[allow(clippy::too_many_arguments)]
fn undo_setup<'a>(
    function: &'static str,
    out_grads: &'a NvMatrix,
    denoms: &'a NvMatrix,
    inputs: &NvMatrix,
    acts: &'a mut NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    add_scale: f32,
    pow_scale: f32,
    cross_map_size: Option<usize>,
) -> Result<(Geo, Source<'a>), ShapeError> {
    let g = undo_checks(
        function,
        shape_of(out_grads),
        shape_of(denoms),
        shape_of(inputs),
        shape_of(acts),
        shape_of(target),
        num_filters,
        cross_map_size,
    )?;
    target.resize_like(out_grads);
    let prelims = Source::Prelims {
        acts: SharedOut::new(acts.data_mut()),
        out_grads: out_grads.data(),
        denoms: denoms.data(),
        scale: undo_prelims_scale(add_scale, pow_scale),
    };
    Ok((g, prelims))
}

/// The scale of `kRNormUndoPrelims<128, 4>`, formed on the host in float.
pub(crate) fn undo_prelims_scale(add_scale: f32, pow_scale: f32) -> f32 {
    -2.0f32 * add_scale * pow_scale
}

/// The undo finish: `v = fma(inputs, acc, outGrads * __powf(denoms, -powScale))`,
/// written per `mode`.
fn undo_finish<'a>(
    out_grads: &'a [f32],
    denoms: &'a [f32],
    inputs: &'a [f32],
    target: SharedOut,
    n: usize,
    pow_scale: f32,
    mode: UndoWrite,
) -> impl Fn(usize, usize, &[f32]) + Sync + 'a {
    let simd = lanes::simd();
    move |row, c0, acc| {
        let at = row * n + c0;
        let len = acc.len();
        // SAFETY: (row, chunk) belongs to the calling task alone.
        let tgt = unsafe { target.slice(at, len) };
        let mut pw = [0f32; CHUNK];
        let pw = &mut pw[..len];
        fast_pow::powf_slice(&denoms[at..at + len], -pow_scale, pw, simd);
        let (og, inp) = (&out_grads[at..at + len], &inputs[at..at + len]);
        match mode {
            UndoWrite::Overwrite => {
                for i in 0..len {
                    tgt[i] = inp[i].mul_add(acc[i], og[i] * pw[i]);
                }
            }
            UndoWrite::Accumulate {
                scale_targets,
                scale_output,
            } => {
                for i in 0..len {
                    let v = inp[i].mul_add(acc[i], og[i] * pw[i]);
                    tgt[i] = scale_targets.mul_add(tgt[i], v * scale_output);
                }
            }
        }
    }
}

/// `convResponseNormUndo(outGrads, denoms, inputs, acts, target, numFilters, sizeX,
/// addScale, powScale, scaleTargets, scaleOutput)`: the gradient of
/// [`conv_response_norm`], `target = inputs * Σ_{q: p ∈ W(q)} prelim(q) + outGrads *
/// denoms^(-powScale)` with `prelim = -2 * addScale * powScale * outGrads * acts /
/// denoms`, over the reverse window `[p + sizeX/2 - sizeX + 1, p + sizeX/2]`.
///
/// **Overwrites `acts`** with the prelims (`kRNormUndoPrelims`), as the original does
/// to the layer's own activations (INVENTORY §13). Then `kRNormUndo` (`sizeX < 6`) or
/// `kRNormUndo2` (`sizeX ≥ 6`), the latter with its **inverted `add` flag reproduced**
/// (see [`Undo2Add`] for the behaviour and for what stands in for the uninitialised
/// target; [`conv_response_norm_undo_with`] with [`Undo2Add::Fixed`] corrects it).
/// `target` is resized to `outGrads` (keeping its contents when the size matches).
/// Asserts: `numFilters % 16 == 0`, square images, same dims, nothing transposed.
///
/// Tier: **bounded(6 ulp)** of the larger of its two terms (`__powf`, `__fdividef`).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_undo(
    out_grads: &NvMatrix,
    denoms: &NvMatrix,
    inputs: &NvMatrix,
    acts: &mut NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    size_x: usize,
    add_scale: f32,
    pow_scale: f32,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    conv_response_norm_undo_with(
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

/// [`conv_response_norm_undo`] with the choice of reproducing or fixing
/// `kRNormUndo2`'s inverted `add` flag ([`Undo2Add`]); for `sizeX < 6` the two agree.
///
/// Tier: **bounded(6 ulp)** of the larger of its two terms (`__powf`, `__fdividef`).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_undo_with(
    out_grads: &NvMatrix,
    denoms: &NvMatrix,
    inputs: &NvMatrix,
    acts: &mut NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    size_x: usize,
    add_scale: f32,
    pow_scale: f32,
    scale_targets: f32,
    scale_output: f32,
    undo2: Undo2Add,
) -> Result<(), ShapeError> {
    let function = "convResponseNormUndo";
    let (g, prelims) = undo_setup(
        function,
        out_grads,
        denoms,
        inputs,
        acts,
        target,
        num_filters,
        add_scale,
        pow_scale,
        None,
    )?;
    let add = response_norm_undo_add(num_filters, size_x, scale_targets, scale_output, undo2);
    let mode = if add {
        UndoWrite::Accumulate {
            scale_targets,
            scale_output,
        }
    } else {
        UndoWrite::Overwrite
    };
    let finish = undo_finish(
        out_grads.data(),
        denoms.data(),
        inputs.data(),
        SharedOut::new(target.data_mut()),
        g.n,
        pow_scale,
        mode,
    );
    spatial_pass::<false>(&prelims, g, size_x, Window::Reverse, finish);
    Ok(())
}

/// The `add` flag `convResponseNormUndo` gives its main kernel: `!(scaleTargets == 0 &&
/// scaleOutput == 1)`, inverted for `kRNormUndo2` unless `undo2` fixes it ([`Undo2Add`]).
pub(crate) fn response_norm_undo_add(
    num_filters: usize,
    size_x: usize,
    scale_targets: f32,
    scale_output: f32,
    undo2: Undo2Add,
) -> bool {
    let plain = scale_targets == 0.0 && scale_output == 1.0;
    match (response_norm_undo_kernel(num_filters, size_x), undo2) {
        (ResponseNormUndoKernel::RNormUndo2, Undo2Add::AsOriginal) => plain,
        _ => !plain,
    }
}

/// `convContrastNormUndo(outGrads, denoms, meanDiffs, acts, target, numFilters,
/// sizeX, addScale, powScale, scaleTargets, scaleOutput)` = [`conv_response_norm_undo`]
/// with `inputs = meanDiffs`: `target = meanDiffs * Σ prelim + outGrads *
/// denoms^(-powScale)`. This is the gradient of [`conv_contrast_norm`] with the local
/// mean held fixed: the original **ignores the mean's dependence on the input**
/// (INVENTORY §13), reproduced. Overwrites `acts`; `kRNormUndo2`'s inverted `add`
/// flag reproduced (fix: [`conv_response_norm_undo_with`] with `meanDiffs` as
/// `inputs`).
///
/// Tier: **bounded(6 ulp)** of the larger of its two terms (`__powf`, `__fdividef`).
#[allow(clippy::too_many_arguments)]
pub fn conv_contrast_norm_undo(
    out_grads: &NvMatrix,
    denoms: &NvMatrix,
    mean_diffs: &NvMatrix,
    acts: &mut NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    size_x: usize,
    add_scale: f32,
    pow_scale: f32,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    conv_response_norm_undo(
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

/// `convResponseNormCrossMapUndo(outGrads, denoms, inputs, acts, target, numFilters,
/// sizeF, addScale, powScale, blocked, scaleTargets, scaleOutput)`: the gradient of
/// the cross-map forward (2011 and 2012 `minDiv` forms alike), `target = inputs *
/// Σ_{f': f ∈ W(f')} prelim(f') + outGrads * denoms^(-powScale)` over the reverse
/// channel window `[f - sizeF + sizeF/2 + 1, +sizeF)` (or the block). **Overwrites
/// `acts`** (prelims). Then `kFRNormUndo<4, 32, 4, add, ccb, blocked>` with `add =
/// !(scaleTargets == 0 && scaleOutput == 1)`; its non-add write ignores `scaleOutput`,
/// harmless as it is only taken when `scaleOutput == 1`. `target` is resized to
/// `outGrads`. Asserts: `numFilters % 16 == 0`, `0 < sizeF ≤ numFilters`.
///
/// Tier: **bounded(6 ulp)** of the larger of its two terms (`__powf`, `__fdividef`).
#[allow(clippy::too_many_arguments)]
pub fn conv_response_norm_cross_map_undo(
    out_grads: &NvMatrix,
    denoms: &NvMatrix,
    inputs: &NvMatrix,
    acts: &mut NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    size_f: usize,
    add_scale: f32,
    pow_scale: f32,
    blocked: bool,
    scale_targets: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let function = "convResponseNormCrossMapUndo";
    let (g, prelims) = undo_setup(
        function,
        out_grads,
        denoms,
        inputs,
        acts,
        target,
        num_filters,
        add_scale,
        pow_scale,
        Some(size_f),
    )?;
    let plain = scale_targets == 0.0 && scale_output == 1.0;
    let mode = if plain {
        UndoWrite::Overwrite
    } else {
        UndoWrite::Accumulate {
            scale_targets,
            scale_output,
        }
    };
    let finish = undo_finish(
        out_grads.data(),
        denoms.data(),
        inputs.data(),
        SharedOut::new(target.data_mut()),
        g.n,
        pow_scale,
        mode,
    );
    cross_map_pass::<false>(&prelims, g, size_f, blocked, Window::Reverse, finish);
    Ok(())
}

/// The asserts shared by `convTICA` and `convTICAGrad`, all checked before anything
/// is written; the target's dims only when `scaleTarget != 0`.
pub(crate) fn tica_checks(
    function: &'static str,
    images: MatShape,
    ticas: Option<MatShape>,
    target: MatShape,
    num_filters: usize,
    size_x: usize,
    scale_target: f32,
) -> Result<Geo, ShapeError> {
    let g = geometry(function, images, num_filters)?;
    require(!images.trans, function, "!images.isTrans()")?;
    require(
        num_filters.is_multiple_of(16) || num_filters <= 8,
        function,
        "numFilters % 16 == 0 || numFilters <= 8",
    )?;
    if let Some(ticas) = ticas {
        require(
            same_dims(ticas, images),
            function,
            "ticas.isSameDims(images)",
        )?;
        require(!ticas.trans, function, "!ticas.isTrans()")?;
    }
    if scale_target != 0.0 {
        require(
            same_dims(target, images),
            function,
            "target.isSameDims(images)",
        )?;
    }
    // "TEMPORARY" asserts of the original: only the manyfilter kernel exists.
    require(num_filters > 8, function, "numFilters > 8")?;
    require(size_x < 6, function, "sizeX < 6")?;
    Ok(g)
}

/// [`tica_checks`], then resizes `target` when `scaleTarget == 0`.
fn tica_setup(
    function: &'static str,
    images: &NvMatrix,
    ticas: Option<&NvMatrix>,
    target: &mut NvMatrix,
    num_filters: usize,
    size_x: usize,
    scale_target: f32,
) -> Result<Geo, ShapeError> {
    let g = tica_checks(
        function,
        shape_of(images),
        ticas.map(shape_of),
        shape_of(target),
        num_filters,
        size_x,
        scale_target,
    )?;
    if scale_target == 0.0 {
        target.resize_like(images);
    }
    Ok(g)
}

/// `convTICA(images, target, numFilters, sizeX, scaleTarget, scaleOutput)`
/// (`kTICA_manyfilter<4, 32, 4, 2, ccb>`): `target = scaleTarget * target +
/// scaleOutput / (0.001 + sqrt(Σ_window x²))` over the forward window. The `0.001`
/// is a **double-precision literal**: `sqrtf(Σ)` is widened, 0.001 added in double
/// and the sum rounded back to float before `__fdividef(1, ·)` — reproduced. With
/// `scaleTarget == 0` the target is resized and not read; otherwise its dims must
/// match. Asserts (the original's "TEMPORARY" ones included): `numFilters % 16 == 0`
/// and `> 8`, `sizeX < 6`.
///
/// Tier: **bounded(2 ulp)** (`__fdividef`).
pub fn conv_tica(
    images: &NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    size_x: usize,
    scale_target: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let g = tica_setup(
        "convTICA",
        images,
        None,
        target,
        num_filters,
        size_x,
        scale_target,
    )?;
    let n = g.n;
    let out = SharedOut::new(target.data_mut());
    spatial_pass::<true>(
        &Source::Plain(images.data()),
        g,
        size_x,
        Window::Forward,
        move |row, c0, acc| {
            // SAFETY: (row, chunk) belongs to the calling task alone.
            let tgt = unsafe { out.slice(row * n + c0, acc.len()) };
            for (t, &a) in tgt.iter_mut().zip(acc) {
                let q = fdividef(1.0, (f64::from(a.sqrt()) + 0.001) as f32);
                *t = if scale_target == 0.0 {
                    q * scale_output
                } else {
                    scale_target.mul_add(*t, q * scale_output)
                };
            }
        },
    );
    Ok(())
}

/// `convTICAGrad(images, ticas, target, numFilters, sizeX, scaleTarget, scaleOutput)`
/// (`kTICAGrad_manyfilter<4, 32, 4, 2, ccb>`): with `scaleTarget == 0`, `target =
/// -scaleOutput * x * Σ_window ticas`; otherwise `target = scaleTarget * target -
/// scaleOutput * x * sqrt(Σ_window ticas)`.
///
/// **HALF-FINISHED (INVENTORY §13), reproduced**: the two branches disagree (`Σ`
/// versus `sqrt(Σ)`); only the first is the gradient of `-Σ_q (u_q - 0.001 ln(0.001 +
/// u_q))`, `u_q = sqrt(Σ_{W(q)} x²)`, given `ticas = convTICA(x)`, and that only for
/// odd `sizeX` (the kernel sums `ticas` over the forward window, where the gradient
/// needs the reverse one; they coincide for odd sizes). Asserts as [`conv_tica`], and
/// `ticas` must have the dims of `images`.
///
/// Tier: **exact** (no fast intrinsic: `sqrtf` is IEEE).
pub fn conv_tica_grad(
    images: &NvMatrix,
    ticas: &NvMatrix,
    target: &mut NvMatrix,
    num_filters: usize,
    size_x: usize,
    scale_target: f32,
    scale_output: f32,
) -> Result<(), ShapeError> {
    let g = tica_setup(
        "convTICAGrad",
        images,
        Some(ticas),
        target,
        num_filters,
        size_x,
        scale_target,
    )?;
    let (n, img) = (g.n, images.data());
    let out = SharedOut::new(target.data_mut());
    spatial_pass::<false>(
        &Source::Plain(ticas.data()),
        g,
        size_x,
        Window::Forward,
        move |row, c0, acc| {
            let at = row * n + c0;
            // SAFETY: (row, chunk) belongs to the calling task alone.
            let tgt = unsafe { out.slice(at, acc.len()) };
            for ((t, &a), &x) in tgt.iter_mut().zip(acc).zip(&img[at..]) {
                *t = if scale_target == 0.0 {
                    -((x * scale_output) * a)
                } else {
                    *t * scale_target - (x * scale_output) * a.sqrt()
                };
            }
        },
    );
    Ok(())
}

/// `normalizeLocalWeights(weights, numModules, norm)` (`kNormalizeLCWeights<B_Y, B_X,
/// filtersPerThread>`): weights `(numModules, numColors * filterPixels, numFilters)`;
/// for each module and filter, `s = sqrtf(Σ w²)` (serial over the filter's weights,
/// FMA chain) and, if `s > norm`, every weight is multiplied by `__fdividef(norm, s)`.
/// The template choice only groups filters per thread; every filter's sequence is the
/// same. Asserts: `numModules` divides the rows, `numFilters % 16 == 0`, not
/// transposed.
///
/// Tier: **bounded(2 ulp)** (`__fdividef`).
pub fn normalize_local_weights(
    weights: &mut NvMatrix,
    num_modules: usize,
    norm: f32,
) -> Result<(), ShapeError> {
    let per = local_weights_checks(shape_of(weights), num_modules)?;
    let nf = weights.cols();
    let out = SharedOut::new(weights.data_mut());
    for_each_task(num_modules, |m| {
        // SAFETY: each task owns one module's rows.
        let w = unsafe { out.slice(m * per * nf, per * nf) };
        for c0 in (0..nf).step_by(CHUNK) {
            let len = CHUNK.min(nf - c0);
            let mut acc = [0f32; CHUNK];
            let acc = &mut acc[..len];
            for p in 0..per {
                accumulate::<true>(acc, &w[p * nf + c0..p * nf + c0 + len]);
            }
            for a in acc.iter_mut() {
                let s = a.sqrt();
                *a = if s > norm { fdividef(norm, s) } else { 1.0 };
            }
            for p in 0..per {
                for (x, &k) in w[p * nf + c0..p * nf + c0 + len].iter_mut().zip(acc.iter()) {
                    *x *= k;
                }
            }
        }
    });
    Ok(())
}

/// The host checks of `normalizeLocalWeights`; returns the weights per filter and
/// module.
pub(crate) fn local_weights_checks(
    weights: MatShape,
    num_modules: usize,
) -> Result<usize, ShapeError> {
    let function = "normalizeLocalWeights";
    let nf = weights.cols;
    require(num_modules > 0, function, "numModules > 0")?;
    let per = weights.rows / num_modules;
    require(
        num_modules * per == weights.rows,
        function,
        "numModules * weightsPerFilter == getNumRows()",
    )?;
    require(!weights.trans, function, "!weights.isTrans()")?;
    require(nf.is_multiple_of(16), function, "numFilters % 16 == 0")?;
    Ok(per)
}

/// `__powf` for many arguments at once, bit-identical to [`crate::nvmatrix::intrinsics::powf`] and
/// vectorised (ours, not a port).
///
/// [`crate::nvmatrix::intrinsics::powf`]`(x, y) = ex2(y * lg2(x))` where `lg2(x)` and `ex2(t)` are the
/// f64 `log2`/`exp2` of the f32 argument rounded to f32. Calling libm per element
/// costs ~17 ns, far more than the memory traffic of a normalisation. Here both are
/// evaluated `LANES` (32) lanes at a time in f64 by short polynomials whose error is
/// below `2^-39` relative; a lane whose f64 value `v` has every value within `2^-34`
/// relative of it rounding to the same f32 must round like the exact value and like
/// libm's (which is within 1 f64 ulp of it), so it takes the polynomial's f32. The rare lane too
/// close to an f32 rounding boundary (about 2^-9.5 of them), and every argument
/// outside the polynomials' range (non-positive, subnormal, infinite or NaN `x`;
/// `ex2` arguments outside `[-125, 127]`), is recomputed with [`crate::nvmatrix::intrinsics::powf`]
/// itself. The agreement is checked on every positive normal f32 (`lg2`) and every
/// normal f32 in `[-127, 127]` (`ex2`) by the ignored test `exhaustive_against_libm`
/// (all equal; 2^-10 of the lanes fall back), and on a sample in the ordinary tests.
mod fast_pow {
    use crate::cudaconv2::lanes::Simd;
    use crate::nvmatrix::intrinsics;

    /// Lanes evaluated together: enough independent chains (four AVX-512 vectors of
    /// f64) to hide the evaluation's latency.
    const LANES: usize = 32;
    /// `1.5 * 2^52`: adding and subtracting it rounds an f64 of magnitude < 2^51 to an
    /// integer.
    const ROUND: f64 = 6_755_399_441_055_744.0;

    /// True when every value within `2^-34` (relative) of `v` rounds to the same f32:
    /// `v` is at least `2^19` of its own ulps (`2^-34` relative or more) from the
    /// midpoint between two f32s, i.e. its 29 bits below the f32 precision are that far
    /// from `2^28`.
    #[inline(always)]
    fn safe(v: f64) -> bool {
        let below = (v.to_bits() & 0x1FFF_FFFF) as i64;
        (below - 0x1000_0000).abs() > 1 << 19
    }

    /// `log2(x)` for a positive normal f32, and whether the f32 rounding is certain.
    #[inline(always)]
    pub(super) fn lg2_lane(x: f32) -> (f32, bool) {
        let b = x.to_bits();
        let in_range = b.wrapping_sub(0x0080_0000) < 0x7F00_0000;
        // x = m * 2^e with m in [sqrt(1/2), sqrt(2)).
        let mut e = (b >> 23) as i32 - 127;
        let mut mb = (b & 0x007F_FFFF) | 0x3F80_0000;
        let high = mb > 0x3FB5_04F3;
        mb = if high { mb - 0x0080_0000 } else { mb };
        e = if high { e + 1 } else { e };
        let m = f64::from(f32::from_bits(mb));
        // ln(m) = 2 atanh(t), t = (m-1)/(m+1), |t| < 0.1716.
        let t = (m - 1.0) / (m + 1.0);
        let t2 = t * t;
        // atanh(t) = t + t^3/3 + ... + t^13/13 (the first omitted term is below
        // t * 2^-39.5), with p = 1/3 + t2/5 + ... + t2^5/13 by Estrin's scheme.
        let w2 = t2 * t2;
        let w4 = w2 * w2;
        let a0 = t2.mul_add(1.0 / 5.0, 1.0 / 3.0);
        let a1 = t2.mul_add(1.0 / 9.0, 1.0 / 7.0);
        let a2 = t2.mul_add(1.0 / 13.0, 1.0 / 11.0);
        let p = w4.mul_add(a2, w2.mul_add(a1, a0));
        let atanh = (t * t2).mul_add(p, t);
        let v = atanh.mul_add(2.0 * std::f64::consts::LOG2_E, f64::from(e));
        (v as f32, in_range && safe(v))
    }

    /// `2^y` for `y` in `[-125, 127]` (normal f32 results), and whether the f32
    /// rounding is certain.
    #[inline(always)]
    pub(super) fn ex2_lane(y: f32) -> (f32, bool) {
        let yd = f64::from(y);
        let in_range = (-125.0..=127.0).contains(&yd);
        let yc = if in_range { yd } else { 0.0 };
        let big = yc + ROUND;
        let n = big - ROUND;
        let ni = big.to_bits().wrapping_sub(ROUND.to_bits()) as i64;
        // 2^r = e^u, u = r ln 2, |u| <= 0.347: Taylor to u^10/10!; the first omitted
        // term is below 2^-42.
        let u = (yc - n) * std::f64::consts::LN_2;
        // Σ_{k=0..=10} u^k/k! by Estrin's scheme.
        let u2 = u * u;
        let u4 = u2 * u2;
        let u8 = u4 * u4;
        let q0 = u + 1.0;
        let q1 = u.mul_add(1.0 / 6.0, 1.0 / 2.0);
        let q2 = u.mul_add(1.0 / 120.0, 1.0 / 24.0);
        let q3 = u.mul_add(1.0 / 5040.0, 1.0 / 720.0);
        let q4 = u.mul_add(1.0 / 362_880.0, 1.0 / 40_320.0);
        let r0 = u2.mul_add(q1, q0);
        let r1 = u2.mul_add(q3, q2);
        let r2 = u2.mul_add(1.0 / 3_628_800.0, q4);
        let p = u8.mul_add(r2, u4.mul_add(r1, r0));
        let scale = f64::from_bits(((ni + 1023) as u64) << 52);
        let v = p * scale;
        (v as f32, in_range && safe(v))
    }

    /// `out[i] = intrinsics::powf(x[i], y)`, `LANES` at a time (a short tail is
    /// padded with ones); with AVX-512 the same code compiled for its wider vectors.
    pub(super) fn powf_slice(x: &[f32], y: f32, out: &mut [f32], simd: Simd) {
        match simd {
            Simd::Avx2 => powf_slice_in(x, y, out),
            // SAFETY: `simd()` said the CPU has AVX-512F.
            Simd::Avx512 => unsafe { powf_slice_wide(x, y, out) },
        }
    }

    /// [`powf_slice_in`] compiled for AVX-512.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
    unsafe fn powf_slice_wide(x: &[f32], y: f32, out: &mut [f32]) {
        powf_slice_in(x, y, out)
    }

    #[inline(always)]
    fn powf_slice_in(x: &[f32], y: f32, out: &mut [f32]) {
        let mut xs = x.chunks_exact(LANES);
        let mut os = out.chunks_exact_mut(LANES);
        for (xc, oc) in (&mut xs).zip(&mut os) {
            powf_lanes(xc.try_into().unwrap(), y, oc.try_into().unwrap());
        }
        let (xr, or) = (xs.remainder(), os.into_remainder());
        if !xr.is_empty() {
            let mut xp = [1f32; LANES];
            let mut op = [0f32; LANES];
            xp[..xr.len()].copy_from_slice(xr);
            powf_lanes(&xp, y, &mut op);
            or.copy_from_slice(&op[..xr.len()]);
        }
    }

    #[inline(always)]
    fn powf_lanes(x: &[f32; LANES], y: f32, out: &mut [f32; LANES]) {
        // `bad` lanes as 0/1 words (not bools), so that the masks stay in vector
        // registers.
        let mut l = [0f32; LANES];
        let mut bad = [0u32; LANES];
        for k in 0..LANES {
            let (v, good) = lg2_lane(x[k]);
            l[k] = v;
            bad[k] = u32::from(!good);
        }
        for k in 0..LANES {
            let (v, good) = ex2_lane(y * l[k]);
            out[k] = v;
            bad[k] |= u32::from(!good);
        }
        if bad.iter().fold(0, |a, &b| a | b) != 0 {
            for k in 0..LANES {
                if bad[k] != 0 {
                    out[k] = intrinsics::powf(x[k], y);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fast_pow::{ex2_lane, lg2_lane, powf_slice};
    use super::*;
    use crate::cudaconv2::lanes::{avx512_available, Simd};
    use crate::nvmatrix::intrinsics::{self, ex2_approx, lg2_approx};

    #[test]
    fn fast_pow_matches_intrinsics_on_a_sample() {
        let mut g = crate::synthetic::SplitMix64::new(7);
        let mut xs: Vec<f32> = (0..200_000)
            .map(|_| f32::from_bits((g.next_u64() >> 33) as u32))
            .collect();
        xs.extend([
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            1e-40,
            f32::MAX,
        ]);
        xs.extend((0..100_000).map(|_| g.uniform(1.0, 4.0)));
        for &y in &[-0.75f32, 0.75, -1.0, 3.5, -40.0] {
            let mut out = vec![0f32; xs.len()];
            let mut wide = vec![0f32; xs.len()];
            powf_slice(&xs, y, &mut out, Simd::Avx2);
            if avx512_available() {
                powf_slice(&xs, y, &mut wide, Simd::Avx512);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert!(bits(&out) == bits(&wide), "8 and 16 lanes differ (y = {y})");
            }
            for (&x, &o) in xs.iter().zip(&out) {
                let want = intrinsics::powf(x, y);
                // A NaN's sign and payload are not part of the result: the GPU returns
                // its canonical NaN, and the optimiser may fold `-1 * NaN` into a sign
                // flip in one of the two paths (it does in release builds).
                assert!(
                    o.to_bits() == want.to_bits() || (o.is_nan() && want.is_nan()),
                    "powf({x:e}, {y}) = {o:e} ({:#x}), intrinsics {want:e} ({:#x})",
                    o.to_bits(),
                    want.to_bits()
                );
            }
        }
    }

    /// Every positive normal f32 through `lg2`, every f32 in [-125, 127] through `ex2`
    /// (minutes in release mode: `cargo test --release --lib exhaustive -- --ignored`).
    #[test]
    #[ignore = "exhaustive over all f32, minutes: cargo test --release --lib exhaustive -- --ignored"]
    fn exhaustive_against_libm() {
        let fallbacks = std::sync::atomic::AtomicU64::new(0);
        let lo = 0x0080_0000u32;
        let hi = 0x7F80_0000u32;
        let parts = 64u32;
        for_each_task(parts as usize, |k| {
            let (a, b) = (
                lo + (hi - lo) / parts * k as u32,
                lo + (hi - lo) / parts * (k as u32 + 1),
            );
            let mut fb = 0;
            for bits in a..b {
                let x = f32::from_bits(bits);
                let (v, ok) = lg2_lane(x);
                if ok {
                    assert_eq!(v.to_bits(), lg2_approx(x).to_bits(), "lg2({x:e})");
                } else {
                    fb += 1;
                }
                for y in [x, -x] {
                    if y.abs() <= 127.0 {
                        let (v, ok) = ex2_lane(y);
                        if ok {
                            assert_eq!(v.to_bits(), ex2_approx(y).to_bits(), "ex2({y:e})");
                        } else if y.abs() <= 125.0 {
                            fb += 1;
                        }
                    }
                }
            }
            fallbacks.fetch_add(fb, std::sync::atomic::Ordering::Relaxed);
        });
        eprintln!("fallbacks: {}", fallbacks.into_inner());
    }

    #[test]
    fn windows() {
        assert_eq!(window(0, 3, 16, Window::Forward), 0..2);
        assert_eq!(window(5, 3, 16, Window::Forward), 4..7);
        assert_eq!(window(5, 4, 16, Window::Forward), 3..7);
        assert_eq!(window(5, 4, 16, Window::Reverse), 4..8);
        assert_eq!(window(15, 4, 16, Window::Reverse), 14..16);
        assert_eq!(window(3, 0, 16, Window::Forward), 3..3);
        assert_eq!(channel_window(7, 5, 16, true, Window::Forward), 5..10);
        assert_eq!(channel_window(15, 5, 16, true, Window::Reverse), 15..16);
    }
}
