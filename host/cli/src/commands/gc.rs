//! `sluice gc`: remove objects that no metadata row references.
//!
//! An object is kept when any row names it: the `artifacts` table, an
//! input or output event, a data import, or a component (the bytes of
//! `.wasm` components named by path are stored as objects too).
//!
//! Safety against a `sluice run` working on the same store at the same
//! time: a run writes an object's bytes *before* committing the rows that
//! name it, so for a moment every fresh object looks unreferenced. Three
//! guards keep gc from deleting such an object:
//!
//! 1. while a run is `running` and its process is alive (it holds its run
//!    lock) gc does nothing unless `--force` is given;
//! 2. objects modified in the last [`RECENT`] (10 minutes) are never
//!    removed: a run commits an output's rows milliseconds to minutes
//!    after writing its bytes, so a young unreferenced object is most
//!    likely one whose rows are on their way (this is what makes `--force`
//!    safe in practice, and covers a run that starts while gc scans);
//! 3. the referenced set is read *after* the objects are listed, and read
//!    again just before deleting, so rows committed meanwhile are honoured.
//!
//! What remains possible is a run that starts after the check in (1) and
//! reuses the bytes of an *old* unreferenced object (left by a crashed
//! run) without rewriting it; its rows then name an object gc removed in
//! the same instant, and the next run recomputes it (`sluice run` checks
//! that cached outputs are present before reusing them).
//!
//! Temporary files (`.tmp-*`) are what a writer that crashed between
//! creating and renaming a file leaves behind; they are removed once older
//! than [`STALE_TEMPORARY`] (1 hour), never sooner, since a live writer may
//! be filling one. Fan-out folders are never removed.

use crate::commands::run::{default_store_dir, open_store};
use clap::Args;
use serde::Serialize;
use sluice_runtime::outcome::bytes as human_bytes;
use sluice_store::{Digest, Store};
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// Unreferenced objects younger than this are kept: their run may not have
/// committed the rows that name them yet.
const RECENT: Duration = Duration::from_secs(10 * 60);
/// Temporary files older than this are leftovers of a crashed writer.
const STALE_TEMPORARY: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// Only list what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,

    /// Collect even while a run is in progress on this store. Objects
    /// modified in the last 10 minutes are still kept.
    #[arg(long)]
    force: bool,

    /// Store folder [default: .sluice in the current folder].
    #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,

    /// Print JSON: what was (or would be) removed, bytes freed, what was kept.
    #[arg(long)]
    json: bool,
}

/// A file gc removes (or would remove).
#[derive(Debug, Serialize)]
struct Removal {
    /// `object` or `temporary`.
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<Digest>,
    path: PathBuf,
    size: u64,
}

/// An unreferenced object kept because it is young.
#[derive(Debug, Serialize)]
struct Kept {
    digest: Digest,
    size: u64,
    age_s: u64,
}

/// Age of a file; `None` if its time is unknown or in the future (treated
/// as young, so kept).
fn age(meta: &std::fs::Metadata, now: SystemTime) -> Option<Duration> {
    now.duration_since(meta.modified().ok()?).ok()
}

/// Runs `running` whose process is alive.
fn live_runs(store: &Store) -> anyhow::Result<Vec<String>> {
    Ok(store
        .metadata
        .running_runs()?
        .into_iter()
        .filter(|r| store.run_is_alive(&r.id))
        .map(|r| r.id)
        .collect())
}

/// Every digest a metadata row names.
fn referenced(store: &Store) -> anyhow::Result<HashSet<Digest>> {
    let mut set = store.metadata.referenced_artifacts()?;
    set.extend(store.metadata.referenced_components()?);
    // A model artifact is its card; the card names its ONNX bytes.
    for model in store
        .metadata
        .artifacts_of_kind(Some("model"), usize::MAX)?
    {
        let onnx = store
            .objects
            .get(&model.digest)
            .ok()
            .and_then(|card| serde_json::from_slice::<serde_json::Value>(&card).ok())
            .and_then(|card| card.get("onnx")?.as_str()?.parse::<Digest>().ok());
        match onnx {
            Some(d) => {
                set.insert(d);
            }
            None => anyhow::bail!(
                "the card of model artifact {} cannot be read, so the ONNX bytes it names are unknown; nothing was collected",
                model.digest
            ),
        }
    }
    Ok(set)
}

