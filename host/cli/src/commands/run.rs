//! `sluice run` and `sluice validate`.

use crate::CliContext;
use crate::ui;
use anyhow::Context as _;
use clap::Args;
use sluice_pipeline::diagnostic::Diagnostics;
use sluice_pipeline::execute::{
    self, ExecuteError, Prepared, RunOptions, RunReport, RunState, StepState,
};
use sluice_runtime::ServingProbe;
use sluice_store::{ObjectStore, Store, StoreLocation};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The pipeline spec (TOML). Optional with --resume (the run's spec is
    /// used) and with --package.
    #[arg(required_unless_present_any = ["resume", "package"])]
    pipeline: Option<PathBuf>,

    /// Create the run and its plan without executing any step: an engine
    /// (or you) then executes each step with `sluice step exec RUN STEP`,
    /// and ends the run with `sluice runs finish RUN`. Publishes the spec,
    /// its components and data into the store first. Prints the run id.
    #[arg(long, conflicts_with_all = ["resume", "jobs"])]
    plan_only: bool,

    /// With --plan-only: plan a run of the pipeline published in the store
    /// as DIGEST (what `sluice export kfp` prints), instead of a spec file.
    #[arg(
        long,
        value_name = "DIGEST",
        requires = "plan_only",
        conflicts_with = "pipeline"
    )]
    package: Option<String>,

    /// With --plan-only: the run's id (letters, digits, `.`, `_`, `-`)
    /// instead of a fresh one. Planning the same id again for the same
    /// pipeline does nothing, so an engine may retry the task that does it.
    #[arg(long, value_name = "ID", requires = "plan_only")]
    run_id: Option<String>,

    /// What started the run, recorded with it [default: manual].
    #[arg(long, value_name = "NAME")]
    trigger: Option<String>,

    /// Artifact store folder [default: .sluice next to the pipeline, or in
    /// the current folder with --resume and no PIPELINE].
    #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,

    /// Most steps running at once [default: the number of cores].
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,

    /// Run every step, even those whose results are cached.
    #[arg(long)]
    no_cache: bool,

    /// The memory limit of every step that sets none of its own in the
    /// spec (its linear memory and the tables the host holds for it), e.g.
    /// `4GiB`; over `[pipeline] limits` [default: 1GiB].
    #[arg(long, env = "SLUICE_MEMORY", value_name = "SIZE", value_parser = parse_memory)]
    memory: Option<u64>,

    /// Re-execute only what did not succeed in RUN (an id, a unique prefix
    /// of one, or `latest`), reusing the rest.
    #[arg(long, value_name = "RUN")]
    resume: Option<String>,

    /// Print the run report as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,

    /// No progress lines; only the summary (or the JSON).
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// The pipeline spec (TOML).
    pipeline: PathBuf,

    /// Print problems (or the plan) as JSON.
    #[arg(long)]
    json: bool,
}

/// A `--memory` size (`512MiB`, `4GiB`, or bytes).
fn parse_memory(text: &str) -> Result<u64, String> {
    sluice_pipeline::spec::parse_size(text).map_err(|e| format!("{e}; write a size such as 4GiB"))
}

/// Exit status of a run whose steps did not all succeed.
const EXIT_FAILED: u8 = 1;
/// Exit status when the spec or its data is invalid.
const EXIT_INVALID: u8 = 2;

pub(crate) fn run(ctx: &CliContext, args: &RunArgs) -> anyhow::Result<ExitCode> {
    if args.plan_only {
        return plan_only(ctx, args);
    }
    let store = store_of(args.pipeline.as_deref(), &args.store).open()?;
    let resume = match &args.resume {
        Some(id) => Some(store.metadata.run(id)?),
        None => None,
    };
    let pipeline = match (&args.pipeline, &resume) {
        (Some(p), _) => p.clone(),
        (None, Some(run)) => PathBuf::from(&run.spec_path),
        (None, None) => unreachable!("clap requires PIPELINE without --resume"),
    };
    let runtime = ctx.runtime()?;
    let prepared = match execute::prepare(&pipeline, &runtime, Some(&store.objects)) {
        Ok(p) => p,
        Err(diags) => return Ok(report_diagnostics(&diags, args.json)),
    };
    let store = Arc::new(store);
    let defaults = RunOptions::default();
    let options = RunOptions {
        serving: store_of(args.pipeline.as_deref(), &args.store)
            .serving_probe(ctx, store.clone())?,
        jobs: args.jobs.unwrap_or(defaults.jobs).max(1),
        use_cache: !args.no_cache,
        memory: args.memory,
        trigger: match (&args.trigger, &resume) {
            (Some(t), _) => t.clone(),
            (None, Some(_)) => "resume".into(),
            (None, None) => "manual".into(),
        },
        resume,
    };
    let report = match execute_blocking(&prepared, store.clone(), &options, args.quiet)? {
        Ok(r) => r,
        Err(ExecuteError::Data(diags)) => return Ok(report_diagnostics(&diags, args.json)),
        Err(ExecuteError::Resume(why)) => anyhow::bail!(why),
        Err(e) => return Err(e.into()),
    };
    record_policy(&store, &prepared, &report)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&prepared, &report);
    }
    Ok(match report.state {
        RunState::Succeeded => ExitCode::SUCCESS,
        RunState::Failed => ExitCode::from(EXIT_FAILED),
    })
}

