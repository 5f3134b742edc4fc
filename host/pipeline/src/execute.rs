//! Running a validated pipeline: loading its components, importing its data
//! into the store, running steps in parallel as their inputs become ready
//! (reusing cached results where the cache key matches), storing every
//! output content-addressed, and recording everything in the metadata
//! database as it happens.
//!
//! Read top-down:
//! - [`prepare`](prepare()) parses and validates a spec and loads its
//!   components;
//! - [`scheduler`] runs the plan's DAG locally ([`execute`](execute()),
//!   [`RunOptions`]): data import, readiness, concurrency, resume;
//! - [`step`] settles one planned step against a store ([`StepExecutor`]):
//!   cache check, run with retries, record — the unit a cluster task or a
//!   device calls;
//! - [`package`] makes a pipeline runnable from the store alone and plans
//!   runs for an engine to drive ([`package::plan_run`]);
//! - [`task`] executes one step of such a run in a fresh process
//!   ([`task::exec_step`]: what each pod of a cluster runs) and ends the
//!   run ([`task::finish_run`]);
//! - [`cache_key`] says what a step's result depends on
//!   ([`step_key`], [`explain`]);
//! - [`report`] is what callers see ([`Observer`], [`RunReport`]).

mod artifacts;
pub mod cache_key;
pub mod package;
mod prepare;
pub mod report;
pub mod scheduler;
pub mod step;
pub mod task;

pub use cache_key::{explain, key_parts, step_key};
pub use prepare::{Prepared, prepare};
pub use report::{
    CachedFrom, DataReport, Observer, OutputReport, RunReport, RunState, Silent, StepReport,
    StepState,
};
pub use scheduler::{RunOptions, execute};
pub use step::{ResolvedInput, Settled, StepExecutor, StepJob};

use crate::diagnostic::Diagnostics;

/// Why a run could not start or be recorded (step failures are not errors:
/// they are in the report).
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// A data file could not be read or parsed.
    #[error(transparent)]
    Data(Diagnostics),
    /// The object store refused a read or write.
    #[error("artifact store: {0}")]
    Objects(#[from] sluice_store::StoreError),
    /// The metadata database failed.
    #[error(transparent)]
    Metadata(#[from] sluice_store::MetadataError),
    /// The store could not be opened or locked.
    #[error(transparent)]
    Open(#[from] sluice_store::OpenError),
    /// `--resume` cannot be honoured.
    #[error("{0}")]
    Resume(String),
    /// A stored artifact a step needs cannot be decoded.
    #[error("{0}")]
    Artifact(String),
}
