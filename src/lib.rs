//! convnet: a faithful Rust port of Alex Krizhevsky's cuda-convnet (2011) and of the
//! 2012 AlexNet code. See README.md for the module map (ARCHITECTURE).

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod cuda;
pub mod cudaconv2;
pub mod data;
pub mod driver;
pub mod layers;
pub mod net;
pub mod nvmatrix;
pub mod options;
pub mod parallel;
pub mod shownet;
pub mod synthetic;
