"""Checkpoints that survive a kill at any instant, and helpers to look inside them.

``model.save(path)`` opens ``path`` for writing, which truncates the previous file before the
first new byte exists: a process killed during the save leaves a broken file where the last
good checkpoint was. :func:`atomic_save` writes a temporary file in the same folder and renames
it over ``path`` with :func:`os.replace`, so ``path`` always names one complete checkpoint,
either the old one or the new one.

A checkpoint written here is an ordinary ``.keras`` archive with one extra member,
``forgekit.json``, holding the training state Keras does not store (epochs done, best value).
Keeping it inside the same file means the weights and the epoch counter can never disagree.

This module imports Keras (:class:`AtomicCheckpoint` subclasses ``keras.callbacks.Callback``);
``import forgekit`` alone does not import it.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from forgekit.outcome import Outcome, attempt
from forgekit.paths import fsync
from forgekit.training.run import SAVE_PHASES as SAVE_PHASES  # re-exported: the phases of a save

STATE_MEMBER = "forgekit.json"

PhaseHook = Callable[[str], None]


def partial_path(path: str | os.PathLike[str], pid: int | None = None) -> Path:
    """The temporary name :func:`atomic_save` writes before renaming it to ``path``.

    Same folder (``os.replace`` is only atomic within one file system), hidden, tagged with the
    writer's pid, and still ending in ``.keras`` because ``model.save`` insists on it.
    """
    path = Path(path)
    return path.with_name(f".{path.stem}.partial-{os.getpid() if pid is None else pid}.keras")


def partial_files(path: str | os.PathLike[str]) -> list[Path]:
    """Leftover temporary files of ``path`` (a writer was killed before its rename)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.stem}.partial-*.keras"))


def atomic_save(
    model: keras.Model,
    path: str | os.PathLike[str],
    state: dict[str, Any] | None = None,
    hook: PhaseHook | None = None,
) -> Path:
    """Save ``model`` (with its optimizer) to ``path`` so that ``path`` is never half-written.

    ``state`` is stored as ``forgekit.json`` inside the archive. ``hook``, if given, is called
    with ``"before_write"``, ``"before_replace"`` and ``"after_replace"``; tests use it to kill
    the process at exactly those points.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    hook = hook or (lambda phase: None)
    hook("before_write")
    model.save(tmp)
    with zipfile.ZipFile(tmp, "a") as archive:
        archive.writestr(STATE_MEMBER, json.dumps(state or {}))
    # A kill cannot tear a rename, but a power cut can: the file system may persist the new
    # name before the new data blocks, and after a reboot `path` would be empty. Flushing the
    # data to disk first makes the rename publish only complete bytes.
    fsync(tmp)
    hook("before_replace")
    os.replace(tmp, path)
    # The rename itself lives in the directory; flush it so the new checkpoint is still the
    # current one after a power cut, not only after a crash of this process.
    fsync(path.parent)
    hook("after_replace")
    return path


def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``forgekit.json`` state stored in a checkpoint, or ``{}`` for a plain ``.keras``."""
    with zipfile.ZipFile(path) as archive:
        if STATE_MEMBER not in archive.namelist():
            return {}
        return json.loads(archive.read(STATE_MEMBER))


def try_load(path: str | os.PathLike[str]) -> Outcome:
    """Load a ``.keras`` file with ``keras.models.load_model``; the outcome keeps any error."""
    if not Path(path).exists():
        return attempt(_missing, Path(path))
    return attempt(keras.models.load_model, path)


def _missing(path: Path) -> None:
    raise FileNotFoundError(f"{path.name} does not exist")


def restore_or_build(
    path: str | os.PathLike[str], build: Callable[[], keras.Model]
) -> tuple[keras.Model, int]:
    """Resume from the checkpoint at ``path`` if there is one, else start fresh.

    Returns ``(model, initial_epoch)``: pass ``initial_epoch`` to ``fit`` so epoch numbering,
    and everything keyed on it, continues where the checkpoint left off. The file must come
    from :class:`AtomicCheckpoint`: a plain ``.keras`` does not say how many epochs it holds,
    and guessing 0 would silently train the restored model for the full run again.
    """
    path = Path(path)
    if not path.exists():
        return build(), 0
    epoch = read_state(path).get("epoch")
    if epoch is None:
        raise ValueError(f"{path.name} holds no epoch count (not written by AtomicCheckpoint); "
                         "load it with keras.models.load_model and pass initial_epoch yourself")
    return keras.models.load_model(path), int(epoch)


class AtomicCheckpoint(keras.callbacks.Callback):
    """Like ``keras.callbacks.ModelCheckpoint`` for ``.keras`` files, but never leaves ``filepath``
    half-written: each save goes through :func:`atomic_save`.

    With ``save_best_only=True`` the best value is stored in the file and read back when
    training starts again, so a resumed run does not overwrite the best checkpoint with its
    first, possibly worse, epoch. Leftover temporary files from killed writers are removed
    when training begins.
    """

    def __init__(
        self,
        filepath: str | os.PathLike[str],
        monitor: str = "val_loss",
        mode: str = "min",
        save_best_only: bool = False,
        hook: PhaseHook | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.filepath = Path(filepath)
        if self.filepath.suffix != ".keras":
            raise ValueError(f"AtomicCheckpoint writes .keras files, got {self.filepath.name}")
        self.monitor = monitor
        self.mode = mode
        self.save_best_only = save_best_only
        self.hook = hook
        self.best: float | None = None
        self.saved_epochs: list[int] = []

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # Leftovers belong to dead writers: one checkpoint file has one writer at a time.
        for leftover in partial_files(self.filepath):
            leftover.unlink(missing_ok=True)
        if self.save_best_only and self.best is None and self.filepath.exists():
            self.best = read_state(self.filepath).get("best")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if self.save_best_only:
            if value is None:
                raise KeyError(f"AtomicCheckpoint monitors {self.monitor!r}, not in the logs")
            if not self._improves(float(value)):
                return
            self.best = float(value)
        state = {"epoch": epoch + 1, "monitor": self.monitor, "best": self.best,
                 "value": None if value is None else float(value)}
        atomic_save(self.model, self.filepath, state=state, hook=self.hook)
        self.saved_epochs.append(epoch)


@dataclass
class OptimizerState:
    """What an optimizer remembers: its step counter and the size of each kind of slot."""

    name: str
    built: bool
    iterations: int
    slot_norms: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        slots = ", ".join(f"‖{k}‖={v:.4g}" for k, v in self.slot_norms.items()) or "no slots"
        return f"{self.name}: iterations={self.iterations}, {slots}"


def optimizer_state(model_or_optimizer: keras.Model | keras.optimizers.Optimizer) -> OptimizerState:
    """Summarise an optimizer's state: ``iterations`` and the L2 norm of each slot kind.

    Slots are grouped by the suffix of the variable path (Adam: ``momentum`` and ``velocity``),
    the norm taken over all of a kind's variables together. An optimizer that has not taken a
    step yet is not built and has no slots.
    """
    opt = getattr(model_or_optimizer, "optimizer", model_or_optimizer)
    squares: dict[str, float] = {}
    for var in opt.variables:
        leaf = var.path.rsplit("/", 1)[-1]
        if leaf in ("iteration", "iterations", "learning_rate"):
            continue
        kind = leaf.rsplit("_", 1)[-1]
        squares[kind] = squares.get(kind, 0.0) + float(np.sum(np.square(var.numpy())))
    return OptimizerState(
        name=opt.name,
        built=bool(opt.built),
        iterations=int(opt.iterations.numpy()),
        slot_norms={kind: math.sqrt(total) for kind, total in squares.items()},
    )
