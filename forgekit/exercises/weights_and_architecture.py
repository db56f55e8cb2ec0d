"""Checker for lesson 02's exercise: ship a model as architecture JSON + weights file."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from forgekit.errors import ForgekitError
from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong
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


def check_inference_files(
    my_architecture: str | os.PathLike[str] | None,
    my_weights: str | os.PathLike[str] | None,
    my_ratio: Any,
    model: Any,
    full_weights: str | os.PathLike[str],
) -> Feedback:
    """Architecture JSON + a weights file *without optimizer state*, and the measured size ratio.

    ``my_ratio`` must be the size of ``full_weights`` (a weights file with optimizer state)
    divided by the size of ``my_weights``, within 2%.
    """
    if my_architecture is None or my_weights is None or my_ratio is None:
        return NOT_ANSWERED
    split = check_split_model(my_architecture, my_weights, model)
    if not split.passed:
        return split
    from forgekit.sizes import breakdown

    parts = breakdown(my_weights)
    if parts.optimizer:
        return wrong(f"{Path(my_weights).name} still holds {parts.optimizer:,} bytes of optimizer "
                     "arrays: save_weights writes the optimizer of the model it is called on. "
                     "Save from a model that has no optimizer (built from the architecture, never "
                     "compiled), with `model`'s weights set into it.")
    try:
        ratio = float(my_ratio)
    except (TypeError, ValueError):
        return wrong(f"my_ratio should be a number, got {my_ratio!r}.")
    measured = Path(full_weights).stat().st_size / Path(my_weights).stat().st_size
    if abs(ratio - measured) > 0.02 * measured:
        return wrong(f"my_ratio = {ratio:.3g} is not what the two files say. Measure it: "
                     "Path(...).stat().st_size of each file, the one with optimizer state divided "
                     "by yours.")
    return correct(f"Your weights file holds the weights and no optimizer arrays "
                   f"({parts.weights:,} bytes of weights, {parts.overhead:,} of structure); the "
                   f"file with Adam's state is {measured:.2f}x larger, because Adam keeps two "
                   "values per weight. The architecture JSON plus this file rebuilds the model's "
                   "predictions exactly.")
