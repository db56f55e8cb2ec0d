"""A client for TF Serving's REST and gRPC APIs that works the same against either server.

``Client("http://host:8501")`` speaks REST, ``Client("grpc://host:8500")`` speaks gRPC, and
``Client()`` reads the URL from ``$FORGEKIT_SERVING_URL`` (default ``http://127.0.0.1:8501``),
so a lesson written against forgekit's local server runs unchanged against a real
tensorflow/serving container. Results are the REST API's JSON, whichever protocol carried
them: ``status()`` -> ``{"model_version_status": [...]}``, ``metadata()`` ->
``{"model_spec": ..., "metadata": {"signature_def": ...}}``, ``predict()`` ->
``{"predictions": ...}`` (rows) or ``{"outputs": ...}`` (columns). Failures raise
:class:`~forgekit.serving.error_codes.ServingError` with the server's code and message.

REST needs only the standard library and numpy; gRPC imports the TF Serving protos (and with
them TensorFlow) on first use.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import numpy as np

from forgekit.quiet import QUIET_ENV, muted_stderr
from forgekit.serving.error_codes import ServingError

T = TypeVar("T")

URL_ENV = "FORGEKIT_SERVING_URL"
DEFAULT_URL = "http://127.0.0.1:8501"


def _model_path(model: str, version: int | None, label: str | None) -> str:
    if version is not None and label is not None:
        raise ValueError("give a version or a label, not both")
    path = f"/v1/models/{quote(model, safe='')}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label is not None:
        path += f"/labels/{quote(label, safe='')}"
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _plain(value: Any) -> Any:
    """Arrays stay arrays (the fast path); anything else becomes what JSON would carry."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, dict) and any(isinstance(v, np.ndarray) for v in value.values()):
        return {k: _plain(v) for k, v in value.items()}
    return json.loads(json.dumps(value, default=_json_default))


def predict_body(instances: Any = None, inputs: Any = None,
                 signature_name: str | None = None) -> dict[str, Any]:
    """The JSON body of a predict request (exactly one of ``instances`` / ``inputs``)."""
    if (instances is None) == (inputs is None):
        raise ValueError("pass exactly one of instances= (row format) or inputs= (columnar)")
    body: dict[str, Any] = {"instances": instances} if instances is not None else {
        "inputs": inputs}
    if signature_name:
        body["signature_name"] = signature_name
    return body


def _infer_body(examples: list[dict[str, Any]], context: dict[str, Any] | None,
                signature_name: str | None) -> dict[str, Any]:
    """A classify/regress body: ``examples``, and ``context``/``signature_name`` if given."""
    body: dict[str, Any] = {"examples": _plain(examples)}
    if context is not None:
        body["context"] = _plain(context)
    if signature_name:
        body["signature_name"] = signature_name
    return body


