//! Models on the host side: ONNX bytes and a JSON card, shared by the steps
//! that read them and compiled for inference at most once.
//!
//! A model artifact is stored as two objects: the ONNX bytes (so any ONNX
//! runtime can read them straight from the store), and the card, which is
//! the artifact itself and names the ONNX bytes by digest under `"onnx"`.

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use serde_json::{Map, Value};
use sluice_digest::Digest;
use sluice_tables::Table;
use std::sync::{Arc, OnceLock};

/// Why a model cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The card is not a JSON object, or lacks a field the host needs.
    #[error("model card: {0}")]
    Card(String),
    /// The ONNX bytes do not load in the inference engine, or its outputs
    /// are not what the card says.
    #[error("the model's ONNX graph cannot be run: {0}")]
    Onnx(String),
    /// The data does not fit the model (missing column, text, nulls).
    #[error("{0}")]
    Data(String),
    /// The training request is invalid (unknown algorithm or param).
    #[error("{0}")]
    Invalid(String),
    /// Training failed although the request was sound (diverged, singular).
    #[error("training failed: {0}")]
    Training(String),
    /// The caller raised the stop flag (a step past its time limit) before
    /// the work ended.
    #[error("stopped before it finished")]
    Cancelled,
}

impl ModelError {
    /// Whether the request (data, card, params, ONNX) is at fault, rather
    /// than the work failing.
    pub fn blames_request(&self) -> bool {
        !matches!(self, ModelError::Training(_) | ModelError::Cancelled)
    }
}

/// Training errors that blame the request: bad params or data.
fn training_error(e: sluice_ml::MlError) -> ModelError {
    use sluice_ml::MlError as E;
    match e {
        E::UnknownParam { .. }
        | E::InvalidParam { .. }
        | E::ParamsJson(_)
        | E::UnknownAlgorithm { .. }
        | E::InvalidData(_) => ModelError::Invalid(e.to_string()),
        other => ModelError::Training(other.to_string()),
    }
}

/// A model: its ONNX bytes, its card, and — once asked for — the optimised
/// inference plan.
pub struct ModelArtifact {
    onnx: bytes::Bytes,
    card: Map<String, Value>,
    runnable: OnceLock<Result<Arc<sluice_ml::Model>, ModelError>>,
}

impl std::fmt::Debug for ModelArtifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelArtifact")
            .field("onnx_bytes", &self.onnx.len())
            .field("card", &self.card)
            .finish()
    }
}

impl ModelArtifact {
    /// A model from its ONNX bytes and card. The card must be a JSON object
    /// naming the input `features` (a list of column names).
    pub fn new(onnx: bytes::Bytes, card: Map<String, Value>) -> Result<Self, ModelError> {
        let model = ModelArtifact {
            onnx,
            card,
            runnable: OnceLock::new(),
        };
        model.features()?;
        Ok(model)
    }

    /// A model from stored objects: the card document and a way to fetch
    /// the ONNX bytes it names.
    pub fn from_stored(
        card: &[u8],
        fetch: impl FnOnce(&Digest) -> Result<bytes::Bytes, String>,
    ) -> Result<Self, ModelError> {
        let mut card: Map<String, Value> = serde_json::from_slice(card)
            .map_err(|e| ModelError::Card(format!("not a JSON object: {e}")))?;
        let digest = card
            .remove("onnx")
            .and_then(|v| v.as_str().and_then(|s| s.parse::<Digest>().ok()))
            .ok_or_else(|| ModelError::Card("no `onnx` digest".into()))?;
        let onnx = fetch(&digest).map_err(ModelError::Card)?;
        ModelArtifact::new(onnx, card)
    }

    /// What makes two stored models the same model, from a stored card: its
    /// ONNX bytes (by digest) and the transform that feeds it (component and
    /// state). Provenance (`made_by`: the run and execution) and the
    /// measurements annotated on the card are left out, so a retrain that
    /// produces byte-identical ONNX from the same transform is the same
    /// model, however it was run. `None` for bytes that are not a card.
    pub fn identity_of_stored(card: &[u8]) -> Option<Digest> {
        let card: Map<String, Value> = serde_json::from_slice(card).ok()?;
        let onnx = card.get("onnx")?.as_str()?.parse::<Digest>().ok()?;
        let identity = serde_json::json!({
            "onnx": onnx.to_string(),
            "transform": card.get("transform").cloned().unwrap_or(Value::Null),
        });
        Some(Digest::of(identity.to_string().as_bytes()))
    }

    /// The card as stored: the card with the ONNX bytes' digest under `"onnx"`.
    pub fn stored_card(&self, onnx: &Digest) -> String {
        let mut card = self.card.clone();
        card.insert("onnx".into(), Value::String(onnx.to_string()));
        serde_json::to_string_pretty(&card).expect("a JSON map serialises")
    }

    /// The ONNX bytes.
    pub fn onnx(&self) -> &bytes::Bytes {
        &self.onnx
    }

    /// The card.
    pub fn card(&self) -> &Map<String, Value> {
        &self.card
    }

    /// The same model with `annotations` merged into its card (annotations
    /// win); the inference plan, if compiled, is shared.
    pub fn annotated(self: &Arc<Self>, annotations: Map<String, Value>) -> ModelArtifact {
        let mut card = self.card.clone();
        card.extend(annotations);
        let runnable = OnceLock::new();
        if let Some(r) = self.runnable.get() {
            let _ = runnable.set(r.clone());
        }
        ModelArtifact {
            onnx: self.onnx.clone(),
            card,
            runnable,
        }
    }

