//! A net whose image kernels and fully connected products run on a CUDA backend
//! (`ConvNet::set_devices`) trains to the CPU's bits in the host emulation, and within
//! the kernels' tiers on a GPU, two training batches each: the 80sec net (conv, max and
//! avg pooling), the conv-local net (local layers, cross-map normalisation), the 18% net
//! (same-map normalisation), a contrast-normalisation net and the 2012 gradient-check net
//! (cross-map normalisation with minDiv, local layers, 2012 update rules); and a 2012
//! two-tower net with each tower on its own backend. On a GPU only (the emulation would
//! take hours), AlexNet 2012 itself, on one device and with its towers on two: its test
//! pass closely, its training within a looser bound (see that test).

mod common;
use common::batch;
use common::emu::{backends, gpus};
use convnet::config::value::Value;
use convnet::config::{Generation, Net};
use convnet::cuda::{Backend, DevBuf, Gemm, GpuError, Param};
use convnet::net::{ConvNet, Device, NetOptions};
use std::cell::Cell;
use std::rc::Rc;

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
    common::parse_net(gen, &def, &params, dims, 1)
}

/// Two training batches of 40 cases (minibatches of 32 and 8) with tower `i` on
/// `devices[i]`; the weights and biases of every layer after them.
fn train(net: &Net, dims: usize, devices: Vec<Device>) -> Vec<Vec<f32>> {
    let opts = NetOptions {
        minibatch_size: 32,
        wupdate_freq: 1,
        random_seed: 11,
    };
    let mut cn = ConvNet::new(net, opts).unwrap();
    cn.set_devices(devices).unwrap();
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
        let cpu = train(&net, dims, vec![Device::Cpu]);
        for b in backends() {
            let (what, exact) = (b.name(), b.emulated());
            let got = train(&net, dims, vec![Device::gpu(b)]);
            assert_within_tier(name, &what, exact, &got, &cpu);
        }
    }
}

