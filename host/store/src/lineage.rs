//! Lineage: where an artifact came from, walked upstream through the
//! metadata back to the data files it was computed from.
//!
//! Each artifact is traced to the most recent execution that output it
//! (for a cached execution, to the original whose outputs it reused), then
//! through that execution's inputs, back to the data files the pipeline
//! imported. The result is a tree ([`ArtifactNode`]) with flat summaries of
//! the upstream steps and data files ([`Lineage`]); an artifact reached
//! twice is expanded once, and a cycle (impossible in a store sluice wrote,
//! but the walk must end whatever the rows say) is cut.

use crate::metadata::{ExecutionRecord, ExecutionState, MetadataError};
use crate::{Digest, Store};
use serde::Serialize;
use std::collections::HashSet;

/// Why a lineage could not be traced.
#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    /// The metadata database failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The execution a cached execution reused could not be read.
    #[error("execution {from}, reused by execution {by}")]
    Reused {
        /// The execution whose outputs were reused.
        from: i64,
        /// The cached execution.
        by: i64,
        /// Why it could not be read.
        #[source]
        source: MetadataError,
    },
}

/// The lineage of one artifact: its tree, and flat lists of the steps and
/// data files upstream of it. Serialized as `{"artifact", "data", "steps"}`.
#[derive(Debug, Serialize)]
pub struct Lineage {
    /// The artifact and how it came to be.
    pub artifact: ArtifactNode,
    /// Every upstream data file, once each, in the order reached.
    pub data: Vec<DataSummary>,
    /// Every upstream execution, once each, in the order reached.
    pub steps: Vec<StepSummary>,
}

/// An artifact and how it came to be.
#[derive(Debug, Serialize)]
pub struct ArtifactNode {
    /// Its digest.
    pub digest: Digest,
    /// Its kind (`unknown` when it has no `artifacts` row).
    pub kind: String,
    /// Its size in bytes.
    pub size: i64,
    /// The execution that computed it (for a cached one, the original).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub produced_by: Option<Box<ExecutionNode>>,
    /// The data file it was imported from, when no step produced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported_as: Option<ImportNode>,
    /// Already expanded elsewhere in this tree; not repeated.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repeated: bool,
    /// Reached again from its own upstream; not expanded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cycle: bool,
}

/// An execution that produced an artifact, with its inputs.
#[derive(Debug, Serialize)]
pub struct ExecutionNode {
    /// The execution's id.
    pub execution_id: i64,
    /// Its run.
    pub run_id: String,
    /// Its step.
    pub step: String,
    /// The component as named in the spec.
    pub component: String,
    /// The component's digest.
    pub component_digest: Digest,
    /// How it stands.
    pub state: ExecutionState,
    /// The output port the artifact came out of.
    pub port: String,
    /// Its resolved params.
    pub params: serde_json::Value,
    /// How many executions recorded this artifact as an output (cached
    /// ones included); the most recent is followed.
    pub producers: usize,
    /// The most recent producer was a cached execution reusing this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused_by: Option<Reuse>,
    /// Its inputs, each traced upstream in turn.
    pub inputs: Vec<InputNode>,
}

/// A cached execution that reused another's outputs.
#[derive(Debug, Serialize)]
pub struct Reuse {
    /// The cached execution.
    pub execution_id: i64,
    /// Its run.
    pub run_id: String,
}

/// One input of an execution.
#[derive(Debug, Serialize)]
pub struct InputNode {
    /// The input port.
    pub port: String,
    /// Where it came from (`data.NAME` or `STEP.PORT`).
    pub source: Option<String>,
    /// The artifact it read.
    pub artifact: ArtifactNode,
}

/// The data import that brought an artifact into the store.
#[derive(Debug, Clone, Serialize)]
pub struct ImportNode {
    /// The data input's name.
    pub name: String,
    /// The file's path as the spec gave it.
    pub path: String,
    /// The run that imported it.
    pub run_id: String,
    /// How many imports (across runs) brought these bytes in.
    pub imports: usize,
}

/// One upstream step, for the flat summary.
#[derive(Debug, Serialize)]
pub struct StepSummary {
    /// The step.
    pub step: String,
    /// Its run.
    pub run_id: String,
    /// Its execution.
    pub execution_id: i64,
    /// The component as named in the spec.
    pub component: String,
    /// The component's digest.
    pub component_digest: Digest,
}

/// One data file, for the flat summary.
#[derive(Debug, Serialize)]
pub struct DataSummary {
    /// The data input's name.
    pub name: String,
    /// The file's path as the spec gave it.
    pub path: String,
    /// Its content's digest.
    pub digest: Digest,
    /// The run that imported it.
    pub run_id: String,
}

