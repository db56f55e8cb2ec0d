"""The failure lab: every loader on every artifact kind and path trap, with real Keras/TF calls.

Artifacts are written with plain Keras/TF calls (not forgekit.save). For every cell the real call
is made and compared with forgekit's prediction from the files alone; for every row the call
forgekit suggests is executed and must load the artifact.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from forgekit.diagnose.failures import LOADERS, loaders_table, run_matrix

KINDS = {  # label -> kind by content (what doctor must say)
    ".keras": "keras", "SavedModel": "savedmodel", "legacy .h5": "h5_model",
    ".weights.h5": "weights_h5", "checkpoint": "tf_checkpoint", "TFLite": "tflite",
    "JSON": "json_architecture",
    "model.keras/": "keras", "export/": "savedmodel", "HDF5 named .keras": "h5_model",
    "serving base": "serving_base", "export/variables": "tf_checkpoint",
    "ckpt folder": "tf_checkpoint",
}


def _build(name: str = "model"):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2)], name=name)
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The lesson's artifacts and traps, written once with plain Keras / TF calls."""
    from forgekit.quiet import quiet_tf

    quiet_tf()
    import tensorflow as tf

    d = tmp_path_factory.mktemp("lab")
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    model = _build()
    model.fit(x, x[:, :2], epochs=1, verbose=0)
    model.save(d / "model.keras")
    model.export(d / "export", verbose=False)
    model.save_weights(d / "model.weights.h5")
    ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(str(d / "ckpt" / "ckpt"))
    (d / "model.json").write_text(model.to_json())
    converter = tf.lite.TFLiteConverter.from_saved_model(str(d / "export"))
    (d / "model.tflite").write_bytes(converter.convert())
    model.save(d / "model.h5")  # compiled with loss="mse", the common case
    shutil.copy(d / "model.h5", d / "model_h5.keras")
    model.export(d / "serving" / "1", verbose=False)
    paths = {
        ".keras": str(d / "model.keras"), "SavedModel": str(d / "export"),
        "legacy .h5": str(d / "model.h5"), ".weights.h5": str(d / "model.weights.h5"),
        "checkpoint": ckpt, "TFLite": str(d / "model.tflite"), "JSON": str(d / "model.json"),
        "model.keras/": str(d / "model.keras") + "/", "export/": str(d / "export") + "/",
        "HDF5 named .keras": str(d / "model_h5.keras"), "serving base": str(d / "serving"),
        "export/variables": str(d / "export" / "variables"), "ckpt folder": str(d / "ckpt"),
    }
    return {"dir": d, "x": x, "reference": model.predict(x, verbose=0), "paths": paths,
            "matrix": run_matrix(paths, _build)}


def test_every_cell_is_a_real_call_and_forgekit_predicted_it(lab):
    matrix = lab["matrix"]
    assert [row.label for row in matrix.rows] == list(KINDS)
    assert [ld.key for ld in matrix.loaders] == list(LOADERS)
    assert matrix.surprises == [], f"forgekit mispredicted: {matrix.surprises}"
    for row in matrix.rows:
        for cell in row.cells:
            assert cell.outcome.ok is not None
            if not cell.outcome.ok:  # a real exception, kept with its type and message
                assert cell.outcome.error_type and cell.outcome.message


@pytest.mark.parametrize("label", list(KINDS))
def test_diagnosis_names_the_kind_by_content(lab, label):
    assert lab["matrix"].row(label).diagnosis.kind == KINDS[label]


def test_each_artifact_kind_loads_with_its_usual_loader(lab):
    usual = {".keras": "load_model", "SavedModel": "saved_model_load", ".weights.h5":
             "load_weights", "checkpoint": "checkpoint_restore", "TFLite": "tflite",
             "JSON": "model_from_json"}
    for label, key in usual.items():
        row = lab["matrix"].row(label)
        assert row.diagnosis.ok, str(row.diagnosis)
        assert next(c for c in row.cells if c.loader.key == key).outcome.ok


def test_the_traps_fail_where_the_lesson_says(lab):
    m = lab["matrix"]

    def works(label):
        return {c.loader.key for c in m.row(label).cells if c.outcome.ok}

    assert works("model.keras/") == set()  # Keras tests the path text
    assert works("export/") == {"saved_model_load", "tfsm_layer"}  # harmless on a folder
    assert works("HDF5 named .keras") == set()  # Keras 3 picks its reader by extension
    assert works("serving base") == set() and works("export/variables") == set()
    assert works("ckpt folder") == set()
    # the SavedModel / H5 confusion of the original article, both ways
    assert "load_model" not in works("SavedModel")
    assert not works("legacy .h5") & {"saved_model_load", "tfsm_layer"}


