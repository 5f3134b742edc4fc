//! Prometheus metrics of the server, in the text exposition format:
//! requests and errors, latency and batch-size histograms per model and
//! version, and which versions are loaded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram, in milliseconds: the store's
/// serving-statistics buckets, so that `/metrics` and the windows summed
/// for promotion gates agree (rendered in seconds, Prometheus's unit).
const LATENCY_BUCKETS_MS: &[f64] = sluice_store::serving_stats::LATENCY_BUCKETS_MS;
/// Upper bounds of the batch-size histogram, in rows.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Observed units per rendered one (1000: milliseconds observed,
    /// seconds rendered).
    per: f64,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64], per: f64) -> Self {
        Histogram {
            bounds,
            per,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{}\"}} {cumulative}",
                bound_label(b / self.per)
            );
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum / self.per);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// A request counter's labels: model, version (none when the request
/// reached none), endpoint and status code.
type RequestKey = (String, Option<i64>, String, u16);

#[derive(Default)]
struct State {
    // Lists, not maps: a handful of entries (labels only take served
    // models' names), found without making a key's strings per request.
    requests: Vec<(RequestKey, u64)>,
    latency: Vec<((String, i64), Histogram)>,
    batches: Vec<((String, i64), Histogram)>,
    loaded: BTreeMap<(String, String), String>,
    reloads: u64,
    logged: u64,
    logged_rows: u64,
    log_dropped: u64,
    stats_written: u64,
    stats_dropped: u64,
    shadow: BTreeMap<(String, String), ShadowCounts>,
}

/// What happened to the copies of requests sent to one shadow version.
#[derive(Debug, Clone, Copy, Default)]
struct ShadowCounts {
    compared: u64,
    disagreed: u64,
    dropped: u64,
    errors: u64,
    max_abs_diff: f64,
}

/// What became of one request's copy sent to a shadow version.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShadowOutcome {
    /// Predicted and compared with the primary's answer: whether they
    /// disagreed, and the largest absolute difference of a numeric output.
    Compared {
        /// A label differed, or a regressor's value beyond the tolerance.
        disagreed: bool,
        /// The largest |Δ| of a numeric output (probabilities, values).
        max_abs_diff: f64,
    },
    /// Not sent: the shadow's queue was full (`--shadow-max-inflight`).
    Dropped,
    /// The shadow version failed to predict it (or took too long).
    Error,
}

/// The server's metrics. Cheap to update from many threads.
#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
}

impl Metrics {
    /// Counts a request to `endpoint` answered with `status`, and its
    /// latency when it reached a model version.
    pub fn request(
        &self,
        model: &str,
        version: Option<i64>,
        endpoint: &str,
        status: u16,
        took: Duration,
    ) {
        let mut s = self.state.lock().unwrap();
        *entry(
            &mut s.requests,
            |(m, v, e, c)| *c == status && *v == version && m == model && e == endpoint,
            || ((model.into(), version, endpoint.into(), status), 0),
        ) += 1;
        if let Some(version) = version {
            entry(
                &mut s.latency,
                |(m, v)| *v == version && m == model,
                || {
                    (
                        (model.into(), version),
                        Histogram::new(LATENCY_BUCKETS_MS, 1000.0),
                    )
                },
            )
            .observe(took.as_nanos() as f64 / 1e6);
        }
    }

    /// Records a batch of `rows` run by a model version.
    pub fn batch(&self, model: &str, version: i64, rows: usize) {
        entry(
            &mut self.state.lock().unwrap().batches,
            |(m, v)| *v == version && m == model,
            || ((model.into(), version), Histogram::new(BATCH_BUCKETS, 1.0)),
        )
        .observe(rows as f64);
    }

    /// Records which version a route (`name` or `name (canary)`) serves.
    pub fn loaded(&self, route: &str, name: &str, version: i64) {
        let mut s = self.state.lock().unwrap();
        if s.loaded
            .insert((route.into(), name.into()), version.to_string())
            .is_some_and(|old| old != version.to_string())
        {
            s.reloads += 1;
        }
    }

    /// Counts serving-statistics windows written to the store.
    pub fn stats_written(&self, windows: u64) {
        self.state.lock().unwrap().stats_written += windows;
    }

    /// Counts serving-statistics windows dropped: kept too long (or too
    /// many) after failed writes, or not written at shutdown.
    pub fn stats_dropped(&self, windows: u64) {
        self.state.lock().unwrap().stats_dropped += windows;
    }

