//! The store and the executor: step caching keyed on content, parallel
//! execution, failure isolation, crash safety and resume, concurrent runs.

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Stdio;

/// step name → state, from a run report.
pub(crate) fn states(report: &Value) -> BTreeMap<String, String> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const CACHE_SPEC: &str = r#"
[pipeline]
name = "cache"
[data]
raw = "data.csv"
[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.raw" }
[steps.stats]
component = "std:statistics"
inputs = { data = "ingest.data" }
params = { bins = 5 }
[steps.scale]
component = "./scale.wasm"
inputs = { data = "ingest.data" }
params = { column = "x", factor = 2 }
[steps.scaled-stats]
component = "std:statistics"
inputs = { data = "scale.scaled" }
"#;

fn cache_project() -> Project {
    let p = Project::new(CACHE_SPEC);
    p.write("data.csv", "x,y\n1,a\n2,b\n3,c\n");
    std::fs::copy(
        sluice_std_components::TEST_PROGRAM_SCALE,
        p.dir.path().join("scale.wasm"),
    )
    .unwrap();
    p
}

fn run_ok(p: &Project, extra: &[&str]) -> Value {
    let spec = p.spec();
    let mut args = vec!["run", spec.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let r = run(&args);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    r.json()
}

fn explain(p: &Project) -> BTreeMap<String, Vec<String>> {
    let store = p.dir.path().join(".sluice");
    let r = run(&[
        "runs",
        "show",
        "latest",
        "--explain",
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["explain"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn a_rerun_with_the_same_inputs_is_served_from_the_cache() {
    let p = cache_project();
    let first = run_ok(&p, &[]);
    assert!(
        states(&first).values().all(|s| s == "succeeded"),
        "{first:#}"
    );
    let second = run_ok(&p, &[]);
    assert!(
        states(&second).values().all(|s| s == "cached"),
        "{second:#}"
    );
    for s in ["ingest", "stats", "scale", "scaled-stats"] {
        assert_eq!(
            step(&first, s)["outputs"][0]["digest"],
            step(&second, s)["outputs"][0]["digest"]
        );
        assert_eq!(
            step(&second, s)["cached_from"]["execution_id"],
            step(&first, s)["execution_id"]
        );
    }
    let why = explain(&p);
    assert!(
        why["stats"][0].starts_with("cache hit: reused execution #"),
        "{why:?}"
    );
}

#[test]
fn changing_a_param_reruns_only_that_step() {
    let p = cache_project();
    run_ok(&p, &[]);
    std::fs::write(p.spec(), CACHE_SPEC.replace("bins = 5", "bins = 6")).unwrap();
    let r = run_ok(&p, &[]);
    assert_eq!(
        states(&r),
        expect(&[
            ("ingest", "cached"),
            ("stats", "succeeded"),
            ("scale", "cached"),
            ("scaled-stats", "cached")
        ])
    );
    assert_eq!(explain(&p)["stats"], ["ran: param `bins` changed: 5 → 6"]);
}

#[test]
fn changing_one_byte_of_an_input_file_reruns_everything_downstream() {
    let p = cache_project();
    run_ok(&p, &[]);
    p.write("data.csv", "x,y\n1,a\n2,b\n4,c\n");
    let r = run_ok(&p, &[]);
    assert!(
        states(&r).values().all(|s| s == "succeeded"),
        "{:?}",
        states(&r)
    );
    let why = explain(&p);
    assert_eq!(why["ingest"].len(), 1);
    assert!(
        why["ingest"][0].starts_with("ran: input `file` changed: "),
        "{why:?}"
    );
    assert!(
        why["stats"][0].starts_with("ran: input `data` changed: "),
        "{why:?}"
    );
}

#[test]
fn changing_a_component_reruns_it_and_dependents_whose_inputs_change() {
    let p = cache_project();
    let first = run_ok(&p, &[]);
    // Same code, different bytes: append a custom section to the component.
    let mut wasm = std::fs::read(p.dir.path().join("scale.wasm")).unwrap();
    wasm.extend_from_slice(&[0x00, 0x05, 0x04, b't', b'e', b's', b't']);
    std::fs::write(p.dir.path().join("scale.wasm"), wasm).unwrap();
    let r = run_ok(&p, &[]);
    // The new component computes the same table, so content addressing
    // keeps its dependent cached: keys are on content, not on identity.
    assert_eq!(
        states(&r),
        expect(&[
            ("ingest", "cached"),
            ("stats", "cached"),
            ("scale", "succeeded"),
            ("scaled-stats", "cached")
        ])
    );
    assert_ne!(
        step(&first, "scale")["component_digest"],
        step(&r, "scale")["component_digest"]
    );
    let why = explain(&p);
    assert_eq!(why["scale"].len(), 1);
    assert!(
        why["scale"][0].starts_with("ran: component changed: "),
        "{why:?}"
    );
}

#[test]
fn no_cache_and_cache_false_force_execution() {
    let p = cache_project();
    run_ok(&p, &[]);
    let r = run_ok(&p, &["--no-cache"]);
    assert!(states(&r).values().all(|s| s == "succeeded"));
    std::fs::write(
        p.spec(),
        CACHE_SPEC.replace(
            "params = { bins = 5 }",
            "params = { bins = 5 }\ncache = false",
        ),
    )
    .unwrap();
    let r = run_ok(&p, &[]);
    assert_eq!(
        states(&r),
        expect(&[
            ("ingest", "cached"),
            ("stats", "succeeded"),
            ("scale", "cached"),
            ("scaled-stats", "cached")
        ])
    );
}

fn busy_spec(ms: u64) -> String {
    format!(
        r#"
[pipeline]
name = "busy"
[steps.left]
component = "{0}"
params = {{ behaviour = "busy", size = {ms} }}
[steps.right]
component = "{0}"
params = {{ behaviour = "busy", size = {ms} }}
"#,
        adversary()
    )
}

/// (started, ended) of each step from the metadata.
fn intervals(p: &Project) -> Vec<(String, String)> {
    let store = p.dir.path().join(".sluice");
    let r = run(&[
        "runs",
        "show",
        "latest",
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]);
    r.json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["started_at"].as_str().unwrap().to_string(),
                s["ended_at"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn independent_steps_run_concurrently_up_to_jobs() {
    let p = Project::new(&busy_spec(400));
    run_ok(&p, &["--jobs", "2", "--no-cache"]);
    let iv = intervals(&p);
    assert!(
        iv[0].0 < iv[1].1 && iv[1].0 < iv[0].1,
        "with --jobs 2 the steps overlap: {iv:?}"
    );

    run_ok(&p, &["--jobs", "1", "--no-cache"]);
    let iv = intervals(&p);
    assert!(
        iv[0].1 <= iv[1].0 || iv[1].1 <= iv[0].0,
        "with --jobs 1 they do not: {iv:?}"
    );
}

#[test]
fn a_failing_step_stops_its_dependents_while_independent_branches_finish() {
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "branches"
[data]
raw = "d.csv"
[steps.bad]
component = "{0}"
params = {{ behaviour = "fail" }}
[steps.after-bad]
component = "std:ingest-csv"
inputs = {{ file = "bad.out" }}
[steps.ingest]
component = "std:ingest-csv"
inputs = {{ file = "data.raw" }}
[steps.stats]
component = "std:statistics"
inputs = {{ data = "ingest.data" }}
"#,
        adversary()
    ));
    p.write("d.csv", "a\n1\n");
    let r = p.run_json();
    assert_eq!(r.code, 1);
    let report = r.json();
    assert_eq!(
        states(&report),
        expect(&[
            ("bad", "failed"),
            ("after-bad", "skipped"),
            ("ingest", "succeeded"),
            ("stats", "succeeded")
        ])
    );
    // A failed step is not cached: the next run tries it again.
    let again = p.run_json().json();
    assert_eq!(states(&again)["bad"], "failed");
    assert_eq!(states(&again)["stats"], "cached");
}

/// Ingest, a slow step (1.5 s) and statistics, on `d.csv`.
pub(crate) const RESUMABLE: &str = r#"
[pipeline]
name = "resumable"
[data]
raw = "d.csv"
[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.raw" }
[steps.slow]
component = "ADVERSARY"
params = { behaviour = "busy", size = 1500 }
[steps.stats]
component = "std:statistics"
inputs = { data = "ingest.data" }
"#;

fn resumable_project() -> Project {
    let p = Project::new(&RESUMABLE.replace("ADVERSARY", adversary()));
    p.write("d.csv", "a,b\n1,x\n2,y\n");
    p
}

/// Digest of each step's first output in a report.
fn outputs(report: &Value) -> BTreeMap<String, Value> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["outputs"][0]["digest"].clone(),
            )
        })
        .collect()
}

#[test]
fn a_run_killed_mid_step_is_marked_interrupted_and_resume_completes_it() {
    let p = resumable_project();
    let spec = p.spec();
    kill_once_running(
        sluice().args(["run", spec.to_str().unwrap(), "--jobs", "1"]),
        "slow",
    );

    let store = p.dir.path().join(".sluice");
    let store = store.to_str().unwrap();
    let listed = run(&["runs", "list", "--json", "--store", store]);
    assert!(
        listed.stderr.contains("was interrupted"),
        "{}",
        listed.stderr
    );
    let runs = listed.json();
    assert_eq!(runs[0]["state"], "interrupted");
    let killed = runs[0]["id"].as_str().unwrap().to_string();
    let shown = run(&["runs", "show", &killed, "--json", "--store", store]).json();
    let by_step: BTreeMap<&str, &str> = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(by_step["ingest"], "succeeded");
    assert_eq!(by_step["slow"], "interrupted");
    // Every artifact the metadata names is in the object store.
    for s in shown["steps"].as_array().unwrap() {
        for e in s["events"].as_array().unwrap() {
            let hex = e["artifact"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string();
            let path = p
                .dir
                .path()
                .join(".sluice/objects/sha256")
                .join(&hex[..2])
                .join(&hex[2..]);
            assert!(path.is_file(), "dangling reference to {hex}");
        }
    }

    let resumed = run(&["run", "--resume", &killed[..15], "--store", store, "--json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let resumed = resumed.json();
    assert_eq!(resumed["resumed_from"], killed);
    assert_eq!(
        states(&resumed),
        expect(&[
            ("ingest", "cached"),
            ("slow", "succeeded"),
            ("stats", "succeeded")
        ])
    );

    // The same pipeline, uninterrupted, in a fresh store: equal artifacts.
    let fresh = resumable_project();
    let clean = run_ok(&fresh, &[]);
    assert_eq!(outputs(&resumed), outputs(&clean));
}

#[test]
fn resume_refuses_a_changed_spec() {
    let p = resumable_project();
    std::fs::write(
        p.spec(),
        RESUMABLE
            .replace("ADVERSARY", adversary())
            .replace("1500", "10"),
    )
    .unwrap();
    let first = run_ok(&p, &[]);
    let id = first["run_id"].as_str().unwrap();
    std::fs::write(
        p.spec(),
        RESUMABLE
            .replace("ADVERSARY", adversary())
            .replace("1500", "11"),
    )
    .unwrap();
    let store = p.dir.path().join(".sluice");
    let r = run(&["run", "--resume", id, "--store", store.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("changed since run"), "{}", r.stderr);
}

#[test]
fn two_concurrent_runs_on_one_store_both_finish_consistently() {
    let p = Project::new(&busy_spec(300));
    let spec = p.spec();
    let spawn = || {
        sluice()
            .args(["run", spec.to_str().unwrap(), "--json", "--no-cache"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b): (Run, Run) = (
        a.wait_with_output().unwrap().into(),
        b.wait_with_output().unwrap().into(),
    );
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(b.code, 0, "{}", b.stderr);
    assert_ne!(a.json()["run_id"], b.json()["run_id"]);
    let store = p.dir.path().join(".sluice");
    let runs = run(&["runs", "list", "--json", "--store", store.to_str().unwrap()]).json();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["state"] == "succeeded"), "{runs:?}");
    assert_eq!(outputs(&a.json()), outputs(&b.json()));
}

#[test]
fn the_store_comes_from_the_flag_else_the_spec_else_next_to_the_pipeline() {
    let p = Project::new(
        "[pipeline]\nname = \"where\"\nstore = \"custom-store\"\n[data]\nd = \"d.csv\"\n[steps.ingest]\ncomponent = \"std:ingest-csv\"\ninputs = { file = \"data.d\" }\n",
    );
    p.write("d.csv", "a\n1\n");
    let r = p.run_json();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let custom = p.dir.path().join("custom-store");
    assert_eq!(r.json()["store"], custom.display().to_string());
    assert!(custom.join("metadata.sqlite").is_file());

    let flag = p.dir.path().join("flag-store");
    let r = run(&[
        "run",
        p.spec().to_str().unwrap(),
        "--store",
        flag.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(flag.join("metadata.sqlite").is_file());
    assert_eq!(
        step(&r.json(), "ingest")["state"],
        "succeeded",
        "a new store has no cache"
    );
}