    /// The input columns, in the order the model takes them (borrowed from
    /// the card: a prediction reads them for every batch).
    pub fn features(&self) -> Result<Vec<&str>, ModelError> {
        let list = self
            .card
            .get("features")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                ModelError::Card("no `features` list (the input columns, in order)".into())
            })?;
        list.iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    ModelError::Card(format!("`features` holds {v}, not a column name"))
                })
            })
            .collect()
    }

    /// The class names of a classifier (from the card), if any.
    pub fn classes(&self) -> Option<Vec<String>> {
        let list = self.card.get("classes")?.as_array()?;
        Some(
            list.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        )
    }

    /// Whether the card says the model is a classifier (`task`), else
    /// whether it names classes.
    pub fn is_classifier(&self) -> bool {
        match self.card.get("task").and_then(Value::as_str) {
            Some(task) => task == "classification",
            None => self.classes().is_some(),
        }
    }

    /// The label column, if the card names one.
    pub fn label(&self) -> Option<&str> {
        self.card.get("label").and_then(Value::as_str)
    }

    /// The inference plan, compiled on first use.
    pub fn runnable(&self) -> Result<Arc<sluice_ml::Model>, ModelError> {
        self.runnable
            .get_or_init(|| {
                sluice_ml::Model::from_onnx(&self.onnx)
                    .map(Arc::new)
                    .map_err(|e| ModelError::Onnx(e.to_string()))
            })
            .clone()
    }
}

/// Labels of a classifier's prediction column are written back in the
/// label column's own type, recorded in the card as `label_type`.
fn label_type_of(schema: &Schema, label: &str) -> &'static str {
    match schema.field_with_name(label).map(|f| f.data_type()) {
        Ok(DataType::Int64) => "int64",
        Ok(DataType::Boolean) => "boolean",
        Ok(DataType::Float64) => "float64",
        _ => "utf8",
    }
}

/// A classifier's `prediction` column: each row's class in the label's own
/// type (`label_type` in the card), so a model trained on a float `0.0`/`1.0`
/// label predicts floats, not the strings `"0"`/`"1"`. Classes that do not
/// read back as that type (a card edited by hand) stay text.
fn prediction_column(
    label_type: Option<&str>,
    classes: &[String],
    indices: &[usize],
) -> (Field, ArrayRef) {
    fn typed<T: std::str::FromStr>(classes: &[String], indices: &[usize]) -> Option<Vec<T>> {
        let values: Vec<T> = classes
            .iter()
            .map(|c| c.parse().ok())
            .collect::<Option<_>>()?;
        indices.iter().all(|&i| i < values.len()).then_some(values)
    }
    let field = |t: DataType| Field::new("prediction", t, false);
    match label_type {
        Some("int64") => {
            if let Some(v) = typed::<i64>(classes, indices) {
                let column = Int64Array::from_iter_values(indices.iter().map(|&i| v[i]));
                return (field(DataType::Int64), Arc::new(column));
            }
        }
        Some("float64") => {
            if let Some(v) = typed::<f64>(classes, indices) {
                let column = Float64Array::from_iter_values(indices.iter().map(|&i| v[i]));
                return (field(DataType::Float64), Arc::new(column));
            }
        }
        Some("boolean") => {
            if let Some(v) = typed::<bool>(classes, indices) {
                let column: BooleanArray = indices.iter().map(|&i| Some(v[i])).collect();
                return (field(DataType::Boolean), Arc::new(column));
            }
        }
        _ => {}
    }
    let name = |i: usize| classes.get(i).cloned().unwrap_or_else(|| i.to_string());
    let column = StringArray::from_iter_values(indices.iter().map(|&i| name(i)));
    (field(DataType::Utf8), Arc::new(column))
}

/// The `features` columns of `batch` as a row-major matrix, refusing text
/// and missing values with advice.
pub(crate) fn feature_matrix(
    batch: &RecordBatch,
    features: &[impl AsRef<str>],
) -> Result<Vec<f64>, ModelError> {
    feature_matrix_of(std::slice::from_ref(batch), features)
}

/// The `features` columns of a table held as `batches` (one schema) as one
/// row-major matrix: the batches are read in place, not joined first.
/// Rows in messages count from the table's first row.
pub(crate) fn feature_matrix_of(
    batches: &[RecordBatch],
    features: &[impl AsRef<str>],
) -> Result<Vec<f64>, ModelError> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let cols = features.len();
    let mut data = vec![0.0; rows * cols];
    let mut offset = 0;
    for batch in batches {
        let n = batch.num_rows();
        let part = &mut data[offset * cols..(offset + n) * cols];
        for (j, name) in features.iter().enumerate() {
            let name = name.as_ref();
            let array = feature_column(batch, name, offset)?;
            let any = array.as_any();
            let mut put = |i: usize, v: f64| {
                if v.is_finite() {
                    part[i * cols + j] = v;
                    Ok(())
                } else {
                    Err(ModelError::Data(format!(
                        "column `{name}` holds {v} at row {} (counting from 1); models take finite numbers",
                        offset + i + 1
                    )))
                }
            };
            if let Some(a) = any.downcast_ref::<Float64Array>() {
                for (i, &v) in a.values().iter().enumerate() {
                    put(i, v)?;
                }
            } else if let Some(a) = any.downcast_ref::<Int64Array>() {
                for (i, &v) in a.values().iter().enumerate() {
                    put(i, v as f64)?;
                }
            } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
                for i in 0..n {
                    put(i, if a.value(i) { 1.0 } else { 0.0 })?;
                }
            } else {
                return Err(ModelError::Data(format!(
                    "column `{name}` holds {}, but models take numbers; encode it first (std:transform with `one-hot`)",
                    array.data_type()
                )));
            }
        }
        offset += n;
    }
    Ok(data)
}