    /// Counts what became of a request's copy sent to the shadow `version`
    /// of `model`.
    pub fn shadow(&self, model: &str, version: i64, outcome: ShadowOutcome) {
        let mut s = self.state.lock().unwrap();
        let c = s
            .shadow
            .entry((model.into(), version.to_string()))
            .or_default();
        match outcome {
            ShadowOutcome::Compared {
                disagreed,
                max_abs_diff,
            } => {
                c.compared += 1;
                c.disagreed += u64::from(disagreed);
                if max_abs_diff > c.max_abs_diff {
                    c.max_abs_diff = max_abs_diff;
                }
            }
            ShadowOutcome::Dropped => c.dropped += 1,
            ShadowOutcome::Error => c.errors += 1,
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut s = self.state.lock().unwrap();
        s.requests.sort_by(|a, b| a.0.cmp(&b.0));
        s.latency.sort_by(|a, b| a.0.cmp(&b.0));
        s.batches.sort_by(|a, b| a.0.cmp(&b.0));
        let shown = |v: &Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut out = String::new();
        out.push_str("# HELP sluice_requests_total Requests answered, by model, version, endpoint and status code.\n# TYPE sluice_requests_total counter\n");
        for ((m, v, e, c), n) in &s.requests {
            let _ = writeln!(
                out,
                "sluice_requests_total{{model=\"{}\",version=\"{}\",endpoint=\"{e}\",code=\"{c}\"}} {n}",
                escape(m),
                shown(v)
            );
        }
        out.push_str("# HELP sluice_request_errors_total Requests answered with an error status.\n# TYPE sluice_request_errors_total counter\n");
        let mut errors: BTreeMap<(&str, Option<i64>), u64> = BTreeMap::new();
        for ((m, v, _, c), n) in &s.requests {
            if *c >= 400 {
                *errors.entry((m, *v)).or_default() += n;
            }
        }
        for ((m, v), n) in errors {
            let _ = writeln!(
                out,
                "sluice_request_errors_total{{model=\"{}\",version=\"{}\"}} {n}",
                escape(m),
                shown(&v)
            );
        }
        out.push_str("# HELP sluice_request_duration_seconds Time from request to response, by model version.\n# TYPE sluice_request_duration_seconds histogram\n");
        for ((m, v), h) in &s.latency {
            h.render(
                &mut out,
                "sluice_request_duration_seconds",
                &format!("model=\"{}\",version=\"{v}\"", escape(m)),
            );
        }
        out.push_str("# HELP sluice_batch_rows Rows per batch run by a model version (dynamic batching).\n# TYPE sluice_batch_rows histogram\n");
        for ((m, v), h) in &s.batches {
            h.render(
                &mut out,
                "sluice_batch_rows",
                &format!("model=\"{}\",version=\"{v}\"", escape(m)),
            );
        }
        out.push_str("# HELP sluice_model_loaded The version each route serves (1 per route).\n# TYPE sluice_model_loaded gauge\n");
        for ((route, m), v) in &s.loaded {
            let _ = writeln!(
                out,
                "sluice_model_loaded{{route=\"{}\",model=\"{}\",version=\"{v}\"}} 1",
                escape(route),
                escape(m)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sluice_model_reloads_total Version switches after an alias moved.\n# TYPE sluice_model_reloads_total counter\nsluice_model_reloads_total {}",
            s.reloads
        );
        let _ = writeln!(
            out,
            "# HELP sluice_logged_requests_total Requests accepted for the request log, counted as they are answered.\n# TYPE sluice_logged_requests_total counter\nsluice_logged_requests_total {}",
            s.logged
        );
        let _ = writeln!(
            out,
            "# HELP sluice_logged_rows_total Rows written to the request log, counted at each flush.\n# TYPE sluice_logged_rows_total counter\nsluice_logged_rows_total {}",
            s.logged_rows
        );
        let _ = writeln!(
            out,
            "# HELP sluice_log_dropped_total Sampled requests not logged because the log writer fell behind.\n# TYPE sluice_log_dropped_total counter\nsluice_log_dropped_total {}",
            s.log_dropped
        );
        let _ = writeln!(
            out,
            "# HELP sluice_serving_stats_windows_total Serving-statistics windows written to the store.\n# TYPE sluice_serving_stats_windows_total counter\nsluice_serving_stats_windows_total {}",
            s.stats_written
        );
        let _ = writeln!(
            out,
            "# HELP sluice_serving_stats_dropped_total Serving-statistics windows lost: not written to the store within a few minutes of retries, or at shutdown.\n# TYPE sluice_serving_stats_dropped_total counter\nsluice_serving_stats_dropped_total {}",
            s.stats_dropped
        );
        type Field = fn(&ShadowCounts) -> u64;
        let counters: [(&str, &str, Field); 4] = [
            (
                "sluice_shadow_compared_total",
                "Requests copied to a shadow version, predicted by it and compared with the primary's answer.",
                |c| c.compared,
            ),
            (
                "sluice_shadow_disagreed_total",
                "Compared shadow requests whose answer differed from the primary's (a label, or a value beyond 1e-6 relative).",
                |c| c.disagreed,
            ),
            (
                "sluice_shadow_dropped_total",
                "Requests not copied to a shadow version because its queue was full (--shadow-max-inflight).",
                |c| c.dropped,
            ),
            (
                "sluice_shadow_errors_total",
                "Shadow predictions that failed or took longer than --timeout.",
                |c| c.errors,
            ),
        ];
        for (name, help, field) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((m, v), c) in &s.shadow {
                let _ = writeln!(
                    out,
                    "{name}{{model=\"{}\",version=\"{v}\"}} {}",
                    escape(m),
                    field(c)
                );
            }
        }
        out.push_str("# HELP sluice_shadow_max_abs_diff The largest absolute difference seen between a numeric output (probability, value) of a shadow version and the primary's.\n# TYPE sluice_shadow_max_abs_diff gauge\n");
        for ((m, v), c) in &s.shadow {
            let _ = writeln!(
                out,
                "sluice_shadow_max_abs_diff{{model=\"{}\",version=\"{v}\"}} {}",
                escape(m),
                c.max_abs_diff
            );
        }
        out
    }
}

/// A histogram bound as a label: the shortest decimal that reads back as
/// it (`0.0004`, not `0.00039999999999999996`, for 0.4 ms in seconds).
fn bound_label(b: f64) -> String {
    let mut text = format!("{b:.9}");
    if text.contains('.') {
        text.truncate(text.trim_end_matches('0').trim_end_matches('.').len());
    }
    text
}

/// The value of the entry of `list` whose key `is`, added by `new` when
/// there is none.
fn entry<K, V>(
    list: &mut Vec<(K, V)>,
    is: impl Fn(&K) -> bool,
    new: impl FnOnce() -> (K, V),
) -> &mut V {
    let i = match list.iter().position(|(k, _)| is(k)) {
        Some(i) => i,
        None => {
            list.push(new());
            list.len() - 1
        }
    };
    &mut list[i].1
}

/// A label value in the exposition format: backslash, quote and newline
/// escaped; other control characters (a NUL in a URL) replaced by U+FFFD.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace(|c: char| c.is_control(), "\u{fffd}")
}

