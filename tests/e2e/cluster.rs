//! Beyond one machine: a pipeline exported for Kubeflow Pipelines, one pod
//! per step, each `sluice step exec` against the team store. There is no
//! Kubernetes here, so it is proved three independent ways:
//!
//! - **schema**: the exported YAML parses strictly into KFP's own
//!   `PipelineSpec` / `PlatformSpec` protobufs (`kfp-pipeline-spec`,
//!   `kfp-kubernetes` from PyPI), plus the checks the schema does not make,
//!   written in Python apart from sluice's (`cluster/kfp_ir_check.py`);
//! - **against KFP's compiler**: the same shape written with the `kfp` SDK
//!   from the spec alone and compiled by `kfp.compiler` equals sluice's
//!   export, task by task (`cluster/kfp_compile_same.py`);
//! - **conformance**: the IR run the way KFP's launcher runs it — each task
//!   a fresh process in an empty folder with its own HOME and compiled
//!   cache, placeholders filled, dependencies and trigger and retry
//!   policies honoured, independent tasks at once — sharing only the
//!   PostgreSQL and S3 servers (`cluster/kfp_launcher.py`). Its results
//!   equal a local `sluice run`; a second run is fully cached; a pod
//!   killed mid-step is retried and the run completes.
//!
//! And `sluice step exec`'s own contract, on a local store: idempotent,
//! one task per step at a time, clear errors, exit 75 for what an engine
//! should retry.

