"""Lesson 04's checker: a right quantizer passes, each typical wrong one fails with its reason."""

from __future__ import annotations

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
        "truncated instead of rounding": lambda x, d: np.clip(
            x / _q(d)[0] + _q(d)[1], -128, 127).astype(np.int8),
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
