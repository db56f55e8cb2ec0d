"""Hostile and concurrent clients: every bad request gets a clean 4xx, the server stays right.

Over 200 malformed requests are generated here and sent over raw sockets (bad JSON, bad
instances/inputs, wrong names, shapes and dtypes, unknown models/versions/labels, path
traversal, protocol abuse, bodies over the limit, slow clients). Each must be answered with a
4xx status and a JSON ``{"error": ...}`` body; afterwards the server must still answer
correctly. Concurrent REST and gRPC clients must all get the right predictions.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
import pytest

from forgekit.serving import ModelServer, ServingError
from forgekit.serving.demo import export_demo_model

pytestmark = pytest.mark.slow

MAX_BODY = 1024 * 1024
TIMEOUT_S = 1.0
GOOD_X = [[1.0, 2.0, 3.0, 4.0]]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    export_demo_model(root / "single" / "1", "single")
    export_demo_model(root / "multi" / "1", "multi")
    return root


@pytest.fixture(scope="module")
def server(models):
    config = models / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: "{n}" base_path: "{models / n}" model_platform: "tensorflow" }}\n'
        for n in ("single", "multi")) + "}\n")
    with ModelServer(model_config_file=config, model_name="single",
                     extra_args=[f"--max_request_bytes={MAX_BODY}",
                                 f"--rest_api_timeout_in_ms={int(TIMEOUT_S * 1000)}",
                                 "--rest_api_num_threads=16"]) as srv:
        yield srv


@cache
def _signature(path: str):
    import tensorflow as tf

    return tf.saved_model.load(path).signatures["serving_default"]


def direct(models, name: str, **inputs) -> dict[str, np.ndarray]:
    out = _signature(str(models / name / "1"))(**{k: np.asarray(v, np.float32)
                                                  for k, v in inputs.items()})
    return {k: v.numpy() for k, v in out.items()}


# ------------------------------------------------------------------ raw HTTP


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body[:length]


def send_raw(port: int, data: bytes, *, half_close: bool = False) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and stop reading early; its answer still counts
        return read_response(sock)


def http(method: str, path: str, body: bytes | str = b"", headers: dict | None = None,
         version: str = "HTTP/1.1") -> bytes:
    body = body.encode() if isinstance(body, str) else body
    all_headers = {"Host": "127.0.0.1", "Content-Length": str(len(body)), "Connection": "close",
                   **(headers or {})}
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n"
                                                      for k, v in all_headers.items())
    return head.encode("latin-1") + b"\r\n" + body


def predict(model: str, body: object) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body)
    return http("POST", f"/v1/models/{model}:predict", data)


def hostile_requests() -> list[tuple[str, bytes, bool]]:
    """(description, raw request, half-close after sending)."""
    cases: list[tuple[str, bytes, bool]] = []

    def add(label: str, data: bytes, half_close: bool = False) -> None:
        cases.append((label, data, half_close))

    bad_json = [b"", b"   ", b"{", b"}", b"[", b"null", b"true", b"42", b'"text"', b"[1, 2]",
                b"{'instances': 1}", b'{"instances": [1,}', b'{"instances": [[1,2,3,4]]} x',
                b"\xff\xfe\x00garbage", b'{"instances": [[1,2,3,4]]', b"{" * 5000,
                b"[" * 200000, b'{"instances": "\\ud800"}', b"NaN", b'{"a":' * 10000,
                b"\x00" * 100, b'{"instances": [[1,2,3,4]], "instances": 5}']
    for model in ("single", "multi"):
        for i, body in enumerate(bad_json):
            add(f"bad json {i} -> {model}", predict(model, body))

    for model, inp, good in (("single", "x", [1, 2, 3, 4]), ("multi", "features", [1, 2, 3])):
        structures = [
            {"instances": []}, {"instances": {}}, {"instances": 5}, {"instances": None},
            {"inputs": None}, {"inputs": {}}, {}, {"foo": [good]},
            {"instances": [good], "inputs": [good]},
            {"inputs": {"wrong": [good]}}, {"instances": [{"wrong": good}]},
            {"instances": [{inp: good, "extra": 1}]}, {"instances": [good, {inp: good}]},
            {"instances": [{inp: good}, good]},
            {"signature_name": 5, "instances": [good]},
            {"signature_name": None, "instances": [good]},
            {"signature_name": ["serving_default"], "instances": [good]},
            {"signature_name": "nope", "instances": [good]},
            {"signature_name": "__saved_model_init_op", "instances": [good]},
        ]
        for i, body in enumerate(structures):
            add(f"structure {i} -> {model}", predict(model, body))
        n = len(good)
        shapes = [[good[:-1]], [good + [1]], good, [[good]], [good[:1], good],
                  [good, good[:-1]], [[]], {"inputs": good[0]}, {"inputs": [[]]},
                  {"inputs": [good[:-1]]}]
        for i, body in enumerate(shapes):
            add(f"shape {i} -> {model}",
                predict(model, body if isinstance(body, dict) else {"instances": body}))
        dtypes = [["a"] * n, [True] * n, [None] * n, [{"b64": "AA=="}] * n, [1e39] * n,
                  [16777217] * n, [{"x": 1}] * n, [[1]] * n, [10 ** 400] * n, good[:-1] + ["4"]]
        for i, row in enumerate(dtypes):
            add(f"dtype {i} -> {model}", predict(model, {"instances": [row]}))

    for verb in ("classify", "regress"):
        for i, body in enumerate([
                b"", b"[]", b'{"examples": 5}', b'{"examples": []}', b'{"examples": [[1]]}',
                b'{"examples": [{"x": [1, "a"]}]}', b'{"examples": [{"x": null}]}',
                b'{"examples": [{"x": {"b64": "%%%"}}]}', b'{"examples": [{"x": 1e39}]}',
                b'{"examples": [{"x": 18446744073709551615}]}', b'{"context": 1}',
                b'{"examples": [{"x": 1.0}]}',  # a predict signature: wrong method
                b'{"examples": [{"x": 1.0}], "signature_name": "nope"}']):
            add(f"{verb} {i}", http("POST", f"/v1/models/single:{verb}", body))

    names = ["nope", "..", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd",
             "single%2F..%2Fmulti", "single%00", "%00", "a" * 3000, "%ff%fe", "single%20",
             "SINGLE", "~root", "single;rm", "$(reboot)", "%252e%252e", "."]
    for name in names:
        add(f"model {name[:20]} status", http("GET", f"/v1/models/{name}"))
        add(f"model {name[:20]} predict", predict(name, {"instances": GOOD_X}))
    for suffix in ("/versions/0", "/versions/999", "/versions/99999999999999999999999",
                   "/versions/-1", "/versions/1.5", "/labels/nope", "/labels/..%2F..",
                   "/labels/", "/versions/1/labels/x", "/../multi", "/metadata/extra"):
        add(f"address {suffix} status", http("GET", f"/v1/models/single{suffix}"))
        add(f"address {suffix} predict",
            http("POST", f"/v1/models/single{suffix}:predict", json.dumps({"instances": GOOD_X})))
    for path in ("/v1/../etc/passwd", "/etc/passwd", "//v1/models/single", "/v1/models",
                 "/v1/models/single:predict", "/v1", "http://evil/v1/models/nope"):
        add(f"path {path}", http("GET", path))

    good_body = json.dumps({"instances": GOOD_X})
    protocol = [
        b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET /v1/models/single HTTP/2.0\r\n\r\n",
        b"GET /v1/models/single\r\n\r\n", b"GET  /v1/models/single HTTP/1.1\r\n\r\n",
        b"GET /v1/models/single HTTP/1.1\r\nBadHeader\r\n\r\n",
        b"GET /v1/models/single HTTP/1.1\r\n: empty-name\r\n\r\n",
        b"GET /v1/models/single HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n",
        b"GET /v1/models/single HTTP/1.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
        b"GET /v1/models/\xff\xfe HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),  # a TLS hello
        http("POST", "/v1/models/single:predict", good_body, {"Content-Length": "abc"}),
        http("POST", "/v1/models/single:predict", good_body, {"Content-Length": "-5"}),
        http("POST", "/v1/models/single:predict", good_body, {"Content-Length": "1, 2"}),
        http("POST", "/v1/models/single:predict", good_body, {"Content-Length": "\u00b2"}),
        http("GET", "/v1/models/single/versions/\u00b9"),
        http("POST", "/v1/models/single:predict", good_body,
             {"Content-Length": "99999999999999999999"}),
        http("POST", "/v1/models/single:predict", good_body,
             {"Transfer-Encoding": "chunked"}),
        http("POST", "/v1/models/single:predict", good_body[:-5]),
        http("POST", "/v1/models/single:predict", b"x" * (MAX_BODY + 1)),
        http("POST", "/v1/models/single:predict", b"", {"Content-Length": str(10 ** 10)}),
        http("POST", "/v1/models/single:predict", b"",
             {"Content-Length": str(MAX_BODY * 2), "Expect": "100-continue"}),
        http("POST", "/v1/models/single", good_body),
        http("POST", "/v1/models/single/metadata", good_body),
    ]
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "FOO"):
        protocol.append(http(method, "/v1/models/single:predict", good_body))
    for i, data in enumerate(protocol):
        add(f"protocol {i}", data)
    cl = good_body.encode()
    conflicting = (b"POST /v1/models/single:predict HTTP/1.1\r\nContent-Length: 5\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(cl) + cl)
    add("conflicting content-length", conflicting)
    add("body shorter than content-length, then EOF",
        http("POST", "/v1/models/single:predict", good_body,
             {"Content-Length": str(len(good_body) + 50)}), half_close=True)
    add("request line cut by EOF", b"GET /v1/models/sin", half_close=True)
    return cases


def test_two_hundred_hostile_requests_each_get_a_clean_4xx(server, models):
    cases = hostile_requests()
    assert len(cases) >= 200
    port = server.rest_api_port
    failures = []
    for label, data, half_close in cases:
        try:
            status, body = send_raw(port, data, half_close=half_close)
            error = json.loads(body).get("error")
            if not (400 <= status < 500 and isinstance(error, str) and error):
                failures.append(f"{label}: {status} {body[:200]!r}")
        except Exception as exc:
            failures.append(f"{label}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)
    assert server.running
    with server.client() as client:
        got = client.predict("single", GOOD_X)["predictions"]
    np.testing.assert_allclose(np.array(got, np.float32),
                               direct(models, "single", x=GOOD_X)["output_0"], rtol=1e-6)


def test_slow_clients_get_408_and_do_not_block_others(server, models):
    """Clients that never finish their request are cut with a 408 (not left hanging until
    their own socket timeout), and a normal client is answered while they are connected."""
    port = server.rest_api_port
    body = json.dumps({"instances": GOOD_X}).encode()
    full = http("POST", "/v1/models/single:predict", body)
    partials = [full[:10], full[:len(full) - len(body) - 2], full[:-5]]  # line, headers, body
    results: dict[object, tuple[int, bytes]] = {}
    connected = threading.Barrier(len(partials) + 2)  # every slow client + the normal one
    answered = threading.Event()  # set when any slow client has its answer

    def slow(i: int, data: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            sock.sendall(data)
            connected.wait()
            results[i] = read_response(sock)  # ConnectionError/timeout if never answered
            answered.set()

    def trickle() -> None:  # one byte at a time: never idle for long, never finished
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            sock.setblocking(True)
            sock.sendall(full[:1])
            connected.wait()
            try:
                for byte in full[1:]:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.2)
            except OSError:
                pass  # the server closed the read side: it has answered
            results["trickle"] = read_response(sock)
            answered.set()

    threads = [threading.Thread(target=slow, args=(i, d)) for i, d in enumerate(partials)]
    threads.append(threading.Thread(target=trickle))
    for t in threads:
        t.start()
    connected.wait()
    with server.client(timeout=5) as client:  # a normal client meanwhile
        got = client.predict("single", GOOD_X)
    blocked = answered.is_set()
    for t in threads:
        t.join(20)
    np.testing.assert_allclose(np.array(got["predictions"], np.float32),
                               direct(models, "single", x=GOOD_X)["output_0"], rtol=1e-6)
    assert set(results) == {0, 1, 2, "trickle"}
    for key, (status, payload) in results.items():
        assert status == 408 and "Timed out" in json.loads(payload)["error"], key
    assert not blocked, "the normal request was answered only after a slow client was cut"


def test_connections_beyond_the_limit_are_refused_at_once(server):
    port = server.rest_api_port
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(16)]
    try:
        for sock in idle:  # one request each: every connection now holds a server slot
            sock.sendall(http("GET", "/v1/models/single", headers={"Connection": "keep-alive"}))
            assert read_response(sock)[0] == 200
        status, body = send_raw(port, http("GET", "/v1/models/single"))
        assert status == 503 and json.loads(body) == {"error": "Too many connections"}
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while True:  # slots come back once the idle connections are gone
        status, _ = send_raw(port, http("GET", "/v1/models/single"))
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200


def test_hostile_grpc_requests_get_client_errors(server):
    import grpc
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from forgekit.serving.grpc_api import ndarray_to_tensor

    def request(name="single", inputs=None, **spec) -> predict_pb2.PredictRequest:
        req = predict_pb2.PredictRequest()
        req.model_spec.name = name
        for key, value in spec.items():
            if key == "version":
                req.model_spec.version.value = value
            else:
                setattr(req.model_spec, key, value)
        for key, tensor in (inputs if inputs is not None else
                            {"x": ndarray_to_tensor(np.array(GOOD_X, np.float32))}).items():
            req.inputs[key].CopyFrom(tensor)
        return req

    def raw_tensor(dtype, dims, **fields) -> tensor_pb2.TensorProto:
        t = tensor_pb2.TensorProto(dtype=dtype, **fields)
        for d in dims:
            t.tensor_shape.dim.add().size = d
        return t

    good = ndarray_to_tensor(np.array(GOOD_X, np.float32))
    cases = [
        (request("nope"), "NOT_FOUND"),
        (request(""), "INVALID_ARGUMENT"),
        (request(version=7), "NOT_FOUND"),
        (request(version_label="nope"), "INVALID_ARGUMENT"),
        (request(signature_name="nope"), "FAILED_PRECONDITION"),
        (request(inputs={}), "INVALID_ARGUMENT"),
        (request(inputs={"x": good, "y": good}), "INVALID_ARGUMENT"),
        (request(inputs={"y": good}), "INVALID_ARGUMENT"),
        (request(inputs={"x": ndarray_to_tensor(np.array(GOOD_X))}), "INVALID_ARGUMENT"),
        (request(inputs={"x": ndarray_to_tensor(np.array([["a"] * 4]))}), "INVALID_ARGUMENT"),
        (request(inputs={"x": ndarray_to_tensor(np.ones((1, 3), np.float32))}),
         "INVALID_ARGUMENT"),
        (request(inputs={"x": raw_tensor(types_pb2.DT_FLOAT, [10 ** 9, 4])}),
         "INVALID_ARGUMENT"),
        (request(inputs={"x": raw_tensor(types_pb2.DT_FLOAT, [-1, 4])}), "INVALID_ARGUMENT"),
        # one value filling a shape larger than any message: a few bytes, no huge allocation
        (request(inputs={"x": raw_tensor(types_pb2.DT_FLOAT, [MAX_BODY // 16 + 1, 4],
                                         float_val=[1.0])}), "INVALID_ARGUMENT"),
        (request(inputs={"x": raw_tensor(types_pb2.DT_FLOAT, [1, 4],
                                         tensor_content=b"\x00" * 7)}), "INVALID_ARGUMENT"),
        (request(inputs={"x": raw_tensor(types_pb2.DT_FLOAT, [1, 4], float_val=[1, 2])}),
         "INVALID_ARGUMENT"),
        (request(inputs={"x": raw_tensor(types_pb2.DT_RESOURCE, [1])}), "INVALID_ARGUMENT"),
        (request(inputs={"x": ndarray_to_tensor(np.zeros((MAX_BODY // 4 + 8, 4),
                                                         np.float32), typed=False)}),
         "RESOURCE_EXHAUSTED"),
    ]
    filtered = request()
    filtered.output_filter.extend(["output_0", "output_0"])
    cases.append((filtered, "INVALID_ARGUMENT"))
    unknown = request()
    unknown.output_filter.append("nope")
    cases.append((unknown, "INVALID_ARGUMENT"))
    with grpc.insecure_channel(server.grpc_url.removeprefix("grpc://")) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for req, code in cases:
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(req, timeout=10)
            assert info.value.code().name == code, (req.model_spec, info.value.details())
            assert info.value.details()
        assert stub.Predict(request(), timeout=10).outputs["output_0"].float_val


def test_concurrent_clients_all_get_the_right_answers(server, models):
    rng = np.random.default_rng(0)
    jobs = []
    for i in range(240):
        model = "single" if i % 2 else "multi"
        width = 4 if model == "single" else 3
        x = rng.normal(size=(int(rng.integers(1, 5)), width)).astype(np.float32)
        jobs.append((model, x, "grpc" if i % 3 == 0 else "rest", bool(i % 5)))
    clients = {"rest": server.client("rest"), "grpc": server.client("grpc")}

    def run(job):
        model, x, transport, rows = job
        client = clients[transport]
        if rows:
            return client.predict(model, x)["predictions"]
        return client.predict(model, inputs=x)["outputs"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(run, jobs))
    for (model, x, _, rows), answer in zip(jobs, answers, strict=True):
        want = direct(models, model, **{"x" if model == "single" else "features": x})
        if model == "single":
            got = {"output_0": answer}
        elif rows:
            got = {name: [row[name] for row in answer] for name in want}
        else:
            got = answer
        for name, expected in want.items():
            np.testing.assert_allclose(np.array(got[name], np.float32), expected, rtol=1e-6)
    for client in clients.values():
        client.close()
    with pytest.raises(ServingError):
        server.client().predict("single", [[1.0]])  # and errors still come back as errors
