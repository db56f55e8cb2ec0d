"""detect_format decides by content: every kind written by plain Keras / tf-keras / TF calls,
misnamed files, and bad inputs (empty, truncated, random, incomplete, missing, unreadable)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import forgekit
from forgekit.errors import (
    ArtifactNotFoundError,
    CorruptArtifactError,
    ForgekitError,
    UnreadableArtifactError,
    WrongFormatError,
)
from forgekit.formats.detect import detect_format
from forgekit.formats.info import KERAS3_UNREADABLE_LOSSES
from forgekit.formats.kinds import KINDS, extension_kinds, keras_reads_name, keras_suffix
from tests.conftest import as_nobody, locked_copy, small_model


def test_unreadable_file_is_reported_as_such():
    """A file this user may not read gives UnreadableArtifactError, not a bare PermissionError."""

    def detect(target: str) -> str:
        try:
            detect_format(target)
            return "no error"
        except UnreadableArtifactError as exc:
            return f"Unreadable:{exc.path}"

    with locked_copy(b"PK\x03\x04" + b"\0" * 64) as target:
        assert as_nobody(lambda: detect(target)) == f"Unreadable:{target}"


def test_error_classes_carry_structure_and_one_line_message():
    err = WrongFormatError("not a keras file", path="m.h5", found="h5_model", expected="keras",
                           fix="keras.models.load_model('m.h5')")
    assert isinstance(err, ValueError) and isinstance(err, ForgekitError)
    assert (err.path, err.found, err.expected) == ("m.h5", "h5_model", "keras")
    text = str(err)
    assert "\n" not in text  # lessons show the first line only: it must say everything
    for part in ("m.h5", "h5_model", "keras", "keras.models.load_model('m.h5')"):
        assert part in text
    assert issubclass(CorruptArtifactError, ValueError)
    assert issubclass(ArtifactNotFoundError, FileNotFoundError)


def test_every_kind_has_a_how_to_load_line():
    assert all(KINDS[k].call and KINDS[k].reload for k in KINDS if k != "unknown")
    assert all("{path!r}" in KINDS[k].call for k in KINDS if k != "unknown")


# --------------------------------------------------------------------------------------------
# artifacts written by the real APIs (not by forgekit.save)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Every artifact kind, written once with plain Keras 3, tf-keras (Keras 2) and TF calls."""
    from forgekit.quiet import quiet_tf

    quiet_tf()
    import keras
    import tensorflow as tf
    import tf_keras

    d = tmp_path_factory.mktemp("made")
    x = np.random.default_rng(0).random((8, 4), dtype=np.float32)
    y = np.random.default_rng(1).random((8, 2), dtype=np.float32)

    m = small_model(loss="mse")
    m.fit(x, y, epochs=1, verbose=0)
    m.save(d / "m.keras")
    m.save(d / "m.h5")
    m.save_weights(d / "m.weights.h5")
    m.export(d / "export", verbose=False)
    m.export(d / "base" / "1", verbose=False)
    m.export(d / "base" / "2", verbose=False)
    tf.train.Checkpoint(model=m, optimizer=m.optimizer).save(os.fspath(d / "ckpts" / "ckpt"))
    (d / "m.json").write_text(m.to_json())
    converter = tf.lite.TFLiteConverter.from_saved_model(os.fspath(d / "export"))
    (d / "m.tflite").write_bytes(converter.convert())

    fresh = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])  # never compiled
    fresh.save(d / "fresh.keras")

    k2 = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(3)])
    k2.compile(optimizer="adam", loss="mse")
    k2.fit(x, np.zeros((8, 3)), epochs=1, verbose=0)
    k2.save_weights(os.fspath(d / "k2_weights.h5"))
    k2.save(os.fspath(d / "k2_model.h5"))
    k2.save(os.fspath(d / "k2_savedmodel"))
    k2.save_weights(os.fspath(d / "k2_ckpt" / "weights"))  # no .h5: TF checkpoint format
    (d / "k2.json").write_text(k2.to_json())

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def double(self, v):
            return 2 * v

    module = Doubler()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, os.fspath(d / "tf_module"), signatures={"double": module.double})
    return d


