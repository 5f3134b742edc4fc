//! Models a user brings: scikit-learn models exported by skl2onnx
//! (zipmap off), with the outputs onnxruntime computed for them.

use sluice_ml::{Dim, ElemType, Model};

use crate::{floats, test_json};

#[test]
fn tract_reproduces_onnxruntime_on_skl2onnx_models() {
    let reference = test_json("user_models_reference.json");
    let x: Vec<f32> = reference["input"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| floats(r).into_iter().map(|v| v as f32))
        .collect();
    let rows = x.len() / 4;
    for (name, m) in reference["models"].as_object().unwrap() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(m["file"].as_str().unwrap());
        let model = Model::from_onnx(&std::fs::read(&path).unwrap()).unwrap();
        let sig = model.signature();
        assert_eq!(sig.inputs.len(), 1, "{name}");
        assert_eq!(sig.inputs[0].name, m["input_name"].as_str().unwrap());
        assert_eq!(sig.inputs[0].elem_type, ElemType::Float32);
        // skl2onnx leaves the batch dimension open without a name.
        assert_eq!(
            sig.inputs[0].shape,
            Some(vec![Dim::Unknown, Dim::Fixed(4)]),
            "{name}"
        );
        let out = model.predict(&x, rows, 4).unwrap();
        let label = out.get("label").unwrap().as_i64().unwrap();
        let want: Vec<i64> = m["outputs"]["label"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(label, want, "{name}");
        let sk: Vec<i64> = m["sklearn_predict"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(label, sk, "{name}");
        let probs = out.get("probabilities").unwrap();
        assert_eq!(probs.shape, [rows, 3]);
        let want: Vec<f64> = m["outputs"]["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(floats)
            .collect();
        for (a, b) in probs.as_f32().unwrap().iter().zip(&want) {
            assert!(a.is_finite());
            assert!((f64::from(*a) - b).abs() < 1e-5, "{name}: {a} vs {b}");
        }
    }
}

/// Runs `host/ml/tests/data/exporters.py` into a fresh folder: the models
/// scikit-learn, XGBoost and LightGBM users export with their tools'
/// defaults, with onnxruntime's answers. `None` (after a notice) when
/// python3 lacks those packages, unless `SLUICE_REQUIRE_CLIENTS=1`.
fn standard_exports() -> Option<(std::path::PathBuf, serde_json::Value)> {
    if !crate::python_has(
        "sklearn, skl2onnx, onnxmltools, xgboost, lightgbm, onnxruntime",
        "pip install scikit-learn skl2onnx onnxmltools xgboost lightgbm onnxruntime",
    ) {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("sluice-ml-exports-{}", std::process::id()));
    let script = crate::repo_path("host/ml/tests/data/exporters.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "exporters.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    Some((dir, serde_json::from_str(&reference).unwrap()))
}

#[test]
fn standard_exports_run_as_onnxruntime_runs_them() {
    let Some((dir, reference)) = standard_exports() else {
        return;
    };
    let mut checked = Vec::new();
    for (name, m) in reference["models"].as_object().unwrap() {
        let rows_json = m["rows"].as_array().unwrap();
        let cols = rows_json[0].as_array().unwrap().len();
        let x: Vec<f32> = rows_json
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter())
            .map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32))
            .collect();
        let bytes = std::fs::read(dir.join(m["file"].as_str().unwrap())).unwrap();
        let model = Model::from_onnx(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = model
            .predict(&x, rows_json.len(), cols)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (output, want) in m["outputs"].as_object().unwrap() {
            let got = out
                .get(output)
                .unwrap_or_else(|| panic!("{name}: no output `{output}`"));
            let want = want.as_array().unwrap();
            if want[0].is_array() {
                let want: Vec<f64> = want.iter().flat_map(floats).collect();
                let got = got
                    .as_f32()
                    .unwrap_or_else(|| panic!("{name}.{output}: not f32"));
                assert_eq!(got.len(), want.len(), "{name}.{output}");
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(*a) - b).abs() <= 1e-5 * b.abs().max(1.0),
                        "{name}.{output}[{i}]: sluice {a}, onnxruntime {b}"
                    );
                }
            } else {
                let want: Vec<i64> = want.iter().map(|v| v.as_i64().unwrap()).collect();
                let got = got
                    .as_i64()
                    .unwrap_or_else(|| panic!("{name}.{output}: not int64"));
                assert_eq!(got, want, "{name}.{output}");
            }
        }
        checked.push(name.clone());
    }
    // Every exporter and every rewritten operator was exercised.
    assert_eq!(checked.len(), 18, "{checked:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_import_docs_list_every_onnx_ml_operator_sluice_runs() {
    let docs = std::fs::read_to_string(crate::repo_path("docs/steps/import-model.md")).unwrap();
    for (op, _) in sluice_ml::SUPPORTED_ONNX_ML_OPERATORS {
        assert!(
            docs.contains(&format!("`{op}`")),
            "docs/steps/import-model.md does not list `{op}`"
        );
    }
}
