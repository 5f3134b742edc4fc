//! A store: the object store and the metadata database together, plus the
//! run locks that tell a live run from one whose process died.

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
}

/// Objects under `ROOT/objects`, metadata in `ROOT/metadata.sqlite`, run
/// locks in `ROOT/locks`.
pub struct Store {
    root: PathBuf,
    /// Content-addressed bytes.
    pub objects: ObjectStore,
    /// What ran, on what, producing what.
    pub metadata: Metadata,
}

/// Held while a run executes; the lock is released when this is dropped,
/// or by the operating system when the process dies.
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, OpenError> {
        let root = root.into();
        let objects = ObjectStore::open(&root)?;
        Self::with_objects(objects, root)
    }

    /// Opens a store whose objects live at `objects` (a folder or an
    /// `s3://bucket/prefix` URL) and whose metadata and run locks live in
    /// the local folder `local`.
    pub fn open_split(objects: &str, local: impl Into<PathBuf>) -> Result<Self, OpenError> {
        Self::with_objects(ObjectStore::open_url(objects)?, local.into())
    }

    /// Opens the store a user named: a local folder holds everything; an
    /// `s3://bucket/prefix` URL holds the objects, and the metadata and run
    /// locks stay in the local folder `local_metadata`.
    pub fn open_location(location: &str, local_metadata: &Path) -> Result<Self, OpenError> {
        if ObjectStore::is_remote_url(location) {
            Self::open_split(location, local_metadata)
        } else {
            Self::open(location)
        }
    }

    fn with_objects(objects: ObjectStore, root: PathBuf) -> Result<Self, OpenError> {
        let metadata = Metadata::open(root.join("metadata.sqlite"))?;
        Ok(Store {
            root,
            objects,
            metadata,
        })
    }

    /// The store's local folder (metadata, locks, and objects unless remote).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock_path(&self, run_id: &str) -> PathBuf {
        self.root.join("locks").join(format!("{run_id}.lock"))
    }

    /// Takes the lock of a new run.
    pub fn lock_run(&self, run_id: &str) -> Result<RunLock, OpenError> {
        let path = self.lock_path(run_id);
        let err = |source| OpenError::Lock {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(path.parent().unwrap()).map_err(err)?;
        let file = File::create(&path).map_err(err)?;
        file.lock().map_err(err)?;
        Ok(RunLock { _file: file, path })
    }

    /// Whether the process running `run_id` still holds its lock.
    pub fn run_is_alive(&self, run_id: &str) -> bool {
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
    pub fn recover(&self, now: &str) -> Result<Vec<String>, OpenError> {
        let dead = self.metadata.recover(|id| self.run_is_alive(id), now)?;
        for id in &dead {
            let _ = fs::remove_file(self.lock_path(id));
        }
        Ok(dead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;

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
