//! `--show-preds` (shownet.py's `plot_predictions`, both generations): the first test
//! batch through the net up to the softmax layer; 8 random cases of it (with
//! `--only-errors`, 8 random cases the net got wrong), each drawn above a horizontal
//! bar chart of its top 4 (2012: 5) class probabilities, the true class's bar red
//! (2012: light red) and the others blue, titled with the true label (2012: the first
//! comma-separated part of the label name).

use super::canvas::{self, Canvas, Image, BLACK, BLUE, RED, WHITE};
use super::cli::Args;
use super::{select_columns, write_png, Loaded, Res, Runner};
use crate::config::Generation;
use crate::data::batches::BatchMeta;
use crate::nvmatrix::NvMatrix;
use crate::synthetic::SplitMix64;

pub const NUM_ROWS: usize = 2;
pub const NUM_COLS: usize = 4;
pub const NUM_IMGS: usize = NUM_ROWS * NUM_COLS;

/// One case drawn.
#[derive(Clone, Debug)]
pub struct Shown {
    /// Its column in the test batch.
    pub case: usize,
    pub label: usize,
    /// The softmax outputs.
    pub probs: Vec<f32>,
    pub image: Image,
}

/// What the figure shows.
#[derive(Clone, Debug)]
pub struct PredsFig {
    pub gen: Generation,
    pub title: String,
    pub label_names: Vec<String>,
    /// Bars per case: `min(classes, 4)` (2012: 5).
    pub top: usize,
    pub shown: Vec<Shown>,
}

impl PredsFig {
    /// `sorted(zip(preds, label_names))[-top:]`: `(probability, class)`, ascending,
    /// ties in class order.
    pub fn top_labels(&self, s: &Shown) -> Vec<(f32, usize)> {
        let mut pairs: Vec<(f32, usize)> = s
            .probs
            .iter()
            .copied()
            .zip(0..self.label_names.len())
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = pairs.len();
        pairs.split_off(n - self.top.min(n))
    }
}

/// numpy's `argmax`: the first largest value.
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// `get_plottable_data`: a case of the provider's data plus the mean it subtracted, over
/// 255, as an image (colour, or grey for one channel). A cropped provider's cases are
/// the centre crop, with the centre crop of the mean.
pub struct Plottable {
    colors: usize,
    inner: usize,
    mean: Vec<f64>,
}

impl Plottable {
    pub fn new(meta: &BatchMeta, rows: usize) -> Res<Plottable> {
        let colors = meta.num_colors.unwrap_or(3);
        let size = meta.img_size.unwrap_or(32);
        let inner = ((rows / colors.max(1)) as f64).sqrt() as usize;
        if colors == 0 || inner * inner * colors != rows || inner > size {
            return Err(format!(
                "cannot draw cases of {rows} values as {colors}-colour images of at most {size}x{size}"
            ));
        }
        let border = (size - inner) / 2;
        let mut mean = Vec::with_capacity(rows);
        for c in 0..colors {
            for y in 0..inner {
                for x in 0..inner {
                    let i = (c * size + y + border) * size + x + border;
                    mean.push(meta.data_mean.get(i).copied().unwrap_or(0.0));
                }
            }
        }
        Ok(Plottable {
            colors,
            inner,
            mean,
        })
    }

    pub fn image(&self, data: &NvMatrix, case: usize) -> Image {
        let ch = if self.colors == 3 { 3 } else { 1 };
        let n = self.inner;
        let mut img = Image::new(n, n, ch);
        for c in 0..ch {
            for y in 0..n {
                for x in 0..n {
                    let d = (c * n + y) * n + x;
                    let v = (data.get(d, case) as f64 + self.mean[d]) / 255.0;
                    img.set(x, y, c, v as f32);
                }
            }
        }
        img
    }
}

