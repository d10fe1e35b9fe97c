//! Port of the reading half of Python 2.7's `cPickle` (protocols 0, 1 and 2) as
//! util.py's `unpickle` used it for checkpoints, restricted so that it never runs
//! anything: classes become opaque objects holding their state, and only a fixed list
//! of constructors (numpy arrays, dtypes and scalars, OrderedDicts, `copy_reg`'s
//! reconstructor) may be called. Claimed lengths are checked against the bytes present
//! before anything is allocated.

use super::value::{Dtype, NdArray, Obj, PyObj};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// Why a pickle was refused; `pos` is the byte offset of the opcode.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    pub pos: usize,
    pub message: String,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "bad pickle at byte {}: {}", self.pos, self.message)
    }
}

impl std::error::Error for PickleError {}

type Result<T> = std::result::Result<T, PickleError>;

/// A value on the unpickler's stack.
enum Item {
    Mark,
    Obj(Obj),
}

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    op_pos: usize,
    stack: Vec<Item>,
    memo: HashMap<u64, Obj>,
    /// Every container made so far, to empty if the pickle is refused.
    containers: Vec<Obj>,
}

/// Decode one pickle (the whole of `data`, up to its STOP opcode).
pub fn loads(data: &[u8]) -> Result<Obj> {
    let mut u = Unpickler {
        data,
        pos: 0,
        op_pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        containers: Vec::new(),
    };
    let result = u.run().and_then(|obj| {
        super::value::check_acyclic(&obj).map_err(|m| PickleError {
            pos: u.op_pos,
            message: m,
        })?;
        Ok(obj)
    });
    // Containers the result does not hold may have been tied into cycles (through the
    // memo or DUP) and then dropped from the stack; empty them so they are freed. On a
    // refused pickle that is every container it made.
    let kept = result
        .as_ref()
        .map(super::value::reachable)
        .unwrap_or_default();
    for o in &u.containers {
        if !kept.contains(&Rc::as_ptr(o)) {
            o.clear();
        }
    }
    result
}

fn obj(v: PyObj) -> Obj {
    Rc::new(v)
}

