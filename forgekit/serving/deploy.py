"""Deploy a Keras model to a TF Serving base path so that no server can serve the wrong thing.

TF Serving tracks versions by *number*: a numeric folder it has already loaded is never read
again, so a version overwritten in place keeps answering with the old model, and a file saved
beside the version folders (``model.h5``) is never looked at. :func:`publish` is the safe
wrapper around ``model.export``:

* it picks the next version number and never reuses or overwrites one;
* it exports into a hidden, non-numeric folder in the same base path (a server ignores it),
  flushes every file and folder to disk, then renames it into place in one step, so a server
  polling the base path sees either nothing or the whole version, even if the publishing
  process is killed part-way;
* the export carries one extra signature, ``forgekit_identity``, that answers the model's
  fingerprint and version through the standard ``:predict`` API (``serving_default`` is exactly
  what ``model.export`` writes);
* a canary (a few inputs and the outputs this model gives) and a :class:`PublishRecord` are
  written beside the version folders in ``<base>/_forgekit/``, for
  :func:`forgekit.serving.verify.verify_deployment` after every deployment.

:mod:`forgekit.serving.record` holds the record and canary, :mod:`forgekit.serving.contract`
the signature check, :func:`forgekit.serving.config.write_model_config` the ``models.config``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import numbers
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.formats.serving_base import INT64_MAX
from forgekit.paths import fsync, write_text_atomic
from forgekit.serving.contract import (
    current_signature,
    describe,
    serving_signature,
    signature_differences,
)
from forgekit.serving.record import (
    IDENTITY_SIGNATURE,
    RECORDS_DIR,
    Canary,
    DeployError,
    PublishRecord,
)

TEMP_PREFIX = ".forgekit-publish-"  # hidden and non-numeric: TF Serving ignores it
DEFAULT_CANARY_SIZE = 4


# --------------------------------------------------------------------------- identity


def fingerprint(model: Any) -> str:
    """SHA-256 of a model's weights: their order, shapes, dtypes and bytes (``sha256:<hex>``).

    Names are left out on purpose: Keras numbers layer names per session (``dense_3``), and
    two identical models must get the same fingerprint.
    """
    return _hash_arrays([_array(w) for w in model.weights])


def _array(weight: Any) -> np.ndarray:
    """A weight's value as numpy, read without copying when TensorFlow holds it on the CPU.

    ``.numpy()`` copies (40 MB for a 10M-parameter model, 20-70 ms with the page faults);
    ``memoryview`` of the variable's tensor is TensorFlow's documented zero-copy view. The
    tensor keeps its buffer alive, and a later assignment to the variable copies first, so
    the view stays valid. Anything else (another backend, a dtype without a buffer format,
    such as bfloat16) falls back to ``.numpy()``.
    """
    try:
        import tensorflow as tf

        tensor = tf.convert_to_tensor(getattr(weight, "value", weight))
        view = np.asarray(memoryview(tensor))
        if view.dtype == tensor.dtype.as_numpy_dtype and view.shape == tuple(tensor.shape):
            return view
    except (TypeError, ValueError, AttributeError, NotImplementedError):
        pass
    return np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight)


def _hash_arrays(arrays: Sequence[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for i, a in enumerate(arrays):
        a = np.ascontiguousarray(a)
        digest.update(f"{i}:{a.dtype.str}:{a.shape};".encode())
        # bytes as uint8, no copy (memoryview cannot cast ml_dtypes such as bfloat16);
        # hashlib releases the GIL while it hashes a large buffer
        digest.update(a.reshape(-1).view(np.uint8))
    return "sha256:" + digest.hexdigest()


def next_version(base_path: str | os.PathLike[str]) -> int:
    """The version :func:`publish` would use: one more than the highest numeric folder (or 1).

    A folder whose number does not fit an int64 is not a version to TF Serving (it fails
    to parse the name), so it is not one here either.
    """
    from forgekit.formats.serving_base import version_numbers

    base = Path(base_path)
    if not base.is_dir():
        return 1
    return max((v for v in version_numbers(base) if v <= INT64_MAX), default=0) + 1


def _version_arg(version: Any) -> int | None:
    """``version=`` as given to publish: None, or a whole number from 1 to 2**63 - 1."""
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, numbers.Integral):
        raise DeployError(f"version={version!r} is a {type(version).__name__}; expected a "
                          "whole number >= 1 (TF Serving's versions are int64). Pass an int, "
                          "or leave version= out to take the next free number.")
    if not 1 <= int(version) <= INT64_MAX:
        raise DeployError(f"version={version} is outside 1..{INT64_MAX} (TF Serving's versions "
                          "are positive int64). Leave version= out to take the next number.")
    return int(version)


def _base_folder(base_path: str | os.PathLike[str]) -> Path:
    """The base path as an absolute folder, created if missing; a clear error if it cannot be."""
    base = Path(base_path).absolute()
    if base.exists() and not base.is_dir():
        raise DeployError(f"{base}: found a file, expected a folder (the base path a model "
                          "server watches, holding numbered version folders). Pass a folder "
                          "path, or move the file away.")
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in base.parents if p.exists() and not p.is_dir()), None)
        found = f"{blocker} is a file" if blocker else (exc.strerror or str(exc))
        raise DeployError(f"{base}: cannot create the base path ({found}); expected a folder "
                          "that can be created. Pass a path under a writable folder.") from None
    return base


# --------------------------------------------------------------------------- export


def _export_with_identity(model: Any, path: Path, version: int) -> tuple[Any, str]:
    """``model.export(path)`` plus the ``forgekit_identity`` signature: (archive, fingerprint).

    The archive is built exactly as Keras 3's ``model.export`` builds it (same input
    signature, same ``serve`` endpoint, which becomes ``serving_default``), then one endpoint
    is added that answers this model's fingerprint and version for any batch of probes.

    The weights are hashed on a thread while ``write_out`` traces the model (hashlib runs
    without the GIL); the identity function, traced after ``serve``, waits for the digest.
    """
    from concurrent.futures import ThreadPoolExecutor

    import keras
    import tensorflow as tf
    from keras.src.export.export_utils import get_input_signature

    arrays = [_array(w) for w in model.weights]
    archive = keras.export.ExportArchive()
    with ThreadPoolExecutor(1) as pool:
        hashing = pool.submit(_hash_arrays, arrays)
        archive.track_and_add_endpoint("serve", model, get_input_signature(model))

        def forgekit_identity(probe):
            # Runs only while saving traces it (twice: TF's variable-creation check, then the
            # saved graph), never per request. probe is 1-D, so its shape is already [n]:
            # no slice op to trace.
            n = tf.shape(probe)
            return {"fingerprint": tf.fill(n, tf.constant(hashing.result())),
                    "version": tf.fill(n, tf.constant(version, tf.int64))}

        # A plain Python function: add_endpoint wraps it in one tf.function (no autograph).
        # Wrapping it in tf.function here too would nest a second function in the graph
        # (a call op plus one more function to trace, serialize and load) and run autograph.
        archive.add_endpoint(IDENTITY_SIGNATURE, forgekit_identity,
                             input_signature=[tf.TensorSpec([None], tf.int32, name="probe")])
        archive.write_out(str(path), verbose=False)
        return archive, hashing.result()


def _canary_inputs(signature: Mapping[str, Any], size: int, seed: int) -> dict[str, np.ndarray]:
    """Deterministic inputs matching serving_default (unknown dimensions become ``size``)."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, (dtype, shape) in signature["inputs"].items():
        if shape is None:
            raise DeployError(f"input {name!r} has unknown rank: pass canary_inputs= yourself")
        dims = [size if d < 0 else d for d in shape]
        np_dtype = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_HALF": np.float16,
                    "DT_INT32": np.int32, "DT_INT64": np.int64}.get(dtype)
        if np_dtype is None:
            raise DeployError(f"input {name!r} is {dtype}: forgekit cannot invent values for "
                              "it; pass canary_inputs={name: array} to publish()")
        if np.issubdtype(np_dtype, np.integer):
            inputs[name] = rng.integers(0, 10, dims).astype(np_dtype)
        else:
            inputs[name] = rng.standard_normal(dims).astype(np_dtype)
    return inputs


