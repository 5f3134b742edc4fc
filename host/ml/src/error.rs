//! The one error type of the crate.

use crate::algorithm::Algorithm;

/// Everything that can go wrong in `sluice-ml`: bad parameters or data, a
/// training problem that has no solution, an ONNX model tract cannot load or
/// run, a metric that is undefined for its inputs.
///
/// The variants are what a caller can act on: a step turns
/// [`MlError::UnknownParam`], [`MlError::InvalidParam`] and
/// [`MlError::InvalidData`] into `invalid-input`, the rest into `failed`.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// A parameter name the algorithm does not know.
    #[error("unknown parameter `{param}` for {algorithm}; valid parameters: {}", valid.join(", "))]
    UnknownParam {
        /// The name that was given.
        param: String,
        /// The algorithm it was given to.
        algorithm: Algorithm,
        /// The names the algorithm accepts.
        valid: Vec<&'static str>,
    },
    /// A known parameter with a value out of its domain (or of the wrong type).
    #[error("invalid value for parameter `{param}`: {reason}")]
    InvalidParam {
        /// The parameter's name.
        param: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Parameters that are not a JSON object, or not JSON at all.
    #[error("parameters must be a JSON object: {0}")]
    ParamsJson(String),
    /// An algorithm name that is not one of [`Algorithm::ALL`].
    #[error("unknown algorithm `{name}`; valid algorithms: {}", valid.join(", "))]
    UnknownAlgorithm {
        /// The name that was given.
        name: String,
        /// The names that exist.
        valid: Vec<&'static str>,
    },
    /// Data that cannot be used: ragged or empty matrices, NaN or infinite
    /// features, a label column missing, a single class, lengths that differ.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// The normal equations of a linear regression have no unique solution
    /// (collinear features with `l2 = 0`).
    #[error("the problem is singular: {0}")]
    Singular(String),
    /// Training produced a NaN or infinite loss.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// Training was stopped through its [`Cancel`](crate::Cancel) flag
    /// before it finished.
    #[error("training was stopped before it finished")]
    Cancelled,
    /// An ONNX model that cannot be decoded, typed or optimised by tract,
    /// or, in a build without the `onnx-engine` feature, that uses an
    /// operator the lite evaluator does not run (the message names it).
    #[error("cannot load the ONNX model: {0}")]
    ModelLoad(String),
    /// Inputs that do not fit the model, or a failure while running it.
    #[error("inference failed: {0}")]
    Inference(String),
    /// A metric that is undefined for its inputs (e.g. ROC AUC with one class).
    #[error("metric {metric}: {reason}")]
    Metric {
        /// The metric's name.
        metric: &'static str,
        /// Why it cannot be computed.
        reason: String,
    },
}

/// The result type of the crate.
pub type Result<T, E = MlError> = std::result::Result<T, E>;

#[cfg(feature = "onnx-engine")]
/// Formats a tract (anyhow) error with its whole chain of causes, so that the
/// typed error keeps the detail without exposing anyhow in the API.
pub(crate) fn chain(e: impl std::fmt::Display) -> String {
    format!("{e:#}")
}