/// Runs the net and picks the cases. Returns the figure and the text lines.
pub fn predictions(
    m: &Loaded,
    args: &Args,
    runner: &mut Runner,
    softmax: &str,
) -> Res<(PredsFig, Vec<String>)> {
    let meta = runner.meta.clone().map_err(|e| {
        format!("--show-preds needs the label names and image geometry of batches.meta: {e}")
    })?;
    let batch = runner.test_dp.next_batch()?;
    let data = &batch.data;
    let cases = data[0].cols();
    if cases == 0 {
        return Err(format!("test batch {} has no cases", batch.batchnum));
    }
    let plottable = Plottable::new(&meta, data[0].rows())?;
    let num_classes = runner.test_dp.num_classes();
    let top = num_classes.min(match m.gen {
        Generation::C1 => 4,
        Generation::A12 => 5,
    });
    let label_names: Vec<String> = meta
        .label_names
        .iter()
        .map(|n| match m.gen {
            Generation::C1 => n.clone(),
            Generation::A12 => n.split(',').next().unwrap_or_default().to_string(),
        })
        .collect();
    let label = |c: usize| data[1].get(0, c).max(0.0) as usize;
    let mut rng = SplitMix64::new(args.seed);
    let run = |runner: &mut Runner, d: &[NvMatrix]| {
        runner
            .convnet
            .features(d, softmax)
            .map(|r| r.1)
            .map_err(|e| e.to_string())
    };
    let (picked, probs, header): (Vec<usize>, NvMatrix, String) = if args.only_errors {
        let p = run(runner, data)?;
        let mut wrong: Vec<usize> = (0..cases)
            .filter(|&c| argmax(&row(&p, c)) != label(c))
            .collect();
        let total = wrong.len();
        // A random permutation of them (Fisher-Yates), the first 8.
        for i in (1..wrong.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            wrong.swap(i, j);
        }
        wrong.truncate(NUM_IMGS);
        let sel = select_rows(&p, &wrong);
        let header = format!(
            "Mistaken test case predictions: test batch {}, {total} of {cases} cases wrong, {} shown",
            batch.batchnum,
            wrong.len()
        );
        (wrong, sel, header)
    } else {
        let idx: Vec<usize> = (0..NUM_IMGS)
            .map(|_| (rng.next_u64() % cases as u64) as usize)
            .collect();
        let sel: Vec<NvMatrix> = data.iter().map(|d| select_columns(d, &idx)).collect();
        let p = run(runner, &sel)?;
        let header = format!(
            "Random test case predictions: test batch {}, {NUM_IMGS} random cases of {cases}",
            batch.batchnum
        );
        (idx, p, header)
    };
    let shown: Vec<Shown> = picked
        .iter()
        .enumerate()
        .map(|(i, &c)| Shown {
            case: c,
            label: label(c),
            probs: row(&probs, i),
            image: plottable.image(&data[0], c),
        })
        .collect();
    if let Some(s) = shown.iter().find(|s| s.label >= label_names.len()) {
        return Err(format!(
            "case {} has label {}, batches.meta names {} classes",
            s.case,
            s.label,
            label_names.len()
        ));
    }
    let title = match (m.gen, args.only_errors) {
        (Generation::C1, false) => "Random test case predictions",
        (Generation::C1, true) => "Mistaken test case predictions",
        (Generation::A12, false) => "Random test samples",
        (Generation::A12, true) => "Mistaken test samples",
    };
    let fig = PredsFig {
        gen: m.gen,
        title: title.to_string(),
        label_names,
        top,
        shown,
    };
    let mut lines = vec![header];
    for s in &fig.shown {
        let tops: Vec<String> = fig
            .top_labels(s)
            .iter()
            .rev()
            .map(|&(p, k)| format!("{} {:.4}", fig.label_names[k], p))
            .collect();
        let verdict = if argmax(&s.probs) == s.label {
            "right"
        } else {
            "wrong"
        };
        lines.push(format!(
            "case {}: {} ({verdict}): {}",
            s.case,
            fig.label_names[s.label],
            tops.join(", ")
        ));
    }
    Ok((fig, lines))
}

fn row(m: &NvMatrix, r: usize) -> Vec<f32> {
    (0..m.cols()).map(|c| m.get(r, c)).collect()
}

fn select_rows(m: &NvMatrix, idx: &[usize]) -> NvMatrix {
    let data = idx.iter().flat_map(|&r| row(m, r)).collect();
    NvMatrix::from_vec(idx.len(), m.cols(), false, data)
}

pub const CELL_W: usize = 240;
pub const IMG_BOX: usize = 128;
pub const HEADER_H: usize = 40;

/// Pixels of one bar-chart unit: 2011 bars are half a unit tall with half a unit
/// between them, 2012 bars half a unit tall and adjacent.
fn unit(gen: Generation) -> usize {
    match gen {
        Generation::C1 => 16,
        Generation::A12 => 32,
    }
}

/// Height of the bar chart axes.
fn axis_h(fig: &PredsFig) -> usize {
    match fig.gen {
        // ylim(0, ylocs[-1] + height*2) with ylocs = 0.5, 1.5, ...
        Generation::C1 => (fig.top * 2 + 1) * unit(fig.gen) / 2,
        // ylim(0, ylocs[-1] + height) with ylocs = 0, 0.5, ...
        Generation::A12 => fig.top * unit(fig.gen) / 2,
    }
}

pub fn cell_h(fig: &PredsFig) -> usize {
    IMG_BOX + 8 + 8 + 6 + axis_h(fig) + 22
}

