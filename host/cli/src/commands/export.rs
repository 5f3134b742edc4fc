//! `sluice export kfp`: a pipeline as a Kubeflow Pipelines v2 definition.

use crate::CliContext;
use crate::commands::run::{report_diagnostics, store_location, store_of};
use crate::ui;
use anyhow::{Context as _, bail};
use clap::Subcommand;
use sluice_cluster::kfp::{self, KfpOptions, SecretEnv};
use sluice_pipeline::execute::{self, ExecuteError, package::publish};
use sluice_store::{MetadataLocation, ObjectStore, Store};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub(crate) enum ExportCommand {
    /// Write a pipeline as a Kubeflow Pipelines v2 definition (IR YAML),
    /// for KFP, Vertex AI Pipelines or Argo through KFP: one container
    /// task per step, each running `sluice step exec` against the team
    /// store.
    ///
    /// First publishes the spec, the components it names by path and its
    /// data files into the store (pods have nothing but the image and the
    /// store). The definition has a task `sluice-plan` that plans the run
    /// (named by the engine's job id, so a retried task finds it), a task
    /// per step after the steps it consumes from — pod memory from the
    /// step's `limits.memory` plus 512 MiB for sluice itself, CPU from
    /// `limits.cpu`, accelerators from `accelerator`, engine retries from
    /// `retries` plus --pod-retries, KFP's cache off (sluice's cache
    /// decides) — and `sluice-report`, which ends the run whatever
    /// happened. Credentials are never written into it: pass them with
    /// --secret-env, by reference to a Kubernetes secret.
    #[command(after_help = "Examples:
  sluice export kfp pipeline.toml --image ghcr.io/acme/sluice:0.1 --store team.toml \\
      --secret-env PGPASSWORD=sluice-db:password \\
      --secret-env AWS_ACCESS_KEY_ID=sluice-s3:access-key \\
      --secret-env AWS_SECRET_ACCESS_KEY=sluice-s3:secret-key \\
      --env AWS_REGION=eu-west-1 -o pipeline.yaml
  python -c 'import kfp; kfp.Client(host=URL).create_run_from_pipeline_package(\"pipeline.yaml\")'

The store must be one pods reach: objects in s3://… and metadata on a
PostgreSQL server (a store file naming both, or --store s3://… with
--metadata postgres://…). docs/cluster.md walks through it.")]
    Kfp {
        /// The pipeline spec (TOML).
        pipeline: PathBuf,
        /// The container image with `sluice` on its PATH (see the
        /// repository's Dockerfile).
        #[arg(long, value_name = "IMAGE")]
        image: String,
        /// The team store: a store file (team.toml), or s3://bucket/prefix
        /// with --metadata [default: the spec's `store`].
        #[arg(long, env = "SLUICE_STORE", value_name = "STORE")]
        store: Option<PathBuf>,
        /// Where to write the definition [default: standard output].
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// An environment variable for every task, e.g. AWS_REGION=eu-west-1
        /// or AWS_ENDPOINT_URL=http://minio:9000 (repeatable). Refused for
        /// names that look like credentials.
        #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
        env: Vec<(String, String)>,
        /// A variable taken from a key of a Kubernetes secret, by reference:
        /// ENV=SECRET:KEY, e.g. PGPASSWORD=sluice-db:password (repeatable).
        #[arg(long = "secret-env", value_name = "ENV=SECRET:KEY", value_parser = parse_secret_env)]
        secret_env: Vec<SecretEnv>,
        /// Times the engine starts a task again after its pod was lost or
        /// the store could not be reached, beyond the step's own `retries`
        /// (which run inside the task).
        #[arg(long, default_value_t = 2, value_name = "N")]
        pod_retries: u32,
        /// The memory limit of steps that set none in the spec, e.g. 4GiB
        /// [default: the spec's [pipeline] limits, else 1GiB].
        #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
        memory: Option<u64>,
    },
}

fn parse_memory(text: &str) -> Result<u64, String> {
    sluice_pipeline::spec::parse_size(text).map_err(|e| format!("{e}; write a size such as 4GiB"))
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("`{name}` is not an environment variable's name"));
    }
    Ok((name.to_string(), value.to_string()))
}

