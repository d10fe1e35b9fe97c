// Port of cudaconv2/filter_acts.cu: filterActs (conv and local; colour, sparse and randSparse variants). CPU side: src/cudaconv2/filter_acts.rs.
#include "common.cuh"
