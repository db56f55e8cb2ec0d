"""Keras 2 and Keras 3 side by side: who wrote a file, who reads it, and what happens.

This environment has both: ``keras`` (Keras 3, used by ``tf.keras``) and ``tf-keras`` (Keras 2,
imported as ``tf_keras``). :func:`compare` says whether the reader is older or newer than the
writer a file records. Lessons run each cross-version load in a fresh process that imports only
one of them (:func:`forgekit.measure.fresh.load_snippet`): both directions, one environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from forgekit.package_versions import installed_version, parse_version

READERS = {"keras": "keras", "tf_keras": "tf-keras"}  # import name -> distribution name


def installed(reader: str = "keras") -> str | None:
    """The installed version of a reader (``"keras"`` or ``"tf_keras"``), without importing it."""
    return installed_version(READERS.get(reader, reader))


@dataclass(frozen=True)
class VersionCheck:
    """How a reader's Keras version relates to the writer's recorded in a file."""

    writer: str | None
    reader: str | None
    relation: str  # "same", "newer reader", "older reader", "unknown"
    message: str

    @property
    def ok(self) -> bool:
        """False only when the reader is older than the writer (the risky direction)."""
        return self.relation != "older reader"


def compare(writer: str | None, reader: str | None = None) -> VersionCheck:
    """Compare the Keras version that wrote a file with the one that will read it.

    ``reader`` defaults to the installed Keras 3. Different major versions use different file
    layouts and class configs; within a major version an older reader may not know config keys
    a newer writer records.
    """
    reader = reader if reader is not None else installed("keras")
    w, r = parse_version(writer), parse_version(reader)
    if w is None or r is None:
        return VersionCheck(writer, reader, "unknown",
                            "the file does not record the Keras version that wrote it")
    if w[:2] == r[:2]:
        return VersionCheck(writer, reader, "same",
                            f"written by Keras {writer}, read by Keras {reader}: same release line")
    if r > w:
        detail = (f"Keras {reader} reads a Keras {writer} file through its legacy loaders; "
                  "compiled losses and metrics may not deserialize (load with compile=False)"
                  if r[0] > w[0] else
                  f"written by Keras {writer}, read by the newer Keras {reader}")
        return VersionCheck(writer, reader, "newer reader", detail)
    detail = (f"Keras {reader} cannot read a Keras {writer} config (different class configs); "
              "bridge with the exported SavedModel or weights into a rebuilt model"
              if w[0] > r[0] else
              f"written by the newer Keras {writer}, read by Keras {reader}: config keys added "
              "since may be rejected; upgrade the reader")
    return VersionCheck(writer, reader, "older reader", detail)
