//! Port of neuron.cuh (both generations) and the 2012 neuron.cu (`Neuron::makeNeuron`):
//! every neuron type's activation (`activate`) and input gradient
//! (`computeInputGrad`), as kernels over `f32` slices in memory order.
//!
//! Conventions of the original kept here:
//! - "acts" are the neuron's outputs `y`, "inputs" its inputs `x`; `g` is the incoming
//!   gradient (`actsGrad`, which holds **minus** the derivative of the cost).
//! - `compute_input_grad(.., add = false)` writes `target = op(g, ·)`; with
//!   `add = true` it computes `target + op(g, ·)` (2011 `AddGradientBinaryOperator`) or
//!   `op(g, ·) + target` (2012): the same value, and nvcc contracts the last product of
//!   `op` with the addition into one FFMA in both generations for every neuron but
//!   `softrelu` (whose branch keeps them apart) and `ident` (a plain add).
//! - `*_in_place` forms are the original's calls with `inputs == outputs`
//!   (activation computed in place, allowed unless the original asserts against it) or
//!   `target == actsGrad` (the memory optimiser shares the gradient buffer).
//!
//! Tiers: `ident`, `abs`, `relu`, `nrelu`, `brelu`, `square`, `linear` are **exact**
//! (plain single-precision operations; `sqrt` too in the forward direction, `sqrtf`
//! being IEEE-rounded). The others use `__expf`, `__logf` or `__fdividef` and are
//! **bounded**: our emulation of each intrinsic is correctly rounded
//! ([`crate::nvmatrix::intrinsics`]), the GPU's is within 2 ulp (`ex2.approx`,
//! `div.approx`) or 2^-22.6 (`lg2.approx`) of it, and that difference propagates
//! through the few operations that follow. The bounds stated on [`Neuron`]'s variants
//! are our results' worst errors against float64 mathematics on inputs in [-8, 8]
//! (tests/kernel_layers.rs, `tiers`); most of it is the original's own f32 rounding
//! (e.g. of `x * log2(e)` before `ex2`, which grows with |x|).

use super::{
    div_approx, div_approx_const, div_approx_parts, map_in_place, map_into, update2, update3,
};
use crate::config::value::{Dict, Value};
use crate::config::Generation;
use crate::cudaconv2::{require, ShapeError};
use crate::nvmatrix::intrinsics::{expf, fdividef, logf};
use std::fmt;

