//! Port of cudaconv2/filter_acts.cu (to be written).
