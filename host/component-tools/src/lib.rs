//! Tools for step components outside a pipeline.
//!
//! This crate owns what `sluice component new`, `sluice component check`
//! and `sluice component build` do: making a new step project in Rust,
//! Python, JavaScript or C ([`scaffold`]) that carries its SDK ([`sdk`]
//! embeds the SDKs, the WIT and the generated C bindings, so nothing needs
//! a sluice checkout), the conformance check a CI runs on a component,
//! whatever language built it, with its JUnit report ([`check`], written by [`junit`], which `sluice
//! test` shares), and
//! finding a step project's language, checking its toolchain and building
//! it into a component ([`build`]).
//!
//! Neighbours: `sluice-runtime` loads and runs the components checked here;
//! `sluice-cli` parses the arguments and prints the results.

pub mod build;
pub mod check;
pub mod junit;
pub mod scaffold;
pub mod sdk;

pub use build::{BuildError, Built, Lang, Project, Toolchain};
pub use check::{CheckOptions, CheckReport, CheckResult, Status};
pub use scaffold::ScaffoldError;
