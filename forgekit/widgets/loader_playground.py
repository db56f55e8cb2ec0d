"""Loader playground: pick an artifact (the right ones and the traps) and a loader; the real call
runs, and its real outcome is shown whole beside ``forgekit.doctor``'s diagnosis of the path.

The loaders are the failure lab's catalogue (:data:`forgekit.diagnose.loaders.LOADERS`, the
exact calls lesson 05 makes). Every load runs in the kernel: all of them are Keras 3 / TF calls.
Only *making* the Keras 2 file needs another interpreter (tf-keras), so it is written once, in a
fresh process, and reused.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from forgekit.widgets.base import Explorer, WidgetError, choose


@dataclass(frozen=True)
class Artifact:
    """An artifact the playground offers: label, file name, and whether it is a trap."""

    key: str
    label: str
    name: str  # path under the playground's folder, as a user would type it
    trap: str = ""  # what is wrong with it, for a trap


ARTIFACTS: dict[str, Artifact] = {a.key: a for a in (
    Artifact("keras", ".keras file", "model.keras"),
    Artifact("savedmodel", "SavedModel export (folder)", "export"),
    Artifact("h5", "legacy .h5", "model.h5"),
    Artifact("weights_h5", ".weights.h5", "model.weights.h5"),
    Artifact("misnamed", "trap: HDF5 bytes named .keras", "model_h5.keras",
             "a legacy .h5 file copied to a .keras name"),
    Artifact("too_low", "trap: export/variables (one folder too low)", "export/variables",
             "the variables/ folder inside the export, not the export"),
    Artifact("keras2", "trap: Keras 2 .h5 (written by tf-keras)", "keras2/model.h5",
             "written by Keras 2 (tf-keras), read here by Keras 3"),
)}

SAME_ATOL = 1e-5  # max |Δ| of predictions still read as "the same" (as the serving checks)

# Written in a fresh process that imports only tf-keras (Keras 2), like lesson 05's Keras 2 files.
_KERAS2_SNIPPET = """
import os
import numpy as np
import tf_keras
model = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(16, activation="relu"),
                             tf_keras.layers.Dense(2)])
model.compile(optimizer="adam", loss="mse")
x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
model.fit(x, x[:, :2], epochs=1, verbose=0)
model.save(PATH + ".partial.h5")
probe = np.random.default_rng(1).normal(size=(8, 4)).astype("float32")
np.save(PATH + ".inputs.npy", probe)  # so the kernel can compare what it loads with Keras 2's
np.save(PATH + ".predictions.npy", model.predict(probe, verbose=0))
os.replace(PATH + ".partial.h5", PATH)  # last: the file exists only once everything is written
"""


@dataclass
class LoadAttempt:
    """One loader on one artifact: what really happened, and what forgekit said beforehand."""

    artifact: Artifact
    loader: Any  # forgekit.diagnose.failures.Loader
    path: str
    ok: bool
    returned: str  # on success: what came back
    error_type: str | None
    message: str  # on failure: the exception's WHOLE message
    seconds: float
    diagnosis: Any  # forgekit.diagnose.diagnosis.ArtifactDiagnosis
    predicted: bool  # forgekit predicted this loader works on this path
    notes: list[str] = field(default_factory=list)

    @property
    def call(self) -> str:
        """The call as typed, with this path."""
        return self.loader.call.format(path=repr(self.path))

    @property
    def forgekit_says(self) -> str:
        """forgekit's verdict for this loader on this path, with the fix."""
        return self.loader.explain(self.diagnosis)

    @property
    def works_with(self) -> list[str]:
        """The loaders forgekit says read this path as given."""
        from forgekit.diagnose.loaders import LOADERS

        return [LOADERS[key].name for key in self.diagnosis.works_with]

    @property
    def agrees(self) -> bool:
        """forgekit's prediction matched what the call really did."""
        return self.ok == self.predicted

    @property
    def outcome(self) -> str:
        """The real outcome in one block: what came back, or the exception type and message."""
        return f"✓ {self.returned}" if self.ok else f"✗ {self.error_type}: {self.message}"

    def __str__(self) -> str:
        return (f"{self.call}\n{self.outcome}\n\nforgekit doctor ({self.diagnosis.kind}): "
                f"{self.forgekit_says}\nloaders that work: {', '.join(self.works_with) or 'none'}"
                f"\nload it with: {self.diagnosis.fix}")

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.ok else "#b42318"
        real = (f"<b>What really happened</b> ({self.seconds:.2f} s)<br><code>"
                f"{html.escape(self.call)}</code><pre style='white-space:pre-wrap;color:{color}'>"
                f"{html.escape(self.outcome)}</pre>")
        agree = ("✓ forgekit predicted this outcome" if self.agrees
                 else "✗ forgekit predicted the opposite")
        said = (f"<b>forgekit doctor on the path</b><br>{self.diagnosis._repr_html_()}"
                f"<p><b>this loader:</b> {html.escape(self.forgekit_says)}<br>"
                f"{html.escape(agree)}</p>")
        cell = "vertical-align:top;padding:4px 12px;width:50%"
        return (f"<table><tr><td style='{cell}'>{real}</td><td style='{cell}'>{said}</td>"
                "</tr></table>")


