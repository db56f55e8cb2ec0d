"""The audit store: runs, their per-epoch metrics, artifacts and deployments, in SQL.

One code path for both databases through SQLAlchemy Core:

- **SQLite** (the default, one file): WAL journal so readers never block the writer, a busy
  timeout so concurrent writers wait instead of failing, and ``BEGIN IMMEDIATE`` for every
  write transaction so two writers never both read, then deadlock upgrading to a write lock.
- **PostgreSQL** when ``$FORGEKIT_AUDIT_DSN`` or the ``target`` argument names one
  (``postgresql://user:password@host:port/database``), through psycopg 3. Concurrent first
  opens are serialised by a transaction-scoped advisory lock while the schema is created.

Every write is one short transaction: a process killed in the middle of one leaves nothing of
it behind, and the store stays readable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from forgekit.audit import schema
from forgekit.audit.dsn import DSN_ENV, resolve_url
from forgekit.audit.dsn import where as _where
from forgekit.audit.engines import postgres_engine, sqlite_engine
from forgekit.audit.engines import translate as _translate
from forgekit.audit.errors import (
    AuditError,
    InvalidValueError,
    NotRecordedError,
    StoreConfigError,
    StoreReadOnlyError,
)
from forgekit.audit.fingerprints import fingerprint
from forgekit.audit.schema import artifacts, deployments, metrics, now, runs, verifications

__all__ = ["DSN_ENV", "AuditStore", "open_store", "resolve_url"]
_MIGRATION_LOCK = 0x0F0E_A0D1  # pg_advisory_xact_lock key: one schema migration at a time
_NAMESPACE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


# --------------------------------------------------------------------------------------------
# the store


class AuditStore:
    """Runs, metrics, artifacts, deployments and verifications in one SQL database.

    Open with :func:`open_store`. Every method is one transaction. Use as a context manager
    (or call :meth:`close`) to release the connections.
    """

    def __init__(self, url: sa.URL, *, namespace: str | None = None, fresh: bool = False,
                 read_only: bool = False) -> None:
        self.url = url
        self.namespace = namespace
        self.read_only = read_only
        self.migrated: list[int] = []
        try:
            if url.get_backend_name() == "sqlite":
                self.engine = sqlite_engine(url, read_only=read_only)
            else:
                self.engine = postgres_engine(url, namespace, read_only=read_only)
            if read_only:
                with self._read() as conn:
                    self._check_readable(conn)
                return
            with self._write() as conn:
                if self.is_postgres:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                                 {"k": _MIGRATION_LOCK})
                    if namespace:
                        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{namespace}"'))
                    self._refuse_foreign_tables(conn)
                if fresh:
                    schema.drop_all(conn)
                self.migrated = schema.migrate(conn)
        except AuditError:
            if hasattr(self, "engine"):
                self.engine.dispose()
            raise
        except sa.exc.DBAPIError as exc:
            err = _translate(exc, url)
            if err is None:
                raise
            raise err from exc

    def _check_readable(self, conn: sa.Connection) -> None:
        """A reader never migrates: it needs a store of exactly this forgekit's schema."""
        from forgekit import __version__

        found = schema.current_version(conn)
        if found == schema.SCHEMA_VERSION:
            return
        if found == 0:
            raise StoreConfigError(
                "no audit store here", path=self.where, found=f"no {schema.VERSION_TABLE} table",
                expected="a forgekit audit store",
                fix="check the DSN and --namespace; a store is created by the first recording "
                    "call, e.g. open_store(DSN) or AuditCallback")
        if found > schema.SCHEMA_VERSION:
            raise schema.too_new(found)
        raise StoreReadOnlyError(
            f"the audit store has schema version {found}; reading it needs version "
            f"{schema.SCHEMA_VERSION}, and a read command never migrates a store",
            path=self.where, found=f"schema {found}", expected=f"schema {schema.SCHEMA_VERSION}",
            fix=f"open it once for writing to migrate it (python -c \"import forgekit.audit as a; "
                f"a.open_store('STORE').close()\"), forgekit {__version__} keeps every row")

    def _refuse_foreign_tables(self, conn: sa.Connection) -> None:
        """Tables named like forgekit's but without its version table belong to something else:
        ``create_all`` would skip them and later writes would land in a stranger's tables."""
        names = set(sa.inspect(conn).get_table_names())
        clash = sorted(names & {t.name for t in schema.TABLES})
        if clash and schema.VERSION_TABLE not in names:
            raise StoreConfigError(
                "this database (schema) holds tables named like the audit store's that "
                "forgekit did not create; it will not write into them", path=self.where,
                found=f"table(s) {', '.join(clash)} without {schema.VERSION_TABLE}",
                expected="an empty schema or a forgekit audit store",
                fix="pass namespace='audit' (or --namespace) to keep the store in its own schema")

    # ---------------------------------------------------------------- plumbing

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.url.get_backend_name()

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgresql"

    @property
    def where(self) -> str:
        """The store's file, or its DSN with the password hidden."""
        where = _where(self.url)
        return f"{where} (schema {self.namespace})" if self.namespace else where

    def __repr__(self) -> str:
        return f"AuditStore({self.backend}: {self.where})"

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[sa.Connection]:
        """One transaction; database errors become forgekit errors that say what to do."""
        if write and self.read_only:
            raise StoreReadOnlyError(
                "this audit store was opened read-only", path=self.where,
                found="open_store(..., read_only=True)", expected="a store opened for writing",
                fix="open it without read_only=True to record")
        try:
            conn = self.engine.connect()
            if write:
                conn = conn.execution_options(forgekit_write=True)
            with conn, conn.begin():
                yield conn
        except sa.exc.DBAPIError as exc:
            err = _translate(exc, self.url)
            if err is None:
                raise
            raise err from exc

    def _write(self) -> AbstractContextManager[sa.Connection]:
        return self._transaction(write=True)

    def _read(self) -> AbstractContextManager[sa.Connection]:
        return self._transaction(write=False)

    def query(self, sql: str | sa.TextClause, **params: Any) -> list[dict[str, Any]]:
        """Run one SQL query (text with ``:name`` parameters) and return its rows as dicts."""
        stmt = sa.text(sql) if isinstance(sql, str) else sql
        with self._read() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt, params)]

    def schema_version(self) -> int:
        """The store's schema version (see :mod:`forgekit.audit.schema`)."""
        with self._read() as conn:
            return schema.current_version(conn)

    def ddl(self) -> str:
        """The ``CREATE TABLE`` statements of the current schema, in this database's dialect."""
        return "\n".join(str(sa.schema.CreateTable(t).compile(self.engine)).strip() + ";\n"
                         for t in schema.TABLES)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- runs and metrics

    def start_run(self, name: str, *, params: Mapping[str, Any] | None = None,
                  versions: Mapping[str, str] | None = None, git_commit: str | None = None,
                  git_dirty: bool | None = None) -> int:
        """Record a training run as started now; returns its id."""
        name = _text(name, "run name", runs.c.name)
        with self._write() as conn:
            return conn.execute(runs.insert().values(
                name=name, status="running", params=_json(params), versions=_json(versions),
                git_commit=git_commit, git_dirty=git_dirty, started_at=now(),
            )).inserted_primary_key[0]

    def end_run(self, run_id: int, *, status: str = "finished") -> None:
        """Mark run ``run_id`` as ended now with ``status`` (``finished`` or ``failed``)."""
        with self._write() as conn:
            done = conn.execute(runs.update().where(runs.c.id == run_id).values(
                status=status, ended_at=now()))
            if done.rowcount != 1:
                raise NotRecordedError(f"no run with id {run_id} in the store",
                                       path=self.where, fix="pass the id start_run returned")

    def log_metrics(self, run_id: int, epoch: int, values: Mapping[str, float]) -> int:
        """Record one epoch's metrics of ``run_id`` in one transaction; returns rows written."""
        stamp = now()
        rows = [{"run_id": run_id, "epoch": int(epoch),
                 "name": _text(k, "metric name", metrics.c.name), "value": _number(k, v),
                 "recorded_at": stamp} for k, v in values.items()]
        if not rows:
            return 0
        try:
            with self._write() as conn:
                conn.execute(metrics.insert(), rows)
        except sa.exc.IntegrityError as exc:
            with self._read() as conn:
                known = conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first()
                seen = conn.execute(sa.select(metrics.c.id).where(
                    metrics.c.run_id == run_id, metrics.c.epoch == int(epoch),
                    metrics.c.name.in_([r["name"] for r in rows]))).first()
            if known is None:
                raise NotRecordedError(f"no run with id {run_id} in the store", path=self.where,
                                       fix="pass the id start_run returned") from None
            if seen is None:  # another constraint: say which, never "already recorded"
                first = str(exc.orig).strip().splitlines()[0][:200]
                raise AuditError(f"the database refused epoch {epoch}'s metrics ({first})",
                                 path=self.where) from exc
            raise AuditError(
                f"run {run_id} already has metrics for epoch {epoch} "
                f"({', '.join(sorted(values))}); each metric is recorded once per epoch",
                path=self.where, found=f"epoch {epoch} recorded", expected="a new epoch",
                fix="log the next epoch, or start a new run for a new fit") from None
        return len(rows)

    # ---------------------------------------------------------------- artifacts and deployments

    def record_artifact(self, path: str | os.PathLike[str], *, run_id: int | None = None,
                        kind: str | None = None) -> int:
        """Record the artifact at ``path`` as it is on disk now; returns its id.

        ``kind`` defaults to ``forgekit.detect_format(path).kind``; the fingerprint is the
        sha256 of the file, or of a folder's files in a stable order
        (:func:`forgekit.audit.fingerprints.fingerprint`).
        """
        from forgekit import detect_format

        p = Path(path).absolute()
        if kind is None:
            kind = detect_format(p).kind
        digest, size = fingerprint(p)
        with self._write() as conn:
            return self._insert_artifact(conn, p, digest, size, kind, run_id)

    @staticmethod
    def _insert_artifact(conn: sa.Connection, p: Path, digest: str, size: int, kind: str,
                         run_id: int | None) -> int:
        return conn.execute(artifacts.insert().values(
            run_id=run_id, path=str(p), kind=_text(kind, "artifact kind", artifacts.c.kind),
            fingerprint=digest, bytes=size, created_at=now(),
        )).inserted_primary_key[0]

    def record_deployment(self, *, model_name: str, version: int, path: str | os.PathLike[str],
                          fingerprint: str | None = None, run_id: int | None = None) -> int:
        """Record that ``path`` was published as ``version`` of ``model_name``; returns its id.

        The deployment links to the latest artifact recorded at ``path`` with that content
        (``fingerprint``, else the content on disk now); when there is none, the artifact is
        recorded first (with ``run_id``). All of it is one transaction: a failure part-way
        leaves neither a new artifact nor a deployment behind.

        Raises:
            AuditError: ``fingerprint`` is given and the files at ``path`` no longer match it.
        """
        from forgekit import detect_format
        from forgekit.audit.fingerprints import fingerprint as compute

        model_name = _text(model_name, "model name", deployments.c.model_name)
        p = Path(path).absolute()
        on_disk, size = compute(p)
        if fingerprint is not None and fingerprint != on_disk:
            raise AuditError(
                "the files at the deployed path changed after they were fingerprinted",
                path=p, found=f"sha256 {on_disk[:12]}", expected=f"sha256 {fingerprint[:12]}",
                fix="publish the version again, then record it")
        with self._write() as conn:
            artifact_id = conn.execute(
                sa.select(sa.func.max(artifacts.c.id)).where(
                    artifacts.c.path == str(p), artifacts.c.fingerprint == on_disk)).scalar()
            if artifact_id is None:
                artifact_id = self._insert_artifact(conn, p, on_disk, size,
                                                    detect_format(p).kind, run_id)
            if run_id is not None:  # an artifact recorded before its run was known
                conn.execute(artifacts.update().where(
                    artifacts.c.id == artifact_id, artifacts.c.run_id.is_(None)
                ).values(run_id=run_id))
            return conn.execute(deployments.insert().values(
                model_name=model_name, version=int(version), artifact_id=artifact_id,
                path=str(p), published_at=now(),
            )).inserted_primary_key[0]

    def record_verification(self, *, model_name: str, version: int, ok: bool,
                            detail: str) -> None:
        """Record the outcome of a post-deployment check of ``version`` of ``model_name``.

        It is linked to the latest recorded deployment of that version, if any.
        """
        model_name = _text(model_name, "model name", verifications.c.model_name)
        detail = _text(str(detail), "detail", verifications.c.detail)
        with self._write() as conn:
            deployment_id = conn.execute(
                sa.select(sa.func.max(deployments.c.id)).where(
                    deployments.c.model_name == model_name,
                    deployments.c.version == int(version))).scalar()
            conn.execute(verifications.insert().values(
                deployment_id=deployment_id, model_name=model_name, version=int(version),
                ok=bool(ok), detail=str(detail), checked_at=now()))

    # ---------------------------------------------------------------- consistency

    def integrity_problems(self) -> list[str]:
        """What is inconsistent in the store; an empty list when nothing is.

        SQLite's own ``integrity_check`` and ``foreign_key_check`` on SQLite; on both, metrics,
        artifacts and deployments that point at rows that do not exist.
        """
        problems: list[str] = []
        with self._read() as conn:
            if not self.is_postgres:
                result = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
                if result != ["ok"]:
                    problems += [f"integrity_check: {r}" for r in result]
                problems += [f"foreign_key_check: {tuple(r)}"
                             for r in conn.exec_driver_sql("PRAGMA foreign_key_check")]
            for sql, what in _ORPHANS:
                n = conn.execute(sa.text(sql)).scalar()
                if n:
                    problems.append(f"{n} {what}")
        return problems


