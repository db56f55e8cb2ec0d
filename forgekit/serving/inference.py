"""Classify, Regress and MultiInference: ``tf.train.Example`` in, TF Serving's results out.

A classify or regress signature takes one string tensor of serialized ``tf.train.Example``
protos (the graph parses them) and returns ``classes`` (strings) and/or ``scores`` (floats,
``[batch, num_classes]``), or ``outputs`` (floats, ``[batch]`` or ``[batch, 1]``). The checks on
those tensors, the way a shared ``context`` is merged into every example, and the JSON form
of requests and results follow TF Serving's classifier, regressor and ``json_tensor``.

Importing this module imports TF Serving's protos, and through them TensorFlow: only the
server does.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    regression_pb2,
)

from forgekit.serving.core import method_name_check
from forgekit.serving.error_codes import invalid
from forgekit.serving.tensors import TYPE_NAMES, array_to_json, is_b64, json_type, preview

CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT64 = (-(1 << 63), (1 << 63) - 1)


# ------------------------------------------------------------------ JSON -> Input


def input_from_json(doc: Mapping[str, Any]) -> input_pb2.Input:
    """The ``Input`` proto a REST classify/regress body stands for (``examples``, ``context``)."""
    request_input = input_pb2.Input()
    has_context = "context" in doc
    if has_context:
        _fill_example(doc["context"], request_input.example_list_with_context.context)
    if "examples" not in doc:
        # TF Serving says "classify" here for both verbs; its wording is kept
        raise invalid(f"JSON Value: {preview(doc)} When method is classify, key 'examples' is "
                      "expected and was not found")
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise invalid(f"JSON Value: {preview(doc)} Expecting 'examples' value to be an "
                      "list/array")
    if not examples:
        raise invalid(f"JSON Value: {preview(doc)} 'examples' value is an empty array")
    target = (request_input.example_list_with_context.examples if has_context
              else request_input.example_list.examples)
    for value in examples:
        _fill_example(value, target.add())
    return request_input


def _fill_example(value: Any, example: example_pb2.Example) -> None:
    if not isinstance(value, dict):
        raise invalid(f"Example must be JSON object but got JSON {json_type(value)}")
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_value(item, name, feature)
        example.features.feature[name].CopyFrom(feature)


def _add_value(value: Any, name: str, feature: feature_pb2.Feature) -> None:
    """Append one JSON value to a feature whose kind its first value decided."""
    if value is None or isinstance(value, list) or (isinstance(value, dict)
                                                     and not is_b64(value)):
        raise invalid(f"Feature: {name} has element with unexpected JSON type: "
                      f"{json_type(value)}")
    if isinstance(value, bool):
        _expect(feature, "int64_list", name).value.append(int(value))
    elif isinstance(value, dict):
        try:
            data = base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid("Unable to base64 decode") from None
        _expect(feature, "bytes_list", name).value.append(data)
    elif isinstance(value, str):
        _expect(feature, "bytes_list", name).value.append(value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
        _expect(feature, "int64_list", name).value.append(value)
    elif isinstance(value, int) and 0 < value < (1 << 64):
        raise invalid(f"Feature: {name} has uint64 element. Only int64 is supported.")
    else:  # a decimal, or an integer beyond uint64 (rapidjson reads those as doubles)
        try:
            number = float(value)
        except OverflowError:  # beyond any double: Infinity is only accepted when written so
            number = math.nan
        if math.isnan(number) and isinstance(value, int) or (
                math.isfinite(number) and abs(number) > _FLOAT32_MAX):
            raise invalid(f"Cannot convert JSON value: {preview(value, 60)} to float without "
                          "loss of precision.")
        _expect(feature, "float_list", name).value.append(number)


def _expect(feature: feature_pb2.Feature, kind: str, name: str) -> Any:
    current = feature.WhichOneof("kind")
    if current not in (None, kind):
        raise invalid(f"Unexpected element type in feature: {name} expecting type: "
                      f"{current.removesuffix('_list')}")
    return getattr(feature, kind)


# ------------------------------------------------------------------ Input -> tensor


def serialized_examples(request_input: input_pb2.Input) -> np.ndarray:
    """One serialized Example per input example, as the signature's string tensor.

    With a context, each example is the context's bytes followed by the example's: parsing
    the concatenation merges them, the example's own features winning, as in TF Serving.
    """
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        blobs = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        listed = request_input.example_list_with_context
        context = listed.context.SerializeToString()
        blobs = [context + e.SerializeToString() for e in listed.examples]
    else:
        blobs = []
    if not blobs:
        raise invalid("Input is empty.")
    out = np.empty(len(blobs), dtype=object)
    out[:] = blobs
    return out


# ------------------------------------------------------------------ running signatures


def _single_input(sig: Any) -> str:
    if len(sig.inputs) != 1:
        raise invalid(f"Expected one input Tensor, the signature {sig.name} has "
                      f"{len(sig.inputs)}.")
    (name,) = sig.inputs
    dtype = sig.inputs[name].dtype
    if dtype != "DT_STRING":
        raise invalid(f"Input tensor {name} of signature {sig.name} must be a string tensor "
                      f"of serialized tf.train.Example, it is {TYPE_NAMES.get(dtype, dtype)}.")
    return name


def _batch_check(array: np.ndarray, what: str, batch: int) -> None:
    if array.ndim == 0 or array.shape[0] != batch:
        got = array.shape[0] if array.ndim else "a scalar"
        raise invalid(f"Input batch size did not match output batch size: {batch} vs. {got} "
                      f"({what})")


def classification_result(outputs: Mapping[str, np.ndarray], batch: int
                          ) -> classification_pb2.ClassificationResult:
    """Labels and scores per example from a classify signature's ``classes``/``scores``."""
    classes, scores = outputs.get("classes"), outputs.get("scores")
    if classes is None and scores is None:
        raise invalid("Expected classification signature outputs to contain classes and/or "
                      "scores.")
    for array, name, kinds, dtype in ((classes, "classes", "OSU", "DT_STRING"),
                                      (scores, "scores", "f", "DT_FLOAT")):
        if array is None:
            continue
        if array.dtype.kind not in kinds or (dtype == "DT_FLOAT" and array.dtype != np.float32):
            raise invalid(f"Expected {name} Tensor of {dtype}. Got: {array.dtype}")
        if array.ndim != 2:
            raise invalid(f"Expected Tensor shape: [batch_size num_classes] but got "
                          f"{list(array.shape)} ({name})")
        _batch_check(array, name, batch)
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid(f"Tensors class and score should match in dim_size(1). Got "
                      f"{classes.shape[1]} vs. {scores.shape[1]}")
    num_classes = (classes if classes is not None else scores).shape[1]
    result = classification_pb2.ClassificationResult()
    for i in range(batch):
        row = result.classifications.add()
        for j in range(num_classes):
            entry = row.classes.add()
            if classes is not None:
                label = classes[i, j]
                entry.label = label.decode("utf-8", "replace") if isinstance(label, bytes) \
                    else str(label)
            if scores is not None:
                entry.score = float(scores[i, j])
    return result


