//! Running a validated pipeline: loading its components, importing its data
//! into the store, running each step in the sandbox in dependency order,
//! storing every output content-addressed, and recording the run.

use crate::diagnostic::{Code, Diagnostics};
use crate::spec::{ComponentRef, DataKind, Source, Spec};
use crate::validate::{Plan, PlannedStep, validate};
use serde::Serialize;
use sluice_runtime::{
    ArtifactKind, Component, ComponentSource, Digest, InputArtifact, Invocation, Limits, LogLine,
    Manifest, Runtime, StepEvent, StepFailure, WIT_PACKAGE,
};
use sluice_store::ObjectStore;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A spec that parsed and validated, with its components loaded.
pub struct Prepared {
    /// The spec as written.
    pub spec: Spec,
    /// The validated plan.
    pub plan: Plan,
    /// Each distinct component the plan runs.
    pub components: HashMap<ComponentRef, Component>,
}

/// Parses, loads every component (reading its manifest) and validates the
/// spec at `path`. Components given by path are also put in `store`, so that
/// later specs can name them by digest.
pub fn prepare(
    path: &Path,
    runtime: &Runtime,
    store: Option<&ObjectStore>,
) -> Result<Prepared, Diagnostics> {
    let spec = Spec::load(path)?;
    let mut loaded: HashMap<ComponentRef, Result<(Component, Manifest), String>> = HashMap::new();
    for step in &spec.steps {
        if loaded.contains_key(&step.component) {
            continue;
        }
        let result = load_component(&step.component, runtime, store)
            .and_then(|c| c.describe().map(|m| (c, m)).map_err(|e| e.to_string()));
        loaded.insert(step.component.clone(), result);
    }
    let resolver = |r: &ComponentRef| match loaded.get(r) {
        Some(Ok((_, m))) => Ok(m.clone()),
        Some(Err(e)) => Err(e.clone()),
        None => Err(format!("component {r} was not loaded")),
    };
    let plan = validate(&spec, &resolver)?;
    let components = loaded
        .into_iter()
        .filter_map(|(r, c)| c.ok().map(|(c, _)| (r, c)))
        .collect();
    Ok(Prepared {
        spec,
        plan,
        components,
    })
}

fn load_component(
    r: &ComponentRef,
    runtime: &Runtime,
    store: Option<&ObjectStore>,
) -> Result<Component, String> {
    let source = match r {
        ComponentRef::Std(name) => ComponentSource::Std(name.clone()),
        ComponentRef::Path(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("could not read {}: {e}", path.display()))?;
            if let Some(store) = store {
                store.put(&bytes).map_err(|e| e.to_string())?;
            }
            ComponentSource::Bytes {
                name: path.display().to_string(),
                bytes,
            }
        }
        ComponentRef::Digest(hex) => {
            let digest: Digest = hex
                .parse()
                .map_err(|e: sluice_store::DigestParseError| e.to_string())?;
            let Some(store) = store else {
                return Err(format!(
                    "component {digest} can only be found in a store, and none is open"
                ));
            };
            let bytes = store.get(&digest).map_err(|e| {
                format!(
                    "{e}; a component enters the store when a pipeline runs it from its .wasm path"
                )
            })?;
            ComponentSource::Bytes {
                name: digest.to_string(),
                bytes,
            }
        }
    };
    runtime.load(&source).map_err(|e| e.to_string())
}

/// Receives what happens during a run, for progress displays.
pub trait Observer: Send + Sync {
    /// A data input was imported into the store.
    fn data_imported(&self, _name: &str, _digest: &Digest, _size: u64) {}
    /// A step is about to run.
    fn step_started(&self, _step: &str, _component: &str) {}
    /// A running step reported progress or logged.
    fn step_event(&self, _step: &str, _event: &StepEvent) {}
    /// A step finished (or was skipped).
    fn step_finished(&self, _report: &StepReport) {}
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
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Every step succeeded.
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
    /// Where the bytes are in the store.
    pub path: PathBuf,
}

/// What happened to one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step's name.
    pub name: String,
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
    /// contract version, params, input digests); seeds its randomness.
    pub step_key: Digest,
    /// Executions (1 + retries used).
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
    /// Its log.
    pub logs: Vec<LogLine>,
    /// What it printed to stdout.
    pub stdout: String,
    /// What it printed to stderr.
    pub stderr: String,
}

/// The record of a whole run, also written to `runs/RUN.json` in the store.
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
    /// The store's root folder.
    pub store: PathBuf,
    /// How it ended.
    pub state: RunState,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// Wall time.
    #[serde(serialize_with = "as_ms")]
    pub duration: Duration,
    /// The imported data inputs.
    pub data: Vec<DataReport>,
    /// Every step, in execution order.
    pub steps: Vec<StepReport>,
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

