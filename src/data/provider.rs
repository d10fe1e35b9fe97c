//! Port of `DataProvider.get_instance` (data.py) and the providers convnet.py
//! registers (`cifar`, `cifar-cropped`, `dummy-cn-<dims>`; 2012 also
//! `inet-lr-cropped-jpeg`), behind one trait: what the
//! training driver asks of a provider.

use super::batches::{batch_meta, Cursor};
use super::cifar::{Batch, CifarProvider, CroppedCifarProvider};
use super::jpeg::JpegCroppedProvider;
use crate::config::Generation;
use crate::nvmatrix::NvMatrix;
use crate::synthetic::SplitMix64;
use std::path::Path;

/// What convnet.py uses of a data provider.
pub trait DataProvider {
    /// `get_next_batch()`: `(epoch, batchnum, [data, labels, ...])`; an error where a
    /// batch file read now is missing or broken.
    fn next_batch(&mut self) -> Result<Batch, String>;
    /// `get_data_dims(idx)`.
    fn data_dims(&self, idx: usize) -> usize;
    /// `get_num_classes()`.
    fn num_classes(&self) -> usize;
    /// `num_views` of the multiview test (1 otherwise).
    fn num_views(&self) -> usize {
        1
    }
}

/// `DummyConvNetDataProvider` (`dummy-cn-<dims>`): 512 cases of uniform `[0, 1)` data
/// `(dims, 512)` and labels drawn from the 10 classes `(1, 512)`, from our seeded
/// generator. As the original's `LabeledDummyDataProvider`, it reports the epoch and
/// batch number *after* advancing, so the first batch says epoch 2.
pub struct DummyProvider {
    dims: usize,
    cursor: Cursor,
    rng: SplitMix64,
}

/// Cases per dummy batch, as the original.
pub const DUMMY_CASES: usize = 512;
/// Classes of the dummy provider, as the original.
pub const DUMMY_CLASSES: usize = 10;

impl DummyProvider {
    pub fn new(dims: usize, seed: u64) -> DummyProvider {
        DummyProvider {
            dims,
            cursor: Cursor::new(vec![1], 1, None),
            rng: SplitMix64::new(seed),
        }
    }
}

impl DataProvider for DummyProvider {
    fn next_batch(&mut self) -> Result<Batch, String> {
        self.cursor.advance();
        let data: Vec<f32> = (0..self.dims * DUMMY_CASES)
            .map(|_| self.rng.uniform(0.0, 1.0))
            .collect();
        let labels: Vec<f32> = (0..DUMMY_CASES)
            .map(|_| (self.rng.next_u64() % DUMMY_CLASSES as u64) as f32)
            .collect();
        Ok(Batch {
            epoch: self.cursor.epoch,
            batchnum: self.cursor.batchnum(),
            data: vec![
                NvMatrix::from_vec(self.dims, DUMMY_CASES, false, data),
                NvMatrix::from_vec(1, DUMMY_CASES, false, labels),
            ],
        })
    }
    fn data_dims(&self, idx: usize) -> usize {
        if idx == 0 {
            self.dims
        } else {
            1
        }
    }
    fn num_classes(&self) -> usize {
        DUMMY_CLASSES
    }
}

/// The `dp_params` convnet.py passes: `--crop-border`, `--multiview-test`, and in
/// 2012 `--color-noise` and `--scalar-mean` (`--pca-noise` is passed but never used).
#[derive(Clone, Copy, Debug, Default)]
pub struct DpParams {
    pub crop_border: usize,
    pub multiview_test: bool,
    pub color_noise: f64,
    pub scalar_mean: bool,
}

/// `DataProvider.get_instance(data_dir, batch_range, init_epoch, init_batchnum, type,
/// dp_params, test)`: `type` `None` means the `dp_type` of `batches.meta`;
/// `dummy-<x>-<dims>` names `dummy-<x>-n` with `dims`. `seed` feeds our generator
/// where the original drew from numpy's unseeded one.
#[allow(clippy::too_many_arguments)]
pub fn get_instance(
    gen: Generation,
    data_dir: &Path,
    batch_range: Vec<usize>,
    init_epoch: usize,
    init_batchnum: Option<usize>,
    dp_type: Option<&str>,
    dp_params: DpParams,
    test: bool,
    seed: u64,
) -> Result<Box<dyn DataProvider>, String> {
    let ty = match dp_type {
        Some(t) => t.to_string(),
        None => batch_meta(data_dir)?.dp_type.ok_or_else(|| {
            format!(
                "{}: no --data-provider given and batches.meta has no dp_type",
                data_dir.display()
            )
        })?,
    };
    if let Some(rest) = ty.strip_prefix("dummy-") {
        let (kind, dims) = rest.rsplit_once('-').unwrap_or(("", rest));
        return match (kind, dims.parse::<usize>()) {
            ("cn", Ok(d)) if d > 0 => Ok(Box::new(DummyProvider::new(d, seed))),
            ("cn", _) => Err(format!(
                "No such data provider: {ty} (dims must be a positive int)"
            )),
            ("" | "labeled", _) => Err(format!(
                "data provider {ty} returns rows of cases, which convnet cannot train on"
            )),
            _ => Err(format!("No such data provider: {ty}")),
        };
    }
    match ty.as_str() {
        "cifar" => Ok(Box::new(CifarProvider::new(
            gen,
            data_dir,
            batch_range,
            init_epoch,
            init_batchnum,
        )?)),
        "cifar-cropped" => Ok(Box::new(CroppedCifarProvider::new(
            gen,
            data_dir,
            batch_range,
            init_epoch,
            init_batchnum,
            dp_params.crop_border,
            dp_params.multiview_test,
            test,
            seed,
        )?)),
        "inet-lr-cropped-jpeg" if gen == Generation::A12 => Ok(Box::new(JpegCroppedProvider::new(
            data_dir,
            batch_range,
            init_epoch,
            init_batchnum,
            dp_params,
            test,
            seed,
        )?)),
        "default" | "memory" | "labeled" | "labeled-memory" => Err(format!(
            "data provider {ty} returns dictionaries, which convnet cannot train on"
        )),
        _ => Err(format!("No such data provider: {ty}")),
    }
}
