"""TFLite flatbuffers: the TFL3 identifier and a root table inside the file."""

from __future__ import annotations

from pathlib import Path

from forgekit.errors import CorruptArtifactError
from forgekit.formats import bounded
from forgekit.formats.info import FormatInfo


def matches(head: bytes) -> bool:
    """The flatbuffer file identifier of TFLite."""
    return head[4:8] == b"TFL3"


def inspect(p: Path, size: int) -> FormatInfo:
    """Check the root table offset lies inside the file (truncation)."""
    with bounded.open_regular(p, expected="tflite") as f:
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