@pytest.mark.parametrize(
    "name, kind, keras_version, has_optimizer",
    [
        ("m.keras", "keras", "3.", True),
        ("fresh.keras", "keras", "3.", False),
        ("m.h5", "h5_model", "3.", True),
        ("m.weights.h5", "weights_h5", None, True),
        ("export", "savedmodel", None, False),
        ("base", "serving_base", None, None),
        ("ckpts", "tf_checkpoint", None, True),
        ("ckpts/ckpt-1", "tf_checkpoint", None, True),
        ("m.json", "json_architecture", None, None),
        ("m.tflite", "tflite", None, None),
        ("k2_weights.h5", "weights_h5", "2.", False),
        ("k2_model.h5", "h5_model", "2.", True),
        ("k2_savedmodel", "savedmodel", None, True),
        ("k2_ckpt", "tf_checkpoint", None, True),
        ("k2.json", "json_architecture", "2.", None),
        ("tf_module", "savedmodel", None, False),
    ],
)
def test_detects_kind_written_by_real_apis(made, name, kind, keras_version, has_optimizer):
    info = detect_format(made / name)
    assert info.kind == kind, info
    assert info.mismatch is None
    assert info.has_optimizer is has_optimizer
    if keras_version is None:
        assert info.keras_version is None
    else:
        assert info.keras_version.startswith(keras_version)
    if kind == "tf_checkpoint":  # the prefix's own files: .index + .data-* shards
        files = list(info.load_path.parent.glob(f"{info.load_path.name}.*"))
    else:
        files = [f for f in (made / name).rglob("*") if f.is_file()] or [made / name]
    assert info.size_bytes == sum(f.stat().st_size for f in files) > 0
    assert info.how_to_load


def test_savedmodel_signatures_are_read_from_the_protobuf(made):
    assert detect_format(made / "export").signatures == ["serve", "serving_default"]
    assert detect_format(made / "tf_module").signatures == ["double"]
    assert detect_format(made / "k2_savedmodel").details["writer"].startswith("Keras 2")


def test_weights_writers_are_told_apart(made):
    assert detect_format(made / "m.weights.h5").details["writer"] == "Keras 3 save_weights"
    assert detect_format(made / "k2_weights.h5").details["writer"] == "Keras 2 save_weights"


def test_serving_base_lists_versions(made):
    info = detect_format(made / "base")
    assert info.details["versions"] == [1, 2]
    assert info.load_path == made / "base" / "2"


def test_checkpoint_files_point_back_to_the_prefix(made):
    for name in ("ckpt-1.index", "ckpt-1.data-00000-of-00001"):
        info = detect_format(made / "ckpts" / name)
        assert info.kind == "tf_checkpoint"
        assert info.load_path == made / "ckpts" / "ckpt-1"
        assert any("prefix" in w for w in info.warnings)


def test_saved_model_pb_alone_points_to_its_folder(made):
    info = detect_format(made / "export" / "saved_model.pb")
    assert info.kind == "savedmodel" and info.path == made / "export"
    assert info.mismatch is None and "folder" in info.warnings[0]


def test_detection_never_writes(made):
    before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in made.rglob("*")}
    for entry in made.iterdir():
        detect_format(entry)
    assert before == {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in made.rglob("*")}


# --------------------------------------------------------------------------------------------
# misnamed files: content wins, the extension only raises a mismatch warning


@pytest.mark.parametrize(
    "source, new_name, kind",
    [
        ("m.h5", "really_h5.keras", "h5_model"),
        ("m.keras", "really_zip.h5", "keras"),
        ("m.tflite", "really_tflite.json", "tflite"),
        ("m.json", "really_json.tflite", "json_architecture"),
        ("m.h5", "full_model.weights.h5", "h5_model"),
    ],
)
def test_misnamed_file_is_detected_by_content(made, tmp_path, source, new_name, kind):
    shutil.copy(made / source, tmp_path / new_name)
    info = detect_format(tmp_path / new_name)
    assert info.kind == kind
    assert info.mismatch and kind in info.mismatch and new_name in info.mismatch


def test_content_without_extension_is_still_detected(made, tmp_path):
    for source in ("m.keras", "m.h5", "m.weights.h5", "m.tflite", "m.json"):
        shutil.copy(made / source, tmp_path / "artifact")
        info = detect_format(tmp_path / "artifact")
        assert info.kind == detect_format(made / source).kind and info.mismatch is None


def test_keras3_weights_with_plain_h5_name_warn_about_the_reader(made, tmp_path):
    shutil.copy(made / "m.weights.h5", tmp_path / "w.h5")
    info = detect_format(tmp_path / "w.h5")
    assert info.kind == "weights_h5" and info.mismatch is None
    assert any(".weights.h5" in w for w in info.warnings)


