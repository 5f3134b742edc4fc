//! The executor of one planned step against a store: given the step's
//! resolved inputs it computes the cache key, reuses an earlier execution
//! when one matches, otherwise runs the component (with the step's retries)
//! and stores its outputs and the execution's record.
//!
//! It knows nothing of the rest of the run — no DAG, no other steps, no
//! concurrency — so the same unit serves the local scheduler
//! ([`super::scheduler`]), a task of a cluster engine, or a device.

use super::ExecuteError;
use super::artifacts::load_artifact;
use super::cache_key::{key_of, key_parts, params_json};
use super::report::{CachedFrom, Observer, OutputReport, StepReport, StepState};
use crate::spec::Limits as SpecLimits;
use crate::validate::PlannedStep;
use sluice_runtime::ClockMode;
use sluice_runtime::{
    ArtifactKind, Component, Digest, InputArtifact, Invocation, Limits, ModelArtifact,
    OutputArtifact, Runtime, ServingProbe, StepEvent, StepFailure, StepOutcome,
};
use sluice_store::lease::{cache_lease, lease_ttl};
use sluice_store::metadata::{ExecutionRecord, ExecutionState, Finished, NewExecution};
use sluice_store::{NewModel, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One input of a step, resolved to an artifact of the run.
#[derive(Debug, Clone)]
pub struct ResolvedInput {
    /// The step's input port.
    pub port: String,
    /// Where it comes from, as the spec names it (`data.raw`, `split.train`).
    pub source: String,
    /// The artifact's digest.
    pub digest: Digest,
    /// What it holds.
    pub kind: ArtifactKind,
}

/// A step made ready to settle: its inputs, cache key and canonical params.
pub struct StepJob<'p> {
    /// The planned step (spec, manifest, resolved params).
    pub planned: &'p PlannedStep,
    /// The component it runs, once loaded: a step reused from the cache
    /// needs only its digest (see [`StepJob::unloaded`]).
    component: Option<Component>,
    component_digest: Digest,
    component_size: u64,
    /// Its bound inputs (an optional port left unbound is absent).
    pub inputs: Vec<ResolvedInput>,
    /// The cache key; also the seed of the step's randomness.
    pub key: Digest,
    key_parts: serde_json::Value,
    params: serde_json::Value,
    edges: Vec<(String, Digest, String)>,
    component_label: String,
}

impl<'p> StepJob<'p> {
    /// Resolves the key of `planned` running `component` on `inputs`.
    pub fn new(
        planned: &'p PlannedStep,
        component: &Component,
        inputs: Vec<ResolvedInput>,
    ) -> Self {
        Self::unloaded(planned, component.digest(), component.size() as u64, inputs)
            .with_component(component.clone())
    }

    /// The job of `planned` running the component with digest
    /// `component_digest` (of `component_size` bytes) on `inputs`, without
    /// the component loaded: enough to find the step's result in the cache
    /// and record its reuse. [`StepJob::with_component`] before running it.
    pub fn unloaded(
        planned: &'p PlannedStep,
        component_digest: Digest,
        component_size: u64,
        inputs: Vec<ResolvedInput>,
    ) -> Self {
        let digests: BTreeMap<String, Digest> =
            inputs.iter().map(|i| (i.port.clone(), i.digest)).collect();
        let mut key_parts = key_parts(&component_digest, &planned.params, &digests);
        if planned.step.clock == ClockMode::Real {
            // Recorded with the execution, and a key of its own: a result
            // made with the real time is never mistaken for a reproducible one.
            key_parts["clock"] = "real".into();
        }
        let edges = inputs
            .iter()
            .map(|i| (i.port.clone(), i.digest, i.source.clone()))
            .collect();
        StepJob {
            planned,
            component: None,
            component_digest,
            component_size,
            key: key_of(&key_parts),
            params: params_json(&planned.params),
            key_parts,
            inputs,
            edges,
            component_label: planned.step.component.to_string(),
        }
    }

