//! Serving statistics: what model servers answered, per model version, in
//! windows of a few seconds — requests, client and server errors, and a
//! latency histogram with fixed buckets ([`LATENCY_BUCKETS_MS`]).
//!
//! The request log cannot tell this (it holds successful, sampled requests
//! only, with no status or latency), and a server's `/metrics` are one
//! process's and die with it. Each server writes a row per window
//! ([`Metadata::record_serving_window`]); counts and fixed-bucket
//! histograms add, so [`Metadata::serving_totals`] sums the windows of any
//! number of servers exactly. Promotion gates read live evidence (requests
//! served, error rate, p99 latency) from these sums. Each window names the
//! role its version had on the server ([`ServingRole`]: primary, canary,
//! or shadow for a version that only predicted copies of requests).

use crate::db::{DbError, Metadata, MetadataError, ToValue, Value, vals};
use serde::Serialize;
use std::fmt;

/// Upper bounds of the latency buckets, in milliseconds: 24 log-spaced
/// bounds (the R5 series, five per decade) from 0.25 ms to 10 s; a last
/// bucket, past the highest bound, holds slower requests. The server's
/// windows and its Prometheus histogram use these, so the store's sums and
/// `/metrics` agree.
///
/// Part of the stored format: every window's `latency_counts` has one count
/// per bound and one more. Changing them would make old and new windows
/// impossible to add; a change needs a new column.
pub const LATENCY_BUCKETS_MS: &[f64] = &[
    0.25, 0.4, 0.63, 1.0, 1.6, 2.5, 4.0, 6.3, 10.0, 16.0, 25.0, 40.0, 63.0, 100.0, 160.0, 250.0,
    400.0, 630.0, 1000.0, 1600.0, 2500.0, 4000.0, 6300.0, 10000.0,
];

/// How many counts a latency histogram holds: one per bound of
/// [`LATENCY_BUCKETS_MS`], then one for slower requests.
pub const LATENCY_COUNTS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// The index in a window's `latency_counts` of a request that took `ms`
/// milliseconds: the first bucket whose bound is at least `ms`, else the
/// last one (slower than every bound; also a NaN).
pub fn latency_bucket(ms: f64) -> usize {
    LATENCY_BUCKETS_MS
        .iter()
        .position(|&b| ms <= b)
        .unwrap_or(LATENCY_BUCKETS_MS.len())
}

/// Which part of a served name's traffic a model version answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServingRole {
    /// The route's main version (`sluice serve --model`).
    Primary,
    /// A version given a share of the route's requests
    /// (`sluice serve --canary`).
    Canary,
    /// A version that predicts a copy of the primary's requests and answers
    /// no client (`sluice serve --shadow`): its requests, errors and
    /// latency are evidence about a candidate that served no one.
    Shadow,
}

impl ServingRole {
    /// The role as stored: `primary`, `canary` or `shadow`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServingRole::Primary => "primary",
            ServingRole::Canary => "canary",
            ServingRole::Shadow => "shadow",
        }
    }
}

impl fmt::Display for ServingRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one server answered for one model version, under one reference
/// and role, in one window of time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingWindow {
    /// Which server (an id unique to the process).
    pub server: String,
    /// The model's registered name.
    pub name: String,
    /// The version that answered.
    pub version: i64,
    /// What the server was asked to serve: `NAME@ALIAS`, `NAME:VERSION` or
    /// `NAME` (the latest). Gates ask for the evidence gathered while a
    /// version held an alias by this.
    pub reference: String,
    /// Which part of the traffic it answered.
    pub role: ServingRole,
    /// Whose traffic that was: what the server's route serves as its
    /// primary (`NAME@ALIAS`), for every role. A canary's `reference` is
    /// its own (`NAME@OTHER`, `NAME:VERSION`); this names the alias whose
    /// requests it took a share of. `""` in windows stored before sluice
    /// recorded it.
    pub route: String,
    /// When the window opened (RFC 3339).
    pub window_start: String,
    /// When it closed (RFC 3339).
    pub window_end: String,
    /// Requests answered, whatever their status.
    pub requests: u64,
    /// Of those, answered with a 4xx status.
    pub errors_4xx: u64,
    /// Of those, answered with a 5xx status.
    pub errors_5xx: u64,
    /// Requests per latency bucket: [`LATENCY_COUNTS`] counts, one per
    /// bound of [`LATENCY_BUCKETS_MS`] then the slower ones.
    pub latency_counts: Vec<u64>,
    /// The sum of the requests' latencies, in milliseconds (for a mean).
    pub latency_sum_ms: f64,
}

