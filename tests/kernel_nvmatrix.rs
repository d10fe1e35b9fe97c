//! NVMatrix kernels: elementwise ops, copies, aggregations, products and cuRAND
//! streams, against float64 references, exact-bits regression goldens
//! (golden/kernels/nvmatrix.tsv), thread-count independence, cuRAND's own values and
//! shape errors.

mod common;

use common::{assert_close, same_bits_any_threads_or_lanes, Regression};
use convnet::nvmatrix::aggregate::{row_agg_kernel, RowAggKernel};
use convnet::nvmatrix::curand::logf as cuda_logf;
use convnet::nvmatrix::ops::{binary, ternary, unary};
use convnet::nvmatrix::{product, CurandState, NvMatrix, RandomStreams, NUM_RND_STREAMS};
use convnet::synthetic::uniform;

fn mat(seed: u64, rows: usize, cols: usize, trans: bool, lo: f32, hi: f32) -> NvMatrix {
    NvMatrix::from_vec(rows, cols, trans, uniform(seed, rows * cols, lo, hi))
}

/// The logical elements, row by row, in f64.
fn logical(m: &NvMatrix) -> Vec<f64> {
    (0..m.rows())
        .flat_map(|i| (0..m.cols()).map(move |j| (i, j)))
        .map(|(i, j)| m.get(i, j) as f64)
        .collect()
}
fn logical32(m: &NvMatrix) -> Vec<f32> {
    logical(m).into_iter().map(|x| x as f32).collect()
}

// ---------------------------------------------------------------- elementwise

#[test]
fn unary_functors_against_float64() {
    let a = mat(1, 13, 37, false, 0.05, 3.0);
    let s = mat(2, 13, 37, false, -2.0, 2.0);
    type Case = (
        &'static str,
        Box<dyn Fn(&NvMatrix, &mut NvMatrix)>,
        fn(f64) -> f64,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "exp",
            Box::new(|m, t| m.apply_to(unary::Exp, t)),
            f64::exp,
            true,
        ),
        (
            "logistic",
            Box::new(|m, t| m.apply_to(unary::Logistic, t)),
            |x| 1.0 / (1.0 + (-x).exp()),
            false,
        ),
        (
            "square",
            Box::new(|m, t| m.apply_to(unary::Square, t)),
            |x| x * x,
            false,
        ),
        (
            "reciprocal",
            Box::new(|m, t| m.apply_to(unary::Reciprocal, t)),
            |x| 1.0 / x,
            true,
        ),
        (
            "abs",
            Box::new(|m, t| m.apply_to(unary::Abs, t)),
            f64::abs,
            false,
        ),
        (
            "sign",
            Box::new(|m, t| m.apply_to(unary::Sign, t)),
            |x| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            },
            false,
        ),
        (
            "identity",
            Box::new(|m, t| m.apply_to(unary::Identity, t)),
            |x| x,
            false,
        ),
        (
            "zero",
            Box::new(|m, t| m.apply_to(unary::Zero, t)),
            |_| 0.0,
            false,
        ),
        (
            "one",
            Box::new(|m, t| m.apply_to(unary::One, t)),
            |_| 1.0,
            false,
        ),
        (
            "smaller",
            Box::new(|m, t| m.smaller_than_scalar_to(0.5, t)),
            |x| (x < 0.5) as i32 as f64,
            false,
        ),
        (
            "bigger",
            Box::new(|m, t| m.bigger_than_scalar_to(0.5, t)),
            |x| (x > 0.5) as i32 as f64,
            false,
        ),
        (
            "add_scalar",
            Box::new(|m, t| m.apply_to(unary::AddScalar(0.25), t)),
            |x| x + 0.25,
            false,
        ),
        (
            "weighted_add_scalar",
            Box::new(|m, t| m.add_scalar_to(-3.0, 0.75, t)),
            |x| -3.0 * x + 0.75,
            false,
        ),
        (
            "mult_by_scalar",
            Box::new(|m, t| m.scale_to(1.5, t)),
            |x| 1.5 * x,
            false,
        ),
        (
            "in_range_inc",
            Box::new(|m, t| m.in_range_inc_to(-0.5, 0.5, t)),
            |x| (-0.5..=0.5).contains(&x) as i32 as f64,
            false,
        ),
        (
            "in_range_exc",
            Box::new(|m, t| m.in_range_exc_to(-0.5, 0.5, t)),
            |x| (x > -0.5 && x < 0.5) as i32 as f64,
            false,
        ),
        (
            "min_with",
            Box::new(|m, t| m.min_with_scalar_to(0.3, t)),
            |x| x.min(0.3),
            false,
        ),
        (
            "max_with",
            Box::new(|m, t| m.max_with_scalar_to(0.3, t)),
            |x| x.max(0.3),
            false,
        ),
    ];
    for (name, f, r, pos) in cases {
        let src = if pos { &a } else { &s };
        let mut t = NvMatrix::default();
        f(src, &mut t);
        let want: Vec<f64> = logical(src).into_iter().map(r).collect();
        assert_close(name, &logical32(&t), &want, 2e-6);
    }
    for (name, f, r) in [
        (
            "log",
            Box::new(|m: &NvMatrix, t: &mut NvMatrix| m.apply_to(unary::Log, t))
                as Box<dyn Fn(&NvMatrix, &mut NvMatrix)>,
            f64::ln as fn(f64) -> f64,
        ),
        (
            "sqrt",
            Box::new(|m: &NvMatrix, t: &mut NvMatrix| m.apply_to(unary::Sqrt, t)),
            f64::sqrt,
        ),
        (
            "pow",
            Box::new(|m: &NvMatrix, t: &mut NvMatrix| m.pow_to(-0.75, t)),
            |x| x.powf(-0.75),
        ),
    ] {
        let mut t = NvMatrix::default();
        f(&a, &mut t);
        let want: Vec<f64> = logical(&a).into_iter().map(r).collect();
        assert_close(name, &logical32(&t), &want, 2e-6);
    }
    // Exact functors: Abs of -0 is +0, Sign of NaN is 0.
    assert_eq!(unary::Abs.apply_one(-0.0).to_bits(), 0);
    assert_eq!(unary::Sign.apply_one(f32::NAN), 0.0);
}

