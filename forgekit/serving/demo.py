"""Tiny, deterministic SavedModels to serve in lessons, tests and benchmarks.

Weights are fixed numbers rather than random, so two exports with the same ``scale`` predict
the same thing and a different ``scale`` is visibly a different model version.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np


def export_demo_model(path: str | os.PathLike[str], kind: Literal["single", "multi"] = "single",
                      *, scale: float = 1.0) -> Path:
    """Export a small Keras model with ``model.export(path)`` and return ``path``.

    ``single``: input ``x`` (float32, shape [-1, 4]) -> one output of shape [-1, 2].
    ``multi``: input ``features`` ([-1, 3]) -> named outputs ``price`` ([-1, 1]) and
    ``category`` ([-1, 3], softmax).
    """
    import keras

    path = Path(path)
    if kind == "single":
        x = keras.Input(shape=(4,), name="x")
        dense = keras.layers.Dense(2, name="y")
        model = keras.Model(x, dense(x))
        dense.set_weights([scale * np.arange(8, dtype=np.float32).reshape(4, 2) / 10,
                           np.array([0.5, -0.5], np.float32)])
    elif kind == "multi":
        features = keras.Input(shape=(3,), name="features")
        hidden = keras.layers.Dense(4, activation="relu", name="hidden")
        price = keras.layers.Dense(1, name="price")
        category = keras.layers.Dense(3, activation="softmax", name="category")
        h = hidden(features)
        model = keras.Model(features, {"price": price(h), "category": category(h)})
        hidden.set_weights([scale * np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
                            np.full(4, 0.1, np.float32)])
        price.set_weights([np.array([[1.0], [2.0], [-1.0], [0.5]], np.float32),
                           np.array([3.0], np.float32)])
        category.set_weights([np.linspace(-2, 2, 12, dtype=np.float32).reshape(4, 3),
                              np.zeros(3, np.float32)])
    else:
        raise ValueError(f"kind must be 'single' or 'multi', not {kind!r}")
    model.export(str(path), verbose=False)
    return path


def export_half_plus_two(path: str | os.PathLike[str], *, offset: float = 2.0,
                         method_name_aliases: bool = False) -> Path:
    """Export TF Serving's ``half_plus_two`` test model, rebuilt as a TF1-style graph.

    The graph takes serialized ``tf.train.Example`` protos (``tf_example``), parses a float
    feature ``x`` (shape [1]) and an optional ``x2`` (default 0), and computes
    ``y = 0.5 * x + offset``, ``y2 = 0.5 * x + offset + 1`` and ``y3 = 0.5 * x2 + 3``.
    Signatures, as in TF Serving's own test model:

    * ``serving_default`` (predict): ``x`` (float, [-1, 1]) -> ``y``;
    * ``regress_x_to_y``, ``regress_x_to_y2`` (regress): Examples -> ``outputs``;
    * ``regress_x2_to_y3`` / ``classify_x2_to_y3``: the float tensor ``x2`` -> ``outputs`` /
      ``scores`` (not Examples: callable through predict only);
    * ``classify_x_to_y`` (classify): Examples -> ``scores`` (no ``classes``);
    * with ``method_name_aliases``, also ``tensorflow/serving/regress`` and
      ``tensorflow/serving/classify``: ``regress_x_to_y`` / ``classify_x_to_y`` under the names
      TF Serving's REST guide uses with ``half_plus_three``.

    ``offset=3`` gives ``half_plus_three``. Written with ``SavedModelBuilder``, so the
    signatures carry TF Serving's classify/regress method names, and their tensor names and
    shapes are those of TF Serving's test model.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    path = Path(path)
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        a = v1.Variable(0.5, name="a")
        b = v1.Variable(float(offset), name="b")
        c = v1.Variable(float(offset) + 1.0, name="c")
        a2 = v1.Variable(0.5, name="a2")
        c2 = v1.Variable(3.0, name="c2")
        examples = v1.placeholder(tf.string, name="tf_example")  # unknown rank, as there
        parsed = v1.io.parse_example(examples, {
            "x": v1.io.FixedLenFeature([1], tf.float32),
            "x2": v1.io.FixedLenFeature([1], tf.float32, default_value=[0.0])})
        for feature in parsed.values():  # one value per example (a static shape, no op)
            feature.set_shape([None, 1])
        x = tf.identity(parsed["x"], name="x")
        y = tf.identity(a * x + b, name="y")
        y2 = tf.identity(a * x + c, name="y2")
        x2 = tf.identity(parsed["x2"], name="x2")
        y3 = tf.identity(a2 * x2 + c2, name="y3")
        info = v1.saved_model.utils.build_tensor_info
        build = v1.saved_model.signature_def_utils.build_signature_def
        constants = v1.saved_model.signature_constants

        def regress(inp, out):
            return build({constants.REGRESS_INPUTS: info(inp)},
                         {constants.REGRESS_OUTPUTS: info(out)}, constants.REGRESS_METHOD_NAME)

        def classify(inp, scores):
            return build({constants.CLASSIFY_INPUTS: info(inp)},
                         {constants.CLASSIFY_OUTPUT_SCORES: info(scores)},
                         constants.CLASSIFY_METHOD_NAME)

        signatures = {
            "serving_default": build({"x": info(x)}, {"y": info(y)},
                                     constants.PREDICT_METHOD_NAME),
            "regress_x_to_y": regress(examples, y),
            "regress_x_to_y2": regress(examples, y2),
            "regress_x2_to_y3": regress(x2, y3),
            "classify_x_to_y": classify(examples, y),
            "classify_x2_to_y3": classify(x2, y3),
        }
        if method_name_aliases:
            signatures[constants.REGRESS_METHOD_NAME] = regress(examples, y)
            signatures[constants.CLASSIFY_METHOD_NAME] = classify(examples, y)
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(path))
        builder.add_meta_graph_and_variables(session, ["serve"],
                                             signature_def_map=signatures)
        builder.save()
    return path


