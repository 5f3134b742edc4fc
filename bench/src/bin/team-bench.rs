//! `team-bench`: a store a team shares (metadata on PostgreSQL, objects in
//! an S3-compatible bucket) beside the local store (SQLite, a folder),
//! measured through the `sluice` binary as a user runs it.
//!
//! 1. **cached re-run**: the 10-step breast-cancer example run once to fill
//!    the cache, then re-run N times; the wall time of the whole `sluice
//!    run` process on each store (goal on the team store: under 100 ms,
//!    and within 3× of the local one).
//! 2. **per-step overhead**: a chain of 100 trivial Rust steps run with
//!    `--no-cache`, and re-run fully cached; the run's wall time divided
//!    by the number of steps (goal: under 5 ms per step on the team store).
//!
//! 3. **a step as an engine's pod runs it**: the example planned with
//!    `sluice run --plan-only`, then each step executed by `sluice step
//!    exec` as a fresh process with an empty HOME (no compiled cache), as
//!    a pod of `sluice export kfp` runs it: fully cached (the overhead a
//!    cluster adds per step: start, metadata, cache check, record; goal
//!    under 50 ms) and executed (`--no-cache`: the component compiled
//!    from nothing, then run).
//!
//! Needs the servers `bench/store/run.sh` starts (it builds everything and
//! exports `SLUICE_TEST_POSTGRES_URL`, `SLUICE_TEST_POSTGRES_ADMIN` and
//! `SLUICE_TEST_S3_ENDPOINT`), and `psql` to create a fresh database.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Where a store is: the `--store` argument and the environment it needs.
struct Target {
    name: &'static str,
    store: String,
    env: Vec<(String, String)>,
}

