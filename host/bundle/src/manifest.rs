//! The manifest: what a bundle holds and for which machine and engine.

use crate::{BundleError, Expectations, FORMAT};
use serde::{Deserialize, Serialize};
use sluice_digest::Digest;
use std::collections::BTreeMap;

/// The engine a bundle's code was compiled for. Two engines are the same
/// when both fields are equal; wasmtime checks its own settings again when
/// the code loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineId {
    /// sluice's name for its engine settings (`sluice-engine-1`).
    pub profile: String,
    /// The wasmtime release (`48.0.8`).
    pub wasmtime: String,
}

impl std::fmt::Display for EngineId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (wasmtime {})", self.profile, self.wasmtime)
    }
}

/// A file the bundle holds: its digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// SHA-256 of its bytes.
    pub sha256: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// The model version a bundle serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// The registered name.
    pub name: String,
    /// The registered version.
    pub version: i64,
    /// How it was asked for (`breast-cancer@production`).
    pub reference: String,
    /// The card's path in the bundle.
    pub card: String,
    /// The ONNX graph's path in the bundle.
    pub onnx: String,
}

/// What a bundled component is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentRole {
    /// The model's recorded transform, applied to every request.
    Transform,
    /// A pipeline step, for preprocessing or validation on the device.
    Step,
}

/// A component compiled ahead of time for the bundle's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundledComponent {
    /// How it was named (`std:transform`, a file name, a step's `uses`).
    pub name: String,
    /// What it is for.
    pub role: ComponentRole,
    /// The pipeline step it runs, for [`ComponentRole::Step`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// SHA-256 of the component (the `.wasm`): its identity, as the model
    /// card and the step cache name it.
    pub digest: Digest,
    /// The component's size in bytes.
    pub size: u64,
    /// The compiled code's path in the bundle.
    pub code: String,
}

/// A pipeline step a device runs (`sluice-edge run`): how the pipeline
/// would run it — its parameters as the spec resolved them, its limits and
/// clocks — and where each of its inputs comes from on the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundledStep {
    /// The step's name in the pipeline; its component is the
    /// [`BundledComponent`] whose `step` is this name.
    pub name: String,
    /// Every parameter with its value (given in the spec, or the
    /// component's default), as sluice stores typed values:
    /// `{"type": "float", "value": 0.5}`.
    pub params: BTreeMap<String, serde_json::Value>,
    /// The bound inputs, in the spec's order.
    pub inputs: Vec<StepInput>,
    /// Most linear memory, in bytes.
    pub memory: u64,
    /// Most wall-clock time, in milliseconds.
    pub time_ms: u64,
    /// Most output, in bytes.
    pub output: u64,
    /// Whether the step sees the real clocks (`clock = "real"`) instead of
    /// the deterministic virtual ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub real_clock: bool,
}

/// One bound input of a [`BundledStep`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInput {
    /// The step's input port.
    pub port: String,
    /// The artifact kind it takes (`table`, `schema`, `file` …).
    pub kind: String,
    /// Where it comes from.
    pub from: InputSource,
}

/// Where a bundled step's input comes from on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "source")]
pub enum InputSource {
    /// An output of a step run before it on the device.
    Step {
        /// The producing step (bundled, and earlier in the manifest).
        step: String,
        /// Its output port.
        port: String,
    },
    /// A file given on the device: `sluice-edge run --input NAME=FILE`.
    Device {
        /// The name it is given by: a `[data]` entry's name (`raw`) or
        /// the pipeline source it stands for (`ingest.data`).
        name: String,
    },
    /// A file of the bundle: the artifact the pipeline run that trained
    /// the model produced (its schema, say), frozen when bundling.
    Bundled {
        /// The file's path in the bundle.
        path: String,
        /// Where it came from: `RUN/STEP/PORT`.
        origin: String,
    },
}

/// Rows a device predicts before it takes a bundle, and what the machine
/// that built the bundle predicted for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTest {
    /// A CSV file of raw rows (with a header).
    pub rows: String,
    /// A JSON object: prediction column → values, one per row.
    pub predictions: String,
}

/// What a bundle holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The program that built it (`sluice 0.1.0`).
    pub created_by: String,
    /// The target triple its code was compiled for.
    pub target: String,
    /// The engine its code was compiled for.
    pub engine: EngineId,
    /// wasmtime's compatibility hash of the compiling engine (for
    /// information: the edge runtime, which has no compiler, cannot compute
    /// its own).
    pub compatibility_hash: String,
    /// The model.
    pub model: ModelEntry,
    /// The components, compiled.
    pub components: Vec<BundledComponent>,
    /// The self-test, if rows were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selftest: Option<SelfTest>,
    /// The pipeline steps the device runs, in the order it runs them (an
    /// input from another step names an earlier one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<BundledStep>,
    /// Every file besides the manifest's own, by path.
    pub files: BTreeMap<String, FileEntry>,
}

impl Manifest {
    /// The architecture of a target triple (`aarch64`), as Rust's
    /// `std::env::consts::ARCH` names it.
    pub fn target_arch(&self) -> &str {
        self.target.split('-').next().unwrap_or("")
    }

    /// The operating system of a target triple, as `std::env::consts::OS`
    /// names it (`linux`, `macos`, `windows`), or the triple itself.
    pub fn target_os(&self) -> &str {
        let t = &self.target;
        if t.contains("-linux") {
            "linux"
        } else if t.contains("-apple-darwin") {
            "macos"
        } else if t.contains("-windows") {
            "windows"
        } else {
            t
        }
    }

    /// The component playing `role` (the first one).
    pub fn component(&self, role: ComponentRole) -> Option<&BundledComponent> {
        self.components.iter().find(|c| c.role == role)
    }

    pub(crate) fn check_against(&self, expect: &Expectations) -> Result<(), BundleError> {
        if self.format != FORMAT {
            return Err(BundleError::Format {
                found: self.format.clone(),
            });
        }
        if self.target_arch() != expect.arch || self.target_os() != expect.os {
            return Err(BundleError::Target {
                target: self.target.clone(),
                arch: expect.arch.clone(),
                os: expect.os.clone(),
                suggested: suggested_triple(&expect.arch, &expect.os),
            });
        }
        if self.engine != expect.engine {
            return Err(BundleError::Engine {
                found: self.engine.to_string(),
                expected: expect.engine.to_string(),
            });
        }
        let listed = |path: &str| {
            if self.files.contains_key(path) {
                Ok(())
            } else {
                Err(BundleError::Missing(path.to_string()))
            }
        };
        listed(&self.model.card)?;
        listed(&self.model.onnx)?;
        for c in &self.components {
            listed(&c.code)?;
        }
        if let Some(t) = &self.selftest {
            listed(&t.rows)?;
            listed(&t.predictions)?;
        }
        for step in &self.steps {
            for input in &step.inputs {
                if let InputSource::Bundled { path, .. } = &input.from {
                    listed(path)?;
                }
            }
        }
        Ok(())
    }
}

/// The target triple `sluice bundle --target` takes for a machine.
pub fn suggested_triple(arch: &str, os: &str) -> String {
    match os {
        "linux" => format!("{arch}-unknown-linux-gnu"),
        "macos" => format!("{arch}-apple-darwin"),
        "windows" => format!("{arch}-pc-windows-msvc"),
        other => format!("{arch}-unknown-{other}"),
    }
}