/// Column `name` of `batch`, complete: a missing column or missing values
/// are refused with advice (`offset` is the batch's first row in its table).
fn feature_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
    offset: usize,
) -> Result<&'a ArrayRef, ModelError> {
    let Some(array) = batch.column_by_name(name) else {
        let have: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        return Err(ModelError::Data(format!(
            "the model takes column `{name}`, which the table lacks; its columns are: {}",
            have.join(", ")
        )));
    };
    if array.null_count() > 0 {
        let first = (0..array.len()).find(|&i| array.is_null(i)).unwrap_or(0);
        return Err(ModelError::Data(format!(
            "column `{name}` has {} missing value(s) (the first at row {}, counting from 1); models take complete numbers — impute them first (std:transform with `impute:mean`)",
            array.null_count(),
            offset + first + 1
        )));
    }
    Ok(array)
}

/// The class labels of column `label` over `batches`, as text: text
/// columns are borrowed, others are written out. A missing label is
/// refused, naming its row.
fn label_texts<'a>(
    batches: &'a [RecordBatch],
    label: &str,
) -> Result<Vec<std::borrow::Cow<'a, str>>, ModelError> {
    use std::borrow::Cow;
    let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for batch in batches {
        let missing = |i: usize| {
            ModelError::Data(format!(
                "the label `{label}` is missing at row {} (counting from 1)",
                out.len() + i + 1
            ))
        };
        let texts: Vec<Cow<'a, str>> = match batch
            .column_by_name(label)
            .and_then(|a| a.as_any().downcast_ref::<StringArray>())
        {
            Some(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| v.map(Cow::Borrowed).ok_or_else(|| missing(i)))
                .collect::<Result<_, _>>()?,
            None => text_column(batch, label)?
                .into_iter()
                .enumerate()
                .map(|(i, v)| v.map(Cow::Owned).ok_or_else(|| missing(i)))
                .collect::<Result<_, _>>()?,
        };
        out.extend(texts);
    }
    Ok(out)
}

/// The values of column `name` as text (for class labels and slices).
fn text_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>, ModelError> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| ModelError::Data(format!("the table has no column `{name}`")))?;
    let any = array.as_any();
    let n = array.len();
    let text = |i: usize, f: &dyn Fn(usize) -> String| (!array.is_null(i)).then(|| f(i));
    Ok(if let Some(a) = any.downcast_ref::<StringArray>() {
        (0..n)
            .map(|i| text(i, &|i| a.value(i).to_string()))
            .collect()
    } else if let Some(a) = any.downcast_ref::<Int64Array>() {
        (0..n)
            .map(|i| text(i, &|i| a.value(i).to_string()))
            .collect()
    } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
        (0..n)
            .map(|i| text(i, &|i| a.value(i).to_string()))
            .collect()
    } else if let Some(a) = any.downcast_ref::<Float64Array>() {
        (0..n)
            .map(|i| text(i, &|i| a.value(i).to_string()))
            .collect()
    } else {
        return Err(ModelError::Data(format!(
            "column `{name}` has type {}, which cannot be read as labels",
            array.data_type()
        )));
    })
}

/// The values of column `name` as numbers (regression labels).
fn number_column(batch: &RecordBatch, name: &str) -> Result<Vec<f64>, ModelError> {
    number_values(std::slice::from_ref(batch), name)
}

/// The values of column `name` over a table's `batches` as numbers.
fn number_values(batches: &[RecordBatch], name: &str) -> Result<Vec<f64>, ModelError> {
    feature_matrix_of(batches, &[name]).map_err(|e| match e {
        ModelError::Data(m) => ModelError::Data(format!("label: {m}")),
        other => other,
    })
}

/// Metrics of the rows at the given indices.
type Measure = dyn Fn(&[usize]) -> Result<Value, ModelError>;

/// Rows a model runs on at a time: bounds inference's scratch memory (the
/// features in `f64` and `f32`, the outputs) and is how often it looks at
/// its stop flag.
pub const INFERENCE_CHUNK_ROWS: usize = 16_384;

/// What a model predicted for a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// For classifiers: the predicted class index of each row.
    pub classes: Option<Vec<usize>>,
    /// For classifiers: row-major probabilities, one per class.
    pub probabilities: Option<Vec<f64>>,
    /// For regressors: the predicted value of each row.
    pub values: Option<Vec<f64>>,
}

impl ModelArtifact {
    /// Trains a model natively on the `features` columns of `batch` to
    /// predict `label`, with trainer `params` (a JSON object).
    pub fn train(
        algorithm: &str,
        data: &Table,
        features: &[String],
        label: &str,
        params: &str,
        cancel: &sluice_ml::Cancel,
    ) -> Result<ModelArtifact, ModelError> {
        Self::train_validated(algorithm, data, None, features, label, params, cancel)
    }

