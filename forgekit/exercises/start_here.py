"""Checker for lesson 00's exercise: which of three files brings the optimizer's step count back?

The learner saves one model three ways (``.keras``, legacy ``.h5``, ``.weights.h5``), predicts
which files restore ``optimizer.iterations``, and the checker measures it by reloading each file
the way that format is read. The verdict says, file by file, what the reload really gave.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong
from forgekit.outcome import first_line

SUFFIXES = (".keras", ".h5", ".weights.h5")


def _suffix(path: Path) -> str:
    return ".weights.h5" if path.name.endswith(".weights.h5") else path.suffix


def _restored_steps(path: Path, model: Any) -> tuple[int | None, str]:
    """Reload ``path`` the way its format is read; return (steps restored or None, how)."""
    import keras

    kind = _suffix(path)
    if kind == ".weights.h5":
        # Weights go into the same architecture, compiled, with the optimizer's variables built
        # (an unbuilt optimizer skips the saved ones; lesson 02 shows that warning).
        fresh = keras.models.clone_model(model)
        fresh.compile(optimizer=type(model.optimizer)(), loss=model.loss)
        fresh.optimizer.build(fresh.trainable_variables)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fresh.load_weights(path)
        return int(fresh.optimizer.iterations), ("load_weights into the same architecture, "
                                                 "optimizer built first")
    try:
        reloaded = keras.models.load_model(path)
        how = "keras.models.load_model"
    except Exception as exc:  # legacy H5 with a string loss fails to recompile (lesson 01)
        reloaded = keras.models.load_model(path, compile=False)
        how = (f"keras.models.load_model failed ({type(exc).__name__}: "
               f"{first_line(str(exc), 120)}), so compile=False")
    if getattr(reloaded, "optimizer", None) is None:
        return None, how + ": no optimizer at all"
    return int(reloaded.optimizer.iterations), how


def check_step_count(my_files: Any, my_prediction: Any, model: Any) -> Feedback:
    """Check three saved files and the learner's prediction of which restore the step count.

    ``my_files`` is a list of three paths (``.keras``, ``.h5``, ``.weights.h5``) written from
    ``model``; ``my_prediction`` maps each file's suffix to True (restores the optimizer's step
    count) or False.
    """
    if my_files is None or my_prediction is None:
        return NOT_ANSWERED
    if isinstance(my_files, (str, os.PathLike)) or not hasattr(my_files, "__iter__"):
        return wrong("my_files should be a list of the three paths you saved.")
    paths = {_suffix(Path(p)): Path(p) for p in my_files}
    missing = [s for s in SUFFIXES if s not in paths]
    if missing:
        return wrong(f"Missing a file ending in {', '.join(missing)}: save the model three ways, "
                     "model.save(... .keras), model.save(... .h5) and model.save_weights(... .weights.h5).")
    for suffix, path in paths.items():
        if not path.is_file():
            return wrong(f"There is no file at {path}: run the save call for {suffix} first.")
    if not isinstance(my_prediction, Mapping) or set(my_prediction) != set(SUFFIXES):
        return wrong(f"my_prediction should map each of {list(SUFFIXES)} to True or False.")
    saved = int(model.optimizer.iterations)
    lines, misses = [], []
    for suffix in SUFFIXES:
        steps, how = _restored_steps(paths[suffix], model)
        restored = steps == saved
        lines.append(f"{suffix}: {how} -> {'no optimizer' if steps is None else f'{steps} steps'}"
                     f" (saved: {saved})")
        if bool(my_prediction[suffix]) != restored:
            misses.append(f"{suffix} {'does' if restored else 'does not'} restore them")
    measured = "; ".join(lines)
    if misses:
        return wrong(f"Your prediction missed: {', '.join(misses)}. Measured: {measured}.")
    return correct(f"Your prediction matches the measurement. {measured}. A .keras file and a "
                   "Keras 3 .weights.h5 carry the optimizer's variables and give them back. The "
                   "legacy .h5 stores them too, but a reload that cannot recompile the file "
                   "(compile=False) comes back without an optimizer: lesson 01 shows why.")
