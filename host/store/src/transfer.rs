//! Moving a store: its metadata copied from one backend to another (a
//! laptop's SQLite file to the team's PostgreSQL server), its objects from
//! one object store to another, and a check that a store is whole — every
//! object a row names is there, with the bytes its digest says.

use crate::db::{Metadata, MetadataError, Value};
use crate::{Digest, Store, StoreError};
use serde::Serialize;

/// The tables copied, in an order that satisfies every foreign key, each
/// with its columns and an order that reproduces the source's (insertion
/// order where a later row names an earlier one: resumed runs, cached
/// executions). Leases and gc marks are not copied: they belong to live
/// processes of the source.
const TABLES: &[(&str, &str, &str)] = &[
    (
        "components",
        "digest, name, size, first_seen",
        "first_seen, digest",
    ),
    ("artifacts", "digest, kind, size, created_at", "rowid"),
    ("run_plans", "digest, plan", "digest"),
    (
        "runs",
        "id, pipeline, spec_path, spec_digest, trigger, state, started_at, ended_at, host, pid, resumed_from, started_by, plan",
        "rowid",
    ),
    (
        "executions",
        "id, run_id, step, component, component_digest, cache_key, key_parts, params, state, cached_from, started_at, ended_at, duration_ms, attempts, error, failure, metrics, report, host",
        "id",
    ),
    (
        "events",
        "execution_id, direction, port, artifact, source",
        "execution_id, direction, port",
    ),
    ("imports", "run_id, name, path, artifact", "run_id, name"),
    (
        "models",
        "name, version, artifact, metrics, run_id, execution_id, created_at, identity",
        "name, version",
    ),
    ("model_aliases", "name, alias, version", "name, alias"),
    (
        "alias_history",
        "id, name, alias, version, previous, at, who, reason, forced, gates",
        "id",
    ),
    (
        "request_logs",
        "id, name, version, object, rows, first_at, last_at, server, route",
        "id",
    ),
    (
        "serving_stats",
        "id, server, name, version, reference, role, window_start, window_end, requests, errors_4xx, errors_5xx, latency_counts, latency_sum_ms, route",
        "id",
    ),
    (
        "promotion_policies",
        "name, policy, updated_at, who",
        "name",
    ),
    (
        "rollouts",
        "id, name, alias, baseline, candidate, plan, stage, share, state, started_at, stage_started_at, updated_at, who, reason",
        "started_at, id",
    ),
    (
        "rollout_decisions",
        "id, rollout_id, stage, at, decision, evidence, holder",
        "id",
    ),
    (
        "watch_state",
        "pipeline, key, value, updated_at",
        "pipeline, key",
    ),
];

/// Tables whose `id` column the database numbers (the next number must
/// follow the copied ones).
const NUMBERED: &[&str] = &[
    "executions",
    "alias_history",
    "request_logs",
    "serving_stats",
    "rollout_decisions",
];

/// Rows read from the source per query.
const PAGE: i64 = 500;

/// Why metadata could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A database failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// An object store failed.
    #[error(transparent)]
    Objects(#[from] StoreError),
    /// The target already holds metadata.
    #[error(
        "the target {0} already holds runs, artifacts or models; copy into an empty database (create a new one, or a new schema)"
    )]
    TargetNotEmpty(String),
    /// Source and target are one database.
    #[error("the source and the target are the same database ({0})")]
    SameDatabase(String),
}

/// How many rows of each table were copied.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// (table, rows), in copy order.
    pub tables: Vec<(String, u64)>,
}

