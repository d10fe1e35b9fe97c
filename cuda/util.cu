// Port of the remaining kernels of cudaconv2/conv_util.cu (kBedOfNails both ways,
// kGaussianBlur, kResizeBilinear, kRGBToYUV, kRGBToLAB, kCrop) and of the 2012 code's
// A12-missing convReflectHorizontal, convQuantizeHalf and convDequantizeHalf. CPU side:
// src/cudaconv2/conv_util/util.rs, whose per-output operation sequences these follow
// (TICA and normalizeLocalWeights are in norm.cu). Images are (channels, imgSize,
// imgSize, numImages), images innermost.
#include "common.cuh"

// The scaled write of every utility kernel: x * scaleOutput, or with scaleTargets != 0
// fma(scaleTargets, target, x * scaleOutput).
__device__ __forceinline__ float util_scaled(float t, float x, float scaleTargets, float scaleOutput) {
    return scaleTargets != 0.0f ? fmaf(scaleTargets, t, x * scaleOutput) : x * scaleOutput;
}

// kBedOfNails forward: output (c, oy, ox) is pixel (c, startX + oy*strideX, startX +
// ox*strideX).
extern "C" __global__ void util_bed_of_nails(float* target, const float* images, int numChannels, int imgSize, int numImages, int startX, int strideX, int outputsX, float scaleTargets, float scaleOutput) {
    const int outputs = outputsX * outputsX;
    CC_FOR_EACH(e, numChannels * outputs * numImages) {
        const int i = e % numImages;
        const int o = (e / numImages) % outputs;
        const int c = e / numImages / outputs;
        const int y = startX + (o / outputsX) * strideX, x = startX + (o % outputsX) * strideX;
        target[e] = util_scaled(target[e], images[((c * imgSize + y) * imgSize + x) * numImages + i],
                                scaleTargets, scaleOutput);
    }
}

// The nail index along one axis of image coordinate p, or -1 when p is no nail.
__device__ __forceinline__ int util_nail(int p, int startX, int strideX, int outputsX) {
    const int d = p - startX;
    return d >= 0 && d % strideX == 0 && d / strideX < outputsX ? d / strideX : -1;
}

// kBedOfNails reverse, one thread per image element: a nail gets its gradient scaled;
// the other pixels become 0 (scaleTargets == 0: the target is zeroed first) or keep
// their value.
extern "C" __global__ void util_bed_of_nails_undo(float* target, const float* actsGrad, int numChannels, int imgSize, int numImages, int startX, int strideX, int outputsX, float scaleTargets, float scaleOutput) {
    const int imgPixels = imgSize * imgSize;
    CC_FOR_EACH(e, numChannels * imgPixels * numImages) {
        const int i = e % numImages;
        const int px = (e / numImages) % imgPixels;
        const int c = e / numImages / imgPixels;
        const int ny = util_nail(px / imgSize, startX, strideX, outputsX);
        const int nx = util_nail(px % imgSize, startX, strideX, outputsX);
        if (ny >= 0 && nx >= 0) {
            const float g = actsGrad[((c * outputsX + ny) * outputsX + nx) * numImages + i];
            target[e] = scaleTargets != 0.0f ? fmaf(scaleTargets, target[e], g * scaleOutput) : g * scaleOutput;
        } else if (scaleTargets == 0.0f) {
            target[e] = 0.0f;
        }
    }
}

