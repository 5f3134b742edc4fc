//! Serving, end to end: the flagship model is trained, promoted and served
//! by the built binary; requests go over real HTTP. Predictions must equal
//! `sluice predict` on the same rows; bad requests get 4xx answers naming
//! the problem while the server stays up; a canary gets its share; an alias
//! move switches versions with no failed request; requests are logged to
//! the store; rollback restores the previous version.

use crate::support::*;
use arrow_array::{Array, Float64Array, RecordBatch, StringArray};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub(crate) const MODEL: &str = "breast-cancer";

/// The breast-cancer data: feature names, rows of features, labels.
pub(crate) struct Data {
    pub(crate) features: Vec<String>,
    pub(crate) rows: Vec<Vec<f64>>,
}

pub(crate) fn csv_path() -> PathBuf {
    repo().join("examples/breast-cancer/data/breast_cancer.csv")
}

pub(crate) fn data() -> Data {
    let text = std::fs::read_to_string(csv_path()).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let label = header.iter().position(|h| *h == "diagnosis").unwrap();
    let features = header
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != label)
        .map(|(_, h)| h.to_string())
        .collect();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != label)
                .map(|(_, v)| v.parse().unwrap())
                .collect()
        })
        .collect();
    Data { features, rows }
}

impl Data {
    /// An OIP request with one FP64 tensor per column for `rows`.
    pub(crate) fn infer_body(&self, rows: std::ops::Range<usize>, id: Option<&str>) -> Value {
        let n = rows.len();
        let inputs: Vec<Value> = self
            .features
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let column: Vec<f64> = rows.clone().map(|i| self.rows[i][j]).collect();
                json!({"name": name, "shape": [n], "datatype": "FP64", "data": column})
            })
            .collect();
        match id {
            Some(id) => json!({"id": id, "inputs": inputs}),
            None => json!({"inputs": inputs}),
        }
    }
}

