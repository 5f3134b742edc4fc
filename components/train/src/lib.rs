//! `std:train`: trains a model natively in the host, optionally searching
//! trainer params (the "tuner"), and records it with what it needs.
//!
//! Without `search` it trains once with `params`. With `search` it trains
//! one model per candidate on `train`, measures each on `eval` with
//! `ml.evaluate`, and keeps the best by the search metric (higher is better,
//! except for `log_loss`, `rmse` and `mae`). Either way the model's card is
//! annotated with:
//!
//! ```json
//! {"transform": {"component": "sha256:…", "params": {}, "state": {}},
//!  "eval": {"rows": 114, "accuracy": 0.97, "log_loss": 0.08, ...},
//!  "search": {"method": "grid", "metric": "accuracy", "direction": "max",
//!             "trials": [{"trial": 1, "params": {"c": 0.1}, "value": 0.95}, ...],
//!             "best": {"trial": 2, "params": {"c": 1}, "value": 0.97}}}
//! ```
//!
//! `transform` is present when the `transform` input is bound (so the model
//! server can replay it), `search` when the `search` param is set.

mod search;

use serde_json::{Map, Value as Json, json};
use sluice_sdk::ml::{self, Direction, Evaluation, Model, Task};
use sluice_sdk::{Context, Manifest, Param, Port, Step, StepError, Table, Value, export_step};

use search::Search;

struct Train;

impl Step for Train {
    fn describe() -> Manifest {
        Manifest::new("train", "0.1.0")
            .doc("Trains a model natively (linear or logistic regression, MLP classifier or regressor), optionally searching trainer params by an eval metric.")
            .input(Port::table("train").doc("The rows to train on: the features and the label."))
            .input(
                Port::table("eval")
                    .optional()
                    .doc("Held-out rows: the model is measured on them and a search picks by them. May be absent or empty (a split with no eval share) when there is no search."),
            )
            .input(
                Port::transform("transform")
                    .optional()
                    .doc("The fitted transform that produced the tables; recorded in the card so the server replays it."),
            )
            .output(Port::model("model").doc("The trained (best) model, its card annotated with `eval`, `transform` and `search`."))
            .param(
                Param::text("algorithm")
                    .default("logistic-regression")
                    .doc("linear-regression, logistic-regression, mlp-classifier, mlp-regressor, gradient-boosting-classifier, gradient-boosting-regressor, random-forest-classifier or random-forest-regressor."),
            )
            .param(Param::text("label").required().doc("The column to predict."))
            .param(
                Param::json("features")
                    .doc("The input columns, in order (a list); default: every column of `train` but the label."),
            )
            .param(
                Param::json("params")
                    .default(Value::Json("{}".into()))
                    .doc("Trainer params (an object), e.g. {\"c\": 1.0} or {\"hidden_layers\": [16], \"epochs\": 200, \"seed\": 1}."),
            )
            .param(
                Param::json("search")
                    .doc("Optional search: {\"method\": \"grid\"|\"random\", \"metric\", \"trials\", \"seed\", \"space\": {param: [values] | {\"min\", \"max\", \"log\", \"integer\"}}}."),
            )
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let algorithm: String = ctx.param("algorithm")?;
        let label: String = ctx.param("label")?;
        let features: Option<Vec<String>> = ctx.param("features")?;
        let params = as_object("params", ctx.param::<Json>("params")?)?;
        let search = ctx
            .param::<Option<Json>>("search")?
            .map(Search::from_json)
            .transpose()
            .map_err(StepError::invalid_input)?;

        let train = ctx.input_table("train")?;
        // An absent or empty eval table (a split of train and test only):
        // the model is trained but not measured here; std:evaluate measures
        // it on test.
        let eval = if ctx.has_input("eval") {
            Some(ctx.input_table("eval")?).filter(|t| t.num_rows() > 0)
        } else {
            None
        };
        let transform = if ctx.has_input("transform") {
            let doc: Json = ctx.input_json("transform")?;
            check_transform(&doc).map_err(StepError::invalid_input)?;
            Some(doc)
        } else {
            None
        };
        let features = features.unwrap_or_else(|| default_features(&train.column_names(), &label));
        ctx.info(format!(
            "training `{algorithm}` on {} rows to predict `{label}` from {} features: {}",
            train.num_rows(),
            features.len(),
            features.join(", ")
        ));

        let (outcome, trials) = match &search {
            None => {
                ctx.progress(0, 1, "training");
                let params = Json::Object(params);
                let model = fit(
                    &algorithm,
                    &train,
                    eval.as_ref(),
                    &features,
                    &label,
                    &params,
                )?;
                ctx.progress(1, 1, "trained");
                let evaluation = match &eval {
                    Some(eval) => Some(ml::evaluate(&model, eval, None).map_err(in_eval)?),
                    None => {
                        ctx.info(
                            "no eval rows (input `eval` is absent or empty): the model is \
                             not measured here; std:evaluate measures it on the test rows",
                        );
                        None
                    }
                };
                let outcome = Outcome {
                    model,
                    evaluation,
                    search: None,
                };
                (outcome, 1)
            }
            Some(s) => {
                let Some(eval) = &eval else {
                    return Err(StepError::invalid_input(
                        "parameter `search` picks the best candidate by its score on the eval \
                         rows, but input `eval` is absent or empty; give std:split an eval \
                         share, e.g. fractions = { train = 0.7, eval = 0.15, test = 0.15 }, \
                         and wire its `eval` output to this step",
                    ));
                };
                let candidates = s.candidates().map_err(StepError::invalid_input)?;
                let trials = Trials {
                    algorithm: &algorithm,
                    features: &features,
                    label: &label,
                    params: &params,
                    search: s,
                    candidates: &candidates,
                };
                (run_search(ctx, &trials, &train, eval)?, candidates.len())
            }
        };

        let mut annotations = Map::new();
        if let Some(t) = transform {
            annotations.insert("transform".into(), t);
        }
        if let Some(evaluation) = &outcome.evaluation {
            let mut eval_doc = Map::new();
            if let Some(rows) = evaluation.rows() {
                eval_doc.insert("rows".into(), rows.into());
            }
            eval_doc.extend(evaluation.overall_json().clone());
            annotations.insert("eval".into(), Json::Object(eval_doc));
        }
        if let Some(s) = outcome.search {
            annotations.insert("search".into(), s);
        }
        ctx.output_model("model", &outcome.model, &Json::Object(annotations))?;

        let card = outcome.model.card()?;
        ctx.metric("training_rows", train.num_rows() as f64);
        ctx.metric("features", features.len() as f64);
        ctx.metric("trials", trials as f64);
        if let Some(loss) = card.loss_history.last() {
            ctx.metric("final_loss", *loss);
        }
        for (name, value) in outcome.evaluation.iter().flat_map(Evaluation::overall) {
            ctx.metric(&format!("eval_{name}"), value);
        }
        Ok(())
    }
}

