"""Lesson 09's checker: a names_for that reads saved_model.pb passes (and drives the C loader),
each typical confusion fails with its reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forgekit import crosslang
from forgekit.exercises.cross_language import check_names_for, judge, make_exports
from tests.test_crosslang import _require


def _signature(export_dir):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel.FromString((Path(export_dir) / "saved_model.pb").read_bytes())
    (graph,) = [g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags]
    return graph.signature_def["serving_default"]


def names_for(export_dir, key):  # the lesson's solution, plain protobuf
    signature = _signature(export_dir)
    (feed,) = signature.inputs.values()
    return feed.name, signature.outputs[key].name


def placeholder(export_dir, key):
    ...


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return make_exports(tmp_path_factory.mktemp("exports"))


def test_exports_differ_in_their_input_names(exports):
    unnamed, named = exports
    assert "keras_tensor" in unnamed.input_name and named.input_name == "serving_default_sensor:0"
    assert unnamed.outputs["logits"] != unnamed.outputs["score"]


def test_right_function_passes_without_a_build(exports):
    assert judge(names_for, exports).passed
    assert not judge(placeholder, exports).passed and "No answer" in judge(placeholder, exports).message


def _key(export_dir, key):  # the signature keys, not tensor names
    return next(iter(_signature(export_dir).inputs)), names_for(export_dir, key)[1]


def _op(export_dir, key):  # ':0' dropped
    name, out = names_for(export_dir, key)
    return name.rpartition(":")[0], out


def _function_graph(export_dir, key):  # names inside the loaded concrete function
    import tensorflow as tf

    fn = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    return fn.inputs[0].name, names_for(export_dir, key)[1]


def _output_key(export_dir, key):
    return names_for(export_dir, key)[0], key


def _ignores_key(export_dir, key):
    return names_for(export_dir, "logits")


def _forgekit(export_dir, key):  # the helper that does the taught step
    sig = crosslang.signature_tensors(export_dir)
    return sig.input_name, sig.outputs[key].name


def _tensor_info(export_dir, key):  # the whole TensorInfo entry, not its .name
    signature = _signature(export_dir)
    (feed,) = signature.inputs.values()
    return feed, signature.outputs[key].name


def _bytes(export_dir, key):
    name, out = names_for(export_dir, key)
    return name.encode(), out.encode()


def _output_key_in_inputs(export_dir, key):  # the output key looked up among the inputs
    signature = _signature(export_dir)
    return signature.inputs[key].name, signature.outputs[key].name


def _output_key_in_a_dict(export_dir, key):  # the same, through a dict: KeyError
    signature = _signature(export_dir)
    return dict(signature.inputs)[key].name, signature.outputs[key].name


def _raises(export_dir, key):
    raise FileNotFoundError("no such file")


@pytest.mark.parametrize("function, why", [
    (_key, "input *key*"),
    (_op, "is the operation"),
    (_function_graph, "concrete function's own graph"),
    (_output_key, "output *key*"),
    (_ignores_key, "'logits' output, not 'score'"),
    (_raises, "raised FileNotFoundError"),
    (_output_key_in_inputs, "signature_def.inputs[key] with an output key gives ''"),
    (_output_key_in_a_dict, "is an output key: look it up in signature_def.outputs"),
    (_tensor_info, "a TensorInfo message"),
    (_bytes, "not bytes"),
    (_forgekit, "forgekit's crosslang reader"),
    (lambda d, k: "serving_default_keras_tensor:0", "should return a pair"),
    (lambda d, k: ("serving_default_keras_tensor:0", "StatefulPartitionedCall_1:1"),
     "for every export"),
])
def test_wrong_functions_are_told_why(exports, function, why):
    feedback = judge(function, exports)
    assert not feedback.passed and why in feedback.message, feedback.message


def test_checker_drives_the_c_loader_with_the_names(tmp_path):
    _require("c")
    feedback = check_names_for(names_for, tmp_path, build=crosslang.build("c", tmp_path / "build"))
    assert feedback.passed and "C loader fed and fetched" in feedback.message, feedback.message


def test_unchecked_c_loader_crashes_on_a_name_that_is_not_there(tmp_path):
    """The lesson's plain caller: no NULL check, so a wrong name reaches TF_SessionRun."""
    _require("c")
    build = crosslang.build("c", tmp_path / "build")
    (export,) = [e for e in make_exports(tmp_path / "exports") if e.path.name == "named"]
    x = np.zeros((2, 6), "float32")
    names = {"input_name": "serving_default_nothing:0", "output_names": list(export.outputs.values())}
    checked = crosslang.run_c(build, export.path, x, check=False, **names)
    plain = crosslang.run_c(build, export.path, x, check=False, unchecked=True, **names)
    assert checked.returncode == 1 and "no operation named" in checked.error, checked.stderr
    assert plain.returncode == 128 + 11 and not plain.stdout, (plain.returncode, plain.stderr)
    assert crosslang.run_c(build, export.path, x, unchecked=True).ok  # right names still run
