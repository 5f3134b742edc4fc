//! `sluice runs …`: what ran, and why.

use crate::commands::run::{default_store_dir, open_store};
use crate::ui;
use clap::Subcommand;
use sluice_pipeline::execute::explain;
use sluice_store::metadata::ExecutionRecord;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs of this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one run: its steps, their states, outputs and failures.
    Show {
        /// A run id, a unique prefix of one, or `latest`.
        run: String,
        /// Say for each step why it ran or was reused: which part of its
        /// cache key (component, a param, an input) changed since the
        /// previous execution of that step.
        #[arg(long)]
        explain: bool,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// End a run planned with `sluice run --plan-only` once its steps'
    /// tasks are done: what the last task of an exported pipeline runs.
    ///
    /// A step no task settled is recorded as skipped, saying why (the
    /// step upstream that did not succeed, or that its task never ran); a
    /// step whose task died is recorded as interrupted. The run succeeds
    /// when every step succeeded or was cached. Ending it again reports how
    /// it ended. Exit status: 0 succeeded, 1 failed, 2 no such planned run,
    /// 75 a step's task is still running (try again later).
    Finish {
        /// The run (its exact id).
        run: String,
        /// The store: a folder, s3://bucket/prefix, or a store file
        /// (team.toml) [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "STORE")]
        store: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(cmd: &RunsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCommand::Finish { run, store, json } => finish(run, store, *json),
        RunsCommand::List {
            pipeline,
            limit,
            store,
            json,
        } => {
            let store = open_store(&store.clone().unwrap_or_else(default_store_dir))?;
            let runs = store.metadata.runs(pipeline.as_deref(), *limit)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = vec![vec![
                "RUN".to_string(),
                "PIPELINE".into(),
                "STATE".into(),
                "STARTED".into(),
                "BY".into(),
                "TRIGGER".into(),
            ]];
            for r in &runs {
                rows.push(vec![
                    r.id.clone(),
                    r.pipeline.clone(),
                    r.state.to_string(),
                    r.started_at.clone(),
                    r.started_by.clone().unwrap_or_else(|| "-".into()),
                    r.trigger.clone(),
                ]);
            }
            ui::print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show {
            run,
            explain: want_explain,
            store,
            json,
        } => {
            let store = open_store(&store.clone().unwrap_or_else(default_store_dir))?;
            let record = store.metadata.run(run)?;
            let executions = store.metadata.executions(&record.id)?;
            let mut explained: Vec<(ExecutionRecord, Vec<String>)> = Vec::new();
            for e in executions {
                let why = if *want_explain {
                    let previous =
                        store
                            .metadata
                            .previous_execution(&e.step, &record.pipeline, e.id)?;
                    explain(&e, previous.as_ref())
                } else {
                    Vec::new()
                };
                explained.push((e, why));
            }
            if *json {
                let steps: Vec<_> = explained
                    .iter()
                    .map(|(e, why)| {
                        let mut v = serde_json::to_value(e).unwrap();
                        if *want_explain {
                            v["explain"] = serde_json::json!(why);
                        }
                        v
                    })
                    .collect();
                let out = serde_json::json!({"run": record, "steps": steps});
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "run {}  pipeline {}  {}  started {}  trigger {}{}",
                record.id,
                record.pipeline,
                record.state,
                record.started_at,
                record.trigger,
                record
                    .resumed_from
                    .as_ref()
                    .map(|r| format!("  resumed from {r}"))
                    .unwrap_or_default()
            );
            println!("spec {} ({})", record.spec_path, &record.spec_digest[..12]);
            for (name, path, digest) in store.metadata.imports(&record.id)? {
                println!("data {name} = {path} ({})", digest.short(12));
            }
            println!();
            let mut rows = vec![vec![
                "STEP".to_string(),
                "STATE".into(),
                "DURATION".into(),
                "OUTPUTS".into(),
            ]];
            for (e, _) in &explained {
                let outputs: Vec<String> = e
                    .events
                    .iter()
                    .filter(|ev| ev.direction == "output")
                    .map(|ev| format!("{}: {}", ev.port, ev.artifact.short(12)))
                    .collect();
                rows.push(vec![
                    e.step.clone(),
                    e.state.to_string(),
                    e.duration_ms
                        .map(|ms| ui::duration(std::time::Duration::from_secs_f64(ms / 1000.0)))
                        .unwrap_or_default(),
                    if outputs.is_empty() {
                        e.error.clone().unwrap_or_default()
                    } else {
                        outputs.join(", ")
                    },
                ]);
            }
            ui::print_table(&rows);
            if *want_explain {
                println!();
                for (e, why) in &explained {
                    println!("{}:", e.step);
                    for w in why {
                        println!("  {w}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `sluice runs finish`.
fn finish(run: &str, store: &Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    use crate::commands::step::{EXIT_FAILED, EXIT_RETRY, EXIT_USAGE, open_task_store};
    use sluice_pipeline::execute::task::finish_run;
    use sluice_store::metadata::RunState;
    let store = match open_task_store(store) {
        Ok(s) => Arc::new(s),
        Err(code) => return Ok(code),
    };
    let finished = match finish_run(&store, run) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{} {e}", ui::error_label());
            return Ok(ExitCode::from(if e.is_retryable() {
                EXIT_RETRY
            } else {
                EXIT_USAGE
            }));
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&finished)?);
    } else {
        let mut rows = vec![vec![
            "STEP".to_string(),
            "STATE".into(),
            "EXECUTION".into(),
            "OUTPUTS".into(),
        ]];
        for s in &finished.steps {
            let outputs: Vec<String> = s
                .outputs
                .iter()
                .map(|(port, d)| format!("{port}: {}", d.short(12)))
                .collect();
            rows.push(vec![
                s.step.clone(),
                ui::state(s.state),
                s.execution_id.to_string(),
                if outputs.is_empty() {
                    s.message.clone().unwrap_or_default()
                } else {
                    outputs.join(", ")
                },
            ]);
        }
        ui::print_table(&rows);
        println!(
            "run {} of {} {}{}",
            finished.run_id,
            finished.pipeline,
            finished.state,
            if finished.finished_now {
                ""
            } else {
                " (ended earlier)"
            }
        );
    }
    Ok(match finished.state {
        RunState::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_FAILED),
    })
}
