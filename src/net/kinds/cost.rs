//! Port of layer.cu's `CostLayer` and its types: `LogregCostLayer` and
//! `SumOfSquaresCostLayer` (both generations; the 2012 logreg adds the top-k error
//! and the multiview accumulation), and the 2012 `CrossEntCostLayer`,
//! `CrossEnt2CostLayer`, `RobustFlickrCost`, `GatedSumOfSquaresCostLayer`,
//! `TICACostLayer` and `MultiSoftmaxCostLayer`: the cost values of the last fprop
//! (`_costv`, sums over the cases) and the gradients they start.
//!
//! Bugs of the original kept here (INVENTORY §13, notes §6):
//! - `cost.crossent` leaves the gradient to its input when that is a softmax with no
//!   other consumer, but the softmax layer only fuses `cost.logreg`: nobody writes the
//!   softmax's gradient and its backward pass fails on the empty matrix.
//! - `cost.crossent2`'s own gradient (used when its input is not a lone logistic
//!   neuron on the same GPU) adds `(1-t)/(1-y)` where it should subtract it, and
//!   announces itself on every call.
//! - `cost.msm` adds its `(cases, classes)` gradient to an already written
//!   `(classes, cases)` one without transposing: the shapes differ (an error here,
//!   an assertion there) unless the matrix is square, where it adds the transpose.
//! - `cost.tica` reports `Σ` of the reciprocals `convTICA` computes and back-propagates
//!   the half-finished `convTICAGrad` (not that sum's gradient).

use super::super::dict::LayerDict;
use super::super::layer::{pass_flags, Io, Rt};
use super::super::NetError;
use crate::config::Generation;
use crate::cudaconv2::conv_util::norm;
use crate::layers::kernels;
use crate::layers::multisoftmax::multi_softmax_cpu_t_parallel;
use crate::nvmatrix::ops::unary::Square;
use crate::nvmatrix::NvMatrix;

pub enum CostType {
    /// `do_work`: the gradient is this layer's (not fused into a softmax below).
    /// `probs_accum`, `num_accumed`: the 2012 multiview sum of the probabilities
    /// (`_probsAccum`, the views' average after the last view).
    Logreg {
        topk: usize,
        do_work: bool,
        probs_accum: NvMatrix,
        num_accumed: usize,
    },
    Sum2,
    /// `do_work`: false when the probabilities come from a softmax with no other
    /// consumer (which then gets no gradient at all: BUG).
    CrossEnt {
        do_work: bool,
    },
    /// `do_work`: false when the input is a logistic neuron layer with no other
    /// consumer, on the same GPU (it computes the fused gradient).
    CrossEnt2 {
        do_work: bool,
    },
    RFlickr,
    /// `_ungated`: the squares of input 1 (overwritten by `x * gate` in bprop).
    GSum2 {
        ungated: NvMatrix,
    },
    Tica {
        channels: usize,
        size_x: usize,
    },
    Msm(Box<Msm>),
}

/// `MultiSoftmaxCostLayer`'s parameters and host matrices.
pub struct Msm {
    set_size: usize,
    num_out: usize,
    threads: usize,
    /// `_energies_T_CPU`: the last fprop's energies, transposed to `(cases, numOut)`
    /// row-major, each case's maximum subtracted.
    energies_t: Vec<f32>,
    /// `_cpuProbs`: the last fprop's membership marginals, `(cases, numOut)`; after a
    /// bprop, the gradient.
    probs: Vec<f32>,
}

pub struct CostLayer {
    pub coeff: f32,
    pub ty: CostType,
    /// `_costv`.
    pub costv: Vec<f64>,
}

