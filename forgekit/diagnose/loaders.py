"""The loaders a user reaches for, each the plain Keras/TF call it makes, with forgekit's
prediction of when it works (from :func:`forgekit.doctor`'s diagnosis of the path).

:data:`LOADERS` is the catalogue that the diagnosis (which loader works on a path) and the failure
matrix (every loader, for real, on every artifact) both read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from forgekit.formats.kinds import keras_reads_name, kind

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
