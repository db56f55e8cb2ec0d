"""Training in a separate process that can really die, and what it left behind.

:func:`run_training` trains :func:`~forgekit.training.tasks.build_model` on a
:func:`~forgekit.training.tasks.make_task` problem in a child Python process
(:mod:`forgekit.training._worker`) with optional fault injection (SIGKILL after N epochs, after N
batches, or in the middle of a checkpoint save) and reports what it left behind as a
:class:`TrainingRun`: history, exit status, files, final weights.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.quiet import child_env

BOOKKEEPING = ".forgekit"  # run_training's own files inside a workdir (config, logs, weights)
# The points of a checkpoint save where run_training can kill the process.
SAVE_PHASES = ("before_write", "during_write", "before_replace", "after_replace")


@dataclass
class RunSpec:
    """Everything the worker process needs; serialised to JSON in the workdir."""

    epochs: int
    task: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    seed: int = 0
    backup_dir: str | None = None
    backup_freq: str | int = "epoch"
    delete_backup: bool = True
    checkpoint: str | None = None
    atomic: bool = False
    monitor: str = "val_loss"
    last_checkpoint: str | None = None
    epoch_checkpoint: str | None = None
    kill_after_epochs: int | None = None
    kill_after_batches: int | None = None
    kill_in_save: int | None = None
    kill_phase: str = "during_write"


@dataclass
class TrainingRun:
    """What a training process did and left behind. Epoch numbers are 0-based, as in Keras."""

    workdir: Path
    returncode: int
    seconds: float
    initial_epoch: int | None  # where fit() started (after any restore), None if it never did
    epochs: list[int]  # epochs completed by this process
    history: dict[str, list[float]]  # per completed epoch, aligned with ``epochs``
    batches: int  # training batches completed by this process
    saves: list[dict[str, Any]]  # checkpoint saves started, with the kill point if any
    artifacts: dict[str, int]  # files left in workdir (relative path -> bytes)
    stderr_tail: str
    final_weights_path: Path | None

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    @property
    def completed(self) -> bool:
        return self.returncode == 0 and self.final_weights_path is not None

    def final_weights(self) -> list[np.ndarray]:
        """The model's weights at the end of a completed run (in ``model.get_weights()`` order)."""
        if self.final_weights_path is None:
            raise RuntimeError(f"the run in {self.workdir} did not finish (exit {self.returncode})")
        with np.load(self.final_weights_path) as data:
            return [data[f"w{i}"] for i in range(len(data.files))]

    def __str__(self) -> str:
        status = "killed by SIGKILL" if self.killed else f"exit {self.returncode}"
        start = "never started" if self.initial_epoch is None else (
            f"started with {self.initial_epoch} epochs done")
        # shown counted from 1, as Keras prints them; the fields stay 0-based
        ran = f"ran epochs {self.epochs[0] + 1}-{self.epochs[-1] + 1}" if self.epochs else (
            "completed no epoch")
        return f"{status} after {self.seconds:.1f} s: {start}, {ran}, {self.batches} batches in all"


class TrainingProcessError(RuntimeError):
    """The worker failed in a way nobody asked for; the message carries its stderr tail."""


