//! The server's sink: each chunk a Parquet object in the store, recorded
//! in the metadata database where `sluice monitor` finds it.

use super::{LogChunk, LogSink};
use arrow_array::RecordBatch;
use sluice_store::{RequestLogChunk, Store};
use std::sync::Arc;

/// Writes chunks to a store.
pub struct StoreSink {
    store: Arc<Store>,
    server: String,
}

impl StoreSink {
    /// A sink into `store`; `server` names this server in the records
    /// (`host:port`).
    pub fn new(store: Arc<Store>, server: String) -> Self {
        StoreSink { store, server }
    }
}

impl LogSink for StoreSink {
    fn write(&mut self, chunk: &LogChunk, rows: &RecordBatch) -> Result<(), String> {
        let bytes = sluice_runtime::table::batch_to_parquet(rows).map_err(|e| e.to_string())?;
        let object = self.store.objects.put(&bytes).map_err(|e| e.to_string())?;
        self.store
            .metadata
            .record_request_log(&RequestLogChunk {
                name: chunk.name.clone(),
                version: chunk.version,
                object,
                rows: chunk.rows,
                first_at: chunk.first_at.clone(),
                last_at: chunk.last_at.clone(),
                server: self.server.clone(),
                route: chunk.route.clone(),
            })
            .map_err(|e| e.to_string())
    }
}
