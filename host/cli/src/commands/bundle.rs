//! `sluice bundle`: one model version, its transform and chosen pipeline
//! steps compiled ahead of time for a device, in one verifiable file that
//! `sluice-edge` runs (see `sluice_bundle` for the format and its checks).
//! `sluice bundle keygen` makes the signing key pair.

mod steps;

use super::run::{default_store_dir, open_store};
use crate::CliContext;
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value};
use sluice_bundle::{
    BundleWriter, BundledComponent, ComponentRole, EngineId, Manifest, ModelEntry, PublicKey,
    SecretKey, SelfTest,
};
use sluice_runtime::engine_config::{self, CrossCompiler};
use sluice_runtime::table::ArrowDType;
use sluice_runtime::{ComponentSource, Digest};
use sluice_serve::ServedModel;
use sluice_store::ModelRef;
use sluice_tables::{ChunkOptions, ChunkReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `sluice bundle`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "\
A bundle holds the model's card and ONNX graph, its recorded transform
component with the fitted state, and the components of any --steps, each
compiled ahead of time for --target (so the device needs no compiler), plus
a manifest of every file's SHA-256, the target and the engine. `sluice-edge`
checks all of it before it runs anything, and refuses a bundle for another
architecture or engine with what to rebuild.

With --pipeline SPEC --steps a,b the device can also run those steps of the
pipeline (`sluice-edge run`: preprocessing, or checking its data against the
model's training schema), with the parameters and limits the spec gives them.
A bundled step's input is an earlier bundled step's output; a `[data]` file
of the pipeline, given on the device (`--input NAME=FILE`); or, for an
output of a step left out, the artifact that the run which trained the model
produced (its schema, say), which the bundle holds. --from-device STEP.PORT
has the device give such an output instead.

With --sample, the first rows of a file travel in the bundle with what this
machine predicts for them: the device predicts them again before it takes
the bundle (labels must be equal, numbers within 1e-6 relative). The rows
are also predicted repeated to 8192 rows here, as the device's batches can
be, and must give the same answers.

The device has no query engine: a model whose std:transform derives columns
(`derive`, SQL expressions) is refused; compute those columns before the
model instead. The default sluice-edge has no ONNX engine either: it runs the
graphs sluice trains (linear and logistic regression, MLPs, gradient-boosted
trees, random forests), and a model with other ONNX operators (an imported
one) is refused, naming them, unless --onnx-engine says the device's
sluice-edge was built with `--features onnx-engine`.

Examples:
  sluice bundle --model breast-cancer@production --target aarch64-unknown-linux-gnu -o bc.bundle
  sluice bundle keygen edge.key          # writes edge.key and edge.pub
  sluice bundle --model breast-cancer@production --sign edge.key --sample test.csv -o bc.bundle
  sluice bundle --model breast-cancer@production -o bc.bundle \
      --pipeline pipeline.toml --steps ingest,statistics,validate
  sluice-edge run bc.bundle --input raw=today.csv   # stops on schema skew
  sluice-edge serve --bundle bc.bundle --trust edge.pub"
)]
pub(crate) struct BundleArgs {
    #[command(subcommand)]
    command: Option<BundleCommand>,

    /// The model: NAME@ALIAS, NAME:VERSION or NAME (the latest version).
    #[arg(long, value_name = "NAME@ALIAS", required = true)]
    model: Option<ModelRef>,

    /// The device's target triple [default: this machine's].
    #[arg(long, value_name = "TRIPLE")]
    target: Option<String>,

    /// Where to write the bundle.
    #[arg(long, short, value_name = "FILE", required = true)]
    output: Option<PathBuf>,

    /// A pipeline spec whose --steps' components go in the bundle too.
    #[arg(long, value_name = "SPEC", requires = "steps")]
    pipeline: Option<PathBuf>,

    /// Steps of --pipeline the device runs (`sluice-edge run`),
    /// comma-separated.
    #[arg(long, value_name = "a,b", value_delimiter = ',', requires = "pipeline")]
    steps: Vec<String>,