/// Why a run could not start or be recorded (step failures are not errors:
/// they are in the report).
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// A data file could not be read or parsed.
    #[error(transparent)]
    Data(Diagnostics),
    /// The store refused a write.
    #[error("artifact store: {0}")]
    Store(#[from] sluice_store::StoreError),
    /// The run record could not be written.
    #[error("writing the run record {path}: {source}")]
    Record {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// An artifact available to later steps of the run.
struct Available {
    input: InputArtifact,
    digest: Digest,
}

/// Runs every step of a prepared pipeline, storing outputs in `store`.
pub fn execute(
    prepared: &Prepared,
    store: &ObjectStore,
    observer: Arc<dyn Observer>,
) -> Result<RunReport, ExecuteError> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let run_id = new_run_id(started_at);
    let spec = &prepared.spec;

    let mut available: HashMap<Source, Available> = HashMap::new();
    let mut data = Vec::new();
    let mut problems = Vec::new();
    for input in &prepared.plan.data {
        match import_data(input, store) {
            Ok((artifact, digest, size)) => {
                observer.data_imported(&input.name, &digest, size);
                data.push(DataReport {
                    name: input.name.clone(),
                    path: input.path.clone(),
                    kind: input.kind.artifact_kind(),
                    digest,
                    size,
                });
                available.insert(
                    Source::Data(input.name.clone()),
                    Available {
                        input: artifact,
                        digest,
                    },
                );
            }
            Err(message) => problems.push(spec.diagnostic(Code::Io, input.span, message)),
        }
    }
    if !problems.is_empty() {
        return Err(ExecuteError::Data(Diagnostics(problems)));
    }

    let mut states: HashMap<String, StepState> = HashMap::new();
    let mut steps = Vec::new();
    for planned in &prepared.plan.steps {
        let component = &prepared.components[&planned.step.component];
        let report = run_step(
            planned,
            component,
            store,
            &mut available,
            &states,
            observer.clone(),
        )?;
        observer.step_finished(&report);
        states.insert(report.name.clone(), report.state);
        steps.push(report);
    }

    let state = if steps.iter().all(|s| s.state == StepState::Succeeded) {
        RunState::Succeeded
    } else {
        RunState::Failed
    };
    let report = RunReport {
        run_id,
        pipeline: prepared.plan.name.clone(),
        spec: spec.path.clone(),
        spec_digest: Digest::of(spec.source.as_bytes()),
        store: store.root().to_path_buf(),
        state,
        started_at: rfc3339(started_at),
        duration: started.elapsed(),
        data,
        steps,
    };
    record_run(store, &report)?;
    Ok(report)
}

fn import_data(
    input: &crate::spec::DataInput,
    store: &ObjectStore,
) -> Result<(InputArtifact, Digest, u64), String> {
    let bytes = std::fs::read(&input.path).map_err(|e| {
        format!(
            "could not read data input `{}` from {}: {e}",
            input.name,
            input.path.display()
        )
    })?;
    let digest = store.put(&bytes).map_err(|e| e.to_string())?;
    let size = bytes.len() as u64;
    let artifact = match input.kind {
        DataKind::File => InputArtifact::Bytes(bytes.into()),
        DataKind::Table => {
            InputArtifact::Table(sluice_runtime::table::from_parquet(bytes).map_err(|e| {
                format!(
                    "data input `{}` ({}) is not a readable Parquet table: {e}",
                    input.name,
                    input.path.display()
                )
            })?)
        }
    };
    Ok((artifact, digest, size))
}

/// The digest of everything that determines a step's result.
pub fn step_key(
    component: &Digest,
    params: &[(String, Value)],
    inputs: &BTreeMap<String, Digest>,
) -> Digest {
    let params_json = serde_json::to_string(
        &params
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_json()))
            .collect::<BTreeMap<_, _>>(),
    )
    .expect("params serialise");
    let mut parts: Vec<Vec<u8>> = vec![
        component.as_bytes().to_vec(),
        WIT_PACKAGE.as_bytes().to_vec(),
        params_json.into_bytes(),
    ];
    for (port, digest) in inputs {
        parts.push(port.as_bytes().to_vec());
        parts.push(digest.as_bytes().to_vec());
    }
    Digest::of_parts(parts.iter().map(Vec::as_slice))
}

use sluice_runtime::Value;

