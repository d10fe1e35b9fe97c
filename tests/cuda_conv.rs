//! Our CUDA convolution kernels (cuda/filter_acts.cu, img_acts.cu, weight_acts.cu),
//! through their launches (src/cuda/launch/conv.rs), give the CPU port's bits on every
//! backend (`common::emu::backends()`): every variant the host code picks, the conv
//! shapes of our nets and of AlexNet 2012, awkward sizes, and values (underflow to -0,
//! Inf) that make the kernels' zero-product terms matter. All three kernels are exact
//! tier, so every comparison is bit for bit (any NaN equals any NaN: the CPU port does
//! not reproduce NaN payloads). Shapes the CPU port rejects are rejected here too.

mod common;

use common::emu::backends;
use convnet::cuda::launch::conv as gpu;
use convnet::cuda::{Backend, DevBuf, DevMat};
use convnet::cudaconv2::filter_acts::{self as cpu_f, filter_acts_variant};
use convnet::cudaconv2::img_acts::{self as cpu_i, img_acts_variant};
use convnet::cudaconv2::shapes::{ConvShape, NET_SHAPES};
use convnet::cudaconv2::weight_acts::{self as cpu_w, weight_acts_launch};
use convnet::nvmatrix::NvMatrix;
use convnet::synthetic::SplitMix64;
use std::collections::BTreeSet;

/// One layer's arguments; each case runs filterActs, imgActs and weightActs.
#[derive(Clone, Debug)]
struct Case {
    img_y: usize,
    img_x: usize,
    colors: usize,
    filters: usize,
    fsize: usize,
    pad: usize,
    stride: usize,
    groups: usize,
    images: usize,
    local: bool,
    /// randSparse: `(numFilterColors, filterConns)`, each slice a permutation.
    sparse: Option<(usize, Vec<i32>)>,
    partial_sum: usize,
    scale_targets: f32,
    scale_output: f32,
    /// Inputs of ±1e-23 (every product underflows to ±0), ±0 and a rare Inf, so that
    /// the sign of zero and NaN depend on every zero-product term (else uniform).
    specials: bool,
}

#[allow(clippy::too_many_arguments)]
fn case(
    img: usize,
    colors: usize,
    filters: usize,
    fsize: usize,
    pad: usize,
    stride: usize,
    images: usize,
) -> Case {
    Case {
        img_y: img,
        img_x: img,
        colors,
        filters,
        fsize,
        pad,
        stride,
        groups: 1,
        images,
        local: false,
        sparse: None,
        partial_sum: 1,
        scale_targets: 0.0,
        scale_output: 1.0,
        specials: false,
    }
}

