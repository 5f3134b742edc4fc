//! Cron schedules of `[triggers] schedule`. The parser and its semantics
//! (five fields, UTC, Vixie cron's day-of-month/day-of-week rule) live in
//! [`sluice_pipeline::spec::cron`], so that the spec parser checks a
//! schedule with the rest of the spec; this module keeps the names the
//! watcher and its users know.

pub use sluice_pipeline::spec::cron::{Cron, CronError};
