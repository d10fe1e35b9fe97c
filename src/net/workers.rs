//! Port of worker.cu's 2012 `MultiviewTestWorker` and the `FeatureWorker` of both
//! generations (2012: several layers per call, `PASS_FEATURE_GEN`).

use super::kinds::cost::CostType;
use super::kinds::Kind;
use super::{ConvNet, Cost, NetError, Pass};
use crate::config::Generation;
use crate::nvmatrix::NvMatrix;

impl ConvNet {
    /// The 2012 `MultiviewTestWorker`: `data` holds `num_views` view-major blocks of
    /// the real cases; for each minibatch of real cases every view is fprop'd, the
    /// first with `PASS_MULTIVIEW_TEST_START`, the last with `_END`, the others with
    /// `PASS_MULTIVIEW_TEST`: each `cost.logreg` layer sums its input probabilities
    /// over the views and computes its costs on their average at the last view (with
    /// one view, never: the single view is a START). The cost is collected once per
    /// minibatch, counting the last view's cases; other cost layers report their last
    /// view's values.
    ///
    /// With `logreg` (`startMultiviewTest(data, numViews, probs, logregName)`), also
    /// that layer's view-averaged probabilities (`getProbsAccum()`), `(real cases,
    /// classes)` row-major.
    pub fn multiview_test_2012(
        &mut self,
        data: &[NvMatrix],
        num_views: usize,
        logreg: Option<&str>,
    ) -> Result<(Cost, Option<NvMatrix>), NetError> {
        let err = |layer: Option<&str>, m: String| NetError {
            layer: layer.map(str::to_string),
            message: m,
        };
        let lr = match logreg {
            Some(name) => {
                let l = self
                    .find(name)
                    .ok_or_else(|| err(logreg, "no such layer".into()))?;
                if self.layers[l].ty != "cost.logreg" {
                    return Err(err(logreg, "not a cost.logreg layer".into()));
                }
                Some(l)
            }
            None => None,
        };
        let cases = data.first().map_or(0, NvMatrix::cols);
        if num_views == 0 || !cases.is_multiple_of(num_views) {
            return Err(err(
                None,
                format!("{cases} cases are not {num_views} views"),
            ));
        }
        let real = cases / num_views;
        let mb = self.opts.minibatch_size.max(1);
        let mut cost = Cost::default();
        let mut probs: Option<NvMatrix> = None;
        for i in 0..real.div_ceil(mb) {
            let (r0, r1) = (i * mb, real.min((i + 1) * mb));
            for v in 0..num_views {
                let pass = if v == 0 {
                    Pass::MultiviewTestStart
                } else if v == num_views - 1 {
                    Pass::MultiviewTestEnd
                } else {
                    Pass::MultiviewTest
                };
                self.fprop_cols(data, v * real + r0, v * real + r1, pass)?;
            }
            if let Some(l) = lr {
                let Kind::Cost(c) = &self.layers[l].kind else {
                    unreachable!("cost.logreg is a cost layer")
                };
                let CostType::Logreg { probs_accum, .. } = &c.ty else {
                    unreachable!("cost.logreg has the logreg cost type")
                };
                // `acts.transpose(acts_T); acts_T.copyToHost(rows r0..r1)`.
                let classes = probs_accum.rows();
                let out = probs.get_or_insert_with(|| NvMatrix::new(real, classes, false));
                for c in 0..r1 - r0 {
                    for k in 0..classes {
                        out.set(r0 + c, k, probs_accum.get(k, c));
                    }
                }
            }
            cost.add(&self.cost());
        }
        Ok((cost, probs))
    }

    /// `FeatureWorker`: fprop every minibatch (2011 `PASS_TEST`, 2012
    /// `PASS_FEATURE_GEN`), collect the costs, and each named layer's activations as
    /// a `(cases, outputs)` row-major matrix.
    pub fn features_of(
        &mut self,
        data: &[NvMatrix],
        layers: &[&str],
    ) -> Result<(Cost, Vec<NvMatrix>), NetError> {
        let ids = layers
            .iter()
            .map(|&name| {
                self.find(name).ok_or_else(|| NetError {
                    layer: Some(name.to_string()),
                    message: "no such layer".into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pass = match self.gen {
            Generation::C1 => Pass::Test,
            Generation::A12 => Pass::FeatureGen,
        };
        let cases = data.first().map_or(0, NvMatrix::cols);
        let mut cost = Cost::default();
        let mut out: Vec<Option<NvMatrix>> = vec![None; ids.len()];
        for (s, e) in self.minibatches(data) {
            self.fprop_cols(data, s, e, pass)?;
            cost.add(&self.cost());
            for (&l, o) in ids.iter().zip(&mut out) {
                let a = self.bufs.acts[self.layers[l].acts].borrow();
                let n = e - s;
                let outputs = a.len() / n;
                let o = o.get_or_insert_with(|| NvMatrix::new(cases, outputs, false));
                // Activations are (outputs, cases) in memory whatever their view.
                for c in 0..n {
                    for k in 0..outputs {
                        o.set(s + c, k, a.data()[k * n + c]);
                    }
                }
            }
        }
        Ok((
            cost,
            out.into_iter().map(Option::unwrap_or_default).collect(),
        ))
    }
}
