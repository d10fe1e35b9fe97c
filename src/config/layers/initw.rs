//! Port of layer.py's `call_init_func` and of the 2012 `initw.py`, whose functions
//! `makew`, `makeb` and `makec` layer files name as `initWFunc=initw.makew(conv1a)`,
//! `initBFunc=initw.makeb(conv1a)`, `initCFunc=initw.makec(conv1a)`: they copy layer
//! `conv1a`'s weights, biases or `filterConns` from another model's checkpoint
//! (`makew` gives layer `localcombine`'s third weight matrix `0.01 * N(0, 1)` instead).
//!
//! The parser imported the named module; this program cannot import Python, so `initw`
//! is built in and any other module ends as the original does without it (`No module
//! named <module>.`). initw.py read its source from a fixed path; ours reads the same
//! path unless `CONVNET_INITW_SOURCE` names another checkpoint file or directory. Its
//! random matrix comes from the parser's generator, not numpy's.

use super::super::layer::{str_of, Cx};
use crate::checkpoint;
use crate::config::value::{Array, Value};
use crate::config::{ConfigError, Generation, Net};
use std::cell::RefCell;
use std::rc::Rc;

/// initw.py's `get_src()` checkpoint.
const SOURCE: &str = "/nobackup/kriz/tmp/ConvNet__2012-09-19_23.29.04";
/// Ours: another source checkpoint.
pub const SOURCE_ENV: &str = "CONVNET_INITW_SOURCE";

/// What an init function returned.
pub(super) enum Made {
    Matrix(Array),
    Conns(Vec<i64>),
    /// `makew`'s `0.01 * numpy.random.randn(rows, cols)` for `localcombine`'s third
    /// matrix, drawn by the caller from the parser's generator.
    Random(usize, usize),
}

/// `call_init_func(key, shapes, input_idx)`: the function named by `key`
/// (`initWFunc`, `initBFunc`, `initCFunc`) called with the layer's name, `idx` (the
/// input, for weights and connectivity) and `shapes`.
pub(super) fn call_init_func(
    cx: &Cx,
    key: &str,
    idx: Option<usize>,
    shapes: &[i64],
) -> Result<Made, ConfigError> {
    let spec = str_of(&cx.dic, key);
    let (module, func, params) = parse_spec(spec).ok_or_else(|| {
        // The original names initWFunc's value here whichever function it was parsing.
        let shown = str_of(&cx.dic, "initWFunc");
        cx.err(format!(
            "Layer '{}': '{key}' parameter must have format 'moduleName.functionName(param1,param2,...)'; got: {shown}.",
            cx.name
        ))
        .key(key)
    })?;
    let fail = |what: String| cx.err(format!("Layer '{}': {what}.", cx.name)).key(key);
    if module != "initw" {
        return Err(fail(format!("No module named {module}")));
    }
    // The arguments Python would bind: (name, idx, shapes, params=) or (name, shapes,
    // params=), against makew/makec(name, idx, shapes, params) and makeb(name, shapes,
    // params).
    match (func, idx) {
        ("makew" | "makec", Some(_)) | ("makeb", None) => {}
        ("makew" | "makec", None) => {
            return Err(fail(format!(
                "{func}() takes exactly 4 arguments (3 given)"
            )));
        }
        ("makeb", Some(_)) => {
            return Err(fail(
                "makeb() got multiple values for keyword argument 'params'".into(),
            ));
        }
        _ => return Err(fail(format!("'module' object has no attribute '{func}'"))),
    }
    let idx = idx.unwrap_or(0);
    if func == "makew" && cx.name == "localcombine" && idx == 2 {
        return Ok(Made::Random(
            shapes[0].max(0) as usize,
            shapes[1].max(0) as usize,
        ));
    }
    // Failures initw.py does not catch (a missing file, layer or key) end the original
    // with a traceback.
    let crash = |what: String| cx.crash(key, &what);
    let src_layer = params
        .first()
        .ok_or_else(|| crash("IndexError: list index out of range".into()))?;
    let path = std::env::var(SOURCE_ENV).unwrap_or_else(|_| SOURCE.into());
    let net = source_layers(&path).map_err(crash)?;
    if net.generation == Generation::C1 {
        // A 2011 checkpoint's layers are a list.
        return Err(fail("list indices must be integers, not str".into()));
    }
    let layer = super::super::layer::find(&net.layers, src_layer)
        .ok_or_else(|| crash(format!("KeyError: '{src_layer}'")))?;
    let field = match func {
        "makew" => "weights",
        "makeb" => "biases",
        _ => "filterConns",
    };
    let v = layer
        .get(field)
        .ok_or_else(|| crash(format!("KeyError: '{field}'")))?;
    let item = match (func, v) {
        ("makeb", v) => Some(v),
        (_, Value::List(l)) => l.get(idx),
        _ => None,
    };
    match item {
        Some(Value::Array(a)) => Ok(Made::Matrix(a.clone())),
        Some(Value::List(l)) => Ok(Made::Conns(l.iter().filter_map(Value::as_int).collect())),
        _ => Err(crash(format!("IndexError: {src_layer}['{field}'][{idx}]"))),
    }
}

