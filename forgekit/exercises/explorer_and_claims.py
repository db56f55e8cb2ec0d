"""Checker for lesson 10's exercise: audit one of the article's claims yourself.

The claim, in the course's words (the article says a ``save_weights`` file is usable only after
rebuilding the *identical* architecture): ``load_weights`` refuses any architecture that is not
identical. The learner writes
``my_audit(workdir) -> dict`` in plain Keras: train a small model, ``save_weights`` it into
``workdir``, rebuild it identically (the control), build models whose architecture differs from
it, ``load_weights`` the file into each, and return::

    {"weights": <path of the .weights.h5 file>,
     "original": <the model the file came from>,
     "identical": <a new model built with the same code: the control, which must load>,
     "changed": {label: <a model with a different architecture>, ...},
     "predicted": {label: <bool: you expected load_weights to accept it>, ...},
     "loaded": {"identical": <bool>, label: <bool: load_weights accepted the file>, ...},
     "verdict": "holds", "partly" or "does not hold"}

A refusal is evidence about the architecture only if the same call loads the identical rebuild:
an answer whose loads all fail (a wrong path, an ``except`` that swallows everything) would
otherwise "prove" that every change is refused.

The checker runs the function in a fresh folder, then replays every load itself on a *fresh
copy* of each model (``keras.models.clone_model``: new weights, built from the config), so the
learner's numbers are measured again, not trusted. The verdict must follow from those numbers:
every changed architecture refused is ``holds``, none is ``does not hold``, some is ``partly``.
Changes that all alter a weight's shape cannot settle the claim (a refusal then shows only that
shapes are checked), so at least one change must keep every shape; a change that loads and
predicts the same at inference (an added Dropout) is a different architecture that loaded.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, is_placeholder, wrong

KEYS = ("weights", "original", "identical", "changed", "predicted", "loaded", "verdict")
# Config keys that change how a layer is initialised or trained, not what it computes.
NOT_ARCHITECTURE = {"name", "trainable", "kernel_initializer", "bias_initializer",
                    "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                    "kernel_constraint", "bias_constraint", "seed"}
VERDICTS = ("holds", "partly", "does not hold")


def _architecture(model: Any) -> tuple[list[Any], list[tuple[str, dict[str, Any]]]]:
    """What a model computes: its input shapes, then each layer's class and config without the
    keys that only name, initialise or regularise it (a Dense config omits its input width)."""
    return ([tuple(i.shape) for i in model.inputs],
            [(type(layer).__name__,
              {k: v for k, v in layer.get_config().items() if k not in NOT_ARCHITECTURE})
             for layer in model.layers])


def _shapes(model: Any) -> list[tuple[int, ...]]:
    return [tuple(w.shape) for w in model.weights]


class _Unreplayable(Exception):
    """keras.models.clone_model could not rebuild a model from its config."""


def _replay(model: Any, path: Path, probe: Any, reference: Any) -> dict[str, Any]:
    """Load ``path`` into a fresh copy of ``model``; did it load, its shapes, how far it predicts."""
    import keras
    import numpy as np

    from forgekit.outcome import attempt
    from forgekit.quiet import quiet_absl

    try:
        fresh = keras.models.clone_model(model)
    except Exception as exc:  # a subclassed model has no config to rebuild it from
        raise _Unreplayable(f"{type(exc).__name__}: {exc}") from exc
    with quiet_absl(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns about skipped optimizer variables
        loaded = attempt(fresh.load_weights, path)
    gap = None
    if loaded.ok and probe is not None:
        with contextlib.suppress(Exception):  # a changed input shape cannot take the probe
            gap = float(np.max(np.abs(fresh.predict(probe, verbose=0) - reference)))
    return {"ok": bool(loaded.ok), "error": "" if loaded.ok else loaded.summary,
            "shapes": _shapes(fresh), "gap": gap}


def check_weights_audit(my_audit: Callable[[Path], Any] | None,
                        workdir: str | os.PathLike[str]) -> Feedback:
    """Run ``my_audit`` in a fresh folder under ``workdir``, replay its loads, judge its verdict."""
    import keras
    import numpy as np

    from forgekit.formats.detect import detect_format

    if my_audit is None or my_audit is Ellipsis or is_placeholder(my_audit):
        return NOT_ANSWERED
    if not callable(my_audit):
        return wrong(f"my_audit should be a function taking a folder, got "
                     f"{type(my_audit).__name__}.")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="audit-", dir=workdir))
    try:
        result = my_audit(folder)
    except Exception as exc:  # the learner's code: report what it raised, whole
        return wrong(f"my_audit({folder.name!r}) raised {type(exc).__name__}: {exc}")
    if not isinstance(result, dict) or set(KEYS) - set(result):
        missing = sorted(set(KEYS) - set(result)) if isinstance(result, dict) else list(KEYS)
        return wrong(f"my_audit should return a dict with the keys {list(KEYS)}; "
                     f"missing: {missing}.")
    path = Path(result["weights"])
    if not path.is_file():
        return wrong(f"The weights file {path} does not exist after my_audit ran.")
    if folder.resolve() not in path.resolve().parents:
        return wrong(f"{path} is not inside the folder my_audit was given ({folder}): write it "
                     "there, so each run measures its own file.")
    kind = detect_format(path).kind
    if kind != "weights_h5":
        return wrong(f"{path.name} holds a {kind!r} artifact, not a weights file: the claim is "
                     "about what model.save_weights(path) writes (a path ending .weights.h5).")
    original, changed, loaded = result["original"], result["changed"], result["loaded"]
    if not isinstance(original, keras.Model):
        return wrong(f"'original' should be the Keras model the file came from, got "
                     f"{type(original).__name__}.")
    if not isinstance(changed, dict) or len(changed) < 2 or not all(
            isinstance(m, keras.Model) for m in changed.values()):
        return wrong("'changed' should be a dict of at least two Keras models, each built with "
                     "an architecture different from the original's.")
    if "identical" in changed:
        return wrong("'identical' is the control, not a change: keep it out of 'changed'.")
    if not isinstance(loaded, dict) or set(loaded) != {*changed, "identical"}:
        return wrong(f"'loaded' should say, for 'identical' and each label of 'changed' "
                     f"({sorted(changed)}), whether load_weights accepted the file; it has "
                     f"{sorted(loaded or {})}.")
    identical = result["identical"]
    if not isinstance(identical, keras.Model):
        return wrong(f"'identical' should be a Keras model rebuilt with the original's code, got "
                     f"{type(identical).__name__}.")
    if identical is original:
        return wrong("'identical' is the original model itself, which already holds the "
                     "weights: build a new one with the same code, so the control tests a load.")
    predicted = result["predicted"]
    if not isinstance(predicted, dict) or set(predicted) != set(changed) or not all(
            isinstance(p, bool | np.bool_) for p in predicted.values()):
        return wrong(f"'predicted' should say, for each label of 'changed' ({sorted(changed)}), "
                     "True or False: whether you expect load_weights to accept the file, "
                     "written before you run it.")
    probe = reference = None
    if len(original.inputs) == 1 and None not in tuple(original.inputs[0].shape)[1:]:
        shape = (8, *tuple(original.inputs[0].shape)[1:])
        probe = np.random.default_rng(0).normal(size=shape).astype("float32")
        reference = original.predict(probe, verbose=0)
    try:
        itself = _replay(original, path, probe, reference)
        replays = {label: _replay(m, path, probe, reference) for label, m in changed.items()}
    except _Unreplayable as exc:
        return wrong(f"keras.models.clone_model cannot rebuild one of your models ({exc}), so "
                     "its loads cannot be replayed: build every model as keras.Sequential or "
                     "a functional keras.Model, not a subclass.")
    if not itself["ok"]:
        return wrong(f"{path.name} does not even load into a fresh copy of your original model "
                     f"({itself['error']}): save it with original.save_weights(path).")
    if _architecture(identical) != _architecture(original):
        return wrong("'identical' computes something else than the original (a width, an "
                     "activation or a layer differs): the control must be built with exactly "
                     "the original's code.")
    if not isinstance(loaded["identical"], bool | np.bool_):
        return wrong(f"loaded['identical'] should be True or False, got {loaded['identical']!r}.")
    if not loaded["identical"]:
        return wrong(f"Your control failed: you report that load_weights refused your identical "
                     f"rebuild, yet a fresh copy of it loads {path.name}. The call you measure "
                     "with refuses even the right architecture, so its refusals say nothing "
                     "about architectures: fix it (the path, what the except catches) until "
                     "the identical rebuild loads.")
    if probe is not None:
        gap = float(np.max(np.abs(identical.predict(probe, verbose=0) - reference)))
        if gap > 1e-6:
            return wrong(f"You report the identical rebuild loaded, but it predicts up to "
                         f"{gap:.3g} away from the original: call identical.load_weights(path) "
                         "on it, so the control shows the file really loads.")
    same = [label for label, m in changed.items() if _architecture(m) == _architecture(original)]
    if same:
        return wrong(f"{', '.join(map(repr, same))} computes exactly what the original does (at "
                     "most names, initialisers or regularisers differ): that is the identical "
                     "architecture. Change "
                     "what the model computes: a layer's width, an activation, a layer.")
    for label, seen in replays.items():
        said = loaded[label]
        if not isinstance(said, bool | np.bool_):
            return wrong(f"loaded[{label!r}] should be True or False, got {said!r}.")
        if bool(said) and not seen["ok"]:
            return wrong(f"You report {label!r} loaded, but load_weights into a fresh copy of it "
                         f"raised {seen['error']}. Record whether the call raised (attempt(...)"
                         ".ok, or try/except), not what you expected.")
        if not said and seen["ok"]:
            moved = (f", and the copy then predicts up to {seen['gap']:.3g} away from the "
                     "original" if seen["gap"] else "")
            return wrong(f"You report {label!r} refused, but load_weights into a fresh copy of "
                         f"it accepted the file without an error{moved}. Different predictions "
                         "are not a refusal: the claim is about whether the file loads.")
    kept = [label for label, seen in replays.items() if seen["shapes"] == itself["shapes"]]
    reshaped = [label for label in replays if label not in kept]
    if not kept:
        # every change alters a weight's shape: refusals then show only that shapes are
        # checked, and cannot tell whether a different architecture with the same shapes loads
        return wrong(f"Every change you tried ({', '.join(reshaped)}) alters a weight's shape, so "
                     "its refusal shows only that load_weights checks shapes. The claim is about "
                     "any different architecture: add a change that keeps every weight's shape "
                     "(another activation, a layer without weights) before you judge it.")
    refused = [label for label, seen in replays.items() if not seen["ok"]]
    accepted = [label for label in replays if label not in refused]
    follows = ("holds" if not accepted else "does not hold" if not refused else "partly")
    verdict = result["verdict"]
    if verdict not in VERDICTS:
        return wrong(f"verdict should be one of {list(VERDICTS)}, got {verdict!r}.")
    numbers = (f"{len(refused)} of {len(replays)} changed architectures refused "
               f"({', '.join(refused) or 'none'}), {len(accepted)} loaded "
               f"({', '.join(accepted) or 'none'})")
    if verdict != follows:
        trusted = (" The article's word is not a measurement." if verdict == "holds" else "")
        return wrong(f"Your own numbers: {numbers}. The claim is that only the identical "
                     f"architecture loads, so what follows is {follows!r}, not {verdict!r}."
                     f"{trusted}")
    gaps = [replays[label]["gap"] for label in accepted if replays[label]["gap"] is not None]
    silent = (f"; the accepted ones then predict up to {max(gaps):.3g} away from the original, "
              "without a warning" if gaps and max(gaps) > 0 else "")
    same = [label for label in accepted if replays[label]["gap"] == 0.0]
    if same:  # a Dropout, say: no weights, and at inference it passes its input through
        silent += (f"; {', '.join(same)} predicts exactly like the original at inference (a layer "
                   "without weights that only acts in training, such as Dropout, changes nothing "
                   "there), yet it is a different architecture and it loaded")
    missed = [label for label in replays if predicted[label] != replays[label]["ok"]]
    guessed = (f" Your predictions: {len(replays) - len(missed)} of {len(replays)} right"
               + (f" (wrong for {', '.join(missed)})." if missed else "."))
    untried = ("" if reshaped else " Every change you tried keeps every shape: try one that "
               "changes a shape (a wider layer) to see what load_weights does refuse.")
    said = {"holds": "holds", "partly": "holds only partly", "does not hold": "does not hold"}
    # Keras 3's .weights.h5 stores each layer's variables under a path from its class and its
    # position (layers/dense, layers/dense_1...), not the name you gave it; load_weights checks
    # each layer's variable count and shapes, so a layer without weights is invisible to it.
    why = ("" if follows == "holds" else
           ": Keras 3 matches the file to your model layer by layer, by each layer's class and "
           "position (not the names you gave), and checks each layer's number of variables and "
           "their shapes; an activation is not in the file at all, and a layer without weights "
           "(Dropout) is invisible to it")
    return correct(f"Measured on fresh copies of your models: the identical rebuild loads "
                   f"(the control), {numbers}{silent}. So on this "
                   f"Keras the claim {said[follows]}{why}.{guessed}{untried}")
