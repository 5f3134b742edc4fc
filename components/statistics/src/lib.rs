//! `std:statistics`: per-column statistics of a table, as a JSON document.
//!
//! ```json
//! {"num_rows": 150, "columns": [
//!   {"name": "sepal_length", "dtype": "float64", "count": 150, "missing": 0,
//!    "numeric": {"min": 4.3, "max": 7.9, "mean": 5.84, "std": 0.83,
//!                "quantiles": [{"q": 0.25, "value": 5.1}],
//!                "histogram": {"edges": [4.3, 4.66], "counts": [9]},
//!                "quantile_histogram": {"edges": [4.3, 4.8], "counts": [16]}}},
//!   {"name": "species", "dtype": "utf8", "count": 150, "missing": 0,
//!    "categorical": {"distinct": 3, "top": [{"value": "setosa", "count": 50}]}}]}
//! ```
//!
//! `int64` and `float64` columns are numeric (NaN counts as missing);
//! `utf8` and `boolean` columns are categorical (booleans as `"true"` and
//! `"false"`). `count` is the number of non-missing values. `min`, `max` and
//! `mean` are null when `count` is 0, and `std` (the sample standard
//! deviation) when `count` < 2. Quantiles interpolate linearly between the
//! closest ranks (numpy's default). The histogram has `bins` equal-width bins
//! from min to max, the last one closed on the right (one bin when min ==
//! max); it is null when there are no values or min or max is infinite.
//! The quantile histogram has 40 equal-mass bins, its edges at the
//! 40-quantiles of the finite values (repeated where values repeat; a
//! repeated value is a point mass in a zero-width bin), the first bin closed
//! and the others open on the left: `std:validate` measures drift on it
//! (on the baseline's deciles, every fourth edge), with the same code
//! (`sluice-drift`) as `sluice monitor`; it is null when there is no finite
//! value.

use std::collections::BTreeMap;

use serde::Serialize;
use sluice_sdk::{Column, Context, Manifest, Param, Port, Step, StepError, Value, export_step};
use sluice_std_common::{drift, quantile};

struct Statistics;

impl Step for Statistics {
    fn describe() -> Manifest {
        Manifest::new("statistics", "0.1.0")
            .doc("Computes per-column statistics: counts, numeric summaries with quantiles and a histogram, and the most frequent categories.")
            .input(Port::table("data").doc("The table to describe."))
            .output(Port::statistics("statistics").doc("The statistics, as JSON."))
            .param(
                Param::integer("bins")
                    .default(10)
                    .doc("Histogram bins of each numeric column (at least 1)."),
            )
            .param(
                Param::integer("top-k")
                    .default(10)
                    .doc("The most frequent values kept for each categorical column."),
            )
            .param(
                Param::json("quantiles")
                    .default(Value::Json("[0.25, 0.5, 0.75]".into()))
                    .doc("Quantiles (each in [0, 1]) of each numeric column."),
            )
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let options = Options {
            bins: ctx.param("bins")?,
            top_k: ctx.param("top-k")?,
            quantiles: ctx.param("quantiles")?,
        };
        options.validate()?;
        let data = ctx.input_table("data")?;
        let fields = data.fields();
        let total = fields.len() as u64;
        let mut columns = Vec::with_capacity(fields.len());
        for (i, field) in fields.iter().enumerate() {
            ctx.progress(i as u64, total, &format!("column `{}`", field.name));
            columns.push(column_stats(
                &field.name,
                data.column(&field.name)?,
                &options,
            ));
        }
        ctx.progress(total, total, "done");
        let stats = TableStats {
            num_rows: data.num_rows(),
            columns,
        };
        ctx.metric("columns", stats.columns.len() as f64);
        ctx.metric("rows", stats.num_rows as f64);
        ctx.output_json("statistics", &stats)
    }
}

export_step!(Statistics);

