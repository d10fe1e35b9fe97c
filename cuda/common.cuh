// Shared by every kernel in cuda/: the loop every kernel runs and the fast intrinsics.
//
// Conventions of our CUDA kernels (README "CUDA path"):
// - `extern "C" __global__` entry points whose parameters are only `float*`,
//   `const float*`, `unsigned int*`, `const unsigned int*`, `int` and `float`.
// - Each thread computes whole outputs, each with the operation sequence the CPU port
//   (and the original kernel) performs for it; threads take outputs in a grid-stride
//   loop (`CC_FOR_EACH`). No shared memory, no __syncthreads, no atomics, no warp
//   intrinsics: so a launch of one block of one thread computes the same bits, which is
//   how tests run the kernels on the CPU (cuda/emu.h).
// - Compiled with --fmad=false: every fused multiply-add is an explicit fmaf() exactly
//   where the CPU port uses mul_add (where nvcc fused the original); nothing else fuses.
// - Fast intrinsics only through cc_expf, cc_logf, cc_powf and cc_fdividef: on the GPU
//   the special-function unit (tier bounded), in the emulation the CPU port's rounding.
//   Bits to float through cc_uint_as_float.
#pragma once

#ifndef CC_EMU
__device__ __forceinline__ float cc_expf(float x) { return __expf(x); }
__device__ __forceinline__ float cc_logf(float x) { return __logf(x); }
__device__ __forceinline__ float cc_powf(float x, float y) { return __powf(x, y); }
__device__ __forceinline__ float cc_fdividef(float x, float y) { return __fdividef(x, y); }
// A float from its IEEE bits.
__device__ __forceinline__ float cc_uint_as_float(unsigned int b) { return __uint_as_float(b); }
#endif

// Grid-stride loop over outputs 0..n-1 (n an int, as the original's sizes).
#define CC_FOR_EACH(i, n)                                                              \
    for (int i = (int)(blockIdx.x * blockDim.x + threadIdx.x); i < (n);                \
         i += (int)(blockDim.x * gridDim.x))
