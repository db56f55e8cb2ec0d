"""The original article's factual claims, each re-measured on the installed TensorFlow.

The course grew out of a Keras-2-era article on saving and serving models. :data:`ROWS` holds
every factual claim it makes, restated in the course's own words (:class:`ArticleClaim`), with
the forgekit function a lesson uses to measure that topic (``experiment``) and the verdict the
course's prose states for the pinned versions (``expected``). :func:`audit` runs each
experiment, turns the numbers into a verdict by code (``holds``, ``does not hold``, ``partly``;
``error`` when the experiment itself failed) with a reason computed from the same numbers, and
records each row as a course claim (:func:`forgekit.claim`): the claim holds while the measured
verdict is the one the course states, so a TensorFlow release that changes a verdict fails the
build and sends someone back to the prose.

Each row is three pieces: the experiment (a forgekit function, never defined here), a
``measure`` step that calls it on the audit's shared artifacts and returns plain numbers, and a
``judge`` that turns those numbers into named checks and a reason. The verdict is the same rule
for every row (:func:`verdict_of`): every check true, none, or some.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgekit.table import Table

VERDICTS = ("holds", "does not hold", "partly")
ERROR = "error"  # the experiment raised: no verdict was measured
# The evidence keys each row's claim carries (the site's claims page reads exactly these).
EVIDENCE_KEYS = ("article_row", "article_claim", "measured_verdict", "reason", "experiment",
                 "lesson")

Numbers = dict[str, Any]  # measured values: numbers, booleans, short strings
Judgement = tuple[dict[str, bool], str]  # named checks, the reason in words


# --------------------------------------------------------------------------------------------
# the data model


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


def _dotted(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


@dataclass(frozen=True)
class ArticleClaim:
    """One claim of the article: the statement in the course's words, the lesson that teaches
    it, the forgekit function that measures it, and the verdict the course states.

    ``measure(experiment, lab)`` calls ``experiment`` on the audit's shared artifacts and
    returns the numbers; ``judge(numbers)`` returns named checks and the reason. Registration
    refuses a row without a real forgekit experiment.
    """

    id: str
    statement: str
    lesson: str
    experiment: Callable[..., Any]
    expected: str
    measure: Callable[[Callable[..., Any], Lab], Numbers] = field(repr=False)
    judge: Callable[[Numbers], Judgement] = field(repr=False)

    def __post_init__(self) -> None:
        from forgekit.course.map import LESSONS

        where = f"article row {self.id!r}"
        fn = self.experiment
        if fn is None or not callable(fn):
            raise ValueError(f"{where} has no experiment: give the forgekit function that "
                             "measures it")
        module, name = getattr(fn, "__module__", "") or "", getattr(fn, "__qualname__", "")
        if not module.startswith("forgekit.") or module == __name__ or "<" in name:
            raise ValueError(f"{where}: the experiment must be a named forgekit function a "
                             f"lesson uses, not {module}.{name or fn!r}")
        if self.expected not in VERDICTS:
            raise ValueError(f"{where}: expected must be one of {VERDICTS}, not "
                             f"{self.expected!r}")
        if self.lesson not in {lesson.notebook for lesson in LESSONS}:
            raise ValueError(f"{where}: {self.lesson!r} is not a lesson of the course map")

    @property
    def experiment_name(self) -> str:
        """The experiment's dotted name (``forgekit.sizes.breakdown``)."""
        return _dotted(self.experiment)

    @property
    def claim_text(self) -> str:
        """The fixed text of this row's course claim (numbers go in its evidence)."""
        return f"article row {self.id}: the measured verdict is still '{self.expected}'"


@dataclass
class AuditRow:
    """One claim as measured: numbers, the verdict they give, and why."""

    id: str
    statement: str
    experiment: str
    lesson: str
    measured: Numbers
    verdict: str
    reason: str
    expected: str
    seconds: float
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def as_expected(self) -> bool:
        """The measured verdict is the one the course's prose states."""
        return self.verdict == self.expected

    def evidence(self) -> dict[str, Any]:
        """The claim's evidence: the fixed keys, then the numbers."""
        return {"article_row": self.id, "article_claim": self.statement,
                "measured_verdict": self.verdict, "reason": self.reason,
                "experiment": self.experiment, "lesson": self.lesson,
                "expected_verdict": self.expected, "seconds": round(self.seconds, 2),
                **self.measured}


def verdict_of(checks: Mapping[str, bool]) -> str:
    """``holds`` when every check is true, ``does not hold`` when none is, else ``partly``."""
    if not checks:
        raise ValueError("a verdict needs at least one check")
    passed = sum(bool(v) for v in checks.values())
    return "holds" if passed == len(checks) else "does not hold" if passed == 0 else "partly"


_MARKS = {"holds": "✓ holds", "does not hold": "✗ does not hold", "partly": "◐ partly",
          ERROR: "✗ error"}
_COLORS = {"holds": "#1a7f37", "does not hold": "#b42318", "partly": "#bf8700", ERROR: "#6e7781"}