impl CostLayer {
    pub fn new(d: &LayerDict, gen: Generation) -> Result<CostLayer, NetError> {
        let a12 = gen == Generation::A12;
        let ty = match d.str("type")? {
            "cost.logreg" => CostType::Logreg {
                topk: if a12 && d.has("topk") {
                    d.usize("topk")?
                } else {
                    1
                },
                do_work: true,
                probs_accum: NvMatrix::default(),
                num_accumed: 0,
            },
            "cost.sum2" => CostType::Sum2,
            "cost.crossent" if a12 => CostType::CrossEnt { do_work: true },
            "cost.crossent2" if a12 => CostType::CrossEnt2 { do_work: true },
            "cost.rflickr" if a12 => CostType::RFlickr,
            "cost.gsum2" if a12 => CostType::GSum2 {
                ungated: NvMatrix::default(),
            },
            "cost.tica" if a12 => CostType::Tica {
                channels: d.usize("channels")?,
                size_x: d.usize("sizeX")?,
            },
            "cost.msm" if a12 => CostType::Msm(Box::new(Msm {
                set_size: d.usize("setSize")?,
                num_out: d.usize("numOut")?,
                threads: d.usize("threads")?,
                energies_t: Vec::new(),
                probs: Vec::new(),
            })),
            other => return Err(d.err(format!("Unknown cost layer type {other}"))),
        };
        Ok(CostLayer {
            coeff: d.float("coeff")?,
            ty,
            costv: Vec::new(),
        })
    }

    pub fn fprop_acts(
        &mut self,
        io: &Io,
        i: usize,
        scale: f32,
        rt: &mut Rt,
    ) -> Result<(), NetError> {
        match &mut self.ty {
            CostType::Sum2 => {
                let mut a = io.acts_mut();
                io.input(0).apply_to(Square, &mut a);
                self.costv = vec![a.sum_all() as f64];
                return Ok(());
            }
            CostType::Tica { channels, size_x } => {
                let mut a = io.acts_mut();
                norm::conv_tica(&io.input(0), &mut a, *channels, *size_x, scale, 1.0)?;
                // "TODO: this is wrong, because it contains reciprocals".
                self.costv = vec![a.sum_all() as f64];
                return Ok(());
            }
            // The others use their two inputs together, on input 0.
            _ if i != 0 => return Ok(()),
            _ => {}
        }
        let (labels, x) = (io.input(0), io.input(1));
        let mut acts = io.acts_mut();
        // `numCases - Σ correct`, formed in float as the original does.
        let errors = |correct: &NvMatrix| (x.cols() as f32 - correct.sum_all()) as f64;
        let rflickr = matches!(self.ty, CostType::RFlickr);
        self.costv = match &mut self.ty {
            CostType::Logreg {
                topk,
                probs_accum,
                num_accumed,
                ..
            } => {
                let probs: &NvMatrix = if rt.pass.has_flag(pass_flags::MULTIVIEW_TEST) {
                    if rt.pass.has_flag(pass_flags::MULTIVIEW_TEST_START) {
                        x.copy_to(probs_accum);
                        *num_accumed = 1;
                    } else {
                        probs_accum.add(&x, 1.0, 1.0)?;
                        *num_accumed += 1;
                    }
                    if !rt.pass.has_flag(pass_flags::MULTIVIEW_TEST_END) {
                        // No cost: `_costv` keeps the previous values.
                        return Ok(());
                    }
                    probs_accum.scale((1.0 / *num_accumed as f64) as f32);
                    probs_accum
                } else {
                    &x
                };
                logreg_costs(rt.gen, &labels, probs, *topk, &mut acts)?
            }
            CostType::CrossEnt { .. } => {
                let (k, n) = (x.rows(), x.cols());
                acts.resize(1, n);
                let mut correct = NvMatrix::new(1, n, false);
                kernels::compute_cross_ent_cost(
                    labels.data(),
                    x.data(),
                    k,
                    n,
                    acts.data_mut(),
                    correct.data_mut(),
                )?;
                vec![-acts.sum_all() as f64, errors(&correct)]
            }
            CostType::CrossEnt2 { .. } | CostType::RFlickr => {
                if !acts.same_dims(&labels) {
                    acts.resize_like(&labels);
                }
                if rflickr {
                    kernels::rflickr_cost(labels.data(), x.data(), acts.data_mut())?;
                    vec![acts.sum_all() as f64]
                } else {
                    kernels::cross_ent2_cost(labels.data(), x.data(), acts.data_mut())?;
                    vec![-acts.sum_all() as f64]
                }
            }
            CostType::GSum2 { ungated } => {
                // Here `labels` is the gate (1, cases), `x` the gated input.
                x.apply_to(Square, ungated);
                ungated.eltwise_mult_by_vector_to(&labels, &mut acts)?;
                vec![acts.sum_all() as f64]
            }
            CostType::Msm(m) => {
                m.forward(&x, &mut acts)?;
                // computeCost(useEnergies = true): marginals for the log-probability,
                // energies for the ranks.
                let n = x.cols();
                let (mut logp, mut correct, mut topk) = (
                    NvMatrix::new(1, n, false),
                    NvMatrix::new(1, n, false),
                    NvMatrix::new(1, n, false),
                );
                kernels::compute_multi_softmax_cost(
                    labels.data(),
                    acts.data(),
                    x.data(),
                    x.rows(),
                    n,
                    m.set_size,
                    true,
                    logp.data_mut(),
                    correct.data_mut(),
                    topk.data_mut(),
                )?;
                vec![-logp.sum_all() as f64, errors(&correct), errors(&topk)]
            }
            CostType::Sum2 | CostType::Tica { .. } => unreachable!("handled above"),
        };
        Ok(())
    }