# --------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("name", ["empty.keras", "empty.h5", "empty.tflite", "empty.json", "empty"])
def test_empty_file_is_corrupt(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(CorruptArtifactError) as info:
        detect_format(tmp_path / name)
    assert info.value.path == os.fspath(tmp_path / name)
    assert "empty" in str(info.value)


def test_empty_directory_is_corrupt(tmp_path):
    with pytest.raises(CorruptArtifactError, match="empty"):
        detect_format(tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(ArtifactNotFoundError) as info:
        detect_format(tmp_path / "nope.keras")
    assert isinstance(info.value, FileNotFoundError)
    assert "nope.keras" in str(info.value)


def test_symlink_loop_and_dangling_link_are_named_as_such(tmp_path):
    os.symlink(tmp_path / "b.keras", tmp_path / "a.keras")
    os.symlink(tmp_path / "a.keras", tmp_path / "b.keras")
    os.symlink(tmp_path / "gone.keras", tmp_path / "dangling.keras")
    for name, found in [("a.keras", "symlink loop"), ("dangling.keras", "dangling symlink"),
                        ("a.keras/inner.keras", "symlink loop")]:
        for call in (detect_format, forgekit.load):
            with pytest.raises(ArtifactNotFoundError) as info:
                call(tmp_path / name)
            error = info.value
            assert error.found == found and error.expected == "keras" and error.fix, name
            assert os.fspath(tmp_path / name) in str(error) and "nothing exists" not in str(error)


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "m.weights.h5", "k2_weights.h5", "m.json"])
@pytest.mark.parametrize("fraction", [0.0005, 0.1, 0.5, 0.99])
def test_truncated_files_are_corrupt(made, tmp_path, name, fraction):
    data = (made / name).read_bytes()
    cut = max(16, int(len(data) * fraction))  # keep the signature: shorter is tested below
    (tmp_path / name).write_bytes(data[:cut])
    with pytest.raises(CorruptArtifactError) as info:
        detect_format(tmp_path / name)
    assert info.value.path == os.fspath(tmp_path / name)


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "m.tflite"])
def test_cut_inside_the_signature_is_unknown_and_load_calls_it_corrupt(made, tmp_path, name):
    from forgekit.keras_io.loading import load

    (tmp_path / name).write_bytes((made / name).read_bytes()[:3])
    info = detect_format(tmp_path / name)
    assert info.kind == "unknown" and info.mismatch
    with pytest.raises(CorruptArtifactError, match="matches no model format"):
        load(tmp_path / name)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_saved_model_pb_is_corrupt(made, tmp_path, fraction):
    target = tmp_path / "export"
    shutil.copytree(made / "export", target)
    data = (target / "saved_model.pb").read_bytes()
    (target / "saved_model.pb").write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CorruptArtifactError, match="saved_model.pb"):
        detect_format(target)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.95])
def test_truncated_checkpoint_index_is_corrupt(made, tmp_path, fraction):
    target = tmp_path / "ckpts"
    shutil.copytree(made / "ckpts", target)
    index = target / "ckpt-1.index"
    index.write_bytes(index.read_bytes()[: int(index.stat().st_size * fraction)])
    with pytest.raises(CorruptArtifactError, match="index"):
        detect_format(target)


def test_checkpoint_without_data_shard_is_corrupt(made, tmp_path):
    target = tmp_path / "ckpts"
    shutil.copytree(made / "ckpts", target)
    (target / "ckpt-1.data-00000-of-00001").unlink()
    with pytest.raises(CorruptArtifactError, match="shard"):
        detect_format(target / "ckpt-1")


def test_savedmodel_without_variables_is_corrupt(made, tmp_path):
    target = tmp_path / "export"
    shutil.copytree(made / "export", target)
    shutil.rmtree(target / "variables")
    with pytest.raises(CorruptArtifactError, match="variables/") as info:
        detect_format(target)
    assert info.value.expected == "savedmodel"


def test_empty_saved_model_pb_is_corrupt(made, tmp_path):
    target = tmp_path / "export"
    shutil.copytree(made / "export", target)
    (target / "saved_model.pb").write_bytes(b"")
    with pytest.raises(CorruptArtifactError, match="empty"):
        detect_format(target)


@pytest.mark.parametrize("name", ["random.keras", "random.h5", "random.weights.h5",
                                  "random.tflite"])
def test_random_bytes_with_model_extension(tmp_path, name):
    (tmp_path / name).write_bytes(np.random.default_rng(7).bytes(4096))
    info = detect_format(tmp_path / name)
    assert info.kind == "unknown"
    assert info.mismatch and name in info.mismatch


