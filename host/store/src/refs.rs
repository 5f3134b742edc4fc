//! Artifact references: how a person names an artifact on the command line,
//! and how that name is resolved against a store.
//!
//! A reference is either a digest or a unique prefix of one (`sha256:`
//! optional, e.g. `6a34a3d3`), or `RUN/STEP/PORT`, the output `PORT` of step
//! `STEP` in run `RUN`, where `RUN` is a run id, a unique prefix of one, or
//! `latest` (e.g. `latest/stats/statistics`).

use crate::metadata::{ArtifactRecord, ExecutionState, MetadataError};
use crate::{Digest, Store};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A parsed artifact reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactRef {
    /// A digest or a prefix of one, in hex (`sha256:` removed).
    Digest(String),
    /// The output `port` of step `step` in run `run`.
    Output {
        /// A run id, a unique prefix of one, or `latest`.
        run: String,
        /// The step's name.
        step: String,
        /// The output port.
        port: String,
    },
}

/// Why a reference names no single artifact.
#[derive(Debug, thiserror::Error)]
pub enum RefError {
    /// The text is neither a digest prefix nor `RUN/STEP/PORT`.
    #[error(
        "`{0}` is neither a digest (or a prefix of one) nor RUN/STEP/PORT; e.g. `6a34a3d3` or `latest/stats/statistics`"
    )]
    Malformed(String),
    /// No recorded artifact's digest starts with the prefix.
    #[error(
        "no artifact in {} has a digest starting with `{prefix}`; `sluice artifacts list` shows them",
        store.display()
    )]
    NoMatch {
        /// The prefix, as given.
        prefix: String,
        /// The store's folder.
        store: PathBuf,
    },
    /// Several recorded artifacts' digests start with the prefix.
    #[error("{}", ambiguous(prefix, candidates))]
    Ambiguous {
        /// The prefix, as given.
        prefix: String,
        /// Some of the artifacts it matches (at most 20).
        candidates: Vec<ArtifactRecord>,
    },
    /// The run has no step of that name.
    #[error("run {run} has no step `{step}`; its steps: {}", steps.join(", "))]
    NoStep {
        /// The run's id.
        run: String,
        /// The step asked for.
        step: String,
        /// The steps it has.
        steps: Vec<String>,
    },
    /// The step recorded no outputs at all.
    #[error("step `{step}` of run {run} produced no outputs (it {state})")]
    NoOutputs {
        /// The run's id.
        run: String,
        /// The step.
        step: String,
        /// How its execution stands.
        state: ExecutionState,
    },
    /// The step has outputs, but none on that port.
    #[error("step `{step}` of run {run} has no output `{port}`; its outputs: {}", ports.join(", "))]
    NoPort {
        /// The run's id.
        run: String,
        /// The step.
        step: String,
        /// The port asked for.
        port: String,
        /// The output ports it has.
        ports: Vec<String>,
    },
    /// An event names an artifact that has no `artifacts` row.
    #[error("artifact {0} is named by an event but has no artifacts row")]
    Unrecorded(Digest),
    /// The metadata database failed, or the run does not exist.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

fn ambiguous(prefix: &str, candidates: &[ArtifactRecord]) -> String {
    let n = candidates.len();
    let list: Vec<String> = candidates
        .iter()
        .map(|a| format!("  {} {}", a.digest.to_hex(), a.kind))
        .collect();
    format!(
        "`{prefix}` is ambiguous: it starts {}{n} artifacts' digests; give more of it:\n{}",
        if n >= 20 { "at least " } else { "" },
        list.join("\n")
    )
}

impl FromStr for ArtifactRef {
    type Err = RefError;

    fn from_str(reference: &str) -> Result<Self, RefError> {
        let parts: Vec<&str> = reference.split('/').collect();
        if let [run, step, port] = parts[..] {
            return Ok(ArtifactRef::Output {
                run: run.to_string(),
                step: step.to_string(),
                port: port.to_string(),
            });
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if parts.len() != 1 || hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(RefError::Malformed(reference.to_string()));
        }
        Ok(ArtifactRef::Digest(hex.to_string()))
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactRef::Digest(hex) => f.write_str(hex),
            ArtifactRef::Output { run, step, port } => write!(f, "{run}/{step}/{port}"),
        }
    }
}

impl ArtifactRef {
    /// The recorded artifact this reference names.
    pub fn resolve(&self, store: &Store) -> Result<ArtifactRecord, RefError> {
        match self {
            ArtifactRef::Digest(hex) => resolve_prefix(store, hex),
            ArtifactRef::Output { run, step, port } => resolve_output(store, run, step, port),
        }
    }
}

