//! The `convnet` command line as a user runs it: our reference nets parse, the dump is
//! JSON, bad input gives a clear message naming file, layer and key, and exit 1.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn convnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A scratch directory of config files for one test.
fn scratch(test: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convnet-cli-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, body) in files {
        std::fs::write(dir.join(name), body).unwrap();
    }
    dir
}

const NETS: &[(&str, &[&str])] = &[
    ("cifar10-80sec", &["--data-dims=3072,1"]),
    ("cifar10-18pct", &["--data-dims=3072,1"]),
    ("cifar10-conv-local", &["--data-dims=1728,1"]),
    (
        "alexnet-2012-2gpu",
        &["--data-dims=150528,1", "--num-classes=1000", "--gpu=0,1"],
    ),
    (
        "alexnet-2012-1gpu",
        &["--data-dims=150528,1", "--num-classes=1000"],
    ),
];

#[test]
fn our_reference_nets_parse_cleanly() {
    for (net, extra) in NETS {
        let def = format!("layer-defs/{net}.cfg");
        let params = format!("params/{net}.cfg");
        let mut args = vec!["--layer-def", &def, "--layer-params", &params];
        args.extend_from_slice(extra);
        // Without the data, save and range options the original's rules stop a run;
        // --dump-layers excuses them.
        let out = convnet(&args);
        assert_eq!(out.status.code(), Some(1), "{net}");
        assert!(text(&out.stderr).contains(" not supplied\nconvnet usage:"));
        args.push("--dump-layers");
        let out = convnet(&args);
        assert!(out.status.success(), "{net}: {}", text(&out.stderr));
        let summary = text(&out.stderr);
        assert!(
            summary.starts_with("Initialized data layer 'data'"),
            "{net}: {summary}"
        );
        let dump: Value = serde_json::from_slice(&out.stdout).unwrap();
        let layers: Vec<&Value> = match &dump {
            Value::Array(l) => l.iter().collect(),
            Value::Object(m) => m.values().collect(),
            _ => panic!("{net}: dump is neither list nor dict"),
        };
        assert!(layers.iter().any(|l| l["type"] == "cost.logreg"), "{net}");
    }
}

#[test]
fn alexnet_towers_and_shapes() {
    let out = convnet(&[
        "--layer-def=layer-defs/alexnet-2012-2gpu.cfg",
        "--layer-params=params/alexnet-2012-2gpu.cfg",
        "--data-dims=150528,1",
        "--num-classes=1000",
        "--gpu=0,1",
        "--dump-layers",
    ]);
    let net: Value = serde_json::from_slice(&out.stdout).unwrap();
    let conv1b = &net["conv1b"];
    assert_eq!(conv1b["gpu"], 1);
    assert_eq!(conv1b["modulesX"], 55);
    assert_eq!(conv1b["weights"][0]["shape"], serde_json::json!([363, 48]));
    assert_eq!(net["conv3a"]["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(
        net["fc6a"]["weights"][0]["shape"],
        serde_json::json!([4608, 2048])
    );
    assert_eq!(net["rnorm1a"]["minDiv"], 2.0);
    assert_eq!(net["fc8"]["schedW"]["type"], "dexp");
    // The 2012 parser never shares activity matrices (its consumer count is always 0).
    assert!(net
        .as_object()
        .unwrap()
        .values()
        .all(|l| l["actsTarget"] == -1 && l["actsGradTarget"] == -1));
}

#[test]
fn two_tower_net_needs_two_gpus() {
    let out = convnet(&[
        "--layer-def=layer-defs/alexnet-2012-2gpu.cfg",
        "--layer-params=params/alexnet-2012-2gpu.cfg",
        "--data-dims=150528,1",
        "--num-classes=1000",
        "--gpu=0",
        "--dump-layers",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "layer-defs/alexnet-2012-2gpu.cfg: Layer 'conv1b': parameter 'gpu' must be one of '0'"
        ),
        "{err}"
    );
}

#[test]
fn errors_name_file_layer_and_key() {
    let def = "[data]\ntype=data\ndataIdx=0\n\n[labels]\ntype=data\ndataIdx=1\n\n\
               [fc10]\ntype=fc\ninputs=data\noutputs=10\ninitW=0.01\n\n\
               [probs]\ntype=softmax\ninputs=fc10\n\n[logprob]\ntype=cost.logreg\ninputs=labels,probs\n";
    let dir = scratch(
        "errors",
        &[
            ("def.cfg", def),
            (
                "params.cfg",
                "[fc10]\nepsW=0.001\nepsB=0.002\nmomW=0.9\nmomB=0.9\n\n[logprob]\ncoeff=1\n",
            ),
        ],
    );
    let run = |def: &str, params: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_convnet"))
            .arg("--layer-def")
            .arg(dir.join(def))
            .arg("--layer-params")
            .arg(dir.join(params))
            .arg("--dump-layers")
            .output()
            .unwrap();
        (out.status.code(), text(&out.stderr))
    };
    let (code, err) = run("def.cfg", "params.cfg");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("params.cfg: Layer 'fc10': required parameter 'wc' missing"),
        "{err}"
    );

    let (code, err) = run("missing.cfg", "params.cfg");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("Layer definition file '") && err.contains("missing.cfg' does not exist"),
        "{err}"
    );

    std::fs::write(
        dir.join("junk.cfg"),
        [0u8, 159, 146, 150, b'\n', b'=', b'\n'],
    )
    .unwrap();
    let (code, err) = run("junk.cfg", "params.cfg");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("junk.cfg: file contains no section headers"),
        "{err}"
    );

    std::fs::write(
        dir.join("bad.cfg"),
        def.replace("outputs=10", "outputs=ten"),
    )
    .unwrap();
    let (code, err) = run("bad.cfg", "params.cfg");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("bad.cfg: Layer 'fc10': parameter 'outputs' must be int"),
        "{err}"
    );
}

