"""forgekit.save writes every kind with the real API; forgekit.load reads it back by content,
refuses what does not fit with WrongFormatError, and never touches the artifact."""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings

import numpy as np
import pytest

import forgekit
from forgekit.errors import ArtifactNotFoundError, CorruptArtifactError, WrongFormatError
from forgekit.keras_io.saving import WRITABLE_KINDS
from tests.conftest import small_model

X = np.random.default_rng(0).random((8, 4), dtype=np.float32)


build = small_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A trained model saved once as every writable kind through forgekit.save."""
    forgekit.quiet_tf()
    d = tmp_path_factory.mktemp("saved")
    model = build()
    model.fit(X, np.random.default_rng(1).random((8, 2)), epochs=1, verbose=0)
    names = {"keras": "m.keras", "h5_model": "m.h5", "weights_h5": "m.weights.h5",
             "savedmodel": "export", "tf_checkpoint": "ckpts/ckpt", "tflite": "m.tflite",
             "json_architecture": "m.json", "serving_base": "base"}
    infos = {kind: forgekit.save(model, d / names[kind], kind=kind) for kind in WRITABLE_KINDS}
    return model, d, infos


def digest(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_save_writes_each_kind(saved):
    _, _, infos = saved
    for kind, info in infos.items():
        assert info.kind == kind, info
    assert infos["tf_checkpoint"].load_path.name == "ckpt-1"  # TF numbers the prefix
    assert infos["serving_base"].details["versions"] == [1]
    assert infos["keras"].has_optimizer and not infos["savedmodel"].has_optimizer


def test_save_infers_kind_from_extension(saved, tmp_path):
    model, _, _ = saved
    assert forgekit.save(model, tmp_path / "a.keras").kind == "keras"
    assert forgekit.save(model, tmp_path / "a.weights.h5").kind == "weights_h5"
    assert forgekit.save(model, tmp_path / "a.json").kind == "json_architecture"


def test_serving_base_versions_count_up_and_never_overwrite(saved, tmp_path):
    model, _, _ = saved
    forgekit.save(model, tmp_path / "base", kind="serving_base")
    info = forgekit.save(model, tmp_path / "base", kind="serving_base")
    assert info.details["versions"] == [1, 2]
    with pytest.raises(WrongFormatError, match="already exists"):
        forgekit.save(model, tmp_path / "base", kind="serving_base", version=2)


@pytest.mark.parametrize(
    "name, kind",
    [("model", "keras"), ("model.h5", "keras"), ("model.weights.h5", "h5_model"),
     ("model.h5", "weights_h5"), ("model.keras", "savedmodel"), ("model", None)],
)
def test_save_refuses_a_name_that_does_not_fit(saved, tmp_path, name, kind):
    model, _, _ = saved
    with pytest.raises(WrongFormatError) as info:
        forgekit.save(model, tmp_path / name, kind=kind)
    assert info.value.fix and "forgekit.save(model" in info.value.fix
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_load_restores_predictions_for_every_kind(saved):
    model, d, infos = saved
    expected = model.predict(X, verbose=0)
    assert np.allclose(forgekit.load(infos["keras"].path).predict(X, verbose=0), expected)
    assert np.allclose(forgekit.load(infos["h5_model"].path).predict(X, verbose=0), expected)
    for kind in ("weights_h5", "tf_checkpoint"):
        restored = forgekit.load(infos[kind].path, model=build())
        assert np.allclose(restored.predict(X, verbose=0), expected), kind
    exported = forgekit.load(infos["savedmodel"].path)
    assert np.allclose(exported.serve(X).numpy(), expected)
    layer = forgekit.load(infos["savedmodel"].path, loader="tfsm_layer")
    assert np.allclose(np.asarray(layer(X)), expected)
    runner = forgekit.load(infos["tflite"].path).get_signature_runner()
    (name,) = runner.get_input_details()
    (answer,) = runner(**{name: X}).values()
    assert np.allclose(answer, expected, atol=1e-5)
    # JSON holds the architecture only: the same predictions once the weights are poured in
    rebuilt = forgekit.load(infos["json_architecture"].path)
    rebuilt.set_weights(model.get_weights())
    assert np.allclose(rebuilt.predict(X, verbose=0), expected)


def test_the_prediction_check_fails_on_another_model(saved, tmp_path):
    """The checks above would catch a restore that did nothing: another model's artifacts
    give other predictions, for every kind that holds weights."""
    model, _, infos = saved
    expected = model.predict(X, verbose=0)
    other = build()  # fresh random weights, never trained
    for kind, name in (("keras", "o.keras"), ("weights_h5", "o.weights.h5"),
                       ("tf_checkpoint", "ckpt/ckpt")):
        written = forgekit.save(other, tmp_path / name, kind=kind)
        loaded = (forgekit.load(written.path) if kind == "keras"
                  else forgekit.load(written.path, model=build()))
        assert not np.allclose(loaded.predict(X, verbose=0), expected), kind
    untouched = build()
    assert not np.allclose(untouched.predict(X, verbose=0), expected)


def test_load_weights_restores_the_optimizer_state(saved):
    model, _, infos = saved
    restored = forgekit.load(infos["weights_h5"].path, model=build())
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) > 0
    for a, b in zip(restored.optimizer.variables, model.optimizer.variables, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_load_never_modifies_the_artifacts(saved):
    _, d, infos = saved
    before = digest(d)
    forgekit.load(infos["keras"].path)
    forgekit.load(infos["savedmodel"].path)
    forgekit.load(infos["weights_h5"].path, model=build())
    with pytest.raises(WrongFormatError):
        forgekit.load(infos["weights_h5"].path)
    assert digest(d) == before


def test_expectation_that_does_not_fit(saved):
    _, _, infos = saved
    with pytest.raises(WrongFormatError) as info:
        forgekit.load(infos["savedmodel"].path, expect="keras")
    err = info.value
    assert (err.found, err.expected) == ("savedmodel", "keras")
    assert "tf.saved_model.load(" in err.fix and str(infos["savedmodel"].path) in str(err)


def test_loader_that_does_not_fit(saved):
    _, _, infos = saved
    with pytest.raises(WrongFormatError, match="keras.models.load_model cannot read") as info:
        forgekit.load(infos["savedmodel"].path, loader="load_model")
    assert "TFSMLayer" in info.value.fix
    with pytest.raises(WrongFormatError, match="tf_keras"):
        forgekit.load(infos["savedmodel"].path, loader="tf_keras")  # Keras 3 export, not Keras 2
    with pytest.raises(WrongFormatError, match="no loader named"):
        forgekit.load(infos["keras"].path, loader="pickle")


def test_weights_and_checkpoints_need_a_model(saved):
    _, _, infos = saved
    for kind in ("weights_h5", "tf_checkpoint"):
        with pytest.raises(WrongFormatError, match="model=model"):
            forgekit.load(infos[kind].path)


def test_serving_base_names_the_version_to_load(saved):
    _, d, infos = saved
    with pytest.raises(WrongFormatError) as info:
        forgekit.load(infos["serving_base"].path)
    assert info.value.fix == f"forgekit.load({str(d / 'base' / '1')!r})"


def test_misnamed_artifacts_load_by_content_and_stay_untouched(saved, tmp_path):
    model, d, _ = saved
    expected = model.predict(X, verbose=0)
    shutil.copy(d / "m.h5", tmp_path / "really_h5.keras")
    shutil.copy(d / "m.keras", tmp_path / "really_zip.h5")
    shutil.copy(d / "m.weights.h5", tmp_path / "plain_name.h5")
    before = digest(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = forgekit.load(tmp_path / "really_h5.keras")
        b = forgekit.load(tmp_path / "really_zip.h5")
        c = forgekit.load(tmp_path / "plain_name.h5", model=build())
    assert any("really_h5.keras" in str(w.message) for w in caught)
    for restored in (a, b, c):
        assert np.allclose(restored.predict(X, verbose=0), expected)
    assert digest(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "plain_name.h5", "really_h5.keras", "really_zip.h5"]


def test_bad_inputs_through_load(saved, tmp_path):
    _, d, _ = saved
    with pytest.raises(ArtifactNotFoundError):
        forgekit.load(tmp_path / "missing.keras")
    (tmp_path / "random.keras").write_bytes(np.random.default_rng(3).bytes(2048))
    with pytest.raises(CorruptArtifactError, match="random.keras"):
        forgekit.load(tmp_path / "random.keras")
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(WrongFormatError):
        forgekit.load(tmp_path / "notes.txt")


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.99])
def test_truncated_weight_shards_fail_as_corrupt(saved, tmp_path, fraction):
    _, d, _ = saved
    shutil.copytree(d / "export", tmp_path / "export")
    shutil.copytree(d / "ckpts", tmp_path / "ckpts")
    for shard in (tmp_path / "export" / "variables" / "variables.data-00000-of-00001",
                  tmp_path / "ckpts" / "ckpt-1.data-00000-of-00001"):
        shard.write_bytes(shard.read_bytes()[: int(shard.stat().st_size * fraction)])
    with pytest.raises(CorruptArtifactError, match="truncated"):
        forgekit.load(tmp_path / "export")
    with pytest.raises(CorruptArtifactError, match="truncated"):
        forgekit.load(tmp_path / "ckpts", model=build())


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_tflite_fails_as_corrupt(saved, tmp_path, fraction):
    _, d, _ = saved
    data = (d / "m.tflite").read_bytes()
    (tmp_path / "m.tflite").write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CorruptArtifactError, match="m.tflite"):
        forgekit.load(tmp_path / "m.tflite")


def test_flipped_bytes_inside_keras_archive_fail_as_corrupt(saved, tmp_path):
    _, d, _ = saved
    data = bytearray((d / "m.keras").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    (tmp_path / "m.keras").write_bytes(bytes(data))
    with pytest.raises(CorruptArtifactError, match="m.keras"):
        forgekit.load(tmp_path / "m.keras")


def test_legacy_h5_with_the_mse_alias_names_the_compile_false_fix(tmp_path):
    import keras

    from forgekit.errors import IncompatibleArtifactError

    model = build(compiled=False)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])  # the short aliases: common
    model.fit(X, np.zeros((8, 2)), epochs=1, verbose=0)
    path = tmp_path / "legacy.h5"
    model.save(path)
    with pytest.raises(IncompatibleArtifactError) as caught:
        forgekit.load(path)
    message = str(caught.value)
    assert str(path) in message and "compile=False" in message and "h5_model" in message
    restored = forgekit.load(path, compile=False)  # the fix the message names, executed
    assert isinstance(restored, keras.Model)
    assert np.array_equal(restored.predict(X, verbose=0), model.predict(X, verbose=0))


def test_tensorflow_permission_error_becomes_unreadable_artifact_error(saved, monkeypatch):
    """TF reads variable shards through its own file API: its PermissionDeniedError, not
    Python's PermissionError, is what an unreadable shard raises (root cannot provoke it)."""
    import tensorflow as tf

    from forgekit.errors import UnreadableArtifactError
    from forgekit.keras_io import loading

    def denied(info, **kw):
        raise tf.errors.PermissionDeniedError(None, None, "variables.data-00000-of-00001")

    kinds, _, call = loading.LOADERS["saved_model_load"]
    monkeypatch.setitem(loading.LOADERS, "saved_model_load", (kinds, denied, call))
    _, d, _ = saved
    with pytest.raises(UnreadableArtifactError) as info:
        forgekit.load(d / "export")
    assert info.value.found == "savedmodel" and "chmod" in info.value.fix
    assert str(d / "export") in str(info.value)


