//! `std:push`: registers a blessed model as a new version of `name` in the
//! store's model registry, with its evaluation's overall metrics. An
//! unblessed model is never pushed: the step is `rejected`. With an
//! `infra-blessing` bound (`std:infra-validate`'s), a model that failed
//! its serving checks is rejected too, naming each broken budget;
//! `require-infra = true` makes that blessing required.
//!
//! The registration takes effect only when the step succeeds. Output:
//!
//! ```json
//! {"name": "breast-cancer", "metrics": {"accuracy": 0.97, ...},
//!  "model": {"algorithm": "logistic-regression", "features": [...], ...}}
//! ```

use serde_json::{Map, Value as Json, json};
use sluice_sdk::ml::Evaluation;
use sluice_sdk::{Context, Manifest, Param, Port, Step, StepError, export_step};

/// Longest registry name accepted.
const MAX_NAME: usize = 128;

struct Push;

impl Step for Push {
    fn describe() -> Manifest {
        Manifest::new("push", "0.1.0")
            .doc("Registers a blessed model as a new version in the model registry, with its evaluation metrics; an unblessed model is rejected.")
            .input(Port::model("model").doc("The model to register."))
            .input(Port::metrics("blessing").doc("std:model-validate's verdict on the model; it must say blessed."))
            .input(Port::metrics("evaluation").doc("The model's evaluation; its overall metrics are registered with it."))
            .input(
                Port::metrics("infra-blessing")
                    .optional()
                    .doc("std:infra-validate's verdict on serving the model; when bound, it must say blessed."),
            )
            .output(Port::metrics("pushed").doc("The name, the metrics and a summary of the model's card."))
            .param(
                Param::text("name")
                    .required()
                    .doc("The registry name: letters, digits, `.`, `_` and `-`, starting with a letter or digit."),
            )
            .param(
                Param::boolean("require-infra")
                    .default(false)
                    .doc("Refuse to push without an `infra-blessing` bound."),
            )
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let name: String = ctx.param("name")?;
        check_name(&name).map_err(StepError::invalid_input)?;
        let blessing: Json = ctx.input_json("blessing")?;
        let blessed = is_blessed(&blessing, "blessing", "std:model-validate")
            .map_err(StepError::invalid_input)?;
        if !blessed {
            return Err(StepError::rejected(format!(
                "the model is not blessed, so it is not pushed to `{name}`{}",
                failed_checks(&blessing)
            )));
        }
        let infra: Option<Json> = if ctx.has_input("infra-blessing") {
            Some(ctx.input_json("infra-blessing")?)
        } else if ctx.param::<bool>("require-infra")? {
            return Err(StepError::invalid_input(
                "`require-infra` is set but no `infra-blessing` is bound; bind                  std:infra-validate's `blessing` output to `infra-blessing`",
            ));
        } else {
            None
        };
        if let Some(infra) = &infra {
            let blessed = is_blessed(infra, "infra-blessing", "std:infra-validate")
                .map_err(StepError::invalid_input)?;
            if !blessed {
                return Err(StepError::rejected(format!(
                    "the model failed infra validation, so it is not pushed to `{name}`{}",
                    failed_checks(infra)
                )));
            }
        }
        let model = ctx.input_model("model")?;
        let card = model.card()?;
        let summary = card.summary();
        if let Some(blessed_model) = blessing.pointer("/candidate/model") {
            check_same_model(blessed_model, &summary, "blessing")
                .map_err(StepError::invalid_input)?;
        }
        if let Some(served_model) = infra.as_ref().and_then(|i| i.pointer("/candidate/model")) {
            check_same_model(served_model, &summary, "infra-blessing")
                .map_err(StepError::invalid_input)?;
        }
        let evaluation = Evaluation::from_value(ctx.input_json("evaluation")?).map_err(|e| {
            StepError::invalid_input(format!("input `evaluation`: {}", e.message()))
        })?;
        if let Some(evaluated) = evaluation.as_json().get("model") {
            check_same_model(evaluated, &summary, "evaluation")
                .map_err(StepError::invalid_input)?;
        }
        let metrics: Map<String, Json> = evaluation
            .overall()
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
        let metrics = Json::Object(metrics);
        ctx.register_model(&name, "model", &metrics)?;
        ctx.info(format!(
            "registering the model as a new version of `{name}` with {metrics}"
        ));
        for (k, v) in evaluation.overall() {
            ctx.metric(&k, v);
        }
        ctx.output_json(
            "pushed",
            &json!({"name": name, "metrics": metrics, "model": summary}),
        )
    }
}

