//! The model registry: named models with numbered versions, aliases
//! (`production`, `staging`, …) that point at a version, and the full
//! history of every alias move — who, when, why — so that rollback and
//! audit are queries.
//!
//! A version is registered by a pipeline step (`register-model`) in the same
//! transaction that records the step's end; registering the same model
//! under the same name again returns the existing version. "The same" is the
//! same artifact, or the same identity (the ONNX and its transform, see
//! [`NewModel::identity`]): a `--no-cache` retrain that reproduces the model
//! byte for byte registers nothing new, although its card names another run.

use crate::Digest;
use crate::db::{Conn, DbError, Row, vals};
use crate::db::{Metadata, MetadataError};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// A model version to register, as a step asked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewModel {
    /// The model's name.
    pub name: String,
    /// The model artifact.
    pub artifact: Digest,
    /// What makes it the same model as another whatever its card's
    /// provenance: a digest of its ONNX and its transform, when known.
    pub identity: Option<Digest>,
    /// Its metrics, a JSON object.
    pub metrics: serde_json::Value,
}

/// One registered version of a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelVersion {
    /// The model's name.
    pub name: String,
    /// Its version number (1, 2, …), in registration order.
    pub version: i64,
    /// The model artifact.
    pub artifact: Digest,
    /// The metrics it was registered with.
    pub metrics: serde_json::Value,
    /// The run that registered it.
    pub run_id: Option<String>,
    /// The execution that registered it.
    pub execution_id: Option<i64>,
    /// When.
    pub created_at: String,
    /// The aliases that point at this version now.
    pub aliases: Vec<String>,
}

/// One move of an alias.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AliasMove {
    /// The model's name.
    pub name: String,
    /// The alias.
    pub alias: String,
    /// The version it points at after the move.
    pub version: i64,
    /// The version it pointed at before, if any.
    pub previous: Option<i64>,
    /// When.
    pub at: String,
    /// Who moved it (user@host, or the daemon).
    pub who: String,
    /// Why.
    pub reason: String,
    /// Whether the move overrode promotion gates that were unmet
    /// (`sluice models promote --force`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    /// The promotion gates checked for the move and what each said, as
    /// JSON; `None` when no policy applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gates: Option<serde_json::Value>,
}

/// A move of an alias to ask for (see [`Metadata::move_alias`]).
#[derive(Debug, Clone, Default)]
pub struct AliasRequest<'a> {
    /// The model's name.
    pub name: &'a str,
    /// The alias.
    pub alias: &'a str,
    /// The version to point it at.
    pub version: i64,
    /// When set, the move happens only if the alias points at this version
    /// now (`Some(None)`: only if it is unset), so that a decision taken on
    /// what the alias held is not applied after another move.
    pub expected: Option<Option<i64>>,
    /// Who moves it.
    pub who: &'a str,
    /// Why.
    pub reason: &'a str,
    /// Whether unmet gates are overridden.
    pub forced: bool,
    /// The gates checked, as JSON.
    pub gates: Option<serde_json::Value>,
    /// When (RFC 3339).
    pub now: &'a str,
}

/// A reference to a model version: `NAME` (the latest version),
/// `NAME:VERSION` or `NAME@ALIAS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// The latest version of the model.
    Latest(String),
    /// A version number.
    Version(String, i64),
    /// The version an alias points at.
    Alias(String, String),
}

impl ModelRef {
    /// The model's name.
    pub fn name(&self) -> &str {
        match self {
            ModelRef::Latest(n) | ModelRef::Version(n, _) | ModelRef::Alias(n, _) => n,
        }
    }
}

/// Why a model reference does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a model reference; write NAME, NAME:VERSION (e.g. churn:3) or NAME@ALIAS (e.g. churn@production)"
)]
pub struct ModelRefError(String);

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl FromStr for ModelRef {
    type Err = ModelRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ModelRefError(s.to_string());
        if let Some((name, alias)) = s.split_once('@') {
            if valid_name(name) && valid_name(alias) {
                return Ok(ModelRef::Alias(name.into(), alias.into()));
            }
        } else if let Some((name, version)) = s.split_once(':') {
            if let Ok(v) = version.parse::<i64>()
                && valid_name(name)
                && v > 0
            {
                return Ok(ModelRef::Version(name.into(), v));
            }
        } else if valid_name(s) {
            return Ok(ModelRef::Latest(s.into()));
        }
        Err(bad())
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelRef::Latest(n) => write!(f, "{n}"),
            ModelRef::Version(n, v) => write!(f, "{n}:{v}"),
            ModelRef::Alias(n, a) => write!(f, "{n}@{a}"),
        }
    }
}

