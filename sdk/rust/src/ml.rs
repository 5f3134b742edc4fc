//! Native machine learning: a step says *what* to train, run or measure; the
//! host does the numeric work natively (training, ONNX export, inference with
//! tract) and hands back a [`Model`] handle.
//!
//! ```ignore
//! use serde_json::json;
//! use sluice_sdk::ml;
//!
//! let train = ctx.input_table("train")?;
//! let test = ctx.input_table("test")?;
//! let features = vec!["x1".to_owned(), "x2".to_owned()];
//! let model = ml::train("logistic-regression", &train, &features, "label", &json!({"c": 1.0}))?;
//! let evaluation = ml::evaluate(&model, &test, None)?;
//! ctx.info(format!("accuracy: {:?}", evaluation.metric("accuracy")));
//! ctx.output_model("model", &model, &json!({"eval": evaluation.overall()}))?;
//! ```
//!
//! Errors: before calling the host, [`train`], [`evaluate`] and
//! [`Model::predict`] check that the columns they need exist, and report a
//! missing one as [`StepError::InvalidInput`] naming the columns that do.
//! The host says whether its error blames the request (an unknown
//! algorithm or parameter, a missing or mistyped column, ONNX that does not
//! load …: [`StepError::InvalidInput`]) or the work failed (training
//! diverged: [`StepError::Failed`]); both carry the host's message.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value as Json};

use crate::bindings::sluice::pipeline::ml as raw;
use crate::{StepError, Table};

/// The algorithms the host trains ([`train`]).
pub const ALGORITHMS: &[&str] = &[
    "linear-regression",
    "logistic-regression",
    "mlp-classifier",
    "mlp-regressor",
    "gradient-boosting-classifier",
    "gradient-boosting-regressor",
    "random-forest-classifier",
    "random-forest-regressor",
];

/// The overall metrics [`evaluate`] reports for a classifier.
pub const CLASSIFICATION_METRICS: &[&str] = &[
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
];

/// The overall metrics [`evaluate`] reports for a regressor.
pub const REGRESSION_METRICS: &[&str] = &["rmse", "mae", "r2"];

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// A class label (with a probability per class).
    Classification,
    /// A number.
    Regression,
}

impl Task {
    /// `classification` or `regression`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Classification => "classification",
            Self::Regression => "regression",
        }
    }

    /// Parses `classification` or `regression`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "classification" => Some(Self::Classification),
            "regression" => Some(Self::Regression),
            _ => None,
        }
    }

    /// The task of one of the host's [`ALGORITHMS`], spelt with `-` or
    /// `_` (cards write `logistic_regression`); `None` for any other name.
    pub fn of_algorithm(algorithm: &str) -> Option<Self> {
        match algorithm.replace('_', "-").as_str() {
            "logistic-regression"
            | "mlp-classifier"
            | "gradient-boosting-classifier"
            | "random-forest-classifier" => Some(Self::Classification),
            "linear-regression"
            | "mlp-regressor"
            | "gradient-boosting-regressor"
            | "random-forest-regressor" => Some(Self::Regression),
            _ => None,
        }
    }

    /// The metric models of this task are compared by unless a step is told
    /// otherwise: `accuracy` for classification, `rmse` for regression.
    pub fn default_metric(self) -> &'static str {
        match self {
            Self::Classification => "accuracy",
            Self::Regression => "rmse",
        }
    }

    /// The overall metrics [`evaluate`] reports for this task.
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            Self::Classification => CLASSIFICATION_METRICS,
            Self::Regression => REGRESSION_METRICS,
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Higher is better (accuracy, precision, recall, f1, roc_auc, r2 and
    /// any metric not known to be a loss or an error).
    Maximize,
    /// Lower is better (log_loss, rmse, mae, mse, loss).
    Minimize,
}

impl Direction {
    /// The direction of the metric `name`: lower is better for `log_loss`,
    /// `rmse`, `mae`, `mse` and `loss`, higher for everything else.
    pub fn of(metric: &str) -> Self {
        match metric {
            "log_loss" | "rmse" | "mae" | "mse" | "loss" => Self::Minimize,
            _ => Self::Maximize,
        }
    }

