//! `std:infra-validate`: the gate between "blessed offline" and "served".
//! Like TFX's InfraValidator, it starts the candidate model in the real
//! model server (`sluice serve`, on loopback, as its own process) and
//! checks what no offline metric can:
//!
//! 1. the server starts and loads the model and its transform;
//! 2. every example row, sent as its own request the way a client would
//!    send it, is answered, and the answer equals the offline prediction
//!    (labels exactly, numbers within `tolerance`);
//! 3. under a short bounded load the server meets the budgets given:
//!    `max-startup-ms`, `max-p99-ms`, `min-qps`, `max-memory` (peak
//!    resident memory of the server process), with no failed request.
//!
//! The host measures (`serving.probe`); this step decides. A budget not
//! given is measured and reported, not checked. A failed check rejects the
//! step, naming every failed check, which stops the pipeline — unless
//! `reject = false`: then the blessing says `blessed: false`, and
//! `std:push` refuses the model when it is bound. The example rows and
//! their predictions are kept in the blessing: requests recorded with the
//! model, for whoever checks it again.
//!
//! ```json
//! {"kind": "infra-blessing", "blessed": true,
//!  "checks": [{"check": "max-p99-ms", "passed": true, "detail": "p99 = 3.1 ms <= 50 ms"}, ...],
//!  "measured": {"startup_ms": 212.0, "peak_rss_bytes": 41000000, "qps": 3120.5,
//!               "latency_ms": {"p50": 0.9, "p90": 1.4, "p99": 3.1, "max": 9.8},
//!               "requests": 6240, "errors": 0},
//!  "budgets": {"max-p99-ms": 50.0, ...}, "load": {"concurrency": 2, "duration_ms": 2000, ...},
//!  "examples": {"rows": 32, "rows_csv": "...", "predictions": {"prediction": [...], ...}},
//!  "candidate": {"model": {...card summary}}, "machine": {"version": "...", "cpus": 2}}
//! ```
//!
//! Because it measures the machine it runs on, its result is never reused
//! from the cache.

use serde_json::{Map, Value as Json, json};
use sluice_contract::numbers_agree;
use sluice_sdk::serving;
use sluice_sdk::{
    Column, Context, Manifest, Model, Param, Port, Step, StepError, Table, Value, export_step,
};

/// Most example rows: each is its own request, and all are kept in the
/// blessing.
const MAX_ROWS: u64 = 256;
/// Most load clients.
const MAX_CONCURRENCY: i64 = 64;
/// Failed rows named in a check's detail.
const NAMED_FAILURES: usize = 3;

struct InfraValidate;

