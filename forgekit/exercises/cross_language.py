"""Checker for lesson 09's exercise: the tensor names a C caller needs for one output."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong


def check_tensor_names(export_dir: str | os.PathLike[str], my_input: str | None,
                       my_output: str | None, *, key: str = "score", build: Any = None,
                       x: np.ndarray | None = None) -> Feedback:
    """Are ``my_input`` / ``my_output`` the graph tensors that feed the export and fetch ``key``?

    The checker reads the serving_default signature, explains the usual confusions (Python
    keyword vs graph tensor, another output's tensor), and with a C ``build`` runs the C loader
    with the learner's names and compares its answer with Python's signature call.
    """
    if my_input is None or my_output is None:
        return NOT_ANSWERED
    from forgekit import crosslang

    sig = crosslang.signature_tensors(export_dir)
    inputs = {info.name for info in sig.inputs.values()}
    if my_input in sig.inputs:
        return wrong(f"{my_input!r} is the input's keyword for Python callers (fn({my_input}=...)). "
                     "The C API looks up graph tensors, 'operation:index': read the input's "
                     "'name:' line in saved_model_cli's output.")
    if my_input not in inputs:
        if "keras_tensor" in my_input:
            return wrong(f"{my_input!r} is an auto-name from another export: Keras numbers an "
                         "unnamed input keras_tensor_N per process, so it changes between "
                         "exports. Read the input's name from this export's serving_default "
                         f"signature (it is one of {sorted(inputs)}).")
        return wrong(f"{my_input!r} is not this export's input tensor. Read it from this export's "
                     "serving_default signature; names differ between exports.")
    if my_output in sig.outputs:
        return wrong(f"{my_output!r} is an output key (the dict Python gets back). The C API "
                     "fetches a graph tensor, 'operation:index', listed as name: under it.")
    other = sig.key_of(my_output)
    if other is None:
        return wrong(f"{my_output!r} is not one of this signature's output tensors.")
    if other != key:
        right = sig.outputs[key].name
        same_op = right.rpartition(":")[0] == my_output.rpartition(":")[0]
        return wrong(f"{my_output!r} is the {other!r} output, not {key!r}" + (
            ": both come from the same operation, only the index after the colon tells them "
            "apart, and it follows the outputs' sorted keys, not the model's order."
            if same_op else "."))
    if build is None:
        return correct(f"{my_input} feeds the model and {my_output} is the {key!r} output "
                       "(not run: no C toolchain on this machine).")
    x = x if x is not None else np.random.default_rng(0).normal(
        size=(4, *[d for d in next(iter(sig.inputs.values())).shape[1:]])).astype("float32")
    run = crosslang.run_c(build, export_dir, x, input_name=my_input, output_names=[my_output])
    diff = float(np.max(np.abs(run.outputs[my_output] - crosslang.signature_call(export_dir, x)[key])))
    if diff > 1e-5:
        return wrong(f"the C loader's {key!r} differs from Python's by {diff:.3g}.")
    return correct(f"the C loader fed {my_input}, fetched {my_output}, and its {key!r} equals "
                   f"Python's signature call (max abs diff {diff:.3g}).")