/// The windows of one model version summed, over every server that wrote
/// them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServingTotals {
    /// Requests answered, whatever their status.
    pub requests: u64,
    /// Of those, answered with a 4xx status.
    pub errors_4xx: u64,
    /// Of those, answered with a 5xx status.
    pub errors_5xx: u64,
    /// The merged latency histogram: [`LATENCY_COUNTS`] counts, one per
    /// bound of [`LATENCY_BUCKETS_MS`] then the slower ones (all zero when
    /// no window was found).
    pub latency_counts: Vec<u64>,
    /// The sum of every request's latency, in milliseconds.
    pub latency_sum_ms: f64,
    /// How many windows were summed.
    pub windows: u64,
    /// When the earliest of them opened (RFC 3339), if any.
    pub first_window_start: Option<String>,
    /// When the latest of them closed (RFC 3339), if any.
    pub last_window_end: Option<String>,
}

impl ServingTotals {
    /// The share of requests answered with an error, 4xx or 5xx (a
    /// candidate's transform refusing data that its predecessor took is its
    /// fault); `None` when no request was answered.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0)
            .then(|| (self.errors_4xx + self.errors_5xx) as f64 / self.requests as f64)
    }

    /// The mean latency in milliseconds; `None` when no request was
    /// answered.
    pub fn mean_ms(&self) -> Option<f64> {
        let n: u64 = self.latency_counts.iter().sum();
        (n > 0).then(|| self.latency_sum_ms / n as f64)
    }

    /// The 99th percentile of latency in milliseconds: see
    /// [`ServingTotals::quantile_ms`].
    pub fn p99_ms(&self) -> Option<f64> {
        self.quantile_ms(0.99)
    }

    /// The `q` quantile (0 to 1) of latency in milliseconds, from the
    /// merged histogram: the upper bound of the bucket in which the
    /// cumulative count reaches `q`·n. It is as coarse as the buckets
    /// ([`LATENCY_BUCKETS_MS`], about 60 % apart) and never below the true
    /// value; infinite when that bucket is the last, past 10 s. `None` when
    /// no request was answered.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let n: u64 = self.latency_counts.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut cumulative = 0;
        for (i, count) in self.latency_counts.iter().enumerate() {
            cumulative += count;
            if cumulative >= rank {
                return Some(LATENCY_BUCKETS_MS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }

    /// Adds one window's counts.
    fn add(&mut self, w: &WindowCounts) {
        self.requests += w.requests;
        self.errors_4xx += w.errors_4xx;
        self.errors_5xx += w.errors_5xx;
        if self.latency_counts.len() < w.latency_counts.len() {
            self.latency_counts.resize(w.latency_counts.len(), 0);
        }
        for (total, c) in self.latency_counts.iter_mut().zip(&w.latency_counts) {
            *total += c;
        }
        self.latency_sum_ms += w.latency_sum_ms;
        self.windows += 1;
        if self
            .first_window_start
            .as_ref()
            .is_none_or(|s| w.window_start < *s)
        {
            self.first_window_start = Some(w.window_start.clone());
        }
        if self
            .last_window_end
            .as_ref()
            .is_none_or(|e| w.window_end > *e)
        {
            self.last_window_end = Some(w.window_end.clone());
        }
    }
}

/// Which of a version's windows a sum takes: those served under
/// `reference`, in `role` (else every role but shadow), in the traffic of
/// `route`; `None` for any.
#[derive(Default)]
struct Scope<'a> {
    reference: Option<&'a str>,
    role: Option<ServingRole>,
    route: Option<&'a str>,
}

/// A stored window's counts, as read back.
struct WindowCounts {
    requests: u64,
    errors_4xx: u64,
    errors_5xx: u64,
    latency_counts: Vec<u64>,
    latency_sum_ms: f64,
    window_start: String,
    window_end: String,
}

const INSERT: &str = "INSERT INTO serving_stats (server, name, version, reference, role,
     window_start, window_end, requests, errors_4xx, errors_5xx, latency_counts, latency_sum_ms,
     route)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