    /// `max` or `min`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Maximize => "max",
            Self::Minimize => "min",
        }
    }

    /// How much better `candidate` is than `reference`: positive when it is
    /// better, negative when it is worse, in the metric's own units.
    pub fn improvement(self, candidate: f64, reference: f64) -> f64 {
        match self {
            Self::Maximize => candidate - reference,
            Self::Minimize => reference - candidate,
        }
    }

    /// Whether `candidate` is strictly better than `reference`.
    pub fn is_better(self, candidate: f64, reference: f64) -> bool {
        self.improvement(candidate, reference) > 0.0
    }

    /// Whether `value` meets `bound`: at least the bound for a metric to
    /// maximize, at most the bound for one to minimize.
    pub fn meets(self, value: f64, bound: f64) -> bool {
        match self {
            Self::Maximize => value >= bound,
            Self::Minimize => value <= bound,
        }
    }
}

/// A model card: what a model is and what it needs. The host writes the
/// fields below when it trains or imports a model; steps add annotations
/// (e.g. `transform`, `eval`, `search`), kept in [`extra`](Self::extra).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The algorithm that trained it (absent for an imported model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// Classification or regression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    /// The input columns, in order.
    #[serde(default)]
    pub features: Vec<String>,
    /// The column it predicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A classifier's classes, in the order of its probability outputs.
    #[serde(
        default,
        deserialize_with = "classes",
        skip_serializing_if = "Option::is_none"
    )]
    pub classes: Option<Vec<String>>,
    /// The trainer parameters it was trained with.
    #[serde(default, skip_serializing_if = "Json::is_null")]
    pub params: Json,
    /// The training loss per epoch or iteration (NaN where the host wrote null).
    #[serde(
        default,
        deserialize_with = "loss_history",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub loss_history: Vec<f64>,
    /// The number of rows it was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_rows: Option<u64>,
    /// Every other field: annotations such as `transform`, `eval`, `search`.
    #[serde(flatten)]
    pub extra: Map<String, Json>,
}

/// Classes as text, whether the card lists them as strings, numbers or booleans.
fn classes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let list: Option<Vec<Json>> = Option::deserialize(d)?;
    list.map(|l| l.into_iter().map(class_name).collect())
        .transpose()
        .map_err(serde::de::Error::custom)
}

/// The text of one class label: a string as is, a number or boolean as written.
pub fn class_name(value: Json) -> Result<String, String> {
    match value {
        Json::String(s) => Ok(s),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        other => Err(format!(
            "a class must be a string, number or boolean, found {other}"
        )),
    }
}

fn loss_history<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let list: Option<Vec<Option<f64>>> = Option::deserialize(d)?;
    Ok(list
        .unwrap_or_default()
        .into_iter()
        .map(|x| x.unwrap_or(f64::NAN))
        .collect())
}

impl ModelCard {
    /// Parses a card (the JSON of [`Model::card_json`]); a card that is not a
    /// JSON object with a `features` list is [`StepError::Failed`], since
    /// the host wrote it.
    pub fn parse(json: &str) -> Result<Self, StepError> {
        serde_json::from_str(json).map_err(|e| {
            StepError::failed(format!(
                "the host returned a model card that is not valid ({e}); card: {}",
                truncate(json, 300)
            ))
        })
    }

    /// The card's task, or else the task of its algorithm.
    pub fn task(&self) -> Option<Task> {
        self.task
            .or_else(|| self.algorithm.as_deref().and_then(Task::of_algorithm))
    }

    /// What other artifacts record about the model: `algorithm`, `task`,
    /// `features`, `label`, `classes`, `params`, `training_rows`, and `name`
    /// where the card has one (absent fields are left out). Annotations and
    /// the loss history are not included.
    pub fn summary(&self) -> Json {
        let mut out = Map::new();
        if let Some(a) = &self.algorithm {
            out.insert("algorithm".into(), a.clone().into());
        }
        if let Some(t) = self.task() {
            out.insert("task".into(), t.name().into());
        }
        out.insert("features".into(), self.features.clone().into());
        if let Some(l) = &self.label {
            out.insert("label".into(), l.clone().into());
        }
        if let Some(c) = &self.classes {
            out.insert("classes".into(), c.clone().into());
        }
        if !self.params.is_null() {
            out.insert("params".into(), self.params.clone());
        }
        if let Some(n) = self.training_rows {
            out.insert("training_rows".into(), n.into());
        }
        if let Some(name) = self.extra.get("name") {
            out.insert("name".into(), name.clone());
        }
        Json::Object(out)
    }
}