impl CopyReport {
    /// All rows copied.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// Copies every row of `from` into the empty database `to`, in one
/// transaction on `to` (all or nothing). `progress(table, rows so far)` is
/// called after each page.
pub fn copy_metadata(
    from: &Metadata,
    to: &Metadata,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<CopyReport, TransferError> {
    if from.location() == to.location() {
        return Err(TransferError::SameDatabase(to.shown().to_string()));
    }
    let occupied: i64 = to.read(|c| {
        c.query_one(
            "SELECT (SELECT COUNT(*) FROM runs) + (SELECT COUNT(*) FROM artifacts) + (SELECT COUNT(*) FROM models)",
            &[],
        )?
        .get(0)
    })?;
    if occupied > 0 {
        return Err(TransferError::TargetNotEmpty(to.shown().to_string()));
    }
    let mut report = CopyReport::default();
    to.write(|target| {
        for (table, columns, order) in TABLES {
            let width = columns.split(',').count();
            let placeholders: Vec<String> = (1..=width).map(|i| format!("?{i}")).collect();
            let insert = format!(
                "INSERT INTO {table} ({columns}) VALUES ({})",
                placeholders.join(", ")
            );
            let select =
                format!("SELECT {columns} FROM {table} ORDER BY {order} LIMIT ?1 OFFSET ?2");
            let mut copied = 0u64;
            loop {
                let rows = from
                    .read(|source| {
                        source.query(&select, &[Value::Int(PAGE), Value::Int(copied as i64)])
                    })
                    .map_err(|e| crate::db::DbError::Decode(e.to_string()))?;
                for row in &rows {
                    target.execute(&insert, row.values())?;
                }
                copied += rows.len() as u64;
                progress(table, copied);
                if (rows.len() as i64) < PAGE {
                    break;
                }
            }
            report.tables.push((table.to_string(), copied));
        }
        for table in NUMBERED {
            target.follow_numbering(table, "id")?;
        }
        Ok(())
    })?;
    Ok(report)
}

/// How many objects were copied, and how many the target had already.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjectCopyReport {
    /// Objects written to the target.
    pub copied: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Objects the target already held.
    pub present: u64,
}

/// Copies every object of `from` that `to` lacks, checking each one's
/// bytes against its digest on the way (a corrupt object stops the copy).
pub fn copy_objects(
    from: &crate::ObjectStore,
    to: &crate::ObjectStore,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ObjectCopyReport, TransferError> {
    let objects = from.list_objects()?;
    let total = objects.len() as u64;
    let mut report = ObjectCopyReport::default();
    for (i, object) in objects.iter().enumerate() {
        if to.contains(&object.digest) {
            report.present += 1;
        } else {
            let bytes = from.get(&object.digest)?;
            to.put(&bytes)?;
            report.copied += 1;
            report.bytes += bytes.len() as u64;
        }
        progress(i as u64 + 1, total);
    }
    Ok(report)
}

/// One problem [`verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The object.
    pub digest: Digest,
    /// `missing` or `corrupt`.
    pub kind: &'static str,
    /// What was found.
    pub detail: String,
}

/// What [`verify`] checked and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Objects checked.
    pub checked: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects missing or not matching their digest.
    pub problems: Vec<Problem>,
}