/// Stores the spec's promotion policy (`[promotion]` environments and
/// gates) for each model the run registered, so that `sluice models
/// promote` anywhere applies it; a spec without one leaves the stored
/// policy alone.
fn record_policy(store: &Store, prepared: &Prepared, report: &RunReport) -> anyhow::Result<()> {
    let Some(promotion) = &prepared.spec.promotion else {
        return Ok(());
    };
    let Some(policy) = &promotion.policy else {
        return Ok(());
    };
    let text = serde_json::to_string(policy)?;
    let who = format!("sluice run {}", report.run_id);
    for name in report.steps.iter().flat_map(|s| &s.registered) {
        if promotion.model.as_ref().is_none_or(|m| m == name) {
            store
                .metadata
                .set_promotion_policy(name, &text, &who, &sluice_store::time::now())?;
        }
    }
    Ok(())
}

/// Runs a prepared pipeline to its end on a runtime of `options.jobs`
/// worker threads, showing each step's progress unless `quiet`; the outer
/// error is the runtime's failing to start.
pub(crate) fn execute_blocking(
    prepared: &Prepared,
    store: Arc<Store>,
    options: &RunOptions,
    quiet: bool,
) -> anyhow::Result<Result<RunReport, ExecuteError>> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.jobs + 1)
        .enable_time()
        .build()
        .context("starting the async runtime")?;
    let progress = Arc::new(ui::Progress::new(quiet));
    Ok(tokio.block_on(execute::execute(prepared, store, options, progress)))
}

