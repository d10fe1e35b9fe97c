// Port of cudaconv2/weight_acts.cu: weightActs with partialSum (conv and local; colour, sparse and randSparse variants). CPU side: src/cudaconv2/weight_acts.rs.
#include "common.cuh"

// The kernels conv_weight_acts_c, conv_weight_acts_mc_mf and conv_weight_acts_mc_mf_rand
// in one: one thread per target element (partial-sum group og, filter colour c, filter
// pixel, filter f). From +0, acc = fma(img, hid, acc) over the group's partialSum
// modules ascending and, per module, the cases in chunks of preloadCases = 32, every
// chunk run over all 32 slots: past numImages the image slot reads 0 and the hidActs
// slot still holds the previous chunk's hid[f, m, n - 32] (or 0 when numImages < 32,
// where the original's slot was never written: those terms are all fma(0, 0, acc), and
// one of them is the same as all of them). Pixels outside the image read 0.
// Filter colour c of filter f's group g reads image colour colors[g*numFilterColors + c]
// (identity for grouped channels, dColorIndices for randSparse).
// targets (numModules/partialSum, numFilterColors, filterPixels, numFilters); images
// (numImgColors, imgSizeY, imgSizeX, numImages); hidActs (numFilters, numModules,
// numImages).
extern "C" __global__ void weight_acts(float* targets, const float* images, const float* hidActs, const unsigned int* colors, int numImages, int numFilters, int numGroups, int numFilterColors, int imgSizeY, int imgSizeX, int filterSize, int paddingStart, int moduleStride, int numModules, int numModulesX, int partialSum, float scaleTargets, float scaleOutput) {
    const int preloadCases = 32;
    const int filterPixels = filterSize * filterSize;
    const int imgPixels = imgSizeY * imgSizeX;
    const int paddedCases = (numImages + preloadCases - 1) / preloadCases * preloadCases;
    const int n_out = numModules / partialSum * numFilterColors * filterPixels * numFilters;
    CC_FOR_EACH(i, n_out) {
        const int f = i % numFilters;
        const int row = i / numFilters;
        const int pix = row % filterPixels;
        const int c = (row / filterPixels) % numFilterColors;
        const int og = row / (filterPixels * numFilterColors);
        const int g = f / (numFilters / numGroups);
        const long long plane = (long long)colors[g * numFilterColors + c] * imgPixels;
        float acc = 0.0f;
        for (int m = og * partialSum; m < (og + 1) * partialSum; m++) {
            const int y = paddingStart + (m / numModulesX) * moduleStride + pix / filterSize;
            const int x = paddingStart + (m % numModulesX) * moduleStride + pix % filterSize;
            const bool in = y >= 0 && y < imgSizeY && x >= 0 && x < imgSizeX;
            const float* img = in ? images + (plane + y * imgSizeX + x) * numImages : nullptr;
            const float* hid = hidActs + ((long long)f * numModules + m) * numImages;
            for (int k = 0; k < numImages; k++) {
                acc = fmaf(in ? img[k] : 0.0f, hid[k], acc);
            }
            if (numImages > preloadCases) {
                for (int k = numImages; k < paddedCases; k++) {
                    acc = fmaf(0.0f, hid[k - preloadCases], acc);
                }
            } else if (numImages < preloadCases) {
                // Every slot past numImages adds fma(0, 0, acc): once is the same as many.
                acc = fmaf(0.0f, 0.0f, acc);
            }
        }
        targets[i] = scaleTargets != 0.0f ? fmaf(scaleTargets, targets[i], scaleOutput * acc) : scaleOutput * acc;
    }
}
