//! Port of layer.py's per-type parsers (both generations): `DataLayerParser`,
//! `FCLayerParser`, `TreeFCLayerParser`, `LocalLayerParser` / `ConvLayerParser` /
//! `LocalUnsharedLayerParser` (with `WeightLayerParser`: weight sharing, `make_weights`,
//! `make_biases`, `gen_rand_conns`), `SoftmaxLayerParser`, `ConcatentionLayerParser`,
//! `EltwiseSumLayerParser`, `EltwiseMaxLayerParser`, `NeuronLayerParser`,
//! `PoolLayerParser`, `NormLayerParser`, `NailbedLayerParser`, `GaussianBlurLayerParser`,
//! `ResizeLayerParser`, `RandomScaleLayerParser`, `ColorTransformLayerParser`,
//! `HorizontalReflectionLayerParser`, `HiddenSexLayerParser` and the cost parsers;
//! each type's `parse` (definition file) and `add_params` (parameter file).

use super::layer::{grad_consumers_below, int_of, parse_base, parse_with_inputs, str_of, Cx};
use super::reader::Source;
use super::specs::{neuron_usage, parse_neuron, ParamTable, SpecError};
use super::value::{Array, Dict, Value};
use super::{ConfigError, Generation};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::StandardNormal;

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
            let v = cx.sec.bool("enable")?;
            let v = cx.sec.required("enable", v)?;
            cx.set("enable", v);
            Ok(())
        }
        t if t.starts_with("cost.") => add_cost_params(cx, t),
        _ => Ok(()),
    }
}

fn parse_data(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_base(cx)?;
    let idx = cx.sec.int("dataIdx")?;
    let idx = cx.sec.required("dataIdx", idx)?;
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

/// `WeightLayerParser.parse`: init values, init functions and `weightSource` sharing.
fn parse_weight_common(cx: &mut Cx, arity: Option<usize>) -> Result<(), ConfigError> {
    parse_with_inputs(cx, arity)?;
    cx.set("requiresParams", true);
    cx.set("gradConsumer", true);
    if cx.gen == Generation::A12 {
        cx.set("usesActs", false);
    }
    // The original's default here is the scalar 0.01, which its list reader cannot
    // split: a missing initW is the list error, never 0.01.
    let init_w = cx
        .sec
        .float_list("initW")?
        .ok_or_else(|| cx.sec.list_error("initW", "floats"))?;
    cx.set("initW", init_w);
    match cx.sec.float("initB")? {
        Some(v) => cx.set("initB", v),
        None => cx.set("initB", 0i64),
    }
    let f = cx.sec.str("initWFunc")?.unwrap_or_default();
    cx.set("initWFunc", f);
    let f = cx.sec.str("initBFunc")?.unwrap_or_default();
    cx.set("initBFunc", f);
    let n = cx.num_inputs();
    let sources = cx
        .sec
        .str_list("weightSource")?
        .unwrap_or_else(|| vec![String::new(); n]);
    cx.set("weightSource", sources.clone());
    cx.same_len_as_inputs(&["initW", "weightSource"])?;

    let name = cx.name.clone();
    let (mut src_layers, mut src_matrices) = (Vec::new(), Vec::new());
    for (i, src_name) in sources.iter().enumerate() {
        let (mut src_layer_ref, mut src_matrix) = (None, -1i64);
        if !src_name.is_empty() {
            let Some((src, idx)) = split_layer_index(src_name) else {
                return Err(cx.err(format!(
                    "Layer '{name}': unable to parse weight sharing source '{src_name}'. Format is layer[idx] or just layer, in which case idx=0 is used."
                )).key("weightSource"));
            };
            src_matrix = idx;
            let own = src == name;
            let src_layer = if own {
                None
            } else {
                super::layer::find(cx.prev, &src)
            };
            if src_layer.is_none() && !own {
                return Err(cx
                    .err(format!(
                        "Layer '{name}': weight sharing source layer '{src}' does not exist."
                    ))
                    .key("weightSource"));
            }
            let src_dic = src_layer.unwrap_or(&cx.dic);
            if cx.gen == Generation::A12 && int_of(src_dic, "gpu") != cx.int("gpu") {
                return Err(cx.err(format!(
                    "Layer '{name}': weight sharing source layer '{src}' runs on GPU {}, while '{name}' runs on GPU {}.",
                    int_of(src_dic, "gpu"),
                    cx.int("gpu")
                )).key("weightSource"));
            }
            let (src_type, my_type) = (str_of(src_dic, "type"), str_of(&cx.dic, "type"));
            if src_type != my_type {
                return Err(cx.err(format!(
                    "Layer '{name}': weight sharing source layer '{src}' is of type '{src_type}'; should be '{my_type}'."
                )).key("weightSource"));
            }
            if let Some(l) = src_layer {
                let count = l
                    .get("weights")
                    .and_then(Value::as_list)
                    .map_or(0, <[Value]>::len) as i64;
                if count <= src_matrix {
                    return Err(cx.err(format!(
                        "Layer '{name}': weight sharing source layer '{src}' has {count} weight matrices, but '{src_name}[{src_matrix}]' requested."
                    )).key("weightSource"));
                }
            } else if src_matrix >= i as i64 {
                return Err(cx
                    .err(format!("Layer '{name}': weight sharing source '{name}[{src_matrix}]' not defined yet."))
                    .key("weightSource"));
            }
            src_layer_ref = Some(match cx.gen {
                Generation::C1 => Value::Int(if own {
                    cx.prev.len() as i64
                } else {
                    cx.prev
                        .iter()
                        .position(|l| str_of(l, "name") == src)
                        .unwrap() as i64
                }),
                Generation::A12 => Value::Str(src),
            });
        }
        src_layers.push(src_layer_ref.unwrap_or(match cx.gen {
            Generation::C1 => Value::Int(-1),
            Generation::A12 => Value::Str(String::new()),
        }));
        src_matrices.push(Value::Int(src_matrix));
    }
    let key = match cx.gen {
        Generation::C1 => "weightSourceLayerIndices",
        Generation::A12 => "weightSourceLayers",
    };
    cx.set(key, Value::List(src_layers));
    cx.set("weightSourceMatrixIndices", Value::List(src_matrices));
    Ok(())
}

/// `LAYER_PAT`: `layer` or `layer[idx]` (idx defaults to 0).
fn split_layer_index(s: &str) -> Option<(String, i64)> {
    let s = s.trim_matches(super::py::is_space);
    let end = s
        .find(|c: char| c == '[' || super::py::is_space(c))
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let (name, rest) = s.split_at(end);
    let rest_trimmed = rest.trim_start_matches(super::py::is_space);
    if rest_trimmed.is_empty() {
        return Some((name.to_string(), 0));
    }
    let digits = rest.strip_prefix('[')?.strip_suffix(']')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((name.to_string(), digits.parse().unwrap_or(i64::MAX)))
}

/// The source layer dict of shared matrix `i` (`None` if not shared; `Some(None)` = self).
fn weight_source<'p>(cx: &Cx<'p>, i: usize) -> Option<Option<&'p Dict>> {
    match cx.gen {
        Generation::C1 => {
            let idx = cx.ints("weightSourceLayerIndices")[i];
            (idx >= 0).then(|| cx.prev.get(idx as usize))
        }
        Generation::A12 => {
            let src = cx.dic["weightSourceLayers"].as_list().unwrap()[i]
                .as_str()
                .unwrap_or("")
                .to_string();
            (!src.is_empty()).then(|| {
                if src == cx.name {
                    None
                } else {
                    super::layer::find(cx.prev, &src)
                }
            })
        }
    }
}

