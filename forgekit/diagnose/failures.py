"""The failure lab: every loader a user reaches for, against every kind of saved model.

:func:`run_matrix` takes every loader of the catalogue (:data:`forgekit.diagnose.loaders.LOADERS`)
and makes every call for real on every artifact, keeps the actual outcome (the
exception type and first line of its message), and sets it beside forgekit's diagnosis and the
one call that does load the artifact. Predictions and outcomes disagreeing is a bug in forgekit
(``FailureMatrix.surprises``): the tests require there are none.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from forgekit.diagnose.loaders import LOADERS, Build, Loader
from forgekit.outcome import Outcome, attempt
from forgekit.quiet import muted_stderr, quiet_absl
from forgekit.table import Table

if TYPE_CHECKING:
    from forgekit.diagnose.diagnosis import ArtifactDiagnosis


# --------------------------------------------------------------------------------------------
# the matrix


@dataclass
class Cell:
    """One loader on one artifact: what really happened, and what forgekit predicted."""

    loader: Loader
    outcome: Outcome
    predicted: bool

    @property
    def surprise(self) -> bool:
        """forgekit's prediction disagrees with what the call really did."""
        return bool(self.outcome.ok) != self.predicted

    @property
    def short(self) -> str:
        """The cell as the compact table shows it."""
        return "✓ works" if self.outcome.ok else f"✗ {self.outcome.error_type}"


@dataclass
class MatrixRow:
    """One artifact: its label, the path as given, forgekit's diagnosis, one cell per loader."""

    label: str
    path: str
    diagnosis: ArtifactDiagnosis
    cells: list[Cell] = field(default_factory=list)


@dataclass
class FailureMatrix:
    """Artifacts x loaders, measured. Renders as a compact table; see :meth:`details`."""

    rows: list[MatrixRow]

    @property
    def loaders(self) -> list[Loader]:
        """The loaders, in column order."""
        return [cell.loader for cell in self.rows[0].cells] if self.rows else []

    @property
    def surprises(self) -> list[tuple[str, str]]:
        """(artifact, loader) pairs where forgekit's prediction was wrong."""
        return [(row.label, cell.loader.key) for row in self.rows for cell in row.cells
                if cell.surprise]

    def row(self, label: str) -> MatrixRow:
        """The row of the artifact labelled ``label``."""
        for row in self.rows:
            if row.label == label:
                return row
        raise KeyError(f"no artifact labelled {label!r}; have {[r.label for r in self.rows]}")

    def table(self) -> Table:
        """Compact: one row per artifact, one column per loader (works / exception type)."""
        table = Table(["artifact", "forgekit: kind"] + [ld.name for ld in self.loaders],
                      title="Every loader on every artifact (real calls)", max_width=28)
        for row in self.rows:
            table.add(row.label, row.diagnosis.kind, *(cell.short for cell in row.cells))
        return table

    def fixes(self) -> Table:
        """One row per artifact: forgekit's diagnosis (notes) and the call that loads it."""
        table = Table(["artifact", "path as given", "forgekit says", "load it with"],
                      title="forgekit doctor on each path", max_width=90)
        for row in self.rows:
            d = row.diagnosis
            said = "; ".join(d.notes) or f"{d.kind}: loads as given"
            table.add(row.label, os.path.basename(row.path.rstrip("/")) + (
                "/" if row.path.endswith("/") else ""), said, d.fix)
        return table

    def details(self, label: str) -> Table:
        """Every loader on one artifact: the real message, and forgekit's diagnosis beside it."""
        row = self.row(label)
        d = row.diagnosis
        table = Table(["call", "what really happened", "forgekit"],
                      title=f"{label}: {d.kind}", max_width=110)
        for cell in row.cells:
            table.add(cell.loader.name, str(cell.outcome), cell.loader.explain(d))
        return table

    def __str__(self) -> str:
        return str(self.table())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


def run_matrix(artifacts: Mapping[str, str | os.PathLike[str]], build: Build,
               loaders: Mapping[str, Loader] | None = None) -> FailureMatrix:
    """Call every loader on every artifact for real; pair each outcome with forgekit's view.

    Args:
        artifacts: label -> path exactly as a user would type it (keep trailing slashes: a
            ``str``, not a ``Path``, which drops them).
        build: returns a new model with the architecture the artifacts were saved from,
            compiled like it, for the loaders that fill an existing model.
        loaders: defaults to :data:`LOADERS`.
    """
    from forgekit.diagnose.diagnosis import diagnose_artifact

    loaders = LOADERS if loaders is None else loaders
    rows = []
    with warnings.catch_warnings(), muted_stderr(), quiet_absl():
        warnings.simplefilter("ignore")  # deprecations and skipped-variable notices
        for label, path in artifacts.items():
            raw = os.fspath(path)
            row = MatrixRow(label, raw, diagnose_artifact(raw))
            for loader in loaders.values():
                predicted = row.diagnosis.error is None and loader.works(row.diagnosis)
                row.cells.append(Cell(loader, attempt(loader.run_guarded, row.diagnosis, raw,
                                                      build), predicted))
            rows.append(row)
    return FailureMatrix(rows)


def loaders_table(loaders: Mapping[str, Loader] | None = None) -> Table:
    """The catalogue: each loader's call and what it reads."""
    table = Table(["loader", "the call", "reads"], title="The loaders you reach for",
                  max_width=100)
    for loader in (LOADERS if loaders is None else loaders).values():
        table.add(loader.name, loader.call.format(path="path"), loader.needs)
    return table
