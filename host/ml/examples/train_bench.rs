//! Times sluice-ml's tree trainers on a float32 matrix, for
//! bench/ml/trees.py, which times scikit-learn and LightGBM on the same
//! rows:
//!
//!     train_bench X.f32 Y.f32 ROWS COLS TEST_ROWS ALGORITHM PARAMS_JSON
//!
//! Trains on the first ROWS − TEST_ROWS rows, scores the rest (accuracy
//! for classifiers, R² for regressors; class labels are the integers in
//! Y) and prints one JSON line: seconds, score, trees.

use std::time::Instant;

use sluice_ml::{Algorithm, Dataset, Matrix, NativeModel, Prediction, Target, TrainParams, train};

fn read_f32(path: &str) -> Vec<f32> {
    std::fs::read(path)
        .expect("read")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 8 {
        eprintln!("usage: train_bench X.f32 Y.f32 ROWS COLS TEST_ROWS ALGORITHM PARAMS_JSON");
        std::process::exit(2);
    }
    let (x, y) = (read_f32(&a[1]), read_f32(&a[2]));
    let rows: usize = a[3].parse().unwrap();
    let cols: usize = a[4].parse().unwrap();
    let test: usize = a[5].parse().unwrap();
    let algorithm: Algorithm = a[6].parse().unwrap();
    let params = TrainParams::from_json(algorithm, &a[7]).unwrap();
    let train_rows = rows - test;
    let x = Matrix::from_f32(rows, cols, &x).unwrap();
    let names: Vec<String> = (0..cols).map(|i| format!("x{i}")).collect();
    let target = |range: std::ops::Range<usize>| {
        if algorithm.is_classifier() {
            let k = y.iter().fold(0f32, |m, v| m.max(*v)) as usize + 1;
            Target::Classes {
                classes: (0..k).map(|c| c.to_string()).collect(),
                indices: y[range].iter().map(|v| *v as usize).collect(),
            }
        } else {
            Target::Values(y[range].iter().map(|v| f64::from(*v)).collect())
        }
    };
    let all: Vec<usize> = (0..rows).collect();
    let data = Dataset::new(
        x.select_rows(&all[..train_rows]),
        names.clone(),
        target(0..train_rows),
    )
    .unwrap();
    let test_x = x.select_rows(&all[train_rows..]);
    let start = Instant::now();
    let trained = train(&data, &params).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let prediction = trained.native.predict(&test_x).unwrap();
    let score = match (&prediction, target(train_rows..rows)) {
        (Prediction::Classes { labels, .. }, Target::Classes { indices, .. }) => {
            labels.iter().zip(&indices).filter(|(a, b)| a == b).count() as f64 / test as f64
        }
        (Prediction::Values(v), Target::Values(t)) => {
            let mean = t.iter().sum::<f64>() / t.len() as f64;
            let res: f64 = v.iter().zip(&t).map(|(a, b)| (a - b).powi(2)).sum();
            let tot: f64 = t.iter().map(|b| (b - mean).powi(2)).sum();
            1.0 - res / tot
        }
        _ => unreachable!(),
    };
    let trees = match &trained.native {
        NativeModel::Trees(m) => m.trees.len(),
        _ => 0,
    };
    println!(
        "{}",
        serde_json::json!({"seconds": seconds, "score": score, "trees": trees})
    );
}
