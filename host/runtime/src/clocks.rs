//! The clocks a step sees.
//!
//! A cache key names one result only if the step cannot observe anything
//! outside its inputs, params and seed. Real clocks are such a thing: a
//! step that writes the time gives different bytes on every run. So steps
//! see **virtual clocks** by default: the wall clock starts at
//! 2000-01-01T00:00:00Z and, like the monotonic clock, advances by one
//! microsecond each time either is read. The same reads in the same order
//! give the same times on every run and every machine. A step that needs
//! the real time says so in its spec (`clock = "real"`); its results are
//! then never reused from the cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// Which clocks a step sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    /// Deterministic clocks (the default): see the module docs.
    #[default]
    Virtual,
    /// The host's real clocks; the step's results are not reproducible.
    Real,
}

/// The virtual wall clock's start: 2000-01-01T00:00:00Z, in seconds since
/// the Unix epoch.
pub const VIRTUAL_EPOCH_SECS: u64 = 946_684_800;

/// How far a virtual clock moves per read.
const TICK: Duration = Duration::from_micros(1);

/// The reads of a step's two virtual clocks: one counter, so the
/// monotonic clock and the wall clock move together.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClockReads(Arc<AtomicU64>);

impl ClockReads {
    /// How many times the step read a clock.
    pub(crate) fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts a read and returns the virtual time elapsed at it.
    fn tick(&self) -> Duration {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        Duration::from_nanos(n.saturating_mul(TICK.as_nanos() as u64))
    }

    /// The virtual wall clock.
    pub(crate) fn wall(&self) -> VirtualWall {
        VirtualWall(self.clone())
    }

    /// The virtual monotonic clock.
    pub(crate) fn monotonic(&self) -> VirtualMonotonic {
        VirtualMonotonic(self.clone())
    }
}

/// See the module docs.
pub(crate) struct VirtualWall(ClockReads);

impl HostWallClock for VirtualWall {
    fn resolution(&self) -> Duration {
        TICK
    }

    fn now(&self) -> Duration {
        Duration::from_secs(VIRTUAL_EPOCH_SECS) + self.0.tick()
    }
}

/// See the module docs.
pub(crate) struct VirtualMonotonic(ClockReads);

impl HostMonotonicClock for VirtualMonotonic {
    fn resolution(&self) -> u64 {
        TICK.as_nanos() as u64
    }

    fn now(&self) -> u64 {
        self.0.tick().as_nanos() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clocks_start_at_the_epoch_and_move_one_tick_per_read() {
        let reads = ClockReads::default();
        let (wall, mono) = (reads.wall(), reads.monotonic());
        assert_eq!(
            wall.now(),
            Duration::from_secs(VIRTUAL_EPOCH_SECS) + Duration::from_micros(1)
        );
        assert_eq!(mono.now(), 2_000);
        assert_eq!(mono.now(), 3_000);
        assert_eq!(reads.count(), 3);
        // Another step's clocks start over: the same reads, the same times.
        let again = ClockReads::default();
        assert_eq!(
            again.wall().now(),
            Duration::from_secs(VIRTUAL_EPOCH_SECS) + Duration::from_micros(1)
        );
    }
}
