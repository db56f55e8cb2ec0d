"""Which model format is this? Decided by content, never by the extension alone.

:func:`detect_format` reads only what is cheap to read (zip directory, HDF5 attributes and group
names, the SavedModel protobuf, a checkpoint's index, a flatbuffer identifier, JSON keys) and
returns a :class:`FormatInfo`. The extension is used only to warn when it disagrees with the
content (a ``.keras`` file that is really HDF5 loads with the wrong reader in Keras 3).

Detection is table-driven: ``_FILE_DETECTORS`` and ``_DIR_DETECTORS`` list, in order, a cheap
predicate and an inspector per kind. An inspector either fills a :class:`FormatInfo` or raises
:class:`~forgekit.errors.CorruptArtifactError` when the content claims a format but is broken.

Errors: a missing path raises :class:`~forgekit.errors.ArtifactNotFoundError`, an unreadable one
:class:`~forgekit.errors.UnreadableArtifactError`, an empty, truncated or corrupt artifact
:class:`~forgekit.errors.CorruptArtifactError`. Content that matches no format is not an error
here: it is reported as kind ``"unknown"`` (``forgekit.load`` refuses it).
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgekit.errors import RESAVE, ArtifactNotFoundError, CorruptArtifactError, unreadable
from forgekit.table import Fields

KINDS = (
    "keras",  # Keras 3 .keras zip: config.json + metadata.json + model.weights.h5
    "savedmodel",  # directory: saved_model.pb + variables/
    "h5_model",  # legacy full-model HDF5 (model_config attribute)
    "weights_h5",  # weights-only HDF5, Keras 3 .weights.h5 or Keras 2 save_weights(.h5)
    "tf_checkpoint",  # tf.train.Checkpoint prefix (prefix.index + prefix.data-*) or its folder
    "tflite",  # TFLite flatbuffer
    "json_architecture",  # model.to_json()
    "serving_base",  # TF Serving base path: numeric version subdirectories
    "unknown",
)

# The real API call that loads each kind; {path} is filled with the artifact's path.
HOW_TO_LOAD: dict[str, str] = {
    "keras": "keras.models.load_model({path!r})",
    "savedmodel": "tf.saved_model.load({path!r})",
    "h5_model": "keras.models.load_model({path!r})",
    "weights_h5": "model.load_weights({path!r})  # model = the same architecture, rebuilt",
    "tf_checkpoint": (
        "tf.train.Checkpoint(model=model, optimizer=model.optimizer).restore({path!r})"
    ),
    "tflite": "tf.lite.Interpreter(model_path={path!r})",
    "json_architecture": "keras.models.model_from_json(open({path!r}).read())",
    "serving_base": "tf.saved_model.load({path!r})",  # path = the latest version's folder
    "unknown": "",
}

# Extension -> the kinds it promises. Only used to report a mismatch with the content.
_EXTENSION_KINDS: list[tuple[str, tuple[str, ...]]] = [
    (".weights.h5", ("weights_h5",)),
    (".keras", ("keras",)),
    (".h5", ("h5_model", "weights_h5")),
    (".hdf5", ("h5_model", "weights_h5")),
    (".tflite", ("tflite",)),
    (".json", ("json_architecture",)),
    (".index", ("tf_checkpoint",)),
    (".pb", ("savedmodel",)),
]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5_OFFSETS = (0, 512, 1024, 2048)  # an HDF5 file may start after a user block
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
# TensorFlow's table files (checkpoint and SavedModel variable indexes) end with this magic.
_TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")
_DATA_SHARD = re.compile(r"\.data-(\d{5})-of-(\d{5})$")
_JSON_LIMIT = 64 * 1024 * 1024


@dataclass
class FormatInfo:
    """What :func:`detect_format` found at a path.

    ``kind`` is one of :data:`KINDS`. ``keras_version`` and ``has_optimizer`` are ``None`` when
    the artifact does not record them. ``signatures`` lists SavedModel serving signatures.
    ``mismatch`` says when the extension promises another kind than the content. ``details``
    holds kind-specific facts (zip entries, writer, prefix, versions, ...).
    """

    kind: str
    path: Path
    size_bytes: int = 0
    keras_version: str | None = None
    has_optimizer: bool | None = None
    signatures: list[str] = field(default_factory=list)
    mismatch: str | None = None
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def load_path(self) -> Path:
        """The path a loader needs (a checkpoint's prefix, a serving base's latest version)."""
        return Path(self.details.get("load_path", self.path))

    @property
    def keras2(self) -> bool:
        """Written by Keras 2 (tf-keras), as recorded in ``details["writer"]``."""
        return str(self.details.get("writer", "")).startswith("Keras 2")

    @property
    def optimizer_text(self) -> str:
        """``has_optimizer`` in words: ``"yes"``, ``"no"`` or ``"not recorded"``."""
        return {None: "not recorded", True: "yes", False: "no"}[self.has_optimizer]

    @property
    def how_to_load(self) -> str:
        """The real Keras/TF call that loads this artifact, or ``""`` for ``"unknown"``.

        When the file name would send Keras to the wrong reader, the plain call would fail: the
        answer is then ``forgekit.load`` (it reads through a correctly named link) or a rename.
        """
        suffix = keras_suffix(self.kind, self.keras2)
        weights = self.kind == "weights_h5"
        if suffix and not keras_reads_name(self.load_path.name, self.kind, self.keras2,
                                           weights=weights):
            model = ", model=model" if weights else ""
            return (f"forgekit.load({os.fspath(self.load_path)!r}{model})  "
                    f"# or rename it to *{suffix}")
        return how_to_load(self.kind, self.load_path, self.signatures)

    def as_dict(self) -> dict[str, Any]:
        """Plain-data view, e.g. for a table or JSON."""
        return {
            "kind": self.kind,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "keras_version": self.keras_version,
            "has_optimizer": self.has_optimizer,
            "signatures": list(self.signatures),
            "mismatch": self.mismatch,
            "warnings": list(self.warnings),
            "details": dict(self.details),
        }

    def _rows(self) -> list[tuple[str, str]]:
        rows = [
            ("kind", self.kind),
            ("path", str(self.path)),
            ("size", f"{self.size_bytes:,} bytes"),
            ("keras version", self.keras_version or "not recorded"),
            ("optimizer state", self.optimizer_text),
        ]
        if self.signatures:
            rows.append(("signatures", ", ".join(self.signatures)))
        if self.mismatch:
            rows.append(("mismatch", self.mismatch))
        rows += [("warning", w) for w in self.warnings]
        if self.how_to_load:
            rows.append(("load with", self.how_to_load))
        return rows

    def __str__(self) -> str:
        return str(Fields(self._rows()))

    def _repr_html_(self) -> str:
        return Fields(self._rows(), code=True)._repr_html_()


def how_to_load(kind: str, path: str | os.PathLike[str], signatures: list[str] | None = None) -> str:
    """The real API call that loads an artifact of ``kind`` at ``path`` (a copyable one-liner)."""
    call = HOW_TO_LOAD.get(kind, "").format(path=os.fspath(path))
    if kind == "savedmodel" and signatures:
        endpoint = endpoint_for(signatures)
        call += (
            f"  # or keras.layers.TFSMLayer({os.fspath(path)!r}, call_endpoint={endpoint!r})"
        )
    return call


def endpoint_for(signatures: list[str]) -> str:
    """The SavedModel signature to call: ``serve`` when present, else ``serving_default``."""
    # model.export's "serve" returns a tensor; "serving_default" returns a dict of outputs.
    return next((s for s in ("serve", "serving_default") if s in signatures), signatures[0])


def extension_kinds(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The kinds a file name's extension promises (empty when it promises nothing)."""
    name = Path(path).name.lower()
    if _DATA_SHARD.search(name):
        return ("tf_checkpoint",)
    for suffix, kinds in _EXTENSION_KINDS:
        if name.endswith(suffix):
            return kinds
    return ()


