//! The metadata database itself: where it lives, the connection, its
//! errors, and the schema migrations.
//!
//! Two backends hold the same schema: SQLite ([`sqlite`], one file, the
//! embedded default) and PostgreSQL ([`postgres`], a server a team shares).
//! The rest of the crate speaks to either through [`Conn`]: statements in
//! the SQL both understand (`?1` parameters, `ON CONFLICT`, `RETURNING`),
//! values as [`Value`]s, rows read back as [`Row`]s.
//!
//! Each part of the store owns its tables — [`crate::metadata`] the runs
//! and executions, [`crate::registry`] the models and aliases,
//! [`crate::request_log`] the served requests' log chunks,
//! [`crate::watch_state`] the triggers' state, [`crate::lease`] the leases
//! — in a numbered SQL file of its own under `host/store/migrations/`,
//! once per backend with the same number; this module only applies them in
//! order, so it depends on none of those modules and they all depend on it.
//! A database newer than this build is refused on both backends.
//!
//! Writes are serialized on both: SQLite's `BEGIN IMMEDIATE` takes the
//! database's one write lock, and on PostgreSQL every write transaction
//! first takes one transaction-scoped advisory lock. So a registration's
//! "next version number" or an alias's "previous version" is read and
//! written with no other writer in between, on one machine or many.

mod postgres;
mod sqlite;
mod tls;

use crate::Digest;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An error from the metadata database.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The database failed.
    #[error("metadata database {location}: {source}")]
    Database {
        /// The database (a file, or a URL without its password).
        location: String,
        /// What the database said.
        source: DbError,
    },
    /// The database was written by a newer sluice.
    #[error(
        "metadata database {location} has schema version {found}, newer than this sluice understands ({supported}); upgrade sluice"
    )]
    TooNew {
        /// The database (a file, or a URL without its password).
        location: String,
        /// Its version.
        found: i64,
        /// Ours.
        supported: i64,
    },
    /// A metadata location that cannot be used as written.
    #[error("{0}")]
    Location(String),
    /// A run, execution or artifact asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A conditional write found the record changed since it was read
    /// (an alias moved by someone else in between).
    #[error("{0}")]
    Conflict(String),
}

impl MetadataError {
    /// Whether trying again later may succeed: the database could not be
    /// reached, dropped the connection or was busy — not a refusal, a
    /// schema mismatch or a missing record. What an engine's retry is for.
    pub fn is_transient(&self) -> bool {
        match self {
            MetadataError::Database { source, .. } => match source {
                DbError::Postgres(e) => postgres::is_transient(e),
                DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ),
                _ => false,
            },
            _ => false,
        }
    }
}

/// What a database backend reported.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL (or the connection to it) failed.
    #[error("{}", postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// TLS to the server cannot be set up as the URL asks.
    #[error("TLS: {0}")]
    Tls(String),
    /// A value read back is not of the type its column holds.
    #[error("{0}")]
    Decode(String),
}

/// Where a store's metadata lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataLocation {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, as a `postgres://` URL. The password may be
    /// in the URL, in `PGPASSWORD`, or in a `.pgpass` file (`PGPASSFILE`,
    /// else `~/.pgpass`); it is never shown.
    Postgres(String),
}

impl MetadataLocation {
    /// A `postgres://` or `postgresql://` URL names a server; anything else
    /// is the path of a SQLite file.
    pub fn parse(text: &str) -> Self {
        if Self::is_postgres_url(text) {
            MetadataLocation::Postgres(text.to_string())
        } else {
            MetadataLocation::Sqlite(PathBuf::from(text))
        }
    }

    /// Whether `text` names a PostgreSQL server.
    pub fn is_postgres_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// The location as it may be shown: a file's path, or the URL with its
    /// password removed.
    pub fn display(&self) -> String {
        match self {
            MetadataLocation::Sqlite(path) => path.display().to_string(),
            MetadataLocation::Postgres(url) => postgres::redact(url),
        }
    }
}

/// Whether a `postgres://` URL carries a password.
pub(crate) fn url_has_password(url: &str) -> bool {
    postgres::redact(url) != url
}

