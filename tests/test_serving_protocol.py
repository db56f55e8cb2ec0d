"""forgekit's server against TF Serving's documented protocol, with real exported SavedModels.

One server process serves several models from a model_config_list (policies, labels, a
version that fails to load, an empty base path). Expected predictions are computed here by
calling the same SavedModels' signatures in-process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from forgekit.serving import ModelServer, ServingError
from forgekit.serving.demo import export_demo_model
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

MODELS = {  # name: (demo kind, versions on disk at start, version policy text, labels)
    "single": ("single", [1], "", {}),
    "multi": ("multi", [1], "", {}),
    "every": ("single", [1, 2], "model_version_policy { all {} }", {}),
    "newest2": ("single", [1, 2, 3], "model_version_policy { latest { num_versions: 2 } }", {}),
    "picked": ("single", [1, 2, 3],
               "model_version_policy { specific { versions: 1 versions: 3 } }", {}),
    "labeled": ("single", [1, 2], "model_version_policy { all {} }",
                {"stable": 1, "canary": 2}),
    "flaky": ("single", [1], "", {}),
    "empty": ("single", [], "", {}),
}


def _copy_version(library: Path, kind: str, version: int, base: Path) -> Path:
    """Deploy the way one should: copy under a temporary name, then rename into place."""
    staging = base / f".incoming-{version}"
    shutil.copytree(library / f"{kind}-{version}", staging)
    return staging.rename(base / str(version))


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """Every model version used here, exported once (version N has weights scaled by N)."""
    lib = tmp_path_factory.mktemp("exports")
    for version in (1, 2, 3):
        export_demo_model(lib / f"single-{version}", "single", scale=version)
    export_demo_model(lib / "multi-1", "multi")
    return lib


def config_text(root: Path, **labels: dict[str, int]) -> str:
    """The model_config_list for MODELS under ``root``; ``labels`` override a model's labels."""
    entries = []
    for name, (_, _, policy, default_labels) in MODELS.items():
        label_text = " ".join(f'version_labels {{ key: "{k}" value: {v} }}'
                              for k, v in labels.get(name, default_labels).items())
        entries.append(f'config {{ name: "{name}" base_path: "{root / name}" '
                       f'model_platform: "tensorflow" {policy} {label_text} }}')
    return "model_config_list {\n  " + "\n  ".join(entries) + "\n}\n"


