"""Content fingerprints: what an artifact's bytes were when it was recorded.

A file's fingerprint is the sha256 of its bytes. A folder's (a SavedModel, a serving version)
is the sha256 over its files in sorted order of their relative POSIX paths, each contributing
its path, its size and its own sha256, so renaming, adding, removing or editing any file changes
it, and the same tree gives the same value on every machine.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from forgekit.formats.detect import detect_format

_CHUNK = 1 << 20


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def files_of(path: str | os.PathLike[str]) -> list[Path]:
    """The files an artifact consists of: itself, or a folder's files in sorted order.

    A checkpoint prefix (``ckpt-1``, no file of that name) stands for its ``.index`` and data
    shards.
    """
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        return sorted((f for f in p.rglob("*") if f.is_file()),
                      key=lambda f: f.relative_to(p).as_posix())
    return sorted(f for f in p.parent.glob(p.name + ".*") if f.is_file())


def fingerprint(path: str | os.PathLike[str]) -> tuple[str, int]:
    """``(sha256 hex, total bytes)`` of the artifact at ``path`` (a file, folder or prefix).

    Raises:
        ArtifactNotFoundError: nothing exists at ``path``.
    """
    p = Path(path)
    found = files_of(p)
    if not found:
        detect_format(p)  # raises the usual ArtifactNotFoundError naming the path
    if p.is_file():
        return _file_digest(p), p.stat().st_size
    h = hashlib.sha256()
    total = 0
    base = p if p.is_dir() else p.parent
    for f in found:
        size = f.stat().st_size
        total += size
        h.update(f"{f.relative_to(base).as_posix()}\0{size}\0{_file_digest(f)}\n".encode())
    return h.hexdigest(), total
