//! `--show-cost` (shownet.py's `plot_cost`, both generations): value `--cost-idx` of
//! one cost per training batch (black) and the test values, each repeated
//! `testing_freq` times, padded with the last and cut to the training length (red);
//! x ticks at every epoch, labelled about 20 times (never more often than every 10th
//! epoch). The 2011 title is the cost's name, the 2012 one `name[idx]`.

use super::canvas::{self, Canvas, BLACK, GREY, RED, WHITE};
use super::cli::Args;
use super::{count, write_png, Loaded, Res};
use crate::config::Generation;
use crate::driver::format::repr_float;
use crate::driver::state::CostRecord;

/// What the plot shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    pub title: String,
    /// One value per training batch.
    pub train: Vec<f64>,
    /// The test values laid along the training batches.
    pub test: Vec<f64>,
    /// The raw test values, one per test.
    pub tests: Vec<f64>,
    /// `(x, label)` of each tick on the x axis (most labels are empty).
    pub ticks: Vec<(usize, String)>,
}

fn value(o: &CostRecord, name: &str, idx: usize) -> Res<f64> {
    let (_, v) =
        o.costs.iter().find(|(n, _)| n == name).ok_or_else(|| {
            format!("Cost function with name '{name}' not defined by given convnet.")
        })?;
    v.get(idx)
        .copied()
        .ok_or_else(|| format!("--cost-idx={idx}: cost '{name}' has {} value(s)", v.len()))
}

/// The curves of `plot_cost`. `num_batches` is `len(train_batch_range)`.
pub fn curves(
    gen: Generation,
    train_outputs: &[CostRecord],
    test_outputs: &[CostRecord],
    name: &str,
    idx: usize,
    num_batches: usize,
    testing_freq: i64,
) -> Res<Curves> {
    let first = train_outputs
        .first()
        .ok_or("the checkpoint has no training outputs")?;
    if !first.costs.iter().any(|(n, _)| n == name) {
        return Err(format!(
            "Cost function with name '{name}' not defined by given convnet."
        ));
    }
    let train: Vec<f64> = train_outputs
        .iter()
        .map(|o| value(o, name, idx))
        .collect::<Res<_>>()?;
    let tests: Vec<f64> = test_outputs
        .iter()
        .map(|o| value(o, name, idx))
        .collect::<Res<_>>()?;
    if testing_freq <= 0 {
        return Err(format!("the checkpoint's --test-freq is {testing_freq}"));
    }
    if num_batches == 0 {
        return Err("the training range is empty".into());
    }
    let mut test: Vec<f64> = tests
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, testing_freq as usize))
        .collect();
    if let Some(&last) = test.last() {
        test.resize(train.len().max(test.len()), last);
    }
    test.truncate(train.len());
    let n = train.len();
    let num_epochs = n as f64 / num_batches as f64;
    let gran = (num_epochs / 20.0).ceil() as usize;
    let gran = (gran as f64 / 10.0).ceil() as usize * 10;
    let ticks = (num_batches..=n - n % num_batches)
        .step_by(num_batches)
        .enumerate()
        .map(|(i, x)| {
            let label = if gran > 0 && i % gran == gran - 1 {
                (x / num_batches).to_string()
            } else {
                String::new()
            };
            (x, label)
        })
        .collect();
    let title = match gen {
        Generation::C1 => name.to_string(),
        Generation::A12 => format!("{name}[{idx}]"),
    };
    Ok(Curves {
        title,
        train,
        test,
        tests,
        ticks,
    })
}

/// Decimal places that tell ticks `step` apart.
fn decimals(step: f64) -> usize {
    if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    }
}

/// Ticks at 1, 2 or 5 times a power of ten covering `[lo, hi]` (about 6 of them).
pub fn nice_ticks(lo: f64, hi: f64) -> (f64, Vec<f64>) {
    let span = (hi - lo).max(1e-12);
    let raw = span / 6.0;
    let p = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (step, (first..=last).map(|k| k as f64 * step).collect())
}

