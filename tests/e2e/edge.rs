//! The edge: `sluice bundle` makes a bundle of a registered model, and the
//! separate `sluice-edge` binary checks it, predicts and serves with it —
//! natively, and for aarch64 under qemu-user — and takes updates from a
//! folder without a failed request.
//!
//! The `sluice-edge` binaries come from `scripts/test` (built as they ship:
//! `cargo build -p sluice-edge`, and for aarch64-unknown-linux-gnu), named
//! by SLUICE_EDGE_BIN and SLUICE_EDGE_AARCH64_BIN; without them the tests
//! fall back to target/debug/sluice-edge, or print a NOTICE and skip unless
//! SLUICE_REQUIRE_EDGE=1 (set by .ci/run).

use crate::serve::{csv_path, data, floats, http, read_parquet, strings, trained_store};
use crate::support::*;
use arrow_array::RecordBatch;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The flagship model's version on `production`.
const PRODUCTION: &str = "breast-cancer@production";

fn required() -> bool {
    std::env::var_os("SLUICE_REQUIRE_EDGE").is_some_and(|v| v == "1")
}

/// The native `sluice-edge`, or `None` (skip) when it was not built.
fn edge_bin() -> Option<PathBuf> {
    let path = std::env::var_os("SLUICE_EDGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_BIN_EXE_sluice")).with_file_name("sluice-edge"));
    if path.is_file() {
        return Some(path);
    }
    assert!(
        !required(),
        "SLUICE_REQUIRE_EDGE=1 but {} is missing",
        path.display()
    );
    eprintln!(
        "NOTICE: {} is missing (cargo build -p sluice-edge); skipping",
        path.display()
    );
    None
}

/// `qemu-aarch64` and the aarch64 `sluice-edge`, or `None` (skip).
fn aarch64_edge() -> Option<Command> {
    let bin = std::env::var_os("SLUICE_EDGE_AARCH64_BIN").map(PathBuf::from);
    let qemu = Command::new("qemu-aarch64")
        .arg("--version")
        .output()
        .is_ok();
    match bin {
        Some(bin) if bin.is_file() && qemu => {
            let mut cmd = Command::new("qemu-aarch64");
            // An ARMv8.0 core, the baseline every device has (qemu's
            // default CPU has SVE and SME, which tract would pick).
            cmd.args(["-L", "/usr/aarch64-linux-gnu", "-cpu", "cortex-a72"])
                .arg(bin);
            Some(cmd)
        }
        _ => {
            assert!(
                !required(),
                "SLUICE_REQUIRE_EDGE=1 but SLUICE_EDGE_AARCH64_BIN or qemu-aarch64 is missing"
            );
            eprintln!("NOTICE: no aarch64 sluice-edge or qemu-aarch64; skipping the aarch64 test");
            None
        }
    }
}

/// `sluice bundle --model REFERENCE -o OUT EXTRA… --store STORE`, which
/// must succeed; its JSON.
fn bundle(store: &Path, reference: &str, out: &Path, extra: &[&str]) -> Value {
    let mut all = vec![
        "bundle",
        "--store",
        store.to_str().unwrap(),
        "--json",
        "--model",
        reference,
        "-o",
        out.to_str().unwrap(),
    ];
    all.extend_from_slice(extra);
    let r = run(&all);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json()
}

