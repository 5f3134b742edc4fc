//! Running a validated pipeline: loading its components, importing its data
//! into the store, running steps in parallel as their inputs become ready
//! (reusing cached results where the cache key matches), storing every
//! output content-addressed, and recording everything in the metadata
//! database as it happens.

use crate::diagnostic::{Code, Diagnostics};
use crate::spec::{ComponentRef, DataKind, Source, Spec};
use crate::validate::{Plan, PlannedStep, validate};
use serde::Serialize;
use sluice_runtime::{
    ArtifactKind, Component, ComponentSource, Digest, InputArtifact, Invocation, Limits, LogLine,
    Manifest, ModelArtifact, OutputArtifact, Runtime, StepEvent, StepFailure, Value, WIT_PACKAGE,
};
use sluice_store::metadata::{ExecutionRecord, ExecutionState, Finished, NewExecution, RunRecord};
use sluice_store::{NewModel, ObjectStore, Store};
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
    /// A step finished, was served from the cache, or was skipped.
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

    fn recorded(self) -> ExecutionState {
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
    /// The imported data inputs.
    pub data: Vec<DataReport>,
    /// Every step, in the order it finished.
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
    /// The object store refused a read or write.
    #[error("artifact store: {0}")]
    Objects(#[from] sluice_store::StoreError),
    /// The metadata database failed.
    #[error(transparent)]
    Metadata(#[from] sluice_store::MetadataError),
    /// The store could not be opened or locked.
    #[error(transparent)]
    Open(#[from] sluice_store::OpenError),
    /// `--resume` cannot be honoured.
    #[error("{0}")]
    Resume(String),
    /// A stored artifact a step needs cannot be decoded.
    #[error("{0}")]
    Artifact(String),
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Most steps running at once.
    pub jobs: usize,
    /// Whether cached results may be reused (`--no-cache` turns it off).
    pub use_cache: bool,
    /// The run being resumed: its succeeded steps are reused as they are.
    pub resume: Option<RunRecord>,
    /// What started the run (`manual`, `resume`, …).
    pub trigger: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            use_cache: true,
            resume: None,
            trigger: "manual".into(),
        }
    }
}

/// An artifact available to later steps of the run; decoded on first use
/// (a fully cached run decodes nothing).
struct Available {
    digest: Digest,
    kind: ArtifactKind,
    loaded: Option<InputArtifact>,
}

/// What a finished step task hands back to the scheduler.
struct Ran {
    index: usize,
    execution_id: i64,
    outcome: sluice_runtime::StepOutcome,
    attempts: u32,
    duration: Duration,
}

/// Runs a prepared pipeline, storing outputs and metadata in `store`.
pub async fn execute(
    prepared: &Prepared,
    store: Arc<Store>,
    options: &RunOptions,
    observer: Arc<dyn Observer>,
) -> Result<RunReport, ExecuteError> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let run_id = new_run_id(started_at);
    let spec = &prepared.spec;
    let spec_digest = Digest::of(spec.source.as_bytes());
    let now = || rfc3339(SystemTime::now());

    let resume_from: HashMap<String, ExecutionRecord> = match &options.resume {
        Some(run) => {
            if run.spec_digest != spec_digest.to_hex() {
                return Err(ExecuteError::Resume(format!(
                    "the spec {} changed since run {} (its digest was {}, now {}); resuming would not reproduce that run — start a new one with `sluice run`",
                    spec.path.display(),
                    run.id,
                    &run.spec_digest[..12],
                    spec_digest.short(12)
                )));
            }
            store
                .metadata
                .executions(&run.id)?
                .into_iter()
                .filter(|e| matches!(e.state, ExecutionState::Succeeded | ExecutionState::Cached))
                .map(|e| (e.step.clone(), e))
                .collect()
        }
        None => HashMap::new(),
    };

    let _lock = store.lock_run(&run_id)?;
    let spec_path = spec
        .path
        .canonicalize()
        .unwrap_or_else(|_| spec.path.clone());
    store.metadata.start_run(
        &run_id,
        &prepared.plan.name,
        &spec_path.display().to_string(),
        &spec_digest,
        &options.trigger,
        &rfc3339(started_at),
        options.resume.as_ref().map(|r| r.id.as_str()),
    )?;
    for (r, c) in &prepared.components {
        store
            .metadata
            .record_component(&c.digest(), &r.to_string(), c.size() as u64, &now())?;
    }

    let mut available: HashMap<Source, Available> = HashMap::new();
    let mut absent_models: Vec<String> = Vec::new();
    let mut data = Vec::new();
    let mut problems = Vec::new();
    for input in &prepared.plan.data {
        if input.kind == DataKind::Model {
            match import_model(input, &store)? {
                Some((artifact, digest, size)) => {
                    observer.data_imported(&input.name, &digest, size);
                    data.push(DataReport {
                        name: input.name.clone(),
                        path: input.path.clone(),
                        kind: ArtifactKind::Model,
                        digest,
                        size,
                    });
                    available.insert(
                        Source::Data(input.name.clone()),
                        Available {
                            digest,
                            kind: ArtifactKind::Model,
                            loaded: Some(artifact),
                        },
                    );
                }
                None => absent_models.push(input.name.clone()),
            }
            continue;
        }
        match import_data(input, &store.objects) {
            Ok((artifact, digest, size)) => {
                let kind = input.kind.artifact_kind();
                store.metadata.record_import(
                    &run_id,
                    &input.name,
                    &input.path.display().to_string(),
                    &digest,
                    kind.as_str(),
                    size,
                    &now(),
                )?;
                observer.data_imported(&input.name, &digest, size);
                data.push(DataReport {
                    name: input.name.clone(),
                    path: input.path.clone(),
                    kind,
                    digest,
                    size,
                });
                available.insert(
                    Source::Data(input.name.clone()),
                    Available {
                        digest,
                        kind,
                        loaded: Some(artifact),
                    },
                );
            }
            Err(message) => problems.push(spec.diagnostic(Code::Io, input.span, message)),
        }
    }
    if !problems.is_empty() {
        store
            .metadata
            .finish_run(&run_id, sluice_store::metadata::RunState::Failed, &now())?;
        return Err(ExecuteError::Data(Diagnostics(problems)));
    }

    let steps = &prepared.plan.steps;
    let mut states: HashMap<String, StepState> = HashMap::new();
    let mut pending: Vec<usize> = (0..steps.len()).collect();
    let mut reports: Vec<StepReport> = Vec::new();
    let mut partial: HashMap<usize, StepReport> = HashMap::new();
    let mut running: tokio::task::JoinSet<Ran> = tokio::task::JoinSet::new();
    let jobs = options.jobs.max(1);

    loop {
        // Start (or settle without running) every step whose inputs are ready.
        let mut i = 0;
        while i < pending.len() {
            let index = pending[i];
            let planned = &steps[index];
            let deps: Vec<&str> = step_dependencies(planned);
            if deps.iter().any(|d| !states.contains_key(*d)) {
                i += 1;
                continue;
            }
            let component = &prepared.components[&planned.step.component];
            let inputs: Vec<(String, Digest, String)> = planned
                .inputs
                .iter()
                .filter_map(|b| {
                    available
                        .get(&b.source)
                        .map(|a| (b.port.clone(), a.digest, b.source.to_string()))
                })
                .collect();
            let input_digests: BTreeMap<String, Digest> =
                inputs.iter().map(|(p, d, _)| (p.clone(), *d)).collect();
            let key_parts = key_parts(&component.digest(), &planned.params, &input_digests);
            let key = key_of(&key_parts);
            let params_json = params_json(&planned.params);
            let new = NewExecution {
                run_id: &run_id,
                step: planned.name(),
                component: &planned.step.component.to_string(),
                component_digest: component.digest(),
                cache_key: key,
                key_parts: &key_parts,
                params: &params_json,
                inputs: &inputs,
                started_at: &now(),
            };
            let mut report = StepReport {
                name: planned.name().to_string(),
                execution_id: 0,
                component: planned.step.component.to_string(),
                component_digest: component.digest(),
                state: StepState::Skipped,
                message: None,
                failure: None,
                cache_key: key,
                cached_from: None,
                attempts: 0,
                duration: Duration::ZERO,
                peak_memory: 0,
                outputs: Vec::new(),
                metrics: BTreeMap::new(),
                registered: Vec::new(),
                logs: Vec::new(),
                stdout: String::new(),
                stderr: String::new(),
            };

            let missing_model = planned.inputs.iter().find(|b| {
                matches!(&b.source, Source::Data(name) if absent_models.contains(name))
                    && planned.manifest.input(&b.port).is_some_and(|p| !p.optional)
            });
            if let Some(b) = missing_model {
                pending.remove(i);
                let reference = prepared
                    .spec
                    .data_input(match &b.source {
                        Source::Data(name) => name,
                        Source::Step { .. } => unreachable!("matched a data source"),
                    })
                    .map_or(String::new(), |d| d.raw_path.clone());
                let reason = format!(
                    "failed: input `{}` is {}, which names model `{reference}`, but the registry has no such model yet; bind it to an optional port, or register a model first",
                    b.port, b.source
                );
                report.execution_id = store.metadata.record_skipped(&new, &reason)?;
                report.state = StepState::Failed;
                report.message = Some(reason);
                states.insert(report.name.clone(), StepState::Failed);
                observer.step_finished(&report);
                reports.push(report);
                continue;
            }

            if let Some(blocked) = deps.iter().find(|d| !states[**d].is_ok()) {
                pending.remove(i);
                let reason = format!("skipped: upstream step `{blocked}` did not succeed");
                report.execution_id = store.metadata.record_skipped(&new, &reason)?;
                report.message = Some(reason);
                states.insert(report.name.clone(), StepState::Skipped);
                observer.step_finished(&report);
                reports.push(report);
                continue;
            }

            if let Some(original) = reusable(&store, planned, &key, options, &resume_from)? {
                pending.remove(i);
                let execution_id = store.metadata.start_execution(&new)?;
                let outputs: Vec<(String, Digest, String, u64)> = planned
                    .manifest
                    .outputs
                    .iter()
                    .map(|p| {
                        let d = original.output(&p.name).expect("reusable checked outputs");
                        let size = store.objects.size_of(&d).unwrap_or(0);
                        (p.name.clone(), d, p.kind.as_str().to_string(), size)
                    })
                    .collect();
                store.metadata.finish_execution(
                    execution_id,
                    &Finished {
                        state: ExecutionState::Cached,
                        ended_at: &now(),
                        duration_ms: 0.0,
                        attempts: 0,
                        error: None,
                        failure: None,
                        metrics: original.metrics.clone(),
                        report: None,
                        outputs: &outputs,
                        cached_from: Some(original.id),
                        models: &[],
                    },
                )?;
                report.execution_id = execution_id;
                report.state = StepState::Cached;
                report.cached_from = Some(CachedFrom {
                    run_id: original.run_id.clone(),
                    execution_id: original.id,
                });
                report.metrics = metrics_map(&original.metrics);
                for (port, digest, _, size) in &outputs {
                    let kind = planned.manifest.output(port).map(|p| p.kind).unwrap();
                    report.outputs.push(OutputReport {
                        port: port.clone(),
                        kind,
                        digest: *digest,
                        size: *size,
                        path: store.objects.location(digest),
                    });
                    available.insert(
                        Source::Step {
                            step: report.name.clone(),
                            port: port.clone(),
                        },
                        Available {
                            digest: *digest,
                            kind,
                            loaded: None,
                        },
                    );
                }
                states.insert(report.name.clone(), StepState::Cached);
                observer.step_finished(&report);
                reports.push(report);
                continue;
            }

            if running.len() >= jobs {
                break;
            }
            pending.remove(i);
            let mut step_inputs = BTreeMap::new();
            for b in &planned.inputs {
                let Some(a) = available.get_mut(&b.source) else {
                    // An optional port bound to a registry model that does
                    // not exist yet stays unbound.
                    continue;
                };
                if a.loaded.is_none() {
                    a.loaded = Some(load_artifact(&store.objects, &a.digest, a.kind)?);
                }
                step_inputs.insert(b.port.clone(), a.loaded.clone().unwrap());
            }
            let execution_id = store.metadata.start_execution(&new)?;
            report.execution_id = execution_id;
            partial.insert(index, report);

            let limits = Limits {
                memory: planned.step.limits.memory.unwrap_or(Limits::DEFAULT_MEMORY),
                time: planned.step.limits.time.unwrap_or(Limits::DEFAULT_TIME),
                output: planned.step.limits.output.unwrap_or(Limits::DEFAULT_OUTPUT),
            };
            let name = planned.name().to_string();
            let events: sluice_runtime::EventSink = {
                let observer = observer.clone();
                let name = name.clone();
                Arc::new(move |e: StepEvent| observer.step_event(&name, &e))
            };
            let invocation = Invocation {
                params: planned.params.iter().cloned().collect(),
                inputs: step_inputs,
                outputs: planned.manifest.outputs.clone(),
                limits,
                seed: *key.as_bytes(),
                events: Some(events),
            };
            let component = component.clone();
            let retries = planned.step.retries;
            observer.step_started(&name, &planned.step.component.to_string());
            running.spawn(async move {
                let started = Instant::now();
                let mut attempts = 0;
                let outcome = loop {
                    attempts += 1;
                    let outcome = component.run_async(invocation.clone()).await;
                    match &outcome.result {
                        Err(f) if f.is_retryable() && attempts <= retries => continue,
                        _ => break outcome,
                    }
                };
                Ran {
                    index,
                    execution_id,
                    outcome,
                    attempts,
                    duration: started.elapsed(),
                }
            });
        }

        let Some(joined) = running.join_next().await else {
            break;
        };
        let ran = joined.expect("step tasks do not panic");
        let planned = &steps[ran.index];
        let mut report = partial
            .remove(&ran.index)
            .expect("started steps have a report");
        let state = record_outcome(&store, &run_id, planned, ran, &mut report, &mut available)?;
        states.insert(report.name.clone(), state);
        observer.step_finished(&report);
        reports.push(report);
    }
    debug_assert!(pending.is_empty(), "every step settles");

    let state = if reports.iter().all(|s| s.state.is_ok()) {
        RunState::Succeeded
    } else {
        RunState::Failed
    };
    store.metadata.finish_run(
        &run_id,
        match state {
            RunState::Succeeded => sluice_store::metadata::RunState::Succeeded,
            RunState::Failed => sluice_store::metadata::RunState::Failed,
        },
        &now(),
    )?;
    Ok(RunReport {
        run_id,
        pipeline: prepared.plan.name.clone(),
        spec: spec.path.clone(),
        spec_digest,
        store: store.objects.location_root(),
        state,
        resumed_from: options.resume.as_ref().map(|r| r.id.clone()),
        started_at: rfc3339(started_at),
        duration: started.elapsed(),
        data,
        steps: reports,
    })
}

