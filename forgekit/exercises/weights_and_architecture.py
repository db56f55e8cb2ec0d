"""Checkers for lesson 02 (weights and architecture).

:func:`check_resume` is the lesson's exercise: the learner writes ``resume(weights_path,
build_model)``, the plain Keras calls that bring a ``.weights.h5`` back *with* Adam's state, so
training goes on where it stopped. :func:`check_split_model` checks a model shipped as JSON
architecture + weights file.
"""

from __future__ import annotations

import inspect
import os
import warnings
from pathlib import Path
from typing import Any

from forgekit.errors import ForgekitError
from forgekit.exercises import NOT_ANSWERED, Feedback, correct, is_placeholder, unused_path, wrong
from forgekit.formats.detect import detect_format


def check_split_model(
    my_architecture: str | os.PathLike[str] | None,
    my_weights: str | os.PathLike[str] | None,
    model: Any,
) -> Feedback:
    """Can a colleague rebuild ``model`` from these two files alone?

    The checker does what the colleague would: ``keras.models.model_from_json`` on the
    architecture file, ``load_weights`` of the weights file, then compares predictions with
    ``model`` on fixed inputs.
    """
    if my_architecture is None or my_weights is None:
        return NOT_ANSWERED
    arch, weights = Path(my_architecture), Path(my_weights)
    kinds = {}
    for label, path in (("my_architecture", arch), ("my_weights", weights)):
        try:
            kinds[label] = detect_format(path).kind
        except ForgekitError as exc:
            return wrong(f"{label}: {exc.reason}. Write the file first, then run the check.")
    if kinds["my_architecture"] == "weights_h5" and kinds["my_weights"] == "json_architecture":
        return wrong("The two files are swapped: my_architecture holds weights and my_weights "
                     "holds the JSON architecture.")
    if kinds["my_architecture"] != "json_architecture":
        return wrong(f"my_architecture is {kinds['my_architecture']}, not a JSON model config. "
                     "Write it with open(path, 'w').write(model.to_json()).")
    if kinds["my_weights"] == "keras":
        return wrong("my_weights is a whole .keras model, not a weights file: it works, but it "
                     "ships the architecture twice. Use model.save_weights('name.weights.h5').")
    if kinds["my_weights"] != "weights_h5":
        return wrong(f"my_weights is {kinds['my_weights']}, not a weights file. Use "
                     "model.save_weights('name.weights.h5').")
    if not weights.name.endswith(".weights.h5"):
        return wrong(f"{weights.name} holds Keras 3 weights, but Keras 3's load_weights picks its "
                     "reader from the name and only reads this layout from *.weights.h5.")
    return _rebuild_and_compare(arch, weights, model)


