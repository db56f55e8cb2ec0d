"""Checker for lesson 03 (checkpoints and resume): a save that survives a kill, and a resume.

The learner writes two plain functions, ``save_checkpoint(model, path)`` and
``resume(path, build_model, steps_per_epoch) -> (model, initial_epoch)``. The checker runs them
in a real training script in a child process, SIGKILLs it in the middle of a save
(:func:`forgekit.training.midsave.kill_mid_save`), then reloads what is on disk and resumes with
the learner's ``resume``, comparing with a run that was never interrupted.
"""

from __future__ import annotations

import inspect
import operator
import pickle
from typing import Any

from forgekit.exercises import (
    NOT_ANSWERED,
    Feedback,
    correct,
    is_placeholder,
    shippable,
    unused_path,
    wrong,
)

EPOCHS, KILL_IN_SAVE, N_VAL = 5, 3, 256  # killed while saving epoch 3: epochs 1-2 are safe
_REFERENCE: dict[int, list[Any]] = {}

_CHILD = '''"""The checker's training script: the learner's two functions, a plain fit."""
import pickle, sys
import keras
from forgekit.exercises import revive
from forgekit.training import tasks

spec = pickle.loads(open(sys.argv[1], "rb").read())
save_checkpoint = revive(spec["save_checkpoint"], "save_checkpoint")
resume = revive(spec["resume"], "resume")
path = spec["path"]
tasks.set_determinism(0)
task = tasks.make_task(n_val=spec["n_val"])
model, initial_epoch = resume(path, lambda: tasks.build_model(task, seed=0), task.steps_per_epoch(32))
print("initial_epoch", initial_epoch, flush=True)
model.fit(task.x_train, task.y_train, validation_data=task.validation_data, batch_size=32,
          shuffle=False, verbose=0, epochs=spec["epochs"], initial_epoch=initial_epoch,
          callbacks=[keras.callbacks.LambdaCallback(
              on_epoch_end=lambda epoch, logs: save_checkpoint(model, path))])
'''


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def check_checkpointing(save_checkpoint: Any, resume: Any, folder: Any = None) -> Feedback:
    """Kill a training script in the middle of ``save_checkpoint``, then ``resume`` from disk.

    The script trains lesson 03's task for ``EPOCHS`` epochs, calling
    ``save_checkpoint(model, path)`` after every epoch; it is SIGKILLed half-way through the
    ``KILL_IN_SAVE``-th save. Then the file at ``path`` must load and hold the epochs before it,
    ``resume(path, build_model, steps_per_epoch)`` must return that model and the number of
    epochs it holds, and training from there must end bit for bit where an uninterrupted run ends.
    """
    answers = {"save_checkpoint": save_checkpoint, "resume": resume}
    if any(a is None or is_placeholder(a) for a in answers.values()):
        return NOT_ANSWERED
    for role, answer in answers.items():
        if not inspect.isfunction(answer):
            return wrong(f"{role} should be a function (def {role}(...): ...).")
    spec: dict[str, Any] = {}
    for role, answer in answers.items():
        shipped, reason = shippable(answer, role)
        if reason:
            return wrong(reason)
        spec[role] = shipped

    import keras

    from forgekit.measure.compare import max_abs_diff
    from forgekit.outcome import first_line
    from forgekit.training import tasks
    from forgekit.training.midsave import kill_mid_save

    run = unused_path(folder, "checkpointing-")
    run.mkdir(parents=True)
    path = run / "checkpoints" / "last.keras"
    path.parent.mkdir()
    spec.update(path=path, epochs=EPOCHS, n_val=N_VAL)
    (run / "spec.pkl").write_bytes(pickle.dumps(spec))
    (run / "train.py").write_text(_CHILD)
    killed = kill_mid_save("train.py", run, KILL_IN_SAVE, args=("spec.pkl",))
    if not killed.killed:
        if killed.returncode != 0:
            return wrong("the training script failed before the kill; the end of its error:\n"
                         + _tail(killed.stderr))
        return wrong(f"the script trained {EPOCHS} epochs and never wrote a .keras file "
                     f"{KILL_IN_SAVE} times: save_checkpoint should call model.save on a name "
                     "ending in .keras after every epoch.")
    if not path.exists():
        return wrong(f"SIGKILL came in the middle of save {KILL_IN_SAVE} (into "
                     f"{killed.path.name}), and there is no {path.name} at all: after two "
                     "completed saves the model should be at `path`. Rename the finished "
                     "temporary file onto `path` (os.replace).")
    try:
        on_disk = keras.models.load_model(path)
    except Exception as exc:
        return wrong(f"SIGKILL came half-way through save {KILL_IN_SAVE}, and now {path.name} "
                     f"({path.stat().st_size:,} bytes) does not load: {type(exc).__name__}: "
                     f"{first_line(str(exc), 400).rstrip('.')}. You saved straight to the final name: "
                     "opening it for writing emptied the last good checkpoint before the new "
                     "bytes were there. Save to a temporary name in the same folder, then "
                     "os.replace it onto `path`.")
    tasks.set_determinism(0)
    task = tasks.make_task(n_val=N_VAL)
    steps = task.steps_per_epoch(32)
    safe = KILL_IN_SAVE - 1  # epochs whose save completed before the kill
    if int(on_disk.optimizer.iterations) != safe * steps:
        held = int(on_disk.optimizer.iterations)
        return wrong(f"after the kill, {path.name} loads but holds {held} optimizer steps "
                     f"({held / steps:g} epochs), not the {safe * steps} of the {safe} epochs saved "
                     f"before the kill. The kill comes in the script's {KILL_IN_SAVE}th write of a "
                     ".keras file: if save_checkpoint writes two per call (a temporary file, then "
                     "a copy such as shutil.copyfile onto `path`), it came an epoch early, and the "
                     "copy is itself a write in place that a kill can cut. Write the model once "
                     "(model.save to a temporary name), then rename it onto `path`.")
    if EPOCHS not in _REFERENCE:  # deterministic: one uninterrupted run serves every check
        reference = tasks.build_model(task, seed=0)
        reference.fit(task.x_train, task.y_train, batch_size=32, shuffle=False, verbose=0,
                      epochs=EPOCHS)
        _REFERENCE[EPOCHS] = reference.get_weights()
    try:
        resumed = resume(path, lambda: tasks.build_model(task, seed=0), steps)
        model, initial_epoch = resumed
    except Exception as exc:
        return wrong(f"resume(path, build_model, steps_per_epoch) failed: {type(exc).__name__}: "
                     f"{first_line(str(exc), 200)}. It should return (model, initial_epoch).")
    if not isinstance(model, keras.Model):
        return wrong(f"resume returned {type(model).__name__} as its model; return (model, "
                     "initial_epoch).")
    steps_loaded = int(model.optimizer.iterations)
    if steps_loaded == 0 and max_abs_diff(model.get_weights(), on_disk.get_weights()) != 0.0:
        return wrong(f"resume returned a new model although {path.name} holds {safe} trained "
                     "epochs: you forgot to resume from the checkpoint, so the restarted script "
                     "trains from scratch. When `path` exists, return keras.models.load_model(path).")
    if steps_loaded != safe * steps:
        return wrong(f"resume's model has {steps_loaded} optimizer steps, not the checkpoint's "
                     f"{safe * steps}: load the full model with keras.models.load_model(path), "
                     "which brings the optimizer back with it.")
    try:
        initial_epoch = operator.index(initial_epoch)  # int, numpy or tensor ints; not 2.0
    except TypeError:
        return wrong(f"resume returned initial_epoch={initial_epoch!r}, a "
                     f"{type(initial_epoch).__name__}: fit counts epochs in whole numbers, so "
                     "use // (or int()) on model.optimizer.iterations / steps_per_epoch.")
    if initial_epoch != safe:
        runs = EPOCHS - initial_epoch
        return wrong(f"resume returned initial_epoch={initial_epoch!r}, but the checkpoint holds "
                     f"{safe} finished epochs (optimizer.iterations {steps_loaded} = {safe} x "
                     f"{steps} steps per epoch), so fit must start at initial_epoch={safe}. With "
                     f"yours it would train {runs} more epochs instead of {EPOCHS - safe}: "
                     "the counter is wrong. Compute it from model.optimizer.iterations // "
                     "steps_per_epoch.")
    model.fit(task.x_train, task.y_train, batch_size=32, shuffle=False, verbose=0,
              epochs=EPOCHS, initial_epoch=initial_epoch, callbacks=[keras.callbacks.LambdaCallback(
                  on_epoch_end=lambda epoch, logs: save_checkpoint(model, path))])
    gap = max_abs_diff(model.get_weights(), _REFERENCE[EPOCHS])
    if gap != 0.0:
        return wrong(f"the resumed run ends {gap:.3g} away from the uninterrupted one: it did "
                     "not continue from the full training state.")
    final = keras.models.load_model(path)
    if int(final.optimizer.iterations) != EPOCHS * steps:
        return wrong(f"after the resumed run, {path.name} does not hold the last epoch.")
    try:  # a second restart, from the finished checkpoint: a fixed answer fails here
        _, again = resume(path, lambda: tasks.build_model(task, seed=0), steps)
    except Exception as exc:
        again = f"{type(exc).__name__}: {exc}"
    if again != EPOCHS:
        return wrong(f"restarted once more from the finished checkpoint ({EPOCHS} epochs), resume "
                     f"returned initial_epoch={again!r}: it must be computed from what `path` "
                     "holds (model.optimizer.iterations // steps_per_epoch), not fixed.")
    return correct(
        f"SIGKILL came after {killed.bytes_written:,} of about {killed.previous_bytes:,} bytes "
        f"of save {KILL_IN_SAVE}, yet {path.name} still loaded with the {safe} epochs saved "
        f"before; resume restarted at epoch {safe + 1} with Adam's state and ended bit for bit "
        f"where the uninterrupted run ends.")
