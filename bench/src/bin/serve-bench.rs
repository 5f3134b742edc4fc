//! Helpers of bench/serve/run.sh:
//!
//! - `serve-bench hello ADDR`: a bare hyper HTTP/1 server that reads each
//!   request's body and answers a fixed one-row prediction. The ceiling of
//!   this machine's HTTP stack under the same load generator: what sluice
//!   would reach if a request cost nothing but HTTP.
//! - `serve-bench grpc-load ADDR MODEL V2_BODY.json CONNECTIONS SECONDS
//!   WARMUP`: a closed-loop gRPC load generator (one outstanding ModelInfer
//!   per HTTP/2 connection, like wrk's connections), sending the rows of an
//!   Open Inference Protocol JSON body as raw tensor contents, as
//!   `tritonclient.grpc` does. Prints one `WRK_JSON {...}` line in
//!   post.lua's format, counting only answers with gRPC status OK as
//!   requests.
//! - `serve-bench grpc-body MODEL V2_BODY.json OUT`: writes the same
//!   framed ModelInfer request to `OUT`, for a load generator written in C
//!   (`h2load -d OUT`), whose own CPU cost is closer to wrk's.
//! - `serve-bench request-tables WIDTH…`: the server's CPU time to read a
//!   one-row request into the model's input table, for a model of WIDTH
//!   float columns, in each format a client sends (v2 JSON tensors, gRPC
//!   raw contents, MLflow's `dataframe_split` and `dataframe_records`),
//!   the columns in the model's order and reversed. In-process, on one
//!   thread: the part of a request's cost that grows with the model's
//!   width. With each time, how many heap allocations one read makes (this
//!   binary counts them): unlike the time, the count does not depend on
//!   how busy the machine is.
//! - `serve-bench predict STORE MODEL V2_BODY.json ROWS…`: the server's
//!   CPU time to predict a batch of ROWS rows (the body's first row
//!   repeated) with a registered model, as its prediction path runs it:
//!   conform, the transform component (pooled instance), the ONNX model.
//!   In-process, on one thread, with the allocations each prediction
//!   makes: the part of a request's cost that the batcher shares among
//!   the requests of a batch.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use sluice_serve::grpc::inference::ModelInferRequest;
use sluice_serve::grpc::inference::model_infer_request::InferInputTensor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, counting the allocations each thread makes.
struct Counting;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// How many allocations (and reallocations) this thread has made.
fn allocations() -> u64 {
    ALLOCATIONS.with(std::cell::Cell::get)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match args.first().map(String::as_str) {
        Some("hello") if args.len() == 2 => runtime.block_on(hello(&args[1])),
        Some("grpc-body") if args.len() == 4 => {
            let body = read_json(&args[2]);
            std::fs::write(&args[3], grpc_frame(&args[1], &body)).expect("the output writes");
        }
        Some("request-tables") if args.len() > 1 => {
            let widths: Vec<usize> = args[1..]
                .iter()
                .map(|w| w.parse().expect("each WIDTH is a whole number"))
                .collect();
            request_tables(&widths);
        }
        Some("predict") if args.len() > 4 => {
            let rows: Vec<usize> = args[4..]
                .iter()
                .map(|r| r.parse().expect("each ROWS is a whole number"))
                .collect();
            predict(&args[1], &args[2], &args[3], &rows);
        }
        Some("grpc-load") if args.len() == 7 => {
            let number = |i: usize| -> u64 { args[i].parse().expect("a whole number") };
            runtime.block_on(grpc_load(
                &args[1],
                &args[2],
                &args[3],
                number(4) as usize,
                Duration::from_secs(number(5)),
                Duration::from_secs(number(6)),
            ))
        }
        _ => {
            eprintln!(
                "usage: serve-bench hello ADDR\n       serve-bench grpc-load ADDR MODEL V2_BODY.json CONNECTIONS SECONDS WARMUP\n       serve-bench grpc-body MODEL V2_BODY.json OUT\n       serve-bench request-tables WIDTH...\n       serve-bench predict STORE MODEL V2_BODY.json ROWS..."
            );
            std::process::exit(2);
        }
    }
}

/// What the bare server answers: a one-row response of the same shape as
/// sluice's.
const HELLO: &str = r#"{"model_name":"hello","model_version":"1","id":"1","outputs":[{"name":"prediction","datatype":"BYTES","shape":[1],"data":["malignant"]}]}"#;

