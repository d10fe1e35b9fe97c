//! Port of the data side of data.py / convdata.py: the cuda-convnet batch-file format,
//! and importers into it.

pub mod batches;
pub mod cifar;
pub mod crop;
pub mod fix_batches;
pub mod import;
pub mod jpeg;
pub mod jpeg_import;
pub mod provider;
