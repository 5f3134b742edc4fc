"""Write sluice pipeline steps in Python.

A step is one :class:`Step` subclass in a plain Python module, built into a
WebAssembly component with componentize-py (``sdk/python/build.sh``)::

    from sluice_sdk import Context, Manifest, Param, Port, Step, StepError, TableBuilder

    class Scale(Step):
        def describe(self) -> Manifest:
            return (
                Manifest("scale", "0.1.0")
                .doc("Multiplies one numeric column by a factor.")
                .input(Port.table("data"))
                .output(Port.table("scaled"))
                .param(Param.text("column").required())
                .param(Param.float("factor").default(2.0))
            )

        def run(self, ctx: Context) -> None:
            column = ctx.param("column", str)
            factor = ctx.param("factor", float)
            values = ctx.input_table("data").column_f64(column)
            scaled = [None if v is None else v * factor for v in values]
            ctx.output_table("scaled", TableBuilder().add_f64(column, scaled).finish())

The step has no ambient authority: it reads its inputs and params and writes
its outputs through the :class:`Context` it is handed, and nothing else.
Raise :class:`StepError` to fail with a chosen kind; any other exception
becomes a ``failed`` step carrying the exception's type and message.
"""

from ._context import Context
from ._errors import ErrorKind, StepError
from ._manifest import ArtifactKind, Manifest, Param, ParamValue, Port, ValueType
from ._step import Step
from ._table import ColumnValues, DType, Field, Table, TableBuilder, sql

__all__ = [
    "ArtifactKind",
    "ColumnValues",
    "Context",
    "DType",
    "ErrorKind",
    "Field",
    "Manifest",
    "Param",
    "ParamValue",
    "Port",
    "Step",
    "StepError",
    "Table",
    "TableBuilder",
    "ValueType",
    "sql",
]

__version__ = "0.1.0"
