//! Adjoint identities between the three convolution kernels, in float64 over their
//! float32 outputs: for images `x`, filters `w` and hidden activities `y`,
//! `<filterActs(x, w), y> = <x, imgActs(y, w)> = <w, weightActs(x, y)>` (conv with
//! partialSum = numModules, and local), for every variant family and awkward shapes.

use convnet::cudaconv2::filter_acts::{conv_filter_acts, local_filter_acts};
use convnet::cudaconv2::img_acts::{conv_img_acts, local_img_acts};
use convnet::cudaconv2::shapes::{ConvShape, NET_SHAPES};
use convnet::cudaconv2::weight_acts::{conv_weight_acts, local_weight_acts};
use convnet::nvmatrix::NvMatrix;
use convnet::synthetic::uniform;

fn dot(a: &NvMatrix, b: &NvMatrix) -> (f64, f64) {
    assert_eq!((a.rows(), a.cols()), (b.rows(), b.cols()));
    a.data()
        .iter()
        .zip(b.data())
        .fold((0.0, 0.0), |(s, m), (&x, &y)| {
            let p = x as f64 * y as f64;
            (s + p, m + p.abs())
        })
}

fn check(s: ConvShape) {
    let (n, mods) = (s.images, s.modules());
    let x = NvMatrix::from_vec(
        s.colors * s.img_size * s.img_size,
        n,
        false,
        uniform(1, s.colors * s.img_size * s.img_size * n, -1.0, 1.0),
    );
    let w = NvMatrix::from_vec(
        s.filter_rows(),
        s.filters,
        false,
        uniform(2, s.filter_rows() * s.filters, -1.0, 1.0),
    );
    let y = NvMatrix::from_vec(
        s.filters * mods,
        n,
        false,
        uniform(3, s.filters * mods * n, -1.0, 1.0),
    );
    let (mut fa, mut ia, mut wa) = (
        NvMatrix::default(),
        NvMatrix::default(),
        NvMatrix::default(),
    );
    let p = s.padding_start();
    if s.local {
        local_filter_acts(
            &x,
            &w,
            &mut fa,
            s.img_size,
            s.modules_x,
            s.modules_x,
            p,
            s.stride,
            s.colors,
            s.groups,
            0.0,
            1.0,
        )
        .unwrap();
        local_img_acts(
            &y,
            &w,
            &mut ia,
            s.img_size,
            s.img_size,
            s.modules_x,
            p,
            s.stride,
            s.colors,
            s.groups,
            0.0,
            1.0,
        )
        .unwrap();
        local_weight_acts(
            &x,
            &y,
            &mut wa,
            s.img_size,
            s.modules_x,
            s.modules_x,
            s.filter_size,
            p,
            s.stride,
            s.colors,
            s.groups,
            0.0,
            1.0,
        )
        .unwrap();
    } else {
        conv_filter_acts(
            &x,
            &w,
            &mut fa,
            s.img_size,
            s.modules_x,
            s.modules_x,
            p,
            s.stride,
            s.colors,
            s.groups,
            0.0,
            1.0,
        )
        .unwrap();
        conv_img_acts(
            &y,
            &w,
            &mut ia,
            s.img_size,
            s.img_size,
            s.modules_x,
            p,
            s.stride,
            s.colors,
            s.groups,
            0.0,
            1.0,
        )
        .unwrap();
        conv_weight_acts(
            &x,
            &y,
            &mut wa,
            s.img_size,
            s.modules_x,
            s.modules_x,
            s.filter_size,
            p,
            s.stride,
            s.colors,
            s.groups,
            0,
            0.0,
            1.0,
        )
        .unwrap();
    }
    let (a, ma) = dot(&fa, &y);
    let (b, mb) = dot(&x, &ia);
    let (c, mc) = dot(&w, &wa);
    // Each side is a sum of float32-rounded partial sums: allow a few ulps of the
    // magnitudes involved.
    let tol = 1e-5 * ma.max(mb).max(mc);
    assert!(
        (a - b).abs() <= tol && (a - c).abs() <= tol,
        "{}: <fx,y> {a}, <x,iy> {b}, <w,wxy> {c} (tolerance {tol:e})",
        s.name
    );
}

#[allow(clippy::too_many_arguments)]
const fn shape(
    name: &'static str,
    img: usize,
    colors: usize,
    filters: usize,
    fs: usize,
    pad: usize,
    stride: usize,
    mx: usize,
    groups: usize,
    local: bool,
    images: usize,
) -> ConvShape {
    ConvShape {
        name,
        img_size: img,
        colors,
        filters,
        filter_size: fs,
        padding: pad,
        stride,
        groups,
        modules_x: mx,
        partial_sum: 0,
        local,
        images,
    }
}

#[test]
fn filter_img_and_weight_acts_are_adjoint() {
    let awkward = [
        shape(
            "1 colour, stride 2, 37 images",
            9,
            1,
            16,
            3,
            1,
            2,
            5,
            1,
            false,
            37,
        ),
        shape("2 colours, 64 images", 8, 2, 32, 5, 2, 1, 8, 1, false, 64),
        shape(
            "3 colours, filters % 32 != 0, 100 images",
            10,
            3,
            48,
            4,
            0,
            2,
            4,
            1,
            false,
            100,
        ),
        shape(
            "8 colours in 2 groups, 130 images",
            7,
            16,
            32,
            3,
            1,
            1,
            7,
            2,
            false,
            130,
        ),
        shape("16 colours, 1 image", 6, 16, 64, 3, 0, 1, 4, 1, false, 1),
        shape(
            "local, 4 colours, stride 2",
            8,
            4,
            16,
            3,
            1,
            2,
            4,
            1,
            true,
            33,
        ),
        shape("local, 3 colours", 6, 3, 16, 3, 1, 1, 6, 1, true, 5),
    ];
    for s in awkward {
        check(s);
    }
    for s in NET_SHAPES {
        check(s.with_images(32));
    }
}
