"""TF Serving's REST API on the standard library's HTTP/1.1 server, with limits.

URLs, JSON shapes and status codes follow TF Serving's ``http_rest_api_handler.cc``:

    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]            -> model status
    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]/metadata   -> signature metadata
    POST /v1/models/{name}[/versions/{v} | /labels/{l}]:predict    -> predictions
    POST /v1/models/{name}[/versions/{v} | /labels/{l}]:classify   -> label/score pairs
    POST /v1/models/{name}[/versions/{v} | /labels/{l}]:regress    -> one value per example

Every error is ``{"error": "..."}`` with TF Serving's status mapping (400 for bad requests,
404 for unknown models or versions). The transport is ``http.server``'s thread-per-connection
server with keep-alive, chosen over tornado by measurement (docs/serving.md): one write per
response and TCP_NODELAY keep a small predict well under a millisecond. It protects itself:

* bodies larger than ``max_body`` get 413 without being read;
* a client has ``timeout`` seconds to send a whole request (a watchdog closes the read side of
  slow connections, which then get 408), so slow clients cannot pin threads forever;
* at most ``max_connections`` connections are served at once; more get 503 immediately;
* the bytes of bodies being decoded at once are bounded (:class:`DecodeBudget`); beyond the
  budget a request gets 503 without its body being read, so memory stays bounded;
* any exception while handling a request becomes a JSON error (details only in the log),
  never a dead server.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import math
import re
import socket
import socketserver
import threading
import time
from typing import Any
from urllib.parse import unquote

from forgekit.serving import tensors
from forgekit.serving.core import ServerCore, status_json
from forgekit.serving.errors import ServingError, invalid, shorten

log = logging.getLogger("forgekit.serving")

# TF Serving's regular expressions (model_servers/http_rest_api_util.cc)
_V1 = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_PREDICT = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE | re.ASCII)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE | re.ASCII)

_LENGTH = re.compile(r"[0-9]{1,15}")  # not str.isdigit(): it accepts "²", which int() refuses
_MAX_LINE = 8192
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 408: "Request Timeout", 409: "Conflict", 411: "Length Required",
            413: "Payload Too Large", 414: "URI Too Long", 429: "Too Many Requests",
            431: "Request Header Fields Too Large", 499: "Client Closed Request",
            500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
            504: "Gateway Timeout"}


class _HttpError(Exception):
    """A protocol-level problem: answer ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Expired(Exception):
    """The watchdog cut the connection's read side: the client was too slow."""


def error_body(message: str) -> bytes:
    """TF Serving's REST error body: ``{"error": message}``."""
    return json.dumps({"error": message}).encode()


def response_bytes(status: int, body: bytes, close: bool = False, head: bool = False) -> bytes:
    """A whole response in one buffer: one ``sendall``, no Nagle/delayed-ACK stall."""
    lines = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
             f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
             + ("Connection: close\r\n" if close else "") + "\r\n")
    return lines.encode("latin-1") + (b"" if head else body)  # HEAD: headers only


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
        doc, signature_name = _parse_body(body)
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

        doc, signature_name = _parse_body(body)
        request_input = inference.input_from_json(doc)
        _, servable = self.core.servable(name, version, label)
        method = inference.CLASSIFY if verb == "classify" else inference.REGRESS
        result = inference.run(servable, signature_name, method, request_input)
        return _dumps(inference.result_json(result))


def _parse_body(body: bytes) -> tuple[dict[str, Any], str]:
    """The request's JSON object and its ``signature_name`` ("" when absent)."""
    if not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise invalid(f"JSON Parse error: {_parse_error(exc.msg)} at offset: {exc.pos}") from None
    except UnicodeDecodeError:
        raise invalid("JSON Parse error: Invalid encoding in string.") from None
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise invalid(f"JSON Parse error: {shorten(str(exc))}") from None
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {tensors.preview(doc)} Is not object")
    signature_name = doc.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid(f"JSON Value: {tensors.preview(doc)} not formatted correctly. "
                      "'signature_name' key must be a string value.")
    return doc, signature_name


# Python's json messages -> rapidjson's (GetParseError_En), which TF Serving reports
_PARSE_ERRORS = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Expecting ',' delimiter": "Missing a comma or ']' after an array element, or a comma or "
                               "'}' after an object member.",
    "Extra data": "The document root must not be followed by other values.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
}


def _parse_error(message: str) -> str:
    return _PARSE_ERRORS.get(message, message)


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


# ------------------------------------------------------------------------- the transport