fn main() -> ExitCode {
    let json = std::env::args().any(|a| a == "--json");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sluice = repo.join("target/release/sluice");
    if !sluice.is_file() {
        eprintln!(
            "{} is missing; build it with `cargo build --release -p sluice-cli`",
            sluice.display()
        );
        return ExitCode::from(2);
    }
    let (Ok(url), Ok(admin), Ok(endpoint)) = (
        std::env::var("SLUICE_TEST_POSTGRES_URL"),
        std::env::var("SLUICE_TEST_POSTGRES_ADMIN"),
        std::env::var("SLUICE_TEST_S3_ENDPOINT"),
    ) else {
        eprintln!("run through bench/store/run.sh, which starts PostgreSQL and an S3 server");
        return ExitCode::from(2);
    };
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();

    // A fresh database and bucket per workload.
    let mut fresh = 0;
    let mut team = |label: &str| -> Target {
        fresh += 1;
        let database = format!("bench_{label}_{}_{fresh}", std::process::id());
        let ok = Command::new("psql")
            .args([&admin, "-qc", &format!("CREATE DATABASE {database}")])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "creating database {database} with psql");
        let bucket = database.replace('_', "-");
        let host = endpoint.trim_start_matches("http://");
        let put = Command::new("curl")
            .args(["-sf", "-X", "PUT", &format!("http://{host}/{bucket}")])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(put, "creating bucket {bucket} with curl");
        let metadata = format!("{}/{database}", url.rsplit_once('/').unwrap().0);
        let file = work.path().join(format!("{database}.toml"));
        std::fs::write(
            &file,
            format!(
                "objects = \"s3://{bucket}/store\"\nmetadata = \"{}\"\n",
                strip_password(&metadata)
            ),
        )
        .unwrap();
        Target {
            name: "PostgreSQL + S3 (moto)",
            store: file.display().to_string(),
            env: vec![
                ("PGPASSWORD".into(), password(&url)),
                ("AWS_ENDPOINT_URL".into(), endpoint.clone()),
                ("AWS_ALLOW_HTTP".into(), "true".into()),
                ("AWS_ACCESS_KEY_ID".into(), "bench".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "bench".into()),
                (
                    "SLUICE_METADATA_DIR".into(),
                    work.path()
                        .join(format!("{database}-local"))
                        .display()
                        .to_string(),
                ),
            ],
        }
    };
    let mut locals = 0;
    let mut local = || -> Target {
        locals += 1;
        Target {
            name: "SQLite + folder",
            store: work
                .path()
                .join(format!("local-{locals}"))
                .display()
                .to_string(),
            env: Vec::new(),
        }
    };

    let run = |spec: &Path, target: &Target, extra: &[&str]| -> Duration {
        let start = Instant::now();
        let status = Command::new(&sluice)
            .arg("run")
            .arg(spec)
            .args(["--quiet", "--store", &target.store])
            .args(extra)
            .env("SLUICE_CACHE_DIR", cache.path())
            .envs(target.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .unwrap();
        assert!(status.success(), "sluice run {} failed", spec.display());
        start.elapsed()
    };

    // 1. The 10-step example, fully cached.
    let example = work.path().join("breast-cancer");
    std::fs::create_dir_all(example.join("data")).unwrap();
    std::fs::copy(
        repo.join("examples/breast-cancer/data/breast_cancer.csv"),
        example.join("data/breast_cancer.csv"),
    )
    .unwrap();
    std::fs::copy(
        repo.join("examples/breast-cancer/pipeline.toml"),
        example.join("pipeline.toml"),
    )
    .unwrap();
    let spec = example.join("pipeline.toml");
    let mut rerun = Vec::new();
    for target in [local(), team("example")] {
        run(&spec, &target, &[]);
        let mut times: Vec<Duration> = (0..20).map(|_| run(&spec, &target, &[])).collect();
        times.sort();
        rerun.push((target.name, times));
    }

    // 2. A 100-step chain: executed (--no-cache) and fully cached.
    let chain = work.path().join("chain");
    std::fs::create_dir_all(&chain).unwrap();
    std::fs::write(chain.join("d.csv"), "x,y\n1,a\n2,b\n3,c\n").unwrap();
    let scale = sluice_std_components::TEST_PROGRAM_SCALE;
    let mut text = String::from(
        "[pipeline]\nname = \"chain\"\n[data]\nd = \"d.csv\"\n\
         [steps.s0]\ncomponent = \"std:ingest-csv\"\ninputs = { file = \"data.d\" }\n",
    );
    let mut prev = "s0.data".to_string();
    for i in 1..100 {
        text.push_str(&format!(
            "[steps.s{i}]\ncomponent = \"{scale}\"\ninputs = {{ data = \"{prev}\" }}\n\
             params = {{ column = \"x\", factor = 1 }}\n"
        ));
        prev = format!("s{i}.scaled");
    }
    let chain_spec: PathBuf = chain.join("pipeline.toml");
    std::fs::write(&chain_spec, text).unwrap();
    let mut chains = Vec::new();
    for target in [local(), team("chain")] {
        run(&chain_spec, &target, &[]);
        let mut executed: Vec<Duration> = (0..5)
            .map(|_| run(&chain_spec, &target, &["--no-cache"]))
            .collect();
        executed.sort();
        let mut cached: Vec<Duration> = (0..5).map(|_| run(&chain_spec, &target, &[])).collect();
        cached.sort();
        chains.push((target.name, executed, cached));
    }

    // 3. Each step a fresh process with an empty HOME, as a pod.
    let pods = team("pods");
    run(&spec, &pods, &[]);
    let pod = |args: &[&str]| -> (Duration, String) {
        let home = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let out = Command::new(&sluice)
            .args(args)
            .args(["--store", &pods.store])
            .env_remove("SLUICE_CACHE_DIR")
            .env("HOME", home.path())
            .envs(pods.env.iter().map(|(k, v)| (k, v)))
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        let elapsed = start.elapsed();
        let code = out.status.code();
        assert!(
            matches!(code, Some(0) | Some(1)),
            "sluice {args:?}: {code:?}"
        );
        (elapsed, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let spec_arg = spec.display().to_string();
    let mut tasks: Vec<(&str, Vec<Duration>, Vec<Duration>)> = Vec::new();
    for (label, extra) in [("cached", None), ("executed", Some("--no-cache"))] {
        let (mut plans, mut steps, mut finishes) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..5 {
            let mut args = vec!["run", spec_arg.as_str(), "--plan-only", "--json", "-q"];
            args.extend(extra);
            let (took, out) = pod(&args);
            plans.push(took);
            let planned: serde_json::Value = serde_json::from_str(&out).unwrap();
            let run_id = planned["run_id"].as_str().unwrap().to_string();
            for step in planned["steps"].as_array().unwrap() {
                let (took, _) = pod(&["step", "exec", &run_id, step.as_str().unwrap(), "-q"]);
                steps.push(took);
            }
            finishes.push(pod(&["runs", "finish", &run_id]).0);
        }
        for v in [&mut plans, &mut steps, &mut finishes] {
            v.sort();
        }
        tasks.push((label, plans, steps));
        tasks.push(("finish", finishes, Vec::new()));
    }

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = |v: &[Duration]| v[v.len() / 2];
    let pod_rows: Vec<(String, f64, f64, f64)> = tasks
        .iter()
        .filter(|(label, _, _)| *label != "finish")
        .zip(tasks.iter().filter(|(label, _, _)| *label == "finish"))
        .map(|((label, plans, steps), (_, finishes, _))| {
            (
                label.to_string(),
                ms(median(plans)),
                ms(median(steps)),
                ms(median(finishes)),
            )
        })
        .collect();
    let ratio = ms(median(&rerun[1].1)) / ms(median(&rerun[0].1));
    if json {
        let out = serde_json::json!({
            "cached_rerun_10_steps_ms": rerun.iter().map(|(name, t)| serde_json::json!({
                "store": name, "median": ms(median(t)), "min": ms(t[0]), "max": ms(t[t.len() - 1])
            })).collect::<Vec<_>>(),
            "team_over_local": ratio,
            "chain_100_steps": chains.iter().map(|(name, e, c)| serde_json::json!({
                "store": name,
                "executed_ms": ms(median(e)), "executed_per_step_ms": ms(median(e)) / 100.0,
                "cached_ms": ms(median(c)), "cached_per_step_ms": ms(median(c)) / 100.0,
            })).collect::<Vec<_>>(),
            "step_exec_as_pods": pod_rows.iter().map(|(label, plan, step, finish)| serde_json::json!({
                "steps": label, "plan_ms": plan, "step_exec_ms": step, "finish_ms": finish,
            })).collect::<Vec<_>>(),
        });
        println!("{out}");
        return ExitCode::SUCCESS;
    }
    println!("fully cached re-run of the 10-step example, whole process (20 runs)");
    for (name, t) in &rerun {
        println!(
            "  {name:<24} median {:>6.1} ms   min {:>6.1}   max {:>6.1}",
            ms(median(t)),
            ms(t[0]),
            ms(t[t.len() - 1])
        );
    }
    println!("  team / local: {ratio:.2}×   goals: team < 100 ms, within 3× of local");
    println!("100-step chain, whole process (5 runs each), per step");
    for (name, e, c) in &chains {
        println!(
            "  {name:<24} executed {:>6.2} ms/step   cached {:>6.2} ms/step   goal < 5 ms/step",
            ms(median(e)) / 100.0,
            ms(median(c)) / 100.0
        );
    }
    println!(
        "the example as pods: each task a fresh process, empty HOME, team store (5 runs, medians)"
    );
    for (label, plan, step, finish) in &pod_rows {
        println!(
            "  {label:<9} plan {plan:>7.1} ms   step exec {step:>7.1} ms/step   finish {finish:>6.1} ms{}",
            if label == "cached" {
                "   goal < 50 ms/step"
            } else {
                ""
            }
        );
    }
    ExitCode::SUCCESS
}

/// The password of `postgres://USER:PASSWORD@…`.
fn password(url: &str) -> String {
    let userinfo = url.split_once("://").unwrap().1.rsplit_once('@').unwrap().0;
    userinfo.split_once(':').map_or("", |(_, p)| p).to_string()
}

/// `url` without its password (the store file is shared).
fn strip_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.rsplit_once('@').unwrap();
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    format!("{scheme}://{user}@{host}")
}
