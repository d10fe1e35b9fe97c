//! Port of layer.py's per-type parsers (both generations): the `layer_parsers` table
//! and the small types here (`DataLayerParser`, `SoftmaxLayerParser`,
//! `ConcatentionLayerParser`, `EltwiseSumLayerParser`, `EltwiseMaxLayerParser`,
//! `NeuronLayerParser`, `HiddenSexLayerParser`); weight layers, image layers and costs
//! have their own modules. Each type has a `parse` (definition file) and an
//! `add_params` (parameter file).

mod cost;
mod image;
mod initw;
mod weights;

use super::layer::{int_of, parse_base, parse_with_inputs, str_of, Cx};
use super::reader::Source;
use super::specs::{neuron_usage, parse_neuron, ParamTable, SpecError};
use super::{ConfigError, Generation};
use cost::{add_cost_params, parse_cost};
use image::{
    add_norm_params, parse_blur, parse_color, parse_href, parse_nailbed, parse_norm, parse_pool,
    parse_resize, parse_rscale,
};
use rand::Rng;
use weights::{add_wc_norm_params, add_weight_params, parse_fc, parse_local, parse_treefc};

const C1_TYPES: &[&str] = &[
    "data",
    "fc",
    "conv",
    "local",
    "softmax",
    "eltsum",
    "eltmax",
    "neuron",
    "pool",
    "rnorm",
    "cnorm",
    "cmrnorm",
    "nailbed",
    "blur",
    "resize",
    "rgb2yuv",
    "rgb2lab",
    "rscale",
    "cost.logreg",
    "cost.sum2",
];

/// Types only the 2012 parser registers.
pub(super) const A12_ONLY_TYPES: &[&str] = &[
    "treefc",
    "href",
    "concat",
    "hs",
    "cost.msm",
    "cost.crossent",
    "cost.crossent2",
    "cost.gsum2",
    "cost.tica",
    "cost.rflickr",
];

/// `layer_parsers`: is `ltype` registered in this generation?
pub(super) fn is_registered(gen: Generation, ltype: &str) -> bool {
    C1_TYPES.contains(&ltype) || (gen == Generation::A12 && A12_ONLY_TYPES.contains(&ltype))
}

/// `layer_parsers[ltype]().parse(...)`.
pub(super) fn parse(ltype: &str, cx: &mut Cx, rng: &mut impl Rng) -> Result<(), ConfigError> {
    match ltype {
        "data" => parse_data(cx),
        "fc" => parse_fc(cx, rng),
        "treefc" => parse_treefc(cx),
        "conv" | "local" => parse_local(cx, ltype == "conv", rng),
        "softmax" => parse_softmax(cx),
        "concat" => parse_concat(cx),
        "eltsum" => parse_eltsum(cx),
        "eltmax" => parse_eltmax(cx),
        "neuron" => parse_neuron_layer(cx),
        "pool" => parse_pool(cx),
        "rnorm" | "cnorm" | "cmrnorm" => parse_norm(cx, ltype),
        "nailbed" => parse_nailbed(cx),
        "blur" => parse_blur(cx),
        "resize" => parse_resize(cx),
        "rscale" => parse_rscale(cx),
        "rgb2yuv" | "rgb2lab" => parse_color(cx, ltype),
        "href" => parse_href(cx),
        "hs" => parse_hs(cx),
        cost => parse_cost(cx, cost),
    }
}

/// `layer_parsers[type]().init(dic).add_params(mcp)`.
pub(super) fn add_params(ltype: &str, cx: &mut Cx, params: &Source) -> Result<(), ConfigError> {
    if cx.gen == Generation::A12 {
        // LayerParser.add_params: the transfer quantizers, for every layer.
        let q = cx.param_spec(
            params,
            ParamTable::Quantizer,
            "quantF",
            "forward quantization scheme",
        )?;
        cx.set("quantF", q);
        let q = cx.param_spec(
            params,
            ParamTable::Quantizer,
            "quantB",
            "backward quantization scheme",
        )?;
        cx.set("quantB", q);
    }
    match ltype {
        "fc" | "treefc" | "local" => add_weight_params(cx, params),
        "conv" => {
            add_weight_params(cx, params)?;
            if cx.gen == Generation::A12 {
                add_wc_norm_params(cx)?;
            }
            Ok(())
        }
        "pool" if cx.gen == Generation::A12 && str_of(&cx.dic, "pool") == "rand" => {
            let v = cx.sec.bool("doMax")?.unwrap_or(false);
            cx.set("doMax", v);
            Ok(())
        }
        "rnorm" | "cnorm" | "cmrnorm" => add_norm_params(cx, ltype),
        "hs" => {
            let v = cx.sec.req_bool("enable")?;
            cx.set("enable", v);
            Ok(())
        }
        t if t.starts_with("cost.") => add_cost_params(cx, t),
        _ => Ok(()),
    }
}

