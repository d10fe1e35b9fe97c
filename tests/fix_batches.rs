//! `convnet fix-batches imgnet|flickr` (2012 fix-big-imgnet.py, fix-flickr.py) against
//! what the original scripts made of the same source batches (golden/fix-batches), and
//! its errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("convnet-fix-batches-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fix_batches(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .current_dir(root())
        .arg("fix-batches")
        .args(args)
        .output()
        .unwrap()
}

/// A pickle's contents as our JSON form.
fn json(path: &Path) -> String {
    let mut s = String::new();
    convnet::checkpoint::value::to_json(&convnet::checkpoint::load(path).unwrap(), &mut s);
    s
}

#[test]
fn both_scripts_write_what_the_originals_wrote() {
    for script in ["imgnet", "flickr"] {
        let golden = root().join("golden/fix-batches");
        let dst = scratch(script);
        let src = golden.join(format!("src-{script}"));
        let out = fix_batches(&[
            script,
            "--src",
            src.to_str().unwrap(),
            "--dst",
            dst.to_str().unwrap(),
            "--batches=3",
            "--batch-size=3",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = std::fs::read_to_string(golden.join(format!("{script}.out"))).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "{script}: standard output"
        );
        let mut names: Vec<_> = std::fs::read_dir(golden.join(script))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        let mut ours: Vec<_> = std::fs::read_dir(&dst)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        ours.sort();
        assert_eq!(ours, names, "{script}: files written");
        for n in names {
            assert_eq!(
                json(&dst.join(&n)),
                json(&golden.join(script).join(&n)),
                "{script}: {n:?}"
            );
        }
        let _ = std::fs::remove_dir_all(&dst);
    }
}

#[test]
fn missing_or_malformed_sources_are_errors() {
    let dst = scratch("errors");
    let src = root().join("golden/fix-batches/src-flickr");
    // A fourth source batch does not exist: the script's IOError, here an error.
    let out = fix_batches(&[
        "flickr",
        "--src",
        src.to_str().unwrap(),
        "--dst",
        dst.to_str().unwrap(),
        "--batches=4",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("src-flickr/3"), "{err}");
    // An imgnet label that is not a (wnid, label) pair (an output batch as source), then
    // a file that is not a batch tuple.
    let bad = scratch("bad");
    let golden = root().join("golden/fix-batches");
    for (first, want) in [
        (
            "imgnet/data_batch_2002",
            "0: a label is not a (wnid, label) pair",
        ),
        (
            "src-imgnet/0",
            "1: not a (jpeg_strings, orig_sizes, labels) tuple",
        ),
    ] {
        std::fs::copy(golden.join(first), bad.join("0")).unwrap();
        std::fs::write(bad.join("1"), b"\x80\x02K\x07.").unwrap();
        let out = fix_batches(&[
            "imgnet",
            "--src",
            bad.to_str().unwrap(),
            "--dst",
            dst.to_str().unwrap(),
            "--batches=2",
        ]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
    }
    // The scripts' own paths, absent here.
    let out = fix_batches(&["imgnet"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/ais/gobi3/u/ilya/jpg_valid_2010_85/0"));
    let _ = std::fs::remove_dir_all(&dst);
    let _ = std::fs::remove_dir_all(&bad);
}
