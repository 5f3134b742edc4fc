//! The conformance check a CI runs on a step component, whatever language
//! built it.
//!
//! It loads the component (valid component, step world, only imports the
//! sandbox grants), reads its manifest, runs it on sample inputs from a
//! folder or on synthetic inputs made from the manifest, checks that every
//! declared output is written with its declared kind, runs it a second time
//! to prove the outputs are byte-identical, and measures time and peak
//! memory against the limits. The results come as a [`CheckReport`], which
//! also writes itself as JUnit XML.

use crate::junit;
use serde::Serialize;
use sluice_runtime::outcome::bytes;
use sluice_runtime::outcome::duration;
use sluice_runtime::{
    ArtifactKind, ComponentSource, Digest, InputArtifact, Invocation, Limits, Manifest, Runtime,
    StepFailure, Value, ValueType,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to check and how.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// `std:NAME` or a path to a .wasm component.
    pub component: String,
    /// Sample inputs: a folder with one file per input port, named after
    /// the port (`data.parquet` for a table, `schema.json` for a document,
    /// any extension for a file). Ports without a file get synthetic inputs.
    pub inputs: Option<PathBuf>,
    /// Parameter values, `NAME=VALUE`; VALUE is read by [`parse_value`].
    pub params: Vec<String>,
    /// Memory limit for each run, in bytes.
    pub memory: u64,
    /// Time limit for each run.
    pub time: Duration,
}

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It passed.
    Passed,
    /// It failed.
    Failed,
    /// Could not be decided (e.g. the step refused synthetic inputs).
    Skipped,
}

/// One check: `world`, `manifest`, `runs`, `outputs`, `deterministic` or
/// `limits`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was found, in a sentence.
    pub detail: String,
}

/// What the first run measured, against the limits.
#[derive(Debug, Clone, Serialize)]
pub struct Measurements {
    /// Wall time of the first run, in milliseconds.
    pub duration_ms: f64,
    /// The memory limit, in bytes.
    pub memory_limit: u64,
    /// Peak linear memory of the first run, in bytes.
    pub peak_memory: u64,
    /// The time limit, in milliseconds.
    pub time_limit_ms: f64,
}

/// The results of checking one component.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The component as given.
    pub component: String,
    /// The checks, in the order they ran; a failure stops the checks that
    /// depend on it.
    pub checks: Vec<CheckResult>,
    /// Measurements of the first run, if it ran.
    pub measurements: Option<Measurements>,
}

impl CheckReport {
    fn push(&mut self, name: &'static str, status: Status, detail: impl Into<String>) {
        self.checks.push(CheckResult {
            name,
            status,
            detail: detail.into(),
        });
    }

    /// How many checks failed.
    pub fn failed(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Failed)
            .count()
    }

    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.failed() == 0
    }

    /// The results as a JUnit XML test suite.
    pub fn junit(&self) -> String {
        junit(&self.component, &self.checks)
    }
}

/// Checks a component; see the module's documentation for what is checked.
pub fn check(runtime: &Runtime, options: &CheckOptions) -> CheckReport {
    let mut report = CheckReport {
        component: options.component.clone(),
        checks: Vec::new(),
        measurements: None,
    };
    run_checks(runtime, options, &mut report);
    report
}