impl<'a> Unpickler<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T> {
        Err(PickleError {
            pos: self.op_pos,
            message: message.into(),
        })
    }

    /// `v`, or the error `what` where it is absent.
    fn need<T>(&self, v: Option<T>, what: impl Into<String>) -> Result<T> {
        v.map_or_else(|| self.err(what), Ok)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.data.len() - self.pos < n {
            return self.err(format!(
                "truncated: {n} bytes claimed, {} left",
                self.data.len() - self.pos
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A claimed length: non-negative and no more than the bytes left.
    fn len32(&mut self) -> Result<usize> {
        let n = self.i32()?;
        if n < 0 {
            return self.err(format!("negative length {n}"));
        }
        Ok(n as usize)
    }

    /// A text line (protocol 0 arguments), without its '\n'.
    fn line(&mut self) -> Result<&'a [u8]> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return self.err("truncated: line without newline");
        };
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn line_str(&mut self) -> Result<String> {
        let l = self.line()?;
        match std::str::from_utf8(l) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => self.err("non-ASCII text argument"),
        }
    }

    fn push(&mut self, v: PyObj) {
        self.push_new(obj(v));
    }

    /// Push an object made by this opcode (not one fetched from the memo).
    fn push_new(&mut self, v: Obj) {
        if matches!(
            &*v,
            PyObj::List(_) | PyObj::Dict(_) | PyObj::OrderedDict { .. } | PyObj::Instance { .. }
        ) {
            self.containers.push(v.clone());
        }
        self.stack.push(Item::Obj(v));
    }

    fn pop(&mut self) -> Result<Obj> {
        match self.stack.pop() {
            Some(Item::Obj(o)) => Ok(o),
            Some(Item::Mark) => self.err("unexpected mark"),
            None => self.err("stack underflow"),
        }
    }

    fn top(&self) -> Result<Obj> {
        match self.stack.last() {
            Some(Item::Obj(o)) => Ok(o.clone()),
            Some(Item::Mark) => self.err("unexpected mark"),
            None => self.err("stack underflow"),
        }
    }

    /// Everything above the topmost mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Obj>> {
        let Some(m) = self.stack.iter().rposition(|i| matches!(i, Item::Mark)) else {
            return self.err("no mark on the stack");
        };
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .map(|i| {
                if let Item::Obj(o) = i {
                    o
                } else {
                    unreachable!()
                }
            })
            .collect())
    }

    fn memo_get(&self, key: u64) -> Result<Obj> {
        match self.memo.get(&key) {
            Some(o) => Ok(o.clone()),
            None => self.err(format!("memo key {key} was never stored")),
        }
    }

    fn run(&mut self) -> Result<Obj> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let v = self.u8()?;
                    if v > 2 {
                        return self.err(format!(
                            "protocol {v} (Python 3) is not a cuda-convnet pickle"
                        ));
                    }
                }
                b'.' => {
                    let v = self.pop()?;
                    // cPickle ignores what is left below the result; so do we.
                    return Ok(v);
                }
                b'(' => self.stack.push(Item::Mark),
                b'0' => {
                    if let Some(Item::Mark) = self.stack.last() {
                        self.stack.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.stack.push(Item::Obj(t));
                }
                b'N' => self.push(PyObj::None),
                0x88 => self.push(PyObj::Bool(true)),
                0x89 => self.push(PyObj::Bool(false)),
                b'I' => {
                    let l = self.line_str()?;
                    let v = match l.as_str() {
                        "01" => PyObj::Bool(true),
                        "00" => PyObj::Bool(false),
                        _ => self.need(int_text(&l), format!("bad INT {l:?}"))?,
                    };
                    self.push(v);
                }
                b'J' => {
                    let v = self.i32()?;
                    self.push(PyObj::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(PyObj::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(PyObj::Int(v as i64));
                }
                b'L' => {
                    let l = self.line_str()?;
                    let digits = l.strip_suffix('L').unwrap_or(&l);
                    let v = self.need(int_text(digits), format!("bad LONG {l:?}"))?;
                    self.push(v);
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    self.push(long_bytes(b));
                }
                0x8b => {
                    let n = self.len32()?;
                    let b = self.take(n)?;
                    self.push(long_bytes(b));
                }
                b'F' => {
                    let l = self.line_str()?;
                    let v = self.need(crate::config::py::float(&l), format!("bad FLOAT {l:?}"))?;
                    self.push(PyObj::Float(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    self.push(PyObj::Float(f64::from_be_bytes(b.try_into().unwrap())));
                }
                b'S' => {
                    let l = self.line()?;
                    let v = self.need(string_repr(l), "bad STRING literal")?;
                    self.push(PyObj::Bytes(v));
                }
                b'T' => {
                    let n = self.len32()?;
                    let b = self.take(n)?;
                    self.push(PyObj::Bytes(b.to_vec()));
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    self.push(PyObj::Bytes(b.to_vec()));
                }
                b'V' => {
                    let l = self.line()?;
                    let v = self.need(raw_unicode_escape(l), "bad UNICODE literal")?;
                    self.push(PyObj::Unicode(v));
                }
                b'X' => {
                    let n = self.len32()?;
                    let b = self.take(n)?;
                    match String::from_utf8(b.to_vec()) {
                        Ok(s) => self.push(PyObj::Unicode(s)),
                        Err(_) => return self.err("BINUNICODE is not UTF-8"),
                    }
                }
                b')' => self.push(PyObj::Tuple(vec![])),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(PyObj::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(PyObj::Tuple(items));
                }
                b']' => self.push(PyObj::List(RefCell::new(vec![]))),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(PyObj::List(RefCell::new(items)));
                }
                b'}' => self.push(PyObj::Dict(RefCell::new(vec![]))),
                b'd' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return self.err("odd number of items for a dict");
                    }
                    let d = PyObj::Dict(RefCell::new(vec![]));
                    for kv in items.chunks(2) {
                        d.dict_set(kv[0].clone(), kv[1].clone());
                    }
                    self.push(d);
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    self.append(&l, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let l = self.top()?;
                    self.append(&l, items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.set_items(&d, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return self.err("odd number of items for SETITEMS");
                    }
                    let d = self.top()?;
                    self.set_items(&d, items)?;
                }
                b'p' => {
                    let l = self.line_str()?;
                    let k = self.need(l.trim().parse().ok(), format!("bad PUT {l:?}"))?;
                    let v = self.top()?;
                    self.memo.insert(k, v);
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    let v = self.top()?;
                    self.memo.insert(k, v);
                }
                b'r' => {
                    let k = self.i32()? as u32 as u64;
                    let v = self.top()?;
                    self.memo.insert(k, v);
                }
                b'g' => {
                    let l = self.line_str()?;
                    let k = self.need(l.trim().parse().ok(), format!("bad GET {l:?}"))?;
                    let v = self.memo_get(k)?;
                    self.stack.push(Item::Obj(v));
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    let v = self.memo_get(k)?;
                    self.stack.push(Item::Obj(v));
                }
                b'j' => {
                    let k = self.i32()? as u32 as u64;
                    let v = self.memo_get(k)?;
                    self.stack.push(Item::Obj(v));
                }
                b'c' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    self.push(PyObj::Global { module, name });
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.reduce(&f, &args)?;
                    self.push_new(v);
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.instantiate(&cls, &tuple_items(&args))?;
                    self.push_new(v);
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return self.err("OBJ without a class");
                    }
                    let cls = items.remove(0);
                    let v = self.instantiate(&cls, &items)?;
                    self.push_new(v);
                }
                b'i' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let items = self.pop_mark()?;
                    let cls = obj(PyObj::Global { module, name });
                    let v = self.instantiate(&cls, &items)?;
                    self.push_new(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    self.build(&target, state)?;
                }
                b'P' | b'Q' => {
                    return self.err("persistent ids are not used by cuda-convnet pickles")
                }
                0x82..=0x84 => {
                    return self
                        .err("extension registry codes are not used by cuda-convnet pickles")
                }
                other => return self.err(format!("unknown opcode 0x{other:02x}")),
            }
        }
    }

    fn append(&self, list: &Obj, items: Vec<Obj>) -> Result<()> {
        match &**list {
            PyObj::List(l) => {
                l.borrow_mut().extend(items);
                Ok(())
            }
            _ => self.err("APPEND to something that is not a list"),
        }
    }

    fn set_items(&self, dict: &Obj, items: Vec<Obj>) -> Result<()> {
        match &**dict {
            PyObj::Dict(_) => {
                for kv in items.chunks(2) {
                    dict.dict_set(kv[0].clone(), kv[1].clone());
                }
                Ok(())
            }
            _ => self.err("SETITEM on something that is not a dict"),
        }
    }

    /// REDUCE: only the constructors cuda-convnet checkpoints use.
    fn reduce(&self, f: &Obj, args: &Obj) -> Result<Obj> {
        let PyObj::Global { module, name } = &**f else {
            return self.err("REDUCE of something that is not a global");
        };
        let args = tuple_items(args);
        match (module.as_str(), name.as_str()) {
            ("numpy.core.multiarray", "_reconstruct") => {
                // _reconstruct(ndarray, (0,), 'b'): an empty array that BUILD fills.
                Ok(obj(PyObj::Array(RefCell::new(NdArray::empty()))))
            }
            ("numpy", "dtype") => {
                let code = self.need(
                    args.first().and_then(|a| a.as_text()),
                    "numpy.dtype without a type code",
                )?;
                match Dtype::parse(&code) {
                    Some(d) => Ok(obj(PyObj::Dtype(RefCell::new(d)))),
                    None => self.err(format!("unsupported numpy dtype '{code}'")),
                }
            }
            ("numpy.core.multiarray", "scalar") => {
                let (Some(PyObj::Dtype(d)), Some(PyObj::Bytes(b))) =
                    (args.first().map(|a| &**a), args.get(1).map(|a| &**a))
                else {
                    return self.err("numpy scalar without dtype and bytes");
                };
                let d = d.borrow().clone();
                if b.len() != d.size {
                    return self.err(format!(
                        "numpy scalar of {} bytes for dtype {}",
                        b.len(),
                        d.code()
                    ));
                }
                Ok(obj(PyObj::Scalar {
                    dtype: d,
                    bytes: b.clone(),
                }))
            }
            ("collections", "OrderedDict") | ("ordereddict", "OrderedDict") => {
                let od = PyObj::OrderedDict {
                    class: format!("{module}.{name}"),
                    items: RefCell::new(vec![]),
                };
                if let Some(items) = args.first() {
                    let pairs = match &**items {
                        PyObj::List(l) => l.borrow().clone(),
                        PyObj::Tuple(t) => t.clone(),
                        _ => return self.err("OrderedDict items are not a list"),
                    };
                    for p in pairs {
                        let kv = tuple_items(&p);
                        if kv.len() != 2 {
                            return self.err("OrderedDict item is not a pair");
                        }
                        od.dict_set(kv[0].clone(), kv[1].clone());
                    }
                }
                Ok(obj(od))
            }
            ("copy_reg", "_reconstructor") => {
                // _reconstructor(cls, base, state): an instance of cls, never initialised.
                let Some(cls) = args.first() else {
                    return self.err("_reconstructor without a class");
                };
                self.instantiate(cls, &[])
            }
            _ => self.err(format!(
                "refusing to call {module}.{name} (not a known constructor)"
            )),
        }
    }

    /// NEWOBJ / OBJ / INST: an opaque instance. Python would call the class with the
    /// arguments; with arguments that is a call we will not make.
    fn instantiate(&self, cls: &Obj, args: &[Obj]) -> Result<Obj> {
        let PyObj::Global { module, name } = &**cls else {
            return self.err("instance of something that is not a class");
        };
        if matches!(
            (module.as_str(), name.as_str()),
            ("collections", "OrderedDict") | ("ordereddict", "OrderedDict")
        ) {
            return self.reduce(cls, &obj(PyObj::Tuple(args.to_vec())));
        }
        if !args.is_empty() {
            return self.err(format!(
                "refusing to construct {module}.{name} with arguments"
            ));
        }
        Ok(obj(PyObj::Instance {
            class: format!("{module}.{name}"),
            state: RefCell::new(None),
        }))
    }

    /// BUILD: set an instance's state, fill an array, set a dtype's byte order.
    fn build(&self, target: &Obj, state: Obj) -> Result<()> {
        match &**target {
            PyObj::Instance { state: s, .. } => {
                *s.borrow_mut() = Some(state);
                Ok(())
            }
            PyObj::OrderedDict { .. } => Ok(()),
            PyObj::Dtype(d) => {
                // (version, byteorder, subarray, names, fields, elsize, alignment, flags)
                let items = tuple_items(&state);
                if let Some(order) = items.get(1).and_then(|o| o.as_text()) {
                    let set = d.borrow_mut().set_order(&order);
                    self.need(set, format!("bad byte order '{order}'"))?;
                }
                Ok(())
            }
            PyObj::Array(a) => {
                // ([version,] shape, dtype, is_fortran, rawdata)
                let mut items = tuple_items(&state);
                if items.len() == 5 {
                    items.remove(0);
                }
                let [shape, dtype, fortran, raw] = &items[..] else {
                    return self.err("ndarray state is not (shape, dtype, fortran, data)");
                };
                let mut dims = Vec::new();
                for d in tuple_items(shape) {
                    match &*d {
                        PyObj::Int(v) if *v >= 0 => dims.push(*v as u64),
                        _ => return self.err("ndarray shape is not a tuple of non-negative ints"),
                    }
                }
                let PyObj::Dtype(dt) = &**dtype else {
                    return self.err("ndarray dtype is not a dtype");
                };
                let dt = dt.borrow().clone();
                let PyObj::Bytes(raw) = &**raw else {
                    return self.err(
                        "ndarray data is not a byte string (object arrays are not supported)",
                    );
                };
                let count = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
                let expected = count.and_then(|c| c.checked_mul(dt.size as u64));
                if expected != Some(raw.len() as u64) {
                    return self.err(format!(
                        "ndarray of shape {dims:?} and dtype {} needs {expected:?} bytes, has {}",
                        dt.code(),
                        raw.len()
                    ));
                }
                *a.borrow_mut() = NdArray {
                    dtype: dt,
                    shape: dims,
                    fortran: fortran.truthy(),
                    data: raw.clone(),
                };
                Ok(())
            }
            _ => self.err("BUILD on an object without state"),
        }
    }
}

