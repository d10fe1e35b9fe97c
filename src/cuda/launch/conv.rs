//! Launches of cuda/filter_acts.cu, img_acts.cu and weight_acts.cu (cudaconv2's
//! convolution kernels; CPU side src/cudaconv2/{filter,img,weight}_acts.rs).
