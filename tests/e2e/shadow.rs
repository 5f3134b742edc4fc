//! Shadow traffic and sticky variants, end to end: a shadow version
//! predicts a copy of every request the primary answers, yet no client
//! ever gets its answer; its disagreements with the primary are counted
//! exactly, and its requests land in the serving statistics under the role
//! `shadow`. A canary split with a variant key gives each key one side, on
//! every server and after a restart.

use crate::serve::{Server, data, promote, trained_store};
use serde_json::Value;
use sluice_store::{ServingRole, Store};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const MODEL: &str = "breast-cancer";
const INFER: &str = "/v2/models/breast-cancer/infer";

/// An answer with its headers (names in lowercase).
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no `{name}` header in {:?}", self.headers))
    }
}

/// One POST on a fresh connection, with `extra` headers; the status, the
/// headers and the JSON body.
pub(crate) fn post(addr: &str, path: &str, body: &Value, extra: &[(&str, &str)]) -> Reply {
    let body = body.to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let extra: String = extra.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// The value of a metric line `NAME{model="breast-cancer",version="V"}`.
fn metric(server: &Server, name: &str, version: &str) -> u64 {
    let (_, text) = server.get("/metrics");
    let prefix = format!("{name}{{model=\"{MODEL}\",version=\"{version}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// The `prediction` labels of a response.
fn labels(body: &Value) -> Vec<String> {
    body["outputs"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .find(|o| o["name"] == "prediction")
        .unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_shadow_never_answers_and_its_disagreements_are_counted_exactly() {
    let (_dir, store) = trained_store(true);
    let data = data();
    let n = 300;
    // What each version answers on its own, row by row.
    let reference = Server::start(
        &store,
        &[
            "--model",
            "breast-cancer:1",
            "--canary",
            "breast-cancer:2=0",
            "--stats-every",
            "off",
        ],
    );
    let mut v1 = Vec::new();
    let mut differ = 0;
    for i in 0..n {
        let body = data.infer_body(i..i + 1, None);
        let one = reference.post("/v2/models/breast-cancer/versions/1/infer", &body);
        let two = reference.post("/v2/models/breast-cancer/versions/2/infer", &body);
        assert_eq!((one.0, two.0), (200, 200), "{} {}", one.1, two.1);
        differ += usize::from(labels(&one.1) != labels(&two.1));
        v1.push(one.1["outputs"].clone());
    }
    drop(reference);
    // C = 1 and C = 0.05 disagree on a few borderline rows, not on most.
    assert!(differ > 0 && differ < n / 4, "{differ} rows differ");

    let server = Server::start(
        &store,
        &[
            "--model",
            "breast-cancer@production",
            "--shadow",
            "breast-cancer@staging",
            "--stats-every",
            "200ms",
            "--reload-every",
            "100ms",
        ],
    );
    for (i, want) in v1.iter().enumerate() {
        let r = post(&server.addr, INFER, &data.infer_body(i..i + 1, None), &[]);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("sluice-model-version"), "1");
        assert_eq!(r.header("sluice-variant"), "primary");
        assert_eq!(r.body["model_version"], "1");
        assert_eq!(&r.body["outputs"], want, "row {i}");
    }
    // The shadow's copies finish after the answers: wait for all of them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (compared, dropped, errors) = loop {
        let counts = (
            metric(&server, "sluice_shadow_compared_total", "2"),
            metric(&server, "sluice_shadow_dropped_total", "2"),
            metric(&server, "sluice_shadow_errors_total", "2"),
        );
        if counts.0 + counts.1 + counts.2 >= n as u64 || Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((compared + dropped, errors), (n as u64, 0));
    // One client, one request at a time: the queue never fills.
    assert_eq!(dropped, 0);
    assert_eq!(
        metric(&server, "sluice_shadow_disagreed_total", "2"),
        differ as u64
    );
    // The shadow is no version a client can address.
    let (status, _) = server.post(
        "/v2/models/breast-cancer/versions/2/infer",
        &data.infer_body(0..1, None),
    );
    assert_eq!(status, 404);

    // The shadow follows its alias: staging moves to version 1, and the
    // copies go to it (and agree with the primary, being the same version).
    promote(&store, "1", "staging");
    let loaded = "sluice_model_loaded{route=\"breast-cancer (shadow)\",model=\"breast-cancer\",version=\"1\"} 1";
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.get("/metrics").1.contains(loaded) {
        assert!(
            Instant::now() < deadline,
            "the shadow did not follow staging"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = post(&server.addr, INFER, &data.infer_body(0..1, None), &[]);
    assert_eq!(r.header("sluice-model-version"), "1");
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&server, "sluice_shadow_compared_total", "1") < 1 {
        assert!(
            Instant::now() < deadline,
            "no shadow comparison on version 1"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&server, "sluice_shadow_disagreed_total", "1"), 0);
    assert_eq!(
        metric(&server, "sluice_shadow_compared_total", "2"),
        compared
    );
    assert_eq!(server.stop().0, 0);

    let metadata = Store::open(&store).unwrap().metadata;
    let shadow = metadata
        .serving_totals_in_role(
            MODEL,
            2,
            Some("breast-cancer@staging"),
            ServingRole::Shadow,
            "",
        )
        .unwrap();
    assert_eq!(shadow.requests, compared + errors);
    assert_eq!(shadow.errors_4xx + shadow.errors_5xx, errors);
    let primary = metadata
        .serving_totals_in_role(
            MODEL,
            1,
            Some("breast-cancer@production"),
            ServingRole::Primary,
            "",
        )
        .unwrap();
    // The request for version 2 was refused before a version was chosen.
    assert_eq!((primary.requests, primary.errors_4xx), (n as u64 + 1, 0));
    let moved = metadata
        .serving_totals_in_role(
            MODEL,
            1,
            Some("breast-cancer@staging"),
            ServingRole::Shadow,
            "",
        )
        .unwrap();
    assert_eq!(moved.requests, 1);
}

/// A server splitting `breast-cancer` 50/50 with `extra` flags.
fn split(store: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--model",
        "breast-cancer@production",
        "--canary",
        "breast-cancer@staging=50",
        "--stats-every",
        "off",
    ];
    args.extend_from_slice(extra);
    Server::start(store, &args)
}

/// The side a keyed request got, checked against the version that
/// answered.
fn side(r: &Reply) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    let variant = r.header("sluice-variant").to_string();
    let version = match variant.as_str() {
        "primary" => "1",
        "canary" => "2",
        other => panic!("variant {other}"),
    };
    assert_eq!(r.header("sluice-model-version"), version);
    assert_eq!(r.body["model_version"], version);
    variant
}

#[test]
fn a_variant_key_keeps_its_side_across_requests_servers_and_restarts() {
    let (_dir, store) = trained_store(true);
    let data = data();
    let keys = 100;
    let body = data.infer_body(0..1, None);
    let ask = |server: &Server, key: &str| {
        side(&post(
            &server.addr,
            INFER,
            &body,
            &[("sluice-variant-key", key)],
        ))
    };
    let a = split(&store, &[]);
    let b = split(&store, &[]);
    let mut sides = Vec::new();
    for k in 0..keys {
        let key = format!("user-{k}");
        let first = ask(&a, &key);
        for _ in 0..2 {
            assert_eq!(ask(&a, &key), first, "{key} changed sides on one server");
        }
        assert_eq!(
            ask(&b, &key),
            first,
            "{key} got another side on a second server"
        );
        sides.push(first);
    }
    drop(b);
    assert_eq!(a.stop().0, 0);
    let canary = sides.iter().filter(|s| *s == "canary").count();
    // 50% ± 15 points: three standard deviations of 100 keys.
    assert!(
        (35..=65).contains(&canary),
        "{canary} of {keys} keys on the canary"
    );
    let a = split(&store, &[]);
    for (k, want) in sides.iter().enumerate() {
        assert_eq!(
            &ask(&a, &format!("user-{k}")),
            want,
            "user-{k} after a restart"
        );
    }
    // Without a key, still an answer naming its side.
    let r = post(&a.addr, INFER, &body, &[]);
    side(&r);
    // MLflow's endpoint splits by the same key.
    let mlflow = serde_json::json!({"dataframe_split": {
        "columns": data.features, "data": [data.rows[0]]}});
    for (k, want) in sides.iter().enumerate().take(20) {
        let r = post(
            &a.addr,
            "/invocations",
            &mlflow,
            &[("sluice-variant-key", &format!("user-{k}"))],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("sluice-variant"), want, "user-{k} on /invocations");
        let version = if want == "canary" { "2" } else { "1" };
        assert_eq!(r.header("sluice-model-version"), version);
    }
    drop(a);

    // Keyed by an input column: its value in the first row decides.
    let column = data.features[0].clone();
    let a = split(&store, &["--variant-key", &format!("field:{column}")]);
    let b = split(&store, &["--variant-key", &format!("field:{column}")]);
    let rows = 60;
    let mut by_row = Vec::new();
    for i in 0..rows {
        let one = side(&post(&a.addr, INFER, &data.infer_body(i..i + 1, None), &[]));
        // A header key is not read in this mode.
        let again = side(&post(
            &a.addr,
            INFER,
            &data.infer_body(i..i + 1, None),
            &[("sluice-variant-key", "ignored")],
        ));
        let elsewhere = side(&post(&b.addr, INFER, &data.infer_body(i..i + 1, None), &[]));
        let with_more_rows = side(&post(&a.addr, INFER, &data.infer_body(i..i + 3, None), &[]));
        assert_eq!(
            [&again, &elsewhere, &with_more_rows],
            [&one; 3],
            "row {i} ({column} = {})",
            data.rows[i][0]
        );
        by_row.push(one);
    }
    let canary = by_row.iter().filter(|s| *s == "canary").count();
    assert!(
        (15..=45).contains(&canary),
        "{canary} of {rows} rows on the canary"
    );
    drop((a, b));

    // A column the model does not take cannot be a key.
    let r = crate::support::run(&[
        "serve",
        "--model",
        "breast-cancer@production",
        "--canary",
        "breast-cancer@staging=50",
        "--variant-key",
        "field:user_id",
        "--addr",
        "127.0.0.1:0",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("takes no input `user_id`"),
        "{}",
        r.stderr
    );
}