fn tuple_items(o: &Obj) -> Vec<Obj> {
    match &**o {
        PyObj::Tuple(t) => t.clone(),
        PyObj::List(l) => l.borrow().clone(),
        _ => vec![],
    }
}

/// A decimal int argument; beyond 64 bits it is kept as digits.
fn int_text(s: &str) -> Option<PyObj> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match t.parse::<i64>() {
        Ok(v) => PyObj::Int(v),
        Err(_) => {
            // Canonical digits, as Python would print the value.
            let digits = digits.trim_start_matches('0');
            PyObj::Long(format!(
                "{}{digits}",
                if t.starts_with('-') { "-" } else { "" }
            ))
        }
    })
}

/// LONG1/LONG4: little-endian two's complement.
fn long_bytes(b: &[u8]) -> PyObj {
    if b.is_empty() {
        return PyObj::Int(0);
    }
    if b.len() <= 8 {
        let fill = if b[b.len() - 1] & 0x80 != 0 { 0xff } else { 0 };
        let mut buf = [fill; 8];
        buf[..b.len()].copy_from_slice(b);
        return PyObj::Int(i64::from_le_bytes(buf));
    }
    PyObj::Long(twos_complement_decimal(b))
}

/// Decimal digits of a little-endian two's-complement integer of any length.
fn twos_complement_decimal(b: &[u8]) -> String {
    let neg = b[b.len() - 1] & 0x80 != 0;
    // Magnitude as little-endian bytes.
    let mut mag: Vec<u8> = if neg {
        let mut carry = 1u16;
        b.iter()
            .map(|&x| {
                let v = (!x) as u16 + carry;
                carry = v >> 8;
                v as u8
            })
            .collect()
    } else {
        b.to_vec()
    };
    let mut digits = Vec::new();
    while mag.iter().any(|&x| x != 0) {
        let mut rem = 0u32;
        for x in mag.iter_mut().rev() {
            let cur = (rem << 8) | *x as u32;
            *x = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    if neg {
        digits.push(b'-');
    }
    digits.reverse();
    String::from_utf8(digits).unwrap()
}

/// STRING: a Python 2 repr of a byte string, in single or double quotes.
fn string_repr(l: &[u8]) -> Option<Vec<u8>> {
    let q = *l.first()?;
    if (q != b'\'' && q != b'"') || l.len() < 2 || *l.last()? != q {
        return None;
    }
    let body = &l[1..l.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *body.get(i)?;
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'\\' | b'\'' | b'"' => out.push(e),
            b'x' => {
                let h = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            _ => {
                out.push(b'\\');
                out.push(e);
            }
        }
    }
    Some(out)
}

/// UNICODE: raw-unicode-escape (`\uXXXX`, `\UXXXXXXXX`, other bytes latin-1).
fn raw_unicode_escape(l: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut i = 0;
    while i < l.len() {
        if l[i] == b'\\' && i + 1 < l.len() && (l[i + 1] == b'u' || l[i + 1] == b'U') {
            let n = if l[i + 1] == b'u' { 4 } else { 8 };
            let h = std::str::from_utf8(l.get(i + 2..i + 2 + n)?).ok()?;
            out.push(char::from_u32(u32::from_str_radix(h, 16).ok()?)?);
            i += 2 + n;
        } else {
            out.push(l[i] as char);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_decode() {
        assert_eq!(twos_complement_decimal(&[0xff; 9]), "-1");
        assert_eq!(
            twos_complement_decimal(&[0, 0, 0, 0, 0, 0, 0, 0, 1]),
            "18446744073709551616"
        );
        assert!(matches!(long_bytes(&[0xff, 0x7f]), PyObj::Int(32767)));
        assert!(matches!(long_bytes(&[0x00, 0x80]), PyObj::Int(-32768)));
    }

    #[test]
    fn string_literals() {
        assert_eq!(string_repr(b"'a\\'b\\x00\\n'").unwrap(), b"a'b\x00\n");
        assert_eq!(string_repr(b"\"it's\"").unwrap(), b"it's");
        assert!(string_repr(b"'unterminated").is_none());
    }
}