    /// The key a result that measured this machine (a step that probed
    /// the serving path) is recorded under: reused only on the machine,
    /// and by the `sluice`, that measured it. Computed when asked: most
    /// steps are found under [`StepJob::key`] and never need it.
    fn machine_key(&self) -> Digest {
        key_of(&measured_here(&self.key_parts))
    }

    /// The job with its component loaded (whose digest must be the one
    /// the job was made with).
    pub fn with_component(mut self, component: Component) -> Self {
        assert_eq!(
            component.digest(),
            self.component_digest,
            "a job runs the component its key was made with"
        );
        self.component = Some(component);
        self
    }

    /// Whether the component must still be loaded to run the step.
    pub fn is_loaded(&self) -> bool {
        self.component.is_some()
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        self.planned.name()
    }

    /// The component as the spec names it.
    fn component_name(&self) -> &str {
        &self.component_label
    }
}

/// One output of a settled step, for the steps that consume it.
pub struct SettledOutput {
    /// The output port.
    pub port: String,
    /// The stored artifact.
    pub digest: Digest,
    /// What it holds.
    pub kind: ArtifactKind,
    /// The artifact already decoded, when the step just made it.
    pub loaded: Option<InputArtifact>,
}

/// A step that ended — ran, reused or skipped — and is recorded.
pub struct Settled {
    /// What happened.
    pub report: StepReport,
    /// Its outputs (none unless it succeeded or was cached).
    pub outputs: Vec<SettledOutput>,
}

/// A step whose execution is recorded as started, ready to run.
pub struct Started {
    /// The report so far.
    pub report: StepReport,
    /// The work, free of borrows so a scheduler can spawn it.
    pub run: StepRun,
}

/// The component invocation of a started step, with its retries.
pub struct StepRun {
    component: Component,
    invocation: Invocation,
    retries: u32,
    execution_id: i64,
}

/// What a [`StepRun`] hands back.
pub struct Ran {
    execution_id: i64,
    outcome: StepOutcome,
    attempts: u32,
    duration: Duration,
}

impl StepRun {
    /// Runs the component; a plain failure is retried up to the step's
    /// `retries`, a contract violation or a rejection never is.
    pub async fn run(self) -> Ran {
        let started = Instant::now();
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            let outcome = self.component.run_async(self.invocation.clone()).await;
            match &outcome.result {
                Err(f) if f.is_retryable() && attempts <= self.retries => continue,
                _ => break outcome,
            }
        };
        Ran {
            execution_id: self.execution_id,
            outcome,
            attempts,
            duration: started.elapsed(),
        }
    }
}

/// `key_parts` of a result that measured the machine it ran on: the host
/// and the `sluice` that measured it join the key, so that a team store
/// reuses it only where it still holds (another machine measures again).
fn measured_here(key_parts: &serde_json::Value) -> serde_json::Value {
    let mut parts = key_parts.clone();
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    parts["measured_on"] = serde_json::json!({
        "host": HOST.get_or_init(sluice_store::metadata::hostname),
        "sluice": env!("CARGO_PKG_VERSION"),
    });
    parts
}

/// Whose a step's computing is (see [`StepExecutor::claim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This run computes it: its outputs are not shared through the cache.
    Unshared,
    /// This run computes it and holds the cache key's lease. Another run
    /// may have recorded the outputs just before giving the lease up, so
    /// look for them once more ([`StepExecutor::reuse`]) before computing.
    Claimed,
    /// Another run (its id) is computing it; look again in [`CLAIM_POLL`].
    ComputedBy(String),
}

/// How often a step whose computing another run claimed looks again for
/// that run's outputs.
pub const CLAIM_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Settles steps of one run in one store.
pub struct StepExecutor {
    store: Arc<Store>,
    run_id: String,
    /// In whose name the steps' cache-key leases are taken (the run's
    /// lease holder, whose heartbeat renews them).
    holder: String,
    /// Whether objects the metadata names are taken to be in the object
    /// store (see `Store::put`); not with `--no-cache`.
    trust_recorded: bool,
    observer: Arc<dyn Observer>,
    defaults: SpecLimits,
    runtime: Option<Runtime>,
    serving: Option<Arc<dyn ServingProbe>>,
}