impl Case {
    fn from_shape(s: &ConvShape, images: usize) -> Case {
        Case {
            groups: s.groups,
            local: s.local,
            partial_sum: s.partial_sum,
            ..case(
                s.img_size,
                s.colors,
                s.filters,
                s.filter_size,
                s.padding,
                s.stride,
                images,
            )
        }
    }
    fn groups(self, groups: usize) -> Case {
        Case { groups, ..self }
    }
    fn local(self) -> Case {
        Case {
            local: true,
            ..self
        }
    }
    fn partial(self, partial_sum: usize) -> Case {
        Case {
            partial_sum,
            ..self
        }
    }
    fn scaled(self) -> Case {
        Case {
            scale_targets: 0.75,
            scale_output: -1.25,
            ..self
        }
    }
    fn rect(self, img_y: usize) -> Case {
        Case { img_y, ..self }
    }
    fn specials(self) -> Case {
        Case {
            specials: true,
            ..self
        }
    }
    /// randSparse with `nfc` colours per group: slice `s` (groups `s*gps ..`) connects
    /// to a random permutation of the image colours.
    fn sparse(self, nfc: usize, seed: u64) -> Case {
        let over_sample = nfc * self.groups / self.colors;
        let gps = self.groups / over_sample;
        let mut g = SplitMix64::new(seed);
        let mut ix = Vec::new();
        for _ in 0..over_sample {
            let mut p: Vec<i32> = (0..self.colors as i32).collect();
            for i in (1..p.len()).rev() {
                p.swap(i, (g.next_u64() % (i as u64 + 1)) as usize);
            }
            ix.extend_from_slice(&p[..gps * nfc]);
        }
        Case {
            sparse: Some((nfc, ix)),
            ..self
        }
    }
    fn modules(&self, img: usize) -> usize {
        1 + (2 * self.pad + img - self.fsize).div_ceil(self.stride)
    }
    fn my(&self) -> usize {
        self.modules(self.img_y)
    }
    fn mx(&self) -> usize {
        self.modules(self.img_x)
    }
    fn nfc(&self) -> usize {
        self.sparse
            .as_ref()
            .map_or(self.colors / self.groups, |s| s.0)
    }
    fn img_rows(&self) -> usize {
        self.colors * self.img_y * self.img_x
    }
    fn filter_rows(&self) -> usize {
        let per = self.nfc() * self.fsize * self.fsize;
        per * if self.local { self.my() * self.mx() } else { 1 }
    }
    fn hid_rows(&self) -> usize {
        self.filters * self.my() * self.mx()
    }
    fn over_sample(&self) -> usize {
        self.sparse
            .as_ref()
            .map_or(1, |(nfc, _)| nfc * self.groups / self.colors)
    }
    fn label(&self) -> String {
        let mut s = format!(
            "{}{}x{}x{}-f{}-fs{}-p{}-s{}-g{}-n{}-ps{}",
            if self.local { "local" } else { "conv" },
            self.img_y,
            self.img_x,
            self.colors,
            self.filters,
            self.fsize,
            self.pad,
            self.stride,
            self.groups,
            self.images,
            self.partial_sum
        );
        if let Some((nfc, _)) = &self.sparse {
            s += &format!("-rand{nfc}");
        }
        if self.scale_targets != 0.0 {
            s += "-scaled";
        }
        if self.specials {
            s += "-specials";
        }
        s
    }
    /// A seeded `rows x cols` input of magnitude `scale` (or of specials).
    fn input(&self, seed: u64, rows: usize, cols: usize, scale: f32) -> NvMatrix {
        let mut g = SplitMix64::new(seed);
        let v = (0..rows * cols)
            .map(|_| {
                if !self.specials {
                    return g.uniform(-scale, scale);
                }
                match g.next_u64() % 512 {
                    0..=223 => 1e-23,
                    224..=447 => -1e-23,
                    448..=479 => 0.0,
                    480..=510 => -0.0,
                    _ => f32::INFINITY,
                }
            })
            .collect();
        NvMatrix::from_vec(rows, cols, false, v)
    }
}

/// `a` and `b` hold the same bits (any NaN equals any NaN); else the first difference.
fn first_difference(a: &[f32], b: &[f32]) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("lengths {} and {}", a.len(), b.len()));
    }
    let i = a
        .iter()
        .zip(b)
        .position(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()))?;
    Some(format!("element {i}: {:e} vs {:e}", a[i], b[i]))
}

/// Runs the CPU function `$cpu` and the launch `$gpu` on backend `$b` with inputs `$x`,
/// `$y`, old targets `$t` and the same remaining arguments; panics unless both fail or
/// both give the same bits. Evaluates to whether they ran.
macro_rules! compare {
    ($what:expr, $b:expr, $cpu:path, $gpu:path, $x:expr, $y:expr, $t:expr, $($arg:expr),* $(,)?) => {{
        let (b, x, y, t): (&dyn Backend, &NvMatrix, &NvMatrix, &NvMatrix) = ($b, $x, $y, $t);
        let mut cpu_t = t.clone();
        let cpu = $cpu(x, y, &mut cpu_t, $($arg),*);
        let up = |m: &NvMatrix| -> DevBuf { b.upload(m.data()).unwrap() };
        let (bx, by, bt) = (up(x), up(y), up(t));
        let dev = |buf, m: &NvMatrix| DevMat::new(buf, m.rows(), m.cols()).unwrap();
        let got = $gpu(b, &dev(&bx, x), &dev(&by, y), &dev(&bt, t), $($arg),*);
        match (cpu, got) {
            (Ok(()), Ok(())) => {
                if let Some(d) = first_difference(cpu_t.data(), &b.download(&bt).unwrap()) {
                    panic!("{} on {}: {d}", $what, b.name());
                }
                true
            }
            (Err(_), Err(_)) => false,
            (c, g) => panic!("{} on {}: CPU {c:?}, device {g:?}", $what, b.name()),
        }
    }};
}