@dataclass
class ArticleAudit:
    """Every audited row, the versions it ran on and the settings it used."""

    rows: list[AuditRow]
    versions: dict[str, str | None]
    settings: AuditSettings
    seconds: float = 0.0

    def row(self, row_id: str) -> AuditRow:
        """The row with id ``row_id``."""
        for r in self.rows:
            if r.id == row_id:
                return r
        raise KeyError(f"no audited row {row_id!r}; have {[r.id for r in self.rows]}")

    def counts(self) -> dict[str, int]:
        """Rows per verdict."""
        return {v: sum(r.verdict == v for r in self.rows) for v in (*VERDICTS, ERROR)}

    def _on(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.versions.items() if v)

    def table(self) -> Table:
        """One line per claim: statement, verdict, reason, what the course says, seconds."""
        table = Table(["claim (in the course's words)", "verdict", "reason", "lesson",
                       "course says", "s"], title=f"The article's claims, measured on {self._on()}",
                      max_width=110)
        for r in self.rows:
            mark = _MARKS[r.verdict]
            table.add(r.statement, mark, r.reason, r.lesson[:2],
                      ("✓ " if r.as_expected else "✗ ") + r.expected, f"{r.seconds:.1f}")
        counts = ", ".join(f"{n} {v}" for v, n in self.counts().items() if n)
        table.notes = [f"{len(self.rows)} claims: {counts}; {self.seconds:.0f} s in all.",
                       "Each verdict is computed from the measured numbers (see each row's "
                       "evidence); 'course says' is the verdict the lessons' prose states."]
        return table

    def __str__(self) -> str:
        return str(self.table())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = []
        for r in self.rows:
            color = _COLORS[r.verdict]
            numbers = ", ".join(f"{k} = {_short(v)}" for k, v in r.measured.items())
            rows.append(
                "<tr style='vertical-align:top'>"
                f"<td style='text-align:left'>{html.escape(r.statement)}<br><small><code>"
                f"{html.escape(r.experiment)}</code> · lesson {html.escape(r.lesson)}</small></td>"
                f"<td style='text-align:left;color:{color};white-space:nowrap'><b>"
                f"{html.escape(_MARKS[r.verdict])}</b></td>"
                f"<td style='text-align:left'>{html.escape(r.reason)}<br><small>"
                f"{html.escape(numbers)}</small></td>"
                f"<td style='text-align:left;color:{'#1a7f37' if r.as_expected else '#b42318'}'>"
                f"{'✓' if r.as_expected else '✗'} {html.escape(r.expected)}</td>"
                f"<td>{r.seconds:.1f}</td></tr>")
        head = "".join(f"<th style='text-align:left'>{h}</th>" for h in
                       ("claim, experiment, lesson", "verdict", "reason and numbers",
                        "course says", "s"))
        note = html.escape(self.table().notes[0])
        return (f"<table><caption style='text-align:left'><b>The article's claims, measured on "
                f"{html.escape(self._on())}</b></caption><tr>{head}</tr>{''.join(rows)}</table>"
                f"<p style='font-size:90%'>{note}</p>")

    def plot(self, ax: Any = None) -> Any:
        """Seconds per experiment, one bar per claim, coloured by its measured verdict;
        returns the matplotlib Figure."""
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch

        if ax is None:
            fig, ax = plt.subplots(figsize=(8, 0.32 * len(self.rows) + 1.4))
        else:
            fig = ax.figure
        ids = [r.id for r in self.rows]
        ax.barh(ids, [r.seconds for r in self.rows],
                color=[_COLORS[r.verdict] for r in self.rows])
        ax.invert_yaxis()
        ax.set(xlabel="seconds (shared artifacts are built by the first row that needs them)",
               title="Each article claim: its experiment's seconds, coloured by measured verdict")
        present = [v for v in (*VERDICTS, ERROR) if any(r.verdict == v for r in self.rows)]
        ax.legend(handles=[Patch(color=_COLORS[v], label=v) for v in present],
                  loc="lower right", fontsize=8)
        fig.tight_layout()
        return fig

    def as_dict(self) -> dict[str, Any]:
        """Plain data: versions, settings, seconds and every row with its evidence."""
        return {"versions": self.versions, "settings": asdict(self.settings),
                "seconds": round(self.seconds, 2),
                "rows": [{**asdict(r), "seconds": round(r.seconds, 2)} for r in self.rows]}

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`as_dict` as JSON to ``path``."""
        from forgekit.course.claims import _plain

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(_plain(self.as_dict()), indent=2, ensure_ascii=False) + "\n",
                          encoding="utf-8")
        return target


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# --------------------------------------------------------------------------------------------
# the lab: artifacts shared by several rows, built once per audit


class Lab:
    """The audit's working folder and the artifacts several rows share (one trained model, its
    export, one probe of every format...), each built on first use. A shared step that failed
    fails every row that needs it, with the same exception, without being retried."""

    def __init__(self, workdir: str | os.PathLike[str], settings: AuditSettings) -> None:
        self.workdir = Path(workdir)
        self.settings = settings
        self._memo: dict[str, Any] = {}
        self._cleanups: list[Callable[[], Any]] = []

    def folder(self, name: str) -> Path:
        """A fresh folder for one experiment under the workdir."""
        path = self.workdir / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def shared(self, key: str, make: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``make(*args, **kwargs)`` the first time ``key`` is asked for; the same value (or the
        same exception) after that."""
        if key not in self._memo:
            try:
                self._memo[key] = (True, make(*args, **kwargs))
            except Exception as exc:  # kept: every row that needs it reports this error
                self._memo[key] = (False, exc)
        ok, value = self._memo[key]
        if not ok:
            raise value
        return value

    def on_close(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` when the audit ends (stop a server)."""
        self._cleanups.append(fn)

    def close(self) -> None:
        """Run the cleanups, newest first; never raises."""
        while self._cleanups:
            with contextlib.suppress(Exception):  # a cleanup must not hide the audit's result
                self._cleanups.pop()()

    # the shared artifacts ---------------------------------------------------------------

    def task(self) -> Any:
        """The regression task of the shared model."""
        from forgekit.training import make_task

        s = self.settings
        return self.shared("task", make_task, "regress", n_train=s.samples, n_val=64,
                           n_features=s.features)

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

    def retrained(self) -> Any:
        """A second model of the same architecture trained on other data: the 'new version'."""
        def train() -> Any:
            from forgekit.training import build_model, make_task

            s = self.settings
            task = make_task("regress", n_train=s.samples, n_val=64, n_features=s.features,
                             noise=0.3, seed=1)
            model = build_model(task, width=s.units, seed=1)
            model.fit(task.x_train, task.y_train, epochs=s.epochs, batch_size=32, verbose=0)
            return model

        return self.shared("retrained", train)

    def inputs(self) -> Any:
        """Fixed inputs every prediction comparison uses."""
        from forgekit.measure.compare import fixed_inputs

        return self.shared("inputs", fixed_inputs, self.model())

    def export(self) -> Path:
        """The shared model exported as a SavedModel (``model.export``)."""
        def export() -> Path:
            path = self.folder("export") / "export"
            self.model().export(path, verbose=False)
            return path

        return self.shared("export", export)


# --------------------------------------------------------------------------------------------
# measure + judge, one pair per row

PROBE_KINDS = ("keras", "savedmodel", "h5_model", "weights_h5", "tf_checkpoint",
               "json_architecture")


def _probe(experiment: Callable[..., Any], lab: Lab) -> Any:
    """The shared probe of every whole-model and weights format (lessons 01 and 02)."""
    return lab.shared("probe", experiment, lab.model(), PROBE_KINDS, lab.folder("probe"),
                      x=lab.inputs())


def _probe_kinds(lab: Lab) -> Any:
    from forgekit.measure.probe import matrix

    return _probe(matrix, lab)


def _failed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, str]:
    """(the call raised, the exception type) for a call that is expected to be refused."""
    from forgekit.outcome import attempt

    outcome = attempt(call, *args, **kwargs)
    return (not outcome.ok), (outcome.error_type or "")


def _in(value: float, low: float, high: float) -> bool:
    return low <= value <= high


# model.save() writes a SavedModel --------------------------------------------------------

def _m_save_writes_savedmodel(detect: Callable[..., Any], lab: Lab) -> Numbers:
    model, folder = lab.model(), lab.folder("save_calls")
    refused, error = _failed(model.save, folder / "my_model")
    model.save(folder / "model.keras")
    exported = detect(lab.export()).kind
    return {"save_without_extension_refused": refused, "save_without_extension_error": error,
            "folder_written": (folder / "my_model").exists(),
            "save_keras_kind": detect(folder / "model.keras").kind, "export_kind": exported}


def _j_save_writes_savedmodel(n: Numbers) -> Judgement:
    checks = {"model.save(path) with no extension writes a SavedModel folder":
              not n["save_without_extension_refused"] and n["folder_written"],
              "model.save('name.keras') writes a SavedModel": n["save_keras_kind"] == "savedmodel"}
    reason = (f"model.save without an extension "
              f"{'raises ' + n['save_without_extension_error'] if n['save_without_extension_refused'] else 'works'}"
              f"; with .keras it writes a {n['save_keras_kind']} file; the SavedModel comes from "
              f"model.export() (found: {n['export_kind']})")
    return checks, reason


# SavedModel keeps the optimizer state and the compile settings ---------------------------

def _m_savedmodel_training_state(matrix: Callable[..., Any], lab: Lab) -> Numbers:
    from forgekit.formats.detect import detect_format

    probed = _probe(matrix, lab)
    export, keras_file = probed["savedmodel"], probed["keras"]
    return {"export_optimizer_variables": bool(detect_format(export.path).has_optimizer),
            "export_optimizer_restored": bool(export.optimizer_restored),
            "export_compile_restored": bool(export.compile_restored),
            "export_weights_max_abs_diff": export.weights_max_abs_diff,
            "export_signatures": ", ".join(export.signatures),
            "keras_optimizer_restored": bool(keras_file.optimizer_restored),
            "keras_compile_restored": bool(keras_file.compile_restored)}


def _j_savedmodel_training_state(n: Numbers) -> Judgement:
    checks = {"the export stores optimizer state": n["export_optimizer_variables"]
              and n["export_optimizer_restored"],
              "the export brings back the compile settings": n["export_compile_restored"]}
    reason = (f"model.export() keeps weights (max |Δ| {n['export_weights_max_abs_diff']:.3g}) and "
              f"signatures ({n['export_signatures']}), optimizer variables "
              f"{_yes(n['export_optimizer_variables'])}, compile settings "
              f"{_yes(n['export_compile_restored'])}; the .keras file restores optimizer "
              f"{_yes(n['keras_optimizer_restored'])} and compile "
              f"{_yes(n['keras_compile_restored'])}")
    return checks, reason


def _yes(flag: Any) -> str:
    return "yes" if flag else "no"


# H5 lacks what serving needs -------------------------------------------------------------

def _m_h5_lacks_serving(matrix: Callable[..., Any], lab: Lab) -> Numbers:
    import tensorflow as tf

    probed = _probe(matrix, lab)
    h5 = probed["h5_model"]
    refused, error = _failed(tf.saved_model.load, os.fspath(h5.path))
    return {"h5_signatures": len(h5.signatures), "export_signatures": len(probed["savedmodel"].signatures),
            "saved_model_load_refuses_h5": refused, "saved_model_load_error": error}


def _j_h5_lacks_serving(n: Numbers) -> Judgement:
    checks = {"the .h5 has no serving signature": n["h5_signatures"] == 0,
              "tf.saved_model.load (the serving loader) refuses it": n["saved_model_load_refuses_h5"]}
    reason = (f".h5: {n['h5_signatures']} serving signatures (the export: "
              f"{n['export_signatures']}); tf.saved_model.load on it: "
              f"{'raises ' + n['saved_model_load_error'] if n['saved_model_load_refuses_h5'] else 'loads'}")
    return checks, reason


# loading H5 through a SavedModel path (and the reverse) ----------------------------------

def _m_h5_savedmodel_mixup(run_matrix: Callable[..., Any], lab: Lab) -> Numbers:
    probed = _probe_kinds(lab)
    found = run_matrix({"legacy .h5": os.fspath(probed["h5_model"].path),
                        "SavedModel": os.fspath(lab.export())}, lab.build)
    works = {(row.label, cell.loader.key): bool(cell.outcome.ok)
             for row in found.rows for cell in row.cells}
    return {"saved_model_load_on_h5": works[("legacy .h5", "saved_model_load")],
            "load_model_on_savedmodel": works[("SavedModel", "load_model")],
            "loaders_reading_h5": sum(v for (a, _), v in works.items() if a == "legacy .h5"),
            "loaders_reading_savedmodel": sum(v for (a, _), v in works.items() if a == "SavedModel"),
            "loaders": len(found.loaders), "forgekit_surprises": len(found.surprises)}


def _j_h5_savedmodel_mixup(n: Numbers) -> Judgement:
    checks = {"the SavedModel loader fails on the .h5": not n["saved_model_load_on_h5"],
              "the Keras file loader fails on the SavedModel folder":
              not n["load_model_on_savedmodel"]}
    reason = (f"of {n['loaders']} loaders, {n['loaders_reading_h5']} read the .h5 and "
              f"{n['loaders_reading_savedmodel']} the SavedModel; tf.saved_model.load on the .h5 "
              f"{'works' if n['saved_model_load_on_h5'] else 'fails'}, load_model on the folder "
              f"{'works' if n['load_model_on_savedmodel'] else 'fails'}")
    return checks, reason


# weights-only is 5-10x smaller -----------------------------------------------------------

def _m_weights_smaller(breakdown: Callable[..., Any], lab: Lab) -> Numbers:
    import keras

    model, folder = lab.model(), lab.folder("sizes")
    model.save(folder / "model.keras")
    model.save_weights(folder / "model.weights.h5")
    inference = keras.Sequential.from_config(model.get_config())  # never compiled: no optimizer
    inference.set_weights(model.get_weights())
    inference.save_weights(folder / "inference.weights.h5")
    whole, weights, bare = (breakdown(folder / name) for name in
                            ("model.keras", "model.weights.h5", "inference.weights.h5"))
    return {"keras_bytes": whole.total, "weights_h5_bytes": weights.total,
            "weights_h5_without_optimizer_bytes": bare.total,
            "ratio": whole.total / weights.total,
            "ratio_without_optimizer": whole.total / bare.total,
            "optimizer_over_weights": weights.optimizer / weights.weights}


def _j_weights_smaller(n: Numbers) -> Judgement:
    checks = {".keras / .weights.h5 is 5-10x": _in(n["ratio"], 5, 10),
              ".keras / a weights file without optimizer is 5-10x":
              _in(n["ratio_without_optimizer"], 5, 10)}
    reason = (f"ratio {n['ratio']:.2f}x, not 5-10x: Keras 3's .weights.h5 holds the optimizer's "
              f"slots too ({n['optimizer_over_weights']:.1f}x the weights); a weights file "
              f"without them gives {n['ratio_without_optimizer']:.2f}x")
    if all(checks.values()):
        reason = f"ratio {n['ratio']:.2f}x, without optimizer {n['ratio_without_optimizer']:.2f}x"
    return checks, reason


# save_weights() writes a TensorFlow checkpoint -------------------------------------------

def _m_save_weights_format(detect: Callable[..., Any], lab: Lab) -> Numbers:
    model, folder = lab.model(), lab.folder("save_weights")
    refused, error = _failed(model.save_weights, os.fspath(folder / "ckpt"))
    model.save_weights(folder / "model.weights.h5")
    return {"checkpoint_prefix_refused": refused, "checkpoint_prefix_error": error,
            "weights_kind": detect(folder / "model.weights.h5").kind}


def _j_save_weights_format(n: Numbers) -> Judgement:
    checks = {"save_weights writes a TF checkpoint": n["weights_kind"] == "tf_checkpoint",
              "save_weights accepts a checkpoint prefix": not n["checkpoint_prefix_refused"]}
    reason = (f"save_weights writes {n['weights_kind']} (HDF5); a checkpoint-style prefix "
              f"{'raises ' + n['checkpoint_prefix_error'] if n['checkpoint_prefix_refused'] else 'works'}"
              "; TensorFlow checkpoints come from tf.train.Checkpoint")
    return checks, reason


# checkpoints hold weights only -----------------------------------------------------------

def _m_checkpoints_weights_only(matrix: Callable[..., Any], lab: Lab) -> Numbers:
    probed = _probe(matrix, lab)
    return {f"{kind}_optimizer_restored": bool(probed[kind].optimizer_restored)
            for kind in ("weights_h5", "tf_checkpoint")} | {
            f"{kind}_weights_max_abs_diff": probed[kind].weights_max_abs_diff
            for kind in ("weights_h5", "tf_checkpoint")}


def _j_checkpoints_weights_only(n: Numbers) -> Judgement:
    checks = {".weights.h5 holds no optimizer state": not n["weights_h5_optimizer_restored"],
              "tf.train.Checkpoint holds no optimizer state":
              not n["tf_checkpoint_optimizer_restored"]}
    reason = (f"optimizer state restored exactly from .weights.h5: "
              f"{_yes(n['weights_h5_optimizer_restored'])}, from tf.train.Checkpoint: "
              f"{_yes(n['tf_checkpoint_optimizer_restored'])} (the optimizer built first)")
    return checks, reason


# JSON / YAML store the architecture ------------------------------------------------------

def _m_json_yaml(matrix: Callable[..., Any], lab: Lab) -> Numbers:
    import keras

    json_arch = _probe(matrix, lab)["json_architecture"]
    model = lab.model()
    yaml_refused, yaml_error = _failed(lambda: model.to_yaml())
    from_yaml_refused, _ = _failed(lambda: keras.models.model_from_yaml("{}"))
    return {"json_architecture_restored": bool(json_arch.architecture_restored),
            "json_weights_max_abs_diff": json_arch.weights_max_abs_diff,
            "json_bytes": json_arch.size_bytes, "to_yaml_refused": yaml_refused,
            "to_yaml_error": yaml_error, "model_from_yaml_refused": from_yaml_refused}


def _j_json_yaml(n: Numbers) -> Judgement:
    checks = {"JSON rebuilds the architecture": n["json_architecture_restored"],
              "JSON holds no weights": n["json_weights_max_abs_diff"] > 0,
              "YAML still works": not n["to_yaml_refused"] and not n["model_from_yaml_refused"]}
    reason = (f"JSON: architecture {_yes(n['json_architecture_restored'])}, fresh weights "
              f"(max |Δ| {n['json_weights_max_abs_diff']:.3g}) in {n['json_bytes']:,} bytes; "
              f"YAML: to_yaml {'raises ' + n['to_yaml_error'] if n['to_yaml_refused'] else 'works'}")
    return checks, reason


# TFLite is converted from a SavedModel ---------------------------------------------------

def _m_tflite(convert: Callable[..., Any], lab: Lab) -> Numbers:
    import numpy as np

    from forgekit import tflite
    from forgekit.formats.detect import detect_format

    folder, model, x = lab.folder("tflite"), lab.model(), lab.inputs()
    path = convert(lab.export(), "float32", folder / "model.tflite")
    diff = float(np.max(np.abs(tflite.predict(tflite.interpreter(path), x)
                               - model.predict(x, verbose=0))))
    refused, error = _failed(model.save, folder / "direct.tflite")
    return {"tflite_kind": detect_format(path).kind, "tflite_bytes": path.stat().st_size,
            "max_abs_diff": diff, "direct_save_refused": refused, "direct_save_error": error}


def _j_tflite(n: Numbers) -> Judgement:
    checks = {"the SavedModel converts to a .tflite that answers the same":
              n["tflite_kind"] == "tflite" and n["max_abs_diff"] <= 1e-5,
              "Keras cannot save .tflite directly": n["direct_save_refused"]}
    reason = (f"from_saved_model wrote {n['tflite_bytes']:,} bytes of {n['tflite_kind']}, max |Δ| "
              f"{n['max_abs_diff']:.2g} against Keras; model.save('….tflite') "
              f"{'raises ' + n['direct_save_error'] if n['direct_save_refused'] else 'works'}")
    return checks, reason


# ModelCheckpoint: an interruption costs at most one epoch --------------------------------

def _interrupted(run_training: Callable[..., Any], lab: Lab) -> dict[str, Any]:
    """A real SIGKILL in the middle of the last epoch of an overfitting run that keeps both a
    whole-state backup (BackupAndRestore) and a best-only ModelCheckpoint, then the resume."""
    def run() -> dict[str, Any]:
        import math

        s = lab.settings
        folder = lab.folder("interrupted")
        task = {"n_val": 256}
        model = {"width": s.checkpoint_units, "learning_rate": 3e-3}  # overfits within epochs
        steps = math.ceil(256 / 32)  # make_task's default n_train, batch 32
        kill_at = (s.checkpoint_epochs - 1) * steps + steps // 2  # mid-way through the last
        killed = run_training(folder, s.checkpoint_epochs, task=task, model=model,
                              backup_dir="backup", checkpoint="best.keras",
                              kill_after_batches=kill_at)
        resumed = run_training(folder, s.checkpoint_epochs, task=task, model=model,
                               backup_dir="backup")
        return {"killed": killed, "resumed": resumed, "steps": steps, "folder": folder}

    return lab.shared("interrupted", run)


def _m_checkpoint_loses_one_epoch(run_training: Callable[..., Any], lab: Lab) -> Numbers:
    runs = _interrupted(run_training, lab)
    killed, resumed, steps = runs["killed"], runs["resumed"], runs["steps"]
    val = killed.history["val_loss"]
    improvements = [i for i, v in enumerate(val) if v < min(val[:i], default=float("inf"))]
    best_epoch = improvements[-1]  # 0-based: the last epoch save_best_only wrote
    saves = sum(1 for s in killed.saves if s["phase"] == "written")
    return {"killed_by_sigkill": killed.killed, "batches_per_epoch": steps,
            "batches_done_at_kill": killed.batches,
            "backup_restarts_after_epochs": resumed.initial_epoch,
            "batches_lost_with_backup": killed.batches - resumed.initial_epoch * steps,
            "best_only_file_epoch": best_epoch + 1, "best_only_saves": saves,
            "batches_lost_with_best_only": killed.batches - (best_epoch + 1) * steps}


def _j_checkpoint_loses_one_epoch(n: Numbers) -> Judgement:
    steps = n["batches_per_epoch"]
    checks = {"a whole-state backup every epoch loses at most one epoch":
              n["killed_by_sigkill"] and n["batches_lost_with_backup"] <= steps,
              "a best-only ModelCheckpoint loses at most one epoch":
              n["killed_by_sigkill"] and n["batches_lost_with_best_only"] <= steps}
    reason = (f"killed after {n['batches_done_at_kill']} batches ({steps} per epoch): "
              f"BackupAndRestore resumed after epoch {n['backup_restarts_after_epochs']}, "
              f"{n['batches_lost_with_backup']} batches lost; the save_best_only file holds epoch "
              f"{n['best_only_file_epoch']}, {n['batches_lost_with_best_only']} batches behind")
    return checks, reason


def _m_best_only(run_training: Callable[..., Any], lab: Lab) -> Numbers:
    import keras

    from forgekit.training import make_task

    runs = _interrupted(run_training, lab)
    task = make_task(n_val=256)
    kept = keras.models.load_model(runs["folder"] / "best.keras")
    val = runs["killed"].history["val_loss"]
    return {"best_file_val_loss": float(kept.evaluate(task.x_val, task.y_val, batch_size=32,
                                                      verbose=0)),
            "lowest_val_loss": min(val), "last_epoch_val_loss": val[-1],
            "epochs_completed": len(val)}


def _j_best_only(n: Numbers) -> Judgement:
    checks = {"the file holds the lowest validation loss":
              abs(n["best_file_val_loss"] - n["lowest_val_loss"]) < 1e-5,
              "which is lower than the last epoch's":
              n["best_file_val_loss"] < n["last_epoch_val_loss"]}
    reason = (f"best.keras evaluates to {n['best_file_val_loss']:.4f} (lowest seen "
              f"{n['lowest_val_loss']:.4f}, last of {n['epochs_completed']} epochs "
              f"{n['last_epoch_val_loss']:.4f})")
    return checks, reason


# model.save() keeps the optimizer, so resumed training continues -------------------------

def _resumes(compare: Callable[..., Any], lab: Lab) -> Any:
    s = lab.settings
    return lab.shared("resume", compare, lab.folder("resume"), epochs=s.resume_epochs,
                      resume_at=s.resume_at, width=s.checkpoint_units)


def _m_save_resume(compare: Callable[..., Any], lab: Lab) -> Numbers:
    r = _resumes(compare, lab)
    return {"steps_saved": r.steps_saved, "steps_after_load_model": r.steps_after_load_model,
            "max_abs_diff_from_uninterrupted": r.full_diff}


def _j_save_resume(n: Numbers) -> Judgement:
    checks = {"load_model brings back the optimizer's step count":
              n["steps_after_load_model"] == n["steps_saved"] > 0,
              "the resumed run ends exactly where the uninterrupted run ends":
              n["max_abs_diff_from_uninterrupted"] == 0.0}
    reason = (f"optimizer steps {n['steps_after_load_model']} after load_model (saved "
              f"{n['steps_saved']}); weights at the end differ from the uninterrupted run by "
              f"{n['max_abs_diff_from_uninterrupted']:.3g}")
    return checks, reason


def _m_weights_resume(compare: Callable[..., Any], lab: Lab) -> Numbers:
    r = _resumes(compare, lab)
    return {"steps_saved": r.steps_saved, "steps_after_load_weights": r.steps_after_load_weights,
            "max_abs_diff_from_uninterrupted": r.weights_only_diff, "loss_jump": r.loss_jump}


def _j_weights_resume(n: Numbers) -> Judgement:
    checks = {"load_weights into a fresh model starts the optimizer over":
              n["steps_after_load_weights"] == 0 < n["steps_saved"],
              "the resumed run leaves the uninterrupted run's path":
              n["max_abs_diff_from_uninterrupted"] > 0.0}
    reason = (f"optimizer steps {n['steps_after_load_weights']} after load_weights (saved "
              f"{n['steps_saved']}); the run ends {n['max_abs_diff_from_uninterrupted']:.3g} away "
              f"from the uninterrupted one (loss jump {n['loss_jump']:+.3g} after the resume)")
    return checks, reason


# SavedModel loads from other languages ---------------------------------------------------

def _m_cross_language(run_c: Callable[..., Any], lab: Lab) -> Numbers:
    import numpy as np

    from forgekit import crosslang

    export, x = lab.export(), lab.inputs()
    build = crosslang.build("c")
    sig = crosslang.signature_tensors(export)
    python = crosslang.signature_call(export, x)
    c_run = run_c(build, export, x, workdir=lab.folder("crosslang"))
    diff = max(float(np.max(np.abs(c_run.outputs[name] - python[sig.key_of(name)])))
               for name in sig.output_names)
    h5 = _probe_kinds(lab)["h5_model"].path
    on_h5 = run_c(build, h5, x, input_name=sig.input_name, output_names=sig.output_names,
                  check=False, workdir=lab.workdir / "crosslang")
    return {"c_exit_code": c_run.returncode, "c_max_abs_diff": diff,
            "c_seconds": round(c_run.seconds, 2), "c_peak_rss_mb": round(c_run.peak_rss_mb),
            "c_exit_code_on_h5": on_h5.returncode}


def _j_cross_language(n: Numbers) -> Judgement:
    checks = {"a C program loads the SavedModel and answers like Python":
              n["c_exit_code"] == 0 and n["c_max_abs_diff"] <= 1e-5}
    reason = (f"the C loader (TensorFlow C API) exits {n['c_exit_code']}, max |Δ| "
              f"{n['c_max_abs_diff']:.2g} against Python, in {n['c_seconds']} s; fed the .h5 it "
              f"exits {n['c_exit_code_on_h5']}")
    return checks, reason


# flat paths and the checks that catch them -----------------------------------------------

def _serving(server_cls: Callable[..., Any], lab: Lab) -> dict[str, Any]:
    """v1 published and served; the retrained model then saved as a flat .h5 beside it."""
    def deploy_flat() -> dict[str, Any]:
        from forgekit.serving import deploy

        poll = lab.settings.poll_seconds
        base = lab.folder("serving") / "forecast"
        v1 = deploy.publish(lab.model(), base, model_name="forecast")
        server = server_cls(base, "forecast", file_system_poll_wait_seconds=poll)
        server.start()
        lab.on_close(server.stop)
        lab.retrained().save(base / "model.h5")  # the flat save
        time.sleep(3 * poll)  # three scans of the base path
        return {"base": base, "v1": v1, "server": server, "client": server.client()}

    return lab.shared("serving", deploy_flat)


def _m_flat_path(server_cls: Callable[..., Any], lab: Lab) -> Numbers:
    import numpy as np

    world = _serving(server_cls, lab)
    client, x = world["client"], lab.inputs()
    served = np.asarray(client.predict("forecast", x)["predictions"])
    return {"answering_version": int(client.metadata("forecast")["model_spec"]["version"]),
            "max_diff_vs_v1": float(np.max(np.abs(served - lab.model().predict(x, verbose=0)))),
            "max_diff_vs_retrained": float(np.max(np.abs(
                served - lab.retrained().predict(x, verbose=0)))),
            "poll_seconds": lab.settings.poll_seconds}


def _j_flat_path(n: Numbers) -> Judgement:
    checks = {"the server still answers as version 1": n["answering_version"] == 1,
              "its answers are v1's, not the retrained model's":
              n["max_diff_vs_v1"] <= 1e-5 < n["max_diff_vs_retrained"]}
    reason = (f"after three scans ({n['poll_seconds']} s each) version "
              f"{n['answering_version']} answers; max |Δ| {n['max_diff_vs_v1']:.2g} from v1, "
              f"{n['max_diff_vs_retrained']:.3g} from the retrained model saved as model.h5")
    return checks, reason


def _m_checks_catch(verify: Callable[..., Any], lab: Lab) -> Numbers:
    from forgekit.serving import InProcessServer, deploy

    world = _serving(InProcessServer, lab)
    client, base, poll = world["client"], world["base"], lab.settings.poll_seconds
    expected = deploy.record_for(lab.retrained(), base, 2, model_name="forecast",
                                 canary_path=lab.workdir / "serving" / "expected.canary.json")
    flat = verify(client, "forecast", expected, wait=3 * poll)
    v2 = deploy.publish(lab.retrained(), base, model_name="forecast")
    fixed = verify(client, "forecast", v2, wait=10 + 3 * poll)
    return {"flat_problems": ", ".join(flat.problems), "flat_answering": flat.answering_version,
            "flat_max_canary_diff": flat.max_canary_diff, "published_version": v2.version,
            "published_ok": fixed.ok, "published_problems": ", ".join(fixed.problems)}


def _j_checks_catch(n: Numbers) -> Judgement:
    problems = set(filter(None, n["flat_problems"].split(", ")))
    checks = {"the metadata check names the stale version": "stale_version" in problems,
              "the known-input check sees other answers": "canary_mismatch" in problems,
              "a correct deployment passes both": n["published_ok"]}
    reason = (f"against the flat deploy the checks report {n['flat_problems'] or 'nothing'} "
              f"(version {n['flat_answering']} answers); the new model published as version "
              f"{n['published_version']} {'passes' if n['published_ok'] else 'fails: ' + n['published_problems']}")
    return checks, reason


# Keras version mismatch ------------------------------------------------------------------

def _m_keras_versions(run_steps: Callable[..., Any], lab: Lab) -> Numbers:
    import keras

    probed = _probe_kinds(lab)
    folder = lab.folder("keras_versions")
    k2_file = folder / "k2_model.h5"
    steps = run_steps({
        "write": f"""
            import tf_keras
            m = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
            m.compile(optimizer="adam", loss="mse")
            m.save({os.fspath(k2_file)!r})
            result = tf_keras.__version__""",
        "keras": f"tf_keras.models.load_model({os.fspath(probed['keras'].path)!r})",
        "h5": f"tf_keras.models.load_model({os.fspath(probed['h5_model'].path)!r})",
    })
    k3_refused, k3_error = _failed(keras.models.load_model, k2_file)
    bridge_refused, _ = _failed(keras.models.load_model, k2_file, compile=False)
    return {"keras2_version": steps["write"].value if steps["write"].ok else "",
            "keras2_reads_keras3_keras": bool(steps["keras"].ok),
            "keras2_reads_keras3_h5": bool(steps["h5"].ok),
            "keras3_reads_keras2_h5": not k3_refused, "keras3_error": k3_error,
            "keras3_reads_keras2_h5_compile_false": not bridge_refused,
            "keras2_errors": ", ".join(filter(None, (steps["keras"].error_type,
                                                     steps["h5"].error_type)))}


def _j_keras_versions(n: Numbers) -> Judgement:
    checks = {"Keras 2 fails on the Keras 3 .keras": not n["keras2_reads_keras3_keras"],
              "Keras 2 fails on the Keras 3 .h5": not n["keras2_reads_keras3_h5"],
              "Keras 3 fails on the Keras 2 .h5": not n["keras3_reads_keras2_h5"]}
    failed = sum(checks.values())
    reason = (f"{failed} of 3 direct loads across Keras {n['keras2_version'] or '2'} and 3 fail "
              f"({n['keras2_errors'] or 'none'}; {n['keras3_error'] or 'none'}); Keras 3 with "
              f"compile=False {'reads' if n['keras3_reads_keras2_h5_compile_false'] else 'fails on'}"
              " the Keras 2 file")
    return checks, reason


# absolute paths --------------------------------------------------------------------------

def _m_absolute_paths(project_path: Callable[..., Any], lab: Lab) -> Numbers:
    import keras

    root = lab.folder("paths")
    project, moved = root / "project", root / "moved"
    (project / "models").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0"\n')
    lab.model().save(project / "models" / "model.keras")
    baked = (project / "models" / "model.keras").resolve()  # what a script would hard-code
    script = moved / "predict.py"
    shutil.copytree(project, moved)
    script.write_text("# a script inside the moved project\n")
    shutil.rmtree(project)  # the original location is gone, as on another machine
    baked_refused, error = _failed(keras.models.load_model, baked)
    found = project_path("models", "model.keras", start=script)
    found_refused, _ = _failed(keras.models.load_model, found)
    return {"hard_coded_loads": not baked_refused, "hard_coded_error": error,
            "project_relative_loads": not found_refused}


def _j_absolute_paths(n: Numbers) -> Judgement:
    checks = {"the hard-coded path fails once the project moves": not n["hard_coded_loads"],
              "a path built from the project root still loads": n["project_relative_loads"]}
    reason = (f"after the move, load_model on the hard-coded path "
              f"{'raises ' + n['hard_coded_error'] if not n['hard_coded_loads'] else 'loads'}; "
              f"project_path(...) {'loads' if n['project_relative_loads'] else 'fails'}")
    return checks, reason


# --------------------------------------------------------------------------------------------
# the registry


def _rows() -> tuple[ArticleClaim, ...]:
    from forgekit import crosslang, sizes, tflite
    from forgekit.diagnose import failures
    from forgekit.formats.detect import detect_format
    from forgekit.measure import fresh, probe
    from forgekit.paths import project_path
    from forgekit.serving.process import InProcessServer
    from forgekit.serving.verify import verify_deployment
    from forgekit.training import resume, run

    return (
        ArticleClaim(
            "save_writes_savedmodel",
            "model.save(path) writes a SavedModel folder.",
            "01_whole_model_formats", detect_format, "does not hold",
            _m_save_writes_savedmodel, _j_save_writes_savedmodel),
        ArticleClaim(
            "savedmodel_keeps_training_state",
            "A SavedModel carries the optimizer state and the compile settings (the article's "
            "\"compilation labels\") along with the weights.",
            "01_whole_model_formats", probe.matrix, "does not hold",
            _m_savedmodel_training_state, _j_savedmodel_training_state),
        ArticleClaim(
            "h5_lacks_serving",
            "A legacy .h5 file lacks what a model server needs: no serving signature, and the "
            "SavedModel loader servers use cannot read it.",
            "01_whole_model_formats", probe.matrix, "holds",
            _m_h5_lacks_serving, _j_h5_lacks_serving),
        ArticleClaim(
            "h5_savedmodel_mixup",
            "Reading an .h5 file through the SavedModel loader, or a SavedModel folder through "
            "the Keras file loader, fails: the two are laid out differently.",
            "05_wrong_path_failures", failures.run_matrix, "holds",
            _m_h5_savedmodel_mixup, _j_h5_savedmodel_mixup),
        ArticleClaim(
            "weights_5_10x_smaller",
            "A weights-only file is 5 to 10 times smaller on disk than the whole saved model.",
            "02_weights_and_architecture", sizes.breakdown, "does not hold",
            _m_weights_smaller, _j_weights_smaller),
        ArticleClaim(
            "save_weights_tf_checkpoint",
            "model.save_weights() writes a TensorFlow checkpoint.",
            "02_weights_and_architecture", detect_format, "does not hold",
            _m_save_weights_format, _j_save_weights_format),
        ArticleClaim(
            "checkpoints_weights_only",
            "Checkpoint files keep the weights and nothing else.",
            "02_weights_and_architecture", probe.matrix, "does not hold",
            _m_checkpoints_weights_only, _j_checkpoints_weights_only),
        ArticleClaim(
            "json_yaml_architecture",
            "JSON or YAML files hold the architecture alone, so the design can be versioned "
            "apart from the weights.",
            "02_weights_and_architecture", probe.matrix, "partly",
            _m_json_yaml, _j_json_yaml),
        ArticleClaim(
            "tflite_from_savedmodel",
            "A .tflite model is produced by converting a SavedModel, not saved directly.",
            "04_tflite", tflite.convert, "holds",
            _m_tflite, _j_tflite),
        ArticleClaim(
            "checkpoint_loses_one_epoch",
            "With a ModelCheckpoint callback, an interrupted run loses one epoch of work at most.",
            "03_checkpoints_and_resume", run.run_training, "partly",
            _m_checkpoint_loses_one_epoch, _j_checkpoint_loses_one_epoch),
        ArticleClaim(
            "best_only_keeps_best_epoch",
            "ModelCheckpoint(save_best_only=True) keeps the best epoch, so an overfitted last "
            "epoch does not replace it.",
            "03_checkpoints_and_resume", run.run_training, "holds",
            _m_best_only, _j_best_only),
        ArticleClaim(
            "save_keeps_optimizer_for_resume",
            "model.save() keeps the optimizer, so training resumed after load_model continues "
            "from where it stopped.",
            "03_checkpoints_and_resume", resume.compare_resumes, "holds",
            _m_save_resume, _j_save_resume),
        ArticleClaim(
            "weights_only_resume_restarts_optimizer",
            "Resuming from weights alone, without the optimizer state, does not continue the "
            "same training run.",
            "03_checkpoints_and_resume", resume.compare_resumes, "holds",
            _m_weights_resume, _j_weights_resume),
        ArticleClaim(
            "savedmodel_cross_language",
            "A SavedModel can be loaded from languages other than Python.",
            "09_cross_language", crosslang.run_c, "holds",
            _m_cross_language, _j_cross_language),
        ArticleClaim(
            "keras_version_mismatch",
            "A model saved by one Keras version fails to load in a different one.",
            "05_wrong_path_failures", fresh.run_steps, "holds",
            _m_keras_versions, _j_keras_versions),
        ArticleClaim(
            "absolute_paths_break",
            "Absolute paths typed into save and load calls break once the project moves.",
            "05_wrong_path_failures", project_path, "holds",
            _m_absolute_paths, _j_absolute_paths),
        ArticleClaim(
            "flat_path_serves_wrong_version",
            "Saving a retrained model to a flat file beside the served versions leaves the "
            "server answering with the old version.",
            "06_serving_incident", InProcessServer, "holds",
            _m_flat_path, _j_flat_path),
        ArticleClaim(
            "metadata_and_known_input_catch_it",
            "Reading the served version from the metadata endpoint and sending a known input "
            "after each deployment catch a wrong version.",
            "06_serving_incident", verify_deployment, "holds",
            _m_checks_catch, _j_checks_catch),
    )


# ROWS is built on first use (module __getattr__): the registry names forgekit functions
# from serving, crosslang, training..., and importing them all is not free.
_ROWS: tuple[ArticleClaim, ...] | None = None


def rows() -> tuple[ArticleClaim, ...]:
    """Every article claim (the same tuple as :data:`ROWS`)."""
    global _ROWS
    if _ROWS is None:
        built = _rows()
        ids = [r.id for r in built]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"article rows registered twice: {duplicates}")
        _ROWS = built
    return _ROWS


def __getattr__(name: str) -> Any:
    if name == "ROWS":
        return rows()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# the audit


def _versions() -> dict[str, str | None]:
    from forgekit.versions import installed_version

    return {"TensorFlow": installed_version("tensorflow"), "Keras": installed_version("keras")}


def run_row(row: ArticleClaim, lab: Lab) -> AuditRow:
    """Measure one row. An exception in its experiment gives the verdict ``error``, naming it."""
    from forgekit.outcome import first_line

    started = time.perf_counter()
    measured: Numbers = {}
    try:
        measured = row.measure(row.experiment, lab)
        checks, reason = row.judge(measured)
        verdict = verdict_of(checks)
    except Exception as exc:  # one row's failure must not lose the others
        checks, verdict = {}, ERROR
        reason = f"the experiment raised {type(exc).__name__}: {first_line(str(exc), 200)}"
    return AuditRow(row.id, row.statement, row.experiment_name, row.lesson, measured, verdict,
                    reason, row.expected, time.perf_counter() - started, checks)


def audit(workdir: str | os.PathLike[str], *, rows: Iterable[ArticleClaim | str] | None = None,
          settings: AuditSettings | None = None,
          progress: Callable[[int, int, str], Any] | None = None) -> ArticleAudit:
    """Re-measure the article's claims, one experiment at a time, and record each as a claim.

    Args:
        workdir: folder for every file the experiments write (created; sub-folders replaced).
        rows: the rows (or their ids) to run; default every row of :data:`ROWS`.
        settings: sizes; default :class:`AuditSettings` (workshop), ``AuditSettings.ci()`` small.
        progress: called as ``progress(i, n, row_id)`` before row ``i`` (0-based) of ``n``.

    Each row becomes ``forgekit.claim(row.claim_text, measured verdict == expected, evidence)``
    with the evidence keys of :data:`EVIDENCE_KEYS` plus the numbers. Under strict claims
    (the test suite) every row is still measured and recorded before the first disagreement is
    raised, naming every row that disagreed.
    """
    from forgekit.course.claims import ClaimError, claim

    by_id = {r.id: r for r in globals()["rows"]()}
    chosen = list(by_id.values()) if rows is None else [
        by_id[r] if isinstance(r, str) else r for r in rows]
    settings = settings or AuditSettings()
    lab = Lab(workdir, settings)
    lab.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    measured: list[AuditRow] = []
    try:
        for i, row in enumerate(chosen):
            if progress is not None:
                progress(i, len(chosen), row.id)
            measured.append(run_row(row, lab))
    finally:
        lab.close()
    result = ArticleAudit(measured, _versions(), settings, time.perf_counter() - started)
    disagreements = []
    for row, done in zip(chosen, measured, strict=True):
        try:
            claim(row.claim_text, done.as_expected, evidence=done.evidence())
        except ClaimError as exc:
            disagreements.append(str(exc))
    if disagreements:
        raise ClaimError("\n".join(disagreements))
    return result
