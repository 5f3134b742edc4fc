//! The JSON documents `std:schema` and `std:validate` share: the statistics
//! document that `std:statistics` writes (read only), and the schema.
//!
//! Both steps use this module, so they read and write exactly the same
//! format. The format is documented for people who edit schemas by hand in
//! `docs/steps/schema.md`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// A column's type, as the statistics and the schema name it
/// (`sluice-contract`'s, the one dtype of host and guests).
pub use sluice_contract::DType;

// ---- statistics (written by std:statistics) -------------------------------

/// The statistics document of one table, as `std:statistics` writes it.
/// Fields this module does not use (mean, quantiles …) are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Statistics {
    /// Rows in the table.
    pub num_rows: u64,
    /// One entry per column, in table order.
    pub columns: Vec<ColumnStatistics>,
}

impl Statistics {
    /// The statistics of column `name`, if the table has it.
    pub fn column(&self, name: &str) -> Option<&ColumnStatistics> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// One column's statistics.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ColumnStatistics {
    /// The column's name.
    pub name: String,
    /// `boolean`, `int64`, `float64` or `utf8`.
    pub dtype: DType,
    /// Non-missing values.
    pub count: u64,
    /// Missing values (nulls, and NaN in float columns).
    pub missing: u64,
    /// Set for numeric columns.
    #[serde(default)]
    pub numeric: Option<NumericStatistics>,
    /// Set for categorical (utf8, boolean) columns.
    #[serde(default)]
    pub categorical: Option<CategoricalStatistics>,
}

impl ColumnStatistics {
    /// The fraction of the column's rows that are missing (0 for no rows).
    pub fn missing_fraction(&self) -> f64 {
        let rows = self.count + self.missing;
        if rows == 0 {
            0.0
        } else {
            self.missing as f64 / rows as f64
        }
    }
}

/// Summary of a numeric column.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NumericStatistics {
    /// The smallest value; null when there are no values.
    #[serde(default)]
    pub min: Option<f64>,
    /// The largest value; null when there are no values.
    #[serde(default)]
    pub max: Option<f64>,
    /// Equal-width histogram from min to max; null when there are no values.
    #[serde(default)]
    pub histogram: Option<Histogram>,
    /// Equal-mass histogram (`sluice_drift::quantile_histogram`, 40 bins);
    /// drift is measured on it. Absent in documents written before it
    /// existed.
    #[serde(default)]
    pub quantile_histogram: Option<Histogram>,
}

/// A histogram. In `histogram` (equal width), `counts[i]` values fall in
/// `[edges[i], edges[i + 1])`, the last bin closed on the right; in
/// `quantile_histogram`, in `(edges[i], edges[i + 1]]`, the first bin closed
/// on the left, a repeated value in the last zero-width bin at its value
/// (`sluice-drift`'s rule). In `histogram`, a single bin with equal edges
/// holds a constant column.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Histogram {
    /// Bin edges, ascending; one more than `counts`.
    pub edges: Vec<f64>,
    /// Values per bin.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// The histogram as `sluice-drift` takes it.
    pub fn to_drift(&self) -> sluice_drift::Histogram {
        sluice_drift::Histogram {
            edges: self.edges.clone(),
            counts: self.counts.clone(),
        }
    }
}

/// Summary of a categorical column.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CategoricalStatistics {
    /// Distinct non-missing values.
    pub distinct: u64,
    /// The most frequent values, by count descending then value ascending;
    /// truncated to `std:statistics`'s `top-k`.
    pub top: Vec<Category>,
}

impl CategoricalStatistics {
    /// Whether `top` lists every distinct value (it was not truncated).
    pub fn is_complete(&self) -> bool {
        self.top.len() as u64 >= self.distinct
    }
}

/// One value and how often it occurs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Category {
    /// The value (booleans as `"true"` / `"false"`).
    pub value: String,
    /// How many rows hold it.
    pub count: u64,
}

// ---- schema ---------------------------------------------------------------

/// A data schema: what each column must look like, and the thresholds
/// `std:validate` applies. Unknown fields are an error, so that a typo in a
/// hand-edited schema is caught rather than ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// The label column, if the schema marks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Drift thresholds against a baseline, per kind of column.
    #[serde(default)]
    pub drift: DriftThresholds,
    /// The fraction of out-of-domain values tolerated, per kind of column.
    #[serde(default, alias = "domain-tolerance")]
    pub domain_tolerance: DomainTolerance,
    /// The columns, in table order.
    pub columns: Vec<SchemaColumn>,
}

/// Drift thresholds: a column drifts when its distance to the baseline is
/// above the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftThresholds {
    /// Jensen–Shannon divergence (base 2, in [0, 1]) between the binned
    /// distributions (see `sluice-drift`).
    #[serde(default = "default_numeric_drift")]
    pub numeric: f64,
    /// L-infinity distance between category frequencies.
    #[serde(default = "default_categorical_drift")]
    pub categorical: f64,
}

