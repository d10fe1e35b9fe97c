//! Tests of cudaconv2::filter_acts (convFilterActs, localFilterActs, convFilterActsSparse,
//! localFilterActsSparse).
//!
//! - reference: a naive float64 convolution on small and awkward shapes;
//! - emulation: a literal transcription of one GPU thread of the original kernels (its
//!   shared-memory slots, stale ones included, and `prod += img*w` as an FMA), compared
//!   bit for bit — also with Inf, NaN and underflow to -0 placed where the kernels'
//!   zero-product terms matter;
//! - regression: exact bits of every kernel instantiation the dispatch can pick and of the
//!   net shapes, each with 1 and 2 threads (golden/kernels/filter_acts.tsv);
//! - every host assert gives `Err(ShapeError)`.

mod common;

use common::{assert_close, same_bits_any_threads_or_lanes, Regression};
use convnet::cudaconv2::filter_acts::*;
use convnet::cudaconv2::shapes::{ConvShape, NET_SHAPES};
use convnet::cudaconv2::ShapeError;
use convnet::nvmatrix::NvMatrix;
use convnet::synthetic::{uniform, SplitMix64};
use std::collections::HashSet;

/// One call's arguments.
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
    /// `Some((numFilterColors, colorIndices))`: the random sparse form.
    sparse: Option<(usize, Vec<i32>)>,
    scale_targets: f32,
    scale_output: f32,
}

