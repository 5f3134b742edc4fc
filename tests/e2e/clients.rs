//! The inference clients users already have, left at their defaults,
//! against `sluice serve`: Triton's `tritonclient.http` (binary tensors in
//! and out, gzip bodies) and KServe's `InferenceRESTClient` (protocol v2,
//! `model_name` in the body). Each answer must equal `sluice predict` on
//! the same rows.
//!
//! Needs the packages from PyPI (`.ci/run` installs them); without them the
//! test prints a notice and skips, unless `SLUICE_REQUIRE_CLIENTS=1`.

use crate::serve::{Server, csv_path, data, floats, predict, read_parquet, strings, trained_store};
use crate::support::*;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

const MODEL: &str = "breast-cancer";

/// Whether `python3` can import every module in `modules`; otherwise a
/// notice (or, with `SLUICE_REQUIRE_CLIENTS=1`, a failure).
pub(crate) fn python_has(modules: &[&str], install: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {}", modules.join(", "))])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    if std::env::var("SLUICE_REQUIRE_CLIENTS").is_ok_and(|v| v == "1") {
        panic!(
            "SLUICE_REQUIRE_CLIENTS=1 but python3 cannot import {modules:?} (install: {install})"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: skipping a client compatibility test: python3 cannot import {modules:?} \
         (install: {install}; set SLUICE_REQUIRE_CLIENTS=1 to make this an error)"
    );
    false
}

