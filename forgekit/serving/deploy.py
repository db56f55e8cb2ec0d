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

:func:`write_model_config` writes a ``models.config`` (checked by parsing it back with the
official TF Serving protos); :func:`forgekit.serving.rollback.rollback` edits it to serve an
earlier version, by version policy or by label.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import numbers
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.errors import ForgekitError
from forgekit.paths import fsync

IDENTITY_SIGNATURE = "forgekit_identity"
RECORDS_DIR = "_forgekit"  # non-numeric: TF Serving ignores it
TEMP_PREFIX = ".forgekit-publish-"  # hidden and non-numeric: TF Serving ignores it
DEFAULT_CANARY_SIZE = 4
INT64_MAX = (1 << 63) - 1  # TF Serving reads version folder names as int64


class DeployError(ForgekitError):
    """A deployment step refused or failed; the message names the path and the fix."""


@dataclass
class PublishRecord:
    """What :func:`publish` deployed: the version, where, and how to recognise it when served.

    ``fingerprint`` is a SHA-256 of the model's weights (order, shapes, dtypes and bytes): the
    value the served ``forgekit_identity`` signature answers. ``saved_model_fingerprint`` is
    TensorFlow's own ``fingerprint.pb`` singleprint of the exported folder. That one identifies
    an *export*, not the weights (two exports of the same weights get different checkpoint
    hashes), and it is computed from files that include the identity signature, so it cannot
    be what the signature answers; it is kept to recognise the folder on disk.
    """

    model_name: str
    base_path: str
    version: int
    path: str
    fingerprint: str
    canary_path: str
    published_at: str
    saved_model_fingerprint: str = ""
    signature: dict[str, Any] = field(default_factory=dict)
    deployment_id: Any = None
    # Set when publish(allow_signature_change=True) deployed a serving_default that differs
    # from the version before it: {"from_version", "previous", "differences"}.
    signature_change: dict[str, Any] | None = None

    @property
    def record_path(self) -> Path:
        """Where this record is stored (``<base>/_forgekit/<version>.record.json``)."""
        return Path(self.base_path) / RECORDS_DIR / f"{self.version}.record.json"

    def canary(self) -> Canary:
        """The canary inputs and the outputs this model gave for them."""
        return Canary.read(self.canary_path)

    def to_json(self) -> str:
        """The record as JSON (what ``forgekit verify --expect`` reads)."""
        return json.dumps(asdict(self), indent=2, default=str) + "\n"

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the record atomically to ``path`` (default :attr:`record_path`)."""
        target = Path(path) if path is not None else self.record_path
        _write_atomic(target, self.to_json())
        return target

    def __str__(self) -> str:
        return (f"{self.model_name} version {self.version} -> {self.path}\n"
                f"  fingerprint {self.fingerprint[:23]}…  published {self.published_at}\n"
                f"  canary {self.canary_path}")


@dataclass
class Canary:
    """Known inputs and the outputs one exact model gave for them (columns, by tensor name)."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    signature_name: str = "serving_default"

    def to_json(self) -> str:
        def cols(d: Mapping[str, np.ndarray]) -> dict[str, Any]:
            return {k: {"dtype": str(v.dtype), "values": v.tolist()} for k, v in d.items()}

        return json.dumps({"signature_name": self.signature_name, "inputs": cols(self.inputs),
                           "outputs": cols(self.outputs)}) + "\n"

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Canary:
        """Read a canary file written by :func:`publish` or :func:`record_for`."""
        doc = _read_json(Path(path), "a canary file (.canary.json)")
        try:
            def arrays(d: Mapping[str, Any]) -> dict[str, np.ndarray]:
                return {k: np.asarray(v["values"], dtype=v["dtype"]) for k, v in d.items()}

            return cls(arrays(doc["inputs"]), arrays(doc["outputs"]),
                       doc.get("signature_name", "serving_default"))
        except (KeyError, TypeError, ValueError) as exc:
            raise DeployError(f"{path}: not a forgekit canary file ({exc}); expected the JSON "
                              "publish() writes beside the version folders. Re-publish the "
                              "model to write a new one.") from None


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


# --------------------------------------------------------------------------- signature contract


