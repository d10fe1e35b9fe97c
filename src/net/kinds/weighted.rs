//! Port of layer.cu's `WeightLayer`, `FCLayer`, `LocalLayer`, `ConvLayer` and
//! `LocalUnsharedLayer` (both generations): construction of the `Weights` (owned or
//! shared), the forward products and convolutions, the activity gradients, and the
//! weight and bias gradients with the generation's scales.
//!
//! 2011 scales gradients by `epsW/numCases` in bprop; 2012 by `1/numCases` (the rate
//! is applied in the update), except the fc/local weights that accumulate straight
//! into the increment, which take `rate/numCases`. The first contribution to a
//! matrix since its last update overwrites (fc/local: scales the increment by the
//! momentum), later ones (shared weights) accumulate; 2011's fc/local rule keeps only
//! the last contribution (INVENTORY §3.1, reproduced).
//!
//! 2012 additions: `treefc` (an fc layer over the effective weights of a label tree,
//! [`crate::layers::softmaxtree`]), `superEps` (fc and local weights then keep a
//! gradient matrix; the update is [`crate::layers::weights`]' super-momentum path) and
//! `constrainWeights` after each update: fc and conv filters kept in a ball of radius
//! `wballNormed`, conv filters' spread kept in `[wcNormMin, wcNormMax]`, local filters
//! per module through `normalizeLocalWeights`.

use super::super::dict::LayerDict;
use super::super::layer::{Io, Rt};
use super::super::weights::{Rate, Weights};
use super::super::{NetError, Pass};
use super::Build;
use crate::config::value::Value;
use crate::config::Generation;
use crate::cuda::launch::conv as gpu;
use crate::cuda::launch::nvmatrix as blas;
use crate::cudaconv2::conv_util::norm::normalize_local_weights;
use crate::cudaconv2::{filter_acts, img_acts, weight_acts};
use crate::layers::lr::Schedule;
use crate::layers::softmaxtree::SoftmaxTree;
use crate::layers::weights::SuperMomentum;
use crate::nvmatrix::intrinsics::fdividef;
use crate::nvmatrix::ops::unary::Square;
use crate::nvmatrix::NvMatrix;

/// Which weight layer, with its geometry.
pub enum Shape {
    Fc,
    /// `conv` (`partial_sum`, `shared_biases`) or `local` (`None`).
    Conv(Box<Conv>, Option<(usize, bool)>),
    /// 2012 `treefc`.
    Tree(Box<TreeFc>),
}

/// `TreeFCLayer`'s `TreeWeights`: the arena entry holds the raw weights, increments and
/// gradients of every node (`getAllW`, ...), `(numInputs, numNodes)` column-major;
/// the layer computes with the effective weights of the leaves (`getW`).
pub struct TreeFc {
    tree: SoftmaxTree,
    /// `_leafWeights`: the first `numLeaves` columns of the effective weights.
    eff_leaves: NvMatrix,
}

impl TreeFc {
    /// `makeWeights()`: the effective weights from the raw ones.
    fn make_weights(&mut self, w: &NvMatrix) -> Result<(), NetError> {
        let (nf, leaves) = (w.rows(), self.tree.num_leaves());
        let mut eff = vec![0f32; w.len()];
        self.tree
            .make_weights(w.data(), &mut eff, nf)
            .map_err(tree_err)?;
        eff.truncate(nf * leaves);
        self.eff_leaves = NvMatrix::from_vec(nf, leaves, true, eff);
        Ok(())
    }
}

fn tree_err(message: String) -> NetError {
    NetError {
        layer: None,
        message,
    }
}

/// The per-input geometry of `LocalLayer` (conv and local).
pub struct Conv {
    padding: Vec<i32>,
    stride: Vec<usize>,
    filter_size: Vec<usize>,
    channels: Vec<usize>,
    img_size: Vec<usize>,
    groups: Vec<usize>,
    filter_channels: Vec<usize>,
    rand_sparse: Vec<bool>,
    over_sample: Vec<usize>,
    filter_pixels: Vec<usize>,
    filter_conns: Vec<Vec<i32>>,
    /// 2012 conv `wcNormMax`, `wcNormMin` (empty: none).
    wc_norm_max: Vec<f32>,
    wc_norm_min: Vec<f32>,
    num_filters: usize,
    modules_x: usize,
    modules: usize,
    /// `_weightGradTmp` (conv with partialSum) and `_actGradTmp` (oversampled sparse).
    weight_grad_tmp: NvMatrix,
    act_grad_tmp: NvMatrix,
}

