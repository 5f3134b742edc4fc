//! The HTTP and gRPC server: routes, canary splits (sticky by a key when
//! one is sent), shadow versions, hot reload, limits, shutdown.

mod grpc_api;

use crate::batcher::{BatchConfig, Batcher};
use crate::connections;
use crate::io_threads::IoThreads;
use crate::metrics::{Metrics, ShadowOutcome};
use crate::protocol;
use crate::reqlog::{LogConfig, RequestIds, RequestLog, StoreSink};
use crate::served::{LoadError, PredictError, ServedModel};
use crate::shadow::{compare, field_key, sticky_draw};
use crate::stats::{Answered, ServingStats, StoreStatsSink};
use arrow_array::RecordBatch;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sluice_runtime::{Digest, Runtime};
use sluice_store::{ModelRef, ServingRole, Store};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// What to serve and how.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The models, each served under its registered name.
    pub models: Vec<ModelRef>,
    /// Unregistered models, each served as `NAME` version 0: the name and
    /// the digest of its stored card (as [`sluice_runtime::ModelArtifact::stored_card`]
    /// writes it) in the store's objects. Never reloaded; no canary,
    /// shadow or rollout applies. What `std:infra-validate` serves a
    /// candidate with before it is registered.
    pub artifacts: Vec<(String, Digest)>,
    /// Canary versions: a share of a served name's requests, in percent.
    pub canaries: Vec<(ModelRef, f64)>,
    /// What decides a request's side of a canary split when it is sent:
    /// the same key always gets the same side, on every server.
    pub variant_key: VariantKey,
    /// Shadow versions, at most one per served name: each predicts a copy
    /// of the requests its name's primary answered, off the request's path,
    /// and answers no client; the answers are compared and counted.
    pub shadows: Vec<ModelRef>,
    /// Most shadow predictions queued or running at once, over every
    /// shadow; a request's copy beyond them is dropped and counted, so a
    /// slow shadow never holds the primary's memory or workers.
    pub shadow_max_inflight: usize,
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub addr: SocketAddr,
    /// Where to answer the Open Inference Protocol over gRPC, if anywhere.
    pub grpc_addr: Option<SocketAddr>,
    /// Dynamic batching.
    pub batch: BatchConfig,
    /// Request logging.
    pub log: LogConfig,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Longest a request may take before it is answered 504.
    pub timeout: Duration,
    /// How often aliases are looked up again (hot reload).
    pub reload_every: Duration,
    /// Longest a connection may take to send a request's headers, and may
    /// sit idle between requests; it is closed after.
    pub header_timeout: Duration,
    /// Longest a request's body may take to arrive (408 after it).
    pub body_timeout: Duration,
    /// Most connections open at once; beyond it new ones wait to be
    /// accepted (the kernel queues them) until one closes.
    pub max_connections: usize,
    /// Threads serving HTTP connections, each connection on one of them
    /// for its life; requests smaller than a batch are predicted there
    /// too. gRPC connections stay on the calling runtime: each HTTP/2
    /// stream is a task of its own, and a work-stealing runtime measured
    /// cheaper for them. At least one runs.
    pub io_threads: usize,
    /// How often the requests answered per model version (counts, errors,
    /// latency) are written to the store as a window of serving
    /// statistics, for promotion gates; `None` writes none.
    pub stats_every: Option<Duration>,
}

/// Where a request's variant key is read, for a sticky canary split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariantKey {
    /// A request header (name in lowercase), e.g. `sluice-variant-key`; on
    /// gRPC, the metadata entry of that name.
    Header(String),
    /// An input column: its value in the request's first row, as text.
    Field(String),
}

impl VariantKey {
    /// The header a key is read from unless told otherwise.
    pub const DEFAULT_HEADER: &'static str = "sluice-variant-key";
}

impl Default for VariantKey {
    fn default() -> Self {
        VariantKey::Header(Self::DEFAULT_HEADER.into())
    }
}

impl std::str::FromStr for VariantKey {
    type Err = String;

    /// `header:NAME` or `field:COLUMN`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not header:NAME or field:COLUMN (e.g. header:x-user-id)");
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad());
        }
        match kind.trim() {
            "header" => {
                let name = name.to_ascii_lowercase();
                header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("`{name}` is not a valid header name"))?;
                Ok(VariantKey::Header(name))
            }
            "field" => Ok(VariantKey::Field(name.to_string())),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for VariantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VariantKey::Header(h) => write!(f, "header:{h}"),
            VariantKey::Field(c) => write!(f, "field:{c}"),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A model could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The configuration is inconsistent.
    #[error("{0}")]
    Config(String),
    /// The address could not be bound, or serving failed.
    #[error("{0}")]
    Io(String),
}

/// A model reference and the version it currently resolves to.
struct Slot {
    /// `None` for a stored artifact served as it is (`--artifact`):
    /// nothing to look up again.
    reference: Option<ModelRef>,
    /// `reference` as written (`NAME@ALIAS`): what serving statistics are
    /// counted under.
    shown: String,
    model: RwLock<Arc<ServedModel>>,
    /// A version that failed to load, not to be tried again.
    failed: RwLock<Option<i64>>,
}

impl Slot {
    fn current(&self) -> Arc<ServedModel> {
        self.model.read().unwrap().clone()
    }
}

/// The model version a request was given to, and by which role of its
/// route: what the response header names and what it is counted under.
#[derive(Debug, Clone, Copy)]
struct Picked {
    version: i64,
    role: ServingRole,
}

/// A canary: a second version answering `percent` of a route's requests.
struct Canary {
    slot: Slot,
    /// Its share of the requests, in percent.
    percent: RwLock<f64>,
    /// The rollout (in the store) that put it here and sets its share;
    /// `None` for a `--canary` given at start-up.
    rollout: Option<String>,
}

impl Canary {
    fn new(slot: Slot, percent: f64, rollout: Option<String>) -> Arc<Canary> {
        Arc::new(Canary {
            slot,
            percent: RwLock::new(percent),
            rollout,
        })
    }