fn run_checks(runtime: &Runtime, options: &CheckOptions, report: &mut CheckReport) {
    let component = match runtime.load(&ComponentSource::parse(&options.component)) {
        Ok(c) => {
            report.push(
                "world",
                Status::Passed,
                format!(
                    "implements {}; {} imports, all granted by the sandbox",
                    sluice_runtime::WIT_PACKAGE,
                    c.imports().len()
                ),
            );
            c
        }
        Err(e) => {
            report.push("world", Status::Failed, e.to_string());
            return;
        }
    };
    let manifest = match component.describe() {
        Ok(m) => {
            report.push(
                "manifest",
                Status::Passed,
                format!(
                    "{} {}: {} input(s), {} output(s), {} param(s); ports unique, defaults typed",
                    m.name,
                    m.version,
                    m.inputs.len(),
                    m.outputs.len(),
                    m.params.len()
                ),
            );
            m
        }
        Err(e) => {
            report.push("manifest", Status::Failed, e.to_string());
            return;
        }
    };

    let params = match params(&manifest, &options.params) {
        Ok(p) => p,
        Err(e) => {
            report.push("runs", Status::Failed, e);
            return;
        }
    };
    let (inputs, described) = match inputs(&manifest, options.inputs.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            report.push("runs", Status::Failed, e);
            return;
        }
    };
    let synthetic = described.iter().any(|d| d.contains("synthetic"));
    let invocation = Invocation {
        params,
        inputs,
        input_names: Default::default(),
        outputs: manifest.outputs.clone(),
        limits: Limits {
            memory: options.memory,
            time: options.time,
            output: Limits::DEFAULT_OUTPUT,
        },
        seed: *Digest::of(options.component.as_bytes()).as_bytes(),
        clock: Default::default(),
        events: None,
        // A component checked alone has no store to load transforms from,
        // and no model to serve.
        components: None,
        serving: None,
    };

    let first = component.run(invocation.clone());
    report.measurements = Some(Measurements {
        duration_ms: first.duration.as_secs_f64() * 1000.0,
        memory_limit: options.memory,
        peak_memory: first.peak_memory,
        time_limit_ms: options.time.as_secs_f64() * 1000.0,
    });
    let on = if described.is_empty() {
        "with no inputs".to_string()
    } else {
        format!("on {}", described.join(", "))
    };
    match &first.result {
        Ok(()) => report.push(
            "runs",
            Status::Passed,
            format!("{on} in {}", duration(first.duration)),
        ),
        Err(StepFailure::InvalidInput(why)) if synthetic => {
            report.push(
                "runs",
                Status::Skipped,
                format!(
                    "the step refused synthetic inputs ({why}); ship sample inputs and pass --inputs DIR"
                ),
            );
            return;
        }
        Err(f @ (StepFailure::MemoryLimit { .. } | StepFailure::TimeLimit(_))) => {
            report.push("runs", Status::Failed, format!("{on}: {f}"));
            report.push("limits", Status::Failed, f.to_string());
            return;
        }
        Err(f @ StepFailure::MissingOutputs(_)) => {
            report.push("runs", Status::Passed, format!("{on}: returned success"));
            report.push(
                "outputs",
                Status::Failed,
                format!("the manifest declares outputs the step did not write: it {f}"),
            );
            return;
        }
        Err(f) => {
            let tail: String = first
                .stderr
                .lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .join(" | ");
            report.push(
                "runs",
                Status::Failed,
                if tail.is_empty() {
                    format!("{on}: {f}")
                } else {
                    format!("{on}: {f} (stderr: {tail})")
                },
            );
            return;
        }
    }
    let outputs: Vec<String> = manifest
        .outputs
        .iter()
        .map(|p| {
            format!(
                "{}: {} {}",
                p.name,
                p.kind,
                bytes(first.outputs[&p.name].stored_bytes().len() as u64)
            )
        })
        .collect();
    report.push(
        "outputs",
        Status::Passed,
        if outputs.is_empty() {
            "declares no outputs".to_string()
        } else {
            format!(
                "every declared output written with its kind: {}",
                outputs.join(", ")
            )
        },
    );

    let second = component.run(invocation);
    let digests = |o: &sluice_runtime::StepOutcome| -> BTreeMap<String, Digest> {
        o.outputs
            .iter()
            .map(|(k, v)| (k.clone(), Digest::of(v.stored_bytes())))
            .collect()
    };
    match &second.result {
        Ok(()) if digests(&first) == digests(&second) => report.push(
            "deterministic",
            Status::Passed,
            if first.clock_reads > 0 {
                format!(
                    "two runs with the same inputs gave byte-identical outputs; the step read a clock {} times (virtual clocks: in a pipeline it sees the same times unless its spec says `clock = \"real\"`)",
                    first.clock_reads
                )
            } else {
                "two runs with the same inputs gave byte-identical outputs; the step read no clock"
                    .to_string()
            },
        ),
        Ok(()) => {
            let (a, b) = (digests(&first), digests(&second));
            let differ: Vec<&str> = a
                .iter()
                .filter(|(k, d)| b.get(*k) != Some(*d))
                .map(|(k, _)| k.as_str())
                .collect();
            report.push(
                "deterministic",
                Status::Failed,
                format!(
                    "two runs with the same inputs and seed gave different bytes on: {} (addresses or unseeded state leak into the output)",
                    differ.join(", ")
                ),
            );
        }
        Err(f) => report.push(
            "deterministic",
            Status::Failed,
            format!("the second run with the same inputs failed: {f}"),
        ),
    }
    report.push(
        "limits",
        Status::Passed,
        format!(
            "peak memory {} (linear and host-held) of {}; {} of {}",
            bytes(first.peak_memory.max(second.peak_memory)),
            bytes(options.memory),
            duration(first.duration.max(second.duration)),
            duration(options.time)
        ),
    );
}

