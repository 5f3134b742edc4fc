//! `sluice component check`: passes on well-behaved components, fails with
//! the right reason on each kind of misbehaviour.

use crate::support::*;

fn check(args: &[&str]) -> Run {
    let mut all = vec!["component", "check"];
    all.extend_from_slice(args);
    run(&all)
}

fn status<'a>(v: &'a serde_json::Value, name: &str) -> (&'a str, &'a str) {
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {v:#}"));
    (c["status"].as_str().unwrap(), c["detail"].as_str().unwrap())
}

#[test]
fn the_standard_steps_pass_on_synthetic_inputs() {
    for std in ["std:ingest-csv", "std:statistics"] {
        let r = check(&[std, "--json"]);
        assert_eq!(r.code, 0, "{std}: {}\n{}", r.stdout, r.stderr);
        let v = r.json();
        assert_eq!(v["passed"], true);
        for name in [
            "world",
            "manifest",
            "runs",
            "outputs",
            "deterministic",
            "limits",
        ] {
            assert_eq!(status(&v, name).0, "passed", "{std} {name}: {v:#}");
        }
        assert!(v["measurements"]["peak_memory"].as_u64().unwrap() > 0);
    }
    let text = check(&["std:statistics"]);
    assert!(
        text.stdout.contains("ok   deterministic"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("passed: 6 checks"), "{}", text.stdout);
}

#[test]
fn sample_inputs_and_params_are_used() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file.csv"), "a;b\n1;2\n").unwrap();
    let r = check(&[
        "std:ingest-csv",
        "--inputs",
        dir.path().to_str().unwrap(),
        "--param",
        "delimiter=;",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert!(status(&v, "runs").1.contains("file.csv"), "{v:#}");
    let r = check(&["std:ingest-csv", "--param", "delimiter=1", "--json"]);
    assert_eq!(r.code, 1);
    assert!(
        status(&r.json(), "runs")
            .1
            .contains("declared text but `1` is integer")
    );
}

#[test]
fn a_component_of_the_wrong_world_fails_the_world_check() {
    let junit = tempfile::NamedTempFile::new().unwrap();
    let r = check(&[
        sluice_std_components::TEST_PROGRAM_NOT_A_STEP,
        "--json",
        "--junit",
        junit.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1);
    let v = r.json();
    let (s, detail) = status(&v, "world");
    assert_eq!(s, "failed");
    assert!(detail.contains("missing export `describe`"), "{detail}");
    let xml = std::fs::read_to_string(junit.path()).unwrap();
    assert!(xml.contains("failures=\"1\""), "{xml}");
    assert!(xml.contains("<failure message=\""), "{xml}");
}

#[test]
fn a_manifest_that_lies_about_an_output_fails_the_outputs_check() {
    let r = check(&[adversary(), "--param", "behaviour=lie", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v = r.json();
    let (s, detail) = status(&v, "outputs");
    assert_eq!(s, "failed");
    assert!(detail.contains("declared output(s): out"), "{detail}");
}

#[test]
fn a_component_reading_the_clock_is_deterministic_and_says_it_read_one() {
    // Steps see virtual clocks: the same reads give the same times.
    let r = check(&[adversary(), "--param", "behaviour=clock", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let v = r.json();
    let (s, detail) = status(&v, "deterministic");
    assert_eq!(s, "passed");
    assert!(detail.contains("the step read a clock"), "{detail}");
    let r = check(&[adversary(), "--param", "behaviour=noop", "--json"]);
    let v = r.json();
    let (_, detail) = status(&v, "deterministic");
    assert!(detail.ends_with("the step read no clock"), "{detail}");
}

#[test]
fn a_component_over_its_memory_limit_fails_the_limits_check() {
    let r = check(&[
        adversary(),
        "--param",
        "behaviour=memory",
        "--memory",
        "32MiB",
        "--json",
    ]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v = r.json();
    let (s, detail) = status(&v, "limits");
    assert_eq!(s, "failed");
    assert!(
        detail.contains("exceeded its memory limit of 32 MiB"),
        "{detail}"
    );
}
