//! Port of the layer types of layer.cu/layer.cuh (both generations): each type's
//! state and its `fpropActs`, `bpropActs` and (weight layers) `bpropCommon` and
//! `updateWeights`, built from the type's dictionary as its C++ constructor reads it.
//!
//! - [`weighted`]: `WeightLayer`, `FCLayer`, `ConvLayer`, `LocalUnsharedLayer`,
//!   2012 `TreeFCLayer`.
//! - [`image`]: pooling, the normalisations, bed of nails, blur, resize, colour
//!   conversions, 2012 horizontal reflection and random scale.
//! - [`simple`]: softmax, element-wise sum and max, neuron layers (2012: with the
//!   fused logistic + `cost.crossent2` gradient), 2012 dropout (`hs`) and concat.
//! - [`cost`]: the cost layers.

pub mod cost;
pub mod image;
pub mod simple;
pub mod weighted;

use super::dict::LayerDict;
use super::layer::{Io, Layer, Rt};
use super::weights::WeightArena;
use super::NetError;
use crate::config::Generation;

/// A layer type and its state.
pub enum Kind {
    /// `DataLayer`: the minibatch's matrix `dataIdx`.
    Data {
        data_idx: usize,
    },
    Weighted(Box<weighted::WeightLayer>),
    Image(image::ImageLayer),
    Simple(simple::SimpleLayer),
    Cost(cost::CostLayer),
}

/// What a type's constructor needs besides its dictionary: where shared weights
/// live (layer name → its weight-matrix ids in the arena).
pub struct Build<'a> {
    pub gen: Generation,
    pub weights: &'a mut WeightArena,
    pub layer_weights: &'a dyn Fn(&str) -> Option<Vec<usize>>,
}

impl Kind {
    /// `ConvNet::initLayer`: the type from the dictionary's `type`, and whether the
    /// layer views its matrices transposed (`_trans`).
    pub fn new(d: &LayerDict, b: &mut Build) -> Result<(Kind, bool), NetError> {
        let ty = d.str("type")?;
        Ok(match ty {
            "data" => (
                Kind::Data {
                    data_idx: d.usize("dataIdx")?,
                },
                false,
            ),
            "fc" | "conv" | "local" | "treefc" if ty != "treefc" || b.gen == Generation::A12 => {
                let l = weighted::WeightLayer::new(d, b)?;
                let trans = ty == "fc" || ty == "treefc";
                (Kind::Weighted(Box::new(l)), trans)
            }
            _ if ty.starts_with("cost.") => (Kind::Cost(cost::CostLayer::new(d, b.gen)?), false),
            _ => {
                if let Some(l) = simple::SimpleLayer::new(d, b.gen)? {
                    let trans = l.trans();
                    (Kind::Simple(l), trans)
                } else if let Some(l) = image::ImageLayer::new(d, b.gen)? {
                    (Kind::Image(l), false)
                } else {
                    return Err(d.err(format!("Unknown layer type {ty}")));
                }
            }
        })
    }

    pub fn grad_producer(&self) -> bool {
        match self {
            Kind::Data { .. } => false,
            Kind::Cost(c) => c.coeff != 0.0,
            _ => true,
        }
    }

    /// `fpropActs(inpIdx, scaleTargets, passType)`.
    pub fn fprop_acts(
        &mut self,
        io: &Io,
        i: usize,
        scale: f32,
        rt: &mut Rt,
    ) -> Result<(), NetError> {
        match self {
            Kind::Data { .. } => Ok(()),
            Kind::Weighted(l) => l.fprop_acts(io, i, scale, rt),
            Kind::Image(l) => l.fprop_acts(io, rt),
            Kind::Simple(l) => l.fprop_acts(io, i, scale, rt),
            Kind::Cost(l) => l.fprop_acts(io, i, scale, rt),
        }
    }

    /// `bpropActs(v, inpIdx, scaleTargets, passType)`.
    pub fn bprop_acts(
        &mut self,
        io: &Io,
        i: usize,
        scale: f32,
        rt: &mut Rt,
    ) -> Result<(), NetError> {
        match self {
            Kind::Data { .. } => Ok(()),
            Kind::Weighted(l) => l.bprop_acts(io, i, scale, rt),
            Kind::Image(l) => l.bprop_acts(io, scale, rt),
            Kind::Simple(l) => l.bprop_acts(io, i, scale, rt),
            Kind::Cost(l) => l.bprop_acts(io, i, scale, rt),
        }
    }

    /// `bpropCommon(v, passType)`: the weight and bias gradients.
    pub fn bprop_common(&mut self, io: &Io, rt: &mut Rt) -> Result<(), NetError> {
        match self {
            Kind::Weighted(l) => l.bprop_common(io, rt),
            _ => Ok(()),
        }
    }
}

impl From<crate::cudaconv2::ShapeError> for NetError {
    fn from(e: crate::cudaconv2::ShapeError) -> NetError {
        NetError {
            layer: None,
            message: e.to_string(),
        }
    }
}

/// 2012: who computes the gradients of the cost layers whose input may do it in one
/// go, decided from the layer graph as the original decides at each backward pass:
/// - `cost.crossent` works unless its input is a softmax with no other consumer
///   (which does not fuse it either: no gradient, BUG);
/// - `cost.crossent2` works unless its input is a `logistic` neuron layer with no
///   other consumer, on the same GPU;
/// - a `logistic` neuron layer whose only consumer is a `cost.crossent2` on its GPU
///   computes the fused gradient from that layer's labels and `coeff`.
pub fn resolve_2012_fusions(layers: &mut [Layer]) {
    let logistic = |l: &Layer| {
        matches!(&l.kind, Kind::Simple(simple::SimpleLayer::Neuron { neuron, .. })
            if neuron.type_name() == "logistic")
    };
    for c in 0..layers.len() {
        let Some(&p) = layers[c].prev.get(1) else {
            continue;
        };
        let (below, alone) = (&layers[p], layers[p].next.len() == 1);
        let work = match layers[c].ty.as_str() {
            "cost.crossent" => !(alone && below.ty == "softmax"),
            "cost.crossent2" => !(alone && logistic(below) && below.gpu == layers[c].gpu),
            _ => continue,
        };
        if let Kind::Cost(cost::CostLayer {
            ty: cost::CostType::CrossEnt { do_work } | cost::CostType::CrossEnt2 { do_work },
            ..
        }) = &mut layers[c].kind
        {
            *do_work = work;
        }
    }
    for n in 0..layers.len() {
        let fused = match layers[n].next.as_slice() {
            &[c] if logistic(&layers[n])
                && layers[c].ty == "cost.crossent2"
                && layers[c].gpu == layers[n].gpu =>
            {
                match &layers[c].kind {
                    Kind::Cost(k) => Some((layers[layers[c].prev[0]].acts, k.coeff)),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Kind::Simple(simple::SimpleLayer::Neuron { crossent2, .. }) = &mut layers[n].kind {
            *crossent2 = fused;
        }
    }
}
