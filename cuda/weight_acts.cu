// Port of cudaconv2/weight_acts.cu: weightActs with partialSum (conv and local; colour, sparse and randSparse variants). CPU side: src/cudaconv2/weight_acts.rs.
#include "common.cuh"
