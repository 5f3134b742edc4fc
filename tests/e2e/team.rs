//! A store a team shares: metadata on a real PostgreSQL server and objects
//! in a real S3-compatible bucket (both started by `scripts/test`), used by
//! "machines" simulated as processes with folders, HOMEs and compiled
//! caches of their own, sharing nothing but the server and the bucket —
//! and a store file (`team.toml`) naming both, as a team member types it.

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A fresh database and bucket, or `None` (with a note) without the test
/// servers — a failure instead when `SLUICE_REQUIRE_POSTGRES=1` (CI).
pub(crate) struct Team {
    /// The database, without its password (machines get `PGPASSWORD`).
    pub(crate) metadata: String,
    pub(crate) bucket: String,
}

pub(crate) fn team(name: &str) -> Option<Team> {
    let (Ok(url), Ok(admin), Ok(_)) = (
        std::env::var("SLUICE_TEST_POSTGRES_URL"),
        std::env::var("SLUICE_TEST_POSTGRES_ADMIN"),
        std::env::var("SLUICE_TEST_S3_ENDPOINT"),
    ) else {
        assert!(
            std::env::var("SLUICE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "SLUICE_REQUIRE_POSTGRES=1 but the PostgreSQL or S3 test server is not configured"
        );
        eprintln!(
            "NOTICE: no PostgreSQL/S3 test servers: team scenario `{name}` not run (scripts/test starts them)"
        );
        return None;
    };
    let database = format!("team_{name}_{}", std::process::id()).replace('-', "_");
    let created = Command::new("psql")
        .args([&admin, "-v", "ON_ERROR_STOP=1", "-qc"])
        .arg(format!("CREATE DATABASE {database}"))
        .output()
        .expect("psql (PostgreSQL's client) runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    // postgres://sluice:PASSWORD@HOST:PORT/sluice_test → …/DATABASE, no password.
    let (scheme_user, rest) = url.split_once(':').unwrap();
    let rest = rest.trim_start_matches("//");
    let (user, after_user) = rest.split_once(':').unwrap();
    let (_password, host_db) = after_user.split_once('@').unwrap();
    let host = host_db.split_once('/').unwrap().0;
    let metadata = format!("{scheme_user}://{user}@{host}/{database}");

    let bucket = crate::s3::bucket(&format!("team-{name}"))?;
    Some(Team { metadata, bucket })
}

/// The test server's password (what a team member's `PGPASSWORD` holds).
pub(crate) fn password() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL")
        .unwrap()
        .rsplit_once('@')
        .unwrap()
        .0
        .rsplit_once(':')
        .unwrap()
        .1
        .to_string()
}

/// One machine of the team: its own folder (a checkout of the pipeline),
/// HOME, compiled cache and user name.
pub(crate) struct Machine {
    dir: tempfile::TempDir,
    user: &'static str,
}

impl Machine {
    /// A machine with `spec` (and the breast-cancer data) in its folder,
    /// and the team's store file `team.toml`.
    pub(crate) fn new(team: &Team, user: &'static str, spec: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        for f in std::fs::read_dir(repo().join("examples/breast-cancer/data")).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), data.join(f.file_name())).unwrap();
        }
        std::fs::write(dir.path().join("pipeline.toml"), spec).unwrap();
        std::fs::write(
            dir.path().join("team.toml"),
            format!(
                "objects = \"{}\"\nmetadata = \"{}\"\n",
                team.bucket, team.metadata
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Machine { dir, user }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `sluice ARGS… --store team.toml` as this machine's user.
    pub(crate) fn sluice(&self, args: &[&str]) -> Command {
        let mut cmd = self.local(args);
        cmd.args(["--store", "team.toml"]);
        cmd
    }

    /// `sluice ARGS…` as this machine's user, on the store its arguments
    /// name (by default its own `.sluice`).
    pub(crate) fn local(&self, args: &[&str]) -> Command {
        let endpoint = std::env::var("SLUICE_TEST_S3_ENDPOINT").unwrap();
        let password = password();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", self.path("home"))
            .env("SLUICE_CACHE_DIR", self.path("home/cache"))
            .env("SLUICE_USER", self.user)
            .env("SLUICE_LEASE_SECONDS", "2")
            .env("PGPASSWORD", password)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("NO_COLOR", "1")
            .args(args);
        cmd
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        self.sluice(args).output().unwrap().into()
    }

    pub(crate) fn run_local(&self, args: &[&str]) -> Run {
        self.local(args).output().unwrap().into()
    }
}

/// Each step's (state, run it was cached from) in a run report.
fn steps(report: &Value) -> BTreeMap<String, (String, Option<String>)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                (
                    s["state"].as_str().unwrap().to_string(),
                    s["cached_from"]["run_id"].as_str().map(str::to_string),
                ),
            )
        })
        .collect()
}

