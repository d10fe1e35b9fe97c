//! Checkpoints written by the original convnet.py of both generations (plain, zipped,
//! gzipped; protocols 0, 1, 2; a checkpoint directory) decode to what Python 2.7 + numpy
//! read from them (golden/checkpoints/README.md says how both were made).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/checkpoints")
}

/// `shownet -f PATH --dump-json`, parsed.
fn dump(path: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shownet"))
        .arg("-f")
        .arg(path)
        .arg("--dump-json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn expected(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every `X.expected.json` with the file it describes; a directory `D.expected/` holds
/// the expectations of the files of checkpoint directory `D/`.
fn cases(dir: &Path, out: &mut Vec<(PathBuf, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            cases(&path, out);
        } else if let Some(subject) = name.strip_suffix(".expected.json") {
            let parent = dir.to_string_lossy();
            let subject_dir = parent
                .strip_suffix(".expected")
                .map_or_else(|| dir.to_path_buf(), PathBuf::from);
            out.push((subject_dir.join(subject), path));
        }
    }
}

#[test]
fn original_checkpoints_and_batches_decode_as_python_reads_them() {
    let mut all = Vec::new();
    cases(&root(), &mut all);
    assert!(all.len() >= 20, "only {} files found", all.len());
    for (file, json) in &all {
        assert_eq!(dump(file), expected(json), "{}", file.display());
    }
}

#[test]
fn a_checkpoint_directory_means_its_newest_file_in_natural_order() {
    for gen in ["c1", "a12"] {
        let dir = std::fs::read_dir(root().join(gen))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_dir() && !p.to_string_lossy().ends_with(".expected"))
            .unwrap();
        let newest =
            PathBuf::from(format!("{}.expected", dir.display())).join("1.10.expected.json");
        assert_eq!(
            dump(&dir),
            expected(&newest),
            "{gen}: 1.10 is newer than 1.2 and 1.3"
        );
    }
}
