//! The metadata database: what ran, when, on what, producing what.
//!
//! Modelled on ML Metadata: `runs`, `executions` (one per step per run),
//! `artifacts` (one per distinct content), `events` (execution ↔ artifact,
//! by direction and port), `imports` (data files a run read) and
//! `components`. SQLite in WAL mode, so several `sluice` processes can share
//! a store; every change is a transaction; the schema is migrated by
//! `PRAGMA user_version`.
//!
//! Artifact bytes are written to the object store *before* the rows that
//! name them, so a crash leaves at worst unreferenced objects (which `gc`
//! removes), never a row pointing at nothing.

use crate::Digest;
pub(crate) use crate::db::parse_digest;
use crate::db::{Conn, DbError, Row, Value, vals};
pub use crate::db::{Metadata, MetadataError};
use serde::Serialize;

/// Lifecycle of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// A process is executing it (or died doing so; see [`Metadata::recover`]).
    Running,
    /// Every step succeeded or was cached.
    Succeeded,
    /// A step failed or was skipped.
    Failed,
    /// The process running it died; resume it with `sluice run --resume`.
    Interrupted,
}

/// Lifecycle of one step execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionState {
    /// Executing (or died doing so).
    Running,
    /// Ran and produced all its outputs.
    Succeeded,
    /// Did not run: an identical execution's outputs were reused.
    Cached,
    /// Ran and failed.
    Failed,
    /// Did not run because an upstream step did not succeed.
    Skipped,
    /// The process died while it ran.
    Interrupted,
}

macro_rules! string_enum {
    ($ty:ident { $($variant:ident => $s:literal),* $(,)? }) => {
        impl $ty {
            /// The lower-case name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $s),* }
            }
            fn parse(s: &str) -> Self {
                match s { $($s => $ty::$variant,)* _ => $ty::Interrupted }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
string_enum!(RunState { Running => "running", Succeeded => "succeeded", Failed => "failed", Interrupted => "interrupted" });
string_enum!(ExecutionState { Running => "running", Succeeded => "succeeded", Cached => "cached", Failed => "failed", Skipped => "skipped", Interrupted => "interrupted" });

/// A run as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Unique id.
    pub id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The spec file it ran.
    pub spec_path: String,
    /// SHA-256 of the spec's text.
    pub spec_digest: String,
    /// What started it (`manual`, `resume`, …).
    pub trigger: String,
    /// How it stands.
    pub state: RunState,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, once ended.
    pub ended_at: Option<String>,
    /// Host name of the machine that ran it.
    pub host: String,
    /// The run this one resumed, if any.
    pub resumed_from: Option<String>,
    /// Who started it (`SLUICE_USER`, else user@host); `None` for runs
    /// recorded before identities were.
    pub started_by: Option<String>,
    /// For a run an engine drives step by step (`sluice run --plan-only`,
    /// then `sluice step exec` per step): the digest of its stored plan.
    /// No process holds such a run while it is `running`.
    pub plan: Option<String>,
}

/// One artifact consumed or produced by an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    /// `input` or `output`.
    pub direction: String,
    /// The port.
    pub port: String,
    /// The artifact's digest.
    pub artifact: Digest,
    /// For inputs: where it came from (`data.NAME` or `STEP.PORT`).
    pub source: Option<String>,
}

/// A step execution as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionRecord {
    /// Row id.
    pub id: i64,
    /// The run.
    pub run_id: String,
    /// The step's name.
    pub step: String,
    /// The component as named in the spec.
    pub component: String,
    /// SHA-256 of the component.
    pub component_digest: Digest,
    /// The cache key.
    pub cache_key: Digest,
    /// The ingredients of the cache key (JSON), for `--explain`.
    pub key_parts: serde_json::Value,
    /// Resolved params (JSON object).
    pub params: serde_json::Value,
    /// How it stands.
    pub state: ExecutionState,
    /// For cached executions: the execution whose outputs were reused.
    pub cached_from: Option<i64>,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub ended_at: Option<String>,
    /// Wall time in milliseconds.
    pub duration_ms: Option<f64>,
    /// Attempts made.
    pub attempts: i64,
    /// One-line failure message.
    pub error: Option<String>,
    /// Metrics (JSON object).
    pub metrics: serde_json::Value,
    /// The full step report (logs, stderr …) as JSON, if kept.
    pub report: Option<serde_json::Value>,
    /// Inputs and outputs.
    pub events: Vec<EventRecord>,
}

impl ExecutionRecord {
    /// The output artifact on `port`.
    pub fn output(&self, port: &str) -> Option<Digest> {
        self.events
            .iter()
            .find(|e| e.direction == "output" && e.port == port)
            .map(|e| e.artifact)
    }
}

/// An artifact as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactRecord {
    /// SHA-256 of its bytes.
    pub digest: Digest,
    /// Its kind (`table`, `statistics`, `file` …).
    pub kind: String,
    /// Size in bytes.
    pub size: i64,
    /// When first recorded.
    pub created_at: String,
}

/// What is needed to start recording an execution.
#[derive(Debug, Clone)]
pub struct NewExecution<'a> {
    /// The run.
    pub run_id: &'a str,
    /// The step.
    pub step: &'a str,
    /// The component as named in the spec.
    pub component: &'a str,
    /// Its digest.
    pub component_digest: Digest,
    /// The cache key.
    pub cache_key: Digest,
    /// The ingredients of the key.
    pub key_parts: &'a serde_json::Value,
    /// Resolved params.
    pub params: &'a serde_json::Value,
    /// Inputs: (port, artifact, source).
    pub inputs: &'a [(String, Digest, String)],
    /// When it started.
    pub started_at: &'a str,
}

