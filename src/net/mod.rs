//! Port of convnet.cu/convnet.cuh (`ConvNet`), worker.cu (the training, test,
//! multiview-test, feature and gradient-check workers), cost.cu (`Cost`) and, in
//! [`layer`], layer.cu/layer.cuh with weights.cuh's `Weights`, of both generations.
//!
//! A [`ConvNet`] is built from the parsed layer dictionaries ([`crate::config::Net`]):
//! the same dictionaries convnet.py hands to its C++ side and pickles into checkpoints.
//! [`ConvNet::sync_to_host`] writes weights and increments back into them
//! (`copyToCPU`), so saving a checkpoint is pickling those dictionaries.

pub mod convnet_gpu;
pub mod cost;
pub mod device;
mod dict;
mod gradcheck;
pub mod kinds;
pub mod layer;
pub mod weights;
mod workers;

pub use cost::Cost;

use crate::config::{self, Generation};
use crate::layers::lr::GlibcRandom;
use crate::nvmatrix::{NvMatrix, RandomStreams};
pub use device::Device;
use dict::LayerDict;
use kinds::{Build, Kind};
use layer::{Bufs, Io, Layer, Rt};
use std::cell::RefCell;
use std::fmt;
use weights::WeightArena;

/// `PASS_TYPE`: what a forward/backward pass is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Train,
    Test,
    /// Gradient check: no eps, no momentum in the gradient scales; dropout still draws.
    Gc,
    /// 2012 multiview test: first, middle and last view.
    MultiviewTestStart,
    MultiviewTest,
    MultiviewTestEnd,
    /// 2012 feature writing.
    FeatureGen,
}

/// How the net runs (what `initModel` receives besides the layers).
#[derive(Debug, Clone, Copy)]
pub struct NetOptions {
    /// `--mini`.
    pub minibatch_size: usize,
    /// `--wupdate-freq` (2012; 1 for 2011).
    pub wupdate_freq: usize,
    /// Seed of `NVMatrix::initRandom` (the original's `time(0)` or
    /// `CONVNET_RANDOM_SEED`): dropout masks and noisy neurons draw from it.
    pub random_seed: u64,
}

/// A net the original would refuse or crash on: the layer and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct NetError {
    pub layer: Option<String>,
    pub message: String,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.layer {
            Some(l) => write!(f, "layer '{l}': {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for NetError {}

/// A weight matrix as the layers hold it: weights, increments and (for `useGrad`
/// matrices) the separate gradient.
pub struct WeightsView<'a> {
    pub w: &'a NvMatrix,
    pub inc: &'a NvMatrix,
    pub grad: &'a NvMatrix,
}

/// The outcome of [`ConvNet::check_gradients`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcSummary {
    pub tests: usize,
    pub failures: usize,
}

/// The network (`ConvNet`): layers in creation order, the weights they own or
/// share, and the buffers of activations and gradients.
pub struct ConvNet {
    gen: Generation,
    layers: Vec<Layer>,
    bufs: Bufs,
    weights: WeightArena,
    data_layers: Vec<usize>,
    costs: Vec<usize>,
    /// One per `gpu=` tower (2011: one).
    workers: Vec<convnet_gpu::Worker>,
    glibc: GlibcRandom,
    opts: NetOptions,
    /// Cases of the last fprop's minibatch.
    num_cases: usize,
    /// The minibatch sliced from a batch's data matrices, kept so that its memory
    /// serves every minibatch.
    mini: Vec<NvMatrix>,
    /// 2012: backward passes since the last update (`numBwdMiniPasses`).
    bwd_passes: usize,
    /// Progress of the 2012 schedules in the current batch.
    progress: f64,
    /// Seconds spent in each layer's fprop, bprop and update ([`ConvNet::profile`]),
    /// when enabled.
    profile: Option<Profile>,
}

/// Wall time per layer and phase (ours: `--bench` with `CONVNET_PROFILE=1`). Every
/// kernel call of the CUDA path ends with its download, so a layer's time includes its
/// device work.
struct Profile {
    /// The phase now running: 0 fprop, 1 bprop, 2 update.
    phase: usize,
    secs: Vec<[f64; 3]>,
}

