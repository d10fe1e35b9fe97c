// Port of the pooling part of cudaconv2/conv_util.cu and conv_util.cuh: convLocalPool
// (kLocalPool / kLocalPool2 with the avg, max and maxabs poolers), convLocalMaxUndo,
// convLocalAvgUndo, and the 2012 code's inferred convLocalRandomPool. CPU side:
// src/cudaconv2/conv_util/pool.rs, whose per-output operation sequences these follow.
// Layouts: images (numFilters, imgSize, imgSize, numImages), pooled outputs
// (numFilters, outputsX, outputsX, numImages), images innermost.
#include "common.cuh"

#define POOL_AVG 0
#define POOL_MAX 1
#define POOL_MAXABS 2

// The window [start, start + subs) clipped to [0, size) (empty as 0..0).
__device__ __forceinline__ void pool_clip(int start, int subs, int size, int* lo, int* hi) {
    int l = start > 0 ? start : 0;
    int h = start + subs < size ? start + subs : size;
    *lo = h <= l ? 0 : l;
    *hi = h <= l ? 0 : h;
}

// PTX max.f32 of a running maximum that is never NaN and a pixel b: a NaN pixel is
// skipped, +0 beats -0 (MaxPooler).
__device__ __forceinline__ float pool_max(float a, float b) {
    if (a == b) return a == 0.0f ? a + b : a;
    return b > a ? b : a;
}

// The pooler's aggregate of a running value a and the next pixel b.
template <int P>
__device__ __forceinline__ float pool_aggregate(float a, float b) {
    if (P == POOL_AVG) return a + b;
    if (P == POOL_MAX) return pool_max(a, b);
    return fabsf(a) > fabsf(b) ? a : b;
}

// One output of convLocalPool: the pooler's aggregate over the clipped window, rows
// then columns, from its base value, then its output (avg: divided by the pixel count).
template <int P>
__device__ void pool_local(float* target, const float* images, int numFilters, int imgSize,
                           int numImages, int subsX, int startX, int strideX, int outputsX) {
    const int outputs = outputsX * outputsX;
    CC_FOR_EACH(e, numFilters * outputs * numImages) {
        const int i = e % numImages;
        const int o = (e / numImages) % outputs;
        const int f = e / numImages / outputs;
        int y0, y1, x0, x1;
        pool_clip(startX + (o / outputsX) * strideX, subsX, imgSize, &y0, &y1);
        pool_clip(startX + (o % outputsX) * strideX, subsX, imgSize, &x0, &x1);
        float acc = P == POOL_MAX ? -2e38f : 0.0f;
        for (int y = y0; y < y1; y++) {
            for (int x = x0; x < x1; x++) {
                acc = pool_aggregate<P>(acc, images[((f * imgSize + y) * imgSize + x) * numImages + i]);
            }
        }
        target[e] = P == POOL_AVG ? acc / (float)((y1 - y0) * (x1 - x0)) : acc;
    }
}

extern "C" __global__ void pool_local_avg(float* target, const float* images, int numFilters, int imgSize, int numImages, int subsX, int startX, int strideX, int outputsX) {
    pool_local<POOL_AVG>(target, images, numFilters, imgSize, numImages, subsX, startX, strideX, outputsX);
}

extern "C" __global__ void pool_local_max(float* target, const float* images, int numFilters, int imgSize, int numImages, int subsX, int startX, int strideX, int outputsX) {
    pool_local<POOL_MAX>(target, images, numFilters, imgSize, numImages, subsX, startX, strideX, outputsX);
}

extern "C" __global__ void pool_local_maxabs(float* target, const float* images, int numFilters, int imgSize, int numImages, int subsX, int startX, int strideX, int outputsX) {
    pool_local<POOL_MAXABS>(target, images, numFilters, imgSize, numImages, subsX, startX, strideX, outputsX);
}

// The outputs [*first, *end) whose windows contain coordinate p (one axis), as the undo
// kernels compute them; false when p lies outside the covered range.
__device__ __forceinline__ bool pool_covering(int p, int startX, int subsX, int strideX,
                                              int outputsX, int* first, int* end) {
    if (p < startX || p >= startX + strideX * (outputsX - 1) + subsX) return false;
    const int a = p - startX < subsX ? 0 : 1 + (p - startX - subsX) / strideX;
    const int b = 1 + (p - startX) / strideX < outputsX ? 1 + (p - startX) / strideX : outputsX;
    *first = a;
    *end = b > a ? b : a;
    return true;
}

// The undo kernels' write: prod, or scaleTargets * target + scaleOutput * prod with the
// first product fused (as nvcc contracts the original's expression).
__device__ __forceinline__ float pool_undo_write(float t, float prod, int add, float scaleTargets,
                                                 float scaleOutput) {
    return add ? fmaf(scaleTargets, t, prod * scaleOutput) : prod;
}