def keras_suffix(kind: str, keras2: bool = False) -> str:
    """The file name ending Keras 3 needs to pick the right reader for ``kind`` (``""``: none).

    ``keras2`` (:attr:`FormatInfo.keras2`): Keras 2 weights need a plain ``.h5`` name.
    """
    if kind == "weights_h5":
        return ".h5" if keras2 else ".weights.h5"
    return {"keras": ".keras", "h5_model": ".h5"}.get(kind, "")


def keras_reads_name(
    name: str, kind: str, keras2: bool = False, *, weights: bool = False
) -> bool:
    """Would Keras 3 read content of ``kind`` through this file name (or path string)?

    Keras 3 chooses its reader from the path *text*, not the content (so ``"m.keras/"`` fails):
    ``load_model`` reads ``.keras`` as a zip and ``.h5`` / ``.hdf5`` as legacy HDF5;
    ``load_weights`` (``weights=True``) also reads ``.keras``, sends ``.weights.h5`` to its
    Keras 3 weights reader and other ``.h5`` names to its legacy one (Keras 2 weights, legacy
    models). ``keras2`` is :attr:`FormatInfo.keras2`.
    """
    legacy = name.endswith((".h5", ".hdf5"))
    if kind == "keras":
        return name.endswith(".keras")
    if kind == "h5_model" and not weights:
        return legacy
    if kind == "h5_model" or (kind == "weights_h5" and keras2):
        return legacy and not name.endswith(".weights.h5")
    return kind == "weights_h5" and name.endswith(".weights.h5")


