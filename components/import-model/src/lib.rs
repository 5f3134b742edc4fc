//! `std:import-model`: turns ONNX bytes the user brings (exported from
//! scikit-learn, PyTorch …) into a model artifact. The host checks that the
//! graph loads and runs in its inference engine (tract) and reads its
//! signature; the step writes the card:
//!
//! ```json
//! {"algorithm": "onnx", "source": "import", "task": "classification",
//!  "features": ["x1", "x2"], "label": "y", "classes": ["0", "1"], "name": "my-model",
//!  "signature": {...}}
//! ```
//!
//! `label` is needed to evaluate the model; `classes` (a classifier's
//! classes, in the order of its probability outputs) to name its
//! probabilities. Numbers in `classes` are kept as their text (`0` → `"0"`).

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json, json};
use sluice_sdk::ml::{self, Model, Task};
use sluice_sdk::{Context, Manifest, Param, Port, Step, StepError, export_step};

struct ImportModel;

impl Step for ImportModel {
    fn describe() -> Manifest {
        Manifest::new("import-model", "0.1.0")
            .doc("Imports an ONNX model you bring (e.g. exported from scikit-learn or PyTorch) as a model artifact, after checking that it loads and runs.")
            .input(Port::file("onnx").doc("The ONNX model's bytes."))
            .output(Port::model("model").doc("The model, its card naming the features, task, label and classes, and its ONNX signature."))
            .param(
                Param::json("features")
                    .required()
                    .doc("The input columns, in the order the graph expects them (a list)."),
            )
            .param(Param::text("task").required().doc("classification or regression."))
            .param(Param::text("label").doc("The column the model predicts; needed to evaluate it."))
            .param(
                Param::json("classes")
                    .doc("A classifier's classes, in the order of its probability outputs (a list)."),
            )
            .param(Param::text("name").doc("A name recorded in the card."))
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let spec = CardSpec {
            features: ctx.param("features")?,
            task: ctx.param("task")?,
            label: ctx.param("label")?,
            classes: ctx.param("classes")?,
            name: ctx.param("name")?,
        };
        let card = build_card(spec).map_err(StepError::invalid_input)?;
        let bytes = ctx.input_bytes("onnx")?;
        if bytes.is_empty() {
            return Err(StepError::invalid_input(
                "input `onnx` is empty; bind the bytes of an .onnx file",
            ));
        }
        if card["task"] == "classification" && card.get("classes").is_none() {
            ctx.warn("no `classes` given: the model's probability outputs are named by what the graph declares, if anything");
        }
        let model = Model::from_onnx(&bytes, &card).map_err(|e| match e {
            StepError::InvalidInput(m) => StepError::invalid_input(format!(
                "input `onnx`: {m}. Bind an ONNX file (opset 13 or later, e.g. exported with \
                 skl2onnx or torch.onnx.export) whose graph takes the `features` as one float \
                 tensor"
            )),
            other => other,
        })?;
        let signature = model.signature()?;
        ctx.info(format!(
            "imported an ONNX model ({} bytes); signature: {signature}",
            bytes.len()
        ));
        let has_signature = model.card()?.extra.contains_key("signature");
        let annotations = if has_signature {
            json!({})
        } else {
            json!({"signature": signature})
        };
        ctx.metric("onnx_bytes", bytes.len() as f64);
        ctx.metric(
            "features",
            card["features"].as_array().map_or(0, Vec::len) as f64,
        );
        ctx.output_model("model", &model, &annotations)
    }
}

export_step!(ImportModel);

/// The params that make the card.
struct CardSpec {
    features: Vec<String>,
    task: String,
    label: Option<String>,
    classes: Option<Json>,
    name: Option<String>,
}

