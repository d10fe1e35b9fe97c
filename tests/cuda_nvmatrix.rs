//! The NVMatrix kernels of cuda/nvmatrix.cu and the products, on every backend
//! (`common::emu::backends()`), against the CPU port (src/nvmatrix/): the CPU's bits
//! exactly in the emulation and for exact-tier kernels on a GPU; bounded ones within
//! their bounds on a GPU. Shapes include both orientations, transposed operands,
//! single rows and columns and lengths that fill no block evenly.

mod common;
use common::emu::backends;
use convnet::cuda::launch::{self, Agg, Binary, Randomizer, Unary};
use convnet::cuda::{Backend, DevBuf, DevMat};
use convnet::nvmatrix::{NvMatrix, RandomStreams, NUM_RND_STREAMS};

/// Deterministic values in about [-4, 4], with repeats (for `Equals`) and zeros.
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(12_345);
    (0..n)
        .map(|i| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            match i % 11 {
                3 => 0.0,
                7 => 1.5,
                _ => ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 8.0,
            }
        })
        .collect()
}

fn mat(rows: usize, cols: usize, trans: bool, seed: u32) -> NvMatrix {
    NvMatrix::from_vec(rows, cols, trans, values(rows * cols, seed))
}

fn up(b: &dyn Backend, m: &NvMatrix) -> DevBuf {
    b.upload(m.data()).unwrap()
}

fn dm<'a>(buf: &'a DevBuf, m: &NvMatrix) -> DevMat<'a> {
    DevMat::with_trans(buf, m.rows(), m.cols(), m.is_trans()).unwrap()
}

/// Compares `got` with the CPU's `want`: bit for bit when `exact` or emulated (NaNs
/// equal as NaNs), else within `rel` of each value plus `abs`.
fn check(b: &dyn Backend, what: &str, got: &[f32], want: &[f32], exact: bool, rel: f32, abs: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if g.is_nan() || w.is_nan() {
            g.is_nan() && w.is_nan()
        } else if exact || b.emulated() {
            g.to_bits() == w.to_bits()
        } else {
            g == w || (g - w).abs() <= rel * w.abs() + abs
        };
        assert!(
            ok,
            "{what} on {}: element {i}: got {g:e}, CPU {w:e}",
            b.name()
        );
    }
}

fn check_exact(b: &dyn Backend, what: &str, got: &[f32], want: &[f32]) {
    check(b, what, got, want, true, 0.0, 0.0)
}

const UNARY: [Unary; 21] = [
    Unary::Exp,
    Unary::Logistic,
    Unary::Log,
    Unary::Square,
    Unary::Sqrt,
    Unary::Reciprocal,
    Unary::Abs,
    Unary::Sign,
    Unary::Identity,
    Unary::Zero,
    Unary::One,
    Unary::SmallerThanScalar(0.25),
    Unary::BiggerThanScalar(-0.5),
    Unary::AddScalar(1.25),
    Unary::WeightedAddScalar {
        weight: 0.3,
        scalar: -1.7,
    },
    Unary::MultByScalar(-2.5),
    Unary::Pow(0.75),
    Unary::InRangeExc {
        lower: -1.0,
        upper: 1.5,
    },
    Unary::InRangeInc {
        lower: -1.0,
        upper: 1.5,
    },
    Unary::MinWithScalar(0.5),
    Unary::MaxWithScalar(0.5),
];

fn unary_exact(op: Unary) -> bool {
    !matches!(
        op,
        Unary::Exp | Unary::Logistic | Unary::Log | Unary::Pow(_)
    )
}

#[test]
fn unary_functors_in_both_orientations_and_in_place() {
    for b in backends() {
        let b = &*b;
        for op in UNARY {
            for (rows, cols, st, tt) in [
                (7, 13, false, false),
                (7, 13, false, true),
                (33, 65, true, false),
                (1, 1, true, true),
            ] {
                let a = mat(rows, cols, st, 1);
                let mut want = NvMatrix::new(rows, cols, tt);
                a.apply_to(op, &mut want);
                let (ab, tb) = (up(b, &a), b.alloc(a.len()).unwrap());
                let t = DevMat::with_trans(&tb, rows, cols, tt).unwrap();
                launch::apply(b, op, dm(&ab, &a), t).unwrap();
                let what = format!("{op:?} {rows}x{cols} {st}->{tt}");
                let exact = unary_exact(op);
                check(
                    b,
                    &what,
                    &b.download(&tb).unwrap(),
                    want.data(),
                    exact,
                    3e-6,
                    2e-6,
                );
                // In place.
                launch::apply(b, op, dm(&ab, &a), dm(&ab, &a)).unwrap();
                let mut want = a.clone();
                want.apply(op);
                check(
                    b,
                    &what,
                    &b.download(&ab).unwrap(),
                    want.data(),
                    exact,
                    3e-6,
                    2e-6,
                );
            }
        }
    }
}