/// Runs `tests/e2e/clients/SCRIPT URL MODEL FEATURES` with the rows on
/// stdin; its JSON report.
fn client(script: &str, url: &str, features: &[String], rows: &[Vec<f64>]) -> Value {
    let mut child = Command::new("python3")
        .arg(repo().join("tests/e2e/clients").join(script))
        .args([url, MODEL, &serde_json::to_string(features).unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(rows).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn as_strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn as_floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn assert_within(a: &[f64], b: &[f64], tolerance: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tolerance, "{what}: row {i}: {x} vs {y}");
    }
}

#[test]
fn triton_and_kserve_python_clients_with_their_defaults_get_batch_predictions() {
    let triton = python_has(
        &["tritonclient.http", "numpy"],
        "pip install 'tritonclient[http]'",
    );
    let kserve = python_has(&["kserve"], "pip install kserve");
    if !(triton || kserve) {
        return;
    }
    let (dir, store) = trained_store(false);
    let data = data();
    let rows = &data.rows[..64];
    let (labels, p_malignant) = predicted(&dir, &store, &data, rows);
    assert!(csv_path().exists());

    let server = Server::production(&store);
    if triton {
        let v = client("triton_http.py", &server.addr, &data.features, rows);
        assert_eq!(v["live"], true, "{v:#}");
        assert_eq!(v["ready"], true);
        assert_eq!(v["model_ready"], true);
        assert_eq!(v["extensions"], serde_json::json!(["binary_tensor_data"]));
        assert_eq!(as_strings(&v["metadata_inputs"]), data.features);
        assert_eq!(as_strings(&v["fp64"]["prediction"]), labels);
        assert_within(
            &as_floats(&v["fp64"]["probability_malignant"]),
            &p_malignant,
            1e-12,
            "FP64, binary",
        );
        // float32 features: the same model on features rounded to float32.
        assert_within(
            &as_floats(&v["fp32"]["probability_malignant"]),
            &p_malignant,
            1e-5,
            "FP32",
        );
        assert_within(
            &as_floats(&v["gzip"]["probability_malignant"]),
            &p_malignant,
            1e-12,
            "gzip",
        );
        let unknown = v["unknown"].as_str().unwrap();
        assert!(
            unknown.contains("unknown model `no-such-model`"),
            "{unknown}"
        );
    }
    if kserve {
        let v = client(
            "kserve_rest.py",
            &format!("http://{}", server.addr),
            &data.features,
            rows,
        );
        assert_eq!(v["live"], true, "{v:#}");
        assert_eq!(v["ready"], true);
        assert_eq!(v["model_ready"], true);
        for format in ["json", "binary"] {
            assert_eq!(v[format]["id"], "kserve-1", "{format}");
            assert_eq!(
                v[format]["version_header"], "1",
                "the version that answered"
            );
            assert_eq!(as_strings(&v[format]["prediction"]), labels, "{format}");
            assert_within(
                &as_floats(&v[format]["probability_malignant"]),
                &p_malignant,
                1e-12,
                format,
            );
        }
        let unknown = v["unknown"].as_str().unwrap();
        assert!(unknown.contains("404"), "{unknown}");
    }
    // Unknown names are counted under one label, not one each.
    let (status, text) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(text.contains("model=\"(unknown)\""), "{text}");
    assert!(!text.contains("no-such-model"), "{text}");
}

#[test]
fn triton_and_kserve_grpc_clients_get_the_same_predictions_as_sluice_predict() {
    let triton = python_has(
        &["tritonclient.grpc", "numpy"],
        "pip install 'tritonclient[grpc]'",
    );
    let kserve = python_has(&["kserve", "grpc"], "pip install kserve");
    if !(triton || kserve) {
        return;
    }
    let (dir, store) = trained_store(false);
    let data = data();
    let rows = &data.rows[..64];
    let (labels, p_malignant) = predicted(&dir, &store, &data, rows);
    let server = Server::start(
        &store,
        &[
            "--model",
            "breast-cancer@production",
            "--grpc-addr",
            "127.0.0.1:0",
            "--log-every",
            "100ms",
        ],
    );
    let grpc = server.grpc.clone().expect("`grpc on ADDR` printed");
    if triton {
        let v = client("triton_grpc.py", &grpc, &data.features, rows);
        assert_eq!(v["live"], true, "{v:#}");
        assert_eq!(v["ready"], true);
        assert_eq!(v["model_ready"], true);
        assert_eq!(v["server_name"], "sluice");
        assert_eq!(as_strings(&v["metadata_inputs"]), data.features);
        assert_eq!(
            v["metadata_outputs"][1],
            serde_json::json!(["probability_benign", "FP32"])
        );
        assert_eq!(v["fp64"]["id"], "triton-1");
        assert_eq!(v["fp64"]["model_version"], "1");
        assert_eq!(as_strings(&v["fp64"]["prediction"]), labels);
        assert_within(
            &as_floats(&v["fp64"]["probability_malignant"]),
            &p_malignant,
            1e-12,
            "gRPC FP64, raw contents",
        );
        assert_eq!(
            v["fp32"]["outputs"],
            serde_json::json!(["probability_malignant"])
        );
        assert_within(
            &as_floats(&v["fp32"]["probability_malignant"]),
            &p_malignant,
            1e-5,
            "gRPC FP32",
        );
        let unknown = v["unknown"].as_str().unwrap();
        assert!(
            unknown.starts_with("StatusCode.NOT_FOUND: unknown model `no-such-model`"),
            "{unknown}"
        );
        assert_eq!(v["unknown_ready"], "StatusCode.NOT_FOUND");
        assert_eq!(
            v["malformed"],
            "StatusCode.INVALID_ARGUMENT: the ModelInfer message is not valid protobuf: \
             a field claims 5 bytes where 2 are left"
        );
    }
    if kserve {
        let v = client("kserve_grpc.py", &grpc, &data.features, rows);
        assert_eq!(v["live"], true, "{v:#}");
        assert_eq!(v["ready"], true);
        assert_eq!(v["model_ready"], true);
        assert_eq!(v["infer"]["id"], "kserve-grpc-1");
        assert_eq!(as_strings(&v["infer"]["prediction"]), labels);
        assert_within(
            &as_floats(&v["infer"]["probability_malignant"]),
            &p_malignant,
            1e-12,
            "KServe gRPC, typed contents",
        );
        let unknown = v["unknown"].as_str().unwrap();
        assert!(unknown.starts_with("NOT_FOUND: unknown model"), "{unknown}");
    }
    // gRPC requests are counted and logged like HTTP ones.
    let (status, text) = server.get("/metrics");
    assert_eq!(status, 200);
    let answered = usize::from(triton) * 2 + usize::from(kserve);
    assert!(
        text.contains(&format!(
            r#"model="breast-cancer",version="1",endpoint="grpc_infer",code="200"}} {answered}"#
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nsluice_logged_requests_total {answered}\n")),
        "{text}"
    );
    // A message that could not be read names no model it can be counted
    // under: it counts under the unknown-model label.
    if triton {
        assert!(
            text.contains(r#"model="(unknown)",version="",endpoint="grpc_infer",code="400"} 1"#),
            "{text}"
        );
    }
}

/// What `sluice predict` says for `rows`: the labels and the probability
/// of the malignant class.
fn predicted(
    dir: &tempfile::TempDir,
    store: &std::path::Path,
    data: &crate::serve::Data,
    rows: &[Vec<f64>],
) -> (Vec<String>, Vec<f64>) {
    let input = dir.path().join("rows.csv");
    let mut csv = data.features.join(",") + "\n";
    for row in rows {
        csv += &row.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
        csv += "\n";
    }
    std::fs::write(&input, csv).unwrap();
    let out = dir.path().join("scored.parquet");
    let r = predict(store, "breast-cancer@production", &input, &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let scored = read_parquet(&out);
    (
        strings(&scored, "prediction"),
        floats(&scored, "probability_malignant"),
    )
}

/// One raw HTTP/1.1 exchange (`Connection: close` is added): the status,
/// the response head in lower case, and the body.
fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        head += h;
        head += "\r\n";
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&all[..split]).to_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    // Bodies come whole (Content-Length) from this server.
    (status, head, all[split + 4..].to_vec())
}

#[test]
fn mlflow_csv_version_and_error_shapes_and_json_bodies_for_every_error() {
    let (_dir, store) = trained_store(false);
    let data = data();
    let server = Server::production(&store);
    let addr = server.addr.as_str();

    // text/csv on /invocations: the same predictions as JSON records.
    let mut csv = data.features.join(",") + "\n";
    let mut records = Vec::new();
    for row in &data.rows[..5] {
        csv += &row.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
        csv += "\n";
        records.push(Value::Object(
            data.features
                .iter()
                .cloned()
                .zip(row.iter().map(|v| serde_json::json!(v)))
                .collect(),
        ));
    }
    let (status, head, body) = exchange(
        addr,
        "POST",
        "/invocations",
        &["Content-Type: text/csv"],
        csv.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(head.contains("sluice-model-version: 1"), "{head}");
    let from_csv: Value = serde_json::from_slice(&body).unwrap();
    let json_body = serde_json::json!({ "dataframe_records": records }).to_string();
    let (status, _, body) = exchange(
        addr,
        "POST",
        "/invocations",
        &["Content-Type: application/json"],
        json_body.as_bytes(),
    );
    assert_eq!(status, 200);
    let from_json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(from_csv, from_json);
    assert_eq!(from_csv["predictions"].as_array().unwrap().len(), 5);

    // MLflow's error shape on /invocations.
    let (status, _, body) = exchange(
        addr,
        "POST",
        "/invocations",
        &["Content-Type: text/csv"],
        b"radius\n1\n",
    );
    assert_eq!(status, 400);
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(e["error_code"], "BAD_REQUEST", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("unknown column `radius`"),
        "{e}"
    );

    // Float outputs are declared at the model's precision, float32.
    let (status, _, body) = exchange(addr, "GET", "/v2/models/breast-cancer", &[], b"");
    assert_eq!(status, 200);
    let meta: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(meta["outputs"][1]["name"], "probability_benign");
    assert_eq!(meta["outputs"][1]["datatype"], "FP32");
    assert_eq!(meta["inputs"][0]["datatype"], "FP64");

    // A finite value so far out that the fitted transform overflows: the
    // error says so, rather than blaming an `inf` the client never sent.
    let mut request = crate::serve::data().infer_body(0..1, None);
    let smoothness = data
        .features
        .iter()
        .position(|f| f == "mean_smoothness")
        .unwrap();
    request["inputs"][smoothness]["data"] = serde_json::json!([1.7e308]);
    let (status, _, body) = exchange(
        addr,
        "POST",
        "/v2/models/breast-cancer/infer",
        &[],
        request.to_string().as_bytes(),
    );
    assert_eq!(status, 400);
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        e["error"].as_str().unwrap().starts_with(
            "the model's recorded transform turned the request's finite values into non-finite ones"
        ),
        "{e}"
    );

    // GET /version, as MLflow's scoring server answers it.
    let (status, _, body) = exchange(addr, "GET", "/version", &[], b"");
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(body).unwrap(), env!("CARGO_PKG_VERSION"));

    // A wrong method: 405 with a JSON body and `Allow`.
    let (status, head, body) = exchange(addr, "GET", "/v2/models/breast-cancer/infer", &[], b"");
    assert_eq!(status, 405);
    assert!(head.contains("allow: post"), "{head}");
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        e["error"],
        "/v2/models/breast-cancer/infer does not answer GET; use POST"
    );

    // Requests that cannot be parsed at all (answered by hyper before any
    // handler): a JSON error too.
    for raw in [
        "GARBAGE\r\n\r\n".to_string(),
        format!("POST /invocations HTTP/1.1\r\nHost: {addr}\r\nContent-Length: ten\r\n\r\n"),
    ] {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        let (head, body) = all.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400"), "{raw:?}: {head}");
        let e: Value = serde_json::from_str(body).unwrap();
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .starts_with("the request is not valid HTTP/1.1"),
            "{e}"
        );
    }

    // An encoding the server does not read: 415, saying which it reads;
    // a gzip body that is not gzip: 400.
    let infer = "/v2/models/breast-cancer/infer";
    let (status, _, body) = exchange(addr, "POST", infer, &["Content-Encoding: br"], b"{}");
    assert_eq!(status, 415);
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("send gzip, deflate or identity"),
        "{e}"
    );
    let (status, _, body) = exchange(
        addr,
        "POST",
        infer,
        &["Content-Encoding: gzip"],
        b"not gzip",
    );
    assert_eq!(status, 400);
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("the body is not valid gzip data"),
        "{e}"
    );

    // Binary data whose sizes do not add up.
    let header = format!(
        r#"{{"inputs": [{{"name": "{}", "shape": [1], "datatype": "FP64", "parameters": {{"binary_data_size": 8}}}}]}}"#,
        data.features[0]
    );
    let mut body = header.clone().into_bytes();
    body.extend([0u8; 4]);
    let length = format!("Inference-Header-Content-Length: {}", header.len());
    let (status, _, reply) = exchange(addr, "POST", infer, &[&length], &body);
    assert_eq!(status, 400);
    let e: Value = serde_json::from_slice(&reply).unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("`binary_data_size` is 8, but only 4 bytes"),
        "{e}"
    );

    // A thousand unknown model names (one with a NUL) leave /metrics small.
    for i in 0..1000 {
        let (status, _, _) = exchange(
            addr,
            "POST",
            &format!("/v2/models/m{i}%00x/infer"),
            &[],
            b"{}",
        );
        assert_eq!(status, 404);
    }
    let (_, _, metrics) = exchange(addr, "GET", "/metrics", &[], b"");
    assert!(
        metrics.len() < 64 * 1024,
        "{} bytes of metrics",
        metrics.len()
    );
    let text = String::from_utf8(metrics).unwrap();
    assert!(!text.contains('\0'));
    // Requests count in the log's counter as they are answered (the two
    // answered /invocations), not at the log's next flush.
    assert!(
        text.contains("\nsluice_logged_requests_total 2\n"),
        "{text}"
    );
    assert!(
        text.contains(r#"model="(unknown)",version="",endpoint="infer",code="404"} 1000"#),
        "{text}"
    );
}

