//! Launches of cuda/pool.cu, norm.cu and util.cu (cudaconv2/conv_util.cu; CPU side
//! src/cudaconv2/conv_util/).
