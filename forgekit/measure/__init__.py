"""Measured, not asserted: the format probe, comparisons of weights/predictions/configs, and
snippets run in a fresh process (the way a restarted kernel or a server sees a file)."""

from forgekit._lazy import lazy_names

__getattr__, __dir__ = lazy_names(__name__, {})  # submodules resolve on first access
