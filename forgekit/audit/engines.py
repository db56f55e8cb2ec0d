"""How the audit store connects to SQLite and PostgreSQL, and what a driver error means.

Writers (:func:`sqlite_engine` with ``read_only=False``) get WAL, a busy timeout and
``BEGIN IMMEDIATE``. Readers (``forgekit audit runs | lineage | check``) open the file with
SQLite's ``mode=ro`` and PostgreSQL sessions with ``default_transaction_read_only``: a read
command never creates a folder, a file, a table, or switches a database's journal mode.

Before SQLite sees a file, :func:`inspect_sqlite` checks what it is: a FIFO or a device is
refused before anything opens it (opening a FIFO can block forever, ``/dev/zero`` reads
without end), a damaged file or a database that is not a forgekit store is named for what it is.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import urllib.parse
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from forgekit.audit.dsn import DSN_ENV, where
from forgekit.audit.errors import (
    AuditError,
    InvalidValueError,
    StoreConfigError,
    StoreCorruptError,
    StoreReadOnlyError,
    StoreUnavailableError,
)
from forgekit.audit.schema import VERSION_TABLE

BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a folder"))
_DAMAGED_FIX = ("restore the store from a backup, or salvage its rows with "
                "`sqlite3 BROKEN .recover | sqlite3 NEW`; forgekit left the file as it is")


def _ro_uri(path: Path, *, immutable: bool = False) -> str:
    return f"file:{urllib.parse.quote(str(path))}?mode=ro" + ("&immutable=1" if immutable else "")


def inspect_sqlite(path: Path, *, read_only: bool) -> list[str] | None:
    """The table names in the SQLite file at ``path`` (None when it does not exist).

    Raises:
        StoreConfigError: not a regular file, not SQLite, not a forgekit store, or (reading)
            no file at all.
        StoreCorruptError: SQLite finds the file damaged (truncated, bytes flipped).
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if read_only:
            raise StoreConfigError(
                "no audit store exists at this path", path=path, found="no file",
                expected="an SQLite audit store written by forgekit",
                fix="check the path (forgekit audit --db FILE); a store is created by the "
                    "first recording call, e.g. open_store(FILE) or AuditCallback") from None
        return None
    except OSError as exc:
        raise StoreConfigError(f"cannot look at the store file ({exc.strerror})", path=path,
                               fix="pass a readable path") from None
    for test, kind in _KINDS:
        if test(mode):
            raise StoreConfigError(
                "an audit store must be a regular file", path=path, found=kind,
                expected="an SQLite file", fix="pass the audit store's file, or a new path")
    tables = _table_names(path)
    if read_only and not tables:
        raise StoreConfigError(
            "the file is an empty SQLite database, not an audit store", path=path,
            found="no tables", expected="an SQLite audit store written by forgekit",
            fix="check the path; a store is created by the first recording call")
    if tables and VERSION_TABLE not in tables:
        shown = ", ".join(tables[:8]) + (f" and {len(tables) - 8} more" if len(tables) > 8 else "")
        raise StoreConfigError(
            "this SQLite database is not a forgekit audit store; forgekit will not add its "
            "tables to another application's database", path=path,
            found=f"{len(tables)} other table(s): {shown}", expected=f"a {VERSION_TABLE} table",
            fix="pass the audit store's file, or a new file name for a new store")
    return tables


def _table_names(path: Path) -> list[str]:
    try:
        conn = _connect_ro(path)
        try:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        err = translate(exc, sa.URL.create("sqlite", database=str(path)))
        if err is None:
            raise
        raise err from None
    return [r[0] for r in rows]


