"""Lazy public names for a package: ``name -> module``, imported on first attribute access.

The package stays cheap to import (no TensorFlow, no h5py) however many names it offers.
"""

from __future__ import annotations

import importlib
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
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
