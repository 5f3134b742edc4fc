//! A registered model version made ready to predict: its card and ONNX
//! graph compiled for inference, its recorded transform component loaded
//! with the fitted state, and its request and response signatures.

use crate::signature::{ArrowDType, ColumnSpec, DType, DataError, Signature};
use arrow_array::{ArrayRef, Float64Array, RecordBatch};
use serde_json::Value;
#[cfg(feature = "server")]
use sluice_runtime::Runtime;
use sluice_runtime::{
    Component, Digest, Limits, ModelArtifact, ModelError, TransformError, TransformRunner,
};
#[cfg(feature = "server")]
use sluice_store::{ModelRef, Store};
use std::sync::Arc;
use std::time::Duration;

/// Why a model version could not be made ready to serve.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No version answers to the reference.
    #[error("no model version answers to `{reference}`{hint}")]
    NotFound {
        /// What was asked for.
        reference: String,
        /// What exists instead, as advice.
        hint: String,
    },
    /// The store could not be read.
    #[error("reading the store: {0}")]
    Store(String),
    /// The card or ONNX graph is unusable.
    #[error("model {reference}: {source}")]
    Model {
        /// The version.
        reference: String,
        /// Why.
        source: ModelError,
    },
    /// The recorded transform cannot be replayed.
    #[error("model {reference}: its transform: {detail}")]
    Transform {
        /// The version.
        reference: String,
        /// Why.
        detail: String,
    },
}

