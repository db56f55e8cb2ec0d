"""Checker for lesson 10's exercise: audit one more of the article's claims yourself.

The claim: "checkpoints save weights only; use ``ModelCheckpoint`` with ``save_best_only=True``".
The learner writes ``my_experiment(workdir) -> dict`` in plain Keras: train a small model with
``keras.callbacks.ModelCheckpoint(..., save_best_only=True)`` writing into ``workdir``, then
measure the file it wrote and return::

    {"checkpoint": <path of that file>,
     "architecture": <bool: load_model rebuilds a model from the file alone (compile=False
                      counts: a compile config that does not deserialize is not a missing model)>,
     "optimizer_steps": <int: the restored optimizer's step count, 0 if none comes back>,
     "verdict": "holds" or "does not hold"}

The checker runs the function in a fresh folder, watches which ``ModelCheckpoint`` it creates,
measures the file itself (content detection, ``keras.models.load_model``) and explains each
difference between the learner's numbers, forgekit's numbers and the verdict.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong

KEYS = ("checkpoint", "architecture", "optimizer_steps", "verdict")
VERDICTS = ("holds", "does not hold")


@contextlib.contextmanager
def _watched_checkpoints() -> Iterator[list[dict[str, Any]]]:
    """Record the arguments of every ``keras.callbacks.ModelCheckpoint`` created inside."""
    import keras

    cls = keras.callbacks.ModelCheckpoint
    original_init, original_should = cls.__init__, cls._should_save_model
    created: list[dict[str, Any]] = []

    def recording(self: Any, filepath: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, filepath, *args, **kwargs)
        self._forgekit_seen = {"filepath": str(filepath), "save_best_only": self.save_best_only,
                               "save_weights_only": self.save_weights_only,
                               "monitor": self.monitor, "epochs": 0, "monitored": 0}
        created.append(self._forgekit_seen)

    def deciding(self: Any, epoch: Any, batch: Any, logs: Any, filepath: Any) -> bool:
        seen = getattr(self, "_forgekit_seen", None)
        if seen is not None:  # Keras saves anyway, with a warning, when the monitor is missing
            seen["epochs"] += 1
            seen["monitored"] += self.monitor in (logs or {})
        return original_should(self, epoch, batch, logs, filepath)

    cls.__init__, cls._should_save_model = recording, deciding
    try:
        yield created
    finally:
        cls.__init__, cls._should_save_model = original_init, original_should


def _measure(path: Path) -> dict[str, Any]:
    """What forgekit finds in ``path``: its kind by content, and what ``load_model`` restores."""
    import keras

    from forgekit.formats.detect import detect_format
    from forgekit.outcome import attempt
    from forgekit.quiet import quiet_absl

    with quiet_absl():
        loaded = attempt(keras.models.load_model, path)
        # A whole model whose compile config does not deserialize (an .h5 compiled with
        # loss="mse") still holds its architecture: compile=False shows it.
        rebuilt = loaded if loaded.ok else attempt(keras.models.load_model, path, compile=False)
    optimizer = getattr(loaded.value, "optimizer", None) if loaded.ok else None
    return {"kind": detect_format(path).kind, "architecture": bool(rebuilt.ok),
            "optimizer_steps": int(optimizer.iterations) if optimizer is not None else 0,
            "load_error": loaded.summary if not loaded.ok else "",
            "compile_only": rebuilt.ok and not loaded.ok}


def _run(my_experiment: Callable[[Path], Any], folder: Path
         ) -> tuple[Any, list[dict[str, Any]], Feedback | None]:
    with _watched_checkpoints() as created:
        try:
            result = my_experiment(folder)
        except Exception as exc:  # the learner's code: report what it raised, whole
            return None, created, wrong(
                f"my_experiment({folder.name!r}) raised {type(exc).__name__}: {exc}")
    return result, created, None


def check_checkpoint_audit(my_experiment: Callable[[Path], Any] | None,
                           workdir: str | os.PathLike[str]) -> Feedback:
    """Run ``my_experiment`` in a fresh folder under ``workdir`` and check what it measured.

    Right when the function trained with ``ModelCheckpoint(..., save_best_only=True)`` (the
    article's recipe, no other saving option), returned the file that callback wrote, and its
    ``architecture`` and ``optimizer_steps`` agree with what forgekit measures in that file,
    and its ``verdict`` follows from those numbers.
    """
    if my_experiment is None or my_experiment is Ellipsis:
        return NOT_ANSWERED
    if not callable(my_experiment):
        return wrong(f"my_experiment should be a function taking a folder, got "
                     f"{type(my_experiment).__name__}.")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="audit-", dir=workdir))
    result, created, failed = _run(my_experiment, folder)
    if failed is not None and not created:  # Feedback is falsy when it fails: compare to None
        return failed
    if not created:
        return wrong("Your experiment never created a keras.callbacks.ModelCheckpoint. The claim "
                     "is about what that callback writes, so the experiment has to use it.")
    recipe = created[-1]
    if recipe["save_weights_only"]:
        return wrong("You passed save_weights_only=True: then the file holds weights because you "
                     "asked for it, which tests your option, not the article's claim. Use the "
                     "article's recipe, ModelCheckpoint(path, save_best_only=True), and measure "
                     "what it writes.")
    if not recipe["save_best_only"]:
        return wrong("The article's recipe is ModelCheckpoint(..., save_best_only=True); your "
                     "callback saves every epoch. Test the recipe the article gives.")
    if failed is not None:
        return failed
    if recipe["epochs"] and not recipe["monitored"]:
        return wrong(f"No epoch of your run reported {recipe['monitor']!r}, the value your "
                     "callback monitors. Keras then warns and saves every epoch, so "
                     "save_best_only=True did nothing: pass validation_data to fit (or monitor "
                     "a value fit reports).")
    if not isinstance(result, dict) or set(KEYS) - set(result):
        missing = sorted(set(KEYS) - set(result)) if isinstance(result, dict) else list(KEYS)
        return wrong(f"my_experiment should return a dict with the keys {list(KEYS)}; "
                     f"missing: {missing}.")
    path = Path(result["checkpoint"])
    if not path.exists():
        hint = ""
        if recipe["monitor"].startswith("val_"):
            hint = (f" Your callback monitors {recipe['monitor']!r}: with save_best_only=True it "
                    "writes only when fit reports that value, so pass validation_data to fit.")
        return wrong(f"The checkpoint {path} does not exist after your experiment ran.{hint}")
    if folder.resolve() not in path.resolve().parents:
        return wrong(f"{path} is not inside the folder your function was given ({folder}): "
                     "write the checkpoint there, so each run measures its own file.")
    found = _measure(path)
    if bool(result["architecture"]) != found["architecture"]:
        if found["compile_only"]:
            return wrong(f"You report architecture={result['architecture']!r}, but {path.name} "
                         f"is a whole model (forgekit reads it as {found['kind']!r}). "
                         f"keras.models.load_model failed on its compile config "
                         f"({found['load_error']}), not for lack of an architecture: "
                         f"keras.models.load_model({path.name!r}, compile=False) rebuilds it.")
        if found["architecture"]:
            return wrong(f"You report architecture={result['architecture']!r}, but "
                         f"keras.models.load_model({path.name!r}) rebuilds the model from the file "
                         f"alone (forgekit reads it as {found['kind']!r}): the architecture is in "
                         "it. Measure by loading the file, not by reading the article.")
        return wrong(f"You report architecture={result['architecture']!r}, but "
                     f"keras.models.load_model({path.name!r}) fails ({found['load_error']}): "
                     "nothing in the file rebuilds the model.")
    try:
        steps = int(result["optimizer_steps"])
    except (TypeError, ValueError):
        return wrong(f"optimizer_steps should be a whole number, got {result['optimizer_steps']!r}.")
    if steps != found["optimizer_steps"]:
        return wrong(f"You report optimizer_steps={steps}, but the optimizer loaded from "
                     f"{path.name} has taken {found['optimizer_steps']} steps. Read it from the "
                     "loaded file (keras.models.load_model(path).optimizer.iterations), not "
                     "from the model in memory: with save_best_only=True the file holds the best "
                     "epoch, which need not be the last.")
    verdict = result["verdict"]
    if verdict not in VERDICTS:
        return wrong(f"verdict should be one of {list(VERDICTS)}, got {verdict!r}.")
    weights_only = not found["architecture"] and found["optimizer_steps"] == 0
    if (verdict == "holds") != weights_only:
        return wrong(f"Your own numbers say architecture={found['architecture']}, "
                     f"optimizer_steps={found['optimizer_steps']}; a weights-only file has "
                     f"neither, so the verdict that follows is "
                     f"{'holds' if weights_only else 'does not hold'!r}, not {verdict!r}.")
    if weights_only:
        found_text = ("holds no architecture (load_model cannot rebuild a model from it) and no "
                      "optimizer state")
    else:
        rebuilds = ("rebuilds the model with load_model(..., compile=False)"
                    if found["compile_only"] else "rebuilds the model with load_model")
        found_text = (f"{rebuilds if found['architecture'] else 'holds no architecture'} and "
                      + (f"brings back an optimizer {found['optimizer_steps']} steps in"
                         if found["optimizer_steps"] else "brings back no optimizer state"))
    return correct(f"Measured, not quoted: the file ModelCheckpoint wrote ({path.name}, read as "
                   f"{found['kind']!r}) {found_text}, so on this Keras the claim "
                   f"{'holds' if weights_only else 'does not hold'}. Your experiment, its numbers "
                   "and its verdict agree with forgekit's own measurement of the same file.")
