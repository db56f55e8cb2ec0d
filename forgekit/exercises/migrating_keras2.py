"""Checker for lesson 11's exercise: migrate a Keras 2 ``.h5`` to Keras 3 by hand, proven.

The checker does what a colleague would before trusting the file: it reloads your ``.keras`` in
Keras 3, runs the Keras 2 original in a fresh tf-keras process on the same inputs, and compares
the answers. When they differ it looks at the weights, layer by layer, to say why. Your
prediction (will dropping the refused setting change the answers?) is checked against that
comparison.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.errors import ForgekitError
from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong
from forgekit.formats.detect import detect_format

TOLERANCE = 1e-6
PREDICTIONS = ("same", "different")


def check_hand_migration(my_keras3_file: str | os.PathLike[str] | None,
                         keras2_file: str | os.PathLike[str],
                         my_prediction: str | None = None) -> Feedback:
    """Does ``my_keras3_file`` reload in Keras 3 and answer as ``keras2_file`` does in Keras 2,
    and did ``my_prediction`` (``"same"`` or ``"different"``) say so?"""
    if my_keras3_file is None:
        return NOT_ANSWERED
    if not isinstance(my_keras3_file, (str, os.PathLike)):
        return wrong(f"my_scorer is a {type(my_keras3_file).__name__}: set it to the path of the "
                     ".keras file you saved, which is what a colleague would receive.")
    path = Path(my_keras3_file)
    try:
        info = detect_format(path)
    except ForgekitError as exc:
        return wrong(f"{exc.reason}. Save your rebuilt model first: model.save(path).")
    if info.kind != "keras" or path.suffix != ".keras":
        return wrong(f"{path.name} is {info.kind}, not a native .keras file. Keras 3's own format "
                     "is the point of migrating: save with model.save('name.keras').")
    import keras

    from forgekit.keras_io.keras2 import keras2_answers
    from forgekit.measure.compare import max_abs_diff

    try:
        mine = keras.models.load_model(path, compile=False)
    except Exception as exc:  # the learner's file: any failure to reload is the verdict
        return wrong(f"Keras 3 cannot reload your file. Its error, whole:\n"
                     f"{type(exc).__name__}: {exc}")
    keras2 = keras2_answers(keras2_file)  # a fresh tf-keras process loads the original
    xs = keras2["inputs"]
    try:
        got = mine(xs if len(xs) > 1 else xs[0], training=False)
    except Exception as exc:  # another model's inputs: say so instead of a traceback
        return wrong(f"your model does not take {keras2_file!s}'s inputs "
                     f"({[tuple(x.shape) for x in xs]}). Did you save the model rebuilt from it? "
                     f"Keras's error, whole:\n{type(exc).__name__}: {exc}")
    diff = max_abs_diff(keras2["answers"], [keras.ops.convert_to_numpy(t)
                                            for t in keras.tree.flatten(got)])
    if diff > TOLERANCE:
        return wrong(_why(mine, keras2["weights"], diff))
    proven = (f"Your .keras reloads in Keras 3 and answers {len(xs[0])} probe inputs as the "
              f"Keras 2 file does in tf-keras (largest difference {diff:.3g}): every weight, the "
              "recurrent kernels included, went to its own place.")
    why = _time_major_why(keras2_file)
    if str(my_prediction).strip().lower() == "same":
        return correct(f"{proven} You predicted 'same', and the answers are the same. {why}")
    if my_prediction is None or str(my_prediction).strip().lower() not in PREDICTIONS:
        return wrong(f"{proven} Now check your prediction: set my_prediction to 'same' or "
                     f"'different' (you typed {my_prediction!r}); it is compared with this "
                     "measurement.")
    return wrong(f"{proven} Your prediction 'different' is not what happened: the answers are "
                 f"the same. {why}")


def _time_major_why(keras2_file: str | os.PathLike[str]) -> str:
    """Why dropping the GRU's stored ``time_major`` leaves the answers as they were."""
    import json

    import h5py

    with h5py.File(keras2_file, "r") as f:
        config = json.loads(f.attrs["model_config"])
    stored = [layer["config"]["time_major"] for layer in config["config"]["layers"]
              if "time_major" in layer.get("config", {})]
    value = repr(stored[0]) if stored else "nothing"
    return (f"Keras 2 stored time_major={value}: the GRU reads (batch, time, features), the "
            "only layout Keras 3's GRU reads, so the setting changes nothing and dropping it is "
            "safe. Had it stored True, Keras 2 read axis 0 as time: dropping the setting alone "
            "would change the model; you would have to transpose its inputs (and any sequence "
            "output) as well.")


def _why(model: Any, keras2_weights: list[list[Any]], diff: float) -> str:
    """The first layer whose weights are not Keras 2's, and what that means."""
    saved = {(layer, name.split(":")[0].split("/")[-1]): array
             for layer, name, array in keras2_weights}
    for layer in model.layers:
        for w in layer.weights:
            want = saved.get((layer.name, w.path.split("/")[-1]))
            if want is None:
                return (f"layer {layer.name!r} has a weight {w.path} that the Keras 2 model does "
                        "not have: rebuild from the config stored in the .h5, names included.")
            value = w.numpy()
            if value.shape != want.shape:
                return (f"{w.path} has shape {list(value.shape)}, Keras 2's has "
                        f"{list(want.shape)}: the architecture is not the file's. Rebuild it "
                        "from the config stored in the .h5, not by hand.")
            if np.array_equal(value, want):
                continue
            if any(np.array_equal(value, a) for a in saved.values() if a.shape == value.shape):
                return (f"{w.path} holds another weight's values: the arrays went in by position "
                        "to the wrong places. Let model.load_weights read the .h5, or look each "
                        "one up by layer and weight name.")
            return (f"{w.path} is not the Keras 2 value (it looks freshly initialised): "
                    f"the answers differ by {diff:.3g}. Load the Keras 2 weights into the "
                    "rebuilt model (model.load_weights on the .h5) before saving it.")
    return (f"the weights are all Keras 2's, yet the answers differ by {diff:.3g}: a setting of "
            "the architecture changed. Rebuild from the stored config without editing values.")
