//! imgActs (cudaconv2/img_acts.cu): float64 reference on small and awkward shapes of
//! every variant (and, bit for bit, a naive f32 loop in the original's operation order),
//! the gradient of a float64 filterActs by finite differences, the
//! sparse kernel's region-count quirk, exact-bits regression goldens (every variant the
//! dispatch can pick and the nets' shapes) with 1 and 2 threads, and bad shapes.

mod common;

use common::{assert_close, same_bits_any_threads_or_lanes, Regression};
use convnet::cudaconv2::img_acts::{
    conv_img_acts, conv_img_acts_sparse, img_acts_variant, local_img_acts, local_img_acts_sparse,
    ImgActsKernel,
};
use convnet::cudaconv2::shapes::NET_SHAPES;
use convnet::cudaconv2::ShapeError;
use convnet::nvmatrix::NvMatrix;
use convnet::synthetic::uniform;

/// One call's arguments (square filters; modules cover the image as the layers make them).
#[derive(Clone, Debug)]
struct Case {
    img_y: usize,
    img_x: usize,
    colors: usize,
    filters: usize,
    fs: usize,
    pad: usize,
    stride: usize,
    groups: usize,
    local: bool,
    images: usize,
    /// Random sparse connectivity: (numFilterColors, colorIndices).
    sparse: Option<(usize, Vec<i32>)>,
    scale_targets: f32,
    scale_output: f32,
    seed: u64,
}

impl Case {
    fn new(
        img: usize,
        colors: usize,
        filters: usize,
        fs: usize,
        pad: usize,
        stride: usize,
        images: usize,
    ) -> Case {
        Case {
            img_y: img,
            img_x: img,
            colors,
            filters,
            fs,
            pad,
            stride,
            groups: 1,
            local: false,
            images,
            sparse: None,
            scale_targets: 0.0,
            scale_output: 1.0,
            seed: 1,
        }
    }
    fn groups(mut self, g: usize) -> Case {
        self.groups = g;
        self
    }
    fn local(mut self) -> Case {
        self.local = true;
        self
    }
    fn scaled(mut self, st: f32, so: f32) -> Case {
        self.scale_targets = st;
        self.scale_output = so;
        self
    }
    fn rect(mut self, img_y: usize, img_x: usize) -> Case {
        self.img_y = img_y;
        self.img_x = img_x;
        self
    }
    /// Sparse with `nfc` filter colours per group; colour indices: each slice of
    /// `colors/nfc` groups a seeded permutation of the colours.
    fn sparse(mut self, nfc: usize) -> Case {
        let over_sample = nfc * self.groups / self.colors;
        let mut ci = Vec::new();
        for s in 0..over_sample {
            let mut perm: Vec<i32> = (0..self.colors as i32).collect();
            let r = uniform(77 + s as u64, self.colors, 0.0, 1.0);
            for i in (1..perm.len()).rev() {
                let j = (r[i] * (i + 1) as f32) as usize;
                perm.swap(i, j.min(i));
            }
            ci.extend(perm);
        }
        self.sparse = Some((nfc, ci));
        self
    }
    fn modules_along(&self, img: usize) -> usize {
        1 + (img + 2 * self.pad - self.fs).div_ceil(self.stride)
    }
    fn my(&self) -> usize {
        self.modules_along(self.img_y)
    }
    fn mx(&self) -> usize {
        self.modules_along(self.img_x)
    }
    fn nfc(&self) -> usize {
        self.sparse
            .as_ref()
            .map_or(self.colors / self.groups, |s| s.0)
    }
    fn over_sample(&self) -> usize {
        self.sparse
            .as_ref()
            .map_or(1, |s| s.0 * self.groups / self.colors)
    }
    fn target_rows(&self) -> usize {
        self.over_sample() * self.colors * self.img_y * self.img_x
    }
    fn hid(&self) -> NvMatrix {
        let rows = self.filters * self.my() * self.mx();
        NvMatrix::from_vec(
            rows,
            self.images,
            false,
            uniform(self.seed, rows * self.images, -1.0, 1.0),
        )
    }
    fn filter_matrix(&self) -> NvMatrix {
        let mult = if self.local { self.my() * self.mx() } else { 1 };
        let rows = mult * self.nfc() * self.fs * self.fs;
        NvMatrix::from_vec(
            rows,
            self.filters,
            false,
            uniform(self.seed + 1, rows * self.filters, -1.0, 1.0),
        )
    }
    fn initial_targets(&self) -> NvMatrix {
        let rows = self.target_rows();
        NvMatrix::from_vec(
            rows,
            self.images,
            false,
            uniform(self.seed + 2, rows * self.images, -1.0, 1.0),
        )
    }
    /// Runs the kernel on `targets`.
    fn call(
        &self,
        hid: &NvMatrix,
        fil: &NvMatrix,
        targets: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        let pad = -(self.pad as i32);
        let (st, so) = (self.scale_targets, self.scale_output);
        match (&self.sparse, self.local) {
            (None, false) => conv_img_acts(
                hid,
                fil,
                targets,
                self.img_y,
                self.img_x,
                self.my(),
                pad,
                self.stride,
                self.colors,
                self.groups,
                st,
                so,
            ),
            (None, true) => local_img_acts(
                hid,
                fil,
                targets,
                self.img_y,
                self.img_x,
                self.my(),
                pad,
                self.stride,
                self.colors,
                self.groups,
                st,
                so,
            ),
            (Some((nfc, ci)), false) => conv_img_acts_sparse(
                hid,
                fil,
                targets,
                ci,
                self.img_y,
                self.img_x,
                self.my(),
                pad,
                self.stride,
                self.colors,
                *nfc,
                self.groups,
                st,
                so,
            ),
            (Some((nfc, ci)), true) => local_img_acts_sparse(
                hid,
                fil,
                targets,
                ci,
                self.img_y,
                self.img_x,
                self.my(),
                pad,
                self.stride,
                self.colors,
                *nfc,
                self.groups,
                st,
                so,
            ),
        }
    }
    /// The kernel's output for seeded inputs (targets seeded too when they are read).
    fn run(&self) -> Vec<f32> {
        let (hid, fil) = (self.hid(), self.filter_matrix());
        let mut t = if self.scale_targets != 0.0 {
            self.initial_targets()
        } else {
            NvMatrix::default()
        };
        self.call(&hid, &fil, &mut t).unwrap();
        assert_eq!((t.rows(), t.cols()), (self.target_rows(), self.images));
        t.into_vec()
    }