/// The size of preds.png.
pub fn size(fig: &PredsFig) -> (usize, usize) {
    (NUM_COLS * CELL_W, HEADER_H + NUM_ROWS * cell_h(fig))
}

/// preds.png.
pub fn render(fig: &PredsFig) -> Canvas {
    let (w, h) = size(fig);
    let mut cv = Canvas::new(w, h, WHITE);
    cv.text_centered(w as i64 / 2, 12, &fig.title, 2, BLACK);
    let (true_c, other_c) = match fig.gen {
        Generation::C1 => (RED, BLUE),
        Generation::A12 => ([255, 170, 170], [170, 170, 255]),
    };
    let u = unit(fig.gen) as f64;
    let ah = axis_h(fig) as i64;
    for (i, s) in fig.shown.iter().enumerate() {
        let (r, c) = (i / NUM_COLS, i % NUM_COLS);
        let x0 = (c * CELL_W) as i64;
        let y0 = (HEADER_H + r * cell_h(fig)) as i64;
        let k = (IMG_BOX / s.image.width.max(1)).max(1);
        let iw = (s.image.width * k) as i64;
        cv.image(x0 + (CELL_W as i64 - iw) / 2, y0, &s.image, k);
        let (ax, aw) = match fig.gen {
            Generation::C1 => (x0 + 126, 100i64),
            Generation::A12 => (x0 + 20, 200i64),
        };
        // The title of the bar chart: the true label.
        let ty = y0 + IMG_BOX as i64 + 8;
        let name = &fig.label_names[s.label];
        cv.text_centered(ax + aw / 2, ty, &canvas::fit(name, 28), 1, BLACK);
        let ay = ty + 14;
        let bars = fig.top_labels(s);
        // y in axis units (0 at the bottom) to pixels.
        let py = |y: f64| ay + ah - (y * u).round() as i64;
        for (j, &(p, k)) in bars.iter().enumerate() {
            let color = if fig.label_names[k] == *name {
                true_c
            } else {
                other_c
            };
            let (y_lo, y_hi) = match fig.gen {
                Generation::C1 => (j as f64 + 0.5, j as f64 + 1.0),
                Generation::A12 => (j as f64 * 0.5, j as f64 * 0.5 + 0.5),
            };
            let len = (p.clamp(0.0, 1.0) as f64 * aw as f64).round() as i64;
            cv.fill_rect(ax, py(y_hi), len, py(y_lo) - py(y_hi), color);
            let mid = (py(y_lo) + py(y_hi)) / 2 - 4;
            let label = &fig.label_names[k];
            match fig.gen {
                Generation::C1 => cv.text_right(ax - 4, mid, &canvas::fit(label, 15), 1, BLACK),
                Generation::A12 => {
                    // Labels inside the axes at its right edge, on a grey box.
                    let t = canvas::fit(label, 24);
                    let tw = canvas::text_width(&t, 1) as i64;
                    cv.fill_rect(ax + aw - tw - 4, mid - 1, tw + 2, 10, [200, 200, 200]);
                    cv.text_right(ax + aw - 3, mid, &t, 1, BLACK);
                }
            }
        }
        cv.rect(ax - 1, ay - 1, aw + 2, ah + 2, BLACK);
        if fig.gen == Generation::C1 {
            // xticks([width/2, width], ['50%', '']).
            for t in [aw / 2, aw] {
                cv.fill_rect(ax + t, ay + ah, 1, 4, BLACK);
            }
            cv.text_centered(ax + aw / 2, ay + ah + 6, "50%", 1, BLACK);
        }
    }
    cv
}

/// The mode: preds.png into `--out-dir`, the predictions as text.
pub fn show_preds(m: &Loaded, args: &Args, runner: &mut Runner, softmax: &str) -> Res<Vec<String>> {
    let (fig, mut lines) = predictions(m, args, runner, softmax)?;
    let path = write_png(&args.out_dir, "preds.png", &render(&fig))?;
    lines.push(format!("Wrote {}", path.display()));
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_labels_are_the_last_of_a_stable_ascending_sort() {
        let fig = PredsFig {
            gen: Generation::C1,
            title: String::new(),
            label_names: (0..6).map(|i| i.to_string()).collect(),
            top: 4,
            shown: vec![],
        };
        let s = Shown {
            case: 0,
            label: 0,
            probs: vec![0.1, 0.3, 0.1, 0.05, 0.3, 0.15],
            image: Image::new(1, 1, 1),
        };
        assert_eq!(
            fig.top_labels(&s),
            [(0.1, 2), (0.15, 5), (0.3, 1), (0.3, 4)]
        );
        assert_eq!(argmax(&s.probs), 1);
    }
}
