//! `sluice predict`: batch prediction over a CSV or Parquet file, in
//! chunks (bounded memory), through the same transform-then-model path as
//! the server. The input is read and the output written through
//! `sluice_tables`. Unless `--no-validate`, each chunk is first checked
//! against the schema and statistics of the model's training data
//! ([`validation`]).

mod validation;

use super::run::{default_store_dir, open_store};
use crate::CliContext;
use anyhow::bail;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sluice_runtime::DType;
use sluice_runtime::table::ArrowDType;
use sluice_serve::ServedModel;
use sluice_store::ModelRef;
use sluice_tables::{ChunkOptions, ChunkReader, ParquetOutput, Total};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use validation::Validation;

/// Arguments of `sluice predict`.
#[derive(Debug, Args)]
#[command(after_help = "\
The input holds the model's raw columns (what its transform was fitted on;
`sluice models show NAME` and GET /v2/models/NAME list them); other columns
are copied to the output beside the predictions: `prediction`, and for
classifiers `probability_<class>` per class. Rows are read, predicted and
written a chunk at a time, so memory stays bounded whatever the file size.
The output appears only when every row is predicted.

Validation: unless --no-validate, the input is first checked against the
schema and statistics of the data the model was trained on (found through
the store's lineage: the std:schema and std:statistics steps of the
training pipeline), by std:statistics and std:validate themselves, so the
messages are the pipeline's. Only the model's input columns are checked;
others (the label, columns to copy through) are not. Schema skew — a
missing column, a wrong type, missing or out-of-range values — refuses the
file (exit 2; checked on every row, chunk by chunk, and nothing is
written). Drift from the training data — measured on the first chunk, if
it has 100 rows or more — is a warning, and the rows are predicted anyway. A model with no recorded
schema (imported, or trained without std:schema) is not validated; a
notice says so.

Examples:
  sluice predict --model breast-cancer@production --input patients.csv --output scored.parquet
  sluice predict --model diabetes:3 --input batch.parquet --output out.parquet --predictions-only
  sluice predict --model breast-cancer:1 --input odd.csv --output out.parquet --no-validate")]
pub(crate) struct PredictArgs {
    /// The model: NAME@ALIAS, NAME:VERSION or NAME (the latest version).
    #[arg(long, value_name = "NAME@ALIAS")]
    model: ModelRef,

    /// Rows to predict: a .csv file (with a header) or a .parquet file.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,

    /// Where to write the predictions (Parquet).
    #[arg(long, short, value_name = "FILE.parquet")]
    output: PathBuf,

    /// Write only the prediction columns, not the input's columns too.
    #[arg(long)]
    predictions_only: bool,

    /// Predict without checking the input against the training data's
    /// schema and statistics.
    #[arg(long)]
    no_validate: bool,

    /// Rows per chunk.
    #[arg(long, default_value_t = 8192, value_name = "ROWS")]
    chunk_rows: usize,

    /// Store folder [default: .sluice in the current folder].
    #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,

    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,

    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

/// Runs `sluice predict`.
pub(crate) fn run(ctx: &CliContext, args: &PredictArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&args.store.clone().unwrap_or_else(default_store_dir))?;
    let runtime = ctx.runtime()?;
    let model = ServedModel::load(&store, &runtime, &args.model)?;
    let started = Instant::now();
    let mut validation = Validation::prepare(&store, &runtime, &model, args.no_validate)?;
    if let Validation::Unavailable(why) = &validation {
        eprintln!("note: {why}");
    }

