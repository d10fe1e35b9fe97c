//! Port of shownet.py (cuda-convnet 1 and the 2012 code): look inside a checkpoint.
//! The original opened matplotlib windows; we write PNG files.

pub mod canvas;
pub mod png;
