//! One module per top-level command.

pub(crate) mod component;
pub(crate) mod run;
pub(crate) mod runs;
