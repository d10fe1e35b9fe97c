//! Our CUDA path: the kernels in `cuda/*.cu` (written to perform the original kernels'
//! per-output operation sequences) and the [`Backend`] that runs them.
//!
//! A backend owns device memory ([`DevBuf`]) and launches kernels by name with a flat
//! parameter list ([`Param`]), the convention of `cuLaunchKernel`. Two implement it:
//! the CUDA driver through `cudarc`, and (in tests) the host emulation that compiles
//! `cuda/*.cu` as C++ with `cuda/emu.h` and runs each launch as one thread. Launch
//! wrappers ([`launch`]) are written once against the trait, so the emulation tests
//! exercise the same host code (variant selection, grid sizes, parameter order) the GPU
//! runs.

use std::any::Any;
use std::fmt;

use crate::cudaconv2::MatShape;

/// A device address: a `CUdeviceptr` on the GPU, a host address in the emulation.
pub type DevPtr = u64;

/// One kernel parameter, as `cuLaunchKernel` receives it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Param {
    /// A pointer into device memory (`float*`, `unsigned int*`).
    Ptr(DevPtr),
    /// An `int`.
    I32(i32),
    /// A `float`.
    F32(f32),
}

impl Param {
    /// The parameter in an 8-byte slot, its bytes first, as a kernel reads it through
    /// the slot's address (`cuLaunchKernel`'s `kernelParams`).
    pub fn slot(&self) -> u64 {
        let mut b = [0u8; 8];
        match *self {
            Param::Ptr(p) => b = p.to_ne_bytes(),
            Param::I32(v) => b[..4].copy_from_slice(&v.to_ne_bytes()),
            Param::F32(v) => b[..4].copy_from_slice(&v.to_ne_bytes()),
        }
        u64::from_ne_bytes(b)
    }
}

/// Device memory of `len` 4-byte words (f32 or u32), freed when dropped.
pub struct DevBuf {
    ptr: DevPtr,
    len: usize,
    /// Whatever keeps the memory alive (a `cudarc` slice, a host vector).
    _owner: Box<dyn Any>,
}

impl DevBuf {
    /// Wraps memory at `ptr` of `len` words that `owner` keeps alive.
    pub fn new(ptr: DevPtr, len: usize, owner: Box<dyn Any>) -> DevBuf {
        DevBuf {
            ptr,
            len,
            _owner: owner,
        }
    }
    /// The device address of word 0.
    pub fn ptr(&self) -> DevPtr {
        self.ptr
    }
    /// The device address of word `offset`.
    pub fn ptr_at(&self, offset: usize) -> DevPtr {
        assert!(
            offset <= self.len,
            "DevBuf::ptr_at: {offset} > {}",
            self.len
        );
        self.ptr + 4 * offset as u64
    }
    /// The kernel parameter for this buffer.
    pub fn param(&self) -> Param {
        Param::Ptr(self.ptr)
    }
    /// Length in 4-byte words.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when the buffer holds no words.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A `rows x cols` matrix in device memory (an NVMatrix's device side): all of `buf`,
/// row-major or column-major (`trans`, `isTrans()`). The kernels index it with `int`s,
/// so it holds at most `i32::MAX` elements.
#[derive(Clone, Copy)]
pub struct DevMat<'a> {
    buf: &'a DevBuf,
    rows: usize,
    cols: usize,
    trans: bool,
}

