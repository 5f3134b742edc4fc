//! Pipelines made runnable from the store alone, and runs planned for an
//! engine to drive step by step.
//!
//! On a cluster every step runs in a pod of its own that has nothing but
//! the `sluice` binary and the team store: no checkout, no spec file, no
//! data files, no `.wasm` files. So:
//!
//! - [`publish`] puts everything a run needs into the store — the spec's
//!   text, each component the spec names by path, each data file — and a
//!   [`Package`] that lists them by digest; the package's digest is all a
//!   pod needs to know of the pipeline;
//! - [`plan_run`] creates a run of a package without executing it: it
//!   loads and describes every component once, resolves registry models,
//!   records the data imports and the run's [`RunPlan`] — in the metadata
//!   database, with the run, so that a task whose step is cached reads
//!   nothing from the object store. Planning a run id twice is a no-op, so
//!   an engine may retry the task that does it;
//! - [`super::task`] executes one step of a planned run in a fresh process
//!   from the plan alone, and ends the run.
//!
//! Every object published is also recorded as an artifact (kinds `spec`,
//! `package`, and the data's own), so that gc keeps it and `sluice store
//! verify` and `store migrate` cover it.

use super::ExecuteError;
use super::artifacts::read_data_file;
use super::prepare::{ComponentFiles, Prepared, prepare_spec};
use crate::diagnostic::Diagnostics;
use crate::spec::{ComponentRef, DataKind, Spec};
use crate::validate::{Plan, validate_with};
use serde::{Deserialize, Serialize};
use sluice_runtime::{Digest, Manifest, Runtime};
use sluice_store::Store;
use sluice_store::metadata::{NewRun, RunRecord};
use std::collections::BTreeMap;
use std::path::Path;

/// The format of a stored [`Package`].
pub const PACKAGE_FORMAT: &str = "sluice-package/1";
/// The format of a stored [`RunPlan`].
pub const PLAN_FORMAT: &str = "sluice-run-plan/1";

/// A published pipeline: its spec and everything the spec names on disk,
/// by digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// [`PACKAGE_FORMAT`].
    pub format: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The spec's file name: diagnostics name it, and the paths the spec
    /// writes are relative to it.
    pub spec_name: String,
    /// The digest of the spec's text.
    pub spec: Digest,
    /// Each component the spec names by path (as it writes it) → its digest.
    pub components: BTreeMap<String, Digest>,
    /// Each `[data]` file, by name.
    pub data: BTreeMap<String, StoredInput>,
}

/// An input a run imports: a data file, or a registry model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredInput {
    /// The path the spec wrote, or the model reference (`NAME@ALIAS`).
    pub path: String,
    /// The artifact kind (`file`, `table`, `model`).
    pub kind: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// What a planned run executes: the spec, each component's digest and
/// manifest (so a step's task validates the spec without loading every
/// component), the registry models as they were when the run was planned,
/// and the run's options. Self-contained: a step's task reads nothing
/// else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunPlan {
    /// [`PLAN_FORMAT`].
    pub format: String,
    /// The digest of the [`Package`] it plans.
    pub package: Digest,
    /// The spec's file name (see [`Package::spec_name`]).
    pub spec_name: String,
    /// The spec's text.
    pub spec: String,
    /// Each component, by the name the spec gives it (`std:train`, a
    /// path, `sha256:…`).
    pub components: BTreeMap<String, PlannedComponent>,
    /// Each `[data]` input naming a registry model → the model's artifact,
    /// or `None` when the registry had none.
    pub models: BTreeMap<String, Option<StoredInput>>,
    /// Whether steps may reuse cached results.
    pub use_cache: bool,
    /// The memory limit of every step that sets none of its own.
    pub memory: Option<u64>,
}

/// One component of a planned run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedComponent {
    /// Its digest: the same bytes run in every task.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// What it declared when the run was planned.
    pub manifest: Manifest,
}

/// How to plan a run.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The run's id; a fresh one when `None`.
    pub run_id: Option<String>,
    /// Whether steps may reuse cached results.
    pub use_cache: bool,
    /// The memory limit of every step that sets none of its own.
    pub memory: Option<u64>,
    /// What started the run (`kfp`, `manual`, …).
    pub trigger: String,
}

