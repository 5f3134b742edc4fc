//! `sluice serve`: registered models behind the Open Inference Protocol v2
//! and MLflow's scoring endpoint.

use super::check::{parse_duration, parse_size};
use super::run::{default_store_dir, open_store};
use crate::CliContext;
use anyhow::Context as _;
use clap::Args;
use sluice_serve::{BatchConfig, LogConfig, ServeConfig, Server, VariantKey};
use sluice_store::{Digest, ModelRef};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const AFTER_HELP: &str = "\
Endpoints (Open Inference Protocol v2, as KServe and Triton clients expect):
  GET  /v2/health/live, /v2/health/ready, /v2
  GET  /v2/models/NAME[/versions/V]          inputs and outputs (name, datatype, shape)
  GET  /v2/models/NAME[/versions/V]/ready
  POST /v2/models/NAME[/versions/V]/infer    one tensor per input column, or one [rows, columns] tensor
  POST /invocations                          MLflow's scoring API (dataframe_split, dataframe_records,
                                             instances, inputs) for the first --model
  GET  /metrics                              Prometheus: requests, errors, latency, batch sizes
  GET  /version                              MLflow's: the server version

With --grpc-addr, the same protocol over gRPC (inference.GRPCInferenceService:
ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata,
ModelInfer with typed or raw tensor contents), as tritonclient.grpc and
KServe's InferenceGRPCClient call it; same models, batching, logging and
metrics.

Limits: request bodies (and gRPC messages) up to --max-body; headers within
--header-timeout, which also closes idle keep-alive connections; bodies
within --body-timeout (408); predictions within --timeout (504); at most
--max-connections open per port (at the limit the connection idle longest
is closed for a new one; when every connection is busy, new ones wait).
On SIGTERM the server stops accepting, answers the requests in flight with
`Connection: close`, writes the request log and serving statistics, then
exits.

Each request runs the model's recorded transform component (the same Wasm
bytes and fitted state as in training), then its ONNX graph. When an alias
moves (`sluice models promote`, `rollback`), the server switches to the new
version within --reload-every; requests in flight finish on the old one.
Sampled requests are logged to the store for `sluice monitor`. Every
--stats-every, the requests answered per model version (count, 4xx and 5xx
errors, latency histogram) are written to the store as serving statistics,
which promotion gates sum over every server.

Sticky variants: a --canary split is decided per request by its variant key
when it has one (--variant-key, default the `sluice-variant-key` header):
the same key gets the same side on every server and after restarts.
Without a key the side is drawn at random. Every answer names its side in
a `sluice-variant: primary|canary` header, beside `sluice-model-version`.

Shadow traffic: with --shadow NAME@ALIAS, every request NAME's primary
answers is copied to that version after the answer is made; the client
only ever gets the primary's answer. The two are compared (labels, or
values within 1e-6 relative) and counted in /metrics
(sluice_shadow_compared_total, _disagreed_total, _dropped_total,
_errors_total) and in the serving statistics under the role `shadow`.

Examples:
  sluice serve --model breast-cancer@production
  sluice serve --model breast-cancer@production --canary breast-cancer@staging=10 --addr 0.0.0.0:8080
  sluice serve --model breast-cancer@production --grpc-addr 127.0.0.1:8081
  sluice serve --model breast-cancer@production --shadow breast-cancer@staging
  sluice serve --model breast-cancer@production --canary breast-cancer@staging=50 \\
       --variant-key header:x-user-id
  curl -s localhost:8080/v2/models/breast-cancer
  curl -s localhost:8080/invocations -H 'content-type: application/json' \\
       -d '{\"dataframe_records\": [{\"radius_mean\": 17.99, ...}]}'";