@pytest.fixture(scope="module")
def server(library, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for name, (kind, versions, _, _) in MODELS.items():
        (root / name).mkdir()
        for v in versions:
            _copy_version(library, kind, v, root / name)
    (root / "empty" / "not-a-version").mkdir()
    config = root / "models.config"
    config.write_text(config_text(root))
    with ModelServer(model_config_file=config, model_name="single",
                     file_system_poll_wait_seconds=0.2,
                     extra_args=["--allow_version_labels_for_unavailable_models",
                                 "--model_config_file_poll_wait_seconds=1",
                                 # two retries, 0.1 s apart (TF Serving: 5, a minute apart)
                                 "--max_num_load_retries=2",
                                 "--load_retry_interval_micros=100000"]) as srv:
        srv.root = root
        srv.config = config
        yield srv


@pytest.fixture(scope="module")
def rest(server):
    with server.client("rest") as client:
        yield client


@pytest.fixture(scope="module")
def grpc_client(server):
    with server.client("grpc") as client:
        yield client


@cache
def _signature(path: str):
    import tensorflow as tf

    return tf.saved_model.load(path).signatures["serving_default"]


def direct(library: Path, name: str, **inputs) -> dict[str, np.ndarray]:
    """What the SavedModel itself returns, called in this process."""
    out = _signature(str(library / name))(**{k: np.asarray(v, np.float32)
                                             for k, v in inputs.items()})
    return {k: v.numpy() for k, v in out.items()}


X = [[1.0, 2.0, 3.0, 4.0], [-0.5, 0.25, 8.0, 1e-3]]
F = [[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]]


def _get(server, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(server.rest_url + path, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


# ------------------------------------------------------------------ status & metadata


def test_status_has_tf_servings_exact_json(server, grpc_client):
    ok = {"version": "1", "state": "AVAILABLE",
          "status": {"error_code": "OK", "error_message": ""}}
    assert _get(server, "/v1/models/single") == (200, {"model_version_status": [ok]})
    assert _get(server, "/v1/models/single/versions/1") == (200, {"model_version_status": [ok]})
    assert grpc_client.status("single") == {"model_version_status": [ok]}
    assert _get(server, "/v1/models/nope") == (
        404, {"error": "Could not find any versions of model nope"})
    assert _get(server, "/v1/models/single/versions/9") == (
        404, {"error": "Could not find version 9 of model single"})


def test_metadata_reports_the_saved_models_signatures(server, rest, grpc_client, library):
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString(
        (server.root / "multi" / "1" / "saved_model.pb").read_bytes())
    status, meta = _get(server, "/v1/models/multi/metadata")
    assert status == 200
    assert meta["model_spec"] == {"name": "multi", "signature_name": "", "version": "1"}
    sigs = meta["metadata"]["signature_def"]["signature_def"]
    assert set(sigs) == set(saved.meta_graphs[0].signature_def)  # incl. __saved_model_init_op
    default = sigs["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"] == {"features": {
        "dtype": "DT_FLOAT", "name": "serving_default_features:0",
        "tensor_shape": {"dim": [{"size": "-1", "name": ""}, {"size": "3", "name": ""}],
                         "unknown_rank": False}}}
    assert set(default["outputs"]) == {"price", "category"}
    assert default["outputs"]["category"]["tensor_shape"]["dim"][1]["size"] == "3"
    assert grpc_client.metadata("multi") == meta == rest.metadata("multi", version=1)


# ------------------------------------------------------------------ predict


def test_predict_rows_and_columns_single_output(rest, library):
    want = direct(library, "single-1", x=X)["output_0"]
    rows = rest.predict("single", X)
    assert set(rows) == {"predictions"}
    np.testing.assert_allclose(np.array(rows["predictions"], np.float32), want, rtol=1e-6)
    for cols in (rest.predict("single", inputs=X), rest.predict("single", inputs={"x": X})):
        assert set(cols) == {"outputs"}
        np.testing.assert_allclose(np.array(cols["outputs"], np.float32), want, rtol=1e-6)
    by_name = rest.predict("single", [{"x": row} for row in X])  # objects work for one input
    assert by_name == rows


def test_predict_rows_and_columns_multi_output(rest, library):
    want = direct(library, "multi-1", features=F)
    rows = rest.predict("multi", F)["predictions"]
    assert [set(r) for r in rows] == [{"price", "category"}] * 2
    cols = rest.predict("multi", inputs={"features": F})["outputs"]
    assert set(cols) == {"price", "category"}
    for name, expected in want.items():
        np.testing.assert_allclose(np.array([r[name] for r in rows], np.float32), expected,
                                   rtol=1e-6)
        np.testing.assert_allclose(np.array(cols[name], np.float32), expected, rtol=1e-6)


def test_predict_errors_are_tf_serving_errors(rest):
    with pytest.raises(ServingError) as info:
        rest.predict("single", [[1.0, 2.0, 3.0]])
    assert info.value.http_status == 400 and "Matrix size-incompatible" in info.value.message
    with pytest.raises(ServingError) as info:
        rest.predict("single", X, signature_name="nope")
    assert info.value.message == 'Serving signature name: "nope" not found in signature def'
    with pytest.raises(ServingError) as info:
        rest.predict("nope", X)
    assert (info.value.http_status, info.value.message) == (
        404, "Servable not found for request: Latest(nope)")


# ------------------------------------------------------------------ versions, policies, labels


def _serving(client, name: str) -> list[int]:
    return sorted(int(s["version"]) for s in client.status(name)["model_version_status"]
                  if s["state"] == "AVAILABLE")


def test_version_policies(rest):
    assert _serving(rest, "every") == [1, 2]
    assert _serving(rest, "newest2") == [2, 3]
    assert _serving(rest, "picked") == [1, 3]
    assert [s["version"] for s in rest.status("newest2")["model_version_status"]] == ["3", "2"]


def test_versions_and_labels_address_the_right_model(rest, library):
    for version in (1, 2):
        want = direct(library, f"single-{version}", x=X)["output_0"]
        got = rest.predict("every", X, version=version)["predictions"]
        np.testing.assert_allclose(np.array(got, np.float32), want, rtol=1e-6)
    for label, version in (("stable", 1), ("canary", 2)):
        by_label = rest.predict("labeled", X, label=label)
        assert by_label == rest.predict("labeled", X, version=version)
        assert rest.metadata("labeled", label=label)["model_spec"]["version"] == str(version)
        [status] = rest.status("labeled", label=label)["model_version_status"]
        assert status["version"] == str(version)
    assert rest.predict("picked", X) == rest.predict("picked", X, version=3)  # latest served
    with pytest.raises(ServingError) as info:
        rest.predict("picked", X, version=2)
    assert info.value.http_status == 404
    with pytest.raises(ServingError) as info:
        rest.predict("labeled", X, label="nightly")
    assert (info.value.http_status, info.value.message) == (
        400, "Unrecognized servable version label: nightly")


def test_new_version_replaces_the_old_one_once_available(server, rest, library):
    before = rest.predict("single", X)
    _copy_version(library, "single", 2, server.root / "single")
    rest.wait_until_available("single", version=2, timeout=30)
    assert rest.status("single") == {"model_version_status": [
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK",
                                                          "error_message": ""}},
        {"version": "1", "state": "END", "status": {"error_code": "OK", "error_message": ""}}]}
    after = rest.predict("single", X)
    want = direct(library, "single-2", x=X)["output_0"]
    np.testing.assert_allclose(np.array(after["predictions"], np.float32), want, rtol=1e-6)
    assert after != before
    with pytest.raises(ServingError) as info:
        rest.predict("single", X, version=1)
    assert info.value.message == "Servable not found for request: Specific(single, 1)"


def test_a_version_that_fails_to_load_leaves_the_served_one_alone(server, rest):
    base = server.root / "flaky"
    before = rest.predict("flaky", X)
    broken = base / ".incoming-2"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"this is not a protobuf")
    broken.rename(base / "2")
    deadline = time.monotonic() + 30
    while True:
        states = {s["version"]: s for s in rest.status("flaky")["model_version_status"]}
        if states.get("2", {}).get("state") == "END" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    failed = states["2"]
    assert failed["state"] == "END", states
    assert failed["status"]["error_code"] not in ("OK", "")
    assert failed["status"]["error_message"]
    assert states["1"]["state"] == "AVAILABLE"
    assert rest.predict("flaky", X) == before
    log = server.log_text()
    assert log.count("Loading servable: {name: flaky version: 2} failed") == 3  # 1 + 2 retries
    assert "Retrying of Loading servable: {name: flaky version: 2} exhausted max_num_load_retries: 2" in log


