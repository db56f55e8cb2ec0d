"""Collapsible output: a lesson keeps its main line short and tucks long detail under a summary.

``details("What each loader said about the SavedModel", table)`` renders in a notebook (and on
the course site) as an HTML ``<details>`` element, closed, whose body is the object's own HTML
(or its text); printed, it is the summary followed by the text.
"""

from __future__ import annotations

import html
from typing import Any


class Details:
    """A summary line, and a body shown when the reader opens it."""

    def __init__(self, summary: str, body: Any) -> None:
        self.summary = summary
        self.body = body

    def __str__(self) -> str:
        return f"{self.summary}\n{self.body}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        inner = getattr(self.body, "_repr_html_", None)
        body = inner() if callable(inner) else (
            f'<pre style="white-space:pre-wrap">{html.escape(str(self.body))}</pre>')
        return (f"<details><summary><b>{html.escape(self.summary)}</b> (click to open)</summary>"
                f"{body}</details>")


def details(summary: str, body: Any) -> Details:
    """Wrap ``body`` (anything printable, or with ``_repr_html_``) under a closed ``summary``."""
    return Details(summary, body)