/// Arguments of `sluice serve`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct ServeArgs {
    /// A model to serve, under its name: NAME@ALIAS (follows the alias),
    /// NAME:VERSION (pinned) or NAME (the latest version). Repeatable.
    #[arg(
        long = "model",
        value_name = "NAME@ALIAS",
        required_unless_present = "artifacts"
    )]
    models: Vec<ModelRef>,

    /// Serve an unregistered model as NAME version 0: NAME=sha256:HEX names
    /// its stored card (JSON, as the registry keeps cards; its ONNX bytes
    /// and transform component in the same store). Never reloaded; takes no
    /// canary or shadow. Hidden: it exists for `std:infra-validate`, which
    /// serves a candidate before it is registered.
    #[arg(long = "artifact", value_name = "NAME=sha256:HEX", value_parser = parse_artifact, hide = true)]
    artifacts: Vec<(String, Digest)>,

    /// Send PERCENT of NAME's requests to another version: NAME@ALIAS=PERCENT
    /// (e.g. breast-cancer@staging=10). Responses name the version that
    /// answered.
    #[arg(long = "canary", value_name = "NAME@ALIAS=PERCENT", value_parser = parse_canary)]
    canaries: Vec<(ModelRef, f64)>,

    /// Where a request's variant key is read, to keep its side of a
    /// --canary split: `header:NAME` (on gRPC, the metadata entry NAME) or
    /// `field:COLUMN` (that input's value in the request's first row). A
    /// key's side is SHA-256(canary reference, key) against the share: the
    /// same on every server and after restarts. Requests without a key are
    /// drawn at random.
    #[arg(long, value_name = "header:NAME|field:COLUMN", default_value_t = VariantKey::default())]
    variant_key: VariantKey,

    /// Copy every request NAME's primary answers to another version,
    /// NAME@ALIAS (e.g. breast-cancer@staging), after the answer is made:
    /// the shadow answers no client; its predictions are compared with the
    /// primary's and counted (/metrics, serving statistics). One per
    /// served model; follows its alias like --model.
    #[arg(long = "shadow", value_name = "NAME@ALIAS")]
    shadows: Vec<ModelRef>,

    /// Most shadow predictions queued or running at once; a copy beyond
    /// them is dropped and counted (sluice_shadow_dropped_total), so a
    /// slow shadow never holds up the primary.
    #[arg(long, default_value_t = 64, value_name = "N")]
    shadow_max_inflight: usize,

    /// Address to listen on (port 0 picks a free port; the chosen address
    /// is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,

    /// Also answer the Open Inference Protocol over gRPC, on this address
    /// (KServe's convention is port 8081, Triton's 8001; port 0 picks a
    /// free one, printed as `grpc on ADDR`).
    #[arg(long, value_name = "ADDR")]
    grpc_addr: Option<SocketAddr>,

    /// Store folder [default: .sluice in the current folder].
    #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,

    /// Most rows one batch of concurrent requests may hold.
    #[arg(long, default_value_t = 64, value_name = "ROWS")]
    max_batch: usize,

    /// Longest a request waits for others to fill its batch (0: it runs as
    /// soon as no batch is running; requests that queue meanwhile are
    /// batched). Set, every request goes to the --workers threads.
    #[arg(long, default_value = "0", value_parser = parse_delay, value_name = "DURATION")]
    batch_delay: Duration,

    /// Threads running the predictions of requests of --max-batch rows or
    /// more (smaller ones run on the thread that read them) [default: one
    /// per core].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,

    /// Threads serving HTTP connections, each with its own single-threaded
    /// runtime. A connection stays on one for its life, and its requests
    /// of fewer than --max-batch rows are predicted there [default: one
    /// per core].
    #[arg(long, value_name = "N")]
    io_threads: Option<usize>,

    /// Fraction of requests logged to the store, 0 to 1.
    #[arg(long, default_value_t = 1.0, value_name = "FRACTION")]
    log_sample: f64,

    /// Write logged requests to the store every this often (and at exit).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    log_every: Duration,

    /// Largest request body accepted (413 above it).
    #[arg(long, default_value = "16MiB", value_parser = parse_size, value_name = "SIZE")]
    max_body: u64,

    /// Longest a request may take (504 after it).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,

    /// Longest a client may take to send a request's headers, and may keep
    /// an idle connection open between requests; the connection is closed
    /// after it (slow or silent clients cannot hold connections).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    header_timeout: Duration,

    /// Longest a request's body may take to arrive (408 after it).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    body_timeout: Duration,

    /// Most connections open at once, per port. At the limit a new
    /// connection closes the one idle longest (so health checks get
    /// through a flood of idle connections); when all are busy answering,
    /// new ones wait to be accepted.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_connections: usize,

    /// How often aliases are looked up again, to follow promotions.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    reload_every: Duration,

    /// Write serving statistics to the store every this often (and at
    /// exit): per model version, requests, 4xx and 5xx errors and a
    /// latency histogram, summed over every server for promotion gates.
    /// `off` writes none.
    #[arg(long, default_value = "10s", value_parser = parse_stats_every, value_name = "DURATION|off")]
    stats_every: StatsEvery,
}

/// `--stats-every`: a period, or none (`off`).
#[derive(Debug, Clone, Copy)]
struct StatsEvery(Option<Duration>);