trait One {
    fn apply_one(&self, a: f32) -> f32;
}
impl<T: convnet::nvmatrix::UnaryOp> One for T {
    fn apply_one(&self, a: f32) -> f32 {
        self.op(a)
    }
}

#[test]
fn apply_target_orientation_rule() {
    let a = mat(3, 40, 33, false, -1.0, 1.0);
    // A target of other dimensions takes this matrix's shape and orientation.
    let mut t = NvMatrix::new(2, 2, true);
    a.apply_to(unary::Square, &mut t);
    assert!(!t.is_trans() && t.rows() == 40 && t.cols() == 33);
    // One of the same dimensions keeps its orientation (kEltwiseUnaryOpTrans).
    let mut t = NvMatrix::new(40, 33, true);
    a.apply_to(unary::Square, &mut t);
    assert!(t.is_trans());
    let want: Vec<f64> = logical(&a).iter().map(|x| x * x).collect();
    assert_close("trans target", &logical32(&t), &want, 1e-7);
    // Ternary: a target of the other orientation is resized like this one.
    let (b, c) = (
        mat(4, 40, 33, false, -1.0, 1.0),
        mat(5, 40, 33, false, -1.0, 1.0),
    );
    let mut t = NvMatrix::new(40, 33, true);
    a.apply_ternary_to(ternary::Add, &b, &c, &mut t).unwrap();
    assert!(!t.is_trans());
    let want: Vec<f64> = (0..a.len())
        .map(|k| ((a.data()[k] + b.data()[k]) + c.data()[k]) as f64)
        .collect();
    assert_eq!(
        t.data(),
        want.iter()
            .map(|&x| x as f32)
            .collect::<Vec<_>>()
            .as_slice()
    );
}

type BinaryCase = (
    &'static str,
    Box<dyn Fn(f64, f64) -> f64>,
    Box<dyn Fn(&NvMatrix, &NvMatrix, &mut NvMatrix)>,
);

#[test]
fn binary_ops_all_orientation_cases() {
    let (r, c) = (70, 45);
    let ops: Vec<BinaryCase> = vec![
        (
            "weighted_add",
            Box::new(|a, b| 0.7 * a - 1.3 * b),
            Box::new(|a, b, t| a.add_to(b, 0.7, -1.3, t).unwrap()),
        ),
        (
            "add",
            Box::new(|a, b| a + b),
            Box::new(|a, b, t| a.add_to(b, 1.0, 1.0, t).unwrap()),
        ),
        (
            "subtract",
            Box::new(|a, b| a - b),
            Box::new(|a, b, t| a.subtract_to(b, t).unwrap()),
        ),
        (
            "mult",
            Box::new(|a, b| a * b),
            Box::new(|a, b, t| a.eltwise_mult_to(b, t).unwrap()),
        ),
        (
            "divide",
            Box::new(|a, b| a / b),
            Box::new(|a, b, t| a.eltwise_divide_to(b, t).unwrap()),
        ),
        (
            "squared_diff",
            Box::new(|a, b| (a - b) * (a - b)),
            Box::new(|a, b, t| a.squared_diff_to(b, t).unwrap()),
        ),
        (
            "bigger",
            Box::new(|a, b| (a > b) as i32 as f64),
            Box::new(|a, b, t| a.bigger_than_to(b, t).unwrap()),
        ),
        (
            "equals",
            Box::new(|a, b| (a == b) as i32 as f64),
            Box::new(|a, b, t| a.equals_to(b, t).unwrap()),
        ),
        (
            "first",
            Box::new(|a, _| a),
            Box::new(|a, b, t| a.apply_binary_to(binary::First, b, t).unwrap()),
        ),
        (
            "second_scaled",
            Box::new(|_, b| 3.0 * b),
            Box::new(|a, b, t| a.apply_binary_to(binary::SecondScaled(3.0), b, t).unwrap()),
        ),
    ];
    for (ta, tb, tt) in [
        (false, false, false),
        (false, true, false),
        (true, true, false),
        (true, false, false),
        (false, false, true),
        (true, false, true),
        (false, true, true),
        (true, true, true),
    ] {
        let a = mat(10, r, c, ta, 0.5, 2.0);
        let mut b = mat(11, r, c, tb, 0.5, 2.0);
        b.set(3, 4, a.get(3, 4)); // one equal pair
        for (name, f, run) in &ops {
            let mut t = NvMatrix::new(r, c, tt);
            run(&a, &b, &mut t);
            assert_eq!(
                t.is_trans(),
                tt,
                "{name}: a target of the same dimensions keeps its orientation"
            );
            let want: Vec<f64> = logical(&a)
                .iter()
                .zip(logical(&b))
                .map(|(&x, y)| f(x, y))
                .collect();
            assert_close(
                &format!("{name} {ta} {tb} {tt}"),
                &logical32(&t),
                &want,
                3e-7,
            );
        }
    }
}

#[test]
fn weighted_add_fuses_the_first_product() {
    // fma(sA, a, sB*b): with a*sA + b*sB cancelling, the fused and unfused forms differ.
    let (a, sa, b, sb) = (
        1.0f32 + f32::EPSILON,
        1.0f32 + f32::EPSILON,
        -1.0f32,
        1.0f32 + 2.0 * f32::EPSILON,
    );
    let am = NvMatrix::from_vec(1, 1, false, vec![a]);
    let bm = NvMatrix::from_vec(1, 1, false, vec![b]);
    let mut t = NvMatrix::default();
    am.add_to(&bm, sa, sb, &mut t).unwrap();
    assert_eq!(t.data()[0], sa.mul_add(a, sb * b));
    assert_ne!(t.data()[0], a * sa + b * sb);
}