/// `call_init_func`: checks the `module.function(p1,...)` form, then imports the module.
/// This port runs no Python, so every well-formed init function ends where the original
/// ends for a module it cannot import.
fn call_init_func(cx: &Cx, key: &str) -> ConfigError {
    let spec = str_of(&cx.dic, key);
    let module = spec.split('.').next().unwrap_or("");
    let rest = spec.get(module.len() + 1..).unwrap_or("");
    let (func, args) = match rest.find('(') {
        Some(p) => (&rest[..p], Some(&rest[p..])),
        None => (rest, None),
    };
    let args_ok = args.map_or(true, |a| {
        a.strip_prefix('(')
            .and_then(|a| a.strip_suffix(')'))
            .is_some_and(|inner| inner.split(',').all(|p| !p.is_empty()))
    });
    let func_ok = !func.trim_end_matches(super::py::is_space).is_empty() && !func.contains(')');
    if module.is_empty() || !spec.contains('.') || !func_ok || !args_ok {
        // The original names initWFunc's value here whichever function it was parsing.
        let shown = str_of(&cx.dic, "initWFunc");
        return cx
            .err(format!(
                "Layer '{}': '{key}' parameter must have format 'moduleName.functionName(param1,param2,...)'; got: {shown}.",
                cx.name
            ))
            .key(key);
    }
    cx.err(format!("Layer '{}': No module named {module}.", cx.name))
        .key(key)
}

