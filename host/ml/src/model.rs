//! Training: the entry point that dispatches to each model family's
//! trainer, and what training returns (the exported ONNX and its card).

use crate::algorithm::Algorithm;
use crate::cancel::Cancel;
use crate::data::{Dataset, Target, Validation};
use crate::error::{MlError, Result};
use crate::export::{ExportInfo, to_onnx};
use crate::forest::{EnsembleTarget, fit_boosting, fit_forest};
use crate::linear::{fit_logistic, fit_ridge};
use crate::mlp::{MlpTarget, fit_mlp};
use crate::native::NativeModel;
use crate::params::TrainParams;

/// What training returns: the exported ONNX model and what a model card
/// records about it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedModel {
    /// The model as ONNX (see the crate docs for its conventions).
    pub onnx: Vec<u8>,
    /// The algorithm that trained it.
    pub algorithm: Algorithm,
    /// Class names; the ONNX `label` output indexes into them. Empty for
    /// regressors.
    pub classes: Vec<String>,
    /// The input features, in the order of the ONNX input's columns.
    pub feature_names: Vec<String>,
    /// The training loss after each epoch or solver iteration (see each
    /// algorithm for what exactly); one entry for closed-form solutions.
    pub loss_history: Vec<f64>,
    /// The parameters, defaults filled in.
    pub params: TrainParams,
    /// The same model in native form, in `f64`.
    pub native: NativeModel,
}

/// Trains `params.algorithm()` on `data` and exports the result to ONNX.
///
/// Deterministic: the same data, parameters and seed give the same model and
/// the same ONNX bytes, on any machine.
pub fn train(data: &Dataset, params: &TrainParams) -> Result<TrainedModel> {
    train_until(data, params, &Cancel::new())
}

/// [`train`], stopping with [`MlError::Cancelled`] soon after `cancel` is
/// raised (between iterations or mini-batches).
pub fn train_until(data: &Dataset, params: &TrainParams, cancel: &Cancel) -> Result<TrainedModel> {
    train_validated(data, None, params, cancel)
}