async fn hello(addr: &str) {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("the address binds");
    println!("listening on http://{}", listener.local_addr().unwrap());
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(|request: Request<hyper::body::Incoming>| async move {
                    let _ = request.into_body().collect().await;
                    Ok::<_, hyper::Error>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(HELLO.as_bytes())))
                            .unwrap(),
                    )
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// The rows of an Open Inference Protocol JSON body as a gRPC ModelInfer
/// request with raw contents, framed for the wire (a 0 byte for "not
/// compressed", the length, the message).
fn grpc_frame(model: &str, body: &serde_json::Value) -> Bytes {
    let mut request = ModelInferRequest {
        model_name: model.to_string(),
        ..Default::default()
    };
    for input in body["inputs"].as_array().expect("`inputs` in the body") {
        let values: Vec<f64> = input["data"]
            .as_array()
            .expect("JSON `data`")
            .iter()
            .map(|v| v.as_f64().expect("numbers"))
            .collect();
        request.inputs.push(InferInputTensor {
            name: input["name"].as_str().unwrap().to_string(),
            datatype: "FP64".into(),
            shape: vec![values.len() as i64],
            ..Default::default()
        });
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        request.raw_input_contents.push(raw.into());
    }
    let message = request.encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(message.len() as u32);
    frame.put_slice(&message);
    frame.freeze()
}

/// Prints, for each width, the mean time to read a one-row request of that
/// many float columns (`f0`, `f1`, …, sent in that order and reversed)
/// into the model's input table, in each request format, and how many heap
/// allocations one read makes.
fn request_tables(widths: &[usize]) {
    use sluice_serve::signature::{ColumnSpec, DType, Signature};
    use sluice_serve::{grpc, protocol};
    println!(
        "| columns | sent | v2 JSON µs (allocations) | gRPC raw µs (allocations) | dataframe_split µs (allocations) | dataframe_records µs (allocations) |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: |");
    for (&width, reversed) in widths.iter().flat_map(|w| [(w, false), (w, true)]) {
        let signature = Signature::new(
            (0..width)
                .map(|i| ColumnSpec {
                    name: format!("f{i}"),
                    column_type: DType::Float64,
                })
                .collect(),
        );
        let order: Vec<usize> = match reversed {
            false => (0..width).collect(),
            true => (0..width).rev().collect(),
        };
        let value = |i: usize| i as f64 + 0.5;
        let v2 = serde_json::json!({"inputs": order.iter().map(|&i| serde_json::json!(
            {"name": format!("f{i}"), "shape": [1], "datatype": "FP64", "data": [value(i)]}
        )).collect::<Vec<_>>()});
        let frame = grpc_frame("m", &v2);
        let message = frame.slice(5..);
        let v2 = serde_json::to_vec(&v2).unwrap();
        let split = serde_json::to_vec(&serde_json::json!({"dataframe_split": {
            "columns": order.iter().map(|i| format!("f{i}")).collect::<Vec<_>>(),
            "data": [order.iter().map(|&i| value(i)).collect::<Vec<_>>()],
        }}))
        .unwrap();
        let records = serde_json::to_vec(&serde_json::json!({"dataframe_records": [
            order.iter().map(|&i| (format!("f{i}"), serde_json::json!(value(i))))
                .collect::<serde_json::Map<_, _>>()
        ]}))
        .unwrap();
        let s = Some(&signature);
        let formats: [&dyn Fn() -> usize; 4] = [
            &|| {
                let r = protocol::parse_infer(&v2).unwrap();
                protocol::infer_table(&r, s).unwrap().num_columns()
            },
            &|| {
                let m = grpc::ModelInfer::read(&message).unwrap();
                let r = grpc::infer_request(m).unwrap();
                protocol::infer_table(&r, s).unwrap().num_columns()
            },
            &|| {
                protocol::invocations_table(&split, s)
                    .unwrap()
                    .num_columns()
            },
            &|| {
                protocol::invocations_table(&records, s)
                    .unwrap()
                    .num_columns()
            },
        ];
        let cells: Vec<String> = formats
            .iter()
            .map(|read| {
                assert_eq!(read(), width, "every column is read");
                // Counted on a second read: the first may set up what lasts.
                let before = allocations();
                std::hint::black_box(read());
                let made = allocations() - before;
                // Repeat for about half a second; report the mean.
                let (mut n, started) = (0u32, Instant::now());
                while started.elapsed() < Duration::from_millis(500) || n < 3 {
                    std::hint::black_box(read());
                    n += 1;
                }
                format!(
                    "{:.1} ({made})",
                    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
                )
            })
            .collect();
        let sent = if reversed { "reversed" } else { "in order" };
        println!("| {width} | {sent} | {} |", cells.join(" | "));
    }
}