/// How an execution ended, to be recorded with its outputs.
#[derive(Debug, Clone)]
pub struct Finished<'a> {
    /// Final state.
    pub state: ExecutionState,
    /// When it ended.
    pub ended_at: &'a str,
    /// Wall time.
    pub duration_ms: f64,
    /// Attempts made.
    pub attempts: u32,
    /// One-line failure message.
    pub error: Option<&'a str>,
    /// Structured failure (JSON).
    pub failure: Option<serde_json::Value>,
    /// Metrics.
    pub metrics: serde_json::Value,
    /// Full report.
    pub report: Option<serde_json::Value>,
    /// Outputs: (port, artifact digest, kind, size). Their bytes must
    /// already be in the object store.
    pub outputs: &'a [(String, Digest, String, u64)],
    /// For cached executions, the execution reused.
    pub cached_from: Option<i64>,
    /// Models the execution registered (`register-model`), recorded in the
    /// same transaction as its end.
    pub models: &'a [crate::registry::NewModel],
}

impl Metadata {
    /// Records a component (once per digest).
    pub fn record_component(
        &self,
        digest: &Digest,
        name: &str,
        size: u64,
        now: &str,
    ) -> Result<(), MetadataError> {
        self.write(|c| insert_component(c, digest, name, size, now))
    }

    /// Starts a run, recording who started it ([`crate::identity::user`]).
    #[allow(clippy::too_many_arguments)]
    pub fn start_run(
        &self,
        id: &str,
        pipeline: &str,
        spec_path: &str,
        spec_digest: &Digest,
        trigger: &str,
        started_at: &str,
        resumed_from: Option<&str>,
    ) -> Result<(), MetadataError> {
        let run = NewRun {
            id,
            pipeline,
            spec_path,
            spec_digest,
            trigger,
            started_at,
        };
        self.write(|c| insert_run(c, &run, resumed_from, None))
    }

    /// Starts a run that an engine drives step by step, with its plan
    /// (digest, JSON text); with the data it imported (name, path, digest,
    /// kind, size), in one transaction. No process holds it, so
    /// [`Metadata::recover`] leaves it `running` until
    /// [`Metadata::finish_run`].
    pub fn start_planned_run(
        &self,
        run: &NewRun<'_>,
        plan: (&Digest, &str),
        imports: &[(&str, &str, Digest, &str, u64)],
    ) -> Result<(), MetadataError> {
        self.write(|c| {
            c.execute(
                "INSERT INTO run_plans (digest, plan) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                vals![plan.0.to_hex(), plan.1],
            )?;
            insert_run(c, run, None, Some(plan.0))?;
            for (name, path, digest, kind, size) in imports {
                insert_import(
                    c,
                    run.id,
                    (name, path),
                    digest,
                    (kind, *size),
                    run.started_at,
                )?;
            }
            Ok(())
        })
    }

    /// The plan stored under `digest` (see [`Metadata::start_planned_run`]).
    pub fn run_plan(&self, digest: &Digest) -> Result<Option<String>, MetadataError> {
        self.read(|c| {
            c.query_opt(
                "SELECT plan FROM run_plans WHERE digest = ?1",
                vals![digest.to_hex()],
            )?
            .map(|r| r.get(0))
            .transpose()
        })
    }

    /// Records objects that no execution produced but that runs need —
    /// a published pipeline's spec, package and data, a run's plan — as
    /// artifacts (digest, kind, size), so that gc keeps them and `store
    /// verify` and `store migrate` cover them.
    pub fn record_artifacts(&self, artifacts: &[(Digest, &str, u64)]) -> Result<(), MetadataError> {
        let now = crate::time::now();
        self.write(|c| {
            for (digest, kind, size) in artifacts {
                record_artifact(c, digest, kind, *size, &now)?;
            }
            Ok(())
        })
    }

    /// Marks a `running` execution whose process is gone (its task's
    /// lease expired) as interrupted, so that it can run again.
    pub fn interrupt_execution(&self, id: i64, now: &str) -> Result<(), MetadataError> {
        self.write(|c| {
            c.execute(
                "UPDATE executions SET state = 'interrupted', ended_at = ?2, error = 'the process running it stopped'
                 WHERE id = ?1 AND state = 'running'",
                vals![id, now],
            )
            .map(drop)
        })
    }

    /// Records the data files a run imported (their bytes already stored).
    #[allow(clippy::too_many_arguments)]
    pub fn record_import(
        &self,
        run_id: &str,
        name: &str,
        path: &str,
        digest: &Digest,
        kind: &str,
        size: u64,
        now: &str,
    ) -> Result<(), MetadataError> {
        self.write(|c| insert_import(c, run_id, (name, path), digest, (kind, size), now))
    }

    /// Ends a run.
    pub fn finish_run(
        &self,
        id: &str,
        state: RunState,
        ended_at: &str,
    ) -> Result<(), MetadataError> {
        self.write(|c| {
            c.execute(
                "UPDATE runs SET state = ?2, ended_at = ?3 WHERE id = ?1",
                vals![id, state.as_str(), ended_at],
            )
            .map(drop)
        })
    }

    /// Records that an execution started (state `running`), with its inputs.
    /// Returns its id.
    pub fn start_execution(&self, e: &NewExecution<'_>) -> Result<i64, MetadataError> {
        self.write(|c| insert_execution(c, e))
    }

    /// Records how an execution ended and what it produced, in one transaction.
    pub fn finish_execution(&self, id: i64, f: &Finished<'_>) -> Result<(), MetadataError> {
        self.write(|c| finish(c, id, f))
    }

    /// Records execution `id` under another cache key: one whose result
    /// measured the machine it ran on (a step that probed the serving
    /// path), so that no later run reuses it. `key_parts` says why.
    pub fn rekey_execution(
        &self,
        id: i64,
        cache_key: &Digest,
        key_parts: &serde_json::Value,
    ) -> Result<(), MetadataError> {
        self.write(|c| {
            c.execute(
                "UPDATE executions SET cache_key = ?2, key_parts = ?3 WHERE id = ?1",
                vals![id, cache_key.to_hex(), key_parts.to_string()],
            )?;
            Ok(())
        })
    }

