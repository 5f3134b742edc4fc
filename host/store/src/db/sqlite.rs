//! The SQLite backend: one file, in WAL mode so that several `sluice`
//! processes on one machine share it; the schema version is
//! `PRAGMA user_version`.

use super::{BUSY_TIMEOUT, DbError, Row, Value};
use rusqlite::types::{ToSqlOutput, ValueRef};
use std::path::{Path, PathBuf};

/// A connection to a SQLite database file.
pub(super) struct Sqlite {
    path: PathBuf,
    conn: Option<rusqlite::Connection>,
}

impl Sqlite {
    /// Names the file; nothing is opened until [`Sqlite::prepare`].
    pub(super) fn open(path: &Path) -> Self {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        Sqlite {
            path: path.to_path_buf(),
            conn: None,
        }
    }

    /// Opens the file if it is not open yet, with the settings every
    /// connection needs.
    pub(super) fn prepare(&mut self) -> Result<(), DbError> {
        if self.conn.is_none() {
            let conn = rusqlite::Connection::open(&self.path)?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )?;
            self.conn = Some(conn);
        }
        Ok(())
    }

    /// Drops the connection, so that the next [`Sqlite::prepare`] opens a
    /// fresh one (after opening met a lock).
    pub(super) fn reopen(&mut self) -> Result<(), DbError> {
        self.conn = None;
        Ok(())
    }

    fn conn(&mut self) -> Result<&rusqlite::Connection, DbError> {
        self.prepare()?;
        Ok(self.conn.as_ref().expect("prepared"))
    }

    pub(super) fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.conn()?.execute_batch(sql)?)
    }

    pub(super) fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }

    pub(super) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut all = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Int(i),
                    ValueRef::Real(f) => Value::Real(f),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Value::Text(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            all.push(Row(values));
        }
        Ok(all)
    }

    pub(super) fn schema_version(&mut self) -> Result<i64, DbError> {
        Ok(self
            .conn()?
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}