/// A run created by [`plan_run`].
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRun {
    /// Its id.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The digest of its [`RunPlan`].
    pub plan: Digest,
    /// The digest of its [`Package`].
    pub package: Digest,
    /// Its steps, in an order that respects their dependencies.
    pub steps: Vec<String>,
    /// Whether the run had been planned already (by an earlier try of the
    /// same task): nothing was changed.
    pub existed: bool,
}

/// Puts the spec of `prepared`, the components it names by path and its
/// data files into `store`, then the [`Package`] listing them; returns the
/// package's digest. Publishing the same files again — from any folder, on
/// any machine — gives the same digest.
pub fn publish(prepared: &Prepared, store: &Store) -> Result<(Digest, Package), ExecuteError> {
    let spec = &prepared.spec;
    let spec_name = spec
        .path
        .file_name()
        .map_or("pipeline.toml".into(), |n| n.to_string_lossy().into_owned());
    // The spec as a task reads it: under its bare file name, so paths
    // resolve to what the spec writes.
    let published = Spec::parse(Path::new(&spec_name), &spec.source).map_err(ExecuteError::Data)?;
    let mut objects: Vec<(Digest, &str, u64)> = Vec::new();
    let mut components = BTreeMap::new();
    for (step, as_published) in spec.steps.iter().zip(&published.steps) {
        if let (ComponentRef::Path(_), ComponentRef::Path(key)) =
            (&step.component, &as_published.component)
        {
            let component = &prepared.components[&step.component];
            components.insert(key.display().to_string(), component.digest());
        }
    }
    let mut data = BTreeMap::new();
    for input in spec.data.iter().filter(|d| d.kind != DataKind::Model) {
        let bytes = read_data_file(input).map_err(ExecuteError::Artifact)?;
        let digest = store.put(&bytes, true)?;
        let kind = input.kind.artifact_kind().as_str();
        objects.push((digest, kind, bytes.len() as u64));
        data.insert(
            input.name.clone(),
            StoredInput {
                path: input.raw_path.clone(),
                kind: kind.to_string(),
                digest,
                size: bytes.len() as u64,
            },
        );
    }
    let spec_digest = store.put(spec.source.as_bytes(), true)?;
    objects.push((spec_digest, "spec", spec.source.len() as u64));
    let package = Package {
        format: PACKAGE_FORMAT.into(),
        pipeline: prepared.plan.name.clone(),
        spec_name,
        spec: spec_digest,
        components,
        data,
    };
    let bytes = serde_json::to_vec_pretty(&package).expect("a package serialises");
    let digest = store.put(&bytes, true)?;
    objects.push((digest, "package", bytes.len() as u64));
    store.metadata.record_artifacts(&objects)?;
    Ok((digest, package))
}

/// The package stored as `digest`.
pub fn load_package(store: &Store, digest: &Digest) -> Result<Package, ExecuteError> {
    let bytes = store.objects.get(digest)?;
    let package: Package = serde_json::from_slice(&bytes).map_err(|e| {
        ExecuteError::Artifact(format!("{digest} is not a published pipeline: {e}"))
    })?;
    if package.format != PACKAGE_FORMAT {
        return Err(ExecuteError::Artifact(format!(
            "{digest} is a published pipeline of format `{}`, which this sluice does not read (it reads {PACKAGE_FORMAT}); publish it again with this sluice",
            package.format
        )));
    }
    Ok(package)
}

/// The plan of a run, recorded under `digest`.
pub fn load_plan(store: &Store, digest: &Digest) -> Result<RunPlan, ExecuteError> {
    let text = store
        .metadata
        .run_plan(digest)?
        .ok_or_else(|| ExecuteError::Artifact(format!("no run plan {digest} in the metadata")))?;
    let plan: RunPlan = serde_json::from_str(&text)
        .map_err(|e| ExecuteError::Artifact(format!("run plan {digest} cannot be read: {e}")))?;
    if plan.format != PLAN_FORMAT {
        return Err(ExecuteError::Artifact(format!(
            "{digest} is a run plan of format `{}`, which this sluice does not read (it reads {PLAN_FORMAT}); run every task with the sluice that planned the run",
            plan.format
        )));
    }
    Ok(plan)
}

