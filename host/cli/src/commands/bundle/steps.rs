//! The pipeline steps a bundle carries (`sluice bundle --pipeline SPEC
//! --steps a,b`), planned as `sluice run` plans them, for `sluice-edge run`.
//!
//! Each input of a bundled step comes, on the device, from one of three
//! places (see [`InputSource`]):
//!
//! - an **earlier bundled step**'s output;
//! - **the device**: a `[data]` file of the pipeline (`data.raw` is given
//!   as `--input raw=FILE`), or an output of a step left out that
//!   `--from-device STEP.PORT` names;
//! - **the bundle**: any other output of a step left out is the artifact
//!   the run that trained the model produced — the schema its data was
//!   checked against, say — frozen into the bundle, so that the device
//!   checks its data against exactly what the model was trained on.

use anyhow::{Context as _, bail};
use sluice_bundle::{BundledStep, InputSource, StepInput};
use sluice_pipeline::execute;
use sluice_pipeline::spec::{DataKind, Source};
use sluice_pipeline::validate::PlannedStep;
use sluice_runtime::{ArtifactKind, ClockMode, ComponentSource, Digest, Limits, Runtime};
use sluice_serve::ServedModel;
use sluice_store::Store;
use std::collections::BTreeMap;
use std::path::Path;

/// What the bundle takes for its steps.
pub(super) struct BundledSteps {
    /// Each step's component: (the spec's name for it, the step, its bytes).
    pub components: Vec<(String, String, Vec<u8>)>,
    /// The steps, in the order the device runs them.
    pub steps: Vec<BundledStep>,
    /// Frozen artifacts: (path in the bundle, bytes).
    pub files: Vec<(String, Vec<u8>)>,
}

