"""The probe measures what each format brings back; these tests check the measurements can
tell a restored thing from a lost one (not which formats keep what: the lessons measure that)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import forgekit
from forgekit.measure import probe


@pytest.fixture(scope="module")
def trained():
    forgekit.quiet_tf()
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss=keras.losses.MeanSquaredError(), metrics=["mae"])
    rng = np.random.default_rng(0)
    model.fit(rng.random((32, 4)), rng.random((32, 2)), epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def table(trained, tmp_path_factory):
    return probe.matrix(trained, probe.DEFAULT_KINDS, tmp_path_factory.mktemp("probe"))


def test_matrix_has_one_measured_row_per_kind(table):
    assert [r.kind for r in table] == list(probe.DEFAULT_KINDS)
    for r in table:
        assert r.size_bytes > 0 and r.save_seconds > 0 and r.load_seconds > 0
        assert forgekit.detect_format(r.path).kind == r.kind  # left on disk for inspection


def test_native_keras_brings_everything_back(table):
    r = table["keras"]
    assert r.architecture_restored and r.compile_restored and r.optimizer_restored
    assert r.weights_max_abs_diff == 0.0 and r.predictions_max_abs_diff == 0.0
    assert "iterations 1 (saved 1)" in r.optimizer_detail
    assert "optimizer variables came back unchanged" in r.optimizer_detail


def test_export_is_an_inference_artifact(table):
    r = table["savedmodel"]
    assert r.weights_equal and r.predictions_equal
    assert "serve" in r.signatures and r.serving_signature
    # a tf.saved_model.load object has no optimizer or Keras config: n/a, not a typed False
    assert r.architecture_restored is r.optimizer_restored is r.compile_restored is None
    assert "not a Keras model" in r.not_applicable["optimizer state"]
    row = dict(zip(probe.ProbeMatrix.COLUMNS, probe.ProbeMatrix([r]).rows()[0], strict=True))
    assert row["optimizer state"] == row["architecture"] == row["compile config"] == "n/a"
    assert any(n.startswith("savedmodel: n/a (") for n in table.notes())


def test_savedmodel_row_is_measured_not_assumed(trained, tmp_path, monkeypatch):
    """Reloaded variables that differ must show in the row (a stub saying ✓ would not)."""
    import tensorflow as tf

    real = tf.saved_model.load

    def perturbed(path, **kwargs):
        obj = real(path, **kwargs)
        obj.variables[0].assign(obj.variables[0] + 1.0)
        return obj

    monkeypatch.setattr(tf.saved_model, "load", perturbed)
    r = probe.roundtrip(trained, "savedmodel", tmp_path)
    assert r.weights_max_abs_diff == pytest.approx(1.0, rel=1e-5)
    assert r.weights_equal is False and r.predictions_equal is False


def test_tflite_row_is_measured_not_assumed(trained, tmp_path, monkeypatch):
    """A flatbuffer of other weights must show as other predictions; the Keras columns are n/a."""
    import keras

    from forgekit.keras_io import saving

    other = keras.models.clone_model(trained)  # same architecture, fresh weights
    real_save = saving.save
    monkeypatch.setattr(saving, "save",
                        lambda model, path, kind=None, **kw: real_save(other, path, kind, **kw))
    r = probe.roundtrip(trained, "tflite", tmp_path)
    assert r.predictions_max_abs_diff > r.prediction_tolerance and r.predictions_equal is False
    assert set(r.not_applicable) == {"architecture", "weights", "optimizer state",
                                     "compile config"}
    row = dict(zip(probe.ProbeMatrix.COLUMNS, probe.ProbeMatrix([r]).rows()[0], strict=True))
    assert row["weights"] == row["optimizer state"] == "n/a"
    assert row["predictions"].startswith("✗")


def test_json_reload_has_the_architecture_but_not_the_weights(table):
    r = table["json_architecture"]
    assert r.architecture_restored is True
    assert r.weights_max_abs_diff > 0 and r.predictions_equal is False


def test_tflite_predictions_within_tolerance(table):
    r = table["tflite"]
    assert r.weights_max_abs_diff is None
    assert r.predictions_equal and r.prediction_tolerance > 0


def test_weights_only_formats_need_code_for_the_architecture(table):
    for kind in ("weights_h5", "tf_checkpoint"):
        r = table[kind]
        assert r.architecture_restored is None and r.weights_equal
        assert "from your code" in r.not_applicable["architecture"]


def test_optimizer_check_detects_a_fresh_optimizer(trained):
    import keras

    fresh = keras.models.clone_model(trained)
    fresh.set_weights(trained.get_weights())
    fresh.compile(optimizer="adam", loss="mse")
    result = probe.ProbeResult("fresh", Path("."), "")
    probe._compare_optimizer(result, trained, fresh)
    assert result.optimizer_restored is False
    assert "iterations 0 (saved 1)" in result.optimizer_detail


def test_config_differences_name_the_path():
    assert probe.config_differences({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) == []
    diffs = probe.config_differences({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}], "c": 0})
    assert diffs == ["/a[1]/b: 2 != 3", "/c only in reloaded"]


def test_max_abs_diff():
    assert probe.max_abs_diff([np.ones(3)], [np.ones(3)]) == 0.0
    assert probe.max_abs_diff([np.ones(3)], [np.ones(3) * 1.5]) == 0.5
    assert probe.max_abs_diff([np.ones(3)], [np.ones(4)]) == float("inf")
    assert probe.max_abs_diff([np.ones(3)], []) == float("inf")


def test_table_renders_as_text_and_html(table):
    text = str(table)
    assert text.splitlines()[0].split()[:2] == ["kind", "architecture"]
    assert all(kind in text for kind in probe.DEFAULT_KINDS)
    markup = table._repr_html_()
    assert markup.count("<tr>") == len(table) + 1 and "serving signature" in markup


def test_probe_leaves_the_model_untouched(trained):
    config = trained.get_compile_config()
    weights = [w.copy() for w in trained.get_weights()]
    probe.roundtrip(trained, "h5_model")  # the legacy writer edits compile config in place
    assert trained.get_compile_config() == config
    assert probe.max_abs_diff(weights, trained.get_weights()) == 0.0


def test_unknown_kind_is_refused(trained):
    with pytest.raises(ValueError, match="no probe for kind"):
        probe.roundtrip(trained, "pickle")


def test_captured_logs_sees_keras_absl_warnings_and_restores_the_logger():
    import logging

    absl = logging.getLogger("absl")
    level, propagate = absl.level, absl.propagate
    with probe.captured_logs() as logged:
        absl.warning("Compiled the loaded model, but %s", "metrics")
    assert logged == ["Compiled the loaded model, but metrics"]
    assert (absl.level, absl.propagate) == (level, propagate)


def test_size_chart_states_the_measured_finding(table):
    import matplotlib

    matplotlib.use("Agg")
    from forgekit import plots

    sizes = {r.kind: r.size_bytes for r in table}
    fig = plots.size_bars(table, reference=1000)
    ax = fig.axes[0]
    small, large = min(sizes, key=sizes.get), max(sizes, key=sizes.get)
    assert ax.get_title() == f"{large} is {sizes[large] / sizes[small]:.1f}x the size of {small}"
    assert ax.get_xlabel().startswith("size on disk (") and len(ax.patches) == len(sizes)


# --------------------------------------------------------------------------------------------
# exercise checkers: the right answer passes (the notebooks prove it); wrong ones say why


