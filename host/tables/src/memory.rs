//! Counting what the host holds for a step against the step's memory limit.
//!
//! A step's limit covers its own linear memory *and* every byte the host
//! holds on its behalf: the tables it was given or created, builders, query
//! state, outputs not yet stored. All of it is counted in one [`Budget`]
//! per step: the guest's linear memory and the [`Ledger`] through
//! [`Reservation`]s, and, in builds with the query engine (the `operators`
//! feature), every query through a DataFusion memory pool over the same
//! counter (so queries spill under the same limit). The [`Ledger`] reserves
//! each Arrow buffer once however many live tables share it (a `select` or
//! `slice` costs nothing until the original is dropped).

use crate::table::Table;
use arrow_array::Array;
use arrow_data::ArrayData;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A step's memory budget: one counter of reserved bytes and its limit.
///
/// The policy is first come, first served (DataFusion's
/// `GreedyMemoryPool`): a request is granted if it fits under the limit
/// with everything already reserved, and refused otherwise; giving bytes
/// back never fails. It needs no query engine, so the edge runtime, which
/// has none, counts a step's memory exactly as `sluice` does.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
}

/// A [`Budget`] refused a request: it would have gone past the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} more would exceed the limit ({} still available)",
    human(*requested as u64),
    human(*available as u64)
)]
pub struct Exhausted {
    /// The bytes asked for.
    pub requested: usize,
    /// The bytes the limit still allowed when the request was refused.
    pub available: usize,
}

impl Budget {
    /// A budget of `limit` bytes in all.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        })
    }

    /// A budget that refuses nothing (tools outside a step's sandbox, tests).
    pub fn unlimited() -> Arc<Self> {
        Budget::new(u64::MAX)
    }

    /// Whether this budget refuses nothing.
    pub fn is_unlimited(&self) -> bool {
        self.limit == usize::MAX
    }

    /// Bytes reserved now.
    pub fn reserved(&self) -> u64 {
        self.used.load(Ordering::Relaxed) as u64
    }

    /// The limit, in bytes (`u64::MAX` when unlimited).
    pub fn limit(&self) -> u64 {
        if self.is_unlimited() {
            u64::MAX
        } else {
            self.limit as u64
        }
    }

    /// Reserves `bytes` if they fit under the limit with what is already
    /// reserved; otherwise reserves nothing and says how much was left.
    pub fn try_add(&self, bytes: usize) -> Result<(), Exhausted> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&n| n <= self.limit)
            })
            .map(|_| ())
            .map_err(|used| Exhausted {
                requested: bytes,
                available: self.limit.saturating_sub(used),
            })
    }

    /// Reserves `bytes` whatever the limit (the query engine's `grow`, for
    /// memory it already holds).
    pub fn add(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Gives `bytes` back.
    pub fn sub(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A new, empty reservation in this budget for `name` (what it holds).
    pub fn reservation(self: &Arc<Self>, name: &'static str) -> Reservation {
        Reservation {
            budget: self.clone(),
            size: 0,
            name,
        }
    }
}

/// Bytes one holder (the guest's linear memory, the host-held tables) has
/// reserved in a [`Budget`]; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    size: usize,
    name: &'static str,
}

impl Reservation {
    /// Reserves `bytes` more if the budget allows it; otherwise nothing
    /// changes.
    pub fn try_grow(&mut self, bytes: usize) -> Result<(), Exhausted> {
        self.budget.try_add(bytes)?;
        self.size += bytes;
        Ok(())
    }

    /// Gives `bytes` back (at most what this reservation holds); never fails.
    pub fn shrink(&mut self, bytes: usize) {
        let bytes = bytes.min(self.size);
        self.budget.sub(bytes);
        self.size -= bytes;
    }

    /// Bytes this reservation holds.
    pub fn size(&self) -> usize {
        self.size
    }

    /// What this reservation holds bytes for.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The budget it reserves in.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.sub(self.size);
    }
}

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
    /// The bytes already reserved in the step's budget (its linear memory
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
/// step's budget.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Mutex<Inner>>,
    budget: Arc<Budget>,
}

struct Inner {
    /// Allocation start → (its capacity, how many holds reference it).
    buffers: HashMap<usize, (usize, usize), BuildHasherDefault<AddressHasher>>,
    reservation: Reservation,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("held", &self.held())
            .field("limit", &self.budget.limit())
            .finish()
    }
}

impl Ledger {
    /// A ledger reserving in `budget` (whose limit its errors name).
    pub fn new(budget: &Arc<Budget>) -> Self {
        Ledger {
            inner: Arc::new(Mutex::new(Inner {
                buffers: HashMap::default(),
                reservation: budget.reservation("host-held tables"),
            })),
            budget: budget.clone(),
        }
    }

    /// Bytes the ledger holds (tables and raw holds), counted once per buffer.
    pub fn held(&self) -> u64 {
        self.inner.lock().unwrap().reservation.size() as u64
    }

    /// The step's limit.
    pub fn limit(&self) -> u64 {
        self.budget.limit()
    }

