"""forgekit: the plumbing behind a runnable course on saving, loading and serving Keras models.

Importing forgekit is cheap: TensorFlow is imported only by the functions that need it, so
``import forgekit`` never pays TensorFlow's start-up cost (tests/test_package.py checks this).
Public names are resolved lazily from the module that owns them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "quiet_tf": "forgekit.quiet",
    "environment_report": "forgekit.environment",
    "doctor": "forgekit.diagnose",
    "detect_format": "forgekit.formats",
    "FormatInfo": "forgekit.formats",
    "load": "forgekit.saving",
    "save": "forgekit.saving",
    "ForgekitError": "forgekit.errors",
    "WrongFormatError": "forgekit.errors",
    "CorruptArtifactError": "forgekit.errors",
    "IncompatibleArtifactError": "forgekit.errors",
    "run_notebook": "forgekit.runner",
    "course_map": "forgekit.course",
    "claim": "forgekit.claims",
}
_SUBMODULES = {
    "checkpoints", "claims", "course", "custom_objects", "diagnose", "environment", "errors", "exercises",
    "failures", "formats", "fresh", "keras_versions", "outcome", "paths", "plots", "probe", "quiet",
    "runner", "saving", "serving", "table", "training", "zoo",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"forgekit.{name}")
    raise AttributeError(f"module 'forgekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