// kLocalMaxUndo: one image element; over the covering outputs (rows, then columns)
// prod = fma(maxGrad, img == maxAct ? 1 : 0, prod).
extern "C" __global__ void pool_local_max_undo(float* target, const float* images, const float* maxGrads, const float* maxActs, int numFilters, int imgSize, int numImages, int subsX, int startX, int strideX, int outputsX, int add, float scaleTargets, float scaleOutput) {
    const int imgPixels = imgSize * imgSize;
    const int outputs = outputsX * outputsX;
    CC_FOR_EACH(e, numFilters * imgPixels * numImages) {
        const int i = e % numImages;
        const int px = (e / numImages) % imgPixels;
        const int f = e / numImages / imgPixels;
        int my0, my1, mx0, mx1;
        float prod = 0.0f;
        if (pool_covering(px / imgSize, startX, subsX, strideX, outputsX, &my0, &my1) &&
            pool_covering(px % imgSize, startX, subsX, strideX, outputsX, &mx0, &mx1)) {
            const float img = images[e];
            for (int my = my0; my < my1; my++) {
                for (int mx = mx0; mx < mx1; mx++) {
                    const int off = (f * outputs + my * outputsX + mx) * numImages + i;
                    prod = fmaf(maxGrads[off], img == maxActs[off] ? 1.0f : 0.0f, prod);
                }
            }
        }
        target[e] = pool_undo_write(target[e], prod, add, scaleTargets, scaleOutput);
    }
}

// The in-image extent of output m's window along one axis, in float.
__device__ __forceinline__ float pool_region_side(int m, int startX, int subsX, int strideX,
                                                  int imgSize) {
    const int s = startX + m * strideX;
    return fminf((float)imgSize, (float)(s + subsX)) - fmaxf(0.0f, (float)s);
}

// kLocalAvgUndo: one image element; over the covering outputs (rows, then columns)
// prod = fma(avgGrad, 1.0f / (regionSizeX * regionSizeY), prod).
extern "C" __global__ void pool_local_avg_undo(float* target, const float* avgGrads, int numFilters, int imgSize, int numImages, int subsX, int startX, int strideX, int outputsX, int add, float scaleTargets, float scaleOutput) {
    const int imgPixels = imgSize * imgSize;
    const int outputs = outputsX * outputsX;
    CC_FOR_EACH(e, numFilters * imgPixels * numImages) {
        const int i = e % numImages;
        const int px = (e / numImages) % imgPixels;
        const int f = e / numImages / imgPixels;
        int my0, my1, mx0, mx1;
        float prod = 0.0f;
        if (pool_covering(px / imgSize, startX, subsX, strideX, outputsX, &my0, &my1) &&
            pool_covering(px % imgSize, startX, subsX, strideX, outputsX, &mx0, &mx1)) {
            for (int my = my0; my < my1; my++) {
                const float sideY = pool_region_side(my, startX, subsX, strideX, imgSize);
                for (int mx = mx0; mx < mx1; mx++) {
                    const float sideX = pool_region_side(mx, startX, subsX, strideX, imgSize);
                    const float inv = 1.0f / (sideX * sideY);
                    prod = fmaf(avgGrads[(f * outputs + my * outputsX + mx) * numImages + i], inv, prod);
                }
            }
        }
        target[e] = pool_undo_write(target[e], prod, add, scaleTargets, scaleOutput);
    }
}

// The k-th uniform of the inferred convLocalRandomPool: the first uniform in [0, 1) of
// SplitMix64 started at seed + k * 0x9E3779B97F4A7C15 (24 random bits).
__device__ __forceinline__ float pool_uniform(unsigned long long seed, unsigned long long k) {
    unsigned long long z = seed + k * 0x9E3779B97F4A7C15ull + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z = z ^ (z >> 31);
    return (float)(unsigned int)(z >> 40) / 16777216.0f;
}

// convLocalRandomPool (inferred, see pool.rs): the first positive pixel of the window
// whose running sum exceeds u * (sum of positive pixels); max pooling when none is
// positive. The 64-bit seed comes as two 32-bit halves.
extern "C" __global__ void pool_local_random(float* target, const float* images, int numFilters, int imgSize, int numImages, int subsX, int startX, int strideX, int outputsX, int seedLo, int seedHi) {
    const int outputs = outputsX * outputsX;
    const unsigned long long seed =
        ((unsigned long long)(unsigned int)seedHi << 32) | (unsigned long long)(unsigned int)seedLo;
    CC_FOR_EACH(e, numFilters * outputs * numImages) {
        const int i = e % numImages;
        const int o = (e / numImages) % outputs;
        const int f = e / numImages / outputs;
        int y0, y1, x0, x1;
        pool_clip(startX + (o / outputsX) * strideX, subsX, imgSize, &y0, &y1);
        pool_clip(startX + (o % outputsX) * strideX, subsX, imgSize, &x0, &x1);
        const float* img = images + (f * imgSize * imgSize) * numImages + i;
        const float u = pool_uniform(seed, (unsigned long long)e);
        float total = 0.0f;
        for (int y = y0; y < y1; y++) {
            for (int x = x0; x < x1; x++) {
                const float v = img[(y * imgSize + x) * numImages];
                if (v > 0.0f) total = total + v;
            }
        }
        float out;
        if (total > 0.0f) {
            const float r = u * total;
            float cum = 0.0f, last = 0.0f;
            bool picked = false;
            for (int y = y0; y < y1 && !picked; y++) {
                for (int x = x0; x < x1 && !picked; x++) {
                    const float v = img[(y * imgSize + x) * numImages];
                    if (v > 0.0f) {
                        cum = cum + v;
                        last = v;
                        picked = r < cum;
                    }
                }
            }
            out = last;
        } else {
            out = -2e38f;
            for (int y = y0; y < y1; y++) {
                for (int x = x0; x < x1; x++) {
                    out = pool_max(out, img[(y * imgSize + x) * numImages]);
                }
            }
        }
        target[e] = out;
    }
}