    /// [`ModelArtifact::train`] with validation rows, which the trainer
    /// does not learn from but early stopping watches (see
    /// [`sluice_ml::train_validated`]).
    pub fn train_validated(
        algorithm: &str,
        data: &Table,
        validation: Option<&Table>,
        features: &[String],
        label: &str,
        params: &str,
        cancel: &sluice_ml::Cancel,
    ) -> Result<ModelArtifact, ModelError> {
        let algorithm: sluice_ml::Algorithm = algorithm
            .parse()
            .map_err(|e: sluice_ml::MlError| ModelError::Invalid(e.to_string()))?;
        let params = sluice_ml::TrainParams::from_json(algorithm, params)
            .map_err(|e| ModelError::Invalid(e.to_string()))?;
        if features.is_empty() {
            return Err(ModelError::Invalid("no feature columns to train on".into()));
        }
        if features.iter().any(|f| f == label) {
            return Err(ModelError::Invalid(format!(
                "the label `{label}` is also listed as a feature"
            )));
        }
        let rows = data.num_rows();
        let dataset = dataset_of(
            data,
            features,
            label,
            if algorithm.is_classifier() {
                Labels::NewClasses
            } else {
                Labels::Values
            },
        )?;
        let classes = dataset.target.classes().to_vec();
        let validation = match validation {
            Some(v) => Some(
                dataset_of(
                    v,
                    features,
                    label,
                    if algorithm.is_classifier() {
                        Labels::Classes(&classes)
                    } else {
                        Labels::Values
                    },
                )
                .map_err(|e| match e {
                    ModelError::Data(m) => ModelError::Data(format!("the validation rows: {m}")),
                    other => other,
                })?,
            ),
            None => None,
        };
        let trained = sluice_ml::train_validated(&dataset, validation.as_ref(), &params, cancel)
            .map_err(training_error)?;
        let mut card = Map::new();
        card.insert("algorithm".into(), algorithm.name().into());
        card.insert(
            "task".into(),
            if algorithm.is_classifier() {
                "classification"
            } else {
                "regression"
            }
            .into(),
        );
        card.insert("features".into(), features.into());
        card.insert("label".into(), label.into());
        card.insert(
            "label_type".into(),
            label_type_of(data.schema(), label).into(),
        );
        if algorithm.is_classifier() {
            card.insert("classes".into(), classes.into());
        }
        card.insert(
            "params".into(),
            serde_json::to_value(&params).unwrap_or(Value::Null),
        );
        card.insert("loss_history".into(), trained.loss_history.clone().into());
        if let Some(importances) = trained.native.feature_importances() {
            // Feature name → share of the trees' total split gain.
            let map: serde_json::Map<String, Value> = trained
                .feature_names
                .iter()
                .cloned()
                .zip(importances.iter().map(|&v| Value::from(v)))
                .collect();
            card.insert("feature_importances".into(), Value::Object(map));
        }
        card.insert("training_rows".into(), rows.into());
        ModelArtifact::new(bytes::Bytes::from(trained.onnx), card)
    }

    /// About how many bytes [`ModelArtifact::train`] allocates for a table
    /// of `rows` rows (see [`sluice_ml::TrainParams::memory_estimate`]);
    /// 0 when the request is invalid, which training itself reports.
    pub fn training_memory(algorithm: &str, params: &str, rows: usize, features: usize) -> u64 {
        let Ok(algorithm) = algorithm.parse::<sluice_ml::Algorithm>() else {
            return 0;
        };
        sluice_ml::TrainParams::from_json(algorithm, params)
            .map_or(0, |p| p.memory_estimate(rows, features, 1))
    }

    /// About how many bytes running the model on `rows` rows allocates:
    /// the features in `f64` and `f32` and the graph's intermediate tensors
    /// for one chunk (an upper bound from the graph's shapes), and the
    /// predictions (kept, then copied into a table) for all.
    pub fn inference_memory(&self, rows: usize) -> u64 {
        let features = self.features().map_or(0, |f| f.len()) as u64;
        let outputs = self.classes().map_or(1, |c| c.len()) as u64;
        let chunk = rows.min(INFERENCE_CHUNK_ROWS);
        let graph = self.runnable().map_or(0, |m| m.scratch_bytes(chunk));
        rows as u64 * (outputs * 16 + 16) + chunk as u64 * features * 12 + graph
    }

    /// Runs the model on the card's feature columns of `batch`.
    pub fn predictions(&self, batch: &RecordBatch) -> Result<Predictions, ModelError> {
        self.predictions_until(batch, &sluice_ml::Cancel::new())
    }

    /// [`ModelArtifact::predictions`], [`INFERENCE_CHUNK_ROWS`] rows at a
    /// time, stopping with [`ModelError::Cancelled`] between chunks once
    /// `cancel` is raised. Rows are independent, so the chunks' predictions
    /// are the whole batch's; the feature copies exist one chunk at a time.
    pub fn predictions_until(
        &self,
        batch: &RecordBatch,
        cancel: &sluice_ml::Cancel,
    ) -> Result<Predictions, ModelError> {
        let rows = batch.num_rows();
        let mut all = Predictions {
            classes: None,
            probabilities: None,
            values: None,
        };
        let mut start = 0;
        loop {
            if cancel.is_cancelled() {
                return Err(ModelError::Cancelled);
            }
            let len = INFERENCE_CHUNK_ROWS.min(rows - start);
            if start == 0 && len == rows {
                // One chunk: the batch itself, not a slice (a copy of each
                // column's handle, per request batch in the server).
                return self.chunk_predictions(batch);
            }
            let part = self.chunk_predictions(&batch.slice(start, len))?;
            for (into, from) in [
                (&mut all.probabilities, part.probabilities),
                (&mut all.values, part.values),
            ] {
                if let Some(from) = from {
                    into.get_or_insert_with(Vec::new).extend(from);
                }
            }
            if let Some(from) = part.classes {
                all.classes.get_or_insert_with(Vec::new).extend(from);
            }
            start += len;
            if start >= rows {
                return Ok(all);
            }
        }
    }

