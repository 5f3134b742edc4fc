//! `std:evaluate`: measures a model on held-out rows, overall and per slice.
//!
//! The output is `ml.evaluate`'s JSON plus a summary of the model's card:
//!
//! ```json
//! {"task": "classification", "rows": 114,
//!  "overall": {"accuracy": 0.97, "precision": 0.98, "recall": 0.95, "f1": 0.96,
//!              "roc_auc": 0.99, "log_loss": 0.08},
//!  "slices": {"column": "size", "values": {"small": {"rows": 60, "accuracy": 0.98, ...}}},
//!  "model": {"algorithm": "logistic-regression", "task": "classification",
//!            "features": [...], "label": "diagnosis", "classes": [...], "params": {...},
//!            "training_rows": 341}}
//! ```
//!
//! Regression metrics are `rmse`, `mae` and `r2`; `slices` is null without
//! `slice-by`. With `raw = true`, `test` holds the rows before the
//! transform (the split's `test`): the model runs on them through the
//! transform its card records, slices are named by raw values (`age = 30`,
//! not `0.41`), and the document says `"raw": true`. As a guard, the step also runs the model on the rows and
//! fails if any prediction or overall metric is NaN, infinite or null.

use serde_json::Value as Json;
use sluice_sdk::ml::{self, Evaluation};
use sluice_sdk::{Column, Context, Manifest, Param, Port, Step, StepError, Value, export_step};

struct Evaluate;