impl Step for InfraValidate {
    fn describe() -> Manifest {
        Manifest::new("infra-validate", "0.1.0")
            .doc("Serves the candidate model in the real model server on loopback: checks that it starts, answers example rows exactly as offline prediction does, and meets start-up, latency, throughput and memory budgets under a short load; writes an infra blessing that std:push can require.")
            .input(Port::model("model").doc("The candidate model."))
            .input(Port::table("examples").doc("Raw rows (before any transform), as a client sends them, e.g. the test split; a sample is sent one row per request and kept with the blessing."))
            .output(Port::metrics("blessing").doc("The checks, what was measured, the budgets and the example requests with their predictions; with reject = true, written only for a model that passed."))
            .param(Param::integer("rows").default(32).doc("Example rows sampled from `examples` and sent one per request (1 to 256)."))
            .param(Param::integer("seed").default(0).doc("Seed of the sample."))
            .param(Param::float("max-p99-ms").doc("Budget: the 99th percentile of request latency under load, in milliseconds."))
            .param(Param::float("min-qps").doc("Budget: requests answered per second under load."))
            .param(Param::text("max-memory").doc("Budget: the server's peak resident memory, e.g. \"512MiB\"; the server is stopped at twice this."))
            .param(Param::float("max-startup-ms").doc("Budget: from starting the server process to ready, in milliseconds."))
            .param(Param::integer("concurrency").default(2).doc("Clients sending requests at once during the load (1 to 64)."))
            .param(Param::text("duration").default(Value::Text("2s".into())).doc("How long the load lasts, e.g. \"2s\", \"500ms\"."))
            .param(Param::integer("max-requests").default(5000).doc("Most requests the load sends."))
            .param(Param::integer("rows-per-request").default(1).doc("Rows in each load request."))
            .param(Param::float("tolerance").default(sluice_contract::PREDICTION_TOLERANCE).doc("How far a served number may be from the offline one, relative to its size (at least 1)."))
            .param(Param::boolean("reject").default(true).doc("Reject the step when a check fails (stopping the pipeline); false writes a blessing that says blessed: false instead."))
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let settings = Settings::read(ctx)?;
        let model = ctx.input_model("model")?;
        let card = model.card()?;
        let examples = ctx.input_table("examples")?;
        let sample = request_rows(&model, &examples, &settings)?;
        ctx.info(format!(
            "serving the model in the model server with {} example rows, then {} clients for {} ms",
            sample.num_rows(),
            settings.concurrency,
            settings.duration_ms
        ));

        let offline = model.transform(&sample).and_then(|t| model.predict(&t));
        let probe = serving::probe(&model, &sample, &settings.probe_options())?;
        let report = &probe.report;

        let mut checks = Vec::new();
        let started = report.get("started").and_then(Json::as_bool) == Some(true);
        checks.push(Check::new(
            "server started",
            started,
            if started {
                format!("ready in {}", ms(report.get("startup_ms")))
            } else {
                format!(
                    "the model server did not start: {}",
                    report
                        .get("error")
                        .and_then(Json::as_str)
                        .unwrap_or("no reason given")
                )
            },
        ));
        let statuses = probe
            .answers
            .column_i64("status")
            .map_err(|e| StepError::failed(format!("the probe's answers: {e}")))?;
        let errors = probe
            .answers
            .column_str("error")
            .map_err(|e| StepError::failed(format!("the probe's answers: {e}")))?;
        checks.push(served_check(&statuses, &errors));
        let predictions = match &offline {
            Ok(predicted) => {
                checks.push(agreement_check(
                    predicted,
                    &probe.answers,
                    &statuses,
                    settings.tolerance,
                )?);
                Some(predicted)
            }
            Err(e) => {
                checks.push(Check::new(
                    "answers equal offline predictions",
                    false,
                    format!("offline prediction of the examples failed: {}", e.message()),
                ));
                None
            }
        };
        let load = report.get("load").cloned().unwrap_or(Json::Null);
        checks.extend(load_checks(report, &load, &settings));

        let blessed = checks.iter().all(|c| c.passed);
        for (name, value) in [
            ("startup_ms", report.get("startup_ms")),
            ("qps", load.get("qps")),
            ("p99_ms", load.pointer("/latency_ms/p99")),
            ("peak_rss_bytes", report.get("peak_rss_bytes")),
        ] {
            if let Some(v) = value.and_then(Json::as_f64) {
                ctx.metric(name, v);
            }
        }
        for c in &checks {
            ctx.info(format!(
                "{} {}: {}",
                if c.passed { "passed" } else { "FAILED" },
                c.check,
                c.detail
            ));
        }
        if !blessed && settings.reject {
            return Err(StepError::rejected(format!(
                "the model is not fit to serve: {}",
                failed(&checks)
            )));
        }
        let document = json!({
            "kind": "infra-blessing",
            "blessed": blessed,
            "checks": checks.iter().map(Check::to_json).collect::<Vec<_>>(),
            "measured": {
                "startup_ms": report.get("startup_ms"),
                "peak_rss_bytes": report.get("peak_rss_bytes"),
                "qps": load.get("qps"),
                "latency_ms": load.get("latency_ms"),
                "requests": load.get("requests"),
                "errors": load.get("errors"),
            },
            "budgets": settings.budgets_json(),
            "load": {
                "concurrency": settings.concurrency,
                "duration_ms": settings.duration_ms,
                "max_requests": settings.max_requests,
                "rows_per_request": settings.rows_per_request,
            },
            "examples": {
                "rows": sample.num_rows(),
                "rows_csv": to_csv(&sample)?,
                "predictions": predictions.map(columns_json).transpose()?,
            },
            "candidate": {"model": card.summary()},
            "machine": report.get("server"),
        });
        if !blessed {
            ctx.warn(format!(
                "the model is not fit to serve (reject = false, so the pipeline goes on): {}",
                failed(&checks)
            ));
        }
        ctx.output_json("blessing", &document)
    }
}

