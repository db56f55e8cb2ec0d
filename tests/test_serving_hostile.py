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
    export_string_model(root / "strings" / "1")
    return root


def export_string_model(path) -> None:
    """A SavedModel whose input is a string tensor ``s`` ([-1]) -> its lengths ``n``."""
    import tensorflow as tf

    class Lengths(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="s")])
        def lengths(self, s):
            return {"n": tf.strings.length(s)}

    module = Lengths()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.lengths})


@pytest.fixture(scope="module")
def server(models):
    config = models / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: "{n}" base_path: "{models / n}" model_platform: "tensorflow" }}\n'
        for n in ("single", "multi", "strings")) + "}\n")
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
         "RESOURCE_EXHAUSTED"),  # 16 GB of zeros for TensorFlow: beyond the budget
        (request(inputs={"x": raw_tensor(types_pb2.DT_FLOAT, [-1, 4])}), "INVALID_ARGUMENT"),
        # one value filling a shape beyond the memory budget: refused before it is allocated
        (request(inputs={"x": raw_tensor(types_pb2.DT_FLOAT, [MAX_BODY, 4],
                                         float_val=[1.0])}), "RESOURCE_EXHAUSTED"),
        # valid for TensorFlow (an empty tensor), more than numpy can index: not INTERNAL
        (request(inputs={"x": raw_tensor(types_pb2.DT_FLOAT, [0, 2 ** 63 - 1])}),
         "INVALID_ARGUMENT"),
        (request(inputs={"x": raw_tensor(types_pb2.DT_FLOAT, [2 ** 62, 4])}),
         "INVALID_ARGUMENT"),  # 2**64 elements: not a TensorShape
        (request(inputs={"x": raw_tensor(types_pb2.DT_FLOAT, [1] * 255)}), "INVALID_ARGUMENT"),
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


def test_a_string_fill_is_charged_by_its_length_and_refused_before_it_is_allocated(server):
    """Issue 23's bomb at this server's size: one 2,000-byte string filling [100000] is
    200 MB once TensorFlow copies it into every element; counted at 8 bytes per element
    it passed the old limit. Refused now, without the server's memory moving."""
    import grpc
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from tests.test_serving_memory import PeakPss

    req = predict_pb2.PredictRequest()
    req.model_spec.name = "strings"
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"a" * 2000])
    tensor.tensor_shape.dim.add().size = 100_000
    req.inputs["s"].CopyFrom(tensor)
    assert req.ByteSize() < 2100
    with grpc.insecure_channel(server.grpc_url.removeprefix("grpc://")) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with PeakPss(server.pid) as memory, pytest.raises(grpc.RpcError) as info:
            stub.Predict(req, timeout=30)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "budget" in info.value.details()
        assert memory.growth < 100 * 2 ** 20, memory  # the fill alone is 200 MB
        tensor.tensor_shape.dim[0].size = 3  # the same request, sized sensibly, runs
        req.inputs["s"].CopyFrom(tensor)
        assert list(stub.Predict(req, timeout=30).outputs["n"].int_val) == [2000] * 3


# ------------------------------------------------------------------ in-process transport
# A RestServer and PredictionService over a fake model (no TensorFlow graph), so budgets and
# slots can be observed directly. Every wait has a bound: a hang fails the test.


class _Sig:
    name, inputs, outputs = "serving_default", {"x": None}, ("y",)


class _Servable:
    """Predicts one huge string for a one-value input, one small number otherwise."""

    HUGE = 32 * 2 ** 20

    def signature(self, name, rest=False):
        from forgekit.serving.tensors import InputInfo

        _Sig.inputs = {"x": InputInfo("DT_FLOAT", (-1,))}
        return _Sig()

    def run(self, sig, inputs, output_filter=()):
        if inputs["x"].size == 1:
            return {"y": np.array([b"a" * self.HUGE], dtype=object)}
        return {"y": np.array([float(inputs["x"].size)], np.float32)}