def test_base_path_without_versions_serves_nothing_and_says_why(server, rest):
    assert _get(server, "/v1/models/empty")[0] == 404
    with pytest.raises(ServingError) as info:
        rest.predict("empty", X)
    assert info.value.http_status == 404
    assert (f"No versions of servable empty found under base path {server.root / 'empty'}. "
            "Did you forget to name your leaf directory as a number (eg. '/1/')?"
            ) in server.log_text()


def _label_version(client, model: str, label: str) -> int:
    [status] = client.status(model, label=label)["model_version_status"]
    return int(status["version"])


def _wait_for(condition, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_labels_move_when_the_config_file_changes(server, rest):
    original = server.config.read_text()
    try:
        server.config.write_text(config_text(server.root, labeled={"stable": 2, "canary": 1}))
        assert _wait_for(lambda: _label_version(rest, "labeled", "stable") == 2)
        assert _label_version(rest, "labeled", "canary") == 1
        assert rest.predict("labeled", X, label="stable") == rest.predict("labeled", X,
                                                                          version=2)
        # moving a label onto a version that is not loaded is refused; the old config stays
        server.config.write_text(config_text(server.root, labeled={"stable": 7, "canary": 1}))
        assert _wait_for(lambda: "Request to assign label to version 7 of model labeled"
                         in server.log_text())
        assert _label_version(rest, "labeled", "stable") == 2
    finally:
        server.config.write_text(original)
        assert _wait_for(lambda: _label_version(rest, "labeled", "stable") == 1)


# ------------------------------------------------------------------ gRPC


REQUESTS = [
    ("single", {"instances": X}, {}),
    ("single", {"inputs": {"x": X}}, {}),
    ("multi", {"instances": F}, {}),
    ("multi", {"inputs": {"features": F}}, {}),
    ("every", {"instances": X}, {"version": 1}),
    ("labeled", {"inputs": X}, {"label": "canary"}),
    ("single", {"instances": X, "signature_name": "serving_default"}, {}),
    ("single", {"instances": np.array(X, np.float32)}, {}),  # numpy: gRPC's fast path
    ("multi", {"inputs": {"features": np.array(F)}}, {}),
]


@pytest.mark.parametrize(("model", "body", "where"), REQUESTS)
def test_grpc_and_rest_agree(rest, grpc_client, model, body, where):
    kwargs = {"instances": body.get("instances"), "inputs": body.get("inputs"),
              "signature_name": body.get("signature_name"), **where}
    assert grpc_client.predict(model, **kwargs) == rest.predict(model, **kwargs)
    assert grpc_client.status(model, **where) == rest.status(model, **where)


@pytest.mark.parametrize(("model", "kwargs", "http", "code"), [
    ("nope", {"instances": X}, 404, "NOT_FOUND"),
    ("single", {"instances": X, "version": 42}, 404, "NOT_FOUND"),
    ("labeled", {"instances": X, "label": "nightly"}, 400, "INVALID_ARGUMENT"),
    ("single", {"instances": [[1.0, 2.0]]}, 400, "INVALID_ARGUMENT"),
    ("single", {"instances": [["a", "b", "c", "d"]]}, 400, "INVALID_ARGUMENT"),
])
def test_grpc_and_rest_fail_alike(rest, grpc_client, model, kwargs, http, code):
    with pytest.raises(ServingError) as over_rest:
        rest.predict(model, **kwargs)
    with pytest.raises(ServingError) as over_grpc:
        grpc_client.predict(model, **kwargs)
    assert over_rest.value.http_status == http
    assert over_grpc.value.code == code
    assert over_grpc.value.message == over_rest.value.message


def test_raw_grpc_uses_the_official_protos_and_typed_fields(server):
    import grpc
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    from forgekit.serving.grpc_api import ndarray_to_tensor

    with grpc.insecure_channel(server.grpc_url.removeprefix("grpc://")) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "multi"
        request.inputs["features"].CopyFrom(ndarray_to_tensor(np.array(F, np.float32)))
        request.output_filter.append("price")
        response = stub.Predict(request, timeout=10)
        assert (response.model_spec.name, response.model_spec.version.value,
                response.model_spec.signature_name) == ("multi", 1, "serving_default")
        assert list(response.outputs) == ["price"]
        price = response.outputs["price"]
        assert [d.size for d in price.tensor_shape.dim] == [2, 1]
        assert len(price.float_val) == 2 and not price.tensor_content  # TF Serving's layout
        meta = stub.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec={"name": "multi"}, metadata_field=["signature_def"]), timeout=10)
        assert meta.metadata["signature_def"].type_url == (
            "type.googleapis.com/tensorflow.serving.SignatureDefMap")
        with pytest.raises(grpc.RpcError) as info:
            stub.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec={"name": "multi"}), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_rest_client_works_without_tensorflow(server, library):
    code = ("import sys, json\nfrom forgekit.serving import Client\n"
            f"c = Client({server.rest_url!r})\n"
            f"print(json.dumps(c.predict('multi', {F!r})))\n"
            "print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    predictions, tf_loaded = done.stdout.strip().splitlines()
    assert tf_loaded == "False"
    want = direct(library, "multi-1", features=F)["price"]
    got = [row["price"] for row in json.loads(predictions)["predictions"]]
    np.testing.assert_allclose(np.array(got, np.float32), want, rtol=1e-6)
