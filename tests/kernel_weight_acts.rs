//! weightActs (cudaconv2/weight_acts.cu): float64 reference on small and awkward
//! shapes, the kernel's operation sequence written out plainly (bit-exact), exact-bits
//! regression goldens for every template the dispatch can pick and for the nets'
//! shapes, and the host asserts as `Err`.

mod common;

use common::{assert_close, same_bits_any_threads_or_lanes, Regression};
use convnet::cudaconv2::shapes::{ConvShape, NET_SHAPES};
use convnet::cudaconv2::weight_acts::{
    conv_weight_acts, conv_weight_acts_sparse, conv_weight_acts_sparse_short, local_weight_acts,
    local_weight_acts_sparse, local_weight_acts_sparse_short, weight_acts_launch, PRELOAD_CASES,
};
use convnet::cudaconv2::ShapeError;
use convnet::nvmatrix::NvMatrix;
use convnet::synthetic::{uniform, SplitMix64};
use std::collections::BTreeSet;

/// One call: shape, connectivity and scale arguments.
#[derive(Clone, Copy, Debug)]
struct Case {
    colors: usize,
    groups: usize,
    filters: usize,
    img: usize,
    fs: usize,
    pad: usize,
    stride: usize,
    /// 0: derived from the layer rule `1 + ceil((2*pad + img - fs) / stride)`.
    modules_x: usize,
    /// As passed (0 = all modules); ignored for local calls (1).
    partial_sum: usize,
    images: usize,
    /// Filter colours of a sparse call; 0 = not sparse.
    sparse_fc: usize,
    local: bool,
    st: f32,
    so: f32,
}

const BASE: Case = Case {
    colors: 3,
    groups: 1,
    filters: 32,
    img: 8,
    fs: 3,
    pad: 1,
    stride: 1,
    modules_x: 0,
    partial_sum: 4,
    images: 37,
    sparse_fc: 0,
    local: false,
    st: 0.0,
    so: 1.0,
};

impl Case {
    fn mx(&self) -> usize {
        if self.modules_x > 0 {
            self.modules_x
        } else {
            1 + (2 * self.pad + self.img - self.fs).div_ceil(self.stride)
        }
    }
    fn modules(&self) -> usize {
        self.mx() * self.mx()
    }
    fn fc(&self) -> usize {
        if self.sparse_fc > 0 {
            self.sparse_fc
        } else {
            self.colors / self.groups
        }
    }
    fn ps(&self) -> usize {
        match (self.local, self.partial_sum) {
            (true, _) => 1,
            (false, 0) => self.modules(),
            (false, p) => p,
        }
    }
    fn out_rows(&self) -> usize {
        self.modules() / self.ps() * self.fc() * self.fs * self.fs
    }
    fn color_indices(&self, seed: u64) -> Vec<i32> {
        let mut g = SplitMix64::new(seed);
        let mut v = Vec::new();
        for _ in 0..self.groups {
            let mut pool: Vec<i32> = (0..self.colors as i32).collect();
            for c in 0..self.fc() {
                let k = c + (g.next_u64() % (pool.len() - c) as u64) as usize;
                pool.swap(c, k);
                v.push(pool[c]);
            }
        }
        v
    }
    fn from_shape(s: &ConvShape, local: bool) -> Case {
        Case {
            colors: s.colors,
            groups: s.groups,
            filters: s.filters,
            img: s.img_size,
            fs: s.filter_size,
            pad: s.padding,
            stride: s.stride,
            modules_x: s.modules_x,
            partial_sum: s.partial_sum,
            images: s.images,
            sparse_fc: 0,
            local,
            st: 0.0,
            so: 1.0,
        }
    }
    /// The template the original's dispatch picks.
    fn kernel(&self) -> String {
        let fp = self.fs * self.fs;
        let l = weight_acts_launch(
            self.fc(),
            self.filters,
            self.groups,
            self.images,
            self.modules(),
            self.ps(),
            fp,
            self.st != 0.0,
            self.sparse_fc > 0,
        );
        l.to_string()
    }
}

/// Seeded inputs of a case: images, hidActs, initial targets, colour indices.
struct Inputs {
    images: NvMatrix,
    hid: NvMatrix,
    init: Vec<f32>,
    colors: Vec<i32>,
}

