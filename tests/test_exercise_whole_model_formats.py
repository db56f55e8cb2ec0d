"""Checker of lesson 01's exercise: the right answer passes (the notebook proves it on the real
artifacts); each typical wrong answer is refused with the reason."""

from __future__ import annotations

import pytest

from forgekit.exercises import NOT_ANSWERED


def _recompile_then_save(model, path):  # reloads (Trap 1 avoided), still pops (Trap 2)
    import keras

    model.compile(optimizer=model.optimizer, loss=keras.losses.MeanSquaredError())
    model.save(path)


def _recompile_with_mae(model, path):  # another short alias: the same Trap 1, named in the message
    model.compile(optimizer=model.optimizer, loss="mae")
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


def _recompile_and_back(model, path):  # reloads, Adam kept, but the caller now trains on MAE
    model.compile(optimizer=model.optimizer, loss="mean_absolute_error", metrics=["mae"])
    model.save(path)
    model.compile(optimizer=model.optimizer, loss="mean_absolute_error", metrics=["mae"])


def _recompile_save_and_restore(model, path):  # same config after, but compile() ran on model
    model.compile(optimizer=model.optimizer, loss="mean_squared_error", metrics=["mae"])
    model.save(path)
    model.compile(optimizer=model.optimizer, loss="mse", metrics=["mae"])


WRONG = {
    "plain save": (lambda model, path: model.save(path), "short loss alias 'mse' up as keras.metrics.mse"),
    "recompiled with loss='mae'": (_recompile_with_mae, "short loss alias 'mae' up as keras.metrics.mae"),
    "recompiled with a loss object": (_recompile_then_save, "That is Trap 2"),
    "save_weights": (lambda model, path: model.save_weights(path), "raised ValueError"),
    "an export": (lambda model, path: model.export(path, verbose=False), "not a legacy whole-model"),
    "an unfitted clone": (_unfitted_clone, "predictions differ"),
    "recompiled with optimizer='adam'": (_recompile_with_new_adam, "builds a new Adam at step 0"),
    "a fresh Adam at the old step": (_fresh_adam, "pass model.optimizer or leave model alone"),
    "recompiled with another loss, optimizer put back": (_recompile_and_back,
                                                         "compile config's 'loss' was 'mse'"),
    "recompiled, saved, compiled back as before": (_recompile_save_and_restore,
                                                   "model.metrics are new objects"),
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


def _from_a_copy(model, path):  # the hint's second way: a copy compiled with the full loss name
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.compile(optimizer="adam", loss="mean_squared_error")
    copy.save(path)


RIGHT = {"include_optimizer=False": lambda model, path: model.save(path, include_optimizer=False),
         "a copy compiled with the full loss name": _from_a_copy}


@pytest.mark.parametrize("answer", RIGHT.values(), ids=RIGHT.keys())
def test_a_right_answer_passes_in_a_fresh_process(answer, tmp_path):
    from forgekit.exercises.whole_model_formats import check_write_h5

    right = check_write_h5(answer, tmp_path)
    assert right.passed and "reloads with Adam" in right.message, right.message


def test_a_reload_error_without_an_alias_is_not_called_trap_1():
    from forgekit.exercises.whole_model_formats import _trap1

    assert "Trap 1" not in _trap1("Unknown layer: 'MyLayer'")
    assert "'mape' up as keras.metrics.mape" in _trap1("Could not deserialize 'keras.metrics.mape'")