use crate::support::*;
use crate::team::{Machine, breast_cancer, password, team};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the KFP packages are there (a failure instead with
/// `SLUICE_REQUIRE_CLIENTS=1`, as in CI).
fn have_kfp() -> bool {
    crate::clients::python_has(
        &["kfp", "kfp.kubernetes", "yaml"],
        "pip install kfp==2.17.3 kfp-kubernetes==2.17.3",
    )
}

/// The breast-cancer pipeline, `train` asking for 2 GiB, two cores and a
/// GPU with one retry, and a step `slow` (the adversarial test program
/// computing for a while) whose component is a `.wasm` file beside the
/// spec, so that it must travel to the pods through the store.
fn cluster_spec(machine: &Machine) -> String {
    std::fs::create_dir_all(machine.path("steps")).unwrap();
    std::fs::copy(adversary(), machine.path("steps/slow.wasm")).unwrap();
    breast_cancer().replace(
        "params = { algorithm = \"logistic-regression\", label = \"diagnosis\", params = { c = 1.0 } }",
        "params = { algorithm = \"logistic-regression\", label = \"diagnosis\", params = { c = 1.0 } }\nlimits = { memory = \"2GiB\", cpu = 2 }\naccelerator = \"nvidia.com/gpu\"\nretries = 1",
    ) + "\n[steps.slow]\ncomponent = \"steps/slow.wasm\"\nparams = { behaviour = \"busy\", size = 3000 }\n"
}

/// The secrets the export references, as the launcher's "cluster" holds them.
fn secrets() -> String {
    serde_json::json!({
        "sluice-db": {"password": password()},
        "sluice-s3": {"access-key": "test", "secret-key": "test"},
    })
    .to_string()
}

/// `sluice export kfp pipeline.toml` on `machine`, to `pipeline.yaml`.
fn export(machine: &Machine) -> PathBuf {
    let endpoint = std::env::var("SLUICE_TEST_S3_ENDPOINT").unwrap();
    let out = machine.run(&[
        "export",
        "kfp",
        "pipeline.toml",
        "--image",
        "ghcr.io/acme/sluice:test",
        "--env",
        &format!("AWS_ENDPOINT_URL={endpoint}"),
        "--env",
        "AWS_ALLOW_HTTP=true",
        "--env",
        "SLUICE_LEASE_SECONDS=2",
        "--secret-env",
        "PGPASSWORD=sluice-db:password",
        "--secret-env",
        "AWS_ACCESS_KEY_ID=sluice-s3:access-key",
        "--secret-env",
        "AWS_SECRET_ACCESS_KEY=sluice-s3:secret-key",
        "-o",
        "pipeline.yaml",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("exported 12 step(s)"), "{}", out.stderr);
    let yaml = std::fs::read_to_string(machine.path("pipeline.yaml")).unwrap();
    assert!(
        !yaml.contains("sluice-test-pw"),
        "no password in the definition"
    );
    machine.path("pipeline.yaml")
}

/// Runs `tests/e2e/cluster/SCRIPT ARGS…`; its exit code, JSON and stderr.
fn script(name: &str, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new("python3")
        .arg(repo().join("tests/e2e/cluster").join(name))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the exported pipeline with the launcher (pods in `work`); its report.
fn launch(yaml: &Path, work: &Path, extra: &[&str]) -> Value {
    std::fs::create_dir_all(work).unwrap();
    let secrets = secrets();
    let mut args = vec![
        yaml.to_str().unwrap(),
        "--image-binary",
        env!("CARGO_BIN_EXE_sluice"),
        "--work",
        work.to_str().unwrap(),
        "--secrets",
        &secrets,
    ];
    args.extend_from_slice(extra);
    let (code, report, stderr) = script("kfp_launcher.py", &args);
    assert_eq!(code, 0, "{stderr}");
    report
}

fn task<'r>(report: &'r Value, name: &str) -> &'r Value {
    &report["tasks"][name]
}

/// Each step's last execution in run `run`: (state, outputs port → digest).
fn executions(
    machine: &Machine,
    run: &str,
) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    let shown = machine.run(&["runs", "show", run, "--json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let shown = shown.json();
    let mut steps = BTreeMap::new();
    for e in shown["steps"].as_array().unwrap() {
        let outputs = e["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|ev| ev["direction"] == "output")
            .map(|ev| {
                (
                    ev["port"].as_str().unwrap().to_string(),
                    ev["artifact"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        steps.insert(
            e["step"].as_str().unwrap().to_string(),
            (e["state"].as_str().unwrap().to_string(), outputs),
        );
    }
    steps
}

/// A model card without the record of which execution made it (which
/// differs between any two runs that train), as JSON.
fn card_without_maker(bytes: &[u8]) -> Value {
    let mut card: Value = serde_json::from_slice(bytes).unwrap();
    card.as_object_mut().unwrap().remove("made_by");
    card
}

/// A machine of a fresh team with the cluster spec, exported; `None` (with
/// a notice) without the servers or the KFP packages.
fn exported(name: &str) -> Option<(Machine, PathBuf)> {
    let team = team(name)?;
    if !have_kfp() {
        return None;
    }
    let machine = Machine::new(&team, "ann", "");
    std::fs::write(machine.path("pipeline.toml"), cluster_spec(&machine)).unwrap();
    let yaml = export(&machine);
    Some((machine, yaml))
}

#[test]
fn a_kfp_export_parses_strictly_into_kfps_schema_and_equals_what_kfps_compiler_makes() {
    let Some((machine, yaml)) = exported("kfp-schema") else {
        return;
    };
    let yaml_path = yaml.to_str().unwrap();

    // 1. KFP's protobufs, strictly, and the checks they do not make.
    let (code, summary, stderr) = script("kfp_ir_check.py", &[yaml_path]);
    assert_eq!(code, 0, "{stderr}");
    let tasks = summary["tasks"].as_object().unwrap();
    assert_eq!(tasks.len(), 14, "plan, 12 steps, report: {summary}");
    assert_eq!(summary["schema_version"], "2.1.0");
    assert_eq!(summary["pipeline"], "breast-cancer");
    assert_eq!(
        summary["tasks"]["train"]["dependent_tasks"],
        serde_json::json!(["transform"])
    );
    assert_eq!(
        summary["tasks"]["ingest"]["dependent_tasks"],
        serde_json::json!(["sluice-plan"])
    );
    assert_eq!(
        summary["tasks"]["train"]["max_retry_count"], 3,
        "1 + 2 pod retries"
    );
    assert!(tasks.values().all(|t| t["caching"] == false), "{summary}");
    assert_eq!(
        summary["tasks"]["sluice-report"]["trigger"],
        "ALL_UPSTREAM_TASKS_COMPLETED"
    );
    assert_eq!(
        summary["tasks"]["sluice-report"]["dependent_tasks"]
            .as_array()
            .unwrap()
            .len(),
        12
    );
    assert_eq!(summary["order"][0], "sluice-plan");
    assert_eq!(summary["order"][13], "sluice-report");
    assert!(
        summary["secrets"]["exec-train"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["sluice-db", "password", "PGPASSWORD"])),
        "{summary}"
    );

    // The checks bite: an unknown field, a dependency on no task, and a
    // placeholder nothing provides are each refused.
    let text = std::fs::read_to_string(&yaml).unwrap();
    for (broken, expected) in [
        (
            text.replacen(
                "      sluice-plan:\n",
                "      sluice-plan:\n        retries: 3\n",
                1,
            ),
            "has no field named \"retries\"",
        ),
        (
            text.replacen(
                "        dependentTasks:\n        - transform\n",
                "        dependentTasks:\n        - transformer\n",
                1,
            ),
            "depends on transformer, which is not a task",
        ),
        (
            text.replacen(
                "        - finish\n",
                "        - \"{{$.inputs.parameters['run']}}\"\n",
                1,
            ),
            "resolves to nothing",
        ),
    ] {
        assert_ne!(broken, text, "the mutation applies");
        let path = machine.path("broken.yaml");
        std::fs::write(&path, broken).unwrap();
        let (code, _, stderr) = script("kfp_ir_check.py", &[path.to_str().unwrap()]);
        assert_ne!(code, 0, "refused");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }

    // 2. The same shape from the kfp SDK's compiler.
    let spec = machine.path("pipeline.toml");
    let (code, compared, stderr) =
        script("kfp_compile_same.py", &[spec.to_str().unwrap(), yaml_path]);
    assert_eq!(code, 0, "sluice's export differs from kfp's:\n{stderr}");
    let train = &compared["tasks"]["train"];
    assert_eq!(train["memory"], serde_json::json!(["2560Mi", "2560Mi"]));
    assert_eq!(train["cpu"], serde_json::json!(["2", "2"]));
    assert_eq!(
        train["accelerator"],
        serde_json::json!({"resourceType": "nvidia.com/gpu", "resourceCount": "1"})
    );
    assert_eq!(
        compared["tasks"]["ingest"]["memory"],
        serde_json::json!(["1536Mi", "1536Mi"]),
        "the 1 GiB default plus sluice's own 512 MiB"
    );
    // A change kfp's compiler would not make is found.
    let drifted = text.replacen("resourceCpuLimit: \"2\"", "resourceCpuLimit: \"3\"", 1);
    assert_ne!(drifted, text);
    let path = machine.path("drifted.yaml");
    std::fs::write(&path, drifted).unwrap();
    let (code, _, stderr) = script(
        "kfp_compile_same.py",
        &[spec.to_str().unwrap(), path.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("task train, cpu"), "{stderr}");
}

#[test]
fn a_conformance_run_equals_a_local_run_survives_a_killed_pod_and_is_cached_the_second_time() {
    let Some((machine, yaml)) = exported("kfp-run") else {
        return;
    };

    // Every task a fresh process; the pod running `slow` is killed mid-step.
    let first = launch(&yaml, &machine.path("pods-1"), &["--kill", "slow"]);
    let job = first["job_id"].as_str().unwrap().to_string();
    for (name, t) in first["tasks"].as_object().unwrap() {
        assert_eq!(t["state"], "succeeded", "{name}: {first}");
    }
    assert_eq!(
        task(&first, "slow")["exit_codes"],
        serde_json::json!([-9, 0]),
        "killed, then retried to success: {first}"
    );
    let cluster = executions(&machine, &job);
    assert_eq!(cluster.len(), 12);
    for (step, (state, _)) in &cluster {
        assert_eq!(state, "succeeded", "{step}");
    }
    let run = machine.run(&["runs", "show", &job, "--json"]).json();
    assert_eq!(run["run"]["state"], "succeeded");
    assert_eq!(run["run"]["trigger"], "manual");

    // The same pipeline run locally, in the machine's own store.
    let local = machine.run_local(&["run", "pipeline.toml", "--json"]);
    assert_eq!(local.code, 0, "{}", local.stderr);
    let local = local.json();
    for s in local["steps"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let (_, outputs) = &cluster[name];
        for o in s["outputs"].as_array().unwrap() {
            let port = o["port"].as_str().unwrap();
            let ours = o["digest"].as_str().unwrap();
            let theirs = &outputs[port];
            if o["kind"] == "model" {
                // The ONNX bytes are the same; so is the card, but for the
                // record of the execution that made it.
                let export = |digest: &str, store: Option<&str>, to: &str| {
                    let mut args = vec!["artifacts", "export", digest, "-o", to];
                    if let Some(s) = store {
                        args.extend(["--store", s]);
                    }
                    let out = machine.run_local(&args);
                    assert_eq!(out.code, 0, "{}", out.stderr);
                    let card = machine.path(&to.replace(".onnx", ".card.json"));
                    (
                        std::fs::read(machine.path(to)).unwrap(),
                        card_without_maker(&std::fs::read(card).unwrap()),
                    )
                };
                let a = export(ours, None, "local.onnx");
                let b = export(theirs, Some("team.toml"), "cluster.onnx");
                assert!(a.0 == b.0, "{name}.{port}: the same ONNX bytes");
                assert_eq!(a.1, b.1, "{name}.{port}");
            } else if name == "infra-validate" {
                // A measurement of the serving path (start-up, latency,
                // memory) differs from run to run; what it decided must not.
                let blessed = |digest: &str, store: Option<&str>, to: &str| {
                    let mut args = vec!["artifacts", "export", digest, "-o", to];
                    if let Some(s) = store {
                        args.extend(["--store", s]);
                    }
                    let out = machine.run_local(&args);
                    assert_eq!(out.code, 0, "{}", out.stderr);
                    let doc: Value =
                        serde_json::from_slice(&std::fs::read(machine.path(to)).unwrap()).unwrap();
                    doc["blessed"].clone()
                };
                assert_eq!(blessed(ours, None, "local.json"), true, "{name}.{port}");
                assert_eq!(blessed(theirs, Some("team.toml"), "cluster.json"), true);
            } else {
                assert_eq!(ours, theirs, "{name}.{port}: same bytes as a local run");
            }
        }
    }

    // A second run of the same definition: every step from the cache.
    let second = launch(&yaml, &machine.path("pods-2"), &[]);
    let job2 = second["job_id"].as_str().unwrap();
    assert_ne!(job2, job);
    for (name, t) in second["tasks"].as_object().unwrap() {
        assert_eq!(t["exit_codes"], serde_json::json!([0]), "{name}: {second}");
    }
    let cached = executions(&machine, job2);
    for (step, (state, outputs)) in &cached {
        assert_eq!(state, "cached", "{step}");
        assert_eq!(outputs, &cluster[step].1, "{step}: the first run's outputs");
    }
}

/// A local project with the breast-cancer pipeline and a planned run of it.
fn planned() -> (Project, String) {
    let project = Project::new(&breast_cancer());
    let data = project.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in std::fs::read_dir(repo().join("examples/breast-cancer/data")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), data.join(f.file_name())).unwrap();
    }
    let out = in_project(&project, &["run", "pipeline.toml", "--plan-only"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run = out.stdout.trim().to_string();
    assert!(out.stderr.contains("planned run"), "{}", out.stderr);
    (project, run)
}

fn in_project(project: &Project, args: &[&str]) -> Run {
    sluice()
        .current_dir(project.dir.path())
        .args(args)
        .output()
        .unwrap()
        .into()
}

#[test]
fn step_exec_is_idempotent_and_says_which_failures_an_engine_may_retry() {
    let (project, run) = planned();
    let exec = |step: &str| in_project(&project, &["step", "exec", &run, step, "--json"]);

    let unknown = in_project(&project, &["step", "exec", "no-such-run", "ingest"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("no run `no-such-run`"),
        "{}",
        unknown.stderr
    );
    let unknown = exec("trian");
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("has no step `trian`; its steps: ingest, statistics"),
        "{}",
        unknown.stderr
    );

    // Inputs not produced yet: retry later.
    let early = exec("train");
    assert_eq!(early.code, 75, "{}", early.stderr);
    assert!(
        early.stderr.contains("`transform` of run") && early.stderr.contains("not settled"),
        "{}",
        early.stderr
    );

    // Twice: the work is done once.
    let first = exec("ingest");
    assert_eq!(first.code, 0, "{}", first.stderr);
    let first = first.json();
    assert_eq!(first["state"], "succeeded");
    assert_eq!(first["settled_now"], true);
    let again = exec("ingest");
    assert_eq!(again.code, 0);
    let again = again.json();
    assert_eq!(again["settled_now"], false);
    assert_eq!(again["execution_id"], first["execution_id"]);
    assert_eq!(again["outputs"], first["outputs"]);

    // Two tasks for one step at once: one runs it, the other reports it.
    let spawn = || {
        sluice()
            .current_dir(project.dir.path())
            .args(["step", "exec", &run, "statistics", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let a: Run = a.wait_with_output().unwrap().into();
    let b: Run = b.wait_with_output().unwrap().into();
    assert_eq!((a.code, b.code), (0, 0), "{}\n{}", a.stderr, b.stderr);
    let (a, b) = (a.json(), b.json());
    assert_eq!(a["execution_id"], b["execution_id"]);
    assert_eq!(
        [a["settled_now"].as_bool(), b["settled_now"].as_bool()]
            .iter()
            .filter(|s| **s == Some(true))
            .count(),
        1,
        "{a}\n{b}"
    );

    // A store that cannot be reached: retry later.
    let down = in_project(
        &project,
        &[
            "step",
            "exec",
            &run,
            "schema",
            "--metadata",
            "postgres://sluice@127.0.0.1:1/sluice",
        ],
    );
    assert_eq!(down.code, 75, "{}", down.stderr);
    assert!(down.stderr.contains("127.0.0.1:1"), "{}", down.stderr);

    // Ending the run: the steps no task ran are skipped, saying why.
    let finished = in_project(&project, &["runs", "finish", &run, "--json"]);
    assert_eq!(finished.code, 1, "{}", finished.stderr);
    let finished = finished.json();
    assert_eq!(finished["state"], "failed");
    let states: BTreeMap<String, (String, String)> = finished["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                (
                    s["state"].as_str().unwrap().to_string(),
                    s["message"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(states["statistics"].0, "succeeded");
    assert_eq!(
        states["schema"],
        (
            "skipped".into(),
            "skipped: its task never ran (the engine did not start it)".into()
        )
    );
    assert_eq!(
        states["train"],
        (
            "skipped".into(),
            "skipped: upstream step `transform` did not succeed".into()
        )
    );
    // Over: a late task reports the recorded outcome, a second finish too.
    let late = exec("schema");
    assert_eq!(late.code, 3, "skipped: {}", late.stderr);
    let again = in_project(&project, &["runs", "finish", &run]);
    assert_eq!(again.code, 1);
    assert!(again.stdout.contains("(ended earlier)"), "{}", again.stdout);
}

#[test]
fn planning_a_run_id_again_is_a_no_op_and_a_run_started_by_sluice_run_is_not_an_engines() {
    let (project, run) = planned();
    let again = in_project(
        &project,
        &["run", "pipeline.toml", "--plan-only", "--run-id", &run],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout.trim(), run);
    assert!(again.stderr.contains("already planned"), "{}", again.stderr);

    // The same files published from another folder are the same package.
    let (elsewhere, _) = planned();
    let package = |project: &Project| {
        let out = in_project(project, &["run", "pipeline.toml", "--plan-only", "--json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let digest = out.json()["package"].as_str().unwrap().to_string();
        digest.trim_start_matches("sha256:").to_string()
    };
    assert_eq!(package(&project), package(&elsewhere));
    let shown = in_project(&project, &["runs", "show", &run]);
    assert!(
        shown
            .stdout
            .contains(&format!("spec pipeline.toml@{}", &package(&project)[..12])),
        "{}",
        shown.stdout
    );

    // The same id for another pipeline is refused.
    std::fs::write(
        project.dir.path().join("other.toml"),
        breast_cancer().replace("name = \"breast-cancer\"", "name = \"other\""),
    )
    .unwrap();
    let taken = in_project(
        &project,
        &[
            "run",
            "other.toml",
            "--plan-only",
            "--run-id",
            &run,
            "--store",
            ".sluice",
        ],
    );
    assert_eq!(taken.code, 2, "{}", taken.stderr);
    assert!(
        taken
            .stderr
            .contains("exists already and runs another published pipeline"),
        "{}",
        taken.stderr
    );
    let bad = in_project(
        &project,
        &["run", "pipeline.toml", "--plan-only", "--run-id", "a/b"],
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("cannot be a run id"), "{}", bad.stderr);

    // A run `sluice run` executes itself is no engine's to drive.
    let local = in_project(&project, &["run", "pipeline.toml", "--json", "-q"]);
    assert_eq!(local.code, 0, "{}", local.stderr);
    let local_id = local.json()["run_id"].as_str().unwrap().to_string();
    let refused = in_project(&project, &["step", "exec", &local_id, "ingest"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("was started by `sluice run`"),
        "{}",
        refused.stderr
    );

    // The planned run was not taken for dead by the commands since (no
    // process holds it): it is still running, for its engine.
    let shown = in_project(&project, &["runs", "show", &run, "--json"]);
    assert_eq!(shown.json()["run"]["state"], "running");
}

#[test]
fn export_refuses_a_store_pods_cannot_reach_and_credentials_written_in() {
    let project = Project::new(&breast_cancer());
    let data = project.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(
        repo().join("examples/breast-cancer/data/breast_cancer.csv"),
        data.join("breast_cancer.csv"),
    )
    .unwrap();
    for (extra, expected) in [
        (
            &[][..],
            "a folder on this machine, which a cluster's pods cannot reach",
        ),
        (
            &["--store", "s3://bucket/p", "--metadata", "meta.sqlite"][..],
            "is the SQLite file",
        ),
        (
            &["--env", "AWS_SECRET_ACCESS_KEY=hunter2"][..],
            "pass it by reference: --secret-env AWS_SECRET_ACCESS_KEY=SECRET:KEY",
        ),
        (
            &[
                "--store",
                "s3://bucket/p",
                "--metadata",
                "postgres://ann:hunter2@db/sluice",
            ][..],
            "carries a password, which would be written into the pipeline definition",
        ),
    ] {
        let mut args = vec!["export", "kfp", "pipeline.toml", "--image", "sluice:1"];
        args.extend_from_slice(extra);
        let refused = in_project(&project, &args);
        assert_eq!(refused.code, 2, "{extra:?}: {}", refused.stderr);
        assert!(
            refused.stderr.contains(expected),
            "{extra:?}: {}",
            refused.stderr
        );
        assert!(!refused.stderr.contains("hunter2"), "{}", refused.stderr);
    }
}
