"""Checkers for lesson 04: the plain TFLite conversion, and int8 input quantization."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, is_placeholder, unused_path, wrong


def _probe_batch(x: np.ndarray) -> np.ndarray:
    """The learner's inputs plus two rows far outside any calibrated range (clipping matters)."""
    x = np.asarray(x, dtype=np.float32)
    extremes = np.stack([np.full(x.shape[1:], 50.0), np.full(x.shape[1:], -50.0)]).astype(np.float32)
    return np.concatenate([x, extremes])


def check_quantize(my_quantize: Callable[[np.ndarray, dict], np.ndarray] | None,
                   model_path: str | os.PathLike[str], x: np.ndarray) -> Feedback:
    """Does ``my_quantize(x, input_detail)`` give the int8 tensor the model at ``model_path`` expects?

    The checker calls it with the interpreter's own input detail on ``x`` plus two extreme
    rows, compares with ``round(x / scale + zero_point)`` clipped to int8, names the usual
    mistake when it differs, and finally runs the model on the learner's tensor.
    """
    if my_quantize is None:
        return NOT_ANSWERED
    from forgekit import tflite

    interp = tflite.interpreter(model_path)
    detail = interp.get_input_details()[0]
    scale, zero = detail["quantization"]
    if not scale:
        return wrong(f"{os.fspath(model_path)} takes {np.dtype(detail['dtype']).name} input, not "
                     "quantized int8: check it with the full_integer model.")
    batch = _probe_batch(x)
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
    if np.array_equal(got, expected):
        return _run(interp, detail, got, batch)
    return wrong(_diagnose(got, batch, scale, zero, expected))


def _diagnose(got: np.ndarray, x: np.ndarray, scale: float, zero: int,
              expected: np.ndarray) -> str:
    def as_int8(v: np.ndarray) -> np.ndarray:
        return np.clip(v, -128, 127).astype(np.int8)

    with np.errstate(over="ignore", invalid="ignore"):
        guesses = {
            "multiplied by the scale instead of dividing: real = (q - zero_point) * scale, so "
            "q = x / scale + zero_point": as_int8(np.round(x * scale + zero)),
            f"left out the zero point ({zero}): q = round(x / scale + zero_point)":
                as_int8(np.round(x / scale)),
            "subtracted the zero point; it is added: q = round(x / scale + zero_point)":
                as_int8(np.round(x / scale - zero)),
            "truncated instead of rounding (astype drops the fraction): use np.round first":
                as_int8(np.trunc(x / scale + zero)),
            "did not clip: values beyond [-128, 127] wrap around when cast to int8 (50.0 "
            "becomes a negative number). np.clip before .astype(np.int8)":
                np.round(x / scale + zero).astype(np.int64).astype(np.int8),
        }
    for why, candidate in guesses.items():
        if np.array_equal(got, candidate):
            return f"You {why}."
    differ = int(np.sum(got != expected))
    return (f"{differ} of {expected.size} values differ from round(x / scale + zero_point) "
            f"clipped to [-128, 127] (scale {scale:.6g}, zero point {zero}).")


def _run(interp: Any, detail: dict, q: np.ndarray, batch: np.ndarray) -> Feedback:
    # Feed it for real: set_tensor is what refuses a wrong dtype or shape.
    interp.resize_tensor_input(detail["index"], list(q.shape))
    interp.allocate_tensors()
    interp.set_tensor(detail["index"], q)
    interp.invoke()
    return correct(f"my_quantize gives the exact int8 tensor the model expects for all "
                   f"{len(batch)} rows, including two far outside the calibrated range, which "
                   "clip to -128/127 instead of wrapping around; the interpreter ran on it.")


# --- the conversion exercise: the plain converter call, checked by running what it wrote ---

# float32 TFLite runs the same float32 math as Keras; only summation order differs, so the
# largest difference is float32 rounding (~1e-7 here). 1e-5 leaves a wide margin and is far
# below what any quantized variant gives (float16 ~1e-3, int8 ~1e-2 on this model).
FLOAT32_TOLERANCE = 1e-5


