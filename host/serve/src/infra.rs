//! The serving probe of `std:infra-validate`: a candidate model started in
//! the real model server, a child `sluice serve` on loopback, and measured
//! from outside (start-up time, answers to example rows, latency and
//! throughput under a bounded load, peak resident memory).
//!
//! A child process, not a server in this process, because only a process
//! of its own has a true start-up time and peak memory, and a model that
//! exhausts memory or hangs takes only the child down. The host measures;
//! the step decides what is good enough.
//!
//! The probe runs on a thread of its own with its own async runtime, so it
//! works whatever runtime awaits it (the step's runtime has timers only)
//! and the child's parent thread lives exactly as long as the probe: on
//! Linux the child gets `SIGKILL` when that thread ends
//! (`PR_SET_PDEATHSIG`), and the child is killed when the probe's future
//! is dropped half way (a step that timed out), so it never outlives the
//! probe.

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use serde_json::{Map, Value, json};
use sluice_runtime::outcome::{ProbeAnswer, ProbeOptions, ServingProbe};
use sluice_runtime::{Digest, ModelArtifact};
use sluice_store::Store;
use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// The name the candidate is served under (`/v2/models/candidate/infer`).
pub const MODEL_NAME: &str = "candidate";

/// Longest from starting the server to its answering ready: loading a
/// model compiles its transform component, which takes seconds on a cold
/// compile cache. The step's own time limit bounds the whole probe too.
const STARTUP_LIMIT: Duration = Duration::from_secs(120);

/// Longest a stopped (`SIGTERM`) server may take to drain and exit before
/// it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Longest one request may take before it counts as failed (the server's
/// own `--timeout` answers 504 at 30 s).
const REQUEST_LIMIT: Duration = Duration::from_secs(40);

/// How often the server's peak resident memory is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// How much of the server's standard error is kept for error messages
/// (its end).
const STDERR_TAIL: usize = 8 << 10;

/// Most clients sending at once, whatever the options ask: each is a
/// connection and a task of this process.
const MAX_CONCURRENCY: usize = 256;

/// Most rows one load request holds, whatever the options ask (the
/// server's default body limit is 16 MiB).
const MAX_ROWS_PER_REQUEST: usize = 10_000;

/// Most bytes of load request bodies built ahead of the load: the
/// requests cycle through the examples; past this the cycle is shorter.
const MAX_LOAD_BODY_BYTES: usize = 32 << 20;

/// Starts a model in a child `sluice serve` and measures it: the
/// [`ServingProbe`] the `sluice` binary injects into pipeline runs, so that
/// `std:infra-validate` can check a candidate on the real serving path
/// (signature conform, the recorded transform under the server's limits,
/// batching, the Open Inference Protocol over HTTP) before it is pushed.
///
/// What a probe does, in order:
/// 1. Puts the model's ONNX bytes, then its card, into the store's objects
///    (content-addressed: a stored model's ONNX bytes are already there; its
///    card, written again, may differ from the stored one in the last digit
///    of a float, an object `sluice gc` removes once nothing names it).
/// 2. Runs `EXE (--cache-dir DIR | --no-compile-cache) serve --artifact
///    candidate=sha256:CARD --store STORE --addr 127.0.0.1:0 --log-sample 0
///    --stats-every off` (see [`ServerProbe::command_line`]) with
///    `SLUICE_METADATA_URL` set when a metadata location was given, reads
///    `listening on http://ADDR` from
///    its standard output and polls `GET /v2/health/ready` until it
///    answers 200: the start-up time.
/// 3. Sends each row of the examples as its own inference request, in
///    order, on one keep-alive connection: the `answers`.
/// 4. Sends the load: `concurrency` keep-alive clients until
///    `duration_ms` has passed or `max_requests` were sent, each request
///    `rows_per_request` consecutive example rows (wrapping around).
/// 5. Reads the server's peak resident memory (`VmHWM`) every 50 ms
///    throughout, and kills the server when it passes
///    `memory_ceiling_bytes`.
/// 6. Stops the server with `SIGTERM` (it drains), killing it after 10 s.
///
/// The contract: `Err` only when no server could be started at all (the
/// model could not be stored, the executable could not be run, the
/// examples cannot be sent as requests). A server that exits before it is
/// ready, or is not ready within 120 s, is an `Ok` whose report has
/// `"started": false` and `"error"` (with the end of the server's standard
/// error), every example answered with status 0 and that error. A server
/// that exits during the probe is an `Ok` whose report's `error` says so;
/// the examples not yet answered have status 0.
#[derive(Clone)]
pub struct ServerProbe {
    exe: PathBuf,
    store_dir: PathBuf,
    metadata_url: Option<String>,
    cache_dir: Option<PathBuf>,
    store: Arc<Store>,
}

impl std::fmt::Debug for ServerProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerProbe")
            .field("exe", &self.exe)
            .field("store_dir", &self.store_dir)
            .field("metadata_url", &self.metadata_url.as_ref().map(|_| "…"))
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

impl ServerProbe {
    /// A probe that starts `exe` (the `sluice` binary: `std::env::current_exe()`)
    /// as `sluice serve` on `store`, which the child opens as `--store
    /// store_dir` (a folder, `s3://…` or store file, as given to the
    /// parent) with its metadata at `metadata_url` when given (a PostgreSQL
    /// URL or a SQLite file: pass the parent's resolved location, so that
    /// a spec's `metadata` or `--metadata` reaches the child too). It goes
    /// in the child's `SLUICE_METADATA_URL`, not its arguments, which any
    /// user of the machine can read. `cache_dir` is the compiled-component
    /// cache (`--cache-dir`); `None` runs the child with
    /// `--no-compile-cache`, as the parent runs without one. The child
    /// inherits the rest of the environment (`SLUICE_CACHE_KEY`, `AWS_*`, …).
    pub fn new(
        exe: PathBuf,
        store_dir: PathBuf,
        metadata_url: Option<String>,
        cache_dir: Option<PathBuf>,
        store: Arc<Store>,
    ) -> Self {
        ServerProbe {
            exe,
            store_dir,
            metadata_url,
            cache_dir,
            store,
        }
    }

