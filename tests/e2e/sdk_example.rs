//! The Rust SDK's documentation example, run between two standard steps.

use crate::support::*;

#[test]
fn the_sdk_example_step_scales_a_column_between_standard_steps() {
    let iris = repo().join("examples/quickstart/data/iris.csv");
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "scaled-iris"
[data]
iris = "{}"
[steps.ingest]
component = "std:ingest-csv"
inputs = {{ file = "data.iris" }}
[steps.scale]
component = "{}"
inputs = {{ data = "ingest.data" }}
params = {{ column = "sepal_length", factor = 10 }}
[steps.stats]
component = "std:statistics"
inputs = {{ data = "scale.scaled" }}
"#,
        iris.display(),
        sluice_std_components::TEST_PROGRAM_SCALE
    ));
    let r = p.run_json();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();
    let scale = step(&report, "scale");
    assert_eq!(scale["metrics"]["rows"], 150.0);
    assert_eq!(scale["logs"][0]["message"], "scaled `sepal_length` by 10");
    let stats: serde_json::Value =
        serde_json::from_slice(&output_bytes(&report, "stats", "statistics")).unwrap();
    let col = &stats["columns"][0];
    assert_eq!(col["name"], "sepal_length");
    assert!((col["numeric"]["mean"].as_f64().unwrap() - 58.433_333_333_333_33).abs() < 1e-9);
    assert_eq!(stats["columns"].as_array().unwrap().len(), 1);

    // A missing column is the user's mistake: invalid input, named.
    let p2 = Project::new(
        &std::fs::read_to_string(p.spec())
            .unwrap()
            .replace("sepal_length", "sepal_len"),
    );
    let r = p2.run_json();
    assert_eq!(r.code, 1);
    let s = step(&r.json(), "scale").clone();
    assert_eq!(s["failure"]["reason"], "invalid-input");
    assert!(
        s["message"].as_str().unwrap().contains("sepal_len"),
        "{}",
        s["message"]
    );
}
