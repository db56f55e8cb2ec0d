"""TFLite: convert an exported SavedModel four ways, run each with LiteRT, and measure them.

The variants are the converter settings TensorFlow documents for post-training quantization:

- ``float32``: no optimization, the same float math as the SavedModel;
- ``dynamic_range``: ``Optimize.DEFAULT`` alone: int8 weights, float activations;
- ``float16``: ``Optimize.DEFAULT`` + ``supported_types=[tf.float16]``: half-size weights;
- ``full_integer``: ``Optimize.DEFAULT`` + a representative dataset + int8-only ops and int8
  input/output: every tensor quantized, the caller scales inputs and outputs itself.

Models run with LiteRT (``ai_edge_litert.interpreter.Interpreter``), which TensorFlow 2.21
recommends in place of the deprecated ``tf.lite.Interpreter``. :func:`predict` does what a
caller of a quantized model must: quantize the input with the input tensor's scale and zero
point, and dequantize the output with the output tensor's. TensorFlow is imported only inside
the functions that convert.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.errors import WrongFormatError
from forgekit.table import Table, human_bytes

VARIANTS = ("float32", "dynamic_range", "float16", "full_integer")

# What each variant sets on the converter, as the lesson prints it.
SETTINGS = {
    "float32": "(defaults)",
    "dynamic_range": "optimizations=[tf.lite.Optimize.DEFAULT]",
    "float16": "optimizations=[tf.lite.Optimize.DEFAULT]; "
               "target_spec.supported_types=[tf.float16]",
    "full_integer": "optimizations=[tf.lite.Optimize.DEFAULT]; representative_dataset=...; "
                    "target_spec.supported_ops=[tf.lite.OpsSet.TFLITE_BUILTINS_INT8]; "
                    "inference_input_type=inference_output_type=tf.int8",
}


def representative_dataset(x: np.ndarray) -> Callable[[], Iterator[list]]:
    """The generator the converter calibrates activation ranges with: each row of ``x`` once."""
    calibration = np.asarray(x, dtype=np.float32)

    def generate() -> Iterator[list]:
        for row in calibration:
            yield [row[None]]  # a list with one array per model input, batch of 1

    return generate


def converter(saved_model_dir: str | os.PathLike[str], variant: str,
              representative: np.ndarray | None = None) -> Any:
    """A ``tf.lite.TFLiteConverter.from_saved_model`` configured for ``variant``.

    ``representative`` (full_integer only) holds the calibration examples, a few hundred
    typical inputs: their ranges decide every int8 scale, so an input outside them is clipped.
    """
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    _require_savedmodel(saved_model_dir)
    conv = tf.lite.TFLiteConverter.from_saved_model(os.fspath(saved_model_dir))
    if variant != "float32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        conv.target_spec.supported_types = [tf.float16]
    if variant == "full_integer":
        if representative is None:
            raise ValueError("full_integer needs representative= inputs to calibrate with")
        conv.representative_dataset = representative_dataset(representative)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv


def _require_savedmodel(path: str | os.PathLike[str]) -> None:
    from forgekit import detect_format

    info = detect_format(path)
    if info.kind != "savedmodel":
        raise WrongFormatError(
            "TFLiteConverter.from_saved_model reads SavedModel folders only", path=path,
            found=info.kind, expected="savedmodel",
            fix="load it with forgekit.load(path), then model.export('export_dir') and convert "
                "that folder")


def convert(saved_model_dir: str | os.PathLike[str], variant: str,
            path: str | os.PathLike[str], representative: np.ndarray | None = None) -> Path:
    """Convert ``saved_model_dir`` as ``variant`` and write the flatbuffer to ``path``."""
    from forgekit.quiet import quiet_absl

    with quiet_absl():
        flatbuffer = converter(saved_model_dir, variant, representative).convert()
    target = Path(path)
    target.write_bytes(flatbuffer)
    return target


def interpreter(model: str | os.PathLike[str] | bytes, num_threads: int | None = None) -> Any:
    """A LiteRT interpreter for a .tflite path (or its bytes), tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    kw = {"model_content": model} if isinstance(model, bytes) else {"model_path": os.fspath(model)}
    interp = Interpreter(num_threads=num_threads, **kw)
    interp.allocate_tensors()
    return interp


