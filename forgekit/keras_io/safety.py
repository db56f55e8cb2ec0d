"""The safe-load rule, in one place: nothing runs a model's code unless asked with
``safe_mode=False``, and nothing a loader does to a file can kill this process.

:func:`preflight` is what :func:`forgekit.load` runs before any loader, and what
:func:`forgekit.doctor` asks before it predicts a loader works, so the two never disagree:

* :func:`check_safe`: a loader that rebuilds a model from its stored config (``keras``,
  ``tf_keras``, ``json``) is refused when the config holds Python bytecode (a ``Lambda``), in
  every container: ``.keras``, legacy ``.h5``, JSON, and a Keras 2 SavedModel's
  ``keras_metadata.pb``. Keras 3 refuses bytecode itself, but tf-keras's legacy HDF5 and
  SavedModel readers do not (keras-team/tf-keras#910), so forgekit does not leave it to the
  reader. ``tf.saved_model.load``, ``TFSMLayer``, ``load_weights`` and checkpoint restores read
  no config: they run no stored Python.
* :func:`check_tflite`: the TFLite interpreter trusts its flatbuffer (``tf.lite.Interpreter``
  does not verify it: a damaged file is a SIGSEGV, a dead kernel). The file is first opened in a
  child process with LiteRT, which verifies the flatbuffer and allocates the tensors; only a file
  that survives that is opened here. A verified file LiteRT cannot run (Select TF ops need the
  Flex delegate, which only TensorFlow's interpreter links) is tried in a second child with
  ``tf.lite.Interpreter`` itself, so what loads in-process is exactly what loaded there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from forgekit.errors import RESAVE, CorruptArtifactError
from forgekit.formats.info import FormatInfo
from forgekit.keras_io.custom_objects import UnsafeLambdaError
from forgekit.outcome import first_line

RUNS_STORED_CODE = ("load_model", "tf_keras", "model_from_json")  # forgekit.load loaders that rebuild a config
TFLITE_TIMEOUT = 120.0  # seconds for a child to open a flatbuffer; a real one takes < 10 s

# LiteRT imports in a fraction of a second and verifies the flatbuffer before building
_LITERT = """\
import sys
from ai_edge_litert.interpreter import Interpreter
Interpreter(model_path=sys.argv[1]).allocate_tensors()
"""
# the in-process loader itself (TensorFlow's import takes seconds): only when LiteRT cannot say
_TF_LITE = """\
import sys, warnings
warnings.simplefilter("ignore")
import tensorflow as tf
tf.lite.Interpreter(model_path=sys.argv[1]).allocate_tensors()
"""
_INVALID = "not a valid Flatbuffer"  # LiteRT's verifier refused the bytes
_VERIFIED: dict[tuple[int, int, int, int], None] = {}  # (device, inode, size, mtime) opened fine


def check_safe(info: FormatInfo, loader: str, safe_mode: bool = True) -> None:
    """Raise :class:`UnsafeLambdaError` when ``loader`` would run Python stored in the artifact.

    ``loader`` is a key of :data:`forgekit.keras_io.loading.LOADERS`. With ``safe_mode=False``
    (the caller trusts the file) nothing is refused.
    """
    if safe_mode is False or loader not in RUNS_STORED_CODE:
        return
    layers = info.details.get("bytecode_lambdas") or []
    unchecked = info.details.get("code_unchecked")
    if not layers and not unchecked:
        return
    call = ("tf_keras.models.load_model" if loader == "tf_keras" else
            "keras.models.model_from_json" if loader == "model_from_json" else "keras.models.load_model")
    trusted = f"forgekit.load({os.fspath(info.path)!r}, loader={loader!r}, safe_mode=False)"
    if layers:
        reason = (f"Lambda layer(s) {', '.join(repr(n) for n in layers)} hold Python bytecode, "
                  f"and {call} would run it; safe_mode=True refuses code from a file")
        found = "Lambda bytecode"
    else:
        reason = (f"the stored config could not be checked for Python bytecode ({unchecked}); "
                  f"{call} could run code from it")
        found = "an unchecked config"
    better = ("model.load_weights(path) into the architecture rebuilt in code"
              if info.kind in ("keras", "h5_model") else
              "tf.saved_model.load(path) (the traced graph, no Python)"
              if info.kind == "savedmodel" else
              "replace the lambda by a registered custom layer and save again")
    raise UnsafeLambdaError(
        reason, path=info.path, found=found, expected="a model without Python lambdas",
        fix=f"better: {better}; only for a file you trust: {trusted}")


def check_tflite(info: FormatInfo, timeout: float = TFLITE_TIMEOUT) -> None:
    """Open the flatbuffer in a child process first; CorruptArtifactError if it fails or dies.

    A file that passed once, or that :func:`forgekit.save` converted in this process, is
    remembered (by device, inode, size and modification time).
    """
    from forgekit.quiet import child_env

    path = os.fspath(info.path)
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _VERIFIED:
        return
    proc = _child(info, _LITERT, timeout, child_env())
    invalid = _INVALID in proc.stderr
    if proc.returncode > 0 and not invalid:
        # verified, or LiteRT missing, but LiteRT cannot run it (Flex ops): ask TF's own
        proc = _child(info, _TF_LITE, timeout, child_env())
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise _bad(info, f"the TFLite runtime crashed on it ({name}) in a child process; "
                         "opened here, it would have killed this process")
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        said = first_line(lines[-1], 300) if lines else f"exit code {proc.returncode}"
        if invalid:
            raise _bad(info, f"the TFLite runtime refused it ({said})")
        raise CorruptArtifactError(  # a sound file this runtime cannot run: no damage claimed
            f"the TFLite runtime cannot run it ({said})", path=info.path,
            found="tflite this interpreter cannot run", expected="tflite with builtin ops",
            fix="convert it again with TFLITE_BUILTINS only, or run it where the ops it needs "
                "are linked (Select TF ops need the Flex delegate)")
    _VERIFIED[key] = None


def trust_written(path: str | os.PathLike[str]) -> None:
    """Record a flatbuffer this process's converter has just written as checked: it is not a
    stranger's file, and the lessons' load timings stay the interpreter's own."""
    st = os.stat(path)
    _VERIFIED[(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)] = None


def _child(info: FormatInfo, code: str, timeout: float, env: dict[str, str]
           ) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([sys.executable, "-c", code, os.fspath(info.path)],
                              capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        raise _bad(info, f"opening it did not finish within {timeout:g} s in a child "
                         "process") from None


def _bad(info: FormatInfo, reason: str) -> CorruptArtifactError:
    return CorruptArtifactError(
        f"{reason}: the flatbuffer is damaged", path=info.path, found="corrupt tflite",
        expected="tflite", fix=f"convert the model again with tf.lite.TFLiteConverter; {RESAVE}")


def preflight(info: FormatInfo, loader: str, safe_mode: bool = True, **_: Any) -> None:
    """Everything :func:`forgekit.load` checks before it hands ``info`` to ``loader``."""
    check_safe(info, loader, safe_mode)
    if loader == "tflite":
        check_tflite(info)
