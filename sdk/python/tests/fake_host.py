"""An in-memory stand-in for the `wit_world` bindings componentize-py
generates, for unit tests on plain CPython. Mirrors the shapes the real
bindings have (see `componentize-py -d wit -w step bindings OUT`)."""

from __future__ import annotations

import sys
import types as _pytypes
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

E = TypeVar("E")


@dataclass(frozen=True)
class Err(Generic[E], Exception):
    value: E


def _variant(name: str) -> type:
    return dataclass(type(name, (), {"__annotations__": {"value": Any}}))


# ---- types ----
types_mod = _pytypes.ModuleType("wit_world.imports.types")
for n in ("Value_Boolean", "Value_Integer", "Value_Float", "Value_Text", "Value_Json",
          "StepError_InvalidInput", "StepError_Rejected", "StepError_Failed"):
    setattr(types_mod, n, _variant(n))
types_mod.ValueType = Enum("ValueType", "BOOLEAN INTEGER FLOAT TEXT JSON")
types_mod.ArtifactKind = Enum("ArtifactKind", "TABLE MODEL SCHEMA STATISTICS METRICS TRANSFORM FILE")
types_mod.LogLevel = Enum("LogLevel", "DEBUG INFO WARN ERROR")
types_mod.Port = dataclass(type("Port", (), {"__annotations__": dict(name=str, kind=Any, optional=bool, doc=str)}))
types_mod.ParamSpec = dataclass(type("ParamSpec", (), {"__annotations__": dict(
    name=str, value_type=Any, default=Any, required=bool, doc=str)}))
types_mod.Manifest = dataclass(type("Manifest", (), {"__annotations__": dict(
    name=str, version=str, doc=str, inputs=list, outputs=list, params=list)}))

# ---- tables ----
tables_mod = _pytypes.ModuleType("wit_world.imports.tables")
tables_mod.Dtype = Enum("Dtype", "BOOLEAN INT64 FLOAT64 UTF8")
for n in ("Values_Boolean", "Values_Int64", "Values_Float64", "Values_Utf8"):
    setattr(tables_mod, n, _variant(n))
tables_mod.Column = dataclass(type("Column", (), {"__annotations__": dict(values=Any, nulls=list)}))
tables_mod.Field = dataclass(type("Field", (), {"__annotations__": dict(name=str, dtype=Any, nullable=bool)}))

last_columns: dict[str, Any] = {}
_DT = {"Values_Boolean": "BOOLEAN", "Values_Int64": "INT64", "Values_Float64": "FLOAT64", "Values_Utf8": "UTF8"}


class Table:
    def __init__(self, cols: dict[str, Any]) -> None:
        self.cols = cols

    def fields(self) -> list[Any]:
        return [tables_mod.Field(n, tables_mod.Dtype[_DT[type(c.values).__name__]], bool(c.nulls))
                for n, c in self.cols.items()]

    def num_rows(self) -> int:
        return len(next(iter(self.cols.values())).values.value) if self.cols else 0

    def column(self, name: str) -> Any:
        if name not in self.cols:
            raise Err(f"the table has no column `{name}`")
        return self.cols[name]

    def slice(self, offset: int, n: int) -> Table:
        raise NotImplementedError

    def select(self, columns: list[str]) -> Table:
        missing = [c for c in columns if c not in self.cols]
        if missing:
            raise Err(f"the table has no column `{missing[0]}`")
        return Table({c: self.cols[c] for c in columns})


#: The queries `sql` was given, with the names of their inputs.
SQL_CALLS: list[tuple[str, list[str]]] = []


def _sql(query: str, inputs: list[tuple[str, Table]]) -> Table:
    SQL_CALLS.append((query, [name for name, _ in inputs]))
    if "syntax error" in query:
        raise Err("SQL error: ParserError(\"Expected an expression\")")
    return inputs[0][1] if inputs else Table({})


class TableBuilder:
    def __init__(self) -> None:
        self.cols: dict[str, Any] = {}

    def add_column(self, name: str, data: Any) -> None:
        if name in self.cols:
            raise Err(f"repeated column `{name}`")
        if self.cols and len(data.values.value) != Table(self.cols).num_rows():
            raise Err("length differs")
        self.cols[name] = data
        last_columns[name] = data

    def finish(self) -> Table:
        t, self.cols = Table(self.cols), {}
        return t


tables_mod.Table = Table
tables_mod.TableBuilder = TableBuilder
tables_mod.sql = _sql

# ---- context ----
PARAMS: dict[str, Any] = {}
OUTPUTS: dict[str, Any] = {}
LOG: list[tuple[Any, str]] = []
context_mod = _pytypes.ModuleType("wit_world.imports.context")
context_mod.param = lambda name: PARAMS.get(name)
context_mod.log = lambda level, message: LOG.append((level, message))
context_mod.metric = lambda name, value: None
context_mod.progress = lambda done, total, message: None
context_mod.has_input = lambda port: False


def _output(port: str, data: Any) -> None:
    OUTPUTS[port] = data


context_mod.output_document = _output
context_mod.output_table = _output
context_mod.output_bytes = _output


def reset() -> None:
    PARAMS.clear()
    OUTPUTS.clear()
    LOG.clear()
    last_columns.clear()


cpt = _pytypes.ModuleType("componentize_py_types")
cpt.Err = Err
ww = _pytypes.ModuleType("wit_world")
imports = _pytypes.ModuleType("wit_world.imports")
imports.types, imports.tables, imports.context = types_mod, tables_mod, context_mod
ww.imports = imports
sys.modules.update({
    "componentize_py_types": cpt, "wit_world": ww, "wit_world.imports": imports,
    "wit_world.imports.types": types_mod, "wit_world.imports.tables": tables_mod,
    "wit_world.imports.context": context_mod,
})
