//! Port of convdata_jpeg.py (2012): `JPEGCroppedImageNetLogRegDP`
//! (`inet-lr-cropped-jpeg`), the AlexNet provider, with `JPEGBatchLoaderThread`
//! (decoding a batch file of JPEGs) and `ColorNoiseMakerThread` (PCA colour noise).
//!
//! A batch file is the pickle tuple `(jpeg_strings, orig_sizes, labels)`, `labels[k] =
//! (name, class index or None)`; batches.meta gives `num_vis` (`3*size^2`),
//! `data_mean`, and for colour noise `color_pca = (stdevs (3,), eigenvectors (3,3),
//! one per column)`, optionally `label_offset` and `no_crop`. Images that do not decode
//! are skipped, as the original skipped those raising `IOError`.
//!
//! Deviations: the next training batch is decoded on a background thread as in the
//! original, but the colour noise is drawn on the calling thread from our seeded
//! generators (the original drew it on a thread from numpy's unseeded generator and
//! reused the previous noise when the thread was late), so runs repeat. The noise's
//! 3-term products are summed in one documented order (the original's `numpy.dot` left
//! it to BLAS). `color_pca` is needed only with `--color-noise`; an image of the wrong
//! size, a missing file or a broken pickle is an error, not a crash. JPEGs are decoded
//! by the `image` crate (zune-jpeg), whose pixels differ from PIL's (Pillow 6.2.2's
//! libjpeg-turbo, measured): on smooth photographs by 0.7 levels on average and at most
//! about 8; at sharp colour edges of tiny images by tens of levels (chroma upsampling).

use super::batches::{array_f64, batch_meta, batch_path, BatchMeta, Cursor, BATCH_META_FILE};
use super::cifar::Batch;
use super::crop::{centre_crop, for_each_pixel, ten_views, View};
use super::provider::{DataProvider, DpParams};
use crate::checkpoint::{
    self,
    value::{Obj, PyObj},
};
use crate::config::py::numpy_mean_f32;
use crate::nvmatrix::NvMatrix;
use crate::synthetic::SplitMix64;
use rand::Rng;
use rand_distr::StandardNormal;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// Images cropped alike in a training batch (`crop_chunk`).
pub const CROP_CHUNK: usize = 32;

/// Decodes an image (JPEG or PNG) into RGB planes `(3, height, width)`, as
/// `Image.open(...).convert('RGB')` then `swapaxes`: returns `(height, width, planes)`.
pub fn decode_planes(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), image::ImageError> {
    let rgb = image::load_from_memory(bytes)?.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut planes = vec![0u8; 3 * h * w];
    for (i, px) in rgb.pixels().enumerate() {
        for ch in 0..3 {
            planes[ch * h * w + i] = px.0[ch];
        }
    }
    Ok((h, w, planes))
}

/// What the loader needs to know: the image size and `batches.meta`'s options.
#[derive(Clone, Copy, Debug)]
struct LoadParams {
    size: usize,
    /// `no_crop`: smaller images are centred on a canvas of `fill`.
    no_crop: bool,
    fill: u8,
    label_offset: i64,
}

/// A decoded batch file: `cases` images `(3, size, size)` one after another.
struct Decoded {
    cases: usize,
    pixels: Vec<u8>,
    labels: Vec<f32>,
}

/// The items of a tuple or list.
pub(crate) fn items(o: &PyObj) -> Option<Vec<Obj>> {
    match o {
        PyObj::Tuple(v) => Some(v.clone()),
        PyObj::List(v) => Some(v.borrow().clone()),
        _ => None,
    }
}

/// A batch file's `(jpeg_strings, orig_sizes, labels)` tuple: the strings, and each
/// label's class index (`labels[k] = (wnid, index or None)`; `None` in the 2012 test
/// set).
pub(crate) fn batch_parts(obj: &PyObj) -> Result<(Vec<Obj>, Vec<Option<i64>>), String> {
    let parts = items(obj)
        .filter(|v| v.len() == 3)
        .ok_or("not a (jpeg_strings, orig_sizes, labels) tuple")?;
    let (strings, labels) = match (items(&parts[0]), items(&parts[2])) {
        (Some(s), Some(l)) if s.len() == l.len() => (s, l),
        _ => return Err("jpeg_strings and labels are not lists of the same length".into()),
    };
    let labels = (labels.iter().enumerate())
        .map(|(k, l)| match items(l).as_deref() {
            Some([_, idx]) => match &**idx {
                PyObj::None => Ok(None),
                PyObj::Int(i) => Ok(Some(*i)),
                _ => Err(format!("labels[{k}][1] is neither an int nor None")),
            },
            _ => Err(format!("labels[{k}] is not a (name, index) pair")),
        })
        .collect::<Result<_, _>>()?;
    Ok((strings, labels))
}

