//! Request logging for monitoring: a sample of the served requests — their
//! raw inputs, the predictions, the model that made them, the request id
//! and time — gathered into chunks that a [`LogSink`] keeps: the server's
//! writes each chunk as a Parquet object in the store and records it in the
//! metadata database (`request_logs`); the edge runtime's writes Parquet
//! files to a folder of bounded size ([`folder`]) that `sluice monitor
//! --ingest` later takes into a store. Both hold the same rows, so a
//! monitor reads a device's traffic as it reads a server's.
//!
//! Logging never slows a request: the request's tables (shared, not copied)
//! go over a bounded channel to a writer thread — when it is full, the entry
//! is dropped and counted rather than waited for — which builds the rows,
//! compacts them every few hundred requests (a one-row batch per request
//! would cost kilobytes of overhead each), and hands a model's rows to the
//! sink when `flush_rows` have gathered or `flush_every` has passed, and
//! everything on shutdown.

pub mod folder;
#[cfg(feature = "server")]
mod store;

#[cfg(feature = "server")]
pub use store::StoreSink;

use crate::ServedModel;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use sluice_runtime::Digest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// What a chunk of logged rows is: whose requests, how many, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// The model's registered name.
    pub name: String,
    /// The version that served the requests.
    pub version: i64,
    /// The digest of the ONNX graph that made the predictions.
    pub graph: Digest,
    /// Whose traffic the requests were: what the server's route serves as
    /// its primary (`NAME@ALIAS`), whichever of its roles answered.
    pub route: String,
    /// How many rows the chunk holds.
    pub rows: u64,
    /// When the first of its requests was served (RFC 3339).
    pub first_at: String,
    /// When the last of them was served (RFC 3339).
    pub last_at: String,
}

/// Where chunks of logged rows go. Called on the writer thread only.
pub trait LogSink: Send + 'static {
    /// Keeps one chunk: `rows` are `request_id`, `row`, `served_at`, the
    /// request's input columns, then the prediction columns. An error is
    /// reported on stderr and the rows are dropped (serving goes on).
    fn write(&mut self, chunk: &LogChunk, rows: &RecordBatch) -> Result<(), String>;
}

/// What the logger counts, for a server's metrics.
pub trait LogCounters: Send + Sync + 'static {
    /// A request was queued for the log.
    fn logged(&self) {}
    /// A request was not logged because the writer fell behind.
    fn dropped(&self) {}
    /// A chunk of `rows` rows was written.
    fn written(&self, _rows: u64) {}
}

/// Counts nothing (a logger with no metrics to feed).
#[derive(Debug, Default)]
pub struct NoCounters;

impl LogCounters for NoCounters {}

