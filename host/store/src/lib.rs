//! Content-addressed storage for sluice.
//!
//! Every artifact, component and pipeline spec is named by the SHA-256 of its
//! bytes ([`Digest`]). Objects live at `objects/sha256/<2 hex>/<62 hex>` under
//! the store's root and are written atomically (temporary file, then rename),
//! so a crash never leaves a half-written object under a valid name.
//!
//! This crate holds the local-folder backend; the metadata database and
//! remote (S3-compatible) backends build on the same layout.
//!
//! Modules: [`metadata`] (runs, executions, lineage rows), [`registry`]
//! (models, aliases and their history), [`request_log`] (served requests'
//! log chunks), the watcher's state, [`time`] (the one timestamp format);
//! each owns its tables in a numbered migration under `migrations/`,
//! applied by the private `db` module.
//!
//! Neighbours: this crate depends on no other sluice crate. Everything
//! above it — the runtime, the pipeline executor, the server, the monitor,
//! the watcher and the CLI — records and reads through it.

mod db;
pub mod gc;
pub mod identity;
pub mod lease;
pub mod lineage;
pub mod metadata;
mod objects;
pub mod promotion;
pub mod refs;
pub mod registry;
mod remote;
pub mod request_log;
pub mod rollout;
pub mod serving_stats;
mod store;
pub use sluice_time as time;
pub mod transfer;
pub mod upstream;
mod watch_state;

pub use db::{DbError, MetadataLocation};
pub use metadata::{Metadata, MetadataError};
pub use objects::{ObjectInfo, ObjectStore, StoreError};
pub use registry::{AliasRequest, ModelRef, ModelVersion, NewModel};
pub use request_log::RequestLogChunk;
pub use serving_stats::{ServingRole, ServingTotals, ServingWindow};
pub use sluice_digest::{Digest, DigestParseError};
pub use store::{OpenError, RunLock, Store, StoreLocation};

/// A digest of the objects under an `s3://bucket/prefix` URL (their keys,
/// sizes and ETags): it changes when any object there is added, removed or
/// rewritten. Credentials and endpoint come from the `AWS_*` environment.
pub fn prefix_digest(url: &str) -> Result<Digest, StoreError> {
    remote::Remote::open(url)?.fingerprint()
}
