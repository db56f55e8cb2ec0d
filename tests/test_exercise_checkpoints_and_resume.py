"""Lesson 03's checker: it kills a real training script in the middle of the learner's save,
then reloads and resumes. A right answer passes; each typical wrong answer is refused with why."""

from __future__ import annotations

import os

import keras
import pytest

from forgekit.exercises import NOT_ANSWERED
from forgekit.exercises.checkpoints_and_resume import check_checkpointing


def atomic_save(model, path):
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def in_place_save(model, path):
    model.save(path)


def right_resume(path, build_model, steps_per_epoch):
    if not path.exists():
        return build_model(), 0
    model = keras.models.load_model(path)
    return model, int(model.optimizer.iterations) // steps_per_epoch


def no_resume(path, build_model, steps_per_epoch):
    return build_model(), 0


def counter_off_by_one(path, build_model, steps_per_epoch):
    if not path.exists():
        return build_model(), 0
    model = keras.models.load_model(path)
    return model, int(model.optimizer.iterations) // steps_per_epoch + 1


def test_placeholders_and_non_functions_are_refused_without_running(tmp_path):
    def stub(model, path):
        ...

    assert check_checkpointing(stub, right_resume, tmp_path) is NOT_ANSWERED
    assert check_checkpointing(None, right_resume, tmp_path) is NOT_ANSWERED
    assert "should be a function" in check_checkpointing(atomic_save, "resume", tmp_path).message


def test_a_helper_from_the_notebook_is_named_not_a_traceback(tmp_path):
    def helper(model, path):
        model.save(path)

    def uses_helper(model, path):
        helper(model, path)

    assert "closure" not in (msg := check_checkpointing(uses_helper, right_resume, tmp_path).message)
    assert "enclosing function" in msg


@pytest.mark.parametrize("save, resume, why", [
    (atomic_save, right_resume, None),
    (in_place_save, right_resume, "saved straight to the final name"),
    (atomic_save, no_resume, "forgot to resume"),
    (atomic_save, counter_off_by_one, "the counter is wrong"),
])
def test_the_checker_kills_the_save_and_resumes(tmp_path, save, resume, why):
    feedback = check_checkpointing(save, resume, tmp_path)
    if why is None:
        assert feedback.passed, feedback.message
        assert "bit for bit" in feedback.message
    else:
        assert not feedback.passed and why in feedback.message, feedback.message
