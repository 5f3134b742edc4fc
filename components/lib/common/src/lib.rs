//! Guest-side helpers shared by the standard steps (`components/*`), so
//! that no step copies another's code or includes its files:
//!
//! - [`doc`]: the statistics document (written by `std:statistics`, read by
//!   `std:schema` and `std:validate`) and the schema document (written by
//!   `std:schema`, read by `std:validate`); column types are
//!   `sluice-contract`'s [`DType`](doc::DType).
//! - [`quantile`]: the one quantile definition (numpy's "linear") of
//!   `std:statistics`, `std:transform` and the drift binning.
//! - [`drift`]: `sluice-drift`, the drift maths `std:validate` shares with
//!   `sluice monitor` on the host.
//! - [`ingest`]: reading the `file` input through the host's native reader
//!   and writing it as the `data` table (`std:ingest-csv`,
//!   `std:ingest-parquet`).
//!
//! The SplitMix64 generator of `std:split` and `std:train` is the SDK's
//! (`sluice_sdk::rng`), since components written outside this repository
//! use it too.
//!
//! This crate is a library under `components/lib/`, not a step: the build
//! script of `sluice-std-components` only builds crates directly under
//! `components/`.

pub mod doc;
pub mod ingest;

pub use sluice_drift as drift;
pub use sluice_drift::quantile;
