//! Where a net's image kernels run (the original's `--gpu` device, one per net): the
//! CPU port (src/cudaconv2) or a CUDA [`Backend`] running cuda/*.cu through
//! src/cuda/launch.
//!
//! On a backend run filterActs, imgActs and weightActs (conv, local, sparse), pooling
//! and its undo (max, avg, maxabs), the same-map, cross-map and contrast
//! normalisations and their undo, the fully connected layers' products (cuBLAS
//! `sgemm` with the original's arguments) and the dropout masks' uniform draws (our
//! cuRAND XORWOW, the net's random streams copied in and back). Each call launches,
//! and downloads its targets: activations and gradients live in host memory between
//! kernels, and every other operation (neurons, costs, weight updates, the lighter
//! image kernels such as blur, resize and colour conversions) runs on the CPU. Operands
//! are uploaded only when the device has no copy of their current values: the device
//! keeps what it uploaded and what its kernels wrote, by [`NvMatrix::stamp`] (a
//! `Resident` set), so weights cross once per update and a kernel's output feeds the
//! next kernel without a second trip, unless the CPU changed it in between.
//! Because our CUDA kernels perform the CPU port's per-output operation sequences, a
//! net gives the CPU's bits on a backend wherever the kernels are exact tier
//! (tests/cuda_net.rs trains five nets in the host emulation to the CPU's bits).

use super::NetError;
use crate::cuda::launch::nvmatrix::{randomize, Randomizer};
use crate::cuda::{Backend, DevBuf, DevMat, GpuError};
use crate::cudaconv2::ShapeError;
use crate::nvmatrix::{NvMatrix, RandomStreams};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// The device of a net's image kernels.
#[derive(Default)]
pub enum Device {
    /// The CPU port.
    #[default]
    Cpu,
    /// A CUDA backend (a GPU, or the host emulation in tests).
    Gpu(Gpu),
}

/// A CUDA backend and the device copies it keeps.
pub struct Gpu {
    backend: Box<dyn Backend>,
    resident: RefCell<Resident>,
}

/// Device copies of host matrices' values, by stamp, oldest first out once they pass
/// [`RESIDENT_WORDS`] (ours: the original kept every matrix on the GPU).
#[derive(Default)]
struct Resident {
    bufs: HashMap<u64, Rc<DevBuf>>,
    order: VecDeque<u64>,
    words: usize,
}

/// The most words of device copies kept (1 GiB).
const RESIDENT_WORDS: usize = 1 << 28;

impl Resident {
    /// The device copy of `m`'s current values, uploaded if there is none.
    fn get_or_upload(&mut self, b: &dyn Backend, m: &NvMatrix) -> Result<Rc<DevBuf>, GpuError> {
        if let Some(buf) = self.bufs.get(&m.stamp()) {
            return Ok(buf.clone());
        }
        let buf = Rc::new(b.upload(m.data())?);
        self.keep(m.stamp(), buf.clone());
        Ok(buf)
    }

    /// Records `buf` as holding the values of stamp `stamp`.
    fn keep(&mut self, stamp: u64, buf: Rc<DevBuf>) {
        self.words += buf.len();
        match self.bufs.insert(stamp, buf) {
            Some(old) => self.words -= old.len(),
            None => self.order.push_back(stamp),
        }
        while self.words > RESIDENT_WORDS {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(buf) = self.bufs.remove(&old) {
                self.words -= buf.len();
            }
        }
    }
}

impl From<GpuError> for NetError {
    fn from(e: GpuError) -> NetError {
        NetError {
            layer: None,
            message: e.to_string(),
        }
    }
}

impl Device {
    /// CUDA device `ordinal` (`--device=cuda --gpu=ordinal`).
    pub fn cuda(ordinal: usize) -> Result<Device, GpuError> {
        Ok(Device::gpu(Box::new(crate::cuda::driver::Cuda::open(
            ordinal,
        )?)))
    }

    /// A net's kernels on `backend`, with no device copies yet.
    pub fn gpu(backend: Box<dyn Backend>) -> Device {
        Device::Gpu(Gpu {
            backend,
            resident: RefCell::default(),
        })
    }

