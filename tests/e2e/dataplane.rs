//! The native data plane through the binary: columns larger than wasmtime's
//! default host-call budget cross the boundary, host-held tables count
//! toward a step's memory limit (and the process stays bounded), time-based
//! splits and timestamp features run end to end, and bad CSV input is
//! named by file, line and column.

use crate::support::*;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};

/// The table on output `port` of step `name`, as one batch.
fn output_table(report: &serde_json::Value, name: &str, port: &str) -> RecordBatch {
    sluice_runtime::table::batch_from_parquet(output_bytes(report, name, port)).unwrap()
}

fn adversary_spec(behaviour: &str, size: u64, memory: &str) -> String {
    format!(
        r#"
[pipeline]
name = "dataplane"
[steps.a]
component = "{}"
params = {{ behaviour = "{behaviour}", size = {size} }}
limits = {{ memory = "{memory}", time = "5m" }}
"#,
        adversary()
    )
}

#[test]
fn a_column_larger_than_128_mib_crosses_into_the_host_and_back_in_chunks() {
    // 17M float64 values: 136 MB, past wasmtime's default per-call budget
    // of 128 MiB, moved in one `add-column` call and read back both whole
    // (the SDK reads in chunks) and chunk by chunk.
    let rows: u64 = 17_000_000;
    let p = Project::new(&adversary_spec("big-column", rows, "2GiB"));
    let r = p.run_json();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = String::from_utf8(output_bytes(&r.json(), "a", "out")).unwrap();
    let sum = (rows * (rows - 1) / 2) as f64;
    assert_eq!(out, format!("rows={rows} sum={sum} chunked={sum}"));
}