/// `make_weights`: shared, function-made or `initW[i] * N(0,1)` float32 matrices.
fn make_weights(
    cx: &mut Cx,
    rows: &[i64],
    cols: &[i64],
    fortran: bool,
    rng: &mut impl Rng,
) -> Result<(), ConfigError> {
    if !str_of(&cx.dic, "initWFunc").is_empty() {
        return Err(call_init_func(cx, "initWFunc"));
    }
    let init_w: Vec<f64> = cx.dic["initW"]
        .as_list()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let (mut weights, mut incs): (Vec<Value>, Vec<Value>) = (Vec::new(), Vec::new());
    for i in 0..cx.num_inputs() {
        let (r, c) = (rows[i], cols[i]);
        if let Some(src) = weight_source(cx, i) {
            let m = cx.ints("weightSourceMatrixIndices")[i] as usize;
            let w = match src {
                Some(l) => l["weights"].as_list().unwrap()[m].clone(),
                None => weights[m].clone(),
            };
            let Value::Array(a) = &w else {
                unreachable!("weights are arrays")
            };
            if (a.rows as i64, a.cols as i64) != (r, c) {
                let shown = cx.dic["weightSource"].as_list().unwrap()[i]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                return Err(cx.err(format!(
                    "Layer '{}': weight sharing source matrix '{shown}' has shape {}x{}; should be {r}x{c}.",
                    cx.name, a.rows, a.cols
                )).key("weightSource"));
            }
            let inc = match src {
                Some(l) => l["weightsInc"].as_list().unwrap()[m].clone(),
                None => incs[m].clone(),
            };
            let shown = cx.dic["weightSource"].as_list().unwrap()[i]
                .as_str()
                .unwrap_or("")
                .to_string();
            cx.print(format!(
                "Layer '{}' initialized weight matrix {i} from {shown}",
                cx.name
            ));
            weights.push(w);
            incs.push(inc);
        } else {
            let (ru, cu) = dims(cx, r, c, "initW")?;
            let mut a = Array::filled(ru, cu, fortran, 0.0);
            for v in a.data.iter_mut() {
                let z: f64 = rng.sample(StandardNormal);
                *v = (init_w[i] * z) as f32;
            }
            incs.push(Array::filled(ru, cu, fortran, 0.0).into());
            weights.push(a.into());
        }
    }
    cx.set("weights", Value::List(weights));
    cx.set("weightsInc", Value::List(incs));
    Ok(())
}

/// Matrices (and connectivity lists) above this many elements are refused: numpy
/// would raise MemoryError (or work for hours) where we would abort.
const MAX_ELEMENTS: i64 = 1 << 31;

/// A matrix dimension; the original would fail inside numpy on a negative one.
fn dim(cx: &Cx, v: i64, key: &str) -> Result<usize, ConfigError> {
    usize::try_from(v).map_err(|_| cx.crash(key, &format!("negative matrix dimension {v}")))
}

/// The dimensions of a `rows x cols` matrix the original would allocate.
fn dims(cx: &Cx, rows: i64, cols: i64, key: &str) -> Result<(usize, usize), ConfigError> {
    let (r, c) = (dim(cx, rows, key)?, dim(cx, cols, key)?);
    if rows.checked_mul(cols).map_or(true, |n| n > MAX_ELEMENTS) {
        return Err(cx.crash(
            key,
            &format!("a {rows}x{cols} matrix is too large to allocate"),
        ));
    }
    Ok((r, c))
}

/// `make_biases`: `initB` everywhere (2011 always allocates C order here).
fn make_biases(cx: &mut Cx, rows: i64, cols: i64, fortran: bool) -> Result<(), ConfigError> {
    if !str_of(&cx.dic, "initBFunc").is_empty() {
        return Err(call_init_func(cx, "initBFunc"));
    }
    let fortran = fortran && cx.gen == Generation::A12;
    let init_b = cx.dic["initB"].as_f64().unwrap_or(0.0) as f32;
    let (r, c) = dims(cx, rows, cols, "initB")?;
    cx.set("biases", Array::filled(r, c, fortran, init_b));
    cx.set("biasesInc", Array::filled(r, c, fortran, 0.0));
    Ok(())
}

fn parse_fc(cx: &mut Cx, rng: &mut impl Rng) -> Result<(), ConfigError> {
    parse_weight_common(cx, None)?;
    cx.set("usesActs", false);
    let outputs = cx.sec.int("outputs")?;
    let outputs = cx.sec.required("outputs", outputs)?;
    cx.set("outputs", outputs);
    if cx.gen == Generation::A12 {
        let w = cx.dic["numInputs"].clone();
        cx.set("weightsPerFilter", w);
    }
    cx.int_range(outputs, "outputs", Some(1), None)?;
    let rows = cx.ints("numInputs");
    make_weights(cx, &rows, &vec![outputs; rows.len()], true, rng)?;
    make_biases(cx, 1, outputs, true)?;
    let line = format!(
        "Initialized fully-connected layer '{}'{}, producing {outputs} outputs",
        cx.name,
        cx.on_gpu()
    );
    cx.print(line);
    Ok(())
}

/// `treefc` needs the label tree of `batches.meta`, which no dummy provider has; the
/// original fails looking it up.
fn parse_treefc(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_weight_common(cx, Some(1))?;
    Err(cx
        .err(format!(
            "Layer '{}': tree-fc layers need the data provider's batches.meta 'tree' (none given)",
            cx.name
        ))
        .crash())
}

