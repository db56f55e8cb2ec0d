"""Memory under hostile load: 32 clients send maximum-size JSON bodies at once.

A 16 MiB JSON body becomes several hundred MB of Python objects while it is decoded, so
without a bound 32 of them take gigabytes (Binder kills a user server at 2 GB). The server's
resident memory is sampled with psutil while the bodies arrive; it must stay under 1 GiB,
every client must get a clean answer (200, or 503/429 with a JSON error), and the server
must answer correctly afterwards. Heavy: run this file on its own.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading

import numpy as np
import psutil
import pytest

from forgekit.serving import ModelServer
from forgekit.serving.demo import export_demo_model

pytestmark = pytest.mark.slow

CLIENTS = 32
MAX_BODY = 16 * 1024 * 1024  # the server's default --max_request_bytes
LIMIT = 1024 ** 3
ROW = "[0.5, -1.25, 3.0, 0.125]"


def max_size_body() -> bytes:
    """A predict body of rows as close to MAX_BODY as whole rows allow."""
    head, tail = b'{"instances": [', b"]}"
    rows = (MAX_BODY - len(head) - len(tail)) // (len(ROW) + 2)
    body = head + ", ".join([ROW] * rows).encode() + tail
    assert MAX_BODY - 64 < len(body) <= MAX_BODY
    return body


def exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` while reading the answer, which may come before the body is sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        def send() -> None:
            with contextlib.suppress(OSError):  # refused early: the server stopped reading
                sock.sendall(request)

        sender = threading.Thread(target=send)
        sender.start()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed without an answer after {data[:100]!r}")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE).group(1))
        while len(body) < length:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            body += chunk
        sender.join(120)
        return int(head.split(b" ", 2)[1]), body[:length]


def test_32_concurrent_maximum_size_bodies_stay_under_1_gib(tmp_path):
    export_demo_model(tmp_path / "single" / "1", "single")
    body = max_size_body()
    rows = body.count(b"], [") + 1
    request = (b"POST /v1/models/single:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    with ModelServer(tmp_path / "single", model_name="single") as server:
        with server.client() as client:
            client.wait_until_available("single")
        process = psutil.Process(server.pid)
        baseline = process.memory_info().rss
        peak, stop = [baseline], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], process.memory_info().rss)
                except psutil.Error:
                    return
                stop.wait(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        answers: list[tuple[int, bytes] | Exception] = [None] * CLIENTS
        start = threading.Barrier(CLIENTS)

        def client_job(i: int) -> None:
            start.wait()
            try:
                answers[i] = exchange(server.rest_api_port, request)
            except Exception as exc:  # reported below, with the others
                answers[i] = exc

        threads = [threading.Thread(target=client_job, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        stop.set()
        sampler.join()
        print(f"\nserver RSS: baseline {baseline / 2**20:.0f} MiB, peak {peak[0] / 2**20:.0f} "
              f"MiB under {CLIENTS} concurrent {len(body) / 2**20:.1f} MiB bodies")

        assert server.running
        problems = [f"client {i}: {a!r}"[:300] for i, a in enumerate(answers)
                    if not isinstance(a, tuple)]
        assert not problems, "\n".join(problems)
        statuses = [status for status, _ in answers]
        for status, payload in answers:
            answer = json.loads(payload)
            if status == 200:
                assert len(answer["predictions"]) == rows
            else:
                assert status in (503, 429) and answer["error"], (status, payload[:200])
        print(f"answers: {statuses.count(200)} x 200, {len(statuses) - statuses.count(200)} "
              "refused")
        assert 200 in statuses  # refusing everything would also keep memory low
        x = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
        with server.client() as client:  # and it still answers, correctly
            got = client.predict("single", x)["predictions"]
        import tensorflow as tf

        direct = tf.saved_model.load(str(tmp_path / "single" / "1")).signatures[
            "serving_default"](x=x)["output_0"].numpy()
        np.testing.assert_allclose(np.array(got, np.float32), direct, rtol=1e-6)
        assert peak[0] <= LIMIT, f"peak RSS {peak[0] / 2**20:.0f} MiB over 1 GiB"
