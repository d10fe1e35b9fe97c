//! Port of layer.cu's image layers (both generations): `AvgPoolLayer`,
//! `MaxPoolLayer` (2012 also max-abs and random pooling), `ResponseNormLayer`,
//! `CrossMapResponseNormLayer`, `ContrastNormLayer`, `NailbedLayer`,
//! `GaussianBlurLayer`, `ResizeLayer`, `RGBToYUVLayer` and `RGBToLABLayer`, and the
//! 2012 `HorizontalReflectionLayer` (`href`) and `RandomScaleLayer` (`rscale`), over
//! the conv_util kernels.
//!
//! Blur and the colour conversions may compute in their input's matrix (`actsTarget`,
//! `actsGradTarget`); where the original then runs a kernel with the same matrix as
//! input and output we read a copy of the input (the elementwise kernels give the same
//! values either way; the blur kernel would race on the GPU).

use super::super::dict::LayerDict;
use super::super::layer::{pass_flags, Io, Rt};
use super::super::{NetError, Pass};
use crate::config::Generation;
use crate::cuda::launch::conv_util as gpu;
use crate::cudaconv2::conv_util::pool::{AvgPooler, MaxAbsPooler, MaxPooler};
use crate::cudaconv2::conv_util::{norm, pool, util};
use crate::nvmatrix::NvMatrix;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PoolType {
    Max,
    Avg,
    MaxAbs,
    /// 2012 `rand` (`doMax` false): stochastic pooling (inferred kernel).
    Rand,
}

pub enum ImageLayer {
    Pool {
        ty: PoolType,
        channels: usize,
        size_x: usize,
        start: i32,
        stride: usize,
        outputs_x: usize,
        img_size: usize,
        draws: u64,
    },
    /// `rnorm` (`cross_map` false) and `cmrnorm`.
    ResponseNorm {
        cross_map: bool,
        channels: usize,
        size: usize,
        scale: f32,
        pow: f32,
        blocked: bool,
        /// 2012 `minDiv` of `cmrnorm`.
        min_div: Option<f32>,
        denoms: NvMatrix,
    },
    ContrastNorm {
        channels: usize,
        size: usize,
        scale: f32,
        pow: f32,
        img_size: usize,
        denoms: NvMatrix,
        mean_diffs: NvMatrix,
    },
    Nailbed {
        channels: usize,
        start: i32,
        stride: usize,
        img_size: usize,
    },
    Blur {
        channels: usize,
        filter: NvMatrix,
        tmp: NvMatrix,
    },
    Resize {
        img_size: usize,
        tgt_size: usize,
        scale: f32,
    },
    Yuv,
    Lab {
        center: bool,
    },
    /// 2012 `href`: each image mirrored left to right.
    Href {
        img_size: usize,
    },
    /// 2012 `rscale` (`RandomScaleLayer`): training crops a `tgtSize` square at a
    /// random position of the image rescaled by a random factor.
    RScale(Box<RScale>),
}

/// `RandomScaleLayer`'s parameters and its scale distribution.
pub struct RScale {
    max_scale: f32,
    img_size: usize,
    tgt_size: usize,
    /// `_scaleProbs`: the cumulative probability of each extra size `s` (rescaled size
    /// `tgtSize + s`), proportional to `(s+1)²`.
    scale_probs: Vec<f64>,
    /// `_rescaledActs`.
    rescaled: NvMatrix,
}

impl RScale {
    fn new(d: &LayerDict) -> Result<RScale, NetError> {
        let (img_size, max_scale) = (d.usize("imgSize")?, d.float("maxScale")?);
        // `int _minScaledSize = _imgSize / _maxScale` (float quotient, truncated).
        let min_scaled = (img_size as f32 / max_scale) as i64;
        let num_scales = img_size as i64 - min_scaled + 1;
        // The integer count of crops, then as a double.
        let num_crops = (num_scales * (num_scales + 1) * (2 * num_scales + 1) / 6) as f64;
        let mut scale_probs = vec![1.0 / num_crops];
        for s in 1..num_scales.max(1) {
            let p = scale_probs[s as usize - 1] + ((s + 1) * (s + 1)) as f64 / num_crops;
            scale_probs.push(p);
        }
        Ok(RScale {
            max_scale,
            img_size,
            tgt_size: d.usize("tgtSize")?,
            scale_probs,
            rescaled: NvMatrix::default(),
        })
    }