fn parse_local(cx: &mut Cx, conv: bool, rng: &mut impl Rng) -> Result<(), ConfigError> {
    parse_weight_common(cx, None)?;
    cx.set("requiresParams", true);
    cx.set("usesActs", false);
    let n = cx.num_inputs();
    let name = cx.name.clone();
    let req = |cx: &Cx, key: &str| -> Result<Vec<i64>, ConfigError> {
        let v = cx.sec.int_list(key)?;
        cx.sec.required(key, v)
    };
    let channels = req(cx, "channels")?;
    cx.set("channels", channels);
    let v = cx.sec.int_list("padding")?.unwrap_or_else(|| vec![0; n]);
    cx.set("padding", v);
    let v = cx.sec.int_list("stride")?.unwrap_or_else(|| vec![1; n]);
    cx.set("stride", v);
    let v = req(cx, "filterSize")?;
    cx.set("filterSize", v);
    let v = req(cx, "filters")?;
    cx.set("filters", v);
    let v = cx.sec.int_list("groups")?.unwrap_or_else(|| vec![1; n]);
    cx.set("groups", v);
    let rand_sparse = cx
        .sec
        .bool_list("randSparse")?
        .unwrap_or_else(|| vec![false; n]);
    cx.set("randSparse", rand_sparse.clone());
    let v = cx.sec.float_list("initW")?;
    let v = cx.sec.required("initW", v)?;
    cx.set("initW", v);
    let v = cx.sec.str("initCFunc")?.unwrap_or_default();
    cx.set("initCFunc", v);
    cx.same_len_as_inputs(&[
        "channels",
        "padding",
        "stride",
        "filterSize",
        "filters",
        "groups",
        "randSparse",
        "initW",
    ])?;
    cx.int_list_range("stride", Some(1), None)?;
    cx.int_list_range("filterSize", Some(1), None)?;
    cx.int_list_range("padding", Some(0), None)?;
    cx.int_list_range("channels", Some(1), None)?;
    cx.int_list_range("groups", Some(1), None)?;

    let (num_inputs, channels) = (cx.ints("numInputs"), cx.ints("channels"));
    let img_pixels: Vec<i64> = num_inputs
        .iter()
        .zip(&channels)
        .map(|(&a, &c)| cx.div(a, c, "channels"))
        .collect::<Result<_, _>>()?;
    let img_size: Vec<i64> = img_pixels
        .iter()
        .map(|&p| cx.isqrt(p, "channels"))
        .collect::<Result<_, _>>()?;
    cx.set("imgPixels", img_pixels.clone());
    cx.set("imgSize", img_size.clone());
    cx.int_list_range("imgSize", Some(1), None)?;
    let (groups, filter_size) = (cx.ints("groups"), cx.ints("filterSize"));
    let (padding, stride) = (cx.ints("padding"), cx.ints("stride"));
    let filters: Vec<i64> = cx
        .ints("filters")
        .iter()
        .zip(&groups)
        .map(|(f, g)| f * g)
        .collect();
    cx.set("filters", filters.clone());
    cx.set(
        "filterPixels",
        filter_size.iter().map(|f| f * f).collect::<Vec<_>>(),
    );
    let modules_x: Vec<i64> = (0..n)
        .map(|i| {
            1 + ((2 * padding[i] + img_size[i] - filter_size[i]) as f64 / stride[i] as f64).ceil()
                as i64
        })
        .collect();
    cx.set("modulesX", modules_x.clone());
    let mut filter_channels: Vec<i64> = channels
        .iter()
        .zip(&groups)
        .map(|(&c, &g)| cx.div(c, g, "groups"))
        .collect::<Result<_, _>>()?;
    cx.set("filterChannels", filter_channels.clone());
    if rand_sparse.iter().any(|&b| b) {
        filter_channels = cx
            .sec
            .int_list("filterChannels")?
            .unwrap_or(filter_channels);
        cx.set("filterChannels", filter_channels.clone());
        cx.same_len_as_inputs(&["filterChannels"])?;
    }
    if modules_x.iter().any(|&m| m != modules_x[0]) || filters.iter().any(|&f| f != filters[0]) {
        let dims: Vec<String> = filters
            .iter()
            .zip(&modules_x)
            .map(|(f, m)| format!("{f}x{m}x{m}"))
            .collect();
        return Err(cx.err(format!(
            "Layer '{name}': all inputs must produce equally-dimensioned output. Dimensions are: {}.",
            dims.join(", ")
        )));
    }
    let (mx, f) = (modules_x[0], filters[0]);
    cx.set("modulesX", mx);
    cx.set("modules", mx * mx);
    cx.set("filters", f);
    cx.set("outputs", mx * mx * f);
    let mut conns: Vec<Value> = vec![Value::List(vec![]); n];
    let mut padding_out = padding.clone();
    for i in 0..n {
        let r = super::py::rem(num_inputs[i], img_pixels[i])
            .ok_or_else(|| cx.crash("channels", "modulo by zero"))?;
        if r != 0 || img_size[i] * img_size[i] != img_pixels[i] {
            return Err(cx.err(format!(
                "Layer '{name}[{i}]': has {} dimensional input, not interpretable as square {}-channel images",
                num_inputs[i], channels[i]
            )).key("channels"));
        }
        if channels[i] > 3 && channels[i] % 4 != 0 {
            return Err(cx
                .err(format!("Layer '{name}[{i}]': number of channels must be smaller than 4 or divisible by 4"))
                .key("channels"));
        }
        if filter_size[i] > 2 * padding[i] + img_size[i] {
            return Err(cx
                .err(format!(
                "Layer '{name}[{i}]': filter size ({}) greater than image size + 2 * padding ({})",
                filter_size[i],
                2 * padding[i] + img_size[i]
            ))
                .key("filterSize"));
        }
        if rand_sparse[i] {
            if groups[i] == 1 {
                return Err(cx.err(format!(
                    "Layer '{name}[{i}]': number of groups must be greater than 1 when using random sparse connectivity"
                )).key("groups"));
            }
            cx.divisible(
                channels[i],
                filter_channels[i],
                "channels",
                Some("filterChannels"),
                i,
            )?;
            cx.divisible(filter_channels[i], 4, "filterChannels", None, i)?;
            cx.divisible(
                groups[i] * filter_channels[i],
                channels[i],
                "groups * filterChannels",
                Some("channels"),
                i,
            )?;
            conns[i] = gen_rand_conns(cx, groups[i], channels[i], filter_channels[i], i, rng)?;
        } else {
            if groups[i] > 1 {
                cx.divisible(
                    channels[i],
                    4 * groups[i],
                    "channels",
                    Some("4 * groups"),
                    i,
                )?;
            }
            cx.divisible(channels[i], groups[i], "channels", Some("groups"), i)?;
        }
        cx.divisible(f, 16 * groups[i], "filters * groups", None, i)?;
        padding_out[i] = -padding[i];
        cx.set("padding", padding_out.clone());
        cx.set("filterConns", conns.clone());
    }
    cx.set("filterConns", conns);
    let over_sample: Vec<i64> = (0..n)
        .map(|i| cx.div(groups[i] * filter_channels[i], channels[i], "channels"))
        .collect::<Result<_, _>>()?;
    cx.set("overSample", over_sample);
    let filter_pixels = cx.ints("filterPixels");
    let per_filter: Vec<i64> = filter_channels
        .iter()
        .zip(&filter_pixels)
        .map(|(c, p)| c * p)
        .collect();
    if cx.gen == Generation::A12 {
        cx.set("weightsPerFilter", per_filter.clone());
    }
    let modules = mx * mx;
    if conv {
        let ps = cx.sec.int("partialSum")?;
        let ps = cx.sec.required("partialSum", ps)?;
        cx.set("partialSum", ps);
        let shared = cx.sec.bool("sharedBiases")?.unwrap_or(true);
        cx.set("sharedBiases", shared);
        if ps != 0 && modules % ps != 0 {
            return Err(cx.err(format!(
                "Layer '{name}': convolutional layer produces {mx}x{mx}={modules} outputs per filter, but given partialSum parameter ({ps}) does not divide this number"
            )).key("partialSum"));
        }
        let num_biases = if shared { f } else { modules * f };
        make_weights(cx, &per_filter, &vec![f; n], false, rng)?;
        make_biases(cx, num_biases, 1, false)?;
        let line = format!(
            "Initialized convolutional layer '{name}'{}, producing {mx}x{mx} {f}-channel output",
            cx.on_gpu()
        );
        cx.print(line);
    } else {
        let rows: Vec<i64> = per_filter.iter().map(|p| modules * p).collect();
        make_weights(cx, &rows, &vec![f; n], false, rng)?;
        make_biases(cx, modules * f, 1, false)?;
        let line = format!(
            "Initialized locally-connected layer '{name}'{}, producing {mx}x{mx} {f}-channel output",
            cx.on_gpu()
        );
        cx.print(line);
    }
    Ok(())
}

