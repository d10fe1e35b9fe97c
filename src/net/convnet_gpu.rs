//! Port of the 2012 convnet.cu `ConvNetGPU` (one worker per `gpu=` tower: its device,
//! its random streams and its message queue) with layer.cu's message-driven protocol:
//! `fpropNext`, the remote `BpropMessage`s, `addNext`'s random order of consumer
//! devices and `Layer::bprop(passType)`'s merge of the gradients each device summed.
//!
//! The original ran one host thread per GPU; which message reached a queue first
//! depended on timing, so its sums could differ from run to run where a buffer took
//! three or more terms. Here the workers take turns, one message each, in tower order:
//! one of the original's schedules, the same on every run. With one tower this is the
//! original's order: its queue is FIFO and its bprop recursion local (where the
//! manager's data-layer messages interleaved with the worker's own, a matter of timing
//! there, all of the data layers' come first here). The CPU kernels already use every
//! core, so the workers share the calling thread.
//!
//! What follows the original: a layer's consumers on another device write its
//! gradient into that device's buffer (the first of them overwrites it), and the layer
//! adds those buffers to its own (own contributions first, then each remote device in
//! `_nextDeviceIDs` order, a copy where it has no own contribution) before its bprop;
//! each device has its own random streams, all seeded alike (every GPU thread called
//! `initRandom()`, i.e. `time(0)`, in the same second), so `hs` layers of the same
//! shape on two towers draw the same mask; activations cross devices as exact copies,
//! so both towers read the same host matrix here.

use super::layer::RemoteGrad;
use super::{ConvNet, Device, NetError, Pass};
use crate::config::Generation;
use crate::layers::lr::GlibcRandom;
use crate::nvmatrix::{NvMatrix, RandomStreams};
use std::cell::RefCell;
use std::collections::VecDeque;

/// A message to a worker (`FpropMessage`, `BpropMessage`, `BPROP_START`).
#[derive(Debug, Clone, Copy)]
enum Msg {
    /// An input of layer `l` is ready.
    Fprop(usize),
    /// A consumer on another device delivered layer `l`'s gradient.
    Bprop(usize),
    /// Start the backward pass at this worker's cost layers.
    BpropStart,
}

/// `ConvNetGPU`: where one tower's layers run.
pub struct Worker {
    /// Where its image kernels run.
    pub(super) device: Device,
    /// Its `NVMatrix::initRandom` streams (`rndDevStates[device]`).
    pub(super) rnd: RandomStreams,
    queue: VecDeque<Msg>,
}

impl Worker {
    pub(super) fn new(seed: u64) -> Worker {
        Worker {
            device: Device::Cpu,
            rnd: RandomStreams::init_random(seed),
            queue: VecDeque::new(),
        }
    }
}

/// `addNext`'s `_nextDeviceIDs` of every layer: for each link `(from, to)` in link
/// order, `to`'s device inserted into `from`'s list at `rand() % (len + 1)` when first
/// seen. `rand()` runs unseeded then (glibc's seed 1): the net is built before any GPU
/// thread calls `srand`.
pub(super) fn next_devices(links: &[(usize, usize)], gpu: &[i64]) -> Vec<Vec<i64>> {
    let mut rand = GlibcRandom::new(1);
    let mut out = vec![Vec::new(); gpu.len()];
    for &(from, to) in links {
        let list: &mut Vec<i64> = &mut out[from];
        if !list.contains(&gpu[to]) {
            let at = rand.random() as usize % (list.len() + 1);
            list.insert(at, gpu[to]);
        }
    }
    out
}

/// The remote gradient buffers of a layer on `own` whose consumers are on `devices`
/// (`postInit`'s `_actsGrad[d]`), new buffers in `grads`.
pub(super) fn remote_grads(
    own: i64,
    devices: &[i64],
    grads: &mut Vec<RefCell<NvMatrix>>,
) -> Vec<RemoteGrad> {
    devices
        .iter()
        .filter(|&&d| d != own)
        .map(|&gpu| {
            grads.push(RefCell::default());
            RemoteGrad {
                gpu,
                grad: grads.len() - 1,
                rcvd: 0,
            }
        })
        .collect()
}