# --------------------------------------------------------------------------------------------
# public entry point


def detect_format(path: str | os.PathLike[str]) -> FormatInfo:
    """Decide what kind of model artifact ``path`` holds, by reading its content.

    ``path`` may be a file, a directory, or a ``tf.train.Checkpoint`` prefix (``ckpt-1`` where
    ``ckpt-1.index`` exists). Reads only headers, zip directories, HDF5 attributes/group names and
    small metadata files; never loads weights or a graph, never writes.

    Raises:
        ArtifactNotFoundError: nothing at ``path`` (and it is no checkpoint prefix).
        UnreadableArtifactError: ``path`` exists but cannot be read (permissions).
        CorruptArtifactError: ``path`` is empty, truncated or corrupt.
    """
    p = Path(path)
    try:
        if not p.exists():
            if Path(f"{p}.index").is_file():  # a checkpoint prefix names no file itself
                return _finish(_inspect_checkpoint(p, p), p)
            raise _not_found(p)
        if p.is_dir():
            return _finish(_detect_dir(p), p)
        return _finish(_detect_file(p), p)
    except PermissionError as exc:
        raise unreadable(p, exc, expected=" or ".join(extension_kinds(p)) or None) from exc


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
    from forgekit.keras_io.custom_objects import annotate  # custom objects + Lambda layers, from config

    annotate(info)
    return info


# --------------------------------------------------------------------------------------------
# files


def _detect_file(p: Path) -> FormatInfo:
    size = p.stat().st_size
    ext = extension_kinds(p)
    if size == 0:
        raise CorruptArtifactError(
            "the file is empty (0 bytes): an interrupted save or a failed copy",
            path=p,
            found="empty file",
            expected=" or ".join(ext) or None,
            fix=RESAVE,
        )
    if ext == ("tf_checkpoint",):  # prefix.index or prefix.data-*: inspect the whole prefix
        prefix = Path(_DATA_SHARD.sub("", str(p)).removesuffix(".index"))
        if Path(f"{prefix}.index").is_file():
            return _inspect_checkpoint(prefix, p)
    if p.name == "saved_model.pb":  # the .pb alone is not the SavedModel: its folder is
        info = _inspect_savedmodel(p.parent)
        info.warnings.append(
            f"{p.name} is one file of a SavedModel; pass the folder {str(p.parent)!r} instead"
        )
        return info
    with open(p, "rb") as f:
        head = f.read(2056)
    for _kind, matches, inspect in _FILE_DETECTORS:
        if matches(head):
            return inspect(p, size)
    return FormatInfo(
        "unknown",
        p,
        size,
        details={"first_bytes": head[:8].hex(" ")},
        warnings=["the content matches no model format forgekit knows"],
    )


def _is_zip(head: bytes) -> bool:
    return head[:4] in _ZIP_SIGNATURES


def _is_hdf5(head: bytes) -> bool:
    return any(head[o : o + 8] == _HDF5_SIGNATURE for o in _HDF5_OFFSETS)


def _is_tflite(head: bytes) -> bool:
    return head[4:8] == b"TFL3"


def _is_json(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


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


def _inspect_zip(p: Path, size: int) -> FormatInfo:
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
            metadata = json.loads(zf.read("metadata.json"))
            config = json.loads(zf.read("config.json"))
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
            json.JSONDecodeError, UnicodeDecodeError) as exc:
        if isinstance(exc, PermissionError):
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
            return _keras3_group_has_vars(h5, "optimizer")
    with f, h5py.File(window, "r") as h5:
        return _keras3_group_has_vars(h5, "optimizer")


