"""A small table that prints in a terminal and renders as HTML in a notebook.

Lessons show measured results (a failure matrix, scenario outcomes) as tables rather than walls
of text. Cells are plain strings; a cell starting with ``✓`` or ``✗`` is coloured in HTML.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Table:
    """Rows of strings under ``columns``; ``title`` is shown above it."""

    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    title: str = ""
    max_width: int = 70  # terminal only: longer cells are cut with an ellipsis

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def _cut(self, text: str) -> str:
        text = " ".join(str(text).split())
        return text if len(text) <= self.max_width else text[: self.max_width - 1] + "…"

    def __str__(self) -> str:
        rows = [[self._cut(c) for c in row] for row in self.rows]
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(self.columns)]
        line = "  ".join("-" * w for w in widths)
        out = [self.title] if self.title else []
        out += ["  ".join(h.ljust(w) for h, w in zip(self.columns, widths, strict=True)), line]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join(out)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        def cell(text: str, tag: str = "td") -> str:
            style = "text-align:left;vertical-align:top"
            if text.startswith("✓"):
                style += ";color:#1a7f37"
            elif text.startswith("✗"):
                style += ";color:#b42318"
            return f'<{tag} style="{style}">{html.escape(text)}</{tag}>'

        head = "".join(cell(c, "th") for c in self.columns)
        body = "".join("<tr>" + "".join(cell(str(c)) for c in row) + "</tr>" for row in self.rows)
        caption = f"<caption style='text-align:left'><b>{html.escape(self.title)}</b></caption>" \
            if self.title else ""
        return f"<table>{caption}<tr>{head}</tr>{body}</table>"