/// The schema, one migration per entry and backend, each owned by the
/// module whose tables it creates; entry `i` takes the database from
/// version `i` to `i + 1`. Append only: a released entry never changes.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        include_str!("../../migrations/sqlite/0001_core.sql"),
        include_str!("../../migrations/postgres/0001_core.sql"),
    ),
    (
        include_str!("../../migrations/sqlite/0002_registry.sql"),
        include_str!("../../migrations/postgres/0002_registry.sql"),
    ),
    (
        include_str!("../../migrations/sqlite/0003_request_log.sql"),
        include_str!("../../migrations/postgres/0003_request_log.sql"),
    ),
    (
        include_str!("../../migrations/sqlite/0004_watch_state.sql"),
        include_str!("../../migrations/postgres/0004_watch_state.sql"),
    ),
    (
        include_str!("../../migrations/sqlite/0005_model_identity.sql"),
        include_str!("../../migrations/postgres/0005_model_identity.sql"),
    ),
    (
        include_str!("../../migrations/sqlite/0006_team.sql"),
        include_str!("../../migrations/postgres/0006_team.sql"),
    ),
    (
        include_str!("../../migrations/sqlite/0007_planned_runs.sql"),
        include_str!("../../migrations/postgres/0007_planned_runs.sql"),
    ),
    (
        include_str!("../../migrations/sqlite/0008_promotion.sql"),
        include_str!("../../migrations/postgres/0008_promotion.sql"),
    ),
    (
        include_str!("../../migrations/sqlite/0009_serving_stats.sql"),
        include_str!("../../migrations/postgres/0009_serving_stats.sql"),
    ),
    (
        include_str!("../../migrations/sqlite/0010_rollouts.sql"),
        include_str!("../../migrations/postgres/0010_rollouts.sql"),
    ),
    (
        include_str!("../../migrations/sqlite/0011_routes.sql"),
        include_str!("../../migrations/postgres/0011_routes.sql"),
    ),
];

/// How long a connection waits for another's lock before it fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The metadata database of a store. Cloning it shares the connection
/// (a run's heartbeat renews its lease through the run's own handle).
#[derive(Clone)]
pub struct Metadata {
    location: MetadataLocation,
    shown: String,
    conn: Arc<Mutex<Backend>>,
}

impl Metadata {
    /// The latest schema version.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Opens (creating and migrating if needed) the SQLite database at
    /// `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, MetadataError> {
        Self::connect(&MetadataLocation::Sqlite(path.into()))
    }

    /// Opens (creating and migrating if needed) the database at
    /// `location`.
    ///
    /// Several processes may open one database at once (two `sluice run`s
    /// on one store, on one machine or several): the migrations run under
    /// the database's write lock, so exactly one of them applies each.
    pub fn connect(location: &MetadataLocation) -> Result<Self, MetadataError> {
        let shown = location.display();
        let backend = match location {
            MetadataLocation::Sqlite(path) => Ok(Backend::Sqlite(sqlite::Sqlite::open(path))),
            MetadataLocation::Postgres(url) => {
                postgres::Postgres::connect(url).map(|db| Backend::Postgres(Box::new(db)))
            }
        };
        let mut backend = backend.map_err(|e| match e {
            postgres::ConnectError::Location(why) => MetadataError::Location(why),
            postgres::ConnectError::Db(source) => MetadataError::Database {
                location: shown.clone(),
                source,
            },
        })?;
        let found = backend
            .migrate()
            .map_err(|source| MetadataError::Database {
                location: shown.clone(),
                source,
            })?;
        if found > Self::SCHEMA_VERSION {
            return Err(MetadataError::TooNew {
                location: shown,
                found,
                supported: Self::SCHEMA_VERSION,
            });
        }
        Ok(Metadata {
            location: location.clone(),
            shown,
            conn: Arc::new(Mutex::new(backend)),
        })
    }

    /// Where the database is.
    pub fn location(&self) -> &MetadataLocation {
        &self.location
    }

    /// The database as it may be shown (a path, or a URL without its
    /// password).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The SQLite file, when the database is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            MetadataLocation::Sqlite(path) => Some(path),
            MetadataLocation::Postgres(_) => None,
        }
    }

    /// Whether the database is a server that other machines may share
    /// (so that a run's liveness cannot be told by a local file lock).
    pub fn is_shared(&self) -> bool {
        matches!(self.location, MetadataLocation::Postgres(_))
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<i64, MetadataError> {
        self.read(|c| c.backend.schema_version())
    }

    /// Runs `f` on the connection, outside any transaction: for reads.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut Conn<'_>) -> Result<T, DbError>,
    ) -> Result<T, MetadataError> {
        let mut backend = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let result = backend.reconnect_if_closed().and_then(|()| {
            f(&mut Conn {
                backend: &mut backend,
            })
        });
        result.map_err(|source| self.error(source))
    }

    /// Runs `f` in one write transaction, with no other writer — in this
    /// process or any other sharing the database — between its reads and
    /// its writes. Rolled back when `f` fails.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut Conn<'_>) -> Result<T, DbError>,
    ) -> Result<T, MetadataError> {
        let mut backend = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let result = backend.reconnect_if_closed().and_then(|()| {
            backend.begin_write()?;
            match f(&mut Conn {
                backend: &mut backend,
            }) {
                Ok(value) => backend.commit().map(|()| value),
                Err(e) => {
                    let _ = backend.rollback();
                    Err(e)
                }
            }
        });
        result.map_err(|source| self.error(source))
    }

    fn error(&self, source: DbError) -> MetadataError {
        MetadataError::Database {
            location: self.shown.clone(),
            source,
        }
    }
}

