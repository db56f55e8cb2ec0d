"""Serving timeline: deploy to a running local server, right and wrong, and watch what answers.

A real TF-Serving-compatible server (:class:`forgekit.serving.process.InProcessServer`, on a
thread of the kernel, as lessons 06 and 07 run it: no second TensorFlow process) watches a base
path through a ``models.config``. Each action is the real deployment step: ``publish`` (a new
version, atomically), a flat ``model.h5`` saved beside the version folders (lesson 06's
incident), an export over the version being served, a rollback or a label flip through the
config. After each one the timeline records which version answers (metadata), which deployed
model its predictions match, and whether ``verify_deployment`` passes, with the problems named.
"""

from __future__ import annotations

import contextlib
import html
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forgekit.table import Table
from forgekit.widgets.base import Explorer, WidgetError, figure_png

PROBE = np.random.default_rng(12345).normal(size=(3, 4)).astype("float32")  # known inputs


@dataclass
class TimelineStep:
    """What answered after one action, and whether the deployment check passed."""

    step: int
    action: str
    expected_version: int | None  # the version the deployer meant to serve
    answering_version: int | None  # what the server's metadata says answers
    answers_like: str  # which deployed model the served predictions match ("?" if none)
    verified: bool
    problems: list[str]
    label: str | None = None
    seconds: float = 0.0
    report: Any = field(default=None, repr=False)  # the VerificationReport

    def row(self) -> list[str]:
        """The step as a table row."""
        return [str(self.step), self.action,
                "-" if self.expected_version is None else str(self.expected_version),
                "-" if self.answering_version is None else str(self.answering_version),
                self.answers_like,
                "✓ passes" if self.verified else "✗ " + ", ".join(self.problems),
                f"{self.seconds:.2f}"]