    fn percent(&self) -> f64 {
        *self.percent.read().unwrap()
    }
}

/// A served name: its main slot, maybe a canary with its share, and maybe
/// a shadow (which answers no client).
struct Route {
    name: String,
    primary: Slot,
    /// The canary answering now: the start-up one, or a running rollout's
    /// (which the reload loop puts in and takes out).
    canary: RwLock<Option<Arc<Canary>>>,
    /// The `--canary` given at start-up, back in place when a rollout ends.
    configured_canary: Option<Arc<Canary>>,
    shadow: Option<Slot>,
}

impl Route {
    /// The canary answering now, if any.
    fn canary(&self) -> Option<Arc<Canary>> {
        self.canary.read().unwrap().clone()
    }

    /// The models that answer clients now and their roles: the primary's,
    /// then the canary's.
    fn answering(&self) -> Vec<(Arc<ServedModel>, ServingRole)> {
        let mut v = vec![(self.primary.current(), ServingRole::Primary)];
        if let Some(c) = self.canary() {
            v.push((c.slot.current(), ServingRole::Canary));
        }
        v
    }

    /// The model a request goes to: see [`Route::pick_role`].
    fn pick(&self, version: Option<&str>) -> Result<Arc<ServedModel>, ApiError> {
        self.pick_role(version, None).map(|(model, _)| model)
    }

    /// The model a request goes to and the role that has it: by version if
    /// one is named (the primary's when both serve it), else the canary's
    /// share decides — by `key` when one is given (the same key always
    /// lands on the same side: [`sticky_draw`] salted with the canary's
    /// reference), else by a random draw.
    fn pick_role(
        &self,
        version: Option<&str>,
        key: Option<&str>,
    ) -> Result<(Arc<ServedModel>, ServingRole), ApiError> {
        match version {
            Some(v) => self
                .answering()
                .into_iter()
                .find(|(m, _)| m.version.to_string() == v)
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "version {v} of `{}` is not served here; loaded: {}",
                        self.name,
                        self.versions()
                            .iter()
                            .map(|v| v.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }),
            None => Ok(match self.canary() {
                Some(c) if on_canary(&c.slot.shown, key, c.percent()) => {
                    (c.slot.current(), ServingRole::Canary)
                }
                _ => (self.primary.current(), ServingRole::Primary),
            }),
        }
    }

    /// The reference the slot of `role` serves, as written: what its
    /// requests are counted under.
    /// `f` of it is what is returned, so that counting a request (every
    /// request) borrows the text rather than copying it.
    fn with_shown<T>(&self, role: ServingRole, f: impl FnOnce(&str) -> T) -> Option<T> {
        match role {
            ServingRole::Primary => Some(f(&self.primary.shown)),
            ServingRole::Canary => self.canary().map(|c| f(&c.slot.shown)),
            ServingRole::Shadow => self.shadow.as_ref().map(|s| f(&s.shown)),
        }
    }

    /// The versions that answer clients here (not the shadow's).
    fn versions(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.answering().iter().map(|(m, _)| m.version).collect();
        v.dedup();
        v
    }
}

/// Whether a request goes to a canary holding `percent` of the traffic:
/// by where its `key` falls (sticky) when it has one, else at random.
fn on_canary(salt: &str, key: Option<&str>, percent: f64) -> bool {
    let draw = match key.filter(|k| !k.is_empty()) {
        Some(key) => sticky_draw(salt, key),
        None => rand::random::<f64>(),
    };
    draw * 100.0 < percent
}

/// Where shadow predictions run: their own batcher (queue and worker
/// threads, so they never wait in the primary's queue nor hold its
/// workers) and a bound on how many are queued or running.
struct ShadowLane {
    batcher: Batcher,
    permits: Arc<tokio::sync::Semaphore>,
    max: u32,
}

struct App {
    routes: Vec<Route>,
    batcher: Batcher,
    shadow: Option<ShadowLane>,
    variant_key: VariantKey,
    metrics: Arc<Metrics>,
    log: RequestLog,
    stats: ServingStats,
    timeout: Duration,
    max_body: usize,
    ids: RequestIds,
}

