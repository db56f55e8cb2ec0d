"""Run ``forgekit serve`` as a subprocess from Python: start, wait until it answers, stop.

    with ModelServer("/abs/path/models/demo", model_name="demo") as server:
        client = server.client()            # REST; server.client("grpc") for gRPC
        client.predict("demo", [[1.0, 2.0, 3.0, 4.0]])

The server runs in its own process (as TF Serving would), logging to a temporary file that
:meth:`ModelServer.log_text` returns. Ports not given are bound by the server itself (the OS
picks) and read back from its log. Stopping sends
SIGTERM, then SIGKILL after ``grace_period`` seconds.

:class:`InProcessServer` runs the same ``serve()`` code, flags and protocol on a thread of the
calling process instead: a notebook kernel that already imported TensorFlow then pays no second
TensorFlow (a ``forgekit serve`` process idles at several hundred MiB), which keeps a lesson
within Binder's memory limit.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from forgekit.quiet import child_env

# forgekit serve --rest_api_port=-1: the OS picks the REST port (0 disables REST, as in TF
# Serving). The bound ports are read back from the lines tensorflow_model_server logs.
ANY_FREE_PORT = -1
_BOUND = {"port": re.compile(r"Running gRPC ModelServer at \S*:(\d+) \.\.\."),
          "rest_api_port": re.compile(r"Exporting HTTP/REST API at:\S*:(\d+) \.\.\.")}
_KEEP_MARK = "_forgekit_in_process_server"  # on InProcessServer's log handlers
_logger_state: tuple[int, bool] | None = None  # forgekit.serving's level and propagate, saved


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ModelServer:
    """``forgekit serve`` in a subprocess, as a context manager.

    Args:
        model_base_path: folder of numeric version folders (made absolute here).
        model_name: the model's name in URLs.
        model_config_file: a model_config_list file instead of the two above.
        port / rest_api_port: gRPC / REST ports; None picks free ones. ``rest_api_port=0``
            disables REST, as in TF Serving.
        file_system_poll_wait_seconds: how often to look for new versions. Whole seconds
            become TF Serving's ``--file_system_poll_wait_seconds``; a fraction (lessons and
            tests) becomes ``--forgekit_poll_interval_seconds`` (forgekit only), which also
            paces a ``--model_config_file_poll_wait_seconds`` given in ``extra_args``.
        extra_args: more ``--flag=value`` arguments for the server.
        startup_timeout: seconds to wait for the server to answer.
        grace_period: seconds between SIGTERM and SIGKILL when stopping.
    """

    def __init__(self, model_base_path: str | os.PathLike[str] | None = None,
                 model_name: str = "default", *,
                 model_config_file: str | os.PathLike[str] | None = None,
                 port: int | None = None, rest_api_port: int | None = None,
                 host: str = "127.0.0.1", file_system_poll_wait_seconds: float = 1.0,
                 extra_args: Sequence[str] = (), startup_timeout: float = 120.0,
                 grace_period: float = 10.0) -> None:
        if (model_base_path is None) == (model_config_file is None):
            raise ValueError("give model_base_path or model_config_file (one of them)")
        self.model_name = model_name
        self.model_base_path = None if model_base_path is None else Path(model_base_path).resolve()
        self.model_config_file = (None if model_config_file is None
                                  else Path(model_config_file).resolve())
        self.host = host
        self.port = port
        self.rest_api_port = rest_api_port
        self._auto_ports: tuple[str, ...] = ()  # bound by the server, read from its log
        self.file_system_poll_wait_seconds = file_system_poll_wait_seconds
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.grace_period = grace_period
        self.returncode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._log_text = ""

    # ------------------------------------------------------------------ addresses

    @property
    def rest_url(self) -> str:
        """``http://host:port`` of the REST API."""
        return f"http://{self.host}:{self.rest_api_port}"

    @property
    def grpc_url(self) -> str:
        """``grpc://host:port`` of the gRPC API."""
        return f"grpc://{self.host}:{self.port}"

    def client(self, transport: str = "rest", **kwargs: Any):
        """A :class:`~forgekit.serving.client.Client` for this server ("rest" or "grpc")."""
        from forgekit.serving.client import Client

        if transport not in ("rest", "grpc"):
            raise ValueError("transport must be 'rest' or 'grpc'")
        return Client(self.rest_url if transport == "rest" else self.grpc_url, **kwargs)

    def args(self) -> list[str]:
        """The ``forgekit serve`` flags this server runs with."""
        args = [f"--port={self.port}", f"--rest_api_port={self.rest_api_port}",
                f"--grpc_host={self.host}", f"--rest_api_host={self.host}"]
        poll = float(self.file_system_poll_wait_seconds)
        if poll.is_integer():
            args.append(f"--file_system_poll_wait_seconds={int(poll)}")
        else:  # TF Serving takes whole seconds only: the faster pace is forgekit's flag
            args += ["--file_system_poll_wait_seconds=1", f"--forgekit_poll_interval_seconds={poll:g}"]
        if self.model_config_file is not None:
            args.append(f"--model_config_file={self.model_config_file}")
        else:
            args += [f"--model_name={self.model_name}",
                     f"--model_base_path={self.model_base_path}"]
        return args + self.extra_args

    # ------------------------------------------------------------------ lifecycle

    def _choose_ports(self) -> None:
        """Let the server bind the ports not given, and learn them from its log.

        A port found free here, released, then handed over races with every other process
        (two servers per lesson under ``pytest -n 2``). So the server gets ``--port=0`` (the OS
        picks) and ``--rest_api_port=-1`` (forgekit only: the OS picks), and
        :meth:`_bound_ports` reads what it bound from its start-up log lines.
        """
        self._auto_ports = tuple(n for n in ("port", "rest_api_port")
                                 if getattr(self, n) is None or n in self._auto_ports)
        if "port" in self._auto_ports:
            self.port = 0
        if "rest_api_port" in self._auto_ports:
            self.rest_api_port = ANY_FREE_PORT

    def _bound_ports(self) -> bool:
        """Fill in the ports the server bound, from its log; True once all are known."""
        for name in self._auto_ports:
            if getattr(self, name) in (0, ANY_FREE_PORT):
                found = _BOUND[name].search(self.log_text())
                if found is None:
                    return False
                setattr(self, name, int(found.group(1)))
        return True

    def start(self) -> ModelServer:
        """Start the server and wait until it answers; raises if it exits or times out."""
        if self._proc is not None:
            raise RuntimeError("server already started")
        self._choose_ports()
        fd, name = tempfile.mkstemp(prefix="forgekit-serve-", suffix=".log")
        self._log_path = Path(name)
        env = child_env({"PYTHONUNBUFFERED": "1",
                         "FORGEKIT_SERVE_PARENT_PID": str(os.getpid())})  # exits if we die
        with os.fdopen(fd, "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "forgekit.serving", *self.args()],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)  # a Ctrl-C in the notebook is not the server's
        return self._ready_or_stopped()

    def _ready_or_stopped(self) -> Self:
        """Wait until the server answers; stop it (and re-raise) if it never does."""
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        if not self._bound_ports():
            return False
        if self.rest_api_port:  # REST opens last, so it answering means both are up
            conn = http.client.HTTPConnection(self.host, self.rest_api_port, timeout=2)
            try:
                conn.request("GET", "/v1/models/" + (self.model_name or "default"))
                conn.getresponse().read()
                return True
            except OSError:
                return False
            finally:
                conn.close()
        try:
            with socket.create_connection((self.host, self.port), timeout=2):
                return True
        except OSError:
            return False

    def _wait_until_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(f"forgekit serve exited with status {code} while starting:\n"
                                   + self._tail())
            if self._answers():
                return
            time.sleep(0.1)
        raise TimeoutError(f"forgekit serve did not answer within {self.startup_timeout:g}s:\n"
                           + self._tail())

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after the grace period. Returns the exit status."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(self.grace_period)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.returncode = proc.returncode
        if self._log_path is not None:
            self._log_text = self.log_text()
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None
        return self.returncode

    @property
    def pid(self) -> int | None:
        """The server process id while it runs."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        """Everything the server has logged so far (kept after :meth:`stop`)."""
        if self._log_path is None:
            return self._log_text
        try:
            return self._log_path.read_text(errors="replace")
        except OSError:
            return self._log_text

    def _tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class InProcessServer(ModelServer):
    """The same server as :class:`ModelServer`, run on a thread of this process.

    Same arguments, addresses, clients and flags; only the process differs. ``stop()`` asks
    ``serve()`` to shut down (what SIGTERM does to the subprocess) and waits for it; a kernel
    restart ends it with the kernel. Log records of ``forgekit.serving`` are kept for
    :meth:`log_text`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._thread: Any = None
        self._stop_event: Any = None
        self._error: BaseException | None = None
        self._handler: Any = None
        self._lines: list[str] = []

    def start(self) -> InProcessServer:
        """Start ``serve()`` on a daemon thread and wait until it answers."""
        import logging
        import threading

        from forgekit.serving.config import parse_flags
        from forgekit.serving.server import serve

        if self._thread is not None:
            raise RuntimeError("server already started")
        self._choose_ports()
        options = parse_flags(self.args())
        lines = self._lines

        class _Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                lines.append(self.format(record))

        global _logger_state
        self._handler = _Keep()
        setattr(self._handler, _KEEP_MARK, True)
        self._handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname).1s forgekit.serving] %(message)s"))
        logger = logging.getLogger("forgekit.serving")
        if _logger_state is None:  # the first server running: remember what to restore
            _logger_state = (logger.level, logger.propagate)
        logger.addHandler(self._handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.propagate = False  # the kernel's own log handlers would print every line
        self._stop_event = threading.Event()

        def run() -> None:
            try:
                self.returncode = serve(options, self._stop_event)
            except BaseException as exc:  # reported by start() / stop(), never lost
                self._error = exc
                self.returncode = 1

        self._thread = threading.Thread(target=run, name="forgekit-serve", daemon=True)
        self._thread.start()
        return self._ready_or_stopped()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError(f"forgekit serve (in-process) stopped while starting: "
                                   f"{self._error!r}\n" + self._tail())
            if self._answers():
                return
            time.sleep(0.1)
        raise TimeoutError(f"forgekit serve (in-process) did not answer within "
                           f"{self.startup_timeout:g}s:\n" + self._tail())

    def stop(self) -> int | None:
        """Shut the server down cleanly (like SIGTERM) and wait for its thread."""
        import logging

        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop_event.set()
            thread.join(self.grace_period + 10)
        global _logger_state
        if self._handler is not None:
            logger = logging.getLogger("forgekit.serving")
            logger.removeHandler(self._handler)
            self._handler = None
            still = any(getattr(h, _KEEP_MARK, False) for h in logger.handlers)
            if not still and _logger_state is not None:  # the last server: as it was before
                logger.setLevel(_logger_state[0])
                logger.propagate = _logger_state[1]
                _logger_state = None
        return self.returncode

    @property
    def pid(self) -> int | None:
        """This process's id while the server thread runs (it shares the process)."""
        return os.getpid() if self.running else None

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def log_text(self) -> str:
        """Everything the server has logged so far (kept after :meth:`stop`)."""
        return "\n".join(self._lines)
