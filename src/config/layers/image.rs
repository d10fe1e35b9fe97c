//! Port of layer.py's image-layer parsers: `PoolLayerParser`, `NormLayerParser`
//! (rnorm, cnorm, cmrnorm), `NailbedLayerParser`, `GaussianBlurLayerParser`,
//! `ResizeLayerParser`, `RandomScaleLayerParser`, `ColorTransformLayerParser` (rgb2yuv,
//! rgb2lab) and `HorizontalReflectionLayerParser`.

use crate::config::layer::{grad_consumers_below, parse_with_inputs, Cx};
use crate::config::py;
use crate::config::value::Array;
use crate::config::{ConfigError, Generation};

pub(super) fn parse_pool(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_with_inputs(cx, Some(1))?;
    for key in ["channels", "sizeX"] {
        let v = cx.sec.req_int(key)?;
        cx.set(key, v);
    }
    let v = cx.sec.int("start")?.unwrap_or(0);
    cx.set("start", v);
    let v = cx.sec.req_int("stride")?;
    cx.set("stride", v);
    let v = cx.sec.int("outputsX")?.unwrap_or(0);
    cx.set("outputsX", v);
    let pool = cx.sec.req_str("pool")?;
    cx.set("pool", pool.clone());
    if cx.gen == Generation::A12 {
        cx.set("requiresParams", pool == "rand");
    }
    // The original compares the literal 'pool' with 'avg' here, so both are always true.
    cx.set("usesActs", true);
    cx.set("usesInputs", true);
    cx.set_img_dims()?;
    let (size_x, img_size) = (cx.int("sizeX"), cx.int("imgSize"));
    cx.int_range(size_x, "sizeX", Some(1), Some(img_size))?;
    cx.int_range(cx.int("stride"), "stride", Some(1), Some(size_x))?;
    cx.int_range(cx.int("outputsX"), "outputsX", Some(0), None)?;
    cx.int_range(cx.int("channels"), "channels", Some(1), None)?;
    if grad_consumers_below(&cx.dic, cx.prev) {
        cx.divisible(cx.int("channels"), 16, "channels", None, 0)?;
    }
    let allowed: &[&str] = match cx.gen {
        Generation::C1 => &["max", "avg"],
        Generation::A12 => &["max", "maxabs", "avg", "rand"],
    };
    cx.str_in(&pool, "pool", allowed)?;
    cx.verify_img_size()?;
    if cx.int("outputsX") <= 0 {
        let (start, stride) = (cx.int("start"), cx.int("stride"));
        let ox = ((img_size - start - size_x) as f64 / stride as f64).ceil() as i64 + 1;
        cx.set("outputsX", ox);
    }
    let (ox, channels) = (cx.int("outputsX"), cx.int("channels"));
    cx.set("outputs", ox * ox * channels);
    cx.initialized(
        &format!("{pool}-pooling layer"),
        &format!(", producing {ox}x{ox} {channels}-channel output"),
    );
    Ok(())
}

fn norm_kind(ltype: &str) -> &'static str {
    match ltype {
        "rnorm" => "response",
        "cnorm" => "contrast",
        _ => "cross-map response",
    }
}

pub(super) fn parse_norm(cx: &mut Cx, ltype: &str) -> Result<(), ConfigError> {
    parse_with_inputs(cx, Some(1))?;
    cx.set("requiresParams", true);
    for key in ["channels", "size"] {
        let v = cx.sec.req_int(key)?;
        cx.set(key, v);
    }
    let v = cx.sec.bool("blocked")?.unwrap_or(false);
    cx.set("blocked", v);
    cx.set_img_dims()?;
    cx.set("usesInputs", ltype != "cnorm");
    let (channels, size, name) = (cx.int("channels"), cx.int("size"), cx.name.clone());
    cx.int_range(channels, "channels", Some(1), None)?;
    if ltype == "cmrnorm" {
        cx.int_range(size, "size", Some(2), Some(channels))?;
        if channels % 16 != 0 {
            return Err(cx
                .err(format!("Layer '{name}': number of channels must be divisible by 16 when using crossMap"))
                .key("channels"));
        }
    } else {
        cx.int_range(size, "size", Some(1), Some(cx.int("imgSize")))?;
    }
    if ltype != "cmrnorm" && channels > 3 && channels % 4 != 0 {
        return Err(cx
            .err(format!(
                "Layer '{name}': number of channels must be smaller than 4 or divisible by 4"
            ))
            .key("channels"));
    }
    cx.verify_img_size()?;
    let (pixels, img) = (cx.int("imgPixels"), cx.int("imgSize"));
    cx.set("outputs", pixels * channels);
    let what = format!("{}-normalization layer", norm_kind(ltype));
    cx.initialized(
        &what,
        &format!(", producing {img}x{img} {channels}-channel output"),
    );
    Ok(())
}

