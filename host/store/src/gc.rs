//! Garbage collection: remove objects that no metadata row references.
//!
//! An object is kept when any row names it: the `artifacts` table, an
//! input or output event, a data import, a request log, or a component
//! (the bytes of `.wasm` components named by path are stored as objects
//! too), and the ONNX bytes a model card names.
//!
//! Safety against a `sluice run` working on the same store at the same
//! time: a run writes an object's bytes *before* committing the rows that
//! name it, so for a moment every fresh object looks unreferenced. Three
//! guards keep gc from deleting such an object:
//!
//! 1. while a run is `running` and its process is alive (it holds its run
//!    lock) gc does nothing unless forced ([`GcOptions::force`]);
//! 2. objects modified in the last [`RECENT`] (10 minutes) are never
//!    removed: a run commits an output's rows milliseconds to minutes
//!    after writing its bytes, so a young unreferenced object is most
//!    likely one whose rows are on their way (this is what makes forcing
//!    safe in practice, and covers a run that starts while gc scans). On a
//!    store machines share (metadata on a server), an object's timestamp
//!    is another clock — the bucket's, or another machine's — so there the
//!    age is how long gc has seen the object unreferenced, recorded on the
//!    database's clock (`gc_marks`): a first collection only marks, and one
//!    at least [`RECENT`] later removes what is still unreferenced;
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

use crate::db::vals;
use crate::metadata::MetadataError;
use crate::{Digest, Store, StoreError};
use serde::Serialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Unreferenced objects younger than this are kept: their run may not have
/// committed the rows that name them yet.
pub const RECENT: Duration = Duration::from_secs(10 * 60);
/// Temporary files older than this are leftovers of a crashed writer.
pub const STALE_TEMPORARY: Duration = Duration::from_secs(60 * 60);

/// Why garbage collection stopped before removing anything.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The metadata database failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The objects could not be listed.
    #[error(transparent)]
    Objects(#[from] StoreError),
    /// A model card cannot be read, so the ONNX bytes it names are unknown
    /// and removing any object might remove them.
    #[error(
        "the card of model artifact {0} cannot be read, so the ONNX bytes it names are unknown; nothing was collected"
    )]
    UnreadableCard(Digest),
    /// A run started between the scan and the removal (and gc was not
    /// forced).
    #[error(
        "run(s) {} started while gc was scanning; nothing was removed. Try again when they finish",
        .0.join(", ")
    )]
    RunStarted(Vec<String>),
}

/// How to collect.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Only decide what would be removed; remove nothing.
    pub dry_run: bool,
    /// Collect even while a run is in progress on the store (objects
    /// younger than `recent` are still kept).
    pub force: bool,
    /// Unreferenced objects younger than this are kept ([`RECENT`]).
    pub recent: Duration,
    /// Temporary files older than this are removed ([`STALE_TEMPORARY`]).
    pub stale_temporary: Duration,
    /// Serving windows that closed longer ago than this are pruned
    /// ([`SERVING_WINDOWS_KEPT`]); `None` keeps them all.
    pub serving_windows_kept: Option<Duration>,
}

/// How long serving windows are kept by default: 30 days, far longer than
/// any promotion gate looks back.
pub const SERVING_WINDOWS_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            force: false,
            recent: RECENT,
            stale_temporary: STALE_TEMPORARY,
            serving_windows_kept: Some(SERVING_WINDOWS_KEPT),
        }
    }
}

/// What a file removed by gc was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RemovalKind {
    /// An object no row references.
    Object,
    /// A stale temporary file.
    Temporary,
}

/// A file gc removes (or would remove).
#[derive(Debug, Clone, Serialize)]
pub struct Removal {
    /// An object or a temporary file.
    pub kind: RemovalKind,
    /// The object's digest (none for temporary files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Where it is (a path, or a URL for remote objects).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// An unreferenced object kept because it is young.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    /// The object.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its age in seconds (0 when unknown or in the future).
    pub age_s: u64,
}