    /// (slice, group, y, x) for every output pixel the original's grid computes. Dense
    /// and manycolor: everything. mediumcolor sparse: simulated block by block with the
    /// kernel's region arithmetic (numRegions = DIVUP(imgSizeX,4)^2).
    fn visits(&self) -> Vec<(usize, usize, usize, usize)> {
        let nfc = self.nfc();
        let groups_per_set = self.colors / nfc;
        let mut v = Vec::new();
        let medium_sparse = self.sparse.is_some() && !nfc.is_multiple_of(8);
        if !medium_sparse {
            let gps = if self.sparse.is_some() {
                self.groups / self.over_sample()
            } else {
                self.groups
            };
            for s in 0..self.over_sample() {
                for g in s * gps..(s + 1) * gps {
                    for y in 0..self.img_y {
                        for x in 0..self.img_x {
                            v.push((s, g, y, x));
                        }
                    }
                }
            }
            return v;
        }
        let nrx = self.img_x.div_ceil(4);
        let nry = self.img_y.div_ceil(4);
        let regions = nrx * nrx;
        let grid_y = self.over_sample() * nry * nrx;
        let kernel_over_sample = grid_y / regions;
        let gps = self.groups / kernel_over_sample;
        for by in 0..grid_y {
            let (s, r) = (by / regions, by % regions);
            let (ry, rx) = (r / nrx, r % nrx);
            for cg in 0..groups_per_set {
                for t in 0..16 {
                    let (y, x) = (ry * 4 + t / 4, rx * 4 + t % 4);
                    if y < self.img_y && x < self.img_x {
                        v.push((s, cg + s * gps, y, x));
                    }
                }
            }
        }
        v
    }

    /// The float64 reference: per visited (slice, group, pixel), the sum over the modules
    /// whose window holds the pixel and the group's filters, scattered to the group's
    /// image colours; then the scales. Unvisited elements keep `t0`.
    fn reference(&self, hid: &[f32], fil: &[f32], t0: &[f32]) -> Vec<f64> {
        let (my, mx, nfc, fs) = (self.my(), self.mx(), self.nfc(), self.fs);
        let nm = my * mx;
        let fpg = self.filters / self.groups;
        let (ix, px_count, n_img) = (self.img_x, self.img_y * self.img_x, self.images);
        let mut out: Vec<f64> = t0.iter().map(|&v| v as f64).collect();
        for (s, g, y, x) in self.visits() {
            for c in 0..nfc {
                let oc = match &self.sparse {
                    Some((_, ci)) => ci[g * nfc + c] as usize,
                    None => g * nfc + c,
                };
                let row = (s * self.colors + oc) * px_count + y * ix + x;
                for n in 0..n_img {
                    let mut sum = 0f64;
                    for mi in 0..my {
                        for mj in 0..mx {
                            let y0 = mi as i64 * self.stride as i64 - self.pad as i64;
                            let x0 = mj as i64 * self.stride as i64 - self.pad as i64;
                            let (dy, dx) = (y as i64 - y0, x as i64 - x0);
                            if dy < 0 || dx < 0 || dy >= fs as i64 || dx >= fs as i64 {
                                continue;
                            }
                            let m = mi * mx + mj;
                            let pim = dy as usize * fs + dx as usize;
                            let fbase = if self.local { m * nfc * fs * fs } else { 0 };
                            for f in g * fpg..(g + 1) * fpg {
                                let h = hid[(f * nm + m) * n_img + n] as f64;
                                let w = fil[(fbase + c * fs * fs + pim) * self.filters + f] as f64;
                                sum += h * w;
                            }
                        }
                    }
                    let i = row * n_img + n;
                    out[i] = if self.scale_targets == 0.0 {
                        self.scale_output as f64 * sum
                    } else {
                        self.scale_targets as f64 * t0[i] as f64 + self.scale_output as f64 * sum
                    };
                }
            }
        }
        out
    }

