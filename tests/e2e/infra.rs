//! Infrastructure validation (issue 22, part 1): `std:infra-validate`
//! starts the candidate in the real model server, checks its answers
//! against offline prediction and its budgets, and `std:push` and the
//! promotion gates refuse a model whose infra blessing failed.

use crate::serve::csv_path;
use crate::support::{repo, run, step};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The flagship spec on the test data, with `edit` applied, beside `store`.
fn flagship(store: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let spec = std::fs::read_to_string(repo().join("examples/breast-cancer/pipeline.toml"))
        .unwrap()
        .replace("\"data/breast_cancer.csv\"", &format!("{:?}", csv_path()));
    let path = store.with_extension("toml");
    std::fs::write(&path, edit(spec)).unwrap();
    path
}

/// `sluice run SPEC --store STORE --json`.
fn run_json(spec: &Path, store: &Path) -> (i32, Value, String) {
    let r = run(&[
        "run",
        spec.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--json",
    ]);
    let report = r.json();
    (r.code, report, r.stderr)
}

/// The infra-validate step's params replaced by `params`.
fn with_infra_params(spec: String, params: &str) -> String {
    let line = spec
        .lines()
        .skip_while(|l| *l != "[steps.infra-validate]")
        .find(|l| l.starts_with("params = "))
        .expect("the flagship has an infra-validate step with params")
        .to_string();
    spec.replace(&line, &format!("params = {{ {params} }}"))
}

fn blessing_of(report: &Value) -> Value {
    serde_json::from_slice(&crate::support::output_bytes(
        report,
        "infra-validate",
        "blessing",
    ))
    .unwrap()
}

fn check<'a>(blessing: &'a Value, name: &str) -> &'a Value {
    blessing["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {blessing:#}"))
}

#[test]
fn the_flagship_serves_its_candidate_checks_answers_and_budgets_and_pushes_with_the_blessing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let spec = flagship(&store, |s| s);
    let (code, report, stderr) = run_json(&spec, &store);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(step(&report, "infra-validate")["state"], "succeeded");
    assert_eq!(step(&report, "push")["state"], "succeeded");

    let blessing = blessing_of(&report);
    assert_eq!(blessing["kind"], "infra-blessing");
    assert_eq!(blessing["blessed"], true, "{blessing:#}");
    for name in [
        "server started",
        "examples served",
        "answers equal offline predictions",
        "load answered",
        "max-startup-ms",
        "max-p99-ms",
        "min-qps",
        "max-memory",
    ] {
        assert_eq!(
            check(&blessing, name)["passed"],
            true,
            "{name}: {blessing:#}"
        );
    }
    assert_eq!(
        check(&blessing, "examples served")["detail"],
        "32 of 32 answered 200"
    );
    // The served answers were compared value by value with offline
    // prediction: labels and both class probabilities of 32 rows.
    let agreement = check(&blessing, "answers equal offline predictions")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(agreement.starts_with("96 values equal"), "{agreement}");
    let measured = &blessing["measured"];
    assert!(measured["requests"].as_u64().unwrap() > 20, "{measured:#}");
    assert_eq!(measured["errors"], 0);
    assert!(measured["qps"].as_f64().unwrap() >= 5.0, "{measured:#}");
    let p99 = measured["latency_ms"]["p99"].as_f64().unwrap();
    let p50 = measured["latency_ms"]["p50"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= p99, "{measured:#}");
    assert!(measured["startup_ms"].as_f64().unwrap() > 0.0);
    // A real server process holds more than 10 MiB and less than the budget.
    let peak = measured["peak_rss_bytes"].as_u64().unwrap();
    assert!(peak > 10 << 20 && peak < 1 << 30, "peak {peak}");
    // The example requests are kept with their predictions.
    assert_eq!(blessing["examples"]["rows"], 32);
    let csv = blessing["examples"]["rows_csv"].as_str().unwrap();
    assert_eq!(csv.lines().count(), 33, "a header and 32 rows");
    assert!(
        !csv.lines().next().unwrap().contains("diagnosis"),
        "no label is sent"
    );
    assert_eq!(
        blessing["examples"]["predictions"]["prediction"]
            .as_array()
            .unwrap()
            .len(),
        32
    );

    // Run again on the same machine: the measurement is reused, and so is
    // everything after it.
    let (code, again, stderr) = run_json(&spec, &store);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        step(&again, "infra-validate")["state"],
        "cached",
        "{again:#}"
    );
    assert_eq!(step(&again, "push")["state"], "cached");
}

#[test]
fn a_broken_budget_rejects_the_model_naming_it_and_nothing_is_pushed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let spec = flagship(&store, |s| {
        with_infra_params(s, "min-qps = 1000000000.0, duration = \"300ms\"")
    });
    let (code, report, _) = run_json(&spec, &store);
    assert_eq!(code, 1);
    let infra = step(&report, "infra-validate");
    assert_eq!(infra["state"], "failed");
    let message = infra["message"].as_str().unwrap();
    assert!(
        message.contains("rejected: the model is not fit to serve: min-qps (")
            && message.contains("qps < 1000000000 qps)"),
        "{message}"
    );
    // The checks that passed are not named.
    assert!(!message.contains("examples served"), "{message}");
    assert_eq!(step(&report, "push")["state"], "skipped");
    let r = run(&[
        "models",
        "show",
        "breast-cancer",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0, "nothing was registered: {}", r.stdout);
}

