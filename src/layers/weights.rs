//! Port of the update rule of `Weights::update` in weights.cuh (cuda-convnet 1) and
//! weights.cu (2012): momentum, weight decay and the step, in the original's order and
//! through the same NVMatrix operations. The `Weights` objects around it (gradient
//! matrices, sharing, update counts, the bprop-side scaling) belong to the layers.
//!
//! 2011: `inc = mom*inc + grad` (the gradient already carries `epsW/numCases`), then
//! `inc += (-wc*epsW) * W` when `wc > 0`, then `W += inc`; only when `epsW > 0`.
//! 2012: `inc = mom*inc + rate*grad` (the gradient carries `1/numCases`), then
//! `inc += float(-wc*rate) * W` when `wc > 0`, then `W += inc`; only when the
//! schedule's base rate is positive. `rate` is `getRate(progress)`, called at each use
//! as the original does, so a noisy schedule draws twice per update.
//!
//! 2012 with `superEps > 0` (the half-finished "super momentum" path) replaces the
//! first step: running averages `G = mom*G + (1-mom)*grad` and `G2 = mom*G2 +
//! (1-mom)*grad²`, then `inc = 0.9*inc + rate*grad/sqrt(G2 - G + superEps)` (kernel
//! `superMomUpdate`: the momentum is the literal 0.9, in double; `G` stands where `G²`
//! was meant; the layer's `superMom` is never read), then decay and step as above.
//!
//! Each `add` is NVMatrix's: `add(b, mom, s)` is `fma(mom, inc, s*b)`, `add(b, s)` is
//! `add(b, 1, s)`, and `add(b)` a plain sum. Tier: exact.

use super::lr::{GlibcRandom, Schedule};
use crate::cudaconv2::{require, ShapeError};
use crate::nvmatrix::intrinsics::fdividef;
use crate::nvmatrix::NvMatrix;

fn check(
    function: &'static str,
    w: &NvMatrix,
    inc: &NvMatrix,
    grad: Option<&NvMatrix>,
) -> Result<(), ShapeError> {
    require(
        w.same_dims(inc),
        function,
        "weights and increments of the same shape",
    )?;
    require(
        grad.is_none_or(|g| g.same_dims(w)),
        function,
        "gradient of the weights' shape",
    )
}

/// 2011 `Weights::update()` of an owner: `grad` is the separate gradient matrix of
/// `useGrad` weights (conv weights, biases), `None` for fc and local weights, whose
/// bprop accumulated straight into `inc`.
pub fn update_2011(
    w: &mut NvMatrix,
    inc: &mut NvMatrix,
    grad: Option<&NvMatrix>,
    mom: f32,
    wc: f32,
    eps_w: f32,
) -> Result<(), ShapeError> {
    check("Weights::update", w, inc, grad)?;
    if eps_w <= 0.0 {
        return Ok(());
    }
    if let Some(g) = grad {
        inc.add(g, mom, 1.0)?;
    }
    if wc > 0.0 {
        inc.add(w, 1.0, -wc * eps_w)?;
    }
    w.add(inc, 1.0, 1.0)
}

/// The state of the 2012 "super momentum" update (`superEps > 0`): `superEps` and the
/// running averages `_weightsGradAvg` (`G`) and `_weightsGrad2Avg` (`G2`), created
/// empty and zeroed at their first use.
#[derive(Clone, Debug, Default)]
pub struct SuperMomentum {
    pub super_eps: f32,
    pub g: NvMatrix,
    pub g2: NvMatrix,
}

impl SuperMomentum {
    /// The averages' update and `superMomUpdate` into `inc` (see the module doc).
    /// Bounded (`__fdividef`; the square root is IEEE).
    fn step(
        &mut self,
        inc: &mut NvMatrix,
        grad: &NvMatrix,
        mom: f32,
        rate: f32,
    ) -> Result<(), ShapeError> {
        if !self.g.same_dims(grad) {
            self.g = NvMatrix::like(grad);
            self.g2 = NvMatrix::like(grad);
        }
        self.g.add(grad, mom, 1.0 - mom)?;
        // Grad2AvgOperator: `mom*G2 + (1-mom)*g*g`, the first product fused.
        self.g2
            .apply_binary(|g2: f32, g: f32| g2.mul_add(mom, (1.0 - mom) * g * g), grad)?;
        require(
            [&self.g, &self.g2]
                .iter()
                .all(|m| m.same_dims(inc) && m.is_trans() == inc.is_trans())
                && grad.is_trans() == inc.is_trans(),
            "Weights::update",
            "gradient, averages and increments of the same shape and orientation",
        )?;
        let eps = self.super_eps;
        let (g, ga, g2) = (grad.data(), self.g.data(), self.g2.data());
        for (k, v) in inc.data_mut().iter_mut().enumerate() {
            let q = fdividef(g[k], ((g2[k] - ga[k]) + eps).sqrt());
            // `0.9 * V + eps * q`: a double FMA, rounded to float once.
            *v = (*v as f64).mul_add(0.9, (q * rate) as f64) as f32;
        }
        Ok(())
    }
}

