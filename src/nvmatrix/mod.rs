//! Port of nvmatrix/nvmatrix.cuh and nvmatrix.cu: the NVMatrix type (`NvMatrix`), its
//! layout conventions and its operations, over a storage backend.
//!
//! Layout as in the original: `trans == false` is row-major, `trans == true` is
//! column-major; element `(i, j)` lives at `i*cols + j` or `j*rows + i`. Activations are
//! `(outputs, cases)` row-major, so the cases of one output are contiguous ("cases
//! innermost"); the three "trans" layers flip the flag to read the same memory as a
//! column-major `(cases, outputs)` matrix. Matrices we own are contiguous (the row
//! stride equals the leading dimension); kernels that read strided images take the
//! stride as an argument, as cudaconv2 does. Views of the original that the layers use
//! in products (`getTranspose()`, `reshaped()`) are [`MatView`]s; slices are copies
//! (`slice(..., target)`, `copy(dest, ...)` into a block).
//!
//! Operations, by original file part: [`ops`] (functors, `apply*`, named elementwise
//! ops, copies, `flipTrans`, `tile`), [`aggregate`] (`sum/max/min`, `addSum`, `sum()`,
//! `dotProduct`), [`product`] (`rightMult`, `addProduct`), [`curand`] (cuRAND XORWOW,
//! `initRandom`, `randomize*`). Not ported (CPU storage has no use for them):
//! `copyFromHost`/`copyToHost`, the cuBLAS allocation, non-owning strided views,
//! `argMax`, and the 2012 code's device-management API (`setDeviceID`,
//! `canAccessDevice`, `initCublas`, `getClone`, `HostNVMatrix`).

pub mod aggregate;
pub mod curand;
pub mod intrinsics;
pub mod ops;
pub mod product;

pub use aggregate::{Aggregator, Max, Min, Sum};
pub use curand::{CurandState, RandomStreams, NUM_RND_STREAMS};
pub use ops::{BinaryOp, TernaryOp, UnaryOp};

use crate::cudaconv2::{require, MatShape, ShapeError};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a matrix's elements live. One enum so that the CUDA backend (device memory)
/// slots in beside host memory without touching the layers.
#[derive(Clone, Debug, PartialEq)]
pub enum Storage {
    /// Host memory: the CPU backend.
    Host(Vec<f32>),
}

/// The NVMatrix of the originals: `rows x cols` single-precision values in row-major
/// (`trans == false`) or column-major (`trans == true`) order.
#[derive(Debug)]
pub struct NvMatrix {
    rows: usize,
    cols: usize,
    trans: bool,
    storage: Storage,
    /// Names the elements' current values (see [`NvMatrix::stamp`]); 0 until asked
    /// for after a write, so that writes cost nothing.
    stamp: AtomicU64,
}

/// A clone holds the same elements, so it keeps the stamp.
impl Clone for NvMatrix {
    fn clone(&self) -> NvMatrix {
        NvMatrix {
            rows: self.rows,
            cols: self.cols,
            trans: self.trans,
            storage: self.storage.clone(),
            stamp: AtomicU64::new(self.stamp.load(Ordering::Relaxed)),
        }
    }
}

/// Equal shapes, orientations and elements (the stamps are not compared).
impl PartialEq for NvMatrix {
    fn eq(&self, other: &NvMatrix) -> bool {
        (self.rows, self.cols, self.trans) == (other.rows, other.cols, other.trans)
            && self.storage == other.storage
    }
}

/// A stamp no matrix has had before (never 0).
fn fresh_stamp() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Default for NvMatrix {
    fn default() -> Self {
        NvMatrix::new(0, 0, false)
    }
}

impl NvMatrix {
    /// `NVMatrix(rows, cols, isTrans)`: a zero-filled matrix (the original leaves device
    /// memory uninitialised; we never expose unwritten memory).
    pub fn new(rows: usize, cols: usize, trans: bool) -> NvMatrix {
        NvMatrix {
            rows,
            cols,
            trans,
            storage: Storage::Host(vec![0.0; rows * cols]),
            stamp: AtomicU64::new(0),
        }
    }

