"""A Keras callback that records a training run and its per-epoch metrics in an audit store.

``model.fit(..., callbacks=[AuditCallback(store, name="baseline", params={...})])`` writes one
``runs`` row when training begins (parameters, library versions, git commit), one transaction
of ``metrics`` rows per epoch (whatever ``logs`` holds: loss, val_loss, ...), and the end time
and status when training ends. ``callback.run_id`` is then the id to link saved artifacts to.

Recording never stops training: if the store refuses a write (unreachable, read-only, a value it
cannot keep), the callback logs a warning on the ``forgekit.audit`` logger and ``fit`` goes on;
the run then lacks those rows, which the warning names. NaN and inf losses are recorded as
they are (see :class:`forgekit.audit.schema.MetricValue`).
"""

from __future__ import annotations

import contextlib
import logging
import platform
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import keras
import sqlalchemy as sa

from forgekit.audit.errors import AuditError
from forgekit.audit.store import AuditStore

log = logging.getLogger("forgekit.audit")
# what a store can raise on a write; anything else is a bug and propagates
_STORE_ERRORS = (AuditError, sa.exc.SQLAlchemyError, OSError)
LIBRARIES = ("tensorflow", "keras", "numpy", "h5py", "forgekit")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a saved model depends on, plus Python's."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_state(folder: str | Path | None = None) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout around ``folder`` (default: the working
    directory), or ``(None, None)`` outside one or without git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty


class AuditCallback(keras.callbacks.Callback):
    """Record a ``fit`` as a run in ``store``, with every epoch's ``logs`` as metric rows.

    Args:
        store: an open :class:`~forgekit.audit.store.AuditStore`.
        name: the run's name (what a person will recognise in ``forgekit audit runs``).
        params: the hyper-parameters to record; the optimizer, learning rate, epochs and
            steps per epoch are added from the model and ``fit``.
    """

    def __init__(self, store: AuditStore, name: str,
                 params: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.store = store
        self.name = name
        self.user_params = dict(params or {})
        self.run_id: int | None = None
        self.failures: list[str] = []  # one line per write the store refused

    def _record(self, what: str, write: Any, *args: Any, **kw: Any) -> Any:
        try:
            return write(*args, **kw)
        except _STORE_ERRORS as exc:
            self.failures.append(f"{what}: {exc}")
            log.warning("AuditCallback could not record %s; training continues: %s", what, exc)
            return None

    def _fit_params(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            found["optimizer"] = type(optimizer).__name__
            lr = getattr(optimizer, "learning_rate", None)
            with contextlib.suppress(TypeError, ValueError, AttributeError):  # a schedule
                value = float(lr.numpy() if hasattr(lr, "numpy") else lr)
                found["learning_rate"] = float(f"{value:.6g}")  # float32 1e-3, not 0.0010000000474
        for key in ("epochs", "steps"):
            if self.params and self.params.get(key) is not None:
                found[key] = self.params[key]
        found["parameters"] = int(self.model.count_params())
        return found

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        commit, dirty = git_state()
        self.run_id = self._record(
            f"the start of run {self.name!r}", self.store.start_run,
            self.name, params={**self._fit_params(), **self.user_params},
            versions=library_versions(), git_commit=commit, git_dirty=dirty)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.run_id is None:
            return  # the run itself could not be recorded (already logged)
        values = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
        self._record(f"epoch {epoch} of run {self.run_id}", self.store.log_metrics,
                     self.run_id, epoch, values)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        # Keras calls this only when fit returns; a crashed run keeps status "running".
        if self.run_id is not None:
            self._record(f"the end of run {self.run_id}", self.store.end_run, self.run_id,
                         status="finished")


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
