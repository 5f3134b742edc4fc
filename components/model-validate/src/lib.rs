//! `std:model-validate`: the gate between training and the registry. It
//! blesses the candidate model only if
//!
//! 1. every metric threshold holds (a lower bound for metrics where higher
//!    is better, an upper bound for `log_loss`, `rmse` and `mae`);
//! 2. with a `baseline` model bound (e.g. the current production model),
//!    the candidate beats it by at least `margin` on `metric`, both measured
//!    on `test`; and
//! 3. with a baseline and slices, no slice regresses on `metric` by more
//!    than `slice-tolerance`.
//!
//! With `raw = true`, `test` holds the rows before any transform, and each
//! model is measured through the transform its own card records: a
//! baseline trained behind another transform is compared fairly, and
//! slices are by raw values.
//!
//! Otherwise the step is `rejected` with every failed check's reason, which
//! stops the pipeline. The output, when blessed:
//!
//! ```json
//! {"kind": "blessing", "blessed": true, "metric": "accuracy",
//!  "checks": [{"check": "threshold accuracy >= 0.9", "passed": true,
//!              "detail": "accuracy = 0.9649"}, ...],
//!  "candidate": {"model": {...card summary}, "metrics": {...}},
//!  "baseline": {"model": {...}, "metrics": {...}} | null}
//! ```

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value as Json, json};
use sluice_sdk::ml::{self, Direction, Evaluation, ModelCard};
use sluice_sdk::{Context, Manifest, Param, Port, Step, StepError, Value, export_step};

/// Float noise below this is not a difference.
const EPSILON: f64 = 1e-12;

struct ModelValidate;

