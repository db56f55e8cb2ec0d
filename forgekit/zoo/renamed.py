"""The next version of the code: ``Scale`` was renamed ``Rescale`` after files were saved.

Import this only in a fresh process, never together with :mod:`forgekit.zoo.registered`: a file
saved with the old code names ``"forgekit>Scale"``, which this code no longer registers.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="forgekit")
class Rescale(keras.layers.Layer):
    """``Scale`` under its new name; same behaviour, same config."""

    def __init__(self, factor: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}
