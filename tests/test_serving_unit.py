"""forgekit.serving without a server: JSON tensors, version lifecycle, flags, routing, client.

Fast tests: no TensorFlow model is loaded and no subprocess started (the model config parser
imports the TF Serving protos, nothing more).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from forgekit.serving.config import parse_flags, parse_model_config
from forgekit.serving.core import ServerCore
from forgekit.serving.error_codes import ServingError
from forgekit.serving.rest import RestApi
from forgekit.serving.tensors import InputInfo, outputs_to_json, parse_inputs, to_array
from forgekit.serving.versions import (
    LoadRetries,
    ModelConfig,
    ModelVersions,
    Poller,
    VersionPolicy,
    scan_versions,
)
from tests.conftest import ROOT

NO_RETRY = LoadRetries(max_retries=0)

F4 = {"x": InputInfo("DT_FLOAT", (-1, 4))}
TWO = {"a": InputInfo("DT_FLOAT", (-1,)), "b": InputInfo("DT_INT64", (-1, 2))}


def _error(fn, *args) -> ServingError:
    with pytest.raises(ServingError) as info:
        fn(*args)
    return info.value


# ------------------------------------------------------------------ JSON -> tensors


def test_to_array_infers_shape_and_casts_to_the_signature_dtype():
    a = to_array([[1, 2.5], [3, 4]], "DT_FLOAT")
    assert a.dtype == np.float32 and a.shape == (2, 2) and a[0, 1] == np.float32(2.5)
    assert to_array(7, "DT_INT64").shape == ()
    assert to_array([[], []], "DT_DOUBLE").shape == (2, 0)
    assert to_array([True, False], "DT_BOOL").tolist() == [True, False]
    strings = to_array(["héllo", {"b64": "AAEC"}], "DT_STRING")
    assert strings.tolist() == ["héllo".encode(), b"\x00\x01\x02"]


@pytest.mark.parametrize(("value", "dtype", "fragment"), [
    (["1.5"], "DT_FLOAT", 'JSON Value: "1.5" Type: String is not of expected type: float'),
    ([True], "DT_FLOAT", "Type: True is not of expected type: float"),
    ([None], "DT_FLOAT", "Type: Null is not of expected type: float"),
    ([1.5], "DT_INT32", "Type: Number is not of expected type: int32"),
    ([2 ** 31], "DT_INT32", "is not of expected type: int32"),
    ([1], "DT_BOOL", "is not of expected type: bool"),
    ([[1, 2], [3]], "DT_FLOAT", "Encountered list at unexpected size: 1"),
    ([[1, 2], 3], "DT_FLOAT", "found at incorrect level"),
    ([16777217], "DT_FLOAT", "Cannot convert JSON value: 16777217 to float without loss"),
    ([1e39], "DT_FLOAT", "to float without loss of precision"),
    ([{"b64": "not base64!"}], "DT_STRING", "Unable to base64 decode"),
    ([{"x": 1}], "DT_STRING", "not formatted correctly for base64 data"),
])
def test_to_array_rejects_what_tf_serving_rejects(value, dtype, fragment):
    err = _error(to_array, value, dtype)
    assert err.code == "INVALID_ARGUMENT" and err.http_status == 400
    assert fragment in err.message


def test_to_array_bounds_nesting_depth():
    deep: list = [1.0]
    for _ in range(40):
        deep = [deep]
    assert "nested deeper" in _error(to_array, deep, "DT_FLOAT").message


def test_rows_and_columns_give_the_same_tensors():
    row, by_rows = parse_inputs({"instances": [{"a": 1, "b": [1, 2]}, {"a": 2, "b": [3, 4]}]},
                                TWO)
    col, by_cols = parse_inputs({"inputs": {"a": [1, 2], "b": [[1, 2], [3, 4]], "extra": 0}},
                                TWO)
    assert row and not col
    for name in TWO:
        np.testing.assert_array_equal(by_rows[name], by_cols[name])
        assert by_rows[name].dtype == by_cols[name].dtype
    assert by_rows["b"].dtype == np.int64 and by_rows["b"].shape == (2, 2)
    _, single = parse_inputs({"instances": [[1, 2, 3, 4], [5, 6, 7, 8]]}, F4)
    assert single["x"].shape == (2, 4)


@pytest.mark.parametrize(("doc", "infos", "fragment"), [
    ({}, F4, "Missing 'inputs' or 'instances' key"),
    ({"instances": [[1] * 4], "inputs": [[1] * 4]}, F4, "expecting only one of"),
    ({"instances": []}, F4, "No values in 'instances' array"),
    ({"instances": {"x": 1}}, F4, "Excepting 'instances' to be an list/array"),
    ({"instances": [1, 2]}, TWO, "instances is a plain list, but expecting list of objects"),
    ({"instances": [{"a": 1}]}, TWO, "keys must be equal to: a,b"),
    ({"instances": [{"a": 1, "b": [1, 2], "c": 3}]}, TWO, "does not have named input: \"c\""),
    ({"instances": [[1] * 4, {"x": [1] * 4}]}, F4, "Expecting value/list but got object"),
    ({"inputs": [1, 2]}, TWO, "inputs is a plain value/list, but expecting an object"),
    ({"inputs": {"a": [1]}}, TWO, "Missing named input: b in 'inputs' object."),
    ({"instances": [{"a": 1, "b": [1, 2]}, {"a": 2, "b": [3]}]}, TWO, "Failed to process"),
])
def test_malformed_predict_bodies_are_invalid_argument(doc, infos, fragment):
    err = _error(parse_inputs, doc, infos)
    assert err.code == "INVALID_ARGUMENT" and fragment in err.message


def test_outputs_follow_the_request_format_and_name_rules():
    one = {"y": np.array([[1.0, 2.0]], np.float32)}
    two = {"p": np.array([[1.5], [2.5]], np.float32), "c": np.array([1, 2])}
    assert outputs_to_json(one, row=True) == {"predictions": [[1.0, 2.0]]}
    assert outputs_to_json(one, row=False) == {"outputs": [[1.0, 2.0]]}
    assert outputs_to_json(two, row=True) == {"predictions": [{"c": 1, "p": [1.5]},
                                                              {"c": 2, "p": [2.5]}]}
    assert outputs_to_json(two, row=False) == {"outputs": {"c": [1, 2], "p": [[1.5], [2.5]]}}
    bad = {"p": np.zeros((2, 1)), "c": np.zeros(3)}
    assert "inconsistent batch size" in _error(outputs_to_json, bad, True).message


def test_float32_outputs_carry_no_float64_noise_and_keep_special_values():
    values = np.array([0.1, 1 / 3, np.nan, np.inf, -np.inf], np.float32)
    text = json.dumps(outputs_to_json({"y": values}, row=False))
    assert text == '{"outputs": [0.1, 0.33333334, NaN, Infinity, -Infinity]}'
    parsed = np.array(json.loads(text)["outputs"], np.float32)
    np.testing.assert_array_equal(parsed, values)  # every value round-trips exactly


def test_string_outputs_named_bytes_are_base64():
    out = outputs_to_json({"img_bytes": np.array([b"\xff\x00"], object),
                           "label": np.array([b"cat"], object)}, row=False)
    assert out == {"outputs": {"img_bytes": [{"b64": "/wA="}], "label": ["cat"]}}


# ------------------------------------------------------------------ versions on disk


def _version_dirs(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    return root


def test_scan_versions_reads_numeric_directories_only(tmp_path, caplog):
    base = _version_dirs(tmp_path / "m", "1", "0002", "2", "abc", "3.tmp", "0",
                         str(2 ** 63), "0" * 5 + str(2 ** 63 - 1), "²")  # int64 bounds
    (base / "7").write_text("a file, not a version")
    outside = _version_dirs(tmp_path / "elsewhere", "9")
    (base / "9").symlink_to(outside / "9")
    with caplog.at_level(logging.WARNING, "forgekit.serving"):
        found = scan_versions(base, "m")
    assert sorted(found) == [0, 1, 2, 2 ** 63 - 1]
    assert found[2].name == "2"  # "0002" and "2" are both version 2: the later name wins
    assert "Duplicate version directories detected" in caplog.text
    assert "resolves outside the base path" in caplog.text


@pytest.mark.parametrize(("policy", "expected"), [
    (VersionPolicy(), {7}),
    (VersionPolicy("latest", num_versions=2), {3, 7}),
    (VersionPolicy("latest", num_versions=0), {7}),  # TF Serving serves at least one
    (VersionPolicy("all"), {1, 3, 7}),
    (VersionPolicy("specific", versions=frozenset({1, 5})), {1}),
])
def test_version_policies(policy, expected):
    assert policy.select([3, 1, 7]) == expected
    assert policy.select([]) == set()


class FakeLoader:
    """Loads a 'version' by reading its marker file; fails if the file says so."""

    def __init__(self) -> None:
        self.calls: list[Path] = []
        self.gate: threading.Event | None = None
        self.loading = threading.Event()

    def __call__(self, path: Path) -> str:
        self.calls.append(path)
        self.loading.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        text = (path / "model.txt").read_text() if (path / "model.txt").exists() else ""
        if text.startswith("broken"):
            raise ValueError(f"cannot parse {path / 'model.txt'}")
        return f"model@{path.name}"


def _add_version(base: Path, version: int, content: str = "ok") -> None:
    staging = base / f".staging-{version}"
    staging.mkdir(parents=True)
    (staging / "model.txt").write_text(content)
    staging.rename(base / str(version))  # appear atomically, as a deploy should


def _states(model: ModelVersions) -> dict[int, tuple[str, str]]:
    return {s.version: (s.state, s.error_code) for s in model.statuses()}


def test_new_version_serves_only_once_loaded_and_then_replaces_the_old(tmp_path):
    base = tmp_path / "m"
    _add_version(base, 1)
    loader = FakeLoader()
    model = ModelVersions(ModelConfig("m", base), loader)
    model.poll()
    assert model.lookup() == (1, "model@1")

    _add_version(base, 2)
    loader.gate = threading.Event()
    loader.loading.clear()
    poll = threading.Thread(target=model.poll)
    poll.start()
    assert loader.loading.wait(10)
    assert model.lookup() == (1, "model@1")  # still the old one while 2 loads
    assert _states(model) == {2: ("LOADING", "OK"), 1: ("AVAILABLE", "OK")}
    loader.gate.set()
    poll.join(10)
    assert model.lookup() == (2, "model@2")
    assert [s.version for s in model.statuses()] == [2, 1]  # newest first, like TF Serving
    assert _states(model) == {2: ("AVAILABLE", "OK"), 1: ("END", "OK")}
    assert _error(model.lookup, 1).message == "Servable not found for request: Specific(m, 1)"


def test_failed_load_is_reported_and_does_not_disturb_the_served_version(tmp_path):
    base = tmp_path / "m"
    _add_version(base, 1)
    loader = FakeLoader()
    model = ModelVersions(ModelConfig("m", base), loader, NO_RETRY)
    model.poll()
    _add_version(base, 2, "broken weights")
    model.poll()
    status = {s.version: s for s in model.statuses()}
    assert status[2].state == "END" and status[2].error_code == "INVALID_ARGUMENT"
    assert "cannot parse" in status[2].error_message
    assert status[1].state == "AVAILABLE" and model.lookup() == (1, "model@1")
    calls = len(loader.calls)
    (base / "2" / "model.txt").write_text("fixed")
    model.poll()
    # TF Serving gives a failed version up while it stays wanted, even if its files change
    assert len(loader.calls) == calls and _states(model)[2] == ("END", "INVALID_ARGUMENT")

    os.rename(base / "2", base / "2.old")  # gone for one scan: no longer wanted, forgotten
    model.poll()
    _add_version(base, 2, "fixed")  # a new deploy of version 2 is loaded afresh
    model.poll()
    assert model.lookup() == (2, "model@2")
    assert _states(model)[1] == ("END", "OK")


def test_failed_load_is_retried_and_reported_loading_meanwhile(tmp_path):
    # An export written straight into the version folder, seen half-written: TF Serving's
    # harness retries it max_num_load_retries times, reporting LOADING (status OK) meanwhile.
    base = tmp_path / "m"
    _add_version(base, 1)
    loader = FakeLoader()
    model = ModelVersions(ModelConfig("m", base), loader, LoadRetries(2, 3600.0))
    model.poll()
    _add_version(base, 2, "broken: half written")
    model.poll()
    assert _states(model) == {2: ("LOADING", "OK"), 1: ("AVAILABLE", "OK")}
    assert model.lookup() == (1, "model@1") and model.next_retry() > 0
    model.poll()
    model.retry_due()
    assert len([c for c in loader.calls if c.name == "2"]) == 1  # not due for an hour
    model._retrying[2].due = 0  # make it due now, instead of sleeping in a test
    (base / "2" / "model.txt").write_text("ok")  # the export finished meanwhile
    model.retry_due()
    assert model.lookup() == (2, "model@2")
    assert _states(model) == {2: ("AVAILABLE", "OK"), 1: ("END", "OK")}


def test_retries_run_out_into_end_with_the_last_error(tmp_path, caplog):
    base = tmp_path / "m"
    _add_version(base, 1, "broken forever")
    loader = FakeLoader()
    model = ModelVersions(ModelConfig("m", base), loader, LoadRetries(2, -1.0))
    with caplog.at_level(logging.INFO, "forgekit.serving"):
        model.poll()
        assert _states(model) == {1: ("LOADING", "OK")}
        model.retry_due()
        model.retry_due()
    assert _states(model) == {1: ("END", "INVALID_ARGUMENT")}
    assert len(loader.calls) == 3  # the first attempt and two retries
    assert "exhausted max_num_load_retries: 2" in caplog.text
    model.poll()
    model.retry_due()
    assert len(loader.calls) == 3


def test_a_version_no_longer_wanted_stops_being_retried(tmp_path, caplog):
    base = tmp_path / "m"
    _add_version(base, 1)
    model = ModelVersions(ModelConfig("m", base), FakeLoader(), LoadRetries(5, 3600.0))
    model.poll()
    _add_version(base, 2, "broken: killed half-way")
    model.poll()
    assert _states(model)[2] == ("LOADING", "OK")
    _add_version(base, 3)  # the next deployment: latest{1} now wants 3 only
    with caplog.at_level(logging.INFO, "forgekit.serving"):
        model.poll()
    assert "was cancelled" in caplog.text
    assert _states(model) == {3: ("AVAILABLE", "OK"), 2: ("END", "INVALID_ARGUMENT"),
                              1: ("END", "OK")}
    assert model.next_retry() == float("inf")


def test_the_poller_runs_due_retries_even_when_scans_are_off(tmp_path):
    # retries belong to the load, not to polling: they run with scans disabled (interval 0)
    base = tmp_path / "m"
    _add_version(base, 1, "broken: still uploading")
    model = ModelVersions(ModelConfig("m", base), FakeLoader(), LoadRetries(50, 0.02))
    poller = Poller(lambda: [model], 0)
    poller.poll_all()
    poller.start()
    try:
        assert _states(model) == {1: ("LOADING", "OK")}
        (base / "1" / "model.txt").write_text("ok")  # the upload completes
        deadline = time.monotonic() + 20
        while _states(model)[1][0] != "AVAILABLE" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert model.lookup() == (1, "model@1")
    finally:
        poller.stop()


def test_one_bad_model_does_not_starve_the_others(tmp_path, caplog):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # a base path that is a symlink loop
    _add_version(tmp_path / "good", 1)
    bad = ModelVersions(ModelConfig("bad", tmp_path / "loop"), FakeLoader())

    class Exploding(ModelVersions):
        def poll(self) -> None:
            raise AssertionError("a bug in one model's poll")

    boom = Exploding(ModelConfig("boom", tmp_path / "loop"), FakeLoader())
    good = ModelVersions(ModelConfig("good", tmp_path / "good"), FakeLoader())
    with caplog.at_level(logging.ERROR, "forgekit.serving"):
        Poller(lambda: [bad, boom, good], 1).poll_all()
    assert "Could not find base path" in caplog.text and "Symlink loop" not in caplog.text
    assert "Polling the base path of model boom failed" in caplog.text
    assert good.lookup() == (1, "model@1")


@pytest.mark.parametrize(("policy", "serving"), [
    (VersionPolicy("latest", num_versions=2), [2, 3]),
    (VersionPolicy("all"), [1, 2, 3]),
    (VersionPolicy("specific", versions=frozenset({1, 3})), [1, 3]),
])
def test_policies_decide_which_versions_stay_loaded(tmp_path, policy, serving):
    base = tmp_path / "m"
    for v in (1, 2, 3):
        _add_version(base, v)
    model = ModelVersions(ModelConfig("m", base, policy), FakeLoader())
    model.poll()
    available = sorted(s.version for s in model.statuses() if s.state == "AVAILABLE")
    assert available == serving
    assert model.lookup()[0] == max(serving)
    for v in serving:
        assert model.lookup(v) == (v, f"model@{v}")


def test_removing_every_version_unloads_everything(tmp_path, caplog):
    base = tmp_path / "m"
    _add_version(base, 1)
    model = ModelVersions(ModelConfig("m", base), FakeLoader())
    model.poll()
    os.rename(base / "1", base / "retired")
    with caplog.at_level(logging.WARNING, "forgekit.serving"):
        model.poll()
    assert "No versions of servable m found under base path" in caplog.text
    assert _states(model) == {1: ("END", "OK")}
    assert _error(model.lookup).message == "Servable not found for request: Latest(m)"


def test_missing_base_path_changes_nothing(tmp_path, caplog):
    base = tmp_path / "m"
    _add_version(base, 1)
    model = ModelVersions(ModelConfig("m", base), FakeLoader())
    model.poll()
    os.rename(base, tmp_path / "moved")
    with caplog.at_level(logging.ERROR, "forgekit.serving"):
        model.poll()
    assert "Could not find base path" in caplog.text
    assert model.lookup() == (1, "model@1")


def test_labels_resolve_to_versions(tmp_path):
    base = tmp_path / "m"
    for v in (1, 2):
        _add_version(base, v)
    config = ModelConfig("m", base, VersionPolicy("all"), {"stable": 1, "canary": 2})
    core = ServerCore(FakeLoader())
    core.configure([config], allow_labels_for_unavailable_models=True)
    core.models["m"].poll()
    assert core.servable("m", label="stable") == (1, "model@1")
    assert core.servable("m", label="canary") == (2, "model@2")
    assert [s.version for s in core.status("m", label="canary")] == [2]
    err = _error(core.servable, "m", None, "nightly")
    assert err.http_status == 400 and err.message == "Unrecognized servable version label: nightly"
    assert _error(core.servable, "other").http_status == 404


def test_config_changes_follow_tf_servings_label_rule(tmp_path):
    base = tmp_path / "m"
    for v in (1, 2):
        _add_version(base, v)
    labelled = ModelConfig("m", base, VersionPolicy("all"), {"stable": 1})
    core = ServerCore(FakeLoader())
    err = _error(core.configure, [labelled])  # at start-up nothing is loaded yet
    assert err.code == "FAILED_PRECONDITION"
    assert err.message == ("Request to assign label to version 1 of model m, which is not "
                           "currently available for inference")
    assert core.models == {}  # a refused config changes nothing
    assert core.configure([labelled], allow_labels_for_unavailable_models=True) == ["m"]
    core.models["m"].poll()

    moved = ModelConfig("m", base, VersionPolicy("all"), {"stable": 2})
    assert core.configure([moved]) == []  # 2 is AVAILABLE: the label may move there
    assert core.servable("m", label="stable")[0] == 2
    ahead = ModelConfig("m", base, VersionPolicy("all"), {"stable": 3})
    with pytest.raises(ServingError) as info:  # an existing label never moves to nothing
        core.configure([ahead], allow_labels_for_unavailable_models=True)
    err = info.value
    assert err.code == "FAILED_PRECONDITION"
    assert core.servable("m", label="stable")[0] == 2
    fresh = ModelConfig("m", base, VersionPolicy("all"), {"stable": 2, "next": 3})
    core.configure([fresh], allow_labels_for_unavailable_models=True)  # a new label may
    assert core.models["m"].resolve_label("next") == 3

    latest = ModelConfig("m", base)  # policy change: latest only, at the next poll
    core.configure([latest])
    core.models["m"].poll()
    assert sorted(core.models["m"].available()) == [2]

    other = ModelConfig("n", base)
    model_m = core.models["m"]
    assert core.configure([other]) == ["n"]  # m removed, n added
    assert _error(core.servable, "m").http_status == 404
    assert model_m.available() == set()
    model_m.poll()  # the poller may still hold the removed model from its last round
    assert model_m.available() == set()


def test_concurrent_reloads_agree_on_one_set_of_models(tmp_path):
    base = tmp_path / "m"
    _add_version(base, 1)
    core = ServerCore(FakeLoader())
    configs = [ModelConfig(name, base) for name in ("a", "b")]
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(core.configure(configs)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(map(tuple, results)) == [()] * 7 + [("a", "b")]  # created exactly once
    core.poll(["a", "b", "gone"])
    assert core.servable("a") == (1, "model@1") and core.servable("b") == (1, "model@1")


# ------------------------------------------------------------------ REST routing


class _Sig:
    name, inputs = "serving_default", {"x": InputInfo("DT_FLOAT", (-1,))}


class _Servable:
    def signature(self, name, rest):
        if name not in ("", "serving_default"):
            raise ServingError("INVALID_ARGUMENT", f'Serving signature name: "{name}" not found')
        return _Sig()

    def run(self, sig, inputs):
        return {"y": inputs["x"] * 2}

    def metadata_json(self):
        return {"signature_def": {}}


@pytest.fixture
def api(tmp_path):
    base = tmp_path / "my model"
    for v in (1, 2):
        _add_version(base, v)
    config = ModelConfig("my model", base, VersionPolicy("all"), {"stable": 1})
    core = ServerCore(lambda path: _Servable())
    core.configure([config], allow_labels_for_unavailable_models=True)
    core.models["my model"].poll()
    return RestApi(core)


@pytest.mark.parametrize(("method", "path", "status", "needle"), [
    ("GET", "/v1/models/my%20model", 200, '"version": "2"'),
    ("GET", "/V1/MODELS/my%20model/versions/1", 200, '"version": "1"'),
    ("GET", "/v1/models/my%20model/labels/stable", 200, '"version": "1"'),
    ("GET", "/v1/models/my%20model/versions/1/metadata", 200, '"version": "1"'),
    ("GET", "/v1/models/my%20model/METADATA", 200, "model_version_status"),
    ("GET", "/v1/models/my%20model?x=1", 200, "AVAILABLE"),
    ("GET", "/v1/models", 400, "Missing model name in request."),
    ("GET", "/v1/models/my%20model/versions/x", 400, "Malformed request: GET"),
    ("GET", "/v1/models/my%20model/versions/99999999999999999999", 400, "Failed to convert"),
    ("GET", "/v1/models/my%20model/versions/7", 404, "Could not find version 7 of model"),
    ("GET", "/v1/models/my%20model/labels/nope", 400, "Unrecognized servable version label"),
    ("GET", "/v1/models/..%2F..%2Fetc/metadata", 404, "Servable not found for request"),
    ("GET", "/v1/models/%ff", 400, "Failed to decode model name"),
    ("PUT", "/v1/models/my%20model", 400, "Malformed request: PUT"),
    ("GET", "/index.html", 404, "Not found"),
    ("POST", "/v1/models/my%20model:classify", 400, "JSON Parse error: The document is empty"),
    ("POST", "/v1/models/my%20model:PREDICT", 400, "Malformed request"),
])
def test_rest_routing_follows_tf_serving(api, method, path, status, needle):
    code, body = api.handle(method, path, b"")
    assert code == status, body
    assert needle in body.decode()
    assert code == 200 or set(json.loads(body)) == {"error"}


def test_rest_predict_addresses_versions_and_labels(api):
    body = json.dumps({"instances": [1, 2]}).encode()
    for path in ("/v1/models/my%20model:predict", "/v1/models/my%20model/versions/1:predict",
                 "/v1/models/my%20model/labels/stable:predict"):
        assert api.handle("POST", path, body) == (200, b'{"predictions": [2.0, 4.0]}')
    for bad, needle in [(b"", "The document is empty"), (b"{", "JSON Parse error"),
                        (b"[1]", "Is not object"), (b'{"signature_name": 3}', "must be a string"),
                        (b"[" * 100000, "JSON Parse error"),
                        (b'{"signature_name": "nope", "instances": [1]}', "not found")]:
        code, out = api.handle("POST", "/v1/models/my%20model:predict", bad)
        assert code == 400 and needle in json.loads(out)["error"]


# ------------------------------------------------------------------ flags and config


def test_flags_take_tf_serving_names_defaults_and_both_syntaxes():
    defaults = parse_flags([])
    assert (defaults.port, defaults.rest_api_port, defaults.model_name,
            defaults.file_system_poll_wait_seconds) == (8500, 0, "default", 1)
    assert defaults.model_config_file_poll_wait_seconds == 0
    # TF Serving's defaults for what changed with issue 24
    assert (defaults.max_num_load_retries, defaults.load_retry_interval_micros) == (5, 60_000_000)
    assert defaults.enable_signature_method_name_check is False
    assert defaults.forgekit_poll_interval_seconds == 0
    assert defaults.grpc_host == defaults.rest_api_host == "127.0.0.1"
    opts = parse_flags(["--port=9000", "--rest_api_port", "9001", "--model_name=m",
                        "--model_base_path", "/models/m", "--file_system_poll_wait_seconds=3",
                        "--allow_version_labels_for_unavailable_models"])
    assert (opts.port, opts.rest_api_port, opts.model_name, opts.model_base_path) == (
        9000, 9001, "m", "/models/m")
    assert opts.file_system_poll_wait_seconds == 3 and opts.file_system_poll_s == 3.0
    assert opts.allow_version_labels_for_unavailable_models is True
    assert parse_flags(["--allow_version_labels_for_unavailable_models=false"]
                       ).allow_version_labels_for_unavailable_models is False
    with pytest.raises(SystemExit) as exit_info:
        parse_flags(["--enable_batching"])  # unknown flags are errors, as in TF Serving
    assert exit_info.value.code == 2


@pytest.mark.parametrize("flag", ["--file_system_poll_wait_seconds=0.5",
                                  "--model_config_file_poll_wait_seconds=0.5",
                                  "--max_num_load_retries=1.5", "--max_num_load_retries=-1",
                                  "--load_retry_interval_micros=1e6",
                                  "--forgekit_poll_interval_seconds=nan"])
def test_integer_flags_refuse_what_tensorflow_model_server_refuses(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_flags([flag])
    assert exit_info.value.code == 2
    if "poll_wait" in flag:
        assert "--forgekit_poll_interval_seconds" in capsys.readouterr().err


def test_the_forgekit_poll_flag_paces_only_the_polls_that_are_on():
    fast = parse_flags(["--forgekit_poll_interval_seconds=0.25"])
    assert (fast.file_system_poll_s, fast.model_config_poll_s) == (0.25, 0.0)
    both = parse_flags(["--forgekit_poll_interval_seconds=0.25",
                        "--model_config_file_poll_wait_seconds=60"])
    assert both.model_config_poll_s == 0.25
    once = parse_flags(["--forgekit_poll_interval_seconds=0.25",
                        "--file_system_poll_wait_seconds=0"])
    assert once.file_system_poll_s == 0


def test_model_server_turns_a_fractional_poll_into_the_forgekit_flag():
    from forgekit.serving import ModelServer

    args = ModelServer("/m", file_system_poll_wait_seconds=0.2).args()
    assert "--file_system_poll_wait_seconds=1" in args
    assert "--forgekit_poll_interval_seconds=0.2" in args
    assert "--file_system_poll_wait_seconds=2" in ModelServer(
        "/m", file_system_poll_wait_seconds=2).args()
    assert not any(a.startswith("--forgekit") for a in ModelServer("/m").args())


CONFIG = """
model_config_list {
  config { name: "a" base_path: "/models/a" model_platform: "tensorflow" }
  config {
    name: "b" base_path: "/models/b" model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 2 } }
  }
  config {
    name: "c" base_path: "/models/c" model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 3 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 3 }
  }
  config { name: "d" base_path: "/models/d" model_platform: "tensorflow"
           model_version_policy { all {} } }
}
"""


def test_model_config_list_is_parsed_with_the_official_protos():
    a, b, c, d = parse_model_config(CONFIG)
    assert (a.name, a.base_path, a.policy) == ("a", Path("/models/a"), VersionPolicy())
    assert b.policy == VersionPolicy("latest", num_versions=2)
    assert c.policy == VersionPolicy("specific", versions=frozenset({1, 3}))
    assert dict(c.labels) == {"stable": 1, "canary": 3}
    assert d.policy.kind == "all"


@pytest.mark.parametrize(("text", "fragment"), [
    ('model_config_list { config { name: "a" base_path: "/m" model_platform: "tensorflow" } '
     'config { name: "a" base_path: "/n" model_platform: "tensorflow" } }',
     "Illegal to list model a multiple times"),
    ('model_config_list { config { name: "a" base_path: "models/a" model_platform: '
     '"tensorflow" } }', "to have an absolute path"),
    ('model_config_list { config { name: "a" base_path: "/m" } }', "model_platform"),
    ('model_config_list { config { name: "a" base_path: "/m" model_platform: "onnx" } }',
     "unsupported platform onnx"),
    ("model_config_list { config { nme: 1 } }", "Invalid protobuf file"),
])
def test_bad_model_configs_are_refused(text, fragment):
    assert fragment in _error(parse_model_config, text).message


# ------------------------------------------------------------------ client & package


def test_client_picks_the_protocol_from_the_url(monkeypatch):
    from forgekit.serving import Client

    monkeypatch.setenv("FORGEKIT_SERVING_URL", "http://example.invalid:9999")
    assert Client().transport == "rest" and Client().url == "http://example.invalid:9999"
    monkeypatch.delenv("FORGEKIT_SERVING_URL")
    assert Client().url == "http://127.0.0.1:8501"
    for bad in ("localhost:8500", "ftp://host:1", "grpc://host"):
        with pytest.raises(ValueError):
            Client(bad)
    with pytest.raises(ValueError, match="exactly one"):
        Client().predict("m")


def test_errors_map_between_http_and_canonical_codes():
    assert ServingError("NOT_FOUND", "x").http_status == 404
    assert ServingError("FAILED_PRECONDITION", "x").http_status == 400
    assert ServingError.from_http(404, "x").code == "NOT_FOUND"
    assert ServingError.from_http(413, "x").code == "RESOURCE_EXHAUSTED"
    assert ServingError.from_http(502, "x").code == "INTERNAL"


def test_exceptions_become_serving_errors_with_tensorflows_code_when_they_carry_one():
    from forgekit.serving.error_codes import from_exception

    class OpError(Exception):  # what tf.errors.InvalidArgumentError carries
        error_code, message = 3, "Matrix size-incompatible"

    assert (from_exception(OpError()).code, from_exception(OpError()).message) == (
        "INVALID_ARGUMENT", "Matrix size-incompatible")
    assert from_exception(FileNotFoundError("no saved_model.pb")).code == "NOT_FOUND"
    assert from_exception(ValueError("bad")).http_status == 400
    err = from_exception(KeyError("k"), fallback="UNKNOWN")
    assert (err.code, err.message) == ("UNKNOWN", "KeyError: 'k'")
    same = ServingError("NOT_FOUND", "x")
    assert from_exception(same) is same


def test_importing_forgekit_serving_and_its_rest_client_does_not_import_tensorflow():
    code = ("import sys, forgekit.serving as s\n"
            "from forgekit.serving import Client, ModelServer, ServingError\n"
            "import forgekit.serving.tensors, forgekit.serving.config, forgekit.serving.server\n"
            "Client('http://127.0.0.1:1')\n"
            "print([m for m in ('tensorflow', 'keras', 'grpc') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_responses_are_one_buffer_and_head_gets_no_body():
    from forgekit.serving.http_server import response_bytes

    full = response_bytes(404, b'{"error": "x"}', close=True)
    assert full.startswith(b"HTTP/1.1 404 Not Found\r\n") and full.endswith(b'\r\n\r\n{"error": "x"}')
    assert b"Content-Length: 14\r\n" in full and b"Connection: close\r\n" in full
    assert response_bytes(400, b"{}", head=True).endswith(b"\r\n\r\n")


def test_numpy_arrays_follow_the_same_rules_as_json():
    a = to_array(np.arange(8, dtype=np.float64).reshape(2, 4), "DT_FLOAT")
    assert a.dtype == np.float32 and a.shape == (2, 4)
    assert to_array(np.array([1, 2]), "DT_FLOAT").tolist() == [1.0, 2.0]
    assert to_array(np.array([[b"a"], ["b"]], dtype=object), "DT_STRING").tolist() == [
        [b"a"], [b"b"]]
    assert to_array(np.array(["é"]), "DT_STRING").tolist() == ["é".encode()]
    for value, dtype, fragment in [
        (np.array([True]), "DT_FLOAT", "is not of expected type: float"),
        (np.array([1.5]), "DT_INT32", "is not of expected type: int32"),
        (np.array([2 ** 40]), "DT_INT32", "out of range for int32"),
        (np.array([2 ** 30]), "DT_FLOAT", "without loss of precision"),
        (np.array([1.0]), "DT_STRING", "is not of expected type: string"),
    ]:
        assert fragment in _error(to_array, value, dtype).message
    row, arrays = parse_inputs({"instances": np.ones((3, 4), np.float32)}, F4)
    assert row and arrays["x"].shape == (3, 4)
    _, arrays = parse_inputs({"inputs": {"a": np.ones(2), "b": np.ones((2, 2), np.int64)}}, TWO)
    assert arrays["b"].dtype == np.int64


class _SlowServable(_Servable):
    """Answers a predict only once ``gate`` is set."""

    def __init__(self) -> None:
        self.entered, self.gate = threading.Event(), threading.Event()

    def run(self, sig, inputs):
        self.entered.set()
        assert self.gate.wait(10)
        return super().run(sig, inputs)


def test_rest_shutdown_answers_requests_in_flight_and_closes_idle_connections(tmp_path):
    import http.client
    import socket

    from forgekit.serving.http_server import RestServer

    base = tmp_path / "m"
    _add_version(base, 1)
    servable = _SlowServable()
    core = ServerCore(lambda path: servable)
    core.configure([ModelConfig("m", base)])
    core.poll(["m"])
    rest = RestServer(core, "127.0.0.1", 0, timeout_s=30.0)
    rest.start()
    idle = socket.create_connection(rest.address, timeout=10)
    idle.sendall(b"GET /v1/models/m HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")  # answered, now kept alive and idle

    answers: list[tuple[int, str | None, bytes]] = []

    def predict() -> None:
        conn = http.client.HTTPConnection(*rest.address, timeout=10)
        conn.request("POST", "/v1/models/m:predict", body=b'{"instances": [1]}')
        response = conn.getresponse()
        answers.append((response.status, response.getheader("Connection"), response.read()))
        conn.close()

    busy = threading.Thread(target=predict)
    busy.start()
    assert servable.entered.wait(10)
    stopper = threading.Thread(target=rest.shutdown)
    stopper.start()
    assert idle.recv(65536) == b""  # the idle keep-alive connection is closed at once
    assert stopper.is_alive()  # ... while shutdown waits for the request in flight
    servable.gate.set()
    stopper.join(10)
    busy.join(10)
    assert not stopper.is_alive()
    assert answers == [(200, "close", b'{"predictions": [2.0]}')]
    idle.close()


def test_config_watcher_applies_an_edit_made_while_the_server_was_starting(tmp_path):
    from forgekit.serving.server import _watch_config

    base = tmp_path / "m"
    _add_version(base, 1)
    config_file = tmp_path / "models.config"

    def config(*names: str) -> str:
        return "model_config_list {\n" + "".join(
            f'  config {{ name: "{n}" base_path: "{base}" model_platform: "tensorflow" }}\n'
            for n in names) + "}\n"

    started_with = config("a")
    core = ServerCore(FakeLoader())
    core.configure(parse_model_config(started_with))
    config_file.write_text(config("a", "b"))  # edited before the watcher's first look
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_config,
                               args=(config_file, 0.01, core, started_with, False, stop))
    watcher.start()
    try:
        for _ in range(500):
            if "b" in core.models and core.models["b"].available():
                break
            stop.wait(0.01)
    finally:
        stop.set()
        watcher.join(10)
    assert sorted(core.models) == ["a", "b"]
    assert core.servable("b") == (1, "model@1")


def test_grpc_client_refreshes_cached_inputs_after_a_new_version_renames_them():
    from tensorflow_serving.apis import predict_pb2

    from forgekit.serving.client import _Grpc
    from forgekit.serving.grpc_api import ndarray_to_tensor

    def signature(input_name: str) -> dict:
        tensor = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}],
                                                        "unknown_rank": False}}
        return {"model_spec": {}, "metadata": {"signature_def": {"signature_def": {
            "serving_default": {"inputs": {input_name: tensor}}}}}}

    served = {"input": "x"}  # the input name of the version being served
    sent: list[list[str]] = []

    def call(method, request):
        sent.append(sorted(request.inputs))
        if sorted(request.inputs) != [served["input"]]:
            raise ServingError("INVALID_ARGUMENT", "input size does not match signature")
        response = predict_pb2.PredictResponse()
        response.outputs["y"].CopyFrom(ndarray_to_tensor(np.array([2.0], np.float32)))
        return response

    client = _Grpc("127.0.0.1:9", 1.0)  # never connects: the calls are replaced
    client.metadata = lambda model, version, label: signature(served["input"])
    client._call = call
    body = {"inputs": {"x": [1.0]}}
    assert client.predict("m", None, None, body) == {"outputs": [2.0]}
    served["input"] = "features"  # version 2 is deployed with a renamed input
    assert client.predict("m", None, None, {"instances": [1.0]}) == {"predictions": [2.0]}
    assert sent == [["x"], ["x"], ["features"]]  # one stale call, then fresh metadata
    with pytest.raises(ServingError):
        client.predict("m", None, None, body)  # a real mistake still fails, once retried
    client.close()


def test_rest_timeout_zero_means_no_timeout_as_in_tf_serving(tmp_path):
    import http.client
    import time

    from forgekit.serving.http_server import RestServer

    base = tmp_path / "m"
    _add_version(base, 1)
    core = ServerCore(lambda path: _Servable())
    core.configure([ModelConfig("m", base)])
    core.poll(["m"])
    rest = RestServer(core, "127.0.0.1", 0, timeout_s=0)  # --rest_api_timeout_in_ms=0
    rest.start()
    try:
        conn = http.client.HTTPConnection(*rest.address, timeout=10)
        for _ in range(2):  # the same keep-alive connection, idle in between
            conn.request("GET", "/v1/models/m")
            response = conn.getresponse()
            assert (response.status, response.will_close) == (200, False), response.read()
            response.read()
            time.sleep(0.3)  # longer than the watchdog's tick
        conn.close()
    finally:
        rest.shutdown()


def test_config_watcher_survives_any_exception_and_applies_the_next_edit(tmp_path, caplog):
    from forgekit.serving.server import _watch_config

    base = tmp_path / "m"
    _add_version(base, 1)
    config_file = tmp_path / "models.config"

    def config(*names: str) -> str:
        return "model_config_list {\n" + "".join(
            f'  config {{ name: "{n}" base_path: "{base}" model_platform: "tensorflow" }}\n'
            for n in names) + "}\n"

    started_with = config("a")
    core = ServerCore(FakeLoader())
    core.configure(parse_model_config(started_with))
    real_configure, failures = core.configure, []

    def flaky_configure(*args, **kwargs):
        if not failures:  # a bug, not a bad config: neither OSError nor ServingError
            failures.append(1)
            raise RuntimeError("bug in configure")
        return real_configure(*args, **kwargs)

    core.configure = flaky_configure
    config_file.write_text(config("a", "b"))
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_config,
                               args=(config_file, 0.01, core, started_with, False, stop))
    watcher.start()
    try:
        for _ in range(500):
            if "b" in core.models and core.models["b"].available():
                break
            stop.wait(0.01)
        alive = watcher.is_alive()
    finally:
        stop.set()
        watcher.join(10)
    assert failures and alive
    assert sorted(core.models) == ["a", "b"]
    assert "bug in configure" in caplog.text  # logged with its traceback


def test_a_bug_answers_500_without_its_text(api, caplog):
    model = api.core.models["my model"]
    model.lookup = lambda version: (_ for _ in ()).throw(RuntimeError("secret detail 7"))
    status, body = api.handle("POST", "/v1/models/my%20model:predict", b'{"instances": [1]}')
    assert status == 500
    assert "secret" not in body.decode() and "RuntimeError" not in body.decode()
    assert json.loads(body)["error"]
    assert "secret detail 7" in caplog.text


def test_memory_budget_refuses_what_it_cannot_cover_and_counts_answers_until_closed():
    from forgekit.serving.budget import MemoryBudget

    budget = MemoryBudget(24)
    big = budget.ticket()
    big.charge(16)
    with pytest.raises(ServingError) as busy:
        budget.ticket().charge(16)  # a second large request is refused, not queued
    assert busy.value.code == "UNAVAILABLE" and busy.value.http_status == 503
    with budget.ticket() as small:
        small.charge(8)
        with pytest.raises(ServingError):
            budget.ticket().charge(1)
    assert budget.used == 16  # the small one gave its share back on leaving the block
    big.charge(100, force=True)  # an answer already built is counted, never refused
    assert budget.used == 116
    big.close()
    big.close()  # twice is harmless
    big.charge(5, force=True)  # a cancelled RPC's handler finishing late charges nothing
    assert budget.used == 0
    with pytest.raises(ServingError) as huge:
        budget.ticket().charge(25)  # can never fit, even alone
    assert huge.value.code == "RESOURCE_EXHAUSTED" and budget.used == 0


def test_a_python_failure_in_a_signature_call_is_logged_not_sent(caplog):
    from forgekit.serving.servable import SavedModelServable, Signature
    from forgekit.serving.tensors import InputInfo

    def broken(**inputs):
        raise RuntimeError("secret detail 42")

    sig = Signature("serving_default", "tensorflow/serving/predict",
                    {"x": InputInfo("DT_FLOAT")}, ("y",), broken, ("x",))
    servable = SavedModelServable.__new__(SavedModelServable)  # no SavedModel needed
    with pytest.raises(ServingError) as info:
        servable.run(sig, {"x": np.ones((1, 1), np.float32)})
    assert info.value.code == "INTERNAL" and "secret" not in info.value.message
    assert "secret detail 42" in caplog.text


def test_a_label_outlives_the_version_its_policy_unloads(tmp_path, caplog):
    """TF Serving (server_core.cc): labels are checked only when the config file is read
    (UpdateModelVersionLabelMap, run on every re-read, an unchanged file too); a version the
    policy unloads keeps its labels, whose requests then get NOT_FOUND."""
    from forgekit.serving.server import _watch_config

    base = tmp_path / "m"
    for v in (1, 2):
        _add_version(base, v)
    text = (f'model_config_list {{ config {{ name: "m" base_path: "{base}" '
            'model_platform: "tensorflow" model_version_policy { latest { num_versions: 2 } } '
            'version_labels { key: "stable" value: 1 } } }\n')
    config_file = tmp_path / "models.config"
    config_file.write_text(text)
    core = ServerCore(FakeLoader())
    core.configure(parse_model_config(text), allow_labels_for_unavailable_models=True)
    core.models["m"].poll()
    assert core.servable("m", label="stable") == (1, "model@1")
    _add_version(base, 3)
    core.models["m"].poll()  # latest 2 is now {2, 3}: 1 is unloaded, its label stays
    assert sorted(core.models["m"].available()) == [2, 3]
    err = _error(core.servable, "m", None, "stable")
    assert err.http_status == 404
    assert err.message == "Servable not found for request: Specific(m, 1)"
    core.check_labels(parse_model_config(text), allow_labels_for_unavailable_models=True)
    stop = threading.Event()  # without the flag, each re-read of the same file is refused
    watcher = threading.Thread(target=_watch_config,
                               args=(config_file, 0.01, core, text, False, stop))
    with caplog.at_level(logging.ERROR, "forgekit.serving"):
        watcher.start()
        try:
            for _ in range(500):
                if "not currently available" in caplog.text:
                    break
                stop.wait(0.01)
        finally:
            stop.set()
            watcher.join(10)
    assert ("Request to assign label to version 1 of model m, which is not currently "
            "available for inference") in caplog.text
    assert core.models["m"].resolve_label("stable") == 1  # the labels in force stay
