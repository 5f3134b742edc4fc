//! A store: the object store and the metadata database together, where
//! they are, and the run locks that tell a live run from one whose process
//! died.

use crate::db::MetadataLocation;
use crate::lease::{Heartbeat, lease_ttl, run_lease};
use crate::{Metadata, MetadataError, ObjectStore, StoreError};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Why a store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The object store failed.
    #[error(transparent)]
    Objects(#[from] StoreError),
    /// The metadata database failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// A run lock could not be taken.
    #[error("run lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A store file (`team.toml`) that cannot be used as written.
    #[error("store file {path}: {why}")]
    StoreFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to write instead.
        why: String,
    },
    /// Another process holds the run already.
    #[error("run {run_id} is being executed by another process (its lease is held by {holder})")]
    Busy {
        /// The run.
        run_id: String,
        /// Who holds it.
        holder: String,
    },
}

impl OpenError {
    /// Whether trying again later may succeed (a server that could not be
    /// reached, a run another process holds); see
    /// [`MetadataError::is_transient`].
    pub fn is_transient(&self) -> bool {
        match self {
            OpenError::Objects(e) => e.is_transient(),
            OpenError::Metadata(e) => e.is_transient(),
            OpenError::Busy { .. } => true,
            OpenError::Lock { .. } | OpenError::StoreFile { .. } => false,
        }
    }
}

/// Where a store's two parts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    /// The objects: a local folder, or `s3://bucket/prefix`.
    pub objects: String,
    /// The metadata: a SQLite file, or a PostgreSQL server.
    pub metadata: MetadataLocation,
    /// This machine's folder for the store (run locks, and a SQLite file's
    /// home when the objects are remote).
    pub local: PathBuf,
}

/// A store file: `sluice --store team.toml` for a store a team shares.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    /// A folder (relative to the file) or `s3://bucket/prefix`.
    objects: String,
    /// A `postgres://` URL, or a SQLite file (relative to the file).
    /// Default: `metadata.sqlite` in the local folder.
    metadata: Option<String>,
}

impl StoreLocation {
    /// The store a user named: a local folder holds everything; an
    /// `s3://bucket/prefix` URL holds the objects, with the metadata in
    /// `local/metadata.sqlite`; a `.toml` store file names both parts
    /// (`objects = "s3://…"`, `metadata = "postgres://…"`). `metadata`, when
    /// given (`--metadata`, `SLUICE_METADATA_URL`), says where the metadata
    /// is whatever the rest says.
    pub fn resolve(named: &str, local: &Path, metadata: Option<&str>) -> Result<Self, OpenError> {
        let mut location = if ObjectStore::is_remote_url(named) {
            StoreLocation {
                objects: named.to_string(),
                metadata: MetadataLocation::Sqlite(local.join("metadata.sqlite")),
                local: local.to_path_buf(),
            }
        } else if named.ends_with(".toml") {
            Self::from_file(Path::new(named), local)?
        } else {
            StoreLocation {
                objects: named.to_string(),
                metadata: MetadataLocation::Sqlite(Path::new(named).join("metadata.sqlite")),
                local: PathBuf::from(named),
            }
        };
        if let Some(m) = metadata.filter(|m| !m.is_empty()) {
            location.metadata = MetadataLocation::parse(m);
        }
        Ok(location)
    }

