//! The contract's descriptive types — what a step says it consumes,
//! produces and accepts — re-exported from `sluice-contract`, the one
//! definition the host and the Rust SDK share. Independent of wasmtime, so
//! spec validation, the CLI and the store use them without an engine.

pub use sluice_contract::{ArtifactKind, DType, Manifest, ParamSpec, Port, Value, ValueType};
