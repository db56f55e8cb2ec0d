"""The questions an audit trail answers, each a plain function around one visible SQL text.

The SQL constants are the queries themselves (portable between SQLite and PostgreSQL, with
``:name`` parameters), so a lesson can print exactly what runs:

- :data:`LINEAGE_SQL` + :data:`FINAL_METRICS_SQL`: a served version -> its artifact -> the run
  that produced it -> that run's metrics (:func:`lineage`).
- :data:`RANKED_RUNS_SQL`: every run ranked by a metric's value at its last epoch, and
  :data:`DEPLOYED_RUN_SQL`: the run behind a served version (:func:`best_run`).
- :data:`LATEST_ARTIFACTS_SQL`: the newest record of each artifact path, re-fingerprinted on
  disk by :func:`check_artifacts` (overwritten, tampered with, deleted).
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forgekit.audit.errors import NotRecordedError
from forgekit.audit.fingerprints import fingerprint
from forgekit.audit.schema import as_float
from forgekit.audit.store import AuditStore
from forgekit.table import Fields, Table, human_bytes

LINEAGE_SQL = """\
SELECT d.model_name, d.version, d.published_at, d.path,
       a.id AS artifact_id, a.kind, a.fingerprint, a.bytes,
       r.id AS run_id, r.name AS run_name, r.status, r.params,
       r.git_commit, r.started_at, r.ended_at
FROM deployments d
JOIN artifacts a ON a.id = d.artifact_id
LEFT JOIN runs r ON r.id = a.run_id
WHERE d.model_name = :model AND d.version = :version
ORDER BY d.id DESC
LIMIT 1"""

LATEST_VERSION_SQL = """\
SELECT MAX(version) AS version FROM deployments WHERE model_name = :model"""

FINAL_METRICS_SQL = """\
SELECT m.name, m.value, m.epoch
FROM metrics m
WHERE m.run_id = :run_id
  AND m.epoch = (SELECT MAX(epoch) FROM metrics WHERE run_id = :run_id)
ORDER BY m.name"""

LAST_VERIFICATION_SQL = """\
SELECT ok, detail, checked_at
FROM verifications
WHERE model_name = :model AND version = :version
ORDER BY id DESC
LIMIT 1"""

RANKED_RUNS_SQL = """\
SELECT r.id AS run_id, r.name AS run_name, m.value, m.epoch
FROM runs r
JOIN metrics m ON m.run_id = r.id AND m.name = :metric
WHERE m.epoch = (SELECT MAX(m2.epoch) FROM metrics m2
                 WHERE m2.run_id = r.id AND m2.name = :metric)
ORDER BY m.value {order}, r.id"""

DEPLOYED_RUN_SQL = """\
SELECT d.version, a.run_id
FROM deployments d
JOIN artifacts a ON a.id = d.artifact_id
WHERE d.model_name = :model AND d.version = :version
ORDER BY d.id DESC
LIMIT 1"""

LATEST_ARTIFACTS_SQL = """\
SELECT a.id, a.path, a.kind, a.fingerprint, a.bytes, a.run_id
FROM artifacts a
WHERE a.id = (SELECT MAX(b.id) FROM artifacts b WHERE b.path = a.path)
ORDER BY a.id"""

RUNS_SQL = """\
SELECT r.id, r.name, r.status, r.started_at, r.ended_at, r.git_commit,
       (SELECT COUNT(*) FROM metrics m WHERE m.run_id = r.id) AS metric_rows
FROM runs r
ORDER BY r.id"""


def when(value: Any) -> str:
    """A stored time stamp as ``YYYY-MM-DD HH:MM:SS UTC`` (SQLite returns it naive, in UTC)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def printable(value: object) -> str:
    """``str(value)`` with control and format characters escaped (``\\x1b``, ``\\u202e``).

    Run names, model names and paths come from whoever wrote the store: printed raw, an escape
    sequence in one could clear a terminal, retitle it or hide the lines before it.
    """
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c == "\n" or unicodedata.category(c) not in ("Cc", "Cf")
                   else c.encode("unicode_escape").decode("ascii") for c in text)


def _metrics_text(values: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4f}" for k, v in values.items()) or "none recorded"


# --------------------------------------------------------------------------------------------
# lineage


class _Shown:
    """A query result shown as its table, in a terminal and in a notebook."""

    def table(self) -> Table | Fields:
        raise NotImplementedError

    def __str__(self) -> str:
        return str(self.table())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