fn parse_data(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_base(cx)?;
    let idx = cx.sec.req_int("dataIdx")?;
    cx.set("dataIdx", idx);
    let dims = &cx.data().data_dims;
    let outputs = usize::try_from(idx)
        .ok()
        .and_then(|i| dims.get(i))
        .copied()
        .ok_or_else(|| {
            cx.err(format!(
                "Layer '{}': the data provider has no data matrix {idx} (data dims given: {})",
                cx.name,
                dims.len()
            ))
            .key("dataIdx")
            .crash()
        })?;
    cx.set("outputs", outputs);
    cx.print(format!(
        "Initialized data layer '{}', producing {outputs} outputs",
        cx.name
    ));
    Ok(())
}

fn parse_softmax(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_with_inputs(cx, Some(1))?;
    let outputs = int_of(cx.input(0), "outputs");
    cx.set("outputs", outputs);
    cx.initialized("softmax layer", &format!(", producing {outputs} outputs"));
    Ok(())
}

fn parse_concat(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_with_inputs(cx, None)?;
    let widths: Vec<i64> = (0..cx.num_inputs())
        .map(|i| int_of(cx.input(i), "outputs"))
        .collect();
    let outputs: i64 = widths.iter().sum();
    cx.set("outputs", outputs);
    let offsets: Vec<i64> = (0..widths.len())
        .map(|i| widths[..i].iter().sum())
        .collect();
    cx.set("copyOffsets", offsets);
    cx.initialized(
        "concatenation layer",
        &format!(", producing {outputs} outputs"),
    );
    Ok(())
}

fn same_widths(cx: &Cx) -> Result<i64, ConfigError> {
    let widths = cx.ints("numInputs");
    if widths.iter().any(|&w| w != widths[0]) {
        let shown: Vec<String> = widths.iter().map(i64::to_string).collect();
        return Err(cx.err(format!(
            "Layer '{}': all inputs must have the same dimensionality. Got dimensionalities: {}",
            cx.name,
            shown.join(", ")
        )));
    }
    Ok(widths[0])
}

fn parse_eltsum(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_with_inputs(cx, None)?;
    let outputs = same_widths(cx)?;
    cx.set("outputs", outputs);
    cx.set("usesInputs", false);
    cx.set("usesActs", false);
    cx.set("forceOwnActs", false);
    let n = cx.num_inputs();
    let coeffs = cx.sec.float_list("coeffs")?.unwrap_or_else(|| vec![1.0; n]);
    cx.set("coeffs", coeffs);
    cx.initialized(
        "elementwise sum layer",
        &format!(", producing {outputs} outputs"),
    );
    Ok(())
}

fn parse_eltmax(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_with_inputs(cx, None)?;
    if cx.num_inputs() < 2 {
        return Err(cx
            .err(format!(
                "Layer '{}': elementwise max layer must have at least 2 inputs, got {}.",
                cx.name,
                cx.num_inputs()
            ))
            .key("inputs"));
    }
    let outputs = same_widths(cx)?;
    cx.set("outputs", outputs);
    cx.initialized(
        "elementwise max layer",
        &format!(", producing {outputs} outputs"),
    );
    Ok(())
}

/// `NeuronLayerParser.parse` (also used for layers detached from `neuron=`).
pub(super) fn parse_neuron_layer(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_with_inputs(cx, Some(1))?;
    let outputs = cx.ints("numInputs")[0];
    cx.set("outputs", outputs);
    let spec = str_of(&cx.dic, "neuron").to_string();
    match parse_neuron(cx.gen, &spec) {
        Ok(d) => {
            let (acts, inputs) = (d["usesActs"].clone(), d["usesInputs"].clone());
            cx.set("neuron", d);
            cx.set("usesActs", acts);
            cx.set("usesInputs", inputs);
        }
        Err(SpecError::NoMatch) => {
            return Err(cx.err(format!(
                "Layer '{}': unable to parse neuron type '{spec}'. Valid neuron types: \n{}\nWhere neurons have parameters, they must be floats.",
                cx.name,
                neuron_usage(cx.gen)
            )).key("neuron"))
        }
        Err(SpecError::BadNumber(v)) => return Err(cx.crash("neuron", &format!("invalid number '{v}' in '{spec}'"))),
    }
    cx.set("forceOwnActs", false);
    cx.initialized("neuron layer", &format!(", producing {outputs} outputs"));
    Ok(())
}

fn parse_hs(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_with_inputs(cx, Some(1))?;
    cx.set("requiresParams", true);
    cx.set("usesInputs", false);
    cx.set("usesActs", false);
    cx.set("forceOwnActs", false);
    let outputs = cx.ints("numInputs")[0];
    cx.set("outputs", outputs);
    let keep = cx.sec.req_float("keep")?;
    cx.set("keep", keep);
    cx.initialized(
        "hidden sex layer",
        &format!(", producing {outputs} outputs"),
    );
    Ok(())
}
