use crate::Digest;
use crate::remote::Remote;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An error reading or writing the object store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The filesystem refused an operation.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "writing object".
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An object is missing.
    #[error(
        "object {digest} is not in the store at {root} (removed from outside sluice?); `sluice store verify` lists every missing object, and `sluice run --no-cache` makes them again"
    )]
    Missing {
        /// The object asked for.
        digest: Digest,
        /// The store's location.
        root: String,
    },
    /// The S3-compatible backend failed or is misconfigured.
    #[error("object store {url}: {detail}")]
    Remote {
        /// The store's URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// An object's bytes no longer match its name.
    #[error("object {digest} is corrupt: its bytes hash to {actual}")]
    Corrupt {
        /// The name of the object.
        digest: Digest,
        /// What its bytes hash to now.
        actual: Digest,
    },
}

impl StoreError {
    /// Whether trying again later may succeed: a remote object store that
    /// failed (object_store has retried already) — not a missing or
    /// corrupt object, nor a local file system's refusal.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Remote { .. })
    }
}

/// One stored object, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its name.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: std::time::SystemTime,
}

/// A content-addressed object store: a local folder, or an S3-compatible
/// bucket (see [`ObjectStore::open_url`]).
pub struct ObjectStore {
    root: PathBuf,
    remote: Option<Remote>,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location_root())
    }
}

