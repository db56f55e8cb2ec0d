"""Lesson 04's checker: a right quantizer passes, each typical wrong one fails with its reason."""

from __future__ import annotations

import re

import numpy as np
import pytest

from forgekit.exercises.tflite import check_quantize


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    import keras

    from forgekit import tflite

    folder = tmp_path_factory.mktemp("int8")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2)])
    model.export(folder / "export", verbose=False)
    # shifted inputs, so the input's zero point is not 0 and its sign matters
    x = (np.random.default_rng(0).normal(size=(64, 8)) + 1.5).astype(np.float32)
    y = np.argmax(model.predict(x, verbose=0), -1)
    return (tflite.convert(folder / "export", "full_integer", folder / "int8.tflite", x),
            tflite.convert(folder / "export", "float32", folder / "float32.tflite"), x, y)


def _q(d):
    return d["quantization"]


def test_check_quantize_runs_the_model_and_says_why(int8_model):
    from forgekit import tflite

    model, float_model, x, y = int8_model
    scale, zero = tflite.interpreter(model).get_input_details()[0]["quantization"]
    assert zero != 0  # the fixture's point: a wrong sign must show

    def right(x, d):
        return np.clip(np.round(x / _q(d)[0] + _q(d)[1]), -128, 127).astype(np.int8)

    def placeholder(x, d):
        ...

    feedback = check_quantize(right, model, x, y)
    assert feedback.passed and "LiteRT ran on it" in feedback.message
    assert "accuracy 100.0% against 100.0%" in feedback.message  # y = the model's own argmax
    assert not check_quantize(None, model, x).passed
    assert "placeholder" in check_quantize(placeholder, model, x).message
    cases = {
        "alone": lambda x, d: x.astype(np.int8),
        "without the scale and zero point": lambda x, d: np.clip(np.round(x), -128, 127).astype(np.int8),
        "multiplied by the scale": lambda x, d: np.clip(
            np.round(x * _q(d)[0] + _q(d)[1]), -128, 127).astype(np.int8),
        "left out the zero point": lambda x, d: np.clip(np.round(x / _q(d)[0]), -128, 127).astype(np.int8),
        "subtracted the zero point": lambda x, d: np.clip(
            np.round(x / _q(d)[0] - _q(d)[1]), -128, 127).astype(np.int8),
        "truncated and did not clip": lambda x, d: (x / _q(d)[0] + _q(d)[1]).astype(np.int8),
        "truncated instead of rounding": lambda x, d: np.clip(
            x / _q(d)[0] + _q(d)[1], -128, 127).astype(np.int8),
        "rounded down with np.floor": lambda x, d: np.clip(
            np.floor(x / _q(d)[0] + _q(d)[1]), -128, 127).astype(np.int8),
        "did not clip": lambda x, d: np.round(
            x / _q(d)[0] + _q(d)[1]).astype(np.int64).astype(np.int8),
        "returned float32": lambda x, d: x / _q(d)[0],
        "returned shape": lambda x, d: right(x, d)[:, :4],
        "raised ZeroDivisionError": lambda x, d: 1 // 0,
    }
    for why, answer in cases.items():
        feedback = check_quantize(answer, model, x, y)
        assert not feedback.passed and why in feedback.message, (why, feedback.message)
    # a wrong tensor that still runs: the checker says what the model made of it
    cast = check_quantize(cases["alone"], model, x, y).message
    assert "LiteRT ran on it" in cast and "for the right tensor" in cast
    assert "not quantized int8" in check_quantize(right, float_model, x).message
    # a mistake that leaves the learner's rows almost right says where it shows: the probe rows
    unclipped = check_quantize(cases["did not clip"], model, x, y).message
    assert "all 512 values of your rows come out right" in unclipped
    assert "probe rows 50.0 became" in unclipped and "holds 127 and -128 (clipped)" in unclipped
    assert "probe rows" not in check_quantize(cases["left out the zero point"], model, x, y).message
    # the wrap-around message shows what 50.0 becomes on this model, computed from its scale
    big = int(np.round(50.0 / scale + zero))
    wrapped = int(np.array([big]).astype(np.int8)[0])
    assert f"50.0 -> {big}, which wraps to {wrapped}, not 127" in check_quantize(
        cases["did not clip"], model, x).message


def test_check_quantize_refuses_forgekit_own_quantizer(int8_model):
    from forgekit import tflite

    model, _, x, _ = int8_model

    def borrowed(x, d):
        return tflite.quantize(x, d)

    feedback = check_quantize(borrowed, model, x)
    assert not feedback.passed and "forgekit's own quantizer" in feedback.message


def test_check_quantize_accepts_either_rounding_on_a_tie_and_only_there(int8_model):
    model, _, x, y = int8_model

    def half_away(x, d):  # TFLite's reference kernel: std::round, a .5 tie away from zero
        v = x / _q(d)[0] + _q(d)[1]
        return np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -128, 127).astype(np.int8)

    def round_then_shift(x, d):  # round(x / scale) + zero_point: a tie's parity moves
        return np.clip(np.round(x / _q(d)[0]) + _q(d)[1], -128, 127).astype(np.int8)

    def half_to_even(x, d):
        return np.clip(np.round(x / _q(d)[0] + _q(d)[1]), -128, 127).astype(np.int8)

    from forgekit import tflite

    scale, zero = _q(tflite.interpreter(model).get_input_details()[0])
    tie_row = ((np.arange(8) % 40 - 20 + 0.5 - zero) * scale).astype(np.float32)
    # the probe's tie row really is where the two roundings part
    assert not np.array_equal(half_away(tie_row, {"quantization": (scale, zero)}),
                              half_to_even(tie_row, {"quantization": (scale, zero)}))
    for answer in (half_away, round_then_shift, half_to_even):
        feedback = check_quantize(answer, model, x, y)
        ties = re.search(r"(\d+) values on a \.5 tie", feedback.message)
        assert feedback.passed and ties and int(ties[1]) >= 8, feedback.message  # the tie row

    def one_step_off(x, d):  # off by one away from any tie: wrong
        q = half_to_even(x, d).astype(np.int16)
        q[0, 0] += 1 if q[0, 0] < 127 else -1
        return q.astype(np.int8)

    feedback = check_quantize(one_step_off, model, x, y)
    assert not feedback.passed and "1 of" in feedback.message and "not counting" in feedback.message

    def no_clip_half_away(x, d):  # a tie rule of its own does not hide the missing clip
        v = x / _q(d)[0] + _q(d)[1]
        return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64).astype(np.int8)

    assert "did not clip" in check_quantize(no_clip_half_away, model, x, y).message


def test_check_quantize_refuses_forgekit_quantizer_by_any_name_and_only_it(int8_model):
    import forgekit
    from forgekit.tflite import quantize as q

    model, _, x, _ = int8_model

    def aliased(x, d):
        return q(x, d)

    def by_module(x, d):
        return forgekit.tflite.quantize(x, d)

    for borrowed in (aliased, by_module):
        assert "forgekit's own quantizer" in check_quantize(borrowed, model, x).message

    def own(x, d):  # a learner's own variable named quantize is their answer, not forgekit's
        scale, zero = d["quantization"]
        quantize = np.clip(np.round(x / scale + zero), -128, 127)
        return quantize.astype(np.int8)

    assert check_quantize(own, model, x).passed
