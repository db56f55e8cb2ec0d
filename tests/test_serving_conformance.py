"""TF Serving's own request/answer pairs, sent to a real ``forgekit serve`` process.

The cases live in ``tests/data/serving_conformance.json``: TF Serving's REST guide, its Docker
tutorial, the cases of its REST handler and JSON tensor tests, and gRPC cases from its predict
and model-server tests, rewritten as data (request, expected status or code, expected answer
or error text). The models they need are exported here: the half-plus-two / half-plus-three
test graphs (``forgekit.serving.export_half_plus_two``), TF Serving's native TF2 test model
(``export_half_plus_two_tf2``: predict method names on classify/regress signatures, served
because the method-name check is off by default) and an identity model with one signature per
input set the JSON tensor tests use.
"""

from __future__ import annotations

import http.client
import json
import math
import shutil
from pathlib import Path

import pytest

from forgekit.serving import ModelServer
from forgekit.serving.demo import export_half_plus_two, export_half_plus_two_tf2

pytestmark = pytest.mark.slow

CASES = json.loads((Path(__file__).parent / "data" / "serving_conformance.json").read_text())
HALF_PLUS_TWO_NAMES = ("half_plus_two", "default", "saved_model_half_plus_two_2_versions")
OTHER_NAMES = ("half_plus_three", "json_tensor", "half_plus_two_tf2")


def export_json_tensor_model(path: Path) -> None:
    """Identity signatures over the inputs json_tensor_test.cc declares, plus two signatures
    that reveal how JSON examples became ``tf.train.Example`` features."""
    import tensorflow as tf

    def echo(inputs: dict) -> object:
        specs = [tf.TensorSpec(None, dtype, name=name) for name, dtype in inputs.items()]

        @tf.function(input_signature=specs)
        def identity(*args):
            return {name: tf.identity(arg) for name, arg in zip(inputs, args, strict=True)}

        return identity.get_concrete_function()

    features = {"names": tf.io.VarLenFeature(tf.string),
                "ratings": tf.io.VarLenFeature(tf.float32),
                "age": tf.io.VarLenFeature(tf.int64),
                "intboolmix": tf.io.VarLenFeature(tf.int64),
                "query": tf.io.FixedLenFeature([1], tf.string, default_value=""),
                "location": tf.io.FixedLenFeature([1], tf.string, default_value="")}
    examples = [tf.TensorSpec([None], tf.string, name="inputs")]

    def total(sparse: tf.SparseTensor) -> tf.Tensor:
        return tf.sparse.reduce_sum(tf.cast(sparse, tf.float32), axis=1)

    def count(sparse: tf.SparseTensor) -> tf.Tensor:
        ones = tf.ones_like(sparse.values, tf.float32)
        return tf.sparse.reduce_sum(tf.SparseTensor(sparse.indices, ones, sparse.dense_shape),
                                    axis=1)

    @tf.function(input_signature=examples)
    def parse_examples(inputs):  # regress: how many names each example has
        parsed = tf.io.parse_example(inputs, features)
        return {"outputs": tf.reshape(count(parsed["names"]), [-1])}

    @tf.function(input_signature=examples)
    def describe_examples(inputs):  # classify: names, query, location / sums of the numbers
        parsed = tf.io.parse_example(inputs, features)
        names = tf.sparse.to_dense(parsed["names"], default_value="")
        names = tf.concat([names, tf.fill([tf.shape(names)[0], 2], "")], axis=1)[:, :2]
        classes = tf.concat([names, parsed["query"], parsed["location"]], axis=1)
        scores = tf.stack([total(parsed["ratings"]), total(parsed["age"]),
                           total(parsed["intboolmix"]), count(parsed["names"])], axis=1)
        return {"classes": classes, "scores": scores}

    signatures = {
        "int32": echo({"default": tf.int32}), "predict_images": echo({"default": tf.int32}),
        "float": echo({"default": tf.float32}), "double": echo({"default": tf.float64}),
        "string": echo({"default": tf.string}), "ints": echo({"int_tensor": tf.int32}),
        "four": echo({"int_tensor": tf.int32, "str_tensor": tf.string,
                      "float_tensor": tf.float32, "dbl_tensor": tf.float64}),
        "three": echo({"int_tensor": tf.int32, "str_tensor": tf.string,
                       "bin_tensor": tf.string}),
        "two": echo({"int_tensor": tf.int32, "str_tensor": tf.string}),
        "strs": echo({"str_tensor": tf.string}),
        "bytes": echo({"str_tensor_bytes": tf.string}),
        "parse_examples": parse_examples.get_concrete_function(),
        "describe_examples": describe_examples.get_concrete_function(),
    }
    tf.saved_model.save(tf.Module(), str(path), signatures=signatures)
    _set_method(path, "parse_examples", "tensorflow/serving/regress")
    _set_method(path, "describe_examples", "tensorflow/serving/classify")


def _set_method(path: Path, signature: str, method: str) -> None:
    """tf.saved_model.save writes every signature as predict; mark it classify/regress."""
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    model.ParseFromString((path / "saved_model.pb").read_bytes())
    model.meta_graphs[0].signature_def[signature].method_name = method
    (path / "saved_model.pb").write_bytes(model.SerializeToString())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("conformance")
    first = export_half_plus_two(root / "exports" / "half_plus_two")
    for name in HALF_PLUS_TWO_NAMES:
        shutil.copytree(first, root / name / "123")
    export_half_plus_two(root / "half_plus_three" / "123", offset=3.0, method_name_aliases=True)
    export_json_tensor_model(root / "json_tensor" / "1")
    export_half_plus_two_tf2(root / "half_plus_two_tf2" / "123")
    labels = {"saved_model_half_plus_two_2_versions": 'version_labels { key: "Version_Label" '
                                                      "value: 123 }"}
    config = root / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: "{name}" base_path: "{root / name}" model_platform: "tensorflow" '
        f'{labels.get(name, "")} }}\n'
        for name in (*HALF_PLUS_TWO_NAMES, *OTHER_NAMES)) + "}\n")
    with ModelServer(model_config_file=config,
                     extra_args=["--allow_version_labels_for_unavailable_models"]) as srv:
        with srv.client() as client:
            for name in (*HALF_PLUS_TWO_NAMES, *OTHER_NAMES):
                client.wait_until_available(name)
        yield srv


