//! Adversarial components: each misbehaviour is contained, reported in the
//! user's terms, and leaves the host able to run the next pipeline.

use crate::support::*;
use serde_json::Value;

/// Runs the adversary and returns the step's report, asserting the run failed.
fn failing(behaviour: &str, extra: &str) -> Value {
    let r = adversary_project(behaviour, 0, extra).run_json();
    assert_eq!(
        r.code, 1,
        "expected a failed run\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
    let report = r.json();
    assert_eq!(report["state"], "failed");
    let s = step(&report, "evil").clone();
    assert_eq!(s["state"], "failed");
    assert!(
        s["outputs"].as_array().unwrap().is_empty(),
        "a failed step records no outputs"
    );
    s
}

/// The host is still healthy: a well-behaved run right after succeeds.
fn next_run_works() {
    let r = adversary_project("noop", 0, "").run_json();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(step(&r.json(), "evil")["state"], "succeeded");
}

#[test]
fn an_infinite_loop_is_stopped_at_its_time_limit() {
    let s = failing("loop", r#"limits = { time = "500ms" }"#);
    assert_eq!(s["failure"]["reason"], "time-limit");
    assert_eq!(s["message"], "stopped at its time limit of 500ms");
    let ms = s["duration"].as_f64().unwrap();
    assert!(ms >= 500.0, "stopped after {ms}ms, before its limit");
    next_run_works();
}

#[test]
fn a_step_blocked_in_a_host_call_is_stopped_at_its_time_limit() {
    // Sleeping waits in WASI's poll, where no epoch check runs.
    let s = failing("sleep", r#"limits = { time = "300ms" }"#);
    assert_eq!(s["failure"]["reason"], "time-limit");
    let ms = s["duration"].as_f64().unwrap();
    assert!((300.0..10_000.0).contains(&ms), "stopped after {ms}ms");
    next_run_works();
}

#[test]
fn a_memory_bomb_hits_its_memory_limit() {
    let s = failing("memory", r#"limits = { memory = "64MiB" }"#);
    assert_eq!(s["failure"]["reason"], "memory-limit");
    let msg = s["message"].as_str().unwrap();
    assert!(
        msg.starts_with("exceeded its memory limit of 64 MiB"),
        "{msg}"
    );
    assert!(s["peak_memory"].as_u64().unwrap() <= 64 << 20);
    next_run_works();
}

#[test]
fn files_environment_and_network_find_nothing() {
    let project = adversary_project("probe", 0, "");
    let r = project.run_json();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();
    let probe: Value = serde_json::from_slice(&output_bytes(&report, "evil", "out")).unwrap();
    for key in [
        "read_file",
        "write_file",
        "read_dir_root",
        "read_dir_cwd",
        "tcp_connect",
        "udp_bind",
        "dns_lookup",
    ] {
        let v = probe[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} missing in {probe:#}"));
        assert!(v.starts_with("error"), "{key} escaped the sandbox: {v}");
    }
    assert_eq!(
        probe["env_vars"],
        serde_json::json!([]),
        "the guest saw environment variables"
    );
    assert_eq!(probe["env_home"], Value::Null);
    assert_eq!(probe["args"], serde_json::json!([]));
}

#[test]
fn a_panic_becomes_a_failed_step_with_the_panic_message() {
    let s = failing("panic", "");
    assert_eq!(s["failure"]["reason"], "panicked");
    let detail = s["failure"]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("deliberate panic from the adversary at "),
        "{detail}"
    );
    assert!(
        s["stderr"].as_str().unwrap().contains("deliberate panic"),
        "guest stderr is captured"
    );
    next_run_works();
}

#[test]
fn an_oversized_output_is_refused() {
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "big"
[steps.evil]
component = "{}"
params = {{ behaviour = "oversized", size = 2097152 }}
limits = {{ output = "1MiB" }}
"#,
        adversary()
    ));
    let r = p.run_json();
    assert_eq!(r.code, 1, "{}", r.stderr);
    let s = step(&r.json(), "evil").clone();
    assert_eq!(s["failure"]["reason"], "output-limit");
    assert_eq!(
        s["message"],
        "output refused: writing 2 MiB to port `out` would exceed the output limit of 1 MiB"
    );
    next_run_works();
}

#[test]
fn step_errors_keep_their_class() {
    for (behaviour, reason, detail) in [
        ("invalid", "invalid-input", "deliberate invalid input"),
        ("reject", "rejected", "deliberate rejection"),
        ("fail", "failed", "deliberate failure"),
    ] {
        let s = failing(behaviour, "");
        assert_eq!(s["failure"]["reason"], reason);
        assert_eq!(s["failure"]["detail"], detail);
    }
}

#[test]
fn failed_steps_are_retried_but_invalid_input_is_not() {
    let s = failing("fail", "retries = 2");
    assert_eq!(s["attempts"], 3);
    let s = failing("invalid", "retries = 2");
    assert_eq!(s["attempts"], 1);
}

#[test]
fn randomness_is_seeded_by_the_step_so_runs_repeat() {
    let digest = |size: i64| {
        let p = Project::new(&format!(
            "[pipeline]\nname = \"rng\"\n[steps.evil]\ncomponent = \"{}\"\nparams = {{ behaviour = \"random\", size = {size} }}\n",
            adversary()
        ));
        let r = p.run_json();
        assert_eq!(r.code, 0, "{}", r.stderr);
        let report = r.json();
        (
            step(&report, "evil")["outputs"][0]["digest"].clone(),
            output_bytes(&report, "evil", "out"),
        )
    };
    let (a, bytes) = digest(0);
    let (b, _) = digest(0);
    assert_eq!(a, b, "same step, same inputs: same random bytes");
    assert_eq!(bytes.len(), 32);
    assert!(bytes.iter().any(|&b| b != 0));
    let (c, _) = digest(1);
    assert_ne!(a, c, "a different param gives the step a different seed");
}