/// The request log's counts, in the exposition.
impl crate::reqlog::LogCounters for Metrics {
    fn logged(&self) {
        self.state.lock().unwrap().logged += 1;
    }

    fn dropped(&self) {
        self.state.lock().unwrap().log_dropped += 1;
    }

    fn written(&self, rows: u64) {
        self.state.lock().unwrap().logged_rows += rows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_exposition_format() {
        let m = Metrics::default();
        m.request("cancer", Some(2), "infer", 200, Duration::from_millis(3));
        m.request("cancer", Some(2), "infer", 200, Duration::from_millis(30));
        m.request("cancer", None, "infer", 400, Duration::from_millis(1));
        m.batch("cancer", 2, 5);
        m.loaded("cancer", "cancer", 1);
        m.loaded("cancer", "cancer", 2);
        let text = m.render();
        assert!(text.contains(
            "sluice_requests_total{model=\"cancer\",version=\"2\",endpoint=\"infer\",code=\"200\"} 2"
        ));
        assert!(text.contains("sluice_request_errors_total{model=\"cancer\",version=\"\"} 1"));
        assert!(text.contains(
            "sluice_request_duration_seconds_bucket{model=\"cancer\",version=\"2\",le=\"0.004\"} 1"
        ));
        assert!(text.contains(
            "sluice_request_duration_seconds_bucket{model=\"cancer\",version=\"2\",le=\"+Inf\"} 2"
        ));
        assert!(
            text.contains("sluice_batch_rows_bucket{model=\"cancer\",version=\"2\",le=\"8\"} 1")
        );
        assert!(text.contains(
            "sluice_request_duration_seconds_bucket{model=\"cancer\",version=\"2\",le=\"0.00025\"} 0"
        ));
        assert!(text.contains(
            "sluice_request_duration_seconds_bucket{model=\"cancer\",version=\"2\",le=\"0.0063\"} 1"
        ));
        assert!(text.contains(
            "sluice_request_duration_seconds_bucket{model=\"cancer\",version=\"2\",le=\"10\"} 2"
        ));
        assert!(
            text.contains(
                "sluice_request_duration_seconds_sum{model=\"cancer\",version=\"2\"} 0.033"
            )
        );
        assert!(text.contains("sluice_model_reloads_total 1"));
        m.shadow(
            "cancer",
            3,
            ShadowOutcome::Compared {
                disagreed: true,
                max_abs_diff: 0.25,
            },
        );
        m.shadow(
            "cancer",
            3,
            ShadowOutcome::Compared {
                disagreed: false,
                max_abs_diff: 0.5,
            },
        );
        m.shadow("cancer", 3, ShadowOutcome::Dropped);
        m.shadow("cancer", 3, ShadowOutcome::Error);
        let text = m.render();
        for line in [
            "sluice_shadow_compared_total{model=\"cancer\",version=\"3\"} 2",
            "sluice_shadow_disagreed_total{model=\"cancer\",version=\"3\"} 1",
            "sluice_shadow_dropped_total{model=\"cancer\",version=\"3\"} 1",
            "sluice_shadow_errors_total{model=\"cancer\",version=\"3\"} 1",
            "sluice_shadow_max_abs_diff{model=\"cancer\",version=\"3\"} 0.5",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(
            text.contains("sluice_model_loaded{route=\"cancer\",model=\"cancer\",version=\"2\"} 1")
        );
    }
}
