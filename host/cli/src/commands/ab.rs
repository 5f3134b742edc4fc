//! `sluice ab NAME@ALIAS`: the A/B report of an alias — per variant
//! (the primary and its canary) requests, errors and latency from the
//! serving windows, live accuracy from true labels, and the differences,
//! canary − primary, with confidence intervals. The statistics and the
//! report are `sluice_delivery::ab`'s; this prints them.

use super::check::parse_duration;
use super::run::{default_store_dir, open_store};
use crate::ui;
use anyhow::bail;
use clap::Args;
use sluice_delivery::ab::{self, AbOptions, AbReport, Feedback, Variant};
use sluice_store::ModelRef;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

/// Arguments of `sluice ab`.
#[derive(Debug, Args)]
#[command(after_help = "\
Compares the versions that answered NAME@ALIAS's requests over the window:
its primary (the windows `sluice serve --model NAME@ALIAS` recorded) and
the canary splitting its traffic (`--canary NAME@OTHER=PCT`, sticky by
`--variant-key`, or a rollout's candidate), counted on the servers whose
route serves NAME@ALIAS: a canary of another alias is not. Per variant:
requests, 4xx and 5xx answers, the error rate with its Wilson score
interval, and p50/p99 latency (upper bounds of the histogram buckets the
servers count in, never below the true value). With
--feedback (CSV or Parquet: `request_id`, the label column, optionally
`row`; what `sluice monitor --feedback` reads), each version's live accuracy
on the labelled requests it answered, joined with its logged requests.
Between the two: canary − primary for the error rate and the accuracy, with
Newcombe's hybrid score interval and a two-sided two-proportion z-test; a
difference is significant when its interval excludes 0.

Servers record their windows every --stats-every (10 s by default) and
requests every --log-every; a report sees what they have written.

Examples:
  sluice ab breast-cancer@production
  sluice ab breast-cancer@production --since 2h --feedback labels.csv --label diagnosis
  sluice ab breast-cancer@production --since 2026-12-01T00:00:00Z --confidence 0.99 --json")]
pub(crate) struct AbArgs {
    /// The alias whose traffic is compared: NAME@ALIAS.
    #[arg(value_name = "NAME@ALIAS")]
    model: ModelRef,

    /// The window: a duration back from now (`24h`, `30m`) or a start
    /// time (RFC 3339).
    #[arg(long, default_value = "24h", value_name = "DURATION|TIME")]
    since: String,

    /// True labels of served requests (.csv or .parquet): `request_id`,
    /// the label column, optionally `row`.
    #[arg(long, value_name = "FILE")]
    feedback: Option<PathBuf>,

    /// With --feedback: the label column [default: the model's label].
    #[arg(long, value_name = "COLUMN", requires = "feedback")]
    label: Option<String>,

    /// The confidence of the intervals.
    #[arg(long, default_value_t = 0.95, value_name = "LEVEL")]
    confidence: f64,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,

    /// Store folder [default: .sluice in the current folder].
    #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
}

/// Runs `sluice ab`.
pub(crate) fn run(args: &AbArgs) -> anyhow::Result<ExitCode> {
    let ModelRef::Alias(name, alias) = &args.model else {
        bail!(
            "`{}` names no alias; an A/B report compares the versions that answered an alias's requests: give NAME@ALIAS",
            args.model
        );
    };
    let now = SystemTime::now();
    let since = match sluice_store::time::parse_rfc3339(&args.since) {
        Some(t) => t,
        None => {
            let back = parse_duration(&args.since).map_err(|e| {
                anyhow::anyhow!(
                    "--since {}: neither a duration (24h, 30m) nor an RFC 3339 time: {e}",
                    args.since
                )
            })?;
            now.checked_sub(back).unwrap_or(SystemTime::UNIX_EPOCH)
        }
    };
    let store = open_store(&args.store.clone().unwrap_or_else(default_store_dir))?;
    let report = ab::report(
        &store,
        name,
        alias,
        &AbOptions {
            since,
            now,
            confidence: args.confidence,
            feedback: args.feedback.as_deref().map(|path| Feedback {
                path,
                label: args.label.as_deref(),
            }),
        },
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &AbReport) {
    let level = ab::percent(r.confidence);
    println!(
        "{} from {} to {}; {level} intervals",
        ui::bold(&r.reference),
        r.since,
        r.until
    );
    let labelled = r.feedback.is_some();
    let mut header = vec![
        "ROLE".to_string(),
        "VERSION".into(),
        "REQUESTS".into(),
        "4XX".into(),
        "5XX".into(),
        format!("ERROR RATE ({level} CI)"),
        "P50".into(),
        "P99".into(),
    ];
    if labelled {
        header.push(format!("ACCURACY ({level} CI)"));
    }
    let mut rows = vec![header];
    for v in &r.variants {
        rows.push(row(v, labelled));
    }
    ui::print_table(&rows);
    println!();
    if let Some(c) = &r.compared {
        println!(
            "canary version {} − primary version {}:",
            c.canary, c.primary
        );
        for comparison in &r.comparisons {
            println!("  {}", comparison.verdict);
        }
    }
    println!(
        "P50 and P99 are upper bounds of the latency buckets they fall in (never below the true value)"
    );
    for note in &r.notes {
        println!("note: {note}");
    }
}

fn row(v: &Variant, labelled: bool) -> Vec<String> {
    let mut cells = vec![
        v.role.to_string(),
        v.version.to_string(),
        v.requests.to_string(),
        v.errors_4xx.to_string(),
        v.errors_5xx.to_string(),
        v.error_rate
            .map_or("-".into(), |p| rate(p.estimate, p.low, p.high)),
        latency(v.p50_ms),
        latency(v.p99_ms),
    ];
    if labelled {
        cells.push(match &v.accuracy {
            Some(a) => match &a.accuracy {
                Some(p) => format!("{} of {}", rate(p.estimate, p.low, p.high), a.labelled),
                None => format!("- (none of {} logged labelled)", a.logged),
            },
            None => "-".into(),
        });
    }
    cells
}

/// `1.23% (0.80–1.90)`.
fn rate(estimate: f64, low: f64, high: f64) -> String {
    format!(
        "{:.2}% ({:.2}–{:.2})",
        estimate * 100.0,
        low * 100.0,
        high * 100.0
    )
}

/// A bucket bound: `≤ 2.5 ms`, `> 10 s` past the last.
fn latency(ms: Option<f64>) -> String {
    match ms {
        Some(ms) if ms.is_finite() => format!("≤ {ms} ms"),
        Some(_) => "> 10 s".into(),
        None => "-".into(),
    }
}
