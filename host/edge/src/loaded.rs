//! A bundle made ready to predict: checked (`sluice_bundle`), its
//! components' code loaded into the runtime, the model assembled on the
//! same path as `sluice serve`'s, and its self-test passed.

use arrow_array::RecordBatch;
use serde_json::{Map, Value};
use sluice_bundle::InputSource;
use sluice_bundle::{Bundle, ComponentRole, EngineId, Expectations, Manifest, PublicKey};
use sluice_digest::Digest;
use sluice_runtime::engine_config::{ENGINE_PROFILE, WASMTIME_VERSION};
use sluice_runtime::{Component, ModelArtifact, Runtime};
use sluice_serve::ServedModel;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How far a self-test's number may be from what the bundling machine
/// predicted, relative to its size (at least 1): the two machines' float
/// kernels differ (x86_64 AVX2/FMA, aarch64 NEON), the labels may not.
/// The same rule `std:infra-validate` holds a served model to.
pub const SELFTEST_TOLERANCE: f64 = sluice_contract::PREDICTION_TOLERANCE;

/// A loaded bundle.
pub struct Loaded {
    /// The bundle file's SHA-256.
    pub sha256: Digest,
    /// Its manifest.
    pub manifest: Manifest,
    /// The model, ready to predict.
    pub model: ServedModel,
    /// The pipeline steps it carries, loaded, by step name.
    pub steps: Vec<(String, Component)>,
    /// The model's transform components, for steps that replay it.
    pub transforms: Vec<Component>,
    /// The artifacts its steps take from the bundle, by path.
    pub frozen: BTreeMap<String, Vec<u8>>,
    /// The key whose signature was verified, if any is trusted.
    pub signed_by: Option<String>,
    /// How long loading took (checks, code, graph, self-test).
    pub load_time: Duration,
    /// The self-test's rows (0 without one).
    pub selftest_rows: usize,
}

/// The engine this runtime loads code for.
pub fn engine() -> EngineId {
    EngineId {
        profile: ENGINE_PROFILE.into(),
        wasmtime: WASMTIME_VERSION.into(),
    }
}

/// Checks and loads the bundle `bytes`. The error says what was wrong and
/// what to rebuild.
pub fn load(bytes: &[u8], trusted: &[PublicKey], runtime: &Runtime) -> Result<Arc<Loaded>, String> {
    let start = Instant::now();
    let expect = Expectations::this_machine(engine(), trusted.to_vec());
    let bundle = Bundle::open(bytes, &expect).map_err(|e| e.to_string())?;
    let manifest = bundle.manifest().clone();
    let file = |path: &str| {
        bundle
            .file(path)
            .ok_or_else(|| format!("the bundle does not hold `{path}`"))
    };
    let mut components = Vec::new();
    for c in &manifest.components {
        let code = file(&c.code)?;
        // SAFETY: `Bundle::open` checked this code's SHA-256 against the
        // manifest, and the manifest against its digest and, when keys are
        // trusted, a trusted key's signature: these are the bytes `sluice
        // bundle` compiled (for this architecture and engine, also checked).
        let loaded = unsafe { runtime.load_precompiled(&c.name, c.digest, c.size as usize, code) }
            .map_err(|e| {
                format!("{e}; rebuild the bundle with the `sluice` of the same release as this sluice-edge")
            })?;
        components.push((c.clone(), loaded));
    }
    let card = file(&manifest.model.card)?;
    let onnx = file(&manifest.model.onnx)?.to_vec();
    let onnx_digest = manifest.files[&manifest.model.onnx].sha256;
    let model = ModelArtifact::from_stored(card, |named| {
        if *named == onnx_digest {
            Ok(bytes::Bytes::from(onnx))
        } else {
            Err(format!(
                "its card names the graph {named}, and the bundle's is {onnx_digest}: rebuild it with `sluice bundle`"
            ))
        }
    })
    .map_err(|e| format!("the bundle's model: {e}"))?;
    let transforms: Vec<Component> = components
        .iter()
        .filter(|(c, _)| c.role == ComponentRole::Transform)
        .map(|(_, l)| l.clone())
        .collect();
    let find = |digest: &Digest| {
        transforms
            .iter()
            .find(|c| c.digest() == *digest)
            .cloned()
            .ok_or_else(|| format!("the bundle does not hold the model's transform {digest}"))
    };
    let served = ServedModel::assemble(
        manifest.model.name.clone(),
        manifest.model.version,
        model,
        &find,
    )
    .map_err(|e| e.to_string())?;
    let selftest_rows = match &manifest.selftest {
        None => 0,
        Some(t) => self_test(&served, file(&t.rows)?, file(&t.predictions)?)?,
    };
    let steps: Vec<(String, Component)> = components
        .into_iter()
        .filter_map(|(c, l)| c.step.map(|s| (s, l)))
        .collect();
    let mut frozen = BTreeMap::new();
    for step in &manifest.steps {
        if !steps.iter().any(|(name, _)| *name == step.name) {
            return Err(format!(
                "the bundle plans step `{}` but holds no component for it: rebuild it with `sluice bundle`",
                step.name
            ));
        }
        for input in &step.inputs {
            if let InputSource::Bundled { path, .. } = &input.from {
                frozen.insert(path.clone(), file(path)?.to_vec());
            }
        }
    }
    Ok(Arc::new(Loaded {
        sha256: Digest::of(bytes),
        manifest,
        model: served,
        steps,
        transforms,
        frozen,
        signed_by: bundle.signed_by().map(PublicKey::id),
        load_time: start.elapsed(),
        selftest_rows,
    }))
}

/// Predicts the self-test rows and compares with what the bundling machine
/// predicted: labels and text exactly, numbers within
/// [`SELFTEST_TOLERANCE`]. Returns the rows checked.
fn self_test(model: &ServedModel, rows: &[u8], expected: &[u8]) -> Result<usize, String> {
    let fail = |why: String| format!("the bundle's self-test failed: {why}");
    let batch = crate::predict::read_csv(rows, model).map_err(fail)?;
    let predictions = model.predict(&batch).map_err(|e| fail(e.to_string()))?;
    let expected: Map<String, Value> =
        serde_json::from_slice(expected).map_err(|e| fail(format!("its predictions: {e}")))?;
    compare(&predictions, &expected).map_err(fail)?;
    Ok(batch.num_rows())
}

/// Whether `predictions` equal `expected` (column → values).
pub fn compare(predictions: &RecordBatch, expected: &Map<String, Value>) -> Result<(), String> {
    for (name, want) in expected {
        let column = predictions
            .column_by_name(name)
            .ok_or_else(|| format!("no prediction column `{name}`"))?;
        let got = sluice_serve::protocol::column_json(column.as_ref());
        let want = want.as_array().ok_or("predictions are not lists")?;
        if got.len() != want.len() {
            return Err(format!(
                "`{name}` has {} values, expected {}",
                got.len(),
                want.len()
            ));
        }
        for (row, (g, w)) in got.iter().zip(want).enumerate() {
            let same = match (g.as_f64(), w.as_f64()) {
                (Some(a), Some(b)) => sluice_contract::numbers_agree(a, b, SELFTEST_TOLERANCE),
                _ => g == w,
            };
            if !same {
                return Err(format!(
                    "row {} `{name}` is {g} here and was {w} where the bundle was made",
                    row + 1
                ));
            }
        }
    }
    Ok(())
}