/// 2012 `Weights::update(progress)` of an owner; `grad` as for [`update_2011`],
/// `super_mom` the state of the `superEps > 0` path (then `grad` must be given: the
/// original asserts `superEps > 0 => useGrad`). `rng` is the process's libc
/// `random()` state the schedule's noise draws from.
#[allow(clippy::too_many_arguments)]
pub fn update_2012(
    w: &mut NvMatrix,
    inc: &mut NvMatrix,
    grad: Option<&NvMatrix>,
    super_mom: Option<&mut SuperMomentum>,
    mom: f32,
    wc: f32,
    schedule: &mut Schedule,
    rng: &mut GlibcRandom,
    progress: f32,
) -> Result<(), ShapeError> {
    check("Weights::update", w, inc, grad)?;
    if schedule.base_rate() <= 0.0 {
        return Ok(());
    }
    match (grad, super_mom) {
        (Some(g), Some(sm)) => {
            let rate = schedule.rate(progress as f64, rng) as f32;
            sm.step(inc, g, mom, rate)?;
        }
        (None, Some(_)) => {
            return Err(ShapeError {
                function: "Weights::update",
                condition: "superEps <= 0 || useGrad".into(),
            })
        }
        (Some(g), None) => {
            let rate = schedule.rate(progress as f64, rng) as f32;
            inc.add(g, mom, rate)?;
        }
        (None, None) => {}
    }
    if wc > 0.0 {
        let scale = (-(wc as f64) * schedule.rate(progress as f64, rng)) as f32;
        inc.add(w, 1.0, scale)?;
    }
    w.add(inc, 1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::specs::{parse_param_spec, ParamTable};
    use crate::synthetic::uniform;

    fn m(seed: u64) -> NvMatrix {
        NvMatrix::from_vec(7, 5, false, uniform(seed, 35, -1.0, 1.0))
    }

    #[test]
    fn the_2011_rule_in_the_originals_operations() {
        let (mut w, mut inc, g) = (m(1), m(2), m(3));
        let (w0, inc0) = (w.clone(), inc.clone());
        let (mom, wc, eps) = (0.9f32, 0.004f32, 0.001f32);
        update_2011(&mut w, &mut inc, Some(&g), mom, wc, eps).unwrap();
        for i in 0..35 {
            let i1 = mom.mul_add(inc0.data()[i], 1.0 * g.data()[i]);
            let i2 = 1f32.mul_add(i1, (-wc * eps) * w0.data()[i]);
            assert_eq!(inc.data()[i].to_bits(), i2.to_bits());
            assert_eq!(w.data()[i].to_bits(), (w0.data()[i] + i2).to_bits());
        }
        // epsW = 0: nothing moves.
        let (w1, inc1) = (w.clone(), inc.clone());
        update_2011(&mut w, &mut inc, Some(&g), mom, wc, 0.0).unwrap();
        assert_eq!((w, inc), (w1, inc1));
    }

    #[test]
    fn the_2012_rule_draws_the_rate_at_each_use() {
        let spec = parse_param_spec(ParamTable::Schedule, "linear[tgtFactor=10,noiseStdev=0.3]")
            .ok()
            .unwrap();
        let mut s = Schedule::from_spec(&spec, 0.01).unwrap();
        let (mut rng, mut twin_rng) = (GlibcRandom::new(3), GlibcRandom::new(3));
        let mut twin = s.clone();
        let (mut w, mut inc, g) = (m(4), m(5), m(6));
        let (w0, inc0) = (w.clone(), inc.clone());
        update_2012(
            &mut w,
            &mut inc,
            Some(&g),
            None,
            0.9,
            0.0005,
            &mut s,
            &mut rng,
            0.25,
        )
        .unwrap();
        let r1 = twin.rate(0.25, &mut twin_rng) as f32;
        let r2 = (-(0.0005f32 as f64) * twin.rate(0.25, &mut twin_rng)) as f32;
        assert_ne!(r1, -r2 / 0.0005, "the two draws differ");
        for i in 0..35 {
            let i1 = 0.9f32.mul_add(inc0.data()[i], r1 * g.data()[i]);
            let i2 = 1f32.mul_add(i1, r2 * w0.data()[i]);
            assert_eq!(inc.data()[i].to_bits(), i2.to_bits());
            assert_eq!(w.data()[i].to_bits(), (w0.data()[i] + i2).to_bits());
        }
    }

    #[test]
    fn shapes_must_agree() {
        let (mut w, mut inc) = (m(1), NvMatrix::new(5, 7, false));
        assert!(update_2011(&mut w, &mut inc, None, 0.9, 0.0, 0.1).is_err());
    }
}
