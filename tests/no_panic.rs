//! Property tests: the INI reader and both generations' layer parsers return a value or
//! an error for any input (random bytes, and random but plausible configs that reach
//! deep into the per-type checks); they never panic.

use convnet::config::ini::Ini;
use convnet::config::{parse_layers, py, Generation, Model};
use proptest::prelude::*;
use std::path::PathBuf;

fn model(dims: Vec<i64>, gpus: i64) -> Model {
    Model {
        data_dims: dims,
        num_classes: 10,
        num_gpus: gpus,
        conserve_mem: 0,
        seed: 1,
    }
}

fn write(tag: &str, n: u64, body: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "convnet-nopanic-{}-{tag}-{n}.cfg",
        std::process::id()
    ));
    std::fs::write(&p, body).unwrap();
    p
}

fn parse_both(def: &[u8], params: &[u8], dims: Vec<i64>, gpus: i64) {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (d, p) = (write("def", n, def), write("params", n, params));
    for gen in [Generation::C1, Generation::A12] {
        let _ = parse_layers(gen, &d, &p, &model(dims.clone(), gpus), &mut Vec::new());
    }
    let _ = std::fs::remove_file(d);
    let _ = std::fs::remove_file(p);
}

const TYPES: &[&str] = &[
    "data",
    "fc",
    "conv",
    "local",
    "softmax",
    "eltsum",
    "eltmax",
    "neuron",
    "pool",
    "rnorm",
    "cnorm",
    "cmrnorm",
    "nailbed",
    "blur",
    "resize",
    "rgb2yuv",
    "rgb2lab",
    "rscale",
    "cost.logreg",
    "cost.sum2",
    "treefc",
    "href",
    "concat",
    "hs",
    "cost.msm",
    "cost.crossent",
    "cost.crossent2",
    "cost.gsum2",
    "cost.tica",
    "cost.rflickr",
    "bogus",
];

const KEYS: &[&str] = &[
    "dataIdx",
    "inputs",
    "outputs",
    "initW",
    "initB",
    "channels",
    "filters",
    "filterSize",
    "padding",
    "stride",
    "groups",
    "partialSum",
    "sharedBiases",
    "randSparse",
    "filterChannels",
    "sizeX",
    "start",
    "outputsX",
    "pool",
    "size",
    "blocked",
    "neuron",
    "weightSource",
    "coeffs",
    "scale",
    "maxScale",
    "tgtSize",
    "keep",
    "gpu",
    "stdev",
    "center",
    "initWFunc",
    "initCFunc",
    "epsW",
    "epsB",
    "momW",
    "momB",
    "wc",
    "wball",
    "coeff",
    "pow",
    "minDiv",
    "schedW",
    "schedB",
    "quantF",
    "enable",
    "doMax",
    "setSize",
    "threads",
    "topk",
    "wcNormMin",
    "wcNormMax",
];

const VALUES: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "-1",
    "4",
    "16",
    "32",
    "64",
    "5",
    "0.5",
    "1.5",
    "0.001",
    "1e-3",
    "abc",
    "",
    "true",
    "0,1",
    "1,1",
    "3,3",
    "32,32",
    "0.01,0.01",
    "data",
    "data,labels",
    "l0",
    "l1",
    "l2",
    "l3",
    "l1,l2",
    "l0[1]",
    "l1[0]",
    "relu",
    "tanh[1,2]",
    "tanh[]",
    "brelu[1e-3]",
    "max",
    "avg",
    "rand",
    "maxabs",
    "dexp[tgtFactor=2,noiseStdev=0,numSteps=2]",
    "dexp[2,0,2]",
    "exp[tgtFactor=x,noiseStdev=0]",
    "m.f(a)",
    "%(x)s",
    "%",
    "99999999999999999999",
    "nan",
    "inf",
];

fn section() -> impl Strategy<Value = String> {
    (
        0..TYPES.len(),
        prop::collection::vec((0..KEYS.len(), 0..VALUES.len()), 0..10),
    )
        .prop_map(|(t, kvs)| {
            let mut s = format!("type={}\n", TYPES[t]);
            for (k, v) in kvs {
                s.push_str(&format!("{}={}\n", KEYS[k], VALUES[v]));
            }
            s
        })
}