_ORPHANS = [
    ("SELECT COUNT(*) FROM metrics m WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = m.run_id)",
     "metric rows without their run"),
    ("SELECT COUNT(*) FROM artifacts a WHERE a.run_id IS NOT NULL AND NOT EXISTS "
     "(SELECT 1 FROM runs r WHERE r.id = a.run_id)", "artifacts naming a missing run"),
    ("SELECT COUNT(*) FROM deployments d WHERE NOT EXISTS "
     "(SELECT 1 FROM artifacts a WHERE a.id = d.artifact_id)",
     "deployments without their artifact"),
]


def _text(value: Any, what: str, column: sa.Column) -> str:
    """``value`` as text both databases store unchanged, else an :class:`InvalidValueError`.

    PostgreSQL refuses NUL bytes and text longer than a ``VARCHAR(n)``; SQLite would keep both.
    Checking here gives one rule, and one clear error, on both backends.
    """
    text = str(value)
    limit = getattr(column.type, "length", None)
    if "\x00" in text:
        raise InvalidValueError(f"the {what} contains a NUL byte, which PostgreSQL cannot store",
                                found=repr(text[:60]), expected="text without \\x00",
                                fix="remove the NUL bytes (text.replace('\\x00', ''))")
    if limit is not None and len(text) > limit:
        raise InvalidValueError(f"the {what} is {len(text)} characters long",
                                found=repr(text[:40] + "..."), expected=f"at most {limit}",
                                fix=f"shorten it to {limit} characters")
    return text


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidValueError(f"metric {name!r} is not a number", found=repr(value)[:60],
                                expected="a float (NaN and inf are kept)",
                                fix="log numbers only") from None