#[test]
fn push_refuses_a_model_whose_infra_blessing_failed_and_a_gate_requires_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // reject = false: the step writes blessed: false and the pipeline goes
    // on to push, which refuses it naming the budget.
    let spec = flagship(&store, |s| {
        with_infra_params(
            s,
            "max-startup-ms = 0.001, duration = \"300ms\", reject = false",
        )
    });
    let (code, report, _) = run_json(&spec, &store);
    assert_eq!(code, 1);
    assert_eq!(step(&report, "infra-validate")["state"], "succeeded");
    let blessing = blessing_of(&report);
    assert_eq!(blessing["blessed"], false);
    assert_eq!(check(&blessing, "max-startup-ms")["passed"], false);
    assert_eq!(check(&blessing, "examples served")["passed"], true);
    let push = step(&report, "push");
    assert_eq!(push["state"], "failed");
    let message = push["message"].as_str().unwrap();
    assert!(
        message.contains("the model failed infra validation, so it is not pushed to `breast-cancer`; failed checks: max-startup-ms (")
            && message.contains("ms > 0.001 ms)"),
        "{message}"
    );

    // Without the infra step bound, push refuses when it is required.
    let spec = flagship(&store, |s| {
        s.replace(", infra-blessing = \"infra-validate.blessing\"", "")
    });
    let (code, report, _) = run_json(&spec, &store);
    assert_eq!(code, 1);
    let message = step(&report, "push")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("`require-infra` is set but no `infra-blessing` is bound"),
        "{message}"
    );

    // Pushed without an infra blessing (not required), a version cannot
    // enter an environment whose policy requires one.
    let spec = flagship(&store, |s| {
        s.replace(", infra-blessing = \"infra-validate.blessing\"", "")
            .replace("require-infra = true", "require-infra = false")
            + "\n[promotion]\nmodel = \"breast-cancer\"\n[promotion.require.staging]\nblessing = true\ninfra = true\n"
    });
    let (code, _, stderr) = run_json(&spec, &store);
    assert_eq!(code, 0, "{stderr}");
    let r = run(&[
        "models",
        "promote",
        "breast-cancer",
        "1",
        "--alias",
        "staging",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("infra: version 1 was pushed without an infra blessing")
            && r.stderr
                .contains("bind std:infra-validate's `blessing` to std:push's `infra-blessing`"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("blessing: "),
        "the offline blessing passed: {}",
        r.stderr
    );
}

#[test]
fn a_probe_cut_short_by_the_steps_time_limit_leaves_no_server_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let spec = flagship(&store, |s| {
        with_infra_params(s, "duration = \"60s\", max-requests = 100000000").replace(
            "[steps.push]",
            "[steps.infra-validate.limits]\ntime = \"4s\"\n\n[steps.push]",
        )
    });
    let (code, report, _) = run_json(&spec, &store);
    assert_eq!(code, 1);
    let infra = step(&report, "infra-validate");
    assert_eq!(infra["state"], "failed");
    assert!(
        infra["message"]
            .as_str()
            .unwrap()
            .contains("time limit of 4s"),
        "{infra:#}"
    );
    // The server the probe started for this store is gone.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let store_arg = store.to_str().unwrap();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("--artifact") && c.contains(store_arg))
        .collect();
    assert!(left.is_empty(), "servers left running: {left:?}");
}

#[test]
fn a_model_whose_transform_fails_on_the_examples_is_rejected_with_the_rows_it_failed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // Examples a client might really send: `mean_radius` as words.
    let text = std::fs::read_to_string(csv_path()).unwrap();
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let header = lines.next().unwrap();
    let radius = header.split(',').position(|h| h == "mean_radius").unwrap();
    let mut bad = format!("{header}\n");
    for line in lines.take(100) {
        let mut cells: Vec<&str> = line.split(',').collect();
        cells[radius] = "large";
        bad.push_str(&(cells.join(",") + "\n"));
    }
    let bad_csv = dir.path().join("bad.csv");
    std::fs::write(&bad_csv, bad).unwrap();
    let spec = flagship(&store, |s| {
        s.replace(
            "[data]\n",
            &format!("[data]\nbad = {:?}\n", bad_csv.to_str().unwrap()),
        )
        .replace(
            "[steps.infra-validate]",
            "[steps.ingest-bad]\ncomponent = \"std:ingest-csv\"\ninputs = { file = \"data.bad\" }\n\n[steps.infra-validate]",
        )
        .replace(
            "inputs = { model = \"train.model\", examples = \"split.test\" }",
            "inputs = { model = \"train.model\", examples = \"ingest-bad.data\" }",
        )
    });
    let (code, report, stderr) = run_json(&spec, &store);
    assert_eq!(code, 1, "{stderr}");
    let infra = step(&report, "infra-validate");
    assert_eq!(infra["state"], "failed", "{infra:#}");
    let message = infra["message"].as_str().unwrap();
    assert!(
        message.contains("rejected: the model is not fit to serve: examples served (32 of 32 not answered 200: row 1: status 400: "),
        "{message}"
    );
    assert!(
        message.contains(
            "answers equal offline predictions (offline prediction of the examples failed: "
        ),
        "{message}"
    );
    assert!(message.contains("mean_radius"), "{message}");
    assert_eq!(step(&report, "push")["state"], "skipped");
}
