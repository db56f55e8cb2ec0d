"""Charts the lessons draw from measured numbers: labelled axes with units, a title that states
the finding computed from the data (never typed by hand): sizes on disk, training curves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

_UNITS = (("B", 1), ("KB", 1024), ("MB", 1024**2), ("GB", 1024**3))


def _unit_for(largest: float) -> tuple[str, int]:
    unit = _UNITS[0]
    for candidate in _UNITS:
        if largest >= candidate[1]:
            unit = candidate
    return unit


def size_finding(sizes: Mapping[str, int]) -> str:
    """One sentence comparing the largest and smallest artifact, from the numbers."""
    ordered = sorted(sizes.items(), key=lambda kv: kv[1])
    (small, small_n), (large, large_n) = ordered[0], ordered[-1]
    if small_n == 0:
        return f"{large} is the largest artifact"
    return f"{large} is {large_n / small_n:.1f}x the size of {small}"


def size_bars(
    sizes: Mapping[str, int] | Any,
    *,
    title: str | None = None,
    reference: int | None = None,
    reference_label: str = "raw weight bytes",
    ax: Any = None,
) -> Any:
    """Horizontal bar chart of bytes on disk per artifact; returns the matplotlib Figure.

    Args:
        sizes: ``{label: bytes}``, or a :class:`forgekit.measure.probe.ProbeMatrix`.
        title: defaults to the finding computed by :func:`size_finding`.
        reference: draw a vertical line at this many bytes (e.g. the raw weight bytes).
        ax: an existing Axes to draw on.
    """
    import matplotlib.pyplot as plt

    if not isinstance(sizes, Mapping):  # a ProbeMatrix
        sizes = {r.kind: r.size_bytes for r in sizes}
    labels = list(sizes)
    values = [sizes[k] for k in labels]
    unit, scale = _unit_for(max([*values, reference or 0]))
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.4 + (0.4 if reference else 0)))
    else:
        fig = ax.figure
    bars = ax.barh(labels, [v / scale for v in values], color="#4c78a8")
    ax.invert_yaxis()  # first label on top, like the table it accompanies
    ax.bar_label(bars, labels=[f"{v / scale:,.1f} {unit}" for v in values], padding=3,
                 fontsize=9)
    if reference:
        ax.axvline(reference / scale, color="#e45756", linestyle="--",
                   label=f"{reference_label} ({reference / scale:,.1f} {unit})")
        # below the axes: inside, it would cover bars or their value labels
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.18), frameon=False, fontsize=9)
    ax.set_xlabel(f"size on disk ({unit})")
    ax.set_ylabel("artifact")
    ax.set_xlim(0, max([*values, reference or 0]) / scale * 1.25)
    ax.set_title(title or size_finding(sizes), fontsize=11)
    fig.tight_layout()
    return fig


