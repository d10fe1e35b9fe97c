//! Port of convnet.cu/convnet.cuh (`ConvNet`), worker.cu (the training, test,
//! multiview-test, feature and gradient-check workers), cost.cu (`Cost`) and, in
//! [`layer`], layer.cu/layer.cuh with weights.cuh's `Weights`, of both generations.
//!
//! A [`ConvNet`] is built from the parsed layer dictionaries ([`crate::config::Net`]):
//! the same dictionaries convnet.py hands to its C++ side and pickles into checkpoints.
//! [`ConvNet::sync_to_host`] writes weights and increments back into them
//! (`copyToCPU`), so saving a checkpoint is pickling those dictionaries.

pub mod cost;

pub use cost::Cost;

use crate::config;
use crate::nvmatrix::NvMatrix;
use std::fmt;

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

/// The network (`ConvNet`): layers in definition order, the weights they own or
/// share, and the buffers of activations and gradients.
pub struct ConvNet {
    _private: (),
}

impl ConvNet {
    /// `ConvNet(layerParams, minibatchSize, deviceID)` then `initCuda` (random
    /// streams, weights to the device).
    pub fn new(_net: &config::Net, _opts: NetOptions) -> Result<ConvNet, NetError> {
        todo!()
    }

    /// `fprop(data, passType)` on one minibatch: `data[i]` is the matrix of `dataIdx
    /// i`, `(dims, cases)` row-major.
    pub fn fprop(&mut self, _data: &[NvMatrix], _pass: Pass) -> Result<(), NetError> {
        todo!()
    }

    /// `bprop(passType)`: from each cost layer, in the order of the cost list.
    pub fn bprop(&mut self, _pass: Pass) -> Result<(), NetError> {
        todo!()
    }

    /// `updateWeights()` (2012: with the progress of the schedules).
    pub fn update_weights(&mut self, _progress: f64) -> Result<(), NetError> {
        todo!()
    }

    /// `getCost()`: the cost layers' values of the last fprop.
    pub fn cost(&self) -> Cost {
        todo!()
    }

    /// A layer's activations after the last fprop.
    pub fn acts(&self, _layer: &str) -> Option<&NvMatrix> {
        todo!()
    }

    /// A layer's activity gradient after the last bprop.
    pub fn acts_grad(&self, _layer: &str) -> Option<&NvMatrix> {
        todo!()
    }

    /// Weight matrix `i` of a weight layer (the owner's matrices if shared).
    pub fn weights(&self, _layer: &str, _i: usize) -> Option<WeightsView<'_>> {
        todo!()
    }

    /// The biases of a weight layer.
    pub fn biases(&self, _layer: &str) -> Option<WeightsView<'_>> {
        todo!()
    }

    /// `TrainingWorker` with `test = false`: every minibatch of the batch: fprop,
    /// accumulate the cost, bprop, update. `progress` feeds the 2012 schedules.
    pub fn train_batch(&mut self, _data: &[NvMatrix], _progress: f64) -> Result<Cost, NetError> {
        todo!()
    }

    /// `TrainingWorker` with `test = true`: fprop every minibatch with `PASS_TEST`.
    pub fn test_batch(&mut self, _data: &[NvMatrix]) -> Result<Cost, NetError> {
        todo!()
    }

    /// `MultiviewTestWorker`: `data` holds `num_views` view-major blocks of cases;
    /// `logreg` names the cost layer whose softmax input is averaged over the views.
    pub fn multiview_test(
        &mut self,
        _data: &[NvMatrix],
        _num_views: usize,
        _logreg: &str,
    ) -> Result<Cost, NetError> {
        todo!()
    }

    /// `FeatureWorker`: fprop with `PASS_TEST` and collect `layer`'s activations as a
    /// `(cases, outputs)` row-major matrix.
    pub fn features(&mut self, _data: &[NvMatrix], _layer: &str) -> Result<(Cost, NvMatrix), NetError> {
        todo!()
    }

    /// `GradCheckWorker` / `checkGradients()` on the first minibatch of `data`,
    /// printing the original's report to `out`.
    pub fn check_gradients(
        &mut self,
        _data: &[NvMatrix],
        _out: &mut dyn std::io::Write,
    ) -> Result<GcSummary, NetError> {
        todo!()
    }

    /// `copyToCPU()` / `syncWithHost`: write every owner's weights and increments
    /// (and biases) back into the layer dictionaries.
    pub fn sync_to_host(&self, _net: &mut config::Net) {
        todo!()
    }
}
