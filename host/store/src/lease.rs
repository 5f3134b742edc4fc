//! Leases: a named claim (a run's liveness, a cache key being computed)
//! held by one holder until it expires, on the database's clock, unless
//! the holder renews it.
//!
//! Machines sharing a store have no file lock in common, and a process
//! that dies cannot say so; its leases simply stop being renewed. So a run
//! whose lease expired is dead (and may be resumed from any machine), and
//! a cache key whose lease expired is free to be computed by whoever asks
//! next. A holder renews all its leases at once with a [`Heartbeat`].

use crate::db::{Metadata, MetadataError, vals};
use std::sync::mpsc;
use std::time::Duration;

/// How long a lease lasts unless renewed: `SLUICE_LEASE_SECONDS`, else 30
/// seconds. A dead run on another machine is seen as dead this long after
/// it died; a heartbeat renews every third of it.
pub fn lease_ttl() -> Duration {
    std::env::var("SLUICE_LEASE_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(30), Duration::from_secs_f64)
}

/// The lease that says run `run_id` is alive.
pub fn run_lease(run_id: &str) -> String {
    format!("run:{run_id}")
}

/// The lease that says step `step` of run `run_id` is being executed by
/// an engine's task (`sluice step exec`): a second task for the same step
/// waits for the first rather than running it again.
pub fn step_lease(run_id: &str, step: &str) -> String {
    format!("step:{run_id}:{step}")
}

/// The lease that says a step with cache key `key` is being computed.
pub fn cache_lease(key: &crate::Digest) -> String {
    format!("cache:{}", key.to_hex())
}

impl Metadata {
    /// Takes lease `name` for `holder` for `ttl`, unless another holder's
    /// lease on it has not expired; renews it when `holder` has it already.
    /// Returns whether `holder` has it now.
    pub fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, MetadataError> {
        let now = crate::time::now();
        self.write(|c| {
            let now_ms = c.now_ms()?;
            let taken = c.execute(
                "INSERT INTO leases (name, holder, expires_ms, acquired_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE
                 SET holder = excluded.holder, expires_ms = excluded.expires_ms, acquired_at = excluded.acquired_at
                 WHERE leases.holder = excluded.holder OR leases.expires_ms <= ?5",
                vals![name, holder, now_ms + ttl.as_millis() as i64, now, now_ms],
            )?;
            Ok(taken == 1)
        })
    }

    /// Extends every lease `holder` has by `ttl` from now; returns how many.
    pub fn renew_leases(&self, holder: &str, ttl: Duration) -> Result<u64, MetadataError> {
        self.write(|c| {
            let now_ms = c.now_ms()?;
            c.execute(
                "UPDATE leases SET expires_ms = ?2 WHERE holder = ?1",
                vals![holder, now_ms + ttl.as_millis() as i64],
            )
        })
    }

    /// Gives up lease `name`, if `holder` has it.
    pub fn release_lease(&self, name: &str, holder: &str) -> Result<(), MetadataError> {
        self.write(|c| {
            c.execute(
                "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
                vals![name, holder],
            )
            .map(drop)
        })
    }

    /// Gives up every lease `holder` has.
    pub fn release_leases(&self, holder: &str) -> Result<(), MetadataError> {
        self.write(|c| {
            c.execute("DELETE FROM leases WHERE holder = ?1", vals![holder])
                .map(drop)
        })
    }

    /// Who holds lease `name` now, if anyone (an expired lease is no one's).
    pub fn lease_holder(&self, name: &str) -> Result<Option<String>, MetadataError> {
        self.read(|c| {
            let now_ms = c.now_ms()?;
            match c.query_opt(
                "SELECT holder FROM leases WHERE name = ?1 AND expires_ms > ?2",
                vals![name, now_ms],
            )? {
                Some(row) => row.get(0),
                None => Ok(None),
            }
        })
    }

    /// Forgets leases that expired (their holders died).
    pub fn forget_expired_leases(&self) -> Result<u64, MetadataError> {
        self.write(|c| {
            let now_ms = c.now_ms()?;
            c.execute("DELETE FROM leases WHERE expires_ms <= ?1", vals![now_ms])
        })
    }
}

/// Renews every lease of one holder, from a thread of its own, until
/// dropped; then releases them.
pub struct Heartbeat {
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    metadata: Metadata,
    holder: String,
}

impl Heartbeat {
    /// Starts renewing `holder`'s leases every third of `ttl`.
    pub fn start(metadata: Metadata, holder: impl Into<String>, ttl: Duration) -> Self {
        let holder = holder.into();
        let (stop, stopped) = mpsc::channel::<()>();
        let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let metadata = metadata.clone();
            let holder = holder.clone();
            let lost = lost.clone();
            std::thread::Builder::new()
                .name("sluice-heartbeat".into())
                .spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(ttl / 3)
                    {
                        match metadata.renew_leases(&holder, ttl) {
                            // Expired before this renewal, and taken.
                            Ok(0) => lost.store(true, std::sync::atomic::Ordering::Relaxed),
                            Ok(_) => {}
                            Err(e) => eprintln!(
                                "warning: renewing the leases of {holder}: {e}; another machine may take this run for dead in {:.0} s",
                                ttl.as_secs_f64()
                            ),
                        }
                    }
                })
                .ok()
        };
        Heartbeat {
            lost,
            stop: Some(stop),
            thread,
            metadata,
            holder,
        }
    }
}

