//! Dynamic batching: requests that arrive together run as one batch, as
//! Triton's dynamic batcher does.
//!
//! Two lanes, by request size:
//! - **Small requests** (fewer rows than `max_rows`, with no `max_delay`)
//!   are predicted on the async thread that received them, with no hand-off
//!   to another thread: a request joins the lane's queue, lets the tasks
//!   that became ready with it run (so their requests join too), and then
//!   the first request to find the lane free starts a runner: a task of
//!   its own on the same thread that predicts a batch of everything queued,
//!   answers each request, and goes on with what queued meanwhile until
//!   the queue is empty. Waiting requests are woken only by their answer.
//!   A one-row prediction takes microseconds; waking a worker thread and
//!   being woken back cost more than that, twice.
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
use crate::signature::SharedNumbers;
use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, RecordBatch, RecordBatchOptions};
use arrow_schema::ArrowError;
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
            workers: crate::one_per_core(),
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

    /// The small-request lane: queues `job`; when no batch is running,
    /// starts a runner that takes batches of what is queued until the
    /// queue is empty; then waits for the batch that answers it.
    async fn predict_here(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<RecordBatch, PredictError>>,
    ) -> Result<RecordBatch, PredictError> {
        self.here.push(job);
        // The tasks woken with this one (other connections' requests that
        // arrived together) run first and queue theirs: one batch for all.
        tokio::task::yield_now().await;
        if let Some(batch) = self.here.take(self.config.max_rows) {
            start_runner(self.here.clone(), batch, self.config, self.metrics.clone());
        }
        answer.await.unwrap_or_else(|_| Err(lost()))
    }
}

/// Runs `batch`, then each batch queued meanwhile, until the queue is
/// empty, in a task of its own on this thread (it runs next): a batch
/// holds other requests, so it must finish even if the request that
/// started it is given up (its client gone, its time out). Requests that
/// queue while a batch runs ride in the next one without being woken to
/// start it.
fn start_runner(lane: Arc<Lane>, batch: Vec<Job>, config: BatchConfig, metrics: Arc<Metrics>) {
    tokio::spawn(async move {
        let running = Running {
            lane: &lane,
            config,
            metrics: &metrics,
        };
        let mut batch = batch;
        loop {
            run_here(batch, &metrics).await;
            if lane.free_if_empty() {
                break;
            }
            // Requests queued: the thread's other tasks (its connections,
            // whose requests join them) run before the next batch.
            tokio::task::yield_now().await;
            batch = lane.next(config.max_rows);
        }
        std::mem::forget(running);
    });
}

/// The answer of a request whose batch was lost (a prediction panicked).
fn lost() -> PredictError {
    PredictError::Lost
}

/// The small-request lane: its queue, and whether a runner is taking
/// batches from it. Generic over what is queued only so that its rules
/// can be tested without models.
struct Lane<J = Job> {
    queue: Mutex<Queued<J>>,
}

impl<J> Default for Lane<J> {
    fn default() -> Self {
        Lane {
            queue: Mutex::new(Queued {
                jobs: Vec::new(),
                running: false,
            }),
        }
    }
}

struct Queued<J> {
    jobs: Vec<J>,
    running: bool,
}

/// Something queued in a lane: a request of some rows.
trait Rows {
    fn rows(&self) -> usize;
}

impl Rows for Job {
    fn rows(&self) -> usize {
        self.rows.num_rows()
    }
}

impl<J: Rows> Lane<J> {
    /// Queues a request.
    fn push(&self, job: J) {
        self.queue.lock().unwrap().jobs.push(job);
    }

    /// The next batch, marking the lane busy; `None` when a runner has it
    /// or nothing is queued.
    fn take(&self, max_rows: usize) -> Option<Vec<J>> {
        let mut q = self.queue.lock().unwrap();
        if q.running || q.jobs.is_empty() {
            return None;
        }
        q.running = true;
        Some(q.next_batch(max_rows))
    }

    /// For the runner, whose batch has ended: true, the lane marked free,
    /// when nothing is queued. One look under the lock, so a request
    /// queued meanwhile either is seen here (and rides in the runner's
    /// next batch) or finds the lane free and starts a runner itself.
    fn free_if_empty(&self) -> bool {
        let mut q = self.queue.lock().unwrap();
        q.running = !q.jobs.is_empty();
        !q.running
    }