class _Rest:
    """REST over keep-alive HTTP/1.1, one connection per calling thread."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._local.conn = cls(self._host, self._port, timeout=self._timeout)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body, default=_json_default).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (1, 2):  # a kept-alive connection may have been closed by the server
            reused = getattr(self._local, "conn", None) is not None
            conn = self._connection()
            try:
                conn.request(method, self._prefix + path, body=data, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                self._drop()
                if attempt == 1 and reused and not isinstance(exc, TimeoutError):
                    continue
                raise ServingError("UNAVAILABLE", f"{method} {path}: {exc}") from None
            if response.will_close:
                self._drop()
            return self._decode(response.status, payload)
        raise AssertionError("unreachable")

    @staticmethod
    def _decode(status: int, payload: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(payload) if payload else {}
        except ValueError:
            doc = None
        if status == 200 and isinstance(doc, dict):
            return doc
        message = doc.get("error") if isinstance(doc, dict) else None
        raise ServingError.from_http(status, str(message) if message is not None
                                     else payload.decode("utf-8", "replace")[:500])

    def status(self, model: str, version: int | None, label: str | None) -> dict[str, Any]:
        return self.request("GET", _model_path(model, version, label))

    def metadata(self, model: str, version: int | None, label: str | None) -> dict[str, Any]:
        return self.request("GET", _model_path(model, version, label) + "/metadata")

    def predict(self, model: str, version: int | None, label: str | None,
                body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", _model_path(model, version, label) + ":predict", body)

    def infer(self, verb: str, model: str, version: int | None, label: str | None,
              body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", _model_path(model, version, label) + f":{verb}", body)

    def close(self) -> None:
        self._drop()


class _Grpc:
    """gRPC with the official stubs; answers converted to the REST API's JSON shapes."""

    def __init__(self, target: str, timeout: float) -> None:
        import grpc

        if "tensorflow" not in sys.modules:  # the protos import TensorFlow: keep it quiet
            for key, value in QUIET_ENV.items():
                os.environ.setdefault(key, value)
        with muted_stderr():
            from tensorflow_serving.apis import (
                model_service_pb2_grpc,
                prediction_service_pb2_grpc,
            )

        self._grpc = grpc
        self._timeout = timeout
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._infos: dict[tuple, dict[str, Any]] = {}  # input dtypes, from metadata

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self._timeout)
        except self._grpc.RpcError as err:
            raise ServingError(err.code().name, err.details() or "") from None

    @staticmethod
    def _spec(spec: Any, model: str, version: int | None, label: str | None) -> None:
        if version is not None and label is not None:
            raise ValueError("give a version or a label, not both")
        spec.name = model
        if version is not None:
            spec.version.value = int(version)
        elif label is not None:
            spec.version_label = label

    def status(self, model: str, version: int | None, label: str | None) -> dict[str, Any]:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model, version, label)
        response = self._call(self._models.GetModelStatus, request)
        return json_format.MessageToDict(response, always_print_fields_with_no_presence=True)

    def metadata(self, model: str, version: int | None, label: str | None) -> dict[str, Any]:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(
            metadata_field=["signature_def"])
        self._spec(request.model_spec, model, version, label)
        response = self._call(self._predict.GetModelMetadata, request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        options = {"preserving_proto_field_name": True,
                   "always_print_fields_with_no_presence": True}
        return {"model_spec": json_format.MessageToDict(response.model_spec, **options),
                "metadata": {"signature_def": json_format.MessageToDict(signatures, **options)}}

    def _input_infos(self, model: str, version: int | None, label: str | None,
                     signature: str) -> dict[str, Any]:
        from forgekit.serving.tensors import InputInfo

        key = (model, version, label, signature)
        if key not in self._infos:
            sigs = self.metadata(model, version, label)["metadata"]["signature_def"]
            sig = sigs.get("signature_def", {}).get(signature)
            if sig is None:
                raise ServingError("FAILED_PRECONDITION",
                                   f'Serving signature key "{signature}" not found.')
            infos = {}
            for name, info in sorted(sig["inputs"].items()):
                shape = info["tensor_shape"]
                dims = None if shape.get("unknown_rank") else tuple(
                    int(d["size"]) for d in shape.get("dim", []))
                infos[name] = InputInfo(info["dtype"], dims)
            self._infos[key] = infos
        return self._infos[key]

    def predict(self, model: str, version: int | None, label: str | None,
                body: dict[str, Any]) -> dict[str, Any]:
        from forgekit.serving import tensors
        from forgekit.serving.grpc_api import tensor_to_ndarray

        signature = body.get("signature_name") or "serving_default"
        key = (model, version, label, signature)
        plain = {k: _plain(v) for k, v in body.items()}
        while True:
            # The signature's inputs come from metadata, cached. A new version may have
            # renamed or retyped them, so a failure with cached inputs is retried once with
            # fresh metadata instead of failing until the client is recreated.
            cached = key in self._infos
            infos = self._input_infos(model, version, label, signature)
            try:
                # the REST server's own parser, so both protocols accept the same requests
                row, arrays = tensors.parse_inputs(plain, infos)
                response = self._call(self._predict.Predict, self._predict_request(
                    model, version, label, body.get("signature_name") or "", arrays))
            except ServingError:
                self._infos.pop(key, None)
                if cached:
                    continue
                raise
            outputs = {k: tensor_to_ndarray(v) for k, v in response.outputs.items()}
            return tensors.outputs_to_json(outputs, row)

    def _predict_request(self, model: str, version: int | None, label: str | None,
                         signature_name: str, arrays: dict[str, np.ndarray]) -> Any:
        from tensorflow_serving.apis import predict_pb2

        from forgekit.serving.grpc_api import ndarray_to_tensor

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, version, label)
        request.model_spec.signature_name = signature_name
        for name, array in arrays.items():
            request.inputs[name].CopyFrom(ndarray_to_tensor(array, typed=False))
        return request

    def infer(self, verb: str, model: str, version: int | None, label: str | None,
              body: dict[str, Any]) -> dict[str, Any]:
        from tensorflow_serving.apis import classification_pb2, regression_pb2

        from forgekit.serving import inference

        if verb == "classify":
            request, call = classification_pb2.ClassificationRequest(), self._predict.Classify
        else:
            request, call = regression_pb2.RegressionRequest(), self._predict.Regress
        self._spec(request.model_spec, model, version, label)
        request.model_spec.signature_name = body.get("signature_name") or ""
        # the server's own JSON -> tf.train.Example rules, so both protocols agree
        request.input.CopyFrom(inference.input_from_json(body))
        return inference.result_json(self._call(call, request).result)

    def close(self) -> None:
        self._channel.close()


