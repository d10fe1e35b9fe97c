//! Ours: a folder of images (one subfolder per class) into the batch files of the 2012
//! JPEG ImageNet provider (convdata_jpeg.py, `inet-lr-cropped-jpeg`; the scripts that
//! made the original's batches are not in its repository).
//!
//! Each `data_batch_<N>` is the pickle tuple `(jpeg_strings, orig_sizes, labels)`:
//! JPEG files of `size x size` pixels (the central square of each image, its side the
//! shorter side, scaled to `size` by Catmull-Rom, i.e. "shorter side to `size`, then
//! the centre crop", as the 2012 batches held 256x256 JPEGs), each image's original
//! `(width, height)`, and `(class name, class index)` labels. `batches.meta` holds
//! `num_vis` (`3*size^2`), `label_names`, `data_mean` (float64 `(num_vis, 1)`, the
//! mean training image), `batch_size`, `num_cases_per_batch` and `color_pca =
//! (stdevs (3,), eigenvectors (3, 3))`: the square roots of the eigenvalues of the
//! training pixels' RGB covariance (0-255 units, ascending as `numpy.linalg.eigh`) and
//! its eigenvectors, one per column. Mean and covariance are taken over the pixels
//! the provider will see: the JPEGs decoded again.

use super::import::{array, dict, list, tuple, write_pickle, Layout, MeanImage};
use super::jpeg::decode_planes;
use crate::checkpoint::value::{Obj, PyObj};
use crate::synthetic::SplitMix64;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::OnceLock;

/// Images per batch file by default (the 2012 code's `fix-big-imgnet.py` wrote 1024).
pub const JPEG_CASES_PER_BATCH: usize = 1024;

/// The file names taken as images (case-insensitive extensions).
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Options of `convnet import jpeg-folder` beyond the [`Layout`].
#[derive(Clone, Debug)]
pub struct JpegOptions {
    /// Side of the stored images (256 in 2012).
    pub size: usize,
    /// JPEG quality, 1-100.
    pub quality: u8,
    /// Seed of the shuffle that mixes the classes within the batches.
    pub seed: u64,
    /// A second folder of the same classes, written after the training batches.
    pub test_src: Option<PathBuf>,
}

impl Default for JpegOptions {
    fn default() -> JpegOptions {
        JpegOptions {
            size: 256,
            quality: 90,
            seed: 0,
            test_src: None,
        }
    }
}

/// The class folders of `dir` by name, each with its images by name. Hidden entries
/// and files without an image extension are ignored.
fn scan(dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>, String> {
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let visible = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'))
    };
    let sorted = |d: &Path| -> Result<Vec<PathBuf>, String> {
        let mut v = std::fs::read_dir(d)
            .map_err(|e| err(d, e))?
            .map(|e| e.map(|e| e.path()).map_err(|e| err(d, e)))
            .collect::<Result<Vec<_>, _>>()?;
        v.retain(|p| visible(p));
        v.sort();
        Ok(v)
    };
    let mut classes = Vec::new();
    for class_dir in sorted(dir)?.into_iter().filter(|p| p.is_dir()) {
        let name = class_dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: the class name is not UTF-8", class_dir.display()))?
            .to_string();
        let images: Vec<PathBuf> = sorted(&class_dir)?
            .into_iter()
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
            })
            .collect();
        if images.is_empty() {
            return Err(format!(
                "{}: no images (.jpg, .jpeg or .png files)",
                class_dir.display()
            ));
        }
        classes.push((name, images));
    }
    if classes.is_empty() {
        return Err(format!(
            "{}: no class folders (put each class's images in a subfolder named after it)",
            dir.display()
        ));
    }
    Ok(classes)
}

/// One image made ready: its JPEG, its original `(width, height)`, and the JPEG
/// decoded again as planes `(3, size, size)`.
struct Prepared {
    jpeg: Vec<u8>,
    orig: (u32, u32),
    planes: Vec<u8>,
}

/// Reads, squares, scales and re-encodes the image at `path`.
fn prepare(path: &Path, size: u32, quality: u8) -> Result<Prepared, String> {
    let err = |m: String| format!("{}: {m}", path.display());
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| err(e.to_string()))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let side = w.min(h);
    if side == 0 {
        return Err(err("the image is empty".into()));
    }
    let square = image::imageops::crop_imm(&img, (w - side) / 2, (h - side) / 2, side, side);
    let scaled = if side == size {
        square.to_image()
    } else {
        image::imageops::resize(&*square, size, size, FilterType::CatmullRom)
    };
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, quality)
        .encode_image(&scaled)
        .map_err(|e| err(format!("encoding: {e}")))?;
    let (_, _, planes) = decode_planes(&jpeg).map_err(|e| err(format!("decoding: {e}")))?;
    Ok(Prepared {
        jpeg,
        orig: (w, h),
        planes,
    })
}