    /// Reserves the buffers of `table` not already held; `what` names it in
    /// the error if the limit does not allow it. The reservation lasts as
    /// long as the returned [`Hold`].
    pub fn hold(&self, what: &str, table: &Table) -> Result<Hold, MemoryError> {
        let mut buffers = Vec::new();
        for batch in table.batches() {
            for column in batch.columns() {
                array_buffers(column.as_ref(), &mut buffers);
            }
        }
        // Each buffer once, however many columns share it.
        buffers.sort_unstable_by_key(|&(ptr, _)| ptr);
        buffers.dedup_by_key(|&mut (ptr, _)| ptr);
        let mut inner = self.inner.lock().unwrap();
        let new_bytes: usize = buffers
            .iter()
            .filter(|(ptr, _)| !inner.buffers.contains_key(ptr))
            .map(|&(_, cap)| cap)
            .sum();
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
    /// on their way into the guest). `what` is formatted only for the
    /// error, so a caller on a hot path can pass `format_args!`.
    pub fn hold_bytes(
        &self,
        what: impl std::fmt::Display,
        bytes: u64,
    ) -> Result<Hold, MemoryError> {
        let mut inner = self.inner.lock().unwrap();
        if inner.reservation.try_grow(bytes as usize).is_err() {
            return Err(self.error(&what.to_string(), bytes, &inner));
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
            held: self.budget.reserved(),
            limit: self.budget.limit(),
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

/// Every buffer of `array`: (allocation start, capacity). The column types
/// steps hand back most (numbers, text) are read directly; others through
/// their `ArrayData`, which costs an allocation.
fn array_buffers(array: &dyn Array, out: &mut Vec<(usize, usize)>) {
    use arrow_array::{Float64Array, Int64Array, StringArray};
    let mut push =
        |b: &arrow_buffer::Buffer| out.push((b.data_ptr().as_ptr() as usize, b.capacity()));
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<Float64Array>() {
        push(a.values().inner());
    } else if let Some(a) = any.downcast_ref::<Int64Array>() {
        push(a.values().inner());
    } else if let Some(a) = any.downcast_ref::<StringArray>() {
        push(a.offsets().inner().inner());
        push(a.values());
    } else {
        return collect_buffers(&array.to_data(), out);
    }
    if let Some(nulls) = array.nulls() {
        push(nulls.buffer());
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

/// Hashes the ledger's keys, allocation addresses: a multiply and a
/// rotation mix them enough for a hash table (addresses are distinct and
/// their low bits are mostly zero), at a fraction of SipHash's cost on a
/// path taken for every column of every table a step makes.
#[derive(Default)]
struct AddressHasher(u64);

impl std::hash::Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(26);
    }
}

/// A reservation in a step's budget; released when dropped.
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

    fn table(n: usize) -> Table {
        let x: ArrayRef = Arc::new(Float64Array::from(vec![1.0; n]));
        Table::from_batch(RecordBatch::try_from_iter([("x", x)]).unwrap())
    }

    fn ledger(limit: usize) -> Ledger {
        Ledger::new(&Budget::new(limit as u64))
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
    fn columns_read_directly_list_the_buffers_their_array_data_has() {
        use arrow_array::{BooleanArray, Int64Array, StringArray};
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![Some(1.0), None, Some(3.0)])),
            Arc::new(Float64Array::from(vec![1.0, 2.0]).slice(1, 1)),
            Arc::new(Int64Array::from(vec![Some(4), None])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("ccc")])),
            Arc::new(BooleanArray::from(vec![true, false])),
        ];
        for column in columns {
            let (mut direct, mut general) = (Vec::new(), Vec::new());
            array_buffers(column.as_ref(), &mut direct);
            collect_buffers(&column.to_data(), &mut general);
            assert_eq!(direct, general, "{:?}", column.data_type());
            assert!(!direct.is_empty());
        }
    }

    #[test]
    fn a_table_whose_columns_share_a_buffer_holds_it_once() {
        let x: ArrayRef = Arc::new(Float64Array::from(vec![1.0; 1000]));
        let t = Table::from_batch(
            RecordBatch::try_from_iter([("x", x.slice(0, 10)), ("y", x.slice(10, 10))]).unwrap(),
        );
        let l = ledger(1 << 20);
        let hold = l.hold("t", &t).unwrap();
        let once = l.held();
        assert!((8_000..9_000).contains(&once), "{once}");
        drop(hold);
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

    #[test]
    fn a_budget_refuses_past_its_limit_and_reservations_give_back_on_drop_and_shrink() {
        let budget = Budget::new(100);
        let mut a = budget.reservation("linear memory");
        let mut b = budget.reservation("host-held tables");
        a.try_grow(60).unwrap();
        assert_eq!(
            b.try_grow(41).unwrap_err(),
            Exhausted {
                requested: 41,
                available: 40
            }
        );
        assert_eq!(b.size(), 0, "a refused request reserves nothing");
        b.try_grow(40).unwrap();
        assert_eq!(budget.reserved(), 100);
        assert!(a.try_grow(1).is_err(), "exactly at the limit");
        a.shrink(10);
        assert_eq!((a.size(), budget.reserved()), (50, 90));
        a.shrink(1_000);
        assert_eq!(
            a.size(),
            0,
            "shrinking past the size gives back what it has"
        );
        assert_eq!(budget.reserved(), 40);
        drop(b);
        assert_eq!(budget.reserved(), 0, "dropping gives everything back");
        assert_eq!(
            Exhausted {
                requested: 2048,
                available: 0
            }
            .to_string(),
            "2.0 KiB more would exceed the limit (0 B still available)"
        );
    }

    #[test]
    fn an_unlimited_budget_refuses_nothing_and_overflow_is_refused_not_wrapped() {
        let budget = Budget::unlimited();
        assert!(budget.is_unlimited());
        assert_eq!(budget.limit(), u64::MAX);
        let mut r = budget.reservation("t");
        r.try_grow(usize::MAX - 1).unwrap();
        assert_eq!(
            r.try_grow(2).unwrap_err(),
            Exhausted {
                requested: 2,
                available: 1
            }
        );
        assert_eq!(r.size(), usize::MAX - 1);
        let limited = Budget::new(10);
        assert!(!limited.is_unlimited());
        assert_eq!(limited.limit(), 10);
    }
}