/// A neuron type with its parameters, as `Neuron::makeNeuron` builds it from the
/// layer's neuron dict. Parameters are the dict's Python floats rounded to `f32`
/// (`pyDictGetFloat`); derived constants are computed in `f32` on the host, as the
/// original's constructors do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Neuron {
    /// `ident` (both generations): `y = x`; grad `g`. Exact.
    Ident,
    /// `logistic` (both generations): `y = __fdividef(1, 1 + __expf(-x))`; grad `g*y*(1-y)`.
    /// Forward bounded (9 ulp of y), gradient exact given `y`.
    Logistic,
    /// `abs` (both generations): `y = x > 0 ? x : -x`; grad `g * (x > 0 ? 1 : -1)` (so −g at 0).
    /// Exact. Not in place.
    Abs,
    /// `relu` (both generations): `y = x < 0 ? 0 : x`; grad `g * (y > 0)`. Exact.
    Relu,
    /// `nrelu` (2012): relu, then `y = y + y*n` with `n ~ N(0,1)` (the relu output is
    /// used as the noise's standard deviation), then relu again; grad as relu on the
    /// final output (so the noise's dependence on `x` is ignored: with the noise
    /// frozen the derivative is `1 + n` on the active side, the code uses 1). The
    /// normal draws come in as a slice ([`Neuron::activate_noisy`]). `y + y*n` is one
    /// FFMA. Exact given the noise.
    NRelu,
    /// `softrelu` (both generations): `y = x > 4 ? x : __logf(1 + __expf(x))`; grad
    /// `v > 4 ? g : g * __fdividef(e, 1 + e)` with `e = __expf(v)`. Not in place.
    ///
    /// **2011 BUG, reproduced by default:** `v` is the neuron's *output* `y` (the code
    /// names it the input but passes the outputs), so for `y <= 4` the factor is
    /// `(1 + eˣ) / (2 + eˣ)` instead of `sigmoid(x)` (½ instead of 0 for very negative
    /// `x`). With `fix_grad = true` the 2011 neuron evaluates the same expression on the
    /// inputs, as the 2012 code does (the 2012 `SoftReluNeuron` passes `*_inputs`: the
    /// bug listed for "both" in INVENTORY §2 is fixed there; its parser table still says
    /// it uses acts, not inputs). `fix_grad` has no effect for the 2012 generation.
    /// Bounded: forward 3 ulp of `max(|y|, 1)` (`lg2`'s error is absolute), gradient
    /// 10 ulp.
    SoftRelu {
        /// Which original: the gradient's operand differs (see above).
        gen: Generation,
        /// Evaluate the 2011 gradient on the inputs (the 2012 behaviour).
        fix_grad: bool,
    },
    /// `square` (both generations): `y = x*x`; grad `2*g*x` (as `(g+g)*x`). Exact. Not in place.
    Square,
    /// `sqrt` (both generations): `y = sqrtf(x)`; grad `__fdividef(g, 2*y)`. Forward exact,
    /// gradient bounded (1.5 ulp).
    Sqrt,
    /// `tanh[a,b]` (both generations): `y = a*(__fdividef(2, 1 + __expf(-2b*x)) - 1)`. Gradient
    /// 2011: `t = (1 - __fdividef(y, a))/2`, `g * (-4ab) * (t*(t-1))`; 2012:
    /// `g * b * (a - __fdividef(y*y, a))` (same mathematics, other roundings).
    /// Bounded: forward within 3.5 ulp of `a` (absolute: cancellation near 0),
    /// gradient within 4 ulp of `g*a*b`.
    Tanh {
        /// Scale `a`.
        a: f32,
        /// Slope `b`.
        b: f32,
        /// Which gradient formula.
        gen: Generation,
    },
    /// `brelu[a]` (both generations): `y = x < 0 ? 0 : x > a ? a : x`; grad `g * (y > 0) * (y < a)`.
    /// Exact.
    BRelu {
        /// Upper bound `a`.
        a: f32,
    },
    /// `linear[a,b]` (both generations): `y = a*x + b` (one FMA); grad `g*a`. Exact.
    Linear {
        /// Slope `a`.
        a: f32,
        /// Offset `b`.
        b: f32,
    },
    /// `drelu[a]` (2012): `y = x - a*w`, `w = __fdividef(2, 1 + __expf(-2x/a)) - 1`
    /// (tanh(x/a)); grad `g * w²`. Bounded: forward within 2.5 ulp of `max(|x|, a)`,
    /// gradient within 7 ulp of `g`. Not in place.
    DRelu {
        /// `a`.
        a: f32,
    },
}

/// Which matrix a neuron's gradient reads besides the incoming gradient (what the C++
/// `_computeInputGrad` passes, which is not always what the parser table says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradOperand {
    /// Nothing (`ident`, `linear`).
    Nothing,
    /// The neuron's outputs (`*_outputs`).
    Acts,
    /// The neuron's inputs (`*_inputs`).
    Inputs,
}

/// `Neuron::makeNeuron` refused the dict (the original throws a string).
#[derive(Debug, Clone, PartialEq)]
pub struct NeuronError(pub String);

impl fmt::Display for NeuronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NeuronError {}

/// Where an activation goes: a separate output, or back into the input.
enum Dest<'a> {
    Out(&'a [f32], &'a mut [f32]),
    InPlace(&'a mut [f32]),
}

fn apply_fwd(dest: Dest<'_>, f: impl Fn(f32) -> f32 + Sync + Copy) {
    match dest {
        Dest::Out(i, o) => map_into(i, o, f),
        Dest::InPlace(d) => map_in_place(d, f),
    }
}

// Forward operators (one per neuron; the drivers above run them element-wise).

#[inline(always)]
fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

