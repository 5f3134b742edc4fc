//! Preparing a run: parse the spec, load each distinct component (reading
//! its manifest), and validate the spec against those manifests.

use crate::diagnostic::Diagnostics;
use crate::spec::{ComponentRef, Spec};
use crate::validate::{Plan, validate_with};
use sluice_runtime::{Component, ComponentSource, Digest, Manifest, Runtime};
use sluice_store::ObjectStore;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A spec that parsed and validated, with its components loaded.
pub struct Prepared {
    /// The spec as written.
    pub spec: Spec,
    /// The validated plan.
    pub plan: Plan,
    /// Each distinct component the plan runs.
    pub components: HashMap<ComponentRef, Component>,
    /// The runtime that loaded them; steps load recorded transforms with it.
    pub runtime: Runtime,
}

/// Parses, loads every component (reading its manifest) and validates the
/// spec at `path`. Components given by path are also put in `store`, so that
/// later specs can name them by digest.
pub fn prepare(
    path: &Path,
    runtime: &Runtime,
    store: Option<&ObjectStore>,
) -> Result<Prepared, Diagnostics> {
    let spec = Spec::load(path)?;
    prepare_spec(spec, runtime, store, ComponentFiles::OnDisk)
}

/// Where the `.wasm` files a spec names by path are.
#[derive(Clone, Copy)]
pub(crate) enum ComponentFiles<'a> {
    /// Beside the spec, on this machine.
    OnDisk,
    /// In the store, by digest, keyed by the path as the published spec
    /// names it (see `super::package`); data files are in the store too.
    Published(&'a BTreeMap<String, Digest>),
}

/// [`prepare`] for a spec already parsed, its components found in `files`.
pub(crate) fn prepare_spec(
    spec: Spec,
    runtime: &Runtime,
    store: Option<&ObjectStore>,
    files: ComponentFiles<'_>,
) -> Result<Prepared, Diagnostics> {
    let mut loaded: HashMap<ComponentRef, Result<(Component, Manifest), String>> = HashMap::new();
    for step in &spec.steps {
        if loaded.contains_key(&step.component) {
            continue;
        }
        let result = load_component(&step.component, runtime, store, files)
            .and_then(|c| c.describe().map(|m| (c, m)).map_err(|e| e.to_string()))
            .and_then(|(c, m)| {
                keep_std_transform(&step.component, &m, store)?;
                Ok((c, m))
            });
        loaded.insert(step.component.clone(), result);
    }
    let resolver = |r: &ComponentRef| match loaded.get(r) {
        Some(Ok((_, m))) => Ok(m.clone()),
        Some(Err(e)) => Err(e.clone()),
        None => Err(format!("component {r} was not loaded")),
    };
    let plan = validate_with(&spec, &resolver, matches!(files, ComponentFiles::OnDisk))?;
    let components = loaded
        .into_iter()
        .filter_map(|(r, c)| c.ok().map(|(c, _)| (r, c)))
        .collect();
    Ok(Prepared {
        spec,
        plan,
        components,
        runtime: runtime.clone(),
    })
}

/// Puts the bytes of a standard step that outputs a transform into the
/// store (once; objects are content-addressed). A model records its
/// transform by digest, and a later `sluice` whose standard step has
/// changed must still find the bytes the model was fitted with — in the
/// store, where a component run from its `.wasm` path already is.
fn keep_std_transform(
    r: &ComponentRef,
    manifest: &Manifest,
    store: Option<&ObjectStore>,
) -> Result<(), String> {
    let (ComponentRef::Std(name), Some(store)) = (r, store) else {
        return Ok(());
    };
    if !manifest
        .outputs
        .iter()
        .any(|p| p.kind == sluice_runtime::ArtifactKind::Transform)
    {
        return Ok(());
    }
    let source = ComponentSource::Std(name.clone());
    let (bytes, _) = source.read().map_err(|e| e.to_string())?;
    store.put(&bytes).map_err(|e| e.to_string())?;
    Ok(())
}

fn load_component(
    r: &ComponentRef,
    runtime: &Runtime,
    store: Option<&ObjectStore>,
    files: ComponentFiles<'_>,
) -> Result<Component, String> {
    let source = match (r, files) {
        (ComponentRef::Std(name), _) => ComponentSource::Std(name.clone()),
        (ComponentRef::Path(path), ComponentFiles::Published(published)) => {
            let name = path.display().to_string();
            let digest = published.get(&name).ok_or_else(|| {
                format!("component `{name}` is not in the published pipeline; publish it again")
            })?;
            let store = store
                .ok_or("a published pipeline's components are in a store, and none is open")?;
            ComponentSource::Bytes {
                name,
                bytes: store.get(digest).map_err(|e| e.to_string())?,
            }
        }
        (ComponentRef::Path(path), ComponentFiles::OnDisk) => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("could not read {}: {e}", path.display()))?;
            if let Some(store) = store {
                store.put(&bytes).map_err(|e| e.to_string())?;
            }
            ComponentSource::Bytes {
                name: path.display().to_string(),
                bytes,
            }
        }
        (ComponentRef::Digest(hex), _) => {
            let digest: Digest = hex
                .parse()
                .map_err(|e: sluice_store::DigestParseError| e.to_string())?;
            let Some(store) = store else {
                return Err(format!(
                    "component {digest} can only be found in a store, and none is open"
                ));
            };
            let bytes = store.get(&digest).map_err(|e| {
                format!(
                    "{e}; a component enters the store when a pipeline runs it from its .wasm path"
                )
            })?;
            ComponentSource::Bytes {
                name: digest.to_string(),
                bytes,
            }
        }
    };
    runtime.load(&source).map_err(|e| e.to_string())
}
