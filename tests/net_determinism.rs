//! Determinism: the same seed gives bit-identical weights after several training
//! batches with 1 and with 2 threads; and a 2012 two-tower net placed on `gpu=0,1`
//! computes the bits of the same net placed on one device.

mod common;
use common::{batch, parse_net, parse_towers};
use convnet::config::{Generation, Net};
use convnet::net::{ConvNet, NetOptions};
use convnet::parallel::with_threads;
use std::path::Path;

/// Trains `batches` batches and returns every weight layer's synced dicts.
fn train(net: &Net, dims: usize, batches: u64) -> Net {
    let opts = NetOptions {
        minibatch_size: 32,
        wupdate_freq: 1,
        random_seed: 11,
    };
    let mut cn = ConvNet::new(net, opts).unwrap();
    for b in 0..batches {
        cn.train_batch(&batch(dims, 80, b + 1), 0.5).unwrap();
    }
    let mut out = net.clone();
    cn.sync_to_host(&mut out);
    out
}

fn root(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn one_and_two_threads_train_the_same_bits() {
    for (gen, name, dims) in [
        (Generation::C1, "cifar10-18pct", 3072),
        (Generation::A12, "gc-2012", 192),
    ] {
        let net = parse_net(
            gen,
            &root(&format!("layer-defs/{name}.cfg")),
            &root(&format!("params/{name}.cfg")),
            dims,
            1,
        );
        let one = with_threads(1, || train(&net, dims, 3));
        let two = with_threads(2, || train(&net, dims, 3));
        assert!(one == two, "{name}: weights differ between 1 and 2 threads");
        assert!(one != net, "{name}: training changed nothing");
    }
}

#[test]
fn two_towers_on_two_gpus_equal_one_gpu() {
    let two = parse_towers("layers-2gpu.cfg", "params.cfg", true);
    let one = parse_towers("layers-2gpu.cfg", "params.cfg", false);
    // The same initial weights in both (the parser draws them per layer in order).
    assert!(two
        .layers
        .iter()
        .zip(&one.layers)
        .all(|(a, b)| a.get("weights") == b.get("weights")));
    let (t, o) = (train(&two, 192, 2), train(&one, 192, 2));
    for (a, b) in t.layers.iter().zip(&o.layers) {
        assert_eq!(
            a.get("weights"),
            b.get("weights"),
            "layer {:?}",
            a.get("name")
        );
        assert_eq!(
            a.get("biases"),
            b.get("biases"),
            "layer {:?}",
            a.get("name")
        );
    }
}
