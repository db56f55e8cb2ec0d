"""Save/load seconds and bytes on disk per format, against the floor of raw numpy I/O.

For Adam-compiled models of about 1M and 10M parameters (trained one step, so the optimizer
state exists), each kind is saved and loaded ``--repeats`` times (median reported). The floor is
``numpy.save``/``numpy.load`` of the same bytes, concatenated: once for the model weights only,
once for weights + optimizer variables (the state a training-resumable format must hold).

    .venv/bin/python benchmarks/bench_formats.py [--sizes 1m,10m] [--repeats 3]

Prints a table per model; times are ratios to the floor. Files are read back from a warm page
cache, so the floor is memory speed: the ratios show format overhead, not disk speed.
A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import forgekit

KINDS = ("keras", "h5_model", "weights_h5", "savedmodel", "tf_checkpoint")
# two hidden layers of this width on 784 inputs: about 1M / 10M parameters
WIDTHS = {"1m": 680, "10m": 2_800}


def build(width: int) -> Any:
    import keras

    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    model.fit(rng.random((32, 784), dtype=np.float32), rng.integers(0, 10, 32), verbose=0)
    return model


def timed(fn: Callable[..., Any], repeats: int, setup: Callable[[], Any] | None = None) -> float:
    """Median seconds of ``fn(setup())`` (setup, e.g. building a model, is not timed)."""
    runs = []
    for _ in range(repeats):
        args = (setup(),) if setup else ()
        start = time.perf_counter()
        fn(*args)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def clone_of(model: Any) -> Any:
    import keras

    clone = keras.models.clone_model(model)
    clone.compile_from_config(model.get_compile_config())
    return clone


def bench(model: Any, folder: Path, repeats: int) -> list[tuple[str, int, float, float]]:
    import tensorflow as tf

    rows = []
    for name, arrays in (
        ("floor: weights", model.get_weights()),
        ("floor: weights+optimizer",
         model.get_weights() + [np.asarray(v) for v in model.optimizer.variables]),
    ):
        flat = np.concatenate([np.ravel(a).astype(np.float32) for a in arrays])
        target = folder / f"{name.split()[-1]}.npy"
        save_s = timed(lambda flat=flat, target=target: np.save(target, flat), repeats)
        load_s = timed(lambda target=target: np.load(target), repeats)
        rows.append((name, target.stat().st_size, save_s, load_s))

    names = {"keras": "m.keras", "h5_model": "m.h5", "weights_h5": "m.weights.h5",
             "savedmodel": "export", "tf_checkpoint": "ckpt/ckpt"}
    for kind in KINDS:
        info = None

        def save(kind: str = kind) -> None:
            nonlocal info
            target = folder / kind
            if target.exists():
                import shutil

                shutil.rmtree(target)
            info = forgekit.save(model, target / names[kind], kind=kind)

        save_s = timed(save, repeats)
        path = info.load_path
        loaders: dict[str, Callable[..., Any]] = {
            "keras": lambda path=path: forgekit.load(path),
            "h5_model": lambda path=path: forgekit.load(path, compile=False),
            "weights_h5": lambda clone, path=path: forgekit.load(path, model=clone),
            "savedmodel": lambda path=path: tf.saved_model.load(str(path)),
            "tf_checkpoint": lambda clone, path=path: forgekit.load(path, model=clone),
        }
        # the architecture a weights-only format needs comes from code: built outside the timer
        setup = (lambda: clone_of(model)) if kind in ("weights_h5", "tf_checkpoint") else None
        load_s = timed(loaders[kind], repeats, setup)
        rows.append((kind, info.size_bytes, save_s, load_s))
    return rows


def report(label: str, params: int, rows: list[tuple[str, int, float, float]]) -> None:
    floor_bytes, floor_save, floor_load = rows[0][1], rows[0][2], rows[0][3]
    print(f"\n{label}: {params:,} parameters, Adam, one training step")
    header = (f"{'artifact':<26}{'bytes':>14}{'x floor':>9}{'save s':>9}{'x floor':>9}"
              f"{'load s':>9}{'x floor':>9}")
    print(header)
    print("-" * len(header))
    for name, size, save_s, load_s in rows:
        print(f"{name:<26}{size:>14,}{size / floor_bytes:>9.2f}{save_s:>9.3f}"
              f"{save_s / floor_save:>9.1f}{load_s:>9.3f}{load_s / floor_load:>9.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1m,10m", help="comma list of: " + ",".join(WIDTHS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    versions = forgekit.quiet_tf()
    print("TensorFlow", versions["tensorflow"], "| Keras", versions["keras"],
          f"| median of {args.repeats} runs; ratios are to the weights-only numpy floor")
    for label in args.sizes.split(","):
        model = build(WIDTHS[label])
        with tempfile.TemporaryDirectory(prefix="forgekit-bench-") as tmp:
            report(label, model.count_params(), bench(model, Path(tmp), args.repeats))
        del model


if __name__ == "__main__":
    main()
