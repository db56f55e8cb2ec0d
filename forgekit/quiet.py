"""Quiet TensorFlow so a notebook shows the lesson, not CUDA and oneDNN start-up chatter."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping

# Set before TensorFlow is imported; they are read once, at import time.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # C++ INFO/WARNING/ERROR from TF kernels
    "TF_ENABLE_ONEDNN_OPTS": "0",  # no oneDNN banner; results bit-identical run to run
    "CUDA_VISIBLE_DEVICES": "-1",  # CPU only: the course never needs a GPU
    "GRPC_VERBOSITY": "ERROR",
    "ABSL_MIN_LOG_LEVEL": "3",
}


def child_env(extra: Mapping[str, str] | None = None, *, unset: Iterable[str] = ()
              ) -> dict[str, str]:
    """The environment for a child process (a fresh interpreter, a kernel, a training run).

    This process's environment, with :data:`QUIET_ENV` filling in what it does not set (a
    variable the caller set on purpose, e.g. ``CUDA_VISIBLE_DEVICES=0``, wins), without the
    ``unset`` names, then ``extra`` on top.
    """
    env = {**QUIET_ENV, **os.environ}
    for name in unset:
        env.pop(name, None)
    env.update(extra or {})
    return env


@contextlib.contextmanager
def muted_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for the duration of the block.

    TensorFlow's C++ start-up lines (e.g. ``cudart_stub.cc: Could not find cuda drivers``) are
    written before its log level is honoured and straight to the fd, bypassing ``sys.stderr``,
    so redirecting the Python object is not enough.
    """
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ else 2
        saved = os.dup(fd)
    except (OSError, ValueError):  # no real fd (some embedded interpreters): nothing to mute
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


@contextlib.contextmanager
def quiet_absl(level: int = logging.ERROR) -> Iterator[None]:
    """Raise the ``absl`` logger (Keras warns through it) to ``level`` for one block only.

    For calls whose warning a lesson explains in prose (Keras's "HDF5 is legacy"), or would
    repeat once per cell of a table.
    """
    logger = logging.getLogger("absl")
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)


def quiet_tf(import_tf: bool = True) -> dict[str, str]:
    """Configure a CPU-only, quiet TensorFlow. Call it in a notebook's first cell.

    Sets the logging environment, then (by default) imports TensorFlow and Keras once with the
    C++ start-up lines muted. Returns the versions imported, for display.
    If TensorFlow was already imported the environment cannot take effect any more; the Python
    loggers are still quieted and a warning says to restart the kernel for a clean start.
    """
    # Settings already in the environment when TF was imported (e.g. from the Makefile or the
    # test suite) did take effect; only warn when quiet_tf() comes too late to apply them.
    too_late = "tensorflow" in sys.modules and any(k not in os.environ for k in QUIET_ENV)
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if too_late:
        warnings.warn(
            "TensorFlow was imported before forgekit.quiet_tf(); CPU-only and log-level settings "
            "apply from the next kernel restart.",
            stacklevel=2,
        )
    versions: dict[str, str] = {}
    if import_tf:
        with muted_stderr():
            import keras
            import tensorflow as tf
        tf.get_logger().setLevel(logging.ERROR)
        tf.autograph.set_verbosity(0)
        versions = {"tensorflow": tf.__version__, "keras": keras.__version__}
    logging.getLogger("absl").setLevel(logging.ERROR)
    return versions
