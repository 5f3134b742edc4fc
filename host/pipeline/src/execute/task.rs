//! One step of a planned run, executed by an engine's task in a fresh
//! process; and the end of such a run.
//!
//! An engine (Kubeflow Pipelines, Argo, Vertex AI Pipelines) starts a pod
//! per step, in dependency order, and may start one again when it fails or
//! its node goes away. So [`exec_step`] is idempotent: a step whose
//! execution in the run is recorded already is not run again (its
//! recorded outcome is the answer), two tasks for one step at once run it
//! once (the step's lease), and an execution left `running` by a task that
//! died is marked interrupted and run again. Its inputs come from the
//! metadata alone — the run's imports, the plan's models and the outputs
//! recorded for the steps upstream — and a step whose inputs are not there
//! yet is [`TaskError::NotReady`]: the engine may try it again later.
//! [`finish_run`] ends the run when its last task is done.

use super::ExecuteError;
use super::package::{OpenedRun, PlannedComponent, open_planned};
use super::report::{Observer, StepReport, StepState};
use super::step::{CLAIM_POLL, ResolvedInput, StepExecutor, StepJob};
use crate::spec::{ComponentRef, DataKind, Source};
use crate::validate::PlannedStep;
use serde::Serialize;
use sluice_runtime::{ComponentSource, Digest, Runtime};
use sluice_store::Store;
use sluice_store::lease::{Heartbeat, lease_ttl, step_lease};
use sluice_store::metadata::{ExecutionRecord, ExecutionState, RunState};
use std::sync::Arc;

/// Why a step's task could not settle it.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// No step of that name in the run's pipeline.
    #[error("run {run} (pipeline {pipeline}) has no step `{step}`; its steps: {}", .steps.join(", "))]
    UnknownStep {
        /// The run.
        run: String,
        /// Its pipeline.
        pipeline: String,
        /// The step asked for.
        step: String,
        /// The steps it has.
        steps: Vec<String>,
    },
    /// Steps upstream have not recorded the outputs this one needs.
    #[error(
        "step `{step}` cannot start yet: {} of run {run} not settled; the engine should run this task after them (or try it again)",
        .waiting_for.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
    )]
    NotReady {
        /// The run.
        run: String,
        /// The step.
        step: String,
        /// The steps it waits for.
        waiting_for: Vec<String>,
    },
    /// The run is over and this step never settled in it.
    #[error("run {run} is {state} already and step `{step}` did not run in it; plan a new run")]
    RunOver {
        /// The run.
        run: String,
        /// The step.
        step: String,
        /// How the run ended.
        state: RunState,
    },
    /// A step's task is still executing it.
    #[error(
        "step `{step}` of run {run} is still being executed ({holder}); end the run once its task is done"
    )]
    StillRunning {
        /// The run.
        run: String,
        /// The step.
        step: String,
        /// The task executing it.
        holder: String,
    },
    /// The task runs a sluice whose standard step differs from the one
    /// the run was planned with.
    #[error(
        "step `{step}` runs {component}, which was {planned} when the run was planned but is {found} in this sluice; run every task of a run with the same sluice (image) that planned it"
    )]
    OtherBuild {
        /// The step.
        step: String,
        /// The component.
        component: String,
        /// Its digest in the plan.
        planned: Digest,
        /// Its digest in this build.
        found: Digest,
    },
    /// The store, a stored object or the component failed.
    #[error(transparent)]
    Execute(#[from] ExecuteError),
}

impl TaskError {
    /// Whether the engine may succeed by trying the task again later: the
    /// inputs are not there yet, another task still holds the step, or the
    /// store could not be reached.
    pub fn is_retryable(&self) -> bool {
        match self {
            TaskError::NotReady { .. } | TaskError::StillRunning { .. } => true,
            TaskError::Execute(e) => match e {
                ExecuteError::Metadata(e) => e.is_transient(),
                ExecuteError::Objects(e) => e.is_transient(),
                ExecuteError::Open(e) => e.is_transient(),
                _ => false,
            },
            _ => false,
        }
    }
}

