//! One module per top-level command.

pub(crate) mod ab;
pub(crate) mod artifacts;
pub(crate) mod build;
pub(crate) mod bundle;
pub(crate) mod check;
pub(crate) mod component;
pub(crate) mod export;
pub(crate) mod gc;
pub(crate) mod lineage;
pub(crate) mod models;
pub(crate) mod monitor;
pub(crate) mod pipeline_test;
pub(crate) mod predict;
pub(crate) mod rollout;
pub(crate) mod run;
pub(crate) mod runs;
pub(crate) mod scaffold;
pub(crate) mod serve;
pub(crate) mod step;
pub(crate) mod store;
pub(crate) mod watch;
