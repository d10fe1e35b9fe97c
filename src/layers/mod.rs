//! Port of layer.cu, weights.cu, lr.cu and their kernels (so far: learning-rate schedules).

pub mod lr;
