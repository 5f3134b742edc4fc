//! The local scheduler of a run: imports the data, walks the plan's DAG,
//! starts every step whose inputs are ready (at most `jobs` at once),
//! settles the steps that cannot run, and honours `--resume`. Each step
//! itself is settled by the [`StepExecutor`].

use super::artifacts::{import_data, import_model, load_artifact};
use super::prepare::Prepared;
use super::report::{DataReport, RunReport, RunState, StepReport, StepState};
use super::step::{CLAIM_POLL, Claim, Ran, ResolvedInput, Settled, StepExecutor, StepJob};
use super::{ExecuteError, Observer};
use crate::diagnostic::{Code, Diagnostics};
use crate::spec::{DataKind, Source};
use crate::validate::PlannedStep;
use sluice_runtime::ServingProbe;
use sluice_runtime::{ArtifactKind, Digest, InputArtifact};
use sluice_store::Store;
use sluice_store::metadata::{ExecutionRecord, ExecutionState, RunRecord};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    /// Most steps running at once.
    pub jobs: usize,
    /// Whether cached results may be reused (`--no-cache` turns it off).
    pub use_cache: bool,
    /// The run being resumed: its succeeded steps are reused as they are.
    pub resume: Option<RunRecord>,
    /// What started the run (`manual`, `resume`, …).
    pub trigger: String,
    /// The memory limit of every step that sets none of its own
    /// (`sluice run --memory`); over `[pipeline] limits`.
    pub memory: Option<u64>,
    /// What starts a model in the real model server for steps that probe
    /// the serving path (`std:infra-validate`); without it, they are
    /// refused.
    pub serving: Option<Arc<dyn ServingProbe>>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("jobs", &self.jobs)
            .field("use_cache", &self.use_cache)
            .field("resume", &self.resume)
            .field("trigger", &self.trigger)
            .field("memory", &self.memory)
            .field("serving", &self.serving.is_some())
            .finish()
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            use_cache: true,
            resume: None,
            trigger: "manual".into(),
            memory: None,
            serving: None,
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
    let now = sluice_store::time::now;

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

    let lock = store.lock_run(&run_id)?;
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
        &sluice_store::time::rfc3339(started_at),
        options.resume.as_ref().map(|r| r.id.as_str()),
    )?;

    let mut available: HashMap<Source, Available> = HashMap::new();
    let mut absent_models: Vec<String> = Vec::new();
    let mut data = Vec::new();
    let mut problems = Vec::new();
    for input in &prepared.plan.data {
        let kind = input.kind.artifact_kind();
        let imported = if input.kind == DataKind::Model {
            // A registry model: resolved, not imported; absent is allowed
            // until a step needs it.
            let resolved = import_model(input, &store)?;
            if resolved.is_none() {
                absent_models.push(input.name.clone());
            }
            resolved
        } else {
            match import_data(input, &store, options.use_cache) {
                Ok((artifact, digest, size)) => {
                    store.metadata.record_import(
                        &run_id,
                        &input.name,
                        &input.path.display().to_string(),
                        &digest,
                        kind.as_str(),
                        size,
                        &now(),
                    )?;
                    Some((artifact, digest, size))
                }
                Err(message) => {
                    problems.push(spec.diagnostic(Code::Io, input.span, message));
                    None
                }
            }
        };
        let Some((artifact, digest, size)) = imported else {
            continue;
        };
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
    if !problems.is_empty() {
        store
            .metadata
            .finish_run(&run_id, sluice_store::metadata::RunState::Failed, &now())?;
        return Err(ExecuteError::Data(Diagnostics(problems)));
    }

    let executor = StepExecutor::new(store.clone(), run_id.clone(), observer.clone())
        .with_lease_holder(lock.holder())
        .trusting_recorded_objects(options.use_cache)
        .with_runtime(prepared.runtime.clone())
        .with_serving(options.serving.clone())
        .with_default_limits(crate::spec::Limits {
            memory: options.memory.or(spec.limits.memory),
            ..spec.limits
        });
    let steps = &prepared.plan.steps;
    let mut states: HashMap<String, StepState> = HashMap::new();
    let mut pending: Vec<usize> = (0..steps.len()).collect();
    let mut reports: Vec<StepReport> = Vec::new();
    let mut in_flight: HashMap<usize, (StepJob<'_>, StepReport)> = HashMap::new();
    let mut running: tokio::task::JoinSet<(usize, Ran)> = tokio::task::JoinSet::new();
    let jobs = options.jobs.max(1);
    // How many steps not yet started read each artifact: a decoded
    // artifact is let go as soon as no step still to start needs it, so a
    // run holds only the tables it still has a use for.
    let mut readers: HashMap<Source, usize> = HashMap::new();
    for planned in steps {
        for b in &planned.inputs {
            *readers.entry(b.source.clone()).or_default() += 1;
        }
    }
    let mut read = |planned: &PlannedStep, available: &mut HashMap<Source, Available>| {
        for b in &planned.inputs {
            let left = readers.get_mut(&b.source).map(|n| {
                *n = n.saturating_sub(1);
                *n
            });
            if left == Some(0)
                && let Some(a) = available.get_mut(&b.source)
            {
                a.loaded = None;
            }
        }
    };

    // Settles one step: its state for the steps downstream, its outputs
    // available to them, its report in the run's.
    let mut settle = |settled: Settled,
                      available: &mut HashMap<Source, Available>,
                      states: &mut HashMap<String, StepState>| {
        for o in settled.outputs {
            available.insert(
                Source::Step {
                    step: settled.report.name.clone(),
                    port: o.port,
                },
                Available {
                    digest: o.digest,
                    kind: o.kind,
                    loaded: o.loaded,
                },
            );
        }
        states.insert(settled.report.name.clone(), settled.report.state);
        reports.push(settled.report);
    };

    // Steps whose computing another run has claimed (told once each).
    let mut told_waiting: HashSet<usize> = HashSet::new();
    loop {
        // Start (or settle without running) every step whose inputs are ready.
        let mut waiting = false;
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
            let inputs: Vec<ResolvedInput> = planned
                .inputs
                .iter()
                .filter_map(|b| {
                    available.get(&b.source).map(|a| ResolvedInput {
                        port: b.port.clone(),
                        source: b.source.to_string(),
                        digest: a.digest,
                        kind: a.kind,
                    })
                })
                .collect();
            let job = StepJob::new(planned, component, inputs);

            let missing_model = planned.inputs.iter().find(|b| {
                matches!(&b.source, Source::Data(name) if absent_models.contains(name))
                    && planned
                        .manifest
                        .find_input(&b.port)
                        .is_some_and(|p| !p.optional)
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
                let settled = executor.settle_without_running(&job, StepState::Failed, reason)?;
                settle(settled, &mut available, &mut states);
                read(planned, &mut available);
                continue;
            }

            if let Some(blocked) = deps.iter().find(|d| !states[**d].is_ok()) {
                pending.remove(i);
                let reason = format!("skipped: upstream step `{blocked}` did not succeed");
                let settled = executor.settle_without_running(&job, StepState::Skipped, reason)?;
                settle(settled, &mut available, &mut states);
                read(planned, &mut available);
                continue;
            }

            let resumed = resume_from.get(planned.name());
            if let Some(settled) = executor.reuse(&job, options.use_cache, resumed)? {
                pending.remove(i);
                settle(settled, &mut available, &mut states);
                read(planned, &mut available);
                continue;
            }

            if running.len() >= jobs {
                break;
            }
            match executor.claim(&job, options.use_cache)? {
                Claim::Unshared => {}
                Claim::Claimed => {
                    if let Some(settled) = executor.reuse(&job, options.use_cache, resumed)? {
                        executor.release(&job);
                        pending.remove(i);
                        settle(settled, &mut available, &mut states);
                        read(planned, &mut available);
                        continue;
                    }
                }
                Claim::ComputedBy(holder) => {
                    // Its outputs are reused when that run records them
                    // (or this run computes it once that run's lease
                    // expires).
                    if told_waiting.insert(index) {
                        observer.step_waiting(planned.name(), &holder);
                    }
                    waiting = true;
                    i += 1;
                    continue;
                }
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
            read(planned, &mut available);
            let started = executor.start(&job, step_inputs)?;
            running.spawn(async move { (index, started.run.run().await) });
            in_flight.insert(index, (job, started.report));
        }

        let joined = if waiting {
            // Look again for the claimed steps' outputs every CLAIM_POLL.
            match tokio::time::timeout(CLAIM_POLL, running.join_next()).await {
                Ok(joined) => joined,
                Err(_) => continue,
            }
        } else {
            running.join_next().await
        };
        let Some(joined) = joined else {
            if waiting {
                tokio::time::sleep(CLAIM_POLL).await;
                continue;
            }
            break;
        };
        let (index, ran) = joined.expect("step tasks do not panic");
        let (job, report) = in_flight
            .remove(&index)
            .expect("started steps are in flight");
        let settled = executor.finish(&job, report, ran);
        executor.release(&job);
        settle(settled?, &mut available, &mut states);
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
        started_at: sluice_store::time::rfc3339(started_at),
        duration: started.elapsed(),
        peak_rss: super::report::peak_rss(),
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

/// `YYYYMMDD-HHMMSS-xxxxxx`: sortable by time, unique by its suffix.
pub(crate) fn new_run_id(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let salt = Digest::of_parts([
        &since.as_nanos().to_le_bytes()[..],
        &std::process::id().to_le_bytes()[..],
    ]);
    format!("{}-{}", sluice_store::time::compact(at), salt.short(6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
        let b = new_run_id(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000));
        assert!(a < b);
        assert!(a.starts_with("19700101-001640-"), "{a}");
        assert_eq!(a.len(), "19700101-001640-abcdef".len());
    }
}