#[test]
fn add_special_cases() {
    let mut a = NvMatrix::from_vec(2, 2, false, vec![f32::NAN, f32::INFINITY, 1.0, 2.0]);
    let b = NvMatrix::from_vec(2, 2, false, vec![1.0, 2.0, 3.0, -0.0]);
    // scaleA == 0: b.scale(scaleB, target): the NaN and inf of `a` do not propagate.
    a.add(&b, 0.0, 2.0).unwrap();
    assert_eq!(a.data(), &[2.0, 4.0, 6.0, -0.0]);
    assert_eq!(a.data()[3].to_bits(), (-0.0f32).to_bits());
    // scaleA == 0 resizes `this` like `b`.
    let mut a = NvMatrix::new(1, 3, false);
    a.add(&b, 0.0, 1.0).unwrap();
    assert_eq!((a.rows(), a.cols()), (2, 2));
    // scale(1) in place is a no-op.
    let mut n = NvMatrix::from_vec(1, 1, false, vec![f32::NAN]);
    n.scale(1.0);
    assert!(n.data()[0].is_nan());
}

#[test]
fn in_place_forms_alias_correctly() {
    let a = mat(20, 31, 17, true, -1.0, 1.0);
    let b = mat(21, 31, 17, false, -1.0, 1.0);
    let mut want = NvMatrix::default();
    a.add_to(&b, 0.5, 2.0, &mut want).unwrap();
    let mut x = a.clone();
    x.add(&b, 0.5, 2.0).unwrap();
    assert_eq!(x, want);
    // target == b: b = op(a, b), b keeps its orientation.
    let mut y = b.clone();
    a.apply_binary_into_b(
        binary::WeightedAdd {
            scale_a: 0.5,
            scale_b: 2.0,
        },
        &mut y,
    )
    .unwrap();
    assert!(!y.is_trans());
    assert_eq!(logical32(&y), logical32(&want));
    // Ternary with target == c.
    let c = mat(22, 31, 17, true, -1.0, 1.0);
    let b2 = mat(23, 31, 17, true, -1.0, 1.0);
    let mut t = NvMatrix::default();
    a.apply_ternary_to(ternary::Add, &b2, &c, &mut t).unwrap();
    let mut c2 = c.clone();
    a.apply_ternary_into_c(ternary::Add, &b2, &mut c2).unwrap();
    assert_eq!(c2, t);
}

#[test]
fn vector_broadcast_rule() {
    let (r, c) = (9, 14);
    for trans in [false, true] {
        let m = mat(30, r, c, trans, -1.0, 1.0);
        let col = NvMatrix::from_vec(r, 1, false, uniform(31, r, 0.5, 2.0));
        let row = NvMatrix::from_vec(1, c, false, uniform(32, c, 0.5, 2.0));
        for (vec, by_row) in [(&col, true), (&row, false)] {
            let v = |i: usize, j: usize| vec.data()[if by_row { i } else { j }] as f64;
            let mut t = NvMatrix::new(1, 1, !trans);
            m.add_vector_to(vec, -2.0, &mut t).unwrap();
            assert_eq!(
                t.is_trans(),
                trans,
                "applyBinaryV resizes the target like this"
            );
            let want: Vec<f64> = (0..r)
                .flat_map(|i| (0..c).map(move |j| (i, j)))
                .map(|(i, j)| m.get(i, j) as f64 - 2.0 * v(i, j))
                .collect();
            assert_close("addVector", &logical32(&t), &want, 1e-6);
            m.eltwise_divide_by_vector_to(vec, &mut t).unwrap();
            let want: Vec<f64> = (0..r)
                .flat_map(|i| (0..c).map(move |j| (i, j)))
                .map(|(i, j)| m.get(i, j) as f64 / v(i, j))
                .collect();
            assert_close("eltwiseDivideByVector", &logical32(&t), &want, 1e-6);
            m.eltwise_mult_by_vector_to(vec, &mut t).unwrap();
            let want: Vec<f64> = (0..r)
                .flat_map(|i| (0..c).map(move |j| (i, j)))
                .map(|(i, j)| m.get(i, j) as f64 * v(i, j))
                .collect();
            assert_close("eltwiseMultByVector", &logical32(&t), &want, 1e-6);
            let mut e = m.clone();
            e.equals_vector(vec).unwrap();
            e.bigger_than_vector(vec).unwrap();
            assert!(e.data().iter().all(|&x| x == 0.0));
        }
    }
    // Quirk kept: a 1 x n row-major matrix with a 1 x n vector takes the column rule.
    let mut m = NvMatrix::from_vec(1, 3, false, vec![0.0; 3]);
    m.add_vector(&NvMatrix::from_vec(1, 3, false, vec![1.0, 2.0, 3.0]), 1.0)
        .unwrap();
    assert_eq!(m.data(), &[1.0, 1.0, 1.0]);
}

/// Large targets are split over tasks by line blocks and by segments of lines: every
/// element is computed once, with the operator's exact operations, whatever the
/// thread count.
#[test]
fn large_targets_cover_every_element() {
    for (r, c) in [(3, 70_001), (40, 50_003), (70_001, 3)] {
        for trans in [false, true] {
            let m = mat(40, r, c, trans, -1.0, 1.0);
            let col = NvMatrix::from_vec(r, 1, false, uniform(41, r, 0.5, 2.0));
            let row = NvMatrix::from_vec(1, c, false, uniform(42, c, 0.5, 2.0));
            let other = mat(43, r, c, !trans, -1.0, 1.0);
            for (vec, by_row) in [(&col, true), (&row, false)] {
                let got = same_bits_any_threads_or_lanes("addVector", || {
                    let mut t = m.clone();
                    t.add_vector(vec, -2.0).unwrap();
                    logical32(&t)
                });
                let want: Vec<f32> = (0..r)
                    .flat_map(|i| (0..c).map(move |j| (i, j)))
                    .map(|(i, j)| {
                        let v = vec.data()[if by_row { i } else { j }];
                        1f32.mul_add(m.get(i, j), -2.0 * v)
                    })
                    .collect();
                assert!(
                    got == want,
                    "addVector {r}x{c} trans={trans} by_row={by_row}"
                );
            }
            let got = same_bits_any_threads_or_lanes("add", || {
                let mut t = m.clone();
                t.add(&other, 1.0, 1.0).unwrap();
                logical32(&t)
            });
            let want: Vec<f32> = (0..r)
                .flat_map(|i| (0..c).map(move |j| (i, j)))
                .map(|(i, j)| m.get(i, j) + other.get(i, j))
                .collect();
            assert!(got == want, "add {r}x{c} trans={trans}");
        }
    }
}

