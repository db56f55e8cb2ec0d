"""TF Serving base paths: numbered version folders, each a SavedModel.

:func:`version_numbers` is the one lister of version folders (saving the next version, detection
and doctor use it): a name of ASCII digits only, as TF Serving reads it. ``"²"`` is a digit to
``str.isdigit`` but not a number to ``int``, and not a version to TF Serving.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from forgekit.formats import savedmodel
from forgekit.formats.info import FormatInfo, dir_size

INT64_MAX = (1 << 63) - 1  # TF Serving parses a version with safe_strto64: larger is no version


def is_version_name(name: str) -> bool:
    """A folder name TF Serving reads as a version number (``"0002"`` is version 2): ASCII
    digits whose value fits an int64. The server, detection and publish all use this rule."""
    return name.isascii() and name.isdigit() and int(name) <= INT64_MAX


def version_folders(base: str | os.PathLike[str]) -> dict[int, Path]:
    """Version number -> folder of a TF Serving base path, ascending (what TF Serving sees)."""
    found = {int(e.name): e for e in Path(base).iterdir() if is_version_name(e.name) and e.is_dir()}
    return dict(sorted(found.items()))


def version_numbers(base: str | os.PathLike[str]) -> list[int]:
    """The version numbers of a TF Serving base path, ascending."""
    return list(version_folders(base))


def matches_dir(p: Path) -> bool:
    """At least one numbered version folder."""
    return bool(version_numbers(p))


def inspect_dir(p: Path) -> FormatInfo:
    """The versions, which of them hold a SavedModel, and the latest servable one."""
    folders = version_folders(p)
    versions = list(folders)
    servable = [v for v, folder in folders.items() if savedmodel.matches_dir(folder)]
    warnings = [f"version {v} has no saved_model.pb: TF Serving skips it"
                for v in versions if v not in servable]
    others = sorted(e.name for e in p.iterdir() if not (is_version_name(e.name) and e.is_dir()))
    if others:
        warnings.append(f"non-version entries are ignored by TF Serving: {', '.join(others)}")
    details: dict[str, Any] = {"versions": versions, "servable_versions": servable}
    if servable:
        details["latest"] = servable[-1]
        details["load_path"] = str(folders[servable[-1]])
    return FormatInfo("serving_base", p, dir_size(p), warnings=warnings, details=details)
