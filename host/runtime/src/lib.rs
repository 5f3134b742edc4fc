//! The sluice component runtime.
//!
//! Loads WebAssembly components that implement the `sluice:pipeline/step`
//! world, compiles them once (keeping native code in an on-disk cache keyed
//! by component digest and engine configuration), pre-links them for
//! microsecond instantiation, and runs them in a sandbox: no files, no
//! network, no environment, bounded memory, time and output, captured
//! stdout/stderr, and randomness seeded by the caller.
//!
//! ```no_run
//! use sluice_runtime::{ComponentSource, Invocation, Runtime, RuntimeConfig};
//!
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let step = runtime.load(&ComponentSource::parse("std:statistics"))?;
//! println!("{:#?}", step.describe()?);
//! # Ok::<(), sluice_runtime::RuntimeError>(())
//! ```
//!
//! Neighbours: the contract's plain types come from `sluice-contract` (and
//! are re-exported here); stored artifacts and digests from `sluice-store`;
//! the `ml` imports are served by `sluice-ml`; the `serving` import by a
//! [`ServingProbe`] the caller injects (`sluice-serve` has the real one);
//! the standard steps' bytes by `sluice-std-components`. Above it, `sluice-pipeline` schedules steps and
//! `sluice-serve` replays transforms; neither reaches into wasmtime.

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "step",
        // Training and table work can take a while: they run on other
        // threads, so that the step's time limit still applies while they do.
        imports: {
            "sluice:pipeline/ml.train": async | trappable,
            "sluice:pipeline/ml.train-validated": async | trappable,
            "sluice:pipeline/ml.evaluate": async | trappable,
            "sluice:pipeline/ml.evaluate-raw": async | trappable,
            "sluice:pipeline/ml.[method]model.transform": async | trappable,
            "sluice:pipeline/ml.[method]model.predict": async | trappable,
            // Reading a table and building one are quick and run in place:
            // a synchronous call skips the boxed future and the fiber's
            // poll that an async one costs, and a transform makes about
            // two per batch it applies to (`columns`, `add-columns`).
            "sluice:pipeline/tables.[method]table.fields": trappable,
            "sluice:pipeline/tables.[method]table.num-rows": trappable,
            "sluice:pipeline/tables.[method]table.schema": trappable,
            "sluice:pipeline/tables.[method]table.batch-rows": trappable,
            "sluice:pipeline/tables.[method]table.column": trappable,
            "sluice:pipeline/tables.[method]table.column-chunk": trappable,
            "sluice:pipeline/tables.[method]table.columns": trappable,
            "sluice:pipeline/tables.[method]table.slice": trappable,
            "sluice:pipeline/tables.[drop]table": trappable,
            "sluice:pipeline/tables.[constructor]table-builder": trappable,
            "sluice:pipeline/tables.[method]table-builder.add-column": trappable,
            "sluice:pipeline/tables.[method]table-builder.add-columns": trappable,
            "sluice:pipeline/tables.[method]table-builder.finish": trappable,
            "sluice:pipeline/tables.[drop]table-builder": trappable,
            "sluice:pipeline/tables": async | trappable,
            "sluice:pipeline/context.output-table": async | trappable,
            "sluice:pipeline/context.read-file": async | trappable,
            // Starting a server and loading it takes seconds: the step's
            // time limit must still apply.
            "sluice:pipeline/serving.probe": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        with: {
            "sluice:pipeline/tables.table": crate::table::TableRes,
            "sluice:pipeline/tables.table-builder": crate::table::TableBuilderRes,
            "sluice:pipeline/ml.model": crate::model::ModelRes,
        },
    });
}

#[cfg(feature = "compiler")]
pub mod cache;
pub mod clocks;
mod dataplane;
mod engine;
pub mod engine_config;
mod error;
mod host;
pub mod manifest;
mod ml;
pub mod model;
pub mod outcome;
pub mod sandbox;
mod serving;
pub mod table;
pub mod transform;

pub use clocks::ClockMode;
pub use engine::{CacheOutcome, CacheStats};
pub use engine::{Component, ComponentSource, Runtime, RuntimeConfig, WIT_PACKAGE};
pub use error::RuntimeError;
pub use manifest::{ArtifactKind, DType, Manifest, ParamSpec, Port, Value, ValueType};
pub use model::{ModelArtifact, ModelError};
pub use outcome::{
    ComponentLoader, EventSink, InputArtifact, Invocation, LogLevel, LogLine, OutputArtifact,
    ProbeAnswer, ProbeOptions, Registration, ServingProbe, StepEvent, StepFailure, StepOutcome,
};
pub use sandbox::Limits;
pub use sluice_digest::Digest;
/// The ONNX operators sluice-ml's lite evaluator runs (a runtime without
/// the `onnx-engine` feature, as in the default `sluice-edge`), and the
/// check `sluice bundle` makes with them before it writes a bundle.
pub use sluice_ml::{LITE_OPERATORS, lite_unsupported_operators};
pub use transform::{TransformError, TransformRunner};