def regression_result(outputs: Mapping[str, np.ndarray], batch: int
                      ) -> regression_pb2.RegressionResult:
    """One value per example from a regress signature's ``outputs``."""
    values = outputs.get("outputs")
    if values is None:
        raise invalid("No regression output named outputs in the signature.")
    if values.dtype != np.float32:
        raise invalid(f"Expected output Tensor of DT_FLOAT. Got: {values.dtype}")
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise invalid("Expected output Tensor shape to be either [batch_size] or "
                      f"[batch_size, 1] but got {list(values.shape)}")
    _batch_check(values, "outputs", batch)
    result = regression_pb2.RegressionResult()
    for value in values.reshape(-1):
        result.regressions.add().value = float(value)
    return result


def _signature(servable: Any, signature_name: str, method: str) -> Any:
    """The signature to classify or regress with (TF Serving's Get*SignatureDef).

    With ``--enable_signature_method_name_check`` its method name must be ``method``; without
    it (the default) any signature whose tensors fit serves, as a native TF2 export's do.
    """
    if method_name_check():
        sig = servable.signature(signature_name, method=method)
    else:
        key = signature_name or "serving_default"
        sig = servable.signatures.get(key)
        if sig is None:
            raise invalid(f"No signature was found with the name: {key}")
    _check_tensors(sig, method)
    return sig


