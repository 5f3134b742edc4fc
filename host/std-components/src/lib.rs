//! The standard sluice steps, embedded in the binary.
//!
//! Each entry is a WebAssembly component built from `components/<name>` for
//! wasm32-wasip2 by this crate's build script. Pipelines refer to them as
//! `std:<name>`; their SHA-256 is computed at build time so that resolving a
//! standard step costs no hashing at run time.
//!
//! Neighbours: the guest workspace `components/` (the steps' sources, and
//! the shared guest crates they use) and `sdk/rust`; `sluice-runtime`
//! resolves `std:NAME` through [`STANDARD`].

/// A standard step: its name, component bytes and their SHA-256.
#[derive(Debug, Clone, Copy)]
pub struct StdComponent {
    /// The name after `std:`, e.g. `ingest-csv`.
    pub name: &'static str,
    /// The component's bytes.
    pub bytes: &'static [u8],
    /// Lower-case hex SHA-256 of `bytes`.
    pub sha256: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The standard step called `name` (without the `std:` prefix).
pub fn get(name: &str) -> Option<&'static StdComponent> {
    STANDARD.iter().find(|c| c.name == name)
}

/// The names of all standard steps, sorted.
pub fn names() -> impl Iterator<Item = &'static str> {
    STANDARD.iter().map(|c| c.name)
}

/// The standard step whose bytes have SHA-256 `sha256` (lower-case hex),
/// if this build embeds it: how a recorded component digest (a model's
/// transform, say) finds its bytes without a store.
pub fn by_sha256(sha256: &str) -> Option<&'static StdComponent> {
    STANDARD.iter().find(|c| c.sha256 == sha256)
}