fn inputs(c: &Case, seed: u64) -> Inputs {
    let ip = c.img * c.img;
    let n = c.images;
    let images = NvMatrix::from_vec(
        c.colors * ip,
        n,
        false,
        uniform(seed, c.colors * ip * n, -1.0, 1.0),
    );
    let hid_rows = c.filters * c.modules();
    let hid = NvMatrix::from_vec(
        hid_rows,
        n,
        false,
        uniform(seed + 1, hid_rows * n, -1.0, 1.0),
    );
    let init = uniform(seed + 2, c.out_rows() * c.filters, -1.0, 1.0);
    Inputs {
        images,
        hid,
        init,
        colors: c.color_indices(seed + 3),
    }
}

/// Calls the function the case names.
fn call(c: &Case, x: &Inputs, targets: &mut NvMatrix) -> Result<(), ShapeError> {
    let (iy, my, mx, fs, ps, st, so) = (c.img, c.mx(), c.mx(), c.fs, c.partial_sum, c.st, c.so);
    let pad = -(c.pad as i32);
    match (c.sparse_fc > 0, c.local) {
        (false, false) => conv_weight_acts(
            &x.images, &x.hid, targets, iy, my, mx, fs, pad, c.stride, c.colors, c.groups, ps, st,
            so,
        ),
        (false, true) => local_weight_acts(
            &x.images, &x.hid, targets, iy, my, mx, fs, pad, c.stride, c.colors, c.groups, st, so,
        ),
        (true, false) => conv_weight_acts_sparse(
            &x.images,
            &x.hid,
            targets,
            &x.colors,
            iy,
            my,
            mx,
            fs,
            pad,
            c.stride,
            c.colors,
            c.fc(),
            c.groups,
            ps,
            st,
            so,
        ),
        (true, true) => local_weight_acts_sparse(
            &x.images,
            &x.hid,
            targets,
            &x.colors,
            iy,
            my,
            mx,
            fs,
            pad,
            c.stride,
            c.colors,
            c.fc(),
            c.groups,
            st,
            so,
        ),
    }
}

/// Runs a case on fresh targets (the initial values when scaling).
fn compute(c: &Case, x: &Inputs) -> Vec<f32> {
    let mut t = if c.st != 0.0 {
        NvMatrix::from_vec(c.out_rows(), c.filters, false, x.init.clone())
    } else {
        NvMatrix::new(3, 5, false)
    };
    call(c, x, &mut t).unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert_eq!(
        (t.rows(), t.cols()),
        (c.out_rows(), c.filters),
        "{c:?}: targets shape"
    );
    t.into_vec()
}

/// Image colour of filter colour `fc` of the group owning filter `f`.
fn colour(c: &Case, x: &Inputs, f: usize, fc: usize) -> usize {
    let g = f / (c.filters / c.groups);
    if c.sparse_fc > 0 {
        x.colors[g * c.fc() + fc] as usize
    } else {
        g * c.fc() + fc
    }
}

/// The image value the module-`m` window reads at filter pixel `p`, case `n` (0 outside).
fn pixel(c: &Case, x: &Inputs, colour: usize, m: usize, p: usize, n: usize) -> Option<f32> {
    let y = (m / c.mx() * c.stride + p / c.fs) as i64 - c.pad as i64;
    let xx = (m % c.mx() * c.stride + p % c.fs) as i64 - c.pad as i64;
    let inside = y >= 0 && y < c.img as i64 && xx >= 0 && xx < c.img as i64;
    inside.then(|| {
        x.images
            .get(colour * c.img * c.img + y as usize * c.img + xx as usize, n)
    })
}

/// Float64 reference of the mathematics: `st*t + so*Σ_m Σ_n img*hid`.
fn reference(c: &Case, x: &Inputs) -> Vec<f64> {
    let (fp, nf, ps) = (c.fs * c.fs, c.filters, c.ps());
    let mut out = vec![0f64; c.out_rows() * nf];
    for og in 0..c.modules() / ps {
        for fc in 0..c.fc() {
            for p in 0..fp {
                for f in 0..nf {
                    let col = colour(c, x, f, fc);
                    let mut s = 0f64;
                    for m in og * ps..(og + 1) * ps {
                        for n in 0..c.images {
                            if let Some(v) = pixel(c, x, col, m, p, n) {
                                s += v as f64 * x.hid.get(f * c.modules() + m, n) as f64;
                            }
                        }
                    }
                    let i = ((og * c.fc() + fc) * fp + p) * nf + f;
                    out[i] = if c.st != 0.0 {
                        c.st as f64 * x.init[i] as f64
                    } else {
                        0.0
                    } + c.so as f64 * s;
                }
            }
        }
    }
    out
}

