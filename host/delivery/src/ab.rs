//! A/B reports: how the versions that answered an alias's requests — its
//! primary and the canary splitting its traffic (`sluice serve --canary`,
//! sticky by `--variant-key`, or a rollout's candidate) — compare over a
//! window of time, with confidence intervals.
//!
//! Per variant (a version in a role, `primary` or `canary`), from the
//! store's serving windows summed over every server: requests, 4xx and
//! 5xx answers, the error rate with its Wilson score interval, and p50 and
//! p99 latency from the merged histograms (upper bounds of their buckets).
//! Given true labels (a feedback file with `request_id` and the label
//! column, as `sluice monitor --feedback` reads), each version's live
//! accuracy on the labelled requests it answered (joined with its logged
//! requests by [`sluice_monitor::labelled_answers`]), with its Wilson
//! interval. Between the canary and the primary: the difference of
//! error rates and of accuracies, canary − primary, with Newcombe's
//! hybrid score interval and a two-proportion z-test
//! ([`crate::stats`]), and a verdict in a sentence.
//!
//! Which windows count: the primary's are those its servers recorded
//! under `NAME@ALIAS` in the role `primary`; the canary's are the windows
//! in the role `canary` of the servers whose route serves `NAME@ALIAS` (a
//! canary's own reference is `NAME@OTHER` or `NAME:VERSION`; its windows
//! also name the route whose traffic it split). A canary of another alias
//! of the same model is not counted. Windows stored before servers named
//! their route (sluice before schema version 11) count for every alias.

use crate::stats::{Difference, Proportion, z_two_sided};
use serde::Serialize;
use sluice_store::serving_stats::{ServingRole, ServingTotals};
use sluice_store::{ModelRef, Store};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why an A/B report cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum AbError {
    /// The store could not be read.
    #[error(transparent)]
    Metadata(#[from] sluice_store::MetadataError),
    /// The confidence is not a share strictly between 0 and 1.
    #[error("confidence {0} is not between 0 and 1 (0.95 is 95%)")]
    Confidence(f64),
    /// No model has this name.
    #[error("there is no model `{name}` in the store{}", known_models(.known))]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The models the store has.
        known: Vec<String>,
    },
    /// The model has no such alias.
    #[error("model `{name}` has no alias `{alias}`{}", known_aliases(.name, .known))]
    UnknownAlias {
        /// The model.
        name: String,
        /// The alias asked for.
        alias: String,
        /// The aliases it has.
        known: Vec<String>,
    },
    /// No server recorded a request answered as the alias in the window.
    #[error(
        "nothing was served as {reference} since {since}; is `sluice serve --model {reference}` running with serving statistics on (`--stats-every`, not `off`)?"
    )]
    NothingServed {
        /// `NAME@ALIAS`.
        reference: String,
        /// The start of the window (RFC 3339).
        since: String,
    },
    /// The feedback file cannot be read.
    #[error("feedback file {}: {reason}", .path.display())]
    FeedbackFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The feedback file lacks a column the join needs.
    #[error(
        "feedback file {} has no column `{column}` ({why}); its columns: {}",
        .path.display(),
        .columns.join(", ")
    )]
    FeedbackColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// What the column is for.
        why: &'static str,
        /// The columns it has.
        columns: Vec<String>,
    },
    /// No label column was given and the model's card names none.
    #[error(
        "the card of {reference} names no label column; say which column of {} holds the true labels with --label COLUMN",
        .path.display()
    )]
    NoLabel {
        /// `NAME@ALIAS`.
        reference: String,
        /// The feedback file.
        path: PathBuf,
    },
}

fn known_models(known: &[String]) -> String {
    if known.is_empty() {
        "; it has no models yet".into()
    } else {
        format!("; models: {}", known.join(", "))
    }
}

fn known_aliases(name: &str, known: &[String]) -> String {
    if known.is_empty() {
        format!(
            "; it has no aliases (`sluice models promote {name} VERSION --alias ALIAS` sets one)"
        )
    } else {
        format!("; its aliases: {}", known.join(", "))
    }
}