/// initw.py's `get_src()`: the layers of the checkpoint at `path`. The script loaded it
/// again for every call; we keep the last one loaded (a parse calls it once per
/// matrix, and an AlexNet checkpoint is hundreds of megabytes).
fn source_layers(path: &str) -> Result<Rc<Net>, String> {
    thread_local! {
        static LAST: RefCell<Option<(String, Rc<Net>)>> = const { RefCell::new(None) };
    }
    if let Some(net) = LAST.with_borrow(|l| {
        l.as_ref()
            .filter(|(p, _)| p == path)
            .map(|(_, n)| n.clone())
    }) {
        return Ok(net);
    }
    if !std::path::Path::new(path).exists() {
        return Err(format!("UnpickleError: Path '{path}' does not exist."));
    }
    let obj = checkpoint::load(path.as_ref()).map_err(|e| format!("IOError: {e}"))?;
    let layers = obj
        .get("model_state")
        .and_then(|m| m.get("layers"))
        .ok_or_else(|| format!("KeyError: no model_state['layers'] in {path}"))?;
    let net = Rc::new(checkpoint::model::layers_from(&layers).map_err(|e| format!("{path}: {e}"))?);
    LAST.with_borrow_mut(|l| *l = Some((path.to_string(), net.clone())));
    Ok(net)
}

/// layer.py's `^([^\.]+)\.([^\(\)]+)\s*(?:\(([^,]+(?:,[^,]+)*)\))?$`: module,
/// function (as matched, trailing blanks included) and the parameters split at commas.
fn parse_spec(spec: &str) -> Option<(&str, &str, Vec<&str>)> {
    let module = spec.split('.').next().unwrap_or("");
    let rest = spec.get(module.len() + 1..).unwrap_or("");
    let (func, args) = match rest.find('(') {
        Some(p) => (&rest[..p], Some(&rest[p..])),
        None => (rest, None),
    };
    let params = match args {
        None => Vec::new(),
        Some(a) => {
            let inner = a.strip_prefix('(').and_then(|a| a.strip_suffix(')'))?;
            let params: Vec<&str> = inner.split(',').collect();
            if params.iter().any(|p| p.is_empty()) {
                return None;
            }
            params
        }
    };
    let func_ok = !func
        .trim_end_matches(crate::config::py::is_space)
        .is_empty()
        && !func.contains(')');
    if module.is_empty() || !spec.contains('.') || !func_ok {
        return None;
    }
    Some((module, func, params))
}

/// `numpy.require(a, requirements='C' or 'F')`: the same values in the wanted order.
pub(super) fn in_order(a: Array, fortran: bool) -> Array {
    if a.fortran == fortran {
        return a;
    }
    let (r, c) = (a.rows, a.cols);
    let mut data = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            let (from, to) = if a.fortran {
                (j * r + i, i * c + j)
            } else {
                (i * c + j, j * r + i)
            };
            data[to] = a.data[from];
        }
    }
    Array {
        rows: r,
        cols: c,
        fortran,
        data,
    }
}
