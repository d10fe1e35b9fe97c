//! Port of the data side of data.py / convdata.py: the cuda-convnet batch-file format,
//! and importers into it.

pub mod batches;
pub mod cifar;
pub mod import;
pub mod provider;
