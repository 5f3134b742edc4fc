//! What goes into a step execution and what comes out of it.

use sluice_tables::Table;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::manifest::{ArtifactKind, Port, Value};
use crate::model::ModelArtifact;
use crate::sandbox::Limits;

/// An artifact bound to an input port.
#[derive(Debug, Clone)]
pub enum InputArtifact {
    /// A table, decoded (record batches as stored: one per Parquet row group).
    Table(Table),
    /// A JSON document (schema, statistics, metrics, transform).
    Document(String),
    /// Raw bytes (a `file` artifact).
    Bytes(bytes::Bytes),
    /// A model: ONNX bytes and its card.
    Model(Arc<ModelArtifact>),
}

impl InputArtifact {
    /// A short noun for messages: "a table", "a document", "a file".
    pub fn describe(&self) -> &'static str {
        match self {
            InputArtifact::Table(_) => "a table",
            InputArtifact::Document(_) => "a JSON document",
            InputArtifact::Bytes(_) => "a file",
            InputArtifact::Model(_) => "a model",
        }
    }
}

/// An artifact a step wrote to an output port.
#[derive(Debug, Clone)]
pub enum OutputArtifact {
    /// A table, with its Parquet encoding (what is stored and digested).
    Table {
        /// The data, for consumers in the same run.
        table: Table,
        /// The Parquet bytes.
        parquet: Vec<u8>,
    },
    /// A JSON document.
    Document(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A model. It is stored as two objects: the ONNX bytes, and the card
    /// (the artifact itself), which names the ONNX bytes by digest.
    Model(Arc<ModelArtifact>),
}

impl OutputArtifact {
    /// The bytes that are stored for this artifact (for a model, its ONNX
    /// bytes; its card is stored beside them, see [`ModelArtifact::stored_card`]).
    pub fn stored_bytes(&self) -> &[u8] {
        match self {
            OutputArtifact::Table { parquet, .. } => parquet,
            OutputArtifact::Document(s) => s.as_bytes(),
            OutputArtifact::Bytes(b) => b,
            OutputArtifact::Model(m) => m.onnx(),
        }
    }

    /// The same artifact as an input of a later step.
    pub fn to_input(&self) -> InputArtifact {
        match self {
            OutputArtifact::Table { table, .. } => InputArtifact::Table(table.clone()),
            OutputArtifact::Document(s) => InputArtifact::Document(s.clone()),
            OutputArtifact::Bytes(b) => InputArtifact::Bytes(bytes::Bytes::from(b.clone())),
            OutputArtifact::Model(m) => InputArtifact::Model(m.clone()),
        }
    }
}

/// Severity of a step's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Detail for debugging.
    Debug,
    /// Normal progress.
    Info,
    /// Something worth a look.
    Warn,
    /// Something failed.
    Error,
}

/// One line of a step's log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// The text.
    pub message: String,
    /// Time since the step started.
    #[serde(with = "duration_ms")]
    pub at: Duration,
}

/// Something a running step reports as it happens.
#[derive(Debug, Clone)]
pub enum StepEvent {
    /// `done` of `total` units of work.
    Progress {
        /// Units done.
        done: u64,
        /// Units in all (0 when unknown).
        total: u64,
        /// What is happening.
        message: String,
    },
    /// A log line.
    Log(LogLine),
}

/// Receives [`StepEvent`]s while a step runs (for progress displays).
pub type EventSink = Arc<dyn Fn(StepEvent) + Send + Sync>;

/// Finds a component by its digest, for host calls that replay a model's
/// recorded transform (`model.transform`, `ml.evaluate-raw`): typically
/// [`crate::Runtime::load_digest`] over the run's object store.
pub type ComponentLoader =
    Arc<dyn Fn(&sluice_digest::Digest) -> Result<crate::Component, String> + Send + Sync>;