    /// The documented operation sequence, naively in f32: per output, `acc = 0`, then
    /// `acc = fma(w, h, acc)` over the modules holding the pixel (rows, then columns,
    /// ascending) and the group's filters (ascending); then `fma(t, scaleTargets,
    /// scaleOutput*acc)` or `scaleOutput*acc`. Unvisited elements keep `t0`.
    fn exact_order(&self, hid: &[f32], fil: &[f32], t0: &[f32]) -> Vec<f32> {
        let (my, mx, nfc, fs) = (self.my(), self.mx(), self.nfc(), self.fs);
        let fpg = self.filters / self.groups;
        let (px_count, n_img) = (self.img_y * self.img_x, self.images);
        let mut out = t0.to_vec();
        for (s, g, y, x) in self.visits() {
            for c in 0..nfc {
                let oc = self
                    .sparse
                    .as_ref()
                    .map_or(g * nfc + c, |(_, ci)| ci[g * nfc + c] as usize);
                let row = (s * self.colors + oc) * px_count + y * self.img_x + x;
                for n in 0..n_img {
                    let mut acc = 0f32;
                    for mi in 0..my {
                        for mj in 0..mx {
                            let dy = y as i64 - (mi * self.stride) as i64 + self.pad as i64;
                            let dx = x as i64 - (mj * self.stride) as i64 + self.pad as i64;
                            if dy < 0 || dx < 0 || dy >= fs as i64 || dx >= fs as i64 {
                                continue;
                            }
                            let m = mi * mx + mj;
                            let fbase = if self.local { m * nfc * fs * fs } else { 0 };
                            let wrow = (fbase + c * fs * fs + dy as usize * fs + dx as usize)
                                * self.filters;
                            for f in g * fpg..(g + 1) * fpg {
                                acc =
                                    fil[wrow + f].mul_add(hid[(f * my * mx + m) * n_img + n], acc);
                            }
                        }
                    }
                    let i = row * n_img + n;
                    out[i] = if self.scale_targets == 0.0 {
                        self.scale_output * acc
                    } else {
                        t0[i].mul_add(self.scale_targets, self.scale_output * acc)
                    };
                }
            }
        }
        out
    }

    fn check_reference(&self, what: &str) {
        let (hid, fil) = (self.hid(), self.filter_matrix());
        let t0 = self.initial_targets();
        let mut t = t0.clone();
        self.call(&hid, &fil, &mut t)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let want = self.reference(hid.data(), fil.data(), t0.data());
        assert_close(what, t.data(), &want, 2e-6);
        let exact = self.exact_order(hid.data(), fil.data(), t0.data());
        let bad = t
            .data()
            .iter()
            .zip(&exact)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(
            bad.is_none(),
            "{what}: element {bad:?} differs from the documented operation sequence"
        );
    }
}

#[test]
fn dispatch_picks_the_originals_variants() {
    use ImgActsKernel::*;
    let k = |n, nfc, sparse| img_acts_variant(n, nfc, sparse, false, true);
    assert_eq!(k(128, 3, false).kernel, Color { num_colors: 3 });
    assert_eq!(
        (
            k(128, 3, false).imgs_per_thread,
            k(128, 3, false).check_case_bounds
        ),
        (8, false)
    );
    assert_eq!(
        (
            k(64, 1, false).imgs_per_thread,
            k(64, 1, false).check_case_bounds
        ),
        (4, false)
    );
    assert_eq!(
        (
            k(96, 2, false).imgs_per_thread,
            k(96, 2, false).check_case_bounds
        ),
        (2, false)
    );
    assert_eq!(
        (
            k(100, 2, false).imgs_per_thread,
            k(100, 2, false).check_case_bounds
        ),
        (2, true)
    );
    assert_eq!(k(128, 4, false).kernel, MediumColor);
    assert_eq!(k(128, 4, false).colors_per_thread, 4);
    assert_eq!(k(128, 6, false).colors_per_thread, 2);
    assert_eq!(k(128, 8, false).kernel, ManyColor);
    assert_eq!(
        (
            k(128, 8, false).colors_per_thread,
            k(128, 8, false).imgs_per_thread
        ),
        (2, 4)
    );
    assert_eq!(
        (
            k(64, 48, false).colors_per_thread,
            k(64, 48, false).imgs_per_thread
        ),
        (4, 2)
    );
    assert_eq!(
        (
            k(32, 16, false).imgs_per_thread,
            k(32, 16, false).check_case_bounds
        ),
        (1, false)
    );
    assert!(k(37, 16, false).check_case_bounds);
    assert_eq!(k(128, 4, true).kernel, MediumColorSparseRand);
    assert_eq!(k(128, 8, true).kernel, ManyColorSparseRand);
    assert_eq!(k(130, 8, true).threads_x, 32);
}

