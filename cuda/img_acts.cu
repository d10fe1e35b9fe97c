// Port of cudaconv2/img_acts.cu: imgActs (conv and local; colour, sparse and randSparse variants). CPU side: src/cudaconv2/img_acts.rs.
#include "common.cuh"

// The modules [*start, *end) along one axis whose window covers pixel coordinate `rel`
// (measured from paddingStart): startY/endY of conv_img_acts_manycolor.
__device__ __forceinline__ void img_acts_module_range(int rel, int filterSize, int moduleStride, int numModules, int* start, int* end) {
    *start = rel < filterSize ? 0 : 1 + (rel - filterSize) / moduleStride;
    const int e = 1 + rel / moduleStride < numModules ? 1 + rel / moduleStride : numModules;
    *end = e > *start ? e : *start;
}

// The kernels img_acts_color, img_acts_mediumcolor, conv_img_acts_manycolor,
// img_acts_mediumcolor_sparse_rand and img_acts_manycolor_sparse_rand in one: one thread
// per target element (slice s, group-in-slice cg, filter colour c, pixel, image n), all
// variants visiting the same terms in the same order: the modules whose window covers
// the pixel (rows, then columns, ascending), for each the group's filters ascending,
// acc = fma(w, hid, acc) from +0. Group g = cg + s*groupsPerSample writes image colour
// colors[g*numFilterColors + c] of slice s (dense: one slice of all numGroups groups,
// colors the identity). regionsX > 0 reproduces the region arithmetic of
// img_acts_mediumcolor_sparse_rand (see img_acts.rs): pixels of slice s whose 4x4
// region (ry, rx) has ry >= regionsX or s*kernelRegions + ry*regionsX + rx >= gridRows
// are not written.
// targets ([slices,] numImgColors, imgSizeY, imgSizeX, numImages); hidActs (numFilters,
// numModules, numImages); filters ([numModules,] numFilterColors, filterPixels,
// numFilters).
extern "C" __global__ void img_acts(float* targets, const float* hidActs, const float* filters, const unsigned int* colors, int numImages, int numFilters, int numGroups, int numFilterColors, int numImgColors, int imgSizeY, int imgSizeX, int filterSize, int paddingStart, int moduleStride, int numModulesY, int numModulesX, int conv, int slices, int groupsPerSlice, int groupsPerSample, int regionsX, int kernelRegions, int gridRows, float scaleTargets, float scaleOutput) {
    const int numModules = numModulesY * numModulesX;
    const int filterPixels = filterSize * filterSize;
    const int imgPixels = imgSizeY * imgSizeX;
    const int filtersPerGroup = numFilters / numGroups;
    const int n_out = slices * groupsPerSlice * numFilterColors * imgPixels * numImages;
    CC_FOR_EACH(i, n_out) {
        const int n = i % numImages;
        const int pixel = (i / numImages) % imgPixels;
        const int rest = i / (numImages * imgPixels);
        const int c = rest % numFilterColors;
        const int cg = (rest / numFilterColors) % groupsPerSlice;
        const int s = rest / (numFilterColors * groupsPerSlice);
        const int g = cg + s * groupsPerSample;
        const int y = pixel / imgSizeX, x = pixel % imgSizeX;
        if (regionsX > 0 && (y / 4 >= regionsX || s * kernelRegions + (y / 4) * regionsX + x / 4 >= gridRows)) {
            continue;
        }
        const int relY = y - paddingStart, relX = x - paddingStart;
        int my0, my1, mx0, mx1;
        img_acts_module_range(relY, filterSize, moduleStride, numModulesY, &my0, &my1);
        img_acts_module_range(relX, filterSize, moduleStride, numModulesX, &mx0, &mx1);
        float acc = 0.0f;
        for (int my = my0; my < my1; my++) {
            for (int mx = mx0; mx < mx1; mx++) {
                const int m = my * numModulesX + mx;
                const int pim = (relY - my * moduleStride) * filterSize + relX - mx * moduleStride;
                const float* w = filters + ((long long)((conv ? 0 : m) * numFilterColors + c) * filterPixels + pim) * numFilters + g * filtersPerGroup;
                const float* h = hidActs + ((long long)g * filtersPerGroup * numModules + m) * numImages + n;
                for (int f = 0; f < filtersPerGroup; f++) {
                    acc = fmaf(w[f], h[(long long)f * numModules * numImages], acc);
                }
            }
        }
        float* t = targets + ((long long)(s * numImgColors + (int)colors[g * numFilterColors + c]) * imgPixels + pixel) * numImages + n;
        *t = scaleTargets != 0.0f ? fmaf(*t, scaleTargets, scaleOutput * acc) : scaleOutput * acc;
    }
}
