"""Glue between a :class:`Step` and the component's exports; not part of the API.

``sluice_sdk/build.sh`` (and the documented ``componentize-py`` command)
generate an entry module that calls :func:`world_for` on the user's module;
componentize-py then exports the returned ``WitWorld`` class.
"""

from __future__ import annotations

import json
import traceback
from types import ModuleType
from typing import Any

from componentize_py_types import Err
from wit_world.imports import context as _host
from wit_world.imports import types as _types

from ._context import Context
from ._errors import StepError
from ._manifest import Manifest, Param, ParamValue, Port
from ._step import Step, registered_steps

_KINDS = {
    "table": _types.ArtifactKind.TABLE,
    "model": _types.ArtifactKind.MODEL,
    "schema": _types.ArtifactKind.SCHEMA,
    "statistics": _types.ArtifactKind.STATISTICS,
    "metrics": _types.ArtifactKind.METRICS,
    "transform": _types.ArtifactKind.TRANSFORM,
    "file": _types.ArtifactKind.FILE,
}
_VALUE_TYPES = {
    "boolean": _types.ValueType.BOOLEAN,
    "integer": _types.ValueType.INTEGER,
    "float": _types.ValueType.FLOAT,
    "text": _types.ValueType.TEXT,
    "json": _types.ValueType.JSON,
}


def _value_to_raw(p: Param, v: ParamValue) -> Any:
    """A default as the host's value variant, following the declared type."""
    t = p.value_type
    if t == "json":
        return _types.Value_Json(json.dumps(v))
    if isinstance(v, bool):
        return _types.Value_Boolean(v)
    if isinstance(v, int):
        return _types.Value_Float(float(v)) if t == "float" else _types.Value_Integer(v)
    if isinstance(v, float):
        return _types.Value_Float(v)
    if isinstance(v, str):
        return _types.Value_Text(v)
    return _types.Value_Json(json.dumps(v))


def _port_to_raw(p: Port) -> Any:
    return _types.Port(p.name, _KINDS[p.kind], p.is_optional, p.doc_text)


def manifest_to_raw(m: Manifest) -> Any:
    """The manifest as the host expects it."""
    return _types.Manifest(
        m.name,
        m.version,
        m.doc_text,
        [_port_to_raw(p) for p in m.inputs],
        [_port_to_raw(p) for p in m.outputs],
        [
            _types.ParamSpec(
                p.name,
                _VALUE_TYPES[p.value_type],
                None if p.default_value is None else _value_to_raw(p, p.default_value),
                p.is_required,
                p.doc_text,
            )
            for p in m.params
        ],
    )


def error_to_raw(e: StepError) -> Any:
    """The error as the host's ``step-error`` variant."""
    if e.kind == "invalid-input":
        return _types.StepError_InvalidInput(e.message)
    if e.kind == "rejected":
        return _types.StepError_Rejected(e.message)
    return _types.StepError_Failed(e.message)


def run_step(step_type: type[Step]) -> None:
    """Runs ``step_type`` and raises the component's ``Err(step-error)`` on failure.

    A :class:`StepError` keeps its kind; any other exception becomes
    ``failed`` carrying ``"<ExceptionType>: <message>"``, and its traceback
    is written to the step's log as one error line.
    """
    try:
        step_type().run(Context())
    except StepError as e:
        raise Err(error_to_raw(e)) from None
    except Exception as e:  # noqa: BLE001 - every failure must reach the host
        message = f"{type(e).__name__}: {e}"
        _host.log(_types.LogLevel.ERROR, "uncaught exception: " + "".join(
            traceback.format_exception(type(e), e, e.__traceback__)).rstrip())
        raise Err(_types.StepError_Failed(message)) from None


def find_step(module: ModuleType) -> type[Step]:
    """The one :class:`Step` subclass defined in (or registered by) ``module``."""
    found = [s for s in registered_steps() if s.__module__ == module.__name__]
    if len(found) != 1:
        names = ", ".join(s.__name__ for s in found) or "none"
        raise RuntimeError(
            f"module `{module.__name__}` must define exactly one sluice_sdk.Step "
            f"subclass (found: {names})"
        )
    return found[0]


def world_for(module: ModuleType) -> type:
    """The ``WitWorld`` export class for the step defined in ``module``."""
    step_type = find_step(module)
    # Check at build time (componentize-py pre-initializes the module) that
    # the manifest converts, so a broken describe() fails the build.
    manifest_to_raw(step_type().describe())

    class WitWorld:
        """The component's exports: ``describe`` and ``run``."""

        def describe(self) -> Any:
            return manifest_to_raw(step_type().describe())

        def run(self) -> None:
            run_step(step_type)

    return WitWorld