    /// The arguments the server is started with (after the executable), for
    /// the stored card `card`.
    pub fn command_line(&self, card: &Digest) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        match &self.cache_dir {
            Some(dir) => args.extend(["--cache-dir".into(), dir.into()]),
            None => args.push("--no-compile-cache".into()),
        }
        args.extend([
            "serve".into(),
            "--artifact".into(),
            format!("{MODEL_NAME}={card}").into(),
            "--store".into(),
            self.store_dir.clone().into(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--log-sample".into(),
            "0".into(),
            "--stats-every".into(),
            "off".into(),
        ]);
        args
    }
}

impl ServingProbe for ServerProbe {
    fn probe(
        &self,
        model: Arc<ModelArtifact>,
        examples: RecordBatch,
        options: ProbeOptions,
    ) -> Pin<Box<dyn Future<Output = Result<ProbeAnswer, String>> + Send + '_>> {
        let probe = self.clone();
        Box::pin(async move {
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("sluice-probe".into())
                .spawn(move || on_own_thread(probe, model, examples, options, tx))
                .map_err(|e| format!("starting the serving probe's thread: {e}"))?;
            rx.await.unwrap_or_else(|_| {
                Err("the serving probe stopped unexpectedly (its thread panicked)".into())
            })
        })
    }
}

/// Runs a probe on this (new) thread's own runtime; gives up, killing the
/// server, as soon as nobody waits for the answer any more.
fn on_own_thread(
    probe: ServerProbe,
    model: Arc<ModelArtifact>,
    examples: RecordBatch,
    options: ProbeOptions,
    mut tx: tokio::sync::oneshot::Sender<Result<ProbeAnswer, String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Err(format!("starting the serving probe's runtime: {e}")));
            return;
        }
    };
    let answer = runtime.block_on(async {
        tokio::select! {
            answer = run(&probe, model, examples, options) => Some(answer),
            () = tx.closed() => None,
        }
    });
    if let Some(answer) = answer {
        let _ = tx.send(answer);
    }
}

/// The end of a probe's measuring, and why.
enum End {
    /// Every phase ran.
    Done,
    /// Not ready within [`STARTUP_LIMIT`].
    NotReady,
    /// The server exited by itself.
    Exited(std::process::ExitStatus),
    /// Its resident memory passed the ceiling (bytes); it was killed.
    OverCeiling(u64),
}

/// What was observed so far; phases fill it in as they go, so that a
/// probe cut short still reports what it saw.
#[derive(Default)]
struct Observed {
    /// Spawn to ready.
    startup: Option<Duration>,
    /// One per example answered so far, in order.
    replies: Vec<Reply>,
    /// The load, once started: when, and its counters.
    load: Option<(Instant, Arc<LoadCounters>)>,
    /// When the load's last client finished.
    load_ended: Option<Instant>,
}

/// What one request got.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    /// An HTTP answer: status and body.
    Http(u16, Bytes),
    /// No answer: why (a connection error, a timeout, not sent).
    Failed(String),
}

/// Counters the load's clients share.
#[derive(Default)]
struct LoadCounters {
    /// Requests claimed (may pass the limit by the number of clients).
    issued: AtomicU64,
    /// Requests answered or failed.
    completed: AtomicU64,
    /// Requests not answered 200.
    errors: AtomicU64,
    /// Latency of each request answered 200, in milliseconds.
    latencies: Mutex<Vec<f64>>,
}

async fn run(
    probe: &ServerProbe,
    model: Arc<ModelArtifact>,
    examples: RecordBatch,
    options: ProbeOptions,
) -> Result<ProbeAnswer, String> {
    let concurrency = options.concurrency.clamp(1, MAX_CONCURRENCY);
    let rows_per_request = options.rows_per_request.clamp(1, MAX_ROWS_PER_REQUEST);
    let columns = request_columns(&examples)?;
    let example_bodies: Vec<Bytes> = (0..examples.num_rows())
        .map(|row| infer_body(&columns, examples.num_rows(), row, 1))
        .collect();
    let load_bodies = load_bodies(&columns, examples.num_rows(), rows_per_request);

    // The model, where the child finds it.
    let store = probe.store.clone();
    let card = tokio::task::spawn_blocking(move || {
        let onnx = store.objects.put(model.onnx())?;
        store.objects.put(model.stored_card(&onnx).as_bytes())
    })
    .await
    .map_err(|e| format!("storing the model for the server: {e}"))?
    .map_err(|e| format!("storing the model for the server: {e}"))?;

    let mut command = Command::new(&probe.exe);
    command
        .args(probe.command_line(&card))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(url) = &probe.metadata_url {
        command.env("SLUICE_METADATA_URL", url);
    }
    die_with_parent(&mut command);
    let spawned = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("`{} serve` could not be run: {e}", probe.exe.display()))?;
    let pid = child.id();
    let stderr = Arc::new(Mutex::new(Vec::<u8>::new()));
    let stderr_read = child
        .stderr
        .take()
        .map(|out| tokio::spawn(keep_tail(out, stderr.clone())));
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(find_address(out, addr_tx));
    }
    let peak = Arc::new(AtomicU64::new(0));
    let (over_tx, over_rx) = tokio::sync::oneshot::channel::<u64>();
    let measurable = pid.is_some_and(|pid| vm_hwm(pid).is_some());
    if let Some(pid) = pid.filter(|_| measurable) {
        tokio::spawn(watch_memory(
            pid,
            peak.clone(),
            options.memory_ceiling_bytes,
            over_tx,
        ));
    }

    let mut observed = Observed::default();
    let end = {
        let phases = phases(
            &mut observed,
            spawned,
            addr_rx,
            &example_bodies,
            load_bodies,
            &options,
            concurrency,
        );
        tokio::select! {
            end = phases => end,
            Ok(status) = child.wait() => End::Exited(status),
            Ok(bytes) = over_rx => End::OverCeiling(bytes),
        }
    };
    let load_ended = observed.load_ended.unwrap_or_else(Instant::now);
    if let Some(pid) = pid.filter(|_| measurable)
        && let Some(bytes) = vm_hwm(pid)
    {
        peak.fetch_max(bytes, Ordering::Relaxed);
    }
    let exited = match &end {
        End::Exited(status) => Some(*status),
        _ => None,
    };
    if matches!(end, End::OverCeiling(_)) {
        let _ = child.start_kill();
    }
    if exited.is_none() {
        stop(&mut child).await;
    }
    // Everything the server wrote before it ended.
    if let Some(read) = stderr_read {
        let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
    }
    let tail = String::from_utf8_lossy(&stderr.lock().unwrap())
        .trim()
        .to_string();

    let started = observed.startup.is_some();
    let (error, killed) = match end {
        End::Done => (None, None),
        End::NotReady => (
            Some(format!(
                "the server was not ready within {} s{}",
                STARTUP_LIMIT.as_secs(),
                said(&tail)
            )),
            None,
        ),
        End::Exited(status) => (
            Some(format!(
                "the server exited ({status}) {}{}",
                if started {
                    "during the probe"
                } else {
                    "before it was ready"
                },
                said(&tail)
            )),
            None,
        ),
        End::OverCeiling(ceiling) => (
            None,
            Some(format!(
                "resident memory passed the ceiling of {ceiling} bytes"
            )),
        ),
    };
    // Examples never answered: status 0, and why.
    let why = error
        .clone()
        .or_else(|| {
            killed
                .clone()
                .map(|k| format!("the server was killed: {k}"))
        })
        .unwrap_or_else(|| "not sent".into());
    observed.replies.resize(
        examples.num_rows(),
        Reply::Failed(format!("not answered: {why}")),
    );
    let answers = answers_batch(&observed.replies)?;
    let load = match &observed.load {
        Some((began, counters)) => LoadSummary {
            requests: counters.completed.load(Ordering::Relaxed),
            errors: counters.errors.load(Ordering::Relaxed),
            duration: load_ended.saturating_duration_since(*began),
            latencies: std::mem::take(&mut *counters.latencies.lock().unwrap()),
        },
        None => LoadSummary::default(),
    };
    let peak = peak.load(Ordering::Relaxed);
    let report = report(&Measured {
        started,
        error,
        startup: observed.startup,
        peak_rss_bytes: (measurable && peak > 0).then_some(peak),
        killed,
        load,
        concurrency,
        rows_per_request,
    });
    Ok(ProbeAnswer { answers, report })
}

