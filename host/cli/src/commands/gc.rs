//! `sluice gc`: remove objects that no metadata row references.
//!
//! What is kept and why (referenced rows, young objects, live runs, stale
//! temporaries) is `sluice_store::gc`; this module parses the flags and
//! prints what was done.

use crate::commands::run::{default_store_dir, open_store};
use clap::Args;
use sluice_runtime::outcome::bytes as human_bytes;
use sluice_store::gc::{GcOptions, GcOutcome, RemovalKind};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// Only list what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,

    /// Collect even while a run is in progress on this store. Objects
    /// modified in the last 10 minutes are still kept.
    #[arg(long)]
    force: bool,

    /// Keep serving windows (what `sluice serve` records for promotion
    /// gates) this many days; older ones are pruned. 0 keeps them all.
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    keep_serving_stats: u64,

    /// Store folder [default: .sluice in the current folder].
    #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,

    /// Print JSON: what was (or would be) removed, bytes freed, what was kept.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &GcArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&args.store.clone().unwrap_or_else(default_store_dir))?;
    let options = GcOptions {
        dry_run: args.dry_run,
        force: args.force,
        serving_windows_kept: (args.keep_serving_stats > 0)
            .then(|| std::time::Duration::from_secs(args.keep_serving_stats * 24 * 3600)),
        ..GcOptions::default()
    };
    let report = match sluice_store::gc::collect(&store, &options)? {
        GcOutcome::Collected(report) => report,
        GcOutcome::Skipped(live) => {
            let why = format!(
                "run(s) {} in progress on this store; nothing was collected. Run gc when they finish, or pass --force (objects younger than 10 minutes are kept even then)",
                live.join(", ")
            );
            if args.json {
                let out =
                    serde_json::json!({"skipped": why, "running": live, "dry_run": args.dry_run});
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("gc skipped: {why}");
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let freed = report.bytes_freed();

    if args.json {
        let out = serde_json::json!({
            "dry_run": args.dry_run,
            "removed": report.removed,
            "bytes_freed": freed,
            "kept_referenced": report.kept_referenced,
            "kept_recent": report.kept_recent,
            "serving_windows_pruned": report.serving_windows_pruned,
            "errors": report.errors,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for r in &report.removed {
            match (r.kind, r.digest) {
                (RemovalKind::Object, Some(d)) => {
                    println!("{verb} {d}  {}  unreferenced object", human_bytes(r.size))
                }
                _ => println!(
                    "{verb} {}  {}  stale temporary file",
                    r.path.display(),
                    human_bytes(r.size)
                ),
            }
        }
        let objects = report.objects_removed();
        println!(
            "{} {} in {} object(s) and {} temporary file(s); kept {} referenced object(s){}",
            if args.dry_run { "would free" } else { "freed" },
            human_bytes(freed),
            objects,
            report.removed.len() - objects,
            report.kept_referenced,
            if report.kept_recent.is_empty() {
                String::new()
            } else {
                format!(
                    " and {} unreferenced one(s) younger than 10 minutes (a run may not have recorded them yet)",
                    report.kept_recent.len()
                )
            }
        );
        if report.serving_windows_pruned > 0 {
            println!(
                "{} {} serving window(s) older than {} days",
                if args.dry_run {
                    "would prune"
                } else {
                    "pruned"
                },
                report.serving_windows_pruned,
                args.keep_serving_stats
            );
        }
        if args.dry_run && !report.removed.is_empty() {
            println!("dry run: nothing was removed; `sluice gc` removes them");
        }
        for e in &report.errors {
            eprintln!("{} {e}", crate::ui::error_label());
        }
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