impl ConvNet {
    /// The worker layer `l` runs on (data layers, which live on the manager, give 0).
    pub(super) fn tower(&self, l: usize) -> usize {
        self.layers[l].gpu.max(0) as usize
    }

    /// How many devices the net's layers are placed on (`gpu=`; 1 for 2011 nets).
    pub fn towers(&self) -> usize {
        self.workers.len()
    }

    /// Runs tower `i`'s image kernels on `devices[i]` from now on (`--gpu`; see
    /// [`Device`]); one device per tower.
    pub fn set_devices(&mut self, devices: Vec<Device>) -> Result<(), NetError> {
        if devices.len() != self.workers.len() {
            return Err(NetError {
                layer: None,
                message: format!(
                    "{} devices for a net on {} towers",
                    devices.len(),
                    self.workers.len()
                ),
            });
        }
        for (w, d) in self.workers.iter_mut().zip(devices) {
            w.device = d;
        }
        Ok(())
    }

    /// `fpropNext`: 2011 calls each consumer directly (depth first); 2012 queues an
    /// `FpropMessage` on the consumer's worker, also on its own device.
    pub(super) fn fprop_next(&mut self, l: usize, pass: Pass) -> Result<(), NetError> {
        for n in self.layers[l].next.clone() {
            match self.gen {
                Generation::C1 => self.deliver_fprop(n, pass)?,
                Generation::A12 => {
                    let w = self.tower(n);
                    self.workers[w].queue.push_back(Msg::Fprop(n));
                }
            }
        }
        Ok(())
    }

    /// `Layer::fprop(passType)`: count the input; run once all have arrived.
    fn deliver_fprop(&mut self, n: usize, pass: Pass) -> Result<(), NetError> {
        self.layers[n].rcvd_f += 1;
        if self.layers[n].rcvd_f == self.layers[n].prev.len() {
            self.fprop_layer(n, pass)?;
        }
        Ok(())
    }

    /// Starts the backward pass: 2011 from each cost layer in order; 2012 sends
    /// `BPROP_START` to every worker (each then runs its own cost layers in order).
    pub(super) fn start_bprop(&mut self, pass: Pass) -> Result<(), NetError> {
        match self.gen {
            Generation::C1 => {
                for c in self.costs.clone() {
                    self.bprop_layer(c, pass)?;
                }
                Ok(())
            }
            Generation::A12 => {
                for w in &mut self.workers {
                    w.queue.push_back(Msg::BpropStart);
                }
                self.run_workers(pass)
            }
        }
    }

    /// After layer `l` delivered its gradient to its input `p`: 2011 and a `p` on the
    /// same device recurse into `p` now; a `p` on another device gets a `BpropMessage`.
    /// (The original sends every remote message before the local recursions.)
    pub(super) fn bprop_prevs(&mut self, l: usize, pass: Pass) -> Result<(), NetError> {
        let prev: Vec<usize> = (self.layers[l].prev.iter().copied())
            .filter(|&p| self.layers[p].grad_consumer)
            .collect();
        let remote = |net: &Self, p: usize| {
            net.gen == Generation::A12 && net.layers[p].gpu != net.layers[l].gpu
        };
        for &p in &prev {
            if remote(self, p) {
                let w = self.tower(p);
                self.workers[w].queue.push_back(Msg::Bprop(p));
            }
        }
        for &p in &prev {
            if !remote(self, p) {
                self.bprop_layer(p, pass)?;
            }
        }
        Ok(())
    }

