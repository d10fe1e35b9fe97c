//! The Python objects a cuda-convnet checkpoint holds, as decoded from a pickle: Python 2
//! scalars and containers, numpy arrays, dtypes and scalars, OrderedDicts, and instances
//! of other classes (kept opaque, with their state). Shared objects stay shared
//! (`Rc`), as the pickle memo made them.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Write;
use std::rc::Rc;

pub type Obj = Rc<PyObj>;

#[derive(Debug)]
pub enum PyObj {
    None,
    Bool(bool),
    Int(i64),
    /// An int beyond 64 bits, as decimal digits.
    Long(String),
    Float(f64),
    /// A Python 2 `str`.
    Bytes(Vec<u8>),
    Unicode(String),
    Tuple(Vec<Obj>),
    List(RefCell<Vec<Obj>>),
    /// Keys in pickle order (later duplicates replace earlier values in place).
    Dict(RefCell<Vec<(Obj, Obj)>>),
    /// A class or function named as a value (never called).
    Global {
        module: String,
        name: String,
    },
    /// An instance of `class` (`module.Name`) with the state BUILD gave it.
    Instance {
        class: String,
        state: RefCell<Option<Obj>>,
    },
    OrderedDict {
        class: String,
        items: RefCell<Vec<(Obj, Obj)>>,
    },
    Array(RefCell<NdArray>),
    Dtype(RefCell<Dtype>),
    Scalar {
        dtype: Dtype,
        bytes: Vec<u8>,
    },
}

/// A numpy dtype of fixed size: kind (`f`, `i`, `u`, `b`, `c`), item size, byte order.
#[derive(Debug, Clone, PartialEq)]
pub struct Dtype {
    pub kind: char,
    pub size: usize,
    pub big_endian: bool,
}

impl Dtype {
    /// The type codes numpy 1.x pickles (`f4`, `i8`, `u1`, `b1`, ...).
    pub fn parse(code: &str) -> Option<Dtype> {
        let code = code.trim_start_matches(['<', '>', '|', '=']);
        let mut chars = code.chars();
        let kind = chars.next()?;
        let size: usize = chars.as_str().parse().ok()?;
        let ok = match kind {
            'f' => matches!(size, 2 | 4 | 8 | 16),
            'i' | 'u' => matches!(size, 1 | 2 | 4 | 8),
            'b' => size == 1,
            'c' => matches!(size, 8 | 16 | 32),
            _ => false,
        };
        ok.then_some(Dtype {
            kind,
            size,
            big_endian: false,
        })
    }

    /// `dtype.str` without the byte-order character.
    pub fn code(&self) -> String {
        format!("{}{}", self.kind, self.size)
    }

    pub fn set_order(&mut self, order: &str) -> Option<()> {
        match order {
            "<" | "|" | "=" => self.big_endian = false,
            ">" => self.big_endian = true,
            _ => return None,
        }
        Some(())
    }
}

/// A numpy array: its raw bytes in the order and byte order the pickle gave.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub fortran: bool,
    pub data: Vec<u8>,
}

impl NdArray {
    pub fn empty() -> NdArray {
        NdArray {
            dtype: Dtype {
                kind: 'f',
                size: 8,
                big_endian: false,
            },
            shape: vec![0],
            fortran: false,
            data: vec![],
        }
    }

    /// The elements in C order, each item little-endian.
    pub fn c_order_le_bytes(&self) -> Vec<u8> {
        let n = self.data.len() / self.dtype.size.max(1);
        let item = self.dtype.size;
        let mut out = Vec::with_capacity(self.data.len());
        for c_index in 0..n {
            let src = if self.fortran {
                fortran_offset(&self.shape, c_index)
            } else {
                c_index
            };
            let bytes = &self.data[src * item..(src + 1) * item];
            if self.dtype.big_endian {
                // Complex numbers swap each half.
                let part = if self.dtype.kind == 'c' {
                    item / 2
                } else {
                    item
                };
                for chunk in bytes.chunks(part) {
                    out.extend(chunk.iter().rev());
                }
            } else {
                out.extend_from_slice(bytes);
            }
        }
        out
    }
}

/// Where the element of C-order index `c` sits in a Fortran-order buffer.
fn fortran_offset(shape: &[u64], mut c: usize) -> usize {
    let mut idx = vec![0usize; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        idx[i] = c % d as usize;
        c /= d as usize;
    }
    let mut off = 0;
    let mut stride = 1;
    for (i, &d) in shape.iter().enumerate() {
        off += idx[i] * stride;
        stride *= d as usize;
    }
    off
}

impl PyObj {
    /// A Python 2 `str` or `unicode` as text (bytes as latin-1).
    pub fn as_text(&self) -> Option<String> {
        match self {
            PyObj::Bytes(b) => Some(b.iter().map(|&c| c as char).collect()),
            PyObj::Unicode(s) => Some(s.clone()),
            _ => None,
        }
    }

