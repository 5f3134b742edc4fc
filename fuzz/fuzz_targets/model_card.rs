//! A stored model card (the JSON document a registry version points at),
//! loaded and read the way serving and evaluation read it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_runtime::ModelArtifact;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = ModelArtifact::from_stored(data, |_| Ok(bytes::Bytes::new())) else {
        return;
    };
    let _ = model.features();
    let _ = model.classes();
    let _ = model.label();
    let _ = model.is_classifier();
    let _ = model.card();
    let _ = model.stored_card(&sluice_runtime::Digest::of(b"onnx"));
});