def _json(value: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(value or {}), sort_keys=True, default=str)


def open_store(target: str | os.PathLike[str] | None = None, *,
               default: str | os.PathLike[str] | None = None, namespace: str | None = None,
               fresh: bool = False, read_only: bool = False) -> AuditStore:
    """Open (creating or migrating as needed) the audit store named by ``target``.

    With ``read_only=True`` nothing is created or migrated: the store must exist with this
    forgekit's schema, and every write is refused by the database itself.

    Args:
        target: a plain path (an SQLite file) or a DSN (``sqlite:///...``,
            ``postgresql://user:password@host:port/db``). When None, ``$FORGEKIT_AUDIT_DSN``,
            else ``default``.
        default: the SQLite file to use when neither is given (a lesson's output folder).
        namespace: on PostgreSQL, the schema (``search_path``) holding the tables, so several
            stores can share one database; ignored on SQLite, where the file is the store.
        fresh: drop forgekit's tables first (a lesson that must start from an empty store).
        read_only: open for reading only (what ``forgekit audit`` does).

    Raises:
        StoreConfigError: no store named, a DSN that cannot be parsed or has an unknown
            scheme, a path that is not a regular file, a database that is not a forgekit
            store (or, reading, no store there).
        StoreCorruptError: the SQLite file is damaged.
        StoreUnavailableError: the server cannot be reached or refuses the login.
        StoreReadOnlyError: the SQLite file or its folder cannot be written.
        SchemaTooNewError: the store was written by a newer forgekit.
    """
    if namespace is not None and not _NAMESPACE.match(namespace):
        raise StoreConfigError(
            f"namespace {namespace!r} is not a plain lower-case SQL identifier",
            found=namespace, expected="[a-z_][a-z0-9_]*", fix="namespace='lesson_08'")
    if fresh and read_only:
        raise ValueError("fresh=True drops tables; it cannot be combined with read_only=True")
    url = resolve_url(target, default)
    return AuditStore(url, namespace=namespace if url.get_backend_name() != "sqlite" else None,
                      fresh=fresh, read_only=read_only)
