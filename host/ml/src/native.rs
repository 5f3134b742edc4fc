//! The trained models in native form, and the dispatch of `predict` to
//! their family.

use crate::data::Matrix;
use crate::error::Result;
use crate::forest::TreeEnsembleModel;
use crate::linear::LinearModel;
use crate::mlp::Mlp;
use crate::prediction::Prediction;

/// A trained model in native form: its parameters, in `f64`, and a native
/// `predict`. What the ONNX file holds, before rounding to `f32`.
#[derive(Debug, Clone, PartialEq)]
pub enum NativeModel {
    /// Linear or logistic regression.
    Linear(LinearModel),
    /// A perceptron.
    Mlp(Mlp),
    /// Gradient-boosted trees or a random forest.
    Trees(TreeEnsembleModel),
}

impl NativeModel {
    /// Predicts the rows of `x` natively.
    pub fn predict(&self, x: &Matrix) -> Result<Prediction> {
        match self {
            NativeModel::Linear(m) => m.predict(x),
            NativeModel::Mlp(m) => m.predict(x),
            NativeModel::Trees(m) => m.predict(x),
        }
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        match self {
            NativeModel::Linear(m) => m.coefficients.cols(),
            NativeModel::Mlp(m) => m.layers[0].weights.rows(),
            NativeModel::Trees(m) => m.n_features,
        }
    }

    /// How much each input feature contributed (trees: the share of the
    /// total split gain); `None` for models without such a measure.
    pub fn feature_importances(&self) -> Option<&[f64]> {
        match self {
            NativeModel::Trees(m) => Some(&m.feature_importances),
            _ => None,
        }
    }
}