#[inline(always)]
fn logistic(x: f32) -> f32 {
    fdividef(1.0, 1.0 + expf(-x))
}

#[inline(always)]
fn abs(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        -x
    }
}

#[inline(always)]
fn brelu(a: f32, x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else if x > a {
        a
    } else {
        x
    }
}

/// `2/(1 + __expf(x*s)) - 1` (tanh of `-x*s/2`). ptxas computes the subtraction as
/// `FFMA(rcp, 2, -1)`, equal to this since `2*rcp` is exact.
#[inline(always)]
fn tanh_core(s: f32, x: f32) -> f32 {
    fdividef(2.0, 1.0 + expf(x * s)) - 1.0
}

#[inline(always)]
fn softrelu(x: f32) -> f32 {
    if x > 4.0 {
        x
    } else {
        logf(1.0 + expf(x))
    }
}

/// `x - a*w`: ptxas fuses it into `FFMA(-w, a, x)`.
#[inline(always)]
fn drelu(a: f32, n2a: f32, x: f32) -> f32 {
    (-tanh_core(n2a, x)).mul_add(a, x)
}

/// The 2012 `AddGaussianBinaryRandomizer<false>` on the relu output: `y + 1*y*n`,
/// compiled to `FFMA(y, n, y)`.
#[inline(always)]
fn nrelu(x: f32, n: f32) -> f32 {
    let y = relu(x);
    relu(y.mul_add(n, y))
}

/// Applies a gradient whose value is `p*q` for `(p, q) = terms(g, u)`: written as
/// `p*q`, or added to the target as `FFMA(p, q, t)` (`fused`) or `t + p*q`.
fn apply_grad(
    g: Option<&[f32]>,
    u: Option<&[f32]>,
    t: &mut [f32],
    add: bool,
    fused: bool,
    terms: impl Fn(f32, f32) -> (f32, f32) + Sync,
) {
    // One monomorphised loop per combination, so that no branch stays in the loop.
    fn run(
        g: Option<&[f32]>,
        u: Option<&[f32]>,
        t: &mut [f32],
        f: impl Fn(f32, f32, f32) -> f32 + Sync + Copy,
    ) {
        match u {
            Some(u) => update3(g, u, t, f),
            None => update2(g, t, move |g, t| f(g, 0.0, t)),
        }
    }
    let terms = &terms;
    match (add, fused) {
        (false, _) => run(g, u, t, |g, u, _| {
            let (p, q) = terms(g, u);
            p * q
        }),
        (true, true) => run(g, u, t, |g, u, t| {
            let (p, q) = terms(g, u);
            p.mul_add(q, t)
        }),
        (true, false) => run(g, u, t, |g, u, t| {
            let (p, q) = terms(g, u);
            t + p * q
        }),
    }
}

impl Neuron {
    /// `Neuron::makeNeuron` on a neuron type name and its parameters in spec order
    /// (`tanh[a,b]` → `[a, b]`). `nrelu` and `drelu` exist only in the 2012 code.
    pub fn new(gen: Generation, kind: &str, params: &[f32]) -> Result<Neuron, NeuronError> {
        let a12 = gen == Generation::A12;
        let want = match kind {
            "ident" | "logistic" | "abs" | "relu" | "softrelu" | "square" | "sqrt" => 0,
            "nrelu" if a12 => 0,
            "brelu" => 1,
            "drelu" if a12 => 1,
            "tanh" | "linear" => 2,
            _ => return Err(NeuronError(format!("Unknown neuron type: {kind}"))),
        };
        if params.len() != want {
            return Err(NeuronError(format!(
                "neuron {kind} takes {want} parameters, not {}",
                params.len()
            )));
        }
        let p = |i: usize| params[i];
        let n = match kind {
            "ident" => Neuron::Ident,
            "logistic" => Neuron::Logistic,
            "abs" => Neuron::Abs,
            "relu" => Neuron::Relu,
            "nrelu" => Neuron::NRelu,
            "softrelu" => Neuron::SoftRelu {
                gen,
                fix_grad: false,
            },
            "square" => Neuron::Square,
            "sqrt" => Neuron::Sqrt,
            "tanh" => Neuron::Tanh {
                a: p(0),
                b: p(1),
                gen,
            },
            "brelu" => Neuron::BRelu { a: p(0) },
            "linear" => Neuron::Linear { a: p(0), b: p(1) },
            _ => Neuron::DRelu { a: p(0) },
        };
        Ok(n)
    }