    /// A matrix over `data` in the given orientation; `data.len()` must be `rows*cols`.
    pub fn from_vec(rows: usize, cols: usize, trans: bool, data: Vec<f32>) -> NvMatrix {
        assert_eq!(
            data.len(),
            rows * cols,
            "NvMatrix::from_vec: {rows}x{cols} needs {} values",
            rows * cols
        );
        NvMatrix {
            rows,
            cols,
            trans,
            storage: Storage::Host(data),
            stamp: AtomicU64::new(0),
        }
    }

    /// `getNumRows()`.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// `getNumCols()`.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// `getNumElements()`.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    /// True when the matrix has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `isTrans()`: column-major.
    pub fn is_trans(&self) -> bool {
        self.trans
    }
    /// `getLeadingDim()`: the length of the contiguous direction.
    pub fn leading_dim(&self) -> usize {
        MatShape::from(self).leading_dim()
    }
    /// `getFollowingDim()`: the other dimension.
    pub fn following_dim(&self) -> usize {
        MatShape::from(self).following_dim()
    }
    /// `getStride()`: distance between consecutive rows (row-major) or columns
    /// (column-major). Matrices we own are contiguous.
    pub fn stride(&self) -> usize {
        self.leading_dim()
    }
    /// `isSameDims(m)`.
    pub fn same_dims(&self, other: &NvMatrix) -> bool {
        self.rows == other.rows && self.cols == other.cols
    }

    /// The elements in memory order.
    pub fn data(&self) -> &[f32] {
        match &self.storage {
            Storage::Host(v) => v,
        }
    }
    /// The elements in memory order, writable (the matrix will take a new stamp).
    pub fn data_mut(&mut self) -> &mut [f32] {
        *self.stamp.get_mut() = 0;
        match &mut self.storage {
            Storage::Host(v) => v,
        }
    }
    /// Names the elements' current values (in memory order): after a write through
    /// [`NvMatrix::data_mut`] or a reallocation the matrix answers with a stamp no
    /// matrix had before, and a clone keeps its original's, so two matrices with the
    /// same stamp hold the same elements. A GPU [`crate::net::device::Device`] keeps device copies
    /// by stamp, so an unchanged matrix is uploaded once.
    pub fn stamp(&self) -> u64 {
        let s = self.stamp.load(Ordering::Relaxed);
        if s != 0 {
            return s;
        }
        // First request since the last write: take a fresh stamp (or the one another
        // thread took first).
        let fresh = fresh_stamp();
        match self
            .stamp
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(taken) => taken,
        }
    }
    /// Takes the elements out (memory order), leaving an empty matrix.
    pub fn into_vec(self) -> Vec<f32> {
        match self.storage {
            Storage::Host(v) => v,
        }
    }

    /// Offset of logical element `(i, j)` in memory.
    pub fn index(&self, i: usize, j: usize) -> usize {
        if self.trans {
            j * self.rows + i
        } else {
            i * self.cols + j
        }
    }
    /// Element `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data()[self.index(i, j)]
    }
    /// Sets element `(i, j)`.
    pub fn set(&mut self, i: usize, j: usize, v: f32) {
        let k = self.index(i, j);
        self.data_mut()[k] = v;
    }

    /// `resize(rows, cols)`: new contents (zeros, where the original's reallocation
    /// leaves them undefined) only when the element count changes, so with the same
    /// count it is a reshape that keeps the data (as the original).
    pub fn resize(&mut self, rows: usize, cols: usize) {
        let n = rows * cols;
        if n != self.len() {
            // An allocation large enough is kept: a buffer that layers of different
            // sizes share changes size every minibatch, and fresh pages cost page
            // faults when first written.
            let Storage::Host(v) = &mut self.storage;
            if n > v.capacity() {
                *v = vec![0.0; n];
            } else {
                v.clear();
                v.resize(n, 0.0);
            }
            *self.stamp.get_mut() = 0;
        }
        self.rows = rows;
        self.cols = cols;
    }
    /// `resize(like)`: `like`'s shape and orientation.
    pub fn resize_like(&mut self, like: &NvMatrix) {
        self.resize(like.rows, like.cols);
        self.trans = like.trans;
    }
    /// `setTrans(trans)`: reinterpret the same memory in the other order.
    pub fn set_trans(&mut self, trans: bool) {
        self.trans = trans;
    }
    /// `transpose()` (soft): swap the dimensions and flip the flag; no data moves.
    pub fn transpose_view(&mut self) {
        std::mem::swap(&mut self.rows, &mut self.cols);
        self.trans = !self.trans;
    }
    /// `reshape(rows, cols)`: same element count, same memory.
    pub fn reshape(&mut self, rows: usize, cols: usize) {
        assert_eq!(
            rows * cols,
            self.len(),
            "NvMatrix::reshape: element count must not change"
        );
        self.rows = rows;
        self.cols = cols;
    }

    /// `NVMatrix(const NVMatrix& like)`: a matrix of `like`'s shape and orientation whose
    /// contents are not copied (zero here; the original leaves them unset).
    pub fn like(like: &NvMatrix) -> NvMatrix {
        NvMatrix::new(like.rows, like.cols, like.trans)
    }
    /// `truncate()`: `resize(0, 0)`, giving the memory back (`conserveMem`).
    pub fn truncate(&mut self) {
        self.resize(0, 0);
        self.storage = Storage::Host(Vec::new());
    }
    /// `isContiguous()`: always true for the matrices we own (slices are copies).
    pub fn is_contiguous(&self) -> bool {
        true
    }
    /// `transpose(bool trans)` (soft): brings the matrix to the requested orientation by
    /// swapping its dimensions (no data moves); returns the old orientation.
    pub fn transpose_to(&mut self, trans: bool) -> bool {
        let old = self.trans;
        if old != trans {
            self.transpose_view();
        }
        old
    }
    /// A borrowed view of the whole matrix.
    pub fn view(&self) -> MatView<'_> {
        MatView {
            data: self.data(),
            rows: self.rows,
            cols: self.cols,
            trans: self.trans,
        }
    }
    /// `getTranspose()`: the soft transpose as a view of the same memory (swapped
    /// dimensions, flipped orientation); this matrix is unchanged.
    pub fn get_transpose(&self) -> MatView<'_> {
        self.view().get_transpose()
    }
}

