//! ONNX export: tract runs the exported graphs and agrees with the native
//! models; signatures and metadata follow the documented conventions.

use sluice_ml::{
    Algorithm, Dataset, Dim, ElemType, Matrix, Model, Prediction, TensorSpec, TrainParams,
    TrainedModel, train,
};

use crate::{breast_cancer_standardised, diabetes, split};

fn trained(data: &Dataset, algorithm: Algorithm, json: &str) -> TrainedModel {
    train(data, &TrainParams::from_json(algorithm, json).unwrap()).unwrap()
}

/// Iris-like three-class data made from breast cancer: a third class for
/// the largest tumours, so that multiclass graphs are exercised.
fn three_classes() -> Dataset {
    let mut d = breast_cancer_standardised();
    let sluice_ml::Target::Classes { classes, indices } = &mut d.target else {
        panic!()
    };
    classes.push("large".into());
    for (i, c) in indices.iter_mut().enumerate() {
        if d.features.get(i, 0) > 1.0 {
            *c = 2;
        }
    }
    d
}

/// Runs the ONNX model with tract on `x` rounded to f32 and checks it
/// against the native prediction of the same rounded inputs.
fn round_trip(t: &TrainedModel, x: &Matrix) {
    let model = Model::from_onnx(&t.onnx).unwrap();
    assert!(model.is_optimized());
    let x32 = x.to_f32();
    let native = t
        .native
        .predict(&Matrix::from_f32(x.rows(), x.cols(), &x32).unwrap())
        .unwrap();
    let out = model.predict(&x32, x.rows(), x.cols()).unwrap();
    match native {
        Prediction::Classes {
            labels,
            probabilities,
        } => {
            assert_eq!(out.names().collect::<Vec<_>>(), ["label", "probabilities"]);
            let p = out.get("probabilities").unwrap();
            assert_eq!(p.shape, [x.rows(), probabilities.cols()]);
            let p = p.as_f32().unwrap();
            assert!(p.iter().all(|v| v.is_finite()));
            for (a, b) in p.iter().zip(probabilities.as_slice()) {
                assert!((f64::from(*a) - b).abs() < 1e-5, "{a} vs {b}");
            }
            let l = out.get("label").unwrap();
            assert_eq!(l.shape, [x.rows()]);
            for (i, (a, b)) in l.as_i64().unwrap().iter().zip(&labels).enumerate() {
                if *a as usize != *b {
                    // Only a near-tie may flip between f32 and f64.
                    let row = probabilities.row(i);
                    let gap = (row[*a as usize] - row[*b]).abs();
                    assert!(gap < 1e-5, "row {i}: {a} vs {b}, gap {gap}");
                }
            }
        }
        Prediction::Values(v) => {
            assert_eq!(out.names().collect::<Vec<_>>(), ["variable"]);
            let got = out.get("variable").unwrap();
            assert_eq!(got.shape, [x.rows(), 1]);
            for (a, b) in got.as_f32().unwrap().iter().zip(&v) {
                assert!(a.is_finite());
                assert!(
                    (f64::from(*a) - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn every_algorithm_round_trips_through_tract() {
    let bc = breast_cancer_standardised();
    let (bc_train, bc_test) = split(&bc, 5);
    let three = three_classes();
    let db = diabetes();
    let cases = [
        (&bc_train, Algorithm::LogisticRegression, "{}"),
        (&three, Algorithm::LogisticRegression, "{}"),
        (&bc_train, Algorithm::MlpClassifier, r#"{"epochs": 50}"#),
        (
            &three,
            Algorithm::MlpClassifier,
            r#"{"hidden_layers": [16, 8], "epochs": 30}"#,
        ),
        (&db, Algorithm::LinearRegression, r#"{"l2": 0.5}"#),
        (&db, Algorithm::MlpRegressor, r#"{"epochs": 5}"#),
    ];
    for (data, algorithm, json) in cases {
        let t = trained(data, algorithm, json);
        round_trip(&t, &data.features);
        if std::ptr::eq(data, &bc_train) {
            round_trip(&t, &bc_test.features);
        }
    }
}

#[test]
fn signature_metadata_and_symbolic_batch() {
    let bc = breast_cancer_standardised();
    let t = trained(&bc, Algorithm::LogisticRegression, "{}");
    let model = Model::from_onnx(&t.onnx).unwrap();
    let sig = model.signature();
    assert_eq!(
        sig.inputs,
        [TensorSpec {
            name: "input".into(),
            elem_type: ElemType::Float32,
            shape: Some(vec![Dim::Symbolic("N".into()), Dim::Fixed(30)]),
        }]
    );
    assert_eq!(
        sig.outputs,
        [
            TensorSpec {
                name: "label".into(),
                elem_type: ElemType::Int64,
                shape: Some(vec![Dim::Symbolic("N".into())]),
            },
            TensorSpec {
                name: "probabilities".into(),
                elem_type: ElemType::Float32,
                shape: Some(vec![Dim::Symbolic("N".into()), Dim::Fixed(2)]),
            },
        ]
    );
    assert_eq!(
        serde_json::to_string(&sig.inputs[0]).unwrap(),
        r#"{"name":"input","elem_type":"float32","shape":["N",30]}"#
    );
    assert_eq!(
        model.metadata_value("algorithm"),
        Some("logistic_regression")
    );
    assert_eq!(
        model.metadata_value("classes"),
        Some(r#"["benign","malignant"]"#)
    );
    assert!(
        model
            .metadata_value("feature_names")
            .unwrap()
            .starts_with(r#"["mean_radius","mean_texture""#)
    );
    // One plan, any batch size, in any order (states are pooled and reused).
    let full = model.predict(&bc.features.to_f32(), 569, 30).unwrap();
    let full_probs = full.get("probabilities").unwrap().as_f32().unwrap();
    for rows in [1, 7, 569, 3] {
        let x = bc.features.select_rows(&(0..rows).collect::<Vec<_>>());
        let out = model.predict(&x.to_f32(), rows, 30).unwrap();
        assert_eq!(out.get("label").unwrap().shape, [rows]);
        let probs = out.get("probabilities").unwrap().as_f32().unwrap();
        assert_eq!(probs, &full_probs[..rows * 2]);
    }
    // Wrong width.
    let e = model.predict(&[0.0; 29], 1, 29).unwrap_err();
    assert!(matches!(e, sluice_ml::MlError::Inference(_)), "{e}");

    let reg = trained(&diabetes(), Algorithm::LinearRegression, "{}");
    let sig = Model::from_onnx(&reg.onnx).unwrap().signature().clone();
    assert_eq!(
        sig.outputs,
        [TensorSpec {
            name: "variable".into(),
            elem_type: ElemType::Float32,
            shape: Some(vec![Dim::Symbolic("N".into()), Dim::Fixed(1)]),
        }]
    );
}

#[test]
fn scratch_memory_is_bounded_from_the_graph_shapes_and_grows_with_rows() {
    let bc = breast_cancer_standardised();
    let t = trained(
        &bc,
        Algorithm::MlpClassifier,
        r#"{"hidden_layers": [64, 32], "epochs": 2}"#,
    );
    let model = Model::from_onnx(&t.onnx).unwrap();
    let one = model.scratch_bytes(1_000);
    let ten = model.scratch_bytes(10_000);
    // At least the first hidden layer's float32 activations, for every row.
    assert!(one >= 1_000 * 64 * 4, "{one}");
    // Linear in rows: the weights do not depend on them.
    assert!(ten > 9 * one && ten < 11 * one, "{one} then {ten}");
}

#[test]
fn a_model_is_shared_between_threads() {
    let bc = breast_cancer_standardised();
    let t = trained(&bc, Algorithm::MlpClassifier, r#"{"epochs": 5}"#);
    let model = Model::from_onnx(&t.onnx).unwrap();
    let x = bc.features.to_f32();
    let expected = model.predict(&x, bc.len(), 30).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    assert_eq!(model.predict(&x, bc.len(), 30).unwrap(), expected);
                }
            });
        }
    });
}

#[test]
fn garbage_is_a_load_error() {
    let e = Model::from_onnx(b"not a model").unwrap_err();
    assert!(matches!(e, sluice_ml::MlError::ModelLoad(_)), "{e}");
}

/// Writes one exported model of every kind, with its input and tract's
/// outputs, into `$SLUICE_ML_EXPORT_DIR`, for checking with another runtime
/// (`tests/data/check_onnxruntime.py` runs them in onnxruntime). Ignored:
/// run it by name with the variable set.
#[test]
#[ignore]
fn export_samples_for_other_runtimes() {
    let dir = std::path::PathBuf::from(std::env::var("SLUICE_ML_EXPORT_DIR").unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let bc = breast_cancer_standardised();
    let three = three_classes();
    let db = diabetes();
    let cases = [
        ("logistic_binary", &bc, Algorithm::LogisticRegression, "{}"),
        (
            "logistic_multiclass",
            &three,
            Algorithm::LogisticRegression,
            "{}",
        ),
        (
            "mlp_binary",
            &bc,
            Algorithm::MlpClassifier,
            r#"{"epochs": 20}"#,
        ),
        (
            "mlp_multiclass",
            &three,
            Algorithm::MlpClassifier,
            r#"{"epochs": 20}"#,
        ),
        ("linear_regression", &db, Algorithm::LinearRegression, "{}"),
        (
            "mlp_regressor",
            &db,
            Algorithm::MlpRegressor,
            r#"{"epochs": 5}"#,
        ),
    ];
    for (name, data, algorithm, json) in cases {
        let t = trained(data, algorithm, json);
        std::fs::write(dir.join(format!("{name}.onnx")), &t.onnx).unwrap();
        let x = data.features.to_f32();
        let out = Model::from_onnx(&t.onnx)
            .unwrap()
            .predict(&x, data.len(), data.features.cols())
            .unwrap();
        let mut outputs = serde_json::Map::new();
        for (n, tensor) in &out.0 {
            let values = match &tensor.data {
                sluice_ml::TensorData::F32(v) => serde_json::json!(v),
                sluice_ml::TensorData::I64(v) => serde_json::json!(v),
                other => panic!("{other:?}"),
            };
            outputs.insert(n.clone(), values);
        }
        let sample = serde_json::json!({
            "rows": data.len(),
            "cols": data.features.cols(),
            "input": x,
            "tract": outputs,
        });
        std::fs::write(dir.join(format!("{name}.json")), sample.to_string()).unwrap();
    }
}
