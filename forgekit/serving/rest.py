"""TF Serving's REST API: its URLs, JSON bodies and status codes.

URLs, JSON shapes and status codes follow TF Serving's ``http_rest_api_handler.cc``:

    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]            -> model status
    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]/metadata   -> signature metadata
    POST /v1/models/{name}[/versions/{v} | /labels/{l}]:predict    -> predictions
    POST /v1/models/{name}[/versions/{v} | /labels/{l}]:classify   -> label/score pairs
    POST /v1/models/{name}[/versions/{v} | /labels/{l}]:regress    -> one value per example

Every error is ``{"error": "..."}`` with TF Serving's status mapping (400 for bad requests,
404 for unknown models or versions). :class:`RestApi` is transport-independent; the HTTP/1.1
server that carries it, with its limits, is :mod:`forgekit.serving.http_server`.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import unquote

from forgekit.serving import tensors
from forgekit.serving.core import ServerCore, status_json
from forgekit.serving.error_codes import ServingError, invalid, shorten
from forgekit.serving.json_body import parse_request

log = logging.getLogger("forgekit.serving")

# TF Serving's regular expressions (model_servers/http_rest_api_util.cc)
_V1 = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_PREDICT = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE | re.ASCII)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE | re.ASCII)



def error_body(message: str) -> bytes:
    """TF Serving's REST error body: ``{"error": message}``."""
    return json.dumps({"error": message}).encode()


# ------------------------------------------------------------------------- the API


class RestApi:
    """Maps (method, path, body) to (HTTP status, JSON bytes). Transport-independent."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core

    def handle(self, method: str, target: str, body: bytes) -> tuple[int, bytes]:
        """Answer one request; never raises (a bug becomes a 500 with a JSON error)."""
        path = target.split("?", 1)[0]
        try:
            return 200, self._dispatch(method, path, body)
        except ServingError as err:
            return err.http_status, error_body(err.message)
        except Exception:  # a bug must cost one request, not the server
            # the details go to the log; clients get the status and a generic message
            log.exception("Error handling %s %s", method, shorten(path))
            return 500, error_body("Internal error while handling the request; the server "
                                   "log has the details")

    def _dispatch(self, method: str, path: str, body: bytes) -> bytes:
        if not _V1.fullmatch(path):
            raise ServingError("NOT_FOUND", f"Not found: {shorten(path)}")
        malformed = invalid(f"Malformed request: {method} {shorten(path)}")
        if method == "POST":
            m = _PREDICT.fullmatch(path)
            if not m:
                raise malformed
            name, version, label = _model_args(m.group(1), m.group(2), m.group(3))
            verb = m.group(4)
            if verb == "predict":
                return self._predict(name, version, label, body)
            if verb in ("classify", "regress"):
                return self._classify_regress(verb, name, version, label, body)
            raise malformed  # TF Serving compares the verb case-sensitively
        if method == "GET":
            m = _STATUS.fullmatch(path)
            if not m:
                raise malformed
            name, version, label = _model_args(m.group(1) or "", m.group(2), m.group(3))
            if m.group(4) == "metadata":  # case-sensitive: "/METADATA" is a status request
                return _dumps(self.core.metadata(name, version, label))
            return _dumps(status_json(self.core.status(name, version, label)))
        raise malformed

    def _predict(self, name: str, version: int | None, label: str | None,
                 body: bytes) -> bytes:
        doc, signature_name = parse_request(body)
        _, servable = self.core.servable(name, version, label)
        sig = servable.signature(signature_name, rest=True)
        row, inputs = tensors.parse_inputs(doc, sig.inputs)
        del doc  # the decoded JSON is many times the body's size: free it before running
        outputs = servable.run(sig, inputs)
        del inputs
        return tensors.outputs_json_bytes(outputs, row)

    def _classify_regress(self, verb: str, name: str, version: int | None, label: str | None,
                          body: bytes) -> bytes:
        from forgekit.serving import inference

        doc, signature_name = parse_request(body)
        request_input = inference.input_from_json(doc)
        _, servable = self.core.servable(name, version, label)
        method = inference.CLASSIFY if verb == "classify" else inference.REGRESS
        result = inference.run(servable, signature_name, method, request_input)
        return _dumps(inference.result_json(result))


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload).encode()  # NaN/Infinity tokens, as TF Serving writes them


def _model_args(name: str, version: str | None, label: str | None
                ) -> tuple[str, int | None, str | None]:
    try:
        name = unquote(name, errors="strict")
    except UnicodeDecodeError:
        raise invalid(f"Failed to decode model name:{shorten(name)}") from None
    number = None
    if version is not None:
        if len(version) > 18:  # beyond int64, as absl::SimpleAtoi would refuse
            raise invalid(f"Failed to convert version: {shorten(version)} to numeric.")
        number = int(version)
    if label is not None:
        try:
            label = unquote(label, errors="strict")
        except UnicodeDecodeError:
            raise invalid(f"Failed to decode model version label:{shorten(label)}") from None
    return name, number, label
