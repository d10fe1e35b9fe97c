//! "Original" goldens (PORTING.md §4): outputs of the original cudaconv2 kernels for fixed
//! seeded inputs, against our CPU kernels (golden/kernels/original.tsv; provenance in
//! golden/kernels/README.md).
//!
//! - `check_against_recorded_originals`: regenerates each case's inputs from its seed, runs
//!   our CPU kernel and compares the SHA-256 of every output's bits with the original's
//!   recorded one. Outputs recorded as differing (the `__powf` kernels, bounded on the
//!   CPU) keep the bound measured where the originals ran, which a hash cannot check
//!   again: for them only the element count is checked here.
//! - `make_originals` (runs only with `CONVNET_ORIGINAL_KERNELS=<orig-kernels>`, a build of
//!   the original kernels beside the project that is never committed): writes every case's
//!   inputs, runs that program on the GPU, compares its outputs element by element with
//!   our CPU kernels and, for the bounded kernels, with our CUDA kernels on each GPU
//!   present, and writes the table to `CONVNET_ORIGINAL_OUT` (default: the golden file).

mod common;

use common::emu::gpus;
use common::{bits_hash, skip};
use convnet::cuda::launch::conv_util as dev;
use convnet::cuda::{Backend, DevMat};
use convnet::cudaconv2::conv_util::norm::{
    conv_response_norm, conv_response_norm_cross_map, conv_response_norm_cross_map_undo,
    conv_response_norm_undo,
};
use convnet::cudaconv2::conv_util::pool::{
    conv_local_avg_undo, conv_local_max_undo, conv_local_pool, AvgPooler, MaxPooler,
};
use convnet::cudaconv2::filter_acts::{conv_filter_acts, local_filter_acts};
use convnet::cudaconv2::img_acts::{conv_img_acts, local_img_acts};
use convnet::cudaconv2::shapes::ConvShape;
use convnet::cudaconv2::weight_acts::{conv_weight_acts, local_weight_acts};
use convnet::nvmatrix::NvMatrix;
use convnet::synthetic::uniform;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One argument after the matrices, as the harness reads it.
#[derive(Clone, Copy)]
enum Arg {
    I(i32),
    F(f32),
}

/// Our CPU port of a call, on the call's matrices.
type Ours = Box<dyn Fn(&mut [NvMatrix])>;
/// Our CUDA kernel of a call, on the call's matrices uploaded.
type OursGpu = Box<dyn Fn(&dyn Backend, &[DevMat])>;

/// One call of an original host function: its matrices (inputs filled from seeds,
/// outputs NaN), which of them the call writes, its scalar arguments in the original's
/// order, and our CPU port of it.
struct Call {
    id: String,
    func: &'static str,
    mats: Vec<NvMatrix>,
    written: Vec<usize>,
    args: Vec<Arg>,
    ours: Ours,
    /// Compared on the GPU too (the kernels whose CPU port is bounded).
    gpu: Option<OursGpu>,
}

impl Call {
    /// The harness's line: `id func nmat (rows cols trans)* nargs (i INT | f BITS)*`.
    fn line(&self) -> String {
        let mut s = format!("{} {} {}", self.id, self.func, self.mats.len());
        for m in &self.mats {
            let _ = write!(s, " {} {} {}", m.rows(), m.cols(), m.is_trans() as u8);
        }
        let _ = write!(s, " {}", self.args.len());
        for a in &self.args {
            let _ = match a {
                Arg::I(v) => write!(s, " i {v}"),
                Arg::F(v) => write!(s, " f {:x}", v.to_bits()),
            };
        }
        s
    }
    /// The matrices after our CPU port ran on copies of the inputs.
    fn run_ours(&self) -> Vec<NvMatrix> {
        let mut mats = self.mats.clone();
        (self.ours)(&mut mats);
        mats
    }
    /// The written matrices after our CUDA kernel ran on `b`, or `None` for the calls
    /// compared on the CPU only.
    fn run_gpu(&self, b: &dyn Backend) -> Option<Vec<Vec<f32>>> {
        let run = self.gpu.as_ref()?;
        let bufs: Vec<_> = self
            .mats
            .iter()
            .map(|m| b.upload(m.data()).unwrap())
            .collect();
        let mats: Vec<DevMat> = bufs
            .iter()
            .zip(&self.mats)
            .map(|(buf, m)| DevMat::new(buf, m.rows(), m.cols()).unwrap())
            .collect();
        run(b, &mats);
        Some(
            self.written
                .iter()
                .map(|&k| b.download(&bufs[k]).unwrap())
                .collect(),
        )
    }
    /// The matrices the harness must be given: all but pure outputs (NaN-filled).
    fn is_input(&self, k: usize) -> bool {
        !self.mats[k].data().iter().all(|x| x.is_nan())
    }
}