impl Heartbeat {
    /// Whether the holder's leases expired before a renewal (the process
    /// stalled longer than the lease lasts) and were all taken by others:
    /// what they guarded is someone else's now.
    pub fn lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.metadata.release_leases(&self.holder);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::backends;

    #[test]
    fn a_lease_is_one_holders_until_released_or_expired() {
        for (_dir, m) in backends() {
            let long = Duration::from_secs(60);
            assert!(m.try_lease("cache:k", "a", long).unwrap());
            assert!(!m.try_lease("cache:k", "b", long).unwrap(), "a holds it");
            assert!(m.try_lease("cache:k", "a", long).unwrap(), "a renews it");
            assert_eq!(m.lease_holder("cache:k").unwrap().as_deref(), Some("a"));
            m.release_lease("cache:k", "b").unwrap();
            assert_eq!(
                m.lease_holder("cache:k").unwrap().as_deref(),
                Some("a"),
                "only the holder releases"
            );
            m.release_lease("cache:k", "a").unwrap();
            assert!(m.lease_holder("cache:k").unwrap().is_none());
            assert!(m.try_lease("cache:k", "b", long).unwrap());

            // An expired lease is no one's, and anyone may take it.
            assert!(
                m.try_lease("run:x", "dead", Duration::from_millis(1))
                    .unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
            assert!(m.lease_holder("run:x").unwrap().is_none());
            assert!(m.try_lease("run:x", "c", long).unwrap());
            assert!(
                m.try_lease("run:y", "dead", Duration::from_millis(1))
                    .unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(m.forget_expired_leases().unwrap(), 1);
        }
    }

    #[test]
    fn a_heartbeat_keeps_leases_alive_and_releases_them_when_dropped() {
        for (_dir, m) in backends() {
            let ttl = Duration::from_millis(300);
            assert!(m.try_lease("run:r", "r", ttl).unwrap());
            assert!(m.try_lease("cache:k", "r", ttl).unwrap());
            let beat = Heartbeat::start(m.clone(), "r", ttl);
            std::thread::sleep(ttl * 3);
            assert_eq!(m.lease_holder("run:r").unwrap().as_deref(), Some("r"));
            assert_eq!(m.lease_holder("cache:k").unwrap().as_deref(), Some("r"));
            drop(beat);
            assert!(m.lease_holder("run:r").unwrap().is_none());
            assert!(m.lease_holder("cache:k").unwrap().is_none());
        }
    }

    #[test]
    fn of_many_claimants_at_once_exactly_one_gets_a_lease() {
        for (_dir, m) in backends() {
            let winners: usize = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|i| {
                        let m = Metadata::connect(m.location()).unwrap();
                        scope.spawn(move || {
                            m.try_lease(
                                "cache:contested",
                                &format!("h{i}"),
                                Duration::from_secs(60),
                            )
                            .unwrap() as usize
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(winners, 1);
        }
    }
}
