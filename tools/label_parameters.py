"""Label each notebook's parameters cell with a comment saying what the cell is for.

A learner sees a bare list of assignments otherwise; the comment says that CI injects smaller
values here and that these are the knobs to turn. Idempotent; tests/test_conventions.py checks it.

Usage: python tools/label_parameters.py [NOTEBOOK ...]   (default: notebooks/*.ipynb)
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

LABEL = "# Parameters: CI injects small values; change these to explore."
PREFIX = "# Parameters"  # what the test requires the first line to start with


def label(path: Path) -> bool:
    """Insert LABEL as the first line of ``path``'s parameters cell; True when it changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []) and not cell.source.startswith(PREFIX):
            cell.source = f"{LABEL}\n{cell.source}"
            changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    paths = [Path(a) for a in argv] or sorted((root / "notebooks").glob("*.ipynb"))
    for path in paths:
        if label(path):
            print(f"labelled {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