/// The original kernel's operation sequence for one output, written plainly: modules
/// ascending, 32-case chunks, 32 slots per chunk (image 0 past numImages and outside
/// the image; the hidAct slot past numImages keeps the previous chunk's value, +0 when
/// there is none), `fma` accumulation, then the fused write.
fn kernel_sequence(c: &Case, x: &Inputs) -> Vec<f32> {
    let (fp, nf, ps, n) = (c.fs * c.fs, c.filters, c.ps(), c.images);
    let chunks = n.div_ceil(PRELOAD_CASES);
    let mut out = vec![0f32; c.out_rows() * nf];
    for og in 0..c.modules() / ps {
        for fc in 0..c.fc() {
            for p in 0..fp {
                for f in 0..nf {
                    let col = colour(c, x, f, fc);
                    let mut prod = 0f32;
                    for m in og * ps..(og + 1) * ps {
                        let h = |k: usize| x.hid.get(f * c.modules() + m, k);
                        for k in 0..chunks {
                            for i in 0..PRELOAD_CASES {
                                let case = k * PRELOAD_CASES + i;
                                let (img, hid) = if case < n {
                                    (pixel(c, x, col, m, p, case).unwrap_or(0.0), h(case))
                                } else {
                                    (0.0, if k > 0 { h(case - PRELOAD_CASES) } else { 0.0 })
                                };
                                prod = img.mul_add(hid, prod);
                            }
                        }
                    }
                    let i = ((og * c.fc() + fc) * fp + p) * nf + f;
                    out[i] = if c.st != 0.0 {
                        c.st.mul_add(x.init[i], c.so * prod)
                    } else {
                        c.so * prod
                    };
                }
            }
        }
    }
    out
}

/// Small and awkward shapes of every variant.
fn small_cases() -> Vec<Case> {
    let b = BASE;
    vec![
        // 1-3 colours, numFilters % 32 == 0 and not; image counts; padding; stride.
        Case {
            colors: 1,
            filters: 32,
            images: 37,
            ..b
        },
        Case {
            colors: 1,
            filters: 16,
            images: 1,
            partial_sum: 1,
            ..b
        },
        Case {
            colors: 2,
            filters: 32,
            images: 64,
            pad: 0,
            partial_sum: 0,
            ..b
        },
        Case {
            colors: 2,
            filters: 48,
            images: 100,
            st: 0.5,
            so: -2.0,
            ..b
        },
        Case {
            colors: 3,
            filters: 64,
            images: 130,
            img: 9,
            stride: 2,
            partial_sum: 5,
            ..b
        },
        Case {
            colors: 3,
            filters: 16,
            images: 37,
            fs: 5,
            pad: 2,
            partial_sum: 0,
            ..b
        },
        Case {
            colors: 3,
            filters: 32,
            images: 5,
            img: 7,
            fs: 4,
            pad: 0,
            stride: 3,
            partial_sum: 1,
            ..b
        },
        // > 3 colours: filters per group % 64, % 32, else; colours % 8 and not.
        Case {
            colors: 4,
            filters: 64,
            images: 37,
            ..b
        },
        Case {
            colors: 8,
            filters: 32,
            images: 64,
            img: 6,
            partial_sum: 6,
            st: 1.0,
            so: 0.25,
            ..b
        },
        Case {
            colors: 12,
            filters: 16,
            images: 100,
            img: 5,
            fs: 2,
            pad: 0,
            partial_sum: 2,
            ..b
        },
        Case {
            colors: 16,
            filters: 80,
            images: 33,
            img: 6,
            fs: 5,
            pad: 2,
            stride: 2,
            partial_sum: 0,
            ..b
        },
        // Groups.
        Case {
            colors: 16,
            groups: 2,
            filters: 64,
            images: 37,
            img: 6,
            partial_sum: 3,
            ..b
        },
        Case {
            colors: 16,
            groups: 4,
            filters: 64,
            images: 1,
            img: 5,
            partial_sum: 5,
            ..b
        },
        Case {
            colors: 24,
            groups: 3,
            filters: 192,
            images: 130,
            img: 5,
            pad: 0,
            partial_sum: 3,
            st: -1.5,
            so: 0.5,
            ..b
        },
        // Sparse random connectivity.
        Case {
            colors: 8,
            groups: 4,
            filters: 64,
            sparse_fc: 4,
            images: 37,
            img: 6,
            partial_sum: 4,
            ..b
        },
        Case {
            colors: 16,
            groups: 2,
            filters: 128,
            sparse_fc: 8,
            images: 64,
            img: 5,
            partial_sum: 0,
            ..b
        },
        Case {
            colors: 8,
            groups: 2,
            filters: 64,
            sparse_fc: 8,
            images: 100,
            img: 5,
            stride: 2,
            partial_sum: 1,
            ..b
        },
        Case {
            colors: 4,
            groups: 3,
            filters: 96,
            sparse_fc: 4,
            images: 20,
            img: 5,
            partial_sum: 5,
            st: 2.0,
            so: 1.0,
            ..b
        },
        // Local.
        Case {
            colors: 3,
            filters: 16,
            images: 37,
            local: true,
            ..b
        },
        Case {
            colors: 8,
            groups: 2,
            filters: 32,
            images: 100,
            img: 5,
            local: true,
            st: 0.5,
            so: 1.0,
            ..b
        },
        Case {
            colors: 8,
            groups: 2,
            filters: 32,
            sparse_fc: 8,
            images: 37,
            img: 5,
            local: true,
            ..b
        },
    ]
}