/// Small and awkward shapes of every variant against the float64 reference.
#[test]
fn float64_reference() {
    let mut cases = Vec::new();
    for &images in &[1usize, 37, 64, 100, 130] {
        for colors in 1..=3 {
            cases.push(Case::new(7, colors, 16, 3, 1, 1, images));
        }
    }
    cases.extend([
        // colour kernel: stride, padding, no padding, local, scales, rectangles
        Case::new(9, 3, 16, 5, 2, 2, 37),
        Case::new(10, 1, 32, 4, 0, 2, 20),
        Case::new(8, 2, 16, 3, 1, 1, 33).local(),
        Case::new(8, 3, 16, 3, 0, 3, 19).local(),
        Case::new(7, 3, 16, 3, 1, 1, 37).scaled(0.5, 2.0),
        Case::new(7, 1, 16, 3, 1, 1, 3).rect(5, 11),
        // mediumcolor: 4 and 6 colours, groups, rectangles (regions of 4x4 pixels)
        Case::new(7, 4, 16, 3, 1, 1, 37),
        Case::new(6, 6, 32, 3, 1, 2, 64),
        Case::new(6, 8, 32, 3, 1, 1, 21).groups(2),
        Case::new(5, 12, 48, 3, 0, 1, 5).groups(3),
        Case::new(9, 4, 16, 5, 2, 2, 130).local().scaled(1.0, -0.5),
        Case::new(6, 6, 16, 3, 1, 1, 17).rect(9, 6).local(),
        // manycolor: 8 (2 colours per thread), 16 and 32 (4 per thread), groups, local
        Case::new(6, 8, 16, 3, 1, 1, 37),
        Case::new(6, 16, 16, 3, 1, 1, 64),
        Case::new(5, 32, 32, 3, 1, 1, 100),
        Case::new(6, 16, 32, 3, 1, 1, 29).groups(2),
        Case::new(7, 32, 64, 3, 1, 2, 9).groups(4).local(),
        Case::new(6, 16, 16, 4, 0, 2, 130).scaled(-1.5, 0.25),
        Case::new(5, 8, 16, 3, 2, 1, 2).rect(3, 7).local(),
        // sparse: manycolor (nfc % 8 == 0) and mediumcolor, overSample 1 and 2
        Case::new(6, 16, 32, 3, 1, 1, 37).groups(2).sparse(8),
        Case::new(6, 16, 64, 3, 1, 1, 20).groups(4).sparse(8),
        Case::new(5, 16, 32, 3, 1, 1, 64)
            .groups(2)
            .sparse(16)
            .local(),
        Case::new(6, 8, 32, 3, 1, 1, 37).groups(2).sparse(4),
        Case::new(6, 8, 64, 3, 1, 2, 23).groups(4).sparse(4),
        Case::new(6, 12, 32, 3, 1, 1, 5).groups(2).sparse(6).local(),
        Case::new(7, 12, 64, 3, 1, 1, 130)
            .groups(4)
            .sparse(6)
            .scaled(0.5, 1.5),
        Case::new(6, 8, 64, 3, 1, 1, 11)
            .groups(4)
            .sparse(4)
            .rect(6, 8),
    ]);
    for (i, c) in cases.iter().enumerate() {
        let mut c = c.clone();
        c.seed = 100 + i as u64;
        c.check_reference(&format!("case {i} {c:?}"));
    }
}

/// img_acts_mediumcolor_sparse_rand counts DIVUP(imgSizeX,4)^2 regions per slice.
#[test]
fn sparse_mediumcolor_region_quirk() {
    // DIVUP(imgSizeY,4) == DIVUP(imgSizeX,4): as if square.
    Case::new(14, 8, 64, 3, 1, 1, 9)
        .rect(14, 16)
        .groups(4)
        .sparse(4)
        .check_reference("same region count");
    // 3 region rows, 4 region columns, overSample 4: the kernel sees overSample 3 with the
    // same groups per slice; slice 3 is never written and keeps its contents.
    let c = Case::new(12, 8, 128, 3, 1, 1, 7)
        .rect(12, 16)
        .groups(8)
        .sparse(4);
    assert!(c.visits().iter().all(|v| v.0 < 3));
    c.check_reference("slice 3 unwritten");
    let (hid, fil) = (c.hid(), c.filter_matrix());
    let t0 = c.initial_targets();
    let mut t = t0.clone();
    c.call(&hid, &fil, &mut t).unwrap();
    let slice = 8 * 12 * 16 * 7;
    assert_eq!(
        &t.data()[3 * slice..],
        &t0.data()[3 * slice..],
        "the unvisited slice keeps its contents"
    );
    assert_ne!(
        &t.data()[2 * slice..3 * slice],
        &t0.data()[2 * slice..3 * slice]
    );
    c.clone()
        .scaled(0.5, 2.0)
        .check_reference("slice 3 unwritten, scaled");
    // 2 region rows, 3 columns, overSample 3, 6 groups: the kernel's groupsPerSample is 3
    // instead of 2, so slice 1 is computed through groups 3 and 4 and slice 2 is never
    // written. (Colour indices chosen so that groups 3 and 4 reach distinct colours.)
    let mut c = Case::new(8, 8, 96, 3, 1, 1, 5).rect(8, 12).groups(6);
    c.sparse = Some((
        4,
        (0..6)
            .flat_map(|g: i32| (0..4).map(move |i| (g % 2) * 4 + i))
            .collect(),
    ));
    assert!(c.visits().iter().any(|&(s, g, _, _)| s == 1 && g == 4));
    c.check_reference("groupsPerSample 3");
    // More region rows than columns: the grid writes past the targets.
    let c = Case::new(16, 8, 64, 3, 1, 1, 5)
        .rect(16, 12)
        .groups(4)
        .sparse(4);
    assert!(c
        .call(&c.hid(), &c.filter_matrix(), &mut NvMatrix::default())
        .is_err());
    // Fewer region rows with overSample 1: the kernel's overSample is 0.
    let c = Case::new(8, 8, 32, 3, 1, 1, 5)
        .rect(8, 12)
        .groups(2)
        .sparse(4);
    assert!(c
        .call(&c.hid(), &c.filter_matrix(), &mut NvMatrix::default())
        .is_err());
    // The manycolor sparse kernel has no such arithmetic.
    Case::new(8, 16, 64, 3, 1, 1, 5)
        .rect(8, 12)
        .groups(4)
        .sparse(8)
        .check_reference("manycolor rect");
}