fn input(rows: usize, cols: usize, seed: u64) -> NvMatrix {
    NvMatrix::from_vec(rows, cols, false, uniform(seed, rows * cols, -1.0, 1.0))
}
fn output(rows: usize, cols: usize) -> NvMatrix {
    NvMatrix::from_vec(rows, cols, false, vec![f32::NAN; rows * cols])
}
fn ints(v: &[i64]) -> Vec<Arg> {
    v.iter().map(|&x| Arg::I(x as i32)).collect()
}

/// filterActs and imgActs: `(images or hidActs, filters, targets, geometry (imgSizeY,
/// numModulesY, numModulesX for filterActs; imgSizeY, imgSizeX, numModulesY for
/// imgActs), paddingStart, moduleStride, numImgColors, numGroups, scaleTargets,
/// scaleOutput)`.
type ActsFn = fn(
    &NvMatrix,
    &NvMatrix,
    &mut NvMatrix,
    usize,
    usize,
    usize,
    i32,
    usize,
    usize,
    usize,
    f32,
    f32,
) -> Result<(), convnet::cudaconv2::ShapeError>;

/// filterActs, imgActs and weightActs of one layer shape; with `scaled`, each adds
/// `scaleOutput` times its result to `scaleTargets` times given targets.
fn conv_calls(sh: ConvShape, seed: u64, scaled: bool) -> Vec<Call> {
    let (n, m) = (sh.images, sh.modules());
    let pixels = sh.img_size * sh.img_size;
    let (st, so) = if scaled {
        (0.5f32, 1.25f32)
    } else {
        (0.0, 1.0)
    };
    let target = |rows, cols, k| {
        if scaled {
            input(rows, cols, seed + k)
        } else {
            output(rows, cols)
        }
    };
    let name = format!("{}{}", sh.name, if scaled { "-scaled" } else { "" });
    let (img, mx, pad) = (sh.img_size, sh.modules_x, sh.padding_start());
    let (stride, colors, groups) = (sh.stride, sh.colors, sh.groups);
    // Arguments after the matrices, in the original's order.
    let args = |geo: &[usize]| -> Vec<Arg> {
        let mut v: Vec<i64> = geo.iter().map(|&x| x as i64).collect();
        v.extend([pad as i64, stride as i64, colors as i64, groups as i64]);
        [ints(&v), vec![Arg::F(st), Arg::F(so)]].concat()
    };
    let acts = |kernel: &str, funcs: [(&'static str, ActsFn); 2], mats, geo: [usize; 3]| {
        let (func, f) = funcs[sh.local as usize];
        Call {
            id: format!("{kernel}-{name}"),
            func,
            mats,
            written: vec![2],
            gpu: None,
            args: args(&geo),
            ours: Box::new(move |x| {
                let (a, t) = x.split_at_mut(2);
                let [g0, g1, g2] = geo;
                f(
                    &a[0], &a[1], &mut t[0], g0, g1, g2, pad, stride, colors, groups, st, so,
                )
                .unwrap()
            }),
        }
    };
    let fa = acts(
        "filterActs",
        [
            ("convFilterActs", conv_filter_acts),
            ("localFilterActs", local_filter_acts),
        ],
        vec![
            input(colors * pixels, n, seed),
            input(sh.filter_rows(), sh.filters, seed + 1),
            target(sh.filters * m, n, 2),
        ],
        [img, mx, mx],
    );
    let ia = acts(
        "imgActs",
        [
            ("convImgActs", conv_img_acts),
            ("localImgActs", local_img_acts),
        ],
        vec![
            input(sh.filters * m, n, seed + 3),
            input(sh.filter_rows(), sh.filters, seed + 1),
            target(colors * pixels, n, 4),
        ],
        [img, img, mx],
    );
    let (fs, ps) = (sh.filter_size, sh.partial_sum);
    let mut wa_args = args(&[img, mx, mx, fs]);
    if !sh.local {
        wa_args.insert(8, Arg::I(ps as i32));
    }
    let wa = Call {
        id: format!("weightActs-{name}"),
        func: if sh.local {
            "localWeightActs"
        } else {
            "convWeightActs"
        },
        mats: vec![
            input(colors * pixels, n, seed),
            input(sh.filters * m, n, seed + 3),
            target(sh.weight_acts_rows(), sh.filters, 5),
        ],
        written: vec![2],
        gpu: None,
        args: wa_args,
        ours: Box::new(move |x| {
            let (a, t) = x.split_at_mut(2);
            let (i, h, t) = (&a[0], &a[1], &mut t[0]);
            let (s, c, g) = (stride, colors, groups);
            if sh.local {
                local_weight_acts(i, h, t, img, mx, mx, fs, pad, s, c, g, st, so)
            } else {
                conv_weight_acts(i, h, t, img, mx, mx, fs, pad, s, c, g, ps, st, so)
            }
            .unwrap()
        }),
    };
    vec![fa, ia, wa]
}

/// Max and average pooling of the 18% net's pool1 / pool2 shapes and their undo.
fn pool_calls(seed: u64) -> Vec<Call> {
    let n = 128;
    let mut pooled = output(32 * 16 * 16, n);
    let images = input(32 * 32 * 32, n, seed);
    conv_local_pool(&images, &mut pooled, 32, 3, 0, 2, 16, MaxPooler).unwrap();
    let pool_args = ints(&[32, 3, 0, 2, 16]);
    vec![
        Call {
            id: "convLocalPool-max-18pct-pool1".into(),
            func: "convLocalPoolMax",
            mats: vec![images.clone(), output(32 * 16 * 16, n)],
            written: vec![1],
            gpu: None,
            args: pool_args.clone(),
            ours: Box::new(|x| {
                let (a, t) = x.split_at_mut(1);
                conv_local_pool(&a[0], &mut t[0], 32, 3, 0, 2, 16, MaxPooler).unwrap()
            }),
        },
        Call {
            id: "convLocalPool-avg-18pct-pool2".into(),
            func: "convLocalPoolAvg",
            mats: vec![input(32 * 16 * 16, n, seed + 1), output(32 * 8 * 8, n)],
            written: vec![1],
            gpu: None,
            args: ints(&[32, 3, 0, 2, 8]),
            ours: Box::new(|x| {
                let (a, t) = x.split_at_mut(1);
                conv_local_pool(&a[0], &mut t[0], 32, 3, 0, 2, 8, AvgPooler).unwrap()
            }),
        },
        Call {
            id: "convLocalMaxUndo-18pct-pool1".into(),
            func: "convLocalMaxUndo",
            mats: vec![
                images,
                input(32 * 16 * 16, n, seed + 2),
                pooled,
                output(32 * 32 * 32, n),
            ],
            written: vec![3],
            gpu: None,
            args: [ints(&[3, 0, 2, 16]), vec![Arg::F(0.0), Arg::F(1.0)]].concat(),
            ours: Box::new(|x| {
                let (a, t) = x.split_at_mut(3);
                conv_local_max_undo(&a[0], &a[1], &a[2], &mut t[0], 3, 0, 2, 16, 0.0, 1.0).unwrap()
            }),
        },
        Call {
            id: "convLocalAvgUndo-18pct-pool2-scaled".into(),
            func: "convLocalAvgUndo",
            mats: vec![
                input(32 * 8 * 8, n, seed + 3),
                input(32 * 16 * 16, n, seed + 4),
            ],
            written: vec![1],
            gpu: None,
            args: [ints(&[3, 0, 2, 8, 16]), vec![Arg::F(0.5), Arg::F(1.25)]].concat(),
            ours: Box::new(|x| {
                let (a, t) = x.split_at_mut(1);
                conv_local_avg_undo(&a[0], &mut t[0], 3, 0, 2, 8, 16, 0.5, 1.25).unwrap()
            }),
        },
    ]
}

/// Response normalisation across pixels (the 18% net's rnorm1) and across maps
/// (AlexNet's rnorm1 on a 27x27 grid), each with its undo.
fn norm_calls(seed: u64) -> Vec<Call> {
    let n = 128;
    let (add, pow) = (0.001f32, 0.75f32);
    let rows = 32 * 16 * 16;
    let images = input(rows, n, seed);
    let (mut denoms, mut acts) = (output(rows, n), output(rows, n));
    conv_response_norm(&images, &mut denoms, &mut acts, 32, 3, add, pow).unwrap();
    let xrows = 48 * 27 * 27;
    let ximages = input(xrows, n, seed + 1);
    let (mut xdenoms, mut xacts) = (output(xrows, n), output(xrows, n));
    conv_response_norm_cross_map(&ximages, &mut xdenoms, &mut xacts, 48, 5, 1e-4, pow, false)
        .unwrap();
    vec![
        Call {
            id: "convResponseNorm-18pct-rnorm1".into(),
            func: "convResponseNorm",
            mats: vec![images.clone(), output(rows, n), output(rows, n)],
            written: vec![1, 2],
            gpu: Some(Box::new(move |b, m| {
                dev::conv_response_norm(b, &m[0], &m[1], &m[2], 32, 3, add, pow).unwrap()
            })),
            args: vec![Arg::I(32), Arg::I(3), Arg::F(add), Arg::F(pow)],
            ours: Box::new(move |x| {
                let (a, t) = x.split_at_mut(1);
                let (d, t) = t.split_at_mut(1);
                conv_response_norm(&a[0], &mut d[0], &mut t[0], 32, 3, add, pow).unwrap()
            }),
        },
        Call {
            id: "convResponseNormUndo-18pct-rnorm1".into(),
            func: "convResponseNormUndo",
            mats: vec![
                input(rows, n, seed + 2),
                denoms,
                images,
                acts,
                output(rows, n),
            ],
            written: vec![3, 4],
            gpu: Some(Box::new(move |b, m| {
                let (st, so) = (0.0, 1.0);
                dev::conv_response_norm_undo(
                    b, &m[0], &m[1], &m[2], &m[3], &m[4], 32, 3, add, pow, st, so,
                )
                .unwrap()
            })),
            args: vec![
                Arg::I(32),
                Arg::I(3),
                Arg::F(add),
                Arg::F(pow),
                Arg::F(0.0),
                Arg::F(1.0),
            ],
            ours: Box::new(move |x| {
                let (a, t) = x.split_at_mut(3);
                let (acts, t) = t.split_at_mut(1);
                conv_response_norm_undo(
                    &a[0],
                    &a[1],
                    &a[2],
                    &mut acts[0],
                    &mut t[0],
                    32,
                    3,
                    add,
                    pow,
                    0.0,
                    1.0,
                )
                .unwrap()
            }),
        },
        Call {
            id: "convResponseNormCrossMap-alexnet-rnorm1".into(),
            func: "convResponseNormCrossMap",
            mats: vec![ximages.clone(), output(xrows, n), output(xrows, n)],
            written: vec![1, 2],
            gpu: Some(Box::new(move |b, m| {
                dev::conv_response_norm_cross_map(b, &m[0], &m[1], &m[2], 48, 5, 1e-4, pow, false)
                    .unwrap()
            })),
            args: vec![Arg::I(48), Arg::I(5), Arg::F(1e-4), Arg::F(pow), Arg::I(0)],
            ours: Box::new(move |x| {
                let (a, t) = x.split_at_mut(1);
                let (d, t) = t.split_at_mut(1);
                conv_response_norm_cross_map(&a[0], &mut d[0], &mut t[0], 48, 5, 1e-4, pow, false)
                    .unwrap()
            }),
        },
        Call {
            id: "convResponseNormCrossMapUndo-alexnet-rnorm1".into(),
            func: "convResponseNormCrossMapUndo",
            mats: vec![
                input(xrows, n, seed + 3),
                xdenoms,
                ximages,
                xacts,
                output(xrows, n),
            ],
            written: vec![3, 4],
            gpu: Some(Box::new(move |b, m| {
                let (st, so) = (0.0, 1.0);
                let (g, d, i, a, t) = (&m[0], &m[1], &m[2], &m[3], &m[4]);
                dev::conv_response_norm_cross_map_undo(
                    b, g, d, i, a, t, 48, 5, 1e-4, pow, false, st, so,
                )
                .unwrap()
            })),
            args: vec![
                Arg::I(48),
                Arg::I(5),
                Arg::F(1e-4),
                Arg::F(pow),
                Arg::I(0),
                Arg::F(0.0),
                Arg::F(1.0),
            ],
            ours: Box::new(move |x| {
                let (a, t) = x.split_at_mut(3);
                let (acts, t) = t.split_at_mut(1);
                conv_response_norm_cross_map_undo(
                    &a[0],
                    &a[1],
                    &a[2],
                    &mut acts[0],
                    &mut t[0],
                    48,
                    5,
                    1e-4,
                    pow,
                    false,
                    0.0,
                    1.0,
                )
                .unwrap()
            }),
        },
    ]
}

/// Every case: the convolution kernels at our nets' shapes (and AlexNet's conv1-conv5,
/// and an awkward 100-image batch), scaled forms, grouped filters, then pooling and
/// normalisation.
fn calls() -> Vec<Call> {
    let mut v = Vec::new();
    for (k, name) in [
        "18pct-conv1",
        "18pct-conv2",
        "18pct-conv3",
        "convlocal-local3",
        "alexnet-conv1",
        "alexnet-conv2",
        "alexnet-conv3",
        "alexnet-conv5",
    ]
    .iter()
    .enumerate()
    {
        let sh = ConvShape::named(name).expect("net shape");
        v.extend(conv_calls(sh, 100 * k as u64, false));
    }
    let conv2 = ConvShape::named("18pct-conv2").unwrap();
    v.extend(conv_calls(conv2, 900, true));
    let odd = ConvShape {
        name: "odd-100img-groups2-stride2",
        img_size: 15,
        colors: 16,
        filters: 32,
        filter_size: 4,
        padding: 1,
        stride: 2,
        groups: 2,
        modules_x: 7,
        partial_sum: 7,
        local: false,
        images: 100,
    };
    v.extend(conv_calls(odd, 1000, false));
    v.extend(pool_calls(2000));
    v.extend(norm_calls(3000));
    v
}

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/kernels/original.tsv")
}

