//! Port of layer.py's `LayerParser` and `LayerWithInputParser` base classes: the
//! default keys, `parse` of name/type/inputs/neuron (and 2012 `gpu`), the `verify_*`
//! checks with their messages, `grad_consumers_below` and the 2012 `parse_params`.

use super::py::{self, repr_str};
use super::reader::Section;
use super::specs::{parse_param_spec, ParamTable, SpecError};
use super::value::{Dict, Value};
use super::{ConfigError, Generation, Model};

/// The state of one layer parser: the original's `self.dic`, `mcp`, `prev_layers` and
/// `model`, plus the lines it prints.
pub(super) struct Cx<'a> {
    pub gen: Generation,
    pub sec: Section<'a>,
    pub name: String,
    /// Layers defined so far, in definition order (2012: the dict's insertion order).
    pub prev: &'a [Dict],
    /// `None` where the original passes no model (detached neuron layers).
    pub data: Option<&'a Model>,
    pub dic: Dict,
    pub log: &'a mut Vec<String>,
}

/// Look a layer up by name.
pub(super) fn find<'b>(layers: &'b [Dict], name: &str) -> Option<&'b Dict> {
    layers
        .iter()
        .find(|l| l.get("name").and_then(Value::as_str) == Some(name))
}

/// A key our own code set; its absence or type is a bug here, not bad input.
pub(super) fn int_of(d: &Dict, key: &str) -> i64 {
    d.get(key)
        .and_then(Value::as_int)
        .unwrap_or_else(|| panic!("layer dict lacks int '{key}'"))
}

pub(super) fn str_of<'d>(d: &'d Dict, key: &str) -> &'d str {
    d.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("layer dict lacks str '{key}'"))
}

/// The value of `min ≤ v ≤ max` checks, formatted as the original's `strconv` does.
#[derive(Clone, Copy)]
pub(super) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
    fn show(self) -> String {
        match self {
            Num::Int(i) => i.to_string(),
            Num::Float(f) => py::fmt_3f(f),
        }
    }
}

impl<'a> Cx<'a> {
    pub fn err(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::layer(&self.name, message)
    }

    /// An input the original cannot handle and dies on with an uncaught exception.
    pub fn crash(&self, key: &str, what: &str) -> ConfigError {
        self.err(format!("Layer '{}': parameter '{key}': {what}", self.name))
            .key(key)
            .crash()
    }

    pub fn set(&mut self, key: &str, v: impl Into<Value>) {
        self.dic.insert(key.to_string(), v.into());
    }

    pub fn int(&self, key: &str) -> i64 {
        int_of(&self.dic, key)
    }

    pub fn ints(&self, key: &str) -> Vec<i64> {
        self.dic[key]
            .as_list()
            .unwrap_or(&[])
            .iter()
            .filter_map(Value::as_int)
            .collect()
    }

    pub fn print(&mut self, line: String) {
        self.log.push(line);
    }

    /// The original's `Initialized <what> '<name>'<rest>` line, which the 2012 code
    /// extends with " on GPU n" after the name.
    pub fn initialized(&mut self, what: &str, rest: &str) {
        let gpu = match self.gen {
            Generation::C1 => String::new(),
            Generation::A12 => format!(" on GPU {}", self.int("gpu")),
        };
        let line = format!("Initialized {what} '{}'{gpu}{rest}", self.name);
        self.print(line);
    }

