//! Browsing the store: `sluice lineage`, `sluice artifacts` and `sluice gc`.

use crate::support::*;
use serde_json::Value;
use sluice_store::Digest;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A data file → ingest → two statistics steps with different bins.
const SPEC: &str = r#"
[pipeline]
name = "lineage"
[data]
raw = "measurements.csv"
[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.raw" }
[steps.stats]
component = "std:statistics"
inputs = { data = "ingest.data" }
params = { bins = 4 }
[steps.coarse]
component = "std:statistics"
inputs = { data = "ingest.data" }
params = { bins = 2 }
"#;

const CSV: &str = "x,y,label\n1,2.5,a\n2,3.5,b\n3,NA,a\n4,8.0,c\n";

fn project() -> Project {
    let p = Project::new(SPEC);
    p.write("measurements.csv", CSV);
    p
}

fn store_of(p: &Project) -> PathBuf {
    p.dir.path().join(".sluice")
}

/// `sluice ARGS… --store STORE`.
fn in_store(store: &Path, args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--store", store.to_str().unwrap()]);
    run(&all)
}

fn ok(r: Run) -> Run {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r
}

fn run_pipeline(p: &Project) -> Value {
    let r = p.run_json();
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json()
}

fn output_digest(report: &Value, step_name: &str) -> String {
    step(report, step_name)["outputs"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every file under the store's objects folder.
fn object_files(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(store.join("objects/sha256")).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

fn set_age(path: &Path, age: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

/// Writes `bytes` as an object named by their digest; returns the digest.
fn plant_object(store: &Path, bytes: &[u8], age: Duration) -> (Digest, PathBuf) {
    let d = Digest::of(bytes);
    let hex = d.to_hex();
    let dir = store.join("objects/sha256").join(&hex[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(&hex[2..]);
    std::fs::write(&path, bytes).unwrap();
    set_age(&path, age);
    (d, path)
}

/// The execution an artifact node in `lineage --json` was produced by.
fn producer(node: &Value) -> &Value {
    let p = &node["produced_by"];
    assert!(p.is_object(), "no producer in {node:#}");
    p
}

#[test]
fn lineage_reaches_every_upstream_step_and_the_data_file() {
    let p = project();
    let store = store_of(&p);
    let report = run_pipeline(&p);
    let run_id = report["run_id"].as_str().unwrap();
    let stats = output_digest(&report, "stats");
    let table = output_digest(&report, "ingest");
    let data_path = report["data"][0]["path"].as_str().unwrap().to_string();
    let data_digest = Digest::of(CSV.as_bytes()).to_string();
    assert_eq!(report["data"][0]["digest"], data_digest.as_str());

    let r = ok(in_store(
        &store,
        &["lineage", &format!("{run_id}/stats/statistics"), "--json"],
    ));
    let j = r.json();
    let root = &j["artifact"];
    assert_eq!(root["digest"], stats.as_str());
    assert_eq!(root["kind"], "statistics");
    let stats_exec = producer(root);
    assert_eq!(stats_exec["step"], "stats");
    assert_eq!(stats_exec["run_id"], run_id);
    assert_eq!(stats_exec["component"], "std:statistics");
    assert_eq!(stats_exec["state"], "succeeded");
    assert_eq!(stats_exec["port"], "statistics");
    assert_eq!(stats_exec["params"]["bins"], 4);
    assert_eq!(stats_exec["inputs"][0]["port"], "data");
    assert_eq!(stats_exec["inputs"][0]["source"], "ingest.data");
    let table_node = &stats_exec["inputs"][0]["artifact"];
    assert_eq!(table_node["digest"], table.as_str());
    assert_eq!(table_node["kind"], "table");
    let ingest_exec = producer(table_node);
    assert_eq!(ingest_exec["step"], "ingest");
    assert_eq!(ingest_exec["component"], "std:ingest-csv");
    assert_eq!(ingest_exec["inputs"][0]["port"], "file");
    assert_eq!(ingest_exec["inputs"][0]["source"], "data.raw");
    let file_node = &ingest_exec["inputs"][0]["artifact"];
    assert_eq!(file_node["digest"], data_digest.as_str());
    assert_eq!(file_node["imported_as"]["name"], "raw");
    assert_eq!(file_node["imported_as"]["path"], data_path.as_str());
    assert!(file_node.get("produced_by").is_none());

    // The flat summaries: both upstream steps (not the sibling branch) and
    // the one data file.
    let steps: Vec<&str> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["stats", "ingest"]);
    assert_eq!(j["data"].as_array().unwrap().len(), 1);
    assert_eq!(j["data"][0]["path"], data_path.as_str());
    assert_eq!(j["data"][0]["digest"], data_digest.as_str());

    // Text: an indented tree naming the steps and the file.
    let text = ok(in_store(&store, &["lineage", &stats[7..19]])).stdout;
    assert!(
        text.starts_with(&format!("statistics {}", &stats[7..19])),
        "{text}"
    );
    assert!(text.contains("└─ step stats: std:statistics"), "{text}");
    assert!(text.contains("data ← ingest.data: table"), "{text}");
    assert!(text.contains("step ingest: std:ingest-csv"), "{text}");
    assert!(text.contains(&format!("data.raw = {data_path}")), "{text}");
    assert!(!text.contains("coarse"), "{text}");

    // Graphviz: boxes, ellipses, and an edge labelled by each port.
    let dot = ok(in_store(
        &store,
        &["lineage", "latest/stats/statistics", "--dot"],
    ))
    .stdout;
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.trim_end().ends_with('}'), "{dot}");
    let a = |d: &str| format!("\"a_{}\"", &d[7..]);
    for edge in [
        format!("-> {} [label=\"statistics\"]", a(&stats)),
        format!("-> {} [label=\"data\"]", a(&table)),
        format!("{} -> \"e_", a(&table)),
        format!("-> {} [label=\"data.raw\"]", a(&data_digest)),
        format!("{} -> \"e_", a(&data_digest)),
        "[label=\"file\"]".to_string(),
    ] {
        assert!(dot.contains(&edge), "no `{edge}` in\n{dot}");
    }
    assert_eq!(dot.matches("[label=\"data\"]").count(), 2, "{dot}");
    assert_eq!(dot.matches("shape=ellipse").count(), 2, "{dot}");
    assert_eq!(dot.matches("shape=box").count(), 3, "{dot}");
    if let Ok(out) = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(dot.as_bytes())?;
            child.wait_with_output()
        })
    {
        // Graphviz is installed: it must accept the drawing.
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
    }

    // --json and --dot together are refused by the argument parser.
    assert_eq!(
        in_store(
            &store,
            &["lineage", "latest/stats/statistics", "--json", "--dot"]
        )
        .code,
        2
    );
}

#[test]
fn lineage_of_a_cached_artifact_follows_the_original_execution() {
    let p = project();
    let store = store_of(&p);
    let first = run_pipeline(&p);
    let second = run_pipeline(&p);
    for s in ["ingest", "stats", "coarse"] {
        assert_eq!(step(&second, s)["state"], "cached", "{s}");
    }
    let stats = output_digest(&second, "stats");
    assert_eq!(stats, output_digest(&first, "stats"));

    let j = ok(in_store(
        &store,
        &["lineage", "latest/coarse/statistics", "--json"],
    ))
    .json();
    let coarse = producer(&j["artifact"]);
    assert_eq!(coarse["step"], "coarse");
    // The original execution, from the first run, reused by the second.
    assert_eq!(coarse["run_id"], first["run_id"]);
    assert_eq!(coarse["state"], "succeeded");
    assert_eq!(coarse["reused_by"]["run_id"], second["run_id"]);
    assert_eq!(coarse["producers"], 2);
    assert_eq!(coarse["params"]["bins"], 2);
    let ingest = producer(&coarse["inputs"][0]["artifact"]);
    assert_eq!(ingest["step"], "ingest");
    assert_eq!(ingest["run_id"], first["run_id"]);
    let file = &ingest["inputs"][0]["artifact"];
    assert_eq!(file["digest"], Digest::of(CSV.as_bytes()).to_string());
    assert_eq!(file["imported_as"]["path"], first["data"][0]["path"]);
    assert_eq!(j["data"][0]["digest"], first["data"][0]["digest"]);

    let text = ok(in_store(&store, &["lineage", "latest/stats/statistics"])).stdout;
    assert!(
        text.contains(&format!(
            "reused by cached execution {} in run {}",
            step(&second, "stats")["execution_id"],
            second["run_id"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(text.contains("measurements.csv"), "{text}");
}

#[test]
fn artifacts_are_shown_by_digest_or_step_output_and_exported_verified() {
    let p = project();
    let store = store_of(&p);
    let report = run_pipeline(&p);
    let run_id = report["run_id"].as_str().unwrap();
    let stats = output_digest(&report, "stats");
    let table = output_digest(&report, "ingest");

    // list: every artifact, with its producer; --kind filters.
    let list = ok(in_store(&store, &["artifacts", "list", "--json"])).json();
    let listed = list.as_array().unwrap();
    assert_eq!(listed.len(), 4, "{list:#}");
    let stats_row = listed
        .iter()
        .find(|a| a["digest"] == stats.as_str())
        .unwrap();
    assert_eq!(stats_row["kind"], "statistics");
    assert_eq!(
        stats_row["producer"],
        format!("{run_id}/stats/statistics").as_str()
    );
    assert!(listed.iter().any(|a| a["producer"] == "data.raw"));
    let kinds = ok(in_store(
        &store,
        &["artifacts", "list", "--kind", "statistics", "--json"],
    ))
    .json();
    assert_eq!(kinds.as_array().unwrap().len(), 2);
    let text = ok(in_store(&store, &["artifacts", "list"])).stdout;
    assert!(text.starts_with("DIGEST"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&stats[7..19]) && l.contains("statistics")),
        "{text}"
    );

    // show: by digest prefix and by RUN/STEP/PORT, the same artifact.
    let by_digest = ok(in_store(
        &store,
        &["artifacts", "show", &stats[7..17], "--json"],
    ))
    .json();
    let by_output = ok(in_store(
        &store,
        &[
            "artifacts",
            "show",
            &format!("{}/stats/statistics", &run_id[..17]),
            "--json",
        ],
    ))
    .json();
    assert_eq!(by_digest, by_output);
    assert_eq!(by_digest["digest"], stats.as_str());
    assert_eq!(by_digest["kind"], "statistics");
    assert_eq!(by_digest["present"], true);
    let path = PathBuf::from(by_digest["path"].as_str().unwrap());
    assert_eq!(
        Digest::of(&std::fs::read(&path).unwrap()).to_string(),
        stats
    );
    assert_eq!(by_digest["producers"][0]["step"], "stats");
    assert_eq!(by_digest["producers"][0]["port"], "statistics");
    assert!(by_digest["consumers"].as_array().unwrap().is_empty());
    assert!(
        by_digest["preview"]
            .as_str()
            .unwrap()
            .contains("\"counts\": [1, 1, 1, 1],"),
        "{by_digest:#}"
    );
    // The table is consumed by both statistics steps.
    let shown = ok(in_store(
        &store,
        &["artifacts", "show", "latest/ingest/data", "--json"],
    ))
    .json();
    assert_eq!(shown["digest"], table.as_str());
    let mut consumers: Vec<&str> = shown["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["step"].as_str().unwrap())
        .collect();
    consumers.sort();
    assert_eq!(consumers, ["coarse", "stats"]);
    assert!(shown["preview"].is_null(), "tables are not previewed");
    let text = ok(in_store(&store, &["artifacts", "show", &stats[7..19]])).stdout;
    assert!(text.contains(&format!("artifact {stats}")), "{text}");
    assert!(text.contains("produced by:"), "{text}");
    assert!(text.contains("preview:"), "{text}");

    // export: bytes whose SHA-256 is the digest, to a file or stdout.
    let out = p.dir.path().join("stats.json");
    ok(in_store(
        &store,
        &[
            "artifacts",
            "export",
            &stats[7..19],
            "-o",
            out.to_str().unwrap(),
        ],
    ));
    assert_eq!(Digest::of(&std::fs::read(&out).unwrap()).to_string(), stats);
    let piped = sluice()
        .args(["artifacts", "export", "latest/ingest/data", "--output", "-"])
        .args(["--store", store.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert_eq!(Digest::of(&piped.stdout).to_string(), table);
    assert_eq!(&piped.stdout[..4], b"PAR1");

    // Unknown, malformed and ambiguous references: exit 2, saying why.
    let r = in_store(&store, &["artifacts", "show", "0000000000ff"]);
    if !stats[7..].starts_with("0000000000ff") {
        assert_eq!(r.code, 2);
        assert!(r.stderr.contains("no artifact"), "{}", r.stderr);
        assert!(r.stderr.contains("sluice artifacts list"), "{}", r.stderr);
    }
    let r = in_store(&store, &["artifacts", "show", "not-a-ref"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("neither a digest"), "{}", r.stderr);
    let r = in_store(&store, &["artifacts", "show", "latest/nope/statistics"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no step `nope`"), "{}", r.stderr);
    let r = in_store(&store, &["artifacts", "show", "latest/stats/nope"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("no output `nope`; its outputs: statistics"),
        "{}",
        r.stderr
    );
    let r = in_store(&store, &["lineage", "latest/stats/nope"]);
    assert_eq!(r.code, 2);

    // Record a second artifact whose digest shares the first three hex
    // characters with the statistics: that prefix is now ambiguous.
    let twin = (0u32..)
        .map(|i| Digest::of(format!("twin {i}").as_bytes()))
        .find(|d| d.to_hex()[..3] == stats[7..10] && d.to_string() != stats)
        .unwrap();
    {
        let s = sluice_store::Store::open(&store).unwrap();
        s.metadata
            .start_run(
                "twin-run",
                "twin",
                "t.toml",
                &twin,
                "manual",
                "2000-01-01",
                None,
            )
            .unwrap();
        s.metadata
            .record_import(
                "twin-run",
                "twin",
                "twin.bin",
                &twin,
                "file",
                1,
                "2000-01-01",
            )
            .unwrap();
    }
    for cmd in ["show", "export"] {
        let mut args = vec!["artifacts", cmd, &stats[7..10]];
        if cmd == "export" {
            args.extend(["-o", "-"]);
        }
        let r = in_store(&store, &args);
        assert_eq!(r.code, 2, "{cmd}");
        assert!(r.stderr.contains("is ambiguous"), "{}", r.stderr);
        assert!(r.stderr.contains(&stats[7..]), "{}", r.stderr);
        assert!(r.stderr.contains(&twin.to_hex()), "{}", r.stderr);
        assert!(r.stdout.is_empty());
    }
    let r = in_store(&store, &["lineage", &stats[7..10]]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("is ambiguous"), "{}", r.stderr);
}

#[test]
fn gc_removes_only_unreferenced_old_objects_and_the_cache_still_hits() {
    let p = project();
    let store = store_of(&p);
    let first = run_pipeline(&p);
    let referenced = object_files(&store);
    assert_eq!(referenced.len(), 4, "{referenced:?}");

    let hour = Duration::from_secs(3600);
    let (orphan, orphan_path) = plant_object(&store, b"nobody names these bytes", 2 * hour);
    let (young, young_path) = plant_object(&store, b"a run is recording these", Duration::ZERO);
    let tmp = orphan_path.parent().unwrap().join(".tmp-4242-7");
    std::fs::write(&tmp, b"half-written").unwrap();
    set_age(&tmp, 2 * hour);
    let fresh_tmp = orphan_path.parent().unwrap().join(".tmp-4242-8");
    std::fs::write(&fresh_tmp, b"being written").unwrap();

    // Dry run: lists the orphan and the stale temporary, removes nothing.
    let before = object_files(&store);
    let dry = ok(in_store(&store, &["gc", "--dry-run", "--json"])).json();
    assert_eq!(dry["dry_run"], true);
    let removed = dry["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 2, "{dry:#}");
    assert!(
        removed
            .iter()
            .any(|r| r["kind"] == "object" && r["digest"] == orphan.to_string())
    );
    assert!(
        removed
            .iter()
            .any(|r| r["kind"] == "temporary" && r["path"] == tmp.to_str().unwrap())
    );
    assert_eq!(dry["bytes_freed"], 24 + 12);
    assert_eq!(dry["kept_referenced"], 4);
    assert_eq!(dry["kept_recent"][0]["digest"], young.to_string());
    assert_eq!(object_files(&store), before);
    let text = ok(in_store(&store, &["gc", "--dry-run"])).stdout;
    assert!(text.contains(&format!("would remove {orphan}")), "{text}");
    assert!(text.contains("would free 36 B"), "{text}");
    assert!(text.contains("nothing was removed"), "{text}");
    assert_eq!(object_files(&store), before);

    // While a live run holds its lock, gc does nothing unless forced.
    {
        let s = sluice_store::Store::open(&store).unwrap();
        s.metadata
            .start_run(
                "live-run",
                "lineage",
                "p.toml",
                &orphan,
                "manual",
                "2000-01-01",
                None,
            )
            .unwrap();
        let _lock = s.lock_run("live-run").unwrap();
        let r = ok(in_store(&store, &["gc"]));
        assert!(r.stdout.contains("gc skipped"), "{}", r.stdout);
        assert!(r.stdout.contains("live-run"), "{}", r.stdout);
        assert_eq!(object_files(&store), before);
        let forced = ok(in_store(&store, &["gc", "--force", "--dry-run", "--json"])).json();
        assert_eq!(forced["removed"].as_array().unwrap().len(), 2);
        s.metadata
            .finish_run(
                "live-run",
                sluice_store::metadata::RunState::Failed,
                "2000-01-01",
            )
            .unwrap();
    }

    // gc: the orphan and the stale temporary go; everything referenced,
    // the young orphan and the fresh temporary stay.
    let done = ok(in_store(&store, &["gc", "--json"])).json();
    assert_eq!(done["dry_run"], false);
    assert_eq!(done["removed"].as_array().unwrap().len(), 2);
    assert_eq!(done["bytes_freed"], 36);
    assert!(!orphan_path.exists());
    assert!(!tmp.exists());
    assert!(young_path.exists());
    assert!(fresh_tmp.exists());
    for f in &referenced {
        assert!(f.exists(), "{} was removed", f.display());
    }
    let again = ok(in_store(&store, &["gc"])).stdout;
    assert!(again.contains("freed 0 B in 0 object(s)"), "{again}");

    // The cache still hits, with the same outputs.
    let second = run_pipeline(&p);
    for s in ["ingest", "stats", "coarse"] {
        assert_eq!(step(&second, s)["state"], "cached", "{s}");
        assert_eq!(output_digest(&second, s), output_digest(&first, s));
    }
}
