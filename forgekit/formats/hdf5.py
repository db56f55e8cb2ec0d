"""HDF5 files: a legacy whole model (model_config attribute) or weights only (Keras 2 or 3 layout)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from forgekit.errors import RESAVE, CorruptArtifactError, is_system_error
from forgekit.formats.info import FormatInfo
from forgekit.formats.kinds import extension_kinds, keras_reads_name
from forgekit.package_versions import parse_version

SIGNATURE = b"\x89HDF\r\n\x1a\n"
OFFSETS = (0, 512, 1024, 2048)  # an HDF5 file may start after a user block


def matches(head: bytes) -> bool:
    """The HDF5 signature at one of the offsets a user block allows."""
    return any(head[o : o + 8] == SIGNATURE for o in OFFSETS)


def keras3_group_has_vars(h5: Any, group: str) -> bool:
    """True if a Keras 3 weights file holds at least one variable under ``group``."""
    if group not in h5:
        return False
    found = []
    h5[group].visititems(lambda _name, obj: found.append(1) if hasattr(obj, "shape") else None)
    return bool(found)


def check_links(h5: Any, p: Path, where: str = "") -> None:
    """Refuse an HDF5 file that reaches outside itself: an external link, a dataset stored in
    external files, or a virtual dataset. Keras writes none of them; following one opens a file
    by name (a FIFO there blocks forever, a device never ends), so it is checked first, with
    the links only listed, never followed."""
    import h5py

    outside: list[str] = []

    def visit(name: str) -> None:
        link = h5.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            outside.append(f"{name!r} is an external link to {link.filename}:{link.path}")
        elif isinstance(link, h5py.HardLink):
            obj = h5.get(name)
            if isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
                outside.append(f"dataset {name!r} keeps its data in other files")

    try:
        h5.visit_links(visit)
    except (RuntimeError, KeyError, ValueError) as exc:  # h5py's words for damaged metadata
        raise CorruptArtifactError(
            f"{where + ' ' if where else ''}an HDF5 file whose links cannot be listed ({exc}); "
            "truncated or damaged",
            path=p, found="corrupt HDF5",
            expected=" or ".join(extension_kinds(p)) or "h5_model or weights_h5",
            fix=RESAVE) from exc
    if outside:
        raise CorruptArtifactError(
            f"{where + ' ' if where else ''}an HDF5 file that points outside itself "
            f"({'; '.join(outside[:3])}): Keras never writes this, and forgekit does not "
            "follow it",
            path=p, found="HDF5 with links to other files",
            expected=" or ".join(extension_kinds(p)) or "h5_model or weights_h5",
            fix="save the model again with model.save(path); do not load a file of unknown "
                "origin")


def attr(h5: Any, name: str) -> str | None:
    value = h5.attrs.get(name)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _loss_strings(training_config: str | None) -> list[str]:
    """The losses a legacy ``training_config`` stores as typed strings (one per output)."""
    if not training_config or len(training_config) > 1 << 20:  # a config, not a payload
        return []
    try:
        loss = json.loads(training_config).get("loss")
    except (ValueError, AttributeError):
        return []
    values = loss.values() if isinstance(loss, dict) else loss if isinstance(loss, list) else [loss]
    return sorted({v for v in values if isinstance(v, str)})


def inspect(p: Path, size: int) -> FormatInfo:
    """Read an HDF5 file's attributes and group names (never its weights)."""
    import h5py

    try:
        with h5py.File(p, "r") as h5:
            check_links(h5, p)  # before any lookup that could follow one
            version = attr(h5, "keras_version")
            if "model_config" in h5.attrs:
                major = (parse_version(version) or (2,))[0]  # files before Keras 3 may omit it
                return FormatInfo(
                    "h5_model",
                    p,
                    size,
                    keras_version=version,
                    has_optimizer="optimizer_weights" in h5
                    and keras3_group_has_vars(h5, "optimizer_weights"),
                    details={
                        "writer": "Keras 3" if major >= 3 else "Keras 2",
                        "backend": attr(h5, "backend"),
                        "compiled": "training_config" in h5.attrs,
                        "stored_losses": _loss_strings(attr(h5, "training_config")),
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
                    details={"writer": "Keras 2 save_weights", "backend": attr(h5, "backend"),
                             "groups": sorted(h5.keys())},
                    warnings=_weights_extension_warning(p, keras2=True),
                )
            if "layers" in h5 or "vars" in h5:  # Keras 3 .weights.h5 layout
                return FormatInfo(
                    "weights_h5",
                    p,
                    size,
                    has_optimizer=keras3_group_has_vars(h5, "optimizer"),
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
        if is_system_error(exc):  # permissions, disk, system: detect_format says which
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