/// The default drift threshold of numeric columns (Jensen–Shannon):
/// `sluice-drift`'s, the same as `sluice monitor`'s.
pub const DEFAULT_NUMERIC_DRIFT: f64 = sluice_drift::DEFAULT_NUMERIC_THRESHOLD;

/// The default drift threshold of categorical columns (L-infinity):
/// `sluice-drift`'s, the same as `sluice monitor`'s.
pub const DEFAULT_CATEGORICAL_DRIFT: f64 = sluice_drift::DEFAULT_CATEGORICAL_THRESHOLD;

fn default_numeric_drift() -> f64 {
    DEFAULT_NUMERIC_DRIFT
}

fn default_categorical_drift() -> f64 {
    DEFAULT_CATEGORICAL_DRIFT
}

impl Default for DriftThresholds {
    fn default() -> Self {
        Self {
            numeric: DEFAULT_NUMERIC_DRIFT,
            categorical: DEFAULT_CATEGORICAL_DRIFT,
        }
    }
}

/// The fraction of a column's values allowed outside its domain.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainTolerance {
    /// For numeric columns (values outside `[min, max]`).
    #[serde(default)]
    pub numeric: f64,
    /// For categorical columns (values not in `categories`).
    #[serde(default)]
    pub categorical: f64,
}

/// One column of a schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaColumn {
    /// The column's name.
    pub name: String,
    /// Its type; `int64` data also satisfies `float64`.
    pub dtype: DType,
    /// Whether every row must have a value. Defaults to true.
    #[serde(default = "yes")]
    pub required: bool,
    /// When not required: the largest fraction of missing values allowed
    /// (default 1).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "max-missing-fraction"
    )]
    pub max_missing_fraction: Option<f64>,
    /// Numeric columns: the allowed range; absent means any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric: Option<NumericDomain>,
    /// Categorical columns: the allowed values; absent means any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Overrides the schema's drift threshold for this column.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "drift-threshold"
    )]
    pub drift_threshold: Option<f64>,
    /// Overrides the schema's domain tolerance for this column.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "domain-tolerance"
    )]
    pub domain_tolerance: Option<f64>,
}

fn yes() -> bool {
    true
}

impl SchemaColumn {
    /// The largest fraction of missing values this column allows.
    pub fn allowed_missing(&self) -> f64 {
        if self.required {
            0.0
        } else {
            self.max_missing_fraction.unwrap_or(1.0)
        }
    }

    /// The drift threshold that applies to this column.
    pub fn drift_threshold(&self, schema: &Schema) -> f64 {
        self.drift_threshold.unwrap_or(if self.dtype.is_numeric() {
            schema.drift.numeric
        } else {
            schema.drift.categorical
        })
    }

    /// The domain tolerance that applies to this column.
    pub fn domain_tolerance(&self, schema: &Schema) -> f64 {
        self.domain_tolerance.unwrap_or(if self.dtype.is_numeric() {
            schema.domain_tolerance.numeric
        } else {
            schema.domain_tolerance.categorical
        })
    }
}

