"""Per-inference latency of every TFLite variant beside Keras and the SavedModel, and of the C
loader beside Python's signature call, on the same trained model.

A 32 -> 256 -> 256 -> 2 MLP (lesson 04's) is trained briefly, exported, and converted four ways
(float32, dynamic range, float16, full integer). For batch 1 and batch 64 it times:

* keras call     - ``model(x, training=False)``, eager;
* keras predict_on_batch;
* signature      - ``tf.saved_model.load(export).signatures["serving_default"](x)``;
* tflite <v>     - LiteRT ``set_tensor`` + ``invoke`` + ``get_tensor`` (int8 quantization of
  the input included for full integer);
* C loader       - ``TF_SessionRun`` timed inside the C program (``run_c(..., repeat=N)``),
  beside the signature call measured here; it is skipped, and said so, without gcc.

    .venv/bin/python benchmarks/bench_tflite.py [--runs 500]

Prints median and p99 latency in microseconds and each mode's ratio to the signature call.
A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from forgekit.quiet import quiet_tf


def timed(call: Callable[[], object], runs: int, warmup: int = 20) -> dict[str, float]:
    """Median and p99 latency of ``call`` in microseconds."""
    for _ in range(warmup):
        call()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        call()
        times[i] = time.perf_counter() - start
    return {"p50": float(np.median(times) * 1e6), "p99": float(np.percentile(times, 99) * 1e6)}


def tflite_call(path: Path, x: np.ndarray) -> Callable[[], object]:
    from forgekit import tflite

    interp = tflite.interpreter(path)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def call() -> object:
        interp.set_tensor(inp["index"], tflite.quantize(x, inp))
        interp.invoke()
        return interp.get_tensor(out["index"])

    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="timed calls per mode and batch")
    args = parser.parse_args()
    quiet_tf()
    import tensorflow as tf

    from forgekit import crosslang, tflite
    from forgekit.table import Table
    from forgekit.training import build_model, make_task

    task = make_task("classify", n_train=2048, n_val=256, noise=0.05)
    model = build_model(task, width=256)
    model.fit(task.x_train, task.y_train, epochs=3, batch_size=64, verbose=0)
    with tempfile.TemporaryDirectory(prefix="bench-tflite-") as tmp:
        root = Path(tmp)
        model.export(root / "export", verbose=False)
        paths = {v: tflite.convert(root / "export", v, root / f"{v}.tflite",
                                   representative=task.x_train[:200]) for v in tflite.VARIANTS}
        serving = tf.saved_model.load(str(root / "export")).signatures["serving_default"]
        (key,) = serving.structured_input_signature[1]
        toolchain = crosslang.find_toolchain()
        c_build = crosslang.build("c", root / "_build") if toolchain.c_ok else None

        table = Table(["batch", "mode", "p50 µs", "p99 µs", "p50 / signature"],
                      title=f"latency per inference call ({args.runs} runs each)")
        for batch in (1, 64):
            x = task.x_val[:batch]
            tensor = tf.constant(x)
            modes: dict[str, Callable[[], object]] = {
                "keras call": lambda t=tensor: model(t, training=False),
                "keras predict_on_batch": lambda x=x: model.predict_on_batch(x),
                "signature": lambda t=tensor: serving(**{key: t}),
            }
            modes.update({f"tflite {v}": tflite_call(p, x) for v, p in paths.items()})
            results = {name: timed(call, args.runs) for name, call in modes.items()}
            if c_build is not None:
                run = crosslang.run_c(c_build, root / "export", x, repeat=args.runs)
                results["C loader (TF_SessionRun)"] = {"p50": run.timing["median_run_ms"] * 1e3,
                                                       "p99": float("nan")}
            base = results["signature"]["p50"]
            for name, r in results.items():
                table.add(batch, name, f"{r['p50']:.1f}",
                          "-" if r["p99"] != r["p99"] else f"{r['p99']:.1f}",
                          f"{r['p50'] / base:.2f}")
        sizes = {v: p.stat().st_size for v, p in paths.items()}
    print(table)
    print("\nsizes: " + ", ".join(f"{v} {n:,} B" for v, n in sizes.items()))
    if c_build is None:
        print("C loader skipped: " + toolchain.why_not("c"))
    else:
        print("C loader p50 is the median of the program's own clock around TF_SessionRun; "
              "its p99 is not reported.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
