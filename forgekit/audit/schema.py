"""The audit store's tables, its schema version, and the migrations between versions.

Why a small versioned migration table and not Alembic: the store is created on first use by a
notebook or a training script, on SQLite or PostgreSQL, with no migration folder, ``env.py`` or
command to run first; every migration so far is a few lines of SQLAlchemy Core DDL; and what a
user needs most, "this store was written by a newer forgekit", is a comparison of two integers
that Alembic would report as an unknown revision. So ``forgekit_schema`` holds one row per
applied migration, :data:`SCHEMA_VERSION` is the version this forgekit writes, and
:func:`migrate` applies the missing steps in one transaction (DDL is transactional on both
backends, so a step never half-applies). Migrations only ever move forward.

History:
    1. runs, metrics, artifacts, deployments.
    2. verifications: the outcome of each post-deployment check (``verify``) of a deployed
       version, written by ``AuditStore.record_verification``.

A migration that alters a table created by an earlier one must spell that change out itself
(``ALTER TABLE``), never edit the earlier table's definition: a store made by an older forgekit
has to go through exactly the same steps as a new one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

SCHEMA_VERSION = 2
VERSION_TABLE = "forgekit_schema"

metadata = sa.MetaData()


class MetricValue(sa.TypeDecorator):
    """A float column that keeps NaN on SQLite too.

    SQLite has no NaN REAL: binding one stores NULL (which ``NOT NULL`` then refuses). So on
    SQLite a NaN is written as the text ``'NaN'``, which the REAL column keeps as text, and read
    back as ``float('nan')``; ``inf`` and ``-inf`` are real SQLite values and need nothing.
    PostgreSQL's ``double precision`` stores all three natively. Both databases sort NaN above
    every number (SQLite: text after numbers). The DDL is unchanged (``FLOAT``/``REAL``).
    """

    impl = sa.Float
    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any]:
        # replaces, not chains, Float's processor: that one would turn "NaN" back into a float
        sqlite = dialect.name == "sqlite"

        def process(value: Any) -> Any:
            if value is None:
                return None
            value = float(value)
            return "NaN" if sqlite and math.isnan(value) else value
        return process

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return as_float(value)


def as_float(value: Any) -> float | None:
    """A stored metric value as a float, also from raw SQL on SQLite (where NaN is ``'NaN'``)."""
    return None if value is None else float(value)


schema_versions = sa.Table(
    VERSION_TABLE, metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("forgekit_version", sa.String(40), nullable=False),
)

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # running | finished | failed
    sa.Column("params", sa.Text, nullable=False),  # JSON object, keys sorted
    sa.Column("versions", sa.Text, nullable=False),  # JSON: library -> version
    sa.Column("git_commit", sa.String(64)),  # None outside a git checkout
    sa.Column("git_dirty", sa.Boolean),  # uncommitted changes when the run started
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
)

metrics = sa.Table(
    "metrics", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("value", MetricValue, nullable=False),  # NaN-safe on SQLite, see MetricValue
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("run_id", "name", "epoch", name="uq_metrics_run_name_epoch"),
)

artifacts = sa.Table(
    "artifacts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="SET NULL")),
    sa.Column("path", sa.Text, nullable=False),  # absolute
    sa.Column("kind", sa.String(40), nullable=False),  # forgekit.detect_format(path).kind
    sa.Column("fingerprint", sa.String(64), nullable=False),  # sha256 hex of the content
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_artifacts_path", "path"),
)

deployments = sa.Table(
    "deployments", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifacts.id"), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_deployments_model_version", "model_name", "version"),
)

verifications = sa.Table(
    "verifications", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # NULL when the checked version was published without this store knowing
    sa.Column("deployment_id", sa.Integer, sa.ForeignKey("deployments.id")),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_verifications_model_version", "model_name", "version"),
)

TABLES = (runs, metrics, artifacts, deployments, verifications)


def _v1(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[runs, metrics, artifacts, deployments])


def _v2(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=[verifications])


MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {1: _v1, 2: _v2}
assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1))


def now() -> datetime:
    """The time stamps the store writes: timezone-aware UTC."""
    return datetime.now(UTC)


def current_version(conn: sa.Connection) -> int:
    """The store's schema version: 0 for an empty database."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return 0
    return conn.execute(sa.select(sa.func.max(schema_versions.c.version))).scalar() or 0


def migrate(conn: sa.Connection, *, target: int = SCHEMA_VERSION) -> list[int]:
    """Apply the migrations from the store's version up to ``target``; return those applied.

    Call inside a write transaction that serialises concurrent openers (the store does).

    Raises:
        SchemaTooNewError: the store's version is above ``SCHEMA_VERSION``.
    """
    from forgekit import __version__

    found = current_version(conn)
    if found > SCHEMA_VERSION:
        raise too_new(found)
    metadata.create_all(conn, tables=[schema_versions])
    applied = []
    for version in range(found + 1, target + 1):
        MIGRATIONS[version](conn)
        conn.execute(schema_versions.insert().values(
            version=version, applied_at=now(), forgekit_version=__version__))
        applied.append(version)
    return applied


def too_new(found: int) -> Exception:
    """The error for a store whose schema version ``found`` is above :data:`SCHEMA_VERSION`."""
    from forgekit import __version__
    from forgekit.audit.errors import SchemaTooNewError

    return SchemaTooNewError(
        f"the audit store has schema version {found}, written by a newer forgekit; this "
        f"forgekit {__version__} knows versions up to {SCHEMA_VERSION} and will not write "
        "to a schema it does not know",
        found=f"schema {found}", expected=f"schema <= {SCHEMA_VERSION}",
        fix="upgrade forgekit (pip install -U forgekit) or point this run at another "
            "store (--db PATH, or FORGEKIT_AUDIT_DSN)")


def drop_all(conn: sa.Connection) -> None:
    """Drop forgekit's tables (and its version table) from the store."""
    metadata.drop_all(conn, tables=[*TABLES, schema_versions])
