"""Version strings: what is installed (from package metadata, without importing it) and the one
parser that turns ``"3.15.1"`` into numbers to compare."""

from __future__ import annotations

import re
from importlib import metadata

# The versions the course's prose was measured on: requirements.lock pins them for `make`, CI and
# Binder (tests/test_pins.py keeps the two equal). Elsewhere - Colab, a team's venv - the lessons
# re-measure on whatever is installed and call a changed verdict drift, naming both.
COURSE_VERSIONS = {"tensorflow": "2.21.0", "keras": "3.15.1"}


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


def drift_from_course() -> dict[str, tuple[str, str | None]]:
    """``{package: (course version, installed version)}`` for each of COURSE_VERSIONS that is
    installed at another version here (empty under the pins)."""
    found = {name: (pinned, installed_version(name)) for name, pinned in COURSE_VERSIONS.items()}
    return {name: pair for name, pair in found.items() if pair[0] != pair[1]}
