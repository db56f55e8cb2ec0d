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
from forgekit.audit.errors import (
    AuditError,
    NotRecordedError,
    StoreConfigError,
    StoreReadOnlyError,
    StoreUnavailableError,
)
from forgekit.audit.fingerprints import fingerprint
from forgekit.audit.schema import artifacts, deployments, metrics, now, runs, verifications

DSN_ENV = "FORGEKIT_AUDIT_DSN"
BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5
_MIGRATION_LOCK = 0x0F0E_A0D1  # pg_advisory_xact_lock key: one schema migration at a time
_NAMESPACE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_DSN_EXAMPLES = "sqlite:///path/to/audit.sqlite, a plain file path, or " \
                "postgresql://user:password@host:5432/database"


# --------------------------------------------------------------------------------------------
# where the store lives


def resolve_url(target: str | os.PathLike[str] | None = None,
                default: str | os.PathLike[str] | None = None) -> sa.URL:
    """The database URL for ``target``, else ``$FORGEKIT_AUDIT_DSN``, else the file ``default``.

    ``target`` may be a DSN (``sqlite:///...``, ``postgresql://...``, ``postgres://...``) or a
    plain path to an SQLite file.

    Raises:
        StoreConfigError: none of the three is given, or the DSN's scheme is not SQLite or
            PostgreSQL.
    """
    given = target if target is not None else (os.environ.get(DSN_ENV) or default)
    if given is None or not str(given).strip():
        raise StoreConfigError(
            "no audit store was named", found="no DSN, no path", expected=_DSN_EXAMPLES,
            fix=f"pass a path or DSN (forgekit audit --db audit.sqlite ...), or set {DSN_ENV}")
    text = os.fspath(given).strip()
    if "://" not in text:  # a plain path: an SQLite file
        return sa.URL.create("sqlite", database=str(Path(text).expanduser().absolute()))
    scheme = text.split("://", 1)[0].lower()
    try:
        url = sa.make_url(text)
    except sa.exc.ArgumentError as exc:
        raise StoreConfigError(f"the DSN cannot be parsed ({exc})", path=_hidden(text),
                               expected=_DSN_EXAMPLES, fix="correct the DSN") from None
    if scheme.split("+")[0] in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if scheme.split("+")[0] == "sqlite":
        if not url.database or url.database == ":memory:":
            raise StoreConfigError(
                "an audit store must be a file, so other processes can read it",
                path=_hidden(text), found="in-memory SQLite", expected="sqlite:///path/to/file",
                fix="name a file: sqlite:///audit.sqlite")
        return url.set(drivername="sqlite",
                       database=str(Path(url.database).expanduser().absolute()))
    raise StoreConfigError(
        f"unknown DSN scheme {scheme!r}", path=_hidden(text), found=scheme,
        expected=_DSN_EXAMPLES,
        fix="use sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DB")