@pytest.fixture
def fake_core(tmp_path):
    from forgekit.serving.core import ServerCore
    from forgekit.serving.versions import ModelConfig

    (tmp_path / "m" / "1").mkdir(parents=True)
    core = ServerCore(lambda path: _Servable())
    core.configure([ModelConfig("m", tmp_path / "m")])
    core.poll(["m"])
    return core


def _until(condition, what: str, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {limit:g}s"
        time.sleep(0.01)


def _post(address, body: bytes) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection(*address, timeout=15)
    try:
        conn.request("POST", "/v1/models/m:predict", body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class _Context:
    """Enough of grpc.ServicerContext: callbacks run when the test says the RPC ended."""

    def __init__(self) -> None:
        self.callbacks: list = []

    def add_callback(self, callback) -> bool:
        self.callbacks.append(callback)
        return True

    def abort(self, code, details):
        raise RuntimeError(code.name, details)

    def end(self) -> None:
        for callback in self.callbacks:
            callback()


def test_one_budget_for_both_protocols_held_until_the_answer_is_sent(fake_core):
    """Issue 23: REST released its budget before writing the answer, so clients that never
    read held ~75 MB each unaccounted, and gRPC had no budget at all."""
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    from forgekit.serving.budget import MemoryBudget
    from forgekit.serving.grpc_api import PredictionService
    from forgekit.serving.http_server import RestServer

    budget = MemoryBudget(64 * 2 ** 20)
    rest = RestServer(fake_core, "127.0.0.1", 0, timeout_s=30.0, budget=budget)
    grpc_api = PredictionService(fake_core, budget)
    fill = predict_pb2.PredictRequest()
    fill.model_spec.name = "m"
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0])
    tensor.tensor_shape.dim.add().size = 3 * 2 ** 20  # 12 MiB decoded, charged 36 MiB
    fill.inputs["x"].CopyFrom(tensor)
    two_mib = b'{"instances": [' + b", ".join([b"0.5"] * (2 ** 19)) + b"]}"  # 2.5 MiB
    rest.start()
    reader = socket.socket()
    try:
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.settimeout(15)
        reader.connect(rest.address)
        reader.sendall(predict("m", {"instances": [1.0]}))  # a 32 MiB answer it never reads
        _until(lambda: budget.used >= _Servable.HUGE, "charged for the unsent answer")
        status, payload = _post(rest.address, two_mib)  # charged 40 MiB: fits alone, not now
        assert status == 503 and "retry later" in json.loads(payload)["error"]
        with pytest.raises(RuntimeError) as info:
            grpc_api.Predict(fill, _Context())
        assert info.value.args[0] == "UNAVAILABLE", info.value.args
        reader.close()  # the answer can no longer be sent: the budget comes back
        _until(lambda: budget.used == 0, "released")
        assert _post(rest.address, two_mib)[0] == 200
        _until(lambda: budget.used == 0, "released after the answer")  # the client may be first
        context = _Context()
        answer = grpc_api.Predict(fill, context)
        assert list(answer.outputs["y"].float_val) == [3 * 2 ** 20]
        assert budget.used > 3 * 12 * 2 ** 20  # held until the RPC ends, answer included
        context.end()
        assert budget.used == 0
    finally:
        reader.close()
        rest.shutdown()


