//! `sluice`: run machine-learning pipelines whose steps are sandboxed
//! WebAssembly components.

mod allocator;
mod commands;
mod ui;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const ABOUT: &str = "Run ML pipelines whose steps are sandboxed WebAssembly components.";

const LONG_ABOUT: &str = "\
Run ML pipelines whose steps are sandboxed WebAssembly components.

A pipeline is a TOML file naming data inputs and steps. Each step is a
WebAssembly component (std:NAME for the standard steps, or a .wasm file you
built) that sees only its inputs and params: no files, no network, no
environment, and bounded memory, time and output. Every artifact is stored
content-addressed (named by its SHA-256) in a store next to the pipeline.";

const EXAMPLES: &str = "\
Examples:
  sluice run examples/quickstart/pipeline.toml      run a pipeline
  sluice run pipeline.toml --json                   machine-readable run report
  sluice run pipeline.toml --no-cache --jobs 4      run every step, four at a time
  sluice run --resume latest                        finish what the last run left undone
  sluice runs list                                  runs in ./.sluice, newest first
  sluice runs show latest --explain                 why each step ran or came from the cache
  sluice artifacts list --kind statistics           stored artifacts and what produced them
  sluice artifacts show latest/stats/statistics     one artifact: producers, consumers, preview
  sluice artifacts export 6a34a3d3 -o stats.json    copy an artifact's bytes out (digest checked)
  sluice test pipeline.toml --junit report.xml      pipeline CI on a sample, in a scratch store
  sluice models policy breast-cancer --set promotion.toml   environments and their promotion gates
  sluice models promote breast-cancer 1 --alias production --reason \"first release\"
  sluice rollout start breast-cancer 2 --run        canary stages; promoted or rolled back
  sluice ab breast-cancer@production --feedback labels.csv   primary vs canary, with intervals
  sluice serve --model breast-cancer@production     OIP v2 + /invocations on 127.0.0.1:8080
  sluice serve --model m@production --shadow m@staging      mirror traffic to a candidate, compare
  sluice predict --model breast-cancer@production --input rows.csv --output scored.parquet
  sluice monitor --model breast-cancer@production --html report.html
  sluice watch examples/continuous-training/pipeline.toml   retrain on new data, drift, schedule
  sluice lineage latest/stats/statistics            the steps and data files it came from
  sluice lineage 6a34a3d3 --dot > lineage.dot       the same as a Graphviz digraph
  sluice gc --dry-run                               what unreferenced objects gc would remove
  sluice store migrate --to postgres://ann@db/sluice  copy this store's metadata to a team's server
  sluice store verify --store team.toml             every object the metadata names, present and intact
  sluice validate pipeline.toml                     check a spec without running it
  sluice run pipeline.toml --plan-only --store team.toml   plan a run for an engine; prints RUN
  sluice step exec RUN train --store team.toml      execute one step of it, as a pod would
  sluice runs finish RUN --store team.toml          end it once every step's task is done
  sluice export kfp pipeline.toml --image IMAGE --store team.toml -o pipeline.yaml
  sluice component list                             the standard steps
  sluice component inspect std:statistics           ports, params and imports of a step
  sluice component inspect ./target/my_step.wasm    the same for your own component
  sluice component new --lang python my-step        a step project (rust, python, js or c)
  sluice component build my-step                    build it: prints my-step/build/my-step.wasm
  sluice component check my-step/build/my-step.wasm --inputs my-step/samples

Environment:
  SLUICE_STORE       the store: a folder (default: .sluice next to the pipeline),
                     s3://bucket/prefix, or a store file (team.toml) naming both
                     `objects = \"s3://…\"` and `metadata = \"postgres://…\"`
  SLUICE_METADATA_URL  the store's metadata: postgres://USER@HOST/DB or a SQLite file
  SLUICE_USER        who you are in the store's records (default: $USER@host)
  SLUICE_CACHE_DIR   compiled components, the JavaScript step toolchain (default: ~/.cache/sluice)";