/// Why a prediction failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PredictError {
    /// The request's data does not fit the model.
    #[error("{0}")]
    Data(#[from] DataError),
    /// The transform refused or failed.
    #[error(transparent)]
    Transform(#[from] TransformError),
    /// The model refused or failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The prediction stopped before it answered (it panicked).
    #[error("the prediction stopped before it answered; the server's log says why")]
    Lost,
}

impl PredictError {
    /// Whether the request is at fault (a 4xx), rather than the server.
    pub fn blames_request(&self) -> bool {
        match self {
            PredictError::Data(_) => true,
            PredictError::Transform(e) => e.blames_request(),
            PredictError::Model(e) => matches!(e, ModelError::Data(_)),
            PredictError::Lost => false,
        }
    }
}

/// A model version ready to predict. Share it behind an `Arc`.
#[derive(Debug)]
pub struct ServedModel {
    /// The registered name.
    pub name: String,
    /// The registered version.
    pub version: i64,
    model: ModelArtifact,
    graph: Digest,
    transform: Option<TransformRunner>,
    inputs: Option<Signature>,
    outputs: Signature,
}

/// Limits of a transform call in the server: a request is small.
const TRANSFORM_LIMITS: Limits = Limits {
    memory: 512 << 20,
    time: Duration::from_secs(30),
    output: u64::MAX,
};

impl ServedModel {
    /// Loads the version `reference` names from `store`: fetches the card
    /// and ONNX bytes, compiles the graph, loads the transform component
    /// (embedded standard step, else from the store) and warms one instance.
    #[cfg(feature = "server")]
    pub fn load(store: &Store, runtime: &Runtime, reference: &ModelRef) -> Result<Self, LoadError> {
        let store_err = |e: &dyn std::fmt::Display| LoadError::Store(e.to_string());
        let version = store
            .metadata
            .resolve_model(reference)
            .map_err(|e| store_err(&e))?
            .ok_or_else(|| LoadError::NotFound {
                reference: reference.to_string(),
                hint: not_found_hint(store, reference),
            })?;
        ServedModel::load_card(
            store,
            runtime,
            version.name,
            version.version,
            &version.artifact,
        )
    }

    /// Loads the model whose stored card (as [`ModelArtifact::stored_card`]
    /// writes it) is the object `card` of `store`, registered or not, as
    /// `name` version `version`; see [`ServedModel::load`].
    #[cfg(feature = "server")]
    pub fn load_card(
        store: &Store,
        runtime: &Runtime,
        name: String,
        version: i64,
        card: &Digest,
    ) -> Result<Self, LoadError> {
        let store_err = |e: &dyn std::fmt::Display| LoadError::Store(e.to_string());
        let id = format!("{name}:{version}");
        let card = store.objects.get(card).map_err(|e| store_err(&e))?;
        let model = ModelArtifact::from_stored(&card, |d| {
            store
                .objects
                .get(d)
                .map(bytes::Bytes::from)
                .map_err(|e| e.to_string())
        })
        .map_err(|source| LoadError::Model {
            reference: id.clone(),
            source,
        })?;
        let load = |digest: &Digest| runtime.load_digest(digest, Some(&store.objects));
        ServedModel::assemble(name, version, model, &load)
    }

    /// A model version made ready from its parts, wherever they were kept
    /// (a store, an edge bundle): the model, and `load_component`, which
    /// finds the transform component its card records by digest. Loads the
    /// transform with its fitted state, warms one instance, and works out
    /// the request and response signatures (predicting one row, which also
    /// compiles the graph before the first request).
    pub fn assemble(
        name: String,
        version: i64,
        model: ModelArtifact,
        load_component: &dyn Fn(&Digest) -> Result<Component, String>,
    ) -> Result<Self, LoadError> {
        let id = format!("{name}:{version}");
        let transform = match model.card().get("transform") {
            None | Some(Value::Null) => None,
            Some(doc) => Some(load_transform(doc, load_component).map_err(|detail| {
                LoadError::Transform {
                    reference: id.clone(),
                    detail,
                }
            })?),
        };
        let inputs = match (&transform, model.card().get("transform")) {
            (Some(_), Some(doc)) => transform_inputs(doc),
            _ => Some(Signature::new(
                model
                    .features()
                    .map_err(|source| LoadError::Model {
                        reference: id.clone(),
                        source,
                    })?
                    .into_iter()
                    .map(|name| ColumnSpec {
                        name: name.to_string(),
                        column_type: DType::Float64,
                    })
                    .collect(),
            )),
        };
        let outputs = output_signature(&model).map_err(|source| LoadError::Model {
            reference: id.clone(),
            source,
        })?;
        Ok(ServedModel {
            name,
            version,
            graph: Digest::of(model.onnx()),
            model,
            transform,
            inputs,
            outputs,
        })
    }

    /// `name:version`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.name, self.version)
    }

    /// The raw input columns a request must carry, if known (a transform
    /// that does not record its `inputs` takes whatever columns it is given).
    pub fn inputs(&self) -> Option<&Signature> {
        self.inputs.as_ref()
    }

    /// The prediction columns.
    pub fn outputs(&self) -> &Signature {
        &self.outputs
    }

    /// Whether the model predicts classes (its `prediction` column holds
    /// labels, categories whatever their type).
    pub fn is_classifier(&self) -> bool {
        self.model.is_classifier()
    }

    /// The model: its ONNX bytes and card, as loaded and checked.
    pub fn model(&self) -> &ModelArtifact {
        &self.model
    }

    /// The ONNX graph's digest: what a request log names beside the name
    /// and version, so logs are never credited to another model that
    /// happens to share them (another store's version 3).
    pub fn graph(&self) -> Digest {
        self.graph
    }

    /// The model card.
    pub fn card(&self) -> &serde_json::Map<String, Value> {
        self.model.card()
    }

    /// The transform component's digest, if the model has one.
    pub fn transform_component(&self) -> Option<Digest> {
        self.transform.as_ref().map(|t| t.component().digest())
    }

    /// Predicts for the rows of `batch` (raw inputs): conforms it to the
    /// input signature, applies the transform, runs the model. Blocks the
    /// calling thread; call it from a worker thread, not an async task.
    pub fn predict(&self, batch: &RecordBatch) -> Result<RecordBatch, PredictError> {
        let raw = self.conformed(batch)?;
        let features = match &self.transform {
            Some(transform) => transform.apply_blocking(raw.clone())?,
            None => return Ok(self.model.predict(&raw)?),
        };
        self.predict_features(&raw, &features)
    }

    /// [`ServedModel::predict`] on the calling task: the transform runs on
    /// the task's runtime. For small batches, whose prediction takes
    /// microseconds, so that handing them to another thread would cost
    /// more than the work.
    pub async fn predict_here(&self, batch: &RecordBatch) -> Result<RecordBatch, PredictError> {
        let raw = self.conformed(batch)?;
        let features = match &self.transform {
            Some(transform) => transform.apply(raw.clone()).await?,
            None => return Ok(self.model.predict(&raw)?),
        };
        self.predict_features(&raw, &features)
    }

    fn conformed(&self, batch: &RecordBatch) -> Result<RecordBatch, PredictError> {
        Ok(match &self.inputs {
            Some(s) => s.conform(batch)?,
            None => batch.clone(),
        })
    }

    /// The model's prediction for the transform's `features` of `raw`.
    fn predict_features(
        &self,
        raw: &RecordBatch,
        features: &RecordBatch,
    ) -> Result<RecordBatch, PredictError> {
        match self.model.predict(features) {
            Err(ModelError::Data(message))
                if message.contains("models take finite numbers") && all_finite(raw) =>
            {
                Err(PredictError::Model(ModelError::Data(format!(
                    "the model's recorded transform turned the request's finite values into non-finite ones ({message} after the transform); \
                     some value is too far outside the range the transform was fitted on"
                ))))
            }
            other => Ok(other?),
        }
    }
}