fn run_step(
    planned: &PlannedStep,
    component: &Component,
    store: &ObjectStore,
    available: &mut HashMap<Source, Available>,
    states: &HashMap<String, StepState>,
    observer: Arc<dyn Observer>,
) -> Result<StepReport, ExecuteError> {
    let name = planned.name().to_string();
    let mut report = StepReport {
        name: name.clone(),
        component: planned.step.component.to_string(),
        component_digest: component.digest(),
        state: StepState::Skipped,
        message: None,
        failure: None,
        step_key: component.digest(),
        attempts: 0,
        duration: Duration::ZERO,
        peak_memory: 0,
        outputs: Vec::new(),
        metrics: BTreeMap::new(),
        logs: Vec::new(),
        stdout: String::new(),
        stderr: String::new(),
    };

    let blocked: Vec<&str> = planned
        .inputs
        .iter()
        .filter_map(|i| match &i.source {
            Source::Step { step, .. } if states.get(step) != Some(&StepState::Succeeded) => {
                Some(step.as_str())
            }
            _ => None,
        })
        .collect();
    if !blocked.is_empty() {
        report.message = Some(format!(
            "skipped: upstream step `{}` did not succeed",
            blocked[0]
        ));
        return Ok(report);
    }

    let mut inputs = BTreeMap::new();
    let mut input_digests = BTreeMap::new();
    for i in &planned.inputs {
        let a = &available[&i.source];
        inputs.insert(i.port.clone(), a.input.clone());
        input_digests.insert(i.port.clone(), a.digest);
    }
    let key = step_key(&component.digest(), &planned.params, &input_digests);
    report.step_key = key;

    let limits = Limits {
        memory: planned.step.limits.memory.unwrap_or(Limits::DEFAULT_MEMORY),
        time: planned.step.limits.time.unwrap_or(Limits::DEFAULT_TIME),
        output: planned.step.limits.output.unwrap_or(Limits::DEFAULT_OUTPUT),
    };
    let events: sluice_runtime::EventSink = {
        let observer = observer.clone();
        let name = name.clone();
        Arc::new(move |e: StepEvent| observer.step_event(&name, &e))
    };
    let invocation = Invocation {
        params: planned.params.iter().cloned().collect(),
        inputs,
        outputs: planned.manifest.outputs.clone(),
        limits,
        seed: *key.as_bytes(),
        events: Some(events),
    };

    observer.step_started(&name, &report.component);
    let started = Instant::now();
    let outcome = loop {
        report.attempts += 1;
        let outcome = component.run(invocation.clone());
        match &outcome.result {
            Err(f) if f.is_retryable() && report.attempts <= planned.step.retries => continue,
            _ => break outcome,
        }
    };
    report.duration = started.elapsed();
    report.peak_memory = outcome.peak_memory;
    report.metrics = outcome.metrics.iter().cloned().collect();
    report.logs = outcome.logs;
    report.stdout = outcome.stdout;
    report.stderr = outcome.stderr;
    match outcome.result {
        Ok(()) => {
            // Bytes first: the record that names them is written after.
            for port in &planned.manifest.outputs {
                let artifact = &outcome.outputs[&port.name];
                let bytes = artifact.stored_bytes();
                let digest = store.put(bytes)?;
                report.outputs.push(OutputReport {
                    port: port.name.clone(),
                    kind: port.kind,
                    digest,
                    size: bytes.len() as u64,
                    path: store.path_of(&digest),
                });
                available.insert(
                    Source::Step {
                        step: name.clone(),
                        port: port.name.clone(),
                    },
                    Available {
                        input: artifact.to_input(),
                        digest,
                    },
                );
            }
            report.state = StepState::Succeeded;
        }
        Err(failure) => {
            report.state = StepState::Failed;
            report.message = Some(failure.to_string());
            report.failure = Some(failure);
        }
    }
    Ok(report)
}

fn record_run(store: &ObjectStore, report: &RunReport) -> Result<(), ExecuteError> {
    let dir = store.root().join("runs");
    let path = dir.join(format!("{}.json", report.run_id));
    let json = serde_json::to_vec_pretty(report).expect("reports serialise");
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".{}.tmp", report.run_id));
        std::fs::write(&tmp, &json)?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|source| ExecuteError::Record { path, source })
}

/// `YYYYMMDD-HHMMSS-xxxxxx`: sortable by time, unique by its suffix.
fn new_run_id(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let (y, mo, d, h, mi, s) = civil(since.as_secs());
    let salt = Digest::of_parts([
        &since.as_nanos().to_le_bytes()[..],
        &std::process::id().to_le_bytes()[..],
    ]);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{}", salt.short(6))
}

/// RFC 3339 UTC timestamp with milliseconds.
pub fn rfc3339(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let (y, mo, d, h, mi, s) = civil(since.as_secs());
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        since.subsec_millis()
    )
}

/// Seconds since the Unix epoch to (year, month, day, hour, minute, second)
/// in UTC (Howard Hinnant's days-to-civil algorithm).
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        // 2026-11-25T14:15:57Z
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_616_157);
        assert_eq!(rfc3339(t), "2026-11-25T14:15:57.000Z");
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
        let b = new_run_id(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000));
        assert!(a < b);
        assert_eq!(a.len(), "19700101-001640-abcdef".len());
    }

    #[test]
    fn step_keys_change_with_each_ingredient() {
        let c = Digest::of(b"component");
        let p = vec![("bins".to_string(), Value::Integer(10))];
        let mut i = BTreeMap::new();
        i.insert("data".to_string(), Digest::of(b"table"));
        let base = step_key(&c, &p, &i);
        assert_eq!(base, step_key(&c, &p, &i));
        assert_ne!(base, step_key(&Digest::of(b"other"), &p, &i));
        assert_ne!(
            base,
            step_key(&c, &[("bins".to_string(), Value::Integer(11))], &i)
        );
        let mut i2 = i.clone();
        i2.insert("data".to_string(), Digest::of(b"table2"));
        assert_ne!(base, step_key(&c, &p, &i2));
    }
}
