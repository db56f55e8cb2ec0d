"""Self-checked exercises: each lesson's checkers live in a module here, named after the lesson.

A checker takes the learner's answer and returns :class:`Feedback` that says *why* an answer is
wrong, not only that it is.
"""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True, repr=False)
class Feedback:
    """The verdict on an exercise answer."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return ("✓ Correct. " if self.passed else "✗ Not yet. ") + self.message

    __repr__ = __str__

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.passed else "#b42318"
        return f'<div style="color:{color};font-weight:600">{html.escape(str(self))}</div>'


def correct(message: str) -> Feedback:
    """A passing verdict that says why the answer is right."""
    return Feedback(True, message)


def wrong(message: str) -> Feedback:
    """A failing verdict that says why the answer is wrong."""
    return Feedback(False, message)


NOT_ANSWERED = Feedback(False, "No answer yet: replace the placeholder in the cell above and run it again.")
