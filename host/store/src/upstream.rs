//! Questions about what lies upstream of an execution: a breadth-first walk
//! through the metadata ([`find_upstream`]), and the schema and statistics
//! a model's training data was checked against ([`training_schema`]).
//!
//! [`crate::lineage`] traces one artifact into a full tree for display;
//! this module answers "the nearest upstream execution such that …" for
//! the monitor (the raw training table) and batch prediction (the training
//! schema), without building the tree.

use crate::metadata::{ExecutionRecord, MetadataError};
use crate::{Digest, Store};
use std::collections::{HashSet, VecDeque};

/// Visits `execution` and the executions upstream of it breadth first —
/// nearest first: the execution, the producers of its inputs, theirs, … —
/// and returns the first `Some` that `visit` gives. A cached execution is
/// visited as the original whose outputs it reused (whose events are those
/// of the real computation). Each execution is visited once, so the walk
/// ends whatever the rows say.
pub fn find_upstream<T>(
    store: &Store,
    execution: i64,
    mut visit: impl FnMut(&ExecutionRecord) -> Option<T>,
) -> Result<Option<T>, MetadataError> {
    let mut queue = VecDeque::from([execution]);
    let mut seen = HashSet::new();
    while let Some(id) = queue.pop_front() {
        if !seen.insert(id) {
            continue;
        }
        let e = original(store, store.metadata.execution(id)?)?;
        if let Some(found) = visit(&e) {
            return Ok(Some(found));
        }
        for event in e.events.iter().filter(|ev| ev.direction == "input") {
            for producer in store.metadata.producers(&event.artifact)? {
                queue.push_back(producer.id);
            }
        }
    }
    Ok(None)
}

/// Most `cached_from` links followed (they cannot loop in a store sluice
/// wrote, but the walk must end whatever the rows say).
const MAX_CACHE_HOPS: usize = 64;

/// The execution that computed a cached execution's outputs, else `e`.
pub fn original(store: &Store, mut e: ExecutionRecord) -> Result<ExecutionRecord, MetadataError> {
    for _ in 0..MAX_CACHE_HOPS {
        match e.cached_from {
            Some(from) if from != e.id => e = store.metadata.execution(from)?,
            _ => break,
        }
    }
    Ok(e)
}

/// The schema a model's training data was checked against, and the
/// statistics of that data: what new data given to the model is validated
/// against (schema skew) and compared with (drift).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSchema {
    /// The `schema` artifact.
    pub schema: Digest,
    /// Where it came from, for messages: `RUN/STEP/PORT`.
    pub schema_source: String,
    /// The `statistics` of the training data: the statistics the schema
    /// was inferred from (in the flagship pipeline also what `std:validate`
    /// checked), if found.
    pub statistics: Option<Digest>,
    /// The params of the `std:statistics` execution that computed
    /// [`Self::statistics`] (a JSON object), so that new data's statistics
    /// are computed the same way; `None` when another component made them.
    pub statistics_params: Option<serde_json::Value>,
}

/// The schema and training statistics of the model that `execution` (the
/// card's `made_by.execution`) produced, or `None` when nothing upstream
/// has a schema (a model imported with `std:import-model`, or trained by a
/// pipeline without a `std:schema` step).
///
/// A schema is rarely upstream of the model itself: in the flagship
/// pipeline (`ingest → statistics → schema → validate`, and `ingest →
/// split → transform → train`) it hangs off a branch beside the training
/// path. So the walk goes upstream from the training execution, nearest
/// first ([`find_upstream`]), and at each execution:
///
/// 1. an input of kind `schema` (a step that took the schema itself) is
///    the answer, with the statistics its producer inferred it from;
/// 2. otherwise, for each input table, the statistics computed from that
///    table (by an execution that consumed it — the same run as
///    `execution` first, then the newest) are looked at: a step that
///    consumed those statistics and output a schema (`std:schema`), or
///    took a schema with them (`std:validate` with a checked-in schema),
///    gives the schema, and those statistics are the training statistics.
///
/// The nearest table wins, so statistics computed on the training split
/// are preferred to those of the whole data set it was split from.
pub fn training_schema(
    store: &Store,
    execution: i64,
) -> Result<Option<TrainingSchema>, MetadataError> {
    let run = store.metadata.execution(execution)?.run_id;
    find_upstream(store, execution, |e| {
        schema_near(store, &run, e).transpose()
    })?
    .transpose()
}