impl ConvNet {
    /// `ConvNet(layerParams, minibatchSize, deviceID)` then `initCuda` (random
    /// streams, weights to the device).
    pub fn new(net: &config::Net, opts: NetOptions) -> Result<ConvNet, NetError> {
        let gen = net.generation;
        // 2011: the list order. 2012: the data layers, then the others, each in the
        // Python dict's order (`PyDict_Values`; one device).
        let order: Vec<usize> = match gen {
            Generation::C1 => (0..net.layers.len()).collect(),
            Generation::A12 => {
                let is_data =
                    |&i: &usize| net.layers[i].get("type").and_then(|t| t.as_str()) == Some("data");
                let o = net.order();
                o.iter()
                    .copied()
                    .filter(is_data)
                    .chain(o.iter().copied().filter(|i| !is_data(i)))
                    .collect()
            }
        };
        let dicts: Vec<LayerDict> = order
            .iter()
            .map(|&i| LayerDict::new(&net.layers[i]))
            .collect::<Result<_, _>>()?;
        let index_of = |name: &str| dicts.iter().position(|d| d.name == name);
        let mut weights = WeightArena::default();
        let mut layers: Vec<Layer> = Vec::with_capacity(dicts.len());
        let mut bufs = Bufs::default();
        for d in &dicts {
            let prev: Vec<usize> = match d.d.get("inputs") {
                None => Vec::new(),
                Some(_) => match gen {
                    // 2011: indices into the definition-order list.
                    Generation::C1 => d
                        .usizes("inputs")?
                        .into_iter()
                        .map(|i| {
                            let name = net
                                .layers
                                .get(i)
                                .and_then(|l| l.get("name"))
                                .and_then(|v| v.as_str());
                            name.and_then(index_of)
                                .ok_or_else(|| d.err(format!("input {i} does not exist")))
                        })
                        .collect::<Result<_, _>>()?,
                    Generation::A12 => d
                        .list("inputs")?
                        .iter()
                        .map(|v| {
                            let name = v.as_str().unwrap_or("");
                            index_of(name)
                                .ok_or_else(|| d.err(format!("input '{name}' does not exist")))
                        })
                        .collect::<Result<_, _>>()?,
                },
            };
            let built: Vec<(String, Vec<usize>)> = layers
                .iter()
                .filter_map(|l| match &l.kind {
                    Kind::Weighted(w) => Some((l.name.clone(), w.weights.clone())),
                    _ => None,
                })
                .collect();
            let lookup = |name: &str| {
                built
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, w)| w.clone())
            };
            let mut b = Build {
                gen,
                weights: &mut weights,
                layer_weights: &lookup,
            };
            let (kind, trans) = Kind::new(d, &mut b).map_err(|e| named(e, d.name))?;
            let target = |key: &str| -> Result<Option<usize>, NetError> {
                let t = if d.has(key) { d.int(key)? } else { -1 };
                Ok(usize::try_from(t).ok())
            };
            let (acts_target, acts_grad_target) =
                (target("actsTarget")?, target("actsGradTarget")?);
            let shared = |t: Option<usize>,
                          of: &dyn Fn(&Layer) -> usize,
                          v: &mut Vec<RefCell<NvMatrix>>|
             -> Result<usize, NetError> {
                Ok(match t {
                    Some(t) => of(&layers[*prev
                        .get(t)
                        .ok_or_else(|| d.err("actsTarget names no input"))?]),
                    None => {
                        v.push(RefCell::default());
                        v.len() - 1
                    }
                })
            };
            let acts = shared(acts_target, &|l| l.acts, &mut bufs.acts)?;
            let grad = shared(acts_grad_target, &|l| l.grad, &mut bufs.grads)?;
            layers.push(Layer {
                name: d.name.to_string(),
                ty: d.str("type")?.to_string(),
                trans,
                prev,
                next: Vec::new(),
                acts,
                grad,
                acts_target,
                acts_grad_target,
                grad_consumer: d.has("gradConsumer") && d.bool("gradConsumer")?,
                num_grad_producers_next: 0,
                rcvd_f: 0,
                rcvd_b: 0,
                rcvd_msgs: 0,
                remote: Vec::new(),
                conserve_mem: d.has("conserveMem") && d.bool("conserveMem")?,
                gpu: if d.has("gpu") { d.int("gpu")? } else { 0 },
                kind,
            });
        }
        // The forward links, `isGradConsumer` over the inputs, and the grad producers
        // among the consumers.
        // (2012 links the layers in name order, so consumers are in name order.)
        let links: Vec<(usize, usize)> = link_order(gen, &layers)
            .into_iter()
            .flat_map(|i| layers[i].prev.iter().map(move |&j| (j, i)))
            .collect();
        for &(j, i) in &links {
            layers[j].next.push(i);
        }
        fn consumer(layers: &mut [Layer], i: usize, seen: &mut Vec<bool>) -> bool {
            if !seen[i] {
                seen[i] = true;
                let mut c = layers[i].grad_consumer;
                for p in layers[i].prev.clone() {
                    c |= consumer(layers, p, seen);
                }
                layers[i].grad_consumer = c;
            }
            layers[i].grad_consumer
        }
        let mut seen = vec![false; layers.len()];
        for i in 0..layers.len() {
            consumer(&mut layers, i, &mut seen);
        }
        for i in 0..layers.len() {
            layers[i].num_grad_producers_next = match gen {
                Generation::C1 => layers[i]
                    .next
                    .iter()
                    .filter(|&&n| layers[n].grad_producer())
                    .count(),
                Generation::A12 => layers[i]
                    .next
                    .iter()
                    .filter(|&&n| leads_to_cost(&layers, n))
                    .count(),
            };
        }
        resolve_fusions(gen, &mut layers);
        let mut towers = 1;
        if gen == Generation::A12 {
            let gpu: Vec<i64> = layers.iter().map(|l| l.gpu).collect();
            for (l, devices) in convnet_gpu::next_devices(&links, &gpu).iter().enumerate() {
                if layers[l].grad_consumer {
                    layers[l].remote = convnet_gpu::remote_grads(gpu[l], devices, &mut bufs.grads);
                }
            }
            for l in &layers {
                if let Some(t) = l.acts_grad_target {
                    if layers[l.prev[t]].gpu != l.gpu {
                        return Err(NetError {
                            layer: Some(l.name.clone()),
                            message: "actsGradTarget names an input on another device".into(),
                        });
                    }
                }
            }
            towers = gpu
                .iter()
                .map(|&g| g.max(0) as usize + 1)
                .max()
                .unwrap_or(1);
        }
        let data_layers = (0..layers.len())
            .filter(|&i| matches!(layers[i].kind, Kind::Data { .. }))
            .collect();
        let costs = (0..layers.len())
            .filter(|&i| matches!(layers[i].kind, Kind::Cost(_)))
            .collect();
        Ok(ConvNet {
            gen,
            layers,
            bufs,
            weights,
            data_layers,
            costs,
            workers: (0..towers)
                .map(|_| convnet_gpu::Worker::new(opts.random_seed))
                .collect(),
            glibc: GlibcRandom::new(opts.random_seed as u32),
            opts,
            num_cases: 0,
            mini: Vec::new(),
            bwd_passes: 0,
            progress: 0.0,
            profile: None,
        })
    }
}