/// A model held by the host: ONNX bytes and its card.
///
/// Get one from [`train`], [`Model::from_onnx`] or
/// [`Context::input_model`](crate::Context::input_model); record one with
/// [`Context::output_model`](crate::Context::output_model). Dropping it
/// releases it in the host.
#[derive(Debug)]
pub struct Model {
    inner: raw::Model,
}

impl Model {
    pub(crate) fn from_raw(inner: raw::Model) -> Self {
        Self { inner }
    }

    pub(crate) fn as_raw(&self) -> &raw::Model {
        &self.inner
    }

    /// A model the user brings: the host checks that the ONNX graph loads
    /// and runs in its inference engine and reads its signature. `card` is a
    /// JSON object with at least `features` (the input columns in order);
    /// add `task`, `label` and `classes` to make it usable by [`evaluate`].
    /// ONNX (or a card) the host does not accept is
    /// [`StepError::InvalidInput`] with the host's reason.
    pub fn from_onnx(onnx: &[u8], card: &Json) -> Result<Self, StepError> {
        if !card.is_object() {
            return Err(StepError::failed(format!(
                "Model::from_onnx: the card must be a JSON object, found {}",
                truncate(&card.to_string(), 100)
            )));
        }
        raw::Model::from_onnx(onnx, &card.to_string())
            .map(Self::from_raw)
            .map_err(|e| host_error("the ONNX model was not accepted", e))
    }

    /// The model card as the host holds it (JSON text).
    pub fn card_json(&self) -> String {
        self.inner.card()
    }

    /// The model card, parsed.
    pub fn card(&self) -> Result<ModelCard, StepError> {
        ModelCard::parse(&self.card_json())
    }

    /// The ONNX graph's inputs and outputs (names, element types, shapes),
    /// as JSON text.
    pub fn signature_json(&self) -> String {
        self.inner.signature()
    }

    /// The ONNX graph's inputs and outputs, parsed.
    pub fn signature(&self) -> Result<Json, StepError> {
        let text = self.signature_json();
        serde_json::from_str(&text).map_err(|e| {
            StepError::failed(format!(
                "the host returned a model signature that is not JSON ({e}): {}",
                truncate(&text, 300)
            ))
        })
    }

    /// Runs the model on the card's feature columns of `data`. Returns a
    /// table with `prediction` (the class label, or the value) and, for a
    /// classifier, `probability_<class>` per class. A feature column missing
    /// from `data` is [`StepError::InvalidInput`].
    pub fn predict(&self, data: &Table) -> Result<Table, StepError> {
        let card = self.card()?;
        check_columns("predicting", &data.column_names(), &card.features, None)?;
        self.inner
            .predict(data.as_raw())
            .map(Table::from_raw)
            .map_err(|e| host_error("predicting with the model", e))
    }

    /// Raw rows (before any transform) through the transform this model's
    /// card records, as its training rows went through it: the table its
    /// features are read from. Without a recorded transform, the rows as
    /// they are. Rows the transform refuses are [`StepError::InvalidInput`].
    pub fn transform(&self, data: &Table) -> Result<Table, StepError> {
        self.inner
            .transform(data.as_raw())
            .map(Table::from_raw)
            .map_err(|e| host_error("applying the model's transform", e))
    }
}

/// Trains `algorithm` (one of [`ALGORITHMS`]) on the `features` columns of
/// `data` to predict `label`. `params` is a JSON object of trainer
/// parameters (`null` means none); the host rejects unknown ones. Training
/// is deterministic for the params' `seed`.
///
/// Empty or repeated features, a label among the features, or a column
/// missing from `data` are [`StepError::InvalidInput`]; so are host errors
/// that blame the request (see the [module docs](self)).
pub fn train(
    algorithm: &str,
    data: &Table,
    features: &[String],
    label: &str,
    params: &Json,
) -> Result<Model, StepError> {
    let params = training_params(algorithm, data, features, label, params)?;
    raw::train(algorithm, data.as_raw(), features, label, &params)
        .map(Model::from_raw)
        .map_err(|e| host_error(&format!("training `{algorithm}`"), e))
}

