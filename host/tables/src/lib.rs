//! sluice's native data plane: tables held by the host as Arrow record
//! batches, and everything computed on them natively.
//!
//! Steps are sandboxed WebAssembly; data work is not done there. A step
//! says *what* to do with a table — select, filter, sort, group, join,
//! split, describe, run SQL — and the host does it here, over Arrow
//! batches, without copying data into the guest. Steps copy in only the
//! columns (or chunks of columns) they really need.
//!
//! Concepts:
//! - [`Table`]: an immutable table, a schema and a list of record batches
//!   (no operation needs a table in one batch).
//! - [`Session`]: where a step's operations run: the shared compute
//!   threads, and the step's [`Budget`], which every byte the host holds
//!   for the step counts against (query state spills to disk under it
//!   where the engine can).
//! - [`Ledger`]: which Arrow buffers a step's live tables hold, so that
//!   tables sharing buffers are counted once.
//! - [`ops`]: the table operations; [`sql`]: SQL over named tables (Apache
//!   DataFusion); [`describe`]: summary statistics; [`read`]: CSV, Parquet
//!   and JSON-lines files read natively, with the missing-value and type
//!   inference rules of `std:ingest-csv`.
//! - [`file`]: files a user hands sluice outside a pipeline (`predict`,
//!   `monitor`, feedback labels), read in chunks with bounded memory.
//!
//! Features: `operators` (sort, group-by, join and the SQL expressions of
//! `compute` and `filter`: Apache DataFusion, spilling under the step's
//! budget) and `sql` (SQL queries and expressions; implies `operators`).
//! Without them (the edge runtime, which replays transforms) the crate has
//! no DataFusion at all, and those operations are refused with a message
//! that says to run them with `sluice`; everything else is Arrow alone.
//!
//! Neighbours: `sluice-runtime` binds this crate to the `tables` interface
//! of the component contract (resource handles, the step's limits) and
//! encodes the tables that flow between steps as Parquet in the store.

pub mod describe;
pub mod engine;
pub mod file;
pub mod memory;
pub mod ops;
pub mod read;
pub mod sql;
pub mod table;

pub use engine::Session;
pub use file::*;
pub use memory::{Budget, Exhausted, Hold, Ledger, MemoryError, Reservation};
pub use ops::OpError;
pub use table::{ColumnType, Table};
