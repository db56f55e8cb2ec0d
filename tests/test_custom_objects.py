"""Custom layers, losses and subclassed models across processes.

Files are saved by plain Keras in this process; every failure and every fix runs in a real fresh
subprocess that has not imported the defining code (forgekit.measure.fresh), and is asserted there.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import forgekit
from forgekit.keras_io.custom_objects import MissingCustomObjectsError, UnsafeLambdaError
from forgekit.measure.fresh import load_snippet, run_fresh_many

TINY_NAMES = ["forgekit>TinyRegressor", "forgekit>Scale", "forgekit>smooth_l1"]


def named_function(t):
    return t * 3.0


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Models with custom objects, saved by plain Keras calls; inputs and reference outputs."""
    from forgekit.quiet import quiet_tf

    quiet_tf()
    import keras

    from forgekit.zoo import registered, unregistered, variants

    d = tmp_path_factory.mktemp("custom")
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    np.save(d / "x.npy", x)

    def keep(model, name, fit=True):
        if fit:
            model.fit(x, y, epochs=1, verbose=0)
        model.save(d / f"{name}.keras")
        np.save(d / f"{name}.npy", model.predict(x, verbose=0))
        return model

    def scaled(layer, loss="mean_squared_error"):
        inputs = keras.Input((4,))
        model = keras.Model(inputs, layer(keras.layers.Dense(1)(inputs)))
        model.compile(optimizer="adam", loss=loss)
        return model

    tiny = registered.TinyRegressor(units=8, head=registered.Scale(2.5))
    tiny.compile(optimizer="adam", loss=registered.smooth_l1)
    keep(tiny, "tiny")
    tiny.export(d / "tiny_export", verbose=False)
    tiny.save(d / "tiny.h5")
    keep(scaled(unregistered.Scale(3.0), unregistered.smooth_l1), "plain")
    keep(scaled(registered.Scale(3.0)), "scaled")
    keep(scaled(variants.AutoScale(3.0)), "auto")
    keep(scaled(variants.ForgetfulScale(3.0)), "forgetful")
    builtin = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(keras.ops.relu),
                                keras.layers.Dense(1)])
    builtin.compile(optimizer="adam", loss="mse", metrics=["mae"])
    keep(builtin, "builtin")
    keep(keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2.0, name="double"),
                           keras.layers.Dense(1)]), "bytecode", fit=False)
    keep(keras.Sequential([keras.Input((4,)), keras.layers.Lambda(named_function),
                           keras.layers.Dense(1)]), "named_fn", fit=False)
    return d


# --------------------------------------------------------------------------------------------
# reading the config: exact names, no imports


def test_doctor_lists_exactly_the_custom_names(saved):
    report = forgekit.doctor(saved / "tiny.keras")
    assert [obj.name for obj in report.custom_objects] == TINY_NAMES
    assert {obj.name: obj.module for obj in report.custom_objects}["forgekit>Scale"] == \
        "forgekit.zoo.registered"
    assert report.missing_objects == []  # this process imported forgekit.zoo.registered
    info = forgekit.detect_format(saved / "tiny.keras")
    assert [o["name"] for o in info.details["custom_objects"]] == TINY_NAMES
    assert any("custom objects" in w for w in info.warnings)


@pytest.mark.parametrize("name, expected", [
    ("plain", ["Scale", "smooth_l1"]),
    ("scaled", ["forgekit>Scale"]),
    ("builtin", []),  # Lambda(keras.ops.relu) and "mae" are Keras built-ins
    ("named_fn", ["named_function"]),
    ("bytecode", []),
])
def test_custom_names_of_plain_keras_files(saved, name, expected):
    assert [obj.name for obj in forgekit.doctor(saved / f"{name}.keras").custom_objects] == \
        expected


def test_legacy_h5_records_plain_class_names(saved):
    # Keras 3's H5 writer stores the subclassed model's bare class name, the layer and loss
    # by their registered names
    assert [o.name for o in forgekit.doctor(saved / "tiny.h5").custom_objects] == \
        ["TinyRegressor", "forgekit>Scale", "forgekit>smooth_l1"]


