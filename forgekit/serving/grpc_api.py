"""TF Serving's gRPC API with the official protos, and TensorProto <-> numpy conversion.

Implemented: ``PredictionService.Predict``, ``.Classify``, ``.Regress``, ``.MultiInference``
and ``.GetModelMetadata``, and ``ModelService.GetModelStatus`` and
``.HandleReloadConfigRequest``. Outputs are
written into the typed value fields (``float_val``...), as TF Serving does by default, so
client code reading ``response.outputs["y"].float_val`` works against either server.

Importing this module imports the protos, and through them TensorFlow.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from forgekit.serving import inference
from forgekit.serving.budget import TENSOR_FACTOR, MemoryBudget, Ticket, default_limit
from forgekit.serving.config import models_from_proto
from forgekit.serving.core import ServerCore
from forgekit.serving.error_codes import ServingError, invalid
from forgekit.serving.tensors import DTYPES

log = logging.getLogger("forgekit.serving")

# numpy dtype -> (TF DataType name, typed TensorProto field)
_FIELDS = {
    np.dtype(np.float32): ("DT_FLOAT", "float_val"),
    np.dtype(np.float64): ("DT_DOUBLE", "double_val"),
    np.dtype(np.float16): ("DT_HALF", "half_val"),
    np.dtype(np.int8): ("DT_INT8", "int_val"),
    np.dtype(np.int16): ("DT_INT16", "int_val"),
    np.dtype(np.int32): ("DT_INT32", "int_val"),
    np.dtype(np.int64): ("DT_INT64", "int64_val"),
    np.dtype(np.uint8): ("DT_UINT8", "int_val"),
    np.dtype(np.uint16): ("DT_UINT16", "int_val"),
    np.dtype(np.uint32): ("DT_UINT32", "uint32_val"),
    np.dtype(np.uint64): ("DT_UINT64", "uint64_val"),
    np.dtype(np.bool_): ("DT_BOOL", "bool_val"),
}
_FIELD_OF = {name: field for name, field in _FIELDS.values()} | {"DT_STRING": "string_val"}
_STATES = get_model_status_pb2.ModelVersionStatus.State
_MAX_RANK = 254  # TensorShape::MaxDimensions()
_INT64_MAX = (1 << 63) - 1
_STRING_OVERHEAD = 32  # bytes per string element: numpy's pointer and TensorFlow's tstring


def ndarray_to_tensor(array: np.ndarray, *, typed: bool = True) -> tensor_pb2.TensorProto:
    """A TensorProto for ``array``: typed value fields, or raw ``tensor_content`` bytes."""
    array = np.asarray(array)
    proto = tensor_pb2.TensorProto()
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    if array.dtype.kind in "OSU":
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(v.encode() if isinstance(v, str) else bytes(v)
                                for v in array.ravel().tolist())
        return proto
    if array.dtype not in _FIELDS:
        raise invalid(f"Unsupported tensor dtype: {array.dtype}")
    name, field = _FIELDS[array.dtype]
    proto.dtype = types_pb2.DataType.Value(name)
    if not typed:
        proto.tensor_content = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"),
                                                                  copy=False).tobytes()
    elif field == "half_val":
        proto.half_val.extend(array.ravel().view(np.uint16).tolist())
    else:
        getattr(proto, field).extend(array.ravel().tolist())
    return proto


def _checked_shape(proto: tensor_pb2.TensorProto) -> tuple[str, list[int], int]:
    """(dtype name, shape, element count), valid by TensorFlow's ``TensorShape`` rules."""
    name = types_pb2.DataType.Name(proto.dtype) if proto.dtype in types_pb2.DataType.values() \
        else str(proto.dtype)
    if name not in DTYPES:
        raise invalid(f"Unsupported tensor dtype: {name}")
    shape = [d.size for d in proto.tensor_shape.dim]
    if any(s < 0 for s in shape):
        raise invalid(f"Tensor shape {shape} has negative dimensions")
    count = math.prod(shape)
    if len(shape) > _MAX_RANK or count > _INT64_MAX:
        raise invalid(f"Tensor shape {shape} is not a valid shape: at most {_MAX_RANK} "
                      "dimensions whose product fits in int64")
    return name, shape, count


