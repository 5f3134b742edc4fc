//! Write [sluice] pipeline steps in Rust: one [`Step`] impl plus one
//! [`export_step!`].
//!
//! A step is a WebAssembly component (`wasm32-wasip2`, crate type `cdylib`)
//! exporting the `sluice:pipeline/step` world. It has no ambient authority:
//! it reads its inputs and params and writes its outputs through the
//! [`Context`] it is handed, and nothing else.
//!
//! ```ignore
//! use sluice_sdk::{Context, Manifest, Param, Port, Step, StepError, TableBuilder, export_step};
//!
//! struct Scale;
//!
//! impl Step for Scale {
//!     fn describe() -> Manifest {
//!         Manifest::new("scale", "0.1.0")
//!             .doc("Multiplies one numeric column by a factor.")
//!             .input(Port::table("data").doc("The rows to scale."))
//!             .output(Port::table("scaled"))
//!             .param(Param::text("column").required().doc("The column to scale."))
//!             .param(Param::float("factor").default(2.0))
//!     }
//!
//!     fn run(ctx: &Context) -> Result<(), StepError> {
//!         let column: String = ctx.param("column")?;
//!         let factor: f64 = ctx.param("factor")?;
//!         let data = ctx.input_table("data")?;
//!         // A missing column or one that is not numeric is an InvalidInput error.
//!         let values = data.column_f64(&column)?;
//!         if factor == 0.0 {
//!             return Err(StepError::invalid_input("factor must not be zero"));
//!         }
//!         let scaled = values.into_iter().map(|v| v.map(|x| x * factor)).collect();
//!         let table = TableBuilder::new().add_f64(&column, scaled)?.finish()?;
//!         ctx.metric("rows", data.num_rows() as f64);
//!         ctx.info(format!("scaled `{column}` by {factor}"));
//!         ctx.output_table("scaled", &table)
//!     }
//! }
//!
//! export_step!(Scale);
//! ```
//!
//! This example is built and run by the end-to-end tests as
//! `components/test-programs/scale`, so it stays correct.
//!
//! Models: the host trains, runs and measures them natively; the [`ml`]
//! module asks it to ([`ml::train`], [`ml::evaluate`], [`Model::predict`]),
//! and [`Context::input_model`], [`Context::output_model`] and
//! [`Context::register_model`] move them in and out of a step. The
//! [`serving`] module asks the host to start a model in the real model
//! server and measure it.
//!
//! A panic inside `run` traps the component; before it does, the SDK writes
//! it to the step's log as one error line, `panic: <message> at
//! <file>:<line>:<col>`, which the host reports as the step's failure.
//!
//! [sluice]: https://github.com/sluice

mod context;
mod error;
mod manifest;
pub mod ml;
pub mod rng;
pub mod serving;
mod table;
mod value;

pub use context::Context;
pub use error::{StepError, TableError};
pub use manifest::{ArtifactKind, Manifest, Param, Port};
pub use ml::{Evaluation, Model, ModelCard, Task};
pub use table::{
    Aggregate, Column, ColumnInfo, ColumnType, DType, Field, JoinKind, SortKey, SplitBy, Table,
    TableBuilder, concat, sql,
};
pub use value::{FromParam, Value, ValueType};

/// Bindings generated from the `sluice:pipeline` WIT package; used by
/// [`export_step!`], not meant to be used directly.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "step",
        pub_export_macro: true,
        default_bindings_module: "sluice_sdk::bindings",
    });
}

/// A pipeline step: what it is ([`describe`](Step::describe)) and what it does
/// ([`run`](Step::run)). Export it with [`export_step!`].
pub trait Step {
    /// Describes the step: its name, version, ports and params. Called
    /// without inputs; must not fail.
    fn describe() -> Manifest;

    /// Runs the step against the inputs and params in `ctx`.
    fn run(ctx: &Context) -> Result<(), StepError>;
}

/// Exports a type implementing [`Step`] as the component's `step` world.
/// Use it once per crate, at module level.
///
/// ```ignore
/// sluice_sdk::export_step!(MyStep);
/// ```
#[macro_export]
macro_rules! export_step {
    ($ty:ty) => {
        const _: () = {
            struct __SluiceStep;

            impl $crate::bindings::Guest for __SluiceStep {
                fn describe() -> $crate::bindings::sluice::pipeline::types::Manifest {
                    $crate::__private::describe::<$ty>()
                }

                fn run()
                -> ::core::result::Result<(), $crate::bindings::sluice::pipeline::types::StepError>
                {
                    $crate::__private::run::<$ty>()
                }
            }

    $crate::bindings::export!(__SluiceStep with_types_in $crate::bindings);
        };
    };
}