/// How far `got` is from `want` (the original's output).
#[derive(Default)]
struct Diff {
    /// Elements whose bits differ.
    differ: usize,
    /// The largest distance in units in the last place of the element
    /// (`u32::MAX`: a sign, infinity or NaN differs).
    ulps: u32,
    /// The largest distance in units in the last place of the output's largest
    /// magnitude: the measure for outputs whose terms cancel.
    top_ulps: f64,
}

impl Diff {
    fn of(got: &[f32], want: &[f32]) -> Diff {
        let top = want
            .iter()
            .fold(0f32, |m, x| if x.is_finite() { m.max(x.abs()) } else { m });
        let ulp_top = (top as f64) * f32::EPSILON as f64;
        let mut d = Diff::default();
        for (&g, &w) in got.iter().zip(want) {
            if g.to_bits() == w.to_bits() {
                continue;
            }
            d.differ += 1;
            let same_side = g.is_finite() && w.is_finite() && (g >= 0.0) == (w >= 0.0);
            let u = if same_side {
                g.to_bits().abs_diff(w.to_bits())
            } else {
                u32::MAX
            };
            d.ulps = d.ulps.max(u);
            let t = if g.is_finite() && w.is_finite() && ulp_top > 0.0 {
                (g as f64 - w as f64).abs() / ulp_top
            } else {
                f64::INFINITY
            };
            d.top_ulps = d.top_ulps.max(t);
        }
        d
    }
    fn columns(&self) -> String {
        format!("{}\t{}\t{:.2}", self.differ, self.ulps, self.top_ulps)
    }
}