/// The variants (the original's template instances) that ran, per kernel.
#[derive(Default)]
struct Seen {
    filter: BTreeSet<String>,
    img: BTreeSet<String>,
    weight: BTreeSet<String>,
}

/// Runs the three kernels of `c` on every backend against the CPU port; returns how
/// many ran (the others were rejected by both) and records their variants.
fn check(c: &Case, seed: u64, seen: &mut Seen) -> usize {
    let what = c.label();
    let (n, nfc, my, mx) = (c.images, c.nfc(), c.my(), c.mx());
    let (st, so, ps) = (c.scale_targets, c.scale_output, -(c.pad as i32));
    let fpg = c.filters / c.groups;
    let images = c.input(seed, c.img_rows(), n, 1.0);
    let filters = c.input(seed + 1, c.filter_rows(), c.filters, 0.2);
    let hid = c.input(seed + 2, c.hid_rows(), n, 1.0);
    let acts_old = c.input(seed + 3, c.hid_rows(), n, 1.0);
    let grad_old = c.input(seed + 4, c.over_sample() * c.img_rows(), n, 1.0);
    let wrows = if c.local {
        c.filter_rows()
    } else {
        let ps = if c.partial_sum == 0 {
            my * mx
        } else {
            c.partial_sum
        };
        my * mx / ps * nfc * c.fsize * c.fsize
    };
    let w_old = c.input(seed + 5, wrows, c.filters, 1.0);
    let (imgy, imgx, fs) = (c.img_y, c.img_x, c.fsize);
    let mut ran = 0;
    for b in backends() {
        let b = &*b;
        let (f, i, w) = match (&c.sparse, c.local) {
            (None, false) => (
                compare!(
                    format!("filterActs {what}"),
                    b,
                    cpu_f::conv_filter_acts,
                    gpu::conv_filter_acts,
                    &images,
                    &filters,
                    &acts_old,
                    imgy,
                    my,
                    mx,
                    ps,
                    c.stride,
                    c.colors,
                    c.groups,
                    st,
                    so
                ),
                compare!(
                    format!("imgActs {what}"),
                    b,
                    cpu_i::conv_img_acts,
                    gpu::conv_img_acts,
                    &hid,
                    &filters,
                    &grad_old,
                    imgy,
                    imgx,
                    my,
                    ps,
                    c.stride,
                    c.colors,
                    c.groups,
                    st,
                    so
                ),
                compare!(
                    format!("weightActs {what}"),
                    b,
                    cpu_w::conv_weight_acts,
                    gpu::conv_weight_acts,
                    &images,
                    &hid,
                    &w_old,
                    imgy,
                    my,
                    mx,
                    fs,
                    ps,
                    c.stride,
                    c.colors,
                    c.groups,
                    c.partial_sum,
                    st,
                    so
                ),
            ),
            (None, true) => (
                compare!(
                    format!("filterActs {what}"),
                    b,
                    cpu_f::local_filter_acts,
                    gpu::local_filter_acts,
                    &images,
                    &filters,
                    &acts_old,
                    imgy,
                    my,
                    mx,
                    ps,
                    c.stride,
                    c.colors,
                    c.groups,
                    st,
                    so
                ),
                compare!(
                    format!("imgActs {what}"),
                    b,
                    cpu_i::local_img_acts,
                    gpu::local_img_acts,
                    &hid,
                    &filters,
                    &grad_old,
                    imgy,
                    imgx,
                    my,
                    ps,
                    c.stride,
                    c.colors,
                    c.groups,
                    st,
                    so
                ),
                compare!(
                    format!("weightActs {what}"),
                    b,
                    cpu_w::local_weight_acts,
                    gpu::local_weight_acts,
                    &images,
                    &hid,
                    &w_old,
                    imgy,
                    my,
                    mx,
                    fs,
                    ps,
                    c.stride,
                    c.colors,
                    c.groups,
                    st,
                    so
                ),
            ),
            (Some((nfc, ix)), false) => (
                compare!(
                    format!("filterActs {what}"),
                    b,
                    cpu_f::conv_filter_acts_sparse,
                    gpu::conv_filter_acts_sparse,
                    &images,
                    &filters,
                    &acts_old,
                    ix,
                    imgy,
                    my,
                    mx,
                    ps,
                    c.stride,
                    c.colors,
                    *nfc,
                    c.groups,
                    st,
                    so
                ),
                compare!(
                    format!("imgActs {what}"),
                    b,
                    cpu_i::conv_img_acts_sparse,
                    gpu::conv_img_acts_sparse,
                    &hid,
                    &filters,
                    &grad_old,
                    ix,
                    imgy,
                    imgx,
                    my,
                    ps,
                    c.stride,
                    c.colors,
                    *nfc,
                    c.groups,
                    st,
                    so
                ),
                compare!(
                    format!("weightActs {what}"),
                    b,
                    cpu_w::conv_weight_acts_sparse,
                    gpu::conv_weight_acts_sparse,
                    &images,
                    &hid,
                    &w_old,
                    ix,
                    imgy,
                    my,
                    mx,
                    fs,
                    ps,
                    c.stride,
                    c.colors,
                    *nfc,
                    c.groups,
                    c.partial_sum,
                    st,
                    so
                ),
            ),
            (Some((nfc, ix)), true) => (
                compare!(
                    format!("filterActs {what}"),
                    b,
                    cpu_f::local_filter_acts_sparse,
                    gpu::local_filter_acts_sparse,
                    &images,
                    &filters,
                    &acts_old,
                    ix,
                    imgy,
                    my,
                    mx,
                    ps,
                    c.stride,
                    c.colors,
                    *nfc,
                    c.groups,
                    st,
                    so
                ),
                compare!(
                    format!("imgActs {what}"),
                    b,
                    cpu_i::local_img_acts_sparse,
                    gpu::local_img_acts_sparse,
                    &hid,
                    &filters,
                    &grad_old,
                    ix,
                    imgy,
                    imgx,
                    my,
                    ps,
                    c.stride,
                    c.colors,
                    *nfc,
                    c.groups,
                    st,
                    so
                ),
                compare!(
                    format!("weightActs {what}"),
                    b,
                    cpu_w::local_weight_acts_sparse,
                    gpu::local_weight_acts_sparse,
                    &images,
                    &hid,
                    &w_old,
                    ix,
                    imgy,
                    my,
                    mx,
                    fs,
                    ps,
                    c.stride,
                    c.colors,
                    *nfc,
                    c.groups,
                    st,
                    so
                ),
            ),
        };
        let sparse = c.sparse.is_some();
        if f {
            let v = filter_acts_variant(n, c.colors, fpg, st, sparse);
            seen.filter.insert(v.to_string());
        }
        if i {
            let v = img_acts_variant(n, nfc, sparse, st != 0.0, !c.local);
            seen.img.insert(format!("{v:?}"));
        }
        if w {
            let ps = if c.local { 1 } else { c.partial_sum };
            let ps = if ps == 0 { my * mx } else { ps };
            let v = weight_acts_launch(
                nfc,
                c.filters,
                c.groups,
                n,
                my * mx,
                ps,
                fs * fs,
                st != 0.0,
                sparse,
            );
            seen.weight.insert(v.to_string());
        }
        ran += f as usize + i as usize + w as usize;
    }
    ran
}

