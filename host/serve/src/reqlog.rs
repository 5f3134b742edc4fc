//! Request logging for monitoring: a sample of the served requests — their
//! raw inputs, the predictions, the version that made them, the request id
//! and time — written in Parquet chunks to the store's object store, each
//! chunk recorded in the metadata database (`request_logs`).
//!
//! Logging never slows a request: the request's tables (shared, not copied)
//! go over a bounded channel to a writer thread — when it is full, the entry
//! is dropped and counted rather than waited for — which builds the rows,
//! compacts them every few hundred requests (a one-row batch per request
//! would cost kilobytes of overhead each), and writes a model version's rows
//! when `flush_rows` have gathered or `flush_every` has passed, and
//! everything on shutdown.

use crate::metrics::Metrics;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use sluice_store::{RequestLogChunk, Store};
use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How requests are logged.
#[derive(Debug, Clone, Copy)]
pub struct LogConfig {
    /// The fraction of requests logged, 0 to 1.
    pub sample: f64,
    /// Rows of one model version gathered before a chunk is written.
    pub flush_rows: usize,
    /// Longest rows wait before they are written.
    pub flush_every: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            sample: 1.0,
            flush_rows: 10_000,
            flush_every: Duration::from_secs(10),
        }
    }
}

/// Requests waiting for the writer before new ones are dropped.
const QUEUE: usize = 2048;
/// Requests' rows gathered before they are compacted into one batch.
const COMPACT_EVERY: usize = 64;

struct Entry {
    name: String,
    version: i64,
    request_id: String,
    inputs: RecordBatch,
    outputs: RecordBatch,
    at: String,
}