pub(super) fn add_norm_params(cx: &mut Cx, ltype: &str) -> Result<(), ConfigError> {
    let scale = cx.sec.req_float("scale")?;
    let size = cx.int("size");
    let div = if ltype == "cmrnorm" {
        size
    } else {
        size * size
    };
    cx.set("scale", scale / div as f64);
    let pow = cx.sec.req_float("pow")?;
    cx.set("pow", pow);
    if ltype == "cmrnorm" && cx.gen == Generation::A12 {
        let v = cx.sec.float("minDiv")?.unwrap_or(1.0);
        cx.set("minDiv", v);
    }
    Ok(())
}

/// Common head of the image-transform layers: one input, computes in place.
fn in_place_image_layer(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_with_inputs(cx, Some(1))?;
    cx.set("forceOwnActs", false);
    cx.set("usesActs", false);
    cx.set("usesInputs", false);
    Ok(())
}

pub(super) fn parse_nailbed(cx: &mut Cx) -> Result<(), ConfigError> {
    in_place_image_layer(cx)?;
    for key in ["channels", "stride"] {
        let v = cx.sec.req_int(key)?;
        cx.set(key, v);
    }
    let (channels, stride) = (cx.int("channels"), cx.int("stride"));
    cx.int_range(channels, "channels", Some(1), None)?;
    cx.set_img_dims()?;
    let img = cx.int("imgSize");
    let ox = cx.div(img + stride - 1, stride, "stride")?;
    cx.set("outputsX", ox);
    let start = cx.div(img - stride * (ox - 1), 2, "stride")?;
    cx.set("start", start);
    cx.set("outputs", channels * ox * ox);
    cx.int_range(ox, "outputsX", Some(0), None)?;
    cx.verify_img_size()?;
    cx.initialized(
        "bed-of-nails layer",
        &format!(", producing {ox}x{ox} {channels}-channel output"),
    );
    Ok(())
}

pub(super) fn parse_blur(cx: &mut Cx) -> Result<(), ConfigError> {
    in_place_image_layer(cx)?;
    let outputs = cx.ints("numInputs")[0];
    cx.set("outputs", outputs);
    for key in ["channels", "filterSize"] {
        let v = cx.sec.req_int(key)?;
        cx.set(key, v);
    }
    let stdev = cx.sec.req_float("stdev")?;
    cx.set("stdev", stdev);
    let (channels, fsize) = (cx.int("channels"), cx.int("filterSize"));
    cx.int_range(channels, "channels", Some(1), None)?;
    cx.int_in(fsize, "filterSize", &[3, 5, 7, 9])?;
    cx.set_img_dims()?;
    // exp(-(filterSize/2 - i)^2 / (2 stdev^2)) in double, stored as float32 and divided
    // by numpy's float32 sum of the taps.
    let denom = 2.0 * (stdev * stdev);
    if denom == 0.0 {
        return Err(cx.crash("stdev", "float division by zero"));
    }
    let taps: Vec<f32> = (0..fsize)
        .map(|i| (-(((fsize / 2 - i) * (fsize / 2 - i)) as f64) / denom).exp() as f32)
        .collect();
    let sum = py::numpy_sum_f32(&taps);
    let mut filter = Array::filled(1, fsize as usize, false, 0.0);
    for (d, t) in filter.data.iter_mut().zip(&taps) {
        *d = t / sum;
    }
    cx.set("filter", filter);
    cx.verify_img_size()?;
    let img = cx.int("imgSize");
    if fsize > img {
        return Err(cx
            .err(format!(
                "Later '{}': filter size ({fsize}) must be smaller than image size ({img}).",
                cx.name
            ))
            .key("filterSize"));
    }
    let line = format!(
        "Initialized Gaussian blur layer '{}', producing {img}x{img} {channels}-channel output",
        cx.name
    );
    cx.print(line);
    Ok(())
}