/// Runs every case; each must run at least one kernel (where a backend exists).
fn check_all(cases: &[Case]) -> Seen {
    let mut seen = Seen::default();
    let have_backend = !backends().is_empty();
    for (k, c) in cases.iter().enumerate() {
        let t = std::time::Instant::now();
        let ran = check(c, 1000 + 10 * k as u64, &mut seen);
        eprintln!(
            "{}: {ran} kernel(s) in {:.2} s",
            c.label(),
            t.elapsed().as_secs_f64()
        );
        assert!(
            ran > 0 || !have_backend,
            "{}: no kernel accepts it",
            c.label()
        );
    }
    seen
}

/// `needle` occurs in some entry of `set`.
fn covers(set: &BTreeSet<String>, needle: &str) -> bool {
    set.iter().any(|s| s.contains(needle))
}

/// The template arguments of a variant's name `kernel<a, b, ...>`.
fn template_args(v: &str) -> Vec<String> {
    let inner = &v[v.find('<').unwrap() + 1..v.rfind('>').unwrap()];
    inner.split(',').map(|a| a.trim().to_string()).collect()
}

#[test]
fn every_variant_matches_the_cpu() {
    let cases = [
        case(8, 1, 32, 3, 1, 1, 128),
        case(7, 2, 16, 3, 0, 2, 64).scaled(),
        case(9, 3, 48, 5, 2, 1, 40),
        case(6, 3, 64, 3, 1, 1, 33).scaled(),
        case(5, 4, 64, 3, 1, 1, 24),
        case(6, 8, 32, 3, 1, 1, 64).scaled(),
        case(5, 16, 16, 3, 1, 1, 128).local(),
        case(6, 8, 32, 3, 1, 1, 20).groups(2),
        case(6, 6, 16, 3, 1, 1, 8),
        case(6, 8, 64, 3, 1, 1, 16).groups(4).sparse(4, 1),
        case(6, 16, 64, 3, 1, 1, 64).groups(4).sparse(8, 2).scaled(),
        case(5, 8, 32, 3, 1, 1, 8).groups(2).sparse(4, 3).local(),
        case(5, 4, 32, 3, 1, 1, 9).groups(2).sparse(2, 4),
        case(6, 32, 32, 3, 1, 1, 8).groups(2).sparse(16, 5).local(),
        case(4, 2, 16, 1, 0, 1, 8),
    ];
    let seen = check_all(&cases);
    if backends().is_empty() {
        return;
    }
    // filterActs_YxX_<kernel><B_Y, B_X, imgsPerThread, filtersPerThread, colours, scale,
    // checkImgBounds>: every kernel and every value of every argument.
    let f: Vec<(String, Vec<String>)> = seen
        .filter
        .iter()
        .map(|v| (v[..v.find('<').unwrap()].to_string(), template_args(v)))
        .collect();
    let has = |k: &str, i: usize, a: &str| f.iter().any(|(n, t)| n.ends_with(k) && t[i] == a);
    for c in ["1", "2", "3"] {
        assert!(
            has("_color", 4, c),
            "filterActs colour kernel with {c} colours"
        );
    }
    for (k, i, a) in [
        ("_sparse", 4, "2"),
        ("_sparse_random", 4, "2"),
        ("", 2, "4"),
        ("", 2, "2"),
        ("", 2, "1"),
        ("", 3, "8"),
        ("", 3, "4"),
        ("", 5, "true"),
        ("", 5, "false"),
        ("", 6, "true"),
        ("", 6, "false"),
    ] {
        assert!(
            has(k, i, a),
            "filterActs{k} with template argument {i} = {a}: {f:?}"
        );
    }
    for needle in [
        "Color { num_colors: 1 }",
        "Color { num_colors: 2 }",
        "Color { num_colors: 3 }",
        "kernel: MediumColor, threads_x: 16, imgs_per_thread: 2, colors_per_thread: 2",
        "kernel: MediumColor, threads_x: 16, imgs_per_thread: 2, colors_per_thread: 4",
        "kernel: ManyColor, threads_x: 32, imgs_per_thread: 2, colors_per_thread: 2",
        "kernel: ManyColor, threads_x: 32, imgs_per_thread: 4, colors_per_thread: 4",
        "MediumColorSparseRand",
        "ManyColorSparseRand",
        "imgs_per_thread: 8",
        "imgs_per_thread: 1",
        "check_case_bounds: true",
        "check_case_bounds: false",
        "scale: true",
        "conv: false",
    ] {
        assert!(
            covers(&seen.img, needle),
            "imgActs {needle}: {:?}",
            seen.img
        );
    }
    for needle in [
        "conv_weight_acts_c<4,32,8,32,1,",
        "conv_weight_acts_c<8,16,2,32,2,true",
        "conv_weight_acts_c<8,16,2,32,3,false,true>",
        "conv_weight_acts_c<4,32,5,32,3,true",
        "conv_weight_acts_mc_mf<4,32,2,4,",
        "conv_weight_acts_mc_mf<8,16,2,8,",
        "conv_weight_acts_mc_mf<8,16,1,8,",
        "conv_weight_acts_mc_mf_rand<8,16,1,4,",
        "conv_weight_acts_mc_mf_rand<8,16,1,8,32,true",
        ",false>",
    ] {
        assert!(
            covers(&seen.weight, needle),
            "weightActs {needle}: {:?}",
            seen.weight
        );
    }
}