impl App {
    fn route(&self, name: &str) -> Result<&Route, ApiError> {
        self.routes.iter().find(|r| r.name == name).ok_or_else(|| {
            ApiError::not_found(format!(
                "unknown model `{name}`; this server serves: {}",
                self.routes
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

/// An error answer: a status and `{"error": message}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn status(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    fn predict(e: PredictError) -> Self {
        ApiError {
            status: if e.blames_request() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            },
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = json_response(json!({ "error": self.message }));
        *r.status_mut() = self.status;
        r
    }
}

fn json_response(value: Value) -> Response {
    json_bytes_response(serde_json::to_vec(&value).expect("a JSON value serialises"))
}

/// A response of a serialized JSON document.
fn json_bytes_response(json: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

/// What a served name serves: `(name, version, canary)` where `canary`
/// is `(version, percent)`.
pub type Serving = (String, i64, Option<(i64, f64)>);

/// A running server.
pub struct Server {
    listener: tokio::net::TcpListener,
    grpc_listener: Option<tokio::net::TcpListener>,
    app: Arc<App>,
    store: Arc<Store>,
    runtime: Arc<Runtime>,
    reload_every: Duration,
    max_body: usize,
    header_timeout: Duration,
    body_timeout: Duration,
    max_connections: usize,
    io_threads: usize,
}

impl Server {
    /// Loads every model (and canary), binds the address and starts the
    /// batching workers and the request logger. Call from a tokio runtime.
    pub async fn bind(
        config: ServeConfig,
        store: Arc<Store>,
        runtime: Arc<Runtime>,
    ) -> Result<Server, ServeError> {
        if config.models.is_empty() && config.artifacts.is_empty() {
            return Err(ServeError::Config(
                "nothing to serve: name a model with `--model NAME@ALIAS`".into(),
            ));
        }
        let metrics = Arc::new(Metrics::default());
        let mut routes: Vec<Route> = Vec::new();
        for reference in &config.models {
            if routes.iter().any(|r| r.name == reference.name()) {
                return Err(ServeError::Config(format!(
                    "model `{}` is named twice; serve a second version of it with `--canary {}@ALIAS=PERCENT`",
                    reference.name(),
                    reference.name()
                )));
            }
            let primary = load_slot(&store, &runtime, reference).await?;
            metrics.loaded(
                reference.name(),
                reference.name(),
                primary.current().version,
            );
            routes.push(Route {
                name: reference.name().to_string(),
                primary,
                canary: RwLock::new(None),
                configured_canary: None,
                shadow: None,
            });
        }
        for (name, card) in &config.artifacts {
            if routes.iter().any(|r| r.name == *name) {
                return Err(ServeError::Config(format!(
                    "model `{name}` is named twice; serve each name once"
                )));
            }
            let primary = load_artifact_slot(&store, &runtime, name, card).await?;
            metrics.loaded(name, name, primary.current().version);
            routes.push(Route {
                name: name.clone(),
                primary,
                canary: RwLock::new(None),
                configured_canary: None,
                shadow: None,
            });
        }
        for (reference, percent) in &config.canaries {
            let Some(route) = routes.iter_mut().find(|r| r.name == reference.name()) else {
                return Err(ServeError::Config(format!(
                    "canary `{reference}` splits traffic of model `{}`, which is not served; add `--model {}@ALIAS`",
                    reference.name(),
                    reference.name()
                )));
            };
            if !(0.0..=100.0).contains(percent) {
                return Err(ServeError::Config(format!(
                    "canary `{reference}`: {percent}% is not a share between 0 and 100"
                )));
            }
            if route.primary.reference.is_none() {
                return Err(ServeError::Config(format!(
                    "canary `{reference}`: `{}` is a stored artifact, which takes no canary",
                    route.name
                )));
            }
            if route.configured_canary.is_some() {
                return Err(ServeError::Config(format!(
                    "model `{}` has two canaries; give it one",
                    route.name
                )));
            }
            let slot = load_slot(&store, &runtime, reference).await?;
            metrics.loaded(
                &format!("{} (canary)", route.name),
                reference.name(),
                slot.current().version,
            );
            let canary = Canary::new(slot, *percent, None);
            *route.canary.write().unwrap() = Some(canary.clone());
            route.configured_canary = Some(canary);
        }
        if let VariantKey::Field(column) = &config.variant_key {
            for route in routes.iter().filter(|r| r.configured_canary.is_some()) {
                let primary = route.primary.current();
                if let Some(inputs) = primary.inputs()
                    && inputs.column(column).is_none()
                {
                    return Err(ServeError::Config(format!(
                        "--variant-key field:{column}: model `{}` takes no input `{column}`; it takes: {}",
                        route.name,
                        inputs.names()
                    )));
                }
            }
        }
        for reference in &config.shadows {
            let Some(route) = routes.iter_mut().find(|r| r.name == reference.name()) else {
                return Err(ServeError::Config(format!(
                    "shadow `{reference}` copies requests of model `{}`, which is not served; add `--model {}@ALIAS`",
                    reference.name(),
                    reference.name()
                )));
            };
            if route.primary.reference.is_none() {
                return Err(ServeError::Config(format!(
                    "shadow `{reference}`: `{}` is a stored artifact, which takes no shadow",
                    route.name
                )));
            }
            if route.shadow.is_some() {
                return Err(ServeError::Config(format!(
                    "model `{}` has two shadows; give it one",
                    route.name
                )));
            }
            let slot = load_slot(&store, &runtime, reference).await?;
            metrics.loaded(
                &format!("{} (shadow)", route.name),
                reference.name(),
                slot.current().version,
            );
            route.shadow = Some(slot);
        }
        let shadow = routes.iter().any(|r| r.shadow.is_some()).then(|| {
            let max = u32::try_from(config.shadow_max_inflight).unwrap_or(u32::MAX >> 3);
            ShadowLane {
                // Half the workers at most: under load the shadow gets
                // behind and drops, rather than taking the primary's cores.
                batcher: Batcher::start(
                    BatchConfig {
                        workers: (config.batch.workers / 2).max(1),
                        ..config.batch
                    },
                    metrics.clone(),
                ),
                permits: Arc::new(tokio::sync::Semaphore::new(max as usize)),
                max,
            }
        });
        let listener = bind(config.addr, "--addr").await?;
        let grpc_listener = match config.grpc_addr {
            Some(addr) => Some(bind(addr, "--grpc-addr").await?),
            None => None,
        };
        let local = listener
            .local_addr()
            .map_err(|e| ServeError::Io(e.to_string()))?;
        let log = RequestLog::start(
            Box::new(StoreSink::new(store.clone(), local.to_string())),
            config.log,
            metrics.clone(),
        );
        // One random prefix per process: request ids, and the server's
        // name in its serving statistics (a port is reused by restarts).
        let prefix: u32 = rand::random();
        let stats = match config.stats_every {
            Some(every) => ServingStats::start(
                Box::new(StoreStatsSink::new(store.clone())),
                format!("{local}/{prefix:08x}"),
                every,
                metrics.clone(),
            ),
            None => ServingStats::off(),
        };
        let app = Arc::new(App {
            routes,
            batcher: Batcher::start(config.batch, metrics.clone()),
            shadow,
            variant_key: config.variant_key,
            metrics,
            log,
            stats,
            timeout: config.timeout,
            max_body: config.max_body,
            ids: RequestIds::new(prefix),
        });
        Ok(Server {
            listener,
            grpc_listener,
            app,
            store,
            runtime,
            reload_every: config.reload_every,
            max_body: config.max_body,
            header_timeout: config.header_timeout,
            body_timeout: config.body_timeout,
            max_connections: config.max_connections.max(1),
            io_threads: config.io_threads,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address gRPC is answered on, if it is.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// What each served name serves now: `(name, version, canary)` where
    /// `canary` is `(version, percent)`.
    pub fn serving(&self) -> Vec<Serving> {
        self.app
            .routes
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    r.primary.current().version,
                    r.canary().map(|c| (c.slot.current().version, c.percent())),
                )
            })
            .collect()
    }

    /// The shadow of each served name that has one: `(name, version)`.
    pub fn shadows(&self) -> Vec<(String, i64)> {
        self.app
            .routes
            .iter()
            .filter_map(|r| Some((r.name.clone(), r.shadow.as_ref()?.current().version)))
            .collect()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests
    /// and writes the buffered request log and serving statistics.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let reload = tokio::spawn(reload_loop(
            self.app.clone(),
            self.store.clone(),
            self.runtime.clone(),
            self.reload_every,
        ));
        let router = router(self.app.clone(), self.max_body, self.body_timeout);
        // One shutdown signal, seen by both listeners.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let when_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let io = IoThreads::start(self.io_threads).map_err(|e| {
            ServeError::Io(format!("starting {} I/O threads: {e}", self.io_threads))
        })?;
        let http = connections::serve(
            self.listener,
            Some(&io),
            self.max_connections,
            http1_connections(router, self.header_timeout),
            when_stopped(stopped.clone()),
        );
        let grpc = async {
            match self.grpc_listener {
                Some(listener) => {
                    connections::serve(
                        listener,
                        None,
                        self.max_connections,
                        grpc_connections(grpc_api::service(self.app.clone()), self.header_timeout),
                        when_stopped(stopped.clone()),
                    )
                    .await
                }
                None => Ok(()),
            }
        };
        let signal = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        let (http, grpc, ()) = tokio::join!(http, grpc, signal);
        let served = http.and(grpc).map_err(ServeError::Io);
        reload.abort();
        // Shadow predictions still running are counted before the windows
        // close (each is bounded by --timeout).
        if let Some(lane) = &self.app.shadow {
            let _ = tokio::time::timeout(
                self.app.timeout + Duration::from_secs(1),
                lane.permits.acquire_many(lane.max),
            )
            .await;
        }
        // Every connection is closed and every shadow counted: their
        // threads can stop.
        let _ = tokio::task::spawn_blocking(move || drop(io)).await;
        let app = self.app.clone();
        tokio::task::spawn_blocking(move || {
            app.log.close();
            app.stats.close();
        })
        .await
        .map_err(|e| ServeError::Io(e.to_string()))?;
        served
    }
}

/// Serves each HTTP connection with hyper's HTTP/1: a header-read timeout
/// (which also bounds idle keep-alive time), requests marked busy while
/// answered, and on drain `Connection: close` after the request in flight.
fn http1_connections(router: Router, header_timeout: Duration) -> connections::ServeOne {
    use hyper_util::rt::TokioTimer;
    let service = hyper_util::service::TowerToHyperService::new(router);
    Arc::new(move |io, tracked, stop| {
        let io = hyper_util::rt::TokioIo::new(crate::parse_errors::JsonParseErrors::new(
            io.into_inner(),
        ));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(io, BusyWhile::new(service.clone(), tracked.clone()));
        Box::pin(connections::drive(connection, tracked, stop, |c| {
            c.graceful_shutdown()
        }))
    })
}

/// Serves each gRPC connection with hyper's HTTP/2: keep-alive pings every
/// `keep_alive` (a peer that stops answering is dropped), streams marked
/// busy while answered, and on drain a GOAWAY after the streams in flight.
fn grpc_connections(service: grpc_api::Service, keep_alive: Duration) -> connections::ServeOne {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    let service = hyper_util::service::TowerToHyperService::new(service);
    Arc::new(move |io, tracked, stop| {
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(keep_alive))
            .keep_alive_timeout(keep_alive)
            .serve_connection(io, BusyWhile::new(service.clone(), tracked.clone()));
        Box::pin(connections::drive(connection, tracked, stop, |c| {
            c.graceful_shutdown()
        }))
    })
}

