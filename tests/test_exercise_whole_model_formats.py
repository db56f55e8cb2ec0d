"""Checker of lesson 01's exercise: the right answer passes (the notebook proves it on the real
artifacts); each wrong answer is refused with the reason."""

from __future__ import annotations

from forgekit.exercises import NOT_ANSWERED


def test_whole_model_formats_h5_checker_tests_both_traps(tmp_path):
    import keras

    from forgekit.exercises.whole_model_formats import check_write_h5

    def loss_object_then_save(model, path):  # reloads (Trap 1 avoided), still pops (Trap 2)
        model.compile(optimizer=model.optimizer, loss=keras.losses.MeanSquaredError())
        model.save(path)

    def stub(model, path):
        ...  # the lesson's unedited cell

    assert check_write_h5(None) is NOT_ANSWERED and check_write_h5(stub) is NOT_ANSWERED
    verdicts = {
        "Trap 1": lambda model, path: model.save(path),
        "Trap 2": loss_object_then_save,
        "raised ValueError": lambda model, path: model.save_weights(path),
    }
    for why, answer in verdicts.items():
        feedback = check_write_h5(answer, tmp_path)
        assert not feedback.passed and why in feedback.message, (why, feedback.message)
    right = check_write_h5(lambda model, path: model.save(path, include_optimizer=False), tmp_path)
    assert right.passed and "reloads with Adam" in right.message, right.message
