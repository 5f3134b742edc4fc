//! Where a step's table work runs: [`Session`].
//!
//! Table operations run on a process-wide pool of compute threads (one per
//! core), never on the thread that drives the step's WebAssembly, so a step's
//! time limit can stop waiting for them and abandon the work: dropping the
//! future an operation returns cancels it. Each step gets its own
//! [`Budget`] with the step's limit; the [`Ledger`], the guest's linear
//! memory and (with the `operators` feature) every query the step runs
//! reserve in it, and queries spill to a temporary folder instead of
//! failing where the engine can (sorts, aggregations).

use crate::memory::{Budget, Ledger};
#[cfg(feature = "operators")]
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
#[cfg(feature = "operators")]
use datafusion::execution::memory_pool::{
    MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool, human_readable_size,
};
#[cfg(feature = "operators")]
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
#[cfg(feature = "operators")]
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

/// A step's place to compute on tables: its memory budget and ledger, and
/// (with the `operators` feature) a query engine configured with them.
#[derive(Clone)]
pub struct Session {
    budget: Arc<Budget>,
    ledger: Ledger,
    /// The budget as the query engine sees it.
    #[cfg(feature = "operators")]
    pool: Arc<dyn MemoryPool>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("limit", &self.limit())
            .field("reserved", &self.reserved())
            .finish()
    }
}

impl Session {
    /// A session whose budget allows `memory_limit` bytes in all.
    pub fn new(memory_limit: u64) -> Self {
        Session::with_budget(Budget::new(memory_limit))
    }

    /// A session with no limit (tools outside a step's sandbox, tests).
    pub fn unlimited() -> Self {
        Session::with_budget(Budget::unlimited())
    }

    fn with_budget(budget: Arc<Budget>) -> Self {
        // Queries see the same counter; a limited one names its three
        // largest consumers when it refuses, as DataFusion's own pools do.
        #[cfg(feature = "operators")]
        let pool: Arc<dyn MemoryPool> = if budget.is_unlimited() {
            Arc::new(BudgetPool(budget.clone()))
        } else {
            Arc::new(TrackConsumersPool::new(
                BudgetPool(budget.clone()),
                NonZeroUsize::new(3).expect("3 is not zero"),
            ))
        };
        Session {
            ledger: Ledger::new(&budget),
            budget,
            #[cfg(feature = "operators")]
            pool,
        }
    }

    /// The step's budget: everything held for the step reserves here (the
    /// sandbox's limiter reserves the guest's linear memory in it).
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The ledger of tables held for the step.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The memory limit, in bytes.
    pub fn limit(&self) -> u64 {
        self.budget.limit()
    }

    /// Bytes reserved now: the step's linear memory (when its limiter
    /// reserves here), tables, query state.
    pub fn reserved(&self) -> u64 {
        self.budget.reserved()
    }

    /// A query engine context over this session's budget, spilling to the
    /// system's temporary folder, with **one partition**.
    ///
    /// A parallel plan merges its partitions in the order they finish, so a
    /// `GROUP BY` or join would give its rows in a different order, and its
    /// float sums different last bits, from run to run — and a step's cache
    /// key must name one result. One partition makes every query give the
    /// same rows and bits each time. (The operations that do not go
    /// through the engine — reading files, `compute`, `split`, `describe`,
    /// `take` — still use every core, in fixed chunks.)
    #[cfg(feature = "operators")]
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

/// A [`Budget`] as DataFusion's memory pool: the greedy policy of
/// DataFusion's `GreedyMemoryPool` over the step's one counter, with the
/// same refusal message (`Failed to allocate additional …`, which
/// [`crate::ops`] reads the requested size from), so that queries spill and
/// fail under the same limit as the step's tables and linear memory.
#[cfg(feature = "operators")]
#[derive(Debug)]
struct BudgetPool(Arc<Budget>);

#[cfg(feature = "operators")]
impl MemoryPool for BudgetPool {
    fn name(&self) -> &str {
        if self.0.is_unlimited() {
            "unbounded"
        } else {
            "greedy"
        }
    }

    fn grow(&self, _reservation: &MemoryReservation, additional: usize) {
        self.0.add(additional);
    }