/// Layer indices in the order the original links and updates them: 2011 the list
/// order, 2012 the name order of its `std::map`.
fn link_order(gen: Generation, layers: &[Layer]) -> Vec<usize> {
    let mut o: Vec<usize> = (0..layers.len()).collect();
    if gen == Generation::A12 {
        o.sort_by(|&a, &b| layers[a].name.cmp(&layers[b].name));
    }
    o
}

/// 2012 `hasGradProducerNext`: `l` produces gradients and some chain of producers
/// leads from it to a cost layer with a non-zero coefficient.
fn leads_to_cost(layers: &[Layer], l: usize) -> bool {
    layers[l].grad_producer()
        && (layers[l].next.is_empty() || layers[l].next.iter().any(|&n| leads_to_cost(layers, n)))
}

/// Attaches the layer's name to an error that has none.
fn named(mut e: NetError, layer: &str) -> NetError {
    e.layer.get_or_insert_with(|| layer.to_string());
    e
}

/// The fused gradients: a softmax whose only consumer is `cost.logreg` (2012: on
/// the same GPU) computes the logreg gradient itself, and that cost layer then
/// writes none.
fn resolve_fusions(gen: Generation, layers: &mut [Layer]) {
    for s in 0..layers.len() {
        if layers[s].ty != "softmax" {
            continue;
        }
        let fused = match layers[s].next.as_slice() {
            &[c] if layers[c].ty == "cost.logreg"
                && (gen == Generation::C1 || layers[c].gpu == layers[s].gpu) =>
            {
                let labels = layers[c].prev[0];
                let coeff = match &layers[c].kind {
                    Kind::Cost(k) => k.coeff,
                    _ => unreachable!("cost.logreg is a cost layer"),
                };
                Some((layers[labels].acts, coeff))
            }
            _ => None,
        };
        if let Kind::Simple(kinds::simple::SimpleLayer::Softmax { fused: f }) = &mut layers[s].kind
        {
            *f = fused;
        }
    }
    for c in 0..layers.len() {
        if layers[c].ty != "cost.logreg" || layers[c].prev.len() < 2 {
            continue;
        }
        let p = layers[c].prev[1];
        let fused = matches!(
            &layers[p].kind,
            Kind::Simple(kinds::simple::SimpleLayer::Softmax { fused: Some(_) })
        );
        if let Kind::Cost(k) = &mut layers[c].kind {
            if let kinds::cost::CostType::Logreg { do_work, .. } = &mut k.ty {
                *do_work = !fused;
            }
        }
    }
    if gen == Generation::A12 {
        kinds::resolve_2012_fusions(layers);
    }
}