class _Handler(http.server.BaseHTTPRequestHandler):
    """One client connection on the standard library's HTTP/1.1 server (keep-alive).

    The stdlib parses the request line's version, the headers and ``Connection``; this
    class adds the limits a server facing notebooks and scripts needs: a stricter request
    line, header lines of at most 8 KiB, a Content-Length body only (413 beyond the limit,
    before reading it), a deadline for the whole request (408), a budget for decoding big
    bodies at once (503), and JSON error bodies everywhere.
    """

    protocol_version = "HTTP/1.1"
    server: _HttpServer
    deadline: float | None = None
    expired = False
    started = False

    def setup(self) -> None:
        super().setup()
        self.sock: socket.socket = self.connection
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Bounds blocking writes to clients that do not read. Reads are cut by the watchdog at
        # the request deadline, which must fire first so that a half-sent request gets a 408.
        timeout = self.server.timeout_s
        self.sock.settimeout(2 * timeout + 1 if timeout > 0 else None)
        self.server.track(self, True)

    def finish(self) -> None:
        self.server.track(self, False)
        with contextlib.suppress(OSError):
            super().finish()

    def handle_one_request(self) -> None:
        # a timeout of 0 means none, as --rest_api_timeout_in_ms=0 does in TF Serving
        timeout = self.server.timeout_s
        self.deadline = time.monotonic() + timeout if timeout > 0 else math.inf
        self.close_connection = True
        if self.server.closing:  # checked after setting the deadline: see _HttpServer.drain
            return
        self.started = False  # any byte of this request received?
        try:
            request = self._read_request()
        except (_Expired, TimeoutError):
            if self.started:
                self._send(408, error_body("Timed out reading the request"), close=True)
            return
        except _HttpError as err:
            self._send(err.status, error_body(err.message), close=True)
            self._linger()
            return
        except _Answered:
            return
        except OSError:
            return  # connection reset or timed out while idle
        except Exception:  # a parser bug must not leave the client without answer
            log.exception("Error reading a request")
            self._send(400, error_body("Bad request"), close=True)
            return
        if request is None:
            return
        self.deadline = None
        target, body, reservation = request
        try:
            status, payload = self.server.api.handle(self.command, target, body)
        finally:
            del body
            self.server.budget.release(reservation)
        close = self.close_connection or self.server.closing
        if not self._send(status, payload, close, self.command == "HEAD"):
            close = True
        self.close_connection = close

    def _readline(self) -> bytes:
        line = self.rfile.readline(_MAX_LINE + 1)
        if line:
            self.started = True
        if self.expired:
            raise _Expired
        return line

    def _read_request(self) -> tuple[str, bytes, int] | None:
        line = self._readline()
        if line in (b"\r\n", b"\n"):  # tolerated between keep-alive requests (RFC 9112)
            line = self._readline()
        if not line:
            return None
        if len(line) > _MAX_LINE:
            raise _HttpError(414, "Request line too long")
        if not line.endswith(b"\n"):
            raise _HttpError(400, "Incomplete request line")
        text = line.decode("latin-1")
        # stricter than the stdlib, which also accepts HTTP/0.9 lines and runs of spaces
        parts = text.rstrip("\r\n").split(" ")
        if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0") or not parts[1] \
                or not parts[0]:
            raise _HttpError(400, f"Malformed HTTP request line: {shorten(text)}")
        self.raw_requestline = line
        if not self.parse_request():  # version, headers, keep-alive; errors already sent
            raise _Answered
        if self.expired:
            raise _Expired
        self._check_headers()
        length = self._content_length()
        reservation = self.server.budget.reserve(length)
        if reservation is None:
            raise _HttpError(503, "Server busy: too many large requests are being decoded; "
                                  "retry later")
        try:
            if length and self.headers.get("Expect", "").lower() == "100-continue":
                self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = self.rfile.read(length) if length else b""
            if self.expired:
                raise _Expired
            if len(body) < length:
                raise _HttpError(400, f"Request body ended after {len(body)} of {length} bytes")
        except BaseException:
            self.server.budget.release(reservation)
            raise
        return parts[1], body, reservation

    def _check_headers(self) -> None:
        if self.headers.defects:  # e.g. a line without a colon
            raise _HttpError(400, "Malformed request headers")
        for name, value in self.headers.items():
            if not name or name != name.strip() or " " in name or "\t" in name:
                raise _HttpError(400, f"Malformed header name: {shorten(name)!r}")
            if len(name) + len(value) + 4 > _MAX_LINE:
                raise _HttpError(431, "Request header line too long")

    def _content_length(self) -> int:
        if "Transfer-Encoding" in self.headers:
            raise _HttpError(411, "Chunked request bodies are not supported; send Content-Length")
        values = {v.strip() for v in self.headers.get_all("Content-Length") or ["0"]}
        if len(values) > 1:
            raise _HttpError(400, "Conflicting Content-Length headers")
        (text,) = values
        if not _LENGTH.fullmatch(text):
            raise _HttpError(400, f"Invalid Content-Length: {shorten(text)}")
        length = int(text)
        if length > self.server.max_body:
            raise _HttpError(413, f"Request body of {length} bytes exceeds the limit of "
                                  f"{self.server.max_body} bytes")
        return length

    def handle_expect_100(self) -> bool:
        return True  # 100 Continue is sent after the length check (a 413 needs no body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None
                   ) -> None:
        """The stdlib's parse errors (bad version, header too long...) as JSON errors."""
        self.close_connection = True
        self._send(code, error_body(message or _REASONS.get(code, "Bad request")), close=True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, close: bool, head: bool = False) -> bool:
        try:
            self.wfile.write(response_bytes(status, body, close, head))
            return True
        except OSError:
            return False

    def _linger(self) -> None:
        """Drain what the client is still sending, so it reads our error instead of a reset."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(0.5)
            end, drained = time.monotonic() + 2.0, 0
            while time.monotonic() < end and drained < 4 * self.server.max_body:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass


class _Answered(Exception):
    """The stdlib already sent the error response for this request."""


class DecodeBudget:
    """Bytes of request bodies being read, decoded and answered at once.

    A JSON body becomes Python objects 10-20 times its size while it is decoded (a 16 MiB
    body of small lists: several hundred MB), so a few concurrent maximum-size requests
    would take gigabytes. Each request reserves its Content-Length before its body is
    read; when the budget is spent the request is refused (503) instead of queued, and its
    body is never held in memory.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def reserve(self, size: int) -> int | None:
        """Reserve ``size`` bytes; returns the reservation, or None when over budget."""
        with self._lock:
            if self._used and self._used + size > self.limit:
                return None
            self._used += size
            return size

    def release(self, reservation: int) -> None:
        with self._lock:
            self._used -= reservation


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    closing = False  # set by drain(): answer what is in flight, then close

    def __init__(self, address: tuple[str, int], api: RestApi, *, max_connections: int,
                 timeout_s: float, max_body: int, decode_budget: int) -> None:
        self.api = api
        self.timeout_s = timeout_s
        self.max_body = max_body
        self.budget = DecodeBudget(decode_budget)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._live: set[_Handler] = set()
        self._live_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also resolves the host's FQDN, a DNS lookup we do not need
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def track(self, conn: _Handler, alive: bool) -> None:
        with self._live_lock:
            (self._live.add if alive else self._live.discard)(conn)

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:  # refuse at once rather than queue behind slow clients
                request.settimeout(1.0)
                request.sendall(response_bytes(503, error_body("Too many connections"), True))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("Unexpected error on a connection from %s", client_address)

    def drain(self, grace: float) -> None:
        """Close every connection: those waiting for a request at once, the others once
        they have answered (with ``Connection: close``), waiting at most ``grace`` seconds.

        Connection threads are daemons, so without this a request in flight at SIGTERM
        would be cut mid-answer when the process exits.
        """
        self.closing = True
        # A handler sets its deadline before it checks `closing`, so one that missed the
        # flag has a deadline by now and is cut here.
        with self._live_lock:
            waiting = [c for c in self._live if c.deadline is not None]
        for conn in waiting:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RD)
        end = time.monotonic() + grace
        while time.monotonic() < end:
            with self._live_lock:
                if not self._live:
                    return
            time.sleep(0.02)

    def reap(self) -> None:
        """Cut the read side of connections past their deadline (their reads return EOF)."""
        now = time.monotonic()
        with self._live_lock:
            late = [c for c in self._live if c.deadline is not None and now > c.deadline]
        for conn in late:
            conn.expired = True
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RD)


