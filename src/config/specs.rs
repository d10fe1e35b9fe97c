//! Port of layer.py's spec parsers: `NeuronParser` / `ParamNeuronParser` and the
//! `neuron_parsers` table (both generations), and the 2012 `ParamParser` with its
//! `lrs_parsers` (learning-rate schedules) and `quant_parsers` (transfer quantizers).

use super::py::{float, int, is_space, strip};
use super::value::{Dict, Value};
use super::Generation;

/// One entry of `neuron_parsers`: `type` as written in the table (`tanh[a,b]`), the
/// function shown in the error table, and what the neuron's gradient reads.
struct NeuronKind {
    spec: &'static str,
    func: &'static str,
    uses_acts: bool,
    uses_inputs: bool,
}

const fn nk(
    spec: &'static str,
    func: &'static str,
    uses_acts: bool,
    uses_inputs: bool,
) -> NeuronKind {
    NeuronKind {
        spec,
        func,
        uses_acts,
        uses_inputs,
    }
}

/// `neuron_parsers`, sorted by `type` as the original sorts them.
fn neuron_table(gen: Generation) -> Vec<NeuronKind> {
    let mut t = vec![
        nk("ident", "f(x) = x", false, false),
        nk("logistic", "f(x) = 1 / (1 + e^-x)", true, false),
        nk("abs", "f(x) = |x|", false, true),
        nk("relu", "f(x) = max(0, x)", true, false),
        nk("softrelu", "f(x) = log(1 + e^x)", true, false),
        nk("square", "f(x) = x^2", false, true),
        nk("sqrt", "f(x) = sqrt(x)", true, false),
        nk("tanh[a,b]", "f(x) = a * tanh(b * x)", true, false),
        nk("brelu[a]", "f(x) = min(a, max(0, x))", true, false),
        nk("linear[a,b]", "f(x) = a * x + b", true, false),
    ];
    if gen == Generation::A12 {
        t.push(nk("nrelu", "f(x) = max(0, x) + noise", true, false));
        t.push(nk("drelu[a]", "f(x) = x - a * tanh(x / a)", false, true));
    }
    t.sort_by(|a, b| a.spec.cmp(b.spec));
    t
}

/// Why a spec was not accepted.
pub enum SpecError {
    /// No parser matched: the original raises its LayerParsingError.
    NoMatch,
    /// A parser matched but `float()`/`int()` of a parameter raised `ValueError`, which
    /// the original does not catch (it crashes with a traceback).
    BadNumber(String),
}

/// Python `re.match(r'^<base>\s*\[(<class>*)\]\s*$', s)` for the neuron and schedule
/// forms: the bracket body, or `None` where there are no brackets (`Err` = no match).
fn bracketed<'s>(s: &'s str, base: &str, ignore_case: bool) -> Result<Option<&'s str>, ()> {
    let head_ok = s.len() >= base.len()
        && s.is_char_boundary(base.len())
        && if ignore_case {
            s[..base.len()].eq_ignore_ascii_case(base)
        } else {
            &s[..base.len()] == base
        };
    if !head_ok {
        return Err(());
    }
    let rest = s[base.len()..].trim_start_matches(is_space);
    // `\s*$`: only whitespace may follow (Python's `$` also allows one final '\n').
    let Some(body) = rest.strip_prefix('[') else {
        return if rest.is_empty() { Ok(None) } else { Err(()) };
    };
    let close = body.find(']').ok_or(())?;
    if !body[close + 1..].chars().all(is_space) {
        return Err(());
    }
    Ok(Some(&body[..close]))
}

/// `NeuronLayerParser.parse_neuron`: the neuron dict `{type, params, usesActs, usesInputs}`.
pub fn parse_neuron(gen: Generation, spec: &str) -> Result<Dict, SpecError> {
    // C1 lets the parameter list hold `e` (exponents); the 2012 regex dropped it.
    let allowed = |c: char| {
        c.is_ascii_digit()
            || matches!(c, ',' | '.' | '-')
            || is_space(c)
            || (c == 'e' && gen == Generation::C1)
    };
    for kind in neuron_table(gen) {
        let (base, names) = match kind.spec.split_once('[') {
            None if spec == kind.spec => (kind.spec, vec![]),
            None => continue,
            Some((base, rest)) => (
                base,
                rest.trim_end_matches(']').split(',').collect::<Vec<_>>(),
            ),
        };
        let mut params = Dict::new();
        if !names.is_empty() {
            let Ok(Some(body)) = bracketed(spec, base, false) else {
                continue;
            };
            if !body.chars().all(allowed) {
                continue;
            }
            let mut vals = Vec::new();
            for v in body.split(',') {
                vals.push(
                    float(strip(v)).ok_or_else(|| SpecError::BadNumber(strip(v).to_string()))?,
                );
            }
            if vals.len() != names.len() {
                continue;
            }
            for (n, v) in names.iter().zip(vals) {
                params.insert(n.to_string(), Value::Float(v));
            }
        }
        let mut d = Dict::new();
        d.insert("type".into(), base.into());
        d.insert("params".into(), params.into());
        d.insert("usesActs".into(), kind.uses_acts.into());
        d.insert("usesInputs".into(), kind.uses_inputs.into());
        return Ok(d);
    }
    Err(SpecError::NoMatch)
}