impl Step for ModelValidate {
    fn describe() -> Manifest {
        Manifest::new("model-validate", "0.1.0")
            .doc("Blesses a model only if metric thresholds hold, it beats the baseline (e.g. production) model by a margin, and no slice regresses beyond a tolerance; otherwise rejects it with the reasons.")
            .input(Port::model("model").doc("The candidate model."))
            .input(Port::table("test").doc("Held-out rows; the baseline is measured on them."))
            .input(Port::metrics("evaluation").doc("The candidate's evaluation on `test` (std:evaluate's output)."))
            .input(
                Port::model("baseline")
                    .optional()
                    .doc("The model to beat, e.g. the current production model; without it only thresholds are checked."),
            )
            .output(Port::metrics("blessing").doc("The checks and their results; written only for a blessed model."))
            .param(
                Param::json("thresholds")
                    .default(Value::Json("{}".into()))
                    .doc("Metric bounds, e.g. {\"accuracy\": 0.9, \"log_loss\": 0.4}: a minimum for higher-is-better metrics, a maximum for log_loss, rmse, mae."),
            )
            .param(
                Param::text("metric")
                    .doc("The metric compared with the baseline; default accuracy for a classifier, rmse for a regressor."),
            )
            .param(
                Param::float("margin")
                    .default(0.0)
                    .doc("How much the candidate must beat the baseline by on `metric` (negative: how much worse it may be)."),
            )
            .param(
                Param::float("slice-tolerance")
                    .default(0.05)
                    .doc("With a baseline and slices: the most any slice may regress on `metric`."),
            )
            .param(
                Param::text("slice-by")
                    .doc("The column to slice by when comparing with the baseline; default: the slices of `evaluation`, if any."),
            )
            .param(
                Param::boolean("raw")
                    .default(Value::Boolean(false))
                    .doc("`test` holds raw rows (before any transform, e.g. `split.test`): each model is measured through the transform its own card records."),
            )
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let thresholds = parse_thresholds(ctx.param("thresholds")?)?;
        let metric_param: Option<String> = ctx.param("metric")?;
        let margin: f64 = ctx.param("margin")?;
        let tolerance: f64 = ctx.param("slice-tolerance")?;
        let slice_param: Option<String> = ctx.param("slice-by")?;
        let raw: bool = ctx.param("raw")?;
        check_numbers(margin, tolerance)?;

        let model = ctx.input_model("model")?;
        let card = model.card()?;
        let mut candidate = Evaluation::from_value(ctx.input_json("evaluation")?).map_err(|e| {
            StepError::invalid_input(format!("input `evaluation`: {}", e.message()))
        })?;
        check_same_model(&candidate, &card).map_err(StepError::invalid_input)?;
        let task = candidate.task().or(card.task()).ok_or_else(|| {
            StepError::invalid_input(
                "neither the evaluation nor the model card says whether the model is a \
                 classifier or a regressor; set the `metric` param and give the model a `task`",
            )
        })?;
        let metric = metric_param.unwrap_or_else(|| task.default_metric().to_owned());
        if !candidate.overall_json().contains_key(&metric) {
            return Err(StepError::invalid_input(format!(
                "parameter `metric`: `{metric}` is not among the candidate's metrics; choose one of: {}",
                keys(candidate.overall_json())
            )));
        }

        let mut checks =
            threshold_checks(&thresholds, &candidate).map_err(StepError::invalid_input)?;
        let mut baseline_doc = Json::Null;
        if ctx.has_input("baseline") {
            let baseline = ctx.input_model("baseline")?;
            let bcard = baseline.card()?;
            if let Some(bt) = bcard.task()
                && bt != task
            {
                return Err(StepError::invalid_input(format!(
                    "input `baseline` is a {bt} model but the candidate is a {task} model; they cannot be compared"
                )));
            }
            if !raw && let Some(w) = transform_differs(&card, &bcard) {
                ctx.warn(w);
            }
            let test = ctx.input_table("test")?;
            let slice_by = slice_param
                .clone()
                .or_else(|| candidate.slice_column().map(str::to_owned));
            ctx.progress(0, 2, "measuring the baseline on `test`");
            let measure = |m: &ml::Model| {
                if raw {
                    ml::evaluate_raw(m, &test, slice_by.as_deref())
                } else {
                    ml::evaluate(m, &test, slice_by.as_deref())
                }
            };
            let base_eval = measure(&baseline).map_err(|e| in_port("baseline", e))?;
            if let Some(why) =
                reevaluate_reason(&candidate, test.num_rows(), slice_by.as_deref(), raw)
            {
                ctx.info(format!("measuring the candidate on `test` again: {why}"));
                ctx.progress(1, 2, "measuring the candidate on `test`");
                candidate = measure(&model).map_err(|e| in_port("test", e))?;
            }
            ctx.progress(2, 2, "compared");
            checks.push(baseline_check(&metric, &candidate, &base_eval, margin));
            if slice_by.is_some() {
                checks.extend(slice_checks(&metric, &candidate, &base_eval, tolerance));
            }
            baseline_doc = json!({"model": bcard.summary(), "metrics": base_eval.overall_json()});
        } else {
            checks.push(Check::pass(
                "baseline",
                "no baseline model is bound; the comparison is skipped",
            ));
        }
        if thresholds.is_empty() && baseline_doc.is_null() {
            ctx.warn("no thresholds and no baseline: nothing to check, the model is blessed as is");
        }

        let failed: Vec<&Check> = checks.iter().filter(|c| !c.passed).collect();
        for c in &checks {
            let line = format!(
                "{} {}: {}",
                if c.passed { "pass" } else { "FAIL" },
                c.check,
                c.detail
            );
            if c.passed {
                ctx.info(line)
            } else {
                ctx.warn(line)
            }
        }
        ctx.metric("checks", checks.len() as f64);
        ctx.metric("checks_failed", failed.len() as f64);
        ctx.metric("blessed", if failed.is_empty() { 1.0 } else { 0.0 });
        if !failed.is_empty() {
            return Err(StepError::rejected(rejection(&failed)));
        }
        ctx.output_json(
            "blessing",
            &json!({
                "kind": "blessing",
                "blessed": true,
                "metric": metric,
                "checks": checks,
                "candidate": {"model": card.summary(), "metrics": candidate.overall_json()},
                "baseline": baseline_doc,
            }),
        )
    }
}

export_step!(ModelValidate);

/// One check and its result.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Check {
    check: String,
    passed: bool,
    detail: String,
}

impl Check {
    fn pass(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            passed: true,
            detail: detail.into(),
        }
    }

    fn new(check: impl Into<String>, passed: bool, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            passed,
            detail: detail.into(),
        }
    }
}

