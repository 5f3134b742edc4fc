//! Contract compatibility: a component built against an earlier release of
//! the `sluice:pipeline` WIT package, with that release's SDK, still loads,
//! describes itself and runs. The fixture is the SDK example step
//! (`components/test-programs/scale`) as built at commit 92ba19b, before
//! the contract types moved into `sluice-contract`; it is committed as
//! bytes so that no later change to the SDK or the WIT can rebuild it.

use crate::support::*;

/// The step as built against `sluice:pipeline@0.1.0` at commit 92ba19b.
fn old_scale() -> std::path::PathBuf {
    repo().join("tests/fixtures/contract/scale-wit-0.1.0.wasm")
}

#[test]
fn a_component_built_against_the_released_contract_still_describes_itself() {
    let r = run(&[
        "component",
        "inspect",
        old_scale().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = r.json();
    let manifest = &m["manifest"];
    assert_eq!(manifest["name"], "scale");
    assert_eq!(manifest["inputs"][0]["name"], "data");
    assert_eq!(manifest["inputs"][0]["kind"], "table");
    let params = manifest["params"].as_array().unwrap();
    let factor = params.iter().find(|p| p["name"] == "factor").unwrap();
    assert_eq!(factor["default"]["value"], 2.0);
    let column = params.iter().find(|p| p["name"] == "column").unwrap();
    assert_eq!(column["required"], true);
}

#[test]
fn a_component_built_against_the_released_contract_still_runs() {
    let iris = repo().join("examples/quickstart/data/iris.csv");
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "old-contract"
[data]
iris = "{}"
[steps.ingest]
component = "std:ingest-csv"
inputs = {{ file = "data.iris" }}
[steps.scale]
component = "{}"
inputs = {{ data = "ingest.data" }}
params = {{ column = "petal_width", factor = 3 }}
"#,
        iris.display(),
        old_scale().display()
    ));
    let r = p.run_json();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();
    let scale = step(&report, "scale");
    assert_eq!(scale["state"], "succeeded");
    assert_eq!(scale["metrics"]["rows"], 150.0);
    assert_eq!(scale["logs"][0]["message"], "scaled `petal_width` by 3");
}
