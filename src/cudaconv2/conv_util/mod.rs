//! Port of cudaconv2/conv_util.cu and conv_util.cuh: pooling, normalisation and the
//! image utilities the layers of both generations call.

pub mod norm;
pub mod pool;
pub mod util;
