//! Continuous training: a pipeline's `[triggers]` — a cron `schedule`,
//! `new-data` (a data input's content digest changes), `drift` of a served
//! model, `degradation` of its live quality — evaluated by [`Watcher`],
//! which runs the pipeline (one run at a time, each run recording the
//! trigger that started it) and applies the `[promotion]` policy to the
//! versions it registers. Its state lives in the store, so a restarted
//! watcher neither loses nor repeats a trigger.
//!
//! Neighbours: the triggers are parsed and validated with the rest of the
//! spec by `sluice-pipeline`, which also runs the pipeline; drift and
//! degradation are judged by `sluice-monitor`; state and promotions are
//! recorded in `sluice-store`.

pub mod config;
pub mod cron;
mod watcher;

pub use config::WatchConfig;
pub use watcher::{Pending, WatchError, Watcher, digest_of, log};
