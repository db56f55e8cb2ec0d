"""The errors an audit store raises: each names what is wrong and the one thing to do about it.

They subclass :class:`forgekit.errors.ForgekitError`, so the message's first line carries the
store, what was found, what was expected and the fix; the database driver's own exception is
kept as ``__cause__`` for debugging but never shown as a traceback by ``forgekit audit``.
"""

from __future__ import annotations

from forgekit.errors import ForgekitError


class AuditError(ForgekitError):
    """Base class of the audit store's errors."""


class StoreConfigError(AuditError, ValueError):
    """The store's address is not one forgekit can use (unknown scheme, empty, malformed)."""


class StoreUnavailableError(AuditError, ConnectionError):
    """The database server cannot be reached, refuses the login, or lacks the database."""


class StoreReadOnlyError(AuditError, PermissionError):
    """The store (an SQLite file or its folder) cannot be written by this process."""


class SchemaTooNewError(AuditError):
    """The store was written by a newer forgekit whose schema this one does not know."""


class NotRecordedError(AuditError, LookupError):
    """The store has no row for what was asked (a model, a version, a run)."""


class StoreCorruptError(AuditError, ValueError):
    """The SQLite store file is damaged (truncated, bytes flipped); forgekit leaves it as is."""


class InvalidValueError(AuditError, ValueError):
    """A value cannot be stored as given (too long for its column, a NUL byte, not a number)."""
