//! Port of the writing half of util.py's `pickle`: cPickle protocol 2
//! (`HIGHEST_PROTOCOL` in Python 2.7), as Python 2.7 + numpy 1.x write the objects a
//! checkpoint holds, optionally inside a zip with member `data` (`--zip-save`), always
//! through a temporary file that is synced and renamed into place.

use super::value::{NdArray, Obj, PyObj};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::rc::Rc;

/// Pickle `root` with protocol 2. Objects shared in `root` (the same `Rc`) are written
/// once and referenced through the memo, as cPickle does.
pub fn dumps(root: &Obj) -> Vec<u8> {
    let mut w = Writer {
        out: vec![0x80, 2],
        memo: HashMap::new(),
    };
    w.save(root);
    w.out.push(b'.');
    w.out
}

struct Writer {
    out: Vec<u8>,
    memo: HashMap<*const PyObj, u32>,
}

impl Writer {
    fn op(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn put(&mut self, o: &Obj) {
        let idx = self.memo.len() as u32;
        self.memo.insert(Rc::as_ptr(o), idx);
        if idx < 256 {
            self.op(&[b'q', idx as u8]);
        } else {
            self.op(b"r");
            self.op(&idx.to_le_bytes());
        }
    }

    fn global(&mut self, module: &str, name: &str) {
        self.op(b"c");
        self.op(module.as_bytes());
        self.op(b"\n");
        self.op(name.as_bytes());
        self.op(b"\n");
    }

    fn bytes(&mut self, b: &[u8]) {
        if b.len() < 256 {
            self.op(&[b'U', b.len() as u8]);
        } else {
            self.op(b"T");
            self.op(&(b.len() as u32).to_le_bytes());
        }
        self.op(b);
    }

    fn int(&mut self, v: i64) {
        if (0..256).contains(&v) {
            self.op(&[b'K', v as u8]);
        } else if (0..65536).contains(&v) {
            self.op(b"M");
            self.op(&(v as u16).to_le_bytes());
        } else if let Ok(v) = i32::try_from(v) {
            self.op(b"J");
            self.op(&v.to_le_bytes());
        } else {
            self.long(&v.to_le_bytes());
        }
    }

    /// LONG1 of little-endian two's-complement bytes, trimmed as cPickle trims them.
    fn long(&mut self, le: &[u8]) {
        let mut b = le.to_vec();
        while b.len() > 1 {
            let (last, prev) = (b[b.len() - 1], b[b.len() - 2]);
            if (last == 0 && prev & 0x80 == 0) || (last == 0xff && prev & 0x80 != 0) {
                b.pop();
            } else {
                break;
            }
        }
        self.op(&[0x8a, b.len() as u8]);
        self.op(&b);
    }

    fn save(&mut self, o: &Obj) {
        if let Some(&idx) = self.memo.get(&Rc::as_ptr(o)) {
            if idx < 256 {
                self.op(&[b'h', idx as u8]);
            } else {
                self.op(b"j");
                self.op(&idx.to_le_bytes());
            }
            return;
        }
        match &**o {
            PyObj::None => self.op(b"N"),
            PyObj::Bool(b) => self.op(&[if *b { 0x88 } else { 0x89 }]),
            PyObj::Int(v) => self.int(*v),
            PyObj::Long(digits) => self.long(&decimal_to_le(digits)),
            PyObj::Float(f) => {
                self.op(b"G");
                self.op(&f.to_be_bytes());
            }
            PyObj::Bytes(b) => {
                self.bytes(b);
                self.put(o);
            }
            PyObj::Unicode(s) => {
                self.op(b"X");
                self.op(&(s.len() as u32).to_le_bytes());
                self.op(s.as_bytes());
                self.put(o);
            }
            PyObj::Tuple(items) => {
                if items.is_empty() {
                    return self.op(b")");
                }
                if items.len() > 3 {
                    self.op(b"(");
                }
                for i in items {
                    self.save(i);
                }
                match items.len() {
                    1 => self.op(&[0x85]),
                    2 => self.op(&[0x86]),
                    3 => self.op(&[0x87]),
                    _ => self.op(b"t"),
                }
                self.put(o);
            }
            PyObj::List(items) => {
                self.op(b"]");
                self.put(o);
                let items = items.borrow().clone();
                if !items.is_empty() {
                    self.op(b"(");
                    for i in &items {
                        self.save(i);
                    }
                    self.op(b"e");
                }
            }
            PyObj::Dict(items) => {
                self.op(b"}");
                self.put(o);
                self.set_items(&items.borrow().clone());
            }
            PyObj::Global { module, name } => {
                self.global(module, name);
                self.put(o);
            }
            PyObj::Instance { class, state } => {
                let (module, name) = class.rsplit_once('.').unwrap_or(("__main__", class));
                self.op(b"(");
                self.global(module, name);
                self.op(b"o");
                self.put(o);
                if let Some(s) = state.borrow().clone() {
                    self.save(&s);
                    self.op(b"b");
                }
            }
            PyObj::OrderedDict { class, items } => {
                // OrderedDict.__reduce__: the class called with the list of [key, value].
                let (module, name) = class
                    .rsplit_once('.')
                    .unwrap_or(("collections", "OrderedDict"));
                self.global(module, name);
                self.op(b"]");
                let items = items.borrow().clone();
                if !items.is_empty() {
                    self.op(b"(");
                    for (k, v) in &items {
                        self.op(b"]");
                        self.op(b"(");
                        self.save(k);
                        self.save(v);
                        self.op(b"e");
                    }
                    self.op(b"e");
                }
                self.op(&[0x85, b'R']);
                self.put(o);
            }
            PyObj::Array(a) => self.array(o, &a.borrow()),
            PyObj::Dtype(d) => {
                let d = d.borrow().clone();
                self.dtype(&d);
            }
            PyObj::Scalar { dtype, bytes } => {
                self.global("numpy.core.multiarray", "scalar");
                self.dtype(dtype);
                self.bytes(bytes);
                self.op(&[0x86, b'R']);
                self.put(o);
            }
        }
    }

    fn set_items(&mut self, items: &[(Obj, Obj)]) {
        if items.is_empty() {
            return;
        }
        self.op(b"(");
        for (k, v) in items {
            self.save(k);
            self.save(v);
        }
        self.op(b"u");
    }

    /// `numpy.dtype(code, 0, 1)` then its state (version 3, byte order, ...).
    fn dtype(&mut self, d: &super::value::Dtype) {
        self.global("numpy", "dtype");
        self.bytes(d.code().as_bytes());
        self.op(&[b'K', 0, b'K', 1, 0x87, b'R']);
        let order: &[u8] = if d.size == 1 {
            b"|"
        } else if d.big_endian {
            b">"
        } else {
            b"<"
        };
        self.op(&[b'(', b'K', 3]);
        self.bytes(order);
        self.op(b"NNN");
        self.int(-1);
        self.int(-1);
        self.op(&[b'K', 0, b't', b'b']);
    }

    /// `_reconstruct(ndarray, (0,), 'b')` then `(1, shape, dtype, is_fortran, data)`.
    fn array(&mut self, o: &Obj, a: &NdArray) {
        self.global("numpy.core.multiarray", "_reconstruct");
        self.global("numpy", "ndarray");
        self.op(&[b'K', 0, 0x85]);
        self.bytes(b"b");
        self.op(&[0x87, b'R']);
        self.put(o);
        self.op(&[b'(', b'K', 1]);
        if a.shape.len() > 3 {
            self.op(b"(");
        }
        for &d in &a.shape {
            self.int(d as i64);
        }
        match a.shape.len() {
            0 => self.op(b")"),
            1 => self.op(&[0x85]),
            2 => self.op(&[0x86]),
            3 => self.op(&[0x87]),
            _ => self.op(b"t"),
        }
        self.dtype(&a.dtype);
        self.op(&[if a.fortran { 0x88 } else { 0x89 }]);
        self.bytes(&a.data);
        self.op(b"tb");
    }
}

/// Decimal digits to little-endian two's-complement bytes.
fn decimal_to_le(digits: &str) -> Vec<u8> {
    let (neg, digits) = match digits.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, digits),
    };
    let mut mag: Vec<u8> = vec![0];
    for c in digits.bytes().filter(u8::is_ascii_digit) {
        let mut carry = (c - b'0') as u32;
        for b in mag.iter_mut() {
            let v = *b as u32 * 10 + carry;
            *b = v as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.push(carry as u8);
            carry >>= 8;
        }
    }
    mag.push(0); // room for the sign bit
    if neg {
        let mut carry = 1u16;
        for b in mag.iter_mut() {
            let v = (!*b) as u16 + carry;
            *b = v as u8;
            carry = v >> 8;
        }
    }
    mag
}

