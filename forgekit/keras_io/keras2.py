"""Keras 2 artifacts, read through tf-keras: what a Keras 2 file or folder holds, and its answers.

:func:`read_source` decides what a path is (a Keras 2 SavedModel folder, legacy ``.h5``, or a
weights file / TF checkpoint with its architecture JSON) and reads its stored Keras 2 configs
without TensorFlow; :func:`rebuild_blocker` says why a config cannot be rebuilt (a subclassed
model, Lambda bytecode). :func:`child_step` is the snippet a fresh tf-keras process runs to load
the artifact, dump its weights and optimizer state and answer probe inputs;
:func:`keras2_answers` runs it for one artifact. :mod:`forgekit.migrate` uses all of them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.errors import RESAVE, ForgekitError
from forgekit.formats.configs import scan_config, stored_configs
from forgekit.formats.detect import detect_format
from forgekit.measure.fresh import run_steps

PROBES = 8  # probe inputs per artifact


class MigrationError(ForgekitError, ValueError):
    """SRC cannot be migrated as given: not a Keras 2 artifact, incomplete, or not rebuildable."""


def _keras2_metadata(folder: Path) -> dict[str, Any]:
    """The root object's metadata in a Keras 2 SavedModel's keras_metadata.pb (JSON inside)."""
    from forgekit.formats import protobuf

    raw = (folder / "keras_metadata.pb").read_bytes()
    for node in protobuf.fields(raw).get(1, []):  # SavedMetadata.nodes
        f = protobuf.fields(node)  # 3: node_path, 5: metadata (JSON)
        if protobuf.text(f.get(3, [b""])[0]) == "root":
            return json.loads(protobuf.text(f[5][0]))
    raise ValueError("keras_metadata.pb has no root node")


def read_source(src: Path, architecture: Path | None) -> dict[str, Any]:
    """Decide what SRC is and read its Keras 2 configs; MigrationError for anything else."""
    info = detect_format(src)  # missing, unreadable, truncated: forgekit's own clear errors

    def refuse(reason: str, found: str, fix: str) -> MigrationError:
        return MigrationError(reason, path=src, found=found, fix=fix, expected=(
            "a Keras 2 artifact: a SavedModel folder from tf_keras model.save(dir), a legacy "
            ".h5, or a weights file / TF checkpoint with architecture="))

    def stored(path: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(model config or None, training config) from a SavedModel, .h5 or JSON."""
        try:
            if path.is_dir():
                meta = _keras2_metadata(path)
                config = {"class_name": meta.get("class_name"), "config": meta.get("config")}
                return (config if meta.get("config") is not None else None,
                        meta.get("training_config"))
            return stored_configs(path)[1:]
        except (ValueError, KeyError, IndexError, OSError) as exc:  # bytes, not the system
            raise refuse(f"its stored Keras 2 config does not read ({type(exc).__name__}: "
                         f"{exc})", f"{info.kind} with an unreadable config", RESAVE) from exc

    if info.kind == "keras" or (info.kind in ("h5_model", "weights_h5") and not info.keras2):
        raise refuse("this is already a Keras 3 file: there is nothing to migrate",
                     f"{info.kind} written by Keras 3",
                     f"keras.models.load_model({os.fspath(src)!r}) reads it as it is")
    if info.kind == "savedmodel" and not info.keras2:
        raise refuse("a SavedModel without keras_metadata.pb (tf.saved_model.save or "
                     "model.export) holds graphs, not a Keras model to rebuild",
                     "savedmodel (no Keras metadata)", f"keras.layers.TFSMLayer({os.fspath(src)!r}"
                     ", call_endpoint='serving_default') wraps it for inference")
    if info.kind == "savedmodel":
        config, training = stored(src)
        return {"kind": "Keras 2 SavedModel", "mode": "model", "info": info, "config": config,
                "training": training}
    if info.kind == "h5_model":
        config, training = stored(src)
        return {"kind": "legacy .h5" + (" (compiled)" if training else " (not compiled)"),
                "mode": "model", "info": info, "config": config, "training": training}
    if info.kind in ("weights_h5", "tf_checkpoint"):
        label = "weights .h5" if info.kind == "weights_h5" else "TF checkpoint"
        if architecture is None:
            raise refuse(f"a {label} holds no architecture", info.kind, "pass the model's JSON "
                         "(model.to_json()): --architecture FILE, or architecture= in Python")
        config, training = stored(architecture)
        return {"kind": f"{label} + JSON", "mode": "weights", "info": info, "config": config,
                "training": training}
    raise refuse("not a Keras 2 model artifact", info.kind, "point SRC at the SavedModel "
                 "folder, the .h5 file, or the weights file (with its architecture JSON)")


def rebuild_blocker(source: dict[str, Any], unsafe_lambda: bool) -> str:
    """Why the architecture cannot be rebuilt from the config ('' when it can)."""
    config = source["config"]
    if config is None:
        return ("a subclassed model without get_config: the SavedModel records its graphs but no "
                "config to rebuild the Python class from")
    scan = scan_config(config)
    if scan.subclassed:
        return f"a subclassed model ({scan.subclassed}): its layers live in Python code"
    code = [layer.name for layer in scan.lambda_layers if layer.bytecode]
    if code and not unsafe_lambda:
        return (f"Lambda layer(s) {', '.join(map(repr, code))} store Python bytecode; rebuilding "
                "runs that code, which needs unsafe_lambda (--unsafe-lambda) for a file you trust")
    return ""


