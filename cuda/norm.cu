// Port of the normalisation part of cudaconv2/conv_util.cu: response, contrast and cross-map response normalisation and their undo. CPU side: src/cudaconv2/conv_util/norm.rs.
#include "common.cuh"
