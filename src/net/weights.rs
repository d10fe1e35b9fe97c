//! Port of weights.cuh (cuda-convnet 1) and weights.cuh/weights.cu (2012): the
//! `Weights` objects of the weight layers (weights, increments, gradient, momentum,
//! weight decay, learning rate, sharing and update counts), kept in one arena that
//! the layers index, so a shared matrix is one entry that others point at.
//!
//! The update rule itself is [`crate::layers::weights`].

use crate::config::Generation;
use crate::layers::lr::{GlibcRandom, Schedule};
use crate::layers::weights::{update_2011, update_2012, SuperMomentum};
use crate::nvmatrix::NvMatrix;

/// The learning rate: 2011 a constant `epsW`, 2012 a schedule over the progress.
#[derive(Clone, Debug)]
pub enum Rate {
    Eps(f32),
    Schedule(Box<Schedule>),
}

impl Rate {
    /// `getEps()` (2011) / `getBaseRate()` (2012): is the matrix learned at all?
    pub fn base(&self) -> f64 {
        match self {
            Rate::Eps(e) => *e as f64,
            Rate::Schedule(s) => s.base_rate(),
        }
    }
}

/// One `Weights` object. A shared one (`src` set) has no matrices of its own.
#[derive(Clone, Debug)]
pub struct Weights {
    pub w: NvMatrix,
    pub inc: NvMatrix,
    /// `_weightsGrad` of `useGrad` matrices (empty otherwise).
    pub grad: NvMatrix,
    pub use_grad: bool,
    pub mom: f32,
    pub wc: f32,
    pub rate: Rate,
    /// 2012 `_wball` (the layer's `wballNormed`): the radius of the weight ball
    /// `constrainWeights` keeps fc and conv filters (local: each module's) in; 0 for
    /// none, and for biases and sharers.
    pub wball: f32,
    /// 2012 `superEps > 0`: the super-momentum state of an owner.
    pub super_mom: Option<SuperMomentum>,
    num_updates: usize,
    /// `_srcWeights`: the arena index of the owner this entry shares.
    pub src: Option<usize>,
}

impl Weights {
    pub fn owned(
        w: NvMatrix,
        inc: NvMatrix,
        rate: Rate,
        wc: f32,
        mom: f32,
        use_grad: bool,
    ) -> Weights {
        Weights {
            w,
            inc,
            grad: NvMatrix::default(),
            use_grad,
            mom,
            wc,
            rate,
            wball: 0.0,
            super_mom: None,
            num_updates: 0,
            src: None,
        }
    }
}

/// All weight matrices of a net, owners and shared views.
#[derive(Default, Debug)]
pub struct WeightArena {
    list: Vec<Weights>,
}

impl WeightArena {
    pub fn push(&mut self, w: Weights) -> usize {
        self.list.push(w);
        self.list.len() - 1
    }

    /// `Weights(srcWeights, epsW)`: shares `src`'s matrices with its own rate; takes
    /// the source's momentum and `useGrad`; weight decay 0.
    pub fn share(&mut self, src: usize, rate: Rate) -> usize {
        let owner = self.owner(src);
        let s = &self.list[owner];
        let shared = Weights {
            w: NvMatrix::default(),
            inc: NvMatrix::default(),
            grad: NvMatrix::default(),
            use_grad: s.use_grad,
            mom: s.mom,
            wc: 0.0,
            rate,
            wball: 0.0,
            super_mom: None,
            num_updates: 0,
            src: Some(owner),
        };
        self.push(shared)
    }

    pub fn owner(&self, id: usize) -> usize {
        self.list[id].src.unwrap_or(id)
    }

    /// The entry itself (its own rate, momentum, decay).
    pub fn get(&self, id: usize) -> &Weights {
        &self.list[id]
    }

    /// The owner's matrices (`getW`, `getInc`, ...).
    pub fn mats(&self, id: usize) -> &Weights {
        &self.list[self.owner(id)]
    }

    pub fn mats_mut(&mut self, id: usize) -> &mut Weights {
        let o = self.owner(id);
        &mut self.list[o]
    }

    /// `getNumUpdates()` (the owner's count).
    pub fn num_updates(&self, id: usize) -> usize {
        self.mats(id).num_updates
    }

    /// `incNumUpdates()` (on the owner).
    pub fn inc_num_updates(&mut self, id: usize) {
        self.mats_mut(id).num_updates += 1;
    }

    /// `getGrad()`: the gradient matrix of `useGrad` weights, else the increments.
    pub fn grad_mut(&mut self, id: usize) -> &mut NvMatrix {
        let m = self.mats_mut(id);
        if m.use_grad {
            &mut m.grad
        } else {
            &mut m.inc
        }
    }

    pub fn grad(&self, id: usize) -> &NvMatrix {
        let m = self.mats(id);
        if m.use_grad {
            &m.grad
        } else {
            &m.inc
        }
    }

    /// The current rate of entry `id` (2012: `getRate(progress)`, which draws the
    /// schedule's noise; 2011: `epsW`).
    pub fn rate(&mut self, id: usize, progress: f64, rng: &mut GlibcRandom) -> f64 {
        match &mut self.list[id].rate {
            Rate::Eps(e) => *e as f64,
            Rate::Schedule(s) => s.rate(progress, rng),
        }
    }

    /// `update()` (2011) / `update(progress)` (2012): only the owner updates, only
    /// when learned; resets the update count.
    pub fn update(
        &mut self,
        id: usize,
        gen: Generation,
        progress: f64,
        rng: &mut GlibcRandom,
    ) -> Result<(), crate::cudaconv2::ShapeError> {
        let e = &mut self.list[id];
        if e.src.is_some() || e.rate.base() <= 0.0 {
            return Ok(());
        }
        let grad = e.use_grad.then_some(&e.grad);
        match (&mut e.rate, gen) {
            (Rate::Eps(eps), _) => update_2011(&mut e.w, &mut e.inc, grad, e.mom, e.wc, *eps)?,
            (Rate::Schedule(s), _) => update_2012(
                &mut e.w,
                &mut e.inc,
                grad,
                e.super_mom.as_mut(),
                e.mom,
                e.wc,
                s,
                rng,
                progress as f32,
            )?,
        }
        e.num_updates = 0;
        Ok(())
    }

    /// Marks the owner's gradient as consumed (`_numUpdates = 0`) after an update done
    /// elsewhere (the tree weights of `treefc`).
    pub fn clear_num_updates(&mut self, id: usize) {
        self.mats_mut(id).num_updates = 0;
    }

    /// Overwrites the owner's weights (the gradient check's perturbation).
    pub fn w_mut(&mut self, id: usize) -> &mut NvMatrix {
        &mut self.mats_mut(id).w
    }
}
