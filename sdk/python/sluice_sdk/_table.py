"""Host-owned tables: read them column by column (:class:`Table`), ask the
host to compute new ones natively (:meth:`Table.select`, :meth:`Table.compute`,
:meth:`Table.filter`, :func:`sql` …), build new ones column by column
(:class:`TableBuilder`).

Data stays in the host as Arrow; a step copies in only the columns it asks
for. A column arrives as a plain Python list, with ``None`` for nulls. Bulk
work belongs in the host: a SQL query over a million rows runs at native
speed, the same loop in Python does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence, Union

from componentize_py_types import Err
from wit_world.imports import tables as _raw

from ._errors import StepError

#: The type of a column's values.
DType = Literal["boolean", "int64", "float64", "utf8"]

#: One column's values, ``None`` where the row is null.
ColumnValues = Union[
    list[Optional[bool]], list[Optional[int]], list[Optional[float]], list[Optional[str]]
]

_DTYPE_NAMES: dict[Any, DType] = {
    _raw.Dtype.BOOLEAN: "boolean",
    _raw.Dtype.INT64: "int64",
    _raw.Dtype.FLOAT64: "float64",
    _raw.Dtype.UTF8: "utf8",
}

_PLACEHOLDER: dict[DType, Any] = {"boolean": False, "int64": 0, "float64": 0.0, "utf8": ""}


@dataclass(frozen=True)
class Field:
    """A column's name and type."""

    name: str
    dtype: DType
    nullable: bool


def _dtype_of(values: Any) -> DType:
    if isinstance(values, _raw.Values_Float64):
        return "float64"
    if isinstance(values, _raw.Values_Int64):
        return "int64"
    if isinstance(values, _raw.Values_Boolean):
        return "boolean"
    return "utf8"


def _with_nulls(values: list[Any], nulls: Sequence[int]) -> list[Any]:
    """The host's (values, null indices) as one list with ``None`` at nulls."""
    out: list[Any] = list(values)
    n = len(out)
    for i in nulls:
        if 0 <= i < n:
            out[i] = None
    return out