/// A service whose requests mark their connection busy while answered (an
/// idle connection may be closed for a newcomer; a busy one is not).
#[derive(Clone)]
struct BusyWhile<S> {
    inner: S,
    tracked: Arc<connections::Tracked>,
}

impl<S> BusyWhile<S> {
    fn new(inner: S, tracked: Arc<connections::Tracked>) -> Self {
        BusyWhile { inner, tracked }
    }
}

impl<S, R> hyper::service::Service<R> for BusyWhile<S>
where
    S: hyper::service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, request: R) -> Self::Future {
        let busy = self.tracked.busy();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let r = answer.await;
            drop(busy);
            r
        })
    }
}

async fn bind(addr: SocketAddr, flag: &str) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        ServeError::Io(format!(
            "cannot listen on {addr}: {e}{}",
            if e.kind() == std::io::ErrorKind::AddrInUse {
                format!("; another process uses that port: pick another with `{flag}`")
            } else {
                String::new()
            }
        ))
    })
}

async fn load_slot(
    store: &Arc<Store>,
    runtime: &Arc<Runtime>,
    reference: &ModelRef,
) -> Result<Slot, LoadError> {
    let (store, runtime, r) = (store.clone(), runtime.clone(), reference.clone());
    let model = tokio::task::spawn_blocking(move || ServedModel::load(&store, &runtime, &r))
        .await
        .expect("loading a model does not panic")?;
    Ok(Slot {
        reference: Some(reference.clone()),
        shown: reference.to_string(),
        model: RwLock::new(Arc::new(model)),
        failed: RwLock::new(None),
    })
}

/// A slot serving the stored card `card` as `name` version 0, for good.
async fn load_artifact_slot(
    store: &Arc<Store>,
    runtime: &Arc<Runtime>,
    name: &str,
    card: &Digest,
) -> Result<Slot, LoadError> {
    let (store, runtime, n, c) = (store.clone(), runtime.clone(), name.to_string(), *card);
    let model =
        tokio::task::spawn_blocking(move || ServedModel::load_card(&store, &runtime, n, 0, &c))
            .await
            .expect("loading a model does not panic")?;
    Ok(Slot {
        reference: None,
        shown: format!("{name}={card}"),
        model: RwLock::new(Arc::new(model)),
        failed: RwLock::new(None),
    })
}

