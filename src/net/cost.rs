//! Port of cost.cu/cost.cuh (both generations): the costs of one batch, by cost layer.

use indexmap::IndexMap;

/// `Cost`: each cost layer's values summed over the cases seen (`_costv`), with the
/// layer's `coeff`, and the number of cases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cost {
    pub num_cases: usize,
    /// Cost layer name → (coeff, values), in the cost list's order.
    pub values: IndexMap<String, (f64, Vec<f64>)>,
}

impl Cost {
    /// `Cost += Cost`: values element by element, and the case counts.
    pub fn add(&mut self, other: &Cost) {
        self.num_cases += other.num_cases;
        for (name, (coeff, v)) in &other.values {
            let e = self
                .values
                .entry(name.clone())
                .or_insert_with(|| (*coeff, vec![0.0; v.len()]));
            for (a, b) in e.1.iter_mut().zip(v) {
                *a += b;
            }
        }
    }

    /// `getValue()`: `Σ coeff * value[0]` over the cost layers.
    pub fn value(&self) -> f64 {
        self.values.values().map(|(c, v)| c * v[0]).sum()
    }
}
