"""Checker for lesson 02 (weights and architecture).

:func:`check_load_with_optimizer` is the lesson's exercise: the learner writes
``load_with_optimizer(weights_path, build_model)``, the plain Keras calls that bring a
``.weights.h5`` back *with* Adam's state, so training goes on where it stopped.
"""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, is_placeholder, unused_path, wrong

STEP_TOLERANCE = 1e-6  # one Adam step from the same state lands within this (CPU float32)


def _build() -> Any:
    """The checker's own ``build_model``: a named classifier compiled with Adam, not the lesson's
    model (so an answer cannot lean on the notebook's variables), ~70k parameters."""
    import keras

    model = keras.Sequential([keras.Input((12,), name="features"),
                              keras.layers.Dense(256, activation="relu", name="hidden_1"),
                              keras.layers.Dense(256, activation="relu", name="hidden_2"),
                              keras.layers.Dense(4, name="logits")], name="ranker")
    model.compile(optimizer=keras.optimizers.Adam(name="adam"), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data(seed: int, n: int) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 12)).astype("float32"), rng.integers(0, 4, n)


def _values(variables: Any) -> list[Any]:
    return [v.numpy() if hasattr(v, "numpy") else v for v in variables]


def check_load_with_optimizer(load_with_optimizer: Any,
                              folder: str | os.PathLike[str] | None = None) -> Feedback:
    """Test ``load_with_optimizer(weights_path, build_model) -> model`` by what training does next.

    The checker trains a model of its own, saves its weights (``save_weights``, so the file holds
    Adam's state), then calls ``load_with_optimizer`` with that file and its own ``build_model``.
    The returned model must be the one ``build_model`` built (not a copy), predict exactly as the
    saved one, have Adam at the same step with the same slots, and one more training step on the
    same batch must land where the saved model's step lands.
    """
    answer = load_with_optimizer
    if answer is None or is_placeholder(answer):
        return NOT_ANSWERED
    if not inspect.isfunction(answer):
        return wrong("load_with_optimizer should be a function: "
                     "def load_with_optimizer(weights_path, build_model): ...")

    from forgekit.measure.compare import max_abs_diff
    from forgekit.outcome import first_line

    run = unused_path(folder, "load-with-optimizer-")
    run.mkdir(parents=True)
    saved = _build()
    x, y = _data(3, 64)
    saved.fit(x, y, epochs=2, batch_size=16, verbose=0)
    weights = run / "job.weights.h5"
    saved.save_weights(weights)
    steps = int(saved.optimizer.iterations)
    built: list[tuple[Any, Any]] = []  # (model, the optimizer build_model compiled it with)

    def build_model() -> Any:
        model = _build()
        built.append((model, model.optimizer))
        return model

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = answer(weights, build_model)
    except Exception as exc:  # the learner's code: report whatever it raised
        hint = (" keras.models.load_model reads whole-model files; a weights file is loaded into "
                "a model you build, with model.load_weights." if "load_model" in repr(exc)
                or "config" in str(exc).lower() else "")
        return wrong(f"load_with_optimizer(weights_path, build_model) failed: "
                     f"{type(exc).__name__}: {first_line(str(exc), 300).rstrip('.')}.{hint}")
    import keras

    if not isinstance(model, keras.Model):
        return wrong(f"load_with_optimizer returned {type(model).__name__}; return the model "
                     "itself.")
    if getattr(model, "optimizer", None) is None:
        return wrong("The returned model has no optimizer: use the model build_model() returns, "
                     "which is compiled with Adam.")
    compiled_with = next((opt for m, opt in built if m is model), None)
    if compiled_with is None:
        return wrong("load_with_optimizer returned a model that build_model() did not build (a "
                     "model_from_json or clone_model copy?): load into the job's own model, which "
                     "its code built (a copy round-trips only what the config carries, custom "
                     "objects only if registered). A model_from_json copy gets Adam's state only "
                     "because model_from_json compiles from the JSON's config, and that creates a "
                     "built model's optimizer variables: do that step yourself on build_model()'s "
                     "model, before load_weights.")
    skipped = [first_line(str(w.message), 200) for w in caught if "optimizer" in str(w.message)]
    got = int(model.optimizer.iterations)
    gap = max_abs_diff([saved.predict(x[:8], verbose=0)], [model.predict(x[:8], verbose=0)])
    if got > steps:
        return wrong(f"Adam is at step {got}, not the file's {steps}, and predictions differ from "
                     f"the saved model's by {gap:.3g}: load_with_optimizer trained the model "
                     f"({got - steps} step(s)). Return it right after load_weights.")
    if gap != 0.0:
        return wrong(f"The model predicts differently from the saved one (max difference "
                     f"{gap:.3g}): its weights are not the file's. Load them with "
                     "model.load_weights(weights_path).")
    if got == 0 and model.optimizer is not compiled_with:
        return wrong(f"The weights are back (predictions equal), but Adam is a new one at step 0, "
                     f"while the file holds step {steps}: a compile after loading replaced the "
                     "optimizer build_model() created, and with it any state load_weights had "
                     "put there. build_model's model is compiled already; do not compile it "
                     "again.")
    if got == 0 and not model.optimizer.built:
        said = f' Keras warned: "{skipped[0]}"' if skipped else ""
        return wrong(f"The weights are back (predictions equal), but Adam is at step 0 with no "
                     f"slots, while the file holds step {steps}.{said} load_weights skipped the "
                     "optimizer's arrays: Adam has no variables yet (a model compiled from code "
                     "creates them at its first training step), so there was nothing to fill. "
                     "What creates them without training? An optimizer has a method for that, "
                     "given the variables it will train.")
    if got == 0:
        return wrong(f"Adam has its variables, but fresh ones (step 0, not the file's {steps}): "
                     "they were created after load_weights had already skipped the saved arrays. "
                     "Order matters: build the optimizer, then load_weights, then return.")
    slot_gap = max_abs_diff(_values(saved.optimizer.variables), _values(model.optimizer.variables))
    if got != steps or slot_gap != 0.0:
        return wrong(f"Adam is at step {got} (saved: {steps}) and its variables differ from the "
                     f"saved ones by {slot_gap:.3g}: load them from the file, unchanged.")
    before = saved.get_weights()
    xb, yb = _data(4, 16)
    saved.train_on_batch(xb, yb)
    model.train_on_batch(xb, yb)
    step_size = max_abs_diff(before, saved.get_weights())
    step_gap = max_abs_diff(saved.get_weights(), model.get_weights())
    if not step_gap <= STEP_TOLERANCE:
        return wrong(f"The state looked right, but after one more training step the weights are "
                     f"up to {step_gap:.3g} away from the saved model's (the step itself moved "
                     f"them by up to {step_size:.3g}): something else (learning rate? loss?) "
                     "differs.")
    fresh = _build()  # the same weights with a fresh Adam: what plain load_weights gives
    fresh.set_weights(before)
    fresh.train_on_batch(xb, yb)
    fresh_gap = max_abs_diff(saved.get_weights(), fresh.get_weights())
    return correct(f"Your model has the file's weights and Adam at step {steps} with its slots. "
                   f"One more training step on the same batch moves the saved model's weights by "
                   f"up to {step_size:.3g}; after it, yours are {step_gap:.3g} away from the "
                   f"saved model's (max |Δ weight|), while the same weights with a fresh Adam are "
                   f"{fresh_gap:.3g} away: that is what resuming from a plain load_weights would "
                   "cost, in one step. (Section 4's model_from_json copy got Adam's state without "
                   "your build step because model_from_json compiles from the JSON, and "
                   "compile_from_config on a built model builds its optimizer.)")
