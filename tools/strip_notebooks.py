"""Normalise notebooks before a commit: remove outputs and execution counts, keep cell tags and
metadata (except the editor's Python version in ``language_info``), and label the parameters
cell with a comment saying what it is for (a learner sees a bare list of assignments otherwise).
Idempotent; tests/test_conventions.py checks the result.

Usage: python tools/strip_notebooks.py [NOTEBOOK ...]   (default: notebooks/*.ipynb)
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

LABEL = "# Parameters: CI injects small values; change these to explore."
PREFIX = "# Parameters"  # what the test requires the parameters cell's first line to start with


def strip(path: Path) -> bool:
    """Strip one notebook in place; True when it changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count, changed = [], None, True
        for key in ("execution", "papermill"):
            changed |= cell.metadata.pop(key, None) is not None
        if "parameters" in cell.metadata.get("tags", []) and not cell.source.startswith(PREFIX):
            cell.source, changed = f"{LABEL}\n{cell.source}", True
    changed |= nb.metadata.pop("papermill", None) is not None
    # An editor stores its own Python version here; JupyterLab then marks the lesson modified
    # on every other machine (see forgekit/course/lab.py). Keep only the portable part.
    info = nb.metadata.get("language_info")
    if info and info.get("name") == "python" and info != {"name": "python"}:
        nb.metadata["language_info"], changed = {"name": "python"}, True
    if changed:
        nbformat.write(nb, path)
    return changed


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    paths = [Path(a) for a in argv] or sorted((root / "notebooks").glob("*.ipynb"))
    for path in paths:
        if strip(path):
            print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
