//! Pipelines for sluice: specs, their validation, and their execution.
//!
//! A pipeline is described by a TOML file (see `DESIGN.md`, "Pipeline spec").
//! This crate turns that file into typed values and checks it before anything
//! runs:
//!
//! - [`spec`] parses the TOML into a [`spec::Spec`] in which every element
//!   keeps its byte span in the source;
//! - [`validate`] checks a spec against the manifests of its components and
//!   produces a [`validate::Plan`]: the steps in a deterministic topological
//!   order with their resolved parameters;
//! - [`diagnostic`] carries the errors of both, each with file, line and
//!   column, rendered like rustc's or serialised as JSON;
//! - [`execute`] runs a validated plan: the local scheduler, the executor
//!   of one step against a store (the unit a cluster task or a device
//!   calls), and the cache key;
//! - [`ci`] samples a pipeline's data and turns a run into test cases
//!   (`sluice test`).
//!
//! Neighbours: components are loaded and run by `sluice-runtime`; outputs
//! and records go to `sluice-store`. `sluice-watch` and the CLI drive runs
//! through this crate.

pub mod ci;
pub mod diagnostic;
pub mod execute;
pub mod spec;
pub mod validate;
