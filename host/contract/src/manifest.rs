//! What a step says it is: its ports, their artifact kinds, its parameters.

use crate::value::{Value, ValueType};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// What an artifact holds, and so how it is stored and who may consume it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum ArtifactKind {
    /// Columnar data: Arrow in the host, Parquet on disk.
    Table,
    /// A trained model: ONNX bytes plus a JSON card.
    Model,
    /// A data schema (JSON).
    Schema,
    /// Per-column statistics (JSON).
    Statistics,
    /// Evaluation or validation metrics (JSON).
    Metrics,
    /// A fitted transform (JSON).
    Transform,
    /// Raw bytes.
    File,
}

impl ArtifactKind {
    /// Every kind, in declaration order.
    pub const ALL: [ArtifactKind; 7] = [
        Self::Table,
        Self::Model,
        Self::Schema,
        Self::Statistics,
        Self::Metrics,
        Self::Transform,
        Self::File,
    ];

    /// The lower-case name used in specs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Model => "model",
            Self::Schema => "schema",
            Self::Statistics => "statistics",
            Self::Metrics => "metrics",
            Self::Transform => "transform",
            Self::File => "file",
        }
    }

    /// Whether artifacts of this kind are JSON documents.
    pub fn is_document(self) -> bool {
        matches!(
            self,
            Self::Schema | Self::Statistics | Self::Metrics | Self::Transform
        )
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named input or output of a step.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Port {
    /// Unique among the step's inputs (or outputs).
    pub name: String,
    /// What flows through the port.
    pub kind: ArtifactKind,
    /// An optional input may be left unbound by the spec.
    pub optional: bool,
    /// One line saying what the port is for.
    pub doc: String,
}

impl Port {
    /// A required port of the given kind, without documentation.
    pub fn new(name: impl Into<String>, kind: ArtifactKind) -> Self {
        Self {
            name: name.into(),
            kind,
            optional: false,
            doc: String::new(),
        }
    }

    /// A `table` port.
    pub fn table(name: impl Into<String>) -> Self {
        Self::new(name, ArtifactKind::Table)
    }

    /// A `file` port (raw bytes).
    pub fn file(name: impl Into<String>) -> Self {
        Self::new(name, ArtifactKind::File)
    }

    /// A `statistics` port (JSON).
    pub fn statistics(name: impl Into<String>) -> Self {
        Self::new(name, ArtifactKind::Statistics)
    }

    /// A `schema` port (JSON).
    pub fn schema(name: impl Into<String>) -> Self {
        Self::new(name, ArtifactKind::Schema)
    }

    /// A `metrics` port (JSON).
    pub fn metrics(name: impl Into<String>) -> Self {
        Self::new(name, ArtifactKind::Metrics)
    }

    /// A `model` port.
    pub fn model(name: impl Into<String>) -> Self {
        Self::new(name, ArtifactKind::Model)
    }

    /// A `transform` port (JSON).
    pub fn transform(name: impl Into<String>) -> Self {
        Self::new(name, ArtifactKind::Transform)
    }

    /// Marks an input as optional: the spec may leave it unbound.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Sets the documentation.
    pub fn doc(mut self, text: impl Into<String>) -> Self {
        self.doc = text.into();
        self
    }
}

/// One parameter a step accepts.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ParamSpec {
    /// The name used in the spec's `params` table.
    pub name: String,
    /// The type the spec's value must have.
    pub value_type: ValueType,
    /// Used when the spec does not set the parameter.
    pub default: Option<Value>,
    /// Whether the spec must set it.
    pub required: bool,
    /// One line saying what the parameter does.
    pub doc: String,
}

impl ParamSpec {
    /// An optional parameter of the given type, with no default.
    pub fn new(name: impl Into<String>, value_type: ValueType) -> Self {
        Self {
            name: name.into(),
            value_type,
            default: None,
            required: false,
            doc: String::new(),
        }
    }