/// `JPEGBatchLoaderThread.load_jpeg_batch`: the batch file at `path`, decoded.
fn load_jpeg_batch(path: &Path, p: LoadParams) -> Result<Decoded, String> {
    let err = |m: String| format!("{}: {m}", path.display());
    let obj = checkpoint::load(path).map_err(|e| e.to_string())?;
    let (strings, labels) = batch_parts(&obj).map_err(err)?;
    let num_vis = 3 * p.size * p.size;
    let mut out = Decoded {
        cases: 0,
        pixels: Vec::with_capacity(strings.len() * num_vis),
        labels: Vec::with_capacity(strings.len()),
    };
    for (k, (s, l)) in strings.iter().zip(&labels).enumerate() {
        let PyObj::Bytes(bytes) = &**s else {
            return Err(err(format!("jpeg_strings[{k}] is not a str")));
        };
        let label = l.map_or(0, |i| i + p.label_offset);
        // The original skipped the images PIL could not read (IOError).
        let Ok((h, w, planes)) = decode_planes(bytes) else {
            continue;
        };
        let size = p.size;
        if p.no_crop && h <= size && w <= size {
            let (oy, ox) = ((size - h) / 2, (size - w) / 2);
            let start = out.pixels.len();
            out.pixels.resize(start + num_vis, p.fill);
            for ch in 0..3 {
                for y in 0..h {
                    let dst = start + (ch * size + oy + y) * size + ox;
                    let src = (ch * h + y) * w;
                    out.pixels[dst..dst + w].copy_from_slice(&planes[src..src + w]);
                }
            }
        } else if !p.no_crop && (h, w) == (size, size) {
            out.pixels.extend_from_slice(&planes);
        } else {
            return Err(err(format!(
                "image {k} is {w}x{h}, batches.meta's num_vis says {size}x{size}"
            )));
        }
        out.labels.push(label as f32);
        out.cases += 1;
    }
    if out.cases == 0 {
        return Err(err("no image decodes".into()));
    }
    Ok(out)
}

/// `JPEGCroppedImageNetLogRegDP`: crops of `inner = size - 2*crop_border`. Training:
/// one random offset `y, x` in `0..=2*border` and one flip (probability 1/2) per chunk
/// of [`CROP_CHUNK`] consecutive images, minus the mean, then with `--color-noise=c`
/// each image's RGB planes plus `c` times its PCA noise, all divided by `1 + c`.
/// Testing: the centre crop, or with `--multiview-test` the [`ten_views`], each a block
/// of all cases, labels tiled once per view. The mean is the centre crop of
/// `data_mean`, or its scalar mean with `--scalar-mean` or `no_crop`. Data `(3*inner^2,
/// cases)` and labels `(1, cases)`.
pub struct JpegCroppedProvider {
    dir: PathBuf,
    cursor: Cursor,
    meta: BatchMeta,
    load: LoadParams,
    border: usize,
    test: bool,
    multiview: bool,
    /// `data_mean_crop`, one float32 per value of a crop (a scalar mean repeated).
    mean: Vec<f32>,
    /// `color_noise_coeff` and `color_pca` as float32 (`stdevs`, `eigvecs[c][j]`).
    noise_coeff: f64,
    pca: Option<([f32; 3], [[f32; 3]; 3])>,
    /// The next training batch, decoding.
    pending: Option<JoinHandle<Result<Decoded, String>>>,
    crop_rng: SplitMix64,
    noise_rng: SplitMix64,
    /// The last batch's noise, `[image][channel]` (before the factor `c`).
    noise: Vec<[f32; 3]>,
}

