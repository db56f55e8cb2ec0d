"""Claims: every verdict a lesson's prose states, checked by the cell that measured it.

A lesson writes ``claim("the export stores each variable twice", dupes == n, evidence={...})``
right after the measurement. The learner sees ✓ or ✗ with the numbers; the verdict is appended
to the file named by ``$FORGEKIT_CLAIMS_FILE`` (the runner collects them into
``build/claims.json``); and under ``$FORGEKIT_STRICT_CLAIMS=1`` (the test suite) an unmet claim
raises :class:`ClaimError`, so a fact that stops holding on a new TensorFlow fails the build.
A learner's own run is never stopped by a claim: a ✗ is shown loudly and the lesson goes on.
On a TensorFlow or Keras other than the course's (Colab, a team's venv) the ✗ says so - "on your
TensorFlow 2.20.0 this no longer holds" - naming both versions: that is drift, not a bug.
"""

from __future__ import annotations

import html
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgekit.package_versions import drift_from_course

CLAIMS_FILE_ENV = "FORGEKIT_CLAIMS_FILE"
STRICT_ENV = "FORGEKIT_STRICT_CLAIMS"
NOTEBOOK_ENV = "FORGEKIT_NOTEBOOK"


class ClaimError(AssertionError):
    """A claim the lesson states did not hold on this installation (strict mode only)."""


def _plain(value: Any) -> Any:
    """Evidence as JSON-friendly values: NumPy scalars and paths become Python ones."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    item = getattr(value, "item", None)  # NumPy / TF scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return _plain(item())
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass(repr=False)
class Claim:
    """One checked statement: its text, whether it held, and the measurements behind it."""

    text: str
    holds: bool
    evidence: dict[str, Any] = field(default_factory=dict)
    notebook: str | None = None
    recorded_at: float = field(default_factory=time.time)

    @property
    def verdict(self) -> str:
        """``"holds"`` or ``"does not hold"``."""
        return "holds" if self.holds else "does not hold"

    def as_record(self) -> dict[str, Any]:
        """The JSON row written to the claims file."""
        row = asdict(self)
        row["verdict"] = self.verdict
        if self.drift:
            row["drift"] = self.drift
        return row

    @property
    def drift(self) -> str | None:
        """For an unmet claim on versions other than the course's: which ("TensorFlow 2.20.0
        (the course: 2.21.0)"); None when it holds or the versions are the course's."""
        if self.holds:
            return None
        moved = drift_from_course()
        if not moved:
            return None
        return ", ".join(f"{_LABELS.get(n, n)} {here or 'not installed'} (the course: {pinned})"
                         for n, (pinned, here) in moved.items())

    def __str__(self) -> str:
        drift = self.drift
        mark = ("✓" if self.holds else f"✗ DRIFT - on your {drift} this no longer holds:" if drift
                else "✗ CLAIM DOES NOT HOLD:")
        numbers = ", ".join(f"{k} = {_shown(v)}" for k, v in self.evidence.items())
        return f"{mark} {self.text}" + (f"  ({numbers})" if numbers else "")

    __repr__ = __str__

    def _repr_html_(self) -> str:
        numbers = "".join(f"<code>{html.escape(k)} = {html.escape(_shown(v))}</code> "
                          for k, v in self.evidence.items())
        if self.holds:
            return (f'<div style="color:#1a7f37"><b>✓</b> {html.escape(self.text)}'
                    f'<br><small>{numbers}</small></div>')
        drift = self.drift
        if drift:
            return ('<div style="border:3px solid #9a6700;padding:6px;color:#7a5200">'
                    f"<b>✗ Drift: on your {html.escape(drift)} this no longer holds:</b> "
                    f"{html.escape(self.text)}<br><small>{numbers}</small><br>The prose around "
                    "this cell was measured on the course's versions; the numbers above are what "
                    "yours does. The lesson goes on.</div>")
        return ('<div style="border:3px solid #b42318;padding:6px;color:#b42318">'
                f"<b>✗ This claim does not hold on your installation:</b> {html.escape(self.text)}"
                f"<br><small>{numbers}</small><br>The prose around this cell was written for "
                "the pinned versions; what you see here is what your TensorFlow does.</div>")


_LABELS = {"tensorflow": "TensorFlow", "keras": "Keras"}


def _record(c: Claim) -> None:
    target = os.environ.get(CLAIMS_FILE_ENV)
    if not target:
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:  # one line per claim, appended as it is made
        fh.write(json.dumps(c.as_record(), ensure_ascii=False) + "\n")


def _verdict(text: str, holds: Any) -> bool:
    """``holds`` as a bool, accepting only a real boolean (``bool`` or NumPy's ``bool_``).

    ``bool(holds)`` would call an Outcome, the string ``"False"`` or a non-empty list true, and
    a claim is the course's oracle: what is not a comparison's result is a mistake in the
    lesson, never a verdict.
    """
    if isinstance(holds, bool):
        return holds
    numpy = sys.modules.get("numpy")  # a NumPy bool exists only once NumPy is imported
    if numpy is not None and isinstance(holds, numpy.bool_):
        return bool(holds)  # a NumPy comparison's scalar (np.float32(1) < 2)
    raise TypeError(
        f"claim({text.strip()[:60]!r}, holds=...) needs True or False, the result of the "
        f"measured comparison; got {type(holds).__name__} {holds!r:.60}. Pass the comparison "
        "itself (e.g. diff == 0.0, outcome.ok is True, len(files) > 0)")


def claim(text: str, holds: Any, evidence: Mapping[str, Any] | None = None) -> Claim:
    """State ``text`` as checked by ``holds`` (a measured condition), with its ``evidence``.

    Returns the :class:`Claim` (it renders as ✓/✗ with the numbers in a notebook). In strict
    mode (``$FORGEKIT_STRICT_CLAIMS=1``, set by the test suite) an unmet claim raises
    :class:`ClaimError` naming the claim and its evidence.

    Raises:
        TypeError: ``holds`` is not a ``bool`` or a NumPy ``bool_`` (an Outcome, a string,
            a list, None, a number): pass the comparison, not the thing compared.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a claim needs its statement as text")
    c = Claim(text.strip(), _verdict(text, holds), _plain(dict(evidence or {})),
              os.environ.get(NOTEBOOK_ENV))
    _record(c)
    if not c.holds and os.environ.get(STRICT_ENV) == "1":
        raise ClaimError(str(c))
    return c


def read_claims(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The claim rows in a claims file (JSON lines); a missing file holds none."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_claims_json(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write every collected claim row to one JSON file (``build/claims.json``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(list(rows), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return p