/// [`train`] with validation rows (the eval split), which the trainer does
/// not learn from: with `early_stopping`, gradient boosting stops when
/// their loss, and an MLP when their score, stops improving. They need the
/// same feature and label columns as `data`; a class `data` lacks is
/// [`StepError::InvalidInput`].
pub fn train_validated(
    algorithm: &str,
    data: &Table,
    validation: &Table,
    features: &[String],
    label: &str,
    params: &Json,
) -> Result<Model, StepError> {
    let params = training_params(algorithm, data, features, label, params)?;
    check_columns(
        &format!("training `{algorithm}` (the validation rows)"),
        &validation.column_names(),
        features,
        Some(("label", label)),
    )?;
    raw::train_validated(
        algorithm,
        data.as_raw(),
        validation.as_raw(),
        features,
        label,
        &params,
    )
    .map(Model::from_raw)
    .map_err(|e| host_error(&format!("training `{algorithm}`"), e))
}

/// Checks a training request's columns; returns its params as JSON text.
fn training_params(
    algorithm: &str,
    data: &Table,
    features: &[String],
    label: &str,
    params: &Json,
) -> Result<String, StepError> {
    check_features(features, Some(label))?;
    check_columns(
        &format!("training `{algorithm}`"),
        &data.column_names(),
        features,
        Some(("label", label)),
    )?;
    match params {
        Json::Null => Ok("{}".to_owned()),
        Json::Object(_) => Ok(params.to_string()),
        other => Err(StepError::invalid_input(format!(
            "training `{algorithm}`: trainer params must be a JSON object, found {}",
            truncate(&other.to_string(), 100)
        ))),
    }
}

/// Measures `model` on `data`, which must hold the model's features and its
/// label; with `slice_by`, also per value of that column. A missing column,
/// or a model whose card has no label, is [`StepError::InvalidInput`].
pub fn evaluate(
    model: &Model,
    data: &Table,
    slice_by: Option<&str>,
) -> Result<Evaluation, StepError> {
    let features = model.card()?.features;
    check_evaluation(model, data, &features, slice_by)?;
    let text = raw::evaluate(model.as_raw(), data.as_raw(), slice_by)
        .map_err(|e| host_error("evaluating the model", e))?;
    parse_evaluation(&text)
}

/// Checks that `data` holds what measuring `model` reads: `features`, the
/// label and the slice column; a model without a label cannot be measured.
fn check_evaluation(
    model: &Model,
    data: &Table,
    features: &[String],
    slice_by: Option<&str>,
) -> Result<(), StepError> {
    let card = model.card()?;
    let Some(label) = card.label.as_deref() else {
        return Err(StepError::invalid_input(
            "evaluating: the model's card names no label column, so there is nothing to \
             compare its predictions with; give the model a `label` (e.g. the `label` param \
             of std:import-model)",
        ));
    };
    let columns = data.column_names();
    check_columns("evaluating", &columns, features, Some(("label", label)))?;
    if let Some(s) = slice_by {
        check_columns("evaluating", &columns, &[], Some(("slice-by", s)))?;
    }
    Ok(())
}

/// Measures `model` on raw rows, before any transform: the model runs on
/// them through the transform its card records ([`Model::transform`]), its
/// predictions are compared with `data`'s label, and slices are by
/// `slice_by`'s raw values (`religious = 2`, not its standardised value).
/// Models with different transforms are so compared on the same rows.
pub fn evaluate_raw(
    model: &Model,
    data: &Table,
    slice_by: Option<&str>,
) -> Result<Evaluation, StepError> {
    // The features are the transform's to make; the label and slices are
    // read from the raw rows.
    check_evaluation(model, data, &[], slice_by)?;
    let text = raw::evaluate_raw(model.as_raw(), data.as_raw(), slice_by)
        .map_err(|e| host_error("evaluating the model on raw rows", e))?;
    parse_evaluation(&text)
}

/// The host's evaluation JSON, read.
fn parse_evaluation(text: &str) -> Result<Evaluation, StepError> {
    let json: Json = serde_json::from_str(text).map_err(|e| {
        StepError::failed(format!(
            "the host returned an evaluation that is not JSON ({e}): {}",
            truncate(text, 300)
        ))
    })?;
    Evaluation::from_value(json).map_err(|e| StepError::failed(e.message().to_owned()))
}

/// The result of [`evaluate`]: the metrics overall and, when sliced, per
/// value of a column.
///
/// ```json
/// {"task": "classification", "rows": 114,
///  "overall": {"accuracy": 0.97, "log_loss": 0.08, ...},
///  "slices": {"column": "size", "values": {"small": {"rows": 60, "accuracy": 0.98, ...}}}}
/// ```
///
/// It wraps the JSON as is, so documents that extend it (std:evaluate adds
/// `model`) read the same way and nothing is lost on the way through.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    json: Map<String, Json>,
}