# The snippet a fresh tf-keras process runs: load, dump weights + optimizer, answer probes.
_CHILD = r"""
import importlib, numpy as np, tensorflow as tf, tf_keras
for name in MODULES:
    importlib.import_module(name)
rng, ints, notes = np.random.default_rng(0), ("int32", "int64"), []
def probe(shape, dtype, top):
    shape = [PROBES] + [d or 6 for d in shape[1:]]
    if top or dtype in ints:  # an Embedding's input: token ids it has rows for
        return rng.integers(0, top or 10, shape).astype(dtype if dtype in ints else "float32")
    return rng.standard_normal(shape).astype(dtype)
if MODE == "graph":  # no Keras object is revived: nothing from the file's Python code runs
    fn = tf.saved_model.load(SRC).signatures["serving_default"]
    specs = fn.structured_input_signature[1]
    xs = [probe(specs[n].shape, specs[n].dtype.name, 0) for n in sorted(specs)]
    answer = fn(**{n: tf.constant(x) for n, x in zip(sorted(specs), xs)})
    ys = [answer[k].numpy() for k in sorted(answer)]
    meta = {"inputs": [[n, list(specs[n].shape), specs[n].dtype.name] for n in sorted(specs)]}
else:
    if MODE == "model":
        try:
            model = tf_keras.models.load_model(SRC)
        except Exception as exc:  # e.g. a custom loss: keep the weights, lose the compile
            notes.append(f"tf-keras could not compile it ({type(exc).__name__}: {exc})"[:300])
            model = tf_keras.models.load_model(SRC, compile=False)
        if tf.io.gfile.isdir(SRC):  # load_model leaves the optimizer's slots behind; this reads them
            model.load_weights(SRC + "/variables/variables").expect_partial()
    else:
        model = tf_keras.models.model_from_json(open(ARCH).read())
        try:
            status = model.load_weights(SRC)
            if not SRC.endswith(".h5"):
                status.assert_existing_objects_matched()
        except (AssertionError, ValueError):  # a tf.train.Checkpoint(model=...)
            tf.train.Checkpoint(model=model).restore(SRC).expect_partial()
    xs = [probe(inp.shape, inp.dtype.name, min([l.input_dim for l in model.layers if isinstance(
          l, tf_keras.layers.Embedding) and getattr(l.input, "name", 0) == inp.name] or [0]))
          for inp in model.inputs]
    ys = [np.asarray(t) for t in tf.nest.flatten(model(xs if len(xs) > 1 else xs[0],
                                                       training=False))]
    weights = [(l.name, w.name, w.numpy()) for l in model.layers for w in l.weights]
    np.savez(OUT + "/weights.npz", *[a for _, _, a in weights])
    meta = {"weights": [[l, n, list(a.shape)] for l, n, a in weights], "optimizer": None}
    opt = getattr(model, "optimizer", None)
    if opt is not None:
        opt.build(model.trainable_variables)  # creates the slots; a checkpoint restores them
        meta["optimizer"] = {"variables": [v.name for v in opt.variables],
                             "iterations": int(opt.iterations),
                             "legacy": "legacy" in type(opt).__module__ or "_v2" in type(opt).__module__}
        np.savez(OUT + "/optimizer.npz", *[v.numpy() for v in opt.variables])
np.savez(OUT + "/probe.npz", *xs)
np.savez(OUT + "/answers.npz", *ys)
result = {**meta, "notes": notes}
"""


def load_npz(path: str | os.PathLike[str]) -> list[Any]:
    """The arrays ``np.savez`` wrote, in order."""
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def child_step(src: Path, mode: str, out: Path, arch: Any = None, modules: Sequence[str] = ()
                ) -> str:
    """The tf-keras snippet that loads ``src`` (``mode``: model, weights or graph) into ``out``."""
    return (f"SRC, MODE, ARCH, OUT, PROBES, MODULES = {os.fspath(src)!r}, {mode!r}, "
            f"{os.fspath(arch or '')!r}, {os.fspath(out)!r}, {PROBES}, {list(modules)!r}\n"
            + _CHILD)


def keras2_answers(src: str | os.PathLike[str], *, architecture: Any = None,
                   keras2_modules: Sequence[str] = (), timeout: float = 300) -> dict[str, Any]:
    """Load a Keras 2 model artifact in a fresh tf-keras process: its probe ``inputs``, its
    ``answers`` to them, and its ``weights`` (``[layer, name, array]``). Raises
    :class:`MigrationError` when tf-keras cannot load it."""
    with tempfile.TemporaryDirectory(prefix="forgekit-keras2-") as work:
        mode = "weights" if architecture else "model"
        done = run_steps({"keras2": child_step(Path(src), mode, Path(work), architecture,
                                                keras2_modules)}, timeout=timeout)["keras2"]
        if not done.ok:
            raise MigrationError(f"tf-keras could not load it ({done.error_type}: "
                                 f"{done.message})", path=src, found=str(done.error_type),
                                 expected="a model tf-keras loads")
        arrays = load_npz(Path(work) / "weights.npz")
        return {"inputs": load_npz(Path(work) / "probe.npz"),
                "answers": load_npz(Path(work) / "answers.npz"),
                "weights": [[*n[:2], a] for n, a in zip(done.value["weights"], arrays,
                                                        strict=True)]}
