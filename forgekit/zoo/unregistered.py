"""The Scale layer and smooth_l1 loss as notebooks usually write them: no registration.

A file saved with these records ``"registered_name": "Scale"`` and this module's name, but Keras
never looks either up by importing: even a process that has imported this module cannot load
the file until it passes the classes itself (``custom_objects=`` or ``custom_object_scope``).
"""

from __future__ import annotations

from typing import Any

import keras


class Scale(keras.layers.Layer):
    """Multiplies its input by a constant ``factor``; same code as the registered one."""

    def __init__(self, factor: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}


def smooth_l1(y_true: Any, y_pred: Any) -> Any:
    """Huber-style loss with delta 1: quadratic near zero, linear beyond."""
    error = keras.ops.abs(y_true - y_pred)
    return keras.ops.mean(keras.ops.where(error < 1.0, 0.5 * error**2, error - 0.5), axis=-1)
