"""Why a step did not succeed: :class:`StepError`."""

from __future__ import annotations

from typing import Literal

#: The three outcomes a step can fail with; they drive what the host does next.
ErrorKind = Literal["invalid-input", "rejected", "failed"]


class StepError(Exception):
    """Why a step did not succeed. Raise it from :meth:`Step.run`.

    Build one with a constructor that names the case:

    * :meth:`StepError.invalid_input` -- the inputs or params break the
      step's contract (a malformed file, schema skew, a missing column). The
      pipeline stops; never retried.
    * :meth:`StepError.rejected` -- a validation gate said no. The pipeline
      stops, outputs are not blessed; never retried.
    * :meth:`StepError.failed` -- anything else. Retried when the step allows
      retries.

    Any other exception escaping ``run`` is reported as ``failed`` with the
    exception's type and message.
    """

    kind: ErrorKind
    message: str

    def __init__(self, kind: ErrorKind, message: str) -> None:
        if kind not in ("invalid-input", "rejected", "failed"):
            raise ValueError(f"unknown StepError kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message

    @classmethod
    def invalid_input(cls, message: str) -> StepError:
        """The inputs or params break the step's contract."""
        return cls("invalid-input", message)

    @classmethod
    def rejected(cls, message: str) -> StepError:
        """A validation gate said no."""
        return cls("rejected", message)

    @classmethod
    def failed(cls, message: str) -> StepError:
        """Anything else; may be retried."""
        return cls("failed", message)

    def __str__(self) -> str:
        return f"{self.kind.replace('-', ' ')}: {self.message}"

    def __repr__(self) -> str:
        return f"StepError({self.kind!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, StepError)
            and other.kind == self.kind
            and other.message == self.message
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.message))
