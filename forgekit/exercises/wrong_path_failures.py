"""Checker for lesson 05's exercise: write the plain load call for a file whose class was renamed.

The learner writes ``load(path)``. The file was saved by the old code, whose ``Scale`` layer was
registered as ``"forgekit>Scale"``; the new code (:mod:`forgekit.zoo.renamed`) calls it
``Rescale`` and the old modules are gone. The checker ships the function to a fresh process in
which importing the old modules fails, watches which keyword arguments it passes to
``keras.saving.load_model``, calls it, and compares the loaded model's predictions with the
model that wrote the file.
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, is_placeholder, shippable, wrong

GONE = ("forgekit.zoo.registered", "forgekit.zoo.moved")  # the old code, deleted by the rename
SAVED_NAME = "forgekit>Scale"
NEW_CLASS = "forgekit.zoo.renamed.Rescale"  # the only custom class the new code has
OLD_COPY = "forgekit.zoo.unregistered.Scale"  # the copy lesson 05's kernel imported
TOLERANCE = 1e-6
_MARK = "@@forgekit-load@@"

# Written once per folder by a fresh process, so the checking kernel never registers the old class.
# Seeded initial weights are enough: the exercise is about the load call, not the training.
_WRITE = '''
import sys
import keras, numpy as np
from forgekit.zoo.registered import Scale  # the old code
keras.utils.set_random_seed(0)
x = np.random.default_rng(1).normal(size=(32, 4)).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(1), Scale(2.5)], name="old_code_model")
folder = sys.argv[1]
model.save(f"{folder}/saved_before_rename.keras")
np.save(f"{folder}/x.npy", x)
np.save(f"{folder}/expected.npy", model.predict(x, verbose=0))
'''

_CHILD = '''
import importlib, importlib.abc, json, pickle, sys, traceback
MARK, GONE = sys.argv[2], sys.argv[3].split(",")


class Gone(importlib.abc.MetaPathFinder):  # the rename deleted the old modules
    def find_spec(self, name, path=None, target=None):
        if name in GONE:
            raise ImportError(f"No module named {name!r}: it was deleted when Scale became Rescale")


sys.meta_path.insert(0, Gone())
import keras, numpy as np
from forgekit.exercises import revive
real, calls = keras.saving.load_model, []


def recorded(*args, **kwargs):  # the learner's call, as Keras receives it
    calls.append({key: repr(value) for key, value in kwargs.items()})
    return real(*args, **kwargs)


for module in (keras.saving, keras.models, sys.modules[real.__module__]):
    module.load_model = recorded
spec = pickle.loads(open(sys.argv[1], "rb").read())
for answer in spec["answers"]:
    calls.clear()
    report = {}
    try:
        load = revive(answer, "load")
        model = load(spec["path"])
        report["type"] = f"{type(model).__module__}.{type(model).__qualname__}"
        report["is_model"] = isinstance(model, keras.Model)
        if report["is_model"]:  # the custom classes Keras built (keras's own left out)
            report["built"] = sorted({f"{type(layer).__module__}.{type(layer).__qualname__}"
                                      for layer in model.layers
                                      if not type(layer).__module__.startswith("keras")})
        if report["is_model"]:
            x = np.load(spec["x"])
            report["diff"] = float(np.max(np.abs(model.predict(x, verbose=0) - np.load(spec["expected"]))))
    except Exception as exc:
        report.update(error_type=type(exc).__name__, message=str(exc),
                      trace=traceback.format_exc())
    report["calls"] = list(calls)
    print(MARK + json.dumps(report), flush=True)
'''


def exercise_file(folder: str | os.PathLike[str]) -> Path:
    """The file the old code saved before the rename (``folder/saved_before_rename.keras``),
    written in a fresh process once."""
    folder = Path(folder)
    path = folder / "saved_before_rename.keras"
    if not path.exists():
        from forgekit.quiet import child_env

        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-c", _WRITE, os.fspath(folder)], env=child_env(),
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not path.exists():
            raise RuntimeError(f"could not write the exercise file in {folder}: {done.stderr[-500:]}")
    return path


def _verdict(report: dict[str, Any]) -> Feedback:
    calls = report.get("calls", [])
    # The cause is on the message's last line, between "Exception encountered:" and the failing
    # layer's config (the lines above hold the whole model's config)
    last = (report.get("message", "").strip().splitlines() or [""])[-1]
    last = last.removeprefix("Exception encountered: ").split(" Full object config")[0]
    said = f"{report.get('error_type')}: {last}"
    trace = report.get("trace", "")
    if "error_type" in report:
        if report["error_type"] == "ImportError" and any(m in report["message"] for m in GONE):
            return wrong("Your function imports the old code, and in this scenario it is gone "
                         f"(the fresh process said: {said}). Only forgekit.zoo.renamed exists: "
                         "point the name the file asks for at the new class.")
        if report["error_type"] == "NameError":
            return wrong(f"The fresh process raised {said}. Your function runs in a new Python "
                         "process: import what it uses (at the top of the cell or inside it).")
        if "tfsm_layer" in trace or "TFSMLayer" in trace:
            return wrong("keras.layers.TFSMLayer wraps a SavedModel folder (what model.export "
                         "writes) for inference; this is a .keras file, a zip archive that "
                         "keras.saving.load_model reads whole, layers and all. The fresh process "
                         f"said: {said}")
        if not calls and ("saved_model" in trace or "SavedModel" in report["message"]):
            return wrong("tf.saved_model.load reads a SavedModel folder, and a .keras file is not "
                         "one (it is a zip with config.json and the weights): use "
                         f"keras.saving.load_model. The fresh process said: {said}")
        if calls and "Could not locate" in report["message"]:
            given = calls[-1].get("custom_objects")
            passed = f"custom_objects={given}" if given else "no custom_objects"
            return wrong("Keras still cannot find the class the file names, and your call "
                         f"passed {passed}. A custom_objects key must be the name saved in the "
                         "file, its value the class to build now: read the layer's "
                         "registered_name in the file's config.json (section 1 shows how). "
                         f"The fresh process said: {said}")
        if calls and "deserializ" in report["message"]:
            return wrong(f"Keras found a class for {SAVED_NAME!r}, but not one it can rebuild "
                         "from the saved config (the layer's arguments, e.g. factor): map the "
                         f"saved name to the class that replaced Scale. The fresh process said: "
                         f"{said}")
        return wrong(f"The fresh process raised {said}")
    diff = float(report.get("diff", float("inf")))
    if not calls and report.get("is_model") and diff <= TOLERANCE:
        return wrong(f"It works (max difference {diff:.3g}), but without keras.saving.load_model: "
                     "your code restates the architecture, and must follow every change to it. "
                     f"The file already stores it, and names the class as {SAVED_NAME!r}: map "
                     "that saved name to the new class and keras.saving.load_model rebuilds the "
                     "model for you.")
    if not calls:
        return wrong(f"Your function returned a {report.get('type')} without calling "
                     "keras.saving.load_model: load the file with it and return the model.")
    if not report.get("is_model"):
        return wrong(f"Your function returned a {report.get('type')}, not the loaded Keras "
                     "model: return what keras.saving.load_model gives back.")
    if any(call.get("safe_mode") == "False" for call in calls):
        return wrong("It loads, but with safe_mode=False, which this file does not need (it holds "
                     "no Lambda layer): that switch lets any file you load run the Python code it "
                     "carries. Remove it; the rename is fixed by naming the class, not by "
                     "switching checks off.")
    built = report.get("built", [])
    # The new code's class, not a look-alike: it is the class the code saves from now on, so
    # files saved before and after the rename load into the same class.
    use_new = ("Map the saved name to the new code's Rescale (forgekit.zoo.renamed): it is the "
               "class the code saves from now on, so old and new files load into one class.")
    if built != [NEW_CLASS]:
        if built == [OLD_COPY]:
            return wrong(f"It loads, but Keras built {OLD_COPY} for {SAVED_NAME!r}: that is the "
                         f"old class (the unregistered copy this lesson imported). {use_new}")
        return wrong(f"It loads, but Keras built {', '.join(built) or 'no custom class'} for "
                     f"{SAVED_NAME!r}, not the new code's {NEW_CLASS}. {use_new}")
    if diff > TOLERANCE:
        return wrong(f"It loads, but its predictions differ from the old model's by up to "
                     f"{diff:.3g}: the class you gave for {SAVED_NAME!r} does not compute what "
                     "Scale did.")
    return correct(f"A fresh process without the old code loaded the file through "
                   f"keras.saving.load_model and reproduced the old model's predictions (max "
                   f"difference {diff:.3g}). The file names {SAVED_NAME!r}; mapping that saved "
                   "name to the new class (custom_objects, or registering Rescale under the old "
                   "name) is how a rename stays compatible with files already saved.")


def check_loads(loads: Sequence[Any], folder: str | os.PathLike[str],
                timeout: float = 180.0) -> list[Feedback]:
    """Judge several ``load(path)`` answers in ONE fresh process (in order); one verdict each."""
    verdicts: list[Feedback | None] = []
    answers = []
    for load in loads:
        if load is None or is_placeholder(load):
            verdicts.append(NOT_ANSWERED)
        elif not inspect.isfunction(load):
            verdicts.append(wrong("load should be a function: def load(path): ... return model"))
        else:
            shipped, reason = shippable(load, "load")
            verdicts.append(wrong(reason) if reason else None)
            if shipped:
                answers.append(shipped)
    if answers:
        from forgekit.quiet import child_env

        path, folder = exercise_file(folder), Path(folder)  # written only when an answer runs
        spec = folder / "answers.pkl"
        spec.write_bytes(pickle.dumps({"answers": answers, "path": path, "x": folder / "x.npy",
                                       "expected": folder / "expected.npy"}))
        try:
            done = subprocess.run([sys.executable, "-c", _CHILD, os.fspath(spec), _MARK,
                                   ",".join(GONE)], env=child_env(), capture_output=True,
                                  text=True, timeout=timeout)
            out, err = done.stdout, done.stderr
        except subprocess.TimeoutExpired:
            out, err = "", f"no answer within {timeout:g} s; the process was killed"
        reports = [json.loads(line[len(_MARK):]) for line in out.splitlines()
                   if line.startswith(_MARK)]
        crashed = wrong("The fresh process ended before your function returned: "
                        + "\n".join(err.strip().splitlines()[-4:]))
        pending = iter(reports)  # one report per shipped answer, in order
        verdicts = [v if v is not None else _verdict(r) if (r := next(pending, None)) else crashed
                    for v in verdicts]
    return [v for v in verdicts if v is not None]


def check_load(load: Any, folder: str | os.PathLike[str]) -> Feedback:
    """Run the learner's ``load(path)`` on the renamed-class file in a fresh process; say why not.

    Correct when, with only :mod:`forgekit.zoo.renamed` importable, ``load`` returns a Keras
    model from ``keras.saving.load_model`` (without ``safe_mode=False``) whose predictions match
    the model that saved the file.
    """
    return check_loads([load], folder)[0]