def _hidden(text: str) -> str:
    """A DSN with its password masked, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", text)


def _where(url: sa.URL) -> str:
    return url.database if url.get_backend_name() == "sqlite" else \
        url.render_as_string(hide_password=True)


# --------------------------------------------------------------------------------------------
# engines


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    path = Path(url.database)
    folder = path.parent
    if path.exists() and not os.access(path, os.W_OK):
        raise StoreReadOnlyError(
            "the SQLite audit store is read-only for this user", path=path,
            found="read-only file", expected="a writable SQLite file",
            fix=f"chmod u+w {str(path)!r}, or copy it somewhere writable and pass that path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreReadOnlyError(
            f"cannot create the store's folder ({exc.strerror})", path=folder,
            found="no folder", expected="a writable folder",
            fix="choose a store path in a writable folder") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreReadOnlyError(
            "SQLite cannot write its -wal and -shm files beside the store: the folder is "
            "read-only for this user", path=folder, found="read-only folder",
            expected="a writable folder", fix="choose a store path in a writable folder")
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _begin)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; WAL keeps it whole
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so a
        # transaction that reads and then writes cannot fail with "database is locked".
        write = conn.get_execution_options().get("forgekit_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _postgres_engine(url: sa.URL, namespace: str | None) -> sa.Engine:
    args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
    if namespace:
        args["options"] = f"-c search_path={namespace}"
    return sa.create_engine(url, connect_args=args, pool_pre_ping=True)


def _translate(exc: BaseException, url: sa.URL) -> AuditError | None:
    """The forgekit error for a driver exception, or None when it is not about the store."""
    text = str(getattr(exc, "orig", None) or exc)
    low = text.lower()
    where = _where(url)
    if "readonly database" in low or ("read-only" in low and url.get_backend_name() == "sqlite"):
        return StoreReadOnlyError(
            "the SQLite audit store cannot be written", path=where, found="read-only database",
            expected="a writable SQLite file",
            fix="make the file and its folder writable, or pass another path")
    if url.get_backend_name() == "postgresql":
        host = f"{url.host or 'localhost'}:{url.port or 5432}"
        if "password authentication failed" in low or "no password supplied" in low:
            return StoreUnavailableError(
                f"PostgreSQL at {host} refused the login of user {url.username!r}",
                path=where, found="authentication failed", expected="a valid user and password",
                fix=f"correct the user or password in the DSN ({DSN_ENV} or --dsn)")
        if "does not exist" in low and "database" in low:
            return StoreUnavailableError(
                f"PostgreSQL at {host} has no database {url.database!r}", path=where,
                found="no such database", expected=f"database {url.database!r}",
                fix=f"create it (createdb {url.database}) or name an existing one in the DSN")
        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) and (
                "connect" in low or "timeout" in low or "refused" in low or "resolve" in low):
            first = text.strip().splitlines()[0]  # psycopg: "... port 1 failed: Connection refused"
            return StoreUnavailableError(
                f"cannot reach a PostgreSQL server at {host} ({first.rsplit('failed: ', 1)[-1][:200]})",
                path=where, found="no server answering", expected="a running PostgreSQL server",
                fix="start the server, or correct host and port in the DSN "
                    f"({DSN_ENV} or --dsn)")
    if "file is not a database" in low:
        return StoreConfigError(
            "this file is not an SQLite database", path=where, found="not SQLite",
            expected="an SQLite audit store",
            fix="pass the audit store's file (forgekit doctor PATH says what this one is)")
    if isinstance(exc, sa.exc.OperationalError) and "unable to open database file" in low:
        return StoreReadOnlyError(
            "SQLite cannot open or create the store file", path=where,
            found="unopenable file", expected="a writable SQLite file",
            fix="check the folder exists and is writable, or pass another path")
    return None


# --------------------------------------------------------------------------------------------
# the store


class AuditStore:
    """Runs, metrics, artifacts, deployments and verifications in one SQL database.

    Open with :func:`open_store`. Every method is one transaction. Use as a context manager
    (or call :meth:`close`) to release the connections.
    """

    def __init__(self, url: sa.URL, *, namespace: str | None = None, fresh: bool = False) -> None:
        self.url = url
        self.namespace = namespace
        try:
            if url.get_backend_name() == "sqlite":
                self.engine = _sqlite_engine(url)
            else:
                self.engine = _postgres_engine(url, namespace)
            with self._write() as conn:
                if self.is_postgres:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                                 {"k": _MIGRATION_LOCK})
                    if namespace:
                        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{namespace}"'))
                if fresh:
                    schema.drop_all(conn)
                self.migrated = schema.migrate(conn)
        except AuditError:
            raise
        except sa.exc.DBAPIError as exc:
            err = _translate(exc, url)
            if err is None:
                raise
            raise err from exc

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
        rows = [{"run_id": run_id, "epoch": int(epoch), "name": str(k), "value": float(v),
                 "recorded_at": stamp} for k, v in values.items()]
        if not rows:
            return 0
        try:
            with self._write() as conn:
                conn.execute(metrics.insert(), rows)
        except sa.exc.IntegrityError:
            with self._read() as conn:
                known = conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first()
            if known is None:
                raise NotRecordedError(f"no run with id {run_id} in the store", path=self.where,
                                       fix="pass the id start_run returned") from None
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
            return conn.execute(artifacts.insert().values(
                run_id=run_id, path=str(p), kind=kind, fingerprint=digest, bytes=size,
                created_at=now(),
            )).inserted_primary_key[0]

    def record_deployment(self, *, model_name: str, version: int, path: str | os.PathLike[str],
                          fingerprint: str | None = None, run_id: int | None = None) -> int:
        """Record that ``path`` was published as ``version`` of ``model_name``; returns its id.

        The deployment links to the latest artifact recorded at ``path`` with that content
        (``fingerprint``, else the content on disk now); when there is none, the artifact is
        recorded first (with ``run_id``).

        Raises:
            AuditError: ``fingerprint`` is given and the files at ``path`` no longer match it.
        """
        from forgekit.audit.fingerprints import fingerprint as compute

        p = Path(path).absolute()
        on_disk, _ = compute(p)
        if fingerprint is not None and fingerprint != on_disk:
            raise AuditError(
                "the files at the deployed path changed after they were fingerprinted",
                path=p, found=f"sha256 {on_disk[:12]}", expected=f"sha256 {fingerprint[:12]}",
                fix="publish the version again, then record it")
        with self._read() as conn:
            artifact_id = conn.execute(
                sa.select(sa.func.max(artifacts.c.id)).where(
                    artifacts.c.path == str(p), artifacts.c.fingerprint == on_disk)).scalar()
        if artifact_id is None:
            artifact_id = self.record_artifact(p, run_id=run_id)
        with self._write() as conn:
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


def _json(value: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(value or {}), sort_keys=True, default=str)


def open_store(target: str | os.PathLike[str] | None = None, *,
               default: str | os.PathLike[str] | None = None, namespace: str | None = None,
               fresh: bool = False) -> AuditStore:
    """Open (creating or migrating as needed) the audit store named by ``target``.

    Args:
        target: a plain path (an SQLite file) or a DSN (``sqlite:///...``,
            ``postgresql://user:password@host:port/db``). When None, ``$FORGEKIT_AUDIT_DSN``,
            else ``default``.
        default: the SQLite file to use when neither is given (a lesson's output folder).
        namespace: on PostgreSQL, the schema (``search_path``) holding the tables, so several
            stores can share one database; ignored on SQLite, where the file is the store.
        fresh: drop forgekit's tables first (a lesson that must start from an empty store).

    Raises:
        StoreConfigError: no store named, or an unknown DSN scheme.
        StoreUnavailableError: the server cannot be reached or refuses the login.
        StoreReadOnlyError: the SQLite file or its folder cannot be written.
        SchemaTooNewError: the store was written by a newer forgekit.
    """
    if namespace is not None and not _NAMESPACE.match(namespace):
        raise StoreConfigError(
            f"namespace {namespace!r} is not a plain lower-case SQL identifier",
            found=namespace, expected="[a-z_][a-z0-9_]*", fix="namespace='lesson_08'")
    url = resolve_url(target, default)
    return AuditStore(url, namespace=namespace if url.get_backend_name() != "sqlite" else None,
                      fresh=fresh)
