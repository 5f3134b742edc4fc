//! Pipeline CI: what "MLOps: continuous delivery and automation pipelines
//! in ML" asks a CI system to check on every change to a pipeline, run on
//! a sample of its data in a scratch store (`sluice test`).
//!
//! - [`sample_inputs`] replaces each CSV and Parquet input of a prepared
//!   pipeline with a reproducible sample of its rows, written to a scratch
//!   folder: the same rows a step's `tables.sample(rows, seed)` keeps,
//!   chosen in two passes over the file so that a file of any size is never
//!   held whole.
//! - [`cases`] turns the spec's problems, or a run's report, into test
//!   cases: the components integrate (the spec is valid: every input bound
//!   to an output of its kind), every data file could be sampled, every
//!   step ran and produced each output it declares, and training produced
//!   no NaN or infinity (in any metric a step recorded, or in any weight
//!   of a model it output).
//!
//! The caller runs the pipeline between the two (the CLI, with its
//! progress display) and writes the cases as JUnit or JSON.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sluice_runtime::{ArtifactKind, StepFailure};
use sluice_store::Store;

use crate::diagnostic::Diagnostics;
use crate::execute::{Prepared, RunReport, StepReport, StepState};
use crate::spec::DataKind;

/// What can stop a pipeline's data from being sampled.
#[derive(Debug, thiserror::Error)]
pub enum CiError {
    /// A data file could not be read, or its sample written.
    #[error("sampling data.{input} ({path}): {source}")]
    Io {
        /// The data input.
        input: String,
        /// Its file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A Parquet input is not a table sluice reads.
    #[error("sampling data.{input} ({path}): {message}")]
    Table {
        /// The data input.
        input: String,
        /// Its file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// How a data input was sampled.
#[derive(Debug, Clone, Serialize)]
pub struct Sampled {
    /// The data input's name (`data.NAME`).
    pub input: String,
    /// The file the spec names.
    pub original: PathBuf,
    /// The sample, in the scratch folder.
    pub sample: PathBuf,
    /// Rows kept.
    pub rows: u64,
    /// Rows the file has.
    pub of: u64,
}

/// Replaces every CSV file and every Parquet table among `prepared`'s data
/// inputs with a sample of at most `rows` of its rows (all of them if it
/// has no more), written in `dir`; the rows are in file order, chosen
/// reproducibly for `seed` (see [`sluice_tables::ops::sample_indices`]).
/// Other inputs (registry models, other files) are left as they are.
pub fn sample_inputs(
    prepared: &mut Prepared,
    dir: &Path,
    rows: u64,
    seed: u64,
) -> Result<Vec<Sampled>, CiError> {
    let mut sampled = Vec::new();
    for (i, input) in prepared.plan.data.iter_mut().enumerate() {
        let ext = input
            .path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let sample = dir.join(format!(
            "{i}-{}",
            input.path.file_name().unwrap_or_default().to_string_lossy()
        ));
        let io = |source| CiError::Io {
            input: input.name.clone(),
            path: input.path.clone(),
            source,
        };
        let (kept, of) = match (input.kind, ext.as_deref()) {
            (DataKind::File, Some("csv")) => {
                sample_csv(&input.path, &sample, rows, seed).map_err(io)?
            }
            (DataKind::Table, _) | (DataKind::File, Some("parquet")) => {
                sample_parquet(&input.path, &sample, rows, seed).map_err(|e| match e {
                    ParquetError::Io(source) => io(source),
                    ParquetError::Table(message) => CiError::Table {
                        input: input.name.clone(),
                        path: input.path.clone(),
                        message,
                    },
                })?
            }
            _ => continue,
        };
        sampled.push(Sampled {
            input: input.name.clone(),
            original: std::mem::replace(&mut input.path, sample.clone()),
            sample,
            rows: kept,
            of,
        });
    }
    Ok(sampled)
}

/// Writes to `out` the header and the sampled records of the CSV file
/// `path`; returns (records kept, records in the file). Two passes: one
/// counts the records, one copies the chosen ones byte for byte.
fn sample_csv(path: &Path, out: &Path, rows: u64, seed: u64) -> std::io::Result<(u64, u64)> {
    let mut n = 0u64;
    let mut header = true;
    for_each_record(path, |_| {
        if !std::mem::take(&mut header) {
            n += 1;
        }
        Ok(())
    })?;
    let chosen = sluice_tables::ops::sample_indices(n, rows, seed);
    let mut writer = BufWriter::new(File::create(out)?);
    let (mut index, mut next) = (0u64, 0usize);
    let mut header = true;
    for_each_record(path, |record| {
        if std::mem::take(&mut header) {
            return writer.write_all(record);
        }
        if chosen.get(next) == Some(&index) {
            writer.write_all(record)?;
            if !record.ends_with(b"\n") {
                writer.write_all(b"\n")?;
            }
            next += 1;
        }
        index += 1;
        Ok(())
    })?;
    writer
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok((chosen.len() as u64, n))
}

/// Calls `f` with each record of the CSV file `path` (the header first),
/// line ending included; a newline inside double quotes belongs to its
/// record. Blank lines are not records.
fn for_each_record(
    path: &Path,
    mut f: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut record = Vec::new();
    let mut quoted = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        quoted ^= line.iter().filter(|&&b| b == b'"').count() % 2 == 1;
        record.extend_from_slice(&line);
        if quoted {
            continue;
        }
        if !record.iter().all(|b| matches!(b, b'\n' | b'\r')) {
            f(&record)?;
        }
        record.clear();
    }
    if !record.is_empty() && !record.iter().all(u8::is_ascii_whitespace) {
        f(&record)?;
    }
    Ok(())
}

#[derive(Debug)]
enum ParquetError {
    Io(std::io::Error),
    Table(String),
}

/// Writes to `out` the sampled rows of the Parquet file `path`; returns
/// (rows kept, rows in the file).
fn sample_parquet(
    path: &Path,
    out: &Path,
    rows: u64,
    seed: u64,
) -> Result<(u64, u64), ParquetError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(ParquetError::Io)?;
    let table = sluice_runtime::table::from_parquet(bytes)
        .map_err(|e| ParquetError::Table(e.to_string()))?;
    let of = table.num_rows() as u64;
    let kept = sluice_tables::ops::sample(&table, rows, seed)
        .map_err(|e| ParquetError::Table(e.to_string()))?;
    let bytes =
        sluice_runtime::table::to_parquet(&kept).map_err(|e| ParquetError::Table(e.to_string()))?;
    std::fs::write(out, bytes).map_err(ParquetError::Io)?;
    Ok((kept.num_rows() as u64, of))
}

/// One test case of a pipeline's CI run.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// Its group: `spec`, `data`, `step` or `finite`.
    pub group: &'static str,
    /// Its name within the group (a data input's or a step's name).
    pub name: String,
    /// How it ended (`outcome` and `detail` in JSON).
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How long it took, if it is a step that ran.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_secs")]
    pub time: Option<Duration>,
    /// What the step wrote to stderr, for a step that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

fn as_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// How a [`Case`] ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "lowercase")]
pub enum Outcome {
    /// It passed; the text says what was checked.
    Passed(String),
    /// It failed, for this reason.
    Failed(String),
    /// It could not be checked, for this reason.
    Skipped(String),
}

impl Outcome {
    /// Whether it failed.
    pub fn failed(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }
}

/// What a validation gate saying no on the sample is (`--gates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gates {
    /// A skipped case: a model trained on a sample may well miss a
    /// threshold meant for the whole data, and that is no defect of the
    /// pipeline.
    Report,
    /// A failed case: the sample is meant to pass the gates.
    Enforce,
}