pub(crate) fn run(args: &GcArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&args.store.clone().unwrap_or_else(default_store_dir))?;
    let live = live_runs(&store)?;
    if !live.is_empty() && !args.force {
        let why = format!(
            "run(s) {} in progress on this store; nothing was collected. Run gc when they finish, or pass --force (objects younger than 10 minutes are kept even then)",
            live.join(", ")
        );
        if args.json {
            let out = serde_json::json!({"skipped": why, "running": live, "dry_run": args.dry_run});
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!("gc skipped: {why}");
        }
        return Ok(ExitCode::SUCCESS);
    }

    let now = SystemTime::now();
    // List first, then read what is referenced: a row committed in between
    // names an object we already listed, and is honoured.
    let objects = store.objects.list_objects()?;
    let temporaries = store.objects.list_temporaries()?;
    let mut refs = referenced(&store)?;

    let mut kept_referenced = 0usize;
    let mut kept_recent = Vec::new();
    let mut candidates = Vec::new();
    for object in objects {
        let digest = object.digest;
        if refs.contains(&digest) {
            kept_referenced += 1;
            continue;
        }
        match now.duration_since(object.modified).ok() {
            Some(a) if a >= RECENT => candidates.push(Removal {
                kind: "object",
                digest: Some(digest),
                path: PathBuf::from(store.objects.location(&digest)),
                size: object.size,
            }),
            a => kept_recent.push(Kept {
                digest,
                size: object.size,
                age_s: a.map_or(0, |a| a.as_secs()),
            }),
        }
    }
    for (path, meta) in temporaries {
        if age(&meta, now).is_some_and(|a| a >= STALE_TEMPORARY) {
            candidates.push(Removal {
                kind: "temporary",
                digest: None,
                path,
                size: meta.len(),
            });
        }
    }

    let mut errors = Vec::new();
    let removed = if args.dry_run {
        candidates
    } else {
        // Just before deleting: refuse if a run started meanwhile (unless
        // forced), and honour rows committed since the first read.
        let live = live_runs(&store)?;
        if !live.is_empty() && !args.force {
            anyhow::bail!(
                "run(s) {} started while gc was scanning; nothing was removed. Try again when they finish",
                live.join(", ")
            );
        }
        refs.extend(referenced(&store)?);
        let mut removed = Vec::new();
        for c in candidates {
            if c.digest.is_some_and(|d| refs.contains(&d)) {
                kept_referenced += 1;
                continue;
            }
            let result = match c.digest {
                Some(d) => store
                    .objects
                    .remove(&d)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                None => std::fs::remove_file(&c.path).or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(format!("removing {}: {e}", c.path.display()))
                    }
                }),
            };
            match result {
                Ok(()) => removed.push(c),
                Err(e) => errors.push(e),
            }
        }
        removed
    };
    let freed: u64 = removed.iter().map(|r| r.size).sum();

    if args.json {
        let out = serde_json::json!({
            "dry_run": args.dry_run,
            "removed": removed,
            "bytes_freed": freed,
            "kept_referenced": kept_referenced,
            "kept_recent": kept_recent,
            "errors": errors,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for r in &removed {
            match r.digest {
                Some(d) => println!("{verb} {d}  {}  unreferenced object", human_bytes(r.size)),
                None => println!(
                    "{verb} {}  {}  stale temporary file",
                    r.path.display(),
                    human_bytes(r.size)
                ),
            }
        }
        let objects = removed.iter().filter(|r| r.kind == "object").count();
        println!(
            "{} {} in {} object(s) and {} temporary file(s); kept {} referenced object(s){}",
            if args.dry_run { "would free" } else { "freed" },
            human_bytes(freed),
            objects,
            removed.len() - objects,
            kept_referenced,
            if kept_recent.is_empty() {
                String::new()
            } else {
                format!(
                    " and {} unreferenced one(s) younger than 10 minutes (a run may not have recorded them yet)",
                    kept_recent.len()
                )
            }
        );
        if args.dry_run && !removed.is_empty() {
            println!("dry run: nothing was removed; `sluice gc` removes them");
        }
        for e in &errors {
            eprintln!("{} {e}", crate::ui::error_label());
        }
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