# --------------------------------------------------------------------------------------------
# a restore that matched nothing, and the system failing, are not what they seem


def test_checkpoint_restore_that_matches_nothing_raises(saved, tmp_path):
    """tf.train.Checkpoint.restore is lazy: into a model with nothing in common it used to
    return the model untouched and silent."""
    import tensorflow as tf

    model, d, infos = saved
    target = build()
    before = [w.copy() for w in target.get_weights()]
    with pytest.raises(WrongFormatError, match="nothing in this checkpoint belongs to model") as error:
        forgekit.load(infos["savedmodel"].path / "variables", model=target)
    assert "tf.saved_model.load" in error.value.fix
    other = tf.train.Checkpoint(step=tf.Variable(3)).save(str(tmp_path / "other" / "ckpt"))
    with pytest.raises(WrongFormatError, match="nothing in this checkpoint belongs to model"):
        forgekit.load(other, model=target)
    assert all(np.array_equal(a, b) for a, b in zip(before, target.get_weights(), strict=True))
    restored = forgekit.load(infos["tf_checkpoint"].path, model=build())  # the right one still
    assert np.allclose(restored.predict(X, verbose=0), model.predict(X, verbose=0))


@pytest.mark.parametrize("code", ["ENOSPC", "EMFILE", "EIO"])
def test_system_errors_are_not_reported_as_a_damaged_artifact(saved, monkeypatch, code):
    import errno

    from forgekit.errors import ArtifactReadError
    from forgekit.keras_io import loading

    _, _, infos = saved

    def failing(info, **kw):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    kinds, _, call = loading.LOADERS["load_model"]
    monkeypatch.setitem(loading.LOADERS, "load_model", (kinds, failing, call))
    with pytest.raises(ArtifactReadError) as error:
        forgekit.load(infos["keras"].path)
    assert not isinstance(error.value, CorruptArtifactError)
    assert code in error.value.reason and "truncated" not in str(error.value)


def test_system_errors_while_detecting_are_not_corruption(saved, monkeypatch):
    import errno

    import h5py

    from forgekit.errors import ArtifactReadError

    _, _, infos = saved

    def failing(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(h5py, "File", failing)
    with pytest.raises(ArtifactReadError, match="EIO"):
        forgekit.detect_format(infos["h5_model"].path)