    fn shrink(&self, _reservation: &MemoryReservation, shrink: usize) {
        self.0.sub(shrink);
    }

    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        self.0.try_add(additional).map_err(|e| {
            datafusion::common::resources_datafusion_err!(
                "Failed to allocate additional {} for {} with {} already allocated for this reservation - {} remain available for the total memory pool: {}",
                human_readable_size(additional),
                reservation.consumer().name(),
                human_readable_size(reservation.size()),
                human_readable_size(e.available),
                self
            )
        })
    }

    fn reserved(&self) -> usize {
        usize::try_from(self.0.reserved()).unwrap_or(usize::MAX)
    }

    fn memory_limit(&self) -> MemoryLimit {
        if self.0.is_unlimited() {
            MemoryLimit::Infinite
        } else {
            MemoryLimit::Finite(usize::try_from(self.0.limit()).unwrap_or(usize::MAX))
        }
    }
}

#[cfg(feature = "operators")]
impl std::fmt::Display for BudgetPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = human_readable_size(MemoryPool::reserved(self));
        if self.0.is_unlimited() {
            write!(f, "{}(used: {used})", self.name())
        } else {
            write!(
                f,
                "{}(used: {used}, pool_size: {})",
                self.name(),
                human_readable_size(usize::try_from(self.0.limit()).unwrap_or(usize::MAX))
            )
        }
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

#[cfg(all(test, feature = "operators"))]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryConsumer};

    #[test]
    fn queries_reserve_in_the_budget_and_are_refused_as_by_datafusions_own_pool() {
        let session = Session::new(1000);
        let mut held = session.budget().reservation("linear memory");
        held.try_grow(600).unwrap();
        let query = MemoryConsumer::new("ExternalSorter[0]").register(&session.pool);
        query.try_grow(300).unwrap();
        assert_eq!(session.reserved(), 900, "one counter for both");

        // DataFusion's own pool in the same state refuses with the same words.
        let greedy: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(
            GreedyMemoryPool::new(1000),
            NonZeroUsize::new(3).unwrap(),
        ));
        let other = MemoryConsumer::new("linear memory").register(&greedy);
        other.try_grow(600).unwrap();
        let theirs = MemoryConsumer::new("ExternalSorter[0]").register(&greedy);
        theirs.try_grow(300).unwrap();
        let ours = query.try_grow(200).unwrap_err().to_string();
        let want = theirs.try_grow(200).unwrap_err().to_string();
        // The same words from "Error:" on; before it, the top consumers,
        // of which ours lists the engine's own only (theirs also names
        // "linear memory", which reserves in the budget, not the engine).
        let error = |m: &str| m.split("Error: ").nth(1).unwrap().to_string();
        assert_eq!(error(&ours), error(&want));
        assert_eq!(
            error(&ours),
            "Failed to allocate additional 200.0 B for ExternalSorter[0] with 300.0 B already \
             allocated for this reservation - 100.0 B remain available for the total memory \
             pool: greedy(used: 900.0 B, pool_size: 1000.0 B)"
        );
        // (Consumer ids come from a process-wide counter.)
        let (head, tail) = ours.split_once('#').unwrap();
        assert_eq!(
            head,
            "Resources exhausted: Additional allocation failed for ExternalSorter[0] with top \
             memory consumers (across reservations) as:\n  ExternalSorter[0]"
        );
        assert!(
            tail.contains("(can spill: false) consumed 300.0 B, peak 300.0 B.\nError: "),
            "{ours}"
        );
        assert_eq!(session.reserved(), 900, "a refusal reserves nothing");
        drop(query);
        assert_eq!(session.reserved(), 600);
        drop(held);
        assert_eq!(session.reserved(), 0);
    }

    #[test]
    fn an_unlimited_sessions_queries_are_never_refused() {
        let session = Session::unlimited();
        assert_eq!(session.limit(), u64::MAX);
        let query = MemoryConsumer::new("q").register(&session.pool);
        query.try_grow(1 << 40).unwrap();
        assert_eq!(session.reserved(), 1 << 40);
        assert!(matches!(session.pool.memory_limit(), MemoryLimit::Infinite));
    }
}