/// Command-line interface of `sluice`.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Folder of the compiled-component cache.
    #[arg(long, global = true, env = "SLUICE_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile components in memory only; neither read nor write the cache.
    #[arg(long, global = true)]
    no_compile_cache: bool,

    /// Where the store's metadata is: a PostgreSQL server
    /// (postgres://USER@HOST:PORT/DATABASE) that a team shares, or a SQLite
    /// file. The password comes from PGPASSWORD or ~/.pgpass, never from a
    /// spec. Default: the spec's `metadata`, else the store file's, else
    /// metadata.sqlite in the store's folder.
    #[arg(
        long,
        global = true,
        env = "SLUICE_METADATA_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    metadata: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline: validate the spec, import its data, run every step.
    ///
    /// Steps run in dependency order. A step that fails stops the steps that
    /// depend on it; independent steps still run. Exits with 1 if any step
    /// failed and 2 if the spec is invalid.
    Run(commands::run::RunArgs),

    /// Check a pipeline spec without running anything.
    ///
    /// Parses the spec, loads every component to read its manifest, and
    /// reports every problem with file, line and column. Exits with 2 on
    /// errors.
    Validate(commands::run::ValidateArgs),

    /// Pipeline CI: run a pipeline on a sample of its data in a scratch
    /// store and check that its components integrate, every step produces
    /// what it declares, and training produces no NaN; a JUnit report.
    ///
    /// Exits with 1 if a check failed and 2 if the spec is invalid.
    Test(commands::pipeline_test::TestArgs),

    /// Create, build, check, inspect and list step components.
    #[command(subcommand)]
    Component(commands::component::ComponentCommand),

    /// List runs and show what each step did, and why it ran.
    #[command(subcommand)]
    Runs(commands::runs::RunsCommand),

    /// List, inspect and export stored artifacts.
    #[command(subcommand)]
    Artifacts(commands::artifacts::ArtifactsCommand),

    /// The model registry: list models, show versions and alias history,
    /// promote a version to an alias, roll an alias back.
    #[command(subcommand)]
    Models(commands::models::ModelsCommand),

    /// Online validation: roll a version out on an alias stage by stage,
    /// compared with the version it holds on live traffic, promoted or
    /// rolled back by itself.
    #[command(subcommand)]
    Rollout(commands::rollout::RolloutCommand),

    /// A/B report of an alias: its primary and canary compared per variant
    /// (requests, errors, latency, live accuracy) with confidence intervals.
    Ab(commands::ab::AbArgs),

    /// Serve models over HTTP: Open Inference Protocol v2 and MLflow's
    /// /invocations, with canary splits, batching, request logging,
    /// Prometheus metrics and hot reload when an alias moves.
    Serve(commands::serve::ServeArgs),

    /// Predict for every row of a CSV or Parquet file with a registered
    /// model, writing Parquet; streamed in chunks with bounded memory.
    Predict(commands::predict::PredictArgs),

    /// Bundle a model for a device: its graph, its transform and chosen
    /// pipeline steps compiled ahead of time for the device's architecture,
    /// in one verifiable (optionally signed) file that `sluice-edge` runs.
    Bundle(commands::bundle::BundleArgs),

    /// Monitor a served model: drift of its served inputs and predictions
    /// from its training data, and live quality from feedback labels; a
    /// JSON report and a self-contained HTML page with charts.
    Monitor(commands::monitor::MonitorArgs),

    /// Continuous training: evaluate a pipeline's [triggers] (schedule, new
    /// data, drift, degradation), run it, promote what it blesses.
    Watch(commands::watch::WatchArgs),

    /// Show where an artifact came from: the executions and data files
    /// upstream of it, as a tree, JSON or a Graphviz drawing.
    ///
    /// Each artifact is traced to the most recent execution that output it
    /// (for a cached execution, to the original whose outputs it reused),
    /// then through that execution's inputs, back to the data files the
    /// pipeline imported.
    Lineage(commands::lineage::LineageArgs),

    /// Remove stored objects that no metadata row references.
    ///
    /// Keeps every artifact, input, output, import and component the
    /// metadata names, and any object younger than 10 minutes (a running
    /// `sluice run` writes bytes before recording them). Does nothing while
    /// a run is in progress on the store unless --force. Also removes
    /// temporary files older than an hour left by crashed writers.
    Gc(commands::gc::GcArgs),

    /// Execute one step of a planned run: the unit a cluster's engine
    /// schedules (see `sluice run --plan-only`, `sluice export kfp`).
    #[command(subcommand)]
    Step(commands::step::StepCommand),

    /// Write a pipeline for a cluster's workflow engine: Kubeflow Pipelines
    /// v2 (also Vertex AI Pipelines), one pod per step sharing the team
    /// store.
    #[command(subcommand)]
    Export(commands::export::ExportCommand),

    /// Move a store's metadata to another database (a team's PostgreSQL
    /// server) and its objects to another object store; verify a store.
    #[command(subcommand)]
    Store(commands::store::StoreCommand),
}