/// How a step's task ended.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    /// The run.
    pub run_id: String,
    /// The step.
    pub step: String,
    /// Whether this task settled it (`false`: an earlier task had, and
    /// its recorded outcome is reported).
    pub settled_now: bool,
    /// The step's execution.
    pub execution_id: i64,
    /// How it ended.
    pub state: StepState,
    /// Why it failed or was skipped.
    pub message: Option<String>,
    /// Its outputs: port → digest.
    pub outputs: std::collections::BTreeMap<String, Digest>,
    /// The execution whose outputs a cached step reused.
    pub cached_from: Option<i64>,
}

/// Executes step `step` of the planned run `run_id`: reuses its cached
/// result when it has one (starting no component runtime: `runtime` is
/// called only when the step must run), else loads its component (by
/// digest: a standard step of this build, or the store's bytes) and runs
/// it, recording everything as `sluice run` would. `serving` starts a
/// model server for a step that probes the serving path.
pub async fn exec_step(
    store: Arc<Store>,
    runtime: &dyn Fn() -> Result<Runtime, ExecuteError>,
    run_id: &str,
    step: &str,
    observer: Arc<dyn Observer>,
    serving: Option<Arc<dyn sluice_runtime::ServingProbe>>,
) -> Result<TaskReport, TaskError> {
    let opened = open_planned(&store, run_id)?;
    let planned = find_step(&opened, step)?;

    // One task at a time per step: a second waits for the first (or for
    // its lease to expire, when its pod died).
    let holder = format!(
        "{run_id}/{step} ({} pid {})",
        sluice_store::identity::user(),
        std::process::id()
    );
    let lease = step_lease(run_id, step);
    let mut told = false;
    while !store
        .metadata
        .try_lease(&lease, &holder, lease_ttl())
        .map_err(ExecuteError::from)?
    {
        if !std::mem::replace(&mut told, true) {
            let other = store
                .metadata
                .lease_holder(&lease)
                .map_err(ExecuteError::from)?;
            observer.step_waiting(step, other.as_deref().unwrap_or("another task"));
        }
        tokio::time::sleep(CLAIM_POLL).await;
    }
    let _heartbeat = Heartbeat::start(store.metadata.clone(), holder.clone(), lease_ttl());

    let executions = store
        .metadata
        .executions(run_id)
        .map_err(ExecuteError::from)?;
    if let Some(last) = latest(&executions, step) {
        match last.state {
            ExecutionState::Running => {
                // This task holds the step's lease, so the task that
                // recorded it is gone.
                store
                    .metadata
                    .interrupt_execution(last.id, &sluice_store::time::now())
                    .map_err(ExecuteError::from)?;
            }
            ExecutionState::Interrupted => {}
            _ => return Ok(recorded(run_id, last)),
        }
    }
    let run_state = store
        .metadata
        .run(run_id)
        .map_err(ExecuteError::from)?
        .state;
    if run_state != RunState::Running {
        return Err(TaskError::RunOver {
            run: run_id.into(),
            step: step.into(),
            state: run_state,
        });
    }

    let executor = StepExecutor::new(store.clone(), run_id, observer)
        .with_serving(serving)
        .with_lease_holder(holder)
        .trusting_recorded_objects(opened.plan.use_cache)
        .with_default_limits(crate::spec::Limits {
            memory: opened.plan.memory.or(opened.spec.limits.memory),
            ..opened.spec.limits
        });
    let component = planned_component(&opened, planned);
    let inputs = match resolve_inputs(&store, &opened, planned, &executions)? {
        Inputs::Ready(inputs) => inputs,
        Inputs::Waiting(waiting_for) => {
            return Err(TaskError::NotReady {
                run: run_id.into(),
                step: step.into(),
                waiting_for,
            });
        }
        Inputs::Settle(state, reason, inputs) => {
            let job = StepJob::unloaded(planned, component.digest, component.size, inputs);
            let settled = executor.settle_without_running(&job, state, reason)?;
            return Ok(settled_report(run_id, &settled.report));
        }
    };
    let job = StepJob::unloaded(planned, component.digest, component.size, inputs);
    if let Some(settled) = executor
        .reuse_or_claim(&job, opened.plan.use_cache, None)
        .await?
    {
        return Ok(settled_report(run_id, &settled.report));
    }
    // This task computes the step: only now start a runtime and load it.
    let loaded = runtime()
        .map_err(TaskError::from)
        .and_then(|runtime| Ok((load(&store, &runtime, planned, component)?, runtime)));
    let (component, runtime) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            executor.release(&job);
            return Err(e);
        }
    };
    let job = job.with_component(component);
    let settled = executor.with_runtime(runtime).run_claimed(&job).await?;
    Ok(settled_report(run_id, &settled.report))
}