const BINARY: [Binary; 10] = [
    Binary::Equals,
    Binary::BiggerThan,
    Binary::Divide,
    Binary::Multiply,
    Binary::SquaredDiff,
    Binary::WeightedAdd {
        scale_a: 0.7,
        scale_b: -1.3,
    },
    Binary::Add,
    Binary::First,
    Binary::Second,
    Binary::SecondScaled(3.5),
];

#[test]
fn binary_functors_with_every_orientation_of_operands_and_target() {
    for b in backends() {
        let b = &*b;
        for op in BINARY {
            let exact = op != Binary::Divide;
            for (rows, cols) in [(5, 9), (1, 17), (17, 1), (40, 70)] {
                for o in 0..8 {
                    let (ta, tm, tt) = (o & 1 == 1, o & 2 == 2, o & 4 == 4);
                    let (a, m) = (mat(rows, cols, ta, 2), mat(rows, cols, tm, 3));
                    let mut want = NvMatrix::new(rows, cols, tt);
                    a.apply_binary_to(op, &m, &mut want).unwrap();
                    let (ab, mb) = (up(b, &a), up(b, &m));
                    let tb = b.alloc(a.len()).unwrap();
                    let t = DevMat::with_trans(&tb, rows, cols, tt).unwrap();
                    launch::apply_binary(b, op, dm(&ab, &a), dm(&mb, &m), t).unwrap();
                    let what = format!("{op:?} {rows}x{cols} {ta} {tm} -> {tt}");
                    check(
                        b,
                        &what,
                        &b.download(&tb).unwrap(),
                        want.data(),
                        exact,
                        3e-7,
                        1e-30,
                    );
                    // Into b (the neurons' form), then in place into a.
                    let mut want_b = m.clone();
                    a.apply_binary_into_b(op, &mut want_b).unwrap();
                    launch::apply_binary(b, op, dm(&ab, &a), dm(&mb, &m), dm(&mb, &m)).unwrap();
                    check(
                        b,
                        &what,
                        &b.download(&mb).unwrap(),
                        want_b.data(),
                        exact,
                        3e-7,
                        1e-30,
                    );
                    let mut want_a = a.clone();
                    want_a.apply_binary(op, &m).unwrap();
                    let mb = up(b, &m);
                    launch::apply_binary(b, op, dm(&ab, &a), dm(&mb, &m), dm(&ab, &a)).unwrap();
                    check(
                        b,
                        &what,
                        &b.download(&ab).unwrap(),
                        want_a.data(),
                        exact,
                        3e-7,
                        1e-30,
                    );
                }
            }
        }
    }
}

#[test]
fn ternary_add_add_and_scale() {
    for b in backends() {
        let b = &*b;
        for (rows, cols, t) in [(6, 11, false), (6, 11, true), (1, 300, false)] {
            let (x, y, z) = (
                mat(rows, cols, t, 4),
                mat(rows, cols, t, 5),
                mat(rows, cols, t, 6),
            );
            let mut want = NvMatrix::new(rows, cols, t);
            let add3 = convnet::nvmatrix::ops::ternary::Add;
            x.apply_ternary_to(add3, &y, &z, &mut want).unwrap();
            let (xb, yb, zb, tb) = (up(b, &x), up(b, &y), up(b, &z), b.alloc(x.len()).unwrap());
            let (xd, yd, zd) = (dm(&xb, &x), dm(&yb, &y), dm(&zb, &z));
            launch::apply_ternary_add(b, xd, yd, zd, dm(&tb, &want)).unwrap();
            check_exact(b, "ternary add", &b.download(&tb).unwrap(), want.data());
            for (sa, sb) in [(0.0, 2.0), (1.0, 1.0), (0.5, -3.0)] {
                let mut want = NvMatrix::new(rows, cols, t);
                x.add_to(&y, sa, sb, &mut want).unwrap();
                launch::add(b, xd, yd, sa, sb, dm(&tb, &want)).unwrap();
                check_exact(b, "add", &b.download(&tb).unwrap(), want.data());
            }
            let mut want = x.clone();
            want.scale(1.7);
            launch::scale(b, xd, 1.7, xd).unwrap();
            check_exact(b, "scale", &b.download(&xb).unwrap(), want.data());
        }
    }
}