/// `gen_rand_conns`: `overSample` random permutations of the channels, or the weight
/// source's connectivity (with its checks), or an init function's.
fn gen_rand_conns(
    cx: &Cx,
    groups: i64,
    channels: i64,
    filter_channels: i64,
    i: usize,
    rng: &mut impl Rng,
) -> Result<Value, ConfigError> {
    let over_sample = cx.div(groups * filter_channels, channels, "channels")?;
    dims(cx, over_sample, channels, "filterChannels")?;
    let mut conns = Vec::new();
    for _ in 0..over_sample {
        let mut perm: Vec<i64> = (0..channels).collect();
        perm.shuffle(rng);
        conns.extend(perm);
    }
    if !str_of(&cx.dic, "initCFunc").is_empty() {
        return Err(call_init_func(cx, "initCFunc"));
    }
    let name = &cx.name;
    if let Some(src) = weight_source(cx, i) {
        let src = src.unwrap_or(&cx.dic);
        let src_inp = cx.ints("weightSourceMatrixIndices")[i] as usize;
        let src_name = str_of(src, "name");
        let src_sparse = src
            .get("randSparse")
            .and_then(Value::as_list)
            .map_or(false, |l| l.iter().any(Value::truthy));
        if !src_sparse {
            return Err(cx.err(format!(
                "Layer '{name}[{i}]': randSparse is true in this layer but false in weight sharing source layer '{src_name}[{src_inp}]'."
            )).key("randSparse"));
        }
        let at = |k: &str| {
            src.get(k)
                .and_then(Value::as_list)
                .and_then(|l| l.get(src_inp))
                .and_then(Value::as_int)
                .unwrap_or(-1)
        };
        let theirs = (at("groups"), at("channels"), at("filterChannels"));
        if (groups, channels, filter_channels) != theirs {
            return Err(cx.err(format!(
                "Layer '{name}[{i}]': groups, channels, filterChannels set to {groups}, {channels}, {filter_channels}, respectively. Does not match setting in weight sharing source layer '{src_name}[{src_inp}]': {}, {}, {}.",
                theirs.0, theirs.1, theirs.2
            )).key("weightSource"));
        }
        return Ok(src["filterConns"]
            .as_list()
            .and_then(|l| l.get(src_inp))
            .cloned()
            .unwrap_or(Value::List(vec![])));
    }
    Ok(conns.into())
}