    /// Records an execution that is over as soon as it starts — reused
    /// from the cache, skipped — with its component (name, size), in one
    /// transaction. Returns its id.
    pub fn record_execution(
        &self,
        component: (&str, u64),
        e: &NewExecution<'_>,
        f: &Finished<'_>,
    ) -> Result<i64, MetadataError> {
        self.write(|c| {
            insert_component(
                c,
                &e.component_digest,
                component.0,
                component.1,
                e.started_at,
            )?;
            let id = insert_execution(c, e)?;
            finish(c, id, f)?;
            Ok(id)
        })
    }

    /// The most recent successful execution with this cache key, whose
    /// outputs can be reused.
    pub fn find_cached(
        &self,
        cache_key: &Digest,
    ) -> Result<Option<ExecutionRecord>, MetadataError> {
        self.read(|c| {
            let Some(row) = c.query_opt(
                &format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE cache_key = ?1 AND state = 'succeeded' ORDER BY id DESC LIMIT 1"),
                vals![cache_key.to_hex()],
            )?
            else {
                return Ok(None);
            };
            let mut rec = execution_from_row(&row)?;
            rec.events = events_of(c, rec.id)?;
            Ok(Some(rec))
        })
    }

    /// The execution of `step` recorded before execution `before` (in any
    /// run) that actually ran or was cached, for explaining what changed.
    pub fn previous_execution(
        &self,
        step: &str,
        pipeline: &str,
        before: i64,
    ) -> Result<Option<ExecutionRecord>, MetadataError> {
        self.read(|c| {
            let id = c.column::<i64>(
                "SELECT e.id FROM executions e JOIN runs r ON r.id = e.run_id
                 WHERE e.step = ?1 AND r.pipeline = ?2 AND e.id < ?3 AND e.state IN ('succeeded', 'cached', 'failed')
                 ORDER BY e.id DESC LIMIT 1",
                vals![step, pipeline, before],
            )?;
            id.first().map(|id| execution(c, *id)).transpose()
        })
    }

    /// One execution with its events.
    pub fn execution(&self, id: i64) -> Result<ExecutionRecord, MetadataError> {
        self.read(|c| execution(c, id))
    }

