"""The :class:`Context`: everything a running step may touch -- its inputs,
params, outputs, log, metrics and progress -- and nothing else."""

from __future__ import annotations

import json
from typing import Any, Optional, TypeVar, overload

from componentize_py_types import Err
from wit_world.imports import context as _host
from wit_world.imports import types as _types

from ._errors import StepError
from ._table import Table

T = TypeVar("T")

_LEVELS = {
    "debug": _types.LogLevel.DEBUG,
    "info": _types.LogLevel.INFO,
    "warn": _types.LogLevel.WARN,
    "error": _types.LogLevel.ERROR,
}

# What each Python type accepts, for messages in the Rust SDK's words.
_EXPECTED = {bool: "a boolean", int: "an integer", float: "a float", str: "text",
             list: "a list", dict: "a table (JSON object)"}


def _raw_value(value: Any) -> tuple[str, Any]:
    """The host's value variant as (type name, Python value)."""
    if isinstance(value, _types.Value_Boolean):
        return "boolean", value.value
    if isinstance(value, _types.Value_Integer):
        return "integer", value.value
    if isinstance(value, _types.Value_Float):
        return "float", value.value
    if isinstance(value, _types.Value_Text):
        return "text", value.value
    return "json", value.value


def _convert(name: str, type_name: str, value: Any, kind: Optional[type]) -> Any:
    """Checks and converts a parameter value to ``kind`` (``None``: as it comes)."""
    if type_name == "json":
        try:
            value = json.loads(value)
        except ValueError as e:
            raise StepError.invalid_input(f"parameter `{name}` is not valid JSON: {e}") from None
    if kind is None or kind is object:
        return value
    ok = {
        bool: type_name == "boolean",
        int: type_name == "integer",
        float: type_name in ("float", "integer"),
        str: type_name == "text",
        list: type_name == "json" and isinstance(value, list),
        dict: type_name == "json" and isinstance(value, dict),
    }.get(kind)
    if ok is None:
        raise TypeError(f"parameter `{name}`: cannot read a parameter as {kind.__name__}")
    if not ok:
        raise StepError.invalid_input(
            f"parameter `{name}` must be {_EXPECTED[kind]}, found {type_name}"
        )
    return float(value) if kind is float else value


class Context:
    """The running step's handle on the host; handed to :meth:`Step.run`.

    Errors the host reports for inputs and outputs (an unbound port, an
    output over the size limit ...) raise :meth:`StepError.failed` carrying
    the host's message unchanged.
    """

    # ---- params ---------------------------------------------------------

    @overload
    def param(self, name: str) -> Any: ...
    @overload
    def param(self, name: str, kind: type[T]) -> T: ...

    def param(self, name: str, kind: Optional[type] = None) -> Any:
        """The parameter ``name``: the spec's value, else the manifest's default.

        ``kind`` (``bool``, ``int``, ``float``, ``str``, ``list`` or ``dict``)
        checks the type: ``float`` also accepts an integer; ``list`` and
        ``dict`` read a ``json`` parameter. Without ``kind`` the value comes
        as it is (a ``json`` parameter parsed). An absent parameter, or one of
        the wrong type, raises :meth:`StepError.invalid_input` naming it.
        """
        raw = _host.param(name)
        if raw is None:
            raise StepError.invalid_input(f"parameter `{name}` is not set")
        return _convert(name, *_raw_value(raw), kind)

    @overload
    def param_opt(self, name: str) -> Any: ...
    @overload
    def param_opt(self, name: str, kind: type[T]) -> Optional[T]: ...

    def param_opt(self, name: str, kind: Optional[type] = None) -> Any:
        """Like :meth:`param`, but an absent parameter reads as ``None``."""
        raw = _host.param(name)
        if raw is None:
            return None
        return _convert(name, *_raw_value(raw), kind)

    # ---- inputs ---------------------------------------------------------

    def has_input(self, port: str) -> bool:
        """Whether the (optional) input ``port`` is bound in this run."""
        return bool(_host.has_input(port))

    def input_table(self, port: str) -> Table:
        """The table bound to input ``port``."""
        try:
            return Table(_host.input_table(port))
        except Err as e:
            raise StepError.failed(str(e.value)) from None

    def input_document(self, port: str) -> str:
        """The JSON document (schema, statistics, metrics, transform) bound to ``port``."""
        try:
            return str(_host.input_document(port))
        except Err as e:
            raise StepError.failed(str(e.value)) from None

    def input_json(self, port: str) -> Any:
        """The JSON document bound to ``port``, parsed; text that does not parse
        raises :meth:`StepError.invalid_input`."""
        text = self.input_document(port)
        try:
            return json.loads(text)
        except ValueError as e:
            raise StepError.invalid_input(f"input `{port}`: {e}") from None

    def input_bytes(self, port: str) -> bytes:
        """The raw bytes of the ``file`` artifact bound to ``port``."""
        try:
            return bytes(_host.input_bytes(port))
        except Err as e:
            raise StepError.failed(str(e.value)) from None

    # ---- outputs --------------------------------------------------------

    def output_table(self, port: str, table: Table) -> None:
        """Records ``table`` as the output on the ``table`` port ``port``."""
        try:
            _host.output_table(port, table._inner)
        except Err as e:
            raise StepError.failed(str(e.value)) from None

    def output_document(self, port: str, json_text: str) -> None:
        """Records a JSON document as the output on ``port``; the host checks
        that it parses."""
        try:
            _host.output_document(port, json_text)
        except Err as e:
            raise StepError.failed(str(e.value)) from None

    def output_json(self, port: str, value: Any) -> None:
        """Serializes ``value`` as pretty JSON (keys in insertion order) and
        records it as the output on ``port``."""
        try:
            text = json.dumps(value, indent=2, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise StepError.failed(f"output `{port}`: cannot serialize: {e}") from None
        self.output_document(port, text)

    def output_bytes(self, port: str, data: bytes) -> None:
        """Records raw bytes as the output on the ``file`` port ``port``."""
        try:
            _host.output_bytes(port, bytes(data))
        except Err as e:
            raise StepError.failed(str(e.value)) from None

    # ---- observability --------------------------------------------------

    def log(self, level: str, message: str) -> None:
        """Writes a line to the step's log; ``level`` is debug, info, warn or error."""
        lvl = _LEVELS.get(level)
        if lvl is None:
            raise ValueError(f"unknown log level {level!r}")
        _host.log(lvl, str(message))

    def debug(self, message: str) -> None:
        """Writes a debug line to the step's log."""
        _host.log(_types.LogLevel.DEBUG, str(message))

    def info(self, message: str) -> None:
        """Writes an info line to the step's log."""
        _host.log(_types.LogLevel.INFO, str(message))

    def warn(self, message: str) -> None:
        """Writes a warning to the step's log."""
        _host.log(_types.LogLevel.WARN, str(message))

    def error(self, message: str) -> None:
        """Writes an error line to the step's log."""
        _host.log(_types.LogLevel.ERROR, str(message))

    def metric(self, name: str, value: float) -> None:
        """Records a named numeric metric of this execution."""
        _host.metric(name, float(value))

    def progress(self, done: int, total: int, message: str = "") -> None:
        """Reports progress: ``done`` of ``total`` units of work, and what is happening."""
        _host.progress(int(done), int(total), message)
