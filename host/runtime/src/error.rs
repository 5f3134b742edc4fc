use std::path::PathBuf;

/// Why a component could not be loaded, checked or described.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The wasmtime engine could not be configured.
    #[error("could not start the WebAssembly engine: {0}")]
    Engine(String),
    /// `std:NAME` names no standard step.
    #[error("there is no standard component `std:{name}`; available: {}", available.join(", "))]
    UnknownStd {
        /// The name asked for.
        name: String,
        /// The names that exist.
        available: Vec<String>,
    },
    /// A component file could not be read.
    #[error("could not read component {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a valid WebAssembly component.
    #[error("{name} is not a valid WebAssembly component: {detail}")]
    Invalid {
        /// The component, as the user named it.
        name: String,
        /// What wasmtime said.
        detail: String,
    },
    /// The component does not implement the step world.
    #[error("{name} does not implement {WIT_WORLD}:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    NotAStep {
        /// The component, as the user named it.
        name: String,
        /// Each missing or mismatched item.
        problems: Vec<String>,
    },
    /// `describe` trapped or returned something unusable.
    #[error("{name}: describe() failed: {detail}")]
    Describe {
        /// The component.
        name: String,
        /// What went wrong.
        detail: String,
    },
}

const WIT_WORLD: &str = "world sluice:pipeline/step@0.1.4";
