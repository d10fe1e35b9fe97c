//! Launches of cuda/nvmatrix.cu (NVMatrix's kernels; CPU side src/nvmatrix/).

use crate::cuda::{grid_for, Backend, DevBuf, GpuError, Param};

/// `NVMatrix::scale(s, target)`: `dst = src * s` elementwise over `n` words.
pub fn nvm_scale(b: &dyn Backend, src: &DevBuf, dst: &DevBuf, s: f32) -> Result<(), GpuError> {
    let n = src.len();
    if dst.len() != n {
        return Err(GpuError(format!(
            "nvm_scale: target has {} words, source {n}",
            dst.len()
        )));
    }
    let (grid, block) = grid_for(n);
    b.launch(
        "nvm_scale",
        grid,
        block,
        &[
            dst.param(),
            src.param(),
            Param::I32(n as i32),
            Param::F32(s),
        ],
    )
}