/// The `thresholds` param: metric name → bound.
fn parse_thresholds(json: Json) -> Result<BTreeMap<String, f64>, StepError> {
    let bad = |why: String| {
        StepError::invalid_input(format!(
            "parameter `thresholds` {why}; expected an object of metric bounds, e.g. \
             {{\"accuracy\": 0.9, \"log_loss\": 0.4}}"
        ))
    };
    match json {
        Json::Null => Ok(BTreeMap::new()),
        Json::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v.as_f64() {
                Some(x) if x.is_finite() => Ok((k, x)),
                _ => Err(bad(format!(
                    "gives `{k}` the bound {v}, which is not a number"
                ))),
            })
            .collect(),
        other => Err(bad(format!("is {other}"))),
    }
}

fn check_numbers(margin: f64, tolerance: f64) -> Result<(), StepError> {
    if !margin.is_finite() {
        return Err(StepError::invalid_input(format!(
            "parameter `margin` must be a finite number, found {margin}"
        )));
    }
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(StepError::invalid_input(format!(
            "parameter `slice-tolerance` must be a number >= 0, found {tolerance}"
        )));
    }
    Ok(())
}

/// The evaluation must be of this model, where it says which (std:evaluate
/// records the card summary under `model`).
fn check_same_model(evaluation: &Evaluation, card: &ModelCard) -> Result<(), String> {
    let Some(recorded) = evaluation.as_json().get("model") else {
        return Ok(());
    };
    let summary = card.summary();
    for field in ["algorithm", "features", "label", "params", "training_rows"] {
        if let (Some(a), Some(b)) = (recorded.get(field), summary.get(field))
            && a != b
        {
            return Err(format!(
                "input `evaluation` is of another model: its `{field}` is {a}, the model's is {b}; \
                 bind the evaluation of this model (std:evaluate on the same model)"
            ));
        }
    }
    Ok(())
}

/// One check per threshold. A threshold on a metric the evaluation lacks is
/// the param's mistake (an error); an undefined (null) metric fails its check.
fn threshold_checks(
    thresholds: &BTreeMap<String, f64>,
    candidate: &Evaluation,
) -> Result<Vec<Check>, String> {
    thresholds
        .iter()
        .map(|(name, &bound)| {
            let Some(raw) = candidate.overall_json().get(name) else {
                return Err(format!(
                    "parameter `thresholds` bounds `{name}`, which is not among the candidate's \
                     metrics; choose from: {}",
                    keys(candidate.overall_json())
                ));
            };
            let direction = Direction::of(name);
            let op = match direction {
                Direction::Maximize => ">=",
                Direction::Minimize => "<=",
            };
            let check = format!("threshold {name} {op} {bound}");
            Ok(match raw.as_f64() {
                Some(v) => {
                    let passed = direction.meets(v, bound);
                    let detail = if passed {
                        format!("{name} = {v:.6}")
                    } else {
                        format!(
                            "{name} = {v:.6}, {} the {} {bound}",
                            if direction == Direction::Maximize {
                                "below"
                            } else {
                                "above"
                            },
                            if direction == Direction::Maximize {
                                "minimum"
                            } else {
                                "maximum"
                            },
                        )
                    };
                    Check::new(check, passed, detail)
                }
                None => Check::new(check, false, format!("{name} is undefined ({raw})")),
            })
        })
        .collect()
}

/// The candidate must beat the baseline by at least `margin` on `metric`.
fn baseline_check(
    metric: &str,
    candidate: &Evaluation,
    baseline: &Evaluation,
    margin: f64,
) -> Check {
    let check = format!("beats baseline on {metric} by >= {margin}");
    let (Some(c), Some(b)) = (candidate.metric(metric), baseline.metric(metric)) else {
        return Check::new(
            check,
            false,
            format!(
                "{metric} is undefined for the {}",
                if candidate.metric(metric).is_none() {
                    "candidate"
                } else {
                    "baseline"
                }
            ),
        );
    };
    let gain = Direction::of(metric).improvement(c, b);
    let passed = gain + EPSILON >= margin;
    let change = if gain.abs() <= EPSILON {
        "equal".to_owned()
    } else {
        format!(
            "{} by {:.6}",
            if gain > 0.0 { "better" } else { "worse" },
            gain.abs()
        )
    };
    let detail = format!(
        "{metric} {c:.6} vs baseline {b:.6}: {change}{}",
        if passed {
            String::new()
        } else {
            format!(", the margin asks for {margin}")
        }
    );
    Check::new(check, passed, detail)
}

