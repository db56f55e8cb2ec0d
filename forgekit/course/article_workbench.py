"""The article audit's workbench: its sizes (:class:`AuditSettings`) and its working folder
with the artifacts several rows share (:class:`Workbench`: one trained model, its export, one
probe of every format...), each built on first use."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AuditSettings:
    """Sizes of the audit's experiments. ``AuditSettings()`` is the workshop size,
    :meth:`ci` the small one the tests use; :meth:`named` picks one by name."""

    samples: int = 1024  # training rows of the shared regression model
    features: int = 16
    units: int = 128  # width of its two hidden layers
    epochs: int = 5
    checkpoint_units: int = 64  # the interrupted classification run (an overfitting task)
    checkpoint_epochs: int = 8
    resume_epochs: int = 6  # the stop-and-resume comparison
    resume_at: int = 3
    poll_seconds: float = 0.5  # how often the local model server scans its base path

    @classmethod
    def ci(cls) -> AuditSettings:
        """Small sizes: the whole audit in well under a minute on two cores."""
        return cls(samples=256, units=32, epochs=2, checkpoint_epochs=6, resume_epochs=4,
                   resume_at=2, poll_seconds=0.2)

    @classmethod
    def named(cls, name: str) -> AuditSettings:
        """``"workshop"`` or ``"ci"``."""
        if name not in ("workshop", "ci"):
            raise ValueError(f"audit size must be 'workshop' or 'ci', not {name!r}")
        return cls() if name == "workshop" else cls.ci()


class Workbench:
    """The audit's working folder and the artifacts several rows share (one trained model, its
    export, one probe of every format...), each built on first use. A shared step that failed
    fails every row that needs it, with the same exception, without being retried."""

    def __init__(self, workdir: str | os.PathLike[str], settings: AuditSettings) -> None:
        self.workdir = Path(workdir)
        self.settings = settings
        self._memo: dict[str, Any] = {}
        self._cleanups: list[Callable[[], Any]] = []
        self.asked: list[str] = []  # every key asked for, in order (what a row reused)

    def folder(self, name: str) -> Path:
        """A fresh folder for one experiment under the workdir."""
        path = self.workdir / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` the first time ``key`` is asked for; the same value (or the same
        exception) after that. ``make`` takes no arguments, so nothing it needs (a fresh
        folder, a trained model) is prepared again when the value is already there."""
        self.asked.append(key)
        if key not in self._memo:
            try:
                self._memo[key] = (True, make())
            except Exception as exc:  # kept: every row that needs it reports this error
                self._memo[key] = (False, exc)
        ok, value = self._memo[key]
        if not ok:
            raise value
        return value

    def built(self) -> set[str]:
        """The keys whose artifact exists (or failed) already."""
        return set(self._memo)

    def on_close(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` when the audit ends (stop a server)."""
        self._cleanups.append(fn)

    def close(self) -> None:
        """Run the cleanups, newest first, and let go of the shared artifacts; never raises."""
        self._memo.clear()
        while self._cleanups:
            with contextlib.suppress(Exception):  # a cleanup must not hide the audit's result
                self._cleanups.pop()()

    # the shared artifacts ---------------------------------------------------------------

    def task(self) -> Any:
        """The regression task of the shared model."""
        from forgekit.training import make_task

        s = self.settings
        return self.shared("task", lambda: make_task("regress", n_train=s.samples, n_val=64,
                                                     n_features=s.features))

    def build(self) -> Any:
        """A fresh compiled model with the shared model's architecture (Adam, ``loss="mse"``)."""
        from forgekit.training import build_model

        return build_model(self.task(), width=self.settings.units)

    def model(self) -> Any:
        """The shared model, trained, so it has optimizer state worth keeping."""
        def train() -> Any:
            model = self.build()
            task = self.task()
            model.fit(task.x_train, task.y_train, epochs=self.settings.epochs, batch_size=32,
                      verbose=0)
            return model

        return self.shared("model", train)

    def served_models(self) -> tuple[Any, Any]:
        """Two versions of one served model: the one in production and its retrained successor
        (other data), built by the same code, so their signatures match (input ``x``) and only
        their answers differ, as in the incident."""
        def train() -> tuple[Any, Any]:
            import keras

            from forgekit.training import make_task

            s = self.settings

            def version(seed: int, noise: float) -> Any:
                task = make_task("regress", n_train=s.samples, n_val=64, n_features=s.features,
                                 noise=noise, seed=seed)
                init = keras.initializers.GlorotUniform(seed=seed)
                model = keras.Sequential([
                    keras.Input((s.features,), name="x"),
                    keras.layers.Dense(s.units, activation="relu", kernel_initializer=init),
                    keras.layers.Dense(1, kernel_initializer=init)], name="forecast")
                model.compile(optimizer="adam", loss="mse")
                model.fit(task.x_train, task.y_train, epochs=s.epochs, batch_size=32, verbose=0)
                return model

            return version(0, 0.1), version(1, 0.3)

        return self.shared("served_models", train)

    def inputs(self) -> Any:
        """Fixed inputs every prediction comparison uses."""
        from forgekit.measure.compare import fixed_inputs

        return self.shared("inputs", lambda: fixed_inputs(self.model()))

    def export(self) -> Path:
        """The shared model exported as a SavedModel (``model.export``)."""
        def export() -> Path:
            path = self.folder("export") / "export"
            self.model().export(path, verbose=False)
            return path

        return self.shared("export", export)
