"""Which model format is this? Decided by content, never by the extension alone.

:func:`detect_format` reads only what is cheap to read (zip directory, HDF5 attributes and group
names, the SavedModel protobuf, a checkpoint's index, a flatbuffer identifier, JSON keys) and
returns a :class:`~forgekit.formats.info.FormatInfo`. The extension is used only to warn when it
disagrees with the content (a ``.keras`` file that is really HDF5 loads with the wrong reader in
Keras 3).

The parsers are those the kinds registry (:mod:`forgekit.formats.kinds`) names, tried in its
order: a cheap ``matches`` on the first bytes (or the folder), then ``inspect``, which fills a
``FormatInfo`` or raises :class:`~forgekit.errors.CorruptArtifactError` when the content claims a
format but is broken.

Errors: a missing path raises :class:`~forgekit.errors.ArtifactNotFoundError`, an unreadable one
:class:`~forgekit.errors.UnreadableArtifactError`, an empty, truncated or corrupt artifact
:class:`~forgekit.errors.CorruptArtifactError`, a failing disk or system
:class:`~forgekit.errors.ArtifactReadError`. Content that matches no format is not an error
here: it is reported as kind ``"unknown"`` (``forgekit.load`` refuses it).
"""

from __future__ import annotations

import errno
import importlib
import os
from functools import cache
from pathlib import Path
from types import ModuleType

from forgekit.errors import (
    RESAVE,
    ArtifactNotFoundError,
    CorruptArtifactError,
    ForgekitError,
    read_failed,
    unreadable,
)
from forgekit.formats import bounded, checkpoint, savedmodel
from forgekit.formats.configs import annotate
from forgekit.formats.info import FormatInfo, dir_size
from forgekit.formats.kinds import DATA_SHARD, KINDS, extension_kinds

HEAD_BYTES = 2056  # enough for every signature, HDF5's after a 2048-byte user block included


@cache
def parsers(folder: bool) -> tuple[ModuleType, ...]:
    """The registry's parser modules for files (``folder=False``) or folders, in its order."""
    names = dict.fromkeys(k.parser for k in KINDS.values() if k.parser)
    modules = [importlib.import_module(f"forgekit.formats.{name}") for name in names]
    return tuple(m for m in modules if hasattr(m, "matches_dir" if folder else "matches"))


def detect_format(path: str | os.PathLike[str]) -> FormatInfo:
    """Decide what kind of model artifact ``path`` holds, by reading its content.

    ``path`` may be a file, a directory, or a ``tf.train.Checkpoint`` prefix (``ckpt-1`` where
    ``ckpt-1.index`` exists). Reads only headers, zip directories, HDF5 attributes/group names and
    small metadata files; never loads weights or a graph, never writes.

    Raises:
        ArtifactNotFoundError: nothing at ``path`` (and it is no checkpoint prefix).
        UnreadableArtifactError: ``path`` exists but cannot be read (permissions).
        CorruptArtifactError: ``path`` is empty, truncated or corrupt.
        ArtifactReadError: the system failed the read (disk full, too many open files, EIO).
    """
    p = Path(path)
    try:
        if not p.exists():
            if Path(f"{p}.index").is_file():  # a checkpoint prefix names no file itself
                return _finish(checkpoint.inspect_prefix(p, p), p)
            raise _not_found(p)
        if p.is_dir():
            return _finish(_detect_dir(p), p)
        return _finish(_detect_file(p), p)
    except ForgekitError:
        raise
    except PermissionError as exc:
        raise unreadable(p, exc, expected=" or ".join(extension_kinds(p)) or None) from exc
    except OSError as exc:  # a disk, the system or a mount failing: not the artifact's bytes
        raise read_failed(p, exc, expected=" or ".join(extension_kinds(p)) or None) from exc


