"""``forgekit migrate``: Keras 2 artifacts written by a fresh tf-keras process, migrated, proven.

Every Keras 2 fixture is written by ONE tf-keras child process per session, and the proofs run
in ONE more (``migrate_many``): the two TensorFlow start-ups are most of this file's time.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from forgekit.measure.fresh import run_fresh
from forgekit.migrate import TOLERANCE, Migration, copy_weights, migrate_many

KERAS2_FIXTURES = r'''
import numpy as np, tf_keras as k
from pathlib import Path
out = Path(OUT)
rng = np.random.default_rng(1)
x4 = rng.standard_normal((32, 4)).astype("float32"); y2 = rng.standard_normal((32, 2)).astype("float32")

seq = k.Sequential([k.Input((4,)), k.layers.Dense(8, activation="relu"), k.layers.Dense(2)])
seq.compile(optimizer="adam", loss="mse")  # the string loss lesson 01 shows failing in Keras 3
seq.fit(x4, y2, epochs=2, batch_size=8, verbose=0)
seq.save(str(out / "seq_savedmodel"))
seq.save(str(out / "seq.h5"))
seq.save(str(out / "seq_no_optimizer.h5"), include_optimizer=False)
seq.save_weights(str(out / "seq_weights.h5"))
seq.save_weights(str(out / "seq_ckpt" / "weights"))
(out / "seq.json").write_text(seq.to_json())

@k.saving.register_keras_serializable(package="forgekit")  # the name forgekit.zoo's Scale has
class Scale(k.layers.Layer):
    def __init__(self, factor=1.0, **kw):
        super().__init__(**kw)
        self.factor = factor
    def call(self, x):
        return x * self.factor
    def get_config(self):
        return {**super().get_config(), "factor": self.factor}

inp = k.Input((4,), name="features")
h = k.layers.Dense(8, activation="relu", name="hidden")(inp)
h = k.layers.BatchNormalization(name="norm")(h)
h = k.layers.Dropout(0.5, name="drop")(h)
bn = k.Model(inp, Scale(2.5, name="scale")(k.layers.Dense(2, name="head")(h)))
bn.compile(optimizer=k.optimizers.SGD(0.01, momentum=0.9), loss="mse", metrics=["mae"])
bn.fit(x4 * 3 + 2, y2, epochs=2, batch_size=8, verbose=0)  # moves the moving statistics
bn.save(str(out / "bn_custom_savedmodel"))

tokens = rng.integers(0, 50, (32, 7))
rnn = k.Sequential([k.Input((7,), dtype="int32"), k.layers.Embedding(50, 8, name="embed"),
                    k.layers.GRU(6, return_sequences=True, name="gru"),
                    k.layers.LSTM(4, name="lstm"), k.layers.Dense(1, name="out")])
rnn.compile(optimizer="rmsprop", loss="mse")
rnn.fit(tokens, y2[:, :1], epochs=1, batch_size=8, verbose=0)
rnn.save(str(out / "rnn.h5"))

a, b = k.Input((4,), name="a"), k.Input((3,), name="b")
joined = k.layers.Concatenate(name="join")([k.layers.Dense(5, name="da")(a), b])
multi = k.Model([a, b], [k.layers.Dense(2, name="reg")(joined),
                         k.layers.Dense(3, activation="softmax", name="cls")(joined)])
multi.compile(optimizer="adam", loss=["mse", "categorical_crossentropy"], loss_weights=[1.0, 0.5])
multi.fit([x4, x4[:, :3]], [y2, np.eye(3)[rng.integers(0, 3, 32)]], epochs=1, verbose=0)
multi.save(str(out / "multi.h5"))

lam = k.Sequential([k.Input((4,)), k.layers.Dense(3, name="dense"),
                    k.layers.Lambda(lambda t: t * 2.0, name="double")])
lam.save(str(out / "lambda.h5"))

class Sub(k.Model):  # subclassed, no get_config: nothing to rebuild from
    def __init__(self):
        super().__init__()
        self.d = k.layers.Dense(2)
    def call(self, x):
        return self.d(x) * 3.0
sub = Sub()
sub(x4[:2])
sub.save(str(out / "subclassed_savedmodel"))
'''


@pytest.fixture(scope="session")
def keras2(tmp_path_factory):
    """Every Keras 2 artifact of this file, written by one fresh tf-keras process."""
    out = tmp_path_factory.mktemp("keras2")
    written = run_fresh(f"OUT = {str(out)!r}\n" + KERAS2_FIXTURES, timeout=300)
    if not written.ok:
        pytest.fail(f"tf-keras could not write the fixtures: {written}")
    return out


CASES = {  # name -> migrate arguments (SRC relative to the fixtures)
    "sequential SavedModel": {"src": "seq_savedmodel", "export": "seq_export"},
    "sequential .h5 with optimizer": {"src": "seq.h5"},
    "sequential .h5 without optimizer": {"src": "seq_no_optimizer.h5"},
    "weights .h5 + JSON": {"src": "seq_weights.h5", "architecture": "seq.json"},
    "TF checkpoint + JSON": {"src": "seq_ckpt/weights", "architecture": "seq.json"},
    "functional BN + Dropout + custom layer": {"src": "bn_custom_savedmodel",
                                               "custom": ["forgekit.zoo.registered:Scale"]},
    "Embedding + GRU + LSTM": {"src": "rnn.h5"},
    "multi-input multi-output": {"src": "multi.h5"},
    "subclassed, no fallback asked": {"src": "subclassed_savedmodel"},
    "subclassed, fallback": {"src": "subclassed_savedmodel", "fallback": True},
    "Lambda, not allowed": {"src": "lambda.h5"},
    "Lambda, allowed": {"src": "lambda.h5", "unsafe_lambda": True},
    "answers held to an impossible bound": {"src": "seq.h5", "tolerance": -1.0},
}


@pytest.fixture(scope="session")
def migrated(keras2, tmp_path_factory):
    """Every case migrated in one batch: name -> (Migration, its job)."""
    dest = tmp_path_factory.mktemp("keras3")
    jobs = []
    for n, case in enumerate(CASES.values()):
        job = {**case, "src": keras2 / case["src"], "dest": dest / f"case{n}.keras"}
        for key in ("architecture", "export"):
            if key in case:
                job[key] = (keras2 if key == "architecture" else dest) / case[key]
        jobs.append(job)
    return {name: (report, job) for name, report, job in
            zip(CASES, migrate_many(jobs), jobs, strict=True)}


PROVEN = ["sequential SavedModel", "sequential .h5 with optimizer",
          "sequential .h5 without optimizer", "weights .h5 + JSON", "TF checkpoint + JSON",
          "functional BN + Dropout + custom layer", "Embedding + GRU + LSTM",
          "multi-input multi-output", "Lambda, allowed"]


@pytest.mark.parametrize("name", PROVEN)
def test_migrated_and_proven(migrated, name):
    import keras

    report, job = migrated[name]
    assert report.exit_code == 0 and report.outcome == "proven", str(report)
    assert report.max_diff is not None and report.max_diff <= TOLERANCE
    model = keras.models.load_model(job["dest"], compile=False,
                                    safe_mode=not job.get("unsafe_lambda"))
    assert len(report.mapping) == len(model.weights)  # every weight came from Keras 2


def test_export_written_with_the_proven_model(migrated):
    from forgekit.formats.detect import detect_format

    report, job = migrated["sequential SavedModel"]
    assert report.export == str(job["export"])
    info = detect_format(job["export"])
    assert info.kind == "savedmodel" and not info.keras2 and "serve" in info.signatures


def test_batchnorm_statistics_and_custom_layer_carried(migrated):
    import keras

    report, job = migrated["functional BN + Dropout + custom layer"]
    model = keras.models.load_model(job["dest"])
    norm = model.get_layer("norm")
    # trained on inputs shifted by +2: the moving mean moved away from its initial zeros
    assert np.abs(norm.moving_mean.numpy()).max() > 0.01
    assert "norm/moving_variance:0" in [a for a, _, _ in report.mapping]
    assert model.get_layer("scale").factor == 2.5  # the custom layer's config came across
    assert int(model.optimizer.iterations) > 0 and report.optimizer_carried


def test_optimizer_state_matches_the_h5(migrated):
    import keras

    report, job = migrated["sequential .h5 with optimizer"]
    with h5py.File(job["src"], "r") as h5:
        saved = []
        h5["optimizer_weights"].visititems(
            lambda name, obj: saved.append((name, obj[()])) if hasattr(obj, "shape") else None)
    steps = next(int(v) for n, v in saved if n.endswith("iteration:0"))
    model = keras.models.load_model(job["dest"])
    assert report.optimizer_carried and int(model.optimizer.iterations) == steps > 0
    slots = sorted(float(np.sum(v)) for n, v in saved if not n.endswith("iteration:0"))
    mine = sorted(float(np.sum(v.numpy())) for v in model.optimizer.variables
                  if v.name not in ("iteration", "learning_rate"))
    assert np.allclose(slots, mine, atol=0)


def test_string_loss_survives_and_compiles(migrated):
    import keras

    report, job = migrated["sequential .h5 with optimizer"]
    model = keras.models.load_model(job["dest"])  # compiled: no compile=False needed
    assert model.loss == "mse"
    x = np.ones((4, 4), np.float32)
    assert np.isfinite(model.evaluate(x, np.zeros((4, 2)), verbose=0))
    uncompiled, _ = migrated["sequential .h5 without optimizer"]
    assert not uncompiled.optimizer_carried and "no optimizer" in uncompiled.optimizer


def test_subclassed_refused_then_fallback(migrated):
    import keras

    refused, job = migrated["subclassed, no fallback asked"]
    assert refused.exit_code == 2 and not job["dest"].exists()
    assert "TFSMLayer" in refused.fix and "subclassed" in refused.error
    fallback, job = migrated["subclassed, fallback"]
    assert fallback.exit_code == 0 and fallback.outcome == "fallback", str(fallback)
    assert "optimizer" in fallback.optimizer and fallback.max_diff <= TOLERANCE
    model = keras.models.load_model(job["dest"], safe_mode=False)
    assert any(isinstance(layer, keras.layers.TFSMLayer) for layer in model.layers)


def test_lambda_needs_permission(migrated):
    import keras

    refused, job = migrated["Lambda, not allowed"]
    assert refused.exit_code == 2 and not job["dest"].exists()
    assert "Lambda" in refused.error and "unsafe" in refused.error
    allowed, job = migrated["Lambda, allowed"]
    assert allowed.exit_code == 0, str(allowed)
    # the permission was for that migration only: safe mode is back on for everything else
    with pytest.raises(ValueError, match="safe_mode"):
        keras.models.load_model(job["dest"])


def test_differing_answers_exit_1_and_write_nothing(migrated):
    report, job = migrated["answers held to an impossible bound"]
    assert report.exit_code == 1 and report.outcome == "differs"
    assert not job["dest"].exists() and not list(job["dest"].parent.glob(".*migrating*"))


def test_weights_that_do_not_pair_are_refused():
    import keras

    from forgekit.migrate import MigrationError

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")])
    names = [["dense", "dense/kernel:0", [4, 3]], ["dense", "dense/bias:0", [3]]]
    with pytest.raises(MigrationError, match="shape"):
        copy_weights(model, names, [np.zeros((4, 3)), np.zeros(3)])
    with pytest.raises(MigrationError, match="no Keras 2 weight"):
        copy_weights(model, [["other", "other/kernel:0", [4, 2]],
                             ["dense", "dense/bias:0", [2]]], [np.zeros((4, 2)), np.zeros(2)])


def test_bad_input_is_named_and_nothing_written(keras2, tmp_path, capsys):
    import keras

    from forgekit.cli import main

    k3 = tmp_path / "already.h5"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(k3)
    truncated = tmp_path / "truncated"
    shutil.copytree(keras2 / "seq_savedmodel", truncated)
    for shard in (truncated / "variables").glob("variables.data-*"):
        shard.unlink()
    junk = tmp_path / "notes.h5"
    junk.write_text("not a model")
    garbled = tmp_path / "garbled"
    shutil.copytree(keras2 / "seq_savedmodel", garbled)
    (garbled / "keras_metadata.pb").write_bytes(b"\xff" * 64)
    for src, words in ((k3, "already a Keras 3"), (truncated, "variables.data"),
                       (junk, "unknown"), (keras2 / "seq_weights.h5", "architecture"),
                       (garbled, "does not read")):
        dest = tmp_path / f"{src.name}.keras"
        assert main(["migrate", str(src), str(dest)]) == 2
        err = capsys.readouterr().err
        assert str(src) in err and words in err and "fix" in err, err
        assert not dest.exists()
    assert main(["migrate", str(junk), str(k3)]) == 2  # DEST must be a new .keras
    assert k3.exists()


def test_cli_exit_codes(monkeypatch, capsys):
    import forgekit.migrate as mig
    from forgekit.cli import main

    for outcome, code in (("proven", 0), ("fallback", 0), ("differs", 1), ("failed", 2)):
        monkeypatch.setattr(mig, "migrate", lambda *a, o=outcome, **k: Migration(
            "src", "dest.keras", outcome=o, max_diff=0.5))
        assert main(["migrate", "src", "dest.keras"]) == code
    capsys.readouterr()
