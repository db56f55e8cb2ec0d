"""Load every model format through the real Keras/TF API, chosen by content.

``forgekit.load(path)`` detects the kind from the content and calls the loader that fits; a
caller's expectation (``expect=``) or choice (``loader=``) that does not fit the content raises
:class:`~forgekit.errors.WrongFormatError` naming the call that would work, and a damaged
artifact raises :class:`~forgekit.errors.CorruptArtifactError`, never a bare h5py/protobuf/zipfile
traceback. Loading never writes next to the artifact.

Before any loader runs, :func:`forgekit.keras_io.safety.preflight` applies the safe-load rule:
no loader runs Python stored in the file (Lambda bytecode) unless the call says
``safe_mode=False``, and a TFLite flatbuffer is opened in a child process first. Detection
itself reads only regular files, within caps (:mod:`forgekit.formats.bounded`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from forgekit.errors import (
    RESAVE,
    CorruptArtifactError,
    ForgekitError,
    IncompatibleArtifactError,
    WrongFormatError,
    read_failed,
    unreadable,
)
from forgekit.formats import bounded
from forgekit.formats.detect import detect_format
from forgekit.formats.info import FormatInfo
from forgekit.formats.kinds import (
    KINDS,
    endpoint_for,
    extension_kinds,
    keras_reads_name,
    keras_suffix,
)
from forgekit.keras_io.safety import RUNS_STORED_CODE, preflight
from forgekit.outcome import first_line

# --------------------------------------------------------------------------------------------
# load


def _load_keras(info: FormatInfo, safe_mode: bool = True, **kw: Any) -> Any:
    import keras

    if info.kind == "keras":  # the same loader reads legacy .h5 files
        _check_crcs(info.path)
    with _proper_name(info) as path:
        return keras.saving.load_model(path, safe_mode=safe_mode, **kw)


def _check_crcs(path: str | os.PathLike[str]) -> None:
    """Raise ``zipfile.BadZipFile`` naming the first member whose bytes fail their CRC-32.

    Keras opens the weights member and h5py seeks inside it; since Python 3.12 a seek skips the
    CRC check a full read makes, so damaged weights would load as a confusing "objects could not
    be loaded" error, or not fail at all. Member sizes were already capped by detect_format.
    """
    with zipfile.ZipFile(path) as zf:
        bad = zf.testzip()
    if bad is not None:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {bad!r}")


def _load_tf_keras(info: FormatInfo, safe_mode: bool = True, **kw: Any) -> Any:
    import tf_keras

    # tf-keras ignores safe_mode for legacy HDF5, SavedModel and JSON (keras-team/tf-keras#910):
    # preflight has already refused bytecode unless safe_mode=False.
    if info.kind == "json_architecture":
        return tf_keras.models.model_from_json(bounded.read_text(info.path), **kw)
    with _proper_name(info) as path:
        return tf_keras.models.load_model(path, safe_mode=safe_mode, **kw)


def _load_saved_model(info: FormatInfo, **kw: Any) -> Any:
    import tensorflow as tf

    return tf.saved_model.load(os.fspath(info.load_path), **kw)


def _load_tfsm_layer(info: FormatInfo, **kw: Any) -> Any:
    import keras

    kw.setdefault("call_endpoint", endpoint_for(info.signatures))
    return keras.layers.TFSMLayer(os.fspath(info.load_path), **kw)


def _needs_model(info: FormatInfo, reason: str) -> WrongFormatError:
    """The error for weights or a checkpoint loaded without the model to restore them into."""
    return WrongFormatError(
        reason, path=info.path, found=info.kind, expected="a whole model",
        fix=f"model = <build the same architecture, compiled like the one saved>; "
            f"{KINDS[info.kind].forgekit_call(info.path)}",
    )


def _load_weights(info: FormatInfo, model: Any = None, **kw: Any) -> Any:
    if model is None:
        raise _needs_model(info, "weights only: there is no architecture in this file to build "
                                 "a model from")
    optimizer = getattr(model, "optimizer", None)
    if info.has_optimizer and optimizer is not None and not optimizer.built:
        # Keras 3 skips saved optimizer slots (with only a warning) unless the optimizer already
        # has its variables; building it first makes load_weights restore them.
        optimizer.build(model.trainable_variables)
    with _proper_name(info, weights=True) as path:
        model.load_weights(path, **kw)
    return model


def _load_checkpoint(
    info: FormatInfo, model: Any = None, objects: dict[str, Any] | None = None, **kw: Any
) -> Any:
    import tensorflow as tf

    if objects is None:
        if model is None:
            raise _needs_model(info, "a checkpoint holds variables only; restoring needs the "
                                     "objects they belong to")
        objects = {"model": model}
        if getattr(model, "optimizer", None) is not None:
            objects["optimizer"] = model.optimizer
    # restore() is lazy and matches by name: objects the checkpoint does not hold are skipped
    # silently, and the model came back untouched. At least the model (else one of the
    # objects) must be in it; partial is fine (optimizer slots restore when it builds).
    held = _root_objects(info.load_path)
    wanted = ["model"] if model is not None else list(objects)
    if not held & set(wanted):
        raise WrongFormatError(
            f"nothing in this checkpoint belongs to {' or '.join(wanted)}: it holds "
            f"{', '.join(sorted(held)) or 'no variables'}",
            path=info.path, found=f"{info.kind} of other objects",
            expected=f"a checkpoint of {', '.join(objects)}",
            fix=f"tf.saved_model.load({os.fspath(info.path.parent)!r})  # variables/ of an export"
            if info.path.name == "variables" else
            "restore with the objects it was saved from, under the same names: "
            "tf.train.Checkpoint(<name>=...).restore(path)",
        )
    status = tf.train.Checkpoint(**objects).restore(os.fspath(info.load_path), **kw)
    status.expect_partial()
    return model if model is not None else objects


def _root_objects(prefix: str | os.PathLike[str]) -> set[str]:
    """The names a checkpoint's root object holds (``model``, ``optimizer``, ``save_counter``):
    the ``Checkpoint(name=...)`` keywords it was saved with. Its variables' keys do not tell:
    Keras 3 files a model's variables under the first object that reaches them."""
    import tensorflow as tf
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = tf.train.load_checkpoint(os.fspath(prefix))
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    return {child.local_name for child in graph.nodes[0].children} if graph.nodes else set()