/// How a planned run ended.
#[derive(Debug, Clone, Serialize)]
pub struct FinishedRun {
    /// The run.
    pub run_id: String,
    /// Its pipeline.
    pub pipeline: String,
    /// How it ended.
    pub state: RunState,
    /// Whether this call ended it (`false`: it had ended already).
    pub finished_now: bool,
    /// Each step's outcome, in plan order.
    pub steps: Vec<TaskReport>,
}

/// Ends the planned run `run_id` once its steps' tasks are done: a step no
/// task settled is recorded as skipped (why: the upstream step that did
/// not succeed, or that its task never ran), an execution whose task died
/// as interrupted; the run succeeds when every step succeeded or was
/// cached. Ending a run that has ended returns how it ended.
pub fn finish_run(store: &Arc<Store>, run_id: &str) -> Result<FinishedRun, TaskError> {
    let opened = open_planned(store, run_id)?;
    let metadata = &store.metadata;
    let finished_now = opened.run.state == RunState::Running;
    if finished_now {
        let now = sluice_store::time::now();
        let executor = StepExecutor::new(store.clone(), run_id, Arc::new(super::Silent));
        let executions = metadata.executions(run_id).map_err(ExecuteError::from)?;
        for planned in &opened.steps.steps {
            let step = planned.name();
            if let Some(last) = latest(&executions, step)
                && last.state == ExecutionState::Running
            {
                if let Some(holder) = metadata
                    .lease_holder(&step_lease(run_id, step))
                    .map_err(ExecuteError::from)?
                {
                    return Err(TaskError::StillRunning {
                        run: run_id.into(),
                        step: step.into(),
                        holder,
                    });
                }
                metadata
                    .interrupt_execution(last.id, &now)
                    .map_err(ExecuteError::from)?;
            }
        }
        // Steps no task settled, in plan order (so that what they wait for
        // is settled first).
        for planned in &opened.steps.steps {
            let executions = metadata.executions(run_id).map_err(ExecuteError::from)?;
            if latest(&executions, planned.name()).is_some() {
                continue;
            }
            let component = planned_component(&opened, planned);
            let (reason, inputs) = match resolve_inputs(store, &opened, planned, &executions)? {
                Inputs::Settle(_, reason, inputs) => (reason, inputs),
                Inputs::Ready(inputs) => (
                    "skipped: its task never ran (the engine did not start it)".to_string(),
                    inputs,
                ),
                Inputs::Waiting(waiting) => (
                    format!(
                        "skipped: upstream step `{}` did not settle",
                        waiting.join("`, `")
                    ),
                    Vec::new(),
                ),
            };
            let job = StepJob::unloaded(planned, component.digest, component.size, inputs);
            executor.settle_without_running(&job, StepState::Skipped, reason)?;
        }
        let executions = metadata.executions(run_id).map_err(ExecuteError::from)?;
        let ok = opened.steps.steps.iter().all(|s| {
            latest(&executions, s.name()).is_some_and(|e| {
                matches!(e.state, ExecutionState::Succeeded | ExecutionState::Cached)
            })
        });
        let state = if ok {
            RunState::Succeeded
        } else {
            RunState::Failed
        };
        metadata
            .finish_run(run_id, state, &sluice_store::time::now())
            .map_err(ExecuteError::from)?;
    }
    let executions = metadata.executions(run_id).map_err(ExecuteError::from)?;
    let steps = opened
        .steps
        .steps
        .iter()
        .filter_map(|s| latest(&executions, s.name()).map(|e| recorded(run_id, e)))
        .collect();
    let run = metadata.run(run_id).map_err(ExecuteError::from)?;
    Ok(FinishedRun {
        run_id: run_id.into(),
        pipeline: run.pipeline,
        state: run.state,
        finished_now,
        steps,
    })
}

