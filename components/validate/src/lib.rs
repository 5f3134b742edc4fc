//! `std:validate`: checks statistics against a schema, and against the
//! statistics of a baseline (e.g. the training data) for drift.
//!
//! Schema skew — a missing column, an unexpected one, a wrong type, too many
//! missing values, or values outside the column's range or categories beyond
//! the schema's tolerance — is an `invalid-input` error that names every
//! problem, so the pipeline stops. Drift — Jensen–Shannon divergence between
//! binned numeric distributions, L-infinity distance between category
//! frequencies — above the schema's threshold is a `warning` anomaly, or an
//! error when `fail-on-drift` is set. The result is an anomalies document:
//!
//! ```json
//! {"num_rows": 100, "baseline": true, "errors": 0, "warnings": 1,
//!  "max_drift": 0.31,
//!  "anomalies": [{"column": "x", "kind": "drift", "severity": "warning",
//!                 "message": "column `x` drifted from the baseline: ..."}],
//!  "drift": {"x": {"measure": "jensen_shannon", "score": 0.31,
//!                  "threshold": 0.1, "drifted": true}}}
//! ```
//!
//! Drift is `sluice-drift`'s — the crate `sluice monitor` uses on the host
//! — measured on the statistics' quantile histograms (the baseline's deciles
//! plus a cell below and one above its range), so a validation step
//! and the monitor give the same score for the same data. The default
//! thresholds are `sluice-drift`'s too.
//!
//! The schema and statistics formats are in [`doc`] (`sluice-std-common`,
//! shared with `std:schema`); all formats are in `docs/steps/validate.md`.

pub use sluice_std_common::doc;

use std::collections::{BTreeMap, BTreeSet};

use doc::{CategoricalStatistics, ColumnStatistics, NumericDomain, Schema, Statistics};
use serde::Serialize;
use sluice_sdk::{Context, Manifest, Param, Port, Step, StepError, Value, export_step};
use sluice_std_common::drift;

struct Validate;

impl Step for Validate {
    fn describe() -> Manifest {
        Manifest::new("validate", "0.1.0")
            .doc("Validates statistics against a schema (schema skew stops the pipeline) and against baseline statistics (drift is reported).")
            .input(Port::statistics("statistics").doc("Statistics of the data to validate, from std:statistics."))
            .input(Port::schema("schema").doc("The schema to validate against, from std:schema or a checked-in file."))
            .input(
                Port::statistics("baseline")
                    .optional()
                    .doc("Statistics of reference data (e.g. the training data) to measure drift against."),
            )
            .output(Port::metrics("anomalies").doc("The anomalies found and the drift score of each column, as JSON (see docs/steps/validate.md)."))
            .param(
                Param::boolean("allow-extra-columns")
                    .default(false)
                    .doc("Whether columns the schema does not list are allowed (reported as warnings) instead of being an error."),
            )
            .param(
                Param::boolean("fail-on-drift")
                    .default(false)
                    .doc("Whether drift above the schema's threshold stops the pipeline (invalid input) instead of being a warning."),
            )
            .param(
                Param::json("ignore-columns")
                    .default(Value::Json("[]".into()))
                    .doc("Columns not checked at all, e.g. the label when validating serving data that has none."),
            )
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let options = Options {
            allow_extra_columns: ctx.param("allow-extra-columns")?,
            fail_on_drift: ctx.param("fail-on-drift")?,
            ignore_columns: ctx.param("ignore-columns")?,
        };
        let stats: Statistics = ctx.input_json("statistics")?;
        let schema: Schema = ctx.input_json("schema")?;
        let problems = schema.problems();
        if !problems.is_empty() {
            return Err(StepError::invalid_input(format!(
                "input `schema` is not a usable schema:\n- {}",
                problems.join("\n- ")
            )));
        }
        let baseline: Option<Statistics> = if ctx.has_input("baseline") {
            Some(ctx.input_json("baseline")?)
        } else {
            None
        };
        let report = validate(&stats, &schema, baseline.as_ref(), &options);
        // Errors are in the failure message; warnings only here.
        for a in report
            .anomalies
            .iter()
            .filter(|a| a.severity == Severity::Warning)
        {
            ctx.warn(&a.message);
        }
        ctx.metric("anomalies", report.anomalies.len() as f64);
        ctx.metric("errors", report.errors as f64);
        ctx.metric("warnings", report.warnings as f64);
        if let Some(d) = report.max_drift {
            ctx.metric("max_drift", d);
        }
        if report.errors > 0 {
            return Err(StepError::invalid_input(report.error_message()));
        }
        ctx.output_json("anomalies", &report)
    }
}

