// Port of cudaconv2/img_acts.cu: imgActs (conv and local; colour, sparse and randSparse variants). CPU side: src/cudaconv2/img_acts.rs.
#include "common.cuh"
