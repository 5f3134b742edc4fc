//! Serving statistics for the store: the requests a server answered per
//! served model version — how many, how many with a 4xx or 5xx status, and
//! a latency histogram with the store's fixed buckets
//! ([`sluice_store::serving_stats::LATENCY_BUCKETS_MS`]) — gathered in
//! windows and written to the store every `--stats-every` and at shutdown.
//! Promotion gates sum them over every server ([`sluice_store::Metadata::serving_totals`]);
//! `/metrics` is one process's view and dies with it.
//!
//! A request counts under the version that answered it, the route's role
//! that picked it (primary or canary; shadow for the copies a shadow
//! version predicted, which no client saw) and the reference that role serves
//! (`NAME@ALIAS`), so evidence gathered while a version held an alias can
//! be told apart. Requests for a name this server does not serve, or
//! refused before a version was chosen (a body that is not a request), are
//! not counted: they belong to no model version.
//!
//! Counting is a short lock and a few additions on the request's thread;
//! writing happens on a thread of its own. A write that fails (the
//! database is down) is reported on stderr and its windows are kept for
//! the next flush, for at most [`KEEP_FOR`]; older ones are dropped and
//! counted in `/metrics` (`sluice_serving_stats_dropped_total`).

use crate::metrics::Metrics;
use sluice_store::serving_stats::{LATENCY_COUNTS, latency_bucket};
use sluice_store::{ServingRole, ServingWindow, Store};
use std::collections::VecDeque;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest windows that could not be written are kept for another try.
pub(crate) const KEEP_FOR: Duration = Duration::from_secs(300);
/// Most windows kept for another try, whatever their age.
const KEEP_AT_MOST: usize = 10_000;

/// Where closed windows go. Called on the writer thread only.
pub(crate) trait StatsSink: Send + 'static {
    /// Keeps the windows of one flush, all or none.
    fn write(&mut self, windows: &[ServingWindow]) -> Result<(), String>;
}

/// Writes windows to a store's metadata database.
pub(crate) struct StoreStatsSink {
    store: Arc<Store>,
}

impl StoreStatsSink {
    /// A sink into `store`.
    pub(crate) fn new(store: Arc<Store>) -> Self {
        StoreStatsSink { store }
    }
}

impl StatsSink for StoreStatsSink {
    fn write(&mut self, windows: &[ServingWindow]) -> Result<(), String> {
        self.store
            .metadata
            .record_serving_windows(windows)
            .map_err(|e| e.to_string())
    }
}

/// What a window's counts are about.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    name: String,
    version: i64,
    reference: String,
    role: ServingRole,
    route: String,
}

/// One key's counts in the open window.
#[derive(Debug, Clone)]
struct Counts {
    requests: u64,
    errors_4xx: u64,
    errors_5xx: u64,
    latency_counts: Vec<u64>,
    latency_sum_ms: f64,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            requests: 0,
            errors_4xx: 0,
            errors_5xx: 0,
            latency_counts: vec![0; LATENCY_COUNTS],
            latency_sum_ms: 0.0,
        }
    }
}

/// The window being counted: when it opened, and its counts by key (a
/// handful: a served name's primary and canary, each under the version
/// that answered; searched in order, so counting allocates nothing).
struct Open {
    start: String,
    counts: Vec<(Key, Counts)>,
}

impl Open {
    fn new() -> Self {
        Open {
            start: sluice_time::now(),
            counts: Vec::new(),
        }
    }
}

/// One request to count.
pub(crate) struct Answered<'a> {
    /// The served name.
    pub(crate) name: &'a str,
    /// The version that answered.
    pub(crate) version: i64,
    /// What the route's role serves (`NAME@ALIAS`).
    pub(crate) reference: &'a str,
    /// Which of the route's roles answered.
    pub(crate) role: ServingRole,
    /// What the route serves as its primary (`NAME@ALIAS`): whose traffic
    /// a canary took a share of.
    pub(crate) route: &'a str,
    /// The response's status code.
    pub(crate) status: u16,
    /// From request to response.
    pub(crate) took: Duration,
}

