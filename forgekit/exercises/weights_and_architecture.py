"""Checker for lesson 02's exercise: ship a model as architecture JSON + weights file."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from forgekit.errors import ForgekitError
from forgekit.exercises import NOT_ANSWERED, Feedback, correct, unused_path, wrong
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


def _trained_model() -> Any:
    """A named classifier, compiled with Adam and trained: the checker's own model (~70k
    parameters, so the weights outweigh the HDF5 headers and the size ratio means something)."""
    import keras
    import numpy as np

    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 12)).astype("float32")
    model = keras.Sequential([keras.Input((12,), name="features"),
                              keras.layers.Dense(256, activation="relu", name="hidden_1"),
                              keras.layers.Dense(256, activation="relu", name="hidden_2"),
                              keras.layers.Dense(4, name="logits")], name="ranker")
    model.compile(optimizer=keras.optimizers.Adam(name="adam"), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, rng.integers(0, 4, 64), epochs=2, batch_size=16, verbose=0)
    return model


def _optimizer_arrays_all_zero(weights: Path) -> bool:
    """True when every non-scalar optimizer array in the file is zero: a fresh, untrained Adam."""
    import h5py
    import numpy as np

    found: list[bool] = []
    with h5py.File(weights, "r") as f:
        if "optimizer" in f:
            f["optimizer"].visititems(lambda _, obj: found.append(not np.any(obj[()]))
                                      if isinstance(obj, h5py.Dataset) and obj.size > 1 else None)
    return bool(found) and all(found)


def check_inference_files(inference_files: Any, folder: str | os.PathLike[str] | None = None
                          ) -> Feedback:
    """Test ``inference_files(model, folder) -> (architecture_path, weights_path)``.

    The checker calls it on a trained, Adam-compiled model of its own, rebuilds the model the way
    a colleague would (``model_from_json`` + ``load_weights``), looks for optimizer arrays in the
    weights file, and checks that the model it passed in still has its optimizer and step count.
    """

    from forgekit.sizes import breakdown

    if inference_files is None:
        return NOT_ANSWERED
    if not callable(inference_files):
        return wrong("inference_files should be a function of (model, folder).")
    run = unused_path(folder, "inference-")
    run.mkdir(parents=True)
    model = _trained_model()
    steps = int(model.optimizer.iterations)
    try:
        returned = inference_files(model, run)
        arch, weights = (Path(p) for p in returned)
    except Exception as exc:  # the learner's code: report whatever it raised
        return wrong(f"inference_files failed: {type(exc).__name__}: {str(exc)[:200]}. It should "
                     "write two files under folder and return (architecture_path, weights_path).")
    split = check_split_model(arch, weights, model)
    if not split.passed:
        return split
    if type(model.optimizer).__name__ != "Adam" or int(model.optimizer.iterations) != steps:
        return wrong("the files are right, but the model you were given lost its optimizer state "
                     f"(now {type(model.optimizer).__name__} at step "
                     f"{int(model.optimizer.iterations)}, was Adam at step {steps}): training "
                     "goes on with that model. Leave it as it was; work on another object.")
    parts = breakdown(weights)
    if parts.optimizer and _optimizer_arrays_all_zero(weights):
        return wrong(f"{weights.name} holds {parts.optimizer:,} bytes of optimizer arrays, all "
                     "zero: a fresh Adam at step 0. clone_model and model_from_json both compile "
                     "the copy again (the JSON carries the compile config), so the copy has its own "
                     "new, empty slots. A model that was never compiled has none.")
    if parts.optimizer:
        return wrong(f"{weights.name} still holds {parts.optimizer:,} bytes of the trained Adam's "
                     "arrays: save_weights writes the optimizer of the model it is called on. "
                     "Save from a model that has no optimizer, with these weights set into it.")
    full = run / "_with_optimizer.weights.h5"
    model.save_weights(full)
    ratio = full.stat().st_size / weights.stat().st_size
    return correct(f"model_from_json + load_weights rebuilds the model exactly from your files; "
                   f"{weights.name} holds {parts.weights:,} bytes of weights and no optimizer "
                   f"arrays, and the same model's save_weights file with Adam's state is "
                   f"{ratio:.2f}x larger. The model you were given still has Adam at step {steps}.")