def _canary(model: Any, archive: Any, export_dir: Path, signature: Mapping[str, Any],
            canary_inputs: Mapping[str, Any] | None, size: int, seed: int) -> Canary:
    """The canary: inputs, and the outputs the exported ``serve`` function gives for them."""
    import logging

    import tensorflow as tf

    names = list(signature["inputs"])
    if canary_inputs is None:
        inputs = _canary_inputs(signature, size, seed)
    else:
        inputs = {k: np.asarray(v) for k, v in dict(canary_inputs).items()}
        if set(inputs) != set(names):
            raise DeployError(f"canary_inputs has {sorted(inputs)}; serving_default of "
                              f"{export_dir} takes {names}")
    outputs = None
    if archive is not None:
        # The traced function the export holds, called in this process: no reload needed.
        # Its result is named the way TF names signature outputs; anything else falls back.
        args = inputs[names[0]] if len(names) == 1 else inputs
        endpoints = getattr(archive, "_tf_trackable", archive)  # where Keras keeps them
        try:
            result = endpoints.serve(tf.constant(args) if len(names) == 1 else
                                   {k: tf.constant(v) for k, v in args.items()})
            outputs = _named(result, list(signature["outputs"]))
        except (AttributeError, TypeError, ValueError, tf.errors.OpError) as exc:
            # no serve endpoint, or it takes another structure: the reload below answers
            logging.getLogger(__name__).debug("canary: serve() in-process failed: %s", exc)
        except Exception:  # unexpected, yet the reload below still gives the canary
            logging.getLogger(__name__).warning(
                "canary: serve() in-process failed; reloading %s instead", export_dir,
                exc_info=True)
    if outputs is None:
        fn = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
        outputs = {k: v.numpy() for k, v in fn(**{k: tf.constant(v)
                                                   for k, v in inputs.items()}).items()}
    return Canary(inputs, outputs)


