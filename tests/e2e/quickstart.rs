//! The quickstart pipeline, as a newcomer runs it.

use crate::support::*;

#[test]
fn quickstart_computes_the_iris_statistics() {
    let store = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/quickstart/pipeline.toml");
    let r = run(&[
        "run",
        spec.to_str().unwrap(),
        "--store",
        store.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();
    assert_eq!(report["state"], "succeeded");
    assert_eq!(report["pipeline"], "quickstart");
    assert_eq!(step(&report, "ingest")["metrics"]["rows"], 150.0);
    assert_eq!(step(&report, "ingest")["metrics"]["columns"], 5.0);

    let stats: serde_json::Value =
        serde_json::from_slice(&output_bytes(&report, "stats", "statistics")).unwrap();
    assert_eq!(stats["num_rows"], 150);
    let sepal = &stats["columns"][0];
    assert_eq!(sepal["name"], "sepal_length");
    assert_eq!(sepal["dtype"], "float64");
    assert_eq!(sepal["count"], 150);
    assert_eq!(sepal["missing"], 0);
    let num = &sepal["numeric"];
    assert!((num["mean"].as_f64().unwrap() - 5.843_333_333_333_333).abs() < 1e-12);
    assert!((num["std"].as_f64().unwrap() - 0.828_066_127_977_863).abs() < 1e-12);
    assert_eq!(num["min"], 4.3);
    assert_eq!(num["max"], 7.9);
    assert_eq!(num["quantiles"][1]["value"], 5.8);
    let counts: u64 = num["histogram"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(counts, 150);
    let species = &stats["columns"][4];
    assert_eq!(species["dtype"], "utf8");
    assert_eq!(species["categorical"]["distinct"], 3);
    assert_eq!(species["categorical"]["top"][0]["count"], 50);

    // The table went to the store as Parquet, the run into its metadata.
    let table = output_bytes(&report, "ingest", "data");
    assert_eq!(&table[..4], b"PAR1");
    let run_id = report["run_id"].as_str().unwrap();
    let store_dir = store.path().to_str().unwrap();
    let shown = run(&["runs", "show", run_id, "--json", "--store", store_dir]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let shown = shown.json();
    assert_eq!(shown["run"]["state"], "succeeded");
    assert_eq!(shown["steps"][1]["step"], "stats");
    assert_eq!(shown["steps"][1]["events"][0]["direction"], "output");
    assert_eq!(shown["steps"][1]["events"][1]["source"], "ingest.data");
}

#[test]
fn rerunning_gives_identical_artifacts() {
    let store = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/quickstart/pipeline.toml");
    let args = [
        "run",
        spec.to_str().unwrap(),
        "--store",
        store.path().to_str().unwrap(),
        "--json",
    ];
    let a = run(&args).json();
    let b = run(&args).json();
    for (s, port) in [("ingest", "data"), ("stats", "statistics")] {
        assert_eq!(
            step(&a, s)["outputs"][0]["digest"],
            step(&b, s)["outputs"][0]["digest"],
            "{s}.{port} differs between runs"
        );
    }
    assert_ne!(a["run_id"], b["run_id"]);
}

#[test]
fn human_output_has_a_summary_table() {
    let store = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/quickstart/pipeline.toml");
    let r = run(&[
        "run",
        spec.to_str().unwrap(),
        "--store",
        store.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let header = r
        .stdout
        .lines()
        .find(|l| l.starts_with("STEP"))
        .expect("summary header");
    for col in ["STATE", "DURATION", "OUTPUTS"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        r.stdout.lines().any(|l| l.starts_with("ingest")
            && l.contains("succeeded")
            && l.contains("data: table"))
    );
    assert!(r.stdout.contains("run ") && r.stdout.contains(" succeeded in "));
    // Not a terminal: progress comes as plain lines on stderr.
    assert!(
        r.stderr.contains("running   stats (std:statistics)"),
        "{}",
        r.stderr
    );
}

#[test]
fn malformed_csv_stops_the_pipeline_naming_the_line() {
    let p = Project::new(
        r#"
[pipeline]
name = "bad-csv"
[data]
raw = "bad.csv"
[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.raw" }
[steps.stats]
component = "std:statistics"
inputs = { data = "ingest.data" }
"#,
    );
    p.write("bad.csv", "a,b,c\n1,2,3\n4,5\n6,7,8\n");
    let r = p.run_json();
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report = r.json();
    let ingest = step(&report, "ingest");
    assert_eq!(ingest["state"], "failed");
    assert_eq!(ingest["failure"]["reason"], "invalid-input");
    assert_eq!(
        ingest["failure"]["detail"],
        "data.raw, line 3: expected 3 fields but found 2 (as many as the header has); a field holding the delimiter must be in double quotes"
    );
    let stats = step(&report, "stats");
    assert_eq!(stats["state"], "skipped");
    assert!(
        stats["message"]
            .as_str()
            .unwrap()
            .contains("upstream step `ingest`")
    );
}

#[test]
fn csv_type_inference_handles_missing_values() {
    let p = Project::new(
        r#"
[pipeline]
name = "types"
[data]
raw = "t.csv"
[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.raw" }
[steps.stats]
component = "std:statistics"
inputs = { data = "ingest.data" }
"#,
    );
    p.write(
        "t.csv",
        "n,x,flag,name\n1,1.5,true,a\n2,NA,false,b\n3,2.5,,\n",
    );
    let r = p.run_json();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();
    let stats: serde_json::Value =
        serde_json::from_slice(&output_bytes(&report, "stats", "statistics")).unwrap();
    let dtypes: Vec<_> = stats["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["dtype"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(dtypes, ["int64", "float64", "boolean", "utf8"]);
    assert_eq!(stats["columns"][1]["missing"], 1);
    assert_eq!(stats["columns"][1]["numeric"]["mean"], 2.0);
    assert_eq!(stats["columns"][2]["missing"], 1);
    assert_eq!(stats["columns"][0]["numeric"]["max"], 3.0);
}
