//! Port of the 2012 code's lr.cu / lr.cuh: the learning-rate schedules `default`,
//! `linear`, `exp`, `dexp` and `jdexp`, computed in double precision on the host, with
//! their optional multiplicative noise drawn from libc `random()` (ported below as
//! glibc's generator, so a seed gives the original's sequence).
//!
//! `TanhLRS` exists in the original but `make` never builds it (INVENTORY §13); it is not
//! ported. cuda-convnet 1 has no schedules: its rates are the constant `epsW`/`epsB`.

use crate::config::value::{Dict, Value};

/// glibc's `random()` (the TYPE_3 additive feedback generator that `srandom(seed)`
/// sets up), the generator behind the original's `random()` calls.
#[derive(Clone, Debug)]
pub struct GlibcRandom {
    r: [u32; 34],
    i: usize,
}

impl GlibcRandom {
    /// `srandom(seed)` (glibc uses 1 for a seed of 0).
    pub fn new(seed: u32) -> GlibcRandom {
        let mut r = [0u32; 34];
        let mut word = if seed == 0 { 1i64 } else { seed as i32 as i64 };
        r[0] = word as u32;
        for slot in r.iter_mut().take(31).skip(1) {
            // 16807 * word mod (2^31 - 1), by Schrage's method as glibc computes it.
            let (hi, lo) = (word / 127_773, word % 127_773);
            word = 16_807 * lo - 2_836 * hi;
            if word < 0 {
                word += 2_147_483_647;
            }
            *slot = word as u32;
        }
        let mut g = GlibcRandom { r, i: 0 };
        // The ring holds the last 34 values; glibc discards the first 310 outputs.
        for k in 31..34 {
            g.r[k] = g.r[k - 31];
        }
        g.i = 34;
        for _ in 0..310 {
            g.step();
        }
        g
    }

    fn step(&mut self) -> u32 {
        let at = |k: usize| self.r[k % 34];
        let v = at(self.i + 34 - 31).wrapping_add(at(self.i + 34 - 3));
        self.r[self.i % 34] = v;
        self.i += 1;
        v
    }

    /// `random()`: 31 random bits.
    pub fn random(&mut self) -> u32 {
        self.step() >> 1
    }
}

/// Which schedule, with what it precomputes.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// `default`: the base rate.
    Default,
    /// `linear`: from the base rate to `base/tgtFactor`.
    Linear { final_rate: f64 },
    /// `exp`: `base^(1 + progress*pow)`.
    Exp { pow: f64 },
    /// `dexp`: `numSteps` discrete rates of the exp schedule.
    Discrete { rates: Vec<f64> },
    /// `jdexp`: as dexp, but in the second half of an interval (between 20% and 90% of
    /// training) the geometric mean of this and the previous rate.
    Jumpy { rates: Vec<f64> },
}

/// A learning-rate schedule (`LearningRateSchedule` and subclasses).
#[derive(Clone, Debug)]
pub struct Schedule {
    base: f64,
    noise_stdev: f64,
    kind: Kind,
    randn_spare: Option<f64>,
}

fn exp_pow(base: f64, tgt_factor: f64) -> f64 {
    if base == 0.0 {
        1.0
    } else {
        (base / tgt_factor).ln() / base.ln() - 1.0
    }
}

impl Schedule {
    /// `LearningRateSchedule::make(dict, baseRate)` from a parsed schedule spec
    /// (`{type, params}` as `config::specs::parse_param_spec` gives).
    pub fn from_spec(spec: &Dict, base: f64) -> Result<Schedule, String> {
        let ty = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let params = match spec.get("params") {
            Some(Value::Dict(d)) => Some(d),
            _ => None,
        };
        let num = |k: &str| -> Result<f64, String> {
            params
                .and_then(|p| p.get(k))
                .and_then(Value::as_f64)
                .ok_or_else(|| format!("learning-rate schedule {ty}: no parameter {k}"))
        };
        if ty == "default" {
            return Ok(Schedule {
                base,
                noise_stdev: 0.0,
                kind: Kind::Default,
                randn_spare: None,
            });
        }
        let (tgt, noise) = (num("tgtFactor")?, num("noiseStdev")?);
        let discrete = || -> Result<Vec<f64>, String> {
            // numSteps is read as an int and the rates come from an exp schedule.
            let steps = num("numSteps")? as i64;
            let pow = exp_pow(base, tgt);
            let mut rates: Vec<f64> = (0..(steps - 1).max(0))
                .map(|i| base.powf(1.0 + (i as f64 / (steps - 1) as f64) * pow))
                .collect();
            rates.push(base / tgt);
            Ok(rates)
        };
        let kind = match ty {
            "linear" => Kind::Linear {
                final_rate: base / tgt,
            },
            "exp" => Kind::Exp {
                pow: exp_pow(base, tgt),
            },
            "dexp" => Kind::Discrete { rates: discrete()? },
            "jdexp" => Kind::Jumpy { rates: discrete()? },
            _ => return Err(format!("Unknown learning rate schedule type {ty}")),
        };
        Ok(Schedule {
            base,
            noise_stdev: noise,
            kind,
            randn_spare: None,
        })
    }