#[test]
fn reference_float64_small_shapes() {
    for (i, c) in small_cases().iter().enumerate() {
        let x = inputs(c, 100 + i as u64);
        let got = compute(c, &x);
        assert_close(
            &format!("case {i} {c:?} ({})", c.kernel()),
            &got,
            &reference(c, &x),
            2e-5,
        );
    }
}

#[test]
fn bits_equal_the_kernel_operation_sequence() {
    for (i, c) in small_cases().iter().enumerate() {
        let x = inputs(c, 100 + i as u64);
        let got = compute(c, &x);
        let want = kernel_sequence(c, &x);
        for (j, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "case {i} {c:?}: element {j}: got {g:e}, sequence {w:e}"
            );
        }
    }
}

/// The stale hidAct slot shows in the sign of zero: with tiny values every product
/// underflows, so the accumulator is ±0 with the sign of the last term. Past
/// numImages = 37 the kernel adds `0 * hid[n-32]` (positive here) and ends at +0;
/// without those terms it would end at -0.
#[test]
fn cases_past_num_images_reuse_the_previous_chunk_hidacts() {
    let c = Case {
        colors: 1,
        filters: 16,
        img: 3,
        fs: 3,
        pad: 0,
        partial_sum: 1,
        images: 37,
        ..BASE
    };
    let mut x = inputs(&c, 7);
    x.images.data_mut().iter_mut().for_each(|v| *v = 1e-30);
    let n = c.images;
    for f in 0..16 {
        for k in 0..n {
            x.hid
                .set(f, k, if (5..32).contains(&k) { 1e-30 } else { -1e-30 });
        }
    }
    let got = compute(&c, &x);
    assert!(
        got.iter().all(|v| v.to_bits() == 0),
        "expected +0 everywhere, got {:?}",
        &got[..4]
    );
    // Same data, 32 cases: no partial chunk, the last term is negative: -0.
    let c32 = Case { images: 32, ..c };
    let mut x32 = inputs(&c32, 7);
    x32.images.data_mut().iter_mut().for_each(|v| *v = 1e-30);
    for f in 0..16 {
        for k in 0..32 {
            x32.hid
                .set(f, k, if (5..31).contains(&k) { 1e-30 } else { -1e-30 });
        }
    }
    let got = compute(&c32, &x32);
    assert!(
        got.iter().all(|v| v.to_bits() == 0x8000_0000),
        "expected -0 everywhere, got {:?}",
        &got[..4]
    );
}

/// Every template instantiation of `_weightActs` / `_weightActsSparse`, on small shapes.
fn variant_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let b = Case {
        img: 5,
        fs: 3,
        pad: 1,
        partial_sum: 5,
        ..BASE
    };
    for (st, so) in [(0.0, 1.0), (0.5, 2.0)] {
        for images in [64, 37] {
            for colors in 1..=3 {
                for filters in [32, 16] {
                    v.push(Case {
                        colors,
                        filters,
                        images,
                        st,
                        so,
                        ..b
                    });
                }
            }
            for filters in [64, 32, 16] {
                for colors in [8, 4] {
                    v.push(Case {
                        colors,
                        filters,
                        images,
                        st,
                        so,
                        ..b
                    });
                    v.push(Case {
                        colors: colors * 2,
                        groups: 2,
                        filters: filters * 2,
                        sparse_fc: colors,
                        images,
                        st,
                        so,
                        ..b
                    });
                }
            }
        }
    }
    v
}

