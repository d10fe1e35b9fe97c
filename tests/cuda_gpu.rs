//! Each CUDA GPU present: its name, how each kernel file was loaded (nvcc's PTX or
//! NVRTC), and that every kernel of cuda/*.cu is there to launch. Skips without a GPU.

mod common;
use common::emu::{gpus, kernel_signatures};
use convnet::cuda::{Backend, SOURCES};

#[test]
fn every_kernel_loads_on_each_gpu() {
    for gpu in gpus() {
        eprintln!("CUDA device: {}", gpu.name());
        for (file, how) in gpu.module_sources() {
            eprintln!("  cuda/{file}: {how}");
        }
        let mut missing = Vec::new();
        let mut count = 0;
        for (_, text) in SOURCES.iter().filter(|(f, _)| f.ends_with(".cu")) {
            for (name, _) in kernel_signatures(text) {
                count += 1;
                if !gpu.has_kernel(&name) {
                    missing.push(name);
                }
            }
        }
        assert!(missing.is_empty(), "kernels not loaded: {missing:?}");
        eprintln!("  {count} kernels loaded");
    }
}

#[test]
fn a_missing_device_is_an_error_not_a_panic() {
    let n = convnet::cuda::Cuda::device_count().unwrap_or(0);
    assert!(convnet::cuda::Cuda::open(n).is_err());
}