fn params(w: &ServingWindow) -> Vec<Value> {
    let counts = serde_json::to_string(&w.latency_counts).expect("counts serialise");
    vals![
        w.server,
        w.name,
        w.version,
        w.reference,
        w.role.as_str(),
        w.window_start,
        w.window_end,
        w.requests as i64,
        w.errors_4xx as i64,
        w.errors_5xx as i64,
        counts,
        w.latency_sum_ms,
        w.route
    ]
    .to_vec()
}

impl Metadata {
    /// Removes the serving windows that closed before `before` (RFC 3339),
    /// or with `dry_run` only counts them; how many. What `sluice gc`
    /// prunes: a window is 10 seconds of one server, so a busy store gains
    /// thousands a day, and the gates look back hours, not months.
    pub fn prune_serving_windows(&self, before: &str, dry_run: bool) -> Result<u64, MetadataError> {
        if dry_run {
            return self.read(|c| {
                Ok(c.query_one(
                    "SELECT COUNT(*) FROM serving_stats WHERE window_end < ?1",
                    vals![before],
                )?
                .get::<i64>(0)?
                .max(0) as u64)
            });
        }
        self.write(|c| {
            c.execute(
                "DELETE FROM serving_stats WHERE window_end < ?1",
                vals![before],
            )
        })
    }

    /// Records one window a server answered.
    pub fn record_serving_window(&self, window: &ServingWindow) -> Result<(), MetadataError> {
        self.record_serving_windows(std::slice::from_ref(window))
    }

    /// Records windows a server answered, all or none (one transaction):
    /// a server's flush, so a failed one can be retried whole.
    pub fn record_serving_windows(&self, windows: &[ServingWindow]) -> Result<(), MetadataError> {
        if windows.is_empty() {
            return Ok(());
        }
        let rows: Vec<Vec<Value>> = windows.iter().map(params).collect();
        self.write(|c| c.execute_all(INSERT, &rows).map(|_| ()))
    }

    /// The windows of model `name`'s `version` that closed at or after
    /// `since` (RFC 3339, compared as text as every time in the store is;
    /// `""` for all), summed over every server; only those served under
    /// `reference` (`NAME@ALIAS`, as the server was asked) when one is
    /// given. A window counts whole when it closed at or after `since`,
    /// even if it opened before.
    ///
    /// What the version answered to clients counts — its primary and
    /// canary windows. A shadow's windows are left out: nobody received
    /// those answers, and a version shadowing `NAME@staging` must not gain
    /// staging's evidence for promotion gates by it; see
    /// [`Metadata::serving_totals_in_role`] for one role's, shadow included.
    pub fn serving_totals(
        &self,
        name: &str,
        version: i64,
        reference: Option<&str>,
        since: &str,
    ) -> Result<ServingTotals, MetadataError> {
        self.totals(
            name,
            version,
            Scope {
                reference,
                ..Scope::default()
            },
            since,
        )
    }

    /// [`Metadata::serving_totals`] of the windows counted under `role`
    /// only: what a version answered as a shadow, say, apart from what it
    /// answered to clients.
    pub fn serving_totals_in_role(
        &self,
        name: &str,
        version: i64,
        reference: Option<&str>,
        role: ServingRole,
        since: &str,
    ) -> Result<ServingTotals, MetadataError> {
        self.totals(
            name,
            version,
            Scope {
                reference,
                role: Some(role),
                route: None,
            },
            since,
        )
    }

    /// [`Metadata::serving_totals_in_role`] of the windows in the traffic
    /// of `route` (`NAME@ALIAS`, what the servers' route served as its
    /// primary), whatever reference the version itself was served under:
    /// the canary that split `NAME@production`'s requests, not one that
    /// split `NAME@staging`'s on other servers. Windows stored before
    /// sluice recorded their route count for every route, as they did.
    pub fn serving_totals_in_route(
        &self,
        name: &str,
        version: i64,
        route: &str,
        role: ServingRole,
        since: &str,
    ) -> Result<ServingTotals, MetadataError> {
        self.totals(
            name,
            version,
            Scope {
                reference: None,
                role: Some(role),
                route: Some(route),
            },
            since,
        )
    }

