//! The Python values of layer.py's layer dictionaries (the dicts later pickled into
//! checkpoints): `None`, bool, int, float, str, list, dict, numpy float32 matrices, and
//! references to other layer dicts (`inputLayers`), with the JSON form `--dump-layers`
//! prints.

use indexmap::IndexMap;
use std::fmt::Write;

/// One Python value. Ints and floats stay apart, as Python keeps them (`initB`
/// defaults to the int `0`, a given `initB=0` is the float `0.0`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Dict(Dict),
    Array(Array),
    /// The layer dict of that name, shared by reference in the original.
    LayerRef(String),
}

/// A Python dict with its keys in insertion order.
pub type Dict = IndexMap<String, Value>;

/// A 2-D numpy `float32` array as the parsers allocate them (`n.single`).
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub rows: usize,
    pub cols: usize,
    /// numpy's Fortran (column-major) order flag; `data` is stored in that order.
    pub fortran: bool,
    pub data: Vec<f32>,
}

impl Array {
    pub fn filled(rows: usize, cols: usize, fortran: bool, v: f32) -> Array {
        Array {
            rows,
            cols,
            fortran,
            data: vec![v; rows * cols],
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}
impl From<Array> for Value {
    fn from(v: Array) -> Value {
        Value::Array(v)
    }
}
impl From<Dict> for Value {
    fn from(v: Dict) -> Value {
        Value::Dict(v)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// A Python number as a float (ints included, as Python arithmetic would).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            other => other.as_int().map(|i| i as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// Python truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Dict(d) => !d.is_empty(),
            Value::Array(_) | Value::LayerRef(_) => true,
        }
    }

    /// The JSON form printed by `--dump-layers` (see README).
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::None => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => write!(out, "{i}").unwrap(),
            Value::Float(f) if f.is_nan() => out.push_str(r#"{"$float": "nan"}"#),
            Value::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 {
                r#"{"$float": "inf"}"#
            } else {
                r#"{"$float": "-inf"}"#
            }),
            // Debug keeps a float a float ("0.0") and round-trips exactly.
            Value::Float(f) => write!(out, "{f:?}").unwrap(),
            Value::Str(s) => write_json_str(s, out),
            Value::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Value::Dict(d) => write_json_dict(d, out),
            Value::Array(a) => write!(
                out,
                r#"{{"ndarray": true, "dtype": "float32", "shape": [{}, {}]}}"#,
                a.rows, a.cols
            )
            .unwrap(),
            Value::LayerRef(name) => {
                out.push_str(r#"{"layer_ref": "#);
                write_json_str(name, out);
                out.push('}');
            }
        }
    }
}

pub fn write_json_dict(d: &Dict, out: &mut String) {
    out.push('{');
    for (i, (k, v)) in d.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_json_str(k, out);
        out.push_str(": ");
        v.write_json(out);
    }
    out.push('}');
}

/// A JSON string; chars are latin-1 bytes, so every byte maps to one code point.
pub fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                write!(out, "\\u{:04x}", c as u32).unwrap()
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_int_float_and_special_forms() {
        let mut d = Dict::new();
        d.insert("a".into(), Value::Int(0));
        d.insert("b".into(), Value::Float(0.0));
        d.insert("c".into(), Value::Float(1e-5));
        d.insert("d".into(), Value::Float(f64::NAN));
        d.insert("e".into(), Value::LayerRef("x\"y".into()));
        d.insert("f".into(), Array::filled(2, 3, true, 0.0).into());
        let mut out = String::new();
        write_json_dict(&d, &mut out);
        assert_eq!(
            out,
            r#"{"a": 0, "b": 0.0, "c": 1e-5, "d": {"$float": "nan"}, "e": {"layer_ref": "x\"y"}, "f": {"ndarray": true, "dtype": "float32", "shape": [2, 3]}}"#
        );
    }
}