/// The step's params.
#[derive(Debug, Clone)]
struct Options {
    bins: usize,
    top_k: usize,
    quantiles: Vec<f64>,
}

impl Options {
    fn validate(&self) -> Result<(), StepError> {
        if self.bins < 1 {
            return Err(StepError::invalid_input(
                "parameter `bins` must be at least 1, found 0",
            ));
        }
        if let Some(q) = self.quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(StepError::invalid_input(format!(
                "parameter `quantiles` must hold numbers in [0, 1], found {q}"
            )));
        }
        Ok(())
    }
}

/// The whole document.
#[derive(Debug, Serialize)]
struct TableStats {
    num_rows: u64,
    columns: Vec<ColumnStats>,
}

/// One column's statistics; exactly one of `numeric` and `categorical` is set.
#[derive(Debug, Serialize, PartialEq)]
struct ColumnStats {
    name: String,
    dtype: &'static str,
    count: u64,
    missing: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    numeric: Option<NumericStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    categorical: Option<CategoricalStats>,
}

#[derive(Debug, Serialize, PartialEq)]
struct NumericStats {
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    std: Option<f64>,
    quantiles: Vec<Quantile>,
    histogram: Option<Histogram>,
    /// Equal-mass bins: what drift is measured on (`sluice-drift`).
    quantile_histogram: Option<Histogram>,
}

#[derive(Debug, Serialize, PartialEq)]
struct Quantile {
    q: f64,
    value: Option<f64>,
}

#[derive(Debug, Serialize, PartialEq)]
struct Histogram {
    edges: Vec<f64>,
    counts: Vec<u64>,
}

#[derive(Debug, Serialize, PartialEq)]
struct CategoricalStats {
    distinct: u64,
    top: Vec<Category>,
}

#[derive(Debug, Serialize, PartialEq)]
struct Category {
    value: String,
    count: u64,
}

fn column_stats(name: &str, column: Column, options: &Options) -> ColumnStats {
    let dtype = column.dtype().name();
    let rows = column.len() as u64;
    let (numeric, categorical, count) = match column {
        Column::Float64(v) => {
            let values: Vec<f64> = v.into_iter().flatten().filter(|x| !x.is_nan()).collect();
            (Some(numeric(values.clone(), options)), None, values.len())
        }
        Column::Int64(v) => {
            let values: Vec<f64> = v.into_iter().flatten().map(|x| x as f64).collect();
            (Some(numeric(values.clone(), options)), None, values.len())
        }
        Column::Utf8(v) => {
            let values: Vec<String> = v.into_iter().flatten().collect();
            let n = values.len();
            (None, Some(categorical(values, options.top_k)), n)
        }
        Column::Boolean(v) => {
            let values: Vec<String> = v.into_iter().flatten().map(|b| b.to_string()).collect();
            let n = values.len();
            (None, Some(categorical(values, options.top_k)), n)
        }
    };
    ColumnStats {
        name: name.to_owned(),
        dtype,
        count: count as u64,
        missing: rows - count as u64,
        numeric,
        categorical,
    }
}

/// Summary of the non-missing (non-NaN) values of a numeric column.
fn numeric(mut values: Vec<f64>, options: &Options) -> NumericStats {
    values.sort_by(f64::total_cmp);
    let (mean, std) = mean_std(&values);
    let min = values.first().copied();
    let max = values.last().copied();
    NumericStats {
        min,
        max,
        mean,
        std,
        quantiles: options
            .quantiles
            .iter()
            .map(|&q| Quantile {
                q,
                value: quantile(&values, q),
            })
            .collect(),
        histogram: histogram(&values, options.bins),
        quantile_histogram: drift::quantile_histogram(&values, drift::SUMMARY_BINS).map(|h| {
            Histogram {
                edges: h.edges,
                counts: h.counts,
            }
        }),
    }
}

