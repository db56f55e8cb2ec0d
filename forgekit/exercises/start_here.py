"""Checkers for lesson 00: a typed prediction, and a function that saves a model for later.

``check_guess`` compares what the learner typed before a reveal with what the cell measured
(later lessons use it too). ``check_keep`` tests the learner's ``keep(model, folder)`` by its
behaviour: it hands it a model the learner has never seen, into a folder that does not exist
yet, reloads whatever comes back with ``keras.models.load_model`` and compares predictions,
optimizer (class, step count and every optimizer variable) with the original.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from forgekit.exercises import (
    NOT_ANSWERED,
    Feedback,
    correct,
    is_placeholder,
    unused_path,
    wrong,
)


def _stranger() -> Any:
    """A small trained model the learner's function has never seen (not the lesson's model)."""
    import keras
    import numpy as np

    rng = np.random.default_rng(7)
    x = rng.normal(size=(48, 5)).astype("float32")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="tanh"),
                              keras.layers.Dense(3)], name="stranger")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    model.fit(x, x[:, :3] * 2.0, epochs=2, batch_size=16, verbose=0)
    return model


def _why_not_a_model_file(path: Path) -> str | None:
    """Why ``load_model`` will not give this artifact back as a model, or None if it might."""
    from forgekit.errors import ForgekitError
    from forgekit.formats.detect import detect_format

    try:
        kind = detect_format(path).kind
    except ForgekitError as exc:
        return f"forgekit cannot read {path.name}: {exc.reason}."
    reasons = {
        "savedmodel": "it is a SavedModel folder (model.export): a serving artifact with no Keras "
                      "architecture and no optimizer, which load_model refuses (lesson 01).",
        "weights_h5": "it holds weights only, no architecture: load_model cannot rebuild a model "
                      "from it (lesson 02).",
    }
    return reasons.get(kind)


def check_keep(keep: Any, folder: str | os.PathLike[str] | None = None) -> Feedback:
    """Test ``keep(model, folder) -> path``: one file that ``load_model`` restores in full.

    The checker calls ``keep`` on a model of its own, with a folder that does not exist yet
    (under ``folder`` if given, else a temporary one), then reloads the returned path.
    """
    import keras
    import numpy as np

    from forgekit.measure.compare import fixed_inputs, max_abs_diff

    if keep is None or is_placeholder(keep):
        return NOT_ANSWERED
    if not callable(keep):
        return wrong(f"keep should be a function taking (model, folder), got {type(keep).__name__}.")
    target = unused_path(folder, "keep-", stem="not_created_yet")
    target.parent.mkdir(parents=True, exist_ok=True)
    model = _stranger()
    # recorded before keep runs: a keep that recompiles would otherwise reset the reference
    trained, saved = type(model.optimizer), int(model.optimizer.iterations)
    state = [v.numpy() for v in model.optimizer.variables]
    try:
        returned = keep(model, target)
    except FileNotFoundError as exc:
        return wrong(f"keep raised FileNotFoundError ({exc}): model.save "
                     "does not create missing folders.")
    except Exception as exc:  # the learner's code: report whatever it raised
        return wrong(f"keep raised {type(exc).__name__}: {exc}")
    if returned is None:
        return wrong("keep returned None: return the path of the file you saved, so the caller "
                     "knows what to load.")
    path = Path(returned)
    if not path.exists():
        return wrong(f"keep returned {path}, but nothing is there: return the path you saved to.")
    if path.is_dir() and path.resolve() == target.resolve():
        return wrong(f"keep returned {path}: you returned the folder; return the path of the "
                     ".keras file inside it.")
    if target.resolve() not in (path.resolve(), *path.resolve().parents):
        return wrong(f"keep wrote {path}, outside the folder it was given ({target}): save under "
                     "folder, so each caller chooses where files go.")
    problem = _why_not_a_model_file(path)
    if problem:
        return wrong(f"keras.models.load_model({path.name!r}) will not restore the model: {problem}")
    try:
        reloaded = keras.models.load_model(path)
    except Exception as exc:  # shown whole: the load itself says what is wrong with the file
        legacy = " (legacy HDF5: lesson 01 shows what it loses)" if path.suffix == ".h5" else ""
        return wrong(f"keras.models.load_model({path.name!r}) failed{legacy}: "
                     f"{type(exc).__name__}: {exc}")
    x = fixed_inputs(model, n=8)
    try:
        diff = max_abs_diff([model.predict(x, verbose=0)], [reloaded.predict(x, verbose=0)])
    except ValueError:  # another model's input shape
        diff = float("inf")
    if reloaded.name != model.name or diff != 0.0:
        return wrong(f"the reloaded model is {reloaded.name!r} and its predictions differ from "
                     f"the model keep was given by up to {diff:.3g}: save the `model` argument, "
                     "not a global from the lesson.")
    if getattr(reloaded, "optimizer", None) is None:  # saved from an uncompiled copy
        return wrong("the predictions match, but the model came back without an optimizer: "
                     "save the compiled `model` itself, so training can continue.")
    steps = int(reloaded.optimizer.iterations)
    if type(reloaded.optimizer) is not trained or steps != saved:
        return wrong(f"the predictions match, but the optimizer came back as "
                     f"{type(reloaded.optimizer).__name__} at step {steps} (trained: "
                     f"{trained.__name__} at step {saved}): training would not continue where "
                     "it stopped. Save the model as it was given, without compiling it again.")
    restored = reloaded.optimizer.variables
    same = sum(np.array_equal(a, b.numpy()) for a, b in zip(state, restored, strict=False))
    if len(restored) != len(state) or same != len(state):
        return wrong(f"the predictions and step count match, but only {same} of "
                     f"{len(state)} optimizer variables came back equal: "
                     "training would not continue from the same state. Save the model as it was "
                     "given.")
    return correct(f"keep wrote {path.name} into a folder that did not exist, and load_model "
                   f"gave back a model of the same name, with exactly the same predictions and "
                   f"its {trained.__name__} at step {saved} of {saved} ({same} optimizer variables "
                   "compared, all equal).")