/// The cases of a pipeline whose spec is invalid: one failed `spec` case
/// listing every problem.
pub fn spec_cases(diagnostics: &Diagnostics) -> Vec<Case> {
    vec![Case {
        group: "spec",
        name: "components integrate".into(),
        outcome: Outcome::Failed(format!(
            "{} problem(s) in the spec:\n{diagnostics}",
            diagnostics.len()
        )),
        time: None,
        stderr: None,
    }]
}

/// The cases of a run of `prepared` (sampled as `sampled` says) that ended
/// with `report`, reading models from `store`.
pub fn cases(
    prepared: &Prepared,
    sampled: &[Sampled],
    report: &RunReport,
    store: &Store,
    gates: Gates,
) -> Vec<Case> {
    let mut cases = vec![Case {
        group: "spec",
        name: "components integrate".into(),
        outcome: Outcome::Passed(format!(
            "{} step(s); every input is bound to an output or data input of its kind",
            prepared.plan.steps.len()
        )),
        time: None,
        stderr: None,
    }];
    for s in sampled {
        cases.push(Case {
            group: "data",
            name: s.input.clone(),
            outcome: Outcome::Passed(format!(
                "{} of {} rows of {}",
                s.rows,
                s.of,
                s.original.display()
            )),
            time: None,
            stderr: None,
        });
    }
    for planned in &prepared.plan.steps {
        let Some(step) = report.steps.iter().find(|s| s.name == planned.name()) else {
            continue;
        };
        let declared: Vec<&str> = planned
            .manifest
            .outputs
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        cases.push(step_case(step, &declared, gates));
        if step.state.is_ok() {
            cases.push(finite_case(step, store));
        }
    }
    cases
}