    fn from_file(path: &Path, local: &Path) -> Result<Self, OpenError> {
        let bad = |why: String| OpenError::StoreFile {
            path: path.to_path_buf(),
            why,
        };
        let text = fs::read_to_string(path).map_err(|e| {
            bad(format!(
                "{e}; a store file is TOML naming `objects` (a folder or s3://bucket/prefix) and `metadata` (a postgres:// URL or a SQLite file)"
            ))
        })?;
        let file: StoreFile = toml::from_str(&text).map_err(|e| {
            bad(format!(
                "{}; write objects = \"s3://bucket/prefix\" and metadata = \"postgres://user@host/db\"",
                e.message()
            ))
        })?;
        if file
            .metadata
            .as_deref()
            .is_some_and(|m| MetadataLocation::is_postgres_url(m) && crate::db::url_has_password(m))
        {
            return Err(bad(
                "`metadata` holds a password; a store file is shared, so put the password in PGPASSWORD or ~/.pgpass instead".into(),
            ));
        }
        let beside = |p: &str| -> String {
            let p = Path::new(p);
            if p.is_absolute() {
                p.display().to_string()
            } else {
                path.parent()
                    .unwrap_or(Path::new("."))
                    .join(p)
                    .display()
                    .to_string()
            }
        };
        let objects = if ObjectStore::is_remote_url(&file.objects) {
            file.objects
        } else {
            beside(&file.objects)
        };
        let metadata = match file.metadata {
            Some(m) if MetadataLocation::is_postgres_url(&m) => MetadataLocation::Postgres(m),
            Some(m) => MetadataLocation::Sqlite(PathBuf::from(beside(&m))),
            None => MetadataLocation::Sqlite(local.join("metadata.sqlite")),
        };
        Ok(StoreLocation {
            objects,
            metadata,
            local: local.to_path_buf(),
        })
    }
}

/// Objects in a folder or a bucket, metadata in a SQLite file or on a
/// PostgreSQL server, run locks in a local folder.
pub struct Store {
    root: PathBuf,
    /// Content-addressed bytes.
    pub objects: ObjectStore,
    /// What ran, on what, producing what.
    pub metadata: Metadata,
}

/// Held while a run executes: its lease, renewed by a heartbeat, and on a
/// store whose metadata is a local file, a file lock that the operating
/// system releases the moment the process dies.
pub struct RunLock {
    file: Option<(File, PathBuf)>,
    holder: String,
    _heartbeat: Heartbeat,
}

impl RunLock {
    /// Who holds the run's leases: the run, who started it, where and in
    /// which process. Leases the run takes for its steps (a cache key
    /// being computed) are taken in this name, so the run's heartbeat
    /// renews them too and other runs can say who they wait for.
    pub fn holder(&self) -> &str {
        &self.holder
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some((_, path)) = &self.file {
            let _ = fs::remove_file(path);
        }
    }
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, OpenError> {
        let root = root.into();
        let objects = ObjectStore::open(&root)?;
        let metadata = Metadata::open(root.join("metadata.sqlite"))?;
        Ok(Store {
            root,
            objects,
            metadata,
        })
    }

    /// Opens a store whose objects live at `objects` (a folder or an
    /// `s3://bucket/prefix` URL) and whose metadata and run locks live in
    /// the local folder `local`.
    pub fn open_split(objects: &str, local: impl Into<PathBuf>) -> Result<Self, OpenError> {
        let local = local.into();
        Self::open_at(&StoreLocation {
            objects: objects.to_string(),
            metadata: MetadataLocation::Sqlite(local.join("metadata.sqlite")),
            local,
        })
    }

    /// Opens the store a user named (see [`StoreLocation::resolve`]).
    pub fn open_location(location: &str, local_metadata: &Path) -> Result<Self, OpenError> {
        Self::open_at(&StoreLocation::resolve(location, local_metadata, None)?)
    }

    /// Opens the store at `location`, creating what is missing.
    pub fn open_at(location: &StoreLocation) -> Result<Self, OpenError> {
        let objects = ObjectStore::open_url(&location.objects)?;
        let metadata = Metadata::connect(&location.metadata)?;
        Ok(Store {
            root: location.local.clone(),
            objects,
            metadata,
        })
    }

    /// Stores `bytes` (see [`ObjectStore::put`]) and returns their digest.
    /// With `trust_recorded`, bytes a metadata row already names are not
    /// sent to a remote object store again, nor asked about: sluice never
    /// removes an object a row names (gc removes unreferenced ones only;
    /// rows are never deleted), so it is there unless removed from
    /// outside, which `sluice store verify` finds and a run with
    /// `--no-cache` (which does not trust) mends.
    pub fn put(&self, bytes: &[u8], trust_recorded: bool) -> Result<crate::Digest, OpenError> {
        if trust_recorded && self.objects.is_remote() {
            let digest = crate::Digest::of(bytes);
            if self.metadata.artifact(&digest)?.is_some() {
                return Ok(digest);
            }
        }
        Ok(self.objects.put(bytes)?)
    }

