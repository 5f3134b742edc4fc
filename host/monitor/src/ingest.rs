//! Request logs written away from the store — by `sluice-edge serve
//! --request-log` on a device — taken into a store, so `sluice monitor`
//! reads a device's traffic as it reads a server's.
//!
//! Every file is checked before any is taken: it must be a request log
//! (see `sluice_serve::reqlog::folder`), and name a model version this
//! store has, made by the same ONNX graph (a version number alone could be
//! another store's). Taking a file twice changes nothing: a file is stored
//! by its content's digest and recorded once.

use crate::MonitorError;
use serde::Serialize;
use sluice_runtime::Digest;
use sluice_serve::reqlog::folder;
use sluice_store::{ModelRef, RequestLogChunk, Store};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// One file and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct IngestedFile {
    /// The file.
    pub path: PathBuf,
    /// The model version whose requests it holds (`name:version`).
    pub model: String,
    /// Its rows.
    pub rows: u64,
    /// When its first and last requests were served.
    pub first_at: String,
    /// See `first_at`.
    pub last_at: String,
    /// Whether the store had it already (it was not recorded again).
    pub already: bool,
}

/// Takes the request-log files of `paths` (files, or folders whose
/// `requests-*.parquet` files are all taken, oldest first) into `store`.
/// Nothing is taken unless every file passes its checks.
pub fn ingest(store: &Store, paths: &[PathBuf]) -> Result<Vec<IngestedFile>, MonitorError> {
    let refused =
        |path: &Path, why: String| MonitorError::Ingest(format!("{}: {why}", path.display()));
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = folder::log_files(path).map_err(|e| refused(path, e.to_string()))?;
            if found.is_empty() {
                return Err(refused(
                    path,
                    "holds no request-log files (requests-*.parquet, which `sluice-edge serve --request-log` writes)".into(),
                ));
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    // Check everything first.
    let mut checked = Vec::new();
    for path in files {
        let bytes = std::fs::read(&path).map_err(|e| refused(&path, e.to_string()))?;
        let object = Digest::of(&bytes);
        let logged = folder::read_file(bytes.clone().into()).map_err(|e| refused(&path, e))?;
        let c = &logged.chunk;
        let id = format!("{}:{}", c.name, c.version);
        let version = store
            .metadata
            .resolve_model(&ModelRef::Version(c.name.clone(), c.version))
            .map_err(|e| MonitorError::Store(e.to_string()))?
            .ok_or_else(|| {
                refused(
                    &path,
                    format!(
                        "it holds requests of {id}, which this store does not have; ingest it into the store the bundle was built from"
                    ),
                )
            })?;
        let card = store
            .objects
            .get(&version.artifact)
            .map_err(|e| MonitorError::Store(e.to_string()))?;
        let graph = sluice_store::refs::model_onnx(&card);
        if graph != Some(c.graph) {
            return Err(refused(
                &path,
                format!(
                    "its requests were answered by the graph {}, and this store's {id} is {}; ingest it into the store the bundle was built from",
                    c.graph,
                    graph.map_or_else(|| "not an ONNX model".into(), |g| g.to_string())
                ),
            ));
        }
        checked.push((path, bytes, object, logged));
    }
    // Then take them. The objects already recorded, per model.
    let mut known: HashMap<String, HashSet<Digest>> = HashMap::new();
    let mut taken = Vec::new();
    for (path, bytes, object, logged) in checked {
        let c = logged.chunk;
        let recorded = match known.entry(c.name.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(
                store
                    .metadata
                    .request_logs(&c.name, None)
                    .map_err(|e| MonitorError::Store(e.to_string()))?
                    .into_iter()
                    .map(|chunk| chunk.object)
                    .collect(),
            ),
        };
        let already = !recorded.insert(object);
        if !already {
            let put = store
                .objects
                .put(&bytes)
                .map_err(|e| MonitorError::Store(e.to_string()))?;
            store
                .metadata
                .record_request_log(&RequestLogChunk {
                    name: c.name.clone(),
                    version: c.version,
                    object: put,
                    rows: c.rows,
                    first_at: c.first_at.clone(),
                    last_at: c.last_at.clone(),
                    server: logged.server,
                    route: c.route.clone(),
                })
                .map_err(|e| MonitorError::Store(e.to_string()))?;
        }
        taken.push(IngestedFile {
            path,
            model: format!("{}:{}", c.name, c.version),
            rows: c.rows,
            first_at: c.first_at,
            last_at: c.last_at,
            already,
        });
    }
    Ok(taken)
}