def _load_tflite(info: FormatInfo, **kw: Any) -> Any:
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        try:
            interpreter = tf.lite.Interpreter(model_path=os.fspath(info.path), **kw)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:  # the interpreter's words for a bad buffer
            raise _corrupt(info, exc) from exc
    return interpreter


def _load_json(info: FormatInfo, safe_mode: bool = True, **kw: Any) -> Any:
    import json

    import keras

    # what keras.models.model_from_json does, with safe_mode passed on (it takes none)
    config = json.loads(bounded.read_text(info.path, encoding="utf-8-sig"))
    return keras.saving.deserialize_keras_object(config, safe_mode=safe_mode, **kw)


# loader name -> (kinds it reads, function, the real call it makes). The names are those of
# the failure lab's plain calls (forgekit.diagnose.loaders.LOADERS) and of formats.kinds'
# Kind.loader: one name per loader across forgekit.
LOADERS: dict[str, tuple[tuple[str, ...], Callable[..., Any], str]] = {
    "load_model": (("keras", "h5_model"), _load_keras, "keras.models.load_model"),
    "tf_keras": (("h5_model", "savedmodel", "json_architecture"), _load_tf_keras,
                 "tf_keras.models.load_model"),
    "saved_model_load": (("savedmodel",), _load_saved_model, "tf.saved_model.load"),
    "tfsm_layer": (("savedmodel",), _load_tfsm_layer, "keras.layers.TFSMLayer"),
    "load_weights": (("weights_h5", "keras"), _load_weights, "model.load_weights"),
    "checkpoint_restore": (("tf_checkpoint",), _load_checkpoint,
                           "tf.train.Checkpoint(...).restore"),
    "tflite": (("tflite",), _load_tflite, "tf.lite.Interpreter"),
    "model_from_json": (("json_architecture",), _load_json, "keras.models.model_from_json"),
}



