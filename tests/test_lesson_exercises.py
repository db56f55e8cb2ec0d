"""Exercise checkers of the lessons: the right answer passes (the notebooks prove it on the
real artifacts); each wrong answer is refused with the reason."""

from __future__ import annotations

from forgekit.exercises import NOT_ANSWERED


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