    /// `fpropActs`. Training: `r = randf`; the first size whose cumulative probability
    /// reaches `r` sets the rescaled size and a scale factor drawn between
    /// `max(1, imgSize/(size+1))` and `imgSize/size`; then `startY`, `startX` =
    /// `rand() % (1 + size - tgtSize)`; the crop from the input (size `imgSize`) or
    /// from its bilinear rescaling. Other passes test bits (BUG, reproduced):
    /// `pass & PASS_MULTIVIEW_TEST` is true for `PASS_TEST` too, which copies the whole
    /// input (the wrong size); the centre crop under `pass & PASS_TEST` is never
    /// reached; the gradient check and feature passes leave the output as it was.
    fn fprop(&mut self, x: &NvMatrix, acts: &mut NvMatrix, rt: &mut Rt) -> Result<(), NetError> {
        let flags = rt.pass.flags();
        let (img, tgt) = (self.img_size, self.tgt_size);
        if rt.pass == Pass::Train {
            // randf = (float)rand() / RAND_MAX; libc rand() is glibc random().
            let mut randf = || rt.glibc.random() as f32 / 2_147_483_647f32;
            let r = randf();
            let (mut size, mut scale) = (tgt, self.max_scale);
            if let Some(s) = self.scale_probs.iter().position(|&p| r as f64 <= p) {
                size += s;
                let end = img as f32 / size as f32;
                let start = f64::max(1.0, img as f64 / (1.0 + size as f64)) as f32;
                scale = start + randf() * (end - start);
            }
            let span = (1 + size - tgt) as u32;
            let start_y = (rt.glibc.random() % span) as i32;
            let start_x = (rt.glibc.random() % span) as i32;
            if size == img {
                util::conv_crop(x, acts, size, tgt, start_y, start_x)?;
            } else {
                util::conv_resize_bilinear(x, &mut self.rescaled, img, size, scale)?;
                util::conv_crop(&self.rescaled, acts, size, tgt, start_y, start_x)?;
            }
            self.rescaled.truncate();
        } else if flags & pass_flags::MULTIVIEW_TEST != 0 {
            x.copy_to(acts);
        } else if flags & pass_flags::TEST != 0 {
            let c = ((img - tgt) / 2) as i32;
            util::conv_crop(x, acts, img, tgt, c, c)?;
        }
        Ok(())
    }
}

impl ImageLayer {
    pub fn new(d: &LayerDict, gen: Generation) -> Result<Option<ImageLayer>, NetError> {
        let ty = d.str("type")?;
        Ok(Some(match ty {
            "pool" => {
                let pool = d.str("pool")?;
                let ty = match (pool, gen) {
                    ("max", _) => PoolType::Max,
                    ("avg", _) => PoolType::Avg,
                    ("maxabs", Generation::A12) => PoolType::MaxAbs,
                    ("rand", Generation::A12) if d.has("doMax") && d.bool("doMax")? => {
                        PoolType::Max
                    }
                    ("rand", Generation::A12) => PoolType::Rand,
                    _ => return Err(d.err(format!("Unknown pooling layer type {pool}"))),
                };
                ImageLayer::Pool {
                    ty,
                    channels: d.usize("channels")?,
                    size_x: d.usize("sizeX")?,
                    start: d.int("start")? as i32,
                    stride: d.usize("stride")?,
                    outputs_x: d.usize("outputsX")?,
                    img_size: d.usize("imgSize")?,
                    draws: 0,
                }
            }
            "rnorm" | "cmrnorm" => ImageLayer::ResponseNorm {
                cross_map: ty == "cmrnorm",
                channels: d.usize("channels")?,
                size: d.usize("size")?,
                scale: d.float("scale")?,
                pow: d.float("pow")?,
                blocked: ty == "cmrnorm" && d.bool("blocked")?,
                min_div: if ty == "cmrnorm" && gen == Generation::A12 {
                    Some(d.float("minDiv")?)
                } else {
                    None
                },
                denoms: NvMatrix::default(),
            },
            "cnorm" => ImageLayer::ContrastNorm {
                channels: d.usize("channels")?,
                size: d.usize("size")?,
                scale: d.float("scale")?,
                pow: d.float("pow")?,
                img_size: d.usize("imgSize")?,
                denoms: NvMatrix::default(),
                mean_diffs: NvMatrix::default(),
            },
            "nailbed" => ImageLayer::Nailbed {
                channels: d.usize("channels")?,
                start: d.int("start")? as i32,
                stride: d.usize("stride")?,
                img_size: d.usize("imgSize")?,
            },
            "blur" => ImageLayer::Blur {
                channels: d.usize("channels")?,
                filter: d.matrix("filter")?,
                tmp: NvMatrix::default(),
            },
            "resize" => ImageLayer::Resize {
                img_size: d.usize("imgSize")?,
                tgt_size: d.usize("tgtSize")?,
                scale: d.float("scale")?,
            },
            "href" if gen == Generation::A12 => ImageLayer::Href {
                img_size: d.usize("imgSize")?,
            },
            "rscale" if gen == Generation::A12 => ImageLayer::RScale(Box::new(RScale::new(d)?)),
            "rgb2yuv" => ImageLayer::Yuv,
            "rgb2lab" => ImageLayer::Lab {
                center: d.bool("center")?,
            },
            _ => return Ok(None),
        }))
    }