pub(crate) fn breast_cancer() -> String {
    std::fs::read_to_string(repo().join("examples/breast-cancer/pipeline.toml")).unwrap()
}

#[test]
fn two_machines_share_runs_cache_lineage_and_the_registry() {
    let Some(team) = team("share") else {
        return;
    };
    let ann = Machine::new(&team, "ann", &breast_cancer());
    let bob = Machine::new(&team, "bob", &breast_cancer());

    let first = ann.run(&["run", "pipeline.toml", "--json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let first = first.json();
    let ann_run = first["run_id"].as_str().unwrap().to_string();
    assert!(
        steps(&first).values().all(|(s, _)| s == "succeeded"),
        "{first}"
    );
    assert!(
        !first.to_string().contains("sluice-test-pw") && !first.to_string().contains(".sqlite"),
        "no password and no local database in the report: {first}"
    );

    // Bob's machine reuses every step Ann's computed.
    let second = bob.run(&["run", "pipeline.toml", "--json"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let second = second.json();
    let bob_run = second["run_id"].as_str().unwrap().to_string();
    for (step, (state, from)) in steps(&second) {
        assert_eq!(state, "cached", "{step}");
        assert_eq!(from.as_deref(), Some(ann_run.as_str()), "{step}");
    }

    // Both runs, with who started them, on both machines.
    for machine in [&ann, &bob] {
        let listed = machine.run(&["runs", "list", "--json"]);
        assert_eq!(listed.code, 0, "{}", listed.stderr);
        let who: BTreeMap<String, String> = listed
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    r["started_by"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(who[&ann_run], "ann");
        assert_eq!(who[&bob_run], "bob");
    }

    let table = bob.run(&["runs", "list"]).stdout;
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("BY"), "{table}");
    let ann_line = table.lines().find(|l| l.starts_with(&ann_run)).unwrap();
    assert!(ann_line.contains(" ann "), "{table}");

    // Lineage of Ann's model, traced from Bob's machine.
    let lineage = bob.run(&["lineage", &format!("{ann_run}/train/model"), "--json"]);
    assert_eq!(lineage.code, 0, "{}", lineage.stderr);
    assert!(lineage.stdout.contains("\"ingest\""), "{}", lineage.stdout);

    // One registry: Ann promotes, Bob sees the alias and who moved it.
    let promoted = ann.run(&[
        "models",
        "promote",
        "breast-cancer",
        "1",
        "--alias",
        "production",
        "--reason",
        "first release",
    ]);
    assert_eq!(promoted.code, 0, "{}", promoted.stderr);
    let shown = bob.run(&["models", "show", "breast-cancer", "--json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let shown = shown.json();
    assert_eq!(shown["versions"][0]["aliases"][0], "production");
    assert_eq!(shown["history"][0]["who"], "ann");
    assert_eq!(shown["history"][0]["reason"], "first release");
}

#[test]
fn a_password_in_a_store_file_is_refused_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("team.toml");
    std::fs::write(
        &file,
        "objects = \"s3://b/p\"\nmetadata = \"postgres://ann:hunter2@db.example/team\"\n",
    )
    .unwrap();
    let r = run(&["runs", "list", "--store", file.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("holds a password"), "{}", r.stderr);
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);

    std::fs::write(&file, "objects = \"s3://b/p\"\nmetdata = \"x\"\n").unwrap();
    let r = run(&["runs", "list", "--store", file.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown field `metdata`"), "{}", r.stderr);

    // A server that is not there: named, without the password given.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = run(&[
        "runs",
        "list",
        "--metadata",
        &format!("postgres://ann:hunter2@127.0.0.1:{port}/team"),
    ]);
    assert_eq!(r.code, 2);
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("postgres://ann@127.0.0.1:{port}/team")),
        "{}",
        r.stderr
    );
}

/// The store tests' resumable pipeline (a slow step between two quick
/// ones) on the breast-cancer data.
fn slow_spec() -> String {
    crate::store::RESUMABLE
        .replace("ADVERSARY", adversary())
        .replace("\"d.csv\"", "\"data/breast_cancer.csv\"")
}

#[test]
fn two_machines_running_one_pipeline_at_once_compute_each_step_once() {
    let Some(team) = team("concurrent") else {
        return;
    };
    let machines = [
        Machine::new(&team, "ann", &slow_spec()),
        Machine::new(&team, "bob", &slow_spec()),
    ];
    let children: Vec<_> = machines
        .iter()
        .map(|m| {
            m.sluice(&["run", "pipeline.toml", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let reports: Vec<Value> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let run: Run = out.into();
            assert_eq!(run.code, 0, "{}", run.stderr);
            run.json()
        })
        .collect();
    for step in ["ingest", "slow", "stats"] {
        let mut states: Vec<String> = reports.iter().map(|r| steps(r)[step].0.clone()).collect();
        states.sort();
        assert_eq!(states, ["cached", "succeeded"], "{step}: {reports:?}");
    }
    let slow_outputs: Vec<&Value> = reports
        .iter()
        .map(|r| &step(r, "slow")["outputs"][0]["digest"])
        .collect();
    assert_eq!(slow_outputs[0], slow_outputs[1]);
}

#[test]
fn a_run_killed_on_one_machine_is_resumed_from_the_other() {
    let Some(team) = team("resume") else {
        return;
    };
    let ann = Machine::new(&team, "ann", &slow_spec());
    let bob = Machine::new(&team, "bob", &slow_spec());
    kill_once_running(
        &mut ann.sluice(&["run", "pipeline.toml", "--jobs", "1"]),
        "slow",
    );

    // Its lease lasts two seconds (SLUICE_LEASE_SECONDS=2), then Bob's
    // machine sees it dead.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let listed = bob.run(&["runs", "list", "--json"]);
    assert!(
        listed.stderr.contains("was interrupted"),
        "{}",
        listed.stderr
    );
    let killed = listed.json()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed.json()[0]["state"], "interrupted");
    assert_eq!(listed.json()[0]["started_by"], "ann");

    let resumed = bob.run(&["run", "--resume", &killed, "--json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let resumed = resumed.json();
    assert_eq!(resumed["resumed_from"], killed);
    let states = crate::store::states(&resumed);
    assert_eq!(states["ingest"], "cached");
    assert_eq!(states["slow"], "succeeded");
}

#[test]
fn a_sqlite_store_migrated_to_postgres_keeps_its_models_lineage_and_cache() {
    let Some(team) = team("migrate") else {
        return;
    };
    let ann = Machine::new(&team, "ann", &breast_cancer());
    let local = ann.run_local(&["run", "pipeline.toml", "--json"]);
    assert_eq!(local.code, 0, "{}", local.stderr);
    let local_run = local.json()["run_id"].as_str().unwrap().to_string();
    let promoted = ann.run_local(&[
        "models",
        "promote",
        "breast-cancer",
        "1",
        "--alias",
        "production",
        "--store",
        ".sluice",
    ]);
    assert_eq!(promoted.code, 0, "{}", promoted.stderr);

    let migrated = ann.run_local(&[
        "store",
        "migrate",
        "--to",
        &team.metadata,
        "--objects",
        &team.bucket,
        "--store",
        ".sluice",
        "--json",
    ]);
    assert_eq!(migrated.code, 0, "{}", migrated.stderr);
    let migrated = migrated.json();
    let rows: BTreeMap<String, u64> = migrated["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_string(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows["runs"], 1);
    assert_eq!(rows["executions"], 11);
    assert_eq!(rows["models"], 1);
    assert_eq!(rows["alias_history"], 1);
    assert!(
        migrated["objects"]["copied"].as_u64().unwrap() >= 10,
        "{migrated}"
    );
    assert!(!migrated.to_string().contains("sluice-test-pw"));
    // Again: the target is not empty any more.
    let again = ann.run_local(&[
        "store",
        "migrate",
        "--to",
        &team.metadata,
        "--store",
        ".sluice",
    ]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("already holds"), "{}", again.stderr);

    let verified = ann.run(&["store", "verify", "--json"]);
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    let verified = verified.json();
    assert!(
        verified["problems"].as_array().unwrap().is_empty(),
        "{verified}"
    );
    assert!(verified["checked"].as_u64().unwrap() >= 10, "{verified}");

    let shown = ann.run(&["models", "show", "breast-cancer@production", "--json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert_eq!(shown.json()["version"]["version"], 1, "{}", shown.stdout);
    let lineage = ann.run(&["lineage", &format!("{local_run}/train/model"), "--json"]);
    assert_eq!(lineage.code, 0, "{}", lineage.stderr);
    assert!(
        lineage.stdout.contains("breast_cancer.csv"),
        "{}",
        lineage.stdout
    );
    let rerun = ann.run(&["run", "pipeline.toml", "--json"]);
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    for (step, (state, from)) in steps(&rerun.json()) {
        if step == "model-validate" || step == "push" {
            // Its baseline input (`production`) names a model now.
            continue;
        }
        assert_eq!(state, "cached", "{step}");
        assert_eq!(from.as_deref(), Some(local_run.as_str()), "{step}");
    }
    assert_eq!(steps(&rerun.json())["model-validate"].0, "succeeded");

    // A damaged store fails verification, naming the object.
    let objects = ann.path(".sluice/objects/sha256");
    let victim = std::fs::read_dir(&objects)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap();
    std::fs::write(&victim, b"damaged").unwrap();
    let damaged = ann.run_local(&["store", "verify", "--store", ".sluice"]);
    assert_eq!(damaged.code, 1, "{}", damaged.stdout);
    assert!(damaged.stdout.contains("corrupt"), "{}", damaged.stdout);
    assert!(
        damaged.stdout.contains("1 missing or corrupt"),
        "{}",
        damaged.stdout
    );
}

#[test]
fn one_watcher_per_pipeline_across_machines_and_another_takes_over_when_it_dies() {
    let Some(team) = team("watch") else {
        return;
    };
    let spec = format!(
        "{}\n[triggers]\nnew-data = [\"raw\"]\npoll = \"100ms\"\n",
        breast_cancer()
    );
    let ann = Machine::new(&team, "ann", &spec);
    let bob = Machine::new(&team, "bob", &spec);
    // A lease of 3 s: Ann's heartbeat renews it every second, however
    // busy the machine running the tests is.
    let log = ann.path("watch.log");
    let mut watcher = ann
        .sluice(&["watch", "pipeline.toml"])
        .env("SLUICE_LEASE_SECONDS", "3")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("watching pipeline `breast-cancer`")
    {
        assert!(
            std::time::Instant::now() < deadline && watcher.try_wait().unwrap().is_none(),
            "Ann's watcher did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Ann's watcher holds the pipeline: Bob's is refused.
    let refused = bob.run(&["watch", "pipeline.toml", "--once"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("another `sluice watch` is watching pipeline `breast-cancer`"),
        "{}",
        refused.stderr
    );
    watcher.kill().unwrap(); // SIGKILL: its lease is not released
    watcher.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let taken_over = bob.run(&["watch", "pipeline.toml", "--once"]);
    assert_eq!(taken_over.code, 0, "{}", taken_over.stderr);
}
