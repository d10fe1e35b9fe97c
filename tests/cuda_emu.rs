//! Our CUDA kernels (cuda/*.cu) run in the host emulation give the CPU port's bits.

mod common;
use common::emu::emu;
use convnet::cuda::{launch, Backend};
use convnet::nvmatrix::NvMatrix;

#[test]
fn nvm_scale_matches_the_cpu() {
    let Some(b) = emu() else { return };
    let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
    let src = b.upload(&x).unwrap();
    let dst = b.alloc(x.len()).unwrap();
    launch::nvm_scale(&b, &src, &dst, 1.7).unwrap();
    let mut m = NvMatrix::from_vec(10, 100, false, x);
    m.scale(1.7);
    assert_eq!(b.download(&dst).unwrap(), m.data());
}
