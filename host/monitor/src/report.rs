//! The monitoring report of a served model version: what it was trained
//! on against what it has been served, feature by feature and for its
//! predictions, over time, and — given true labels — how well it does live.

use crate::drift::{self, ColumnDrift, Thresholds, Values};
use crate::rollouts::RolloutHistory;
use arrow_array::{Array, Float64Array, RecordBatch, StringArray};
use serde::Serialize;
use serde_json::Value;
use sluice_runtime::Runtime;
use sluice_serve::ServedModel;
use sluice_store::{Digest, ModelRef, Store};
use std::collections::HashMap;

/// Most windows in the drift-over-time series.
const MAX_WINDOWS: usize = 10;
/// Fewest served rows in one window of the series.
const MIN_WINDOW_ROWS: usize = 20;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The model cannot be loaded.
    #[error(transparent)]
    Load(#[from] sluice_serve::LoadError),
    /// The store could not be read.
    #[error("reading the store: {0}")]
    Store(String),
    /// Nothing to compare.
    #[error("{0}")]
    NoData(String),
    /// The feedback file is unusable.
    #[error("feedback: {0}")]
    Feedback(String),
    /// A request-log file cannot be ingested.
    #[error("--ingest {0}")]
    Ingest(String),
}

fn store_err(e: impl std::fmt::Display) -> MonitorError {
    MonitorError::Store(e.to_string())
}

/// What to compare, and how strictly.
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// Only requests served at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Drift thresholds.
    pub thresholds: Thresholds,
    /// Largest drop of a live metric below its evaluation value before the
    /// model counts as degraded.
    pub degradation: f64,
    /// True labels of served requests: a table with `request_id`, the
    /// label column and optionally `row`.
    pub feedback: Option<RecordBatch>,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            since: None,
            thresholds: Thresholds::default(),
            degradation: 0.05,
            feedback: None,
        }
    }
}

/// Drift scores of one window of served requests.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// When its first request was served.
    pub from: String,
    /// When its last request was served.
    pub to: String,
    /// Rows in it.
    pub rows: usize,
    /// Drift score per feature (and `prediction`).
    pub scores: HashMap<String, f64>,
}

/// Live quality from feedback labels.
#[derive(Debug, Clone, Serialize)]
pub struct LiveQuality {
    /// Served rows that had a label.
    pub joined_rows: usize,
    /// Metrics on them.
    pub metrics: Value,
    /// The evaluation metrics recorded when the version was registered.
    pub evaluation: Value,
    /// Metrics that fell more than the tolerance below their evaluation
    /// value, as `name: (evaluation, live)`.
    pub degraded: HashMap<String, (f64, f64)>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The model's name.
    pub model: String,
    /// The version monitored.
    pub version: i64,
    /// What was asked for (`NAME@ALIAS`).
    pub reference: String,
    /// When the report was made.
    pub generated_at: String,
    /// The thresholds applied.
    pub thresholds: Thresholds,
    /// Where the training rows came from (`run/step/port`) and how many.
    pub training: Source,
    /// The served rows compared.
    pub serving: Source,
    /// One entry per input column.
    pub features: Vec<ColumnDrift>,
    /// The prediction columns.
    pub predictions: Vec<ColumnDrift>,
    /// Drift scores over time (up to 10 windows).
    pub over_time: Vec<Window>,
    /// Live quality, when feedback was given.
    pub live: Option<LiveQuality>,
    /// Columns over their drift threshold (features and predictions).
    pub drifted: Vec<String>,
    /// Whether a live metric degraded.
    pub degraded: bool,
    /// Plain-language findings.
    pub alerts: Vec<String>,
    /// The model's rollouts that ran in the report's window (all of them
    /// without `--since`), oldest first, each with its decisions and their
    /// evidence as stored (as `sluice rollout show ID --json`).
    pub rollouts: Vec<RolloutHistory>,
}