/// Manifest defaults, then synthetic values for required params, then
/// `--param` overrides (type-checked against the manifest).
fn params(manifest: &Manifest, given: &[String]) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for p in &manifest.params {
        let value = match (&p.default, p.required) {
            (Some(d), _) => d.clone(),
            (None, true) => match p.value_type {
                ValueType::Boolean => Value::Boolean(false),
                ValueType::Integer => Value::Integer(1),
                ValueType::Float => Value::Float(1.0),
                ValueType::Text => Value::Text("x".into()),
                ValueType::Json => Value::Json("{}".into()),
            },
            (None, false) => continue,
        };
        out.insert(p.name.clone(), value);
    }
    for g in given {
        let (name, text) = g
            .split_once('=')
            .ok_or_else(|| format!("--param `{g}`: expected NAME=VALUE"))?;
        let spec = manifest.find_param(name).ok_or_else(|| {
            let names: Vec<&str> = manifest.params.iter().map(|p| p.name.as_str()).collect();
            format!(
                "--param `{name}`: the step has no such param; it has: {}",
                names.join(", ")
            )
        })?;
        let value = parse_value(text);
        if !spec.value_type.accepts(value.value_type()) {
            return Err(format!(
                "--param `{name}`: declared {} but `{text}` is {}",
                spec.value_type,
                value.value_type()
            ));
        }
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// A `--param` value from its text: a boolean, integer, float, JSON
/// array or object, or else text.
pub fn parse_value(text: &str) -> Value {
    if let Ok(b) = text.parse::<bool>() {
        Value::Boolean(b)
    } else if let Ok(i) = text.parse::<i64>() {
        Value::Integer(i)
    } else if let Ok(f) = text.parse::<f64>() {
        Value::Float(f)
    } else if (text.starts_with('[') || text.starts_with('{'))
        && serde_json::from_str::<serde_json::Value>(text).is_ok()
    {
        Value::Json(text.to_string())
    } else {
        Value::Text(text.to_string())
    }
}

/// A small CSV for `file` ports without a sample.
const SYNTHETIC_CSV: &str =
    "x,n,flag,label\n1.5,1,true,a\n2.5,2,false,b\n,3,true,a\n4.0,4,false,c\n";

/// Inputs by port: from `DIR/PORT.*` when present, else synthetic. Returns
/// them with one phrase per port saying where it came from.
fn inputs(
    manifest: &Manifest,
    dir: Option<&Path>,
) -> Result<(BTreeMap<String, InputArtifact>, Vec<String>), String> {
    let mut out = BTreeMap::new();
    let mut described = Vec::new();
    for port in &manifest.inputs {
        let sample = dir.and_then(|d| find_sample(d, &port.name));
        let artifact = match (&sample, port.kind) {
            (Some(path), kind) => {
                let data = std::fs::read(path)
                    .map_err(|e| format!("reading sample input {}: {e}", path.display()))?;
                described.push(format!("{}: {}", port.name, path.display()));
                match kind {
                    ArtifactKind::Table => InputArtifact::Table(
                        sluice_runtime::table::from_parquet(data).map_err(|e| {
                            format!(
                                "sample input {} is not a Parquet table: {e}",
                                path.display()
                            )
                        })?,
                    ),
                    k if k.is_document() => {
                        InputArtifact::Document(String::from_utf8_lossy(&data).into_owned())
                    }
                    _ => InputArtifact::Bytes(data.into()),
                }
            }
            (None, _) if port.optional => continue,
            (None, ArtifactKind::Table) => {
                described.push(format!(
                    "{}: synthetic table (4 rows, 4 columns)",
                    port.name
                ));
                InputArtifact::Table(sluice_tables::Table::from_batch(
                    sluice_runtime::table::synthetic(),
                ))
            }
            (None, k) if k.is_document() => {
                described.push(format!("{}: synthetic document {{}}", port.name));
                InputArtifact::Document("{}".into())
            }
            (None, _) => {
                described.push(format!("{}: synthetic CSV bytes", port.name));
                InputArtifact::Bytes(SYNTHETIC_CSV.as_bytes().to_vec().into())
            }
        };
        out.insert(port.name.clone(), artifact);
    }
    Ok((out, described))
}

fn find_sample(dir: &Path, port: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_stem().is_some_and(|s| s == port) && p.is_file())
}

