"""The version lifecycle on live servers, as TF Serving's loader harness and manager define it.

* a failed load is retried ``--max_num_load_retries`` times ``--load_retry_interval_micros``
  apart (core/loader_harness.cc, util/retrier.cc), reported LOADING meanwhile, then END;
* a restarted server or a second replica loads what the folder holds *now*: after an in-place
  overwrite, two replicas answer differently under the same version number;
* unloading many versions (a reload removing models, a shutdown) collects garbage once.
"""

from __future__ import annotations

import gc
import shutil
import time

import numpy as np

from forgekit.serving import InProcessServer
from forgekit.serving import deploy as dp
from forgekit.serving.config import ModelEntry, write_model_config
from forgekit.serving.core import ServerCore
from forgekit.serving.verify import verify_deployment
from forgekit.serving.versions import ModelConfig
from tests.test_deploy import tiny


def _state(client, name: str, version: int) -> dict:
    return next((s for s in client.status(name)["model_version_status"]
                 if s["version"] == str(version)), {})


def _wait_state(client, name: str, version: int, state: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while (found := _state(client, name, version)).get("state") != state:
        assert time.monotonic() < deadline, found
        time.sleep(0.02)
    return found


def test_a_version_still_being_copied_loads_on_a_retry(tmp_path):
    """A slow copy or upload seen half-done: LOADING (status OK) while retried, then served."""
    export = tiny(2.0)
    export.export(str(tmp_path / "export"), verbose=False)
    base = tmp_path / "m"
    dp.publish(tiny(1.0), base)
    with InProcessServer(base, "m", file_system_poll_wait_seconds=0.05,
                         extra_args=["--load_retry_interval_micros=200000",
                                     "--max_num_load_retries=100"]) as server, \
            server.client() as client:
        shutil.copytree(tmp_path / "export" / "variables", base / "2" / "variables")
        deadline = time.monotonic() + 20
        while "Loading servable: {name: m version: 2} failed" not in server.log_text():
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.02)
        state = _state(client, "m", 2)
        assert state["state"] == "LOADING" and state["status"]["error_code"] == "OK", state
        assert client.metadata("m")["model_spec"]["version"] == "1"  # v1 keeps answering
        shutil.copy(tmp_path / "export" / "saved_model.pb", base / "2")  # the copy completes
        _wait_state(client, "m", 2, "AVAILABLE")
        assert "Retrying of Loading servable: {name: m version: 2} retry: 1" in server.log_text()
        x = np.ones((1, 3), np.float32)
        served = client.predict("m", inputs={"x": x.tolist()})["outputs"]
        assert np.allclose(served, export.predict(x, verbose=0), atol=1e-5)


def test_retries_run_out_into_end_with_the_load_error(tmp_path):
    base = tmp_path / "m"
    dp.publish(tiny(1.0), base)
    with InProcessServer(base, "m", file_system_poll_wait_seconds=0.05,
                         extra_args=["--load_retry_interval_micros=50000",
                                     "--max_num_load_retries=2"]) as server, \
            server.client() as client:
        (base / "2" / "variables").mkdir(parents=True)  # an export killed mid-write
        state = _wait_state(client, "m", 2, "END")
        assert state["status"]["error_code"] == "NOT_FOUND", state
        log = server.log_text()
        assert log.count("Loading servable: {name: m version: 2} failed") == 3  # 1 + 2 retries
        assert "exhausted max_num_load_retries: 2" in log
        time.sleep(0.3)  # given up: never loaded again while it stays the newest folder
        assert server.log_text().count("Loading servable: {name: m version: 2} failed") == 3
        assert client.metadata("m")["model_spec"]["version"] == "1"


def test_two_replicas_answer_differently_under_the_same_version_number(tmp_path):
    """One server started before an in-place overwrite, one after: both say version 1."""
    base = tmp_path / "m"
    v1 = dp.publish(tiny(1.0), base)
    x = v1.canary().inputs["x"]
    with InProcessServer(base, "m", file_system_poll_wait_seconds=0.05) as before, \
            before.client() as old_client:
        tiny(4.0).export(str(base / "1"), verbose=False)  # over the folder being served
        time.sleep(0.3)  # six scans: the running server never reloads a number it has
        with InProcessServer(base, "m", file_system_poll_wait_seconds=0.05) as after, \
                after.client() as new_client:
            versions = [c.metadata("m")["model_spec"]["version"] for c in (old_client,
                                                                           new_client)]
            answers = [np.array(c.predict("m", inputs={"x": x})["outputs"])
                       for c in (old_client, new_client)]
            reports = [verify_deployment(c, "m", v1) for c in (old_client, new_client)]
    assert versions == ["1", "1"]
    assert np.max(np.abs(answers[0] - answers[1])) > 1e-2
    assert reports[0].ok, reports[0]
    # the plain export over folder 1 answers other outputs, and no publish identity
    assert {"canary_mismatch", "identity_missing"} == set(reports[1].problems), reports[1]
    assert "stale_version" not in reports[1].problems  # the number cannot tell them apart


def test_a_reload_removing_many_models_collects_garbage_once(tmp_path, monkeypatch):
    bases = []
    for i in range(200):
        (tmp_path / f"m{i}" / "1").mkdir(parents=True)
        bases.append(ModelConfig(f"m{i}", tmp_path / f"m{i}"))
    core = ServerCore(lambda path: object())
    core.configure(bases)
    core.poll([c.name for c in bases])
    collections = []
    monkeypatch.setattr(gc, "collect", lambda *a: collections.append(a) or 0)
    core.configure(bases[:1])  # 199 models removed by one reload
    assert len(collections) == 1
    assert core.models["m0"].available() == {1}


def test_a_symlink_loop_base_path_neither_stops_start_up_nor_the_other_models(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    good = tmp_path / "good"
    dp.publish(tiny(1.0), good)
    config = tmp_path / "models.config"
    write_model_config(config, [ModelEntry("loop", tmp_path / "loop"),
                                   ModelEntry("good", good)])
    with InProcessServer(model_config_file=config, file_system_poll_wait_seconds=0.05) as server, \
            server.client() as client:
        time.sleep(0.2)  # a few poll rounds with the loop listed first
        dp.publish(tiny(2.0), good)  # a model listed after the loop still gets new versions
        _wait_state(client, "good", 2, "AVAILABLE")
        log = server.log_text()
    assert "Could not find base path" in log and "Too many levels of symbolic links" in log
    assert "Traceback" not in log and "RuntimeError" not in log
