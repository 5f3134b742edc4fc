//! `sluice component check`: the conformance test a CI runs on a component,
//! whatever language built it.
//!
//! The checks themselves (world, manifest, runs, outputs, determinism,
//! limits) and the JUnit report are `sluice_component_tools::check`; this
//! module parses the flags and prints the results as text or `--json`.

use crate::CliContext;
use crate::ui;
use clap::Args;
use sluice_component_tools::check::{CheckOptions, Status};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// `std:NAME` or a path to a .wasm component.
    component: String,

    /// Sample inputs: a folder with one file per input port, named after the
    /// port (`data.parquet` for a table, `schema.json` for a document, any
    /// extension for a file). Ports without a file get synthetic inputs.
    #[arg(long, value_name = "DIR")]
    inputs: Option<PathBuf>,

    /// A parameter value, `NAME=VALUE` (repeatable); VALUE is read as a
    /// boolean, integer, float, JSON array/object, or else text.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,

    /// Memory limit for each run.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    memory: u64,

    /// Time limit for each run.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    time: std::time::Duration,

    /// Print the results as JSON.
    #[arg(long)]
    json: bool,

    /// Also write the results as a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    sluice_pipeline::spec::parse_size(s).map_err(|e| e.to_string())
}

pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    sluice_pipeline::spec::parse_duration(s).map_err(|e| e.to_string())
}

pub(crate) fn run(ctx: &CliContext, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let runtime = ctx.runtime()?;
    let report = sluice_component_tools::check::check(
        &runtime,
        &CheckOptions {
            component: args.component.clone(),
            inputs: args.inputs.clone(),
            params: args.params.clone(),
            memory: args.memory,
            time: args.time,
        },
    );

    if let Some(path) = &args.junit {
        std::fs::write(path, report.junit())
            .map_err(|e| anyhow::anyhow!("writing the JUnit report {}: {e}", path.display()))?;
    }
    let failed = report.failed();
    if args.json {
        let out = serde_json::json!({
            "component": args.component,
            "passed": failed == 0,
            "checks": report.checks,
            "measurements": report.measurements,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("check {}", args.component);
        let width = report
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0);
        for c in &report.checks {
            let mark = match c.status {
                Status::Passed => "ok  ",
                Status::Failed => "FAIL",
                Status::Skipped => "skip",
            };
            println!("  {mark} {:<width$}  {}", c.name, c.detail);
        }
        if failed == 0 {
            println!("passed: {} checks", report.checks.len());
        } else {
            eprintln!(
                "{} {failed} of {} checks failed",
                ui::error_label(),
                report.checks.len()
            );
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
