//! Port of layer.py's `WeightLayerParser` (init values, `weightSource` sharing,
//! `call_init_func`, `make_weights`, `make_biases`) and the weight layers built on it:
//! `FCLayerParser`, `TreeFCLayerParser`, `LocalLayerParser` (with `gen_rand_conns`),
//! `ConvLayerParser` and `LocalUnsharedLayerParser`.

use super::initw::{call_init_func, in_order, Made};
use crate::config::layer::{find, int_of, parse_with_inputs, str_of, Cx};
use crate::config::py;
use crate::config::reader::Source;
use crate::config::specs::ParamTable;
use crate::config::value::{Array, Dict, Value};
use crate::config::{ConfigError, Generation};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::StandardNormal;

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

    let mut src_layers = Vec::new();
    let mut src_matrices = Vec::new();
    for (i, src_name) in sources.iter().enumerate() {
        let (layer, matrix) = match (src_name.as_str(), cx.gen) {
            ("", Generation::C1) => (Value::Int(-1), -1),
            ("", Generation::A12) => (Value::Str(String::new()), -1),
            (s, _) => shared_source(cx, i, s)?,
        };
        src_layers.push(layer);
        src_matrices.push(Value::Int(matrix));
    }
    let key = match cx.gen {
        Generation::C1 => "weightSourceLayerIndices",
        Generation::A12 => "weightSourceLayers",
    };
    cx.set(key, Value::List(src_layers));
    cx.set("weightSourceMatrixIndices", Value::List(src_matrices));
    Ok(())
}

/// One `weightSource` entry `layer[idx]` of input `i`, checked as the original checks
/// it: the source layer reference (index in 2011, name in 2012) and matrix index.
fn shared_source(cx: &Cx, i: usize, src_name: &str) -> Result<(Value, i64), ConfigError> {
    let name = &cx.name;
    let Some((src, src_matrix)) = split_layer_index(src_name) else {
        return Err(cx.err(format!(
            "Layer '{name}': unable to parse weight sharing source '{src_name}'. Format is layer[idx] or just layer, in which case idx=0 is used."
        )).key("weightSource"));
    };
    let own = &src == name;
    let src_layer = if own { None } else { find(cx.prev, &src) };
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
            .err(format!(
                "Layer '{name}': weight sharing source '{name}[{src_matrix}]' not defined yet."
            ))
            .key("weightSource"));
    }
    let layer = match cx.gen {
        Generation::C1 if own => Value::Int(cx.prev.len() as i64),
        Generation::C1 => Value::Int(
            cx.prev
                .iter()
                .position(|l| str_of(l, "name") == src)
                .unwrap() as i64,
        ),
        Generation::A12 => Value::Str(src),
    };
    Ok((layer, src_matrix))
}

/// `LAYER_PAT`: `layer` or `layer[idx]` (idx defaults to 0).
fn split_layer_index(s: &str) -> Option<(String, i64)> {
    let s = s.trim_matches(py::is_space);
    let end = s
        .find(|c: char| c == '[' || py::is_space(c))
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let (name, rest) = s.split_at(end);
    let rest_trimmed = rest.trim_start_matches(py::is_space);
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
                    find(cx.prev, &src)
                }
            })
        }
    }
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
        return init_weights(cx, rows, cols, fortran, rng);
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
    if rows.checked_mul(cols).is_none_or(|n| n > MAX_ELEMENTS) {
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
        return init_biases(cx, rows, cols, fortran);
    }
    let fortran = fortran && cx.gen == Generation::A12;
    let init_b = cx.dic["initB"].as_f64().unwrap_or(0.0) as f32;
    let (r, c) = dims(cx, rows, cols, "initB")?;
    cx.set("biases", Array::filled(r, c, fortran, init_b));
    cx.set("biasesInc", Array::filled(r, c, fortran, 0.0));
    Ok(())
}

/// numpy's shape tuple as Python 2 prints it.
fn shape(rows: i64, cols: i64) -> String {
    format!("({rows}, {cols})")
}

