//! `sluice run` and `sluice validate`.

use crate::CliContext;
use crate::ui;
use anyhow::Context as _;
use clap::Args;
use sluice_pipeline::diagnostic::Diagnostics;
use sluice_pipeline::execute::{self, ExecuteError, Prepared, RunReport, RunState, StepState};
use sluice_store::ObjectStore;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The pipeline spec (TOML).
    pipeline: PathBuf,

    /// Artifact store folder [default: .sluice next to the pipeline].
    #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,

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

/// Exit status of a run whose steps did not all succeed.
const EXIT_FAILED: u8 = 1;
/// Exit status when the spec or its data is invalid.
const EXIT_INVALID: u8 = 2;

pub(crate) fn run(ctx: &CliContext, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let runtime = ctx.runtime()?;
    let store_dir = args
        .store
        .clone()
        .unwrap_or_else(|| default_store(&args.pipeline));
    let store = ObjectStore::open(&store_dir)
        .with_context(|| format!("opening the artifact store at {}", store_dir.display()))?;
    let prepared = match execute::prepare(&args.pipeline, &runtime, Some(&store)) {
        Ok(p) => p,
        Err(diags) => return Ok(report_diagnostics(&diags, args.json)),
    };
    let progress = Arc::new(ui::Progress::new(args.quiet));
    let report = match execute::execute(&prepared, &store, progress) {
        Ok(r) => r,
        Err(ExecuteError::Data(diags)) => return Ok(report_diagnostics(&diags, args.json)),
        Err(e) => return Err(e.into()),
    };
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

/// `.sluice` in the pipeline's folder.
fn default_store(pipeline: &Path) -> PathBuf {
    pipeline.parent().unwrap_or(Path::new(".")).join(".sluice")
}

fn report_diagnostics(diags: &Diagnostics, json: bool) -> ExitCode {
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
        "run {} {} in {}; {} step(s); store {}",
        report.run_id,
        match report.state {
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
        },
        ui::duration(report.duration),
        report.steps.len(),
        report.store.display()
    );
}
