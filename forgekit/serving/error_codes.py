"""TF Serving's error model: a canonical status code plus a message, on either protocol.

TF Serving reports every failure as a ``tensorflow::Status``. Over gRPC that is the status code
itself; over REST it becomes an HTTP status (the table below is the one in TF Serving's
``model_servers/http_server.cc``) and a body ``{"error": "<message>"}``.
"""

from __future__ import annotations

import re

# canonical code -> HTTP status, as TF Serving maps them
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

# HTTP status -> the most likely canonical code (several codes share 400, 409 and 500)
_CODE_FOR_HTTP = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    411: "INVALID_ARGUMENT",
    413: "RESOURCE_EXHAUSTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# tensorflow/core/protobuf/error_codes.proto numbering, for tf.errors.OpError.error_code
CODE_NAMES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)


class ServingError(Exception):
    """A request failed: ``code`` is the canonical status name, ``message`` the server's text.

    Raised by the server internals and by :class:`forgekit.serving.Client`, for either
    protocol. ``http_status`` is the REST status (the real one when the error came over HTTP).
    """

    def __init__(self, code: str, message: str, *, http_status: int | None = None) -> None:
        if code not in HTTP_STATUS:
            code = "UNKNOWN"
        self.code = code
        self.message = message
        self.http_status = http_status if http_status is not None else HTTP_STATUS[code]
        super().__init__(f"{code}: {message}")

    @classmethod
    def from_http(cls, status: int, message: str) -> ServingError:
        """The error a REST response with HTTP ``status`` stands for."""
        code = _CODE_FOR_HTTP.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
        return cls(code, message, http_status=status)


def from_exception(exc: BaseException, fallback: str = "INTERNAL") -> ServingError:
    """The ServingError an exception stands for (a failed load, a failed signature call).

    TensorFlow's errors carry their canonical code; Python's are mapped to the nearest one,
    and anything else gets ``fallback`` with the exception's type in the message.
    """
    if isinstance(exc, ServingError):
        return exc
    message = str(getattr(exc, "message", None) or exc).strip() or type(exc).__name__
    code = getattr(exc, "error_code", None)  # tf.errors.OpError
    if isinstance(code, int) and 0 < code < len(CODE_NAMES):
        return ServingError(CODE_NAMES[code], kernel_message(message))
    if isinstance(exc, FileNotFoundError):
        return ServingError("NOT_FOUND", message)
    if isinstance(exc, (TypeError, ValueError)):
        return invalid(message)
    return ServingError(fallback, f"{type(exc).__name__}: {message}")


_EAGER_PREFIX = re.compile(
    r"^Graph execution error:\s*(?:Detected at node [^\n]*? defined at \(most recent call "
    r"last\):\n(?:(?:  [^\n]*|<stack traces unavailable>|)\n)*)?")
_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\]\s*$")


def kernel_message(message: str) -> str:
    """TensorFlow's own status message, as TF Serving's Session::Run returns it.

    Eager function calls prepend "Graph execution error" and the Python stack of the
    graph's construction (file paths of the exporting script): neither is sent to clients.
    """
    cleaned = _OP_SUFFIX.sub("", _EAGER_PREFIX.sub("", message, count=1))
    return cleaned.strip() or message


def invalid(message: str) -> ServingError:
    """400 / INVALID_ARGUMENT: the request itself is wrong."""
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    """404 / NOT_FOUND: no such model, version or label."""
    return ServingError("NOT_FOUND", message)


def shorten(text: str, limit: int = 200) -> str:
    """Echo at most ``limit`` characters of client-supplied text back in an error message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