/// imgActs is the gradient of filterActs with respect to the images: finite differences
/// of `L(x) = <hid, filterActs(x, w)>` in float64 against imgActs(hid, w).
#[test]
fn gradient_of_filter_acts() {
    for c in [
        Case::new(7, 3, 16, 3, 1, 2, 3),
        Case::new(6, 8, 32, 3, 1, 1, 2).groups(2).local(),
        Case::new(6, 16, 16, 4, 2, 2, 3),
        Case::new(6, 8, 64, 3, 1, 1, 2).groups(4).sparse(4),
    ] {
        let (hid, fil) = (c.hid(), c.filter_matrix());
        let mut t = NvMatrix::default();
        c.call(&hid, &fil, &mut t).unwrap();
        let (my, mx, nfc, fs, n) = (c.my(), c.mx(), c.nfc(), c.fs, c.images);
        let fpg = c.filters / c.groups;
        let pixels = c.img_y * c.img_x;
        let images_len = c.colors * pixels * n;
        // The forward pass (filterActs) from its definition, in float64; the sparse
        // slices are separate inputs (the layer sums their gradients).
        let loss = |x: &[f64]| -> f64 {
            let mut l = 0.0;
            for f in 0..c.filters {
                let g = f / fpg;
                for mi in 0..my {
                    for mj in 0..mx {
                        let m = mi * mx + mj;
                        for k in 0..n {
                            let mut acc = 0.0;
                            for cc in 0..nfc {
                                let (s, ic) = match &c.sparse {
                                    Some((_, ci)) => (
                                        g / (c.groups / c.over_sample()),
                                        ci[g * nfc + cc] as usize,
                                    ),
                                    None => (0, g * nfc + cc),
                                };
                                for py in 0..fs {
                                    for px in 0..fs {
                                        let y = (mi * c.stride + py) as i64 - c.pad as i64;
                                        let xx = (mj * c.stride + px) as i64 - c.pad as i64;
                                        if y < 0
                                            || xx < 0
                                            || y >= c.img_y as i64
                                            || xx >= c.img_x as i64
                                        {
                                            continue;
                                        }
                                        let img = x[s * images_len
                                            + ((ic * c.img_y + y as usize) * c.img_x
                                                + xx as usize)
                                                * n
                                            + k];
                                        let fb = if c.local { m * nfc * fs * fs } else { 0 };
                                        let w = fil.data()
                                            [(fb + cc * fs * fs + py * fs + px) * c.filters + f]
                                            as f64;
                                        acc += img * w;
                                    }
                                }
                            }
                            l += hid.data()[(f * my * mx + m) * n + k] as f64 * acc;
                        }
                    }
                }
            }
            l
        };
        let x0: Vec<f64> = uniform(9, t.len(), -1.0, 1.0)
            .iter()
            .map(|&v| v as f64)
            .collect();
        let eps = 1e-3;
        for i in (0..t.len()).step_by(t.len() / 23 + 1) {
            let mut xp = x0.clone();
            let mut xm = x0.clone();
            xp[i] += eps;
            xm[i] -= eps;
            let fd = (loss(&xp) - loss(&xm)) / (2.0 * eps);
            let got = t.data()[i] as f64;
            assert!(
                (fd - got).abs() <= 1e-5 * (1.0 + fd.abs()),
                "{c:?}: element {i}: imgActs {got}, finite difference {fd}"
            );
        }
    }
}