    pub fn bprop_acts(
        &mut self,
        io: &Io,
        i: usize,
        scale: f32,
        _rt: &mut Rt,
    ) -> Result<(), NetError> {
        let (add, coeff) = (scale != 0.0, self.coeff);
        match &mut self.ty {
            CostType::Sum2 => {
                io.prev_grad_mut(i).add(&io.input(0), scale, -2.0 * coeff)?;
            }
            CostType::Tica { channels, size_x } => {
                let (x, a) = (io.input(0), io.acts());
                let mut target = io.prev_grad_mut(i);
                norm::conv_tica_grad(&x, &a, &mut target, *channels, *size_x, scale, coeff)?;
            }
            CostType::GSum2 { ungated } if i == 0 => {
                // With respect to the gates.
                io.prev_grad_mut(0).add_sum(ungated, 0, scale, -coeff)?;
            }
            CostType::GSum2 { ungated } => {
                // Overwrites the squares; input 0 (visited first) is done with them.
                io.input(1)
                    .eltwise_mult_by_vector_to(&io.input(0), ungated)?;
                io.prev_grad_mut(1).add(ungated, scale, -2.0 * coeff)?;
            }
            // Logreg and msm have nothing to do for their labels.
            CostType::Logreg { .. } | CostType::Msm(_) if i != 1 => {}
            CostType::Logreg { do_work, .. } => {
                if *do_work {
                    let (labels, probs) = (io.input(0), io.input(1));
                    let mut target = io.prev_grad_mut(1);
                    if !add {
                        target.resize_like(&probs);
                    }
                    kernels::logreg_grad(
                        labels.data(),
                        probs.data(),
                        probs.rows(),
                        probs.cols(),
                        target.data_mut(),
                        add,
                        coeff,
                    )?;
                }
            }
            CostType::Msm(m) => {
                let g = m.backward(&io.input(0), coeff)?;
                let mut target = io.prev_grad_mut(1);
                if scale == 1.0 {
                    // BUG (reproduced): `(cases, classes)` added to `(classes, cases)`.
                    target.add(&g, 1.0, 1.0)?;
                } else {
                    g.transpose_into(&mut target);
                }
            }
            _ if i != 1 => {
                return Err(NetError {
                    layer: None,
                    message: format!("assert(inpIdx == 1) fails: input {i} wants a gradient"),
                })
            }
            CostType::CrossEnt { do_work } | CostType::CrossEnt2 { do_work } if !*do_work => {}
            ty @ (CostType::CrossEnt { .. } | CostType::CrossEnt2 { .. } | CostType::RFlickr) => {
                let (labels, probs) = (io.input(0), io.input(1));
                let mut target = io.prev_grad_mut(1);
                if !add {
                    target.resize_like(&probs);
                }
                let (t, y, out) = (labels.data(), probs.data(), target.data_mut());
                match ty {
                    CostType::CrossEnt { .. } => kernels::cross_ent_grad(t, y, out, add, coeff)?,
                    CostType::RFlickr => kernels::rflickr_grad(t, y, out, add, coeff)?,
                    _ => {
                        // The original's printf, on every call.
                        eprintln!("Computing cross-ent gradient the stupid way");
                        kernels::cross_ent2_grad(t, y, out, add, coeff, false)?
                    }
                }
            }
        }
        Ok(())
    }
}

