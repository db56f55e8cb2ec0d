"""Comparisons the lessons and the probe measure with: weights, predictions, configs, logs.

One contract for :func:`max_abs_diff`: it never raises; arrays that do not align (another
count, another shape) give ``inf``, and a NaN anywhere in either side gives ``nan``, so
``== 0.0`` and ``<= tolerance`` are False as they must be.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np


@contextlib.contextmanager
def captured_logs(name: str = "absl", level: int = logging.WARNING) -> Iterator[list[str]]:
    """Collect the messages logged to ``name`` during the block (Keras warns through absl).

    ``forgekit.quiet_tf()`` raises that logger's level to hide start-up chatter; inside the block
    the level is lowered so a lesson can show the warning a call really emits.
    """
    logger = logging.getLogger(name)
    messages: list[str] = []
    handler = logging.Handler(level)
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore
    saved_level, saved_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # shown by the lesson, not printed twice
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)
        logger.propagate = saved_propagate


def fixed_inputs(model: Any, n: int = 16, seed: int = 0) -> np.ndarray:
    """Reproducible inputs for a single-input model (standard normal, float32)."""
    shape = tuple(model.inputs[0].shape[1:])
    if len(model.inputs) != 1 or None in shape:
        raise ValueError("pass x= explicitly: the model has several inputs or a dynamic shape")
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def max_abs_diff(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Largest absolute difference between two lists of arrays; ``inf`` if they do not align
    (another number of arrays, or another shape); ``nan`` if a difference is NaN (a NaN on
    either side, or ``inf - inf``): never an exception, never a partial answer."""
    if len(a) != len(b):
        return float("inf")
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            return float("inf")
        if x.size:
            # np.max propagates NaN; the builtin max(worst, nan) would keep worst and read 0.0
            with np.errstate(invalid="ignore"):  # inf - inf is NaN, reported as such
                here = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))))
            if math.isnan(here):
                return here
            worst = max(worst, here)
    return worst


def config_differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Paths at which two nested configs differ (empty list: equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                out.append(f"{where}/{key} only in {'saved' if key in a else 'reloaded'}")
            else:
                out += config_differences(a[key], b[key], f"{where}/{key}")
        return out
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in config_differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where or '/'}: {a!r} != {b!r}"[:160]]
