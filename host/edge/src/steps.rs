//! `sluice-edge run`: the pipeline steps a bundle carries, run on the
//! device in the bundle's order, each in the same sandbox and with the same
//! parameters and limits as in `sluice run` — to prepare data, or to check
//! it against the schema the model was trained on before it is predicted.
//!
//! A step's inputs come from earlier steps, from files given on the device
//! (`--input NAME=FILE`) or from the bundle (artifacts of the run that
//! trained the model); see `sluice_bundle::InputSource`. The first step
//! that fails stops the run, as in a pipeline: schema skew found by
//! `std:validate` ends it with the step's message and exit status 1.

use crate::loaded::Loaded;
use serde_json::{Value as Json, json};
use sluice_bundle::{BundledStep, InputSource};
use sluice_digest::Digest;
use sluice_runtime::{
    ArtifactKind, ClockMode, Component, ComponentLoader, InputArtifact, Invocation, Limits,
    LogLevel, OutputArtifact, Value,
};
use sluice_tables::Table;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What one step did.
struct Ran {
    name: String,
    /// `None` on success, else the failure.
    failure: Option<String>,
    duration: Duration,
    metrics: Vec<(String, f64)>,
    /// Files written, by output port.
    written: BTreeMap<String, PathBuf>,
}

/// Runs the bundle's steps on the device inputs `given` (name → file);
/// writes every output under `output_dir` (`STEP/PORT.csv|json|bin|onnx`)
/// if given. Returns whether every step succeeded.
pub fn run(
    loaded: &Loaded,
    given: &[(String, PathBuf)],
    output_dir: Option<&Path>,
    json: bool,
) -> Result<bool, String> {
    let steps = &loaded.manifest.steps;
    if steps.is_empty() {
        return Err(
            "the bundle holds no pipeline steps to run: build it with `sluice bundle … \
             --pipeline SPEC --steps a,b`"
                .into(),
        );
    }
    let device = device_inputs(steps, given)?;
    let mut outputs: BTreeMap<(String, String), OutputArtifact> = BTreeMap::new();
    let mut ran: Vec<Ran> = Vec::new();
    for step in steps {
        let component = loaded
            .steps
            .iter()
            .find(|(name, _)| *name == step.name)
            .map(|(_, c)| c)
            .expect("checked at load");
        let invocation = invocation(loaded, step, component, &device, &outputs)?;
        let outcome = component.run(invocation);
        for line in outcome.logs.iter().filter(|l| l.level >= LogLevel::Warn) {
            let level = if line.level == LogLevel::Warn {
                "warning"
            } else {
                "error"
            };
            eprintln!("{}: {level}: {}", step.name, line.message);
        }
        let mut written = BTreeMap::new();
        let failure = outcome.result.err().map(|e| e.to_string());
        if failure.is_none() {
            for (port, artifact) in outcome.outputs {
                if let Some(dir) = output_dir {
                    let path = write_output(dir, &step.name, &port, &artifact)?;
                    written.insert(port.clone(), path);
                }
                outputs.insert((step.name.clone(), port), artifact);
            }
        }
        let failed = failure.is_some();
        ran.push(Ran {
            name: step.name.clone(),
            failure,
            duration: outcome.duration,
            metrics: outcome.metrics,
            written,
        });
        if failed {
            break;
        }
    }
    let ok = ran.iter().all(|r| r.failure.is_none()) && ran.len() == steps.len();
    report(&ran, steps, ok, json);
    Ok(ok)
}

/// A device input, read.
struct Given {
    artifact: InputArtifact,
    digest: Digest,
}