def quantize(x: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    """Float values to a quantized tensor: ``round(x / scale + zero_point)``, clipped to the type."""
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail["quantization"]
    if not np.issubdtype(dtype, np.integer) or scale == 0:
        return np.asarray(x, dtype=dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(x) / scale + zero), info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    """A quantized tensor back to floats: ``(q - zero_point) * scale``."""
    scale, zero = detail["quantization"]
    if not np.issubdtype(np.dtype(detail["dtype"]), np.integer) or scale == 0:
        return np.asarray(q, dtype=np.float32)
    return ((q.astype(np.float32) - zero) * scale).astype(np.float32)


def _feed(interp: Any, x: np.ndarray) -> tuple[dict, dict]:
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    if tuple(inp["shape"]) != tuple(x.shape):
        interp.resize_tensor_input(inp["index"], list(x.shape))
        interp.allocate_tensors()
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    return inp, out


def predict(interp: Any, x: np.ndarray) -> np.ndarray:
    """Run the whole batch ``x`` through a one-input, one-output model; float outputs."""
    x = np.asarray(x, dtype=np.float32)
    inp, out = _feed(interp, x)
    interp.set_tensor(inp["index"], quantize(x, inp))
    interp.invoke()
    return dequantize(interp.get_tensor(out["index"]), out)


def latency_ms(interp: Any, x: np.ndarray, runs: int = 200) -> float:
    """Median milliseconds of one ``set_tensor`` + ``invoke`` + ``get_tensor`` on batch ``x``."""
    x = np.asarray(x, dtype=np.float32)
    inp, out = _feed(interp, x)
    q = quantize(x, inp)
    times = []
    for _ in range(max(runs, 1) + 5):
        start = time.perf_counter()
        interp.set_tensor(inp["index"], q)
        interp.invoke()
        interp.get_tensor(out["index"])
        times.append(time.perf_counter() - start)
    return statistics.median(times[5:]) * 1e3  # the first few runs warm caches


def _analysis(model: str | os.PathLike[str] | bytes) -> str:
    """What ``tf.lite.experimental.Analyzer.analyze`` prints about a .tflite path or its bytes."""
    import contextlib
    import io

    import tensorflow as tf

    content = model if isinstance(model, bytes) else Path(model).read_bytes()
    with contextlib.redirect_stdout(io.StringIO()) as report:
        tf.lite.experimental.Analyzer.analyze(model_content=content)
    return report.getvalue()


def op_names(model: str | os.PathLike[str] | bytes) -> list[str]:
    """The ops of a .tflite model's first subgraph, in order (the ``Op#`` lines of
    ``tf.lite.experimental.Analyzer.analyze``)."""
    report = _analysis(model).split("Tensors of Subgraph#0")[0]
    return re.findall(r"Op#\d+ (\w+)\(", report)


def byte_breakdown(*paths: str | os.PathLike[str]) -> Table:
    """Where each .tflite file's bytes go: its constant tensors grouped by type and rank (2-D
    kernels, 1-D biases), their quantization scales and zero points, and the rest.

    Constant tensors are those the Analyzer marks read-only (``RO n bytes``). Each of their
    scales is stored as a float32 and its zero point as an int64: 4 + 8 bytes (the flatbuffer
    schema's ``QuantizationParameters``). The rest is the graph, activation scales and padding.
    """
    from ai_edge_litert.interpreter import Interpreter

    scales_row, rest_row = "scales + zero points, 4 + 8 B each (count)", "graph, activation scales, rest"
    columns: list[dict[str, str]] = []
    for path in paths:
        details = Interpreter(model_path=os.fspath(path)).get_tensor_details()
        sizes: dict[str, int] = {}
        scales = 0
        for index, shape, dtype, size in re.findall(
                r"T#(\d+)\(.*?\) shape:\[([^\]]*)\], type:(\w+) RO (\d+) bytes", _analysis(path)):
            role = {2: "kernels", 1: "biases"}.get(len(shape.split(",")), "other constants")
            sizes[f"{dtype.lower()} {role}"] = sizes.get(f"{dtype.lower()} {role}", 0) + int(size)
            scales += len(details[int(index)]["quantization_parameters"]["scales"])
        rest = Path(path).stat().st_size - sum(sizes.values()) - 12 * scales
        columns.append({k: human_bytes(v) for k, v in sizes.items()}
                       | {scales_row: f"{human_bytes(12 * scales)} ({scales:,})",
                          rest_row: human_bytes(rest)})
    found = dict.fromkeys(k for column in columns for k in column if k not in (scales_row, rest_row))
    roles = ("kernels", "biases", "other constants")
    table = Table(["part", *(Path(p).name for p in paths)], title="where each file's bytes go")
    for row in sorted(found, key=lambda k: roles.index(k.split(" ", 1)[1])) + [scales_row, rest_row]:
        table.add(row, *(column.get(row, "-") for column in columns))
    return table


@dataclass(frozen=True)
class VariantResult:
    """One converted model measured against the Keras model on the same held-out inputs."""

    variant: str
    path: Path
    size_bytes: int
    max_abs_diff: float  # largest |TFLite - Keras| over every output value
    accuracy: float  # fraction of held-out labels the argmax gets right
    agreement: float  # fraction of examples whose argmax equals the Keras model's
    latency_ms: float  # median, batch of 1


def measure(path: str | os.PathLike[str], x: np.ndarray, y: np.ndarray, reference: np.ndarray,
            *, variant: str | None = None, runs: int = 200) -> VariantResult:
    """Size, max abs difference from ``reference``, accuracy on ``(x, y)`` and latency."""
    from forgekit import detect_format

    info = detect_format(path)
    if info.kind != "tflite":
        raise WrongFormatError("not a TFLite flatbuffer", path=path, found=info.kind,
                               expected="tflite", fix="forgekit.tflite.convert(export_dir, ...)")
    interp = interpreter(path)
    outputs = predict(interp, x)
    return VariantResult(
        variant or Path(path).stem, Path(path), info.size_bytes,
        float(np.max(np.abs(outputs - reference))),
        float(np.mean(np.argmax(outputs, axis=-1) == y)),
        float(np.mean(np.argmax(outputs, axis=-1) == np.argmax(reference, axis=-1))),
        latency_ms(interp, x[:1], runs))


def results_table(results: list[VariantResult], keras_accuracy: float | None = None,
                  latency: bool = True) -> Table:
    """The measurements side by side, sizes relative to the first (float32) row.

    ``latency=False`` leaves out the batch-1 latency column: on a host CPU it is mostly Python
    call overhead, not a device figure.
    """
    base = results[0].size_bytes
    table = Table(["variant", "size", "x smaller", "max |Δ| vs Keras", "accuracy",
                   "same argmax as Keras"] + (["latency (batch 1)"] if latency else []),
                  title="TFLite variants, measured")
    for r in results:
        table.add(r.variant, human_bytes(r.size_bytes), f"{base / r.size_bytes:.2f}",
                  f"{r.max_abs_diff:.3g}", f"{r.accuracy:.1%}", f"{r.agreement:.1%}",
                  *([f"{r.latency_ms * 1e3:.0f} µs"] if latency else []))
    if keras_accuracy is not None:
        table.notes.append(f"Keras model accuracy on the same inputs: {keras_accuracy:.1%}")
    return table
