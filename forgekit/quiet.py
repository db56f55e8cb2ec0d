"""Quiet TensorFlow so a notebook shows the lesson, not CUDA and oneDNN start-up chatter."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping

# Set before TensorFlow is imported; they are read once, at import time.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # C++ INFO/WARNING/ERROR from TF kernels
    "TF_ENABLE_ONEDNN_OPTS": "0",  # no oneDNN banner; results bit-identical run to run
    "GRPC_VERBOSITY": "ERROR",
    "ABSL_MIN_LOG_LEVEL": "3",
}
# Hiding the GPUs is a choice, never a side effect: a learner's kernel on a GPU runtime keeps
# its GPU unless asked (quiet_tf(cpu_only=True)); CI exports this itself (see the Makefile).
CPU_ONLY_ENV = {"CUDA_VISIBLE_DEVICES": "-1"}


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


# fd 2 belongs to the whole process: one swap for every overlapping muted_stderr() block, from
# whichever threads, undone when the last block ends (not when the first does).
_mute_lock = threading.Lock()
_mute_depth = 0
_mute_saved: int | None = None


@contextlib.contextmanager
def muted_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for the duration of the block.

    TensorFlow's C++ start-up lines (e.g. ``cudart_stub.cc: Could not find cuda drivers``) are
    written before its log level is honoured and straight to the fd, bypassing ``sys.stderr``,
    so redirecting the Python object is not enough.

    Safe to enter from several threads at once: the blocks share one reference-counted swap,
    so fd 2 comes back as it was when the last one ends. While any block is open, every
    thread's writes to fd 2 are dropped, so keep the block around the noisy call only.
    """
    global _mute_depth, _mute_saved
    with _mute_lock:
        try:
            fd = sys.__stderr__.fileno() if sys.__stderr__ else 2
            if _mute_depth == 0:
                saved = os.dup(fd)
                devnull = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(devnull, fd)
                finally:
                    os.close(devnull)
                _mute_saved = saved
            _mute_depth += 1
            entered = True
        except (OSError, ValueError):  # no real fd (some embedded interpreters): nothing to mute
            entered = False
    try:
        yield
    finally:
        if entered:
            with _mute_lock:
                _mute_depth -= 1
                if _mute_depth == 0 and _mute_saved is not None:
                    os.dup2(_mute_saved, fd)
                    os.close(_mute_saved)
                    _mute_saved = None


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


def quiet_tf(import_tf: bool = True, *, cpu_only: bool = False) -> dict[str, str]:
    """Configure a quiet TensorFlow. Call it in a notebook's first cell.

    Sets the logging environment, then (by default) imports TensorFlow and Keras once with the
    C++ start-up lines muted. Returns the versions imported, for display.
    ``cpu_only=True`` also hides every GPU (``CUDA_VISIBLE_DEVICES=-1``, unless the variable is
    already set); by default a GPU the kernel has stays visible.
    If TensorFlow was already imported the environment cannot take effect any more; the Python
    loggers are still quieted and a warning says to restart the kernel for a clean start.
    """
    wanted = {**QUIET_ENV, **(CPU_ONLY_ENV if cpu_only else {})}
    # Settings already in the environment when TF was imported (e.g. from the Makefile or the
    # test suite) did take effect; only warn when quiet_tf() comes too late to apply them.
    too_late = "tensorflow" in sys.modules and any(k not in os.environ for k in wanted)
    for key, value in wanted.items():
        os.environ.setdefault(key, value)
    if too_late:
        warnings.warn(
            "TensorFlow was imported before forgekit.quiet_tf(); the log-level"
            + (" and CPU-only" if cpu_only else "") + " settings apply from the next kernel "
            "restart.",
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
