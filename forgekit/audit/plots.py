"""The picture of an audit store: each run's metric per epoch, and which run is being served."""

from __future__ import annotations

from typing import Any

from forgekit.audit.store import AuditStore

CURVES_SQL = """\
SELECT r.id AS run_id, r.name AS run_name, m.epoch, m.value
FROM metrics m
JOIN runs r ON r.id = m.run_id
WHERE m.name = :metric
ORDER BY r.id, m.epoch"""


def runs_figure(store: AuditStore, metric: str, *, served_run: int | None = None,
                served_label: str = "served") -> Any:
    """Left: ``metric`` per epoch for every run (:data:`CURVES_SQL`). Right: each run's value
    at its last epoch, the served run (``served_run``) highlighted. Returns the Figure."""
    import matplotlib.pyplot as plt

    curves: dict[tuple[int, str], list[tuple[int, float]]] = {}
    for r in store.query(CURVES_SQL, metric=metric):
        curves.setdefault((r["run_id"], r["run_name"]), []).append((r["epoch"], r["value"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6),
                                      gridspec_kw={"width_ratios": [3, 2]})
    names, finals, colors = [], [], []
    others = iter(plt.get_cmap("Blues")([0.9, 0.7, 0.5, 0.35] * 8))
    for (run_id, name), points in curves.items():
        served = run_id == served_run
        label = f"#{run_id} {name}" + (f" ({served_label})" if served else "")
        color = "#e45756" if served else next(others)
        epochs, values = zip(*points, strict=True)
        left.plot(epochs, values, marker="o", lw=3 if served else 1.5, color=color, label=label)
        names.append(label)
        finals.append(values[-1])
        colors.append(color)
    left.set_xlabel("epoch")
    left.set_ylabel(metric)
    left.set_title(f"{metric} per epoch, every recorded run", fontsize=11)
    left.legend(fontsize=9)
    bars = right.barh(names, finals, color=colors)
    right.bar_label(bars, labels=[f"{v:.3f}" for v in finals], padding=3, fontsize=9)
    right.invert_yaxis()
    right.set_xlim(0, max(finals) * 1.25)
    right.set_xlabel(f"{metric} at the last epoch")
    right.set_title(f"last epoch; red = {served_label}", fontsize=11)
    fig.tight_layout()
    return fig