export_step!(InfraValidate);

/// The step's params, checked.
struct Settings {
    rows: u64,
    seed: u64,
    max_p99_ms: Option<f64>,
    min_qps: Option<f64>,
    max_memory: Option<u64>,
    max_startup_ms: Option<f64>,
    concurrency: i64,
    duration_ms: u64,
    max_requests: i64,
    rows_per_request: i64,
    tolerance: f64,
    reject: bool,
}

impl Settings {
    fn read(ctx: &Context) -> Result<Self, StepError> {
        let invalid = StepError::invalid_input;
        let rows: i64 = ctx.param("rows")?;
        if !(1..=MAX_ROWS as i64).contains(&rows) {
            return Err(invalid(format!(
                "parameter `rows` must be 1 to {MAX_ROWS}, found {rows}"
            )));
        }
        let concurrency: i64 = ctx.param("concurrency")?;
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(invalid(format!(
                "parameter `concurrency` must be 1 to {MAX_CONCURRENCY}, found {concurrency}"
            )));
        }
        let positive = |name: &str, v: Option<f64>| match v {
            Some(x) if !(x.is_finite() && x > 0.0) => Err(invalid(format!(
                "parameter `{name}` must be a positive number, found {x}"
            ))),
            v => Ok(v),
        };
        let max_requests: i64 = ctx.param("max-requests")?;
        let rows_per_request: i64 = ctx.param("rows-per-request")?;
        for (name, v) in [
            ("max-requests", max_requests),
            ("rows-per-request", rows_per_request),
        ] {
            if v < 1 {
                return Err(invalid(format!(
                    "parameter `{name}` must be at least 1, found {v}"
                )));
            }
        }
        let tolerance: f64 = ctx.param("tolerance")?;
        if !(tolerance.is_finite() && tolerance >= 0.0) {
            return Err(invalid(format!(
                "parameter `tolerance` must be a number >= 0, found {tolerance}"
            )));
        }
        let duration: String = ctx.param("duration")?;
        let duration_ms = parse_duration_ms(&duration)
            .map_err(|e| invalid(format!("parameter `duration`: {e}")))?;
        let max_memory = ctx
            .param::<Option<String>>("max-memory")?
            .map(|m| parse_size(&m).map_err(|e| invalid(format!("parameter `max-memory`: {e}"))))
            .transpose()?;
        Ok(Settings {
            rows: rows as u64,
            seed: ctx.param::<i64>("seed")? as u64,
            max_p99_ms: positive("max-p99-ms", ctx.param("max-p99-ms")?)?,
            min_qps: positive("min-qps", ctx.param("min-qps")?)?,
            max_memory,
            max_startup_ms: positive("max-startup-ms", ctx.param("max-startup-ms")?)?,
            concurrency,
            duration_ms,
            max_requests,
            rows_per_request,
            tolerance,
            reject: ctx.param("reject")?,
        })
    }

    /// What the host is asked to do (`serving.probe`'s options).
    fn probe_options(&self) -> Json {
        json!({
            "concurrency": self.concurrency,
            "duration_ms": self.duration_ms,
            "max_requests": self.max_requests,
            "rows_per_request": self.rows_per_request,
            // Past the budget is a failed check; far past it, the server
            // is stopped before it takes the machine down.
            "memory_ceiling_bytes": self.max_memory.map(|m| m.saturating_mul(2)),
        })
    }

    fn budgets_json(&self) -> Json {
        json!({
            "max-p99-ms": self.max_p99_ms,
            "min-qps": self.min_qps,
            "max-memory": self.max_memory,
            "max-startup-ms": self.max_startup_ms,
        })
    }
}