/// `sluice predict --predictions-only` of the whole breast-cancer file.
fn reference_predictions(store: &Path, dir: &Path, csv: &Path) -> arrow_array::RecordBatch {
    let out = dir.join("reference.parquet");
    let r = run(&[
        "predict",
        "--model",
        PRODUCTION,
        "--input",
        csv.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--predictions-only",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    read_parquet(&out)
}

/// CSV predictions (`sluice-edge predict`'s output), by column.
fn csv_columns(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let mut columns = vec![Vec::new(); header.len()];
    for line in lines.filter(|l| !l.is_empty()) {
        for (i, v) in line.split(',').enumerate() {
            columns[i].push(v.to_string());
        }
    }
    (header, columns)
}

/// Asserts the edge's CSV predictions equal `sluice predict`'s: labels
/// exactly, probabilities within `tolerance` (0: bit for bit). Returns the
/// largest difference seen.
fn assert_same_predictions(
    edge_csv: &str,
    reference: &arrow_array::RecordBatch,
    tolerance: f64,
) -> f64 {
    let (header, columns) = csv_columns(edge_csv);
    assert_eq!(
        header,
        reference
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(strings(reference, "prediction"), columns[0]);
    let mut largest = 0f64;
    for (i, name) in header.iter().enumerate().skip(1) {
        let want = floats(reference, name);
        assert_eq!(want.len(), columns[i].len());
        for (row, (w, g)) in want.iter().zip(&columns[i]).enumerate() {
            let g: f64 = g.parse().unwrap();
            let d = (g - w).abs();
            largest = largest.max(d);
            assert!(d <= tolerance, "{name} row {row}: edge {g}, sluice {w}");
        }
    }
    largest
}

/// A running `sluice-edge serve`; its stderr is collected.
struct EdgeServer {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl EdgeServer {
    fn start(mut cmd: Command, args: &[&str]) -> EdgeServer {
        let mut child = cmd
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice-edge starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Some(addr) = line.strip_prefix("sluice-edge listening on http://") {
                    let _ = tx.send(addr.to_string());
                }
                kept.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(120)) else {
            let _ = child.kill();
            panic!("sluice-edge did not start:\n{}", log.lock().unwrap());
        };
        EdgeServer { child, addr, log }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let (status, text) = http(&self.addr, "GET", path, b"", false);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn infer(&self, rows: std::ops::Range<usize>) -> (u16, Value) {
        let body = data().infer_body(rows, Some("edge")).to_string();
        let (status, text) = http(
            &self.addr,
            "POST",
            "/v2/models/breast-cancer/infer",
            body.as_bytes(),
            false,
        );
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

impl Drop for EdgeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An infer response's output `name`, as text.
fn output(response: &Value, name: &str) -> Vec<String> {
    response["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name}: {response}"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string())
        })
        .collect()
}

/// `sluice-edge predict BUNDLE < CSV`: its stdout.
fn edge_predict(mut cmd: Command, bundle: &Path, csv: &Path) -> String {
    let mut child = cmd
        .arg("predict")
        .arg(bundle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(csv).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `csv` (a header, then rows of numbers and text) with its rows repeated
/// `times` times; in repetition `k` every number moves `0.001 k` of the
/// way towards the next row's value in its column (so it stays within the
/// column's range, which `sluice predict` checks), and text is kept.
fn perturbed_rows(csv: &str, times: usize) -> String {
    let (header, rows) = csv.split_once('\n').unwrap();
    let rows: Vec<Vec<&str>> = rows
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').collect())
        .collect();
    let mut out = format!("{header}\n");
    for k in 0..times {
        let t = 0.001 * k as f64;
        for (i, row) in rows.iter().enumerate() {
            let next = &rows[(i + 1) % rows.len()];
            let fields: Vec<String> = row
                .iter()
                .zip(next)
                .map(|(v, w)| match (v.parse::<f64>(), w.parse::<f64>()) {
                    (Ok(x), Ok(y)) if k > 0 => format!("{:?}", x + (y - x) * t),
                    _ => v.to_string(),
                })
                .collect();
            out.push_str(&fields.join(","));
            out.push('\n');
        }
    }
    out
}

/// The entries of a tar: name and the byte range of its contents.
fn tar_entries(bytes: &[u8]) -> Vec<(String, std::ops::Range<usize>)> {
    let mut entries = Vec::new();
    let mut at = 0;
    while at + 512 <= bytes.len() && bytes[at] != 0 {
        let header = &bytes[at..at + 512];
        let name = String::from_utf8_lossy(&header[..100])
            .trim_end_matches('\0')
            .to_string();
        let size = String::from_utf8_lossy(&header[124..136]);
        let size =
            usize::from_str_radix(size.trim_matches(|c: char| c == '\0' || c == ' '), 8).unwrap();
        entries.push((name, at + 512..at + 512 + size));
        at += 512 + size.div_ceil(512) * 512;
    }
    entries
}

/// The byte range of `name`'s contents in a tar.
fn tar_entry(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
    tar_entries(bytes)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in the bundle"))
        .1
}

/// The name of the first tar entry whose name starts with `prefix`.
fn tar_name(bytes: &[u8], prefix: &str) -> String {
    tar_entries(bytes)
        .into_iter()
        .find(|(n, _)| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}… in the bundle"))
        .0
}

/// A bundle rebuilt from `bytes` (unsigned) after `edit` changed its
/// manifest and files: what someone who can write the file but not sign
/// it can make.
fn rewritten(
    bytes: &[u8],
    edit: impl Fn(&mut sluice_bundle::Manifest, &str, &mut Vec<u8>),
) -> Vec<u8> {
    let expect = sluice_bundle::Expectations::this_machine(
        sluice_bundle::EngineId {
            profile: sluice_runtime::engine_config::ENGINE_PROFILE.into(),
            wasmtime: sluice_runtime::engine_config::WASMTIME_VERSION.into(),
        },
        vec![],
    );
    let opened = sluice_bundle::Bundle::open(bytes, &expect).unwrap();
    let mut manifest = opened.manifest().clone();
    let mut files = Vec::new();
    for path in opened.manifest().files.keys() {
        let mut content = opened.file(path).unwrap().to_vec();
        edit(&mut manifest, path, &mut content);
        files.push((path.clone(), content));
    }
    let mut writer = sluice_bundle::BundleWriter::new(manifest);
    for (path, content) in files {
        writer.add(&path, content);
    }
    writer.finish(None)
}

#[test]
fn a_bundle_predicts_on_the_edge_what_sluice_predicts_and_serves_the_protocol() {
    let Some(edge) = edge_bin() else { return };
    let (dir, store) = trained_store(false);
    let path = dir.path().join("bc.bundle");
    let csv = csv_path();
    let summary = bundle(
        &store,
        PRODUCTION,
        &path,
        &["--sample", csv.to_str().unwrap()],
    );
    assert_eq!(
        summary["target"],
        format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
    );
    assert_eq!(summary["model"]["version"], 1);
    let components = summary["components"].as_array().unwrap();
    assert_eq!(components.len(), 1, "{summary}");
    assert_eq!(components[0]["role"], "transform");
    assert_eq!(components[0]["name"], "std:transform");
    assert_eq!(summary["selftest_rows"], true);
    assert!(summary["signed_by"].is_null());

    // Verified, loaded and self-tested, with what it holds.
    let out = Command::new(&edge)
        .args(["verify", path.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"]["name"], "breast-cancer");
    assert_eq!(v["selftest_rows"], 32);
    assert_eq!(v["sha256"], summary["sha256"]);

    // Same machine, the same transform code and tree evaluator, but the
    // lite evaluator on the device and tract in `sluice predict`: labels
    // equal, probabilities within sluice_contract's PREDICTION_TOLERANCE
    // (1e-6; at most 1, so absolute). The matrix products sum in the same
    // order; tract approximates the sigmoid, the lite evaluator does not.
    let reference = reference_predictions(&store, dir.path(), &csv_path());
    let text = edge_predict(Command::new(&edge), &path, &csv_path());
    let largest = assert_same_predictions(&text, &reference, 1e-6);
    eprintln!("lite edge vs sluice predict: largest probability difference {largest:e}");
    // Many rows at once: std:transform computes batches of 4096 rows or
    // more with SQL expressions in the host, which the edge has not got:
    // it applies the transform to slices of 4095 rows (computed in the
    // component), and must give the same answers (as above). The rows are
    // the data's, each repetition moved a little, so that no two chunks or
    // slices see the same values.
    let many = dir.path().join("many.csv");
    std::fs::write(
        &many,
        perturbed_rows(&std::fs::read_to_string(csv_path()).unwrap(), 9),
    )
    .unwrap();
    let reference = reference_predictions(&store, dir.path(), &many);
    assert_eq!(reference.num_rows(), 569 * 9);
    assert!(reference.num_rows() >= 5_000);
    let text = edge_predict(Command::new(&edge), &path, &many);
    assert_same_predictions(&text, &reference, 1e-6);

    // Over HTTP, the protocol's answers for the same rows.
    let server = EdgeServer::start(Command::new(&edge), &["--bundle", path.to_str().unwrap()]);
    assert_eq!(server.get("/v2/health/ready").0, 200);
    let (status, meta) = server.get("/v2/models/breast-cancer");
    assert_eq!(status, 200);
    assert_eq!(meta["inputs"].as_array().unwrap().len(), 30, "{meta}");
    let (status, answer) = server.infer(0..25);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["model_version"], "1");
    assert_eq!(answer["id"], "edge");
    assert_eq!(
        output(&answer, "prediction"),
        strings(&reference, "prediction")[..25]
    );
    let p: Vec<f64> = output(&answer, "probability_malignant")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    for (got, want) in p.iter().zip(floats(&reference, "probability_malignant")) {
        // Answered at float32 precision, as `sluice serve` does.
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
    let (status, e) = server.get("/v2/models/another");
    assert_eq!(status, 404);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("this device serves `breast-cancer`"),
        "{e}"
    );
    let (status, e) = http(
        &server.addr,
        "POST",
        "/v2/models/breast-cancer/infer",
        b"{\"inputs\": [",
        false,
    );
    assert_eq!(status, 400, "{e}");
    assert!(e.contains("invalid inference request"), "{e}");
}

#[test]
fn a_models_standard_transform_is_kept_in_the_store_for_later_releases() {
    // A model names its transform by digest. std:transform's bytes ship in
    // the binary, so a later sluice whose std:transform changed would find
    // neither: the run that fits it keeps its bytes in the store, which is
    // where `sluice bundle`, `sluice serve` and `sluice predict` look next.
    let (dir, store) = trained_store(false);
    let summary = bundle(&store, PRODUCTION, &dir.path().join("b.bundle"), &[]);
    let transform = &summary["components"][0];
    assert_eq!(transform["name"], "std:transform", "{summary}");
    let hex = transform["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let object = store.join("objects/sha256").join(&hex[..2]).join(&hex[2..]);
    let bytes = std::fs::read(&object).unwrap_or_else(|e| panic!("{}: {e}", object.display()));
    assert_eq!(
        sluice_store::Digest::of(&bytes).to_hex(),
        hex,
        "the object holds the component's bytes"
    );
}

#[test]
fn tampered_mismatched_or_unsigned_bundles_are_refused_with_what_to_rebuild() {
    let Some(edge) = edge_bin() else { return };
    let (dir, store) = trained_store(false);
    let d = dir.path();
    let good = d.join("good.bundle");
    bundle(&store, PRODUCTION, &good, &[]);
    let bytes = std::fs::read(&good).unwrap();
    let verify = |path: &Path, extra: &[&str]| {
        let out = Command::new(&edge)
            .arg("verify")
            .arg(path)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(verify(&good, &[]).0, 0);

    // One byte changed in the component's code, the ONNX graph, the manifest.
    let component = tar_name(&bytes, "components/");
    for (entry, expected) in [
        (
            component.as_str(),
            format!("`{component}` in the bundle was modified or damaged"),
        ),
        (
            "model/model.onnx",
            "`model/model.onnx` in the bundle was modified or damaged".to_string(),
        ),
        (
            "manifest.json",
            "the bundle's manifest was modified or damaged".to_string(),
        ),
    ] {
        let range = tar_entry(&bytes, entry);
        let mut tampered = bytes.clone();
        tampered[range.start + range.len() / 2] ^= 0x20;
        let path = d.join("tampered.bundle");
        std::fs::write(&path, &tampered).unwrap();
        let (code, err) = verify(&path, &[]);
        assert_eq!(code, 1, "{entry}: {err}");
        assert!(err.contains(&expected), "{entry}: {err}");
    }

    // Built for the other architecture.
    let other = if std::env::consts::ARCH == "x86_64" {
        "aarch64"
    } else {
        "x86_64"
    };
    let foreign = d.join("foreign.bundle");
    let triple = format!("{other}-unknown-linux-gnu");
    bundle(&store, PRODUCTION, &foreign, &["--target", &triple]);
    let (code, err) = verify(&foreign, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "the bundle was compiled for {triple}, and this device is {}-linux: rebuild it with `sluice bundle … --target {}-unknown-linux-gnu`",
            std::env::consts::ARCH,
            std::env::consts::ARCH
        )),
        "{err}"
    );

    // Compiled for another engine: a manifest rewritten (and its digest
    // recomputed) to name another wasmtime.
    let older_bytes = rewritten(&bytes, |m, _, _| m.engine.wasmtime = "47.0.1".into());
    let older = d.join("older.bundle");
    std::fs::write(&older, older_bytes).unwrap();
    let (code, err) = verify(&older, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("compiled for engine sluice-engine-1 (wasmtime 47.0.1)"),
        "{err}"
    );
    assert!(
        err.contains("rebuild the bundle with the `sluice` of the same release"),
        "{err}"
    );

    // Signatures: an unsigned bundle where a key is trusted, a bundle
    // signed by another key, and one signed by the trusted key.
    let key = d.join("team.key");
    let r = run(&["bundle", "keygen", key.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let public = d.join("team.key.pub");
    let trust = ["--trust", public.to_str().unwrap()];
    let (code, err) = verify(&good, &trust);
    assert_eq!(code, 1);
    assert!(err.contains("the bundle is not signed"), "{err}");
    assert!(err.contains("sluice bundle --sign KEY"), "{err}");
    let signed = d.join("signed.bundle");
    bundle(
        &store,
        PRODUCTION,
        &signed,
        &["--sign", key.to_str().unwrap()],
    );
    let (code, err) = verify(&signed, &trust);
    assert_eq!(code, 0, "{err}");
    let stranger = d.join("stranger.key");
    assert_eq!(
        run(&["bundle", "keygen", stranger.to_str().unwrap()]).code,
        0
    );
    let (code, err) = verify(
        &signed,
        &["--trust", d.join("stranger.key.pub").to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(err.contains("not valid for any trusted key"), "{err}");
    // The key is never overwritten.
    let r = run(&["bundle", "keygen", key.to_str().unwrap()]);
    assert_ne!(r.code, 0);
}

#[test]
fn a_newer_bundle_replaces_the_served_one_without_a_failed_request_and_a_bad_one_changes_nothing() {
    let Some(edge) = edge_bin() else { return };
    let (dir, store) = trained_store(true);
    let d = dir.path();
    let watched = d.join("bundles");
    std::fs::create_dir(&watched).unwrap();
    let csv = csv_path();
    let make = |reference: &str, name: &str| {
        let out = d.join(name);
        bundle(
            &store,
            reference,
            &out,
            &["--sample", csv.to_str().unwrap()],
        );
        out
    };
    let v1 = make(PRODUCTION, "v1.bundle");
    let v2 = make("breast-cancer@staging", "v2.bundle");
    // Arrives in the folder whole, as `sluice bundle -o` writes it.
    let arrive = |from: &Path, name: &str| {
        let tmp = watched.join(format!(".{name}.part"));
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, watched.join(name)).unwrap();
    };
    arrive(&v1, "a.bundle");
    let server = EdgeServer::start(
        Command::new(&edge),
        &["--bundle-dir", watched.to_str().unwrap(), "--poll", "100ms"],
    );

    // Requests without pause, counting failures and the versions answering.
    let stop = Arc::new(AtomicBool::new(false));
    let (failed, answered) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let versions = Arc::new(Mutex::new(Vec::<String>::new()));
    let addr = server.addr.clone();
    let looping = {
        let (stop, failed, answered, versions) = (
            stop.clone(),
            failed.clone(),
            answered.clone(),
            versions.clone(),
        );
        std::thread::spawn(move || {
            let body = data().infer_body(0..5, None).to_string();
            while !stop.load(Ordering::Relaxed) {
                let (status, text) = http(
                    &addr,
                    "POST",
                    "/v2/models/breast-cancer/infer",
                    body.as_bytes(),
                    false,
                );
                if status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                answered.fetch_add(1, Ordering::Relaxed);
                let v: Value = serde_json::from_str(&text).unwrap();
                let version = v["model_version"].as_str().unwrap().to_string();
                let mut seen = versions.lock().unwrap();
                if seen.last() != Some(&version) {
                    seen.push(version);
                }
            }
        })
    };
    let wait_for = |what: &str, done: &dyn Fn(&Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, info) = server.get("/v2/edge/bundle");
            if done(&info) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {info}\n{}",
                server.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // A bundle whose self-test fails (it predicts, but not what the machine
    // that built it predicted): refused, version 1 still answers.
    let bytes = std::fs::read(&v2).unwrap();
    let lying_bytes = rewritten(&bytes, |_, path, content| {
        if path == "selftest/predictions.json" {
            let mut p: Value = serde_json::from_slice(content).unwrap();
            let labels = p["prediction"].as_array_mut().unwrap();
            let flipped = if labels[3] == "benign" {
                "malignant"
            } else {
                "benign"
            };
            labels[3] = Value::String(flipped.into());
            *content = serde_json::to_vec(&p).unwrap();
        }
    });
    let lying = d.join("lying.bundle");
    std::fs::write(&lying, lying_bytes).unwrap();
    // Each arrives with a newer modification time, is refused for its
    // reason, and version 1 goes on answering.
    let refused = |path: &Path, name: &str, why: &str| {
        std::thread::sleep(Duration::from_millis(1100));
        arrive(path, name);
        let info = wait_for(&format!("{name} refused"), &|i| {
            i["last_refused"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with(name))
        });
        let error = info["last_refused"]["error"].as_str().unwrap();
        assert!(error.contains(why), "{info}");
        assert_eq!(info["model"]["version"], 1);
    };
    refused(&lying, "b.bundle", "row 4 `prediction`");

    // A damaged one.
    let mut damaged = std::fs::read(&v2).unwrap();
    let at = tar_entry(&damaged, "model/model.onnx").start + 40;
    damaged[at] ^= 1;
    let damaged_path = d.join("damaged.bundle");
    std::fs::write(&damaged_path, damaged).unwrap();
    refused(&damaged_path, "c.bundle", "modified or damaged");

    // The good one: taken.
    std::thread::sleep(Duration::from_millis(1100));
    arrive(&v2, "d.bundle");
    wait_for("version 2 in use", &|i| i["model"]["version"] == 2);
    let before = answered.load(Ordering::Relaxed);
    while answered.load(Ordering::Relaxed) < before + 20 {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    looping.join().unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "{}",
        server.log.lock().unwrap()
    );
    assert_eq!(*versions.lock().unwrap(), ["1", "2"]);
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains("refused") && log.contains("switched to"),
        "{log}"
    );
}

impl EdgeServer {
    /// Stops the server as a device's service manager would (SIGTERM) and
    /// waits for it; its exit code.
    fn terminate(mut self) -> i32 {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        status.code().unwrap_or(-1)
    }
}

/// A copy of request-log file `from` whose metadata names another graph.
fn with_another_graph(from: &Path, to: &Path) {
    let file = std::fs::File::open(from).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let mut metadata = builder.schema().metadata().clone();
    metadata.insert("sluice.graph".into(), format!("sha256:{}", "ab".repeat(32)));
    let schema = Arc::new(builder.schema().as_ref().clone().with_metadata(metadata));
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(to).unwrap(),
        schema.clone(),
        None,
    )
    .unwrap();
    for batch in builder.build().unwrap() {
        writer
            .write(&batch.unwrap().with_schema(schema.clone()).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
}

#[test]
fn a_devices_request_log_taken_into_the_store_is_monitored_like_a_servers() {
    let Some(edge) = edge_bin() else { return };
    let (dir, store) = trained_store(false);
    let path = dir.path().join("bc.bundle");
    bundle(&store, PRODUCTION, &path, &[]);
    let logs = dir.path().join("device-logs");
    let server = EdgeServer::start(
        Command::new(&edge),
        &[
            "--bundle",
            path.to_str().unwrap(),
            "--request-log",
            logs.to_str().unwrap(),
            "--log-every",
            "200ms",
        ],
    );
    // Every row, two columns shifted, in requests of ten (ids dev-K)…
    let d = data();
    crate::monitor::send(
        &server.addr,
        &d,
        "dev",
        &["mean_radius", "mean_texture"],
        1.6,
    );
    // …and one request without an id: the answer carries the one logged.
    let (status, answer) = server.infer(0..3);
    assert_eq!(status, 200, "{answer}");
    let (status, anonymous) = {
        let body = d.infer_body(3..4, None).to_string();
        http(
            &server.addr,
            "POST",
            "/v2/models/breast-cancer/infer",
            body.as_bytes(),
            false,
        )
    };
    assert_eq!(status, 200, "{anonymous}");
    let anonymous: Value = serde_json::from_str(&anonymous).unwrap();
    let given = anonymous["id"].as_str().unwrap().to_string();
    assert!(given.len() > 9 && given.contains('-'), "{given}");
    assert_eq!(server.terminate(), 0, "a stop writes what is buffered");
    let files: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!files.is_empty());
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("requests-") && f.ends_with(".parquet")),
        "no half-written files: {files:?}"
    );
    let logged = d.rows.len() + 3 + 1;

    // Into another store (no such model): refused, nothing taken.
    let empty = dir.path().join("empty-store");
    let r = run(&[
        "monitor",
        "--model",
        PRODUCTION,
        "--store",
        empty.to_str().unwrap(),
        "--ingest",
        logs.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("holds requests of breast-cancer:1, which this store does not have"),
        "{}",
        r.stderr
    );
    // A file that claims another graph, beside good ones: refused by name,
    // and the good ones are not taken either.
    let forged_dir = dir.path().join("forged");
    std::fs::create_dir(&forged_dir).unwrap();
    let first = logs.join(&files[0]);
    std::fs::copy(&first, forged_dir.join(&files[0])).unwrap();
    with_another_graph(
        &first,
        &forged_dir.join("requests-99990101-000000-999999.parquet"),
    );
    let r = crate::monitor::monitor(&store, &["--ingest", forged_dir.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("requests-99990101-000000-999999.parquet")
            && r.stderr
                .contains(&format!("answered by the graph sha256:{}", "ab".repeat(32))),
        "{}",
        r.stderr
    );
    let r = crate::monitor::monitor(&store, &["--json"]);
    assert_eq!(r.code, 2, "nothing was taken: {}", r.stderr);
    // A file that is not a request log.
    let stray = dir.path().join("stray.parquet");
    std::fs::copy(&path, &stray).unwrap();
    let r = crate::monitor::monitor(&store, &["--ingest", stray.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("stray.parquet: not a Parquet file"),
        "{}",
        r.stderr
    );

    // Into the store the bundle came from: every request, the shifted
    // columns flagged (and only them), the predictions' rows as served.
    let r = crate::monitor::monitor(&store, &["--ingest", logs.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["serving"]["rows"], logged);
    let ingested = report["ingested"].as_array().unwrap();
    assert_eq!(ingested.len(), files.len());
    assert!(
        ingested
            .iter()
            .all(|f| f["already"] == false && f["model"] == "breast-cancer:1")
    );
    let drifted: Vec<&str> = report["drifted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        drifted.contains(&"mean_radius") && drifted.contains(&"mean_texture"),
        "{drifted:?}"
    );
    assert!(!drifted.contains(&"worst_symmetry"), "{drifted:?}");

    // Taken again: nothing counted twice.
    let r = crate::monitor::monitor(&store, &["--ingest", logs.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["serving"]["rows"], logged);
    assert!(
        report["ingested"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["already"] == true)
    );

    // The rows carry the ids the answers carried.
    let all: Vec<RecordBatch> = files.iter().map(|f| read_parquet(&logs.join(f))).collect();
    let ids: Vec<String> = all.iter().flat_map(|b| strings(b, "request_id")).collect();
    assert!(
        ids.contains(&"edge".to_string()) && ids.contains(&given),
        "{ids:?}"
    );
    assert!(ids.contains(&"dev-0".to_string()));
}

/// `cargo tree -p sluice-edge -e normal -i PACKAGE`: how `package` is in
/// the edge's dependency graph as cargo resolves it for `-p sluice-edge`.
fn edge_depends_on(package: &str) -> std::process::Output {
    Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "sluice-edge",
            "-e",
            "normal",
            "--offline",
            "-i",
            package,
        ])
        .current_dir(repo())
        .output()
        .unwrap()
}

#[test]
fn the_edge_runtime_has_no_query_engine() {
    // Neither DataFusion nor its SQL parser: the edge replays transforms
    // with Arrow alone (std:transform's `apply` in slices of 4095 rows).
    assert_not_in_edge_graph(&["datafusion", "sqlparser"]);
}

#[test]
fn the_default_edge_runtime_has_no_onnx_engine() {
    // The default sluice-edge is lite: sluice-ml's lite evaluator runs the
    // models sluice trains, and tract (with ndarray and rustfft, about half
    // of the binary) is not in its graph.
    assert_not_in_edge_graph(&[
        "tract-onnx",
        "tract-core",
        "tract-linalg",
        "ndarray",
        "rustfft",
    ]);
}

/// Each of `packages` is absent from sluice-edge's dependency graph
/// (`cargo tree -i` finds no such package).
fn assert_not_in_edge_graph(packages: &[&str]) {
    for package in packages {
        let out = edge_depends_on(package);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{package} is in sluice-edge's graph:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            err.contains("did not match any packages"),
            "{package}: {err}"
        );
    }
}

#[test]
fn sluice_trained_mlp_and_tree_models_predict_on_the_lite_edge_as_sluice_predicts() {
    let Some(edge) = edge_bin() else { return };
    // The flagship pipeline with another algorithm: an MLP, gradient-boosted
    // trees and a random forest, each bundled with a self-test.
    let logistic =
        "algorithm = \"logistic-regression\", label = \"diagnosis\", params = { c = 1.0 }";
    for (algorithm, params) in [
        ("mlp-classifier", "{ epochs = 20 }"),
        ("gradient-boosting-classifier", "{ n_estimators = 20 }"),
        ("random-forest-classifier", "{ n_estimators = 10 }"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        crate::serve::train(&store, |s| {
            assert!(s.contains(logistic));
            s.replace(
                logistic,
                &format!("algorithm = \"{algorithm}\", label = \"diagnosis\", params = {params}"),
            )
        });
        crate::serve::promote(&store, "1", "production");
        let path = dir.path().join("model.bundle");
        let csv = csv_path();
        bundle(
            &store,
            PRODUCTION,
            &path,
            &["--sample", csv.to_str().unwrap()],
        );
        let reference = reference_predictions(&store, dir.path(), &csv);
        // Loading runs the self-test (32 rows) on the device too.
        let text = edge_predict(Command::new(&edge), &path, &csv);
        // Labels equal; probabilities within sluice_contract's
        // PREDICTION_TOLERANCE (1e-6; they are at most 1, so absolute): the
        // lite evaluator's sigmoid and softmax are not tract's.
        let largest = assert_same_predictions(&text, &reference, 1e-6);
        eprintln!("{algorithm}: lite edge vs sluice predict, largest difference {largest:e}");
    }
}

#[test]
fn a_model_with_an_operator_the_lite_edge_does_not_run_is_refused_at_load() {
    let Some(edge) = edge_bin() else { return };
    let (dir, store) = crate::serve::trained_store(false);
    let path = dir.path().join("plain.bundle");
    bundle(&store, PRODUCTION, &path, &[]);
    // The graph with its Sigmoid made a Hardmax (the same length: the
    // protobuf stays well formed), as an imported model could have it, and
    // the card naming the new graph: a bundle an older `sluice bundle`, or
    // one run with --onnx-engine, could have made.
    let bytes = std::fs::read(&path).unwrap();
    let onnx = &bytes[tar_entry(&bytes, "model/model.onnx")];
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(find(onnx, b"Sigmoid"), "the flagship's binary head");
    let edited: Vec<u8> = {
        let mut v = onnx.to_vec();
        let mut i = 0;
        while i + 7 <= v.len() {
            if &v[i..i + 7] == b"Sigmoid" {
                v[i..i + 7].copy_from_slice(b"Hardmax");
            }
            i += 1;
        }
        v
    };
    let digest = sluice_runtime::Digest::of(&edited).to_string();
    let bytes = rewritten(&bytes, |_, name, content| {
        if name == "model/model.onnx" {
            *content = edited.clone();
        } else if name == "model/card.json" {
            let mut card: Value = serde_json::from_slice(content).unwrap();
            card["onnx"] = Value::String(digest.clone());
            *content = serde_json::to_vec(&card).unwrap();
        }
    });
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new(&edge)
        .arg("predict")
        .arg(&path)
        .stdin(std::fs::File::open(csv_path()).unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "the model uses the ONNX operator `Hardmax` (node `Hardmax_1`), which this build \
             cannot run: it has no ONNX engine"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "Rebuild with the ONNX engine (`cargo build --profile edge -p sluice-edge --features \
             onnx-engine`), or serve this model with `sluice serve`"
        ),
        "{err}"
    );
}

#[test]
fn a_model_whose_transform_derives_columns_is_not_bundled_for_a_device() {
    // std:transform computes `derive`'s SQL expressions with the host's
    // query engine, which the device has not got: every request would fail.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    crate::serve::train(&store, |s| {
        let transform = "test = \"split.test\" }\nparams = { label = \"diagnosis\" }";
        let infra = ", infra-blessing = \"infra-validate.blessing\" }";
        assert!(s.contains(transform) && s.contains(infra) && s.contains(", require-infra = true"));
        // Without infra-validate, whose examples are raw rows without the
        // derived column (the card's input signature names it).
        let s = s.replace(infra, " }").replace(", require-infra = true", "");
        let s = s.replace("[steps.infra-validate]", "[steps.unused]").replace(
            "component = \"std:infra-validate\"\ninputs = { model = \"train.model\", examples = \"split.test\" }\nparams = { max-p99-ms = 1000.0, min-qps = 5.0, max-memory = \"1GiB\", max-startup-ms = 60000.0, duration = \"1s\" }",
            "component = \"std:statistics\"\ninputs = { data = \"split.test\" }",
        );
        s.replace(
            transform,
            "test = \"split.test\" }\nparams = { label = \"diagnosis\", spec = { derive = \
             { area_ratio = \"mean_area / worst_area\" } } }",
        )
    });
    let r = run(&[
        "bundle",
        "--store",
        store.to_str().unwrap(),
        "--model",
        "breast-cancer:1",
        "-o",
        dir.path().join("b.bundle").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "breast-cancer:1's transform derives columns with SQL expressions (`derive`: \
             area_ratio), which sluice-edge cannot compute: the device has no query engine. \
             Compute these columns before the model instead"
        ),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("b.bundle").exists());

    // A bundle whose transform derives columns all the same (its card
    // edited, as an older `sluice bundle` could have made it): the device
    // fails every prediction saying why and what to do, as its own failure
    // (a server error), not the request's.
    let Some(edge) = edge_bin() else { return };
    let (dir, plain) = crate::serve::trained_store(false);
    let path = dir.path().join("plain.bundle");
    bundle(&plain, PRODUCTION, &path, &[]);
    let edited = rewritten(&std::fs::read(&path).unwrap(), |_, name, content| {
        if name == "model/card.json" {
            let mut card: Value = serde_json::from_slice(content).unwrap();
            let state = &mut card["transform"]["state"];
            let state = if state.get("state").is_some() {
                &mut state["state"]
            } else {
                state
            };
            state["params"]["derive"] = serde_json::json!({"area_ratio": "mean_area / worst_area"});
            *content = serde_json::to_vec(&card).unwrap();
        }
    });
    std::fs::write(&path, edited).unwrap();
    let out = Command::new(&edge)
        .arg("predict")
        .arg(&path)
        .stdin(std::fs::File::open(csv_path()).unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let unavailable = "the transform cannot run in this runtime: computing the derived columns: \
                       compute `mean_radius` = `\"mean_radius\"`: SQL expressions: not available \
                       in sluice-edge";
    assert!(err.contains(unavailable), "{err}");
    assert!(
        err.contains("Serve this model with `sluice serve`"),
        "{err}"
    );
    let server = EdgeServer::start(Command::new(&edge), &["--bundle", path.to_str().unwrap()]);
    let (status, answer) = server.infer(0..3);
    assert_eq!(status, 500, "{answer}");
    assert!(
        answer.to_string().contains("not available in sluice-edge"),
        "{answer}"
    );
}

#[test]
fn the_edge_runtime_has_no_compiler() {
    // Not in its graph: cargo finds no package of that name there.
    let out = edge_depends_on("cranelift-codegen");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "cranelift-codegen is in sluice-edge's graph:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains("did not match any packages"), "{err}");
    // And the shipped aarch64 binary: wasmtime's runtime, no cranelift.
    if let Some(bin) = std::env::var_os("SLUICE_EDGE_AARCH64_BIN") {
        let bytes = std::fs::read(bin).unwrap();
        let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(
            has("wasmtime"),
            "no wasmtime symbols: the check would prove nothing"
        );
        assert!(
            !has("cranelift_codegen"),
            "cranelift_codegen symbols in the aarch64 sluice-edge"
        );
    }
}

#[test]
fn a_bundle_for_aarch64_predicts_under_qemu_what_sluice_predicts_on_this_machine() {
    let Some(_) = aarch64_edge() else { return };
    let (dir, store) = trained_store(false);
    let path = dir.path().join("arm.bundle");
    let csv = csv_path();
    let spec = store.with_extension("toml");
    bundle(
        &store,
        PRODUCTION,
        &path,
        &[
            "--target",
            "aarch64-unknown-linux-gnu",
            "--sample",
            csv.to_str().unwrap(),
            "--pipeline",
            spec.to_str().unwrap(),
            "--steps",
            "ingest,statistics,validate",
        ],
    );
    let reference = reference_predictions(&store, dir.path(), &csv_path());
    // Loading runs the self-test (32 rows, within 1e-6) on the device too.
    let text = edge_predict(aarch64_edge().unwrap(), &path, &csv_path());
    // Labels equal; probabilities within 1e-6 (tract's aarch64 and x86_64
    // kernels round differently).
    let largest = assert_same_predictions(&text, &reference, 1e-6);
    eprintln!("aarch64 vs x86_64: largest probability difference {largest:e}");

    // The bundled steps on the device: its data checked against the
    // training schema, its statistics the pipeline's on x86_64 to the byte.
    let out = dir.path().join("out");
    let (code, report, stderr) = edge_run(
        aarch64_edge().unwrap(),
        &path,
        &[
            "--input",
            &format!("raw={}", csv.display()),
            "--output-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["steps"][2]["metrics"]["anomalies"], 0.0);
    assert_eq!(
        sluice_runtime::Digest::of(&std::fs::read(out.join("statistics/statistics.json")).unwrap())
            .to_string(),
        run_output(&store, "statistics", "statistics")
    );

    let server = EdgeServer::start(
        aarch64_edge().unwrap(),
        &["--bundle", path.to_str().unwrap()],
    );
    let (status, answer) = server.infer(0..40);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        output(&answer, "prediction"),
        strings(&reference, "prediction")[..40]
    );
}

/// `sluice-edge run BUNDLE ARGS… --json`: exit status, JSON report, stderr.
fn edge_run(mut cmd: Command, bundle: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = cmd
        .arg("run")
        .arg(bundle)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), report, stderr)
}

/// The digest (`sha256:…`) of output `port` of step `step` in the store's
/// only run.
fn run_output(store: &Path, step: &str, port: &str) -> String {
    let s = store.to_str().unwrap();
    let runs = run(&["runs", "list", "--store", s, "--json"]).json();
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let shown = run(&["runs", "show", &id, "--store", s, "--json"]).json();
    let steps = shown["steps"].as_array().unwrap();
    let step = steps.iter().find(|e| e["step"] == step).unwrap();
    step["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["direction"] == "output" && e["port"] == port)
        .unwrap()["artifact"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The flagship's ingest, statistics and validate, bundled for `target`:
/// the device reads its own CSV and checks it against the schema the
/// model was trained on (frozen in the bundle from the training run).
fn bundle_with_checks(store: &Path, path: &Path, target: &str) -> Value {
    let spec = store.with_extension("toml");
    bundle(
        store,
        PRODUCTION,
        path,
        &[
            "--target",
            target,
            "--pipeline",
            spec.to_str().unwrap(),
            // In any order: the device runs them in the pipeline's.
            "--steps",
            "validate,ingest,statistics",
        ],
    )
}

#[test]
fn a_bundles_pipeline_steps_run_on_the_device_as_in_the_pipeline_and_stop_on_schema_skew() {
    let Some(edge) = edge_bin() else { return };
    let (dir, store) = trained_store(false);
    let d = dir.path();
    let path = d.join("checks.bundle");
    let host = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let summary = bundle_with_checks(&store, &path, &host);
    let steps = summary["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ingest", "statistics", "validate"]);
    // ingest reads the device's file; validate's schema is the training
    // run's, carried in the bundle; the rest flows from step to step.
    assert_eq!(steps[0]["inputs"][0]["from"]["source"], "device");
    assert_eq!(steps[0]["inputs"][0]["from"]["name"], "raw");
    assert_eq!(steps[1]["inputs"][0]["from"]["step"], "ingest");
    let schema = &steps[2]["inputs"][1];
    assert_eq!(schema["port"], "schema");
    assert_eq!(schema["from"]["source"], "bundled");
    assert!(
        schema["from"]["origin"]
            .as_str()
            .unwrap()
            .ends_with("/schema/schema"),
        "{schema}"
    );
    // The spec's params, defaults applied, travel typed.
    assert_eq!(
        steps[1]["params"]["bins"],
        serde_json::json!({"type": "integer", "value": 10})
    );
    let frozen = schema["from"]["path"].as_str().unwrap();
    assert_eq!(
        format!("sha256:{}", frozen.trim_start_matches("inputs/")),
        run_output(&store, "schema", "schema")
    );

    // The training data passes, and the device's statistics are the
    // pipeline's, byte for byte: same component, params and data.
    let out = d.join("out");
    let csv = csv_path();
    let raw = format!("raw={}", csv.display());
    let (code, report, stderr) = edge_run(
        Command::new(&edge),
        &path,
        &["--input", &raw, "--output-dir", out.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["ok"], true);
    let states: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["succeeded"; 3]);
    assert_eq!(report["steps"][0]["metrics"]["rows"], 569.0);
    assert_eq!(report["steps"][2]["metrics"]["anomalies"], 0.0);
    let statistics = std::fs::read(out.join("statistics/statistics.json")).unwrap();
    assert_eq!(
        sluice_runtime::Digest::of(&statistics).to_string(),
        run_output(&store, "statistics", "statistics")
    );
    let table = std::fs::read_to_string(out.join("ingest/data.csv")).unwrap();
    assert_eq!(table.lines().count(), 570);
    assert_eq!(table.lines().next().unwrap().split(',').count(), 31);

    // Schema skew: a column gone and text where numbers were. validate
    // stops the run with what is wrong; nothing of it is written.
    let (header, rows) = std::fs::read_to_string(&csv)
        .unwrap()
        .split_once('\n')
        .map(|(h, r)| (h.to_string(), r.to_string()))
        .unwrap();
    let keep: Vec<usize> = header
        .split(',')
        .enumerate()
        .filter(|(_, c)| *c != "mean_area")
        .map(|(i, _)| i)
        .collect();
    let mut skewed = String::new();
    for (n, line) in std::iter::once(header.as_str())
        .chain(rows.lines())
        .enumerate()
    {
        let fields: Vec<&str> = line.split(',').collect();
        let mut row: Vec<String> = keep.iter().map(|&i| fields[i].to_string()).collect();
        if n == 3 {
            row[0] = "unknown".into();
        }
        skewed += &row.join(",");
        skewed.push('\n');
    }
    let bad = d.join("skewed.csv");
    std::fs::write(&bad, skewed).unwrap();
    let out2 = d.join("out2");
    let (code, report, stderr) = edge_run(
        Command::new(&edge),
        &path,
        &[
            "--input",
            &format!("raw={}", bad.display()),
            "--output-dir",
            out2.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{stderr}\n{report}");
    assert_eq!(report["ok"], false);
    let failed = &report["steps"][2];
    assert_eq!(failed["state"], "failed");
    let error = failed["error"].as_str().unwrap();
    assert!(error.starts_with("invalid input:"), "{error}");
    assert!(
        error.contains("column `mean_area` (float64) is in the schema but not in the data"),
        "{error}"
    );
    assert!(error.contains("mean_radius"), "{error}");
    assert!(out2.join("statistics/statistics.json").is_file());
    assert!(!out2.join("validate").exists());

    // Without --json, a line per step.
    let out = Command::new(&edge)
        .arg("run")
        .arg(&path)
        .args(["--input", &format!("raw={}", bad.display())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("✓ ingest"), "{text}");
    assert!(text.contains("✗ validate"), "{text}");

    // A step left out whose output the device gives: its own table,
    // read from CSV.
    let given = d.join("given.bundle");
    let spec = store.with_extension("toml");
    bundle(
        &store,
        PRODUCTION,
        &given,
        &[
            "--pipeline",
            spec.to_str().unwrap(),
            "--steps",
            "statistics,validate",
            "--from-device",
            "ingest.data",
        ],
    );
    let table = format!("ingest.data={}", csv.display());
    let (code, report, stderr) = edge_run(Command::new(&edge), &given, &["--input", &table]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["steps"][0]["metrics"]["rows"], 569.0);
    assert_eq!(report["steps"][1]["metrics"]["errors"], 0.0);

    // Inputs named wrong or not given, and a bundle without steps.
    let (code, _, stderr) = edge_run(Command::new(&edge), &path, &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "the bundle's steps need --input raw=FILE (a file, for step `ingest`'s `file`)"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = edge_run(
        Command::new(&edge),
        &path,
        &["--input", &raw, "--input", "rows=x.csv"],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--input rows: the bundle's steps take no input `rows`; they take raw"),
        "{stderr}"
    );
    let plain = d.join("plain.bundle");
    bundle(&store, PRODUCTION, &plain, &[]);
    let (code, _, stderr) = edge_run(Command::new(&edge), &plain, &["--input", &raw]);
    assert_eq!(code, 1);
    assert!(stderr.contains("holds no pipeline steps"), "{stderr}");

    // The frozen schema is checked like every file of the bundle.
    let bytes = std::fs::read(&path).unwrap();
    let range = tar_entry(&bytes, frozen);
    let mut tampered = bytes.clone();
    tampered[range.start + 10] ^= 0x20;
    let bad_bundle = d.join("tampered.bundle");
    std::fs::write(&bad_bundle, tampered).unwrap();
    let (code, _, stderr) = edge_run(Command::new(&edge), &bad_bundle, &["--input", &raw]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("`{frozen}` in the bundle was modified or damaged")),
        "{stderr}"
    );
}

#[test]
fn steps_a_device_cannot_run_are_refused_when_bundling() {
    let (dir, store) = trained_store(false);
    let spec = store.with_extension("toml");
    let out = dir.path().join("x.bundle");
    let attempt = |extra: &[&str]| {
        let mut args = vec![
            "bundle",
            "--store",
            store.to_str().unwrap(),
            "--model",
            PRODUCTION,
            "-o",
            out.to_str().unwrap(),
            "--pipeline",
            spec.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let r = run(&args);
        // 2: sluice's status for an error (1 is a failed run).
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(!out.exists());
        r.stderr
    };
    let e = attempt(&["--steps", "statistics,nope"]);
    assert!(
        e.contains("has no step `nope` (it has ingest, statistics"),
        "{e}"
    );
    // std:evaluate takes the trained model, a step output a device cannot
    // be given.
    let e = attempt(&["--steps", "evaluate"]);
    assert!(
        e.contains("input `model` of step `evaluate` (train.model) is a model"),
        "{e}"
    );
    let e = attempt(&["--steps", "statistics", "--from-device", "data.raw"]);
    assert!(
        e.contains("--from-device data.raw: name the output of a step left out (STEP.PORT) that a bundled step takes; the bundled steps take ingest.data"),
        "{e}"
    );
}