impl Evaluation {
    /// Reads an evaluation: a JSON object with an `overall` object of
    /// metrics (and optional `task`, `rows`, `slices`). Anything else is
    /// [`StepError::InvalidInput`].
    pub fn from_value(json: Json) -> Result<Self, StepError> {
        let Json::Object(map) = json else {
            return Err(StepError::invalid_input(format!(
                "an evaluation must be a JSON object, found {}",
                truncate(&json.to_string(), 100)
            )));
        };
        if !map.get("overall").is_some_and(Json::is_object) {
            return Err(StepError::invalid_input(
                "an evaluation must have an `overall` object of metrics (the output of \
                 std:evaluate or ml::evaluate)",
            ));
        }
        if let Some(s) = map.get("slices")
            && !s.is_null()
            && !s.get("values").is_some_and(Json::is_object)
        {
            return Err(StepError::invalid_input(
                "an evaluation's `slices` must be null or {\"column\": …, \"values\": {…}}",
            ));
        }
        Ok(Self { json: map })
    }

    /// Parses an evaluation from JSON text; see [`from_value`](Self::from_value).
    pub fn parse(text: &str) -> Result<Self, StepError> {
        let json: Json = serde_json::from_str(text)
            .map_err(|e| StepError::invalid_input(format!("an evaluation is not JSON: {e}")))?;
        Self::from_value(json)
    }

    /// The task, if the evaluation names it.
    pub fn task(&self) -> Option<Task> {
        self.json
            .get("task")
            .and_then(Json::as_str)
            .and_then(Task::parse)
    }

    /// The number of rows measured, if given.
    pub fn rows(&self) -> Option<u64> {
        self.json.get("rows").and_then(Json::as_u64)
    }

    /// Whether it was measured on raw rows through the model's transform
    /// ([`evaluate_raw`]), so that its slices are named by raw values.
    pub fn is_raw(&self) -> bool {
        self.json.get("raw").and_then(Json::as_bool) == Some(true)
    }

    /// The `overall` metrics as JSON (a value may be null where a metric is
    /// undefined).
    pub fn overall_json(&self) -> &Map<String, Json> {
        // Checked in from_value.
        self.json["overall"]
            .as_object()
            .expect("overall is an object")
    }

    /// The `overall` metrics that are numbers.
    pub fn overall(&self) -> BTreeMap<String, f64> {
        numeric(self.overall_json())
    }

    /// One overall metric, if it is a number.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.overall_json().get(name).and_then(Json::as_f64)
    }

    /// The column the slices are by, if sliced.
    pub fn slice_column(&self) -> Option<&str> {
        self.slices_json()?.get("column").and_then(Json::as_str)
    }

    /// The values of the slice column, in the evaluation's order.
    pub fn slice_values(&self) -> Vec<&str> {
        self.slice_map()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The numeric metrics of one slice (including `rows`).
    pub fn slice(&self, value: &str) -> Option<BTreeMap<String, f64>> {
        self.slice_map()?.get(value)?.as_object().map(numeric)
    }

    /// One metric of one slice, if it is a number.
    pub fn slice_metric(&self, value: &str, name: &str) -> Option<f64> {
        self.slice_map()?.get(value)?.get(name)?.as_f64()
    }

    /// The whole document.
    pub fn as_json(&self) -> &Map<String, Json> {
        &self.json
    }

    /// The whole document, as a JSON value.
    pub fn into_json(self) -> Json {
        Json::Object(self.json)
    }

    fn slices_json(&self) -> Option<&Map<String, Json>> {
        self.json.get("slices")?.as_object()
    }

    fn slice_map(&self) -> Option<&Map<String, Json>> {
        self.slices_json()?.get("values")?.as_object()
    }
}

fn numeric(map: &Map<String, Json>) -> BTreeMap<String, f64> {
    map.iter()
        .filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x)))
        .collect()
}