/// The server's window accumulator and its writer thread.
pub(crate) struct ServingStats {
    open: Option<Arc<Mutex<Open>>>,
    stop: Mutex<Option<mpsc::Sender<()>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl ServingStats {
    /// Counts nothing and writes nothing (`--stats-every off`).
    pub(crate) fn off() -> Self {
        ServingStats {
            open: None,
            stop: Mutex::new(None),
            writer: Mutex::new(None),
        }
    }

    /// Starts the writer thread: every `every` it closes the window and
    /// hands its rows to `sink`, each naming `server`.
    pub(crate) fn start(
        sink: Box<dyn StatsSink>,
        server: String,
        every: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let open = Arc::new(Mutex::new(Open::new()));
        let (stop, stopped) = mpsc::channel();
        let o = open.clone();
        let writer = std::thread::Builder::new()
            .name("sluice-serving-stats".into())
            .spawn(move || write(sink, &server, &o, &stopped, every, &metrics))
            .expect("the serving-stats thread can be started");
        ServingStats {
            open: Some(open),
            stop: Mutex::new(Some(stop)),
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Counts one answered request in the open window.
    pub(crate) fn record(&self, a: &Answered<'_>) {
        let Some(open) = &self.open else {
            return;
        };
        let ms = a.took.as_nanos() as f64 / 1e6;
        let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
        let i = match open.counts.iter().position(|(k, _)| {
            k.version == a.version
                && k.role == a.role
                && k.name == a.name
                && k.reference == a.reference
                && k.route == a.route
        }) {
            Some(i) => i,
            None => {
                open.counts.push((
                    Key {
                        name: a.name.to_string(),
                        version: a.version,
                        reference: a.reference.to_string(),
                        role: a.role,
                        route: a.route.to_string(),
                    },
                    Counts::default(),
                ));
                open.counts.len() - 1
            }
        };
        let c = &mut open.counts[i].1;
        c.requests += 1;
        match a.status {
            400..=499 => c.errors_4xx += 1,
            500..=599 => c.errors_5xx += 1,
            _ => {}
        }
        c.latency_counts[latency_bucket(ms)] += 1;
        c.latency_sum_ms += ms;
    }

    /// Closes the open window, writes it and everything kept, and stops the
    /// writer. What still cannot be written is reported on stderr.
    pub(crate) fn close(&self) {
        self.stop.lock().unwrap().take();
        if let Some(w) = self.writer.lock().unwrap().take() {
            let _ = w.join();
        }
    }
}

impl Drop for ServingStats {
    fn drop(&mut self) {
        self.close();
    }
}

/// Closes the open window: its rows (none for a window with no request),
/// and a new window opened where it ended.
fn close_window(open: &Mutex<Open>, server: &str) -> Vec<ServingWindow> {
    let closed = {
        let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *open, Open::new())
    };
    // The new window opened at the same instant, give or take the lock.
    let end = sluice_time::now();
    closed
        .counts
        .into_iter()
        .map(|(k, c)| ServingWindow {
            server: server.to_string(),
            name: k.name,
            version: k.version,
            reference: k.reference,
            role: k.role,
            route: k.route,
            window_start: closed.start.clone(),
            window_end: end.clone(),
            requests: c.requests,
            errors_4xx: c.errors_4xx,
            errors_5xx: c.errors_5xx,
            latency_counts: c.latency_counts,
            latency_sum_ms: c.latency_sum_ms,
        })
        .collect()
}

/// One flush's windows, kept until written.
struct Batch {
    closed: Instant,
    windows: Vec<ServingWindow>,
}

/// The writer thread: a flush every `every`, and one when told to stop.
fn write(
    mut sink: Box<dyn StatsSink>,
    server: &str,
    open: &Mutex<Open>,
    stop: &mpsc::Receiver<()>,
    every: Duration,
    metrics: &Metrics,
) {
    let mut kept: VecDeque<Batch> = VecDeque::new();
    let mut next = Instant::now() + every;
    loop {
        let stopping = match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        };
        next += every;
        if next < Instant::now() {
            next = Instant::now() + every;
        }
        let windows = close_window(open, server);
        if !windows.is_empty() {
            kept.push_back(Batch {
                closed: Instant::now(),
                windows,
            });
        }
        flush(&mut *sink, &mut kept, metrics);
        if stopping {
            let lost: usize = kept.iter().map(|b| b.windows.len()).sum();
            if lost > 0 {
                eprintln!(
                    "sluice serve: {lost} serving-statistics window(s) could not be written to the store and are lost"
                );
                metrics.stats_dropped(lost as u64);
            }
            return;
        }
    }
}

/// Writes the kept batches, oldest first, until one fails (reported; it and
/// those after it wait for the next flush); then drops what is too old or
/// too many.
fn flush(sink: &mut dyn StatsSink, kept: &mut VecDeque<Batch>, metrics: &Metrics) {
    while let Some(batch) = kept.front() {
        match sink.write(&batch.windows) {
            Ok(()) => {
                metrics.stats_written(batch.windows.len() as u64);
                kept.pop_front();
            }
            Err(e) => {
                let waiting: usize = kept.iter().map(|b| b.windows.len()).sum();
                eprintln!(
                    "sluice serve: could not write serving statistics to the store ({waiting} window(s) kept for the next try): {e}"
                );
                break;
            }
        }
    }
    let mut held: usize = kept.iter().map(|b| b.windows.len()).sum();
    while let Some(oldest) = kept.front() {
        if oldest.closed.elapsed() <= KEEP_FOR && held <= KEEP_AT_MOST {
            break;
        }
        let n = oldest.windows.len();
        held -= n;
        metrics.stats_dropped(n as u64);
        kept.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps what it is given; fails while `failing` is set.
    #[derive(Clone, Default)]
    struct Memory {
        written: Arc<Mutex<Vec<ServingWindow>>>,
        failing: Arc<std::sync::atomic::AtomicBool>,
    }

    impl StatsSink for Memory {
        fn write(&mut self, windows: &[ServingWindow]) -> Result<(), String> {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("the database is down".into());
            }
            self.written.lock().unwrap().extend_from_slice(windows);
            Ok(())
        }
    }

    fn answered(role: ServingRole, version: i64, status: u16, ms: u64) -> Answered<'static> {
        Answered {
            name: "cancer",
            version,
            reference: match role {
                ServingRole::Primary => "cancer@production",
                ServingRole::Canary | ServingRole::Shadow => "cancer@staging",
            },
            role,
            route: "cancer@production",
            status,
            took: Duration::from_millis(ms),
        }
    }