/// Whether `step` ran and produced every output it declares.
fn step_case(step: &StepReport, declared: &[&str], gates: Gates) -> Case {
    let why = || step.message.clone().unwrap_or_default();
    let outcome = match step.state {
        StepState::Succeeded | StepState::Cached => {
            let missing: Vec<&str> = declared
                .iter()
                .copied()
                .filter(|d| !step.outputs.iter().any(|o| o.port == *d))
                .collect();
            if missing.is_empty() {
                Outcome::Passed(format!(
                    "{} ({}) produced {}",
                    step.name,
                    step.component,
                    if declared.is_empty() {
                        "no outputs (it declares none)".to_string()
                    } else {
                        declared.join(", ")
                    }
                ))
            } else {
                Outcome::Failed(format!(
                    "{} succeeded without its declared output(s) {}",
                    step.name,
                    missing.join(", ")
                ))
            }
        }
        StepState::Failed => match (&step.failure, gates) {
            (Some(StepFailure::Rejected(reason)), Gates::Report) => Outcome::Skipped(format!(
                "a validation gate said no on the sample (`--gates enforce` makes this a failure): {reason}"
            )),
            _ => Outcome::Failed(why()),
        },
        StepState::Skipped => Outcome::Skipped(why()),
    };
    let failed = outcome.failed();
    Case {
        group: "step",
        name: step.name.clone(),
        outcome,
        time: (step.attempts > 0).then_some(step.duration),
        stderr: failed
            .then(|| step.stderr.clone())
            .filter(|s| !s.is_empty()),
    }
}

/// Whether every metric `step` recorded, and every weight of every model
/// it output, is a finite number.
fn finite_case(step: &StepReport, store: &Store) -> Case {
    let mut problems: Vec<String> = step
        .metrics
        .iter()
        .filter(|(_, v)| !v.is_finite())
        .map(|(name, v)| format!("metric `{name}` is {v}"))
        .collect();
    let mut models = 0;
    for output in step
        .outputs
        .iter()
        .filter(|o| o.kind == ArtifactKind::Model)
    {
        models += 1;
        match model_weights(store, output) {
            Ok(bad) => problems.extend(bad.into_iter().map(|b| {
                format!(
                    "model `{}`: {} of the {} values of its {} are NaN or infinite",
                    output.port, b.count, b.of, b.place
                )
            })),
            Err(e) => problems.push(format!("model `{}`: {e}", output.port)),
        }
    }
    let outcome = if problems.is_empty() {
        Outcome::Passed(format!(
            "{} metric(s) and {models} model(s) hold only finite numbers",
            step.metrics.len()
        ))
    } else {
        Outcome::Failed(problems.join("\n"))
    };
    Case {
        group: "finite",
        name: step.name.clone(),
        outcome,
        time: None,
        stderr: None,
    }
}