def _keras3_group_has_vars(h5: Any, group: str) -> bool:
    """True if a Keras 3 weights file holds at least one variable under ``group``."""
    if group not in h5:
        return False
    found = []
    h5[group].visititems(lambda _name, obj: found.append(1) if hasattr(obj, "shape") else None)
    return bool(found)


def _attr(h5: Any, name: str) -> str | None:
    value = h5.attrs.get(name)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _inspect_hdf5(p: Path, size: int) -> FormatInfo:
    import h5py

    from forgekit.keras_io.versions import parse_version

    try:
        with h5py.File(p, "r") as h5:
            version = _attr(h5, "keras_version")
            if "model_config" in h5.attrs:
                major = (parse_version(version) or (2,))[0]  # files before Keras 3 may omit it
                return FormatInfo(
                    "h5_model",
                    p,
                    size,
                    keras_version=version,
                    has_optimizer="optimizer_weights" in h5
                    and _keras3_group_has_vars(h5, "optimizer_weights"),
                    details={
                        "writer": "Keras 3" if major >= 3 else "Keras 2",
                        "backend": _attr(h5, "backend"),
                        "compiled": "training_config" in h5.attrs,
                        "groups": sorted(h5.keys()),
                    },
                )
            if "layer_names" in h5.attrs:  # Keras 2 (tf-keras) save_weights layout
                return FormatInfo(
                    "weights_h5",
                    p,
                    size,
                    keras_version=version,
                    has_optimizer=False,  # Keras 2 save_weights never stores the optimizer
                    details={"writer": "Keras 2 save_weights", "backend": _attr(h5, "backend"),
                             "groups": sorted(h5.keys())},
                    warnings=_weights_extension_warning(p, keras2=True),
                )
            if "layers" in h5 or "vars" in h5:  # Keras 3 .weights.h5 layout
                return FormatInfo(
                    "weights_h5",
                    p,
                    size,
                    has_optimizer=_keras3_group_has_vars(h5, "optimizer"),
                    details={"writer": "Keras 3 save_weights", "groups": sorted(h5.keys())},
                    warnings=_weights_extension_warning(p, keras2=False),
                )
            return FormatInfo(
                "unknown",
                p,
                size,
                details={"groups": sorted(h5.keys())},
                warnings=["an HDF5 file, but with neither a Keras model nor a weights layout"],
            )
    except OSError as exc:
        if isinstance(exc, PermissionError):
            raise
        raise CorruptArtifactError(
            f"an HDF5 file that cannot be opened ({_h5_reason(exc)}); probably truncated",
            path=p,
            found="corrupt HDF5",
            expected=" or ".join(extension_kinds(p)) or "h5_model or weights_h5",
            fix=RESAVE,
        ) from exc


def _h5_reason(exc: OSError) -> str:
    # h5py puts the useful part in parentheses: "(truncated file: eof = 100, ...)"
    match = re.search(r"\(([^()]*)\)\s*$", str(exc))
    return match.group(1) if match else str(exc)


def _weights_extension_warning(p: Path, keras2: bool) -> list[str]:
    # Keras 3's load_weights picks its reader from the extension, not the content.
    if keras_reads_name(p.name, "weights_h5", keras2, weights=True):
        return []
    if keras2:
        return ["Keras 2 weights layout, but Keras 3's load_weights reads it only from a *.h5 "
                "name that is not *.weights.h5 (its legacy reader): rename it to *.h5"]
    return ["Keras 3 weights layout, but Keras 3's load_weights only reads it from a file "
            "named *.weights.h5 (it treats other .h5 names as Keras 2 weights): rename it"]


def _inspect_tflite(p: Path, size: int) -> FormatInfo:
    with open(p, "rb") as f:
        root = int.from_bytes(f.read(4), "little")
    if size < 8 or root >= size:
        raise CorruptArtifactError(
            f"TFLite flatbuffer whose root table offset ({root}) lies outside the file "
            f"({size} bytes): truncated",
            path=p,
            found="corrupt tflite",
            expected="tflite",
            fix="convert the model again with tf.lite.TFLiteConverter",
        )
    return FormatInfo("tflite", p, size, details={"identifier": "TFL3"})