/// One check per slice value both evaluations have: the candidate may be
/// worse than the baseline on `metric` by at most `tolerance`. Slices where
/// either metric is undefined are noted, not failed.
fn slice_checks(
    metric: &str,
    candidate: &Evaluation,
    baseline: &Evaluation,
    tolerance: f64,
) -> Vec<Check> {
    let Some(column) = candidate.slice_column() else {
        return Vec::new();
    };
    let direction = Direction::of(metric);
    candidate
        .slice_values()
        .into_iter()
        .filter(|v| baseline.slice(v).is_some())
        .map(|value| {
            let check = format!("slice {column} = {value}: {metric} regresses by <= {tolerance}");
            match (
                candidate.slice_metric(value, metric),
                baseline.slice_metric(value, metric),
            ) {
                (Some(c), Some(b)) => {
                    let regression = -direction.improvement(c, b);
                    let passed = regression <= tolerance + EPSILON;
                    let detail = if regression > 0.0 {
                        format!("{metric} {c:.6} vs baseline {b:.6}: worse by {regression:.6}")
                    } else {
                        format!("{metric} {c:.6} vs baseline {b:.6}: not worse")
                    };
                    Check::new(check, passed, detail)
                }
                _ => Check::pass(
                    check,
                    format!("{metric} is undefined in this slice; not compared"),
                ),
            }
        })
        .collect()
}

/// Why the candidate must be measured on `test` again before comparing it
/// with the baseline (which is measured there), if it must.
fn reevaluate_reason(
    candidate: &Evaluation,
    test_rows: u64,
    slice_by: Option<&str>,
    raw: bool,
) -> Option<String> {
    if raw != candidate.is_raw() {
        return Some(if raw {
            "its evaluation was measured on transformed rows, `test` holds raw ones".into()
        } else {
            "its evaluation was measured on raw rows, `test` holds transformed ones".into()
        });
    }
    if candidate.rows() != Some(test_rows) {
        return Some(format!(
            "its evaluation covers {} rows, `test` has {test_rows}",
            candidate
                .rows()
                .map_or("an unknown number of".into(), |r| r.to_string())
        ));
    }
    if slice_by.is_some() && candidate.slice_column() != slice_by {
        return Some(format!(
            "its evaluation is not sliced by `{}`",
            slice_by.unwrap_or_default()
        ));
    }
    None
}

/// A warning when the models were trained behind different transforms:
/// both are measured on the same (candidate-transformed) `test` rows.
fn transform_differs(candidate: &ModelCard, baseline: &ModelCard) -> Option<String> {
    let (c, b) = (
        candidate.extra.get("transform"),
        baseline.extra.get("transform"),
    );
    let component = |t: Option<&Json>| t.and_then(|t| t.get("component")).cloned();
    if c == b {
        None
    } else if component(c) != component(b) {
        Some(
            "the baseline was trained behind another transform component; it is measured on \
             the candidate's `test` rows, so the comparison may be unfair"
                .into(),
        )
    } else {
        Some(
            "the baseline's transform was fitted to other data; it is measured on the \
             candidate's `test` rows"
                .into(),
        )
    }
}