export_step!(Train);

/// What every trial of a search shares.
struct Trials<'a> {
    algorithm: &'a str,
    features: &'a [String],
    label: &'a str,
    params: &'a Map<String, Json>,
    search: &'a Search,
    candidates: &'a [Map<String, Json>],
}

/// The chosen model, its eval measurements (none without eval rows), and
/// the search record.
struct Outcome {
    model: Model,
    evaluation: Option<Evaluation>,
    search: Option<Json>,
}

/// Trains on `train`; with eval rows, they are the validation rows that
/// early stopping watches (`early_stopping` of gradient boosting and MLPs).
fn fit(
    algorithm: &str,
    train: &Table,
    eval: Option<&Table>,
    features: &[String],
    label: &str,
    params: &Json,
) -> Result<Model, StepError> {
    match eval {
        Some(eval) => ml::train_validated(algorithm, train, eval, features, label, params),
        None => ml::train(algorithm, train, features, label, params),
    }
}

/// An eval table the model cannot be measured on is the eval input's fault.
fn in_eval(e: StepError) -> StepError {
    match e {
        StepError::InvalidInput(m) => StepError::invalid_input(format!("input `eval`: {m}")),
        other => other,
    }
}

/// Trains and measures each candidate, keeping the best model.
fn run_search(
    ctx: &Context,
    t: &Trials<'_>,
    train: &Table,
    eval: &Table,
) -> Result<Outcome, StepError> {
    let n = t.candidates.len();
    let mut metric: Option<(String, Direction)> = t.search.metric.clone().map(|m| {
        let d = Direction::of(&m);
        (m, d)
    });
    let mut values: Vec<Option<f64>> = Vec::with_capacity(n);
    let mut records = Vec::with_capacity(n);
    let mut errors = Vec::new();
    let mut best: Option<(Model, Evaluation)> = None;

    for (i, overrides) in t.candidates.iter().enumerate() {
        let trial = i + 1;
        let desc = search::describe(overrides);
        let at = format!("search trial {trial}/{n} ({desc})");
        ctx.progress(i as u64, n as u64, &format!("trial {trial}/{n}: {desc}"));
        let params = Json::Object(search::merge(t.params, overrides));
        let model = match fit(t.algorithm, train, Some(eval), t.features, t.label, &params) {
            Ok(m) => m,
            // A param the trainer rejects, a missing column …: the same
            // mistake would fail every trial, so stop here.
            Err(StepError::InvalidInput(m)) => {
                return Err(StepError::invalid_input(format!("{at}: {m}")));
            }
            Err(e) => {
                ctx.warn(format!("{at}: {}; skipping this candidate", e.message()));
                errors.push(format!("trial {trial} ({desc}): {}", e.message()));
                values.push(None);
                records.push(json!({"trial": trial, "params": overrides, "value": null, "error": e.message()}));
                continue;
            }
        };
        let evaluation = ml::evaluate(&model, eval, None).map_err(in_eval)?;

        let (name, direction) = match &metric {
            Some(m) => m.clone(),
            None => {
                let task = evaluation
                    .task()
                    .or_else(|| model.card().ok().and_then(|c| c.task()))
                    .or_else(|| Task::of_algorithm(t.algorithm))
                    .unwrap_or(Task::Classification);
                let m = task.default_metric().to_owned();
                let d = Direction::of(&m);
                metric = Some((m.clone(), d));
                (m, d)
            }
        };
        if !evaluation.overall_json().contains_key(&name) {
            return Err(StepError::invalid_input(format!(
                "parameter `search`: metric `{name}` is not among the eval metrics of `{}`; \
                 choose one of: {}",
                t.algorithm,
                evaluation
                    .overall_json()
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let value = evaluation.metric(&name).filter(|v| v.is_finite());
        match value {
            Some(v) => {
                ctx.info(format!("{at}: {name} = {v:.6} on eval"));
                ctx.metric(&format!("trial_{name}"), v);
            }
            None => {
                ctx.warn(format!(
                    "{at}: {name} on eval is not a finite number; this candidate cannot be ranked"
                ));
                errors.push(format!(
                    "trial {trial} ({desc}): {name} is not a finite number"
                ));
            }
        }
        records.push(json!({"trial": trial, "params": overrides, "value": value}));
        values.push(value);
        if search::best(&values, direction) == Some(i) {
            best = Some((model, evaluation));
        }
    }
    ctx.progress(n as u64, n as u64, "searched");

    let (Some((model, evaluation)), Some((name, direction))) = (best, metric) else {
        return Err(StepError::failed(format!(
            "all {n} search trials failed: {}",
            errors.join("; ")
        )));
    };
    let chosen = search::best(&values, direction).expect("the best model has a value");
    ctx.info(format!(
        "best of {n} trials: trial {} ({}) with {name} = {}",
        chosen + 1,
        search::describe(&t.candidates[chosen]),
        values[chosen].unwrap_or(f64::NAN)
    ));
    let mut doc = json!({
        "method": t.search.method.name(),
        "metric": name,
        "direction": direction.name(),
        "trials": records,
        "best": {
            "trial": chosen + 1,
            "params": t.candidates[chosen],
            "value": values[chosen],
        },
    });
    if t.search.method == search::Method::Random {
        doc["seed"] = json!(t.search.seed.unwrap_or(0));
    }
    Ok(Outcome {
        model,
        evaluation: Some(evaluation),
        search: Some(doc),
    })
}

/// `value` as a JSON object (`null` as empty); anything else names the param.
fn as_object(param: &str, value: Json) -> Result<Map<String, Json>, StepError> {
    match value {
        Json::Object(m) => Ok(m),
        Json::Null => Ok(Map::new()),
        other => Err(StepError::invalid_input(format!(
            "parameter `{param}` must be a JSON object (a TOML table) of trainer params, \
             e.g. {{\"c\": 1.0}}, found {other}"
        ))),
    }
}

/// Every column but the label, in table order.
fn default_features(columns: &[String], label: &str) -> Vec<String> {
    columns.iter().filter(|c| *c != label).cloned().collect()
}

/// A transform artifact: an object with a `component` digest and a `state`.
fn check_transform(doc: &Json) -> Result<(), String> {
    let ok = doc.get("component").is_some_and(Json::is_string) && doc.get("state").is_some();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "input `transform` is not a transform artifact: expected an object with \
             `component` (the transform component's digest) and `state` (e.g. the output of \
             std:transform), found {}",
            sluice_sdk::ml::truncate(&doc.to_string(), 200)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_features_drop_the_label() {
        let cols: Vec<String> = ["a", "y", "b"].map(String::from).to_vec();
        assert_eq!(default_features(&cols, "y"), ["a", "b"]);
        assert_eq!(default_features(&cols, "z"), ["a", "y", "b"]);
    }

    #[test]
    fn params_must_be_an_object() {
        assert_eq!(as_object("params", json!({"c": 1})).unwrap()["c"], 1);
        assert!(as_object("params", Json::Null).unwrap().is_empty());
        let e = as_object("params", json!([1])).unwrap_err();
        assert!(
            matches!(&e, StepError::InvalidInput(m) if m.contains("`params`")),
            "{e}"
        );
    }

    #[test]
    fn transform_documents() {
        assert!(
            check_transform(&json!({"component": "sha256:ab", "params": {}, "state": {}})).is_ok()
        );
        let e = check_transform(&json!({"state": {}})).unwrap_err();
        assert!(e.contains("`component`"), "{e}");
        assert!(check_transform(&json!({"component": "sha256:ab"})).is_err());
        assert!(check_transform(&json!([1])).is_err());
    }
}