def _not_found(p: Path) -> ArtifactNotFoundError:
    """Why nothing is readable at ``p``: missing, a dangling symlink, or a symlink loop.

    ``Path.exists`` answers False for all three; ``os.stat`` tells them apart (ELOOP for a loop,
    here or in a parent folder).
    """
    expected = " or ".join(extension_kinds(p)) or None
    try:
        os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return ArtifactNotFoundError(
                "a symbolic link loop: the links point at each other and never reach a file",
                path=p, found="symlink loop", expected=expected,
                fix=f"point the link at the artifact (ls -l {os.fspath(p)!r} shows where it leads)",
            )
    if os.path.islink(p):
        return ArtifactNotFoundError(
            f"a symbolic link to {os.readlink(p)!r}, which does not exist",
            path=p, found="dangling symlink", expected=expected,
            fix=f"point the link at the artifact (ls -l {os.fspath(p)!r} shows where it leads)",
        )
    return ArtifactNotFoundError(
        "nothing exists at this path",
        path=p, found="nothing", expected=expected,
        fix=f"check the path; the working directory is {os.getcwd()!r}",
    )


def _finish(info: FormatInfo, given: Path) -> FormatInfo:
    """Add the extension check, common to every kind."""
    promised = extension_kinds(given) if not given.is_dir() else ()
    if promised and info.kind not in promised and not (
        info.kind == "savedmodel" and given.name == "saved_model.pb"
    ):
        info.mismatch = (
            f"the extension of {given.name!r} suggests {' or '.join(promised)}, "
            f"but the content is {info.kind}"
        )
    if KINDS[info.kind].stores_config or (info.kind == "savedmodel" and info.keras2):
        annotate(info)  # custom objects + Lambda layers, from the stored config
    return info


def _detect_file(p: Path) -> FormatInfo:
    ext = extension_kinds(p)
    # a FIFO or a device is refused before anything opens it (a FIFO blocks open() forever)
    size = bounded.check_regular(p, expected=" or ".join(ext) or None).st_size
    if size == 0:
        raise CorruptArtifactError(
            "the file is empty (0 bytes): an interrupted save or a failed copy",
            path=p,
            found="empty file",
            expected=" or ".join(ext) or None,
            fix=RESAVE,
        )
    if ext == ("tf_checkpoint",):  # prefix.index or prefix.data-*: inspect the whole prefix
        prefix = Path(DATA_SHARD.sub("", str(p)).removesuffix(".index"))
        if Path(f"{prefix}.index").is_file():
            return checkpoint.inspect_prefix(prefix, p)
    if p.name == "saved_model.pb":  # the .pb alone is not the SavedModel: its folder is
        info = savedmodel.inspect_dir(p.parent)
        info.warnings.append(
            f"{p.name} is one file of a SavedModel; pass the folder {str(p.parent)!r} instead"
        )
        return info
    with bounded.open_regular(p, expected=" or ".join(ext) or None) as f:
        head = f.read(HEAD_BYTES)
    for parser in parsers(folder=False):
        if parser.matches(head):
            return parser.inspect(p, size)
    return FormatInfo(
        "unknown",
        p,
        size,
        details={"first_bytes": head[:8].hex(" ")},
        warnings=["the content matches no model format forgekit knows"],
    )


def _detect_dir(p: Path) -> FormatInfo:
    entries = sorted(e.name for e in p.iterdir())
    if not entries:
        raise CorruptArtifactError(
            "the directory is empty",
            path=p,
            found="empty directory",
            expected="savedmodel, tf_checkpoint or serving_base",
            fix="point at the artifact itself (a .keras file, a SavedModel folder, ...), "
            "or save it again",
        )
    for parser in parsers(folder=True):
        if parser.matches_dir(p):
            return parser.inspect_dir(p)
    return FormatInfo(
        "unknown",
        p,
        dir_size(p),
        details={"entries": entries[:20]},
        warnings=["a folder with no saved_model.pb, checkpoint or numeric version folders"],
    )