/// True labels to judge live accuracy by.
#[derive(Debug, Clone)]
pub struct Feedback<'a> {
    /// A CSV or Parquet file with `request_id`, the label column and
    /// optionally `row`.
    pub path: &'a Path,
    /// The label column; `None`: the one the model's card names.
    pub label: Option<&'a str>,
}

/// What to report on.
#[derive(Debug, Clone)]
pub struct AbOptions<'a> {
    /// The start of the window: serving windows that closed at or after
    /// it, and request logs whose last request is at or after it.
    pub since: SystemTime,
    /// The end of the window (now), for the report.
    pub now: SystemTime,
    /// The confidence of the intervals (0.95 for 95 %).
    pub confidence: f64,
    /// True labels, for live accuracy.
    pub feedback: Option<Feedback<'a>>,
}

/// One variant: a version in one role of the alias's traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variant {
    /// `primary` or `canary`.
    pub role: ServingRole,
    /// The version that answered.
    pub version: i64,
    /// Requests answered, whatever their status.
    pub requests: u64,
    /// Of those, answered 4xx.
    pub errors_4xx: u64,
    /// Of those, answered 5xx.
    pub errors_5xx: u64,
    /// The share answered 4xx or 5xx, with its Wilson interval.
    pub error_rate: Option<Proportion>,
    /// The median latency in milliseconds: the upper bound of the
    /// histogram bucket it falls in (never below the true value); `null`
    /// in JSON past the last bound (10 s).
    pub p50_ms: Option<f64>,
    /// The 99th percentile of latency, as `p50_ms`.
    pub p99_ms: Option<f64>,
    /// The mean latency in milliseconds (exact: from the sum of
    /// latencies).
    pub mean_ms: Option<f64>,
    /// How many serving windows were summed.
    pub windows: u64,
    /// When the earliest of them opened.
    pub first_window_start: Option<String>,
    /// When the latest of them closed.
    pub last_window_end: Option<String>,
    /// Live accuracy, with `--feedback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Accuracy>,
}

impl Variant {
    fn new(role: ServingRole, version: i64, t: &ServingTotals, confidence: f64) -> Variant {
        Variant {
            role,
            version,
            requests: t.requests,
            errors_4xx: t.errors_4xx,
            errors_5xx: t.errors_5xx,
            error_rate: Proportion::new(t.errors_4xx + t.errors_5xx, t.requests, confidence),
            p50_ms: t.quantile_ms(0.5),
            p99_ms: t.p99_ms(),
            mean_ms: t.mean_ms(),
            windows: t.windows,
            first_window_start: t.first_window_start.clone(),
            last_window_end: t.last_window_end.clone(),
            accuracy: None,
        }
    }

    /// All answers counted as errors.
    fn errors(&self) -> u64 {
        self.errors_4xx + self.errors_5xx
    }
}

/// A version's live accuracy on the labelled requests it answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accuracy {
    /// Logged rows the version answered in the window (the request log,
    /// `--log-sample` of them).
    pub logged: u64,
    /// Of those, rows with a label in the feedback.
    pub labelled: u64,
    /// Of those, rows predicted right.
    pub right: u64,
    /// `right / labelled` with its Wilson interval; `None` with no
    /// labelled row.
    pub accuracy: Option<Proportion>,
}

/// A difference between the canary and the primary, canary − primary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// `accuracy` or `error_rate`.
    pub metric: String,
    /// The canary's rate.
    pub canary: f64,
    /// The primary's rate.
    pub primary: f64,
    /// The difference with its interval and test.
    #[serde(flatten)]
    pub difference: Difference,
    /// Whether the interval excludes 0.
    pub significant: bool,
    /// The verdict in a sentence.
    pub verdict: String,
}

