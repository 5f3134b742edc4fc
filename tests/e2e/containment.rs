//! Containment: what a step asks the host to do is bounded by the step's
//! limits — host work stops at the time limit and the process exits, host
//! memory a step controls counts against its memory limit — and a step
//! sees virtual clocks, so a cache key names one result.

use crate::support::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// `sluice run --json` that must finish within `deadline`; killed and
/// failed otherwise. Returns the run and how long it took.
fn run_within(p: &Project, deadline: Duration) -> (Run, Duration) {
    let started = Instant::now();
    let child = sluice()
        .args(["run", p.spec().to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sluice starts");
    let pid = child.id();
    // Read its output while waiting (a full pipe would block it).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(deadline) {
        Ok(output) => (output.unwrap().into(), started.elapsed()),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("`sluice run` did not exit within {deadline:?}");
        }
    }
}

/// The report of the run's one step.
fn evil(run: &Run) -> Value {
    step(&run.json(), "evil").clone()
}

#[test]
fn training_past_the_time_limit_is_stopped_and_the_process_exits() {
    // An MLP of two 1,500-unit layers for a million epochs: only the time
    // limit ends it. Before, the step was marked stopped and `sluice run`
    // never exited (the training thread ran on).
    let p = adversary_project(
        "train-long",
        1500,
        r#"limits = { time = "2s", memory = "1GiB" }"#,
    );
    let (r, took) = run_within(&p, Duration::from_secs(60));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let s = evil(&r);
    assert_eq!(s["failure"]["reason"], "time-limit", "{s:#}");
    assert_eq!(s["message"], "stopped at its time limit of 2s");
    // Training checks its stop flag between mini-batches of well under a
    // second: the whole process ends soon after the limit.
    assert!(
        took < Duration::from_secs(20),
        "the run took {took:?} for a 2 s limit"
    );
}

