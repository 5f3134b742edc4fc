//! `sluice predict`: batch prediction over a CSV or Parquet file, in
//! chunks (bounded memory), through the same transform-then-model path as
//! the server.

use super::run::{default_store_dir, open_store};
use crate::CliContext;
use anyhow::{Context as _, bail};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sluice_serve::ServedModel;
use sluice_store::ModelRef;
use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `sluice predict`.
#[derive(Debug, Args)]
#[command(after_help = "\
The input holds the model's raw columns (what its transform was fitted on;
`sluice models show NAME` and GET /v2/models/NAME list them); other columns
are copied to the output beside the predictions: `prediction`, and for
classifiers `probability_<class>` per class. Rows are read, predicted and
written a chunk at a time, so memory stays bounded whatever the file size.
The output appears only when every row is predicted.

Examples:
  sluice predict --model breast-cancer@production --input patients.csv --output scored.parquet
  sluice predict --model diabetes:3 --input batch.parquet --output out.parquet --predictions-only")]
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
    sluice_serve::tune_allocator();
    let store = open_store(&args.store.clone().unwrap_or_else(default_store_dir))?;
    let runtime = ctx.runtime()?;
    let model = ServedModel::load(&store, &runtime, &args.model)?;
    let started = Instant::now();

    let (chunks, bar) = open_input(args, &model)?;
    let tmp = args.output.with_extension("parquet.partial");
    let result = predict_all(args, &model, chunks, &bar, &tmp);
    bar.finish_and_clear();
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": model.name,
                "version": model.version,
                "rows": rows,
                "output": args.output,
                "seconds": seconds,
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

type Chunks = Box<dyn Iterator<Item = anyhow::Result<RecordBatch>>>;

/// The input's chunks, and a progress bar over its rows (Parquet) or bytes
/// (CSV).
fn open_input(args: &PredictArgs, model: &ServedModel) -> anyhow::Result<(Chunks, ProgressBar)> {
    let path = &args.input;
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let show = !args.quiet && std::io::stderr().is_terminal();
    let bar = |len: u64, unit: &str| {
        if !show {
            return ProgressBar::hidden();
        }
        let b = ProgressBar::new(len);
        b.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner:.cyan}} predicting [{{bar:30}}] {{pos}}/{{len}} {unit} {{elapsed}} (eta {{eta}})"
            ))
            .unwrap(),
        );
        b
    };
    match extension(path).as_deref() {
        Some("parquet") => {
            let builder =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .with_context(|| format!("reading {} as Parquet", path.display()))?;
            let rows = builder.metadata().file_metadata().num_rows() as u64;
            let reader = builder
                .with_batch_size(args.chunk_rows.max(1))
                .build()
                .with_context(|| format!("reading {}", path.display()))?;
            let bar = bar(rows, "rows");
            let b = bar.clone();
            let name = path.display().to_string();
            Ok((
                Box::new(reader.map(move |r| {
                    let batch = r.with_context(|| format!("reading {name}"))?;
                    b.inc(batch.num_rows() as u64);
                    Ok(batch)
                })),
                bar,
            ))
        }
        Some("csv") => {
            let schema = csv_schema(path, model)?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let bar = bar(len, "bytes");
            let counted = Counted {
                inner: file,
                bar: bar.clone(),
            };
            let reader = arrow_csv::ReaderBuilder::new(Arc::new(schema))
                .with_header(true)
                .with_batch_size(args.chunk_rows.max(1))
                .build(std::io::BufReader::new(counted))
                .with_context(|| format!("reading {}", path.display()))?;
            let name = path.display().to_string();
            Ok((
                Box::new(reader.map(move |r| r.with_context(|| format!("reading {name}")))),
                bar,
            ))
        }
        _ => bail!(
            "{}: give a .csv file (with a header row) or a .parquet file",
            path.display()
        ),
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

/// The CSV's columns: the model's inputs with the types it takes, the
/// others as inferred over the whole file (a streaming pass).
fn csv_schema(path: &Path, model: &ServedModel) -> anyhow::Result<Schema> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (inferred, _) = arrow_csv::reader::Format::default()
        .with_header(true)
        .infer_schema(std::io::BufReader::new(file), None)
        .with_context(|| format!("reading the header of {}", path.display()))?;
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| match model.inputs().and_then(|s| s.column(f.name())) {
            Some(c) => Field::new(f.name(), c.column_type.arrow(), true),
            None => f.as_ref().clone().with_nullable(true),
        })
        .collect();
    Ok(Schema::new(fields))
}

/// Counts bytes read into the progress bar.
struct Counted {
    inner: File,
    bar: ProgressBar,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Predicts every chunk and writes it to `tmp`; returns the rows written.
fn predict_all(
    args: &PredictArgs,
    model: &ServedModel,
    chunks: Chunks,
    bar: &ProgressBar,
    tmp: &Path,
) -> anyhow::Result<u64> {
    let mut writer: Option<parquet::arrow::ArrowWriter<File>> = None;
    let mut rows = 0u64;
    for chunk in chunks {
        let chunk = chunk?;
        let predictions = model.predict(&chunk).map_err(|e| {
            anyhow::anyhow!(
                "rows {}–{} of {}: {e}",
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
        if writer.is_none() {
            let file = File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .build();
            writer = Some(parquet::arrow::ArrowWriter::try_new(
                file,
                out.schema(),
                Some(props),
            )?);
        }
        writer.as_mut().unwrap().write(&out)?;
        rows += out.num_rows() as u64;
        bar.tick();
    }
    match writer {
        Some(w) => {
            w.close()?;
        }
        None => bail!("{} holds no rows", args.input.display()),
    }
    Ok(rows)
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

/// A whole CSV (with a header; types inferred) or Parquet file as a table,
/// for small files such as feedback labels.
pub(crate) fn read_table_file(path: &Path) -> anyhow::Result<RecordBatch> {
    let open = || File::open(path).with_context(|| format!("opening {}", path.display()));
    let batches: Vec<RecordBatch> = match extension(path).as_deref() {
        Some("parquet") => {
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(open()?)
                .with_context(|| format!("reading {} as Parquet", path.display()))?
                .build()?
                .collect::<Result<_, _>>()?
        }
        Some("csv") => {
            let (schema, _) = arrow_csv::reader::Format::default()
                .with_header(true)
                .infer_schema(std::io::BufReader::new(open()?), None)
                .with_context(|| format!("reading the header of {}", path.display()))?;
            arrow_csv::ReaderBuilder::new(Arc::new(schema))
                .with_header(true)
                .build(std::io::BufReader::new(open()?))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("reading {}", path.display()))?
        }
        _ => bail!(
            "{}: give a .csv file (with a header row) or a .parquet file",
            path.display()
        ),
    };
    let Some(first) = batches.first() else {
        bail!("{} holds no rows", path.display());
    };
    Ok(arrow_select::concat::concat_batches(
        &first.schema(),
        &batches,
    )?)
}