/// The step called `step` of an opened run.
fn find_step<'o>(opened: &'o OpenedRun, step: &str) -> Result<&'o PlannedStep, TaskError> {
    opened
        .steps
        .step(step)
        .ok_or_else(|| TaskError::UnknownStep {
            run: opened.run.id.clone(),
            pipeline: opened.run.pipeline.clone(),
            step: step.into(),
            steps: opened
                .steps
                .steps
                .iter()
                .map(|s| s.name().to_string())
                .collect(),
        })
}

fn planned_component<'o>(opened: &'o OpenedRun, planned: &PlannedStep) -> &'o PlannedComponent {
    &opened.plan.components[&planned.step.component.to_string()]
}

/// The latest execution of `step` among a run's `executions`.
fn latest<'e>(executions: &'e [ExecutionRecord], step: &str) -> Option<&'e ExecutionRecord> {
    executions
        .iter()
        .filter(|e| e.step == step)
        .max_by_key(|e| e.id)
}

/// What a step's inputs are, as far as the metadata knows.
enum Inputs {
    /// All there.
    Ready(Vec<ResolvedInput>),
    /// Upstream steps not settled yet.
    Waiting(Vec<String>),
    /// The step cannot run: settle it with this state and reason (with the
    /// inputs that are there).
    Settle(StepState, String, Vec<ResolvedInput>),
}