def decoded_bytes(proto: tensor_pb2.TensorProto) -> int:
    """The memory a TensorProto takes once decoded, before decoding it.

    One value fills the whole shape (as TensorFlow does), so a message of a few bytes can
    stand for gigabytes: strings count their real length per element (TensorFlow copies
    each), plus a per-element overhead.
    """
    name, _, count = _checked_shape(proto)
    if name != "DT_STRING":
        return count * np.dtype(DTYPES[name]).itemsize
    values = proto.string_val
    total = sum(map(len, values))
    if len(values) == 1:  # a fill: the one string is copied into every element
        total = count * total
    return total + _STRING_OVERHEAD * count


def tensor_to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """The array a TensorProto holds (typed fields or ``tensor_content``).

    Check its size with :func:`decoded_bytes` first when the proto comes from a client.
    """
    name, shape, count = _checked_shape(proto)
    dtype = np.dtype(DTYPES[name])
    try:
        if name != "DT_STRING" and proto.tensor_content:
            if len(proto.tensor_content) != count * dtype.itemsize:
                raise invalid(f"tensor_content holds {len(proto.tensor_content)} bytes; shape "
                              f"{shape} of {name} needs {count * dtype.itemsize}")
            flat = np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<"))
            return flat.astype(dtype).reshape(shape)
        values = getattr(proto, _FIELD_OF[name])
        if name == "DT_STRING":
            flat = np.empty(len(values), dtype=object)
            flat[:] = list(values)
        elif name == "DT_HALF":
            flat = np.array(values, dtype=np.uint16).view(np.float16)
        else:
            flat = np.array(values, dtype=dtype)
        if len(flat) == count:
            return flat.reshape(shape)
        if len(flat) == 1 and count > 1:  # TensorFlow repeats a single value to fill the shape
            return np.full(shape, flat[0], dtype=flat.dtype)
    except ValueError as exc:  # e.g. [0, 2**63 - 1]: valid for TensorFlow, too big for numpy
        raise invalid(f"Tensor of shape {shape} cannot be represented: {exc}") from None
    raise invalid(f"Tensor of shape {shape} needs {count} values, got {len(flat)}")