    /// One chunk of [`ModelArtifact::predictions_until`].
    fn chunk_predictions(&self, batch: &RecordBatch) -> Result<Predictions, ModelError> {
        let features = self.features()?;
        let rows = batch.num_rows();
        let x = feature_matrix(batch, &features)?;
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let runnable = self.runnable()?;
        let outputs = runnable
            .predict(&x32, rows, features.len())
            .map_err(|e| ModelError::Onnx(e.to_string()))?;
        interpret(self, &outputs, rows)
    }

    /// Runs the model on `batch` and returns the predictions as a table:
    /// `prediction`, and for classifiers `probability_<class>` per class.
    pub fn predict(&self, batch: &RecordBatch) -> Result<RecordBatch, ModelError> {
        self.predict_until(batch, &sluice_ml::Cancel::new())
    }

    /// [`ModelArtifact::predict`] that stops once `cancel` is raised (see
    /// [`ModelArtifact::predictions_until`]).
    pub fn predict_until(
        &self,
        batch: &RecordBatch,
        cancel: &sluice_ml::Cancel,
    ) -> Result<RecordBatch, ModelError> {
        let p = self.predictions_until(batch, cancel)?;
        let rows = batch.num_rows();
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        if let (Some(indices), Some(probs)) = (&p.classes, &p.probabilities) {
            let classes = self.classes().unwrap_or_default();
            let name = |i: usize| classes.get(i).cloned().unwrap_or_else(|| i.to_string());
            let (field, column) = prediction_column(
                self.card.get("label_type").and_then(Value::as_str),
                &classes,
                indices,
            );
            fields.push(field);
            columns.push(column);
            let k = probs.len().checked_div(rows).unwrap_or(classes.len());
            for c in 0..k {
                fields.push(Field::new(
                    format!("probability_{}", name(c)),
                    DataType::Float64,
                    false,
                ));
                columns.push(Arc::new(Float64Array::from(
                    (0..rows).map(|r| probs[r * k + c]).collect::<Vec<_>>(),
                )));
            }
        } else if let Some(values) = &p.values {
            fields.push(Field::new("prediction", DataType::Float64, false));
            columns.push(Arc::new(Float64Array::from(values.clone())));
        }
        RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| ModelError::Data(e.to_string()))
    }

    /// Measures the model on `batch` (which holds the label column):
    /// metrics overall and, if `slice_by` names a column, per value of it
    /// (per quartile for float columns).
    pub fn evaluate(
        &self,
        batch: &RecordBatch,
        slice_by: Option<&str>,
    ) -> Result<Value, ModelError> {
        self.evaluate_until(batch, slice_by, &sluice_ml::Cancel::new())
    }

    /// [`ModelArtifact::evaluate`] that stops once `cancel` is raised (see
    /// [`ModelArtifact::predictions_until`]).
    pub fn evaluate_until(
        &self,
        batch: &RecordBatch,
        slice_by: Option<&str>,
        cancel: &sluice_ml::Cancel,
    ) -> Result<Value, ModelError> {
        self.evaluate_rows_until(batch, batch, slice_by, cancel)
    }

    /// [`ModelArtifact::evaluate_until`] with the model's inputs and the
    /// truth in two tables of the same rows: the model runs on `features`
    /// (rows after a transform), and the label and the slices are read from
    /// `truth` (the same rows before it), so slices are named by raw values.
    pub fn evaluate_rows_until(
        &self,
        features: &RecordBatch,
        truth: &RecordBatch,
        slice_by: Option<&str>,
        cancel: &sluice_ml::Cancel,
    ) -> Result<Value, ModelError> {
        if features.num_rows() != truth.num_rows() {
            return Err(ModelError::Data(format!(
                "the transform returned {} rows for {}: it must keep every row, in order",
                features.num_rows(),
                truth.num_rows()
            )));
        }
        let batch = truth;
        let label = self
            .label()
            .ok_or_else(|| {
                ModelError::Card("no `label`: the column with the true values is unknown".into())
            })?
            .to_string();
        let p = self.predictions_until(features, cancel)?;
        let rows = batch.num_rows();
        let slices: Option<(String, Vec<String>)> = match slice_by {
            Some(column) => Some((column.to_string(), slice_keys(batch, column)?)),
            None => None,
        };
        let measure: Box<Measure> = if self.is_classifier() {
            let classes = self.classes().ok_or_else(|| {
                ModelError::Card("a classifier's card must list its `classes`".into())
            })?;
            let truth = class_indices(
                std::slice::from_ref(batch),
                &label,
                &classes,
                "which is not a class the model knows",
            )?;
            let probs = p.probabilities.clone().unwrap_or_default();
            let k = classes.len();
            Box::new(move |rows: &[usize]| {
                let t: Vec<usize> = rows.iter().map(|&r| truth[r]).collect();
                let pr: Vec<f64> = rows
                    .iter()
                    .flat_map(|&r| probs[r * k..(r + 1) * k].iter().copied())
                    .collect();
                let pr = sluice_ml::Matrix::new(rows.len(), k, pr)
                    .map_err(|e| ModelError::Data(e.to_string()))?;
                let m = sluice_ml::metrics::classification_metrics(&t, &pr)
                    .map_err(|e| ModelError::Data(e.to_string()))?;
                Ok(serde_json::to_value(m).unwrap_or(Value::Null))
            })
        } else {
            let truth = number_column(batch, &label)?;
            let predicted = p.values.clone().unwrap_or_default();
            Box::new(move |rows: &[usize]| {
                let t: Vec<f64> = rows.iter().map(|&r| truth[r]).collect();
                let y: Vec<f64> = rows.iter().map(|&r| predicted[r]).collect();
                let m = sluice_ml::metrics::regression_metrics(&t, &y)
                    .map_err(|e| ModelError::Data(e.to_string()))?;
                Ok(serde_json::to_value(m).unwrap_or(Value::Null))
            })
        };
        let all: Vec<usize> = (0..rows).collect();
        let overall = measure(&all)?;
        let slices = match slices {
            None => Value::Null,
            Some((column, keys)) => {
                let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
                for (i, k) in keys.iter().enumerate() {
                    groups.entry(k.as_str()).or_default().push(i);
                }
                let mut values = Map::new();
                for (k, rows) in groups {
                    let mut m = match measure(&rows)? {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    m.insert("rows".into(), rows.len().into());
                    values.insert(k.to_string(), Value::Object(m));
                }
                serde_json::json!({"column": column, "values": values})
            }
        };
        Ok(serde_json::json!({
            "task": if self.is_classifier() { "classification" } else { "regression" },
            "rows": rows,
            "overall": overall,
            "slices": slices,
        }))
    }
}