/// The spec of `package`, parsed under its file name.
fn package_spec(store: &Store, package: &Package) -> Result<Spec, ExecuteError> {
    let bytes = store.objects.get(&package.spec)?;
    let source = String::from_utf8(bytes.to_vec())
        .map_err(|_| ExecuteError::Artifact(format!("spec {} is not UTF-8 text", package.spec)))?;
    Spec::parse(Path::new(&package.spec_name), &source).map_err(ExecuteError::Data)
}

/// Whether `id` can name a run an engine plans: 1 to 128 letters, digits,
/// `.`, `_` and `-` (a KFP job's UUID is one).
pub fn is_valid_run_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Creates a run of the package stored as `package` without executing any
/// step: every component is loaded and described (so a bad component
/// fails here, once), registry models are resolved, the data imports are
/// recorded and the [`RunPlan`] is stored. Planning a run id that was
/// planned for the same package already returns that run unchanged.
pub fn plan_run(
    store: &Store,
    runtime: &Runtime,
    package_digest: &Digest,
    options: &PlanOptions,
) -> Result<PlannedRun, ExecuteError> {
    let package = load_package(store, package_digest)?;
    let run_id = match &options.run_id {
        Some(id) if !is_valid_run_id(id) => {
            return Err(ExecuteError::Resume(format!(
                "`{id}` cannot be a run id: use 1 to 128 letters, digits, `.`, `_` and `-`"
            )));
        }
        Some(id) => id.clone(),
        None => super::scheduler::new_run_id(std::time::SystemTime::now()),
    };
    if let Some(existing) = existing_run(store, &run_id)? {
        return already_planned(store, &existing, package_digest);
    }

    let spec = package_spec(store, &package)?;
    let prepared = prepare_spec(
        spec,
        runtime,
        Some(&store.objects),
        ComponentFiles::Published(&package.components),
    )
    .map_err(ExecuteError::Data)?;
    let mut components = BTreeMap::new();
    for planned in &prepared.plan.steps {
        let component = &prepared.components[&planned.step.component];
        components.insert(
            planned.step.component.to_string(),
            PlannedComponent {
                digest: component.digest(),
                size: component.size() as u64,
                manifest: planned.manifest.clone(),
            },
        );
    }
    let mut models = BTreeMap::new();
    for input in prepared
        .spec
        .data
        .iter()
        .filter(|d| d.kind == DataKind::Model)
    {
        models.insert(input.name.clone(), resolve_model(store, &input.raw_path)?);
    }
    let plan = RunPlan {
        format: PLAN_FORMAT.into(),
        package: *package_digest,
        spec_name: package.spec_name.clone(),
        spec: prepared.spec.source.clone(),
        components,
        models,
        use_cache: options.use_cache,
        memory: options.memory,
    };
    let text = serde_json::to_string(&plan).expect("a plan serialises");
    let plan_digest = Digest::of(text.as_bytes());
    let imports: Vec<(&str, &str, Digest, &str, u64)> = package
        .data
        .iter()
        .map(|(name, d)| {
            (
                name.as_str(),
                d.path.as_str(),
                d.digest,
                d.kind.as_str(),
                d.size,
            )
        })
        .collect();
    let started_at = sluice_store::time::now();
    let started = store.metadata.start_planned_run(
        &NewRun {
            id: &run_id,
            pipeline: &package.pipeline,
            spec_path: &format!("{}@{}", package.spec_name, package_digest.short(12)),
            spec_digest: &package.spec,
            trigger: &options.trigger,
            started_at: &started_at,
        },
        (&plan_digest, &text),
        &imports,
    );
    if let Err(e) = started {
        // Two tries of the same task at once: the other one planned it.
        return match existing_run(store, &run_id)? {
            Some(existing) => already_planned(store, &existing, package_digest),
            None => Err(e.into()),
        };
    }
    Ok(PlannedRun {
        run_id,
        pipeline: package.pipeline,
        plan: plan_digest,
        package: *package_digest,
        steps: prepared
            .plan
            .steps
            .iter()
            .map(|s| s.name().to_string())
            .collect(),
        existed: false,
    })
}

