"""Lesson 00's checkers: a typed guess is checked against the measurement, and ``keep`` is
tested by what it does: called on an unseen model with a missing folder, its file reloaded."""

from __future__ import annotations

import pytest

from forgekit.exercises import NOT_ANSWERED


@pytest.fixture(scope="module")
def small_model():
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, x[:, :1], epochs=1, batch_size=16, verbose=0)
    return model


def test_start_here_guess_is_checked_against_what_was_typed():
    from forgekit.exercises import check_guess

    choices = ("exact", "close")
    assert not check_guess(None, "exact", choices, "why").passed
    assert "not one of" in check_guess("maybe", "exact", choices, "why").message
    wrong_guess = check_guess("close", "exact", choices, "max 0.0")
    assert not wrong_guess.passed and "measured 'exact'" in wrong_guess.message
    assert check_guess(" Exact", "exact", choices, "max 0.0").passed


def test_start_here_keep_checker_tests_the_function_on_its_own_model(small_model, tmp_path):
    from pathlib import Path

    import keras

    from forgekit.exercises.start_here import check_keep

    def no_mkdir(model, folder):
        model.save(Path(folder) / "m.keras")
        return Path(folder) / "m.keras"

    def fresh_adam(model, path):  # recompiled before saving: a new Adam at step 0
        model.compile(optimizer="adam", loss="mse")
        model.save(path)

    def uncompiled(model, path):  # the architecture and weights, no optimizer
        copy = keras.Sequential.from_config(model.get_config())  # clone_model would compile it
        copy.set_weights(model.get_weights())
        copy.save(path)

    def zeroed_moments(model, path):  # same step, but Adam's moments lost
        for variable in model.optimizer.variables:
            if "momentum" in variable.path or "velocity" in variable.path:
                variable.assign(variable.numpy() * 0.0)
        model.save(path)

    def saver(write, suffix):
        def keep(model, folder):
            Path(folder).mkdir(parents=True)
            path = Path(folder) / f"m{suffix}"
            write(model, path)
            return path
        return keep

    verdicts = {
        "should be a function": "not a function",
        "does not create missing folders": no_mkdir,
        "returned None": lambda model, folder: saver(lambda m, p: m.save(p), ".keras")(model, folder)
        and None,
        "SavedModel folder": saver(lambda m, p: m.export(p, verbose=False), ""),
        "weights only": saver(lambda m, p: m.save_weights(p), ".weights.h5"),
        "not a global": saver(lambda m, p: small_model.save(p), ".keras"),
        "Could not deserialize": saver(lambda m, p: m.save(p), ".h5"),
        "you returned the folder": lambda model, folder: saver(lambda m, p: m.save(p), ".keras")(
            model, folder) and folder,
        "optimizer variables came back equal": saver(zeroed_moments, ".keras"),
        "nothing is there": lambda model, folder: saver(lambda m, p: None, ".keras")(model, folder),
        "outside the folder": lambda model, folder: saver(lambda m, p: m.save(p), ".keras")(
            model, Path(folder).parent / "elsewhere"),
        "at step 0": saver(fresh_adam, ".keras"),
        "came back without an optimizer": saver(uncompiled, ".keras"),
    }
    for why, answer in verdicts.items():
        feedback = check_keep(answer, tmp_path)
        assert not feedback.passed and why in feedback.message, (why, feedback.message)

    def stub(model, folder):
        ...  # the lesson's unedited cell

    assert check_keep(stub, tmp_path) is NOT_ANSWERED
    right = check_keep(saver(lambda m, p: m.save(p), ".keras"), tmp_path)
    assert right.passed and "optimizer variables compared" in right.message, right.message
