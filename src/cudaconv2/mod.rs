//! Port of cudaconv2/ (cudaconv2.cuh, filter_acts.cu, img_acts.cu, weight_acts.cu,
//! conv_util.cu): the convolution, pooling and normalisation kernels, on the CPU.
//!
//! Each kernel reproduces, for every output element, the original CUDA kernel's
//! sequence of single-precision operations: the variant the original host code picks
//! for the shape, its accumulation order, and `f32::mul_add` exactly where nvcc fuses.
//! Its doc comment states its tier (exact, or bounded with a measured ulp bound).
//! Work is split over threads by output blocks ([`crate::parallel`]), never inside a
//! sum, so results do not depend on the thread count.

pub mod conv_util;
pub mod filter_acts;
pub mod img_acts;
pub mod lanes;
pub mod shapes;
pub mod weight_acts;

use crate::nvmatrix::NvMatrix;
use std::fmt;

/// A matrix's shape as the host asserts read it (`getNumRows()`, `getNumCols()`,
/// `isTrans()`): of an [`NvMatrix`], or of a device matrix ([`crate::cuda::DevMat`]), so
/// that the CPU port and the CUDA launches run the same checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatShape {
    pub rows: usize,
    pub cols: usize,
    pub trans: bool,
}

impl MatShape {
    /// `getLeadingDim()`: the length of the contiguous direction.
    pub fn leading_dim(&self) -> usize {
        if self.trans {
            self.rows
        } else {
            self.cols
        }
    }
    /// `getFollowingDim()`: the other dimension.
    pub fn following_dim(&self) -> usize {
        if self.trans {
            self.cols
        } else {
            self.rows
        }
    }
}

impl From<&NvMatrix> for MatShape {
    fn from(m: &NvMatrix) -> MatShape {
        MatShape {
            rows: m.rows(),
            cols: m.cols(),
            trans: m.is_trans(),
        }
    }
}

/// A host-side assertion of the original failed: the shapes do not fit the kernel.
/// (The original aborts; we return this and the caller reports it.)
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeError {
    /// The original function, e.g. `convFilterActs`.
    pub function: &'static str,
    /// The condition that does not hold, in the original's terms.
    pub condition: String,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: requires {}", self.function, self.condition)
    }
}

impl std::error::Error for ShapeError {}

/// Returns `Err` naming `function` and `condition` unless `ok`.
pub fn require(ok: bool, function: &'static str, condition: &str) -> Result<(), ShapeError> {
    if ok {
        Ok(())
    } else {
        Err(ShapeError {
            function,
            condition: condition.to_string(),
        })
    }
}

/// `DIVUP(a, b)`.
pub fn divup(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}
