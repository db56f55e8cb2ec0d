"""Checker for lesson 03 (checkpoints and resume): a crash-safe list of callbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong


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