/// Sums of the training pixels' R, G, B and of their products, exactly.
#[derive(Default)]
struct RgbMoments {
    count: u128,
    sum: [u128; 3],
    prod: [[u128; 3]; 3],
}

impl RgbMoments {
    fn add(&mut self, planes: &[u8]) {
        let n = planes.len() / 3;
        let (r, rest) = planes.split_at(n);
        let (g, b) = rest.split_at(n);
        let mut sum = [0u64; 3];
        let mut prod = [[0u64; 3]; 3];
        for ((&r, &g), &b) in r.iter().zip(g).zip(b) {
            let px = [r as u64, g as u64, b as u64];
            for ((s, row), &pi) in sum.iter_mut().zip(&mut prod).zip(&px) {
                *s += pi;
                for (acc, &pj) in row.iter_mut().zip(&px) {
                    *acc += pi * pj;
                }
            }
        }
        self.count += n as u128;
        for ((s, row), (&ps, prow)) in self
            .sum
            .iter_mut()
            .zip(&mut self.prod)
            .zip(sum.iter().zip(prod))
        {
            *s += ps as u128;
            for (acc, p) in row.iter_mut().zip(prow) {
                *acc += p as u128;
            }
        }
    }

    /// The covariance matrix (dividing by the count).
    fn covariance(&self) -> [[f64; 3]; 3] {
        let n = self.count.max(1) as f64;
        let mean = self.sum.map(|s| s as f64 / n);
        [0, 1, 2].map(|i| [0, 1, 2].map(|j| self.prod[i][j] as f64 / n - mean[i] * mean[j]))
    }
}

/// Eigenvalues (ascending) and eigenvectors (column `j` for value `j`) of a symmetric
/// 3x3 matrix, by cyclic Jacobi rotations.
pub fn eigh3(m: [[f64; 3]; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut a = m;
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _sweep in 0..64 {
        let off = a[0][1].abs() + a[0][2].abs() + a[1][2].abs();
        let scale = a[0][0].abs() + a[1][1].abs() + a[2][2].abs();
        if off <= f64::EPSILON * 1e-3 * scale || off == 0.0 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            // The rotation by `t = tan(phi)` that zeroes a[p][q].
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // A = J^T A J, V = V J: columns p, q of A and V, then rows p, q of A.
            for row in a.iter_mut().chain(v.iter_mut()) {
                let (kp, kq) = (row[p], row[q]);
                row[p] = c * kp - s * kq;
                row[q] = s * kp + c * kq;
            }
            let (row_p, row_q) = (a[p], a[q]);
            a[p] = [0, 1, 2].map(|k| c * row_p[k] - s * row_q[k]);
            a[q] = [0, 1, 2].map(|k| s * row_p[k] + c * row_q[k]);
        }
    }
    let mut order = [0, 1, 2];
    order.sort_by(|&i, &j| a[i][i].total_cmp(&a[j][j]));
    let values = order.map(|j| a[j][j]);
    let vectors = [0, 1, 2].map(|r| order.map(|j| v[r][j]));
    (values, vectors)
}

fn int(i: i64) -> Obj {
    Rc::new(PyObj::Int(i))
}

fn bytes(b: &[u8]) -> Obj {
    Rc::new(PyObj::Bytes(b.to_vec()))
}

