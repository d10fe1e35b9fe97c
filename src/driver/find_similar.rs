//! Port of the 2012 `findsimilar.py` (`convnet find-similar`): for test images, the
//! training images nearest in feature space, drawn in grids.
//!
//! The script takes `TEST_IMGS` random cases of the test batch (`data_batch_3000`) of
//! a feature directory (dicts whose `data` is `(cases, dims)` float32, as the feature
//! writer saves them) and their pixels from an image directory (dicts whose `data` is
//! `(3*size*size, cases)` uint8). For each training batch `1 ..= 1334` of both it
//! computes, per test case, the squared distances to the batch's cases in float32
//! (`numpy.sum((x - Y)**2, axis=1)`: elementwise, then numpy's pairwise row sums), takes
//! the nearest case of the batch (the first minimum) and inserts it into the test case's
//! list of the `TOP_IMGS` nearest so far, after any of equal distance; it prints the
//! distances' shape and `Finished training batch <b> (<secs> sec)` per batch. Every 50
//! batches and at the end it draws figures of `IMGS_PER_FIGURE` rows: the test image,
//! then its neighbours, each `size` pixels wide with one-pixel gaps and a three-pixel
//! gap after the test image.
//!
//! Ours writes each figure as `figure-<n>.png` in `--out` where the script showed it in a
//! window, draws the test cases from `--seed` (the script's numpy permutation was
//! unseeded) or takes them from `--cases`, and takes the script's constants and fixed
//! paths as defaults of options. Features must be float32.

use crate::checkpoint::{self, value::PyObj};
use crate::config::py::numpy_sum_f32;
use crate::data::batches::array_f64;
use crate::shownet::canvas::Canvas;
use crate::synthetic::SplitMix64;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One run's settings (`convnet find-similar`'s defaults are the script's constants).
#[derive(Clone, Debug)]
pub struct FindSimilar {
    /// `ftr_dir`: feature batches.
    pub features: PathBuf,
    /// `imnet_dir`: pixel batches.
    pub images: PathBuf,
    /// `TEST_BATCH`.
    pub test_batch: String,
    /// Training batches `1 ..= batches`.
    pub batches: usize,
    /// `TEST_IMGS`.
    pub test_imgs: usize,
    /// `TOP_IMGS`.
    pub top: usize,
    /// `IMG_SIZE`.
    pub img_size: usize,
    /// `IMGS_PER_FIGURE`.
    pub per_figure: usize,
    /// The test cases; `None`: `test_imgs` of a random permutation from `seed`.
    pub cases: Option<Vec<usize>>,
    pub seed: u64,
    /// Where the figures go.
    pub out: PathBuf,
}

/// One of a test case's nearest training images.
#[derive(Clone, Debug)]
pub struct Neighbour {
    pub dist: f32,
    pub batch: usize,
    pub idx: usize,
    /// Its pixels, `(3, size, size)`; `None` while the slot is empty.
    pub img: Option<Vec<u8>>,
}

/// A batch dict's `data` as `(shape, values)`, named in errors.
fn data(dir: &Path, name: &str) -> Result<(Vec<usize>, Vec<f64>, bool), String> {
    let path = dir.join(name);
    let obj = checkpoint::load(&path).map_err(|e| e.to_string())?;
    let d = obj
        .get("data")
        .ok_or_else(|| format!("{}: no 'data'", path.display()))?;
    let f32s = match &*d {
        PyObj::Array(a) => (a.borrow().dtype.kind, a.borrow().dtype.size) == ('f', 4),
        _ => false,
    };
    let (shape, vals) = array_f64(&d, &format!("{}: data", path.display()))?;
    if shape.len() != 2 {
        return Err(format!("{}: data is not two-dimensional", path.display()));
    }
    Ok((shape, vals, f32s))
}

/// Features `(cases, dims)` as float32 rows.
fn features(dir: &Path, name: &str) -> Result<(usize, usize, Vec<f32>), String> {
    let (shape, vals, f32s) = data(dir, name)?;
    if !f32s {
        return Err(format!(
            "{}: features must be float32",
            dir.join(name).display()
        ));
    }
    Ok((
        shape[0],
        shape[1],
        vals.into_iter().map(|v| v as f32).collect(),
    ))
}

/// Case `c`'s pixels of an image batch `(3*size*size, cases)`.
fn pixels(shape: &[usize], vals: &[f64], c: usize) -> Vec<u8> {
    (0..shape[0])
        .map(|r| vals[r * shape[1] + c] as u8)
        .collect()
}

