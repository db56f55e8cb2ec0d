"""Checker of lesson 02's exercise: a right answer passes; each typical wrong answer is refused
with the reason."""

from __future__ import annotations

import pytest

from forgekit.exercises import NOT_ANSWERED


def _build_then_load(weights_path, build_model):
    model = build_model()
    model.optimizer.build(model.trainable_variables)
    model.load_weights(weights_path)
    return model


def _json_round_trip(weights_path, build_model):
    import keras

    model = keras.models.model_from_json(build_model().to_json())
    model.load_weights(weights_path)
    return model


def _plain_load(weights_path, build_model):
    model = build_model()
    model.load_weights(weights_path)
    return model


def _load_then_build(weights_path, build_model):
    model = _plain_load(weights_path, build_model)
    model.optimizer.build(model.trainable_variables)
    return model


def _no_load(weights_path, build_model):
    return build_model()


def _load_model(weights_path, build_model):
    import keras

    return keras.models.load_model(weights_path)


def _trains(weights_path, build_model):
    import numpy as np

    model = _build_then_load(weights_path, build_model)
    model.fit(np.zeros((4, 12), "float32"), np.zeros(4), verbose=0)
    return model


def _recompiles(weights_path, build_model):
    model = _build_then_load(weights_path, build_model)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _plain_load_then_recompile(weights_path, build_model):
    model = _plain_load(weights_path, build_model)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _tuple(weights_path, build_model):
    return _build_then_load(weights_path, build_model), 0


def _placeholder(weights_path, build_model):
    ...


@pytest.mark.parametrize("answer, why", [
    (_plain_load, "Adam has no variables yet"),
    (_load_then_build, "Order matters"),
    (_no_load, "its weights are not the file's"),
    (_load_model, "failed: "),
    (_trains, "load_with_optimizer trained the model"),
    (_tuple, "load_with_optimizer returned tuple"),
    (_recompiles, "a compile after loading replaced the optimizer"),
    (_plain_load_then_recompile, "a compile after loading replaced the optimizer"),
])
def test_each_wrong_answer_is_refused_with_its_reason(answer, why, tmp_path):
    from forgekit.exercises.weights_and_architecture import check_load_with_optimizer

    feedback = check_load_with_optimizer(answer, tmp_path)
    assert not feedback.passed and why in feedback.message, feedback.message


def test_building_adam_before_loading_passes(tmp_path):
    from forgekit.exercises.weights_and_architecture import check_load_with_optimizer

    assert check_load_with_optimizer(None) is NOT_ANSWERED
    assert check_load_with_optimizer(_placeholder) is NOT_ANSWERED
    right = check_load_with_optimizer(_build_then_load, tmp_path)
    assert right.passed and "with a fresh Adam are" in right.message, right.message
    assert "moves the saved model's weights by up to" in right.message, right.message
    assert "Note:" not in right.message, right.message


def _clone(weights_path, build_model):
    import keras

    original = build_model()
    model = keras.models.clone_model(original)
    model.compile(optimizer=keras.optimizers.Adam(), loss=original.loss)
    model.optimizer.build(model.trainable_variables)
    model.load_weights(weights_path)
    return model


@pytest.mark.parametrize("copy", [_json_round_trip, _clone])
def test_a_copy_of_build_models_model_is_not_yet_even_when_its_state_is_right(copy, tmp_path):
    """Copying lesson 02's section-4 cell (model_from_json of build_model().to_json(), then
    load_weights) restores Adam's state, but the exercise is the step on build_model()'s model."""
    from forgekit.exercises.weights_and_architecture import check_load_with_optimizer

    feedback = check_load_with_optimizer(copy, tmp_path)
    assert not feedback.passed, feedback.message
    assert "did not build" in feedback.message, feedback.message
    assert "model_from_json compiles from the JSON" in feedback.message, feedback.message
    assert "optimizer.build(" not in feedback.message, feedback.message


def test_the_plain_load_hint_does_not_hand_over_the_call(tmp_path):
    from forgekit.exercises.weights_and_architecture import check_load_with_optimizer

    feedback = check_load_with_optimizer(_plain_load, tmp_path)
    assert not feedback.passed and "optimizer.build(" not in feedback.message, feedback.message
    assert "An optimizer has a method for that" in feedback.message, feedback.message