def _run_fix(fix: str, namespace: dict):
    """exec a suggested fix; return the value of its last expression (None for a statement)."""
    tree = ast.parse(fix)
    last = tree.body[-1]
    if isinstance(last, ast.Expr):
        exec(compile(ast.Module(tree.body[:-1], []), "<fix>", "exec"), namespace)
        return eval(compile(ast.Expression(last.value), "<fix>", "eval"), namespace)
    exec(compile(tree, "<fix>", "exec"), namespace)
    return None


@pytest.mark.parametrize("label", list(KINDS))
def test_the_suggested_fix_really_loads(lab, label):
    import keras
    import tensorflow as tf

    import forgekit

    d = lab["matrix"].row(label).diagnosis
    assert d.fix, f"no fix for {label}"
    model = _build()
    namespace = {"keras": keras, "tf": tf, "forgekit": forgekit, "model": model}
    before = _snapshot(lab["dir"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = _run_fix(d.fix, namespace)
    assert _snapshot(lab["dir"]) == before, "a fix must not change the artifacts"
    x, reference = lab["x"], lab["reference"]
    if d.kind == "tflite":
        runner = value.get_signature_runner()
        got = next(iter(runner(**{runner.get_input_details().popitem()[0]: x[:1]}).values()))
        np.testing.assert_allclose(got, reference[:1], rtol=1e-5, atol=1e-5)
        return
    if d.kind == "json_architecture":
        assert isinstance(value, keras.Model) and value.count_params() == model.count_params()
        return
    if isinstance(value, keras.Model):
        predicted = value.predict(x, verbose=0)
    elif hasattr(value, "serve"):  # tf.saved_model.load
        predicted = value.serve(x).numpy()
    else:  # filled `model` in place (load_weights, checkpoint restore)
        predicted = model.predict(x, verbose=0)
    np.testing.assert_array_equal(predicted, reference)


def _snapshot(folder):
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in folder.rglob("*") if p.is_file())


def test_restore_is_lazy_and_the_assertion_finds_out(lab):
    import tensorflow as tf

    status = tf.train.Checkpoint(model=_build()).restore(lab["paths"]["SavedModel"])
    with pytest.raises(AssertionError):
        status.assert_existing_objects_matched()


def test_matrix_renders_as_text_and_html(lab):
    m = lab["matrix"]
    text, html = str(m), m._repr_html_()
    for loader in LOADERS.values():
        assert loader.name in text and loader.name in html
    assert "✓ works" in text and "✗ ValueError" in text
    details = m.details("legacy .h5")
    assert "compile=False" in str(details._repr_html_())
    assert "tf.saved_model.load" in str(m.fixes()._repr_html_())
    assert len(loaders_table().rows) == len(LOADERS)


def test_project_path_survives_a_moved_project(tmp_path, monkeypatch):
    """A script using project_path(start=__file__) finds its own files wherever it is copied;
    one with a baked-in absolute path reads the original folder, then fails once it is gone."""
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (project / "models" / "id.txt").write_text("original")
    baked = project / "models" / "id.txt"
    (project / "hard.py").write_text(f"print(open({str(baked)!r}).read())\n")
    (project / "portable.py").write_text(
        "from forgekit.paths import project_path\n"
        "print(open(project_path('models', 'id.txt', start=__file__)).read())\n")
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(project, copy)
    (copy / "models" / "id.txt").write_text("copy")
    env = {**os.environ, "FORGEKIT_ROOT": ""}

    def run(script):
        return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=60)

    assert run(copy / "hard.py").stdout.strip() == "original"  # silently the wrong file
    assert run(copy / "portable.py").stdout.strip() == "copy"
    shutil.rmtree(project)
    gone = run(copy / "hard.py")
    assert gone.returncode != 0 and "FileNotFoundError" in gone.stderr
    assert run(copy / "portable.py").stdout.strip() == "copy"
    monkeypatch.setenv("FORGEKIT_ROOT", str(copy))  # the variable wins over the marker search
    from forgekit.paths import project_path

    assert project_path("models", "id.txt") == copy.resolve() / "models" / "id.txt"
