//! Port of cudaconv2/conv_util.cu and conv_util.cuh: pooling, normalisation and the
//! image utilities the layers of both generations call.

pub mod norm;
pub mod pool;
pub mod util;

use crate::cudaconv2::MatShape;
use crate::nvmatrix::NvMatrix;

/// `a.isSameDims(b)`.
pub(crate) fn same_dims(a: MatShape, b: MatShape) -> bool {
    a.rows == b.rows && a.cols == b.cols
}

/// The shape the host checks read of `m`.
pub(crate) fn shape_of(m: &NvMatrix) -> MatShape {
    m.into()
}