    /// `getBaseRate()`.
    pub fn base_rate(&self) -> f64 {
        self.base
    }

    /// The rate without noise at `progress` (fraction of training done).
    fn rate_at(&self, progress: f64) -> f64 {
        let interval = |rates: &[f64]| {
            (0..rates.len()).find(|&i| progress <= (i + 1) as f64 / rates.len() as f64)
        };
        match &self.kind {
            Kind::Default => self.base,
            Kind::Linear { final_rate } => self.base * (1.0 - progress) + final_rate * progress,
            Kind::Exp { pow } => self.base.powf(1.0 + progress * pow),
            Kind::Discrete { rates } => {
                interval(rates).map_or(rates[rates.len() - 1], |i| rates[i])
            }
            Kind::Jumpy { rates } => {
                let i = interval(rates).unwrap_or(0);
                let mid = (i as f64 + 0.5) / rates.len() as f64;
                let jump = i > 0 && progress > 0.2 && progress < 0.9 && progress > mid;
                if jump {
                    (rates[i] * rates[i - 1]).sqrt()
                } else {
                    rates[i]
                }
            }
        }
    }

    /// `getRate(progress)`: with noise, `rate * (1 + |randn| * noiseStdev)`, the normal
    /// draw by Box-Muller over `(1 + random()) / 2^31` (the original's `rand()`) with
    /// its spare value kept for the next call.
    pub fn rate(&mut self, progress: f64, rng: &mut GlibcRandom) -> f64 {
        let r = self.rate_at(progress);
        if self.noise_stdev > 0.0 {
            r * (1.0 + self.randn(rng).abs() * self.noise_stdev)
        } else {
            r
        }
    }

    fn randn(&mut self, rng: &mut GlibcRandom) -> f64 {
        if let Some(s) = self.randn_spare.take() {
            return s;
        }
        let mut uniform = || (1.0 + rng.random() as f64) / 2_147_483_648.0;
        // The original writes 2 * 3.1415 for 2*pi.
        #[allow(clippy::approx_constant)]
        let t = 2.0 * 3.1415 * uniform();
        let r = (-2.0 * uniform().ln()).sqrt();
        self.randn_spare = Some(r * t.sin());
        r * t.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::specs::{parse_param_spec, ParamTable};

    fn schedule(spec: &str, base: f64) -> Schedule {
        Schedule::from_spec(
            &parse_param_spec(ParamTable::Schedule, spec).ok().unwrap(),
            base,
        )
        .unwrap()
    }

    #[test]
    fn glibc_random_matches_its_published_sequence() {
        // glibc: srandom(1); the first random() values.
        let mut g = GlibcRandom::new(1);
        let first: Vec<u32> = (0..5).map(|_| g.random()).collect();
        assert_eq!(
            first,
            [1804289383, 846930886, 1681692777, 1714636915, 1957747793]
        );
    }

    #[test]
    fn schedules_follow_the_formulas() {
        let mut rng = GlibcRandom::new(1);
        let mut lin = schedule("linear[tgtFactor=10,noiseStdev=0]", 0.01);
        assert_eq!(lin.rate(0.5, &mut rng), 0.01 * 0.5 + 0.001 * 0.5);
        let mut exp = schedule("exp[tgtFactor=100,noiseStdev=0]", 0.01);
        assert!((exp.rate(0.5, &mut rng) - 0.001).abs() < 1e-15);
        let mut d = schedule("dexp[tgtFactor=100,noiseStdev=0,numSteps=3]", 0.01);
        let rates: Vec<f64> = [0.0, 0.3, 0.5, 0.9, 1.0]
            .iter()
            .map(|&p| d.rate(p, &mut rng))
            .collect();
        assert!(
            (rates[0] - 0.01).abs() < 1e-15
                && (rates[2] - 0.001).abs() < 1e-15
                && rates[4] == 0.0001
        );
        assert_eq!(rates[0], rates[1]);
        let mut j = schedule("jdexp[tgtFactor=100,noiseStdev=0,numSteps=3]", 0.01);
        // Second interval (1/3, 2/3], past its midpoint 0.5: geometric mean of 1e-2 and 1e-3.
        assert!((j.rate(0.6, &mut rng) - (0.01f64 * 0.001).sqrt()).abs() < 1e-15);
        assert!((j.rate(0.4, &mut rng) - 0.001).abs() < 1e-15);
        let mut def = schedule("default", 0.5);
        assert_eq!(def.rate(0.7, &mut rng), 0.5);
    }

    #[test]
    fn noise_only_raises_the_rate() {
        let mut rng = GlibcRandom::new(7);
        let mut s = schedule("linear[tgtFactor=1,noiseStdev=0.5]", 0.1);
        for _ in 0..100 {
            let r = s.rate(0.3, &mut rng);
            assert!(r >= 0.1);
        }
    }
}