/// Looks the served references up again every `every`; when one resolves
/// to another version (an alias moved), loads it and switches to it.
/// Requests in flight finish on the version they started with.
async fn reload_loop(app: Arc<App>, store: Arc<Store>, runtime: Arc<Runtime>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        for route in &app.routes {
            follow_rollout(&app, route, &store, &runtime).await;
            let canary = route.canary().filter(|c| c.rollout.is_none());
            let slots = std::iter::once((&route.primary, ServingRole::Primary))
                .chain(canary.as_ref().map(|c| (&c.slot, ServingRole::Canary)))
                .chain(route.shadow.as_ref().map(|s| (s, ServingRole::Shadow)));
            for (slot, role) in slots {
                let Some(reference) = slot.reference.clone() else {
                    continue;
                };
                let (s, r) = (store.clone(), reference.clone());
                let resolved =
                    tokio::task::spawn_blocking(move || s.metadata.resolve_model(&r)).await;
                let Ok(Ok(Some(version))) = resolved else {
                    continue;
                };
                let current = slot.current().version;
                if version.version == current
                    || *slot.failed.read().unwrap() == Some(version.version)
                {
                    continue;
                }
                let r = ModelRef::Version(version.name.clone(), version.version);
                let (s, rt) = (store.clone(), runtime.clone());
                let loaded =
                    tokio::task::spawn_blocking(move || ServedModel::load(&s, &rt, &r)).await;
                let which = match role {
                    ServingRole::Primary => "",
                    ServingRole::Canary => " (canary)",
                    ServingRole::Shadow => " (shadow)",
                };
                match loaded {
                    Ok(Ok(model)) => {
                        *slot.model.write().unwrap() = Arc::new(model);
                        *slot.failed.write().unwrap() = None;
                        let route_name = format!("{}{which}", route.name);
                        app.metrics
                            .loaded(&route_name, &version.name, version.version);
                        eprintln!(
                            "sluice serve: {reference}{which} now serves version {} (was {current})",
                            version.version
                        );
                    }
                    Ok(Err(e)) => {
                        *slot.failed.write().unwrap() = Some(version.version);
                        eprintln!(
                            "sluice serve: {reference}{which} moved to version {}, which cannot be loaded; still serving version {current}: {e}",
                            version.version
                        );
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

/// Puts in, adjusts or takes out the canary of a running rollout of the
/// route's `NAME@ALIAS` (the store's `rollouts` row is the truth every
/// server follows): its candidate answers the row's share; when the
/// rollout ends, the start-up canary (if any) is back.
async fn follow_rollout(app: &App, route: &Route, store: &Arc<Store>, runtime: &Arc<Runtime>) {
    let Some(ModelRef::Alias(name, alias)) = &route.primary.reference else {
        return;
    };
    let (s, n, a) = (store.clone(), name.clone(), alias.clone());
    let Ok(Ok(running)) =
        tokio::task::spawn_blocking(move || s.metadata.running_rollout(&n, &a)).await
    else {
        return;
    };
    let current = route.canary();
    match running {
        None => {
            if current.as_ref().is_some_and(|c| c.rollout.is_some()) {
                *route.canary.write().unwrap() = route.configured_canary.clone();
                eprintln!("sluice serve: {name}@{alias}: the rollout ended; its canary is out");
            }
        }
        Some(r) => {
            if let Some(c) = current.filter(|c| c.rollout.as_deref() == Some(r.id.as_str())) {
                if c.percent() != r.share {
                    *c.percent.write().unwrap() = r.share;
                    eprintln!(
                        "sluice serve: {name}@{alias}: rollout {} gives version {} {}%",
                        r.id, r.candidate, r.share
                    );
                }
                return;
            }
            let reference = ModelRef::Version(name.clone(), r.candidate);
            let (s, rt, rf) = (store.clone(), runtime.clone(), reference.clone());
            match tokio::task::spawn_blocking(move || ServedModel::load(&s, &rt, &rf)).await {
                Ok(Ok(model)) => {
                    let slot = Slot {
                        shown: reference.to_string(),
                        reference: Some(reference),
                        model: RwLock::new(Arc::new(model)),
                        failed: RwLock::new(None),
                    };
                    app.metrics
                        .loaded(&format!("{name} (canary)"), name, r.candidate);
                    *route.canary.write().unwrap() =
                        Some(Canary::new(slot, r.share, Some(r.id.clone())));
                    eprintln!(
                        "sluice serve: {name}@{alias}: rollout {} gives version {} {}%",
                        r.id, r.candidate, r.share
                    );
                }
                Ok(Err(e)) => eprintln!(
                    "sluice serve: {name}@{alias}: rollout {} names version {}, which cannot be loaded: {e}",
                    r.id, r.candidate
                ),
                Err(_) => {}
            }
        }
    }
}

fn router(app: Arc<App>, max_body: usize, body_timeout: Duration) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_version_metadata),
        )
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_version_ready),
        )
        .route("/v2/models/{name}/infer", post(infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version),
        )
        .route("/invocations", post(invocations))
        .route("/version", get(version))
        .route("/ping", get(live))
        .route("/health", get(live))
        .route("/metrics", get(metrics))
        .fallback(unknown_endpoint)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            move |State(app): State<Arc<App>>, request, next| {
                body_within(app, body_timeout, max_body, request, next)
            },
        ))
        // `body_within` enforces --max-body; axum's own default (2 MB) off.
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

/// The model name and endpoint a request path counts under in the metrics
/// (`None` for paths that take no body worth counting).
fn counted_as<'a>(app: &'a App, path: &'a str) -> Option<(&'a str, &'static str)> {
    if path == "/invocations" {
        return Some((app.routes[0].name.as_str(), "invocations"));
    }
    let rest = path.strip_prefix("/v2/models/")?;
    let (name, _) = rest.split_once('/')?;
    path.ends_with("/infer").then_some((name, "infer"))
}