class _HttpServer6(_HttpServer):
    address_family = socket.AF_INET6


class RestServer:
    """The REST front end, serving on its own threads until :meth:`shutdown`.

    ``decode_budget`` bounds the request bytes being decoded at once (default: one
    maximum-size body plus 8 MiB for everything else).
    """

    def __init__(self, core: ServerCore, host: str, port: int, *, max_connections: int = 32,
                 timeout_s: float = 30.0, max_body: int = 16 * 1024 * 1024,
                 decode_budget: int | None = None) -> None:
        cls = _HttpServer6 if ":" in host else _HttpServer
        budget = decode_budget if decode_budget is not None else max_body + 8 * 1024 * 1024
        self._server = cls((host, port), RestApi(core), max_connections=max_connections,
                           timeout_s=timeout_s, max_body=max_body, decode_budget=budget)
        self.address: tuple[str, int] = self._server.server_address[:2]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                             name="forgekit-rest", daemon=True),
            threading.Thread(target=self._watchdog, name="forgekit-rest-watchdog", daemon=True),
        ]
        self._tick = min(0.25, timeout_s / 4) if timeout_s > 0 else 0.25

    def start(self) -> None:
        """Serve in background threads (and run the slow-client watchdog)."""
        for thread in self._threads:
            thread.start()

    def _watchdog(self) -> None:
        while not self._stop.wait(self._tick):
            self._server.reap()

    def shutdown(self, grace: float = 2.0) -> None:
        """Stop accepting, let requests in flight answer (up to ``grace`` s), then close."""
        self._server.shutdown()
        self._server.drain(grace)
        self._server.server_close()
        self._stop.set()