/// layer.py's checks of what a weight or bias init function returned: a numpy array
/// (not a list) of the wanted shape. `who` is `Layer 'x[i]'` or `Layer 'x'`, `kind`
/// `weight` or `bias`, `thing` `weight matrix` or `bias vector`.
fn returned_matrix(
    cx: &Cx,
    made: Made,
    who: &str,
    kind: &str,
    thing: &str,
    func: &str,
    (r, c): (i64, i64),
) -> Result<Array, ConfigError> {
    let key = if kind == "weight" {
        "initWFunc"
    } else {
        "initBFunc"
    };
    let Made::Matrix(a) = made else {
        return Err(cx.err(format!(
            "{who}: {kind} initialization function {func} must return numpy.ndarray object. Got: <type 'list'>."
        )).key(key));
    };
    if (a.rows as i64, a.cols as i64) != (r, c) {
        return Err(cx.err(format!(
            "{who}: {thing} returned by {kind} initialization function {func} has wrong shape. Should be: {}; got: {}.",
            shape(r, c),
            shape(a.rows as i64, a.cols as i64)
        )).key(key));
    }
    Ok(a)
}

/// `make_weights` with `initWFunc`: each input's matrix from the init function, checked
/// and put in the layer's order, with the original's messages and lines.
fn init_weights(
    cx: &mut Cx,
    rows: &[i64],
    cols: &[i64],
    fortran: bool,
    rng: &mut impl Rng,
) -> Result<(), ConfigError> {
    let func = str_of(&cx.dic, "initWFunc").to_string();
    let (mut weights, mut incs) = (Vec::new(), Vec::new());
    for i in 0..cx.num_inputs() {
        let (r, c) = (rows[i], cols[i]);
        let a = match call_init_func(cx, "initWFunc", Some(i), &[r, c])? {
            Made::Random(ru, cu) => {
                let mut a = Array::filled(ru, cu, false, 0.0);
                for v in a.data.iter_mut() {
                    let z: f64 = rng.sample(StandardNormal);
                    *v = (0.01 * z) as f32;
                }
                Made::Matrix(a)
            }
            made => made,
        };
        let who = format!("Layer '{}[{i}]'", cx.name);
        let a = returned_matrix(cx, a, &who, "weight", "weight matrix", &func, (r, c))?;
        let a = in_order(a, fortran);
        incs.push(Array::filled(a.rows, a.cols, fortran, 0.0).into());
        weights.push(a.into());
        let line = format!(
            "Layer '{}[{i}]' initialized weight matrices from function {func}",
            cx.name
        );
        cx.print(line);
    }
    cx.set("weights", Value::List(weights));
    cx.set("weightsInc", Value::List(incs));
    Ok(())
}

/// `make_biases` with `initBFunc`.
fn init_biases(cx: &mut Cx, rows: i64, cols: i64, fortran: bool) -> Result<(), ConfigError> {
    let func = str_of(&cx.dic, "initBFunc").to_string();
    let made = call_init_func(cx, "initBFunc", None, &[rows, cols])?;
    let who = format!("Layer '{}'", cx.name);
    let a = returned_matrix(cx, made, &who, "bias", "bias vector", &func, (rows, cols))?;
    let fortran = fortran && cx.gen == Generation::A12;
    let a = in_order(a, fortran);
    cx.set("biasesInc", Array::filled(a.rows, a.cols, fortran, 0.0));
    cx.set("biases", a);
    let line = format!(
        "Layer '{}' initialized bias vector from function {func}",
        cx.name
    );
    cx.print(line);
    Ok(())
}

/// `gen_rand_conns` with `initCFunc`: input `i`'s channel list from the init function,
/// checked as the original checks it.
fn init_conns(
    cx: &Cx,
    (groups, channels, filter_channels): (i64, i64, i64),
    over_sample: i64,
    i: usize,
) -> Result<Value, ConfigError> {
    let func = str_of(&cx.dic, "initCFunc");
    let shapes = [groups, channels, filter_channels];
    let Made::Conns(conns) = call_init_func(cx, "initCFunc", Some(i), &shapes)? else {
        return Err(cx.crash(
            "initCFunc",
            &format!("{func} gives a matrix, not a channel list"),
        ));
    };
    let name = &cx.name;
    if conns.len() as i64 != over_sample * channels {
        // The original's message has one argument too few for its format.
        return Err(cx.crash(
            "initCFunc",
            "TypeError: not enough arguments for format string",
        ));
    }
    if conns.iter().any(|&c| !(0..channels).contains(&c)) {
        return Err(cx.err(format!(
            "Layer '{name}[{i}]': random connectivity initialization function {func} must return list of channel indices in the range 0-<channels-1> = 0-{}.",
            channels - 1
        )).key("initCFunc"));
    }
    let permutations = conns.chunks(channels.max(1) as usize).all(|s| {
        let mut seen = s.to_vec();
        seen.sort_unstable();
        seen.dedup();
        seen.len() == s.len()
    });
    if !permutations {
        return Err(cx.err(format!(
            "Layer '{name}[{i}]': random connectivity initialization function {func} must return list of channel indices such that every non-overlapping sub-list of <channels> = {channels} elements is a permutation of the integers 0-<channels-1> = 0-{}.",
            channels - 1
        )).key("initCFunc"));
    }
    Ok(conns.into())
}

