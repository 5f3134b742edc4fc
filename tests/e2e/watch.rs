//! Continuous training through the binary: `sluice watch` starts exactly
//! one run per trigger (new data, drift), promotes what the run blessed to
//! `staging` only, and after a crash at either side of a run neither loses
//! nor repeats the trigger.

use crate::monitor::send;
use crate::serve::{Data, Server, csv_path, data, promote};
use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A copy of the flagship pipeline in `dir` with its data in
/// `dir/data/breast_cancer.csv` and `triggers` appended.
fn project(dir: &Path, triggers: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(csv_path(), dir.join("data/breast_cancer.csv")).unwrap();
    let spec =
        std::fs::read_to_string(repo().join("examples/breast-cancer/pipeline.toml")).unwrap();
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, format!("{spec}\n{triggers}")).unwrap();
    path
}

/// Rewrites the project's data: the first `rows` rows, with `shifted`
/// columns multiplied by `factor`.
fn write_data(dir: &Path, rows: usize, shifted: &[&str], factor: f64) {
    let text = std::fs::read_to_string(csv_path()).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut out = header.join(",") + "\n";
    for line in lines.filter(|l| !l.is_empty()).take(rows) {
        let cells: Vec<String> = line
            .split(',')
            .zip(&header)
            .map(|(v, h)| {
                if shifted.contains(h) {
                    format!("{}", v.parse::<f64>().unwrap() * factor)
                } else {
                    v.to_string()
                }
            })
            .collect();
        out.push_str(&(cells.join(",") + "\n"));
    }
    std::fs::write(dir.join("data/breast_cancer.csv"), out).unwrap();
}

/// A running `sluice watch`.
struct Watch {
    child: Child,
    log: PathBuf,
}

