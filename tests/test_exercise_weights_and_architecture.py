"""Checker of lesson 02's exercise: the right answer passes (the notebook proves it on the real
artifacts); each wrong answer is refused with the reason."""

from __future__ import annotations

from forgekit.exercises import NOT_ANSWERED


def test_inference_files_checker_refuses_every_copy_that_keeps_an_optimizer(tmp_path):
    import keras

    from forgekit.exercises.weights_and_architecture import check_inference_files

    def writer(copy_of):
        def inference_files(model, folder):
            architecture, weights = folder / "arch.json", folder / "m.weights.h5"
            architecture.write_text(model.to_json())
            copy = copy_of(model)
            copy.set_weights(model.get_weights())
            copy.save_weights(weights)
            return architecture, weights
        return inference_files

    def recompiled(model):  # drops the trained state of the caller's model
        model.compile(optimizer="adam", loss="mse")
        return model

    assert check_inference_files(None) is NOT_ANSWERED
    verdicts = {
        "It should write two files": lambda model, folder: None,
        "trained Adam's arrays": writer(lambda model: model),
        "all zero: a fresh Adam": writer(keras.models.clone_model),
        "lost its optimizer state": writer(recompiled),
    }
    for why, answer in verdicts.items():
        feedback = check_inference_files(answer, tmp_path)
        assert not feedback.passed and why in feedback.message, (why, feedback.message)
    right = check_inference_files(
        writer(lambda model: keras.Sequential.from_config(model.get_config())), tmp_path)
    assert right.passed and "no optimizer arrays" in right.message, right.message