/// Checks the params and builds the card.
fn build_card(spec: CardSpec) -> Result<Json, String> {
    let task = Task::parse(&spec.task).ok_or_else(|| {
        format!(
            "parameter `task` must be `classification` or `regression`, found {:?}",
            spec.task
        )
    })?;
    if spec.features.is_empty() {
        return Err(
            "parameter `features` is empty; list the model's input columns in order".into(),
        );
    }
    let mut seen = BTreeSet::new();
    for f in &spec.features {
        if f.is_empty() {
            return Err("parameter `features` holds an empty column name".into());
        }
        if !seen.insert(f.as_str()) {
            return Err(format!(
                "parameter `features` lists `{f}` twice; list each input column once"
            ));
        }
    }
    let mut card = Map::new();
    card.insert("algorithm".into(), "onnx".into());
    card.insert("source".into(), "import".into());
    card.insert("task".into(), task.name().into());
    card.insert("features".into(), spec.features.clone().into());
    if let Some(label) = spec.label {
        if label.is_empty() {
            return Err("parameter `label` is empty; name the column the model predicts".into());
        }
        if seen.contains(label.as_str()) {
            return Err(format!(
                "parameter `label` (`{label}`) is also listed in `features`; remove it from the features"
            ));
        }
        card.insert("label".into(), label.into());
    }
    if let Some(classes) = spec.classes {
        if task == Task::Regression {
            return Err(
                "parameter `classes` is for classifiers, but `task` is regression; remove it"
                    .into(),
            );
        }
        let Json::Array(list) = classes else {
            return Err(format!(
                "parameter `classes` must be a list of class labels, found {classes}"
            ));
        };
        let names = list
            .into_iter()
            .map(ml::class_name)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("parameter `classes`: {e}"))?;
        if names.len() < 2 {
            return Err(format!(
                "parameter `classes` lists {} class{}; a classifier has at least 2",
                names.len(),
                if names.len() == 1 { "" } else { "es" }
            ));
        }
        let mut distinct = BTreeSet::new();
        if let Some(dup) = names.iter().find(|n| !distinct.insert(n.as_str())) {
            return Err(format!("parameter `classes` lists `{dup}` twice"));
        }
        card.insert("classes".into(), names.into());
    }
    if let Some(name) = spec.name {
        card.insert("name".into(), name.into());
    }
    Ok(Json::Object(card))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(task: &str) -> CardSpec {
        CardSpec {
            features: vec!["a".into(), "b".into()],
            task: task.into(),
            label: Some("y".into()),
            classes: None,
            name: None,
        }
    }

    #[test]
    fn card_of_a_classifier() {
        let card = build_card(CardSpec {
            classes: Some(json!([0, 1])),
            name: Some("sk".into()),
            ..spec("classification")
        })
        .unwrap();
        assert_eq!(
            card,
            json!({"algorithm": "onnx", "source": "import", "task": "classification",
                   "features": ["a", "b"], "label": "y", "classes": ["0", "1"], "name": "sk"})
        );
        // The SDK reads it back.
        let parsed = ml::ModelCard::parse(&card.to_string()).unwrap();
        assert_eq!(parsed.task(), Some(Task::Classification));
    }

    #[test]
    fn card_of_a_regressor_without_label() {
        let card = build_card(CardSpec {
            label: None,
            ..spec("regression")
        })
        .unwrap();
        assert_eq!(card["task"], "regression");
        assert!(card.get("label").is_none() && card.get("classes").is_none());
    }

    #[test]
    fn bad_params_say_what_to_do() {
        let err = |s: CardSpec| build_card(s).unwrap_err();
        assert!(err(spec("clustering")).contains("`task`"));
        assert!(
            err(CardSpec {
                features: vec![],
                ..spec("regression")
            })
            .contains("empty")
        );
        assert!(
            err(CardSpec {
                features: vec!["a".into(), "a".into()],
                ..spec("regression")
            })
            .contains("twice")
        );
        assert!(
            err(CardSpec {
                label: Some("a".into()),
                ..spec("regression")
            })
            .contains("also listed")
        );
        assert!(
            err(CardSpec {
                classes: Some(json!(["a", "b"])),
                ..spec("regression")
            })
            .contains("for classifiers")
        );
        assert!(
            err(CardSpec {
                classes: Some(json!("a,b")),
                ..spec("classification")
            })
            .contains("must be a list")
        );
        assert!(
            err(CardSpec {
                classes: Some(json!(["a"])),
                ..spec("classification")
            })
            .contains("at least 2")
        );
        assert!(
            err(CardSpec {
                classes: Some(json!(["a", "a"])),
                ..spec("classification")
            })
            .contains("twice")
        );
        assert!(
            err(CardSpec {
                classes: Some(json!([["a"], "b"])),
                ..spec("classification")
            })
            .contains("must be a string")
        );
    }
}