/// `: <the server's standard error>` when it wrote any.
fn said(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; it said: {tail}")
    }
}

/// The probe's phases: wait until ready, answer the examples, the load.
async fn phases(
    observed: &mut Observed,
    spawned: Instant,
    addr: tokio::sync::oneshot::Receiver<SocketAddr>,
    examples: &[Bytes],
    load_bodies: Vec<Bytes>,
    options: &ProbeOptions,
    concurrency: usize,
) -> End {
    let ready = tokio::time::timeout_at((spawned + STARTUP_LIMIT).into(), async {
        // Without an address (its output closed) the server is exiting:
        // the caller sees it exit.
        let Ok(addr) = addr.await else {
            return std::future::pending().await;
        };
        let mut client = Client::new(addr);
        loop {
            if let Ok((200, _)) = client.get("/v2/health/ready").await {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let Ok(mut client) = ready else {
        return End::NotReady;
    };
    observed.startup = Some(spawned.elapsed());

    let path = format!("/v2/models/{MODEL_NAME}/infer");
    for body in examples {
        let reply = match client.post(&path, body.clone()).await {
            Ok((status, body)) => Reply::Http(status, body),
            Err(e) => Reply::Failed(e),
        };
        observed.replies.push(reply);
    }

    if load_bodies.is_empty() || options.max_requests == 0 || options.duration_ms == 0 {
        return End::Done;
    }
    let counters = Arc::new(LoadCounters::default());
    let began = Instant::now();
    observed.load = Some((began, counters.clone()));
    let deadline = began + Duration::from_millis(options.duration_ms);
    let bodies = Arc::new(load_bodies);
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        clients.spawn(load_client(
            Client::new(client.addr),
            path.clone(),
            bodies.clone(),
            counters.clone(),
            options.max_requests,
            deadline,
        ));
    }
    while clients.join_next().await.is_some() {}
    observed.load_ended = Some(Instant::now());
    End::Done
}

/// One client of the load: sends until the deadline or the request limit.
async fn load_client(
    mut client: Client,
    path: String,
    bodies: Arc<Vec<Bytes>>,
    counters: Arc<LoadCounters>,
    max_requests: u64,
    deadline: Instant,
) {
    loop {
        let k = counters.issued.fetch_add(1, Ordering::Relaxed);
        if k >= max_requests || Instant::now() >= deadline {
            return;
        }
        let body = bodies[(k % bodies.len() as u64) as usize].clone();
        let sent = Instant::now();
        let reply = client.post(&path, body).await;
        let took = sent.elapsed().as_secs_f64() * 1e3;
        counters.completed.fetch_add(1, Ordering::Relaxed);
        match reply {
            Ok((200, _)) => counters.latencies.lock().unwrap().push(took),
            _ => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Stops the server: `SIGTERM` (it finishes what is in flight and exits),
/// then `SIGKILL` after [`STOP_GRACE`].
async fn stop(child: &mut Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        unsafe extern "C" {
            fn kill(pid: i32, signal: i32) -> i32;
        }
        const SIGTERM: i32 = 15;
        // SAFETY: `pid` is our child, not yet waited for (so not reused).
        unsafe {
            kill(pid as i32, SIGTERM);
        }
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// On Linux: the child gets `SIGKILL` when the thread that started it ends
/// (this probe's own thread, which ends with the probe or its process).
fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        unsafe extern "C" {
            fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
        }
        const PR_SET_PDEATHSIG: std::ffi::c_int = 1;
        const SIGKILL: std::ffi::c_ulong = 9;
        let parent = std::process::id();
        // SAFETY: between fork and exec only async-signal-safe calls are
        // made: prctl and getppid, no allocation.
        unsafe {
            command.pre_exec(move || {
                if prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died before the call: no signal will come.
                if std::os::unix::process::parent_id() != parent {
                    return Err(std::io::Error::other(
                        "the probe ended before its server started",
                    ));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// Keeps the last [`STDERR_TAIL`] bytes the server writes to `out`.
async fn keep_tail(mut out: tokio::process::ChildStderr, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = out.read(&mut buf).await {
        let mut tail = tail.lock().unwrap();
        tail.extend_from_slice(&buf[..n]);
        let over = tail.len().saturating_sub(STDERR_TAIL);
        tail.drain(..over);
    }
}

/// Reads the server's standard output until `listening on http://ADDR`,
/// sends ADDR, then reads (and drops) the rest so that the server never
/// writes to a closed pipe.
async fn find_address(
    out: tokio::process::ChildStdout,
    addr: tokio::sync::oneshot::Sender<SocketAddr>,
) {
    let mut lines = BufReader::new(out).lines();
    let mut addr = Some(addr);
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(found) = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse::<SocketAddr>().ok())
            && let Some(tx) = addr.take()
        {
            let _ = tx.send(found);
        }
    }
}

/// Samples the peak resident memory of `pid` into `peak` every
/// [`SAMPLE_EVERY`]; past `ceiling`, kills it and says so on `over`.
async fn watch_memory(
    pid: u32,
    peak: Arc<AtomicU64>,
    ceiling: Option<u64>,
    over: tokio::sync::oneshot::Sender<u64>,
) {
    loop {
        let Some(bytes) = vm_hwm(pid) else {
            return;
        };
        peak.fetch_max(bytes, Ordering::Relaxed);
        if let Some(ceiling) = ceiling
            && bytes > ceiling
        {
            let _ = over.send(ceiling);
            return;
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// The peak resident memory of process `pid` in bytes, where the system
/// says (Linux: `VmHWM` in `/proc/PID/status`).
fn vm_hwm(pid: u32) -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    parse_vm_hwm(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// `VmHWM` of a `/proc/PID/status` text, in bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let mut fields = line.split_whitespace();
    let n: u64 = fields.next()?.parse().ok()?;
    let unit = match fields.next() {
        Some("kB") | Some("KB") | Some("kb") => 1024,
        Some("mB") | Some("MB") => 1 << 20,
        Some("B") | None => 1,
        Some(_) => return None,
    };
    n.checked_mul(unit)
}

/// A keep-alive HTTP/1.1 connection to the server, opened again after an
/// error.
struct Client {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Client { addr, sender: None }
    }

    async fn get(&mut self, path: &str) -> Result<(u16, Bytes), String> {
        self.send(hyper::Method::GET, path, Bytes::new()).await
    }

    async fn post(&mut self, path: &str, body: Bytes) -> Result<(u16, Bytes), String> {
        self.send(hyper::Method::POST, path, body).await
    }

    /// One request: its status and whole body, or why there is none.
    async fn send(
        &mut self,
        method: hyper::Method,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), String> {
        let answer = tokio::time::timeout(REQUEST_LIMIT, self.exchange(method, path, body)).await;
        let answer = answer
            .unwrap_or_else(|_| Err(format!("no answer within {} s", REQUEST_LIMIT.as_secs())));
        if answer.is_err() {
            // Whatever state the connection is in, start afresh.
            self.sender = None;
        }
        answer
    }

    async fn exchange(
        &mut self,
        method: hyper::Method,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), String> {
        let sender = match &mut self.sender {
            Some(s) if !s.is_closed() => s,
            _ => self.sender.insert(connect(self.addr).await?),
        };
        sender
            .ready()
            .await
            .map_err(|e| format!("the connection to the server failed: {e}"))?;
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.addr.to_string())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer failed: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

/// An HTTP/1.1 connection to `addr`, driven by a task of its own.
async fn connect(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to the server at {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("connecting to the server at {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// An example column as the protocol sends it: its name, datatype and
/// one JSON value per row (`null` for a missing value, which the server
/// reads as missing).
#[derive(Debug, Clone, PartialEq)]
struct RequestColumn {
    name: String,
    datatype: &'static str,
    values: Vec<Value>,
}

/// The examples' columns as request tensors: integers as `INT64`
/// (`UINT64` for unsigned 64-bit), floating point as `FP64` (a non-finite
/// value, which JSON cannot hold, as `null`), booleans as `BOOL`, text as
/// `BYTES`, any other type as its text (`BYTES`).
fn request_columns(examples: &RecordBatch) -> Result<Vec<RequestColumn>, String> {
    let schema = examples.schema();
    schema
        .fields()
        .iter()
        .zip(examples.columns())
        .map(|(field, array)| {
            let (datatype, values) = column_values(array).map_err(|e| {
                format!(
                    "example column `{}` ({}) cannot be sent in a request: {e}",
                    field.name(),
                    field.data_type()
                )
            })?;
            Ok(RequestColumn {
                name: field.name().clone(),
                datatype,
                values,
            })
        })
        .collect()
}

/// An array's datatype on the wire and its values as JSON.
fn column_values(array: &ArrayRef) -> Result<(&'static str, Vec<Value>), String> {
    fn each<T>(array: &dyn Array, value: impl Fn(usize) -> T) -> Vec<Value>
    where
        Value: From<T>,
    {
        (0..array.len())
            .map(|i| {
                if array.is_null(i) {
                    Value::Null
                } else {
                    Value::from(value(i))
                }
            })
            .collect()
    }
    fn float(v: f64) -> Value {
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
    let a = array.as_ref();
    Ok(match array.data_type() {
        DataType::Boolean => ("BOOL", each(a, |i| a.as_boolean().value(i))),
        DataType::Int8 => ("INT64", each(a, |i| a.as_primitive::<Int8Type>().value(i))),
        DataType::Int16 => ("INT64", each(a, |i| a.as_primitive::<Int16Type>().value(i))),
        DataType::Int32 => ("INT64", each(a, |i| a.as_primitive::<Int32Type>().value(i))),
        DataType::Int64 => ("INT64", each(a, |i| a.as_primitive::<Int64Type>().value(i))),
        DataType::UInt8 => ("INT64", each(a, |i| a.as_primitive::<UInt8Type>().value(i))),
        DataType::UInt16 => (
            "INT64",
            each(a, |i| a.as_primitive::<UInt16Type>().value(i)),
        ),
        DataType::UInt32 => (
            "INT64",
            each(a, |i| a.as_primitive::<UInt32Type>().value(i)),
        ),
        DataType::UInt64 => (
            "UINT64",
            each(a, |i| a.as_primitive::<UInt64Type>().value(i)),
        ),
        DataType::Float16 => (
            "FP64",
            (0..a.len())
                .map(|i| match a.is_null(i) {
                    true => Value::Null,
                    false => float(a.as_primitive::<Float16Type>().value(i).to_f64()),
                })
                .collect(),
        ),
        DataType::Float32 => (
            "FP64",
            (0..a.len())
                .map(|i| match a.is_null(i) {
                    true => Value::Null,
                    false => float(f64::from(a.as_primitive::<Float32Type>().value(i))),
                })
                .collect(),
        ),
        DataType::Float64 => (
            "FP64",
            (0..a.len())
                .map(|i| match a.is_null(i) {
                    true => Value::Null,
                    false => float(a.as_primitive::<Float64Type>().value(i)),
                })
                .collect(),
        ),
        DataType::Utf8 => ("BYTES", each(a, |i| a.as_string::<i32>().value(i))),
        DataType::LargeUtf8 => ("BYTES", each(a, |i| a.as_string::<i64>().value(i))),
        DataType::Utf8View => ("BYTES", each(a, |i| a.as_string_view().value(i))),
        _ => {
            let text = arrow_cast::cast(array, &DataType::Utf8).map_err(|e| e.to_string())?;
            let text = text.as_string::<i32>();
            ("BYTES", each(text, |i| text.value(i)))
        }
    })
}

/// The inference request for `rows` consecutive example rows from `start`
/// (wrapping around the `n` rows): one tensor per column, shape `[rows]`.
fn infer_body(columns: &[RequestColumn], n: usize, start: usize, rows: usize) -> Bytes {
    let inputs: Vec<Value> = columns
        .iter()
        .map(|c| {
            let data: Vec<Value> = (0..rows)
                .map(|k| c.values[(start + k) % n].clone())
                .collect();
            json!({
                "name": c.name,
                "datatype": c.datatype,
                "shape": [rows],
                "data": data,
            })
        })
        .collect();
    Bytes::from(serde_json::to_vec(&json!({ "inputs": inputs })).expect("JSON serialises"))
}

/// The load's request bodies: request `k` is body `k % len`; body `j`
/// holds `rows` rows from row `j * rows` (wrapping around the `n`
/// examples), for as many `j` as it takes to come back to row 0, or as
/// fit in [`MAX_LOAD_BODY_BYTES`]. None without examples.
fn load_bodies(columns: &[RequestColumn], n: usize, rows: usize) -> Vec<Bytes> {
    if n == 0 {
        return Vec::new();
    }
    let cycle = n / gcd(n, rows);
    let mut bodies = Vec::new();
    let mut bytes = 0;
    for j in 0..cycle {
        let body = infer_body(columns, n, (j * rows) % n, rows);
        bytes += body.len();
        bodies.push(body);
        if bytes >= MAX_LOAD_BODY_BYTES {
            break;
        }
    }
    bodies
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

/// The type of an answer column, from its protocol datatype.
fn answer_type(datatype: &str) -> DataType {
    match datatype {
        "FP16" | "FP32" | "FP64" => DataType::Float64,
        "INT8" | "INT16" | "INT32" | "INT64" | "UINT8" | "UINT16" | "UINT32" | "UINT64" => {
            DataType::Int64
        }
        "BOOL" => DataType::Boolean,
        _ => DataType::Utf8,
    }
}

/// The outputs of an inference response, by name: each output's first
/// value (an example is one row). `None` for a body that is no inference
/// response.
fn response_outputs(body: &[u8]) -> Option<Vec<(String, String, Value)>> {
    let doc: Map<String, Value> = serde_json::from_slice(body).ok()?;
    doc.get("outputs")?
        .as_array()?
        .iter()
        .map(|o| {
            let name = o.get("name")?.as_str()?.to_string();
            let datatype = o.get("datatype")?.as_str()?.to_string();
            let value = match o.get("data")? {
                Value::Array(values) => values.first().cloned().unwrap_or(Value::Null),
                other => other.clone(),
            };
            Some((name, datatype, value))
        })
        .collect()
}

/// What an error answer says: its `error` text, else its body.
fn error_text(status: u16, body: &[u8]) -> String {
    let said = serde_json::from_slice::<Map<String, Value>>(body)
        .ok()
        .and_then(|d| d.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            text.chars().take(1000).collect()
        });
    format!("{status}: {said}")
}

/// The answers table: per example, `status` (the HTTP status, 0 when none
/// came), `error` (empty for a 200 carrying an inference response; else
/// the status and the server's `error`, or why no answer came), then one
/// column per output of the first such response, in its order (FP* as
/// Float64, INT*/UINT* as Int64, BOOL as Boolean, anything else as Utf8),
/// null where the example got no such output.
fn answers_batch(replies: &[Reply]) -> Result<RecordBatch, String> {
    let parsed: Vec<Option<Vec<(String, String, Value)>>> = replies
        .iter()
        .map(|r| match r {
            Reply::Http(200, body) => response_outputs(body),
            _ => None,
        })
        .collect();
    let mut status = Int64Builder::new();
    let mut error = StringBuilder::new();
    for (reply, outputs) in replies.iter().zip(&parsed) {
        match reply {
            Reply::Http(code, body) => {
                status.append_value(i64::from(*code));
                match (code, outputs) {
                    (200, Some(_)) => error.append_value(""),
                    (200, None) => error.append_value(format!(
                        "200, but the body is not an inference response: {}",
                        String::from_utf8_lossy(body)
                            .chars()
                            .take(1000)
                            .collect::<String>()
                    )),
                    _ => error.append_value(error_text(*code, body)),
                }
            }
            Reply::Failed(why) => {
                status.append_value(0);
                error.append_value(why);
            }
        }
    }
    let mut fields = vec![
        Field::new("status", DataType::Int64, false),
        Field::new("error", DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(status.finish()), Arc::new(error.finish())];
    let first: Vec<(String, DataType)> = parsed
        .iter()
        .flatten()
        .next()
        .map(|outputs| {
            outputs
                .iter()
                .filter(|(name, _, _)| name != "status" && name != "error")
                .map(|(name, datatype, _)| (name.clone(), answer_type(datatype)))
                .collect()
        })
        .unwrap_or_default();
    for (name, column_type) in first {
        let values = parsed.iter().map(|outputs| {
            outputs
                .as_ref()
                .and_then(|o| o.iter().find(|(n, _, _)| *n == name))
                .map(|(_, _, v)| v)
                .filter(|v| !v.is_null())
        });
        let array: ArrayRef = match column_type {
            DataType::Float64 => {
                let mut b = Float64Builder::new();
                values.for_each(|v| b.append_option(v.and_then(Value::as_f64)));
                Arc::new(b.finish())
            }
            DataType::Int64 => {
                let mut b = Int64Builder::new();
                values.for_each(|v| b.append_option(v.and_then(Value::as_i64)));
                Arc::new(b.finish())
            }
            DataType::Boolean => {
                let mut b = BooleanBuilder::new();
                values.for_each(|v| b.append_option(v.and_then(Value::as_bool)));
                Arc::new(b.finish())
            }
            _ => {
                let mut b = StringBuilder::new();
                values.for_each(|v| {
                    b.append_option(v.map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }))
                });
                Arc::new(b.finish())
            }
        };
        fields.push(Field::new(name, column_type, true));
        columns.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| format!("building the answers table: {e}"))
}

/// What the load measured.
#[derive(Debug, Default, Clone, PartialEq)]
struct LoadSummary {
    /// Requests sent and answered or failed.
    requests: u64,
    /// Of which not answered 200.
    errors: u64,
    /// From the first request to the last answer.
    duration: Duration,
    /// Latency of each request answered 200, in milliseconds.
    latencies: Vec<f64>,
}

/// Everything the report says.
#[derive(Debug, Clone, PartialEq)]
struct Measured {
    started: bool,
    error: Option<String>,
    startup: Option<Duration>,
    peak_rss_bytes: Option<u64>,
    killed: Option<String>,
    load: LoadSummary,
    concurrency: usize,
    rows_per_request: usize,
}

/// The probe's report (the contract's `report` JSON): `qps` counts
/// requests answered 200 per second of load; latencies are those of the
/// requests answered 200, nearest-rank percentiles, `null` when none was.
fn report(m: &Measured) -> Value {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut sorted = m.load.latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let latency = match sorted.last() {
        None => Value::Null,
        Some(max) => json!({
            "p50": nearest_rank(&sorted, 50.0),
            "p90": nearest_rank(&sorted, 90.0),
            "p99": nearest_rank(&sorted, 99.0),
            "max": max,
        }),
    };
    let seconds = m.load.duration.as_secs_f64();
    let qps = if seconds > 0.0 {
        sorted.len() as f64 / seconds
    } else {
        0.0
    };
    json!({
        "started": m.started,
        "error": m.error,
        "startup_ms": m.startup.map(ms),
        "peak_rss_bytes": m.peak_rss_bytes,
        "killed": m.killed,
        "load": {
            "requests": m.load.requests,
            "errors": m.load.errors,
            "duration_ms": ms(m.load.duration),
            "qps": qps,
            "concurrency": m.concurrency,
            "rows_per_request": m.rows_per_request,
            "latency_ms": latency,
        },
        "server": {
            "version": env!("CARGO_PKG_VERSION"),
            "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
    })
}

/// The `p`-th percentile (0 < p ≤ 100) of ascending `sorted` by nearest
/// rank: the smallest value with at least p% of the values at or below
/// it. `None` for no values.
fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        BooleanArray, Float32Array, Float64Array, Int32Array, StringArray, UInt64Array,
    };

    #[test]
    fn nearest_rank_picks_the_smallest_value_covering_the_share() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 50.0), Some(50.0));
        assert_eq!(nearest_rank(&v, 90.0), Some(90.0));
        assert_eq!(nearest_rank(&v, 99.0), Some(99.0));
        assert_eq!(nearest_rank(&v, 100.0), Some(100.0));
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        // 50% of 5 is 2.5 → rank 3; 90% → 4.5 → rank 5.
        assert_eq!(nearest_rank(&v, 50.0), Some(3.0));
        assert_eq!(nearest_rank(&v, 90.0), Some(5.0));
    }

    #[test]
    fn nearest_rank_of_one_value_is_that_value_and_of_none_is_none() {
        assert_eq!(nearest_rank(&[7.5], 50.0), Some(7.5));
        assert_eq!(nearest_rank(&[7.5], 99.0), Some(7.5));
        assert_eq!(nearest_rank(&[], 50.0), None);
    }

    #[test]
    fn peak_resident_memory_is_read_from_vm_hwm_in_bytes() {
        let status =
            "Name:\tsluice\nVmPeak:\t  900000 kB\nVmHWM:\t   41236 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(41236 * 1024));
        assert_eq!(parse_vm_hwm("Name:\tzombie\nState:\tZ (zombie)\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\tlots kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_a_peak_resident_memory() {
        let peak = vm_hwm(std::process::id()).expect("Linux reports VmHWM");
        assert!(peak > 1 << 20, "{peak}");
    }

    fn examples() -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "radius",
                Arc::new(Float64Array::from(vec![Some(1.5), None, Some(f64::NAN)])) as ArrayRef,
            ),
            (
                "count",
                Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef,
            ),
            (
                "big",
                Arc::new(UInt64Array::from(vec![1, 2, u64::MAX])) as ArrayRef,
            ),
            (
                "ratio",
                Arc::new(Float32Array::from(vec![0.5, 0.25, 2.0])) as ArrayRef,
            ),
            (
                "flag",
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])) as ArrayRef,
            ),
            (
                "city",
                Arc::new(StringArray::from(vec![Some("Oslo"), None, Some("Lima")])) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn request_tensors_take_their_datatype_from_the_arrow_type() {
        let columns = request_columns(&examples()).unwrap();
        let shown: Vec<(&str, &str)> = columns
            .iter()
            .map(|c| (c.name.as_str(), c.datatype))
            .collect();
        assert_eq!(
            shown,
            [
                ("radius", "FP64"),
                ("count", "INT64"),
                ("big", "UINT64"),
                ("ratio", "FP64"),
                ("flag", "BOOL"),
                ("city", "BYTES"),
            ]
        );
        // Missing values and NaN (which JSON cannot hold) go as null.
        assert_eq!(columns[0].values, [json!(1.5), Value::Null, Value::Null]);
        assert_eq!(columns[2].values[2], json!(u64::MAX));
        assert_eq!(columns[4].values, [json!(true), json!(false), Value::Null]);
        assert_eq!(
            columns[5].values,
            [json!("Oslo"), Value::Null, json!("Lima")]
        );
    }

    #[test]
    fn an_example_request_is_one_tensor_per_column_of_one_row() {
        let columns = request_columns(&examples()).unwrap();
        let body: Value = serde_json::from_slice(&infer_body(&columns, 3, 0, 1)).unwrap();
        assert_eq!(
            body["inputs"][0],
            json!({"name": "radius", "datatype": "FP64", "shape": [1], "data": [1.5]})
        );
        assert_eq!(
            body["inputs"][5],
            json!({"name": "city", "datatype": "BYTES", "shape": [1], "data": ["Oslo"]})
        );
        assert_eq!(body["inputs"].as_array().unwrap().len(), 6);
        // The server reads such a request into a one-row table, a null
        // as a missing value.
        let body = infer_body(&columns, 3, 1, 1);
        let request = crate::protocol::parse_infer(&body).unwrap();
        let table = crate::protocol::infer_table(&request, None).unwrap();
        assert_eq!((table.num_rows(), table.num_columns()), (1, 6));
        assert!(table.column(0).is_null(0));
        assert_eq!(table.column(1).as_primitive::<Int64Type>().value(0), 2);
    }

    #[test]
    fn load_requests_take_consecutive_rows_wrapping_around() {
        let columns = request_columns(&examples()).unwrap();
        let body: Value = serde_json::from_slice(&infer_body(&columns, 3, 2, 2)).unwrap();
        assert_eq!(body["inputs"][1]["shape"], json!([2]));
        assert_eq!(body["inputs"][1]["data"], json!([3, 1]));
        // 3 examples, 2 rows a request: rows 0-1, 2-0, 1-2, then again.
        let bodies = load_bodies(&columns, 3, 2);
        assert_eq!(bodies.len(), 3);
        let counts: Vec<Value> = bodies
            .iter()
            .map(|b| serde_json::from_slice::<Value>(b).unwrap()["inputs"][1]["data"].clone())
            .collect();
        assert_eq!(counts, [json!([1, 2]), json!([3, 1]), json!([2, 3])]);
        assert!(load_bodies(&columns, 0, 2).is_empty());
    }

    fn ok(body: Value) -> Reply {
        Reply::Http(200, Bytes::from(body.to_string()))
    }

    #[test]
    fn answers_hold_status_error_and_each_output_in_the_first_answers_order() {
        let replies = vec![
            Reply::Http(400, Bytes::from(r#"{"error":"input `x` is missing"}"#)),
            ok(json!({"model_name": "candidate", "outputs": [
                {"name": "prediction", "datatype": "INT64", "shape": [1], "data": [1]},
                {"name": "probability_1", "datatype": "FP32", "shape": [1], "data": [0.75]},
                {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["malignant"]},
                {"name": "flagged", "datatype": "BOOL", "shape": [1], "data": [true]},
            ]})),
            Reply::Failed("the request failed: connection reset".into()),
            ok(json!({"outputs": [
                {"name": "probability_1", "datatype": "FP32", "shape": [1], "data": [null]},
                {"name": "prediction", "datatype": "INT64", "shape": [1], "data": [0]},
            ]})),
        ];
        let batch = answers_batch(&replies).unwrap();
        let schema = batch.schema();
        let types: Vec<(&str, &DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        assert_eq!(
            types,
            [
                ("status", &DataType::Int64),
                ("error", &DataType::Utf8),
                ("prediction", &DataType::Int64),
                ("probability_1", &DataType::Float64),
                ("label", &DataType::Utf8),
                ("flagged", &DataType::Boolean),
            ]
        );
        let status = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(status.values().to_vec(), [400, 200, 0, 200]);
        let error = batch.column(1).as_string::<i32>();
        assert_eq!(error.value(0), "400: input `x` is missing");
        assert_eq!(error.value(1), "");
        assert_eq!(error.value(2), "the request failed: connection reset");
        assert_eq!(error.value(3), "");
        let prediction = batch.column(2).as_primitive::<Int64Type>();
        assert_eq!(
            prediction.iter().collect::<Vec<_>>(),
            [None, Some(1), None, Some(0)]
        );
        let probability = batch.column(3).as_primitive::<Float64Type>();
        assert_eq!(
            probability.iter().collect::<Vec<_>>(),
            [None, Some(0.75), None, None]
        );
        let label = batch.column(4).as_string::<i32>();
        assert_eq!(
            label.iter().collect::<Vec<_>>(),
            [None, Some("malignant"), None, None]
        );
        assert!(batch.column(5).as_boolean().value(1));
    }

    #[test]
    fn answers_without_any_success_are_status_and_error_only() {
        let batch = answers_batch(&[
            Reply::Http(500, Bytes::from("not json")),
            Reply::Failed("not answered: the server exited".into()),
        ])
        .unwrap();
        assert_eq!(batch.num_columns(), 2);
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "500: not json");
        let empty = answers_batch(&[]).unwrap();
        assert_eq!((empty.num_rows(), empty.num_columns()), (0, 2));
    }

    #[test]
    fn a_200_without_an_inference_response_is_an_error() {
        let batch = answers_batch(&[Reply::Http(200, Bytes::from("{}"))]).unwrap();
        assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(0), 200);
        assert!(
            batch
                .column(1)
                .as_string::<i32>()
                .value(0)
                .starts_with("200, but the body is not")
        );
    }

    #[test]
    fn the_report_has_every_field_and_counts_successes_per_second() {
        let m = Measured {
            started: true,
            error: None,
            startup: Some(Duration::from_millis(250)),
            peak_rss_bytes: Some(41 << 20),
            killed: None,
            load: LoadSummary {
                requests: 5,
                errors: 1,
                duration: Duration::from_secs(2),
                latencies: vec![4.0, 1.0, 3.0, 2.0],
            },
            concurrency: 2,
            rows_per_request: 1,
        };
        let r = report(&m);
        assert_eq!(r["started"], json!(true));
        assert_eq!(r["error"], Value::Null);
        assert_eq!(r["startup_ms"], json!(250.0));
        assert_eq!(r["peak_rss_bytes"], json!(41u64 << 20));
        assert_eq!(r["killed"], Value::Null);
        assert_eq!(
            r["load"],
            json!({
                "requests": 5, "errors": 1, "duration_ms": 2000.0, "qps": 2.0,
                "concurrency": 2, "rows_per_request": 1,
                "latency_ms": {"p50": 2.0, "p90": 4.0, "p99": 4.0, "max": 4.0},
            })
        );
        assert_eq!(r["server"]["version"], json!(env!("CARGO_PKG_VERSION")));
        assert!(r["server"]["cpus"].as_u64().unwrap() >= 1);
    }

    #[test]
    fn a_report_without_successes_has_no_latency() {
        let m = Measured {
            started: false,
            error: Some("the server exited".into()),
            startup: None,
            peak_rss_bytes: None,
            killed: None,
            load: LoadSummary::default(),
            concurrency: 2,
            rows_per_request: 1,
        };
        let r = report(&m);
        assert_eq!(r["load"]["latency_ms"], Value::Null);
        assert_eq!(r["load"]["qps"], json!(0.0));
        assert_eq!(r["startup_ms"], Value::Null);
        assert_eq!(r["error"], json!("the server exited"));
    }

    #[test]
    fn the_server_is_started_on_loopback_serving_the_card_as_candidate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let card = Digest::of(b"card");
        let probe = ServerProbe::new(
            "/bin/sluice".into(),
            dir.path().into(),
            Some("postgres://db/sluice".into()),
            None,
            store,
        );
        let args: Vec<String> = probe
            .command_line(&card)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let store_dir = dir.path().display().to_string();
        // The metadata location goes in the environment, not the arguments.
        assert!(!args.iter().any(|a| a.contains("postgres")), "{args:?}");
        assert_eq!(
            args,
            [
                "--no-compile-cache",
                "serve",
                "--artifact",
                &format!("candidate={card}"),
                "--store",
                &store_dir,
                "--addr",
                "127.0.0.1:0",
                "--log-sample",
                "0",
                "--stats-every",
                "off",
            ]
        );
    }

    /// The whole probe against a built `sluice` and a store holding a
    /// model: `SLUICE_PROBE_EXE` (target/debug/sluice), `SLUICE_PROBE_STORE`
    /// (the store folder), `SLUICE_PROBE_CARD` (sha256:… of a stored card)
    /// and `SLUICE_PROBE_CSV` (example rows; a `diagnosis` column is
    /// dropped). Prints the report.
    #[test]
    #[ignore = "needs a built sluice and a store with a model; see the doc comment"]
    fn probing_a_stored_model_measures_the_real_server() {
        let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("set {name}"));
        let store_dir = PathBuf::from(var("SLUICE_PROBE_STORE"));
        let store = Arc::new(Store::open(&store_dir).unwrap());
        let card: Digest = var("SLUICE_PROBE_CARD").parse().unwrap();
        let model = ModelArtifact::from_stored(&store.objects.get(&card).unwrap(), |d| {
            store
                .objects
                .get(d)
                .map(Bytes::from)
                .map_err(|e| e.to_string())
        })
        .unwrap();
        let mut csv = csv::Reader::from_path(var("SLUICE_PROBE_CSV")).unwrap();
        let headers: Vec<String> = csv.headers().unwrap().iter().map(str::to_string).collect();
        let rows: Vec<csv::StringRecord> = csv.records().take(16).map(Result::unwrap).collect();
        let examples = RecordBatch::try_from_iter(
            headers
                .iter()
                .enumerate()
                .filter(|(_, h)| *h != "diagnosis")
                .map(|(i, h)| {
                    let values: Float64Array =
                        rows.iter().map(|r| r[i].parse::<f64>().ok()).collect();
                    (h.clone(), Arc::new(values) as ArrayRef)
                }),
        )
        .unwrap();
        let probe = ServerProbe::new(var("SLUICE_PROBE_EXE").into(), store_dir, None, None, store);
        let options = ProbeOptions {
            memory_ceiling_bytes: Some(4 << 30),
            ..ProbeOptions::default()
        };
        // Awaited from a runtime with timers only, as a step's host call is.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let answer = runtime
            .block_on(probe.probe(Arc::new(model), examples, options))
            .unwrap();
        println!("{}", serde_json::to_string_pretty(&answer.report).unwrap());
        let status = answer.answers.column(0).as_primitive::<Int64Type>();
        println!(
            "answers: {} rows, columns {:?}",
            answer.answers.num_rows(),
            answer
                .answers
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>()
        );
        assert!(
            status.values().iter().all(|&s| s == 200),
            "{:?}",
            answer.answers
        );
        assert_eq!(answer.report["started"], json!(true));
        assert!(answer.report["load"]["requests"].as_u64().unwrap() > 0);
    }

    /// A model the server cannot load, probed with the `sluice` at
    /// `SLUICE_PROBE_EXE` (target/debug/sluice).
    #[test]
    #[ignore = "needs a built sluice: set SLUICE_PROBE_EXE"]
    fn a_server_that_cannot_load_the_model_is_reported_with_its_error() {
        let exe = std::env::var("SLUICE_PROBE_EXE").expect("set SLUICE_PROBE_EXE");
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut card = Map::new();
        card.insert("features".into(), json!(["x"]));
        let model = ModelArtifact::new(Bytes::from_static(b"not onnx"), card).unwrap();
        let examples = RecordBatch::try_from_iter([(
            "x",
            Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef,
        )])
        .unwrap();
        let probe = ServerProbe::new(exe.into(), dir.path().into(), None, None, store);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let answer = runtime
            .block_on(probe.probe(Arc::new(model), examples, ProbeOptions::default()))
            .unwrap();
        let r = &answer.report;
        assert_eq!(r["started"], json!(false));
        let error = r["error"].as_str().unwrap();
        assert!(error.starts_with("the server exited"), "{error}");
        assert!(error.contains("candidate:0"), "{error}");
        assert_eq!(r["startup_ms"], Value::Null);
        assert_eq!(r["load"]["requests"], json!(0));
        let status = answer.answers.column(0).as_primitive::<Int64Type>();
        assert_eq!(status.values().to_vec(), [0, 0]);
        let why = answer.answers.column(1).as_string::<i32>();
        assert!(why.value(1).starts_with("not answered: the server exited"));
    }
}
