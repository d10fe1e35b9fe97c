//! Port of layer.cu/layer.cuh's `Layer` base class (both generations): the common
//! state of a layer (name, type, orientation, inputs and consumers, the shared
//! activity and gradient buffers of `actsTarget`/`actsGradTarget`, the counters of
//! the forward and backward protocol) and the context a layer type's `fpropActs`,
//! `bpropActs` and `bpropCommon` run in. The protocol itself (`fprop`, `bprop`) is
//! [`super::ConvNet`]'s; each type's operations are in [`super::kinds`].

use super::kinds::Kind;
use super::weights::WeightArena;
use super::{NetError, Pass};
use crate::config::Generation;
use crate::layers::lr::GlibcRandom;
use crate::nvmatrix::{NvMatrix, RandomStreams};
use std::cell::{Ref, RefCell, RefMut};

/// The activation and gradient matrices of a net. Layers that share a matrix
/// (`actsTarget`, `actsGradTarget`) hold the same index.
#[derive(Default)]
pub struct Bufs {
    pub acts: Vec<RefCell<NvMatrix>>,
    pub grads: Vec<RefCell<NvMatrix>>,
}

/// One layer: what layer.cu's `Layer` holds, plus its type's state.
pub struct Layer {
    pub name: String,
    pub ty: String,
    /// `_trans`: the layer views its matrices as column-major `(cases, outputs)`.
    pub trans: bool,
    pub prev: Vec<usize>,
    pub next: Vec<usize>,
    /// Buffer of this layer's activations (`getActs()`).
    pub acts: usize,
    /// Buffer of this layer's activity gradient (`getActsGrad()`).
    pub grad: usize,
    pub acts_target: Option<usize>,
    pub acts_grad_target: Option<usize>,
    /// `isGradConsumer()`, resolved over the inputs at construction.
    pub grad_consumer: bool,
    pub num_grad_producers_next: usize,
    pub rcvd_f: usize,
    /// Gradients delivered by consumers on this layer's device (2011: by all of them).
    pub rcvd_b: usize,
    /// 2012: `BpropMessage`s from consumers on other devices (`_rcvdBInputMsgs`).
    pub rcvd_msgs: usize,
    /// 2012: the gradient buffers of consumers on other devices, in `_nextDeviceIDs`
    /// order.
    pub remote: Vec<RemoteGrad>,
    pub conserve_mem: bool,
    /// 2012 `gpu=` (-1 for data layers, 0 for 2011 nets).
    pub gpu: i64,
    pub kind: Kind,
}

/// A layer's gradient as its consumers on device `gpu` sum it there (`_actsGrad[d]`,
/// `_rcvdBInputs[d]`).
pub struct RemoteGrad {
    pub gpu: i64,
    pub grad: usize,
    pub rcvd: usize,
}

impl Layer {
    /// `isGradProducer()`: data layers do not produce gradients, cost layers only with
    /// a non-zero coefficient.
    pub fn grad_producer(&self) -> bool {
        self.kind.grad_producer()
    }
}

/// What a layer type's operation may touch: the buffers (borrowed as needed), its
/// own and its inputs' buffer indices.
pub struct Io<'a> {
    pub bufs: &'a Bufs,
    pub acts: usize,
    pub grad: usize,
    pub in_acts: Vec<usize>,
    pub in_grads: Vec<usize>,
}

impl Io<'_> {
    /// `*_inputs[i]` (= `_prev[i]->getActs()`).
    pub fn input(&self, i: usize) -> Ref<'_, NvMatrix> {
        self.bufs.acts[self.in_acts[i]].borrow()
    }
    pub fn acts(&self) -> Ref<'_, NvMatrix> {
        self.bufs.acts[self.acts].borrow()
    }
    pub fn acts_mut(&self) -> RefMut<'_, NvMatrix> {
        self.bufs.acts[self.acts].borrow_mut()
    }
    /// `v`: this layer's activity gradient.
    pub fn v(&self) -> Ref<'_, NvMatrix> {
        self.bufs.grads[self.grad].borrow()
    }
    pub fn v_mut(&self) -> RefMut<'_, NvMatrix> {
        self.bufs.grads[self.grad].borrow_mut()
    }
    /// `_prev[i]->getActsGrad()`.
    pub fn prev_grad_mut(&self, i: usize) -> RefMut<'_, NvMatrix> {
        self.bufs.grads[self.in_grads[i]].borrow_mut()
    }
    /// Input `i` to read while this layer writes its activations: a copy where they are
    /// one matrix (`actsTarget == i`), else the input itself.
    pub fn input_while_writing_acts(&self, i: usize) -> Operand<'_> {
        if self.acts_in_place(i) {
            Operand::Copy(self.acts().clone())
        } else {
            Operand::Shared(self.input(i))
        }
    }
    /// This layer's gradient to read while writing input `i`'s: a copy where they are one
    /// matrix (`actsGradTarget == i`), else the gradient itself.
    pub fn v_while_writing_grad(&self, i: usize) -> Operand<'_> {
        if self.grad_in_place(i) {
            Operand::Copy(self.v().clone())
        } else {
            Operand::Shared(self.v())
        }
    }
    /// Does input `i` share this layer's activations (`actsTarget == i`)?
    pub fn acts_in_place(&self, i: usize) -> bool {
        self.in_acts[i] == self.acts
    }
    /// Does input `i`'s gradient share this layer's (`actsGradTarget == i`)?
    pub fn grad_in_place(&self, i: usize) -> bool {
        self.in_grads[i] == self.grad
    }
}

