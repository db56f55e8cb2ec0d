"""Measure what a save format really brings back, on the installed TensorFlow/Keras.

:func:`roundtrip` saves a model as one kind, reloads it the way that format allows, and compares
the reloaded thing with the original: architecture (config), weights, optimizer state, compile
config, predictions on fixed inputs, serving signatures, bytes on disk, save and load seconds.
:func:`matrix` does it for several kinds and returns a table that renders as HTML in a notebook
and as plain text elsewhere. Nothing here is asserted from documentation: every cell is measured.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.formats.kinds import KINDS
from forgekit.measure.compare import (  # re-exported: lessons call them from here
    captured_logs,  # noqa: F401
    config_differences,
    fixed_inputs,
    max_abs_diff,
)
from forgekit.outcome import first_line
from forgekit.table import Table, human_bytes

DEFAULT_KINDS = ("keras", "savedmodel", "h5_model", "weights_h5", "tf_checkpoint", "tflite",
                 "json_architecture")
_NAMES = {"keras": "model.keras", "h5_model": "model.h5", "weights_h5": "model.weights.h5",
          "savedmodel": "export", "tf_checkpoint": "ckpt/ckpt", "tflite": "model.tflite",
          "json_architecture": "model.json", "serving_base": "serving"}
# How each kind is reloaded (the kinds registry), shown in the table so the learner can repeat it.
RELOAD_CALL = {k.name: k.reload for k in KINDS.values() if k.reload}
TFLITE_ATOL = 1e-5  # TFLite kernels differ from TF's in float rounding only


@dataclass
class ProbeResult:
    """What one format brought back, measured.

    ``None`` means the column cannot apply to this kind, shown as ``n/a`` and explained in
    :attr:`not_applicable` (a ``tf.saved_model.load`` object has no optimizer to compare; TFLite
    folds the weights into its own tensors, so only its predictions can be compared). A
    ``False`` is always a measurement.
    """

    kind: str
    path: Path
    reloaded_with: str
    architecture_restored: bool | None = None
    weights_max_abs_diff: float | None = None
    optimizer_restored: bool | None = None
    optimizer_detail: str = ""
    compile_restored: bool | None = None
    predictions_max_abs_diff: float | None = None
    prediction_tolerance: float = 0.0
    signatures: list[str] = field(default_factory=list)
    size_bytes: int = 0
    save_seconds: float = 0.0
    load_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    not_applicable: dict[str, str] = field(default_factory=dict)  # column -> why it cannot apply

    def _cannot_apply(self, why: str, *columns: str) -> None:
        for column in columns:
            self.not_applicable[column] = why

    @property
    def weights_equal(self) -> bool | None:
        """Every weight bit-identical after the reload (``None``: not comparable)."""
        return None if self.weights_max_abs_diff is None else self.weights_max_abs_diff == 0.0

    @property
    def predictions_equal(self) -> bool | None:
        """Predictions within :attr:`prediction_tolerance` (``None``: not comparable)."""
        if self.predictions_max_abs_diff is None:
            return None
        return self.predictions_max_abs_diff <= self.prediction_tolerance

    @property
    def serving_signature(self) -> bool:
        """The reloaded artifact exposes at least one serving signature."""
        return bool(self.signatures)

# --------------------------------------------------------------------------------------------
# comparisons


def _optimizer_state(model: Any) -> tuple[int, list[np.ndarray]] | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not optimizer.built:
        return None
    return int(optimizer.iterations), [np.asarray(v) for v in optimizer.variables]


def _compare_optimizer(result: ProbeResult, original: Any, reloaded: Any) -> None:
    before = _optimizer_state(original)
    if before is None:
        result.optimizer_detail = "the original has no built optimizer"
        return
    optimizer = getattr(reloaded, "optimizer", None)
    if optimizer is None:
        result.optimizer_restored = False
        result.optimizer_detail = "no optimizer after reload"
        return
    if not optimizer.built:
        # Restored slots (checkpoints) or nothing: building creates the variables and shows it.
        optimizer.build(reloaded.trainable_variables)
    state = _optimizer_state(reloaded)
    assert state is not None  # built just above
    iterations, variables = state
    diff = max_abs_diff(before[1], variables)
    result.optimizer_restored = iterations == before[0] and diff == 0.0
    saved, found = len(before[1]), len(variables)
    if found != saved:  # e.g. only the step count and learning rate: the slots were not stored
        what = (f"{found} of the {saved} saved optimizer variables came back; the optimizer's "
                "slot variables (Adam's moments) did not")
    elif diff == 0.0:
        what = f"all {saved} optimizer variables came back unchanged"
    else:
        what = f"all {saved} optimizer variables exist but differ from the saved ones by up to {diff:.3g}"
    result.optimizer_detail = f"iterations {iterations} (saved {before[0]}); {what}"


def _compile_matches(result: ProbeResult, original: Any, reloaded: Any, x: np.ndarray) -> bool:
    """Same optimizer (class + config) and the same evaluate() results on fixed data.

    Compared by behaviour, not by config text: a legacy .h5 reload turns ``metrics=["mae"]``
    into a MeanAbsoluteError object, which is the same compiled model.
    """
    if not getattr(reloaded, "compiled", False):
        result.notes.append("reloaded model is not compiled")
        return False
    a, b = original.optimizer, reloaded.optimizer
    if type(a) is not type(b) or a.get_config() != b.get_config():
        result.notes.append(f"optimizer is {type(b).__name__}, saved {type(a).__name__}"
                            + ("" if type(a) is not type(b) else " with another config"))
        return False
    y = original.predict(x, verbose=0)
    try:
        before = original.evaluate(x, y, verbose=0, return_dict=True)
        after = reloaded.evaluate(x, y, verbose=0, return_dict=True)
    except Exception as exc:  # e.g. sparse labels: fall back to the configs' text
        result.notes.append(f"evaluate failed ({type(exc).__name__}); compared configs")
        return original.get_compile_config() == reloaded.get_compile_config()
    same = before.keys() == after.keys() and all(
        np.isclose(before[k], after[k], rtol=1e-6, atol=0) for k in before)
    if not same:
        result.notes.append(f"evaluate() differs: saved {sorted(before)}, reloaded {sorted(after)}")
    return bool(same)


def _compare_keras_model(result: ProbeResult, original: Any, reloaded: Any, x: np.ndarray,
                         *, from_file: bool) -> None:
    if from_file:
        differences = config_differences(original.get_config(), reloaded.get_config())
        result.architecture_restored = not differences
        if differences:
            result.notes.append(f"config differs at {differences[0]}"
                                + (f" (+{len(differences) - 1} more)" if len(differences) > 1
                                   else ""))
    result.weights_max_abs_diff = max_abs_diff(original.get_weights(), reloaded.get_weights())
    _compare_optimizer(result, original, reloaded)
    if from_file:
        result.compile_restored = _compile_matches(result, original, reloaded, x)
    result.predictions_max_abs_diff = max_abs_diff(
        [original.predict(x, verbose=0)], [reloaded.predict(x, verbose=0)])


# --------------------------------------------------------------------------------------------
# reloading each kind


def _rebuild(model: Any) -> Any:
    """The same architecture from code (a clone), compiled like the original when it was."""
    import keras

    clone = keras.models.clone_model(model)
    if getattr(model, "compiled", False):
        clone.compile_from_config(model.get_compile_config())
    return clone


def _reload(kind: str, model: Any, info: Any, result: ProbeResult, x: np.ndarray) -> None:
    from forgekit.keras_io.loading import load

    path = info.load_path
    if kind in ("keras", "h5_model"):
        import keras

        start = time.perf_counter()
        try:
            reloaded = keras.models.load_model(path)
        except Exception as exc:  # measured, not hidden: e.g. the legacy-H5 metrics trap
            result.notes.append(f"load_model failed: {type(exc).__name__}: "
                                f"{first_line(str(exc), 160)}; reloaded with compile=False")
            result.reloaded_with = "keras.models.load_model(path, compile=False)"
            start = time.perf_counter()
            reloaded = keras.models.load_model(path, compile=False)
        result.load_seconds = time.perf_counter() - start
        _compare_keras_model(result, model, reloaded, x, from_file=True)
    elif kind in ("weights_h5", "tf_checkpoint"):
        clone = _rebuild(model)
        start = time.perf_counter()
        load(path, model=clone)
        result.load_seconds = time.perf_counter() - start
        _compare_keras_model(result, model, clone, x, from_file=False)
        result._cannot_apply("architecture and compile config come from your code, not the file",
                             "architecture", "compile config")
    elif kind in ("savedmodel", "serving_base"):
        import tensorflow as tf

        start = time.perf_counter()
        obj = tf.saved_model.load(os.fspath(path))
        result.load_seconds = time.perf_counter() - start
        if hasattr(obj, "get_config") or hasattr(obj, "optimizer"):  # measured, not assumed
            result.notes.append("the tf.saved_model.load object unexpectedly has Keras attributes")
        result._cannot_apply("a tf.saved_model.load object is not a Keras model: it has no "
                             "Keras config, optimizer or compile config to compare",
                             "architecture", "optimizer state", "compile config")
        result.optimizer_detail = "not a Keras model"
        variables = list(getattr(obj, "variables", []))
        result.weights_max_abs_diff = max_abs_diff(model.weights, variables)
        endpoint = "serve" if "serve" in result.signatures else None
        if endpoint:
            result.predictions_max_abs_diff = max_abs_diff(
                [model.predict(x, verbose=0)], [np.asarray(getattr(obj, endpoint)(x))])
        result.notes.append("a tf.saved_model.load object: callable signatures and variables, "
                            "no Keras model")
    elif kind == "tflite":
        start = time.perf_counter()
        interpreter = load(path)
        result.load_seconds = time.perf_counter() - start
        runner = interpreter.get_signature_runner()
        (name,) = runner.get_input_details()
        outputs = runner(**{name: x})
        (output,) = outputs.values()
        result._cannot_apply("an inference-only flatbuffer: no Keras config, optimizer or "
                             "compile config; weights folded into TFLite tensors",
                             "architecture", "weights", "optimizer state", "compile config")
        result.optimizer_detail = "inference-only flatbuffer"
        result.prediction_tolerance = TFLITE_ATOL
        result.predictions_max_abs_diff = max_abs_diff([model.predict(x, verbose=0)], [output])
        result.signatures = sorted(interpreter.get_signature_list())
        result.notes.append("weights are folded into TFLite tensors: compared by predictions")
    else:  # json_architecture (roundtrip checked the kind)
        start = time.perf_counter()
        reloaded = load(path)
        result.load_seconds = time.perf_counter() - start
        differences = config_differences(model.get_config(), reloaded.get_config())
        result.architecture_restored = not differences
        result.weights_max_abs_diff = max_abs_diff(model.get_weights(), reloaded.get_weights())
        _compare_optimizer(result, model, reloaded)
        # Keras 3 writes the compile config into to_json(); evaluate() cannot judge it here
        # (the weights are fresh), so compare the configs themselves.
        compile_diff = config_differences(model.get_compile_config(),
                                          reloaded.get_compile_config())
        result.compile_restored = bool(getattr(reloaded, "compiled", False)) and not compile_diff
        if compile_diff:
            result.notes.append(f"compile config differs at {compile_diff[0]}")
        result.predictions_max_abs_diff = max_abs_diff(
            [model.predict(x, verbose=0)], [reloaded.predict(x, verbose=0)])
        result.notes.append("fresh random weights: the file holds the architecture only")


def roundtrip(
    model: Any,
    kind: str,
    directory: str | os.PathLike[str] | None = None,
    x: np.ndarray | None = None,
    *,
    save_kwargs: dict[str, Any] | None = None,
) -> ProbeResult:
    """Save ``model`` as ``kind``, reload it the way the format allows, and measure.

    Args:
        model: a built Keras 3 model (compile and train it first to probe optimizer state).
        kind: one of :data:`RELOAD_CALL`'s keys (the writable kinds of ``forgekit.save``).
        directory: where to write (kept for inspection); a temporary folder when ``None``.
        x: fixed inputs for the prediction check; default :func:`fixed_inputs`.
        save_kwargs: passed to the saving call (e.g. ``include_optimizer=False`` for .h5).
    """
    if kind not in RELOAD_CALL:
        raise ValueError(f"no probe for kind {kind!r}; choose from {', '.join(RELOAD_CALL)}")
    if x is None:
        x = fixed_inputs(model)
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="forgekit-probe-") as tmp:
            return roundtrip(model, kind, tmp, x, save_kwargs=save_kwargs)
    from forgekit.formats.detect import detect_format
    from forgekit.keras_io.saving import save

    target = Path(directory) / _NAMES[kind]
    start = time.perf_counter()
    info = save(model, target, kind=kind, **(save_kwargs or {}))
    save_seconds = time.perf_counter() - start
    result = ProbeResult(kind, info.path, RELOAD_CALL[kind], size_bytes=info.size_bytes,
                         save_seconds=save_seconds, signatures=list(info.signatures))
    if kind == "serving_base":  # the signatures live in the version folder
        result.signatures = list(detect_format(info.load_path).signatures)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras's own reload warnings: the notes say what matters
        _reload(kind, model, info, result, x)
    return result


# --------------------------------------------------------------------------------------------
# the table


def _mark(value: bool | None) -> str:
    return {True: "✓", False: "✗", None: "n/a"}[value]


def _diff_cell(diff: float | None, ok: bool | None) -> str:
    if diff is None:
        return "n/a"
    if diff == 0.0:
        return "✓ identical"
    if diff == float("inf"):
        return "✗ do not align"
    return f"{'✓' if ok else '✗'} max |Δ| {diff:.1e}"


@dataclass
class ProbeMatrix:
    """The probe results for several kinds; renders as HTML in a notebook, text elsewhere."""

    results: list[ProbeResult]

    COLUMNS = ("kind", "architecture", "weights", "optimizer state", "compile config",
               "predictions", "serving signature", "size", "save s", "load s")

    def __getitem__(self, kind: str) -> ProbeResult:
        for result in self.results:
            if result.kind == kind:
                return result
        raise KeyError(kind)

    def __iter__(self) -> Iterator[ProbeResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def rows(self) -> list[list[str]]:
        """The table as strings, one list per kind, in :attr:`COLUMNS` order."""
        return [
            [
                r.kind,
                _mark(r.architecture_restored),
                _diff_cell(r.weights_max_abs_diff, r.weights_equal),
                _mark(r.optimizer_restored),
                _mark(r.compile_restored),
                _diff_cell(r.predictions_max_abs_diff, r.predictions_equal),
                ", ".join(r.signatures) or "✗",
                human_bytes(r.size_bytes),
                f"{r.save_seconds:.2f}",
                f"{r.load_seconds:.2f}",
            ]
            for r in self.results
        ]

    def notes(self) -> list[str]:
        """Every result's notes and n/a reasons, each prefixed with its kind (under the table)."""
        out = []
        for r in self.results:
            out += [f"{r.kind}: {note}" for note in r.notes]
            reasons: dict[str, list[str]] = {}
            for column, why in r.not_applicable.items():
                reasons.setdefault(why, []).append(column)
            out += [f"{r.kind}: n/a ({', '.join(cols)}): {why}" for why, cols in reasons.items()]
        return out

    def table(self) -> Table:
        """The matrix as a :class:`~forgekit.table.Table`, notes below it."""
        return Table(self.COLUMNS, self.rows(), notes=self.notes())

    def __str__(self) -> str:
        return str(self.table())

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


def matrix(
    model: Any,
    kinds: Iterable[str] = DEFAULT_KINDS,
    directory: str | os.PathLike[str] | None = None,
    x: np.ndarray | None = None,
) -> ProbeMatrix:
    """:func:`roundtrip` for each kind (same fixed inputs), collected in a :class:`ProbeMatrix`."""
    if x is None:
        x = fixed_inputs(model)
    kinds = list(kinds)
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="forgekit-probe-") as tmp:
            return ProbeMatrix([roundtrip(model, k, Path(tmp) / k, x) for k in kinds])
    return ProbeMatrix([roundtrip(model, k, Path(directory) / k, x) for k in kinds])
