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

/// Resuming re-reads the parameter file over the checkpoint's layers: the result equals
/// what the original `parse_layers(def, params, model, ms['layers'])` makes of the same
/// checkpoint (golden/checkpoints/*/ckpt-p2.reparsed.json, see the README there).
#[test]
fn checkpoint_layers_take_a_new_parameter_pass_as_the_original() {
    use convnet::config::{reparse_params, Model};
    for gen in ["c1", "a12"] {
        let ckpt = convnet::checkpoint::load(&root().join(gen).join("ckpt-p2")).unwrap();
        let layers = ckpt.get("model_state").unwrap().get("layers").unwrap();
        let mut net = convnet::checkpoint::model::layers_from(&layers).unwrap();
        let model = Model {
            data_dims: vec![],
            num_classes: 10,
            num_gpus: 1,
            conserve_mem: 1,
            seed: 0,
        };
        reparse_params(
            &mut net,
            &root().join(format!("layers-{gen}.cfg")),
            &root().join(format!("layer-params-{gen}.cfg")),
            &model,
        )
        .unwrap();
        let ours: serde_json::Value = serde_json::from_str(&net.to_json()).unwrap();
        let theirs = expected(&root().join(gen).join("ckpt-p2.reparsed.json"));
        assert_eq!(ours, theirs, "{gen}");
        if let serde_json::Value::Object(_) = &theirs {
            // The 2012 dict iterates in the order Python 2.7 gives the unpickled dict.
            let text =
                std::fs::read_to_string(root().join(gen).join("ckpt-p2.reparsed.json")).unwrap();
            let names: Vec<&str> = net
                .order()
                .iter()
                .map(|&i| net.layers[i]["name"].as_str().unwrap())
                .collect();
            let positions: Vec<usize> = names
                .iter()
                .map(|n| text.find(&format!("\"{n}\": {{\"")).unwrap())
                .collect();
            assert!(
                positions.windows(2).all(|w| w[0] < w[1]),
                "{gen}: layer order {names:?}"
            );
        }
    }
}
