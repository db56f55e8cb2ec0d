"""forgekit: the plumbing behind a runnable course on saving, loading and serving Keras models.

Importing forgekit is cheap: TensorFlow is imported only by the functions that need it, so
``import forgekit`` never pays TensorFlow's start-up cost (tests/test_package.py checks this).
Public names and subpackages resolve lazily on first access (``forgekit.measure.probe``). The
layout is described in CONTRIBUTING.md.
"""

from __future__ import annotations

from forgekit._lazy import lazy_names

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

__all__ = sorted(_LAZY) + ["__version__"]
__getattr__, __dir__ = lazy_names(__name__, _LAZY)
