"""``forgekit serve`` as a program: TF Serving's flags, loopback binding, SIGTERM, start-up errors."""

from __future__ import annotations

import http.client
import ipaddress
import json
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from forgekit.quiet import QUIET_ENV
from forgekit.serving import ModelServer, free_port
from forgekit.serving.demo import export_demo_model
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    export_demo_model(root / "demo" / "1", "single")
    export_demo_model(root / "spare", "single", scale=2)
    return root / "demo"


def _serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "forgekit.serving", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**QUIET_ENV, "PATH": "/usr/bin:/bin"})


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback  # gRPC uses ::ffff:


def _get(port: int, path: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_forgekit_serve_takes_tf_serving_flags_binds_loopback_and_stops_on_sigterm(base, tmp_path):
    grpc_port, rest_port = free_port(), free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "forgekit.cli", "serve", "--port", str(grpc_port),
         f"--rest_api_port={rest_port}", "--model_name", "demo", f"--model_base_path={base}",
         "--file_system_poll_wait_seconds=1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**QUIET_ENV, "PATH": "/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                status, body = _get(rest_port, "/v1/models/demo")
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not answer"
                time.sleep(0.1)
        assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
        listening = [c.laddr for c in psutil.Process(proc.pid).net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN]
        assert sorted(a.port for a in listening) == sorted([grpc_port, rest_port])
        assert all(_loopback(a.ip) for a in listening), listening  # safe default
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert f"Running gRPC ModelServer at 127.0.0.1:{grpc_port}" in text
    assert f"Exporting HTTP/REST API at:127.0.0.1:{rest_port}" in text
    assert "Server stopped" in text


def test_rest_port_zero_disables_rest_and_poll_zero_scans_once(base, tmp_path):
    demo = tmp_path / "demo"
    demo.mkdir()
    (base / "1").rename(demo / "1")
    try:
        with ModelServer(demo, model_name="demo", rest_api_port=0,
                         file_system_poll_wait_seconds=0) as server:
            assert server.rest_api_port == 0
            listening = {c.laddr.port for c in psutil.Process(server.pid).net_connections("tcp")
                         if c.status == psutil.CONN_LISTEN}
            assert listening == {server.port}  # gRPC only: no REST socket at all
            client = server.client("grpc")
            assert client.status("demo")["model_version_status"][0]["version"] == "1"
            _reload_with_label(server, demo)  # gRPC HandleReloadConfigRequest
            assert client.predict("demo", [[1, 2, 3, 4]], label="stable") == client.predict(
                "demo", [[1, 2, 3, 4]], version=1)
            (base.parent / "spare").rename(demo / "2")
            time.sleep(1.5)  # several default poll periods: with 0 nobody looks again
            assert [s["version"] for s in client.status("demo")["model_version_status"]] == ["1"]
            client.close()
        assert server.returncode == 0
    finally:
        (demo / "1").rename(base / "1")


def _reload_with_label(server: ModelServer, base) -> None:
    import grpc
    from google.protobuf import text_format
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(f'model_config_list {{ config {{ name: "demo" base_path: "{base}" '
                      'model_platform: "tensorflow" version_labels { key: "stable" value: 1 } '
                      '} }', request.config)
    with grpc.insecure_channel(server.grpc_url.removeprefix("grpc://")) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        unknown = model_management_pb2.ReloadConfigRequest()
        text_format.Parse('model_config_list { config { name: "x" base_path: "rel" '
                          'model_platform: "tensorflow" } }', unknown.config)
        with pytest.raises(grpc.RpcError) as info:
            stub.HandleReloadConfigRequest(unknown, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        response = stub.HandleReloadConfigRequest(request, timeout=10)
        assert response.status.error_code == 0


def test_labels_at_start_up_need_the_flag_like_tf_serving(base, tmp_path):
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "demo" base_path: "{base}" '
                      'model_platform: "tensorflow" version_labels { key: "stable" value: 1 } } }')
    server = ModelServer(model_config_file=config, model_name="demo", startup_timeout=60)
    with pytest.raises(RuntimeError) as info:
        server.start()
    assert server.returncode == 1
    assert ("Failed to start server. Error: FAILED_PRECONDITION: Request to assign label to "
            "version 1 of model demo, which is not currently available for inference"
            ) in str(info.value)


@pytest.mark.parametrize(("args", "status", "message"), [
    (["--model_base_path=models/demo"], 1,
     "Expected model default to have an absolute path or URI; got base_path()=models/demo"),
    ([], 1, "Both server_options.model_base_path and server_options.model_config_file are "
            "empty!"),
    (["--model_config_file=/nonexistent/models.config"], 1, "Failed to start server"),
    (["--model_base_path=/m", "--enable_batching"], 2, "unrecognized arguments"),
    (["--model_base_path=/m", "--grpc_max_threads=0"], 2, "must be at least 1, got 0"),
    (["--help"], 0, "--file_system_poll_wait_seconds"),
])
def test_bad_command_lines_fail_fast_and_say_why(args, status, message):
    done = _serve(*args)
    assert done.returncode == status, done.stdout + done.stderr
    assert message in done.stdout + done.stderr


def test_port_in_use_is_a_start_up_error(base):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(f"--port={port}", f"--model_base_path={base}", "--model_name=demo",
                      timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Failed to start server. Error: UNAVAILABLE" in done.stderr


def test_server_exits_when_the_process_that_started_it_dies(base):
    code = ("import time\nfrom forgekit.serving import ModelServer\n"
            f"server = ModelServer({str(base)!r}, model_name='demo').start()\n"
            "print(server.pid, flush=True)\ntime.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**QUIET_ENV, "PATH": "/usr/bin:/bin"})
    try:
        pid = int(parent.stdout.readline())
        server = psutil.Process(pid)
    finally:
        parent.kill()  # no clean-up code runs: like a crashed notebook kernel
        parent.wait()
    try:
        server.wait(timeout=15)  # raises TimeoutExpired if the server outlives its parent
        assert not server.is_running()
    finally:
        if server.is_running():
            server.kill()
