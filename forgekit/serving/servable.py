"""One loaded SavedModel version: its SignatureDefs and its callable signature functions.

The SignatureDefs are read from ``saved_model.pb`` itself, so metadata reports exactly what
TF Serving would (tensor names such as ``serving_default_x:0``, dtypes, shapes, method names,
the ``__saved_model_init_op`` entry). Calls go through ``tf.saved_model.load(...).signatures``:
concrete functions, traced once at export time, so requests never retrace. They are called
without the functions' call-time shape binding, so that, as in TF Serving, the graph alone
decides which tensors it accepts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.serving.core import method_name_check
from forgekit.serving.error_codes import ServingError, from_exception, invalid
from forgekit.serving.tensors import DTYPES, TYPE_NAMES, InputInfo

log = logging.getLogger("forgekit.serving")
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHODS = ("tensorflow/serving/predict", "tensorflow/serving/classify",
                   "tensorflow/serving/regress")


@dataclass(frozen=True)
class Signature:
    """A callable signature: its inputs (name -> dtype/shape) and output names."""

    name: str
    method_name: str
    inputs: Mapping[str, InputInfo]
    outputs: tuple[str, ...]
    function: Any  # a tf ConcreteFunction taking the inputs as keyword arguments
    arg_order: tuple[str, ...] = ()  # the function's flat argument order (input keys)


def read_meta_graph(path: Path, tags: Sequence[str]):
    """The MetaGraphDef of the SavedModel at ``path`` whose tag-set is ``tags``."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    if (path / "saved_model.pb").is_file():
        model.ParseFromString((path / "saved_model.pb").read_bytes())
    elif (path / "saved_model.pbtxt").is_file():
        text_format.Parse((path / "saved_model.pbtxt").read_text(), model)
    else:
        raise ServingError("NOT_FOUND", "Could not find SavedModel .pb or .pbtxt at supplied "
                           f"export directory path: {path}")
    for meta in model.meta_graphs:
        if set(meta.meta_info_def.tags) == set(tags):
            return meta
    raise ServingError("NOT_FOUND", "Could not find meta graph def matching supplied tags: { "
                       + " ".join(tags) + " }. To inspect available tag-sets in the SavedModel, "
                       "please use the SavedModel CLI: `saved_model_cli`")


def _input_info(tensor_info) -> InputInfo:
    from tensorflow.core.framework import types_pb2

    shape = tensor_info.tensor_shape
    dims = None if shape.unknown_rank else tuple(d.size for d in shape.dim)
    return InputInfo(types_pb2.DataType.Name(tensor_info.dtype), dims)


