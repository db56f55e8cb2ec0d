"""The next version of the code: ``Scale`` moved to another module, keeping its registered name.

Import this only in a fresh process, never together with :mod:`forgekit.zoo.registered`: both
register ``"forgekit>Scale"``, and the last import wins.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="forgekit")
class Scale(keras.layers.Layer):
    """``Scale`` in its new home; same behaviour, same config, same registered name."""

    def __init__(self, factor: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}