def run_training(workdir: str | os.PathLike[str], epochs: int, *, task: dict[str, Any] | None = None,
                 model: dict[str, Any] | None = None, batch_size: int = 32, seed: int = 0,
                 backup_dir: str | None = None, backup_freq: str | int = "epoch",
                 delete_backup: bool = True, checkpoint: str | None = None, atomic: bool = False,
                 monitor: str = "val_loss", last_checkpoint: str | None = None,
                 epoch_checkpoint: str | None = None,
                 kill_after_epochs: int | None = None, kill_after_batches: int | None = None,
                 kill_in_save: int | None = None, kill_phase: str = "during_write",
                 timeout: float = 300) -> TrainingRun:
    """Train ``build_model(make_task(**task), seed=seed, **model)`` for ``epochs`` in a child
    process, after :func:`set_determinism` with ``seed``; batches in a fixed order.

    Paths are relative to ``workdir``, which persists across calls so a second call can resume
    what a killed first call left. Callbacks, in order:

    - ``backup_dir``: ``keras.callbacks.BackupAndRestore`` (``save_freq=backup_freq``,
      ``delete_checkpoint=delete_backup``); restores on start if a backup exists.
    - ``last_checkpoint``: forgekit's :class:`~forgekit.training.checkpoints.AtomicCheckpoint` saved every
      epoch; if the file exists the run first resumes from it (model, optimizer, epoch).
    - ``epoch_checkpoint``: a plain ``keras.callbacks.ModelCheckpoint`` saved at every epoch's
      end (the path may hold ``{epoch:02d}`` to keep one file per epoch).
    - ``checkpoint``: best-only checkpoint on ``monitor``, ``keras.callbacks.ModelCheckpoint``
      or, with ``atomic=True``, forgekit's ``AtomicCheckpoint``.

    Faults (a real ``SIGKILL`` of the child, sent by itself):
    ``kill_after_epochs``/``kill_after_batches`` count what *this* process completed;
    ``kill_in_save=k`` kills during the k-th save of ``checkpoint`` at ``kill_phase``, one of
    :data:`SAVE_PHASES`. ``"during_write"`` lets half of the bytes of the
    previous save (4 KiB for a first save) reach the file, then kills; ``"before_write"`` kills
    once the destination is open, before its first byte. ``ModelCheckpoint`` has no
    replace step, so the two ``*_replace`` phases need ``atomic=True``.

    Raises :class:`TrainingProcessError` (with the stderr tail) if the child exits abnormally
    without having been asked to die.
    """
    spec = RunSpec(epochs=epochs, task=task or {}, model=model or {}, batch_size=batch_size,
                   seed=seed, backup_dir=backup_dir, backup_freq=backup_freq,
                   delete_backup=delete_backup, checkpoint=checkpoint, atomic=atomic,
                   monitor=monitor, last_checkpoint=last_checkpoint,
                   epoch_checkpoint=epoch_checkpoint,
                   kill_after_epochs=kill_after_epochs, kill_after_batches=kill_after_batches,
                   kill_in_save=kill_in_save, kill_phase=kill_phase)
    _validate(spec)
    workdir = Path(workdir).resolve()
    books = workdir / BOOKKEEPING
    books.mkdir(parents=True, exist_ok=True)
    run_id = len(list(books.glob("run-*.json")))
    config = books / f"run-{run_id}.json"
    config.write_text(json.dumps(asdict(spec), indent=1))
    log, err = books / f"run-{run_id}.jsonl", books / f"run-{run_id}.stderr"
    env = child_env({"PYTHONHASHSEED": str(seed)})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                      env.get("PYTHONPATH")]))
    started = time.perf_counter()
    with open(err, "wb") as stderr:
        proc = subprocess.run(
            [sys.executable, "-m", "forgekit.training._worker", str(config), str(log)],
            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=stderr, timeout=timeout,
            check=False)
    result = _collect(workdir, log, err, proc.returncode, time.perf_counter() - started)
    asked_to_die = any(v is not None for v in (kill_after_epochs, kill_after_batches, kill_in_save))
    if proc.returncode != 0 and not (result.killed and asked_to_die):
        raise TrainingProcessError(
            f"training process exited with {proc.returncode}:\n{result.stderr_tail}")
    return result


def _validate(spec: RunSpec) -> None:
    if spec.kill_in_save is not None:
        if spec.checkpoint is None:
            raise ValueError("kill_in_save needs a checkpoint to save")
        if spec.kill_phase not in SAVE_PHASES:
            raise ValueError(f"kill_phase must be one of {SAVE_PHASES}, got {spec.kill_phase!r}")
        if spec.kill_phase.endswith("_replace") and not spec.atomic:
            raise ValueError(f"ModelCheckpoint writes in place: it has no {spec.kill_phase!r}")


def _collect(workdir: Path, log: Path, err: Path, returncode: int, seconds: float) -> TrainingRun:
    events = []
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by the kill
                break
    epochs, history = [], {}
    initial_epoch, batches, saves, final = None, 0, [], None
    for event in events:
        kind = event["event"]
        if kind == "train_begin":
            initial_epoch = event["initial_epoch"]
        elif kind == "epoch_end":
            epochs.append(event["epoch"])
            for key, value in event["logs"].items():
                history.setdefault(key, []).append(value)
        elif kind == "batch_end":
            batches = event["batches"]
        elif kind == "save":
            saves.append({k: v for k, v in event.items() if k != "event"})
        elif kind == "done":
            final = workdir / event["weights"]
    tail = "\n".join(err.read_text(errors="replace").strip().splitlines()[-15:])
    artifacts = {
        str(p.relative_to(workdir)): p.stat().st_size
        for p in sorted(workdir.rglob("*"))
        if p.is_file() and BOOKKEEPING not in p.relative_to(workdir).parts
    }
    return TrainingRun(workdir, returncode, round(seconds, 2), initial_epoch, epochs, history,
                     batches, saves, artifacts, tail, final)
