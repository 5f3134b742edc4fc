//! A/B reports, end to end: production split 50/50 with a sticky canary,
//! users sending requests, true labels written for the answers; `sluice
//! ab` must count each variant's requests as they were answered, measure
//! each version's live accuracy as the test does from the answers, and
//! give the intervals the formulas give, leaving out a canary that split
//! another route's traffic. With no traffic, it says so.

use crate::serve::{MODEL, Server, csv_path, data, response_predictions, trained_store};
use crate::support::run;
use serde_json::Value;
use std::collections::BTreeMap;

const INFER: &str = "/v2/models/breast-cancer/infer";
/// The z of a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// One POST on a fresh connection with an `x-user` header: the status,
/// the `sluice-variant` and `sluice-model-version` headers, and the body.
fn post(addr: &str, body: &Value, user: &str) -> (u16, String, String, Value) {
    let r = crate::shadow::post(addr, INFER, body, &[("x-user", user)]);
    let header = |name: &str| r.headers.get(name).cloned().unwrap_or_default();
    (
        r.status,
        header("sluice-variant"),
        header("sluice-model-version"),
        r.body,
    )
}

/// The `diagnosis` of every row of the breast-cancer data, in order.
fn diagnoses() -> Vec<String> {
    let text = std::fs::read_to_string(csv_path()).unwrap();
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let header = lines.next().unwrap();
    let label = header.split(',').position(|h| h == "diagnosis").unwrap();
    lines
        .map(|l| l.split(',').nth(label).unwrap().to_string())
        .collect()
}

/// Wilson's score interval at 95%, as the textbook writes it.
fn wilson(x: f64, n: f64) -> (f64, f64) {
    let p = x / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    (centre - half, centre + half)
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-6, "{what}: {a} vs {b}");
}

/// Checks a proportion of the report (`estimate`, `low`, `high`,
/// `successes`, `trials`) against `x` of `n`.
fn check_proportion(p: &Value, x: u64, n: u64, what: &str) {
    assert_eq!(
        (p["successes"].as_u64(), p["trials"].as_u64()),
        (Some(x), Some(n)),
        "{what}: {p}"
    );
    let (estimate, low, high) = (
        p["estimate"].as_f64().unwrap(),
        p["low"].as_f64().unwrap(),
        p["high"].as_f64().unwrap(),
    );
    close(estimate, x as f64 / n as f64, what);
    assert!(low <= estimate && estimate <= high, "{what}: {p}");
    let (want_low, want_high) = wilson(x as f64, n as f64);
    // At 0 of n and n of n the bound is exactly 0 or 1.
    close(low, if x == 0 { 0.0 } else { want_low }, what);
    close(high, if x == n { 1.0 } else { want_high }, what);
}

