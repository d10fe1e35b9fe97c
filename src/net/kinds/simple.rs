//! Port of layer.cu's `SoftmaxLayer`, `EltwiseSumLayer`, `EltwiseMaxLayer` and
//! `NeuronLayer` (both generations), and the 2012 `HiddenSexLayer` (`hs`, dropout)
//! and `ConcatenationLayer`.

use super::super::dict::LayerDict;
use super::super::layer::{Io, Rt};
use super::super::{NetError, Pass};
use crate::config::value::Value;
use crate::config::Generation;
use crate::layers::kernels;
use crate::layers::neuron::{GradOperand, Neuron};
use crate::nvmatrix::ops::unary::Exp;
use crate::nvmatrix::{Aggregator, Max, NvMatrix};

pub enum SimpleLayer {
    /// `fused`: the labels buffer and `coeff` of a lone `cost.logreg` consumer, whose
    /// gradient this layer then computes (`computeLogregSoftmaxGrad`).
    Softmax {
        fused: Option<(usize, f32)>,
    },
    EltSum {
        coeffs: Vec<f32>,
    },
    EltMax,
    /// `crossent2`: 2012, a logistic layer whose only consumer is a `cost.crossent2`
    /// on the same GPU: that layer's labels buffer and `coeff`; the gradient is then
    /// computed here in one go (`coeff * (t - y)`).
    Neuron {
        neuron: Neuron,
        noise: NvMatrix,
        crossent2: Option<(usize, f32)>,
    },
    /// 2012 `hs`: keep probability, `enable`, and the last mask.
    Hs {
        keep: f32,
        enable: bool,
        mask: NvMatrix,
    },
    /// 2012 `concat`: each input's first row in the output.
    Concat {
        offsets: Vec<usize>,
    },
}

fn neuron_err(e: impl std::fmt::Display) -> NetError {
    NetError {
        layer: None,
        message: e.to_string(),
    }
}

impl SimpleLayer {
    pub fn new(d: &LayerDict, gen: Generation) -> Result<Option<SimpleLayer>, NetError> {
        Ok(Some(match d.str("type")? {
            "softmax" => SimpleLayer::Softmax { fused: None },
            "eltsum" => SimpleLayer::EltSum {
                coeffs: d.floats("coeffs")?,
            },
            "eltmax" => SimpleLayer::EltMax,
            "neuron" => {
                let nd = match d.d.get("neuron") {
                    Some(Value::Dict(nd)) => nd,
                    _ => return Err(d.err("the neuron layer has no neuron dict")),
                };
                SimpleLayer::Neuron {
                    neuron: Neuron::from_dict(gen, nd).map_err(|e| d.err(e.to_string()))?,
                    noise: NvMatrix::default(),
                    crossent2: None,
                }
            }
            "hs" if gen == Generation::A12 => SimpleLayer::Hs {
                keep: d.float("keep")?,
                enable: d.bool("enable")?,
                mask: NvMatrix::default(),
            },
            "concat" if gen == Generation::A12 => SimpleLayer::Concat {
                offsets: d.usizes("copyOffsets")?,
            },
            _ => return Ok(None),
        }))
    }

    /// `_trans` of the type.
    pub fn trans(&self) -> bool {
        matches!(
            self,
            SimpleLayer::Softmax { .. } | SimpleLayer::Neuron { .. }
        )
    }

    pub fn fprop_acts(
        &mut self,
        io: &Io,
        i: usize,
        scale: f32,
        rt: &mut Rt,
    ) -> Result<(), NetError> {
        match self {
            SimpleLayer::Softmax { .. } => {
                let x = io.input(0);
                let mut a = io.acts_mut();
                let mut max = NvMatrix::default();
                x.max(1, &mut max)?;
                x.add_vector_to(&max, -1.0, &mut a)?;
                a.apply(Exp);
                let mut sum = NvMatrix::default();
                a.sum(1, &mut sum)?;
                a.eltwise_divide_by_vector(&sum)?;
            }
            SimpleLayer::EltSum { coeffs } => {
                let c = coeffs[i];
                if io.acts_in_place(i) {
                    // scale(c, getActs()) on its own matrix (scaleTargets is 0 here).
                    io.acts_mut().scale(c);
                } else if scale == 0.0 {
                    io.input(i).scale_to(c, &mut io.acts_mut());
                } else {
                    io.acts_mut().add(&io.input(i), 1.0, c)?;
                }
            }
            SimpleLayer::EltMax => {
                let max = |a: f32, b: f32| Max.agg(a, b);
                if i == 1 {
                    io.input(1)
                        .apply_binary_to(max, &io.input(0), &mut io.acts_mut())?;
                } else if i > 1 {
                    io.acts_mut().apply_binary(max, &io.input(i))?;
                }
            }
            SimpleLayer::Neuron { neuron, noise, .. } => {
                let in_place = io.acts_in_place(0);
                if neuron.needs_noise() {
                    let n = if in_place {
                        io.acts().len()
                    } else {
                        io.input(0).len()
                    };
                    noise.resize(1, n);
                    noise.randomize_gaussian(rt.rnd, 0.0, 1.0);
                }
                if in_place {
                    let mut a = io.acts_mut();
                    if neuron.needs_noise() {
                        neuron.activate_noisy_in_place(a.data_mut(), noise.data())?;
                    } else {
                        neuron.activate_in_place(a.data_mut())?;
                    }
                } else {
                    let x = io.input(0);
                    let mut a = io.acts_mut();
                    if !a.same_dims(&x) || a.is_trans() != x.is_trans() {
                        a.resize_like(&x);
                    }
                    if neuron.needs_noise() {
                        neuron.activate_noisy(x.data(), noise.data(), a.data_mut())?;
                    } else {
                        neuron.activate(x.data(), a.data_mut())?;
                    }
                }
            }
            SimpleLayer::Hs { keep, enable, mask } => {
                let x = io.input_while_writing_acts(0);
                let mut a = io.acts_mut();
                if rt.pass == Pass::Train && *enable {
                    mask.resize_like(&x);
                    rt.device.randomize_uniform(rt.rnd, mask)?;
                    mask.smaller_than_scalar(*keep);
                    x.eltwise_mult_to(mask, &mut a)?;
                } else {
                    x.scale_to(*keep, &mut a);
                }
            }
            SimpleLayer::Concat { offsets } => {
                let x = io.input(i);
                let mut a = io.acts_mut();
                if i == 0 {
                    let rows: usize = offsets.last().copied().unwrap_or(0)
                        + io.bufs.acts[*io.in_acts.last().unwrap()].borrow().rows();
                    a.resize(rows, x.cols());
                }
                let (r0, cols) = (offsets[i], x.cols());
                for r in 0..x.rows() {
                    for c in 0..cols {
                        let v = x.get(r, c);
                        a.set(r0 + r, c, v);
                    }
                }
            }
        }
        Ok(())
    }

