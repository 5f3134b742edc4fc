//! `std:schema`: infers a data schema from the statistics `std:statistics`
//! writes.
//!
//! For each column the schema records its type, whether it is required (no
//! missing value seen) or else the largest fraction of missing values allowed
//! (the observed one), the numeric range (min and max, widened on both sides
//! by `range-slack` × (max − min)), and the allowed categories of a
//! categorical column whose distinct count is at most `max-categories`. It
//! carries the thresholds `std:validate` applies: drift (Jensen–Shannon for
//! numeric, L-infinity for categorical columns) and the tolerated fraction of
//! out-of-domain values. The format is in `docs/steps/schema.md` and in
//! [`doc`]; a schema edited by hand and bound as data works the same.
//!
//! ```json
//! {"label": "species",
//!  "drift": {"numeric": 0.1, "categorical": 0.1},
//!  "domain_tolerance": {"numeric": 0.0, "categorical": 0.0},
//!  "columns": [
//!    {"name": "sepal_length", "dtype": "float64", "required": true,
//!     "numeric": {"min": 4.3, "max": 7.9}},
//!    {"name": "petal_width", "dtype": "float64", "required": false,
//!     "max_missing_fraction": 0.02, "numeric": {"min": 0.1, "max": 2.5}},
//!    {"name": "species", "dtype": "utf8", "required": true,
//!     "categories": ["setosa", "versicolor", "virginica"]}]}
//! ```

pub use sluice_std_common::doc;

use doc::{
    ColumnStatistics, DomainTolerance, DriftThresholds, NumericDomain, Schema, SchemaColumn,
    Statistics,
};
use sluice_sdk::{Context, Manifest, Param, Port, Step, StepError, export_step};

struct SchemaStep;

impl Step for SchemaStep {
    fn describe() -> Manifest {
        Manifest::new("schema", "0.1.0")
            .doc("Infers a data schema (types, required columns, numeric ranges, allowed categories, drift and domain thresholds) from statistics.")
            .input(Port::statistics("statistics").doc("Statistics of the data the schema describes, from std:statistics."))
            .output(Port::schema("schema").doc("The inferred schema, as JSON (see docs/steps/schema.md)."))
            .param(
                Param::text("label")
                    .doc("The label column; marked as `label` in the schema. Optional."),
            )
            .param(
                Param::integer("max-categories")
                    .default(20)
                    .doc("A categorical column with at most this many distinct values gets an allowed-values domain; more, and any value is allowed."),
            )
            .param(
                Param::float("range-slack")
                    .default(0.0)
                    .doc("Widens each numeric range by this fraction of (max - min) on both sides (0 = exactly the observed range)."),
            )
            .param(
                Param::boolean("numeric-ranges")
                    .default(true)
                    .doc("Whether to record numeric ranges at all."),
            )
            .param(
                Param::float("drift-numeric")
                    .default(doc::DEFAULT_NUMERIC_DRIFT)
                    .doc("Jensen-Shannon divergence (base 2, in [0, 1]) above which a numeric column drifts."),
            )
            .param(
                Param::float("drift-categorical")
                    .default(doc::DEFAULT_CATEGORICAL_DRIFT)
                    .doc("L-infinity distance between category frequencies above which a categorical column drifts."),
            )
            .param(
                Param::float("domain-tolerance")
                    .default(0.0)
                    .doc("Fraction of values allowed outside a column's range or categories, for every column."),
            )
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let options = Options {
            label: ctx.param("label")?,
            max_categories: ctx.param("max-categories")?,
            range_slack: ctx.param("range-slack")?,
            numeric_ranges: ctx.param("numeric-ranges")?,
            drift_numeric: ctx.param("drift-numeric")?,
            drift_categorical: ctx.param("drift-categorical")?,
            domain_tolerance: ctx.param("domain-tolerance")?,
        };
        let stats: Statistics = ctx.input_json("statistics")?;
        let inferred = infer(&stats, &options).map_err(StepError::invalid_input)?;
        for w in &inferred.warnings {
            ctx.warn(w);
        }
        let schema = inferred.schema;
        let required = schema.columns.iter().filter(|c| c.required).count();
        let with_domain = schema
            .columns
            .iter()
            .filter(|c| c.numeric.is_some() || c.categories.is_some())
            .count();
        ctx.metric("columns", schema.columns.len() as f64);
        ctx.metric("required_columns", required as f64);
        ctx.metric("columns_with_domain", with_domain as f64);
        ctx.info(format!(
            "{} columns, {required} required, {with_domain} with a domain",
            schema.columns.len()
        ));
        ctx.output_json("schema", &schema)
    }
}

export_step!(SchemaStep);

