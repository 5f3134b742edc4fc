//! The PostgreSQL backend: a server several machines share.
//!
//! The rest of sluice is synchronous; the client (tokio-postgres) drives
//! its connection on a small runtime of its own, and each statement is
//! awaited from the calling thread, so the store can be used from any
//! thread, inside an async runtime or not — as the S3 backend is.
//!
//! Statements are written in the SQL both backends understand; `?N`
//! parameters become `$N` here, and each statement is prepared once per
//! connection. The schema version is the one row of `sluice_schema`.
//! Writers serialize on one transaction-scoped advisory lock per schema.
//!
//! TLS as libpq's `sslmode` and `sslrootcert` ask ([`super::tls`]).
//!
//! The password comes from the URL, else `PGPASSWORD`, else a `.pgpass`
//! file (`PGPASSFILE`, else `~/.pgpass`), as libpq reads them; it is
//! never shown (see [`redact`]).

use super::{DbError, Row, Value};
use bytes::BytesMut;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Config, NoTls, Statement};

/// Why a database could not be reached.
pub(super) enum ConnectError {
    /// The URL itself is unusable.
    Location(String),
    /// The server refused, or could not be reached.
    Db(DbError),
}

/// A connection to a PostgreSQL database.
pub(super) struct Postgres {
    config: Config,
    /// TLS, when the URL asks for it.
    tls: Option<Arc<rustls::ClientConfig>>,
    client: Client,
    statements: HashMap<String, Statement>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Dropped, perhaps, on an async runtime's thread, where a blocking
        // shutdown is not allowed.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The first key of the writers' advisory lock ("slui"); the second is
/// the schema's name, so that stores in separate schemas of one database
/// do not wait for each other.
const WRITE_LOCK: i32 = 0x736c_7569;

/// How long connecting may take unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Postgres {
    /// Connects to the database `url` names.
    pub(super) fn connect(url: &str) -> Result<Self, ConnectError> {
        let (parsable, tls) = super::tls::settings(url);
        let tls = match tls.required {
            true => Some(super::tls::client_config(&tls).map_err(ConnectError::Db)?),
            false => None,
        };
        let mut config: Config = parsable.parse().map_err(|e| {
            ConnectError::Location(format!(
                "metadata URL {}: {e}; write postgres://USER@HOST:PORT/DATABASE",
                redact(url)
            ))
        })?;
        if config.get_user().is_none()
            && let Ok(user) = std::env::var("PGUSER")
        {
            config.user(user);
        }
        if config.get_password().is_none()
            && let Some(password) = password_from_environment(&config)
        {
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-postgres")
            .enable_all()
            .build()
            .map_err(|e| ConnectError::Location(format!("starting the I/O runtime: {e}")))?;
        let client = open_client(&runtime, &config, tls.clone()).map_err(ConnectError::Db)?;
        Ok(Postgres {
            config,
            tls,
            client,
            statements: HashMap::new(),
            runtime: Some(runtime),
        })
    }

    /// Connects again when the server closed the connection (it
    /// restarted, or an idle timeout cut it).
    pub(super) fn reconnect_if_closed(&mut self) -> Result<(), DbError> {
        if self.client.is_closed() {
            let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
            self.client = open_client(runtime, &self.config, self.tls.clone())?;
            self.statements.clear();
        }
        Ok(())
    }

    /// Forgets prepared statements (after the schema changed under them).
    pub(super) fn forget_statements(&mut self) {
        self.statements.clear();
    }

    pub(super) fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(wait(self.client.batch_execute(sql))?)
    }

    /// Begins a transaction holding the writers' lock.
    pub(super) fn begin_write(&mut self) -> Result<(), DbError> {
        self.batch(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK}, hashtext(current_schema()))"
        ))
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = wait(self.client.prepare(&placeholders(sql)))?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub(super) fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        Ok(wait(self.client.execute(&statement, &params))?)
    }

    pub(super) fn execute_all(&mut self, sql: &str, rows: &[Vec<Value>]) -> Result<u64, DbError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let statement = self.statement(sql)?;
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = rows
            .iter()
            .map(|row| row.iter().map(|p| p as _).collect())
            .collect();
        let client = &self.client;
        let pending = params.iter().map(|p| client.execute(&statement, p));
        let changed = wait(futures::future::join_all(pending));
        changed.into_iter().try_fold(0, |sum, n| Ok(sum + n?))
    }

    pub(super) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        wait(self.client.query(&statement, &params))?
            .iter()
            .map(decode)
            .collect()
    }

    pub(super) fn now_ms(&mut self) -> Result<i64, DbError> {
        self.query(
            "SELECT CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)",
            &[],
        )?[0]
            .get(0)
    }

    pub(super) fn schema_version(&mut self) -> Result<i64, DbError> {
        // The catalog itself, read under this statement's snapshot: a
        // lookup through the catalog caches (to_regclass) may not yet see
        // a table another migrator committed while this one waited for
        // the write lock.
        let exists: bool = self.query(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relname = 'sluice_schema')",
            &[],
        )?[0]
            .get(0)?;
        if !exists {
            return Ok(0);
        }
        let rows = self.query("SELECT version FROM sluice_schema", &[])?;
        rows.first().map_or(Ok(0), |r| r.get(0))
    }

    pub(super) fn set_schema_version(&mut self, version: i64) -> Result<(), DbError> {
        self.batch(&format!(
            "CREATE TABLE IF NOT EXISTS sluice_schema (version BIGINT NOT NULL);
             DELETE FROM sluice_schema; INSERT INTO sluice_schema VALUES ({version})"
        ))
    }
}