def test_invalid_json_is_corrupt(tmp_path):
    (tmp_path / "arch.json").write_text('{"class_name": "Sequential", "config": {"lay')
    with pytest.raises(CorruptArtifactError, match="JSON"):
        detect_format(tmp_path / "arch.json")


def test_json_that_is_not_a_model_config_is_unknown(tmp_path):
    (tmp_path / "metadata.json").write_text(json.dumps({"keras_version": "3", "date": "x"}))
    assert detect_format(tmp_path / "metadata.json").kind == "unknown"


def test_zip_that_is_not_keras_is_unknown(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "data.zip", "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert detect_format(tmp_path / "data.zip").kind == "unknown"


def test_folder_without_artifacts_is_unknown(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert detect_format(tmp_path).kind == "unknown"


def test_extension_kinds():
    assert extension_kinds("a/b.weights.h5") == ("weights_h5",)
    assert extension_kinds("b.KERAS") == ("keras",)
    assert extension_kinds("ckpt-3.data-00000-of-00002") == ("tf_checkpoint",)
    assert extension_kinds("model") == ()


# --------------------------------------------------------------------------------------------
# Keras 2 (tf-keras) artifacts load through the loader that fits them


def test_keras2_artifacts_load_by_content(made):
    import keras

    from forgekit.keras_io.loading import load

    k2_sm = load(made / "k2_savedmodel", loader="tf_keras")
    assert type(k2_sm).__module__.startswith("tf_keras")
    x = np.ones((2, 4), np.float32)
    k3 = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    load(made / "k2_weights.h5", model=k3)  # Keras 3 reads Keras 2 weights (legacy reader)
    assert np.allclose(k3.predict(x, verbose=0), k2_sm.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(WrongFormatError, match="tf_keras"):
        load(made / "export", loader="tf_keras")  # a Keras 3 export has no Keras 2 metadata


def _architecture(source: str):
    import keras

    if source.startswith("k2_"):  # k2 weights: Dense(3) on 4 inputs
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    return small_model(compiled=False)


@pytest.mark.parametrize(("source", "name", "weights"), [
    ("m.keras", "m.keras", False),
    ("m.keras", "m.keras/", False),  # Keras tests the path text: a trailing slash defeats it
    ("m.keras", "m.keras", True),
    ("m.h5", "m.h5", False),
    ("m.h5", "m.weights.h5", False),  # load_model: any .h5 goes to the legacy reader
    ("m.h5", "m.weights.h5", True),  # load_weights: .weights.h5 goes to the Keras 3 reader
    ("m.h5", "m.keras", False),
    ("m.weights.h5", "m.weights.h5", True),
    ("m.weights.h5", "m.h5", True),
    ("k2_weights.h5", "m.h5", True),
    ("k2_weights.h5", "m.weights.h5", True),
    ("export", "export", False),
])
def test_keras_reads_name_predicts_the_real_keras_call(made, tmp_path, source, name, weights):
    """The naming policy against Keras itself: copy a real artifact under a name, make the
    plain call (load_model, or load_weights into the same architecture), compare."""
    import keras

    from forgekit.outcome import attempt

    info = detect_format(made / source)
    target = tmp_path / name.rstrip("/")
    (shutil.copytree if (made / source).is_dir() else shutil.copy)(made / source, target)
    typed = os.fspath(target) + ("/" if name.endswith("/") else "")
    if weights:
        outcome = attempt(_architecture(source).load_weights, typed)
    else:
        outcome = attempt(keras.models.load_model, typed, compile=False)
    predicted = keras_reads_name(typed, info.kind, info.keras2, weights=weights)
    assert predicted is outcome.ok, outcome
    suffix = keras_suffix(info.kind, info.keras2)
    assert not suffix or keras_reads_name(f"x{suffix}", info.kind, info.keras2, weights=weights)


def test_detect_format_reads_every_kind_without_importing_tensorflow(made):
    """detect_format stays cheap: a SavedModel's protobuf is read from the wire format."""
    import subprocess
    import sys

    paths = [os.fspath(made / name) for name in
             ("m.keras", "m.h5", "m.weights.h5", "export", "base", "ckpts", "m.json", "m.tflite")]
    code = ("import sys, forgekit\n"
            f"kinds = [forgekit.detect_format(p).kind for p in {paths!r}]\n"
            "sigs = forgekit.detect_format(sys.argv[1]).signatures\n"
            "print(kinds, sigs, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, paths[3]], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "['keras', 'h5_model', 'weights_h5', 'savedmodel', 'serving_base', 'tf_checkpoint', "
        "'json_architecture', 'tflite'] ['serve', 'serving_default'] False")


def test_damaged_metadata_gives_forgekit_errors_not_bare_tracebacks(tmp_path):
    import zipfile

    for name, config, metadata in [("list_config.keras", "[1]", "{}"),
                                   ("list_meta.keras", "{}", "[1]")]:
        with zipfile.ZipFile(tmp_path / name, "w") as zf:
            zf.writestr("config.json", config)
            zf.writestr("metadata.json", metadata)
            zf.writestr("model.weights.h5", b"")
        with pytest.raises(CorruptArtifactError, match="not a JSON object"):
            detect_format(tmp_path / name)
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "checkpoint").write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(CorruptArtifactError, match="model_checkpoint_path"):
        detect_format(tmp_path / "ck")
    (tmp_path / "sm" / "saved_model.pb").mkdir(parents=True)
    with pytest.raises(CorruptArtifactError, match="saved_model.pb is not a file"):
        detect_format(tmp_path / "sm")
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"class_name": "Sequential", "config": {"layers": 3}}))
    assert detect_format(odd).details["layers"] == 0