fn parse_softmax(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_with_inputs(cx, Some(1))?;
    let outputs = int_of(cx.input(0), "outputs");
    cx.set("outputs", outputs);
    let line = format!(
        "Initialized softmax layer '{}'{}, producing {outputs} outputs",
        cx.name,
        cx.on_gpu()
    );
    cx.print(line);
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
    let line = format!(
        "Initialized concatenation layer '{}'{}, producing {outputs} outputs",
        cx.name,
        cx.on_gpu()
    );
    cx.print(line);
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
    let line = format!(
        "Initialized elementwise sum layer '{}'{}, producing {outputs} outputs",
        cx.name,
        cx.on_gpu()
    );
    cx.print(line);
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
    let line = format!(
        "Initialized elementwise max layer '{}'{}, producing {outputs} outputs",
        cx.name,
        cx.on_gpu()
    );
    cx.print(line);
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
    let line = format!(
        "Initialized neuron layer '{}'{}, producing {outputs} outputs",
        cx.name,
        cx.on_gpu()
    );
    cx.print(line);
    Ok(())
}

fn req_int(cx: &Cx, key: &str) -> Result<i64, ConfigError> {
    let v = cx.sec.int(key)?;
    cx.sec.required(key, v)
}

fn req_float(cx: &Cx, key: &str) -> Result<f64, ConfigError> {
    let v = cx.sec.float(key)?;
    cx.sec.required(key, v)
}

fn parse_pool(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_with_inputs(cx, Some(1))?;
    for key in ["channels", "sizeX"] {
        let v = req_int(cx, key)?;
        cx.set(key, v);
    }
    let v = cx.sec.int("start")?.unwrap_or(0);
    cx.set("start", v);
    let v = req_int(cx, "stride")?;
    cx.set("stride", v);
    let v = cx.sec.int("outputsX")?.unwrap_or(0);
    cx.set("outputsX", v);
    let pool = cx.sec.str("pool")?;
    let pool = cx.sec.required("pool", pool)?;
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
    let line = format!(
        "Initialized {pool}-pooling layer '{}'{}, producing {ox}x{ox} {channels}-channel output",
        cx.name,
        cx.on_gpu()
    );
    cx.print(line);
    Ok(())
}

fn norm_kind(ltype: &str) -> &'static str {
    match ltype {
        "rnorm" => "response",
        "cnorm" => "contrast",
        _ => "cross-map response",
    }
}

