//! shownet end to end: a checkpoint of the golden tiny net (both generations) is
//! trained here by the `convnet` binary, then every mode runs on it. Figures are decoded
//! with the `png` crate's decoder (an independent reader of what we write) and checked
//! for size and content; feature batches are read back by our reader and, with
//! CONVNET_PYTHON2, by Python 2.7's cPickle + numpy.

use convnet::checkpoint::value::PyObj;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("convnet-shownet-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The checkpoint directory of the golden tiny net of `gen` ("c1" or "a12") after
/// two training batches of 20 cases and a test on batch 3 (trained once per process).
fn checkpoint(gen: &str) -> PathBuf {
    static C1: OnceLock<PathBuf> = OnceLock::new();
    static A12: OnceLock<PathBuf> = OnceLock::new();
    let cell = if gen == "c1" { &C1 } else { &A12 };
    cell.get_or_init(|| {
        let save = scratch(&format!("train-{gen}"));
        let out = Command::new(env!("CARGO_BIN_EXE_convnet"))
            .current_dir(root())
            .args([
                format!("--layer-def=golden/checkpoints/layers-{gen}.cfg"),
                format!("--layer-params=golden/checkpoints/layer-params-{gen}.cfg"),
                "--data-path=golden/checkpoints/batches".into(),
                "--data-provider=cifar".into(),
                "--train-range=1-2".into(),
                "--test-range=3".into(),
                "--test-freq=2".into(),
                "--epochs=1".into(),
                "--mini=20".into(),
                format!("--save-path={}", save.display()),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::read_dir(&save)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    })
    .clone()
}

/// shownet in the repository root (the checkpoint's data path is relative to it).
fn shownet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shownet"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A failure: status 1 and one line on stderr, no panic.
fn fails(out: &Output) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("shownet: error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Width, height and RGB bytes of a PNG file.
fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn colours(rgb: &[u8]) -> std::collections::HashSet<[u8; 3]> {
    rgb.chunks(3).map(|c| [c[0], c[1], c[2]]).collect()
}

fn count(rgb: &[u8], c: [u8; 3]) -> usize {
    rgb.chunks(3).filter(|p| **p == c).count()
}

#[test]
fn summary_lists_layers_position_and_costs() {
    for gen in ["c1", "a12"] {
        let ckpt = checkpoint(gen);
        let out = ok(&shownet(&["-f", ckpt.to_str().unwrap()]));
        assert!(out.contains("Epoch 1, batch 2: 2 training batches and 1 test recorded"));
        assert!(out.contains("training batches 1-2, test batches 3, tested every 2 batches"));
        let line = |name: &str| {
            out.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("{name}: {out}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        // conv1: 16 filters of 3x3x3 and 16 biases; fc10: 256x10 and 10 biases.
        assert_eq!(
            line("conv1"),
            ["conv1", "conv", "data", "16384", "16x32x32", "448"]
        );
        assert_eq!(line("pool1")[4], "16x4x4");
        assert_eq!(line("fc10").last(), Some(&"2570"));
        assert!(out.contains("Parameters: 3018"), "{out}");
        assert!(out.contains("Last training batch: logprob: "));
        assert!(out.contains("Last test:           logprob: "));
    }
}

/// A 2012 net on two GPUs: the summary gives each layer's tower.
#[test]
fn summary_gives_the_towers_of_a_two_gpu_net() {
    let save = scratch("towers");
    ok(&Command::new(env!("CARGO_BIN_EXE_convnet"))
        .current_dir(root())
        .args([
            "--layer-def=tests/data/towers/layers-2gpu.cfg",
            "--layer-params=tests/data/towers/params.cfg",
            "--data-provider=dummy-cn-192",
            "--data-path=.",
            "--train-range=1",
            "--test-range=2",
            "--test-freq=1",
            "--epochs=1",
            "--num-gpus=2",
            "--gpu=0,1",
            &format!("--save-path={}", save.display()),
        ])
        .output()
        .unwrap());
    let ckpt = std::fs::read_dir(&save)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = ok(&shownet(&["-f", ckpt.to_str().unwrap()]));
    let row = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name}: {out}"))
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("layer"), ["layer", "type", "gpu", "inputs"]);
    assert_eq!(row("conv1a"), ["conv1a", "conv", "0", "data"]);
    assert_eq!(row("conv1b"), ["conv1b", "conv", "1", "data"]);
    assert_eq!(row("fc2"), ["fc2", "fc", "0", "rnorm1a,rnorm1b"]);
    assert_eq!(row("data"), ["data", "data", "192", "0"]);
}

#[test]
fn show_cost_writes_the_curves_and_prints_the_values() {
    let ckpt = checkpoint("c1");
    let dir = scratch("cost");
    let out = ok(&shownet(&[
        "-f",
        ckpt.to_str().unwrap(),
        "--show-cost=logprob",
        "--out-dir",
        dir.to_str().unwrap(),
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "Cost 'logprob' value 0: 2 training batches, 1 test (every 2 batches)"
    );
    assert_eq!(lines[1], "batch\ttraining\ttest");
    // Two training values; the one test value laid along both.
    let rows: Vec<Vec<f64>> = lines[2..4]
        .iter()
        .map(|l| l.split('\t').map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows[0][0], 0.0);
    assert_eq!(rows[1][0], 1.0);
    assert_eq!(rows[0][2], rows[1][2]);
    assert!(rows.iter().all(|r| r[1] > 2.0 && r[1] < 2.5), "{out}");
    let (w, h, rgb) = decode(&dir.join("cost.png"));
    assert_eq!((w, h), (800, 600));
    // White, the black training curve and axes, the red test curve.
    assert!(count(&rgb, [255, 0, 0]) > 100);
    assert!(count(&rgb, [0, 0, 0]) > 1000);
    assert!(colours(&rgb).len() >= 3);

    let out = ok(&shownet(&[
        "-f",
        checkpoint("a12").to_str().unwrap(),
        "--show-cost=logprob",
        "--cost-idx=2",
        "--out-dir",
        dir.to_str().unwrap(),
    ]));
    assert!(out.starts_with("Cost 'logprob' value 2: 2 training batches"));

    let bad = shownet(&["-f", ckpt.to_str().unwrap(), "--show-cost=nope"]);
    assert!(fails(&bad).contains("Cost function with name 'nope' not defined by given convnet."));
    fails(&shownet(&[
        "-f",
        ckpt.to_str().unwrap(),
        "--show-cost=logprob",
        "--cost-idx=5",
    ]));
}

#[test]
fn show_filters_in_colour_in_grey_and_of_an_fc_layer() {
    let ckpt = checkpoint("c1");
    let ckpt = ckpt.to_str().unwrap();
    let dir = scratch("filters");
    let d = dir.to_str().unwrap();
    // 16 3x3 filters of 3 channels in colour: a 65x5 grid drawn 12 times larger, a
    // 10-pixel margin, 36 pixels of title.
    let out = ok(&shownet(&[
        "-f",
        ckpt,
        "--show-filters=conv1",
        "--out-dir",
        d,
    ]));
    assert!(out.starts_with("Layer conv1 3x3 filters 0-15\n"), "{out}");
    let (w, h, rgb) = decode(&dir.join("filters.png"));
    assert_eq!((w, h), (65 * 12 + 20, 36 + 5 * 12 + 10));
    assert!(colours(&rgb).len() > 20, "a colour picture");
    assert!(rgb.chunks(3).any(|p| p[0] != p[1] || p[1] != p[2]));

    // Channels side by side in grey: ceil(16/3) = 6 filters a row, 3 rows: 61x13.
    let out = ok(&shownet(&[
        "-f",
        ckpt,
        "--show-filters=conv1",
        "--no-rgb",
        "--out-dir",
        d,
    ]));
    assert!(out.contains("16 filters in 3 row(s) of 6, grey, 3 channel(s) side by side"));
    let (w, h, rgb) = decode(&dir.join("filters.png"));
    assert_eq!((w, h), (61 * 13 + 20, 36 + 13 * 13 + 10));
    assert!(rgb.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]), "grey");
    assert!(colours(&rgb).len() > 20);

    // --norm-filters, a start and a count.
    let out = ok(&shownet(&[
        "-f",
        ckpt,
        "--show-filters=conv1",
        "--norm-filters=1",
        "--filter-start=4",
        "--num-filters=8",
        "--out-dir",
        d,
    ]));
    assert!(out.starts_with("Layer conv1 3x3 filters 4-11\n"), "{out}");

    // fc10 reads pool1's 16 channels of 4x4: one filter a row, 10 rows.
    let out = ok(&shownet(&[
        "-f",
        ckpt,
        "--show-filters=fc10",
        "--channels=16",
        "--out-dir",
        d,
    ]));
    assert!(out.starts_with("Layer fc10 4x4 filters 0-9\n"), "{out}");
    let (w, h, _) = decode(&dir.join("filters.png"));
    assert_eq!((w, h), (66 * 12 + 20, 36 + 51 * 12 + 10));

    assert!(fails(&shownet(&["-f", ckpt, "--show-filters=fc10"])).contains("--channels"));
    assert!(fails(&shownet(&["-f", ckpt, "--show-filters=pool1"])).contains("pool layer"));
    assert!(fails(&shownet(&["-f", ckpt, "--show-filters=conv9"]))
        .contains("Layer with name 'conv9' not defined by given convnet."));
    fails(&shownet(&[
        "-f",
        ckpt,
        "--show-filters=conv1",
        "--no-rgb=2",
    ]));
    fails(&shownet(&[
        "-f",
        ckpt,
        "--show-filters=conv1",
        "--input-idx=1",
    ]));
}

#[test]
fn show_preds_draws_eight_cases_with_their_top_classes() {
    for (gen, top, height) in [("c1", 4, 40 + 2 * 244), ("a12", 5, 40 + 2 * 252)] {
        let ckpt = checkpoint(gen);
        let dir = scratch(&format!("preds-{gen}"));
        let out = ok(&shownet(&[
            "-f",
            ckpt.to_str().unwrap(),
            "--show-preds=probs",
            "--out-dir",
            dir.to_str().unwrap(),
        ]));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "Random test case predictions: test batch 3, 8 random cases of 20"
        );
        let cases: Vec<&&str> = lines.iter().filter(|l| l.starts_with("case ")).collect();
        assert_eq!(cases.len(), 8, "{out}");
        for l in &cases {
            let probs: Vec<f64> = l
                .rsplit("): ")
                .next()
                .unwrap()
                .split(", ")
                .map(|p| p.rsplit(' ').next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(probs.len(), top, "{l}");
            assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{l}");
            assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));
        }
        let (w, h, rgb) = decode(&dir.join("preds.png"));
        assert_eq!((w, h), (960, height));
        assert!(colours(&rgb).len() > 100, "images are drawn");
        let (t, o) = if gen == "c1" {
            ([255, 0, 0], [0, 0, 255])
        } else {
            ([255, 170, 170], [170, 170, 255])
        };
        assert!(count(&rgb, o) > 0, "bars of other classes");
        // The true class is among the top ones for some case or other.
        let true_shown = cases.iter().any(|l| {
            let truth = l.split(": ").nth(1).unwrap().split(" (").next().unwrap();
            l.rsplit("): ")
                .next()
                .unwrap()
                .split(", ")
                .any(|p| p.rsplit_once(' ').unwrap().0 == truth)
        });
        if true_shown {
            assert!(count(&rgb, t) > 0, "the true class's bar");
        }

        // Only the mistakes: every case shown is wrong.
        let out = ok(&shownet(&[
            "-f",
            ckpt.to_str().unwrap(),
            "--show-preds=probs",
            "--only-errors=1",
            "--out-dir",
            dir.to_str().unwrap(),
        ]));
        assert!(out.starts_with("Mistaken test case predictions: test batch 3, "));
        let cases: Vec<&str> = out.lines().filter(|l| l.starts_with("case ")).collect();
        assert!(!cases.is_empty() && cases.len() <= 8, "{out}");
        assert!(cases.iter().all(|l| l.contains(" (wrong): ")), "{out}");
        let (w, _, _) = decode(&dir.join("preds.png"));
        assert_eq!(w, 960);
    }
    let ckpt = checkpoint("c1");
    let ckpt = ckpt.to_str().unwrap();
    assert!(fails(&shownet(&["-f", ckpt, "--show-preds=fc10"]))
        .contains("Layer with name 'fc10' has type 'fc'; should be 'softmax'."));
    assert!(
        fails(&shownet(&["-f", ckpt, "--only-errors=1"])).contains("requires option --show-preds")
    );
    fails(&shownet(&[
        "-f",
        ckpt,
        "--show-preds=probs",
        "--data-path=/nonexistent",
    ]));
}

/// `(shape, dtype code, fortran, f32 values)` of an array in a pickled dict.
fn array(d: &PyObj, key: &str) -> (Vec<u64>, String, bool, Vec<f32>) {
    let a = d.get(key).unwrap();
    let PyObj::Array(a) = &*a else {
        panic!("{key} is not an array")
    };
    let a = a.borrow();
    let vals = a
        .c_order_le_bytes()
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (a.shape.clone(), a.dtype.code(), a.fortran, vals)
}

#[test]
fn write_features_pickles_each_test_batch_and_a_meta() {
    let ckpt = checkpoint("c1");
    let dir = scratch("features");
    let fdir = dir.join("ftrs");
    let out = ok(&shownet(&[
        "-f",
        ckpt.to_str().unwrap(),
        "--write-features=probs",
        &format!("--feature-path={}", fdir.display()),
        "--test-range=2-3",
    ]));
    assert_eq!(
        out,
        format!(
            "Wrote feature file {0}/data_batch_2\nWrote feature file {0}/data_batch_3\n",
            fdir.display()
        )
    );
    for b in [2, 3] {
        let d = convnet::checkpoint::load(&fdir.join(format!("data_batch_{b}"))).unwrap();
        let (shape, code, fortran, probs) = array(&d, "data");
        assert_eq!((shape, code.as_str(), fortran), (vec![20, 10], "f4", false));
        for row in probs.chunks(10) {
            let s: f32 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-4, "softmax rows sum to 1: {s}");
        }
        let (shape, code, _, labels) = array(&d, "labels");
        assert_eq!((shape, code.as_str()), (vec![1, 20], "f4"));
        let raw = convnet::data::batches::load_batch(&root().join("golden/checkpoints/batches"), b)
            .unwrap();
        let want: Vec<f32> = raw.labels.iter().map(|&l| l as f32).collect();
        assert_eq!(labels, want);
    }
    let meta = convnet::checkpoint::load(&fdir.join("batches.meta")).unwrap();
    assert!(matches!(*meta.get("num_vis").unwrap(), PyObj::Int(10)));
    assert_eq!(
        meta.get("source_model").unwrap().as_text().unwrap(),
        ckpt.to_str().unwrap()
    );
    // The features of a layer inside the net: conv1's 16x32x32 outputs.
    let out = ok(&shownet(&[
        "-f",
        ckpt.to_str().unwrap(),
        "--write-features=conv1",
        &format!("--feature-path={}", dir.join("conv1").display()),
    ]));
    assert_eq!(out.lines().count(), 1);
    let d = convnet::checkpoint::load(&dir.join("conv1/data_batch_3")).unwrap();
    assert_eq!(array(&d, "data").0, [20, 16384]);

    assert!(fails(&shownet(&[
        "-f",
        ckpt.to_str().unwrap(),
        "--write-features=probs"
    ]))
    .contains("--feature-path"));
    assert!(fails(&shownet(&[
        "-f",
        ckpt.to_str().unwrap(),
        "--write-features=nope",
        "--feature-path=/tmp/x"
    ]))
    .contains("Layer with name 'nope' not defined."));
}

#[test]
#[cfg_attr(
    not(convnet_python2),
    ignore = "needs CONVNET_PYTHON2 (Python 2.7 with numpy 1.x)"
)]
fn python2_loads_the_feature_batches() {
    let ckpt = checkpoint("a12");
    let dir = scratch("features-py2");
    ok(&shownet(&[
        "-f",
        ckpt.to_str().unwrap(),
        "--write-features=fc10",
        &format!("--feature-path={}", dir.display()),
    ]));
    let script = format!(
        "import cPickle, numpy as n\n\
         d = cPickle.load(open('{0}/data_batch_3', 'rb'))\n\
         m = cPickle.load(open('{0}/batches.meta', 'rb'))\n\
         assert sorted(d.keys()) == ['data', 'labels'], d.keys()\n\
         assert d['data'].dtype == n.float32 and d['data'].shape == (20, 10)\n\
         assert d['data'].flags['C_CONTIGUOUS']\n\
         assert d['labels'].dtype == n.float32 and d['labels'].shape == (1, 20)\n\
         assert m == {{'source_model': '{1}', 'num_vis': 10}}, m\n\
         print 'ok', float(abs(d['data']).sum())\n",
        dir.display(),
        ckpt.display()
    );
    let out = Command::new(std::env::var("CONVNET_PYTHON2").unwrap())
        .args(["-c", &script])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok "),
        "{stdout}{}",
        text(&out.stderr)
    );
    // The same numbers as our reader sees.
    let d = convnet::checkpoint::load(&dir.join("data_batch_3")).unwrap();
    let ours: f64 = array(&d, "data").3.iter().map(|v| v.abs() as f64).sum();
    let theirs: f64 = stdout[3..].trim().parse().unwrap();
    assert!(
        (ours - theirs).abs() <= 1e-6 * ours.max(1.0),
        "{ours} vs {theirs}"
    );
}

