"""forgekit: the plumbing behind a runnable course on saving, loading and serving Keras models.

Importing forgekit is cheap: TensorFlow is imported only by the functions that need it, so
``import forgekit`` never pays TensorFlow's start-up cost (tests/test_package.py checks this).
Public names are resolved lazily from the module that owns them. The layout is described in
CONTRIBUTING.md; modules that moved keep their old path (``forgekit.probe`` is
``forgekit.measure.probe``), so lessons and older code keep working.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "quiet_tf": "forgekit.quiet",
    "environment_report": "forgekit.diagnose.environment",
    "doctor": "forgekit.diagnose.diagnosis",
    "detect_format": "forgekit.formats.detect",
    "FormatInfo": "forgekit.formats.info",
    "load": "forgekit.keras_io.loading",
    "save": "forgekit.keras_io.saving",
    "ForgekitError": "forgekit.errors",
    "WrongFormatError": "forgekit.errors",
    "CorruptArtifactError": "forgekit.errors",
    "IncompatibleArtifactError": "forgekit.errors",
    "run_notebook": "forgekit.course.runner",
    "course_map": "forgekit.course.map",
    "claim": "forgekit.course.claims",
}
_SUBMODULES = {
    "audit", "cli", "course", "crosslang", "details", "diagnose", "errors", "exercises", "formats",
    "keras_io", "measure", "outcome", "paths", "plots", "quiet", "serving", "sizes", "table",
    "tflite", "training", "package_versions", "widgets", "zoo",
}
# Old module paths -> where the module lives now. ``forgekit.probe``, ``import forgekit.probe``
# and ``from forgekit.probe import matrix`` all give the module at its new path.
MOVED = {
    "saving": "forgekit.keras_io.saving",
    "custom_objects": "forgekit.keras_io.custom_objects",
    "keras_versions": "forgekit.keras_io.keras_versions",
    "environment": "forgekit.diagnose.environment",
    "failures": "forgekit.diagnose.failures",
    "probe": "forgekit.measure.probe",
    "fresh": "forgekit.measure.fresh",
    "checkpoints": "forgekit.training.checkpoints",
    "runner": "forgekit.course.runner",
    "claims": "forgekit.course.claims",
}

__all__ = sorted(_LAZY) + ["__version__"]


class _MovedModules:
    """Resolves ``forgekit.<old name>`` to the module object at its new path (one object).

    A meta path finder and loader by protocol (``importlib.abc`` would cost 40 ms to import).
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.partition(".")
        if package == __name__ and name in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name.partition(".")[2]])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was executed at its new path."""


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    if name in _SUBMODULES or name in MOVED:
        return importlib.import_module(f"forgekit.{name}")
    raise AttributeError(f"module 'forgekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES | set(MOVED))