/// `got` equals the CPU's weights `cpu`: bit for bit where `exact`, else within the
/// kernels' tiers.
fn assert_within_tier(name: &str, what: &str, exact: bool, got: &[Vec<f32>], cpu: &[Vec<f32>]) {
    assert_eq!(got.len(), cpu.len());
    for (g, c) in got.iter().zip(cpu) {
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

/// What a [`Counted`] backend counts.
#[derive(Clone, Default)]
struct Counts {
    launches: Rc<Cell<usize>>,
    gemms: Rc<Cell<usize>>,
    /// Words copied to the device.
    words_in: Rc<Cell<usize>>,
}

/// A backend that counts its kernel launches, its products and its uploads.
struct Counted(Box<dyn Backend>, Counts);

fn bump(c: &Cell<usize>, by: usize) {
    c.set(c.get() + by);
}

impl Backend for Counted {
    fn name(&self) -> String {
        self.0.name()
    }
    fn alloc(&self, len: usize) -> Result<DevBuf, GpuError> {
        self.0.alloc(len)
    }
    fn write_words(&self, dst: &DevBuf, offset: usize, src: &[u32]) -> Result<(), GpuError> {
        bump(&self.1.words_in, src.len());
        self.0.write_words(dst, offset, src)
    }
    fn read_words(&self, src: &DevBuf, offset: usize, dst: &mut [u32]) -> Result<(), GpuError> {
        self.0.read_words(src, offset, dst)
    }
    fn launch(&self, name: &str, grid: u32, block: u32, params: &[Param]) -> Result<(), GpuError> {
        bump(&self.1.launches, 1);
        self.0.launch(name, grid, block, params)
    }
    fn gemm(&self, g: &Gemm, a: &DevBuf, b: &DevBuf, c: &DevBuf) -> Result<(), GpuError> {
        bump(&self.1.gemms, 1);
        self.0.gemm(g, a, b, c)
    }
    fn emulated(&self) -> bool {
        self.0.emulated()
    }
}

/// The device keeps what it uploaded and what its kernels wrote: an unchanged operand
/// is uploaded once, a kernel's output is the next kernel's operand without an upload,
/// and a write on the host makes the next use upload again.
#[test]
fn unchanged_operands_are_uploaded_once() {
    use convnet::cuda::launch::nvmatrix::scale;
    use convnet::nvmatrix::NvMatrix;
    for b in backends() {
        let counts = Counts::default();
        let dev = Device::gpu(Box::new(Counted(b, counts.clone())));
        let double = |src: &NvMatrix, dst: &mut NvMatrix| {
            dev.run(
                &[src],
                &mut [dst],
                &[(4, 8)],
                &[false],
                |_| unreachable!("a GPU device"),
                |b, i, o| scale(b, i[0], 2.0, o[0]),
            )
            .unwrap()
        };
        let mut x = NvMatrix::from_vec(4, 8, false, (0..32).map(|i| i as f32).collect());
        let (mut y, mut z) = (NvMatrix::default(), NvMatrix::default());
        double(&x, &mut y);
        assert_eq!(counts.words_in.get(), 32, "x uploaded");
        double(&x, &mut y);
        assert_eq!(counts.words_in.get(), 32, "x unchanged: no upload");
        double(&y, &mut z);
        assert_eq!(counts.words_in.get(), 32, "y is the device's own output");
        assert_eq!(z.get(3, 7), 4.0 * 31.0);
        x.data_mut()[31] = 100.0;
        double(&x, &mut y);
        assert_eq!(
            counts.words_in.get(),
            64,
            "x written on the host: uploaded again"
        );
        assert_eq!(y.get(3, 7), 200.0);
    }
}

/// 2012 two-tower nets (`gpu=0` and `gpu=1`) with each tower on its own backend, and
/// with one tower on a backend and the other on the CPU, train to the CPU's weights;
/// each backend ran its tower's kernels and products. `layers-2gpu`: conv, pooling and
/// cross-map normalisation on both towers, the products of `fc2` on tower 0 only;
/// `layers-hs`: an fc layer and a dropout layer (its mask drawn on the device) on each.
#[test]
fn two_towers_run_each_on_its_own_device() {
    for (def, params, products_on_1) in [
        ("layers-2gpu.cfg", "params.cfg", false),
        ("layers-hs.cfg", "params-merge.cfg", true),
    ] {
        let net = common::parse_towers(def, params, true);
        let cpu = train(&net, 192, vec![Device::Cpu, Device::Cpu]);
        let [first, second] = [backends(), backends()];
        for (a, b) in first.into_iter().zip(second) {
            let (what, exact) = (b.name(), b.emulated());
            let counts = [Counts::default(), Counts::default()];
            let devices = vec![
                Device::gpu(Box::new(Counted(a, counts[0].clone()))),
                Device::gpu(Box::new(Counted(b, counts[1].clone()))),
            ];
            let got = train(&net, 192, devices);
            assert_within_tier(def, &what, exact, &got, &cpu);
            let [(l0, g0), (l1, g1)] = counts.map(|c| (c.launches.get(), c.gemms.get()));
            assert!(
                l0 > 0 && l1 > 0,
                "{def}: kernel launches per tower: {l0}, {l1}"
            );
            assert!(
                g0 > 0 && (g1 > 0) == products_on_1,
                "{def}: products per tower: {g0}, {g1}"
            );
        }
        for b in backends() {
            let (what, exact) = (b.name(), b.emulated());
            let got = train(&net, 192, vec![Device::Cpu, Device::gpu(b)]);
            assert_within_tier(
                &format!("{def} (tower 0 on the CPU)"),
                &what,
                exact,
                &got,
                &cpu,
            );
        }
    }
}

/// AlexNet 2012 (layer-defs/alexnet-2012-{1,2}gpu.cfg, 224x224 images, 1000 classes)
/// on each GPU against the CPU, one device for the one-tower definition and each tower
/// on its own handle of the device for the two-tower one. Skipped without a GPU.
///
/// - A test pass (no dropout) gives the CPU's softmax outputs and cost within 1e-5 of
///   the largest: forward differences stay at the bounded kernels' size (cuBLAS
///   products, `__powf`).
/// - Two training batches: weights within 5e-2 of each array's largest magnitude. The
///   backward pass is not continuous in the bounded kernels' last bits (a ReLU input or
///   a pooling window's maximum that changes side routes a case's whole gradient
///   differently), so the weights agree less closely than the forward pass; the worst
///   array is printed.
#[test]
fn alexnet_runs_as_on_the_cpu_on_a_gpu() {
    let dims = 3 * 224 * 224;
    for towers in [1, 2] {
        let name = format!("alexnet-2012-{towers}gpu");
        let Some(first) = gpus().into_iter().next() else {
            return;
        };
        let what = first.name();
        let mut devices = vec![Device::gpu(Box::new(first))];
        if towers == 2 {
            let second = gpus().into_iter().next().expect("the GPU, opened again");
            devices.push(Device::gpu(Box::new(second)));
        }
        let root = common::repo_root();
        let model = convnet::config::Model {
            data_dims: vec![dims as i64, 1],
            num_classes: 1000,
            num_gpus: towers as i64,
            conserve_mem: 0,
            seed: 7,
        };
        let def = root.join(format!("layer-defs/{name}.cfg"));
        let params = root.join(format!("params/{name}.cfg"));
        let net =
            convnet::config::parse_layers(Generation::A12, &def, &params, &model, &mut Vec::new())
                .unwrap();
        let opts = NetOptions {
            minibatch_size: 32,
            wupdate_freq: 1,
            random_seed: 11,
        };
        let (mut cpu, mut gpu) = (
            ConvNet::new(&net, opts).unwrap(),
            ConvNet::new(&net, opts).unwrap(),
        );
        cpu.set_devices((0..towers).map(|_| Device::Cpu).collect())
            .unwrap();
        gpu.set_devices(devices).unwrap();

        let test = batch(dims, 32, 9);
        let (c, g) = (
            cpu.test_batch(&test).unwrap(),
            gpu.test_batch(&test).unwrap(),
        );
        let (cp, gp) = (
            cpu.acts("probs").unwrap().data().to_vec(),
            gpu.acts("probs").unwrap().data().to_vec(),
        );
        let worst = max_rel_diff(&gp, &cp);
        eprintln!("{name} on {what}: test pass: softmax outputs within {worst:.2e} of the largest");
        assert!(worst <= 1e-5, "{name}: softmax outputs differ by {worst:e}");
        for ((layer, (_, cv)), (_, gv)) in c.values.iter().zip(g.values.values()) {
            for (x, y) in cv.iter().zip(gv) {
                assert!(
                    (x - y).abs() <= 1e-5 * x.abs().max(1.0),
                    "{name}: {layer} cost {y} vs {x}"
                );
            }
        }

        let start = std::time::Instant::now();
        for b in 0..2 {
            let data = batch(dims, 40, b + 1);
            cpu.train_batch(&data, 0.5).unwrap();
            gpu.train_batch(&data, 0.5).unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let (mut cn, mut gn) = (net.clone(), net.clone());
        cpu.sync_to_host(&mut cn);
        gpu.sync_to_host(&mut gn);
        let mut worst = (0.0, String::new());
        for (cl, gl) in cn.layers.iter().zip(&gn.layers) {
            for k in ["weights", "biases"] {
                let (mut ca, mut ga) = (Vec::new(), Vec::new());
                if let (Some(c), Some(g)) = (cl.get(k), gl.get(k)) {
                    collect(c, &mut ca);
                    collect(g, &mut ga);
                }
                for (i, (c, g)) in ca.iter().zip(&ga).enumerate() {
                    let d = max_rel_diff(g, c);
                    if d > worst.0 {
                        let layer = match cl.get("name") {
                            Some(Value::Str(n)) => n.clone(),
                            _ => String::new(),
                        };
                        worst = (d, format!("{layer} {k}[{i}]"));
                    }
                }
            }
        }
        eprintln!(
            "{name} on {what}: two training batches (both nets) in {secs:.1} s; weights within {:.2e} of each array's largest ({})",
            worst.0, worst.1
        );
        assert!(
            worst.0 <= 5e-2,
            "{name}: {} differs by {:e}",
            worst.1,
            worst.0
        );
    }
}

/// The largest `|got - want|` over the largest `|want|`.
fn max_rel_diff(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let top = want.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let d = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (x, y)| m.max((x - y).abs() as f64));
    if top > 0.0 {
        d / top
    } else {
        d
    }
}

/// The convnet binary: .ci/gpu-check runs these tests on a machine where the build's
/// binary path does not exist, and names the binary it carried.
fn convnet_bin() -> String {
    std::env::var("CONVNET_BIN").unwrap_or(env!("CARGO_BIN_EXE_convnet").into())
}

/// `convnet ARGS --mini=32 --bench=1 --device=cuda` from the repository root: its exit
/// status, stdout and stderr.
fn bench_on_cuda(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(convnet_bin())
        .current_dir(common::repo_root())
        .args(args)
        .args(["--mini=32", "--bench=1", "--device=cuda"])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `convnet --device=cuda` trains on the GPU where there is one, and otherwise stops
/// with a clear error (exit status 1, no panic).
#[test]
fn the_cli_runs_on_a_gpu_or_says_why_not() {
    let (code, stdout, stderr) = bench_on_cuda(&[
        "--layer-def=layer-defs/fmnist-80sec.cfg",
        "--layer-params=params/fmnist-80sec.cfg",
        "--data-dims=784,1",
    ]);
    match convnet::cuda::Cuda::device_count() {
        Ok(n) if n > 0 => {
            assert_eq!(code, Some(0), "{stderr}");
            assert!(stdout.contains("Image kernels on "), "{stdout}");
            assert!(stdout.contains(" images/s"), "{stdout}");
        }
        _ => {
            common::skip("no CUDA GPU; checking the error instead");
            assert_eq!(code, Some(1), "{stdout}{stderr}");
            assert!(
                stderr.contains("convnet: error: --device=cuda: GPU: "),
                "{stderr}"
            );
        }
    }
}

/// `--device=cuda` needs a device for each tower: `--gpu` naming fewer is an error
/// (before any GPU is opened), as the original's `deviceIDs[gpu]` would not exist.
#[test]
fn the_cli_wants_a_gpu_per_tower() {
    let (code, _, stderr) = bench_on_cuda(&[
        "--layer-def=tests/data/towers/layers-2gpu.cfg",
        "--layer-params=tests/data/towers/params.cfg",
        "--data-dims=192,1",
        "--num-gpus=2",
        "--gpu=0",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("the net is placed on 2 GPUs (gpu=) but --gpu names 1"),
        "{stderr}"
    );
}