/// A statement's parameter, or a value read back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// What can be bound as a statement's parameter.
pub(crate) trait ToValue {
    fn to_value(&self) -> Value;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToValue for u32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// A statement's parameters: `vals![a, b, c]`.
macro_rules! vals {
    ($($x:expr),* $(,)?) => {
        &[$($crate::db::ToValue::to_value(&$x)),*] as &[$crate::db::Value]
    };
}
pub(crate) use vals;

/// One row read back.
#[derive(Debug, Clone)]
pub(crate) struct Row(Vec<Value>);

impl Row {
    /// Every column, as read.
    pub(crate) fn values(&self) -> &[Value] {
        &self.0
    }

    /// Column `i` as a `T`.
    pub(crate) fn get<T: FromValue>(&self, i: usize) -> Result<T, DbError> {
        let value = self
            .0
            .get(i)
            .ok_or_else(|| DbError::Decode(format!("no column {i}")))?;
        T::from_value(value).ok_or_else(|| {
            DbError::Decode(format!(
                "column {i} holds {value:?}, not a {}",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// What a column can be read as.
pub(crate) trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}
impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Real(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i != 0),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// The connection as the store's modules use it.
pub(crate) struct Conn<'a> {
    backend: &'a mut Backend,
}

impl Conn<'_> {
    /// Runs a statement; returns how many rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.backend.execute(sql, params)
    }

    /// Runs one statement once per parameter row; returns how many rows
    /// they changed. On PostgreSQL the executions are pipelined: one
    /// round trip's wait for all of them.
    pub(crate) fn execute_all(&mut self, sql: &str, rows: &[Vec<Value>]) -> Result<u64, DbError> {
        match self.backend {
            Backend::Sqlite(db) => rows.iter().map(|params| db.execute(sql, params)).sum(),
            Backend::Postgres(db) => db.execute_all(sql, rows),
        }
    }

    /// Runs a query; returns every row.
    pub(crate) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.backend.query(sql, params)
    }

    /// Runs a query; returns its first row, if any.
    pub(crate) fn query_opt(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs a query that returns at least one row; returns the first.
    pub(crate) fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row, DbError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| DbError::Decode("the query returned no row".into()))
    }

    /// Runs a query; returns column 0 of every row.
    pub(crate) fn column<T: FromValue>(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<T>, DbError> {
        self.query(sql, params)?.iter().map(|r| r.get(0)).collect()
    }

    /// Makes the numbers the database gives `table`'s identity `column`
    /// follow the largest one in it (after rows were copied in with their
    /// numbers). SQLite does so by itself.
    pub(crate) fn follow_numbering(&mut self, table: &str, column: &str) -> Result<(), DbError> {
        match self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(db) => db.batch(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), MAX({column})) FROM {table} HAVING MAX({column}) IS NOT NULL"
            )),
        }
    }

    /// The database's clock, in milliseconds since the Unix epoch: the one
    /// clock every machine sharing the database agrees on.
    pub(crate) fn now_ms(&mut self) -> Result<i64, DbError> {
        self.backend.now_ms()
    }
}

/// A connection to one of the two backends.
enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(Box<postgres::Postgres>),
}