/// One check and how it went.
#[derive(Debug, Clone, PartialEq)]
struct Check {
    check: String,
    passed: bool,
    detail: String,
}

impl Check {
    fn new(check: &str, passed: bool, detail: String) -> Self {
        Check {
            check: check.into(),
            passed,
            detail,
        }
    }

    fn to_json(&self) -> Json {
        json!({"check": self.check, "passed": self.passed, "detail": self.detail})
    }
}

/// `name (detail); …` of the failed checks.
fn failed(checks: &[Check]) -> String {
    checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{} ({})", c.check, c.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The sample of `examples` sent to the server: the columns the served
/// model takes (its transform's inputs, else its features), `rows` of them.
fn request_rows(model: &Model, examples: &Table, settings: &Settings) -> Result<Table, StepError> {
    let card: Json = serde_json::from_str(&model.card_json())
        .map_err(|e| StepError::failed(format!("the model's card is not JSON: {e}")))?;
    let columns = request_columns(&card).ok_or_else(|| {
        StepError::invalid_input(
            "the model's card names neither a transform with inputs nor features; \
             it cannot be served",
        )
    })?;
    let have = examples.column_names();
    let missing: Vec<&str> = columns
        .iter()
        .map(String::as_str)
        .filter(|c| !have.iter().any(|h| h == c))
        .collect();
    if !missing.is_empty() {
        return Err(StepError::invalid_input(format!(
            "input `examples` lacks the column{} `{}` that the served model takes; bind raw \
             rows (before any transform), e.g. the test split",
            if missing.len() == 1 { "" } else { "s" },
            missing.join("`, `")
        )));
    }
    if examples.num_rows() == 0 {
        return Err(StepError::invalid_input("input `examples` has no rows"));
    }
    let sample = if examples.num_rows() > settings.rows {
        examples
            .sample(settings.rows, settings.seed)
            .map_err(|e| StepError::failed(format!("sampling the examples: {e}")))?
    } else {
        examples.slice(0, examples.num_rows())
    };
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    sample
        .select(&names)
        .map_err(|e| StepError::failed(format!("selecting the request columns: {e}")))
}

/// The columns a request to the served model carries: its transform's
/// `inputs`, else its `features`.
fn request_columns(card: &Json) -> Option<Vec<String>> {
    let names = |list: &Json, key: Option<&str>| -> Option<Vec<String>> {
        list.as_array()?
            .iter()
            .map(|c| match key {
                Some(k) => c.get(k)?.as_str().map(str::to_owned),
                None => c.as_str().map(str::to_owned),
            })
            .collect()
    };
    match card.pointer("/transform/inputs") {
        Some(inputs) => names(inputs, Some("name")),
        None => names(card.get("features")?, None),
    }
}

/// Every example answered 200.
fn served_check(statuses: &[Option<i64>], errors: &[Option<String>]) -> Check {
    let failures: Vec<String> = statuses
        .iter()
        .zip(errors)
        .enumerate()
        .filter(|(_, (s, _))| **s != Some(200))
        .map(|(row, (s, e))| {
            let status = match s {
                Some(0) | None => "no answer".to_owned(),
                Some(s) => format!("status {s}"),
            };
            format!(
                "row {}: {status}: {}",
                row + 1,
                e.as_deref().unwrap_or("").trim()
            )
        })
        .collect();
    if failures.is_empty() {
        return Check::new(
            "examples served",
            true,
            format!("{} of {} answered 200", statuses.len(), statuses.len()),
        );
    }
    let mut detail = format!(
        "{} of {} not answered 200: {}",
        failures.len(),
        statuses.len(),
        failures[..failures.len().min(NAMED_FAILURES)].join("; ")
    );
    if failures.len() > NAMED_FAILURES {
        detail.push_str("; …");
    }
    Check::new("examples served", false, detail)
}

/// The served answers equal the offline predictions, column by column, on
/// the rows that were served.
fn agreement_check(
    offline: &Table,
    served: &Table,
    statuses: &[Option<i64>],
    tolerance: f64,
) -> Result<Check, StepError> {
    const NAME: &str = "answers equal offline predictions";
    let served_names = served.column_names();
    let mut compared = 0usize;
    let mut largest = 0.0f64;
    for name in offline.column_names() {
        if !served_names.contains(&name) {
            return Ok(Check::new(
                NAME,
                false,
                format!("the server answered no column `{name}`"),
            ));
        }
        let want = values(&offline.column(&name).map_err(table_error)?);
        let got = values(&served.column(&name).map_err(table_error)?);
        for (row, (g, w)) in got.iter().zip(&want).enumerate() {
            if statuses.get(row).copied().flatten() != Some(200) {
                continue;
            }
            compared += 1;
            let same = match (g.as_f64(), w.as_f64()) {
                (Some(a), Some(b)) => {
                    largest = largest.max((a - b).abs());
                    numbers_agree(a, b, tolerance)
                }
                _ => same_text(g, w),
            };
            if !same {
                return Ok(Check::new(
                    NAME,
                    false,
                    format!(
                        "row {} `{name}` is {g} served and {w} offline (tolerance {tolerance})",
                        row + 1
                    ),
                ));
            }
        }
    }
    Ok(Check::new(
        NAME,
        compared > 0,
        if compared > 0 {
            format!("{compared} values equal; largest difference {largest:.1e}")
        } else {
            "no example was served, so nothing could be compared".into()
        },
    ))
}

/// Labels compare as text: a label `1` served as the string "1" is the
/// same label.
fn same_text(a: &Json, b: &Json) -> bool {
    let text = |v: &Json| match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    text(a) == text(b)
}

fn table_error(e: sluice_sdk::TableError) -> StepError {
    StepError::failed(e.to_string())
}

/// The checks of the load's measurements against the budgets.
fn load_checks(report: &Json, load: &Json, s: &Settings) -> Vec<Check> {
    let mut checks = Vec::new();
    let requests = load.get("requests").and_then(Json::as_u64).unwrap_or(0);
    let errors = load.get("errors").and_then(Json::as_u64).unwrap_or(0);
    checks.push(Check::new(
        "load answered",
        requests > 0 && errors == 0,
        if requests == 0 {
            "no load request was sent".into()
        } else {
            format!("{errors} of {requests} requests failed")
        },
    ));
    if let Some(why) = report.get("killed").and_then(Json::as_str) {
        checks.push(Check::new("server kept running", false, why.into()));
    }
    let bound = |name: &str, value: Option<f64>, budget: Option<f64>, upper: bool, unit: &str| {
        let budget = budget?;
        Some(match value {
            None => Check::new(name, false, format!("{name} could not be measured")),
            Some(v) => {
                let passed = if upper { v <= budget } else { v >= budget };
                let op = match (upper, passed) {
                    (true, true) => "<=",
                    (true, false) => ">",
                    (false, true) => ">=",
                    (false, false) => "<",
                };
                Check::new(
                    name,
                    passed,
                    format!("{} {op} {}", with_unit(v, unit), with_unit(budget, unit)),
                )
            }
        })
    };
    checks.extend(bound(
        "max-startup-ms",
        report.get("startup_ms").and_then(Json::as_f64),
        s.max_startup_ms,
        true,
        "ms",
    ));
    checks.extend(bound(
        "max-p99-ms",
        load.pointer("/latency_ms/p99").and_then(Json::as_f64),
        s.max_p99_ms,
        true,
        "ms",
    ));
    checks.extend(bound(
        "min-qps",
        load.get("qps").and_then(Json::as_f64),
        s.min_qps,
        false,
        "qps",
    ));
    if let Some(budget) = s.max_memory {
        checks.push(match report.get("peak_rss_bytes").and_then(Json::as_u64) {
            None => Check::new(
                "max-memory",
                false,
                "the server's peak memory cannot be measured on this system".into(),
            ),
            Some(peak) => Check::new(
                "max-memory",
                peak <= budget,
                format!(
                    "peak {} {} {}",
                    mib(peak),
                    if peak <= budget { "<=" } else { ">" },
                    mib(budget)
                ),
            ),
        });
    }
    checks
}

fn with_unit(v: f64, unit: &str) -> String {
    format!("{} {unit}", round(v))
}

fn ms(v: Option<&Json>) -> String {
    v.and_then(Json::as_f64)
        .map_or_else(|| "an unknown time".into(), |v| with_unit(v, "ms"))
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", round(bytes as f64 / (1024.0 * 1024.0)))
}

/// About three significant digits, enough to read a measurement; a tiny
/// budget as written.
fn round(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.01 || v == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v}")
    }
}