def export_half_plus_two_tf2(path: str | os.PathLike[str]) -> Path:
    """Export TF Serving's native TF2 ``saved_model_half_plus_two_tf2_cpu`` test model.

    The same signatures as :func:`export_half_plus_two` (``y = 0.5 * x + 2``), written the TF2
    way, with ``tf.saved_model.save``: every SignatureDef then carries the *predict* method
    name, classify and regress ones included. TF Serving still classifies and regresses with
    them unless started with ``--enable_signature_method_name_check``.
    """
    import tensorflow as tf

    path = Path(path)
    features = {"x": tf.io.FixedLenFeature([1], tf.float32),
                "x2": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])}

    def examples(name: str) -> list:
        return [tf.TensorSpec([None], tf.string, name=name)]

    class HalfPlusTwo(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = tf.Variable(0.5, name="a")
            self.b = tf.Variable(2.0, name="b")
            self.c = tf.Variable(3.0, name="c")

        def compute(self, x: tf.Tensor, inc: tf.Variable) -> tf.Tensor:
            return self.a * x + inc

        @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
        def predict(self, x):
            return {"y": self.compute(x, self.b)}

        @tf.function(input_signature=examples("inputs"))
        def regress_xy(self, serialized):
            return {"outputs": self.compute(tf.io.parse_example(serialized, features)["x"],
                                            self.b)}

        @tf.function(input_signature=examples("inputs"))
        def regress_xy2(self, serialized):
            return {"outputs": self.compute(tf.io.parse_example(serialized, features)["x"],
                                            self.c)}

        @tf.function(input_signature=[tf.TensorSpec([1], tf.float32, name="inputs")])
        def regress_x2y3(self, x2):
            return {"outputs": self.compute(x2, self.c)}

        @tf.function(input_signature=examples("inputs"))
        def classify_xy(self, serialized):
            return {"scores": self.compute(tf.io.parse_example(serialized, features)["x"],
                                           self.b)}

        @tf.function(input_signature=[tf.TensorSpec([1], tf.float32, name="inputs")])
        def classify_x2y3(self, x2):
            return {"scores": self.compute(x2, self.c)}

    module = HalfPlusTwo()
    tf.saved_model.save(module, str(path), signatures={
        "serving_default": module.predict, "regress_x_to_y": module.regress_xy,
        "regress_x_to_y2": module.regress_xy2, "regress_x2_to_y3": module.regress_x2y3,
        "classify_x_to_y": module.classify_xy, "classify_x2_to_y3": module.classify_x2y3})
    return path