#[test]
fn copies_slices_transposes_tile() {
    let a = mat(40, 23, 19, false, -1.0, 1.0);
    for dt in [false, true] {
        let mut d = NvMatrix::new(30, 25, dt);
        a.copy_block(&mut d, 3, Some(10), 2, None, 20, 4).unwrap();
        for i in 0..30 {
            for j in 0..25 {
                let inside = (20..27).contains(&i) && (4..21).contains(&j);
                let want = if inside {
                    a.get(i - 20 + 3, j - 4 + 2)
                } else {
                    0.0
                };
                assert_eq!(d.get(i, j), want);
            }
        }
        let mut s = NvMatrix::new(1, 1, dt);
        a.slice(5, Some(9), 0, None, &mut s).unwrap();
        assert_eq!((s.rows(), s.cols(), s.is_trans()), (4, 19, dt));
        assert!((0..4).all(|i| (0..19).all(|j| s.get(i, j) == a.get(i + 5, j))));
        a.slice_cols(18, None, &mut s).unwrap();
        assert!((0..23).all(|i| s.get(i, 0) == a.get(i, 18)));
        a.slice_rows(22, Some(23), &mut s).unwrap();
        assert!((0..19).all(|j| s.get(0, j) == a.get(22, j)));
    }
    let f = a.flip_trans();
    assert!(f.is_trans() && f.same_dims(&a) && logical32(&f) == logical32(&a));
    let mut t = NvMatrix::default();
    a.transpose_into(&mut t);
    assert!(!t.is_trans() && t.rows() == 19 && t.cols() == 23);
    assert!((0..23).all(|i| (0..19).all(|j| t.get(j, i) == a.get(i, j))));
    let mut c = NvMatrix::default();
    a.copy_to(&mut c);
    assert_eq!(c, a);
    for trans in [false, true] {
        let m = mat(41, 3, 5, trans, -1.0, 1.0);
        let mut t = NvMatrix::default();
        m.tile(2, 3, &mut t).unwrap();
        assert_eq!((t.rows(), t.cols(), t.is_trans()), (6, 15, trans));
        assert!((0..6).all(|i| (0..15).all(|j| t.get(i, j) == m.get(i % 3, j % 5))));
    }
}

// ---------------------------------------------------------------- aggregations

fn f64_agg(m: &NvMatrix, axis: usize, f: fn(f64, f64) -> f64) -> Vec<f64> {
    let (r, c) = (m.rows(), m.cols());
    if axis == 0 {
        (0..c)
            .map(|j| (1..r).fold(m.get(0, j) as f64, |a, i| f(a, m.get(i, j) as f64)))
            .collect()
    } else {
        (0..r)
            .map(|i| (1..c).fold(m.get(i, 0) as f64, |a, j| f(a, m.get(i, j) as f64)))
            .collect()
    }
}

/// (rows, cols, trans, axis, expected kernel): every kernel `_aggregate` can pick.
fn agg_shapes() -> Vec<(usize, usize, bool, usize, Option<RowAggKernel>)> {
    use RowAggKernel::*;
    let s = |l, t| {
        Some(ShortRows {
            loops_x: l,
            threads_x: t,
        })
    };
    vec![
        (300, 77, false, 0, None),
        (77, 300, true, 1, None),
        (1, 5, false, 0, None),
        (50, 1, false, 1, Some(Copy)),
        (16389, 3, false, 1, s(1, 4)),
        (16384, 7, false, 1, s(1, 8)),
        (11, 16500, true, 0, s(1, 12)),
        (16400, 16, false, 1, s(1, 16)),
        (16400, 20, false, 1, s(2, 32)),
        (16400, 40, false, 1, s(3, 32)),
        (16400, 64, false, 1, s(4, 32)),
        (16400, 100, false, 1, Some(ShortRows2)),
        (37, 600, false, 1, Some(WholeRowNoSync)),
        (1000, 21, true, 0, Some(WholeRowNoSync)),
        (13, 2, false, 1, Some(AggRows { block_size: 32 })),
        (13, 64, false, 1, Some(AggRows { block_size: 32 })),
        (13, 65, false, 1, Some(AggRows { block_size: 64 })),
        (200, 16383, true, 0, Some(AggRows { block_size: 128 })),
        (13, 300, false, 1, Some(AggRows { block_size: 256 })),
        (13, 511, false, 1, Some(AggRows { block_size: 256 })),
    ]
}

