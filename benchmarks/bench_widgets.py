"""Click-to-result seconds of every explorer button, and this process's peak memory.

    .venv/bin/python benchmarks/bench_widgets.py [--units 16 256] [--poll 0.5]

Each explorer's view is built and its buttons are clicked headless, as a learner would click
them in lesson 10; the seconds are measured around ``button.click()`` (the time the kernel is
busy). The Keras 2 file is written by a fresh tf-keras process; its peak is measured separately
(children's max RSS). A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable


def clicked(rows: list[tuple[str, float]], name: str, click: Callable[[], None]) -> None:
    start = time.perf_counter()
    click()
    rows.append((name, time.perf_counter() - start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--poll", type=float, default=0.5, help="server poll seconds")
    args = parser.parse_args()

    import forgekit

    forgekit.quiet_tf()
    from forgekit.widgets import FormatExplorer, LoaderPlayground, ServingTimeline

    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="forgekit-bench-widgets-") as work:
        lp = LoaderPlayground(work)  # starts the Keras 2 file in the background now
        with FormatExplorer(work, units=args.units[0]) as fx:
            fx.ui  # noqa: B018 (builds the view)
            for units in args.units:
                fx.size_slider.value = units
                for i, fmt in enumerate(["keras", "h5_model", "savedmodel"]):
                    fx.format_picker.value = fmt
                    what = "first click at this size" if i == 0 else "same size"
                    clicked(rows, f"format {fmt} @ {units} units ({what})", fx.button.click)
        with lp:
            lp.ui  # noqa: B018 (builds the view)
            for artifact, loader in [("keras", "load_model"), ("savedmodel", "load_model"),
                                     ("misnamed", "load_model"), ("keras2", "load_model")]:
                lp.artifact_picker.value, lp.loader_picker.value = artifact, loader
                if artifact == "keras2":
                    lp.path("keras2")  # wait for the background write: time the load alone
                clicked(rows, f"loader {loader} on {artifact}", lp.button.click)
        with ServingTimeline(work, poll_seconds=args.poll) as tl:
            tl.ui  # noqa: B018 (builds the view)
            for name in ["publish new version", "publish new version", "plant flat model.h5",
                         "roll back", "overwrite in place", "check"]:
                clicked(rows, f"serving: {name}", tl.buttons[name].click)
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:6.2f} s")
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: this process {me:.0f} MiB, largest child (tf-keras writer) "
          f"{children:.0f} MiB")


if __name__ == "__main__":
    main()