#[test]
fn a_training_request_too_big_for_the_memory_limit_is_refused_before_it_allocates() {
    // Two hidden layers of 6,000 units: about 1.7 GiB of weights, gradients
    // and optimiser state, for a step limited to 64 MiB.
    let p = adversary_project("train-huge", 0, r#"limits = { memory = "64MiB" }"#);
    let (r, _) = run_within(&p, Duration::from_secs(60));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report = r.json();
    let s = step(&report, "evil");
    assert_eq!(s["failure"]["reason"], "memory-limit", "{s:#}");
    let message = s["message"].as_str().unwrap();
    assert!(
        message.starts_with("exceeded its memory limit of 64 MiB: training mlp-regressor on 2000 rows × 4 features needed"),
        "{message}"
    );
    assert!(
        message.contains("limits = { memory ="),
        "says how to raise it: {message}"
    );
    let peak = report["peak_rss"].as_u64().unwrap();
    assert!(peak < 400 << 20, "peak RSS {peak} bytes");
}

#[test]
fn floods_of_log_lines_and_metrics_are_capped() {
    // 10,000 log lines of 1 MiB: 10 GB of text offered, 1 MiB kept.
    let p = adversary_project("log-flood", 0, r#"limits = { memory = "64MiB" }"#);
    let (r, _) = run_within(&p, Duration::from_secs(120));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();
    let s = step(&report, "evil");
    let logs = s["logs"].as_array().unwrap();
    let kept: usize = logs
        .iter()
        .map(|l| l["message"].as_str().unwrap().len())
        .sum();
    assert!(kept <= (1 << 20) + 4096, "{kept} bytes of log kept");
    let last = logs.last().unwrap()["message"].as_str().unwrap();
    assert!(
        last.starts_with("[") && last.contains("more log lines dropped: a step keeps at most"),
        "{last}"
    );
    let first = logs[0]["message"].as_str().unwrap();
    assert!(
        first.ends_with(&format!("[…{} more bytes]", (1 << 20) - 16 * 1024)),
        "a long line is cut and says by how much: …{}",
        &first[first.len() - 40..]
    );
    let peak = report["peak_rss"].as_u64().unwrap();
    assert!(peak < 400 << 20, "peak RSS {peak} bytes");

    // 2,000 metrics with 1 MiB names: 1,000 kept, names cut.
    let p = adversary_project("metric-flood", 0, r#"limits = { memory = "64MiB" }"#);
    let (r, _) = run_within(&p, Duration::from_secs(120));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();
    let s = step(&report, "evil");
    let metrics = s["metrics"].as_object().unwrap();
    assert_eq!(metrics.len(), 1000);
    assert!(metrics.keys().all(|k| k.len() < 300), "names are cut");
    assert!(
        s["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "[1000 more metrics dropped: a step keeps at most 1000]"),
        "{:#}",
        s["logs"]
    );
    let peak = report["peak_rss"].as_u64().unwrap();
    assert!(peak < 400 << 20, "peak RSS {peak} bytes");
}

#[test]
fn steps_see_virtual_clocks_so_runs_repeat_unless_the_spec_asks_for_real_time() {
    // `clock` writes SystemTime::now() in nanoseconds.
    let p = adversary_project("clock", 0, "cache = false");
    let outputs: Vec<String> = (0..2)
        .map(|_| {
            let r = p.run_json();
            assert_eq!(r.code, 0, "{}", r.stderr);
            String::from_utf8(output_bytes(&r.json(), "evil", "out")).unwrap()
        })
        .collect();
    assert_eq!(outputs[0], outputs[1], "two runs saw the same time");
    let nanos: u128 = outputs[0].parse().unwrap();
    // 2000-01-01T00:00:00Z plus a few microseconds: one per clock read.
    let epoch = 946_684_800u128 * 1_000_000_000;
    assert!(
        (epoch..epoch + 1_000_000).contains(&nanos),
        "virtual time {nanos}"
    );

    // With the real clock: the real time, and never served from the cache.
    let p = adversary_project("clock", 0, r#"clock = "real""#);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = p.run_json();
        assert_eq!(r.code, 0, "{}", r.stderr);
        let report = r.json();
        assert_eq!(step(&report, "evil")["state"], "succeeded", "not cached");
        let nanos: u128 = String::from_utf8(output_bytes(&report, "evil", "out"))
            .unwrap()
            .parse()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        assert!(
            nanos <= now && now - nanos < 600 * 1_000_000_000,
            "real time {nanos}"
        );
        seen.push(nanos);
    }
    assert_ne!(seen[0], seen[1]);
}

#[test]
fn a_bad_clock_setting_is_a_spec_error() {
    let p = adversary_project("noop", 0, r#"clock = "wall""#);
    let r = p.run_json();
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let errors = r.json()["errors"].clone();
    assert_eq!(
        errors[0]["message"],
        "invalid `clock` in [steps.evil]: `wall` is neither \"virtual\" nor \"real\""
    );
    assert_eq!(errors[0]["source_line"], "clock = \"wall\"");
}

#[test]
fn exits_stack_overflows_and_handle_leaks_fail_in_one_line_that_says_what_happened() {
    for (behaviour, expected) in [
        (
            "exit",
            "the step called exit(0) instead of returning from `run`",
        ),
        ("deep", "stack"),
        ("handles", "more than 100000 host handles at once"),
    ] {
        let p = adversary_project(behaviour, 0, r#"limits = { memory = "256MiB" }"#);
        let (r, _) = run_within(&p, Duration::from_secs(120));
        assert_eq!(r.code, 1, "{behaviour}: {}", r.stderr);
        let s = evil(&r);
        let message = s["message"].as_str().unwrap();
        assert!(message.contains(expected), "{behaviour}: {message}");
        assert_eq!(message.lines().count(), 1, "{behaviour}: {message}");
        assert!(!message.contains("backtrace"), "{behaviour}: {message}");
    }
}
