"""Tiny, deterministic SavedModels to serve in lessons, tests and benchmarks.

Weights are fixed numbers rather than random, so two exports with the same ``scale`` predict
the same thing and a different ``scale`` is visibly a different model version.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np


def export_demo_model(path: str | os.PathLike[str], kind: Literal["single", "multi"] = "single",
                      *, scale: float = 1.0) -> Path:
    """Export a small Keras model with ``model.export(path)`` and return ``path``.

    ``single``: input ``x`` (float32, shape [-1, 4]) -> one output of shape [-1, 2].
    ``multi``: input ``features`` ([-1, 3]) -> named outputs ``price`` ([-1, 1]) and
    ``category`` ([-1, 3], softmax).
    """
    import keras

    path = Path(path)
    if kind == "single":
        x = keras.Input(shape=(4,), name="x")
        dense = keras.layers.Dense(2, name="y")
        model = keras.Model(x, dense(x))
        dense.set_weights([scale * np.arange(8, dtype=np.float32).reshape(4, 2) / 10,
                           np.array([0.5, -0.5], np.float32)])
    elif kind == "multi":
        features = keras.Input(shape=(3,), name="features")
        hidden = keras.layers.Dense(4, activation="relu", name="hidden")
        price = keras.layers.Dense(1, name="price")
        category = keras.layers.Dense(3, activation="softmax", name="category")
        h = hidden(features)
        model = keras.Model(features, {"price": price(h), "category": category(h)})
        hidden.set_weights([scale * np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
                            np.full(4, 0.1, np.float32)])
        price.set_weights([np.array([[1.0], [2.0], [-1.0], [0.5]], np.float32),
                           np.array([3.0], np.float32)])
        category.set_weights([np.linspace(-2, 2, 12, dtype=np.float32).reshape(4, 3),
                              np.zeros(3, np.float32)])
    else:
        raise ValueError(f"kind must be 'single' or 'multi', not {kind!r}")
    model.export(str(path), verbose=False)
    return path