fn parse_delay(s: &str) -> Result<Duration, String> {
    if s.trim_start_matches('0')
        .trim_end_matches(['m', 's'])
        .is_empty()
    {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

/// `--stats-every`: a duration, or `off`.
fn parse_stats_every(s: &str) -> Result<StatsEvery, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(StatsEvery(None));
    }
    let every = parse_duration(s)?;
    if every.is_zero() {
        return Err("a period of 0 would write constantly; give a duration, or `off`".into());
    }
    Ok(StatsEvery(Some(every)))
}

/// `--artifact NAME=sha256:HEX`.
fn parse_artifact(s: &str) -> Result<(String, Digest), String> {
    let bad = || format!("`{s}` is not NAME=sha256:HEX");
    let (name, card) = s.split_once('=').ok_or_else(bad)?;
    let name = match name.parse::<ModelRef>() {
        Ok(ModelRef::Latest(name)) => name,
        _ => return Err(bad()),
    };
    let card: Digest = card.parse().map_err(|_| bad())?;
    Ok((name, card))
}

fn parse_canary(s: &str) -> Result<(ModelRef, f64), String> {
    let (reference, percent) = s.rsplit_once('=').ok_or_else(|| {
        format!("`{s}` is not NAME@ALIAS=PERCENT (e.g. breast-cancer@staging=10)")
    })?;
    let reference: ModelRef = reference.parse().map_err(|e| format!("{e}"))?;
    let percent: f64 = percent
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{percent}` is not a percentage (0 to 100)"))?;
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!("{percent} is not a percentage (0 to 100)"));
    }
    Ok((reference, percent))
}

/// Runs `sluice serve` until Ctrl-C or SIGTERM.
pub(crate) fn run(ctx: &CliContext, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.log_sample) {
        anyhow::bail!(
            "--log-sample {} is not a fraction between 0 and 1",
            args.log_sample
        );
    }
    if args.io_threads == Some(0) {
        anyhow::bail!("--io-threads 0: at least one thread must serve connections");
    }
    crate::allocator::return_memory_at_once();
    let store = Arc::new(open_store(
        &args.store.clone().unwrap_or_else(default_store_dir),
    )?);
    let runtime = Arc::new(ctx.runtime()?);
    let config = ServeConfig {
        models: args.models.clone(),
        artifacts: args.artifacts.clone(),
        canaries: args.canaries.clone(),
        variant_key: args.variant_key.clone(),
        shadows: args.shadows.clone(),
        shadow_max_inflight: args.shadow_max_inflight,
        addr: args.addr,
        grpc_addr: args.grpc_addr,
        batch: BatchConfig {
            max_rows: args.max_batch.max(1),
            max_delay: args.batch_delay,
            workers: args.workers.unwrap_or_else(sluice_serve::one_per_core),
        },
        log: LogConfig {
            sample: args.log_sample,
            flush_every: args.log_every,
            ..LogConfig::default()
        },
        max_body: usize::try_from(args.max_body).unwrap_or(usize::MAX),
        timeout: args.timeout,
        reload_every: args.reload_every,
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        max_connections: args.max_connections,
        io_threads: args.io_threads.unwrap_or_else(sluice_serve::one_per_core),
        stats_every: args.stats_every.0,
    };
    // Accepting, gRPC, hot reload and start-up run here; HTTP connections
    // are served on the server's own --io-threads.
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice-serve")
        .build()
        .context("starting the async runtime")?;
    tokio.block_on(async move {
        let server = Server::bind(config, store, runtime).await?;
        // Models are loaded: what start-up alone touched can go.
        sluice_serve::release_startup_pages();
        for (name, version, canary) in server.serving() {
            match canary {
                Some((c, p)) => eprintln!(
                    "serving {name}: version {version} ({}%), canary version {c} ({p}%)",
                    100.0 - p
                ),
                None => eprintln!("serving {name}: version {version}"),
            }
        }
        for (name, version) in server.shadows() {
            eprintln!("shadowing {name}: version {version} predicts a copy of each request");
        }
        // On stdout, for scripts that started us on port 0: the gRPC
        // address if any, then (last) the HTTP one.
        if let Some(grpc) = server.grpc_addr() {
            println!("grpc on {grpc}");
        }
        println!("listening on http://{}", server.local_addr());
        server.run(sluice_serve::shutdown_signal()).await?;
        eprintln!("stopped; logged requests and serving statistics are written to the store");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
