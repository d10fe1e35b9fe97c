//! The Python 2.7 builtins the original parsers lean on: `str.strip`, `str.isspace`,
//! `int()`, `float()`, `ConfigParser.getboolean`, floor division and `repr(str)`.
//!
//! Config text is kept as a `String` whose chars are the file's bytes (latin-1), so
//! every byte survives and the byte-oriented rules of Python 2 `str` apply unchanged.

/// Python 2 `str.isspace` for one byte: space, `\t`, `\n`, `\v`, `\f`, `\r`.
pub fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Python 2 `str.strip()`.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python 2 `int(s)` in base 10; `None` where Python raises `ValueError`. Values beyond
/// 64 bits (a Python long) are also `None`: no layer size can use them.
pub fn int(s: &str) -> Option<i64> {
    let s = strip(s);
    let (neg, rest) = match s.chars().next()? {
        '-' => (true, strip(&s[1..])),
        '+' => (false, strip(&s[1..])),
        _ => (false, s),
    };
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i128 = rest.parse().ok()?;
    i64::try_from(if neg { -v } else { v }).ok()
}

/// Python 2 `float(s)`; `None` where Python raises `ValueError`.
pub fn float(s: &str) -> Option<f64> {
    let s = strip(s);
    let (neg, body) = match s.chars().next()? {
        '-' => (true, &s[1..]),
        '+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let magnitude = match lower.as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ if is_decimal_literal(body) => body.parse().ok()?,
        _ => return None,
    };
    Some(if neg { -magnitude } else { magnitude })
}

/// `digits[.digits] | .digits`, then an optional exponent `e[+-]digits`.
fn is_decimal_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |mut i: usize| {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i, i - start)
    };
    let (mut i, int_digits) = digits(0);
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        let (j, n) = digits(i + 1);
        i = j;
        frac_digits = n;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let (j, n) = digits(i);
        if n == 0 {
            return false;
        }
        i = j;
    }
    i == b.len()
}

/// `RawConfigParser.getboolean` on an already fetched value.
pub fn boolean(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Python 2 `a / b` on ints (floor division); `None` for ZeroDivisionError.
pub fn div(a: i64, b: i64) -> Option<i64> {
    if b == 0 {
        return None;
    }
    let q = a.checked_div(b)?;
    Some(if (a % b != 0) && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    })
}

/// Python 2 `a % b` on ints (result has the sign of `b`); `None` for ZeroDivisionError.
pub fn rem(a: i64, b: i64) -> Option<i64> {
    let r = a.checked_rem(b)?;
    Some(if r != 0 && ((r < 0) != (b < 0)) {
        r + b
    } else {
        r
    })
}

/// Python 2 `repr()` of a byte string, as the original's tuple-formatted messages show it.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(quote);
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
            c if (c as u32) < 0x20 || (c as u32) >= 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python `'%.3f' % v`.
pub fn fmt_3f(v: f64) -> String {
    format!("{v:.3}")
}

/// `numpy.ndarray.sum()` of a contiguous float32 array (numpy 1.x): numpy's pairwise
/// sum, which below 8 elements adds in order, up to 128 keeps 8 running sums, and
/// above splits in halves (the first a multiple of 8 long).
pub fn numpy_sum_f32(a: &[f32]) -> f32 {
    let n = a.len();
    if n < 8 {
        return a.iter().fold(0.0f32, |s, &x| s + x);
    }
    if n > 128 {
        let half = n / 2 - n / 2 % 8;
        return numpy_sum_f32(&a[..half]) + numpy_sum_f32(&a[half..]);
    }
    let mut r = [0f32; 8];
    r.copy_from_slice(&a[..8]);
    let whole = n - n % 8;
    for chunk in a[8..whole].chunks_exact(8) {
        for (acc, &x) in r.iter_mut().zip(chunk) {
            *acc += x;
        }
    }
    let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for &x in &a[whole..] {
        res += x;
    }
    res
}

/// `numpy.ndarray.mean()` of a contiguous float32 array: the reduction starts from 0,
/// adds [`numpy_sum_f32`], and the quotient by the count is rounded to float32 (NaN
/// when empty).
pub fn numpy_mean_f32(a: &[f32]) -> f32 {
    if a.is_empty() {
        return f32::NAN;
    }
    ((0f32 + numpy_sum_f32(a)) as f64 / a.len() as f64) as f32
}

/// Bytes as the latin-1 chars this module works on.
pub fn from_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_follows_python2() {
        assert_eq!(int(" 7 "), Some(7));
        assert_eq!(int("- 5"), Some(-5));
        assert_eq!(int("\x0b+12\x0c"), Some(12));
        for bad in ["", "5.", "0x10", "1e3", "1_0", "--5", "5 5", "10L"] {
            assert_eq!(int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn float_follows_python2() {
        assert_eq!(float("1."), Some(1.0));
        assert_eq!(float("+.5e-2"), Some(0.005));
        assert_eq!(float("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(float("-nan").unwrap().is_nan());
        for bad in [
            "1e", ".", "0x1p3", "1_0", "infinit", "- 5", "+-5", "1d3", "",
        ] {
            assert_eq!(float(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn floor_division_and_modulo() {
        assert_eq!(div(-7, 2), Some(-4));
        assert_eq!(div(7, -2), Some(-4));
        assert_eq!(div(7, 2), Some(3));
        assert_eq!(rem(-7, 2), Some(1));
        assert_eq!(rem(7, -2), Some(-1));
        assert_eq!(div(1, 0), None);
        assert_eq!(rem(1, 0), None);
    }

    #[test]
    fn repr_picks_quotes_like_python() {
        assert_eq!(repr_str("a"), "'a'");
        assert_eq!(repr_str("it's"), "\"it's\"");
        assert_eq!(repr_str("a'\"b"), "'a\\'\"b'");
        assert_eq!(repr_str("a\nb\x01"), "'a\\nb\\x01'");
    }
}