/// Plans `names` (steps of the spec at `spec_path`) for the device; the
/// outputs of steps left out that `from_device` names are given there.
pub(super) fn plan(
    spec_path: &Path,
    names: &[String],
    from_device: &[String],
    store: &Store,
    runtime: &Runtime,
    model: &ServedModel,
) -> anyhow::Result<BundledSteps> {
    let prepared = execute::prepare(spec_path, runtime, Some(&store.objects))
        .map_err(|d| anyhow::anyhow!("{d}"))
        .with_context(|| format!("--pipeline {} is not a valid spec", spec_path.display()))?;
    let spec = &prepared.spec;
    for name in names {
        if spec.step(name).is_none() {
            bail!(
                "{} has no step `{name}` (it has {})",
                spec_path.display(),
                spec.steps
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    // The plan's order: every step after the steps it consumes from.
    let chosen: Vec<&PlannedStep> = prepared
        .plan
        .steps
        .iter()
        .filter(|s| names.iter().any(|n| n == s.name()))
        .collect();
    let bundled = |step: &str| chosen.iter().any(|s| s.name() == step);
    for source in from_device {
        let taken = chosen
            .iter()
            .flat_map(|s| &s.inputs)
            .any(|i| i.source.to_string() == *source);
        let from_bundled = source.split_once('.').is_some_and(|(s, _)| bundled(s));
        if !taken || from_bundled || source.starts_with("data.") {
            bail!(
                "--from-device {source}: name the output of a step left out (STEP.PORT) that a \
                 bundled step takes; the bundled steps take {}",
                chosen
                    .iter()
                    .flat_map(|s| &s.inputs)
                    .map(|i| i.source.to_string())
                    .filter(|s| !s.starts_with("data.")
                        && !s.split_once('.').is_some_and(|(s, _)| bundled(s)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    let mut frozen = Frozen::new(store, model);
    let mut out = BundledSteps {
        components: Vec::new(),
        steps: Vec::new(),
        files: Vec::new(),
    };
    for planned in chosen.iter().copied() {
        let step = &planned.step;
        // The bytes `prepare` loaded and checked against the step world
        // (it keeps a spec's `.wasm` files in the store), by their digest.
        let digest = prepared.components[&step.component].digest();
        let bytes = ComponentSource::of_digest(&digest, Some(&store.objects))
            .map_err(anyhow::Error::msg)?
            .read()?
            .0
            .into_owned();
        out.components
            .push((step.component.to_string(), step.name.clone(), bytes));

        let mut inputs = Vec::new();
        for input in &planned.inputs {
            let at = || {
                format!(
                    "input `{}` of step `{}` ({})",
                    input.port, step.name, input.source
                )
            };
            let from = match &input.source {
                Source::Step { step: from, port } if bundled(from) => InputSource::Step {
                    step: from.clone(),
                    port: port.clone(),
                },
                Source::Data(name) => {
                    let data = spec.data_input(name).expect("validated");
                    if data.kind == DataKind::Model {
                        bail!(
                            "{} is the registry's model {}: a device has no registry; \
                             leave step `{}` out of the bundle",
                            at(),
                            data.raw_path,
                            step.name
                        );
                    }
                    InputSource::Device { name: name.clone() }
                }
                source @ Source::Step { .. } if from_device.contains(&source.to_string()) => {
                    InputSource::Device {
                        name: source.to_string(),
                    }
                }
                Source::Step { step: from, port } => {
                    if input.kind == ArtifactKind::Model {
                        bail!(
                            "{} is a model, which a device takes only as the bundle's own: \
                             leave step `{}` out of the bundle",
                            at(),
                            step.name
                        );
                    }
                    let (path, origin, bytes) = frozen.get(from, port).with_context(|| {
                        format!(
                            "{}: step `{from}` is not bundled, so its output would be the one \
                             the run that trained {} produced; bundle step `{from}` too, or have \
                             the device give it (--from-device {})",
                            at(),
                            model.id(),
                            input.source
                        )
                    })?;
                    if !out.files.iter().any(|(p, _)| *p == path) {
                        out.files.push((path.clone(), bytes));
                    }
                    InputSource::Bundled { path, origin }
                }
            };
            inputs.push(StepInput {
                port: input.port.clone(),
                kind: input.kind.as_str().to_string(),
                from,
            });
        }
        let limits = &step.limits;
        out.steps.push(BundledStep {
            name: step.name.clone(),
            params: planned
                .params
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::to_value(v).expect("a value")))
                .collect(),
            inputs,
            memory: limits
                .memory
                .or(spec.limits.memory)
                .unwrap_or(Limits::DEFAULT_MEMORY),
            time_ms: limits
                .time
                .or(spec.limits.time)
                .unwrap_or(Limits::DEFAULT_TIME)
                .as_millis() as u64,
            output: limits
                .output
                .or(spec.limits.output)
                .unwrap_or(Limits::DEFAULT_OUTPUT),
            real_clock: step.clock == ClockMode::Real,
        });
    }
    Ok(out)
}

/// A run's outputs: step → port → digest.
type RunOutputs = BTreeMap<String, BTreeMap<String, Digest>>;

/// The artifacts of the run that trained a model, looked up by step and
/// port.
struct Frozen<'a> {
    store: &'a Store,
    model: &'a ServedModel,
    /// The run, once read, and its executions' outputs.
    run: Option<(String, RunOutputs)>,
}

impl<'a> Frozen<'a> {
    fn new(store: &'a Store, model: &'a ServedModel) -> Self {
        Frozen {
            store,
            model,
            run: None,
        }
    }

    /// The run's output `port` of step `step`: its path in the bundle,
    /// where it came from (`RUN/STEP/PORT`) and its bytes.
    fn get(&mut self, step: &str, port: &str) -> anyhow::Result<(String, String, Vec<u8>)> {
        if self.run.is_none() {
            let made_by = self.model.card().get("made_by");
            let run = match made_by.and_then(|m| m.get("run")).and_then(|r| r.as_str()) {
                Some(run) => run.to_string(),
                None => match made_by
                    .and_then(|m| m.get("execution"))
                    .and_then(|e| e.as_i64())
                {
                    Some(id) => self.store.metadata.execution(id)?.run_id,
                    None => bail!(
                        "{}'s card records no run that trained it (an imported model?)",
                        self.model.id()
                    ),
                },
            };
            let mut outputs = RunOutputs::new();
            for e in self.store.metadata.executions(&run)? {
                let ports = outputs.entry(e.step.clone()).or_default();
                for event in e.events.iter().filter(|ev| ev.direction == "output") {
                    ports.insert(event.port.clone(), event.artifact);
                }
            }
            self.run = Some((run, outputs));
        }
        let (run, outputs) = self.run.as_ref().expect("just read");
        let Some(ports) = outputs.get(step) else {
            bail!(
                "run {run} has no step `{step}` (it ran {})",
                outputs.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        let Some(digest) = ports.get(port) else {
            bail!(
                "step `{step}` of run {run} wrote no output `{port}` (it wrote {})",
                if ports.is_empty() {
                    "nothing: it did not succeed".to_string()
                } else {
                    ports.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            );
        };
        let bytes = self
            .store
            .objects
            .get(digest)
            .with_context(|| format!("reading {digest} from the store"))?;
        Ok((
            format!("inputs/{}", digest.to_hex()),
            format!("{run}/{step}/{port}"),
            bytes,
        ))
    }
}