/// Exact bits of every variant the dispatch can pick and of the nets' layers (128
/// images), identical with 1 and 2 threads.
#[test]
fn regression_goldens() {
    let mut reg = Regression::new("img_acts");
    let mut variants: Vec<(&str, Case)> = vec![
        ("color1-ipt8", Case::new(9, 1, 16, 5, 2, 1, 128)),
        (
            "color2-ipt4-local",
            Case::new(8, 2, 32, 3, 1, 1, 64).local(),
        ),
        ("color3-ipt2-ccb-stride2", Case::new(11, 3, 16, 5, 1, 2, 37)),
        (
            "color3-scale",
            Case::new(7, 3, 16, 3, 1, 1, 128).scaled(0.5, 2.0),
        ),
        ("medium-cpt4-ipt8", Case::new(7, 4, 16, 3, 1, 1, 128)),
        (
            "medium-cpt2-ipt4-local",
            Case::new(6, 6, 32, 3, 1, 1, 64).local(),
        ),
        (
            "medium-groups-ipt2-ccb-rect",
            Case::new(6, 8, 32, 3, 1, 1, 50).groups(2).rect(9, 6),
        ),
        (
            "medium-scale-local",
            Case::new(9, 4, 16, 5, 2, 2, 130).local().scaled(1.0, -0.5),
        ),
        ("many-cpt2-ipt4", Case::new(6, 8, 16, 3, 1, 1, 128)),
        (
            "many-cpt4-ipt2-local",
            Case::new(6, 16, 32, 3, 1, 1, 64).local(),
        ),
        (
            "many-groups-ipt1-ccb",
            Case::new(7, 32, 64, 3, 1, 2, 37).groups(2),
        ),
        (
            "many-scale",
            Case::new(6, 16, 16, 4, 0, 2, 128).scaled(-1.5, 0.25),
        ),
        (
            "sparse-many-os1",
            Case::new(6, 16, 32, 3, 1, 1, 128).groups(2).sparse(8),
        ),
        (
            "sparse-many-os2-local-ccb",
            Case::new(6, 16, 64, 3, 1, 1, 100)
                .groups(4)
                .sparse(8)
                .local(),
        ),
        (
            "sparse-many-cpt4-scale",
            Case::new(5, 16, 32, 3, 1, 1, 64)
                .groups(2)
                .sparse(16)
                .scaled(0.5, 1.5),
        ),
        (
            "sparse-medium-os2",
            Case::new(6, 8, 64, 3, 1, 2, 128).groups(4).sparse(4),
        ),
        (
            "sparse-medium-cpt2-local-ccb",
            Case::new(6, 12, 32, 3, 1, 1, 37)
                .groups(2)
                .sparse(6)
                .local(),
        ),
        (
            "sparse-medium-quirk",
            Case::new(12, 8, 128, 3, 1, 1, 64)
                .rect(12, 16)
                .groups(8)
                .sparse(4)
                .scaled(1.0, 1.0),
        ),
    ];
    for (i, (_, c)) in variants.iter_mut().enumerate() {
        c.seed = 1000 + 10 * i as u64;
    }
    for (name, c) in &variants {
        reg.case(name, &same_bits_any_threads_or_lanes(name, || c.run()));
    }
    for s in NET_SHAPES {
        let mut c = Case::new(
            s.img_size,
            s.colors,
            s.filters,
            s.filter_size,
            s.padding,
            s.stride,
            s.images,
        );
        c.groups = s.groups;
        c.local = s.local;
        assert_eq!(c.mx(), s.modules_x, "{}", s.name);
        reg.case(s.name, &same_bits_any_threads_or_lanes(s.name, || c.run()));
    }
    reg.finish();
}