@dataclass(repr=False)
class Lineage(_Shown):
    """A served version traced back: deployment -> artifact -> run -> metrics."""

    model: str
    version: int
    row: dict[str, Any]
    final_metrics: dict[str, float] = field(default_factory=dict)
    last_epoch: int | None = None
    verification: dict[str, Any] | None = None
    on_disk: str = "not checked"  # "ok" | "changed" | "missing"

    @property
    def run_id(self) -> int | None:
        return self.row["run_id"]

    @property
    def run_name(self) -> str | None:
        return self.row["run_name"]

    def fields(self) -> Fields:
        r = self.row
        verified = "never"
        if self.verification:
            v = self.verification
            verified = f"{'ok' if v['ok'] else 'FAILED'} at {when(v['checked_at'])}: {v['detail']}"
        if r["run_id"] is None:
            run = "not recorded (the artifact was saved outside a recorded run)"
        else:
            params = ", ".join(f"{k}={v}" for k, v in json.loads(r["params"] or "{}").items())
            run = (f"#{r['run_id']} {r['run_name']!r} {r['status']}, "
                   f"{when(r['started_at'])} -> {when(r['ended_at'])}, "
                   f"git {(r['git_commit'] or 'none')[:10]}" + (f"; {params}" if params else ""))
        epoch = "" if self.last_epoch is None else f"epoch {self.last_epoch}: "
        return Fields([
            ("served", f"{self.model} version {self.version}"),
            ("published", f"{when(r['published_at'])} from {r['path']}"),
            ("verified", verified),
            ("artifact", f"#{r['artifact_id']} {r['kind']}, {human_bytes(r['bytes'])}, "
                         f"sha256 {r['fingerprint'][:12]} (on disk now: {self.on_disk})"),
            ("run", run),
            ("metrics", epoch + _metrics_text(self.final_metrics)),
        ], code=("published",))

    table = fields  # shown by _Shown


def _disk_state(path: str, recorded: str) -> tuple[str | None, str]:
    """``(fingerprint now, "ok" | "changed" | "missing")`` of a recorded artifact path."""
    if not (Path(path).exists() or Path(path + ".index").exists()):  # .index: a ckpt prefix
        return None, "missing"
    now = fingerprint(path)[0]
    return now, "ok" if now == recorded else "changed"


def final_metrics(store: AuditStore, run_id: int) -> tuple[dict[str, float], int | None]:
    """A run's metrics at its last recorded epoch, and that epoch (``({}, None)`` if none)."""
    rows = store.query(FINAL_METRICS_SQL, run_id=run_id)
    return {r["name"]: as_float(r["value"]) for r in rows}, (rows[0]["epoch"] if rows else None)


def lineage(store: AuditStore, model: str, version: int | None = None) -> Lineage:
    """Trace ``version`` of ``model`` (default: its highest deployed version) to its run.

    Raises:
        NotRecordedError: no deployment of that model (and version) is recorded.
    """
    if version is None:
        version = store.query(LATEST_VERSION_SQL, model=model)[0]["version"]
        if version is None:
            raise NotRecordedError(f"no deployment of model {model!r} is recorded",
                                   path=store.where, expected=f"a deployment of {model!r}",
                                   fix="record_deployment(...) when publishing, or check the "
                                       "model name (forgekit audit runs lists what is stored)")
    rows = store.query(LINEAGE_SQL, model=model, version=int(version))
    if not rows:
        raise NotRecordedError(f"no deployment of {model!r} version {version} is recorded",
                               path=store.where, found="no such deployment",
                               expected=f"{model!r} version {version}",
                               fix="check the model name and version against the store")
    row = rows[0]
    values, epoch = final_metrics(store, row["run_id"]) if row["run_id"] is not None else ({}, None)
    checks = store.query(LAST_VERIFICATION_SQL, model=model, version=int(version))
    return Lineage(model, int(version), row, values, epoch, checks[0] if checks else None,
                   _disk_state(row["path"], row["fingerprint"])[1])


# --------------------------------------------------------------------------------------------
# best run