/// `color_pca` of batches.meta.
fn color_pca(meta: &PyObj, path: &Path) -> Result<([f32; 3], [[f32; 3]; 3]), String> {
    let err = || {
        format!(
            "{}: color_pca is not (stdevs (3,), eigenvectors (3, 3))",
            path.display()
        )
    };
    let pca = meta.get("color_pca").ok_or_else(|| {
        format!(
            "{}: --color-noise needs color_pca (convnet import jpeg-folder writes it)",
            path.display()
        )
    })?;
    let parts = items(&pca).ok_or_else(err)?;
    let [s, e] = parts.as_slice() else {
        return Err(err());
    };
    let values = |o: &Obj| array_f64(o, "color_pca").map(|(_, v)| v).map_err(|_| err());
    let (s, e) = (values(s)?, values(e)?);
    if s.len() != 3 || e.len() != 9 {
        return Err(err());
    }
    let stdevs = [s[0] as f32, s[1] as f32, s[2] as f32];
    let vecs = [0, 1, 2].map(|c| [0, 1, 2].map(|j| e[3 * c + j] as f32));
    Ok((stdevs, vecs))
}

impl JpegCroppedProvider {
    pub fn new(
        dir: &Path,
        range: Vec<usize>,
        epoch: usize,
        batchnum: Option<usize>,
        params: DpParams,
        test: bool,
        seed: u64,
    ) -> Result<Self, String> {
        let meta = batch_meta(dir)?;
        let meta_path = dir.join(BATCH_META_FILE);
        let raw = checkpoint::load(&meta_path).map_err(|e| e.to_string())?;
        let size = (((meta.num_vis / 3) as f64).sqrt()) as usize;
        let err = |m: String| format!("{}: {m}", meta_path.display());
        if 3 * size * size != meta.num_vis {
            return Err(err(format!(
                "num_vis {} is not 3 colours of a square image",
                meta.num_vis
            )));
        }
        if meta.data_mean.is_empty() {
            return Err(err("no data_mean".into()));
        }
        let border = params.crop_border;
        if 2 * border >= size {
            return Err(format!(
                "--crop-border={border} leaves nothing of {size}x{size} images"
            ));
        }
        let no_crop = raw.get("no_crop").is_some_and(|o| o.truthy());
        let label_offset = match raw.get("label_offset").as_deref() {
            None => 0,
            Some(PyObj::Int(i)) => *i,
            Some(_) => return Err(err("label_offset is not an int".into())),
        };
        let mean32: Vec<f32> = meta.data_mean.iter().map(|&m| m as f32).collect();
        let scalar = (no_crop || params.scalar_mean).then(|| numpy_mean_f32(&mean32));
        let mean = match scalar {
            Some(m) => vec![m; 3 * (size - 2 * border).pow(2)],
            None => centre_crop(&mean32, 3, size, border, 0.0),
        };
        let pca = if params.color_noise > 0.0 && !test {
            Some(color_pca(&raw, &meta_path)?)
        } else {
            None
        };
        Ok(JpegCroppedProvider {
            dir: dir.to_path_buf(),
            cursor: Cursor::new(range, epoch, batchnum),
            meta,
            load: LoadParams {
                size,
                no_crop,
                // `img256[:] = data_mean` into uint8: truncated.
                fill: scalar.unwrap_or(0.0) as u8,
                label_offset,
            },
            border,
            test,
            multiview: params.multiview_test && test,
            mean,
            noise_coeff: params.color_noise,
            pca,
            pending: None,
            crop_rng: SplitMix64::new(seed),
            noise_rng: SplitMix64::new(seed ^ 0xC010_0A15_E000_0000),
            noise: Vec::new(),
        })
    }

    fn inner(&self) -> usize {
        self.load.size - 2 * self.border
    }

    /// Starts decoding batch `n` on a loader thread.
    fn start_loader(&self, n: usize) -> JoinHandle<Result<Decoded, String>> {
        let (path, p) = (batch_path(&self.dir, n), self.load);
        std::thread::spawn(move || load_jpeg_batch(&path, p))
    }

    /// The colour noise of the last training batch, one RGB offset per image:
    /// `noise[i][c] = sum_j randn[i][j] * stdevs[j] * eigvecs[c][j]` (before `c`).
    pub fn color_noise(&self) -> &[[f32; 3]] {
        &self.noise
    }