/// Runs the flagship pipeline into `store` (`edit` changes the spec).
pub(crate) fn train(store: &Path, edit: impl Fn(String) -> String) {
    let spec = std::fs::read_to_string(repo().join("examples/breast-cancer/pipeline.toml"))
        .unwrap()
        .replace("\"data/breast_cancer.csv\"", &format!("{:?}", csv_path()));
    let path = store.with_extension("toml");
    std::fs::write(&path, edit(spec)).unwrap();
    let r = run(&[
        "run",
        path.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

pub(crate) fn promote(store: &Path, version: &str, alias: &str) {
    let r = run(&[
        "models",
        "promote",
        MODEL,
        version,
        "--alias",
        alias,
        "--reason",
        "e2e",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// A store with version 1 (C = 1) on `production`, and, if `two`,
/// version 2 (C = 0.05) on `staging`.
pub(crate) fn trained_store(two: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    train(&store, |s| s);
    promote(&store, "1", "production");
    if two {
        train(&store, |s| s.replace("c = 1.0", "c = 0.05"));
        promote(&store, "2", "staging");
    }
    (dir, store)
}

/// `sluice predict --model MODEL --input INPUT --output OUTPUT` on `store`.
pub(crate) fn predict(
    store: &Path,
    model: &str,
    input: &Path,
    output: &Path,
    extra: &[&str],
) -> Run {
    let mut args = vec![
        "predict",
        "--model",
        model,
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// A running `sluice serve`.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
    /// The gRPC address, when started with `--grpc-addr`.
    pub(crate) grpc: Option<String>,
    stderr: PathBuf,
}

impl Server {
    pub(crate) fn start(store: &Path, args: &[&str]) -> Server {
        let stderr = store.with_extension(format!("serve-{}.log", rand_suffix()));
        let mut child = sluice()
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--store",
                store.to_str().unwrap(),
            ])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("sluice serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // `grpc on ADDR` (with --grpc-addr), then `listening on …`.
            let mut lines = BufReader::new(stdout);
            let mut grpc = None;
            loop {
                let mut line = String::new();
                let _ = lines.read_line(&mut line);
                match line.trim().strip_prefix("grpc on ") {
                    Some(a) => grpc = Some(a.to_string()),
                    None => {
                        let _ = tx.send((line, grpc));
                        return;
                    }
                }
            }
        });
        let (line, grpc) = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_default();
        let Some(addr) = line.trim().strip_prefix("listening on http://") else {
            let _ = child.kill();
            panic!(
                "the server did not start: {line:?}\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        };
        Server {
            child,
            addr: addr.to_string(),
            grpc,
            stderr,
        }
    }

    /// `breast-cancer@production`, request logs written every 100 ms.
    pub(crate) fn production(store: &Path) -> Server {
        Server::start(
            store,
            &[
                "--model",
                "breast-cancer@production",
                "--log-every",
                "100ms",
            ],
        )
    }

    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        http(&self.addr, "GET", path, b"", false)
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, text) = http(&self.addr, "POST", path, body.to_string().as_bytes(), false);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) fn post_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let (status, text) = http(&self.addr, "POST", path, body, true);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The server's resident memory now, in bytes (Linux).
    pub(crate) fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    /// SIGTERM, then the exit code and what it printed on stderr.
    pub(crate) fn stop(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        (
            code,
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// One HTTP/1.1 exchange on a fresh connection: the status and the body.
/// With `expect`, the body waits for the server's `100 Continue`, the way
/// curl sends large bodies (a server refusing by `Content-Length` answers
/// without reading it).
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    expect: bool,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        body.len(),
        if expect {
            "Expect: 100-continue\r\n"
        } else {
            ""
        }
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    if expect {
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        if status.contains(" 100 ") {
            let mut blank = String::new();
            reader.read_line(&mut blank).unwrap();
            s.write_all(body).unwrap();
        } else {
            return finish_response(status, reader);
        }
    } else {
        s.write_all(body).unwrap();
    }
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    finish_response(status, reader)
}

fn finish_response(status: String, mut reader: BufReader<TcpStream>) -> (u16, String) {
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("not an HTTP status line: {status:?}"))
        .parse()
        .unwrap();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut body = String::new();
    reader.read_to_string(&mut body).unwrap();
    (code, body)
}

/// The `prediction` labels and `probability_malignant` of a response.
pub(crate) fn response_predictions(r: &Value) -> (Vec<String>, Vec<f64>) {
    let outputs = r["outputs"].as_array().unwrap_or_else(|| panic!("{r}"));
    let find = |name: &str| {
        outputs
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("no output {name} in {r}"))
    };
    let labels = find("prediction")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let p = find("probability_malignant")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    (labels, p)
}

pub(crate) fn read_parquet(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap()
}

pub(crate) fn strings(b: &RecordBatch, name: &str) -> Vec<String> {
    let a = b
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let a = a.as_any().downcast_ref::<StringArray>().unwrap();
    (0..a.len()).map(|i| a.value(i).to_string()).collect()
}

pub(crate) fn floats(b: &RecordBatch, name: &str) -> Vec<f64> {
    let a = b
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    a.as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .values()
        .to_vec()
}

fn assert_close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() < 1e-6, "{what}: row {i}: {x} vs {y}");
    }
}

#[test]
fn served_predictions_equal_batch_predictions_and_bad_requests_get_clear_errors() {
    let (dir, store) = trained_store(false);
    let data = data();
    let n = data.rows.len();

    // Batch prediction through the binary.
    let out = dir.path().join("scored.parquet");
    let r = predict(
        &store,
        "breast-cancer@production",
        &csv_path(),
        &out,
        &["--json"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["rows"], n);
    let scored = read_parquet(&out);
    assert_eq!(scored.num_rows(), n);
    let labels = strings(&scored, "prediction");
    let p_malignant = floats(&scored, "probability_malignant");
    // The input's columns are kept beside the predictions; the model is good.
    let truth = strings(&scored, "diagnosis");
    let right = labels.iter().zip(&truth).filter(|(a, b)| a == b).count();
    assert!(right as f64 / n as f64 > 0.95, "{right}/{n} right");

    let server = Server::start(
        &store,
        &[
            "--model",
            "breast-cancer@production",
            "--max-body",
            "1MiB",
            "--log-every",
            "100ms",
        ],
    );

    // Metadata: the raw columns in, the predictions out.
    let (status, text) = server.get("/v2/models/breast-cancer");
    assert_eq!(status, 200, "{text}");
    let meta: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(meta["inputs"].as_array().unwrap().len(), 30);
    assert_eq!(
        meta["inputs"][0],
        json!({"name": "mean_radius", "datatype": "FP64", "shape": [-1]})
    );
    assert_eq!(meta["outputs"][0]["name"], "prediction");
    assert_eq!(meta["outputs"][0]["datatype"], "BYTES");
    assert_eq!(meta["versions"], json!(["1"]));
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2",
        "/v2/models/breast-cancer/ready",
    ] {
        assert_eq!(server.get(path).0, 200, "{path}");
    }

    // Every row in one request: the same predictions as `sluice predict`.
    let (status, body) = server.post(
        "/v2/models/breast-cancer/infer",
        &data.infer_body(0..n, None),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model_version"], "1");
    let (served_labels, served_p) = response_predictions(&body);
    assert_eq!(served_labels, labels);
    assert_close(&served_p, &p_malignant, "one request of all rows");

    // Row by row, through the versioned path too.
    for i in 0..5 {
        let path = if i % 2 == 0 {
            "/v2/models/breast-cancer/infer".to_string()
        } else {
            "/v2/models/breast-cancer/versions/1/infer".to_string()
        };
        let (status, body) =
            server.post(&path, &data.infer_body(i..i + 1, Some(&format!("row-{i}"))));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], format!("row-{i}"));
        let (l, p) = response_predictions(&body);
        assert_eq!(l, vec![labels[i].clone()]);
        assert_close(&p, &[p_malignant[i]], "single row");
    }

    // MLflow's scoring format gives the same labels.
    let split = json!({"dataframe_split": {"columns": data.features, "data": data.rows[..5]}});
    let (status, body) = server.post("/invocations", &split);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["predictions"], json!(labels[..5]));

    // Malformed requests: a 4xx that says what is wrong.
    let mut wrong_shape = data.infer_body(0..1, None);
    wrong_shape["inputs"][0]["shape"] = json!([2]);
    let mut missing = data.infer_body(0..1, None);
    missing["inputs"].as_array_mut().unwrap().remove(3);
    let mut wrong_type = data.infer_body(0..1, None);
    wrong_type["inputs"][0]["datatype"] = json!("BYTES");
    wrong_type["inputs"][0]["data"] = json!(["17.99"]);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "wrong shape",
            wrong_shape.to_string().into_bytes(),
            400,
            "has shape [2] (2 values) but 1 values",
        ),
        (
            "missing input",
            missing.to_string().into_bytes(),
            400,
            "missing input `mean_area`",
        ),
        (
            "wrong datatype",
            wrong_type.to_string().into_bytes(),
            400,
            "datatype BYTES, but the model takes float64",
        ),
        (
            "invalid JSON",
            b"{\"inputs\": [".to_vec(),
            400,
            "invalid inference request",
        ),
        (
            "no inputs",
            b"{\"inputs\": []}".to_vec(),
            400,
            "the request has no inputs",
        ),
        (
            "huge body",
            vec![b' '; 2 << 20],
            413,
            "larger than this server accepts",
        ),
    ];
    for (what, body, status, message) in cases {
        let (got, answer) = server.post_raw("/v2/models/breast-cancer/infer", &body);
        assert_eq!(got, status, "{what}: {answer}");
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {answer}"));
        assert!(error.contains(message), "{what}: {error}");
    }
    let (status, answer) =
        server.post("/v2/models/lung-cancer/infer", &data.infer_body(0..1, None));
    assert_eq!(status, 404);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("serves: breast-cancer"),
        "{answer}"
    );
    let (status, answer) = server.post(
        "/invocations",
        &json!({"dataframe_split": {"columns": ["mean_radius"], "data": [[1.0]]}}),
    );
    // MLflow's error shape on MLflow's endpoint.
    assert_eq!(status, 400);
    assert_eq!(answer["error_code"], "BAD_REQUEST", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("missing columns"),
        "{answer}"
    );

    // Still up, and counted.
    let (status, _) = server.post(
        "/v2/models/breast-cancer/infer",
        &data.infer_body(7..8, None),
    );
    assert_eq!(status, 200);
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("sluice_requests_total{model=\"breast-cancer\",version=\"1\",endpoint=\"infer\",code=\"200\"} 7"), "{metrics}");
    assert!(metrics.contains("code=\"413\"} 1"), "{metrics}");
    assert!(
        metrics.contains(
            "sluice_request_duration_seconds_count{model=\"breast-cancer\",version=\"1\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("sluice_batch_rows_bucket"), "{metrics}");

    let (code, stderr) = server.stop();
    assert_eq!(code, 0, "{stderr}");

    // Every answered request was logged: 569 + 5 + 5 + 1 rows.
    let r = run(&[
        "models",
        "show",
        MODEL,
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let logs = r.json()["request_logs"].as_array().unwrap().clone();
    let rows: u64 = logs.iter().map(|c| c["rows"].as_u64().unwrap()).sum();
    assert_eq!(rows, n as u64 + 11);
    let mut logged = Vec::new();
    for chunk in &logs {
        assert_eq!(chunk["version"], 1);
        let hex = chunk["object"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        let path = store.join("objects/sha256").join(&hex[..2]).join(&hex[2..]);
        logged.push(read_parquet(&path));
    }
    let logged = arrow_select::concat::concat_batches(&logged[0].schema(), &logged).unwrap();
    let ids = strings(&logged, "request_id");
    let row = ids
        .iter()
        .position(|id| id == "row-3")
        .expect("request row-3 was logged");
    assert_eq!(strings(&logged, "prediction")[row], labels[3]);
    assert_eq!(floats(&logged, "mean_radius")[row], data.rows[3][0]);
    let text = run(&["models", "show", MODEL, "--store", store.to_str().unwrap()]);
    assert!(
        text.stdout
            .contains(&format!("served requests logged: {} row(s)", n + 11)),
        "{}",
        text.stdout
    );
}

#[test]
fn a_canary_gets_its_share_and_versions_can_be_addressed() {
    let (_dir, store) = trained_store(true);
    let data = data();
    let server = Server::start(
        &store,
        &[
            "--model",
            "breast-cancer@production",
            "--canary",
            "breast-cancer@staging=30",
        ],
    );
    let (_, meta) = server.get("/v2/models/breast-cancer");
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["versions"], json!(["1", "2"]));
    let total = 600;
    let mut canary = 0;
    for i in 0..total {
        let (status, body) = server.post(
            "/v2/models/breast-cancer/infer",
            &data.infer_body(i % 50..i % 50 + 1, None),
        );
        assert_eq!(status, 200, "{body}");
        match body["model_version"].as_str().unwrap() {
            "2" => canary += 1,
            "1" => {}
            other => panic!("version {other} answered"),
        }
    }
    let share = canary as f64 / total as f64;
    // 30% ± 6 points: over three standard deviations of 600 draws.
    assert!((0.24..=0.36).contains(&share), "canary share {share}");
    for v in ["1", "2"] {
        let (status, body) = server.post(
            &format!("/v2/models/breast-cancer/versions/{v}/infer"),
            &data.infer_body(0..1, None),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["model_version"], v);
    }
    let (status, body) = server.post(
        "/v2/models/breast-cancer/versions/3/infer",
        &data.infer_body(0..1, None),
    );
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("loaded: 1, 2"),
        "{body}"
    );
    assert_eq!(server.stop().0, 0);
}

#[test]
fn an_alias_move_switches_versions_without_a_failed_request_and_rollback_restores() {
    let (_dir, store) = trained_store(true);
    let data = std::sync::Arc::new(data());
    let server = Server::start(
        &store,
        &[
            "--model",
            "breast-cancer@production",
            "--reload-every",
            "100ms",
            "--log-sample",
            "0",
        ],
    );
    let addr = server.addr.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Two clients keep requests in flight while the alias moves.
    let clients: Vec<_> = (0..2)
        .map(|c| {
            let (addr, data, stop) = (addr.clone(), data.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut i = c;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = data.infer_body(i % 100..i % 100 + 10, None).to_string();
                    let (status, text) = http(
                        &addr,
                        "POST",
                        "/v2/models/breast-cancer/infer",
                        body.as_bytes(),
                        false,
                    );
                    assert_eq!(status, 200, "a request failed during the switch: {text}");
                    let v: Value = serde_json::from_str(&text).unwrap();
                    seen.push(v["model_version"].as_str().unwrap().to_string());
                    i += 2;
                }
                seen
            })
        })
        .collect();
    let wait_for = |version: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = server.post(
                "/v2/models/breast-cancer/infer",
                &data.infer_body(0..1, None),
            );
            if body["model_version"] == version {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still serving {} after 30 s",
                body["model_version"]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    std::thread::sleep(Duration::from_millis(300));
    promote(&store, "2", "production");
    wait_for("2");
    std::thread::sleep(Duration::from_millis(300));
    let r = run(&[
        "models",
        "rollback",
        MODEL,
        "--alias",
        "production",
        "--reason",
        "e2e rollback",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    wait_for("1");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(
        seen.iter().any(|v| v == "1") && seen.iter().any(|v| v == "2"),
        "{seen:?}"
    );

    let (code, stderr) = server.stop();
    assert_eq!(code, 0);
    assert!(stderr.contains("now serves version 2 (was 1)"), "{stderr}");
    assert!(stderr.contains("now serves version 1 (was 2)"), "{stderr}");

    // The history shows each move: who, why, from what.
    let r = run(&[
        "models",
        "show",
        MODEL,
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]);
    let history: Vec<(String, i64, Option<i64>, String)> = r.json()["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["alias"] == "production")
        .map(|h| {
            (
                h["alias"].as_str().unwrap().to_string(),
                h["version"].as_i64().unwrap(),
                h["previous"].as_i64(),
                h["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        history,
        vec![
            ("production".into(), 1, None, "e2e".into()),
            ("production".into(), 2, Some(1), "e2e".into()),
            ("production".into(), 1, Some(2), "e2e rollback".into()),
        ]
    );
    let text = run(&["models", "show", MODEL, "--store", store.to_str().unwrap()]);
    assert!(text.stdout.contains("production: 2 → 1"), "{}", text.stdout);
}

#[test]
fn concurrent_requests_are_batched_and_batch_prediction_refuses_bad_files() {
    let (dir, store) = trained_store(false);
    let data = std::sync::Arc::new(data());
    let server = Server::start(
        &store,
        &[
            "--model",
            "breast-cancer@production",
            "--workers",
            "1",
            "--batch-delay",
            "200ms",
            "--max-batch",
            "64",
        ],
    );
    // Sixteen single-row requests at once: the worker waits up to 200 ms
    // to fill a batch, so they run in far fewer than sixteen predictions.
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let (addr, data) = (server.addr.clone(), data.clone());
            std::thread::spawn(move || {
                let body = data.infer_body(i..i + 1, None).to_string();
                let (status, text) = http(
                    &addr,
                    "POST",
                    "/v2/models/breast-cancer/infer",
                    body.as_bytes(),
                    false,
                );
                assert_eq!(status, 200, "{text}");
                let v: Value = serde_json::from_str(&text).unwrap();
                response_predictions(&v).0
            })
        })
        .collect();
    for c in clients {
        assert_eq!(
            c.join().unwrap().len(),
            1,
            "each request gets its own row back"
        );
    }
    let (_, metrics) = server.get("/metrics");
    let value = |key: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {metrics}"))
    };
    let batches = value("sluice_batch_rows_count{model=\"breast-cancer\",version=\"1\"}");
    let rows = value("sluice_batch_rows_sum{model=\"breast-cancer\",version=\"1\"}");
    assert_eq!(rows, 16.0, "{metrics}");
    assert!(batches < 8.0, "16 concurrent rows ran in {batches} batches");
    assert_eq!(server.stop().0, 0);

    // A file that lacks a column the model takes: nothing written, and why.
    let csv = dir.path().join("partial.csv");
    let text = std::fs::read_to_string(csv_path()).unwrap();
    let partial: String = text
        .lines()
        .map(|l| l.split(',').skip(1).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    std::fs::write(&csv, partial).unwrap();
    // (Validation would refuse it first, in std:validate's words: see
    // predict_validation.rs; this checks predict's own refusal.)
    let out = dir.path().join("out.parquet");
    let r = predict(
        &store,
        "breast-cancer@production",
        &csv,
        &out,
        &["--no-validate"],
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("missing column `mean_radius`"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    let r = predict(&store, "breast-cancer@staging", &csv_path(), &out, &[]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("no model version answers to `breast-cancer@staging`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("production → 1"), "{}", r.stderr);
}

#[test]
fn concurrent_small_requests_each_get_their_own_answer_and_a_bad_one_fails_alone() {
    // Default batching: small requests are predicted on the task that
    // received them, batched with whatever queued meanwhile. Each answer
    // must be its own row's, whichever batch it rode in, and a request
    // that fails its batch must fail alone.
    let (_dir, store) = trained_store(false);
    let data = std::sync::Arc::new(data());
    let refused = sluice()
        .args(["serve", "--io-threads", "0", "--store"])
        .arg(&store)
        .args([
            "--model",
            "breast-cancer@production",
            "--addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("--io-threads 0: at least one thread must serve connections"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // More connection threads than this machine has cores: the clients'
    // connections are spread over three threads, whose small requests
    // share one batching queue.
    let server = Server::start(
        &store,
        &["--model", "breast-cancer@production", "--io-threads", "3"],
    );
    let ask = |addr: &str, body: &str| -> (u16, Value) {
        let (status, text) = http(
            addr,
            "POST",
            "/v2/models/breast-cancer/infer",
            body.as_bytes(),
            false,
        );
        (status, serde_json::from_str(&text).unwrap())
    };
    // Each row alone first, one request at a time: the expected answers.
    let rows = 40;
    let alone: Vec<(Vec<String>, Vec<f64>)> = (0..rows)
        .map(|i| {
            let (status, v) = ask(&server.addr, &data.infer_body(i..i + 1, None).to_string());
            assert_eq!(status, 200, "{v}");
            response_predictions(&v)
        })
        .collect();
    assert!(
        alone.iter().any(|a| a.0[0] == "malignant") && alone.iter().any(|a| a.0[0] == "benign"),
        "the rows cover both classes"
    );
    // A finite value so far out that the transform overflows: this
    // request's prediction fails, in whatever batch it lands.
    let smoothness = data
        .features
        .iter()
        .position(|f| f == "mean_smoothness")
        .unwrap();
    let mut bad = data.infer_body(0..1, None);
    bad["inputs"][smoothness]["data"] = json!([1.7e308]);
    let bad = std::sync::Arc::new(bad.to_string());
    // Then all at once, several rounds, with bad requests among them.
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (addr, data, bad) = (server.addr.clone(), data.clone(), bad.clone());
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                for round in 0..15 {
                    let i = (c * 5 + round) % rows;
                    if round % 5 == 4 {
                        let (status, v) = ask(&addr, &bad);
                        assert_eq!(status, 400, "{v}");
                        assert!(
                            v["error"]
                                .as_str()
                                .unwrap()
                                .contains("turned the request's finite values into non-finite"),
                            "{v}"
                        );
                    } else {
                        let (status, v) = ask(&addr, &data.infer_body(i..i + 1, None).to_string());
                        assert_eq!(status, 200, "{v}");
                        answers.push((i, response_predictions(&v)));
                    }
                }
                answers
            })
        })
        .collect();
    let mut answered = 0;
    for c in clients {
        for (i, got) in c.join().unwrap() {
            assert_eq!(got.0, alone[i].0, "row {i}: its own label");
            assert_close(&got.1, &alone[i].1, &format!("row {i}'s probabilities"));
            answered += 1;
        }
    }
    assert_eq!(answered, 8 * 12);
    let (_, metrics) = server.get("/metrics");
    let rows_run = metrics
        .lines()
        .find(|l| l.starts_with("sluice_batch_rows_sum{model=\"breast-cancer\",version=\"1\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no batch rows in {metrics}"));
    // Every request's row ran once, and a failed batch's rows once more
    // each, alone: at least one run per request.
    assert!(rows_run >= (rows + 8 * 15) as f64, "{rows_run} rows run");
    assert_eq!(server.stop().0, 0);
}

#[test]
fn slow_and_silent_connections_are_closed_and_health_checks_keep_answering() {
    let (_dir, store) = trained_store(false);
    let server = Server::start(
        &store,
        &[
            "--model",
            "breast-cancer@production",
            "--header-timeout",
            "8s",
            "--body-timeout",
            "1s",
            "--max-connections",
            "8",
        ],
    );
    let addr = server.addr.as_str();
    // A flood beyond the connection limit: 20 connections that say
    // nothing, one that stops halfway through its headers.
    let mut silent: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut partial = TcpStream::connect(addr).unwrap();
    partial
        .write_all(b"POST /v2/models/breast-cancer/infer HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    silent.push(partial);

    // Health checks still answer, long before the header timeout would
    // free a connection: at the limit, the idlest connection is closed
    // for each newcomer.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let asked = Instant::now();
        let (status, body) = server.get("/v2/health/live");
        assert_eq!(status, 200, "{body}");
        assert!(
            asked.elapsed() < Duration::from_secs(4),
            "the health check took {:?} (the header timeout is 8 s)",
            asked.elapsed()
        );
    }

    // Every silent or partial connection is closed by the server.
    for (i, s) in silent.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 1024];
        match s.read(&mut buf) {
            // Closed, perhaps after a 408 for the half-sent request.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("connection {i} is still open after 15 s: {e}"),
        }
    }

    // A body trickled in: 408 with a JSON error once the body timeout passes.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(
        format!("POST /v2/models/breast-cancer/infer HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"inputs\"")
            .as_bytes(),
    )
    .unwrap();
    let mut status = String::new();
    let mut reader = BufReader::new(s);
    reader.read_line(&mut status).unwrap();
    let (code, body) = finish_response(status, reader);
    assert_eq!(code, 408, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("`sluice serve --body-timeout`"),
        "{e}"
    );

    // Still serving.
    let data = data();
    let (status, body) = server.post(
        "/v2/models/breast-cancer/infer",
        &data.infer_body(0..2, None),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.stop().0, 0);
}

/// One keep-alive client: sends one-row requests on a persistent
/// connection until the server goes away, reconnecting when the server
/// closes it, and resending a request the server closed the connection on
/// before answering (what HTTP clients do for idempotent retries). Returns
/// (answered with 200, failed: any other answer or a half response).
fn keep_alive_client(addr: String, body: Vec<u8>) -> (u64, u64) {
    let (mut answered, mut failed) = (0u64, 0u64);
    let request = format!(
        "POST /v2/models/breast-cancer/infer HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    'connect: loop {
        let Ok(mut s) = TcpStream::connect(&addr) else {
            return (answered, failed);
        };
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        loop {
            if s.write_all(request.as_bytes())
                .and_then(|()| s.write_all(&body))
                .is_err()
            {
                continue 'connect;
            }
            let mut status = String::new();
            if reader.read_line(&mut status).unwrap_or(0) == 0 {
                // Closed before any answer: not processed; retry.
                continue 'connect;
            }
            let mut length = 0usize;
            let mut close = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    failed += 1;
                    continue 'connect;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                close |= lower.starts_with("connection: close");
                if line == "\r\n" {
                    break;
                }
            }
            let mut payload = vec![0u8; length];
            if reader.read_exact(&mut payload).is_err() {
                failed += 1;
                continue 'connect;
            }
            if status.split_whitespace().nth(1) == Some("200") {
                answered += 1;
            } else {
                failed += 1;
            }
            if close {
                continue 'connect;
            }
        }
    }
}

#[test]
fn sigterm_under_load_answers_in_flight_requests_and_logs_every_answer() {
    let (_dir, store) = trained_store(false);
    let data = data();
    let server = Server::production(&store);
    let body = data.infer_body(3..4, None).to_string().into_bytes();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (addr, body) = (server.addr.clone(), body.clone());
            std::thread::spawn(move || keep_alive_client(addr, body))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let (code, stderr) = server.stop();
    assert_eq!(code, 0, "{stderr}");
    let (mut answered, mut failed) = (0, 0);
    for c in clients {
        let (a, f) = c.join().unwrap();
        answered += a;
        failed += f;
    }
    assert_eq!(failed, 0, "{answered} answered");
    assert!(answered > 50, "only {answered} requests answered");
    // Every answered request (one row each) is in the request log.
    let r = run(&[
        "models",
        "show",
        MODEL,
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: u64 = r.json()["request_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, answered);
}

#[test]
fn memory_taken_by_a_burst_of_large_requests_goes_back_after_it() {
    let (_dir, store) = trained_store(false);
    let data = data();
    let server = Server::start(
        &store,
        &[
            "--model",
            "breast-cancer@production",
            "--max-body",
            "64MiB",
            "--log-every",
            "200ms",
        ],
    );
    // 50,000 rows in one request: 11.5 MiB of JSON.
    let n = 50_000;
    let inputs: Vec<Value> = data
        .features
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let column: Vec<f64> = (0..n).map(|i| data.rows[i % data.rows.len()][j]).collect();
            json!({"name": name, "shape": [n], "datatype": "FP64", "data": column})
        })
        .collect();
    let body = json!({ "inputs": inputs }).to_string();
    let before = server.rss();
    for _ in 0..2 {
        let burst: Vec<_> = (0..8)
            .map(|_| {
                let (addr, body) = (server.addr.clone(), body.clone());
                std::thread::spawn(move || {
                    http(
                        &addr,
                        "POST",
                        "/v2/models/breast-cancer/infer",
                        body.as_bytes(),
                        false,
                    )
                    .0
                })
            })
            .collect();
        for b in burst {
            assert_eq!(b.join().unwrap(), 200);
        }
    }
    // Before, 8 concurrent requests like these left ~690 MB resident for
    // good. Now the last large request to finish, and the request log's
    // flush, give the freed pages back.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = server.rss();
    while after > before + (150 << 20) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        after = server.rss();
    }
    assert!(
        after <= before + (150 << 20),
        "resident memory {} MiB after the burst, {} MiB before",
        after >> 20,
        before >> 20
    );
    assert_eq!(server.stop().0, 0);
}
