"""Lazy public names for a package: ``name -> module``, imported on first attribute access.

The package stays cheap to import (no TensorFlow, no h5py) however many names it offers. A
subpackage or module of the package resolves the same way (``forgekit.measure.probe``), so a
lesson can write the dotted path after ``import forgekit`` alone.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, names: Mapping[str, str]
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``names`` maps a public name to the
    module that defines it (relative to ``package``, or absolute: ``forgekit.x.y``)."""
    namespace = importlib.import_module(package).__dict__
    namespace["LAZY_NAMES"] = dict(names)  # for tests: a submodule must not share a name

    def __getattr__(name: str) -> Any:
        if name in names:
            module = names[name]
            if not module.startswith("forgekit."):
                module = f"{package}.{module}"
            value = getattr(importlib.import_module(module), name)
            namespace[name] = value  # cache: later lookups skip __getattr__
            return value
        if not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}"):
            return importlib.import_module(f"{package}.{name}")  # sets the attribute too
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