/// A column's values as JSON, one per row.
fn values(column: &Column) -> Vec<Json> {
    match column {
        Column::Boolean(v) => v.iter().map(|x| json!(x)).collect(),
        Column::Int64(v) => v.iter().map(|x| json!(x)).collect(),
        Column::Float64(v) => v.iter().map(|x| json!(x)).collect(),
        Column::Utf8(v) => v.iter().map(|x| json!(x)).collect(),
    }
}

/// `{column: [values…]}` of a table.
fn columns_json(table: &Table) -> Result<Json, StepError> {
    let mut out = Map::new();
    for name in table.column_names() {
        out.insert(
            name.clone(),
            Json::Array(values(&table.column(&name).map_err(table_error)?)),
        );
    }
    Ok(Json::Object(out))
}

/// The table as CSV with a header (RFC 4180 quoting; an empty field is a
/// missing value): the example requests, kept with the blessing.
fn to_csv(table: &Table) -> Result<String, StepError> {
    let names = table.column_names();
    let columns: Vec<Vec<Json>> = names
        .iter()
        .map(|n| table.column(n).map(|c| values(&c)).map_err(table_error))
        .collect::<Result<_, _>>()?;
    let field = |v: &Json| match v {
        Json::Null => String::new(),
        Json::String(s) => quote(s),
        other => other.to_string(),
    };
    let mut out = names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(",");
    out.push('\n');
    for row in 0..table.num_rows() as usize {
        let line: Vec<String> = columns.iter().map(|c| field(&c[row])).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    Ok(out)
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// `"2s"`, `"500ms"`, `"1.5s"`, `"1m"` in milliseconds (at least 1).
fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, factor) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1_000.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return Err(format!(
            "{text:?} is not a duration; write e.g. \"2s\", \"500ms\" or \"1m\""
        ));
    };
    let value: f64 = number.trim().parse().map_err(|_| {
        format!("{text:?} is not a duration; write e.g. \"2s\", \"500ms\" or \"1m\"")
    })?;
    let ms = value * factor;
    if !(ms.is_finite() && (1.0..=600_000.0).contains(&ms)) {
        return Err(format!("{text:?} must be from 1ms to 10m"));
    }
    Ok(ms.round() as u64)
}