/// Write `bytes` (a pickle) to `path` as util.pickle did, zipped with member `data` if
/// `zip`, through `<path>.tmp-<pid>` in the same directory, synced, then renamed over
/// `path`: a reader sees the old file or the new one, never a part.
pub fn save_atomic(path: &Path, bytes: &[u8], zip: bool) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if zip {
            let mut z = zip::ZipWriter::new(&mut f);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .large_file(bytes.len() as u64 >= u32::MAX as u64);
            z.start_file("data", opts).map_err(std::io::Error::other)?;
            z.write_all(bytes)?;
            z.finish().map_err(std::io::Error::other)?;
        } else {
            f.write_all(bytes)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_ints_round_trip_through_bytes() {
        for d in [
            "0",
            "1",
            "-1",
            "127",
            "128",
            "-129",
            "1180591620717411303424",
            "-1180591620717411303424",
        ] {
            let le = decimal_to_le(d);
            let back = match super::super::pickle::loads(
                &[&[0x8a, le.len() as u8][..], &le, b"."].concat(),
            )
            .unwrap()
            .as_ref()
            {
                PyObj::Int(v) => v.to_string(),
                PyObj::Long(s) => s.clone(),
                other => panic!("{other:?}"),
            };
            assert_eq!(back, d);
        }
    }
}