/// Connects on `runtime` (over TLS with `tls`), which then drives the
/// connection until the client is dropped or the server closes it.
fn open_client(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Client, DbError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let config = config.clone();
    runtime.spawn(async move {
        match tls {
            Some(tls) => drive(config.connect(super::tls::MakeRustls(tls)).await, tx).await,
            None => drive(config.connect(NoTls).await, tx).await,
        }
    });
    Ok(rx.recv().expect("the connecting task answers")?)
}

/// Hands the client over, then runs the connection.
async fn drive<S, T>(
    connected: Result<(Client, tokio_postgres::Connection<S, T>), tokio_postgres::Error>,
    tx: std::sync::mpsc::Sender<Result<Client, tokio_postgres::Error>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match connected {
        Ok((client, connection)) => {
            let _ = tx.send(Ok(client));
            let _ = connection.await;
        }
        Err(e) => {
            let _ = tx.send(Err(e));
        }
    }
}

/// Waits for one request; the connection's runtime does the I/O.
fn wait<T>(future: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(future)
}

/// `?N` parameters as PostgreSQL writes them (`$N`), outside quotes.
fn placeholders(sql: &str) -> String {
    let mut quoted = false;
    sql.chars()
        .map(|c| {
            if c == '\'' {
                quoted = !quoted;
            }
            if c == '?' && !quoted { '$' } else { c }
        })
        .collect()
}

fn decode(row: &tokio_postgres::Row) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = match *ty {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Value::Real),
            Type::FLOAT4 => row
                .try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into())),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                row.try_get::<_, Option<String>>(i)?.map(Value::Text)
            }
            _ => {
                return Err(DbError::Decode(format!(
                    "column `{}` is of type {ty}, which sluice does not read; cast it to BIGINT, DOUBLE PRECISION or TEXT",
                    column.name()
                )));
            }
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Int(i), _) => i.to_string().as_str().to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Real(f), _) => f.to_string().as_str().to_sql(ty, out),
            (Value::Text(s), _) => s.as_str().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// What a PostgreSQL error says, with the server's detail and hint when
/// it gave them.
/// Whether `e` may go away by itself: the server could not be reached or
/// dropped the connection, is shutting down or out of resources, or gave
/// up a transaction to a concurrent one — not a statement it refused.
pub(super) fn is_transient(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        None => true,
        Some(db) => {
            let code = db.code().code();
            ["08", "53", "57P"]
                .iter()
                .any(|class| code.starts_with(class))
                || code == "40001"
                || code == "40P01"
        }
    }
}

pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// `url` with any password removed, to be shown in messages and logs.
pub(super) fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority_path, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority_path = match authority_path.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{user}@{host}")
        }
        None => authority_path.to_string(),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=…"),
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    let mut shown = if scheme.is_empty() {
        authority_path
    } else {
        format!("{scheme}://{authority_path}")
    };
    if let Some(q) = query {
        shown.push('?');
        shown.push_str(&q);
    }
    shown
}