def serving_signature(export_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``serving_default`` of a SavedModel folder: ``{inputs|outputs: {name: [dtype, shape]}}``.

    Exactly what a REST or gRPC client depends on: the tensor names it sends and reads, their
    dtypes, and their shapes (``-1`` for a batch dimension, ``None`` for an unknown rank).
    """
    return _signature_summary(Path(export_dir))


def signature_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What a client of ``old`` would find changed in ``new`` (``[]``: the same contract)."""
    found = []
    for side in ("inputs", "outputs"):
        before, after = old.get(side, {}), new.get(side, {})
        for name in sorted(set(before) - set(after)):
            found.append(f"{side[:-1]} {name!r} removed")
        for name in sorted(set(after) - set(before)):
            found.append(f"{side[:-1]} {name!r} added ({_tensor(after[name])})")
        for name in sorted(set(before) & set(after)):
            if list(before[name]) != list(after[name]):
                found.append(f"{side[:-1]} {name!r} was {_tensor(before[name])}, now "
                             f"{_tensor(after[name])}")
    return found


def _tensor(spec: Sequence[Any]) -> str:
    dtype, shape = spec
    return f"{str(dtype).removeprefix('DT_').lower()}{'[?]' if shape is None else list(shape)}"


def _current_signature(base: Path, below: int) -> tuple[int, dict[str, Any]] | None:
    """The newest version under ``below`` with a readable serving_default: what a server on
    TF Serving's default policy (latest) answers with until the new version loads."""
    from forgekit.formats.serving_base import version_folders

    for number, folder in sorted(version_folders(base).items(), reverse=True):
        if number >= below or number > INT64_MAX:
            continue
        try:
            return number, _signature_summary(folder)
        except Exception:  # a folder no server can load (a killed export): not answering
            continue
    return None


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


def _signature_summary(export_dir: Path) -> dict[str, Any]:
    """serving_default's inputs and outputs ({name: [dtype, shape]}), read from saved_model.pb."""
    from forgekit.serving.servable import read_meta_graph

    sig = read_meta_graph(export_dir, ["serve"]).signature_def["serving_default"]
    return _summary_from_proto(sig)


def _summary_from_proto(sig: Any) -> dict[str, Any]:
    from tensorflow.core.framework import types_pb2

    def side(tensors: Any) -> dict[str, list[Any]]:
        out = {}
        for name, info in sorted(tensors.items()):
            shape = None if info.tensor_shape.unknown_rank else [
                int(d.size) for d in info.tensor_shape.dim]
            out[name] = [types_pb2.DataType.Name(info.dtype), shape]
        return out

    return {"inputs": side(sig.inputs), "outputs": side(sig.outputs)}


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


def _write_atomic(path: Path, text: str, *, sync_dir: bool = True) -> None:
    """Write ``text`` to a temporary name, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    if sync_dir:
        fsync(path.parent)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    from forgekit.formats import bounded

    try:  # a regular file, at most 64 MiB: a FIFO or /dev/zero never hangs verify
        text = bounded.read_text(path)
    except FileNotFoundError:
        raise DeployError(f"{path}: no such file; expected {what}.") from None
    except ForgekitError as exc:
        raise DeployError(f"{path}: {exc.reason}; expected {what}.") from None
    try:
        doc = json.loads(text)
    except ValueError:
        raise DeployError(f"{path}: not JSON (starts {text[:40]!r}); expected {what}.") from None
    if not isinstance(doc, dict):
        raise DeployError(f"{path}: JSON {type(doc).__name__}, expected {what} (an object).")
    return doc


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
            signature = _signature_summary(temp)
            change = _signature_change(base, version, signature, allow_signature_change)
            canary = _canary(model, archive, temp, signature, canary_inputs, canary_size, seed)
            tf_print = _saved_model_fingerprint(temp)
            canary_path = records / f"{version}.canary.json"
            record = PublishRecord(name, str(base), version, str(final), identity,
                                   str(canary_path), _now(), tf_print, signature,
                                   signature_change=change)
            # beside the export, never inside it; one folder fsync (in save) covers both
            _write_atomic(canary_path, canary.to_json(), sync_dir=False)
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
    current = _current_signature(base, version)
    if current is None:
        return None
    previous_version, previous = current
    differences = signature_differences(previous, signature)
    if not differences:
        return None
    if not allowed:
        raise DeployError(
            f"{base / str(version)}: refused, the serving signature changed: serving_default "
            f"of version {previous_version} (answering now) is {_contract(previous)}, the new "
            f"version's is {_contract(signature)} ({'; '.join(differences)}). Every client "
            "sending the old names or shapes would fail. Keep the inputs and outputs (a Keras "
            "model.export keeps the layer names; tf.saved_model.save renames them), or update "
            "the clients first and publish with allow_signature_change=True.")
    return {"from_version": previous_version, "previous": dict(previous),
            "differences": differences}


def _contract(sig: Mapping[str, Any]) -> str:
    def side(d: Mapping[str, Any]) -> str:
        return ", ".join(f"{k}: {_tensor(v)}" for k, v in d.items())

    return f"({side(sig.get('inputs', {}))}) -> ({side(sig.get('outputs', {}))})"


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
        signature = _signature_summary(export)
        canary = _canary(model, archive, export, signature, canary_inputs, canary_size, seed)
    _write_atomic(Path(canary_path), canary.to_json())
    return PublishRecord(model_name or base.name, str(base), int(version),
                         str(base / str(int(version))), identity,
                         str(Path(canary_path).absolute()), _now(), "", signature)


def load_record(path: str | os.PathLike[str], version: int | None = None) -> PublishRecord:
    """Read a record: a ``.record.json`` file, or a base path and a version number."""
    p = Path(path)
    if version is not None:
        p = p / RECORDS_DIR / f"{int(version)}.record.json"
    elif p.is_dir():
        raise DeployError(f"{p} is a folder; pass a .record.json file, or the base path and "
                          "version=N")
    doc = _read_json(p, "a publish record (<base>/_forgekit/<version>.record.json)")
    if "reserved_by_pid" in doc and "fingerprint" not in doc:
        raise DeployError(f"{p}: the publish that claimed this version (process "
                          f"{doc['reserved_by_pid']}, {doc.get('reserved_at', '?')}) never "
                          "completed; nothing was deployed under this number.")
    known = set(PublishRecord.__dataclass_fields__)
    missing = {"model_name", "version", "fingerprint", "canary_path"} - set(doc)
    if missing:
        raise DeployError(f"{p}: JSON without {sorted(missing)}; expected a publish record as "
                          "forgekit.serving.publish() writes it.")
    return validate_record(PublishRecord(**{k: v for k, v in doc.items() if k in known}),
                           source=str(p))


def validate_record(record: PublishRecord, source: str = "the record") -> PublishRecord:
    """``record`` if every field a verification relies on is usable, else DeployError.

    A version must be a whole number (``"abc"``, ``1.9`` or ``true`` are refused, not read as
    1) and the fingerprint a non-empty string: an empty one would silently skip the
    identity check.
    """
    def bad(field_name: str, value: Any, expected: str) -> DeployError:
        return DeployError(f"{source}: {field_name} is {value!r} ({type(value).__name__}); "
                           f"expected {expected}. Use the record publish() wrote, or "
                           "record_for() to make one.")

    version = record.version
    if isinstance(version, bool) or not isinstance(version, numbers.Integral) \
            or not 1 <= version <= INT64_MAX:
        raise bad("version", version, "a whole number from 1 to 2**63 - 1")
    if not isinstance(record.fingerprint, str) or not record.fingerprint:
        raise bad("fingerprint", record.fingerprint, "the non-empty weights fingerprint")
    if not isinstance(record.model_name, str) or not record.model_name:
        raise bad("model_name", record.model_name, "the served model's name")
    if not isinstance(record.canary_path, str | os.PathLike) or not str(record.canary_path):
        raise bad("canary_path", record.canary_path, "the path of the canary file")
    if not isinstance(record.signature, dict):
        raise bad("signature", record.signature, "an object of inputs and outputs")
    return record


# --------------------------------------------------------------------------- models.config


@dataclass(frozen=True)
class ModelEntry:
    """One model of a ``model_config_list``: name, base path, version policy, labels."""

    name: str
    base_path: str | os.PathLike[str]
    policy: str = "latest"  # latest, all or specific
    versions: Sequence[int] = ()  # for specific
    num_versions: int = 1  # for latest
    labels: Mapping[str, int] = field(default_factory=dict)


def model_config_text(models: Sequence[ModelEntry]) -> str:
    """A text-format ``ModelServerConfig`` built with the official protos, and validated.

    Validation parses the text back the way the server will, so a config forgekit writes is
    one ``tensorflow_model_server --model_config_file`` accepts.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    from forgekit.serving.config import parse_model_config
    from forgekit.serving.errors import ServingError

    config = model_server_config_pb2.ModelServerConfig()
    for m in models:
        entry = config.model_config_list.config.add()
        entry.name = m.name
        entry.base_path = str(Path(m.base_path).absolute())
        entry.model_platform = "tensorflow"
        policy = entry.model_version_policy
        if m.policy == "all":
            policy.all.SetInParent()
        elif m.policy == "specific":
            if not m.versions:
                raise DeployError(f"model {m.name}: a 'specific' policy needs versions")
            policy.specific.versions.extend(sorted(int(v) for v in m.versions))
        elif m.policy == "latest":
            policy.latest.num_versions = int(m.num_versions)
        else:
            raise DeployError(f"model {m.name}: policy {m.policy!r}; expected latest, all or "
                              "specific")
        for label, version in sorted(m.labels.items()):
            entry.version_labels[label] = int(version)
    text = text_format.MessageToString(config)
    try:
        parse_model_config(text, "models.config")
    except ServingError as err:
        raise DeployError(f"the model config forgekit built is invalid: {err}") from None
    return text


def write_model_config(path: str | os.PathLike[str], models: Sequence[ModelEntry]) -> str:
    """Write ``models`` as a ``models.config`` atomically (a watching server never reads half)."""
    text = model_config_text(models)
    _write_atomic(Path(path), text)
    return text


def read_model_config(path: str | os.PathLike[str]) -> list[ModelEntry]:
    """The entries of a ``models.config`` (parsed with the official protos)."""
    from forgekit.serving.config import parse_model_config

    models = parse_model_config(Path(path).read_text(encoding="utf-8"), str(path))
    return [ModelEntry(m.name, m.base_path, m.policy.kind, tuple(sorted(m.policy.versions)),
                       m.policy.num_versions, dict(m.labels)) for m in models]


def wait_for_version(client: Any, model_name: str, version: int, *, timeout: float = 30.0,
                     interval: float = 0.05) -> float:
    """Seconds until ``version`` answers requests for ``model_name`` (metadata says so)."""
    from forgekit.serving.errors import ServingError

    started = time.monotonic()
    while True:
        with contextlib.suppress(ServingError):
            meta = client.metadata(model_name)
            if int(meta["model_spec"]["version"]) == int(version):
                return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{model_name} version {version} did not answer within "
                               f"{timeout:g}s")
        time.sleep(interval)
