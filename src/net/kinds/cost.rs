//! Port of layer.cu's `CostLayer`, `LogregCostLayer` and `SumOfSquaresCostLayer`
//! (both generations; the 2012 logreg adds the top-k error): the cost values of the
//! last fprop (`_costv`, sums over the cases) and the gradients they start.

use super::super::dict::LayerDict;
use super::super::layer::{Io, Rt};
use super::super::NetError;
use crate::config::Generation;
use crate::layers::kernels;
use crate::nvmatrix::ops::unary::Square;
use crate::nvmatrix::NvMatrix;

pub enum CostType {
    /// `do_work`: the gradient is this layer's (not fused into a softmax below).
    Logreg {
        topk: usize,
        do_work: bool,
    },
    Sum2,
}

pub struct CostLayer {
    pub coeff: f32,
    pub ty: CostType,
    /// `_costv`.
    pub costv: Vec<f64>,
}

impl CostLayer {
    pub fn new(d: &LayerDict, gen: Generation) -> Result<CostLayer, NetError> {
        let ty = match d.str("type")? {
            "cost.logreg" => CostType::Logreg {
                topk: if gen == Generation::A12 && d.has("topk") {
                    d.usize("topk")?
                } else {
                    1
                },
                do_work: true,
            },
            "cost.sum2" => CostType::Sum2,
            other => return Err(d.err(format!("Unknown cost layer type {other}"))),
        };
        Ok(CostLayer {
            coeff: d.float("coeff")?,
            ty,
            costv: Vec::new(),
        })
    }

    pub fn fprop_acts(&mut self, io: &Io, i: usize, rt: &mut Rt) -> Result<(), NetError> {
        match self.ty {
            CostType::Logreg { topk, .. } => {
                // The layer uses both inputs together, on input 0.
                if i != 0 {
                    return Ok(());
                }
                let (labels, probs) = (io.input(0), io.input(1));
                let (num_out, cases) = (probs.rows(), probs.cols());
                let mut logp = io.acts_mut();
                logp.resize(1, cases);
                let mut correct = NvMatrix::new(1, cases, false);
                let n = labels.len() as f32;
                if rt.gen == Generation::C1 {
                    kernels::compute_logreg_cost(
                        labels.data(),
                        probs.data(),
                        num_out,
                        cases,
                        logp.data_mut(),
                        correct.data_mut(),
                    )?;
                    self.costv = vec![-logp.sum_all() as f64, (n - correct.sum_all()) as f64];
                } else {
                    let mut top = NvMatrix::new(1, cases, false);
                    if topk > 1 {
                        let p = probs.data();
                        kernels::compute_multi_softmax_cost(
                            labels.data(),
                            p,
                            p,
                            num_out,
                            cases,
                            topk,
                            false,
                            logp.data_mut(),
                            correct.data_mut(),
                            top.data_mut(),
                        )?;
                    } else {
                        kernels::compute_logreg_cost(
                            labels.data(),
                            probs.data(),
                            num_out,
                            cases,
                            logp.data_mut(),
                            correct.data_mut(),
                        )?;
                        top = correct.clone();
                    }
                    self.costv = vec![
                        -logp.sum_all() as f64,
                        (n - correct.sum_all()) as f64,
                        (n - top.sum_all()) as f64,
                    ];
                }
            }
            CostType::Sum2 => {
                let mut a = io.acts_mut();
                io.input(0).apply_to(Square, &mut a);
                self.costv = vec![a.sum_all() as f64];
            }
        }
        Ok(())
    }

    pub fn bprop_acts(&mut self, io: &Io, i: usize, scale: f32) -> Result<(), NetError> {
        let add = scale != 0.0;
        match self.ty {
            CostType::Logreg { do_work, .. } => {
                if i != 1 || !do_work {
                    return Ok(());
                }
                let (labels, probs) = (io.input(0), io.input(1));
                let mut target = io.prev_grad_mut(1);
                if !add {
                    target.resize(probs.rows(), probs.cols());
                    target.set_trans(probs.is_trans());
                }
                kernels::logreg_grad(
                    labels.data(),
                    probs.data(),
                    probs.rows(),
                    probs.cols(),
                    target.data_mut(),
                    add,
                    self.coeff,
                )?;
            }
            CostType::Sum2 => {
                io.prev_grad_mut(i)
                    .add(&io.input(0), scale, -2.0 * self.coeff)?;
            }
        }
        Ok(())
    }
}