fn parse_norm(cx: &mut Cx, ltype: &str) -> Result<(), ConfigError> {
    parse_with_inputs(cx, Some(1))?;
    cx.set("requiresParams", true);
    for key in ["channels", "size"] {
        let v = req_int(cx, key)?;
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
    let line = format!(
        "Initialized {}-normalization layer '{name}'{}, producing {img}x{img} {channels}-channel output",
        norm_kind(ltype),
        cx.on_gpu()
    );
    cx.print(line);
    Ok(())
}

fn add_norm_params(cx: &mut Cx, ltype: &str) -> Result<(), ConfigError> {
    let scale = req_float(cx, "scale")?;
    let size = cx.int("size");
    let div = if ltype == "cmrnorm" {
        size
    } else {
        size * size
    };
    cx.set("scale", scale / div as f64);
    let pow = req_float(cx, "pow")?;
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

fn parse_nailbed(cx: &mut Cx) -> Result<(), ConfigError> {
    in_place_image_layer(cx)?;
    for key in ["channels", "stride"] {
        let v = req_int(cx, key)?;
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
    let line = format!(
        "Initialized bed-of-nails layer '{}'{}, producing {ox}x{ox} {channels}-channel output",
        cx.name,
        cx.on_gpu()
    );
    cx.print(line);
    Ok(())
}

fn parse_blur(cx: &mut Cx) -> Result<(), ConfigError> {
    in_place_image_layer(cx)?;
    let outputs = cx.ints("numInputs")[0];
    cx.set("outputs", outputs);
    for key in ["channels", "filterSize"] {
        let v = req_int(cx, key)?;
        cx.set(key, v);
    }
    let stdev = req_float(cx, "stdev")?;
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
    let sum = super::py::numpy_sum_f32(&taps);
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

fn parse_resize(cx: &mut Cx) -> Result<(), ConfigError> {
    in_place_image_layer(cx)?;
    let channels = req_int(cx, "channels")?;
    cx.set("channels", channels);
    cx.set_img_dims()?;
    let scale = req_float(cx, "scale")?;
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

fn parse_rscale(cx: &mut Cx) -> Result<(), ConfigError> {
    in_place_image_layer(cx)?;
    let channels = req_int(cx, "channels")?;
    cx.set("channels", channels);
    cx.int_range(channels, "channels", Some(1), None)?;
    cx.set_img_dims()?;
    let max_scale = req_float(cx, "maxScale")?;
    cx.set("maxScale", max_scale);
    let img = cx.int("imgSize");
    let name = cx.name.clone();
    let tgt = match cx.gen {
        Generation::C1 => scaled_size(cx, img, max_scale, "maxScale")?,
        Generation::A12 => {
            let tgt = req_int(cx, "tgtSize")?;
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

fn parse_color(cx: &mut Cx, ltype: &str) -> Result<(), ConfigError> {
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

fn parse_href(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_with_inputs(cx, Some(1))?;
    let outputs = cx.ints("numInputs")[0];
    cx.set("outputs", outputs);
    let channels = req_int(cx, "channels")?;
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

fn parse_hs(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_with_inputs(cx, Some(1))?;
    cx.set("requiresParams", true);
    cx.set("usesInputs", false);
    cx.set("usesActs", false);
    cx.set("forceOwnActs", false);
    let outputs = cx.ints("numInputs")[0];
    cx.set("outputs", outputs);
    let keep = req_float(cx, "keep")?;
    cx.set("keep", keep);
    let line = format!(
        "Initialized hidden sex layer '{}'{}, producing {outputs} outputs",
        cx.name,
        cx.on_gpu()
    );
    cx.print(line);
    Ok(())
}

fn add_weight_params(cx: &mut Cx, params: &Source) -> Result<(), ConfigError> {
    let n = cx.num_inputs();
    let req_list = |cx: &Cx, key: &str| -> Result<Vec<f64>, ConfigError> {
        let v = cx.sec.float_list(key)?;
        cx.sec.required(key, v)
    };
    let v = req_list(cx, "epsW")?;
    cx.set("epsW", v);
    let eps_b = req_float(cx, "epsB")?;
    cx.set("epsB", eps_b);
    let v = req_list(cx, "momW")?;
    cx.set("momW", v);
    let v = req_float(cx, "momB")?;
    cx.set("momB", v);
    match cx.gen {
        Generation::C1 => {
            let v = req_list(cx, "wc")?;
            cx.set("wc", v);
            cx.same_len_as_inputs(&["epsW", "momW", "wc"])?;
        }
        Generation::A12 => {
            for key in ["superEps", "superMom"] {
                let v = cx.sec.float(key)?.unwrap_or(0.0);
                cx.set(key, v);
            }
            let v = cx.sec.float_list("wc")?.unwrap_or_else(|| vec![0.0; n]);
            cx.set("wc", v);
            let wball = cx.sec.float_list("wball")?.unwrap_or_else(|| vec![0.0; n]);
            cx.set("wball", wball.clone());
            let per_filter = cx.ints("weightsPerFilter");
            let normed: Vec<f64> = wball
                .iter()
                .zip(&per_filter)
                .map(|(w, p)| w * *p as f64)
                .collect();
            cx.set("wballNormed", normed);
            cx.same_len_as_inputs(&["epsW", "momW", "wc", "wball"])?;
            let s = cx.param_spec(
                params,
                ParamTable::Schedule,
                "schedW",
                "learning rate schedule",
            )?;
            cx.set("schedW", s);
            let s = cx.param_spec(
                params,
                ParamTable::Schedule,
                "schedB",
                "learning rate schedule",
            )?;
            cx.set("schedB", s);
        }
    }
    let eps_w = cx.dic["epsW"]
        .as_list()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .any(|w| w > 0.0);
    cx.set("gradConsumer", eps_b > 0.0 || eps_w);
    Ok(())
}

fn add_wc_norm_params(cx: &mut Cx) -> Result<(), ConfigError> {
    let n = cx.num_inputs();
    let max = cx
        .sec
        .float_list("wcNormMax")?
        .unwrap_or_else(|| vec![0.0; n]);
    cx.set("wcNormMax", max.clone());
    let min = cx
        .sec
        .float_list("wcNormMin")?
        .unwrap_or_else(|| vec![0.0; n]);
    cx.set("wcNormMin", min.clone());
    cx.same_len_as_inputs(&["wcNormMax", "wcNormMin"])?;
    if min.iter().zip(&max).any(|(lo, hi)| lo > hi) {
        return Err(cx
            .err(format!(
                "Layer '{}': wcNormMin must be <= wcNormMax.",
                cx.name
            ))
            .key("wcNormMin"));
    }
    Ok(())
}

/// `CostParser.parse` and the per-type checks of the cost parsers.
fn parse_cost(cx: &mut Cx, ltype: &str) -> Result<(), ConfigError> {
    let arity = match ltype {
        "cost.sum2" | "cost.tica" => 1,
        _ => 2,
    };
    parse_with_inputs(cx, Some(arity))?;
    cx.set("requiresParams", true);
    cx.dic.shift_remove("neuron");
    let name = cx.name.clone();
    let classes = cx.data().num_classes;
    let widths = cx.ints("numInputs");
    let input_name = |i: usize| match cx.gen {
        Generation::C1 => str_of(cx.input(i), "name").to_string(),
        Generation::A12 => cx.dic["inputs"].as_list().unwrap()[i]
            .as_str()
            .unwrap_or("")
            .to_string(),
    };
    let softmax_needed = |cx: &Cx, capital: bool| -> Result<(), ConfigError> {
        if str_of(cx.input(1), "type") != "softmax" {
            let s = if capital { "Second" } else { "second" };
            return Err(cx
                .err(format!("Layer '{name}': {s} input must be softmax layer"))
                .key("inputs"));
        }
        Ok(())
    };
    let classes_needed = |cx: &Cx, i: usize, what: &str| -> Result<(), ConfigError> {
        if widths[i] != classes {
            return Err(cx.err(format!(
                "Layer '{name}': {what} '{}' must produce {classes} outputs, because that is the number of classes in the dataset",
                input_name(i)
            )).key("inputs"));
        }
        Ok(())
    };
    let label = match ltype {
        "cost.logreg" => {
            if widths[0] != 1 {
                return Err(cx
                    .err(format!(
                        "Layer '{name}': dimensionality of first input must be 1"
                    ))
                    .key("inputs"));
            }
            softmax_needed(cx, false)?;
            classes_needed(cx, 1, "softmax input")?;
            "logistic regression cost".to_string()
        }
        "cost.crossent" => {
            if widths[0] != classes {
                return Err(cx
                    .err(format!("Layer '{name}': Dimensionality of first input must be equal to number of labels"))
                    .key("inputs"));
            }
            softmax_needed(cx, true)?;
            if widths[1] != classes {
                return Err(cx.err(format!(
                    "Layer '{name}': Softmax input '{}' must produce {classes} outputs, because that is the number of classes in the dataset",
                    input_name(1)
                )).key("inputs"));
            }
            "cross-entropy cost".to_string()
        }
        "cost.crossent2" | "cost.rflickr" => {
            for i in 0..2 {
                classes_needed(cx, i, "input")?;
            }
            if cx.input(1).get("neuron").and_then(Value::as_str) != Some("logistic") {
                let line = format!(
                    "WARNING: Layer '{name}': input '{}' is not logistic, results may not be what you intend.",
                    input_name(1)
                );
                cx.print(line);
            }
            let kind = if ltype == "cost.crossent2" {
                "elementwise cross-entropy"
            } else {
                "robust Flickr"
            };
            format!("{kind} cost")
        }
        "cost.msm" => {
            if widths[0] != 1 {
                return Err(cx
                    .err(format!(
                        "Layer '{name}': dimensionality of first input must be 1"
                    ))
                    .key("inputs"));
            }
            classes_needed(cx, 1, "input")?;
            cx.set("numOut", widths[1]);
            "multi-softmax cost".to_string()
        }
        "cost.sum2" => "sum-of-squares cost".to_string(),
        "cost.gsum2" => {
            cx.input_dims(&[Some(1), None])?;
            "gated sum-of-squares cost".to_string()
        }
        "cost.tica" => {
            for key in ["channels", "sizeX"] {
                let v = req_int(cx, key)?;
                cx.set(key, v);
            }
            cx.set_img_dims()?;
            cx.verify_img_size()?;
            "TICA cost".to_string()
        }
        other => unreachable!("unregistered cost type {other}"),
    };
    let line = format!("Initialized {label} '{name}'{}", cx.on_gpu());
    cx.print(line);
    Ok(())
}

fn add_cost_params(cx: &mut Cx, ltype: &str) -> Result<(), ConfigError> {
    let coeff = req_float(cx, "coeff")?;
    cx.set("coeff", coeff);
    if cx.gen == Generation::A12 {
        match ltype {
            "cost.logreg" => {
                let v = cx.sec.int("topk")?.unwrap_or(1);
                cx.set("topk", v);
            }
            "cost.msm" => {
                for key in ["setSize", "threads"] {
                    let v = req_int(cx, key)?;
                    cx.set(key, v);
                }
                let (set_size, threads, num_out) =
                    (cx.int("setSize"), cx.int("threads"), cx.int("numOut"));
                // The original passes '%d' where its range check wants a formatter, so a
                // failing check crashes instead of printing its message.
                if set_size < 1 || set_size > num_out - 1 {
                    return Err(cx.crash(
                        "setSize",
                        &format!("must be in the range 1-{}", num_out - 1),
                    ));
                }
                if !(1..=32).contains(&threads) {
                    return Err(cx.crash("threads", "must be in the range 1-32"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