#[test]
fn many_columns_cross_in_one_call_each_way_and_a_bad_batch_adds_none() {
    // Contract 0.1.4: `add-columns` and `columns`. 300 columns with nulls
    // go in and come back, in the order asked; a batch with one column
    // too short is refused whole, and a missing column is named.
    let p = Project::new(&adversary_spec("bulk-columns", 300, "256MiB"));
    let r = p.run_json();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = String::from_utf8(output_bytes(&r.json(), "a", "out")).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let names: Vec<String> = (0..300).map(|j| format!("c{j}")).collect();
    assert_eq!(lines[0], format!("columns={}", names.join(",")), "{out}");
    assert_eq!(lines[1], "read back equal=300", "{out}");
    assert!(
        lines[2].starts_with("refused=")
            && lines[2].contains("column `short` has 1 rows but the columns before it have 3"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("missing=") && lines[3].contains("`nope`"),
        "{out}"
    );
}

#[test]
fn a_step_holding_host_tables_past_its_limit_fails_saying_what_and_how_to_raise_it() {
    // Each query result is 8 MB of host memory the step keeps a handle to:
    // without accounting the host would grow without bound.
    let p = Project::new(&adversary_spec("host-hog", 1_000_000, "64MiB"));
    let r = p.run_json();
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report = r.json();
    let a = step(&report, "a");
    assert_eq!(a["failure"]["reason"], "memory-limit", "{a:#}");
    let message = a["message"].as_str().unwrap();
    assert!(
        message
            .starts_with("exceeded its memory limit of 64 MiB: the result of a SQL query needed"),
        "{message}"
    );
    assert!(
        message.contains("of which the host already held"),
        "{message}"
    );
    assert!(
        message.contains(
            "set `limits = { memory = \"1GiB\" }` in [steps.a] of the pipeline spec; for every step, `limits = { memory = \"1GiB\" }` in [pipeline], or `sluice run --memory 1GiB`"
        ),
        "{message}"
    );
    let held = a["failure"]["detail"]["host_held"].as_u64().unwrap();
    assert!(
        (32 << 20..=64 << 20).contains(&held),
        "the host held {held} bytes of tables when it refused"
    );
    // The process never held much more than the step's limit above its
    // own footprint (a debug build with its engines loaded).
    let peak = report["peak_rss"].as_u64().unwrap();
    assert!(peak < 600 << 20, "peak RSS {peak} bytes");
}

#[test]
fn run_memory_raises_the_limit_of_every_step_that_sets_none() {
    let spec = format!(
        r#"
[pipeline]
name = "dataplane"
limits = {{ memory = "16MiB" }}
[steps.a]
component = "{}"
params = {{ behaviour = "host-hog", size = 1000000 }}
"#,
        adversary()
    );
    let p = Project::new(&spec);
    let r = p.run_json();
    assert_eq!(r.code, 1, "{}", r.stderr);
    let first = r.json();
    assert!(
        step(&first, "a")["message"]
            .as_str()
            .unwrap()
            .starts_with("exceeded its memory limit of 16 MiB"),
        "[pipeline] limits is the default of every step"
    );
    let r = run(&[
        "run",
        p.spec().to_str().unwrap(),
        "--memory",
        "48MiB",
        "--json",
        "--no-cache",
    ]);
    let second = r.json();
    assert!(
        step(&second, "a")["message"]
            .as_str()
            .unwrap()
            .starts_with("exceeded its memory limit of 48 MiB"),
        "--memory is over [pipeline] limits: {second:#}"
    );
}

/// Hourly readings over ten days: a timestamp, a reading that follows the
/// hour of the day, and a label.
fn hourly_csv() -> String {
    let mut csv = String::from("ts,reading,busy\n");
    for h in 0..240 {
        let (day, hour) = (1 + h / 24, h % 24);
        let reading = 10.0 + hour as f64 * 0.5 + (h % 7) as f64 * 0.1;
        let busy = i32::from((8..18).contains(&hour));
        csv.push_str(&format!(
            "2024-03-{day:02}T{hour:02}:00:00Z,{reading},{busy}\n"
        ));
    }
    csv
}

#[test]
fn a_time_split_trains_on_the_past_and_a_timestamp_feature_is_derived_natively() {
    let p = Project::new(
        r#"
[pipeline]
name = "hourly"
[data]
readings = "readings.csv"
[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.readings" }
[steps.split]
component = "std:split"
inputs = { data = "ingest.data" }
params = { order-by = "ts", fractions = { train = 0.6, eval = 0.2, test = 0.2 } }
[steps.transform]
component = "std:transform"
inputs = { train = "split.train", eval = "split.eval", test = "split.test" }
params = { label = "busy", spec = { drop = ["ts"], derive = { hour = "CAST(extract(hour FROM ts) AS DOUBLE)" } } }
"#,
    );
    p.write("readings.csv", &hourly_csv());
    let r = p.run_json();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();

    // The CSV's date-times are a UTC timestamp column.
    let data = output_table(&report, "ingest", "data");
    assert_eq!(
        data.schema().field_with_name("ts").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );

    // Train on the first six days, evaluate on the next two, test on the last two.
    let ts = |port: &str| -> Vec<i64> {
        let t = output_table(&report, "split", port);
        let c = t.column_by_name("ts").unwrap();
        c.as_primitive::<TimestampMicrosecondType>()
            .values()
            .to_vec()
    };
    let (train, eval, test) = (ts("train"), ts("eval"), ts("test"));
    assert_eq!((train.len(), eval.len(), test.len()), (144, 48, 48));
    assert!(train.windows(2).all(|w| w[0] <= w[1]), "in time order");
    assert!(train.iter().max() < eval.iter().min());
    assert!(eval.iter().max() < test.iter().min());

    // `hour` was derived from the timestamp and standard-scaled with the
    // train rows' mean and (population) std.
    let hours = |v: &[i64]| -> Vec<f64> {
        v.iter()
            .map(|us| ((us / 3_600_000_000) % 24) as f64)
            .collect()
    };
    let train_hours = hours(&train);
    let mean = train_hours.iter().sum::<f64>() / train_hours.len() as f64;
    let std = (train_hours.iter().map(|h| (h - mean).powi(2)).sum::<f64>()
        / train_hours.len() as f64)
        .sqrt();
    let out = output_table(&report, "transform", "test");
    let names: Vec<String> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    assert!(!has("ts"), "{names:?}");
    assert!(has("hour") && has("busy"), "{names:?}");
    let scaled = out
        .column_by_name("hour")
        .unwrap()
        .as_primitive::<Float64Type>();
    for (got, h) in scaled.values().iter().zip(hours(&test)) {
        assert!((got - (h - mean) / std).abs() < 1e-12, "{got} vs hour {h}");
    }
    assert_eq!(scaled.null_count(), 0);
}

#[test]
fn bad_csv_input_is_named_by_file_line_and_column() {
    let p = Project::new(
        r#"
[pipeline]
name = "bad"
[data]
raw = "raw.csv"
[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.raw" }
"#,
    );
    // A header and no rows stops at ingest, not four steps later.
    p.write("raw.csv", "a,b\n");
    let r = p.run_json();
    assert_eq!(r.code, 1, "{}", r.stderr);
    let detail = step(&r.json(), "ingest")["failure"]["detail"].clone();
    let detail = detail.as_str().unwrap();
    assert!(
        detail.starts_with("data.raw") && detail.contains("no rows"),
        "{detail}"
    );

    // A stray token in a numeric column: read as text, with a warning that
    // names the column, the token and its line.
    let mut csv = String::from("age,city\n");
    for i in 0..50 {
        csv.push_str(&format!("{},Oslo\n", 20 + i));
    }
    csv.push_str("unknown,Bergen\n");
    p.write("raw.csv", &csv);
    let r = p.run_json();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();
    let ingest = step(&report, "ingest");
    let warnings: Vec<&str> = ingest["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["level"] == "warn")
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 1, "{ingest:#}");
    assert!(
        warnings[0].contains("`age`")
            && warnings[0].contains("unknown")
            && warnings[0].contains("52"),
        "{}",
        warnings[0]
    );
    assert_eq!(ingest["metrics"]["warnings"], 1.0);
}
