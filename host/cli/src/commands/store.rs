//! `sluice store`: move a store's metadata to another database (a
//! laptop's SQLite file to the team's PostgreSQL server), optionally its
//! objects to another object store, and verify that a store is whole.
//!
//! The copying and checking are `sluice_store::transfer`; this module
//! parses the flags, shows progress and prints what was done.

use crate::commands::run::{default_store_dir, open_store};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sluice_runtime::outcome::bytes as human_bytes;
use sluice_store::transfer::{copy_metadata, copy_objects, verify};
use sluice_store::{Metadata, MetadataLocation, ObjectStore};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// `sluice store …`.
#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Copy the store's metadata into an empty database, and optionally
    /// its objects into another object store.
    ///
    /// The copy is one transaction on the target: all or nothing. The
    /// source is left as it was. Afterwards, point the team at the target
    /// (a store file naming it, `--metadata`, or SLUICE_METADATA_URL) and
    /// check it with `sluice store verify`.
    #[command(
        after_help = "Examples:\n  sluice store migrate --to postgres://ann@db.internal/sluice --store examples/breast-cancer/.sluice\n  sluice store migrate --to postgres://ann@db.internal/sluice --objects s3://ml-team/sluice\n\nThe password comes from PGPASSWORD or ~/.pgpass and is never printed."
    )]
    Migrate(MigrateArgs),

    /// Check that every object the metadata names is in the object store,
    /// with the bytes its digest says. Exits 1 if any is missing or
    /// corrupt.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The database to copy the metadata into: postgres://USER@HOST:PORT/DB
    /// (empty, or new: sluice creates its tables) or a SQLite file.
    #[arg(long, value_name = "URL")]
    to: String,

    /// Also copy every object into this object store (a folder or
    /// s3://bucket/prefix); objects it already holds are skipped. Without
    /// it the objects stay where they are.
    #[arg(long, value_name = "LOCATION")]
    objects: Option<String>,

    /// The store to copy from [default: .sluice in the current folder].
    #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,

    /// Print JSON: rows per table, objects copied.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Store folder, s3:// URL or store file [default: .sluice in the current folder].
    #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,

    /// Print JSON: objects checked, bytes, problems.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: &StoreCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        StoreCommand::Migrate(args) => migrate(args),
        StoreCommand::Verify(args) => verify_store(args),
    }
}

/// A progress bar on a terminal, nothing otherwise (or with `--json`).
fn bar(json: bool, template: &str) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template(template).unwrap());
    bar
}

fn migrate(args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&args.store.clone().unwrap_or_else(default_store_dir))?;
    let target_location = MetadataLocation::parse(&args.to);
    let shown = target_location.display();
    let target = Metadata::connect(&target_location)
        .with_context(|| format!("opening the target database {shown}"))?;

    let rows = bar(args.json, "{spinner} copying {msg}");
    let copied = copy_metadata(&store.metadata, &target, &mut |table, n| {
        rows.set_message(format!("{table}: {n} rows"));
        rows.tick();
    })
    .with_context(|| {
        format!(
            "copying the metadata of {} to {shown}",
            store.metadata.shown()
        )
    })?;
    rows.finish_and_clear();

    let objects = match &args.objects {
        Some(location) => {
            let to = ObjectStore::open_url(location)
                .with_context(|| format!("opening the object store {location}"))?;
            let progress = bar(args.json, "{bar:40} {pos}/{len} objects {eta}");
            let report = copy_objects(&store.objects, &to, &mut |done, total| {
                progress.set_length(total);
                progress.set_position(done);
            })
            .with_context(|| format!("copying objects to {location}"))?;
            progress.finish_and_clear();
            Some((location.clone(), report))
        }
        None => None,
    };
    let objects_at = objects
        .as_ref()
        .map_or_else(|| store.objects.location_root(), |(l, _)| l.clone());

    if args.json {
        let out = serde_json::json!({
            "from": store.metadata.shown(),
            "to": shown,
            "tables": copied.tables.iter().map(|(t, n)| serde_json::json!({"table": t, "rows": n})).collect::<Vec<_>>(),
            "rows": copied.rows(),
            "objects": objects.as_ref().map(|(l, r)| serde_json::json!({"to": l, "copied": r.copied, "bytes": r.bytes, "present": r.present})),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "copied {} rows of metadata from {} to {shown}:",
        copied.rows(),
        store.metadata.shown()
    );
    for (table, n) in &copied.tables {
        println!("  {table:<14} {n}");
    }
    if let Some((location, r)) = &objects {
        println!(
            "copied {} object(s) ({}) to {location}; {} were there already",
            r.copied,
            human_bytes(r.bytes),
            r.present
        );
    }
    println!(
        "\nA store file for the team (team.toml):\n  objects  = \"{objects_at}\"\n  metadata = \"{shown}\"\nthen: sluice store verify --store team.toml"
    );
    Ok(ExitCode::SUCCESS)
}

fn verify_store(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&args.store.clone().unwrap_or_else(default_store_dir))?;
    let progress = bar(args.json, "{bar:40} {pos}/{len} objects {eta}");
    let report = verify(&store, &mut |done, total| {
        progress.set_length(total);
        progress.set_position(done);
    })?;
    progress.finish_and_clear();
    let whole = report.problems.is_empty();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for p in &report.problems {
            println!("{:<8} {} — {}", p.kind, p.digest, p.detail);
        }
        println!(
            "{} {} object(s), {}, named by the metadata in {}: {}",
            if whole { "verified" } else { "checked" },
            report.checked,
            human_bytes(report.bytes),
            store.metadata.shown(),
            if whole {
                "every one present, with the bytes its digest says".to_string()
            } else {
                format!("{} missing or corrupt", report.problems.len())
            }
        );
    }
    Ok(if whole {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