/// What a collection did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Files removed (or that would be).
    pub removed: Vec<Removal>,
    /// Objects kept because a row names them.
    pub kept_referenced: usize,
    /// Unreferenced objects kept because they are young.
    pub kept_recent: Vec<Kept>,
    /// Files that could not be removed, one message each.
    pub errors: Vec<String>,
    /// Serving windows pruned (or that would be), older than
    /// [`GcOptions::serving_windows_kept`].
    pub serving_windows_pruned: u64,
}

impl GcReport {
    /// Bytes the removals free.
    pub fn bytes_freed(&self) -> u64 {
        self.removed.iter().map(|r| r.size).sum()
    }

    /// How many of the removals are objects (the rest are temporary files).
    pub fn objects_removed(&self) -> usize {
        self.removed
            .iter()
            .filter(|r| r.kind == RemovalKind::Object)
            .count()
    }
}

/// How a collection came out.
#[derive(Debug, Clone)]
pub enum GcOutcome {
    /// Runs are in progress on the store (their ids) and gc was not forced:
    /// nothing was collected.
    Skipped(Vec<String>),
    /// The collection ran.
    Collected(GcReport),
}

/// Runs marked `running` whose process is alive (holds its run lock).
pub fn live_runs(store: &Store) -> Result<Vec<String>, MetadataError> {
    Ok(store
        .metadata
        .running_runs()?
        .into_iter()
        .filter(|r| store.run_is_alive(&r.id))
        .map(|r| r.id)
        .collect())
}

/// Every digest a metadata row names, with the ONNX bytes of every model
/// card.
pub fn referenced(store: &Store) -> Result<HashSet<Digest>, GcError> {
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
            .and_then(|card| crate::refs::model_onnx(&card));
        match onnx {
            Some(d) => {
                set.insert(d);
            }
            None => return Err(GcError::UnreadableCard(model.digest)),
        }
    }
    Ok(set)
}

/// Age of a file; `None` if its time is unknown or in the future (treated
/// as young, so kept).
fn age(meta: &std::fs::Metadata, now: SystemTime) -> Option<Duration> {
    now.duration_since(meta.modified().ok()?).ok()
}

/// Collects the store's garbage: decides what is unreferenced and old
/// enough, then (unless dry) removes it. Failures to remove single files
/// are reported in [`GcReport::errors`], not as an error.
pub fn collect(store: &Store, options: &GcOptions) -> Result<GcOutcome, GcError> {
    let live = live_runs(store)?;
    if !live.is_empty() && !options.force {
        return Ok(GcOutcome::Skipped(live));
    }

    let now = SystemTime::now();
    // List first, then read what is referenced: a row committed in between
    // names an object we already listed, and is honoured.
    let objects = store.objects.list_objects()?;
    let temporaries = store.objects.list_temporaries()?;
    let mut refs = referenced(store)?;

    let mut report = GcReport::default();
    let mut candidates = Vec::new();
    // On a shared store: how long each unreferenced object has been seen
    // so, on the database's clock.
    let marked = if store.metadata.is_shared() {
        let unreferenced: Vec<Digest> = objects
            .iter()
            .map(|o| o.digest)
            .filter(|d| !refs.contains(d))
            .collect();
        Some(store.metadata.gc_marks(&unreferenced, options.dry_run)?)
    } else {
        None
    };
    for object in objects {
        let digest = object.digest;
        if refs.contains(&digest) {
            report.kept_referenced += 1;
            continue;
        }
        let age = match &marked {
            Some(ages) => ages.get(&digest).copied(),
            None => now.duration_since(object.modified).ok(),
        };
        match age {
            Some(a) if a >= options.recent => candidates.push(Removal {
                kind: RemovalKind::Object,
                digest: Some(digest),
                path: PathBuf::from(store.objects.location(&digest)),
                size: object.size,
            }),
            a => report.kept_recent.push(Kept {
                digest,
                size: object.size,
                age_s: a.map_or(0, |a| a.as_secs()),
            }),
        }
    }
    for (path, meta) in temporaries {
        if age(&meta, now).is_some_and(|a| a >= options.stale_temporary) {
            candidates.push(Removal {
                kind: RemovalKind::Temporary,
                digest: None,
                path,
                size: meta.len(),
            });
        }
    }

    if let Some(kept) = options.serving_windows_kept {
        let before = crate::time::rfc3339(now.checked_sub(kept).unwrap_or(SystemTime::UNIX_EPOCH));
        report.serving_windows_pruned = store
            .metadata
            .prune_serving_windows(&before, options.dry_run)?;
    }
    if options.dry_run {
        report.removed = candidates;
        return Ok(GcOutcome::Collected(report));
    }
    // Just before deleting: refuse if a run started meanwhile (unless
    // forced), and honour rows committed since the first read.
    let live = live_runs(store)?;
    if !live.is_empty() && !options.force {
        return Err(GcError::RunStarted(live));
    }
    refs.extend(referenced(store)?);
    for c in candidates {
        if c.digest.is_some_and(|d| refs.contains(&d)) {
            report.kept_referenced += 1;
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
            Ok(()) => report.removed.push(c),
            Err(e) => report.errors.push(e),
        }
    }
    if marked.is_some() {
        let gone: Vec<Digest> = report.removed.iter().filter_map(|r| r.digest).collect();
        store.metadata.forget_gc_marks(&gone)?;
    }
    Ok(GcOutcome::Collected(report))
}

