"""Checker of lesson 01's exercise: the right answer passes (the notebook proves it on the real
artifacts); each typical wrong answer is refused with the reason."""

from __future__ import annotations

import pytest

from forgekit.exercises import NOT_ANSWERED


def _recompile_then_save(model, path):  # reloads (Trap 1 avoided), still pops (Trap 2)
    import keras

    model.compile(optimizer=model.optimizer, loss=keras.losses.MeanSquaredError())
    model.save(path)


def _unfitted_clone(model, path):  # a clone has the architecture, not the trained weights
    import keras

    keras.models.clone_model(model).save(path, include_optimizer=False)


def _fresh_adam(model, path):  # fixes both traps' symptoms, but throws away Adam's moments
    import keras

    model.save(path, include_optimizer=False)
    steps = int(model.optimizer.iterations)
    model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(steps)


def _recompile_with_new_adam(model, path):  # reloads, nothing popped, but Adam starts over
    model.save(path, include_optimizer=False)
    model.compile(optimizer="adam", loss="mean_squared_error")


WRONG = {
    "plain save": (lambda model, path: model.save(path), "That is Trap 1"),
    "recompiled with a loss object": (_recompile_then_save, "That is Trap 2"),
    "save_weights": (lambda model, path: model.save_weights(path), "raised ValueError"),
    "an export": (lambda model, path: model.export(path, verbose=False), "not a legacy whole-model"),
    "an unfitted clone": (_unfitted_clone, "predictions differ"),
    "recompiled with optimizer='adam'": (_recompile_with_new_adam, "builds a new Adam at step 0"),
    "a fresh Adam at the old step": (_fresh_adam, "pass model.optimizer or leave model alone"),
}


def test_an_unanswered_exercise_is_not_judged():
    from forgekit.exercises.whole_model_formats import check_write_h5

    def stub(model, path):
        ...  # the lesson's unedited cell

    assert check_write_h5(None) is NOT_ANSWERED and check_write_h5(stub) is NOT_ANSWERED


@pytest.mark.parametrize("answer, why", WRONG.values(), ids=WRONG.keys())
def test_a_wrong_answer_is_refused_with_why(answer, why, tmp_path):
    from forgekit.exercises.whole_model_formats import check_write_h5

    feedback = check_write_h5(answer, tmp_path)
    assert not feedback.passed and why in feedback.message, feedback.message


def test_the_plain_fix_passes_in_a_fresh_process(tmp_path):
    from forgekit.exercises.whole_model_formats import check_write_h5

    right = check_write_h5(lambda model, path: model.save(path, include_optimizer=False), tmp_path)
    assert right.passed and "reloads with Adam" in right.message, right.message