impl ObjectStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        let objects = root.join("objects").join("sha256");
        fs::create_dir_all(&objects).map_err(|source| StoreError::Io {
            action: "creating store folder",
            path: objects.clone(),
            source,
        })?;
        Ok(ObjectStore { root, remote: None })
    }

    /// Whether `location` names a remote object store (`s3://…`) rather
    /// than a local folder.
    pub fn is_remote_url(location: &str) -> bool {
        location.starts_with("s3://")
    }

    /// Opens `s3://bucket/prefix` (credentials and endpoint from the usual
    /// `AWS_*` environment variables), or a local folder for anything else.
    pub fn open_url(url: &str) -> Result<Self, StoreError> {
        if Self::is_remote_url(url) {
            Ok(ObjectStore {
                root: PathBuf::from(url),
                remote: Some(Remote::open(url)?),
            })
        } else {
            Self::open(url)
        }
    }

    /// The store's root folder (for a remote store, its URL as a path).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether objects live in an S3-compatible bucket.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// The store's location: its folder, or its URL.
    pub fn location_root(&self) -> String {
        match &self.remote {
            Some(r) => r.url().to_string(),
            None => self.root.display().to_string(),
        }
    }

    /// Where the object named `digest` lives: a file path, or a URL.
    pub fn location(&self, digest: &Digest) -> String {
        match &self.remote {
            Some(r) => r.location(digest),
            None => self.path_of(digest).display().to_string(),
        }
    }

    /// Where the object named `digest` lives (whether or not it exists).
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.root
            .join("objects")
            .join("sha256")
            .join(&hex[..2])
            .join(&hex[2..])
    }

    /// Whether the object is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        if let Some(r) = &self.remote {
            return r.contains(digest);
        }
        self.path_of(digest).is_file()
    }

    /// The size in bytes of a stored object, if present.
    pub fn size_of(&self, digest: &Digest) -> Option<u64> {
        if let Some(r) = &self.remote {
            return r.size_of(digest);
        }
        std::fs::metadata(self.path_of(digest))
            .ok()
            .map(|m| m.len())
    }

    /// Stores `bytes` and returns their digest. Storing the same bytes twice
    /// is a no-op the second time.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if let Some(r) = &self.remote {
            r.put(&digest, bytes)?;
            return Ok(digest);
        }
        let path = self.path_of(&digest);
        if path.is_file() {
            return Ok(digest);
        }
        write_atomically(&path, bytes)?;
        Ok(digest)
    }

    /// Reads the object named `digest`, checking that its bytes still match.
    pub fn get(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let missing = || StoreError::Missing {
            digest: *digest,
            root: self.location_root(),
        };
        let bytes = match &self.remote {
            Some(r) => r.get(digest)?.ok_or_else(missing)?,
            None => self.read_local(digest, missing)?,
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(StoreError::Corrupt {
                digest: *digest,
                actual,
            });
        }
        Ok(bytes)
    }

    fn read_local(
        &self,
        digest: &Digest,
        missing: impl Fn() -> StoreError,
    ) -> Result<Vec<u8>, StoreError> {
        let path = self.path_of(digest);
        fs::read(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                missing()
            } else {
                StoreError::Io {
                    action: "reading object",
                    path: path.clone(),
                    source,
                }
            }
        })
    }

    /// Every object in the store with its size and age, in no particular
    /// order. Leftover temporary files and files whose names are not
    /// digests are not listed (see [`ObjectStore::list_temporaries`]).
    pub fn list_objects(&self) -> Result<Vec<ObjectInfo>, StoreError> {
        if let Some(r) = &self.remote {
            return Ok(r
                .list()?
                .into_iter()
                .map(|l| ObjectInfo {
                    digest: l.digest,
                    size: l.size,
                    modified: l.modified,
                })
                .collect());
        }
        let mut out = Vec::new();
        self.walk(|dir, name, meta| {
            if let Ok(digest) = format!("{dir}{name}").parse::<Digest>() {
                out.push(ObjectInfo {
                    digest,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH),
                });
            }
        })?;
        Ok(out)
    }

    /// Temporary files (`.tmp-*`) under `objects/sha256`, with their file
    /// metadata: left by writers that crashed between creating and renaming
    /// them, or still being written by a live one.
    pub fn list_temporaries(&self) -> Result<Vec<(PathBuf, fs::Metadata)>, StoreError> {
        let mut out = Vec::new();
        if self.remote.is_some() {
            // Remote writes are single atomic PUTs: nothing is left behind.
            return Ok(out);
        }
        let root = self.root.join("objects").join("sha256");
        self.walk(|dir, name, meta| {
            if name.starts_with(".tmp-") {
                out.push((root.join(dir).join(name), meta));
            }
        })?;
        Ok(out)
    }

    /// Deletes the object named `digest`; returns whether it was there. The
    /// fan-out folder is left in place even when empty, so that a concurrent
    /// writer that has just created it never finds it gone.
    pub fn remove(&self, digest: &Digest) -> Result<bool, StoreError> {
        if let Some(r) = &self.remote {
            let present = r.contains(digest);
            r.delete(digest)?;
            return Ok(present);
        }
        let path = self.path_of(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io {
                action: "removing object",
                path,
                source,
            }),
        }
    }

    /// Calls `f(fan-out folder name, file name, metadata)` for every plain
    /// file in the two-character folders under `objects/sha256`.
    fn walk(&self, mut f: impl FnMut(&str, &str, fs::Metadata)) -> Result<(), StoreError> {
        let root = self.root.join("objects").join("sha256");
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io {
                action: "listing objects",
                path,
                source,
            }
        };
        for dir in fs::read_dir(&root).map_err(io_err(&root))? {
            let dir = dir.map_err(io_err(&root))?;
            let dir_name = dir.file_name().to_string_lossy().into_owned();
            if dir_name.len() != 2 || !dir.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let entries = match fs::read_dir(dir.path()) {
                Ok(e) => e,
                // Removed by someone else between the two listings.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&dir.path())(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io_err(&dir.path()))?;
                // A file renamed or removed meanwhile is simply not listed.
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_file() {
                    f(&dir_name, &entry.file_name().to_string_lossy(), meta);
                }
            }
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` so that readers see either nothing or all of it:
/// a uniquely named temporary file in the same folder, synced, then renamed.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().expect("object paths have a parent");
    let io_err = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    };
    fs::create_dir_all(dir).map_err(io_err("creating folder", dir))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(source) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("writing object", path)(source));
    }
    Ok(())
}

static TMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_then_get_returns_the_same_bytes_under_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let d = store.put(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(store.get(&d).unwrap(), b"hello");
        let hex = d.to_hex();
        assert!(
            dir.path()
                .join("objects/sha256")
                .join(&hex[..2])
                .join(&hex[2..])
                .is_file()
        );
    }

    #[test]
    fn a_tampered_object_is_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let d = store.put(b"hello").unwrap();
        fs::write(store.path_of(&d), b"jello").unwrap();
        assert!(matches!(store.get(&d), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn a_missing_object_names_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let err = store.get(&Digest::of(b"nope")).unwrap_err();
        assert!(matches!(err, StoreError::Missing { .. }));
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }

    #[test]
    fn objects_are_listed_and_removed_and_temporaries_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let a = store.put(b"a").unwrap();
        let b = store.put(b"bb").unwrap();
        let folder = store.path_of(&a).parent().unwrap().to_path_buf();
        fs::write(folder.join(".tmp-1-1"), b"partial").unwrap();
        fs::write(folder.join("README"), b"not an object").unwrap();
        let mut listed: Vec<(Digest, u64)> = store
            .list_objects()
            .unwrap()
            .into_iter()
            .map(|o| (o.digest, o.size))
            .collect();
        listed.sort();
        let mut expected = vec![(a, 1), (b, 2)];
        expected.sort();
        assert_eq!(listed, expected);
        let temps = store.list_temporaries().unwrap();
        assert_eq!(temps.len(), 1);
        assert_eq!(temps[0].0, folder.join(".tmp-1-1"));
        assert!(store.remove(&a).unwrap());
        assert!(!store.remove(&a).unwrap());
        assert!(!store.contains(&a) && store.contains(&b));
        assert!(folder.is_dir(), "fan-out folders stay");
    }

    #[test]
    fn no_temporary_files_are_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let d = store.put(b"abc").unwrap();
        let folder = store.path_of(&d).parent().unwrap().to_path_buf();
        let names: Vec<_> = fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }
}

/// The object-store suite, run against every backend: a local folder always,
/// and a real S3-compatible server when `SLUICE_TEST_S3_ENDPOINT` names one
/// (`scripts/test` and `.ci/run` start a moto server and set it).
#[cfg(test)]
pub(crate) mod suite {
    use super::*;

    /// Everything a backend must do the same way.
    pub(crate) fn exercise(store: &ObjectStore) {
        let d = store.put(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert!(store.contains(&d));
        assert_eq!(store.size_of(&d), Some(5));
        assert_eq!(store.get(&d).unwrap(), b"hello");
        assert_eq!(store.put(b"hello").unwrap(), d, "storing twice is a no-op");

        let missing = Digest::of(b"never stored");
        assert!(!store.contains(&missing));
        assert_eq!(store.size_of(&missing), None);
        let err = store.get(&missing).unwrap_err();
        assert!(matches!(err, StoreError::Missing { .. }), "{err}");
        assert!(err.to_string().contains(&store.location_root()), "{err}");

        let big = vec![7u8; 3 << 20];
        let b = store.put(&big).unwrap();
        assert_eq!(store.get(&b).unwrap().len(), big.len());

        let listed: Vec<Digest> = store
            .list_objects()
            .unwrap()
            .into_iter()
            .map(|o| o.digest)
            .collect();
        assert!(listed.contains(&d) && listed.contains(&b), "{listed:?}");
        let info = store
            .list_objects()
            .unwrap()
            .into_iter()
            .find(|o| o.digest == b)
            .unwrap();
        assert_eq!(info.size, big.len() as u64);

        assert!(store.remove(&d).unwrap());
        assert!(!store.contains(&d));
        assert!(!store.remove(&d).unwrap());
        assert!(store.location(&b).ends_with(&format!(
            "objects/sha256/{}/{}",
            &b.to_hex()[..2],
            &b.to_hex()[2..]
        )));
    }

    #[test]
    fn the_local_backend_passes_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        exercise(&ObjectStore::open(dir.path()).unwrap());
    }

    #[test]
    fn the_s3_backend_passes_the_suite() {
        let Some(url) = crate::remote::tests::test_bucket("suite") else {
            eprintln!(
                "SLUICE_TEST_S3_ENDPOINT is not set: S3 suite not run (scripts/test sets it)"
            );
            return;
        };
        let store = ObjectStore::open_url(&url).unwrap();
        assert!(store.is_remote());
        exercise(&store);
    }
}
