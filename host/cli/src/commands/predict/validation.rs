//! `sluice predict`'s data validation: the input is checked against the
//! schema and statistics of the model's training data, by the very
//! components a pipeline uses (`std:statistics`, then `std:validate`), so
//! that the messages are the pipeline's, byte for byte.
//!
//! The schema and training statistics are found through the store's
//! lineage ([`sluice_store::upstream::training_schema`]) from the
//! execution that made the model. Only the model's raw input columns are
//! checked: the other schema columns (the label, above all) are passed to
//! `std:validate` as `ignore-columns`, and columns the schema does not know
//! are allowed (`allow-extra-columns`), since predict copies them through.
//!
//! **Skew is checked on every row, a chunk at a time**: each chunk's
//! statistics are computed and validated as the chunk is read, before it is
//! predicted, so memory stays bounded by the chunk whatever the file's
//! size, and the file is read once. (Statistics of the whole file would
//! need either the whole file in memory or a host-side merge of statistics
//! that `std:statistics` does not define.) The fractions a schema tolerates
//! — missing values, values out of range or out of domain — are therefore
//! judged per chunk, which is stricter than over the whole file, never
//! looser. A chunk that fails stops the command before anything is written
//! (the output appears only when every row is predicted).
//!
//! **Drift is measured on the first chunk** (the first `--chunk-rows` rows)
//! against the training statistics: a sample big enough to compare
//! distributions, taken before any prediction is written, and warned about
//! once rather than chunk after chunk. A first chunk of fewer than
//! [`MIN_DRIFT_ROWS`] rows is too small a sample (a handful of rows differs
//! from any training distribution), so drift is then not measured, and
//! `--json` says so.

use anyhow::{Context as _, bail};
use arrow_array::RecordBatch;
use serde_json::Value as Json;
use sluice_runtime::outcome::{InputArtifact, OutputArtifact};
use sluice_runtime::{Component, ComponentSource, Invocation, Manifest, Runtime, StepFailure};
use sluice_runtime::{Value, ValueType};
use sluice_serve::ServedModel;
use sluice_store::Store;
use sluice_store::upstream::training_schema;
use std::collections::BTreeMap;

/// Fewest rows in the first chunk for drift to be measured on it.
pub(super) const MIN_DRIFT_ROWS: usize = 100;

/// What `sluice predict` does about validation.
pub(super) enum Validation {
    /// `--no-validate`.
    Skipped,
    /// The model has no recorded schema: why, in one line.
    Unavailable(String),
    /// The input is checked chunk by chunk.
    Checked(Box<Validator>),
}

impl Validation {
    /// Decides how `model` (loaded from `store`) is validated: finds its
    /// training schema and statistics, and loads the two components.
    pub(super) fn prepare(
        store: &Store,
        runtime: &Runtime,
        model: &ServedModel,
        skip: bool,
    ) -> anyhow::Result<Self> {
        if skip {
            return Ok(Validation::Skipped);
        }
        let execution = model
            .card()
            .get("made_by")
            .and_then(|m| m.get("execution"))
            .and_then(Json::as_i64);
        let found = match execution {
            Some(id) => training_schema(store, id).with_context(|| {
                format!(
                    "finding the training schema of {} in the store (--no-validate predicts without it)",
                    model.id()
                )
            })?,
            None => None,
        };
        let Some(found) = found else {
            return Ok(Validation::Unavailable(format!(
                "no recorded schema for {}; input not validated",
                model.id()
            )));
        };
        let document = |digest: &sluice_store::Digest, what: &str| -> anyhow::Result<String> {
            let bytes = store
                .objects
                .get(digest)
                .with_context(|| format!("reading {}'s {what} {digest}", model.id()))?;
            String::from_utf8(bytes)
                .with_context(|| format!("{}'s {what} {digest} is not UTF-8", model.id()))
        };
        let schema = document(&found.schema, "training schema")?;
        let baseline = found
            .statistics
            .as_ref()
            .map(|d| document(d, "training statistics"))
            .transpose()?;
        let statistics = load(runtime, "statistics")?;
        let validate = load(runtime, "validate")?;
        let statistics_params = params(
            &statistics.1,
            found.statistics_params.as_ref(),
            BTreeMap::new(),
        );
        // Only the model's raw inputs are checked (without a recorded
        // signature: every schema column but the label).
        let columns = schema_columns(&schema);
        let ignore: Vec<String> = match checked_columns(model) {
            Some(inputs) => columns
                .into_iter()
                .filter(|c| !inputs.contains(c))
                .collect(),
            None => columns
                .into_iter()
                .filter(|c| Some(c.as_str()) == label(model))
                .collect(),
        };
        let validate_params = params(
            &validate.1,
            None,
            BTreeMap::from([
                ("allow-extra-columns".to_string(), Value::Boolean(true)),
                (
                    "ignore-columns".to_string(),
                    Value::Json(serde_json::to_string(&ignore)?),
                ),
            ]),
        );
        Ok(Validation::Checked(Box::new(Validator {
            model: model.id(),
            schema_digest: found.schema.to_string(),
            schema_source: found.schema_source,
            statistics_digest: found.statistics.map(|d| d.to_string()),
            schema,
            baseline,
            statistics,
            validate,
            statistics_params,
            validate_params,
            rows: 0,
            drift: None,
        })))
    }

