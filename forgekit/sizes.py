"""Where the bytes of a saved model go: weights, optimizer slots, a duplicate, and overhead.

Measured from the files, not from the model that wrote them: the arrays an HDF5 file (a
``.weights.h5``, a legacy ``.h5``, or the ``model.weights.h5`` inside a ``.keras`` zip) or a
SavedModel's ``variables/`` checkpoint really holds are read and counted. A SavedModel written by
``model.export`` keeps every variable twice (``variables/N`` and ``_all_variables/M``, equal
values); :func:`duplicated_variables` pairs them by comparing the stored arrays.

h5py, NumPy and TensorFlow are imported inside the functions that need them.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PARTS = ("weights", "optimizer slots", "duplicate", "overhead")


@dataclass(frozen=True)
class SizeBreakdown:
    """Bytes on disk of one artifact, split into what they store. ``overhead`` is the rest:
    structure, metadata, the graph, headers and padding."""

    total: int
    weights: int
    optimizer: int = 0
    duplicate: int = 0

    @property
    def overhead(self) -> int:
        return self.total - self.weights - self.optimizer - self.duplicate

    def parts(self) -> dict[str, int]:
        """The four parts in :data:`PARTS` order."""
        return dict(zip(PARTS, (self.weights, self.optimizer, self.duplicate, self.overhead),
                        strict=True))


def _disk_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _hdf5_arrays(source: Any) -> tuple[int, int]:
    """(weight bytes, optimizer bytes) of the datasets in an HDF5 file or file-like object."""
    import h5py

    sizes = {"weights": 0, "optimizer": 0}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            part = "optimizer" if "optimizer" in name.split("/")[0] else "weights"
            sizes[part] += obj.size * obj.dtype.itemsize

    with h5py.File(source, "r") as f:
        f.visititems(visit)
    return sizes["weights"], sizes["optimizer"]


def checkpoint_arrays(prefix: str | os.PathLike[str]) -> dict[str, Any]:
    """Every value stored in a TensorFlow checkpoint, by its key (object-graph entry excluded)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(str(prefix))
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def duplicated_variables(export_dir: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Pairs (``variables/…``, ``_all_variables/…``) of a SavedModel whose stored arrays are equal."""
    import numpy as np

    arrays = checkpoint_arrays(Path(export_dir) / "variables" / "variables")
    firsts = {k: v for k, v in arrays.items() if k.startswith("variables/")}
    seconds = {k: v for k, v in arrays.items() if k.startswith("_all_variables/")}
    pairs, used = [], set()
    for name, value in firsts.items():
        match = next((other for other, v in seconds.items() if other not in used
                      and v.shape == value.shape and np.array_equal(v, value)), None)
        if match is not None:
            used.add(match)
            pairs.append((name, match))
    return pairs


def breakdown(path: str | os.PathLike[str]) -> SizeBreakdown:
    """Measure what the bytes of ``path`` store: a ``.keras`` zip, an HDF5 file or a SavedModel."""
    path = Path(path)
    total = _disk_bytes(path)
    if path.is_dir():
        arrays = checkpoint_arrays(path / "variables" / "variables")
        pairs = duplicated_variables(path)
        duplicate = sum(arrays[second].nbytes for _, second in pairs)
        weights = sum(v.nbytes for k, v in arrays.items() if k.startswith("variables/"))
        return SizeBreakdown(total, weights, 0, duplicate)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            weights, optimizer = _hdf5_arrays(io.BytesIO(zf.read("model.weights.h5")))
        return SizeBreakdown(total, weights, optimizer)
    weights, optimizer = _hdf5_arrays(path)
    return SizeBreakdown(total, weights, optimizer)


def _human(n: int) -> str:
    """``n`` bytes in the largest binary unit that keeps it at 1 or more (MiB, KiB, B)."""
    unit, scale = next((u, s) for u, s in (("MiB", 2**20), ("KiB", 2**10), ("B", 1)) if n >= s
                       or s == 1)
    return f"{n / scale:,.1f} {unit}" if scale > 1 else f"{n:,} B"


def stacked_bars(breakdowns: dict[str, SizeBreakdown], *, title: str, ax: Any = None) -> Any:
    """One horizontal stacked bar per artifact (weights / optimizer slots / duplicate / overhead);
    returns the matplotlib Figure.

    Sizes are in binary units (MiB = 2**20 bytes, KiB, B), each bar labelled with its total; the
    legend lists only the parts some artifact has (a chart of weights files names no duplicate),
    with the size of a part too thin to see.
    """
    import matplotlib.pyplot as plt

    largest = max(b.total for b in breakdowns.values())
    unit, scale = next((u, s) for u, s in (("MiB", 2**20), ("KiB", 2**10), ("B", 1)) if largest >= s
                       or s == 1)
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 0.5 * len(breakdowns) + 1.8))
    else:
        fig = ax.figure
    labels = list(breakdowns)
    left = [0.0] * len(labels)
    colors = ("#4c78a8", "#f58518", "#e45756", "#bab0ac")
    present = []
    for part, color in zip(PARTS, colors, strict=True):
        widths = [max(breakdowns[k].parts()[part], 0) / scale for k in labels]
        label = part
        if any(widths) and max(widths) < 0.01 * largest / scale:  # too thin to see: say its size
            label = f"{part} (≤ {_human(max(breakdowns[k].parts()[part] for k in labels))})"
        bars = ax.barh(labels, widths, left=left, color=color, label=label)
        if any(widths):
            present.append(bars)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for i, k in enumerate(labels):
        ax.text(left[i], i, f" {breakdowns[k].total / scale:,.1f} {unit}", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(left) * 1.2)
    ax.set(xlabel=f"size on disk ({unit})", title=title)
    ax.legend(handles=present, loc="lower right", ncol=len(present), frameon=False, fontsize=9)
    fig.tight_layout()
    return fig