/// Features must be non-empty, unique, and not include the label.
fn check_features(features: &[String], label: Option<&str>) -> Result<(), StepError> {
    if features.is_empty() {
        return Err(StepError::invalid_input(
            "training: the feature list is empty; name at least one input column",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in features {
        if !seen.insert(f.as_str()) {
            return Err(StepError::invalid_input(format!(
                "training: feature `{f}` is listed twice; list each column once"
            )));
        }
    }
    if let Some(label) = label
        && seen.contains(label)
    {
        return Err(StepError::invalid_input(format!(
            "training: the label `{label}` is also listed as a feature; remove it from the features"
        )));
    }
    Ok(())
}

/// Every feature (and the extra `(role, column)`) must be among `columns`.
fn check_columns(
    doing: &str,
    columns: &[String],
    features: &[String],
    extra: Option<(&str, &str)>,
) -> Result<(), StepError> {
    let missing: Vec<&str> = features
        .iter()
        .map(String::as_str)
        .filter(|f| !columns.iter().any(|c| c == f))
        .collect();
    let list = || columns.join(", ");
    if !missing.is_empty() {
        return Err(StepError::invalid_input(format!(
            "{doing}: the table has no feature column{} `{}`; its columns are: {}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join("`, `"),
            list()
        )));
    }
    if let Some((role, column)) = extra
        && !columns.iter().any(|c| c == column)
    {
        return Err(StepError::invalid_input(format!(
            "{doing}: the table has no {role} column `{column}`; its columns are: {}",
            list()
        )));
    }
    Ok(())
}

/// Maps a host error of the `ml` interface: the host says whether the
/// request was at fault ([`StepError::InvalidInput`]) or the work failed
/// ([`StepError::Failed`]).
pub(crate) fn host_error(doing: &str, e: raw::MlError) -> StepError {
    match e {
        raw::MlError::InvalidInput(m) => StepError::InvalidInput(format!("{doing}: {m}")),
        raw::MlError::Failed(m) => StepError::Failed(format!("{doing}: {m}")),
    }
}

/// `text` cut to at most `max` bytes (on a character boundary) with `…`
/// appended when cut: for quoting documents in error messages.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn direction_of_metrics() {
        for m in ["log_loss", "rmse", "mae"] {
            assert_eq!(Direction::of(m), Direction::Minimize, "{m}");
        }
        for m in ["accuracy", "precision", "recall", "f1", "roc_auc", "r2"] {
            assert_eq!(Direction::of(m), Direction::Maximize, "{m}");
        }
        let max = Direction::Maximize;
        let min = Direction::Minimize;
        assert!((max.improvement(0.9, 0.8) - 0.1).abs() < 1e-12);
        assert!((min.improvement(0.3, 0.5) - 0.2).abs() < 1e-12);
        assert!(max.is_better(0.9, 0.8) && !max.is_better(0.8, 0.8));
        assert!(min.is_better(0.2, 0.3) && !min.is_better(0.4, 0.3));
        assert!(max.meets(0.9, 0.9) && !max.meets(0.89, 0.9));
        assert!(min.meets(0.4, 0.4) && !min.meets(0.41, 0.4));
    }

    #[test]
    fn tasks() {
        assert_eq!(
            Task::of_algorithm("logistic-regression"),
            Some(Task::Classification)
        );
        assert_eq!(Task::of_algorithm("mlp-regressor"), Some(Task::Regression));
        assert_eq!(
            Task::of_algorithm("logistic_regression"),
            Some(Task::Classification)
        );
        assert_eq!(Task::of_algorithm("forest"), None);
        assert_eq!(Task::Classification.default_metric(), "accuracy");
        assert_eq!(Task::Regression.default_metric(), "rmse");
        assert_eq!(Task::parse("regression"), Some(Task::Regression));
        assert_eq!(Task::parse("Regression"), None);
    }

    #[test]
    fn card_parses_and_summarizes() {
        let text = json!({
            "algorithm": "logistic-regression",
            "task": "classification",
            "features": ["a", "b"],
            "label": "y",
            "classes": ["benign", "malignant"],
            "params": {"c": 1.0},
            "loss_history": [0.7, null, 0.2],
            "training_rows": 400,
            "transform": {"component": "sha256:x"},
        })
        .to_string();
        let card = ModelCard::parse(&text).unwrap();
        assert_eq!(card.features, ["a", "b"]);
        assert_eq!(card.task(), Some(Task::Classification));
        assert_eq!(card.loss_history.len(), 3);
        assert!(card.loss_history[1].is_nan());
        assert!(card.extra.contains_key("transform"));
        let s = card.summary();
        assert_eq!(s["training_rows"], 400);
        assert_eq!(s["classes"], json!(["benign", "malignant"]));
        assert!(s.get("transform").is_none() && s.get("loss_history").is_none());
    }

    #[test]
    fn card_of_imported_model() {
        let card =
            ModelCard::parse(r#"{"features": ["x"], "classes": [0, 1], "name": "m"}"#).unwrap();
        assert_eq!(card.classes, Some(vec!["0".into(), "1".into()]));
        assert_eq!(card.task(), None);
        assert_eq!(
            card.summary(),
            json!({"features": ["x"], "classes": ["0", "1"], "name": "m"})
        );
        assert!(matches!(ModelCard::parse("[1]"), Err(StepError::Failed(_))));
        assert!(ModelCard::parse(r#"{"features": [], "classes": [[1]]}"#).is_err());
    }

    #[test]
    fn evaluation_reads_overall_and_slices() {
        let e = Evaluation::from_value(json!({
            "task": "classification", "rows": 10,
            "overall": {"accuracy": 0.9, "roc_auc": null},
            "slices": {"column": "s", "values": {
                "a": {"rows": 6, "accuracy": 1.0},
                "b": {"rows": 4, "accuracy": 0.75, "roc_auc": null}}},
            "model": {"features": ["x"]},
        }))
        .unwrap();
        assert_eq!(e.task(), Some(Task::Classification));
        assert_eq!(e.rows(), Some(10));
        assert_eq!(e.metric("accuracy"), Some(0.9));
        assert_eq!(e.metric("roc_auc"), None);
        assert_eq!(e.overall().len(), 1);
        assert_eq!(e.slice_column(), Some("s"));
        assert_eq!(e.slice_values(), ["a", "b"]);
        assert_eq!(e.slice_metric("b", "accuracy"), Some(0.75));
        assert_eq!(e.slice("a").unwrap()["rows"], 6.0);
        assert!(e.as_json().contains_key("model"));

        let unsliced =
            Evaluation::from_value(json!({"overall": {"rmse": 1.5}, "slices": null})).unwrap();
        assert_eq!(unsliced.slice_column(), None);
        assert!(unsliced.slice_values().is_empty());
    }

    #[test]
    fn evaluation_rejects_other_documents() {
        for bad in [
            json!([1]),
            json!({"accuracy": 0.9}),
            json!({"overall": 1}),
            json!({"overall": {}, "slices": {"column": "x"}}),
        ] {
            assert!(
                matches!(
                    Evaluation::from_value(bad.clone()),
                    Err(StepError::InvalidInput(_))
                ),
                "{bad}"
            );
        }
        assert!(Evaluation::parse("not json").is_err());
    }

    #[test]
    fn feature_and_column_checks() {
        let cols: Vec<String> = ["a", "b", "y"].map(String::from).to_vec();
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_features(&f(&["a", "b"]), Some("y")).is_ok());
        let e = check_features(&[], Some("y")).unwrap_err();
        assert!(e.message().contains("empty"), "{e}");
        let e = check_features(&f(&["a", "a"]), Some("y")).unwrap_err();
        assert!(e.message().contains("twice"), "{e}");
        let e = check_features(&f(&["a", "y"]), Some("y")).unwrap_err();
        assert!(e.message().contains("also listed"), "{e}");

        assert!(check_columns("t", &cols, &f(&["a"]), Some(("label", "y"))).is_ok());
        let e = check_columns("t", &cols, &f(&["a", "c", "d"]), None).unwrap_err();
        assert!(
            matches!(&e, StepError::InvalidInput(m) if m.contains("`c`, `d`") && m.contains("a, b, y")),
            "{e}"
        );
        let e = check_columns("t", &cols, &[], Some(("label", "z"))).unwrap_err();
        assert!(e.message().contains("label column `z`"), "{e}");
    }

    #[test]
    fn host_errors_keep_the_hosts_classification() {
        let e = host_error(
            "training `x`",
            raw::MlError::InvalidInput("unknown parameter `cc`".into()),
        );
        assert!(
            matches!(&e, StepError::InvalidInput(m) if m == "training `x`: unknown parameter `cc`")
        );
        let e = host_error("training `x`", raw::MlError::Failed("diverged".into()));
        assert!(matches!(&e, StepError::Failed(m) if m == "training `x`: diverged"));
    }
}