    /// The i-th input layer (`dic['inputLayers'][i]`).
    pub fn input(&self, i: usize) -> &'a Dict {
        let name = match &self.dic["inputLayers"].as_list().expect("inputLayers")[i] {
            Value::LayerRef(n) => n.clone(),
            _ => unreachable!("inputLayers holds layer references"),
        };
        find(self.prev, &name).expect("input layer exists")
    }

    pub fn num_inputs(&self) -> usize {
        self.dic
            .get("inputs")
            .and_then(Value::as_list)
            .map_or(0, <[Value]>::len)
    }

    pub fn data(&self) -> &'a Model {
        self.data.expect("layer parsed without a model")
    }

    /// Python `a / b` on ints; a zero divisor is the original's ZeroDivisionError.
    pub fn div(&self, a: i64, b: i64, key: &str) -> Result<i64, ConfigError> {
        py::div(a, b).ok_or_else(|| self.crash(key, "division by zero"))
    }

    /// `int(n.sqrt(v))`; a negative `v` makes the original fail on `int(nan)`.
    pub fn isqrt(&self, v: i64, key: &str) -> Result<i64, ConfigError> {
        if v < 0 {
            return Err(self.crash(key, "image size of a negative pixel count"));
        }
        Ok((v as f64).sqrt() as i64)
    }

    fn range_label(&self, input: Option<usize>) -> String {
        match input {
            Some(i) => format!("{}[{i}]", self.name),
            None => self.name.clone(),
        }
    }

    /// `_verify_num_range` for one value.
    pub fn check_range(
        &self,
        v: Num,
        key: &str,
        min: Option<Num>,
        max: Option<Num>,
        input: Option<usize>,
    ) -> Result<(), ConfigError> {
        let label = self.range_label(input);
        let msg = match (min, max) {
            (Some(lo), Some(hi)) if v.f() < lo.f() || v.f() > hi.f() => {
                format!("must be in the range {}-{}", lo.show(), hi.show())
            }
            (Some(lo), _) if v.f() < lo.f() => {
                format!("must be greater than or equal to {}", lo.show())
            }
            (_, Some(hi)) if v.f() > hi.f() => {
                format!("must be smaller than or equal to {}", hi.show())
            }
            _ => return Ok(()),
        };
        Err(self
            .err(format!("Layer '{label}': parameter '{key}' {msg}"))
            .key(key))
    }

    /// `verify_num_range(v, key, min, max)` on an int.
    pub fn int_range(
        &self,
        v: i64,
        key: &str,
        min: Option<i64>,
        max: Option<i64>,
    ) -> Result<(), ConfigError> {
        self.check_range(Num::Int(v), key, min.map(Num::Int), max.map(Num::Int), None)
    }

    /// `verify_num_range` on an int list: each element is named `layer[i]`.
    pub fn int_list_range(
        &self,
        key: &str,
        min: Option<i64>,
        max: Option<i64>,
    ) -> Result<(), ConfigError> {
        for (i, v) in self.ints(key).into_iter().enumerate() {
            self.check_range(
                Num::Int(v),
                key,
                min.map(Num::Int),
                max.map(Num::Int),
                Some(i),
            )?;
        }
        Ok(())
    }

    /// `verify_float_range` (bounds printed with `%.3f`).
    pub fn float_range(&self, v: f64, key: &str, min: f64, max: f64) -> Result<(), ConfigError> {
        self.check_range(
            Num::Float(v),
            key,
            Some(Num::Float(min)),
            Some(Num::Float(max)),
            None,
        )
    }

    /// `verify_divisible`: layers with inputs are always named `layer[idx]`.
    pub fn divisible(
        &self,
        value: i64,
        div: i64,
        value_name: &str,
        div_name: Option<&str>,
        input: usize,
    ) -> Result<(), ConfigError> {
        let r = py::rem(value, div).ok_or_else(|| self.crash(value_name, "modulo by zero"))?;
        if r == 0 {
            return Ok(());
        }
        let label = if self.num_inputs() == 0 {
            self.name.clone()
        } else {
            format!("{}[{input}]", self.name)
        };
        let by = div_name.map_or_else(|| div.to_string(), |d| format!("'{d}'"));
        Err(self
            .err(format!(
                "Layer '{label}': parameter '{value_name}' must be divisible by {by}"
            ))
            .key(value_name))
    }

    /// `verify_str_in`; the 2011 message names the value where it means the key.
    pub fn str_in(&self, value: &str, key: &str, allowed: &[&str]) -> Result<(), ConfigError> {
        if allowed.contains(&value) {
            return Ok(());
        }
        let shown = if self.gen == Generation::C1 {
            value
        } else {
            key
        };
        let list: Vec<String> = allowed.iter().map(|s| format!("'{s}'")).collect();
        Err(self
            .err(format!(
                "Layer '{}': parameter '{shown}' must be one of {}",
                self.name,
                list.join(", ")
            ))
            .key(key))
    }

    /// `verify_int_in`, with the same 2011 slip as `str_in`.
    pub fn int_in(&self, value: i64, key: &str, allowed: &[i64]) -> Result<(), ConfigError> {
        if allowed.contains(&value) {
            return Ok(());
        }
        let shown = if self.gen == Generation::C1 {
            value.to_string()
        } else {
            key.to_string()
        };
        let list: Vec<String> = allowed.iter().map(|s| format!("'{s}'")).collect();
        Err(self
            .err(format!(
                "Layer '{}': parameter '{shown}' must be one of {}",
                self.name,
                list.join(", ")
            ))
            .key(key))
    }

    /// `verify_num_params`: each list as long as `inputs`.
    pub fn same_len_as_inputs(&self, keys: &[&str]) -> Result<(), ConfigError> {
        for k in keys {
            if self.dic[*k].as_list().map_or(0, <[Value]>::len) != self.num_inputs() {
                return Err(self
                    .err(format!(
                        "Layer '{}': {k} list length does not match number of inputs",
                        self.name
                    ))
                    .key(k));
            }
        }
        Ok(())
    }

    /// `verify_img_size`: the first input is `channels` square images.
    pub fn verify_img_size(&self) -> Result<(), ConfigError> {
        let n = self.ints("numInputs")[0];
        let (pixels, size) = (self.int("imgPixels"), self.int("imgSize"));
        let r = py::rem(n, pixels).ok_or_else(|| self.crash("channels", "modulo by zero"))?;
        if r != 0 || size * size != pixels {
            return Err(self
                .err(format!(
                    "Layer '{}': has {n} dimensional input, not interpretable as {}-channel images",
                    self.name,
                    self.int("channels")
                ))
                .key("channels"));
        }
        Ok(())
    }

    /// `imgPixels = numInputs[0] / channels; imgSize = int(sqrt(imgPixels))`.
    pub fn set_img_dims(&mut self) -> Result<(), ConfigError> {
        let pixels = self.div(self.ints("numInputs")[0], self.int("channels"), "channels")?;
        let size = self.isqrt(pixels, "channels")?;
        self.set("imgPixels", pixels);
        self.set("imgSize", size);
        Ok(())
    }

    /// `verify_no_grads`.
    pub fn verify_no_grads(&self) -> Result<(), ConfigError> {
        if grad_consumers_below(&self.dic, self.prev) {
            let ty = str_of(&self.dic, "type");
            return Err(self.err(format!(
                "Layer '{}': layers of type '{ty}' cannot propagate gradient and must not be placed over layers with parameters.",
                self.name
            )));
        }
        Ok(())
    }

    /// 2012 `verify_input_dims`: `None` entries are not checked.
    pub fn input_dims(&self, dims: &[Option<i64>]) -> Result<(), ConfigError> {
        let n = self.ints("numInputs");
        for (i, d) in dims.iter().enumerate() {
            if let Some(d) = d {
                if n[i] != *d {
                    return Err(self.err(format!(
                        "Layer '{}': dimensionality of input {i} must be {d}",
                        self.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// 2012 `parse_params`: read `key` (default `default`) from the layer's section, or
    /// for a detached neuron layer from its source layer's, and parse it with `table`.
    pub fn param_spec(
        &self,
        params: &'a super::reader::Source<'a>,
        table: ParamTable,
        key: &str,
        human: &str,
    ) -> Result<Dict, ConfigError> {
        let super::reader::Source::Ini(ini) = params else {
            unreachable!("parameters come from a file")
        };
        let src_layer = self.dic.get("src_layer").and_then(Value::as_str);
        let section = if ini.has_section(&self.name) {
            Some(self.name.as_str())
        } else {
            src_layer.filter(|s| ini.has_section(s))
        };
        let vals = match section {
            Some(s) => Section {
                src: params,
                name: s,
            }
            .str(key)?
            .unwrap_or_else(|| "default".into()),
            None => "default".into(),
        };
        parse_param_spec(table, &vals).map_err(|e| match e {
            SpecError::NoMatch => self
                .err(format!(
                    "Layer '{}': unable to parse {human} {key}={vals}.",
                    self.name
                ))
                .key(key),
            SpecError::BadNumber(v) => {
                self.crash(key, &format!("invalid number '{v}' in '{vals}'"))
            }
        })
    }
}

/// `LayerParser.set_defaults`.
pub(super) fn defaults(gen: Generation) -> Dict {
    let mut d = Dict::new();
    d.insert("outputs".into(), Value::Int(0));
    d.insert("requiresParams".into(), false.into());
    d.insert("usesActs".into(), true.into());
    d.insert("usesInputs".into(), true.into());
    d.insert("forceOwnActs".into(), true.into());
    d.insert("gradConsumer".into(), false.into());
    if gen == Generation::A12 {
        d.insert("gpu".into(), Value::Int(-1));
    }
    d
}

/// `LayerParser.parse`: name and type.
pub(super) fn parse_base(cx: &mut Cx) -> Result<(), ConfigError> {
    let name = cx.name.clone();
    cx.set("name", name);
    let ty = cx.sec.req_str("type")?;
    cx.set("type", ty);
    Ok(())
}

/// `LayerWithInputParser.parse`: inputs, inputLayers, numInputs, neuron, input count,
/// and (2012) `gpu`.
pub(super) fn parse_with_inputs(cx: &mut Cx, arity: Option<usize>) -> Result<(), ConfigError> {
    parse_base(cx)?;
    let inputs: Vec<String> = cx
        .sec
        .req_str("inputs")?
        .split(',')
        .map(|s| py::strip(s).to_string())
        .collect();
    let name = cx.name.clone();
    for inp in &inputs {
        if find(cx.prev, inp).is_none() {
            return Err(cx
                .err(format!("Layer '{name}': input layer '{inp}' not defined"))
                .key("inputs"));
        }
    }
    let refs: Vec<Value> = inputs.iter().map(|n| Value::LayerRef(n.clone())).collect();
    match cx.gen {
        Generation::C1 => {
            let idx: Vec<i64> = inputs
                .iter()
                .map(|n| cx.prev.iter().position(|l| str_of(l, "name") == n).unwrap() as i64)
                .collect();
            cx.set("inputs", idx);
        }
        Generation::A12 => cx.set("inputs", inputs.clone()),
    }
    cx.set("inputLayers", Value::List(refs));
    let mut widths = Vec::new();
    for i in 0..inputs.len() {
        let l = cx.input(i);
        if int_of(l, "outputs") == 0 {
            return Err(cx
                .err(format!(
                    "Layer '{name}': input layer '{}' does not produce any output",
                    str_of(l, "name")
                ))
                .key("inputs"));
        }
        widths.push(int_of(l, "outputs"));
    }
    cx.set("numInputs", widths);
    let neuron = cx.sec.str("neuron")?.unwrap_or_default();
    cx.set("neuron", neuron);
    if let Some(n) = arity {
        if inputs.len() != n {
            // The original passes the format arguments to the exception instead of
            // applying them, so it prints the tuple.
            return Err(cx
                .err(format!(
                    "(\"Layer '%s': number of inputs must be %d\", {}, {n})",
                    repr_str(&name)
                ))
                .key("inputs"));
        }
    }
    if cx.gen == Generation::A12 {
        let default_gpu = int_of(cx.input(0), "gpu");
        let gpu = cx.sec.int("gpu")?.unwrap_or(default_gpu);
        cx.set("gpu", gpu);
        if let Some(data) = cx.data {
            cx.int_in(gpu, "gpu", &(0..data.num_gpus.max(0)).collect::<Vec<_>>())?;
        }
    }
    Ok(())
}

/// `LayerWithInputParser.grad_consumers_below`: this layer or any below it has weights.
pub(super) fn grad_consumers_below(dic: &Dict, layers: &[Dict]) -> bool {
    if dic.get("gradConsumer").is_some_and(Value::truthy) {
        return true;
    }
    dic.get("inputLayers")
        .and_then(Value::as_list)
        .is_some_and(|refs| {
            refs.iter().any(|r| match r {
                Value::LayerRef(n) => {
                    find(layers, n).is_some_and(|l| grad_consumers_below(l, layers))
                }
                _ => false,
            })
        })
}
