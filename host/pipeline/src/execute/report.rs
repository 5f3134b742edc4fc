//! What a run tells its caller: progress as it happens ([`Observer`]) and
//! the record of each step and of the whole run when it ends.

use serde::Serialize;
use sluice_runtime::{ArtifactKind, Digest, LogLine, StepEvent, StepFailure};
use sluice_store::metadata::ExecutionState;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Receives what happens during a run, for progress displays.
pub trait Observer: Send + Sync {
    /// A data input was imported into the store.
    fn data_imported(&self, _name: &str, _digest: &Digest, _size: u64) {}
    /// A step is about to run.
    fn step_started(&self, _step: &str, _component: &str) {}
    /// A running step reported progress or logged.
    fn step_event(&self, _step: &str, _event: &StepEvent) {}
    /// A step finished, was served from the cache, or was skipped.
    fn step_finished(&self, _report: &StepReport) {}
    /// A step waits: run `holder` (in this process or another, on this
    /// machine or another sharing the store) is computing the same step
    /// with the same cache key, whose outputs it will reuse. Said once.
    fn step_waiting(&self, _step: &str, _holder: &str) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// How a step's execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    /// It ran and produced all its outputs.
    Succeeded,
    /// It did not run: an earlier identical execution's outputs were reused.
    Cached,
    /// It ran and failed (the report says why).
    Failed,
    /// It did not run because a step it depends on did not succeed.
    Skipped,
}

impl StepState {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Succeeded => "succeeded",
            StepState::Cached => "cached",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        }
    }

    /// Whether its outputs are available to later steps.
    pub fn is_ok(self) -> bool {
        matches!(self, StepState::Succeeded | StepState::Cached)
    }

    pub(crate) fn recorded(self) -> ExecutionState {
        match self {
            StepState::Succeeded => ExecutionState::Succeeded,
            StepState::Cached => ExecutionState::Cached,
            StepState::Failed => ExecutionState::Failed,
            StepState::Skipped => ExecutionState::Skipped,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Every step succeeded or was cached.
    Succeeded,
    /// At least one step failed or was skipped.
    Failed,
}

/// A data input as imported.
#[derive(Debug, Clone, Serialize)]
pub struct DataReport {
    /// Its name in `[data]`.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// The artifact kind it became.
    pub kind: ArtifactKind,
    /// SHA-256 of its bytes.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

/// One output a step produced.
#[derive(Debug, Clone, Serialize)]
pub struct OutputReport {
    /// The output port.
    pub port: String,
    /// What it holds.
    pub kind: ArtifactKind,
    /// SHA-256 of the stored bytes.
    pub digest: Digest,
    /// Size of the stored bytes.
    pub size: u64,
    /// Where the bytes are in the store: a file path, or a URL.
    pub path: String,
}

/// The execution whose outputs a cached step reused.
#[derive(Debug, Clone, Serialize)]
pub struct CachedFrom {
    /// Its run.
    pub run_id: String,
    /// Its execution id.
    pub execution_id: i64,
}

/// What happened to one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step's name.
    pub name: String,
    /// The execution's id in the metadata database.
    pub execution_id: i64,
    /// The component as named in the spec.
    pub component: String,
    /// SHA-256 of the component.
    pub component_digest: Digest,
    /// How it ended.
    pub state: StepState,
    /// Why it failed or was skipped, in one line.
    pub message: Option<String>,
    /// The structured failure, if it ran and failed.
    pub failure: Option<StepFailure>,
    /// Digest of everything that determines the step's result (component,
    /// contract version, params, input digests); its cache key, and the
    /// seed of its randomness.
    pub cache_key: Digest,
    /// For cached steps: whose outputs were reused.
    pub cached_from: Option<CachedFrom>,
    /// Executions (1 + retries used); 0 when cached or skipped.
    pub attempts: u32,
    /// Wall time, all attempts included.
    #[serde(serialize_with = "as_ms")]
    pub duration: Duration,
    /// Peak linear memory of the last attempt, in bytes.
    pub peak_memory: u64,
    /// Its outputs, in port order.
    pub outputs: Vec<OutputReport>,
    /// Metrics it recorded.
    pub metrics: BTreeMap<String, f64>,
    /// Names of the models it registered in the store's registry.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registered: Vec<String>,
    /// Its log.
    pub logs: Vec<LogLine>,
    /// What it printed to stdout.
    pub stdout: String,
    /// What it printed to stderr.
    pub stderr: String,
}

/// The record of a whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Unique id: UTC time plus a random suffix.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The spec file.
    pub spec: PathBuf,
    /// SHA-256 of the spec's text.
    pub spec_digest: Digest,
    /// Where the store's objects are: a folder, or a URL.
    pub store: String,
    /// How it ended.
    pub state: RunState,
    /// The run this one resumed.
    pub resumed_from: Option<String>,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// Wall time.
    #[serde(serialize_with = "as_ms")]
    pub duration: Duration,
    /// The most memory the process has had resident so far, in bytes
    /// (Linux's VmHWM; `None` where the system does not say): with one
    /// run per process, the run's peak, host-held tables included.
    pub peak_rss: Option<u64>,
    /// The imported data inputs.
    pub data: Vec<DataReport>,
    /// Every step, in the order it finished.
    pub steps: Vec<StepReport>,
}

/// The process's peak resident memory so far, in bytes, on Linux.
pub(crate) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

impl RunReport {
    /// The report of step `name`.
    pub fn step(&self, name: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.name == name)
    }
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}