/// The non-finite weights of the model a step output: its card names the
/// ONNX graph, which is read from the store.
fn model_weights(
    store: &Store,
    output: &crate::execute::OutputReport,
) -> Result<Vec<sluice_ml::NonFinite>, String> {
    let card = store
        .objects
        .get(&output.digest)
        .map_err(|e| format!("reading its card: {e}"))?;
    let onnx = sluice_store::refs::model_onnx(&card)
        .ok_or_else(|| "its card names no ONNX graph".to_string())?;
    let bytes = store
        .objects
        .get(&onnx)
        .map_err(|e| format!("reading its ONNX graph: {e}"))?;
    sluice_ml::non_finite(&bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, text).unwrap();
        records_of(&path)
    }

    #[test]
    fn csv_records_keep_quoted_newlines_and_skip_blank_lines() {
        assert_eq!(
            records("a,b\r\n1,\"x\ny\"\r\n\r\n2,\"\"\"q\"\"\"\n3,z"),
            vec!["a,b\r\n", "1,\"x\ny\"\r\n", "2,\"\"\"q\"\"\"\n", "3,z"]
        );
    }

    #[test]
    fn a_csv_sample_keeps_the_header_and_the_rows_tables_sample_chooses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        let mut text = String::from("i,note\n");
        for i in 0..100 {
            text.push_str(&format!("{i},\"line\nbreak {i}\"\n"));
        }
        std::fs::write(&path, text.trim_end()).unwrap();
        let out = dir.path().join("out.csv");
        assert_eq!(sample_csv(&path, &out, 10, 7).unwrap(), (10, 100));
        let kept = records_of(&out);
        assert_eq!(kept[0], "i,note\n");
        let expected: Vec<String> = sluice_tables::ops::sample_indices(100, 10, 7)
            .iter()
            .map(|i| format!("{i},\"line\nbreak {i}\"\n"))
            .collect();
        assert_eq!(kept[1..], expected[..]);
        // Asking for more rows than there are keeps them all.
        assert_eq!(sample_csv(&path, &out, 1000, 7).unwrap(), (100, 100));
    }

    #[test]
    fn a_parquet_sample_keeps_the_rows_tables_sample_chooses() {
        use arrow_array::{Array, Int64Array, RecordBatch};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.parquet");
        let batch = RecordBatch::try_from_iter([(
            "i",
            std::sync::Arc::new(Int64Array::from_iter_values(0..500)) as _,
        )])
        .unwrap();
        std::fs::write(
            &path,
            sluice_runtime::table::batch_to_parquet(&batch).unwrap(),
        )
        .unwrap();
        let out = dir.path().join("out.parquet");
        assert_eq!(sample_parquet(&path, &out, 20, 3).ok(), Some((20, 500)));
        let kept = sluice_runtime::table::batch_from_parquet(std::fs::read(&out).unwrap()).unwrap();
        let column = kept
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let values: Vec<u64> = column.values().iter().map(|&v| v as u64).collect();
        assert_eq!(values, sluice_tables::ops::sample_indices(500, 20, 3));
        assert_eq!(column.null_count(), 0);
    }

    fn records_of(path: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for_each_record(path, |r| {
            out.push(String::from_utf8(r.to_vec()).unwrap());
            Ok(())
        })
        .unwrap();
        out
    }
}
