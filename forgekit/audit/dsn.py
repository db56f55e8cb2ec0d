"""Where an audit store lives: a path or a DSN turned into a database URL, and shown safely.

A DSN is a secret-bearing string: every message forgekit prints shows it through
:func:`hidden` or :func:`where`, which mask the password whether it sits after ``user:`` or in a
``?password=`` query parameter. A DSN that cannot be parsed (a non-numeric port, an unclosed
``[`` around an IPv6 host, a second ``@`` from an unescaped password) is a
:class:`~forgekit.audit.errors.StoreConfigError`, never a bare ``ValueError``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import sqlalchemy as sa

from forgekit.audit.errors import StoreConfigError

DSN_ENV = "FORGEKIT_AUDIT_DSN"
DSN_EXAMPLES = "sqlite:///path/to/audit.sqlite, a plain file path, or " \
               "postgresql://user:password@host:5432/database"
# query parameters libpq reads a secret from
_SECRET_PARAMS = ("password", "sslpassword")


def resolve_url(target: str | os.PathLike[str] | None = None,
                default: str | os.PathLike[str] | None = None) -> sa.URL:
    """The database URL for ``target``, else ``$FORGEKIT_AUDIT_DSN``, else the file ``default``.

    ``target`` may be a DSN (``sqlite:///...``, ``postgresql://...``, ``postgres://...``) or a
    plain path to an SQLite file.

    Raises:
        StoreConfigError: none of the three is given, the DSN cannot be parsed, or its scheme
            is not SQLite or PostgreSQL.
    """
    given = target if target is not None else (os.environ.get(DSN_ENV) or default)
    if given is None or not str(given).strip():
        raise StoreConfigError(
            "no audit store was named", found="no DSN, no path", expected=DSN_EXAMPLES,
            fix=f"pass a path or DSN (forgekit audit --db audit.sqlite ...), or set {DSN_ENV}")
    text = os.fspath(given).strip()
    if "://" not in text:  # a plain path: an SQLite file
        return sa.URL.create("sqlite", database=str(Path(text).expanduser().absolute()))
    scheme = text.split("://", 1)[0].lower()
    netloc = re.split(r"[/?#]", text.split("://", 1)[1], maxsplit=1)[0]
    if netloc.count("@") > 1:
        raise StoreConfigError(
            "the DSN has more than one '@' before the host, so where the password ends is "
            "ambiguous", path=hidden(text), found="an unescaped '@' in the user or password",
            expected="user:password@host", fix="percent-encode '@' in the password as %40 "
                                               "(urllib.parse.quote(password, safe=''))")
    try:
        url = sa.make_url(text)
        url.port  # noqa: B018 - SQLAlchemy parses the port lazily on some paths
    except (sa.exc.ArgumentError, ValueError) as exc:
        why = "its port is not a number" if "int()" in str(exc) else str(exc).split("\n")[0]
        raise StoreConfigError(
            f"the DSN cannot be parsed: {why}", path=hidden(text), expected=DSN_EXAMPLES,
            fix="correct the DSN: a numeric port, an IPv6 host in brackets ([::1]:5432), "
                "special characters in the password percent-encoded") from None
    family = scheme.split("+")[0]
    if family in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if family == "sqlite":
        if not url.database or url.database == ":memory:":
            raise StoreConfigError(
                "an audit store must be a file, so other processes can read it",
                path=hidden(text), found="in-memory SQLite", expected="sqlite:///path/to/file",
                fix="name a file: sqlite:///audit.sqlite")
        return url.set(drivername="sqlite",
                       database=str(Path(url.database).expanduser().absolute()))
    raise StoreConfigError(
        f"unknown DSN scheme {scheme!r}", path=hidden(text), found=scheme,
        expected=DSN_EXAMPLES,
        fix="use sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DB")


def hidden(text: str) -> str:
    """A DSN as text with every password masked, for messages.

    Masks up to the *last* ``@`` (an unescaped ``@`` in a password must not leak its tail) and
    the value of ``?password=``-style query parameters.
    """
    text = re.sub(r"(://[^:/@?#]*:)[^?#]*@", r"\1***@", text)
    names = "|".join(_SECRET_PARAMS)
    return re.sub(rf"([?&](?:{names})=)[^&#]*", r"\1***", text, flags=re.IGNORECASE)


def where(url: sa.URL) -> str:
    """The store's file (SQLite), or its URL with every password masked."""
    if url.get_backend_name() == "sqlite":
        return url.database
    query = {k: ("***" if k.lower() in _SECRET_PARAMS else v) for k, v in url.query.items()}
    return url.set(query=query).render_as_string(hide_password=True)