    /// For the runner: the next batch of what is queued (only a runner
    /// takes while it holds the lane, so what it saw queued is still
    /// there).
    fn next(&self, max_rows: usize) -> Vec<J> {
        self.queue.lock().unwrap().next_batch(max_rows)
    }

    /// Marks the lane free whatever it held (its runner is gone).
    fn release(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).running = false;
    }
}

impl<J: Rows> Queued<J> {
    /// Queued jobs up to `max_rows` rows (at least one), oldest first.
    fn next_batch(&mut self, max_rows: usize) -> Vec<J> {
        let mut rows = 0;
        let n = self
            .jobs
            .iter()
            .take_while(|j| {
                let fits = rows == 0 || rows + j.rows() <= max_rows;
                rows += j.rows();
                fits
            })
            .count();
        self.jobs.drain(..n).collect()
    }
}

/// A runner's hold on its lane. Forgotten when the runner ends normally
/// (it marked the lane free itself); dropped only when its task panics or
/// is cancelled mid-batch, and then the lane is marked free and a new
/// runner takes what is queued, so those requests are still answered.
struct Running<'a> {
    lane: &'a Arc<Lane>,
    config: BatchConfig,
    metrics: &'a Arc<Metrics>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.lane.release();
        // Outside a runtime (none to spawn on), taking a batch would only
        // mark the lane busy for good.
        if tokio::runtime::Handle::try_current().is_ok()
            && let Some(batch) = self.lane.take(self.config.max_rows)
        {
            start_runner(self.lane.clone(), batch, self.config, self.metrics.clone());
        }
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
    let together = join(jobs.iter().map(|j| &j.rows)).ok()?;
    metrics.batch(&model.name, model.version, together.num_rows());
    Some(together)
}