/// The figure: 800x600, the axes, both curves, ticks, legend, title, "Epoch".
pub fn render(c: &Curves) -> Canvas {
    let (w, h) = (800i64, 600i64);
    let mut cv = Canvas::new(w as usize, h as usize, WHITE);
    let (left, right, top, bottom) = (90i64, 20i64, 50i64, 60i64);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let n = c.train.len();
    let xmax = c
        .ticks
        .last()
        .map_or(0, |t| t.0)
        .max(n.saturating_sub(1))
        .max(1) as f64;
    let all = c
        .train
        .iter()
        .chain(&c.test)
        .copied()
        .filter(|v| v.is_finite());
    let (mut lo, mut hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let px = |x: f64| left as f64 + x / xmax * (pw - 1) as f64;
    let py = |y: f64| (top + ph - 1) as f64 - (y - lo) / (hi - lo) * (ph - 1) as f64;

    // Y ticks with their values.
    let (step, yt) = nice_ticks(lo, hi);
    for y in yt {
        let yy = py(y).round() as i64;
        cv.fill_rect(left - 5, yy, 5, 1, BLACK);
        let label = format!("{:.*}", decimals(step), y);
        cv.text_right(left - 8, yy - 4, &label, 1, BLACK);
    }
    // X ticks at the epochs, labelled as the original labelled them.
    for (x, label) in &c.ticks {
        let xx = px(*x as f64).round() as i64;
        cv.fill_rect(xx, top + ph, 1, 5, BLACK);
        if !label.is_empty() {
            cv.text_centered(xx, top + ph + 8, label, 1, BLACK);
        }
    }
    let curve = |cv: &mut Canvas, v: &[f64], color| {
        let pts: Vec<(f64, f64)> = v
            .iter()
            .enumerate()
            .filter(|(_, y)| y.is_finite())
            .map(|(i, &y)| (px(i as f64), py(y)))
            .collect();
        if pts.len() == 1 {
            cv.fill_rect(pts[0].0 as i64 - 2, pts[0].1 as i64 - 2, 5, 5, color);
        }
        for p in pts.windows(2) {
            cv.line(p[0].0, p[0].1, p[1].0, p[1].1, color, 2);
        }
    };
    curve(&mut cv, &c.train, BLACK);
    curve(&mut cv, &c.test, RED);
    cv.rect(left - 1, top - 1, pw + 2, ph + 2, BLACK);

    // Legend, upper right.
    let lw = 16 + 30 + canvas::text_width("Training set", 1) as i64;
    let (lx, ly) = (left + pw - lw - 10, top + 10);
    cv.fill_rect(lx, ly, lw, 40, WHITE);
    cv.rect(lx, ly, lw, 40, GREY);
    for (i, (label, color)) in [("Training set", BLACK), ("Test set", RED)]
        .iter()
        .enumerate()
    {
        let y = ly + 12 + 16 * i as i64;
        cv.fill_rect(lx + 8, y, 24, 2, *color);
        cv.text(lx + 38, y - 3, label, 1, BLACK);
    }
    cv.text_centered(left + pw / 2, 16, &c.title, 2, BLACK);
    cv.text_centered(left + pw / 2, h - 24, "Epoch", 1, BLACK);
    cv
}

/// The mode: the figure into `--out-dir`/cost.png, the values as text.
pub fn show_cost(m: &Loaded, args: &Args, name: &str) -> Res<Vec<String>> {
    let train_range = match &args.train_range {
        Some(r) => r.0.clone(),
        None => m.opt_range("train_batch_range"),
    };
    let freq = m.opt_int("testing_freq").unwrap_or(0);
    let c = curves(
        m.gen,
        &m.train_outputs,
        &m.test_outputs,
        name,
        args.cost_idx,
        train_range.len(),
        freq,
    )?;
    let path = write_png(&args.out_dir, "cost.png", &render(&c))?;
    let mut out = vec![
        format!(
            "Cost '{name}' value {}: {}, {} (every {})",
            args.cost_idx,
            count(c.train.len(), "training batch"),
            count(c.tests.len(), "test"),
            count(freq.max(0) as usize, "batch")
        ),
        "batch\ttraining\ttest".to_string(),
    ];
    for (i, (a, b)) in c.train.iter().zip(&c.test).enumerate() {
        out.push(format!("{i}\t{}\t{}", repr_float(*a), repr_float(*b)));
    }
    for (i, a) in c.train.iter().enumerate().skip(c.test.len()) {
        out.push(format!("{i}\t{}\t", repr_float(*a)));
    }
    out.push(format!("Wrote {}", path.display()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: f64) -> CostRecord {
        CostRecord {
            costs: vec![("logprob".into(), vec![v, v / 2.0])],
            num_cases: 10,
        }
    }

    #[test]
    fn test_values_are_tiled_padded_and_cut() {
        let train: Vec<CostRecord> = (0..7).map(|i| rec(i as f64)).collect();
        let test = vec![rec(10.0), rec(20.0)];
        let c = curves(Generation::C1, &train, &test, "logprob", 1, 2, 3).unwrap();
        assert_eq!(c.test, [5.0, 5.0, 5.0, 10.0, 10.0, 10.0, 10.0]);
        assert_eq!(c.title, "logprob");
        // range(2, 7 - 1 + 1, 2) = 2, 4, 6; 3.5 epochs: labels every 10th tick only.
        assert_eq!(
            c.ticks,
            [(2, String::new()), (4, String::new()), (6, String::new())]
        );
        let c = curves(Generation::A12, &train[..2], &test, "logprob", 0, 2, 3).unwrap();
        assert_eq!(c.test, [10.0, 10.0]);
        assert_eq!(c.title, "logprob[0]");
    }

    #[test]
    fn epoch_labels_every_tenth_epoch_for_short_runs() {
        let train: Vec<CostRecord> = (0..25).map(|i| rec(i as f64)).collect();
        let c = curves(Generation::C1, &train, &[rec(1.0)], "logprob", 0, 1, 5).unwrap();
        let labelled: Vec<&(usize, String)> = c.ticks.iter().filter(|t| !t.1.is_empty()).collect();
        assert_eq!(labelled, [&(10, "10".to_string()), &(20, "20".to_string())]);
        // 500 epochs: ceil(25 / 10) * 10 = 30.
        let train: Vec<CostRecord> = (0..500).map(|i| rec(i as f64)).collect();
        let c = curves(Generation::C1, &train, &[rec(1.0)], "logprob", 0, 1, 5).unwrap();
        assert_eq!(c.ticks[29].1, "30");
        assert_eq!(c.ticks[28].1, "");
    }

    #[test]
    fn unknown_costs_and_indices_are_errors() {
        let train = vec![rec(1.0)];
        assert_eq!(
            curves(Generation::C1, &train, &[], "x", 0, 1, 1).unwrap_err(),
            "Cost function with name 'x' not defined by given convnet."
        );
        assert!(curves(Generation::C1, &train, &[], "logprob", 2, 1, 1).is_err());
        assert!(curves(Generation::C1, &[], &[], "logprob", 0, 1, 1).is_err());
    }
}
