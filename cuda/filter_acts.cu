// Port of cudaconv2/filter_acts.cu: filterActs (conv and local; colour, sparse and randSparse variants). CPU side: src/cudaconv2/filter_acts.rs.
#include "common.cuh"

// The kernels filterActs_YxX_color, filterActs_YxX_sparse and
// filterActs_YxX_sparse_random in one: one thread per target element (filter f, module
// m, image n). The accumulator starts at +0 and gets fma(img, w, acc) for every term
// the original's shared-memory staging adds, in its order: colour groups of `colorGroup`
// colours (numColors for the colour kernel, colorCache = 2 for the sparse ones), within
// each the filter pixels in chunks of B_Y = 4, within a chunk each colour's four pixels.
// Padding pixels add 0*w; slots past filterPixels add stale*0, `stale` being what the
// previous chunk left in the slot (the same colour's pixel p - 4, or 0: padding or no
// previous chunk). `colors[g*numFilterColors + c]` is the image colour of filter colour
// c of group g (identity for grouped channels, dColorIndices for randSparse).
// targets (numFilters, numModules, numImages); images (numImgColors, imgSizeY, imgSizeX,
// numImages); filters ([numModules,] numFilterColors, filterPixels, numFilters).
extern "C" __global__ void filter_acts(float* targets, const float* images, const float* filters, const unsigned int* colors, int numImages, int numFilters, int numGroups, int numFilterColors, int colorGroup, int imgSizeY, int imgSizeX, int filterSize, int paddingStart, int moduleStride, int numModulesY, int numModulesX, int conv, float scaleTargets, float scaleOutput) {
    const int B_Y = 4;
    const int numModules = numModulesY * numModulesX;
    const int filterPixels = filterSize * filterSize;
    const int imgPixels = imgSizeY * imgSizeX;
    const int n_out = numFilters * numModules * numImages;
    CC_FOR_EACH(i, n_out) {
        const int n = i % numImages;
        const int m = (i / numImages) % numModules;
        const int f = i / (numImages * numModules);
        const int g = f / (numFilters / numGroups);
        const int y0 = paddingStart + (m / numModulesX) * moduleStride;
        const int x0 = paddingStart + (m % numModulesX) * moduleStride;
        const float* w = filters + (conv ? 0 : (long long)m * numFilterColors * filterPixels * numFilters) + f;
        float acc = 0.0f;
        for (int oc = 0; oc < numFilterColors; oc += colorGroup) {
            // off[j]: offset in a colour plane of the image pixel in slot j of the chunk
            // (-1: padding, or no previous chunk); past filterPixels a slot keeps the
            // previous chunk's pixel.
            long long off[B_Y] = {-1, -1, -1, -1};
            int py = 0, px = 0;
            for (int p = 0; p < filterPixels; p += B_Y) {
                for (int j = 0; j < B_Y && p + j < filterPixels; j++) {
                    const int y = y0 + py, x = x0 + px;
                    off[j] = y >= 0 && y < imgSizeY && x >= 0 && x < imgSizeX ? (long long)(y * imgSizeX + x) * numImages : -1;
                    if (++px == filterSize) {
                        px = 0;
                        py++;
                    }
                }
                for (int c = oc; c < oc + colorGroup; c++) {
                    const float* plane = images + (long long)colors[g * numFilterColors + c] * imgPixels * numImages + n;
                    const float* wc = w + (long long)(c * filterPixels + p) * numFilters;
                    for (int j = 0; j < B_Y; j++) {
                        const float img = off[j] >= 0 ? plane[off[j]] : 0.0f;
                        const float wt = p + j < filterPixels ? wc[(long long)j * numFilters] : 0.0f;
                        acc = fmaf(img, wt, acc);
                    }
                }
            }
        }
        targets[i] = scaleTargets != 0.0f ? fmaf(targets[i], scaleTargets, scaleOutput * acc) : scaleOutput * acc;
    }
}
