//! [`Context`]: everything a running step may touch — its inputs, params,
//! outputs, log, metrics and progress — and nothing else.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::sluice::pipeline::context as host;
use crate::bindings::sluice::pipeline::types::{self as raw, LogLevel};
use crate::ml::Model;
use crate::{FromParam, StepError, Table, Value};

/// The running step's handle on the host. Handed to [`Step::run`](crate::Step::run).
///
/// Errors the host reports for inputs and outputs (an unbound port, an
/// output over the size limit …) become [`StepError::Failed`] carrying the
/// host's message unchanged.
#[derive(Debug)]
pub struct Context {
    _private: (),
}

impl Context {
    pub(crate) fn new() -> Self {
        Self { _private: () }
    }

    // ---- params ----------------------------------------------------------

    /// The parameter `name` as a `T`: the spec's value, else the manifest's
    /// default. An absent parameter is an error naming it unless `T` is an
    /// `Option`; a value of the wrong type is an error naming the parameter,
    /// the expected and the actual type (both [`StepError::InvalidInput`]).
    pub fn param<T: FromParam>(&self, name: &str) -> Result<T, StepError> {
        T::from_param(name, self.raw_param(name))
    }

    /// The parameter `name` as the host holds it, if set or defaulted.
    pub fn raw_param(&self, name: &str) -> Option<Value> {
        host::param(name).map(|v| match v {
            raw::Value::Boolean(b) => Value::Boolean(b),
            raw::Value::Integer(i) => Value::Integer(i),
            raw::Value::Float(f) => Value::Float(f),
            raw::Value::Text(s) => Value::Text(s),
            raw::Value::Json(s) => Value::Json(s),
        })
    }

    // ---- inputs ----------------------------------------------------------

    /// Whether the (optional) input `port` is bound in this run.
    pub fn has_input(&self, port: &str) -> bool {
        host::has_input(port)
    }

    /// The `file` artifact bound to input `port`, read natively by the
    /// host as a table (CSV, Parquet or JSON lines; `options` is a JSON
    /// object, `{}` for the defaults), and the host's report of the read
    /// (JSON: rows, each column's type and missing count, warnings naming
    /// lines and columns).
    pub fn read_file(&self, port: &str, options: &str) -> Result<(Table, String), StepError> {
        host::read_file(port, options)
            .map(|f| (Table::from_raw(f.data), f.report))
            .map_err(StepError::InvalidInput)
    }

    /// The table bound to input `port`.
    pub fn input_table(&self, port: &str) -> Result<Table, StepError> {
        host::input_table(port)
            .map(Table::from_raw)
            .map_err(StepError::Failed)
    }

    /// The JSON document (schema, statistics, metrics, transform) bound to `port`.
    pub fn input_document(&self, port: &str) -> Result<String, StepError> {
        host::input_document(port).map_err(StepError::Failed)
    }

    /// The JSON document bound to `port`, deserialized; a document that does
    /// not fit `T` is [`StepError::InvalidInput`].
    pub fn input_json<T: DeserializeOwned>(&self, port: &str) -> Result<T, StepError> {
        let text = self.input_document(port)?;
        serde_json::from_str(&text)
            .map_err(|e| StepError::invalid_input(format!("input `{port}`: {e}")))
    }

    /// The raw bytes of the `file` artifact bound to `port`.
    pub fn input_bytes(&self, port: &str) -> Result<Vec<u8>, StepError> {
        host::input_bytes(port).map_err(StepError::Failed)
    }

    /// The model bound to the `model` input `port`.
    pub fn input_model(&self, port: &str) -> Result<Model, StepError> {
        host::input_model(port)
            .map(Model::from_raw)
            .map_err(StepError::Failed)
    }

    // ---- outputs ---------------------------------------------------------

    /// Records `table` as the output on the `table` port `port`.
    pub fn output_table(&self, port: &str, table: &Table) -> Result<(), StepError> {
        host::output_table(port, table.as_raw()).map_err(StepError::Failed)
    }

    /// Records a JSON document as the output on `port`; the host checks that
    /// it parses.
    pub fn output_document(&self, port: &str, json: &str) -> Result<(), StepError> {
        host::output_document(port, json).map_err(StepError::Failed)
    }

    /// Serializes `value` as pretty JSON (keys in the order they serialize)
    /// and records it as the output on `port`.
    pub fn output_json<T: Serialize + ?Sized>(
        &self,
        port: &str,
        value: &T,
    ) -> Result<(), StepError> {
        let json = serde_json::to_string_pretty(value)
            .map_err(|e| StepError::failed(format!("output `{port}`: cannot serialize: {e}")))?;
        self.output_document(port, &json)
    }

    /// Records raw bytes as the output on the `file` port `port`.
    pub fn output_bytes(&self, port: &str, data: &[u8]) -> Result<(), StepError> {
        host::output_bytes(port, data).map_err(StepError::Failed)
    }

    /// Records `model` as the output on the `model` port `port`, merging
    /// `annotations` (a JSON object, or `null` for none) into its card, e.g.
    /// `json!({"transform": transform_doc, "eval": metrics})`.
    pub fn output_model(
        &self,
        port: &str,
        model: &Model,
        annotations: &serde_json::Value,
    ) -> Result<(), StepError> {
        let annotations = json_object(port, "annotations", annotations)?;
        host::output_model(port, model.as_raw(), &annotations).map_err(StepError::Failed)
    }

    /// Registers the model bound to the `model` input `model_port` as a new
    /// version of `name` in the store's model registry, with `metrics` (a
    /// JSON object, or `null` for none). It takes effect only if the step
    /// succeeds; registering the same model under the same name again is a
    /// no-op.
    pub fn register_model(
        &self,
        name: &str,
        model_port: &str,
        metrics: &serde_json::Value,
    ) -> Result<(), StepError> {
        let metrics = json_object(model_port, "metrics", metrics)?;
        host::register_model(name, model_port, &metrics).map_err(StepError::Failed)
    }

    // ---- observability ---------------------------------------------------

    /// Writes a debug line to the step's log.
    pub fn debug(&self, message: impl AsRef<str>) {
        host::log(LogLevel::Debug, message.as_ref());
    }

    /// Writes an info line to the step's log.
    pub fn info(&self, message: impl AsRef<str>) {
        host::log(LogLevel::Info, message.as_ref());
    }

    /// Writes a warning to the step's log.
    pub fn warn(&self, message: impl AsRef<str>) {
        host::log(LogLevel::Warn, message.as_ref());
    }

    /// Writes an error line to the step's log.
    pub fn error(&self, message: impl AsRef<str>) {
        host::log(LogLevel::Error, message.as_ref());
    }

    /// Records a named numeric metric of this execution.
    pub fn metric(&self, name: &str, value: f64) {
        host::metric(name, value);
    }

    /// Reports progress: `done` of `total` units of work, and what is happening.
    pub fn progress(&self, done: u64, total: u64, message: &str) {
        host::progress(done, total, message);
    }
}

/// `value` as JSON object text (`null` as `{}`); anything else is the
/// step's own mistake.
fn json_object(port: &str, what: &str, value: &serde_json::Value) -> Result<String, StepError> {
    match value {
        serde_json::Value::Null => Ok("{}".to_owned()),
        serde_json::Value::Object(_) => Ok(value.to_string()),
        other => Err(StepError::failed(format!(
            "port `{port}`: {what} must be a JSON object, found {other}"
        ))),
    }
}