/// The A/B report of an alias over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AbReport {
    /// The model.
    pub model: String,
    /// The alias.
    pub alias: String,
    /// `NAME@ALIAS`.
    pub reference: String,
    /// The start of the window (RFC 3339).
    pub since: String,
    /// Its end: when the report was made.
    pub until: String,
    /// The intervals' confidence.
    pub confidence: f64,
    /// The version the alias points at now.
    pub current_version: i64,
    /// Every variant that answered requests in the window, primaries
    /// first, by version.
    pub variants: Vec<Variant>,
    /// The versions compared: the primary and the canary that answered
    /// the most requests; `None` when no canary answered.
    pub compared: Option<Compared>,
    /// The feedback file, with `--feedback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
    /// Its label column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The comparisons, canary − primary: the error rate, then accuracy
    /// with feedback (when both sides have labelled requests).
    pub comparisons: Vec<Comparison>,
    /// What a reader should know about the numbers.
    pub notes: Vec<String>,
}

/// Which two versions a report compares.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Compared {
    /// The primary's version.
    pub primary: i64,
    /// The canary's version.
    pub canary: i64,
}

/// Makes the A/B report of `name@alias` over the window of `options`.
pub fn report(
    store: &Store,
    name: &str,
    alias: &str,
    options: &AbOptions<'_>,
) -> Result<AbReport, AbError> {
    let confidence = options.confidence;
    if z_two_sided(confidence).is_none() {
        return Err(AbError::Confidence(confidence));
    }
    let versions = store.metadata.model_versions(name)?;
    if versions.is_empty() {
        return Err(AbError::UnknownModel {
            name: name.into(),
            known: store
                .metadata
                .models()?
                .into_iter()
                .map(|m| m.name)
                .collect(),
        });
    }
    let Some(current) = store
        .metadata
        .resolve_model(&ModelRef::Alias(name.into(), alias.into()))?
    else {
        let mut known: Vec<String> = versions.iter().flat_map(|v| v.aliases.clone()).collect();
        known.sort();
        known.dedup();
        return Err(AbError::UnknownAlias {
            name: name.into(),
            alias: alias.into(),
            known,
        });
    };
    let reference = format!("{name}@{alias}");
    let since = sluice_store::time::rfc3339(options.since);

    let mut primaries = Vec::new();
    let mut canaries = Vec::new();
    let mut ascending: Vec<i64> = versions.iter().map(|v| v.version).collect();
    ascending.sort_unstable();
    for &v in &ascending {
        let p = store.metadata.serving_totals_in_role(
            name,
            v,
            Some(&reference),
            ServingRole::Primary,
            &since,
        )?;
        if p.windows > 0 {
            primaries.push(Variant::new(ServingRole::Primary, v, &p, confidence));
        }
        let c = store.metadata.serving_totals_in_route(
            name,
            v,
            &reference,
            ServingRole::Canary,
            &since,
        )?;
        if c.windows > 0 {
            canaries.push(Variant::new(ServingRole::Canary, v, &c, confidence));
        }
    }
    if primaries.is_empty() {
        return Err(AbError::NothingServed { reference, since });
    }
    let mut notes = Vec::new();
    let busiest = |vs: &[Variant]| vs.iter().max_by_key(|v| (v.requests, v.version)).cloned();
    let primary = busiest(&primaries).expect("at least one primary");
    let canary = busiest(&canaries);
    if primaries.len() > 1 {
        notes.push(format!(
            "{reference} moved in the window: versions {} answered as its primary; version {} (the most requests) is compared; narrow --since to one version's time",
            list(&primaries),
            primary.version
        ));
    }
    if canaries.len() > 1 {
        notes.push(format!(
            "versions {} answered as canaries of {name} in the window; version {} (the most requests) is compared",
            list(&canaries),
            canary.as_ref().expect("canaries").version
        ));
    }
    match &canary {
        None => notes.push(format!(
            "no canary of {name} answered a request in the window: nothing to compare {reference} with; `sluice serve --model {reference} --canary {name}@OTHER=PCT` splits its traffic"
        )),
        Some(c) if c.version == primary.version => notes.push(format!(
            "the canary is the primary's version ({}): the two cannot differ but by chance, and their logged requests (hence accuracy) are one",
            c.version
        )),
        Some(_) => {}
    }

    let mut variants: Vec<Variant> = primaries.into_iter().chain(canaries).collect();
    let mut feedback_path = None;
    let mut label_column = None;
    if let Some(feedback) = &options.feedback {
        let label = match feedback.label {
            Some(l) => l.to_string(),
            None => crate::card_label(store, &current).ok_or_else(|| AbError::NoLabel {
                reference: reference.clone(),
                path: feedback.path.to_path_buf(),
            })?,
        };
        let path = feedback.path;
        let table = sluice_tables::read_table(path).map_err(|e| AbError::FeedbackFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        for (column, why) in [
            (
                "request_id",
                "the id of the served request each label is for",
            ),
            (label.as_str(), "the true labels"),
        ] {
            if table.column_by_name(column).is_none() {
                return Err(AbError::FeedbackColumn {
                    path: path.to_path_buf(),
                    column: column.into(),
                    why,
                    columns: table
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect(),
                });
            }
        }
        let mut measured: Vec<(i64, Accuracy)> = Vec::new();
        for variant in &mut variants {
            let found = measured.iter().find(|(v, _)| *v == variant.version);
            let accuracy = match found {
                Some((_, a)) => a.clone(),
                None => {
                    let (right, labelled, logged) = sluice_monitor::labelled_answers(
                        store,
                        name,
                        variant.version,
                        Some(&reference),
                        &since,
                        &table,
                        &label,
                    )
                    .map_err(|e| AbError::FeedbackFile {
                        path: feedback.path.to_path_buf(),
                        reason: e.to_string(),
                    })?;
                    let a = Accuracy {
                        logged,
                        labelled,
                        right,
                        accuracy: Proportion::new(right, labelled, confidence),
                    };
                    measured.push((variant.version, a.clone()));
                    a
                }
            };
            variant.accuracy = Some(accuracy);
        }
        if measured.iter().all(|(_, a)| a.labelled == 0) {
            notes.push(format!(
                "no request logged in the window has a label in {}: are its `request_id`s the ids of served requests, and is `sluice serve --log-sample` above 0?",
                feedback.path.display()
            ));
        }
        feedback_path = Some(feedback.path.display().to_string());
        label_column = Some(label);
    }

    let mut comparisons = Vec::new();
    if let Some(c) = &canary {
        let p = variants
            .iter()
            .find(|v| v.role == ServingRole::Primary && v.version == primary.version)
            .expect("the primary compared is a variant");
        let c = variants
            .iter()
            .find(|v| v.role == ServingRole::Canary && v.version == c.version)
            .expect("the canary compared is a variant");
        if let Some(d) = Difference::new(c.errors(), c.requests, p.errors(), p.requests, confidence)
        {
            comparisons.push(comparison(
                "error_rate",
                "error rate",
                c.errors() as f64 / c.requests as f64,
                p.errors() as f64 / p.requests as f64,
                d,
                confidence,
            ));
        }
        if let (Some(ca), Some(pa)) = (&c.accuracy, &p.accuracy) {
            match Difference::new(ca.right, ca.labelled, pa.right, pa.labelled, confidence) {
                Some(d) if c.version != p.version => comparisons.push(comparison(
                    "accuracy",
                    "accuracy",
                    ca.right as f64 / ca.labelled as f64,
                    pa.right as f64 / pa.labelled as f64,
                    d,
                    confidence,
                )),
                Some(_) => {}
                None => notes.push(format!(
                    "accuracy is not compared: the canary has {} labelled request(s), the primary {}",
                    ca.labelled, pa.labelled
                )),
            }
        }
    }
    Ok(AbReport {
        model: name.into(),
        alias: alias.into(),
        reference,
        since,
        until: sluice_store::time::rfc3339(options.now),
        confidence,
        current_version: current.version,
        variants,
        compared: canary.as_ref().map(|c| Compared {
            primary: primary.version,
            canary: c.version,
        }),
        feedback: feedback_path,
        label: label_column,
        comparisons,
        notes,
    })
}

fn list(variants: &[Variant]) -> String {
    variants
        .iter()
        .map(|v| v.version.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A comparison with its verdict.
fn comparison(
    metric: &str,
    what: &str,
    canary: f64,
    primary: f64,
    d: Difference,
    confidence: f64,
) -> Comparison {
    let level = percent(confidence);
    let ci = format!(
        "{level} CI {} to {}",
        signed_points(d.low),
        signed_points(d.high)
    );
    let p = p_value(d.p_value);
    let verdict = if d.significant() {
        format!(
            "canary {what} {} by {} points ({ci}), {p}",
            if d.estimate > 0.0 { "higher" } else { "lower" },
            points(d.estimate.abs()),
        )
    } else {
        format!(
            "{what}: no significant difference at {level} (canary − primary {} points, {ci}), {p}",
            signed_points(d.estimate)
        )
    };
    Comparison {
        metric: metric.into(),
        canary,
        primary,
        significant: d.significant(),
        difference: d,
        verdict,
    }
}

/// A confidence as a percentage: 0.95 → `95%`, 0.995 → `99.5%`.
pub fn percent(confidence: f64) -> String {
    let p = format!("{:.3}", confidence * 100.0);
    format!("{}%", p.trim_end_matches('0').trim_end_matches('.'))
}

/// A proportion in percentage points, one decimal.
fn points(x: f64) -> String {
    format!("{:.1}", x * 100.0)
}

/// [`points`] with its sign, a true minus for negatives.
fn signed_points(x: f64) -> String {
    let p = points(x);
    match p.strip_prefix('-') {
        Some(rest) if rest.chars().any(|c| c != '0' && c != '.') => format!("−{rest}"),
        Some(rest) => rest.to_string(),
        None if p.chars().any(|c| c != '0' && c != '.') => format!("+{p}"),
        None => p,
    }
}

/// A p-value as a reader wants it: `p = 0.43`, `p = 0.0003`, `p < 0.0001`.
pub fn p_value(p: f64) -> String {
    if p < 0.0001 {
        "p < 0.0001".into()
    } else if p < 0.01 {
        format!("p = {p:.4}")
    } else {
        format!("p = {p:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_store::serving_stats::{LATENCY_COUNTS, ServingWindow, latency_bucket};

    #[test]
    fn numbers_read_as_a_person_writes_them() {
        assert_eq!(percent(0.95), "95%");
        assert_eq!(percent(0.995), "99.5%");
        assert_eq!(signed_points(-0.041), "−4.1");
        assert_eq!(signed_points(0.0), "0.0");
        assert_eq!(signed_points(-0.0001), "0.0");
        assert_eq!(signed_points(0.02), "+2.0");
        assert_eq!(p_value(0.0003), "p = 0.0003");
        assert_eq!(p_value(0.43), "p = 0.43");
        assert_eq!(p_value(0.00001), "p < 0.0001");
    }

    #[test]
    fn a_significant_drop_and_no_difference_read_as_verdicts() {
        let d = Difference::new(860, 1000, 901, 1000, 0.95).unwrap();
        let c = comparison("accuracy", "accuracy", 0.86, 0.901, d, 0.95);
        assert!(c.significant);
        assert!(
            c.verdict
                .starts_with("canary accuracy lower by 4.1 points (95% CI −"),
            "{}",
            c.verdict
        );
        let d = Difference::new(5, 1000, 4, 1000, 0.95).unwrap();
        let c = comparison("error_rate", "error rate", 0.005, 0.004, d, 0.95);
        assert!(!c.significant);
        assert!(
            c.verdict
                .starts_with("error rate: no significant difference at 95% (canary − primary +0.1 points, 95% CI −"),
            "{}",
            c.verdict
        );
    }

    /// A window of server `a`; a canary's splits `m@production`, the
    /// other roles' route is their reference.
    fn window(
        version: i64,
        reference: &str,
        role: ServingRole,
        requests: u64,
        errors: u64,
    ) -> ServingWindow {
        let mut counts = vec![0; LATENCY_COUNTS];
        counts[latency_bucket(2.0)] = requests;
        ServingWindow {
            server: "a".into(),
            name: "m".into(),
            version,
            reference: reference.into(),
            role,
            route: match role {
                ServingRole::Canary => "m@production".into(),
                _ => reference.into(),
            },
            window_start: "2026-01-01T00:00:00.000Z".into(),
            window_end: "2026-01-01T00:00:10.000Z".into(),
            requests,
            errors_4xx: errors,
            errors_5xx: 0,
            latency_counts: counts,
            latency_sum_ms: 2.0 * requests as f64,
        }
    }

    /// A store with versions 1 and 2 of model `m`, 1 on `production`
    /// and 2 on `staging`.
    fn registry() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m = &store.metadata;
        let spec = store.objects.put(b"spec").unwrap();
        m.start_run("r", "p", "p.toml", &spec, "manual", "t0", None)
            .unwrap();
        for (v, card) in [(1, r#"{"label": "diagnosis"}"#), (2, "{}")] {
            let artifact = store.objects.put(card.as_bytes()).unwrap();
            m.record_artifacts(&[(artifact, "model", card.len() as u64)])
                .unwrap();
            let models = [sluice_store::NewModel {
                name: "m".into(),
                artifact,
                identity: None,
                metrics: serde_json::json!({}),
            }];
            let key = store.objects.put(format!("key {v}").as_bytes()).unwrap();
            let step = format!("push-{v}");
            m.record_execution(
                ("push", 1),
                &sluice_store::metadata::NewExecution {
                    run_id: "r",
                    step: &step,
                    component: "std:push",
                    component_digest: spec,
                    cache_key: key,
                    key_parts: &serde_json::json!({}),
                    params: &serde_json::json!({}),
                    inputs: &[],
                    started_at: "t0",
                },
                &sluice_store::metadata::Finished {
                    state: sluice_store::metadata::ExecutionState::Succeeded,
                    ended_at: "t1",
                    duration_ms: 1.0,
                    attempts: 1,
                    error: None,
                    failure: None,
                    metrics: serde_json::json!({}),
                    report: None,
                    outputs: &[],
                    cached_from: None,
                    models: &models,
                },
            )
            .unwrap();
        }
        m.set_alias("m", "production", 1, "ann", "", "2025-12-01T00:00:00Z")
            .unwrap();
        m.set_alias("m", "staging", 2, "ann", "", "2025-12-01T00:00:00Z")
            .unwrap();
        (dir, store)
    }

    fn at(s: &str) -> SystemTime {
        sluice_store::time::parse_rfc3339(s).unwrap()
    }

    fn options() -> AbOptions<'static> {
        AbOptions {
            since: at("2025-12-31T00:00:00Z"),
            now: at("2026-01-02T00:00:00Z"),
            confidence: 0.95,
            feedback: None,
        }
    }

    #[test]
    fn variants_come_from_the_alias_primary_and_the_canary_windows_in_the_window() {
        let (_dir, store) = registry();
        let mut old = window(1, "m@production", ServingRole::Primary, 1000, 1000);
        old.window_end = "2025-12-30T00:00:00.000Z".into();
        store
            .metadata
            .record_serving_windows(&[
                window(1, "m@production", ServingRole::Primary, 400, 4),
                window(1, "m@production", ServingRole::Primary, 600, 6),
                window(2, "m@staging", ServingRole::Canary, 1000, 40),
                // Not this alias's, not answers, or too old: left out.
                window(2, "m@staging", ServingRole::Primary, 77, 0),
                ServingWindow {
                    route: "m@staging".into(),
                    ..window(2, "m:2", ServingRole::Canary, 88, 0)
                },
                window(2, "m@staging", ServingRole::Shadow, 55, 0),
                old,
            ])
            .unwrap();
        let r = report(&store, "m", "production", &options()).unwrap();
        assert_eq!(r.reference, "m@production");
        assert_eq!(r.since, "2025-12-31T00:00:00.000Z");
        assert_eq!(r.current_version, 1);
        let sides: Vec<_> = r
            .variants
            .iter()
            .map(|v| (v.role, v.version, v.requests, v.errors_4xx, v.windows))
            .collect();
        assert_eq!(
            sides,
            [
                (ServingRole::Primary, 1, 1000, 10, 2),
                (ServingRole::Canary, 2, 1000, 40, 1)
            ]
        );
        let p = r.variants[0].error_rate.unwrap();
        let want = crate::stats::wilson(10, 1000, 0.95).unwrap();
        assert_eq!((p.estimate, p.low, p.high), (0.01, want.low, want.high));
        assert_eq!(
            r.variants[0].p50_ms,
            Some(2.5),
            "the bound of 2 ms's bucket"
        );
        assert_eq!(r.variants[0].p99_ms, Some(2.5));
        assert_eq!(
            r.compared,
            Some(Compared {
                primary: 1,
                canary: 2
            })
        );
        assert_eq!(r.comparisons.len(), 1);
        let c = &r.comparisons[0];
        assert_eq!(c.metric, "error_rate");
        assert!((c.difference.estimate - 0.03).abs() < 1e-12);
        assert!(c.significant && c.difference.p_value < 0.0001, "{c:?}");
        assert!(
            c.verdict
                .starts_with("canary error rate higher by 3.0 points (95% CI "),
            "{}",
            c.verdict
        );
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn errors_name_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let empty = Store::open(dir.path()).unwrap();
        let e = report(&empty, "m", "production", &options()).unwrap_err();
        assert!(matches!(e, AbError::UnknownModel { .. }), "{e}");
        assert!(e.to_string().contains("no model `m`"), "{e}");

        let (_dir, store) = registry();
        let bad = AbOptions {
            confidence: 95.0,
            ..options()
        };
        assert!(matches!(
            report(&store, "m", "production", &bad),
            Err(AbError::Confidence(_))
        ));
        let e = report(&store, "m", "prod", &options()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "model `m` has no alias `prod`; its aliases: production, staging"
        );
        // Only a canary's windows: nothing was served as the alias.
        store
            .metadata
            .record_serving_window(&window(2, "m@staging", ServingRole::Canary, 10, 0))
            .unwrap();
        let e = report(&store, "m", "production", &options()).unwrap_err();
        assert!(matches!(e, AbError::NothingServed { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("nothing was served as m@production since 2025-12-31T00:00:00.000Z; is `sluice serve"),
            "{e}"
        );
        // A feedback file without the label column names the file and it.
        store
            .metadata
            .record_serving_window(&window(1, "m@production", ServingRole::Primary, 10, 0))
            .unwrap();
        let labels = dir.path().join("labels.csv");
        std::fs::write(&labels, "request_id,truth\nreq-1,malignant\n").unwrap();
        let with = AbOptions {
            feedback: Some(Feedback {
                path: &labels,
                label: None,
            }),
            ..options()
        };
        let e = report(&store, "m", "production", &with).unwrap_err();
        assert!(matches!(e, AbError::FeedbackColumn { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("labels.csv has no column `diagnosis` (the true labels); its columns: request_id, truth"),
            "{text}"
        );
        let missing = dir.path().join("absent.csv");
        let with = AbOptions {
            feedback: Some(Feedback {
                path: &missing,
                label: Some("truth"),
            }),
            ..options()
        };
        let e = report(&store, "m", "production", &with).unwrap_err();
        assert!(
            matches!(e, AbError::FeedbackFile { .. }) && e.to_string().contains("absent.csv"),
            "{e}"
        );
        // No error on either side: no difference.
        let r = report(&store, "m", "production", &options()).unwrap();
        assert_eq!(
            r.compared,
            Some(Compared {
                primary: 1,
                canary: 2
            })
        );
        assert!(!r.comparisons[0].significant, "{:?}", r.comparisons);
    }
}