/// Step 1 and 2 of [`training_schema`] at one execution.
fn schema_near(
    store: &Store,
    run: &str,
    e: &ExecutionRecord,
) -> Result<Option<TrainingSchema>, MetadataError> {
    let inputs: Vec<_> = e
        .events
        .iter()
        .filter(|ev| ev.direction == "input")
        .collect();
    for event in &inputs {
        if kind(store, &event.artifact)?.as_deref() == Some("schema") {
            let (statistics, statistics_params) = schema_source_statistics(store, &event.artifact)?;
            return Ok(Some(TrainingSchema {
                schema: event.artifact,
                schema_source: format!("{}/{}/{}", e.run_id, e.step, event.port),
                statistics,
                statistics_params,
            }));
        }
    }
    for event in &inputs {
        if kind(store, &event.artifact)?.as_deref() != Some("table") {
            continue;
        }
        for consumer in consumers(store, run, &event.artifact)? {
            for out in consumer.events.iter().filter(|ev| ev.direction == "output") {
                if kind(store, &out.artifact)?.as_deref() != Some("statistics") {
                    continue;
                }
                if let Some((schema, schema_source)) = schema_of(store, run, &out.artifact)? {
                    return Ok(Some(TrainingSchema {
                        schema,
                        schema_source,
                        statistics: Some(out.artifact),
                        statistics_params: statistics_params(&consumer),
                    }));
                }
            }
        }
    }
    Ok(None)
}

/// A schema made from, or checked with, `statistics`: the `schema` output
/// of an execution that consumed them, else a `schema` input beside them.
fn schema_of(
    store: &Store,
    run: &str,
    statistics: &Digest,
) -> Result<Option<(Digest, String)>, MetadataError> {
    let consumers = consumers(store, run, statistics)?;
    for direction in ["output", "input"] {
        for c in &consumers {
            for ev in c.events.iter().filter(|ev| ev.direction == direction) {
                if kind(store, &ev.artifact)?.as_deref() == Some("schema") {
                    return Ok(Some((
                        ev.artifact,
                        format!("{}/{}/{}", c.run_id, c.step, ev.port),
                    )));
                }
            }
        }
    }
    Ok(None)
}

/// The statistics a schema was inferred from: the `statistics` input of
/// the execution that produced it, with that input's own producer's params.
fn schema_source_statistics(
    store: &Store,
    schema: &Digest,
) -> Result<(Option<Digest>, Option<serde_json::Value>), MetadataError> {
    for producer in store.metadata.producers(schema)? {
        let producer = original(store, producer)?;
        for ev in producer.events.iter().filter(|ev| ev.direction == "input") {
            if kind(store, &ev.artifact)?.as_deref() == Some("statistics") {
                let params = store
                    .metadata
                    .producers(&ev.artifact)?
                    .into_iter()
                    .next()
                    .map(|p| original(store, p))
                    .transpose()?
                    .and_then(|p| statistics_params(&p));
                return Ok((Some(ev.artifact), params));
            }
        }
    }
    Ok((None, None))
}

/// The params of a `std:statistics` execution.
fn statistics_params(e: &ExecutionRecord) -> Option<serde_json::Value> {
    (e.component == "std:statistics").then(|| e.params.clone())
}

/// The executions (as originals) that took `artifact` as an input: those
/// of `run` first, then the newest.
fn consumers(
    store: &Store,
    run: &str,
    artifact: &Digest,
) -> Result<Vec<ExecutionRecord>, MetadataError> {
    let mut uses: Vec<_> = store
        .metadata
        .artifact_uses(artifact)?
        .into_iter()
        .filter(|u| u.direction == "input")
        .collect();
    // Newest first already; a stable sort puts `run`'s in front.
    uses.sort_by_key(|u| u.run_id != run);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for u in uses {
        let e = original(store, store.metadata.execution(u.execution_id)?)?;
        if seen.insert(e.id) {
            out.push(e);
        }
    }
    Ok(out)
}

/// The recorded kind of an artifact.
fn kind(store: &Store, digest: &Digest) -> Result<Option<String>, MetadataError> {
    Ok(store.metadata.artifact(digest)?.map(|a| a.kind))
}