/// `sluice run --plan-only`: publishes the spec (unless --package names
/// one published already) and plans a run of it.
fn plan_only(ctx: &CliContext, args: &RunArgs) -> anyhow::Result<ExitCode> {
    use sluice_pipeline::execute::package::{PlanOptions, plan_run, publish};
    let store = store_of(args.pipeline.as_deref(), &args.store).open()?;
    let runtime = ctx.runtime()?;
    let package: sluice_store::Digest = match (&args.package, &args.pipeline) {
        (Some(digest), _) => digest
            .trim_start_matches("sha256:")
            .parse()
            .with_context(|| format!("--package {digest}: not a SHA-256 digest"))?,
        (None, Some(pipeline)) => {
            let prepared = match execute::prepare(pipeline, &runtime, Some(&store.objects)) {
                Ok(p) => p,
                Err(diags) => return Ok(report_diagnostics(&diags, args.json)),
            };
            match publish(&prepared, &store) {
                Ok((digest, _)) => digest,
                Err(ExecuteError::Data(diags)) => return Ok(report_diagnostics(&diags, args.json)),
                Err(e) => return Err(e.into()),
            }
        }
        (None, None) => unreachable!("clap requires PIPELINE or --package"),
    };
    let options = PlanOptions {
        run_id: args.run_id.clone(),
        use_cache: !args.no_cache,
        memory: args.memory,
        trigger: args.trigger.clone().unwrap_or_else(|| "manual".into()),
    };
    let planned = match plan_run(&store, &runtime, &package, &options) {
        Ok(p) => p,
        Err(ExecuteError::Data(diags)) => return Ok(report_diagnostics(&diags, args.json)),
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&planned)?);
        return Ok(ExitCode::SUCCESS);
    }
    if !args.quiet {
        eprintln!(
            "{} run {} of pipeline {} (package {}, plan {}): {} step(s): {}",
            if planned.existed {
                "already planned:"
            } else {
                "planned"
            },
            planned.run_id,
            planned.pipeline,
            planned.package.short(12),
            planned.plan.short(12),
            planned.steps.len(),
            planned.steps.join(" → ")
        );
        eprintln!(
            "execute each step with `sluice step exec {} STEP` (in that order, or any order an engine's dependencies allow), then end the run with `sluice runs finish {}`",
            planned.run_id, planned.run_id
        );
    }
    println!("{}", planned.run_id);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn validate(ctx: &CliContext, args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let runtime = ctx.runtime()?;
    match execute::prepare(&args.pipeline, &runtime, None) {
        Ok(p) => {
            if args.json {
                let steps: Vec<_> = p
                    .plan
                    .steps
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "name": s.name(),
                            "component": s.step.component.to_string(),
                            "params": s.params.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<serde_json::Map<_, _>>(),
                            "inputs": s.inputs.iter().map(|i| (i.port.clone(), serde_json::Value::String(i.source.to_string()))).collect::<serde_json::Map<_, _>>(),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"valid": true, "pipeline": p.plan.name, "steps": steps})
                    )?
                );
            } else {
                let order: Vec<&str> = p.plan.steps.iter().map(|s| s.name()).collect();
                println!(
                    "{} is valid: {} step(s), {} data input(s); run order: {}",
                    args.pipeline.display(),
                    order.len(),
                    p.plan.data.len(),
                    order.join(" → ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => Ok(report_diagnostics(&diags, args.json)),
    }
}

/// `--metadata` / `SLUICE_METADATA_URL`, set once by `main`.
static METADATA: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Records where every command's store keeps its metadata when the user
/// said (`--metadata`, `SLUICE_METADATA_URL`); it wins over the spec and
/// the store file.
pub(crate) fn set_metadata_location(location: Option<String>) {
    let _ = METADATA.set(location.filter(|l| !l.is_empty()));
}

/// Opens the store (metadata in `./.sluice` when the store is remote).
pub(crate) fn open_store(dir: &Path) -> anyhow::Result<Store> {
    open_store_near(dir, &default_store_dir(), None)
}

/// Opens the store and marks runs whose process died as interrupted.
///
/// `dir` is a folder, an `s3://bucket/prefix` URL or a `.toml` store file
/// (see [`StoreLocation::resolve`]). The metadata is where `--metadata` /
/// `SLUICE_METADATA_URL` says, else `spec_metadata` (the spec's
/// `pipeline.metadata`), else where the store file says, else in the
/// store's folder — or, for a bucket, in `SLUICE_METADATA_DIR` or else
/// `local_default`.
pub(crate) fn open_store_near(
    dir: &Path,
    local_default: &Path,
    spec_metadata: Option<&str>,
) -> anyhow::Result<Store> {
    let text = dir.to_string_lossy();
    let location = store_location(dir, local_default, spec_metadata)?;
    let store = Store::open_at(&location).with_context(|| {
        format!(
            "opening the store at {text} (metadata in {})",
            location.metadata.display()
        )
    })?;
    let now = sluice_store::time::now();
    for id in store.recover(&now)? {
        eprintln!(
            "note: run {id} was interrupted (its process stopped); `sluice run --resume {id}` completes it"
        );
    }
    Ok(store)
}

/// Where the store named `dir` keeps its objects and metadata (see
/// [`open_store_near`]).
pub(crate) fn store_location(
    dir: &Path,
    local_default: &Path,
    spec_metadata: Option<&str>,
) -> anyhow::Result<StoreLocation> {
    let text = dir.to_string_lossy();
    let local = match std::env::var_os("SLUICE_METADATA_DIR") {
        Some(d) if ObjectStore::is_remote_url(&text) || text.ends_with(".toml") => PathBuf::from(d),
        _ => local_default.to_path_buf(),
    };
    let metadata = METADATA
        .get()
        .cloned()
        .flatten()
        .or_else(|| spec_metadata.map(str::to_string));
    StoreLocation::resolve(&text, &local, metadata.as_deref())
        .with_context(|| format!("opening the store at {text}"))
}

/// The store of commands that take no pipeline: `.sluice` here.
pub(crate) fn default_store_dir() -> PathBuf {
    PathBuf::from(".sluice")
}

/// Where a pipeline's store is.
pub(crate) struct StoreOf {
    /// `--store` or `SLUICE_STORE`, else the spec's `pipeline.store`, else
    /// `.sluice` next to the spec.
    pub(crate) dir: PathBuf,
    /// `.sluice` next to the spec: a bucket's metadata folder by default.
    pub(crate) local: PathBuf,
    /// The spec's `pipeline.metadata`.
    pub(crate) metadata: Option<String>,
}

impl StoreOf {
    /// Opens it (see [`open_store_near`]).
    pub(crate) fn open(&self) -> anyhow::Result<Store> {
        open_store_near(&self.dir, &self.local, self.metadata.as_deref())
    }

    /// What starts a model in the real model server on this store, for
    /// steps that probe the serving path (see [`serving_probe`]).
    pub(crate) fn serving_probe(
        &self,
        ctx: &CliContext,
        store: Arc<Store>,
    ) -> anyhow::Result<Option<Arc<dyn ServingProbe>>> {
        let location = store_location(&self.dir, &self.local, self.metadata.as_deref())?;
        Ok(serving_probe(ctx, &self.dir, &location.metadata, store))
    }
}

/// What starts a model in the real model server for steps that probe the
/// serving path (`std:infra-validate`): this very binary as `sluice serve`,
/// on the store at `store_dir` with its metadata at `metadata`, so that the
/// server loads the model exactly as production would. `None` (a probe is
/// then refused with a reason) when this executable cannot be found.
pub(crate) fn serving_probe(
    ctx: &CliContext,
    store_dir: &Path,
    metadata: &sluice_store::MetadataLocation,
    store: Arc<Store>,
) -> Option<Arc<dyn ServingProbe>> {
    let exe = std::env::current_exe().ok()?;
    let metadata = match metadata {
        sluice_store::MetadataLocation::Sqlite(path) => path.display().to_string(),
        sluice_store::MetadataLocation::Postgres(url) => url.clone(),
    };
    Some(Arc::new(sluice_serve::infra::ServerProbe::new(
        exe,
        store_dir.to_path_buf(),
        Some(metadata),
        ctx.cache_dir.clone(),
        store,
    )))
}

/// The store of a pipeline (see [`StoreOf`]).
pub(crate) fn store_of(pipeline: Option<&Path>, store: &Option<PathBuf>) -> StoreOf {
    let local = match pipeline {
        Some(p) => default_store(p),
        None => default_store_dir(),
    };
    let spec = pipeline.and_then(|p| sluice_pipeline::spec::Spec::load(p).ok());
    let from_spec = match store {
        None => spec
            .as_ref()
            .and_then(|s| s.store.clone())
            .map(PathBuf::from),
        Some(_) => None,
    };
    StoreOf {
        dir: store.clone().or(from_spec).unwrap_or_else(|| local.clone()),
        local,
        metadata: spec.and_then(|s| s.metadata),
    }
}

fn default_store(pipeline: &Path) -> PathBuf {
    pipeline.parent().unwrap_or(Path::new(".")).join(".sluice")
}

/// Prints a spec's problems (or their JSON) and gives the exit code of an
/// invalid spec.
pub(crate) fn report_diagnostics(diags: &Diagnostics, json: bool) -> ExitCode {
    if json {
        let out = serde_json::json!({"valid": false, "errors": diags.0});
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("diagnostics serialise")
        );
    } else {
        eprintln!("{diags}");
        eprintln!(
            "{} {} problem(s) found; nothing was run.",
            ui::error_label(),
            diags.len()
        );
    }
    ExitCode::from(EXIT_INVALID)
}