#[test]
fn vector_ops_by_the_originals_broadcast_rule() {
    let ops = [
        Binary::WeightedAdd {
            scale_a: 1.0,
            scale_b: -0.5,
        },
        Binary::Equals,
        Binary::Multiply,
        Binary::Divide,
        Binary::BiggerThan,
    ];
    for b in backends() {
        let b = &*b;
        for op in ops {
            // (rows, cols, trans, vec rows, vec cols): column and row vectors, both
            // orientations, and the 1 x n quirk.
            for (rows, cols, t, vr, vc) in [
                (6, 10, false, 6, 1),
                (6, 10, false, 1, 10),
                (6, 10, true, 6, 1),
                (6, 10, true, 1, 10),
                (1, 10, false, 1, 10),
                (10, 1, true, 10, 1),
            ] {
                let (m, v) = (mat(rows, cols, t, 7), mat(vr, vc, false, 8));
                let mut want = NvMatrix::new(rows, cols, t);
                m.apply_binary_v_to(op, &v, &mut want).unwrap();
                let (mb, vb) = (up(b, &m), up(b, &v));
                let tb = b.alloc(m.len()).unwrap();
                launch::apply_binary_v(b, op, dm(&mb, &m), dm(&vb, &v), dm(&tb, &want)).unwrap();
                let what = format!("{op:?} {rows}x{cols} {t} by {vr}x{vc}");
                let exact = op != Binary::Divide;
                check(
                    b,
                    &what,
                    &b.download(&tb).unwrap(),
                    want.data(),
                    exact,
                    3e-7,
                    1e-30,
                );
            }
        }
    }
}

#[test]
fn copies_transposes_and_tiles() {
    for b in backends() {
        let b = &*b;
        for (st, dt) in [(false, false), (false, true), (true, false), (true, true)] {
            let src = mat(9, 14, st, 9);
            let mut want = mat(12, 20, dt, 10);
            src.copy_block(&mut want, 2, Some(8), 3, None, 5, 4)
                .unwrap();
            let (sb, db) = (up(b, &src), up(b, &mat(12, 20, dt, 10)));
            let d = DevMat::with_trans(&db, 12, 20, dt).unwrap();
            launch::copy_block(b, dm(&sb, &src), d, 2, Some(8), 3, None, 5, 4).unwrap();
            check_exact(b, "copy block", &b.download(&db).unwrap(), want.data());
            assert!(launch::copy_block(b, dm(&sb, &src), d, 0, None, 0, None, 5, 4).is_err());

            let want = src.flip_trans();
            let tb = b.alloc(src.len()).unwrap();
            launch::flip_trans(b, dm(&sb, &src), dm(&tb, &want)).unwrap();
            check_exact(b, "flipTrans", &b.download(&tb).unwrap(), want.data());
            let mut want = NvMatrix::default();
            src.transpose_into(&mut want);
            launch::transpose(b, dm(&sb, &src), dm(&tb, &want)).unwrap();
            check_exact(b, "transpose", &b.download(&tb).unwrap(), want.data());

            for (ty, tx) in [(1, 1), (3, 2), (1, 5)] {
                let mut want = NvMatrix::default();
                src.tile(ty, tx, &mut want).unwrap();
                let tb = b.alloc(want.len()).unwrap();
                launch::tile(b, dm(&sb, &src), ty, tx, dm(&tb, &want)).unwrap();
                check_exact(b, "tile", &b.download(&tb).unwrap(), want.data());
            }
        }
    }
}