    fn totals(
        &self,
        name: &str,
        version: i64,
        scope: Scope<'_>,
        since: &str,
    ) -> Result<ServingTotals, MetadataError> {
        let mut sql = String::from(
            "SELECT requests, errors_4xx, errors_5xx, latency_counts,
             latency_sum_ms, window_start, window_end FROM serving_stats
             WHERE name = ?1 AND version = ?2 AND window_end >= ?3",
        );
        let mut args: Vec<Value> = vals![name, version, since].to_vec();
        if let Some(r) = scope.reference {
            args.push(r.to_value());
            sql += &format!(" AND reference = ?{}", args.len());
        }
        match scope.role {
            Some(role) => {
                args.push(role.as_str().to_value());
                sql += &format!(" AND role = ?{}", args.len());
            }
            None => sql += " AND role <> 'shadow'",
        }
        if let Some(route) = scope.route {
            args.push(route.to_value());
            sql += &format!(" AND (route = ?{} OR route = '')", args.len());
        }
        self.read(|c| {
            let rows = c.query(&sql, &args)?;
            let mut totals = ServingTotals {
                latency_counts: vec![0; LATENCY_COUNTS],
                ..ServingTotals::default()
            };
            for r in &rows {
                let counts: String = r.get(3)?;
                totals.add(&WindowCounts {
                    requests: r.get::<i64>(0)?.max(0) as u64,
                    errors_4xx: r.get::<i64>(1)?.max(0) as u64,
                    errors_5xx: r.get::<i64>(2)?.max(0) as u64,
                    latency_counts: serde_json::from_str(&counts).map_err(|e| {
                        DbError::Decode(format!(
                            "serving_stats.latency_counts is not a JSON array of counts: {e}"
                        ))
                    })?,
                    latency_sum_ms: r.get(4)?,
                    window_start: r.get(5)?,
                    window_end: r.get(6)?,
                });
            }
            Ok(totals)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window of `requests` requests, `e4` and `e5` of them errors, the
    /// latencies `ms` (one per request).
    fn window(
        server: &str,
        reference: &str,
        end: &str,
        e4: u64,
        e5: u64,
        ms: &[f64],
    ) -> ServingWindow {
        let mut counts = vec![0; LATENCY_COUNTS];
        for &m in ms {
            counts[latency_bucket(m)] += 1;
        }
        ServingWindow {
            server: server.into(),
            name: "cancer".into(),
            version: 2,
            reference: reference.into(),
            role: ServingRole::Primary,
            route: reference.into(),
            window_start: "2026-01-01T00:00:00.000Z".into(),
            window_end: end.into(),
            requests: ms.len() as u64,
            errors_4xx: e4,
            errors_5xx: e5,
            latency_counts: counts,
            latency_sum_ms: ms.iter().sum(),
        }
    }

    #[test]
    fn a_role_chooses_its_windows_and_shadow_windows_are_not_answers() {
        for (_dir, m) in crate::db::tests::backends() {
            let primary = window(
                "a",
                "cancer@staging",
                "2026-01-01T00:00:10.000Z",
                0,
                0,
                &[1.0],
            );
            let shadow = ServingWindow {
                role: ServingRole::Shadow,
                ..window(
                    "a",
                    "cancer@staging",
                    "2026-01-01T00:00:10.000Z",
                    1,
                    0,
                    &[2.0, 3.0],
                )
            };
            m.record_serving_windows(&[primary, shadow]).unwrap();
            // What clients received: the shadow's windows are left out.
            let answered = m.serving_totals("cancer", 2, None, "").unwrap();
            assert_eq!(answered.requests, 1);
            let answered = m
                .serving_totals("cancer", 2, Some("cancer@staging"), "")
                .unwrap();
            assert_eq!((answered.requests, answered.errors_4xx), (1, 0));
            let t = m
                .serving_totals_in_role(
                    "cancer",
                    2,
                    Some("cancer@staging"),
                    ServingRole::Shadow,
                    "",
                )
                .unwrap();
            assert_eq!((t.requests, t.errors_4xx, t.windows), (2, 1, 1));
            let t = m
                .serving_totals_in_role("cancer", 2, None, ServingRole::Primary, "")
                .unwrap();
            assert_eq!((t.requests, t.errors_4xx), (1, 0));
            let t = m
                .serving_totals_in_role("cancer", 2, None, ServingRole::Canary, "")
                .unwrap();
            assert_eq!(t.requests, 0);
        }
    }

    #[test]
    fn a_canary_counts_in_the_route_whose_traffic_it_split_and_old_windows_in_every_route() {
        for (_dir, m) in crate::db::tests::backends() {
            // Version 2 as the canary of production's servers and, on
            // another server, of staging's; then a window stored before
            // routes were recorded.
            let canary = |server: &str, route: &str, ms: &[f64]| ServingWindow {
                role: ServingRole::Canary,
                route: route.into(),
                ..window(server, "cancer:2", "2026-01-01T00:00:10.000Z", 0, 0, ms)
            };
            m.record_serving_windows(&[
                canary("a", "cancer@production", &[1.0]),
                canary("b", "cancer@staging", &[1.0, 1.0]),
                canary("c", "", &[1.0, 1.0, 1.0, 1.0]),
            ])
            .unwrap();
            let in_route = |route| {
                m.serving_totals_in_route("cancer", 2, route, ServingRole::Canary, "")
                    .unwrap()
                    .requests
            };
            assert_eq!(in_route("cancer@production"), 1 + 4);
            assert_eq!(in_route("cancer@staging"), 2 + 4);
            assert_eq!(in_route("cancer@canary-free"), 4);
            // By role alone, every route's.
            let t = m
                .serving_totals_in_role("cancer", 2, None, ServingRole::Canary, "")
                .unwrap();
            assert_eq!(t.requests, 7);
            // Another role in the same route is not a canary's.
            let t = m
                .serving_totals_in_route("cancer", 2, "cancer@production", ServingRole::Primary, "")
                .unwrap();
            assert_eq!(t.requests, 0);
        }
    }

    #[test]
    fn windows_closed_before_a_time_are_pruned_and_a_dry_run_only_counts_them() {
        for (_dir, m) in crate::db::tests::backends() {
            for end in ["2026-01-01T00:00:10.000Z", "2026-02-01T00:00:10.000Z"] {
                m.record_serving_window(&window("a", "cancer@staging", end, 0, 0, &[1.0]))
                    .unwrap();
            }
            let cut = "2026-01-15T00:00:00.000Z";
            assert_eq!(m.prune_serving_windows(cut, true).unwrap(), 1);
            assert_eq!(m.serving_totals("cancer", 2, None, "").unwrap().windows, 2);
            assert_eq!(m.prune_serving_windows(cut, false).unwrap(), 1);
            let left = m.serving_totals("cancer", 2, None, "").unwrap();
            assert_eq!(
                (left.windows, left.last_window_end.as_deref()),
                (1, Some("2026-02-01T00:00:10.000Z"))
            );
        }
    }

    #[test]
    fn the_windows_of_two_servers_add_up() {
        for (_dir, m) in crate::db::tests::backends() {
            m.record_serving_window(&window(
                "a",
                "cancer@staging",
                "2026-01-01T00:00:10.000Z",
                1,
                0,
                &[1.0, 2.0, 3.0],
            ))
            .unwrap();
            m.record_serving_windows(&[
                window(
                    "b",
                    "cancer@staging",
                    "2026-01-01T00:00:10.000Z",
                    0,
                    1,
                    &[5.0, 5.0],
                ),
                window(
                    "b",
                    "cancer@staging",
                    "2026-01-01T00:00:20.000Z",
                    0,
                    0,
                    &[0.1],
                ),
            ])
            .unwrap();
            // Another version, and another model, are not summed.
            let mut other = window("a", "cancer:3", "2026-01-01T00:00:10.000Z", 0, 0, &[1.0]);
            other.version = 3;
            m.record_serving_window(&other).unwrap();
            other.name = "other".into();
            other.version = 2;
            m.record_serving_window(&other).unwrap();

            let t = m.serving_totals("cancer", 2, None, "").unwrap();
            assert_eq!(
                (t.requests, t.errors_4xx, t.errors_5xx, t.windows),
                (6, 1, 1, 3)
            );
            assert_eq!(t.latency_counts.len(), LATENCY_COUNTS);
            assert_eq!(t.latency_counts.iter().sum::<u64>(), 6);
            assert_eq!(t.latency_counts[latency_bucket(5.0)], 2);
            assert!((t.latency_sum_ms - 16.1).abs() < 1e-9);
            assert_eq!(
                t.first_window_start.as_deref(),
                Some("2026-01-01T00:00:00.000Z")
            );
            assert_eq!(
                t.last_window_end.as_deref(),
                Some("2026-01-01T00:00:20.000Z")
            );
            assert!((t.mean_ms().unwrap() - 16.1 / 6.0).abs() < 1e-9);
        }
    }

    #[test]
    fn since_and_reference_choose_the_windows() {
        for (_dir, m) in crate::db::tests::backends() {
            m.record_serving_windows(&[
                window(
                    "a",
                    "cancer@staging",
                    "2026-01-01T00:00:10.000Z",
                    0,
                    0,
                    &[1.0],
                ),
                window(
                    "a",
                    "cancer@staging",
                    "2026-01-01T00:01:00.000Z",
                    0,
                    0,
                    &[1.0, 1.0],
                ),
                window(
                    "a",
                    "cancer@production",
                    "2026-01-01T00:02:00.000Z",
                    0,
                    0,
                    &[1.0; 4],
                ),
            ])
            .unwrap();
            let count = |reference, since| {
                m.serving_totals("cancer", 2, reference, since)
                    .unwrap()
                    .requests
            };
            assert_eq!(count(None, ""), 7);
            assert_eq!(
                count(None, "2026-01-01T00:01:00.000Z"),
                6,
                "at `since` counts"
            );
            assert_eq!(count(None, "2026-01-01T00:01:00.001Z"), 4);
            assert_eq!(count(Some("cancer@staging"), ""), 3);
            assert_eq!(count(Some("cancer@staging"), "2026-01-01T00:00:30.000Z"), 2);
            assert_eq!(count(Some("cancer@canary"), ""), 0);
            let none = m
                .serving_totals("cancer", 2, None, "2027-01-01T00:00:00.000Z")
                .unwrap();
            assert_eq!((none.requests, none.windows), (0, 0));
            assert_eq!(none.first_window_start, None);
            assert_eq!(none.error_rate(), None);
            assert_eq!(none.p99_ms(), None);
        }
    }

    #[test]
    fn p99_comes_from_the_merged_buckets() {
        for (_dir, m) in crate::db::tests::backends() {
            // 99 fast requests on one server and one slow one on another:
            // the 99th percentile is still fast, the 100th is the slow one.
            m.record_serving_window(&window(
                "a",
                "cancer@staging",
                "2026-01-01T00:00:10.000Z",
                0,
                0,
                &[0.9; 99],
            ))
            .unwrap();
            m.record_serving_window(&window(
                "b",
                "cancer@staging",
                "2026-01-01T00:00:10.000Z",
                0,
                0,
                &[120.0],
            ))
            .unwrap();
            let t = m.serving_totals("cancer", 2, None, "").unwrap();
            assert_eq!(t.p99_ms(), Some(1.0), "the bound of 0.9 ms's bucket");
            assert_eq!(t.quantile_ms(1.0), Some(160.0));
            assert_eq!(t.quantile_ms(0.5), Some(1.0));
            assert_eq!(t.quantile_ms(0.0), Some(1.0), "the lowest request's bucket");
            // Two more slow ones push p99 into the slow bucket.
            m.record_serving_window(&window(
                "b",
                "cancer@staging",
                "2026-01-01T00:00:20.000Z",
                0,
                0,
                &[130.0, 20_000.0],
            ))
            .unwrap();
            let t = m.serving_totals("cancer", 2, None, "").unwrap();
            assert_eq!(t.p99_ms(), Some(160.0));
            assert_eq!(
                t.quantile_ms(1.0),
                Some(f64::INFINITY),
                "past the last bound"
            );
        }
    }

    #[test]
    fn the_error_rate_counts_client_and_server_errors() {
        for (_dir, m) in crate::db::tests::backends() {
            m.record_serving_windows(&[
                window(
                    "a",
                    "cancer@staging",
                    "2026-01-01T00:00:10.000Z",
                    2,
                    1,
                    &[1.0; 10],
                ),
                window(
                    "b",
                    "cancer@staging",
                    "2026-01-01T00:00:10.000Z",
                    0,
                    1,
                    &[1.0; 10],
                ),
            ])
            .unwrap();
            let t = m.serving_totals("cancer", 2, None, "").unwrap();
            assert_eq!(t.error_rate(), Some(0.2));
        }
    }

    #[test]
    fn buckets_are_increasing_and_a_latency_falls_in_the_first_that_holds_it() {
        assert_eq!(LATENCY_BUCKETS_MS.len(), 24);
        assert!(LATENCY_BUCKETS_MS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(latency_bucket(0.0), 0);
        assert_eq!(latency_bucket(0.25), 0);
        assert_eq!(latency_bucket(0.26), 1);
        assert_eq!(latency_bucket(10_000.0), 23);
        assert_eq!(latency_bucket(10_000.1), 24);
        assert_eq!(latency_bucket(f64::NAN), 24);
    }
}
