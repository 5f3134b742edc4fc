//! Content-addressed storage for sluice.
//!
//! Every artifact, component and pipeline spec is named by the SHA-256 of its
//! bytes ([`Digest`]). Objects live at `objects/sha256/<2 hex>/<62 hex>` under
//! the store's root and are written atomically (temporary file, then rename),
//! so a crash never leaves a half-written object under a valid name.
//!
//! This crate holds the local-folder backend; the metadata database and
//! remote (S3-compatible) backends build on the same layout.

mod digest;
pub mod metadata;
mod objects;
pub mod registry;
mod remote;
pub mod request_log;
mod store;
mod watch_state;

pub use digest::{Digest, DigestParseError};
pub use metadata::{Metadata, MetadataError};
pub use objects::{ObjectInfo, ObjectStore, StoreError};
pub use registry::{ModelRef, ModelVersion, NewModel};
pub use request_log::RequestLogChunk;
pub use store::{OpenError, RunLock, Store};

/// A digest of the objects under an `s3://bucket/prefix` URL (their keys,
/// sizes and ETags): it changes when any object there is added, removed or
/// rewritten. Credentials and endpoint come from the `AWS_*` environment.
pub fn prefix_digest(url: &str) -> Result<Digest, StoreError> {
    remote::Remote::open(url)?.fingerprint()
}
