//! `sluice-edge`: runs a sluice bundle on a device.
//!
//! A bundle (`sluice bundle`) holds one model version, its transform and
//! any pipeline steps, compiled ahead of time for the device. This binary
//! has no compiler (wasmtime's runtime only), no store, no network client
//! and no Python: it checks a bundle (digests, target, engine, signature
//! when keys are trusted) before it loads anything, then predicts from CSV
//! rows (`predict`) or serves the Open Inference Protocol v2 (`serve`),
//! taking newer bundles from a folder without ever being without a model.

mod loaded;
mod predict;
mod server;
mod steps;
mod updates;

use clap::{Parser, Subcommand};
use sluice_bundle::PublicKey;
use sluice_runtime::Runtime;
use sluice_serve::LogConfig;
use sluice_serve::reqlog::{NoCounters, RequestLog, folder::FolderSink};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Runs a sluice bundle on a device: predicts from CSV rows, or serves the
/// Open Inference Protocol v2, with no compiler, store or Python.
#[derive(Debug, Parser)]
#[command(
    name = "sluice-edge",
    version,
    after_help = "\
Every bundle is checked before anything in it runs: each file's SHA-256
against the manifest, the manifest against its digest, the target (this
machine's architecture) and the engine (this binary's), and with --trust
the manifest's ed25519 signature by one of the trusted keys (an unsigned
bundle is then refused).

Examples:
  sluice-edge predict model.bundle < rows.csv > predictions.csv
  sluice-edge serve --bundle model.bundle --addr 0.0.0.0:8080
  sluice-edge serve --bundle-dir /var/lib/sluice --trust team.pub
  sluice-edge serve --bundle model.bundle --request-log /var/log/sluice
    (later, on a machine with the store: sluice monitor --model NAME@ALIAS
     --ingest DIR-copied-off-the-device)
  sluice-edge verify model.bundle --trust team.pub
  sluice-edge run model.bundle --input raw=today.csv --output-dir out
    (the pipeline steps bundled with --pipeline SPEC --steps a,b)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Accept only bundles signed by this ed25519 public key (PEM;
    /// `sluice bundle keygen` writes one). Repeat for several keys.
    #[arg(long, global = true, value_name = "PUBKEY")]
    trust: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks a bundle and loads it (with its self-test), then says what
    /// it holds; exits 1 with the reason if it would be refused.
    Verify {
        /// The bundle.
        bundle: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Predicts for CSV rows (a header, then the model's raw columns) read
    /// from --input or stdin; writes the prediction columns as CSV to
    /// stdout.
    Predict {
        /// The bundle.
        bundle: PathBuf,
        /// The rows [default: stdin].
        #[arg(long, short, value_name = "FILE.csv")]
        input: Option<PathBuf>,
    },
    /// Runs the pipeline steps the bundle carries (`sluice bundle
    /// --pipeline SPEC --steps a,b`), in order, as `sluice run` would: to
    /// prepare data, or to check it against the model's training schema.
    /// The first step that fails stops the run (exit status 1).
    #[command(after_help = "\
A step's input comes from an earlier step, from the bundle (an artifact of
the run that trained the model, such as its schema), or from a file given
here with --input: a [data] entry of the pipeline by its name (`raw`), or a
step left out by STEP.PORT. Tables are read from CSV or Parquet. With
--output-dir each output is written as DIR/STEP/PORT.csv (tables), .json
(documents), .onnx (models) or .bin (files).

Example, with a bundle of the flagship's ingest, statistics and validate:
  sluice-edge run bc.bundle --input raw=today.csv
  ✓ ingest (4.9ms)
  ✓ statistics (2.8ms)
  ✗ validate (402µs): invalid input: the data does not match the schema (1 problem): …")]
    Run {
        /// The bundle.
        bundle: PathBuf,
        /// A file for the steps' input NAME (repeat for each).
        #[arg(long, short, value_name = "NAME=FILE", value_parser = parse_input)]
        input: Vec<(String, PathBuf)>,
        /// Write every step's outputs under this folder.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// Print JSON (each step's state, error, metrics and files).
        #[arg(long)]
        json: bool,
    },
    /// Serves the Open Inference Protocol v2 over HTTP: /v2/health/live,
    /// /v2/health/ready, /v2, /v2/models/NAME[/versions/V][/ready|/infer],
    /// and /v2/edge/bundle (the bundle in use, the last one refused).
    Serve {
        /// The bundle to serve.
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "bundle_dir",
            conflicts_with = "bundle_dir"
        )]
        bundle: Option<PathBuf>,
        /// Serve the newest *.bundle of this folder, switching to newer
        /// ones as they appear (each checked, loaded and self-tested first;
        /// one that fails is refused and the one in use stays).
        #[arg(long, value_name = "DIR")]
        bundle_dir: Option<PathBuf>,
        /// How often to look for a newer bundle.
        #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
        poll: Duration,
        /// The address to listen on (port 0: any free port, printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Largest request body (bytes; K, M, G suffixes: 32M).
        #[arg(long, default_value = "32MiB", value_parser = parse_bytes, value_name = "SIZE")]
        max_body: u64,
        /// Connections open at once; more wait.
        #[arg(long, default_value_t = 64, value_name = "N")]
        max_connections: usize,
        /// Log answered requests (raw inputs, predictions, request id,
        /// time, model version) as Parquet files in this folder, for
        /// `sluice monitor --ingest DIR` on a machine with the store.
        #[arg(long, value_name = "DIR")]
        request_log: Option<PathBuf>,
        /// Fraction of requests logged, 0 to 1.
        #[arg(
            long,
            default_value_t = 1.0,
            value_name = "FRACTION",
            requires = "request_log"
        )]
        log_sample: f64,
        /// Write logged requests to a new file this often (and at exit).
        #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION", requires = "request_log")]
        log_every: Duration,
        /// Most space the log files take; the oldest are removed first.
        #[arg(long, default_value = "256MiB", value_parser = parse_bytes, value_name = "SIZE", requires = "request_log")]
        log_max_bytes: u64,
    },
}