export_step!(Validate);

/// The step's params.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// Columns the schema does not list are warnings, not errors.
    pub allow_extra_columns: bool,
    /// Drift above threshold is an error, not a warning.
    pub fail_on_drift: bool,
    /// Columns not checked at all.
    pub ignore_columns: Vec<String>,
}

/// How bad an anomaly is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Stops the pipeline.
    Error,
    /// Reported only.
    Warning,
}

/// What kind of anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A schema column is not in the data.
    MissingColumn,
    /// A data column is not in the schema.
    ExtraColumn,
    /// The column's type differs from the schema's.
    WrongType,
    /// More missing values than the schema allows.
    MissingValues,
    /// Numeric values outside the schema's range beyond tolerance.
    OutOfRange,
    /// Categorical values outside the schema's categories beyond tolerance.
    OutOfDomain,
    /// The distribution moved away from the baseline's.
    Drift,
}

/// One anomaly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// The column it concerns.
    pub column: String,
    /// What kind of anomaly.
    pub kind: Kind,
    /// Whether it stops the pipeline.
    pub severity: Severity,
    /// What is wrong and what to do.
    pub message: String,
}

/// Which distance a drift score is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Jensen–Shannon divergence (base 2) between histograms.
    JensenShannon,
    /// L-infinity distance between category frequencies.
    LInfinity,
}

/// A column's drift against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    /// The distance used.
    pub measure: Measure,
    /// The distance, in [0, 1].
    pub score: f64,
    /// The schema's threshold for the column.
    pub threshold: f64,
    /// Whether `score` > `threshold`.
    pub drifted: bool,
}

/// The anomalies document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Rows of the validated data.
    pub num_rows: u64,
    /// Whether drift was measured against a baseline.
    pub baseline: bool,
    /// Anomalies of severity `error`.
    pub errors: usize,
    /// Anomalies of severity `warning`.
    pub warnings: usize,
    /// The largest drift score, if any was measured.
    pub max_drift: Option<f64>,
    /// Every anomaly: schema columns in schema order, then extra columns.
    pub anomalies: Vec<Anomaly>,
    /// Drift per column, by column name.
    pub drift: BTreeMap<String, Drift>,
}

impl Report {
    /// One message naming every error, for an `invalid-input` failure.
    pub fn error_message(&self) -> String {
        let lines: Vec<&str> = self
            .anomalies
            .iter()
            .filter(|a| a.severity == Severity::Error)
            .map(|a| a.message.as_str())
            .collect();
        format!(
            "the data does not match the schema ({} problem{}):\n- {}",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            lines.join("\n- ")
        )
    }
}

