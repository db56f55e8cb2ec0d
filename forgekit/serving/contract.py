"""The serving contract: ``serving_default``'s inputs and outputs, as a client depends on them.

One form everywhere: ``{"inputs": {name: [dtype, shape]}, "outputs": {...}}`` with TF's dtype
names (``DT_FLOAT``) and ``-1`` for a batch dimension (``None`` for an unknown rank). It is read
from a SavedModel folder's ``saved_model.pb`` (before publishing) or from a server's metadata
answer (after), so "what was published" and "what answers" compare with ``==``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Contract = dict[str, dict[str, list[Any]]]


def serving_signature(export_dir: str | os.PathLike[str]) -> Contract:
    """``serving_default`` of a SavedModel folder, read from its ``saved_model.pb``."""
    from forgekit.serving.servable import read_meta_graph

    sig = read_meta_graph(Path(export_dir), ["serve"]).signature_def["serving_default"]
    return from_signature_def(sig)


def from_signature_def(sig: Any) -> Contract:
    """The contract of a ``SignatureDef`` proto."""
    from tensorflow.core.framework import types_pb2

    def side(tensors: Any) -> dict[str, list[Any]]:
        return {name: [types_pb2.DataType.Name(info.dtype),
                       None if info.tensor_shape.unknown_rank
                       else [int(d.size) for d in info.tensor_shape.dim]]
                for name, info in sorted(tensors.items())}

    return {"inputs": side(sig.inputs), "outputs": side(sig.outputs)}


def from_metadata(meta: Mapping[str, Any]) -> Contract | None:
    """The contract in a server's ``GET .../metadata`` answer (None if it has none)."""
    try:
        sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    except (KeyError, TypeError):
        return None

    def side(tensors: Mapping[str, Any]) -> dict[str, list[Any]]:
        out = {}
        for name, info in sorted(tensors.items()):
            shape = info.get("tensor_shape", {})
            out[name] = [info.get("dtype"), None if shape.get("unknown_rank") else
                         [int(d.get("size", 0)) for d in shape.get("dim", [])]]
        return out

    return {"inputs": side(sig.get("inputs", {})), "outputs": side(sig.get("outputs", {}))}


def signature_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What a client of ``old`` would find changed in ``new`` (``[]``: the same contract)."""
    found = []
    for side in ("inputs", "outputs"):
        before, after = old.get(side, {}), new.get(side, {})
        for name in sorted(set(before) - set(after)):
            found.append(f"{side[:-1]} {name!r} removed")
        for name in sorted(set(after) - set(before)):
            found.append(f"{side[:-1]} {name!r} added ({tensor_text(after[name])})")
        for name in sorted(set(before) & set(after)):
            if list(before[name]) != list(after[name]):
                found.append(f"{side[:-1]} {name!r} was {tensor_text(before[name])}, now "
                             f"{tensor_text(after[name])}")
    return found


def tensor_text(spec: Sequence[Any]) -> str:
    """``float32[-1, 3]`` for ``["DT_FLOAT", [-1, 3]]`` (``[?]``: unknown rank)."""
    dtype, shape = spec
    return f"{str(dtype).removeprefix('DT_').lower()}{'[?]' if shape is None else list(shape)}"


def describe(contract: Mapping[str, Any]) -> str:
    """``(x: float32[-1, 3]) -> (y: float32[-1, 1])``."""
    def side(d: Mapping[str, Any]) -> str:
        return ", ".join(f"{k}: {tensor_text(v)}" for k, v in d.items())

    return f"({side(contract.get('inputs', {}))}) -> ({side(contract.get('outputs', {}))})"


def current_signature(base: Path, below: int) -> tuple[int, Contract] | None:
    """The newest version under ``below`` with a readable serving_default: what a server on
    TF Serving's default policy (latest) answers with until a new version ``below`` loads."""
    from google.protobuf.message import Error as ProtoError

    from forgekit.formats.serving_base import version_folders
    from forgekit.serving.error_codes import ServingError

    for number, folder in sorted(version_folders(base).items(), reverse=True):
        if number >= below:
            continue
        try:
            return number, serving_signature(folder)
        except (ServingError, KeyError, OSError, ProtoError):
            # no readable serving_default (a killed export): no server answers with it
            continue
    return None
