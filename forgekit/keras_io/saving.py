"""Save every model format through the real Keras/TF API.

``forgekit.save(model, path, kind)`` calls the one Keras/TF function that writes that kind and
returns what :func:`~forgekit.formats.detect.detect_format` then sees on disk. Loading is
:mod:`forgekit.keras_io.loading`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgekit.errors import (
    WrongFormatError,
)
from forgekit.formats.detect import detect_format
from forgekit.formats.info import FormatInfo
from forgekit.formats.kinds import (
    KINDS,
    extension_kinds,
    keras_suffix,
)
from forgekit.formats.serving_base import version_numbers
from forgekit.keras_io.safety import trust_written
from forgekit.quiet import quiet_absl

# --------------------------------------------------------------------------------------------
# save


def _save_keras(model: Any, path: Path, **kw: Any) -> Path:
    model.save(path, **kw)
    return path


def _save_h5(model: Any, path: Path, **kw: Any) -> Path:
    # Keras 3's legacy HDF5 writer pops "optimizer" out of the model's own compile config
    # (keras/src/legacy/saving/saving_utils.py, model_metadata), so a later .keras save of the
    # same model records no optimizer and reloads with RMSprop. Put it back after the save.
    config = getattr(getattr(model, "_compile_config", None), "config", None)
    optimizer = config.get("optimizer") if isinstance(config, dict) else None
    try:
        with quiet_absl():
            model.save(path, **kw)
    finally:
        if optimizer is not None and "optimizer" not in config:
            config["optimizer"] = optimizer
    return path


def _save_weights(model: Any, path: Path, **kw: Any) -> Path:
    model.save_weights(path, **kw)
    return path


def _save_savedmodel(model: Any, path: Path, **kw: Any) -> Path:
    kw.setdefault("verbose", False)
    model.export(path, format="tf_saved_model", **kw)
    return path


def _save_checkpoint(model: Any, path: Path, **kw: Any) -> Path:
    import tensorflow as tf

    objects = {"model": model}
    if getattr(model, "optimizer", None) is not None:
        objects["optimizer"] = model.optimizer
    # Checkpoint.save numbers the prefix (ckpt -> ckpt-1) and writes the `checkpoint` state file.
    return Path(tf.train.Checkpoint(**objects).save(os.fspath(path), **kw))


def _save_tflite(model: Any, path: Path, **kw: Any) -> Path:
    import tensorflow as tf

    # Convert from the SavedModel export, the path TF documents for Keras 3 models.
    with tempfile.TemporaryDirectory(prefix="forgekit-export-") as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        for key, value in kw.items():
            setattr(converter, key, value)
        flatbuffer = converter.convert()
    path.write_bytes(flatbuffer)
    trust_written(path)  # TF's converter wrote it here: load need not open it in a child first
    return path


def _save_json(model: Any, path: Path, **kw: Any) -> Path:
    kw.setdefault("indent", 2)  # one key per line: readable diffs when versioned in git
    path.write_text(model.to_json(**kw) + "\n", encoding="utf-8")
    return path


def _save_serving_version(model: Any, path: Path, version: int | None = None, **kw: Any) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if version is None:  # next version number, the way TF Serving expects new models to appear
        version = max(version_numbers(path), default=0) + 1
    target = path / str(version)
    if target.exists():
        raise WrongFormatError(
            f"version {version} already exists; TF Serving would not notice an overwrite",
            path=target,
            found="existing version",
            expected="a new version number",
            fix=f"forgekit.save(model, {os.fspath(path)!r}, kind='serving_base', "
            f"version={version + 1})",
        )
    _save_savedmodel(model, target, **kw)
    return path


_SAVERS: dict[str, Callable[..., Path]] = {
    "keras": _save_keras,
    "savedmodel": _save_savedmodel,
    "h5_model": _save_h5,
    "weights_h5": _save_weights,
    "tf_checkpoint": _save_checkpoint,
    "tflite": _save_tflite,
    "json_architecture": _save_json,
    "serving_base": _save_serving_version,
}
WRITABLE_KINDS = tuple(_SAVERS)


def _kind_from_name(path: Path) -> str | None:
    kinds = extension_kinds(path)
    return kinds[0] if kinds and KINDS[kinds[0]].one_file else None  # save(kind=None)


def _check_save_path(path: Path, kind: str) -> None:
    promised = extension_kinds(path)
    suffix = keras_suffix(kind)  # Keras 3 picks its writer, and later its reader, by extension
    if suffix:
        # stricter than Keras: an .hdf5 or *.weights.h5 name would mislead every later reader
        ok = path.name.endswith(suffix) and (
            kind != "h5_model" or not path.name.endswith(".weights.h5")
        )
        if not ok:
            good = f"{path.name.split('.')[0] or 'model'}{suffix}"
            raise WrongFormatError(
                f"kind={kind!r} needs a file name ending in {suffix!r}",
                path=path,
                found=" or ".join(promised) or "no model extension",
                expected=kind,
                fix=f"forgekit.save(model, {os.fspath(path.with_name(good))!r}, kind={kind!r})",
            )
    elif not KINDS[kind].one_file and promised:
        raise WrongFormatError(
            f"kind={kind!r} writes a folder or a prefix, but the name has a file extension",
            path=path,
            found=" or ".join(promised),
            expected=kind,
            fix=f"forgekit.save(model, {os.fspath(path.with_suffix(''))!r}, kind={kind!r})",
        )


def save(
    model: Any, path: str | os.PathLike[str], kind: str | None = None, *, store: Any = None,
    run_id: int | None = None, **kwargs: Any
) -> FormatInfo:
    """Save ``model`` as ``kind`` with the real Keras/TF API and return what is now on disk.

    Kinds and the call used: ``"keras"`` ``model.save``; ``"h5_model"`` ``model.save`` (legacy
    HDF5); ``"weights_h5"`` ``model.save_weights``; ``"savedmodel"`` ``model.export``;
    ``"tf_checkpoint"`` ``tf.train.Checkpoint(model=, optimizer=).save`` (``path`` is the prefix,
    TF appends ``-N``); ``"tflite"`` ``TFLiteConverter.from_saved_model`` on an export;
    ``"json_architecture"`` ``model.to_json``; ``"serving_base"`` ``model.export`` into
    ``path/<version>`` (``version=`` or the next number).
    ``kind=None`` infers it from a file extension (.keras, .h5, .weights.h5, .tflite, .json).
    ``store`` (a :class:`forgekit.audit.AuditStore`) records what was written as an artifact of
    run ``run_id``. Extra keyword arguments go to the underlying call.

    Raises:
        WrongFormatError: unknown kind, or a path whose name does not fit the kind.
    """
    path = Path(path)
    kind = kind or _kind_from_name(path)
    if kind not in _SAVERS:
        raise WrongFormatError(
            f"cannot tell which format to write (kind={kind!r})",
            path=path,
            found=" or ".join(extension_kinds(path)) or "no model extension",
            expected=" | ".join(WRITABLE_KINDS),
            fix=f"forgekit.save(model, {os.fspath(path)!r}, kind='savedmodel')  # or another kind",
        )
    _check_save_path(path, kind)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    written = _SAVERS[kind](model, path, **kwargs)
    info = detect_format(written)
    if store is not None:
        store.record_artifact(written, run_id=run_id, kind=info.kind)
    return info