impl StepExecutor {
    /// An executor recording into `store` under run `run_id`.
    pub fn new(store: Arc<Store>, run_id: impl Into<String>, observer: Arc<dyn Observer>) -> Self {
        let run_id = run_id.into();
        StepExecutor {
            store,
            holder: run_id.clone(),
            trust_recorded: true,
            run_id,
            observer,
            defaults: SpecLimits::default(),
            runtime: None,
            serving: None,
        }
    }

    /// Whether objects the metadata names are taken to be in the object
    /// store, rather than asked about and sent again (`--no-cache` turns
    /// it off, and so mends a store whose objects were removed from
    /// outside).
    pub fn trusting_recorded_objects(mut self, trust: bool) -> Self {
        self.trust_recorded = trust;
        self
    }

    /// Takes the steps' cache-key leases in the name of `holder`: the
    /// run's lease holder ([`sluice_store::RunLock::holder`]), so that the
    /// run's heartbeat renews them.
    pub fn with_lease_holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = holder.into();
        self
    }

    /// Lets steps replay the transforms models record (`model.transform`,
    /// `ml.evaluate-raw`), loading their components with `runtime` from the
    /// standard steps or the store's objects.
    pub fn with_runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Lets steps start their model in the real model server
    /// (`serving.probe`, `std:infra-validate`) with `probe`; without one,
    /// a probe is refused.
    pub fn with_serving(mut self, probe: Option<Arc<dyn ServingProbe>>) -> Self {
        self.serving = probe;
        self
    }

    /// The limits of steps that set none of their own (`[pipeline] limits`,
    /// `sluice run --memory`); each limit left unset is the host's default.
    pub fn with_default_limits(mut self, defaults: SpecLimits) -> Self {
        self.defaults = defaults;
        self
    }

    /// Reuses an execution when one fits, else loads the inputs, runs the
    /// step and records it: the whole life of one step, as a cluster task
    /// or a device calls it. `resumed` is the execution of this step in a
    /// run being resumed; `use_cache` allows reuse of any earlier execution
    /// with the same key.
    pub async fn execute(
        &self,
        job: &StepJob<'_>,
        use_cache: bool,
        resumed: Option<&ExecutionRecord>,
    ) -> Result<Settled, ExecuteError> {
        match self.reuse_or_claim(job, use_cache, resumed).await? {
            Some(settled) => Ok(settled),
            None => self.run_claimed(job).await,
        }
    }

    /// Reuses an execution when one fits (waiting while another run
    /// computes the same step); `None` when this run must compute it, with
    /// the claim taken ([`StepExecutor::claim`]): then
    /// [`StepExecutor::run_claimed`], or [`StepExecutor::release`] if it
    /// cannot. A job whose component is not loaded yet may be settled
    /// this way, and loaded only when it must run.
    pub async fn reuse_or_claim(
        &self,
        job: &StepJob<'_>,
        use_cache: bool,
        resumed: Option<&ExecutionRecord>,
    ) -> Result<Option<Settled>, ExecuteError> {
        let mut told = false;
        loop {
            if let Some(settled) = self.reuse(job, use_cache, resumed)? {
                return Ok(Some(settled));
            }
            match self.claim(job, use_cache)? {
                Claim::Unshared => return Ok(None),
                Claim::Claimed => {
                    let reused = self.reuse(job, use_cache, resumed)?;
                    if reused.is_some() {
                        self.release(job);
                    }
                    return Ok(reused);
                }
                Claim::ComputedBy(holder) => {
                    if !std::mem::replace(&mut told, true) {
                        self.observer.step_waiting(job.name(), &holder);
                    }
                    tokio::time::sleep(CLAIM_POLL).await;
                }
            }
        }
    }

    /// Loads the inputs of a job this run computes (see
    /// [`StepExecutor::reuse_or_claim`]), runs it, records it and gives
    /// up the claim.
    pub async fn run_claimed(&self, job: &StepJob<'_>) -> Result<Settled, ExecuteError> {
        let mut loaded = BTreeMap::new();
        for input in &job.inputs {
            let artifact = load_artifact(&self.store.objects, &input.digest, input.kind)?;
            loaded.insert(input.port.clone(), artifact);
        }
        let started = self.start(job, loaded)?;
        let ran = started.run.run().await;
        let settled = self.finish(job, started.report, ran);
        self.release(job);
        settled
    }

    /// Claims the computing of `job`, so that two runs of one step with
    /// one cache key — in one process, or on machines sharing the store —
    /// do not both compute it: the run holding the key's lease computes,
    /// the others wait and reuse its outputs (or take the lease over when
    /// it expires because that run died). A step whose outputs are not
    /// shared through the cache is always this run's to compute.
    pub fn claim(&self, job: &StepJob<'_>, use_cache: bool) -> Result<Claim, ExecuteError> {
        let planned = job.planned;
        if !(use_cache && planned.step.cache && planned.step.clock == ClockMode::Virtual) {
            return Ok(Claim::Unshared);
        }
        let metadata = &self.store.metadata;
        let lease = cache_lease(&job.key);
        if metadata.try_lease(&lease, &self.holder, lease_ttl())? {
            return Ok(Claim::Claimed);
        }
        // Released or expired since: try again at the next look.
        let holder = metadata.lease_holder(&lease)?.unwrap_or_default();
        Ok(Claim::ComputedBy(holder))
    }

    /// Gives up what [`StepExecutor::claim`] took, once the step's end is
    /// recorded (waiting runs then find its outputs).
    pub fn release(&self, job: &StepJob<'_>) {
        let _ = self
            .store
            .metadata
            .release_lease(&cache_lease(&job.key), &self.holder);
    }

    /// Records that the step will not run, with `state` (failed or skipped)
    /// and `reason`.
    pub fn settle_without_running(
        &self,
        job: &StepJob<'_>,
        state: StepState,
        reason: String,
    ) -> Result<Settled, ExecuteError> {
        let mut report = self.report(job);
        let now = sluice_store::time::now();
        let execution = self.new_execution(job, &now);
        report.execution_id = self.store.metadata.record_execution(
            (&job.component_label, job.component_size),
            &execution,
            &sluice_store::metadata::skipped(&execution, &reason),
        )?;
        report.state = state;
        report.message = Some(reason);
        self.observer.step_finished(&report);
        Ok(Settled {
            report,
            outputs: Vec::new(),
        })
    }

    /// Reuses the execution this step may reuse — the resumed run's, or
    /// any earlier one with the same key when `use_cache` and the step
    /// allows it — provided every output is still in the object store;
    /// records a cached execution. `None` when there is none.
    pub fn reuse(
        &self,
        job: &StepJob<'_>,
        use_cache: bool,
        resumed: Option<&ExecutionRecord>,
    ) -> Result<Option<Settled>, ExecuteError> {
        let store = &self.store;
        let planned = job.planned;
        let candidate = match resumed {
            Some(e) if e.cache_key == job.key || e.cache_key == job.machine_key() => {
                Some(e.clone())
            }
            // A step that sees the real time gives a new result each run.
            _ if use_cache && planned.step.cache && planned.step.clock == ClockMode::Virtual => {
                match store.metadata.find_cached(&job.key)? {
                    Some(e) => Some(e),
                    None => store.metadata.find_cached(&job.machine_key())?,
                }
            }
            _ => None,
        };
        let Some(original) = candidate else {
            return Ok(None);
        };
        // Every output must still be in the store (see
        // `Store::sizes_of_recorded`).
        let Some(digests) = planned
            .manifest
            .outputs
            .iter()
            .map(|p| original.output(&p.name))
            .collect::<Option<Vec<Digest>>>()
        else {
            return Ok(None);
        };
        let sizes = store.sizes_of_recorded(&digests)?;
        let mut outputs: Vec<(String, Digest, String, u64)> = Vec::new();
        for ((p, digest), size) in planned.manifest.outputs.iter().zip(digests).zip(sizes) {
            let Some(size) = size else {
                return Ok(None);
            };
            outputs.push((p.name.clone(), digest, p.kind.as_str().to_string(), size));
        }
        let now = sluice_store::time::now();
        let execution_id = store.metadata.record_execution(
            (&job.component_label, job.component_size),
            &self.new_execution(job, &now),
            &Finished {
                state: ExecutionState::Cached,
                ended_at: &sluice_store::time::now(),
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
        let mut report = self.report(job);
        report.execution_id = execution_id;
        report.state = StepState::Cached;
        report.cached_from = Some(CachedFrom {
            run_id: original.run_id.clone(),
            execution_id: original.id,
        });
        report.metrics = metrics_map(&original.metrics);
        let mut settled_outputs = Vec::new();
        for (port, digest, _, size) in &outputs {
            let kind = planned.manifest.find_output(port).map(|p| p.kind).unwrap();
            report.outputs.push(OutputReport {
                port: port.clone(),
                kind,
                digest: *digest,
                size: *size,
                path: store.objects.location(digest),
            });
            settled_outputs.push(SettledOutput {
                port: port.clone(),
                digest: *digest,
                kind,
                loaded: None,
            });
        }
        self.observer.step_finished(&report);
        Ok(Some(Settled {
            report,
            outputs: settled_outputs,
        }))
    }

    /// Records the start of the step's execution and prepares its run on
    /// the decoded `inputs` (by port).
    pub fn start(
        &self,
        job: &StepJob<'_>,
        inputs: BTreeMap<String, InputArtifact>,
    ) -> Result<Started, ExecuteError> {
        let planned = job.planned;
        let component = job.component.clone().ok_or_else(|| {
            ExecuteError::Artifact(format!(
                "step `{}`: its component {} was not loaded",
                job.name(),
                job.component_digest
            ))
        })?;
        self.record_component(job)?;
        let execution_id = self
            .store
            .metadata
            .start_execution(&self.new_execution(job, &sluice_store::time::now()))?;
        let mut report = self.report(job);
        report.execution_id = execution_id;
        let limits = Limits {
            memory: (planned.step.limits.memory)
                .or(self.defaults.memory)
                .unwrap_or(Limits::DEFAULT_MEMORY),
            time: (planned.step.limits.time)
                .or(self.defaults.time)
                .unwrap_or(Limits::DEFAULT_TIME),
            output: (planned.step.limits.output)
                .or(self.defaults.output)
                .unwrap_or(Limits::DEFAULT_OUTPUT),
        };
        let events: sluice_runtime::EventSink = {
            let observer = self.observer.clone();
            let name = job.name().to_string();
            Arc::new(move |e: StepEvent| observer.step_event(&name, &e))
        };
        let input_names = job
            .inputs
            .iter()
            .map(|i| (i.port.clone(), i.source.clone()))
            .collect();
        let invocation = Invocation {
            params: planned.params.iter().cloned().collect(),
            inputs,
            input_names,
            outputs: planned.manifest.outputs.clone(),
            limits,
            seed: *job.key.as_bytes(),
            clock: planned.step.clock,
            events: Some(events),
            components: self.runtime.clone().map(|runtime| {
                let store = self.store.clone();
                let load: sluice_runtime::ComponentLoader =
                    Arc::new(move |digest| runtime.load_digest(digest, Some(&store.objects)));
                load
            }),
            serving: self.serving.clone(),
        };
        self.observer
            .step_started(job.name(), &planned.step.component.to_string());
        Ok(Started {
            report,
            run: StepRun {
                component,
                invocation,
                retries: planned.step.retries,
                execution_id,
            },
        })
    }

    /// Stores a finished step's outputs (bytes first), then records the
    /// execution's end, its output events and the models it registered in
    /// one transaction.
    pub fn finish(
        &self,
        job: &StepJob<'_>,
        mut report: StepReport,
        ran: Ran,
    ) -> Result<Settled, ExecuteError> {
        let store = &self.store;
        let planned = job.planned;
        let outcome = ran.outcome;
        let models: Vec<NewModel> = outcome
            .registrations
            .iter()
            .filter_map(|r| {
                let input = job.inputs.iter().find(|i| i.port == r.model_port)?;
                // The card is small; a card that cannot be read has no
                // identity and is matched by its artifact alone.
                let identity = store
                    .objects
                    .get(&input.digest)
                    .ok()
                    .and_then(|card| ModelArtifact::identity_of_stored(&card));
                Some(NewModel {
                    name: r.name.clone(),
                    artifact: input.digest,
                    identity,
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
        let mut recorded = Vec::new();
        let mut settled_outputs = Vec::new();
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
                                    "run": self.run_id,
                                    "step": report.name,
                                    "execution": ran.execution_id,
                                    "component": report.component,
                                }),
                            );
                            let m = m.annotated(made_by);
                            let onnx = store.objects.put(m.onnx())?;
                            let card = m.stored_card(&onnx);
                            (
                                store.put(card.as_bytes(), self.trust_recorded)?,
                                card.len() as u64,
                            )
                        }
                        other => {
                            let bytes = other.stored_bytes();
                            (store.put(bytes, self.trust_recorded)?, bytes.len() as u64)
                        }
                    };
                    recorded.push((
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
                    settled_outputs.push(SettledOutput {
                        port: port.name.clone(),
                        digest,
                        kind: port.kind,
                        loaded: Some(artifact.to_input()),
                    });
                }
                report.state = StepState::Succeeded;
            }
            Err(failure) => {
                report.state = StepState::Failed;
                let mut message = failure.to_string();
                if let StepFailure::MemoryLimit { requested, .. } = &failure {
                    message.push_str(&memory_hint(&planned.step.name, *requested));
                }
                report.message = Some(message);
                report.failure = Some(failure);
            }
        }
        if outcome.probed {
            // The result measured this machine (`serving.probe`): recorded
            // under the key only this machine and this `sluice` look up.
            let key = job.machine_key();
            store.metadata.rekey_execution(
                ran.execution_id,
                &key,
                &measured_here(&job.key_parts),
            )?;
            report.cache_key = key;
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
                ended_at: &sluice_store::time::now(),
                duration_ms: report.duration.as_secs_f64() * 1000.0,
                attempts: report.attempts,
                error: report.message.as_deref(),
                failure: report
                    .failure
                    .as_ref()
                    .map(|f| serde_json::to_value(f).unwrap()),
                metrics: serde_json::to_value(&report.metrics).unwrap(),
                report: Some(detail),
                outputs: &recorded,
                cached_from: None,
                models: if report.state == StepState::Succeeded {
                    &models
                } else {
                    &[]
                },
            },
        )?;
        self.observer.step_finished(&report);
        Ok(Settled {
            report,
            outputs: settled_outputs,
        })
    }

    /// Records the step's component (once per digest), which its execution
    /// row refers to; a task that runs one step in a fresh process has no
    /// scheduler to have done it.
    fn record_component(&self, job: &StepJob<'_>) -> Result<(), ExecuteError> {
        Ok(self.store.metadata.record_component(
            &job.component_digest,
            &job.component_label,
            job.component_size,
            &sluice_store::time::now(),
        )?)
    }

    /// The execution row this step starts with.
    fn new_execution<'a>(&'a self, job: &'a StepJob<'_>, now: &'a str) -> NewExecution<'a> {
        NewExecution {
            run_id: &self.run_id,
            step: job.name(),
            component: job.component_name(),
            component_digest: job.component_digest,
            cache_key: job.key,
            key_parts: &job.key_parts,
            params: &job.params,
            inputs: &job.edges,
            started_at: now,
        }
    }

    /// The report of a step that has not settled yet.
    fn report(&self, job: &StepJob<'_>) -> StepReport {
        StepReport {
            name: job.name().to_string(),
            execution_id: 0,
            component: job.component_label.clone(),
            component_digest: job.component_digest,
            state: StepState::Skipped,
            message: None,
            failure: None,
            cache_key: job.key,
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
        }
    }
}

