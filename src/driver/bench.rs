//! `convnet --bench N` (ours, no original counterpart): training speed of a net on
//! synthetic data. One minibatch trains untimed (warm-up), then N minibatches are timed.
//! With `CONVNET_PROFILE=1` it also prints each layer's milliseconds per minibatch in
//! fprop, bprop and update, and the time outside the layers.

use super::Network;
use crate::net::NetError;
use crate::nvmatrix::NvMatrix;
use crate::synthetic::SplitMix64;
use std::time::Instant;

/// One synthetic minibatch: data matrix 0 uniform in `[-1, 1)`, matrix 1 labels in
/// `0..classes`, and each further matrix one-hot labels when it has `classes` rows
/// (uniform values otherwise); all `(dims, mini)` row-major.
pub fn synthetic_minibatch(dims: &[i64], classes: i64, mini: usize, seed: u64) -> Vec<NvMatrix> {
    let mut rng = SplitMix64::new(seed);
    let classes = classes.max(1) as u64;
    let labels: Vec<u64> = (0..mini).map(|_| rng.next_u64() % classes).collect();
    dims.iter()
        .enumerate()
        .map(|(i, &d)| {
            let d = d.max(1) as usize;
            let data: Vec<f32> = match i {
                1 => (0..d)
                    .flat_map(|_| labels.iter().map(|&l| l as f32))
                    .collect(),
                _ if i > 1 && d as u64 == classes => {
                    let mut m = vec![0f32; d * mini];
                    for (c, &l) in labels.iter().enumerate() {
                        m[l as usize * mini + c] = 1.0;
                    }
                    m
                }
                _ => (0..d * mini).map(|_| rng.uniform(-1.0, 1.0)).collect(),
            };
            NvMatrix::from_vec(d, mini, false, data)
        })
        .collect()
}

/// Trains one warm-up minibatch, then `n` timed ones; the report's last line is
/// `bench: <images/s> images/s`.
pub fn run(
    net: &mut dyn Network,
    dims: &[i64],
    classes: i64,
    mini: usize,
    n: usize,
    seed: u64,
) -> Result<Vec<String>, NetError> {
    let data = synthetic_minibatch(dims, classes, mini, seed);
    net.train_batch(&data, 0.0)?;
    let profiling = std::env::var("CONVNET_PROFILE").as_deref() == Ok("1");
    net.set_profiling(profiling);
    let t0 = Instant::now();
    for _ in 0..n {
        net.train_batch(&data, 0.0)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let images = (n * mini) as f64;
    let mut out = Vec::new();
    if profiling {
        let ms = |s: f64| 1e3 * s / n.max(1) as f64;
        let mut inside = 0.0;
        for (name, ty, [f, b, u]) in net.profile() {
            inside += f + b + u;
            out.push(format!(
                "profile: {name} ({ty}): fprop {:.2} ms, bprop {:.2} ms, update {:.2} ms",
                ms(f),
                ms(b),
                ms(u)
            ));
        }
        out.push(format!(
            "profile: outside the layers: {:.2} ms",
            ms(secs - inside)
        ));
    }
    out.push(format!(
        "bench: {n} minibatches of {mini} images in {secs:.3} s"
    ));
    out.push(format!("bench: {:.1} images/s", images / secs.max(1e-9)));
    Ok(out)
}