@dataclass(repr=False)
class BestRun(_Shown):
    """Every run ranked by a metric at its last epoch, and whether the best one is served."""

    metric: str
    mode: str  # "max" or "min"
    ranking: list[dict[str, Any]]
    deployed_run_id: int | None
    deployed_version: int | None

    @property
    def best(self) -> dict[str, Any]:
        return self.ranking[0]

    @property
    def is_deployed(self) -> bool:
        """Whether the best run is the one behind the served version."""
        return self.deployed_run_id is not None and self.best["run_id"] == self.deployed_run_id

    def table(self) -> Table:
        t = Table(["rank", "run", "name", f"{self.metric} ({self.mode})", "epoch", "served"],
                  title=f"runs ranked by {self.metric} at their last epoch")
        for i, r in enumerate(self.ranking, 1):
            served = (f"✓ version {self.deployed_version}"
                      if r["run_id"] == self.deployed_run_id else "")
            t.add(i, f"#{r['run_id']}", r["run_name"], f"{r['value']:.4f}", r["epoch"], served)
        return t


def ranked_runs_sql(mode: str = "max") -> str:
    """:data:`RANKED_RUNS_SQL` ordered best first: ``DESC`` for ``max``, ``ASC`` for ``min``."""
    if mode not in ("max", "min"):
        raise ValueError("mode must be 'max' (higher is better) or 'min' (lower is better)")
    return RANKED_RUNS_SQL.format(order="DESC" if mode == "max" else "ASC")


def best_run(store: AuditStore, metric: str, *, model: str | None = None,
             version: int | None = None, mode: str | None = None) -> BestRun:
    """Rank every run by ``metric`` at its last epoch; compare the best with the served one.

    ``mode`` defaults to ``"min"`` for losses and errors, ``"max"`` otherwise. The served run is
    the one behind ``version`` of ``model`` (default: its highest deployed version).

    Raises:
        NotRecordedError: no run recorded ``metric``.
    """
    mode = mode or ("min" if any(w in metric for w in ("loss", "error", "mse", "mae")) else "max")
    ranking = store.query(ranked_runs_sql(mode), metric=metric)
    for r in ranking:
        r["value"] = as_float(r["value"])  # SQLite returns a stored NaN as 'NaN'
    # both databases sort NaN above every number; a NaN metric is never the best one
    ranking.sort(key=lambda r: math.isnan(r["value"]))
    if not ranking:
        raise NotRecordedError(f"no run recorded the metric {metric!r}", path=store.where,
                               expected=metric, fix="name a metric the runs logged "
                                                    "(see forgekit audit runs)")
    deployed_run = None
    if model is not None:
        if version is None:
            version = store.query(LATEST_VERSION_SQL, model=model)[0]["version"]
        rows = store.query(DEPLOYED_RUN_SQL, model=model, version=version) if version else []
        deployed_run = rows[0]["run_id"] if rows else None
    return BestRun(metric, mode, ranking, deployed_run, version)


# --------------------------------------------------------------------------------------------
# fingerprints


@dataclass(repr=False)
class ArtifactCheck(_Shown):
    """Each recorded artifact path re-fingerprinted: ``ok``, ``changed`` or ``missing``."""

    rows: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return all(r["status"] == "ok" for r in self.rows)

    @property
    def problems(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "ok"]

    def table(self) -> Table:
        t = Table(["artifact", "kind", "path", "recorded", "on disk", "status"],
                  title="recorded artifacts against the files on disk now", max_width=60)
        for r in self.rows:
            mark = "✓ ok" if r["status"] == "ok" else f"✗ {r['status']}"
            t.add(f"#{r['id']}", r["kind"], r["path"], r["fingerprint"][:12],
                  (r["now"] or "-")[:12], mark)
        return t


def check_artifacts(store: AuditStore) -> ArtifactCheck:
    """Re-fingerprint the newest record of every artifact path and compare with the store."""
    rows = store.query(LATEST_ARTIFACTS_SQL)
    for r in rows:
        r["now"], r["status"] = _disk_state(r["path"], r["fingerprint"])
    return ArtifactCheck(rows)


# --------------------------------------------------------------------------------------------
# runs


def list_runs(store: AuditStore) -> Table:
    """Every recorded run with its status, times, commit and final metrics."""
    t = Table(["run", "name", "status", "started", "ended", "git", "last epoch metrics"],
              title=f"runs in {store.where}", max_width=80)
    for r in store.query(RUNS_SQL):
        values, epoch = final_metrics(store, r["id"])
        t.add(f"#{r['id']}", r["name"], r["status"], when(r["started_at"]), when(r["ended_at"]),
              (r["git_commit"] or "-")[:10],
              ("-" if epoch is None else f"epoch {epoch}: ") + _metrics_text(values))
    return t
