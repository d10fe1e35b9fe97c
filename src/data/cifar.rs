//! Port of convdata.py (cuda-convnet 1) and convdata_cifar.py (2012):
//! `CIFARDataProvider` (`cifar`: whole images, mean subtracted; the 2012 one adds a
//! one-hot label matrix) and `CroppedCIFARDataProvider` (`cifar-cropped`: random crops
//! and flips for training, the centre or the multiview test's views for testing: ten
//! in 2011, nine in 2012).
//!
//! The original fixes 3 colours of 32x32; we read `num_colors` / `img_size` from
//! batches.meta where present (our importer writes them, e.g. 1 colour of 28x28 for
//! Fashion-MNIST) and use 3 / 32 otherwise. Random crops come from our seeded generator
//! (the original's numpy generator was never seeded).

use super::batches::{batch_meta, load_batch, BatchMeta, Cursor, RawBatch};
use super::crop::{centre_crop, for_each_pixel, ten_views, View};
use super::provider::DataProvider;
use crate::config::Generation;
use crate::nvmatrix::NvMatrix;
use crate::synthetic::SplitMix64;
use std::path::Path;

/// One minibatch as `get_next_batch` returns it: `(epoch, batchnum, [data, labels])`,
/// data `(num_vis, cases)` and labels `(1, cases)`, both row-major float32.
pub struct Batch {
    pub epoch: usize,
    pub batchnum: usize,
    pub data: Vec<NvMatrix>,
}

/// Image geometry of a batch directory: colours and square size.
fn geometry(meta: &BatchMeta, dir: &Path) -> Result<(usize, usize), String> {
    let (c, s) = (meta.num_colors.unwrap_or(3), meta.img_size.unwrap_or(32));
    if c * s * s != meta.num_vis {
        return Err(format!(
            "{}: num_vis {} is not {c} colours of {s}x{s} (set num_colors and img_size in batches.meta)",
            dir.display(),
            meta.num_vis
        ));
    }
    Ok((c, s))
}

/// `LabeledMemoryDataProvider.__init__`: every batch of the range, loaded now.
fn load_range(dir: &Path, range: &[usize], num_vis: usize) -> Result<Vec<RawBatch>, String> {
    range
        .iter()
        .map(|&n| {
            let b = load_batch(dir, n)?;
            if b.num_vis != num_vis {
                return Err(format!(
                    "data_batch_{n}: {} values per case, batches.meta says {num_vis}",
                    b.num_vis
                ));
            }
            Ok(b)
        })
        .collect()
}

fn labels_row(labels: &[f64], times: usize) -> NvMatrix {
    let row: Vec<f32> = (0..times)
        .flat_map(|_| labels.iter().map(|&l| l as f32))
        .collect();
    NvMatrix::from_vec(1, row.len(), false, row)
}

/// `cifar`: the whole image minus `data_mean`, computed as numpy does
/// (`float32(double(pixel) - mean)`).
pub struct CifarProvider {
    cursor: Cursor,
    meta: BatchMeta,
    gen: Generation,
    batches: Vec<(NvMatrix, NvMatrix)>,
}

impl CifarProvider {
    pub fn new(
        gen: Generation,
        dir: &Path,
        range: Vec<usize>,
        epoch: usize,
        batchnum: Option<usize>,
    ) -> Result<Self, String> {
        let meta = batch_meta(dir)?;
        geometry(&meta, dir)?;
        let batches = load_range(dir, &range, meta.num_vis)?
            .into_iter()
            .map(|b| {
                let data: Vec<f32> = b
                    .data
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| {
                        (p - meta.data_mean.get(i / b.cases).copied().unwrap_or(0.0)) as f32
                    })
                    .collect();
                (
                    NvMatrix::from_vec(b.num_vis, b.cases, false, data),
                    labels_row(&b.labels, 1),
                )
            })
            .collect();
        Ok(CifarProvider {
            cursor: Cursor::new(range, epoch, batchnum),
            meta,
            gen,
            batches,
        })
    }
}

impl DataProvider for CifarProvider {
    /// `get_next_batch()`: `[data, labels]`; 2012 adds `labelsMat`, the one-hot
    /// `(classes, cases)` matrix.
    fn next_batch(&mut self) -> Result<Batch, String> {
        let (epoch, batchnum) = self.cursor.advance();
        let (d, l) = &self.batches[batchnum - self.cursor.range[0]];
        let mut data = vec![d.clone(), l.clone()];
        if self.gen == Generation::A12 {
            let classes = self.num_classes();
            let mut onehot = NvMatrix::new(classes, l.cols(), false);
            for (c, &label) in l.data().iter().enumerate() {
                if (label as usize) < classes {
                    onehot.set(label as usize, c, 1.0);
                }
            }
            data.push(onehot);
        }
        Ok(Batch {
            epoch,
            batchnum,
            data,
        })
    }

    /// `get_data_dims(idx)`: `num_vis`, 1, and in 2012 the number of classes.
    fn data_dims(&self, idx: usize) -> usize {
        match idx {
            0 => self.meta.num_vis,
            2 if self.gen == Generation::A12 => self.num_classes(),
            _ => 1,
        }
    }

