"""Version strings: what is installed (from package metadata, without importing it) and the one
parser that turns ``"3.15.1"`` into numbers to compare."""

from __future__ import annotations

import re
from importlib import metadata


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None when it is not installed."""
    for name in (dist, dist.replace("-", "_")):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def parse_version(version: str | None) -> tuple[int, ...] | None:
    """``"3.15.0"`` -> ``(3, 15, 0)`` (at most three numbers); ``None`` when nothing to parse."""
    if not version:
        return None
    parts = re.findall(r"\d+", version)[:3]
    return tuple(int(p) for p in parts) if parts else None