/// Ids for requests that bring none (`PREFIX-N`), so their logged rows can
/// be joined with labels later (the id is in the response): a per-process
/// prefix, then a counter. `sluice serve` and `sluice-edge serve` both
/// give them.
#[derive(Debug)]
pub struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl RequestIds {
    /// Ids starting with `prefix` (8 hex digits), which should differ
    /// between processes that log into one store.
    pub fn new(prefix: u32) -> Self {
        RequestIds {
            prefix: format!("{prefix:08x}"),
            next: AtomicU64::new(1),
        }
    }

    /// The next id.
    pub fn next(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// Requests waiting for the writer before new ones are dropped.
const QUEUE: usize = 2048;
/// Requests' rows gathered before they are compacted into one batch.
const COMPACT_EVERY: usize = 64;

struct Entry {
    name: String,
    version: i64,
    graph: Digest,
    route: String,
    request_id: String,
    inputs: RecordBatch,
    outputs: RecordBatch,
    at: String,
}

/// The request logger. [`RequestLog::close`] writes what is buffered.
pub struct RequestLog {
    config: LogConfig,
    sender: Mutex<Option<mpsc::SyncSender<Entry>>>,
    counters: Arc<dyn LogCounters>,
    writer: Mutex<Option<JoinHandle<()>>>,
    draws: AtomicU64,
}

impl RequestLog {
    /// Starts the writer thread, which hands chunks to `sink`.
    pub fn start(
        sink: Box<dyn LogSink>,
        config: LogConfig,
        counters: Arc<dyn LogCounters>,
    ) -> Self {
        let (sender, entries) = mpsc::sync_channel(QUEUE);
        let c = counters.clone();
        let writer = std::thread::Builder::new()
            .name("sluice-request-log".into())
            .spawn(move || write(sink, &entries, config, &*c))
            .expect("the request-log thread can be started");
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        RequestLog {
            config,
            sender: Mutex::new(Some(sender)),
            counters,
            writer: Mutex::new(Some(writer)),
            draws: AtomicU64::new(seed),
        }
    }

    /// Whether to log the next request (a draw against the sample rate).
    pub fn sampled(&self) -> bool {
        if self.config.sample >= 1.0 {
            return true;
        }
        if self.config.sample <= 0.0 {
            return false;
        }
        // SplitMix64 over a shared counter: uniform, lock-free, and no
        // random-number crate in the edge runtime.
        let mut z = self
            .draws
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < self.config.sample
    }

    /// Logs one request `model` answered in the traffic of `route` (what
    /// the route serves as its primary): `inputs` and `outputs` have a row
    /// per predicted row.
    pub fn record(
        &self,
        model: &ServedModel,
        route: &str,
        request_id: &str,
        inputs: &RecordBatch,
        outputs: &RecordBatch,
    ) {
        let entry = Entry {
            name: model.name.clone(),
            version: model.version,
            graph: model.graph(),
            route: route.to_string(),
            request_id: request_id.to_string(),
            inputs: inputs.clone(),
            outputs: outputs.clone(),
            at: sluice_time::now(),
        };
        if let Some(s) = self.sender.lock().unwrap().as_ref() {
            match s.try_send(entry) {
                Ok(()) => self.counters.logged(),
                Err(mpsc::TrySendError::Full(_)) => self.counters.dropped(),
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

impl Drop for RequestLog {
    fn drop(&mut self) {
        self.close();
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

/// A model's buffer: its name, version, graph and route.
type Key = (String, i64, Digest, String);

fn write(
    mut sink: Box<dyn LogSink>,
    entries: &mpsc::Receiver<Entry>,
    config: LogConfig,
    counters: &dyn LogCounters,
) {
    let mut buffers: HashMap<Key, Buffer> = HashMap::new();
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
                let key = (e.name, e.version, e.graph, e.route);
                let b = buffers.entry(key.clone()).or_default();
                // A request whose columns differ (a model without a
                // recorded signature) starts a new chunk.
                if b.batches
                    .iter()
                    .chain(&b.fresh)
                    .next()
                    .is_some_and(|f| f.schema() != rows.schema())
                {
                    flush(&mut *sink, &key, b, counters);
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
                    flush(&mut *sink, &key, b, counters);
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        for (key, b) in buffers.iter_mut() {
            if closed || b.since.is_some_and(|s| s.elapsed() >= config.flush_every) {
                flush(&mut *sink, key, b, counters);
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

/// Hands a buffer to the sink as one chunk; a failure is reported on
/// stderr and the rows are dropped (serving goes on).
fn flush(sink: &mut dyn LogSink, key: &Key, b: &mut Buffer, counters: &dyn LogCounters) {
    compact(b);
    if b.batches.is_empty() {
        return;
    }
    let batches = std::mem::take(&mut b.batches);
    let rows = std::mem::take(&mut b.rows);
    b.since = None;
    let chunk = LogChunk {
        name: key.0.clone(),
        version: key.1,
        graph: key.2,
        route: key.3.clone(),
        rows: rows as u64,
        first_at: std::mem::take(&mut b.first_at),
        last_at: std::mem::take(&mut b.last_at),
    };
    let result = arrow_select::concat::concat_batches(&batches[0].schema(), &batches)
        .map_err(|e| e.to_string())
        .and_then(|all| sink.write(&chunk, &all));
    match result {
        Ok(()) => counters.written(rows as u64),
        Err(e) => eprintln!(
            "request log: could not write {rows} logged request row(s) of {}:{}: {e}",
            chunk.name, chunk.version
        ),
    }
}