/// A matrix read by a layer operation: borrowed, or copied where the operation writes
/// the same matrix.
pub enum Operand<'a> {
    Shared(Ref<'a, NvMatrix>),
    Copy(NvMatrix),
}

impl std::ops::Deref for Operand<'_> {
    type Target = NvMatrix;
    fn deref(&self) -> &NvMatrix {
        match self {
            Operand::Shared(r) => r,
            Operand::Copy(m) => m,
        }
    }
}

/// The run-time state every layer operation may need besides its matrices.
pub struct Rt<'a> {
    pub gen: Generation,
    pub pass: Pass,
    pub weights: &'a mut WeightArena,
    /// `NVMatrix::initRandom`'s streams (dropout, noisy neurons, random pooling).
    pub rnd: &'a mut RandomStreams,
    /// libc `random()` (2012 schedule noise).
    pub glibc: &'a mut GlibcRandom,
    pub progress: f64,
    /// 2012: the number of cases the gradients are divided by (`wupdate_freq`
    /// minibatches).
    pub update_cases: Option<usize>,
    /// The net's random seed (for the draws of our inferred random pooling).
    pub seed: u64,
    /// Where the image kernels run.
    pub device: &'a super::device::Device,
}

impl Rt<'_> {
    /// The case count a gradient of `cases` columns is divided by.
    pub fn num_cases(&self, cases: usize) -> usize {
        self.update_cases.unwrap_or(cases)
    }
}

/// Context of a layer's operation: its name (for errors), its consumers' facts
/// resolved at construction, and the generation.
pub fn shape_err(layer: &str) -> impl Fn(crate::cudaconv2::ShapeError) -> NetError + '_ {
    move |e| NetError {
        layer: Some(layer.to_string()),
        message: e.to_string(),
    }
}

/// The 2012 `PASS_TYPE` bit flags (util.cuh): `PASS_TRAIN`, `PASS_TEST`, `PASS_GC`,
/// `PASS_MULTIVIEW_TEST` (= `PASS_TEST | 0x8`) and its `_START` (`| 0x10`) and `_END`
/// (`| 0x20`), `PASS_FEATURE_GEN`.
pub mod pass_flags {
    pub const TRAIN: u32 = 0x1;
    pub const TEST: u32 = 0x2;
    pub const GC: u32 = 0x4;
    pub const MULTIVIEW_TEST: u32 = TEST | 0x8;
    pub const MULTIVIEW_TEST_START: u32 = MULTIVIEW_TEST | 0x10;
    pub const MULTIVIEW_TEST_END: u32 = MULTIVIEW_TEST | 0x20;
    pub const FEATURE_GEN: u32 = 0x40;
}

impl Pass {
    /// The pass as the 2012 code's bit flags.
    pub fn flags(self) -> u32 {
        use pass_flags::*;
        match self {
            Pass::Train => TRAIN,
            Pass::Test => TEST,
            Pass::Gc => GC,
            Pass::MultiviewTestStart => MULTIVIEW_TEST_START,
            Pass::MultiviewTest => MULTIVIEW_TEST,
            Pass::MultiviewTestEnd => MULTIVIEW_TEST_END,
            Pass::FeatureGen => FEATURE_GEN,
        }
    }

    /// `HAS_FLAG(f, pass)`: every bit of `f` is set (`IS_MULTIVIEW_TEST(x)` is
    /// `has_flag(MULTIVIEW_TEST)`, so plain `TEST` is not a multiview pass).
    pub fn has_flag(self, f: u32) -> bool {
        self.flags() & f == f
    }
}