fn config() -> impl Strategy<Value = String> {
    prop::collection::vec(section(), 1..7).prop_map(|secs| {
        let mut s =
            "[data]\ntype=data\ndataIdx=0\n\n[labels]\ntype=data\ndataIdx=1\n\n".to_string();
        for (i, body) in secs.iter().enumerate() {
            s.push_str(&format!("[l{i}]\n{body}\n"));
        }
        s
    })
}

/// Our reference nets with their data dims, as seeds for mutation.
const NETS: &[(&str, i64)] = &[
    ("cifar10-80sec", 3072),
    ("cifar10-18pct", 3072),
    ("cifar10-conv-local", 1728),
    ("alexnet-2012-1gpu", 150528),
];

fn net_lines(name: &str, dir: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(dir)
        .join(format!("{name}.cfg"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Replace a value, delete, duplicate or move a line.
fn mutate(mut lines: Vec<String>, edits: &[(u8, usize, usize)]) -> String {
    for &(op, a, b) in edits {
        if lines.is_empty() {
            break;
        }
        let (i, j) = (a % lines.len(), b % lines.len());
        match op % 4 {
            0 => {
                if let Some((k, _)) = lines[i].split_once('=') {
                    lines[i] = format!("{k}={}", VALUES[b % VALUES.len()]);
                }
            }
            1 => {
                lines.remove(i);
            }
            2 => {
                let l = lines[i].clone();
                lines.insert(j, l);
            }
            _ => lines.swap(i, j),
        }
    }
    lines.join("\n")
}

/// The (definition, parameter) file pairs of golden/parser/manifest.json, in the
/// original configs' directory.
fn original_pairs() -> Vec<(PathBuf, PathBuf)> {
    let root =
        PathBuf::from(std::env::var_os("CONVNET_ORIGINALS").expect("CONVNET_ORIGINALS is set"));
    let manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/parser/manifest.json");
    let cases: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    cases
        .iter()
        .map(|c| {
            (
                root.join(c["def"].as_str().unwrap()),
                root.join(c["params"].as_str().unwrap()),
            )
        })
        .collect()
}

proptest! {
    // 400 cases each by default; PROPTEST_CASES=n runs a longer search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400),
        ..ProptestConfig::default()
    })]

    #[test]
    fn ini_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(ini) = Ini::parse(&py::from_bytes(&bytes)) {
            for s in ini.sections().map(str::to_string).collect::<Vec<_>>() {
                for k in ini.raw_options(&s).unwrap().keys() {
                    let _ = ini.get(&s, k);
                }
            }
        }
    }

    #[test]
    fn parsers_never_panic_on_bytes(def in prop::collection::vec(any::<u8>(), 0..300),
                                    params in prop::collection::vec(any::<u8>(), 0..300)) {
        parse_both(&def, &params, vec![3072, 1], 2);
    }

    #[test]
    fn parsers_never_panic_on_mutated_reference_nets(net in 0..NETS.len(),
                                                     def_edits in prop::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..5),
                                                     param_edits in prop::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 0..3)) {
        let (name, dims) = NETS[net];
        let def = mutate(net_lines(name, "layer-defs"), &def_edits);
        let params = mutate(net_lines(name, "params"), &param_edits);
        // Small nets only: the AlexNet seed would allocate its full weights every case.
        let dims = if dims > 3072 { 3 * 32 * 32 } else { dims };
        parse_both(def.as_bytes(), params.as_bytes(), vec![dims, 1], 2);
    }

    #[test]
    #[cfg_attr(not(convnet_originals), ignore = "needs CONVNET_ORIGINALS (the original configs)")]
    fn parsers_never_panic_on_mutated_original_configs(pair in 0usize..1000,
                                                       def_edits in prop::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..5),
                                                       param_edits in prop::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 0..3)) {
        let pairs = original_pairs();
        let (def, params) = &pairs[pair % pairs.len()];
        let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap().lines().map(str::to_string).collect::<Vec<_>>();
        // Small images keep the random weights cheap; most ImageNet nets then stop at
        // their first size check, the CIFAR ones parse on.
        parse_both(mutate(read(def), &def_edits).as_bytes(), mutate(read(params), &param_edits).as_bytes(), vec![3 * 32 * 32, 1], 4);
    }

    #[test]
    fn parsers_never_panic_on_plausible_configs(def in config(), params in config(),
                                                d0 in prop::sample::select(vec![0i64, 1, 3, 12, 192, 3072, 768]),
                                                gpus in 0i64..3) {
        parse_both(def.as_bytes(), params.as_bytes(), vec![d0, 1], gpus);
    }
}