    #[test]
    fn requests_are_counted_per_version_and_role_and_written_at_close() {
        let sink = Memory::default();
        let metrics = Arc::new(Metrics::default());
        let stats = ServingStats::start(
            Box::new(sink.clone()),
            "s1".into(),
            Duration::from_secs(3600),
            metrics.clone(),
        );
        stats.record(&answered(ServingRole::Primary, 1, 200, 3));
        stats.record(&answered(ServingRole::Primary, 1, 400, 1));
        stats.record(&answered(ServingRole::Primary, 1, 503, 20));
        stats.record(&answered(ServingRole::Canary, 2, 200, 2));
        stats.record(&answered(ServingRole::Shadow, 2, 504, 30));
        stats.close();
        let written = sink.written.lock().unwrap().clone();
        assert_eq!(written.len(), 3);
        let primary = written
            .iter()
            .find(|w| w.role == ServingRole::Primary)
            .unwrap();
        assert_eq!(
            (primary.requests, primary.errors_4xx, primary.errors_5xx),
            (3, 1, 1)
        );
        assert_eq!(primary.reference, "cancer@production");
        assert_eq!(primary.version, 1);
        assert_eq!(primary.server, "s1");
        assert_eq!(primary.latency_counts.len(), LATENCY_COUNTS);
        assert_eq!(primary.latency_counts[latency_bucket(20.0)], 1);
        assert!((primary.latency_sum_ms - 24.0).abs() < 1.0);
        assert!(primary.window_start <= primary.window_end);
        let canary = written
            .iter()
            .find(|w| w.role == ServingRole::Canary)
            .unwrap();
        assert_eq!((canary.version, canary.requests), (2, 1));
        // Its own reference, and the alias whose traffic it split.
        assert_eq!(
            (canary.reference.as_str(), canary.route.as_str()),
            ("cancer@staging", "cancer@production")
        );
        // A shadow's copies count apart from the canary's answers, though
        // both are version 2 under one reference.
        let shadow = written
            .iter()
            .find(|w| w.role == ServingRole::Shadow)
            .unwrap();
        assert_eq!(
            (shadow.version, shadow.requests, shadow.errors_5xx),
            (2, 1, 1)
        );
        assert!(
            metrics
                .render()
                .contains("sluice_serving_stats_windows_total 3")
        );
    }