class LoaderPlayground(Explorer):
    """Run any of lesson 05's loaders on a correct artifact or a trap, and read forgekit's view.

    Args:
        workdir: a writable folder; the playground writes under ``workdir/loaders/`` only.
        artifacts: the artifact keys offered (default: all of :data:`ARTIFACTS`).
        timeout: seconds the fresh process that writes the Keras 2 file may take.
        prefetch: start writing the Keras 2 file at once, on a background thread (the fresh
            process imports TensorFlow for several seconds; the kernel stays free meanwhile).
    """

    title = "Loader playground"
    folder = "loaders"

    def __init__(self, workdir: str | os.PathLike[str], *, artifacts: list[str] | None = None,
                 timeout: float = 180.0, prefetch: bool = True) -> None:
        from forgekit.diagnose.loaders import LOADERS

        keys = list(artifacts) if artifacts is not None else list(ARTIFACTS)
        offered = {k: ARTIFACTS[choose(k, ARTIFACTS, "artifact", "LoaderPlayground.try_load")]
                   for k in keys}
        super().__init__(workdir)  # only once the arguments are good: it replaces the old one
        self.loaders = LOADERS
        self.artifacts = offered
        self.timeout = timeout
        self.history: list[LoadAttempt] = []
        self._model: Any = None
        self._keras2: Any = None  # the thread writing the Keras 2 file, when prefetching
        self._keras2_error: BaseException | None = None
        self._keras2_started = 0.0
        # The fresh tf-keras process, kept so close() can kill it instead of waiting for it.
        self._writer: subprocess.Popen[str] | None = None
        self._writer_lock = threading.Lock()
        if prefetch and "keras2" in self.artifacts:
            with self._starting():
                self._keras2 = threading.Thread(target=self._prefetch_keras2, daemon=True,
                                                name="forgekit-keras2-file")
                self._keras2.start()
                self._keras2_started = time.monotonic()

    # ------------------------------------------------------------------ artifacts

    def build(self) -> Any:
        """A new compiled model with the artifacts' architecture (for ``load_weights``)."""
        import keras

        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(2)])
        # A loss object, not "mse": Keras 3 cannot read that string back from an .h5's compile
        # config, and the misnamed trap should be about its name alone.
        model.compile(optimizer="adam", loss=keras.losses.MeanSquaredError())
        return model

    def path(self, artifact: str) -> str:
        """The artifact's path as a user would type it (made on first use)."""
        spec = self.artifacts[choose(artifact, self.artifacts, "artifact",
                                     "LoaderPlayground.path")]
        self._make(spec)
        return os.fspath(self.root / spec.name)

    def _make(self, spec: Artifact) -> None:
        from forgekit.keras_io.saving import save

        if spec.key == "keras2":
            self._make_keras2()
            return
        if self._model is None:
            import numpy as np

            self._step(0, 2, "training the small model the artifacts are saved from")
            self._model = self.build()
            x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
            self._model.fit(x, x[:, :2], epochs=1, verbose=0)
            self._step(1, 2, "saving .keras, SavedModel export, .h5, .weights.h5 and the traps")
            save(self._model, self.root / "model.keras", kind="keras")
            save(self._model, self.root / "export", kind="savedmodel")
            save(self._model, self.root / "model.h5", kind="h5_model")
            save(self._model, self.root / "model.weights.h5", kind="weights_h5")
            shutil.copy(self.root / "model.h5", self.root / "model_h5.keras")  # the misnamed one

    def _prefetch_keras2(self) -> None:
        try:
            self._write_keras2()
        except BaseException as exc:  # raised again by the first try_load that needs it
            self._keras2_error = exc

    def _make_keras2(self) -> None:
        if self._keras2 is not None:
            if self._keras2.is_alive():
                self._step(0, 2, "waiting for the fresh tf-keras process writing the Keras 2 "
                                 "file (started in the background)")
            self._keras2.join()
            self._keras2 = None
            if self._keras2_error is not None:
                error, self._keras2_error = self._keras2_error, None
                raise error
        if not (self.root / ARTIFACTS["keras2"].name).exists():
            self._step(0, 2, "writing the Keras 2 file in a fresh process (tf-keras), once")
        self._write_keras2()

    def _write_keras2(self) -> None:
        from forgekit.quiet import child_env

        target = self.root / ARTIFACTS["keras2"].name
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        code = f"PATH = {os.fspath(target)!r}\n" + _KERAS2_SNIPPET
        with self._writer_lock:  # close() must either see this process or stop it starting
            if self.closed:
                raise WidgetError("the playground was closed before the Keras 2 file was written",
                                  path=target, fix="create a new LoaderPlayground(workdir)")
            # Popen, not forgekit.measure.fresh.run_fresh: close() needs the handle to kill it.
            self._writer = subprocess.Popen(
                [sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True,
                env=child_env(unset=("TF_USE_LEGACY_KERAS",)))
        writer = self._writer
        try:
            _, stderr = writer.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            writer.kill()
            _, stderr = writer.communicate()
            stderr = f"no file within {self.timeout:g} s; the process was killed\n{stderr}"
        finally:
            with self._writer_lock:
                self._writer = None
        if writer.returncode != 0 or not target.exists():
            tail = "\n".join(stderr.strip().splitlines()[-3:]) or f"exit code {writer.returncode}"
            why = ("the playground was closed while it ran" if self.closed else tail)
            raise WidgetError(f"the fresh tf-keras process did not write the Keras 2 file "
                              f"({why})", path=target, found="no file",
                              expected="an HDF5 model written by tf-keras",
                              fix="check that tf-keras is installed: python -c 'import tf_keras'")

    def _release(self) -> None:
        # Kill the fresh process rather than wait for it (up to `timeout`): a re-run cell,
        # close_all() and kernel exit must not block on it, nor remove its folder under it.
        with self._writer_lock:
            writer = self._writer
        if writer is not None and writer.poll() is None:
            writer.kill()
            writer.wait()
        if self._keras2 is not None:  # its thread returns once the process is gone
            self._keras2.join(10.0)

    # ------------------------------------------------------------------ logic

    def try_load(self, artifact: str, loader: str) -> LoadAttempt:
        """Make ``artifact`` if needed, diagnose its path, run ``loader`` on it for real.

        ``artifact`` is a key of :data:`ARTIFACTS` (or its label); ``loader`` a key of
        ``forgekit.diagnose.loaders.LOADERS`` (``"load_model"``, ...) or its name
        (``"keras.models.load_model"``).
        """
        from forgekit.diagnose.diagnosis import diagnose_artifact
        from forgekit.quiet import muted_stderr, quiet_absl

        key = choose(artifact, self.artifacts, "artifact", "LoaderPlayground.try_load")
        loader_key = _loader_key(loader, self.loaders)
        spec, chosen = self.artifacts[key], self.loaders[loader_key]
        path = self.path(key)
        self._step(1, 3, f"forgekit doctor on {spec.name}")
        diagnosis = diagnose_artifact(path)
        predicted = diagnosis.error is None and chosen.works(diagnosis)
        self._step(2, 3, f"running {chosen.name} for real")
        started = time.perf_counter()
        error: BaseException | None = None
        with warnings.catch_warnings(), muted_stderr(), quiet_absl():
            warnings.simplefilter("ignore")
            try:
                value = chosen.run(path, self.build)
            except Exception as exc:  # the point: show whatever the real call raises
                error, value = exc, None
        seconds = time.perf_counter() - started
        attempt = LoadAttempt(
            spec, chosen, path, error is None,
            _describe(value, self._reference(key)) if error is None else "",
            None if error is None else type(error).__name__,
            "" if error is None else _whole_message(error), seconds, diagnosis, predicted)
        self.history.append(attempt)
        self._step(3, 3, f"{chosen.name} on {spec.name}: "
                         f"{'loaded' if attempt.ok else attempt.error_type} "
                         f"({seconds:.2f} s)")
        return attempt

    def _reference(self, key: str) -> Callable[[Any], float | None]:
        """max |prediction - the saved model's| for a loaded thing, when it can predict."""
        import numpy as np

        if key == "keras2":  # another model: compare with what Keras 2 itself predicted
            saved = os.fspath(self.root / ARTIFACTS["keras2"].name)
            x, expected = np.load(saved + ".inputs.npy"), np.load(saved + ".predictions.npy")
        else:
            x = np.random.default_rng(1).normal(size=(8, 4)).astype("float32")
            expected = None if self._model is None else self._model.predict(x, verbose=0)

        def diff(value: Any) -> float | None:
            if expected is None:
                return None
            if hasattr(value, "predict"):
                got = value.predict(x, verbose=0)
            elif hasattr(value, "serve"):
                got = value.serve(x)
            elif callable(value):
                got = value(x)
            else:
                return None
            if isinstance(got, dict):
                got = next(iter(got.values()))
            got = np.asarray(got)
            return float(np.max(np.abs(got - expected))) if got.shape == expected.shape else None

        return diff

    # ------------------------------------------------------------------ view

    def _build_ui(self) -> Any:
        import ipywidgets as w

        self.artifact_picker = w.Dropdown(
            options=[(a.label, k) for k, a in self.artifacts.items()], description="artifact",
            layout=w.Layout(width="420px"))
        self.loader_picker = w.Dropdown(
            options=[(ld.name, k) for k, ld in self.loaders.items()], description="loader",
            layout=w.Layout(width="380px"))
        self.button = w.Button(description="Load it", button_style="primary", icon="play")
        self.result = w.HTML()
        self.button.on_click(self._clicked)
        return w.VBox([w.HBox([self.artifact_picker, self.loader_picker]),
                       w.HBox([self.button, *self._status_widgets()]), self.result])

    def _clicked(self, _button: Any = None) -> None:
        if self.artifact_picker.value == "keras2" and self._keras2 is not None \
                and self._keras2.is_alive():
            # Never block the kernel on the fresh process: say so, and let the learner go on.
            waited = time.monotonic() - self._keras2_started
            self._step(0, 1, f"the Keras 2 file is still being written by a fresh tf-keras "
                             f"process (started {waited:.0f} s ago); click again in a few "
                             "seconds")
            return
        self.button.disabled = True
        try:
            self._run_safely(
                lambda: self.try_load(self.artifact_picker.value, self.loader_picker.value),
                lambda attempt: setattr(self.result, "value", attempt._repr_html_()),
                lambda shown: setattr(self.result, "value", shown))
        finally:
            self.button.disabled = self.closed


def _loader_key(loader: str, loaders: dict[str, Any]) -> str:
    if loader in loaders:
        return loader
    for key, candidate in loaders.items():
        if loader == candidate.name:
            return key
    raise WidgetError(f"unknown loader {loader!r}", found=repr(loader),
                      expected=" | ".join(loaders),
                      fix="LoaderPlayground.try_load('keras', 'load_model')")


def _whole_message(exc: BaseException) -> str:
    """The exception's whole message (KeyError's str() is the repr of its argument)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return text.strip() or repr(exc)


def _describe(value: Any, diff: Callable[[Any], float | None]) -> str:
    """What a loader gave back, and whether it predicts like the saved model."""
    kind = type(value).__name__
    what = f"a {kind}"
    if hasattr(value, "layers") and hasattr(value, "count_params"):  # a Keras model
        what += f" with {len(value.layers)} layers, {value.count_params():,} parameters"
    try:
        delta = diff(value)
    except Exception as exc:  # shown, not hidden: the object loaded but cannot be called so
        return f"{what}; calling it on test inputs failed ({type(exc).__name__})"
    if delta is None:
        return what + "; it cannot be compared by predictions"
    # float32 noise (a SavedModel or TFLite graph sums in another order) is not a difference
    same = (f"the same predictions as the model that was saved (max |Δ| {delta:.2g})"
            if delta <= SAME_ATOL else
            f"predictions differ from those of the model that was saved by up to {delta:.3g}")
    return f"{what}; {same}"