/// Most `cached_from` links followed before giving up (they cannot loop in
/// a store sluice wrote, but the walk must end whatever the rows say).
const MAX_CACHE_HOPS: usize = 64;

/// Traces `digest` upstream through the store's metadata.
pub fn trace(store: &Store, digest: Digest) -> Result<Lineage, LineageError> {
    let mut walk = Walk {
        store,
        expanded: HashSet::new(),
        on_path: Vec::new(),
        steps: Vec::new(),
        data: Vec::new(),
    };
    let artifact = walk.artifact(digest, None)?;
    Ok(Lineage {
        artifact,
        data: walk.data,
        steps: walk.steps,
    })
}

/// Walks the metadata upstream from an artifact.
struct Walk<'a> {
    store: &'a Store,
    expanded: HashSet<Digest>,
    on_path: Vec<Digest>,
    steps: Vec<StepSummary>,
    data: Vec<DataSummary>,
}

impl Walk<'_> {
    /// The node of `digest`; `via` is (run, source) of the input event that
    /// led here, to pick the matching import among several.
    fn artifact(
        &mut self,
        digest: Digest,
        via: Option<(&str, &str)>,
    ) -> Result<ArtifactNode, LineageError> {
        let record = self.store.metadata.artifact(&digest)?;
        let mut node = ArtifactNode {
            digest,
            kind: record
                .as_ref()
                .map_or_else(|| "unknown".to_string(), |r| r.kind.clone()),
            size: record.as_ref().map_or_else(
                || self.store.objects.size_of(&digest).unwrap_or(0) as i64,
                |r| r.size,
            ),
            produced_by: None,
            imported_as: None,
            repeated: false,
            cycle: false,
        };
        if self.on_path.contains(&digest) {
            node.cycle = true;
            return Ok(node);
        }
        if !self.expanded.insert(digest) {
            node.repeated = true;
            return Ok(node);
        }
        self.on_path.push(digest);
        let producers = self.store.metadata.producers(&digest)?;
        let usable = |e: &&ExecutionRecord| {
            matches!(e.state, ExecutionState::Succeeded | ExecutionState::Cached)
                && !e
                    .events
                    .iter()
                    .any(|ev| ev.direction == "input" && ev.artifact == digest)
        };
        if let Some(latest) = producers.iter().find(usable).or(producers.first()) {
            node.produced_by = Some(Box::new(self.execution(latest, digest, producers.len())?));
        } else {
            node.imported_as = self.import(&digest, via)?;
        }
        self.on_path.pop();
        Ok(node)
    }

    /// The node of the execution that computed `digest`: `latest` itself,
    /// or for a cached execution the original whose outputs it reused.
    fn execution(
        &mut self,
        latest: &ExecutionRecord,
        digest: Digest,
        producers: usize,
    ) -> Result<ExecutionNode, LineageError> {
        let mut original = latest.clone();
        let mut seen = HashSet::from([original.id]);
        while original.state == ExecutionState::Cached && seen.len() <= MAX_CACHE_HOPS {
            let Some(from) = original.cached_from else {
                break;
            };
            if !seen.insert(from) {
                break;
            }
            original =
                self.store
                    .metadata
                    .execution(from)
                    .map_err(|source| LineageError::Reused {
                        from,
                        by: latest.id,
                        source,
                    })?;
        }
        let reused_by = (original.id != latest.id).then(|| Reuse {
            execution_id: latest.id,
            run_id: latest.run_id.clone(),
        });
        let port = latest
            .events
            .iter()
            .find(|e| e.direction == "output" && e.artifact == digest)
            .map(|e| e.port.clone())
            .unwrap_or_default();
        if !self.steps.iter().any(|s| s.execution_id == original.id) {
            self.steps.push(StepSummary {
                step: original.step.clone(),
                run_id: original.run_id.clone(),
                execution_id: original.id,
                component: original.component.clone(),
                component_digest: original.component_digest,
            });
        }
        let mut inputs = Vec::new();
        for ev in original.events.iter().filter(|e| e.direction == "input") {
            let source = ev.source.clone().unwrap_or_default();
            let artifact = self.artifact(ev.artifact, Some((&original.run_id, &source)))?;
            inputs.push(InputNode {
                port: ev.port.clone(),
                source: ev.source.clone(),
                artifact,
            });
        }
        Ok(ExecutionNode {
            execution_id: original.id,
            run_id: original.run_id,
            step: original.step,
            component: original.component,
            component_digest: original.component_digest,
            state: original.state,
            port,
            params: original.params,
            producers,
            reused_by,
            inputs,
        })
    }

    /// The import that brought `digest` in: the one of the run and name the
    /// input event names if there is one, else the most recent.
    fn import(
        &mut self,
        digest: &Digest,
        via: Option<(&str, &str)>,
    ) -> Result<Option<ImportNode>, LineageError> {
        let imports = self.store.metadata.imported_as(digest)?;
        let matching = via.and_then(|(run, source)| {
            imports
                .iter()
                .find(|(r, name, _)| r == run && source == format!("data.{name}"))
        });
        let Some((run_id, name, path)) = matching.or(imports.first()) else {
            return Ok(None);
        };
        if !self
            .data
            .iter()
            .any(|d| d.digest == *digest && d.path == *path)
        {
            self.data.push(DataSummary {
                name: name.clone(),
                path: path.clone(),
                digest: *digest,
                run_id: run_id.clone(),
            });
        }
        Ok(Some(ImportNode {
            name: name.clone(),
            path: path.clone(),
            run_id: run_id.clone(),
            imports: imports.len(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Finished, NewExecution};

    /// data.rows → clean(table) → stats(statistics), then a second run
    /// whose `stats` is cached from the first.
    fn pipeline(dir: tempfile::TempDir, store: Store) -> (tempfile::TempDir, Store, [Digest; 3]) {
        let json = serde_json::json!({});
        let rows = store.objects.put(b"a\n1\n").unwrap();
        let table = store.objects.put(b"table").unwrap();
        let stats = store.objects.put(b"{}").unwrap();
        let mut stats_id = 0;
        for run in ["r1", "r2"] {
            store
                .metadata
                .start_run(run, "p", "p.toml", &Digest::of(b"s"), "manual", run, None)
                .unwrap();
            store
                .metadata
                .record_import(run, "rows", "rows.csv", &rows, "file", 4, run)
                .unwrap();
            let steps = [
                ("clean", "data.rows", rows, "table", table),
                ("stats", "clean.table", table, "statistics", stats),
            ];
            for (step, source, input, port, output) in steps {
                let inputs = [("data".to_string(), input, source.to_string())];
                let id = store
                    .metadata
                    .start_execution(&NewExecution {
                        run_id: run,
                        step,
                        component: "c",
                        component_digest: Digest::of(step.as_bytes()),
                        cache_key: Digest::of(step.as_bytes()),
                        key_parts: &json,
                        params: &json,
                        inputs: &inputs,
                        started_at: run,
                    })
                    .unwrap();
                let cached = run == "r2" && step == "stats";
                let outputs = [(port.to_string(), output, port.to_string(), 1)];
                store
                    .metadata
                    .finish_execution(
                        id,
                        &Finished {
                            state: if cached {
                                ExecutionState::Cached
                            } else {
                                ExecutionState::Succeeded
                            },
                            ended_at: run,
                            duration_ms: 1.0,
                            attempts: 1,
                            error: None,
                            failure: None,
                            metrics: json.clone(),
                            report: None,
                            outputs: &outputs,
                            cached_from: cached.then_some(stats_id),
                            models: &[],
                        },
                    )
                    .unwrap();
                if step == "stats" && run == "r1" {
                    stats_id = id;
                }
            }
        }
        (dir, store, [rows, table, stats])
    }

    #[test]
    fn lineage_follows_cached_executions_to_their_original() {
        for (dir, store) in crate::store::tests::stores() {
            let (_dir, store, [rows, table, stats]) = pipeline(dir, store);
            let l = trace(&store, stats).unwrap();
            assert_eq!(l.artifact.kind, "statistics");
            let e = l.artifact.produced_by.as_ref().unwrap();
            assert_eq!((e.step.as_str(), e.run_id.as_str()), ("stats", "r1"));
            assert_eq!(e.producers, 2);
            assert_eq!(e.reused_by.as_ref().unwrap().run_id, "r2");
            assert_eq!(e.port, "statistics");
            let clean = &e.inputs[0].artifact;
            assert_eq!(clean.digest, table);
            let c = clean.produced_by.as_ref().unwrap();
            let data = &c.inputs[0].artifact;
            assert_eq!(data.digest, rows);
            let import = data.imported_as.as_ref().unwrap();
            assert_eq!((import.name.as_str(), import.imports), ("rows", 2));
            assert_eq!(l.steps.len(), 2);
            assert_eq!(l.data.len(), 1);
            let json = serde_json::to_value(&l).unwrap();
            assert!(json.get("artifact").is_some() && json.get("steps").is_some());
            assert!(json["artifact"].get("repeated").is_none());
        }
    }

    #[test]
    fn unknown_artifacts_have_no_origin() {
        for (dir, store) in crate::store::tests::stores() {
            let (_dir, store, _) = pipeline(dir, store);
            let l = trace(&store, Digest::of(b"nothing")).unwrap();
            assert_eq!(l.artifact.kind, "unknown");
            assert!(l.artifact.produced_by.is_none() && l.artifact.imported_as.is_none());
            assert!(l.steps.is_empty() && l.data.is_empty());
        }
    }
}
