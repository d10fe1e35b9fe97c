//! Where a net's image kernels run (the 2011 `--gpu` / 2012 per-layer `gpu`
//! placement, reduced to one device): the CPU port (src/cudaconv2) or a CUDA
//! [`Backend`] running cuda/*.cu through src/cuda/launch.
//!
//! On a backend each kernel call uploads its operands, launches, and downloads its
//! targets: activations and gradients stay in host memory between kernels, and every
//! other operation (products, neurons, costs, updates) runs on the CPU. Because our
//! CUDA kernels perform the CPU port's per-output operation sequences, a net gives the
//! CPU's bits on any backend for exact-tier kernels (tests/cuda_net.rs checks a training
//! step in the host emulation).

use super::NetError;
use crate::cuda::{Backend, DevBuf, DevMat, GpuError};
use crate::cudaconv2::ShapeError;
use crate::nvmatrix::NvMatrix;

/// The device of a net's image kernels.
#[derive(Default)]
pub enum Device {
    /// The CPU port.
    #[default]
    Cpu,
    /// A CUDA backend (a GPU, or the host emulation in tests).
    Gpu(Box<dyn Backend>),
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
        Ok(Device::Gpu(Box::new(crate::cuda::driver::Cuda::open(
            ordinal,
        )?)))
    }

    /// What runs the kernels, for the log.
    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "the CPU".into(),
            Device::Gpu(b) => b.name(),
        }
    }

    /// Runs one kernel. On the CPU: `cpu(targets)`. On a backend: uploads `inputs` and,
    /// when `read_targets` (the kernel scales what its targets hold), the targets;
    /// otherwise gives each target zeroed device memory of its `shapes` entry
    /// (`rows, cols`); launches `gpu(backend, inputs, targets)`; downloads every target
    /// into its host matrix, resized to its shape (row-major).
    pub fn run<'t>(
        &self,
        inputs: &[&NvMatrix],
        targets: &mut [&'t mut NvMatrix],
        shapes: &[(usize, usize)],
        read_targets: bool,
        cpu: impl FnOnce(&mut [&'t mut NvMatrix]) -> Result<(), ShapeError>,
        gpu: impl FnOnce(&dyn Backend, &[DevMat], &[DevMat]) -> Result<(), GpuError>,
    ) -> Result<(), NetError> {
        let b = match self {
            Device::Cpu => return Ok(cpu(targets)?),
            Device::Gpu(b) => b.as_ref(),
        };
        let in_bufs = inputs
            .iter()
            .map(|m| upload(b, m))
            .collect::<Result<Vec<_>, _>>()?;
        let out_bufs = targets
            .iter()
            .zip(shapes)
            .map(|(t, &(rows, cols))| {
                if read_targets {
                    if (t.rows(), t.cols()) != (rows, cols) {
                        return Err(GpuError(format!(
                            "a {}x{} target where the kernel adds into a {rows}x{cols} one",
                            t.rows(),
                            t.cols()
                        )));
                    }
                    upload(b, t)
                } else {
                    b.alloc(rows * cols)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ins = inputs
            .iter()
            .zip(&in_bufs)
            .map(|(m, buf)| DevMat::new(buf, m.rows(), m.cols()))
            .collect::<Result<Vec<_>, _>>()?;
        let outs = shapes
            .iter()
            .zip(&out_bufs)
            .map(|(&(rows, cols), buf)| DevMat::new(buf, rows, cols))
            .collect::<Result<Vec<_>, _>>()?;
        gpu(b, &ins, &outs)?;
        for ((t, &(rows, cols)), buf) in targets.iter_mut().zip(shapes).zip(&out_bufs) {
            t.resize(rows, cols);
            t.set_trans(false);
            let data = b.download(buf)?;
            t.data_mut().copy_from_slice(&data);
        }
        Ok(())
    }
}

/// A host matrix's elements in row-major order on the device (transposed matrices are
/// not uploaded: no image kernel takes one).
fn upload(b: &dyn Backend, m: &NvMatrix) -> Result<DevBuf, GpuError> {
    if m.is_trans() && m.rows() > 1 && m.cols() > 1 {
        return Err(GpuError(format!(
            "a transposed {}x{} matrix given to an image kernel",
            m.rows(),
            m.cols()
        )));
    }
    b.upload(m.data())
}