impl ConvNet {
    /// Layer `l`'s buffers: own activations and gradient, its inputs'.
    fn ids(&self, l: usize) -> (usize, usize, Vec<usize>, Vec<usize>) {
        let layer = &self.layers[l];
        (
            layer.acts,
            layer.grad,
            layer.prev.iter().map(|&p| self.layers[p].acts).collect(),
            layer
                .prev
                .iter()
                .map(|&p| self.grad_slot(p, layer.gpu).0)
                .collect(),
        )
    }

    /// Runs `f` on layer `l`'s type with its buffers and the run-time state.
    fn with_layer<R>(
        &mut self,
        l: usize,
        pass: Pass,
        progress: f64,
        f: impl FnOnce(&mut Kind, &Io, &mut Rt) -> Result<R, NetError>,
    ) -> Result<R, NetError> {
        let (acts, grad, in_acts, in_grads) = self.ids(l);
        let io = Io {
            bufs: &self.bufs,
            acts,
            grad,
            in_acts,
            in_grads,
        };
        let update_cases = match self.gen {
            Generation::A12 if self.opts.wupdate_freq > 1 => {
                Some(self.opts.wupdate_freq * self.opts.minibatch_size)
            }
            _ => None,
        };
        let tower = self.tower(l);
        let worker = &mut self.workers[tower];
        let mut rt = Rt {
            gen: self.gen,
            pass,
            weights: &mut self.weights,
            rnd: &mut worker.rnd,
            glibc: &mut self.glibc,
            progress,
            update_cases,
            seed: self.opts.random_seed,
            device: &worker.device,
        };
        let layer = &mut self.layers[l];
        let start = self.profile.as_ref().map(|_| std::time::Instant::now());
        let r = f(&mut layer.kind, &io, &mut rt).map_err(|e| named(e, &layer.name));
        if let (Some(p), Some(t)) = (&mut self.profile, start) {
            p.secs[l][p.phase] += t.elapsed().as_secs_f64();
        }
        r
    }

