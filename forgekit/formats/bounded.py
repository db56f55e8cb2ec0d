"""The one way forgekit reads an artifact's bytes: regular files only, never more than a cap.

A FIFO blocks ``open()`` until something writes to it, and ``/dev/zero`` never ends; a 1 MB zip
can hold a member that expands to gigabytes. Every reader in :mod:`forgekit.formats` (and the
deployment records) goes through these functions:

* :func:`open_regular` opens without blocking (``O_NONBLOCK``) and refuses anything that is not a
  regular file, checked on the opened descriptor itself (no race between a check and the open);
* :func:`read_bytes` / :func:`read_text` read at most ``limit`` bytes (a regular file's size is
  known, so a read is bounded by it);
* :func:`zip_member` refuses a member whose declared size exceeds the cap before inflating it,
  and stops inflating at the cap whatever the header says;
* :func:`check_tree` refuses a folder (a SavedModel, a checkpoint) holding a FIFO, a socket or a
  device anywhere, before TensorFlow opens its files by name.
"""

from __future__ import annotations

import fcntl
import os
import stat
import zipfile
from pathlib import Path
from typing import BinaryIO

from forgekit.errors import CorruptArtifactError

JSON_LIMIT = 64 * 1024 * 1024  # a model config or a record larger than this is not one
PROTO_LIMIT = 2 * 1024 * 1024 * 1024  # protobuf's own ceiling for one message
# A zip member that is not JSON (weights, assets) may be large, but one that inflates more than
# this ratio beyond the JSON cap is a decompression bomb: real weights compress about 1.1:1.
BOMB_RATIO = 100
TREE_ENTRIES = 100_000  # a SavedModel holds a handful of files; a link to / holds millions


class NotRegularFileError(CorruptArtifactError):
    """The path is a FIFO, a socket or a device: reading it could block or never end."""


class OversizeError(CorruptArtifactError):
    """A file or zip member larger than forgekit reads (a decompression bomb, or not a model)."""


def file_type(mode: int) -> str:
    """What a ``st_mode`` is, in words (``"FIFO"``, ``"character device"``, ...)."""
    for test, name in ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISDIR, "folder"), (stat.S_ISREG, "regular file")):
        if test(mode):
            return name
    return "special file"


def not_regular(path: str | os.PathLike[str], mode: int, *, root: str | os.PathLike[str] | None
                = None, expected: str | None = None) -> NotRegularFileError:
    """The error for a non-regular file at ``path`` (inside artifact ``root`` when given)."""
    what = file_type(mode)
    inside = root is not None and os.fspath(root) != os.fspath(path)
    return NotRegularFileError(
        (f"{os.path.relpath(path, root)} inside it is a {what}" if inside else f"a {what}")
        + ", not a regular file: reading it could block forever or never end, so forgekit "
        "does not open it",
        path=root if root is not None else path, found=what,
        expected=expected or "a regular file",
        fix="point at the saved file itself (copy it into a regular file first: "
            "cp --dereference)")


def check_regular(path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None,
                  expected: str | None = None) -> os.stat_result:
    """``os.stat`` of ``path`` (following links), refusing anything but a regular file."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise not_regular(path, st.st_mode, root=root, expected=expected)
    return st


def open_regular(path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None,
                 expected: str | None = None) -> BinaryIO:
    """Open ``path`` for reading without blocking; refuse it unless it is a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(path, st.st_mode, root=root, expected=expected)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def too_large(path: str | os.PathLike[str], what: str, size: int, limit: int, *,
              root: str | os.PathLike[str] | None = None, expected: str | None = None,
              unit: str = "bytes") -> OversizeError:
    """The error for ``what`` at ``path`` being ``size`` bytes (or ``unit``), over ``limit``."""
    return OversizeError(
        f"{what} is {size:,} {unit}, more than the {limit:,} {unit} forgekit reads "
        "(a decompression bomb, or not what it claims to be)",
        path=root if root is not None else path, found=f"{what} of {size:,} {unit}",
        expected=expected, fix="save the model again; do not load a file of unknown origin")


def read_bytes(path: str | os.PathLike[str], limit: int = JSON_LIMIT, *,
               root: str | os.PathLike[str] | None = None, expected: str | None = None) -> bytes:
    """At most ``limit`` bytes of the regular file ``path`` (OversizeError beyond)."""
    with open_regular(path, root=root, expected=expected) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise too_large(path, os.path.basename(path), size, limit, root=root,
                            expected=expected)
        data = f.read(limit + 1)
    if len(data) > limit:  # the file grew while being read
        raise too_large(path, os.path.basename(path), len(data), limit, root=root,
                        expected=expected)
    return data


def read_text(path: str | os.PathLike[str], limit: int = JSON_LIMIT, *,
              encoding: str = "utf-8", root: str | os.PathLike[str] | None = None,
              expected: str | None = None) -> str:
    """:func:`read_bytes`, decoded (``UnicodeDecodeError`` for bytes that are not text)."""
    return read_bytes(path, limit, root=root, expected=expected).decode(encoding)


def zip_member(zf: zipfile.ZipFile, name: str, path: str | os.PathLike[str],
               limit: int = JSON_LIMIT, *, expected: str | None = None) -> bytes:
    """Member ``name`` of an open zip, inflated only up to ``limit`` bytes."""
    member = zf.getinfo(name)
    if member.file_size > limit:
        raise too_large(path, f"zip member {name!r} (declared)", member.file_size, limit,
                        expected=expected)
    with zf.open(member) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise too_large(path, f"zip member {name!r}", len(data), limit, expected=expected)
    return data


def check_zip(zf: zipfile.ZipFile, path: str | os.PathLike[str], *,
              expected: str | None = None) -> None:
    """Refuse a zip holding a member that would inflate past the caps (a decompression bomb).

    A member above :data:`JSON_LIMIT` is allowed only when it is stored, or compressed at most
    :data:`BOMB_RATIO` to 1: Keras stores weights uncompressed, and float weights barely
    compress; gigabytes from a few kilobytes is a bomb.
    """
    for member in zf.infolist():
        if member.file_size > JSON_LIMIT and member.compress_type != zipfile.ZIP_STORED and (
                member.file_size > BOMB_RATIO * max(member.compress_size, 1)):
            raise too_large(path, f"zip member {member.filename!r} (declared, "
                            f"from {member.compress_size:,} compressed bytes)",
                            member.file_size, BOMB_RATIO * member.compress_size,
                            expected=expected)


def check_tree(folder: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None,
               expected: str | None = None) -> None:
    """Refuse a folder holding anything but folders and regular files (links are followed).

    TensorFlow opens a SavedModel's or a checkpoint's files by name; a FIFO among them would
    block it forever, a device would feed it without end.
    """
    seen: set[tuple[int, int]] = set()  # folders reached twice through links: walked once
    count = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        count += len(dirnames) + len(filenames)
        if count > TREE_ENTRIES:
            raise too_large(folder, "the folder (links followed)", count, TREE_ENTRIES,
                            root=root, expected=expected, unit="entries")
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        for name in filenames + dirnames:
            entry = Path(dirpath, name)
            try:
                mode = os.stat(entry).st_mode
            except OSError:  # dangling, a link loop: it cannot block; the loader says so
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise not_regular(entry, mode, root=root or folder, expected=expected)