    /// Every execution of a run, in the order they were started.
    pub fn executions(&self, run_id: &str) -> Result<Vec<ExecutionRecord>, MetadataError> {
        self.read(|c| {
            let mut recs = c
                .query(
                    &format!(
                        "SELECT {EXECUTION_COLUMNS} FROM executions WHERE run_id = ?1 ORDER BY id"
                    ),
                    vals![run_id],
                )?
                .iter()
                .map(execution_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            for r in &mut recs {
                r.events = events_of(c, r.id)?;
            }
            Ok(recs)
        })
    }

    /// A run by id, or by a unique prefix of its id, or `latest`.
    pub fn run(&self, id: &str) -> Result<RunRecord, MetadataError> {
        let runs = self.read(|c| {
            let rows = if id == "latest" {
                c.query(
                    &format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1"),
                    &[],
                )?
            } else {
                c.query(
                    &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1 OR id LIKE ?2 ORDER BY started_at DESC"),
                    vals![id, format!("{id}%")],
                )?
            };
            rows.iter().map(run_from_row).collect::<Result<Vec<_>, _>>()
        })?;
        if let Some(exact) = runs.iter().find(|r| r.id == id) {
            return Ok(exact.clone());
        }
        match runs.len() {
            1 => Ok(runs.into_iter().next().unwrap()),
            0 => Err(MetadataError::NotFound(format!(
                "no run `{id}` in {}; `sluice runs list` shows the runs",
                self.shown()
            ))),
            n => Err(MetadataError::NotFound(format!(
                "`{id}` matches {n} runs ({}…); give more of the id",
                runs.iter()
                    .take(3)
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Runs, newest first, optionally of one pipeline.
    pub fn runs(
        &self,
        pipeline: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, MetadataError> {
        self.read(|c| {
            c.query(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE (CAST(?1 AS TEXT) IS NULL OR pipeline = ?1) ORDER BY started_at DESC, rowid DESC LIMIT ?2"),
                vals![pipeline, limit.min(i64::MAX as usize) as i64],
            )?
            .iter()
            .map(run_from_row)
            .collect()
        })
    }

    /// The imports of a run: (name, path, digest).
    pub fn imports(&self, run_id: &str) -> Result<Vec<(String, String, Digest)>, MetadataError> {
        self.read(|c| {
            c.query(
                "SELECT name, path, artifact FROM imports WHERE run_id = ?1 ORDER BY name",
                vals![run_id],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?, parse_digest(r.get(2)?))))
            .collect()
        })
    }

    /// Artifacts, newest first.
    pub fn artifacts(&self, limit: usize) -> Result<Vec<ArtifactRecord>, MetadataError> {
        self.artifacts_of_kind(None, limit)
    }

    /// Artifacts whose digest starts with `prefix` (hex, `sha256:` optional).
    pub fn artifacts_by_prefix(&self, prefix: &str) -> Result<Vec<ArtifactRecord>, MetadataError> {
        let prefix = prefix
            .strip_prefix("sha256:")
            .unwrap_or(prefix)
            .to_ascii_lowercase();
        self.read(|c| {
            c.query(
                "SELECT digest, kind, size, created_at FROM artifacts WHERE digest LIKE ?1 LIMIT 20",
                vals![format!("{prefix}%")],
            )?
            .iter()
            .map(artifact_from_row)
            .collect()
        })
    }

    /// The executions that produced `artifact` (most recent first).
    pub fn producers(&self, artifact: &Digest) -> Result<Vec<ExecutionRecord>, MetadataError> {
        self.read(|c| {
            let ids = c.column::<i64>(
                "SELECT execution_id FROM events WHERE artifact = ?1 AND direction = 'output' ORDER BY execution_id DESC",
                vals![artifact.to_hex()],
            )?;
            ids.into_iter().map(|id| execution(c, id)).collect()
        })
    }

    /// Imports (run, name, path) that brought `artifact` in.
    pub fn imported_as(
        &self,
        artifact: &Digest,
    ) -> Result<Vec<(String, String, String)>, MetadataError> {
        self.read(|c| {
            c.query(
                "SELECT run_id, name, path FROM imports WHERE artifact = ?1 ORDER BY run_id DESC",
                vals![artifact.to_hex()],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .collect()
        })
    }

    /// Every artifact digest any row refers to (for garbage collection).
    pub fn referenced_artifacts(&self) -> Result<std::collections::HashSet<Digest>, MetadataError> {
        self.read(|c| {
            Ok(c.column::<String>(
                "SELECT digest FROM artifacts UNION SELECT artifact FROM events UNION SELECT artifact FROM imports UNION SELECT object FROM request_logs",
                &[],
            )?
            .into_iter()
            .map(parse_digest)
            .collect())
        })
    }

    /// Every component digest recorded.
    pub fn referenced_components(
        &self,
    ) -> Result<std::collections::HashSet<Digest>, MetadataError> {
        self.read(|c| {
            Ok(c.column::<String>("SELECT digest FROM components", &[])?
                .into_iter()
                .map(parse_digest)
                .collect())
        })
    }

    /// Every component recorded: (digest, name as the spec named it).
    pub fn components(&self) -> Result<Vec<(Digest, String)>, MetadataError> {
        self.read(|c| {
            c.query("SELECT digest, name FROM components ORDER BY digest", &[])?
                .iter()
                .map(|r| Ok((parse_digest(r.get(0)?), r.get(1)?)))
                .collect()
        })
    }

    /// Marks runs left `running` by a process that is gone (see `is_alive`)
    /// as `interrupted`, with their running executions. Returns the ids of
    /// the runs marked.
    pub fn recover(
        &self,
        is_alive: impl Fn(&str) -> bool,
        now: &str,
    ) -> Result<Vec<String>, MetadataError> {
        // A run an engine drives has no process to die (each step's task
        // has a lease of its own); `sluice runs finish` ends it.
        let running: Vec<String> = self.read(|c| {
            c.column(
                "SELECT id FROM runs WHERE state = 'running' AND plan IS NULL",
                &[],
            )
        })?;
        let dead: Vec<String> = running.into_iter().filter(|id| !is_alive(id)).collect();
        for id in &dead {
            self.write(|c| {
                c.execute(
                    "UPDATE executions SET state = 'interrupted', ended_at = ?2, error = 'the process running it stopped'
                     WHERE run_id = ?1 AND state = 'running'",
                    vals![id, now],
                )?;
                c.execute(
                    "UPDATE runs SET state = 'interrupted', ended_at = ?2 WHERE id = ?1 AND state = 'running'",
                    vals![id, now],
                )
            })?;
        }
        Ok(dead)
    }

    /// The artifact with exactly this digest, if recorded.
    pub fn artifact(&self, digest: &Digest) -> Result<Option<ArtifactRecord>, MetadataError> {
        self.read(|c| {
            c.query_opt(
                "SELECT digest, kind, size, created_at FROM artifacts WHERE digest = ?1",
                vals![digest.to_hex()],
            )?
            .as_ref()
            .map(artifact_from_row)
            .transpose()
        })
    }

    /// The recorded sizes of those of `digests` that are artifacts.
    pub fn artifact_sizes(
        &self,
        digests: &[Digest],
    ) -> Result<std::collections::HashMap<Digest, u64>, MetadataError> {
        if digests.is_empty() {
            return Ok(Default::default());
        }
        let placeholders: Vec<String> = (1..=digests.len()).map(|i| format!("?{i}")).collect();
        let params: Vec<Value> = digests.iter().map(|d| Value::Text(d.to_hex())).collect();
        self.read(|c| {
            c.query(
                &format!(
                    "SELECT digest, size FROM artifacts WHERE digest IN ({})",
                    placeholders.join(", ")
                ),
                &params,
            )?
            .iter()
            .map(|r| Ok((parse_digest(r.get(0)?), r.get::<i64>(1)? as u64)))
            .collect()
        })
    }

    /// Artifacts, newest first, only those of `kind` when given.
    pub fn artifacts_of_kind(
        &self,
        kind: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ArtifactRecord>, MetadataError> {
        self.read(|c| {
            c.query(
                "SELECT digest, kind, size, created_at FROM artifacts WHERE (CAST(?1 AS TEXT) IS NULL OR kind = ?1)
                 ORDER BY created_at DESC, rowid DESC LIMIT ?2",
                vals![kind, limit.min(i64::MAX as usize) as i64],
            )?
            .iter()
            .map(artifact_from_row)
            .collect()
        })
    }

    /// Every event naming `artifact` (as input or output), with the run,
    /// step and state of its execution; newest execution first. Cheaper
    /// than [`Metadata::producers`] when only the names are needed.
    pub fn artifact_uses(&self, artifact: &Digest) -> Result<Vec<ArtifactUse>, MetadataError> {
        self.read(|c| {
            c.query(
                "SELECT x.id, x.run_id, x.step, x.component, x.state, x.cached_from, e.direction, e.port, e.source
                 FROM events e JOIN executions x ON x.id = e.execution_id
                 WHERE e.artifact = ?1 ORDER BY x.id DESC, e.direction DESC, e.port",
                vals![artifact.to_hex()],
            )?
            .iter()
            .map(|r| {
                Ok(ArtifactUse {
                    execution_id: r.get(0)?,
                    run_id: r.get(1)?,
                    step: r.get(2)?,
                    component: r.get(3)?,
                    state: ExecutionState::parse(&r.get::<String>(4)?),
                    cached_from: r.get(5)?,
                    direction: r.get(6)?,
                    port: r.get(7)?,
                    source: r.get(8)?,
                })
            })
            .collect()
        })
    }

    /// Runs still marked `running` (alive, or dead and not yet recovered).
    pub fn running_runs(&self) -> Result<Vec<RunRecord>, MetadataError> {
        self.read(|c| {
            c.query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE state = 'running' ORDER BY started_at"
                ),
                &[],
            )?
            .iter()
            .map(run_from_row)
            .collect()
        })
    }
}

/// One event naming an artifact, with its execution's identity: what
/// `sluice artifacts show` lists as producers and consumers.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactUse {
    /// The execution.
    pub execution_id: i64,
    /// Its run.
    pub run_id: String,
    /// Its step.
    pub step: String,
    /// The component as named in the spec.
    pub component: String,
    /// How the execution stands.
    pub state: ExecutionState,
    /// For cached executions: the execution whose outputs were reused.
    pub cached_from: Option<i64>,
    /// `input` or `output`.
    pub direction: String,
    /// The port.
    pub port: String,
    /// For inputs: where it came from (`data.NAME` or `STEP.PORT`).
    pub source: Option<String>,
}

const RUN_COLUMNS: &str = "id, pipeline, spec_path, spec_digest, trigger, state, started_at, ended_at, host, resumed_from, started_by, plan";
const EXECUTION_COLUMNS: &str = "id, run_id, step, component, component_digest, cache_key, key_parts, params, state, cached_from, started_at, ended_at, duration_ms, attempts, error, metrics, report";

/// A run about to start.
pub struct NewRun<'a> {
    /// Its id.
    pub id: &'a str,
    /// The pipeline's name.
    pub pipeline: &'a str,
    /// The spec file it runs.
    pub spec_path: &'a str,
    /// SHA-256 of the spec's text.
    pub spec_digest: &'a Digest,
    /// What started it.
    pub trigger: &'a str,
    /// RFC 3339.
    pub started_at: &'a str,
}

/// Records that run `run_id` imported the data file `name` (at `path`)
/// as artifact `digest` of (kind, size).
fn insert_import(
    c: &mut Conn<'_>,
    run_id: &str,
    (name, path): (&str, &str),
    digest: &Digest,
    (kind, size): (&str, u64),
    now: &str,
) -> Result<(), DbError> {
    record_artifact(c, digest, kind, size, now)?;
    c.execute(
        "INSERT INTO imports (run_id, name, path, artifact) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (run_id, name) DO UPDATE SET path = excluded.path, artifact = excluded.artifact",
        vals![run_id, name, path, digest.to_hex()],
    )
    .map(drop)
}

fn insert_run(
    c: &mut Conn<'_>,
    run: &NewRun<'_>,
    resumed_from: Option<&str>,
    plan: Option<&Digest>,
) -> Result<(), DbError> {
    c.execute(
        "INSERT INTO runs (id, pipeline, spec_path, spec_digest, trigger, state, started_at, host, pid, resumed_from, started_by, plan)
         VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7, ?8, ?9, ?10, ?11)",
        vals![
            run.id,
            run.pipeline,
            run.spec_path,
            run.spec_digest.to_hex(),
            run.trigger,
            run.started_at,
            hostname(),
            std::process::id(),
            resumed_from,
            crate::identity::user(),
            plan.map(Digest::to_hex)
        ],
    )
    .map(drop)
}

fn insert_component(
    c: &mut Conn<'_>,
    digest: &Digest,
    name: &str,
    size: u64,
    now: &str,
) -> Result<(), DbError> {
    c.execute(
        "INSERT INTO components (digest, name, size, first_seen) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO NOTHING",
        vals![digest.to_hex(), name, size as i64, now],
    )
    .map(drop)
}

/// Inserts an execution, `running`, with its inputs. A step has one
/// execution per run; one that was interrupted (its task died, and an
/// engine runs the task again) is started afresh in the same row.
fn insert_execution(c: &mut Conn<'_>, e: &NewExecution<'_>) -> Result<i64, DbError> {
    c.execute(
        "DELETE FROM events WHERE execution_id IN
         (SELECT id FROM executions WHERE run_id = ?1 AND step = ?2 AND state = 'interrupted')",
        vals![e.run_id, e.step],
    )?;
    let id: i64 = c
        .query_opt(
            "INSERT INTO executions (run_id, step, component, component_digest, cache_key, key_parts, params, state, started_at, host)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9)
             ON CONFLICT (run_id, step) DO UPDATE SET
                component = excluded.component, component_digest = excluded.component_digest,
                cache_key = excluded.cache_key, key_parts = excluded.key_parts, params = excluded.params,
                state = 'running', cached_from = NULL, started_at = excluded.started_at, ended_at = NULL,
                duration_ms = NULL, attempts = 0, error = NULL, failure = NULL, metrics = NULL,
                report = NULL, host = excluded.host
             WHERE executions.state = 'interrupted'
             RETURNING id",
            vals![
                e.run_id,
                e.step,
                e.component,
                e.component_digest.to_hex(),
                e.cache_key.to_hex(),
                e.key_parts.to_string(),
                e.params.to_string(),
                e.started_at,
                hostname()
            ],
        )?
        .ok_or_else(|| {
            DbError::Decode(format!(
                "step `{}` of run {} has an execution already",
                e.step, e.run_id
            ))
        })?
        .get(0)?;
    let inputs: Vec<Vec<Value>> = e
        .inputs
        .iter()
        .map(|(port, digest, source)| vals![id, port, digest.to_hex(), source].to_vec())
        .collect();
    c.execute_all(
        "INSERT INTO events (execution_id, direction, port, artifact, source) VALUES (?1, 'input', ?2, ?3, ?4)",
        &inputs,
    )?;
    Ok(id)
}

fn finish(c: &mut Conn<'_>, id: i64, f: &Finished<'_>) -> Result<(), DbError> {
    let artifacts: Vec<Vec<Value>> = f
        .outputs
        .iter()
        .map(|(_, digest, kind, size)| {
            vals![digest.to_hex(), kind, *size as i64, f.ended_at].to_vec()
        })
        .collect();
    c.execute_all(
        "INSERT INTO artifacts (digest, kind, size, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        &artifacts,
    )?;
    let events: Vec<Vec<Value>> = f
        .outputs
        .iter()
        .map(|(port, digest, _, _)| vals![id, port, digest.to_hex()].to_vec())
        .collect();
    c.execute_all(
        "INSERT INTO events (execution_id, direction, port, artifact) VALUES (?1, 'output', ?2, ?3)
         ON CONFLICT (execution_id, direction, port) DO UPDATE SET artifact = excluded.artifact, source = NULL",
        &events,
    )?;
    c.execute(
        "UPDATE executions SET state = ?2, ended_at = ?3, duration_ms = ?4, attempts = ?5, error = ?6,
                failure = ?7, metrics = ?8, report = ?9, cached_from = ?10 WHERE id = ?1",
        vals![
            id,
            f.state.as_str(),
            f.ended_at,
            f.duration_ms,
            f.attempts,
            f.error,
            f.failure.as_ref().map(|v| v.to_string()),
            f.metrics.to_string(),
            f.report.as_ref().map(|v| v.to_string()),
            f.cached_from
        ],
    )?;
    for m in f.models {
        crate::registry::register(c, m, id, f.ended_at)?;
    }
    Ok(())
}

/// How a skipped execution ends.
pub fn skipped<'a>(e: &NewExecution<'a>, reason: &'a str) -> Finished<'a> {
    Finished {
        state: ExecutionState::Skipped,
        ended_at: e.started_at,
        duration_ms: 0.0,
        attempts: 0,
        error: Some(reason),
        failure: None,
        metrics: serde_json::json!({}),
        report: None,
        outputs: &[],
        cached_from: None,
        models: &[],
    }
}

/// Records an artifact once per digest (the first kind and time stay).
fn record_artifact(
    c: &mut Conn<'_>,
    digest: &Digest,
    kind: &str,
    size: u64,
    now: &str,
) -> Result<(), DbError> {
    c.execute(
        "INSERT INTO artifacts (digest, kind, size, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        vals![digest.to_hex(), kind, size as i64, now],
    )
    .map(drop)
}

fn execution(c: &mut Conn<'_>, id: i64) -> Result<ExecutionRecord, DbError> {
    let row = c.query_opt(
        &format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?1"),
        vals![id],
    )?;
    let mut rec =
        execution_from_row(&row.ok_or_else(|| DbError::Decode(format!("no execution {id}")))?)?;
    rec.events = events_of(c, id)?;
    Ok(rec)
}

fn run_from_row(r: &Row) -> Result<RunRecord, DbError> {
    Ok(RunRecord {
        id: r.get(0)?,
        pipeline: r.get(1)?,
        spec_path: r.get(2)?,
        spec_digest: r.get(3)?,
        trigger: r.get(4)?,
        state: RunState::parse(&r.get::<String>(5)?),
        started_at: r.get(6)?,
        ended_at: r.get(7)?,
        host: r.get(8)?,
        resumed_from: r.get(9)?,
        started_by: r.get(10)?,
        plan: r.get(11)?,
    })
}

fn json_col(s: Option<String>) -> serde_json::Value {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn execution_from_row(r: &Row) -> Result<ExecutionRecord, DbError> {
    Ok(ExecutionRecord {
        id: r.get(0)?,
        run_id: r.get(1)?,
        step: r.get(2)?,
        component: r.get(3)?,
        component_digest: parse_digest(r.get(4)?),
        cache_key: parse_digest(r.get(5)?),
        key_parts: json_col(r.get(6)?),
        params: json_col(r.get(7)?),
        state: ExecutionState::parse(&r.get::<String>(8)?),
        cached_from: r.get(9)?,
        started_at: r.get(10)?,
        ended_at: r.get(11)?,
        duration_ms: r.get(12)?,
        attempts: r.get(13)?,
        error: r.get(14)?,
        metrics: json_col(r.get(15)?),
        report: r
            .get::<Option<String>>(16)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        events: Vec::new(),
    })
}

fn artifact_from_row(r: &Row) -> Result<ArtifactRecord, DbError> {
    Ok(ArtifactRecord {
        digest: parse_digest(r.get(0)?),
        kind: r.get(1)?,
        size: r.get(2)?,
        created_at: r.get(3)?,
    })
}

fn events_of(c: &mut Conn<'_>, id: i64) -> Result<Vec<EventRecord>, DbError> {
    c.query(
        "SELECT direction, port, artifact, source FROM events WHERE execution_id = ?1 ORDER BY direction DESC, port",
        vals![id],
    )?
    .iter()
    .map(|r| {
        Ok(EventRecord {
            direction: r.get(0)?,
            port: r.get(1)?,
            artifact: parse_digest(r.get(2)?),
            source: r.get(3)?,
        })
    })
    .collect()
}

/// This machine's host name, for the `host` columns.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::db::tests::backends;

    /// How a test's execution succeeded, with `outputs` and `models`.
    pub(crate) fn succeeded<'a>(
        outputs: &'a [(String, Digest, String, u64)],
        models: &'a [crate::NewModel],
    ) -> Finished<'a> {
        Finished {
            state: ExecutionState::Succeeded,
            ended_at: "t1",
            duration_ms: 1.0,
            attempts: 1,
            error: None,
            failure: None,
            metrics: serde_json::json!({}),
            report: None,
            outputs,
            cached_from: None,
            models,
        }
    }

