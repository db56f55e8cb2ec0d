"""The child process behind :func:`forgekit.training.run_training`.

Run as ``python -m forgekit.training._worker CONFIG LOG``. Every event is appended to LOG as one
JSON line and flushed at once: a flushed line is in the kernel's page cache, which a SIGKILL of
this process does not touch, so the parent reads everything that happened up to the kill.

Faults are real: the process sends itself SIGKILL, so no ``finally``, ``atexit`` or buffered
write gets a chance to tidy up. It is not a power cut: what the process already wrote stays in
the operating system's page cache and reaches the disk.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgekit.quiet import quiet_tf

quiet_tf()  # the parent already set the quiet environment; this also mutes TF's start-up lines

import keras  # noqa: E402
import numpy as np  # noqa: E402

from forgekit.training import checkpoints  # noqa: E402
from forgekit.training import tasks as training  # noqa: E402


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class EventLog:
    """Append-only JSON lines the parent reads, flushed per event so a SIGKILL loses none."""
    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the process)

    def write(self, event: str, **fields: Any) -> None:
        self._file.write(json.dumps({"event": event, **fields}) + "\n")
        self._file.flush()


class _CountingFile(io.FileIO):
    """A raw (unbuffered) file that counts bytes and can die after exactly ``limit`` of them.

    Both callbacks receive the file's size on disk at that moment.
    """

    def __init__(self, path: str | os.PathLike[str], limit: int | None,
                 on_limit: Callable[[int], None], on_close: Callable[[int], None]) -> None:
        super().__init__(path, "w")
        self.written, self.limit = 0, limit
        self._on_limit, self._on_close = on_limit, on_close

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self.limit is not None and self.written + len(view) >= self.limit:
            view = view[: self.limit - self.written]  # the bytes that made it before the kill
            self._write_all(view)
            self._on_limit(os.fstat(self.fileno()).st_size)
        self._write_all(view)
        return len(memoryview(data).cast("B"))

    def _write_all(self, view: memoryview) -> None:
        while view:
            n = super().write(view)
            self.written += n
            view = view[n:]

    def close(self) -> None:
        if not self.closed:
            self._on_close(os.fstat(self.fileno()).st_size)
        super().close()


class SaveFaults:
    """Counts the saves of one checkpoint file and kills the process at the requested point.

    ``ModelCheckpoint`` saves by opening the checkpoint itself for writing; ``AtomicCheckpoint``
    opens its temporary file instead, and reports its other phases through its ``hook``.
    """

    def __init__(self, target: Path, atomic: bool, kill_in_save: int | None, phase: str,
                 log: EventLog) -> None:
        self.atomic, self.kill_in_save, self.phase, self.log = atomic, kill_in_save, phase, log
        self.destination = (checkpoints.partial_path(target) if atomic else target).resolve()
        self.count = 0
        self.sizes: list[int] = []  # file size after each completed save

    def install(self) -> None:
        real_open = builtins.open

        def patched_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if ("w" in mode and isinstance(file, (str, os.PathLike))
                    and Path(file).resolve() == self.destination):
                return self._open(file)
            return real_open(file, mode, *args, **kwargs)

        builtins.open = patched_open

    def hook(self, phase: str) -> None:
        """AtomicCheckpoint's phase hook."""
        if phase == "before_write":
            self._begin()
        self._maybe_kill(phase)

    def _begin(self) -> None:
        self.count += 1
        self.log.write("save", n=self.count, phase="started")

    def _armed(self, phase: str) -> bool:
        return self.count == self.kill_in_save and self.phase == phase

    def _maybe_kill(self, phase: str, size: int | None = None) -> None:
        if self._armed(phase):
            self.log.write("save", n=self.count, phase=phase, killed=True, file_bytes=size)
            _die()

    def _closed(self, size: int) -> None:
        self.sizes.append(size)
        self.log.write("save", n=self.count, phase="written", file_bytes=size)

    def _open(self, path: Any) -> _CountingFile:
        if not self.atomic:  # in place: opening the checkpoint (and truncating it) starts a save
            self._begin()
        limit = None
        if self._armed("during_write"):
            limit = max(1, self.sizes[-1] // 2) if self.sizes else 4096
        handle = _CountingFile(path, limit, lambda n: self._maybe_kill("during_write", n),
                               self._closed)
        if not self.atomic:
            self._maybe_kill("before_write", 0)
        return handle


def main(config_path: str, log_path: str) -> None:
    """Train as the JSON spec says, logging events, dying on purpose where it says."""
    spec = json.loads(Path(config_path).read_text())
    log = EventLog(log_path)
    faults = None
    if spec["checkpoint"]:
        faults = SaveFaults(Path(spec["checkpoint"]), spec["atomic"], spec["kill_in_save"],
                            spec["kill_phase"], log)
        faults.install()

    training.set_determinism(spec["seed"])
    task = training.make_task(**spec["task"])

    def build() -> keras.Model:
        return training.build_model(task, **{"seed": spec["seed"], **spec["model"]})

    callbacks: list[keras.callbacks.Callback] = []
    model, initial_epoch = build(), 0
    if spec["backup_dir"]:
        callbacks.append(keras.callbacks.BackupAndRestore(
            spec["backup_dir"], save_freq=spec["backup_freq"],
            delete_checkpoint=spec["delete_backup"]))
    if spec["last_checkpoint"]:
        model, initial_epoch = checkpoints.restore_or_build(spec["last_checkpoint"], build)
        callbacks.append(checkpoints.AtomicCheckpoint(spec["last_checkpoint"]))
    if spec.get("epoch_checkpoint"):
        callbacks.append(keras.callbacks.ModelCheckpoint(spec["epoch_checkpoint"]))
    if spec["checkpoint"]:
        if spec["atomic"]:
            callbacks.append(checkpoints.AtomicCheckpoint(
                spec["checkpoint"], monitor=spec["monitor"], save_best_only=True,
                hook=faults.hook if faults else None))
        else:
            callbacks.append(keras.callbacks.ModelCheckpoint(
                spec["checkpoint"], monitor=spec["monitor"], save_best_only=True))
    callbacks.append(Recorder(log, spec["kill_after_epochs"], spec["kill_after_batches"]))

    model.fit(task.x_train, task.y_train, validation_data=task.validation_data,
              epochs=spec["epochs"], initial_epoch=initial_epoch, batch_size=spec["batch_size"],
              shuffle=False, verbose=0, callbacks=callbacks)
    weights = Path(log_path).with_suffix(".weights.npz")
    np.savez(weights, **{f"w{i}": w for i, w in enumerate(model.get_weights())})
    log.write("done", weights=str(weights.relative_to(Path.cwd())))


class Recorder(keras.callbacks.Callback):
    """Logs progress and kills the process after N epochs or N batches (of this process).

    It goes last in the callback list, so every other callback has finished the same batch or
    epoch when the kill comes.
    """

    def __init__(self, log: EventLog, kill_after_epochs: int | None,
                 kill_after_batches: int | None) -> None:
        super().__init__()
        self.log, self.kill_epochs, self.kill_batches = log, kill_after_epochs, kill_after_batches
        self.epochs = self.batches = 0
        self.started = False

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.started:  # fit's real start, after BackupAndRestore had its say
            self.log.write("train_begin", initial_epoch=epoch)
            self.started = True

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.batches += 1
        self.log.write("batch_end", batches=self.batches, batch=batch)
        if self.batches == self.kill_batches:
            _die()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epochs += 1
        self.log.write("epoch_end", epoch=epoch, logs={k: float(v) for k, v in (logs or {}).items()})
        if self.epochs == self.kill_epochs:
            _die()


if __name__ == "__main__":
    main(*sys.argv[1:3])