/// A float64 numpy array of `shape` holding `values`.
fn f64_array(shape: Vec<u64>, values: &[f64]) -> Obj {
    array(
        'f',
        8,
        shape,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// The images of one batch file as they accumulate.
#[derive(Default)]
struct BatchFile {
    jpegs: Vec<Obj>,
    sizes: Vec<Obj>,
    labels: Vec<Obj>,
}

/// Imports the folder `src` (one subfolder of images per class; classes indexed in
/// the order of their names) into `out`: the images shuffled (seeded), cut into
/// batch files of `layout.cases_per_batch`, then the same for `opts.test_src` if
/// given (numbered after the training batches), then `batches.meta` from the training
/// images. `progress(done, total)` is called as images are done. Returns the files
/// written.
pub fn jpeg_folder(
    src: &Path,
    out: &Path,
    layout: &Layout,
    opts: &JpegOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<PathBuf>, String> {
    if opts.size == 0 || opts.size > u16::MAX as usize {
        return Err(format!("--size={}: not a JPEG image side", opts.size));
    }
    if !(1..=100).contains(&opts.quality) {
        return Err(format!("--quality={}: not in 1-100", opts.quality));
    }
    let classes = scan(src)?;
    let names: Vec<&str> = classes.iter().map(|(n, _)| n.as_str()).collect();
    let mut rng = SplitMix64::new(opts.seed);
    // (path, class index) of every image of a folder, shuffled, cut to `limit`.
    let mut shuffled = |classes: &[(String, Vec<PathBuf>)], limit: Option<usize>| {
        let mut all: Vec<(PathBuf, usize)> = Vec::new();
        for (name, images) in classes {
            let idx = names.iter().position(|n| n == name).unwrap_or(0);
            all.extend(images.iter().map(|p| (p.clone(), idx)));
        }
        rng.shuffle(&mut all);
        all.truncate(limit.unwrap_or(usize::MAX));
        all
    };
    let train = shuffled(&classes, layout.train_cases);
    let test = match &opts.test_src {
        Some(dir) => {
            let test_classes = scan(dir)?;
            if let Some((name, _)) = test_classes.iter().find(|(n, _)| !names.contains(&&**n)) {
                return Err(format!(
                    "{}: class {name} is not a class of {}",
                    dir.display(),
                    src.display()
                ));
            }
            shuffled(&test_classes, layout.test_cases)
        }
        None => Vec::new(),
    };
    if train.is_empty() {
        return Err(format!("{}: no training images", src.display()));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;

    let (size, per_batch) = (opts.size, layout.cases_per_batch.max(1));
    let mut mean = MeanImage::new(3 * size * size);
    let mut moments = RgbMoments::default();
    let mut written = Vec::new();
    let total = train.len() + test.len();
    let step = 8 * crate::parallel::threads();
    for (set, is_train) in [(&train, true), (&test, false)] {
        let mut file = BatchFile::default();
        for (start, chunk) in (0..set.len()).step_by(step).zip(set.chunks(step)) {
            let done: Vec<OnceLock<Result<Prepared, String>>> =
                (0..chunk.len()).map(|_| OnceLock::new()).collect();
            crate::parallel::for_each_task(chunk.len(), |i| {
                let _ = done[i].set(prepare(&chunk[i].0, size as u32, opts.quality));
            });
            for (cell, (_, label)) in done.into_iter().zip(chunk) {
                let p = cell.into_inner().expect("every task ran")?;
                if is_train {
                    mean.add(&p.planes);
                    moments.add(&p.planes);
                }
                file.jpegs.push(bytes(&p.jpeg));
                file.sizes
                    .push(tuple(vec![int(p.orig.0 as i64), int(p.orig.1 as i64)]));
                file.labels.push(tuple(vec![
                    bytes(names[*label].as_bytes()),
                    int(*label as i64),
                ]));
                if file.jpegs.len() == per_batch {
                    written.push(write_batch(out, written.len() + 1, &mut file, layout.zip)?);
                }
            }
            progress(
                start + chunk.len() + if is_train { 0 } else { train.len() },
                total + 1,
            );
        }
        if !file.jpegs.is_empty() {
            written.push(write_batch(out, written.len() + 1, &mut file, layout.zip)?);
        }
    }

    let (values, vectors) = eigh3(moments.covariance());
    let stdevs = values.map(|v| v.max(0.0).sqrt());
    let color_pca = tuple(vec![
        f64_array(vec![3], &stdevs),
        f64_array(vec![3, 3], vectors.as_flattened()),
    ]);
    let meta = dict(vec![
        ("batch_size", int(per_batch as i64)),
        ("color_pca", color_pca),
        ("data_mean", mean.array()),
        (
            "label_names",
            list(names.iter().map(|n| bytes(n.as_bytes())).collect()),
        ),
        ("num_cases_per_batch", int(per_batch as i64)),
        ("num_vis", int((3 * size * size) as i64)),
    ]);
    written.push(write_pickle(out, "batches.meta", &meta, layout.zip)?);
    progress(total + 1, total + 1);
    Ok(written)
}

/// Writes `file` as `data_batch_<n>` and empties it.
fn write_batch(out: &Path, n: usize, file: &mut BatchFile, zip: bool) -> Result<PathBuf, String> {
    let f = std::mem::take(file);
    let obj = tuple(vec![list(f.jpegs), list(f.sizes), list(f.labels)]);
    write_pickle(out, &format!("data_batch_{n}"), &obj, zip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigh3_diagonalises() {
        let m = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.25], [0.5, 0.25, 2.0]];
        let (l, v) = eigh3(m);
        assert!(l[0] <= l[1] && l[1] <= l[2]);
        for j in 0..3 {
            for r in 0..3 {
                let mv: f64 = (0..3).map(|k| m[r][k] * v[k][j]).sum();
                assert!((mv - l[j] * v[r][j]).abs() < 1e-12, "{j} {r}");
            }
            let norm: f64 = (0..3).map(|k| v[k][j] * v[k][j]).sum();
            assert!((norm - 1.0).abs() < 1e-12);
        }
        let (l, _) = eigh3([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 3.0]]);
        assert!((l[0] - 1.0).abs() < 1e-12 && (l[2] - 3.0).abs() < 1e-12);
    }
}