    pub fn truthy(&self) -> bool {
        match self {
            PyObj::None => false,
            PyObj::Bool(b) => *b,
            PyObj::Int(i) => *i != 0,
            PyObj::Float(f) => *f != 0.0,
            PyObj::Bytes(b) => !b.is_empty(),
            PyObj::Unicode(s) => !s.is_empty(),
            PyObj::Tuple(t) => !t.is_empty(),
            PyObj::List(l) => !l.borrow().is_empty(),
            PyObj::Dict(d) => !d.borrow().is_empty(),
            _ => true,
        }
    }

    /// Python equality of the hashable keys checkpoints use (str/unicode, numbers,
    /// None, tuples of those).
    fn key_eq(&self, other: &PyObj) -> bool {
        let num = |o: &PyObj| match o {
            PyObj::Bool(b) => Some(*b as i64 as f64),
            PyObj::Int(i) => Some(*i as f64),
            PyObj::Float(f) => Some(*f),
            _ => None,
        };
        if let (Some(a), Some(b)) = (num(self), num(other)) {
            return a == b;
        }
        match (self, other) {
            (PyObj::None, PyObj::None) => true,
            (PyObj::Long(a), PyObj::Long(b)) => a == b,
            (PyObj::Tuple(a), PyObj::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.key_eq(y))
            }
            _ => match (self.as_text(), other.as_text()) {
                (Some(a), Some(b)) => a == b,
                _ => std::ptr::eq(self, other),
            },
        }
    }

    /// Drop what a container holds (to break reference cycles of a refused pickle).
    pub fn clear(&self) {
        match self {
            PyObj::List(l) => l.borrow_mut().clear(),
            PyObj::Dict(d) => d.borrow_mut().clear(),
            PyObj::OrderedDict { items, .. } => items.borrow_mut().clear(),
            PyObj::Instance { state, .. } => *state.borrow_mut() = None,
            _ => {}
        }
    }

    /// `d[k] = v` on a dict or OrderedDict: replaces an equal key in place.
    pub fn dict_set(&self, k: Obj, v: Obj) {
        let items = match self {
            PyObj::Dict(d) => d,
            PyObj::OrderedDict { items, .. } => items,
            _ => return,
        };
        let mut items = items.borrow_mut();
        match items.iter_mut().find(|(old, _)| old.key_eq(&k)) {
            Some(slot) => slot.1 = v,
            None => items.push((k, v)),
        }
    }

    /// The value of a string key of a dict or OrderedDict.
    pub fn get(&self, key: &str) -> Option<Obj> {
        let items = match self {
            PyObj::Dict(d) => d.borrow(),
            PyObj::OrderedDict { items, .. } => items.borrow(),
            _ => return None,
        };
        items
            .iter()
            .find(|(k, _)| k.as_text().as_deref() == Some(key))
            .map(|(_, v)| v.clone())
    }
}

/// Children of a node, for walks.
fn children(o: &PyObj) -> Vec<Obj> {
    match o {
        PyObj::Tuple(t) => t.clone(),
        PyObj::List(l) => l.borrow().clone(),
        PyObj::Dict(d) => d
            .borrow()
            .iter()
            .flat_map(|(k, v)| [k.clone(), v.clone()])
            .collect(),
        PyObj::OrderedDict { items, .. } => items
            .borrow()
            .iter()
            .flat_map(|(k, v)| [k.clone(), v.clone()])
            .collect(),
        PyObj::Instance { state, .. } => state.borrow().iter().cloned().collect(),
        _ => vec![],
    }
}

/// Every object reachable from `root` (each once).
pub fn reachable(root: &Obj) -> HashSet<*const PyObj> {
    let mut seen = HashSet::new();
    let mut todo = vec![root.clone()];
    while let Some(o) = todo.pop() {
        if seen.insert(Rc::as_ptr(&o)) {
            todo.extend(children(&o));
        }
    }
    seen
}

/// Most nodes a decoded pickle may expand to when shared objects are walked in full
/// (guards against pickles built to explode when printed).
const MAX_EXPANDED: u64 = 50_000_000;

/// Refuse cycles (no checkpoint has one; they would make every walk endless) and
/// structures whose full expansion is absurdly large.
pub fn check_acyclic(root: &Obj) -> Result<(), String> {
    fn walk(
        o: &Obj,
        on_path: &mut HashSet<*const PyObj>,
        sizes: &mut std::collections::HashMap<*const PyObj, u64>,
    ) -> Result<u64, String> {
        let p = Rc::as_ptr(o);
        if let Some(&n) = sizes.get(&p) {
            return Ok(n);
        }
        if !on_path.insert(p) {
            return Err("the pickle contains a reference cycle".into());
        }
        let mut n = 1u64;
        for c in children(o) {
            n = n.saturating_add(walk(&c, on_path, sizes)?);
        }
        on_path.remove(&p);
        if n > MAX_EXPANDED {
            return Err(format!(
                "the pickle expands to more than {MAX_EXPANDED} objects"
            ));
        }
        sizes.insert(p, n);
        Ok(n)
    }
    walk(root, &mut HashSet::new(), &mut Default::default()).map(|_| ())
}

