//! Trainers: agreement with scikit-learn, convergence, overfitting tiny
//! samples, determinism.

use sluice_ml::{
    Algorithm, Dataset, Matrix, NativeModel, Prediction, Target, TrainParams, metrics, train,
};

use crate::{
    breast_cancer, breast_cancer_standardised, class_indices, diabetes, floats, matrix, split,
    test_json,
};

fn params(algorithm: Algorithm, json: &str) -> TrainParams {
    TrainParams::from_json(algorithm, json).unwrap()
}

fn linear(m: &NativeModel) -> &sluice_ml::LinearModel {
    match m {
        NativeModel::Linear(l) => l,
        _ => panic!("not linear"),
    }
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn labels(p: &Prediction) -> &[usize] {
    match p {
        Prediction::Classes { labels, .. } => labels,
        Prediction::Values(_) => panic!("not a classifier"),
    }
}

#[test]
fn logistic_matches_sklearn_on_breast_cancer() {
    let reference = test_json("logistic_reference.json");
    let bc = &reference["breast_cancer"];
    let data = breast_cancer_standardised();
    let p = params(Algorithm::LogisticRegression, r#"{"C": 1.0, "tol": 1e-10}"#);
    let trained = train(&data, &p).unwrap();
    assert_eq!(trained.classes, ["benign", "malignant"]);
    assert_eq!(bc["classes"], serde_json::json!(["benign", "malignant"]));
    let m = linear(&trained.native);
    // The exact optimum (scikit-learn's newton-cholesky, tol 1e-14): tight.
    let diff = max_diff(m.coefficients.as_slice(), &floats(&bc["coef_exact"][0]));
    assert!(
        diff < 1e-9,
        "coefficients differ from the optimum by {diff}"
    );
    let di = (m.intercepts[0] - bc["intercept_exact"][0].as_f64().unwrap()).abs();
    assert!(di < 1e-9, "intercept differs from the optimum by {di}");
    // scikit-learn's lbfgs (tol 1e-12) stops about 1e-6 short of it.
    let diff = max_diff(m.coefficients.as_slice(), &floats(&bc["coef"][0]));
    assert!(diff < 1e-5, "coefficients differ from lbfgs by {diff}");
    let di = (m.intercepts[0] - bc["intercept"][0].as_f64().unwrap()).abs();
    assert!(di < 1e-5, "intercept differs from lbfgs by {di}");
    // Newton converges in a handful of iterations, monotonically.
    let h = &trained.loss_history;
    assert!(h.len() < 20, "{h:?}");
    assert!(h.windows(2).all(|w| w[1] <= w[0]), "{h:?}");
    let pred = trained.native.predict(&data.features).unwrap();
    let acc = metrics::accuracy(class_indices(&data), labels(&pred)).unwrap();
    assert!((acc - bc["train_accuracy"].as_f64().unwrap()).abs() < 1e-12);
    if let Prediction::Classes { probabilities, .. } = pred {
        let want = matrix(&bc["proba_first_5"]);
        let got = probabilities.select_rows(&[0, 1, 2, 3, 4]);
        assert!(max_diff(got.as_slice(), want.as_slice()) < 1e-7);
    }
}

#[test]
fn multinomial_logistic_matches_sklearn() {
    let reference = test_json("logistic_reference.json");
    let mn = &reference["multinomial"];
    let x = matrix(&mn["x"]);
    let y: Vec<i64> = mn["y"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let names = (0..x.cols()).map(|i| format!("x{i}")).collect();
    let data = Dataset::new(x, names, Target::classes_from_i64(&y)).unwrap();
    let trained = train(
        &data,
        &params(Algorithm::LogisticRegression, r#"{"C": 0.5, "tol": 1e-10}"#),
    )
    .unwrap();
    let m = linear(&trained.native);
    assert_eq!(m.coefficients.rows(), 3);
    for (coef, intercept, tol) in [
        ("coef_exact", "intercept_exact", 1e-9),
        ("coef", "intercept", 1e-5),
    ] {
        let diff = max_diff(m.coefficients.as_slice(), matrix(&mn[coef]).as_slice());
        assert!(diff < tol, "coefficients differ from {coef} by {diff}");
        let di = max_diff(&m.intercepts, &floats(&mn[intercept]));
        assert!(di < tol, "intercepts differ from {intercept} by {di}");
    }
}

#[test]
fn ridge_and_ols_match_sklearn_on_diabetes() {
    let reference = test_json("ridge_reference.json");
    let data = diabetes();
    for (json, key) in [(r#"{"l2": 1.0}"#, "ridge_alpha_1"), ("{}", "ols")] {
        let trained = train(&data, &params(Algorithm::LinearRegression, json)).unwrap();
        let m = linear(&trained.native);
        let want = floats(&reference[key]["coef"]);
        for (g, w) in m.coefficients.as_slice().iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-8 * w.abs().max(1.0),
                "{key}: {g} vs {w}"
            );
        }
        let wi = reference[key]["intercept"].as_f64().unwrap();
        assert!((m.intercepts[0] - wi).abs() < 1e-7 * wi.abs(), "{key}");
        assert_eq!(trained.loss_history.len(), 1);
    }
}

#[test]
fn breast_cancer_test_accuracy_is_high_for_logistic_and_mlp() {
    let (train_set, test_set) = split(&breast_cancer_standardised(), 5);
    for (algorithm, json) in [
        (Algorithm::LogisticRegression, "{}"),
        (Algorithm::MlpClassifier, r#"{"seed": 1}"#),
    ] {
        let trained = train(&train_set, &params(algorithm, json)).unwrap();
        let pred = trained.native.predict(&test_set.features).unwrap();
        let Prediction::Classes {
            labels,
            probabilities,
        } = pred
        else {
            panic!()
        };
        let m = metrics::classification_metrics(class_indices(&test_set), &probabilities).unwrap();
        assert!(m.accuracy >= 0.95, "{algorithm}: {m:?}");
        assert!(m.roc_auc.unwrap() >= 0.98, "{algorithm}: {m:?}");
        assert_eq!(labels.len(), test_set.len());
    }
}

#[test]
fn mlp_loss_decreases_over_epochs() {
    let data = breast_cancer_standardised();
    let trained = train(
        &data,
        &params(Algorithm::MlpClassifier, r#"{"epochs": 30, "tol": 0}"#),
    )
    .unwrap();
    let h = &trained.loss_history;
    assert_eq!(h.len(), 30);
    assert!(h[29] < 0.5 * h[0], "{h:?}");
    // Epoch to epoch, mostly downhill.
    let ups = h.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(ups <= 3, "{h:?}");

    let reg = train(
        &diabetes_standardised(),
        &params(
            Algorithm::MlpRegressor,
            r#"{"epochs": 50, "learning_rate": 0.01, "tol": 0}"#,
        ),
    )
    .unwrap();
    let h = &reg.loss_history;
    assert!(h[h.len() - 1] < 0.2 * h[0], "{h:?}");
}

fn diabetes_standardised() -> Dataset {
    let mut d = diabetes();
    let (n, f) = (d.features.rows(), d.features.cols());
    for j in 0..f {
        let col: Vec<f64> = (0..n).map(|i| d.features.get(i, j)).collect();
        let mean = col.iter().sum::<f64>() / n as f64;
        let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        for i in 0..n {
            let v = &mut d.features.row_mut(i)[j];
            *v = (*v - mean) / sd;
        }
    }
    d
}

#[test]
fn mlp_overfits_xor_and_random_labels() {
    // XOR.
    let x = Matrix::from_rows(&[[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]).unwrap();
    let xor = Dataset::new(
        x.clone(),
        vec!["a".into(), "b".into()],
        Target::classes_from_labels(&["0", "1", "1", "0"]),
    )
    .unwrap();
    let p = params(
        Algorithm::MlpClassifier,
        r#"{"hidden_layers": [16], "learning_rate": 0.05, "epochs": 500, "tol": 0, "l2": 0}"#,
    );
    let trained = train(&xor, &p).unwrap();
    let pred = trained.native.predict(&x).unwrap();
    assert_eq!(
        labels(&pred),
        [0, 1, 1, 0],
        "{:?}",
        trained.loss_history.last()
    );

    // 20 points with random labels: memorised.
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let rows: Vec<[f64; 3]> = (0..20).map(|_| [next(), next(), next()]).collect();
    let y: Vec<&str> = (0..20)
        .map(|_| if next() < 0.5 { "no" } else { "yes" })
        .collect();
    let data = Dataset::new(
        Matrix::from_rows(&rows).unwrap(),
        vec!["a".into(), "b".into(), "c".into()],
        Target::classes_from_labels(&y),
    )
    .unwrap();
    let p = params(
        Algorithm::MlpClassifier,
        r#"{"hidden_layers": [64, 64], "learning_rate": 0.01, "epochs": 2000, "tol": 0, "l2": 0, "batch_size": 20}"#,
    );
    let trained = train(&data, &p).unwrap();
    let pred = trained.native.predict(&data.features).unwrap();
    let acc = metrics::accuracy(class_indices(&data), labels(&pred)).unwrap();
    assert_eq!(acc, 1.0, "{:?}", trained.loss_history.last());
}

#[test]
fn early_stopping_keeps_the_best_and_stops() {
    let data = breast_cancer_standardised();
    let trained = train(
        &data,
        &params(
            Algorithm::MlpClassifier,
            r#"{"early_stopping": true, "learning_rate": 0.01, "epochs": 500}"#,
        ),
    )
    .unwrap();
    assert!(trained.loss_history.len() < 500);
    let pred = trained.native.predict(&data.features).unwrap();
    let acc = metrics::accuracy(class_indices(&data), labels(&pred)).unwrap();
    assert!(acc > 0.95, "{acc}");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let data = breast_cancer_standardised();
    let small = r#"{"hidden_layers": [20, 10], "epochs": 20, "seed": 7}"#;
    let a = train(&data, &params(Algorithm::MlpClassifier, small)).unwrap();
    let b = train(&data, &params(Algorithm::MlpClassifier, small)).unwrap();
    assert_eq!(a.onnx, b.onnx);
    assert_eq!(a.loss_history, b.loss_history);
    let c = train(
        &data,
        &params(
            Algorithm::MlpClassifier,
            &small.replace("\"seed\": 7", "\"seed\": 8"),
        ),
    )
    .unwrap();
    assert_ne!(a.onnx, c.onnx);
    let l1 = train(&data, &params(Algorithm::LogisticRegression, "{}")).unwrap();
    let l2 = train(&data, &params(Algorithm::LogisticRegression, "{}")).unwrap();
    assert_eq!(l1.onnx, l2.onnx);
}

#[test]
fn wrong_target_kind_and_bad_data_are_errors() {
    let e = train(
        &diabetes(),
        &TrainParams::defaults(Algorithm::LogisticRegression),
    )
    .unwrap_err();
    assert!(e.to_string().contains("needs class labels"), "{e}");
    let e = train(
        &breast_cancer(),
        &TrainParams::defaults(Algorithm::MlpRegressor),
    )
    .unwrap_err();
    assert!(e.to_string().contains("needs real-valued targets"), "{e}");
    let one_class = Dataset::new(
        Matrix::from_rows(&[[1.0], [2.0]]).unwrap(),
        vec!["a".into()],
        Target::classes_from_labels(&["x", "x"]),
    )
    .unwrap();
    let e = train(
        &one_class,
        &TrainParams::defaults(Algorithm::LogisticRegression),
    )
    .unwrap_err();
    assert!(e.to_string().contains("at least two classes"), "{e}");
}

#[test]
fn trained_model_records_what_a_card_needs() {
    let data = breast_cancer();
    let trained = train(
        &data,
        &params(Algorithm::LogisticRegression, r#"{"C": 0.1}"#),
    )
    .unwrap();
    assert_eq!(trained.algorithm, Algorithm::LogisticRegression);
    assert_eq!(trained.feature_names.len(), 30);
    assert_eq!(trained.feature_names[0], "mean_radius");
    let card = serde_json::to_value(&trained.params).unwrap();
    assert_eq!(card["algorithm"], "logistic_regression");
    assert_eq!(card["params"]["c"], 0.1);
}