#[test]
fn aggregations_every_kernel() {
    let mut reg = Regression::new("nvmatrix");
    for (k, &(r, c, trans, axis, kernel)) in agg_shapes().iter().enumerate() {
        let m = mat(100 + k as u64, r, c, trans, -1.0, 1.0);
        let (width, height) = (m.leading_dim(), m.following_dim());
        if let Some(kernel) = kernel {
            assert_eq!(
                row_agg_kernel(width, height),
                kernel,
                "{r}x{c} trans {trans} axis {axis}"
            );
        }
        let name = format!("agg {r}x{c} t{} ax{axis}", trans as u8);
        let sum = same_bits_any_threads_or_lanes(&name, || {
            let mut t = NvMatrix::default();
            m.sum(axis, &mut t).unwrap();
            assert_eq!(t.is_trans(), trans);
            assert_eq!(
                (t.rows(), t.cols()),
                if axis == 0 { (1, c) } else { (r, 1) }
            );
            t.into_vec()
        });
        assert_close(
            &format!("{name} sum"),
            &sum,
            &f64_agg(&m, axis, |a, b| a + b),
            2e-6,
        );
        reg.case(&format!("{name} sum"), &sum);
        for (what, f) in [("max", f64::max as fn(f64, f64) -> f64), ("min", f64::min)] {
            let got = same_bits_any_threads_or_lanes(&name, || {
                let mut t = NvMatrix::default();
                if what == "max" {
                    m.max(axis, &mut t)
                } else {
                    m.min(axis, &mut t)
                }
                .unwrap();
                t.into_vec()
            });
            let want = f64_agg(&m, axis, f);
            assert_eq!(
                got,
                want.iter().map(|&x| x as f32).collect::<Vec<_>>(),
                "{name} {what}"
            );
        }
        // addSum: this = 0.5*this - 2*sum, and scaleThis == 0.
        let init = uniform(200 + k as u64, sum.len(), -1.0, 1.0);
        let add = same_bits_any_threads_or_lanes(&name, || {
            let mut t = NvMatrix::from_vec(sum.len(), 1, trans, init.clone());
            t.add_sum(&m, axis, 0.5, -2.0).unwrap();
            t.into_vec()
        });
        let want: Vec<f64> = if kernel == Some(RowAggKernel::Copy) {
            logical(&m) // quirk kept: width 1 copies the input and ignores the op
        } else {
            init.iter()
                .zip(f64_agg(&m, axis, |a, b| a + b))
                .map(|(&t, s)| 0.5 * t as f64 - 2.0 * s)
                .collect()
        };
        assert_close(&format!("{name} addSum"), &add, &want, 4e-6);
        reg.case(&format!("{name} addSum"), &add);
        let mut t = NvMatrix::from_vec(sum.len(), 1, trans, init.clone());
        t.add_sum(&m, axis, 0.0, 3.0).unwrap();
        let scale = if kernel == Some(RowAggKernel::Copy) {
            1.0
        } else {
            3.0
        };
        assert_close(
            &format!("{name} addSum 0"),
            t.data(),
            &sum.iter().map(|&s| scale * s as f64).collect::<Vec<_>>(),
            1e-6,
        );
    }
    reg_products(&mut reg);
    reg_eltwise(&mut reg);
    reg_random(&mut reg);
    reg_total(&mut reg);
    reg.finish();
}

#[test]
fn reduction_trees_are_the_kernels() {
    // x = [1, 2^-24, -1, 2^-24]: a serial sum gives 2^-24 (1 + 2^-24 rounds to 1), a
    // halving tree (x0+x2)+(x1+x3) gives 2^-23, an adjacent tree (x0+x1)+(x2+x3) 2^-24.
    let e = f32::EPSILON / 2.0;
    let x = [1.0, e, -1.0, e];
    let sum_rows = |m: &NvMatrix| {
        let mut t = NvMatrix::default();
        m.sum(1, &mut t).unwrap();
        t.into_vec()
    };
    // kAggRows<32>: halving tree.
    let m = NvMatrix::from_vec(1, 4, false, x.to_vec());
    assert_eq!(sum_rows(&m), vec![2.0 * e]);
    // kAggShortRows<1, 4> (height >= 16384): serial over lanes.
    let m = NvMatrix::from_vec(16384, 4, false, x.repeat(16384));
    assert!(sum_rows(&m).iter().all(|&v| v == e));
    // kDumbAggCols: serial.
    let m = NvMatrix::from_vec(4, 1, false, x.to_vec());
    let mut t = NvMatrix::default();
    m.sum(0, &mut t).unwrap();
    assert_eq!(t.data(), &[e]);
    // kAggRows_wholerow_nosync: thread partials t = 0..3 hold x0..x3, reduced by the
    // warp's adjacent tree.
    let mut row = vec![0.0f32; 512];
    row[..4].copy_from_slice(&x);
    let m = NvMatrix::from_vec(1, 512, false, row);
    assert_eq!(sum_rows(&m), vec![e]);
    // Whole-matrix sum of <= 4096 values: serial on the host.
    assert_eq!(NvMatrix::from_vec(1, 4, false, x.to_vec()).sum_all(), e);
}

fn reg_total(reg: &mut Regression) {
    for (n, trans) in [
        (1usize, false),
        (100, false),
        (4096, true),
        (4097, false),
        (100_000, false),
        (1_000_003, true),
    ] {
        let m = mat(300 + n as u64, 1, n, trans, -1.0, 1.0);
        let want: f64 = m.data().iter().map(|&x| x as f64).sum();
        let got = same_bits_any_threads_or_lanes("sum()", || {
            vec![m.sum_all(), m.max_all(), m.min_all(), m.mean()]
        });
        assert!(
            (got[0] as f64 - want).abs() <= 1e-5 * n as f64,
            "sum() of {n}: {} vs {want}",
            got[0]
        );
        let mx = m.data().iter().fold(f32::MIN, |a, &b| a.max(b));
        let mn = m.data().iter().fold(f32::MAX, |a, &b| a.min(b));
        assert_eq!((got[1], got[2]), (mx, mn), "max()/min() of {n}");
        assert!((got[3] as f64 - want / n as f64).abs() <= 1e-5);
        reg.case(&format!("total {n}"), &got);
        let b = mat(400 + n as u64, 1, n, trans, -1.0, 1.0);
        let dot = same_bits_any_threads_or_lanes("dotProduct", || {
            vec![m.dot_product(&b).unwrap(), m.norm2(), m.norm()]
        });
        let want_dot: f64 = m
            .data()
            .iter()
            .zip(b.data())
            .map(|(&x, &y)| x as f64 * y as f64)
            .sum();
        let want_n2: f64 = m.data().iter().map(|&x| x as f64 * x as f64).sum();
        assert!(
            (dot[0] as f64 - want_dot).abs() <= 1e-5 * (n as f64).sqrt().max(1.0),
            "dot of {n}"
        );
        assert!((dot[1] as f64 - want_n2).abs() <= 1e-6 * want_n2.max(1.0));
        assert!((dot[2] as f64 - want_n2.sqrt()).abs() <= 1e-6 * want_n2.sqrt().max(1.0));
        reg.case(&format!("dot {n}"), &dot);
    }
}

