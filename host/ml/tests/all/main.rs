//! The integration tests of sluice-ml, in one binary (tract makes every test
//! binary slow to link).

mod export;
mod metrics;
mod training;
mod trees;
mod user_models;

use std::path::PathBuf;

use sluice_ml::{Dataset, Matrix, Target, Task};

/// A path relative to the repository root.
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// Whether python3 can import `modules` (comma-separated); otherwise a
/// notice and `false`, or, with `SLUICE_REQUIRE_CLIENTS=1`, a failure.
pub fn python_has(modules: &str, install: &str) -> bool {
    let probe = std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output();
    if probe.is_ok_and(|o| o.status.success()) {
        return true;
    }
    if std::env::var("SLUICE_REQUIRE_CLIENTS").is_ok_and(|v| v == "1") {
        panic!("SLUICE_REQUIRE_CLIENTS=1 but python3 cannot import {modules} ({install})");
    }
    eprintln!("NOTICE: skipping a comparison: python3 cannot import {modules} ({install})");
    false
}

/// A JSON file of `tests/data`.
pub fn test_json(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A JSON array of numbers.
pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// A JSON array of arrays of numbers, as a matrix.
pub fn matrix(v: &serde_json::Value) -> Matrix {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(floats).collect();
    Matrix::from_rows(&rows).unwrap()
}

/// The committed breast-cancer data (569 × 30, `diagnosis`).
pub fn breast_cancer() -> Dataset {
    let text = std::fs::read_to_string(repo_path("examples/breast-cancer/data/breast_cancer.csv"))
        .unwrap();
    Dataset::from_csv(&text, "diagnosis", Task::Classification).unwrap()
}

/// Breast cancer standardised with scikit-learn's `StandardScaler` means and
/// scales (recorded in the reference JSON).
pub fn breast_cancer_standardised() -> Dataset {
    let reference = test_json("logistic_reference.json");
    let bc = &reference["breast_cancer"];
    let (mean, scale) = (floats(&bc["scaler_mean"]), floats(&bc["scaler_scale"]));
    let mut data = breast_cancer();
    let cols = data.features.cols();
    for row in data.features.as_mut_slice().chunks_exact_mut(cols) {
        for ((v, m), s) in row.iter_mut().zip(&mean).zip(&scale) {
            *v = (*v - m) / s;
        }
    }
    data
}

/// The committed diabetes data (442 × 10, `progression`).
pub fn diabetes() -> Dataset {
    let text = std::fs::read_to_string(repo_path("examples/diabetes/data/diabetes.csv")).unwrap();
    Dataset::from_csv(&text, "progression", Task::Regression).unwrap()
}

/// The class indices of a classification dataset.
pub fn class_indices(d: &Dataset) -> &[usize] {
    match &d.target {
        Target::Classes { indices, .. } => indices,
        Target::Values(_) => panic!("not a classification dataset"),
    }
}

/// A seeded split into (train, test) rows: every `k`-th row is a test row.
pub fn split(d: &Dataset, k: usize) -> (Dataset, Dataset) {
    let test: Vec<usize> = (0..d.len()).filter(|i| i % k == 0).collect();
    let train: Vec<usize> = (0..d.len()).filter(|i| i % k != 0).collect();
    (d.select(&train), d.select(&test))
}