#[test]
fn regression_every_variant_and_net_shapes() {
    let mut reg = Regression::new("weight_acts");
    let mut seen = BTreeSet::new();
    for (i, c) in variant_cases().iter().enumerate() {
        let x = inputs(c, 1000 + i as u64);
        let k = c.kernel();
        let out = same_bits_any_threads_or_lanes(&k, || compute(c, &x));
        reg.case(
            &format!(
                "variant-{i:02}-{}{k}",
                if c.sparse_fc > 0 { "sparse-" } else { "" }
            ),
            &out,
        );
        seen.insert(k);
    }
    // 3 colour counts x 2 filter rules, and 3 x 2 for each many-colour kernel, x scale
    // x checkCaseBounds: every template the dispatch launches.
    assert_eq!(seen.len(), (6 + 6 + 6) * 4, "templates covered: {seen:?}");
    for (i, c) in small_cases().iter().enumerate() {
        let x = inputs(c, 100 + i as u64);
        reg.case(
            &format!("small-{i:02}-{}", c.kernel()),
            &same_bits_any_threads_or_lanes("small", || compute(c, &x)),
        );
    }
    // The nets' conv layers (convWeightActs with their partialSum) and local layers
    // (localWeightActs).
    for s in NET_SHAPES {
        let c = Case::from_shape(s, s.local);
        let x = inputs(&c, 7);
        let what = format!("{}-{}", s.name, if s.local { "local" } else { "conv" });
        let out = same_bits_any_threads_or_lanes(&what, || compute(&c, &x));
        reg.case(&format!("{what}-{}", c.kernel()), &out);
    }
    reg.finish();
}

/// The buggy short overloads keep the old targets.
#[test]
fn short_sparse_overloads_compute_nothing() {
    let c = Case {
        colors: 8,
        groups: 2,
        filters: 32,
        sparse_fc: 4,
        images: 37,
        img: 5,
        partial_sum: 0,
        ..BASE
    };
    let x = inputs(&c, 9);
    let rows = c.out_rows();
    let mut t = NvMatrix::from_vec(rows, 32, false, x.init.clone());
    conv_weight_acts_sparse_short(
        &x.images,
        &x.hid,
        &mut t,
        &x.colors,
        5,
        c.mx(),
        c.mx(),
        3,
        -1,
        1,
        8,
        4,
        2,
    )
    .unwrap();
    assert_eq!(t.data(), &x.init[..]);
    let local_rows = c.modules() * 4 * 9;
    let init = uniform(5, local_rows * 32, -1.0, 1.0);
    let mut t = NvMatrix::from_vec(local_rows, 32, false, init.clone());
    local_weight_acts_sparse_short(
        &x.images,
        &x.hid,
        &mut t,
        &x.colors,
        5,
        c.mx(),
        c.mx(),
        3,
        -1,
        1,
        8,
        4,
        2,
    )
    .unwrap();
    assert_eq!(t.data(), &init[..]);
    // Targets of the wrong size: the scale path asserts.
    let mut t = NvMatrix::new(3, 3, false);
    assert!(conv_weight_acts_sparse_short(
        &x.images,
        &x.hid,
        &mut t,
        &x.colors,
        5,
        c.mx(),
        c.mx(),
        3,
        -1,
        1,
        8,
        4,
        2
    )
    .is_err());
}

/// `partialSum` rows summed over groups equal the single-group result up to rounding.
#[test]
fn partial_sums_add_up_to_the_whole() {
    let c = Case {
        colors: 3,
        filters: 32,
        images: 64,
        partial_sum: 4,
        ..BASE
    };
    let x = inputs(&c, 3);
    let parts = compute(&c, &x);
    let whole = compute(
        &Case {
            partial_sum: 0,
            ..c
        },
        &x,
    );
    let per = whole.len();
    let sum: Vec<f32> = (0..per)
        .map(|i| parts.iter().skip(i).step_by(per).sum())
        .collect();
    let w: Vec<f64> = whole.iter().map(|&v| v as f64).collect();
    assert_close("sum of partial sums", &sum, &w, 1e-5);
}

