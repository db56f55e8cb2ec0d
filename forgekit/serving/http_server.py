"""The HTTP/1.1 transport of the REST API: the standard library's server, with limits.

A thread-per-connection ``http.server`` with keep-alive, chosen over tornado by measurement
(docs/serving.md). Its limits (docs/serving.md, "Limits and guarantees"): bodies over
``max_body`` get 413 unread; a request must arrive within ``timeout`` seconds (408); at most
``max_connections`` connections, a new one replacing the one idle longest (503 when none is
idle); every request is charged to the memory budget shared with gRPC
(:mod:`forgekit.serving.budget`) before its body is read, until its answer is sent (503 beyond
it); a bug becomes a JSON 500, never a dead server. The routes are :mod:`forgekit.serving.rest`.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import math
import re
import socket
import socketserver
import threading
import time
from typing import Any

from forgekit.serving.budget import JSON_FACTOR, MemoryBudget, Ticket, default_limit
from forgekit.serving.core import ServerCore
from forgekit.serving.error_codes import ServingError, shorten
from forgekit.serving.rest import RestApi, error_body

log = logging.getLogger("forgekit.serving")

_LENGTH = re.compile(r"[0-9]{1,15}")  # not str.isdigit(): it accepts "²", which int() refuses
_MAX_LINE = 8192


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:  # 499, nginx's "client closed request"
        return "Client Closed Request"


class _HttpError(Exception):
    """A protocol-level problem: answer ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class _Expired(Exception):
    """The watchdog cut the connection's read side: the client was too slow."""


def response_bytes(status: int, body: bytes, close: bool = False, head: bool = False) -> bytes:
    """A whole response in one buffer: one ``sendall``, no Nagle/delayed-ACK stall."""
    lines = (f"HTTP/1.1 {status} {_reason(status)}\r\n"
             f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
             + ("Connection: close\r\n" if close else "") + "\r\n")
    return lines.encode("latin-1") + (b"" if head else body)  # HEAD: headers only


class _Handler(http.server.BaseHTTPRequestHandler):
    """One client connection (keep-alive). The stdlib parses the request line's version,
    the headers and ``Connection``; this class adds a stricter request line, header lines of
    at most 8 KiB, Content-Length bodies only, the limits above and JSON error bodies.
    """

    protocol_version = "HTTP/1.1"
    server: _HttpServer
    deadline: float | None = None
    idle_since: float | None = None  # waiting for a request's first byte since then
    expired = False

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
        self.idle_since = time.monotonic()  # from now on another connection may close this one
        try:
            waiting = self.rfile.peek(1)
        except OSError:
            return
        finally:
            self.idle_since = None
        if not waiting:
            return  # closed by the client, or for a new connection, or idle past the timeout
        try:
            request = self._read_request()
        except (_Expired, TimeoutError):  # a byte came, then not the whole request in time
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
        target, body, ticket = request
        with ticket:  # held until the answer is sent: a client that does not read holds it
            status, payload = self.server.api.handle(self.command, target, body)
            del body
            ticket.charge(len(payload), force=True)
            close = self.close_connection or self.server.closing
            if not self._send(status, payload, close, self.command == "HEAD"):
                close = True
        self.close_connection = close

    def _readline(self) -> bytes:
        line = self.rfile.readline(_MAX_LINE + 1)
        if self.expired:
            raise _Expired
        return line

    def _read_request(self) -> tuple[str, bytes, Ticket] | None:
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
        ticket = self.server.budget.ticket()
        try:  # the body and the Python objects it decodes to, before reading it
            ticket.charge(JSON_FACTOR * length)
        except ServingError as err:
            raise _HttpError(err.http_status, err.message) from None
        try:
            if length and self.headers.get("Expect", "").lower() == "100-continue":
                self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = self.rfile.read(length) if length else b""
            if self.expired:
                raise _Expired
            if len(body) < length:
                raise _HttpError(400, f"Request body ended after {len(body)} of {length} bytes")
        except BaseException:
            ticket.close()
            raise
        return parts[1], body, ticket

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
        self._send(code, error_body(message or _reason(code)), close=True)

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


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    closing = False  # set by drain(): answer what is in flight, then close

    def __init__(self, address: tuple[str, int], api: RestApi, *, max_connections: int,
                 timeout_s: float, max_body: int, budget: MemoryBudget) -> None:
        self.api = api
        self.timeout_s = timeout_s
        self.max_body = max_body
        self.budget = budget
        self.max_connections = max_connections
        self.connections = 0  # slots held: a handler's slot comes back after finish()
        self._slot_freed = threading.Condition()
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
        if not self._take_slot(0) and not self._close_idle():
            try:  # refuse at once rather than queue behind slow clients
                request.settimeout(1.0)
                request.sendall(response_bytes(503, error_body("Too many connections"), True))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def _close_idle(self) -> bool:
        """Close the connection idle longest and take its slot (False: none is idle). Idle
        connections cost TF Serving's event loop nothing, so here they must not lock out real
        requests either; HTTP clients reconnect when an idle keep-alive connection closes."""
        with self._live_lock:
            idle = [(since, id(c), c) for c in self._live if (since := c.idle_since) is not None]
        if not idle:
            return False
        with contextlib.suppress(OSError):
            min(idle)[2].sock.shutdown(socket.SHUT_RDWR)  # its read returns EOF: it ends
        return self._take_slot(2.0)

    def _take_slot(self, timeout: float) -> bool:
        with self._slot_freed:
            if not self._slot_freed.wait_for(
                    lambda: self.connections < self.max_connections, timeout):
                return False
            self.connections += 1
            return True

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._slot_freed:
                self.connections -= 1
                self._slot_freed.notify()

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

    ``budget`` is the memory budget shared with the gRPC front end (default: its own, of
    :func:`~forgekit.serving.budget.default_limit` bytes).
    """

    def __init__(self, core: ServerCore, host: str, port: int, *, max_connections: int = 32,
                 timeout_s: float = 30.0, max_body: int = 16 * 1024 * 1024,
                 budget: MemoryBudget | None = None) -> None:
        cls = _HttpServer6 if ":" in host else _HttpServer
        self._server = cls((host, port), RestApi(core), max_connections=max_connections,
                           timeout_s=timeout_s, max_body=max_body,
                           budget=budget or MemoryBudget(default_limit(max_body)))
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