/// The results as a JUnit XML test suite.
fn junit(component: &str, checks: &[CheckResult]) -> String {
    let cases: Vec<junit::Case<'_>> = checks
        .iter()
        .map(|c| junit::Case {
            classname: "sluice.component.check",
            name: c.name,
            outcome: match c.status {
                Status::Passed => junit::Outcome::Passed,
                Status::Failed => junit::Outcome::Failed(&c.detail),
                Status::Skipped => junit::Outcome::Skipped(&c.detail),
            },
            time: None,
            stderr: None,
        })
        .collect();
    junit::suite(&format!("sluice component check {component}"), &cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_values_are_typed_from_their_text() {
        assert_eq!(parse_value("true"), Value::Boolean(true));
        assert_eq!(parse_value("12"), Value::Integer(12));
        assert_eq!(parse_value("1.5"), Value::Float(1.5));
        assert_eq!(parse_value("[1,2]"), Value::Json("[1,2]".into()));
        assert_eq!(parse_value("clock"), Value::Text("clock".into()));
    }

    #[test]
    fn junit_escapes_and_counts() {
        let report = CheckReport {
            component: "x.wasm".into(),
            checks: vec![
                CheckResult {
                    name: "world",
                    status: Status::Passed,
                    detail: String::new(),
                },
                CheckResult {
                    name: "runs",
                    status: Status::Failed,
                    detail: "a <b> & \"c\"".into(),
                },
                CheckResult {
                    name: "deterministic",
                    status: Status::Skipped,
                    detail: "why".into(),
                },
            ],
            measurements: None,
        };
        assert_eq!(report.failed(), 1);
        assert!(!report.passed());
        let xml = report.junit();
        assert!(xml.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""));
        assert!(xml.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
        assert!(xml.contains("<testcase classname=\"sluice.component.check\" name=\"world\"/>"));
        assert!(xml.contains("<skipped message=\"why\"/>"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_micros(850)), "850µs");
        assert_eq!(duration(Duration::from_micros(12_300)), "12.3ms");
        assert_eq!(duration(Duration::from_millis(1240)), "1.24s");
    }

    #[test]
    fn samples_are_found_by_port_name() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("data.parquet"), b"x").unwrap();
        std::fs::write(d.path().join("other.json"), b"{}").unwrap();
        assert_eq!(
            find_sample(d.path(), "data"),
            Some(d.path().join("data.parquet"))
        );
        assert_eq!(find_sample(d.path(), "schema"), None);
    }
}