def _split_nulls(dtype: DType, values: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """A list with ``None`` at nulls as the host's (values, null indices)."""
    placeholder = _PLACEHOLDER[dtype]
    nulls = [i for i, v in enumerate(values) if v is None]
    if not nulls:
        return list(values), nulls
    return [placeholder if v is None else v for v in values], nulls


def _to_raw_values(dtype: DType, values: list[Any]) -> Any:
    if dtype == "float64":
        return _raw.Values_Float64([float(v) for v in values])
    if dtype == "int64":
        return _raw.Values_Int64(values)
    if dtype == "boolean":
        return _raw.Values_Boolean(values)
    if dtype == "utf8":
        return _raw.Values_Utf8(values)
    raise ValueError(f"unknown dtype {dtype!r}")


class Table:
    """An immutable table held by the host.

    Get one from :meth:`Context.input_table` or :meth:`TableBuilder.finish`.
    Reading a column the table does not have, or has with another type, raises
    :meth:`StepError.invalid_input` (the input broke the step's contract).
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def fields(self) -> list[Field]:
        """The columns' names and types, in order."""
        return [Field(f.name, _DTYPE_NAMES[f.dtype], f.nullable) for f in self._inner.fields()]

    def column_names(self) -> list[str]:
        """The columns' names, in order."""
        return [f.name for f in self._inner.fields()]

    def num_rows(self) -> int:
        """The number of rows."""
        return int(self._inner.num_rows())

    def slice(self, offset: int, length: int) -> Table:
        """Rows ``offset .. offset + length`` (clamped to the table), without copying."""
        return Table(self._inner.slice(offset, length))

    def column_with_type(self, name: str) -> tuple[DType, ColumnValues]:
        """A copy of the column ``name``, whatever its type, and that type."""
        try:
            raw = self._inner.column(name)
        except Err as e:
            raise StepError.invalid_input(f"column `{name}`: {e.value}") from None
        return _dtype_of(raw.values), _with_nulls(raw.values.value, raw.nulls)

    def column(self, name: str) -> ColumnValues:
        """A copy of the column ``name``, whatever its type."""
        return self.column_with_type(name)[1]

    def _typed(self, name: str, accepted: tuple[DType, ...], expected: str) -> tuple[DType, list[Any]]:
        dtype, values = self.column_with_type(name)
        if dtype not in accepted:
            raise StepError.invalid_input(f"column `{name}` has type {dtype}, expected {expected}")
        return dtype, values

    def column_f64(self, name: str) -> list[Optional[float]]:
        """A numeric column as floats; ``int64`` values are converted."""
        dtype, values = self._typed(name, ("float64", "int64"), "float64 or int64")
        if dtype == "int64":
            return [None if v is None else float(v) for v in values]
        return values

    def column_i64(self, name: str) -> list[Optional[int]]:
        """An ``int64`` column."""
        return self._typed(name, ("int64",), "int64")[1]

    def column_bool(self, name: str) -> list[Optional[bool]]:
        """A ``boolean`` column."""
        return self._typed(name, ("boolean",), "boolean")[1]

    def column_str(self, name: str) -> list[Optional[str]]:
        """A ``utf8`` column."""
        return self._typed(name, ("utf8",), "utf8")[1]

    def _op(self, op: str, call: Any) -> Table:
        try:
            return Table(call())
        except Err as e:
            raise StepError.invalid_input(f"{op}: {e.value}") from None

    def select(self, columns: Sequence[str]) -> Table:
        """The named columns, in that order (no data is copied)."""
        return self._op("select", lambda: self._inner.select(list(columns)))

    def compute(self, columns: dict[str, str]) -> Table:
        """New columns computed natively from SQL expressions over this
        table's columns, e.g. ``{"area": "petal_length * petal_width"}``:
        exactly these columns, in order."""
        return self._op("compute", lambda: self._inner.compute(list(columns.items())))

    def filter(self, predicate: str) -> Table:
        """The rows where ``predicate`` (a boolean column's name or a SQL
        expression) is true; null counts as false."""
        return self._op("filter", lambda: self._inner.filter(predicate))

    def describe(self, options: Optional[dict[str, Any]] = None) -> Any:
        """Summary statistics of the columns (parsed JSON)."""
        import json

        try:
            return json.loads(self._inner.describe(json.dumps(options or {})))
        except Err as e:
            raise StepError.invalid_input(f"describe: {e.value}") from None

    def __repr__(self) -> str:
        cols = ", ".join(f"{f.name}: {f.dtype}" for f in self.fields())
        return f"Table({self.num_rows()} rows; {cols})"


def sql(query: str, inputs: dict[str, Table]) -> Table:
    """The result of a SQL query (Apache DataFusion's dialect) over the named
    tables, computed natively by the host under the step's memory limit::

        by_species = sql(
            "SELECT species, avg(petal_length) AS petal FROM iris GROUP BY species",
            {"iris": table},
        )
    """
    try:
        return Table(_raw.sql(query, [(name, t._inner) for name, t in inputs.items()]))
    except Err as e:
        raise StepError.invalid_input(f"sql: {e.value}") from None


class TableBuilder:
    """Builds a table column by column, in the host::

        table = (
            TableBuilder()
            .add_f64("x", [1.0, None])
            .add_str("label", ["a", "b"])
            .finish()
        )

    A repeated name or a length that differs from earlier columns raises
    :meth:`StepError.failed` (a bug in the step, not in its input).
    """

    def __init__(self) -> None:
        self._inner = _raw.TableBuilder()

    def add_column(self, name: str, dtype: DType, values: Sequence[Any]) -> TableBuilder:
        """Appends a column of type ``dtype``; ``None`` values are nulls."""
        plain, nulls = _split_nulls(dtype, values)
        try:
            self._inner.add_column(name, _raw.Column(_to_raw_values(dtype, plain), nulls))
        except Err as e:
            raise StepError.failed(f"building a table: column `{name}`: {e.value}") from None
        return self

    def add_f64(self, name: str, values: Sequence[Optional[float]]) -> TableBuilder:
        """Appends a ``float64`` column (ints are converted)."""
        return self.add_column(name, "float64", values)

    def add_i64(self, name: str, values: Sequence[Optional[int]]) -> TableBuilder:
        """Appends an ``int64`` column."""
        return self.add_column(name, "int64", values)

    def add_bool(self, name: str, values: Sequence[Optional[bool]]) -> TableBuilder:
        """Appends a ``boolean`` column."""
        return self.add_column(name, "boolean", values)

    def add_str(self, name: str, values: Sequence[Optional[str]]) -> TableBuilder:
        """Appends a ``utf8`` column."""
        return self.add_column(name, "utf8", values)

    def finish(self) -> Table:
        """The table built so far; the builder is left empty."""
        try:
            return Table(self._inner.finish())
        except Err as e:
            raise StepError.failed(f"building a table: {e.value}") from None