pub struct WeightLayer {
    pub weights: Vec<usize>,
    pub biases: usize,
    /// Finite-difference steps of the gradient check (`_wStep`, `_bStep`).
    pub w_step: f32,
    pub b_step: f32,
    pub shape: Shape,
    /// 2012 `_gradComputed`: a gradient arrived since the last update.
    grad_computed: bool,
}

/// The matrix's rate: 2011 `epsW`, 2012 its schedule (`treefc`: always the constant
/// one, "This class does not support learning rate schedules for now").
fn rate(
    d: &LayerDict,
    gen: Generation,
    eps: f32,
    sched_key: &str,
    i: Option<usize>,
) -> Result<Rate, NetError> {
    match gen {
        Generation::C1 => Ok(Rate::Eps(eps)),
        Generation::A12 => {
            let spec = match d.d.get(sched_key) {
                _ if d.str("type")? == "treefc" => None,
                Some(Value::List(l)) => i.and_then(|i| l.get(i)).cloned(),
                Some(v) if i.is_none() => Some(v.clone()),
                _ => None,
            };
            // The parsed spec dict; absent means the constant `default` schedule.
            let spec = match spec {
                Some(Value::Dict(s)) => s,
                _ => Default::default(),
            };
            let s = Schedule::from_spec(&spec, eps as f64).map_err(|e| d.err(e))?;
            Ok(Rate::Schedule(Box::new(s)))
        }
    }
}

impl WeightLayer {
    /// `WeightLayer(convNet, paramsDict, trans, useGrad)` and the subclasses'
    /// constructors.
    pub fn new(d: &LayerDict, b: &mut Build) -> Result<WeightLayer, NetError> {
        let ty = d.str("type")?;
        let gen = b.gen;
        let tree = ty == "treefc";
        // 2012: `superEps` (its matrices keep a gradient) and the ball radii (the tree's
        // weights have neither).
        let (super_eps, wball) = match gen {
            Generation::A12 if !tree => (
                if d.has("superEps") {
                    d.float("superEps")?
                } else {
                    0.0
                },
                optional_floats(d, "wballNormed")?,
            ),
            _ => (0.0, Vec::new()),
        };
        let use_grad = ty == "conv" || tree || super_eps > 0.0;
        let owned = |w: NvMatrix, inc, r, wc, mom, use_grad, wball: f32| {
            let mut e = Weights::owned(w, inc, r, wc, mom, use_grad);
            e.wball = wball;
            e.super_mom = (super_eps > 0.0).then(|| SuperMomentum {
                super_eps,
                ..Default::default()
            });
            if tree {
                // `copyToGPU`: the tree's gradient matrix exists before any bprop.
                e.grad = NvMatrix::like(&e.w);
            }
            e
        };
        let h_weights = d.matrices("weights")?;
        let h_incs = d.matrices("weightsInc")?;
        let mom_w = d.floats("momW")?;
        let eps_w = d.floats("epsW")?;
        let wc = d.floats("wc")?;
        let src_matrix = d.ints("weightSourceMatrixIndices")?;
        let src_layer: Vec<Option<String>> = match gen {
            Generation::C1 => d
                .ints("weightSourceLayerIndices")?
                .iter()
                .zip(d.list("weightSource")?)
                .map(|(&i, name)| {
                    (i >= 0).then(|| {
                        name.as_str()
                            .unwrap_or("")
                            .split('[')
                            .next()
                            .unwrap_or("")
                            .to_string()
                    })
                })
                .collect(),
            Generation::A12 => d
                .list("weightSourceLayers")?
                .iter()
                .map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
                .collect(),
        };
        let n = h_weights.len();
        if [
            h_incs.len(),
            mom_w.len(),
            eps_w.len(),
            wc.len(),
            src_matrix.len(),
            src_layer.len(),
        ]
        .iter()
        .any(|&l| l != n)
        {
            return Err(
                d.err("weights, weightsInc, momW, epsW, wc and weight sources differ in length")
            );
        }
        let mut weights = Vec::with_capacity(n);
        for (i, (w, inc)) in h_weights.into_iter().zip(h_incs).enumerate() {
            let r = rate(d, gen, eps_w[i], "schedW", Some(i))?;
            let id = match &src_layer[i] {
                None => {
                    let ball = wball.get(i).copied().unwrap_or(0.0);
                    b.weights
                        .push(owned(w, inc, r, wc[i], mom_w[i], use_grad, ball))
                }
                Some(src) => {
                    let m = src_matrix[i] as usize;
                    let src_id = if src == d.name {
                        weights.get(m).copied()
                    } else {
                        (b.layer_weights)(src).and_then(|ws| ws.get(m).copied())
                    }
                    .ok_or_else(|| d.err(format!("weight source {src}[{m}] does not exist")))?;
                    b.weights.share(src_id, r)
                }
            };
            weights.push(id);
        }
        let eps_b = d.float("epsB")?;
        let r = rate(d, gen, eps_b, "schedB", None)?;
        let biases = b.weights.push(owned(
            d.matrix("biases")?,
            d.matrix("biasesInc")?,
            r,
            0.0,
            d.float("momB")?,
            true,
            0.0,
        ));
        let (w_step, b_step, shape) = match (ty, gen) {
            ("fc", Generation::C1) => (0.1, 0.01, Shape::Fc),
            ("fc", Generation::A12) => (0.01, 0.01, Shape::Fc),
            ("treefc", _) => {
                let tree = tree_from_dict(d)?;
                let &id = weights
                    .first()
                    .ok_or_else(|| d.err("a tree-fc layer has one input"))?;
                let w = &b.weights.mats(id).w;
                if !w.is_trans() {
                    return Err(d.err("the tree weights must be column-major (hWeights.isTrans())"));
                }
                let mut t = TreeFc {
                    tree,
                    eff_leaves: NvMatrix::default(),
                };
                t.make_weights(w).map_err(|e| d.err(e.message))?;
                (0.001, 0.01, Shape::Tree(Box::new(t)))
            }
            _ => {
                let conv = Conv::new(d)?;
                let steps = match gen {
                    Generation::C1 => (0.001, 0.002),
                    Generation::A12 => (0.02, 0.05),
                };
                let extra = if ty == "conv" {
                    Some((d.usize("partialSum")?, d.bool("sharedBiases")?))
                } else {
                    None
                };
                (steps.0, steps.1, Shape::Conv(Box::new(conv), extra))
            }
        };
        Ok(WeightLayer {
            weights,
            biases,
            w_step,
            b_step,
            shape,
            grad_computed: false,
        })
    }

