"""Shared test setup: quiet CPU-only TensorFlow, and a summary of notebook runs at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

from forgekit.quiet import QUIET_ENV

for _key, _value in QUIET_ENV.items():
    os.environ.setdefault(_key, _value)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_RESULTS: list = []  # RunResults recorded by tests/test_notebooks.py
NOTEBOOK_PROPERTY = "notebook_result"


def pytest_runtest_logreport(report):
    # Notebook tests record their RunResult as a user property: it travels with the report, so
    # the summary below also sees results from pytest-xdist workers (`make test PYTEST_ARGS=-n2`).
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key == NOTEBOOK_PROPERTY:
            from forgekit.course.runner import RunResult

            NOTEBOOK_RESULTS.append(RunResult(**value))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not NOTEBOOK_RESULTS:
        return
    from forgekit.course.runner import summary_table

    terminalreporter.section("notebooks (CI parameters)")
    terminalreporter.write_line(summary_table(sorted(NOTEBOOK_RESULTS, key=lambda r: r.notebook)))


# --------------------------------------------------------------------------------------------
# shared helpers (import them: ``from tests.conftest import small_model, as_nobody, ...``)

HANG_GUARD_S = 20  # a forked child that hangs (e.g. a blocking read) dies instead of stalling CI


def small_model(compiled: bool = True, loss: object = None):
    """The tests' Keras 3 model: 4 inputs -> Dense(8, relu) -> Dense(2), Adam and ``loss``
    (default: a MeanSquaredError object; the string ``"mse"`` trips Keras 3's legacy H5 reader)."""
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2)])
    if compiled:
        model.compile(optimizer="adam", loss=loss or keras.losses.MeanSquaredError())
    return model


@contextlib.contextmanager
def locked_copy(source: str | os.PathLike[str] | bytes, name: str = "model.keras"):
    """A copy of ``source`` (a file, or bytes) that no one may read (mode 000), in a folder
    anyone may traverse; yields its path and removes both afterwards."""
    folder = tempfile.mkdtemp(prefix="forgekit-perm-")
    try:
        os.chmod(folder, 0o755)  # traversable by anyone; only the file itself is locked
        target = os.path.join(folder, name)
        if isinstance(source, bytes):
            Path(target).write_bytes(source)
        else:
            shutil.copy(source, target)
        os.chmod(target, 0o000)
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def as_nobody(fn: Callable[[], str]) -> str:
    """Run ``fn`` in a forked child as a user whom permission bits bind, and return its answer.

    root ignores permission bits, so as root the child drops to ``nobody`` first: the OS, not
    a mock, refuses the read. Anything ``fn`` raises comes back as ``"crash:<type>"``.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        signal.alarm(HANG_GUARD_S)  # default action: the hung child dies
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            answer = fn()
        except BaseException as exc:  # report anything, never run the parent's code
            answer = f"crash:{type(exc).__name__}"
        os.write(write_end, answer.encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    answer = os.read(read_end, 1000).decode()
    os.close(read_end)
    return answer
