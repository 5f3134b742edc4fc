//! Rollouts (issue 22): a candidate takes a growing share of an alias's
//! live traffic; `sluice rollout run` compares it with the version the
//! alias holds on what the servers recorded and promotes it, or rolls it
//! back when it answers worse — without a person.

use crate::serve::{MODEL, Server, csv_path, data, train, trained_store};
use crate::support::{run, sluice};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Sends one-row requests to `server` until `stop`, request `i` with id
/// `req-i` and row `i % 500`; counts the answers by status (200, 400,
/// other).
fn traffic(
    addr: String,
    stop: Arc<AtomicBool>,
    counts: Arc<[AtomicU64; 3]>,
) -> std::thread::JoinHandle<()> {
    let d = data();
    std::thread::spawn(move || {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let id = format!("req-{i}");
            let body = serde_json::to_vec(&d.infer_body(i % 500..i % 500 + 1, Some(&id))).unwrap();
            let (code, _) = crate::serve::http(
                &addr,
                "POST",
                "/v2/models/breast-cancer/infer",
                &body,
                false,
            );
            let slot = match code {
                200 => 0,
                400 => 1,
                _ => 2,
            };
            counts[slot].fetch_add(1, Ordering::Relaxed);
            i += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

/// Production served from `store`, following rollouts within 100 ms and
/// writing serving windows and request logs every 200 ms, under
/// [`traffic`]: the server, the flag that stops the traffic, the answers
/// by status, and the traffic's thread.
type Live = (
    Server,
    Arc<AtomicBool>,
    Arc<[AtomicU64; 3]>,
    std::thread::JoinHandle<()>,
);

fn live_production(store: &Path) -> Live {
    let server = Server::start(
        store,
        &[
            "--model",
            "breast-cancer@production",
            "--reload-every",
            "100ms",
            "--stats-every",
            "200ms",
            "--log-every",
            "200ms",
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let load = traffic(server.addr.clone(), stop.clone(), counts.clone());
    (server, stop, counts, load)
}

/// `sluice rollout start … --run` of `version` on production, two stages
/// of 1 s (20% and 50%), with `extra` flags.
fn rollout_start(store: &Path, version: &str, extra: &[&str]) -> crate::support::Run {
    rollout_start_with(store, version, ("20,50", "1s", "15"), extra)
}

/// [`rollout_start`] with the plan's (steps, window, min-requests).
fn rollout_start_with(
    store: &Path,
    version: &str,
    (steps, window, min_requests): (&str, &str, &str),
    extra: &[&str],
) -> crate::support::Run {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = sluice()
        .args([
            "rollout",
            "start",
            MODEL,
            version,
            "--alias",
            "production",
            "--steps",
            steps,
            "--window",
            window,
            "--min-requests",
            min_requests,
            "--run",
            "--every",
            "200ms",
            "--store",
        ])
        .arg(store)
        .args(extra)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("sluice rollout runs");
    // Bounded: a rollout that never decides fails the test, not CI's clock.
    let deadline = Instant::now() + Duration::from_secs(120);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the rollout did not end in 120 s:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    crate::support::Run {
        code,
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
    }
}

fn show(store: &Path, id: &str) -> Value {
    let r = run(&[
        "rollout",
        "show",
        id,
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json()
}

fn production(store: &Path) -> i64 {
    let r = run(&[
        "models",
        "show",
        &format!("{MODEL}@production"),
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]);
    r.json()["version"]["version"].as_i64().unwrap()
}

/// The rollout id a `rollout start` printed on stderr.
fn id_of(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("rollout ").and_then(|r| r.split(':').next()))
        .unwrap()
        .to_string()
}

#[test]
fn a_good_candidate_is_promoted_stage_by_stage_and_a_worse_one_rolled_back() {
    let (dir, store) = trained_store(false);
    // Version 2: as good. Version 3: trained with a column requests lack,
    // so it refuses every request it is given.
    train(&store, |s| s.replace("c = 1.0", "c = 0.05"));
    let text = std::fs::read_to_string(csv_path()).unwrap();
    let mut lines = text.lines();
    let mut extra = format!("{},extra\n", lines.next().unwrap());
    for (i, l) in lines.filter(|l| !l.is_empty()).enumerate() {
        extra.push_str(&format!("{l},{}\n", i % 7));
    }
    let extra_csv = dir.path().join("extra.csv");
    std::fs::write(&extra_csv, extra).unwrap();
    train(&store, |s| {
        s.replace(&format!("{:?}", csv_path()), &format!("{extra_csv:?}"))
    });

    let (server, stop, counts, load) = live_production(&store);

    // The good candidate: 20% then 50%, then production moves to it.
    let started = Instant::now();
    let r = rollout_start(&store, "2", &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "two windows of 1s each"
    );
    let id = id_of(&r.stderr);
    let promoted = id.clone();
    assert_eq!(production(&store), 2);
    let shown = show(&store, &id);
    assert_eq!(shown["rollout"]["state"], "promoted");
    let decisions = shown["decisions"].as_array().unwrap();
    let kinds: Vec<&str> = decisions
        .iter()
        .map(|d| d["decision"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["advance", "promote"], "{shown:#}");
    for d in decisions {
        let c = &d["evidence"]["candidate"];
        assert!(c["requests"].as_u64().unwrap() >= 15, "{d:#}");
        assert_eq!(c["errors_4xx"], 0);
        assert!(
            d["evidence"]["baseline"]["requests"].as_u64().unwrap() > 0,
            "{d:#}"
        );
        assert!(d["evidence"]["tests"][0]["passed"] == true, "{d:#}");
    }
    let history = run(&[
        "models",
        "show",
        MODEL,
        "--json",
        "--store",
        store.to_str().unwrap(),
    ])
    .json()["history"]
        .clone();
    let last = history.as_array().unwrap().last().unwrap();
    assert_eq!(
        (last["alias"].as_str(), last["version"].as_i64()),
        (Some("production"), Some(2))
    );
    assert!(
        last["who"]
            .as_str()
            .unwrap()
            .starts_with("sluice rollout ("),
        "{last}"
    );
    assert!(last["reason"].as_str().unwrap().contains(&id), "{last}");

    // The worse candidate: rolled back in its first stage; production stays.
    let errors_before = counts[1].load(Ordering::Relaxed);
    let r = rollout_start(&store, "3", &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains(": rollback: rolled back at stage 1 (20%): error-rate: candidate 100.00% of"),
        "{}",
        r.stderr
    );
    let id = id_of(&r.stderr);
    let rolled_back = id.clone();
    let shown = show(&store, &id);
    assert_eq!(
        (
            shown["rollout"]["state"].as_str(),
            shown["rollout"]["share"].as_f64()
        ),
        (Some("rolled-back"), Some(0.0))
    );
    assert_eq!(shown["decisions"].as_array().unwrap().len(), 1);
    assert_eq!(production(&store), 2);
    assert!(
        counts[1].load(Ordering::Relaxed) > errors_before,
        "the candidate refused its share"
    );

    // Once the servers follow the rollback, every answer is version 2's.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(counts[2].load(Ordering::Relaxed), 0, "no 5xx");
    let d = data();
    for i in 0..40 {
        let (code, body) = server.post(
            "/v2/models/breast-cancer/infer",
            &d.infer_body(i..i + 1, None),
        );
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["model_version"], "2");
    }
    let list = run(&["rollout", "list", MODEL, "--store", store.to_str().unwrap()]);
    assert!(
        list.stdout.contains("1 → 2") && list.stdout.contains("promoted"),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains("2 → 3") && list.stdout.contains("rolled-back"),
        "{}",
        list.stdout
    );

    // `sluice models show` and the monitoring report list both rollouts
    // with every decision and its evidence, as `sluice rollout show` does.
    assert_eq!(server.stop().0, 0, "the server stops and writes its logs");
    assert_rollouts_reported(&store, &[&promoted, &rolled_back]);
}

/// What a listing of decision `d` of rollout `shown` (`sluice rollout
/// show --json`) must hold: its stage and share, the decision, and each
/// side's requests, errors, error rate and p99 as stored.
fn decision_fragments(shown: &Value, d: &Value) -> Vec<String> {
    let stage = d["stage"].as_i64().unwrap();
    let share = shown["rollout"]["plan"]["steps"][stage as usize]
        .as_f64()
        .unwrap();
    let mut fragments = vec![format!(
        "stage {} ({share}%): {} by {}",
        stage + 1,
        d["decision"].as_str().unwrap(),
        d["holder"].as_str().unwrap()
    )];
    for side in ["candidate", "baseline"] {
        let e = &d["evidence"][side];
        let errors = e["errors_4xx"].as_u64().unwrap() + e["errors_5xx"].as_u64().unwrap();
        let mut line = format!(
            "{side} v{}: {} requests, {errors} errors ({:.2}%)",
            e["version"],
            e["requests"],
            e["error_rate"].as_f64().unwrap() * 100.0
        );
        if let Some(p99) = e["p99_ms"].as_f64() {
            line.push_str(&format!(", p99 {p99} ms"));
        }
        fragments.push(line);
    }
    for t in d["evidence"]["tests"].as_array().unwrap() {
        fragments.push(format!(
            "{} {}",
            t["criterion"].as_str().unwrap(),
            if t["passed"] == true {
                "passed"
            } else {
                "FAILED"
            }
        ));
    }
    fragments
}

/// `sluice models show` (text and JSON) and `sluice monitor` (JSON and
/// HTML) list rollouts `ids` of the model, in order, each decision with
/// its stage, decision and evidence as `sluice rollout show ID --json`
/// reports them.
pub(crate) fn assert_rollouts_reported(store: &Path, ids: &[&str]) {
    let s = store.to_str().unwrap();
    let expected: Vec<Value> = ids.iter().map(|id| show(store, id)).collect();
    let decisions = |shown: &Value| shown["decisions"].as_array().unwrap().clone();
    assert!(expected.iter().all(|e| !decisions(e).is_empty()));

    let model = run(&["models", "show", MODEL, "--json", "--store", s]);
    assert_eq!(model.code, 0, "{}", model.stderr);
    assert_eq!(model.json()["rollouts"], Value::from(expected.clone()));

    let text = run(&["models", "show", MODEL, "--store", s]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    let listing = text
        .stdout
        .split_once("\nrollouts:\n")
        .unwrap_or_else(|| panic!("no rollouts section:\n{}", text.stdout))
        .1;
    for shown in &expected {
        let r = &shown["rollout"];
        let head = format!(
            "rollout {}: {MODEL}:{} on {MODEL}@production (baseline {}), {}",
            r["id"].as_str().unwrap(),
            r["candidate"],
            r["baseline"],
            r["state"].as_str().unwrap()
        );
        let at = listing
            .find(&head)
            .unwrap_or_else(|| panic!("no `{head}` in:\n{listing}"));
        // Each decision, in order, below its rollout's headline, its
        // evidence and tests on the lines indented below it.
        let mut rest = &listing[at..];
        for d in decisions(shown) {
            let line = format!("    {}  stage ", d["at"].as_str().unwrap());
            let when = rest
                .find(&line)
                .unwrap_or_else(|| panic!("no `{line}` in:\n{rest}"));
            rest = &rest[when..];
            let mut lines = rest.lines();
            let mut block = lines.next().unwrap().to_string();
            for l in lines.take_while(|l| l.starts_with("      ")) {
                block.push('\n');
                block.push_str(l);
            }
            for f in decision_fragments(shown, &d) {
                assert!(block.contains(&f), "no `{f}` in:\n{block}");
            }
            rest = &rest[block.len()..];
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let html_path = dir.path().join("report.html");
    let report = crate::monitor::monitor(store, &["--json", "--html", html_path.to_str().unwrap()]);
    assert_eq!(report.code, 0, "{}", report.stderr);
    assert_eq!(report.json()["rollouts"], Value::from(expected.clone()));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("<h2>Rollouts</h2>"), "{html}");
    for shown in &expected {
        let id = shown["rollout"]["id"].as_str().unwrap();
        let section = html
            .split(&format!("<div class=\"rollout\" data-rollout=\"{id}\">"))
            .nth(1)
            .unwrap_or_else(|| panic!("rollout {id} is not in the HTML report"))
            .split("</div>")
            .next()
            .unwrap();
        let rows: Vec<&str> = section.split("<tr data-stage=").skip(1).collect();
        assert_eq!(rows.len(), decisions(shown).len(), "{section}");
        for (row, d) in rows.iter().zip(decisions(shown)) {
            assert!(
                row.starts_with(&format!(
                    "\"{}\" data-decision=\"{}\"",
                    d["stage"].as_i64().unwrap() + 1,
                    d["decision"].as_str().unwrap()
                )),
                "{row}"
            );
            assert!(row.contains(d["at"].as_str().unwrap()), "{row}");
            // The headline's parts are cells here; the evidence is the same.
            for f in decision_fragments(shown, &d).iter().skip(1) {
                assert!(row.contains(f.as_str()), "no `{f}` in:\n{row}");
            }
        }
    }
}

#[test]
fn a_rollout_needs_a_baseline_and_a_sound_plan_and_can_be_aborted() {
    let (_dir, store) = trained_store(true);
    let s = store.to_str().unwrap();
    let r = run(&[
        "rollout",
        "start",
        MODEL,
        "2",
        "--alias",
        "canary-env",
        "--store",
        s,
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`breast-cancer@canary-env` points at no version"),
        "{}",
        r.stderr
    );
    let r = run(&[
        "rollout", "start", MODEL, "2", "--steps", "50,100", "--store", s,
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("steps must increase and stay between 0 and 100"),
        "{}",
        r.stderr
    );
    let r = run(&["rollout", "start", MODEL, "2", "--store", s]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id = r.stdout.trim().to_string();
    // One running rollout per alias.
    let again = run(&["rollout", "start", MODEL, "2", "--store", s]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains(&format!(
            "rollout {id} of breast-cancer:2 on breast-cancer@production is still running"
        )),
        "{}",
        again.stderr
    );
    let r = run(&[
        "rollout",
        "abort",
        &id,
        "--reason",
        "wrong day",
        "--store",
        s,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let shown = show(&store, &id);
    assert_eq!(shown["rollout"]["state"], "aborted");
    assert_eq!(shown["decisions"][0]["decision"], "abort");
    assert_eq!(production(&store), 1);
}

#[test]
fn a_candidate_trained_on_shuffled_labels_is_rolled_back_on_live_accuracy_from_feedback() {
    let (dir, store) = trained_store(false);
    // Version 2: the same data with the diagnosis column shuffled (a fixed
    // permutation), pushed past model-validate, which would refuse it.
    let text = std::fs::read_to_string(csv_path()).unwrap();
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let header = lines.next().unwrap();
    let label = header.split(',').position(|h| h == "diagnosis").unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let n = rows.len();
    let mut shuffled = format!("{header}\n");
    for (i, row) in rows.iter().enumerate() {
        let mut row = row.clone();
        row[label] = rows[i * 211 % n][label];
        shuffled.push_str(&row.join(","));
        shuffled.push('\n');
    }
    let shuffled_csv = dir.path().join("shuffled.csv");
    std::fs::write(&shuffled_csv, shuffled).unwrap();
    train(&store, |s| {
        s.replace(&format!("{:?}", csv_path()), &format!("{shuffled_csv:?}"))
            .replace("accuracy = 0.95", "accuracy = 0.0")
            .replace(", baseline = \"data.production\"", "")
    });
    // The true label of every request the traffic will send.
    let mut labels = String::from("request_id,diagnosis\n");
    for i in 0..100_000 {
        labels.push_str(&format!("req-{i},{}\n", rows[i % 500][label]));
    }
    let labels_csv = dir.path().join("labels.csv");
    std::fs::write(&labels_csv, labels).unwrap();

    let (_server, stop, counts, load) = live_production(&store);
    let r = rollout_start(
        &store,
        "2",
        &[
            "--feedback",
            labels_csv.to_str().unwrap(),
            "--min-labels",
            "40",
            // This test proves the accuracy criterion; on a loaded machine
            // the p99 criterion (judged first) could decide before it.
            "--max-p99-ratio",
            "1000",
        ],
    );
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains(": rollback: rolled back at stage 1 (20%): accuracy: candidate "),
        "{}",
        r.stderr
    );
    assert_eq!(production(&store), 1);
    let shown = show(&store, &id_of(&r.stderr));
    let d = &shown["decisions"][0];
    assert_eq!(d["decision"], "rollback");
    let quality = &d["evidence"]["quality"];
    let (candidate, baseline) = (
        quality["candidate"]["accuracy"].as_f64().unwrap(),
        quality["baseline"]["accuracy"].as_f64().unwrap(),
    );
    assert!(candidate < 0.8 && baseline > 0.9, "{quality:#}");
    assert!(
        quality["candidate"]["labelled"].as_u64().unwrap() >= 40,
        "{quality:#}"
    );
    let tests = d["evidence"]["tests"].as_array().unwrap();
    let verdict = |c: &str| tests.iter().find(|t| t["criterion"] == c).unwrap()["passed"].clone();
    assert_eq!(verdict("error-rate"), true, "{tests:#?}");
    assert_eq!(verdict("accuracy"), false, "{tests:#?}");
    assert_eq!(
        counts[1].load(Ordering::Relaxed) + counts[2].load(Ordering::Relaxed),
        0
    );
}

#[test]
fn a_candidate_answering_one_class_for_everything_is_rolled_back_on_its_prediction_distribution() {
    let (_dir, store) = trained_store(false);
    // Version 2: regularised until it answers the majority class for every
    // request — its error rate is as good as production's, and no label
    // ever arrives; only the distribution of its answers gives it away.
    train(&store, |s| {
        s.replace("c = 1.0", "c = 0.000001")
            .replace("accuracy = 0.95", "accuracy = 0.0")
            .replace(", baseline = \"data.production\"", "")
    });
    let (_server, stop, counts, load) = live_production(&store);
    // This test proves the divergence criterion; on a loaded machine the
    // p99 criterion (judged first) could decide before it.
    let r = rollout_start_with(
        &store,
        "2",
        ("50", "1s", "100"),
        &["--max-p99-ratio", "1000"],
    );
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            ": rollback: rolled back at stage 1 (50%): prediction-divergence: Jensen–Shannon divergence "
        ),
        "{}",
        r.stderr
    );
    assert_eq!(production(&store), 1);
    let shown = show(&store, &id_of(&r.stderr));
    let d = &shown["decisions"][0];
    assert_eq!(d["decision"], "rollback");
    let predictions = &d["evidence"]["predictions"];
    assert!(
        predictions["jensen_shannon"].as_f64().unwrap() > 0.1
            && predictions["candidate_rows"].as_u64().unwrap() >= 50
            && predictions["baseline_rows"].as_u64().unwrap() >= 50,
        "{predictions:#}"
    );
    let tests = d["evidence"]["tests"].as_array().unwrap();
    let verdict = |c: &str| tests.iter().find(|t| t["criterion"] == c).unwrap()["passed"].clone();
    assert_eq!(verdict("error-rate"), true, "{tests:#?}");
    assert_eq!(verdict("prediction-divergence"), false, "{tests:#?}");
    assert_eq!(
        counts[1].load(Ordering::Relaxed) + counts[2].load(Ordering::Relaxed),
        0,
        "every request was answered"
    );
}