/// Checks that every object the metadata names — artifacts, inputs and
/// outputs, imports, request logs, components stored from files, and the
/// ONNX bytes of every model card — is in the object store, with bytes
/// whose SHA-256 is its name. `progress(done, total)` after each.
pub fn verify(
    store: &Store,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport, TransferError> {
    let mut wanted: Vec<Digest> = store.metadata.referenced_artifacts()?.into_iter().collect();
    // Standard steps live in the binary, not the store.
    wanted.extend(
        store
            .metadata
            .components()?
            .into_iter()
            .filter(|(_, name)| !name.starts_with("std:"))
            .map(|(d, _)| d),
    );
    for model in store
        .metadata
        .artifacts_of_kind(Some("model"), usize::MAX)?
    {
        if let Some(onnx) = store
            .objects
            .get(&model.digest)
            .ok()
            .and_then(|card| crate::refs::model_onnx(&card))
        {
            wanted.push(onnx);
        }
    }
    wanted.sort();
    wanted.dedup();
    let total = wanted.len() as u64;
    let mut report = VerifyReport::default();
    for (i, digest) in wanted.into_iter().enumerate() {
        match store.objects.get(&digest) {
            Ok(bytes) => report.bytes += bytes.len() as u64,
            Err(e @ StoreError::Missing { .. }) => report.problems.push(Problem {
                digest,
                kind: "missing",
                detail: e.to_string(),
            }),
            Err(e @ StoreError::Corrupt { .. }) => report.problems.push(Problem {
                digest,
                kind: "corrupt",
                detail: e.to_string(),
            }),
            Err(e) => return Err(e.into()),
        }
        report.checked += 1;
        progress(i as u64 + 1, total);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{ExecutionState, Finished, NewExecution};

    /// A store with one run of two steps (the second cached from the
    /// first), a registered model moved by an alias, a request log and
    /// watch state.
    fn populate(store: &Store) -> (Digest, Digest) {
        let m = &store.metadata;
        let table = store.objects.put(b"a table").unwrap();
        let model = store.objects.put(b"{\"onnx\": null}").unwrap();
        m.start_run("r1", "p", "p.toml", &Digest::of(b"s"), "manual", "t0", None)
            .unwrap();
        m.start_run(
            "r2",
            "p",
            "p.toml",
            &Digest::of(b"s"),
            "resume",
            "t1",
            Some("r1"),
        )
        .unwrap();
        let wasm = store.objects.put(b"wasm").unwrap();
        m.record_component(&wasm, "step.wasm", 4, "t0").unwrap();
        m.record_component(&Digest::of(b"built in"), "std:statistics", 8, "t0")
            .unwrap();
        m.record_import("r1", "raw", "raw.csv", &table, "file", 7, "t0")
            .unwrap();
        let parts = serde_json::json!({"k": 1});
        let exec = |run: &'static str, step: &'static str| NewExecution {
            run_id: run,
            step,
            component: "step.wasm",
            component_digest: wasm,
            cache_key: Digest::of(step.as_bytes()),
            key_parts: &parts,
            params: &parts,
            inputs: &[],
            started_at: "t0",
        };
        let first = m.start_execution(&exec("r1", "train")).unwrap();
        let outputs = [("model".to_string(), model, "model".to_string(), 14)];
        let models = [crate::NewModel {
            name: "m".into(),
            artifact: model,
            identity: None,
            metrics: serde_json::json!({"accuracy": 0.9}),
        }];
        m.finish_execution(first, &finished(None, &outputs, &models))
            .unwrap();
        let second = m.start_execution(&exec("r2", "train")).unwrap();
        m.finish_execution(second, &finished(Some(first), &outputs, &[]))
            .unwrap();
        m.set_alias("m", "production", 1, "ann", "first", "t3")
            .unwrap();
        m.record_request_log(&crate::RequestLogChunk {
            name: "m".into(),
            version: 1,
            object: table,
            rows: 3,
            first_at: "t4".into(),
            last_at: "t5".into(),
            server: "s".into(),
            route: "m@production".into(),
        })
        .unwrap();
        m.update_watch_state("p", &[("data:raw", Some("x"))], "t6")
            .unwrap();
        (table, model)
    }

    fn finished<'a>(
        cached_from: Option<i64>,
        outputs: &'a [(String, Digest, String, u64)],
        models: &'a [crate::NewModel],
    ) -> Finished<'a> {
        Finished {
            state: if cached_from.is_some() {
                ExecutionState::Cached
            } else {
                ExecutionState::Succeeded
            },
            duration_ms: 1.5,
            metrics: serde_json::json!({"accuracy": 0.9}),
            cached_from,
            ..crate::metadata::tests::succeeded(outputs, models)
        }
    }

    #[test]
    fn metadata_copied_to_another_backend_reads_the_same_and_keeps_numbering() {
        let all = crate::store::tests::stores();
        let (_dir, source) = &all[0];
        populate(source);
        // Into PostgreSQL when the tests reach one, and always into a
        // second SQLite file.
        for (_d, target) in all.iter().skip(1) {
            check_copy(source, &target.metadata);
        }
        let dir = tempfile::tempdir().unwrap();
        check_copy(
            source,
            &Metadata::open(dir.path().join("copy.sqlite")).unwrap(),
        );
    }

    fn check_copy(source: &Store, target: &Metadata) {
        let mut pages = 0;
        let report = copy_metadata(&source.metadata, target, &mut |_, _| pages += 1).unwrap();
        assert!(pages >= TABLES.len());
        let rows: std::collections::BTreeMap<_, _> = report.tables.iter().cloned().collect();
        assert_eq!(rows["runs"], 2);
        assert_eq!(rows["executions"], 2);
        assert_eq!(rows["models"], 1);
        let s = &source.metadata;
        assert_eq!(
            serde_json::to_value(target.runs(None, 10).unwrap()).unwrap(),
            serde_json::to_value(s.runs(None, 10).unwrap()).unwrap()
        );
        assert_eq!(
            serde_json::to_value(target.executions("r2").unwrap()).unwrap(),
            serde_json::to_value(s.executions("r2").unwrap()).unwrap()
        );
        assert_eq!(
            target.model_versions("m").unwrap(),
            s.model_versions("m").unwrap()
        );
        assert_eq!(
            target.alias_history("m").unwrap(),
            s.alias_history("m").unwrap()
        );
        assert_eq!(
            target.request_logs("m", None).unwrap(),
            s.request_logs("m", None).unwrap()
        );
        assert_eq!(
            target.watch_state("p").unwrap(),
            s.watch_state("p").unwrap()
        );
        assert_eq!(
            target.referenced_artifacts().unwrap(),
            s.referenced_artifacts().unwrap()
        );
        // New rows are numbered after the copied ones.
        let id = target
            .start_execution(&NewExecution {
                run_id: "r1",
                step: "later",
                component: "c",
                component_digest: Digest::of(b"c"),
                cache_key: Digest::of(b"later"),
                key_parts: &serde_json::json!({}),
                params: &serde_json::json!({}),
                inputs: &[],
                started_at: "t9",
            })
            .unwrap();
        assert_eq!(id, 3);
        // A second copy into the same database is refused.
        let again = copy_metadata(&source.metadata, target, &mut |_, _| {}).unwrap_err();
        assert!(again.to_string().contains("already holds"), "{again}");
    }

    #[test]
    fn verify_finds_missing_and_corrupt_objects_and_copies_restore_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("a")).unwrap();
        let (table, model) = populate(&store);
        let clean = verify(&store, &mut |_, _| {}).unwrap();
        assert!(clean.problems.is_empty(), "{:?}", clean.problems);
        assert_eq!(
            clean.checked, 3,
            "the table, the model card and the stored component (std: ones live in the binary)"
        );

        // A copy of the objects, then damage in the original.
        let copy = crate::ObjectStore::open(dir.path().join("b")).unwrap();
        let copied = copy_objects(&store.objects, &copy, &mut |_, _| {}).unwrap();
        assert_eq!((copied.copied, copied.present), (3, 0));
        std::fs::write(store.objects.path_of(&table), b"tampered").unwrap();
        std::fs::remove_file(store.objects.path_of(&model)).unwrap();
        let found = verify(&store, &mut |_, _| {}).unwrap();
        let kinds: std::collections::BTreeMap<Digest, &str> =
            found.problems.iter().map(|p| (p.digest, p.kind)).collect();
        assert_eq!(kinds[&table], "corrupt");
        assert_eq!(kinds[&model], "missing");
        let again = copy_objects(&copy, &store.objects, &mut |_, _| {}).unwrap();
        assert_eq!(
            again.present, 2,
            "the component, and the tampered table (present, if wrong)"
        );
        assert_eq!(again.copied, 1);
    }
}
