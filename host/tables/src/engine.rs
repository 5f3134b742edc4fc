//! Where a step's table work runs: [`Session`].
//!
//! Table operations run on a process-wide pool of compute threads (one per
//! core), never on the thread that drives the step's WebAssembly, so a step's
//! time limit can stop waiting for them and abandon the work: dropping the
//! future an operation returns cancels it. Each step gets its own
//! [`MemoryPool`] with the step's limit; the [`Ledger`] and every query the
//! step runs reserve in it, and queries spill to a temporary folder instead
//! of failing where the engine can (sorts, aggregations).

use crate::memory::Ledger;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryPool, TrackConsumersPool, UnboundedMemoryPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock};

/// The process's compute threads for table work.
static COMPUTE: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism()
        .map(NonZeroUsize::get)
        .unwrap_or(2);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("sluice-tables")
        .build()
        .expect("the table compute threads can start")
});

/// The number of compute threads (and of partitions a query is split into).
pub fn parallelism() -> usize {
    std::thread::available_parallelism()
        .map(NonZeroUsize::get)
        .unwrap_or(2)
}

/// A step's place to compute on tables: its memory pool and ledger, and a
/// query engine configured with them.
#[derive(Clone)]
pub struct Session {
    pool: Arc<dyn MemoryPool>,
    ledger: Ledger,
    limit: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("limit", &self.limit)
            .field("reserved", &self.pool.reserved())
            .finish()
    }
}

impl Session {
    /// A session whose pool allows `memory_limit` bytes in all.
    pub fn new(memory_limit: u64) -> Self {
        let pool: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(
            GreedyMemoryPool::new(usize::try_from(memory_limit).unwrap_or(usize::MAX)),
            NonZeroUsize::new(3).expect("3 is not zero"),
        ));
        Session {
            ledger: Ledger::new(pool.clone(), memory_limit),
            pool,
            limit: memory_limit,
        }
    }

    /// A session with no limit (tools outside a step's sandbox, tests).
    pub fn unlimited() -> Self {
        let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        Session {
            ledger: Ledger::new(pool.clone(), u64::MAX),
            pool,
            limit: u64::MAX,
        }
    }

    /// The step's pool: everything held for the step reserves here.
    pub fn pool(&self) -> &Arc<dyn MemoryPool> {
        &self.pool
    }

    /// The ledger of tables held for the step.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The memory limit, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes reserved now: the step's linear memory (when its limiter
    /// reserves here), tables, query state.
    pub fn reserved(&self) -> u64 {
        self.pool.reserved() as u64
    }

    /// A query engine context over this session's pool, spilling to the
    /// system's temporary folder, with **one partition**.
    ///
    /// A parallel plan merges its partitions in the order they finish, so a
    /// `GROUP BY` or join would give its rows in a different order, and its
    /// float sums different last bits, from run to run — and a step's cache
    /// key must name one result. One partition makes every query give the
    /// same rows and bits each time. (The operations that do not go
    /// through the engine — reading files, `compute`, `split`, `describe`,
    /// `take` — still use every core, in fixed chunks.)
    pub fn context(&self) -> SessionContext {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(self.pool.clone())
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::OsTmpDirectory),
            )
            .build_arc()
            .expect("a runtime environment with a pool and the OS temp folder builds");
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(64 * 1024)
            .with_information_schema(false);
        SessionContext::new_with_config_rt(config, runtime)
    }

    /// Runs `work` (a query) on the compute threads; dropping the returned
    /// future cancels it.
    pub async fn run<F, T>(&self, work: F) -> T
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let mut task = Abort(COMPUTE.spawn(work));
        match (&mut task.0).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Runs `work` (CPU-bound, synchronous) on the compute threads; dropping
    /// the returned future stops waiting for it.
    pub async fn compute<F, T>(&self, work: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let mut task = Abort(COMPUTE.spawn_blocking(work));
        match (&mut task.0).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Runs `work` to completion from synchronous code (tests, tools): not
    /// from inside an async task.
    pub fn block_on<F, T>(&self, work: F) -> T
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        futures::executor::block_on(self.run(work))
    }
}

/// Aborts the task when dropped, so an abandoned operation stops.
struct Abort<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Abort<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// CPU seconds this process has used (Linux; 0 elsewhere): a measure that
/// other processes on a busy machine do not inflate (the speed tests).
#[cfg(test)]
pub(crate) fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |p| p.1);
    let f: Vec<f64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}