const HEADER: &str = "# output\tsha256 of the original's f32 bits\telements\t\
ours (CPU): differing elements\tmax ulps\tmax ulps of the largest |value|\t\
ours (CUDA, on that GPU): differing elements\tmax ulps\tmax ulps of the largest |value|\n";

#[test]
fn check_against_recorded_originals() {
    let path = golden_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        skip(&format!(
            "no {} (made on a GPU by make_originals)",
            path.display()
        ));
        return;
    };
    let recorded: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    let mut checked = 0;
    for call in calls() {
        let ours = call.run_ours();
        for &k in &call.written {
            let name = format!("{}.{k}", call.id);
            let row = recorded
                .iter()
                .find(|r| r[0] == name)
                .unwrap_or_else(|| panic!("{name}: not in {}", path.display()));
            let (hash, count, differ) = (row[1], row[2], row[3]);
            let out = ours[k].data();
            assert_eq!(count, out.len().to_string(), "{name}: element count");
            if differ == "0" {
                assert_eq!(
                    hash,
                    bits_hash(out),
                    "{name}: our bits differ from the original's"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        recorded.len(),
        "cases in {} but not made here",
        path.display()
    );
}

#[test]
fn make_originals() {
    let Ok(harness) = std::env::var("CONVNET_ORIGINAL_KERNELS") else {
        skip("CONVNET_ORIGINAL_KERNELS is not set (a build of the original kernels, GPU)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("convnet-originals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let calls = calls();
    let mut lines = String::new();
    for call in &calls {
        for (k, m) in call.mats.iter().enumerate() {
            if call.is_input(k) {
                let bytes: Vec<u8> = m.data().iter().flat_map(|x| x.to_le_bytes()).collect();
                std::fs::write(dir.join(format!("{}.{k}", call.id)), bytes).unwrap();
            }
        }
        lines += &call.line();
        lines.push('\n');
    }
    std::fs::write(dir.join("calls.txt"), lines).unwrap();
    let status = std::process::Command::new(&harness)
        .arg(&dir)
        .status()
        .unwrap_or_else(|e| panic!("{harness}: {e}"));
    assert!(status.success(), "{harness} failed: {status}");
    let gpu = gpus().into_iter().next();
    let mut table = String::from(HEADER);
    let mut gpu_differ = Vec::new();
    for call in &calls {
        let ours = call.run_ours();
        let on_gpu = gpu.as_ref().and_then(|b| call.run_gpu(b));
        for (j, &k) in call.written.iter().enumerate() {
            let raw = std::fs::read(dir.join(format!("{}.{k}.out", call.id))).unwrap();
            let orig: Vec<f32> = raw[12..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            let name = format!("{}.{k}", call.id);
            assert_eq!(orig.len(), ours[k].data().len(), "{name}: element count");
            let cpu = Diff::of(ours[k].data(), &orig);
            let dev = on_gpu.as_ref().map(|o| Diff::of(&o[j], &orig));
            let dev_cols = dev.as_ref().map_or("-\t-\t-".to_string(), Diff::columns);
            eprintln!(
                "{name}: {} elements; CPU {}; CUDA {dev_cols}",
                orig.len(),
                cpu.columns()
            );
            let _ = writeln!(
                table,
                "{name}\t{}\t{}\t{}\t{dev_cols}",
                bits_hash(&orig),
                orig.len(),
                cpu.columns()
            );
            if dev.is_some_and(|d| d.differ > 0) {
                gpu_differ.push(name);
            }
        }
    }
    let out = std::env::var("CONVNET_ORIGINAL_OUT").map_or_else(|_| golden_path(), PathBuf::from);
    std::fs::write(&out, table).unwrap();
    eprintln!("wrote {}", out.display());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        gpu_differ.is_empty(),
        "our CUDA kernels differ from the original's: {gpu_differ:?}"
    );
}