/// The conv and local layers of cifar10-80sec / -18pct (the same three conv shapes) and
/// cifar10-conv-local (layer-defs/), with a few images.
#[test]
fn net_shapes_match_the_cpu() {
    let cases: Vec<Case> = NET_SHAPES
        .iter()
        .filter(|s| !s.name.starts_with("alexnet"))
        .map(|s| Case::from_shape(s, 8))
        .collect();
    check_all(&cases);
}

/// AlexNet 2012 conv1-conv5 (one tower; layer-defs/alexnet-2012-*.cfg), with a few
/// images and, to keep the emulation fast, 16 (conv1) or 64 filters instead of 48 or
/// 128-192: the geometry is the layers' and so is every variant the host code picks
/// (asserted), and no output's operation sequence depends on the filter count.
#[test]
fn alexnet_shapes_match_the_cpu() {
    let n = 8;
    let cases: Vec<Case> = NET_SHAPES
        .iter()
        .filter(|s| s.name.starts_with("alexnet"))
        .map(|s| {
            let cut = ConvShape {
                filters: if s.filters % 32 == 0 { 64 } else { 16 },
                ..*s
            };
            let variants = |s: &ConvShape| {
                let nfc = s.filter_colors();
                (
                    filter_acts_variant(n, s.colors, s.filters / s.groups, 0.0, false),
                    weight_acts_launch(
                        nfc,
                        s.filters,
                        s.groups,
                        n,
                        s.modules(),
                        s.partial_sum,
                        1,
                        false,
                        false,
                    )
                    .kernel,
                )
            };
            assert_eq!(variants(s), variants(&cut), "{}", s.name);
            Case::from_shape(&cut, n)
        })
        .collect();
    check_all(&cases);
}

