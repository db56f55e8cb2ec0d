"""One notebook run's outcome, and its row in ``build/report.json`` (written by the runner,
read back by the site)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class RunResult:
    """The outcome of executing one notebook; ``as_report()`` is one row of build/report.json."""

    notebook: str
    status: str  # "ok" or "failed"
    seconds: float
    peak_rss_mb: float | None
    failed_cell: str | None
    output: str
    # Sampled over the kernel and every process it started (forgekit.measure.memory): the sum
    # of RSS (counts shared libraries once per process: an overstatement), the sum of PSS (what
    # the kernel charges) and its anonymous part (what the tree allocated, the same on any
    # machine), the largest process's anonymous memory, and the memory cgroup's charge when the
    # run is inside a limited one (a Binder pod). peak_rss_mb above is the exact high-water
    # mark of the largest process's RSS.
    peak_tree_rss_mb: float | None = None
    peak_tree_pss_mb: float | None = None
    peak_tree_anon_mb: float | None = None
    peak_largest_anon_mb: float | None = None
    cgroup_peak_mb: float | None = None
    cgroup_limit_mb: float | None = None
    claims: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_report(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("output")
        row["claims"] = len(self.claims)
        row["claims_failed"] = sum(1 for c in self.claims if not c.get("holds"))
        return row

    @classmethod
    def from_report(cls, row: dict[str, Any], output: str,
                    claims: list[dict[str, Any]]) -> RunResult:
        """The result a ``report.json`` row describes (rows from older builds lack new fields)."""
        known = {f.name for f in fields(cls)} - {"output", "claims"}
        values = {k: v for k, v in row.items() if k in known}
        values.setdefault("peak_rss_mb", None)
        values.setdefault("failed_cell", None)
        return cls(**values, output=output, claims=claims)