    #[test]
    fn windows_close_every_period_and_empty_ones_are_not_written() {
        let sink = Memory::default();
        let stats = ServingStats::start(
            Box::new(sink.clone()),
            "s1".into(),
            Duration::from_millis(20),
            Arc::new(Metrics::default()),
        );
        stats.record(&answered(ServingRole::Primary, 1, 200, 1));
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.written.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "no window was written");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
        stats.record(&answered(ServingRole::Primary, 1, 200, 1));
        stats.close();
        let written = sink.written.lock().unwrap().clone();
        assert_eq!(written.len(), 2, "{written:?}");
        assert!(written[0].window_end <= written[1].window_start);
    }

    #[test]
    fn a_failed_write_is_kept_for_the_next_flush() {
        let sink = Memory::default();
        sink.failing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let metrics = Arc::new(Metrics::default());
        let stats = ServingStats::start(
            Box::new(sink.clone()),
            "s1".into(),
            Duration::from_millis(20),
            metrics.clone(),
        );
        stats.record(&answered(ServingRole::Primary, 1, 200, 1));
        std::thread::sleep(Duration::from_millis(100));
        stats.record(&answered(ServingRole::Primary, 1, 200, 1));
        sink.failing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        stats.close();
        let written = sink.written.lock().unwrap().clone();
        assert_eq!(written.iter().map(|w| w.requests).sum::<u64>(), 2);
        assert!(
            metrics
                .render()
                .contains("sluice_serving_stats_dropped_total 0")
        );
    }

    #[test]
    fn windows_kept_too_long_are_dropped_and_counted() {
        let metrics = Metrics::default();
        let mut sink = Memory::default();
        sink.failing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let window = |n| {
            let mut open = Open::new();
            open.counts.push((
                Key {
                    name: "cancer".into(),
                    version: n,
                    reference: "cancer@production".into(),
                    role: ServingRole::Primary,
                    route: "cancer@production".into(),
                },
                Counts::default(),
            ));
            close_window(&Mutex::new(open), "s1")
        };
        let mut kept = VecDeque::from([
            Batch {
                closed: Instant::now() - KEEP_FOR - Duration::from_secs(1),
                windows: window(1),
            },
            Batch {
                closed: Instant::now(),
                windows: window(2),
            },
        ]);
        flush(&mut sink, &mut kept, &metrics);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].windows[0].version, 2);
        assert!(
            metrics
                .render()
                .contains("sluice_serving_stats_dropped_total 1")
        );
    }

    #[test]
    fn off_counts_nothing() {
        let stats = ServingStats::off();
        stats.record(&answered(ServingRole::Primary, 1, 200, 1));
        assert!(stats.open.is_none());
        stats.close();
    }
}
