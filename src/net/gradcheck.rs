//! Port of `ConvNet::checkGradients` and `ConvNet::checkGradient` (convnet.cu, both
//! generations) and `WeightLayer::checkGradients` (layer.cu): one-sided finite
//! differences of the cost against the analytic gradient, for every weight matrix
//! and bias vector, with the original's report.

use super::kinds::Kind;
use super::{ConvNet, GcSummary, NetError, Pass};
use crate::config::Generation;
use crate::nvmatrix::NvMatrix;
use std::io::Write;

/// `GC_REL_ERR_THRESH`.
const REL_ERR_THRESH: f32 = 0.02;

/// The host `Matrix::norm()`: the float sum of squares in memory order, then `sqrt`.
fn norm(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |s, &x| x * x + s).sqrt()
}

/// `Matrix::print(6, 4)`: the top-left block, `%.15f ` per value.
fn print_block(
    out: &mut dyn Write,
    rows: usize,
    cols: usize,
    at: impl Fn(usize, usize) -> f32,
) -> std::io::Result<()> {
    for i in 0..rows.min(6) {
        for j in 0..cols.min(4) {
            write!(out, "{:.15} ", at(i, j))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

impl ConvNet {
    /// `GradCheckWorker` / `checkGradients()` on the first minibatch of `data`,
    /// printing the original's report to `out` (2011 prints only failures, 2012
    /// every test).
    pub fn check_gradients(
        &mut self,
        data: &[NvMatrix],
        out: &mut dyn Write,
    ) -> Result<GcSummary, NetError> {
        let (s, e) = self.minibatches(data).first().copied().unwrap_or((0, 0));
        let mut mini = Vec::new();
        Self::slice_minibatch(data, s, e, &mut mini)?;
        self.fprop(&mini, Pass::Gc)?;
        let base = self.cost().value();
        self.bprop(Pass::Gc)?;
        let mut order: Vec<usize> = (0..self.layers.len()).collect();
        if self.gen == Generation::A12 {
            order.sort_by(|&a, &b| self.layers[a].name.cmp(&self.layers[b].name));
        }
        let mut summary = GcSummary {
            tests: 0,
            failures: 0,
        };
        for l in order {
            let Kind::Weighted(w) = &self.layers[l].kind else {
                continue;
            };
            let name = self.layers[l].name.clone();
            let mut checks: Vec<(String, f32, usize)> = w
                .weights
                .iter()
                .enumerate()
                .map(|(i, &id)| (w.gc_label(&name, i), w.w_step, id))
                .collect();
            checks.push((format!("{name} biases"), w.b_step, w.biases));
            for (label, eps, id) in checks {
                let fail = self.check_gradient(&mini, &label, eps, id, base, out)?;
                summary.tests += 1;
                summary.failures += fail as usize;
            }
        }
        let io = |e: std::io::Error| NetError {
            layer: None,
            message: format!("writing the gradient-check report: {e}"),
        };
        writeln!(out, "------------------------").map_err(io)?;
        if summary.failures > 0 {
            writeln!(out, "{}/{} TESTS FAILED", summary.failures, summary.tests).map_err(io)?;
        } else {
            writeln!(out, "ALL {} TESTS PASSED", summary.tests).map_err(io)?;
        }
        Ok(summary)
    }

    /// `checkGradient(name, eps, weights)`: returns whether it failed.
    fn check_gradient(
        &mut self,
        mini: &[NvMatrix],
        name: &str,
        eps: f32,
        id: usize,
        base: f64,
        out: &mut dyn Write,
    ) -> Result<bool, NetError> {
        let w0 = self.weights.mats(id).w.clone();
        let (rows, cols) = (w0.rows(), w0.cols());
        let cases = self.num_cases;
        let mut num_grad = vec![0f32; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                let mut w = w0.clone();
                w.set(i, j, w0.get(i, j) + eps);
                *self.weights.w_mut(id) = w;
                self.fprop(mini, Pass::Gc)?;
                let err = self.cost().value();
                let g = ((err - base) / (cases as f32 * eps) as f64) as f32;
                if !g.is_finite() {
                    return Err(NetError {
                        layer: None,
                        message: format!(
                            "Numerical computation produced nan or inf when checking '{name}': {g}\n\
                             Consider reducing the sizes of the weights or finite difference steps."
                        ),
                    });
                }
                num_grad[i * cols + j] = g;
            }
        }
        *self.weights.w_mut(id) = w0;
        let grad = self.weights.grad(id);
        let scale = -1.0 / cases as f32;
        let anal: Vec<f32> = (0..rows * cols)
            .map(|k| grad.get(k / cols, k % cols) * scale)
            .collect();
        let anal_norm = norm(&anal);
        let num_norm = norm(&num_grad);
        let diff: Vec<f32> = num_grad.iter().zip(&anal).map(|(n, a)| n - a).collect();
        let rel = norm(&diff) / anal_norm;
        let fail = rel >= REL_ERR_THRESH || rel.is_nan();
        if fail || self.gen == Generation::A12 {
            let io = |e: std::io::Error| NetError {
                layer: None,
                message: format!("writing the gradient-check report: {e}"),
            };
            (|| -> std::io::Result<()> {
                writeln!(out, "========================")?;
                writeln!(
                    out,
                    "({}) {name} GRADIENT CHECK",
                    if fail { "****FAIL****" } else { "PASS" }
                )?;
                writeln!(out, "========================")?;
                writeln!(out, "Analytic:")?;
                print_block(out, rows, cols, |i, j| anal[i * cols + j])?;
                writeln!(out, "Numeric:")?;
                print_block(out, rows, cols, |i, j| num_grad[i * cols + j])?;
                writeln!(out, "Analytic norm: {}", c_exp(anal_norm as f64))?;
                writeln!(out, "Numeric norm:  {}", c_exp(num_norm as f64))?;
                writeln!(out, "Relative error: {}", c_exp(rel as f64))
            })()
            .map_err(io)?;
        }
        Ok(fail)
    }
}

/// C's `%e`: six decimals and a signed two-digit exponent.
pub fn c_exp(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let s = format!("{v:.6e}");
    let (mant, exp) = s.split_once('e').expect("{:e} has an exponent");
    let e: i32 = exp.parse().expect("exponent");
    format!("{mant}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}
