//! Port of conv_util.cu: response, contrast and cross-map normalisation and their undo (to be written).