/// How a table's label becomes a training target.
enum Labels<'a> {
    /// Real values (regression).
    Values,
    /// Classes, found in the labels (the training rows).
    NewClasses,
    /// These classes, which every label must be one of (validation rows).
    Classes(&'a [String]),
}

/// The `features` columns of `data` and its `label` as a dataset.
fn dataset_of(
    data: &Table,
    features: &[String],
    label: &str,
    labels: Labels<'_>,
) -> Result<sluice_ml::Dataset, ModelError> {
    let batches = data.batches();
    if data.schema().column_with_name(label).is_none() {
        return Err(ModelError::Data(format!(
            "the table has no column `{label}`"
        )));
    }
    let x = sluice_ml::Matrix::new(
        data.num_rows(),
        features.len(),
        feature_matrix_of(batches, features)?,
    )
    .map_err(|e| ModelError::Data(e.to_string()))?;
    let target = match labels {
        Labels::Values => sluice_ml::Target::Values(number_values(batches, label)?),
        Labels::NewClasses => sluice_ml::Target::classes_from_labels(&label_texts(batches, label)?),
        Labels::Classes(classes) => sluice_ml::Target::Classes {
            classes: classes.to_vec(),
            indices: class_indices(
                batches,
                label,
                classes,
                "a class the training rows do not have",
            )?,
        },
    };
    sluice_ml::Dataset::new(x, features.to_vec(), target)
        .map_err(|e| ModelError::Data(e.to_string()))
}

/// Each row's label as its index among `classes`; a label that is not one
/// of them is an error naming its row (from 1) and saying `unknown` of it.
fn class_indices(
    batches: &[RecordBatch],
    label: &str,
    classes: &[String],
    unknown: &str,
) -> Result<Vec<usize>, ModelError> {
    label_texts(batches, label)?
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            classes.iter().position(|c| *c == l).ok_or_else(|| {
                ModelError::Data(format!(
                    "row {} has label `{l}`, {unknown} ({})",
                    i + 1,
                    classes.join(", ")
                ))
            })
        })
        .collect()
}

/// A float column with at most this many distinct values is sliced by value.
const MAX_VALUE_SLICES: usize = 10;

/// The slice each row falls in: the value's text, or for float columns with
/// many values its quartile (`q1 [a, b)` … `q4 [c, d]`).
fn slice_keys(batch: &RecordBatch, column: &str) -> Result<Vec<String>, ModelError> {
    let array = batch.column_by_name(column).ok_or_else(|| {
        ModelError::Data(format!(
            "cannot slice by `{column}`: the table has no such column"
        ))
    })?;
    if let Some(a) = array.as_any().downcast_ref::<Float64Array>() {
        let mut sorted: Vec<f64> = (0..a.len())
            .filter(|&i| a.is_valid(i))
            .map(|i| a.value(i))
            .filter(|v| !v.is_nan())
            .collect();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return Ok(vec!["missing".into(); a.len()]);
        }
        let mut distinct = sorted.clone();
        distinct.dedup();
        if distinct.len() <= MAX_VALUE_SLICES {
            // Few values (a coded category): one slice per value.
            return Ok((0..a.len())
                .map(|i| {
                    if a.is_null(i) || a.value(i).is_nan() {
                        "missing".to_string()
                    } else {
                        a.value(i).to_string()
                    }
                })
                .collect());
        }
        let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
        let edges = [
            sorted[0],
            q(0.25),
            q(0.5),
            q(0.75),
            sorted[sorted.len() - 1],
        ];
        return Ok((0..a.len())
            .map(|i| {
                if a.is_null(i) || a.value(i).is_nan() {
                    return "missing".to_string();
                }
                let v = a.value(i);
                let b = (1..4).take_while(|&b| v >= edges[b]).count();
                let close = if b == 3 { "]" } else { ")" };
                format!("q{} [{}, {}{close}", b + 1, edges[b], edges[b + 1])
            })
            .collect());
    }
    Ok(text_column(batch, column)?
        .into_iter()
        .map(|v| v.unwrap_or_else(|| "missing".into()))
        .collect())
}

