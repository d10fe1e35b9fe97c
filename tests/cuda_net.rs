//! A net whose image kernels run on a CUDA backend (`ConvNet::set_device`) trains to
//! the CPU's bits in the host emulation, and within the kernels' tiers on a GPU, two
//! training batches each: the 80sec net (conv, max and avg pooling), the conv-local net
//! (local layers, cross-map normalisation), the 18% net (same-map normalisation), a
//! contrast-normalisation net and the 2012 gradient-check net (cross-map normalisation
//! with minDiv, local layers, 2012 update rules).

mod common;
use common::batch;
use common::emu::backends;
use convnet::config::value::Value;
use convnet::config::{parse_layers, Generation, Model, Net};
use convnet::net::{ConvNet, Device, NetOptions};

/// Parses `layer-defs/NAME.cfg` with `params/NAME.cfg`, or `tests/data/cuda/layers-NAME.cfg`
/// with `params-NAME.cfg` when the name starts with `test-`.
fn parse(gen: Generation, name: &str, dims: usize) -> Net {
    let root = common::repo_root();
    let (def, params) = match name.strip_prefix("test-") {
        Some(n) => (
            root.join(format!("tests/data/cuda/layers-{n}.cfg")),
            root.join(format!("tests/data/cuda/params-{n}.cfg")),
        ),
        None => (
            root.join(format!("layer-defs/{name}.cfg")),
            root.join(format!("params/{name}.cfg")),
        ),
    };
    let model = Model {
        data_dims: vec![dims as i64, 1],
        num_classes: 10,
        num_gpus: 1,
        conserve_mem: 0,
        seed: 7,
    };
    parse_layers(gen, &def, &params, &model, &mut Vec::new()).unwrap()
}

/// Two training batches of 40 cases (minibatches of 32 and 8) on `device`; the
/// weights and biases of every layer after them.
fn train(net: &Net, dims: usize, device: Device) -> Vec<Vec<f32>> {
    let opts = NetOptions {
        minibatch_size: 32,
        wupdate_freq: 1,
        random_seed: 11,
    };
    let mut cn = ConvNet::new(net, opts).unwrap();
    cn.set_device(device);
    for b in 0..2 {
        cn.train_batch(&batch(dims, 40, b + 1), 0.5).unwrap();
    }
    let mut out = net.clone();
    cn.sync_to_host(&mut out);
    let mut arrays = Vec::new();
    for l in &out.layers {
        for k in ["weights", "biases"] {
            if let Some(v) = l.get(k) {
                collect(v, &mut arrays);
            }
        }
    }
    arrays
}

fn collect(v: &Value, out: &mut Vec<Vec<f32>>) {
    match v {
        Value::Array(a) => out.push(a.data.clone()),
        Value::List(items) => items.iter().for_each(|i| collect(i, out)),
        _ => {}
    }
}

#[test]
fn nets_train_to_the_cpu_bits_on_every_backend() {
    for (gen, name, dims) in [
        (Generation::C1, "cifar10-80sec", 3072),
        (Generation::C1, "cifar10-conv-local", 1728),
        (Generation::C1, "cifar10-18pct", 3072),
        (Generation::C1, "test-cnorm", 192),
        (Generation::A12, "gc-2012", 192),
    ] {
        let net = parse(gen, name, dims);
        let cpu = train(&net, dims, Device::Cpu);
        for b in backends() {
            let (what, exact) = (b.name(), b.emulated());
            let got = train(&net, dims, Device::Gpu(b));
            assert_eq!(got.len(), cpu.len());
            for (g, c) in got.iter().zip(&cpu) {
                if exact {
                    let same = g.iter().zip(c).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{name} on {what}: weights differ from the CPU's");
                } else {
                    let max = c.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let diff = g.iter().zip(c).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                    assert!(
                        diff <= 1e-4 * max.max(1e-6),
                        "{name} on {what}: weights differ from the CPU's by {diff} (max {max})"
                    );
                }
            }
            eprintln!("{name}: {what} gives the CPU's weights");
        }
    }
}

/// `convnet --device=cuda` trains on the GPU where there is one, and otherwise stops
/// with a clear error (exit status 1, no panic).
#[test]
fn the_cli_runs_on_a_gpu_or_says_why_not() {
    // .ci/gpu-check runs this on a machine where the build's binary path does not
    // exist: it names the binary it carried.
    let bin = std::env::var("CONVNET_BIN").unwrap_or(env!("CARGO_BIN_EXE_convnet").into());
    let out = std::process::Command::new(bin)
        .current_dir(common::repo_root())
        .args([
            "--layer-def=layer-defs/fmnist-80sec.cfg",
            "--layer-params=params/fmnist-80sec.cfg",
            "--data-dims=784,1",
            "--mini=32",
            "--bench=1",
            "--device=cuda",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    match convnet::cuda::Cuda::device_count() {
        Ok(n) if n > 0 => {
            assert!(out.status.success(), "{stderr}");
            assert!(stdout.contains("Image kernels on "), "{stdout}");
            assert!(stdout.contains(" images/s"), "{stdout}");
        }
        _ => {
            eprintln!("SKIPPED: no CUDA GPU; checking the error instead");
            assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
            assert!(
                stderr.contains("convnet: error: --device=cuda: GPU: "),
                "{stderr}"
            );
        }
    }
}
