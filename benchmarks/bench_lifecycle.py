"""How long a config reload that removes many models takes, and a shutdown after it.

    .venv/bin/python benchmarks/bench_lifecycle.py [--models 200]

Exports one small SavedModel, serves ``--models`` copies of it from one ServerCore with the
real loader (``SavedModelServable``), then times a reload that removes all but one model and
the unload of the last. Unloading used to run a garbage collection per version (a fraction of
a second each with TensorFlow loaded); it now runs one per batch.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
import time
from pathlib import Path

import forgekit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    args = parser.parse_args()
    forgekit.quiet_tf()
    from forgekit.serving.core import ServerCore
    from forgekit.serving.demo import export_demo_model
    from forgekit.serving.servable import SavedModelServable
    from forgekit.serving.versions import ModelConfig

    with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as tmp:
        root = Path(tmp)
        export_demo_model(root / "export")
        configs = []
        for i in range(args.models):
            shutil.copytree(root / "export", root / f"m{i}" / "1")
            configs.append(ModelConfig(f"m{i}", root / f"m{i}"))
        core = ServerCore(SavedModelServable)
        core.configure(configs)
        started = time.perf_counter()
        core.poll([c.name for c in configs])
        loaded = time.perf_counter() - started
        collections = []
        gc.callbacks.append(lambda phase, info: collections.append(1) if phase == "start" else None)
        started = time.perf_counter()
        core.configure(configs[:1])
        removed = time.perf_counter() - started
        started = time.perf_counter()
        core.models["m0"].unload_all()
        last = time.perf_counter() - started
    print(f"{args.models} models loaded in {loaded:.1f} s; a reload removing "
          f"{args.models - 1} of them took {removed:.2f} s ({len(collections)} garbage "
          f"collections, any generation); unloading the last one {last:.2f} s")


if __name__ == "__main__":
    main()
