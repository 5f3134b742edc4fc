//! Counting what the host holds for a step against the step's memory limit.
//!
//! A step's limit covers its own linear memory *and* every byte the host
//! holds on its behalf: the tables it was given or created, builders, query
//! state, outputs not yet stored. All of it is reserved in one DataFusion
//! [`MemoryPool`] per step (so queries spill under the same limit), and the
//! [`Ledger`] reserves each Arrow buffer once however many live tables share
//! it (a `select` or `slice` costs nothing until the original is dropped).

use crate::table::Table;
use arrow_array::Array;
use arrow_data::ArrayData;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The host could not hold more for the step without going over its limit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "holding {} more for {what} would exceed the memory limit of {} (already held: {})",
    human(*requested),
    human(*limit),
    human(*held)
)]
pub struct MemoryError {
    /// What the memory was for (`the table read from port data`, `a sort`).
    pub what: String,
    /// The bytes asked for.
    pub requested: u64,
    /// The bytes already reserved in the step's pool (its linear memory
    /// and everything the host holds for it).
    pub held: u64,
    /// The step's limit.
    pub limit: u64,
}

/// `n` bytes in binary units (`1.5 GiB`).
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The Arrow buffers a step's live tables hold, each reserved once in the
/// step's pool.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Mutex<Inner>>,
    limit: u64,
    pool: Arc<dyn MemoryPool>,
}

struct Inner {
    /// Allocation start → (its capacity, how many holds reference it).
    buffers: HashMap<usize, (usize, usize)>,
    reservation: MemoryReservation,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("held", &self.held())
            .field("limit", &self.limit)
            .finish()
    }
}

impl Ledger {
    /// A ledger reserving in `pool`, whose limit is `limit` bytes (for messages).
    pub fn new(pool: Arc<dyn MemoryPool>, limit: u64) -> Self {
        let reservation = MemoryConsumer::new("host-held tables").register(&pool);
        Ledger {
            inner: Arc::new(Mutex::new(Inner {
                buffers: HashMap::new(),
                reservation,
            })),
            limit,
            pool,
        }
    }

    /// Bytes the ledger holds (tables and raw holds), counted once per buffer.
    pub fn held(&self) -> u64 {
        self.inner.lock().unwrap().reservation.size() as u64
    }

    /// The step's limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Reserves the buffers of `table` not already held; `what` names it in
    /// the error if the limit does not allow it. The reservation lasts as
    /// long as the returned [`Hold`].
    pub fn hold(&self, what: &str, table: &Table) -> Result<Hold, MemoryError> {
        let mut buffers = Vec::new();
        for batch in table.batches() {
            for column in batch.columns() {
                collect_buffers(&column.to_data(), &mut buffers);
            }
        }
        let mut inner = self.inner.lock().unwrap();
        let mut new_bytes = 0usize;
        let mut seen = std::collections::HashSet::new();
        for &(ptr, cap) in &buffers {
            if !inner.buffers.contains_key(&ptr) && seen.insert(ptr) {
                new_bytes += cap;
            }
        }
        if let Err(_e) = inner.reservation.try_grow(new_bytes) {
            return Err(self.error(what, new_bytes as u64, &inner));
        }
        for &(ptr, cap) in &buffers {
            inner.buffers.entry(ptr).or_insert((cap, 0)).1 += 1;
        }
        Ok(Hold {
            ledger: Some(self.clone()),
            buffers: buffers.into_iter().map(|(p, _)| p).collect(),
            bytes: 0,
        })
    }

    /// Reserves `bytes` not tied to Arrow buffers (encoded outputs, copies
    /// on their way into the guest).
    pub fn hold_bytes(&self, what: &str, bytes: u64) -> Result<Hold, MemoryError> {
        let inner = self.inner.lock().unwrap();
        if inner.reservation.try_grow(bytes as usize).is_err() {
            return Err(self.error(what, bytes, &inner));
        }
        Ok(Hold {
            ledger: Some(self.clone()),
            buffers: Vec::new(),
            bytes: bytes as usize,
        })
    }

    fn error(&self, what: &str, requested: u64, _inner: &Inner) -> MemoryError {
        MemoryError {
            what: what.to_string(),
            requested,
            held: self.pool.reserved() as u64,
            limit: self.limit,
        }
    }

    fn release(&self, buffers: &[usize], bytes: usize) {
        let mut inner = self.inner.lock().unwrap();
        let mut freed = bytes;
        for ptr in buffers {
            if let Some(entry) = inner.buffers.get_mut(ptr) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    freed += entry.0;
                    inner.buffers.remove(ptr);
                }
            }
        }
        let freed = freed.min(inner.reservation.size());
        inner.reservation.shrink(freed);
    }
}

/// Every buffer of `data` and its children: (allocation start, capacity).
fn collect_buffers(data: &ArrayData, out: &mut Vec<(usize, usize)>) {
    for b in data.buffers() {
        out.push((b.data_ptr().as_ptr() as usize, b.capacity()));
    }
    if let Some(nulls) = data.nulls() {
        let b = nulls.buffer();
        out.push((b.data_ptr().as_ptr() as usize, b.capacity()));
    }
    for child in data.child_data() {
        collect_buffers(child, out);
    }
}

/// A reservation in a step's pool; released when dropped.
#[derive(Debug, Default)]
pub struct Hold {
    ledger: Option<Ledger>,
    buffers: Vec<usize>,
    bytes: usize,
}

impl Hold {
    /// A hold of nothing (for tables no step owns, such as a server's).
    pub fn none() -> Self {
        Hold::default()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(ledger) = self.ledger.take() {
            ledger.release(&self.buffers, self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Float64Array, RecordBatch};
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    fn table(n: usize) -> Table {
        let x: ArrayRef = Arc::new(Float64Array::from(vec![1.0; n]));
        Table::from_batch(RecordBatch::try_from_iter([("x", x)]).unwrap())
    }

    fn ledger(limit: usize) -> Ledger {
        Ledger::new(Arc::new(GreedyMemoryPool::new(limit)), limit as u64)
    }

    #[test]
    fn tables_sharing_buffers_are_counted_once_and_released_with_the_last_hold() {
        let l = ledger(1 << 20);
        let t = table(10_000);
        let a = l.hold("t", &t).unwrap();
        let once = l.held();
        assert!(once >= 80_000, "{once}");
        let b = l.hold("a slice of t", &t.slice(10, 100)).unwrap();
        assert_eq!(l.held(), once, "a slice shares t's buffer");
        drop(a);
        assert_eq!(l.held(), once, "the slice still holds the buffer");
        drop(b);
        assert_eq!(l.held(), 0);
    }

    #[test]
    fn a_hold_past_the_limit_is_refused_with_what_and_how_much() {
        let l = ledger(100_000);
        let (first, second) = (table(10_000), table(10_000));
        let _first = l.hold("first", &first).unwrap();
        let err = l.hold("the second table", &second).unwrap_err();
        assert_eq!(err.what, "the second table");
        assert_eq!(err.limit, 100_000);
        assert!(err.requested >= 80_000);
        assert!(
            err.to_string()
                .contains("would exceed the memory limit of 97.7 KiB")
        );
        let _bytes = l.hold_bytes("raw", 1_000).unwrap();
        assert!(l.hold_bytes("raw", 50_000).is_err());
    }
}
