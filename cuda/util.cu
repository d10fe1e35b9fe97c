// Port of the remaining kernels of cudaconv2/conv_util.cu (bed of nails, blur, resize, colour transforms, crop, reflection, TICA, ...). CPU side: src/cudaconv2/conv_util/util.rs.
#include "common.cuh"