    fn new_exec<'a>(
        run: &'a str,
        step: &'a str,
        key: Digest,
        inputs: &'a [(String, Digest, String)],
        parts: &'a serde_json::Value,
    ) -> NewExecution<'a> {
        NewExecution {
            run_id: run,
            step,
            component: "std:x",
            component_digest: Digest::of(b"c"),
            cache_key: key,
            key_parts: parts,
            params: parts,
            inputs,
            started_at: "2026-01-01T00:00:00.000Z",
        }
    }

    #[test]
    fn registered_models_get_versions_and_aliases_keep_their_history() {
        for (_d, m) in backends() {
            m.start_run(
                "r1",
                "p",
                "p.toml",
                &Digest::of(b"spec"),
                "manual",
                "t0",
                None,
            )
            .unwrap();
            let parts = serde_json::json!({});
            let register = |artifact: Digest, identity: Option<Digest>, step: &str| {
                let id = m
                    .start_execution(&new_exec(
                        "r1",
                        step,
                        Digest::of(step.as_bytes()),
                        &[],
                        &parts,
                    ))
                    .unwrap();
                m.finish_execution(
                    id,
                    &succeeded(
                        &[("model".to_string(), artifact, "model".to_string(), 9)],
                        &[crate::NewModel {
                            name: "cancer".into(),
                            artifact,
                            identity,
                            metrics: serde_json::json!({"accuracy": 0.97}),
                        }],
                    ),
                )
                .unwrap();
            };
            let (a, b) = (Digest::of(b"model a"), Digest::of(b"model b"));
            let same_onnx = Some(Digest::of(b"onnx a + transform"));
            register(a, same_onnx, "push1");
            register(b, None, "push2");
            register(a, None, "push3");
            // Model a again from another run: another card, the same ONNX and
            // transform.
            register(Digest::of(b"model a, card of run 2"), same_onnx, "push4");
            let versions = m.model_versions("cancer").unwrap();
            assert_eq!(
                versions
                    .iter()
                    .map(|v| (v.version, v.artifact))
                    .collect::<Vec<_>>(),
                [(2, b), (1, a)],
                "the same artifact, or the same model in another card, keeps its version"
            );
            assert_eq!(versions[1].metrics["accuracy"], 0.97);
            assert_eq!(versions[1].run_id.as_deref(), Some("r1"));

            let latest = m
                .resolve_model(&"cancer".parse().unwrap())
                .unwrap()
                .unwrap();
            assert_eq!(latest.version, 2);
            assert!(
                m.resolve_model(&"cancer@production".parse().unwrap())
                    .unwrap()
                    .is_none()
            );
            m.set_alias("cancer", "production", 1, "ann", "first", "t2")
                .unwrap();
            let moved = m
                .set_alias("cancer", "production", 2, "bob", "better", "t3")
                .unwrap();
            assert_eq!(moved.previous, Some(1));
            let prod = m
                .resolve_model(&"cancer@production".parse().unwrap())
                .unwrap()
                .unwrap();
            assert_eq!(
                (prod.version, prod.aliases.clone()),
                (2, vec!["production".to_string()])
            );
            let err = m
                .set_alias("cancer", "production", 7, "x", "y", "t4")
                .unwrap_err();
            assert!(err.to_string().contains("has no version 7"), "{err}");
            let history = m.alias_history("cancer").unwrap();
            assert_eq!(
                history
                    .iter()
                    .map(|h| (h.version, h.previous, h.who.as_str(), h.reason.as_str()))
                    .collect::<Vec<_>>(),
                [(1, None, "ann", "first"), (2, Some(1), "bob", "better")]
            );
            assert_eq!(m.models().unwrap().len(), 1);
        }
    }

    #[test]
    fn a_succeeded_execution_is_found_by_its_key_with_its_outputs() {
        for (_d, m) in backends() {
            m.start_run(
                "r1",
                "p",
                "p.toml",
                &Digest::of(b"spec"),
                "manual",
                "t0",
                None,
            )
            .unwrap();
            let key = Digest::of(b"key");
            let parts = serde_json::json!({});
            let inputs = [(
                "data".to_string(),
                Digest::of(b"in"),
                "data.raw".to_string(),
            )];
            m.record_import("r1", "raw", "raw.csv", &Digest::of(b"in"), "file", 2, "t0")
                .unwrap();
            let id = m
                .start_execution(&new_exec("r1", "s", key, &inputs, &parts))
                .unwrap();
            assert!(
                m.find_cached(&key).unwrap().is_none(),
                "running executions are not reusable"
            );
            let out = Digest::of(b"out");
            m.finish_execution(
                id,
                &Finished {
                    metrics: serde_json::json!({"rows": 3.0}),
                    ..succeeded(&[("out".to_string(), out, "table".to_string(), 3)], &[])
                },
            )
            .unwrap();
            let hit = m.find_cached(&key).unwrap().unwrap();
            assert_eq!(hit.id, id);
            assert_eq!(hit.output("out"), Some(out));
            assert_eq!(hit.metrics["rows"], 3.0);
            assert_eq!(m.producers(&out).unwrap()[0].step, "s");
            assert_eq!(m.imported_as(&Digest::of(b"in")).unwrap()[0].1, "raw");
            assert!(m.referenced_artifacts().unwrap().contains(&out));
        }
    }

    #[test]
    fn dead_runs_are_marked_interrupted_and_live_ones_left_alone() {
        for (_d, m) in backends() {
            for id in ["dead", "alive"] {
                m.start_run(
                    id,
                    "p",
                    "p.toml",
                    &Digest::of(b"spec"),
                    "manual",
                    "t0",
                    None,
                )
                .unwrap();
                let parts = serde_json::json!({});
                m.start_execution(&new_exec(id, "s", Digest::of(id.as_bytes()), &[], &parts))
                    .unwrap();
            }
            let marked = m.recover(|id| id == "alive", "t9").unwrap();
            assert_eq!(marked, ["dead"]);
            assert_eq!(m.run("dead").unwrap().state, RunState::Interrupted);
            assert_eq!(m.run("alive").unwrap().state, RunState::Running);
            assert_eq!(
                m.executions("dead").unwrap()[0].state,
                ExecutionState::Interrupted
            );
        }
    }

    #[test]
    fn runs_are_found_by_unique_prefix() {
        for (_d, m) in backends() {
            m.start_run(
                "20260101-000000-aaaaaa",
                "p",
                "p.toml",
                &Digest::of(b"s"),
                "manual",
                "2026-01-01",
                None,
            )
            .unwrap();
            m.start_run(
                "20260102-000000-bbbbbb",
                "p",
                "p.toml",
                &Digest::of(b"s"),
                "manual",
                "2026-01-02",
                None,
            )
            .unwrap();
            assert_eq!(m.run("20260101").unwrap().id, "20260101-000000-aaaaaa");
            assert_eq!(m.run("latest").unwrap().id, "20260102-000000-bbbbbb");
            assert!(
                m.run("2026")
                    .unwrap_err()
                    .to_string()
                    .contains("matches 2 runs")
            );
            assert!(
                m.run("nope")
                    .unwrap_err()
                    .to_string()
                    .contains("sluice runs list")
            );
        }
    }

    #[test]
    fn artifact_queries_find_kinds_uses_and_running_runs() {
        for (_d, m) in backends() {
            m.start_run("r1", "p", "p.toml", &Digest::of(b"s"), "manual", "t0", None)
                .unwrap();
            let raw = Digest::of(b"raw");
            m.record_import("r1", "raw", "raw.csv", &raw, "file", 3, "t0")
                .unwrap();
            let parts = serde_json::json!({});
            let inputs = [("file".to_string(), raw, "data.raw".to_string())];
            let id = m
                .start_execution(&new_exec("r1", "ingest", Digest::of(b"k"), &inputs, &parts))
                .unwrap();
            let table = Digest::of(b"table");
            m.finish_execution(
                id,
                &succeeded(&[("data".to_string(), table, "table".to_string(), 5)], &[]),
            )
            .unwrap();
            assert_eq!(m.artifact(&table).unwrap().unwrap().kind, "table");
            assert!(m.artifact(&Digest::of(b"nope")).unwrap().is_none());
            let tables = m.artifacts_of_kind(Some("table"), 10).unwrap();
            assert_eq!(tables.len(), 1);
            assert_eq!(tables[0].digest, table);
            assert_eq!(m.artifacts_of_kind(None, 10).unwrap().len(), 2);
            let uses = m.artifact_uses(&raw).unwrap();
            assert_eq!(uses.len(), 1);
            assert_eq!(
                (
                    uses[0].direction.as_str(),
                    uses[0].step.as_str(),
                    uses[0].port.as_str()
                ),
                ("input", "ingest", "file")
            );
            assert_eq!(uses[0].source.as_deref(), Some("data.raw"));
            assert_eq!(m.artifact_uses(&table).unwrap()[0].direction, "output");
            assert_eq!(m.running_runs().unwrap()[0].id, "r1");
            m.finish_run("r1", RunState::Succeeded, "t2").unwrap();
            assert!(m.running_runs().unwrap().is_empty());
        }
    }

    #[test]
    fn a_planned_run_is_left_to_its_engine_and_an_interrupted_step_restarts_in_its_row() {
        for (_d, m) in backends() {
            let plan = Digest::of(b"plan");
            let data = Digest::of(b"data");
            m.start_planned_run(
                &NewRun {
                    id: "job-1",
                    pipeline: "p",
                    spec_path: "p.toml",
                    spec_digest: &Digest::of(b"spec"),
                    trigger: "kfp",
                    started_at: "t0",
                },
                (&plan, "{}"),
                &[("raw", "raw.csv", data, "file", 4)],
            )
            .unwrap();
            let run = m.run("job-1").unwrap();
            assert_eq!(run.plan, Some(plan.to_hex()));
            assert_eq!(m.run_plan(&plan).unwrap().as_deref(), Some("{}"));
            assert_eq!(m.imports("job-1").unwrap()[0].2, data);
            assert_eq!(m.artifact(&data).unwrap().unwrap().size, 4);
            // No process holds it, and it is not taken for dead.
            assert!(m.recover(|_| false, "t1").unwrap().is_empty());
            assert_eq!(m.run("job-1").unwrap().state, RunState::Running);

            let parts = serde_json::json!({});
            let inputs = [("in".to_string(), data, "data.raw".to_string())];
            let first = m
                .start_execution(&new_exec("job-1", "s", Digest::of(b"k"), &inputs, &parts))
                .unwrap();
            // A second start of a step that is running is refused …
            let err = m
                .start_execution(&new_exec("job-1", "s", Digest::of(b"k"), &inputs, &parts))
                .unwrap_err();
            assert!(
                err.to_string()
                    .contains("step `s` of run job-1 has an execution already"),
                "{err}"
            );
            // … but once its task is gone, it starts again in the same row,
            // with its inputs recorded once.
            m.interrupt_execution(first, "t2").unwrap();
            assert_eq!(
                m.execution(first).unwrap().state,
                ExecutionState::Interrupted
            );
            let again = m
                .start_execution(&new_exec("job-1", "s", Digest::of(b"k2"), &inputs, &parts))
                .unwrap();
            assert_eq!(again, first);
            let e = m.execution(again).unwrap();
            assert_eq!(
                (e.state, e.cache_key),
                (ExecutionState::Running, Digest::of(b"k2"))
            );
            assert_eq!(e.error, None);
            assert_eq!(e.events.len(), 1, "{:?}", e.events);
            m.finish_run("job-1", RunState::Failed, "t3").unwrap();
            assert_eq!(m.run("job-1").unwrap().state, RunState::Failed);
        }
    }
}