    pub fn fprop_acts(&mut self, io: &Io, rt: &mut Rt) -> Result<(), NetError> {
        match self {
            ImageLayer::Pool {
                ty,
                channels,
                size_x,
                start,
                stride,
                outputs_x,
                draws,
                ..
            } => {
                let (x, mut a) = (io.input(0), io.acts_mut());
                let (c, s, st, sd, o) = (*channels, *size_x, *start, *stride, *outputs_x);
                if let PoolType::Rand = ty {
                    // Our inferred stochastic pooling stays on the CPU.
                    *draws += 1;
                    let seed = rt.seed ^ draws.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    pool::conv_local_random_pool(&x, &mut a, c, s, st, sd, o, seed)?;
                    return Ok(());
                }
                let ty = *ty;
                rt.device.run(
                    &[&x],
                    &mut [&mut a],
                    &[(c * o * o, x.cols())],
                    &[false],
                    |t| match ty {
                        PoolType::Max => {
                            pool::conv_local_pool(&x, t[0], c, s, st, sd, o, MaxPooler)
                        }
                        PoolType::Avg => {
                            pool::conv_local_pool(&x, t[0], c, s, st, sd, o, AvgPooler)
                        }
                        _ => pool::conv_local_pool(&x, t[0], c, s, st, sd, o, MaxAbsPooler),
                    },
                    |b, m, t| {
                        let (x, t) = (&m[0], &t[0]);
                        match ty {
                            PoolType::Max => {
                                gpu::conv_local_pool(b, x, t, c, s, st, sd, o, MaxPooler)
                            }
                            PoolType::Avg => {
                                gpu::conv_local_pool(b, x, t, c, s, st, sd, o, AvgPooler)
                            }
                            _ => gpu::conv_local_pool(b, x, t, c, s, st, sd, o, MaxAbsPooler),
                        }
                    },
                )?;
            }
            ImageLayer::ResponseNorm {
                cross_map,
                channels,
                size,
                scale,
                pow,
                blocked,
                min_div,
                denoms,
            } => {
                let (x, mut a) = (io.input(0), io.acts_mut());
                let (nf, size, add, pow, blocked) = (*channels, *size, *scale, *pow, *blocked);
                let shape = (x.rows(), x.cols());
                rt.device.run(
                    &[&x],
                    &mut [denoms, &mut a],
                    &[shape, shape],
                    &[false, false],
                    |t| {
                        let (d, t) = t.split_at_mut(1);
                        let (d, a) = (&mut *d[0], &mut *t[0]);
                        match (*cross_map, *min_div) {
                            (false, _) => norm::conv_response_norm(&x, d, a, nf, size, add, pow),
                            (true, None) => norm::conv_response_norm_cross_map(
                                &x, d, a, nf, size, add, pow, blocked,
                            ),
                            (true, Some(m)) => norm::conv_response_norm_cross_map_min_div(
                                &x, d, a, nf, size, add, pow, m, blocked,
                            ),
                        }
                    },
                    |b, m, t| match (*cross_map, *min_div) {
                        (false, _) => {
                            gpu::conv_response_norm(b, &m[0], &t[0], &t[1], nf, size, add, pow)
                        }
                        (true, None) => gpu::conv_response_norm_cross_map(
                            b, &m[0], &t[0], &t[1], nf, size, add, pow, blocked,
                        ),
                        (true, Some(md)) => gpu::conv_response_norm_cross_map_min_div(
                            b, &m[0], &t[0], &t[1], nf, size, add, pow, md, blocked,
                        ),
                    },
                )?;
            }
            ImageLayer::ContrastNorm {
                channels,
                size,
                scale,
                pow,
                img_size,
                denoms,
                mean_diffs,
            } => {
                let (x, mut a) = (io.input(0), io.acts_mut());
                let (nf, size, add, pow, img) = (*channels, *size, *scale, *pow, *img_size);
                let (half, shape) = ((size / 2) as i32, (x.rows(), x.cols()));
                rt.device.run(
                    &[&x],
                    &mut [mean_diffs],
                    &[shape],
                    &[false],
                    |t| pool::conv_local_pool(&x, t[0], nf, size, -half, 1, img, AvgPooler),
                    |b, m, t| {
                        gpu::conv_local_pool(b, &m[0], &t[0], nf, size, -half, 1, img, AvgPooler)
                    },
                )?;
                mean_diffs.add(&x, -1.0, 1.0)?;
                let md = &*mean_diffs;
                rt.device.run(
                    &[&x, md],
                    &mut [denoms, &mut a],
                    &[shape, shape],
                    &[false, false],
                    |t| {
                        let (d, t) = t.split_at_mut(1);
                        norm::conv_contrast_norm(&x, md, d[0], t[0], nf, size, add, pow)
                    },
                    |b, m, t| {
                        gpu::conv_contrast_norm(b, &m[0], &m[1], &t[0], &t[1], nf, size, add, pow)
                    },
                )?;
            }
            ImageLayer::Nailbed {
                channels,
                start,
                stride,
                img_size,
            } => {
                let (x, mut a) = (io.input(0), io.acts_mut());
                util::conv_bed_of_nails(
                    &x, &mut a, *channels, *img_size, *start, *stride, 0.0, 1.0,
                )?;
            }
            ImageLayer::Blur {
                channels, filter, ..
            } => {
                let x = io.input_while_writing_acts(0);
                let mut a = io.acts_mut();
                util::conv_gaussian_blur(&x, filter, &mut a, true, *channels, 0.0, 1.0)?;
                util::conv_gaussian_blur_in_place(&mut a, filter, false, *channels, 0.0, 1.0)?;
            }
            ImageLayer::Resize {
                img_size,
                tgt_size,
                scale,
            } => {
                let (x, mut a) = (io.input(0), io.acts_mut());
                util::conv_resize_bilinear(&x, &mut a, *img_size, *tgt_size, *scale)?;
            }
            ImageLayer::Yuv => {
                let x = io.input_while_writing_acts(0);
                util::conv_rgb_to_yuv(&x, &mut io.acts_mut())?;
            }
            ImageLayer::Lab { center } => {
                let x = io.input_while_writing_acts(0);
                util::conv_rgb_to_lab(&x, &mut io.acts_mut(), *center)?;
            }
            ImageLayer::Href { img_size } => {
                util::conv_reflect_horizontal(&io.input(0), &mut io.acts_mut(), *img_size)?;
            }
            ImageLayer::RScale(r) => r.fprop(&io.input(0), &mut io.acts_mut(), rt)?,
        }
        Ok(())
    }