fn all_finite(batch: &RecordBatch) -> bool {
    batch.columns().iter().all(|c| {
        c.as_any()
            .downcast_ref::<arrow_array::Float64Array>()
            .is_none_or(|a| a.iter().flatten().all(f64::is_finite))
    })
}

/// What exists when a reference finds nothing, as advice.
#[cfg(feature = "server")]
fn not_found_hint(store: &Store, reference: &ModelRef) -> String {
    match store.metadata.model_versions(reference.name()) {
        Ok(versions) if !versions.is_empty() => {
            let aliases: Vec<String> = versions
                .iter()
                .flat_map(|v| {
                    v.aliases
                        .iter()
                        .map(move |a| format!("@{a} → {}", v.version))
                })
                .collect();
            format!(
                "; `{}` has version{} {}{}; `sluice models promote {} VERSION --alias ALIAS` sets an alias",
                reference.name(),
                if versions.len() == 1 { "" } else { "s" },
                versions
                    .iter()
                    .map(|v| v.version.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                if aliases.is_empty() {
                    " and no aliases".to_string()
                } else {
                    format!(" ({})", aliases.join(", "))
                },
                reference.name()
            )
        }
        _ => format!(
            "; no model called `{}` is registered in this store (`sluice models list` shows those that are)",
            reference.name()
        ),
    }
}

/// Loads the transform a card records: `{"component": "sha256:…", "state": …}`.
fn load_transform(
    doc: &Value,
    load: &dyn Fn(&Digest) -> Result<Component, String>,
) -> Result<TransformRunner, String> {
    let runner = TransformRunner::recorded(doc, load, TRANSFORM_LIMITS)?;
    runner.warm().map_err(|e| e.to_string())?;
    Ok(runner)
}

/// The raw inputs a transform document records (`inputs`: name and type).
fn transform_inputs(doc: &Value) -> Option<Signature> {
    let list = doc.get("inputs")?.as_array()?;
    let columns = list
        .iter()
        .map(|c| {
            Some(ColumnSpec {
                name: c.get("name")?.as_str()?.to_string(),
                column_type: DType::parse(c.get("type")?.as_str()?)?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Signature::new(columns))
}

/// The prediction columns, found by predicting one row of zeros (which
/// also compiles the graph before the first request).
fn output_signature(model: &ModelArtifact) -> Result<Signature, ModelError> {
    let features = model.features()?;
    let columns: Vec<(String, ArrayRef)> = features
        .iter()
        .map(|f| {
            (
                f.to_string(),
                Arc::new(Float64Array::from(vec![0.0])) as ArrayRef,
            )
        })
        .collect();
    let probe = RecordBatch::try_from_iter(columns).map_err(|e| ModelError::Data(e.to_string()))?;
    let out = model.predict(&probe)?;
    Ok(Signature::new(
        out.schema()
            .fields()
            .iter()
            .map(|f| ColumnSpec {
                name: f.name().clone(),
                column_type: DType::of_arrow(f.data_type()).unwrap_or(DType::Float64),
            })
            .collect(),
    ))
}