#[test]
fn bad_input_is_one_line_and_status_1() {
    fails(&shownet(&[
        "-f",
        "/nonexistent/checkpoint",
        "--show-cost=logprob",
    ]));
    fails(&shownet(&["--show-cost=logprob"]));
    fails(&shownet(&["-f", "x", "--no-such-option"]));
    // A pickle that is not a checkpoint.
    let p = root().join("golden/checkpoints/batches/batches.meta");
    assert!(fails(&shownet(&["-f", p.to_str().unwrap()])).contains("Error loading checkpoint"));
    // --help is not an error.
    let out = shownet(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("--show-filters"));
}

/// Trains the golden tiny net with its conv1 made a local layer: 2011 through
/// `--conv-to-local`, 2012 through a copy of its definition file (the 2012
/// `--conv-to-local` fails in the original).
fn local_checkpoint(gen: &str) -> PathBuf {
    let dir = scratch(&format!("local-{gen}"));
    let mut args = vec![
        format!("--layer-params=golden/checkpoints/layer-params-{gen}.cfg"),
        "--data-path=golden/checkpoints/batches".into(),
        "--data-provider=cifar".into(),
        "--train-range=1".into(),
        "--test-range=3".into(),
        "--test-freq=1".into(),
        "--epochs=1".into(),
        "--mini=20".into(),
        format!("--save-path={}", dir.join("save").display()),
    ];
    if gen == "c1" {
        args.push("--layer-def=golden/checkpoints/layers-c1.cfg".into());
        args.push("--conv-to-local=conv1".into());
    } else {
        let def = std::fs::read_to_string(root().join("golden/checkpoints/layers-a12.cfg"))
            .unwrap()
            .replace("type=conv", "type=local")
            .replace("partialSum=4\n", "")
            .replace("sharedBiases=1\n", "");
        let path = dir.join("layers.cfg");
        std::fs::write(&path, def).unwrap();
        args.push(format!("--layer-def={}", path.display()));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .current_dir(root())
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::read_dir(dir.join("save"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

#[test]
fn show_filters_of_local_layers_as_each_generation_laid_them_out() {
    // 2011: every module's 16 filters, 256 of them from a random module on.
    let ckpt = local_checkpoint("c1");
    let dir = scratch("local-out-c1");
    let args = |extra: &[&str]| {
        let mut a = vec!["-f", ckpt.to_str().unwrap(), "--show-filters=conv1"];
        a.extend_from_slice(extra);
        a.push("--out-dir");
        a.push(dir.to_str().unwrap());
        ok(&shownet(&a))
    };
    let out = args(&[]);
    let range = out.lines().next().unwrap().rsplit(' ').next().unwrap();
    let (a, b) = range.split_once('-').unwrap();
    let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
    assert!(a % 16 == 0 && b == a + 255 && b < 32 * 32 * 16, "{out}");
    let (w, h, _) = decode(&dir.join("filters.png"));
    assert_eq!((w, h), (65 * 12 + 20, 36 + 65 * 12 + 10));
    // The same seed picks the same module; --filter-start overrides it.
    assert_eq!(args(&[]), out);
    assert!(args(&["--filter-start=32"]).starts_with("Layer conv1 3x3 filters 32-287\n"));

    // 2012: filter --local-plane of every module, modulesX (32) to a row, 24 rows.
    let ckpt = local_checkpoint("a12");
    let dir = scratch("local-out-a12");
    let out = ok(&shownet(&[
        "-f",
        ckpt.to_str().unwrap(),
        "--show-filters=conv1",
        "--local-plane=15",
        "--out-dir",
        dir.to_str().unwrap(),
    ]));
    assert!(out.starts_with("Layer conv1 3x3 filters 0-767\n768 filters in 24 row(s) of 32"));
    let (w, h, rgb) = decode(&dir.join("filters.png"));
    assert_eq!((w, h), (129 * 6 + 20, 36 + 97 * 6 + 10));
    assert!(colours(&rgb).len() > 100);
    fails(&shownet(&[
        "-f",
        ckpt.to_str().unwrap(),
        "--show-filters=conv1",
        "--local-plane=16",
    ]));
}