    /// The `validation` member of `--json` output.
    pub(super) fn summary(&self) -> Json {
        match self {
            Validation::Skipped => serde_json::json!({"status": "skipped"}),
            Validation::Unavailable(why) => serde_json::json!({"status": "none", "reason": why}),
            Validation::Checked(v) => v.summary(),
        }
    }

    /// The drift warnings (std:validate's messages), if any.
    pub(super) fn warnings(&self) -> &[String] {
        match self {
            Validation::Checked(v) => v.drift.as_ref().map_or(&[], |d| &d.warnings),
            _ => &[],
        }
    }
}

/// Checks chunks of input against a model's training schema.
pub(super) struct Validator {
    /// `NAME:VERSION`.
    model: String,
    schema_digest: String,
    schema_source: String,
    statistics_digest: Option<String>,
    /// The schema document.
    schema: String,
    /// The training statistics document, for drift.
    baseline: Option<String>,
    statistics: (Component, Manifest),
    validate: (Component, Manifest),
    statistics_params: BTreeMap<String, Value>,
    validate_params: BTreeMap<String, Value>,
    /// Rows checked so far.
    rows: u64,
    /// What the first chunk's check found.
    drift: Option<Drift>,
}

/// The drift found on the first chunk.
struct Drift {
    /// Rows it was measured on; `None` when it was not measured.
    rows: Option<u64>,
    /// `std:validate`'s drift messages.
    warnings: Vec<String>,
    /// `std:validate`'s `drift` member: score, threshold per column.
    scores: Json,
}

