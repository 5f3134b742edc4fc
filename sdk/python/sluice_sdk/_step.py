"""The :class:`Step` base class."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._manifest import Manifest

if TYPE_CHECKING:
    from ._context import Context

_REGISTRY: list[type[Step]] = []


class Step:
    """A pipeline step: what it is (:meth:`describe`) and what it does (:meth:`run`).

    Subclass it once in your app module; the build finds the subclass and
    exports it as the component's ``step`` world. No other glue is needed.
    """

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY.append(cls)

    def describe(self) -> Manifest:
        """Describes the step: its name, version, ports and params. Called
        without inputs; must not fail."""
        raise NotImplementedError("a Step must implement describe()")

    def run(self, ctx: Context) -> None:
        """Runs the step against the inputs and params in ``ctx``. Raise
        :class:`StepError` to fail with a chosen kind."""
        raise NotImplementedError("a Step must implement run(ctx)")


def registered_steps() -> list[type[Step]]:
    """Every :class:`Step` subclass defined so far, in definition order."""
    return list(_REGISTRY)
