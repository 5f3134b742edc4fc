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
//!
//! The host computes the document natively (`table.describe`, the same
//! definitions, value for value); this step passes its params and writes
//! the result. Each column entry also carries the host's extras: `type`
//! (the full column type: `float32`, `date`, `timestamp`, `categorical` …),
//! `timezone`, `nulls`, `boolean` counts and `numeric.drift_cells`.

use sluice_sdk::{Context, Manifest, Param, Port, Step, StepError, Value, export_step};

struct Statistics;

impl Step for Statistics {
    fn describe() -> Manifest {
        Manifest::new("statistics", "0.2.0")
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
        let bins: i64 = ctx.param("bins")?;
        let top_k: i64 = ctx.param("top-k")?;
        let quantiles: serde_json::Value = ctx.param("quantiles")?;
        let options = options(bins, top_k, quantiles)?;
        let data = ctx.input_table("data")?;
        let doc = data.describe(&options.to_string()).map_err(|e| {
            StepError::invalid_input(e.to_string().replace("option `", "parameter `"))
        })?;
        let parsed: serde_json::Value = serde_json::from_str(&doc)
            .map_err(|e| StepError::failed(format!("the host's statistics are not JSON: {e}")))?;
        let columns = parsed["columns"].as_array().map_or(0, Vec::len);
        ctx.metric("columns", columns as f64);
        ctx.metric("rows", data.num_rows() as f64);
        ctx.output_document("statistics", &doc)
    }
}

export_step!(Statistics);

/// The host's describe options from the step's params, checked as the
/// step documents them.
fn options(
    bins: i64,
    top_k: i64,
    quantiles: serde_json::Value,
) -> Result<serde_json::Value, StepError> {
    if bins < 1 {
        return Err(StepError::invalid_input(format!(
            "parameter `bins` must be at least 1, found {bins}"
        )));
    }
    if top_k < 0 {
        return Err(StepError::invalid_input(format!(
            "parameter `top-k` must not be negative, found {top_k}"
        )));
    }
    let list: Vec<f64> = serde_json::from_value(quantiles.clone()).map_err(|_| {
        StepError::invalid_input(format!(
            "parameter `quantiles` must be a list of numbers in [0, 1], found {quantiles}"
        ))
    })?;
    if let Some(q) = list.iter().find(|q| !(0.0..=1.0).contains(*q)) {
        return Err(StepError::invalid_input(format!(
            "parameter `quantiles` must hold numbers in [0, 1], found {q}"
        )));
    }
    Ok(serde_json::json!({"bins": bins, "top-k": top_k, "quantiles": list, "extras": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_become_the_hosts_options() {
        let o = options(5, 3, serde_json::json!([0.1, 0.9])).unwrap();
        assert_eq!(
            o,
            serde_json::json!({"bins": 5, "top-k": 3, "quantiles": [0.1, 0.9], "extras": true})
        );
    }

    #[test]
    fn bad_params_are_invalid_input_naming_the_param() {
        let e = options(0, 3, serde_json::json!([0.5])).unwrap_err();
        assert!(e.message().contains("`bins` must be at least 1"), "{e}");
        let e = options(5, 3, serde_json::json!([1.5])).unwrap_err();
        assert!(e.message().contains("found 1.5"), "{e}");
        let e = options(5, 3, serde_json::json!("median")).unwrap_err();
        assert!(e.message().contains("a list of numbers"), "{e}");
    }
}