/// Parses `reference` and resolves it to a recorded artifact.
pub fn resolve(store: &Store, reference: &str) -> Result<ArtifactRecord, RefError> {
    reference.parse::<ArtifactRef>()?.resolve(store)
}

fn resolve_prefix(store: &Store, hex: &str) -> Result<ArtifactRecord, RefError> {
    let mut found = store.metadata.artifacts_by_prefix(hex)?;
    match found.len() {
        0 => Err(RefError::NoMatch {
            prefix: hex.to_string(),
            store: store.root().to_path_buf(),
        }),
        1 => Ok(found.remove(0)),
        _ => Err(RefError::Ambiguous {
            prefix: hex.to_string(),
            candidates: found,
        }),
    }
}

fn resolve_output(
    store: &Store,
    run: &str,
    step: &str,
    port: &str,
) -> Result<ArtifactRecord, RefError> {
    let record = store.metadata.run(run)?;
    let executions = store.metadata.executions(&record.id)?;
    let Some(execution) = executions.iter().find(|e| e.step == step) else {
        return Err(RefError::NoStep {
            run: record.id,
            step: step.to_string(),
            steps: executions.iter().map(|e| e.step.clone()).collect(),
        });
    };
    let Some(digest) = execution.output(port) else {
        let ports: Vec<String> = execution
            .events
            .iter()
            .filter(|e| e.direction == "output")
            .map(|e| e.port.clone())
            .collect();
        if ports.is_empty() {
            return Err(RefError::NoOutputs {
                run: record.id,
                step: step.to_string(),
                state: execution.state,
            });
        }
        return Err(RefError::NoPort {
            run: record.id,
            step: step.to_string(),
            port: port.to_string(),
            ports,
        });
    };
    store
        .metadata
        .artifact(&digest)?
        .ok_or(RefError::Unrecorded(digest))
}

/// How an artifact came to be, in a few words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Producer {
    /// Output `port` of `step` in run `run_id` (its most recent producer).
    Output {
        /// The run.
        run_id: String,
        /// The step.
        step: String,
        /// The output port.
        port: String,
    },
    /// Imported from the pipeline's data input `name`.
    Import {
        /// The data input's name.
        name: String,
    },
    /// Nothing recorded how.
    Unknown,
}

impl fmt::Display for Producer {
    /// `RUN/STEP/PORT`, `data.NAME` or `-`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Producer::Output { run_id, step, port } => write!(f, "{run_id}/{step}/{port}"),
            Producer::Import { name } => write!(f, "data.{name}"),
            Producer::Unknown => f.write_str("-"),
        }
    }
}

/// The most recent execution that output `digest`, else the most recent
/// import that brought it in.
pub fn producer(store: &Store, digest: &Digest) -> Result<Producer, MetadataError> {
    let uses = store.metadata.artifact_uses(digest)?;
    if let Some(u) = uses.iter().find(|u| u.direction == "output") {
        return Ok(Producer::Output {
            run_id: u.run_id.clone(),
            step: u.step.clone(),
            port: u.port.clone(),
        });
    }
    Ok(
        match store.metadata.imported_as(digest)?.into_iter().next() {
            Some((_, name, _)) => Producer::Import { name },
            None => Producer::Unknown,
        },
    )
}