/// The steps whose outputs `planned` consumes.
fn step_dependencies(planned: &PlannedStep) -> Vec<&str> {
    planned
        .inputs
        .iter()
        .filter_map(|i| match &i.source {
            Source::Step { step, .. } => Some(step.as_str()),
            Source::Data(_) => None,
        })
        .collect()
}

/// The execution whose outputs this step may reuse: the resumed run's, or
/// any earlier execution with the same cache key — provided every output is
/// still in the object store.
fn reusable(
    store: &Store,
    planned: &PlannedStep,
    key: &Digest,
    options: &RunOptions,
    resume_from: &HashMap<String, ExecutionRecord>,
) -> Result<Option<ExecutionRecord>, ExecuteError> {
    let candidate = match resume_from.get(planned.name()) {
        Some(e) if e.cache_key == *key => Some(e.clone()),
        _ if options.use_cache && planned.step.cache => store.metadata.find_cached(key)?,
        _ => None,
    };
    Ok(candidate.filter(|e| {
        planned.manifest.outputs.iter().all(|p| {
            e.output(&p.name)
                .is_some_and(|d| store.objects.contains(&d))
        })
    }))
}

/// Stores a finished step's outputs (bytes first), then records the
/// execution's end and its output events in one transaction.
fn record_outcome(
    store: &Store,
    run_id: &str,
    planned: &PlannedStep,
    ran: Ran,
    report: &mut StepReport,
    available: &mut HashMap<Source, Available>,
) -> Result<StepState, ExecuteError> {
    let outcome = ran.outcome;
    let models: Vec<NewModel> = outcome
        .registrations
        .iter()
        .filter_map(|r| {
            let binding = planned.inputs.iter().find(|b| b.port == r.model_port)?;
            let artifact = available.get(&binding.source)?.digest;
            Some(NewModel {
                name: r.name.clone(),
                artifact,
                metrics: r.metrics.clone(),
            })
        })
        .collect();
    report.registered = models.iter().map(|m| m.name.clone()).collect();
    report.attempts = ran.attempts;
    report.duration = ran.duration;
    report.peak_memory = outcome.peak_memory;
    report.metrics = outcome.metrics.iter().cloned().collect();
    report.logs = outcome.logs;
    report.stdout = outcome.stdout;
    report.stderr = outcome.stderr;
    let mut outputs = Vec::new();
    match outcome.result {
        Ok(()) => {
            for port in &planned.manifest.outputs {
                let artifact = &outcome.outputs[&port.name];
                let (digest, size) = match artifact {
                    // The ONNX bytes first, then the card that names them.
                    OutputArtifact::Model(m) => {
                        // The card records the execution that made the model.
                        let mut made_by = serde_json::Map::new();
                        made_by.insert(
                            "made_by".into(),
                            serde_json::json!({
                                "run": run_id,
                                "step": report.name,
                                "execution": ran.execution_id,
                                "component": report.component,
                            }),
                        );
                        let m = m.annotated(made_by);
                        let onnx = store.objects.put(m.onnx())?;
                        let card = m.stored_card(&onnx);
                        (store.objects.put(card.as_bytes())?, card.len() as u64)
                    }
                    other => {
                        let bytes = other.stored_bytes();
                        (store.objects.put(bytes)?, bytes.len() as u64)
                    }
                };
                outputs.push((
                    port.name.clone(),
                    digest,
                    port.kind.as_str().to_string(),
                    size,
                ));
                report.outputs.push(OutputReport {
                    port: port.name.clone(),
                    kind: port.kind,
                    digest,
                    size,
                    path: store.objects.location(&digest),
                });
                available.insert(
                    Source::Step {
                        step: report.name.clone(),
                        port: port.name.clone(),
                    },
                    Available {
                        digest,
                        kind: port.kind,
                        loaded: Some(artifact.to_input()),
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
    let detail = serde_json::json!({
        "logs": report.logs,
        "stdout": report.stdout,
        "stderr": report.stderr,
        "peak_memory": report.peak_memory,
    });
    store.metadata.finish_execution(
        ran.execution_id,
        &Finished {
            state: report.state.recorded(),
            ended_at: &rfc3339(SystemTime::now()),
            duration_ms: report.duration.as_secs_f64() * 1000.0,
            attempts: report.attempts,
            error: report.message.as_deref(),
            failure: report
                .failure
                .as_ref()
                .map(|f| serde_json::to_value(f).unwrap()),
            metrics: serde_json::to_value(&report.metrics).unwrap(),
            report: Some(detail),
            outputs: &outputs,
            cached_from: None,
            models: if report.state == StepState::Succeeded {
                &models
            } else {
                &[]
            },
        },
    )?;
    Ok(report.state)
}

/// Reads an artifact from the object store and decodes it for a step.
fn load_artifact(
    objects: &ObjectStore,
    digest: &Digest,
    kind: ArtifactKind,
) -> Result<InputArtifact, ExecuteError> {
    let bytes = objects.get(digest)?;
    Ok(match kind {
        ArtifactKind::Table => {
            InputArtifact::Table(sluice_runtime::table::from_parquet(bytes).map_err(|e| {
                ExecuteError::Artifact(format!("stored table {digest} cannot be read: {e}"))
            })?)
        }
        k if k.is_document() => {
            InputArtifact::Document(String::from_utf8_lossy(&bytes).into_owned())
        }
        ArtifactKind::Model => InputArtifact::Model(Arc::new(load_model(objects, digest, &bytes)?)),
        _ => InputArtifact::Bytes(bytes.into()),
    })
}

/// A stored model: its card (`card`, the artifact `digest`) and the ONNX
/// bytes the card names.
fn load_model(
    objects: &ObjectStore,
    digest: &Digest,
    card: &[u8],
) -> Result<ModelArtifact, ExecuteError> {
    ModelArtifact::from_stored(card, |onnx| {
        objects.get(onnx).map(Into::into).map_err(|e| e.to_string())
    })
    .map_err(|e| ExecuteError::Artifact(format!("stored model {digest} cannot be read: {e}")))
}

/// Resolves a `[data]` input that names a registry model; `None` when the
/// registry has no such model (yet).
fn import_model(
    input: &crate::spec::DataInput,
    store: &Store,
) -> Result<Option<(InputArtifact, Digest, u64)>, ExecuteError> {
    let reference: sluice_store::ModelRef =
        input
            .raw_path
            .parse()
            .map_err(|e: sluice_store::registry::ModelRefError| {
                ExecuteError::Artifact(e.to_string())
            })?;
    let Some(version) = store.metadata.resolve_model(&reference)? else {
        return Ok(None);
    };
    let card = store.objects.get(&version.artifact)?;
    let model = load_model(&store.objects, &version.artifact, &card)?;
    Ok(Some((
        InputArtifact::Model(Arc::new(model)),
        version.artifact,
        card.len() as u64,
    )))
}

fn metrics_map(v: &serde_json::Value) -> BTreeMap<String, f64> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                .collect()
        })
        .unwrap_or_default()
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
        DataKind::Model => unreachable!("registry models are resolved by import_model"),
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

/// Params as a JSON object, keys sorted: their canonical form.
fn params_json(params: &[(String, Value)]) -> serde_json::Value {
    serde_json::Value::Object(
        params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
    )
}

/// Versions of the native backends steps may call; part of every cache key
/// so that a change of backend invalidates results. (No backend yet.)
const BACKENDS: &[(&str, &str)] = &[];

/// The ingredients of a cache key, kept with the execution so that a later
/// run can say which one changed.
pub fn key_parts(
    component: &Digest,
    params: &[(String, Value)],
    inputs: &BTreeMap<String, Digest>,
) -> serde_json::Value {
    serde_json::json!({
        "component": component.to_hex(),
        "wit": WIT_PACKAGE,
        "params": params_json(params),
        "inputs": inputs.iter().map(|(p, d)| (p.clone(), serde_json::Value::String(d.to_hex()))).collect::<serde_json::Map<_, _>>(),
        "backends": BACKENDS.iter().map(|(n, v)| (n.to_string(), serde_json::Value::String(v.to_string()))).collect::<serde_json::Map<_, _>>(),
    })
}

/// The cache key of a step: SHA-256 over its key parts in canonical form
/// (component digest, contract version, params, input digests by port,
/// backend versions).
pub fn step_key(
    component: &Digest,
    params: &[(String, Value)],
    inputs: &BTreeMap<String, Digest>,
) -> Digest {
    key_of(&key_parts(component, params, inputs))
}

/// The cache key of already computed key parts.
fn key_of(parts: &serde_json::Value) -> Digest {
    // serde_json maps are sorted by key (no `preserve_order`), so the text is canonical.
    Digest::of(parts.to_string().as_bytes())
}

/// Why a step ran (or did not), compared with the previous execution of
/// the same step: one line per difference in its cache key.
pub fn explain(current: &ExecutionRecord, previous: Option<&ExecutionRecord>) -> Vec<String> {
    if current.state == ExecutionState::Cached {
        return vec![format!(
            "cache hit: reused execution #{} (same component, params and inputs)",
            current.cached_from.unwrap_or_default()
        )];
    }
    if current.state == ExecutionState::Skipped {
        return vec![current.error.clone().unwrap_or_else(|| "skipped".into())];
    }
    let Some(prev) = previous else {
        return vec!["ran: first execution of this step in this store".into()];
    };
    let (a, b) = (&prev.key_parts, &current.key_parts);
    let mut why = Vec::new();
    if a["component"] != b["component"] {
        why.push(format!(
            "component changed: {} → {}",
            short(&a["component"]),
            short(&b["component"])
        ));
    }
    if a["wit"] != b["wit"] {
        why.push(format!(
            "contract version changed: {} → {}",
            a["wit"], b["wit"]
        ));
    }
    diff_maps(&a["params"], &b["params"], "param", &mut why, |v| {
        v.to_string()
    });
    diff_maps(&a["inputs"], &b["inputs"], "input", &mut why, short);
    diff_maps(&a["backends"], &b["backends"], "backend", &mut why, |v| {
        v.to_string()
    });
    if why.is_empty() {
        why.push(match prev.state {
            ExecutionState::Failed => "ran: the previous execution with this key failed".into(),
            _ => "ran: the cache was not used (--no-cache, `cache = false`, or the reused outputs were gone)".into(),
        });
    } else {
        for w in &mut why {
            w.insert_str(0, "ran: ");
        }
    }
    why
}

fn short(v: &serde_json::Value) -> String {
    v.as_str()
        .map(|s| s[..12.min(s.len())].to_string())
        .unwrap_or_else(|| "none".into())
}

fn diff_maps(
    a: &serde_json::Value,
    b: &serde_json::Value,
    what: &str,
    out: &mut Vec<String>,
    show: impl Fn(&serde_json::Value) -> String,
) {
    let empty = serde_json::Map::new();
    let a = a.as_object().unwrap_or(&empty);
    let b = b.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x != y => {
                out.push(format!("{what} `{k}` changed: {} → {}", show(x), show(y)))
            }
            (None, Some(y)) => out.push(format!("{what} `{k}` added: {}", show(y))),
            (Some(_), None) => out.push(format!("{what} `{k}` removed")),
            _ => {}
        }
    }
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
pub fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
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