    /// `get_num_classes()`.
    fn num_classes(&self) -> usize {
        self.meta.label_names.len()
    }
}

/// `cifar-cropped`: `inner = size - 2*crop_border`. Training: per case, offsets
/// `y, x` uniform in `0..=2*border` and a horizontal flip with probability 1/2. Testing:
/// the centre, or with `multiview_test` the views, each a block of all cases, labels
/// tiled once per view: 2011 ten (crops at `(0,0)`, `(0,2b)`, `(b,b)`, `(2b,0)`,
/// `(2b,2b)`, then the same five flipped), 2012 nine (the 3x3 grid of offsets in
/// `{0, b, 2b}`, rows first, no flips). The centre crop of `data_mean` is subtracted
/// from every crop.
pub struct CroppedCifarProvider {
    gen: Generation,
    cursor: Cursor,
    meta: BatchMeta,
    batches: Vec<RawBatch>,
    colors: usize,
    size: usize,
    border: usize,
    test: bool,
    multiview: bool,
    mean: Vec<f64>,
    rng: SplitMix64,
}

impl CroppedCifarProvider {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gen: Generation,
        dir: &Path,
        range: Vec<usize>,
        epoch: usize,
        batchnum: Option<usize>,
        crop_border: usize,
        multiview_test: bool,
        test: bool,
        seed: u64,
    ) -> Result<Self, String> {
        let meta = batch_meta(dir)?;
        let (colors, size) = geometry(&meta, dir)?;
        if 2 * crop_border >= size {
            return Err(format!(
                "--crop-border={crop_border} leaves nothing of {size}x{size} images"
            ));
        }
        let batches = load_range(dir, &range, meta.num_vis)?;
        let mean = centre_crop(&meta.data_mean, colors, size, crop_border, 0.0);
        Ok(CroppedCifarProvider {
            gen,
            cursor: Cursor::new(range, epoch, batchnum),
            meta,
            batches,
            colors,
            size,
            border: crop_border,
            test,
            multiview: multiview_test && test,
            mean,
            rng: SplitMix64::new(seed),
        })
    }

    fn inner(&self) -> usize {
        self.size - 2 * self.border
    }

    /// The multiview test's views: 2011 [`ten_views`], 2012 the 3x3 grid.
    fn views(&self) -> Vec<View> {
        let b = self.border;
        match self.gen {
            Generation::C1 => ten_views(b),
            Generation::A12 => (0..9)
                .map(|k| View {
                    y: k / 3 * b,
                    x: k % 3 * b,
                    flip: false,
                })
                .collect(),
        }
    }
}

impl DataProvider for CroppedCifarProvider {
    /// `get_next_batch()`.
    fn next_batch(&mut self) -> Result<Batch, String> {
        let (epoch, batchnum) = self.cursor.advance();
        let bi = batchnum - self.cursor.range[0];
        let (cases, inner, b) = (self.batches[bi].cases, self.inner(), self.border);
        let views = self.num_views();
        let dims = self.data_dims(0);
        let mut out = vec![0f32; dims * cases * views];
        let (colors, size) = (self.colors, self.size);
        // One crop of case `c` into column `col`.
        let mut crop = |p: &Self, c: usize, view: View, col: usize| {
            let (raw, mean) = (&p.batches[bi].data, &p.mean);
            for_each_pixel(colors, size, inner, view, |d, v| {
                // float32 pixel minus the float64 mean, rounded to float32.
                out[d * cases * views + col] = (raw[v * cases + c] as f32 as f64 - mean[d]) as f32;
            });
        };
        if !self.test {
            for c in 0..cases {
                let (y, x) = (self.rng.below(2 * b + 1), self.rng.below(2 * b + 1));
                let flip = self.rng.below(2) == 0;
                crop(self, c, View { y, x, flip }, c);
            }
        } else if self.multiview {
            for (v, view) in self.views().into_iter().enumerate() {
                for c in 0..cases {
                    crop(self, c, view, v * cases + c);
                }
            }
        } else {
            let centre = View {
                y: b,
                x: b,
                flip: false,
            };
            for c in 0..cases {
                crop(self, c, centre, c);
            }
        }
        let labels = labels_row(&self.batches[bi].labels, views);
        Ok(Batch {
            epoch,
            batchnum,
            data: vec![NvMatrix::from_vec(dims, cases * views, false, out), labels],
        })
    }

    /// `get_data_dims(idx)`.
    fn data_dims(&self, idx: usize) -> usize {
        if idx == 0 {
            self.inner() * self.inner() * self.colors
        } else {
            1
        }
    }

    /// `get_num_classes()`.
    fn num_classes(&self) -> usize {
        self.meta.label_names.len()
    }

    /// `num_views`: views per case in a test batch (1 without multiview).
    fn num_views(&self) -> usize {
        if self.multiview {
            self.views().len()
        } else {
            1
        }
    }
}
