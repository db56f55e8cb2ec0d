"""The publish record: what was deployed as a version, and how to recognise it when served.

:func:`forgekit.serving.deploy.publish` writes one :class:`PublishRecord` and one
:class:`Canary` per version into ``<base>/_forgekit/`` (a non-numeric folder no server reads);
:func:`forgekit.serving.verify.verify_deployment` reads them back to check what answers.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.errors import ForgekitError
from forgekit.formats.serving_base import INT64_MAX
from forgekit.paths import write_text_atomic

IDENTITY_SIGNATURE = "forgekit_identity"  # the extra signature publish exports
RECORDS_DIR = "_forgekit"  # non-numeric: TF Serving ignores it


class DeployError(ForgekitError):
    """A deployment step refused or failed; the message names the path and the fix."""


@dataclass
class PublishRecord:
    """What :func:`publish` deployed: the version, where, and how to recognise it when served.

    ``fingerprint`` is a SHA-256 of the model's weights (order, shapes, dtypes and bytes): the
    value the served ``forgekit_identity`` signature answers. ``saved_model_fingerprint`` is
    TensorFlow's own ``fingerprint.pb`` singleprint of the exported folder. That one identifies
    an *export*, not the weights (two exports of the same weights get different checkpoint
    hashes), and it is computed from files that include the identity signature, so it cannot
    be what the signature answers; it is kept to recognise the folder on disk.
    """

    model_name: str
    base_path: str
    version: int
    path: str
    fingerprint: str
    canary_path: str
    published_at: str
    saved_model_fingerprint: str = ""
    signature: dict[str, Any] = field(default_factory=dict)
    deployment_id: Any = None
    # Set when publish(allow_signature_change=True) deployed a serving_default that differs
    # from the version before it: {"from_version", "previous", "differences"}.
    signature_change: dict[str, Any] | None = None

    @property
    def record_path(self) -> Path:
        """Where this record is stored (``<base>/_forgekit/<version>.record.json``)."""
        return Path(self.base_path) / RECORDS_DIR / f"{self.version}.record.json"

    def canary(self) -> Canary:
        """The canary inputs and the outputs this model gave for them."""
        return Canary.read(self.canary_path)

    def to_json(self) -> str:
        """The record as JSON (what ``forgekit verify --expect`` reads)."""
        return json.dumps(asdict(self), indent=2, default=str) + "\n"

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the record atomically to ``path`` (default :attr:`record_path`)."""
        target = Path(path) if path is not None else self.record_path
        write_text_atomic(target, self.to_json())
        return target

    def __str__(self) -> str:
        return (f"{self.model_name} version {self.version} -> {self.path}\n"
                f"  fingerprint {self.fingerprint[:23]}…  published {self.published_at}\n"
                f"  canary {self.canary_path}")


@dataclass
class Canary:
    """Known inputs and the outputs one exact model gave for them (columns, by tensor name)."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    signature_name: str = "serving_default"

    def to_json(self) -> str:
        def cols(d: Mapping[str, np.ndarray]) -> dict[str, Any]:
            return {k: {"dtype": str(v.dtype), "values": v.tolist()} for k, v in d.items()}

        return json.dumps({"signature_name": self.signature_name, "inputs": cols(self.inputs),
                           "outputs": cols(self.outputs)}) + "\n"

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Canary:
        """Read a canary file written by :func:`publish` or :func:`record_for`."""
        doc = read_json(Path(path), "a canary file (.canary.json)")
        try:
            def arrays(d: Mapping[str, Any]) -> dict[str, np.ndarray]:
                return {k: np.asarray(v["values"], dtype=v["dtype"]) for k, v in d.items()}

            return cls(arrays(doc["inputs"]), arrays(doc["outputs"]),
                       doc.get("signature_name", "serving_default"))
        except (KeyError, TypeError, ValueError) as exc:
            raise DeployError(f"{path}: not a forgekit canary file ({exc}); expected the JSON "
                              "publish() writes beside the version folders. Re-publish the "
                              "model to write a new one.") from None


def load_record(path: str | os.PathLike[str], version: int | None = None) -> PublishRecord:
    """Read a record: a ``.record.json`` file, or a base path and a version number."""
    p = Path(path)
    if version is not None:
        p = p / RECORDS_DIR / f"{int(version)}.record.json"
    elif p.is_dir():
        raise DeployError(f"{p} is a folder; pass a .record.json file, or the base path and "
                          "version=N")
    doc = read_json(p, "a publish record (<base>/_forgekit/<version>.record.json)")
    if "reserved_by_pid" in doc and "fingerprint" not in doc:
        raise DeployError(f"{p}: the publish that claimed this version (process "
                          f"{doc['reserved_by_pid']}, {doc.get('reserved_at', '?')}) never "
                          "completed; nothing was deployed under this number.")
    known = set(PublishRecord.__dataclass_fields__)
    missing = {"model_name", "version", "fingerprint", "canary_path"} - set(doc)
    if missing:
        raise DeployError(f"{p}: JSON without {sorted(missing)}; expected a publish record as "
                          "forgekit.serving.publish() writes it.")
    return validate_record(PublishRecord(**{k: v for k, v in doc.items() if k in known}),
                           source=str(p))


def validate_record(record: PublishRecord, source: str = "the record") -> PublishRecord:
    """``record`` if every field a verification relies on is usable, else DeployError.

    A version must be a whole number (``"abc"``, ``1.9`` or ``true`` are refused, not read as
    1) and the fingerprint a non-empty string: an empty one would silently skip the
    identity check.
    """
    def bad(field_name: str, value: Any, expected: str) -> DeployError:
        return DeployError(f"{source}: {field_name} is {value!r} ({type(value).__name__}); "
                           f"expected {expected}. Use the record publish() wrote, or "
                           "record_for() to make one.")

    version = record.version
    if isinstance(version, bool) or not isinstance(version, numbers.Integral) \
            or not 1 <= version <= INT64_MAX:
        raise bad("version", version, "a whole number from 1 to 2**63 - 1")
    if not isinstance(record.fingerprint, str) or not record.fingerprint:
        raise bad("fingerprint", record.fingerprint, "the non-empty weights fingerprint")
    if not isinstance(record.model_name, str) or not record.model_name:
        raise bad("model_name", record.model_name, "the served model's name")
    if not isinstance(record.canary_path, str | os.PathLike) or not str(record.canary_path):
        raise bad("canary_path", record.canary_path, "the path of the canary file")
    if not isinstance(record.signature, dict):
        raise bad("signature", record.signature, "an object of inputs and outputs")
    return record


def read_json(path: Path, what: str) -> dict[str, Any]:
    from forgekit.formats import bounded

    try:  # a regular file, at most 64 MiB: a FIFO or /dev/zero never hangs verify
        text = bounded.read_text(path)
    except FileNotFoundError:
        raise DeployError(f"{path}: no such file; expected {what}.") from None
    except ForgekitError as exc:
        raise DeployError(f"{path}: {exc.reason}; expected {what}.") from None
    try:
        doc = json.loads(text)
    except ValueError:
        raise DeployError(f"{path}: not JSON (starts {text[:40]!r}); expected {what}.") from None
    if not isinstance(doc, dict):
        raise DeployError(f"{path}: JSON {type(doc).__name__}, expected {what} (an object).")
    return doc
