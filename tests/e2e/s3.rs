//! The same pipeline scenarios against an S3-compatible object store: a
//! real local server (moto) that `scripts/test` and `.ci/run` start and
//! name in `SLUICE_TEST_S3_ENDPOINT`. Objects go to the bucket; metadata
//! stays in a local folder (`SLUICE_METADATA_DIR`).

use crate::support::*;
use std::io::{Read, Write};
use std::path::Path;

/// A fresh bucket URL, or `None` (with a note) when no server is configured.
pub(crate) fn bucket(name: &str) -> Option<String> {
    let Ok(endpoint) = std::env::var("SLUICE_TEST_S3_ENDPOINT") else {
        eprintln!(
            "SLUICE_TEST_S3_ENDPOINT is not set: S3 scenario `{name}` not run (scripts/test sets it)"
        );
        return None;
    };
    let bucket = format!("e2e-{name}-{}", std::process::id());
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(host).expect("S3 test server reachable");
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    Some(format!("s3://{bucket}/pipelines"))
}

/// `sluice ARGS…` with the S3 environment and a local metadata folder.
fn s3_run(meta: &Path, args: &[&str]) -> Run {
    let endpoint = std::env::var("SLUICE_TEST_S3_ENDPOINT").unwrap();
    sluice()
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("SLUICE_METADATA_DIR", meta)
        .args(args)
        .output()
        .unwrap()
        .into()
}

