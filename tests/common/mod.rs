//! Helpers shared by the kernel tests: exact-bits regression goldens, float64
//! reference comparisons and the thread-count check.
#![allow(dead_code)]

pub mod emu;
pub mod ref64;

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

/// Prints `SKIPPED: <why>` where `cargo test` shows it: straight to stderr, past the
/// test harness's capture of `eprintln!`, which hides a passing test's output.
pub fn skip(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// Exact-bits regression goldens in `golden/kernels/<group>.tsv`, one line per case:
/// `case`, the SHA-256 of the output's f32 bits (little-endian, memory order), the
/// element count and the first values. `CONVNET_BLESS=1 cargo test --test <file>`
/// rewrites the file from this run's outputs (see golden/kernels/README.md).
pub struct Regression {
    group: String,
    lines: Vec<(String, String)>,
}

/// SHA-256 of a float slice's little-endian bits, in hex.
pub fn bits_hash(v: &[f32]) -> String {
    let mut h = Sha256::new();
    for x in v {
        h.update(x.to_bits().to_le_bytes());
    }
    h.finalize().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Regression {
    pub fn new(group: &str) -> Regression {
        Regression {
            group: group.to_string(),
            lines: Vec::new(),
        }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("golden/kernels")
            .join(format!("{}.tsv", self.group))
    }

    /// Records case `name` with output `out`.
    pub fn case(&mut self, name: &str, out: &[f32]) {
        assert!(
            !self.lines.iter().any(|(n, _)| n == name),
            "duplicate regression case {name}"
        );
        let head: Vec<String> = out.iter().take(4).map(|x| format!("{x:e}")).collect();
        self.lines.push((
            name.to_string(),
            format!("{}\t{}\t{}", bits_hash(out), out.len(), head.join(" ")),
        ));
    }

    /// Compares every recorded case with the golden file (or rewrites it when
    /// `CONVNET_BLESS=1`); fails listing every mismatch and every missing case.
    pub fn finish(self) {
        let path = self.path();
        if std::env::var("CONVNET_BLESS").as_deref() == Ok("1") {
            let mut s = String::from("# case\tsha256 of f32 bits (LE)\telements\tfirst values\n");
            for (n, l) in &self.lines {
                s.push_str(&format!("{n}\t{l}\n"));
            }
            std::fs::write(&path, s).unwrap();
            eprintln!("blessed {} ({} cases)", path.display(), self.lines.len());
            return;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (make it with CONVNET_BLESS=1)", path.display()));
        let golden: Vec<(&str, &str)> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split_once('\t'))
            .collect();
        let mut bad = Vec::new();
        for (n, l) in &self.lines {
            match golden.iter().find(|(g, _)| g == n) {
                None => bad.push(format!("{n}: not in {}", path.display())),
                Some((_, g)) if g.split('\t').next() != l.split('\t').next() => bad.push(format!(
                    "{n}: golden {g}\n{:w$}  ours   {l}",
                    "",
                    w = n.len()
                )),
                _ => {}
            }
        }
        for (g, _) in &golden {
            if !self.lines.iter().any(|(n, _)| n == g) {
                bad.push(format!("{g}: in the golden file but not run"));
            }
        }
        assert!(
            bad.is_empty(),
            "{} regression mismatches:\n{}",
            self.group,
            bad.join("\n")
        );
    }
}

/// Asserts `got` (f32) equals the float64 reference `want` within `tol` relative to
/// the largest magnitude in `want` (plus `tol` absolute), naming the first bad index.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f64, |m, x| m.max(x.abs())).max(1.0);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= tol * scale,
            "{what}: element {i}: got {g}, float64 reference {w} (error {err:e}, allowed {:e})",
            tol * scale
        );
    }
}

/// Runs `f` with 1 and with 2 worker threads, and, where the CPU has AVX-512, once more
/// with the kernels on 8-lane vectors, and asserts identical bits; returns the output.
pub fn same_bits_any_threads_or_lanes(what: &str, f: impl Fn() -> Vec<f32>) -> Vec<f32> {
    use convnet::cudaconv2::lanes::{avx512_available, with_simd, Simd};
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let one = convnet::parallel::with_threads(1, &f);
    let two = convnet::parallel::with_threads(2, &f);
    assert!(bits(&one) == bits(&two), "{what}: 1 and 2 threads differ");
    if avx512_available() {
        let narrow = with_simd(Simd::Avx2, &f);
        assert!(
            bits(&one) == bits(&narrow),
            "{what}: 16-lane and 8-lane vectors differ"
        );
    }
    one
}

/// The repository root: where this test was built, or, for test executables carried to
/// another machine (.ci/gpu-check runs them from the repository root there), the current
/// directory.
pub fn repo_root() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if built.join("layer-defs").is_dir() {
        built
    } else {
        std::env::current_dir().expect("current directory")
    }
}

/// A training batch for the net tests: `(dims, cases)` data uniform in `[-1, 1)` and
/// `(1, cases)` labels in `0..10`, from `seed`.
pub fn batch(dims: usize, cases: usize, seed: u64) -> Vec<convnet::nvmatrix::NvMatrix> {
    use convnet::nvmatrix::NvMatrix;
    use convnet::synthetic::{uniform, SplitMix64};
    let mut rng = SplitMix64::new(seed);
    vec![
        NvMatrix::from_vec(dims, cases, false, uniform(seed, dims * cases, -1.0, 1.0)),
        NvMatrix::from_vec(
            1,
            cases,
            false,
            (0..cases).map(|_| (rng.next_u64() % 10) as f32).collect(),
        ),
    ]
}

/// A layer-definition and parameter file parsed for `dims` inputs (one channel row per
/// case), 10 classes, `gpus` GPUs and the parser's weight seed 7.
pub fn parse_net(
    gen: convnet::config::Generation,
    def: &std::path::Path,
    params: &std::path::Path,
    dims: usize,
    gpus: i64,
) -> convnet::config::Net {
    let model = convnet::config::Model {
        data_dims: vec![dims as i64, 1],
        num_classes: 10,
        num_gpus: gpus,
        conserve_mem: 0,
        seed: 7,
    };
    convnet::config::parse_layers(gen, def, params, &model, &mut Vec::new()).unwrap()
}

/// `tests/data/towers/LAYERS` with `PARAMS` (2012, 192 inputs): as given on two GPUs
/// (`two`), or with every layer moved to gpu 0, on one.
pub fn parse_towers(layers: &str, params: &str, two: bool) -> convnet::config::Net {
    let dir = repo_root().join("tests/data/towers");
    let mut def = dir.join(layers);
    if !two {
        let tmp = std::env::temp_dir().join(format!("convnet-towers-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let text = std::fs::read_to_string(&def).unwrap();
        def = tmp.join(format!("1gpu-{layers}"));
        std::fs::write(&def, text.replace("gpu=1", "gpu=0")).unwrap();
    }
    let gen = convnet::config::Generation::A12;
    parse_net(gen, &def, &dir.join(params), 192, if two { 2 } else { 1 })
}