    /// A boolean parameter.
    pub fn boolean(name: impl Into<String>) -> Self {
        Self::new(name, ValueType::Boolean)
    }

    /// An integer parameter.
    pub fn integer(name: impl Into<String>) -> Self {
        Self::new(name, ValueType::Integer)
    }

    /// A float parameter (the spec may also give an integer).
    pub fn float(name: impl Into<String>) -> Self {
        Self::new(name, ValueType::Float)
    }

    /// A text parameter.
    pub fn text(name: impl Into<String>) -> Self {
        Self::new(name, ValueType::Text)
    }

    /// A structured (JSON) parameter: a TOML array or table in the spec.
    pub fn json(name: impl Into<String>) -> Self {
        Self::new(name, ValueType::Json)
    }

    /// Sets the default value; a parameter with a default is not required.
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self.required = false;
        self
    }

    /// Marks the parameter as required (and drops any default).
    pub fn required(mut self) -> Self {
        self.required = true;
        self.default = None;
        self
    }

    /// Sets the documentation.
    pub fn doc(mut self, text: impl Into<String>) -> Self {
        self.doc = text.into();
        self
    }
}

/// What a step is and what it consumes, produces and accepts.
///
/// Built by a step with the builder methods ([`Manifest::new`],
/// [`input`](Manifest::input), …) and read by the host with the `find_*`
/// look-ups.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Manifest {
    /// The step's name, e.g. `ingest-csv`.
    pub name: String,
    /// The step's own semantic version.
    pub version: String,
    /// What the step does.
    pub doc: String,
    /// Input ports, in order.
    pub inputs: Vec<Port>,
    /// Output ports, in order.
    pub outputs: Vec<Port>,
    /// Parameters, in order.
    pub params: Vec<ParamSpec>,
}

impl Manifest {
    /// A manifest with no ports and no params.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            doc: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Sets the documentation.
    pub fn doc(mut self, text: impl Into<String>) -> Self {
        self.doc = text.into();
        self
    }

    /// Adds an input port.
    pub fn input(mut self, port: Port) -> Self {
        self.inputs.push(port);
        self
    }

    /// Adds an output port.
    pub fn output(mut self, port: Port) -> Self {
        self.outputs.push(port);
        self
    }

    /// Adds a parameter.
    pub fn param(mut self, param: ParamSpec) -> Self {
        self.params.push(param);
        self
    }

    /// The input port called `name`.
    pub fn find_input(&self, name: &str) -> Option<&Port> {
        self.inputs.iter().find(|p| p.name == name)
    }

    /// The output port called `name`.
    pub fn find_output(&self, name: &str) -> Option<&Port> {
        self.outputs.iter().find(|p| p.name == name)
    }

    /// The parameter called `name`.
    pub fn find_param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_what_they_say() {
        let m = Manifest::new("s", "1.0.0")
            .input(Port::table("data").optional().doc("rows"))
            .output(Port::metrics("out"))
            .param(ParamSpec::integer("k").default(3))
            .param(ParamSpec::text("label").default("y").required());
        let data = m.find_input("data").unwrap();
        assert!(data.optional);
        assert_eq!(data.doc, "rows");
        assert_eq!(m.find_output("out").unwrap().kind, ArtifactKind::Metrics);
        assert_eq!(m.find_param("k").unwrap().default, Some(Value::Integer(3)));
        let label = m.find_param("label").unwrap();
        assert!(label.required && label.default.is_none());
        assert!(m.find_input("out").is_none());
    }

    #[test]
    fn documents_are_the_json_kinds() {
        let docs: Vec<_> = ArtifactKind::ALL
            .into_iter()
            .filter(|k| k.is_document())
            .collect();
        assert_eq!(
            docs,
            [
                ArtifactKind::Schema,
                ArtifactKind::Statistics,
                ArtifactKind::Metrics,
                ArtifactKind::Transform
            ]
        );
    }
}