#[test]
fn a_pipeline_on_an_s3_store_runs_caches_and_traces_like_a_local_one() {
    let Some(url) = bucket("pipeline") else {
        return;
    };
    let meta = tempfile::tempdir().unwrap();
    let p = Project::new(
        r#"
[pipeline]
name = "s3"
[data]
iris = "iris.csv"
[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.iris" }
[steps.stats]
component = "std:statistics"
inputs = { data = "ingest.data" }
params = { bins = 10 }
"#,
    );
    std::fs::copy(
        repo().join("examples/quickstart/data/iris.csv"),
        p.dir.path().join("iris.csv"),
    )
    .unwrap();
    let spec = p.spec();
    let spec = spec.to_str().unwrap();

    let first = s3_run(meta.path(), &["run", spec, "--store", &url, "--json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let first = first.json();
    assert_eq!(first["store"], url);
    let location = step(&first, "stats")["outputs"][0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        location.starts_with(&format!("{url}/objects/sha256/")),
        "{location}"
    );
    assert!(
        !p.dir
            .path()
            .join(".sluice/objects/sha256")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "no objects were written locally"
    );

    // The statistics, read back from the bucket.
    let digest = step(&first, "stats")["outputs"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let out = meta.path().join("stats.json");
    let exported = s3_run(
        meta.path(),
        &[
            "artifacts",
            "export",
            &digest,
            "-o",
            out.to_str().unwrap(),
            "--store",
            &url,
        ],
    );
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(
        (stats["columns"][0]["numeric"]["mean"].as_f64().unwrap() - 5.843_333_333_333_333).abs()
            < 1e-12
    );

    // Cached re-run; a param change re-runs exactly that step.
    let second = s3_run(meta.path(), &["run", spec, "--store", &url, "--json"]).json();
    assert_eq!(step(&second, "ingest")["state"], "cached");
    assert_eq!(step(&second, "stats")["state"], "cached");
    std::fs::write(
        p.spec(),
        std::fs::read_to_string(p.spec())
            .unwrap()
            .replace("bins = 10", "bins = 3"),
    )
    .unwrap();
    let third = s3_run(meta.path(), &["run", spec, "--store", &url, "--json"]).json();
    assert_eq!(step(&third, "ingest")["state"], "cached");
    assert_eq!(step(&third, "stats")["state"], "succeeded");

    // Lineage reaches the data file; gc keeps everything referenced.
    let lineage = s3_run(
        meta.path(),
        &[
            "lineage",
            "latest/stats/statistics",
            "--store",
            &url,
            "--json",
        ],
    );
    assert_eq!(lineage.code, 0, "{}", lineage.stderr);
    let lineage = lineage.json();
    let data = lineage["data"].as_array().unwrap();
    assert!(
        data.iter()
            .any(|d| d["path"].as_str().unwrap().ends_with("iris.csv")),
        "{lineage:#}"
    );
    let gc = s3_run(meta.path(), &["gc", "--store", &url, "--json"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert_eq!(gc.json()["removed"].as_array().unwrap().len(), 0);
    let again = s3_run(meta.path(), &["run", spec, "--store", &url, "--json"]).json();
    assert_eq!(step(&again, "stats")["state"], "cached");

    // The table deleted from the bucket behind sluice's back: a bucket is
    // not asked about objects the metadata names (sluice never removes
    // those), so a step that needs it says what is missing and what to
    // do, and `store verify` finds it.
    let table = step(&again, "ingest")["outputs"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    delete_object(
        &url,
        &format!("pipelines/objects/sha256/{}/{}", &table[..2], &table[2..]),
    );
    let verify = s3_run(meta.path(), &["store", "verify", "--store", &url, "--json"]);
    assert_eq!(verify.code, 1, "{}", verify.stdout);
    let problems = verify.json()["problems"].clone();
    assert_eq!(problems[0]["kind"], "missing", "{problems}");
    assert_eq!(
        problems[0]["digest"],
        format!("sha256:{table}"),
        "{problems}"
    );
    std::fs::write(
        p.spec(),
        std::fs::read_to_string(p.spec())
            .unwrap()
            .replace("bins = 3", "bins = 4"),
    )
    .unwrap();
    let broken = s3_run(meta.path(), &["run", spec, "--store", &url]);
    assert_ne!(broken.code, 0);
    assert!(broken.stderr.contains(&table), "{}", broken.stderr);
    assert!(broken.stderr.contains("--no-cache"), "{}", broken.stderr);
    let mended = s3_run(
        meta.path(),
        &["run", spec, "--store", &url, "--no-cache", "--json"],
    );
    assert_eq!(mended.code, 0, "{}", mended.stderr);
    let verify = s3_run(meta.path(), &["store", "verify", "--store", &url]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

/// Deletes `s3://BUCKET/KEY` on the test server, as a user's own tool
/// would (boto3, which the test server itself requires; a signed request).
fn delete_object(url: &str, key: &str) {
    let endpoint = std::env::var("SLUICE_TEST_S3_ENDPOINT").unwrap();
    let bucket = url.trim_start_matches("s3://").split('/').next().unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, boto3; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test').delete_object(Bucket=sys.argv[2], Key=sys.argv[3])",
            &endpoint,
            bucket,
            key,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// PUTs `body` at `s3://BUCKET/KEY` on the test server.
fn put_object(url: &str, key: &str, body: &str) {
    let endpoint = std::env::var("SLUICE_TEST_S3_ENDPOINT").unwrap();
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let bucket = url.trim_start_matches("s3://").split('/').next().unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "PUT /{bucket}/{key} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[test]
fn new_objects_under_an_s3_prefix_start_exactly_one_run() {
    let Some(url) = bucket("watch") else {
        return;
    };
    let incoming = url.replace("/pipelines", "/incoming");
    put_object(&url, "incoming/2026-11-01.csv", "a,b\n1,2\n");
    let meta = tempfile::tempdir().unwrap();
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "s3-watch"
[data]
iris = "iris.csv"
[steps.ingest]
component = "std:ingest-csv"
inputs = {{ file = "data.iris" }}
[triggers]
new-data = ["{incoming}"]
"#
    ));
    std::fs::copy(
        repo().join("examples/quickstart/data/iris.csv"),
        p.dir.path().join("iris.csv"),
    )
    .unwrap();
    let spec = p.spec();
    let spec = spec.to_str().unwrap();
    let store = p.dir.path().join(".sluice");
    let runs = || {
        let r = run(&["runs", "list", "--json", "--store", store.to_str().unwrap()]);
        r.json().as_array().unwrap().clone()
    };

    // First sight: the listing is recorded, nothing runs.
    let r = s3_run(meta.path(), &["watch", spec, "--once"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(runs().is_empty(), "{}", r.stderr);
    // A new object under the prefix: one run, whose trigger says so.
    put_object(&url, "incoming/2026-11-02.csv", "a,b\n3,4\n");
    let r = s3_run(meta.path(), &["watch", spec, "--once"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("`{incoming}` changed")),
        "{}",
        r.stderr
    );
    let all = runs();
    assert_eq!(all.len(), 1);
    assert!(all[0]["trigger"].as_str().unwrap().starts_with("new-data:"));
    // Nothing new: nothing runs.
    let r = s3_run(meta.path(), &["watch", spec, "--once"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(runs().len(), 1);
}