/// The logreg costs: `[-Σ log p(label), numCases - Σ top-1 correct]` (2011), and
/// (2012) the top-k error third, `computeMultiSoftmaxCost` ranking by the
/// probabilities when `topk > 1`; 2012 forms the error counts in double.
fn logreg_costs(
    gen: Generation,
    labels: &NvMatrix,
    probs: &NvMatrix,
    topk: usize,
    logp: &mut NvMatrix,
) -> Result<Vec<f64>, NetError> {
    let (num_out, cases) = (probs.rows(), probs.cols());
    logp.resize(1, cases);
    let mut correct = NvMatrix::new(1, cases, false);
    let mut top = NvMatrix::new(1, cases, false);
    let (l, p) = (labels.data(), probs.data());
    if topk > 1 {
        kernels::compute_multi_softmax_cost(
            l,
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
        kernels::compute_logreg_cost(l, p, num_out, cases, logp.data_mut(), correct.data_mut())?;
    }
    let nll = -logp.sum_all() as f64;
    Ok(match gen {
        Generation::C1 => vec![nll, (labels.len() as f32 - correct.sum_all()) as f64],
        Generation::A12 => {
            let n = labels.len() as f64;
            let top1 = correct.sum_all() as f64;
            let topk = if topk == 1 {
                top1
            } else {
                top.sum_all() as f64
            };
            vec![nll, n - top1, n - topk]
        }
    })
}

impl Msm {
    /// `fpropActs` up to the cost: the energies transposed, max-subtracted and
    /// copied to the host, the lattice (free), the marginals transposed into `acts`.
    fn forward(&mut self, energies: &NvMatrix, acts: &mut NvMatrix) -> Result<(), NetError> {
        let (k, n) = (energies.rows(), energies.cols());
        if k != self.num_out {
            return Err(NetError {
                layer: None,
                message: format!("the energies have {k} rows, not numOut = {}", self.num_out),
            });
        }
        let mut et = NvMatrix::default();
        energies.transpose_into(&mut et);
        let mut max = NvMatrix::default();
        et.max(1, &mut max)?;
        et.add_vector(&max, -1.0)?;
        // The lattice reads a row-major host matrix (it asserts !elts.isTrans()).
        self.energies_t = if et.is_trans() {
            et.flip_trans().into_vec()
        } else {
            et.into_vec()
        };
        // `probs.resize(elts)`: a same-shaped matrix keeps its values.
        self.probs.resize(n * k, 0.0);
        multi_softmax_cpu_t_parallel(
            &self.energies_t,
            k,
            &mut self.probs,
            None,
            self.set_size,
            self.threads,
        )?;
        NvMatrix::from_vec(n, k, false, self.probs.clone()).transpose_into(acts);
        Ok(())
    }

    /// `bpropActs` up to the target: the lattice again on the stored energies, with
    /// each case's label forced into the set, minus the stored marginals; times
    /// `coeff`, as a `(cases, numOut)` matrix.
    fn backward(&mut self, labels: &NvMatrix, coeff: f32) -> Result<NvMatrix, NetError> {
        multi_softmax_cpu_t_parallel(
            &self.energies_t,
            self.num_out,
            &mut self.probs,
            Some(labels.data()),
            self.set_size,
            self.threads,
        )?;
        let n = self.probs.len() / self.num_out;
        let mut g = NvMatrix::from_vec(n, self.num_out, false, self.probs.clone());
        g.scale(coeff);
        Ok(g)
    }
}
