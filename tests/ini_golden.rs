//! The INI reader against Python 2.7.18's SafeConfigParser on golden/ini/cases (see
//! golden/ini/README.md for how the expected JSON was made).

use convnet::config::ini::{GetError, Ini, ReadError};
use convnet::config::py;
use serde_json::{json, Value};
use std::path::Path;

fn error_class(e: &GetError) -> &'static str {
    match e {
        GetError::NoSection => "NoSectionError",
        GetError::NoOption => "NoOptionError",
        GetError::Interpolation { class, .. } => class,
    }
}

fn float_json(v: f64) -> Value {
    if v.is_nan() {
        json!({"$float": "nan"})
    } else if v.is_infinite() {
        json!({"$float": if v > 0.0 { "inf" } else { "-inf" }})
    } else {
        json!(v)
    }
}

fn options_json(opts: &indexmap::IndexMap<String, String>) -> Value {
    Value::Array(opts.iter().map(|(k, v)| json!([k, v])).collect())
}

/// Our reader's view of one file, in the golden schema.
fn describe(ini: &Ini, expected_get: &Value) -> Value {
    let sections: Vec<Value> = ini
        .sections()
        .map(|s| json!({"name": s, "options": options_json(ini.raw_options(s).unwrap())}))
        .collect();
    let mut get = serde_json::Map::new();
    for (section, opts) in expected_get.as_object().unwrap() {
        let mut out = serde_json::Map::new();
        for option in opts.as_object().unwrap().keys() {
            let r = ini.get(section, option);
            let s = r.as_ref().ok();
            let int = s.and_then(|s| py::int(s));
            out.insert(
                option.clone(),
                json!({
                    "str": s,
                    "str_error": r.as_ref().err().map(error_class),
                    "int": int,
                    "float": s.and_then(|s| py::float(s)).map(float_json),
                    "bool": s.and_then(|s| py::boolean(s)),
                }),
            );
        }
        get.insert(section.clone(), Value::Object(out));
    }
    json!({
        "read_error": null,
        "sections": sections,
        "defaults": options_json(ini.raw_options("DEFAULT").unwrap()),
        "get": get,
    })
}

#[test]
fn ini_reader_matches_python27() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/ini/cases");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.retain(|p| p.extension().is_some_and(|e| e == "cfg"));
    cases.sort();
    assert!(cases.len() > 50, "golden INI cases missing");
    let mut failures = Vec::new();
    for cfg in &cases {
        let mut expected: Value =
            serde_json::from_slice(&std::fs::read(cfg.with_extension("json")).unwrap()).unwrap();
        let text = py::from_bytes(&std::fs::read(cfg).unwrap());
        let got = match Ini::parse(&text) {
            Err(ReadError::MissingSectionHeader { .. }) => {
                json!({"read_error": "MissingSectionHeaderError"})
            }
            Err(ReadError::Parsing { .. }) => json!({"read_error": "ParsingError"}),
            Ok(ini) => describe(&ini, &expected["get"]),
        };
        let exp = expected.as_object_mut().unwrap();
        exp.remove("read_error_lines");
        if !exp["read_error"].is_null() {
            exp.retain(|k, _| k == "read_error");
        }
        // Ints beyond 64 bits are Python longs; we reject them as ints on purpose.
        for opts in exp
            .get_mut("get")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            for o in opts.as_object_mut().unwrap().values_mut() {
                if o["int"].get("$int").is_some() {
                    o["int"] = Value::Null;
                }
            }
        }
        if got != expected {
            failures.push(format!(
                "{}:\n  expected {expected}\n  got      {got}",
                cfg.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
