//! `sluice test`: pipeline CI on a sample of the data, in a scratch store,
//! with a JUnit report read by a JUnit parser from PyPI.

use crate::clients::python_has;
use crate::support::{Project, adversary, repo, run};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// The cases of a `--json` report, as (group/name, outcome, detail).
fn case_list(report: &Value) -> Vec<(String, String, String)> {
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                format!(
                    "{}/{}",
                    c["group"].as_str().unwrap(),
                    c["name"].as_str().unwrap()
                ),
                c["outcome"].as_str().unwrap().to_string(),
                c["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn outcome<'a>(cases: &'a [(String, String, String)], id: &str) -> (&'a str, &'a str) {
    let c = cases
        .iter()
        .find(|c| c.0 == id)
        .unwrap_or_else(|| panic!("no case {id} in {cases:?}"));
    (&c.1, &c.2)
}

/// The JUnit file as junitparser reads it: per case
/// "classname/name" → "passed" | "failure: MESSAGE" | "skipped: MESSAGE",
/// plus the suite's totals.
fn junit(path: &Path) -> Option<Value> {
    if !python_has(&["junitparser"], "pip install junitparser==5.0.3") {
        return None;
    }
    let script = r#"
import json, sys
from junitparser import JUnitXml, Failure, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
suites = [xml] if xml._tag == "testsuite" else list(xml)
out = {"suites": len(suites), "cases": {}}
for suite in suites:
    out["tests"], out["failures"], out["skipped"] = suite.tests, suite.failures, suite.skipped
    for case in suite:
        r = case.result
        state = "passed"
        if r and isinstance(r[0], Failure): state = "failure: " + (r[0].message or "")
        if r and isinstance(r[0], Skipped): state = "skipped: " + (r[0].message or "")
        out["cases"][case.classname + "/" + case.name] = state
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "junitparser could not read the report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn sluice_test_runs_the_flagship_on_a_sample_in_a_scratch_store_with_a_junit_report() {
    // A copy of the flagship, so that a store appearing beside it would show.
    let project = Project::new(
        &std::fs::read_to_string(repo().join("examples/breast-cancer/pipeline.toml")).unwrap(),
    );
    std::fs::create_dir(project.dir.path().join("data")).unwrap();
    std::fs::copy(
        repo().join("examples/breast-cancer/data/breast_cancer.csv"),
        project.dir.path().join("data/breast_cancer.csv"),
    )
    .unwrap();
    let report_file = project.dir.path().join("reports/pipeline.xml");
    let r = run(&[
        "test",
        project.spec().to_str().unwrap(),
        "--sample",
        "200",
        "--junit",
        report_file.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let report = r.json();
    let cases = case_list(&report);
    assert_eq!(report["failed"], 0);
    assert_eq!(
        report["passed"].as_u64().unwrap() as usize,
        cases.len(),
        "{report:#}"
    );
    // 1 spec + 1 data + 11 steps × (ran + finite).
    assert_eq!(cases.len(), 24, "{cases:?}");
    let (state, detail) = outcome(&cases, "data/raw");
    assert_eq!(state, "passed");
    assert!(detail.starts_with("200 of 569 rows of "), "{detail}");
    assert_eq!(
        outcome(&cases, "step/train").1,
        "train (std:train) produced model"
    );
    let (state, detail) = outcome(&cases, "finite/train");
    assert_eq!(state, "passed");
    assert!(
        detail.ends_with("and 1 model(s) hold only finite numbers"),
        "{detail}"
    );
    // The scratch store was used: nothing appeared beside the spec.
    assert!(!project.dir.path().join(".sluice").exists());

    let Some(parsed) = junit(&report_file) else {
        return;
    };
    assert_eq!(parsed["tests"], 24, "{parsed}");
    assert_eq!(parsed["failures"], 0);
    assert_eq!(parsed["cases"]["sluice.test.step/push"], "passed");
    assert_eq!(parsed["cases"]["sluice.test.finite/train"], "passed");

    // All rows with --sample 0, and the same cases pass.
    let r = run(&[
        "test",
        project.spec().to_str().unwrap(),
        "--sample",
        "0",
        "--json",
        "-q",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let all = case_list(&r.json());
    assert!(outcome(&all, "data/raw").1.starts_with("569 of 569 rows"));
}

#[test]
fn failures_nan_metrics_rejections_and_skipped_steps_are_reported_as_a_ci_reads_them() {
    let project = Project::new(&format!(
        r#"
[pipeline]
name = "misbehaving"

[steps.broken]
component = "{a}"
params = {{ behaviour = "fail" }}

[steps.downstream]
component = "std:ingest-csv"
inputs = {{ file = "broken.out" }}

[steps.diverged]
component = "{a}"
params = {{ behaviour = "nan-metric" }}

[steps.gate]
component = "{a}"
params = {{ behaviour = "reject" }}

[steps.fine]
component = "{a}"
params = {{ behaviour = "noop" }}
"#,
        a = adversary()
    ));
    let report_file = project.dir.path().join("junit.xml");
    let r = run(&[
        "test",
        project.spec().to_str().unwrap(),
        "--junit",
        report_file.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let cases = case_list(&r.json());
    assert_eq!(
        outcome(&cases, "step/broken"),
        ("failed", "failed: deliberate failure")
    );
    let (state, detail) = outcome(&cases, "step/downstream");
    assert_eq!(state, "skipped");
    assert!(detail.contains("broken"), "{detail}");
    assert_eq!(outcome(&cases, "step/diverged").0, "passed");
    assert_eq!(
        outcome(&cases, "finite/diverged"),
        ("failed", "metric `loss` is NaN")
    );
    let (state, detail) = outcome(&cases, "step/gate");
    assert_eq!(state, "skipped");
    assert!(
        detail.contains("deliberate rejection") && detail.contains("--gates enforce"),
        "{detail}"
    );
    assert_eq!(outcome(&cases, "step/fine").0, "passed");
    assert_eq!(outcome(&cases, "finite/fine").0, "passed");

    if let Some(parsed) = junit(&report_file) {
        assert_eq!(parsed["failures"], 2, "{parsed}");
        assert_eq!(parsed["skipped"], 2, "{parsed}");
        assert_eq!(
            parsed["cases"]["sluice.test.step/broken"],
            "failure: failed: deliberate failure"
        );
        assert_eq!(
            parsed["cases"]["sluice.test.finite/diverged"],
            "failure: metric `loss` is NaN"
        );
        assert!(
            parsed["cases"]["sluice.test.step/gate"]
                .as_str()
                .unwrap()
                .starts_with("skipped: a validation gate said no on the sample")
        );
        assert_eq!(parsed["cases"]["sluice.test.step/fine"], "passed");
    }

    // With --gates enforce the rejection is a failure too.
    let r = run(&[
        "test",
        project.spec().to_str().unwrap(),
        "--gates",
        "enforce",
        "--json",
        "-q",
    ]);
    assert_eq!(r.code, 1);
    let cases = case_list(&r.json());
    assert_eq!(
        outcome(&cases, "step/gate"),
        ("failed", "rejected: deliberate rejection")
    );
}

#[test]
fn an_invalid_spec_is_one_failed_case_in_the_junit_report_and_exit_2() {
    let project = Project::new(
        r#"
[pipeline]
name = "broken"

[data]
raw = "missing.csv"

[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.raw" }
"#,
    );
    let report_file = project.dir.path().join("junit.xml");
    let r = run(&[
        "test",
        project.spec().to_str().unwrap(),
        "--junit",
        report_file.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("test result: FAILED. 0 passed; 1 failed; 0 skipped"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("missing.csv"), "{}", r.stderr);
    if let Some(parsed) = junit(&report_file) {
        assert_eq!(parsed["tests"], 1);
        assert_eq!(parsed["failures"], 1);
        let case = parsed["cases"]["sluice.test.spec/components integrate"]
            .as_str()
            .unwrap();
        assert!(
            case.starts_with("failure: 1 problem(s) in the spec"),
            "{case}"
        );
    }
}