/// The numeric metrics of a recorded execution.
fn metrics_map(v: &serde_json::Value) -> BTreeMap<String, f64> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                .collect()
        })
        .unwrap_or_default()
}

/// What to write to give step `step` more memory, after it needed
/// `requested` bytes: a limit of the next power of two of GiB above it.
fn memory_hint(step: &str, requested: u64) -> String {
    let gib = requested.div_ceil(1 << 30).max(1).next_power_of_two();
    let size = format!("{gib}GiB");
    format!(
        ". To allow more, set `limits = {{ memory = \"{size}\" }}` in [steps.{step}] of the \
         pipeline spec; for every step, `limits = {{ memory = \"{size}\" }}` in [pipeline], or \
         `sluice run --memory {size}`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execute::{Silent, prepare};
    use sluice_runtime::{Runtime, RuntimeConfig};

    /// The executor alone — no scheduler — as a cluster task would call it:
    /// the first execution runs and records, a later one with the same key
    /// (another run) is a cache hit on the first, and without the cache the
    /// step runs again to the same bytes.
    #[test]
    fn a_step_executed_again_is_reused_and_reruns_to_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.csv"), "x,y\n1,a\n2,b\n3,a\n").unwrap();
        let spec = dir.path().join("p.toml");
        std::fs::write(
            &spec,
            r#"
[pipeline]
name = "one-step"
[data]
raw = "d.csv"
[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.raw" }
"#,
        )
        .unwrap();
        // Loading and describing components happens outside any async
        // runtime (as in the CLI); executing a step inside one.
        let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
        let store = Arc::new(Store::open(dir.path().join(".sluice")).unwrap());
        let prepared = prepare(&spec, &runtime, Some(&store.objects)).unwrap();
        let planned = &prepared.plan.steps[0];
        let component = &prepared.components[&planned.step.component];
        let csv = std::fs::read(dir.path().join("d.csv")).unwrap();
        let digest = store.objects.put(&csv).unwrap();
        let inputs = vec![ResolvedInput {
            port: "file".into(),
            source: "data.raw".into(),
            digest,
            kind: ArtifactKind::File,
        }];
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // One execution per step and run: each execution is a run of its own.
        let execute = |run: &str, job: &StepJob<'_>, use_cache: bool| {
            let meta = &store.metadata;
            let spec_digest = Digest::of(b"spec");
            meta.start_run(
                run,
                "one-step",
                "p.toml",
                &spec_digest,
                "manual",
                "t0",
                None,
            )
            .unwrap();
            meta.record_import(run, "raw", "d.csv", &digest, "file", csv.len() as u64, "t0")
                .unwrap();
            let executor = StepExecutor::new(store.clone(), run, Arc::new(Silent));
            let settled = tokio
                .block_on(executor.execute(job, use_cache, None))
                .unwrap();
            let recorded = meta.executions(run).unwrap();
            assert_eq!(recorded.len(), 1);
            assert_eq!(recorded[0].id, settled.report.execution_id);
            (settled, recorded[0].state)
        };

        let job = StepJob::new(planned, component, inputs.clone());
        let (first, state) = execute("r1", &job, true);
        assert_eq!(
            state,
            ExecutionState::Succeeded,
            "{:?}",
            first.report.message
        );
        assert_eq!(first.report.metrics.get("rows"), Some(&3.0));
        let table = &first.outputs[0];
        assert_eq!(
            (table.port.as_str(), table.kind),
            ("data", ArtifactKind::Table)
        );
        assert!(store.objects.contains(&table.digest));

        let again = StepJob::new(planned, component, inputs);
        assert_eq!(again.key, job.key, "the key depends on content only");
        let (reused, state) = execute("r2", &again, true);
        assert_eq!(state, ExecutionState::Cached);
        assert_eq!(reused.report.state, StepState::Cached);
        assert_eq!(
            reused.report.cached_from.as_ref().unwrap().execution_id,
            first.report.execution_id
        );
        assert_eq!(reused.outputs[0].digest, table.digest);

        let (fresh, state) = execute("r3", &job, false);
        assert_eq!(state, ExecutionState::Succeeded);
        assert_eq!(fresh.outputs[0].digest, table.digest, "deterministic");
    }
}