#[test]
fn bad_shapes_give_err() {
    let ok = Case::new(7, 16, 32, 3, 1, 1, 8);
    let (hid, fil) = (ok.hid(), ok.filter_matrix());
    let (my, pad) = (ok.my(), -1);
    let call = |hid: &NvMatrix,
                fil: &NvMatrix,
                t: &mut NvMatrix,
                iy,
                ix,
                my,
                pad,
                stride,
                colors,
                groups,
                st| {
        conv_img_acts(
            hid, fil, t, iy, ix, my, pad, stride, colors, groups, st, 1.0,
        )
    };
    let mut t = NvMatrix::default();
    assert!(call(&hid, &fil, &mut t, 7, 7, my, pad, 1, 16, 1, 0.0).is_ok());
    let bad: Vec<(&str, Result<(), ShapeError>)> = vec![
        (
            "groups 0",
            call(&hid, &fil, &mut t, 7, 7, my, pad, 1, 16, 0, 0.0),
        ),
        (
            "colors % groups",
            call(&hid, &fil, &mut t, 7, 7, my, pad, 1, 16, 3, 0.0),
        ),
        (
            "filters % 16 groups",
            call(&hid, &fil, &mut t, 7, 7, my, pad, 1, 16, 4, 0.0),
        ),
        (
            "colors 0",
            call(&hid, &fil, &mut t, 7, 7, my, pad, 1, 0, 1, 0.0),
        ),
        (
            "odd colors",
            call(&hid, &fil, &mut t, 7, 7, my, pad, 1, 5, 1, 0.0),
        ),
        (
            "filter rows",
            call(&hid, &fil, &mut t, 7, 7, my, pad, 1, 8, 1, 0.0),
        ),
        (
            "modulesY 0",
            call(&hid, &fil, &mut t, 7, 7, 0, pad, 1, 16, 1, 0.0),
        ),
        (
            "modulesY",
            call(&hid, &fil, &mut t, 7, 7, 6, pad, 1, 16, 1, 0.0),
        ),
        (
            "padding > 0",
            call(&hid, &fil, &mut t, 7, 7, my, 1, 1, 16, 1, 0.0),
        ),
        (
            "cover x",
            call(&hid, &fil, &mut t, 7, 9, my, pad, 1, 16, 1, 0.0),
        ),
        (
            "cover y",
            call(&hid, &fil, &mut t, 9, 7, my, pad, 1, 16, 1, 0.0),
        ),
        (
            "stride > filter",
            call(&hid, &fil, &mut t, 7, 7, my, pad, 4, 16, 1, 0.0),
        ),
        (
            "stride 0",
            call(&hid, &fil, &mut t, 7, 7, my, pad, 0, 16, 1, 0.0),
        ),
        (
            "target rows",
            call(
                &hid,
                &fil,
                &mut NvMatrix::new(3, 8, false),
                7,
                7,
                my,
                pad,
                1,
                16,
                1,
                1.0,
            ),
        ),
        (
            "target cols",
            call(
                &hid,
                &fil,
                &mut NvMatrix::new(16 * 49, 9, false),
                7,
                7,
                my,
                pad,
                1,
                16,
                1,
                1.0,
            ),
        ),
        (
            "target trans",
            call(
                &hid,
                &fil,
                &mut NvMatrix::new(16 * 49, 8, true),
                7,
                7,
                my,
                pad,
                1,
                16,
                1,
                1.0,
            ),
        ),
    ];
    for (what, r) in bad {
        assert!(r.is_err(), "{what}: expected Err");
    }
    // Grouped with numFilterColors % 4 != 0 (6 colours in 3 groups: 2 each).
    let g = Case::new(5, 6, 48, 3, 1, 1, 4);
    let mut g2 = g.clone();
    g2.groups = 3;
    let fil2 = NvMatrix::new(2 * 9, 48, false);
    assert!(conv_img_acts(
        &g2.hid(),
        &fil2,
        &mut t,
        5,
        5,
        g.my(),
        -1,
        1,
        6,
        3,
        0.0,
        1.0
    )
    .is_err());
    // Matrices of the wrong shape or orientation.
    assert!(conv_img_acts(
        &NvMatrix::new(32 * 49 + 1, 8, false),
        &fil,
        &mut t,
        7,
        7,
        my,
        pad,
        1,
        16,
        1,
        0.0,
        1.0
    )
    .is_err());
    let mut ht = hid.clone();
    ht.set_trans(true);
    assert!(conv_img_acts(&ht, &fil, &mut t, 7, 7, my, pad, 1, 16, 1, 0.0, 1.0).is_err());
    assert!(conv_img_acts(
        &hid,
        &NvMatrix::new(16 * 9, 0, false),
        &mut t,
        7,
        7,
        my,
        pad,
        1,
        16,
        1,
        0.0,
        1.0
    )
    .is_err());
    assert!(conv_img_acts(
        &hid,
        &NvMatrix::new(16 * 8, 32, false),
        &mut t,
        7,
        7,
        my,
        pad,
        1,
        16,
        1,
        0.0,
        1.0
    )
    .is_err());
    assert!(local_img_acts(&hid, &fil, &mut t, 7, 7, my, pad, 1, 16, 1, 0.0, 1.0).is_err());

    // Empty images or no images: nothing to compute, no panic.
    for (iy, ix) in [(0, 0), (0, 7), (7, 0)] {
        assert!(call(&hid, &fil, &mut t, iy, ix, my, pad, 1, 16, 1, 0.0).is_ok());
        assert_eq!(t.len(), 0);
        let m = Case::new(6, 8, 64, 3, 1, 1, 4).groups(4).sparse(4);
        let ci = &m.sparse.as_ref().unwrap().1;
        let r = conv_img_acts_sparse(
            &m.hid(),
            &m.filter_matrix(),
            &mut t,
            ci,
            iy,
            ix,
            m.my(),
            -1,
            1,
            8,
            4,
            4,
            0.0,
            1.0,
        );
        assert!(r.is_ok());
    }
    let none = NvMatrix::new(32 * 49, 0, false);
    assert!(call(&none, &fil, &mut t, 7, 7, my, pad, 1, 16, 1, 0.0).is_ok());
    assert_eq!((t.rows(), t.cols()), (16 * 49, 0));

    // Sparse.
    let s = Case::new(6, 16, 64, 3, 1, 1, 4).groups(4).sparse(8);
    let (sh, sf) = (s.hid(), s.filter_matrix());
    let ci = s.sparse.as_ref().unwrap().1.clone();
    let sp = |ci: &[i32], colors, nfc, groups, t: &mut NvMatrix| {
        conv_img_acts_sparse(
            &sh,
            &sf,
            t,
            ci,
            6,
            6,
            s.my(),
            -1,
            1,
            colors,
            nfc,
            groups,
            0.0,
            1.0,
        )
    };
    assert!(sp(&ci, 16, 8, 4, &mut t).is_ok());
    assert!(sp(&ci, 16, 8, 1, &mut t).is_err(), "groups 1");
    assert!(sp(&ci, 12, 8, 4, &mut t).is_err(), "colors % nfc");
    assert!(sp(&ci, 0, 8, 4, &mut t).is_err(), "colors 0");
    assert!(sp(&ci, 16, 0, 4, &mut t).is_err(), "nfc 0");
    assert!(sp(&ci, 24, 8, 4, &mut t).is_err(), "nfc*groups % colors");
    assert!(
        sp(&ci[..20], 16, 8, 4, &mut t).is_err(),
        "short colour indices"
    );
    let mut dup = ci.clone();
    dup[1] = dup[0];
    assert!(
        sp(&dup, 16, 8, 4, &mut t).is_err(),
        "duplicate colour in a slice"
    );
    let mut keep = NvMatrix::new(5, 4, false);
    assert!(sp(&dup, 16, 8, 4, &mut keep).is_err());
    assert_eq!(
        (keep.rows(), keep.cols()),
        (5, 4),
        "an Err leaves the targets alone"
    );
    let mut out = ci.clone();
    out[3] = 16;
    assert!(
        sp(&out, 16, 8, 4, &mut t).is_err(),
        "colour index out of range"
    );
    out[3] = -1;
    assert!(sp(&out, 16, 8, 4, &mut t).is_err(), "negative colour index");
    let m = Case::new(6, 6, 32, 3, 1, 1, 4).groups(2);
    let fm = NvMatrix::new(3 * 9, 32, false);
    let ci3: Vec<i32> = vec![0, 1, 2, 3, 4, 5];
    assert!(
        conv_img_acts_sparse(
            &m.hid(),
            &fm,
            &mut t,
            &ci3,
            6,
            6,
            m.my(),
            -1,
            1,
            6,
            3,
            2,
            0.0,
            1.0
        )
        .is_err(),
        "sparse with 3 filter colours"
    );
    assert!(
        conv_img_acts_sparse(
            &sh,
            &sf,
            &mut NvMatrix::new(5, 4, false),
            &ci,
            6,
            6,
            s.my(),
            -1,
            1,
            16,
            8,
            4,
            1.0,
            1.0
        )
        .is_err(),
        "sparse target rows"
    );
}

