//! Port of conv_util.cu: the image utilities (to be written).