def test_idle_connections_give_way_and_only_busy_ones_fill_the_server(fake_core):
    """Issue 23: 32 idle sockets locked REST out with 503 for up to 30 s each. An idle
    keep-alive connection now gives its slot to a new one (TF Serving's event loop keeps
    idle connections for free); connections in the middle of a request keep theirs."""
    import select

    from forgekit.serving.http_server import RestServer

    rest = RestServer(fake_core, "127.0.0.1", 0, timeout_s=30.0, max_connections=4)
    rest.start()
    sockets = [socket.create_connection(rest.address, timeout=10) for _ in range(4)]
    try:
        for sock in sockets[:2]:  # two after a keep-alive request, two that never sent one
            sock.sendall(http("GET", "/v1/models/m", headers={"Connection": "keep-alive"}))
            assert read_response(sock)[0] == 200
        # answered long before the 30 s after which idle connections are closed anyway
        assert _post(rest.address, b'{"instances": [1.0, 2.0]}') == (200, b'{"predictions": '
                                                                       b'[2.0]}')
        readable, _, _ = select.select(sockets, [], [], 5)
        assert readable and all(sock.recv(1) == b"" for sock in readable)  # closed for it
        for sock in sockets:
            sock.close()
        # their handlers end on EOF; until their slots are back a new one could be refused
        _until(lambda: rest._server.connections == 0, "releasing the closed connections")
        # four connections inside a request (headers sent, body pending) hold their slots
        sockets = [socket.create_connection(rest.address, timeout=10) for _ in range(4)]
        for sock in sockets:
            sock.sendall(b"POST /v1/models/m:predict HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
        budget = rest._server.budget
        _until(lambda: budget.used == 4 * 16 * 10, "reading four bodies")
        status, body = send_raw(rest.address[1], http("GET", "/v1/models/m"))
        assert status == 503 and json.loads(body) == {"error": "Too many connections"}
    finally:
        for sock in sockets:
            sock.close()
        rest.shutdown()


def test_folded_headers_are_read_as_libevent_reads_them(fake_core):
    """TF Serving's HTTP server (libevent's evhttp) joins obsolete folded header lines onto
    the previous header; so does this one."""
    from forgekit.serving.http_server import RestServer

    rest = RestServer(fake_core, "127.0.0.1", 0, timeout_s=30.0)
    rest.start()
    try:
        body = b'{"instances": [1.0, 2.0, 3.0]}'
        request = (b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   b"Content-Length:\r\n %d\r\nX-Note: a\r\n\tb\r\n\r\n" % len(body)) + body
        assert send_raw(rest.address[1], request) == (200, b'{"predictions": [3.0]}')
    finally:
        rest.shutdown()


@pytest.mark.parametrize(("body", "expected"), [
    (b'\xef\xbb\xbf{"a": [1]}', {"a": [1]}),  # rapidjson's UTF-8 stream skips the BOM
    (b'{"a": [NaN, Infinity, -Infinity]}', None),  # kParseNanAndInfFlag
    (b'{"a": [9223372036854775807, -9223372036854775808, 18446744073709551615]}',
     {"a": [2 ** 63 - 1, -2 ** 63, 2 ** 64 - 1]}),
    (b'{"a": 18446744073709551616}', {"a": 2.0 ** 64}),  # beyond uint64: a double
])
def test_json_bodies_that_tf_serving_accepts(body, expected):
    from forgekit.serving.json_body import parse_json

    doc = parse_json(body)
    if expected is None:
        assert np.isnan(doc["a"][0]) and doc["a"][1:] == [np.inf, -np.inf]
    else:
        assert doc == expected and type(doc["a"]) is type(expected["a"])


@pytest.mark.parametrize(("body", "message"), [
    (b'{"a": 1e999}', "Number too big to be stored in double. at offset: 6"),
    (b'{"a": [1, -1e400]}', "Number too big to be stored in double. at offset: 10"),
    (b'{"a": ' + b"9" * 5000 + b"}", "Number too big to be stored in double. at offset: 6"),
    ('{"a": 1}'.encode("utf-16"), "Invalid value. at offset: 0"),  # BOM + UTF-16LE
    ('{"a": 1}'.encode("utf-16-be"), "Invalid value. at offset: 0"),
    (b'\xef\xbb\xbf\xef\xbb\xbf{"a": 1}', "Invalid value. at offset: 3"),
    ('{"é": x}'.encode(), "Invalid value. at offset: 7"),  # bytes (characters: 6)
    (b'{"a": "\xff"}', "Invalid encoding in string. at offset: 7"),
])
def test_json_bodies_that_tf_serving_refuses_get_rapidjsons_message(body, message):
    from forgekit.serving.json_body import parse_json

    with pytest.raises(ServingError) as info:
        parse_json(body)
    assert info.value.code == "INVALID_ARGUMENT"
    assert info.value.message == f"JSON Parse error: {message}"
    assert "sys.set_int_max_str_digits" not in info.value.message
