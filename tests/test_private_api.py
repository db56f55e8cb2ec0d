"""Every private TensorFlow/Keras API forgekit relies on, one test each.

No public call does these things (as of TensorFlow 2.21 / Keras 3). When a release moves one,
its test fails with what breaks in forgekit and where to look, instead of a lesson failing
somewhere downstream or a fallback silently changing behaviour.
"""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _why(use: str, breaks: str) -> str:
    return (f"private API changed: {use}. In forgekit: {breaks}. Find its replacement in this "
            f"release (TensorFlow {tf.__version__}, Keras {keras.__version__}) and update the "
            "call, or drop the feature with a documented reason.")


@pytest.fixture(scope="module")
def model():
    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    m(np.zeros((1, 2), "float32"))
    return m


def test_keras_get_input_signature(model):
    """serving/deploy.py _export_archive builds publish's archive with the signature
    model.export uses; keras.export offers ExportArchive but not this helper."""
    try:
        from keras.src.export.export_utils import get_input_signature
    except ImportError as exc:
        pytest.fail(_why("keras.src.export.export_utils.get_input_signature is gone",
                         "forgekit.publish cannot build its archive as model.export does")
                    + f" ({exc})")
    spec = get_input_signature(model)
    assert len(spec) == 1 and tuple(spec[0].shape) == (None, 2), _why(
        f"get_input_signature(model) returned {spec!r}", "publish's serve signature differs")


def test_export_archive_keeps_its_endpoints_on_tf_trackable(model):
    """serving/deploy.py _canary calls the traced serve() in-process through
    ExportArchive._tf_trackable; without it publish still works but reloads every export."""
    from keras.src.export.export_utils import get_input_signature

    archive = keras.export.ExportArchive()
    archive.track_and_add_endpoint("serve", model, get_input_signature(model))
    trackable = getattr(archive, "_tf_trackable", None)
    assert trackable is not None and callable(getattr(trackable, "serve", None)), _why(
        "ExportArchive._tf_trackable.serve is missing",
        "publish's canary falls back to tf.saved_model.load (slower, same result)")
    x = np.ones((3, 2), "float32")
    np.testing.assert_allclose(np.asarray(trackable.serve(tf.constant(x))), model(x), rtol=1e-6)


@pytest.fixture(scope="module")
def signature(tmp_path_factory):
    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def double(self, x):
            return {"y": x * 2.0}

    module = Doubler()
    path = tmp_path_factory.mktemp("private") / "doubler"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.double})
    return tf.saved_model.load(str(path)).signatures["serving_default"]


def test_concrete_function_arg_keywords(signature):
    """serving/servable.py _arg_order reads ConcreteFunction._arg_keywords: the order of the
    flat arguments _call_flat takes; the fallback (sorted keywords) may not match it."""
    keywords = getattr(signature, "_arg_keywords", None)
    assert keywords is not None, _why(
        "ConcreteFunction._arg_keywords is gone",
        "servable.py falls back to sorted keyword names for the flat-argument order")
    assert tuple(keywords) == ("x",)


def test_concrete_function_call_flat_skips_the_shape_binding(signature):
    """serving/servable.py _call_unchecked runs a signature through
    ConcreteFunction._call_flat so a tensor whose shape differs from the traced TensorSpec
    reaches the kernels, as TF Serving's Session::Run does; __call__ refuses it first.

    (Measured on TensorFlow 2.21: __call__ refuses NumPy input of another shape, but not the
    same values as a tf.Tensor -- a public route servable.py could take instead.)
    """
    values = np.array([1.0, 2.0, 3.0], "float32")  # rank 1 against TensorSpec([None, 1])
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        signature(x=values)
    x = tf.constant(values)
    call_flat = getattr(signature, "_call_flat", None)
    assert call_flat is not None, _why(
        "ConcreteFunction._call_flat is gone",
        "the server falls back to __call__ and refuses shapes TF Serving accepts")
    out = call_flat([x], signature.captured_inputs)
    y = out["y"] if isinstance(out, dict) else out[0] if isinstance(out, list | tuple) else out
    np.testing.assert_allclose(np.asarray(y), [2.0, 4.0, 6.0])


def test_keras_legacy_compile_args_from_training_config():
    """diagnose/diagnosis.py dry-runs a legacy .h5's training_config through Keras's own
    helper, to predict load_model's failure before loading (no public equivalent)."""
    try:
        from keras.src.legacy.saving.saving_utils import compile_args_from_training_config
    except ImportError as exc:
        pytest.fail(_why("keras.src.legacy.saving.saving_utils.compile_args_from_training_config"
                         " is gone", "doctor reports the training_config check as unchecked")
                    + f" ({exc})")
    assert "training_config" in inspect.signature(compile_args_from_training_config).parameters
    args = compile_args_from_training_config({
        "loss": "mean_squared_error", "loss_weights": None,
        "optimizer_config": {"class_name": "SGD", "config": {"learning_rate": 0.1}}})
    assert "loss" in args and "optimizer" in args


def test_saved_model_save_writes_through_file_io(tmp_path, monkeypatch):
    """serving/crash.py kills an export mid-write by patching
    tensorflow.python.lib.io.file_io.atomic_write_string_to_file, the call that writes
    saved_model.pb; if TF writes it another way, the lesson 06 drill never fires."""
    from tensorflow.python.lib.io import file_io

    seen = []
    original = file_io.atomic_write_string_to_file

    def recording(filename, contents, overwrite=True):
        seen.append(os.path.basename(str(filename)))
        return original(filename, contents, overwrite)

    monkeypatch.setattr(file_io, "atomic_write_string_to_file", recording)
    tf.saved_model.save(tf.Module(), str(tmp_path / "m"))
    assert "saved_model.pb" in seen, _why(
        f"tf.saved_model.save no longer writes saved_model.pb via file_io (wrote {seen})",
        "forgekit.serving.crash cannot kill an export at saved_model.pb")


def test_publish_commits_with_os_rename_where_crash_patches_it():
    """serving/crash.py replaces deploy.os.rename to kill a publish at its commit point."""
    import forgekit.serving.deploy as deploy

    assert deploy.os is os and "os.rename(" in inspect.getsource(deploy), (
        "forgekit.serving.deploy no longer commits a publish with os.rename: update the "
        "'commit' kill point in forgekit/serving/crash.py")
