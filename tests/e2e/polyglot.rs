//! `examples/polyglot`: its Python and JavaScript steps built from source
//! with `sluice component build`, the pipeline (Rust, Python, Rust,
//! JavaScript) run through the binary with its outputs checked against the
//! data, and a second run taken from the step cache for every step.
//!
//! Needs componentize-py and node with sdk/js's npm packages; see
//! `new_build::toolchain` for what happens when they are missing.

use crate::new_build::{build, toolchain};
use crate::support::*;

/// Mean of `f(row)` over the iris CSV, computed here, independently of sluice.
fn iris_mean(f: impl Fn(&[f64]) -> f64) -> f64 {
    let csv = std::fs::read_to_string(repo().join("examples/polyglot/data/iris.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "sepal_length,sepal_width,petal_length,petal_width,species"
    );
    let rows: Vec<Vec<f64>> = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').take(4).map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 150);
    rows.iter().map(|r| f(r)).sum::<f64>() / rows.len() as f64
}

#[test]
fn the_polyglot_example_builds_from_source_runs_and_hits_the_cache_on_a_second_run() {
    // Both checks first: in CI each must fail loudly.
    let (python, js) = (toolchain("python"), toolchain("js"));
    if !(python && js) {
        return;
    }
    let example = repo().join("examples/polyglot");
    let tmp = tempfile::tempdir().unwrap();
    let features = build(
        &example.join("steps/features"),
        &[
            "--out",
            tmp.path().join("build/features.wasm").to_str().unwrap(),
        ],
    );
    let report_wasm = build(
        &example.join("steps/report"),
        &[
            "--out",
            tmp.path().join("build/report.wasm").to_str().unwrap(),
        ],
    );
    assert!(features.ends_with("build/features.wasm"));
    assert!(report_wasm.ends_with("build/report.wasm"));

    // The example's own spec, its data file named by absolute path; the
    // components (`./build/*.wasm`) resolve next to the copy.
    let spec = std::fs::read_to_string(example.join("pipeline.toml")).unwrap();
    assert!(spec.contains("\"data/iris.csv\""), "{spec}");
    let p = Project::new(&spec.replace(
        "\"data/iris.csv\"",
        &format!("\"{}\"", example.join("data/iris.csv").display()),
    ));
    std::fs::rename(tmp.path().join("build"), p.dir.path().join("build")).unwrap();

    let first = p.run_json();
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let first = first.json();
    assert_eq!(first["state"], "succeeded");
    for s in ["ingest", "features", "stats", "report"] {
        assert_eq!(step(&first, s)["state"], "succeeded", "{s}: {first:#}");
    }

    // Python: every input column plus the two derived ones, 150 rows.
    let features = step(&first, "features");
    assert_eq!(features["metrics"]["rows"], 150.0);
    let table =
        sluice_runtime::table::from_parquet(output_bytes(&first, "features", "features")).unwrap();
    let names: Vec<String> = table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "sepal_length",
            "sepal_width",
            "petal_length",
            "petal_width",
            "species",
            "petal_area",
            "sepal_ratio"
        ]
    );
    assert_eq!(table.num_rows(), 150);

    // JavaScript, over Rust's statistics of Python's features: the means
    // equal those computed here from the CSV.
    let summary: serde_json::Value =
        serde_json::from_slice(&output_bytes(&first, "report", "summary")).unwrap();
    assert_eq!(summary["rows"], 150);
    let mean = |c: &str| summary["columns"][c]["mean"].as_f64().unwrap();
    let petal_area = iris_mean(|r| r[2] * r[3]);
    let sepal_ratio = iris_mean(|r| r[0] / r[1]);
    assert!(
        (mean("petal_area") - petal_area).abs() < 1e-9,
        "{summary:#}"
    );
    assert!(
        (mean("sepal_ratio") - sepal_ratio).abs() < 1e-9,
        "{summary:#}"
    );
    assert!((mean("petal_area") - 5.794_066).abs() < 1e-6);
    assert!((mean("sepal_ratio") - 1.953_680).abs() < 1e-6);
    let markdown = String::from_utf8(output_bytes(&first, "report", "report")).unwrap();
    assert!(markdown.starts_with("# Iris features\n"), "{markdown}");
    assert!(markdown.contains("150 rows, 7 columns."), "{markdown}");
    assert!(
        markdown.contains("| petal_area | float64 | 150 | 0 | 5.794 |"),
        "{markdown}"
    );
    assert!(markdown.contains("- **species**: 3 distinct"), "{markdown}");
    // The JavaScript step's SQL, run by the host over Python's SQL output.
    assert_eq!(
        summary["groups"],
        serde_json::json!({"setosa": 50, "versicolor": 50, "virginica": 50}),
        "{summary:#}"
    );
    assert!(
        markdown.contains("## Rows by species\n\n| group | rows |\n|---|---:|\n| setosa | 50 |"),
        "{markdown}"
    );
    assert_eq!(
        step(&first, "report")["logs"][0]["message"],
        "reported on 7 columns"
    );

    // Unchanged pipeline: every step, whatever its language, from the cache,
    // with the same outputs.
    let second = p.run_json();
    assert_eq!(second.code, 0, "{}", second.stderr);
    let second = second.json();
    assert_eq!(second["state"], "succeeded");
    for s in ["ingest", "features", "stats", "report"] {
        let st = step(&second, s);
        assert_eq!(st["state"], "cached", "{s}: {second:#}");
        assert_eq!(st["cached_from"]["run_id"], first["run_id"], "{s}");
        assert_eq!(st["outputs"], step(&first, s)["outputs"], "{s}");
    }
}