/// The digest of the ONNX bytes a model card (the JSON document a `model`
/// artifact stores) names in its `onnx` field; `None` if the bytes are not
/// such a card.
pub fn model_onnx(card: &[u8]) -> Option<Digest> {
    serde_json::from_slice::<serde_json::Value>(card)
        .ok()?
        .get("onnx")?
        .as_str()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_digests_or_outputs() {
        assert_eq!(
            "sha256:6A34".parse::<ArtifactRef>().unwrap(),
            ArtifactRef::Digest("6A34".into())
        );
        assert_eq!(
            "latest/stats/statistics".parse::<ArtifactRef>().unwrap(),
            ArtifactRef::Output {
                run: "latest".into(),
                step: "stats".into(),
                port: "statistics".into()
            }
        );
        for bad in ["", "sha256:", "xyz", "a/b", "a/b/c/d", "12 34"] {
            let e = bad.parse::<ArtifactRef>().unwrap_err();
            assert!(matches!(e, RefError::Malformed(_)), "{bad}: {e}");
            assert!(e.to_string().contains("neither a digest"), "{e}");
        }
    }

    fn store_with_artifacts(
        dir: tempfile::TempDir,
        store: Store,
    ) -> (tempfile::TempDir, Store, Vec<Digest>) {
        let spec = Digest::of(b"spec");
        store
            .metadata
            .start_run("r1", "p", "p.toml", &spec, "manual", "t0", None)
            .unwrap();
        let data = store.objects.put(b"a,b\n1,2\n").unwrap();
        store
            .metadata
            .record_import("r1", "rows", "rows.csv", &data, "file", 8, "t0")
            .unwrap();
        let key = Digest::of(b"key");
        let json = serde_json::json!({});
        let inputs = [("data".to_string(), data, "data.rows".to_string())];
        let id = store
            .metadata
            .start_execution(&crate::metadata::NewExecution {
                run_id: "r1",
                step: "stats",
                component: "std:statistics",
                component_digest: Digest::of(b"component"),
                cache_key: key,
                key_parts: &json,
                params: &json,
                inputs: &inputs,
                started_at: "t0",
            })
            .unwrap();
        let stats = store.objects.put(b"{}").unwrap();
        let outputs = [("statistics".to_string(), stats, "statistics".to_string(), 2)];
        store
            .metadata
            .finish_execution(
                id,
                &crate::metadata::Finished {
                    state: ExecutionState::Succeeded,
                    ended_at: "t1",
                    duration_ms: 1.0,
                    attempts: 1,
                    error: None,
                    failure: None,
                    metrics: json.clone(),
                    report: None,
                    outputs: &outputs,
                    cached_from: None,
                    models: &[],
                },
            )
            .unwrap();
        (dir, store, vec![data, stats])
    }

    #[test]
    fn references_resolve_against_the_store() {
        for (dir, store) in crate::store::tests::stores() {
            let (_dir, store, digests) = store_with_artifacts(dir, store);
            let stats = digests[1];
            let by_output = resolve(&store, "latest/stats/statistics").unwrap();
            assert_eq!(by_output.digest, stats);
            let by_prefix = resolve(&store, &format!("sha256:{}", &stats.to_hex()[..8])).unwrap();
            assert_eq!(by_prefix.digest, stats);
            assert!(matches!(
                resolve(&store, "latest/nope/statistics"),
                Err(RefError::NoStep { steps, .. }) if steps == ["stats"]
            ));
            assert!(matches!(
                resolve(&store, "latest/stats/nope"),
                Err(RefError::NoPort { ports, .. }) if ports == ["statistics"]
            ));
            assert!(matches!(
                resolve(&store, "missing/stats/statistics"),
                Err(RefError::Metadata(_))
            ));
            let unmatched = if stats.to_hex().starts_with("00") {
                "ff"
            } else {
                "00"
            };
            if !digests.iter().any(|d| d.to_hex().starts_with(unmatched)) {
                assert!(matches!(
                    resolve(&store, unmatched),
                    Err(RefError::NoMatch { .. })
                ));
            }
        }
    }

    #[test]
    fn producers_are_outputs_then_imports() {
        for (dir, store) in crate::store::tests::stores() {
            let (_dir, store, digests) = store_with_artifacts(dir, store);
            assert_eq!(
                producer(&store, &digests[1]).unwrap().to_string(),
                "r1/stats/statistics"
            );
            assert_eq!(
                producer(&store, &digests[0]).unwrap().to_string(),
                "data.rows"
            );
            assert_eq!(
                producer(&store, &Digest::of(b"?")).unwrap(),
                Producer::Unknown
            );
        }
    }

    #[test]
    fn ambiguity_lists_the_candidates() {
        let record = |hex: &str| ArtifactRecord {
            digest: Digest::of(hex.as_bytes()),
            kind: "table".into(),
            size: 1,
            created_at: "t".into(),
        };
        let e = RefError::Ambiguous {
            prefix: "ab".into(),
            candidates: vec![record("x"), record("y")],
        };
        let text = e.to_string();
        assert!(
            text.starts_with("`ab` is ambiguous: it starts 2 artifacts' digests"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn model_cards_name_their_onnx_bytes() {
        let d = Digest::of(b"onnx");
        let card = serde_json::json!({"onnx": d.to_string()}).to_string();
        assert_eq!(model_onnx(card.as_bytes()), Some(d));
        assert_eq!(model_onnx(b"{}"), None);
        assert_eq!(model_onnx(b"not json"), None);
    }
}