/// A scikit-learn `Pipeline(StandardScaler, LogisticRegression)`, a
/// gradient-boosting and a random-forest classifier, exported by skl2onnx
/// with its defaults (`Scaler`, tree ensembles, `ZipMap`), are imported,
/// pushed and served on raw columns with no sluice transform, and answer
/// what onnxruntime answers for the same files.
#[test]
fn scikit_learn_default_exports_import_and_serve_raw_columns_as_onnxruntime_runs_them() {
    if !python_has(
        &["sklearn", "skl2onnx", "onnxruntime"],
        "pip install scikit-learn skl2onnx onnxruntime",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    let out = Command::new("python3")
        .arg(repo().join("tests/e2e/clients/sklearn_exports.py"))
        .arg(csv_path())
        .arg(&exports)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Value =
        serde_json::from_slice(&std::fs::read(exports.join("reference.json")).unwrap()).unwrap();
    let names = [
        "bc-sklearn-pipeline",
        "bc-gradient-boosting",
        "bc-random-forest",
    ];
    assert!(
        reference["bc-sklearn-pipeline"]["ops"]
            .as_array()
            .unwrap()
            .contains(&Value::from("Scaler"))
    );

    let data = data();
    let mut spec = format!(
        "[pipeline]\nname = \"brought\"\n\n[data]\nraw = {:?}\n",
        csv_path()
    );
    for name in names {
        spec.push_str(&format!(
            "{name} = {:?}\n",
            exports.join(format!("{name}.onnx"))
        ));
    }
    spec.push_str(
        "\n[steps.ingest]\ncomponent = \"std:ingest-csv\"\ninputs = { file = \"data.raw\" }\n",
    );
    let features = serde_json::to_string(&data.features).unwrap();
    for name in names {
        spec.push_str(&format!(
            r#"
[steps.import-{name}]
component = "std:import-model"
inputs = {{ onnx = "data.{name}" }}
params = {{ features = {features}, task = "classification", label = "diagnosis", classes = ["malignant", "benign"] }}

[steps.evaluate-{name}]
component = "std:evaluate"
inputs = {{ model = "import-{name}.model", test = "ingest.data" }}

[steps.validate-{name}]
component = "std:model-validate"
inputs = {{ model = "import-{name}.model", test = "ingest.data", evaluation = "evaluate-{name}.evaluation" }}
params = {{ thresholds = {{ accuracy = 0.9 }} }}

[steps.push-{name}]
component = "std:push"
inputs = {{ model = "import-{name}.model", blessing = "validate-{name}.blessing", evaluation = "evaluate-{name}.evaluation" }}
params = {{ name = "{name}" }}
"#
        ));
    }
    let project = Project::new(&spec);
    let r = project.run_json();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let store = project.dir.path().join(".sluice");

    let mut args = Vec::new();
    for name in names {
        args.push("--model".to_string());
        args.push(name.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&store, &args);
    let n = data.rows.len();
    for name in names {
        let want = as_floats(&reference[name]["p_benign"]);
        let (status, body) = server.post(
            &format!("/v2/models/{name}/infer"),
            &data.infer_body(0..n, None),
        );
        assert_eq!(status, 200, "{name}: {body}");
        let output = |o: &str| {
            body["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == o)
                .unwrap_or_else(|| panic!("{name}: no {o} in {body}"))["data"]
                .clone()
        };
        assert_within(&as_floats(&output("probability_benign")), &want, 1e-5, name);
        let labels = as_strings(&output("prediction"));
        let want_labels: Vec<&str> = reference[name]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| if v == 1 { "benign" } else { "malignant" })
            .collect();
        assert_eq!(labels, want_labels, "{name}");
    }
}