    /// `ColorNoiseMakerThread.run`: `(randn(n, 3) * stdevs) . eigvecs^T` in float32,
    /// each sum in `j` order.
    fn draw_noise(&mut self, n: usize, (s, e): ([f32; 3], [[f32; 3]; 3])) {
        let rng = &mut self.noise_rng;
        self.noise = (0..n)
            .map(|_| {
                let t: [f32; 3] =
                    [0, 1, 2].map(|j| rng.sample::<f64, _>(StandardNormal) as f32 * s[j]);
                [0, 1, 2].map(|c| t[0] * e[c][0] + t[1] * e[c][1] + t[2] * e[c][2])
            })
            .collect();
    }
}

impl DataProvider for JpegCroppedProvider {
    /// `get_next_batch()`.
    fn next_batch(&mut self) -> Result<Batch, String> {
        let (epoch, batchnum) = self.cursor.advance();
        let raw = if self.test {
            load_jpeg_batch(&batch_path(&self.dir, batchnum), self.load)?
        } else {
            let handle = match self.pending.take() {
                Some(h) => h,
                None => self.start_loader(batchnum),
            };
            let raw = handle
                .join()
                .map_err(|_| format!("data_batch_{batchnum}: the loader thread panicked"))??;
            self.pending = Some(self.start_loader(self.cursor.batchnum()));
            raw
        };
        let (cases, inner, b) = (raw.cases, self.inner(), self.border);
        let (dims, size) = (self.data_dims(0), self.load.size);
        let num_vis = 3 * size * size;
        // Case-major first (the original's `(cases, dims)`), one crop per column.
        let mut out = vec![0f32; dims * cases * self.num_views()];
        let mut crop = |c: usize, view: View, col: usize| {
            let (img, row) = (
                &raw.pixels[c * num_vis..(c + 1) * num_vis],
                &mut out[col * dims..(col + 1) * dims],
            );
            for_each_pixel(3, size, inner, view, |d, v| {
                row[d] = img[v] as f32 - self.mean[d]
            });
        };
        if !self.test {
            for chunk in (0..cases).step_by(CROP_CHUNK) {
                let (y, x) = (
                    self.crop_rng.below(2 * b + 1),
                    self.crop_rng.below(2 * b + 1),
                );
                let flip = self.crop_rng.below(2) == 0;
                for c in chunk..(chunk + CROP_CHUNK).min(cases) {
                    crop(c, View { y, x, flip }, c);
                }
            }
        } else if self.multiview {
            for (v, view) in ten_views(b).into_iter().enumerate() {
                for c in 0..cases {
                    crop(c, view, v * cases + c);
                }
            }
        } else {
            for c in 0..cases {
                crop(
                    c,
                    View {
                        y: b,
                        x: b,
                        flip: false,
                    },
                    c,
                );
            }
        }
        if let Some(pca) = self.pca {
            self.draw_noise(cases, pca);
            // numpy: float32 arrays with Python floats, each rounded to float32.
            let (c, div) = (self.noise_coeff as f32, (1.0 + self.noise_coeff) as f32);
            for (row, n) in out.chunks_exact_mut(dims).zip(&self.noise) {
                for (plane, &nc) in row.chunks_exact_mut(inner * inner).zip(n) {
                    let add = nc * c;
                    plane.iter_mut().for_each(|v| *v = (*v + add) / div);
                }
            }
        }
        let cols = cases * self.num_views();
        // `[data.T, labels.T]`: the transposed view the C++ side flipped.
        let data = NvMatrix::from_vec(dims, cols, true, out).flip_trans();
        let labels = raw.labels.repeat(self.num_views());
        Ok(Batch {
            epoch,
            batchnum,
            data: vec![data, NvMatrix::from_vec(1, cols, false, labels)],
        })
    }

    /// `get_data_dims(idx)`: `3*inner^2`, then 1.
    fn data_dims(&self, idx: usize) -> usize {
        if idx == 0 {
            3 * self.inner() * self.inner()
        } else {
            1
        }
    }

    /// `get_num_classes()`.
    fn num_classes(&self) -> usize {
        self.meta.label_names.len()
    }

    /// `num_views`: 10 with the multiview test, else 1.
    fn num_views(&self) -> usize {
        if self.multiview {
            10
        } else {
            1
        }
    }
}