def _exercise_model() -> Any:
    """A model the learner has not seen: 8 features in, 3 logits out, fresh random weights.

    Its kernels hold >= 1024 weights each because the converter leaves smaller tensors in
    float32 even when asked to quantize, and a quantized answer must be told apart."""
    import keras

    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(128, activation="relu"),
                             keras.layers.Dense(128, activation="relu"), keras.layers.Dense(3)])


def check_convert(my_convert: Callable[[str, str], Any] | None,
                  folder: str | os.PathLike[str] | None = None) -> Feedback:
    """Does ``my_convert(keras_file, tflite_file)`` write a float32 TFLite file of that model?

    The checker saves a model it builds itself as a ``.keras`` file in a new folder, calls the
    learner's function with that path and the ``.tflite`` path to write, then opens the result
    with LiteRT, runs a batch through it and compares with the Keras model's predictions.
    """
    if my_convert is None or is_placeholder(my_convert):
        return NOT_ANSWERED
    import contextlib
    import io

    from forgekit import tflite
    from forgekit.formats.detect import detect_format

    work = unused_path(folder, "forgekit-tflite-")
    work.mkdir(parents=True)
    model = _exercise_model()
    keras_file, tflite_file = work / "given.keras", work / "given.tflite"
    model.save(keras_file)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # from_keras_model prints its export log
            returned = my_convert(str(keras_file), str(tflite_file))
    except Exception as exc:  # the learner's code: any failure is feedback
        text = f"{type(exc).__name__}: {exc}"
        if "SavedModel file does not exist" in str(exc):
            return wrong(f"my_convert raised {text}\nfrom_saved_model reads an export *folder* "
                         "(saved_model.pb + variables/), and you gave it the .keras file. Load "
                         "it with keras.models.load_model and convert with "
                         "TFLiteConverter.from_keras_model(model), or model.export(folder) first.")
        return wrong(f"my_convert raised {text}")
    if not tflite_file.exists():
        if isinstance(returned, bytes | bytearray):
            return wrong("my_convert returned the flatbuffer's bytes but wrote nothing at "
                         "tflite_file: write them with Path(tflite_file).write_bytes(...).")
        return wrong(f"nothing was written at {tflite_file}: converter.convert() returns bytes; "
                     "write them to the tflite_file path you were given.")
    found = detect_format(tflite_file)
    if found.kind != "tflite":
        return wrong(f"{tflite_file.name} is {found.kind}, not a TFLite flatbuffer: write the "
                     "bytes converter.convert() returns.")
    interp = tflite.interpreter(tflite_file)
    detail = interp.get_input_details()[0]
    features = int(detail["shape"][-1])
    if features != 8:
        return wrong(f"your file takes {features} features per row; the model in {keras_file.name} "
                     "takes 8. Did you convert another model (the notebook's `model`?) instead of "
                     "loading the file you were given?")
    if detail["dtype"] != np.float32:
        return wrong(f"your file takes {np.dtype(detail['dtype']).name} input: you asked for full-"
                     "integer quantization. The plain call needs no settings and keeps float32.")
    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    diff = float(np.max(np.abs(tflite.predict(interp, x) - model.predict(x, verbose=0))))
    size, weights = tflite_file.stat().st_size, model.count_params() * 4
    if diff <= FLOAT32_TOLERANCE:
        return correct(f"LiteRT ran your {size:,}-byte file on 64 rows and it answers like the "
                       f"Keras model (largest difference {diff:.2g}, float32 rounding).")
    if size < weights:
        return wrong(f"your file is {size:,} bytes, smaller than the model's {weights:,} bytes of "
                     f"float32 weights, and differs from Keras by up to {diff:.3g}: you quantized "
                     "(optimizations=...). The exercise asks for the plain float32 conversion.")
    return wrong(f"your file answers unlike the Keras model in {keras_file.name} (largest "
                 f"difference {diff:.3g}): convert the model loaded from that file, not another one.")
