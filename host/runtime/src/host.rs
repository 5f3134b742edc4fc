//! The host side of the contract: the state a running step's store holds,
//! and the implementations of the `tables` and `context` imports over it.

use crate::bindings::sluice::pipeline::{context, types};
use crate::dataplane::HostMemoryExceeded;
use crate::manifest::{ArtifactKind, Port, Value};
use crate::model::ModelRes;
use crate::outcome::{
    EventSink, InputArtifact, LogLevel, LogLine, OutputArtifact, Registration, StepEvent,
};
use crate::sandbox::Limiter;
use crate::table::{self, TableRes};
use sluice_tables::{Hold, Session};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Most log lines kept per execution; later lines are counted, not kept.
pub(crate) const MAX_LOG_LINES: usize = 10_000;
/// Longest log line kept, in bytes.
const MAX_LOG_LINE: usize = 16 * 1024;
/// Log bytes kept per execution (what its report and the metadata store).
pub(crate) const MAX_LOG_BYTES: usize = 1024 * 1024;
/// Metrics kept per execution.
pub(crate) const MAX_METRICS: usize = 1000;
/// Longest metric name kept, in bytes.
const MAX_METRIC_NAME: usize = 256;

/// `text` cut to at most `max` bytes (on a character boundary) with a mark
/// that it was cut. A cut text is a new string, so the long one's
/// allocation is let go rather than kept as capacity; a short one is kept
/// as it came.
fn cut_to(text: String, max: usize) -> String {
    match crate::outcome::cut_text(&text, max) {
        (_, 0) => text,
        (kept, more) => format!("{kept} […{more} more bytes]"),
    }
}

/// The data of a step's store: WASI state with no authority, the resource
/// table, the memory limiter, and the step's inputs and outputs.
pub(crate) struct StepState {
    pub(crate) wasi: WasiCtx,
    pub(crate) resources: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) io: StepIo,
    /// Where the step's table work runs, and the budget its memory limit
    /// is enforced in (the limiter reserves linear memory there too).
    pub(crate) session: Session,
}

/// A step's view of its artifacts, params and reporting channels.
#[derive(Default)]
pub(crate) struct StepIo {
    pub(crate) params: BTreeMap<String, Value>,
    pub(crate) inputs: BTreeMap<String, InputArtifact>,
    /// What each input is called in messages (a `[data]` file's name),
    /// when known.
    pub(crate) input_names: BTreeMap<String, String>,
    pub(crate) declared_outputs: Vec<Port>,
    pub(crate) outputs: BTreeMap<String, OutputArtifact>,
    pub(crate) output_bytes: u64,
    pub(crate) output_limit: u64,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) dropped_logs: u64,
    /// Bytes of the log lines kept.
    pub(crate) log_bytes: usize,
    pub(crate) dropped_metrics: u64,
    pub(crate) metrics: Vec<(String, f64)>,
    pub(crate) started: Option<Instant>,
    pub(crate) events: Option<EventSink>,
    /// The running component's digest (recorded in transform artifacts).
    pub(crate) component: Option<sluice_digest::Digest>,
    pub(crate) registrations: Vec<Registration>,
    /// Reservations for outputs written but not yet stored.
    pub(crate) output_holds: Vec<Hold>,
    /// The step's limits; a replayed transform runs under them too.
    pub(crate) limits: Option<crate::sandbox::Limits>,
    /// Where the components of recorded transforms come from.
    pub(crate) components: Option<crate::outcome::ComponentLoader>,
    /// Transforms replayed in this step, by their recorded document.
    pub(crate) transforms: BTreeMap<String, Arc<crate::transform::TransformRunner>>,
    /// What starts a model server for `serving.probe`.
    pub(crate) serving: Option<Arc<dyn crate::outcome::ServingProbe>>,
    /// Whether the step called `serving.probe`.
    pub(crate) probed: bool,
    /// The message of the last operation refused because this build has
    /// no query engine (the edge runtime): a replayed transform that fails
    /// after one fails for lack of it, not because of the request's data.
    pub(crate) unavailable: Option<String>,
}

/// Raised (as a trap) when a step writes past its output limit.
#[derive(Debug, thiserror::Error)]
#[error("output limit exceeded on port `{port}`")]
pub(crate) struct OutputLimitExceeded {
    pub(crate) port: String,
    pub(crate) attempted: u64,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.resources,
        }
    }
}

impl StepIo {
    fn emit(&self, event: StepEvent) {
        if let Some(sink) = &self.events {
            sink(event);
        }
    }