/// Validates `stats` against `schema` and, if given, against `baseline`.
pub fn validate(
    stats: &Statistics,
    schema: &Schema,
    baseline: Option<&Statistics>,
    options: &Options,
) -> Report {
    let ignored: BTreeSet<&str> = options.ignore_columns.iter().map(String::as_str).collect();
    let mut anomalies = Vec::new();
    let mut drift = BTreeMap::new();
    let mut error = |column: &str, kind: Kind, message: String| {
        anomalies.push(Anomaly {
            column: column.to_owned(),
            kind,
            severity: Severity::Error,
            message,
        })
    };
    let mut drift_checks = Vec::new();
    for sc in schema
        .columns
        .iter()
        .filter(|c| !ignored.contains(c.name.as_str()))
    {
        let name = &sc.name;
        let Some(c) = stats.column(name) else {
            error(
                name,
                Kind::MissingColumn,
                format!(
                    "column `{name}` ({}) is in the schema but not in the data; add it to the \
                     data, or remove it from the schema",
                    sc.dtype
                ),
            );
            continue;
        };
        if !sc.dtype.accepts(c.dtype) {
            error(
                name,
                Kind::WrongType,
                format!(
                    "column `{name}` has type {} but the schema says {}; fix the data \
                     upstream, or change `dtype` in the schema",
                    c.dtype, sc.dtype
                ),
            );
            continue;
        }
        let missing = c.missing_fraction();
        let allowed = sc.allowed_missing();
        if missing > allowed {
            let what = if sc.required {
                "is required but".to_owned()
            } else {
                format!("allows at most {} missing but", percent(allowed))
            };
            error(
                name,
                Kind::MissingValues,
                format!(
                    "column `{name}` {what} has {} missing values ({}); fill them upstream, \
                     or allow them in the schema (`required`: false, `max_missing_fraction`)",
                    c.missing,
                    percent(missing)
                ),
            );
        }
        let tolerance = sc.domain_tolerance(schema);
        if let Some(domain) = &sc.numeric
            && let Some(m) = out_of_range(c, domain)
            && m.fraction > tolerance
        {
            error(
                name,
                Kind::OutOfRange,
                format!(
                    "column `{name}` has {} of its values outside the schema's range {} \
                     (observed min {}, max {}; tolerance {}); fix the data, or widen \
                     `numeric` or raise `domain_tolerance` in the schema",
                    if m.estimated {
                        format!(
                            "about {} (estimated from its histogram)",
                            percent(m.fraction)
                        )
                    } else {
                        percent(m.fraction)
                    },
                    range_text(domain),
                    num_text(m.min),
                    num_text(m.max),
                    percent(tolerance)
                ),
            );
        }
        if let Some(categories) = &sc.categories
            && let Some(m) = out_of_domain(c, categories)
            && m.fraction > tolerance
        {
            let at_least = if m.exact { "" } else { "at least " };
            let examples = if m.examples.is_empty() {
                String::new()
            } else {
                format!(" (e.g. {})", m.examples.join(", "))
            };
            error(
                name,
                Kind::OutOfDomain,
                format!(
                    "column `{name}` has {at_least}{} of its values outside the schema's \
                     categories{examples}; tolerance {}; fix the data, or add the values to \
                     `categories` or raise `domain_tolerance` in the schema",
                    percent(m.fraction),
                    percent(tolerance)
                ),
            );
        }
        if let Some(b) = baseline.and_then(|b| b.column(name)) {
            drift_checks.push((sc, c, b));
        }
    }
    for c in &stats.columns {
        if schema.column(&c.name).is_none() && !ignored.contains(c.name.as_str()) {
            anomalies.push(Anomaly {
                column: c.name.clone(),
                kind: Kind::ExtraColumn,
                severity: if options.allow_extra_columns {
                    Severity::Warning
                } else {
                    Severity::Error
                },
                message: format!(
                    "column `{}` ({}) is in the data but not in the schema; add it to the \
                     schema, drop it upstream, or set `allow-extra-columns`",
                    c.name, c.dtype
                ),
            });
        }
    }
    for (sc, c, b) in drift_checks {
        let Some((measure, score)) = column_drift(c, b) else {
            continue;
        };
        let threshold = sc.drift_threshold(schema);
        let drifted = score > threshold;
        if drifted {
            let what = match measure {
                Measure::JensenShannon => "Jensen-Shannon divergence",
                Measure::LInfinity => "L-infinity distance",
            };
            anomalies.push(Anomaly {
                column: sc.name.clone(),
                kind: Kind::Drift,
                severity: if options.fail_on_drift {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                message: format!(
                    "column `{}` drifted from the baseline: {what} {score:.4} > threshold \
                     {threshold}; check the data source, retrain on recent data, or raise \
                     `drift_threshold` for the column in the schema",
                    sc.name
                ),
            });
        }
        drift.insert(
            sc.name.clone(),
            Drift {
                measure,
                score,
                threshold,
                drifted,
            },
        );
    }
    let errors = anomalies
        .iter()
        .filter(|a| a.severity == Severity::Error)
        .count();
    Report {
        num_rows: stats.num_rows,
        baseline: baseline.is_some(),
        errors,
        warnings: anomalies.len() - errors,
        max_drift: drift.values().map(|d| d.score).reduce(f64::max),
        anomalies,
        drift,
    }
}

fn percent(f: f64) -> String {
    format!("{:.2}%", f * 100.0)
}

fn num_text(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

fn range_text(d: &NumericDomain) -> String {
    format!(
        "[{}, {}]",
        d.min.map_or_else(|| "-inf".to_owned(), |v| v.to_string()),
        d.max.map_or_else(|| "inf".to_owned(), |v| v.to_string())
    )
}

/// Values outside a numeric range.
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfRange {
    /// The fraction of non-missing values outside the range.
    pub fraction: f64,
    /// Whether `fraction` is an estimate from the histogram (else exact: 0).
    pub estimated: bool,
    /// The observed minimum.
    pub min: Option<f64>,
    /// The observed maximum.
    pub max: Option<f64>,
}

/// The fraction of `c`'s values outside `domain`, or `None` if there are no
/// values (or `c` is not numeric). Exactly 0 when the observed min and max
/// are inside; otherwise estimated from the histogram, assuming values spread
/// uniformly within each bin, and at least one value.
pub fn out_of_range(c: &ColumnStatistics, domain: &NumericDomain) -> Option<OutOfRange> {
    let n = c.numeric.as_ref()?;
    if c.count == 0 {
        return None;
    }
    let lo = domain.min.unwrap_or(f64::NEG_INFINITY);
    let hi = domain.max.unwrap_or(f64::INFINITY);
    let below = n.min.is_some_and(|m| m < lo);
    let above = n.max.is_some_and(|m| m > hi);
    let mut result = OutOfRange {
        fraction: 0.0,
        estimated: false,
        min: n.min,
        max: n.max,
    };
    if !below && !above {
        return Some(result);
    }
    let mut outside = 0.0;
    if let Some(h) = &n.histogram {
        for (i, &count) in h.counts.iter().enumerate() {
            let (Some(&a), Some(&b)) = (h.edges.get(i), h.edges.get(i + 1)) else {
                break;
            };
            let share = if b > a {
                let under = (b.min(lo) - a).max(0.0);
                let over = (b - a.max(hi)).max(0.0);
                ((under + over) / (b - a)).min(1.0)
            } else if a < lo || a > hi {
                1.0
            } else {
                0.0
            };
            outside += count as f64 * share;
        }
    }
    result.fraction = (outside / c.count as f64)
        .max(1.0 / c.count as f64)
        .min(1.0);
    result.estimated = true;
    Some(result)
}

/// Values outside a categorical domain.
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfDomain {
    /// The fraction of non-missing values outside the domain (a lower
    /// bound unless `exact`).
    pub fraction: f64,
    /// Whether the statistics listed every value, so `fraction` is exact.
    pub exact: bool,
    /// Up to five out-of-domain values seen in the top list.
    pub examples: Vec<String>,
}

/// The fraction of `c`'s values not in `categories`, or `None` if there are
/// no values (or `c` is not categorical). Exact when the statistics' top
/// list is complete; otherwise a lower bound: the listed out-of-domain
/// values, plus one per unlisted distinct value that cannot be a category.
pub fn out_of_domain(c: &ColumnStatistics, categories: &[String]) -> Option<OutOfDomain> {
    let cat = c.categorical.as_ref()?;
    if c.count == 0 {
        return None;
    }
    let allowed: BTreeSet<&str> = categories.iter().map(String::as_str).collect();
    let listed: BTreeSet<&str> = cat.top.iter().map(|t| t.value.as_str()).collect();
    let outside: Vec<_> = cat
        .top
        .iter()
        .filter(|t| !allowed.contains(t.value.as_str()))
        .collect();
    let mut count: u64 = outside.iter().map(|t| t.count).sum();
    let exact = cat.is_complete();
    if !exact {
        let unlisted = cat.distinct.saturating_sub(cat.top.len() as u64);
        let unlisted_allowed = allowed.iter().filter(|v| !listed.contains(*v)).count() as u64;
        count += unlisted.saturating_sub(unlisted_allowed);
    }
    Some(OutOfDomain {
        fraction: (count as f64 / c.count as f64).min(1.0),
        exact,
        examples: outside
            .iter()
            .take(5)
            .map(|t| format!("`{}`", t.value))
            .collect(),
    })
}

/// The drift of a column against its baseline, or `None` when either has no
/// values, they are not of the same kind, or a numeric one has no quantile
/// histogram (statistics written before `std:statistics` recorded it).
///
/// Numeric: `sluice_drift::numeric_drift` of the baseline's and the
/// column's quantile histograms, the score `sluice monitor` gives for the
/// same rows. Categorical: [`l_infinity`] of the top lists.
pub fn column_drift(c: &ColumnStatistics, b: &ColumnStatistics) -> Option<(Measure, f64)> {
    if c.count == 0 || b.count == 0 {
        return None;
    }
    match (&c.numeric, &b.numeric, &c.categorical, &b.categorical) {
        (Some(x), Some(y), _, _) => {
            let served = x.quantile_histogram.as_ref()?.to_drift();
            let reference = y.quantile_histogram.as_ref()?.to_drift();
            let d = drift::numeric_drift(&reference, &served)?;
            Some((Measure::JensenShannon, d.jensen_shannon))
        }
        (_, _, Some(x), Some(y)) => Some((Measure::LInfinity, l_infinity(x, c.count, y, b.count))),
        _ => None,
    }
}

/// L-infinity distance between the category frequencies of two columns
/// (`p_count` and `q_count` non-missing values): the largest |p(v) − q(v)|
/// over the values either top list names, by
/// `sluice_drift::categorical_l_infinity`.
///
/// Exact when both top lists are complete. A value missing from a truncated
/// list has an unknown frequency between 0 and that list's smallest listed
/// frequency; the distance then takes the closest the two could be, so the
/// result is a lower bound and never a false alarm.
pub fn l_infinity(
    p: &CategoricalStatistics,
    p_count: u64,
    q: &CategoricalStatistics,
    q_count: u64,
) -> f64 {
    fn counts(c: &CategoricalStatistics, total: u64) -> drift::CategoryCounts<'_> {
        drift::CategoryCounts {
            counts: c.top.iter().map(|t| (t.value.as_str(), t.count)).collect(),
            total,
            complete: c.is_complete(),
        }
    }
    drift::categorical_l_infinity(&counts(p, p_count), &counts(q, q_count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use doc::{Category, DType};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn cats(values: &[(&str, u64)], distinct: u64) -> CategoricalStatistics {
        CategoricalStatistics {
            distinct,
            top: values
                .iter()
                .map(|(v, c)| Category {
                    value: v.to_string(),
                    count: *c,
                })
                .collect(),
        }
    }

    /// Statistics of a numeric sample, the way std:statistics computes them.
    fn numeric_stats(name: &str, values: &[f64], bins: usize) -> ColumnStatistics {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let width = (max - min) / bins as f64;
        let mut edges: Vec<f64> = (0..bins).map(|i| min + width * i as f64).collect();
        edges.push(max);
        let mut counts = vec![0u64; bins];
        for &x in values {
            let i = (((x - min) / (max - min)) * bins as f64) as usize;
            counts[i.min(bins - 1)] += 1;
        }
        let q = drift::quantile_histogram(values, drift::SUMMARY_BINS).unwrap();
        serde_json::from_value(serde_json::json!({
            "name": name, "dtype": "float64", "count": values.len(), "missing": 0,
            "numeric": {"min": min, "max": max, "histogram": {"edges": edges, "counts": counts},
                        "quantile_histogram": {"edges": q.edges, "counts": q.counts}}
        }))
        .unwrap()
    }

    fn table(columns: Vec<ColumnStatistics>) -> Statistics {
        Statistics {
            num_rows: columns.first().map_or(0, |c| c.count + c.missing),
            columns,
        }
    }

    fn schema(json: serde_json::Value) -> Schema {
        let s: Schema = serde_json::from_value(json).unwrap();
        assert!(s.problems().is_empty(), "{:?}", s.problems());
        s
    }

    #[test]
    fn numeric_drift_is_sluice_drifts_on_the_quantile_histograms() {
        // The score sluice monitor gives for the same rows: both summarise
        // with sluice_drift::quantile_histogram and compare with
        // sluice_drift::numeric_drift.
        let reference: Vec<f64> = (0..500).map(|i| ((i * 37) % 101) as f64 / 7.0).collect();
        let served: Vec<f64> = (0..300).map(|i| ((i * 53) % 89) as f64 / 5.0).collect();
        let (c, b) = (
            numeric_stats("x", &served, 10),
            numeric_stats("x", &reference, 10),
        );
        let (measure, score) = column_drift(&c, &b).unwrap();
        assert_eq!(measure, Measure::JensenShannon);
        let expected = drift::numeric_drift(
            &drift::quantile_histogram(&reference, drift::SUMMARY_BINS).unwrap(),
            &drift::quantile_histogram(&served, drift::SUMMARY_BINS).unwrap(),
        )
        .unwrap();
        assert_eq!(score, expected.jensen_shannon);
        assert!(score > 0.0);
        // Statistics without a quantile histogram: not measured.
        let mut old = b.clone();
        old.numeric.as_mut().unwrap().quantile_histogram = None;
        assert_eq!(column_drift(&c, &old), None);
    }

    #[test]
    fn l_infinity_hand_computed() {
        // p = {a: .5, b: .3, c: .2}, q = {a: .4, b: .2, c: .1, d: .3}:
        // |diffs| = .1, .1, .1, .3 → 0.3.
        let p = cats(&[("a", 5), ("b", 3), ("c", 2)], 3);
        let q = cats(&[("a", 4), ("d", 3), ("b", 2), ("c", 1)], 4);
        assert!(close(l_infinity(&p, 10, &q, 10), 0.3));
        assert!(close(l_infinity(&p, 10, &p, 10), 0.0));
        // Different totals: p = {a: .5, b: .5}, q = {a: .75, b: .25} → 0.25.
        let p = cats(&[("a", 1), ("b", 1)], 2);
        let q = cats(&[("a", 3), ("b", 1)], 2);
        assert!(close(l_infinity(&p, 2, &q, 4), 0.25));
    }

    #[test]
    fn l_infinity_truncated_lists_give_a_lower_bound() {
        // q lists only a (.4); b's frequency in q is somewhere in [0, .4].
        // p: b = .5 → at least .5 - .4 = .1; a: |.5 - .4| = .1.
        let p = cats(&[("a", 5), ("b", 5)], 2);
        let q = cats(&[("a", 4)], 5);
        assert!(close(l_infinity(&p, 10, &q, 10), 0.1));
    }

    #[test]
    fn numeric_range_exact_inside_estimated_outside() {
        let c = numeric_stats("x", &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], 4);
        // Edges [0, 1.75, 3.5, 5.25, 7], counts [2, 2, 2, 2].
        let inside = NumericDomain {
            min: Some(0.0),
            max: Some(7.0),
        };
        let m = out_of_range(&c, &inside).unwrap();
        assert_eq!((m.fraction, m.estimated), (0.0, false));
        // max 5.25: the last bin [5.25, 7] is all outside: 2 / 8.
        let d = NumericDomain {
            min: None,
            max: Some(5.25),
        };
        let m = out_of_range(&c, &d).unwrap();
        assert!(m.estimated && close(m.fraction, 0.25), "{m:?}");
        // min 0.875 cuts half the first bin: 1 / 8; max 6.125 half the last: 1 / 8.
        let d = NumericDomain {
            min: Some(0.875),
            max: Some(6.125),
        };
        assert!(close(out_of_range(&c, &d).unwrap().fraction, 0.25));
        // A sliver outside still counts one value.
        let d = NumericDomain {
            min: Some(0.0),
            max: Some(6.999),
        };
        assert!(close(out_of_range(&c, &d).unwrap().fraction, 1.0 / 8.0));
    }

    #[test]
    fn categorical_domain_exact_and_lower_bound() {
        let mut c: ColumnStatistics = serde_json::from_value(serde_json::json!({
            "name": "s", "dtype": "utf8", "count": 10, "missing": 0,
            "categorical": {"distinct": 3, "top": [
                {"value": "a", "count": 6}, {"value": "b", "count": 3}, {"value": "z", "count": 1}]}
        }))
        .unwrap();
        let allowed = vec!["a".to_owned(), "b".to_owned()];
        let m = out_of_domain(&c, &allowed).unwrap();
        assert!(m.exact && close(m.fraction, 0.1));
        assert_eq!(m.examples, ["`z`"]);
        // Truncated to the top 1 of 4 distinct values: a is allowed; of the 3
        // unlisted values at most one (b) is allowed, so ≥ 2 values outside.
        c.categorical = Some(cats(&[("a", 6)], 4));
        let m = out_of_domain(&c, &allowed).unwrap();
        assert!(!m.exact && close(m.fraction, 0.2), "{m:?}");
    }

    fn base_schema() -> Schema {
        schema(serde_json::json!({
            "label": "y",
            "columns": [
                {"name": "x", "dtype": "float64", "numeric": {"min": 0.0, "max": 100.0}},
                {"name": "y", "dtype": "utf8", "categories": ["no", "yes"]}
            ]
        }))
    }

    fn categorical(name: &str, values: &[(&str, u64)], missing: u64) -> ColumnStatistics {
        let count: u64 = values.iter().map(|v| v.1).sum();
        ColumnStatistics {
            name: name.into(),
            dtype: DType::Utf8,
            count,
            missing,
            numeric: None,
            categorical: Some(cats(values, values.len() as u64)),
        }
    }

    fn sample(shift: f64) -> Vec<f64> {
        (0..1000).map(|i| 20.0 + 0.05 * i as f64 + shift).collect()
    }

    #[test]
    fn shifted_sample_drifts_unshifted_does_not() {
        let s = base_schema();
        let train = table(vec![
            numeric_stats("x", &sample(0.0), 10),
            categorical("y", &[("no", 60), ("yes", 40)], 0),
        ]);
        // The same distribution, sampled a little differently.
        let same = table(vec![
            numeric_stats("x", &sample(0.02), 10),
            categorical("y", &[("no", 58), ("yes", 42)], 0),
        ]);
        let r = validate(&same, &s, Some(&train), &Options::default());
        assert_eq!((r.errors, r.warnings), (0, 0), "{:?}", r.anomalies);
        assert!(r.drift["x"].score < 0.01, "{:?}", r.drift);
        assert!(close(r.max_drift.unwrap(), r.drift["y"].score));
        assert!(!r.drift["x"].drifted && !r.drift["y"].drifted);
        assert_eq!(r.drift["x"].measure, Measure::JensenShannon);
        assert_eq!(r.drift["y"].measure, Measure::LInfinity);
        assert!(close(r.drift["y"].score, 0.02));

        // Shifted by half the range, labels flipped: both drift (warnings).
        let shifted = table(vec![
            numeric_stats("x", &sample(25.0), 10),
            categorical("y", &[("no", 30), ("yes", 70)], 0),
        ]);
        let r = validate(&shifted, &s, Some(&train), &Options::default());
        assert_eq!((r.errors, r.warnings), (0, 2), "{:?}", r.anomalies);
        assert!(r.drift["x"].drifted && r.drift["x"].score > 0.3);
        assert!(close(r.drift["y"].score, 0.3));
        assert!(r.anomalies.iter().all(|a| a.kind == Kind::Drift));
        assert!(r.anomalies[0].message.contains("column `x` drifted"));

        let strict = Options {
            fail_on_drift: true,
            ..Options::default()
        };
        let r = validate(&shifted, &s, Some(&train), &strict);
        assert_eq!(r.errors, 2);
        assert!(r.error_message().contains("2 problems"));

        // Without a baseline, nothing is measured.
        let r = validate(&shifted, &s, None, &Options::default());
        assert!(r.drift.is_empty() && r.max_drift.is_none() && !r.baseline);
    }

    #[test]
    fn schema_skew_names_every_problem() {
        let s = schema(serde_json::json!({
            "columns": [
                {"name": "x", "dtype": "float64", "numeric": {"min": 0.0, "max": 10.0}},
                {"name": "y", "dtype": "utf8", "categories": ["no", "yes"]},
                {"name": "gone", "dtype": "int64"},
                {"name": "t", "dtype": "int64"},
                {"name": "m", "dtype": "utf8", "required": false, "max_missing_fraction": 0.1}
            ]
        }));
        let mut t = categorical("t", &[("1", 1)], 0);
        t.name = "t".into();
        let data = table(vec![
            numeric_stats("x", &[1.0, 2.0, 3.0, 50.0], 2),
            categorical("y", &[("no", 2), ("maybe", 2)], 0),
            t,
            categorical("m", &[("a", 1)], 3),
            categorical("extra", &[("a", 4)], 0),
        ]);
        let r = validate(&data, &s, None, &Options::default());
        let kinds: Vec<(&str, Kind)> = r
            .anomalies
            .iter()
            .map(|a| (a.column.as_str(), a.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("x", Kind::OutOfRange),
                ("y", Kind::OutOfDomain),
                ("gone", Kind::MissingColumn),
                ("t", Kind::WrongType),
                ("m", Kind::MissingValues),
                ("extra", Kind::ExtraColumn),
            ]
        );
        assert_eq!(r.errors, 6);
        let msg = r.error_message();
        for want in [
            "6 problems",
            "column `x` has about",
            "outside the schema's range [0, 10]",
            "column `y` has 50.00% of its values outside the schema's categories (e.g. `maybe`)",
            "column `gone` (int64) is in the schema but not in the data",
            "column `t` has type utf8 but the schema says int64",
            "column `m` allows at most 10.00% missing but has 3 missing values (75.00%)",
            "column `extra` (utf8) is in the data but not in the schema",
        ] {
            assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
        }

        // Extra columns allowed: a warning. Ignored columns: not checked.
        let lenient = Options {
            allow_extra_columns: true,
            ignore_columns: vec!["gone".into(), "t".into()],
            ..Options::default()
        };
        let r = validate(&data, &s, None, &lenient);
        assert_eq!((r.errors, r.warnings), (3, 1));
    }

    #[test]
    fn tolerance_and_int_for_float() {
        let s = schema(serde_json::json!({
            "domain_tolerance": {"categorical": 0.5},
            "columns": [
                {"name": "x", "dtype": "float64", "numeric": {"min": 0.0, "max": 3.0}},
                {"name": "y", "dtype": "utf8", "categories": ["no"]}
            ]
        }));
        let mut x = numeric_stats("x", &[0.0, 1.0, 2.0, 3.0], 3);
        x.dtype = DType::Int64;
        let data = table(vec![x, categorical("y", &[("no", 2), ("maybe", 2)], 0)]);
        let r = validate(&data, &s, None, &Options::default());
        assert_eq!(r.errors, 0, "{:?}", r.anomalies);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"num_rows": 4, "baseline": false, "errors": 0, "warnings": 0,
                "max_drift": null, "anomalies": [], "drift": {}})
        );
    }
}
