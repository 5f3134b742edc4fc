//! Spec errors through the binary: every problem is reported before anything
//! runs, with file, line and column, and a hint. (Each error class is unit
//! tested in `sluice-pipeline`; these prove the user sees them.)

use crate::support::*;

const BROKEN: &str = r#"[pipeline]
name = "broken"

[data]
iris = "iris.csv"

[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.iris" }
params = { header = "yes", delimter = ";" }

[steps.stats]
component = "std:statistics"
inputs = { dta = "ingest.data" }

[steps.more]
component = "std:statistcs"
inputs = { data = "ingest.data" }

[steps.wrong]
component = "std:statistics"
inputs = { data = "data.iris" }
"#;

#[test]
fn validate_reports_every_problem_with_its_location() {
    let p = Project::new(BROKEN);
    p.write("iris.csv", "a\n1\n");
    let spec = p.spec();
    let r = run(&["validate", spec.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let loc = |line: u32, col: u32| format!("{}:{line}:{col}", spec.display());
    for (message, line, col) in [
        (
            "parameter `header` of step `ingest` must be of type boolean, found text \"yes\"",
            10,
            21,
        ),
        (
            "unknown parameter `delimter` for step `ingest` (component std:ingest-csv)",
            10,
            28,
        ),
        (
            "unknown input port `dta` on step `stats` (component std:statistics)",
            14,
            12,
        ),
        (
            "cannot resolve component `std:statistcs` of step `more`",
            17,
            13,
        ),
        (
            "data input `iris` is a file but port `data` of step `wrong` takes a table",
            22,
            19,
        ),
    ] {
        let at = r
            .stderr
            .find(message)
            .unwrap_or_else(|| panic!("missing `{message}` in:\n{}", r.stderr));
        let after = &r.stderr[at..];
        let next = after.lines().nth(1).unwrap();
        assert_eq!(
            next.trim(),
            format!("--> {}", loc(line, col)),
            "location of `{message}`"
        );
    }
    assert!(r.stderr.contains("did you mean `delimiter`?"));
    assert!(r.stderr.contains("did you mean `data`?"));
    assert!(r.stderr.contains("5 problem(s) found; nothing was run."));
}

#[test]
fn run_refuses_an_invalid_spec_without_running_anything() {
    let p = Project::new(BROKEN);
    p.write("iris.csv", "a\n1\n");
    let r = run(&["run", p.spec().to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("nothing was run"));
    assert!(
        !p.dir.path().join(".sluice/runs").exists(),
        "no run was recorded"
    );
}

/// A valid pipeline whose `[triggers]` and `[promotion]` tables are wrong.
const BAD_TRIGGERS: &str = r#"[pipeline]
name = "watched"

[data]
iris = "iris.csv"

[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.iris" }

[triggers]
schedul = "0 3 * * *"
schedule = "0 0 */2 * 8"
poll = "5 seconds"
new-data = ["iris", "irsi"]

[promotion]
production = "yes"
"#;

/// (message, line, column, help) of each problem in `BAD_TRIGGERS`.
const TRIGGER_PROBLEMS: [(&str, u32, u32, &str); 5] = [
    (
        "unknown key `schedul` in [triggers]; expected one of schedule, new-data, drift, degradation, poll, debounce, check-every",
        12,
        1,
        "did you mean `schedule`?",
    ),
    (
        "schedule `0 0 */2 * 8`: day of week `8`: ",
        13,
        12,
        "write five fields, minute hour day-of-month month day-of-week, in UTC",
    ),
    (
        "invalid `poll` in [triggers]: `5 seconds` is not a duration",
        14,
        8,
        "write a duration such as \"30s\"",
    ),
    (
        "`new-data` names `irsi`, which is neither a data input nor an s3://bucket/prefix URL",
        15,
        21,
        "did you mean `iris`? declared data inputs: iris",
    ),
    (
        "expected a boolean for `production` in [promotion], found string",
        18,
        14,
        "",
    ),
];

/// Asserts that `stderr` reports every problem of `BAD_TRIGGERS` at its
/// place in `spec`, with its hint.
fn assert_trigger_problems(stderr: &str, spec: &std::path::Path) {
    for (message, line, col, help) in TRIGGER_PROBLEMS {
        let at = stderr
            .find(message)
            .unwrap_or_else(|| panic!("missing `{message}` in:\n{stderr}"));
        let after = &stderr[at..];
        let next = after.lines().nth(1).unwrap();
        assert_eq!(
            next.trim(),
            format!("--> {}:{line}:{col}", spec.display()),
            "location of `{message}`"
        );
        if !help.is_empty() {
            let help_line = after.lines().nth(5).unwrap_or_default();
            assert!(
                help_line.contains(&format!("= help: {help}")),
                "help of `{message}`: {help_line}\n{stderr}"
            );
        }
    }
}

#[test]
fn triggers_and_promotion_are_checked_with_the_spec() {
    let p = Project::new(BAD_TRIGGERS);
    p.write("iris.csv", "a\n1\n");
    let spec = p.spec();
    let r = run(&["validate", spec.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_trigger_problems(&r.stderr, &spec);
    assert!(
        r.stderr.contains("5 problem(s) found; nothing was run."),
        "{}",
        r.stderr
    );

    // `sluice run` ignores the triggers but refuses a spec with bad ones.
    let r = run(&["run", spec.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_trigger_problems(&r.stderr, &spec);

    // `sluice watch` reports them the same way, before watching anything.
    let r = run(&["watch", spec.to_str().unwrap(), "--once"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_trigger_problems(&r.stderr, &spec);
    assert!(!r.stderr.contains("watching pipeline"), "{}", r.stderr);
    assert!(
        r.stderr.contains("problem(s) found; nothing was run."),
        "the same summary as `run`: {}",
        r.stderr
    );
}

#[test]
fn watch_needs_a_triggers_table() {
    let p = Project::new(
        "[pipeline]\nname = \"unwatched\"\n[steps.ingest]\ncomponent = \"std:ingest-csv\"\n",
    );
    let r = run(&["watch", p.spec().to_str().unwrap(), "--once"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("no [triggers] table: add one naming what starts a run"),
        "{}",
        r.stderr
    );
}

const CYCLE: &str = "[pipeline]\nname = \"cyc\"\n[steps.a]\ncomponent = \"std:statistics\"\ninputs = { data = \"b.data\" }\n[steps.b]\ncomponent = \"std:ingest-csv\"\ninputs = { file = \"a.statistics\" }\n";

#[test]
fn validate_json_lists_errors_with_code_line_and_column() {
    let p = Project::new(CYCLE);
    let r = run(&["validate", p.spec().to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 2);
    let v = r.json();
    assert_eq!(v["valid"], false);
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{v:#}");
    assert_eq!(errors[0]["code"], "cycle");
    assert_eq!(errors[0]["message"], "cycle between steps: a -> b -> a");
    assert_eq!(
        (errors[0]["line"].as_u64(), errors[0]["column"].as_u64()),
        (Some(5), Some(19))
    );
    assert_eq!(errors[1]["code"], "kind-mismatch");
    assert_eq!(
        errors[1]["message"],
        "`a.statistics` is statistics but port `file` of step `b` takes a file"
    );
    assert_eq!(
        (errors[1]["line"].as_u64(), errors[1]["column"].as_u64()),
        (Some(8), Some(19))
    );
}

#[test]
fn independent_steps_run_in_file_order_after_their_inputs() {
    let p = Project::new(&format!(
        "[pipeline]\nname = \"order\"\n[steps.a]\ncomponent = \"{0}\"\nparams = {{ behaviour = \"noop\" }}\n[steps.b]\ncomponent = \"std:ingest-csv\"\ninputs = {{ file = \"c.out\" }}\n[steps.c]\ncomponent = \"{0}\"\nparams = {{ behaviour = \"noop\" }}\n",
        adversary()
    ));
    let r = run(&["validate", p.spec().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("run order: a → c → b"), "{}", r.stdout);
}

#[test]
fn a_valid_spec_validates_with_its_run_order() {
    let spec = repo().join("examples/quickstart/pipeline.toml");
    let r = run(&["validate", spec.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("is valid: 2 step(s), 1 data input(s); run order: ingest → stats"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_component_of_the_wrong_world_is_explained() {
    let not_a_step = sluice_std_components::TEST_PROGRAM_NOT_A_STEP;
    let r = run(&["component", "inspect", not_a_step]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("does not implement world sluice:pipeline/step@0.1.4"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("missing export `describe` (a function)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("missing export `run` (a function)"),
        "{}",
        r.stderr
    );
}
