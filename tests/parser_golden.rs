//! `convnet --dump-layers` against the original layer.py of each generation, run beside
//! the project on the original configs (golden/parser/manifest.json, needs
//! CONVNET_ORIGINALS) and on our synthetic corpus (golden/parser/synthetic/). See
//! golden/parser/README.md for how the references were made.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/parser")
}

/// Compare a dump with the reference; `filterConns` holds random permutations, so only
/// its shape and the permutation property are compared.
fn same(path: &str, ours: &Value, theirs: &Value, diffs: &mut Vec<String>) {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let (mut ka, mut kb): (Vec<_>, Vec<_>) = (a.keys().collect(), b.keys().collect());
            ka.sort();
            kb.sort();
            if ka != kb {
                diffs.push(format!("{path}: keys {ka:?} != {kb:?}"));
                return;
            }
            for (k, v) in a {
                if k == "filterConns" {
                    same_conns(&format!("{path}.{k}"), v, &b[k], diffs);
                } else {
                    same(&format!("{path}.{k}"), v, &b[k], diffs);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same(&format!("{path}[{i}]"), x, y, diffs);
            }
        }
        _ if ours == theirs => {}
        _ => diffs.push(format!("{path}: ours {ours} != original {theirs}")),
    }
}

fn same_conns(path: &str, ours: &Value, theirs: &Value, diffs: &mut Vec<String>) {
    let lens = |v: &Value| {
        v.as_array().map(|l| {
            l.iter()
                .map(|c| c.as_array().map_or(0, Vec::len))
                .collect::<Vec<_>>()
        })
    };
    if lens(ours) != lens(theirs) {
        diffs.push(format!(
            "{path}: shape differs: ours {ours} original {theirs}"
        ));
    }
}

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(case: &Value, root: &Path) -> Outcome {
    let num_gpus = case["num_gpus"].as_i64().unwrap_or(1);
    let gpus: Vec<String> = (0..num_gpus).map(|g| g.to_string()).collect();
    let dims: Vec<String> = case["data_dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .collect();
    // Paths as the original was given them (its messages quote them).
    let out = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .current_dir(root)
        .arg("--layer-def")
        .arg(case["def"].as_str().unwrap())
        .arg("--layer-params")
        .arg(case["params"].as_str().unwrap())
        .args(["--compat", case["compat"].as_str().unwrap()])
        .arg(format!("--data-dims={}", dims.join(",")))
        .arg(format!("--num-classes={}", case["num_classes"]))
        .arg(format!("--gpu={}", gpus.join(",")))
        .arg("--dump-layers")
        .output()
        .unwrap();
    Outcome {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run every case of a manifest; `root` is where its `def`/`params` paths start.
fn check_manifest(manifest: &Path, root: &Path) {
    let cases: Vec<Value> = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    let dumps = manifest.parent().unwrap();
    // Each case is a separate process; run them on every core.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let chunks: Vec<_> = cases
            .chunks(cases.len().div_ceil(threads).max(1))
            .map(|chunk| s.spawn(move || chunk.iter().map(|c| run(c, root)).collect::<Vec<_>>()))
            .collect();
        chunks.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    for (case, got) in cases.iter().zip(outcomes) {
        let id = case["id"].as_str().unwrap();
        let fail = |why: String| format!("{id}: {why}\n  stderr: {}", got.stderr.trim_end());
        if case["result"] == "ok" {
            if !got.ok {
                failures.push(fail("the original accepts this pair; we reject it".into()));
                continue;
            }
            let ours: Value = match serde_json::from_str(&got.stdout) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(fail(format!("our dump is not JSON: {e}")));
                    continue;
                }
            };
            let theirs: Value = serde_json::from_slice(
                &std::fs::read(dumps.join(case["dump"].as_str().unwrap())).unwrap(),
            )
            .unwrap();
            let mut diffs = Vec::new();
            same("", &ours, &theirs, &mut diffs);
            if let Some(order) = case["order"].as_array() {
                let ours_order: Vec<Value> = match &ours {
                    Value::Object(_) => dict_order(&got.stdout),
                    Value::Array(l) => l.iter().map(|d| d["name"].clone()).collect(),
                    _ => vec![],
                };
                if &ours_order != order {
                    diffs.push(format!(
                        "layer order: ours {ours_order:?} original {order:?}"
                    ));
                }
            }
            let printed: Vec<&str> = got.stderr.lines().collect();
            let expected: Vec<&str> = case["printed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            if printed != expected {
                diffs.push(format!(
                    "printed lines differ:\n    ours {printed:?}\n    orig {expected:?}"
                ));
            }
            if !diffs.is_empty() {
                diffs.truncate(8);
                failures.push(fail(diffs.join("\n  ")));
            }
        } else if got.ok {
            failures.push(fail("the original rejects this pair; we accept it".into()));
        } else if let Some(msg) = case["error"].as_str() {
            if !got.stderr.contains(msg) && !IMPORTS_PYTHON.contains(&id) {
                failures.push(fail(format!("expected the original's message {msg:?}")));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} cases of {} agree with the original parser",
        cases.len(),
        manifest.display()
    );
}

/// Cases whose init function names a real Python module, which the original imports
/// and calls; we import none, so we reject them with our own message.
const IMPORTS_PYTHON: &[&str] = &[
    "syn-c1-initWFunc-attr",
    "syn-c1-initWFunc-type",
    "syn-a12-initWFunc-attr",
    "syn-a12-initWFunc-type",
];

/// Top-level keys of our 2012 dump in printed order (serde_json's map forgets it).
fn dict_order(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix(' '))
        .filter_map(|l| l.strip_prefix('"'))
        .filter_map(|l| {
            l.split_once("\": {")
                .map(|(k, _)| Value::String(k.to_string()))
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(convnet_originals),
    ignore = "needs CONVNET_ORIGINALS (the original configs)"
)]
fn original_configs_parse_as_the_original_parser_does() {
    let originals =
        PathBuf::from(std::env::var_os("CONVNET_ORIGINALS").expect("CONVNET_ORIGINALS is set"));
    assert!(
        originals.is_dir(),
        "CONVNET_ORIGINALS ({}) is not a directory",
        originals.display()
    );
    check_manifest(&golden().join("manifest.json"), &originals);
}

#[test]
fn synthetic_corpus_parses_as_the_original_parser_does() {
    let dir = golden().join("synthetic");
    check_manifest(&dir.join("manifest.json"), &dir);
}