    /// Starts (or stops, discarding) the per-layer timing of [`ConvNet::profile`].
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(|| Profile {
            phase: 0,
            secs: vec![[0.0; 3]; self.layers.len()],
        });
    }

    /// Per layer (name, type): seconds in fprop, bprop and update since profiling
    /// started; empty when it is off.
    pub fn profile(&self) -> Vec<(String, String, [f64; 3])> {
        let Some(p) = &self.profile else {
            return Vec::new();
        };
        (self.layers.iter().zip(&p.secs))
            .map(|(l, s)| (l.name.clone(), l.ty.clone(), *s))
            .collect()
    }

    fn set_phase(&mut self, phase: usize) {
        if let Some(p) = &mut self.profile {
            p.phase = phase;
        }
    }

    /// Flips the views of layer `l`'s own and its inputs' matrices to its orientation
    /// (`transpose(_trans)`), activations and (`grads`) gradients.
    fn orient(&self, l: usize, grads: bool) {
        let layer = &self.layers[l];
        let t = layer.trans;
        self.bufs.acts[layer.acts].borrow_mut().transpose_to(t);
        for &p in &layer.prev {
            self.bufs.acts[self.layers[p].acts]
                .borrow_mut()
                .transpose_to(t);
            if grads {
                self.bufs.grads[self.grad_slot(p, layer.gpu).0]
                    .borrow_mut()
                    .transpose_to(t);
            }
        }
        if grads {
            self.bufs.grads[layer.grad].borrow_mut().transpose_to(t);
        }
    }

    /// `Layer::fprop(passType)` once every input has delivered: `fpropActs` on the
    /// input whose matrix it computes in (if any) with `scaleTargets = 0`, then on the
    /// others (the first writer overwrites, later ones add), then the consumers.
    fn fprop_layer(&mut self, l: usize, pass: Pass) -> Result<(), NetError> {
        self.orient(l, false);
        let target = self.layers[l].acts_target;
        if let Some(t) = target {
            self.with_layer(l, pass, 0.0, |k, io, rt| k.fprop_acts(io, t, 0.0, rt))?;
        }
        for i in 0..self.layers[l].prev.len() {
            if Some(i) != target {
                let scale = (target.is_some() || i > 0) as u8 as f32;
                self.with_layer(l, pass, 0.0, |k, io, rt| k.fprop_acts(io, i, scale, rt))?;
            }
        }
        self.fprop_next(l, pass)
    }

    fn reset(&mut self) {
        for l in &mut self.layers {
            l.rcvd_f = 0;
            l.rcvd_b = 0;
            l.rcvd_msgs = 0;
            l.remote.iter_mut().for_each(|r| r.rcvd = 0);
        }
        self.clear_queues();
    }

    /// `fprop(data, passType)` on one minibatch: `data[i]` is the matrix of `dataIdx
    /// i`, `(dims, cases)` row-major.
    pub fn fprop(&mut self, data: &[NvMatrix], pass: Pass) -> Result<(), NetError> {
        self.set_phase(0);
        self.reset();
        self.num_cases = data.first().map_or(0, NvMatrix::cols);
        for d in self.data_layers.clone() {
            let Kind::Data { data_idx } = self.layers[d].kind else {
                unreachable!("data layers are data layers")
            };
            let m = data.get(data_idx).ok_or_else(|| NetError {
                layer: Some(self.layers[d].name.clone()),
                message: format!("the data provider gives no matrix {data_idx}"),
            })?;
            m.copy_to(&mut self.bufs.acts[self.layers[d].acts].borrow_mut());
            self.fprop_next(d, pass)?;
        }
        self.run_workers(pass)
    }

    /// `Layer::bprop(passType)`: runs once every gradient-producing consumer has
    /// delivered (cost layers only with a non-zero coefficient); 2012 first adds the
    /// gradients its consumers on other devices summed there.
    fn bprop_layer(&mut self, l: usize, pass: Pass) -> Result<(), NetError> {
        let layer = &mut self.layers[l];
        if matches!(&layer.kind, Kind::Cost(c) if c.coeff == 0.0) {
            return Ok(());
        }
        if layer.rcvd_b + layer.rcvd_msgs != layer.num_grad_producers_next {
            return Ok(());
        }
        self.merge_remote_grads(l)?;
        self.layers[l].rcvd_b += 1;
        self.orient(l, true);
        self.with_layer(l, pass, self.progress, |k, io, rt| k.bprop_common(io, rt))?;
        let producer = self.layers[l].grad_producer();
        let (prev, gpu) = (self.layers[l].prev.clone(), self.layers[l].gpu);
        if producer {
            // The gradient buffer this layer shares goes last.
            let shared = self.layers[l].acts_grad_target;
            let order = (0..prev.len()).filter(|&i| Some(i) != shared).chain(shared);
            for i in order {
                let p = prev[i];
                if self.layers[p].grad_consumer {
                    let scale = self.grad_slot(p, gpu).1 as u8 as f32;
                    self.with_layer(l, pass, self.progress, |k, io, rt| {
                        k.bprop_acts(io, i, scale, rt)
                    })?;
                    self.count_delivery(p, gpu);
                }
            }
        }
        self.trunc_bwd_acts(l);
        if producer {
            self.bprop_prevs(l, pass)?;
        }
        Ok(())
    }

    /// `truncBwdActs()`: with `conserveMem`, free the activations and the gradient
    /// this layer owns.
    fn trunc_bwd_acts(&mut self, l: usize) {
        let layer = &self.layers[l];
        if layer.conserve_mem {
            if layer.acts_grad_target.is_none() {
                self.bufs.grads[layer.grad].borrow_mut().truncate();
                for r in &layer.remote {
                    self.bufs.grads[r.grad].borrow_mut().truncate();
                }
            }
            self.bufs.acts[layer.acts].borrow_mut().truncate();
        }
    }

    /// `bprop(passType)`: from each cost layer, in the order of the cost list (2012:
    /// first counts the backward pass, `numBwdMiniPasses`).
    pub fn bprop(&mut self, pass: Pass) -> Result<(), NetError> {
        self.set_phase(1);
        if self.gen == Generation::A12 {
            self.bwd_passes = (self.bwd_passes + 1) % self.opts.wupdate_freq.max(1);
        }
        self.start_bprop(pass)?;
        self.reset();
        Ok(())
    }

    /// `updateWeights()`, every weight layer in link order (2012: with the progress of
    /// the schedules, only after every `wupdate_freq`-th backward pass, and only layers
    /// that computed a gradient since their last update).
    pub fn update_weights(&mut self, progress: f64) -> Result<(), NetError> {
        if self.gen == Generation::A12 && self.bwd_passes != 0 {
            return Ok(());
        }
        self.set_phase(2);
        for l in link_order(self.gen, &self.layers) {
            self.with_layer(l, Pass::Train, progress, |k, _, rt| match k {
                Kind::Weighted(w) => w.update(rt),
                _ => Ok(()),
            })?;
        }
        Ok(())
    }
}

