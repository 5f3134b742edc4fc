//! Tools for step components outside a pipeline.
//!
//! This crate owns what `sluice component new`, `sluice component check`
//! and `sluice component build` do: making a new step project in Rust,
//! Python or JavaScript, with a copy of the Rust SDK embedded by this
//! crate's build script ([`scaffold`]), the conformance check a CI runs on a
//! component, whatever language built it, with its JUnit report
//! ([`check`]), and finding a step project's language, checking its
//! toolchain and building it into a component ([`build`]).
//!
//! Neighbours: `sluice-runtime` loads and runs the components checked here;
//! `sluice-cli` parses the arguments and prints the results (and still
//! finds the SDK folder, `sdk_dir`); the SDKs the builds use live in `sdk/`
//! of the checkout.

pub mod build;
pub mod check;
pub mod scaffold;

pub use build::{BuildError, Built, Lang, Project, Toolchain};
pub use check::{CheckOptions, CheckReport, CheckResult, Status};
pub use scaffold::ScaffoldError;