def same(got: object, want: object) -> bool:
    """JSON equality where numbers compare as float32 values and NaN equals NaN."""
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(
            same(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(
            same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, float | int) and not isinstance(want, bool):
        if not isinstance(got, float | int) or isinstance(got, bool):
            return False
        if math.isnan(want):
            return math.isnan(got)
        return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-7)
    return got == want


def contains(got: object, want: object) -> bool:
    """``want``'s fields are all in ``got`` (lists element by element), values as in same()."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and contains(got[k], v)
                                             for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(
            contains(g, w) for g, w in zip(got, want, strict=True))
    return same(got, want)


@pytest.mark.parametrize("case", CASES["rest"], ids=[c["id"] for c in CASES["rest"]])
def test_rest_case(server, case):
    body = case["raw"].encode() if "raw" in case else (
        json.dumps(case["body"]).encode() if "body" in case else b"")
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_api_port, timeout=30)
    try:
        conn.request(case["method"], case["path"], body=body if case["method"] == "POST" or body
                     else None, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        status, payload = response.status, json.loads(response.read())
    finally:
        conn.close()
    assert status == case["status"], payload
    if "json" in case:
        assert same(payload, case["json"]), payload
    if "error" in case:
        assert case["error"] in payload["error"], payload


@pytest.mark.parametrize("case", CASES["grpc"], ids=[c["id"] for c in CASES["grpc"]])
def test_grpc_case(server, case):
    import grpc
    from google.protobuf import json_format, text_format
    from tensorflow_serving.apis import (
        classification_pb2,
        inference_pb2,
        predict_pb2,
        prediction_service_pb2_grpc,
        regression_pb2,
    )

    request_type = {"Predict": predict_pb2.PredictRequest,
                    "Classify": classification_pb2.ClassificationRequest,
                    "Regress": regression_pb2.RegressionRequest,
                    "MultiInference": inference_pb2.MultiInferenceRequest}[case["rpc"]]
    request = text_format.Parse(case["request"], request_type())
    with grpc.insecure_channel(server.grpc_url.removeprefix("grpc://")) as channel:
        call = getattr(prediction_service_pb2_grpc.PredictionServiceStub(channel), case["rpc"])
        try:
            response, code, details = call(request, timeout=30), "OK", ""
        except grpc.RpcError as err:
            response, code, details = None, err.code().name, err.details()
    assert code == case["code"], details
    if "response" in case:
        got = json_format.MessageToDict(response, preserving_proto_field_name=True)
        assert contains(got, case["response"]), got
    if "error" in case:
        assert case["error"] in details, details


def test_every_case_names_its_source():
    for case in CASES["rest"] + CASES["grpc"]:
        assert case["source"] and case["id"]
    assert len({c["id"] for c in CASES["rest"]}) == len(CASES["rest"])
    assert len({c["id"] for c in CASES["grpc"]}) == len(CASES["grpc"])


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_client_classify_and_regress_agree_across_protocols(server, transport):
    with server.client(transport) as client:
        assert client.regress("half_plus_three", [{"x": 1.0}, {"x": 2.0}],
                              signature_name="tensorflow/serving/regress") == {
            "results": [3.5, 4.0]}
        assert client.classify("default", [{"x": 20.0}], signature_name="classify_x_to_y") == {
            "results": [[["", 12.0]]]}
        assert client.regress("default", [{"x2": 0.0}, {"x": 4.0}], context={"x": 10.0},
                              signature_name="regress_x_to_y") == {"results": [7.0, 4.0]}


def test_method_name_check_flag_refuses_tf2_classify_as_tf_serving_does(server, tmp_path):
    """With ``--enable_signature_method_name_check`` the TF2 model's classify/regress/predict
    signature method names are checked, with TF Serving's messages; without it they serve."""
    from tensorflow_serving.apis import input_pb2

    from forgekit.serving import inference
    from forgekit.serving.core import method_name_check, set_method_name_check
    from forgekit.serving.error_codes import ServingError
    from forgekit.serving.servable import SavedModelServable

    servable = SavedModelServable(export_half_plus_two_tf2(tmp_path / "tf2" / "1"))
    request = input_pb2.Input()
    request.example_list.examples.add().features.feature["x"].float_list.value.append(2.0)
    before = method_name_check()
    try:
        set_method_name_check(False)
        answer = inference.run(servable, "classify_x_to_y", inference.CLASSIFY, request)
        assert answer.classifications[0].classes[0].score == 3.0
        set_method_name_check(True)
        for signature, method, kind in (("classify_x_to_y", inference.CLASSIFY, "classification"),
                                        ("regress_x_to_y", inference.REGRESS, "regression")):
            with pytest.raises(ServingError) as refused:
                inference.run(servable, signature, method, request)
            assert refused.value.code == "INVALID_ARGUMENT"
            assert refused.value.message == (f"Expected {kind} signature method_name to be "
                                             f"{method}. Was: tensorflow/serving/predict")
    finally:
        set_method_name_check(before)