def _connect_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection; ``immutable`` when SQLite cannot create the WAL index beside a
    store in a folder this user may not write (then no writer can have a WAL open there)."""
    conn = sqlite3.connect(_ro_uri(path), uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.OperationalError as exc:
        conn.close()
        wal = Path(f"{path}-wal")
        if "readonly" not in str(exc).replace("-", "") or wal.exists() or \
                os.access(path.parent, os.W_OK):
            raise
        conn = sqlite3.connect(_ro_uri(path, immutable=True), uri=True)
    return conn


def sqlite_engine(url: sa.URL, *, read_only: bool = False) -> sa.Engine:
    """An engine on the SQLite file ``url`` names, checked by :func:`inspect_sqlite` first."""
    path = Path(url.database)
    inspect_sqlite(path, read_only=read_only)
    if read_only:
        engine = sa.create_engine(url, creator=lambda: _connect_ro(path))
    else:
        _check_writable(path)
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _begin)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if read_only:
            cur.execute("PRAGMA query_only = ON")
        else:
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


def _check_writable(path: Path) -> None:
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


def postgres_engine(url: sa.URL, namespace: str | None, *, read_only: bool = False) -> sa.Engine:
    """An engine on PostgreSQL; ``read_only`` sessions refuse every write server-side."""
    options = []
    if namespace:
        options.append(f"-c search_path={namespace}")
    if read_only:
        options.append("-c default_transaction_read_only=on")
    args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
    if options:
        args["options"] = " ".join(options)
    return sa.create_engine(url, connect_args=args, pool_pre_ping=True)


def translate(exc: BaseException, url: sa.URL) -> AuditError | None:
    """The forgekit error for a driver exception, or None when it is not about the store."""
    text = str(getattr(exc, "orig", None) or exc)
    low = text.lower()
    at = where(url)
    sqlite = url.get_backend_name() == "sqlite"
    if "read-only transaction" in low:  # a reader's session (default_transaction_read_only)
        return StoreReadOnlyError(
            "the audit store was opened read-only", path=at, found="a read-only session",
            expected="a store opened for writing", fix="open it without read_only=True")
    if "readonly database" in low or ("read-only" in low and sqlite):
        return StoreReadOnlyError(
            "the SQLite audit store cannot be written", path=at, found="read-only database",
            expected="a writable SQLite file",
            fix="make the file and its folder writable, or pass another path")
    if not sqlite:
        host = f"{url.host or 'localhost'}:{url.port or 5432}"
        if "password authentication failed" in low or "no password supplied" in low:
            return StoreUnavailableError(
                f"PostgreSQL at {host} refused the login of user {url.username!r}",
                path=at, found="authentication failed", expected="a valid user and password",
                fix=f"correct the user or password in the DSN ({DSN_ENV} or --dsn)")
        if "does not exist" in low and "database" in low:
            return StoreUnavailableError(
                f"PostgreSQL at {host} has no database {url.database!r}", path=at,
                found="no such database", expected=f"database {url.database!r}",
                fix=f"create it (createdb {url.database}) or name an existing one in the DSN")
        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) and (
                "connect" in low or "timeout" in low or "refused" in low or "resolve" in low):
            first = text.strip().splitlines()[0]  # psycopg: "... port 1 failed: Connection refused"
            return StoreUnavailableError(
                f"cannot reach a PostgreSQL server at {host} "
                f"({first.rsplit('failed: ', 1)[-1][:200]})",
                path=at, found="no server answering", expected="a running PostgreSQL server",
                fix="start the server, or correct host and port in the DSN "
                    f"({DSN_ENV} or --dsn)")
        if isinstance(exc, sa.exc.DataError):  # too long for its column, a NUL byte, ...
            return InvalidValueError(
                f"PostgreSQL refused a value: {text.strip().splitlines()[0][:200]}", path=at,
                fix="pass shorter text without NUL bytes")
    if "file is not a database" in low:
        return StoreConfigError(
            "this file is not an SQLite database", path=at, found="not SQLite",
            expected="an SQLite audit store",
            fix="pass the audit store's file (forgekit doctor PATH says what this one is)")
    if "malformed" in low or "disk i/o error" in low or "file is too short" in low:
        return StoreCorruptError(
            "the SQLite audit store is damaged (truncated, or bytes changed on disk)", path=at,
            found=f"SQLite: {text.strip()[:120]}", expected="an intact SQLite file",
            fix=_DAMAGED_FIX)
    if isinstance(exc, sa.exc.OperationalError | sqlite3.OperationalError) and \
            "unable to open database file" in low:
        return StoreReadOnlyError(
            "SQLite cannot open or create the store file", path=at,
            found="unopenable file", expected="a writable SQLite file",
            fix="check the folder exists and is writable, or pass another path")
    return None