#[test]
fn bad_shapes_are_errors() {
    let c = Case {
        colors: 3,
        filters: 32,
        images: 40,
        ..BASE
    };
    let x = inputs(&c, 1);
    let (mx, n) = (c.mx(), c.images);
    let ok = |t: &mut NvMatrix| {
        conv_weight_acts(&x.images, &x.hid, t, 8, mx, mx, 3, -1, 1, 3, 1, 4, 0.0, 1.0)
    };
    ok(&mut NvMatrix::default()).unwrap();
    let err = |r: Result<(), ShapeError>, what: &str| {
        let e = r.expect_err(what);
        assert!(e.condition.contains(what), "{what}: got {e}");
    };
    let mut t = NvMatrix::default();
    let i = &x.images;
    let h = &x.hid;
    err(
        conv_weight_acts(i, h, &mut t, 8, mx, mx, 3, -1, 1, 0, 1, 4, 0.0, 1.0),
        "numImgColors > 0",
    );
    err(
        conv_weight_acts(i, h, &mut t, 8, 0, mx, 3, -1, 1, 3, 1, 4, 0.0, 1.0),
        "numModulesY*numModulesX > 0",
    );
    err(
        conv_weight_acts(i, h, &mut t, 0, mx, mx, 3, -1, 1, 3, 1, 4, 0.0, 1.0),
        "imgSizeY > 0",
    );
    err(
        conv_weight_acts(i, h, &mut t, 8, mx, mx, 3, -1, 1, 3, 0, 4, 0.0, 1.0),
        "numGroups > 0",
    );
    err(
        conv_weight_acts(i, h, &mut t, 8, mx, mx, 3, -1, 1, 3, 2, 4, 0.0, 1.0),
        "numImgColors % numGroups",
    );
    err(
        conv_weight_acts(i, h, &mut t, 8, mx, mx, 3, -1, 1, 3, 3, 4, 0.0, 1.0),
        "numFilters % (16*numGroups)",
    );
    let (i4, i193, i39) = (
        NvMatrix::new(4 * 64, n, false),
        NvMatrix::new(3 * 64 + 1, n, false),
        NvMatrix::new(3 * 64, n - 1, false),
    );
    // 6 colours, one group: neither <= 3 nor % 4.
    let i6 = NvMatrix::new(6 * 64, n, false);
    err(
        conv_weight_acts(&i6, h, &mut t, 8, mx, mx, 3, -1, 1, 6, 1, 4, 0.0, 1.0),
        "numImgColors <= 3",
    );
    // 2 groups of 2 colours.
    err(
        conv_weight_acts(&i4, h, &mut t, 8, mx, mx, 3, -1, 1, 4, 2, 4, 0.0, 1.0),
        "numFilterColors % 4",
    );
    err(
        conv_weight_acts(i, h, &mut t, 7, mx, mx, 3, -1, 1, 3, 1, 4, 0.0, 1.0),
        "imgSizeY * imgSizeX == imgPixels",
    );
    err(
        conv_weight_acts(&i193, h, &mut t, 8, mx, mx, 3, -1, 1, 3, 1, 4, 0.0, 1.0),
        "images.getNumRows()",
    );
    err(
        conv_weight_acts(i, h, &mut t, 8, mx, mx, 3, -1, 1, 3, 1, 3, 0.0, 1.0),
        "numModules % partialSum",
    );
    err(
        conv_weight_acts(&i39, h, &mut t, 8, mx, mx, 3, -1, 1, 3, 1, 4, 0.0, 1.0),
        "hidActs.getNumCols()",
    );
    err(
        conv_weight_acts(i, h, &mut t, 8, mx, mx, 3, 1, 1, 3, 1, 4, 0.0, 1.0),
        "paddingStart <= 0",
    );
    // 4 modules of stride 1 from -1 with size 3 reach only 5 < 8: in x, then in y.
    let h48 = NvMatrix::new(32 * 4 * 8, n, false);
    err(
        conv_weight_acts(i, &h48, &mut t, 8, 8, 4, 3, -1, 1, 3, 1, 4, 0.0, 1.0),
        "(numModulesX-1)",
    );
    err(
        conv_weight_acts(i, &h48, &mut t, 8, 4, 8, 3, -1, 1, 3, 1, 4, 0.0, 1.0),
        "(numModulesY-1)",
    );
    err(
        conv_weight_acts(i, h, &mut t, 8, mx, mx, 3, -1, 4, 3, 1, 4, 0.0, 1.0),
        "moduleStride <= filterSize",
    );
    let h_bad = NvMatrix::new(32 * mx * mx + 16, n, false);
    err(
        conv_weight_acts(i, &h_bad, &mut t, 8, mx, mx, 3, -1, 1, 3, 1, 4, 0.0, 1.0),
        "numModules * numFilters",
    );
    let mut it = x.images.clone();
    it.set_trans(true);
    err(
        conv_weight_acts(&it, h, &mut t, 8, mx, mx, 3, -1, 1, 3, 1, 4, 0.0, 1.0),
        "!images.isTrans()",
    );
    let mut ht = x.hid.clone();
    ht.set_trans(true);
    err(
        conv_weight_acts(i, &ht, &mut t, 8, mx, mx, 3, -1, 1, 3, 1, 4, 0.0, 1.0),
        "!hidActs.isTrans()",
    );
    let mut tt = NvMatrix::new(1, 1, true);
    err(
        conv_weight_acts(i, h, &mut tt, 8, mx, mx, 3, -1, 1, 3, 1, 4, 0.0, 1.0),
        "!targets.isTrans()",
    );
    let h0 = NvMatrix::new(0, n, false);
    err(
        conv_weight_acts(i, &h0, &mut t, 8, mx, mx, 3, -1, 1, 3, 1, 4, 0.0, 1.0),
        "non-empty grid",
    );
    // Scaling needs targets of the output's size.
    let mut small = NvMatrix::new(4, 32, false);
    err(
        conv_weight_acts(i, h, &mut small, 8, mx, mx, 3, -1, 1, 3, 1, 4, 1.0, 1.0),
        "targets.getNumRows()",
    );
    let mut narrow = NvMatrix::new(c.out_rows(), 16, false);
    err(
        conv_weight_acts(i, h, &mut narrow, 8, mx, mx, 3, -1, 1, 3, 1, 4, 1.0, 1.0),
        "targets.getNumCols()",
    );
    err(
        local_weight_acts(i, h, &mut narrow, 8, mx, mx, 3, -1, 1, 3, 1, 1.0, 1.0),
        "targets.getNumRows()",
    );

    // Sparse.
    let s = Case {
        colors: 8,
        groups: 2,
        filters: 32,
        sparse_fc: 4,
        images: 40,
        img: 5,
        ..BASE
    };
    let xs = inputs(&s, 2);
    let m = s.mx();
    let (i, h, ci) = (&xs.images, &xs.hid, &xs.colors[..]);
    let sp = |t: &mut NvMatrix, fc: usize, g: usize, ci: &[i32]| {
        conv_weight_acts_sparse(i, h, t, ci, 5, m, m, 3, -1, 1, 8, fc, g, 0, 0.0, 1.0)
    };
    sp(&mut t, 4, 2, ci).unwrap();
    err(sp(&mut t, 4, 1, ci), "numGroups > 1");
    err(sp(&mut t, 0, 2, ci), "numFilterColors > 0");
    err(sp(&mut t, 3, 2, ci), "numImgColors % numFilterColors");
    err(
        sp(&mut t, 4, 3, ci),
        "(numFilterColors * numGroups) % numImgColors",
    );
    err(sp(&mut t, 4, 4, ci), "numFilters % (16*numGroups)");
    err(sp(&mut t, 4, 2, &ci[..7]), "dColorIndices has");
    err(
        sp(&mut t, 4, 2, &[0, 1, 2, 8, 0, 1, 2, 3]),
        "dColorIndices[i] < numImgColors",
    );
    err(
        sp(&mut t, 4, 2, &[0, 1, 2, -1, 0, 1, 2, 3]),
        "dColorIndices[i] < numImgColors",
    );
    let i2 = NvMatrix::new(2 * 25, 40, false);
    err(
        conv_weight_acts_sparse(
            &i2,
            h,
            &mut t,
            &[0, 1, 0, 1],
            5,
            m,
            m,
            3,
            -1,
            1,
            2,
            2,
            2,
            0,
            0.0,
            1.0,
        ),
        "numFilterColors % 4",
    );
    err(
        local_weight_acts_sparse(i, h, &mut t, ci, 5, m, m, 3, -1, 0, 8, 4, 2, 0.0, 1.0),
        "(numModulesX-1)",
    );
}
