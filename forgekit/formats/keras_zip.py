""".keras files: a zip of config.json, metadata.json and model.weights.h5, read without Keras.

The weights member is opened in place (a window onto the outer file) to see whether it holds
optimizer variables, without extracting it.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from forgekit.errors import RESAVE, CorruptArtifactError, is_system_error
from forgekit.formats import bounded
from forgekit.formats.hdf5 import check_links, keras3_group_has_vars
from forgekit.formats.info import FormatInfo

SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


def matches(head: bytes) -> bool:
    """The first bytes are a zip's."""
    return head[:4] in SIGNATURES


class _Window(io.RawIOBase):
    """A read-only, seekable window onto part of a file (a stored zip member).

    h5py seeks a lot; ``ZipFile.open`` streams re-read from the member's start on every backward
    seek, so for an uncompressed member we read the outer file at the right offset instead.
    """

    def __init__(self, f: io.BufferedReader, start: int, length: int) -> None:
        self._f, self._start, self._length, self._pos = f, start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self._length - self._pos))
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _member_window(p: Path, zf: zipfile.ZipFile, name: str) -> tuple[io.BufferedReader, _Window]:
    member = zf.getinfo(name)
    if member.compress_type != zipfile.ZIP_STORED:
        raise ValueError("compressed member")
    f = open(p, "rb")  # noqa: SIM115 - closed by the caller together with the window
    f.seek(member.header_offset)
    local = f.read(30)
    if local[:4] != b"PK\x03\x04":
        f.close()
        raise zipfile.BadZipFile(f"bad local header for {name}")
    name_len = int.from_bytes(local[26:28], "little")
    extra_len = int.from_bytes(local[28:30], "little")
    start = member.header_offset + 30 + name_len + extra_len
    return f, _Window(f, start, member.file_size)


def inspect(p: Path, size: int) -> FormatInfo:
    """Read a zip: a .keras model (version, optimizer state, config) or ``unknown``."""
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
            if not {"config.json", "metadata.json"} <= set(names):
                return FormatInfo(
                    "unknown",
                    p,
                    size,
                    details={"zip_entries": names},
                    warnings=["a zip archive, but without the config.json and metadata.json of "
                              "a Keras 3 .keras file"],
                )
            weights = next((n for n in names if n.startswith("model.weights.")), None)
            if weights is None:
                raise CorruptArtifactError(
                    "the .keras archive has no model.weights.h5 entry",
                    path=p,
                    found="keras (incomplete)",
                    expected="keras",
                    fix="save the model again with model.save(path)",
                )
            bounded.check_zip(zf, p, expected="keras")
            metadata = json.loads(bounded.zip_member(zf, "metadata.json", p, expected="keras"))
            config = json.loads(bounded.zip_member(zf, "config.json", p, expected="keras"))
            if not (isinstance(metadata, dict) and isinstance(config, dict)):
                raise CorruptArtifactError(
                    "config.json or metadata.json of the .keras archive is not a JSON object; "
                    "hand-edited or damaged",
                    path=p,
                    found="keras (damaged config)",
                    expected="keras",
                    fix=RESAVE,
                )
            info = FormatInfo(
                "keras",
                p,
                size,
                keras_version=metadata.get("keras_version"),
                details={
                    "zip_entries": names,
                    "date_saved": metadata.get("date_saved"),
                    "class_name": config.get("class_name"),
                    "compiled": bool(config.get("compile_config")),
                    "config": config,
                },
            )
            if weights.endswith(".h5"):
                info.has_optimizer = _zip_member_has_optimizer(p, zf, weights)
            return info
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError,
            json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        if is_system_error(exc):  # permissions, disk, system: detect_format says which
            raise
        raise CorruptArtifactError(
            f"a zip archive that cannot be read ({exc.__class__.__name__}: {exc}); "
            "probably truncated or damaged",
            path=p,
            found="corrupt zip",
            expected="keras",
            fix=RESAVE,
        ) from exc


def _zip_member_has_optimizer(p: Path, zf: zipfile.ZipFile, name: str) -> bool:
    import h5py

    try:
        f, window = _member_window(p, zf, name)
    except ValueError:  # compressed member: slower, but still correct
        with zf.open(name) as member, h5py.File(member, "r") as h5:
            check_links(h5, p, f"{name} inside")
            return keras3_group_has_vars(h5, "optimizer")
    with f, h5py.File(window, "r") as h5:
        check_links(h5, p, f"{name} inside")
        return keras3_group_has_vars(h5, "optimizer")