def test_scan_imports_neither_tensorflow_nor_the_model_code(saved):
    code = (
        "import sys\nfrom forgekit.keras_io.custom_objects import scan_file\nimport forgekit\n"
        f"names = scan_file({str(saved / 'tiny.keras')!r}).names\n"
        f"info = forgekit.detect_format({str(saved / 'tiny.h5')!r})\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'forgekit.zoo.registered') "
        "if m in sys.modules]\n"
        "print(names, len(info.details['custom_objects']), heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{TINY_NAMES} 2 []"


# --------------------------------------------------------------------------------------------
# Lambda layers and safe_mode


def test_lambda_bytecode_is_flagged_before_loading_and_refused(saved):
    import keras

    path = saved / "bytecode.keras"
    info = forgekit.detect_format(path)
    assert info.details["lambda_layers"] == ["Lambda layer 'double' (Python lambda stored as "
                                             "bytecode)"]
    assert any("safe_mode" in w for w in info.warnings)
    with pytest.raises(ValueError, match="safe_mode"):
        keras.models.load_model(path)
    with pytest.raises(UnsafeLambdaError) as refused:
        forgekit.load(path)  # forgekit never switches safe_mode off by itself
    assert "safe_mode=False" in refused.value.fix and "double" in str(refused.value)
    assert not forgekit.doctor(path).ok
    loaded = forgekit.load(path, safe_mode=False)  # an explicit opt-in is passed through
    assert loaded.count_params() == 5


def test_save_without_config_for_an_array_argument_fails_at_save_time(tmp_path):
    import keras

    from forgekit.zoo.variants import ArrayScale

    inputs = keras.Input((4,))
    model = keras.Model(inputs, ArrayScale(np.full(1, 3.0, "float32"))(inputs))
    with pytest.raises(NotImplementedError, match="ArrayScale"):
        model.save(tmp_path / "array.keras")


# --------------------------------------------------------------------------------------------
# the restart: every failure and every fix in a fresh process


@pytest.fixture(scope="module")
def restart(saved):
    d = saved

    def fresh(name, setup="import keras", load="keras.models.load_model(path)", ref=None, **kw):
        path = d / name
        reference = ref or d / f"{name.split('.')[0]}.npy"
        return load_snippet(load, setup=f"path = {str(path)!r}\n{setup}", inputs=d / "x.npy",
                            reference=reference, **kw)

    def forgekit_load(name, setup="import forgekit", **kwargs):
        return f"{setup}\nforgekit.load({str(d / name)!r}{kwargs.get('extra', '')})"

    plain = "{'Scale': Scale, 'smooth_l1': smooth_l1}"
    plain_setup = "import keras\nfrom forgekit.zoo.unregistered import Scale, smooth_l1"
    jobs = {
        "nothing imported": {
            "load": fresh("tiny.keras"),
            "forgekit.load": forgekit_load("tiny.keras"),
            "doctor": f"import forgekit\nprint(forgekit.doctor({str(d / 'tiny.keras')!r}))",
            "serving route": fresh("tiny_export", "import tensorflow as tf",
                                   "tf.saved_model.load(path)", d / "tiny.npy",
                                   predict="model.serve(x).numpy()"),
        },
        "registered": {
            "import fix": fresh("tiny.keras", "import keras, forgekit.zoo.registered"),
            "legacy h5": fresh("tiny.h5", "import keras, forgekit.zoo.registered",
                               ref=d / "tiny.npy"),
            "legacy h5 forgekit.load": forgekit_load("tiny.h5"),
        },
        "unregistered": {
            "import only": fresh("plain.keras", plain_setup),
            "unregistered forgekit.load": forgekit_load("plain.keras"),
            "custom_objects": fresh("plain.keras", plain_setup,
                                    f"keras.models.load_model(path, custom_objects={plain})"),
        },
        "scope": fresh("plain.keras", plain_setup + "\nwith keras.saving.custom_object_scope("
                       f"{plain}):\n    m = keras.models.load_model(path)", "m"),
        "renamed": {
            "renamed": fresh("scaled.keras", "import keras, forgekit.zoo.renamed"),
            "renamed forgekit.load": forgekit_load("scaled.keras"),
            "renamed mapped": fresh("scaled.keras", "import keras\nfrom forgekit.zoo.renamed "
                                    "import Rescale", "keras.models.load_model(path, "
                                    "custom_objects={'forgekit>Scale': Rescale})"),
        },
        "moved": fresh("scaled.keras", "import keras, forgekit.zoo.moved"),
        "variants": {
            "no get_config": fresh("auto.keras", "import keras, forgekit.zoo.variants"),
            "forgetful get_config": fresh("forgetful.keras", "import keras, forgekit.zoo.variants"),
        },
    }
    return run_fresh_many(jobs, workers=2)


def _loads_equal(outcome):
    assert outcome.ok, str(outcome)
    assert outcome.value == 0.0, f"predictions differ by {outcome.value}"


def test_after_restart_the_file_does_not_load(restart):
    failed = restart["load"]
    assert not failed.ok and failed.error_type == "TypeError"
    assert "Could not locate class 'TinyRegressor'" in failed.message


def test_forgekit_names_the_missing_objects_and_the_fix_in_the_fresh_process(restart):
    diagnosed = restart["forgekit.load"]
    assert diagnosed.error_type == MissingCustomObjectsError.__name__
    for name in TINY_NAMES:
        assert name in diagnosed.message
    assert "Fix: import forgekit.zoo.registered" in diagnosed.message
    report = restart["doctor"].stdout
    for name in TINY_NAMES:
        assert re.search(rf"{re.escape(name)} \([^)]*\) - not registered in this process", report)
    assert "load it with       import forgekit.zoo.registered; keras.models.load_model(" in report


def test_importing_the_registering_module_fixes_it(restart):
    _loads_equal(restart["import fix"])


def test_the_serving_route_needs_no_python_class(restart):
    _loads_equal(restart["serving route"])


def test_subclassed_model_in_legacy_h5_does_not_reload_even_when_registered(restart):
    assert restart["legacy h5"].error_type == "ValueError"
    assert "Unknown layer: 'TinyRegressor'" in restart["legacy h5"].message
    explained = restart["legacy h5 forgekit.load"]
    assert explained.error_type == "WrongFormatError" and "subclassed" in explained.message


def test_unregistered_classes_need_custom_objects_or_a_scope(restart):
    failed = restart["import only"]
    assert failed.error_type == "TypeError"
    assert "Scale" not in failed.message  # Keras's message does not name the culprit...
    named = restart["unregistered forgekit.load"]  # ...forgekit's does
    assert named.error_type == MissingCustomObjectsError.__name__
    assert "registered: Scale, smooth_l1" in named.message
    assert "from forgekit.zoo.unregistered import Scale" in named.message
    assert "custom_objects=" in named.message
    _loads_equal(restart["custom_objects"])
    _loads_equal(restart["scope"])


def test_a_rename_breaks_old_files_and_mapping_the_saved_name_fixes_it(restart):
    assert restart["renamed"].error_type == "TypeError"
    assert "forgekit>Scale" in restart["renamed forgekit.load"].message
    _loads_equal(restart["renamed mapped"])


def test_a_move_that_keeps_the_registered_name_is_harmless(restart):
    _loads_equal(restart["moved"])


def test_get_config_missing_is_recorded_automatically_but_incomplete_is_silent(restart):
    _loads_equal(restart["no get_config"])
    silent = restart["forgetful get_config"]
    assert silent.ok, str(silent)  # it loads...
    assert silent.value > 0.1  # ...and predicts something else: factor fell back to 1.0


def test_missing_objects_fix_for_a_json_architecture_uses_model_from_json(tmp_path):
    from forgekit.keras_io.custom_objects import explain_load_error

    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Thing", "module": "nowhere.layers", "registered_name": "nowhere>Thing",
         "config": {}}]}}))
    error = explain_load_error(path, TypeError("Could not locate class 'Thing'"))
    assert isinstance(error, MissingCustomObjectsError) and error.found == "json_architecture"
    assert "model_from_json(open(path).read(), custom_objects={'nowhere>Thing'" in error.fix
