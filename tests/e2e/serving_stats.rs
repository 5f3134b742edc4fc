//! Serving statistics, end to end: `sluice serve` counts the requests it
//! answers per model version — 4xx and 5xx errors, a latency histogram —
//! and writes them to the store every `--stats-every` and at SIGTERM;
//! windows of several servers on one store add up, by the reference and
//! role that served them. Read back through `sluice_store`, as promotion
//! gates read them.

use crate::serve::{Server, data, promote, trained_store};
use sluice_store::{ServingTotals, Store};
use std::path::Path;
use std::time::{Duration, Instant};

const MODEL: &str = "breast-cancer";
const INFER: &str = "/v2/models/breast-cancer/infer";

/// Version 1's windows in `store`, under `reference` if given.
fn totals(store: &Path, reference: Option<&str>) -> ServingTotals {
    Store::open(store)
        .unwrap()
        .metadata
        .serving_totals(MODEL, 1, reference, "")
        .unwrap()
}

/// Sends `good` requests the model answers and `bad` ones it refuses with
/// 400 (an input column missing).
fn send(server: &Server, good: usize, bad: usize) {
    let data = data();
    for i in 0..good {
        let (status, body) = server.post(INFER, &data.infer_body(i..i + 2, None));
        assert_eq!(status, 200, "{body}");
    }
    let mut missing = data.infer_body(0..1, None);
    missing["inputs"].as_array_mut().unwrap().remove(3);
    for _ in 0..bad {
        let (status, body) = server.post(INFER, &missing);
        assert_eq!(status, 400, "{body}");
    }
}

fn server(store: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--model",
        "breast-cancer@production",
        "--stats-every",
        "200ms",
    ];
    args.extend_from_slice(extra);
    Server::start(store, &args)
}

#[test]
fn a_server_writes_its_requests_errors_and_latency_to_the_store() {
    let (_dir, store) = trained_store(false);
    let (good, bad) = (7, 3);
    let s = server(&store, &[]);
    send(&s, good, bad);
    // Not counted: a name this server does not serve, and a body that is
    // not a request (refused before a version was chosen).
    let (status, _) = s.post("/v2/models/nope/infer", &data().infer_body(0..1, None));
    assert_eq!(status, 404);
    let (status, _) = s.post_raw(INFER, b"{not json");
    assert_eq!(status, 400);

    // Written while serving, every --stats-every.
    let deadline = Instant::now() + Duration::from_secs(30);
    while totals(&store, None).requests < (good + bad) as u64 {
        assert!(
            Instant::now() < deadline,
            "no window written while serving: {:?}",
            totals(&store, None)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, stderr) = s.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stderr.contains("could not write serving statistics"),
        "{stderr}"
    );

    let t = totals(&store, None);
    assert_eq!(t.requests, (good + bad) as u64, "{t:?}");
    assert_eq!(t.errors_4xx, bad as u64, "{t:?}");
    assert_eq!(t.errors_5xx, 0, "{t:?}");
    assert_eq!(t.latency_counts.iter().sum::<u64>(), t.requests);
    let p99 = t.p99_ms().unwrap();
    assert!(p99 > 0.0 && p99.is_finite(), "p99 {p99}");
    assert!(t.latency_sum_ms > 0.0);
    assert_eq!(t.error_rate(), Some(bad as f64 / (good + bad) as f64));
    assert!(t.windows >= 1);
    assert!(t.first_window_start.unwrap() <= t.last_window_end.unwrap());
    // Under the reference the server was asked for.
    assert_eq!(
        totals(&store, Some("breast-cancer@production")),
        totals(&store, None)
    );
    assert_eq!(totals(&store, Some("breast-cancer@staging")).requests, 0);
    // `since` after the last window: nothing.
    let later = Store::open(&store)
        .unwrap()
        .metadata
        .serving_totals(MODEL, 1, None, "9999-01-01T00:00:00.000Z")
        .unwrap();
    assert_eq!(later.requests, 0);

    // `--stats-every off` writes none.
    let s = Server::start(
        &store,
        &[
            "--model",
            "breast-cancer@production",
            "--stats-every",
            "off",
        ],
    );
    send(&s, 2, 0);
    assert_eq!(s.stop().0, 0);
    assert_eq!(totals(&store, None).requests, (good + bad) as u64);
    // The flag is checked.
    let r = crate::support::run(&[
        "serve",
        "--model",
        "breast-cancer@production",
        "--stats-every",
        "soon",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--stats-every"), "{}", r.stderr);
}

#[test]
fn the_windows_of_two_servers_on_one_store_add_up_by_reference() {
    let (_dir, store) = trained_store(false);
    // The second server sends every request to its canary: version 1 again,
    // served as `staging`.
    promote(&store, "1", "staging");
    let a = server(&store, &[]);
    let b = server(&store, &["--canary", "breast-cancer@staging=100"]);
    send(&a, 4, 1);
    send(&b, 5, 2);
    let (code, stderr) = a.stop();
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = b.stop();
    assert_eq!(code, 0, "{stderr}");

    let all = totals(&store, None);
    assert_eq!(
        (all.requests, all.errors_4xx, all.errors_5xx),
        (12, 3, 0),
        "{all:?}"
    );
    assert!(all.windows >= 2, "one window per server at least: {all:?}");
    assert_eq!(all.latency_counts.iter().sum::<u64>(), 12);
    let production = totals(&store, Some("breast-cancer@production"));
    assert_eq!((production.requests, production.errors_4xx), (5, 1));
    let staging = totals(&store, Some("breast-cancer@staging"));
    assert_eq!((staging.requests, staging.errors_4xx), (7, 2));
    // The merged histogram is the two servers' added.
    let added: Vec<u64> = production
        .latency_counts
        .iter()
        .zip(&staging.latency_counts)
        .map(|(a, b)| a + b)
        .collect();
    assert_eq!(all.latency_counts, added);
    assert!(all.p99_ms().unwrap() >= production.p99_ms().unwrap().min(staging.p99_ms().unwrap()));
}