def _check_tensors(sig: Any, method: str) -> None:
    """TF Serving's PreProcessClassification / PreProcessRegression: the tensors' names."""
    described = f"{sig.name} (inputs {sorted(sig.inputs)}, outputs {sorted(sig.outputs)})"
    if len(sig.inputs) != 1:
        raise invalid(f"Expected one input Tensor, the signature {sig.name} has "
                      f"{len(sig.inputs)}.")
    if method == CLASSIFY:
        if len(sig.outputs) not in (1, 2):
            raise invalid(f"Expected one or two output Tensors, found {len(sig.outputs)}")
        if "inputs" not in sig.inputs:
            raise invalid(f"No classification inputs found in SignatureDef: {described}")
        if not {"classes", "scores"} & set(sig.outputs):
            raise invalid('Expected classification signature outputs to contain at least one '
                          f'of "classes" or "scores". Signature was: {described}')
        return
    if len(sig.outputs) != 1:
        raise invalid("Expected one output Tensor.")
    if "inputs" not in sig.inputs:
        raise invalid(f"No regression inputs found in SignatureDef: {described}")
    if "outputs" not in sig.outputs:
        raise invalid(f"No regression outputs found in SignatureDef: {described}")


def run(servable: Any, signature_name: str, method: str, request_input: input_pb2.Input
        ) -> Any:
    """Classify or regress ``request_input`` with the named signature of ``servable``."""
    sig = _signature(servable, signature_name, method)
    name = _single_input(sig)
    examples = serialized_examples(request_input)
    outputs = servable.run(sig, {name: examples})
    if method == CLASSIFY:
        return classification_result(outputs, len(examples))
    return regression_result(outputs, len(examples))


def multi_inference(servable: Any, model_name: str, version: int,
                    request: inference_pb2.MultiInferenceRequest
                    ) -> inference_pb2.MultiInferenceResponse:
    """Several classify/regress signatures of one model on the same input."""
    if not request.tasks:
        raise invalid("MultiInferenceRequest must contain at least one task.")
    seen: set[str] = set()
    response = inference_pb2.MultiInferenceResponse()
    for task in request.tasks:
        if task.model_spec.name != model_name:
            raise invalid("All ModelSpecs in a MultiInferenceRequest must access the same "
                          "model name.")
        signature_name = task.model_spec.signature_name or "serving_default"
        if signature_name in seen:
            raise invalid(f"Duplicate evaluation of signature: {signature_name}")
        seen.add(signature_name)
        if task.method_name not in (CLASSIFY, REGRESS):
            raise invalid(f"Unsupported signature method_name: {task.method_name}")
    for task in request.tasks:
        result = response.results.add()
        result.model_spec.name = model_name
        result.model_spec.version.value = version
        result.model_spec.signature_name = task.model_spec.signature_name or "serving_default"
        answer = run(servable, task.model_spec.signature_name, task.method_name,
                     request.input)
        if task.method_name == CLASSIFY:
            result.classification_result.CopyFrom(answer)
        else:
            result.regression_result.CopyFrom(answer)
    return response


# ------------------------------------------------------------------ results -> JSON


def result_json(result: Any) -> dict[str, Any]:
    """``{"results": ...}``: label/score pairs per example, or one value per example."""
    if isinstance(result, classification_pb2.ClassificationResult):
        if not result.classifications:
            raise invalid("Cannot convert empty ClassificationResults to JSON")
        return {"results": [
            [[c.label, _float(c.score)] for c in row.classes] for row in result.classifications]}
    if not result.regressions:
        raise invalid("Cannot convert empty RegressionResults to JSON")
    values = np.array([r.value for r in result.regressions], np.float32)
    return {"results": array_to_json(values)}


def _float(value: float) -> float:
    return array_to_json(np.array(value, np.float32))