/// The password libpq would use: `PGPASSWORD`, else the first matching
/// line of the password file.
fn password_from_environment(config: &Config) -> Option<String> {
    if let Ok(p) = std::env::var("PGPASSWORD") {
        return Some(p);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config
        .get_user()
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    let database = config.get_dbname().unwrap_or(&user).to_string();
    pgpass_lookup(&text, [&host, &port, &database, &user])
}

/// The password of the first `host:port:database:user:password` line of a
/// `.pgpass` file matching `wanted` (`*` matches anything; `\:` and `\\`
/// are a literal colon and backslash).
fn pgpass_lookup(text: &str, wanted: [&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => field.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() == 5
            && fields[..4]
                .iter()
                .zip(wanted)
                .all(|(f, w)| f == "*" || f == w)
        {
            return fields.pop();
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A URL of the test server (`SLUICE_TEST_POSTGRES_URL`) whose
    /// `search_path` is a new, empty schema; `None` without a server.
    pub(crate) fn fresh_schema_url() -> Option<String> {
        let Ok(url) = std::env::var("SLUICE_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("SLUICE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "SLUICE_REQUIRE_POSTGRES=1 but SLUICE_TEST_POSTGRES_URL is not set (scripts/test sets it)"
            );
            return None;
        };
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let schema = format!(
            "t{}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % 1_000_000_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = Postgres::connect(&url)
            .unwrap_or_else(|_| panic!("the test server at {} answers", redact(&url)));
        admin
            .batch(&format!("CREATE SCHEMA {schema}"))
            .expect("creating a test schema");
        let separator = if url.contains('?') { '&' } else { '?' };
        Some(format!("{url}{separator}options=-csearch_path%3D{schema}"))
    }

    /// Whether the connection `url` names is encrypted, by the server's
    /// own account.
    fn encrypted(url: &str) -> Result<bool, String> {
        let m = crate::Metadata::connect(&crate::db::MetadataLocation::Postgres(url.into()))
            .map_err(|e| e.to_string())?;
        m.read(|c| {
            c.query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )?
            .get(0)
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn tls_is_used_and_verified_when_the_url_asks_for_it() {
        let (Ok(url), Ok(ca)) = (
            std::env::var("SLUICE_TEST_POSTGRES_URL"),
            std::env::var("SLUICE_TEST_POSTGRES_CA"),
        ) else {
            eprintln!("NOTICE: no TLS test server (scripts/test starts one where openssl is)");
            return;
        };
        // The certificate names localhost and 127.0.0.1.
        let by_name = url.replace("@127.0.0.1:", "@localhost:");
        assert_eq!(encrypted(&url), Ok(false), "plain unless asked");
        assert_eq!(
            encrypted(&format!("{by_name}?sslmode=verify-full&sslrootcert={ca}")),
            Ok(true)
        );
        assert_eq!(
            encrypted(&format!("{url}?sslmode=require&sslrootcert={ca}")),
            Ok(true)
        );
        // The system's roots do not know the test CA: refused, not
        // connected unverified.
        let refused = encrypted(&format!("{url}?sslmode=require")).unwrap_err();
        assert!(refused.to_lowercase().contains("certificate"), "{refused}");
        assert!(!refused.contains("sluice-test-pw"), "{refused}");
        let missing = encrypted(&format!(
            "{url}?sslmode=require&sslrootcert=/nonexistent/ca.pem"
        ))
        .unwrap_err();
        assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");
    }

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(
            redact("postgres://ann:s3cret@db.example:5432/team"),
            "postgres://ann@db.example:5432/team"
        );
        assert_eq!(
            redact("postgresql://ann:p%40ss@db/x?sslmode=disable&password=hunter2"),
            "postgresql://ann@db/x?sslmode=disable&password=…"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        // A password with '@' in it, unencoded.
        assert!(!redact("postgres://ann:a@b@db/x").contains("a@b"));
    }

    #[test]
    fn pgpass_lines_match_like_libpq() {
        let text = "# comment\n\
                    other:5432:*:ann:wrong\n\
                    db.example:5432:team:ann:right\\:one\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(text, ["db.example", "5432", "team", "ann"]).as_deref(),
            Some("right:one")
        );
        assert_eq!(
            pgpass_lookup(text, ["elsewhere", "5433", "x", "bob"]).as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup("a:b:c:d:e\n", ["x", "b", "c", "d"]), None);
    }

    #[test]
    fn parameters_become_dollar_parameters_outside_quotes() {
        assert_eq!(
            placeholders("SELECT '?1' FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1' FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn an_unreachable_server_is_named_without_its_password() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("postgres://ann:s3cret@127.0.0.1:{port}/team");
        let err = crate::Metadata::connect(&crate::db::MetadataLocation::Postgres(url))
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(
            err.contains(&format!("postgres://ann@127.0.0.1:{port}/team")),
            "{err}"
        );
        assert!(err.to_lowercase().contains("refused"), "{err}");
        let bad = crate::Metadata::connect(&crate::db::MetadataLocation::Postgres(
            "postgres://ann:s3cret@db/x?port=notaport".into(),
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(!bad.contains("s3cret"), "{bad}");
        assert!(bad.contains("postgres://USER@HOST"), "{bad}");
    }
}
