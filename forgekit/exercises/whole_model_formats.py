"""Checker for lesson 01's exercise: write the artifact a TF Serving deployment needs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.errors import ForgekitError
from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong
from forgekit.formats.detect import detect_format


def check_serving_artifact(
    my_artifact: str | os.PathLike[str] | None, model: Any = None
) -> Feedback:
    """Is ``my_artifact`` a SavedModel in a numeric version folder that serves ``model``?

    TF Serving watches a base folder and loads numeric version subfolders, each a SavedModel
    with a ``serving_default`` signature. With ``model`` given, the checker also calls that
    signature on fixed inputs and compares with ``model.predict``.
    """
    if my_artifact is None:
        return NOT_ANSWERED
    path = Path(my_artifact)
    try:
        info = detect_format(path)
    except ForgekitError as exc:
        return wrong(f"forgekit could not read it: {exc.reason}. Write it with "
                     "model.export(path) and point my_artifact at that folder.")
    if info.kind == "serving_base":
        return wrong(f"{path.name}/ is the base folder that holds versions "
                     f"{info.details['versions']}; my_artifact should be one version folder "
                     f"inside it, e.g. {path / '1'}.")
    if info.kind == "keras":
        return wrong(f"{path.name} is a native .keras zip. Keras reads it, TF Serving does not: "
                     "serving needs a SavedModel folder, written by model.export(path).")
    if info.kind == "h5_model":
        return wrong(f"{path.name} is legacy HDF5: no graph and no signatures, so TF Serving "
                     "cannot load it. Use model.export(path).")
    if info.kind != "savedmodel":
        return wrong(f"{path.name} is {info.kind}, not a SavedModel. TF Serving loads only "
                     "SavedModel folders: model.export(path).")
    if "serving_default" not in info.signatures:
        return wrong(f"this SavedModel has the signatures {info.signatures} but no "
                     "'serving_default', which TF Serving calls when a request names none.")
    if not path.resolve().name.isdigit():
        return wrong(f"the SavedModel is right, but it sits in {path.name}/. TF Serving only "
                     "loads numeric version folders under the model's base path: export to "
                     f"{path / '1'} (or any number) instead.")
    if model is not None:
        difference = _serving_difference(path, model)
        if difference is None:
            return wrong("the SavedModel's inputs do not match this model's: was it exported "
                         "from another model?")
        if difference > 1e-5:
            return wrong(f"its answers differ from model.predict by up to {difference:.3g}: "
                         "export the trained model you have now.")
    return correct(f"{path} is a SavedModel with a serving_default signature in version folder "
                   f"{path.resolve().name}: point TF Serving's --model_base_path at "
                   f"{path.resolve().parent} and it will serve it.")


def _serving_difference(path: Path, model: Any) -> float | None:
    import tensorflow as tf

    from forgekit.measure.probe import fixed_inputs, max_abs_diff

    x = fixed_inputs(model, n=8)
    serving = tf.saved_model.load(os.fspath(path)).signatures["serving_default"]
    try:
        outputs = serving(tf.constant(x))
    except (TypeError, ValueError):
        return None
    (output,) = outputs.values()
    return max_abs_diff([model.predict(x, verbose=0)], [np.asarray(output)])