/// `checks failed: a; b`.
fn rejection(failed: &[&Check]) -> String {
    format!(
        "the model is not blessed: {} of its checks failed: {}",
        failed.len(),
        failed
            .iter()
            .map(|c| format!("{} ({})", c.check, c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

fn in_port(port: &str, e: StepError) -> StepError {
    match e {
        StepError::InvalidInput(m) => StepError::invalid_input(format!("input `{port}`: {m}")),
        other => other,
    }
}

fn keys(map: &Map<String, Json>) -> String {
    map.keys().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(j: Json) -> Evaluation {
        Evaluation::from_value(j).unwrap()
    }

    fn cls(acc: f64, loss: f64) -> Evaluation {
        eval(json!({"task": "classification", "rows": 100,
            "overall": {"accuracy": acc, "log_loss": loss, "roc_auc": null}, "slices": null}))
    }

    #[test]
    fn thresholds_bound_in_the_metric_direction() {
        let t = parse_thresholds(json!({"accuracy": 0.9, "log_loss": 0.4})).unwrap();
        let ok = threshold_checks(&t, &cls(0.95, 0.3)).unwrap();
        assert!(ok.iter().all(|c| c.passed), "{ok:?}");
        assert_eq!(ok[0].check, "threshold accuracy >= 0.9");
        assert_eq!(ok[1].check, "threshold log_loss <= 0.4");
        let bad = threshold_checks(&t, &cls(0.85, 0.5)).unwrap();
        assert!(bad.iter().all(|c| !c.passed));
        assert!(
            bad[0].detail.contains("below the minimum 0.9"),
            "{}",
            bad[0].detail
        );
        assert!(
            bad[1].detail.contains("above the maximum 0.4"),
            "{}",
            bad[1].detail
        );
        // Exactly at the bound passes.
        assert!(
            threshold_checks(&t, &cls(0.9, 0.4))
                .unwrap()
                .iter()
                .all(|c| c.passed)
        );
    }

    #[test]
    fn thresholds_on_unknown_or_undefined_metrics() {
        let t = parse_thresholds(json!({"rmse": 1.0})).unwrap();
        let e = threshold_checks(&t, &cls(0.9, 0.1)).unwrap_err();
        assert!(
            e.contains("`rmse`") && e.contains("accuracy, log_loss, roc_auc"),
            "{e}"
        );
        let t = parse_thresholds(json!({"roc_auc": 0.9})).unwrap();
        let c = threshold_checks(&t, &cls(0.9, 0.1)).unwrap();
        assert!(!c[0].passed && c[0].detail.contains("undefined"));
    }

    #[test]
    fn bad_thresholds_param() {
        assert!(parse_thresholds(Json::Null).unwrap().is_empty());
        for bad in [json!([0.9]), json!({"accuracy": "high"}), json!(0.9)] {
            let e = parse_thresholds(bad.clone()).unwrap_err();
            assert!(
                matches!(&e, StepError::InvalidInput(m) if m.contains("`thresholds`")),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn margin_against_the_baseline() {
        let c = baseline_check("accuracy", &cls(0.96, 0.1), &cls(0.95, 0.1), 0.0);
        assert!(c.passed && c.detail.contains("better by 0.01"), "{c:?}");
        let c = baseline_check("accuracy", &cls(0.96, 0.1), &cls(0.95, 0.1), 0.02);
        assert!(
            !c.passed && c.detail.contains("margin asks for 0.02"),
            "{c:?}"
        );
        // The same model again passes with no margin.
        let c = baseline_check("accuracy", &cls(0.95, 0.1), &cls(0.95, 0.1), 0.0);
        assert!(c.passed && c.detail.ends_with(": equal"), "{c:?}");
        // Lower is better for log loss.
        assert!(baseline_check("log_loss", &cls(0.9, 0.2), &cls(0.9, 0.3), 0.05).passed);
        let c = baseline_check("log_loss", &cls(0.9, 0.3), &cls(0.9, 0.2), 0.0);
        assert!(!c.passed && c.detail.contains("worse by 0.1"), "{c:?}");
        // A negative margin lets the candidate be slightly worse.
        assert!(baseline_check("accuracy", &cls(0.94, 0.1), &cls(0.95, 0.1), -0.02).passed);
        assert!(!baseline_check("roc_auc", &cls(0.9, 0.1), &cls(0.9, 0.1), 0.0).passed);
        // Float noise is not a difference.
        assert!(baseline_check("accuracy", &cls(0.1 + 0.2, 0.1), &cls(0.3, 0.1), 0.0).passed);
    }

    fn sliced(a: f64, b: Option<f64>) -> Evaluation {
        eval(
            json!({"task": "regression", "rows": 10, "overall": {"rmse": 1.0},
            "slices": {"column": "region", "values": {
                "north": {"rows": 5, "rmse": a},
                "south": {"rows": 5, "rmse": b},
            }}}),
        )
    }

    #[test]
    fn slices_may_not_regress_beyond_tolerance() {
        let cand = sliced(1.10, Some(0.9));
        let base = sliced(1.0, Some(1.0));
        let checks = slice_checks("rmse", &cand, &base, 0.05);
        assert_eq!(checks.len(), 2);
        assert!(
            !checks[0].passed && checks[0].check.contains("region = north"),
            "{checks:?}"
        );
        assert!(
            checks[0].detail.contains("worse by 0.1"),
            "{}",
            checks[0].detail
        );
        assert!(checks[1].passed && checks[1].detail.contains("not worse"));
        assert!(
            slice_checks("rmse", &cand, &base, 0.2)
                .iter()
                .all(|c| c.passed)
        );
        // Undefined in a slice: noted, not failed.
        let c = slice_checks("rmse", &sliced(1.0, None), &base, 0.05);
        assert!(c[1].passed && c[1].detail.contains("undefined"));
        // No slices: no checks.
        assert!(slice_checks("rmse", &cls(0.9, 0.1), &base, 0.05).is_empty());
    }

    #[test]
    fn reevaluation_when_the_evaluation_does_not_match_test() {
        let e = sliced(1.0, Some(1.0));
        assert_eq!(reevaluate_reason(&e, 10, Some("region"), false), None);
        assert_eq!(reevaluate_reason(&e, 10, None, false), None);
        assert!(
            reevaluate_reason(&e, 12, None, false)
                .unwrap()
                .contains("covers 10 rows")
        );
        assert!(
            reevaluate_reason(&e, 10, Some("size"), false)
                .unwrap()
                .contains("`size`")
        );
        // Raw test rows, an evaluation of transformed ones, and back.
        assert!(
            reevaluate_reason(&e, 10, None, true)
                .unwrap()
                .contains("transformed rows")
        );
        let mut doc = e.into_json();
        doc["raw"] = true.into();
        let raw = Evaluation::from_value(doc).unwrap();
        assert_eq!(reevaluate_reason(&raw, 10, None, true), None);
        assert!(
            reevaluate_reason(&raw, 10, None, false)
                .unwrap()
                .contains("raw rows")
        );
    }

    #[test]
    fn evaluation_must_be_of_the_model() {
        let card = ModelCard::parse(r#"{"algorithm": "logistic-regression", "features": ["a", "b"], "label": "y", "params": {"c": 1}}"#).unwrap();
        let same = eval(json!({"overall": {}, "model": card.summary()}));
        assert!(check_same_model(&same, &card).is_ok());
        assert!(check_same_model(&eval(json!({"overall": {}})), &card).is_ok());
        let other = eval(json!({"overall": {}, "model": {"features": ["a"]}}));
        let e = check_same_model(&other, &card).unwrap_err();
        assert!(e.contains("`features`"), "{e}");
    }

    #[test]
    fn rejection_lists_every_failed_check() {
        let a = Check::new("threshold accuracy >= 0.9", false, "accuracy = 0.8");
        let b = Check::new("slice s = x", false, "worse by 0.1");
        let m = rejection(&[&a, &b]);
        assert!(
            m.contains("2 of its checks failed")
                && m.contains("accuracy = 0.8")
                && m.contains("worse by 0.1"),
            "{m}"
        );
    }

    #[test]
    fn transforms_compared() {
        let card = |t: Json| {
            ModelCard::parse(&json!({"features": ["a"], "transform": t}).to_string()).unwrap()
        };
        let a = card(json!({"component": "sha256:1", "state": {"m": 1}}));
        assert_eq!(transform_differs(&a, &a), None);
        let refit = card(json!({"component": "sha256:1", "state": {"m": 2}}));
        assert!(
            transform_differs(&a, &refit)
                .unwrap()
                .contains("fitted to other data")
        );
        let other = card(json!({"component": "sha256:2", "state": {}}));
        assert!(
            transform_differs(&a, &other)
                .unwrap()
                .contains("another transform component")
        );
    }

    #[test]
    fn margin_and_tolerance_params() {
        assert!(check_numbers(0.0, 0.05).is_ok());
        assert!(check_numbers(-0.01, 0.0).is_ok());
        assert!(check_numbers(f64::NAN, 0.0).is_err());
        assert!(check_numbers(0.0, -0.1).is_err());
    }
}
