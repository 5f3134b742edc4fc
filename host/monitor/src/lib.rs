//! Monitoring of served models: the requests a server logged (see
//! `sluice-serve`) against the rows the model was trained on, per feature
//! and for the predictions, over time, and — with true labels fed back —
//! live quality against the evaluation recorded at registration.
//!
//! [`monitor`] makes a [`Report`]; [`html::render`] turns it into a page
//! that opens offline. The report lists the model's rollouts with every
//! decision and its evidence; [`rollouts`] formats them, for the page and
//! for `sluice rollout show` and `sluice models show` alike. [`ingest`] takes the request logs a device wrote
//! (`sluice-edge serve --request-log`) into the store first.
//!
//! Neighbours: drift statistics come from `sluice-drift` (the same code
//! `std:validate` runs, so both give the same score for the same data);
//! predictions from `sluice-serve`'s [`sluice_serve::ServedModel`];
//! request logs and lineage from `sluice-store`. `sluice-watch` calls it
//! for its drift and degradation triggers.

pub mod drift;
pub mod html;
mod ingest;
mod report;
pub mod rollouts;

pub use drift::{
    ColumnDrift, DEFAULT_CATEGORICAL_THRESHOLD, DEFAULT_NUMERIC_THRESHOLD, Thresholds,
};
pub use ingest::{IngestedFile, ingest};
pub use report::{
    LiveQuality, MonitorError, MonitorOptions, Report, Source, Window, labelled_answers,
    logged_predictions, monitor,
};
pub use rollouts::RolloutHistory;
