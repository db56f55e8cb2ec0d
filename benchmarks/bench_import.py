"""How long ``import forgekit`` takes in a fresh interpreter, against a bare interpreter start.

    .venv/bin/python benchmarks/bench_import.py [--repeats 15]

Each run starts a new interpreter and times the import inside it (``time.perf_counter`` around
``import forgekit``), so the interpreter's own start-up is excluded; the median is reported,
with what the import pulled into ``sys.modules``. A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CODE = ("import sys, time\n"
        "before = set(sys.modules)\n"
        "start = time.perf_counter()\n"
        "import forgekit\n"
        "seconds = time.perf_counter() - start\n"
        "new = sorted(set(sys.modules) - before)\n"
        "print(json.dumps({'seconds': seconds, 'modules': len(new),\n"
        "                  'heavy': [m for m in new if m.split('.')[0] in\n"
        "                            ('tensorflow', 'keras', 'tf_keras', 'h5py', 'numpy')]}))")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    runs = [json.loads(subprocess.run([sys.executable, "-c", "import json\n" + CODE],
                                      capture_output=True, text=True, check=True).stdout)
            for _ in range(args.repeats)]
    seconds = sorted(r["seconds"] for r in runs)
    print(f"import forgekit: median {statistics.median(seconds) * 1000:.1f} ms, "
          f"max {seconds[-1] * 1000:.1f} ms over {args.repeats} fresh interpreters")
    print(f"modules it imports: {runs[0]['modules']}; heavy ones: {runs[0]['heavy'] or 'none'}")


if __name__ == "__main__":
    main()