/// Registers `m` inside the transaction that ends execution `execution_id`;
/// returns its version (the existing one if this artifact, or a model of
/// the same identity, is already registered under this name).
pub(crate) fn register(
    c: &mut Conn<'_>,
    m: &NewModel,
    execution_id: i64,
    now: &str,
) -> Result<i64, DbError> {
    if let Some(row) = c.query_opt(
        "SELECT version FROM models
         WHERE name = ?1 AND (artifact = ?2 OR (CAST(?3 AS TEXT) IS NOT NULL AND identity = ?3))
         ORDER BY version LIMIT 1",
        vals![m.name, m.artifact.to_hex(), m.identity.map(|d| d.to_hex())],
    )? {
        return row.get(0);
    }
    let version: i64 = c
        .query_one(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE name = ?1",
            vals![m.name],
        )?
        .get(0)?;
    c.execute(
        "INSERT INTO models (name, version, artifact, metrics, run_id, execution_id, created_at, identity)
         VALUES (?1, ?2, ?3, ?4, (SELECT run_id FROM executions WHERE id = ?5), ?5, ?6, ?7)",
        vals![
            m.name,
            version,
            m.artifact.to_hex(),
            m.metrics.to_string(),
            execution_id,
            now,
            m.identity.map(|d| d.to_hex())
        ],
    )?;
    Ok(version)
}

const MODEL_COLUMNS: &str = "name, version, artifact, metrics, run_id, execution_id, created_at";

fn version_from_row(r: &Row) -> Result<ModelVersion, DbError> {
    Ok(ModelVersion {
        name: r.get(0)?,
        version: r.get(1)?,
        artifact: crate::db::parse_digest(r.get(2)?),
        metrics: serde_json::from_str(&r.get::<String>(3)?).unwrap_or_default(),
        run_id: r.get(4)?,
        execution_id: r.get(5)?,
        created_at: r.get(6)?,
        aliases: Vec::new(),
    })
}

/// The versions `sql` selects (its columns [`MODEL_COLUMNS`]), each with
/// the aliases that point at it.
fn versions_with_aliases(
    c: &mut Conn<'_>,
    sql: &str,
    params: &[crate::db::Value],
) -> Result<Vec<ModelVersion>, DbError> {
    let mut all = c
        .query(sql, params)?
        .iter()
        .map(version_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    for v in &mut all {
        v.aliases = c.column(
            "SELECT alias FROM model_aliases WHERE name = ?1 AND version = ?2 ORDER BY alias",
            vals![v.name, v.version],
        )?;
    }
    Ok(all)
}

impl Metadata {
    /// Every model name with its latest version, sorted by name.
    pub fn models(&self) -> Result<Vec<ModelVersion>, MetadataError> {
        self.read(|c| {
            versions_with_aliases(
                c,
                &format!(
                    "SELECT {MODEL_COLUMNS} FROM models m WHERE version = (SELECT MAX(version) FROM models WHERE name = m.name) ORDER BY name"
                ),
                &[],
            )
        })
    }

    /// Every version of model `name`, newest first.
    pub fn model_versions(&self, name: &str) -> Result<Vec<ModelVersion>, MetadataError> {
        self.read(|c| {
            versions_with_aliases(
                c,
                &format!(
                    "SELECT {MODEL_COLUMNS} FROM models WHERE name = ?1 ORDER BY version DESC"
                ),
                vals![name],
            )
        })
    }

    /// The version `reference` names, or `None` if there is none (no such
    /// model, version or alias).
    pub fn resolve_model(
        &self,
        reference: &ModelRef,
    ) -> Result<Option<ModelVersion>, MetadataError> {
        self.read(|c| {
            let found = match reference {
                ModelRef::Latest(name) => versions_with_aliases(
                    c,
                    &format!("SELECT {MODEL_COLUMNS} FROM models WHERE name = ?1 ORDER BY version DESC LIMIT 1"),
                    vals![name],
                )?,
                ModelRef::Version(name, v) => versions_with_aliases(
                    c,
                    &format!("SELECT {MODEL_COLUMNS} FROM models WHERE name = ?1 AND version = ?2"),
                    vals![name, v],
                )?,
                ModelRef::Alias(name, alias) => versions_with_aliases(
                    c,
                    &format!(
                        "SELECT {MODEL_COLUMNS} FROM models WHERE name = ?1 AND version =
                         (SELECT version FROM model_aliases WHERE name = ?1 AND alias = ?2)"
                    ),
                    vals![name, alias],
                )?,
            };
            Ok(found.into_iter().next())
        })
    }

    /// Points `alias` of model `name` at `version`, atomically, recording
    /// the move in the alias history. Returns the move.
    pub fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: i64,
        who: &str,
        reason: &str,
        now: &str,
    ) -> Result<AliasMove, MetadataError> {
        self.move_alias(&AliasRequest {
            name,
            alias,
            version,
            who,
            reason,
            now,
            ..AliasRequest::default()
        })
    }

    /// Moves an alias as `request` says and records the move in the
    /// history, in one transaction; with `request.expected`, only if the
    /// alias still points where the caller saw it (else
    /// [`MetadataError::Conflict`]).
    pub fn move_alias(&self, request: &AliasRequest<'_>) -> Result<AliasMove, MetadataError> {
        let result = self.write(|c| move_alias_in(c, request))?;
        result.map_err(|refusal| refusal.error(request))
    }

    /// Every move of the aliases of model `name`, oldest first.
    pub fn alias_history(&self, name: &str) -> Result<Vec<AliasMove>, MetadataError> {
        self.read(|c| {
            c.query(
                "SELECT name, alias, version, previous, at, who, reason, forced, gates
                 FROM alias_history WHERE name = ?1 ORDER BY id",
                vals![name],
            )?
            .iter()
            .map(|r| {
                Ok(AliasMove {
                    name: r.get(0)?,
                    alias: r.get(1)?,
                    version: r.get(2)?,
                    previous: r.get(3)?,
                    at: r.get(4)?,
                    who: r.get(5)?,
                    reason: r.get(6)?,
                    forced: r.get::<i64>(7)? != 0,
                    gates: r
                        .get::<Option<String>>(8)?
                        .and_then(|g| serde_json::from_str(&g).ok()),
                })
            })
            .collect()
        })
    }
}