/// A set of rows and where they came from.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// What they are.
    pub description: String,
    /// How many.
    pub rows: usize,
    /// The earliest time, if known.
    pub from: Option<String>,
    /// The latest time, if known.
    pub to: Option<String>,
}

/// Makes the report of the version `reference` resolves to.
pub fn monitor(
    store: &Store,
    runtime: &Runtime,
    reference: &ModelRef,
    options: &MonitorOptions,
) -> Result<Report, MonitorError> {
    let model = ServedModel::load(store, runtime, reference)?;
    let version = store
        .metadata
        .resolve_model(&ModelRef::Version(model.name.clone(), model.version))
        .map_err(store_err)?
        .ok_or_else(|| MonitorError::NoData("the version vanished while loading".into()))?;
    let inputs = model.inputs().cloned().ok_or_else(|| {
        MonitorError::NoData(format!(
            "{} does not record its input columns (its transform has no `inputs`), so served inputs cannot be compared",
            model.id()
        ))
    })?;
    let names: Vec<String> = inputs.columns().iter().map(|c| c.name.clone()).collect();

    // The training rows, raw.
    let (training, training_source) =
        training_table(store, model.card(), &names, model.transform_component())?;
    let training = inputs
        .conform(&training)
        .map_err(|e| MonitorError::NoData(format!("the training table: {e}")))?;
    let training_predictions = model
        .predict(&training)
        .map_err(|e| MonitorError::NoData(format!("predicting the training rows: {e}")))?;

    // The served rows.
    let chunks: Vec<_> = store
        .metadata
        .request_logs(&model.name, options.since.as_deref())
        .map_err(store_err)?
        .into_iter()
        .filter(|c| c.version == model.version)
        .collect();
    let mut batches = Vec::new();
    for c in &chunks {
        let bytes = store.objects.get(&c.object).map_err(store_err)?;
        batches.push(sluice_runtime::table::batch_from_parquet(bytes).map_err(store_err)?);
    }
    let served = concat(&batches)?;
    let served = match &options.since {
        Some(since) => filter_since(&served, since),
        None => served,
    };
    if served.num_rows() == 0 {
        return Err(MonitorError::NoData(format!(
            "no logged requests of {}{}; serve it with `sluice serve --model {reference}` (requests are logged by default) and send it traffic",
            model.id(),
            options
                .since
                .as_ref()
                .map(|s| format!(" since {s}"))
                .unwrap_or_default()
        )));
    }
    let times = strings(&served, "served_at");

    // A classifier's predicted labels are categories, whatever their type.
    let classifier = model.is_classifier();
    let values = |name: &str, table: &RecordBatch| {
        let column = table.column_by_name(name)?;
        if classifier && name == "prediction" {
            Values::categorical(column.as_ref())
        } else {
            Values::of(column.as_ref())
        }
    };
    let compare_all = |names: &[String], reference: &RecordBatch, rows: &RecordBatch| {
        names
            .iter()
            .filter_map(|n| {
                let r = values(n, reference)?;
                let s = values(n, rows)?;
                Some(drift::compare(n, &r, &s, &options.thresholds))
            })
            .collect::<Vec<_>>()
    };
    let features = compare_all(&names, &training, &served);
    let output_names: Vec<String> = model
        .outputs()
        .columns()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let predictions = compare_all(&output_names, &training_predictions, &served);

    // Drift over time: equal-size windows in serving order.
    let mut order: Vec<usize> = (0..served.num_rows()).collect();
    order.sort_by(|&a, &b| times[a].cmp(&times[b]));
    let windows = (served.num_rows() / MIN_WINDOW_ROWS).clamp(1, MAX_WINDOWS);
    let per = served.num_rows().div_ceil(windows);
    let mut over_time = Vec::new();
    let series: Vec<String> = names
        .iter()
        .cloned()
        .chain(["prediction".to_string()])
        .collect();
    for w in order.chunks(per) {
        let idx = arrow_array::UInt32Array::from(w.iter().map(|&i| i as u32).collect::<Vec<_>>());
        let part = arrow_select::take::take_record_batch(&served, &idx).map_err(store_err)?;
        let reference_rows = |n: &String| {
            if training.column_by_name(n).is_some() {
                &training
            } else {
                &training_predictions
            }
        };
        let scores = series
            .iter()
            .filter_map(|n| {
                let r = values(n, reference_rows(n))?;
                let s = values(n, &part)?;
                Some((
                    n.clone(),
                    drift::compare(n, &r, &s, &options.thresholds).score,
                ))
            })
            .collect();
        over_time.push(Window {
            from: times[w[0]].clone(),
            to: times[*w.last().unwrap()].clone(),
            rows: w.len(),
            scores,
        });
    }

    let live = match &options.feedback {
        Some(f) => Some(live_quality(
            &model,
            &served,
            f,
            &version.metrics,
            options.degradation,
        )?),
        None => None,
    };

    let mut alerts = Vec::new();
    let mut drifted = Vec::new();
    for d in features.iter().chain(&predictions) {
        if d.drifted {
            drifted.push(d.name.clone());
            alerts.push(format!(
                "`{}` drifted: {} {:.3} > {} (PSI {:.3})",
                d.name,
                if d.kind == "numeric" {
                    "Jensen–Shannon"
                } else {
                    "L-infinity"
                },
                d.score,
                if d.kind == "numeric" {
                    options.thresholds.numeric
                } else {
                    options.thresholds.categorical
                },
                d.psi
            ));
        }
        if d.out_of_domain > 0.02 {
            alerts.push(format!(
                "`{}`: {:.1}% of served values are outside the training domain",
                d.name,
                100.0 * d.out_of_domain
            ));
        }
        if d.missing_served > d.missing_reference + 0.01 {
            alerts.push(format!(
                "`{}`: {:.1}% of served values are missing (training: {:.1}%)",
                d.name,
                100.0 * d.missing_served,
                100.0 * d.missing_reference
            ));
        }
    }
    let degraded = live.as_ref().is_some_and(|l| !l.degraded.is_empty());
    if let Some(l) = &live {
        for (m, (e, v)) in &l.degraded {
            alerts.push(format!(
                "live {m} {v:.4} is more than {} below its evaluation value {e:.4}",
                options.degradation
            ));
        }
    }
    let rollouts = crate::rollouts::in_window(
        crate::rollouts::history(store, &model.name).map_err(store_err)?,
        options.since.as_deref(),
    );
    let time_of = |i: Option<&usize>| i.map(|&i| times[i].clone());
    Ok(Report {
        model: model.name.clone(),
        version: model.version,
        reference: reference.to_string(),
        generated_at: sluice_store::time::now(),
        thresholds: options.thresholds,
        training: Source {
            description: training_source,
            rows: training.num_rows(),
            from: None,
            to: None,
        },
        serving: Source {
            description: format!(
                "{} logged chunk(s) of version {}",
                chunks.len(),
                model.version
            ),
            rows: served.num_rows(),
            from: time_of(order.first()),
            to: time_of(order.last()),
        },
        features,
        predictions,
        over_time,
        live,
        drifted,
        degraded,
        alerts,
        rollouts,
    })
}

