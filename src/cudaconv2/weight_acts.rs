//! Port of cudaconv2/weight_acts.cu (to be written).
