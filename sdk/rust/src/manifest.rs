//! What a step is: its [`Manifest`], built from [`Port`]s and [`Param`]s.

use crate::value::{Value, ValueType};

/// What an artifact holds, and so how it is stored and who may consume it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// Columnar data.
    Table,
    /// A trained model.
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

/// One named input or output of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    /// Unique among the step's inputs (or outputs).
    pub name: String,
    /// What the artifact holds.
    pub kind: ArtifactKind,
    /// Whether an input may be left unbound.
    pub optional: bool,
    /// What the port is for.
    pub doc: String,
}

impl Port {
    /// A port of the given kind.
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
pub struct Param {
    /// The parameter's name.
    pub name: String,
    /// The type the spec's value must have.
    pub value_type: ValueType,
    /// Used when the spec does not set the parameter.
    pub default: Option<Value>,
    /// Whether the spec must set the parameter.
    pub required: bool,
    /// What the parameter does.
    pub doc: String,
}

impl Param {
    /// A parameter of the given type.
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

/// What a step is and what it consumes and produces; returned by
/// [`Step::describe`](crate::Step::describe).
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The step's name.
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
    pub params: Vec<Param>,
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
    pub fn param(mut self, param: Param) -> Self {
        self.params.push(param);
        self
    }
}