    /// The workers take turns, one message each in tower order, until every queue is
    /// empty (the manager's wait for the terminal messages).
    pub(super) fn run_workers(&mut self, pass: Pass) -> Result<(), NetError> {
        loop {
            let mut idle = true;
            for w in 0..self.workers.len() {
                let Some(msg) = self.workers[w].queue.pop_front() else {
                    continue;
                };
                idle = false;
                match msg {
                    Msg::Fprop(n) => self.deliver_fprop(n, pass)?,
                    Msg::Bprop(p) => {
                        self.layers[p].rcvd_msgs += 1;
                        self.bprop_layer(p, pass)?;
                    }
                    Msg::BpropStart => {
                        let costs: Vec<usize> = (self.costs.iter().copied())
                            .filter(|&c| self.tower(c) == w)
                            .collect();
                        for c in costs {
                            self.bprop_layer(c, pass)?;
                        }
                    }
                }
            }
            if idle {
                return Ok(());
            }
        }
    }

    /// Empties every queue (after an error, a new pass starts clean).
    pub(super) fn clear_queues(&mut self) {
        for w in &mut self.workers {
            w.queue.clear();
        }
    }

    /// Layer `l`'s gradient buffer that consumers on device `gpu` write, and whether one
    /// already has (`getActsGrad(d)`, `getRcvdBInputs(d) > 0`).
    pub(super) fn grad_slot(&self, l: usize, gpu: i64) -> (usize, bool) {
        let layer = &self.layers[l];
        match layer.remote.iter().find(|r| r.gpu == gpu) {
            Some(r) => (r.grad, r.rcvd > 0),
            None => (layer.grad, layer.rcvd_b > 0),
        }
    }

    /// Counts a delivery into layer `p`'s gradient from a consumer on device `gpu`
    /// (`incRcvdBInputs(d)`).
    pub(super) fn count_delivery(&mut self, p: usize, gpu: i64) {
        let layer = &mut self.layers[p];
        match layer.remote.iter_mut().find(|r| r.gpu == gpu) {
            Some(r) => r.rcvd += 1,
            None => layer.rcvd_b += 1,
        }
    }

    /// `Layer::bprop(passType)`'s merge: adds each remote buffer that received a
    /// gradient to the layer's own, in `_nextDeviceIDs` order; the first is copied
    /// where the own buffer received none.
    pub(super) fn merge_remote_grads(&mut self, l: usize) -> Result<(), NetError> {
        let layer = &self.layers[l];
        let mut copy = layer.rcvd_b == 0;
        let mut own = self.bufs.grads[layer.grad].borrow_mut();
        for r in layer.remote.iter().filter(|r| r.rcvd > 0) {
            let mut mat = self.bufs.grads[r.grad].borrow_mut();
            if mat.is_empty() {
                continue;
            }
            mat.transpose_to(layer.trans);
            own.transpose_to(layer.trans);
            own.add(&mat, if copy { 0.0 } else { 1.0 }, 1.0)
                .map_err(|e| NetError {
                    layer: Some(layer.name.clone()),
                    message: e.to_string(),
                })?;
            copy = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::next_devices;

    extern "C" {
        fn srand(seed: u32);
        fn rand() -> i32;
    }

    /// `_nextDeviceIDs` as glibc's own `rand()` orders them (unseeded, i.e. seed 1).
    #[test]
    fn consumer_devices_are_where_glibc_rand_inserts_them() {
        let gpu = [0, 1, 2, 0, 2, 1, 3];
        let links = [
            (0, 2),
            (0, 3),
            (0, 4),
            (1, 5),
            (0, 5),
            (1, 3),
            (0, 6),
            (1, 6),
        ];
        // SAFETY: plain libc calls; no other test uses libc's generator.
        unsafe { srand(1) };
        let mut want = vec![Vec::new(); gpu.len()];
        for (from, to) in links {
            let list: &mut Vec<i64> = &mut want[from];
            if !list.contains(&gpu[to]) {
                let r = unsafe { rand() } as usize;
                list.insert(r % (list.len() + 1), gpu[to]);
            }
        }
        assert_eq!(next_devices(&links, &gpu), want);
        assert_eq!(want[0].len(), 4);
    }
}
