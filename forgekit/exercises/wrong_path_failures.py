"""Checker for lesson 05's exercise: load a file whose custom class was renamed after saving."""

from __future__ import annotations

import os

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong

_OLD_CODE = ("forgekit.zoo.registered", "forgekit.zoo.moved")


def check_renamed_fix(my_code: str | None, path: str | os.PathLike[str],
                      inputs: str | os.PathLike[str], reference: str | os.PathLike[str],
                      tolerance: float = 1e-6) -> Feedback:
    """Run ``my_code`` in a fresh process that knows only the renamed class; did it load ``path``?

    The process starts with ``path`` defined; ``my_code`` must bind ``model``. The model's
    predictions on ``inputs`` must match ``reference`` (saved by the original model).
    """
    if my_code is None:
        return NOT_ANSWERED
    if any(module in my_code for module in _OLD_CODE):
        return wrong("Your code imports the module that still registers the old name. In this "
                     "scenario the old code is gone: only forgekit.zoo.renamed exists. Make the "
                     "saved name point to the new class instead.")
    if "safe_mode=False" in my_code:
        return wrong("safe_mode=False is not the problem here and lets a file run code: the file "
                     "has no Lambda layer. Remove it and map the saved class name instead.")
    from forgekit.keras_io.custom_objects import scan_file
    from forgekit.measure.fresh import load_snippet, run_fresh

    saved = [obj.name for obj in scan_file(path).custom_objects if obj.certain]
    snippet = f"path = {os.fspath(path)!r}\n" + load_snippet(
        "model", setup=my_code, inputs=inputs, reference=reference)
    outcome = run_fresh(snippet)
    if not outcome.ok:
        if outcome.error_type == "NameError" and "'model'" in outcome.message:
            return wrong("Your code must assign the loaded model to `model`.")
        if outcome.error_type in ("TypeError", "ValueError") and (
                "locate" in outcome.message or "deserialized" in outcome.message):
            return wrong(f"Keras still cannot find a class the file names. config.json asks for "
                         f"{', '.join(map(repr, saved))}: custom_objects keys must be those saved "
                         f"names, not the new class name. The fresh process said: {outcome}")
        return wrong(f"The fresh process raised {outcome.error_type}: {outcome.message}")
    diff = float(outcome.value)
    if diff > tolerance:
        return wrong(f"It loads, but predictions differ from the original by up to {diff:.3g}: "
                     "the class you mapped to the saved name does not compute the same thing.")
    return correct(f"A fresh process with only the new code loaded the file (saved names "
                   f"{', '.join(map(repr, saved))}) and reproduced the predictions (max "
                   f"difference {diff:.3g}). Mapping old names in custom_objects is how a "
                   "rename stays compatible with files already saved.")
