//! Drift in one place: `std:validate` (from two statistics documents, in a
//! pipeline) and `sluice monitor`'s drift (from raw rows, on the host) give
//! the same score for the same shifted data, because both are
//! `sluice-drift` on the same summaries.

use crate::support::*;
use serde_json::Value;
use sluice_monitor::drift::{Thresholds, Values, compare};
use std::collections::BTreeMap;

/// The columns of a CSV file of numbers and one text column (the examples'
/// `diagnosis`), by name, as the monitor reads them.
fn read_csv(path: &std::path::Path) -> BTreeMap<String, Values> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').collect())
        .collect();
    header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let cells: Vec<&str> = rows.iter().map(|r| r[i]).collect();
            let values = if cells.iter().all(|c| c.parse::<f64>().is_ok()) {
                Values::Numeric(cells.iter().map(|c| c.parse().ok()).collect())
            } else {
                Values::Categorical(cells.iter().map(|c| Some(c.to_string())).collect())
            };
            (name.to_string(), values)
        })
        .collect()
}

#[test]
fn validate_and_monitor_give_the_same_drift_for_the_same_shift() {
    let store = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/drift/pipeline.toml");
    let r = run(&[
        "run",
        spec.to_str().unwrap(),
        "--store",
        store.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let anomalies: Value =
        serde_json::from_slice(&output_bytes(&report, "validate", "anomalies")).unwrap();
    let data = repo().join("examples/drift/data");
    let reference = read_csv(&data.join("reference.csv"));
    let shifted = read_csv(&data.join("shifted.csv"));
    let drift = anomalies["drift"].as_object().unwrap();
    assert_eq!(drift.len(), reference.len(), "{anomalies:#}");
    let t = Thresholds::default();
    let mut numeric = 0;
    for (name, d) in drift {
        let m = compare(name, &reference[name], &shifted[name], &t);
        let validate = d["score"].as_f64().unwrap();
        assert!(
            (validate - m.score).abs() < 1e-9,
            "{name}: std:validate {validate} vs monitor {}",
            m.score
        );
        let measure = if m.kind == "numeric" {
            numeric += 1;
            "jensen_shannon"
        } else {
            "l_infinity"
        };
        assert_eq!(d["measure"], measure, "{name}");
    }
    assert!(numeric >= 30, "{numeric} numeric columns compared");
    // The recalibrated column drifts on both paths; the default thresholds
    // are the same (the example's schema raises the numeric one to 0.15).
    let texture = compare(
        "mean_texture",
        &reference["mean_texture"],
        &shifted["mean_texture"],
        &t,
    );
    assert!(texture.drifted && drift["mean_texture"]["drifted"] == true);
    assert_eq!(t.numeric, sluice_monitor::DEFAULT_NUMERIC_THRESHOLD);
}