def _named(result: Any, output_names: list[str]) -> dict[str, np.ndarray] | None:
    if isinstance(result, Mapping):
        named = {str(k): np.asarray(v) for k, v in result.items()}
    elif isinstance(result, list | tuple):
        named = {f"output_{i}": np.asarray(v) for i, v in enumerate(result)}
    else:
        named = {(output_names[0] if len(output_names) == 1 else "output_0"): np.asarray(result)}
    return named if sorted(named) == sorted(output_names) else None


# --------------------------------------------------------------------------- files


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder of ``root`` to disk; returns once all of them are durable.

    The fsyncs run on parallel threads: the filesystem commits them in shared journal
    transactions instead of one after another (a 10M-parameter export on ext4: median
    0.062 s one by one, 0.042 s in parallel). Their order does not matter for the guarantee,
    only that all of them finish before the rename that makes the version visible.
    """
    from concurrent.futures import ThreadPoolExecutor

    paths = []
    for dirpath, _, files in os.walk(root):
        paths.append(dirpath)
        paths.extend(os.path.join(dirpath, name) for name in files)
    with ThreadPoolExecutor(max(1, min(len(paths), 16))) as pool:
        list(pool.map(fsync, paths))  # re-raises the first OSError


def _remove_stale_temps(base: Path) -> None:
    """Delete temporary folders left by publishes killed part-way: only those a publish created
    and marked, on this host, whose process is gone (a name alone proves nothing: it may be a
    user's folder, or a live publisher's on another host sharing the base path)."""
    from forgekit.paths import owner_gone, remove_claimed

    for entry in base.glob(TEMP_PREFIX + "*"):
        if owner_gone(entry):
            remove_claimed(entry)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- publish


def publish(model: Any, base_path: str | os.PathLike[str], version: int | None = None, *,
            model_name: str | None = None, store: Any = None, run_id: Any = None,
            canary_inputs: Mapping[str, Any] | None = None,
            canary_size: int = DEFAULT_CANARY_SIZE, seed: int = 0,
            allow_signature_change: bool = False) -> PublishRecord:
    """Export ``model`` as a new version under ``base_path``, atomically; returns its record.

    The serving contract is checked before anything becomes visible: if the new version's
    ``serving_default`` (input and output names, dtypes, shapes) differs from the one the
    newest existing version answers with, the publish is refused with the differences, since
    every client of the current version would break. ``allow_signature_change=True`` publishes
    it anyway and writes the change into the record (``signature_change``).

    Args:
        model: a built Keras 3 model.
        base_path: the folder a server watches (created if missing).
        version: the version number; default one more than the highest present. An existing
            version is never overwritten (TF Serving would never reload it).
        model_name: the served name (default: the base path's folder name).
        store: optional audit trail; ``store.record_deployment(...)`` is called once the
            version is in place, and its return value kept as ``deployment_id``.
        run_id: the training run this model came from, passed to ``store``.
        canary_inputs: inputs for the canary ({input name: array}); default: ``canary_size``
            seeded random rows shaped like ``serving_default``'s inputs.
        allow_signature_change: publish even if serving_default differs from the current
            version's (clients updated first); recorded in the record.
    """
    from concurrent.futures import ThreadPoolExecutor

    from forgekit.paths import claim_dir, remove_claimed

    requested = _version_arg(version)
    base = _base_folder(base_path)
    name = model_name or base.name
    _remove_stale_temps(base)
    version = _reserve(base, requested)
    final = base / str(version)
    # the export goes into a folder inside one this publish creates and marks (the marker
    # stays behind, outside the version), so only this publish's leftovers are ever deleted
    work = claim_dir(base / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}", adopt=False)
    temp = work / "export"
    records = base / RECORDS_DIR
    committed = False
    try:
        archive, identity = _export_with_identity(model, temp, version)
        # The export's fsync waits on the disk while the canary runs the model: overlap them.
        # The rename below waits for both, so nothing becomes visible before it is durable.
        with ThreadPoolExecutor(1) as pool:
            syncing = pool.submit(_fsync_tree, temp)
            signature = serving_signature(temp)
            change = _signature_change(base, version, signature, allow_signature_change)
            canary = _canary(model, archive, temp, signature, canary_inputs, canary_size, seed)
            tf_print = _saved_model_fingerprint(temp)
            canary_path = records / f"{version}.canary.json"
            record = PublishRecord(name, str(base), version, str(final), identity,
                                   str(canary_path), _now(), tf_print, signature,
                                   signature_change=change)
            # beside the export, never inside it; one folder fsync (in save) covers both
            write_text_atomic(canary_path, canary.to_json(), sync_dir=False)
            record.save()  # replaces the reservation
            syncing.result()
        try:
            # The commit point. rename() refuses a non-empty target, so a version that
            # appeared meanwhile (another tool writing numbers) is never replaced.
            os.rename(temp, final)
        except OSError as exc:
            raise DeployError(f"{final}: could not move the export into place ({exc}); "
                              "something else wrote this version meanwhile. Publish again "
                              "without version=.") from None
        committed = True
        fsync(base)
    finally:
        remove_claimed(work)
        if not committed:  # a clean failure gives its number back (a kill cannot)
            for leftover in (records / f"{version}.record.json",
                             records / f"{version}.canary.json"):
                with contextlib.suppress(OSError):
                    leftover.unlink()
    if store is not None:
        # The store fingerprints the files itself (sha256 of the folder, for its "changed on
        # disk" check); ``identity`` is a weights hash, a different thing, kept in the record.
        record.deployment_id = store.record_deployment(
            model_name=name, version=version, path=str(final), run_id=run_id)
        if record.deployment_id is not None:
            record.save()
    return record


def _signature_change(base: Path, version: int, signature: Mapping[str, Any],
                      allowed: bool) -> dict[str, Any] | None:
    """None if the contract holds; the change if allowed; else DeployError (nothing visible)."""
    current = current_signature(base, version)
    if current is None:
        return None
    previous_version, previous = current
    differences = signature_differences(previous, signature)
    if not differences:
        return None
    if not allowed:
        raise DeployError(
            f"{base / str(version)}: refused, the serving signature changed: serving_default "
            f"of version {previous_version} (answering now) is {describe(previous)}, the new "
            f"version's is {describe(signature)} ({'; '.join(differences)}). Every client "
            "sending the old names or shapes would fail. Keep the inputs and outputs (a Keras "
            "model.export keeps the layer names; tf.saved_model.save renames them), or update "
            "the clients first and publish with allow_signature_change=True.")
    return {"from_version": previous_version, "previous": dict(previous),
            "differences": differences}


def _reserve(base: Path, version: int | None) -> int:
    """Claim a version number by creating its record file exclusively; returns the number.

    Two publishers into one base path never pick the same number, and a number whose
    publish was killed part-way (its reservation left behind) is skipped, never reused.
    """
    records = base / RECORDS_DIR
    records.mkdir(parents=True, exist_ok=True)
    auto = version is None
    number = next_version(base) if auto else int(version)
    if number < 1:
        raise DeployError(f"version {version} is not a positive number.")
    while True:
        if number > INT64_MAX:
            raise DeployError(f"{base}: no version number left below 2**63 (TF Serving's "
                              "int64 versions). Publish into a new base path.")
        folder, reservation = base / str(number), records / f"{number}.record.json"
        if not folder.exists():
            try:
                fd = os.open(reservation, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"reserved_by_pid": os.getpid(), "reserved_at": _now()}, fh)
                return number
        if not auto:
            why = ("already exists; TF Serving never reloads a version number it has loaded, "
                   "so overwriting it would leave the old model answering" if folder.exists()
                   else f"was claimed by another publish ({reservation} exists: one in "
                   "progress, or one killed part-way)")
            raise DeployError(f"{folder}: version {number} {why}. Publish without version= "
                              "to get the next free number.")
        number += 1


def _saved_model_fingerprint(export_dir: Path) -> str:
    import tensorflow as tf

    try:
        return tf.saved_model.experimental.read_fingerprint(str(export_dir)).singleprint()
    except Exception:  # an older writer without fingerprint.pb: the weights hash suffices
        return ""


def record_for(model: Any, base_path: str | os.PathLike[str], version: int, *,
               canary_path: str | os.PathLike[str], model_name: str | None = None,
               canary_inputs: Mapping[str, Any] | None = None,
               canary_size: int = DEFAULT_CANARY_SIZE, seed: int = 0) -> PublishRecord:
    """The record :func:`publish` would have written had ``model`` been published as ``version``.

    For a model deployed some other way (a flat file, an export over an existing version):
    what a verification should expect to find serving. Nothing is written under
    ``base_path``; the canary goes to ``canary_path``.
    """
    import tempfile

    base = Path(base_path).absolute()
    with tempfile.TemporaryDirectory(prefix="forgekit-expect-") as tmp:
        export = Path(tmp) / "export"
        archive, identity = _export_with_identity(model, export, int(version))
        signature = serving_signature(export)
        canary = _canary(model, archive, export, signature, canary_inputs, canary_size, seed)
    write_text_atomic(Path(canary_path), canary.to_json())
    return PublishRecord(model_name or base.name, str(base), int(version),
                         str(base / str(int(version))), identity,
                         str(Path(canary_path).absolute()), _now(), "", signature)


