//! Port of the 2012 script test.py (`convnet test-log LOG`): averages the error figures
//! a `--test-only` run printed per batch. A line counts when it has the form
//! `batch N: ...[v1, v2, ...]}, cases)` (the script's regular expression: the values
//! are digits and dots only, so a line with `1e-05` or `nan` in its last list is
//! skipped, as there). It prints the per-case averages twice, summed in line order and
//! summed pairwise (the script's `binary_sum`), as Python 2 printed the lists, then
//! `--- <cases> cases`. Where the script crashed (no such line, a value `float()`
//! rejects, zero cases) we stop with an error.

use super::format::repr_float;
use std::io::Write;
use std::path::Path;

/// The last list of values and the case count of a `batch N: ...` line, `None` for a
/// line the script's expression does not match.
fn parse_line(line: &str) -> Option<(&str, &str)> {
    // `^batch \d+:`
    let rest = line.strip_prefix("batch ")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let rest = rest[digits..].strip_prefix(':').filter(|_| digits > 0)?;
    // `\s*$` (Python 2's \s: space, \t, \n, \v, \f, \r), then `]}, (\d+)\)` before it.
    let body = rest.trim_end_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let body = body.strip_suffix(')')?;
    let count_len = body.bytes().rev().take_while(u8::is_ascii_digit).count();
    let (body, cases) = body.split_at(body.len() - count_len);
    let body = body.strip_suffix("]}, ").filter(|_| count_len > 0)?;
    // `.*\[(...)`: the greedy `.*` leaves the list that starts at the last `[`.
    let list = &body[body.rfind('[')? + 1..];
    list_matches(list).then_some((list, cases))
}

/// `(?:[\d\.]+(?:, )?)+`: runs of digits and dots, each optionally followed by ", ".
fn list_matches(list: &str) -> bool {
    let mut tokens = list.split(", ").peekable();
    let mut any = false;
    while let Some(t) = tokens.next() {
        let last = tokens.peek().is_none();
        if t.is_empty() {
            // Only a trailing ", " leaves an empty last piece.
            return last && any;
        }
        if !t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return false;
        }
        any = true;
    }
    any
}

/// Python's `float()` of a piece of `group(1).split(',')`.
fn py_float(piece: &str) -> Result<f64, String> {
    let t = piece.trim_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    t.parse::<f64>()
        .map_err(|_| format!("invalid literal for float(): {t}"))
}

/// `binary_sum`: the element-wise sum of `rows`, halves summed first (`mid = len / 2`);
/// lists of different lengths are cut to the shorter, as `zip` does.
fn binary_sum(rows: &[Vec<f64>]) -> Vec<f64> {
    if rows.len() == 1 {
        return rows[0].clone();
    }
    let mid = rows.len() / 2;
    let (left, right) = (binary_sum(&rows[..mid]), binary_sum(&rows[mid..]));
    left.iter().zip(&right).map(|(a, b)| a + b).collect()
}

/// Python 2's `print` of a list of floats.
fn repr_list(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|&x| repr_float(x)).collect();
    format!("[{}]", items.join(", "))
}

/// test.py on the log `path`: prints the two averages and the case count to `out`.
pub fn test_log(path: &Path, out: &mut dyn Write) -> Result<(), String> {
    let err = |m: String| format!("{}: {m}", path.display());
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8_lossy(&bytes);
    let (mut sums, mut rows, mut cases): (Vec<f64>, Vec<Vec<f64>>, u64) = (vec![], vec![], 0);
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let Some((list, count)) = parse_line(line) else {
            continue;
        };
        let at = |m: String| err(format!("line {}: {m}", n + 1));
        let vals = list
            .split(',')
            .map(py_float)
            .collect::<Result<Vec<f64>, String>>()
            .map_err(at)?;
        if sums.is_empty() {
            sums = vec![0.0; vals.len()];
        }
        sums = sums.iter().zip(&vals).map(|(s, v)| s + v).collect();
        rows.push(vals);
        let count: u64 = count
            .parse()
            .map_err(|_| at(format!("case count {count} is too large")))?;
        cases = cases
            .checked_add(count)
            .ok_or_else(|| at("case count overflows".into()))?;
    }
    if rows.is_empty() {
        return Err(err("no 'batch N: (..., [values]}, cases)' line".into()));
    }
    if cases == 0 {
        return Err(err("the batches hold no cases".into()));
    }
    let average = |v: Vec<f64>| -> Vec<f64> { v.iter().map(|s| s / cases as f64).collect() };
    let print = |out: &mut dyn Write, s: String| writeln!(out, "{s}").map_err(|e| e.to_string());
    print(out, repr_list(&average(sums)))?;
    print(out, repr_list(&average(binary_sum(&rows))))?;
    print(out, format!("--- {cases} cases"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_as_the_scripts_expression() {
        let ok = "batch 7: ({'logprob': [2.302585, 0.9]}, 128)\n";
        assert_eq!(parse_line(ok), Some(("2.302585, 0.9", "128")));
        // The last list counts; trailing whitespace is allowed.
        let two = "batch 1: ({'a': [1.0], 'b': [0.5, 0.25]}, 10)  \r\n";
        assert_eq!(parse_line(two), Some(("0.5, 0.25", "10")));
        assert_eq!(
            parse_line("batch 1: ({'a': [1.0, ]}, 3)"),
            Some(("1.0, ", "3"))
        );
        for bad in [
            "batch : ({'a': [1.0]}, 3)",
            "batch 1 ({'a': [1.0]}, 3)",
            " batch 1: ({'a': [1.0]}, 3)",
            "batch 1: ({'a': [1e-05]}, 3)",
            "batch 1: ({'a': [-1.0]}, 3)",
            "batch 1: ({'a': [1.0,2.0]}, 3)",
            "batch 1: ({'a': []}, 3)",
            "batch 1: ({'a': [1.0]}, )",
            "batch 1: ({'a': [1.0]}, 3) x",
        ] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn pairwise_sum_splits_at_half() {
        let rows: Vec<Vec<f64>> = [0.1, 0.2, 0.3].iter().map(|&x| vec![x]).collect();
        // [0.1] + ([0.2] + [0.3])
        assert_eq!(binary_sum(&rows), vec![0.1 + (0.2 + 0.3)]);
    }
}
