"""Keras and TensorFlow in and out: save and load every kind through the real API, the custom
objects a file needs, and which Keras (2 or 3) wrote or reads it."""

from forgekit._lazy import lazy_names

__getattr__, __dir__ = lazy_names(__name__, {})  # submodules resolve on first access