fn concat(batches: &[RecordBatch]) -> Result<RecordBatch, MonitorError> {
    match batches.first() {
        None => Ok(RecordBatch::new_empty(std::sync::Arc::new(
            arrow_schema::Schema::empty(),
        ))),
        Some(first) => arrow_select::concat::concat_batches(&first.schema(), batches).map_err(|e| {
            MonitorError::Store(format!(
                "the logged chunks have different columns (was the model served with other inputs?): {e}"
            ))
        }),
    }
}

fn filter_since(batch: &RecordBatch, since: &str) -> RecordBatch {
    let times = strings(batch, "served_at");
    let keep = arrow_array::BooleanArray::from(
        times
            .iter()
            .map(|t| t.as_str() >= since)
            .collect::<Vec<_>>(),
    );
    arrow_select::filter::filter_record_batch(batch, &keep).unwrap_or_else(|_| batch.clone())
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<String> {
    let n = batch.num_rows();
    match batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
    {
        Some(a) => (0..n).map(|i| a.value(i).to_string()).collect(),
        None => vec![String::new(); n],
    }
}

/// The raw rows the model was trained on: the table inputs (`train`
/// preferred) of the execution that fitted its transform — found breadth
/// first upstream of the execution that trained it — or, for a model
/// without a transform, of the training execution itself. Only tables that
/// hold every one of `columns` count.
fn training_table(
    store: &Store,
    card: &serde_json::Map<String, Value>,
    columns: &[String],
    transform: Option<Digest>,
) -> Result<(RecordBatch, String), MonitorError> {
    let execution = card
        .get("made_by")
        .and_then(|m| m.get("execution"))
        .and_then(Value::as_i64)
        .ok_or_else(|| {
            MonitorError::NoData(
                "the model's card does not say which execution made it (`made_by`), so its training data is unknown".into(),
            )
        })?;
    let found = sluice_store::upstream::find_upstream(store, execution, |e| {
        if transform.is_some_and(|t| t != e.component_digest) {
            return None;
        }
        let mut inputs: Vec<_> = e
            .events
            .iter()
            .filter(|ev| ev.direction == "input")
            .collect();
        inputs.sort_by_key(|ev| ev.port != "train");
        inputs.iter().find_map(|event| {
            read_table(store, &event.artifact)
                .filter(|batch| columns.iter().all(|c| batch.column_by_name(c).is_some()))
                .map(|batch| (batch, format!("{}/{}/{}", e.run_id, e.step, event.port)))
        })
    })
    .map_err(store_err)?;
    if let Some(found) = found {
        return Ok(found);
    }
    Err(MonitorError::NoData(format!(
        "no table upstream of the model's training step has its raw input columns ({}); was the model trained by a pipeline in this store?",
        columns.join(", ")
    )))
}

fn read_table(store: &Store, digest: &Digest) -> Option<RecordBatch> {
    let bytes = store.objects.get(digest).ok()?;
    sluice_runtime::table::batch_from_parquet(bytes).ok()
}

/// How many of the requests `version` of model `name` answered since
/// `since` (RFC 3339; the store's request logs) have a label in `feedback`
/// (joined by `request_id`, and `row` when the feedback has it), and how
/// many of those it predicted right: `(right, labelled, logged)`, where
/// `logged` counts every logged row of the version since then. With a
/// `route` (`NAME@ALIAS`), only requests of that route's traffic count
/// (see [`sluice_store::RequestLogChunk::in_route`]). What a rollout and
/// an A/B report judge live quality by; `label` is the feedback's label
/// column.
pub fn labelled_answers(
    store: &Store,
    name: &str,
    version: i64,
    route: Option<&str>,
    since: &str,
    feedback: &RecordBatch,
    label: &str,
) -> Result<(u64, u64, u64), MonitorError> {
    let ids = text_column(feedback, "request_id")?;
    let truth = text_column(feedback, label)?;
    let rows: Vec<Option<String>> = match feedback.column_by_name("row") {
        Some(_) => text_column(feedback, "row")?,
        None => vec![None; feedback.num_rows()],
    };
    let mut labels: HashMap<(String, String), String> = HashMap::new();
    for i in 0..feedback.num_rows() {
        if let (Some(id), Some(t)) = (&ids[i], &truth[i]) {
            let row = rows[i].clone().unwrap_or_else(|| "0".into());
            labels.insert((id.clone(), row), t.clone());
        }
    }
    let (mut right, mut labelled, mut logged) = (0, 0, 0);
    for batch in logged_tables(store, name, version, route, since)? {
        let served_ids = strings(&batch, "request_id");
        let served_rows = match batch.column_by_name("row") {
            Some(_) => text_column(&batch, "row")?,
            None => vec![None; batch.num_rows()],
        };
        let predicted = text_column(&batch, "prediction")?;
        logged += batch.num_rows() as u64;
        for i in 0..batch.num_rows() {
            let row = served_rows[i].clone().unwrap_or_else(|| "0".into());
            if let Some(truth) = labels.get(&(served_ids[i].clone(), row)) {
                labelled += 1;
                right += u64::from(predicted[i].as_deref() == Some(truth.as_str()));
            }
        }
    }
    Ok((right, labelled, logged))
}

/// The request-log tables of version `version` of model `name` logged
/// since `since` (RFC 3339), in log order, each read when the caller gets
/// to it; a table that cannot be read is passed over.
fn logged_tables<'a>(
    store: &'a Store,
    name: &str,
    version: i64,
    route: Option<&str>,
    since: &str,
) -> Result<impl Iterator<Item = RecordBatch> + 'a, MonitorError> {
    let mut chunks = store
        .metadata
        .request_logs(name, Some(since))
        .map_err(store_err)?;
    chunks.retain(|c| c.version == version && route.is_none_or(|r| c.in_route(r)));
    Ok(chunks
        .into_iter()
        .filter_map(move |c| read_table(store, &c.object)))
}

