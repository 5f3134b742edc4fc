//! Dynamic batching: requests that arrive together run as one batch, as
//! Triton's dynamic batcher does.
//!
//! Worker threads (one per core by default) share a queue. A free worker
//! takes every queued request up to `max_rows`, waiting at most `max_delay`
//! for more when the batch is not full, runs each model version's rows as
//! one prediction, and answers every request with its slice. With no other
//! traffic a request runs at once (a zero delay by default); under load,
//! requests that queue while the workers are busy ride together. A batch
//! that fails is retried request by request, so one bad request never fails
//! the others it was batched with.

use crate::metrics::Metrics;
use crate::served::{PredictError, ServedModel};
use arrow_array::RecordBatch;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How requests are batched.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Most rows in one batch (a single larger request still runs alone).
    pub max_rows: usize,
    /// Longest a worker waits for more requests to fill a batch.
    pub max_delay: Duration,
    /// Worker threads running predictions.
    pub workers: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_rows: 64,
            max_delay: Duration::ZERO,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

struct Job {
    model: Arc<ServedModel>,
    rows: RecordBatch,
    reply: oneshot::Sender<Result<RecordBatch, PredictError>>,
}

/// The queue and its workers. Dropping it lets the workers finish the
/// queued requests and stop.
pub struct Batcher {
    queue: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the workers.
    pub fn start(config: BatchConfig, metrics: Arc<Metrics>) -> Self {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..config.workers.max(1) {
            let jobs = jobs.clone();
            let metrics = metrics.clone();
            std::thread::Builder::new()
                .name(format!("sluice-predict-{i}"))
                .spawn(move || work(&jobs, config, &metrics))
                .expect("a worker thread can be started");
        }
        Batcher { queue }
    }

    /// Predicts for `rows` with `model`, in whatever batch it lands in.
    pub async fn predict(
        &self,
        model: Arc<ServedModel>,
        rows: RecordBatch,
    ) -> Result<RecordBatch, PredictError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { model, rows, reply })
            .expect("the workers outlive the batcher's handle");
        answer.await.expect("a worker answers every job it takes")
    }
}

fn work(jobs: &Mutex<mpsc::Receiver<Job>>, config: BatchConfig, metrics: &Metrics) {
    loop {
        let batch = {
            let jobs = jobs.lock().unwrap();
            match take_batch(&jobs, config) {
                Some(b) => b,
                None => return,
            }
        };
        run(batch, metrics);
    }
}

/// The next batch: blocks for a first job, then takes what is queued (and,
/// with a delay, what arrives in time) up to `max_rows`. `None` when the
/// queue is closed and empty.
fn take_batch(jobs: &mpsc::Receiver<Job>, config: BatchConfig) -> Option<Vec<Job>> {
    let first = jobs.recv().ok()?;
    let mut rows = first.rows.num_rows();
    let mut batch = vec![first];
    let deadline = Instant::now() + config.max_delay;
    while rows < config.max_rows {
        let next = match jobs.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match jobs.recv_timeout(left) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        rows += next.rows.num_rows();
        batch.push(next);
    }
    Some(batch)
}

/// Runs the jobs of each model version as one prediction.
fn run(mut jobs: Vec<Job>, metrics: &Metrics) {
    while !jobs.is_empty() {
        let model = jobs[0].model.clone();
        let (same, rest): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|j| Arc::ptr_eq(&j.model, &model));
        jobs = rest;
        run_group(&model, same, metrics);
    }
}

fn run_group(model: &ServedModel, jobs: Vec<Job>, metrics: &Metrics) {
    if jobs.len() > 1 {
        let schema = jobs[0].rows.schema();
        let together = arrow_select::concat::concat_batches(&schema, jobs.iter().map(|j| &j.rows));
        if let Ok(together) = together {
            metrics.batch(&model.name, model.version, together.num_rows());
            if let Ok(out) = model.predict(&together) {
                let mut offset = 0;
                for job in jobs {
                    let n = job.rows.num_rows();
                    let _ = job.reply.send(Ok(out.slice(offset, n)));
                    offset += n;
                }
                return;
            }
        }
    }
    // One request, or a batch that failed as a whole: each on its own, so
    // that an error is the answer of the request that caused it.
    for job in jobs {
        metrics.batch(&model.name, model.version, job.rows.num_rows());
        let _ = job.reply.send(model.predict(&job.rows));
    }
}