/// The step's params.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The label column, if any.
    pub label: Option<String>,
    /// Largest distinct count for which a categorical domain is recorded.
    pub max_categories: u64,
    /// Fraction of the range added on both sides of a numeric range.
    pub range_slack: f64,
    /// Whether numeric ranges are recorded.
    pub numeric_ranges: bool,
    /// Drift threshold for numeric columns.
    pub drift_numeric: f64,
    /// Drift threshold for categorical columns.
    pub drift_categorical: f64,
    /// Domain tolerance for every column.
    pub domain_tolerance: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            label: None,
            max_categories: 20,
            range_slack: 0.0,
            numeric_ranges: true,
            drift_numeric: doc::DEFAULT_NUMERIC_DRIFT,
            drift_categorical: doc::DEFAULT_CATEGORICAL_DRIFT,
            domain_tolerance: 0.0,
        }
    }
}

impl Options {
    /// Problems with the params, each naming the param and the accepted values.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(self.range_slack >= 0.0 && self.range_slack.is_finite()) {
            out.push(format!(
                "parameter `range-slack` must be a finite number ≥ 0, found {}",
                self.range_slack
            ));
        }
        for (name, v) in [
            ("drift-numeric", self.drift_numeric),
            ("drift-categorical", self.drift_categorical),
            ("domain-tolerance", self.domain_tolerance),
        ] {
            if !(0.0..=1.0).contains(&v) {
                out.push(format!("parameter `{name}` must be in [0, 1], found {v}"));
            }
        }
        out
    }
}

/// An inferred schema, and warnings worth a log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Inferred {
    /// The schema.
    pub schema: Schema,
    /// E.g. a categorical column whose top list was truncated.
    pub warnings: Vec<String>,
}

