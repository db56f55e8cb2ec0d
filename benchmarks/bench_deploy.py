"""What ``publish`` costs over a plain ``model.export``, and how long a server takes to serve it.

A ~10M-parameter MLP (784 -> 2048 -> 2048 -> 2048 -> 10 by default) is written alternately
with the plain Keras call, ``model.export(<base>/<n>)``, and with
``forgekit.serving.publish(model, base)`` (the same export into a hidden folder, plus the
identity signature, the weights fingerprint, the canary, fsync of every file and folder, and the
rename). Each is repeated; the median is reported, and the ratio publish / export. A third
row, ``model.export`` followed by an fsync of its files, separates what durability costs
(the plain call leaves 40 MB in the page cache) from what publish adds on top of it.

Then a server watching the base path at TF Serving's default poll interval (1 s, or
``--poll``) gets each new version: the time from ``publish`` returning to the new version
answering the metadata endpoint is scan wait + load.

    .venv/bin/python benchmarks/bench_deploy.py [--repeats 5] [--width 2048] [--poll 1]
        [--no-server]

A benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from forgekit.quiet import quiet_tf


def build(width: int):
    import keras

    model = keras.Sequential([keras.Input((784,), name="x")]
                             + [keras.layers.Dense(width, activation="relu") for _ in range(3)]
                             + [keras.layers.Dense(10)])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--poll", type=float, default=1.0,
                        help="server's --file_system_poll_wait_seconds (TF Serving default 1)")
    parser.add_argument("--no-server", action="store_true",
                        help="only the write costs; skip publish -> AVAILABLE")
    args = parser.parse_args()
    quiet_tf()
    from forgekit.serving import InProcessServer, deploy

    model = build(args.width)
    params = model.count_params()
    print(f"model: {params / 1e6:.1f}M parameters ({params * 4 / 2**20:.0f} MiB of float32)")
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        plain_base, pub_base = Path(tmp) / "plain", Path(tmp) / "pub"
        model.export(str(plain_base / "0"), verbose=False)  # warm-up: first trace is slower
        deploy.publish(model, pub_base)
        plain, durable, published = [], [], []
        for i in range(args.repeats):  # alternate, so machine noise hits all alike
            start = time.perf_counter()
            model.export(str(plain_base / str(i + 1)), verbose=False)
            plain.append(time.perf_counter() - start)
            start = time.perf_counter()
            model.export(str(plain_base / f"d{i}"), verbose=False)
            deploy._fsync_tree(plain_base / f"d{i}")  # the bytes on disk, not in the page cache
            durable.append(time.perf_counter() - start)
            start = time.perf_counter()
            deploy.publish(model, pub_base)
            published.append(time.perf_counter() - start)
        p, d, q = (statistics.median(t) for t in (plain, durable, published))
        print(f"n = {args.repeats} alternating repetitions each\n"
              f"{'':30}{'median s':>10}{'min s':>9}{'max s':>9}")
        for name, t in (("model.export (plain)", plain), ("model.export + fsync", durable),
                        ("publish (atomic, canary, id)", published)):
            print(f"{name:30}{statistics.median(t):10.3f}{min(t):9.3f}{max(t):9.3f}")
        print(f"publish / export: {q / p:.3f} (overhead {100 * (q / p - 1):+.1f} %); "
              f"publish / (export + fsync): {q / d:.3f} ({100 * (q / d - 1):+.1f} %)")

        if args.no_server:
            return
        server = InProcessServer(pub_base, model_name="pub",
                                 file_system_poll_wait_seconds=args.poll)
        with server, server.client() as client:
            waits = []
            for _ in range(args.repeats):
                record = deploy.publish(model, pub_base)
                waits.append(client.wait_for_version("pub", record.version,
                                                     timeout=120, interval=0.01))
        print(f"publish -> AVAILABLE and answering at poll {args.poll:g} s: median "
              f"{statistics.median(waits):.2f} s (min {min(waits):.2f}, max {max(waits):.2f}; "
              f"expected ~poll/2 + load)")


if __name__ == "__main__":
    main()
