//! Port of cudaconv2/conv_util.cu and conv_util.cuh: pooling, normalisation and the
//! image utilities the layers of both generations call.

pub mod norm;
pub mod pool;
pub mod util;

use crate::nvmatrix::NvMatrix;

/// The shape of a matrix argument as the host checks read it: an [`NvMatrix`], or the
/// declared shape of a device buffer ([`Shape`]), so that the CPU functions and the
/// CUDA launches (`crate::cuda::launch::conv_util`) share their checks.
pub(crate) trait Dims {
    /// `getNumRows()`.
    fn rows(&self) -> usize;
    /// `getNumCols()`.
    fn cols(&self) -> usize;
    /// `isTrans()`.
    fn is_trans(&self) -> bool;
    /// `isSameDims(m)`.
    fn same_dims(&self, m: &dyn Dims) -> bool {
        self.rows() == m.rows() && self.cols() == m.cols()
    }
}

impl Dims for NvMatrix {
    fn rows(&self) -> usize {
        NvMatrix::rows(self)
    }
    fn cols(&self) -> usize {
        NvMatrix::cols(self)
    }
    fn is_trans(&self) -> bool {
        NvMatrix::is_trans(self)
    }
}

/// A row-major `rows x cols` shape (a device buffer's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub rows: usize,
    pub cols: usize,
}

impl Dims for Shape {
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn is_trans(&self) -> bool {
        false
    }
}