/// [`train_until`] with validation rows: held-out data the trainer does not
/// learn from, whose loss (gradient boosting) or score (MLPs) decides when
/// `early_stopping` stops. Without them, early stopping holds out
/// `validation_fraction` of `data` instead; trainers that do not stop early
/// ignore them.
///
/// `validation` must have `data`'s features, in the same order, and its
/// target the same kind: for classes, the same class list (a class
/// `data` lacks is an error, since the model could never predict it).
pub fn train_validated(
    data: &Dataset,
    validation: Option<&Dataset>,
    params: &TrainParams,
    cancel: &Cancel,
) -> Result<TrainedModel> {
    params.validate()?;
    if let Some(v) = validation {
        check_validation(data, v)?;
    }
    // The validation rows in each trainer family's terms.
    let ensemble_held = || {
        validation.map(|v| Validation {
            x: &v.features,
            target: match &v.target {
                Target::Classes { classes, indices } => {
                    EnsembleTarget::Classes(indices, classes.len())
                }
                Target::Values(y) => EnsembleTarget::Values(y),
            },
        })
    };
    let mlp_held = || {
        validation.map(|v| Validation {
            x: &v.features,
            target: match &v.target {
                Target::Classes { classes, indices } => MlpTarget::Classes(indices, classes.len()),
                Target::Values(y) => MlpTarget::Values(y),
            },
        })
    };
    let algorithm = params.algorithm();
    let x = &data.features;
    let wrong_target = |want: &str| {
        MlError::InvalidData(format!(
            "{algorithm} needs {want}; build the dataset's target accordingly"
        ))
    };
    let (native, loss_history) = match (params, &data.target) {
        (TrainParams::LinearRegression(p), Target::Values(y)) => {
            let (m, h) = fit_ridge(x, y, p, &data.feature_names)?;
            (NativeModel::Linear(m), h)
        }
        (TrainParams::LogisticRegression(p), Target::Classes { classes, indices }) => {
            need_two_classes(classes, indices)?;
            let (m, h) = fit_logistic(x, indices, classes.len(), p, cancel)?;
            (NativeModel::Linear(m), h)
        }
        (TrainParams::MlpClassifier(p), Target::Classes { classes, indices }) => {
            need_two_classes(classes, indices)?;
            let (m, h) = fit_mlp(
                x,
                MlpTarget::Classes(indices, classes.len()),
                mlp_held(),
                p,
                cancel,
            )?;
            (NativeModel::Mlp(m), h)
        }
        (TrainParams::MlpRegressor(p), Target::Values(y)) => {
            let (m, h) = fit_mlp(x, MlpTarget::Values(y), mlp_held(), p, cancel)?;
            (NativeModel::Mlp(m), h)
        }
        (TrainParams::GradientBoostingClassifier(p), Target::Classes { classes, indices }) => {
            need_two_classes(classes, indices)?;
            let target = EnsembleTarget::Classes(indices, classes.len());
            let (m, h) = fit_boosting(x, target, ensemble_held(), p, cancel)?;
            (NativeModel::Trees(m), h)
        }
        (TrainParams::GradientBoostingRegressor(p), Target::Values(y)) => {
            let (m, h) = fit_boosting(x, EnsembleTarget::Values(y), ensemble_held(), p, cancel)?;
            (NativeModel::Trees(m), h)
        }
        (TrainParams::RandomForestClassifier(p), Target::Classes { classes, indices }) => {
            need_two_classes(classes, indices)?;
            let target = EnsembleTarget::Classes(indices, classes.len());
            let (m, h) = fit_forest(x, target, p, cancel)?;
            (NativeModel::Trees(m), h)
        }
        (TrainParams::RandomForestRegressor(p), Target::Values(y)) => {
            let (m, h) = fit_forest(x, EnsembleTarget::Values(y), p, cancel)?;
            (NativeModel::Trees(m), h)
        }
        (_, Target::Values(_)) => return Err(wrong_target("class labels")),
        (_, Target::Classes { .. }) => return Err(wrong_target("real-valued targets")),
    };
    let params_json = match params {
        TrainParams::LinearRegression(p) => serde_json::to_string(p),
        TrainParams::LogisticRegression(p) => serde_json::to_string(p),
        TrainParams::MlpClassifier(p) | TrainParams::MlpRegressor(p) => serde_json::to_string(p),
        TrainParams::GradientBoostingClassifier(p) | TrainParams::GradientBoostingRegressor(p) => {
            serde_json::to_string(p)
        }
        TrainParams::RandomForestClassifier(p) | TrainParams::RandomForestRegressor(p) => {
            serde_json::to_string(p)
        }
    }
    .expect("params serialise");
    let onnx = to_onnx(
        &native,
        &ExportInfo {
            algorithm: algorithm.name(),
            feature_names: &data.feature_names,
            classes: data.target.classes(),
            params_json: &params_json,
        },
    );
    Ok(TrainedModel {
        onnx,
        algorithm,
        classes: data.target.classes().to_vec(),
        feature_names: data.feature_names.clone(),
        loss_history,
        params: params.clone(),
        native,
    })
}

/// Validation rows must fit the training data: the same features and the
/// same kind of target, with no class training lacks.
fn check_validation(data: &Dataset, validation: &Dataset) -> Result<()> {
    if validation.feature_names != data.feature_names {
        return Err(MlError::InvalidData(format!(
            "the validation rows have the features {:?}, training has {:?}",
            validation.feature_names, data.feature_names
        )));
    }
    match (&data.target, &validation.target) {
        (Target::Classes { classes, .. }, Target::Classes { classes: v, .. }) if v != classes => {
            Err(MlError::InvalidData(format!(
                "the validation rows' classes {v:?} are not the training classes {classes:?}"
            )))
        }
        (Target::Classes { .. }, Target::Values(_))
        | (Target::Values(_), Target::Classes { .. }) => Err(MlError::InvalidData(
            "the validation rows' target is not of the training target's kind".into(),
        )),
        _ => Ok(()),
    }
}

fn need_two_classes(classes: &[String], indices: &[usize]) -> Result<()> {
    let mut seen = vec![false; classes.len()];
    for &i in indices {
        match seen.get_mut(i) {
            Some(s) => *s = true,
            None => {
                return Err(MlError::InvalidData(format!(
                    "class index {i} but only {} classes",
                    classes.len()
                )));
            }
        }
    }
    if let Some(c) = seen.iter().position(|s| !s) {
        return Err(MlError::InvalidData(format!(
            "class `{}` has no sample (a classifier needs every class it names, and at least two)",
            classes[c]
        )));
    }
    if classes.len() < 2 {
        return Err(MlError::InvalidData(format!(
            "a classifier needs at least two classes, got {}",
            classes.len()
        )));
    }
    Ok(())
}
