"""The C and Java loaders: built from the shipped sources, run on a fresh export, compared with
Python. On a machine without gcc or a JDK these tests skip, except under CI=true, where a
missing toolchain fails them: CI must prove both loaders work. A toolchain that is present but
produces a failing program always fails."""

from __future__ import annotations

import os
import tomllib
from fnmatch import fnmatch

import numpy as np
import pytest

from forgekit import crosslang
from forgekit.crosslang import builder as build_module
from forgekit.errors import WrongFormatError
from tests.conftest import ROOT

# The loaders call the same TensorFlow kernels from the same libtensorflow_cc.so.2 as Python's
# signature call, and the batch travels as text with 9 significant digits (exact for float32),
# so any difference is one of kernel scheduling only; 1e-5 is far above float32 rounding of
# these logits (|values| < 100, eps 1.2e-7) and far below any real disagreement.
TOLERANCE = 1e-5


def _require(language: str) -> crosslang.Toolchain:
    tc = crosslang.find_toolchain()
    missing = tc.missing_c + (tc.missing_java if language == "java" else [])
    if missing:
        message = f"{language} toolchain missing: {'; '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: the cross-language loaders must be tested)")
        pytest.skip(message)
    return tc


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A two-output model with a named input, exported fresh, and a batch to feed it."""
    import keras

    folder = tmp_path_factory.mktemp("crosslang")
    keras.utils.set_random_seed(0)
    features = keras.Input((6,), name="features")
    hidden = keras.layers.Dense(16, activation="relu")(features)
    model = keras.Model(features, {"logits": keras.layers.Dense(3, name="logits")(hidden),
                                   "score": keras.layers.Dense(1, name="score")(hidden)})
    model.export(folder / "export", verbose=False)
    model.save(folder / "model.keras")
    x = np.random.default_rng(1).normal(size=(5, 6)).astype("float32")
    return folder, x


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("build-cache")


def test_binder_apt_lists_a_c_compiler_and_a_headless_jdk():
    packages = (ROOT / "binder" / "apt.txt").read_text().split()
    assert "gcc" in packages and "libc6-dev" in packages
    assert any(fnmatch(p, "openjdk-*-jdk-headless") for p in packages), packages


def test_native_sources_ship_as_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["forgekit.crosslang"]
    shipped = sorted(p.name for p in crosslang.native_dir().iterdir() if p.is_file())
    needed = {name for names in build_module.SOURCES.values() for name in names}
    assert needed <= set(shipped)
    for name in shipped:
        assert any(fnmatch(f"native/{name}", pat) for pat in patterns), f"{name} not shipped"


def test_batch_text_round_trips_every_float32_exactly(tmp_path):
    x = np.random.default_rng(0).normal(scale=1e3, size=(4, 7)).astype("float32")
    x[0, 0], x[1, 1] = np.float32(1e-38), np.nextafter(np.float32(1), np.float32(2))
    text = crosslang.write_batch(x, tmp_path / "b.txt").read_text()
    back = crosslang.parse_outputs("# t:0 shape " + text)
    assert back["t:0"].dtype == np.float32 and np.array_equal(back["t:0"], x)


def test_signature_names_come_from_the_export(export):
    folder, _ = export
    sig = crosslang.signature_tensors(folder / "export")
    assert list(sig.inputs) == ["features"]
    assert sig.input_name == "serving_default_features:0"
    assert sorted(sig.outputs) == ["logits", "score"]
    assert all(":" in name for name in sig.output_names)
    assert sig.key_of(sig.outputs["score"].name) == "score"


def test_signature_of_a_keras_file_is_refused_with_its_kind(export):
    folder, _ = export
    with pytest.raises(WrongFormatError) as err:
        crosslang.signature_tensors(folder / "model.keras")
    assert err.value.found == "keras" and err.value.expected == "savedmodel"
    assert "model.keras" in str(err.value) and "model.export" in str(err.value)
    with pytest.raises(WrongFormatError, match="no signature 'nope'"):
        crosslang.signature_tensors(folder / "export", signature="nope")


def test_missing_toolchain_is_named_with_the_fix(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    tc = crosslang.find_toolchain()
    assert not tc.c_ok and not tc.java_ok
    with pytest.raises(crosslang.ToolchainMissingError) as err:
        tc.require("java")
    assert "gcc" in str(err.value) and "javac" in str(err.value)
    assert "openjdk-17-jdk-headless" in err.value.fix


def test_c_loader_answers_like_python(export, cache):
    _require("c")
    folder, x = export
    built = crosslang.build("c", cache)
    sig = crosslang.signature_tensors(folder / "export")
    run = crosslang.run_c(built, folder / "export", x, repeat=3)
    python = crosslang.signature_call(folder / "export", x)
    assert set(run.outputs) == set(sig.output_names)
    for key, info in sig.outputs.items():
        assert run.outputs[info.name].shape == python[key].shape
        assert np.max(np.abs(run.outputs[info.name] - python[key])) <= TOLERANCE, key
    assert run.peak_rss_mb > 10 and run.timing["median_run_ms"] > 0


def test_java_loader_answers_like_python(export, cache):
    _require("java")
    folder, x = export
    built = crosslang.build("java", cache)
    sig = crosslang.signature_tensors(folder / "export")
    run = crosslang.run_java(built, folder / "export", x)
    python = crosslang.signature_call(folder / "export", x)
    for key, info in sig.outputs.items():
        assert np.max(np.abs(run.outputs[info.name] - python[key])) <= TOLERANCE, key
    assert run.peak_rss_mb > 10


def test_build_is_cached_by_content(export, cache, tmp_path, monkeypatch):
    tc = _require("c")
    first = crosslang.build("c", cache)
    again = crosslang.build("c", cache)
    assert again.cached and again.folder == first.folder and again.seconds == first.seconds
    assert not list(cache.glob(".c-*")), "no temporary build folder left behind"
    # an edited source is a new key: the old build is not reused for it
    edited = tmp_path / "native"
    edited.mkdir()
    for src in crosslang.native_dir().iterdir():
        (edited / src.name).write_bytes(src.read_bytes())
    (edited / "tf_loader.c").write_text((edited / "tf_loader.c").read_text() + "\n/* edit */\n")
    monkeypatch.setattr(build_module, "native_dir", lambda: edited)
    assert build_module._key("c", tc, edited) != first.key


def test_loader_pointed_at_keras_or_h5_fails_with_the_reason(export, cache):
    _require("c")
    import keras

    folder, x = export
    built = crosslang.build("c", cache)
    sig = crosslang.signature_tensors(folder / "export")
    model = keras.models.load_model(folder / "model.keras")
    model.save(folder / "model.h5")
    for name, kind in (("model.keras", "keras"), ("model.h5", "h5_model")):
        with pytest.raises(crosslang.LoaderError) as err:
            crosslang.run_c(built, folder / name, x, input_name=sig.input_name,
                            output_names=sig.output_names)
        text = str(err.value)
        assert err.value.found == kind and err.value.expected == "savedmodel"
        assert "TF_LoadSessionFromSavedModel" in text and "SavedModel" in text and name in text


def test_a_wrong_tensor_name_is_reported_not_crashed(export, cache):
    _require("c")
    folder, x = export
    built = crosslang.build("c", cache)
    run = crosslang.run_c(built, folder / "export", x, input_name="features:0", check=False)
    assert run.returncode == 1
    assert "no operation named 'features'" in run.error
