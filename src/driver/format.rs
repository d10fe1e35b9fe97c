//! Port of the printing of convnet.py/gpumodel.py (both generations): Python 2's `print`
//! statement (the "softspace" rule that puts single spaces between `print x,` items),
//! the `%6f` / `%.6f` / `%e` / `%.3f` formats the original used, and `repr` of the
//! values it printed with `%s`.

use crate::config::py;
use std::io::Write;

/// A Python 2 file object as the `print` statement writes to it: `print a,` writes a
/// space first when the previous item asked for one ("softspace"), then `a`; a string
/// item asks for the next space unless it ends in whitespace other than `' '`; `print`
/// without a trailing comma ends the line and clears the request.
pub struct PyPrint<W: Write> {
    out: W,
    softspace: bool,
}

impl<W: Write> PyPrint<W> {
    pub fn new(out: W) -> PyPrint<W> {
        PyPrint {
            out,
            softspace: false,
        }
    }

    /// `print s,`
    pub fn item(&mut self, s: &str) {
        if self.softspace {
            let _ = self.out.write_all(b" ");
        }
        let _ = self.out.write_all(s.as_bytes());
        self.softspace = match s.chars().last() {
            None | Some(' ') => true,
            Some(c) => !c.is_ascii_whitespace() && c != '\x0b',
        };
    }

    /// `print s`
    pub fn line(&mut self, s: &str) {
        self.item(s);
        let _ = self.out.write_all(b"\n");
        self.softspace = false;
    }

    /// `sys.stdout.flush()` (it leaves the softspace request as it is).
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }

    /// Whether the next item will be preceded by a space.
    pub fn softspace(&self) -> bool {
        self.softspace
    }

    /// The underlying stream, for output that bypasses `print` (the original's C++
    /// side writes to the same terminal without touching Python's softspace).
    pub fn raw(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Python's `'%.{prec}f' % v` padded to `width`: `nan`, `inf`, `-inf` as Python spells them.
pub fn fixed(v: f64, width: usize, prec: usize) -> String {
    let s = if v.is_nan() {
        "nan".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{v:.prec$}")
    };
    format!("{s:>width$}")
}

/// Python's `'%e' % v`: six decimals and an exponent of at least two digits.
pub fn exp(v: f64) -> String {
    if !v.is_finite() {
        return fixed(v, 0, 0);
    }
    let s = format!("{v:.6e}");
    let (mantissa, e) = s.split_once('e').unwrap();
    let (sign, digits) = match e.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', e),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// Python 2.7's `repr(float)`: the shortest digits that read back to `v`, in fixed
/// notation when the decimal exponent lies in `-4 < decpt <= 16`, else as `d.ddde+XX`;
/// a whole number gets `.0`.
pub fn repr_float(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits too.
    let s = format!("{:e}", v.abs());
    let (mantissa, e) = s.split_once('e').unwrap();
    let e: i32 = e.parse().unwrap();
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let decpt = e + 1;
    let sign = if v < 0.0 { "-" } else { "" };
    let body = if decpt <= -4 || decpt > 16 {
        let rest = &digits[1..];
        let m = if rest.is_empty() {
            digits[..1].to_string()
        } else {
            format!("{}.{rest}", &digits[..1])
        };
        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    } else if decpt <= 0 {
        format!("0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt as usize >= digits.len() {
        format!("{digits}{}.0", "0".repeat(decpt as usize - digits.len()))
    } else {
        format!(
            "{}.{}",
            &digits[..decpt as usize],
            &digits[decpt as usize..]
        )
    };
    format!("{sign}{body}")
}

/// Python 2's `repr(str)` of a plain name: single quotes unless the text holds one and
/// no double quote; backslashes and control characters escaped.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0x100).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// How a generation prints cost values: the 2011 `"%6f"`, the 2012 `"%.6f"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostStyle {
    /// cuda-convnet 1: `%6f` (`   nan` for NaN).
    C1,
    /// 2012: `%.6f`.
    A12,
}

impl CostStyle {
    pub fn value(self, v: f64) -> String {
        match self {
            CostStyle::C1 => fixed(v, 6, 6),
            CostStyle::A12 => fixed(v, 0, 6),
        }
    }
}

/// `print_iteration`: `"%d.%d..." % (epoch, batchnum)`.
pub fn iteration(epoch: i64, batchnum: i64) -> String {
    format!("{epoch}.{batchnum}...")
}

/// `print_train_time`: `"(%.3f sec)"`.
pub fn train_time(secs: f64) -> String {
    format!("({} sec)", fixed(secs, 0, 3))
}

/// One weight matrix's line of the test block: `Layer '<name>' weights[<i>]: %e [%e]`
/// (`weights` without an index when the layer holds one array, `biases` for biases).
pub fn weights_line(layer: &str, what: &str, mean_w: f32, mean_inc: f32) -> String {
    format!(
        "Layer '{layer}' {what}: {} [{}]",
        exp(mean_w as f64),
        exp(mean_inc as f64)
    )
}

/// numpy 1.x's `n.mean(n.abs(a))` of a float32 array, as the test block computed it
/// ([`py::numpy_mean_f32`] of the absolute values).
pub fn mean_abs_f32(data: &[f32]) -> f32 {
    let abs: Vec<f32> = data.iter().map(|x| x.abs()).collect();
    py::numpy_mean_f32(&abs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softspace_rules() {
        let mut p = PyPrint::new(Vec::new());
        p.item("1.1...");
        p.item("logprob: ");
        p.item("2.302585, 0.900000");
        p.line("(0.412 sec)");
        p.item("x\n");
        p.item("y");
        p.line("");
        assert_eq!(
            String::from_utf8(p.into_inner()).unwrap(),
            "1.1... logprob:  2.302585, 0.900000 (0.412 sec)\nx\ny \n"
        );
    }
}