impl Case {
    fn new(
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
            scale_targets: 0.0,
            scale_output: 1.0,
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
    fn scaled(self, scale_targets: f32, scale_output: f32) -> Case {
        Case {
            scale_targets,
            scale_output,
            ..self
        }
    }
    /// Random sparse connectivity: `nfc` colours per group drawn from the image colours.
    fn random(self, nfc: usize, seed: u64) -> Case {
        let mut g = SplitMix64::new(seed);
        let ix = (0..self.groups * nfc)
            .map(|_| (g.next_u64() % self.colors as u64) as i32)
            .collect();
        Case {
            sparse: Some((nfc, ix)),
            ..self
        }
    }
    /// The layers' module count: `1 + ceil((2*padding + imgSize - filterSize) / stride)`.
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
    fn filter_rows(&self) -> usize {
        let per = self.nfc() * self.fsize * self.fsize;
        if self.local {
            per * self.my() * self.mx()
        } else {
            per
        }
    }
    fn out_rows(&self) -> usize {
        self.filters * self.my() * self.mx()
    }
    /// Image colour of filter colour `c` in group `g`.
    fn color(&self, g: usize, c: usize) -> usize {
        match &self.sparse {
            Some((nfc, ix)) => ix[g * nfc + c] as usize,
            None => g * self.nfc() + c,
        }
    }
    fn variant(&self) -> Variant {
        filter_acts_variant(
            self.images,
            self.colors,
            self.filters / self.groups,
            self.scale_targets,
            self.sparse.is_some(),
        )
    }
    fn label(&self) -> String {
        let mut s = format!(
            "{}{}x{}x{}-f{}-fs{}-p{}-s{}-g{}-n{}",
            if self.local { "local" } else { "conv" },
            self.img_y,
            self.img_x,
            self.colors,
            self.filters,
            self.fsize,
            self.pad,
            self.stride,
            self.groups,
            self.images
        );
        if let Some((nfc, _)) = &self.sparse {
            s += &format!("-rand{nfc}");
        }
        if self.scale_targets != 0.0 {
            s += "-scaled";
        }
        s
    }

    /// Seeded inputs: images, filters and (for the scaled form) old targets.
    fn inputs(&self, seed: u64) -> (NvMatrix, NvMatrix, NvMatrix) {
        let rows = self.colors * self.img_y * self.img_x;
        let images = NvMatrix::from_vec(
            rows,
            self.images,
            false,
            uniform(seed, rows * self.images, -1.0, 1.0),
        );
        let fr = self.filter_rows();
        let filters = NvMatrix::from_vec(
            fr,
            self.filters,
            false,
            uniform(seed + 1, fr * self.filters, -0.2, 0.2),
        );
        let targets = if self.scale_targets != 0.0 {
            let n = self.out_rows() * self.images;
            NvMatrix::from_vec(
                self.out_rows(),
                self.images,
                false,
                uniform(seed + 2, n, -1.0, 1.0),
            )
        } else {
            NvMatrix::default()
        };
        (images, filters, targets)
    }

    /// Calls the kernel the case names.
    fn run(
        &self,
        images: &NvMatrix,
        filters: &NvMatrix,
        targets: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        let (st, so, ps) = (self.scale_targets, self.scale_output, -(self.pad as i32));
        match &self.sparse {
            None => {
                let f = if self.local {
                    local_filter_acts
                } else {
                    conv_filter_acts
                };
                f(
                    images,
                    filters,
                    targets,
                    self.img_y,
                    self.my(),
                    self.mx(),
                    ps,
                    self.stride,
                    self.colors,
                    self.groups,
                    st,
                    so,
                )
            }
            Some((nfc, ix)) => {
                let f = if self.local {
                    local_filter_acts_sparse
                } else {
                    conv_filter_acts_sparse
                };
                let (my, mx) = (self.my(), self.mx());
                f(
                    images,
                    filters,
                    targets,
                    ix,
                    self.img_y,
                    my,
                    mx,
                    ps,
                    self.stride,
                    self.colors,
                    *nfc,
                    self.groups,
                    st,
                    so,
                )
            }
        }
    }

    fn output(&self, images: &NvMatrix, filters: &NvMatrix, old: &NvMatrix) -> Vec<f32> {
        let mut t = old.clone();
        self.run(images, filters, &mut t).unwrap();
        assert_eq!((t.rows(), t.cols()), (self.out_rows(), self.images));
        t.into_vec()
    }

    /// Image value of colour `col`, pixel (y, x) (may be outside: 0), image `n`.
    fn img(&self, images: &[f32], col: usize, y: i64, x: i64, n: usize) -> Option<f32> {
        if y < 0 || x < 0 || y >= self.img_y as i64 || x >= self.img_x as i64 {
            return None;
        }
        Some(images[((col * self.img_y + y as usize) * self.img_x + x as usize) * self.images + n])
    }

    /// Weight of filter colour `c`, filter pixel `p`, filter `f` at module `m`.
    fn w(&self, filters: &[f32], m: usize, c: usize, p: usize, f: usize) -> f32 {
        let fp = self.fsize * self.fsize;
        let base = if self.local { m * self.nfc() * fp } else { 0 };
        filters[(base + c * fp + p) * self.filters + f]
    }

    /// Float64 reference: `st*t + so*Σ img*w` (padding counts as 0).
    fn reference(&self, images: &NvMatrix, filters: &NvMatrix, old: &NvMatrix) -> Vec<f64> {
        let (img, flt) = (images.data(), filters.data());
        let (nm, fs) = (self.my() * self.mx(), self.fsize);
        let mut out = vec![0f64; self.out_rows() * self.images];
        for f in 0..self.filters {
            let g = f / (self.filters / self.groups);
            for m in 0..nm {
                let (y0, x0) = (
                    ((m / self.mx()) * self.stride) as i64 - self.pad as i64,
                    ((m % self.mx()) * self.stride) as i64 - self.pad as i64,
                );
                for n in 0..self.images {
                    let mut sum = 0f64;
                    for c in 0..self.nfc() {
                        for p in 0..fs * fs {
                            if let Some(v) = self.img(
                                img,
                                self.color(g, c),
                                y0 + (p / fs) as i64,
                                x0 + (p % fs) as i64,
                                n,
                            ) {
                                sum += v as f64 * self.w(flt, m, c, p, f) as f64;
                            }
                        }
                    }
                    let i = (f * nm + m) * self.images + n;
                    let old = if self.scale_targets != 0.0 {
                        self.scale_targets as f64 * old.data()[i] as f64
                    } else {
                        0.0
                    };
                    out[i] = old + self.scale_output as f64 * sum;
                }
            }
        }
        out
    }

    /// One GPU thread's view of output (f, m, n), transcribed from the kernels: per
    /// colour group (all colours in filterActs_YxX_color, pairs in the sparse kernels)
    /// and chunk of 4 filter pixels, the slots are loaded (filter 0 past filterPixels;
    /// image 0 outside the image, and left as it was past filterPixels), then
    /// `prod += shImages[i]*shFilters[i]` (an FMA) for the colour group's 4*colours
    /// slots; then the write.
    /// `skip`: leave out the zero-product terms (padding pixels, slots past
    /// filterPixels), to show which outputs they change.
    #[allow(clippy::too_many_arguments)]
    fn emulate(
        &self,
        images: &[f32],
        filters: &[f32],
        old: &[f32],
        f: usize,
        m: usize,
        n: usize,
        skip: bool,
    ) -> f32 {
        let (fs, nfc) = (self.fsize, self.nfc());
        let fp = fs * fs;
        let cg = if self.colors <= 3 && self.sparse.is_none() {
            self.colors
        } else {
            2
        };
        let g = f / (self.filters / self.groups);
        let (y0, x0) = (
            ((m / self.mx()) * self.stride) as i64 - self.pad as i64,
            ((m % self.mx()) * self.stride) as i64 - self.pad as i64,
        );
        // Slots never loaded: uninitialised memory, taken as 0.
        let mut sh_img = vec![0f32; 4 * cg];
        let mut sh_flt = vec![0f32; 4 * cg];
        let mut zero_term = vec![false; 4 * cg];
        let mut prod = 0f32;
        for oc in (0..nfc).step_by(cg) {
            for p in (0..fp).step_by(4) {
                for c in 0..cg {
                    for s in 0..4 {
                        let pix = p + s;
                        if pix < fp {
                            sh_flt[c * 4 + s] = self.w(filters, m, oc + c, pix, f);
                            let (y, x) = (y0 + (pix / fs) as i64, x0 + (pix % fs) as i64);
                            let v = self.img(images, self.color(g, oc + c), y, x, n);
                            sh_img[c * 4 + s] = v.unwrap_or(0.0);
                            zero_term[c * 4 + s] = v.is_none();
                        } else {
                            sh_flt[c * 4 + s] = 0.0;
                            zero_term[c * 4 + s] = true;
                        }
                    }
                }
                for i in 0..4 * cg {
                    if !(skip && zero_term[i]) {
                        prod = sh_img[i].mul_add(sh_flt[i], prod);
                    }
                }
            }
        }
        let i = (f * self.my() * self.mx() + m) * self.images + n;
        if self.scale_targets != 0.0 {
            old[i].mul_add(self.scale_targets, self.scale_output * prod)
        } else {
            self.scale_output * prod
        }
    }

    /// Compares `got` with [`Case::emulate`] bit for bit (any NaN matches any NaN);
    /// returns how many outputs the zero-product terms change.
    fn check_emulation(
        &self,
        images: &NvMatrix,
        filters: &NvMatrix,
        old: &NvMatrix,
        got: &[f32],
    ) -> usize {
        let nm = self.my() * self.mx();
        let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        let mut changed = 0;
        for f in 0..self.filters {
            for m in 0..nm {
                for n in 0..self.images {
                    let want =
                        self.emulate(images.data(), filters.data(), old.data(), f, m, n, false);
                    let skipped =
                        self.emulate(images.data(), filters.data(), old.data(), f, m, n, true);
                    changed += !same(want, skipped) as usize;
                    let g = got[(f * nm + m) * self.images + n];
                    assert!(
                        same(g, want),
                        "{}: filter {f} module {m} image {n}: got {g:e} ({:#x}), GPU emulation {want:e} ({:#x})",
                        self.label(),
                        g.to_bits(),
                        want.to_bits()
                    );
                }
            }
        }
        changed
    }
}

/// Small and awkward shapes of every kernel: 1, 2, 3 colours (colour kernel), 4 and
/// grouped colours (sparse kernel), random sparse, local; image counts not multiples of
/// 32; padding, stride, filter sizes 1 to 5, non-square images, scaling.
fn small_cases() -> Vec<Case> {
    let mut v = vec![
        Case::new(5, 1, 16, 3, 1, 1, 37),
        Case::new(6, 2, 32, 4, 2, 2, 1),
        Case::new(7, 3, 16, 5, 2, 1, 100),
        Case::new(7, 3, 48, 3, 0, 2, 130),
        Case::new(4, 3, 16, 1, 0, 1, 64),
        Case::new(5, 4, 16, 2, 1, 1, 37),
        Case::new(6, 6, 32, 3, 1, 3, 33),
        Case::new(5, 8, 32, 3, 1, 1, 64).groups(2),
        Case::new(4, 6, 48, 2, 0, 1, 5).groups(3),
        Case::new(5, 4, 32, 3, 1, 1, 37).groups(2).random(2, 7),
        Case::new(4, 8, 64, 1, 0, 1, 20).groups(4).random(4, 8),
        Case::new(6, 3, 16, 3, 1, 2, 37).local(),
        Case::new(5, 4, 32, 3, 2, 1, 9).groups(2).local(),
        Case::new(4, 4, 64, 2, 1, 1, 17)
            .groups(4)
            .random(2, 9)
            .local(),
        Case::new(6, 2, 16, 3, 1, 1, 37).scaled(0.5, 2.0),
        Case::new(5, 4, 16, 3, 1, 1, 128).scaled(-1.5, 0.25),
    ];
    let mut rect = Case::new(5, 3, 16, 3, 1, 1, 24);
    rect.img_x = 7;
    v.push(rect);
    let mut rect = Case::new(4, 4, 32, 3, 1, 2, 11).groups(2);
    rect.img_x = 6;
    v.push(rect);
    v
}

#[test]
fn reference_small_shapes() {
    for (i, c) in small_cases().iter().enumerate() {
        let (images, filters, old) = c.inputs(100 + i as u64);
        let got = c.output(&images, &filters, &old);
        assert_close(
            &c.label(),
            &got,
            &c.reference(&images, &filters, &old),
            1e-5,
        );
    }
}

#[test]
fn bit_exact_against_gpu_thread_emulation() {
    for (i, c) in small_cases().iter().enumerate() {
        let (images, filters, old) = c.inputs(200 + i as u64);
        let got = c.output(&images, &filters, &old);
        c.check_emulation(&images, &filters, &old, &got);
    }
}

/// Inf/NaN where only the zero-product terms see them, and accumulators that underflow
/// to -0 before a zero-product term: the GPU's results (NaN, +0) come out.
#[test]
fn zero_product_terms_and_special_values() {
    // 9 filter pixels: the last chunk has 3 stale slots (pixels 5, 6, 7 of the previous
    // chunk); with padding 1 the corner modules have out-of-image pixels.
    for (i, base) in [
        Case::new(5, 1, 16, 3, 1, 1, 37),
        Case::new(5, 3, 16, 3, 1, 1, 9),
        Case::new(5, 4, 32, 3, 1, 1, 9).groups(2),
        Case::new(5, 4, 32, 3, 1, 1, 9).groups(2).random(2, 3),
        Case::new(5, 2, 16, 3, 1, 1, 9).local(),
        Case::new(4, 2, 16, 1, 0, 1, 9),
    ]
    .into_iter()
    .enumerate()
    {
        for scaled in [false, true] {
            let c = if scaled {
                base.clone().scaled(0.5, 3.0)
            } else {
                base.clone()
            };
            let (mut images, mut filters, old) = c.inputs(300 + i as u64);
            let (rows, pixels, fp) = (images.rows(), c.img_y * c.img_x, c.fsize * c.fsize);
            // Image: Inf and NaN at a few pixels (stale slots of some modules).
            images.set(4 % rows, 0, f32::INFINITY);
            images.set(7 % rows, 1, f32::NEG_INFINITY);
            images.set(12 % rows, 2, f32::NAN);
            // Filters: Inf at a corner pixel of filter 0 (meets padding), NaN for filter 1.
            filters.set(0, 0, f32::INFINITY);
            filters.set(2 % filters.rows(), 1, f32::NAN);
            // Underflow to -0 at the centre pixel (4 of 9), then terms that keep -0
            // ((-0)*w>0, (+0)*w<0) except: image 4 none (the GPU keeps -0); image 5 the
            // stale slots of module (2,2), pixels 5-7 = image (2,3), (3,1), (3,2), hold
            // +0 (the GPU's last chunk turns -0 into +0); image 6 module (0,0): the
            // padding pixel 6 meets a positive weight (same).
            let px = |y: usize, x: usize| y * c.img_x + x;
            for r in 0..rows {
                let p = r % pixels;
                images.set(r, 4, if p == px(2, 2) { 1e-30 } else { -0.0 });
                let zero5 = [px(2, 3), px(3, 1), px(3, 2)].contains(&p);
                images.set(
                    r,
                    5,
                    if p == px(2, 2) {
                        1e-30
                    } else if zero5 {
                        0.0
                    } else {
                        -0.0
                    },
                );
                let zero6 = [px(0, 1), px(1, 0)].contains(&p);
                images.set(
                    r,
                    6,
                    if p == px(0, 0) {
                        1e-30
                    } else if zero6 {
                        0.0
                    } else {
                        -0.0
                    },
                );
            }
            let centre = fp / 2;
            for r in 0..filters.rows() {
                let p = r % fp;
                let w4 = if p == centre { -1e-30 } else { 0.5 };
                let w5 = if p == centre {
                    -1e-30
                } else if (centre + 1..=centre + 3).contains(&p) {
                    -0.5
                } else {
                    0.5
                };
                let w6 = if p == centre {
                    -1e-30
                } else if p == centre + 1 || p == centre + 3 {
                    -0.5
                } else {
                    0.5
                };
                filters.set(r, 4, w4);
                filters.set(r, 5, w5);
                filters.set(r, 6, w6);
            }
            let got = c.output(&images, &filters, &old);
            let changed = c.check_emulation(&images, &filters, &old, &got);
            if !scaled {
                let negzero = got.iter().filter(|x| x.to_bits() == 0x8000_0000).count();
                // (With filterSize 1 the unstaged slots, taken as +0, turn every -0 into +0.)
                assert!(negzero > 0 || c.fsize == 1, "{}: no -0 output", c.label());
                assert!(
                    changed > 0,
                    "{}: the zero-product terms change nothing",
                    c.label()
                );
            }
        }
    }
}

/// The template instantiations `_filterActs` / `_filterActsSparse` can launch: for each
/// kernel, imgsPerThread 4/2/1 (checkImgBounds only with 1), filtersPerThread 8/4,
/// scale or not.
fn variant_cases() -> Vec<Case> {
    let mut v = Vec::new();
    for images in [128, 64, 32, 37] {
        for scaled in [false, true] {
            for wide in [true, false] {
                let f = if wide { 32 } else { 16 };
                let mut kinds = vec![
                    Case::new(6, 1, f, 3, 1, 1, images),
                    Case::new(6, 2, f, 3, 1, 1, images),
                    Case::new(6, 3, f, 5, 2, 1, images),
                    Case::new(5, 4, f, 3, 1, 1, images),
                    Case::new(5, 8, 2 * f, 3, 1, 2, images).groups(2),
                    Case::new(5, 4, 2 * f, 3, 1, 1, images)
                        .groups(2)
                        .random(2, 11),
                ];
                if scaled {
                    kinds = kinds.into_iter().map(|c| c.scaled(0.75, -1.25)).collect();
                }
                v.extend(kinds);
            }
        }
    }
    // Local forms of some of them.
    let locals: Vec<Case> = v
        .iter()
        .filter(|c| c.images == 37)
        .map(|c| c.clone().local())
        .collect();
    v.extend(locals);
    v
}

fn net_case(s: &ConvShape) -> Case {
    let mut c = Case::new(
        s.img_size,
        s.colors,
        s.filters,
        s.filter_size,
        s.padding,
        s.stride,
        s.images,
    )
    .groups(s.groups);
    c.local = s.local;
    assert_eq!((c.my(), c.mx()), (s.modules_x, s.modules_x), "{}", s.name);
    assert_eq!(c.filter_rows(), s.filter_rows());
    c
}

#[test]
fn regression_every_variant_and_net_shape() {
    let mut reg = Regression::new("filter_acts");
    let mut seen = HashSet::new();
    for (i, c) in variant_cases().iter().enumerate() {
        let (images, filters, old) = c.inputs(1000 + i as u64);
        let v = c.variant();
        let what = format!("{} {}", v, c.label());
        let out = same_bits_any_threads_or_lanes(&what, || c.output(&images, &filters, &old));
        if c.images == 37 && !c.local {
            c.check_emulation(&images, &filters, &old, &out);
        }
        seen.insert(v);
        reg.case(&what, &out);
    }
    assert_eq!(seen.len(), 80, "instantiations covered");
    // The net shapes as the nets use them, and the conv ones also locally connected.
    let local = NET_SHAPES
        .iter()
        .filter(|s| !s.local)
        .map(|s| ConvShape { local: true, ..*s });
    for (i, s) in NET_SHAPES.iter().copied().chain(local).enumerate() {
        let c = net_case(&s);
        let (images, filters, old) = c.inputs(2000 + i as u64);
        let out = same_bits_any_threads_or_lanes(s.name, || c.output(&images, &filters, &old));
        reg.case(&format!("{} {} {}", s.name, c.variant(), c.label()), &out);
    }
    reg.finish();
}

#[test]
fn dispatch_picks_the_originals_variant() {
    let v = filter_acts_variant(128, 3, 32, 0.0, false);
    assert_eq!(
        v.to_string(),
        "filterActs_YxX_color<4, 32, 4, 8, 3, false, false>"
    );
    let v = filter_acts_variant(100, 48, 128, 1.0, false);
    assert_eq!(
        v.to_string(),
        "filterActs_YxX_sparse<4, 32, 1, 8, 2, true, true>"
    );
    let v = filter_acts_variant(192, 16, 48, 0.0, true);
    assert_eq!(
        v.to_string(),
        "filterActs_YxX_sparse_random<4, 32, 2, 4, 2, false, false>"
    );
    let v = filter_acts_variant(96, 2, 16, 0.0, false);
    assert_eq!(
        v.to_string(),
        "filterActs_YxX_color<4, 32, 1, 4, 2, false, false>"
    );
}

#[test]
fn bad_shapes_are_errors() {
    let good = Case::new(6, 3, 16, 3, 1, 1, 8);
    let (images, filters, _) = good.inputs(5);
    let err = |c: &Case, images: &NvMatrix, filters: &NvMatrix, t: &mut NvMatrix, what: &str| {
        let e = c.run(images, filters, t).expect_err(what);
        assert!(e.to_string().contains("FilterActs"), "{what}: {e}");
    };
    let mut t = NvMatrix::default();
    good.run(&images, &filters, &mut t).unwrap();
    // numFilters % 16.
    let c = Case {
        filters: 8,
        ..good.clone()
    };
    err(
        &c,
        &images,
        &NvMatrix::new(filters.rows(), 8, false),
        &mut t,
        "numFilters % 16",
    );
    // 5 colours, one group (neither <= 3 nor even).
    let c = Case {
        colors: 5,
        ..good.clone()
    };
    let im5 = NvMatrix::new(5 * 36, 8, false);
    err(
        &c,
        &im5,
        &NvMatrix::new(5 * 9, 16, false),
        &mut t,
        "odd colours",
    );
    // Groups with an odd colour count per group; colours not divisible by groups.
    let c = Case {
        colors: 6,
        groups: 2,
        filters: 32,
        ..good.clone()
    };
    err(
        &c,
        &NvMatrix::new(6 * 36, 8, false),
        &NvMatrix::new(3 * 9, 32, false),
        &mut t,
        "odd numFilterColors",
    );
    let c = Case {
        colors: 8,
        groups: 3,
        filters: 48,
        ..good.clone()
    };
    err(
        &c,
        &NvMatrix::new(8 * 36, 8, false),
        &NvMatrix::new(2 * 9, 48, false),
        &mut t,
        "colours % groups",
    );
    // numFilters % (16*groups).
    let c = Case {
        colors: 8,
        groups: 2,
        filters: 16,
        ..good.clone()
    };
    err(
        &c,
        &NvMatrix::new(8 * 36, 8, false),
        &NvMatrix::new(4 * 9, 16, false),
        &mut t,
        "numFilters % 32",
    );
    // Image rows not colours * pixels; imgSizeY not dividing the pixels.
    err(
        &good,
        &NvMatrix::new(3 * 36 + 1, 8, false),
        &filters,
        &mut t,
        "image rows",
    );
    let c = Case {
        img_y: 4,
        img_x: 9,
        ..good.clone()
    };
    err(
        &Case {
            img_y: 5,
            ..c.clone()
        },
        &images,
        &filters,
        &mut t,
        "imgSizeY",
    );
    // Filter rows not a square count of pixels.
    err(
        &good,
        &images,
        &NvMatrix::new(3 * 8, 16, false),
        &mut t,
        "filterSize^2",
    );
    // Local filters of the wrong module count.
    err(
        &good.clone().local(),
        &images,
        &filters,
        &mut t,
        "local filter rows",
    );
    // Positive paddingStart (via modules that cover the image some other way).
    let mut t2 = NvMatrix::default();
    let r = conv_filter_acts(&images, &filters, &mut t2, 6, 4, 4, 1, 1, 3, 1, 0.0, 1.0);
    assert!(r.is_err(), "paddingStart > 0");
    // Modules not covering the image; stride above the filter size.
    let r = conv_filter_acts(&images, &filters, &mut t2, 6, 3, 3, 0, 1, 3, 1, 0.0, 1.0);
    assert!(r.unwrap_err().condition.contains("numModulesX"));
    let r = conv_filter_acts(&images, &filters, &mut t2, 6, 3, 4, 0, 1, 3, 1, 0.0, 1.0);
    assert!(r.unwrap_err().condition.contains("numModulesY"));
    let r = conv_filter_acts(
        &images,
        &NvMatrix::new(3, 16, false),
        &mut t2,
        6,
        3,
        3,
        0,
        4,
        3,
        1,
        0.0,
        1.0,
    );
    assert!(r.unwrap_err().condition.contains("moduleStride"));
    // Transposed operands.
    let mut it = images.clone();
    it.set_trans(true);
    err(&good, &it, &filters, &mut t, "images trans");
    let mut ft = filters.clone();
    ft.set_trans(true);
    err(&good, &images, &ft, &mut t, "filters trans");
    let mut tt = t.clone();
    tt.set_trans(true);
    err(&good, &images, &filters, &mut tt, "targets trans");
    // Scaling into a target of the wrong size.
    let s = good.clone().scaled(1.0, 1.0);
    err(
        &s,
        &images,
        &filters,
        &mut NvMatrix::new(10, 8, false),
        "target rows",
    );
    let out_rows = good.out_rows();
    err(
        &s,
        &images,
        &filters,
        &mut NvMatrix::new(out_rows, 7, false),
        "target cols",
    );
    // Divisions by zero in the original.
    let zero = |f: &dyn Fn(&mut NvMatrix) -> Result<(), ShapeError>| {
        assert!(f(&mut NvMatrix::default()).is_err())
    };
    zero(&|t| conv_filter_acts(&images, &filters, t, 6, 6, 6, -1, 1, 0, 1, 0.0, 1.0));
    zero(&|t| conv_filter_acts(&images, &filters, t, 6, 6, 6, -1, 1, 3, 0, 0.0, 1.0));
    zero(&|t| conv_filter_acts(&images, &filters, t, 0, 6, 6, -1, 1, 3, 1, 0.0, 1.0));
    zero(&|t| local_filter_acts(&images, &filters, t, 6, 0, 6, -1, 1, 3, 1, 0.0, 1.0));
    zero(&|t| conv_filter_acts(&images, &filters, t, 6, 6, 0, -1, 1, 3, 1, 0.0, 1.0));
    zero(&|t| {
        conv_filter_acts(
            &NvMatrix::new(3 * 36, 0, false),
            &filters,
            t,
            6,
            6,
            6,
            -1,
            1,
            3,
            1,
            0.0,
            1.0,
        )
    });
    // Sparse: one group; colours not a multiple of numFilterColors; odd numFilterColors;
    // coverage of the image colours; bad colour indices.
    let sp = Case::new(5, 4, 32, 3, 1, 1, 8).groups(2).random(2, 1);
    let (im, fl, _) = sp.inputs(6);
    let run = |nfc: usize, groups: usize, ix: &[i32], nf: usize| {
        let fl = NvMatrix::new(nfc * 9, nf, false);
        conv_filter_acts_sparse(
            &im,
            &fl,
            &mut NvMatrix::default(),
            ix,
            5,
            5,
            5,
            -1,
            1,
            4,
            nfc,
            groups,
            0.0,
            1.0,
        )
    };
    assert!(run(2, 2, &[0, 1, 2, 3], 32).is_ok());
    assert!(run(2, 1, &[0, 1], 16).is_err());
    assert!(run(3, 2, &[0, 1, 2, 3, 0, 1], 32).is_err());
    assert!(run(1, 4, &[0, 1, 2, 3], 64).is_err());
    assert!(run(2, 3, &[0, 1, 2, 3, 0, 1], 48).is_err());
    assert!(run(2, 2, &[0, 1, 2, 3], 16).is_err());
    assert!(run(2, 2, &[0, 1, 2, 4], 32).is_err());
    assert!(run(2, 2, &[0, 1, -1, 3], 32).is_err());
    assert!(run(2, 2, &[0, 1, 2], 32).is_err());
    assert!(run(0, 2, &[], 32).is_err());
    let mut t3 = NvMatrix::default();
    assert!(local_filter_acts_sparse(
        &im,
        &fl,
        &mut t3,
        &[0, 1, 2, 3],
        5,
        5,
        5,
        -1,
        1,
        4,
        2,
        2,
        0.0,
        1.0
    )
    .is_err());
}
