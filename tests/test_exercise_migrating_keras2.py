"""Lesson 11's checker: a hand-migrated GRU scorer is proven against a fresh tf-keras process,
each typical wrong answer is refused with the reason (the weight that is not Keras 2's, Keras's
reload error whole), and the learner's prediction is checked against the comparison."""

from __future__ import annotations

import json

import h5py
import pytest

from forgekit.exercises import NOT_ANSWERED
from forgekit.measure.fresh import run_fresh

SCORER = r'''
import tf_keras
scorer = tf_keras.Sequential([tf_keras.Input((12,), dtype="int32"),
    tf_keras.layers.Embedding(100, 8), tf_keras.layers.GRU(8), tf_keras.layers.Dense(1)])
scorer.save(PATH)
'''


@pytest.fixture(scope="module")
def scorer_h5(tmp_path_factory):
    """The lesson's Keras 2 scorer, written by one fresh tf-keras process."""
    path = tmp_path_factory.mktemp("keras2") / "scorer.h5"
    written = run_fresh(f"PATH = {str(path)!r}\n" + SCORER, timeout=300)
    if not written.ok:
        pytest.fail(f"tf-keras could not write the scorer: {written}")
    return path


def _rebuilt(scorer_h5, load_weights=True):
    """The lesson's solution: the edited Keras 2 config, from_config, load_weights."""
    import keras

    with h5py.File(scorer_h5, "r") as f:
        config = json.loads(f.attrs["model_config"])
    for layer in config["config"]["layers"]:
        layer["config"].pop("time_major", None)
    model = keras.Sequential.from_config(config["config"])
    if load_weights:
        model.load_weights(scorer_h5)
    return model


def _reload_error(path):
    import keras

    try:
        keras.models.load_model(path, compile=False)
    except Exception as exc:
        return exc
    pytest.fail(f"{path} reloaded")


def test_hand_migration_checker_proves_by_behaviour_and_says_why(scorer_h5, tmp_path,
                                                                 monkeypatch):
    import keras

    import forgekit.keras_io.keras2 as keras2_side
    from forgekit.exercises.migrating_keras2 import check_hand_migration

    answers = keras2_side.keras2_answers(scorer_h5)  # one real tf-keras run, reused below
    monkeypatch.setattr(keras2_side, "keras2_answers", lambda *a, **k: answers)

    def saved(model, name):
        model.save(tmp_path / name)
        return tmp_path / name

    assert check_hand_migration(None, scorer_h5) is NOT_ANSWERED
    right_file = saved(_rebuilt(scorer_h5), "right.keras")
    right = check_hand_migration(right_file, scorer_h5, "same")
    assert right.passed and "largest difference" in right.message, str(right)
    assert "time_major=False" in right.message, str(right)
    for guess, why in ((None, "set my_prediction"), ("different", "is not what happened"),
                       ("maybe", "you typed 'maybe'")):
        feedback = check_hand_migration(right_file, scorer_h5, guess)
        assert not feedback.passed and why in feedback.message, (guess, str(feedback))
        assert "every weight" in feedback.message, str(feedback)  # the file itself is right

    # a Lambda layer refuses to load in safe mode: Keras's long reason comes back whole
    lambda_model = keras.Sequential([keras.Input((12,)), keras.layers.Lambda(lambda x: x + 1)])
    broken = saved(lambda_model, "lambda.keras")
    error = check_hand_migration(broken, scorer_h5, "same")
    assert not error.passed and "cannot reload" in error.message, str(error)
    reason = str(_reload_error(broken))
    assert len(reason) > 200 and error.message.rstrip().endswith(reason), str(error)  # not cut

    swapped = _rebuilt(scorer_h5)
    gru = swapped.get_layer("gru")
    kernel, recurrent, bias = gru.get_weights()
    gru.set_weights([recurrent, kernel, bias])  # by position, into the wrong places
    regressor = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    wider = keras.Sequential([keras.Input((12,), dtype="int32"),  # GRU(16), by hand
                              keras.layers.Embedding(100, 8, name="embedding"),
                              keras.layers.GRU(16, name="gru"), keras.layers.Dense(1)])
    wider.layers[0].set_weights(swapped.layers[0].get_weights())  # Keras 2's embeddings
    verdicts = {
        "Save your rebuilt model first": tmp_path / "never_saved.keras",
        "set it to the path": _rebuilt(scorer_h5),
        "not a native .keras": saved(_rebuilt(scorer_h5), "legacy.h5"),
        "freshly initialised": saved(_rebuilt(scorer_h5, load_weights=False), "fresh.keras"),
        "another weight's values": saved(swapped, "swapped.keras"),
        "does not take": saved(regressor, "regressor.keras"),
        "has shape [8, 48], Keras 2's has [8, 24]": saved(wider, "wider.keras"),
    }
    for why, answer in verdicts.items():
        feedback = check_hand_migration(answer, scorer_h5)
        assert not feedback.passed and why in feedback.message, (why, str(feedback))
