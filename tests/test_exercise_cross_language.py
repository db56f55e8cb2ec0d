"""Lesson 09's checker: right tensor names pass, each typical confusion fails with its reason,
and with a C toolchain the checker runs the C loader with the learner's names."""

from __future__ import annotations

import numpy as np
import pytest

from forgekit import crosslang
from forgekit.exercises.cross_language import check_tensor_names
from tests.test_crosslang import _require


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory):
    """Two outputs and an unnamed input (keras_tensor_N), exported twice from one process."""
    import keras

    folder = tmp_path_factory.mktemp("two_heads")
    for n in range(2):
        features = keras.Input((6,))
        hidden = keras.layers.Dense(16, activation="relu")(features)
        keras.Model(features, {"logits": keras.layers.Dense(3)(hidden),
                               "score": keras.layers.Dense(1)(hidden)}).export(
            folder / f"export_{n}", verbose=False)
    return folder, np.random.default_rng(1).normal(size=(5, 6)).astype("float32")


def test_check_tensor_names_explains_wrong_names(two_heads, tmp_path):
    folder, x = two_heads
    path = folder / "export_1"
    sig = crosslang.signature_tensors(path)
    right_in, score, logits = sig.input_name, sig.outputs["score"].name, sig.outputs["logits"].name
    assert not check_tensor_names(path, None, score).passed
    keyword = next(iter(sig.inputs))
    assert "keyword for Python" in check_tensor_names(path, keyword, score).message
    stale = crosslang.signature_tensors(folder / "export_0").input_name  # the other export's
    assert stale != right_in
    assert "auto-name from another export" in check_tensor_names(path, stale, score).message
    assert "not this export's input" in check_tensor_names(path, "serving_default_input:0",
                                                           score).message
    assert "output key" in check_tensor_names(path, right_in, "score").message
    wrong_head = check_tensor_names(path, right_in, logits)
    assert not wrong_head.passed and "'logits' output, not 'score'" in wrong_head.message
    assert check_tensor_names(path, right_in, score).passed  # names only, no build
    _require("c")
    ran = check_tensor_names(path, right_in, score, build=crosslang.build("c", tmp_path), x=x)
    assert ran.passed and "equals Python's" in ran.message
