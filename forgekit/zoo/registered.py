"""A custom layer, loss and subclassed model, registered so a fresh process can load them.

``register_keras_serializable(package="forgekit")`` records each object under the name
``"forgekit>ClassName"``; a saved file refers to them by that name. Loading works in any process
that has imported this module (the decorators run at import time). Keras never imports it for
you: it auto-imports only its own packages.
"""

from __future__ import annotations

from typing import Any

import keras

PACKAGE = "forgekit"


@keras.saving.register_keras_serializable(package=PACKAGE)
class Scale(keras.layers.Layer):
    """Multiplies its input by a constant ``factor`` (a hyperparameter, not a weight).

    The factor lives only in the config: if ``get_config`` forgot it, a reloaded model would
    silently use the default - see :mod:`forgekit.zoo.variants`.
    """

    def __init__(self, factor: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package=PACKAGE)
def smooth_l1(y_true: Any, y_pred: Any) -> Any:
    """Huber-style loss with delta 1: quadratic near zero, linear beyond."""
    error = keras.ops.abs(y_true - y_pred)
    return keras.ops.mean(keras.ops.where(error < 1.0, 0.5 * error**2, error - 0.5), axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class TinyRegressor(keras.Model):
    """A subclassed model: Dense(units, relu) -> Dense(1) -> a ``head`` layer (a Scale).

    Its config holds the constructor arguments; the nested ``head`` layer is serialized into
    that config and rebuilt in ``from_config``, the documented pattern for nested objects.
    """

    def __init__(self, units: int = 8, head: keras.layers.Layer | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.out = keras.layers.Dense(1)
        self.head = head if head is not None else Scale()

    def call(self, inputs: Any) -> Any:
        return self.head(self.out(self.hidden(inputs)))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units,
                "head": keras.saving.serialize_keras_object(self.head)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TinyRegressor:
        config = dict(config)
        config["head"] = keras.saving.deserialize_keras_object(config["head"])
        return cls(**config)