/// Starts a model in the real model server and measures it: the host side
/// of `sluice:pipeline/serving` (0.1.3, `std:infra-validate`). Whoever can
/// start a server (the `sluice` binary, which knows its own executable and
/// store) injects one; without one, `serving.probe` is refused.
pub trait ServingProbe: Send + Sync {
    /// Serves `model` on loopback, sends each row of `examples` as its own
    /// request, then the bounded load `options` describes (see
    /// [`ProbeOptions`]), and stops the server. An `Err` is a probe that
    /// could not be made at all (no server could be started); a server
    /// that started and then failed is an `Ok` whose report says so.
    fn probe(
        &self,
        model: Arc<ModelArtifact>,
        examples: arrow_array::RecordBatch,
        options: ProbeOptions,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<ProbeAnswer, String>> + Send + '_>>;
}

/// How hard a [`ServingProbe`] pushes the server; the step's `options` JSON.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeOptions {
    /// Clients sending requests at once during the load.
    pub concurrency: usize,
    /// Longest the load lasts, in milliseconds.
    pub duration_ms: u64,
    /// Most requests the load sends.
    pub max_requests: u64,
    /// Rows in each load request (the examples are one row each).
    pub rows_per_request: usize,
    /// The server is stopped when its resident memory passes this many
    /// bytes (`None`: never).
    pub memory_ceiling_bytes: Option<u64>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            concurrency: 2,
            duration_ms: 2_000,
            max_requests: 5_000,
            rows_per_request: 1,
            memory_ceiling_bytes: None,
        }
    }
}

/// What a [`ServingProbe`] observed (`serving.probe-result`).
#[derive(Debug, Clone)]
pub struct ProbeAnswer {
    /// One row per example, in order: `status` (Int64, the HTTP status),
    /// `error` (Utf8, empty when 200) and the prediction columns the server
    /// answered (null where the request failed).
    pub answers: arrow_array::RecordBatch,
    /// The measurements, as the contract's `report` JSON describes them.
    pub report: serde_json::Value,
}

/// Everything a step execution needs.
#[derive(Clone, Default)]
pub struct Invocation {
    /// Parameter values, defaults already applied.
    pub params: BTreeMap<String, Value>,
    /// Artifacts bound to input ports.
    pub inputs: BTreeMap<String, InputArtifact>,
    /// What to call an input in messages, by port (a `[data]` file's
    /// name); ports not here are named by port.
    pub input_names: BTreeMap<String, String>,
    /// The output ports the step declared; the step must fill each one.
    pub outputs: Vec<Port>,
    /// Resource limits.
    pub limits: Limits,
    /// Seed of the step's random number generators.
    pub seed: [u8; 32],
    /// Which clocks the step sees (virtual unless the spec says `real`).
    pub clock: crate::ClockMode,
    /// Live progress and log events, if someone is watching.
    pub events: Option<EventSink>,
    /// Where the components that models' recorded transforms name come
    /// from; without it, replaying a transform is refused.
    pub components: Option<ComponentLoader>,
    /// What starts a model server for `serving.probe`; without it, a probe
    /// is refused.
    pub serving: Option<Arc<dyn ServingProbe>>,
}

/// Why a step did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "detail")]
pub enum StepFailure {
    /// The step said its inputs break its contract.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A validation gate in the step said no.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The step reported a failure.
    #[error("failed: {0}")]
    Failed(String),
    /// The step panicked (the message is the panic's).
    #[error("panicked: {0}")]
    Panicked(String),
    /// The step ran past its time limit and was stopped.
    #[error("stopped at its time limit of {}", humantime(*.0))]
    TimeLimit(#[serde(with = "duration_ms")] Duration),
    /// The step tried to use more memory than its limit: its own linear
    /// memory and what the host holds for it (tables, query state,
    /// outputs not yet stored) together.
    #[error("exceeded its memory limit of {}: {}", bytes(*limit), memory_detail(*requested, *host_held, what.as_deref()))]
    MemoryLimit {
        /// The limit.
        limit: u64,
        /// The total it asked for.
        requested: u64,
        /// Of that, what the host held for the step (tables and query
        /// state) when the limit was hit.
        host_held: u64,
        /// What the host was asked to hold, when the host's side hit the
        /// limit (`the table read from port data`, `a sort`).
        what: Option<String>,
    },
    /// The step tried to write more output than its limit.
    #[error("output refused: writing {} to port `{port}` would exceed the output limit of {}", bytes(*attempted), bytes(*limit))]
    OutputLimit {
        /// The port being written.
        port: String,
        /// The total the step would have written.
        attempted: u64,
        /// The limit.
        limit: u64,
    },
    /// The step returned success without writing these declared outputs.
    #[error("succeeded without writing its declared output(s): {}", .0.join(", "))]
    MissingOutputs(Vec<String>),
    /// The component trapped (a WebAssembly fault) for another reason.
    #[error("crashed: {0}")]
    Trap(String),
}

/// The part of a memory-limit message after the limit.
fn memory_detail(requested: u64, host_held: u64, what: Option<&str>) -> String {
    match what {
        Some(what) => format!(
            "{what} needed {} in all, of which the host already held {} of tables and query state for the step",
            bytes(requested),
            bytes(host_held)
        ),
        None if host_held > 0 => format!(
            "it asked for {} in all, of which the host held {} of tables for it",
            bytes(requested),
            bytes(host_held)
        ),
        None => format!("it asked for {}", bytes(requested)),
    }
}

impl StepFailure {
    /// Whether a retry could help: only plain failures and crashes are
    /// retried; contract violations, rejections and limits are not.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StepFailure::Failed(_) | StepFailure::Trap(_))
    }
}