#[test]
fn aggregations_along_each_axis_with_every_row_kernel() {
    // Widths (the reduced leading dimension) reaching each of the original's row
    // kernels: copy (1), kAggRows (33, 100, 300, 511), kAggRows_wholerow_nosync (600,
    // 1500) and, at 16384 lines, kAggShortRows (5, 20, 64) and kAggShortRows2 (70).
    let shapes = [
        (8, 1),
        (8, 33),
        (5, 100),
        (3, 300),
        (3, 511),
        (4, 600),
        (2, 1500),
        (16384, 5),
        (16384, 20),
        (16384, 64),
        (16384, 70),
    ];
    for b in backends() {
        let b = &*b;
        for (lines, width) in shapes {
            for trans in [false, true] {
                let (rows, cols) = if trans {
                    (width, lines)
                } else {
                    (lines, width)
                };
                let src = mat(rows, cols, trans, 11);
                let sb = up(b, &src);
                for axis in [0, 1] {
                    for agg in [Agg::Sum, Agg::Max, Agg::Min] {
                        let mut want = NvMatrix::default();
                        match agg {
                            Agg::Sum => src.sum(axis, &mut want),
                            Agg::Max => src.max(axis, &mut want),
                            Agg::Min => src.min(axis, &mut want),
                        }
                        .unwrap();
                        let tb = b.alloc(want.len()).unwrap();
                        launch::agg_axis(b, agg, dm(&sb, &src), axis, dm(&tb, &want)).unwrap();
                        let what = format!("{agg:?} axis {axis} of {rows}x{cols} {trans}");
                        check_exact(b, &what, &b.download(&tb).unwrap(), want.data());
                    }
                    for (st, ss) in [(0.0, 0.5), (0.9, -1.1)] {
                        let mut want = NvMatrix::default();
                        src.sum(axis, &mut want).unwrap();
                        let mut want = mat(want.rows(), want.cols(), trans, 12);
                        let tb = up(b, &want);
                        want.add_sum(&src, axis, st, ss).unwrap();
                        launch::add_sum(b, dm(&tb, &want), dm(&sb, &src), axis, st, ss).unwrap();
                        let what =
                            format!("addSum({st}, {ss}) axis {axis} of {rows}x{cols} {trans}");
                        check_exact(b, &what, &b.download(&tb).unwrap(), want.data());
                    }
                }
            }
        }
    }
}

#[test]
fn total_aggregates_and_dot_products() {
    for b in backends() {
        let b = &*b;
        for n in [1, 2, 100, 4096, 4097, 200_000] {
            let (x, y) = (mat(1, n, false, 13), mat(1, n, false, 14));
            let (xb, yb) = (up(b, &x), up(b, &y));
            for (agg, want) in [
                (Agg::Sum, x.sum_all()),
                (Agg::Max, x.max_all()),
                (Agg::Min, x.min_all()),
            ] {
                let got = launch::total_agg(b, agg, &xb).unwrap();
                check_exact(b, &format!("{agg:?} of {n}"), &[got], &[want]);
            }
            let got = launch::dot_product(b, dm(&xb, &x), dm(&yb, &y)).unwrap();
            check_exact(
                b,
                &format!("dot of {n}"),
                &[got],
                &[x.dot_product(&y).unwrap()],
            );
        }
    }
}

#[test]
fn curand_streams_and_randomizers() {
    let n = 2 * NUM_RND_STREAMS + 5;
    for b in backends() {
        let b = &*b;
        let mut cpu = RandomStreams::init_random(7);
        let states = launch::init_random(b, 7).unwrap();
        let words = |cpu: &RandomStreams| -> Vec<u32> {
            cpu.states().iter().flat_map(|s| s.words()).collect()
        };
        let mut got = vec![0u32; states.len()];
        b.read_words(&states, 0, &mut got).unwrap();
        assert!(got == words(&cpu), "initRandom states on {}", b.name());

        let src = NvMatrix::from_vec(
            1,
            n,
            false,
            values(n, 15).iter().map(|x| x.abs() / 4.0).collect(),
        );
        let sd = NvMatrix::from_vec(1, n, false, values(n, 16));
        let db = up(b, &sd);
        let cases = [
            Randomizer::Uniform,
            Randomizer::Gaussian {
                mean: 0.5,
                stdev: 2.0,
            },
            Randomizer::GaussianStdevs,
            Randomizer::AddGaussian { stdev: 0.3 },
            Randomizer::AddGaussianStdevs { var: false },
            Randomizer::AddGaussianStdevs { var: true },
            Randomizer::Binarize,
        ];
        // Twice, so that cached Box-Muller values carry over between calls.
        for r in cases.iter().chain(cases.iter()) {
            let mut want = src.clone();
            match *r {
                Randomizer::Uniform => want.randomize_uniform(&mut cpu),
                Randomizer::Gaussian { mean, stdev } => {
                    want.randomize_gaussian(&mut cpu, mean, stdev)
                }
                Randomizer::GaussianStdevs => {
                    want.randomize_gaussian_stdevs(&mut cpu, &sd).unwrap()
                }
                Randomizer::AddGaussian { stdev } => want.add_gaussian_noise(&mut cpu, stdev),
                Randomizer::AddGaussianStdevs { var } => want
                    .add_gaussian_noise_stdevs(&mut cpu, Some(&sd), var)
                    .unwrap(),
                Randomizer::Binarize => want.binarize_probs(&mut cpu),
            }
            let tb = up(b, &src);
            let data2 = matches!(
                r,
                Randomizer::GaussianStdevs | Randomizer::AddGaussianStdevs { .. }
            )
            .then(|| dm(&db, &sd));
            launch::randomize(b, &states, *r, dm(&tb, &src), data2, dm(&tb, &src)).unwrap();
            let exact = matches!(r, Randomizer::Uniform | Randomizer::Binarize);
            // Normal draws: sin/cos.approx within 2^-20.5 absolute, times up to 6.7,
            // times the largest scale (stdev 2, sd^2 16).
            check(
                b,
                &format!("{r:?}"),
                &b.download(&tb).unwrap(),
                want.data(),
                exact,
                1e-6,
                16.0 * 6.7 * 7e-7,
            );
            let mut got = vec![0u32; states.len()];
            b.read_words(&states, 0, &mut got).unwrap();
            if b.emulated() {
                assert!(got == words(&cpu), "states after {r:?}");
            }
            // The generators' words (not the cached floats) match everywhere.
            let gen =
                |w: &[u32]| -> Vec<u32> { w.chunks(8).flat_map(|c| c[..7].to_vec()).collect() };
            assert!(
                gen(&got) == gen(&words(&cpu)),
                "generator states after {r:?} on {}",
                b.name()
            );
        }
    }
}