/// The run with exactly this id, if any.
fn existing_run(store: &Store, id: &str) -> Result<Option<RunRecord>, ExecuteError> {
    match store.metadata.run(id) {
        Ok(run) if run.id == id => Ok(Some(run)),
        Ok(_) | Err(sluice_store::MetadataError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `existing` when it is a planned run of `package`; an error otherwise.
fn already_planned(
    store: &Store,
    existing: &RunRecord,
    package_digest: &Digest,
) -> Result<PlannedRun, ExecuteError> {
    let taken = |what: String| {
        ExecuteError::Resume(format!(
            "run {} exists already and {what}; choose another run id",
            existing.id
        ))
    };
    let Some(plan_hex) = &existing.plan else {
        return Err(taken(format!(
            "was started by `sluice run` (pipeline {})",
            existing.pipeline
        )));
    };
    let plan_digest: Digest = plan_hex
        .parse()
        .map_err(|e: sluice_store::DigestParseError| ExecuteError::Artifact(e.to_string()))?;
    let plan = load_plan(store, &plan_digest)?;
    if plan.package != *package_digest {
        return Err(taken(format!(
            "runs another published pipeline ({})",
            plan.package.short(12)
        )));
    }
    let order = plan_spec(&plan)
        .and_then(|spec| validate_planned(&spec, &plan).map_err(ExecuteError::Data))
        .map(|p| p.steps.iter().map(|s| s.name().to_string()).collect())
        .unwrap_or_default();
    Ok(PlannedRun {
        run_id: existing.id.clone(),
        pipeline: existing.pipeline.clone(),
        plan: plan_digest,
        package: *package_digest,
        steps: order,
        existed: true,
    })
}

/// The artifact a registry reference names now, if any.
fn resolve_model(store: &Store, reference: &str) -> Result<Option<StoredInput>, ExecuteError> {
    let parsed: sluice_store::ModelRef =
        reference
            .parse()
            .map_err(|e: sluice_store::registry::ModelRefError| {
                ExecuteError::Artifact(e.to_string())
            })?;
    let Some(version) = store.metadata.resolve_model(&parsed)? else {
        return Ok(None);
    };
    let size = store
        .metadata
        .artifact(&version.artifact)?
        .map_or(0, |a| a.size.max(0) as u64);
    Ok(Some(StoredInput {
        path: reference.to_string(),
        kind: "model".into(),
        digest: version.artifact,
        size,
    }))
}

/// A planned run, opened to execute or end its steps: its record, plan,
/// spec and validated plan of steps — without loading any component.
pub struct OpenedRun {
    /// The run as recorded.
    pub run: RunRecord,
    /// Its plan.
    pub plan: RunPlan,
    /// The published spec.
    pub spec: Spec,
    /// The steps, validated against the manifests the plan recorded.
    pub steps: Plan,
}

/// Opens run `run_id` (exactly that id) of `store`, which must have been
/// planned ([`plan_run`]).
pub fn open_planned(store: &Store, run_id: &str) -> Result<OpenedRun, ExecuteError> {
    let run = existing_run(store, run_id)?.ok_or_else(|| {
        ExecuteError::Metadata(sluice_store::MetadataError::NotFound(format!(
            "no run `{run_id}` in this store; plan it first with `sluice run --plan-only` (the first task of an exported pipeline does)"
        )))
    })?;
    let Some(plan_hex) = &run.plan else {
        return Err(ExecuteError::Resume(format!(
            "run {run_id} was started by `sluice run`, which executes its steps itself; `sluice step exec` executes the steps of runs planned with `sluice run --plan-only`"
        )));
    };
    let plan_digest: Digest = plan_hex
        .parse()
        .map_err(|e: sluice_store::DigestParseError| ExecuteError::Artifact(e.to_string()))?;
    let plan = load_plan(store, &plan_digest)?;
    let spec = plan_spec(&plan)?;
    let steps = validate_planned(&spec, &plan).map_err(ExecuteError::Data)?;
    Ok(OpenedRun {
        run,
        plan,
        spec,
        steps,
    })
}

/// The spec a plan carries, parsed under its file name.
fn plan_spec(plan: &RunPlan) -> Result<Spec, ExecuteError> {
    Spec::parse(Path::new(&plan.spec_name), &plan.spec).map_err(ExecuteError::Data)
}

/// Validates `spec` against the manifests `plan` recorded.
fn validate_planned(spec: &Spec, plan: &RunPlan) -> Result<Plan, Diagnostics> {
    let resolver = |r: &ComponentRef| {
        plan.components
            .get(&r.to_string())
            .map(|c| c.manifest.clone())
            .ok_or_else(|| format!("component {r} is not in the run's plan"))
    };
    validate_with(spec, &resolver, false)
}