    /// What runs the kernels, for the log.
    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "the CPU".into(),
            Device::Gpu(g) => g.backend.name(),
        }
    }

    /// `target.randomizeUniform()` with the streams `rnd`: on a backend the streams go
    /// to the device for the draw (`kUnaryRandomize`) and come back advanced.
    pub fn randomize_uniform(
        &self,
        rnd: &mut RandomStreams,
        target: &mut NvMatrix,
    ) -> Result<(), NetError> {
        let b = match self {
            Device::Cpu => {
                target.randomize_uniform(rnd);
                return Ok(());
            }
            Device::Gpu(g) => g.backend.as_ref(),
        };
        let words = rnd.words();
        let states = b.alloc(words.len())?;
        b.write_words(&states, 0, &words)?;
        let buf = b.alloc(target.len())?;
        let m = DevMat::with_trans(&buf, target.rows(), target.cols(), target.is_trans())?;
        randomize(b, &states, Randomizer::Uniform, m, None, m)?;
        let mut back = vec![0u32; words.len()];
        b.read_words(&states, 0, &mut back)?;
        rnd.set_words(&back);
        b.download_into(&buf, target.data_mut())?;
        Ok(())
    }

    /// Runs one kernel whose targets are row-major (the image kernels): see
    /// [`Device::run_oriented`].
    pub fn run<'t>(
        &self,
        inputs: &[&NvMatrix],
        targets: &mut [&'t mut NvMatrix],
        shapes: &[(usize, usize)],
        read: &[bool],
        cpu: impl FnOnce(&mut [&'t mut NvMatrix]) -> Result<(), ShapeError>,
        gpu: impl FnOnce(&dyn Backend, &[DevMat], &[DevMat]) -> Result<(), GpuError>,
    ) -> Result<(), NetError> {
        self.run_oriented(false, inputs, targets, shapes, read, cpu, gpu)
    }

    /// Runs one kernel. On the CPU: `cpu(targets)`. On a backend: finds or uploads
    /// `inputs` (in their orientation; see `Resident`), uploads each target whose
    /// `read` flag is set (the kernel reads what it holds: scaled writes, in-place
    /// updates), giving the others zeroed device memory of their `shapes` entry (`rows,
    /// cols`); launches `gpu(backend, inputs, targets)`; downloads every target into its
    /// host matrix, resized to its shape, column-major where `trans` (the products'
    /// targets), else row-major, and keeps the target's device memory as the copy of
    /// its new values.
    #[allow(clippy::too_many_arguments)]
    pub fn run_oriented<'t>(
        &self,
        trans: bool,
        inputs: &[&NvMatrix],
        targets: &mut [&'t mut NvMatrix],
        shapes: &[(usize, usize)],
        read: &[bool],
        cpu: impl FnOnce(&mut [&'t mut NvMatrix]) -> Result<(), ShapeError>,
        gpu: impl FnOnce(&dyn Backend, &[DevMat], &[DevMat]) -> Result<(), GpuError>,
    ) -> Result<(), NetError> {
        let (b, resident) = match self {
            Device::Cpu => return Ok(cpu(targets)?),
            Device::Gpu(g) => (g.backend.as_ref(), &g.resident),
        };
        let in_bufs = inputs
            .iter()
            .map(|m| resident.borrow_mut().get_or_upload(b, m))
            .collect::<Result<Vec<_>, _>>()?;
        let out_bufs = targets
            .iter()
            .zip(shapes)
            .zip(read)
            .map(|((t, &(rows, cols)), &read)| {
                if read {
                    if (t.rows(), t.cols(), t.is_trans()) != (rows, cols, trans) {
                        return Err(GpuError(format!(
                            "a {}x{} target (transposed: {}) where the kernel reads a \
                             {rows}x{cols} one (transposed: {trans})",
                            t.rows(),
                            t.cols(),
                            t.is_trans()
                        )));
                    }
                    b.upload(t.data())
                } else {
                    b.alloc(rows * cols)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ins = inputs
            .iter()
            .zip(&in_bufs)
            .map(|(m, buf)| DevMat::with_trans(buf, m.rows(), m.cols(), m.is_trans()))
            .collect::<Result<Vec<_>, _>>()?;
        let outs = shapes
            .iter()
            .zip(&out_bufs)
            .map(|(&(rows, cols), buf)| DevMat::with_trans(buf, rows, cols, trans))
            .collect::<Result<Vec<_>, _>>()?;
        gpu(b, &ins, &outs)?;
        for ((t, &(rows, cols)), buf) in targets.iter_mut().zip(shapes).zip(out_bufs) {
            t.resize(rows, cols);
            t.set_trans(trans);
            b.download_into(&buf, t.data_mut())?;
            resident.borrow_mut().keep(t.stamp(), Rc::new(buf));
        }
        Ok(())
    }
}
