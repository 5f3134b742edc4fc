//! `sluice monitor`: a served model's logged requests against its training
//! data, and its live quality given true labels.

use super::run::{default_store_dir, open_store};
use crate::{CliContext, ui};
use anyhow::Context as _;
use clap::Args;
use sluice_monitor::{MonitorOptions, Thresholds};
use sluice_store::ModelRef;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `sluice monitor`.
#[derive(Debug, Args)]
#[command(after_help = "\
Compares the requests `sluice serve` logged for the version NAME@ALIAS
resolves to with the rows it was trained on (found through lineage: the
first table upstream of its training step that has its input columns):
per column, Jensen–Shannon divergence on the training deciles (numeric),
L-infinity distance of category shares (categorical), population stability
index, missing and out-of-domain values; the same for the predictions; and
the scores over time. With --feedback (CSV or Parquet with `request_id`,
the label column and optionally `row`), it joins true labels to the logged
requests and flags metrics that fell more than --degradation below the
evaluation recorded when the version was registered.

With --ingest (repeatable), request logs written away from the store —
`sluice-edge serve --request-log DIR` on a device, the folder copied off
it — are taken into the store first: each file must name a version this
store has, answered by the same ONNX graph; nothing is taken unless every
file passes; a file taken before is not counted twice.

Exit codes: 0, or 1 with --fail-on-alert when a column drifted or quality
degraded; 2 when the report cannot be made.

Examples:
  sluice monitor --model breast-cancer@production
  sluice monitor --model breast-cancer@production --since 2026-11-25T00:00:00Z --html report.html
  sluice monitor --model breast-cancer@production --feedback labels.csv --json
  sluice monitor --model breast-cancer@production --ingest device-7-logs/")]
pub(crate) struct MonitorArgs {
    /// The model: NAME@ALIAS, NAME:VERSION or NAME (the latest version).
    #[arg(long, value_name = "NAME@ALIAS")]
    model: ModelRef,

    /// Only requests served at or after this time (RFC 3339, UTC).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,

    /// True labels of served requests (.csv or .parquet): `request_id`,
    /// the model's label column, optionally `row`.
    #[arg(long, value_name = "FILE")]
    feedback: Option<PathBuf>,

    /// Jensen–Shannon divergence above which a numeric column drifted.
    #[arg(long, default_value_t = sluice_monitor::DEFAULT_NUMERIC_THRESHOLD, value_name = "SCORE")]
    drift_threshold: f64,

    /// L-infinity distance above which a categorical column drifted.
    #[arg(long, default_value_t = sluice_monitor::DEFAULT_CATEGORICAL_THRESHOLD, value_name = "SCORE")]
    categorical_threshold: f64,

    /// Largest drop of a live metric below its evaluation value.
    #[arg(long, default_value_t = 0.05, value_name = "AMOUNT")]
    degradation: f64,

    /// Take a device's request logs into the store first: a folder of
    /// them (`sluice-edge serve --request-log`) or one file. Repeatable.
    #[arg(long, value_name = "DIR|FILE")]
    ingest: Vec<PathBuf>,

    /// Also write the report as a self-contained HTML page.
    #[arg(long, value_name = "FILE.html")]
    html: Option<PathBuf>,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,

    /// Exit 1 when a column drifted or quality degraded.
    #[arg(long)]
    fail_on_alert: bool,

    /// Store folder [default: .sluice in the current folder].
    #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
}

/// Runs `sluice monitor`.
pub(crate) fn run(ctx: &CliContext, args: &MonitorArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&args.store.clone().unwrap_or_else(default_store_dir))?;
    let runtime = ctx.runtime()?;
    let ingested = if args.ingest.is_empty() {
        Vec::new()
    } else {
        let files = sluice_monitor::ingest(&store, &args.ingest)?;
        if !args.json {
            let new: Vec<_> = files.iter().filter(|f| !f.already).collect();
            eprintln!(
                "ingested {} request-log file(s), {} row(s){}",
                new.len(),
                new.iter().map(|f| f.rows).sum::<u64>(),
                match files.len() - new.len() {
                    0 => String::new(),
                    n => format!("; {n} already in the store"),
                }
            );
        }
        files
    };
    let feedback = match &args.feedback {
        Some(path) => Some(sluice_tables::read_table(path)?),
        None => None,
    };
    let options = MonitorOptions {
        since: args.since.clone(),
        thresholds: Thresholds {
            numeric: args.drift_threshold,
            categorical: args.categorical_threshold,
        },
        degradation: args.degradation,
        feedback,
    };
    let report = sluice_monitor::monitor(&store, &runtime, &args.model, &options)?;
    if let Some(path) = &args.html {
        write_html(path, &sluice_monitor::html::render(&report))?;
    }
    if args.json {
        let mut doc = serde_json::to_value(&report)?;
        if !args.ingest.is_empty() {
            doc["ingested"] = serde_json::to_value(&ingested)?;
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "{}:{}  training {} rows ({})  served {} rows ({} to {})",
            report.model,
            report.version,
            report.training.rows,
            report.training.description,
            report.serving.rows,
            report.serving.from.as_deref().unwrap_or("?"),
            report.serving.to.as_deref().unwrap_or("?")
        );
        let mut rows = vec![vec![
            "COLUMN".to_string(),
            "KIND".into(),
            "SCORE".into(),
            "PSI".into(),
            "MISSING".into(),
            "OUT OF DOMAIN".into(),
            "".into(),
        ]];
        for d in report.features.iter().chain(&report.predictions) {
            rows.push(vec![
                d.name.clone(),
                d.kind.to_string(),
                format!("{:.4}", d.score),
                format!("{:.4}", d.psi),
                format!("{:.1}%", 100.0 * d.missing_served),
                format!("{:.1}%", 100.0 * d.out_of_domain),
                if d.drifted {
                    "DRIFTED".into()
                } else {
                    String::new()
                },
            ]);
        }
        ui::print_table(&rows);
        if let Some(live) = &report.live {
            println!("\nlive quality on {} labelled rows:", live.joined_rows);
            for name in ["accuracy", "f1", "roc_auc", "rmse", "mae", "r2"] {
                if let Some(v) = live.metrics.get(name).and_then(|v| v.as_f64()) {
                    let e = live.evaluation.get(name).and_then(|v| v.as_f64());
                    println!(
                        "  {name:<9} {v:.4}{}",
                        e.map(|e| format!("  (evaluation {e:.4})"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        if report.alerts.is_empty() {
            println!("\nno drift over the thresholds");
        } else {
            println!();
            for a in &report.alerts {
                println!("alert: {a}");
            }
        }
        if let Some(path) = &args.html {
            println!("report: {}", path.display());
        }
    }
    let alert = !report.drifted.is_empty() || report.degraded;
    Ok(if alert && args.fail_on_alert {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_html(path: &Path, html: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("html.partial");
    std::fs::write(&tmp, html).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
