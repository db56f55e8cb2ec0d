"""Scale layers whose ``get_config`` is missing or incomplete, registered so loading finds them.

- :class:`AutoScale` defines no ``get_config``: Keras 3 records the constructor arguments itself
  when they are plain values (numbers, strings, lists, dicts).
- :class:`ArrayScale` defines no ``get_config`` and takes a NumPy array: nothing Keras can
  record, so the model cannot be saved as ``.keras``.
- :class:`ForgetfulScale` defines a ``get_config`` that forgets ``factor``: the file saves and
  loads, and the reloaded layer silently uses the default factor.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from forgekit.zoo.registered import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class AutoScale(keras.layers.Layer):
    """Scale without ``get_config``: relies on Keras 3's automatic config."""

    def __init__(self, factor: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor


@keras.saving.register_keras_serializable(package=PACKAGE)
class ArrayScale(keras.layers.Layer):
    """Per-feature factors given as a NumPy array, and no ``get_config``."""

    def __init__(self, factors: np.ndarray | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factors = np.ones(1, "float32") if factors is None else np.asarray(factors, "float32")

    def call(self, inputs: Any) -> Any:
        return inputs * self.factors


@keras.saving.register_keras_serializable(package=PACKAGE)
class ForgetfulScale(keras.layers.Layer):
    """Scale whose ``get_config`` leaves ``factor`` out (a common slip)."""

    def __init__(self, factor: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        return super().get_config()  # "factor" is missing: reloaded layers get the default