/// A borrowed, contiguous matrix: what the original's view objects (`getTranspose()`,
/// `reshaped()`) are used for in products, without copying.
#[derive(Clone, Copy, Debug)]
pub struct MatView<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    trans: bool,
}

impl<'a> MatView<'a> {
    /// A view over `data` (`rows*cols` values, in the given orientation).
    pub fn new(data: &'a [f32], rows: usize, cols: usize, trans: bool) -> MatView<'a> {
        assert_eq!(
            data.len(),
            rows * cols,
            "MatView::new: {rows}x{cols} needs {} values",
            rows * cols
        );
        MatView {
            data,
            rows,
            cols,
            trans,
        }
    }
    /// `getNumRows()`.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// `getNumCols()`.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// `isTrans()`.
    pub fn is_trans(&self) -> bool {
        self.trans
    }
    /// `getLeadingDim()`.
    pub fn leading_dim(&self) -> usize {
        MatShape {
            rows: self.rows,
            cols: self.cols,
            trans: self.trans,
        }
        .leading_dim()
    }
    /// The elements in memory order.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }
    /// `getTranspose()`: swapped dimensions, flipped orientation, same memory.
    pub fn get_transpose(self) -> MatView<'a> {
        MatView {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            trans: !self.trans,
        }
    }
    /// `reshaped(rows, cols)`: same memory and orientation, other shape.
    pub fn reshaped(self, rows: usize, cols: usize) -> Result<MatView<'a>, ShapeError> {
        require(
            rows * cols == self.data.len(),
            "NVMatrix::reshaped",
            "numRows*numCols == getNumElements()",
        )?;
        Ok(MatView {
            data: self.data,
            rows,
            cols,
            trans: self.trans,
        })
    }
    /// Element `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[if self.trans {
            j * self.rows + i
        } else {
            i * self.cols + j
        }]
    }
}

impl<'a> From<&'a NvMatrix> for MatView<'a> {
    fn from(m: &'a NvMatrix) -> MatView<'a> {
        m.view()
    }
}
