//! 2012 nets placed on several devices (`gpu=`, the original's `ConvNetGPU` workers):
//! a layer's gradient summed per device and merged as the original merged it, one
//! random stream per device, and the same bits as one device where the maths is the same
//! (tests/net_determinism.rs; tests/cuda_net.rs runs each tower on its own backend).

mod common;
use common::{batch, parse_towers};
use convnet::net::{ConvNet, NetOptions, Pass};

fn net(name: &str, two: bool) -> ConvNet {
    let opts = NetOptions {
        minibatch_size: 32,
        wupdate_freq: 1,
        random_seed: 11,
    };
    let layers = format!("layers-{name}.cfg");
    let cn = ConvNet::new(&parse_towers(&layers, "params-merge.cfg", two), opts).unwrap();
    assert_eq!(cn.towers(), if two { 2 } else { 1 });
    cn
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// fc1's gradient is `0.3 v + 0.7 v + 1.1 v` (`v` the gradient of `sum`). With na on
/// device 0 and nb, nc on device 1 the original computes `a + (b + c)`: nb and nc sum
/// theirs on device 1, which fc1 then adds to na's. On one device it is `(a + b) + c`.
#[test]
fn gradients_from_two_devices_are_summed_per_device_then_merged() {
    let run = |two: bool| {
        let mut cn = net("merge", two);
        cn.fprop(&batch(192, 32, 1), Pass::Train).unwrap();
        cn.bprop(Pass::Train).unwrap();
        let v = cn.acts_grad("sum").unwrap().data().to_vec();
        let g = cn.acts_grad("fc1").unwrap().data().to_vec();
        (v, g)
    };
    let (v2, g2) = run(true);
    let (v1, g1) = run(false);
    assert_eq!(bits(&v1), bits(&v2), "the gradient above the merge differs");
    let term = |c: f32| v2.iter().map(|&x| c * x).collect::<Vec<f32>>();
    let (a, b, c) = (term(0.3), term(0.7), term(1.1));
    let merged: Vec<f32> = (0..a.len()).map(|i| a[i] + (b[i] + c[i])).collect();
    let in_order: Vec<f32> = (0..a.len()).map(|i| (a[i] + b[i]) + c[i]).collect();
    assert_ne!(
        bits(&merged),
        bits(&in_order),
        "the test needs sums that differ"
    );
    assert_eq!(bits(&g2), bits(&merged), "two devices: a + (b + c)");
    assert_eq!(bits(&g1), bits(&in_order), "one device: (a + b) + c");
}

/// Which units a dropout layer zeroed in the last training fprop.
fn dropped(cn: &ConvNet, layer: &str) -> Vec<bool> {
    cn.acts(layer)
        .unwrap()
        .data()
        .iter()
        .map(|&x| x == 0.0)
        .collect()
}

/// hsa and hsb have the same shape. On two devices each draws from its device's
/// streams, seeded alike, so they drop the same units; on one device hsb draws after
/// hsa from the same streams.
#[test]
fn each_device_has_its_own_random_streams() {
    for two in [true, false] {
        let mut cn = net("hs", two);
        cn.fprop(&batch(192, 32, 1), Pass::Train).unwrap();
        let (a, b) = (dropped(&cn, "hsa"), dropped(&cn, "hsb"));
        let n = a.iter().filter(|&&d| d).count();
        assert!(
            n > a.len() / 4 && n < a.len() * 3 / 4,
            "{n} of {} dropped",
            a.len()
        );
        assert_eq!(a == b, two, "two devices: {two}");
    }
}