/// The result of one step execution.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// Success, or why not.
    pub result: Result<(), StepFailure>,
    /// What the step wrote, by port.
    pub outputs: BTreeMap<String, OutputArtifact>,
    /// The step's log.
    pub logs: Vec<LogLine>,
    /// Metrics the step recorded, in order.
    pub metrics: Vec<(String, f64)>,
    /// What the guest printed to stdout (bounded).
    pub stdout: String,
    /// What the guest printed to stderr (bounded).
    pub stderr: String,
    /// Wall time of the execution, instantiation included.
    pub duration: Duration,
    /// Peak linear memory, in bytes.
    pub peak_memory: u64,
    /// How many times the step read a virtual clock (0 with real clocks,
    /// which are not watched).
    pub clock_reads: u64,
    /// Models the step asked to register (only if it succeeded).
    pub registrations: Vec<Registration>,
    /// Whether the step probed the serving path (`serving.probe`): its
    /// result measured this machine, so it is not a reproducible one.
    pub probed: bool,
}

/// A step's request to register a model in the store's registry
/// (`register-model`); the pipeline records it with the step's end.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// The model's name in the registry.
    pub name: String,
    /// The input port the model is bound to.
    pub model_port: String,
    /// The metrics to register it with, a JSON object.
    pub metrics: serde_json::Value,
}

impl StepOutcome {
    /// The kinds of the outputs written, by port.
    pub fn output_kinds(&self, declared: &[Port]) -> BTreeMap<String, ArtifactKind> {
        declared
            .iter()
            .filter(|p| self.outputs.contains_key(&p.name))
            .map(|p| (p.name.clone(), p.kind))
            .collect()
    }
}

/// A duration for people: `850µs`, `12.3ms`, `1.24s` — how the CLI and
/// the conformance report print step times.
pub fn duration(d: std::time::Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary, and how many bytes are left out: what every message,
/// log line and preview that a step (or its data) can make long is cut to.
pub fn cut_text(text: &str, max: usize) -> (&str, usize) {
    if text.len() <= max {
        return (text, 0);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], text.len() - end)
}

/// Formats a byte count for people: `1.5 GiB`, `640 KiB`, `12 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Formats a duration for people: `250ms`, `2s`, `1.5s`, `10m`.
pub fn humantime(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

mod duration_ms {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1 << 30), "1 GiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(humantime(Duration::from_millis(250)), "250ms");
        assert_eq!(humantime(Duration::from_secs(600)), "10m");
        assert_eq!(humantime(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn only_plain_failures_and_crashes_are_retryable() {
        assert!(StepFailure::Failed("x".into()).is_retryable());
        assert!(StepFailure::Trap("x".into()).is_retryable());
        assert!(!StepFailure::InvalidInput("x".into()).is_retryable());
        assert!(!StepFailure::Rejected("x".into()).is_retryable());
        assert!(!StepFailure::TimeLimit(Duration::from_secs(1)).is_retryable());
    }
}