/// Reads a model's outputs: class probabilities (a float `[N, C]` output)
/// or class indices for classifiers, the first float output for regressors.
fn interpret(
    model: &ModelArtifact,
    outputs: &sluice_ml::Outputs,
    rows: usize,
) -> Result<Predictions, ModelError> {
    struct Out<'a> {
        name: &'a str,
        shape: &'a [usize],
    }
    let float_outputs = || {
        outputs.0.iter().filter_map(|(name, t)| {
            let data: Vec<f32> = match &t.data {
                sluice_ml::TensorData::F32(v) => v.clone(),
                sluice_ml::TensorData::F64(v) => v.iter().map(|&x| x as f32).collect(),
                _ => return None,
            };
            Some((
                Out {
                    name,
                    shape: &t.shape,
                },
                data,
            ))
        })
    };
    if model.is_classifier() {
        let k = model.classes().map(|c| c.len());
        let probs = float_outputs().find(|(o, _)| {
            o.shape.len() == 2 && o.shape[0] == rows && k.is_none_or(|k| o.shape[1] == k)
        });
        if let Some((o, data)) = probs {
            let k = o.shape[1];
            let probabilities: Vec<f64> = data.iter().map(|&v| f64::from(v)).collect();
            if probabilities.iter().any(|v| !v.is_finite()) {
                return Err(ModelError::Onnx(format!(
                    "output `{}` holds a non-finite probability",
                    o.name
                )));
            }
            let classes = (0..rows)
                .map(|r| {
                    let row = &probabilities[r * k..(r + 1) * k];
                    (0..k).fold(0, |best, c| if row[c] > row[best] { c } else { best })
                })
                .collect();
            return Ok(Predictions {
                classes: Some(classes),
                probabilities: Some(probabilities),
                values: None,
            });
        }
        return Err(ModelError::Onnx(format!(
            "a classifier must output class probabilities as a float [N, {}] tensor; this model outputs {}",
            k.map_or("C".to_string(), |k| k.to_string()),
            describe_outputs(outputs)
        )));
    }
    let Some((o, data)) = float_outputs()
        .find(|(o, _)| o.shape.first() == Some(&rows) && o.shape.iter().skip(1).all(|&d| d == 1))
    else {
        return Err(ModelError::Onnx(format!(
            "a regressor must output a float [N] or [N, 1] tensor; this model outputs {}",
            describe_outputs(outputs)
        )));
    };
    let values: Vec<f64> = data.iter().map(|&v| f64::from(v)).collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::Onnx(format!(
            "output `{}` is not finite at row {} (counting from 1)",
            o.name,
            i + 1
        )));
    }
    Ok(Predictions {
        classes: None,
        probabilities: None,
        values: Some(values),
    })
}

