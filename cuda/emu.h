// Host emulation of the subset of CUDA our kernels use (see common.cuh): tests compile
// cuda/*.cu as C++ with this header forced in (g++ -include cuda/emu.h
// -ffp-contract=off) and launch every kernel as one block of one thread, so each
// kernel's grid-stride loop computes every output with its own operation sequence.
// The intrinsics round as src/nvmatrix/intrinsics.rs does.
#pragma once
#define CC_EMU 1
#include <cmath>
#include <math.h>
#include <stdint.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict

struct cc_dim3 { unsigned int x, y, z; };
static const cc_dim3 threadIdx = {0, 0, 0};
static const cc_dim3 blockIdx = {0, 0, 0};
static const cc_dim3 blockDim = {1, 1, 1};
static const cc_dim3 gridDim = {1, 1, 1};

static inline float cc_as_float(uint32_t b) { float f; __builtin_memcpy(&f, &b, 4); return f; }
static inline float cc_uint_as_float(unsigned int b) { return cc_as_float(b); }
// ex2.approx / lg2.approx, correctly rounded through double (intrinsics.rs).
static inline float cc_ex2(float x) { return (float)std::exp2((double)x); }
static inline float cc_lg2(float x) { return (float)std::log2((double)x); }
static inline float cc_expf(float x) { return cc_ex2(x * cc_as_float(0x3FB8AA3Bu)); }
static inline float cc_logf(float x) { return cc_lg2(x) * cc_as_float(0x3F317218u); }
static inline float cc_powf(float x, float y) { return cc_ex2(y * cc_lg2(x)); }
// div.approx as intrinsics.rs::fdividef: subnormal divisors scaled by 2^24 with the
// dividend; 0 reciprocal for 2^126 < |y| < 2^128.
static inline float cc_fdividef(float x, float y) {
    float s = std::fabs(y) < 1.17549435e-38f ? 16777216.0f : 1.0f;
    float xs = x * s, ys = y * s;
    float r = (std::fabs(ys) > cc_as_float(0x7E800000u) && std::isfinite(ys)) ? 0.0f : 1.0f / ys;
    return xs * r;
}