def _inspect_json(p: Path, size: int) -> FormatInfo:
    if size > _JSON_LIMIT:
        return FormatInfo("unknown", p, size, warnings=["a JSON file too large to inspect"])
    try:
        doc = json.loads(p.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptArtifactError(
            f"starts like JSON but does not parse ({exc}); truncated or hand-edited",
            path=p,
            found="invalid JSON",
            expected="json_architecture",
            fix="write it again with open(path, 'w').write(model.to_json())",
        ) from exc
    if isinstance(doc, dict) and "class_name" in doc and "config" in doc:
        config = doc["config"] if isinstance(doc["config"], dict) else {}
        layers = config.get("layers")
        return FormatInfo(
            "json_architecture",
            p,
            size,
            keras_version=doc.get("keras_version"),
            details={
                "class_name": doc["class_name"],
                "module": doc.get("module"),
                "writer": "Keras 2" if "keras_version" in doc else "Keras 3",
                "layers": len(layers) if isinstance(layers, list) else 0,
            },
        )
    keys = sorted(doc)[:10] if isinstance(doc, dict) else []
    return FormatInfo(
        "unknown",
        p,
        size,
        details={"json_keys": keys},
        warnings=["JSON, but not a Keras model config (no class_name + config keys)"],
    )


def read_configs(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The stored model config and compile/training config of a ``.keras``, ``.h5`` or JSON file.

    Decided by content, with the same predicates as :func:`detect_format`; reads no weights and
    imports no TensorFlow. Raises ``ValueError`` for anything that holds no model config (a
    weights file, a SavedModel, ...) and ``OSError`` / ``zipfile.BadZipFile`` for unreadable
    bytes (callers that need a forgekit error run :func:`detect_format` first).
    """
    return stored_configs(path)[1:]


def stored_configs(
    path: str | os.PathLike[str],
) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """:func:`read_configs` with the kind holding them first: ``keras``, ``h5_model`` or
    ``json_architecture``."""
    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(2056)
    if _is_zip(head):
        with zipfile.ZipFile(p) as zf:
            config = json.loads(zf.read("config.json"))
        return "keras", config, config.get("compile_config")
    if _is_hdf5(head):
        import h5py

        with h5py.File(p, "r") as h5:
            model_config = _attr(h5, "model_config")
            training_config = _attr(h5, "training_config")
        if model_config is None:
            raise ValueError(f"{p}: an HDF5 file without a model_config (weights only?)")
        training = None if training_config is None else json.loads(training_config)
        return "h5_model", json.loads(model_config), training
    doc = json.loads(p.read_text(encoding="utf-8-sig"))
    if not (isinstance(doc, dict) and "class_name" in doc):
        raise ValueError(f"{p}: JSON, but not a Keras model config")
    return "json_architecture", doc, doc.get("compile_config")


# (kind, cheap predicate on the first bytes, inspector) - order matters: first match wins.
_FILE_DETECTORS: list[tuple[str, Callable[[bytes], bool], Callable[[Path, int], FormatInfo]]] = [
    ("keras", _is_zip, _inspect_zip),
    ("h5_model/weights_h5", _is_hdf5, _inspect_hdf5),
    ("tflite", _is_tflite, _inspect_tflite),
    ("json_architecture", _is_json, _inspect_json),
]


# --------------------------------------------------------------------------------------------
# directories and checkpoint prefixes


def _dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def _check_table(index: Path, what: str, root: Path, kind: str) -> bytes:
    """Read a TF table file (.index) and verify its footer magic: truncation check."""
    data = index.read_bytes()
    if len(data) < 48 or data[-8:] != _TABLE_MAGIC:
        raise CorruptArtifactError(
            f"{what} {index.name} is {'empty' if not data else 'truncated or corrupt'} "
            f"({len(data)} bytes, no table footer)",
            path=root,
            found=f"corrupt {kind}",
            expected=kind,
            fix="save it again; a partial copy or an interrupted save leaves this",
        )
    return data


def _is_savedmodel_dir(p: Path) -> bool:
    return (p / "saved_model.pb").exists() or (p / "saved_model.pbtxt").exists()


def _inspect_savedmodel(p: Path) -> FormatInfo:
    def corrupt(reason: str) -> CorruptArtifactError:
        return CorruptArtifactError(
            reason,
            path=p,
            found="incomplete savedmodel",
            expected="savedmodel",
            fix="export it again with model.export(path), or copy the whole folder again",
        )

    pb = p / "saved_model.pb"
    if not pb.exists():
        raise corrupt("only a saved_model.pbtxt (text) is here; forgekit reads saved_model.pb")
    if not pb.is_file():
        raise corrupt("saved_model.pb is not a file")
    raw = pb.read_bytes()
    if not raw:
        raise corrupt("saved_model.pb is empty (0 bytes)")
    # Files first: cheap, and no TensorFlow import for an incomplete copy.
    variables = p / "variables"
    if not variables.is_dir():
        raise corrupt("the variables/ folder is missing (the weights live there)")
    index = variables / "variables.index"
    if not index.is_file():
        raise corrupt("variables/variables.index is missing")
    _check_table(index, "variables/", p, "savedmodel")
    if not list(variables.glob("variables.data-*")):
        raise corrupt("variables/ has an index but no variables.data-* shard")
    try:
        meta_graphs = _pb_fields(raw).get(2, [])  # SavedModel.meta_graphs
        graph = _pb_fields(meta_graphs[0]) if meta_graphs else {}
        meta_info = _pb_fields(graph.get(1, [b""])[0])  # MetaGraphDef.meta_info_def
        # signature_def is a map: entries of (1: key, 2: SignatureDef)
        signature_keys = [_pb_text(_pb_fields(entry).get(1, [b""])[0])
                          for entry in graph.get(5, [])]
        # object_graph_def.nodes[0] is the root object; its children are its attributes
        nodes = _pb_fields(graph.get(7, [b""])[0]).get(1, [])
        children = {_pb_text(_pb_fields(ref).get(2, [b""])[0])
                    for ref in (_pb_fields(nodes[0]).get(1, []) if nodes else [])}
        tags = [_pb_text(t) for t in meta_info.get(4, [])]
        tf_version = _pb_text(meta_info.get(5, [b""])[0])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise corrupt(f"saved_model.pb does not parse as a SavedModel protobuf ({exc})") from exc
    if not meta_graphs:
        raise corrupt("saved_model.pb parses but holds no MetaGraph")
    writer = "tf.saved_model.save / model.export"
    if (p / "keras_metadata.pb").exists():
        writer = "Keras 2 (tf-keras) model.save"
    return FormatInfo(
        "savedmodel",
        p,
        _dir_size(p),
        has_optimizer="optimizer" in children,
        signatures=sorted(k for k in signature_keys if not k.startswith("__")),
        details={
            "writer": writer,
            "tags": tags,
            "tensorflow_version": tf_version or None,
            "fingerprint": (p / "fingerprint.pb").exists(),
            "entries": sorted(e.name for e in p.iterdir()),
        },
    )


def _pb_fields(buf: bytes | memoryview) -> dict[int, list[Any]]:
    """Decode one protobuf message: field number -> values (ints, or bytes for length-delimited).

    The few SavedModel fields detection needs, read from the wire format itself: importing
    TensorFlow's generated protobuf classes would import all of TensorFlow (seconds). Raises
    ``ValueError`` on bytes that are not a well-formed message (truncated, random).
    """
    data = memoryview(buf)
    fields: dict[int, list[Any]] = {}
    i, n = 0, len(data)
    while i < n:
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            length, i = _varint(data, i)
            value, i = data[i : i + length], i + length
        elif wire in (1, 5):
            value, i = data[i : i + (8 if wire == 1 else 4)], i + (8 if wire == 1 else 4)
        else:  # groups (3, 4) are not used by these messages; 6 and 7 do not exist
            raise ValueError(f"unexpected wire type {wire} at byte {i}")
        if i > n or number == 0:
            raise ValueError(f"truncated message (field {number} ends past byte {n})")
        fields.setdefault(number, []).append(value)
    return fields


def _varint(data: memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while i < len(data) and shift < 64:
        byte = data[i]
        result |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            return result, i
        shift += 7
    raise ValueError(f"truncated or overlong varint at byte {i}")


def _pb_text(value: bytes | memoryview) -> str:
    return bytes(value).decode("utf-8")


def _checkpoint_prefix_in(p: Path) -> Path | None:
    """The checkpoint prefix a folder points to: its ``checkpoint`` state file, else the newest
    ``*.index``."""
    state = p / "checkpoint"
    if state.is_file():
        # a damaged state file matches nothing and falls back to the newest index
        text = state.read_text(encoding="utf-8", errors="replace")
        match = re.search(r'^model_checkpoint_path:\s*"(.*)"', text, re.M)
        if match:
            prefix = Path(match.group(1))
            return prefix if prefix.is_absolute() else p / prefix
    indexes = sorted(p.glob("*.index"), key=lambda f: f.stat().st_mtime)
    return Path(str(indexes[-1]).removesuffix(".index")) if indexes else None


def _is_checkpoint_dir(p: Path) -> bool:
    return (p / "checkpoint").is_file() or any(p.glob("*.index"))


def _inspect_checkpoint_dir(p: Path) -> FormatInfo:
    prefix = _checkpoint_prefix_in(p)
    if prefix is None:
        raise CorruptArtifactError(
            "the checkpoint state file names no model_checkpoint_path",
            path=p,
            found="corrupt tf_checkpoint",
            expected="tf_checkpoint",
            fix="pass the prefix explicitly, e.g. tf.train.latest_checkpoint(folder)",
        )
    info = _inspect_checkpoint(prefix, p)
    if len(list(p.glob("*.index"))) > 1:
        info.warnings.append(f"several checkpoints here; the latest is {prefix.name!r}")
    return info


def _inspect_checkpoint(prefix: Path, given: Path) -> FormatInfo:
    index = Path(f"{prefix}.index")
    if not index.is_file():
        raise CorruptArtifactError(
            f"the checkpoint state points to {prefix.name!r}, but {index.name} is missing",
            path=given,
            found="incomplete tf_checkpoint",
            expected="tf_checkpoint",
            fix="copy the whole checkpoint folder again",
        )
    data = _check_table(index, "checkpoint index", given, "tf_checkpoint")
    shards = sorted(prefix.parent.glob(f"{prefix.name}.data-*"))
    expected_shards = 0
    if shards:
        match = _DATA_SHARD.search(shards[0].name)
        expected_shards = int(match.group(2)) if match else 0
    if not shards or len(shards) < expected_shards:
        raise CorruptArtifactError(
            f"data shards missing: found {len(shards)} of {max(expected_shards, 1)} "
            f"{prefix.name}.data-* files",
            path=given,
            found="incomplete tf_checkpoint",
            expected="tf_checkpoint",
            fix="copy every file of the checkpoint (the .index and all .data-* shards)",
        )
    warnings = []
    if given != prefix and not given.is_dir():
        warnings.append(f"TF expects the checkpoint prefix {str(prefix)!r}, not one of its files")
    return FormatInfo(
        "tf_checkpoint",
        given,
        index.stat().st_size + sum(s.stat().st_size for s in shards),
        # Heuristic that costs no TF import: variable keys are stored in the index in clear.
        has_optimizer=b"optimizer" in data,
        warnings=warnings,
        details={"prefix": str(prefix), "load_path": str(prefix), "shards": len(shards)},
    )


def version_numbers(base: str | os.PathLike[str]) -> list[int]:
    """The numeric version folders of a TF Serving base path, ascending (what TF Serving sees)."""
    return sorted(int(e.name) for e in Path(base).iterdir() if e.is_dir() and e.name.isdigit())


def _is_serving_base(p: Path) -> bool:
    return bool(version_numbers(p))


def _inspect_serving_base(p: Path) -> FormatInfo:
    versions = version_numbers(p)
    servable = [v for v in versions if _is_savedmodel_dir(p / str(v))]
    warnings = [f"version {v} has no saved_model.pb: TF Serving skips it"
                for v in versions if v not in servable]
    others = sorted(e.name for e in p.iterdir() if not (e.is_dir() and e.name.isdigit()))
    if others:
        warnings.append(f"non-version entries are ignored by TF Serving: {', '.join(others)}")
    details: dict[str, Any] = {"versions": versions, "servable_versions": servable}
    if servable:
        details["latest"] = servable[-1]
        details["load_path"] = str(p / str(servable[-1]))
    return FormatInfo("serving_base", p, _dir_size(p), warnings=warnings, details=details)


_DIR_DETECTORS: list[tuple[str, Callable[[Path], bool], Callable[[Path], FormatInfo]]] = [
    ("savedmodel", _is_savedmodel_dir, _inspect_savedmodel),
    ("tf_checkpoint", _is_checkpoint_dir, _inspect_checkpoint_dir),
    ("serving_base", _is_serving_base, _inspect_serving_base),
]


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
    for _kind, matches, inspect in _DIR_DETECTORS:
        if matches(p):
            return inspect(p)
    return FormatInfo(
        "unknown",
        p,
        _dir_size(p),
        details={"entries": entries[:20]},
        warnings=["a folder with no saved_model.pb, checkpoint or numeric version folders"],
    )
