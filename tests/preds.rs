//! `convnet avg-test`, `convnet avg-valid`, `convnet txt-preds` and `convnet test-log`
//! (the 2012 scripts avg-test.py, avg-valid.py, txt-preds.py and test.py) give the
//! original scripts' outputs
//! (golden/preds/README.md, golden/testlog/README.md): the printed lines exactly, the
//! summed predictions bit for bit.

use convnet::checkpoint::{self, value::PyObj};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn golden(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden/preds")
        .join(p)
}

fn convnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout_ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("convnet-preds-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The `data` array of a `test_preds_<n>` file: shape and element bits.
fn data(path: &Path) -> (Vec<u64>, Vec<u8>) {
    let obj = checkpoint::load(path).unwrap();
    let d = obj.get("data").unwrap();
    let PyObj::Array(a) = &*d else {
        panic!("{}: data is not an array", path.display())
    };
    let a = a.borrow();
    assert_eq!((a.dtype.kind, a.dtype.size), ('f', 4));
    (a.shape.clone(), a.c_order_le_bytes())
}

#[test]
fn avg_test_sums_as_the_original_script() {
    let out = scratch("avg");
    let dirs = format!(
        "{},{}",
        golden("in/m1").display(),
        golden("in/m2").display()
    );
    let log = stdout_ok(&convnet(&[
        "avg-test",
        &dirs,
        out.to_str().unwrap(),
        "0.3,0.7",
    ]));
    assert_eq!(
        log,
        std::fs::read_to_string(golden("avg-test.log")).unwrap()
    );
    for b in [1, 2, 10] {
        let name = format!("test_preds_{b}");
        assert_eq!(
            data(&out.join(&name)),
            data(&golden("out").join(&name)),
            "{name}"
        );
    }
}

/// Both modes of avg-valid.py: the errors for given coefficients, and the search.
#[test]
fn avg_valid_prints_what_the_original_script_printed() {
    let valid = golden("valid");
    for (models, coeffs, want) in [
        ("m1,m2", Some("0.3,0.7"), "avg-valid-coeffs.out"),
        ("m1,m2", Some("1,0.25"), "avg-valid-coeffs2.out"),
        ("m1,m2", None, "avg-valid-search.out"),
        ("m1", None, "avg-valid-search1.out"),
        ("m2,m1,m2", None, "avg-valid-search3.out"),
    ] {
        let dirs: Vec<String> = (models.split(','))
            .map(|m| golden(&format!("in/{m}")).display().to_string())
            .collect();
        let dirs = dirs.join(",");
        let mut args = vec!["avg-valid", &dirs];
        args.extend(coeffs);
        args.extend(["--valid-path", valid.to_str().unwrap()]);
        let got = stdout_ok(&convnet(&args));
        assert_eq!(
            got,
            std::fs::read_to_string(golden(want)).unwrap(),
            "{want}"
        );
    }
}

#[test]
fn txt_preds_prints_the_original_top_fives() {
    for (dir, want) in [("out", "txt-preds.txt"), ("in/m1", "txt-preds-m1.txt")] {
        let got = stdout_ok(&convnet(&["txt-preds", golden(dir).to_str().unwrap()]));
        assert_eq!(got, std::fs::read_to_string(golden(want)).unwrap(), "{dir}");
    }
}

/// What the scripts would crash on is a clear error and exit status 1.
#[test]
fn bad_inputs_are_errors() {
    let dir = scratch("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    let out = convnet(&["avg-test", dir.to_str().unwrap(), "/tmp/never", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("notes.txt: not a test_preds_<n> file"),
        "{err}"
    );
    let out = convnet(&["txt-preds", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let m1 = golden("in/m1");
    let out = convnet(&["avg-test", m1.to_str().unwrap(), "/tmp/never", "x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("coefficient 'x' is not a number"), "{err}");
    // avg-valid: no validation batches where it looks; a file that is not a batch.
    let out = convnet(&[
        "avg-valid",
        m1.to_str().unwrap(),
        "--valid-path",
        "/nonexistent",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("/nonexistent/batches.meta"), "{err}");
    let valid = scratch("valid");
    std::fs::create_dir_all(&valid).unwrap();
    for f in ["batches.meta", "data_batch_1", "data_batch_2"] {
        std::fs::copy(golden("valid").join(f), valid.join(f)).unwrap();
    }
    // The meta dict in place of batch 10.
    std::fs::copy(golden("valid/batches.meta"), valid.join("data_batch_10")).unwrap();
    let out = convnet(&[
        "avg-valid",
        m1.to_str().unwrap(),
        "1",
        "--valid-path",
        valid.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("data_batch_10: not a (jpeg_strings, orig_sizes, labels) tuple"),
        "{err}"
    );
}

#[test]
fn test_log_averages_as_the_original_script() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/testlog");
    for name in ["80sec-fmnist", "edge"] {
        let log = dir.join(format!("{name}.log"));
        let got = stdout_ok(&convnet(&["test-log", log.to_str().unwrap()]));
        let want = std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn test_log_errors_where_the_script_crashed() {
    let d = scratch("testlog");
    std::fs::create_dir_all(&d).unwrap();
    for (name, text, why) in [
        ("none.log", "no batches here\n", "no 'batch N:"),
        (
            "bad.log",
            "batch 1: ({'logprob': [1.2.3]}, 5)\n",
            "line 1: invalid literal",
        ),
        ("zero.log", "batch 1: ({'logprob': [0.5]}, 0)\n", "no cases"),
    ] {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        let out = convnet(&["test-log", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
    }
    let missing = convnet(&["test-log", d.join("missing.log").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1));
}