#[test]
fn compat_auto_picks_the_generation() {
    let out = convnet(&[
        "--layer-def=layer-defs/cifar10-80sec.cfg",
        "--layer-params=params/cifar10-80sec.cfg",
        "--dump-layers",
    ]);
    assert!(
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .is_array(),
        "2011 gives a list"
    );
    let out = convnet(&[
        "--layer-def=layer-defs/cifar10-80sec.cfg",
        "--layer-params=params/cifar10-80sec.cfg",
        "--compat=2012",
        "--dump-layers",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the 2012 parser wants gpu= on layers reading data"
    );
}

/// Save a checkpoint of our 80sec net as save_state would (layers + op), in `dir`.
fn save_80sec_checkpoint(dir: &Path) -> PathBuf {
    use convnet::checkpoint::{model, save, value::PyObj, writer};
    use convnet::config::{parse_layers, Generation, Model};
    use convnet::options::Options;
    let def = root().join("layer-defs/cifar10-80sec.cfg");
    let params = root().join("params/cifar10-80sec.cfg");
    let m = Model {
        data_dims: vec![3072, 1],
        num_classes: 10,
        num_gpus: 1,
        conserve_mem: 0,
        seed: 1,
    };
    let net = parse_layers(Generation::C1, &def, &params, &m, &mut Vec::new()).unwrap();
    let mut op = Options::convnet(Generation::C1);
    op.set("layer_def", def.to_str().unwrap()).unwrap();
    op.set("layer_params", params.to_str().unwrap()).unwrap();
    for (k, v) in [
        ("train_batch_range", "1-5"),
        ("test_batch_range", "6"),
        ("data_path", "/data"),
        ("save_path", "/save"),
        ("dp_type", "cifar"),
    ] {
        op.set(k, v).unwrap();
    }
    op.finish_parse().unwrap();
    op.eval_expr_defaults().unwrap();
    let empty = || std::rc::Rc::new(PyObj::List(Default::default()));
    let ckpt = model::checkpoint(model::layers(&net), empty(), empty(), 1, 5, op.to_pyobj());
    save(
        &dir.join("ConvNet__2026-11-28_00.00.00"),
        1,
        5,
        &writer::dumps(&ckpt),
        true,
        5000,
    )
    .unwrap()
}

#[test]
fn resume_rereads_the_parameter_file_over_a_checkpoint() {
    let dir = scratch(
        "resume",
        &[(
            "new-params.cfg",
            &std::fs::read_to_string(root().join("params/cifar10-80sec.cfg"))
                .unwrap()
                .replace("epsW=0.001", "epsW=0.0005"),
        )],
    );
    let file = save_80sec_checkpoint(&dir);
    let ckpt_dir = file.parent().unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_convnet"))
            .arg("-f")
            .arg(ckpt_dir)
            .args(extra)
            .arg("--dump-layers")
            .output()
            .unwrap();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    // As saved: the old learning rates; nothing is printed (no definition pass).
    let (code, out, err) = run(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
    let before: Value = serde_json::from_str(&out).unwrap();
    let conv1 = before
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "conv1")
        .unwrap();
    assert_eq!(conv1["epsW"][0], 0.001);
    // New --layer-params: its learning rates take effect.
    let new_params = dir.join("new-params.cfg");
    let (code, out, err) = run(&["--layer-params", new_params.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let after: Value = serde_json::from_str(&out).unwrap();
    let conv1 = after
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "conv1")
        .unwrap();
    assert_eq!(conv1["epsW"][0], 0.0005);
    // --layer-def is set once.
    let (code, _, err) = run(&["--layer-def", "other.cfg"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("Option --layer-def (Layer definition file) cannot be changed"),
        "{err}"
    );
    // Not a checkpoint.
    let out = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .arg("-f")
        .arg(&new_params)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Error loading checkpoint"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn without_a_checkpoint_both_files_are_required() {
    let out = convnet(&["--layer-params=params/cifar10-80sec.cfg", "--dump-layers"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Option --layer-def (Layer definition file) not supplied"));
}

/// `--bench` with `CONVNET_PROFILE=1` prints each layer's time per minibatch in fprop,
/// bprop and update, and the time outside the layers, before the bench lines.
#[test]
fn bench_profile_lists_every_layer() {
    let out = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .current_dir(root())
        .env("CONVNET_PROFILE", "1")
        .args([
            "--layer-def=layer-defs/cifar10-80sec.cfg",
            "--layer-params=params/cifar10-80sec.cfg",
            "--data-dims=3072,1",
            "--mini=8",
            "--bench=1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let profile: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("profile: "))
        .collect();
    assert!(
        profile
            .iter()
            .any(|l| l.starts_with("profile: conv2 (conv): fprop ")
                && l.contains(" ms, bprop ")
                && l.ends_with(" ms")),
        "{stdout}"
    );
    assert_eq!(profile.len(), 17, "16 layers and the rest: {stdout}");
    assert!(profile[16].starts_with("profile: outside the layers: "));
    assert!(stdout.trim_end().ends_with(" images/s"));
}
