"""JSON architectures (``model.to_json()``): a class_name + config object."""

from __future__ import annotations

import json
from pathlib import Path

from forgekit.errors import CorruptArtifactError
from forgekit.formats import bounded
from forgekit.formats.info import FormatInfo

LIMIT = bounded.JSON_LIMIT  # larger JSON is not inspected


def matches(head: bytes) -> bool:
    """Starts like a JSON object (after a BOM or white space)."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def inspect(p: Path, size: int) -> FormatInfo:
    """Parse the JSON: a Keras model config, or ``unknown``."""
    if size > LIMIT:
        return FormatInfo("unknown", p, size, warnings=["a JSON file too large to inspect"])
    try:
        doc = json.loads(bounded.read_text(p, LIMIT, encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:  # deep nesting too
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