def _rebuild_and_compare(arch: Path, weights: Path, model: Any) -> Feedback:
    import keras

    from forgekit.measure.probe import fixed_inputs, max_abs_diff

    rebuilt = keras.models.model_from_json(arch.read_text(encoding="utf-8"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optimizer state is not part of this exercise
            rebuilt.load_weights(weights)
    except ValueError as exc:
        return wrong("the weights do not fit the architecture "
                     f"({str(exc).splitlines()[0][:160]}). Were both saved from the same model?")
    if rebuilt.count_params() != model.count_params():
        return wrong(f"the architecture has {rebuilt.count_params():,} parameters, your model "
                     f"{model.count_params():,}: the JSON comes from another model.")
    x = fixed_inputs(model, n=8)
    diff = max_abs_diff([model.predict(x, verbose=0)], [rebuilt.predict(x, verbose=0)])
    if diff != 0.0:
        return wrong(f"the rebuilt model answers differently (max difference {diff:.3g}): the "
                     "weights are from another state of the model. Save both from `model` now.")
    return correct(f"model_from_json({arch.name}) + load_weights({weights.name}) rebuilds a model "
                   "whose predictions equal the original's exactly. The JSON can live in git; "
                   "the weights belong in artifact storage.")


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


def check_resume(resume: Any, folder: str | os.PathLike[str] | None = None) -> Feedback:
    """Test ``resume(weights_path, build_model) -> model`` by what training does next.

    The checker trains a model of its own, saves its weights (``save_weights``, so the file holds
    Adam's state), then calls ``resume`` with that file and its own ``build_model``. The returned
    model must be the one ``build_model`` built (not a copy), predict exactly as the saved one,
    have Adam at the same step with the same slots, and one more training step on the same batch must land where the saved model's step lands.
    """
    if resume is None or is_placeholder(resume):
        return NOT_ANSWERED
    if not inspect.isfunction(resume):
        return wrong("resume should be a function: def resume(weights_path, build_model): ...")

    from forgekit.measure.compare import max_abs_diff
    from forgekit.outcome import first_line

    run = unused_path(folder, "resume-")
    run.mkdir(parents=True)
    saved = _build()
    x, y = _data(3, 64)
    saved.fit(x, y, epochs=2, batch_size=16, verbose=0)
    weights = run / "job.weights.h5"
    saved.save_weights(weights)
    steps = int(saved.optimizer.iterations)
    built: list[Any] = []

    def build_model() -> Any:
        built.append(_build())
        return built[-1]

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = resume(weights, build_model)
    except Exception as exc:  # the learner's code: report whatever it raised
        hint = (" keras.models.load_model reads whole-model files; a weights file is loaded into "
                "a model you build, with model.load_weights." if "load_model" in repr(exc)
                or "config" in str(exc).lower() else "")
        return wrong(f"resume(weights_path, build_model) failed: {type(exc).__name__}: "
                     f"{first_line(str(exc), 300).rstrip('.')}.{hint}")
    import keras

    if not isinstance(model, keras.Model):
        return wrong(f"resume returned {type(model).__name__}; return the model itself.")
    if getattr(model, "optimizer", None) is None:
        return wrong("The returned model has no optimizer: use the model build_model() returns, "
                     "which is compiled with Adam.")
    if not any(model is m for m in built):
        return wrong("resume returned a model that build_model() did not build (a model_from_json "
                     "or clone_model copy?): resume the job's own model, which its code built (a "
                     "copy round-trips only what the config carries, custom objects only if "
                     "registered). A model_from_json copy gets Adam's state only because "
                     "model_from_json compiles from the JSON's config, and that creates a built "
                     "model's optimizer variables: do that step yourself on build_model()'s model, "
                     "before load_weights.")
    skipped = [first_line(str(w.message), 200) for w in caught if "optimizer" in str(w.message)]
    got = int(model.optimizer.iterations)
    gap = max_abs_diff([saved.predict(x[:8], verbose=0)], [model.predict(x[:8], verbose=0)])
    if got > steps:
        return wrong(f"Adam is at step {got}, not the file's {steps}, and predictions differ from "
                     f"the saved model's by {gap:.3g}: resume trained the model "
                     f"({got - steps} step(s)). Return it right after load_weights.")
    if gap != 0.0:
        return wrong(f"The model predicts differently from the saved one (max difference "
                     f"{gap:.3g}): its weights are not the file's. Load them with "
                     "model.load_weights(weights_path).")
    if got == 0 and not model.optimizer.built and not skipped:
        return wrong(f"The weights are back (predictions equal), but Adam is a new one at step 0, "
                     f"while the file holds step {steps}, and load_weights did not warn: a compile "
                     "after loading replaced the optimizer and its state. build_model's model is "
                     "compiled already; do not compile it again.")
    if got == 0 and not model.optimizer.built:
        return wrong(f"The weights are back (predictions equal), but Adam is at step 0 with no "
                     f"slots, while the file holds step {steps}. Keras warned: \"{skipped[0]}\" "
                     "load_weights skipped the optimizer's arrays: Adam has no variables yet (a "
                     "model compiled from code creates them at its first training step), so there "
                     "was nothing to fill. What creates them without training? An optimizer has a "
                     "method for that, given the variables it will train.")
    if got == 0:
        return wrong(f"Adam has its variables, but fresh ones (step 0, not the file's {steps}): "
                     "they were created after load_weights had already skipped the saved arrays "
                     "(or a compile after loading replaced the optimizer). Order matters: build "
                     "the optimizer, then load_weights, then return.")
    slot_gap = max_abs_diff(_values(saved.optimizer.variables), _values(model.optimizer.variables))
    if got != steps or slot_gap != 0.0:
        return wrong(f"Adam is at step {got} (saved: {steps}) and its variables differ from the "
                     f"saved ones by {slot_gap:.3g}: load them from the file, unchanged.")
    before = saved.get_weights()
    xb, yb = _data(4, 16)
    saved.train_on_batch(xb, yb)
    model.train_on_batch(xb, yb)
    step_gap = max_abs_diff(saved.get_weights(), model.get_weights())
    if not step_gap <= STEP_TOLERANCE:
        return wrong(f"The state looked right, but one more training step lands {step_gap:.3g} "
                     "away from the saved model's: something else (learning rate? loss?) differs.")
    fresh = _build()  # the same weights with a fresh Adam: what plain load_weights gives
    fresh.set_weights(before)
    fresh.train_on_batch(xb, yb)
    fresh_gap = max_abs_diff(saved.get_weights(), fresh.get_weights())
    landed = "exactly where" if step_gap == 0.0 else f"within {step_gap:.3g} of where"
    return correct(f"Your model has the file's weights and Adam at step {steps} with its slots, "
                   f"and its next training step lands {landed} the saved model's lands. The same "
                   f"weights with a fresh Adam land {fresh_gap:.3g} away after that one step: "
                   "that is what resuming from a plain load_weights would cost.")
