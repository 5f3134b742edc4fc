//! sluice-ml's tree trainers against scikit-learn's, on the same rows, and
//! their ONNX exports against onnxruntime.

use serde_json::{Value, json};
use sluice_ml::{Algorithm, Dataset, Model, Prediction, TrainParams, train};

use crate::{breast_cancer, diabetes, python_has, repo_path};

/// Every fifth row for testing, the rest for training.
fn split(data: &Dataset) -> (Dataset, Dataset) {
    let n = data.features.rows();
    let test: Vec<usize> = (0..n).filter(|i| i % 5 == 0).collect();
    let train: Vec<usize> = (0..n).filter(|i| i % 5 != 0).collect();
    (data.select(&train), data.select(&test))
}

fn rows(d: &Dataset) -> Vec<Vec<f64>> {
    (0..d.features.rows())
        .map(|i| d.features.row(i).to_vec())
        .collect()
}

fn targets(d: &Dataset) -> Value {
    match &d.target {
        sluice_ml::Target::Classes { indices, .. } => json!(indices),
        sluice_ml::Target::Values(v) => json!(v),
    }
}

/// Accuracy or R² of a native prediction.
fn score(p: &Prediction, d: &Dataset) -> f64 {
    match (p, &d.target) {
        (Prediction::Classes { labels, .. }, sluice_ml::Target::Classes { indices, .. }) => {
            labels.iter().zip(indices).filter(|(a, b)| a == b).count() as f64 / indices.len() as f64
        }
        (Prediction::Values(v), sluice_ml::Target::Values(y)) => {
            let mean = y.iter().sum::<f64>() / y.len() as f64;
            let ss_res: f64 = v.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum();
            let ss_tot: f64 = y.iter().map(|b| (b - mean).powi(2)).sum();
            1.0 - ss_res / ss_tot
        }
        _ => panic!("prediction and target differ in kind"),
    }
}

#[test]
fn tree_models_match_scikit_learn_and_onnxruntime_runs_their_exports() {
    let cases = [
        (
            "gbc",
            Algorithm::GradientBoostingClassifier,
            breast_cancer(),
            0.03,
        ),
        (
            "rfc",
            Algorithm::RandomForestClassifier,
            breast_cancer(),
            0.03,
        ),
        (
            "gbr",
            Algorithm::GradientBoostingRegressor,
            diabetes(),
            0.08,
        ),
        ("rfr", Algorithm::RandomForestRegressor, diabetes(), 0.08),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut spec = serde_json::Map::new();
    let mut ours = Vec::new();
    for (name, algorithm, data, _) in &cases {
        let (tr, te) = split(data);
        let trained = train(&tr, &TrainParams::defaults(*algorithm)).unwrap();
        // Deterministic: the same rows and seed give the same bytes.
        assert_eq!(
            trained.onnx,
            train(&tr, &TrainParams::defaults(*algorithm)).unwrap().onnx,
            "{name}"
        );
        let native = trained.native.predict(&te.features).unwrap();
        let importances = trained.native.feature_importances().unwrap();
        assert_eq!(importances.len(), te.features.cols());
        assert!((importances.iter().sum::<f64>() - 1.0).abs() < 1e-9);

        // tract (with sluice's tree evaluator) runs the export as natively.
        let model = Model::from_onnx(&trained.onnx).unwrap();
        let x: Vec<f32> = te.features.as_slice().iter().map(|v| *v as f32).collect();
        let out = model
            .predict(&x, te.features.rows(), te.features.cols())
            .unwrap();
        match &native {
            Prediction::Classes {
                labels,
                probabilities,
            } => {
                let p = out.get("probabilities").unwrap().as_f32().unwrap();
                for (a, b) in p.iter().zip(probabilities.as_slice()) {
                    assert!((f64::from(*a) - b).abs() < 1e-4, "{name}: {a} vs {b}");
                }
                let l = out.get("label").unwrap().as_i64().unwrap();
                let agree = l
                    .iter()
                    .zip(labels)
                    .filter(|(a, b)| **a as usize == **b)
                    .count();
                assert!(agree + 1 >= labels.len(), "{name}: {agree} labels agree");
            }
            Prediction::Values(v) => {
                let got = out.get("variable").unwrap().as_f32().unwrap();
                for (a, b) in got.iter().zip(v) {
                    assert!(
                        (f64::from(*a) - b).abs() < 1e-3 * b.abs().max(1.0),
                        "{name}"
                    );
                }
            }
        }
        let file = format!("{name}.onnx");
        std::fs::write(dir.path().join(&file), &trained.onnx).unwrap();
        spec.insert(
            name.to_string(),
            json!({
                "algorithm": algorithm.name(),
                "train_x": rows(&tr), "train_y": targets(&tr),
                "test_x": rows(&te), "test_y": targets(&te),
                "onnx": file,
            }),
        );
        ours.push((score(&native, &te), out));
    }

    if !python_has(
        "sklearn, onnxruntime",
        "pip install scikit-learn onnxruntime",
    ) {
        return;
    }
    std::fs::write(
        dir.path().join("cases.json"),
        serde_json::to_vec(&spec).unwrap(),
    )
    .unwrap();
    let run = std::process::Command::new("python3")
        .arg(repo_path("host/ml/tests/data/compare_trees.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let answers: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("answers.json")).unwrap()).unwrap();
    for ((name, _, _, tolerance), (ours, out)) in cases.iter().zip(&ours) {
        let theirs = answers[name]["sklearn_score"].as_f64().unwrap();
        eprintln!("{name}: sluice {ours:.4}, scikit-learn {theirs:.4}");
        assert!(
            *ours >= theirs - tolerance,
            "{name}: sluice scores {ours}, scikit-learn {theirs}"
        );
        // onnxruntime computes what tract computes from the same file.
        for (output, values) in answers[name]["onnxruntime"].as_object().unwrap() {
            let want: Vec<f64> = values
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|v| match v {
                    Value::Array(a) => a.iter().map(|x| x.as_f64().unwrap()).collect(),
                    x => vec![x.as_f64().unwrap()],
                })
                .collect();
            let got: Vec<f64> = match out.get(output).unwrap() {
                t if t.as_f32().is_some() => {
                    t.as_f32().unwrap().iter().map(|v| f64::from(*v)).collect()
                }
                t => t.as_i64().unwrap().iter().map(|v| *v as f64).collect(),
            };
            assert_eq!(got.len(), want.len(), "{name}.{output}");
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{name}.{output}: tract {a}, onnxruntime {b}"
                );
            }
        }
    }
}