impl<'a> DevMat<'a> {
    /// `buf` as a row-major `rows x cols` matrix; `Err` unless it holds exactly
    /// `rows * cols` words (at most `i32::MAX`).
    pub fn new(buf: &'a DevBuf, rows: usize, cols: usize) -> Result<DevMat<'a>, GpuError> {
        DevMat::with_trans(buf, rows, cols, false)
    }
    /// [`DevMat::new`] in the given orientation (`trans`: column-major).
    pub fn with_trans(
        buf: &'a DevBuf,
        rows: usize,
        cols: usize,
        trans: bool,
    ) -> Result<DevMat<'a>, GpuError> {
        match rows.checked_mul(cols) {
            Some(n) if n == buf.len() && n <= i32::MAX as usize => Ok(DevMat {
                buf,
                rows,
                cols,
                trans,
            }),
            _ => Err(GpuError(format!(
                "a {rows}x{cols} matrix over a buffer of {} words",
                buf.len()
            ))),
        }
    }
    /// The memory.
    pub fn buf(&self) -> &'a DevBuf {
        self.buf
    }
    /// `getNumRows()`.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// `getNumCols()`.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// `isTrans()`: column-major.
    pub fn is_trans(&self) -> bool {
        self.trans
    }
    /// `getNumElements()`.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    /// True when the matrix has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `getLeadingDim()`.
    pub fn leading_dim(&self) -> usize {
        self.shape().leading_dim()
    }
    /// `getFollowingDim()`.
    pub fn following_dim(&self) -> usize {
        self.shape().following_dim()
    }
    /// `getTranspose()`: swapped dimensions, flipped orientation, same memory.
    pub fn get_transpose(self) -> Self {
        DevMat {
            rows: self.cols,
            cols: self.rows,
            trans: !self.trans,
            ..self
        }
    }
    /// The shape the CPU port's host checks take.
    pub fn shape(&self) -> MatShape {
        MatShape {
            rows: self.rows,
            cols: self.cols,
            trans: self.trans,
        }
    }
    /// The kernel parameter for the matrix's memory.
    pub fn param(&self) -> Param {
        self.buf.param()
    }
}

/// Why a device operation failed.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuError(pub String);

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GPU: {}", self.0)
    }
}
impl std::error::Error for GpuError {}

/// Device memory and kernel launches. Operations are ordered (one stream): a download
/// sees every earlier launch.
pub trait Backend {
    /// A human-readable name ("NVIDIA H200 (sm_90), driver 12.4", "host emulation").
    fn name(&self) -> String;
    /// `len` zeroed words.
    fn alloc(&self, len: usize) -> Result<DevBuf, GpuError>;
    /// Copies `src` (as 4-byte words) into `dst` starting at word `offset`.
    fn write_words(&self, dst: &DevBuf, offset: usize, src: &[u32]) -> Result<(), GpuError>;
    /// Copies `dst.len()` words out of `src` starting at word `offset`.
    fn read_words(&self, src: &DevBuf, offset: usize, dst: &mut [u32]) -> Result<(), GpuError>;
    /// Launches kernel `name` (an `extern "C" __global__` function of cuda/*.cu) on a
    /// one-dimensional grid of `grid` blocks of `block` threads.
    fn launch(&self, name: &str, grid: u32, block: u32, params: &[Param]) -> Result<(), GpuError>;
    /// `C = alpha * op(A) * op(B) + beta * C` as cuBLAS `sgemm` (column-major; `C` is
    /// not read when `beta == 0`): NVMatrix's products (`rightMult`, `addProduct`). On a
    /// GPU cuBLAS (tier bounded: its summation order is unpublished); in the emulation
    /// the CPU port's product (src/nvmatrix/product.rs).
    fn gemm(&self, g: &Gemm, a: &DevBuf, b: &DevBuf, c: &DevBuf) -> Result<(), GpuError>;
    /// True for the host emulation, whose fast intrinsics round as the CPU port's: there
    /// every kernel must give the CPU's bits; on a GPU only the exact-tier ones.
    fn emulated(&self) -> bool {
        false
    }

    /// A new buffer holding `host`.
    fn upload(&self, host: &[f32]) -> Result<DevBuf, GpuError> {
        let buf = self.alloc(host.len())?;
        self.write_words(&buf, 0, as_words(host))?;
        Ok(buf)
    }
    /// The buffer's contents as floats.
    fn download(&self, buf: &DevBuf) -> Result<Vec<f32>, GpuError> {
        let mut host = vec![0f32; buf.len()];
        self.download_into(buf, &mut host)?;
        Ok(host)
    }
    /// The buffer's contents into `host` (of the buffer's length), with no copy between.
    fn download_into(&self, buf: &DevBuf, host: &mut [f32]) -> Result<(), GpuError> {
        if host.len() != buf.len() {
            return Err(GpuError(format!(
                "download of {} words into {}",
                buf.len(),
                host.len()
            )));
        }
        self.read_words(buf, 0, as_words_mut(host))
    }
}