def test_how_to_load_never_suggests_a_call_the_file_name_defeats(made, tmp_path):
    misnamed = tmp_path / "model.keras"
    shutil.copy(made / "m.h5", misnamed)  # Keras would open it with the .keras zip reader
    info = detect_format(misnamed)
    assert info.how_to_load == f"forgekit.load({str(misnamed)!r})  # or rename it to *.h5"
    with pytest.raises(WrongFormatError) as error:
        forgekit.load(misnamed, expect="keras")
    assert error.value.fix == info.how_to_load
    assert detect_format(made / "m.h5").how_to_load.startswith("keras.models.load_model(")


def test_how_to_load_an_h5_with_a_short_loss_alias_is_a_call_that_works(made):
    """An .h5 compiled with loss="mse" does not reload with plain load_model in Keras 3 (it
    looks the alias up among keras.metrics); the advice is load_model(..., compile=False)."""
    import keras

    from forgekit.outcome import attempt

    info = detect_format(made / "m.h5")
    assert info.details["stored_losses"] == ["mse"]
    assert "compile=False" in info.how_to_load and "'mse'" in info.how_to_load
    plain = attempt(keras.models.load_model, made / "m.h5")
    advised = attempt(keras.models.load_model, made / "m.h5", compile=False)
    # fails when a Keras release reads the alias again: then drop it from the list
    assert not plain.ok and "keras.metrics.mse" in str(plain.exception), plain
    assert advised.ok and not advised.value.compiled, advised


@pytest.mark.parametrize("loss", sorted(KERAS3_UNREADABLE_LOSSES - {"mse"}))
def test_every_listed_loss_alias_still_fails_to_reload(tmp_path, loss):
    """The list forgekit advises compile=False for, against the installed Keras: an alias
    Keras starts reading again fails here, so the advice never outlives the bug."""
    import keras

    from forgekit.outcome import attempt

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss=loss)
    model.save(tmp_path / "m.h5")
    assert detect_format(tmp_path / "m.h5").details["stored_losses"] == [loss]
    assert not attempt(keras.models.load_model, tmp_path / "m.h5").ok


def test_a_full_loss_name_keeps_the_plain_call(tmp_path):
    import keras


    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mean_squared_error")
    model.save(tmp_path / "m.h5")
    info = detect_format(tmp_path / "m.h5")
    assert info.how_to_load == f"keras.models.load_model({str(tmp_path / 'm.h5')!r})"
    keras.models.load_model(info.load_path)  # and it really loads


def test_detection_publish_and_the_server_read_version_folders_by_one_rule(tmp_path):
    """ASCII digits whose value fits an int64 (TF Serving's safe_strto64): a larger number, a
    superscript digit or a name with a letter is no version to anyone in forgekit."""
    from forgekit.formats.serving_base import version_numbers
    from forgekit.serving.versions import scan_versions

    top = (1 << 63) - 1
    for name in ("1", "0002", str(top), str(top + 1), "²", "3a"):
        (tmp_path / name).mkdir()
    assert version_numbers(tmp_path) == [1, 2, top]
    assert sorted(scan_versions(tmp_path)) == [1, 2, top]
