"""The server binds its own ports and puts back the process state it changed (issue 25)."""

from __future__ import annotations

import logging
import signal
import threading
import urllib.error
import urllib.request

from forgekit.serving.config import parse_flags
from forgekit.serving.process import InProcessServer, ModelServer
from forgekit.serving.server import serve


def test_ports_not_given_are_bound_by_the_server_and_read_from_its_log(tmp_path):
    """No port is probed free, released and handed over (a race under pytest -n 2): the server
    gets --port=0 / --rest_api_port=-1 and reports what it bound."""
    server = ModelServer(tmp_path, model_name="m")
    server._choose_ports()
    assert "--port=0" in server.args() and "--rest_api_port=-1" in server.args()
    server._log_text = "I forgekit.serving] Running gRPC ModelServer at 127.0.0.1:41234 ...\n"
    assert not server._bound_ports()  # REST not open yet: not ready
    server._log_text += "I forgekit.serving] Exporting HTTP/REST API at:127.0.0.1:41235 ...\n"
    assert server._bound_ports() and (server.port, server.rest_api_port) == (41234, 41235)
    given = ModelServer(tmp_path, port=9000, rest_api_port=0)  # given ports are kept as given
    given._choose_ports()
    assert "--port=9000" in given.args() and "--rest_api_port=0" in given.args()


def test_in_process_server_binds_port_zero_and_restores_the_logger(tmp_path):
    logger = logging.getLogger("forgekit.serving")
    before = (logger.level, logger.propagate, list(logger.handlers))
    with InProcessServer(tmp_path, model_name="m", file_system_poll_wait_seconds=0) as server:
        assert server.port > 0 and server.rest_api_port > 0 and server.port != server.rest_api_port
        try:
            urllib.request.urlopen(server.rest_url + "/v1/models/m", timeout=5)
        except urllib.error.HTTPError as exc:  # no version loaded: TF Serving's 404
            assert exc.code == 404
        assert logger.propagate is False
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_serve_in_the_main_thread_puts_the_signal_handlers_back(tmp_path):
    assert threading.current_thread() is threading.main_thread()
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    stop = threading.Event()
    stop.set()  # shut down as soon as the ports are open
    options = parse_flags([f"--model_base_path={tmp_path}", "--model_name=m", "--port=0",
                           "--rest_api_port=-1", "--file_system_poll_wait_seconds=0"])
    assert serve(options, stop) == 0
    assert {sig: signal.getsignal(sig) for sig in before} == before
