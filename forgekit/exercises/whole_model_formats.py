"""Checker for lesson 01's exercise: a legacy ``.h5`` an old service reloads, that harms nothing.

``check_write_h5`` tests the learner's ``write_h5(model, path)`` by behaviour, on a model of its
own compiled the way tutorials do (Adam, ``loss="mse"``: the legacy H5 reader cannot resolve a
short loss alias): the old consumer reloads the file with plain ``keras.models.load_model(path)``
in a fresh Python process and predicts (Trap 1), and the caller, who goes on using ``model``,
saves it as ``.keras`` afterwards and reloads it (Trap 2); a writer that recompiles the caller's
model (another loss, other metrics, or the same ones compiled again) is refused even when it puts
the optimizer back: ``compile`` builds new metric objects, so ``model.metrics`` changes.
"""

from __future__ import annotations

import copy
import os
import re
import warnings
from typing import Any

import numpy as np

from forgekit.errors import ForgekitError
from forgekit.exercises import NOT_ANSWERED, Feedback, correct, is_placeholder, unused_path, wrong
from forgekit.formats.detect import detect_format


def _tutorial_model() -> Any:
    """A small model compiled the way most tutorials do, trained a few steps."""
    import keras

    rng = np.random.default_rng(11)
    x = rng.normal(size=(64, 6)).astype("float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(12, activation="relu"),
                              keras.layers.Dense(2)], name="legacy_consumer")
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit(x, x[:, :2], epochs=2, batch_size=16, verbose=0)
    return model


def _trap1(error: str) -> str:
    """Why the old service's reload failed, naming the short alias the legacy reader tripped on."""
    found = re.search(r"keras\.metrics\.(\w+)", error)
    if found is None:
        return ("The file stores a training config the legacy reader cannot rebuild. A service "
                "that only predicts needs no optimizer or training config in it.")
    alias = found.group(1)
    return (f"That is Trap 1: the file stores the training config, and the legacy reader looks "
            f"its short loss alias {alias!r} up as keras.metrics.{alias}, which it cannot "
            "rebuild. A service that only predicts needs no optimizer or training config in it.")


def check_write_h5(write_h5: Any, folder: str | os.PathLike[str] | None = None) -> Feedback:
    """Test ``write_h5(model, path)``: an ``.h5`` that plain ``load_model`` reloads, with the
    same predictions, after which ``model`` still saves a ``.keras`` that resumes its Adam."""
    import keras

    from forgekit.measure.compare import fixed_inputs, max_abs_diff
    from forgekit.measure.fresh import run_fresh

    if write_h5 is None or is_placeholder(write_h5):
        return NOT_ANSWERED
    if not callable(write_h5):
        return wrong(f"write_h5 should be a function of (model, path), got {type(write_h5).__name__}.")
    run = unused_path(folder, "h5-")
    run.mkdir(parents=True)
    model, h5_path = _tutorial_model(), run / "for_the_old_service.h5"
    adam, steps = model.optimizer, int(model.optimizer.iterations)
    adam_state = [v.numpy() for v in adam.variables]
    compiled_as = copy.deepcopy(model.get_compile_config())
    trackers = list(model.metrics)  # compile() replaces these objects, whatever it is given
    try:
        write_h5(model, h5_path)
    except Exception as exc:  # the learner's code: report whatever it raised
        return wrong(f"write_h5 raised {type(exc).__name__}: {exc}")
    try:
        kind = detect_format(h5_path).kind
    except ForgekitError as exc:
        return wrong(f"nothing readable at {h5_path.name}: {exc.reason}. Write the file at `path`.")
    if kind != "h5_model":
        return wrong(f"{h5_path.name} is {kind}, not a legacy whole-model HDF5 file: the old "
                     "service calls load_model on it, so write it with model.save(path, ...).")
    x = fixed_inputs(model, n=8)
    np.save(run / "inputs.npy", x)
    old_service = run_fresh(f"""
        import keras, numpy as np
        model = keras.models.load_model({os.fspath(h5_path)!r})  # the old service's one call
        result = model.predict(np.load({os.fspath(run / "inputs.npy")!r}), verbose=0).tolist()
    """)
    if not old_service.ok:
        return wrong(f"the old service's keras.models.load_model(path), in a fresh process, fails: "
                     f"{old_service.error_type}: {old_service.message}. {_trap1(old_service.message)}")
    diff = max_abs_diff([model.predict(x, verbose=0)], [np.asarray(old_service.value, "float32")])
    if diff > 1e-5:  # a fresh process may pick other CPU kernels: not bit for bit
        return wrong(f"the .h5 reloads, but its predictions differ from the model's by up to "
                     f"{diff:.3g}: write the weights of the model you were given.")
    if "optimizer" not in model.get_compile_config():
        return wrong("the .h5 reloads, but your write_h5 removed the optimizer from the caller's "
                     "model (model.get_compile_config() no longer has it). That is Trap 2: every "
                     ".keras saved from this model afterwards reloads without its Adam.")
    if model.optimizer is not adam:
        return wrong(f"the .h5 reloads, but your write_h5 gave the caller's model a new "
                     f"{type(model.optimizer).__name__}, its moments at zero: "
                     "compile(optimizer='adam') builds a new Adam at step 0; pass model.optimizer "
                     "or leave model alone.")
    keras_path = run / "after.keras"
    model.save(keras_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        later = keras.models.load_model(keras_path)
    if type(later.optimizer) is not type(model.optimizer) or int(later.optimizer.iterations) != steps:
        return wrong(f"after write_h5, the caller's next .keras reloads with "
                     f"{type(later.optimizer).__name__} at step {int(later.optimizer.iterations)}, "
                     f"not Adam at step {steps}: your call changed the model in memory.")
    if max_abs_diff(adam_state, [v.numpy() for v in later.optimizer.variables]) != 0.0:
        return wrong("the caller's next .keras reloads Adam at the right step, but not the Adam "
                     "state the model had: your call replaced the optimizer's moments.")
    now = model.get_compile_config()  # the optimizer was judged above: the rest must not move
    changed = sorted(k for k in set(compiled_as) | set(now)
                     if k != "optimizer" and compiled_as.get(k) != now.get(k))
    if changed:
        key = changed[0]
        return wrong(f"the .h5 reloads and Adam survives, but your write_h5 recompiled the caller's "
                     f"model: its compile config's {key!r} was {compiled_as.get(key)!r} and is now "
                     f"{now.get(key)!r}. The pipeline goes on training with what it compiled: "
                     "compile a copy, or leave model alone.")
    if len(trackers) != len(model.metrics) or any(a is not b for a, b in zip(trackers, model.metrics, strict=True)):
        return wrong("the .h5 reloads and Adam survives, but your write_h5 recompiled the caller's "
                     "model (model.metrics are new objects, their running totals reset), even if "
                     "with the same settings. The pipeline goes on training with what it "
                     "compiled: compile a copy, or leave model alone.")
    return correct(f"the old service's plain load_model, in a fresh process, reads {h5_path.name} "
                   f"with the same predictions (max difference {diff}), and the model you were "
                   f"given still saves a .keras that reloads with Adam at step {steps} of {steps}, "
                   "its moments intact.")

