"""The failure lab: every loader a user reaches for, against every kind of saved model.

:data:`LOADERS` is the catalogue: for each loader, the real Keras/TF call it makes and
forgekit's prediction of when it works (from :func:`forgekit.doctor`'s diagnosis of the path).
:func:`run_matrix` makes every call for real on every artifact, keeps the actual outcome (the
exception type and first line of its message), and sets it beside forgekit's diagnosis and the
one call that does load the artifact. Predictions and outcomes disagreeing is a bug in forgekit
(``FailureMatrix.surprises``): the tests require there are none.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from forgekit.formats.kinds import keras_reads_name, kind
from forgekit.outcome import Outcome, attempt
from forgekit.quiet import muted_stderr, quiet_absl
from forgekit.table import Table

if TYPE_CHECKING:
    from forgekit.diagnose.diagnosis import ArtifactDiagnosis

Build = Callable[[], Any]  # returns a fresh model with the saved architecture (compiled)


# --------------------------------------------------------------------------------------------
# the loaders, each the plain call a user types


def _load_model(path: str, build: Build) -> Any:
    import keras

    return keras.models.load_model(path)


def _saved_model_load(path: str, build: Build) -> Any:
    import tensorflow as tf

    return tf.saved_model.load(path)


def _tfsm_layer(path: str, build: Build) -> Any:
    import keras

    return keras.layers.TFSMLayer(path, call_endpoint="serving_default")


def _load_weights(path: str, build: Build) -> Any:
    model = build()
    model.load_weights(path)
    return model


def _checkpoint_restore(path: str, build: Build) -> Any:
    import tensorflow as tf

    model = build()
    # restore() is lazy and succeeds on almost anything; the assertion is what finds out
    # whether the variables of the model were matched at all.
    status = tf.train.Checkpoint(model=model, optimizer=model.optimizer).restore(path)
    status.assert_existing_objects_matched()
    return model


def _model_from_json(path: str, build: Build) -> Any:
    import keras

    with open(path, encoding="utf-8") as f:
        return keras.models.model_from_json(f.read())


def _tflite(path: str, build: Build) -> Any:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=path)
    interpreter.allocate_tensors()
    return interpreter


def _named_right(d: ArtifactDiagnosis, weights: bool = False) -> bool:
    # Keras tests the path *string* as typed: "m.keras/" does not end with ".keras".
    return d.info is not None and keras_reads_name(d.path, d.kind, d.info.keras2,
                                                   weights=weights)


@dataclass(frozen=True)
class Loader:
    """A loader a user reaches for: the call shown, the call made, when forgekit says it works."""

    key: str
    name: str  # short name for tables
    call: str  # the call as a user types it; {path} stands for the path
    needs: str  # what it reads, in words
    kinds: tuple[str, ...]  # the artifact kinds it reads when the path is right
    run: Callable[[str, Build], Any]
    works: Callable[[ArtifactDiagnosis], bool]

    def run_guarded(self, d: ArtifactDiagnosis, path: str, build: Build) -> Any:
        """:attr:`run`, unless forgekit's preflight found the file would kill this process
        (a damaged TFLite flatbuffer): then its error is raised instead of the call made."""
        if self.key == "tflite" and d.refusal is not None:
            raise d.refusal
        return self.run(path, build)

    def explain(self, d: ArtifactDiagnosis) -> str:
        """forgekit's one-line verdict for this loader on a diagnosed path, with the fix."""
        if d.error is not None:
            return f"✗ {d.error.reason}. Fix: {d.error.fix}"
        if self.works(d):
            return "✓ predicted to work"
        if d.kind not in self.kinds:
            return f"✗ reads {self.needs}; this is {d.kind} ({kind(d.kind).label}). Fix: {d.fix}"
        why = [*d.notes, *(p for p in d.problems if not p.endswith("as given"))]
        if d.info is not None and d.info.mismatch:
            why.append(d.info.mismatch)
        if d.kind == "json_architecture" and d.info.keras2:
            why.append(f"written by {d.info.details.get('writer')}")
        return f"✗ {d.kind}, but {'; '.join(why) or 'not this path'}. Fix: {d.fix}"


_LOADER_LIST = (
    Loader("load_model", "keras.models.load_model",
           "keras.models.load_model({path})",
           "a path ending in .keras (zip) or .h5 (legacy HDF5 model)", ("keras", "h5_model"),
           _load_model,
           lambda d: not d.missing_objects and not d.bytecode_lambdas and _named_right(d) and (
               d.kind == "keras"
               or (d.kind == "h5_model" and d.compile_problem is None and not d.subclassed))),
    Loader("saved_model_load", "tf.saved_model.load",
           "tf.saved_model.load({path})",
           "a SavedModel folder (saved_model.pb + variables/)", ("savedmodel",), _saved_model_load,
           lambda d: d.kind == "savedmodel" and os.path.isdir(d.path)),
    Loader("tfsm_layer", "keras.layers.TFSMLayer",
           "keras.layers.TFSMLayer({path}, call_endpoint='serving_default')",
           "a SavedModel folder with a serving_default signature", ("savedmodel",), _tfsm_layer,
           lambda d: d.kind == "savedmodel" and os.path.isdir(d.path)
           and "serving_default" in d.info.signatures),
    Loader("load_weights", "model.load_weights",
           "model.load_weights({path})  # model rebuilt with the same architecture",
           "a .keras, a .weights.h5, or an .h5 (Keras 2 weights or legacy model)",
           ("keras", "h5_model", "weights_h5"), _load_weights,
           lambda d: _named_right(d, weights=True)),
    Loader("checkpoint_restore", "tf.train.Checkpoint.restore",
           "tf.train.Checkpoint(model=model, optimizer=model.optimizer).restore({path})"
           ".assert_existing_objects_matched()",
           "a checkpoint prefix (ckpt-1, not the folder or ckpt-1.index)", ("tf_checkpoint",),
           _checkpoint_restore,
           lambda d: d.kind == "tf_checkpoint"
           and os.path.normpath(d.path) == os.path.normpath(d.info.details.get("prefix", ""))
           and not d.path.endswith("/")),
    Loader("model_from_json", "keras.models.model_from_json",
           "keras.models.model_from_json(open({path}).read())",
           "a JSON architecture written by Keras 3", ("json_architecture",), _model_from_json,
           lambda d: d.kind == "json_architecture" and not d.path.endswith("/")
           and not d.info.keras2 and not d.missing_objects),
    Loader("tflite", "tf.lite.Interpreter",
           "tf.lite.Interpreter(model_path={path}).allocate_tensors()",
           "a .tflite flatbuffer", ("tflite",), _tflite,
           lambda d: d.kind == "tflite" and not d.path.endswith("/") and d.refusal is None),
)