pub(super) fn parse_resize(cx: &mut Cx) -> Result<(), ConfigError> {
    in_place_image_layer(cx)?;
    let channels = cx.sec.req_int("channels")?;
    cx.set("channels", channels);
    cx.set_img_dims()?;
    let scale = cx.sec.req_float("scale")?;
    cx.set("scale", scale);
    let img = cx.int("imgSize");
    let tgt = scaled_size(cx, img, scale, "scale")?;
    cx.set("tgtSize", tgt);
    cx.set("tgtPixels", tgt * tgt);
    cx.int_range(channels, "channels", Some(1), None)?;
    cx.float_range(scale, "scale", 0.5, 2.0)?;
    cx.set("outputs", channels * tgt * tgt);
    cx.verify_img_size()?;
    cx.verify_no_grads()?;
    let line = format!(
        "Initialized resize layer '{}', producing {tgt}x{tgt} {channels}-channel output",
        cx.name
    );
    cx.print(line);
    Ok(())
}

/// `int(floor(imgSize / scale))`; a zero or non-finite quotient fails in the original.
fn scaled_size(cx: &Cx, img: i64, scale: f64, key: &str) -> Result<i64, ConfigError> {
    if scale == 0.0 {
        return Err(cx.crash(key, "division by zero"));
    }
    let q = (img as f64 / scale).floor();
    if !q.is_finite() {
        return Err(cx.crash(key, "not a finite size"));
    }
    Ok(q as i64)
}

pub(super) fn parse_rscale(cx: &mut Cx) -> Result<(), ConfigError> {
    in_place_image_layer(cx)?;
    let channels = cx.sec.req_int("channels")?;
    cx.set("channels", channels);
    cx.int_range(channels, "channels", Some(1), None)?;
    cx.set_img_dims()?;
    let max_scale = cx.sec.req_float("maxScale")?;
    cx.set("maxScale", max_scale);
    let img = cx.int("imgSize");
    let name = cx.name.clone();
    let tgt = match cx.gen {
        Generation::C1 => scaled_size(cx, img, max_scale, "maxScale")?,
        Generation::A12 => {
            let tgt = cx.sec.req_int("tgtSize")?;
            let min = scaled_size(cx, img, max_scale, "maxScale")?;
            if tgt < min {
                return Err(cx.err(format!(
                    "Layer '{name}': target size must be greater than minimum image size after rescaling ({min})"
                )).key("tgtSize"));
            }
            if tgt > img {
                return Err(cx.err(format!(
                    "Layer '{name}': target size must be smaller than maximum image size after rescaling ({img})"
                )).key("tgtSize"));
            }
            tgt
        }
    };
    cx.set("tgtSize", tgt);
    cx.set("tgtPixels", tgt * tgt);
    cx.float_range(max_scale, "maxScale", 1.0, 2.0)?;
    cx.set("outputs", channels * tgt * tgt);
    cx.verify_img_size()?;
    cx.verify_no_grads()?;
    let line = format!(
        "Initialized random scale layer '{name}', producing {tgt}x{tgt} {channels}-channel output"
    );
    cx.print(line);
    Ok(())
}

pub(super) fn parse_color(cx: &mut Cx, ltype: &str) -> Result<(), ConfigError> {
    in_place_image_layer(cx)?;
    let n = cx.ints("numInputs")[0];
    let pixels = cx.div(n, 3, "inputs")?;
    cx.set("imgPixels", pixels);
    let img = cx.isqrt(pixels, "inputs")?;
    cx.set("imgSize", img);
    cx.set("channels", 3i64);
    cx.set("outputs", n);
    cx.verify_img_size()?;
    cx.verify_no_grads()?;
    let (what, name) = if ltype == "rgb2yuv" {
        ("YUV", cx.name.clone())
    } else {
        ("LAB", cx.name.clone())
    };
    if ltype == "rgb2lab" {
        let v = cx.sec.bool("center")?.unwrap_or(false);
        cx.set("center", v);
    }
    let line = format!(
        "Initialized RGB --> {what} layer '{name}', producing {img}x{img} 3-channel output"
    );
    cx.print(line);
    Ok(())
}

pub(super) fn parse_href(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_with_inputs(cx, Some(1))?;
    let outputs = cx.ints("numInputs")[0];
    cx.set("outputs", outputs);
    let channels = cx.sec.req_int("channels")?;
    cx.set("channels", channels);
    cx.int_range(channels, "channels", Some(1), Some(3))?;
    cx.set_img_dims()?;
    cx.verify_img_size()?;
    let img = cx.int("imgSize");
    let line = format!(
        "Initialized horizontal reflection layer '{}', producing {img}x{img} {channels}-channel output",
        cx.name
    );
    cx.print(line);
    Ok(())
}
