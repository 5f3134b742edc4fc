//! A pipeline spec: parsed, and its diagnostics rendered (spans into the
//! source must stay on character boundaries and inside the text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_pipeline::diagnostic::Code;
use sluice_pipeline::spec::Spec;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Spec::parse(Path::new("pipeline.toml"), text) {
        Ok(spec) => {
            // Every span a parsed spec keeps must render.
            for step in &spec.steps {
                for span in [step.span, step.name_span, step.component_span] {
                    let _ = spec
                        .diagnostic(Code::InvalidValue, span, "here")
                        .to_string();
                }
            }
        }
        Err(diagnostics) => {
            let _ = diagnostics.to_string();
        }
    }
});
