//! Port of cudaconv2/img_acts.cu (to be written).
