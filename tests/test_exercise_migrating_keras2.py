"""Lesson 11's checker: a hand-migrated tagger is proven against a fresh tf-keras process, and
each typical wrong answer is refused with the reason (the weight that is not Keras 2's)."""

from __future__ import annotations

import json

import h5py
import pytest

from forgekit.exercises import NOT_ANSWERED
from forgekit.measure.fresh import run_fresh

TAGGER = r'''
import tf_keras
tagger = tf_keras.Sequential([tf_keras.Input((12,), dtype="int32"),
    tf_keras.layers.Embedding(100, 8), tf_keras.layers.GRU(8), tf_keras.layers.Dense(1)])
tagger.save(PATH)
'''


@pytest.fixture(scope="module")
def tagger_h5(tmp_path_factory):
    """The lesson's Keras 2 tagger, written by one fresh tf-keras process."""
    path = tmp_path_factory.mktemp("keras2") / "tagger.h5"
    written = run_fresh(f"PATH = {str(path)!r}\n" + TAGGER, timeout=300)
    if not written.ok:
        pytest.fail(f"tf-keras could not write the tagger: {written}")
    return path


def _rebuilt(tagger_h5, load_weights=True):
    """The lesson's solution: the edited Keras 2 config, from_config, load_weights."""
    import keras

    with h5py.File(tagger_h5, "r") as f:
        config = json.loads(f.attrs["model_config"])
    for layer in config["config"]["layers"]:
        layer["config"].pop("time_major", None)
    model = keras.Sequential.from_config(config["config"])
    if load_weights:
        model.load_weights(tagger_h5)
    return model


def test_hand_migration_checker_proves_by_behaviour_and_says_why(tagger_h5, tmp_path,
                                                                 monkeypatch):
    import keras

    import forgekit.keras_io.keras2 as keras2_side
    from forgekit.exercises.migrating_keras2 import check_hand_migration

    answers = keras2_side.keras2_answers(tagger_h5)  # one real tf-keras run, reused below
    monkeypatch.setattr(keras2_side, "keras2_answers", lambda *a, **k: answers)

    def saved(model, name):
        model.save(tmp_path / name)
        return tmp_path / name

    assert check_hand_migration(None, tagger_h5) is NOT_ANSWERED
    right = check_hand_migration(saved(_rebuilt(tagger_h5), "right.keras"), tagger_h5)
    assert right.passed and "largest difference" in right.message, str(right)

    swapped = _rebuilt(tagger_h5)
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
        "set it to the path": _rebuilt(tagger_h5),
        "not a native .keras": saved(_rebuilt(tagger_h5), "legacy.h5"),
        "freshly initialised": saved(_rebuilt(tagger_h5, load_weights=False), "fresh.keras"),
        "another weight's values": saved(swapped, "swapped.keras"),
        "does not take": saved(regressor, "regressor.keras"),
        "has shape [8, 48], Keras 2's has [8, 24]": saved(wider, "wider.keras"),
    }
    for why, answer in verdicts.items():
        feedback = check_hand_migration(answer, tagger_h5)
        assert not feedback.passed and why in feedback.message, (why, str(feedback))
