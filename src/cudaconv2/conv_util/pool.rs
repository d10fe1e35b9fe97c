//! Port of conv_util.cu: local pooling and its undo (to be written).