impl ConvNet {
    /// Re-seeds the random streams (`initRandom`) and libc `random()`. The original
    /// seeded once per process from the clock; the driver re-seeds before every training
    /// batch from `--seed`, the epoch and the batch number, so that a resumed run
    /// draws what the uninterrupted run would have drawn.
    pub fn set_random_seed(&mut self, seed: u64) {
        for w in &mut self.workers {
            w.rnd = RandomStreams::init_random(seed);
        }
        self.glibc = GlibcRandom::new(seed as u32);
    }

    pub fn generation(&self) -> Generation {
        self.gen
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name == name)
    }

    /// `getCost()`: the cost layers' values of the last fprop.
    pub fn cost(&self) -> Cost {
        let mut c = Cost {
            num_cases: self.num_cases,
            values: Default::default(),
        };
        for &l in &self.costs {
            if let Kind::Cost(k) = &self.layers[l].kind {
                c.values.insert(
                    self.layers[l].name.clone(),
                    (k.coeff as f64, k.costv.clone()),
                );
            }
        }
        c
    }

    /// A layer's activations after the last fprop.
    pub fn acts(&self, layer: &str) -> Option<std::cell::Ref<'_, NvMatrix>> {
        self.find(layer)
            .map(|l| self.bufs.acts[self.layers[l].acts].borrow())
    }

    /// A layer's activity gradient after the last bprop.
    pub fn acts_grad(&self, layer: &str) -> Option<std::cell::Ref<'_, NvMatrix>> {
        self.find(layer)
            .map(|l| self.bufs.grads[self.layers[l].grad].borrow())
    }

    fn weight_layer(&self, layer: &str) -> Option<&kinds::weighted::WeightLayer> {
        match &self.layers[self.find(layer)?].kind {
            Kind::Weighted(w) => Some(w),
            _ => None,
        }
    }

    fn view(&self, id: usize) -> WeightsView<'_> {
        let m = self.weights.mats(id);
        WeightsView {
            w: &m.w,
            inc: &m.inc,
            grad: self.weights.grad(id),
        }
    }

    /// Weight matrix `i` of a weight layer (the owner's matrices if shared).
    pub fn weights(&self, layer: &str, i: usize) -> Option<WeightsView<'_>> {
        let id = *self.weight_layer(layer)?.weights.get(i)?;
        Some(self.view(id))
    }

    /// The biases of a weight layer.
    pub fn biases(&self, layer: &str) -> Option<WeightsView<'_>> {
        Some(self.view(self.weight_layer(layer)?.biases))
    }

    /// `DataProvider::getMinibatch(idx)`: columns `[start, end)` of every data matrix,
    /// sliced (row-major) into `mini`'s matrices, whose memory is reused.
    fn slice_minibatch(
        data: &[NvMatrix],
        start: usize,
        end: usize,
        mini: &mut Vec<NvMatrix>,
    ) -> Result<(), NetError> {
        mini.resize_with(data.len(), NvMatrix::default);
        for (m, t) in data.iter().zip(mini) {
            m.slice_cols(start, Some(end), t)?;
        }
        Ok(())
    }

    /// `fprop` on the minibatch of columns `[start, end)` ([`Self::slice_minibatch`],
    /// into matrices kept between minibatches).
    fn fprop_cols(
        &mut self,
        data: &[NvMatrix],
        start: usize,
        end: usize,
        pass: Pass,
    ) -> Result<(), NetError> {
        let mut mini = std::mem::take(&mut self.mini);
        let done = Self::slice_minibatch(data, start, end, &mut mini)
            .and_then(|()| self.fprop(&mini, pass));
        self.mini = mini;
        done
    }

    fn minibatches(&self, data: &[NvMatrix]) -> Vec<(usize, usize)> {
        let cases = data.first().map_or(0, NvMatrix::cols);
        let mb = self.opts.minibatch_size.max(1);
        (0..cases.div_ceil(mb))
            .map(|i| (i * mb, ((i + 1) * mb).min(cases)))
            .collect()
    }

    /// `TrainingWorker` with `test = false`: every minibatch of the batch: fprop,
    /// accumulate the cost, bprop, update (2012: every `wupdate_freq` backward
    /// passes). `progress` feeds the 2012 schedules.
    pub fn train_batch(&mut self, data: &[NvMatrix], progress: f64) -> Result<Cost, NetError> {
        // The workers hand the schedules float(progress).
        self.progress = progress as f32 as f64;
        let mut cost = Cost::default();
        for (s, e) in self.minibatches(data) {
            self.fprop_cols(data, s, e, Pass::Train)?;
            cost.add(&self.cost());
            self.bprop(Pass::Train)?;
            self.update_weights(self.progress)?;
        }
        Ok(cost)
    }

    /// `TrainingWorker` with `test = true`: fprop every minibatch with `PASS_TEST`.
    pub fn test_batch(&mut self, data: &[NvMatrix]) -> Result<Cost, NetError> {
        let mut cost = Cost::default();
        for (s, e) in self.minibatches(data) {
            self.fprop_cols(data, s, e, Pass::Test)?;
            cost.add(&self.cost());
        }
        Ok(cost)
    }

    /// `MultiviewTestWorker` (2011 protocol): `data` holds `num_views` view-major
    /// blocks of cases; for each minibatch of real cases, fprop each view, average the
    /// softmax input of the `logreg` cost layer over the views, then fprop that layer
    /// alone on the average. 2012 nets run the 2012 protocol
    /// ([`ConvNet::multiview_test_2012`]).
    pub fn multiview_test(
        &mut self,
        data: &[NvMatrix],
        num_views: usize,
        logreg: &str,
    ) -> Result<Cost, NetError> {
        if self.gen == Generation::A12 {
            return Ok(self.multiview_test_2012(data, num_views, Some(logreg))?.0);
        }
        let err = |m: String| NetError {
            layer: Some(logreg.to_string()),
            message: m,
        };
        let lr = self
            .find(logreg)
            .ok_or_else(|| err("no such layer".into()))?;
        if self.layers[lr].ty != "cost.logreg" {
            return Err(err("not a cost.logreg layer".into()));
        }
        let cases = data.first().map_or(0, NvMatrix::cols);
        if num_views == 0 || !cases.is_multiple_of(num_views) {
            return Err(err(format!("{cases} cases are not {num_views} views")));
        }
        let real = cases / num_views;
        let mb = self.opts.minibatch_size.max(1);
        let probs_layer = self.layers[lr].prev[1];
        let mut cost = Cost::default();
        for i in 0..real.div_ceil(mb) {
            let mut avg = NvMatrix::default();
            for v in 0..num_views {
                let (s, e) = (
                    v * real + i * mb,
                    ((v + 1) * real).min(v * real + (i + 1) * mb),
                );
                self.fprop_cols(data, s, e, Pass::Test)?;
                let p = self.bufs.acts[self.layers[probs_layer].acts].borrow();
                if v == 0 {
                    avg = p.clone();
                } else {
                    avg.add(&p, 1.0, 1.0)?;
                }
            }
            avg.scale(1.0 / num_views as f32);
            *self.bufs.acts[self.layers[probs_layer].acts].borrow_mut() = avg;
            self.orient(lr, false);
            self.with_layer(lr, Pass::Test, 0.0, |k, io, rt| {
                k.fprop_acts(io, 0, 0.0, rt)
            })?;
            cost.add(&self.cost());
        }
        Ok(cost)
    }

    /// `FeatureWorker` for one layer: see [`ConvNet::features_of`].
    pub fn features(
        &mut self,
        data: &[NvMatrix],
        layer: &str,
    ) -> Result<(Cost, NvMatrix), NetError> {
        let (cost, mut f) = self.features_of(data, &[layer])?;
        Ok((cost, f.pop().unwrap_or_default()))
    }

    /// `copyToCPU()` / `syncWithHost`: write every weight layer's weights and
    /// increments and its biases back into the layer dictionaries.
    pub fn sync_to_host(&self, net: &mut config::Net) {
        use config::value::Value;
        for d in &mut net.layers {
            let Some(name) = d.get("name").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            let Some(w) = self.weight_layer(&name) else {
                continue;
            };
            for (key, ids) in [("weights", &w.weights), ("weightsInc", &w.weights)] {
                if let Some(Value::List(list)) = d.get_mut(key) {
                    for (a, &id) in list.iter_mut().zip(ids.iter()) {
                        if let Value::Array(a) = a {
                            let m = self.weights.mats(id);
                            dict::store(if key == "weights" { &m.w } else { &m.inc }, a);
                        }
                    }
                }
            }
            let b = self.weights.mats(w.biases);
            for (key, m) in [("biases", &b.w), ("biasesInc", &b.inc)] {
                if let Some(Value::Array(a)) = d.get_mut(key) {
                    dict::store(m, a);
                }
            }
        }
    }
}
