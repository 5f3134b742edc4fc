//! The step half: `describe` and `run` over the SDK's [`Context`]. Kept
//! apart from the bindings so that it reads like any other step.

#[cfg(test)]
use sluice_sdk::Column;
use sluice_sdk::{Context, DType, Manifest, Param, Port, Step, StepError, Value};

use crate::transform::{self, Spec, State};

/// The splits the step reads and writes, in order.
const SPLITS: [&str; 3] = ["train", "eval", "test"];

/// The spec used when the step's `spec` param is not set.
const DEFAULT_SPEC: &str = r#"{"default-numeric": ["impute:mean", "standard"], "default-categorical": ["impute:most-frequent", "one-hot"]}"#;

/// The `std:transform` step.
pub struct TransformStep;

impl Step for TransformStep {
    fn describe() -> Manifest {
        Manifest::new("transform", "0.1.0")
            .doc("Fits per-column feature transforms (standard, min-max, one-hot, imputation, bucketizing) on the train split and applies them to train, eval and test; the fitted transform also runs in the model server.")
            .input(Port::table("train").doc("The training rows; the transforms are fitted on these only."))
            .input(Port::table("eval").doc("The evaluation rows."))
            .input(Port::table("test").doc("The test rows."))
            .output(Port::transform("transform").doc("The fitted transform: {\"params\": spec, \"state\": fitted state} (see docs/steps/transform.md)."))
            .output(Port::table("train").doc("The transformed training rows."))
            .output(Port::table("eval").doc("The transformed evaluation rows."))
            .output(Port::table("test").doc("The transformed test rows."))
            .param(
                Param::json("spec")
                    .default(Value::Json(DEFAULT_SPEC.into()))
                    .doc("What to do with each column: {label, default-numeric, default-categorical, columns: {name: [transforms]}, passthrough, drop}. Transforms: standard, min-max, one-hot, impute:mean|median|most-frequent|constant:<v>, bucketize:<n>|[b1, ...]."),
            )
            .param(
                Param::text("label")
                    .doc("The label column, passed through unchanged (same as the spec's `label`). Optional."),
            )
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let spec_json: serde_json::Value = ctx.param("spec")?;
        let label: Option<String> = ctx.param("label")?;
        let spec = step_spec(&spec_json, label).map_err(StepError::invalid_input)?;

        let train = derived(ctx.input_table("train")?, &spec)
            .map_err(|e| StepError::invalid_input(format!("input `train`: {e}")))?;
        let fields = fields_of(&train);
        let state = transform::fit_with(&fields, &spec, |name| {
            train.column(name).map_err(|e| e.to_string())
        })
        .map_err(|e| StepError::invalid_input(format!("fitting on `train`: {e}")))?;
        let (document, state) = fit_document(state)?;
        ctx.output_json("transform", &document)?;

        let features = state.outputs().count();
        for (i, split) in SPLITS.iter().enumerate() {
            ctx.progress(
                i as u64,
                SPLITS.len() as u64,
                &format!("applying to `{split}`"),
            );
            let table = if *split == "train" {
                None
            } else {
                Some(
                    derived(ctx.input_table(split)?, &spec)
                        .map_err(|e| StepError::invalid_input(format!("input `{split}`: {e}")))?,
                )
            };
            let table = table.as_ref().unwrap_or(&train);
            let out = apply_natively(table, &state)
                .map_err(|e| StepError::invalid_input(format!("input `{split}`: {e}")))?;
            ctx.output_table(split, &out)?;
            ctx.metric(&format!("{split}_rows"), table.num_rows() as f64);
        }
        ctx.progress(SPLITS.len() as u64, SPLITS.len() as u64, "done");
        ctx.metric("output_columns", features as f64);
        ctx.info(format!(
            "fitted {} input columns into {features} output columns",
            state.columns.len()
        ));
        Ok(())
    }
}

/// Fits on the train columns; returns the `transform` document
/// (`{"params": spec, "state": state}`) and the state read back from it,
/// exactly as the model server will read it.
fn fit_document(state: State) -> Result<(serde_json::Value, State), StepError> {
    let spec = state.params.clone();
    let state_json = serde_json::to_value(&state)
        .map_err(|e| StepError::failed(format!("serializing the state: {e}")))?;
    // `inputs`: the columns a server must be given to apply the transform
    // (all but the label), with their types; it describes the model's
    // request signature without knowing this state's format.
    let inputs: Vec<serde_json::Value> = state
        .columns
        .iter()
        .filter(|c| c.role != transform::Role::Label)
        .map(|c| serde_json::json!({"name": c.name, "type": c.dtype}))
        .collect();
    let document = serde_json::json!({"params": spec, "state": state_json, "inputs": inputs});
    let state = State::parse(&document.to_string()).map_err(StepError::failed)?;
    Ok((document, state))
}

/// The spec of the step: the `spec` param with the `label` param merged in.
fn step_spec(spec: &serde_json::Value, label: Option<String>) -> Result<Spec, String> {
    let mut spec = Spec::parse(&spec.to_string()).map_err(|e| format!("parameter `spec`: {e}"))?;
    match (&spec.label, label) {
        (Some(a), Some(b)) if *a != b => {
            return Err(format!(
                "parameter `label` is `{b}` but the spec's `label` is `{a}`; set one of them"
            ));
        }
        (None, Some(b)) => spec.label = Some(b),
        _ => {}
    }
    Ok(spec)
}

/// The columns of an SDK table and their types, in order.
fn fields_of(table: &sluice_sdk::Table) -> Vec<(String, DType)> {
    table
        .fields()
        .into_iter()
        .map(|f| (f.name, f.dtype))
        .collect()
}