/// The request logger. [`RequestLog::close`] writes what is buffered.
pub struct RequestLog {
    config: LogConfig,
    sender: Mutex<Option<mpsc::SyncSender<Entry>>>,
    metrics: Arc<Metrics>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl RequestLog {
    /// Starts the writer thread; `server` names this server in the records.
    pub fn start(
        store: Arc<Store>,
        config: LogConfig,
        server: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (sender, entries) = mpsc::sync_channel(QUEUE);
        let m = metrics.clone();
        let writer = std::thread::Builder::new()
            .name("sluice-request-log".into())
            .spawn(move || write(&store, &entries, config, &server, &m))
            .expect("the request-log thread can be started");
        RequestLog {
            config,
            sender: Mutex::new(Some(sender)),
            metrics,
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Whether to log the next request (a draw against the sample rate).
    pub fn sampled(&self) -> bool {
        self.config.sample >= 1.0
            || (self.config.sample > 0.0 && rand::random::<f64>() < self.config.sample)
    }

    /// Logs one request: `inputs` and `outputs` have a row per predicted row.
    pub fn record(
        &self,
        name: &str,
        version: i64,
        request_id: &str,
        inputs: &RecordBatch,
        outputs: &RecordBatch,
    ) {
        let entry = Entry {
            name: name.to_string(),
            version,
            request_id: request_id.to_string(),
            inputs: inputs.clone(),
            outputs: outputs.clone(),
            at: sluice_store::time::now(),
        };
        if let Some(s) = self.sender.lock().unwrap().as_ref() {
            match s.try_send(entry) {
                Ok(()) => self.metrics.logged(),
                Err(mpsc::TrySendError::Full(_)) => self.metrics.log_dropped(),
                Err(mpsc::TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Writes everything buffered and stops the writer.
    pub fn close(&self) {
        self.sender.lock().unwrap().take();
        if let Some(w) = self.writer.lock().unwrap().take() {
            let _ = w.join();
        }
    }
}

/// The logged rows of a request: `request_id`, `row`, `served_at`, the
/// inputs, then the outputs.
fn log_rows(
    request_id: &str,
    at: &str,
    inputs: &RecordBatch,
    outputs: &RecordBatch,
) -> Option<RecordBatch> {
    let n = inputs.num_rows();
    let mut fields = vec![
        Field::new("request_id", arrow_schema::DataType::Utf8, false),
        Field::new("row", arrow_schema::DataType::Int64, false),
        Field::new("served_at", arrow_schema::DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![request_id; n])),
        Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
        Arc::new(StringArray::from(vec![at; n])),
    ];
    for batch in [inputs, outputs] {
        for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
            fields.push(f.as_ref().clone());
            columns.push(c.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).ok()
}

#[derive(Default)]
struct Buffer {
    /// Compacted batches.
    batches: Vec<RecordBatch>,
    /// One-request batches not yet compacted.
    fresh: Vec<RecordBatch>,
    rows: usize,
    first_at: String,
    last_at: String,
    since: Option<Instant>,
}

fn write(
    store: &Store,
    entries: &mpsc::Receiver<Entry>,
    config: LogConfig,
    server: &str,
    metrics: &Metrics,
) {
    let mut buffers: HashMap<(String, i64), Buffer> = HashMap::new();
    let tick = config
        .flush_every
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(10));
    loop {
        let closed = match entries.recv_timeout(tick) {
            Ok(e) => {
                let Some(rows) = log_rows(&e.request_id, &e.at, &e.inputs, &e.outputs) else {
                    continue;
                };
                let key = (e.name, e.version);
                let b = buffers.entry(key.clone()).or_default();
                // A request whose columns differ (a model without a
                // recorded signature) starts a new chunk.
                if b.batches
                    .iter()
                    .chain(&b.fresh)
                    .next()
                    .is_some_and(|f| f.schema() != rows.schema())
                {
                    flush(store, &key, b, server, metrics);
                }
                if b.rows == 0 {
                    b.first_at = e.at.clone();
                    b.since = Some(Instant::now());
                }
                b.rows += rows.num_rows();
                b.last_at = e.at;
                b.fresh.push(rows);
                if b.fresh.len() >= COMPACT_EVERY {
                    compact(b);
                }
                if b.rows >= config.flush_rows {
                    flush(store, &key, b, server, metrics);
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        for (key, b) in buffers.iter_mut() {
            if closed || b.since.is_some_and(|s| s.elapsed() >= config.flush_every) {
                flush(store, key, b, server, metrics);
            }
        }
        if closed {
            return;
        }
    }
}

/// Concatenates the one-request batches into one.
fn compact(b: &mut Buffer) {
    if b.fresh.is_empty() {
        return;
    }
    let fresh = std::mem::take(&mut b.fresh);
    match arrow_select::concat::concat_batches(&fresh[0].schema(), &fresh) {
        Ok(one) => b.batches.push(one),
        Err(_) => b.batches.extend(fresh),
    }
}

/// Writes a buffer as one Parquet object and records it; a failure is
/// reported on stderr and the rows are dropped (serving goes on).
fn flush(store: &Store, key: &(String, i64), b: &mut Buffer, server: &str, metrics: &Metrics) {
    compact(b);
    if b.batches.is_empty() {
        return;
    }
    let batches = std::mem::take(&mut b.batches);
    let rows = std::mem::take(&mut b.rows);
    b.since = None;
    let result = (|| -> Result<(), String> {
        let all = arrow_select::concat::concat_batches(&batches[0].schema(), &batches)
            .map_err(|e| e.to_string())?;
        let bytes = sluice_runtime::table::batch_to_parquet(&all).map_err(|e| e.to_string())?;
        let object = store.objects.put(&bytes).map_err(|e| e.to_string())?;
        store
            .metadata
            .record_request_log(&RequestLogChunk {
                name: key.0.clone(),
                version: key.1,
                object,
                rows: rows as u64,
                first_at: std::mem::take(&mut b.first_at),
                last_at: std::mem::take(&mut b.last_at),
                server: server.to_string(),
            })
            .map_err(|e| e.to_string())
    })();
    match result {
        Ok(()) => metrics.logged_rows(rows as u64),
        Err(e) => eprintln!(
            "sluice serve: could not write {rows} logged request row(s) of {}:{}: {e}",
            key.0, key.1
        ),
    }
}