class Client:
    """Status, metadata, predict, classify and regress against TF Serving (or forgekit's
    server), over REST or gRPC.

    Args:
        url: ``http://host:port`` (REST) or ``grpc://host:port`` (gRPC). Default:
            ``$FORGEKIT_SERVING_URL``, else ``http://127.0.0.1:8501``.
        timeout: seconds per request.
    """

    def __init__(self, url: str | None = None, *, timeout: float = 30.0) -> None:
        self.url = url or os.environ.get(URL_ENV) or DEFAULT_URL
        parts = urlsplit(self.url)
        if parts.scheme in ("http", "https"):
            self.transport = "rest"
            self._impl: _Rest | _Grpc = _Rest(self.url, timeout)
        elif parts.scheme == "grpc":
            if not parts.hostname or not parts.port:
                raise ValueError(f"gRPC URL needs a host and a port: {self.url!r}")
            self.transport = "grpc"
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            self._impl = _Grpc(f"{host}:{parts.port}", timeout)
        else:
            raise ValueError(f"serving URL must start with http://, https:// or grpc://, "
                             f"got {self.url!r}")

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def status(self, model: str, *, version: int | None = None,
               label: str | None = None) -> dict[str, Any]:
        """``GetModelStatus``: every version's state, or one version's (by number or label)."""
        return self._impl.status(model, version, label)

    def metadata(self, model: str, *, version: int | None = None,
                 label: str | None = None) -> dict[str, Any]:
        """``GetModelMetadata``: the model's SignatureDefs (inputs, outputs, dtypes, shapes)."""
        return self._impl.metadata(model, version, label)

    def predict(self, model: str, instances: Any = None, *, inputs: Any = None,
                version: int | None = None, label: str | None = None,
                signature_name: str | None = None) -> dict[str, Any]:
        """Predict with rows (``instances``) or columns (``inputs``); numpy arrays are fine.

        Returns ``{"predictions": ...}`` for rows and ``{"outputs": ...}`` for columns; with
        several named outputs, a list of objects (rows) or one object (columns).
        """
        body = predict_body(instances, inputs, signature_name)
        return self._impl.predict(model, version, label, body)

    def classify(self, model: str, examples: list[dict[str, Any]], *,
                 context: dict[str, Any] | None = None, version: int | None = None,
                 label: str | None = None, signature_name: str | None = None
                 ) -> dict[str, Any]:
        """``Classify`` examples (feature name -> value or list, as TF Serving's JSON).

        Returns ``{"results": [[[label, score], ...], ...]}``, one list per example.
        """
        body = _infer_body(examples, context, signature_name)
        return self._impl.infer("classify", model, version, label, body)

    def regress(self, model: str, examples: list[dict[str, Any]], *,
                context: dict[str, Any] | None = None, version: int | None = None,
                label: str | None = None, signature_name: str | None = None
                ) -> dict[str, Any]:
        """``Regress`` examples; returns ``{"results": [value, ...]}``, one per example."""
        body = _infer_body(examples, context, signature_name)
        return self._impl.infer("regress", model, version, label, body)

    def wait_until_available(self, model: str, *, version: int | None = None,
                             timeout: float = 30.0, interval: float = 0.1) -> dict[str, Any]:
        """Poll ``status`` until ``version`` (default: any version) is AVAILABLE."""
        def available() -> dict[str, Any] | None:
            status = self.status(model, version=version)
            states = [s.get("state") for s in status["model_version_status"]]
            return status if "AVAILABLE" in states else None

        return poll(available, timeout=timeout, interval=interval,
                    what=f"{model} version {version or 'any'} AVAILABLE")

    def wait_for_version(self, model: str, version: int, *, timeout: float = 30.0,
                         interval: float = 0.05) -> float:
        """Seconds until requests for ``model`` without a version get ``version`` (its
        metadata's ``model_spec.version`` says so): when a newly published version answers."""
        started = time.monotonic()

        def answering() -> float | None:
            meta = self.metadata(model)
            return time.monotonic() - started \
                if int(meta["model_spec"]["version"]) == int(version) else None

        return poll(answering, timeout=timeout, interval=interval,
                    what=f"{model} version {version} answering")

    def close(self) -> None:
        self._impl.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def poll(attempt: Callable[[], T | None], *, timeout: float, interval: float, what: str) -> T:
    """Call ``attempt`` until it returns something other than None; TimeoutError after
    ``timeout`` seconds. A :class:`ServingError` (the server not up yet, the model not loaded)
    counts as "not yet" and is named in the TimeoutError: a server picks up a new version or
    config on its next poll, so every wait in forgekit is this loop."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = attempt()
            if value is not None:
                return value
        except ServingError as err:
            last = err
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout:g}s"
                               + (f"; last error: {last}" if last is not None else ""))
        time.sleep(interval)