    let (chunks, bar) = open_input(args, &model, &validation)?;
    let result = predict_all(args, &model, chunks, &bar, &mut validation);
    bar.finish_and_clear();
    let rows = result?;
    let seconds = started.elapsed().as_secs_f64();
    let warnings = validation.warnings();
    if !warnings.is_empty() {
        eprintln!(
            "warning: the input drifted from {}'s training data (predicted anyway):\n- {}",
            model.id(),
            warnings.join("\n- ")
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": model.name,
                "version": model.version,
                "rows": rows,
                "output": args.output,
                "seconds": seconds,
                "validation": validation.summary(),
            }))?
        );
    } else {
        eprintln!(
            "predicted {rows} rows with {} in {seconds:.2} s → {}",
            model.id(),
            args.output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The input's chunks, and a progress bar over its rows (Parquet) or bytes
/// (CSV).
fn open_input(
    args: &PredictArgs,
    model: &ServedModel,
    validation: &Validation,
) -> anyhow::Result<(ChunkReader, ProgressBar)> {
    let show = !args.quiet && std::io::stderr().is_terminal();
    let bar = if show {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    let counted = bar.clone();
    // The model's inputs are read with the types it takes; other CSV
    // columns keep the types inferred over the whole file. When validating,
    // only text inputs are (reading text never fails): the others keep
    // their inferred types, so that text in a numeric column is the
    // schema's wrong-type skew rather than a parse error; predicting casts
    // them to the model's types.
    let validating = matches!(validation, Validation::Checked(_));
    let types = |name: &str| {
        model
            .inputs()
            .and_then(|s| s.column(name))
            .filter(|c| !validating || c.column_type == DType::Utf8)
            .map(|c| c.column_type.arrow())
    };
    let reader = ChunkReader::open(
        &args.input,
        ChunkOptions {
            chunk_rows: args.chunk_rows.max(1),
            column_types: Some(&types),
            progress: Some(Box::new(move |n| counted.inc(n))),
        },
    )?;
    let (len, unit) = match reader.total() {
        Total::Rows(n) => (n, "rows"),
        Total::Bytes(n) => (n, "bytes"),
    };
    if show {
        bar.set_length(len);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner:.cyan}} predicting [{{bar:30}}] {{pos}}/{{len}} {unit} {{elapsed}} (eta {{eta}})"
            ))
            .unwrap(),
        );
    }
    Ok((reader, bar))
}

/// Predicts every chunk and writes it to `args.output` (which appears only
/// when every row is written); returns the rows written.
fn predict_all(
    args: &PredictArgs,
    model: &ServedModel,
    chunks: ChunkReader,
    bar: &ProgressBar,
    validation: &mut Validation,
) -> anyhow::Result<u64> {
    let mut output = ParquetOutput::new(&args.output);
    let mut rows = 0u64;
    for chunk in chunks {
        let chunk = chunk?;
        if let Validation::Checked(v) = validation {
            v.check(&chunk, &args.input)?;
        }
        let predictions = model.predict(&chunk).map_err(|e| {
            // Rows count from 1, the first data row of the file (the line
            // after a CSV header); the error's own row counts within them.
            anyhow::anyhow!(
                "in rows {}–{} of {} (row 1 is the file's first data row; a row named \
                 below counts from the first of these): {e}",
                rows + 1,
                rows + chunk.num_rows() as u64,
                args.input.display()
            )
        })?;
        let out = if args.predictions_only {
            predictions
        } else {
            beside(&chunk, &predictions)?
        };
        output.write(&out)?;
        rows += out.num_rows() as u64;
        bar.tick();
    }
    if !output.is_started() {
        bail!("{} holds no rows", args.input.display());
    }
    Ok(output.finish()?)
}

/// The input's columns followed by the prediction columns.
fn beside(input: &RecordBatch, predictions: &RecordBatch) -> anyhow::Result<RecordBatch> {
    let mut fields: Vec<Field> = input
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns: Vec<ArrayRef> = input.columns().to_vec();
    for (f, c) in predictions
        .schema()
        .fields()
        .iter()
        .zip(predictions.columns())
    {
        if input.column_by_name(f.name()).is_some() {
            bail!(
                "the input already has a column `{}`, which the predictions would overwrite; \
                 rename it or pass --predictions-only",
                f.name()
            );
        }
        fields.push(f.as_ref().clone());
        columns.push(c.clone());
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