    /// Outputs of steps left out (STEP.PORT, comma-separated) that the
    /// device gives (`sluice-edge run --input STEP.PORT=FILE`) instead of
    /// taking them from the run that trained the model.
    #[arg(
        long,
        value_name = "STEP.PORT",
        value_delimiter = ',',
        requires = "steps"
    )]
    from_device: Vec<String>,

    /// Sign the bundle with this ed25519 private key (PEM).
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,

    /// Rows (CSV or Parquet of the model's raw columns) for the device's
    /// self-test.
    #[arg(long, value_name = "FILE")]
    sample: Option<PathBuf>,

    /// How many of --sample's rows to take.
    #[arg(long, default_value_t = 32, value_name = "N")]
    sample_rows: usize,

    /// The device's sluice-edge is built with the ONNX engine (`cargo build
    /// --profile edge -p sluice-edge --features onnx-engine`): any ONNX
    /// model. Without it the model may use only the operators the default,
    /// lite sluice-edge runs.
    #[arg(long)]
    onnx_engine: bool,

    /// Store folder [default: .sluice in the current folder].
    #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,

    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum BundleCommand {
    /// Makes an ed25519 key pair for signing bundles: KEY (private, mode
    /// 0600) and KEY with `.pub` (public, for `sluice-edge --trust`).
    Keygen {
        /// The private key's file (never overwritten).
        key: PathBuf,
    },
}

/// The target triple of this machine, as `--target` takes it.
fn host_triple() -> String {
    sluice_bundle::suggested_triple(std::env::consts::ARCH, std::env::consts::OS)
}

