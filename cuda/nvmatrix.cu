// Port of nvmatrix_kernels.cu / nvmatrix_operators.cuh: the NVMatrix elementwise,
// aggregation, transpose and random-number kernels (CPU side: src/nvmatrix/).
#include "common.cuh"

// `NVMatrix::scale` (kEltwiseUnaryOp with MultByScalar): dst[i] = src[i] * s.
extern "C" __global__ void nvm_scale(float* dst, const float* src, int n, float s) {
    CC_FOR_EACH(i, n) { dst[i] = src[i] * s; }
}