// kGaussianBlur, one output of one line (an image row for `horiz`, else a column) per
// thread, with the operation sequence the original's streaming loop gives it (see
// conv_gaussian_blur in util.rs): taps g[0..2r) (g[2r] read as g[0]); the first r
// pixels start the sums with fma(x, g, 0); the main loop (pixels r..imgSize, step s
// writing output s) runs in nvcc's groups of 4 steps: steps 0..2 of a group are
// "fused" (output fma(x, g0, sum), the newest sum left as the unrounded x * g0, added
// at the next step as fma(x_prev, g0, round(x * g[2r-1]))); a group's last step and
// the remaining single steps round x * g0 (output sum + round(x * g0), newest sum
// round(x * g0)). Outputs past the main loop are the sums as they stand. `old` is what
// the scaled write reads as the target (the target itself, or the images in place).
extern "C" __global__ void util_gaussian_blur(float* target, const float* old, const float* images, const float* filter, int numChannels, int imgSize, int numImages, int radius, int horiz, float scaleTargets, float scaleOutputs) {
    const int R = radius, W = 2 * radius;
    const int steps = imgSize - R;
    const int grouped = steps / 4 * 4;
    const int stride = horiz ? numImages : imgSize * numImages;
    CC_FOR_EACH(e, numChannels * imgSize * imgSize * numImages) {
        const int t = horiz ? (e / numImages) % imgSize : (e / (imgSize * numImages)) % imgSize;
        const float* line = images + (e - t * stride);
        float acc;
        int s;
        if (t >= W) {
            // Born at step b as the newest sum, updated at step b + 1.
            const int b = t - W;
            const float xb = line[(R + b) * stride], xb1 = line[(R + b + 1) * stride];
            const bool fusedB = b < grouped && b % 4 != 3;
            acc = fusedB ? fmaf(xb, filter[0], xb1 * filter[W - 1]) : fmaf(xb1, filter[W - 1], xb * filter[0]);
            s = b + 2;
        } else {
            acc = 0.0f;
            for (int c = t > R ? t - R : 0; c < R; c++) acc = fmaf(line[c * stride], filter[R + c - t], acc);
            s = 0;
        }
        for (; s < (t < steps ? t : steps); s++) acc = fmaf(line[(R + s) * stride], filter[t - s], acc);
        if (t < steps) {
            const float x = line[(R + t) * stride];
            acc = t < grouped && t % 4 != 3 ? fmaf(x, filter[0], acc) : acc + x * filter[0];
        }
        target[e] = util_scaled(old[e], acc, scaleTargets, scaleOutputs);
    }
}

// dst = src over n words (the blur's in-place form copies its result back).
extern "C" __global__ void util_copy(float* dst, const float* src, int n) {
    CC_FOR_EACH(e, n) { dst[e] = src[e]; }
}

// The source coordinate of output coordinate p: fmaxf(0, fminf(imgSize - 1.01f,
// fma(p, scale, centerScale))).
__device__ __forceinline__ float util_resize_coord(int p, float scale, float centerScale, int imgSize) {
    return fmaxf(0.0f, fminf((float)imgSize - 1.01f, fmaf((float)p, scale, centerScale)));
}

// kResizeBilinear: the bilinear blend of the four neighbours of (floor(sy), floor(sx)).
extern "C" __global__ void util_resize_bilinear(float* target, const float* images, int numChannels, int imgSize, int tgtSize, int numImages, float scale, float centerScale) {
    const int tgtPixels = tgtSize * tgtSize;
    CC_FOR_EACH(e, numChannels * tgtPixels * numImages) {
        const int i = e % numImages;
        const int q = (e / numImages) % tgtPixels;
        const int c = e / numImages / tgtPixels;
        const float sy = util_resize_coord(q / tgtSize, scale, centerScale, imgSize);
        const float sx = util_resize_coord(q % tgtSize, scale, centerScale, imgSize);
        const float u = floorf(sx + 1.0f) - sx;
        const float w = sy - floorf(sy);
        const float* p = images + ((c * imgSize + (int)floorf(sy)) * imgSize + (int)floorf(sx)) * numImages + i;
        const float v0 = p[0], v1 = p[numImages];
        const float v2 = p[imgSize * numImages], v3 = p[(imgSize + 1) * numImages];
        const float c0 = fmaf(u, v0 - v1, v1);
        const float c1 = fmaf(u, v2 - v3, v3);
        target[e] = fmaf(w, c1 - c0, c0);
    }
}

// kRGBToYUV, one thread per pixel and image (its three outputs).
extern "C" __global__ void util_rgb_to_yuv(float* target, const float* images, int imgPixels, int numImages) {
    const int plane = imgPixels * numImages;
    CC_FOR_EACH(e, plane) {
        const float r = images[e], g = images[plane + e], b = images[2 * plane + e];
        target[e] = fmaf(0.0722f, b, fmaf(0.2126f, r, g * 0.7152f));
        target[plane + e] = fmaf(0.436f, b, fmaf(-0.33609f, g, r * -0.09991f));
        target[2 * plane + e] = fmaf(-0.05639f, b, fmaf(0.615f, r, g * -0.55861f));
    }
}

// labf: __powf(t, 0.3333) above 0.0088564517, else 7.787037 t + 0.13793103 (one FMA).
__device__ __forceinline__ float util_labf(float t) {
    return t > 0.0088564517f ? cc_powf(t, 0.3333f) : fmaf(7.787037f, t, 0.13793103f);
}