export_step!(Push);

/// A registry name: 1–128 of `[A-Za-z0-9._-]`, starting with a letter or digit.
fn check_name(name: &str) -> Result<(), String> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let all_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if first_ok && all_ok && name.len() <= MAX_NAME {
        Ok(())
    } else {
        Err(format!(
            "parameter `name` must be 1 to {MAX_NAME} letters, digits, `.`, `_` or `-`, starting \
             with a letter or digit (it names the model in the registry and in serving URLs), \
             found {name:?}"
        ))
    }
}

/// Whether a blessing document says blessed; a document without a boolean
/// `blessed` is not a blessing.
fn is_blessed(doc: &Json, port: &str, made_by: &str) -> Result<bool, String> {
    match doc.get("blessed") {
        Some(Json::Bool(b)) => Ok(*b),
        _ => Err(format!(
            "input `{port}` is not a blessing: expected an object with a boolean `blessed` \
             ({made_by}'s output), found {}",
            sluice_sdk::ml::truncate(&doc.to_string(), 200)
        )),
    }
}

/// `: <check> (<detail>); …` for the failed checks a blessing lists, or ``.
fn failed_checks(doc: &Json) -> String {
    let failed: Vec<String> = doc
        .get("checks")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("passed") == Some(&Json::Bool(false)))
        .map(|c| {
            let name = c.get("check").and_then(Json::as_str).unwrap_or("check");
            match c.get("detail").and_then(Json::as_str) {
                Some(d) => format!("{name} ({d})"),
                None => name.to_owned(),
            }
        })
        .collect();
    if failed.is_empty() {
        String::new()
    } else {
        format!("; failed checks: {}", failed.join("; "))
    }
}

/// The document (`blessing` or `evaluation`) must be about this model, as
/// far as the card summary it recorded says.
fn check_same_model(recorded: &Json, summary: &Json, port: &str) -> Result<(), String> {
    for field in ["algorithm", "features", "label", "params", "training_rows"] {
        if let (Some(a), Some(b)) = (recorded.get(field), summary.get(field))
            && a != b
        {
            return Err(format!(
                "input `{port}` is about another model: its `{field}` is {a}, the model's is {b}; \
                 bind the {port} of this model"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["breast-cancer", "m1", "a.b_c-d", "X"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a/b", "ünï", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blessing_parsing() {
        assert_eq!(
            is_blessed(&json!({"blessed": true, "checks": []}), "blessing", "m"),
            Ok(true)
        );
        assert_eq!(
            is_blessed(&json!({"blessed": false}), "blessing", "m"),
            Ok(false)
        );
        for bad in [
            json!({"blessed": "yes"}),
            json!({"accuracy": 1}),
            json!([true]),
        ] {
            let e = is_blessed(&bad, "infra-blessing", "std:infra-validate").unwrap_err();
            assert!(
                e.starts_with("input `infra-blessing` is not a blessing")
                    && e.contains("(std:infra-validate's output)"),
                "{e}"
            );
        }
    }

    #[test]
    fn failed_checks_are_listed() {
        let doc = json!({"blessed": false, "checks": [
            {"check": "threshold accuracy >= 0.9", "passed": false, "detail": "accuracy = 0.8"},
            {"check": "baseline", "passed": true, "detail": "skipped"},
            {"check": "slice s = a", "passed": false},
        ]});
        assert_eq!(
            failed_checks(&doc),
            "; failed checks: threshold accuracy >= 0.9 (accuracy = 0.8); slice s = a"
        );
        assert_eq!(failed_checks(&json!({"blessed": false})), "");
    }

    #[test]
    fn documents_must_be_about_the_model() {
        let summary =
            json!({"algorithm": "mlp-classifier", "features": ["a"], "params": {"seed": 1}});
        assert!(check_same_model(&summary, &summary, "blessing").is_ok());
        assert!(check_same_model(&json!({}), &summary, "blessing").is_ok());
        let e =
            check_same_model(&json!({"params": {"seed": 2}}), &summary, "evaluation").unwrap_err();
        assert!(e.contains("`evaluation`") && e.contains("`params`"), "{e}");
    }
}
