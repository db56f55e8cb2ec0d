"""Lesson 05's checker: a right load passes; each typical wrong load is told why, by behaviour.

Every answer runs in a fresh process in which the old code cannot be imported; the answers
share one process to keep this quick (none changes what the next one sees, except the one that
registers a name, which runs last).
"""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf

from forgekit.exercises.wrong_path_failures import check_loads
from forgekit.zoo.renamed import Rescale
from forgekit.zoo.unregistered import Scale  # the class lesson 05's kernel has imported


def right(path):
    return keras.saving.load_model(path, custom_objects={"forgekit>Scale": Rescale})


def in_a_scope(path):
    with keras.saving.custom_object_scope({"forgekit>Scale": Rescale}):
        return keras.saving.load_model(path)


def plain(path):
    return keras.saving.load_model(path)


def new_name_as_key(path):
    return keras.saving.load_model(path, custom_objects={"Rescale": Rescale})


def old_key(path):  # section 3's key, for a class that was registered
    return keras.saving.load_model(path, custom_objects={"Scale": Rescale})


def unsafe(path):
    return keras.saving.load_model(path, custom_objects={"forgekit>Scale": Rescale},
                                   safe_mode=False)


def savedmodel_loader(path):
    return tf.saved_model.load(str(path))


def tfsm_layer(path):
    return keras.layers.TFSMLayer(path, call_endpoint="serve")


def old_code(path):
    import forgekit.zoo.registered  # noqa: F401  the module the rename deleted
    return keras.saving.load_model(path)


def returns_nothing(path):
    keras.saving.load_model(path, custom_objects={"forgekit>Scale": Rescale})


def old_class(path):  # the kernel's unregistered Scale, shipped as an import
    return keras.saving.load_model(path, custom_objects={"forgekit>Scale": Scale})


def own_copy(path):  # a copy of Scale written in the answer, not the new code
    class MyScale(keras.layers.Layer):
        def __init__(self, factor=1.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, inputs):
            return inputs * self.factor

    return keras.saving.load_model(path, custom_objects={"forgekit>Scale": MyScale})


def rebuilt(path):  # the architecture restated in code, the file's weights loaded into it
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1), Rescale(2.5)])
    model.load_weights(path)
    return model


def registered_under_old_name(path):  # the new class keeps the old saved name: no custom_objects
    keras.saving.register_keras_serializable(package="forgekit", name="Scale")(Rescale)
    return keras.saving.load_model(path)


def other_class(path):
    return keras.saving.load_model(path, custom_objects={"forgekit>Scale": keras.layers.Identity})


def test_placeholder_and_non_functions_are_not_run(tmp_path):
    def load(path):
        ...

    verdicts = check_loads([None, load, "keras.saving.load_model(path)"], tmp_path)
    assert [v.passed for v in verdicts] == [False, False, False]
    assert not (tmp_path / "saved_before_rename.keras").exists()  # nothing ran, nothing was written
    assert "No answer yet" in verdicts[1].message
    assert "should be a function" in verdicts[2].message


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exercise05")
    answers = [right, in_a_scope, plain, new_name_as_key, old_key, unsafe, savedmodel_loader, tfsm_layer,
               old_code, returns_nothing, old_class, own_copy, other_class, rebuilt,
               registered_under_old_name]  # last: its registration would let a later plain load pass
    return dict(zip([a.__name__ for a in answers], check_loads(answers, folder), strict=True)), folder


def test_the_saved_name_mapped_to_the_new_class_passes(verdicts):
    got, folder = verdicts
    assert got["right"].passed, str(got["right"])
    assert got["in_a_scope"].passed, str(got["in_a_scope"])
    assert got["registered_under_old_name"].passed, str(got["registered_under_old_name"])


@pytest.mark.parametrize("answer, says", [
    ("plain", "passed no custom_objects"), ("new_name_as_key", "registered_name in the file's config.json"), ("new_name_as_key", "custom_objects={'Rescale'"),
    ("old_key", "custom_objects={'Scale'"),
    ("unsafe", "safe_mode=False"), ("savedmodel_loader", "tf.saved_model.load reads"),
    ("tfsm_layer", "TFSMLayer wraps"), ("old_code", "imports the old code"),
    ("returns_nothing", "NoneType"),
    ("old_class", "that is the old class"), ("own_copy", "MyScale"), ("other_class", "not one it can rebuild"),
    ("rebuilt", "restates the architecture"),
])
def test_each_typical_wrong_answer_is_told_why(verdicts, answer, says):
    feedback = verdicts[0][answer]
    assert not feedback.passed
    assert says in feedback.message, feedback.message
    if answer == "own_copy":  # a look-alike is told why the new code's class is the one to use
        assert "old class" not in feedback.message, feedback.message
        assert "saves from now on" in feedback.message, feedback.message