impl crate::Metadata {
    /// How long each of the unreferenced objects `digests` has been seen
    /// unreferenced by gc, on the database's clock. Objects seen for the
    /// first time are marked now (age zero) unless `dry`; marks of objects
    /// not among `digests` (referenced again, or gone) are forgotten.
    pub fn gc_marks(
        &self,
        digests: &[Digest],
        dry: bool,
    ) -> Result<std::collections::HashMap<Digest, Duration>, MetadataError> {
        let wanted: HashSet<Digest> = digests.iter().copied().collect();
        let mark = |c: &mut crate::db::Conn<'_>| {
            let now = c.now_ms()?;
            let mut ages = std::collections::HashMap::new();
            for row in c.query("SELECT digest, first_seen_ms FROM gc_marks", &[])? {
                let digest = crate::db::parse_digest(row.get(0)?);
                let first: i64 = row.get(1)?;
                if wanted.contains(&digest) {
                    ages.insert(digest, Duration::from_millis((now - first).max(0) as u64));
                } else if !dry {
                    c.execute(
                        "DELETE FROM gc_marks WHERE digest = ?1",
                        vals![digest.to_hex()],
                    )?;
                }
            }
            for d in digests {
                if !ages.contains_key(d) {
                    ages.insert(*d, Duration::ZERO);
                    if !dry {
                        c.execute(
                            "INSERT INTO gc_marks (digest, first_seen_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                            vals![d.to_hex(), now],
                        )?;
                    }
                }
            }
            Ok(ages)
        };
        if dry {
            self.read(mark)
        } else {
            self.write(mark)
        }
    }

    /// Forgets the marks of objects gc removed.
    pub fn forget_gc_marks(&self, digests: &[Digest]) -> Result<(), MetadataError> {
        self.write(|c| {
            for d in digests {
                c.execute("DELETE FROM gc_marks WHERE digest = ?1", vals![d.to_hex()])?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collected(outcome: GcOutcome) -> GcReport {
        match outcome {
            GcOutcome::Collected(r) => r,
            GcOutcome::Skipped(runs) => panic!("skipped for {runs:?}"),
        }
    }

    #[test]
    fn unreferenced_objects_go_referenced_and_young_ones_stay() {
        // A local store, whose objects' ages are their files' times (on a
        // shared store they are gc marks: the next test).
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let kept = store.objects.put(b"component").unwrap();
        store
            .metadata
            .record_component(&kept, "c.wasm", 9, "t0")
            .unwrap();
        let garbage = store.objects.put(b"garbage").unwrap();

        // Everything is young: nothing is removed by default.
        let r = collected(collect(&store, &GcOptions::default()).unwrap());
        assert!(r.removed.is_empty());
        assert_eq!(r.kept_referenced, 1);
        assert_eq!(r.kept_recent.len(), 1);
        assert_eq!(r.kept_recent[0].digest, garbage);

        let old = GcOptions {
            recent: Duration::ZERO,
            dry_run: true,
            ..GcOptions::default()
        };
        let r = collected(collect(&store, &old).unwrap());
        assert_eq!(r.removed.len(), 1);
        assert_eq!(r.removed[0].digest, Some(garbage));
        assert_eq!(r.bytes_freed(), 7);
        assert!(
            store.objects.contains(&garbage),
            "a dry run removes nothing"
        );

        let r = collected(
            collect(
                &store,
                &GcOptions {
                    dry_run: false,
                    ..old
                },
            )
            .unwrap(),
        );
        assert_eq!(r.objects_removed(), 1);
        assert!(r.errors.is_empty());
        assert!(!store.objects.contains(&garbage));
        assert!(store.objects.contains(&kept));
    }

    #[test]
    fn on_a_shared_store_the_grace_period_runs_on_the_database_clock() {
        for (_dir, store) in crate::store::tests::stores() {
            if !store.metadata.is_shared() {
                continue;
            }
            let garbage = store.objects.put(b"garbage").unwrap();
            let rescued = store.objects.put(b"named later").unwrap();
            // The files claim to be two hours old: another clock, not
            // trusted on a shared store.
            for d in [garbage, rescued] {
                std::fs::File::options()
                    .write(true)
                    .open(store.objects.path_of(&d))
                    .unwrap()
                    .set_modified(SystemTime::now() - Duration::from_secs(7200))
                    .unwrap();
            }
            let grace = GcOptions {
                recent: Duration::from_millis(300),
                ..GcOptions::default()
            };
            let dry = GcOptions {
                dry_run: true,
                ..grace.clone()
            };
            // A dry run marks nothing; the first collection only marks.
            let r = collected(collect(&store, &dry).unwrap());
            assert!(r.removed.is_empty());
            assert_eq!(r.kept_recent.len(), 2);
            let r = collected(collect(&store, &grace).unwrap());
            assert!(r.removed.is_empty(), "{:?}", r.removed);
            assert_eq!(r.kept_recent.len(), 2);
            // Named by a row meanwhile: its mark is forgotten, it stays.
            store
                .metadata
                .record_component(&rescued, "c.wasm", 11, "t0")
                .unwrap();
            std::thread::sleep(Duration::from_millis(400));
            let r = collected(collect(&store, &grace).unwrap());
            assert_eq!(
                r.removed.iter().map(|r| r.digest).collect::<Vec<_>>(),
                [Some(garbage)]
            );
            assert!(store.objects.contains(&rescued));
            assert!(
                store.metadata.gc_marks(&[], true).unwrap().is_empty(),
                "no mark is left behind"
            );
        }
    }

    #[test]
    fn a_live_run_stops_gc_unless_forced() {
        for (_dir, store) in crate::store::tests::stores() {
            store
                .metadata
                .start_run("r1", "p", "p.toml", &Digest::of(b"s"), "manual", "t0", None)
                .unwrap();
            let _lock = store.lock_run("r1").unwrap();
            assert!(
                matches!(collect(&store, &GcOptions::default()).unwrap(), GcOutcome::Skipped(r) if r == ["r1"])
            );
            let forced = GcOptions {
                force: true,
                ..GcOptions::default()
            };
            assert!(matches!(
                collect(&store, &forced).unwrap(),
                GcOutcome::Collected(_)
            ));
        }
    }

    #[test]
    fn an_unreadable_model_card_stops_gc() {
        for (_dir, store) in crate::store::tests::stores() {
            store
                .metadata
                .start_run("r1", "p", "p.toml", &Digest::of(b"s"), "manual", "t0", None)
                .unwrap();
            let card = store.objects.put(b"not a card").unwrap();
            store
                .metadata
                .record_import("r1", "m", "m.json", &card, "model", 10, "t0")
                .unwrap();
            assert!(matches!(
                collect(&store, &GcOptions::default()),
                Err(GcError::UnreadableCard(d)) if d == card
            ));
        }
    }
}