// kRGBToLAB, one thread per pixel and image (its three outputs).
extern "C" __global__ void util_rgb_to_lab(float* target, const float* images, int imgPixels, int numImages, int center) {
    const int plane = imgPixels * numImages;
    CC_FOR_EACH(e, plane) {
        const float r = images[e], g = images[plane + e], b = images[2 * plane + e];
        const float lx = util_labf(fmaf(0.2f, b, fmaf(0.49f, r, g * 0.31f)));
        const float ly = util_labf(fmaf(0.01063f, b, fmaf(0.17697f, r, g * 0.8124f)));
        const float lz = util_labf(fmaf(0.01f, g, b * 0.99f));
        float l = fmaf(116.0f, ly, -16.0f);
        if (center) l = l - 50.0f;
        target[e] = l;
        target[plane + e] = (lx - ly) * 500.0f;
        target[2 * plane + e] = (ly - lz) * 200.0f;
    }
}

// kCrop: the tgtSize x tgtSize window at (startY, startX) of every channel.
extern "C" __global__ void util_crop(float* target, const float* imgs, int numChannels, int imgSize, int tgtSize, int numImages, int startY, int startX) {
    const int tgtPixels = tgtSize * tgtSize;
    CC_FOR_EACH(e, numChannels * tgtPixels * numImages) {
        const int i = e % numImages;
        const int q = (e / numImages) % tgtPixels;
        const int c = e / numImages / tgtPixels;
        target[e] = imgs[((c * imgSize + startY + q / tgtSize) * imgSize + startX + q % tgtSize) * numImages + i];
    }
}

// kReflectH: targets[c, y, x] = images[c, y, imgSize - 1 - x].
extern "C" __global__ void util_reflect_horizontal(float* targets, const float* images, int numColors, int imgSize, int numImages) {
    CC_FOR_EACH(e, numColors * imgSize * imgSize * numImages) {
        const int x = (e / numImages) % imgSize;
        targets[e] = images[e + (imgSize - 1 - 2 * x) * numImages];
    }
}

// __float2half_rn on the bits of x: round to nearest even, overflow to infinity,
// subnormal halves kept, NaN to 0x7FFF.
__device__ __forceinline__ unsigned int util_float2half(unsigned int bits) {
    const unsigned int sign = (bits >> 16) & 0x8000u;
    const unsigned int a = bits & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return 0x7FFFu;
    if (a >= 0x477FF000u) return sign | 0x7C00u;
    const int exp = (int)(a >> 23);
    const unsigned int mant = a & 0x7FFFFFu;
    unsigned int q, rem, half;
    if (exp >= 113) {
        q = ((unsigned int)(exp - 112) << 10) | (mant >> 13);
        rem = mant & 0x1FFFu;
        half = 0x1000u;
    } else {
        const unsigned int shift = (unsigned int)(126 - exp);
        if (exp == 0 || shift > 25) return sign;
        const unsigned int m = mant | 0x800000u;
        q = m >> shift;
        rem = m & ((1u << shift) - 1u);
        half = 1u << (shift - 1u);
    }
    return sign | (rem > half || (rem == half && (q & 1u)) ? q + 1u : q);
}

// convQuantizeHalf (inferred): word k holds the halves of elements 2k (low bits) and
// 2k + 1 (high bits, 0 past the end).
extern "C" __global__ void util_quantize_half(unsigned int* tgt, const unsigned int* src, int n) {
    CC_FOR_EACH(k, (n + 1) / 2) {
        const unsigned int lo = util_float2half(src[2 * k]);
        const unsigned int hi = 2 * k + 1 < n ? util_float2half(src[2 * k + 1]) : 0u;
        tgt[k] = lo | (hi << 16);
    }
}

// __half2float: the exact value of the half bits h (NaN payloads kept).
__device__ __forceinline__ float util_half2float(unsigned int h) {
    const unsigned int sign = (h & 0x8000u) << 16;
    const unsigned int exp = (h >> 10) & 0x1Fu;
    const unsigned int mant = h & 0x3FFu;
    if (exp == 0) {
        const float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return cc_uint_as_float(sign | (exp == 31 ? 0x7F800000u | (mant << 13) : ((exp + 112) << 23) | (mant << 13)));
}

// convDequantizeHalf (inferred): element i is half i of src, scaled into tgt.
extern "C" __global__ void util_dequantize_half(float* tgt, const unsigned int* src, int numElements, float scaleTarget, float scaleOutput) {
    CC_FOR_EACH(i, numElements) {
        const unsigned int word = src[i / 2];
        const float v = util_half2float(i % 2 == 0 ? word & 0xFFFFu : word >> 16);
        tgt[i] = util_scaled(tgt[i], v, scaleTarget, scaleOutput);
    }
}
