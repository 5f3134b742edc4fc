//! `sluice predict` validates its input against the schema and statistics
//! of the model's training data (found through the store's lineage), with
//! `std:validate`'s own messages: schema skew refuses the file (exit 2,
//! nothing written), drift warns and predicts anyway, `--no-validate`
//! skips the check, and a model with no recorded schema is predicted with
//! a one-line notice.

use crate::serve::{csv_path, predict, read_parquet, train, trained_store};
use std::path::{Path, PathBuf};

const MODEL: &str = "breast-cancer@production";

/// The breast-cancer CSV with `edit` applied to its header and rows (as
/// text fields), written to `dir/name`.
fn edited_csv(
    dir: &Path,
    name: &str,
    edit: impl Fn(&mut Vec<String>, &mut Vec<Vec<String>>),
) -> PathBuf {
    let text = std::fs::read_to_string(csv_path()).unwrap();
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let mut header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let mut rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    edit(&mut header, &mut rows);
    let mut out = header.join(",") + "\n";
    for r in &rows {
        out += &(r.join(",") + "\n");
    }
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn skewed_input_is_refused_with_std_validate_messages_and_nothing_is_written() {
    let (dir, store) = trained_store(false);
    let out = dir.path().join("scored.parquet");

    // A model input column renamed: std:validate's missing-column message,
    // the hint, exit 2, no output (and no partial file).
    let renamed = edited_csv(dir.path(), "renamed.csv", |h, _| {
        h[0] = "radius_mean".into();
    });
    let r = predict(&store, MODEL, &renamed, &out, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "error: the input does not match breast-cancer:1's training schema (rows 1–569 of"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("use --no-validate to predict anyway"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "the data does not match the schema (1 problem):\n- column `mean_radius` (float64) \
             is in the schema but not in the data"
        ),
        "{}",
        r.stderr
    );
    // The extra column the rename made is not a problem.
    assert!(!r.stderr.contains("radius_mean"), "{}", r.stderr);
    assert!(!out.exists());
    assert!(!out.with_extension("parquet.partial").exists());

    // Text in a numeric column: the wrong-type message, not a CSV parse
    // error.
    let text = edited_csv(dir.path(), "text.csv", |h, rows| {
        let i = h.iter().position(|c| c == "mean_texture").unwrap();
        rows[3][i] = "n/a?".into();
    });
    let r = predict(&store, MODEL, &text, &out, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "- column `mean_texture` has type utf8 but the schema says float64; fix the data \
             upstream, or change `dtype` in the schema"
        ),
        "{}",
        r.stderr
    );
    assert!(!out.exists());

    // Values far outside the training range (+3 standard deviations, about
    // +13): skew by default, in every chunk (here the third of 200 rows)…
    let shifted = edited_csv(dir.path(), "shifted.csv", |h, rows| {
        let i = h.iter().position(|c| c == "mean_texture").unwrap();
        for r in rows.iter_mut().skip(450) {
            r[i] = (r[i].parse::<f64>().unwrap() + 13.0).to_string();
        }
    });
    let r = predict(&store, MODEL, &shifted, &out, &["--chunk-rows", "200"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("(rows 401–569 of"), "{}", r.stderr);
    assert!(
        r.stderr.contains("- column `mean_texture` has about")
            && r.stderr.contains("outside the schema's range"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());

    // …but the model can still predict them: --no-validate does, silently.
    let r = predict(&store, MODEL, &shifted, &out, &["--no-validate", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["rows"], 569);
    assert_eq!(r.json()["validation"]["status"], "skipped");
    assert!(!r.stderr.contains("schema"), "{}", r.stderr);
    assert!(!r.stderr.contains("drift"), "{}", r.stderr);
    assert_eq!(read_parquet(&out).num_rows(), 569);
}

#[test]
fn drift_warns_and_predicts_and_clean_input_passes() {
    let (dir, store) = trained_store(false);

    // The training rows themselves: validated, no warning, the label
    // column (not a model input) is not checked.
    let out = dir.path().join("clean.parquet");
    let r = predict(&store, MODEL, &csv_path(), &out, &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = &r.json()["validation"];
    assert_eq!(v["status"], "passed", "{v}");
    assert_eq!(v["rows_checked"], 569);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 0);
    assert!(
        v["schema_source"]
            .as_str()
            .unwrap()
            .ends_with("/schema/schema"),
        "{v}"
    );
    assert_eq!(v["drift"]["columns"]["mean_texture"]["score"], 0.0, "{v}");
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);

    // Five rows are validated for skew but too few to measure drift on.
    let five = edited_csv(dir.path(), "five.csv", |_, rows| rows.truncate(5));
    let out = dir.path().join("five.parquet");
    let r = predict(&store, MODEL, &five, &out, &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = &r.json()["validation"];
    assert_eq!(v["status"], "passed", "{v}");
    assert_eq!(v["rows_checked"], 5);
    assert_eq!(
        v["drift"]["not_measured"],
        "the first chunk has fewer than 100 rows"
    );
    assert!(!r.stderr.contains("drift"), "{}", r.stderr);
    assert_eq!(r.json()["rows"], 5);

    // `mean_texture` squeezed into the top 30% of its training range: no
    // value out of range, but its distribution moved.
    let drifted = edited_csv(dir.path(), "drifted.csv", |h, rows| {
        let i = h.iter().position(|c| c == "mean_texture").unwrap();
        let value = |r: &Vec<String>| r[i].parse::<f64>().unwrap();
        let hi = rows.iter().map(value).fold(f64::NEG_INFINITY, f64::max);
        for r in rows.iter_mut() {
            r[i] = (hi - (hi - value(r)) * 0.3).to_string();
        }
    });
    let out = dir.path().join("drifted.parquet");
    let r = predict(&store, MODEL, &drifted, &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "warning: the input drifted from breast-cancer:1's training data (predicted anyway):\n\
             - column `mean_texture` drifted from the baseline: Jensen-Shannon divergence"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("`mean_radius` drifted"), "{}", r.stderr);
    assert_eq!(read_parquet(&out).num_rows(), 569);

    // --json carries the warning and the score.
    std::fs::remove_file(&out).unwrap();
    let r = predict(&store, MODEL, &drifted, &out, &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["rows"], 569);
    let v = &j["validation"];
    assert_eq!(v["status"], "drift", "{v}");
    assert_eq!(v["drift"]["rows"], 569);
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{v}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .starts_with("column `mean_texture` drifted from the baseline"),
        "{v}"
    );
    assert_eq!(
        v["drift"]["columns"]["mean_texture"]["drifted"], true,
        "{v}"
    );
    assert!(
        v["drift"]["columns"]["mean_texture"]["score"]
            .as_f64()
            .unwrap()
            > 0.1,
        "{v}"
    );
    assert_eq!(
        v["drift"]["columns"]["mean_radius"]["drifted"], false,
        "{v}"
    );
    assert_eq!(read_parquet(&out).num_rows(), 569);
}

#[test]
fn a_model_without_a_recorded_schema_is_predicted_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // The flagship pipeline without its statistics, schema and validate
    // steps.
    train(&store, |spec| {
        let mut out = String::new();
        let mut skip = false;
        for line in spec.lines() {
            if line.starts_with("[steps.") {
                skip = ["[steps.statistics]", "[steps.schema]", "[steps.validate]"].contains(&line);
            }
            if !skip {
                out += line;
                out += "\n";
            }
        }
        out
    });
    let out = dir.path().join("scored.parquet");
    let r = predict(&store, "breast-cancer:1", &csv_path(), &out, &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let notices: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        notices,
        ["note: no recorded schema for breast-cancer:1; input not validated"],
        "{}",
        r.stderr
    );
    assert_eq!(r.json()["validation"]["status"], "none");
    assert_eq!(r.json()["rows"], 569);
    assert_eq!(read_parquet(&out).num_rows(), 569);
}