/// Reads a request's body whole within `timeout` (408 after it, so a body
/// trickled in cannot hold a connection and its buffer) and at most
/// `max_body` bytes (413), then hands the request on.
async fn body_within(
    app: Arc<App>,
    timeout: Duration,
    max_body: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let response = match tokio::time::timeout(timeout, axum::body::to_bytes(body, max_body)).await {
        Ok(Ok(bytes)) => {
            return next
                .run(axum::extract::Request::from_parts(
                    parts,
                    axum::body::Body::from(bytes),
                ))
                .await;
        }
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is larger than this server accepts (`sluice serve --max-body`)",
                )
                .into_response()
            } else {
                ApiError::bad_request(format!("the request body could not be read: {e}"))
                    .into_response()
            }
        }
        Err(_) => {
            let mut r = ApiError::status(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {timeout:?} (`sluice serve --body-timeout`)"
                ),
            )
            .into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    };
    // Refused here, before a handler: counted here.
    match counted_as(&app, parts.uri.path()) {
        Some((name, endpoint)) => finish(
            &app,
            name,
            None,
            endpoint,
            started,
            Ok::<_, ApiError>(response),
        ),
        None => response,
    }
}

async fn server_metadata() -> Response {
    json_response(json!({
        "name": SERVER_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
}

/// The server's name in its metadata.
const SERVER_NAME: &str = "sluice";

async fn live() -> Response {
    json_response(json!({ "live": true }))
}

async fn ready() -> Response {
    // Models load before the server listens: listening means ready.
    json_response(json!({ "ready": true }))
}

async fn model_metadata(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    metadata_of(&app, &name, None).unwrap_or_else(IntoResponse::into_response)
}

async fn model_version_metadata(
    State(app): State<Arc<App>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    metadata_of(&app, &name, Some(&version)).unwrap_or_else(IntoResponse::into_response)
}

fn metadata_of(app: &App, name: &str, version: Option<&str>) -> Result<Response, ApiError> {
    let (model, versions) = metadata_model(app, name, version)?;
    Ok(json_response(protocol::model_metadata(
        name,
        &versions,
        model.inputs(),
        model.outputs(),
    )))
}

/// What model metadata describes: the model (the named version, else the
/// primary one) and the versions served under `name` (just that one when
/// named).
fn metadata_model(
    app: &App,
    name: &str,
    version: Option<&str>,
) -> Result<(Arc<ServedModel>, Vec<i64>), ApiError> {
    let route = app.route(name)?;
    let model = match version {
        Some(_) => route.pick(version)?,
        None => route.primary.current(),
    };
    let versions = match version {
        Some(_) => vec![model.version],
        None => route.versions(),
    };
    Ok((model, versions))
}

async fn model_ready(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    match app.route(&name) {
        Ok(_) => json_response(json!({ "name": name, "ready": true })),
        Err(e) => e.into_response(),
    }
}

async fn model_version_ready(
    State(app): State<Arc<App>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    match app.route(&name).and_then(|r| r.pick(Some(&version))) {
        Ok(_) => json_response(json!({ "name": name, "ready": true })),
        Err(e) => e.into_response(),
    }
}

async fn infer(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    infer_on(app, name, None, headers, body).await
}

async fn infer_version(
    State(app): State<Arc<App>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    infer_on(app, name, Some(version), headers, body).await
}

/// The request body, inflated when its `Content-Encoding` is gzip or
/// deflate (zlib, as Triton's and KServe's clients send it), never to more
/// than `max_body` bytes.
fn request_body(headers: &HeaderMap, body: Bytes, max_body: usize) -> Result<Bytes, ApiError> {
    use std::io::Read;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let mut reader: Box<dyn Read> = match encoding.as_deref() {
        None | Some("identity") => return Ok(body),
        Some("gzip" | "x-gzip") => Box::new(flate2::read::GzDecoder::new(&body[..])),
        Some("deflate") => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
        Some(other) => {
            return Err(ApiError::status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "`Content-Encoding: {other}` is not one this server reads; send gzip, deflate or identity"
                ),
            ));
        }
    };
    let mut inflated = Vec::new();
    (&mut reader)
        .take(max_body as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| {
            ApiError::bad_request(format!(
                "the body is not valid {} data: {e}",
                encoding.as_deref().unwrap_or_default()
            ))
        })?;
    if inflated.len() > max_body {
        return Err(ApiError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body, inflated, is larger than this server accepts (`sluice serve --max-body`)",
        ));
    }
    Ok(Bytes::from(inflated))
}

/// The `Inference-Header-Content-Length` header of the binary tensor data
/// extension, if sent.
fn inference_header_length(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    headers
        .get(INFERENCE_HEADER_CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`Inference-Header-Content-Length` must be a number of bytes, not {v:?}"
                    ))
                })
        })
        .transpose()
}

/// The header of the binary tensor data extension: how many bytes of the
/// body are the JSON document (the binary values follow).
const INFERENCE_HEADER_CONTENT_LENGTH: &str = "inference-header-content-length";

/// An inference response: JSON alone, or JSON followed by binary values.
fn infer_http_response(response: protocol::InferResponse) -> Response {
    if response.binary.is_empty() {
        return json_bytes_response(response.json);
    }
    let mut body = response.json;
    let header_length = body.len();
    body.extend_from_slice(&response.binary);
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::HeaderName::from_static(INFERENCE_HEADER_CONTENT_LENGTH),
                header_length.to_string(),
            ),
        ],
        body,
    )
        .into_response()
}

async fn infer_on(
    app: Arc<App>,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let mut served: Option<Picked> = None;
    let result = async {
        app.route(&name)?;
        let body = request_body(&headers, body, app.max_body)?;
        let request = protocol::parse_infer_with(&body, inference_header_length(&headers)?)
            .map_err(|e| ApiError::bad_request(e.0))?;
        let key = app.header_key(|h| headers.get(h).and_then(|v| v.to_str().ok()));
        let version = version.as_deref();
        if body.len() > BORROWED_BODY_MAX {
            let request = request.into_owned();
            drop(body);
            answer_v2(&app, &name, version, &request, key, &mut served).await
        } else {
            answer_v2(&app, &name, version, &request, key, &mut served).await
        }
    }
    .await;
    finish(&app, &name, served, "infer", started, result)
}

