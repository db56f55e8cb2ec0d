"""Tables that print in a terminal and render as HTML in a notebook.

Every report forgekit shows (a format's facts, a diagnosis, the environment, the probe matrix, the
failure matrix) goes through these two classes, so they all look and colour alike. Cells are
strings; a cell starting with ``✓`` or ``✗`` is coloured in HTML.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

_COLORS = {"✓": "#1a7f37", "✗": "#b42318"}


def _cell(text: str, tag: str = "td", code: bool = False) -> str:
    style = "text-align:left;vertical-align:top"
    if text[:1] in _COLORS:
        style += f";color:{_COLORS[text[:1]]}"
    body = f"<code>{html.escape(text)}</code>" if code else html.escape(text)
    return f'<{tag} style="{style}">{body}</{tag}>'


def marked_html(text: str, tag: str = "div", style: str = "") -> str:
    """``text`` in one HTML element, coloured by its leading ✓ or ✗ like a table cell."""
    color = _COLORS.get(text[:1])
    return (f'<{tag} style="{f"color:{color};" if color else ""}{style}">'
            f"{html.escape(text)}</{tag}>")


def _notes_html(notes: Sequence[str]) -> str:
    return ("<ul style='font-size:90%'>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
            + "</ul>") if notes else ""


@dataclass
class Table:
    """Rows of strings under ``columns``; ``title`` above it, ``notes`` below it."""

    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    title: str = ""
    max_width: int = 70  # terminal only: longer cells are cut with an ellipsis
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        """Append a row (cells converted with ``str``)."""
        self.rows.append([str(c) for c in cells])

    def _cut(self, text: str) -> str:
        text = " ".join(str(text).split())
        return text if len(text) <= self.max_width else text[: self.max_width - 1] + "…"

    def __str__(self) -> str:
        rows = [[self._cut(c) for c in row] for row in self.rows]
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(self.columns)]
        line = "  ".join("-" * w for w in widths)
        out = [self.title] if self.title else []
        out += ["  ".join(h.ljust(w) for h, w in zip(self.columns, widths, strict=True)).rstrip(),
                line]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                for r in rows]
        return "\n".join(out + ([""] + self.notes if self.notes else []))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = "".join(_cell(c, "th") for c in self.columns)
        body = "".join("<tr>" + "".join(_cell(str(c)) for c in row) + "</tr>" for row in self.rows)
        caption = f"<caption style='text-align:left'><b>{html.escape(self.title)}</b></caption>" \
            if self.title else ""
        return f"<table>{caption}<tr>{head}</tr>{body}</table>{_notes_html(self.notes)}"


@dataclass
class Fields:
    """Label/value pairs, one per line: the shape of a report about one thing.

    Values of the labels in ``code`` (or of every label when ``code`` is True) render as code in
    HTML, for paths and calls the reader copies.
    """

    rows: Sequence[tuple[str, str]]
    code: Collection[str] | bool = ()
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        width = max((len(label) for label, _ in self.rows), default=0)
        lines = [f"{label:<{width}}  {value}" for label, value in self.rows]
        return "\n".join(lines + ([""] + self.notes if self.notes else []))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        def as_code(label: str) -> bool:
            return self.code is True or (not isinstance(self.code, bool) and label in self.code)

        body = "".join(f"<tr>{_cell(label, 'th')}{_cell(value, code=as_code(label))}</tr>"
                       for label, value in self.rows)
        return f"<table>{body}</table>{_notes_html(self.notes)}"


def human_bytes(n: float) -> str:
    """A byte count for people: 1536 -> ``'1.5 KB'``."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
