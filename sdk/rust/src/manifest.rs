//! What a step is: its [`Manifest`], built from [`Port`]s and [`Param`]s.
//!
//! These are the contract's own types (`sluice-contract`), the very ones the
//! host reads, so a manifest means the same on both sides of the boundary.

pub use sluice_contract::{ArtifactKind, Manifest, Port};

/// One parameter a step accepts (the contract's `ParamSpec`).
pub use sluice_contract::ParamSpec as Param;
