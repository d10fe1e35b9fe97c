//! The training driver (convnet.py + gpumodel.py port): the command line as the
//! original read it (getopt, required and excused options, the usage table), the
//! printing functions against the original's formats, the model-state bookkeeping, and
//! (ignored until the net is implemented) whole training runs on the golden CIFAR
//! batches.

use convnet::config::value::{Array, Value};
use convnet::config::{Generation, Net};
use convnet::driver::cli::{getopt, LongOpt};
use convnet::driver::format::{self, CostStyle, PyPrint};
use convnet::driver::state::{self, CostRecord, LocalTime};
use convnet::driver::train::{layer_name, print_costs, weight_summaries};
use convnet::net::Cost;
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

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convnet-driver-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const DEF_C1: &str = "--layer-def=golden/checkpoints/layers-c1.cfg";
const PARAMS_C1: &str = "--layer-params=golden/checkpoints/layer-params-c1.cfg";
const DEF_A12: &str = "--layer-def=golden/checkpoints/layers-a12.cfg";
const PARAMS_A12: &str = "--layer-params=golden/checkpoints/layer-params-a12.cfg";

// ---------------------------------------------------------------- command line

#[test]
fn missing_options_are_reported_in_the_originals_order_with_the_usage() {
    // Only the layer files: the original's parse loop (reverse dict order) meets
    // --train-range first.
    let out = convnet(&[DEF_C1, PARAMS_C1]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let mut lines = err.lines();
    assert_eq!(
        lines.next(),
        Some("Option --train-range (Data batch range: training) not supplied")
    );
    assert_eq!(lines.next(), Some("convnet usage:"));
    // Options with defaults first, by letter; then the required ones.
    assert!(
        err.contains("    [--check-grads <0/1>           ] - Check gradients and quit?"),
        "{err}"
    );
    assert!(
        err.contains("[--gpu <int,...>               ] - GPU override"),
        "{err}"
    );
    assert!(err.contains("[[-1] * num_gpus]"), "{err}");
    assert!(
        err.contains("     --train-range <int[-int]>       - Data batch range: training"),
        "{err}"
    );
    let first_required = err.find("     --data-path").unwrap();
    assert!(err.find("[--zip-save").unwrap() < first_required);
    assert!(out.stdout.is_empty());

    // Given everything but the layer definition file.
    let out = convnet(&[
        PARAMS_C1,
        "--train-range=1-2",
        "--test-range=3",
        "--data-path=/nowhere",
        "--save-path=/nowhere",
        "--data-provider=cifar",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr)
        .starts_with("Option --layer-def (Layer definition file) not supplied\nconvnet usage:"));
}

#[test]
fn the_data_provider_is_required_on_a_fresh_start() {
    // ConvNet sets --data-provider's default to None, which makes it required.
    let out = convnet(&[
        DEF_C1,
        PARAMS_C1,
        "--train-range=1-2",
        "--test-range=3",
        "--data-path=/nowhere",
        "--save-path=/nowhere",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("Option --data-provider (Data provider) not supplied"));
}

#[test]
fn unknown_and_ambiguous_options_are_getopt_errors() {
    for (args, msg) in [
        (vec!["--foo=1"], "option --foo not recognized"),
        (vec!["--te=1"], "option --te not a unique prefix"),
        (vec!["-x"], "option -x not recognized"),
        (vec!["--mini"], "option --mini requires argument"),
        (vec!["-f"], "option -f requires argument"),
        (
            vec!["--dump-layers=1"],
            "option --dump-layers must not have an argument",
        ),
        // A 2012 option in a 2011 run.
        (
            vec![DEF_C1, "--wupdate-freq=2"],
            "option --wupdate-freq not recognized",
        ),
    ] {
        let out = convnet(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            text(&out.stderr),
            format!("convnet: error: {msg}\n"),
            "{args:?}"
        );
    }
    let out = convnet(&["stray"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unexpected argument 'stray'"));
}

#[test]
fn values_are_parsed_by_the_options_parsers() {
    // All required options given, one unparsable value.
    let base = [
        DEF_C1,
        PARAMS_C1,
        "--train-range=1-2",
        "--test-range=3",
        "--data-path=/nowhere",
        "--save-path=/nowhere",
        "--data-provider=cifar",
    ];
    for (bad, msg) in [
        ("--mini=x", "Unable to parse option --mini (Minibatch size): argument is not an integer"),
        ("--test-only=2", "Unable to parse option --test-only (Test and quit?): argument is not a boolean"),
        ("--train-range=a-b", "Unable to parse option --train-range (Data batch range: training): argument is neither an integer nor a range"),
        ("--gpu=0,x", "Unable to parse option --gpu (GPU override): argument is not of the form int,..."),
    ] {
        let mut args = base.to_vec();
        args.push(bad);
        let out = convnet(&args);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert_eq!(text(&out.stderr), format!("convnet: error: {msg}\n"), "{bad}");
    }
}

#[test]
fn requires_rules_of_both_generations() {
    // 2011: --multiview-test needs --logreg-name (with -f every other option is excused).
    let out = convnet(&["-f", "/nowhere", "--multiview-test=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with(
        "Option --multiview-test (Cropped DP: test on multiple patches?) requires option --logreg-name (Cropped DP: logreg layer name (for --multiview-test))\nconvnet usage:"
    ));
    // 2012: --test-out needs --logreg-name and --multiview-test (letter order).
    let out = convnet(&["-f", "/nowhere", "--compat=2012", "--test-out=/tmp/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with(
        "Option --test-out (Output test case predictions to given path) requires option --logreg-name (Logreg cost layer name (for --test-out))"
    ));
    // 2012 has no such rule for --multiview-test.
    let out = convnet(&["-f", "/nowhere", "--compat=2012", "--multiview-test=1"]);
    assert!(
        text(&out.stderr).contains("Error loading checkpoint"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_grads_excuses_data_save_and_ranges_but_not_the_provider() {
    let out = convnet(&[DEF_C1, PARAMS_C1, "--check-grads=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("Option --data-provider (Data provider) not supplied"));
    // Even --check-grads=0 excuses them: the original asked whether it was given.
    let out = convnet(&[DEF_C1, PARAMS_C1, "--check-grads=0"]);
    assert!(text(&out.stderr).starts_with("Option --data-provider (Data provider) not supplied"));
}

#[test]
fn load_file_excuses_everything_and_reports_a_bad_checkpoint() {
    let out = convnet(&["-f", "/nowhere/at/all"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("convnet: error: Error loading checkpoint: "),
        "{err}"
    );
    // -fPATH and -f PATH are the same.
    let out = convnet(&["-f/nowhere/at/all"]);
    assert_eq!(text(&out.stderr), err);
}

#[test]
fn name_value_and_prefixes_as_getopt_reads_them() {
    let dump = |args: &[&str]| {
        let out = convnet(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let a = dump(&[DEF_C1, PARAMS_C1, "--dump-layers"]);
    let b = dump(&[
        "--layer-def",
        "golden/checkpoints/layers-c1.cfg",
        "--layer-p",
        "golden/checkpoints/layer-params-c1.cfg",
        "--dump-layers",
    ]);
    assert_eq!(a, b);
    assert!(a.starts_with('['), "2011 layers are a list");
    // The 2012 files are recognised as such.
    let c = dump(&[DEF_A12, PARAMS_A12, "--dump-layers"]);
    assert!(c.starts_with('{'), "2012 layers are a dict");
}

#[test]
fn data_provider_errors_list_the_registered_providers() {
    let dir = scratch("provider");
    let save = dir.to_str().unwrap();
    let out = convnet(&[
        DEF_C1,
        PARAMS_C1,
        "--train-range=1-2",
        "--test-range=3",
        "--data-path=/nowhere",
        &format!("--save-path={save}"),
        "--data-provider=imagenet",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("Unable to create data provider: No such data provider: imagenet\nAvailable data providers:\n"), "{err}");
    for p in [
        "    cifar: CIFAR",
        "    cifar-cropped: Cropped CIFAR",
        "    dummy-cn-n: Dummy ConvNet",
        "    default: The default data provider",
    ] {
        assert!(err.contains(p), "{p}: {err}");
    }
    // Nothing was saved, nothing parsed.
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn providers_come_before_the_layers_and_layer_errors_stop_the_run() {
    let dir = scratch("layers");
    std::fs::write(dir.join("params.cfg"), "[conv1]\nepsW=0.001\n").unwrap();
    let out = convnet(&[
        DEF_C1,
        &format!("--layer-params={}", dir.join("params.cfg").display()),
        "--train-range=1-2",
        "--test-range=3",
        "--data-path=golden/checkpoints/batches",
        &format!("--save-path={}", dir.display()),
        "--data-provider=cifar",
        "--mini=20",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    // The data layers were sized by the provider (3072 = 32x32x3 of the batches).
    assert!(
        stdout.starts_with("Initialized data layer 'data', producing 3072 outputs\n"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("params.cfg: Layer 'conv1'"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn getopt_semantics() {
    let long = [
        LongOpt {
            name: "mini".into(),
            has_arg: true,
        },
        LongOpt {
            name: "minimum".into(),
            has_arg: true,
        },
        LongOpt {
            name: "dump".into(),
            has_arg: false,
        },
    ];
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (opts, rest) = getopt(
        &args(&[
            "-fx",
            "--mini",
            "3",
            "--minim=4",
            "--dump",
            "--",
            "--mini=5",
        ]),
        &['f'],
        &long,
    )
    .unwrap();
    assert_eq!(
        opts,
        [
            ("-f", "x"),
            ("--mini", "3"),
            ("--minimum", "4"),
            ("--dump", "")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(rest, ["--mini=5"]);
    // An exact name wins over longer ones it prefixes; stops at the first non-option.
    let (opts, rest) = getopt(&args(&["--mini=1", "x", "--mini=2"]), &['f'], &long).unwrap();
    assert_eq!(opts.len(), 1);
    assert_eq!(rest, ["x", "--mini=2"]);
    assert_eq!(
        getopt(&args(&["--min=1"]), &['f'], &long).unwrap_err().0,
        "option --min not a unique prefix"
    );
}

// ---------------------------------------------------------------- printing

#[test]
fn numbers_print_as_python_2_printed_them() {
    assert_eq!(CostStyle::C1.value(std::f64::consts::LN_10), "2.302585");
    assert_eq!(CostStyle::C1.value(f64::NAN), "   nan");
    assert_eq!(CostStyle::C1.value(f64::INFINITY), "   inf");
    assert_eq!(CostStyle::C1.value(-0.5), "-0.500000");
    assert_eq!(CostStyle::A12.value(f64::NAN), "nan");
    assert_eq!(CostStyle::A12.value(0.9), "0.900000");
    assert_eq!(format::exp(0.012345678), "1.234568e-02");
    assert_eq!(format::exp(0.0), "0.000000e+00");
    assert_eq!(format::exp(1.5e-120), "1.500000e-120");
    assert_eq!(format::exp(123.0), "1.230000e+02");
    assert_eq!(format::train_time(0.4124), "(0.412 sec)");
    assert_eq!(format::iteration(12, 5), "12.5...");
    for (v, r) in [
        (2.3, "2.3"),
        (0.8800000000000001, "0.8800000000000001"),
        (460.0, "460.0"),
        (1e16, "1e+16"),
        (1234567890123456.0, "1234567890123456.0"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-1.5e-7, "-1.5e-07"),
        (1.25e20, "1.25e+20"),
        (f64::NAN, "nan"),
        (0.0, "0.0"),
    ] {
        assert_eq!(format::repr_float(v), r, "{v}");
    }
    assert_eq!(format::repr_str("logprob"), "'logprob'");
}

fn cost(values: &[(&str, &[f64])], cases: usize) -> Cost {
    let mut c = Cost {
        num_cases: cases,
        ..Default::default()
    };
    for (n, v) in values {
        c.values.insert(n.to_string(), (1.0, v.to_vec()));
    }
    c
}

#[test]
fn the_per_batch_line_of_both_generations() {
    let mut p = PyPrint::new(Vec::new());
    p.item(&format::iteration(1, 1));
    let mut rec = CostRecord::from_cost(&cost(&[("logprob", &[460.517, 180.0])], 200));
    print_costs(&mut p, &mut rec, CostStyle::C1).unwrap();
    p.line(&format::train_time(0.412));
    assert_eq!(
        String::from_utf8(p.into_inner()).unwrap(),
        "1.1... logprob:  2.302585, 0.900000 (0.412 sec)\n"
    );
    // The values are divided in place: the record keeps per-case averages.
    assert_eq!(rec.costs[0].1, vec![460.517 / 200.0, 0.9]);

    let mut p = PyPrint::new(Vec::new());
    p.item(&format::iteration(3, 2));
    let mut rec = CostRecord::from_cost(&cost(&[("logprob", &[1.0, 0.5, 0.25])], 1));
    print_costs(&mut p, &mut rec, CostStyle::A12).unwrap();
    assert_eq!(
        String::from_utf8(p.into_inner()).unwrap(),
        "3.2... logprob:  1.000000, 0.500000, 0.250000"
    );
}

#[test]
fn nan_or_inf_stops_with_status_1() {
    let mut p = PyPrint::new(Vec::new());
    p.item("1.1...");
    let mut rec = CostRecord::from_cost(&cost(&[("logprob", &[f64::NAN, 1.0])], 2));
    let stop = print_costs(&mut p, &mut rec, CostStyle::C1).unwrap_err();
    assert_eq!(stop.code, 1);
    assert_eq!(
        String::from_utf8(p.into_inner()).unwrap(),
        "1.1... logprob:     nan, 0.500000 ^ got nan or inf!\n"
    );
}

#[test]
fn several_costs_print_in_the_originals_dict_order() {
    // finishBatch built the dict from a std::map (sorted names); Python 2 iterates it in
    // hash order.
    let c = cost(
        &[
            ("zeta", &[1.0]),
            ("alpha", &[2.0]),
            ("logprob", &[3.0, 4.0]),
        ],
        1,
    );
    let rec = CostRecord::from_cost(&c);
    let mut names: Vec<&str> = vec!["alpha", "logprob", "zeta"];
    let order = convnet::config::dictorder::iteration_order(&names);
    names = order.into_iter().map(|i| names[i]).collect();
    assert_eq!(
        rec.costs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        names
    );
    assert_eq!(
        CostRecord::from_cost(&cost(&[("logprob", &[460.0, 180.0])], 200)).repr(),
        "({'logprob': [460.0, 180.0]}, 200)"
    );
}

#[test]
fn test_outputs_aggregate_by_summing() {
    let a = CostRecord::from_cost(&cost(&[("logprob", &[1.0, 2.0])], 10));
    let b = CostRecord::from_cost(&cost(&[("logprob", &[3.0, 4.0])], 20));
    let s = CostRecord::aggregate(&[a.clone(), b]);
    assert_eq!(s.costs[0].1, vec![4.0, 6.0]);
    assert_eq!(s.num_cases, 30);
    // The pickled form round-trips.
    let back = CostRecord::from_pyobj(&a.to_pyobj()).unwrap();
    assert_eq!(back, a);
}

#[test]
fn checkpoint_outputs_read_from_the_originals_checkpoint() {
    let path = root().join("golden/checkpoints/c1/ckpt-p2");
    let ms = convnet::checkpoint::load(&path)
        .unwrap()
        .get("model_state")
        .unwrap();
    let train = state::outputs_from_pyobj(ms.get("train_outputs")).unwrap();
    assert_eq!(train.len(), 2);
    assert_eq!(
        train[1].costs,
        vec![("logprob".to_string(), vec![2.29, 0.89])]
    );
    assert_eq!(train[1].num_cases, 20);
}

fn layer(name: &str, weights: Option<Vec<Vec<f32>>>) -> convnet::config::value::Dict {
    let mut d = convnet::config::value::Dict::new();
    d.insert("name".into(), Value::Str(name.into()));
    if let Some(ws) = weights {
        let arr = |v: &[f32]| {
            Value::Array(Array {
                rows: 1,
                cols: v.len(),
                fortran: false,
                data: v.to_vec(),
            })
        };
        d.insert(
            "weights".into(),
            Value::List(ws.iter().map(|w| arr(w)).collect()),
        );
        d.insert(
            "weightsInc".into(),
            Value::List(ws.iter().map(|w| arr(&vec![0.0; w.len()])).collect()),
        );
        d.insert("biases".into(), arr(&[0.5, -0.5]));
        d.insert("biasesInc".into(), arr(&[0.0, 0.0]));
    }
    d
}

#[test]
fn the_weight_summaries_of_the_test_block() {
    let net = Net {
        generation: Generation::C1,
        layers: vec![
            layer("fc2", Some(vec![vec![1.0, -3.0], vec![0.25]])),
            layer("probs", None),
            layer("fc1", Some(vec![vec![2.0]])),
        ],
    };
    let mut p = PyPrint::new(Vec::new());
    p.item("-------------------------------------------------------");
    for (line, t) in weight_summaries(&net) {
        if line {
            p.line(&t);
        } else {
            p.item(&t);
        }
    }
    p.line("");
    let expected = "------------------------------------------------------- \n\
Layer 'fc2' weights[0]: 2.000000e+00 [0.000000e+00]\n\
Layer 'fc2' weights[1]: 2.500000e-01 [0.000000e+00] \n\
Layer 'fc2' biases: 5.000000e-01 [0.000000e+00] \n\
Layer 'fc1' weights[0]: 2.000000e+00 [0.000000e+00] \n\
Layer 'fc1' biases: 5.000000e-01 [0.000000e+00] \n";
    assert_eq!(String::from_utf8(p.into_inner()).unwrap(), expected);
    // 2012: by name.
    let net = Net {
        generation: Generation::A12,
        ..net
    };
    let ops = weight_summaries(&net);
    assert!(ops[1].1.starts_with("Layer 'fc1' weights[0]"), "{ops:?}");
}

#[test]
fn mean_abs_is_numpys_float32_pairwise_mean() {
    assert_eq!(format::mean_abs_f32(&[1.0, -2.0, 3.0]), 2.0);
    // numpy: n.mean(n.abs(n.full(1000, 0.1, n.float32))) is 0.10000002.
    assert_eq!(format::mean_abs_f32(&[0.1f32; 1000]), 0.10000002f32);
    // n.mean(n.abs(x)) with x[i] = float32((i*7919 % 1000)/997.0 - 0.5), as bits.
    for (n, bits) in [
        (5, 1051593206u32),
        (100, 1048701198),
        (1000, 1048601275),
        (12345, 1048600973),
        (100003, 1048601447),
    ] {
        let x: Vec<f32> = (0..n)
            .map(|i: u64| ((i * 7919 % 1000) as f64 / 997.0 - 0.5) as f32)
            .collect();
        assert_eq!(format::mean_abs_f32(&x).to_bits(), bits, "{n}");
    }
}

// ---------------------------------------------------------------- model state

#[test]
fn checkpoint_directory_name_and_times() {
    // 2012-08-03 14:28:23 UTC, a Friday.
    let t = LocalTime::from_unix_utc(1_344_004_103);
    assert_eq!(
        state::checkpoint_dir_name(&t),
        "ConvNet__2012-08-03_14.28.23"
    );
    assert_eq!(t.asctime(), "Fri Aug  3 14:28:23 2012");
    let t = LocalTime::from_unix_utc(1_795_836_287);
    assert_eq!(t.asctime(), "Sat Nov 28 03:24:47 2026");
    let now = LocalTime::now();
    assert!(now.year >= 2024 && (1..=12).contains(&now.month));
}

#[test]
fn paths_join_as_os_path_did() {
    assert_eq!(state::path_join("/save", "ConvNet__x"), "/save/ConvNet__x");
    assert_eq!(state::path_join("/save/", "ConvNet__x"), "/save/ConvNet__x");
    assert_eq!(state::path_join("", "ConvNet__x"), "ConvNet__x");
    assert_eq!(state::path_join("/save", "/abs/ckpt"), "/abs/ckpt");
    assert_eq!(state::dirname("/a/b/1.2"), "/a/b");
    assert_eq!(state::dirname("1.2"), "");
    assert_eq!(state::dirname("/1.2"), "/");
}

#[test]
fn batches_done_progress_and_the_resumed_position() {
    let r = [1, 2, 3, 4, 5];
    assert_eq!(state::num_batches_done(&r, 1, 1), 1);
    assert_eq!(state::num_batches_done(&r, 2, 3), 8);
    assert_eq!(state::progress(&r, 2, 1, 1), 0.0);
    assert_eq!(state::progress(&r, 2, 2, 1), 0.5);
    // The batch past the last epoch (the loop's off-by-one) is clipped to 1.
    assert_eq!(state::progress(&r, 2, 3, 1), 1.0);
    assert_eq!(state::advanced(&r, 1, 2), (1, 3));
    assert_eq!(state::advanced(&r, 1, 5), (2, 1));
    assert_eq!(
        state::advanced(&r, 4, 9),
        (4, 2),
        "not in the range: its first, then on"
    );
    assert_eq!(state::advanced(&[6], 3, 6), (4, 6));
}

#[test]
fn unshare_names() {
    assert_eq!(layer_name("conv2"), Some(("conv2".into(), None)));
    assert_eq!(layer_name(" conv2[1] "), Some(("conv2".into(), Some(1))));
    assert_eq!(layer_name("conv2[x]"), None);
    assert_eq!(layer_name("a b"), None);
    assert_eq!(layer_name(""), None);
}

// ---------------------------------------------------------------- runs (need the net)

/// The golden checkpoints' plain run: the 2011 tiny net on the golden batches.
fn golden_run_args(gen: &str, save: &str) -> Vec<String> {
    let (def, params) = match gen {
        "c1" => (DEF_C1, PARAMS_C1),
        _ => (DEF_A12, PARAMS_A12),
    };
    [
        def,
        params,
        "--data-path=golden/checkpoints/batches",
        "--train-range=1-2",
        "--test-range=3",
        "--test-freq=2",
        "--epochs=1",
        "--mini=20",
        "--data-provider=cifar",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--save-path={save}")])
    .collect()
}

fn run_args(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

#[test]

fn a_training_run_prints_tests_saves_and_runs_one_batch_too_many() {
    for gen in ["c1", "a12"] {
        let dir = scratch(&format!("train-{gen}"));
        let out = run_args(&golden_run_args(gen, dir.to_str().unwrap()));
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{gen}: {}\n{stdout}",
            text(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        let start = lines.iter().position(|l| *l == "Training ConvNet").unwrap();
        assert!(
            lines[start + 1..]
                .iter()
                .any(|l| l.starts_with("Check gradients and quit?")),
            "{stdout}"
        );
        assert!(stdout.contains("\nRunning on CUDA device(s) -2\n"));
        let ckpt_dir = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let name = ckpt_dir.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with("ConvNet__") && name.len() == "ConvNet__2012-08-03_14.28.23".len()
        );
        assert!(stdout.contains(&format!("Saving checkpoints to {}\n", ckpt_dir.display())));
        let batch = |e: u32, b: u32| {
            lines
                .iter()
                .find(|l| l.starts_with(&format!("{e}.{b}... logprob:  ")))
                .copied()
        };
        // 1.1, 1.2 (then the test and the save), and 2.1 (the loop's extra batch).
        let l11 = batch(1, 1).expect(&stdout);
        assert!(l11.ends_with(" sec)"), "{l11}");
        let values = l11["1.1... logprob:  ".len()..].split(" (").next().unwrap();
        assert_eq!(
            values.split(", ").count(),
            if gen == "c1" { 2 } else { 3 },
            "{l11}"
        );
        assert!(batch(1, 2).is_some() && batch(2, 1).is_some(), "{stdout}");
        assert!(batch(2, 2).is_none());
        assert!(
            stdout.contains("======================Test output======================\nlogprob:  ")
        );
        assert!(stdout.contains("Layer 'conv1' weights[0]: "));
        assert!(stdout.contains("Layer 'fc10' biases: "));
        assert!(stdout.contains(&format!(
            "-------------------------------------------------------\nSaved checkpoint to {}\n======================================================= (",
            ckpt_dir.display()
        )));
        if gen == "a12" {
            assert!(stdout.contains("----------------------Averages-------------------------"));
        }
        // One checkpoint, 1.2, in the original's form.
        let files: Vec<String> = std::fs::read_dir(&ckpt_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files, ["1.2"]);
        let ckpt = convnet::checkpoint::load(&ckpt_dir).unwrap();
        let ms = ckpt.get("model_state").unwrap();
        assert_eq!(
            state::outputs_from_pyobj(ms.get("train_outputs"))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            state::outputs_from_pyobj(ms.get("test_outputs"))
                .unwrap()
                .len(),
            1
        );

        // Resume for a second epoch: 2.1, 2.2 (saved; the loaded 1.2 is pruned), 3.1.
        let out = run_args(&[
            "-f".to_string(),
            ckpt_dir.to_str().unwrap().to_string(),
            "--epochs=2".to_string(),
        ]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{}", text(&out.stderr));
        for b in ["2.1... ", "2.2... ", "3.1... "] {
            assert!(stdout.contains(b), "{b}: {stdout}");
        }
        let files: Vec<String> = std::fs::read_dir(&ckpt_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files, ["2.2"]);
        let ms = convnet::checkpoint::load(&ckpt_dir)
            .unwrap()
            .get("model_state")
            .unwrap();
        assert_eq!(
            state::outputs_from_pyobj(ms.get("train_outputs"))
                .unwrap()
                .len(),
            4
        );

        // --test-only on it: one test batch, its line, the test block, no save.
        let out = run_args(&[
            "-f".to_string(),
            ckpt_dir.to_str().unwrap().to_string(),
            "--test-only=1".to_string(),
        ]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(stdout.contains("batch 3: ({'logprob': ["), "{stdout}");
        assert!(!stdout.contains("Training ConvNet"));
        assert!(!stdout.contains("Saved checkpoint"));
    }
}

#[test]

fn check_grads_runs_on_the_dummy_provider_and_exits_0() {
    let out = convnet(&[
        DEF_C1,
        PARAMS_C1,
        "--check-grads=1",
        "--data-provider=dummy-cn-3072",
        "--mini=8",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The dummy provider's first batch says epoch 2.
    assert!(stdout.contains("\n2.1..."), "{stdout}");
    assert!(stdout.contains("TESTS"), "{stdout}");
    assert!(
        stdout.contains("Saving checkpoints to ConvNet__"),
        "{stdout}"
    );
}

#[test]

fn bench_reports_images_per_second() {
    let out = convnet(&[
        DEF_C1,
        PARAMS_C1,
        "--bench=2",
        "--data-dims=3072,1",
        "--mini=16",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with("bench: ") && last.ends_with(" images/s"),
        "{last}"
    );
    let rate: f64 = last["bench: ".len()..last.len() - " images/s".len()]
        .parse()
        .unwrap();
    assert!(rate > 0.0);
}

#[test]

fn multiview_test_of_the_cropped_provider() {
    let dir = scratch("multiview");
    let mut args = golden_run_args("c1", dir.to_str().unwrap());
    args.retain(|a| !a.starts_with("--data-provider"));
    args.extend([
        "--data-provider=cifar-cropped".to_string(),
        "--multiview-test=1".to_string(),
        "--logreg-name=logprob".to_string(),
    ]);
    let out = run_args(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    assert!(stdout.contains("======================Test output======================\nlogprob:  "));
}

// ---------------------------------------------------------------- runs with a stand-in net

/// The `_ConvNet` stand-in the golden checkpoints and golden/driver outputs were made
/// with (golden/checkpoints/README.md): no computation; the k-th `finishBatch` of the
/// process reports `logprob = [(2.3 - 0.01k) * n, (0.9 - 0.01k) * n]` with `numCases =
/// n`, the columns of the data it was handed (all views of a multiview test).
struct StandIn {
    k: usize,
    /// Ours: the batch (k) whose first value is NaN.
    nan_at: Option<usize>,
}

impl StandIn {
    fn next(&mut self, data: &[convnet::nvmatrix::NvMatrix]) -> Cost {
        let k = self.k as f64;
        let first = if self.nan_at == Some(self.k) {
            f64::NAN
        } else {
            (2.3 - 0.01 * k) * data[0].cols() as f64
        };
        self.k += 1;
        let n = data[0].cols();
        cost(&[("logprob", &[first, (0.9 - 0.01 * k) * n as f64])], n)
    }
}

impl convnet::driver::Network for StandIn {
    fn train_batch(
        &mut self,
        data: &[convnet::nvmatrix::NvMatrix],
        progress: f64,
    ) -> Result<Cost, convnet::net::NetError> {
        assert!((0.0..=1.0).contains(&progress));
        Ok(self.next(data))
    }
    fn test_batch(
        &mut self,
        data: &[convnet::nvmatrix::NvMatrix],
    ) -> Result<Cost, convnet::net::NetError> {
        Ok(self.next(data))
    }
    fn multiview_test(
        &mut self,
        data: &[convnet::nvmatrix::NvMatrix],
        views: usize,
        _logreg: &str,
    ) -> Result<Cost, convnet::net::NetError> {
        // As the stand-in: the cases it was handed, every view of them.
        let _ = views;
        Ok(self.next(data))
    }
    fn features(
        &mut self,
        data: &[convnet::nvmatrix::NvMatrix],
        _layer: &str,
    ) -> Result<(Cost, convnet::nvmatrix::NvMatrix), convnet::net::NetError> {
        // Not a finishBatch of the original's: the stand-in's count stays.
        let n = data[0].cols();
        Ok((
            Cost::default(),
            convnet::nvmatrix::NvMatrix::new(n, 10, false),
        ))
    }
    fn check_gradients(
        &mut self,
        _data: &[convnet::nvmatrix::NvMatrix],
        out: &mut dyn std::io::Write,
    ) -> Result<convnet::net::GcSummary, convnet::net::NetError> {
        writeln!(out, "------------------------\nALL 4 TESTS PASSED").unwrap();
        Ok(convnet::net::GcSummary {
            tests: 4,
            failures: 0,
        })
    }
    fn sync_to_host(&self, _net: &mut Net) {}
}

/// A writer whose bytes the test reads afterwards.
#[derive(Clone, Default)]
struct Capture(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.borrow().clone()).unwrap()
    }
}

/// Runs the driver in this process (from the repository root) with the stand-in net.
fn run_stand_in(args: &[String]) -> (i32, String, String) {
    run_stand_in_nan(args, None)
}

fn run_stand_in_nan(args: &[String], nan_at: Option<usize>) -> (i32, String, String) {
    std::env::set_current_dir(root()).unwrap();
    let (out, err) = (Capture::default(), Capture::default());
    let env = convnet::driver::Env {
        out: Box::new(out.clone()),
        err: Box::new(err.clone()),
        tty: false,
        make_net: Box::new(move |_, _| {
            Ok(Box::new(StandIn { k: 0, nan_at }) as Box<dyn convnet::driver::Network>)
        }),
    };
    let stop = convnet::driver::run_with(args, env);
    (stop.code, out.text(), err.text())
}

/// The checkpoint file's JSON form (golden/checkpoints/README.md rules).
fn ckpt_json(path: &Path) -> serde_json::Value {
    let mut s = String::new();
    convnet::checkpoint::value::to_json(&convnet::checkpoint::load(path).unwrap(), &mut s);
    serde_json::from_str(&s).unwrap()
}

fn golden_json(rel: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

/// Paths of the golden runs mapped to ours.
fn ours_for_paths(v: &mut serde_json::Value, map: &[(&str, &str)]) {
    match v {
        serde_json::Value::String(s) => {
            for (a, b) in map {
                if s == a {
                    *s = b.to_string();
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| ours_for_paths(x, map)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| ours_for_paths(x, map)),
        _ => {}
    }
}

/// The option names of a checkpoint's `op` in pickle order.
fn option_names(path: &Path) -> Vec<String> {
    let op = convnet::checkpoint::load(path).unwrap().get("op").unwrap();
    convnet::options::Options::from_pyobj(&op)
        .unwrap()
        .options
        .keys()
        .cloned()
        .collect()
}

/// The golden plain and resume runs, replayed with the golden stand-in net: the same
/// lines, the same model state and the same `op` in the checkpoints.
#[test]
fn the_golden_runs_replayed_with_the_stand_in_net() {
    for gen in ["c1", "a12"] {
        let dir = scratch(&format!("standin-{gen}"));
        let save = dir.to_str().unwrap().to_string();
        let (code, out, err) = run_stand_in(&golden_run_args(gen, &save));
        assert_eq!(code, 0, "{gen}: {err}\n{out}");
        if std::env::var_os("SHOW").is_some() {
            println!("{out}");
        }
        assert!(err.is_empty(), "{err}");
        let ckpt_dir = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let ckpt_name = ckpt_dir.file_name().unwrap().to_str().unwrap().to_string();

        // The banner and the option values as the original printed them.
        let body = &out[out.find("=========================\nImporting").unwrap()..];
        let mut lines = body.lines();
        assert_eq!(lines.next(), Some("========================="));
        assert_eq!(lines.next(), Some("Importing _ConvNet C++ module"));
        assert_eq!(lines.next(), Some("========================="));
        assert_eq!(lines.next(), Some("Training ConvNet"));
        let golden_values = std::fs::read_to_string(
            root().join(format!("golden/checkpoints/{gen}/ckpt-p2.print_values.txt")),
        )
        .unwrap();
        for want in golden_values.lines() {
            let want = want
                .replace("/tmp/ckpt/data", "golden/checkpoints/batches")
                .replace(&format!("/tmp/ckpt/out/{gen}/plain"), &save)
                .replace("/tmp/ckpt/layer", "golden/checkpoints/layer");
            assert_eq!(lines.next(), Some(want.as_str()), "{gen}");
        }
        assert_eq!(lines.next(), Some("========================="));
        assert_eq!(lines.next(), Some("Running on CUDA device(s) -2"));
        assert!(lines.next().unwrap().starts_with("Current time: "));
        assert_eq!(
            lines.next().unwrap(),
            format!("Saving checkpoints to {save}/{ckpt_name}")
        );
        assert_eq!(lines.next(), Some("========================="));
        let rest: Vec<String> = lines
            .map(|l| match l.rfind(" (") {
                Some(i) if l.ends_with(" sec)") => format!("{} (T sec)", &l[..i]),
                _ => l.to_string(),
            })
            .collect();
        let fmt = |v: f64| match gen {
            "c1" => format!("{v:6.6}"),
            _ => format!("{v:.6}"),
        };
        let cost = |a: f64, b: f64| format!("logprob:  {}, {}", fmt(a), fmt(b));
        assert_eq!(rest[0], format!("1.1... {} (T sec)", cost(2.3, 0.9)));
        assert_eq!(rest[1], format!("1.2... {} ", cost(2.29, 0.89)));
        let mut i = 2;
        if gen == "c1" {
            assert_eq!(
                rest[i],
                "======================Test output======================"
            );
            assert_eq!(rest[i + 1], format!("{} ", cost(2.28, 0.88)));
            assert_eq!(
                rest[i + 2],
                "------------------------------------------------------- "
            );
            i += 3;
        } else {
            assert_eq!(
                rest[i],
                "======================Test output======================"
            );
            assert_eq!(rest[i + 1], format!("{} ", cost(2.28, 0.88)));
            assert_eq!(
                rest[i + 2],
                "----------------------Averages-------------------------"
            );
            assert_eq!(rest[i + 3], format!("{} ", cost(2.28, 0.88)));
            assert_eq!(
                rest[i + 4],
                "------------------------------------------------------- "
            );
            i += 5;
        }
        // Weight layers: 2011 in list order, 2012 by name; fresh increments and biases 0.
        let layers = ["conv1", "fc10"];
        for l in layers {
            assert!(
                rest[i].starts_with(&format!("Layer '{l}' weights[0]: ")),
                "{}",
                rest[i]
            );
            assert!(rest[i].ends_with(" [0.000000e+00] "), "{}", rest[i]);
            assert_eq!(
                rest[i + 1],
                format!("Layer '{l}' biases: 0.000000e+00 [0.000000e+00] ")
            );
            i += 2;
        }
        assert_eq!(
            rest[i],
            "-------------------------------------------------------"
        );
        assert_eq!(
            rest[i + 1],
            format!("Saved checkpoint to {save}/{ckpt_name}")
        );
        assert_eq!(
            rest[i + 2],
            "======================================================= (T sec)"
        );
        // The loop's extra batch of epoch 2, not saved.
        assert_eq!(rest[i + 3], format!("2.1... {} (T sec)", cost(2.27, 0.87)));
        assert_eq!(rest.len(), i + 4, "{rest:#?}");

        // The checkpoint: the golden run's model state and options.
        let files: Vec<String> = std::fs::read_dir(&ckpt_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files, ["1.2"]);
        let ours = ckpt_json(&ckpt_dir.join("1.2"));
        let mut theirs = golden_json(&format!("golden/checkpoints/{gen}/ckpt-p2.expected.json"));
        let map = [
            ("/tmp/ckpt/data", "golden/checkpoints/batches"),
            (&*format!("/tmp/ckpt/out/{gen}/plain"), &*save),
            (
                &*format!("/tmp/ckpt/layers-{gen}.cfg"),
                &*format!("golden/checkpoints/layers-{gen}.cfg"),
            ),
            (
                &*format!("/tmp/ckpt/layer-params-{gen}.cfg"),
                &*format!("golden/checkpoints/layer-params-{gen}.cfg"),
            ),
        ];
        ours_for_paths(&mut theirs, &map);
        for k in ["train_outputs", "test_outputs", "epoch", "batchnum"] {
            assert_eq!(
                ours["model_state"][k], theirs["model_state"][k],
                "{gen}: {k}"
            );
        }
        assert_eq!(ours["op"], theirs["op"], "{gen}: op");
        assert_eq!(
            option_names(&ckpt_dir.join("1.2")),
            option_names(&root().join(format!("golden/checkpoints/{gen}/ckpt-p2"))),
            "{gen}"
        );

        // Resume for a second epoch with a new process's stand-in (k from 0 again).
        let (code, out, err) = run_stand_in(&[
            "-f".into(),
            ckpt_dir.to_str().unwrap().into(),
            "--epochs=2".into(),
        ]);
        assert_eq!(code, 0, "{err}");
        for b in ["\n2.1... ", "\n2.2... ", "\n3.1... "] {
            assert!(out.contains(b), "{b}: {out}");
        }
        let files: Vec<String> = std::fs::read_dir(&ckpt_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files, ["2.2"], "max-filesize 0 prunes the loaded 1.2");
        let ours = ckpt_json(&ckpt_dir.join("2.2"));
        let mut theirs = golden_json(&format!(
            "golden/checkpoints/{gen}/resumed-2.2.expected.json"
        ));
        let load = theirs["op"]["$state"]["options"]["load_file"]["$state"]["value"]
            .as_str()
            .unwrap()
            .to_string();
        let ckpt_str = ckpt_dir.to_str().unwrap().to_string();
        let mut map = map.to_vec();
        map.push((&load, &ckpt_str));
        ours_for_paths(&mut theirs, &map);
        for k in ["train_outputs", "test_outputs", "epoch", "batchnum"] {
            assert_eq!(
                ours["model_state"][k], theirs["model_state"][k],
                "{gen}: resumed {k}"
            );
        }
        assert_eq!(ours["op"], theirs["op"], "{gen}: resumed op");
        // The options in the order the original pickled them (the reloaded dict's).
        assert_eq!(
            option_names(&ckpt_dir.join("2.2")),
            option_names(&root().join(format!("golden/checkpoints/{gen}/resumed-2.2"))),
            "{gen}"
        );

        // --test-only: one test batch printed as the original's tuple, the block, no save.
        let (code, out, err) = run_stand_in(&[
            "-f".into(),
            ckpt_dir.to_str().unwrap().into(),
            "--test-only=1".into(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("\nbatch 3: ({'logprob': [46.0, 18.0]}, 20)\n"),
            "{out}"
        );
        assert!(!out.contains("Training ConvNet"));
        assert!(!out.contains("Saved checkpoint"));
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn check_grads_with_the_stand_in_net() {
    let (code, out, err) = run_stand_in(&strings(&[
        DEF_C1,
        PARAMS_C1,
        "--check-grads=1",
        "--data-provider=dummy-cn-3072",
    ]));
    assert_eq!(code, 0, "{err}");
    // Saving goes to the blank save path; the dummy provider's first batch says epoch 2,
    // and the C++ report follows the pending `2.1...` directly.
    assert!(out.contains("\nSaving checkpoints to ConvNet__"), "{out}");
    let data_path = out.lines().find(|l| l.starts_with("Data path ")).unwrap();
    assert_eq!(data_path.split(':').nth(1).unwrap().trim(), "", "{out}");
    assert!(
        out.ends_with("\n2.1...------------------------\nALL 4 TESTS PASSED\n"),
        "{out}"
    );
}

#[test]
fn nan_in_a_batch_stops_the_run_with_status_1() {
    let dir = scratch("nan");
    let (code, out, _) = run_stand_in_nan(&golden_run_args("c1", dir.to_str().unwrap()), Some(1));
    assert_eq!(code, 1);
    assert!(
        out.ends_with("\n1.2... logprob:     nan, 0.890000 ^ got nan or inf!\n"),
        "{out}"
    );
    let (code, out, _) = run_stand_in_nan(&golden_run_args("a12", dir.to_str().unwrap()), Some(0));
    assert_eq!(code, 1);
    assert!(
        out.ends_with("\n1.1... logprob:  nan, 0.900000 ^ got nan or inf!\n"),
        "{out}"
    );
}

#[test]
fn testing_every_batch_with_the_whole_test_range_zipped() {
    let dir = scratch("whole-range");
    let mut args = golden_run_args("c1", dir.to_str().unwrap());
    args.retain(|a| !a.starts_with("--test-range") && !a.starts_with("--test-freq"));
    args.extend(strings(&[
        "--test-range=2-3",
        "--test-one=0",
        "--test-freq=1",
        "--zip-save=1",
        "--max-filesize=1000",
    ]));
    let (code, out, err) = run_stand_in(&args);
    assert_eq!(code, 0, "{err}");
    // Three tests (after 1.1, 1.2 and 2.1), each over batches 2 and 3: two stand-in
    // calls summed, so the per-case average of k and k+1.
    assert_eq!(out.matches("Test output").count(), 3);
    assert!(
        out.contains("Test output======================\nlogprob:  2.285000, 0.885000 \n"),
        "{out}"
    );
    let ckpt_dir = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut files: Vec<String> = std::fs::read_dir(&ckpt_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["1.1", "1.2", "2.1"]);
    assert_eq!(
        &std::fs::read(ckpt_dir.join("2.1")).unwrap()[..4],
        b"PK\x03\x04"
    );
    let ckpt = ckpt_json(&ckpt_dir);
    assert_eq!(ckpt["model_state"]["test_outputs"][0][1], 40);
    assert_eq!(ckpt["model_state"]["epoch"], 2);

    // --test-only over the range prints each batch's tuple.
    let (code, out, err) = run_stand_in(&[
        "-f".to_string(),
        ckpt_dir.to_str().unwrap().to_string(),
        "--test-only=1".to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\nbatch 2: ({'logprob': [46.0, 18.0]}, 20)\nbatch 3: ({'logprob': [45.8, 17.8]}, 20)\n"), "{out}");
}

#[test]
fn multiview_test_and_2012_test_predictions() {
    for gen in ["c1", "a12"] {
        let dir = scratch(&format!("multiview-{gen}"));
        let preds = dir.join("preds");
        let mut args = golden_run_args(gen, dir.to_str().unwrap());
        args.retain(|a| !a.starts_with("--data-provider"));
        args.extend(strings(&[
            "--data-provider=cifar-cropped",
            "--multiview-test=1",
            "--logreg-name=logprob",
        ]));
        if gen == "a12" {
            args.push(format!("--test-out={}", preds.display()));
        }
        let (code, out, err) = run_stand_in(&args);
        // The cropped provider makes 24x24 inputs of the golden net's 32x32 layers.
        assert_eq!(code, 0, "{gen}: {err}\n{out}");
        assert!(out.starts_with("Initialized data layer 'data', producing 1728 outputs"));
        // The stand-in counts every view's columns as cases.
        assert!(
            out.contains("Test output======================\nlogprob:  2.280000"),
            "{out}"
        );
        if gen == "a12" {
            let p = convnet::checkpoint::load(&preds.join("test_preds_3")).unwrap();
            let mut s = String::new();
            convnet::checkpoint::value::to_json(&p, &mut s);
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            assert_eq!(v["data"]["shape"], serde_json::json!([20, 10]));
            assert_eq!(v["data"]["dtype"], "f4");
            assert!(v["note"]
                .as_str()
                .unwrap()
                .starts_with("generated from ConvNet__"));
        }
    }
    // 2011 without --logreg-name: the original's requires rule.
    let dir = scratch("multiview-nologreg");
    let mut args = golden_run_args("c1", dir.to_str().unwrap());
    args.push("--multiview-test=1".into());
    let (code, _, err) = run_stand_in(&args);
    assert_eq!(code, 1);
    assert!(err.starts_with("Option --multiview-test (Cropped DP: test on multiple patches?) requires option --logreg-name"));
    // A provider without views.
    args.push("--logreg-name=logprob".into());
    let (code, _, err) = run_stand_in(&args);
    assert_eq!(code, 1);
    assert!(err.contains("the data provider has no views"), "{err}");
    // A logreg name that is not a logreg layer.
    args.pop();
    args.push("--logreg-name=probs".into());
    let (code, _, err) = run_stand_in(&args);
    assert_eq!(code, 1);
    assert!(
        err.contains("Layer with name 'probs' has type 'softmax'; should be 'cost.logreg'."),
        "{err}"
    );
}

#[test]
fn bench_with_the_stand_in_net() {
    let (code, out, err) = run_stand_in(&strings(&[DEF_C1, PARAMS_C1, "--bench=3", "--mini=16"]));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[lines.len() - 2].starts_with("bench: 3 minibatches of 16 images in "));
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("bench: ") && last.ends_with(" images/s"),
        "{last}"
    );
    assert!(!out.contains("Training ConvNet"));
}

#[test]
fn resume_applies_and_clears_unshare_and_conv_to_local() {
    let dir = scratch("convert");
    let (code, _, err) = run_stand_in(&golden_run_args("c1", dir.to_str().unwrap()));
    assert_eq!(code, 0, "{err}");
    let ckpt_dir = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let (code, out, err) = run_stand_in(&[
        "-f".to_string(),
        ckpt_dir.to_str().unwrap().to_string(),
        "--epochs=2".to_string(),
        "--conv-to-local=conv1".to_string(),
        "--unshare-weights=fc10[0]".to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Converted layer 'conv1' from convolutional to unshared, locally-connected"),
        "{out}"
    );
    assert!(
        out.contains("Weight matrix fc10[0] already unshared."),
        "{out}"
    );
    let ckpt = ckpt_json(&ckpt_dir);
    let conv1 = ckpt["model_state"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "conv1")
        .unwrap()
        .clone();
    assert_eq!(conv1["type"], "local");
    let opt = |n: &str| ckpt["op"]["$state"]["options"][n]["$state"]["value"].clone();
    assert_eq!(opt("conv_to_local"), serde_json::json!([]));
    assert_eq!(opt("unshare_weights"), serde_json::json!([]));
    // An unknown layer stops the run.
    let (code, _, err) = run_stand_in(&[
        "-f".to_string(),
        ckpt_dir.to_str().unwrap().to_string(),
        "--unshare-weights=nope".to_string(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Layer 'nope' does not exist; unable to unshare"),
        "{err}"
    );
}

/// golden/driver: the original convnet.py of each generation, run with the stand-in, and
/// our driver with the same stand-in print the same lines (times, dates, save paths
/// and the means of the randomly initialised weights aside).
#[test]
fn the_originals_outputs_replayed_with_the_stand_in_net() {
    fn normalize(text: &str, save: &str) -> Vec<String> {
        text.lines()
            .map(|l| {
                let mut l = l.replace("\x1b[1m", "").replace("\x1b[0m", "");
                if let Some(i) = l.find("/tmp/gd/") {
                    let end = l[i + 8..].find(['/', ' ']).map_or(l.len(), |j| i + 8 + j);
                    l.replace_range(i..end, "SAVE");
                }
                if !save.is_empty() {
                    l = l.replace(save, "SAVE");
                }
                if let Some(i) = l.find("ConvNet__") {
                    let n = "ConvNet__2012-08-03_14.28.23".len();
                    l.replace_range(i..(i + n).min(l.len()), "ConvNet__STAMP");
                }
                if l.starts_with("Current time: ") {
                    l = "Current time: X".into();
                }
                if let Some(i) = l.rfind(" (") {
                    if l.ends_with(" sec)") {
                        l = format!("{} (T sec)", &l[..i]);
                    }
                }
                if l.starts_with("Layer '") && l.contains(" weights[") {
                    let a = l.find("]: ").unwrap() + 3;
                    let b = l[a..].find(' ').unwrap() + a;
                    l.replace_range(a..b, "W");
                }
                l.replace("convnet.py usage:", "convnet usage:")
            })
            .collect()
    }
    for gen in ["c1", "a12"] {
        let g = "golden/checkpoints";
        let layers = [
            format!("--layer-def={g}/layers-{gen}.cfg"),
            format!("--layer-params={g}/layer-params-{gen}.cfg"),
        ];
        let base: Vec<String> = [
            format!("--data-path={g}/batches"),
            "--train-range=1-2".into(),
            "--mini=20".into(),
        ]
        .into_iter()
        .chain(layers.clone())
        .collect();
        let dir = scratch(&format!("originals-{gen}"));
        let with = |extra: &[&str], name: &str| -> Vec<String> {
            let mut v = base.clone();
            v.push(format!("--save-path={}/{name}", dir.display()));
            v.extend(strings(extra));
            v
        };
        let cases: Vec<(&str, Vec<String>, i32)> = vec![
            (
                "plain",
                with(
                    &[
                        "--test-range=3",
                        "--test-freq=2",
                        "--epochs=1",
                        "--data-provider=cifar",
                    ],
                    "plain",
                ),
                0,
            ),
            (
                "whole-range",
                with(
                    &[
                        "--test-range=2-3",
                        "--test-one=0",
                        "--test-freq=1",
                        "--epochs=2",
                        "--data-provider=cifar",
                        "--zip-save=1",
                        "--max-filesize=1000",
                    ],
                    "whole",
                ),
                0,
            ),
            (
                "test-only",
                with(
                    &[
                        "--test-range=1-3",
                        "--test-one=0",
                        "--test-only=1",
                        "--data-provider=cifar",
                    ],
                    "testonly",
                ),
                0,
            ),
            (
                "multiview",
                with(
                    &[
                        "--test-range=3",
                        "--test-freq=2",
                        "--epochs=1",
                        "--data-provider=cifar-cropped",
                        "--multiview-test=1",
                        "--logreg-name=logprob",
                    ],
                    "mv",
                ),
                0,
            ),
            ("usage", layers.to_vec(), 1),
        ];
        for (name, args, status) in cases {
            let (code, out, err) = run_stand_in(&args);
            assert_eq!(code, status, "{gen} {name}: {err}");
            let ours = if name == "usage" { err } else { out };
            let theirs =
                std::fs::read_to_string(root().join(format!("golden/driver/{gen}-{name}.stdout")))
                    .unwrap();
            let sub = |n: &str| dir.join(n).to_string_lossy().into_owned();
            let save = match name {
                "plain" => sub("plain"),
                "whole-range" => sub("whole"),
                "test-only" => sub("testonly"),
                "multiview" => sub("mv"),
                _ => String::new(),
            };
            let (ours, theirs) = (normalize(&ours, &save), normalize(&theirs, ""));
            // Our usage adds the lines of our own options after the original's table.
            let ours = if name == "usage" {
                &ours[..theirs.len().min(ours.len())]
            } else {
                &ours[..]
            };
            assert_eq!(ours, &theirs[..], "{gen} {name}");
        }
        // Resuming the plain run for a second epoch.
        let plain = std::fs::read_dir(dir.join("plain"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let (code, out, err) =
            run_stand_in(&strings(&["-f", plain.to_str().unwrap(), "--epochs=2"]));
        assert_eq!(code, 0, "{gen} resume: {err}");
        let theirs =
            std::fs::read_to_string(root().join(format!("golden/driver/{gen}-resume.stdout")))
                .unwrap();
        assert_eq!(
            normalize(&out, &dir.join("plain").to_string_lossy()),
            normalize(&theirs, ""),
            "{gen} resume"
        );
    }
}

/// The newest checkpoint file under a save path (one `ConvNet__*` directory).
fn newest_checkpoint(save: &Path) -> PathBuf {
    let dir = std::fs::read_dir(save)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort_by(|a, b| convnet::checkpoint::alphanum_cmp(a, b));
    dir.join(files.last().unwrap())
}

/// A checkpoint's model state: the layers (weights, increments, ...), the cost
/// histories, epoch and batch number.
fn model_state(path: &Path) -> (Net, String) {
    let ck = convnet::checkpoint::load(path).unwrap();
    let ms = ck.get("model_state").unwrap();
    let net = convnet::checkpoint::model::layers_from(&ms.get("layers").unwrap()).unwrap();
    let rest = ["train_outputs", "test_outputs", "epoch", "batchnum"]
        .map(|k| format!("{:?}", ms.get(k)))
        .join("\n");
    (net, rest)
}

#[test]
fn resume_continues_bit_for_bit() {
    for gen in ["c1", "a12"] {
        // One run of two epochs (saving after each) ...
        let whole = scratch(&format!("resume-whole-{gen}"));
        let mut args = golden_run_args(gen, whole.to_str().unwrap());
        args.push("--epochs=2".into());
        let out = run_args(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        // ... against one epoch, then a resumed run to the end of the second.
        let part = scratch(&format!("resume-part-{gen}"));
        let out = run_args(&golden_run_args(gen, part.to_str().unwrap()));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let first = newest_checkpoint(&part);
        assert!(first.ends_with("1.2"), "{}", first.display());
        let resumed = run_args(&[format!("-f{}", first.display()), "--epochs=2".into()]);
        assert!(resumed.status.success(), "{}", text(&resumed.stderr));
        let (a, b) = (newest_checkpoint(&whole), newest_checkpoint(&part));
        assert!(a.ends_with("2.2") && b.ends_with("2.2"));
        let ((net_a, rest_a), (net_b, rest_b)) = (model_state(&a), model_state(&b));
        // (A 2012 dict may come back in another order: compare by name.)
        let by_name = |n: &Net| {
            let mut l = n.layers.clone();
            l.sort_by_key(|d| format!("{:?}", d.get("name")));
            l
        };
        assert!(
            by_name(&net_a) == by_name(&net_b),
            "{gen}: the resumed run's weights differ"
        );
        assert_eq!(rest_a, rest_b, "{gen}");
    }
}

/// Checkpoints the original code wrote (golden/checkpoints, both generations) resume
/// here with the real net: weights, increments, epoch and batch number are taken over,
/// training goes on from the next batch and saves into the checkpoint's directory.
#[test]
fn resume_from_the_originals_checkpoints() {
    for gen in ["c1", "a12"] {
        let src = std::fs::read_dir(root().join("golden/checkpoints").join(gen))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let n = p.file_name().unwrap().to_str().unwrap();
                p.is_dir() && n.starts_with("ConvNet__") && !n.ends_with(".expected")
            })
            .unwrap();
        let dir = scratch(&format!("orig-resume-{gen}")).join("ckpt");
        std::fs::create_dir_all(&dir).unwrap();
        // The checkpoint files (`<epoch>.<batchnum>`), not our expectations beside them.
        for f in std::fs::read_dir(&src).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_str().unwrap().to_string();
            if name.split('.').all(|p| p.parse::<u32>().is_ok()) {
                std::fs::copy(&f, dir.join(name)).unwrap();
            }
        }
        let out = run_args(&[format!("-f{}", dir.display()), "--epochs=2".into()]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{gen}: {}\n{stdout}",
            text(&out.stderr)
        );
        assert!(stdout.contains("\n2.1... logprob:  "), "{gen}: {stdout}");
        assert!(
            stdout.contains(&format!("Saved checkpoint to {}", dir.display())),
            "{stdout}"
        );
    }
}