/// Infers the schema of the table `stats` describes. Fails (with every
/// problem, one per line) on bad options or a label the table lacks.
pub fn infer(stats: &Statistics, options: &Options) -> Result<Inferred, String> {
    let mut problems = options.problems();
    if let Some(label) = &options.label
        && stats.column(label).is_none()
    {
        let names: Vec<&str> = stats.columns.iter().map(|c| c.name.as_str()).collect();
        problems.push(format!(
            "parameter `label` names `{label}`, which is not a column of the input \
             statistics (columns: {}); correct the name",
            names.join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let mut warnings = Vec::new();
    let columns = stats
        .columns
        .iter()
        .map(|c| infer_column(c, options, &mut warnings))
        .collect();
    Ok(Inferred {
        schema: Schema {
            label: options.label.clone(),
            drift: DriftThresholds {
                numeric: options.drift_numeric,
                categorical: options.drift_categorical,
            },
            domain_tolerance: DomainTolerance {
                numeric: options.domain_tolerance,
                categorical: options.domain_tolerance,
            },
            columns,
        },
        warnings,
    })
}

/// One column's schema entry.
fn infer_column(
    c: &ColumnStatistics,
    options: &Options,
    warnings: &mut Vec<String>,
) -> SchemaColumn {
    let required = c.missing == 0;
    let numeric = match (&c.numeric, options.numeric_ranges) {
        (Some(n), true) => match (n.min, n.max) {
            (Some(lo), Some(hi)) if lo.is_finite() && hi.is_finite() => {
                let slack = (hi - lo) * options.range_slack;
                Some(NumericDomain {
                    min: Some(lo - slack),
                    max: Some(hi + slack),
                })
            }
            _ => None,
        },
        _ => None,
    };
    let categories = c.categorical.as_ref().and_then(|cat| {
        if cat.distinct == 0 || cat.distinct > options.max_categories {
            return None;
        }
        if !cat.is_complete() {
            warnings.push(format!(
                "column `{}` has {} distinct values but the statistics list only the top {}; \
                 no allowed-values domain was recorded — raise `top-k` of std:statistics to \
                 at least {} to record one",
                c.name,
                cat.distinct,
                cat.top.len(),
                cat.distinct
            ));
            return None;
        }
        let mut values: Vec<String> = cat.top.iter().map(|t| t.value.clone()).collect();
        values.sort();
        Some(values)
    });
    SchemaColumn {
        name: c.name.clone(),
        dtype: c.dtype,
        required,
        max_missing_fraction: (!required).then(|| c.missing_fraction()),
        numeric,
        categories,
        drift_threshold: None,
        domain_tolerance: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> Statistics {
        serde_json::from_str(
            r#"{"num_rows": 4, "columns": [
              {"name": "x", "dtype": "float64", "count": 4, "missing": 0,
               "numeric": {"min": 1.0, "max": 3.0, "histogram": {"edges": [1, 2, 3], "counts": [2, 2]}}},
              {"name": "n", "dtype": "int64", "count": 3, "missing": 1,
               "numeric": {"min": -2, "max": 8, "histogram": null}},
              {"name": "e", "dtype": "float64", "count": 0, "missing": 4,
               "numeric": {"min": null, "max": null, "histogram": null}},
              {"name": "s", "dtype": "utf8", "count": 4, "missing": 0,
               "categorical": {"distinct": 2, "top": [{"value": "b", "count": 3}, {"value": "a", "count": 1}]}},
              {"name": "many", "dtype": "utf8", "count": 4, "missing": 0,
               "categorical": {"distinct": 4, "top": [{"value": "p", "count": 1}]}},
              {"name": "f", "dtype": "boolean", "count": 4, "missing": 0,
               "categorical": {"distinct": 2, "top": [{"value": "true", "count": 2}, {"value": "false", "count": 2}]}}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn infers_types_required_and_domains() {
        let options = Options {
            label: Some("s".into()),
            max_categories: 3,
            ..Options::default()
        };
        let got = infer(&stats(), &options).unwrap();
        let s = &got.schema;
        assert_eq!(s.label.as_deref(), Some("s"));
        assert_eq!(s.columns.len(), 6);
        let x = s.column("x").unwrap();
        assert!(x.required && x.max_missing_fraction.is_none());
        assert_eq!(
            x.numeric,
            Some(NumericDomain {
                min: Some(1.0),
                max: Some(3.0)
            })
        );
        let n = s.column("n").unwrap();
        assert!(!n.required);
        assert_eq!(n.max_missing_fraction, Some(0.25));
        assert_eq!(n.allowed_missing(), 0.25);
        // No values: no range.
        let e = s.column("e").unwrap();
        assert_eq!(
            (e.numeric.as_ref(), e.max_missing_fraction),
            (None, Some(1.0))
        );
        // Sorted categories; booleans too.
        assert_eq!(
            s.column("s").unwrap().categories,
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            s.column("f").unwrap().categories,
            Some(vec!["false".into(), "true".into()])
        );
        // 4 distinct > 3 allowed: no domain, and no warning.
        assert_eq!(s.column("many").unwrap().categories, None);
        assert!(got.warnings.is_empty());
        assert!(s.problems().is_empty());
    }

    #[test]
    fn truncated_top_list_gives_no_domain_and_a_warning() {
        let got = infer(&stats(), &Options::default()).unwrap();
        assert_eq!(got.schema.column("many").unwrap().categories, None);
        assert_eq!(got.warnings.len(), 1);
        assert!(got.warnings[0].contains("`many`") && got.warnings[0].contains("top-k"));
    }

    #[test]
    fn range_slack_widens_both_sides() {
        let options = Options {
            range_slack: 0.1,
            ..Options::default()
        };
        let s = infer(&stats(), &options).unwrap().schema;
        // n: [-2, 8], range 10, slack 1.
        assert_eq!(
            s.column("n").unwrap().numeric,
            Some(NumericDomain {
                min: Some(-3.0),
                max: Some(9.0)
            })
        );
        let off = Options {
            numeric_ranges: false,
            ..Options::default()
        };
        assert_eq!(
            infer(&stats(), &off)
                .unwrap()
                .schema
                .column("x")
                .unwrap()
                .numeric,
            None
        );
    }

    #[test]
    fn thresholds_are_carried() {
        let options = Options {
            drift_numeric: 0.2,
            drift_categorical: 0.3,
            domain_tolerance: 0.05,
            ..Options::default()
        };
        let s = infer(&stats(), &options).unwrap().schema;
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json["drift"],
            serde_json::json!({"numeric": 0.2, "categorical": 0.3})
        );
        assert_eq!(
            json["domain_tolerance"],
            serde_json::json!({"numeric": 0.05, "categorical": 0.05})
        );
        // No label: the key is left out; optional fields too.
        assert!(json.get("label").is_none());
        assert_eq!(
            json["columns"][0],
            serde_json::json!({"name": "x", "dtype": "float64", "required": true,
                               "numeric": {"min": 1.0, "max": 3.0}})
        );
        // The written schema reads back the same.
        let back: Schema = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn bad_params_and_unknown_label_are_named() {
        let options = Options {
            label: Some("nope".into()),
            range_slack: -1.0,
            drift_numeric: 1.5,
            ..Options::default()
        };
        let e = infer(&stats(), &options).unwrap_err();
        assert!(e.contains("`range-slack`"), "{e}");
        assert!(e.contains("`drift-numeric`"), "{e}");
        assert!(
            e.contains("`nope`") && e.contains("x, n, e, s, many, f"),
            "{e}"
        );
    }
}
