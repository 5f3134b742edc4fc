//! Monitoring of served models: the requests a server logged (see
//! `sluice-serve`) against the rows the model was trained on, per feature
//! and for the predictions, over time, and — with true labels fed back —
//! live quality against the evaluation recorded at registration.
//!
//! [`monitor`] makes a [`Report`]; [`html::render`] turns it into a page
//! that opens offline.

pub mod drift;
pub mod html;
mod report;

pub use drift::{ColumnDrift, Thresholds};
pub use report::{LiveQuality, MonitorError, MonitorOptions, Report, Source, Window, monitor};