/// `"512MiB"`, `"1GiB"`, `"800MB"`, `"65536"` in bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{text:?} is not a size; write e.g. \"512MiB\", \"2GiB\" or \"800MB\""
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write e.g. \"512MiB\""))?;
    let bytes = value * factor;
    if !(bytes.is_finite() && bytes >= 1.0) {
        return Err(format!("{text:?} must be at least one byte"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_milliseconds() {
        assert_eq!(parse_duration_ms("2s"), Ok(2000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1500));
        assert_eq!(parse_duration_ms(" 1m "), Ok(60_000));
        for bad in ["2", "fast", "0s", "-1s", "11m", "ms"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_parse_in_bytes() {
        assert_eq!(parse_size("512MiB"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("800MB"), Ok(800_000_000));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("1.5 KiB"), Ok(1536));
        for bad in ["", "lots", "12XB", "0MiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_columns_are_the_transforms_inputs_else_the_features() {
        let card = json!({"features": ["a_z", "b_z"],
            "transform": {"inputs": [{"name": "a", "type": "float64"}, {"name": "b", "type": "int64"}]}});
        assert_eq!(request_columns(&card), Some(vec!["a".into(), "b".into()]));
        let card = json!({"features": ["x", "y"]});
        assert_eq!(request_columns(&card), Some(vec!["x".into(), "y".into()]));
        assert_eq!(request_columns(&json!({"features": [1]})), None);
        assert_eq!(request_columns(&json!({})), None);
    }

    #[test]
    fn unanswered_examples_are_named_with_their_status_and_error() {
        let ok = served_check(&[Some(200), Some(200)], &[Some("".into()), Some("".into())]);
        assert!(ok.passed);
        assert_eq!(ok.detail, "2 of 2 answered 200");
        let statuses = [Some(200), Some(400), Some(0), Some(500), Some(500)];
        let errors = [
            Some(String::new()),
            Some("missing input `age`".into()),
            Some("connection refused".into()),
            Some("the transform failed".into()),
            Some("again".into()),
        ];
        let bad = served_check(&statuses, &errors);
        assert!(!bad.passed);
        assert_eq!(
            bad.detail,
            "4 of 5 not answered 200: row 2: status 400: missing input `age`; row 3: no \
             answer: connection refused; row 4: status 500: the transform failed; …"
        );
    }

    fn settings() -> Settings {
        Settings {
            rows: 32,
            seed: 0,
            max_p99_ms: Some(5.0),
            min_qps: Some(100.0),
            max_memory: Some(100 * 1024 * 1024),
            max_startup_ms: None,
            concurrency: 2,
            duration_ms: 2000,
            max_requests: 5000,
            rows_per_request: 1,
            tolerance: 1e-6,
            reject: true,
        }
    }

    #[test]
    fn budgets_pass_and_fail_with_what_was_measured() {
        let report = json!({"startup_ms": 250.0, "peak_rss_bytes": 50 * 1024 * 1024});
        let load = json!({"requests": 400, "errors": 0, "qps": 200.0, "latency_ms": {"p99": 7.25}});
        let checks = load_checks(&report, &load, &settings());
        let by = |n: &str| checks.iter().find(|c| c.check == n).unwrap().clone();
        assert!(by("load answered").passed);
        assert_eq!(
            by("max-p99-ms"),
            Check::new("max-p99-ms", false, "7.25 ms > 5.00 ms".into())
        );
        assert_eq!(
            by("min-qps"),
            Check::new("min-qps", true, "200 qps >= 100 qps".into())
        );
        assert_eq!(
            by("max-memory"),
            Check::new("max-memory", true, "peak 50.0 MiB <= 100 MiB".into())
        );
        assert!(
            checks.iter().all(|c| c.check != "max-startup-ms"),
            "no budget, no check"
        );
        assert_eq!(failed(&checks), "max-p99-ms (7.25 ms > 5.00 ms)");
    }

    #[test]
    fn unmeasurable_memory_and_a_killed_server_fail() {
        let report = json!({"startup_ms": 10.0, "peak_rss_bytes": null,
            "killed": "resident memory passed the ceiling of 209715200 bytes"});
        let load = json!({"requests": 10, "errors": 3, "qps": 500.0, "latency_ms": {"p99": 1.0}});
        let checks = load_checks(&report, &load, &settings());
        let failed = failed(&checks);
        assert!(
            failed.contains("load answered (3 of 10 requests failed)"),
            "{failed}"
        );
        assert!(
            failed.contains("server kept running (resident memory passed"),
            "{failed}"
        );
        assert!(
            failed.contains("max-memory (the server's peak memory cannot be measured"),
            "{failed}"
        );
    }

    #[test]
    fn measurements_read_with_about_three_digits_and_tiny_budgets_as_written() {
        assert_eq!(round(1234.56), "1235");
        assert_eq!(round(12.345), "12.3");
        assert_eq!(round(1.2345), "1.23");
        assert_eq!(round(0.001), "0.001");
        assert_eq!(round(0.0), "0.00");
    }

    #[test]
    fn labels_compare_as_text() {
        assert!(same_text(&json!("1"), &json!(1)));
        assert!(same_text(&json!("yes"), &json!("yes")));
        assert!(!same_text(&json!("0"), &json!(1)));
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