/// The JSON form `shownet --dump-json` prints (see README, "Checkpoints").
pub fn to_json(o: &PyObj, out: &mut String) {
    use crate::config::value::write_json_str;
    match o {
        PyObj::None => out.push_str("null"),
        PyObj::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        PyObj::Int(i) => write!(out, "{i}").unwrap(),
        PyObj::Long(d) => write!(out, r#"{{"$long": "{d}"}}"#).unwrap(),
        PyObj::Float(f) => float_json(*f, out),
        PyObj::Bytes(b) if b.is_ascii() => write_json_str(&String::from_utf8_lossy(b), out),
        PyObj::Bytes(b) => {
            out.push_str(r#"{"$bytes": ""#);
            for x in b {
                write!(out, "{x:02x}").unwrap();
            }
            out.push_str("\"}");
        }
        PyObj::Unicode(s) => write_json_str(s, out),
        PyObj::Tuple(items) => list_json(items, out),
        PyObj::List(items) => list_json(&items.borrow(), out),
        PyObj::Dict(items) => {
            let items = items.borrow();
            if items.iter().all(|(k, _)| k.as_text().is_some()) {
                out.push('{');
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_json_str(&k.as_text().unwrap(), out);
                    out.push_str(": ");
                    to_json(v, out);
                }
                out.push('}');
            } else {
                out.push_str(r#"{"$dict": "#);
                pairs_json(&items, out);
                out.push('}');
            }
        }
        PyObj::Global { module, name } => {
            out.push_str(r#"{"$global": "#);
            write_json_str(&format!("{module}.{name}"), out);
            out.push('}');
        }
        PyObj::Instance { class, state } => {
            out.push_str(r#"{"$class": "#);
            write_json_str(class, out);
            out.push_str(r#", "$state": "#);
            match &*state.borrow() {
                Some(s) => to_json(s, out),
                None => out.push_str("null"),
            }
            out.push('}');
        }
        PyObj::OrderedDict { class, items } => {
            out.push_str(r#"{"$class": "#);
            write_json_str(class, out);
            out.push_str(r#", "$items": "#);
            pairs_json(&items.borrow(), out);
            out.push('}');
        }
        PyObj::Array(a) => {
            use sha2::Digest;
            let a = a.borrow();
            let digest = sha2::Sha256::digest(a.c_order_le_bytes());
            let shape: Vec<String> = a.shape.iter().map(u64::to_string).collect();
            write!(
                out,
                r#"{{"dtype": "{}", "shape": [{}], "fortran": {}, "sha256": ""#,
                a.dtype.code(),
                shape.join(", "),
                a.fortran
            )
            .unwrap();
            for x in digest {
                write!(out, "{x:02x}").unwrap();
            }
            out.push_str("\"}");
        }
        PyObj::Dtype(d) => write!(out, r#"{{"$dtype": "{}"}}"#, d.borrow().code()).unwrap(),
        PyObj::Scalar { dtype, bytes } => {
            write!(out, r#"{{"$scalar": "{}", "value": "#, dtype.code()).unwrap();
            scalar_json(dtype, bytes, out);
            out.push('}');
        }
    }
}

fn float_json(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str(r#"{"$float": "nan"}"#);
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 {
            r#"{"$float": "inf"}"#
        } else {
            r#"{"$float": "-inf"}"#
        });
    } else {
        write!(out, "{f:?}").unwrap();
    }
}

fn list_json(items: &[Obj], out: &mut String) {
    out.push('[');
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        to_json(v, out);
    }
    out.push(']');
}

fn pairs_json(items: &[(Obj, Obj)], out: &mut String) {
    out.push('[');
    for (i, (k, v)) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('[');
        to_json(k, out);
        out.push_str(", ");
        to_json(v, out);
        out.push(']');
    }
    out.push(']');
}

/// A numpy scalar's value as JSON.
fn scalar_json(d: &Dtype, bytes: &[u8], out: &mut String) {
    let mut b = bytes.to_vec();
    if d.big_endian {
        b.reverse();
    }
    let le8 = |b: &[u8], signed: bool| {
        let fill = if signed && b.last().is_some_and(|&x| x & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut buf = [fill; 8];
        buf[..b.len()].copy_from_slice(b);
        buf
    };
    match (d.kind, d.size) {
        ('f', 4) => float_json(f32::from_le_bytes(b[..4].try_into().unwrap()) as f64, out),
        ('f', 8) => float_json(f64::from_le_bytes(b[..8].try_into().unwrap()), out),
        ('i', _) => write!(out, "{}", i64::from_le_bytes(le8(&b, true))).unwrap(),
        ('u', _) => write!(out, "{}", u64::from_le_bytes(le8(&b, false))).unwrap(),
        ('b', _) => out.push_str(if b[0] != 0 { "true" } else { "false" }),
        _ => {
            out.push_str(r#"{"$bytes": ""#);
            for x in bytes {
                write!(out, "{x:02x}").unwrap();
            }
            out.push_str("\"}");
        }
    }
}