#[test]
fn an_ab_report_counts_each_sticky_variant_and_measures_its_accuracy_from_feedback() {
    let (dir, store) = trained_store(true);
    let store_arg = store.to_str().unwrap();

    // No traffic yet: nothing to report, and the message says what to do.
    let r = run(&["ab", "breast-cancer@production", "--store", store_arg]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("nothing was served as breast-cancer@production since ")
            && r.stderr.contains("--stats-every"),
        "{}",
        r.stderr
    );
    let r = run(&["ab", "breast-cancer@prod", "--store", store_arg]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(
            "model `breast-cancer` has no alias `prod`; its aliases: production, staging"
        ),
        "{}",
        r.stderr
    );

    let data = data();
    let truth = diagnoses();

    // Another route's canary: version 2 taking all of `breast-cancer:1`'s
    // requests on a server of its own. Its windows are version 2's, in the
    // role canary, as production's canary's will be; they split another
    // route's traffic, so production's report must not count them.
    let other = Server::start(
        &store,
        &[
            "--model",
            "breast-cancer:1",
            "--canary",
            "breast-cancer@staging=100",
            "--stats-every",
            "200ms",
        ],
    );
    for row in 0..5 {
        let (status, variant, version, body) =
            post(&other.addr, &data.infer_body(row..row + 1, None), "someone");
        assert_eq!(
            (status, variant.as_str(), version.as_str()),
            (200, "canary", "2"),
            "{body}"
        );
    }
    assert_eq!(other.stop().0, 0);

    let server = Server::start(
        &store,
        &[
            "--model",
            "breast-cancer@production",
            "--canary",
            "breast-cancer@staging=50",
            "--variant-key",
            "header:x-user",
            "--stats-every",
            "200ms",
            "--log-every",
            "200ms",
        ],
    );
    let (users, per_user) = (40, 6);
    let mut side_of: BTreeMap<String, String> = BTreeMap::new();
    // Per variant: requests, labelled right.
    let mut answered: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut labels = String::from("request_id,diagnosis\n");
    let mut sent = 0;
    for round in 0..per_user {
        for u in 0..users {
            let user = format!("user-{u}");
            let row = (round * users + u) * 7 % data.rows.len();
            let id = format!("req-{sent}");
            let (status, variant, version, body) = post(
                &server.addr,
                &data.infer_body(row..row + 1, Some(&id)),
                &user,
            );
            assert_eq!(status, 200, "{body}");
            let want_version = match variant.as_str() {
                "primary" => "1",
                "canary" => "2",
                other => panic!("variant {other:?}"),
            };
            assert_eq!(version, want_version);
            // A sticky user always gets the same variant.
            let first = side_of.entry(user.clone()).or_insert(variant.clone());
            assert_eq!(*first, variant, "{user} changed sides");
            let (predicted, _) = response_predictions(&body);
            let entry = answered.entry(variant).or_default();
            entry.0 += 1;
            entry.1 += u64::from(predicted[0] == truth[row]);
            labels.push_str(&format!("{id},{}\n", truth[row]));
            sent += 1;
        }
    }
    assert_eq!(server.stop().0, 0);
    assert_eq!(answered.len(), 2, "both sides answered: {answered:?}");
    let labels_csv = dir.path().join("labels.csv");
    std::fs::write(&labels_csv, labels).unwrap();

    let r = run(&[
        "ab",
        "breast-cancer@production",
        "--feedback",
        labels_csv.to_str().unwrap(),
        "--label",
        "diagnosis",
        "--json",
        "--store",
        store_arg,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();
    assert_eq!(report["model"], MODEL);
    assert_eq!(report["reference"], "breast-cancer@production");
    assert_eq!(report["label"], "diagnosis");
    let variants = report["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2, "{report:#}");
    let mut total = 0;
    let mut rates = BTreeMap::new();
    for (v, role, version) in [(&variants[0], "primary", 1), (&variants[1], "canary", 2)] {
        assert_eq!(
            (v["role"].as_str(), v["version"].as_i64()),
            (Some(role), Some(version))
        );
        let (requests, right) = answered[role];
        assert_eq!(v["requests"].as_u64(), Some(requests), "{role}: {v:#}");
        assert_eq!(
            (v["errors_4xx"].as_u64(), v["errors_5xx"].as_u64()),
            (Some(0), Some(0))
        );
        check_proportion(&v["error_rate"], 0, requests, &format!("{role} error rate"));
        let bound = v["p99_ms"].as_f64().unwrap();
        assert!(
            sluice_store::serving_stats::LATENCY_BUCKETS_MS.contains(&bound),
            "p99 {bound} is a bucket bound"
        );
        let a = &v["accuracy"];
        assert_eq!(
            (
                a["logged"].as_u64(),
                a["labelled"].as_u64(),
                a["right"].as_u64()
            ),
            (Some(requests), Some(requests), Some(right)),
            "{role}: {a:#}"
        );
        check_proportion(&a["accuracy"], right, requests, &format!("{role} accuracy"));
        total += requests;
        rates.insert(role, right as f64 / requests as f64);
    }
    assert_eq!(
        total, sent as u64,
        "requests per variant add up to those sent (the other route's canary not among them)"
    );
    assert_eq!(
        report["compared"],
        serde_json::json!({"primary": 1, "canary": 2})
    );

    let comparisons = report["comparisons"].as_array().unwrap();
    let accuracy = comparisons
        .iter()
        .find(|c| c["metric"] == "accuracy")
        .unwrap_or_else(|| panic!("{report:#}"));
    let d = accuracy["estimate"].as_f64().unwrap();
    close(d, rates["canary"] - rates["primary"], "accuracy difference");
    let (low, high) = (
        accuracy["low"].as_f64().unwrap(),
        accuracy["high"].as_f64().unwrap(),
    );
    assert!(low <= d && d <= high, "{accuracy:#}");
    // Newcombe's hybrid score interval from the two Wilson intervals.
    let side = |role: &str| {
        let (n, x) = answered[role];
        let (l, u) = wilson(x as f64, n as f64);
        let p = x as f64 / n as f64;
        (
            p,
            if x == 0 { 0.0 } else { l },
            if x == n { 1.0 } else { u },
        )
    };
    let ((pc, lc, uc), (pp, lp, up)) = (side("canary"), side("primary"));
    close(
        low,
        d - ((pc - lc).powi(2) + (up - pp).powi(2)).sqrt(),
        "low",
    );
    close(
        high,
        d + ((uc - pc).powi(2) + (pp - lp).powi(2)).sqrt(),
        "high",
    );
    let p = accuracy["p_value"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p), "{accuracy:#}");
    assert_eq!(
        accuracy["significant"].as_bool(),
        Some(low > 0.0 || high < 0.0)
    );
    let error_rate = comparisons
        .iter()
        .find(|c| c["metric"] == "error_rate")
        .unwrap();
    assert_eq!(error_rate["estimate"].as_f64(), Some(0.0));
    assert_eq!(error_rate["significant"], false);

    // The text a person reads: a table, then the verdicts.
    let r = run(&[
        "ab",
        "breast-cancer@production",
        "--feedback",
        labels_csv.to_str().unwrap(),
        "--store",
        store_arg,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("ACCURACY (95% CI)"), "{}", r.stdout);
    assert!(
        r.stdout.contains("canary version 2 − primary version 1:"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("error rate: no significant difference at 95%"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.lines().any(|l| l.starts_with("primary"))
            && r.stdout.lines().any(|l| l.starts_with("canary")),
        "{}",
        r.stdout
    );

    // A feedback file without the label column names the file and it.
    let r = run(&[
        "ab",
        "breast-cancer@production",
        "--feedback",
        labels_csv.to_str().unwrap(),
        "--label",
        "truth",
        "--store",
        store_arg,
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("labels.csv has no column `truth`"),
        "{}",
        r.stderr
    );
}