    fn elapsed(&self) -> std::time::Duration {
        self.started.map(|s| s.elapsed()).unwrap_or_default()
    }

    fn input(&self, port: &str) -> Result<&InputArtifact, String> {
        self.inputs.get(port).ok_or_else(|| {
            if self.inputs.is_empty() {
                format!("no input is bound to port `{port}`; this execution has no inputs")
            } else {
                let bound: Vec<&str> = self.inputs.keys().map(String::as_str).collect();
                format!(
                    "no input is bound to port `{port}`; bound ports: {}",
                    bound.join(", ")
                )
            }
        })
    }

    /// Checks that `port` is a declared output that accepts `what`, and has
    /// not been written yet.
    fn check_output(
        &self,
        port: &str,
        accepts: impl Fn(ArtifactKind) -> bool,
        what: &str,
    ) -> Result<(), String> {
        let Some(decl) = self.declared_outputs.iter().find(|p| p.name == port) else {
            let names: Vec<&str> = self
                .declared_outputs
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            return Err(format!(
                "`{port}` is not an output port of this step; its outputs are: {}",
                if names.is_empty() {
                    "(none)".to_string()
                } else {
                    names.join(", ")
                }
            ));
        };
        if !accepts(decl.kind) {
            return Err(format!(
                "output port `{port}` is declared as {}, so it cannot take {what}",
                decl.kind
            ));
        }
        if self.outputs.contains_key(port) {
            return Err(format!("output port `{port}` was already written"));
        }
        Ok(())
    }

    /// For a `transform` port: the document with the running component's
    /// digest recorded under `component` (what a server needs to replay the
    /// transform), or `None` for other ports.
    fn transform_document(
        &self,
        port: &str,
        doc: serde_json::Value,
    ) -> Result<Option<String>, String> {
        let is_transform = self
            .declared_outputs
            .iter()
            .any(|p| p.name == port && p.kind == ArtifactKind::Transform);
        if !is_transform {
            return Ok(None);
        }
        let serde_json::Value::Object(mut doc) = doc else {
            return Err(format!(
                "the transform document for port `{port}` must be a JSON object with its fitted `state`"
            ));
        };
        if !doc.contains_key("state") {
            return Err(format!(
                "the transform document for port `{port}` has no `state` (what `apply` takes back)"
            ));
        }
        if let Some(digest) = self.component {
            doc.insert(
                "component".into(),
                serde_json::Value::String(digest.to_string()),
            );
        }
        Ok(Some(
            serde_json::to_string(&doc).expect("a JSON map serialises"),
        ))
    }

    /// Records an output, enforcing the output limit.
    fn put_output(&mut self, port: String, artifact: OutputArtifact) -> wasmtime::Result<()> {
        let attempted = self.output_bytes + artifact.stored_bytes().len() as u64;
        if attempted > self.output_limit {
            return Err(wasmtime::Error::new(OutputLimitExceeded {
                port,
                attempted,
            }));
        }
        self.output_bytes = attempted;
        self.outputs.insert(port, artifact);
        Ok(())
    }
}

/// Parses `json` as a JSON object; `what` names it in the error.
pub(crate) fn parse_object(
    json: &str,
    what: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(other) => Err(format!("{what} must be a JSON object, not `{other}`")),
        Err(e) => Err(format!("{what} is not valid JSON: {e}")),
    }
}

impl types::Host for StepState {}
impl context::Host for StepState {
    fn input_table(
        &mut self,
        port: String,
    ) -> wasmtime::Result<Result<Resource<TableRes>, String>> {
        let table = match self.io.input(&port) {
            Ok(InputArtifact::Table(table)) => table.clone(),
            Ok(other) => {
                return Ok(Err(format!(
                    "input port `{port}` holds {}, not a table",
                    other.describe()
                )));
            }
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(self.push_table(
            &format!("the table on input port `{port}`"),
            table,
        )?))
    }

    fn input_document(&mut self, port: String) -> wasmtime::Result<Result<String, String>> {
        Ok(match self.io.input(&port) {
            Ok(InputArtifact::Document(doc)) => Ok(doc.clone()),
            Ok(other) => Err(format!(
                "input port `{port}` holds {}, not a JSON document",
                other.describe()
            )),
            Err(e) => Err(e),
        })
    }

