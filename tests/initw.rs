//! Our built-in `initw` (2012 initw.py with layer.py's `call_init_func`): weights and
//! biases copied from another model's checkpoint as the original parser copied them
//! (golden/initw), and its shape error.

use convnet::config::value::Value;
use convnet::config::{parse_layers, Generation, Model};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// `CONVNET_INITW_SOURCE` is one per process: the tests that set it run one at a time.
static SOURCE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn source_lock() -> std::sync::MutexGuard<'static, ()> {
    SOURCE.lock().unwrap_or_else(|e| e.into_inner())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A parse's result and printed lines.
type Parsed = (
    Result<convnet::config::Net, convnet::config::ConfigError>,
    Vec<String>,
);

/// Parses golden/initw/layers.cfg for `dims` inputs with initw reading ckpt-p2.
fn parse(dims: i64) -> Parsed {
    parse_def(&root().join("golden/initw/layers.cfg"), dims)
}

/// Parses `def` (with golden/checkpoints' parameters) for `dims` inputs with initw
/// reading ckpt-p2.
fn parse_def(def: &std::path::Path, dims: i64) -> Parsed {
    std::env::set_var(
        "CONVNET_INITW_SOURCE",
        root().join("golden/checkpoints/a12/ckpt-p2"),
    );
    let model = Model {
        data_dims: vec![dims, 1],
        num_classes: 10,
        num_gpus: 1,
        conserve_mem: 0,
        seed: 7,
    };
    let mut log = Vec::new();
    let net = parse_layers(
        Generation::A12,
        def,
        &root().join("golden/checkpoints/layer-params-a12.cfg"),
        &model,
        &mut log,
    );
    (net, log)
}

/// What the golden records of one array.
fn describe(v: &Value) -> serde_json::Value {
    let Value::Array(a) = v else {
        panic!("not an array")
    };
    let mut h = Sha256::new();
    for x in &a.data {
        h.update(x.to_le_bytes());
    }
    let both = a.rows <= 1 || a.cols <= 1;
    serde_json::json!({
        "dtype": "float32",
        "order": if a.fortran && !both { "F" } else { "C" },
        "sha256": format!("{:x}", h.finalize()),
        "shape": [a.rows, a.cols],
    })
}

#[test]
fn weights_and_biases_come_from_the_source_checkpoint() {
    let _one_at_a_time = source_lock();
    let (net, log) = parse(3072);
    let net = net.unwrap();
    let want: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("golden/initw/expected-3072.json")).unwrap(),
    )
    .unwrap();
    let printed: Vec<&str> = want["printed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(log, printed);
    for name in ["conv1", "fc10"] {
        let l = net
            .layers
            .iter()
            .find(|l| l.get("name").and_then(Value::as_str) == Some(name))
            .unwrap();
        let first = |k: &str| l[k].as_list().unwrap()[0].clone();
        for (key, v) in [
            ("weights0", first("weights")),
            ("weightsInc0", first("weightsInc")),
            ("biases", l["biases"].clone()),
            ("biasesInc", l["biasesInc"].clone()),
        ] {
            assert_eq!(describe(&v), want[name][key], "{name} {key}");
        }
    }
}

#[test]
fn a_source_matrix_of_another_shape_is_the_originals_error() {
    let _one_at_a_time = source_lock();
    let (net, log) = parse(192);
    let want = std::fs::read_to_string(root().join("golden/initw/expected-192.out")).unwrap();
    let mut lines: Vec<&str> = want.trim_end().lines().collect();
    let message = lines.pop().unwrap();
    assert_eq!(log, lines);
    let err = net.unwrap_err();
    assert!(err.to_string().contains(message), "{err}");
}

/// Calls Python would refuse: a function initw lacks, and makew/makeb in each other's
/// place (their argument lists differ).
#[test]
fn wrong_functions_fail_as_python_calls_fail() {
    let _one_at_a_time = source_lock();
    let text = std::fs::read_to_string(root().join("golden/initw/layers.cfg")).unwrap();
    let dir = std::env::temp_dir().join(format!("convnet-initw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (from, to, want) in [
        (
            "initWFunc=initw.makew(conv1)",
            "initWFunc=initw.copyw(conv1)",
            "Layer 'conv1': 'module' object has no attribute 'copyw'.",
        ),
        (
            "initBFunc=initw.makeb(conv1)",
            "initBFunc=initw.makew(conv1)",
            "Layer 'conv1': makew() takes exactly 4 arguments (3 given).",
        ),
        (
            "initWFunc=initw.makew(conv1)",
            "initWFunc=initw.makeb(conv1)",
            "Layer 'conv1': makeb() got multiple values for keyword argument 'params'.",
        ),
        (
            "initWFunc=initw.makew(conv1)",
            "initWFunc=other.makew(conv1)",
            "Layer 'conv1': No module named other.",
        ),
    ] {
        let def = dir.join("layers.cfg");
        std::fs::write(&def, text.replace(from, to)).unwrap();
        let err = parse_def(&def, 3072).0.unwrap_err();
        assert!(err.to_string().contains(want), "{to}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `initCFunc=initw.makec(conv1)`: a randSparse layer's connectivity from the source
/// checkpoint (here one of our own, of the same net parsed with another seed), drawn
/// into the layer whatever the parser's own permutations were.
#[test]
fn connectivity_comes_from_the_source_checkpoint() {
    let _one_at_a_time = source_lock();
    use convnet::checkpoint::model;
    use convnet::checkpoint::value::PyObj;
    use std::rc::Rc;
    let syn = root().join("golden/parser/synthetic");
    let def = syn.join("a12/randsparse-default-fc.layers.cfg");
    let params = syn.join("c1/base.params.cfg");
    let parse_with = |def: &std::path::Path, seed: u64| {
        let model = Model {
            data_dims: vec![1024, 1],
            num_classes: 10,
            num_gpus: 1,
            conserve_mem: 0,
            seed,
        };
        parse_layers(Generation::A12, def, &params, &model, &mut Vec::new()).unwrap()
    };
    let conns = |net: &convnet::config::Net| {
        let l = net
            .layers
            .iter()
            .find(|l| l.get("name").and_then(Value::as_str) == Some("conv1"))
            .unwrap();
        l["filterConns"].clone()
    };
    let source = parse_with(&def, 7);
    let dir = std::env::temp_dir().join(format!("convnet-initw-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let none = || Rc::new(PyObj::None);
    let ckpt = model::checkpoint(model::layers(&source), none(), none(), 1, 1, none());
    let src_path = dir.join("1.1");
    std::fs::write(&src_path, convnet::checkpoint::writer::dumps(&ckpt)).unwrap();
    let text = std::fs::read_to_string(&def).unwrap();
    let with_c = dir.join("layers.cfg");
    std::fs::write(
        &with_c,
        text.replace("randSparse=1", "randSparse=1\ninitCFunc=initw.makec(conv1)"),
    )
    .unwrap();
    std::env::set_var("CONVNET_INITW_SOURCE", &src_path);
    let other = parse_with(&def, 8);
    assert_ne!(
        conns(&other),
        conns(&source),
        "seed 8 draws other permutations"
    );
    let copied = parse_with(&with_c, 8);
    assert_eq!(conns(&copied), conns(&source));
    let _ = std::fs::remove_dir_all(&dir);
}
