"""Predict latency and throughput of forgekit's server, REST and gRPC, beside a direct call.

The small demo model (4 inputs -> Dense(2)) is exported, then predicted on one row at a time:

* direct      - its ``serving_default`` signature called in this process (the floor);
* rest raw    - forgekit serve over HTTP/1.1 keep-alive, pre-encoded JSON body (http.client);
* rest client - the same through ``forgekit.serving.Client`` (JSON encode/decode included);
* grpc raw    - the official PredictionService stub with a pre-built PredictRequest;
* grpc client - ``Client("grpc://...")`` (TensorProto conversion included);
* ... xN      - N client threads at once, for throughput.

A second table compares HTTP transports for the same REST handler (``RestApi``): the stdlib
thread-per-connection server forgekit uses, and tornado. That measurement is why forgekit
uses the former.

    .venv/bin/python benchmarks/bench_serving.py [--requests 2000] [--threads 4]

Prints p50/p99 latency, requests per second, and each mode's p50 overhead over the direct
call (in ms and as a ratio). Client and server share this machine's cores, as they would on a
laptop. A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from forgekit.quiet import quiet_tf

ROW = [[0.5, -1.25, 3.0, 0.125]]


def measure(call: Callable[[], object], requests: int, warmup: int = 100) -> dict[str, float]:
    """Latency percentiles (ms) and sequential requests/s of ``call``."""
    for _ in range(warmup):
        call()
    times = np.empty(requests)
    for i in range(requests):
        start = time.perf_counter()
        call()
        times[i] = time.perf_counter() - start
    return {"p50": float(np.percentile(times, 50) * 1e3),
            "p99": float(np.percentile(times, 99) * 1e3),
            "rps": requests / float(times.sum())}


def throughput(make_call: Callable[[], Callable[[], object]], requests: int,
               threads: int) -> dict[str, float]:
    """Requests/s with ``threads`` clients (each its own connection), plus latencies."""
    per_thread = requests // threads
    calls = [make_call() for _ in range(threads)]
    for call in calls:
        for _ in range(20):
            call()
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def worker(call: Callable[[], object]) -> None:
        mine = []
        barrier.wait()
        for _ in range(per_thread):
            start = time.perf_counter()
            call()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker, args=(c,)) for c in calls]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    lat = np.array(latencies)
    return {"p50": float(np.percentile(lat, 50) * 1e3), "p99": float(np.percentile(lat, 99) * 1e3),
            "rps": len(lat) / elapsed}


def rest_raw(port: int, body: bytes) -> Callable[[], object]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json"}

    def call() -> bytes:
        conn.request("POST", "/v1/models/demo:predict", body, headers)
        response = conn.getresponse()
        data = response.read()
        assert response.status == 200, data
        return data

    return call


def grpc_raw(target: str) -> Callable[[], object]:
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from forgekit.serving.grpc_api import ndarray_to_tensor

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "demo"
    request.inputs["x"].CopyFrom(ndarray_to_tensor(np.array(ROW, np.float32), typed=False))
    return lambda: stub.Predict(request, timeout=10)


def _transport_server(kind: str, base: str, port: int, ready) -> None:
    """Child process: serve the REST API for ``base`` with the stdlib server or tornado."""
    quiet_tf()
    from forgekit.serving.core import ServerCore
    from forgekit.serving.http_server import RestServer
    from forgekit.serving.rest import RestApi
    from forgekit.serving.servable import SavedModelServable
    from forgekit.serving.versions import ModelConfig

    core = ServerCore(SavedModelServable)
    core.configure([ModelConfig("demo", Path(base))])
    core.models["demo"].poll()
    if kind == "stdlib":
        RestServer(core, "127.0.0.1", port).start()
        ready.set()
        threading.Event().wait()
    import asyncio

    import tornado.web

    api = RestApi(core)

    class Handler(tornado.web.RequestHandler):
        def _answer(self) -> None:
            status, payload = api.handle(self.request.method, self.request.uri, self.request.body)
            self.set_status(status)
            self.set_header("Content-Type", "application/json")
            self.finish(payload)

        get = post = _answer

    async def run() -> None:
        tornado.web.Application([(r"/.*", Handler)]).listen(port, "127.0.0.1")
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(run())


def compare_transports(base: Path, requests: int, threads: int) -> dict[str, dict]:
    import multiprocessing

    from forgekit.serving import free_port

    spawn = multiprocessing.get_context("spawn")
    body = json.dumps({"instances": ROW}).encode()
    results = {}
    for kind in ("stdlib", "tornado"):
        port, ready = free_port(), spawn.Event()
        child = spawn.Process(target=_transport_server, args=(kind, str(base), port, ready),
                              daemon=True)
        child.start()
        try:
            if not ready.wait(120):
                raise RuntimeError(f"{kind} server did not start")
            results[f"{kind}"] = measure(rest_raw(port, body), requests)
            results[f"{kind} x{threads}"] = throughput(lambda p=port: rest_raw(p, body),
                                                       requests, threads)
        finally:
            child.terminate()
            child.join(10)
    return results


def print_table(title: str, results: dict[str, dict], floor: float | None) -> None:
    print(f"\n{title}\n")
    print(f"{'mode':<16}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}"
          + (f"{'p50 - direct':>15}{'p50 / direct':>14}" if floor else ""))
    for mode, r in results.items():
        line = f"{mode:<16}{r['p50']:>9.3f}{r['p99']:>9.3f}{r['rps']:>9.0f}"
        if floor and " x" not in mode:  # latency under concurrency is not an overhead
            line += f"{r['p50'] - floor:>12.3f} ms{r['p50'] / floor:>13.1f}x"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per mode (default 2000)")
    parser.add_argument("--threads", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--skip-transports", action="store_true",
                        help="skip the stdlib vs tornado comparison")
    args = parser.parse_args()

    versions = quiet_tf()
    import tensorflow as tf

    from forgekit.serving import Client, ModelServer
    from forgekit.serving.demo import export_demo_model

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        base = Path(tmp) / "demo"
        export_demo_model(base / "1", "single")
        signature = tf.saved_model.load(str(base / "1")).signatures["serving_default"]
        x = np.array(ROW, np.float32)
        results = {"direct": measure(lambda: signature(x=x), args.requests)}

        with ModelServer(base, model_name="demo") as server:
            body = json.dumps({"instances": ROW}).encode()
            grpc_target = server.grpc_url.removeprefix("grpc://")
            rest_client = Client(server.rest_url)
            grpc_client = Client(server.grpc_url)
            results["rest raw"] = measure(rest_raw(server.rest_api_port, body), args.requests)
            results["rest client"] = measure(lambda: rest_client.predict("demo", ROW),
                                             args.requests)
            results["grpc raw"] = measure(grpc_raw(grpc_target), args.requests)
            results["grpc client"] = measure(lambda: grpc_client.predict("demo", ROW),
                                             args.requests)
            n = args.threads
            results[f"rest raw x{n}"] = throughput(
                lambda: rest_raw(server.rest_api_port, body), args.requests, n)
            results[f"grpc raw x{n}"] = throughput(lambda: grpc_raw(grpc_target),
                                                   args.requests, n)
            rest_client.close()
            grpc_client.close()
        transports = None if args.skip_transports else compare_transports(
            base, args.requests, args.threads)

    print_table(f"forgekit serve, demo model (4 -> Dense 2), one row per request; "
                f"{args.requests} requests per mode; {os.cpu_count()} CPUs; "
                f"tensorflow {versions.get('tensorflow')}", results, results["direct"]["p50"])
    if transports:
        print_table("HTTP transport for the same REST handler (raw keep-alive client)",
                    transports, None)


if __name__ == "__main__":
    main()
