//! Where a net's image kernels run (the original's `--gpu` device, one per net): the
//! CPU port (src/cudaconv2) or a CUDA [`Backend`] running cuda/*.cu through
//! src/cuda/launch.
//!
//! On a backend run filterActs, imgActs and weightActs (conv, local, sparse), pooling
//! and its undo (max, avg, maxabs), and the same-map, cross-map and contrast
//! normalisations and their undo. Each call uploads its operands, launches, and
//! downloads its targets: activations and gradients stay in host memory between
//! kernels, and every other operation (products, neurons, costs, weight updates, the
//! lighter image kernels such as blur, resize and colour conversions) runs on the CPU.
//! Because our CUDA kernels perform the CPU port's per-output operation sequences, a
//! net gives the CPU's bits on a backend wherever the kernels are exact tier
//! (tests/cuda_net.rs trains five nets in the host emulation to the CPU's bits).

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

    /// Runs one kernel. On the CPU: `cpu(targets)`. On a backend: uploads `inputs`, and
    /// each target whose `read` flag is set (the kernel reads what it holds: scaled
    /// writes, in-place updates), giving the others zeroed device memory of their
    /// `shapes` entry (`rows, cols`); launches `gpu(backend, inputs, targets)`; downloads
    /// every target into its host matrix, resized to its shape (row-major).
    pub fn run<'t>(
        &self,
        inputs: &[&NvMatrix],
        targets: &mut [&'t mut NvMatrix],
        shapes: &[(usize, usize)],
        read: &[bool],
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
            .zip(read)
            .map(|((t, &(rows, cols)), &read)| {
                if read {
                    if (t.rows(), t.cols()) != (rows, cols) {
                        return Err(GpuError(format!(
                            "a {}x{} target where the kernel reads a {rows}x{cols} one",
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
