//! The original's gradient check (`convnet --check-grads=1`, `ConvNet::check_gradients`)
//! on our gc nets (layer-defs/gc-2011.cfg, gc-2012.cfg): every weight matrix and bias
//! vector of a net with every layer type with weights and every neuron type whose
//! gradient the original gets right passes the original's test (relative error <
//! 0.02); the original's softrelu gradient bug is caught.

use convnet::config::{parse_layers, Generation, Model};
use convnet::net::{ConvNet, NetOptions};
use convnet::nvmatrix::NvMatrix;
use convnet::synthetic::{uniform, SplitMix64};
use std::path::Path;

const CASES: usize = 24;

fn data(dims: usize) -> Vec<NvMatrix> {
    let mut rng = SplitMix64::new(5);
    vec![
        NvMatrix::from_vec(dims, CASES, false, uniform(4, dims * CASES, 0.0, 1.0)),
        NvMatrix::from_vec(
            1,
            CASES,
            false,
            (0..CASES).map(|_| (rng.next_u64() % 10) as f32).collect(),
        ),
    ]
}

fn check(
    gen: Generation,
    def: &Path,
    params: &Path,
    dims: usize,
) -> (convnet::net::GcSummary, String) {
    let model = Model {
        data_dims: vec![dims as i64, 1],
        num_classes: 10,
        num_gpus: 1,
        conserve_mem: 0,
        seed: 3,
    };
    let net = parse_layers(gen, def, params, &model, &mut Vec::new()).unwrap();
    let opts = NetOptions {
        minibatch_size: 128,
        wupdate_freq: 1,
        random_seed: 1,
    };
    let mut cn = ConvNet::new(&net, opts).unwrap();
    let mut out = Vec::new();
    let s = cn.check_gradients(&data(dims), &mut out).unwrap();
    (s, String::from_utf8(out).unwrap())
}

#[test]
fn softrelu_gradient_bug_fails_the_check() {
    let dir = std::env::temp_dir().join(format!("convnet-gc-softrelu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let def = dir.join("layers.cfg");
    let params = dir.join("params.cfg");
    std::fs::write(
        &def,
        "[data]\ntype=data\ndataIdx=0\n\n[labels]\ntype=data\ndataIdx=1\n\n\
         [fc1]\ntype=fc\ninputs=data\noutputs=16\ninitW=0.5\nneuron=softrelu\ngpu=0\n\n\
         [fc2]\ntype=fc\ninputs=fc1\noutputs=10\ninitW=0.5\n\n\
         [probs]\ntype=softmax\ninputs=fc2\n\n[logprob]\ntype=cost.logreg\ninputs=labels,probs\ngpu=0\n",
    )
    .unwrap();
    let w = "epsW=0.01\nepsB=0.02\nmomW=0.9\nmomB=0.9\nwc=0\n";
    std::fs::write(
        &params,
        format!("[fc1]\n{w}\n[fc2]\n{w}\n[logprob]\ncoeff=1\n"),
    )
    .unwrap();
    // 2012: the 2011 memory optimiser would make the neuron layer compute in place,
    // which softrelu asserts against (as in the original).
    let (s, report) = check(Generation::A12, &def, &params, 192);
    assert!(
        report.contains("(****FAIL****) fc1 weights[0] GRADIENT CHECK"),
        "{report}"
    );
    assert!(s.failures >= 1);
}

/// `convnet --check-grads=1` with the dummy provider (128 cases), as the original ran
/// it: its report on stdout.
fn check_grads_cli(gen: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_convnet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            format!("--layer-def=layer-defs/gc-{gen}.cfg"),
            format!("--layer-params=params/gc-{gen}.cfg"),
            "--check-grads=1".into(),
            "--data-provider=dummy-cn-192".into(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn gc_net_2011_passes() {
    // conv1, local2, fc3 (2 inputs), fc4 (2 inputs): weights and biases; 2011 prints
    // only failures, then the summary.
    let report = check_grads_cli("2011");
    assert!(
        report.ends_with("------------------------\nALL 10 TESTS PASSED\n"),
        "{report}"
    );
    assert!(!report.contains("GRADIENT CHECK"), "{report}");
}

#[test]
fn gc_net_2012_passes() {
    // 2012 prints every test, layers in name order.
    let report = check_grads_cli("2012");
    assert!(
        report.contains("========================\n(PASS) conv1 weights[0] GRADIENT CHECK\n"),
        "{report}"
    );
    assert!(report.contains("(PASS) local2 biases GRADIENT CHECK"));
    assert!(!report.contains("FAIL"), "{report}");
    assert!(
        report.ends_with("------------------------\nALL 10 TESTS PASSED\n"),
        "{report}"
    );
}