def _spec(spec) -> tuple[str, int | None, str | None]:
    choice = spec.WhichOneof("version_choice")
    return (spec.name, spec.version.value if choice == "version" else None,
            spec.version_label if choice == "version_label" else None)


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ServingError (and any bug) into a gRPC status instead of a stack trace."""

    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except ServingError as err:
            context.abort(grpc.StatusCode[err.code], err.message)
        except Exception:  # details go to the log, not to the client
            log.exception("Error in gRPC %s", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "Internal error while handling the "
                          "request; the server log has the details")

    wrapper.__name__ = method.__name__
    return wrapper


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService: Predict and GetModelMetadata."""
    def __init__(self, core: ServerCore, budget: MemoryBudget) -> None:
        self.core = core
        self.budget = budget

    def _charge(self, request: Any, context: grpc.ServicerContext, decoded: int) -> Ticket:
        """Charge the message and what it decodes to until the RPC ends (answer sent)."""
        ticket = self.budget.ticket()
        ticket.charge(request.ByteSize() + TENSOR_FACTOR * decoded)
        if not context.add_callback(ticket.close):  # the RPC has already ended
            ticket.close()
        return ticket

    @_guarded
    def Predict(self, request, context):  # noqa: N802 (gRPC method names)
        name, version, label = _spec(request.model_spec)
        number, servable = self.core.servable(name, version, label)
        sig = servable.signature(request.model_spec.signature_name, rest=False)
        ticket = self._charge(request, context,
                              sum(map(decoded_bytes, request.inputs.values())))
        inputs = {key: tensor_to_ndarray(t) for key, t in request.inputs.items()}
        outputs = servable.run(sig, inputs, list(request.output_filter))
        del inputs
        response = predict_pb2.PredictResponse()
        response.model_spec.name = name
        response.model_spec.version.value = number
        response.model_spec.signature_name = sig.name
        for key, array in outputs.items():
            response.outputs[key].CopyFrom(ndarray_to_tensor(array))
        ticket.charge(response.ByteSize(), force=True)  # held until it is sent
        return response

    @_guarded
    def GetModelMetadata(self, request, context):  # noqa: N802
        if not request.HasField("model_spec"):
            raise invalid("Missing ModelSpec")
        if not request.metadata_field:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                raise invalid(f"Metadata field {field} is not supported")
        name, version, label = _spec(request.model_spec)
        number, servable = self.core.servable(name, version, label)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = name
        response.model_spec.version.value = number
        response.metadata["signature_def"].Pack(servable.signature_def_map)
        return response

    @_guarded
    def Classify(self, request, context):  # noqa: N802
        from tensorflow_serving.apis import classification_pb2

        response = classification_pb2.ClassificationResponse()
        response.result.CopyFrom(self._infer(request, context, inference.CLASSIFY, response))
        return response

    @_guarded
    def Regress(self, request, context):  # noqa: N802
        from tensorflow_serving.apis import regression_pb2

        response = regression_pb2.RegressionResponse()
        response.result.CopyFrom(self._infer(request, context, inference.REGRESS, response))
        return response

    def _infer(self, request: Any, context: Any, method: str, response: Any) -> Any:
        name, version, label = _spec(request.model_spec)
        number, servable = self.core.servable(name, version, label)
        self._charge(request, context, request.ByteSize())  # Examples become tensors
        result = inference.run(servable, request.model_spec.signature_name, method,
                               request.input)
        response.model_spec.name = name
        response.model_spec.version.value = number
        response.model_spec.signature_name = request.model_spec.signature_name or \
            "serving_default"
        return result

    @_guarded
    def MultiInference(self, request, context):  # noqa: N802
        if not request.tasks:
            raise invalid("MultiInferenceRequest must contain at least one task.")
        name, version, label = _spec(request.tasks[0].model_spec)
        number, servable = self.core.servable(name, version, label)
        self._charge(request, context, request.ByteSize())
        return inference.multi_inference(servable, name, number, request)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService: GetModelStatus and HandleReloadConfigRequest."""
    def __init__(self, core: ServerCore, allow_labels_for_unavailable_models: bool) -> None:
        self.core = core
        self.allow_labels = allow_labels_for_unavailable_models

    @_guarded
    def GetModelStatus(self, request, context):  # noqa: N802
        if not request.HasField("model_spec"):
            raise invalid("Missing ModelSpec")
        name, version, label = _spec(request.model_spec)
        response = get_model_status_pb2.GetModelStatusResponse()
        for s in self.core.status(name, version, label):
            entry = response.model_version_status.add()
            entry.version = s.version
            entry.state = _STATES.Value(s.state)
            entry.status.SetInParent()  # TF Serving always sets it, so clients always see it
            entry.status.error_code = entry.status.DESCRIPTOR.fields_by_name[
                "error_code"].enum_type.values_by_name[s.error_code].number
            entry.status.error_message = s.error_message
        return response

    @_guarded
    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        """Replace the served models by ``request.config`` (a model_config_list)."""
        configs = models_from_proto(request.config, "ReloadConfigRequest")
        added = self.core.configure(configs, allow_labels_for_unavailable_models=self.allow_labels)
        log.info("Reloaded model config from a gRPC ReloadConfigRequest")
        self.core.poll(added)  # like TF Serving, answer once the new models have loaded
        response = model_management_pb2.ReloadConfigResponse()
        response.status.SetInParent()
        return response


def start_grpc_server(core: ServerCore, host: str, port: int, *, max_workers: int = 16,
                      max_message_bytes: int = 16 * 1024 * 1024,
                      allow_labels_for_unavailable_models: bool = False,
                      budget: MemoryBudget | None = None) -> tuple[grpc.Server, int]:
    """Start the gRPC front end; returns the server and the port it bound.

    ``budget`` is the memory budget shared with the REST front end (default: its own, of
    :func:`~forgekit.serving.budget.default_limit` bytes).
    """
    budget = budget or MemoryBudget(default_limit(max_message_bytes))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="forgekit-grpc"),
        options=[("grpc.max_receive_message_length", max_message_bytes),
                 ("grpc.max_send_message_length", -1),
                 ("grpc.so_reuseport", 0)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(core, budget), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelService(core, allow_labels_for_unavailable_models), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"Failed to bind gRPC to {address}: {exc}") from None
    if not bound:
        raise OSError(f"Failed to bind gRPC to {address}")
    server.start()
    return server, bound
