"""The errors forgekit raises instead of bare h5py / protobuf / zipfile tracebacks.

Every error carries structured attributes (``path``, ``found``, ``expected``, ``fix``,
``reason``) so lessons and tools can react to them, and a one-line human message that names
all of them: notebooks show only an error's first line, so the first line must be enough.
"""

from __future__ import annotations

import errno
import os

# The fix for bytes that no reader can use: nothing but a new copy helps.
RESAVE = "save the model again, or copy the artifact again from its source"


class ForgekitError(Exception):
    """Base class of forgekit's errors.

    Attributes:
        path: the artifact concerned (as given by the caller).
        found: the kind forgekit found there (``"unknown"`` if nothing it knows).
        expected: the kind the caller expected, or what a loader needs.
        fix: the exact call that would work, ready to copy.
        reason: what is wrong, in one sentence.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | os.PathLike[str] | None = None,
        found: str | None = None,
        expected: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.reason = reason
        self.path = None if path is None else os.fspath(path)
        self.found = found
        self.expected = expected
        self.fix = fix
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [f"{self.path}: " if self.path else ""]
        parts.append(self.reason.rstrip("."))
        kinds = []
        if self.found:
            kinds.append(f"found {self.found}")
        if self.expected:
            kinds.append(f"expected {self.expected}")
        if kinds:
            parts.append(f" ({', '.join(kinds)})")
        parts.append(".")
        if self.fix:
            parts.append(f" Fix: {self.fix}")
        return "".join(parts)


class WrongFormatError(ForgekitError, ValueError):
    """The artifact is fine, but it is not what the caller (or the chosen loader) expects."""


class CorruptArtifactError(ForgekitError, ValueError):
    """The artifact is empty, truncated or corrupt: no loader can read it as it is."""


class ArtifactNotFoundError(ForgekitError, FileNotFoundError):
    """Nothing exists at the path (not even a checkpoint prefix's ``.index`` file)."""


class UnreadableArtifactError(ForgekitError, PermissionError):
    """The artifact exists but this process may not read it."""


class ArtifactReadError(ForgekitError, OSError):
    """Reading failed for a reason outside the artifact: disk full, too many open files, an I/O
    error. The bytes may be fine; retrying after fixing the system may work."""


class IncompatibleArtifactError(ForgekitError, ValueError):
    """The artifact is intact, but this Keras cannot rebuild part of what it records."""


def unreadable(
    path: str | os.PathLike[str], exc: Exception, *, found: str = "unreadable",
    expected: str | None = None,
) -> UnreadableArtifactError:
    """The error for a permission denied while detecting or loading the artifact at ``path``.

    ``exc`` is Python's ``PermissionError`` or TensorFlow's ``PermissionDeniedError``.
    """
    return UnreadableArtifactError(
        f"permission denied reading {getattr(exc, 'filename', None) or os.fspath(path)}",
        path=path, found=found, expected=expected,
        fix=f"make it readable for this user, e.g. chmod -R u+rX {os.fspath(path)!r}",
    )


def is_system_error(exc: BaseException) -> bool:
    """``exc`` is the operating system failing (it carries an errno), not damaged bytes.

    h5py reports a truncated or corrupt file as an ``OSError`` *without* an errno; the system's
    own failures (``ENOSPC``, ``EMFILE``, ``EIO``, ...) carry one.
    """
    return isinstance(exc, OSError) and exc.errno is not None


def read_failed(
    path: str | os.PathLike[str], exc: OSError, *, found: str = "unread",
    expected: str | None = None,
) -> ArtifactReadError:
    """The error for an ``OSError`` of the system (not of the bytes) while reading ``path``."""
    name = errno.errorcode.get(exc.errno or 0, "an OS error")
    return ArtifactReadError(
        f"the system could not read it ({name}: {exc.strerror or exc}); this says nothing "
        "about the artifact itself",
        path=path, found=found, expected=expected,
        fix={"ENOSPC": "free disk space, then try again",
             "EMFILE": "close files this process keeps open (or raise ulimit -n), then try again",
             "ENFILE": "close files this process keeps open (or raise ulimit -n), then try again",
             }.get(name, "check the disk or mount holding it (dmesg), then try again"),
    )
