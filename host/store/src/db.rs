//! The metadata database itself: the connection, its errors, and the
//! schema migrations.
//!
//! Each part of the store owns its tables — [`crate::metadata`] the runs
//! and executions, [`crate::registry`] the models and aliases,
//! [`crate::request_log`] the served requests' log chunks,
//! [`crate::watch_state`] the triggers' state — in a numbered SQL file of
//! its own under `host/store/migrations/`, named after it; this module only
//! applies them in order, so it depends on none of those modules and they
//! all depend on it. The schema version is `PRAGMA user_version`; a
//! database newer than this build is refused.

use crate::Digest;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// An error from the metadata database.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// SQLite failed.
    #[error("metadata database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The database was written by a newer sluice.
    #[error(
        "metadata database {path} has schema version {found}, newer than this sluice understands ({supported}); upgrade sluice"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        supported: i64,
    },
    /// A run, execution or artifact asked for does not exist.
    #[error("{0}")]
    NotFound(String),
}

/// The schema, one migration per entry, each owned by the module whose
/// tables it creates; entry `i` takes the database from version `i` to
/// `i + 1`. Append only: a released entry never changes.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_core.sql"),
    include_str!("../migrations/0002_registry.sql"),
    include_str!("../migrations/0003_request_log.sql"),
    include_str!("../migrations/0004_watch_state.sql"),
    include_str!("../migrations/0005_model_identity.sql"),
];

/// How long a connection waits for another's lock before it fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The metadata database of a store.
pub struct Metadata {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Metadata {
    /// The latest schema version.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Opens (creating and migrating if needed) the database at `path`.
    ///
    /// Several processes may open one database at once (two `sluice run`s
    /// on one store). SQLite answers some of the locks opening takes —
    /// switching a new database to WAL, a reader meeting another's WAL
    /// recovery — with "database is locked" at once, without waiting for
    /// the busy timeout; so the whole opening is tried again until
    /// [`BUSY_TIMEOUT`] has passed.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, MetadataError> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let started = std::time::Instant::now();
        loop {
            match Self::open_once(&path) {
                Err(MetadataError::Sqlite {
                    source: rusqlite::Error::SqliteFailure(e, _),
                    ..
                }) if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path) -> Result<Self, MetadataError> {
        let path = path.to_path_buf();
        let err = |source| MetadataError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(err)?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if version > Self::SCHEMA_VERSION {
            return Err(MetadataError::TooNew {
                path,
                found: version,
                supported: Self::SCHEMA_VERSION,
            });
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(migration).map_err(err)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(Metadata {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, MetadataError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|source| MetadataError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }
}

/// A digest column's value; a malformed one (never written by sluice)
/// reads as all zeroes rather than failing the whole query.
pub(crate) fn parse_digest(hex: String) -> Digest {
    hex.parse().unwrap_or(Digest::from_bytes([0; 32]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_processes_may_create_and_open_one_database_at_once() {
        // Threads with connections of their own lock the file as processes
        // do; a fresh database each round, so that every round races the
        // creation, the switch to WAL and the migrations.
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("metadata.sqlite");
            let opened: Vec<Result<Metadata, MetadataError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..6)
                    .map(|_| scope.spawn(|| Metadata::open(&path)))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for m in opened {
                let m = m.unwrap();
                let version: i64 = m
                    .with(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
                    .unwrap();
                assert_eq!(version, Metadata::SCHEMA_VERSION);
            }
        }
    }
}
