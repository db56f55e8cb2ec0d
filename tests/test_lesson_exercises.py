"""Exercise checkers of the lessons: the right answer passes (the notebooks prove it on the
real artifacts); each wrong answer is refused with the reason."""

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
    from forgekit.exercises.start_here import check_guess

    choices = ("exact", "close")
    assert not check_guess(None, "exact", choices, "why").passed
    assert "not one of" in check_guess("maybe", "exact", choices, "why").message
    wrong_guess = check_guess("close", "exact", choices, "max 0.0")
    assert not wrong_guess.passed and "measured 'exact'" in wrong_guess.message
    assert check_guess(" Exact", "exact", choices, "max 0.0").passed


def test_start_here_keep_checker_tests_the_function_on_its_own_model(small_model, tmp_path):
    from pathlib import Path

    from forgekit.exercises.start_here import check_keep

    def no_mkdir(model, folder):
        model.save(Path(folder) / "m.keras")
        return Path(folder) / "m.keras"

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
    }
    for why, answer in verdicts.items():
        feedback = check_keep(answer, tmp_path)
        assert not feedback.passed and why in feedback.message, (why, feedback.message)

    def stub(model, folder):
        ...  # the lesson's unedited cell

    assert check_keep(stub, tmp_path) is NOT_ANSWERED
    right = check_keep(saver(lambda m, p: m.save(p), ".keras"), tmp_path)
    assert right.passed and "step" in right.message, right.message


def test_checkpoint_checker_requires_the_resume_and_midsave_fixes(tmp_path):
    import keras

    from forgekit.exercises.checkpoints_and_resume import check_callbacks
    from forgekit.training.checkpoints import AtomicCheckpoint

    def callbacks(backup="backup", best="best/best.keras", save_freq="epoch", plain=False, **kw):
        kw = {"monitor": "val_loss", "save_best_only": True, **kw}
        if plain or "save_weights_only" in kw or "initial_value_threshold" in kw:
            checkpoint = keras.callbacks.ModelCheckpoint(tmp_path / best, **kw)
        else:
            checkpoint = AtomicCheckpoint(tmp_path / best, **kw)
        return [keras.callbacks.BackupAndRestore(tmp_path / backup, save_freq=save_freq), checkpoint]

    assert check_callbacks(None) is NOT_ANSWERED
    assert check_callbacks(callbacks()).passed
    verdicts = {
        "inside backup_dir": callbacks(best="backup/best.keras"),
        "save_best_only=True": callbacks(save_best_only=False),
        "'val_loss'": callbacks(monitor="loss"),
        "applied twice": callbacks(save_freq=10),
        "not a full .keras": callbacks(best="best/best.weights.h5", save_weights_only=True),
        "you need exactly one": callbacks()[1:],
        "best = infinity": callbacks(plain=True),
        "writes best.keras in place": callbacks(initial_value_threshold=0.5),
    }
    for why, answer in verdicts.items():
        feedback = check_callbacks(answer)
        assert not feedback.passed and why in feedback.message, (why, feedback.message)


def test_resumable_checker_crashes_and_restarts_the_run(tmp_path):
    import keras

    from forgekit.exercises.checkpoints_and_resume import check_resumable

    def plain(folder, validation_data):  # restarts well, but forgets the best value
        return [keras.callbacks.BackupAndRestore(folder / "backup"),
                keras.callbacks.ModelCheckpoint(folder / "best.keras", monitor="val_loss",
                                                save_best_only=True)]

    def shared(folder, validation_data):  # the backup folder is the best file's folder
        return [keras.callbacks.BackupAndRestore(folder),
                keras.callbacks.ModelCheckpoint(folder / "best.keras", monitor="val_loss",
                                                save_best_only=True)]

    assert check_resumable(None, tmp_path) is NOT_ANSWERED
    assert "return a list" in check_resumable(lambda folder, data: None, tmp_path).message
    for why, answer in {"initial_value_threshold": plain, "a folder of its own": shared}.items():
        feedback = check_resumable(answer, tmp_path)
        assert not feedback.passed and why in feedback.message, (why, feedback.message)


def _checkpoint_experiment(**checkpoint_options):
    """An experiment for lesson 10's exercise; options change the recipe or the report."""
    import keras
    import numpy as np

    from forgekit.outcome import attempt

    report = checkpoint_options.pop("report", {})
    validate = checkpoint_options.pop("validate", True)
    name = checkpoint_options.pop("name", None)

    def my_experiment(workdir):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(96, 4)).astype("float32")
        y = x.sum(axis=1, keepdims=True)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        path = workdir / (name or ("best.weights.h5" if checkpoint_options.get("save_weights_only")
                                   else "best.keras"))
        options = {"save_best_only": True, **checkpoint_options}
        model.fit(x[:64], y[:64], validation_data=(x[64:], y[64:]) if validate else None,
                  epochs=2, batch_size=32, verbose=0,
                  callbacks=[keras.callbacks.ModelCheckpoint(path, **options)])
        if not path.exists():
            return {"checkpoint": path, "architecture": False, "optimizer_steps": 0,
                    "verdict": "holds"}
        loaded = attempt(keras.models.load_model, path)  # as the lesson's solution measures
        if not loaded.ok:  # e.g. an .h5 whose loss="mse" does not deserialize
            measured = {"checkpoint": path, "architecture": False, "optimizer_steps": 0,
                        "verdict": "holds"}
        else:
            measured = {"checkpoint": path, "architecture": True, "verdict": "does not hold",
                        "optimizer_steps": int(loaded.value.optimizer.iterations)}
        return {**measured, **report}

    return my_experiment


def test_checkpoint_audit_checker_runs_the_experiment_and_compares_its_numbers(tmp_path):
    from forgekit.exercises.explorer_and_claims import check_checkpoint_audit

    assert check_checkpoint_audit(None, tmp_path) is NOT_ANSWERED
    right = check_checkpoint_audit(_checkpoint_experiment(), tmp_path)
    assert right.passed, right.message
    assert "does not hold" in right.message and "4 steps" in right.message
    h5 = check_checkpoint_audit(_checkpoint_experiment(
        name="best.h5", report={"architecture": True, "verdict": "does not hold"}), tmp_path)
    assert h5.passed and "compile=False" in h5.message, h5.message
    verdicts = {
        "save_weights_only=True": _checkpoint_experiment(save_weights_only=True),
        "saves every epoch": _checkpoint_experiment(save_best_only=False),
        "pass validation_data to fit": _checkpoint_experiment(validate=False),
        "the architecture is in it": _checkpoint_experiment(report={"architecture": False}),
        "has taken 4 steps": _checkpoint_experiment(report={"optimizer_steps": 2}),
        "not 'holds'": _checkpoint_experiment(report={"verdict": "holds"}),
        "missing: ['verdict']": lambda workdir: {
            k: v for k, v in _checkpoint_experiment()(workdir).items() if k != "verdict"},
        "never created a keras.callbacks.ModelCheckpoint": lambda workdir: {},
        "raised ZeroDivisionError": lambda workdir: 1 / 0,
        # ModelCheckpoint writes a whole HDF5 model under these names: load_model fails on its
        # compile config (loss="mse"), which is no evidence of a weights-only file
        "failed on its compile config": _checkpoint_experiment(name="best.h5"),
        "is a whole model": _checkpoint_experiment(name="best.weights.h5"),
    }
    for why, experiment in verdicts.items():
        feedback = check_checkpoint_audit(experiment, tmp_path)
        assert not feedback.passed and why in feedback.message, (why, feedback.message)