/// The `prediction` of every row of version `version` of model `name`
/// logged since `since` (RFC 3339; the store's request logs), as text
/// (numbers as [`text_column`] writes them), in log order; with a `route`,
/// of that route's traffic only (as [`labelled_answers`]): what a rollout
/// compares the two versions' prediction distributions on.
pub fn logged_predictions(
    store: &Store,
    name: &str,
    version: i64,
    route: Option<&str>,
    since: &str,
) -> Result<Vec<String>, MonitorError> {
    let mut out = Vec::new();
    for batch in logged_tables(store, name, version, route, since)? {
        if batch.column_by_name("prediction").is_none() {
            continue;
        }
        out.extend(text_column(&batch, "prediction")?.into_iter().flatten());
    }
    Ok(out)
}

/// Joins feedback labels to served rows by `request_id` (and `row`), and
/// measures the model on them.
fn live_quality(
    model: &ServedModel,
    served: &RecordBatch,
    feedback: &RecordBatch,
    evaluation: &Value,
    tolerance: f64,
) -> Result<LiveQuality, MonitorError> {
    let label = model
        .card()
        .get("label")
        .and_then(Value::as_str)
        .ok_or_else(|| MonitorError::Feedback("the model's card names no label column".into()))?
        .to_string();
    let ids = text_column(feedback, "request_id")?;
    let truth = text_column(feedback, &label)?;
    let rows: Vec<i64> = match feedback.column_by_name("row") {
        Some(c) => match Values::of(c.as_ref()) {
            Some(Values::Numeric(v)) => v.iter().map(|x| x.unwrap_or(0.0) as i64).collect(),
            _ => {
                return Err(MonitorError::Feedback(
                    "column `row` must hold numbers".into(),
                ));
            }
        },
        None => vec![0; feedback.num_rows()],
    };
    let mut labels: HashMap<(String, i64), String> = HashMap::new();
    for i in 0..feedback.num_rows() {
        if let (Some(id), Some(t)) = (&ids[i], &truth[i]) {
            labels.insert((id.clone(), rows[i]), t.clone());
        }
    }
    let served_ids = strings(served, "request_id");
    let served_rows: Vec<i64> = match served
        .column_by_name("row")
        .and_then(|c| Values::of(c.as_ref()))
    {
        Some(Values::Numeric(v)) => v.iter().map(|x| x.unwrap_or(0.0) as i64).collect(),
        _ => vec![0; served.num_rows()],
    };
    let joined: Vec<(usize, String)> = (0..served.num_rows())
        .filter_map(|i| {
            labels
                .get(&(served_ids[i].clone(), served_rows[i]))
                .map(|l| (i, l.clone()))
        })
        .collect();
    if joined.is_empty() {
        return Err(MonitorError::Feedback(format!(
            "no label joins a logged request (by `request_id`{}); {} labels, {} logged rows",
            if feedback.column_by_name("row").is_some() {
                " and `row`"
            } else {
                ""
            },
            labels.len(),
            served.num_rows()
        )));
    }
    let metrics = match model.card().get("classes").and_then(Value::as_array) {
        Some(classes) => {
            let classes: Vec<String> = classes
                .iter()
                .map(|c| {
                    c.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| c.to_string())
                })
                .collect();
            let k = classes.len();
            let mut probs = Vec::with_capacity(joined.len() * k);
            for c in &classes {
                served
                    .column_by_name(&format!("probability_{c}"))
                    .and_then(|a| a.as_any().downcast_ref::<Float64Array>().cloned())
                    .ok_or_else(|| {
                        MonitorError::Feedback(format!("the logs lack `probability_{c}`"))
                    })?;
            }
            for &(i, _) in &joined {
                for c in &classes {
                    let a = served.column_by_name(&format!("probability_{c}")).unwrap();
                    probs.push(a.as_any().downcast_ref::<Float64Array>().unwrap().value(i));
                }
            }
            let truth: Vec<usize> = joined
                .iter()
                .map(|(_, l)| {
                    classes.iter().position(|c| c == l).ok_or_else(|| {
                        MonitorError::Feedback(format!(
                            "label `{l}` is not a class of the model ({})",
                            classes.join(", ")
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
            let p = sluice_ml::Matrix::new(joined.len(), k, probs)
                .map_err(|e| MonitorError::Feedback(e.to_string()))?;
            let m = sluice_ml::metrics::classification_metrics(&truth, &p)
                .map_err(|e| MonitorError::Feedback(e.to_string()))?;
            serde_json::to_value(m).unwrap_or(Value::Null)
        }
        None => {
            let predicted = served
                .column_by_name("prediction")
                .and_then(|a| a.as_any().downcast_ref::<Float64Array>().cloned())
                .ok_or_else(|| MonitorError::Feedback("the logs lack `prediction`".into()))?;
            let truth: Vec<f64> = joined
                .iter()
                .map(|(_, l)| {
                    l.parse::<f64>()
                        .map_err(|_| MonitorError::Feedback(format!("label `{l}` is not a number")))
                })
                .collect::<Result<_, _>>()?;
            let y: Vec<f64> = joined.iter().map(|&(i, _)| predicted.value(i)).collect();
            let m = sluice_ml::metrics::regression_metrics(&truth, &y)
                .map_err(|e| MonitorError::Feedback(e.to_string()))?;
            serde_json::to_value(m).unwrap_or(Value::Null)
        }
    };
    let mut degraded = HashMap::new();
    for name in ["accuracy", "f1", "precision", "recall", "roc_auc", "r2"] {
        if let (Some(e), Some(v)) = (
            evaluation.get(name).and_then(Value::as_f64),
            metrics.get(name).and_then(Value::as_f64),
        ) && e - v > tolerance
        {
            degraded.insert(name.to_string(), (e, v));
        }
    }
    Ok(LiveQuality {
        joined_rows: joined.len(),
        metrics,
        evaluation: evaluation.clone(),
        degraded,
    })
}

/// A column as text (labels are compared as text, as the card's classes).
fn text_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>, MonitorError> {
    let c = batch.column_by_name(name).ok_or_else(|| {
        MonitorError::Feedback(format!(
            "the feedback has no column `{name}`; it needs `request_id`, the label and optionally `row`"
        ))
    })?;
    let n = c.len();
    Ok(match Values::of(c.as_ref()) {
        Some(Values::Categorical(v)) => v,
        Some(Values::Numeric(v)) => v
            .into_iter()
            .map(|x| {
                x.map(|x| {
                    if x.fract() == 0.0 && x.abs() < 1e15 {
                        (x as i64).to_string()
                    } else {
                        x.to_string()
                    }
                })
            })
            .collect(),
        None => vec![None; n],
    })
}