def _fix_for(info: FormatInfo) -> str:
    """The fix for a wrong call: the plain call for this kind (registry), or forgekit.load."""
    forgekit_call = KINDS[info.kind].forgekit_call(info.path)
    if not info.how_to_load or info.how_to_load.startswith("forgekit.load("):
        return info.how_to_load or forgekit_call
    return f"{info.how_to_load}  (or {forgekit_call})"


def load(
    path: str | os.PathLike[str],
    expect: str | tuple[str, ...] | None = None,
    *,
    loader: str | None = None,
    safe_mode: bool = True,
    **kwargs: Any,
) -> Any:
    """Load the artifact at ``path`` with the real API that fits its content.

    Returns a ``keras.Model`` for ``keras``/``h5_model``/``json_architecture``; the
    ``tf.saved_model.load`` object for ``savedmodel`` (``loader="tfsm_layer"`` for a Keras layer,
    ``"tf_keras"`` for a Keras 2 SavedModel); the given ``model`` with its weights restored for
    ``weights_h5`` and ``tf_checkpoint`` (pass ``model=``; a checkpoint also takes ``objects=``);
    an allocated ``tf.lite.Interpreter`` for ``tflite``. A ``serving_base`` is refused: name the
    version folder to load. Remaining keyword arguments go to the underlying call (e.g.
    ``compile=False``, ``custom_objects=``).

    Args:
        expect: the kind (or kinds) the caller expects; anything else raises WrongFormatError.
        loader: force one of :data:`LOADERS` instead of the default for the detected kind.
        safe_mode: ``False`` lets a loader run Python stored in the file (Lambda bytecode):
            only for a file you trust. Every loader gets the same rule, tf-keras's included.

    Raises:
        UnsafeLambdaError: the loader would run Python stored in the file.
        WrongFormatError: the content is not ``expect``, or ``loader`` cannot read it.
        CorruptArtifactError: empty, truncated or corrupt artifact; unknown content.
        ArtifactNotFoundError, UnreadableArtifactError: nothing there, or no permission.
    """
    info = detect_format(path)
    expected = (expect,) if isinstance(expect, str) else expect
    if expected and info.kind not in expected:
        raise WrongFormatError(
            "the content is not what was expected",
            path=path, found=info.kind, expected=" or ".join(expected), fix=_fix_for(info),
        )
    if info.kind == "unknown":
        promised = extension_kinds(path)
        error = CorruptArtifactError if promised else WrongFormatError
        raise error(
            "the content matches no model format"
            + (f" although the name promises {' or '.join(promised)}" if promised else "")
            + (f" (first bytes: {info.details['first_bytes']})"
               if "first_bytes" in info.details else ""),
            path=path,
            found="unknown",
            expected=" or ".join(promised) or "a model artifact",
            fix="forgekit.detect_format(path) shows what is there; save the model again",
        )
    if KINDS[info.kind].loader is None:  # serving_base
        latest = info.details.get("load_path")
        raise WrongFormatError(
            "a serving base holds several model versions; load one of them",
            path=path,
            found="serving_base",
            expected="savedmodel",
            fix=f"forgekit.load({latest!r})" if latest else "export a version into it first",
        )
    name = loader or KINDS[info.kind].loader
    if name not in LOADERS:
        raise WrongFormatError(
            f"no loader named {name!r} (choose from {', '.join(LOADERS)})",
            path=path, found=info.kind, expected=name, fix=_fix_for(info),
        )
    kinds, function, call = LOADERS[name]
    if info.kind not in kinds or (name == "tf_keras" and info.kind == "savedmodel"
                                  and not info.keras2):
        raise WrongFormatError(
            f"{call} cannot read this artifact",
            path=path, found=info.kind, expected=" or ".join(kinds), fix=_fix_for(info),
        )
    preflight(info, name, safe_mode)  # the safe-load rule; a tflite opened in a child first
    if name in RUNS_STORED_CODE:
        kwargs["safe_mode"] = safe_mode
    if info.mismatch:
        warnings.warn(f"{path}: {info.mismatch}; loading it as {info.kind}", stacklevel=2)
    try:
        return function(info, **kwargs)
    except ForgekitError:
        raise
    except PermissionError as exc:
        raise unreadable(path, exc, found=info.kind, expected=info.kind) from exc
    except Exception as exc:
        if _is_tf_error(exc, "PermissionDeniedError"):  # TF reads shards with its own file API
            raise unreadable(path, exc, found=info.kind, expected=info.kind) from exc
        if _is_corruption(exc):
            raise _corrupt(info, exc) from exc
        if isinstance(exc, OSError) and exc.errno is not None:  # ENOSPC, EMFILE, EIO: the system
            raise read_failed(path, exc, found=info.kind, expected=info.kind) from exc
        if KINDS[info.kind].stores_config:  # custom objects, Lambda
            from forgekit.keras_io.custom_objects import explain_load_error

            explained = explain_load_error(path, exc, kwargs.get("custom_objects"))
            if explained is not None:
                raise explained from exc
        if (info.kind == "h5_model" and "compile" not in kwargs
                and "Could not deserialize" in str(exc)):
            # Keras 3's legacy reader cannot rebuild the short aliases "mse"/"mae" (it resolves
            # them as keras.metrics.mse) that writers store in training_config; full names
            # ("mean_squared_error") and loss objects reload.
            raise IncompatibleArtifactError(
                "this Keras cannot rebuild the compile settings stored in the legacy HDF5 file "
                f"({first_line(str(exc), 120)}); the weights and architecture are fine",
                path=path, found="h5_model", expected="h5_model",
                fix=f"forgekit.load({os.fspath(path)!r}, compile=False), then model.compile(...)",
            ) from exc
        raise


