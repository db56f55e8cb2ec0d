"""Keras 2 (tf-keras) and Keras 3 files, each read by the other Keras in its own fresh process.

Files are written by plain tf_keras and keras calls in this process; each reader runs in a fresh
subprocess that imports only its own Keras. The outcomes asserted here are the ones lesson 05
shows: what fails, with what error, and which bridges work (predictions equal).
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import forgekit
from forgekit.keras_io.keras_versions import compare, installed
from forgekit.measure.fresh import load_snippet, run_fresh_many
from tests.conftest import small_model


def test_compare_relations():
    assert compare("3.15.1", "3.15.0").relation == "same"
    assert compare("2.21.0", "3.15.1").relation == "newer reader"
    assert "compile=False" in compare("2.21.0", "3.15.1").message
    assert compare("3.15.1", "3.16.0").relation == "newer reader"
    older = compare("3.99.0", "3.15.1")
    assert older.relation == "older reader" and not older.ok
    across = compare("3.15.1", "2.21.0")
    assert across.relation == "older reader" and "SavedModel" in across.message
    assert compare(None, "3.15.1").relation == "unknown"
    assert compare("3.15.1").reader == installed("keras")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from forgekit.quiet import quiet_tf

    quiet_tf()
    import tf_keras

    d = tmp_path_factory.mktemp("versions")
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = np.stack([x.sum(axis=1), x[:, 0]], axis=1)
    np.save(d / "x.npy", x)
    k3 = small_model(loss="mse")
    k3.fit(x, y, epochs=1, verbose=0)
    k3.save(d / "k3.keras")
    k3.save_weights(d / "k3.weights.h5")
    k3.export(d / "k3_export", verbose=False)
    k3.save(d / "k3.h5")
    np.save(d / "k3.npy", k3.predict(x, verbose=0))
    k2 = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(8, activation="relu"),
                              tf_keras.layers.Dense(2)])
    k2.compile(optimizer="adam", loss="mse")
    k2.fit(x, y, epochs=1, verbose=0)
    k2.save(str(d / "k2.h5"))
    k2.save(str(d / "k2_savedmodel"))
    np.save(d / "k2.npy", k2.predict(x, verbose=0))
    return d


@pytest.fixture(scope="module")
def crossed(files):
    d = files

    def k2(call, ref):
        return load_snippet(call, setup="import tf_keras, tensorflow as tf", inputs=d / "x.npy",
                            reference=d / ref)

    def k3(call, ref, **kw):
        return load_snippet(call, setup="import keras, tensorflow as tf", inputs=d / "x.npy",
                            reference=d / ref, **kw)

    rebuild = ("tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(8, "
               "activation='relu'), tf_keras.layers.Dense(2)])")
    return run_fresh_many({
        "keras 2 reader": {
            "k2 <- k3 .keras": k2(f"tf_keras.models.load_model({str(d / 'k3.keras')!r})", "k3.npy"),
            "k2 <- k3 .h5": k2(f"tf_keras.models.load_model({str(d / 'k3.h5')!r})", "k3.npy"),
            "k2 <- k3 export": load_snippet(
                f"tf.saved_model.load({str(d / 'k3_export')!r})", inputs=d / "x.npy",
                reference=d / "k3.npy", predict="model.serve(x).numpy()"),
            "k2 <- k3 weights": k2(f"{rebuild}; model.load_weights("
                                   f"{str(d / 'k3.weights.h5')!r})", "k3.npy"),
            "k2 modules": "import sys\nresult = sorted(m for m in ('keras', 'tf_keras') "
                          "if m in sys.modules)",
        },
        "keras 3 reader": {
            "k3 <- k2 .h5": k3(f"keras.models.load_model({str(d / 'k2.h5')!r})", "k2.npy"),
            "k3 <- k2 .h5 compile=False": k3(
                f"keras.models.load_model({str(d / 'k2.h5')!r}, compile=False)", "k2.npy"),
            "k3 <- k2 SavedModel": k3(
                f"keras.models.load_model({str(d / 'k2_savedmodel')!r})", "k2.npy"),
            "k3 <- k2 SavedModel TFSMLayer": k3(
                f"keras.layers.TFSMLayer({str(d / 'k2_savedmodel')!r}, "
                "call_endpoint='serving_default')", "k2.npy",
                predict="next(iter(model(x).values()))"),
            "k3 modules": "import sys\nresult = sorted(m for m in ('keras', 'tf_keras') "
                          "if m in sys.modules)",
        },
    })


def test_the_keras3_reader_never_imported_keras2(crossed):
    assert crossed["k3 modules"].value == ["keras"]
    # importing tf_keras pulls keras 3 into sys.modules too; the calls made there are tf_keras's
    assert "tf_keras" in crossed["k2 modules"].value


def test_keras2_cannot_read_keras3_files(crossed):
    for name in ("k2 <- k3 .keras", "k2 <- k3 .h5"):
        outcome = crossed[name]
        assert outcome.error_type == "TypeError", str(outcome)
        assert "InputLayer" in outcome.message  # Keras 3's batch_shape config key


def test_keras3_cannot_load_keras2_files_as_they_are(crossed):
    assert crossed["k3 <- k2 .h5"].error_type == "ValueError"
    assert "keras.metrics.mse" in crossed["k3 <- k2 .h5"].message
    assert crossed["k3 <- k2 SavedModel"].error_type == "ValueError"
    assert "File format not supported" in crossed["k3 <- k2 SavedModel"].message


@pytest.mark.parametrize("bridge", ["k2 <- k3 export", "k2 <- k3 weights",
                                    "k3 <- k2 .h5 compile=False", "k3 <- k2 SavedModel TFSMLayer"])
def test_bridges_load_and_predict_the_same(crossed, bridge):
    outcome = crossed[bridge]
    assert outcome.ok, str(outcome)
    assert outcome.value == 0.0


def test_doctor_reports_writer_versions_and_the_reader_relation(files):
    k2 = forgekit.doctor(files / "k2.h5")
    assert k2.info.keras_version == installed("tf_keras")
    assert k2.version.relation == "newer reader"
    assert "compile=False" in k2.fix  # the legacy compile config does not deserialize here
    k3 = forgekit.doctor(files / "k3.keras")
    assert k3.version.relation == "same" and k3.ok


def test_a_file_from_a_newer_keras_is_flagged(files, tmp_path):
    newer = tmp_path / "newer.keras"  # the same file, as if written by a future Keras
    with zipfile.ZipFile(files / "k3.keras") as src, zipfile.ZipFile(newer, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "metadata.json":
                meta = json.loads(data)
                meta["keras_version"] = "3.99.0"
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    report = forgekit.doctor(newer)
    assert report.version.relation == "older reader" and not report.ok
    assert any("3.99.0" in problem for problem in report.problems)