/// `table` with the spec's derived columns added (computed by the host),
/// or as it is when the spec derives nothing.
pub(crate) fn derived(table: sluice_sdk::Table, spec: &Spec) -> Result<sluice_sdk::Table, String> {
    match transform::derive_columns(&fields_of(&table), spec)? {
        None => Ok(table),
        Some(exprs) => {
            let exprs: Vec<(&str, &str)> = exprs
                .iter()
                .map(|(n, e)| (n.as_str(), e.as_str()))
                .collect();
            table
                .compute(&exprs)
                .map_err(|e| format!("computing the derived columns: {e}"))
        }
    }
}

/// `state` applied to `table` by the host, natively: the transform's
/// output columns as SQL expressions ([`transform::sql_columns`]).
pub(crate) fn apply_natively(
    table: &sluice_sdk::Table,
    state: &State,
) -> Result<sluice_sdk::Table, String> {
    let exprs = transform::sql_columns(&fields_of(table), state)?;
    let exprs: Vec<(&str, &str)> = exprs
        .iter()
        .map(|(n, e)| (n.as_str(), e.as_str()))
        .collect();
    table.compute(&exprs).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Role;

    fn f(v: &[Option<f64>]) -> Column {
        Column::Float64(v.to_vec())
    }

    fn s(v: &[Option<&str>]) -> Column {
        Column::Utf8(v.iter().map(|x| x.map(str::to_owned)).collect())
    }

    #[test]
    fn step_spec_merges_the_label() {
        let default: serde_json::Value = serde_json::from_str(DEFAULT_SPEC).unwrap();
        let spec = step_spec(&default, Some("y".into())).unwrap();
        assert_eq!(spec.label.as_deref(), Some("y"));
        assert_eq!(
            Spec {
                label: None,
                ..spec
            },
            Spec::default()
        );
        let with = serde_json::json!({"label": "a"});
        assert!(
            step_spec(&with, Some("b".into()))
                .unwrap_err()
                .contains("`label`")
        );
        assert_eq!(
            step_spec(&with, Some("a".into())).unwrap().label.as_deref(),
            Some("a")
        );
        assert!(
            step_spec(&serde_json::json!({"colums": {}}), None)
                .unwrap_err()
                .starts_with("parameter `spec`")
        );
    }

    /// What `run` outputs for one split, without a host.
    fn step_outputs(
        train: &[(String, Column)],
        split: &[(String, Column)],
        spec: &Spec,
    ) -> Vec<(String, Column)> {
        let (_, state) = fit_document(transform::fit(train, spec).unwrap()).unwrap();
        transform::apply(split, &state).unwrap()
    }

    #[test]
    fn apply_of_fit_on_eval_equals_the_step_output() {
        let train = vec![
            (
                "x".to_owned(),
                f(&[Some(0.1), Some(0.2), Some(0.7), None, Some(1.3)]),
            ),
            (
                "k".to_owned(),
                s(&[Some("a"), Some("b"), None, Some("a"), Some("c")]),
            ),
            (
                "y".to_owned(),
                Column::Int64(vec![Some(0), Some(1), Some(0), Some(1), Some(1)]),
            ),
        ];
        let eval = vec![
            ("x".to_owned(), f(&[Some(0.3), None, Some(9.0)])),
            ("k".to_owned(), s(&[Some("z"), Some("b"), None])),
            (
                "y".to_owned(),
                Column::Int64(vec![Some(1), Some(0), Some(0)]),
            ),
        ];
        let spec = step_spec(
            &serde_json::from_str(DEFAULT_SPEC).unwrap(),
            Some("y".into()),
        )
        .unwrap();
        let from_step = step_outputs(&train, &eval, &spec);
        // The server's path: `fit` returns the state as a string; `apply` takes it.
        let state = serde_json::to_string(&transform::fit(&train, &spec).unwrap()).unwrap();
        let direct = transform::apply(&eval, &State::parse(&state).unwrap()).unwrap();
        assert_eq!(from_step, direct);

        // And by hand: x fitted on [0.1, 0.2, 0.7, 0.575 (mean), 1.3].
        let mean = (0.1 + 0.2 + 0.7 + 1.3) / 4.0;
        let xs = [0.1, 0.2, 0.7, mean, 1.3];
        let m2 = xs.iter().sum::<f64>() / 5.0;
        let sd = (xs.iter().map(|x| (x - m2) * (x - m2)).sum::<f64>() / 5.0).sqrt();
        let names: Vec<&str> = direct.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x", "k=a", "k=b", "k=c", "y"]);
        let Column::Float64(x) = &direct[0].1 else {
            panic!()
        };
        let want = [(0.3 - m2) / sd, (mean - m2) / sd, (9.0 - m2) / sd];
        assert!(
            x.iter()
                .zip(want)
                .all(|(a, b)| (a.unwrap() - b).abs() < 1e-12),
            "{x:?}"
        );
        // k: "z" unknown → zeros; null imputed with "a" (most frequent).
        assert_eq!(direct[1].1, f(&[Some(0.0), Some(0.0), Some(1.0)]));
        assert_eq!(direct[2].1, f(&[Some(0.0), Some(1.0), Some(0.0)]));
        assert_eq!(direct[3].1, f(&[Some(0.0), Some(0.0), Some(0.0)]));
        assert_eq!(direct[4].1, eval[2].1);
        let state = State::parse(&state).unwrap();
        assert_eq!(state.columns[2].role, Role::Label);
    }
}