/// Image counts not divisible by 32 or 128 (1, 9, 33, 40, 65, 130), padding, strides
/// 2 and 3, groups, partialSum 0 and > 1, scaled targets, non-square images (with the
/// region quirk of img_acts_mediumcolor_sparse_rand, and a shape where it makes imgActs
/// fail on both), filter sizes 1, 2 and 4, and inputs whose zero-product terms decide
/// the sign of zero and NaN.
#[test]
fn awkward_sizes_match_the_cpu() {
    let cases = [
        case(7, 3, 16, 3, 1, 2, 1),
        case(9, 4, 32, 4, 1, 3, 33).partial(0),
        case(10, 3, 32, 5, 2, 2, 65).partial(9).scaled(),
        case(8, 2, 16, 3, 1, 1, 40).rect(5).partial(2),
        case(8, 8, 64, 3, 1, 1, 16)
            .rect(4)
            .groups(4)
            .sparse(4, 7)
            .scaled(),
        case(4, 8, 64, 3, 1, 1, 16).rect(12).groups(4).sparse(4, 8),
        case(6, 16, 64, 3, 0, 1, 24).groups(4).partial(0).scaled(),
        case(9, 4, 32, 3, 1, 2, 17).local().scaled(),
        case(5, 2, 16, 3, 1, 1, 130).partial(5),
        case(6, 1, 16, 2, 1, 2, 9).partial(4),
        case(3, 3, 16, 1, 0, 1, 33).partial(3),
        case(6, 3, 32, 3, 2, 1, 40).specials().partial(0),
        case(6, 3, 32, 3, 2, 1, 8).specials().partial(2).scaled(),
        case(5, 8, 32, 5, 2, 1, 40)
            .groups(2)
            .sparse(4, 9)
            .specials(),
        case(7, 4, 16, 4, 2, 2, 9).local().specials(),
    ];
    check_all(&cases);
}