    pub fn bprop_acts(
        &mut self,
        io: &Io,
        i: usize,
        scale: f32,
        rt: &mut Rt,
    ) -> Result<(), NetError> {
        let add = scale != 0.0;
        match self {
            SimpleLayer::Softmax { fused } => {
                let a = io.acts();
                let (num_out, cases) = (a.cols(), a.rows());
                let mut target = io.prev_grad_mut(0);
                if !add {
                    target.resize_like(&a);
                }
                match fused {
                    Some((labels, coeff)) => {
                        let labels = io.bufs.acts[*labels].borrow();
                        kernels::logreg_softmax_grad(
                            labels.data(),
                            a.data(),
                            num_out,
                            cases,
                            target.data_mut(),
                            add,
                            *coeff,
                        )?
                    }
                    None => kernels::softmax_grad(
                        a.data(),
                        io.v().data(),
                        num_out,
                        cases,
                        target.data_mut(),
                        add,
                    )?,
                }
            }
            SimpleLayer::EltSum { coeffs } => {
                let c = coeffs[i];
                if io.grad_in_place(i) {
                    io.v_mut().scale(c);
                } else if !add {
                    io.v().scale_to(c, &mut io.prev_grad_mut(i));
                } else {
                    io.prev_grad_mut(i).add(&io.v(), scale, c)?;
                }
            }
            SimpleLayer::EltMax => {
                let (v, x, a) = (io.v(), io.input(i), io.acts());
                let mut target = io.prev_grad_mut(i);
                if !add {
                    target.resize_like(&v);
                }
                kernels::eltwise_max_grad(v.data(), x.data(), a.data(), target.data_mut(), add)?;
            }
            SimpleLayer::Neuron {
                crossent2: Some((labels, coeff)),
                ..
            } => {
                // `acts.add(labels, -coeff, coeff, target)`, or that plus the target.
                let (labels, a) = (io.bufs.acts[*labels].borrow(), io.acts());
                let mut target = io.prev_grad_mut(0);
                if !add {
                    target.resize_like(&a);
                }
                kernels::logistic_cross_ent2_grad(
                    labels.data(),
                    a.data(),
                    target.data_mut(),
                    add,
                    *coeff,
                )?;
            }
            SimpleLayer::Neuron { neuron, .. } => {
                // Activations only: no gradient write touches them.
                let operand = match neuron.grad_operand() {
                    GradOperand::Nothing => None,
                    GradOperand::Acts => Some(io.acts()),
                    GradOperand::Inputs => Some(io.input(0)),
                };
                let operand = operand.as_ref().map_or(&[][..], |m| m.data());
                if io.grad_in_place(0) {
                    neuron
                        .compute_input_grad_in_place(io.v_mut().data_mut(), operand, add)
                        .map_err(neuron_err)?;
                } else {
                    let v = io.v();
                    let mut target = io.prev_grad_mut(0);
                    if !add {
                        target.resize_like(&v);
                    }
                    neuron.compute_input_grad(v.data(), operand, target.data_mut(), add)?;
                }
            }
            SimpleLayer::Hs { keep, enable, mask } => {
                // `eltwiseMult` / `scale` into the gradient, or with `AddGradient*Operator`
                // `op(v, ·) + target`, which nvcc contracts into one FMA.
                let v = io.v_while_writing_grad(0);
                let mut target = io.prev_grad_mut(0);
                let train = rt.pass == Pass::Train && *enable;
                if !add {
                    target.resize_like(&v);
                }
                let t = target.data_mut();
                let (vd, md) = (v.data(), mask.data());
                for k in 0..t.len() {
                    let f = if train { md[k] } else { *keep };
                    t[k] = if add {
                        vd[k].mul_add(f, t[k])
                    } else {
                        vd[k] * f
                    };
                }
            }
            SimpleLayer::Concat { offsets } => {
                let v = io.v();
                let mut target = io.prev_grad_mut(i);
                let rows = io.input(i).rows();
                let mut part = NvMatrix::default();
                v.slice_rows(offsets[i], Some(offsets[i] + rows), &mut part)?;
                if add {
                    target.add(&part, 1.0, 1.0)?;
                } else {
                    *target = part;
                }
            }
        }
        Ok(())
    }
}