/// The largest request body kept while its request is answered, so that
/// the request's names can stay borrowed from it. A larger body is freed
/// once read (its names copied), so that a burst of large requests does
/// not hold each body through its prediction beside the table made from
/// it.
pub(crate) const BORROWED_BODY_MAX: usize = 64 * 1024;

/// The v2 answer to a parsed inference request.
async fn answer_v2(
    app: &Arc<App>,
    name: &str,
    version: Option<&str>,
    request: &protocol::InferRequest<'_>,
    key: Option<String>,
    served: &mut Option<Picked>,
) -> Result<Response, ApiError> {
    let answer = app.infer(name, version, request, key, served).await?;
    let response = protocol::infer_response(
        &answer.model.name,
        answer.model.version,
        &answer.id,
        &answer.predictions,
        request,
    )
    .map_err(|e| ApiError::bad_request(e.0))?;
    Ok(infer_http_response(response))
}

/// A prediction made for an inference request, whichever transport it
/// came by.
struct Answer {
    model: Arc<ServedModel>,
    id: String,
    predictions: RecordBatch,
}

impl App {
    /// The request's variant key when keys come from a header
    /// (`--variant-key header:NAME`): `get` reads a header or gRPC metadata
    /// entry by name.
    fn header_key<'a>(&self, get: impl FnOnce(&str) -> Option<&'a str>) -> Option<String> {
        match &self.variant_key {
            VariantKey::Header(h) => get(h).map(str::trim).map(str::to_string),
            VariantKey::Field(_) => None,
        }
    }

    /// Picks the model version a request goes to, and makes its request
    /// table with `table` (given the version's inputs). With keys read from
    /// an input column and a canary to split for, the table is made for
    /// the primary first to read the key, and made again only when the
    /// version picked takes other inputs. A table refused before a version
    /// was picked is counted under none.
    fn pick_and_table(
        &self,
        route: &Route,
        version: Option<&str>,
        key: Option<String>,
        table: impl Fn(Option<&crate::signature::Signature>) -> Result<RecordBatch, ApiError>,
        served: &mut Option<Picked>,
    ) -> Result<(Arc<ServedModel>, ServingRole, RecordBatch), ApiError> {
        let mut early = None;
        let key = match &self.variant_key {
            VariantKey::Field(column) if version.is_none() && route.canary().is_some() => {
                let primary = route.primary.current();
                let t = table(primary.inputs())?;
                let key = field_key(&t, column);
                early = Some((primary, t));
                key
            }
            _ => key,
        };
        let (model, role) = route.pick_role(version, key.as_deref())?;
        *served = Some(Picked {
            version: model.version,
            role,
        });
        let table = match early {
            Some((primary, t)) if primary.inputs() == model.inputs() => t,
            _ => table(model.inputs())?,
        };
        Ok((model, role, table))
    }

    /// Answers `request` with the model served as `name` (its `version`
    /// if one is named, else the canary split's pick, by `key` when the
    /// request has one): the request table, the prediction through the
    /// batcher, the request logged when sampled, and a copy handed to the
    /// route's shadow when the primary answered. `served` is set to the
    /// version that answered as soon as one is picked (for the response
    /// headers and metrics, errors too).
    async fn infer(
        self: &Arc<Self>,
        name: &str,
        version: Option<&str>,
        request: &protocol::InferRequest<'_>,
        key: Option<String>,
        served: &mut Option<Picked>,
    ) -> Result<Answer, ApiError> {
        let route = self.route(name)?;
        let (model, role, table) = self.pick_and_table(
            route,
            version,
            key,
            |inputs| protocol::infer_table(request, inputs).map_err(|e| ApiError::bad_request(e.0)),
            served,
        )?;
        let predictions = predict(self, &model, &table).await?;
        let id = request.id.clone().unwrap_or_else(|| self.ids.next());
        if self.log.sampled() {
            self.log
                .record(&model, &route.primary.shown, &id, &table, &predictions);
        }
        if role == ServingRole::Primary {
            self.shadow(route, &model, table, &predictions);
        }
        Ok(Answer {
            model,
            id,
            predictions,
        })
    }

    /// Hands a copy of a request the primary answered to the route's shadow,
    /// if it has one: predicted in a task of its own, through the shadow's
    /// batcher, compared with the primary's `answer` and counted (metrics,
    /// and the serving statistics under the role `shadow`). The client's
    /// answer is already made from the primary's; nothing here waits. When
    /// `--shadow-max-inflight` copies are already queued or running, this
    /// one is dropped and counted.
    fn shadow(
        self: &Arc<Self>,
        route: &Route,
        primary: &ServedModel,
        table: RecordBatch,
        answer: &RecordBatch,
    ) {
        let (Some(lane), Some(slot)) = (&self.shadow, &route.shadow) else {
            return;
        };
        let shadow = slot.current();
        let Ok(permit) = lane.permits.clone().try_acquire_owned() else {
            self.metrics
                .shadow(&route.name, shadow.version, ShadowOutcome::Dropped);
            return;
        };
        let app = self.clone();
        let answer = answer.clone();
        let classifier = primary.is_classifier();
        let (name, reference) = (route.name.clone(), slot.shown.clone());
        let served_route = route.primary.shown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(lane) = &app.shadow else {
                return;
            };
            let started = Instant::now();
            let predicted =
                tokio::time::timeout(app.timeout, lane.batcher.predict(shadow.clone(), table))
                    .await;
            let took = started.elapsed();
            let (outcome, status) = match predicted {
                Ok(Ok(p)) => {
                    let c = compare(&answer, &p, classifier);
                    (
                        ShadowOutcome::Compared {
                            disagreed: c.disagreed,
                            max_abs_diff: c.max_abs_diff,
                        },
                        200,
                    )
                }
                Ok(Err(e)) => (ShadowOutcome::Error, ApiError::predict(e).status.as_u16()),
                Err(_) => (ShadowOutcome::Error, StatusCode::GATEWAY_TIMEOUT.as_u16()),
            };
            app.metrics.shadow(&name, shadow.version, outcome);
            app.stats.record(&Answered {
                name: &name,
                version: shadow.version,
                reference: &reference,
                role: ServingRole::Shadow,
                route: &served_route,
                status,
                took,
            });
        });
    }
}

