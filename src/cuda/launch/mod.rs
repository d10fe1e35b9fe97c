//! Launch wrappers: the host side of each kernel in cuda/*.cu, written once against
//! [`super::Backend`]: argument checks, the original's variant selection (shared with
//! the CPU port), grid sizes and the parameter order of the kernel's signature. One
//! module per kernel file; the helpers they share are here.

pub mod conv;
pub mod conv_util;
pub mod nvmatrix;

pub use nvmatrix::*;

use super::{grid_for, Backend, DevMat, GpuError, Param};
use crate::cudaconv2::ShapeError;

/// A failed host check of the CPU port, as a device error.
fn shape_error(e: ShapeError) -> GpuError {
    GpuError(e.to_string())
}

/// An `int` kernel parameter; `Err` if `v` does not fit.
fn int(v: usize) -> Result<Param, GpuError> {
    i32::try_from(v)
        .map(Param::I32)
        .map_err(|_| GpuError(format!("{v} does not fit the kernels' int parameters")))
}

/// `Err` unless the (not resizable) `targets` are a row-major `rows x cols` matrix, the
/// shape the CPU function gives them.
fn check_targets(
    function: &str,
    targets: &DevMat,
    rows: usize,
    cols: usize,
) -> Result<(), GpuError> {
    if (targets.rows, targets.cols, targets.trans) != (rows, cols, false) {
        return Err(GpuError(format!(
            "{function}: targets are {}x{}{}, the output {rows}x{cols} (device targets are not resized)",
            targets.rows,
            targets.cols,
            if targets.trans { " (column-major)" } else { "" },
        )));
    }
    Ok(())
}

/// Launches `name` over `n` outputs, one thread each (nothing when `n == 0`).
fn launch(b: &dyn Backend, name: &str, n: usize, params: &[Param]) -> Result<(), GpuError> {
    int(n)?;
    if n == 0 {
        return Ok(());
    }
    let (grid, block) = grid_for(n);
    b.launch(name, grid, block, params)
}
