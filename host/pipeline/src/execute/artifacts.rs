//! Artifacts coming into a run: `[data]` files imported into the store,
//! registry models resolved, and stored artifacts decoded for a step.

use super::ExecuteError;
use crate::spec::{DataInput, DataKind};
use sluice_runtime::{ArtifactKind, Digest, InputArtifact, ModelArtifact};
use sluice_store::{ObjectStore, Store};
use std::sync::Arc;

/// Reads an artifact from the object store and decodes it for a step.
pub(crate) fn load_artifact(
    objects: &ObjectStore,
    digest: &Digest,
    kind: ArtifactKind,
) -> Result<InputArtifact, ExecuteError> {
    let bytes = objects.get(digest)?;
    Ok(match kind {
        ArtifactKind::Table => {
            InputArtifact::Table(sluice_runtime::table::from_parquet(bytes).map_err(|e| {
                ExecuteError::Artifact(format!("stored table {digest} cannot be read: {e}"))
            })?)
        }
        k if k.is_document() => {
            InputArtifact::Document(String::from_utf8_lossy(&bytes).into_owned())
        }
        ArtifactKind::Model => InputArtifact::Model(Arc::new(load_model(objects, digest, &bytes)?)),
        _ => InputArtifact::Bytes(bytes.into()),
    })
}

/// A stored model: its card (`card`, the artifact `digest`) and the ONNX
/// bytes the card names.
fn load_model(
    objects: &ObjectStore,
    digest: &Digest,
    card: &[u8],
) -> Result<ModelArtifact, ExecuteError> {
    ModelArtifact::from_stored(card, |onnx| {
        objects.get(onnx).map(Into::into).map_err(|e| e.to_string())
    })
    .map_err(|e| ExecuteError::Artifact(format!("stored model {digest} cannot be read: {e}")))
}

/// Resolves a `[data]` input that names a registry model; `None` when the
/// registry has no such model (yet).
pub(crate) fn import_model(
    input: &DataInput,
    store: &Store,
) -> Result<Option<(InputArtifact, Digest, u64)>, ExecuteError> {
    let reference: sluice_store::ModelRef =
        input
            .raw_path
            .parse()
            .map_err(|e: sluice_store::registry::ModelRefError| {
                ExecuteError::Artifact(e.to_string())
            })?;
    let Some(version) = store.metadata.resolve_model(&reference)? else {
        return Ok(None);
    };
    let card = store.objects.get(&version.artifact)?;
    let model = load_model(&store.objects, &version.artifact, &card)?;
    Ok(Some((
        InputArtifact::Model(Arc::new(model)),
        version.artifact,
        card.len() as u64,
    )))
}

/// The bytes of a `[data]` file.
pub(crate) fn read_data_file(input: &DataInput) -> Result<Vec<u8>, String> {
    std::fs::read(&input.path).map_err(|e| {
        format!(
            "could not read data input `{}` from {}: {e}",
            input.name,
            input.path.display()
        )
    })
}

/// Reads a `[data]` file into the store and decodes it for the steps.
pub(crate) fn import_data(
    input: &DataInput,
    store: &sluice_store::Store,
    trust_recorded: bool,
) -> Result<(InputArtifact, Digest, u64), String> {
    let bytes = read_data_file(input)?;
    let digest = store
        .put(&bytes, trust_recorded)
        .map_err(|e| e.to_string())?;
    let size = bytes.len() as u64;
    let artifact = match input.kind {
        DataKind::File => InputArtifact::Bytes(bytes.into()),
        DataKind::Model => unreachable!("registry models are resolved by import_model"),
        DataKind::Table => {
            InputArtifact::Table(sluice_runtime::table::from_parquet(bytes).map_err(|e| {
                format!(
                    "data input `{}` ({}) is not a readable Parquet table: {e}",
                    input.name,
                    input.path.display()
                )
            })?)
        }
    };
    Ok((artifact, digest, size))
}
