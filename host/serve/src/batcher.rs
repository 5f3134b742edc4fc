//! Dynamic batching: requests that arrive together run as one batch, as
//! Triton's dynamic batcher does.
//!
//! Two lanes, by request size:
//! - **Small requests** (fewer rows than `max_rows`, with no `max_delay`)
//!   are predicted on the async thread that received them, with no hand-off
//!   to another thread: a request joins the lane's queue, lets the tasks
//!   that became ready with it run (so their requests join too), and then
//!   the first request to find the lane free starts a batch of everything
//!   queued, in a task of its own on the same thread, which answers them
//!   all. While a batch runs, newcomers queue and
//!   ride in the next one. A one-row prediction takes microseconds; waking
//!   a worker thread and being woken back cost more than that, twice.
//! - **Large requests**, and all requests when `max_delay` is set, go to
//!   worker threads (one per core by default) that share a queue. A free
//!   worker takes every queued request up to `max_rows`, waiting at most
//!   `max_delay` for more when the batch is not full. A large prediction
//!   would stall every connection of the async thread it ran on.
//!
//! Either way each model version's rows run as one prediction and every
//! request is answered with its slice. A batch that fails is retried
//! request by request, so one bad request never fails the others it was
//! batched with.

use crate::metrics::Metrics;
use crate::served::{PredictError, ServedModel};
use arrow_array::RecordBatch;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot};

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

/// The two lanes. Dropping it lets the workers finish the queued requests
/// and stop.
pub struct Batcher {
    queue: mpsc::Sender<Job>,
    here: Arc<Lane>,
    config: BatchConfig,
    metrics: Arc<Metrics>,
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
        Batcher {
            queue,
            here: Arc::default(),
            config,
            metrics,
        }
    }

    /// Predicts for `rows` with `model`, in whatever batch it lands in.
    pub async fn predict(
        &self,
        model: Arc<ServedModel>,
        rows: RecordBatch,
    ) -> Result<RecordBatch, PredictError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { model, rows, reply };
        if job.rows.num_rows() < self.config.max_rows && self.config.max_delay.is_zero() {
            return self.predict_here(job, answer).await;
        }
        self.queue
            .send(job)
            .expect("the workers outlive the batcher's handle");
        answer.await.unwrap_or_else(|_| Err(lost()))
    }

    /// The small-request lane: queues `job`, then starts a batch of what is
    /// queued when the lane is free, and waits for the batch that answers
    /// it.
    async fn predict_here(
        &self,
        job: Job,
        mut answer: oneshot::Receiver<Result<RecordBatch, PredictError>>,
    ) -> Result<RecordBatch, PredictError> {
        self.here.queue.lock().unwrap().jobs.push(job);
        // The tasks woken with this one (other connections' requests that
        // arrived together) run first and queue theirs: one batch for all.
        tokio::task::yield_now().await;
        loop {
            // Registered before looking, so a batch that ends between the
            // look and the wait still wakes this task.
            let free = self.here.free.notified();
            tokio::pin!(free);
            free.as_mut().enable();
            if let Some(batch) = self.here.take(self.config.max_rows) {
                // A task of its own on this thread (it runs next): the batch
                // holds other requests, so it must finish even if this
                // request is given up (its client gone, its time out).
                let (lane, metrics) = (self.here.clone(), self.metrics.clone());
                tokio::spawn(async move {
                    let running = Running(&lane);
                    run_here(batch, &metrics).await;
                    drop(running);
                });
            }
            tokio::select! {
                result = &mut answer => return result.unwrap_or_else(|_| Err(lost())),
                () = free => {}
            }
        }
    }
}

/// The answer of a request whose batch was lost (a prediction panicked).
fn lost() -> PredictError {
    PredictError::Lost
}

/// The small-request lane: its queue, and a signal that the batch running
/// has ended.
#[derive(Default)]
struct Lane {
    queue: Mutex<Queued>,
    free: Notify,
}

#[derive(Default)]
struct Queued {
    jobs: Vec<Job>,
    running: bool,
}

impl Lane {
    /// The next batch (queued jobs up to `max_rows` rows, at least one),
    /// marking the lane busy; `None` when a batch is running or nothing is
    /// queued.
    fn take(&self, max_rows: usize) -> Option<Vec<Job>> {
        let mut q = self.queue.lock().unwrap();
        if q.running || q.jobs.is_empty() {
            return None;
        }
        q.running = true;
        let mut rows = 0;
        let n = q
            .jobs
            .iter()
            .take_while(|j| {
                let fits = rows == 0 || rows + j.rows.num_rows() <= max_rows;
                rows += j.rows.num_rows();
                fits
            })
            .count();
        Some(q.jobs.drain(..n).collect())
    }
}

/// Marks the lane free again when the batch ends (or its task panics),
/// waking the requests that wait for it.
struct Running<'a>(&'a Lane);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.queue.lock().unwrap().running = false;
        self.0.free.notify_waiters();
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
    while let Some((model, same)) = next_group(&mut jobs) {
        if let Some(together) = joined(&model, &same, metrics)
            && let Ok(out) = model.predict(&together)
        {
            answer_slices(same, &out);
            continue;
        }
        // One request, or a batch that failed as a whole: each on its own,
        // so that an error is the answer of the request that caused it.
        for job in same {
            metrics.batch(&model.name, model.version, job.rows.num_rows());
            let _ = job.reply.send(model.predict(&job.rows));
        }
    }
}

/// [`run`] on the calling task.
async fn run_here(mut jobs: Vec<Job>, metrics: &Metrics) {
    while let Some((model, same)) = next_group(&mut jobs) {
        if let Some(together) = joined(&model, &same, metrics)
            && let Ok(out) = model.predict_here(&together).await
        {
            answer_slices(same, &out);
            continue;
        }
        for job in same {
            metrics.batch(&model.name, model.version, job.rows.num_rows());
            let _ = job.reply.send(model.predict_here(&job.rows).await);
        }
    }
}

/// Takes the jobs of the first job's model version out of `jobs`.
fn next_group(jobs: &mut Vec<Job>) -> Option<(Arc<ServedModel>, Vec<Job>)> {
    let model = jobs.first()?.model.clone();
    let (same, rest) = std::mem::take(jobs)
        .into_iter()
        .partition(|j| Arc::ptr_eq(&j.model, &model));
    *jobs = rest;
    Some((model, same))
}

/// The rows of several jobs as one table, counted as a batch; `None` for
/// a single job, or jobs whose tables do not join.
fn joined(model: &ServedModel, jobs: &[Job], metrics: &Metrics) -> Option<RecordBatch> {
    if jobs.len() < 2 {
        return None;
    }
    let together = arrow_select::concat::concat_batches(
        jobs[0].rows.schema_ref(),
        jobs.iter().map(|j| &j.rows),
    )
    .ok()?;
    metrics.batch(&model.name, model.version, together.num_rows());
    Some(together)
}

/// Answers each job with its rows' slice of `out`.
fn answer_slices(jobs: Vec<Job>, out: &RecordBatch) {
    let mut offset = 0;
    for job in jobs {
        let n = job.rows.num_rows();
        let _ = job.reply.send(Ok(out.slice(offset, n)));
        offset += n;
    }
}