class SavedModelServable:
    """A SavedModel version loaded for serving (thread-safe to call concurrently)."""

    def __init__(self, path: str | Path, tags: Sequence[str] = ("serve",)) -> None:
        import tensorflow as tf
        from tensorflow_serving.apis import get_model_metadata_pb2

        self.path = Path(path)
        meta = read_meta_graph(self.path, tags)
        self.signature_def_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in meta.signature_def.items():
            self.signature_def_map.signature_def[key].CopyFrom(sig)
        loaded = tf.saved_model.load(str(self.path), tags=list(tags))
        self._loaded = loaded  # keeps variables alive for the signature functions
        self.signatures: dict[str, Signature] = {}
        for key, sig in meta.signature_def.items():
            if key in loaded.signatures:
                function = loaded.signatures[key]
                self.signatures[key] = Signature(
                    key, sig.method_name,
                    {name: _input_info(info) for name, info in sorted(sig.inputs.items())},
                    tuple(sorted(sig.outputs)), function, _arg_order(function))
        self._metadata_json: dict[str, Any] | None = None

    def metadata_json(self) -> dict[str, Any]:
        """The SignatureDefMap as TF Serving prints it (proto field names, defaults shown)."""
        if self._metadata_json is None:
            from google.protobuf import json_format

            self._metadata_json = json_format.MessageToDict(
                self.signature_def_map, preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True)
        return self._metadata_json

    def signature(self, name: str, *, rest: bool = False, method: str | None = None
                  ) -> Signature:
        """Look up a signature; ``""`` means ``serving_default``.

        For predict (``method`` None) any of the three methods is accepted and the message
        for an unknown name differs by protocol, as in TF Serving. For classify and regress
        the signature's method must be that one.
        """
        key = name or DEFAULT_SIGNATURE
        sig = self.signatures.get(key)
        if method is not None:
            if sig is None:
                raise invalid(f"No signature was found with the name: {key}")
            if sig.method_name != method:
                kind = "classification" if method.endswith("classify") else "regression"
                raise invalid(f"Expected {kind} signature method_name to be {method}. "
                              f"Was: {sig.method_name}")
            return sig
        if sig is not None and (sig.method_name in PREDICT_METHODS or not method_name_check()):
            return sig
        if key in self.signature_def_map.signature_def:
            raise invalid(f"Expected prediction signature method_name to be one of "
                          f"{{{', '.join(PREDICT_METHODS)}}}. Was: "
                          f"{self.signature_def_map.signature_def[key].method_name}")
        if rest:  # TF Serving's REST handler checks the signature before parsing inputs
            raise invalid(f'Serving signature name: "{key}" not found in signature def')
        raise ServingError("FAILED_PRECONDITION", f'Serving signature key "{key}" not found.')

    def run(self, sig: Signature, inputs: Mapping[str, np.ndarray],
            output_filter: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Call ``sig`` on numpy inputs; returns {output alias: array}.

        Shapes are not checked against the SignatureDef: like TF Serving, the tensors are fed
        to the graph as they are, and the graph's own error (TensorFlow's status code and
        message) is the answer when its kernels refuse them.
        """
        _check_inputs(sig, inputs)
        wanted = _check_filter(sig, output_filter)
        try:
            result = _call_unchecked(sig, inputs)
        except Exception as exc:  # TF reports bad values (e.g. shapes) by exception
            err = from_exception(exc)
            if err.code == "INTERNAL" and not hasattr(exc, "error_code"):
                # not TensorFlow's status but a Python failure: the details stay in the log
                log.exception("Calling signature %s failed", sig.name)
                raise ServingError("INTERNAL", "Calling the signature failed; the server log "
                                   "has the details") from None
            raise err from None
        return {k: _as_array(v.numpy()) for k, v in result.items()
                if wanted is None or k in wanted}


def _as_array(value: Any) -> np.ndarray:
    """A tensor's value as an array (scalars come back as numpy scalars, or bytes)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, bytes):
        return np.array(value, dtype=object)
    return np.asarray(value)


def _arg_order(function: Any) -> tuple[str, ...]:
    """Input keys in the order of the function's flat (positional) arguments."""
    keywords = getattr(function, "_arg_keywords", None)  # how __call__ maps keywords
    if keywords:
        return tuple(keywords)
    _, kwargs = function.structured_input_signature
    return tuple(sorted(kwargs))  # tf.nest flattens a dict in sorted key order


def _call_unchecked(sig: Signature, inputs: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
    """Run the signature's graph on ``inputs`` without the call-time shape binding.

    ``ConcreteFunction.__call__`` refuses any tensor whose shape differs from the traced
    ``TensorSpec`` (``[3]`` for ``[-1, 1]``) before the graph runs; TF Serving's
    ``Session::Run`` has no such step. The flat call runs the same graph, with the inputs
    in the function's own (sorted keyword) order, and lets the kernels decide.
    """
    import tensorflow as tf

    function = sig.function
    call_flat = getattr(function, "_call_flat", None)  # private: fall back if it goes away
    if call_flat is None or len(sig.arg_order) != len(inputs):
        return function(**inputs)
    args = [tf.convert_to_tensor(inputs[name]) for name in sig.arg_order]
    return call_flat(args, function.captured_inputs)


def _check_inputs(sig: Signature, inputs: Mapping[str, np.ndarray]) -> None:
    if inputs.keys() != sig.inputs.keys():
        sent, expected = set(inputs), set(sig.inputs)
        raise invalid(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - expected))}}}. Missing but required: "
            f"{{{','.join(sorted(expected - sent))}}}.")
    for i, (name, info) in enumerate(sig.inputs.items()):
        array = inputs[name]
        want = DTYPES.get(info.dtype)
        ok = array.dtype.kind in "OS" if want is object else array.dtype == want
        if not ok:
            raise invalid(f"Expects arg[{i}] to be {TYPE_NAMES.get(info.dtype, info.dtype)} "
                          f"but {array.dtype} is provided")


def _check_filter(sig: Signature, output_filter: Sequence[str]) -> set[str] | None:
    if not output_filter:
        return None
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in sig.outputs:
            raise invalid(f"output tensor alias not found in signature: {alias} Outputs expected "
                          f"to be in the set {{{','.join(sig.outputs)}}}.")
        if alias in seen:
            raise invalid(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return seen