fn print_summary(prepared: &Prepared, report: &RunReport) {
    let mut rows = vec![vec![
        "STEP".to_string(),
        "STATE".into(),
        "DURATION".into(),
        "OUTPUTS".into(),
    ]];
    for step in &report.steps {
        let outputs = if step.outputs.is_empty() {
            step.message.clone().unwrap_or_default()
        } else {
            step.outputs
                .iter()
                .map(|o| {
                    format!(
                        "{}: {} {} {}",
                        o.port,
                        o.kind,
                        sluice_runtime::outcome::bytes(o.size),
                        o.digest.short(12)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        rows.push(vec![
            step.name.clone(),
            ui::state(step.state),
            ui::duration(step.duration),
            outputs,
        ]);
    }
    println!();
    ui::print_table(&rows);
    println!();

    for step in report.steps.iter().filter(|s| s.state == StepState::Failed) {
        eprintln!(
            "{} step `{}` {}",
            ui::error_label(),
            step.name,
            step.message.as_deref().unwrap_or("failed")
        );
        let tail: Vec<&str> = step.stderr.lines().rev().take(10).collect();
        if !tail.is_empty() {
            eprintln!("  last lines of its stderr:");
            for line in tail.into_iter().rev() {
                eprintln!("    {line}");
            }
        }
        for log in step
            .logs
            .iter()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            eprintln!("  log {:?}: {}", log.level, log.message);
        }
    }
    let _ = prepared;
    println!(
        "run {} {} in {}; {} step(s); {}store {}",
        report.run_id,
        match report.state {
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
        },
        ui::duration(report.duration),
        report.steps.len(),
        report
            .peak_rss
            .map(|b| format!("peak memory {}; ", sluice_tables::memory::human(b)))
            .unwrap_or_default(),
        report.store
    );
}
