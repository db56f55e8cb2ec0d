"""Checker for lesson 09's exercise: a function that reads the tensor names a C caller needs.

The learner writes ``names_for(export_dir, key)``: the graph tensor that feeds the export's
``serving_default`` signature and the one that fetches its output ``key``, read from
``saved_model.pb`` with plain protobuf calls (forgekit's own reader is refused: it does the
taught step). The checker exports two models the learner has not seen: one with an unnamed
input, built in this process (so it gets the next ``keras_tensor_N``), and one with a named
input. It asks the function for both outputs of each, explains the usual confusions (the
signature key, the operation without ``:index``, the concrete function's own graph, a hard-coded
answer, the other output, a TensorInfo or bytes instead of the ``.name`` string), then runs the
C loader with the learner's names and compares with Python's call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.exercises import (
    NOT_ANSWERED,
    Feedback,
    _names,
    correct,
    is_placeholder,
    unused_path,
    wrong,
)

KEYS = ("logits", "score")  # sorted: the signature numbers the outputs in this order
FEATURES = 6


@dataclass(frozen=True)
class Export:
    """One export the checker made, and its true names (read with forgekit's reader)."""

    path: Path
    input_key: str  # what Python passes as a keyword
    input_name: str  # the graph tensor the C API feeds
    outputs: dict[str, str]  # output key -> graph tensor


def make_exports(folder: str | os.PathLike[str]) -> list[Export]:
    """Export a two-output model with an unnamed input and one with a named input, into
    ``folder``: the two inputs' tensor names differ, and differ from the lesson's."""
    import keras

    from forgekit import crosslang

    made = []
    for stem, name in (("unnamed", None), ("named", "sensor")):
        features = keras.Input((FEATURES,), name=name)
        hidden = keras.layers.Dense(8, activation="relu")(features)
        model = keras.Model(features, {"score": keras.layers.Dense(1)(hidden),
                                       "logits": keras.layers.Dense(3)(hidden)})
        path = Path(folder) / stem
        model.export(path, verbose=False)
        sig = crosslang.signature_tensors(path)
        made.append(Export(path, next(iter(sig.inputs)), sig.input_name,
                           {k: v.name for k, v in sig.outputs.items()}))
    return made


def _input_problem(got: Any, export: Export, other: Export) -> str | None:
    right = export.input_name
    if got == right:
        return None
    if got == export.input_key:
        return (f"{got!r} is the signature's input *key*, the keyword Python passes "
                f"(fn({got}=...)); the C API looks up a graph tensor, the 'name:' under it.")
    if got == right.rpartition(":")[0]:
        return (f"{got!r} is the operation; its tensor is {right!r}. The C API takes "
                "(operation, index), and in Python's Session.run an operation name fetches "
                "nothing: return the signature's name whole, ':0' included.")
    if got == f"{export.input_key}:0":
        return (f"{got!r} is the input's name inside the concrete function's own graph "
                "(tf.saved_model.load(...).signatures[...].inputs), not in the MetaGraph the C "
                "API loads; read signature_def.inputs in saved_model.pb.")
    if got == other.input_name:
        return (f"{got!r} is the input of another export ({other.path.name}), not of "
                f"{export.path.name}: is the name typed in? Read it from export_dir.")
    if "keras_tensor" in str(got):
        return (f"{got!r} is a keras_tensor_N auto-name from another export (the number comes "
                f"from a process-wide counter); {export.path.name}'s input is another. Read "
                "it from export_dir's saved_model.pb.")
    return f"{got!r} is not {export.path.name}'s input tensor."


def _output_problem(got: Any, export: Export, key: str) -> str | None:
    right = export.outputs[key]
    if got == right:
        return None
    if got in export.outputs:
        return (f"{got!r} is an output *key* (Python's dict key); the C API fetches a graph "
                f"tensor, 'operation:index', the 'name:' under it ({key!r} here).")
    others = {v: k for k, v in export.outputs.items() if k != key}
    if got in others:
        return (f"{got!r} is the {others[got]!r} output, not {key!r}: both come from one "
                "operation and only the index after the colon tells them apart. Look "
                "up signature_def.outputs[key], the key your function was given.")
    if got == right.rpartition(":")[0]:
        return (f"{got!r} is the operation without its index; {key!r} is {right!r} (the other "
                "output is the same operation with another index).")
    if str(got).startswith("Identity"):
        return (f"{got!r} is an output of the concrete function's own graph "
                "(signatures[...].outputs), not a tensor of the MetaGraph the C API loads.")
    return f"{got!r} is not {export.path.name}'s {key!r} output tensor."


def _what(value: Any) -> str:
    """How to call a returned value that is not a str (a TensorInfo, bytes, ...)."""
    if isinstance(value, bytes):
        return f"bytes {value!r} (a str is wanted, not bytes)"
    if hasattr(value, "name") and hasattr(value, "dtype"):
        return "a TensorInfo message (the signature's whole entry, name, dtype and shape)"
    return f"a {type(value).__name__} ({value!r})"


def judge(function: Any, exports: list[Export], build: Any = None) -> Feedback:
    """Ask ``function`` for every output of every export, then run the C loader with them."""
    if function is None or is_placeholder(function):
        return NOT_ANSWERED
    if not callable(function):
        return wrong(f"`names_for` should be a function, got {type(function).__name__}.")
    code = getattr(function, "__code__", None)
    if code is not None and {"crosslang", "signature_tensors"} & _names(code):
        return wrong("names_for calls forgekit's crosslang reader, which does this very step; a "
                     "service has no forgekit. Read saved_model.pb with the protobuf calls the exercise names "
                     "(saved_model_pb2.SavedModel, meta_graphs, signature_def).")
    answers: dict[tuple[str, str], tuple[str, str]] = {}
    for export in exports:
        for key in KEYS:
            try:
                got = function(export.path, key)
            except KeyError as exc:
                if exc.args and exc.args[0] in KEYS:
                    return wrong(f"names_for({export.path.name!r}, {key!r}) raised KeyError: "
                                 f"{exc.args[0]!r}. {key!r} is an output key: look it up in "
                                 "signature_def.outputs. The input is the only entry in "
                                 ".inputs, under its own key (take .inputs' one value).")
                return wrong(f"names_for({export.path.name!r}, {key!r}) raised KeyError: {exc}")
            except Exception as exc:  # the learner's code: report it, do not crash the lesson
                return wrong(f"names_for({export.path.name!r}, {key!r}) raised "
                             f"{type(exc).__name__}: {exc}")
            if not (isinstance(got, (tuple, list)) and len(got) == 2):
                return wrong(f"names_for should return a pair (input name, output name), got "
                             f"{got!r}.")
            not_str = next((v for v in got if not isinstance(v, str)), None)
            if not_str is not None:
                return wrong(f"names_for({export.path.name!r}, {key!r}) returned "
                             f"{_what(not_str)} where a tensor name goes: return the entry's "
                             ".name string (signature_def.inputs[k].name, a str like "
                             "'serving_default_...:0').")
            if "" in got:
                return wrong(f"names_for({export.path.name!r}, {key!r}) returned an empty name "
                             f"in {tuple(got)!r}: a protobuf map hands back an empty TensorInfo "
                             "for a key it does not hold, so signature_def.inputs[key] with an "
                             "output key gives ''. Look the output key up in .outputs; the input "
                             "is the only entry in .inputs, under its own key.")
            answers[export.path.name, key] = (got[0], got[1])
    inputs = {answers[e.path.name, k][0] for e in exports for k in KEYS}
    if len(inputs) == 1 and len({e.input_name for e in exports}) > 1:
        return wrong(f"names_for returns the input {inputs.pop()!r} for every export, but "
                     f"their inputs are {[e.input_name for e in exports]}: a name typed in "
                     "(or read from another export) breaks on the next one. Read it from "
                     "export_dir.")
    for export in exports:
        other = next(e for e in exports if e is not export)
        for key in KEYS:
            my_input, my_output = answers[export.path.name, key]
            problem = (_input_problem(my_input, export, other)
                       or _output_problem(my_output, export, key))
            if problem:
                return wrong(f"For {export.path.name} (key {key!r}): {problem}")
    if build is None:
        return correct("names_for reads both exports' names right (the C loader was not run: "
                       "no C toolchain on this machine).")
    from forgekit import crosslang

    x = np.random.default_rng(0).normal(size=(4, FEATURES)).astype("float32")
    gaps = {}
    for export in exports:
        names = [answers[export.path.name, key][1] for key in KEYS]
        run = crosslang.run_c(build, export.path, x, input_name=answers[export.path.name, KEYS[0]][0],
                              output_names=names, check=False)
        if not run.ok:
            return wrong(f"the C loader failed on {export.path.name} with your names:\n{run.error}")
        python = crosslang.signature_call(export.path, x)
        gaps[export.path.name] = max(float(np.max(np.abs(run.outputs[name] - python[key])))
                                     for name, key in zip(names, KEYS, strict=True))
    if max(gaps.values()) > 1e-5:
        return wrong(f"the C loader ran, but its answers differ from Python's by {gaps}.")
    return correct("names_for read both exports' names ("
                   + "; ".join(f"{e.path.name}: {e.input_name}" for e in exports)
                   + "), and the C loader fed and fetched them: max abs diff against Python's "
                   f"signature call {max(gaps.values()):.3g}.")


def check_names_for(function: Any, workdir: str | os.PathLike[str] | None = None, *,
                    build: Any = None) -> Feedback:
    """Export two new models under ``workdir`` and judge ``function`` on them (see module doc)."""
    if function is None or is_placeholder(function):
        return NOT_ANSWERED
    folder = unused_path(workdir, "forgekit-09-")
    return judge(function, make_exports(folder), build)
