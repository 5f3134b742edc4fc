//! The training algorithms of the native backend: a leaf that the errors
//! and the params both name.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The training algorithms of the native backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Least squares with an optional L2 penalty (ridge), solved in closed form.
    LinearRegression,
    /// Logistic regression, binary or multinomial, L2-penalised the way
    /// scikit-learn does it (`C`), solved by Newton's method or L-BFGS.
    LogisticRegression,
    /// A multi-layer perceptron with ReLU hidden layers and a softmax output,
    /// trained by Adam on cross-entropy.
    MlpClassifier,
    /// A multi-layer perceptron with ReLU hidden layers and a linear output,
    /// trained by Adam on squared error.
    MlpRegressor,
    /// Gradient-boosted trees on histograms, logistic or softmax loss.
    GradientBoostingClassifier,
    /// Gradient-boosted trees on histograms, squared error.
    GradientBoostingRegressor,
    /// A random forest of classification trees (class proportions averaged).
    RandomForestClassifier,
    /// A random forest of regression trees (means averaged).
    RandomForestRegressor,
}

impl Algorithm {
    /// Every algorithm, in documentation order.
    pub const ALL: [Algorithm; 8] = [
        Algorithm::LinearRegression,
        Algorithm::LogisticRegression,
        Algorithm::MlpClassifier,
        Algorithm::MlpRegressor,
        Algorithm::GradientBoostingClassifier,
        Algorithm::GradientBoostingRegressor,
        Algorithm::RandomForestClassifier,
        Algorithm::RandomForestRegressor,
    ];

    /// The name used in params, specs and model cards (`logistic_regression`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::LinearRegression => "linear_regression",
            Algorithm::LogisticRegression => "logistic_regression",
            Algorithm::MlpClassifier => "mlp_classifier",
            Algorithm::MlpRegressor => "mlp_regressor",
            Algorithm::GradientBoostingClassifier => "gradient_boosting_classifier",
            Algorithm::GradientBoostingRegressor => "gradient_boosting_regressor",
            Algorithm::RandomForestClassifier => "random_forest_classifier",
            Algorithm::RandomForestRegressor => "random_forest_regressor",
        }
    }

    /// Whether the algorithm predicts classes (otherwise real values).
    pub fn is_classifier(self) -> bool {
        matches!(
            self,
            Algorithm::LogisticRegression
                | Algorithm::MlpClassifier
                | Algorithm::GradientBoostingClassifier
                | Algorithm::RandomForestClassifier
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
