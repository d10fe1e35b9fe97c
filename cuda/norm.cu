// Port of the normalisation part of cudaconv2/conv_util.cu: same-map response and
// contrast normalisation (kCNorm_fewfilter / kCNorm_manyfilter / kCNorm2), cross-map
// normalisation (kFCNorm, blocked and the 2012 minDiv form), their undo
// (kRNormUndoPrelims, kRNormUndo / kRNormUndo2, kFRNormUndo), TICA (kTICA_manyfilter,
// kTICAGrad_manyfilter) and kNormalizeLCWeights. CPU side:
// src/cudaconv2/conv_util/norm.rs, whose per-element operation sequences these follow.
// Every matrix is (numFilters, imgSize, imgSize, numImages), images innermost.
#include "common.cuh"

// The window of position p clipped to [0, len): forward [p - size/2, +size), reverse
// (the positions whose forward window holds p) [p + size/2 - size + 1, +size).
__device__ __forceinline__ void norm_window(int p, int size, int len, int reverse, int* lo, int* hi) {
    const int start = reverse ? p + size / 2 - size + 1 : p - size / 2;
    const int l = start > 0 ? start : 0;
    int h = start + size;
    h = h < 0 ? 0 : (h > len ? len : h);
    *lo = l;
    *hi = h > l ? h : l;
}

// The sum from 0 over element e's window of src: fma(v, v, acc) (squares) or acc + v,
// spatial (window rows ascending, then columns) or cross-map (channels ascending, the
// window or with `blocked` the block [f/size*size, +size)).
__device__ float norm_sum(const float* src, int e, int numFilters, int imgSize, int numImages,
                          int size, int crossMap, int blocked, int reverse, int squares) {
    const int imgPixels = imgSize * imgSize;
    const int i = e % numImages;
    const int px = (e / numImages) % imgPixels;
    const int f = e / numImages / imgPixels;
    float acc = 0.0f;
    if (crossMap) {
        int c0, c1;
        if (blocked) {
            c0 = f / size * size;
            c1 = c0 + size < numFilters ? c0 + size : numFilters;
        } else {
            norm_window(f, size, numFilters, reverse, &c0, &c1);
        }
        for (int c = c0; c < c1; c++) {
            const float v = src[(c * imgPixels + px) * numImages + i];
            acc = squares ? fmaf(v, v, acc) : acc + v;
        }
    } else {
        int y0, y1, x0, x1;
        norm_window(px / imgSize, size, imgSize, reverse, &y0, &y1);
        norm_window(px % imgSize, size, imgSize, reverse, &x0, &x1);
        for (int y = y0; y < y1; y++) {
            for (int x = x0; x < x1; x++) {
                const float v = src[((f * imgSize + y) * imgSize + x) * numImages + i];
                acc = squares ? fmaf(v, v, acc) : acc + v;
            }
        }
    }
    return acc;
}

// The forward kernels: denoms = fma(addScale, sum of meanDiffs², minDiv), target =
// images * __powf(denoms, -powScale).
extern "C" __global__ void norm_forward(float* denoms, float* target, const float* images, const float* meanDiffs, int numFilters, int imgSize, int numImages, int size, int crossMap, int blocked, float addScale, float powScale, float minDiv) {
    CC_FOR_EACH(e, numFilters * imgSize * imgSize * numImages) {
        const float acc = norm_sum(meanDiffs, e, numFilters, imgSize, numImages, size, crossMap, blocked, 0, 1);
        const float d = fmaf(addScale, acc, minDiv);
        denoms[e] = d;
        target[e] = cc_powf(d, -powScale) * images[e];
    }
}

// kRNormUndoPrelims: acts = __fdividef((scale * outGrads) * acts, denoms), scale =
// -2 * addScale * powScale formed on the host.
extern "C" __global__ void norm_undo_prelims(float* acts, const float* outGrads, const float* denoms, int n, float scale) {
    CC_FOR_EACH(e, n) { acts[e] = cc_fdividef(scale * outGrads[e] * acts[e], denoms[e]); }
}

// The undo kernels after the prelims: v = fma(inputs, sum of acts over the reverse
// window, outGrads * __powf(denoms, -powScale)); target = v, or with `add`
// fma(scaleTargets, target, v * scaleOutput).
extern "C" __global__ void norm_undo(float* target, const float* acts, const float* outGrads, const float* denoms, const float* inputs, int numFilters, int imgSize, int numImages, int size, int crossMap, int blocked, float powScale, int add, float scaleTargets, float scaleOutput) {
    CC_FOR_EACH(e, numFilters * imgSize * imgSize * numImages) {
        const float acc = norm_sum(acts, e, numFilters, imgSize, numImages, size, crossMap, blocked, 1, 0);
        const float v = fmaf(inputs[e], acc, outGrads[e] * cc_powf(denoms[e], -powScale));
        target[e] = add ? fmaf(scaleTargets, target[e], v * scaleOutput) : v;
    }
}

// kTICA_manyfilter: q = __fdividef(1, float(double(sqrtf(sum of x²)) + 0.001)) (the
// literal is a double); target = q * scaleOutput or fma(scaleTarget, target, that).
extern "C" __global__ void norm_tica(float* target, const float* images, int numFilters, int imgSize, int numImages, int sizeX, float scaleTarget, float scaleOutput) {
    CC_FOR_EACH(e, numFilters * imgSize * imgSize * numImages) {
        const float acc = norm_sum(images, e, numFilters, imgSize, numImages, sizeX, 0, 0, 0, 1);
        const float q = cc_fdividef(1.0f, (float)((double)sqrtf(acc) + 0.001));
        target[e] = scaleTarget == 0.0f ? q * scaleOutput : fmaf(scaleTarget, target[e], q * scaleOutput);
    }
}

// kTICAGrad_manyfilter (half-finished in the original, reproduced): with a = the sum of
// ticas over the forward window, target = -((x * scaleOutput) * a), or with
// scaleTarget != 0 target * scaleTarget - (x * scaleOutput) * sqrtf(a).
extern "C" __global__ void norm_tica_grad(float* target, const float* images, const float* ticas, int numFilters, int imgSize, int numImages, int sizeX, float scaleTarget, float scaleOutput) {
    CC_FOR_EACH(e, numFilters * imgSize * imgSize * numImages) {
        const float a = norm_sum(ticas, e, numFilters, imgSize, numImages, sizeX, 0, 0, 0, 0);
        const float x = images[e];
        target[e] = scaleTarget == 0.0f ? -((x * scaleOutput) * a)
                                        : target[e] * scaleTarget - (x * scaleOutput) * sqrtf(a);
    }
}

// kNormalizeLCWeights, one thread per (module, filter) column of `weightsPerFilter`
// weights (in place): s = sqrtf(sum of w², an FMA chain); if s > norm every weight is
// multiplied by __fdividef(norm, s), else by 1.
extern "C" __global__ void norm_local_weights(float* weights, int numModules, int weightsPerFilter, int numFilters, float norm) {
    CC_FOR_EACH(col, numModules * numFilters) {
        float* w = weights + (col / numFilters) * weightsPerFilter * numFilters + col % numFilters;
        float acc = 0.0f;
        for (int p = 0; p < weightsPerFilter; p++) acc = fmaf(w[p * numFilters], w[p * numFilters], acc);
        const float s = sqrtf(acc);
        const float k = s > norm ? cc_fdividef(norm, s) : 1.0f;
        for (int p = 0; p < weightsPerFilter; p++) w[p * numFilters] = w[p * numFilters] * k;
    }
}