fn main() -> ExitCode {
    allocator::configure_late();
    let cli = Cli::parse();
    commands::run::set_metadata_location(cli.metadata.clone());
    let result = match &cli.command {
        Command::Run(args) => commands::run::run(&cli_context(&cli), args),
        Command::Validate(args) => commands::run::validate(&cli_context(&cli), args),
        Command::Test(args) => commands::pipeline_test::run(&cli_context(&cli), args),
        Command::Component(cmd) => commands::component::run(&cli_context(&cli), cmd),
        Command::Runs(cmd) => commands::runs::run(cmd),
        Command::Artifacts(cmd) => commands::artifacts::run(cmd),
        Command::Models(cmd) => commands::models::run(cmd),
        Command::Rollout(cmd) => commands::rollout::run(cmd),
        Command::Ab(args) => commands::ab::run(args),
        Command::Serve(args) => commands::serve::run(&cli_context(&cli), args),
        Command::Predict(args) => commands::predict::run(&cli_context(&cli), args),
        Command::Bundle(args) => commands::bundle::run(&cli_context(&cli), args),
        Command::Monitor(args) => commands::monitor::run(&cli_context(&cli), args),
        Command::Watch(args) => commands::watch::run(&cli_context(&cli), args),
        Command::Lineage(args) => commands::lineage::run(args),
        Command::Gc(args) => commands::gc::run(args),
        Command::Store(cmd) => commands::store::run(cmd),
        Command::Step(cmd) => commands::step::run(&cli_context(&cli), cmd),
        Command::Export(cmd) => commands::export::run(&cli_context(&cli), cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{} {e:#}", ui::error_label());
            ExitCode::from(2)
        }
    }
}

/// Settings shared by every command.
pub(crate) struct CliContext {
    pub(crate) cache_dir: Option<PathBuf>,
}

fn cli_context(cli: &Cli) -> CliContext {
    let cache_dir = if cli.no_compile_cache {
        None
    } else {
        cli.cache_dir.clone().or_else(default_cache_dir)
    };
    CliContext { cache_dir }
}

/// `$XDG_CACHE_HOME/sluice`, else `~/.cache/sluice`.
fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("sluice"))
}

/// The compiled cache's key: `$SLUICE_CACHE_KEY`, else
/// `$XDG_CONFIG_HOME/sluice/compiled-cache.key`, else
/// `~/.config/sluice/compiled-cache.key` — outside the cache folder, so that
/// who can write the cache cannot also forge its entries.
fn cache_key_file() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    var("SLUICE_CACHE_KEY").map(PathBuf::from).or_else(|| {
        var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|d| d.join("sluice").join("compiled-cache.key"))
    })
}

impl CliContext {
    /// A runtime using the configured compiled cache.
    pub(crate) fn runtime(&self) -> anyhow::Result<sluice_runtime::Runtime> {
        use anyhow::Context as _;
        sluice_runtime::Runtime::new(sluice_runtime::RuntimeConfig {
            cache_dir: self.cache_dir.as_ref().map(|d| d.join("compiled")),
            cache_key_file: cache_key_file(),
        })
        .context("starting the component runtime")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