impl Watch {
    fn start(spec: &Path, crash: Option<&str>) -> Watch {
        let log = spec.with_extension(format!(
            "watch-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut cmd = sluice();
        cmd.args(["watch", spec.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(point) = crash {
            cmd.env("SLUICE_WATCH_CRASH", point);
        }
        let watch = Watch {
            child: cmd.spawn().unwrap(),
            log,
        };
        watch.wait_for("watching pipeline");
        watch
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no `{text}` in the watch log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to end by itself (a crash point); its code.
    fn wait_exit(mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "watch did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(self) -> (i32, String) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let log = self.log();
        (self.wait_exit(), log)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runs(store: &Path) -> Vec<Value> {
    let r = run(&["runs", "list", "--json", "--store", store.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json().as_array().unwrap().clone()
}

fn alias(store: &Path, alias: &str) -> Option<i64> {
    let r = run(&[
        "models",
        "show",
        "breast-cancer",
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]);
    if r.code != 0 {
        return None;
    }
    r.json()["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["aliases"].as_array().unwrap().iter().any(|a| a == alias))
        .and_then(|v| v["version"].as_i64())
}

/// The rows in a fixed pseudo-random order (569 is prime, so stepping by
/// 211 visits every row once).
fn shuffled(d: Data) -> Data {
    let n = d.rows.len();
    Data {
        rows: (0..n).map(|i| d.rows[i * 211 % n].clone()).collect(),
        features: d.features,
    }
}

const NEW_DATA: &str = "[triggers]\nnew-data = [\"raw\"]\npoll = \"100ms\"\ndebounce = \"300ms\"\n";

#[test]
fn new_data_starts_exactly_one_run_and_its_blessed_version_goes_to_staging() {
    let dir = tempfile::tempdir().unwrap();
    let spec = project(dir.path(), NEW_DATA);
    let store = dir.path().join(".sluice");
    let watch = Watch::start(&spec, None);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        runs(&store).is_empty(),
        "the first sight of the data starts nothing"
    );

    write_data(dir.path(), 450, &[], 1.0);
    watch.wait_for("→ staging");
    std::thread::sleep(Duration::from_millis(1500));
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");

    let runs = runs(&store);
    assert_eq!(runs.len(), 1, "{log}");
    assert!(
        runs[0]["trigger"]
            .as_str()
            .unwrap()
            .starts_with("new-data:"),
        "{}",
        runs[0]
    );
    assert_eq!(runs[0]["state"], "succeeded");
    assert_eq!(alias(&store, "staging"), Some(1));
    assert_eq!(
        alias(&store, "production"),
        None,
        "production waits for a person"
    );
    assert!(log.contains("`raw` changed"), "{log}");
    assert!(
        log.contains("waits for `sluice models promote breast-cancer 1 --alias production`"),
        "{log}"
    );
}

#[test]
fn watch_moves_an_alias_only_when_its_promotion_gates_pass() {
    let dir = tempfile::tempdir().unwrap();
    let spec = project(
        dir.path(),
        &format!(
            "{NEW_DATA}[promotion]\nproduction = true\n[promotion.require.staging]\nblessing = true\n[promotion.require.production]\nsoak = \"1h\"\n"
        ),
    );
    let store = dir.path().join(".sluice");
    let watch = Watch::start(&spec, None);
    std::thread::sleep(Duration::from_millis(500));
    write_data(dir.path(), 450, &[], 1.0);
    watch.wait_for("stays out of production");
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(alias(&store, "staging"), Some(1), "{log}");
    assert_eq!(alias(&store, "production"), None, "{log}");
    assert!(
        log.contains(
            "breast-cancer:1 stays out of production: 1 gate(s) unmet — soak: held staging for "
        ),
        "{log}"
    );
    // The move into staging kept its gate's verdict; the policy is stored.
    let r = run(&[
        "models",
        "show",
        "breast-cancer",
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]);
    let show = r.json();
    let moved = &show["history"][0];
    assert_eq!(moved["alias"], "staging");
    assert_eq!(moved["gates"][0]["gate"], "blessing");
    assert_eq!(moved["gates"][0]["passed"], true);
    assert_eq!(
        show["promotion_policy"]["require"]["production"]["soak-ms"],
        3_600_000
    );
}

#[test]
fn a_restart_after_a_crash_neither_loses_nor_repeats_a_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let spec = project(dir.path(), NEW_DATA);
    let store = dir.path().join(".sluice");

    // Crash after the trigger is recorded, before its run starts.
    let watch = Watch::start(&spec, Some("after-trigger"));
    write_data(dir.path(), 450, &[], 1.0);
    assert_ne!(watch.wait_exit(), 0);
    assert!(runs(&store).is_empty());
    // The restarted watcher runs the recorded trigger, once.
    let r = run(&["watch", spec.to_str().unwrap(), "--once"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after_first = runs(&store);
    assert_eq!(after_first.len(), 1, "{}", r.stderr);
    assert_eq!(alias(&store, "staging"), Some(1));

    // Crash after the run, before the promotion.
    let watch = Watch::start(&spec, Some("after-run"));
    write_data(dir.path(), 500, &[], 1.0);
    assert_ne!(watch.wait_exit(), 0);
    assert_eq!(runs(&store).len(), 2);
    assert_eq!(
        alias(&store, "staging"),
        Some(1),
        "the crash came before the promotion"
    );
    let r = run(&["watch", spec.to_str().unwrap(), "--once"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("already finished"), "{}", r.stderr);
    let all = runs(&store);
    assert_eq!(all.len(), 2, "no run repeated: {}", r.stderr);
    assert_eq!(alias(&store, "staging"), Some(2));

    // Nothing left to act on.
    let r = run(&["watch", spec.to_str().unwrap(), "--once"]);
    assert_eq!(r.code, 0);
    assert_eq!(runs(&store).len(), 2);
}

#[test]
fn drift_over_the_threshold_retrains_and_the_new_version_goes_to_staging() {
    let dir = tempfile::tempdir().unwrap();
    let spec = project(
        dir.path(),
        "[triggers]\ndrift = { model = \"breast-cancer@production\", min-rows = 300 }\npoll = \"100ms\"\ncheck-every = \"200ms\"\n",
    );
    let store = dir.path().join(".sluice");
    let r = run(&["run", spec.to_str().unwrap(), "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    promote(&store, "1", "production");
    let server = Server::production(&store);
    let watch = Watch::start(&spec, None);

    // Unshifted traffic: measured, no run. Patients arrive in no
    // particular order (the file is sorted by nothing in particular, but a
    // check may see any prefix of what was sent).
    let d = shuffled(data());
    send(&server.addr, &d, "plain", &[], 1.0);
    watch.wait_for("no drift over");
    assert_eq!(runs(&store).len(), 1);

    // The world shifts: new labelled data arrives and the traffic follows.
    let shifted = ["mean_radius", "mean_texture"];
    write_data(dir.path(), 569, &shifted, 1.6);
    send(&server.addr, &d, "shifted", &shifted, 1.6);
    watch.wait_for("→ staging");
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(server.stop().0, 0);

    let all = runs(&store);
    assert_eq!(all.len(), 2, "{log}");
    let retrain = all
        .iter()
        .find(|r| r["trigger"].as_str().unwrap().starts_with("drift:"))
        .unwrap();
    assert_eq!(retrain["state"], "succeeded");
    assert!(log.contains("mean_radius"), "{log}");
    assert_eq!(alias(&store, "staging"), Some(2));
    assert_eq!(alias(&store, "production"), Some(1));
}

#[test]
fn the_continuous_training_example_runs_end_to_end() {
    let demo = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .arg(repo().join("examples/continuous-training/run.sh"))
        .env("SLUICE", env!("CARGO_BIN_EXE_sluice"))
        .env("SLUICE_CACHE_DIR", crate::support::shared_cache())
        .env("DEMO_DIR", demo.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("no drift over"), "{stdout}");
    assert!(
        stdout.contains("mean_radius, mean_texture drifted"),
        "{stdout}"
    );
    assert!(stdout.contains("breast-cancer:2 → staging"), "{stdout}");
    let store = demo.path().join(".sluice");
    assert_eq!(alias(&store, "staging"), Some(2));
    assert_eq!(alias(&store, "production"), Some(1));
    let report = std::fs::read_to_string(demo.path().join("report.html")).unwrap();
    assert_eq!(report.matches("<figure class=\"feature-chart").count(), 30);
}

#[test]
fn a_schedule_starts_one_run_per_slot() {
    let p = Project::new(
        r#"
[pipeline]
name = "every-minute"
[data]
iris = "iris.csv"
[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.iris" }
[triggers]
schedule = "* * * * *"
poll = "100ms"
"#,
    );
    std::fs::copy(
        repo().join("examples/quickstart/data/iris.csv"),
        p.dir.path().join("iris.csv"),
    )
    .unwrap();
    let store = p.dir.path().join(".sluice");
    let watch = Watch::start(&p.spec(), None);
    // The next minute boundary is at most 60 s away.
    watch.wait_for("schedule: schedule `* * * * *` reached");
    watch.wait_for("succeeded");
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    let all = runs(&store);
    assert_eq!(all.len(), 1, "{log}");
    assert!(all[0]["trigger"].as_str().unwrap().starts_with("schedule:"));
}

#[test]
fn a_spec_rollout_takes_each_new_version_to_production_through_a_canary_watch_decides() {
    let dir = tempfile::tempdir().unwrap();
    let spec = project(
        dir.path(),
        &format!(
            "{NEW_DATA}[promotion]\n[promotion.require.production]\nonline = true\n[promotion.rollout]\nsteps = [50]\nwindow = \"1s\"\nmin-requests = 15\n"
        ),
    );
    let store = dir.path().join(".sluice");
    let watch = Watch::start(&spec, None);
    assert!(
        watch
            .log()
            .contains("blessed versions go to staging, and production through a rollout"),
        "{}",
        watch.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    // The first version has nothing to be compared with, and production
    // takes a version only through a rollout: a person puts it there.
    write_data(dir.path(), 450, &[], 1.0);
    watch.wait_for(
        "breast-cancer:1 stays out of production: 1 gate(s) unmet — online: version 1 has not passed a rollout on production",
    );
    let promote = |version: &str, extra: &[&str]| {
        let mut args = vec![
            "models",
            "promote",
            "breast-cancer",
            version,
            "--alias",
            "production",
            "--store",
            store.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let r = promote(
        "1",
        &["--force", "--reason", "the first production version"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Production serves, following whatever rollout the store holds.
    let server = Server::start(
        &store,
        &[
            "--model",
            "breast-cancer@production",
            "--reload-every",
            "200ms",
            "--stats-every",
            "200ms",
        ],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (addr, stop, d) = (server.addr.clone(), stop.clone(), data());
        std::thread::spawn(move || {
            let mut versions = std::collections::BTreeSet::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (code, body) = crate::serve::http(
                    &addr,
                    "POST",
                    "/v2/models/breast-cancer/infer",
                    &serde_json::to_vec(&d.infer_body(i % 400..i % 400 + 1, None)).unwrap(),
                    false,
                );
                assert_eq!(code, 200, "{body}");
                let v: Value = serde_json::from_str(&body).unwrap();
                versions.insert(v["model_version"].as_str().unwrap_or("?").to_string());
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            versions
        })
    };

    // A new version does not move production: watch starts a rollout and
    // decides its stage on what the server recorded.
    write_data(dir.path(), 520, &[], 1.0);
    watch.wait_for(
        "breast-cancer:2 rolls out on breast-cancer@production: rollout breast-cancer-2-",
    );
    assert_eq!(alias(&store, "production"), Some(1), "{}", watch.log());
    watch.wait_for(": promote — ");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered_by = traffic.join().unwrap();
    let (code, log) = watch.stop();
    assert_eq!(code, 0, "{log}");
    drop(server);

    assert_eq!(alias(&store, "staging"), Some(2), "{log}");
    assert_eq!(alias(&store, "production"), Some(2), "{log}");
    assert!(
        answered_by.contains("1") && answered_by.contains("2"),
        "both versions answered during the stage: {answered_by:?}"
    );
    let r = run(&[
        "rollout",
        "list",
        "breast-cancer",
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rollouts = r.json();
    let rollouts = rollouts.as_array().unwrap();
    assert_eq!(rollouts.len(), 1, "{rollouts:?}");
    assert_eq!(rollouts[0]["state"], "promoted", "{rollouts:?}");
    assert_eq!(rollouts[0]["baseline"], 1);
    assert_eq!(rollouts[0]["candidate"], 2);
    assert!(
        rollouts[0]["who"]
            .as_str()
            .unwrap()
            .starts_with("sluice watch ("),
        "{rollouts:?}"
    );
    assert!(
        log.contains("rollout breast-cancer-2-") && log.contains("of breast-cancer:2: promote"),
        "{log}"
    );
    // Going back by hand is a move like any other: version 1 never passed
    // a rollout.
    let r = promote("1", &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("online: version 1 has not passed a rollout on production"),
        "{}",
        r.stderr
    );
}