impl Validator {
    /// Checks the next chunk of the input (rows counted from 1, the file's
    /// first data row): a skewed chunk is an error naming every problem in
    /// `std:validate`'s words; drift is measured on the first chunk only.
    pub(super) fn check(
        &mut self,
        chunk: &RecordBatch,
        input: &std::path::Path,
    ) -> anyhow::Result<()> {
        let first = self.rows + 1;
        let last = self.rows + chunk.num_rows() as u64;
        let stats = self.run_statistics(chunk)?;
        let baseline = match (&self.drift, &self.baseline) {
            (None, Some(b)) if chunk.num_rows() >= MIN_DRIFT_ROWS => Some(b.clone()),
            _ => None,
        };
        let measured = baseline.is_some();
        let mut inputs = BTreeMap::from([
            ("statistics".to_string(), InputArtifact::Document(stats)),
            (
                "schema".to_string(),
                InputArtifact::Document(self.schema.clone()),
            ),
        ]);
        if let Some(b) = baseline {
            inputs.insert("baseline".to_string(), InputArtifact::Document(b));
        }
        let outcome =
            self.validate
                .0
                .run(invocation(&self.validate, &self.validate_params, inputs));
        match outcome.result {
            Ok(()) => {}
            Err(StepFailure::InvalidInput(why)) => bail!(
                "the input does not match {}'s training schema (rows {first}–{last} of {}; \
                 use --no-validate to predict anyway): {why}",
                self.model,
                input.display()
            ),
            Err(other) => bail!("validating the input with std:validate: {other}"),
        }
        self.rows = last;
        if measured || self.drift.is_none() {
            let anomalies = match outcome.outputs.get("anomalies") {
                Some(OutputArtifact::Document(d)) => serde_json::from_str::<Json>(d)
                    .context("std:validate's anomalies document is not JSON")?,
                _ => bail!("std:validate wrote no anomalies document"),
            };
            let warnings = anomalies["anomalies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["kind"] == "drift")
                .filter_map(|a| a["message"].as_str().map(str::to_string))
                .collect();
            self.drift = Some(Drift {
                rows: measured.then_some(last),
                warnings,
                scores: if measured {
                    anomalies["drift"].clone()
                } else {
                    Json::Null
                },
            });
        }
        Ok(())
    }

    /// `std:statistics` of one chunk, as its JSON document.
    fn run_statistics(&self, chunk: &RecordBatch) -> anyhow::Result<String> {
        let inputs = BTreeMap::from([(
            "data".to_string(),
            InputArtifact::Table(sluice_tables::Table::from_batch(chunk.clone())),
        )]);
        let outcome = self.statistics.0.run(invocation(
            &self.statistics,
            &self.statistics_params,
            inputs,
        ));
        if let Err(e) = outcome.result {
            bail!("computing the input's statistics with std:statistics: {e}");
        }
        match outcome.outputs.get("statistics") {
            Some(OutputArtifact::Document(d)) => Ok(d.clone()),
            _ => bail!("std:statistics wrote no statistics document"),
        }
    }

    /// The `validation` member of `--json` output.
    fn summary(&self) -> Json {
        let drift = self.drift.as_ref();
        let warnings = drift.map_or(&[][..], |d| &d.warnings[..]);
        serde_json::json!({
            "status": if warnings.is_empty() { "passed" } else { "drift" },
            "schema": self.schema_digest,
            "schema_source": self.schema_source,
            "training_statistics": self.statistics_digest,
            "rows_checked": self.rows,
            "warnings": warnings,
            "drift": {
                "rows": drift.and_then(|d| d.rows),
                "not_measured": match (drift.and_then(|d| d.rows), &self.baseline) {
                    (Some(_), _) => None,
                    (None, None) => Some("no training statistics are recorded".to_string()),
                    (None, Some(_)) => Some(format!(
                        "the first chunk has fewer than {MIN_DRIFT_ROWS} rows"
                    )),
                },
                "columns": drift.map_or(Json::Null, |d| d.scores.clone()),
            },
        })
    }
}

/// A standard step and its manifest.
fn load(runtime: &Runtime, name: &str) -> anyhow::Result<(Component, Manifest)> {
    let component = runtime
        .load(&ComponentSource::Std(name.to_string()))
        .with_context(|| format!("loading std:{name}"))?;
    let manifest = component
        .describe()
        .with_context(|| format!("describing std:{name}"))?;
    Ok((component, manifest))
}

/// An invocation of a standard step outside a pipeline: default limits,
/// virtual clocks, no event sink, no transform replay.
fn invocation(
    step: &(Component, Manifest),
    params: &BTreeMap<String, Value>,
    inputs: BTreeMap<String, InputArtifact>,
) -> Invocation {
    Invocation {
        params: params.clone(),
        inputs,
        outputs: step.1.outputs.clone(),
        seed: *sluice_runtime::Digest::of(step.1.name.as_bytes()).as_bytes(),
        ..Invocation::default()
    }
}

/// A step's params: its defaults, then `recorded` (the params a pipeline
/// ran it with, as JSON, for those that fit the declared type), then `set`.
fn params(
    manifest: &Manifest,
    recorded: Option<&Json>,
    set: BTreeMap<String, Value>,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for p in &manifest.params {
        let from_record = recorded.and_then(|r| r.get(&p.name)).and_then(|v| {
            Some(match p.value_type {
                ValueType::Boolean => Value::Boolean(v.as_bool()?),
                ValueType::Integer => Value::Integer(v.as_i64()?),
                ValueType::Float => Value::Float(v.as_f64()?),
                ValueType::Text => Value::Text(v.as_str()?.to_string()),
                ValueType::Json => Value::Json(v.to_string()),
            })
        });
        if let Some(v) = from_record.or_else(|| p.default.clone()) {
            out.insert(p.name.clone(), v);
        }
    }
    out.extend(set);
    out
}

/// The model's raw input columns, if it records them.
fn checked_columns(model: &ServedModel) -> Option<Vec<String>> {
    model
        .inputs()
        .map(|s| s.columns().iter().map(|c| c.name.clone()).collect())
}

/// The label column the card names.
fn label(model: &ServedModel) -> Option<&str> {
    model.card().get("label").and_then(Json::as_str)
}

/// The column names a schema document lists.
fn schema_columns(schema: &str) -> Vec<String> {
    serde_json::from_str::<Json>(schema)
        .ok()
        .and_then(|s| {
            s["columns"].as_array().map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}
