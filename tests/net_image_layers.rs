//! The image layers without weights in a net (tests/data/image/): blur and bed of
//! nails pass the original's gradient check on the path to a conv layer, and the
//! forward-only layers (rgb2yuv, rgb2lab, resize) give what their kernels give on the
//! data.

use convnet::config::{parse_layers, Generation, Model};
use convnet::cudaconv2::conv_util::util;
use convnet::net::{ConvNet, NetOptions, Pass};
use convnet::nvmatrix::NvMatrix;
use convnet::synthetic::{uniform, SplitMix64};
use std::path::Path;

const CASES: usize = 24;

fn net(gen: Generation, def: &str, params: &str) -> ConvNet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/image");
    let model = Model {
        data_dims: vec![192, 1],
        num_classes: 10,
        num_gpus: 1,
        conserve_mem: 0,
        seed: 9,
    };
    let net = parse_layers(
        gen,
        &dir.join(def),
        &dir.join(params),
        &model,
        &mut Vec::new(),
    )
    .unwrap();
    let opts = NetOptions {
        minibatch_size: 128,
        wupdate_freq: 1,
        random_seed: 1,
    };
    ConvNet::new(&net, opts).unwrap()
}

fn data() -> Vec<NvMatrix> {
    let mut rng = SplitMix64::new(2);
    vec![
        NvMatrix::from_vec(192, CASES, false, uniform(6, 192 * CASES, 0.0, 1.0)),
        NvMatrix::from_vec(
            1,
            CASES,
            false,
            (0..CASES).map(|_| (rng.next_u64() % 10) as f32).collect(),
        ),
    ]
}

#[test]
fn blur_and_nails_pass_the_gradient_check() {
    let mut out = Vec::new();
    let s = net(Generation::A12, "layers.cfg", "params.cfg")
        .check_gradients(&data(), &mut out)
        .unwrap();
    let report = String::from_utf8(out).unwrap();
    assert_eq!((s.tests, s.failures), (4, 0), "{report}");
}

#[test]
fn colour_and_resize_layers_apply_their_kernels() {
    let mut n = net(Generation::C1, "layers-fwd.cfg", "params-fwd.cfg");
    let d = data();
    n.fprop(&d, Pass::Test).unwrap();
    let x = &d[0];
    let mut want = NvMatrix::default();
    util::conv_rgb_to_yuv(x, &mut want).unwrap();
    assert_eq!(n.acts("yuv").unwrap().data(), want.data());
    util::conv_rgb_to_lab(x, &mut want, true).unwrap();
    assert_eq!(n.acts("lab").unwrap().data(), want.data());
    util::conv_resize_bilinear(x, &mut want, 8, 4, 2.0).unwrap();
    let half = n.acts("half").unwrap();
    assert_eq!((half.len(), half.data()), (48 * CASES, want.data()));
}