fn describe_outputs(outputs: &sluice_ml::Outputs) -> String {
    outputs
        .0
        .iter()
        .map(|(name, t)| format!("`{name}` {:?}", t.shape))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The host-side value behind an `ml.model` resource handle.
#[derive(Debug, Clone)]
pub struct ModelRes(pub Arc<ModelArtifact>);

#[cfg(test)]
mod tests {
    use super::*;

    fn card(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_card_without_features_is_refused_with_the_reason() {
        let err = ModelArtifact::new(bytes::Bytes::new(), card(serde_json::json!({"task": "x"})))
            .unwrap_err();
        assert!(err.to_string().contains("no `features` list"), "{err}");
    }

    #[test]
    fn the_stored_card_names_the_onnx_bytes_and_reads_back() {
        let onnx = bytes::Bytes::from_static(b"not really onnx");
        let m = ModelArtifact::new(
            onnx.clone(),
            card(serde_json::json!({"features": ["a", "b"], "classes": ["x", "y"]})),
        )
        .unwrap();
        let digest = Digest::of(&onnx);
        let stored = m.stored_card(&digest);
        let back = ModelArtifact::from_stored(stored.as_bytes(), |d| {
            assert_eq!(*d, digest);
            Ok(onnx.clone())
        })
        .unwrap();
        assert_eq!(back.features().unwrap(), ["a", "b"]);
        assert_eq!(back.card(), m.card());
        assert!(back.is_classifier());
    }

    /// `rows` rows of `x` and a label `y` that is `x > 0`.
    fn labelled(rows: usize) -> RecordBatch {
        let x: Vec<f64> = (0..rows).map(|i| (i % 97) as f64 - 48.0).collect();
        let y: Vec<i64> = x.iter().map(|&v| i64::from(v > 0.0)).collect();
        RecordBatch::try_from_iter([
            ("x", Arc::new(Float64Array::from(x)) as ArrayRef),
            ("y", Arc::new(Int64Array::from(y)) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn a_models_identity_is_its_onnx_and_transform_not_its_provenance() {
        let card = |run: &str, onnx: &[u8], state: i64| {
            let m = ModelArtifact::new(
                bytes::Bytes::copy_from_slice(onnx),
                card(serde_json::json!({
                    "features": ["a"],
                    "made_by": {"run": run, "execution": 7},
                    "eval": {"accuracy": if run == "r1" { 0.9 } else { 0.8 }},
                    "transform": {"component": "sha256:00", "state": {"mean": state}},
                })),
            )
            .unwrap();
            m.stored_card(&Digest::of(onnx))
        };
        let id = |c: String| ModelArtifact::identity_of_stored(c.as_bytes()).unwrap();
        let first = card("r1", b"onnx", 1);
        let retrained = card("r2", b"onnx", 1);
        assert_ne!(first, retrained);
        assert_eq!(id(first.clone()), id(retrained));
        assert_ne!(id(first.clone()), id(card("r1", b"other onnx", 1)));
        assert_ne!(id(first), id(card("r1", b"onnx", 2)));
        assert_eq!(ModelArtifact::identity_of_stored(b"not a card"), None);
    }

    #[test]
    fn a_classifier_predicts_labels_in_the_label_columns_own_type() {
        let base = labelled(300);
        let y = base
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let float_label: ArrayRef = Arc::new(Float64Array::from_iter_values(
            y.values().iter().map(|&v| v as f64),
        ));
        let bool_label: ArrayRef = Arc::new(BooleanArray::from(
            y.values().iter().map(|&v| v == 1).collect::<Vec<_>>(),
        ));
        let text_label: ArrayRef = Arc::new(StringArray::from_iter_values(
            y.values()
                .iter()
                .map(|&v| if v == 1 { "pos" } else { "neg" }),
        ));
        for (label, expected) in [
            (base.column(1).clone(), DataType::Int64),
            (float_label, DataType::Float64),
            (bool_label, DataType::Boolean),
            (text_label, DataType::Utf8),
        ] {
            let batch =
                RecordBatch::try_from_iter([("x", base.column(0).clone()), ("y", label.clone())])
                    .unwrap();
            let model = ModelArtifact::train(
                "logistic-regression",
                &Table::from_batch(batch.clone()),
                &["x".to_string()],
                "y",
                "{}",
                &sluice_ml::Cancel::new(),
            )
            .unwrap();
            let out = model.predict(&batch).unwrap();
            let prediction = out.column_by_name("prediction").unwrap();
            assert_eq!(prediction.data_type(), &expected);
            // Predictions are the labels themselves (the rule is learnt),
            // compared in the label's own type.
            let right = (0..batch.num_rows())
                .filter(|&i| prediction.slice(i, 1).as_ref() == label.slice(i, 1).as_ref())
                .count();
            assert!(right > 290, "{expected}: {right} of 300 right");
        }
    }

    #[test]
    fn a_batch_is_predicted_in_chunks_that_line_up_and_a_raised_flag_stops_it() {
        let cancel = sluice_ml::Cancel::new();
        let model = ModelArtifact::train(
            "logistic-regression",
            &Table::from_batch(labelled(500)),
            &["x".to_string()],
            "y",
            "{}",
            &cancel,
        )
        .unwrap();
        // Two and a half chunks: each row's prediction is the one it gets
        // alone, so the chunks are stitched in order.
        let rows = INFERENCE_CHUNK_ROWS * 5 / 2;
        let batch = labelled(rows);
        let all = model.predictions(&batch).unwrap();
        let classes = all.classes.as_ref().unwrap();
        let probabilities = all.probabilities.as_ref().unwrap();
        assert_eq!(classes.len(), rows);
        assert_eq!(probabilities.len(), rows * 2);
        for row in [
            0,
            1,
            INFERENCE_CHUNK_ROWS - 1,
            INFERENCE_CHUNK_ROWS,
            2 * INFERENCE_CHUNK_ROWS + 7,
            rows - 1,
        ] {
            let alone = model.predictions(&batch.slice(row, 1)).unwrap();
            assert_eq!(alone.classes.unwrap(), [classes[row]], "row {row}");
            assert_eq!(
                alone.probabilities.unwrap(),
                probabilities[row * 2..row * 2 + 2],
                "row {row}"
            );
        }
        // The model learnt the rule, so a misplaced chunk would show.
        let right = (0..rows)
            .filter(|&i| classes[i] == usize::from((i % 97) as f64 - 48.0 > 0.0))
            .count();
        assert!(right as f64 > 0.98 * rows as f64, "{right} of {rows}");

        cancel.cancel();
        assert!(matches!(
            model.predict_until(&batch, &cancel),
            Err(ModelError::Cancelled)
        ));
        assert!(matches!(
            model.evaluate_until(&batch, None, &cancel),
            Err(ModelError::Cancelled)
        ));
    }

    #[test]
    fn inference_memory_counts_the_graphs_activations_for_one_chunk() {
        let model = ModelArtifact::train(
            "mlp-classifier",
            &Table::from_batch(labelled(200)),
            &["x".to_string()],
            "y",
            r#"{"hidden_layers": [256], "epochs": 1}"#,
            &sluice_ml::Cancel::new(),
        )
        .unwrap();
        let chunk = INFERENCE_CHUNK_ROWS as u64;
        // The hidden layer's float32 activations for a whole chunk...
        assert!(model.inference_memory(1_000_000) > chunk * 256 * 4);
        // ...but only one chunk's, whatever the rows: beyond a chunk, the
        // estimate grows by the kept predictions alone.
        let more = model.inference_memory(2_000_000) - model.inference_memory(1_000_000);
        assert_eq!(more, 1_000_000 * (2 * 16 + 16));
    }

    #[test]
    fn annotations_are_merged_into_the_card() {
        let m = Arc::new(
            ModelArtifact::new(
                bytes::Bytes::new(),
                card(serde_json::json!({"features": ["a"], "label": "y"})),
            )
            .unwrap(),
        );
        let a = m.annotated(card(
            serde_json::json!({"transform": {"state": 1}, "label": "z"}),
        ));
        assert_eq!(a.card()["transform"]["state"], 1);
        assert_eq!(a.label(), Some("z"));
    }
}
