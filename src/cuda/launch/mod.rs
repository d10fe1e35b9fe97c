//! Launch wrappers: the host side of each kernel in cuda/*.cu, written once against
//! [`super::Backend`]: argument checks, the original's variant selection (shared with
//! the CPU port), grid sizes and the parameter order of the kernel's signature. One
//! module per kernel file.

pub mod conv;
pub mod conv_util;
pub mod nvmatrix;

pub use nvmatrix::*;
