//! # sluice-ml: the native ML backend of sluice
//!
//! Pipeline steps are sandboxed WebAssembly components that decide *what*
//! to compute; this crate is where the host computes it at native speed
//! (DESIGN.md, principle 4):
//!
//! - **Training** ([`train`]): linear regression (ridge), logistic regression
//!   (binary and multinomial, L2 with scikit-learn's `C`), and multi-layer
//!   perceptrons (classifier and regressor), all in `f64`, all exported to
//!   standard ONNX that onnxruntime and tract load. Parameters come as JSON
//!   ([`TrainParams::from_json`]); every trainer records its loss per epoch
//!   or iteration.
//! - **Inference** ([`Model`]): tract runs any ONNX model — the exported
//!   ones and those a user brings (scikit-learn through skl2onnx, PyTorch) —
//!   optimised once, with a symbolic batch dimension, shareable between
//!   threads. The ONNX-ML operators exporters write by default are run too:
//!   tree ensembles by sluice's own evaluator ([`trees`]), `Scaler`,
//!   `Imputer` and `ZipMap` rewritten into standard operators
//!   (`SUPPORTED_ONNX_ML_OPERATORS`). That is the `onnx-engine` feature, on
//!   by default. Without it (the lite `sluice-edge`) a small evaluator runs
//!   exactly the graphs this crate exports ([`LITE_OPERATORS`]; trees by
//!   the same evaluator, so the same bits) and refuses any other at load,
//!   naming the operator; [`lite_unsupported_operators`] says beforehand.
//! - **Metrics** ([`metrics`]): accuracy, precision, recall, F1, ROC AUC,
//!   log loss, confusion matrix; RMSE, MAE, R².
//!
//! ```
//! use sluice_ml::{Algorithm, Dataset, Model, Task, TrainParams, train};
//!
//! let csv = "x,y\n0,a\n1,a\n2,b\n3,b\n";
//! let data = Dataset::from_csv(csv, "y", Task::Classification)?;
//! let params = TrainParams::from_json(Algorithm::LogisticRegression, r#"{"C": 10}"#)?;
//! let trained = train(&data, &params)?;
//! let model = Model::from_onnx(&trained.onnx)?;
//! let out = model.predict(&[0.0, 3.0], 2, 1)?;
//! assert_eq!(out.get("label").unwrap().as_i64(), Some(&[0i64, 1][..]));
//! # Ok::<(), sluice_ml::MlError>(())
//! ```
//!
//! ## Neighbours
//!
//! A leaf: no other sluice crate. `sluice-runtime` serves a step's `ml`
//! imports with it; `sluice-serve` and `sluice-monitor` predict with
//! [`Model`]; `sluice-monitor` computes live quality with [`metrics`].
//!
//! ## Determinism
//!
//! Training is a pure function of the data, the parameters and the seed:
//! the same inputs give the same ONNX bytes, on any machine. The random
//! numbers come from a SplitMix64 written here (no dependency can change
//! the stream), the kernels sum in a fixed order without fused multiply-add,
//! and `exp`/`ln` come from `libm` rather than the platform's C library.
//!
//! ## Numeric kernels, and an accelerator later
//!
//! The trainers are native Rust rather than burn: tabular models are tiny,
//! burn would add a large dependency tree to every build, and native code
//! gives exact determinism. Their heavy work is matrix products, which go
//! through one small internal trait (`kernels::Kernels`) with a portable,
//! register-blocked CPU implementation. An accelerator backend would
//! implement that trait behind a cargo feature; the trainers would not
//! change.
//!
//! ## ONNX conventions of exported models
//!
//! - IR version 8, operator set 13 of the default domain only; standard ops
//!   only (`Gemm`, `Relu`, `Sigmoid`, `Sub`, `Concat`, `Greater`, `Cast`,
//!   `Reshape`, `Softmax`, `ArgMax`). Weights are float32 initialisers,
//!   stored `[out, in]` for `Gemm` with `transB = 1`.
//! - One input, `input`: float32 `[N, F]`, `N` a symbolic batch dimension,
//!   the columns in the order of [`TrainedModel::feature_names`].
//! - Classifiers have two outputs: `label`, int64 `[N]`, the index of the
//!   most probable class into [`TrainedModel::classes`] (the first one on
//!   ties); and `probabilities`, float32 `[N, C]`, one column per class —
//!   binary models too (`C = 2`, column 1 the positive class).
//! - Binary classifiers compute one score `d`, the log-odds of class 1
//!   (for an MLP, the difference of its two logits), and from it
//!   `probabilities = [1 − σ(d), σ(d)]` and `label = d > 0`: the same
//!   values as softmax and ArgMax over two columns, without a per-row
//!   reduction (which tract runs slowly on rows of two). Multiclass models
//!   use `Softmax` and `ArgMax` over axis 1.
//! - Regressors have one output: `variable`, float32 `[N, 1]`.
//! - `metadata_props` record `algorithm`, `feature_names` and `classes` (JSON
//!   arrays) and `params` (JSON), so a model file explains itself.
//!
//! The names are constants in [`onnx`].

mod algorithm;
mod cancel;
mod data;
mod error;
mod export;
mod forest;
mod inference;
mod kernels;
mod linear;
mod lite;
pub mod metrics;
mod mlp;
mod model;
mod native;
#[cfg(feature = "onnx-engine")]
mod onnx_ml;
mod onnx_pb;
mod params;
mod prediction;
mod rng;
#[cfg(feature = "onnx-engine")]
mod tract_engine;
pub mod trees;
mod weights;

pub use algorithm::Algorithm;
pub use cancel::Cancel;
pub use data::{Dataset, Matrix, Target, Task};
pub use error::{MlError, Result};
pub use forest::{EnsembleHead, Tree, TreeEnsembleModel, TreeNode};
pub use inference::{Dim, ElemType, Model, Outputs, Signature, Tensor, TensorData, TensorSpec};
pub use linear::{LinearKind, LinearModel};
pub use lite::{OPERATORS as LITE_OPERATORS, unsupported_operators as lite_unsupported_operators};
pub use mlp::{Dense, Mlp, MlpOutput};
pub use model::{TrainedModel, train, train_until, train_validated};
pub use native::NativeModel;
#[cfg(feature = "onnx-engine")]
pub use onnx_ml::SUPPORTED as SUPPORTED_ONNX_ML_OPERATORS;
pub use params::{
    BoostingParams, ForestParams, LinearParams, LogisticParams, MlpParams, TrainParams,
};
pub use prediction::Prediction;
pub use weights::{NonFinite, non_finite};

/// Names and versions of the exported ONNX graphs (see the crate docs).
pub mod onnx {
    pub use crate::export::{BATCH_DIM, INPUT, IR_VERSION, LABEL, OPSET, PROBABILITIES, VARIABLE};
}