/// The allowed range of a numeric column; either bound may be left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericDomain {
    /// The smallest allowed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The largest allowed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl Schema {
    /// The schema column `name`, if any.
    pub fn column(&self, name: &str) -> Option<&SchemaColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Problems that make the schema itself unusable, each naming the
    /// column and field at fault and what to do; empty when it is sound.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let fraction = |what: &str, v: f64, out: &mut Vec<String>| {
            if !(0.0..=1.0).contains(&v) {
                out.push(format!("{what} is {v}; it must be a number in [0, 1]"));
            }
        };
        fraction("`drift.numeric`", self.drift.numeric, &mut out);
        fraction("`drift.categorical`", self.drift.categorical, &mut out);
        fraction(
            "`domain_tolerance.numeric`",
            self.domain_tolerance.numeric,
            &mut out,
        );
        fraction(
            "`domain_tolerance.categorical`",
            self.domain_tolerance.categorical,
            &mut out,
        );
        let mut seen = BTreeSet::new();
        for c in &self.columns {
            let at = format!("column `{}`", c.name);
            if !seen.insert(c.name.as_str()) {
                out.push(format!("{at} is listed more than once; keep one entry"));
            }
            if let Some(m) = c.max_missing_fraction {
                fraction(&format!("{at}: `max_missing_fraction`"), m, &mut out);
                if c.required && m > 0.0 {
                    out.push(format!(
                        "{at}: `required` is true but `max_missing_fraction` is {m}; \
                         set `required` to false to allow missing values"
                    ));
                }
            }
            if let Some(t) = c.drift_threshold {
                fraction(&format!("{at}: `drift_threshold`"), t, &mut out);
            }
            if let Some(t) = c.domain_tolerance {
                fraction(&format!("{at}: `domain_tolerance`"), t, &mut out);
            }
            if let Some(d) = &c.numeric {
                if !c.dtype.is_numeric() {
                    out.push(format!(
                        "{at} is {} but has a `numeric` range; ranges apply to int64 \
                         and float64 columns only — remove it or use `categories`",
                        c.dtype
                    ));
                }
                if let (Some(lo), Some(hi)) = (d.min, d.max)
                    && lo > hi
                {
                    out.push(format!(
                        "{at}: `numeric.min` ({lo}) is greater than `numeric.max` ({hi})"
                    ));
                }
            }
            if c.categories.is_some() && c.dtype.is_numeric() {
                out.push(format!(
                    "{at} is {} but has `categories`; categories apply to utf8 and \
                     boolean columns only — remove them or use a `numeric` range",
                    c.dtype
                ));
            }
        }
        if let Some(label) = &self.label
            && self.column(label).is_none()
        {
            out.push(format!(
                "the label `{label}` is not one of the schema's columns; add the column \
                 or correct `label`"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_schema_gets_defaults() {
        let s: Schema =
            serde_json::from_str(r#"{"columns": [{"name": "x", "dtype": "float64"}]}"#).unwrap();
        assert_eq!(s.drift, DriftThresholds::default());
        assert_eq!(s.domain_tolerance, DomainTolerance::default());
        let c = &s.columns[0];
        assert!(c.required);
        assert_eq!(c.allowed_missing(), 0.0);
        assert_eq!(c.drift_threshold(&s), 0.1);
        assert_eq!(c.domain_tolerance(&s), 0.0);
        assert!(s.problems().is_empty());
    }

    #[test]
    fn typos_and_bad_types_are_errors() {
        let e = serde_json::from_str::<Schema>(
            r#"{"columns": [{"name": "x", "dtype": "float64", "requird": true}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("requird"), "{e}");
        let e = serde_json::from_str::<Schema>(r#"{"columns": [{"name": "x", "dtype": "float"}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("float64"), "{e}");
    }

    #[test]
    fn kebab_case_aliases() {
        let s: Schema = serde_json::from_str(
            r#"{"domain-tolerance": {"numeric": 0.5}, "columns": [{"name": "x",
                "dtype": "int64", "required": false, "max-missing-fraction": 0.25,
                "drift-threshold": 0.3, "domain-tolerance": 0.2}]}"#,
        )
        .unwrap();
        assert_eq!(s.domain_tolerance.numeric, 0.5);
        let c = &s.columns[0];
        assert_eq!(c.allowed_missing(), 0.25);
        assert_eq!(c.drift_threshold(&s), 0.3);
        assert_eq!(c.domain_tolerance(&s), 0.2);
    }

    #[test]
    fn problems_name_column_and_field() {
        let s: Schema = serde_json::from_str(
            r#"{"label": "y", "drift": {"numeric": 2},
                "columns": [
                  {"name": "x", "dtype": "int64", "numeric": {"min": 3, "max": 1}},
                  {"name": "x", "dtype": "utf8", "numeric": {"min": 0}},
                  {"name": "z", "dtype": "float64", "categories": ["a"],
                   "max_missing_fraction": 0.5}]}"#,
        )
        .unwrap();
        let p = s.problems().join("\n");
        for want in [
            "`drift.numeric` is 2",
            "`numeric.min` (3) is greater than `numeric.max` (1)",
            "column `x` is listed more than once",
            "column `x` is utf8 but has a `numeric` range",
            "column `z` is float64 but has `categories`",
            "column `z`: `required` is true but `max_missing_fraction` is 0.5",
            "the label `y` is not one of the schema's columns",
        ] {
            assert!(p.contains(want), "missing {want:?} in:\n{p}");
        }
    }

    #[test]
    fn reads_statistics_document() {
        let s: Statistics = serde_json::from_str(
            r#"{"num_rows": 3, "columns": [
              {"name": "x", "dtype": "float64", "count": 2, "missing": 1,
               "numeric": {"min": 1.0, "max": 2.0, "mean": 1.5, "std": 0.7,
                 "quantiles": [], "histogram": {"edges": [1.0, 2.0], "counts": [2]}}},
              {"name": "s", "dtype": "utf8", "count": 3, "missing": 0,
               "categorical": {"distinct": 2, "top": [{"value": "a", "count": 2}]}}]}"#,
        )
        .unwrap();
        assert_eq!(s.columns[0].dtype, DType::Float64);
        assert!((s.columns[0].missing_fraction() - 1.0 / 3.0).abs() < 1e-12);
        assert!(
            !s.column("s")
                .unwrap()
                .categorical
                .as_ref()
                .unwrap()
                .is_complete()
        );
        assert!(DType::Float64.accepts(DType::Int64));
        assert!(!DType::Int64.accepts(DType::Float64));
    }
}