    pub fn fprop_acts(
        &mut self,
        io: &Io,
        i: usize,
        scale: f32,
        rt: &mut Rt,
    ) -> Result<(), NetError> {
        if let Shape::Tree(t) = &mut self.shape {
            // The gradient check perturbs the raw weights.
            if rt.pass == Pass::Gc {
                t.make_weights(&rt.weights.mats(self.weights[i]).w)?;
            }
        }
        let x = io.input(i);
        let mut acts = io.acts_mut();
        let w = self.w(i, rt);
        let biases = &rt.weights.mats(self.biases).w;
        match &self.shape {
            Shape::Fc => {
                rt.device.run_oriented(
                    true,
                    &[&x, w],
                    &mut [&mut acts],
                    &[(x.rows(), w.cols())],
                    &[scale != 0.0],
                    |t| t[0].add_product(&*x, w, scale, 1.0),
                    |b, i, t| blas::add_product(b, t[0], i[0], i[1], scale, 1.0),
                )?;
                if scale == 0.0 {
                    acts.add_vector(biases, 1.0)?;
                }
            }
            Shape::Tree(_) => {
                acts.add_product(&*x, w, scale, 1.0)?;
                if scale == 0.0 {
                    acts.add_vector(biases, 1.0)?;
                }
            }
            Shape::Conv(c, conv) => {
                let (img, mx, pad, st, ch, gr) = (
                    c.img_size[i],
                    c.modules_x,
                    c.padding[i],
                    c.stride[i],
                    c.channels[i],
                    c.groups[i],
                );
                let (fc, conns) = (c.filter_channels[i], &c.filter_conns[i]);
                let shape = [(c.num_filters * c.modules, x.cols())];
                let (sparse, local) = (c.rand_sparse[i], conv.is_none());
                rt.device.run(
                    &[&x, w],
                    &mut [&mut acts],
                    &shape,
                    &[scale != 0.0],
                    |t| match (local, sparse) {
                        (false, false) => filter_acts::conv_filter_acts(
                            &x, w, t[0], img, mx, mx, pad, st, ch, gr, scale, 1.0,
                        ),
                        (true, false) => filter_acts::local_filter_acts(
                            &x, w, t[0], img, mx, mx, pad, st, ch, gr, scale, 1.0,
                        ),
                        (false, true) => filter_acts::conv_filter_acts_sparse(
                            &x, w, t[0], conns, img, mx, mx, pad, st, ch, fc, gr, scale, 1.0,
                        ),
                        (true, true) => filter_acts::local_filter_acts_sparse(
                            &x, w, t[0], conns, img, mx, mx, pad, st, ch, fc, gr, scale, 1.0,
                        ),
                    },
                    |b, m, t| match (local, sparse) {
                        (false, false) => gpu::conv_filter_acts(
                            b, &m[0], &m[1], &t[0], img, mx, mx, pad, st, ch, gr, scale, 1.0,
                        ),
                        (true, false) => gpu::local_filter_acts(
                            b, &m[0], &m[1], &t[0], img, mx, mx, pad, st, ch, gr, scale, 1.0,
                        ),
                        (false, true) => gpu::conv_filter_acts_sparse(
                            b, &m[0], &m[1], &t[0], conns, img, mx, mx, pad, st, ch, fc, gr, scale,
                            1.0,
                        ),
                        (true, true) => gpu::local_filter_acts_sparse(
                            b, &m[0], &m[1], &t[0], conns, img, mx, mx, pad, st, ch, fc, gr, scale,
                            1.0,
                        ),
                    },
                )?;
                if scale == 0.0 {
                    if let Some((_, true)) = conv {
                        let (nf, all) = (c.num_filters, acts.len());
                        acts.reshape(nf, all / nf);
                        acts.add_vector(biases, 1.0)?;
                        acts.reshape(nf * c.modules, all / (nf * c.modules));
                    } else {
                        acts.add_vector(biases, 1.0)?;
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
        let v = io.v();
        let mut target = io.prev_grad_mut(i);
        if let Shape::Tree(t) = &self.shape {
            target.add_product(&*v, t.eff_leaves.get_transpose(), scale, 1.0)?;
            if rt.pass == Pass::Gc {
                // The check compares every node's gradient.
                let m = rt.weights.mats_mut(self.weights[i]);
                let nf = m.w.rows();
                t.tree
                    .distribute_gradients(m.grad.data_mut(), nf)
                    .map_err(tree_err)?;
            }
            return Ok(());
        }
        let w = &rt.weights.mats(self.weights[i]).w;
        match &mut self.shape {
            Shape::Fc => rt.device.run_oriented(
                true,
                &[&v, w],
                &mut [&mut target],
                &[(v.rows(), w.rows())],
                &[scale != 0.0],
                |t| t[0].add_product(&*v, w.get_transpose(), scale, 1.0),
                |b, i, t| blas::add_product(b, t[0], i[0], i[1].get_transpose(), scale, 1.0),
            )?,
            Shape::Tree(_) => unreachable!("handled above"),
            Shape::Conv(c, conv) => {
                let (img, mx, pad, st, ch, gr) = (
                    c.img_size[i],
                    c.modules_x,
                    c.padding[i],
                    c.stride[i],
                    c.channels[i],
                    c.groups[i],
                );
                let (fc, conns) = (c.filter_channels[i], &c.filter_conns[i]);
                let cases = v.cols();
                let os = c.over_sample[i];
                let (sparse, local) = (c.rand_sparse[i], conv.is_none());
                if sparse && !local && os > 1 {
                    // Into a temporary, then summed over the oversampling axis; the
                    // sum overwrites the gradient even where it should add (BUG,
                    // reproduced).
                    let tmp = &mut c.act_grad_tmp;
                    rt.device.run(
                        &[&v, w],
                        &mut [tmp],
                        &[(ch * img * img, cases)],
                        &[scale != 0.0],
                        |t| {
                            img_acts::conv_img_acts_sparse(
                                &v, w, t[0], conns, img, img, mx, pad, st, ch, fc, gr, scale, 1.0,
                            )
                        },
                        |b, m, t| {
                            gpu::conv_img_acts_sparse(
                                b, &m[0], &m[1], &t[0], conns, img, img, mx, pad, st, ch, fc, gr,
                                scale, 1.0,
                            )
                        },
                    )?;
                    let all = tmp.len();
                    tmp.reshape(os, all / os);
                    tmp.sum(0, &mut target)?;
                    let all = target.len();
                    target.reshape(all / cases, cases);
                    return Ok(());
                }
                rt.device.run(
                    &[&v, w],
                    &mut [&mut target],
                    &[(ch * img * img, cases)],
                    &[scale != 0.0],
                    |t| match (local, sparse) {
                        (false, false) => img_acts::conv_img_acts(
                            &v, w, t[0], img, img, mx, pad, st, ch, gr, scale, 1.0,
                        ),
                        (true, false) => img_acts::local_img_acts(
                            &v, w, t[0], img, img, mx, pad, st, ch, gr, scale, 1.0,
                        ),
                        (false, true) => img_acts::conv_img_acts_sparse(
                            &v, w, t[0], conns, img, img, mx, pad, st, ch, fc, gr, scale, 1.0,
                        ),
                        (true, true) => img_acts::local_img_acts_sparse(
                            &v, w, t[0], conns, img, img, mx, pad, st, ch, fc, gr, scale, 1.0,
                        ),
                    },
                    |b, m, t| match (local, sparse) {
                        (false, false) => gpu::conv_img_acts(
                            b, &m[0], &m[1], &t[0], img, img, mx, pad, st, ch, gr, scale, 1.0,
                        ),
                        (true, false) => gpu::local_img_acts(
                            b, &m[0], &m[1], &t[0], img, img, mx, pad, st, ch, gr, scale, 1.0,
                        ),
                        (false, true) => gpu::conv_img_acts_sparse(
                            b, &m[0], &m[1], &t[0], conns, img, img, mx, pad, st, ch, fc, gr,
                            scale, 1.0,
                        ),
                        (true, true) => gpu::local_img_acts_sparse(
                            b, &m[0], &m[1], &t[0], conns, img, img, mx, pad, st, ch, fc, gr,
                            scale, 1.0,
                        ),
                    },
                )?;
            }
        }
        Ok(())
    }

    /// The gradient check's name for weight matrix `i` (`treefc` checks its
    /// `DummyWeights` over every node as "`name` weights").
    pub fn gc_label(&self, name: &str, i: usize) -> String {
        match self.shape {
            Shape::Tree(_) => format!("{name} weights"),
            _ => format!("{name} weights[{i}]"),
        }
    }

    /// `*_weights[i]`: the weights layer computations use (`treefc`: the leaves'
    /// effective weights).
    fn w<'a>(&'a self, i: usize, rt: &'a Rt) -> &'a NvMatrix {
        match &self.shape {
            Shape::Tree(t) => &t.eff_leaves,
            _ => &rt.weights.mats(self.weights[i]).w,
        }
    }

    /// `WeightLayer::bpropCommon`: biases (if learned), then each learned weight
    /// matrix, counting the contribution.
    pub fn bprop_common(&mut self, io: &Io, rt: &mut Rt) -> Result<(), NetError> {
        if rt.weights.get(self.biases).rate.base() > 0.0 {
            self.bprop_biases(io, rt)?;
            if rt.gen == Generation::A12 {
                rt.weights.inc_num_updates(self.biases);
            }
        }
        for i in 0..self.weights.len() {
            if rt.weights.get(self.weights[i]).rate.base() > 0.0 {
                self.bprop_weights(io, i, rt)?;
                rt.weights.inc_num_updates(self.weights[i]);
            }
        }
        self.grad_computed = true;
        Ok(())
    }

    fn bprop_biases(&mut self, io: &Io, rt: &mut Rt) -> Result<(), NetError> {
        let id = self.biases;
        let cases = match self.shape {
            Shape::Fc | Shape::Tree(_) => io.v().rows(),
            Shape::Conv(..) => io.v().cols(),
        };
        let scale = grad_scale(id, cases, rt);
        let scale_targets = match rt.gen {
            Generation::C1 => 0.0,
            Generation::A12 => (rt.weights.num_updates(id) > 0) as u8 as f32,
        };
        let grad = rt.weights.grad_mut(id);
        match &self.shape {
            Shape::Fc | Shape::Tree(_) => grad.add_sum(&io.v(), 0, scale_targets, scale)?,
            Shape::Conv(c, Some((_, true))) => {
                let mut v = io.v_mut();
                let (nf, all) = (c.num_filters, v.len());
                v.reshape(nf, all / nf);
                let r = grad.add_sum(&v, 1, scale_targets, scale);
                v.reshape(nf * c.modules, all / (nf * c.modules));
                r?
            }
            Shape::Conv(..) => grad.add_sum(&io.v(), 1, scale_targets, scale)?,
        }
        Ok(())
    }

    fn bprop_weights(&mut self, io: &Io, i: usize, rt: &mut Rt) -> Result<(), NetError> {
        let id = self.weights[i];
        let v = io.v();
        let x = io.input(i);
        let nu = rt.weights.num_updates(id);
        let gc = rt.pass == Pass::Gc;
        // fc and local weights: the increment takes the gradient directly, unless
        // they keep a separate gradient (2012 `superEps`, `treefc`).
        let use_grad = rt.weights.mats(id).use_grad;
        let inc_scales = |rt: &mut Rt, cases: usize| -> (f32, f32) {
            let mom = rt.weights.get(id).mom;
            if use_grad {
                return ((nu > 0) as u8 as f32, grad_scale(id, cases, rt));
            }
            match rt.gen {
                Generation::C1 => {
                    let s = (nu == 0 && !gc) as u8 as f32 * mom;
                    let g = if gc {
                        1.0
                    } else {
                        rt.weights.rate(id, rt.progress, rt.glibc) as f32 / cases as f32
                    };
                    (s, g)
                }
                Generation::A12 if gc => ((nu > 0) as u8 as f32, 1.0),
                Generation::A12 => {
                    // lr(p)/N: the rate rounded to float, divided in float.
                    let s = if nu == 0 { mom } else { 1.0 };
                    let lr = rt.weights.rate(id, rt.progress, rt.glibc) as f32;
                    (s, lr / rt.num_cases(cases) as f32)
                }
            }
        };
        match &mut self.shape {
            Shape::Fc => {
                let (s, g) = inc_scales(rt, v.rows());
                let grad = rt.weights.grad_mut(id);
                rt.device.run_oriented(
                    true,
                    &[&x, &v],
                    &mut [grad],
                    &[(x.cols(), v.cols())],
                    &[s != 0.0],
                    |t| t[0].add_product(x.get_transpose(), &*v, s, g),
                    |b, i, t| blas::add_product(b, t[0], i[0].get_transpose(), i[1], s, g),
                )?;
            }
            Shape::Tree(t) => {
                // Into the leaves' columns (`_leafGrad`, the first `numLeaves * numInputs`
                // values of the column-major gradient).
                let (s, g) = inc_scales(rt, v.rows());
                let grad = rt.weights.grad_mut(id);
                let (nf, leaves) = (grad.rows(), t.tree.num_leaves());
                let head = &mut grad.data_mut()[..nf * leaves];
                let mut leaf = NvMatrix::from_vec(nf, leaves, true, head.to_vec());
                leaf.add_product(x.get_transpose(), &*v, s, g)?;
                head.copy_from_slice(leaf.data());
            }
            Shape::Conv(c, None) => {
                let (s, g) = inc_scales(rt, v.cols());
                let inc = rt.weights.grad_mut(id);
                let (img, mx, fs, pad, st, ch, gr) = (
                    c.img_size[i],
                    c.modules_x,
                    c.filter_size[i],
                    c.padding[i],
                    c.stride[i],
                    c.channels[i],
                    c.groups[i],
                );
                let (fc, conns) = (c.filter_channels[i], &c.filter_conns[i]);
                let shape = [(c.modules * fc * c.filter_pixels[i], c.num_filters)];
                let sparse = c.rand_sparse[i];
                rt.device.run(
                    &[&x, &v],
                    &mut [inc],
                    &shape,
                    &[s != 0.0],
                    |t| {
                        if sparse {
                            weight_acts::local_weight_acts_sparse(
                                &x, &v, t[0], conns, img, mx, mx, fs, pad, st, ch, fc, gr, s, g,
                            )
                        } else {
                            weight_acts::local_weight_acts(
                                &x, &v, t[0], img, mx, mx, fs, pad, st, ch, gr, s, g,
                            )
                        }
                    },
                    |b, m, t| {
                        if sparse {
                            gpu::local_weight_acts_sparse(
                                b, &m[0], &m[1], &t[0], conns, img, mx, mx, fs, pad, st, ch, fc,
                                gr, s, g,
                            )
                        } else {
                            gpu::local_weight_acts(
                                b, &m[0], &m[1], &t[0], img, mx, mx, fs, pad, st, ch, gr, s, g,
                            )
                        }
                    },
                )?;
            }
            Shape::Conv(c, Some((partial_sum, _))) => {
                let ps = *partial_sum;
                let g = grad_scale(id, v.cols(), rt);
                let st_first = (nu > 0 && ps == 0) as u8 as f32;
                let (img, mx, fs, pad, st, ch, gr) = (
                    c.img_size[i],
                    c.modules_x,
                    c.filter_size[i],
                    c.padding[i],
                    c.stride[i],
                    c.channels[i],
                    c.groups[i],
                );
                let fc = c.filter_channels[i];
                let conns = &c.filter_conns[i];
                let rows = fc * c.filter_pixels[i];
                let shape = [(
                    c.modules.checked_div(ps).map_or(rows, |n| n * rows),
                    c.num_filters,
                )];
                let sparse = c.rand_sparse[i];
                let tgt = if ps > 0 {
                    &mut c.weight_grad_tmp
                } else {
                    rt.weights.grad_mut(id)
                };
                rt.device.run(
                    &[&x, &v],
                    &mut [tgt],
                    &shape,
                    &[st_first != 0.0],
                    |t| {
                        if sparse {
                            weight_acts::conv_weight_acts_sparse(
                                &x, &v, t[0], conns, img, mx, mx, fs, pad, st, ch, fc, gr, ps,
                                st_first, g,
                            )
                        } else {
                            weight_acts::conv_weight_acts(
                                &x, &v, t[0], img, mx, mx, fs, pad, st, ch, gr, ps, st_first, g,
                            )
                        }
                    },
                    |b, m, t| {
                        if sparse {
                            gpu::conv_weight_acts_sparse(
                                b, &m[0], &m[1], &t[0], conns, img, mx, mx, fs, pad, st, ch, fc,
                                gr, ps, st_first, g,
                            )
                        } else {
                            gpu::conv_weight_acts(
                                b, &m[0], &m[1], &t[0], img, mx, mx, fs, pad, st, ch, gr, ps,
                                st_first, g,
                            )
                        }
                    },
                )?;
                if let Some(rows) = c.modules.checked_div(ps) {
                    let scale_targets = (nu > 0) as u8 as f32;
                    let cols = fc * c.filter_pixels[i] * c.num_filters;
                    c.weight_grad_tmp.reshape(rows, cols);
                    let grad = rt.weights.grad_mut(id);
                    grad.add_sum(&c.weight_grad_tmp, 0, scale_targets, 1.0)?;
                    grad.reshape(fc * c.filter_pixels[i], c.num_filters);
                }
            }
        }
        Ok(())
    }

    /// `updateWeights()`: each weight matrix, then the biases (owners only); 2012 only
    /// after a gradient arrived.
    pub fn update(&mut self, rt: &mut Rt) -> Result<(), NetError> {
        if rt.gen == Generation::A12 && !std::mem::take(&mut self.grad_computed) {
            return Ok(());
        }
        for &id in &self.weights {
            match &mut self.shape {
                Shape::Tree(t) => update_tree(t, id, rt)?,
                _ => rt.weights.update(id, rt.gen, rt.progress, rt.glibc)?,
            }
        }
        rt.weights
            .update(self.biases, rt.gen, rt.progress, rt.glibc)?;
        if rt.gen == Generation::A12 {
            self.constrain_weights(rt)?;
        }
        Ok(())
    }

    /// 2012 `constrainWeights()` (fc, conv, local; nothing for `treefc`), for each
    /// learned matrix this layer owns.
    fn constrain_weights(&mut self, rt: &mut Rt) -> Result<(), NetError> {
        for (i, &id) in self.weights.iter().enumerate() {
            let e = rt.weights.get(id);
            if e.src.is_some() || e.rate.base() <= 0.0 {
                continue;
            }
            let wball = e.wball;
            let m = rt.weights.mats_mut(id);
            match &self.shape {
                Shape::Fc if wball > 0.0 => {
                    let mut sq = NvMatrix::default();
                    m.w.apply_to(Square, &mut sq);
                    constrain_to_ball(&mut m.w, &sq, wball)?;
                }
                Shape::Conv(c, Some(_)) => {
                    let (max, min) = (
                        c.wc_norm_max.get(i).copied().unwrap_or(0.0),
                        c.wc_norm_min.get(i).copied().unwrap_or(0.0),
                    );
                    // The gradient matrix serves as scratch: harmless, the next
                    // contribution overwrites it (`numUpdates` is 0).
                    if max > 0.0 {
                        // `a = sqrtf(Σ (w - mean)²) / rows` per filter (not a standard
                        // deviation), then scaled into [min, max].
                        let fz = m.w.rows() as f32;
                        let mut t = NvMatrix::default();
                        m.w.sum(0, &mut t)?;
                        m.w.add_vector_to(&t, -1.0 / fz, &mut m.grad)?;
                        m.grad.apply(Square);
                        m.grad.sum(0, &mut t)?;
                        let scale = 1.0 / fz;
                        t.apply(|a: f32| {
                            let a = a.sqrt() * scale;
                            if a < min {
                                fdividef(min, a)
                            } else if a > max {
                                fdividef(max, a)
                            } else {
                                1.0
                            }
                        });
                        m.w.eltwise_mult_by_vector(&t)?;
                    }
                    if wball > 0.0 {
                        m.w.apply_to(Square, &mut m.grad);
                        constrain_to_ball(&mut m.w, &m.grad, wball)?;
                    }
                }
                Shape::Conv(c, None) if wball > 0.0 => {
                    normalize_local_weights(&mut m.w, c.modules, wball)?
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// `TreeWeights::update(progress)`: the gradients up the tree, the per-node update
/// with the (constant) rate, the effective weights again.
fn update_tree(t: &mut TreeFc, id: usize, rt: &mut Rt) -> Result<(), NetError> {
    if rt.weights.get(id).rate.base() <= 0.0 {
        return Ok(());
    }
    let eps = rt.weights.rate(id, rt.progress, rt.glibc) as f32;
    let m = rt.weights.mats_mut(id);
    let nf = m.w.rows();
    t.tree
        .distribute_gradients(m.grad.data_mut(), nf)
        .map_err(tree_err)?;
    t.tree
        .update_weights(
            m.w.data_mut(),
            m.inc.data_mut(),
            m.grad.data(),
            nf,
            eps,
            m.mom,
            m.wc,
        )
        .map_err(tree_err)?;
    t.make_weights(&m.w)?;
    rt.weights.clear_num_updates(id);
    Ok(())
}

/// The ball constraint of `FCLayer`/`ConvLayer::constrainWeights`: `n = Σ` of `sq`
/// (the squared weights) per column, then `WeightConstraintOperator(r)`: `n > r²
/// ? __fdividef(r, sqrtf(n)) : 1`, and each column of `w` times it.
fn constrain_to_ball(w: &mut NvMatrix, sq: &NvMatrix, r: f32) -> Result<(), NetError> {
    let mut n = NvMatrix::default();
    sq.sum(0, &mut n)?;
    let r2 = r * r;
    n.apply(|a: f32| if a > r2 { fdividef(r, a.sqrt()) } else { 1.0 });
    w.eltwise_mult_by_vector(&n)?;
    Ok(())
}

/// The scale of a `useGrad` gradient: 2011 `epsW/numCases`, 2012 `1/numCases`, 1 in
/// a gradient check.
fn grad_scale(id: usize, cases: usize, rt: &mut Rt) -> f32 {
    if rt.pass == Pass::Gc {
        return 1.0;
    }
    match rt.gen {
        Generation::C1 => rt.weights.rate(id, rt.progress, rt.glibc) as f32 / cases as f32,
        Generation::A12 => 1.0 / rt.num_cases(cases) as f32,
    }
}

/// `TreeFCLayer`'s `SoftmaxTree` from the dictionary's `tree` (per label, the
/// children's labels) and `rootLabel`.
fn tree_from_dict(d: &LayerDict) -> Result<SoftmaxTree, NetError> {
    let bad = || d.err("key 'tree' is not a list of lists of labels");
    let lists = d
        .list("tree")?
        .iter()
        .map(|kids| {
            kids.as_list()
                .ok_or_else(bad)?
                .iter()
                .map(|k| {
                    k.as_int()
                        .and_then(|k| usize::try_from(k).ok())
                        .ok_or_else(bad)
                })
                .collect::<Result<Vec<usize>, NetError>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    SoftmaxTree::new(&lists, d.usize("rootLabel")?).map_err(|e| d.err(e))
}

/// A float list the 2011 dictionaries do not have (empty then).
fn optional_floats(d: &LayerDict, key: &str) -> Result<Vec<f32>, NetError> {
    if d.has(key) {
        d.floats(key)
    } else {
        Ok(Vec::new())
    }
}

impl Conv {
    fn new(d: &LayerDict) -> Result<Conv, NetError> {
        let rand_sparse: Vec<bool> = d.list("randSparse")?.iter().map(Value::truthy).collect();
        let filter_conns = d
            .list("filterConns")?
            .iter()
            .map(|v| {
                v.as_list()
                    .unwrap_or(&[])
                    .iter()
                    .map(|c| c.as_int().unwrap_or(0) as i32)
                    .collect()
            })
            .collect();
        Ok(Conv {
            padding: d.ints("padding")?.into_iter().map(|p| p as i32).collect(),
            stride: d.usizes("stride")?,
            filter_size: d.usizes("filterSize")?,
            channels: d.usizes("channels")?,
            img_size: d.usizes("imgSize")?,
            groups: d.usizes("groups")?,
            filter_channels: d.usizes("filterChannels")?,
            rand_sparse,
            over_sample: d.usizes("overSample")?,
            filter_pixels: d.usizes("filterPixels")?,
            filter_conns,
            wc_norm_max: optional_floats(d, "wcNormMax")?,
            wc_norm_min: optional_floats(d, "wcNormMin")?,
            num_filters: d.usize("filters")?,
            modules_x: d.usize("modulesX")?,
            modules: d.usize("modules")?,
            weight_grad_tmp: NvMatrix::default(),
            act_grad_tmp: NvMatrix::default(),
        })
    }
}