/// Runs the script: its lines to `out`, the figures to `s.out`; returns each test
/// case's neighbours.
pub fn find_similar(s: &FindSimilar, out: &mut dyn Write) -> Result<Vec<Vec<Neighbour>>, String> {
    let (n_test, dims, test) = features(&s.features, &s.test_batch)?;
    let cases = match &s.cases {
        Some(c) => c.clone(),
        None => {
            let mut p: Vec<usize> = (0..n_test).collect();
            SplitMix64::new(s.seed).shuffle(&mut p);
            p.truncate(s.test_imgs);
            p
        }
    };
    if let Some(&c) = cases.iter().find(|&&c| c >= n_test) {
        return Err(format!("test case {c} of {n_test}"));
    }
    let pixels_len = 3 * s.img_size * s.img_size;
    let (ishape, ivals, _) = data(&s.images, &s.test_batch)?;
    if ishape[0] != pixels_len || ishape[1] != n_test {
        return Err(format!(
            "{}: data is {}x{}, not {pixels_len}x{n_test}",
            s.images.join(&s.test_batch).display(),
            ishape[0],
            ishape[1]
        ));
    }
    let test_imgs: Vec<Vec<u8>> = cases.iter().map(|&c| pixels(&ishape, &ivals, c)).collect();
    let empty = Neighbour {
        dist: f32::INFINITY,
        batch: 0,
        idx: 0,
        img: None,
    };
    let mut tops = vec![vec![empty; s.top]; cases.len()];
    let w = |out: &mut dyn Write, l: String| writeln!(out, "{l}").map_err(|e| e.to_string());
    let mut sq = vec![0f32; dims];
    for b in 1..=s.batches {
        let name = format!("data_batch_{b}");
        let (m, d, feats) = features(&s.features, &name)?;
        let (ishape, ivals, _) = data(&s.images, &name)?;
        if d != dims || ishape[0] != pixels_len || ishape[1] != m {
            return Err(format!("batch {b}: features or images of another shape"));
        }
        let t = Instant::now();
        for (&c, top) in cases.iter().zip(&mut tops) {
            let x = &test[c * dims..(c + 1) * dims];
            // The first minimum of the row sums (argmin; a NaN is a minimum).
            let mut best: Option<(usize, f32)> = None;
            for (j, y) in feats.chunks_exact(dims).enumerate() {
                for ((s, &a), &b) in sq.iter_mut().zip(x).zip(y) {
                    let diff = a - b;
                    *s = diff * diff;
                }
                let dist = numpy_sum_f32(&sq);
                let better = match best {
                    None => true,
                    Some((_, bd)) => !bd.is_nan() && (dist.is_nan() || dist < bd),
                };
                if better {
                    best = Some((j, dist));
                }
            }
            let Some((midx, dist)) = best else { continue };
            // From the end, past every neighbour farther away: after equal ones.
            let mut k = s.top;
            while k > 0 && dist < top[k - 1].dist {
                k -= 1;
            }
            if k < s.top {
                let img = Some(pixels(&ishape, &ivals, midx));
                top.insert(
                    k,
                    Neighbour {
                        dist,
                        batch: b,
                        idx: midx,
                        img,
                    },
                );
                top.pop();
            }
        }
        w(out, format!("({m},)"))?;
        w(
            out,
            format!(
                "Finished training batch {b} ({:.6} sec)",
                t.elapsed().as_secs_f64()
            ),
        )?;
        if b % 50 == 0 {
            draw(s, &test_imgs, &tops)?;
        }
    }
    draw(s, &test_imgs, &tops)?;
    Ok(tops)
}

/// `draw_fig`: one figure per `per_figure` test cases, written as `figure-<n>.png`.
fn draw(s: &FindSimilar, test_imgs: &[Vec<u8>], tops: &[Vec<Neighbour>]) -> Result<(), String> {
    let size = s.img_size;
    let (h, w) = ((size + 1) * s.per_figure - 1, (size + 1) * (1 + s.top) + 3);
    std::fs::create_dir_all(&s.out).map_err(|e| format!("{}: {e}", s.out.display()))?;
    for f in 0..test_imgs.len() / s.per_figure.max(1) {
        let mut canvas = Canvas::new(w, h, [0, 0, 0]);
        for i in 0..s.per_figure {
            let t = f * s.per_figure + i;
            let y0 = (size + 1) * i;
            canvas.planes(0, y0, &test_imgs[t], size, size);
            for (j, n) in tops[t].iter().enumerate() {
                if let Some(img) = &n.img {
                    canvas.planes(size + 4 + j * (size + 1), y0, img, size, size);
                }
            }
        }
        let path = s.out.join(format!("figure-{}.png", f + 1));
        std::fs::write(&path, canvas.to_png()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
