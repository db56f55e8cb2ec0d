"""Lesson 04's checkers: a right answer passes, each typical wrong answer fails with its reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forgekit.exercises.tflite import check_convert, check_quantize


def _plain(keras_file, tflite_file):
    import keras
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(keras.models.load_model(keras_file))
    Path(tflite_file).write_bytes(converter.convert())


def _via_export(keras_file, tflite_file):
    import keras
    import tensorflow as tf

    folder = str(Path(tflite_file).with_suffix(""))
    keras.models.load_model(keras_file).export(folder, verbose=False)
    Path(tflite_file).write_bytes(tf.lite.TFLiteConverter.from_saved_model(folder).convert())


def _from_file(keras_file, tflite_file):  # the trap: from_saved_model on the .keras file
    import tensorflow as tf

    Path(tflite_file).write_bytes(tf.lite.TFLiteConverter.from_saved_model(keras_file).convert())


def _returns_bytes(keras_file, tflite_file):
    import keras
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(keras.models.load_model(keras_file)).convert()


def _quantized(keras_file, tflite_file):
    import keras
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(keras.models.load_model(keras_file))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    Path(tflite_file).write_bytes(converter.convert())


def _other_model(keras_file, tflite_file):  # a model of the same shape, not the file's
    import tensorflow as tf

    from forgekit.exercises.tflite import _exercise_model

    other = _exercise_model()
    Path(tflite_file).write_bytes(tf.lite.TFLiteConverter.from_keras_model(other).convert())


def test_check_convert_runs_the_file_and_says_why(tmp_path):
    assert check_convert(_plain, tmp_path).passed
    assert check_convert(_via_export, tmp_path).passed
    assert not check_convert(None, tmp_path).passed
    cases = {_from_file: "from_saved_model reads an export *folder*",
             _returns_bytes: "returned the flatbuffer's bytes",
             _quantized: "you quantized", _other_model: "convert the model loaded from that file"}
    for answer, why in cases.items():
        feedback = check_convert(answer, tmp_path)
        assert not feedback.passed and why in feedback.message, (answer.__name__, feedback.message)
    assert not any(p.name == "given.keras" for p in Path.cwd().iterdir())  # it works in tmp_path


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    import keras

    from forgekit import tflite

    folder = tmp_path_factory.mktemp("int8")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2)])
    model.export(folder / "export", verbose=False)
    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    return (tflite.convert(folder / "export", "full_integer", folder / "int8.tflite", x),
            tflite.convert(folder / "export", "float32", folder / "float32.tflite"), x)


def test_check_quantize_says_why_a_quantizer_is_wrong(int8_model):
    from forgekit import tflite

    model, float_model, x = int8_model

    def right(x, d):
        scale, zero = d["quantization"]
        return np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)

    assert check_quantize(right, model, x).passed
    assert not check_quantize(None, model, x).passed
    cases = {
        "multiplied by the scale": lambda x, d: np.clip(
            np.round(x * d["quantization"][0] + d["quantization"][1]), -128, 127).astype(np.int8),
        "did not clip": lambda x, d: np.round(
            x / d["quantization"][0] + d["quantization"][1]).astype(np.int64).astype(np.int8),
        "returned float32": lambda x, d: x / d["quantization"][0],
        "raised ZeroDivisionError": lambda x, d: 1 // 0,
    }
    for why, answer in cases.items():
        feedback = check_quantize(answer, model, x)
        assert not feedback.passed and why in feedback.message, (why, feedback.message)
    # leaving out the zero point is only a mistake when it is not 0
    scale, zero = tflite.interpreter(model).get_input_details()[0]["quantization"]
    no_zero = check_quantize(lambda x, d: np.clip(np.round(x / scale), -128, 127).astype(np.int8),
                             model, x)
    assert no_zero.passed == (zero == 0)
    assert zero == 0 or "zero point" in no_zero.message
    assert "not quantized int8" in check_quantize(right, float_model, x).message