/// `NAME=FILE` of `run --input`.
fn parse_input(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, file)) if !name.is_empty() && !file.is_empty() => {
            Ok((name.to_string(), PathBuf::from(file)))
        }
        _ => Err(format!(
            "`{text}` is not NAME=FILE (the input's name, `=`, a file: raw=today.csv)"
        )),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| text.split_at(i))
        .unwrap_or((text, "s"));
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (500ms, 2s, 1m)"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{text}` is not a duration (500ms, 2s, 1m)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// A size in bytes: a whole number with an optional K, M or G (powers of
/// 1024; `KiB`, `MB` … are read the same).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a size (4096, 512K, 32M, 1G)");
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches('B')
        .trim_end_matches('I')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift).ok_or_else(bad)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn trusted(cli: &Cli) -> Result<Vec<PublicKey>, String> {
    cli.trust
        .iter()
        .map(|p| PublicKey::read(p).map_err(|e| format!("--trust: {e}")))
        .collect()
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn run(cli: &Cli) -> Result<ExitCode, String> {
    let trusted = trusted(cli)?;
    let runtime = Runtime::precompiled_only().map_err(|e| e.to_string())?;
    match &cli.command {
        Command::Verify { bundle, json } => {
            let l = loaded::load(&read(bundle)?, &trusted, &runtime)
                .map_err(|e| format!("{}: {e}", bundle.display()))?;
            if *json {
                let summary = serde_json::json!({
                    "bundle": bundle,
                    "sha256": l.sha256,
                    "model": {"name": l.model.name, "version": l.model.version},
                    "target": l.manifest.target,
                    "engine": l.manifest.engine,
                    "components": l.manifest.components,
                    "signed_by": l.signed_by,
                    "selftest_rows": l.selftest_rows,
                    "load_ms": l.load_time.as_secs_f64() * 1e3,
                });
                println!("{}", serde_json::to_string_pretty(&summary).expect("JSON"));
            } else {
                println!(
                    "{}: ok — {}; target {}; {}",
                    bundle.display(),
                    updates::describe(&l),
                    l.manifest.target,
                    match &l.signed_by {
                        Some(k) => format!("signed by trusted key {k}"),
                        None => "signature not checked (no --trust)".into(),
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Predict { bundle, input } => {
            let l = loaded::load(&read(bundle)?, &trusted, &runtime)
                .map_err(|e| format!("{}: {e}", bundle.display()))?;
            let rows = match input {
                Some(p) => read(p)?,
                None => {
                    let mut buf = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf)
                        .map_err(|e| format!("reading stdin: {e}"))?;
                    buf
                }
            };
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            predict::predict_csv(&rows, &l.model, out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            bundle,
            input,
            output_dir,
            json,
        } => {
            let l = loaded::load(&read(bundle)?, &trusted, &runtime)
                .map_err(|e| format!("{}: {e}", bundle.display()))?;
            let ok = steps::run(&l, input, output_dir.as_deref(), *json)
                .map_err(|e| format!("{}: {e}", bundle.display()))?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Serve {
            bundle,
            bundle_dir,
            poll,
            addr,
            max_body,
            max_connections,
            request_log,
            log_sample,
            log_every,
            log_max_bytes,
        } => {
            if !(0.0..=1.0).contains(log_sample) {
                return Err(format!(
                    "--log-sample {log_sample} is not a fraction between 0 and 1"
                ));
            }
            let first = match (bundle, bundle_dir) {
                (Some(file), _) => {
                    let l = loaded::load(&read(file)?, &trusted, &runtime)
                        .map_err(|e| format!("{}: {e}", file.display()))?;
                    eprintln!("serving {} ({})", file.display(), updates::describe(&l));
                    l
                }
                (None, Some(dir)) => updates::first(dir, &trusted, &runtime)?,
                (None, None) => unreachable!("clap requires one"),
            };
            let current = Arc::new(server::Current::new(first));
            if let Some(dir) = bundle_dir {
                let (dir, every, current, runtime, trusted) = (
                    dir.clone(),
                    *poll,
                    current.clone(),
                    runtime.clone(),
                    trusted.clone(),
                );
                std::thread::Builder::new()
                    .name("sluice-edge-updates".into())
                    .spawn(move || updates::watch(dir, every, trusted, runtime, current))
                    .map_err(|e| format!("starting the update thread: {e}"))?;
            }
            let log = match request_log {
                Some(dir) => {
                    let sink =
                        FolderSink::open(dir, *log_max_bytes, format!("sluice-edge@{addr}"))?;
                    eprintln!(
                        "logging requests to {} (at most {log_max_bytes} bytes)",
                        dir.display()
                    );
                    Some(RequestLog::start(
                        Box::new(sink),
                        LogConfig {
                            sample: *log_sample,
                            flush_every: *log_every,
                            ..LogConfig::default()
                        },
                        Arc::new(NoCounters),
                    ))
                }
                None => None,
            };
            let service = Arc::new(server::Service::new(current, log));
            let limits = server::Limits {
                max_body: usize::try_from(*max_body).unwrap_or(usize::MAX),
                max_connections: *max_connections,
                header_timeout: Duration::from_secs(10),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting the server: {e}"))?;
            let served = rt.block_on(async {
                let listener = server::bind(*addr)
                    .await
                    .map_err(|e| format!("listening on {addr}: {e}"))?;
                server::serve(listener, service.clone(), limits)
                    .await
                    .map_err(|e| format!("serving: {e}"))
            });
            // What the request log holds is written whatever ended serving.
            service.close();
            served?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