/// Resolves the inputs of `planned` from the run's imports, the plan's
/// models and the outputs of its settled upstream steps.
fn resolve_inputs(
    store: &Store,
    opened: &OpenedRun,
    planned: &PlannedStep,
    executions: &[ExecutionRecord],
) -> Result<Inputs, TaskError> {
    let run_id = &opened.run.id;
    let imports = store.metadata.imports(run_id).map_err(ExecuteError::from)?;
    let mut inputs = Vec::new();
    let mut waiting = Vec::new();
    let mut settle: Option<(StepState, String)> = None;
    for b in &planned.inputs {
        let resolved = match &b.source {
            Source::Data(name) => {
                let kind = opened.spec.data_input(name).map(|d| d.kind);
                if kind == Some(DataKind::Model) {
                    match opened.plan.models.get(name).cloned().flatten() {
                        Some(model) => Some(model.digest),
                        None => {
                            let optional = planned
                                .manifest
                                .find_input(&b.port)
                                .is_some_and(|p| p.optional);
                            if !optional && settle.is_none() {
                                let reference = opened
                                    .spec
                                    .data_input(name)
                                    .map_or(String::new(), |d| d.raw_path.clone());
                                settle = Some((
                                    StepState::Failed,
                                    format!(
                                        "failed: input `{}` is {}, which names model `{reference}`, but the registry had no such model when the run was planned; bind it to an optional port, or register a model first",
                                        b.port, b.source
                                    ),
                                ));
                            }
                            None
                        }
                    }
                } else {
                    let found = imports.iter().find(|(n, _, _)| n == name);
                    Some(found.map(|(_, _, d)| *d).ok_or_else(|| {
                        ExecuteError::Artifact(format!(
                            "run {run_id} recorded no import of data input `{name}`"
                        ))
                    })?)
                }
            }
            Source::Step { step, port } => match latest(executions, step) {
                Some(e)
                    if matches!(e.state, ExecutionState::Succeeded | ExecutionState::Cached) =>
                {
                    Some(e.output(port).ok_or_else(|| {
                        ExecuteError::Artifact(format!(
                            "execution {} of step `{step}` recorded no output `{port}`",
                            e.id
                        ))
                    })?)
                }
                Some(e) if matches!(e.state, ExecutionState::Failed | ExecutionState::Skipped) => {
                    if settle.is_none() {
                        settle = Some((
                            StepState::Skipped,
                            format!("skipped: upstream step `{step}` did not succeed"),
                        ));
                    }
                    None
                }
                // Not run yet, running, or interrupted (its task may be
                // tried again).
                _ => {
                    if !waiting.contains(step) {
                        waiting.push(step.clone());
                    }
                    None
                }
            },
        };
        if let Some(digest) = resolved {
            inputs.push(ResolvedInput {
                port: b.port.clone(),
                source: b.source.to_string(),
                digest,
                kind: b.kind,
            });
        }
    }
    Ok(match settle {
        Some((state, reason)) => Inputs::Settle(state, reason, inputs),
        None if !waiting.is_empty() => Inputs::Waiting(waiting),
        None => Inputs::Ready(inputs),
    })
}

/// Loads the component of `planned` by the digest the plan recorded.
fn load(
    store: &Store,
    runtime: &Runtime,
    planned: &PlannedStep,
    component: &PlannedComponent,
) -> Result<sluice_runtime::Component, TaskError> {
    let label = planned.step.component.to_string();
    let source = match &planned.step.component {
        ComponentRef::Std(name) => ComponentSource::Std(name.clone()),
        ComponentRef::Path(_) | ComponentRef::Digest(_) => ComponentSource::Bytes {
            name: label.clone(),
            bytes: store
                .objects
                .get(&component.digest)
                .map_err(ExecuteError::from)?,
        },
    };
    let loaded = runtime
        .load(&source)
        .map_err(|e| ExecuteError::Artifact(format!("loading {label}: {e}")))?;
    if loaded.digest() != component.digest {
        return Err(TaskError::OtherBuild {
            step: planned.name().into(),
            component: label,
            planned: component.digest,
            found: loaded.digest(),
        });
    }
    Ok(loaded)
}

/// The report of a step this task settled.
fn settled_report(run_id: &str, r: &StepReport) -> TaskReport {
    TaskReport {
        run_id: run_id.into(),
        step: r.name.clone(),
        settled_now: true,
        execution_id: r.execution_id,
        state: r.state,
        message: r.message.clone(),
        outputs: r
            .outputs
            .iter()
            .map(|o| (o.port.clone(), o.digest))
            .collect(),
        cached_from: r.cached_from.as_ref().map(|c| c.execution_id),
    }
}

/// The report of a step an earlier task settled.
fn recorded(run_id: &str, e: &ExecutionRecord) -> TaskReport {
    TaskReport {
        run_id: run_id.into(),
        step: e.step.clone(),
        settled_now: false,
        execution_id: e.id,
        state: match e.state {
            ExecutionState::Succeeded => StepState::Succeeded,
            ExecutionState::Cached => StepState::Cached,
            ExecutionState::Skipped => StepState::Skipped,
            _ => StepState::Failed,
        },
        message: e.error.clone(),
        outputs: e
            .events
            .iter()
            .filter(|ev| ev.direction == "output")
            .map(|ev| (ev.port.clone(), ev.artifact))
            .collect(),
        cached_from: e.cached_from,
    }
}