impl Backend {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match self {
            Backend::Sqlite(db) => db.execute(sql, params),
            Backend::Postgres(db) => db.execute(sql, params),
        }
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        match self {
            Backend::Sqlite(db) => db.query(sql, params),
            Backend::Postgres(db) => db.query(sql, params),
        }
    }

    fn begin_write(&mut self) -> Result<(), DbError> {
        match self {
            Backend::Sqlite(db) => db.batch("BEGIN IMMEDIATE"),
            Backend::Postgres(db) => db.begin_write(),
        }
    }

    fn commit(&mut self) -> Result<(), DbError> {
        match self {
            Backend::Sqlite(db) => db.batch("COMMIT"),
            Backend::Postgres(db) => db.batch("COMMIT"),
        }
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        match self {
            Backend::Sqlite(db) => db.batch("ROLLBACK"),
            Backend::Postgres(db) => db.batch("ROLLBACK"),
        }
    }

    fn now_ms(&mut self) -> Result<i64, DbError> {
        match self {
            // One machine: its clock is the database's.
            Backend::Sqlite(_) => Ok(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)),
            Backend::Postgres(db) => db.now_ms(),
        }
    }

    fn reconnect_if_closed(&mut self) -> Result<(), DbError> {
        match self {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(db) => db.reconnect_if_closed(),
        }
    }

    fn schema_version(&mut self) -> Result<i64, DbError> {
        match self {
            Backend::Sqlite(db) => db.schema_version(),
            Backend::Postgres(db) => db.schema_version(),
        }
    }

    /// Applies the migrations this database lacks, under its write lock;
    /// returns the version it was found at (newer than ours: nothing is
    /// applied, and the caller refuses it).
    fn migrate(&mut self) -> Result<i64, DbError> {
        let started = std::time::Instant::now();
        loop {
            match self.migrate_once() {
                // SQLite answers some of the locks opening takes —
                // switching a new database to WAL, a reader meeting
                // another's WAL recovery — with "database is locked" at
                // once, without waiting for the busy timeout; so the whole
                // opening is tried again until BUSY_TIMEOUT has passed.
                Err(DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    if let Backend::Sqlite(db) = self {
                        db.reopen()?;
                    }
                }
                other => return other,
            }
        }
    }

    fn migrate_once(&mut self) -> Result<i64, DbError> {
        if let Backend::Sqlite(db) = self {
            db.prepare()?;
        }
        // Up to date (the usual case): no need for the write lock.
        let seen = self.schema_version()?;
        if seen >= Metadata::SCHEMA_VERSION {
            return Ok(seen);
        }
        self.begin_write()?;
        let result = (|| {
            let found = self.schema_version()?;
            for (i, (lite, pg)) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
                match self {
                    Backend::Sqlite(db) => {
                        db.batch(lite)?;
                        db.batch(&format!("PRAGMA user_version = {}", i + 1))?;
                    }
                    Backend::Postgres(db) => {
                        db.batch(pg)?;
                        db.set_schema_version(i as i64 + 1)?;
                    }
                }
            }
            Ok(found)
        })();
        match result {
            Ok(found) => {
                self.commit()?;
                if let Backend::Postgres(db) = self {
                    db.forget_statements();
                }
                Ok(found)
            }
            Err(e) => {
                let _ = self.rollback();
                Err(e)
            }
        }
    }
}