// ---------------------------------------------------------------- products

/// The documented order, written naively: acc = fma chain over p from +0, then alpha*acc
/// or fma(beta, c, alpha*acc).
fn naive_product(
    a: &NvMatrix,
    b: &NvMatrix,
    alpha: f32,
    beta: f32,
    c: Option<&NvMatrix>,
) -> Vec<f32> {
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    let mut out = vec![0f32; m * n];
    for j in 0..n {
        for i in 0..m {
            let mut acc = 0f32;
            for p in 0..k {
                acc = a.get(i, p).mul_add(b.get(p, j), acc);
            }
            out[j * m + i] = match c {
                Some(c) if beta != 0.0 => beta.mul_add(c.get(i, j), alpha * acc),
                _ => alpha * acc,
            };
        }
    }
    out
}

#[test]
fn products_all_orientations() {
    for (m, k, n) in [(37, 29, 23), (1, 300, 5), (128, 260, 13), (17, 0, 4)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = mat(500, m, k, ta, -1.0, 1.0);
            let b = mat(501, k, n, tb, -1.0, 1.0);
            let mut t = NvMatrix::new(3, 3, false);
            a.right_mult(&b, 0.75, &mut t).unwrap();
            assert!(
                t.is_trans() && t.rows() == m && t.cols() == n,
                "rightMult forces the target column-major"
            );
            assert_eq!(
                t.data(),
                naive_product(&a, &b, 0.75, 0.0, None).as_slice(),
                "{m}x{k}x{n} {ta} {tb}"
            );
            let want: Vec<f64> = (0..n)
                .flat_map(|j| (0..m).map(move |i| (i, j)))
                .map(|(i, j)| {
                    0.75 * (0..k)
                        .map(|p| a.get(i, p) as f64 * b.get(p, j) as f64)
                        .sum::<f64>()
                })
                .collect();
            assert_close("rightMult", t.data(), &want, 1e-5);
            // addProduct with scaleThis.
            let c0 = mat(502, m, n, true, -1.0, 1.0);
            let mut c = c0.clone();
            c.add_product(&a, &b, -0.5, 2.0).unwrap();
            assert_eq!(
                c.data(),
                naive_product(&a, &b, 2.0, -0.5, Some(&c0)).as_slice()
            );
            // Transposed views (getTranspose) multiply without copies.
            let at = a.flip_trans();
            let mut u = NvMatrix::default();
            product::right_mult(b.get_transpose(), at.get_transpose(), 1.0, &mut u).unwrap();
            let mut bt = NvMatrix::default();
            b.transpose_into(&mut bt);
            let mut at2 = NvMatrix::default();
            a.transpose_into(&mut at2);
            assert_eq!(
                u.data(),
                naive_product(&bt, &at2, 1.0, 0.0, None).as_slice()
            );
        }
    }
    // scaleThis == 0: rightMult into this (resized, column-major), old contents unread.
    let (a, b) = (
        mat(503, 5, 7, false, -1.0, 1.0),
        mat(504, 7, 3, false, -1.0, 1.0),
    );
    let mut c = NvMatrix::from_vec(1, 2, false, vec![f32::NAN; 2]);
    c.add_product(&a, &b, 0.0, 1.0).unwrap();
    assert!(c.is_trans() && c.data().iter().all(|x| x.is_finite()));
}

fn reg_products(reg: &mut Regression) {
    // fc-like shapes: cases x inputs (column-major) times inputs x outputs (row-major).
    for (m, k, n) in [(128, 1024, 200), (130, 77, 10), (64, 300, 511)] {
        let a = mat(600 + k as u64, m, k, true, -1.0, 1.0);
        let b = mat(601 + k as u64, k, n, false, -1.0, 1.0);
        let c0 = mat(602 + k as u64, m, n, true, -1.0, 1.0);
        let got = same_bits_any_threads_or_lanes("addProduct", || {
            let mut c = c0.clone();
            c.add_product(&a, &b, 0.9, 0.01).unwrap();
            c.into_vec()
        });
        assert_eq!(got, naive_product(&a, &b, 0.01, 0.9, Some(&c0)));
        reg.case(&format!("addProduct {m}x{k}x{n}"), &got);
    }
}

// ---------------------------------------------------------------- cuRAND

// Expected values below were produced by a host C++ program that includes cuRAND's
// device-API header curand_kernel.h (pip package nvidia-curand 10.4.5.25, CUDA 13,
// whose headers compile the same functions for the host with host-side copies of the
// precalculated skip-ahead tables), built with g++ against the nvidia-cuda-cccl headers:
// `curand_init(seed, subsequence, offset, &s)` then printing `s.d`, `s.v[]` and
// `curand(&s)`; `curand_uniform` bits; and the NVMatrix layout (`curand_init(1 + 2*5,
// i % 12288, 0)`, draw `i / 12288`). The program is not part of the repository.