/// The table the original prints when no neuron matches (column names in bold).
pub fn neuron_usage(gen: Generation) -> String {
    const BOLD: &str = "\x1b[1m";
    const END: &str = "\x1b[0m";
    let table = neuron_table(gen);
    let width = table
        .iter()
        .map(|k| k.spec.len())
        .chain(["Neuron type".len()])
        .max()
        .unwrap_or(0)
        + 2;
    let mut lines = vec![format!(
        "{BOLD}{:<width$}{END}{BOLD}Function{END}",
        "Neuron type"
    )];
    lines.extend(
        table
            .iter()
            .map(|k| format!("{:<width$}{}", k.spec, k.func)),
    );
    lines.join("\n")
}

/// A 2012 `ParamParser` spec: name and typed parameter names (`f` float, `i` int).
struct ParamKind {
    name: &'static str,
    params: &'static [(&'static str, char)],
}

const SCHEDULES: &[ParamKind] = &[
    ParamKind {
        name: "default",
        params: &[],
    },
    ParamKind {
        name: "linear",
        params: &[("tgtFactor", 'f'), ("noiseStdev", 'f')],
    },
    ParamKind {
        name: "exp",
        params: &[("tgtFactor", 'f'), ("noiseStdev", 'f')],
    },
    ParamKind {
        name: "dexp",
        params: &[("tgtFactor", 'f'), ("noiseStdev", 'f'), ("numSteps", 'i')],
    },
    ParamKind {
        name: "jdexp",
        params: &[("tgtFactor", 'f'), ("noiseStdev", 'f'), ("numSteps", 'i')],
    },
];

const QUANTIZERS: &[ParamKind] = &[
    ParamKind {
        name: "default",
        params: &[],
    },
    ParamKind {
        name: "half",
        params: &[],
    },
];

/// Which 2012 table a `ParamParser` spec is read with.
#[derive(Clone, Copy)]
pub enum ParamTable {
    Schedule,
    Quantizer,
}

/// `ParamParser.parse`: `name` or `name[p1=v1,p2=v2]` with the parameters named in the
/// declared order (names and the spec name match case-insensitively), giving
/// `{type, params}`. Positional forms such as `dexp[250,0,4]` do not match.
pub fn parse_param_spec(table: ParamTable, spec: &str) -> Result<Dict, SpecError> {
    let kinds = match table {
        ParamTable::Schedule => SCHEDULES,
        ParamTable::Quantizer => QUANTIZERS,
    };
    for kind in kinds {
        let Ok(body) = bracketed(spec, kind.name, true) else {
            continue;
        };
        let mut params = Dict::new();
        if let Some(body) = body {
            // With no parameters the pattern is `\[()\]`: only an empty `[]` matches.
            let parts: Vec<&str> = if body.is_empty() {
                vec![]
            } else {
                body.split(',').collect()
            };
            if parts.len() != kind.params.len() {
                continue;
            }
            let mut ok = true;
            for (part, &(pname, ptype)) in parts.iter().zip(kind.params) {
                // `\s*name\s*=\s*[^,\s=]+\s*`
                let Some((k, v)) = part.split_once('=') else {
                    ok = false;
                    break;
                };
                let v = strip(v);
                if !strip(k).eq_ignore_ascii_case(pname)
                    || v.is_empty()
                    || v.contains('=')
                    || v.chars().any(is_space)
                {
                    ok = false;
                    break;
                }
                let parsed = match ptype {
                    'i' => int(v).map(Value::Int),
                    _ => float(v).map(Value::Float),
                };
                params.insert(
                    pname.to_string(),
                    parsed.ok_or_else(|| SpecError::BadNumber(v.to_string()))?,
                );
            }
            if !ok {
                continue;
            }
        } else if !kind.params.is_empty() {
            continue;
        }
        let mut d = Dict::new();
        d.insert("type".into(), kind.name.into());
        d.insert("params".into(), params.into());
        return Ok(d);
    }
    Err(SpecError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neuron(gen: Generation, s: &str) -> Option<String> {
        parse_neuron(gen, s).ok().map(|d| {
            let mut out = String::new();
            super::super::value::write_json_dict(&d, &mut out);
            out
        })
    }

    #[test]
    fn neurons() {
        assert!(neuron(Generation::C1, "relu")
            .unwrap()
            .contains(r#""usesActs": true"#));
        assert!(neuron(Generation::C1, "tanh[1.7159, 0.6666]")
            .unwrap()
            .contains(r#""a": 1.7159"#));
        assert!(neuron(Generation::C1, "brelu[1e-3]").is_some());
        assert!(neuron(Generation::A12, "brelu[1e-3]").is_none());
        assert!(neuron(Generation::C1, "nrelu").is_none());
        assert!(neuron(Generation::A12, "drelu[2]").is_some());
        assert!(neuron(Generation::C1, "tanh[1,2,3]").is_none());
        assert!(neuron(Generation::C1, "relu ").is_none());
        assert!(matches!(
            parse_neuron(Generation::C1, "tanh[]"),
            Err(SpecError::BadNumber(_))
        ));
    }

    #[test]
    fn schedules() {
        let ok = |s| parse_param_spec(ParamTable::Schedule, s).is_ok();
        assert!(ok("default"));
        assert!(ok("DEFAULT[]"));
        assert!(!ok("default[ ]"));
        assert!(ok("dexp[tgtFactor=250,noiseStdev=0,numSteps=4]"));
        assert!(ok("Exp[ TGTFACTOR = 10 , noiseStdev=0 ]"));
        assert!(!ok("dexp[250,0,4]"));
        assert!(!ok("exp"));
        assert!(!ok("linear[1000]"));
        assert!(matches!(
            parse_param_spec(
                ParamTable::Schedule,
                "dexp[tgtFactor=1,noiseStdev=0,numSteps=2.5]"
            ),
            Err(SpecError::BadNumber(_))
        ));
        assert!(parse_param_spec(ParamTable::Quantizer, "half").is_ok());
    }
}
