"""What detection found at a path: :class:`FormatInfo`, one record for every kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgekit.formats.kinds import keras_reads_name, keras_suffix, kind
from forgekit.table import Fields

# Loss aliases a legacy .h5 stores as typed. Keras 3's H5 loader looks them up among
# keras.metrics and fails, so load_model needs compile=False (tests/test_formats.py says
# when a Keras release starts reading them).
KERAS3_UNREADABLE_LOSSES = frozenset({"mse", "mae", "mape", "msle", "MSE", "MAE", "MAPE", "MSLE",
                                      "kld", "KLD", "logcosh", "huber_loss"})


@dataclass
class FormatInfo:
    """What :func:`~forgekit.formats.detect.detect_format` found at a path.

    ``kind`` is a key of :data:`~forgekit.formats.kinds.KINDS`. ``keras_version`` and
    ``has_optimizer`` are ``None`` when the artifact does not record them. ``signatures`` lists SavedModel serving signatures.
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
            return f"{kind(self.kind).forgekit_call(self.load_path)}  # or rename it to *{suffix}"
        aliases = sorted(KERAS3_UNREADABLE_LOSSES.intersection(self.details.get("stored_losses",
                                                                                ())))
        if self.kind == "h5_model" and aliases:
            return (f"keras.models.load_model({str(self.load_path)!r}, compile=False)  # its loss "
                    f"{', '.join(map(repr, aliases))} does not rebuild in Keras 3: compile again")
        return kind(self.kind).how_to_load(self.load_path, self.signatures)

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


def dir_size(p: Path) -> int:
    """Bytes of every file below folder ``p``."""
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