/// Reads the files given for the steps' device inputs, each as the kind
/// its ports take; refuses names no step takes and inputs not given.
fn device_inputs(
    steps: &[BundledStep],
    given: &[(String, PathBuf)],
) -> Result<BTreeMap<String, Given>, String> {
    // name → (kind, "step `s`'s `port`")
    let mut wanted: BTreeMap<&str, (&str, String)> = BTreeMap::new();
    for step in steps {
        for input in &step.inputs {
            if let InputSource::Device { name } = &input.from {
                wanted.entry(name).or_insert((
                    &input.kind,
                    format!("step `{}`'s `{}`", step.name, input.port),
                ));
            }
        }
    }
    let describe = || {
        if wanted.is_empty() {
            "they take none".to_string()
        } else {
            format!(
                "they take {}",
                wanted
                    .iter()
                    .map(|(n, (kind, port))| format!("{n} (a {kind}, for {port})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let mut read = BTreeMap::new();
    for (name, path) in given {
        let Some((kind, _)) = wanted.get(name.as_str()) else {
            return Err(format!(
                "--input {name}: the bundle's steps take no input `{name}`; {}",
                describe()
            ));
        };
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let digest = Digest::of(&bytes);
        let artifact = decode(kind, bytes, || path.display().to_string(), Some(path))?;
        read.insert(name.clone(), Given { artifact, digest });
    }
    if let Some((name, (kind, port))) = wanted.iter().find(|(n, _)| !read.contains_key(**n)) {
        return Err(format!(
            "the bundle's steps need --input {name}=FILE (a {kind}, for {port}); {}",
            describe()
        ));
    }
    Ok(read)
}

/// Decodes an input of `kind` from its bytes: a table from CSV or Parquet
/// (a file on the device; Parquet from the bundle), a document as text.
fn decode(
    kind: &str,
    bytes: Vec<u8>,
    what: impl Fn() -> String,
    path: Option<&Path>,
) -> Result<InputArtifact, String> {
    let kind: ArtifactKind = serde_json::from_value(Json::String(kind.to_string()))
        .map_err(|_| format!("{}: unknown artifact kind `{kind}`", what()))?;
    Ok(match kind {
        ArtifactKind::Table => {
            let table = match path {
                Some(path) => sluice_tables::read_table(path)
                    .map(Table::from_batch)
                    .map_err(|e| e.to_string()),
                None => sluice_runtime::table::from_parquet(bytes).map_err(|e| e.to_string()),
            };
            InputArtifact::Table(table.map_err(|e| format!("{} is not a table: {e}", what()))?)
        }
        ArtifactKind::File => InputArtifact::Bytes(bytes.into()),
        ArtifactKind::Model => {
            return Err(format!(
                "{}: a device takes no model as a step's input",
                what()
            ));
        }
        _ => InputArtifact::Document(
            String::from_utf8(bytes).map_err(|_| format!("{} is not text (UTF-8 JSON)", what()))?,
        ),
    })
}

/// Everything `step` needs to run: its params and limits as bundled, and
/// its inputs.
fn invocation(
    loaded: &Loaded,
    step: &BundledStep,
    component: &Component,
    device: &BTreeMap<String, Given>,
    outputs: &BTreeMap<(String, String), OutputArtifact>,
) -> Result<Invocation, String> {
    let fail = |why: String| format!("step `{}`: {why}", step.name);
    let mut params = BTreeMap::new();
    for (name, value) in &step.params {
        let value: Value = serde_json::from_value(value.clone()).map_err(|e| {
            fail(format!(
                "parameter `{name}` is unreadable ({e}): rebuild the bundle with `sluice bundle`"
            ))
        })?;
        params.insert(name.clone(), value);
    }
    // The seed is the step's and its inputs' identity, as a pipeline's
    // cache key is: the same data gives the same results.
    let mut identity = format!("sluice-edge step\n{}\n", step.name);
    identity += &serde_json::to_string(&step.params).expect("JSON");
    let mut inputs = BTreeMap::new();
    let mut input_names = BTreeMap::new();
    for input in &step.inputs {
        let (artifact, digest, name) = match &input.from {
            InputSource::Step { step: from, port } => {
                let artifact = outputs
                    .get(&(from.clone(), port.clone()))
                    .ok_or_else(|| {
                        fail(format!(
                            "its input `{}` is step `{from}`'s `{port}`, which did not run before it: rebuild the bundle with `sluice bundle`",
                            input.port
                        ))
                    })?;
                (
                    artifact.to_input(),
                    Digest::of(artifact.stored_bytes()),
                    format!("{from}.{port}"),
                )
            }
            InputSource::Device { name } => {
                let given = device
                    .get(name)
                    .expect("checked: every device input is given");
                (given.artifact.clone(), given.digest, name.clone())
            }
            InputSource::Bundled { path, origin } => {
                let bytes = loaded.frozen.get(path).expect("checked at load").clone();
                let digest = Digest::of(&bytes);
                let artifact = decode(&input.kind, bytes, || format!("the bundle's {path}"), None)
                    .map_err(fail)?;
                (artifact, digest, format!("{origin} (from the bundle)"))
            }
        };
        identity += &format!("\n{}={digest}", input.port);
        inputs.insert(input.port.clone(), artifact);
        input_names.insert(input.port.clone(), name);
    }
    let declared = component
        .describe()
        .map_err(|e| fail(e.to_string()))?
        .outputs;
    let transforms: Vec<Component> = loaded.transforms.clone();
    let components: ComponentLoader = Arc::new(move |digest| {
        transforms
            .iter()
            .find(|c| c.digest() == *digest)
            .cloned()
            .ok_or_else(|| format!("component {digest} is not in the bundle"))
    });
    Ok(Invocation {
        params,
        inputs,
        input_names,
        outputs: declared,
        limits: Limits {
            memory: step.memory,
            time: Duration::from_millis(step.time_ms),
            output: step.output,
        },
        seed: *Digest::of(identity.as_bytes()).as_bytes(),
        clock: if step.real_clock {
            ClockMode::Real
        } else {
            ClockMode::Virtual
        },
        events: None,
        components: Some(components),
        serving: None,
    })
}

/// Writes one output under `dir` as `STEP/PORT.EXT`: a table as CSV (what
/// `sluice-edge predict` reads), a document as JSON, a model as its ONNX
/// graph, a file as it is. Written beside and renamed, so a reader never
/// sees half a file.
fn write_output(
    dir: &Path,
    step: &str,
    port: &str,
    artifact: &OutputArtifact,
) -> Result<PathBuf, String> {
    let folder = dir.join(step);
    std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    let (ext, bytes) = match artifact {
        OutputArtifact::Table { table, .. } => {
            let mut csv = Vec::new();
            {
                let mut writer = arrow_csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut csv);
                for batch in table.batches() {
                    writer
                        .write(batch)
                        .map_err(|e| format!("writing {step}'s `{port}` as CSV: {e}"))?;
                }
            }
            if table.batches().is_empty() {
                let names: Vec<String> = table.column_names();
                csv = format!("{}\n", names.join(",")).into_bytes();
            }
            ("csv", csv)
        }
        OutputArtifact::Document(text) => ("json", text.clone().into_bytes()),
        OutputArtifact::Bytes(bytes) => ("bin", bytes.clone()),
        OutputArtifact::Model(model) => ("onnx", model.onnx().to_vec()),
    };
    let path = folder.join(format!("{port}.{ext}"));
    let partial = folder.join(format!(".{port}.{ext}.partial"));
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Tells what ran: a line per step on stderr, or JSON on stdout.
fn report(ran: &[Ran], steps: &[BundledStep], ok: bool, json: bool) {
    let not_run = steps.iter().skip(ran.len()).map(|s| s.name.as_str());
    if json {
        let steps: Vec<Json> = ran
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "state": if r.failure.is_none() { "succeeded" } else { "failed" },
                    "error": r.failure,
                    "duration_ms": r.duration.as_secs_f64() * 1e3,
                    "metrics": r.metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                    "outputs": r.written,
                })
            })
            .chain(not_run.map(|name| json!({"name": name, "state": "not-run"})))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"ok": ok, "steps": steps})).expect("JSON")
        );
        return;
    }
    for r in ran {
        let took = sluice_runtime::outcome::duration(r.duration);
        match &r.failure {
            None => {
                let files: Vec<String> = r
                    .written
                    .values()
                    .map(|p| p.display().to_string())
                    .collect();
                eprintln!(
                    "✓ {} ({took}){}",
                    r.name,
                    if files.is_empty() {
                        String::new()
                    } else {
                        format!(" → {}", files.join(", "))
                    }
                );
            }
            Some(why) => eprintln!("✗ {} ({took}): {why}", r.name),
        }
    }
    let skipped: Vec<&str> = not_run.collect();
    if !skipped.is_empty() {
        eprintln!("not run: {}", skipped.join(", "));
    }
}
