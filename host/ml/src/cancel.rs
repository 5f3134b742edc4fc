//! Stopping training from outside: a step's time limit, a cancelled run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{MlError, Result};

/// A flag the caller raises to stop training in progress.
///
/// Training runs on a thread of its own that nothing can kill; it checks
/// this flag between mini-batches and iterations and returns
/// [`MlError::Cancelled`] once it is raised, so a caller that gave up
/// waiting (a step past its time limit) gets its thread back within one
/// batch. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag not raised yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the flag: work that checks it stops at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the flag was raised.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once the flag is raised.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(MlError::Cancelled)
        } else {
            Ok(())
        }
    }
}