/// Why an alias did not move.
pub(crate) enum Refusal {
    /// The version does not exist.
    NoVersion,
    /// The alias held this, not what the request expected.
    Moved(Option<i64>),
}

impl Refusal {
    pub(crate) fn error(self, r: &AliasRequest<'_>) -> MetadataError {
        let (name, alias, version) = (r.name, r.alias, r.version);
        match self {
            Refusal::NoVersion => MetadataError::NotFound(format!(
                "model `{name}` has no version {version}; `sluice models show {name}` lists its versions"
            )),
            Refusal::Moved(now_at) => MetadataError::Conflict(format!(
                "`{name}@{alias}` moved while this move was decided: it points at {} now, not {}; decide again",
                now_at.map_or("nothing".to_string(), |v| format!("version {v}")),
                r.expected
                    .flatten()
                    .map_or("nothing".to_string(), |v| format!("version {v}"))
            )),
        }
    }
}

/// [`Metadata::move_alias`] inside a write transaction that may do more.
pub(crate) fn move_alias_in(
    c: &mut crate::db::Conn<'_>,
    request: &AliasRequest<'_>,
) -> Result<Result<AliasMove, Refusal>, crate::db::DbError> {
    let AliasRequest {
        name,
        alias,
        version,
        expected,
        who,
        reason,
        forced,
        ref gates,
        now,
    } = *request;
    let exists: bool = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM models WHERE name = ?1 AND version = ?2)",
            vals![name, version],
        )?
        .get(0)?;
    if !exists {
        return Ok(Err(Refusal::NoVersion));
    }
    let previous: Option<i64> = match c.query_opt(
        "SELECT version FROM model_aliases WHERE name = ?1 AND alias = ?2",
        vals![name, alias],
    )? {
        Some(row) => row.get(0)?,
        None => None,
    };
    if let Some(expected) = expected
        && expected != previous
    {
        return Ok(Err(Refusal::Moved(previous)));
    }
    c.execute(
        "INSERT INTO model_aliases (name, alias, version) VALUES (?1, ?2, ?3)
         ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
        vals![name, alias, version],
    )?;
    c.execute(
        "INSERT INTO alias_history (name, alias, version, previous, at, who, reason, forced, gates)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        vals![
            name,
            alias,
            version,
            previous,
            now,
            who,
            reason,
            i64::from(forced),
            gates.as_ref().map(|g| g.to_string())
        ],
    )?;
    Ok(Ok(AliasMove {
        name: name.into(),
        alias: alias.into(),
        version,
        previous,
        at: now.into(),
        who: who.into(),
        reason: reason.into(),
        forced,
        gates: gates.clone(),
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metadata::NewExecution;
    use crate::metadata::tests::succeeded;

    /// Registers `artifact` as model `name` from a step of run `run`, as
    /// `std:push` does, through its own connection.
    pub(crate) fn push(m: &Metadata, run: &str, step: &str, name: &str, artifact: Digest) -> i64 {
        let parts = serde_json::json!({});
        let id = m
            .start_execution(&NewExecution {
                run_id: run,
                step,
                component: "std:push",
                component_digest: Digest::of(b"push"),
                cache_key: Digest::of(step.as_bytes()),
                key_parts: &parts,
                params: &parts,
                inputs: &[],
                started_at: "t0",
            })
            .unwrap();
        m.finish_execution(
            id,
            &succeeded(
                &[("model".into(), artifact, "model".into(), 1)],
                &[NewModel {
                    name: name.into(),
                    artifact,
                    identity: None,
                    metrics: serde_json::json!({}),
                }],
            ),
        )
        .unwrap();
        id
    }

    #[test]
    fn registrations_and_alias_moves_from_many_connections_at_once_serialize() {
        for (_dir, m) in crate::db::tests::backends() {
            m.start_run("r", "p", "p.toml", &Digest::of(b"s"), "manual", "t0", None)
                .unwrap();
            // Eight machines push eight different models under one name at
            // once: eight versions, 1 to 8, none lost or doubled.
            let start = std::sync::Barrier::new(8);
            std::thread::scope(|scope| {
                for i in 0..8 {
                    let m = Metadata::connect(m.location()).unwrap();
                    let start = &start;
                    scope.spawn(move || {
                        start.wait();
                        push(
                            &m,
                            "r",
                            &format!("push{i}"),
                            "churn",
                            Digest::of(&[i as u8]),
                        )
                    });
                }
            });
            let mut versions: Vec<i64> = m
                .model_versions("churn")
                .unwrap()
                .iter()
                .map(|v| v.version)
                .collect();
            versions.sort();
            assert_eq!(versions, (1..=8).collect::<Vec<_>>());

            // Eight alias moves at once: the history is one chain, each
            // move's `previous` the version the one before it set.
            let start = std::sync::Barrier::new(8);
            std::thread::scope(|scope| {
                for v in 1..=8 {
                    let m = Metadata::connect(m.location()).unwrap();
                    let start = &start;
                    scope.spawn(move || {
                        start.wait();
                        m.set_alias("churn", "production", v, &format!("u{v}"), "race", "t2")
                            .unwrap()
                    });
                }
            });
            let history = m.alias_history("churn").unwrap();
            assert_eq!(history.len(), 8);
            assert_eq!(history[0].previous, None);
            for pair in history.windows(2) {
                assert_eq!(pair[1].previous, Some(pair[0].version), "{history:?}");
            }
            let current = m
                .resolve_model(&"churn@production".parse().unwrap())
                .unwrap()
                .unwrap();
            assert_eq!(current.version, history[7].version);
        }
    }

    #[test]
    fn a_conditional_move_fails_when_the_alias_moved_and_records_gates_and_force() {
        for (_dir, m) in crate::db::tests::backends() {
            m.start_run("r", "p", "p.toml", &Digest::of(b"s"), "manual", "t0", None)
                .unwrap();
            push(&m, "r", "a", "churn", Digest::of(b"v1"));
            push(&m, "r", "b", "churn", Digest::of(b"v2"));
            let request = |version, expected| AliasRequest {
                name: "churn",
                alias: "production",
                version,
                expected,
                who: "ann",
                reason: "gated",
                forced: version == 2,
                gates: Some(serde_json::json!([{"gate": "soak", "passed": version != 2}])),
                now: "t1",
            };
            // Expected unset, and it is: moves.
            let moved = m.move_alias(&request(1, Some(None))).unwrap();
            assert_eq!((moved.previous, moved.forced), (None, false));
            // Someone else moved it since the decision: refused, unchanged.
            let err = m.move_alias(&request(2, Some(None))).unwrap_err();
            assert!(matches!(err, MetadataError::Conflict(_)), "{err}");
            assert!(
                err.to_string()
                    .contains("it points at version 1 now, not nothing"),
                "{err}"
            );
            // Expected right: moves, and the history keeps force and gates.
            m.move_alias(&request(2, Some(Some(1)))).unwrap();
            let history = m.alias_history("churn").unwrap();
            assert_eq!(history.len(), 2);
            assert!(history[1].forced && !history[0].forced);
            assert_eq!(history[1].gates.as_ref().unwrap()[0]["passed"], false);
        }
    }

    #[test]
    fn model_references_parse_and_print() {
        let cases = [
            ("churn", ModelRef::Latest("churn".into())),
            ("churn:3", ModelRef::Version("churn".into(), 3)),
            (
                "churn@production",
                ModelRef::Alias("churn".into(), "production".into()),
            ),
        ];
        for (text, expected) in cases {
            let parsed: ModelRef = text.parse().unwrap();
            assert_eq!(parsed, expected);
            assert_eq!(parsed.to_string(), text);
        }
        for bad in ["", "churn:", "churn:0", "churn:x", "@prod", "a b", "churn@"] {
            let err = bad.parse::<ModelRef>().unwrap_err();
            assert!(err.to_string().contains("NAME@ALIAS"), "{bad}: {err}");
        }
    }
}
