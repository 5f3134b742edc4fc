//! Host-side mirror of the contract's descriptive types: what a step says it
//! consumes, produces and accepts. Independent of wasmtime so that spec
//! validation, the CLI and the store can use them without an engine.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A parameter value, as written in a pipeline spec or declared as a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "value")]
pub enum Value {
    /// `true` / `false`.
    Boolean(bool),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A 64-bit float.
    Float(f64),
    /// A string.
    Text(String),
    /// A structured value (TOML array or table), as JSON text.
    Json(String),
}

impl Value {
    /// The type of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Boolean(_) => ValueType::Boolean,
            Value::Integer(_) => ValueType::Integer,
            Value::Float(_) => ValueType::Float,
            Value::Text(_) => ValueType::Text,
            Value::Json(_) => ValueType::Json,
        }
    }

    /// The value as plain JSON (`Json` values are parsed, falling back to a string).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Boolean(b) => serde_json::Value::Bool(*b),
            Value::Integer(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Value::from(*f),
            Value::Text(s) => serde_json::Value::String(s.clone()),
            Value::Json(s) => {
                serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.clone()))
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Json(s) => f.write_str(s),
        }
    }
}

/// The type a parameter declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValueType {
    /// `true` / `false`.
    Boolean,
    /// A signed 64-bit integer.
    Integer,
    /// A 64-bit float; integers are accepted too.
    Float,
    /// A string.
    Text,
    /// A TOML array or table, passed as JSON.
    Json,
}

impl ValueType {
    /// Whether a value of type `given` is acceptable where `self` is declared.
    pub fn accepts(self, given: ValueType) -> bool {
        self == given || (self == ValueType::Float && given == ValueType::Integer)
    }

    /// The lower-case name used in specs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Boolean => "boolean",
            ValueType::Integer => "integer",
            ValueType::Float => "float",
            ValueType::Text => "text",
            ValueType::Json => "json",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an artifact holds, and so how it is stored and who may consume it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    /// Columnar data: Arrow in the host, Parquet on disk.
    Table,
    /// ONNX bytes plus a JSON card.
    Model,
    /// A data schema (JSON).
    Schema,
    /// Per-column statistics (JSON).
    Statistics,
    /// Metrics (JSON).
    Metrics,
    /// A fitted transform (JSON).
    Transform,
    /// Raw bytes.
    File,
}

impl ArtifactKind {
    /// Every kind, in declaration order.
    pub const ALL: [ArtifactKind; 7] = [
        ArtifactKind::Table,
        ArtifactKind::Model,
        ArtifactKind::Schema,
        ArtifactKind::Statistics,
        ArtifactKind::Metrics,
        ArtifactKind::Transform,
        ArtifactKind::File,
    ];

    /// The lower-case name used in specs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Table => "table",
            ArtifactKind::Model => "model",
            ArtifactKind::Schema => "schema",
            ArtifactKind::Statistics => "statistics",
            ArtifactKind::Metrics => "metrics",
            ArtifactKind::Transform => "transform",
            ArtifactKind::File => "file",
        }
    }

    /// Whether artifacts of this kind are JSON documents.
    pub fn is_document(self) -> bool {
        matches!(
            self,
            ArtifactKind::Schema
                | ArtifactKind::Statistics
                | ArtifactKind::Metrics
                | ArtifactKind::Transform
        )
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named input or output of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    /// Unique among the step's inputs (or outputs).
    pub name: String,
    /// What flows through the port.
    pub kind: ArtifactKind,
    /// An optional input may be left unbound.
    pub optional: bool,
    /// One line saying what the port is for.
    pub doc: String,
}

/// One parameter a step accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// The name used in the spec's `params` table.
    pub name: String,
    /// The declared type.
    pub value_type: ValueType,
    /// Used when the spec does not set the parameter.
    pub default: Option<Value>,
    /// Whether the spec must set it.
    pub required: bool,
    /// One line saying what the parameter does.
    pub doc: String,
}

/// What a step is and what it consumes, produces and accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The step's name, e.g. `ingest-csv`.
    pub name: String,
    /// The step's own semantic version.
    pub version: String,
    /// What the step does.
    pub doc: String,
    /// Input ports.
    pub inputs: Vec<Port>,
    /// Output ports.
    pub outputs: Vec<Port>,
    /// Parameters.
    pub params: Vec<ParamSpec>,
}

impl Manifest {
    /// The input port called `name`.
    pub fn input(&self, name: &str) -> Option<&Port> {
        self.inputs.iter().find(|p| p.name == name)
    }

    /// The output port called `name`.
    pub fn output(&self, name: &str) -> Option<&Port> {
        self.outputs.iter().find(|p| p.name == name)
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
}