pub(super) fn parse_fc(cx: &mut Cx, rng: &mut impl Rng) -> Result<(), ConfigError> {
    parse_weight_common(cx, None)?;
    cx.set("usesActs", false);
    let outputs = cx.sec.req_int("outputs")?;
    cx.set("outputs", outputs);
    if cx.gen == Generation::A12 {
        let w = cx.dic["numInputs"].clone();
        cx.set("weightsPerFilter", w);
    }
    cx.int_range(outputs, "outputs", Some(1), None)?;
    let rows = cx.ints("numInputs");
    make_weights(cx, &rows, &vec![outputs; rows.len()], true, rng)?;
    make_biases(cx, 1, outputs, true)?;
    cx.initialized(
        "fully-connected layer",
        &format!(", producing {outputs} outputs"),
    );
    Ok(())
}

/// `treefc` needs the label tree of `batches.meta`, which no dummy provider has; the
/// original fails looking it up.
pub(super) fn parse_treefc(cx: &mut Cx) -> Result<(), ConfigError> {
    parse_weight_common(cx, Some(1))?;
    Err(cx
        .err(format!(
            "Layer '{}': tree-fc layers need the data provider's batches.meta 'tree' (none given)",
            cx.name
        ))
        .crash())
}

pub(super) fn parse_local(cx: &mut Cx, conv: bool, rng: &mut impl Rng) -> Result<(), ConfigError> {
    parse_weight_common(cx, None)?;
    cx.set("requiresParams", true);
    cx.set("usesActs", false);
    let n = cx.num_inputs();
    let name = cx.name.clone();
    let channels = cx.sec.req_int_list("channels")?;
    cx.set("channels", channels);
    let v = cx.sec.int_list("padding")?.unwrap_or_else(|| vec![0; n]);
    cx.set("padding", v);
    let v = cx.sec.int_list("stride")?.unwrap_or_else(|| vec![1; n]);
    cx.set("stride", v);
    let v = cx.sec.req_int_list("filterSize")?;
    cx.set("filterSize", v);
    let v = cx.sec.req_int_list("filters")?;
    cx.set("filters", v);
    let v = cx.sec.int_list("groups")?.unwrap_or_else(|| vec![1; n]);
    cx.set("groups", v);
    let rand_sparse = cx
        .sec
        .bool_list("randSparse")?
        .unwrap_or_else(|| vec![false; n]);
    cx.set("randSparse", rand_sparse.clone());
    let v = cx.sec.req_float_list("initW")?;
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
        let r = py::rem(num_inputs[i], img_pixels[i])
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
    }
    cx.set("padding", padding_out);
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
        let ps = cx.sec.req_int("partialSum")?;
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
        cx.initialized(
            "convolutional layer",
            &format!(", producing {mx}x{mx} {f}-channel output"),
        );
    } else {
        let rows: Vec<i64> = per_filter.iter().map(|p| modules * p).collect();
        make_weights(cx, &rows, &vec![f; n], false, rng)?;
        make_biases(cx, modules * f, 1, false)?;
        cx.initialized(
            "locally-connected layer",
            &format!(", producing {mx}x{mx} {f}-channel output"),
        );
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
        return init_conns(cx, (groups, channels, filter_channels), over_sample, i);
    }
    let name = &cx.name;
    if let Some(src) = weight_source(cx, i) {
        let src = src.unwrap_or(&cx.dic);
        let src_inp = cx.ints("weightSourceMatrixIndices")[i] as usize;
        let src_name = str_of(src, "name");
        // The original tests the truth of the whole list, which any non-empty list passes.
        if !src.get("randSparse").is_some_and(Value::truthy) {
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

pub(super) fn add_weight_params(cx: &mut Cx, params: &Source) -> Result<(), ConfigError> {
    let n = cx.num_inputs();
    let v = cx.sec.req_float_list("epsW")?;
    cx.set("epsW", v);
    let eps_b = cx.sec.req_float("epsB")?;
    cx.set("epsB", eps_b);
    let v = cx.sec.req_float_list("momW")?;
    cx.set("momW", v);
    let v = cx.sec.req_float("momB")?;
    cx.set("momB", v);
    match cx.gen {
        Generation::C1 => {
            let v = cx.sec.req_float_list("wc")?;
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

pub(super) fn add_wc_norm_params(cx: &mut Cx) -> Result<(), ConfigError> {
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
