//! `ml-bench`: the native ML backend (`sluice-ml`) on the breast-cancer data.
//!
//! 1. **training time** of logistic regression and of the MLP classifier,
//!    with the hyperparameters `bench/ml/compare.py` gives scikit-learn;
//! 2. **inference throughput** of tract on the exported logistic and MLP
//!    ONNX files, at batch sizes 1 and 569 (the whole data set).
//!
//! Writes into the output folder what the comparison needs: `rust.json`
//! (the numbers), `logistic.onnx` and `mlp.onnx`, `input.f32` (the
//! standardised features, row-major little-endian float32) and the
//! probabilities tract computed for them (`<model>.probabilities.f32`), so
//! that compare.py also checks that onnxruntime loads the exported models
//! and agrees with tract.
//!
//! Run through `bench/ml/run.sh`, or:
//! `cargo run --release -p sluice-bench --bin ml-bench -- OUT_DIR`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_ml::{Algorithm, Dataset, Model, Task, TrainParams, train};

/// Logistic regression as compare.py runs scikit-learn's: C = 1, lbfgs's
/// default tolerance (1e-4 on the largest gradient component) and
/// iteration cap.
const LOGISTIC: &str = r#"{"C": 1.0, "tol": 1e-4, "max_iter": 100}"#;
/// scikit-learn's `MLPClassifier` defaults, spelled out.
const MLP: &str = r#"{"hidden_layers": [100], "learning_rate": 0.001, "epochs": 200,
    "batch_size": 200, "l2": 0.0001, "tol": 0.0001, "n_iter_no_change": 10, "seed": 0}"#;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median wall time of `reps` runs of `f`.
fn time_it<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(reps);
    let mut last = None;
    for _ in 0..reps {
        let start = Instant::now();
        let out = f();
        times.push(start.elapsed());
        last = Some(out);
    }
    (median(times), last.expect("reps ≥ 1"))
}

/// Time per call and rows per second of `model.predict` on the first
/// `rows` rows: the fastest of five windows of 200 ms after a warm-up (the
/// least disturbed by whatever else the machine runs; compare.py measures
/// onnxruntime the same way).
fn throughput(model: &Model, x: &[f32], rows: usize, cols: usize) -> serde_json::Value {
    let input = &x[..rows * cols];
    for _ in 0..20 {
        model.predict(input, rows, cols).unwrap();
    }
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < Duration::from_millis(200) || calls < 10 {
            std::hint::black_box(model.predict(input, rows, cols).unwrap());
            calls += 1;
        }
        best = best.min(start.elapsed().as_secs_f64() / calls as f64);
    }
    json!({
        "batch": rows,
        "us_per_call": best * 1e6,
        "rows_per_s": rows as f64 / best,
    })
}

fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/ml-bench".into()),
    );
    std::fs::create_dir_all(&out).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let csv = std::fs::read_to_string(repo.join("examples/breast-cancer/data/breast_cancer.csv"))
        .unwrap();
    let mut data = Dataset::from_csv(&csv, "diagnosis", Task::Classification).unwrap();
    // Standardise (population standard deviation, like StandardScaler).
    let (n, f) = (data.features.rows(), data.features.cols());
    for j in 0..f {
        let mean = (0..n).map(|i| data.features.get(i, j)).sum::<f64>() / n as f64;
        let var = (0..n)
            .map(|i| (data.features.get(i, j) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        for i in 0..n {
            let v = &mut data.features.row_mut(i)[j];
            *v = (*v - mean) / var.sqrt();
        }
    }

    let logistic = TrainParams::from_json(Algorithm::LogisticRegression, LOGISTIC).unwrap();
    let logistic_tight = TrainParams::from_json(Algorithm::LogisticRegression, "{}").unwrap();
    let mlp = TrainParams::from_json(Algorithm::MlpClassifier, MLP).unwrap();

    let (t_log, m_log) = time_it(50, || train(&data, &logistic).unwrap());
    let (t_log_tight, m_log_tight) = time_it(50, || train(&data, &logistic_tight).unwrap());
    let (t_mlp, m_mlp) = time_it(5, || train(&data, &mlp).unwrap());
    eprintln!(
        "train: logistic {:.3} ms ({} iterations), tight {:.3} ms, MLP {:.1} ms ({} epochs)",
        t_log.as_secs_f64() * 1e3,
        m_log.loss_history.len() - 1,
        t_log_tight.as_secs_f64() * 1e3,
        t_mlp.as_secs_f64() * 1e3,
        m_mlp.loss_history.len()
    );

    let x = data.features.to_f32();
    write_f32(&out.join("input.f32"), &x);
    let mut inference = serde_json::Map::new();
    for (name, trained) in [("logistic", &m_log), ("mlp", &m_mlp)] {
        std::fs::write(out.join(format!("{name}.onnx")), &trained.onnx).unwrap();
        let model = Model::from_onnx(&trained.onnx).unwrap();
        let probs = model.predict(&x, n, f).unwrap();
        write_f32(
            &out.join(format!("{name}.probabilities.f32")),
            probs.get("probabilities").unwrap().as_f32().unwrap(),
        );
        let rows: Vec<_> = [1, n]
            .into_iter()
            .map(|b| throughput(&model, &x, b, f))
            .collect();
        eprintln!("tract {name}: {rows:?}");
        inference.insert(name.into(), rows.into());
    }

    let report = json!({
        "rows": n,
        "features": f,
        "train": {
            "logistic": {
                "params": LOGISTIC,
                "median_s": t_log.as_secs_f64(),
                "iterations": m_log.loss_history.len() - 1,
                "final_loss": m_log.loss_history.last(),
            },
            "logistic_tol_1e-8": {
                "median_s": t_log_tight.as_secs_f64(),
                "iterations": m_log_tight.loss_history.len() - 1,
            },
            "mlp": {
                "params": MLP,
                "median_s": t_mlp.as_secs_f64(),
                "epochs": m_mlp.loss_history.len(),
                "final_loss": m_mlp.loss_history.last(),
            },
        },
        "inference": inference,
    });
    std::fs::write(
        out.join("rust.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    println!("{}", out.join("rust.json").display());
}
