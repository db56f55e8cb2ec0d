"""Checker for lesson 03 (checkpoints and resume): a crash-safe list of callbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, unused_path, wrong


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_callbacks(callbacks: Any) -> Feedback:
    """Check a callback list meant to make a long run crash-safe.

    The run must (1) keep its best epoch by validation loss as a full ``.keras`` model,
    (2) resume after a kill and end exactly where an uninterrupted run ends, (3) still have its
    best checkpoint once training has finished, (4) not overwrite the best checkpoint with the
    first epoch after a resume, and (5) never leave a half-written best checkpoint.
    """
    if callbacks is None or callbacks is Ellipsis:
        return NOT_ANSWERED
    import keras

    from forgekit.training.checkpoints import AtomicCheckpoint

    if not isinstance(callbacks, (list, tuple)):
        return wrong("`callbacks` should be a list of callback objects, as `fit` takes them.")
    backups = [c for c in callbacks if isinstance(c, keras.callbacks.BackupAndRestore)]
    bests = [c for c in callbacks
             if isinstance(c, (keras.callbacks.ModelCheckpoint, AtomicCheckpoint))]
    if len(backups) != 1:
        return wrong(f"Found {len(backups)} BackupAndRestore callbacks; you need exactly one: "
                     "it is what restores weights, optimizer and epoch after a kill.")
    if len(bests) != 1:
        return wrong(f"Found {len(bests)} ModelCheckpoint/AtomicCheckpoint callbacks; you need "
                     "exactly one, writing the best epoch.")
    backup, best = backups[0], bests[0]
    if not best.save_best_only:
        return wrong("The checkpoint saves every epoch, so after training it holds the last "
                     "epoch, which on an overfitting run is not the best. Use save_best_only=True.")
    if best.monitor != "val_loss":
        return wrong(f"The checkpoint monitors {best.monitor!r}; training loss keeps falling "
                     "while the model overfits, so only 'val_loss' finds the best epoch.")
    path = Path(str(best.filepath))
    if getattr(best, "save_weights_only", False) or path.suffix != ".keras":
        return wrong(f"{path.name} is not a full .keras model: weights alone need the building "
                     "code to be useful, and do not bring the optimizer back.")
    if backup.save_freq != "epoch":
        return wrong(f"BackupAndRestore(save_freq={backup.save_freq!r}) saves mid-epoch weights "
                     "but Keras restarts the interrupted epoch from its first batch, so those "
                     "batches are applied twice and the result differs from an uninterrupted "
                     "run. Use save_freq='epoch'.")
    if _inside(path, Path(backup.backup_dir)):
        return wrong(f"{path.name} lives inside backup_dir. When training finishes, "
                     "BackupAndRestore deletes backup_dir and everything in it, your best model "
                     "included. Give the checkpoint its own folder.")
    if isinstance(best, keras.callbacks.ModelCheckpoint):
        # Keras keeps initial_value_threshold as the callback's starting `best` (None: none given)
        if getattr(best, "best", None) is None:
            return wrong("After a resume this new ModelCheckpoint starts with no best value (best = infinity), so "
                         "the first epoch after the resume overwrites best.keras even when it is "
                         "worse (section 4 measured it). It would need initial_value_threshold= "
                         "the best value so far, and it still writes in place: see requirement 5.")
        return wrong("initial_value_threshold fixes the resume trap, but ModelCheckpoint writes "
                     "best.keras in place: section 5 showed a kill during that save leaving a "
                     "file load_model cannot read, with the previous best already gone. Use a "
                     "checkpoint that writes a temporary file and os.replace()s it, and stores "
                     "its best value: checkpoints.AtomicCheckpoint(..., save_best_only=True).")
    return correct("A kill costs at most the epoch in progress, the resumed run repeats the "
                   "uninterrupted one exactly, AtomicCheckpoint reads its best value back from "
                   "best.keras when training starts again, and its rename never leaves the file "
                   "half-written; the best model survives the end of training in its own folder.")


RESUMABLE_EPOCHS = 8  # the checker's own run: long enough to overfit after its best epoch
_REFERENCE: dict[int, tuple[list[float], list[Any]]] = {}


def check_resumable(make_callbacks: Any, folder: Any, n_val: int = 256) -> Feedback:
    """Test ``make_callbacks(folder, validation_data) -> callbacks`` by crashing and resuming.

    The checker trains lesson 03's task three times, in this process and deterministically: once
    without interruption (the reference), once with the learner's callbacks until it raises at the
    end of an epoch past the best one (the crash), and once more with a *new* list from
    ``make_callbacks`` (the resume, as a restarted script would build it). Then it reloads
    ``folder / "best.keras"`` and compares with the reference: the best validation loss, a full
    model, and a resumed run that started where the crash left off.
    """
    if make_callbacks is None:
        return NOT_ANSWERED
    if not callable(make_callbacks):
        return wrong("make_callbacks should be a function of (folder, validation_data) that "
                     "returns the list of callbacks for fit.")
    import keras
    import numpy as np
    import tensorflow as tf

    from forgekit.measure.compare import max_abs_diff
    from forgekit.outcome import first_line
    from forgekit.training.tasks import build_model, make_task

    run = unused_path(folder, "resume-")
    run.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    task = make_task(n_val=n_val)
    fit_args = dict(x=task.x_train, y=task.y_train, validation_data=task.validation_data,
                    batch_size=32, shuffle=False, verbose=0, epochs=RESUMABLE_EPOCHS)

    def callbacks_or_reason() -> tuple[list[Any], str | None]:
        try:
            made = make_callbacks(run, task.validation_data)
        except Exception as exc:  # the learner's code: report whatever it raised
            return [], f"make_callbacks raised {type(exc).__name__}: {first_line(str(exc), 200)}"
        if not isinstance(made, (list, tuple)) or not all(
                isinstance(c, keras.callbacks.Callback) for c in made):
            return [], "make_callbacks should return a list of keras.callbacks.Callback objects."
        return list(made), None

    made, reason = callbacks_or_reason()
    if reason:
        return wrong(reason)
    if n_val not in _REFERENCE:  # deterministic, so one uninterrupted run serves every check
        reference_model = build_model(task, seed=0)
        _REFERENCE[n_val] = (reference_model.fit(**fit_args).history["val_loss"],
                             reference_model.get_weights())
    reference, reference_weights = _REFERENCE[n_val]
    best_epoch = int(np.argmin(reference))  # 0-based
    crash_after = min(best_epoch + 2, RESUMABLE_EPOCHS - 1)  # epochs done when it crashes

    def crash(epoch: int, logs: Any) -> None:
        if epoch + 1 == crash_after:
            raise RuntimeError(f"crashed after epoch {crash_after}")

    try:
        build_model(task, seed=0).fit(**fit_args, callbacks=[
            *made, keras.callbacks.LambdaCallback(on_epoch_end=crash)])
    except RuntimeError as exc:
        if "crashed after epoch" not in str(exc):
            return wrong(f"the first run failed before the crash: {first_line(str(exc), 200)}")
    made, reason = callbacks_or_reason()
    if reason:
        return wrong(f"when the run restarts, {reason}")
    begun: list[int] = []
    resumed = build_model(task, seed=0)
    resumed.fit(**fit_args, callbacks=[
        *made, keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: begun.append(e))])
    best_path = run / "best.keras"
    if not run.exists():
        return wrong("when training finished, the whole folder was gone, best.keras with it: "
                     "BackupAndRestore deletes its backup folder at the end. Give it a folder of "
                     "its own, e.g. folder / 'backup'.")
    if not begun or begun[0] != crash_after:
        return wrong(f"the restarted run began at epoch {begun[0] + 1 if begun else '?'}, not at "
                     f"epoch {crash_after + 1} where the crash left off: nothing restored the "
                     "training state (weights, optimizer, epoch). That is BackupAndRestore's job.")
    gap = max_abs_diff(resumed.get_weights(), reference_weights)
    if gap != 0.0:
        return wrong(f"the resumed run ends {gap:.3g} away from the uninterrupted one: it did not "
                     "restore the whole training state.")
    if not best_path.exists():
        return wrong(f"there is no {best_path.name} in folder after training (found: "
                     f"{sorted(p.name for p in run.iterdir())}). Write it to folder / 'best.keras', "
                     "outside BackupAndRestore's own folder, which it deletes when training ends.")
    try:
        best = keras.models.load_model(best_path)
    except Exception as exc:
        return wrong(f"load_model cannot read best.keras ({type(exc).__name__}: "
                     f"{first_line(str(exc), 160)}): keep the best epoch as a full .keras model "
                     "(save_weights_only=False).")
    if int(best.optimizer.iterations) == 0:
        return wrong("best.keras reloads, but with a fresh optimizer: save the full model.")
    val = float(best.evaluate(*task.validation_data, batch_size=32, verbose=0))
    lowest = float(min(reference))
    if abs(val - lowest) > 1e-5:
        return wrong(f"best.keras holds a validation loss of {val:.4f}, not the run's best "
                     f"{lowest:.4f} (epoch {best_epoch + 1}). If it is worse, the first epoch after "
                     "the restart overwrote it: a new ModelCheckpoint starts with no best value. "
                     "Measure the file already on disk and pass it as initial_value_threshold.")
    return correct(f"the run crashed after epoch {crash_after}, restarted at epoch "
                   f"{crash_after + 1}, ended bit for bit where the uninterrupted run ends, and "
                   f"best.keras still holds epoch {best_epoch + 1} (validation loss {val:.4f}).")