/// The short overloads of convWeightActsSparse / localWeightActsSparse (scaleTargets 1,
/// scaleOutput 0: the original's bug) keep the targets as the CPU port does.
#[test]
fn short_sparse_weight_acts_match_the_cpu() {
    for c in [
        case(6, 8, 32, 3, 1, 1, 8).groups(2).sparse(4, 11),
        case(6, 8, 32, 3, 1, 1, 8)
            .groups(2)
            .sparse(4, 12)
            .local()
            .specials(),
    ] {
        let (nfc, ix) = c.sparse.clone().unwrap();
        let (my, mx, ps) = (c.my(), c.mx(), -(c.pad as i32));
        let images = c.input(1, c.img_rows(), c.images, 1.0);
        let hid = c.input(2, c.hid_rows(), c.images, 1.0);
        let rows = if c.local {
            c.filter_rows()
        } else {
            nfc * c.fsize * c.fsize
        };
        let old = c.input(3, rows, c.filters, 1.0);
        for b in backends() {
            let what = format!("short weightActs {}", c.label());
            let ran = if c.local {
                compare!(
                    what,
                    &*b,
                    cpu_w::local_weight_acts_sparse_short,
                    gpu::local_weight_acts_sparse_short,
                    &images,
                    &hid,
                    &old,
                    &ix,
                    c.img_y,
                    my,
                    mx,
                    c.fsize,
                    ps,
                    c.stride,
                    c.colors,
                    nfc,
                    c.groups
                )
            } else {
                compare!(
                    what,
                    &*b,
                    cpu_w::conv_weight_acts_sparse_short,
                    gpu::conv_weight_acts_sparse_short,
                    &images,
                    &hid,
                    &old,
                    &ix,
                    c.img_y,
                    my,
                    mx,
                    c.fsize,
                    ps,
                    c.stride,
                    c.colors,
                    nfc,
                    c.groups
                )
            };
            assert!(ran, "{}", c.label());
        }
    }
}

/// Shapes the CPU port rejects fail on the device too (`check` panics otherwise), and
/// so do device targets of the wrong shape, which the device cannot resize.
#[test]
fn rejected_shapes_are_rejected() {
    let mut seen = Seen::default();
    for c in [
        case(6, 3, 24, 3, 1, 1, 8),
        case(6, 5, 16, 3, 1, 1, 8),
        case(6, 3, 16, 3, 1, 1, 8).groups(3),
        case(6, 3, 16, 3, 1, 1, 8).partial(7),
        case(6, 3, 16, 5, 0, 1, 8).rect(4),
    ] {
        assert!(check(&c, 7, &mut seen) < 3, "{}", c.label());
    }
    let c = case(6, 3, 16, 3, 1, 1, 8);
    let images = c.input(1, c.img_rows(), c.images, 1.0);
    let filters = c.input(2, c.filter_rows(), c.filters, 0.2);
    for b in backends() {
        let (bi, bf) = (
            b.upload(images.data()).unwrap(),
            b.upload(filters.data()).unwrap(),
        );
        let bt = b.alloc(c.hid_rows() * c.images + 1).unwrap();
        assert!(DevMat::new(&bt, c.hid_rows(), c.images).is_err());
        let t = DevMat::new(&bt, c.hid_rows() * c.images + 1, 1).unwrap();
        let i = DevMat::new(&bi, images.rows(), images.cols()).unwrap();
        let f = DevMat::new(&bf, filters.rows(), filters.cols()).unwrap();
        let r = gpu::conv_filter_acts(&*b, &i, &f, &t, 6, 6, 6, -1, 1, 3, 1, 0.0, 1.0);
        assert!(r.unwrap_err().0.contains("not resized"));
    }
}

/// `convnet bench kernels --device cuda` times the three kernels of a net shape on each
/// backend (each line with its shape's flops and a positive time), and 64 MiB copies.
#[test]
fn the_gpu_bench_times_each_kernel() {
    for b in backends() {
        let mut lines = Vec::new();
        convnet::bench::gpu_kernels(&*b, Some("18pct-conv3"), 0.0, |l| lines.push(l)).unwrap();
        let kernels: Vec<&str> = lines.iter().map(|l| l.kernel).collect();
        assert_eq!(
            kernels,
            ["filterActs", "imgActs", "weightActs"],
            "on {}",
            b.name()
        );
        assert!(lines.iter().all(|l| l.secs > 0.0 && l.flops.is_some()));
        eprintln!("{}", lines[0].json(None));
        let mut copies = Vec::new();
        convnet::bench::gpu_kernels(&*b, Some("load"), 0.0, |l| copies.push(l)).unwrap();
        let kernels: Vec<&str> = copies.iter().map(|l| l.kernel).collect();
        assert_eq!(kernels, ["upload", "download"], "on {}", b.name());
        assert!(copies
            .iter()
            .all(|l| l.bytes == Some(64.0 * 1024.0 * 1024.0)));
    }
}