/// Runs `sluice bundle`.
pub(crate) fn run(ctx: &CliContext, args: &BundleArgs) -> anyhow::Result<ExitCode> {
    if let Some(BundleCommand::Keygen { key }) = &args.command {
        return keygen(key, args.json);
    }
    let (Some(model_ref), Some(output)) = (&args.model, &args.output) else {
        bail!("--model and --output are required");
    };
    let target = args.target.clone().unwrap_or_else(host_triple);
    let sign = args
        .sign
        .as_deref()
        .map(SecretKey::read)
        .transpose()
        .context("reading --sign")?;
    let compiler = CrossCompiler::new(&target).map_err(anyhow::Error::msg)?;
    let store = open_store(&args.store.clone().unwrap_or_else(default_store_dir))?;
    let runtime = ctx.runtime()?;
    // Loading the model as the server would checks all of it on this
    // machine first: the card, the graph, the transform's world.
    let served = ServedModel::load(&store, &runtime, model_ref)?;
    refuse_derived_columns(&served)?;
    // The bundle holds exactly what was loaded and checked.
    let onnx = served.model().onnx().to_vec();
    if !args.onnx_engine {
        refuse_lite_unsupported(&served.id(), &onnx)?;
    }
    let card = served.model().stored_card(&Digest::of(&onnx)).into_bytes();

    let mut writer = BundleWriter::new(Manifest {
        format: sluice_bundle::FORMAT.into(),
        created_by: format!("sluice {}", env!("CARGO_PKG_VERSION")),
        target: target.clone(),
        engine: engine_id(),
        compatibility_hash: compiler.compatibility_hash(),
        model: ModelEntry {
            name: served.name.clone(),
            version: served.version,
            reference: model_ref.to_string(),
            card: "model/card.json".into(),
            onnx: "model/model.onnx".into(),
        },
        components: Vec::new(),
        selftest: None,
        steps: Vec::new(),
        files: Default::default(),
    });
    writer.add("model/card.json", card);
    writer.add("model/model.onnx", onnx);

    let mut components = Vec::new();
    if let Some(digest) = served.transform_component() {
        let source = ComponentSource::of_digest(&digest, Some(&store.objects))
            .map_err(anyhow::Error::msg)?;
        components.push((
            source.display_name(),
            ComponentRole::Transform,
            None,
            source.read()?.0.into_owned(),
        ));
    }
    let mut planned_steps = Vec::new();
    if let Some(spec_path) = &args.pipeline {
        let bundled = steps::plan(
            spec_path,
            &args.steps,
            &args.from_device,
            &store,
            &runtime,
            &served,
        )?;
        for (name, step, bytes) in bundled.components {
            components.push((name, ComponentRole::Step, Some(step), bytes));
        }
        for (path, bytes) in bundled.files {
            writer.add(&path, bytes);
        }
        planned_steps = bundled.steps;
    }
    for (name, role, step, bytes) in components {
        let digest = Digest::of(&bytes);
        let code = format!("components/{}.cwasm", digest.to_hex());
        let compiled = compiler
            .precompile(&bytes)
            .map_err(|e| anyhow::anyhow!("compiling {name} for {target}: {e}"))?;
        writer.add(&code, compiled);
        writer.manifest_mut().components.push(BundledComponent {
            name,
            role,
            step,
            digest,
            size: bytes.len() as u64,
            code,
        });
    }
    writer.manifest_mut().steps = planned_steps;
    if let Some(sample) = &args.sample {
        let (rows, predictions) = self_test(&served, sample, args.sample_rows.max(1))?;
        writer.add("selftest/rows.csv", rows);
        writer.add("selftest/predictions.json", predictions);
        writer.manifest_mut().selftest = Some(SelfTest {
            rows: "selftest/rows.csv".into(),
            predictions: "selftest/predictions.json".into(),
        });
    }
    let manifest = writer.manifest_mut().clone();
    let bytes = writer.finish(sign.as_ref());
    write_atomically(output, &bytes)?;

    let signed = sign.as_ref().map(|k| k.public().id());
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "bundle": output,
                "bytes": bytes.len(),
                "sha256": Digest::of(&bytes),
                "model": {"name": served.name, "version": served.version},
                "target": target,
                "engine": manifest.engine,
                "components": manifest.components,
                "selftest_rows": manifest.selftest.is_some(),
                "steps": manifest.steps,
                "signed_by": signed,
            }))?
        );
    } else {
        eprintln!(
            "bundled {} for {target}: {} component{} compiled, {}{} → {} ({:.1} MB)",
            served.id(),
            manifest.components.len(),
            if manifest.components.len() == 1 {
                ""
            } else {
                "s"
            },
            match &signed {
                Some(id) => format!("signed by key {id}"),
                None => "unsigned".into(),
            },
            if manifest.selftest.is_some() {
                ", with self-test rows"
            } else {
                ""
            },
            output.display(),
            bytes.len() as f64 / 1e6
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses a model whose transform derives columns: std:transform computes
/// `derive`'s SQL expressions with the host's query engine, which
/// `sluice-edge` does not have, so every request would fail on the device.
/// The card records the spec under the fitted state's `params` (the state,
/// or the transform document `{"params", "state"}` the step writes).
fn refuse_derived_columns(served: &ServedModel) -> anyhow::Result<()> {
    let Some(state) = served.card().get("transform").and_then(|t| t.get("state")) else {
        return Ok(());
    };
    let state = state.get("state").unwrap_or(state);
    let derived: Vec<&str> = state
        .get("params")
        .and_then(|p| p.get("derive"))
        .and_then(Value::as_object)
        .map(|d| d.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if derived.is_empty() {
        return Ok(());
    }
    bail!(
        "{}'s transform derives columns with SQL expressions (`derive`: {}), which sluice-edge \
         cannot compute: the device has no query engine. Compute these columns before the \
         model instead (in the data the device is sent, or in a step of the pipeline before \
         std:transform), train without `derive` and bundle that model; or serve this one with \
         `sluice serve`",
        served.id(),
        derived.join(", ")
    )
}

/// Refuses a model the default (lite) sluice-edge cannot run: one whose
/// graph uses ONNX operators beyond the ones sluice's exporter writes
/// ([`sluice_runtime::LITE_OPERATORS`]), such as an imported scikit-learn or
/// PyTorch model. The device would refuse it at load.
fn refuse_lite_unsupported(model: &str, onnx: &[u8]) -> anyhow::Result<()> {
    let missing = sluice_runtime::lite_unsupported_operators(onnx)?;
    if missing.is_empty() {
        return Ok(());
    }
    let lite: Vec<String> = sluice_runtime::LITE_OPERATORS
        .iter()
        .map(|(domain, op)| {
            if domain.is_empty() {
                (*op).to_owned()
            } else {
                format!("{domain}:{op}")
            }
        })
        .collect();
    bail!(
        "{} uses ONNX operators the default sluice-edge cannot run: {}. It has no ONNX engine \
         and runs the graphs sluice trains (operators: {}). Build the device's sluice-edge with \
         the engine (`cargo build --profile edge -p sluice-edge --features onnx-engine`) and \
         bundle with --onnx-engine, or serve this model with `sluice serve`",
        model,
        missing.join(", "),
        lite.join(", ")
    )
}

/// The engine bundles are compiled for: this build's.
fn engine_id() -> EngineId {
    EngineId {
        profile: engine_config::ENGINE_PROFILE.into(),
        wasmtime: engine_config::WASMTIME_VERSION.into(),
    }
}

/// The first `n` rows of `sample` as CSV, and what `served` predicts for
/// them (a JSON object of prediction columns).
fn self_test(served: &ServedModel, sample: &Path, n: usize) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let types = |name: &str| {
        served
            .inputs()
            .and_then(|s| s.column(name))
            .map(|c| c.column_type.arrow())
    };
    let mut reader = ChunkReader::open(
        sample,
        ChunkOptions {
            chunk_rows: n,
            column_types: Some(&types),
            progress: None,
        },
    )?;
    let rows = reader
        .next()
        .transpose()?
        .with_context(|| format!("{} holds no rows", sample.display()))?;
    let predictions = served
        .predict(&rows)
        .with_context(|| format!("predicting the self-test rows of {}", sample.display()))?;
    same_when_repeated(served, &rows, &predictions)
        .with_context(|| format!("self-testing with the rows of {}", sample.display()))?;
    let mut csv = Vec::new();
    {
        let mut w = arrow_csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut csv);
        w.write(&rows)?;
    }
    let columns: Map<String, Value> = predictions
        .schema()
        .fields()
        .iter()
        .zip(predictions.columns())
        .map(|(f, c)| {
            (
                f.name().clone(),
                Value::Array(sluice_serve::protocol::column_json(c.as_ref())),
            )
        })
        .collect();
    Ok((csv, serde_json::to_vec_pretty(&columns)?))
}

/// At least this many rows are predicted at once by [`same_when_repeated`]:
/// the device predicts a CSV in chunks of 8192 rows, and std:transform
/// takes another path from 4096 rows on.
const REPEATED_ROWS: usize = 8192;

/// Predicts `rows` repeated to at least [`REPEATED_ROWS`] rows and checks
/// that every repetition gets `predictions` (labels equal, numbers within
/// the device's self-test tolerance, `sluice_contract::PREDICTION_TOLERANCE`
/// relative), so that paths taken
/// only for large batches are run before a device meets them.
fn same_when_repeated(
    served: &ServedModel,
    rows: &arrow_array::RecordBatch,
    predictions: &arrow_array::RecordBatch,
) -> anyhow::Result<()> {
    let n = rows.num_rows();
    if n == 0 {
        return Ok(());
    }
    let times = REPEATED_ROWS.div_ceil(n);
    let many =
        arrow_select::concat::concat_batches(&rows.schema(), std::iter::repeat_n(rows, times))?;
    let got = served
        .predict(&many)
        .with_context(|| format!("predicting them repeated to {} rows", many.num_rows()))?;
    for (field, want) in predictions
        .schema()
        .fields()
        .iter()
        .zip(predictions.columns())
    {
        let name = field.name();
        let column = got.column_by_name(name).with_context(|| {
            format!("no prediction column `{name}` for {} rows", many.num_rows())
        })?;
        let want = sluice_serve::protocol::column_json(want.as_ref());
        let got = sluice_serve::protocol::column_json(column.as_ref());
        for (row, g) in got.iter().enumerate() {
            let w = &want[row % n];
            let same = match (g.as_f64(), w.as_f64()) {
                (Some(a), Some(b)) => {
                    sluice_contract::numbers_agree(a, b, sluice_contract::PREDICTION_TOLERANCE)
                }
                _ => g == w,
            };
            if !same {
                bail!(
                    "predicted {} rows at once (the sample repeated), row {} `{name}` is {g}, \
                     but {w} for the same row among {n}: the model's transform gives other \
                     answers for large batches, which a device would meet",
                    many.num_rows(),
                    row + 1
                );
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same folder,
/// so that a device watching the folder never sees half a bundle.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// `sluice bundle keygen KEY`.
fn keygen(key: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let secret = SecretKey::generate()?;
    let public_path = PathBuf::from(format!("{}.pub", key.display()));
    secret.write(key)?;
    let public: PublicKey = secret.public();
    public.write(&public_path)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"private": key, "public": public_path, "id": public.id()})
        );
    } else {
        eprintln!(
            "made key {}: {} (private: sign with `sluice bundle --sign`), {} (public: `sluice-edge --trust`)",
            public.id(),
            key.display(),
            public_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_with_operators_beyond_the_lite_edge_is_refused_naming_them() {
        // scikit-learn's logistic regression through skl2onnx: ONNX-ML
        // operators the lite evaluator does not run.
        let onnx = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../ml/tests/data/iris_logreg.onnx"),
        )
        .unwrap();
        let e = refuse_lite_unsupported("iris:1", &onnx)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("iris:1 uses ONNX operators the default sluice-edge cannot run: "),
            "{e}"
        );
        assert!(e.contains("ai.onnx.ml:LinearClassifier"), "{e}");
        assert!(e.contains("--features onnx-engine"), "{e}");
        assert!(e.contains("bundle with --onnx-engine"), "{e}");
    }
}