/// Mean and sample standard deviation (Welford's algorithm).
fn mean_std(values: &[f64]) -> (Option<f64>, Option<f64>) {
    let (mut n, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for &x in values {
        n += 1.0;
        let delta = x - mean;
        mean += delta / n;
        m2 += delta * (x - mean);
    }
    match values.len() {
        0 => (None, None),
        1 => (Some(mean), None),
        _ => (Some(mean), Some((m2 / (n - 1.0)).sqrt())),
    }
}

/// `bins` equal-width bins from min to max of sorted values, the last one
/// closed on the right; one bin when min == max.
fn histogram(sorted: &[f64], bins: usize) -> Option<Histogram> {
    let (&min, &max) = (sorted.first()?, sorted.last()?);
    if !min.is_finite() || !max.is_finite() {
        return None;
    }
    if min == max {
        return Some(Histogram {
            edges: vec![min, max],
            counts: vec![sorted.len() as u64],
        });
    }
    let width = (max - min) / bins as f64;
    let mut edges: Vec<f64> = (0..bins).map(|i| min + width * i as f64).collect();
    edges.push(max);
    let mut counts = vec![0u64; bins];
    for &x in sorted {
        let mut i = (((x - min) / (max - min)) * bins as f64) as usize;
        i = i.min(bins - 1);
        // Settle rounding at the edges: bin i is [edges[i], edges[i + 1]).
        if i > 0 && x < edges[i] {
            i -= 1;
        } else if i + 1 < bins && x >= edges[i + 1] {
            i += 1;
        }
        counts[i] += 1;
    }
    Some(Histogram { edges, counts })
}

/// Distinct values and the `top_k` most frequent, by count descending then
/// value ascending.
fn categorical(values: Vec<String>, top_k: usize) -> CategoricalStats {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    let distinct = counts.len() as u64;
    let mut top: Vec<Category> = counts
        .into_iter()
        .map(|(value, count)| Category { value, count })
        .collect();
    // Stable: equal counts stay in ascending value order.
    top.sort_by_key(|c| std::cmp::Reverse(c.count));
    top.truncate(top_k);
    CategoricalStats { distinct, top }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            bins: 4,
            top_k: 2,
            quantiles: vec![0.0, 0.25, 0.5, 0.75, 1.0],
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn mean_and_sample_std() {
        // [2, 4, 4, 4, 5, 5, 7, 9]: mean 5, sample variance 32 / 7.
        let (mean, std) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(mean, Some(5.0));
        assert!(close(std.unwrap(), (32.0f64 / 7.0).sqrt()));
        assert_eq!(mean_std(&[3.0]), (Some(3.0), None));
        assert_eq!(mean_std(&[]), (None, None));
        // Stable with a large offset.
        let (_, std) = mean_std(&[1e9 + 4.0, 1e9 + 7.0, 1e9 + 13.0, 1e9 + 16.0]);
        assert!(close(std.unwrap(), 30.0f64.sqrt()));
    }

    #[test]
    fn histogram_edges_and_counts() {
        let h = histogram(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], 4).unwrap();
        assert_eq!(h.edges, [0.0, 2.0, 4.0, 6.0, 8.0]);
        // [0,2) [2,4) [4,6) [6,8]: the last bin is closed on the right.
        assert_eq!(h.counts, [2, 2, 2, 3]);
        let h = histogram(&[0.1, 0.2, 0.3], 3).unwrap();
        assert_eq!(h.counts, [1, 1, 1]);
        assert_eq!(h.edges.len(), 4);
        let h = histogram(&[2.5, 2.5], 10).unwrap();
        assert_eq!(h.edges, [2.5, 2.5]);
        assert_eq!(h.counts, [2]);
        assert_eq!(histogram(&[], 3), None);
    }

    #[test]
    fn numeric_column_with_missing_and_nan() {
        let col = Column::Float64(vec![Some(1.0), None, Some(f64::NAN), Some(3.0), Some(2.0)]);
        let s = column_stats("x", col, &options());
        assert_eq!((s.dtype, s.count, s.missing), ("float64", 3, 2));
        let n = s.numeric.unwrap();
        assert_eq!(
            (n.min, n.max, n.mean, n.std),
            (Some(1.0), Some(3.0), Some(2.0), Some(1.0))
        );
        assert_eq!(
            n.quantiles[2],
            Quantile {
                q: 0.5,
                value: Some(2.0)
            }
        );
        assert_eq!(n.histogram.unwrap().counts.iter().sum::<u64>(), 3);
        // The summary of [1, 2, 3] that sluice-drift (and so sluice monitor) makes.
        let q = n.quantile_histogram.unwrap();
        let expected = drift::quantile_histogram(&[3.0, 1.0, 2.0], drift::SUMMARY_BINS).unwrap();
        assert_eq!((q.edges, q.counts), (expected.edges, expected.counts));
        assert!(s.categorical.is_none());

        let s = column_stats("i", Column::Int64(vec![Some(4), Some(6)]), &options());
        assert_eq!(s.dtype, "int64");
        assert_eq!(s.numeric.unwrap().mean, Some(5.0));
    }

    #[test]
    fn empty_numeric_column_is_null() {
        let s = column_stats("x", Column::Float64(vec![None, None]), &options());
        assert_eq!((s.count, s.missing), (0, 2));
        let json = serde_json::to_value(&s).unwrap();
        let n = &json["numeric"];
        assert!(
            n["min"].is_null() && n["max"].is_null() && n["mean"].is_null() && n["std"].is_null()
        );
        assert!(n["quantiles"][0]["value"].is_null() && n["histogram"].is_null());
        assert!(n["quantile_histogram"].is_null());
    }

    #[test]
    fn top_sorted_by_count_then_value() {
        let values = ["b", "a", "c", "c", "b", "d", "d"]
            .iter()
            .map(|s| Some(s.to_string()))
            .chain([None])
            .collect();
        let s = column_stats("s", Column::Utf8(values), &options());
        assert_eq!((s.dtype, s.count, s.missing), ("utf8", 7, 1));
        let c = s.categorical.unwrap();
        assert_eq!(c.distinct, 4);
        let top: Vec<(&str, u64)> = c.top.iter().map(|c| (c.value.as_str(), c.count)).collect();
        assert_eq!(top, [("b", 2), ("c", 2)]);

        let s = column_stats(
            "b",
            Column::Boolean(vec![Some(true), Some(false), Some(true)]),
            &options(),
        );
        assert_eq!(s.dtype, "boolean");
        let top: Vec<(String, u64)> = s
            .categorical
            .unwrap()
            .top
            .into_iter()
            .map(|c| (c.value, c.count))
            .collect();
        assert_eq!(top, [("true".to_string(), 2), ("false".to_string(), 1)]);
    }

    #[test]
    fn json_shape() {
        let stats = TableStats {
            num_rows: 2,
            columns: vec![
                column_stats("x", Column::Float64(vec![Some(1.0), Some(2.0)]), &options()),
                column_stats("s", Column::Utf8(vec![Some("a".into()), None]), &options()),
            ],
        };
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["num_rows"], 2);
        assert_eq!(json["columns"][0]["name"], "x");
        assert_eq!(
            json["columns"][0]["numeric"]["histogram"]["edges"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
        assert!(json["columns"][0].get("categorical").is_none());
        assert_eq!(
            json["columns"][1],
            serde_json::json!({"name": "s", "dtype": "utf8", "count": 1, "missing": 1,
                "categorical": {"distinct": 1, "top": [{"value": "a", "count": 1}]}})
        );
    }

    #[test]
    fn options_are_checked() {
        let mut o = options();
        assert!(o.validate().is_ok());
        o.quantiles.push(1.5);
        assert!(o.validate().is_err());
        let o = Options {
            bins: 0,
            ..options()
        };
        assert!(o.validate().is_err());
    }
}
