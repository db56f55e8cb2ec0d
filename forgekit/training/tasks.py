"""Small, repeatable training problems: synthetic tasks and a seeded model.

- :func:`make_task` generates a tiny synthetic problem (no downloads) that a small MLP overfits
  within a few epochs on a CPU, so "the best epoch" is visibly not the last one.
- :func:`build_model` returns a compiled model whose initial weights depend only on ``seed``.
- :func:`set_determinism` makes TensorFlow's kernels repeat bit for bit.

TensorFlow is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

TASK_NAMES = ("classify", "regress")


@dataclass(frozen=True)
class Task:
    """A synthetic supervised problem: arrays plus what the model's head and loss should be."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    outputs: int  # units of the last layer
    loss: str  # a Keras loss identifier

    @property
    def validation_data(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_val, self.y_val

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self.x_train) / batch_size)


def make_task(name: str = "classify", *, n_train: int = 256, n_val: int = 1024,
              n_features: int = 32, noise: float = 0.1, seed: int = 0) -> Task:
    """Generate a small task that overfits within a few epochs, identical for identical args.

    ``"classify"``: two classes decided by ``x0*x1 + x2 - x3/2 > 0``; a fraction ``noise`` of
    labels is flipped (train and validation alike), and all other features are distractors,
    so a 2x128 MLP memorises the training set while the validation loss turns upwards.
    ``"regress"``: ``y = sin(2*x0) + x1/2`` plus Gaussian noise of standard deviation
    ``noise * 5``, again with distractor features.
    """
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}; choose one of {TASK_NAMES}")
    if n_features < 4:
        raise ValueError("n_features must be at least 4 (the signal uses 4 features)")
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, n_features)).astype("float32")
        if name == "classify":
            y = (x[:, 0] * x[:, 1] + x[:, 2] - 0.5 * x[:, 3] > 0).astype("int64")
            flip = rng.random(n) < noise
            return x, np.where(flip, 1 - y, y)
        y = np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] + rng.normal(scale=5 * noise, size=n)
        return x, y.astype("float32")[:, None]

    x_train, y_train = draw(n_train)
    x_val, y_val = draw(n_val)
    if name == "classify":
        return Task(name, x_train, y_train, x_val, y_val, 2, "sparse_categorical_crossentropy")
    return Task(name, x_train, y_train, x_val, y_val, 1, "mse")


def set_determinism(seed: int = 0) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic.

    With this, the same model trained on the same batches in the same order ends with the same
    weights bit for bit, in this process or any other, which is what lets a resumed run be
    compared with an uninterrupted one exactly.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_model(task: Task, *, width: int = 128, learning_rate: float = 1e-3,
                seed: int = 0) -> keras.Model:
    """A compiled 2-hidden-layer MLP for ``task`` with Adam.

    Each layer's initializer is seeded explicitly, so the starting weights depend on ``seed``
    alone, not on how many random numbers were drawn before.
    """
    import keras

    def dense(units: int, i: int, activation: str | None = None) -> keras.layers.Dense:
        init = keras.initializers.GlorotUniform(seed=seed * 100 + i)
        return keras.layers.Dense(units, activation=activation, kernel_initializer=init)

    model = keras.Sequential(
        [keras.Input((task.x_train.shape[1],)), dense(width, 0, "relu"),
         dense(width, 1, "relu"), dense(task.outputs, 2)],
        name=f"{task.name}_mlp",
    )
    loss = (keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            if task.name == "classify" else task.loss)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    return model


def batch_loss_recorder(losses: list[float]) -> keras.callbacks.Callback:
    """A callback appending each training batch's own loss to ``losses``.

    Keras 3 passes ``on_train_batch_end`` the *running mean* of the loss since the epoch began;
    the batch's own value is recovered as ``(b+1)*mean_b - b*mean_(b-1)`` (batches of equal
    size, as in every task here).
    """
    import keras

    previous = {"mean": 0.0}

    def on_batch_end(batch: int, logs: dict[str, Any]) -> None:
        mean = float(logs["loss"])
        losses.append((batch + 1) * mean - batch * previous["mean"] if batch else mean)
        previous["mean"] = mean

    return keras.callbacks.LambdaCallback(on_train_batch_end=on_batch_end)