/// Floats as the 4-byte words the device copies.
fn as_words(v: &[f32]) -> &[u32] {
    // SAFETY: f32 and u32 have the same size and alignment, and every bit pattern is
    // valid for both.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len()) }
}

/// [`as_words`] for writing.
fn as_words_mut(v: &mut [f32]) -> &mut [u32] {
    // SAFETY: as in `as_words`; the borrow is exclusive.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len()) }
}

/// The arguments of a cuBLAS `sgemm`: `op(A)` is `m x k`, `op(B)` is `k x n`, `C` is
/// `m x n`, all stored column-major with leading dimensions `lda`, `ldb`, `ldc`;
/// `op(X)` is `X^T` when `trans_x` (cuBLAS `'t'`), else `X` (`'n'`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    /// `transa == 't'`.
    pub trans_a: bool,
    /// `transb == 't'`.
    pub trans_b: bool,
    /// Rows of `op(A)` and `C`.
    pub m: usize,
    /// Columns of `op(B)` and `C`.
    pub n: usize,
    /// Columns of `op(A)`, rows of `op(B)`.
    pub k: usize,
    /// `alpha`.
    pub alpha: f32,
    /// Leading dimension of `A`.
    pub lda: usize,
    /// Leading dimension of `B`.
    pub ldb: usize,
    /// `beta`.
    pub beta: f32,
    /// Leading dimension of `C`.
    pub ldc: usize,
}

impl Gemm {
    /// Checks that the leading dimensions cover the shapes and the buffers the
    /// matrices (cuBLAS would read or write past them otherwise).
    pub fn check(&self, a: &DevBuf, b: &DevBuf, c: &DevBuf) -> Result<(), GpuError> {
        let (ar, ac) = if self.trans_a {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        };
        let (br, bc) = if self.trans_b {
            (self.n, self.k)
        } else {
            (self.k, self.n)
        };
        for (what, buf, rows, cols, ld) in [
            ("A", a, ar, ac, self.lda),
            ("B", b, br, bc, self.ldb),
            ("C", c, self.m, self.n, self.ldc),
        ] {
            let need = if cols == 0 { 0 } else { (cols - 1) * ld + rows };
            if ld < rows || buf.len() < need {
                return Err(GpuError(format!(
                    "gemm: {what} is {rows}x{cols} with leading dimension {ld} in {} words",
                    buf.len()
                )));
            }
        }
        Ok(())
    }
}

/// The kernel sources, in build order: `(file name, text)`. `common.cuh` is included
/// by every file.
pub const SOURCES: &[(&str, &str)] = &[
    ("common.cuh", include_str!("../../cuda/common.cuh")),
    ("nvmatrix.cu", include_str!("../../cuda/nvmatrix.cu")),
    ("filter_acts.cu", include_str!("../../cuda/filter_acts.cu")),
    ("img_acts.cu", include_str!("../../cuda/img_acts.cu")),
    ("weight_acts.cu", include_str!("../../cuda/weight_acts.cu")),
    ("pool.cu", include_str!("../../cuda/pool.cu")),
    ("norm.cu", include_str!("../../cuda/norm.cu")),
    ("util.cu", include_str!("../../cuda/util.cu")),
];

/// Threads per block of our launches, and the grid that covers `n` outputs with one
/// output per thread (capped: the grid-stride loop takes the rest).
pub fn grid_for(n: usize) -> (u32, u32) {
    const BLOCK: u32 = 256;
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, 65_535) as u32;
    (blocks, BLOCK)
}

pub mod driver;
pub mod launch;

pub use driver::Cuda;