/// Glue called by [`export_step!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    use std::panic::PanicHookInfo;
    use std::sync::Once;

    use crate::bindings::sluice::pipeline::{context as host, types as raw};
    use crate::{ArtifactKind, Context, Manifest, Step, StepError, Value, ValueType};

    /// The manifest of `S`, as the host expects it.
    pub fn describe<S: Step>() -> raw::Manifest {
        manifest_to_raw(S::describe())
    }

    /// Runs `S` with a panic hook that logs the panic through the context.
    pub fn run<S: Step>() -> Result<(), raw::StepError> {
        install_panic_hook();
        S::run(&Context::new()).map_err(|e| match e {
            StepError::InvalidInput(m) => raw::StepError::InvalidInput(m),
            StepError::Rejected(m) => raw::StepError::Rejected(m),
            StepError::Failed(m) => raw::StepError::Failed(m),
        })
    }

    fn install_panic_hook() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let line = panic_line(info);
                eprintln!("{line}");
                host::log(raw::LogLevel::Error, &line);
            }));
        });
    }

    /// `panic: <message> at <file>:<line>:<col>`.
    fn panic_line(info: &PanicHookInfo<'_>) -> String {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("Box<dyn Any>");
        match info.location() {
            Some(l) => format!(
                "panic: {message} at {}:{}:{}",
                l.file(),
                l.line(),
                l.column()
            ),
            None => format!("panic: {message}"),
        }
    }

    fn manifest_to_raw(m: Manifest) -> raw::Manifest {
        let port = |p: crate::Port| raw::Port {
            name: p.name,
            kind: match p.kind {
                ArtifactKind::Table => raw::ArtifactKind::Table,
                ArtifactKind::Model => raw::ArtifactKind::Model,
                ArtifactKind::Schema => raw::ArtifactKind::Schema,
                ArtifactKind::Statistics => raw::ArtifactKind::Statistics,
                ArtifactKind::Metrics => raw::ArtifactKind::Metrics,
                ArtifactKind::Transform => raw::ArtifactKind::Transform,
                ArtifactKind::File => raw::ArtifactKind::File,
            },
            optional: p.optional,
            doc: p.doc,
        };
        raw::Manifest {
            name: m.name,
            version: m.version,
            doc: m.doc,
            inputs: m.inputs.into_iter().map(port).collect(),
            outputs: m.outputs.into_iter().map(port).collect(),
            params: m
                .params
                .into_iter()
                .map(|p| raw::ParamSpec {
                    name: p.name,
                    value_type: match p.value_type {
                        ValueType::Boolean => raw::ValueType::Boolean,
                        ValueType::Integer => raw::ValueType::Integer,
                        ValueType::Float => raw::ValueType::Float,
                        ValueType::Text => raw::ValueType::Text,
                        ValueType::Json => raw::ValueType::Json,
                    },
                    default: p.default.map(|v| match v {
                        Value::Boolean(b) => raw::Value::Boolean(b),
                        Value::Integer(i) => raw::Value::Integer(i),
                        Value::Float(f) => raw::Value::Float(f),
                        Value::Text(s) => raw::Value::Text(s),
                        Value::Json(s) => raw::Value::Json(s),
                    }),
                    required: p.required,
                    doc: p.doc,
                })
                .collect(),
        }
    }

    #[cfg(test)]
    mod tests {
        use std::sync::Mutex;

        static LINE: Mutex<String> = Mutex::new(String::new());

        #[test]
        fn panic_line_names_message_and_location() {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(|info| {
                *LINE.lock().unwrap() = super::panic_line(info);
            }));
            let line = line!() + 1;
            let _ = std::panic::catch_unwind(|| panic!("boom {}", 42));
            std::panic::set_hook(previous);
            let got = LINE.lock().unwrap().clone();
            let want = format!("panic: boom 42 at {}:{line}:", file!());
            assert!(got.starts_with(&want), "{got}");
        }
    }
}
