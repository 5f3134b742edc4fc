//! `sluice step exec`: one step of a planned run, as an engine's task runs it.

use crate::CliContext;
use crate::commands::run::{default_store_dir, open_store, serving_probe, store_location};
use crate::ui;
use anyhow::Context as _;
use clap::Subcommand;
use sluice_pipeline::execute::StepState;
use sluice_pipeline::execute::task::{TaskError, TaskReport, exec_step};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The step failed (its failure is recorded).
pub(crate) const EXIT_FAILED: u8 = 1;
/// Bad arguments: no such run or step, a run not planned for an engine.
pub(crate) const EXIT_USAGE: u8 = 2;
/// The step was skipped: a step upstream did not succeed.
pub(crate) const EXIT_SKIPPED: u8 = 3;
/// Try again later (EX_TEMPFAIL): inputs not recorded yet, the step held
/// by another task, or the store unreachable.
pub(crate) const EXIT_RETRY: u8 = 75;

#[derive(Debug, Subcommand)]
pub(crate) enum StepCommand {
    /// Execute one step of a planned run, in this process, against the
    /// store: what each task of an engine (Kubeflow Pipelines, Vertex AI)
    /// runs.
    ///
    /// Reads everything from the store: the run's plan (made by `sluice
    /// run --plan-only`), the step's inputs (the run's data and the outputs
    /// its upstream steps recorded) and its component (by digest). A cached
    /// result is reused without loading the component. Running it again
    /// for the same run and step does the work once: a settled step
    /// reports its recorded outcome, a second task waits for the first,
    /// and a step whose task died is run again.
    ///
    /// Exit status: 0 succeeded or cached; 1 the step failed; 2 no such
    /// run or step; 3 skipped (a step upstream did not succeed); 75 try
    /// again later (inputs not recorded yet, or the store unreachable).
    #[command(after_help = "Examples:
  sluice run pipeline.toml --plan-only --store team.toml     prints RUN
  sluice step exec RUN ingest --store team.toml
  sluice step exec RUN train --store team.toml --json
  sluice runs finish RUN --store team.toml")]
    Exec {
        /// The run (its exact id).
        run: String,
        /// The step's name, as in the spec.
        step: String,
        /// The store: a folder, s3://bucket/prefix, or a store file
        /// (team.toml) [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "STORE")]
        store: Option<PathBuf>,
        /// Print the step's outcome as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// No progress lines.
        #[arg(short, long)]
        quiet: bool,
    },
}

pub(crate) fn run(ctx: &CliContext, cmd: &StepCommand) -> anyhow::Result<ExitCode> {
    let StepCommand::Exec {
        run,
        step,
        store,
        json,
        quiet,
    } = cmd;
    let store_dir = store.clone().unwrap_or_else(default_store_dir);
    let store = match open_task_store(store) {
        Ok(s) => Arc::new(s),
        Err(code) => return Ok(code),
    };
    let serving = store_location(&store_dir, &default_store_dir(), None)
        .ok()
        .and_then(|l| serving_probe(ctx, &store_dir, &l.metadata, store.clone()));
    let runtime = || {
        ctx.runtime()
            .map_err(|e| sluice_pipeline::execute::ExecuteError::Artifact(format!("{e:#}")))
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .context("starting the async runtime")?;
    let progress = Arc::new(ui::Progress::new(*quiet));
    let outcome = tokio.block_on(exec_step(store, &runtime, run, step, progress, serving));
    let report = match outcome {
        Ok(report) => report,
        Err(e) => {
            eprintln!("{} {e}", ui::error_label());
            return Ok(ExitCode::from(exit_for_error(&e)));
        }
    };
    if *json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !*quiet {
        print_report(&report);
    }
    Ok(ExitCode::from(exit_for(&report)))
}

/// Opens the store for an engine's task; when it cannot, says why and
/// gives the exit status: 75 (try again) when the store could not be
/// reached, 2 when it is misnamed.
pub(crate) fn open_task_store(store: &Option<PathBuf>) -> Result<sluice_store::Store, ExitCode> {
    open_store(&store.clone().unwrap_or_else(default_store_dir)).map_err(|e| {
        eprintln!("{} {e:#}", ui::error_label());
        ExitCode::from(if is_transient(&e) {
            EXIT_RETRY
        } else {
            EXIT_USAGE
        })
    })
}

/// The exit status of a settled step.
pub(crate) fn exit_for(report: &TaskReport) -> u8 {
    match report.state {
        StepState::Succeeded | StepState::Cached => 0,
        StepState::Failed => EXIT_FAILED,
        StepState::Skipped => EXIT_SKIPPED,
    }
}

/// The exit status of a task that could not settle its step.
fn exit_for_error(e: &TaskError) -> u8 {
    if e.is_retryable() {
        EXIT_RETRY
    } else {
        match e {
            TaskError::UnknownStep { .. } | TaskError::RunOver { .. } => EXIT_USAGE,
            TaskError::Execute(sluice_pipeline::execute::ExecuteError::Metadata(
                sluice_store::MetadataError::NotFound(_),
            ))
            | TaskError::Execute(sluice_pipeline::execute::ExecuteError::Resume(_)) => EXIT_USAGE,
            _ => EXIT_FAILED,
        }
    }
}

/// Whether opening the store failed in a way that may pass (a server that
/// could not be reached).
fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<sluice_store::OpenError>()
            .is_some_and(|e| e.is_transient())
            || c.downcast_ref::<sluice_store::MetadataError>()
                .is_some_and(|e| e.is_transient())
            || c.downcast_ref::<sluice_store::StoreError>()
                .is_some_and(|e| e.is_transient())
    })
}

fn print_report(report: &TaskReport) {
    let outputs: Vec<String> = report
        .outputs
        .iter()
        .map(|(port, digest)| format!("{port}: {}", digest.short(12)))
        .collect();
    println!(
        "step {} of run {}: {}{} (execution {}){}",
        report.step,
        report.run_id,
        report.state.as_str(),
        if report.settled_now {
            ""
        } else {
            " earlier; not run again"
        },
        report.execution_id,
        if outputs.is_empty() {
            report
                .message
                .as_deref()
                .map(|m| format!(" — {m}"))
                .unwrap_or_default()
        } else {
            format!("; {}", outputs.join(", "))
        }
    );
}