#[test]
fn products_with_every_operand_orientation() {
    for b in backends() {
        let b = &*b;
        for (m, k, n) in [(7, 13, 5), (1, 1, 1), (64, 129, 33), (3, 0, 4)] {
            for o in 0..4 {
                let (ta, tb) = (o & 1 == 1, o & 2 == 2);
                let (a, x) = (mat(m, k, ta, 17), mat(k, n, tb, 18));
                let (ab, xb) = (up(b, &a), up(b, &x));
                let mut want = NvMatrix::default();
                a.right_mult(&x, 0.5, &mut want).unwrap();
                let cb = b.alloc(m * n).unwrap();
                let c = DevMat::with_trans(&cb, m, n, true).unwrap();
                launch::right_mult(b, dm(&ab, &a), dm(&xb, &x), 0.5, c).unwrap();
                // cuBLAS's own order: within k ulps of the sum of magnitudes.
                let bound = |i: usize, j: usize| {
                    (0..k)
                        .map(|p| (a.get(i, p) * x.get(p, j)).abs())
                        .sum::<f32>()
                        * 0.5
                        * (k as f32 + 2.0)
                        * f32::EPSILON
                };
                let got = b.download(&cb).unwrap();
                let close = |got: &[f32], want: &NvMatrix, what: &str| {
                    for j in 0..n {
                        for i in 0..m {
                            let (g, w) = (got[j * m + i], want.get(i, j));
                            let ok = if b.emulated() {
                                g.to_bits() == w.to_bits()
                            } else {
                                (g - w).abs() <= 2.0 * bound(i, j) + 1e-30
                            };
                            assert!(
                                ok,
                                "{what} {m}x{k}x{n} {ta} {tb} ({i}, {j}) on {}: {g} vs CPU {w}",
                                b.name()
                            );
                        }
                    }
                };
                close(&got, &want, "rightMult");
                let mut want2 = want.clone();
                want2.add_product(&a, &x, 0.75, -2.0).unwrap();
                launch::add_product(b, c, dm(&ab, &a), dm(&xb, &x), 0.75, -2.0).unwrap();
                close(&b.download(&cb).unwrap(), &want2, "addProduct");
                // A transposed view: a^T^T.
                let at = dm(&ab, &a).get_transpose().get_transpose();
                launch::right_mult(b, at, dm(&xb, &x), 0.5, c).unwrap();
                close(&b.download(&cb).unwrap(), &want, "rightMult of a view");
            }
        }
        // The original's assertion: addProduct into a row-major matrix.
        let (a, x) = (mat(2, 3, false, 1), mat(3, 4, false, 2));
        let (ab, xb, cb) = (up(b, &a), up(b, &x), b.alloc(8).unwrap());
        let c = DevMat::with_trans(&cb, 2, 4, false).unwrap();
        assert!(launch::add_product(b, c, dm(&ab, &a), dm(&xb, &x), 1.0, 1.0).is_err());
    }
}
