"""What a step is: its :class:`Manifest`, built from :class:`Port` and :class:`Param`.

The vocabulary is the Rust SDK's::

    Manifest("scale", "0.1.0")
        .doc("Multiplies one numeric column by a factor.")
        .input(Port.table("data"))
        .output(Port.table("scaled"))
        .param(Param.text("column").required())
        .param(Param.float("factor").default(2.0))

Builder methods change the object in place and return it, so calls chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

#: What an artifact holds, and so how it is stored and who may consume it.
ArtifactKind = Literal[
    "table", "model", "schema", "statistics", "metrics", "transform", "file"
]

#: The type a parameter declares; the host checks spec values against it.
ValueType = Literal["boolean", "integer", "float", "text", "json"]

#: A parameter value: a scalar, or (for ``json`` params) any JSON-serializable value.
ParamValue = Union[bool, int, float, str, list, dict, None]

ARTIFACT_KINDS: tuple[ArtifactKind, ...] = (
    "table", "model", "schema", "statistics", "metrics", "transform", "file",
)
VALUE_TYPES: tuple[ValueType, ...] = ("boolean", "integer", "float", "text", "json")


@dataclass
class Port:
    """One named input or output of a step."""

    name: str
    kind: ArtifactKind
    is_optional: bool = False
    doc_text: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ARTIFACT_KINDS:
            raise ValueError(f"port `{self.name}`: unknown artifact kind {self.kind!r}")

    @classmethod
    def table(cls, name: str) -> Port:
        """A ``table`` port (columnar data)."""
        return cls(name, "table")

    @classmethod
    def file(cls, name: str) -> Port:
        """A ``file`` port (raw bytes)."""
        return cls(name, "file")

    @classmethod
    def statistics(cls, name: str) -> Port:
        """A ``statistics`` port (JSON)."""
        return cls(name, "statistics")

    @classmethod
    def schema(cls, name: str) -> Port:
        """A ``schema`` port (JSON)."""
        return cls(name, "schema")

    @classmethod
    def metrics(cls, name: str) -> Port:
        """A ``metrics`` port (JSON)."""
        return cls(name, "metrics")

    @classmethod
    def model(cls, name: str) -> Port:
        """A ``model`` port."""
        return cls(name, "model")

    @classmethod
    def transform(cls, name: str) -> Port:
        """A ``transform`` port (JSON)."""
        return cls(name, "transform")

    def optional(self) -> Port:
        """Marks an input as optional: the spec may leave it unbound."""
        self.is_optional = True
        return self

    def doc(self, text: str) -> Port:
        """Sets the documentation."""
        self.doc_text = text
        return self


@dataclass
class Param:
    """One parameter a step accepts."""

    name: str
    value_type: ValueType
    default_value: ParamValue = None
    is_required: bool = False
    doc_text: str = ""

    def __post_init__(self) -> None:
        if self.value_type not in VALUE_TYPES:
            raise ValueError(f"param `{self.name}`: unknown value type {self.value_type!r}")

    @classmethod
    def boolean(cls, name: str) -> Param:
        """A boolean parameter."""
        return cls(name, "boolean")

    @classmethod
    def integer(cls, name: str) -> Param:
        """An integer parameter."""
        return cls(name, "integer")

    @classmethod
    def float(cls, name: str) -> Param:
        """A float parameter (the spec may also give an integer)."""
        return cls(name, "float")

    @classmethod
    def text(cls, name: str) -> Param:
        """A text parameter."""
        return cls(name, "text")

    @classmethod
    def json(cls, name: str) -> Param:
        """A structured parameter: a TOML array or table in the spec."""
        return cls(name, "json")

    def default(self, value: ParamValue) -> Param:
        """Sets the default value; a parameter with a default is not required."""
        self.default_value = value
        self.is_required = False
        return self

    def required(self) -> Param:
        """Marks the parameter as required (and drops any default)."""
        self.is_required = True
        self.default_value = None
        return self

    def doc(self, text: str) -> Param:
        """Sets the documentation."""
        self.doc_text = text
        return self


@dataclass
class Manifest:
    """What a step is and what it consumes and produces; returned by ``describe``."""

    name: str
    version: str
    doc_text: str = ""
    inputs: list[Port] = field(default_factory=list)
    outputs: list[Port] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)

    def doc(self, text: str) -> Manifest:
        """Sets the documentation."""
        self.doc_text = text
        return self

    def input(self, port: Port) -> Manifest:
        """Adds an input port."""
        self.inputs.append(port)
        return self

    def output(self, port: Port) -> Manifest:
        """Adds an output port."""
        self.outputs.append(port)
        return self

    def param(self, param: Param) -> Manifest:
        """Adds a parameter."""
        self.params.append(param)
        return self