    fn input_bytes(&mut self, port: String) -> wasmtime::Result<Result<Vec<u8>, String>> {
        Ok(match self.io.input(&port) {
            Ok(InputArtifact::Bytes(b)) => Ok(b.to_vec()),
            Ok(InputArtifact::Document(doc)) => Ok(doc.as_bytes().to_vec()),
            Ok(InputArtifact::Table(_)) => Err(format!(
                "input port `{port}` holds a table; read it with input-table"
            )),
            Ok(InputArtifact::Model(m)) => Ok(m.onnx().to_vec()),
            Err(e) => Err(e),
        })
    }

    fn input_model(
        &mut self,
        port: String,
    ) -> wasmtime::Result<Result<Resource<ModelRes>, String>> {
        let model = match self.io.input(&port) {
            Ok(InputArtifact::Model(m)) => m.clone(),
            Ok(other) => {
                return Ok(Err(format!(
                    "input port `{port}` holds {}, not a model",
                    other.describe()
                )));
            }
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(self.resources.push(ModelRes(model))?))
    }

    fn output_model(
        &mut self,
        port: String,
        data: Resource<ModelRes>,
        annotations: String,
    ) -> wasmtime::Result<Result<(), String>> {
        if let Err(e) = self
            .io
            .check_output(&port, |k| k == ArtifactKind::Model, "a model")
        {
            return Ok(Err(e));
        }
        let annotations = match parse_object(&annotations, "the model's annotations") {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let model = self.resources.get(&data)?.0.clone();
        let model = std::sync::Arc::new(model.annotated(annotations));
        self.io.put_output(port, OutputArtifact::Model(model))?;
        Ok(Ok(()))
    }

    fn register_model(
        &mut self,
        name: String,
        model_port: String,
        metrics: String,
    ) -> wasmtime::Result<Result<(), String>> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Ok(Err(format!(
                "`{name}` is not a model name: use letters, digits, `-`, `_` and `.`"
            )));
        }
        match self.io.input(&model_port) {
            Ok(InputArtifact::Model(_)) => {}
            Ok(other) => {
                return Ok(Err(format!(
                    "input port `{model_port}` holds {}, not a model",
                    other.describe()
                )));
            }
            Err(e) => return Ok(Err(e)),
        }
        let metrics = match parse_object(&metrics, "the model's metrics") {
            Ok(m) => serde_json::Value::Object(m),
            Err(e) => return Ok(Err(e)),
        };
        self.io.registrations.push(Registration {
            name,
            model_port,
            metrics,
        });
        Ok(Ok(()))
    }

    fn has_input(&mut self, port: String) -> wasmtime::Result<bool> {
        Ok(self.io.inputs.contains_key(&port))
    }

    async fn read_file(
        &mut self,
        port: String,
        options: String,
    ) -> wasmtime::Result<Result<context::FileTable, String>> {
        let bytes = match self.io.input(&port) {
            Ok(InputArtifact::Bytes(b)) => b.clone(),
            Ok(other) => {
                return Ok(Err(format!(
                    "input port `{port}` holds {}, not a file; read-file reads `file` artifacts",
                    other.describe()
                )));
            }
            Err(e) => return Ok(Err(e)),
        };
        let options: sluice_tables::read::ReadOptions =
            match serde_json::from_str(if options.trim().is_empty() {
                "{}"
            } else {
                &options
            }) {
                Ok(o) => o,
                Err(e) => return Ok(Err(format!("the read-file options are not valid: {e}"))),
            };
        let name = self
            .io
            .input_names
            .get(&port)
            .cloned()
            .unwrap_or_else(|| format!("the file on input port `{port}`"));
        let read = {
            let name = name.clone();
            self.session
                .compute(move || sluice_tables::read::read(&name, bytes, &options))
                .await
        };
        let (data, report) = match read {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let data = self.push_table(&format!("the table read from {name}"), data)?;
        let report = serde_json::to_string(&report).expect("a read report serialises");
        Ok(Ok(context::FileTable { data, report }))
    }

    fn param(&mut self, name: String) -> wasmtime::Result<Option<types::Value>> {
        Ok(self.io.params.get(&name).map(|v| match v.clone() {
            Value::Boolean(b) => types::Value::Boolean(b),
            Value::Integer(i) => types::Value::Integer(i),
            Value::Float(f) => types::Value::Float(f),
            Value::Text(s) => types::Value::Text(s),
            Value::Json(s) => types::Value::Json(s),
        }))
    }

    async fn output_table(
        &mut self,
        port: String,
        data: Resource<TableRes>,
    ) -> wasmtime::Result<Result<(), String>> {
        if let Err(e) = self
            .io
            .check_output(&port, |k| k == ArtifactKind::Table, "a table")
        {
            return Ok(Err(e));
        }
        let data = self.table(&data)?;
        // Encoding stops as soon as it passes what the output limit leaves.
        let budget = self.io.output_limit.saturating_sub(self.io.output_bytes);
        let encoded = {
            let data = data.clone();
            self.session
                .compute(move || table::to_parquet_within(&data, budget))
                .await
        };
        let parquet = match encoded {
            Ok(p) => p,
            Err(table::TableError::TooLarge { written, .. }) => {
                return Err(wasmtime::Error::new(OutputLimitExceeded {
                    port,
                    attempted: self.io.output_bytes + written,
                }));
            }
            Err(e) => return Ok(Err(format!("could not encode the table as Parquet: {e}"))),
        };
        // The table and its encoding stay in memory until the step ends
        // and the run stores them.
        let ledger = self.session.ledger();
        let what = format!("the table written to output port `{port}`");
        let holds = ledger.hold(&what, &data).and_then(|t| {
            Ok((
                t,
                ledger.hold_bytes(
                    format_args!("the Parquet encoding of {what}"),
                    parquet.len() as u64,
                )?,
            ))
        });
        let (table_hold, bytes_hold) =
            holds.map_err(|e| wasmtime::Error::new(HostMemoryExceeded(e)))?;
        self.io.output_holds.extend([table_hold, bytes_hold]);
        self.limiter.observe();
        self.io.put_output(
            port,
            OutputArtifact::Table {
                table: data,
                parquet,
            },
        )?;
        Ok(Ok(()))
    }

    fn output_document(
        &mut self,
        port: String,
        json: String,
    ) -> wasmtime::Result<Result<(), String>> {
        if let Err(e) = self
            .io
            .check_output(&port, ArtifactKind::is_document, "a JSON document")
        {
            return Ok(Err(e));
        }
        let doc = match serde_json::from_str::<serde_json::Value>(&json) {
            Ok(doc) => doc,
            Err(e) => {
                return Ok(Err(format!(
                    "the document for port `{port}` is not valid JSON: {e}"
                )));
            }
        };
        let json = match self.io.transform_document(&port, doc) {
            Ok(Some(wrapped)) => wrapped,
            Ok(None) => json,
            Err(e) => return Ok(Err(e)),
        };
        self.io.put_output(port, OutputArtifact::Document(json))?;
        Ok(Ok(()))
    }

    fn output_bytes(
        &mut self,
        port: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        if let Err(e) = self
            .io
            .check_output(&port, |k| k == ArtifactKind::File, "raw bytes")
        {
            return Ok(Err(e));
        }
        self.io.put_output(port, OutputArtifact::Bytes(data))?;
        Ok(Ok(()))
    }

    fn log(&mut self, level: types::LogLevel, message: String) -> wasmtime::Result<()> {
        // Bounded by lines and by bytes, and a long line is cut into a new
        // string: the guest's (as long as its linear memory allows) is let
        // go at once, not kept as the cut line's capacity.
        let message = cut_to(message, MAX_LOG_LINE);
        if self.io.logs.len() >= MAX_LOG_LINES || self.io.log_bytes + message.len() > MAX_LOG_BYTES
        {
            self.io.dropped_logs += 1;
            return Ok(());
        }
        self.io.log_bytes += message.len();
        let line = LogLine {
            level: match level {
                types::LogLevel::Debug => LogLevel::Debug,
                types::LogLevel::Info => LogLevel::Info,
                types::LogLevel::Warn => LogLevel::Warn,
                types::LogLevel::Error => LogLevel::Error,
            },
            message,
            at: self.io.elapsed(),
        };
        self.io.emit(StepEvent::Log(line.clone()));
        self.io.logs.push(line);
        Ok(())
    }

    fn metric(&mut self, name: String, value: f64) -> wasmtime::Result<()> {
        if self.io.metrics.len() >= MAX_METRICS {
            self.io.dropped_metrics += 1;
            return Ok(());
        }
        self.io.metrics.push((cut_to(name, MAX_METRIC_NAME), value));
        Ok(())
    }

    fn progress(&mut self, done: u64, total: u64, message: String) -> wasmtime::Result<()> {
        self.io.emit(StepEvent::Progress {
            done,
            total,
            message,
        });
        Ok(())
    }
}
