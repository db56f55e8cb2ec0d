"""Lesson 10's checker: a right audit passes; each typical wrong answer is refused with why."""

from __future__ import annotations

import pytest

from forgekit.exercises import NOT_ANSWERED
from forgekit.exercises.explorer_and_claims import check_weights_audit


def _audit(changes=("wider", "tanh"), report=None, save=None):
    """An answer to the exercise: ``changes`` picks the variants, ``report`` overrides keys."""
    import keras
    import numpy as np

    from forgekit.outcome import attempt

    def build(units=8, activation="relu", extra=False, name=None, features=4, init="glorot_uniform",
              dropout=False):
        layers = [keras.Input((features,)),
                  keras.layers.Dense(units, activation=activation, name=name,
                                     kernel_initializer=init)]
        layers += [keras.layers.Dense(units)] if extra else []
        layers += [keras.layers.Dropout(0.5)] if dropout else []
        return keras.Sequential([*layers, keras.layers.Dense(1)])

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = keras.layers.Dense(16), keras.layers.Dense(1)

        def call(self, x):
            return self.out(self.hidden(x))

    def subclassed():
        model = Subclassed()
        model(np.zeros((1, 4), "float32"))
        return model

    variants = {"wider": lambda: build(units=16), "tanh": lambda: build(activation="tanh"),
                "extra": lambda: build(extra=True), "renamed": lambda: build(name="renamed"),
                "5 inputs": lambda: build(features=5), "zeros": lambda: build(init="zeros"),
                "dropout": lambda: build(dropout=True), "subclassed": subclassed,
                "same": build}

    def my_audit(workdir):
        model = build()
        model.compile(optimizer="adam", loss="mse")
        x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
        model.fit(x, x.sum(axis=1, keepdims=True), epochs=1, verbose=0)
        path = workdir / "model.weights.h5"
        if save is None:
            model.save_weights(path)
        else:
            save(model, path)
        identical = build()
        changed = {label: variants[label]() for label in changes}
        loaded = {label: attempt(m.load_weights, path).ok
                  for label, m in {"identical": identical, **changed}.items()}
        refused = sum(not ok for label, ok in loaded.items() if label != "identical")
        verdict = ("holds" if refused == len(changed) else
                   "does not hold" if refused == 0 else "partly")
        predicted = {label: label == "tanh" for label in changed}
        answer = {"weights": path, "original": model, "identical": identical, "changed": changed,
                  "predicted": predicted, "loaded": loaded, "verdict": verdict}
        return {**answer, **(report(answer) if callable(report) else report or {})}

    return my_audit


def test_a_right_audit_passes_and_names_its_numbers(tmp_path):
    feedback = check_weights_audit(_audit(), tmp_path)
    assert feedback.passed, feedback.message
    assert "1 of 2 changed architectures refused (wider)" in feedback.message
    assert "the identical rebuild loads (the control)" in feedback.message
    assert "holds only partly" in feedback.message and "away from the original" in feedback.message
    assert "predictions: 2 of 2 right." in feedback.message
    assert "layer by layer, by each layer's class and position" in feedback.message
    # an added Dropout loads silently: evidence against the claim, said in those words
    dropout = check_weights_audit(_audit(changes=("wider", "dropout")), tmp_path)
    assert dropout.passed and "holds only partly" in dropout.message, dropout.message
    assert "dropout predicts exactly like the original at inference" in dropout.message
    # changes that keep every shape only: none refused, and the feedback says what is untried
    kept = check_weights_audit(_audit(changes=("tanh", "dropout"),
                                      report={"verdict": "does not hold"}), tmp_path)
    assert kept.passed and "claim does not hold" in kept.message, kept.message
    assert "try one that changes a shape" in kept.message
    missed = check_weights_audit(_audit(report=lambda a: {"predicted": {"wider": True,
                                                                        "tanh": True}}), tmp_path)
    assert missed.passed and "1 of 2 right (wrong for wider)" in missed.message, missed.message
    # a wider input changes only the first kernel's shape: a different architecture, refused
    other_input = check_weights_audit(_audit(changes=("5 inputs", "tanh")), tmp_path)
    assert other_input.passed and "refused (5 inputs)" in other_input.message, other_input.message


def test_no_answer_and_a_placeholder_are_not_answered(tmp_path):
    def my_audit(workdir):
        ...

    assert check_weights_audit(None, tmp_path) is NOT_ANSWERED
    assert check_weights_audit(my_audit, tmp_path) is NOT_ANSWERED


def _unloaded_copy(model):
    import keras

    return keras.models.clone_model(model)  # the same architecture, its own fresh weights


def _whole_model(model, path):
    model.save(path.with_name("model.keras"))
    path.with_name("model.keras").rename(path)  # a whole .keras zip under the weights name


@pytest.mark.parametrize("answer, why", [
    (_audit(report={"verdict": "holds"}), "what follows is 'partly', not 'holds'"),
    (_audit(report={"verdict": "does not hold"}), "not 'does not hold'"),
    (_audit(report=lambda a: {"loaded": {**a["loaded"], "tanh": False}}),
     "Different predictions are not a refusal"),
    # a broken load (every call refused) "proves" the claim without the control: it fails
    (_audit(changes=("wider", "extra"),
            report=lambda a: {"loaded": {k: False for k in a["loaded"]}, "verdict": "holds"}),
     "Your control failed"),
    (_audit(report=lambda a: {"identical": a["original"]}), "the original model itself"),
    (_audit(report=lambda a: {"identical": a["changed"]["wider"]}), "the control must be built"),
    (_audit(report=lambda a: {"identical": _unloaded_copy(a["original"])}),
     "call identical.load_weights(path)"),
    (_audit(report=lambda a: {"loaded": {k: True for k in a["loaded"]}}),
     "Record whether the call raised"),
    (_audit(changes=("tanh",)), "at least two Keras models"),
    (_audit(changes=("wider", "zeros")), "that is the identical architecture"),
    # shape changes alone are all refused, yet they cannot settle the claim: not "holds"
    (_audit(changes=("wider", "extra")), "alters a weight's shape, so its refusal shows only"),
    (_audit(changes=("wider", "subclassed")), "not a subclass"),
    (_audit(report={"predicted": {}}), "'predicted' should say"),
    (_audit(changes=("wider", "renamed")), "that is the identical architecture"),
    (_audit(save=_whole_model), "not a weights file"),
    (_audit(report={"verdict": "mostly"}), "verdict should be one of"),
    (_audit(report=lambda a: {"loaded": {"wider": False}}), "'loaded' should say"),
    (_audit(report=lambda a: {"loaded": {k: v for k, v in a["loaded"].items()
                                         if k != "identical"}}), "'loaded' should say"),
    (lambda workdir: {"weights": workdir / "w.weights.h5"}, "missing: ['changed'"),
    (lambda workdir: 1 / 0, "raised ZeroDivisionError: division by zero"),
])
def test_typical_wrong_answers_say_why(tmp_path, answer, why):
    feedback = check_weights_audit(answer, tmp_path)
    assert not feedback.passed and why in feedback.message, feedback.message
