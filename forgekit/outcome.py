"""Run a call that may fail and keep what really happened, for display in a lesson.

Lessons show real error messages from the installed TensorFlow/Keras instead of quoting them,
so failures are captured (type + first line), never left to crash the notebook.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from forgekit.table import marked_html


def first_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of ``text``, shortened to ``limit`` characters."""
    for line in str(text).splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


@dataclass(repr=False)
class Outcome:
    """What a call did: returned a value, or raised an exception (type and first line kept)."""

    ok: bool | None = None
    value: Any = None
    error_type: str | None = None
    message: str = ""
    exception: BaseException | None = field(default=None, repr=False)

    @property
    def summary(self) -> str:
        """``works``, ``not run``, or the error type and first line."""
        if self.ok is None:
            return "not run"
        return "works" if self.ok else f"{self.error_type}: {self.message}"

    def __str__(self) -> str:
        return ("✓ " if self.ok else "✗ ") + self.summary

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return marked_html(str(self), "pre", "white-space:pre-wrap")


def _fill(outcome: Outcome, exc: BaseException) -> None:
    outcome.ok = False
    outcome.error_type = type(exc).__name__
    # KeyError's str() is the repr of its argument; show the message itself.
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    outcome.message = first_line(text) or repr(exc)
    outcome.exception = exc


def attempt(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Outcome:
    """Call ``fn(*args, **kwargs)`` and return an :class:`Outcome` instead of raising."""
    outcome = Outcome()
    try:
        outcome.value = fn(*args, **kwargs)
        outcome.ok = True
    except Exception as exc:  # the point is to show any failure, whatever its type
        _fill(outcome, exc)
    return outcome


@contextlib.contextmanager
def captured() -> Iterator[Outcome]:
    """Context manager form of :func:`attempt`: the block's exception is kept, not raised."""
    outcome = Outcome()
    try:
        yield outcome
        outcome.ok = True
    except Exception as exc:
        _fill(outcome, exc)