    /// The sizes of the objects the metadata names as `digests` (`None`
    /// where one is absent): what reusing an execution's outputs needs. A
    /// local folder is looked at; a remote object store is not asked,
    /// since a named object is never removed by sluice (see
    /// [`Store::put`]): the sizes are the recorded ones.
    pub fn sizes_of_recorded(
        &self,
        digests: &[crate::Digest],
    ) -> Result<Vec<Option<u64>>, OpenError> {
        if !self.objects.is_remote() {
            return Ok(digests.iter().map(|d| self.objects.size_of(d)).collect());
        }
        let recorded = self.metadata.artifact_sizes(digests)?;
        Ok(digests.iter().map(|d| recorded.get(d).copied()).collect())
    }

    /// The store's local folder (run locks, and objects unless remote).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock_path(&self, run_id: &str) -> PathBuf {
        self.root.join("locks").join(format!("{run_id}.lock"))
    }

    /// Takes the lease (and, on a local store, the lock) of a run; both
    /// are held until the returned lock is dropped.
    pub fn lock_run(&self, run_id: &str) -> Result<RunLock, OpenError> {
        static TAKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let holder = format!(
            "{run_id} ({} pid {}#{})",
            crate::identity::user(),
            std::process::id(),
            TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let ttl = lease_ttl();
        let lease = run_lease(run_id);
        if !self.metadata.try_lease(&lease, &holder, ttl)? {
            return Err(OpenError::Busy {
                run_id: run_id.to_string(),
                holder: self
                    .metadata
                    .lease_holder(&lease)?
                    .unwrap_or_else(|| "another process".into()),
            });
        }
        let heartbeat = Heartbeat::start(self.metadata.clone(), holder.clone(), ttl);
        let file = if self.metadata.is_shared() {
            None
        } else {
            let path = self.lock_path(run_id);
            let err = |source| OpenError::Lock {
                path: path.clone(),
                source,
            };
            fs::create_dir_all(path.parent().unwrap()).map_err(err)?;
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(err)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(OpenError::Busy {
                        run_id: run_id.to_string(),
                        holder: format!("the process holding {}", path.display()),
                    });
                }
                Err(fs::TryLockError::Error(e)) => return Err(err(e)),
            }
            Some((file, path))
        };
        Ok(RunLock {
            file,
            holder,
            _heartbeat: heartbeat,
        })
    }

    /// Whether the process running `run_id` is alive: on a shared store,
    /// whether its lease is unexpired; on a local one, whether it still
    /// holds its lock file (released at once when a process dies).
    pub fn run_is_alive(&self, run_id: &str) -> bool {
        if self.metadata.is_shared() {
            // A database that cannot answer is no proof of death.
            return self
                .metadata
                .lease_holder(&run_lease(run_id))
                .map_or(true, |holder| holder.is_some());
        }
        let Ok(file) = File::open(self.lock_path(run_id)) else {
            return false;
        };
        match file.try_lock() {
            Ok(()) => false,
            Err(fs::TryLockError::WouldBlock) => true,
            Err(fs::TryLockError::Error(_)) => false,
        }
    }

    /// Marks runs whose process died as interrupted; returns their ids.
    /// Their expired leases go with them (only then: every command opens
    /// the store this way, and a write on each would be start-up work; a
    /// lease left expired is taken over by the next claimant anyway).
    pub fn recover(&self, now: &str) -> Result<Vec<String>, OpenError> {
        let dead = self.metadata.recover(|id| self.run_is_alive(id), now)?;
        for id in &dead {
            let _ = fs::remove_file(self.lock_path(id));
        }
        if !dead.is_empty() {
            let _ = self.metadata.forget_expired_leases();
        }
        Ok(dead)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Digest;

    /// A fresh store with objects in a folder and its metadata on every
    /// backend the tests reach (see `db::tests::backends`).
    pub(crate) fn stores() -> Vec<(tempfile::TempDir, Store)> {
        crate::db::tests::backends()
            .into_iter()
            .map(|(dir, metadata)| {
                let store = Store::open_at(&StoreLocation {
                    objects: dir.path().display().to_string(),
                    metadata: metadata.location().clone(),
                    local: dir.path().to_path_buf(),
                })
                .unwrap();
                (dir, store)
            })
            .collect()
    }

    #[test]
    fn a_run_is_alive_while_its_lease_is_and_dead_once_it_expires() {
        for (_dir, store) in stores() {
            store
                .metadata
                .start_run("r", "p", "p.toml", &Digest::of(b"s"), "manual", "t0", None)
                .unwrap();
            let lock = store.lock_run("r").unwrap();
            assert!(store.run_is_alive("r"));
            let again = store.lock_run("r").err().unwrap().to_string();
            assert!(
                again.contains("being executed by another process"),
                "{again}"
            );
            assert!(store.recover("t1").unwrap().is_empty());
            drop(lock);
            assert!(!store.run_is_alive("r"));
            assert_eq!(store.recover("t1").unwrap(), ["r"]);
            assert_eq!(
                store.metadata.run("r").unwrap().state,
                crate::metadata::RunState::Interrupted
            );
        }
    }

    #[test]
    fn store_files_name_both_parts_relative_to_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("team.toml");
        let local = dir.path().join("here");
        std::fs::write(
            &file,
            "objects = \"objs\"\nmetadata = \"postgres://ann@db/team\"\n",
        )
        .unwrap();
        let at = StoreLocation::resolve(file.to_str().unwrap(), &local, None).unwrap();
        assert_eq!(at.objects, dir.path().join("objs").display().to_string());
        assert_eq!(
            at.metadata,
            MetadataLocation::Postgres("postgres://ann@db/team".into())
        );
        assert_eq!(at.local, local);
        // --metadata / SLUICE_METADATA_URL win.
        let at = StoreLocation::resolve(file.to_str().unwrap(), &local, Some("m.sqlite")).unwrap();
        assert_eq!(at.metadata, MetadataLocation::Sqlite("m.sqlite".into()));
        std::fs::write(&file, "objects = \"s3://b/p\"\n").unwrap();
        let at = StoreLocation::resolve(file.to_str().unwrap(), &local, None).unwrap();
        assert_eq!(at.objects, "s3://b/p");
        assert_eq!(
            at.metadata,
            MetadataLocation::Sqlite(local.join("metadata.sqlite"))
        );
        for (text, expected) in [
            ("objects = 1\n", "invalid type"),
            ("metadata = \"x\"\n", "missing field `objects`"),
            (
                "objects = \"o\"\nmetadata = \"postgres://ann:pw@db/x\"\n",
                "holds a password",
            ),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = StoreLocation::resolve(file.to_str().unwrap(), &local, None)
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("pw@"), "{err}");
        }
        let missing =
            StoreLocation::resolve(dir.path().join("nope.toml").to_str().unwrap(), &local, None)
                .err()
                .unwrap()
                .to_string();
        assert!(missing.contains("nope.toml"), "{missing}");
    }

    #[test]
    fn a_locked_run_is_alive_and_an_unlocked_one_is_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for id in ["live", "dead"] {
            store
                .metadata
                .start_run(id, "p", "p.toml", &Digest::of(b"s"), "manual", "t0", None)
                .unwrap();
        }
        let _live = store.lock_run("live").unwrap();
        drop(store.lock_run("dead").unwrap());
        assert!(store.run_is_alive("live"));
        assert!(!store.run_is_alive("dead"));
        assert_eq!(store.recover("t1").unwrap(), ["dead"]);
    }

    #[test]
    fn a_folder_location_holds_everything_and_a_url_only_the_objects() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("store");
        let store = Store::open_location(folder.to_str().unwrap(), Path::new("/nowhere")).unwrap();
        assert_eq!(store.root(), folder);
        assert!(folder.join("metadata.sqlite").is_file());
        assert!(!ObjectStore::is_remote_url(folder.to_str().unwrap()));
        assert!(ObjectStore::is_remote_url("s3://bucket/prefix"));
        // A malformed URL is refused before any metadata is written.
        let local = dir.path().join("meta");
        assert!(Store::open_location("s3://", &local).is_err());
        assert!(!local.join("metadata.sqlite").exists());
    }
}