#[test]
fn curand_init_matches_curand() {
    let cases: [(u64, u64, u64, u32, [u32; 5], u32); 7] = [
        (
            1234,
            0,
            0,
            832094735,
            [1593684748, 1111207954, 4171507460, 3705206908, 1476011280],
            624778773,
        ),
        (
            1,
            0,
            0,
            3912863488,
            [379486205, 450422541, 4171507460, 3705206908, 261812737],
            2898200796,
        ),
        (
            3,
            1,
            0,
            1816071338,
            [3306651623, 533645122, 2881247539, 1181651490, 2547137678],
            1649060027,
        ),
        (
            3,
            12287,
            0,
            1816071338,
            [533452300, 37614043, 3148691901, 360927695, 1548128956],
            480866908,
        ),
        (
            0xDEADBEEFCAFEBABE,
            5000,
            123456789,
            747556795,
            [2578385965, 4106172775, 650413961, 3770512368, 3591738047],
            2744532901,
        ),
        (
            42,
            1 << 40,
            1 << 50,
            3523456887,
            [2413456984, 1004302452, 3100991025, 3098396127, 1471764127],
            2858571897,
        ),
        (
            7,
            0,
            1000,
            2279891334,
            [3621995070, 1919343549, 3488934707, 3089959306, 1886668251],
            3641088259,
        ),
    ];
    for (seed, sub, off, d, v, next) in cases {
        let mut s = CurandState::curand_init(seed, sub, off);
        assert_eq!((s.d, s.v), (d, v), "curand_init({seed}, {sub}, {off})");
        assert_eq!(s.curand(), next);
    }
    let mut s = CurandState::curand_init(1234, 7, 3);
    assert_eq!(
        [s.curand(), s.curand(), s.curand(), s.curand(), s.curand()],
        [324612358, 2988894868, 2223688508, 906701663, 1924992985]
    );
    let mut s = CurandState::curand_init(99, 2, 0);
    let u: Vec<u32> = (0..6).map(|_| s.curand_uniform().to_bits()).collect();
    assert_eq!(
        u,
        [0x3f2bfbd0, 0x3ddb0c81, 0x3f77eb56, 0x3e683130, 0x3f1e8988, 0x3e6c0626]
    );
    // curand_normal: the host path of the header uses sinf/cosf/logf, the device path
    // __sincosf and CUDA's logf; within the bound.
    let mut s = CurandState::curand_init(99, 2, 0);
    let host = [
        0.555302441f64,
        0.697993815,
        0.250577807,
        0.0368678346,
        0.971622109,
        0.119692773,
    ];
    for h in host {
        let g = s.curand_normal() as f64;
        assert!((g - h).abs() < 1e-5, "curand_normal {g} vs cuRAND host {h}");
    }
}

#[test]
fn nvmatrix_random_layout_matches_curand() {
    let mut rnd = RandomStreams::init_random(5);
    let mut m = NvMatrix::new(1, 30001, false);
    m.randomize_uniform(&mut rnd);
    let got: Vec<u32> = [0, 1, 12287, 12288, 30000]
        .iter()
        .map(|&i| m.data()[i].to_bits())
        .collect();
    assert_eq!(
        got,
        [0x3efa93fd, 0x3ea0d0d4, 0x3ec4dee5, 0x3eeb4039, 0x3f23d5d7]
    );
    // The streams are curand_init(1 + 2*seed, t, 0).
    let rnd = RandomStreams::init_random(5);
    for t in [0, 1, 2, 777, NUM_RND_STREAMS - 1] {
        assert_eq!(rnd.states()[t], CurandState::curand_init(11, t as u64, 0));
    }
}

#[test]
fn skipahead_equals_stepping() {
    for n in [1u64, 2, 3, 31, 100, 1000, 12345] {
        let mut a = CurandState::curand_init(77, 3, 0);
        let mut b = a;
        for _ in 0..n {
            a.curand();
        }
        b.skipahead(n);
        assert_eq!(a, b, "skipahead({n})");
        assert_eq!(CurandState::curand_init(77, 3, n), b);
    }
    let mut a = CurandState::curand_init(5, 0, 0);
    a.skipahead(1 << 40);
    a.skipahead(1 << 40);
    let mut b = CurandState::curand_init(5, 0, 0);
    b.skipahead(1 << 41);
    assert_eq!(a, b);
    // 2^67 = 8 jumps of 2^64.
    let mut c = CurandState::curand_init(5, 0, 0);
    for _ in 0..8 {
        c.skipahead(1 << 63);
        c.skipahead(1 << 63);
    }
    assert_eq!(c.v, CurandState::curand_init(5, 1, 0).v);
}

#[test]
fn cuda_logf_is_within_one_ulp() {
    let mut g = convnet::synthetic::SplitMix64::new(9);
    for _ in 0..200_000 {
        let x = f32::from_bits((g.next_u64() >> 33) as u32 & 0x7F7F_FFFF).max(f32::from_bits(1));
        let got = cuda_logf(x);
        let want = (x as f64).ln();
        let ulp = (want as f32).abs().max(f32::MIN_POSITIVE) * f32::EPSILON;
        assert!(
            (got as f64 - want).abs() <= ulp as f64,
            "logf({x:e}) = {got:e}, ln = {want:e}"
        );
    }
    assert_eq!(cuda_logf(1.0), 0.0);
    assert_eq!(cuda_logf(0.0), f32::NEG_INFINITY);
    assert!(cuda_logf(-1.0).is_nan());
    assert_eq!(cuda_logf(f32::INFINITY), f32::INFINITY);
}

/// Large enough (>= 2^16 elements) for the threaded path of the elementwise loop.
fn reg_eltwise(reg: &mut Regression) {
    let a = mat(800, 300, 401, false, 0.1, 2.0);
    let b = mat(801, 300, 401, true, 0.1, 2.0);
    let c = mat(802, 300, 401, false, -1.0, 1.0);
    let col = mat(803, 300, 1, false, 0.5, 2.0);
    type Case<'a> = (&'a str, Box<dyn Fn() -> NvMatrix + Sync + 'a>);
    let cases: Vec<Case> = vec![
        (
            "weighted_add mixed",
            Box::new(|| {
                let mut t = NvMatrix::new(300, 401, true);
                a.add_to(&b, 0.3, -1.7, &mut t).unwrap();
                t
            }),
        ),
        (
            "divide mixed",
            Box::new(|| {
                let mut t = NvMatrix::new(300, 401, false);
                b.eltwise_divide_to(&a, &mut t).unwrap();
                t
            }),
        ),
        (
            "logistic to trans",
            Box::new(|| {
                let mut t = NvMatrix::new(300, 401, true);
                c.apply_to(unary::Logistic, &mut t);
                t
            }),
        ),
        (
            "exp log pow",
            Box::new(|| {
                let mut t = a.clone();
                t.apply(unary::Exp);
                t.apply(unary::Log);
                t.pow(1.5);
                t
            }),
        ),
        (
            "ternary",
            Box::new(|| {
                let mut t = NvMatrix::default();
                a.apply_ternary_to(ternary::Add, &c, &a, &mut t).unwrap();
                t
            }),
        ),
        (
            "add_vector",
            Box::new(|| {
                let mut t = NvMatrix::default();
                c.add_vector_to(&col, -0.5, &mut t).unwrap();
                t
            }),
        ),
        (
            "divide_by_vector",
            Box::new(|| {
                let mut t = c.clone();
                t.eltwise_divide_by_vector(&col).unwrap();
                t
            }),
        ),
        ("flip_trans", Box::new(|| b.flip_trans())),
    ];
    for (name, f) in cases {
        let v = same_bits_any_threads_or_lanes(name, || f().into_vec());
        reg.case(&format!("eltwise {name}"), &v);
    }
}