def _is_corruption(exc: BaseException) -> bool:
    """Low-level read failures (damaged bytes), as opposed to Keras's own, meaningful errors.

    An ``OSError`` with an ``errno`` (disk full, too many open files, I/O error) is the system
    failing, not the artifact: :func:`load` reports it as such before asking this. h5py's
    format errors are ``OSError`` without an errno.
    """
    if isinstance(exc, OSError) and exc.errno is not None:
        return False
    if isinstance(exc, OSError | EOFError | zipfile.BadZipFile | struct.error | UnicodeDecodeError):
        return True
    if isinstance(exc, IndexError) and "Read less bytes" in str(exc):
        return True  # TF's checkpoint reader on a truncated .data-* shard
    module = type(exc).__module__
    if module.startswith("google.protobuf"):  # DecodeError
        return True
    return _is_tf_error(exc, "DataLossError", "OutOfRangeError")


def _is_tf_error(exc: BaseException, *names: str) -> bool:
    """``exc`` is one of ``tf.errors.<names>`` (TensorFlow's own, not Python's, exceptions)."""
    tf = sys.modules.get("tensorflow")  # not imported yet: then no TF error can be raised
    return tf is not None and isinstance(exc, tuple(getattr(tf.errors, n) for n in names))


def _corrupt(info: FormatInfo, exc: BaseException) -> CorruptArtifactError:
    return CorruptArtifactError(
        f"reading failed ({type(exc).__name__}: {first_line(str(exc), 200)}); "
        "the artifact is truncated or damaged",
        path=info.path,
        found=f"corrupt {info.kind}",
        expected=info.kind,
        fix=RESAVE,
    )


@contextlib.contextmanager
def _proper_name(info: FormatInfo, weights: bool = False) -> Iterator[str]:
    """Yield a path whose extension matches the content, for loaders that pick by extension.

    Keras 3 chooses its reader from the file name (see :func:`forgekit.formats.kinds.keras_reads_name`;
    ``weights`` for ``load_weights``). A misnamed artifact is read through a link with the right
    name in a temporary folder; the artifact itself is never renamed or touched.
    """
    path = info.load_path
    suffix = keras_suffix(info.kind, info.keras2)
    if not suffix or keras_reads_name(path.name, info.kind, info.keras2, weights=weights):
        yield os.fspath(path)
        return
    with tempfile.TemporaryDirectory(prefix="forgekit-load-") as tmp:
        link = Path(tmp) / f"artifact{suffix}"
        try:
            link.symlink_to(path.resolve())
        except OSError:  # no symlinks (some filesystems): a copy in the temp folder
            shutil.copyfile(path, link)
        yield os.fspath(link)
