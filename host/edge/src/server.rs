//! `sluice-edge serve`: the Open Inference Protocol v2 over HTTP/1 (health,
//! server and model metadata, infer with JSON or binary tensors) for the
//! bundle in use, which a new bundle replaces without a moment with no
//! model (see [`crate::updates`]); answered requests are logged to a
//! folder when asked (`--request-log`, see [`sluice_serve::reqlog::folder`]).

use crate::loaded::Loaded;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use sluice_serve::protocol;
use sluice_serve::reqlog::{RequestIds, RequestLog};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The bundle in use, and what became of the last update.
pub struct Current {
    loaded: RwLock<Arc<Loaded>>,
    last_refused: Mutex<Option<Value>>,
}

impl Current {
    /// Starts with `loaded`.
    pub fn new(loaded: Arc<Loaded>) -> Self {
        Current {
            loaded: RwLock::new(loaded),
            last_refused: Mutex::new(None),
        }
    }

    /// The bundle in use now. Requests hold their own reference, so a
    /// switch never cuts one short.
    pub fn get(&self) -> Arc<Loaded> {
        self.loaded.read().unwrap().clone()
    }

    /// Switches to `loaded` (already checked and self-tested).
    pub fn switch(&self, loaded: Arc<Loaded>) {
        *self.loaded.write().unwrap() = loaded;
    }

    /// Records a bundle that was refused, and why.
    pub fn refused(&self, file: &str, why: &str) {
        *self.last_refused.lock().unwrap() = Some(json!({"file": file, "error": why}));
    }
}

/// What every request is answered with: the bundle in use, the request
/// log, the ids given to requests that bring none.
pub struct Service {
    current: Arc<Current>,
    log: Option<RequestLog>,
    ids: RequestIds,
}

impl Service {
    /// Serves `current`, logging answered requests to `log` if given.
    pub fn new(current: Arc<Current>, log: Option<RequestLog>) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Service {
            current,
            log,
            // Unique enough that ids of two runs of the device do not meet
            // in a store that ingests both logs.
            ids: RequestIds::new((nanos ^ (u64::from(std::process::id()) << 32)) as u32),
        }
    }

    /// Writes what the request log holds (at shutdown).
    pub fn close(&self) {
        if let Some(log) = &self.log {
            log.close();
        }
    }
}

/// How the server bounds its work.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body.
    pub max_body: usize,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
}

/// Serves until the process is told to stop (SIGINT, SIGTERM).
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    limits: Limits,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("never closed"),
            _ = &mut stop => return Ok(()),
        };
        let (stream, _) = tokio::select! {
            a = listener.accept() => a?,
            _ = &mut stop => return Ok(()),
        };
        let service = service.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let service = service.clone();
                let max_body = limits.max_body;
                async move { Ok::<_, std::convert::Infallible>(handle(req, service, max_body).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Binds `addr`, saying so on stderr (tests and scripts read the port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("sluice-edge listening on http://{}", listener.local_addr()?);
    Ok(listener)
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    json_response(status, &json!({"error": message.into()}))
}

async fn handle(
    req: Request<Incoming>,
    service: Arc<Service>,
    max_body: usize,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let current = &service.current;
    let loaded = current.get();
    let model = &loaded.model;
    let get = req.method() == Method::GET;
    match segments.as_slice() {
        ["v2", "health", "live"] if get => json_response(StatusCode::OK, &json!({"live": true})),
        ["v2", "health", "ready"] if get => json_response(StatusCode::OK, &json!({"ready": true})),
        ["v2"] if get => json_response(
            StatusCode::OK,
            &json!({
                "name": "sluice-edge",
                "version": env!("CARGO_PKG_VERSION"),
                "extensions": ["binary_tensor_data"],
            }),
        ),
        ["v2", "edge", "bundle"] if get => json_response(
            StatusCode::OK,
            &json!({
                "sha256": loaded.sha256,
                "model": {"name": model.name, "version": model.version},
                "target": loaded.manifest.target,
                "signed_by": loaded.signed_by,
                "selftest_rows": loaded.selftest_rows,
                "steps": loaded.steps.iter().map(|(s, _)| s).collect::<Vec<_>>(),
                "last_refused": current.last_refused.lock().unwrap().clone(),
            }),
        ),
        ["v2", "models", name, rest @ ..] => {
            if *name != model.name {
                return error(
                    StatusCode::NOT_FOUND,
                    format!(
                        "model `{name}` is not served here; this device serves `{}`",
                        model.name
                    ),
                );
            }
            let rest = match rest {
                ["versions", v, rest @ ..] => {
                    if *v != model.version.to_string() {
                        return error(
                            StatusCode::NOT_FOUND,
                            format!(
                                "version {v} of `{name}` is not served here; this device serves version {}",
                                model.version
                            ),
                        );
                    }
                    rest
                }
                other => other,
            };
            match rest {
                [] if get => json_response(
                    StatusCode::OK,
                    &protocol::model_metadata(
                        &model.name,
                        &[model.version],
                        model.inputs(),
                        model.outputs(),
                    ),
                ),
                ["ready"] if get => {
                    json_response(StatusCode::OK, &json!({"name": model.name, "ready": true}))
                }
                ["infer"] if req.method() == Method::POST => {
                    infer(req, loaded.clone(), service.clone(), max_body).await
                }
                [] | ["ready"] | ["infer"] => {
                    error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
                }
                _ => error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}")),
            }
        }
        _ => error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}")),
    }
}

async fn infer(
    req: Request<Incoming>,
    loaded: Arc<Loaded>,
    service: Arc<Service>,
    max_body: usize,
) -> Response<Full<Bytes>> {
    let header_length = match req.headers().get("inference-header-content-length") {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()) {
            Some(n) => Some(n),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "`Inference-Header-Content-Length` must be a whole number of bytes",
                );
            }
        },
    };
    let body = match Limited::new(req.into_body(), max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request is larger than {max_body} bytes (sluice-edge serve --max-body)"
                ),
            );
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the request: {e}")),
    };
    let work = tokio::task::spawn_blocking(move || {
        let model = &loaded.model;
        let request =
            protocol::parse_infer_with(&body, header_length).map_err(|e| (true, e.to_string()))?;
        let table =
            protocol::infer_table(&request, model.inputs()).map_err(|e| (true, e.to_string()))?;
        let predictions = model
            .predict(&table)
            .map_err(|e| (e.blames_request(), e.to_string()))?;
        let id = request.id.clone().unwrap_or_else(|| service.ids.next());
        if let Some(log) = service.log.as_ref().filter(|l| l.sampled()) {
            // The device's one route: the model as the bundle asked for it.
            let route = &loaded.manifest.model.reference;
            log.record(model, route, &id, &table, &predictions);
        }
        protocol::infer_response(&model.name, model.version, &id, &predictions, &request)
            .map_err(|e| (true, e.to_string()))
    })
    .await;
    match work {
        Ok(Ok(response)) => {
            let json = response.json;
            let mut builder = Response::builder().header("content-type", "application/json");
            let body = if response.binary.is_empty() {
                Bytes::from(json)
            } else {
                builder = builder
                    .header("content-type", "application/octet-stream")
                    .header("inference-header-content-length", json.len());
                let mut all = json;
                all.extend_from_slice(&response.binary);
                Bytes::from(all)
            };
            builder.body(Full::new(body)).expect("a valid response")
        }
        Ok(Err((true, message))) => error(StatusCode::BAD_REQUEST, message),
        Ok(Err((false, message))) => error(StatusCode::INTERNAL_SERVER_ERROR, message),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the prediction failed: {e}"),
        ),
    }
}