    pub fn bprop_acts(&mut self, io: &Io, scale: f32, rt: &mut Rt) -> Result<(), NetError> {
        match self {
            ImageLayer::Pool {
                ty,
                size_x,
                start,
                stride,
                outputs_x,
                img_size,
                ..
            } => {
                let (v, mut target) = (io.v(), io.prev_grad_mut(0));
                let (s, st, sd, o, img) = (*size_x, *start, *stride, *outputs_x, *img_size);
                let x = io.input(0);
                let shape = [(x.rows(), x.cols())];
                match ty {
                    PoolType::Avg => rt.device.run(
                        &[&v],
                        &mut [&mut target],
                        &shape,
                        &[scale != 0.0],
                        |t| pool::conv_local_avg_undo(&v, t[0], s, st, sd, o, img, scale, 1.0),
                        |b, m, t| {
                            gpu::conv_local_avg_undo(b, &m[0], &t[0], s, st, sd, o, img, scale, 1.0)
                        },
                    )?,
                    _ => {
                        let acts = io.acts();
                        rt.device.run(
                            &[&x, &v, &acts],
                            &mut [&mut target],
                            &shape,
                            &[scale != 0.0],
                            |t| {
                                pool::conv_local_max_undo(
                                    &x, &v, &acts, t[0], s, st, sd, o, scale, 1.0,
                                )
                            },
                            |b, m, t| {
                                gpu::conv_local_max_undo(
                                    b, &m[0], &m[1], &m[2], &t[0], s, st, sd, o, scale, 1.0,
                                )
                            },
                        )?
                    }
                }
            }
            ImageLayer::ResponseNorm {
                cross_map,
                channels,
                size,
                scale: add_scale,
                pow,
                blocked,
                denoms,
                ..
            } => {
                let (v, x, mut a, mut target) =
                    (io.v(), io.input(0), io.acts_mut(), io.prev_grad_mut(0));
                let (nf, size, add, pow, blocked) = (*channels, *size, *add_scale, *pow, *blocked);
                let (cross_map, shape) = (*cross_map, (x.rows(), x.cols()));
                let denoms = &*denoms;
                rt.device.run(
                    &[&v, denoms, &x],
                    &mut [&mut a, &mut target],
                    &[shape, shape],
                    &[true, scale != 0.0],
                    |t| {
                        let (a, t) = t.split_at_mut(1);
                        let (a, t) = (&mut *a[0], &mut *t[0]);
                        if cross_map {
                            norm::conv_response_norm_cross_map_undo(
                                &v, denoms, &x, a, t, nf, size, add, pow, blocked, scale, 1.0,
                            )
                        } else {
                            norm::conv_response_norm_undo(
                                &v, denoms, &x, a, t, nf, size, add, pow, scale, 1.0,
                            )
                        }
                    },
                    |b, m, t| {
                        if cross_map {
                            gpu::conv_response_norm_cross_map_undo(
                                b, &m[0], &m[1], &m[2], &t[0], &t[1], nf, size, add, pow, blocked,
                                scale, 1.0,
                            )
                        } else {
                            gpu::conv_response_norm_undo(
                                b, &m[0], &m[1], &m[2], &t[0], &t[1], nf, size, add, pow, scale,
                                1.0,
                            )
                        }
                    },
                )?;
            }
            ImageLayer::ContrastNorm {
                channels,
                size,
                scale: add_scale,
                pow,
                denoms,
                mean_diffs,
                ..
            } => {
                let (v, mut a, mut target) = (io.v(), io.acts_mut(), io.prev_grad_mut(0));
                let (nf, size, add, pow) = (*channels, *size, *add_scale, *pow);
                let (denoms, md, shape) = (&*denoms, &*mean_diffs, (v.rows(), v.cols()));
                rt.device.run(
                    &[&v, denoms, md],
                    &mut [&mut a, &mut target],
                    &[shape, shape],
                    &[true, scale != 0.0],
                    |t| {
                        let (a, t) = t.split_at_mut(1);
                        norm::conv_contrast_norm_undo(
                            &v, denoms, md, a[0], t[0], nf, size, add, pow, scale, 1.0,
                        )
                    },
                    |b, m, t| {
                        gpu::conv_contrast_norm_undo(
                            b, &m[0], &m[1], &m[2], &t[0], &t[1], nf, size, add, pow, scale, 1.0,
                        )
                    },
                )?;
            }
            ImageLayer::Nailbed {
                channels,
                start,
                stride,
                img_size,
            } => {
                let (v, mut target) = (io.v(), io.prev_grad_mut(0));
                util::conv_bed_of_nails_undo(
                    &v,
                    &mut target,
                    *channels,
                    *img_size,
                    *start,
                    *stride,
                    scale,
                    1.0,
                )?;
            }
            ImageLayer::Blur {
                channels,
                filter,
                tmp,
            } => {
                // Into a temporary when the input already holds a gradient (then added
                // by the second pass), else straight into the input's gradient.
                let v = io.v_while_writing_grad(0);
                let mut target = io.prev_grad_mut(0);
                if scale != 0.0 {
                    util::conv_gaussian_blur(&v, filter, tmp, true, *channels, 0.0, 1.0)?;
                    util::conv_gaussian_blur(
                        tmp,
                        filter,
                        &mut target,
                        false,
                        *channels,
                        scale,
                        1.0,
                    )?;
                } else {
                    util::conv_gaussian_blur(&v, filter, &mut target, true, *channels, 0.0, 1.0)?;
                    util::conv_gaussian_blur_in_place(
                        &mut target,
                        filter,
                        false,
                        *channels,
                        scale,
                        1.0,
                    )?;
                }
            }
            ImageLayer::Href { img_size } => {
                // Overwrites the input's gradient whatever `scaleTargets` (BUG,
                // reproduced: a second consumer's contribution is lost).
                util::conv_reflect_horizontal(&io.v(), &mut io.prev_grad_mut(0), *img_size)?;
            }
            ImageLayer::Resize { .. }
            | ImageLayer::Yuv
            | ImageLayer::Lab { .. }
            | ImageLayer::RScale(_) => {
                return Err(NetError {
                    layer: None,
                    message: "this layer type has no gradient (the original asserts)".into(),
                })
            }
        }
        Ok(())
    }
}