fn predict(store: &str, model: &str, body_path: &str, rows: &[usize]) {
    use sluice_serve::{ServedModel, protocol};
    let store = sluice_store::Store::open(store).expect("the store opens");
    let runtime = sluice_runtime::Runtime::new(sluice_runtime::RuntimeConfig {
        cache_dir: None,
        cache_key_file: None,
    })
    .expect("a component runtime");
    let reference = model.parse().expect("MODEL is a model reference");
    let served = ServedModel::load(&store, &runtime, &reference).expect("the model loads");
    let body = std::fs::read(body_path).expect("the body file reads");
    let request = protocol::parse_infer(&body).expect("the body is a v2 request");
    let one = protocol::infer_table(&request, served.inputs()).expect("the body fits the model");
    let one = one.slice(0, 1);
    println!("| rows | µs per prediction (median) | µs per row | allocations per prediction |");
    println!("| ---: | ---: | ---: | ---: |");
    for &n in rows {
        let copies = vec![one.clone(); n];
        let batch = arrow_select::concat::concat_batches(&one.schema(), &copies).unwrap();
        let run = || {
            served
                .predict(&batch)
                .expect("the model predicts")
                .num_rows()
        };
        assert_eq!(run(), n, "one prediction per row");
        let before = allocations();
        std::hint::black_box(run());
        let made = allocations() - before;
        // The median of a second of predictions: a shared machine's
        // stalls move the mean, much less the median.
        let (mut times, started) = (Vec::new(), Instant::now());
        while started.elapsed() < Duration::from_secs(1) || times.len() < 3 {
            let one = Instant::now();
            std::hint::black_box(run());
            times.push(one.elapsed());
        }
        times.sort_unstable();
        let micros = times[times.len() / 2].as_secs_f64() * 1e6;
        println!("| {n} | {micros:.1} | {:.2} | {made} |", micros / n as f64);
    }
}

/// The JSON document in the file at `path`.
fn read_json(path: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("the body file reads"))
        .expect("the body is JSON")
}

/// One client's tally.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    latencies_us: Vec<u64>,
}

async fn grpc_load(
    addr: &str,
    model: &str,
    body_path: &str,
    connections: usize,
    duration: Duration,
    warmup: Duration,
) {
    let frame = grpc_frame(model, &read_json(body_path));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..connections {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .expect("the gRPC port accepts");
        let _ = tcp.set_nodelay(true);
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .expect("an HTTP/2 handshake");
        tokio::spawn(connection);
        let (frame, counting, stop, uri) = (
            frame.clone(),
            counting.clone(),
            stop.clone(),
            format!("http://{addr}/inference.GRPCInferenceService/ModelInfer"),
        );
        clients.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while !stop.load(Ordering::Relaxed) {
                let request = Request::post(&uri)
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(Full::new(frame.clone()))
                    .unwrap();
                let sent = Instant::now();
                let ok = match sender.send_request(request).await {
                    Ok(response) => {
                        let ok_head = response.status() == 200;
                        match response.into_body().collect().await {
                            Ok(collected) => {
                                let status = collected
                                    .trailers()
                                    .and_then(|t| t.get("grpc-status"))
                                    .map(|v| v.as_bytes().to_vec());
                                let mut data = collected.to_bytes();
                                ok_head
                                    && status.as_deref() == Some(b"0")
                                    && data.remaining() > 5
                                    && data.get_u8() == 0
                            }
                            Err(_) => false,
                        }
                    }
                    Err(_) => false,
                };
                if counting.load(Ordering::Relaxed) {
                    if ok {
                        tally.ok += 1;
                        tally.latencies_us.push(sent.elapsed().as_micros() as u64);
                    } else {
                        tally.failed += 1;
                    }
                }
                if !ok && sender.ready().await.is_err() {
                    break;
                }
            }
            tally
        }));
    }
    tokio::time::sleep(warmup).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut all = Tally::default();
    for c in clients {
        let t = c.await.expect("a client task");
        all.ok += t.ok;
        all.failed += t.failed;
        all.latencies_us.extend(t.latencies_us);
    }
    all.latencies_us.sort_unstable();
    let pct = |p: f64| -> u64 {
        if all.latencies_us.is_empty() {
            return 0;
        }
        let i = ((p / 100.0) * (all.latencies_us.len() - 1) as f64).round() as usize;
        all.latencies_us[i]
    };
    let mean = if all.latencies_us.is_empty() {
        0.0
    } else {
        all.latencies_us.iter().sum::<u64>() as f64 / all.latencies_us.len() as f64
    };
    println!(
        "WRK_JSON {}",
        serde_json::json!({
            "requests": all.ok + all.failed,
            "duration_s": elapsed,
            "rps": all.ok as f64 / elapsed,
            "bytes": 0,
            "latency_us": {
                "mean": mean,
                "p50": pct(50.0),
                "p90": pct(90.0),
                "p99": pct(99.0),
                "p999": pct(99.9),
                "max": all.latencies_us.last().copied().unwrap_or(0),
            },
            "non2xx": all.failed,
            "connect_errors": 0,
            "read_errors": 0,
            "write_errors": 0,
            "timeouts": 0,
        })
    );
}