fn reg_random(reg: &mut Regression) {
    let n = 90_000;
    let base = mat(700, 300, 300, false, 0.0, 1.0);
    let sd = mat(701, 300, 300, false, 0.1, 2.0);
    let run = |what: &str| {
        let mut rnd = RandomStreams::init_random(123);
        let mut m = base.clone();
        match what {
            "uniform" => m.randomize_uniform(&mut rnd),
            "gaussian" => m.randomize_gaussian(&mut rnd, 0.5, 2.0),
            "gaussian_stdevs" => m.randomize_gaussian_stdevs(&mut rnd, &sd).unwrap(),
            "add_noise" => m.add_gaussian_noise(&mut rnd, 0.1),
            "add_noise_var" => m
                .add_gaussian_noise_stdevs(&mut rnd, Some(&sd), true)
                .unwrap(),
            "add_noise_self" => m.add_gaussian_noise_stdevs(&mut rnd, None, false).unwrap(),
            "binarize" => m.binarize_probs(&mut rnd),
            _ => unreachable!(),
        }
        // A second call continues the streams.
        let mut again = NvMatrix::new(1, 5, false);
        again.randomize_uniform(&mut rnd);
        let mut v = m.into_vec();
        v.extend_from_slice(again.data());
        v
    };
    for what in [
        "uniform",
        "gaussian",
        "gaussian_stdevs",
        "add_noise",
        "add_noise_var",
        "add_noise_self",
        "binarize",
    ] {
        let v = same_bits_any_threads_or_lanes(what, || run(what));
        reg.case(&format!("random {what}"), &v);
        let body = &v[..n];
        match what {
            "uniform" => assert!(body.iter().all(|&x| x > 0.0 && x <= 1.0)),
            "gaussian" => {
                let mean = body.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
                let var = body.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
                assert!(
                    (mean - 0.5).abs() < 0.05 && (var.sqrt() - 2.0).abs() < 0.05,
                    "{mean} {var}"
                );
            }
            "binarize" => {
                let ones = body.iter().filter(|&&x| x == 1.0).count() as f64;
                let p = base.data().iter().map(|&x| x as f64).sum::<f64>();
                assert!((ones - p).abs() < 5.0 * p.sqrt(), "{ones} {p}");
            }
            _ => {}
        }
    }
    // Element i uses stream i mod 12288: compare with states stepped by hand.
    let g = run("gaussian");
    let rnd = RandomStreams::init_random(123);
    let mut s = rnd.states()[7];
    assert_eq!(g[7], s.curand_normal().mul_add(2.0, 0.5));
    assert_eq!(
        g[7 + NUM_RND_STREAMS],
        s.curand_normal().mul_add(2.0, 0.5),
        "the cached second value"
    );
}

// ---------------------------------------------------------------- shape errors

#[test]
fn bad_shapes_are_errors() {
    let a = NvMatrix::new(3, 4, false);
    let b = NvMatrix::new(4, 3, false);
    let mut t = NvMatrix::default();
    assert!(a.apply_binary_to(binary::Add, &b, &mut t).is_err());
    assert!(a.clone().add(&b, 1.0, 1.0).is_err());
    assert!(a
        .apply_ternary_to(ternary::Add, &a, &a.flip_trans(), &mut t)
        .is_err());
    assert!(a
        .add_vector_to(&NvMatrix::new(2, 2, false), 1.0, &mut t)
        .is_err());
    assert!(a
        .add_vector_to(&NvMatrix::new(1, 3, false), 1.0, &mut t)
        .is_err());
    assert!(a.copy_block(&mut t, 0, None, 0, None, 0, 0).is_err());
    assert!(a.slice(2, Some(2), 0, None, &mut t).is_err());
    assert!(a.slice(0, Some(5), 0, None, &mut t).is_err());
    assert!(a.tile(0, 1, &mut t).is_err());
    assert!(a.sum(2, &mut t).is_err());
    assert!(NvMatrix::default().sum(0, &mut t).is_err());
    assert!(a.dot_product(&a.flip_trans()).is_err());
    assert!(a.dot_product(&b).is_err());
    assert!(a.right_mult(&a, 1.0, &mut t).is_err());
    let mut c = NvMatrix::new(3, 3, false);
    assert!(
        c.add_product(&a, &b, 1.0, 1.0).is_err(),
        "addProduct needs a column-major target"
    );
    let mut c = NvMatrix::new(3, 4, true);
    assert!(c.add_product(&a, &b, 1.0, 1.0).is_err());
    let mut rnd = RandomStreams::init_random(1);
    let mut tt = NvMatrix::new(3, 4, true);
    assert!(a.binarize_probs_to(&mut rnd, &mut tt).is_err());
    assert!(a.clone().randomize_gaussian_stdevs(&mut rnd, &b).is_err());
    assert!(NvMatrix::new(1, 4, false)
        .get_transpose()
        .reshaped(3, 3)
        .is_err());
}
