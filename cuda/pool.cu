// Port of the pooling part of cudaconv2/conv_util.cu: convLocalPool/convLocalMaxUndo/convLocalAvgUndo and the other pooling kernels. CPU side: src/cudaconv2/conv_util/pool.rs.
#include "common.cuh"
