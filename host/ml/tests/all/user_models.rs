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
