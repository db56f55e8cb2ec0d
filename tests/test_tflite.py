"""TFLite variants converted from a fresh export, run with LiteRT, measured against Keras.

Tolerances come from what each variant rounds (numbers seen on this model in brackets: the
largest over three seeds; logits here stay within |4.5|):
- float32 keeps float32 weights and math; only the kernels' summation order differs, so
  differences are float32 rounding, ~1e-7 relative per operation [7e-7]. Bound: 1e-5.
- float16 rounds each weight to 11 significant bits (relative error <= 2**-11 = 4.9e-4); the
  errors of a layer's sum mostly cancel, so logits move by ~1e-3 [1.3e-3]. Bound: 1e-2.
- dynamic range stores int8 weights (step = max|w|/127 per channel, relative error up to 0.4%)
  and quantizes activations to int8 on the fly: ~1% of the logit scale [0.036]. Bound: 0.15,
  and the predicted class agrees with Keras on >= 98% of examples [99.6%].
- full integer quantizes every activation to 8 bits with ranges calibrated on 200 training
  examples; an input outside that range is clipped, so the *largest* difference is unbounded
  [up to 1.2] while the mean stays at a fraction of one output step [0.016]. Bounds: mean |Δ|
  <= 0.05, argmax agreement >= 97% [99.0%], accuracy within 3 points of Keras [0.6].
"""

from __future__ import annotations

import numpy as np
import pytest

from forgekit import tflite
from forgekit.errors import WrongFormatError
from forgekit.table import human_bytes


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    import keras

    from forgekit.training import build_model, make_task

    folder = tmp_path_factory.mktemp("tflite")
    task = make_task("classify", n_train=1024, n_val=512, noise=0.05, seed=0)
    keras.utils.set_random_seed(0)
    model = build_model(task, width=64)
    model.fit(task.x_train, task.y_train, epochs=6, batch_size=32, verbose=0)
    model.export(folder / "export", verbose=False)
    model.save(folder / "model.h5")
    reference = model.predict(task.x_val, verbose=0)
    paths = {v: tflite.convert(folder / "export", v, folder / f"{v}.tflite",
                               representative=task.x_train[:200]) for v in tflite.VARIANTS}
    results = {v: tflite.measure(p, task.x_val, task.y_val, reference, variant=v, runs=20)
               for v, p in paths.items()}
    keras_accuracy = float(np.mean(np.argmax(reference, -1) == task.y_val))
    return folder, task, reference, paths, results, keras_accuracy


def test_float32_answers_like_keras(converted):
    *_, results, keras_accuracy = converted
    r = results["float32"]
    assert r.max_abs_diff <= 1e-5
    assert r.agreement == 1.0 and r.accuracy == keras_accuracy


def test_float16_within_half_precision_rounding(converted):
    *_, results, keras_accuracy = converted
    r = results["float16"]
    assert 0 < r.max_abs_diff <= 1e-2, "float16 weights must change the answers a little"
    assert abs(r.accuracy - keras_accuracy) <= 0.01


def test_dynamic_range_within_int8_weight_rounding(converted):
    *_, results, keras_accuracy = converted
    r = results["dynamic_range"]
    assert 0 < r.max_abs_diff <= 0.15
    assert r.agreement >= 0.98 and abs(r.accuracy - keras_accuracy) <= 0.02


def test_full_integer_close_on_average_and_in_accuracy(converted):
    folder, task, reference, paths, results, keras_accuracy = converted
    interp = tflite.interpreter(paths["full_integer"])
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert inp["quantization"][0] > 0 and out["quantization"][0] > 0
    mean_diff = float(np.mean(np.abs(tflite.predict(interp, task.x_val) - reference)))
    assert mean_diff <= 0.05
    r = results["full_integer"]
    assert r.agreement >= 0.97 and abs(r.accuracy - keras_accuracy) <= 0.03


def test_sizes_follow_the_bytes_per_weight(converted):
    *_, results, _ = converted
    size = {v: r.size_bytes for v, r in results.items()}
    # float16 halves the weights only (graph and metadata stay), so at most 2x smaller
    assert 1.5 <= size["float32"] / size["float16"] <= 2.0
    # int8 weights: a quarter of the weight bytes, so both 8-bit variants beat float16
    assert size["dynamic_range"] < size["float16"] and size["full_integer"] < size["float16"]
    assert all(r.latency_ms > 0 for r in results.values())


def test_quantize_uses_scale_zero_point_and_clips():
    detail = {"dtype": np.int8, "quantization": (0.5, -3)}
    q = tflite.quantize(np.array([0.0, 1.0, 1000.0, -1000.0]), detail)
    assert q.dtype == np.int8 and q.tolist() == [-3, -1, 127, -128]
    assert tflite.dequantize(q[:2], detail).tolist() == [0.0, 1.0]
    plain = {"dtype": np.float32, "quantization": (0.0, 0)}
    assert tflite.quantize(np.array([1.5]), plain).tolist() == [1.5]


def test_converter_refuses_an_h5_with_the_fix(converted):
    folder, *_ = converted
    with pytest.raises(WrongFormatError) as err:
        tflite.converter(folder / "model.h5", "float32")
    assert err.value.found == "h5_model" and err.value.expected == "savedmodel"
    assert "model.export" in err.value.fix
    with pytest.raises(ValueError, match="representative"):
        tflite.converter(folder / "export", "full_integer")


def test_measure_refuses_a_non_tflite(converted):
    folder, task, reference, *_ = converted
    with pytest.raises(WrongFormatError, match="found h5_model"):
        tflite.measure(folder / "model.h5", task.x_val, task.y_val, reference)


def test_op_names_list_the_ops_in_order(converted):
    _, _, _, paths, *_ = converted
    # int8 I/O: no QUANTIZE op at the ends, the caller quantizes
    assert tflite.op_names(paths["full_integer"]) == ["FULLY_CONNECTED"] * 3
    assert tflite.op_names(paths["float32"].read_bytes()) == ["FULLY_CONNECTED"] * 3


def test_byte_breakdown_accounts_for_every_byte(converted):
    _, _, _, paths, _, _ = converted
    table = tflite.byte_breakdown(paths["full_integer"], paths["dynamic_range"], paths["float32"])
    rows = {row[0]: row[1:] for row in table.rows}
    # width 64: kernels 32x64, 64x64, 64x2; every output unit of a kernel and a bias has a scale
    weights = 32 * 64 + 64 * 64 + 64 * 2
    assert rows["int8 kernels"][0] == human_bytes(weights)
    assert rows["float32 kernels"][2] == human_bytes(4 * weights)
    assert rows["int32 biases"][0] == human_bytes(4 * (64 + 64 + 2))
    assert rows["scales + zero points, 4 + 8 B each (count)"][0].endswith(f"({2 * 130:,})")
    # dynamic range leaves the 64x2 kernel (128 < 1,024 elements) float32
    assert rows["float32 kernels"][1] == human_bytes(4 * 64 * 2)
    rest = rows["graph, activation scales, rest"]
    assert all(cell.endswith(" KB") and float(cell.split()[0]) < 8 for cell in rest), rest