/// Random arguments, consistent or perturbed: `Ok` or `Err`, never a panic.
#[test]
fn random_arguments_never_panic() {
    let mut r = convnet::synthetic::SplitMix64::new(42);
    let mut pick = |n: u64| (r.next_u64() % n) as usize;
    let mut oks = 0;
    for _ in 0..2000 {
        // A consistent shape...
        let (fs, groups) = (1 + pick(4), 1 + pick(4));
        let (pad, stride) = (pick(fs as u64), 1 + pick(fs as u64));
        let (mut iy, mut ix) = (fs + pick(6), fs + pick(6));
        let modules = |img: usize| 1 + (img + 2 * pad - fs).div_ceil(stride);
        let (mut my, mx) = (modules(iy), modules(ix));
        let mut nfc = [1, 2, 3, 4, 6, 8, 16][pick(7)];
        let mut colors = nfc * groups;
        let mut filters = 16 * groups * (1 + pick(2));
        let local = pick(2) == 0;
        let mult = if local { my * mx } else { 1 };
        let mut frows = mult * nfc * fs * fs;
        let images = pick(40);
        let mut ci: Vec<i32> = (0..groups * nfc).map(|i| (i % colors) as i32).collect();
        let mut pad_start = -(pad as i32);
        // ... with one argument perturbed, often.
        match pick(12) {
            0 => iy += pick(5),
            1 => ix = pick(12),
            2 => my = pick(9),
            3 => nfc = pick(10),
            4 => colors = pick(18),
            5 => filters = pick(70),
            6 => frows = pick(80),
            7 => {
                let i = pick(ci.len() as u64);
                ci[i] = pick(19) as i32 - 1
            }
            8 => pad_start = pick(3) as i32 - 1,
            _ => {}
        }
        let hid = NvMatrix::new(filters * my * mx, images, pick(16) == 0);
        let fil = NvMatrix::new(frows, filters, pick(16) == 0);
        let st = if pick(2) == 0 { 0.0 } else { 0.5 };
        let over = (nfc * groups).checked_div(colors).unwrap_or(1).max(1);
        let mut t = NvMatrix::new(over * colors * iy * ix, images, pick(16) == 0);
        let (s, g, c, n) = (stride, groups, colors, nfc);
        let results = if local {
            [
                local_img_acts(&hid, &fil, &mut t, iy, ix, my, pad_start, s, c, g, st, 1.0),
                local_img_acts_sparse(
                    &hid, &fil, &mut t, &ci, iy, ix, my, pad_start, s, c, n, g, st, 1.0,
                ),
            ]
        } else {
            [
                conv_img_acts(&hid, &fil, &mut t, iy, ix, my, pad_start, s, c, g, st, 1.0),
                conv_img_acts_sparse(
                    &hid, &fil, &mut t, &ci, iy, ix, my, pad_start, s, c, n, g, st, 1.0,
                ),
            ]
        };
        oks += results.iter().filter(|r| r.is_ok()).count();
    }
    assert!(oks > 100, "only {oks} valid calls");
}