/// Tables of one schema as one table. Float64 columns without nulls are
/// copied into one buffer that each of them slices (one allocation for
/// all of them; Arrow's concatenation makes four per column, 120 for a
/// batch of a thirty-column model); other columns are concatenated.
fn join<'a>(
    tables: impl Iterator<Item = &'a RecordBatch> + Clone,
) -> Result<RecordBatch, ArrowError> {
    let mut all = tables.clone().peekable();
    let schema = match all.peek() {
        Some(first) => first.schema(),
        None => return Err(ArrowError::InvalidArgumentError("no tables to join".into())),
    };
    if all
        .clone()
        .any(|t| !Arc::ptr_eq(t.schema_ref(), &schema) && *t.schema_ref() != schema)
    {
        return Err(ArrowError::InvalidArgumentError(
            "the tables' schemas differ".into(),
        ));
    }
    let rows: usize = all.map(RecordBatch::num_rows).sum();
    let plain = |i: usize| {
        tables.clone().all(|t| {
            t.column(i)
                .as_primitive_opt::<Float64Type>()
                .is_some_and(|c| c.null_count() == 0)
        })
    };
    let mut flat: Vec<bool> = (0..schema.fields().len()).map(plain).collect();
    let mut shared = SharedNumbers::new(rows, flat.iter().filter(|&&f| f).count());
    for (i, flat) in flat.iter_mut().enumerate().filter(|(_, f)| **f) {
        let values = tables.clone().flat_map(|t| {
            let column = t.column(i).as_primitive::<Float64Type>();
            column.values().iter().map(|&v| Some(Some(v)))
        });
        *flat = shared.push(values);
    }
    let mut shared = shared.columns();
    let columns = flat
        .iter()
        .enumerate()
        .map(|(i, &flat)| match flat.then(|| shared.next()).flatten() {
            Some(column) => Ok(column),
            None => {
                let parts: Vec<&dyn Array> = tables.clone().map(|t| t.column(i).as_ref()).collect();
                arrow_select::concat::concat(&parts)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        schema,
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    /// Two float columns (`x` nullable), an integer and a text column.
    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("y", DataType::Float64, false),
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]))
    }

    fn table(schema: &Arc<Schema>, x: Vec<Option<f64>>, y: Vec<f64>, n: Vec<i64>) -> RecordBatch {
        let text: Vec<String> = n.iter().map(|v| format!("t{v}")).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from(x)),
                Arc::new(Float64Array::from(y)),
                Arc::new(Int64Array::from(n)),
                Arc::new(StringArray::from(text)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_join_holds_the_rows_of_its_tables_in_order_as_arrow_concatenates_them() {
        let schema = schema();
        let parts = [
            table(
                &schema,
                vec![Some(1.0), Some(2.0)],
                vec![0.5, 1.5],
                vec![1, 2],
            ),
            table(&schema, vec![None], vec![2.5], vec![3]),
            // A slice: its values start past its buffer's start.
            table(
                &schema,
                vec![Some(4.0), Some(5.0), Some(6.0)],
                vec![3.5, 4.5, 5.5],
                vec![4, 5, 6],
            )
            .slice(1, 2),
        ];
        let joined = join(parts.iter()).unwrap();
        let arrow = arrow_select::concat::concat_batches(&schema, &parts).unwrap();
        assert_eq!(joined, arrow);
        assert_eq!(joined.num_rows(), 5);
        let y = joined.column(1).as_primitive::<Float64Type>();
        assert_eq!(y.values().to_vec(), [0.5, 1.5, 2.5, 4.5, 5.5]);
        // Float columns without nulls in any part share one allocation;
        // `x` has a null in one part, so Arrow concatenated it.
        let x = joined.column(0).as_primitive::<Float64Type>();
        assert_eq!(x.null_count(), 1);
        assert_ne!(x.values().inner().data_ptr(), y.values().inner().data_ptr());
        let two = join(parts[..1].iter().chain(&parts[2..])).unwrap();
        let (x2, y2) = (
            two.column(0).as_primitive::<Float64Type>(),
            two.column(1).as_primitive::<Float64Type>(),
        );
        assert_eq!(x2.values().to_vec(), [1.0, 2.0, 5.0, 6.0]);
        assert_eq!(
            x2.values().inner().data_ptr(),
            y2.values().inner().data_ptr()
        );
        assert_eq!(y2.values().as_ptr(), x2.values().as_ptr().wrapping_add(4));
    }

    impl Rows for usize {
        fn rows(&self) -> usize {
            *self
        }
    }

    #[test]
    fn the_first_request_to_find_the_lane_free_takes_a_batch_of_all_queued() {
        let lane = Lane::<usize>::default();
        assert_eq!(lane.take(64), None, "nothing queued");
        for rows in [1, 2, 1] {
            lane.push(rows);
        }
        assert_eq!(lane.take(64), Some(vec![1, 2, 1]));
        // A runner holds the lane: newcomers queue for its next batch.
        lane.push(3);
        assert_eq!(lane.take(64), None);
        assert!(!lane.free_if_empty(), "a request is queued");
        assert_eq!(lane.take(64), None, "the runner still holds the lane");
        assert_eq!(lane.next(64), vec![3]);
        assert!(lane.free_if_empty());
        // Free again: the next request starts a runner.
        lane.push(1);
        assert_eq!(lane.take(64), Some(vec![1]));
        lane.release();
        lane.push(2);
        assert_eq!(lane.take(64), Some(vec![2]), "released by a lost runner");
    }

    #[test]
    fn a_batch_holds_at_most_max_rows_unless_one_request_is_larger() {
        let lane = Lane::<usize>::default();
        for rows in [3, 3, 3, 100, 1] {
            lane.push(rows);
        }
        assert_eq!(lane.take(7), Some(vec![3, 3]));
        assert_eq!(lane.next(7), vec![3]);
        assert_eq!(lane.next(7), vec![100], "alone, not refused");
        assert_eq!(lane.next(7), vec![1]);
        assert!(lane.free_if_empty());
    }

    #[test]
    fn tables_of_different_schemas_are_not_joined() {
        let a = table(&schema(), vec![Some(1.0)], vec![2.0], vec![3]);
        let b = a.project(&[0, 1]).unwrap();
        let e = join([&a, &b].into_iter()).unwrap_err();
        assert!(e.to_string().contains("schemas differ"), "{e}");
        assert!(join(std::iter::empty::<&RecordBatch>()).is_err());
    }
}
