//! The training pipelines, end to end through the binary: the flagship
//! breast-cancer pipeline with logistic regression and with an MLP, the
//! regression example, the registry gate, data validation (drift reported,
//! schema skew stops the pipeline) and a model the user brings as ONNX.

use crate::support::*;
use serde_json::Value;
use std::path::Path;

/// Runs `spec` against a store in `store`; returns the JSON report.
fn run_pipeline(spec: &Path, store: &Path) -> (i32, Value, String) {
    let r = run(&[
        "run",
        spec.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--json",
    ]);
    let report = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
    (r.code, report, r.stderr)
}

fn document(report: &Value, step_name: &str, port: &str) -> Value {
    serde_json::from_slice(&output_bytes(report, step_name, port)).unwrap()
}

/// The breast-cancer spec with its paths made absolute, and `edit` applied.
fn breast_cancer(dir: &Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let spec = std::fs::read_to_string(repo().join("examples/breast-cancer/pipeline.toml"))
        .unwrap()
        .replace(
            "\"data/breast_cancer.csv\"",
            &format!(
                "{:?}",
                repo().join("examples/breast-cancer/data/breast_cancer.csv")
            ),
        );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, edit(spec)).unwrap();
    path
}

/// The card of a registered model version (`name:version`), as
/// `sluice models show --json` prints it.
fn card(store: &Path, version: &str) -> Value {
    let r = run(&[
        "models",
        "show",
        version,
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json()["card"].clone()
}

fn models(store: &Path) -> Value {
    let r = run(&[
        "models",
        "list",
        "--json",
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json()
}

#[test]
fn breast_cancer_with_logistic_regression_ends_with_a_blessed_registered_model() {
    let store = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/breast-cancer/pipeline.toml");
    let (code, report, stderr) = run_pipeline(&spec, store.path());
    assert_eq!(code, 0, "{stderr}");

    // Every step wrote exactly the outputs its manifest declares.
    for s in report["steps"].as_array().unwrap() {
        let component = s["component"].as_str().unwrap();
        let manifest = run(&["component", "inspect", component, "--json"]).json();
        let declared: Vec<&str> = manifest["manifest"]["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let written: Vec<&str> = s["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["port"].as_str().unwrap())
            .collect();
        assert_eq!(written, declared, "step {}", s["name"]);
    }

    let evaluation = document(&report, "evaluate", "evaluation");
    let overall = &evaluation["overall"];
    let accuracy = overall["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");
    let rows = evaluation["rows"].as_u64().unwrap();
    assert!((84..=87).contains(&rows), "about 15% of 569 rows: {rows}");
    for metric in ["precision", "recall", "f1", "roc_auc", "log_loss"] {
        let v = overall[metric].as_f64().unwrap();
        assert!(v.is_finite() && v >= 0.0, "{metric} = {v}");
    }
    let blessing = document(&report, "model-validate", "blessing");
    assert_eq!(blessing["blessed"], true, "{blessing:#}");

    let registered = models(store.path());
    assert_eq!(registered[0]["name"], "breast-cancer");
    assert_eq!(registered[0]["version"], 1);
    assert_eq!(registered[0]["metrics"]["accuracy"], overall["accuracy"]);

    // The card records what a server needs: features, classes, and the
    // transform (std:transform's digest and its fitted state).
    let card = &card(store.path(), "breast-cancer:1");
    assert_eq!(card["algorithm"], "logistic_regression");
    assert_eq!(card["made_by"]["run"], report["run_id"]);
    assert_eq!(card["made_by"]["step"], "train");
    assert_eq!(card["classes"], serde_json::json!(["benign", "malignant"]));
    assert_eq!(card["features"].as_array().unwrap().len(), 30);
    let transform_digest =
        run(&["component", "inspect", "std:transform", "--json"]).json()["digest"].clone();
    assert_eq!(card["transform"]["component"], transform_digest);
    assert!(card["transform"]["state"].is_object());
    let loss = card["loss_history"].as_array().unwrap();
    assert!(
        loss.last().unwrap().as_f64() < loss.first().unwrap().as_f64(),
        "training lowered the loss"
    );

    // Exported, a model is its ONNX bytes (the object the card names), with
    // the card beside them.
    let onnx = store.path().join("exported.onnx");
    let exported = run(&[
        "artifacts",
        "export",
        "latest/train/model",
        "-o",
        onnx.to_str().unwrap(),
        "--store",
        store.path().to_str().unwrap(),
    ]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let exported_card: Value =
        serde_json::from_slice(&std::fs::read(store.path().join("exported.card.json")).unwrap())
            .unwrap();
    assert_eq!(exported_card["features"], card["features"]);
    let hex = exported_card["onnx"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let object = store
        .path()
        .join("objects/sha256")
        .join(&hex[..2])
        .join(&hex[2..]);
    assert_eq!(
        std::fs::read(&onnx).unwrap(),
        std::fs::read(object).unwrap()
    );

    // A second run reuses every step and registers nothing new.
    let (code, again, stderr) = run_pipeline(&spec, store.path());
    assert_eq!(code, 0, "{stderr}");
    for s in again["steps"].as_array().unwrap() {
        assert_eq!(s["state"], "cached", "step {}", s["name"]);
    }
    assert_eq!(models(store.path())[0]["version"], 1);

    // A --no-cache run retrains to byte-identical ONNX; its card names
    // another run, but it is the same model: still one version.
    let rerun = run(&[
        "run",
        spec.to_str().unwrap(),
        "--store",
        store.path().to_str().unwrap(),
        "--no-cache",
        "--json",
    ]);
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    let rerun = rerun.json();
    assert_ne!(
        step(&rerun, "train")["outputs"][0]["digest"],
        step(&report, "train")["outputs"][0]["digest"],
        "the retrained card names its own run"
    );
    let listed = models(store.path());
    assert_eq!(listed[0]["version"], 1, "{listed:#}");
}

#[test]
fn breast_cancer_with_an_mlp_reaches_95_percent_and_must_beat_production() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let spec = breast_cancer(dir.path(), |s| {
        s.replace(
            r#"algorithm = "logistic-regression", label = "diagnosis", params = { c = 1.0 }"#,
            r#"algorithm = "mlp-classifier", label = "diagnosis", params = { hidden_layers = [16], epochs = 200, seed = 1 }"#,
        )
    });
    let (code, report, stderr) = run_pipeline(&spec, &store);
    assert_eq!(code, 0, "{stderr}");
    let evaluation = document(&report, "evaluate", "evaluation");
    let accuracy = evaluation["overall"]["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.95, "MLP test accuracy {accuracy}");
    assert_eq!(evaluation["model"]["algorithm"], "mlp_classifier");

    // Promote it; a candidate that cannot beat it by the margin is
    // rejected and not pushed.
    let store_arg = store.to_str().unwrap();
    let promoted = run(&[
        "models",
        "promote",
        "breast-cancer",
        "1",
        "--alias",
        "production",
        "--store",
        store_arg,
    ]);
    assert_eq!(promoted.code, 0, "{}", promoted.stderr);
    let strict = breast_cancer(dir.path(), |s| {
        s.replace(
            r#"algorithm = "logistic-regression", label = "diagnosis", params = { c = 1.0 }"#,
            r#"algorithm = "logistic-regression", label = "diagnosis", params = { c = 0.001 }"#,
        )
        .replace(
            "params = { thresholds = { accuracy = 0.95 } }",
            "params = { thresholds = { accuracy = 0.5 }, margin = 0.01 }",
        )
    });
    let (code, report, _) = run_pipeline(&strict, &store);
    assert_eq!(code, 1, "the gate stops the run");
    let gate = step(&report, "model-validate");
    assert_eq!(gate["state"], "failed");
    assert_eq!(gate["failure"]["reason"], "rejected");
    let why = gate["message"].as_str().unwrap();
    assert!(why.contains("baseline"), "{why}");
    assert_eq!(step(&report, "push")["state"], "skipped");
    let registered = models(&store);
    assert_eq!(registered[0]["version"], 1, "nothing new was pushed");
}

#[test]
fn the_regression_example_registers_a_model_with_regression_metrics() {
    let store = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/diabetes/pipeline.toml");
    let (code, report, stderr) = run_pipeline(&spec, store.path());
    assert_eq!(code, 0, "{stderr}");
    let evaluation = document(&report, "evaluate", "evaluation");
    let overall = &evaluation["overall"];
    let r2 = overall["r2"].as_f64().unwrap();
    assert!(r2 > 0.3, "R² {r2}");
    assert!(overall["rmse"].as_f64().unwrap() > overall["mae"].as_f64().unwrap());
    // Sliced by sex (coded 1 and 2): one slice per value, rows adding up.
    let slices = evaluation["slices"]["values"].as_object().unwrap();
    assert_eq!(slices.keys().collect::<Vec<_>>(), ["1", "2"]);
    let rows: u64 = slices.values().map(|s| s["rows"].as_u64().unwrap()).sum();
    assert_eq!(rows, evaluation["rows"].as_u64().unwrap());
    // The tuner tried every l2 of the grid and recorded them in the card.
    let model = models(store.path());
    assert_eq!(model[0]["name"], "diabetes");
    let search = &card(store.path(), "diabetes:1")["search"];
    let trials = search["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 4, "{search:#}");
}

#[test]
fn drift_is_reported_on_shifted_columns_only() {
    let store = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/drift/pipeline.toml");
    let (code, report, stderr) = run_pipeline(&spec, store.path());
    assert_eq!(code, 0, "drift is a warning by default: {stderr}");
    let anomalies = document(&report, "validate", "anomalies");
    assert_eq!(anomalies["errors"], 0);
    let drifted: Vec<&str> = anomalies["drift"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, d)| d["drifted"] == true)
        .map(|(c, _)| c.as_str())
        .collect();
    assert!(!drifted.is_empty());
    for column in &drifted {
        assert!(
            column.contains("texture") || column.contains("smoothness"),
            "only the recalibrated measurements drift, not {column}"
        );
    }
    assert!(drifted.contains(&"mean_smoothness"), "{drifted:?}");

    // The same batch before recalibration does not drift.
    let dir = tempfile::tempdir().unwrap();
    let unshifted = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("data/shifted.csv", "data/current.csv")
        .replace(
            "\"data/",
            &format!("\"{}/", repo().join("examples/drift/data").display()),
        );
    let path = dir.path().join("pipeline.toml");
    std::fs::write(&path, unshifted).unwrap();
    let (code, report, stderr) = run_pipeline(&path, store.path());
    assert_eq!(code, 0, "{stderr}");
    let anomalies = document(&report, "validate", "anomalies");
    assert_eq!(anomalies["warnings"], 0, "{anomalies:#}");
}

#[test]
fn schema_skew_stops_the_pipeline_naming_each_problem() {
    let store = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/drift/skew.toml");
    let (code, report, _) = run_pipeline(&spec, store.path());
    assert_eq!(code, 1);
    let validate = step(&report, "validate");
    assert_eq!(validate["state"], "failed");
    assert_eq!(validate["failure"]["reason"], "invalid-input");
    let message = validate["message"].as_str().unwrap();
    for problem in [
        "column `mean_radius` (float64) is in the schema but not in the data",
        "column `mean_area` has type utf8 but the schema says float64",
        "column `mean_radius_mm` (float64) is in the data but not in the schema",
    ] {
        assert!(message.contains(problem), "{problem}\nin: {message}");
    }
    assert!(validate["outputs"].as_array().unwrap().is_empty());
}

#[test]
fn a_model_brought_as_onnx_predicts_what_its_exporter_did() {
    let reference: Value = serde_json::from_slice(
        &std::fs::read(repo().join("host/ml/tests/data/user_models_reference.json")).unwrap(),
    )
    .unwrap();
    let onnx = repo().join("host/ml/tests/data/iris_mlp.onnx");
    let iris = repo().join("examples/quickstart/data/iris.csv");
    let project = Project::new(&format!(
        r#"
[pipeline]
name = "bring-your-own"

[data]
onnx = {onnx:?}
iris = {iris:?}

[steps.ingest]
component = "std:ingest-csv"
inputs = {{ file = "data.iris" }}

[steps.import]
component = "std:import-model"
inputs = {{ onnx = "data.onnx" }}
params = {{ features = ["sepal_length", "sepal_width", "petal_length", "petal_width"], label = "species", task = "classification", classes = ["setosa", "versicolor", "virginica"] }}

[steps.evaluate]
component = "std:evaluate"
inputs = {{ model = "import.model", test = "ingest.data" }}
"#
    ));
    let r = project.run_json();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();
    let evaluation = document(&report, "evaluate", "evaluation");

    // scikit-learn's own probabilities for the same 150 rows give the same
    // accuracy and log loss as tract's run of the exported graph.
    let proba = reference["models"]["iris_mlp"]["sklearn_proba"]
        .as_array()
        .unwrap();
    let truth = |i: usize| i / 50; // iris.csv: 50 rows of each species, in class order
    let (mut correct, mut loss) = (0usize, 0.0f64);
    for (i, row) in proba.iter().enumerate() {
        let p: Vec<f64> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let best = (0..3).fold(0, |b, c| if p[c] > p[b] { c } else { b });
        correct += usize::from(best == truth(i));
        loss -= p[truth(i)].clamp(1e-15, 1.0).ln();
    }
    let overall = &evaluation["overall"];
    assert_eq!(
        overall["accuracy"].as_f64().unwrap(),
        correct as f64 / 150.0
    );
    let log_loss = overall["log_loss"].as_f64().unwrap();
    assert!(
        (log_loss - loss / 150.0).abs() < 1e-4,
        "{log_loss} vs {}",
        loss / 150.0
    );

    // ONNX that is not a model is refused with the reason.
    let bad = project.write("bad.onnx", "definitely not protobuf");
    let spec = std::fs::read_to_string(project.spec())
        .unwrap()
        .replace(&format!("{onnx:?}"), &format!("{bad:?}"));
    std::fs::write(project.spec(), spec).unwrap();
    let r = project.run_json();
    assert_eq!(r.code, 1);
    let report = r.json();
    let import = step(&report, "import");
    assert_eq!(import["failure"]["reason"], "invalid-input", "{import:#}");
}

/// The most common split there is (train and test, no eval share) and a
/// label stored as numbers (`1.0` / `0.0`): the pipeline trains without
/// eval rows, the served predictions are numbers like the label (not the
/// strings "1" / "0"), and the monitor compares predicted labels as
/// categories.
#[test]
fn a_train_test_split_and_a_float_label_train_serve_and_monitor_in_kind() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(crate::serve::csv_path()).unwrap();
    let csv = text
        .replace(",malignant\n", ",1.0\n")
        .replace(",benign\n", ",0.0\n");
    let data = dir.path().join("numeric_label.csv");
    std::fs::write(&data, csv).unwrap();
    let spec = breast_cancer(dir.path(), |s| {
        s.replace(
            &format!(
                "{:?}",
                repo().join("examples/breast-cancer/data/breast_cancer.csv")
            ),
            &format!("{data:?}"),
        )
        .replace(
            "params = { seed = 7, stratify = \"diagnosis\" }",
            "params = { seed = 7, stratify = \"diagnosis\", fractions = { train = 0.8, test = 0.2 } }",
        )
    });
    let store = dir.path().join("store");
    let (code, report, stderr) = run_pipeline(&spec, &store);
    assert_eq!(code, 0, "{stderr}");
    let train = step(&report, "train");
    assert!(
        train["logs"].to_string().contains("no eval rows"),
        "train says it measured nothing: {train}"
    );
    assert!(
        train["metrics"].get("eval_accuracy").is_none(),
        "no eval metrics without eval rows: {}",
        train["metrics"]
    );
    let evaluation = document(&report, "evaluate", "evaluation");
    assert!(evaluation["overall"]["accuracy"].as_f64().unwrap() > 0.9);

    // A search needs eval rows, and says how to get them.
    let spec_text = std::fs::read_to_string(&spec).unwrap().replace(
        "params = { c = 1.0 } }",
        "params = { c = 1.0 }, search = { method = \"grid\", space = { c = [0.1, 1.0] } } }",
    );
    let search_spec = dir.path().join("search.toml");
    std::fs::write(&search_spec, spec_text).unwrap();
    let (code, _, stderr) = run_pipeline(&search_spec, &dir.path().join("store2"));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("input `eval` is absent or empty")
            && stderr.contains("fractions = { train = 0.7, eval = 0.15, test = 0.15 }"),
        "{stderr}"
    );

    crate::serve::promote(&store, "1", "production");
    let rows = crate::serve::data();
    let server = crate::serve::Server::production(&store);
    let (status, answer) = server.post(
        "/v2/models/breast-cancer/infer",
        &rows.infer_body(0..20, None),
    );
    assert_eq!(status, 200, "{answer}");
    let prediction = answer["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "prediction")
        .unwrap();
    assert!(
        prediction["datatype"].as_str().unwrap().starts_with("FP"),
        "{prediction}"
    );
    let labels: Vec<f64> = text
        .lines()
        .skip(1)
        .take(20)
        .map(|l| if l.ends_with(",malignant") { 1.0 } else { 0.0 })
        .collect();
    let predicted: Vec<f64> = prediction["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let right = predicted
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count();
    assert!(right >= 18, "{predicted:?} against {labels:?}");
    crate::monitor::send(&server.addr, &rows, "all", &[], 1.0);
    assert_eq!(server.stop().0, 0);

    let r = run(&[
        "monitor",
        "--model",
        "breast-cancer@production",
        "--store",
        store.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let monitored = r.json();
    let column = monitored["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "prediction")
        .unwrap()
        .clone();
    assert_eq!(column["kind"], "categorical", "{column}");
}

/// Gradient-boosted trees and a random forest train through `std:train` in
/// the flagship pipeline, pass its gate, and register with their feature
/// importances in the card.
#[test]
fn tree_models_train_through_std_train_and_record_feature_importances() {
    for (algorithm, params, card_name) in [
        (
            "gradient-boosting-classifier",
            "{ n_estimators = 60, seed = 3 }",
            "gradient_boosting_classifier",
        ),
        (
            "random-forest-classifier",
            "{ n_estimators = 40, seed = 3 }",
            "random_forest_classifier",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let spec = breast_cancer(dir.path(), |s| {
            s.replace(
                "algorithm = \"logistic-regression\"",
                &format!("algorithm = \"{algorithm}\""),
            )
            .replace("params = { c = 1.0 }", &format!("params = {params}"))
            .replace("accuracy = 0.95", "accuracy = 0.9")
        });
        let store = dir.path().join("store");
        let (code, report, stderr) = run_pipeline(&spec, &store);
        assert_eq!(code, 0, "{algorithm}: {stderr}");
        let evaluation = document(&report, "evaluate", "evaluation");
        let accuracy = evaluation["overall"]["accuracy"].as_f64().unwrap();
        assert!(accuracy >= 0.9, "{algorithm}: test accuracy {accuracy}");
        let card = &card(&store, "breast-cancer:1");
        assert_eq!(card["algorithm"], card_name);
        let importances = card["feature_importances"].as_object().unwrap();
        assert_eq!(importances.len(), 30, "{algorithm}");
        let total: f64 = importances.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-9, "{algorithm}: {total}");
        // The worst-area and worst-concave-points measurements carry the
        // diagnosis in every published analysis of this data.
        let mut ranked: Vec<(&String, f64)> = importances
            .iter()
            .map(|(k, v)| (k, v.as_f64().unwrap()))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<&str> = ranked[..5].iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            top.iter().any(|k| k.starts_with("worst_")),
            "{algorithm}: top features {top:?}"
        );
    }
}

#[test]
fn boosting_stops_early_on_the_eval_split_and_raw_test_rows_slice_by_raw_values() {
    let dir = tempfile::tempdir().unwrap();
    // `validation_fraction = 0.99` would leave a handful of training rows
    // if early stopping held rows out of training: a constant model. It
    // must watch the eval split instead and train on every training row.
    let spec = breast_cancer(dir.path(), |s| {
        s.replace(
            "algorithm = \"logistic-regression\"",
            "algorithm = \"gradient-boosting-classifier\"",
        )
        .replace(
            "params = { c = 1.0 }",
            "params = { n_estimators = 400, early_stopping = true, validation_fraction = 0.99, seed = 1 }",
        )
        .replace("accuracy = 0.95", "accuracy = 0.9")
        .replace(
            "inputs = { model = \"train.model\", test = \"split.test\" }\nparams = { raw = true }",
            "inputs = { model = \"train.model\", test = \"split.test\" }\n\
             params = { raw = true, slice-by = \"mean_radius\" }\n\n\
             [steps.evaluate-transformed]\n\
             component = \"std:evaluate\"\n\
             inputs = { model = \"train.model\", test = \"transform.test\" }",
        )
    });
    let store = dir.path().join("store");
    let (code, report, stderr) = run_pipeline(&spec, &store);
    assert_eq!(code, 0, "{stderr}");

    let card = &card(&store, "breast-cancer:1");
    let rounds = card["loss_history"].as_array().unwrap().len();
    assert!(
        rounds < 400,
        "early stopping never stopped: {rounds} rounds"
    );
    assert_eq!(
        card["training_rows"], 398,
        "every training row of the split"
    );

    // The raw rows through the model's transform measure what the
    // transformed rows do.
    let raw = document(&report, "evaluate", "evaluation");
    let transformed = document(&report, "evaluate-transformed", "evaluation");
    assert_eq!(raw["raw"], true);
    assert!(transformed.get("raw").is_none());
    assert_eq!(raw["rows"], transformed["rows"]);
    for metric in ["accuracy", "log_loss", "roc_auc"] {
        let (a, b) = (
            raw["overall"][metric].as_f64().unwrap(),
            transformed["overall"][metric].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-9, "{metric}: {a} vs {b}");
    }
    assert!(raw["overall"]["accuracy"].as_f64().unwrap() >= 0.9);
    // Slices are quartiles of the radius in its own units (millimetres,
    // 6.9–28.1 in this data), not of its standardised value.
    assert_eq!(raw["slices"]["column"], "mean_radius");
    let slices = raw["slices"]["values"].as_object().unwrap();
    assert_eq!(slices.len(), 4, "{slices:?}");
    let rows: u64 = slices.values().map(|s| s["rows"].as_u64().unwrap()).sum();
    assert_eq!(rows, raw["rows"].as_u64().unwrap());
    for name in slices.keys() {
        let low: f64 = name
            .split(['[', ','])
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            (6.0..29.0).contains(&low),
            "slice `{name}` is not in raw units"
        );
    }
}

#[test]
fn a_baseline_behind_another_transform_is_measured_through_its_own_on_raw_rows() {
    let dir = tempfile::tempdir().unwrap();
    // The baseline is trained on min-max scaled rows, the candidate on
    // standardised ones; both are validated on the raw test rows.
    let spec = breast_cancer(dir.path(), |s| {
        let s = s
            .replace(
                "baseline = \"data.production\"",
                "baseline = \"train-minmax.model\"",
            )
            .replace(
                "params = { thresholds = { accuracy = 0.95 }, raw = true }",
                "params = { thresholds = { accuracy = 0.9 }, margin = -1.0, raw = true }",
            );
        format!(
            "{s}\n\
             [steps.transform-minmax]\n\
             component = \"std:transform\"\n\
             inputs = {{ train = \"split.train\", eval = \"split.eval\", test = \"split.test\" }}\n\
             params = {{ label = \"diagnosis\", spec = {{ default-numeric = [\"impute:mean\", \"min-max\"] }} }}\n\n\
             [steps.train-minmax]\n\
             component = \"std:train\"\n\
             inputs = {{ train = \"transform-minmax.train\", eval = \"transform-minmax.eval\", transform = \"transform-minmax.transform\" }}\n\
             params = {{ algorithm = \"logistic-regression\", label = \"diagnosis\", params = {{ c = 1.0 }} }}\n\n\
             [steps.evaluate-minmax]\n\
             component = \"std:evaluate\"\n\
             inputs = {{ model = \"train-minmax.model\", test = \"transform-minmax.test\" }}\n"
        )
    });
    let store = dir.path().join("store");
    let (code, report, stderr) = run_pipeline(&spec, &store);
    assert_eq!(code, 0, "{stderr}");
    let blessing = document(&report, "model-validate", "blessing");
    let own = document(&report, "evaluate-minmax", "evaluation");
    // The baseline's metrics in the blessing are those of its own rows:
    // measured on the standardised rows instead, a min-max model is far off.
    for metric in ["accuracy", "log_loss"] {
        let (a, b) = (
            blessing["baseline"]["metrics"][metric].as_f64().unwrap(),
            own["overall"][metric].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-9, "{metric}: {a} vs {b}");
    }
    let step = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "model-validate")
        .unwrap();
    let logs = step["logs"].to_string();
    assert!(logs.contains("pass beats baseline"), "{logs}");
    assert!(
        !logs.contains("candidate's `test` rows"),
        "no unfair-comparison warning with raw rows: {logs}"
    );
}