impl Step for Evaluate {
    fn describe() -> Manifest {
        Manifest::new("evaluate", "0.1.0")
            .doc("Measures a model on held-out rows: accuracy, precision, recall, F1, ROC AUC and log loss for a classifier, RMSE, MAE and R² for a regressor, overall and per slice.")
            .input(Port::model("model").doc("The model to measure."))
            .input(Port::table("test").doc("Held-out rows with the model's features and its label (with `raw`, the rows before the transform)."))
            .output(Port::metrics("evaluation").doc("The metrics overall and per slice, and a summary of the model's card."))
            .param(
                Param::text("slice-by")
                    .doc("A column of `test`: the metrics are also reported per value of it."),
            )
            .param(
                Param::boolean("raw")
                    .default(Value::Boolean(false))
                    .doc("`test` holds raw rows (before the transform, e.g. `split.test`): the model runs on them through the transform its card records, and slices are by raw values."),
            )
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let slice_by: Option<String> = ctx.param("slice-by")?;
        let raw: bool = ctx.param("raw")?;
        let model = ctx.input_model("model")?;
        let card = model.card()?;
        let test = ctx.input_table("test")?;
        let rows = test.num_rows();
        if rows == 0 {
            return Err(StepError::invalid_input(
                "input `test` has no rows; a model cannot be measured on nothing (check the split fractions)",
            ));
        }
        ctx.progress(0, 2, "evaluating");
        let (evaluation, predictions) = if raw {
            let evaluation =
                ml::evaluate_raw(&model, &test, slice_by.as_deref()).map_err(in_test)?;
            ctx.progress(1, 2, "checking predictions");
            let transformed = model.transform(&test).map_err(in_test)?;
            (evaluation, model.predict(&transformed).map_err(in_test)?)
        } else {
            let evaluation = ml::evaluate(&model, &test, slice_by.as_deref()).map_err(in_test)?;
            ctx.progress(1, 2, "checking predictions");
            (evaluation, model.predict(&test).map_err(in_test)?)
        };
        let mut problems = Vec::new();
        for field in predictions.fields() {
            if let Some(p) = non_finite(&field.name, &predictions.column(&field.name)?) {
                problems.push(p);
            }
        }
        problems.extend(non_finite_metrics(&evaluation));
        if !problems.is_empty() {
            return Err(StepError::failed(format!(
                "the model's output on `test` is not all finite numbers: {}. The host's \
                 backends should never produce these; for a model you imported, check it \
                 with its own runtime; otherwise please report it with the model card",
                problems.join("; ")
            )));
        }
        for w in undefined_slice_metrics(&evaluation) {
            ctx.warn(w);
        }
        ctx.progress(2, 2, "evaluated");

        let overall = evaluation.overall();
        ctx.info(format!(
            "{} rows: {}",
            rows,
            overall
                .iter()
                .map(|(k, v)| format!("{k} = {v:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        ctx.metric("rows", rows as f64);
        for (name, value) in &overall {
            ctx.metric(name, *value);
        }
        ctx.output_json("evaluation", &with_model(evaluation, card.summary()))
    }
}

export_step!(Evaluate);

/// A `test` table the model cannot run on is the input's fault.
fn in_test(e: StepError) -> StepError {
    match e {
        StepError::InvalidInput(m) => StepError::invalid_input(format!("input `test`: {m}")),
        other => other,
    }
}

/// The evaluation document with the card summary under `model`.
fn with_model(evaluation: Evaluation, summary: Json) -> Json {
    let mut doc = evaluation.into_json();
    doc["model"] = summary;
    doc
}

/// What is wrong with a prediction column, if anything: non-finite floats
/// or nulls, counted, with the first row.
fn non_finite(name: &str, column: &Column) -> Option<String> {
    let bad: Vec<(usize, String)> = match column {
        Column::Float64(v) => v
            .iter()
            .enumerate()
            .filter_map(|(i, x)| match x {
                Some(x) if x.is_finite() => None,
                Some(x) => Some((i, x.to_string())),
                None => Some((i, "null".into())),
            })
            .collect(),
        Column::Int64(v) => nulls(v),
        Column::Boolean(v) => nulls(v),
        Column::Utf8(v) => nulls(v),
    };
    let (first, value) = bad.first()?;
    Some(format!(
        "column `{name}` has {} bad value{} (first at row {first}: {value})",
        bad.len(),
        if bad.len() == 1 { "" } else { "s" }
    ))
}

fn nulls<T>(v: &[Option<T>]) -> Vec<(usize, String)> {
    v.iter()
        .enumerate()
        .filter(|(_, x)| x.is_none())
        .map(|(i, _)| (i, "null".into()))
        .collect()
}

/// Overall metrics that are not finite numbers: JSON has no NaN or
/// infinity, so the host writes them as null. Structured entries (e.g. a
/// confusion matrix) are not scalar metrics and are left alone.
fn non_finite_metrics(evaluation: &Evaluation) -> Vec<String> {
    evaluation
        .overall_json()
        .iter()
        .filter(|(_, v)| v.is_null() || v.as_f64().is_some_and(|x| !x.is_finite()))
        .map(|(k, v)| format!("overall metric `{k}` is {v}"))
        .collect()
}

/// Slice metrics that are null: legitimate for, e.g., ROC AUC of a slice
/// holding one class, so only worth a warning.
fn undefined_slice_metrics(evaluation: &Evaluation) -> Vec<String> {
    let Some(column) = evaluation.slice_column() else {
        return Vec::new();
    };
    let Some(values) = evaluation
        .as_json()
        .get("slices")
        .and_then(|s| s.get("values"))
        .and_then(Json::as_object)
    else {
        return Vec::new();
    };
    values
        .iter()
        .flat_map(|(value, metrics)| {
            metrics
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| v.is_null())
                .map(move |(m, _)| {
                    format!("slice `{column}` = `{value}`: `{m}` is undefined (null), e.g. a slice with one class")
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finite_predictions_pass() {
        assert_eq!(
            non_finite("p", &Column::Float64(vec![Some(0.1), Some(-3.0)])),
            None
        );
        assert_eq!(
            non_finite("prediction", &Column::Utf8(vec![Some("a".into())])),
            None
        );
    }

    #[test]
    fn non_finite_predictions_are_named() {
        let c = Column::Float64(vec![Some(1.0), Some(f64::NAN), Some(f64::INFINITY), None]);
        let m = non_finite("probability_a", &c).unwrap();
        assert!(
            m.contains("`probability_a`") && m.contains("3 bad values") && m.contains("row 1: NaN"),
            "{m}"
        );
        let m = non_finite("prediction", &Column::Utf8(vec![Some("a".into()), None])).unwrap();
        assert!(
            m.contains("1 bad value ") && m.contains("row 1: null"),
            "{m}"
        );
    }

    #[test]
    fn metrics_must_be_finite_overall_but_may_be_undefined_per_slice() {
        let e = Evaluation::from_value(json!({
            "task": "classification", "rows": 4,
            "overall": {"accuracy": 0.75, "roc_auc": null,
                        "confusion_matrix": {"counts": [[1, 1], [0, 2]]}},
            "slices": {"column": "s", "values": {"a": {"rows": 2, "accuracy": 1.0, "roc_auc": null}}},
        }))
        .unwrap();
        let bad = non_finite_metrics(&e);
        assert_eq!(bad, ["overall metric `roc_auc` is null"]);
        let warn = undefined_slice_metrics(&e);
        assert_eq!(warn.len(), 1);
        assert!(warn[0].contains("`s` = `a`") && warn[0].contains("`roc_auc`"));
        let ok = Evaluation::from_value(json!({"overall": {"rmse": 1.0}, "slices": null})).unwrap();
        assert!(non_finite_metrics(&ok).is_empty() && undefined_slice_metrics(&ok).is_empty());
    }

    #[test]
    fn output_adds_the_model_summary() {
        let e = Evaluation::from_value(
            json!({"task": "regression", "rows": 3, "overall": {"rmse": 1.0}, "slices": null}),
        )
        .unwrap();
        let doc = with_model(e, json!({"features": ["x"]}));
        assert_eq!(doc["model"]["features"], json!(["x"]));
        assert_eq!(doc["overall"]["rmse"], 1.0);
        assert!(doc["slices"].is_null());
    }
}
