"""Checker for lesson 04: quantizing a float batch for a full-integer TFLite model, checked in LiteRT."""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, is_placeholder, wrong


def _probe_batch(x: np.ndarray, scale: float, zero: int) -> np.ndarray:
    """The learner's inputs plus two rows far outside any calibrated range (clipping matters) and
    one row whose values land on .5 ties (x / scale + zero_point = k + 0.5), where roundings differ."""
    x = np.asarray(x, dtype=np.float32)
    extremes = np.stack([np.full(x.shape[1:], 50.0), np.full(x.shape[1:], -50.0)])
    k = np.arange(int(np.prod(x.shape[1:]))) % 40 - 20 + 0.5  # both signs, odd and even neighbours
    ties = ((k - zero) * scale).reshape((1, *x.shape[1:]))
    return np.concatenate([x, extremes.astype(np.float32), ties.astype(np.float32)])


def _ties(x: np.ndarray, scale: float, zero: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where ``x / scale + zero_point`` sits on a .5 tie, and its two int8 neighbours there.

    NumPy's ``np.round`` sends a tie to the even neighbour, TFLite's reference QUANTIZE kernel
    (``std::round``) away from zero, and its optimized CPU kernel can differ from both there: on
    a tie both neighbours are equally close, so either is a right answer.
    """
    v = x.astype(np.float64) / scale + zero
    tie = np.abs(np.abs(v - np.floor(v)) - 0.5) < 1e-4  # float32 x: a tie is off by ~1e-5 at most
    return tie, np.clip(np.floor(v), -128, 127), np.clip(np.ceil(v), -128, 127)


def _borrows_quantize(function: Any) -> bool:
    """Does ``function`` reach forgekit's own ``tflite.quantize`` (the step the lesson teaches)?

    Only that function object counts, by a global or closure name or through a forgekit module:
    a learner's own variable or ``tf.quantization.quantize`` named ``quantize`` is fine."""
    from forgekit import tflite

    code = getattr(function, "__code__", None)
    if code is None:
        return False
    names = set(code.co_names)
    scope = dict(getattr(function, "__globals__", {}))
    cells = function.__closure__ or ()
    scope.update(zip(code.co_freevars, (c.cell_contents for c in cells), strict=True))
    for name in names | set(code.co_freevars):
        value = scope.get(name)
        if value is tflite.quantize:
            return True
        if (isinstance(value, types.ModuleType) and value.__name__.startswith("forgekit")
                and "quantize" in names):
            return True
    return False


def check_quantize(my_quantize: Callable[[np.ndarray, dict], np.ndarray] | None,
                   model_path: str | os.PathLike[str], x: np.ndarray,
                   y: np.ndarray | None = None) -> Feedback:
    """Does ``my_quantize(x, input_detail)`` give the int8 tensor the model at ``model_path`` expects?

    The checker calls it with the interpreter's own input detail on ``x`` plus two extreme rows
    and a row of .5 ties, runs the model in LiteRT on what it returns and on
    ``round(x / scale + zero_point)`` clipped to int8, and compares the outputs (and, given
    labels ``y``, the accuracies). The tensor must match exactly, except that a value on a .5
    tie may take either neighbour. When it does not match, it names the usual mistake.
    """
    if my_quantize is None or is_placeholder(my_quantize):
        return NOT_ANSWERED
    if _borrows_quantize(my_quantize):
        return wrong("Your answer calls forgekit's tflite.quantize, forgekit's own "
                     "quantizer: write round(x / scale + zero_point), clipped and cast, with "
                     "NumPy, so it runs where forgekit is not installed.")
    from forgekit import tflite

    interp = tflite.interpreter(model_path)
    detail = interp.get_input_details()[0]
    scale, zero = detail["quantization"]
    if not scale:
        return wrong(f"{os.fspath(model_path)} takes {np.dtype(detail['dtype']).name} input, not "
                     "quantized int8: check it with the full_integer model.")
    batch = _probe_batch(x, scale, zero)
    try:
        got = np.asarray(my_quantize(batch.copy(), dict(detail)))
    except Exception as exc:  # the learner's code: any failure is feedback
        return wrong(f"my_quantize raised {type(exc).__name__}: {exc}")
    if got.shape != batch.shape:
        return wrong(f"my_quantize returned shape {got.shape} for inputs of shape {batch.shape}: "
                     "quantize element by element, keep the shape.")
    if got.dtype != np.int8:
        return wrong(f"my_quantize returned {got.dtype}; the model's input tensor is int8, and "
                     "set_tensor refuses any other type. End with .astype(np.int8).")
    expected = tflite.quantize(batch, detail)
    ran = _compare(interp, detail, got, expected, len(x), y)
    tie, below, above = _ties(batch, scale, zero)
    if np.all(np.where(tie, (got == below) | (got == above), got == expected)):
        return correct(f"my_quantize gives the int8 tensor the model expects for all "
                       f"{len(batch)} rows: two far outside the calibrated range clip to -128/127 "
                       f"instead of wrapping around, and {int(tie.sum())} values on a .5 tie may "
                       "round either way (np.round goes to even, TFLite's reference kernel away "
                       f"from zero; both neighbours are equally close). LiteRT ran on it: {ran}")
    return wrong(f"{_diagnose(got, batch, scale, zero, expected, ~tie)} "
                 f"{_where(got, expected, tie, len(x))} LiteRT ran on it: {ran}")


def _where(got: np.ndarray, expected: np.ndarray, tie: np.ndarray, n: int) -> str:
    """Where ``got`` parts from the right tensor: the learner's own rows, the two extreme probes."""
    differ = int(np.sum((got[:n] != expected[:n]) & ~tie[:n]))
    mine = (f"{differ:,} of your {expected[:n].size:,} values differ from the right tensor"
            if differ else f"all {expected[:n].size:,} values of your rows come out right")
    probes = got[n:n + 2].reshape(2, -1)[:, 0], expected[n:n + 2].reshape(2, -1)[:, 0]
    if np.array_equal(*probes):
        return f"Where it shows: {mine}."
    return (f"Where it shows: {mine}; in the checker's probe rows 50.0 became {probes[0][0]} "
            f"and -50.0 became {probes[0][1]}, where the right tensor holds {probes[1][0]} and "
            f"{probes[1][1]} (clipped).")


def _diagnose(got: np.ndarray, x: np.ndarray, scale: float, zero: int,
              expected: np.ndarray, exact: np.ndarray) -> str:
    """The usual mistake ``got`` matches, compared where the value is not on a .5 tie."""
    def as_int8(v: np.ndarray) -> np.ndarray:
        return np.clip(v, -128, 127).astype(np.int8)

    big = int(np.round(50.0 / scale + zero))  # what the probe's 50.0 row becomes unclipped
    wrapped = int(np.array([big], dtype=np.int64).astype(np.int8)[0])
    with np.errstate(over="ignore", invalid="ignore"):  # what a bare float cast makes of 50.0
        trunc_wrapped = int((np.array([50.0], np.float32) / scale + zero).astype(np.int8)[0])
    with np.errstate(over="ignore", invalid="ignore"):
        guesses = {
            "cast with .astype(np.int8) alone: that keeps each value's integer part, which the "
            "model reads as (q - zero_point) * scale, a different number. Quantize first: "
            "q = round(x / scale + zero_point)": x.astype(np.int8),
            "clipped and cast without the scale and zero point: the model reads q as "
            "(q - zero_point) * scale, so q = round(x / scale + zero_point)":
                as_int8(np.round(x)),
            "multiplied by the scale instead of dividing: real = (q - zero_point) * scale, so "
            "q = x / scale + zero_point": as_int8(np.round(x * scale + zero)),
            f"left out the zero point ({zero}): q = round(x / scale + zero_point)":
                as_int8(np.round(x / scale)),
            "subtracted the zero point; it is added: q = round(x / scale + zero_point)":
                as_int8(np.round(x / scale - zero)),
            "truncated and did not clip: .astype(np.int8) drops the fraction (np.round first) "
            f"and wraps a value beyond [-128, 127] around (50.0 -> {int(50.0 / scale + zero)}, "
            f"which wraps to {trunc_wrapped}, not 127): np.clip before .astype(np.int8)":
                (x / scale + zero).astype(np.int8),
            "truncated instead of rounding (astype drops the fraction): use np.round first":
                as_int8(np.trunc(x / scale + zero)),
            "rounded down with np.floor: quantization takes the nearest integer, np.round":
                as_int8(np.floor(x / scale + zero)),
            f"did not clip: values beyond [-128, 127] wrap around when cast to int8 (50.0 -> "
            f"{big}, which wraps to {wrapped}, not 127). np.clip before .astype(np.int8)":
                np.round(x / scale + zero).astype(np.int64).astype(np.int8),
        }
    for why, candidate in guesses.items():
        if np.array_equal(got[exact], candidate[exact]):
            return f"You {why}."
    differ = int(np.sum(got[exact] != expected[exact]))
    return (f"{differ} of {expected.size} values differ from round(x / scale + zero_point) "
            f"clipped to [-128, 127] (scale {scale:.6g}, zero point {zero}), not counting values "
            "on a .5 tie, which may round either way.")


def _outputs(interp: Any, detail: dict, q: np.ndarray) -> np.ndarray:
    # Fed for real: set_tensor is what refuses a wrong dtype or shape.
    interp.resize_tensor_input(detail["index"], list(q.shape))
    interp.allocate_tensors()
    interp.set_tensor(detail["index"], q)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).astype(np.int32)


def _compare(interp: Any, detail: dict, got: np.ndarray, expected: np.ndarray, n: int,
             y: np.ndarray | None) -> str:
    """The model's answers to the learner's tensor against its answers to the right one."""
    mine, right = _outputs(interp, detail, got)[:n], _outputs(interp, detail, expected)[:n]
    same = float(np.mean(np.argmax(mine, -1) == np.argmax(right, -1)))
    text = f"its argmax matches the correctly quantized input's on {same:.1%} of your {n} rows"
    if y is not None:
        y = np.asarray(y)[:n]
        text += (f"; accuracy {np.mean(np.argmax(mine, -1) == y):.1%} against "
                 f"{np.mean(np.argmax(right, -1) == y):.1%} for the right tensor")
    return text + "."