/// A digest column's value; a malformed one (never written by sluice)
/// reads as all zeroes rather than failing the whole query.
pub(crate) fn parse_digest(hex: String) -> Digest {
    hex.parse().unwrap_or(Digest::from_bytes([0; 32]))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh, empty database on every backend the tests can reach:
    /// SQLite always, PostgreSQL when `SLUICE_TEST_POSTGRES_URL` names a
    /// server (`scripts/test` starts one) — each in a schema of its own, so
    /// tests running at once do not see each other's rows.
    pub(crate) fn backends() -> Vec<(tempfile::TempDir, Metadata)> {
        let mut all = Vec::new();
        let dir = tempfile::tempdir().unwrap();
        let m = Metadata::open(dir.path().join("metadata.sqlite")).unwrap();
        all.push((dir, m));
        if let Some(url) = postgres::tests::fresh_schema_url() {
            let dir = tempfile::tempdir().unwrap();
            let m = Metadata::connect(&MetadataLocation::Postgres(url)).unwrap();
            all.push((dir, m));
        }
        all
    }

    #[test]
    fn many_processes_may_create_and_open_one_database_at_once() {
        // Threads with connections of their own lock the database as
        // processes do; a fresh database each round, so that every round
        // races the creation (on SQLite, the switch to WAL) and the
        // migrations.
        let mut locations: Vec<(Option<tempfile::TempDir>, MetadataLocation)> = Vec::new();
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("metadata.sqlite");
            locations.push((Some(dir), MetadataLocation::Sqlite(path)));
        }
        for _ in 0..3 {
            if let Some(url) = postgres::tests::fresh_schema_url() {
                locations.push((None, MetadataLocation::Postgres(url)));
            }
        }
        for (_dir, location) in &locations {
            let opened: Vec<Result<Metadata, MetadataError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..6)
                    .map(|_| scope.spawn(|| Metadata::connect(location)))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for m in opened {
                assert_eq!(
                    m.unwrap().schema_version().unwrap(),
                    Metadata::SCHEMA_VERSION
                );
            }
        }
    }

    #[test]
    fn migrations_run_once_and_reopen_is_idempotent() {
        for (_dir, m) in backends() {
            let again = Metadata::connect(m.location()).unwrap();
            assert_eq!(again.schema_version().unwrap(), Metadata::SCHEMA_VERSION);
            // The tables exist once: a second migration would have failed
            // on CREATE TABLE.
            let runs: i64 = again
                .read(|c| c.query_one("SELECT COUNT(*) FROM runs", &[])?.get(0))
                .unwrap();
            assert_eq!(runs, 0);
        }
    }

    #[test]
    fn a_newer_schema_is_refused_with_advice_on_every_backend() {
        for (_dir, m) in backends() {
            let newer = Metadata::SCHEMA_VERSION + 1;
            m.write(|c| match m.location() {
                MetadataLocation::Sqlite(_) => c
                    .execute(&format!("PRAGMA user_version = {newer}"), &[])
                    .map(drop),
                MetadataLocation::Postgres(_) => c
                    .execute("UPDATE sluice_schema SET version = ?1", vals![newer])
                    .map(drop),
            })
            .unwrap();
            let err = Metadata::connect(m.location()).err().unwrap();
            let text = err.to_string();
            assert!(text.contains("upgrade sluice"), "{text}");
            assert!(text.contains(&format!("schema version {newer}")), "{text}");
        }
    }

    #[test]
    fn values_round_trip_through_every_backend_with_their_types() {
        for (_dir, m) in backends() {
            let row = m
                .write(|c| {
                    c.execute(
                        "INSERT INTO watch_state (pipeline, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)",
                        vals!["p", "k", "ünïcode ✓ 'quoted'", "t"],
                    )?;
                    c.query_one(
                        "SELECT value, COUNT(*), CAST(1.5 AS DOUBLE PRECISION), NULL, EXISTS (SELECT 1 FROM watch_state WHERE key = ?1) FROM watch_state WHERE pipeline = ?2 GROUP BY value",
                        vals!["k", "p"],
                    )
                })
                .unwrap();
            assert_eq!(row.get::<String>(0).unwrap(), "ünïcode ✓ 'quoted'");
            assert_eq!(row.get::<i64>(1).unwrap(), 1);
            assert_eq!(row.get::<f64>(2).unwrap(), 1.5);
            assert_eq!(row.get::<Option<String>>(3).unwrap(), None);
            assert!(row.get::<bool>(4).unwrap());
            let err = row.get::<i64>(0).unwrap_err();
            assert!(err.to_string().contains("not a i64"), "{err}");
        }
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        for (_dir, m) in backends() {
            let err = m
                .write(|c| {
                    c.execute(
                        "INSERT INTO watch_state (pipeline, key, value, updated_at) VALUES ('p', 'k', 'v', 't')",
                        &[],
                    )?;
                    c.execute("INSERT INTO no_such_table VALUES (1)", &[])
                })
                .unwrap_err();
            assert!(err.to_string().contains("no_such_table"), "{err}");
            let left: i64 = m
                .read(|c| c.query_one("SELECT COUNT(*) FROM watch_state", &[])?.get(0))
                .unwrap();
            assert_eq!(left, 0, "the first insert was rolled back");
            // And the connection is usable afterwards.
            m.write(|c| c.execute("DELETE FROM watch_state", &[]))
                .unwrap();
        }
    }
}