LOADERS: dict[str, Loader] = {loader.key: loader for loader in _LOADER_LIST}


# --------------------------------------------------------------------------------------------
# the matrix


@dataclass
class Cell:
    """One loader on one artifact: what really happened, and what forgekit predicted."""

    loader: Loader
    outcome: Outcome
    predicted: bool

    @property
    def surprise(self) -> bool:
        """forgekit's prediction disagrees with what the call really did."""
        return bool(self.outcome.ok) != self.predicted

    @property
    def short(self) -> str:
        """The cell as the compact table shows it."""
        return "✓ works" if self.outcome.ok else f"✗ {self.outcome.error_type}"


@dataclass
class MatrixRow:
    """One artifact: its label, the path as given, forgekit's diagnosis, one cell per loader."""

    label: str
    path: str
    diagnosis: ArtifactDiagnosis
    cells: list[Cell] = field(default_factory=list)


@dataclass
class FailureMatrix:
    """Artifacts x loaders, measured. Renders as a compact table; see :meth:`details`."""

    rows: list[MatrixRow]

    @property
    def loaders(self) -> list[Loader]:
        """The loaders, in column order."""
        return [cell.loader for cell in self.rows[0].cells] if self.rows else []

    @property
    def surprises(self) -> list[tuple[str, str]]:
        """(artifact, loader) pairs where forgekit's prediction was wrong."""
        return [(row.label, cell.loader.key) for row in self.rows for cell in row.cells
                if cell.surprise]

    def row(self, label: str) -> MatrixRow:
        """The row of the artifact labelled ``label``."""
        for row in self.rows:
            if row.label == label:
                return row
        raise KeyError(f"no artifact labelled {label!r}; have {[r.label for r in self.rows]}")

    def table(self) -> Table:
        """Compact: one row per artifact, one column per loader (works / exception type)."""
        table = Table(["artifact", "forgekit: kind"] + [ld.name for ld in self.loaders],
                      title="Every loader on every artifact (real calls)", max_width=28)
        for row in self.rows:
            table.add(row.label, row.diagnosis.kind, *(cell.short for cell in row.cells))
        return table

    def fixes(self) -> Table:
        """One row per artifact: forgekit's diagnosis (notes) and the call that loads it."""
        table = Table(["artifact", "path as given", "forgekit says", "load it with"],
                      title="forgekit doctor on each path", max_width=90)
        for row in self.rows:
            d = row.diagnosis
            said = "; ".join(d.notes) or f"{d.kind}: loads as given"
            table.add(row.label, os.path.basename(row.path.rstrip("/")) + (
                "/" if row.path.endswith("/") else ""), said, d.fix)
        return table

    def details(self, label: str) -> Table:
        """Every loader on one artifact: the real message, and forgekit's diagnosis beside it."""
        row = self.row(label)
        d = row.diagnosis
        table = Table(["call", "what really happened", "forgekit"],
                      title=f"{label}: {d.kind}", max_width=110)
        for cell in row.cells:
            table.add(cell.loader.name, str(cell.outcome), cell.loader.explain(d))
        return table

    def __str__(self) -> str:
        return str(self.table())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


def run_matrix(artifacts: Mapping[str, str | os.PathLike[str]], build: Build,
               loaders: Mapping[str, Loader] | None = None) -> FailureMatrix:
    """Call every loader on every artifact for real; pair each outcome with forgekit's view.

    Args:
        artifacts: label -> path exactly as a user would type it (keep trailing slashes: a
            ``str``, not a ``Path``, which drops them).
        build: returns a new model with the architecture the artifacts were saved from,
            compiled like it, for the loaders that fill an existing model.
        loaders: defaults to :data:`LOADERS`.
    """
    from forgekit.diagnose.diagnosis import diagnose_artifact

    loaders = LOADERS if loaders is None else loaders
    rows = []
    with warnings.catch_warnings(), muted_stderr(), quiet_absl():
        warnings.simplefilter("ignore")  # deprecations and skipped-variable notices
        for label, path in artifacts.items():
            raw = os.fspath(path)
            row = MatrixRow(label, raw, diagnose_artifact(raw))
            for loader in loaders.values():
                predicted = row.diagnosis.error is None and loader.works(row.diagnosis)
                row.cells.append(Cell(loader, attempt(loader.run_guarded, row.diagnosis, raw,
                                                      build), predicted))
            rows.append(row)
    return FailureMatrix(rows)


def loaders_table(loaders: Mapping[str, Loader] | None = None) -> Table:
    """The catalogue: each loader's call and what it reads."""
    table = Table(["loader", "the call", "reads"], title="The loaders you reach for",
                  max_width=100)
    for loader in (LOADERS if loaders is None else loaders).values():
        table.add(loader.name, loader.call.format(path="path"), loader.needs)
    return table