class ServingTimeline(Explorer):
    """A local model server and the deployment actions that keep or break what it serves.

    Args:
        workdir: a writable folder; everything goes under ``workdir/serving/`` (removed by
            :meth:`close`, which also stops the server).
        model_name: the served model's name.
        poll_seconds: how often the server scans the base path and re-reads the config.
        wait: seconds a check waits for a version or config the server has not picked up yet.
        start: start the server now (otherwise on the first action).

    Only one timeline runs a server at a time: creating a second one closes the first.
    """

    title = "Serving timeline"
    folder = "serving"

    def __init__(self, workdir: str | os.PathLike[str], model_name: str = "demo", *,
                 poll_seconds: float = 0.5, wait: float = 10.0, start: bool = True) -> None:
        if not model_name.replace("_", "").replace("-", "").isalnum():
            raise WidgetError(f"model name {model_name!r} cannot be used in a URL",
                              expected="letters, digits, - and _",
                              fix="ServingTimeline(workdir, model_name='demo')")
        super().__init__(workdir)  # only once the arguments are good: it replaces the old one
        self.model_name = model_name
        self.poll_seconds = poll_seconds
        self.wait = wait
        self.base = self.root / "models" / model_name
        self.config = self.root / "models" / "models.config"
        self.history: list[TimelineStep] = []
        self.records: dict[int, Any] = {}  # version -> PublishRecord
        self.expected: Any = None  # the record of what should answer now
        self.label: str | None = None  # checks address this label when set
        self.server: Any = None
        self.client: Any = None
        self._outputs: dict[str, np.ndarray] = {}  # deployed model -> its answers to PROBE
        self._made = 0
        if start:
            with self._starting():  # a server that does not start leaves nothing registered
                self.start()

    def _replaces(self, other: Explorer) -> bool:
        # one server at a time (memory, and no server left behind)
        return isinstance(other, ServingTimeline) or super()._replaces(other)

    # ------------------------------------------------------------------ server

    def start(self) -> ServingTimeline:
        """Write the config and start the server (no-op when it runs)."""
        from forgekit.serving.config import ModelEntry, write_model_config
        from forgekit.serving.process import InProcessServer

        if self.closed:
            raise WidgetError("this timeline was closed (its server stopped, files removed)",
                              path=self.root, fix="create a new ServingTimeline(workdir)")
        if self.server is not None and self.server.running:
            return self
        self._step(0, 1, "starting the model server")
        self.base.mkdir(parents=True, exist_ok=True)
        write_model_config(self.config, [ModelEntry(self.model_name, self.base)])
        poll = max(1, int(self.poll_seconds))  # whole seconds; a fraction paces both polls
        server = InProcessServer(
            model_config_file=self.config, file_system_poll_wait_seconds=self.poll_seconds,
            extra_args=["--allow_version_labels_for_unavailable_models",
                        f"--model_config_file_poll_wait_seconds={poll}"])
        try:
            server.start()
        except Exception as exc:
            raise WidgetError(f"the model server did not start ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})",
                              path=self.config, found="no answering server",
                              expected="forgekit serve answering on a free local port",
                              fix="close other explorers (forgekit.widgets.close_all()) and "
                                  "try again; the server log is in the exception") from exc
        self.server, self.client = server, server.client()
        self._step(1, 1, f"server answering at {server.rest_url}")
        return self

    @property
    def rest_url(self) -> str | None:
        """The server's REST address while it runs."""
        return self.server.rest_url if self.server is not None else None

    def _release(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if self.server is not None:
            self.server.stop()  # if this raises, close() still removes the folder, then raises

    # ------------------------------------------------------------------ models

    def _new_model(self) -> Any:
        """A tiny model, perturbed differently each time (so every deployment is told apart)."""
        import keras

        self._made += 1
        rng = np.random.default_rng(self._made)
        model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2, name="y")])
        model.set_weights([rng.normal(size=(4, 2)).astype("float32"),
                           rng.normal(size=2).astype("float32")])
        return model

    def _remember(self, name: str, model: Any) -> None:
        self._outputs[name] = np.asarray(model(PROBE))

    def _expect(self, model: Any, version: int, name: str) -> Any:
        """What a check should expect after a deploy that :func:`publish` did not make."""
        from forgekit.serving.deploy import record_for

        return record_for(model, self.base, version, model_name=self.model_name,
                          canary_path=self.root / "expected" / f"{name}.canary.json")

    def _reset_policy(self) -> bool:
        """Back to "serve the latest version" after a rollback pinned one; True if changed."""
        from forgekit.serving.config import ModelEntry, read_model_config, write_model_config

        (entry,) = read_model_config(self.config)
        if entry.policy == "latest" and not entry.labels:
            return False
        write_model_config(self.config, [ModelEntry(self.model_name, self.base)])
        return True

    # ------------------------------------------------------------------ actions

    def publish(self) -> TimelineStep:
        """``forgekit.serving.deploy.publish`` a new model as the next version, then check."""
        from forgekit.serving.deploy import publish

        self.start()
        self._step(0, 3, "exporting the new version (publish)")
        model = self._new_model()
        # publish first: if it fails, nothing changed (the policy is only reset once a new
        # version is in place), so the timeline's state still matches models.config
        record = publish(model, self.base, model_name=self.model_name)
        self.records[record.version] = record
        self._remember(f"v{record.version}", model)
        reset = self._reset_policy()
        self.expected, self.label = record, None
        self._step(1, 3, f"waiting for the server to load version {record.version}")
        with contextlib.suppress(TimeoutError):  # the check below reports it by name
            self.client.wait_for_version(self.model_name, record.version, timeout=self.wait)
        action = f"publish v{record.version}" + (" (policy back to latest)" if reset else "")
        return self._record(action, wait=self.wait)

    def plant_flat_deploy(self) -> TimelineStep:
        """The incident: a new model saved as ``model.h5`` beside the version folders."""
        from forgekit.quiet import quiet_absl
        from forgekit.serving.deploy import next_version

        self.start()
        self._step(0, 3, "saving the new model as a flat model.h5 in the base path")
        model = self._new_model()
        model.compile(optimizer="adam", loss="mse")  # a trained model would be compiled
        with quiet_absl():  # Keras's "HDF5 is legacy" warning: the lesson is elsewhere
            model.save(self.base / "model.h5")  # the plain Keras call the incident used
        intended = next_version(self.base)
        self._remember(f"flat model.h5 (meant as v{intended})", model)
        self.expected = self._expect(model, intended, "flat")
        self.label = None
        self._step(1, 3, f"giving the server {3 * self.poll_seconds:g} s (three scans)")
        return self._record(f"flat model.h5 (meant as v{intended})",
                            wait=3 * self.poll_seconds)

    def overwrite_in_place(self) -> TimelineStep:
        """``model.export`` over the version folder being served (the server never rereads it)."""
        self.start()
        version = self._answering() or max(self.records, default=0)
        if not version:
            raise WidgetError("nothing is served yet, so there is no version to overwrite",
                              path=self.base, fix="tl.publish() first")
        self._step(0, 3, f"exporting a new model over version folder {version}")
        model = self._new_model()
        model.export(str(self.base / str(version)), verbose=False)
        self._remember(f"overwrite of v{version}", model)
        self.expected, self.label = self._expect(model, version, f"overwrite-{version}"), None
        self._step(1, 3, f"giving the server {3 * self.poll_seconds:g} s (three scans)")
        return self._record(f"overwrite v{version} in place", wait=3 * self.poll_seconds)

    def rollback(self, version: int | None = None, *, label: str | None = None
                 ) -> TimelineStep:
        """Serve ``version`` again through ``models.config`` (``serving.rollback``), then check.

        ``version`` defaults to the published version before the newest one. With ``label``
        (e.g. ``"stable"``) the label is pointed at it instead of pinning the policy, and the
        checks address the label.
        """
        from forgekit.serving.rollback import rollback

        self.start()
        if version is None:
            earlier = sorted(self.records)[:-1]
            if not earlier:
                raise WidgetError("there is no earlier published version to roll back to",
                                  path=self.base, fix="tl.publish() twice, then tl.rollback()")
            version = earlier[-1]
        if int(version) not in self.records:
            raise WidgetError(f"version {version} was not published by this timeline",
                              path=self.base, found=str(version),
                              expected=" | ".join(map(str, sorted(self.records))) or "none yet",
                              fix=f"tl.rollback({max(self.records, default=1)})")
        version = int(version)
        self._step(0, 2, f"editing models.config: {'label ' + repr(label) if label else 'policy'}"
                         f" -> version {version}")
        what = f"label {label} -> v{version}" if label else f"rollback to v{version}"
        try:
            done = rollback(self.config, self.model_name, version, label=label,
                            client=self.client, wait=self.wait)
        except Exception as exc:
            # models.config may already be rewritten (a label rollback adds the version to the
            # policy, then waits for it): follow the config, and record the step as failed
            self._follow_config()
            step = self._record(f"{what} (failed)", failure=exc)
            if isinstance(exc, TimeoutError):  # a measured outcome: the server was too slow
                return step
            raise
        self.expected, self.label = self.records[version], label
        return self._record(what, report=done.report)

    def _follow_config(self) -> None:
        """Set what a check expects from models.config as it is now (after a failed edit)."""
        from forgekit.formats.serving_base import version_numbers
        from forgekit.serving.config import read_model_config

        (entry,) = read_model_config(self.config)
        if self.label is not None and self.label in entry.labels:
            version = entry.labels[self.label]
        else:  # un-addressed requests go to the newest version the policy serves
            self.label = None
            on_disk = version_numbers(self.base) if self.base.is_dir() else []
            served = [v for v in on_disk if v in entry.versions] \
                if entry.policy == "specific" else on_disk
            version = max(served, default=0)
        if version in self.records:
            self.expected = self.records[version]

    def set_label(self, label: str, version: int) -> TimelineStep:
        """Point ``label`` at ``version`` (a label flip; see :meth:`rollback`)."""
        return self.rollback(version, label=label)

    def check(self) -> TimelineStep:
        """Check the current expectation again (what answers, and ``verify_deployment``)."""
        self.start()
        if self.expected is None:
            raise WidgetError("nothing was deployed yet, so there is nothing to check",
                              path=self.base, fix="tl.publish() first")
        return self._record("check", wait=3 * self.poll_seconds)

    # ------------------------------------------------------------------ recording

    def _answering(self) -> int | None:
        from forgekit.serving.error_codes import ServingError

        try:
            meta = self.client.metadata(self.model_name, label=self.label)
            return int(meta["model_spec"]["version"])
        except (ServingError, KeyError, ValueError):
            return None

    def _answers_like(self) -> str:
        """Which deployed model the served predictions on PROBE match."""
        from forgekit.serving.error_codes import ServingError

        try:
            served = np.asarray(self.client.predict(self.model_name, inputs={"x": PROBE},
                                                    label=self.label)["outputs"])
        except (ServingError, KeyError) as exc:
            return f"no answer ({type(exc).__name__})"
        matches = [name for name, out in self._outputs.items()
                   if out.shape == served.shape and np.allclose(out, served, atol=1e-5)]
        return matches[-1] if matches else "?"

    def _record(self, action: str, *, wait: float = 0.0, report: Any = None,
                failure: BaseException | None = None) -> TimelineStep:
        from forgekit.serving.verify import Check, verify_deployment

        started = time.perf_counter()
        self._step(2, 3, f"{action}: verifying the deployment")
        if report is None:
            report = verify_deployment(self.client, self.model_name, self.expected,
                                       label=self.label, wait=wait)
        if failure is not None:  # the action itself failed: the step fails, whatever answers
            report.checks.append(Check("action_failed", False,
                                       f"{type(failure).__name__}: {failure}"))
        step = TimelineStep(len(self.history) + 1, action, int(self.expected.version),
                            self._answering(), self._answers_like(), report.ok,
                            list(report.problems), self.label,
                            time.perf_counter() - started + report.seconds, report)
        self.history.append(step)
        verdict = "passes" if step.verified else "FAILS: " + ", ".join(step.problems)
        self._step(3, 3, f"step {step.step}, {action}: version {step.answering_version} "
                         f"answers; verification {verdict}")
        return step

    # ------------------------------------------------------------------ views

    def table(self) -> Table:
        """Every step: action, expected and answering version, match, verification."""
        table = Table(["step", "action", "expected", "answering (metadata)",
                       "predictions match", "verify_deployment", "s"],
                      title=f"Serving timeline of {self.model_name!r}", max_width=60)
        for step in self.history:
            table.add(*step.row())
        return table

    def plot(self) -> Any:
        """The timeline: version answering per step, marker = verification pass/fail."""
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        fig = Figure(figsize=(max(6.0, 1.1 * len(self.history) + 2), 3.4))
        ax = fig.subplots()
        steps = [s.step for s in self.history]
        answering = [s.answering_version if s.answering_version is not None else np.nan
                     for s in self.history]
        expected = [s.expected_version for s in self.history]
        ax.step(steps, expected, where="mid", color="#999", linestyle="--",
                label="version meant to answer")
        ax.plot(steps, answering, color="#4c78a8", linewidth=1, zorder=1)
        for ok, marker, color, text in ((True, "o", "#1a7f37", "verification passes"),
                                        (False, "X", "#b42318", "verification fails")):
            xs = [s.step for s in self.history if s.verified is ok]
            ys = [a for s, a in zip(self.history, answering, strict=True) if s.verified is ok]
            if xs:
                ax.scatter(xs, ys, marker=marker, s=90, color=color, zorder=2, label=text)
        for s, y in zip(self.history, answering, strict=True):
            ax.annotate(s.action, (s.step, y if not np.isnan(y) else 0), rotation=20,
                        textcoords="offset points", xytext=(4, 8), fontsize=8)
        ax.set(xlabel="step", ylabel="version answering (metadata)",
               title=f"Which version of {self.model_name!r} answers after each action")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        top = max([*expected, *(a for a in answering if not np.isnan(a)), 1])
        ax.set_ylim(0, top + 1)
        if steps:
            ax.set_xlim(0.5, max(steps) + 1.5)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        return fig

    def _build_ui(self) -> Any:
        import ipywidgets as w

        buttons = {
            "publish new version": self.publish,
            "plant flat model.h5": self.plant_flat_deploy,
            "overwrite in place": self.overwrite_in_place,
            "roll back": self.rollback,
            "check": self.check,
        }
        self.buttons = {}
        for text, action in buttons.items():
            button = w.Button(description=text, layout=w.Layout(width="170px"))
            button.on_click(lambda _b, action=action: self._clicked(action))
            self.buttons[text] = button
        self.label_name = w.Text(value="stable", description="label",
                                 layout=w.Layout(width="180px"))
        self.label_version = w.BoundedIntText(value=1, min=1, max=10_000, description="version",
                                              layout=w.Layout(width="150px"))
        flip = w.Button(description="point label", layout=w.Layout(width="120px"))
        flip.on_click(lambda _b: self._clicked(
            lambda: self.set_label(self.label_name.value, self.label_version.value)))
        self.buttons["point label"] = flip
        self.report = w.HTML()
        self.chart = w.Image(format="png", layout=w.Layout(max_width="720px"))
        self.steps = w.HTML()
        return w.VBox([
            w.HBox(list(self.buttons.values())[:5]),
            w.HBox([self.label_name, self.label_version, flip]),
            w.HBox(self._status_widgets()), self.chart, self.steps, self.report])

    def _clicked(self, action: Any) -> None:
        for button in self.buttons.values():
            button.disabled = True
        try:
            self._run_safely(action, self._show,
                             lambda shown: setattr(self.report, "value", shown))
        finally:
            for button in self.buttons.values():
                button.disabled = self.closed

    def _show(self, step: TimelineStep) -> None:
        self.chart.value = figure_png(self.plot())
        self.steps.value = self.table()._repr_html_()
        self.report.value = (f"<b>step {step.step}: {html.escape(step.action)}</b>"
                             + step.report.html())