async fn invocations(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let name = app.routes[0].name.clone();
    let mut served: Option<Picked> = None;
    let result = async {
        let body = request_body(&headers, body, app.max_body)?;
        let csv = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/csv"));
        let route = &app.routes[0];
        let key = app.header_key(|h| headers.get(h).and_then(|v| v.to_str().ok()));
        let (model, role, table) = app.pick_and_table(
            route,
            None,
            key,
            |inputs| {
                if csv {
                    protocol::invocations_csv_table(&body, inputs)
                } else {
                    protocol::invocations_table(&body, inputs)
                }
                .map_err(|e| ApiError::bad_request(e.0))
            },
            &mut served,
        )?;
        let predictions = predict(&app, &model, &table).await?;
        if app.log.sampled() {
            let id = app.ids.next();
            app.log
                .record(&model, &route.primary.shown, &id, &table, &predictions);
        }
        if role == ServingRole::Primary {
            app.shadow(route, &model, table, &predictions);
        }
        Ok::<_, ApiError>(json_bytes_response(protocol::invocations_response(
            &predictions,
        )))
    }
    .await
    .map_err(mlflow_error);
    finish(&app, &name, served, "invocations", started, result)
}

/// An error of `/invocations` in MLflow's shape: `{"error_code", "message"}`.
fn mlflow_error(e: ApiError) -> Response {
    let code = match e.status {
        StatusCode::BAD_REQUEST => "BAD_REQUEST",
        StatusCode::NOT_FOUND => "ENDPOINT_NOT_FOUND",
        StatusCode::PAYLOAD_TOO_LARGE => "RESOURCE_LIMIT_EXCEEDED",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "INVALID_PARAMETER_VALUE",
        StatusCode::GATEWAY_TIMEOUT => "DEADLINE_EXCEEDED",
        _ => "INTERNAL_ERROR",
    };
    let mut r = json_response(json!({ "error_code": code, "message": e.message }));
    *r.status_mut() = e.status;
    r
}

/// MLflow's `GET /version`: the server's version, as text.
async fn version() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        env!("CARGO_PKG_VERSION"),
    )
        .into_response()
}

async fn predict(
    app: &App,
    model: &Arc<ServedModel>,
    table: &RecordBatch,
) -> Result<RecordBatch, ApiError> {
    match tokio::time::timeout(
        app.timeout,
        app.batcher.predict(model.clone(), table.clone()),
    )
    .await
    {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(ApiError::predict(e)),
        Err(_) => Err(ApiError {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: format!(
                "the prediction took longer than {:?} (`sluice serve --timeout`)",
                app.timeout
            ),
        }),
    }
}

/// The response, with the version that answered in a header, counted in
/// the metrics: under the model's name when it is served here, else under
/// one label for all unknown names (a client cannot grow `/metrics`).
fn finish<E: IntoResponse>(
    app: &App,
    name: &str,
    served: Option<Picked>,
    endpoint: &str,
    started: Instant,
    result: Result<Response, E>,
) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(p) = served {
        let headers = response.headers_mut();
        headers.insert(MODEL_VERSION_HEADER, HeaderValue::from(p.version));
        headers.insert(VARIANT_HEADER, HeaderValue::from_static(p.role.as_str()));
    }
    app.count(name, served, endpoint, response.status().as_u16(), started);
    response
}

impl App {
    /// Counts a request in the metrics: under the model's name when it is
    /// served here, else under one label for all unknown names (a client
    /// cannot grow `/metrics`); and, when a version of a served model was
    /// picked for it, in the serving statistics under that version and the
    /// role and reference that picked it.
    fn count(
        &self,
        name: &str,
        served: Option<Picked>,
        endpoint: &str,
        status: u16,
        started: Instant,
    ) {
        let took = started.elapsed();
        let route = self.routes.iter().find(|r| r.name == name);
        let label = if route.is_some() {
            name
        } else {
            UNKNOWN_MODEL_LABEL
        };
        self.metrics
            .request(label, served.map(|p| p.version), endpoint, status, took);
        if let (Some(route), Some(p)) = (route, served) {
            route.with_shown(p.role, |shown| {
                self.stats.record(&Answered {
                    name: &route.name,
                    version: p.version,
                    reference: shown,
                    role: p.role,
                    route: &route.primary.shown,
                    status,
                    took,
                })
            });
        }
    }
}

/// The response header naming the model version that answered a request
/// (under a canary, which of the two did).
pub const MODEL_VERSION_HEADER: &str = "sluice-model-version";

/// The response header naming the side of the route that answered a
/// request: `primary` or `canary`.
pub const VARIANT_HEADER: &str = "sluice-variant";

/// The metrics label of requests for models this server does not serve.
pub const UNKNOWN_MODEL_LABEL: &str = "(unknown)";

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

/// A known path asked with the wrong method: 405, saying which it takes.
async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let path = uri.path();
    let allowed = if path.ends_with("/infer") || path == "/invocations" {
        "POST"
    } else {
        "GET"
    };
    let mut r = ApiError::status(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{path} does not answer {method}; use {allowed}"),
    )
    .into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    r
}

async fn unknown_endpoint(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    ApiError::not_found(format!(
        "no endpoint {method} {}; this server answers GET /v2, /v2/health/live, /v2/health/ready, \
         /v2/models/NAME[/versions/V][/ready], /metrics, /version and POST /v2/models/NAME[/versions/V]/infer, /invocations",
        uri.path()
    ))
    .into_response()
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