    /// `Neuron::makeNeuron(neuronDict)`: the dict the layer parser makes
    /// (`{'type': ..., 'params': {'a': ..., 'b': ...}, ...}`, see
    /// [`crate::config::specs::parse_neuron`]).
    pub fn from_dict(gen: Generation, d: &Dict) -> Result<Neuron, NeuronError> {
        let kind = d
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| NeuronError("neuron dict without a type".into()))?;
        let params = match d.get("params") {
            Some(Value::Dict(p)) => p,
            _ => return Err(NeuronError("neuron dict without params".into())),
        };
        let names: &[&str] = match kind {
            "tanh" | "linear" => &["a", "b"],
            "brelu" | "drelu" => &["a"],
            _ => &[],
        };
        let mut vals = Vec::new();
        for n in names {
            let v = params.get(*n).and_then(Value::as_f64).ok_or_else(|| {
                NeuronError(format!(
                    "neuron {kind}: parameter {n} missing or not a float"
                ))
            })?;
            vals.push(v as f32);
        }
        Neuron::new(gen, kind, &vals)
    }

    /// The original's type name (`neuronDict['type']`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Neuron::Ident => "ident",
            Neuron::Logistic => "logistic",
            Neuron::Abs => "abs",
            Neuron::Relu => "relu",
            Neuron::NRelu => "nrelu",
            Neuron::SoftRelu { .. } => "softrelu",
            Neuron::Square => "square",
            Neuron::Sqrt => "sqrt",
            Neuron::Tanh { .. } => "tanh",
            Neuron::BRelu { .. } => "brelu",
            Neuron::Linear { .. } => "linear",
            Neuron::DRelu { .. } => "drelu",
        }
    }

    /// `usesActs` of layer.py's `neuron_parsers` table (both generations agree).
    pub fn uses_acts(&self) -> bool {
        !matches!(
            self,
            Neuron::Ident | Neuron::Abs | Neuron::Square | Neuron::DRelu { .. }
        )
    }

    /// `usesInputs` of layer.py's `neuron_parsers` table.
    pub fn uses_inputs(&self) -> bool {
        matches!(self, Neuron::Abs | Neuron::Square | Neuron::DRelu { .. })
    }

    /// What the C++ gradient actually reads (differs from the parser table for
    /// `linear` (nothing) and for 2012 / fixed `softrelu` (inputs)).
    pub fn grad_operand(&self) -> GradOperand {
        match self {
            Neuron::Ident | Neuron::Linear { .. } => GradOperand::Nothing,
            Neuron::Abs | Neuron::Square | Neuron::DRelu { .. } => GradOperand::Inputs,
            Neuron::SoftRelu { gen, fix_grad } => {
                if *gen == Generation::A12 || *fix_grad {
                    GradOperand::Inputs
                } else {
                    GradOperand::Acts
                }
            }
            _ => GradOperand::Acts,
        }
    }

    /// Whether the activation needs normal noise ([`Neuron::activate_noisy`]).
    pub fn needs_noise(&self) -> bool {
        matches!(self, Neuron::NRelu)
    }

    /// Whether the original allows `inputs == outputs` (`abs`, `softrelu`, `square`
    /// and `drelu` assert against it).
    pub fn in_place_ok(&self) -> bool {
        !matches!(
            self,
            Neuron::Abs | Neuron::SoftRelu { .. } | Neuron::Square | Neuron::DRelu { .. }
        )
    }

    fn fwd(&self, dest: Dest<'_>) {
        match *self {
            Neuron::Ident => match dest {
                Dest::Out(i, o) => o.copy_from_slice(i),
                Dest::InPlace(_) => {}
            },
            Neuron::Logistic => apply_fwd(dest, logistic),
            Neuron::Abs => apply_fwd(dest, abs),
            Neuron::Relu => apply_fwd(dest, relu),
            Neuron::NRelu => unreachable!("nrelu goes through activate_noisy"),
            Neuron::SoftRelu { .. } => apply_fwd(dest, softrelu),
            Neuron::Square => apply_fwd(dest, |x| x * x),
            Neuron::Sqrt => apply_fwd(dest, f32::sqrt),
            Neuron::Tanh { a, b, .. } => {
                let n2b = -2.0 * b;
                apply_fwd(dest, move |x| a * tanh_core(n2b, x))
            }
            Neuron::BRelu { a } => apply_fwd(dest, move |x| brelu(a, x)),
            Neuron::Linear { a, b } => apply_fwd(dest, move |x| a.mul_add(x, b)),
            Neuron::DRelu { a } => {
                let n2a = -2.0 / a;
                apply_fwd(dest, move |x| drelu(a, n2a, x))
            }
        }
    }

    /// `Neuron::activate(inputs, outputs)` with separate matrices (same length, same
    /// memory order). `nrelu` needs [`Neuron::activate_noisy`].
    pub fn activate(&self, input: &[f32], output: &mut [f32]) -> Result<(), ShapeError> {
        require(
            input.len() == output.len(),
            "Neuron::activate",
            "outputs the size of inputs",
        )?;
        require(
            !self.needs_noise(),
            "NoisyReluNeuron::activate",
            "normal noise (activate_noisy)",
        )?;
        self.fwd(Dest::Out(input, output));
        Ok(())
    }

    /// `Neuron::activate(m, m)`: in place. `Err` where the original asserts
    /// `_inputs != _outputs` (`abs`, `softrelu`, `square`, `drelu`).
    pub fn activate_in_place(&self, data: &mut [f32]) -> Result<(), ShapeError> {
        require(
            self.in_place_ok(),
            "Neuron::activate",
            "_inputs != _outputs",
        )?;
        require(
            !self.needs_noise(),
            "NoisyReluNeuron::activate",
            "normal noise (activate_noisy)",
        )?;
        self.fwd(Dest::InPlace(data));
        Ok(())
    }

    /// `NoisyReluNeuron::activate` (2012): `noise[i]` is the `curand_normal` draw the
    /// original's `addGaussianNoise` uses for element `i` of the outputs (memory
    /// order; the random-number port produces it).
    pub fn activate_noisy(
        &self,
        input: &[f32],
        noise: &[f32],
        output: &mut [f32],
    ) -> Result<(), ShapeError> {
        require(
            self.needs_noise(),
            "Neuron::activate",
            "a noisy neuron (nrelu)",
        )?;
        require(
            input.len() == output.len() && noise.len() == output.len(),
            "NoisyReluNeuron::activate",
            "inputs, noise and outputs of one size",
        )?;
        update3(Some(input), noise, output, |x, n, _| nrelu(x, n));
        Ok(())
    }

    /// [`Neuron::activate_noisy`] in place (`inputs == outputs`).
    pub fn activate_noisy_in_place(
        &self,
        data: &mut [f32],
        noise: &[f32],
    ) -> Result<(), ShapeError> {
        require(
            self.needs_noise(),
            "Neuron::activate",
            "a noisy neuron (nrelu)",
        )?;
        require(
            noise.len() == data.len(),
            "NoisyReluNeuron::activate",
            "noise the size of the data",
        )?;
        update3(None, noise, data, |x, n, _| nrelu(x, n));
        Ok(())
    }

    fn grad(&self, g: Option<&[f32]>, u: &[f32], t: &mut [f32], add: bool) {
        let u = Some(u);
        match *self {
            Neuron::Ident => match (g, add) {
                (Some(g), false) => t.copy_from_slice(g),
                (Some(g), true) => update2(Some(g), t, |g, t| t + g),
                (None, _) => {} // target == actsGrad: nothing to do, also when adding
            },
            Neuron::Logistic => apply_grad(g, u, t, add, true, |g, y| (g * y, 1.0 - y)),
            Neuron::Abs => apply_grad(g, u, t, add, true, |g, x| {
                (g, if x > 0.0 { 1.0 } else { -1.0 })
            }),
            Neuron::Relu | Neuron::NRelu => {
                apply_grad(g, u, t, add, true, |g, y| (g, (y > 0.0) as u8 as f32))
            }
            Neuron::SoftRelu { .. } => apply_grad(g, u, t, add, false, |g, v| {
                if v > 4.0 {
                    (g, 1.0)
                } else {
                    let e = expf(v);
                    (g, div_approx(e, 1.0 + e))
                }
            }),
            // `g * 2.0f * x`: nvcc computes `g*2` as `g + g`.
            Neuron::Square => apply_grad(g, u, t, add, true, |g, x| (g + g, x)),
            // `__fdividef(g, 2*y)`: the product by the reciprocal is the one fused.
            Neuron::Sqrt => apply_grad(g, u, t, add, true, |g, y| {
                let (g, r) = div_approx_parts(g, y + y);
                (r, g)
            }),
            Neuron::Tanh {
                a,
                b,
                gen: Generation::C1,
            } => {
                let n4ab = -4.0 * a * b;
                let (s, r) = div_approx_const(a);
                apply_grad(g, u, t, add, true, move |g, y| {
                    // `1 - __fdividef(y, a)` becomes FFMA(rcp(a), -y, 1); `/2` a
                    // multiplication by 0.5.
                    let y = y * s;
                    let t = r.mul_add(-y, 1.0) * 0.5;
                    (g * n4ab, t * (t - 1.0))
                })
            }
            Neuron::Tanh {
                a,
                b,
                gen: Generation::A12,
            } => {
                let (s, r) = div_approx_const(a);
                apply_grad(g, u, t, add, true, move |g, y| {
                    // `a - __fdividef(y*y, a)` becomes FFMA(rcp(a), -(y*y), a).
                    (g * b, r.mul_add(-(y * y * s), a))
                })
            }
            Neuron::BRelu { a } => apply_grad(g, u, t, add, true, move |g, y| {
                (g * ((y > 0.0) as u8 as f32), (y < a) as u8 as f32)
            }),
            Neuron::Linear { a, .. } => apply_grad(g, None, t, add, true, move |g, _| (g, a)),
            Neuron::DRelu { a } => {
                let n2a = -2.0 / a;
                apply_grad(g, u, t, add, true, move |g, x| {
                    let w = tanh_core(n2a, x);
                    (g, w * w)
                })
            }
        }
    }

    fn check_grad(&self, n: usize, operand: &[f32], target: usize) -> Result<(), ShapeError> {
        require(
            target == n,
            "Neuron::computeInputGrad",
            "target the size of actsGrad",
        )?;
        require(
            self.grad_operand() == GradOperand::Nothing || operand.len() == n,
            "Neuron::computeInputGrad",
            "acts/inputs the size of actsGrad",
        )
    }

    /// `Neuron::computeInputGrad(actsGrad, target, add)`: `operand` is what
    /// [`Neuron::grad_operand`] names (the outputs or the inputs of the activation;
    /// ignored, may be empty, for [`GradOperand::Nothing`]). `add = false` overwrites
    /// `target` (the original resizes it like `actsGrad`: pass it at that size).
    pub fn compute_input_grad(
        &self,
        acts_grad: &[f32],
        operand: &[f32],
        target: &mut [f32],
        add: bool,
    ) -> Result<(), ShapeError> {
        self.check_grad(acts_grad.len(), operand, target.len())?;
        self.grad(Some(acts_grad), operand, target, add);
        Ok(())
    }

    /// `Neuron::computeInputGrad(actsGrad, actsGrad, add)`: the gradient buffer is also
    /// the target. (`ident` then does nothing, even with `add`.)
    pub fn compute_input_grad_in_place(
        &self,
        grad: &mut [f32],
        operand: &[f32],
        add: bool,
    ) -> Result<(), ShapeError> {
        self.check_grad(grad.len(), operand, grad.len())?;
        self.grad(None, operand, grad, add);
        Ok(())
    }
}
