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
//! and the time go over a bounded channel to a writer thread — when it is
//! full, the entry is dropped and counted rather than waited for. Under
//! load the writer wakes every few milliseconds rather than for every
//! request, and builds the rows of all that queued at once (one batch per
//! model version, the timestamps formatted there); it compacts those
//! batches (a one-row batch per request would cost kilobytes of overhead
//! each), and hands a model's rows to the sink when `flush_rows` have
//! gathered or `flush_every` has passed, and everything on shutdown.

pub mod folder;
#[cfg(feature = "server")]
mod store;

#[cfg(feature = "server")]
pub use store::StoreSink;

use crate::ServedModel;
use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{Field, Schema};
use sluice_runtime::Digest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

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
/// Batches of logged rows gathered before they are compacted into one.
const COMPACT_EVERY: usize = 64;

struct Entry {
    name: String,
    version: i64,
    graph: Digest,
    route: String,
    request_id: String,
    inputs: RecordBatch,
    outputs: RecordBatch,
    /// When it was served; formatted on the writer, off the request path.
    at: SystemTime,
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
            at: SystemTime::now(),
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

/// The logged rows of a group of requests with the same columns:
/// `request_id`, `row` (within its request), `served_at`, the inputs,
/// then the outputs. `None` when the columns cannot be joined.
fn log_rows(group: &[Entry]) -> Option<RecordBatch> {
    let first = group.first()?;
    let n: usize = group.iter().map(|e| e.inputs.num_rows()).sum();
    let mut ids = StringBuilder::with_capacity(n, n * first.request_id.len());
    let mut rows = Vec::with_capacity(n);
    let mut at = StringBuilder::with_capacity(n, n * 24);
    for e in group {
        let served = sluice_time::rfc3339(e.at);
        for row in 0..e.inputs.num_rows() {
            ids.append_value(&e.request_id);
            rows.push(row as i64);
            at.append_value(&served);
        }
    }
    let mut fields = vec![
        Field::new("request_id", arrow_schema::DataType::Utf8, false),
        Field::new("row", arrow_schema::DataType::Int64, false),
        Field::new("served_at", arrow_schema::DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(Int64Array::from(rows)),
        Arc::new(at.finish()),
    ];
    let joined = |pick: fn(&Entry) -> &RecordBatch| {
        if group.len() == 1 {
            return Some(pick(first).clone());
        }
        arrow_select::concat::concat_batches(pick(first).schema_ref(), group.iter().map(pick)).ok()
    };
    for batch in [joined(|e| &e.inputs)?, joined(|e| &e.outputs)?] {
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

/// How long the writer waits, once requests are arriving, before it takes
/// what has queued since: under load the queue is drained in groups, not
/// with a wake-up per request (which cost the server a context switch
/// each).
const GATHER: Duration = Duration::from_millis(5);

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
    let mut taken: Vec<Entry> = Vec::new();
    loop {
        // Idle: sleep until a request comes, or a tick for the flush timers.
        let mut closed = match entries.recv_timeout(tick) {
            Ok(e) => {
                taken.push(e);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        // Busy: gather for a moment and take everything queued, for as
        // long as requests keep coming.
        while !taken.is_empty() {
            if !closed {
                std::thread::sleep(GATHER);
                closed = drain(entries, &mut taken);
            }
            buffer(&mut taken, &mut buffers, &mut *sink, config, counters);
            flush_due(&mut buffers, &mut *sink, config, counters, false);
            if !closed {
                closed = drain(entries, &mut taken);
            }
        }
        flush_due(&mut buffers, &mut *sink, config, counters, closed);
        if closed {
            return;
        }
    }
}

/// Moves every queued entry into `taken`; whether the queue is closed.
fn drain(entries: &mpsc::Receiver<Entry>, taken: &mut Vec<Entry>) -> bool {
    loop {
        match entries.try_recv() {
            Ok(e) => taken.push(e),
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => return true,
        }
    }
}

/// Builds the rows of the `taken` entries (one batch for each run of
/// entries of one model version and one set of columns) into their
/// buffers, and writes a buffer that reached `flush_rows`.
fn buffer(
    taken: &mut Vec<Entry>,
    buffers: &mut HashMap<Key, Buffer>,
    sink: &mut dyn LogSink,
    config: LogConfig,
    counters: &dyn LogCounters,
) {
    let mut rest = &taken[..];
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|e| {
                e.name == first.name
                    && e.version == first.version
                    && e.graph == first.graph
                    && e.route == first.route
                    && same_schema(&e.inputs, &first.inputs)
                    && same_schema(&e.outputs, &first.outputs)
            })
            .count();
        let (group, next) = rest.split_at(same);
        rest = next;
        let Some(rows) = log_rows(group) else {
            continue;
        };
        let key = (
            first.name.clone(),
            first.version,
            first.graph,
            first.route.clone(),
        );
        let b = buffers.entry(key.clone()).or_default();
        // Requests whose columns differ (a model without a recorded
        // signature) start a new chunk.
        if b.batches
            .iter()
            .chain(&b.fresh)
            .next()
            .is_some_and(|f| f.schema() != rows.schema())
        {
            flush(sink, &key, b, counters);
        }
        if b.rows == 0 {
            b.first_at = sluice_time::rfc3339(first.at);
            b.since = Some(Instant::now());
        }
        b.rows += rows.num_rows();
        b.last_at = sluice_time::rfc3339(group[group.len() - 1].at);
        b.fresh.push(rows);
        if b.fresh.len() >= COMPACT_EVERY {
            compact(b);
        }
        if b.rows >= config.flush_rows {
            flush(sink, &key, b, counters);
        }
    }
    taken.clear();
}

fn same_schema(a: &RecordBatch, b: &RecordBatch) -> bool {
    let (a, b) = (a.schema_ref(), b.schema_ref());
    Arc::ptr_eq(a, b) || a == b
}

/// Writes the buffers whose `flush_every` has passed (`all`: every one).
fn flush_due(
    buffers: &mut HashMap<Key, Buffer>,
    sink: &mut dyn LogSink,
    config: LogConfig,
    counters: &dyn LogCounters,
    all: bool,
) {
    for (key, b) in buffers.iter_mut() {
        if all || b.since.is_some_and(|s| s.elapsed() >= config.flush_every) {
            flush(sink, key, b, counters);
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Float64Array, StringArray};

    type Chunks = Arc<Mutex<Vec<(LogChunk, RecordBatch)>>>;

    struct Capture(Chunks);

    impl LogSink for Capture {
        fn write(&mut self, chunk: &LogChunk, rows: &RecordBatch) -> Result<(), String> {
            self.0.lock().unwrap().push((chunk.clone(), rows.clone()));
            Ok(())
        }
    }

    fn entry(name: &str, id: &str, xs: &[f64], second: u64) -> Entry {
        let n = xs.len();
        Entry {
            name: name.into(),
            version: 1,
            graph: Digest::of(name.as_bytes()),
            route: format!("{name}@production"),
            request_id: id.into(),
            inputs: RecordBatch::try_from_iter([(
                "x",
                Arc::new(Float64Array::from(xs.to_vec())) as ArrayRef,
            )])
            .unwrap(),
            outputs: RecordBatch::try_from_iter([(
                "prediction",
                Arc::new(StringArray::from(vec!["yes"; n])) as ArrayRef,
            )])
            .unwrap(),
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(second),
        }
    }

    fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
        b.column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<T>()
            .unwrap()
    }

    #[test]
    fn queued_requests_become_one_chunk_per_model_version_keeping_ids_rows_and_times() {
        let chunks = Chunks::default();
        let mut sink = Capture(chunks.clone());
        let mut buffers = HashMap::new();
        // As the writer takes them from the queue: interleaved models.
        let mut taken = vec![
            entry("a", "r1", &[1.0, 2.0], 10),
            entry("a", "r2", &[3.0], 11),
            entry("b", "r3", &[4.0], 12),
            entry("a", "r4", &[5.0], 13),
        ];
        let config = LogConfig::default();
        buffer(&mut taken, &mut buffers, &mut sink, config, &NoCounters);
        assert!(taken.is_empty());
        assert!(chunks.lock().unwrap().is_empty(), "nothing is due yet");
        flush_due(&mut buffers, &mut sink, config, &NoCounters, true);

        let mut chunks = chunks.lock().unwrap().clone();
        chunks.sort_by(|x, y| x.0.name.cmp(&y.0.name));
        let [(a, rows_a), (b, rows_b)] = &chunks[..] else {
            panic!("one chunk per model: {chunks:?}");
        };
        assert_eq!(
            (a.name.as_str(), a.rows, a.route.as_str()),
            ("a", 4, "a@production")
        );
        assert_eq!(a.first_at, "1970-01-01T00:00:10.000Z");
        assert_eq!(a.last_at, "1970-01-01T00:00:13.000Z");
        let ids = column::<StringArray>(rows_a, "request_id");
        assert_eq!(
            ids.iter().flatten().collect::<Vec<_>>(),
            ["r1", "r1", "r2", "r4"]
        );
        let row = column::<Int64Array>(rows_a, "row");
        assert_eq!(row.values().to_vec(), [0, 1, 0, 0]);
        let x = column::<Float64Array>(rows_a, "x");
        assert_eq!(x.values().to_vec(), [1.0, 2.0, 3.0, 5.0]);
        let at = column::<StringArray>(rows_a, "served_at");
        assert_eq!(at.value(1), "1970-01-01T00:00:10.000Z");
        assert_eq!(at.value(3), "1970-01-01T00:00:13.000Z");
        assert_eq!(column::<StringArray>(rows_a, "prediction").len(), 4);
        assert_eq!((b.name.as_str(), b.rows), ("b", 1));
        assert_eq!(column::<StringArray>(rows_b, "request_id").value(0), "r3");
    }

    #[test]
    fn requests_with_other_columns_start_a_new_chunk() {
        let chunks = Chunks::default();
        let mut sink = Capture(chunks.clone());
        let mut buffers = HashMap::new();
        let mut other = entry("a", "r2", &[2.0], 11);
        other.inputs = RecordBatch::try_from_iter([(
            "z",
            Arc::new(Float64Array::from(vec![2.0])) as ArrayRef,
        )])
        .unwrap();
        let mut taken = vec![entry("a", "r1", &[1.0], 10), other];
        let config = LogConfig::default();
        buffer(&mut taken, &mut buffers, &mut sink, config, &NoCounters);
        flush_due(&mut buffers, &mut sink, config, &NoCounters, true);
        let chunks = chunks.lock().unwrap();
        let columns: Vec<Vec<String>> = chunks
            .iter()
            .map(|(_, b)| {
                b.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect()
            })
            .collect();
        assert_eq!(
            columns,
            [
                ["request_id", "row", "served_at", "x", "prediction"],
                ["request_id", "row", "served_at", "z", "prediction"],
            ]
        );
    }
}