fn parse_secret_env(text: &str) -> Result<SecretEnv, String> {
    let bad = || format!("`{text}` is not ENV=SECRET:KEY (e.g. PGPASSWORD=sluice-db:password)");
    let (env, reference) = text.split_once('=').ok_or_else(bad)?;
    let (secret, key) = reference.split_once(':').ok_or_else(bad)?;
    if env.is_empty() || secret.is_empty() || key.is_empty() {
        return Err(bad());
    }
    Ok(SecretEnv {
        env: env.into(),
        secret: secret.into(),
        key: key.into(),
    })
}

pub(crate) fn run(ctx: &CliContext, cmd: &ExportCommand) -> anyhow::Result<ExitCode> {
    let ExportCommand::Kfp {
        pipeline,
        image,
        store,
        output,
        env,
        secret_env,
        pod_retries,
        memory,
    } = cmd;
    kfp::check_env(env)?;
    let of = store_of(Some(pipeline), store);
    let location = store_location(&of.dir, &of.local, of.metadata.as_deref())?;
    let objects = location.objects.clone();
    if !ObjectStore::is_remote_url(&objects) {
        bail!(
            "the store's objects are in {objects}, a folder on this machine, which a cluster's pods cannot reach; use a store whose objects are in a bucket (--store team.toml naming `objects = \"s3://…\"`, or --store s3://bucket/prefix)"
        );
    }
    let metadata = match &location.metadata {
        MetadataLocation::Postgres(url) => url.clone(),
        MetadataLocation::Sqlite(path) => bail!(
            "the store's metadata is the SQLite file {}, on this machine, which a cluster's pods cannot reach; use a PostgreSQL server (`metadata = \"postgres://…\"` in the store file, or --metadata postgres://…)",
            path.display()
        ),
    };
    if location.metadata.display() != metadata {
        bail!(
            "the metadata URL {} carries a password, which would be written into the pipeline definition; remove it from the URL and pass it by reference: --secret-env PGPASSWORD=SECRET:KEY",
            location.metadata.display()
        );
    }
    let store = Store::open_at(&location)
        .with_context(|| format!("opening the store at {}", of.dir.display()))?;
    let runtime = ctx.runtime()?;
    let prepared = match execute::prepare(pipeline, &runtime, Some(&store.objects)) {
        Ok(p) => p,
        Err(diags) => return Ok(report_diagnostics(&diags, false)),
    };
    let (package, _) = match publish(&prepared, &store) {
        Ok(published) => published,
        Err(ExecuteError::Data(diags)) => return Ok(report_diagnostics(&diags, false)),
        Err(e) => return Err(e.into()),
    };
    let options = KfpOptions {
        image: image.clone(),
        package: package.to_hex(),
        objects: objects.clone(),
        metadata: metadata.clone(),
        env: env.clone(),
        secret_env: secret_env.clone(),
        pod_retries: *pod_retries,
        default_memory: memory.unwrap_or(sluice_runtime::Limits::DEFAULT_MEMORY),
        sluice_version: env!("CARGO_PKG_VERSION").into(),
    };
    let exported = kfp::export(&prepared.plan, &prepared.spec.limits, &options)?;
    let header = format!(
        "PIPELINE DEFINITION\nName: {}\nExported by sluice {} from {}: Kubeflow Pipelines v2 IR.\nPublished pipeline: sha256:{} in {objects} (metadata {metadata}).\nEach task runs `sluice step exec`; see docs/cluster.md.",
        kfp::kfp_name(&prepared.plan.name),
        env!("CARGO_PKG_VERSION"),
        pipeline.display(),
        package.to_hex(),
    );
    let yaml = exported.to_yaml(&header);
    match output {
        Some(path) => {
            std::fs::write(path, &yaml).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout().write_all(yaml.as_bytes())?,
    }
    eprintln!(
        "{} {} step(s) of {} as Kubeflow Pipelines v2{}; published pipeline sha256:{}",
        ui::paint("32", "exported"),
        prepared.plan.steps.len(),
        prepared.plan.name,
        output
            .as_ref()
            .map(|p| format!(" to {}", p.display()))
            .unwrap_or_default(),
        package.short(12)
    );
    Ok(ExitCode::SUCCESS)
}
