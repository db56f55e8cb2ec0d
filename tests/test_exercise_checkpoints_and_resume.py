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


def copy_save(model, path):  # a second write per call, and the copy is itself in place
    import shutil

    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    shutil.copyfile(tmp, path)


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


def fixed_counter(path, build_model, steps_per_epoch):  # right at the kill the checker makes
    if not path.exists():
        return build_model(), 0
    return keras.models.load_model(path), 2


def float_counter(path, build_model, steps_per_epoch):
    if not path.exists():
        return build_model(), 0
    model = keras.models.load_model(path)
    return model, int(model.optimizer.iterations) / steps_per_epoch


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
    (copy_save, right_resume, "a copy such as shutil.copyfile"),
    (atomic_save, no_resume, "forgot to resume"),
    (atomic_save, counter_off_by_one, "the counter is wrong"),
    (atomic_save, fixed_counter, "not fixed"),
    (atomic_save, float_counter, "whole numbers"),
])
def test_the_checker_kills_the_save_and_resumes(tmp_path, save, resume, why):
    feedback = check_checkpointing(save, resume, tmp_path)
    if why is None:
        assert feedback.passed, feedback.message
        assert "bit for bit" in feedback.message
    else:
        assert not feedback.passed and why in feedback.message, feedback.message


def test_kill_mid_save_stops_the_nth_keras_write_half_way_and_nothing_else(tmp_path):
    from forgekit.training.midsave import kill_mid_save

    (tmp_path / "writer.py").write_text(
        "for n in range(3):\n"
        "    with open('other.bin', 'wb') as f:\n"  # not a .keras file: never counted
        "        f.write(b'y' * 100)\n"
        "    with open('m.keras', 'wb') as f:\n"
        "        f.write(b'x' * 1000)\n"
        "    print('saved', n + 1, flush=True)\n")
    kill = kill_mid_save("writer.py", tmp_path, save=2, timeout=60)
    assert kill.killed and kill.returncode < 0, kill
    assert kill.stdout.split() == ["saved", "1"], kill.stdout
    assert (kill.path.name, kill.previous_bytes, kill.bytes_written) == ("m.keras", 1000, 500)
    assert (tmp_path / "m.keras").stat().st_size == 500
    assert not list(tmp_path.glob(".midsave-*")), "the status file is the launcher's to remove"
    finished = kill_mid_save("writer.py", tmp_path, save=4, timeout=60)
    assert not finished.killed and finished.returncode == 0 and "not killed" in str(finished)
