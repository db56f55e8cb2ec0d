"""forgekit.serving.deploy: versioned atomic publish, records, models.config, rollback, kills."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from forgekit.serving import InProcessServer, ServingError
from forgekit.serving import deploy as dp
from forgekit.serving.config import (
    ModelEntry,
    model_config_text,
    read_model_config,
    write_model_config,
)
from forgekit.serving.record import load_record
from forgekit.serving.rollback import rollback
from forgekit.serving.verify import verify_deployment
from tests.conftest import ROOT


def tiny(scale: float = 1.0, width: int = 4):
    import keras

    model = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(width),
                              keras.layers.Dense(1)])
    model.set_weights([scale * np.linspace(-1, 1, w.size, dtype=np.float32).reshape(w.shape)
                       for w in model.get_weights()])
    return model


class FakeStore:
    """Duck-typed audit trail: records the exact calls publish/verify make."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def record_deployment(self, **kwargs):
        self.calls.append(("record_deployment", kwargs))
        return 41

    def record_verification(self, **kwargs):
        self.calls.append(("record_verification", kwargs))
        return 42


def test_publish_numbers_versions_and_never_overwrites_one(tmp_path):
    base = tmp_path / "m"
    first = dp.publish(tiny(1.0), base)
    second = dp.publish(tiny(2.0), base)
    assert (first.version, second.version) == (1, 2)
    assert sorted(p.name for p in base.iterdir()) == ["1", "2", "_forgekit"]  # no temp left
    assert first.fingerprint != second.fingerprint
    assert first.model_name == "m" and first.path == str(base / "1")
    assert first.published_at.endswith("+00:00")  # ISO 8601, UTC
    before = sorted(os.listdir(base / "1"))
    with pytest.raises(dp.DeployError, match="version 1 already exists.*next free number"):
        dp.publish(tiny(3.0), base, version=1)
    assert sorted(os.listdir(base / "1")) == before
    assert load_record(base, 2).fingerprint == second.fingerprint
    assert load_record(second.record_path).version == 2


def test_publish_keeps_serving_default_as_model_export_writes_it(tmp_path):
    import tensorflow as tf

    from forgekit.serving.servable import read_meta_graph

    model = tiny(0.5)
    model.export(str(tmp_path / "plain"), verbose=False)
    record = dp.publish(model, tmp_path / "base")
    plain = read_meta_graph(tmp_path / "plain", ["serve"]).signature_def
    ours = read_meta_graph(Path(record.path), ["serve"]).signature_def
    assert ours["serving_default"] == plain["serving_default"]
    assert set(ours) == set(plain) | {dp.IDENTITY_SIGNATURE}
    loaded = tf.saved_model.load(record.path)
    canary = record.canary()
    served = loaded.signatures["serving_default"](x=tf.constant(canary.inputs["x"]))
    np.testing.assert_allclose(served["output_0"].numpy(), canary.outputs["output_0"], rtol=1e-6)
    ident = loaded.signatures[dp.IDENTITY_SIGNATURE](probe=tf.constant([0, 0]))
    assert ident["fingerprint"].numpy()[1].decode() == record.fingerprint
    assert ident["version"].numpy().tolist() == [1, 1]
    assert record.saved_model_fingerprint == \
        tf.saved_model.experimental.read_fingerprint(record.path).singleprint()


def test_fingerprint_is_the_weights_not_the_layer_names():
    assert dp.fingerprint(tiny(1.0)) == dp.fingerprint(tiny(1.0))  # names dense_1 vs dense_3
    assert dp.fingerprint(tiny(1.0)) != dp.fingerprint(tiny(1.0 + 1e-6))


def test_publish_reports_to_the_store_with_the_agreed_call(tmp_path):
    store = FakeStore()
    record = dp.publish(tiny(), tmp_path / "m", model_name="demo", store=store, run_id="run-7")
    assert store.calls == [("record_deployment", {
        "model_name": "demo", "version": 1, "path": str(tmp_path / "m" / "1"), "run_id": "run-7"})]
    assert record.deployment_id == 41 and load_record(record.record_path).deployment_id == 41


def test_bad_records_are_named_with_the_fix(tmp_path):
    (tmp_path / "r.json").write_text("[1, 2]")
    with pytest.raises(dp.DeployError, match="r.json: JSON list, expected a publish record"):
        load_record(tmp_path / "r.json")
    (tmp_path / "r.json").write_text('{"model_name": "m"}')
    with pytest.raises(dp.DeployError, match="without .*'fingerprint'"):
        load_record(tmp_path / "r.json")
    with pytest.raises(dp.DeployError, match="no such file"):
        load_record(tmp_path, version=3)


def test_model_config_is_written_with_the_official_protos_and_read_back(tmp_path):
    from forgekit.serving.config import parse_model_config

    text = write_model_config(tmp_path / "models.config", [
        ModelEntry("a", tmp_path / "a", "specific", (1, 3), labels={"stable": 1}),
        ModelEntry("b", tmp_path / "b", "latest", num_versions=2)])
    models = parse_model_config(text)
    assert [(m.name, m.policy.kind, sorted(m.policy.versions), dict(m.labels)) for m in models] \
        == [("a", "specific", [1, 3], {"stable": 1}), ("b", "latest", [], {})]
    assert models[1].policy.num_versions == 2
    assert read_model_config(tmp_path / "models.config")[0].versions == (1, 3)
    with pytest.raises(dp.DeployError, match="policy 'newest'"):
        model_config_text([ModelEntry("a", tmp_path, "newest")])
    with pytest.raises(dp.DeployError, match="Illegal to list model a multiple times"):
        model_config_text([ModelEntry("a", tmp_path), ModelEntry("a", tmp_path)])


# ----------------------------------------------------------------------------- with a server


@pytest.fixture
def served(tmp_path):
    """An in-process server on a models.config with model 'm' (latest policy), polling fast."""
    base = tmp_path / "m"
    v1 = dp.publish(tiny(1.0), base)
    config = tmp_path / "models.config"
    write_model_config(config, [ModelEntry("m", base)])
    server = InProcessServer(model_config_file=config, file_system_poll_wait_seconds=0.05,
                             extra_args=["--model_config_file_poll_wait_seconds=1"])
    with server, server.client() as client:
        yield server, client, base, config, v1


def test_a_version_overwritten_in_place_is_never_reloaded(served):
    server, client, base, _, v1 = served
    x = v1.canary().inputs["x"]
    before = client.predict("m", inputs={"x": x})["outputs"]
    tiny(7.0).export(str(base / "1"), verbose=False)  # the new model, into the served folder
    time.sleep(0.5)  # ten poll intervals
    assert client.predict("m", inputs={"x": x})["outputs"] == before
    assert client.status("m")["model_version_status"][0]["state"] == "AVAILABLE"
    assert "Loading servable version {name: m version: 1}" in server.log_text()
    assert server.log_text().count("Loading servable version {name: m version: 1}") == 1


def test_rollback_by_policy_and_by_label_is_verified(served):
    _, client, base, config, v1 = served
    store = FakeStore()
    v2 = dp.publish(tiny(2.0), base)
    assert verify_deployment(client, "m", v2, wait=10, store=store).ok
    back = rollback(config, "m", 1, client=client, wait=10)
    assert back.report.ok and back.report.answering_version == 1, back.report
    assert "specific" in back.config_text
    labelled = rollback(config, "m", 2, label="stable", client=client, wait=10)
    assert labelled.report.ok, labelled.report
    assert read_model_config(config)[0].labels == {"stable": 2}
    assert client.metadata("m")["model_spec"]["version"] == "2"  # newest of specific [1, 2]
    assert store.calls == [("record_verification", {
        "model_name": "m", "version": 2, "ok": True,
        "detail": store.calls[0][1]["detail"]})]
    with pytest.raises(dp.DeployError, match="no such version folder"):
        rollback(config, "m", 9)


def test_a_plain_export_killed_mid_write_leaves_a_version_the_server_keeps_retrying(
        served, tmp_path):
    from forgekit.serving.crash import killed_deploy

    server, client, base, _, v1 = served
    tiny(3.0).save(tmp_path / "new.keras")
    run = killed_deploy(tmp_path / "new.keras", base, how="export")
    assert run.killed, run.stderr
    assert "2" in run.entries and not (base / "2" / "saved_model.pb").exists()
    deadline = time.monotonic() + 10
    while "Loading servable: {name: m version: 2} failed" not in server.log_text():
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.05)
    time.sleep(0.3)  # six scans: TF Serving's harness retries a minute later, not per scan
    states = {s["version"]: s for s in client.status("m")["model_version_status"]}
    # TF Serving's defaults (5 retries, 60 s apart): LOADING, status OK, for minutes
    assert states["2"]["state"] == "LOADING" and states["2"]["status"]["error_code"] == "OK"
    assert server.log_text().count("Loading servable: {name: m version: 2} failed") == 1
    assert verify_deployment(client, "m", v1).ok  # the previous version keeps answering


# ----------------------------------------------------------------------------- SIGKILL trials

ZYGOTE = textwrap.dedent("""
    import json, os, sys
    import forgekit
    forgekit.quiet_tf()
    import keras, numpy as np, tensorflow  # imported once; each trial forks before any op runs
    from forgekit.serving import deploy
    print("ready", flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        if job["cmd"] == "reap":
            _, status = os.waitpid(job["pid"], 0)
            print(json.dumps({"status": status}), flush=True)
            continue
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                model = keras.Sequential([keras.Input((3,), name="x"),
                                         keras.layers.Dense(4), keras.layers.Dense(1)])
                model.set_weights([job["scale"] * np.ones_like(w) for w in model.get_weights()])
                os.write(1, b"go\\n")
                if job["cmd"] == "publish":
                    deploy.publish(model, job["base"], model_name=job["name"])
                else:  # the plain call, straight into the next numeric folder
                    model.export(os.path.join(job["base"], str(job["version"])), verbose=False)
            except BaseException:
                code = 1
            os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
""")


class Zygote:
    """A child that imported TensorFlow once and forks one deployment per trial (~1 s each)."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        assert self._line() == "ready"

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        assert line, "zygote died"
        return line.strip()

    def trial(self, kill_after: float | None, *, once: Path | None = None, **job) -> int:
        """Run one deployment; SIGKILL it ``kill_after`` s after it starts (or after ``once``
        exists). Returns the wait status."""
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        pid = json.loads(self._line())["pid"]
        assert self._line() == "go"  # the model is built: the deployment starts now
        if once is not None:
            deadline = time.monotonic() + 30
            while not once.exists() and time.monotonic() < deadline:
                time.sleep(0.002)
        if kill_after is not None:
            time.sleep(kill_after)
            os.kill(pid, signal.SIGKILL)  # not reaped yet, so the pid cannot be reused
        self.proc.stdin.write(json.dumps({"cmd": "reap", "pid": pid}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line())["status"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


def dp_versions(base):
    from forgekit.formats.serving_base import version_numbers

    return version_numbers(base)


def _states(client, name):
    return {int(s["version"]): s for s in client.status(name)["model_version_status"]}


@pytest.mark.slow
def test_publish_killed_at_random_points_never_shows_a_broken_version(tmp_path):
    """>= 20 real SIGKILLs at random moments of publish; a watching server never falters.

    The same harness killing the plain ``model.export`` while it writes into the next numeric
    folder leaves versions the server fails to load: the checks below can see a broken one.
    """
    pub, plain = tmp_path / "pub", tmp_path / "plain"
    dp.publish(tiny(1.0), pub, model_name="pub")
    tiny(1.0).export(str(plain / "1"), verbose=False)
    config = tmp_path / "models.config"
    write_model_config(config, [ModelEntry("pub", pub), ModelEntry("plain", plain)])
    rng = random.Random(20)
    answers: list[object] = []
    stop = threading.Event()
    zygote = Zygote()
    # no load retries: a broken version is reported failed at once, not retried for minutes
    with InProcessServer(model_config_file=config, file_system_poll_wait_seconds=0.05,
                         extra_args=["--max_num_load_retries=0"]) as server, \
            server.client() as client:

        def ask() -> None:  # a client asking all the time: every answer must be a version
            while not stop.is_set():
                try:
                    answers.append(int(client.metadata("pub")["model_spec"]["version"]))
                except ServingError as err:
                    answers.append(err)
                time.sleep(0.01)

        asker = threading.Thread(target=ask, daemon=True)
        asker.start()
        started = time.perf_counter()
        assert zygote.trial(None, cmd="publish", base=str(pub), name="pub", scale=2.0) == 0
        full = time.perf_counter() - started  # one whole publish, to spread kills over
        killed = committed = 0
        for i in range(20):
            before = set(dp_versions(pub))
            status = zygote.trial(rng.uniform(0, full), cmd="publish", base=str(pub),
                                  name="pub", scale=3.0 + i)
            killed += os.WIFSIGNALED(status)
            added = set(dp_versions(pub)) - before
            assert len(added) <= 1 and (not added or min(added) > max(before)), (before, added)
            committed += bool(added)
            newest = max(before | added)
            deadline = time.monotonic() + 10  # the newest visible version must load
            while _states(client, "pub").get(newest, {}).get("state") != "AVAILABLE":
                assert time.monotonic() < deadline, (i, _states(client, "pub"))
                time.sleep(0.02)
            assert all(s["status"]["error_code"] == "OK" for s in _states(client, "pub").values())
        plain_broken = 0
        for i in range(3):  # killed while it writes: its folder is already visible
            version = dp.next_version(plain)
            zygote.trial(rng.uniform(0, 0.01), once=plain / str(version), cmd="export",
                         base=str(plain), version=version, scale=3.0 + i)
            time.sleep(0.3)
            state = _states(client, "plain").get(version, {})
            plain_broken += state.get("status", {}).get("error_code", "OK") != "OK"
        stop.set()
        asker.join()
    zygote.close()
    errors = [a for a in answers if not isinstance(a, int)]
    assert killed >= 5 and not errors, (killed, errors[:3])
    assert answers == sorted(answers), "the answering version went backwards"
    assert committed >= 1 and killed >= 1
    assert plain_broken >= 1, "no plain export was killed mid-write: the kills prove nothing"
    print(f"\npublish: {killed}/20 killed, {committed} committed; plain export: "
          f"{plain_broken}/3 left a version that failed to load; {len(answers)} answers")


def test_in_process_server_reports_a_start_up_failure_and_stops_cleanly(tmp_path):
    with pytest.raises(RuntimeError, match="NOT_FOUND.*missing.config"):
        InProcessServer(model_config_file=tmp_path / "missing.config").start()
    dp.publish(tiny(), tmp_path / "m")
    server = InProcessServer(tmp_path / "m", model_name="m").start()
    assert server.running and server.pid == os.getpid()
    assert server.stop() == 0 and not server.running
    assert "Successfully loaded servable version {name: m version: 1}" in server.log_text()


def test_verify_and_its_cli_import_no_tensorflow():
    code = ("import sys, forgekit.cli, forgekit.serving.verify, forgekit.serving.deploy; "
            "sys.exit('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_version_numbers_are_claimed_once_and_a_killed_claim_is_skipped(tmp_path):
    base = tmp_path / "m"
    assert [dp._reserve(base, None) for _ in range(3)] == [1, 2, 3]  # three publishers at once
    with pytest.raises(dp.DeployError, match="version 2 was claimed by another publish"):
        dp._reserve(base, 2)
    with pytest.raises(dp.DeployError, match="never completed; nothing was deployed"):
        load_record(base, 2)
    record = dp.publish(tiny(), base)  # 1-3 were claimed by publishes that never finished
    assert record.version == 4 and dp_versions(base) == [4]


def test_publish_killed_just_before_its_rename_leaves_nothing_numbered(tmp_path):
    from forgekit.serving.crash import killed_deploy

    base = tmp_path / "m"
    dp.publish(tiny(1.0), base)
    tiny(2.0).save(tmp_path / "new.keras")
    run = killed_deploy(tmp_path / "new.keras", base, how="publish", kill_at="commit")
    assert run.killed, run.stderr
    assert dp_versions(base) == [1]  # the export was complete, but never renamed into place
    assert any(name.startswith(dp.TEMP_PREFIX) for name in run.entries)
    assert dp.publish(tiny(3.0), base).version == 3  # number 2 was claimed: skipped, not reused
    assert not any(p.name.startswith(dp.TEMP_PREFIX) for p in base.iterdir())


# ----------------------------------------------------------------------------- contract, bad input


def renamed(name: str = "features", features: int = 3):
    import keras

    return keras.Sequential([keras.Input((features,), name=name), keras.layers.Dense(1)])


def test_publish_refuses_a_serving_signature_change_unless_allowed(tmp_path):
    base = tmp_path / "m"
    dp.publish(tiny(1.0), base)
    (base / "2").mkdir()  # a killed export no server can load: not what answers
    with pytest.raises(dp.DeployError) as refused:
        dp.publish(renamed(), base)
    message = str(refused.value)
    assert "serving signature changed" in message and "version 1 (answering now)" in message
    assert "input 'x' removed" in message and "input 'features' added" in message
    assert "allow_signature_change=True" in message
    assert sorted(p.name for p in base.iterdir()) == ["1", "2", "_forgekit"]  # nothing visible
    assert sorted(p.name for p in (base / "_forgekit").iterdir()) == [
        "1.canary.json", "1.record.json"]  # the number was given back
    with pytest.raises(dp.DeployError, match=r"input 'x' was float\[-1, 3\], now float\[-1, 4\]"):
        dp.publish(renamed("x", features=4), base)

    allowed = dp.publish(renamed(), base, allow_signature_change=True)
    assert allowed.version == 3
    assert allowed.signature_change["from_version"] == 1
    assert "input 'features' added (float[-1, 3])" in allowed.signature_change["differences"]
    assert load_record(base, 3).signature_change == allowed.signature_change
    assert dp.publish(renamed(), base).signature_change is None  # same contract as version 3


@pytest.mark.parametrize("version", [1.5, "2", True, 0, 2 ** 63])
def test_publish_refuses_a_version_that_is_not_a_whole_int64(tmp_path, version):
    with pytest.raises(dp.DeployError, match="version="):
        dp.publish(tiny(), tmp_path / "m", version)
    assert not (tmp_path / "m" / "1").exists()


def test_publish_names_a_base_path_that_is_a_file_or_under_one(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(dp.DeployError, match="found a file, expected a folder"):
        dp.publish(tiny(), tmp_path / "file")
    with pytest.raises(dp.DeployError, match=r"file is a file"):
        dp.publish(tiny(), tmp_path / "file" / "m")
    assert (tmp_path / "file").read_text() == "not a folder"


def test_a_folder_number_beyond_int64_is_not_a_version(tmp_path):
    base = tmp_path / "m"
    (base / ("9" * 20)).mkdir(parents=True)  # TF Serving cannot parse it: not a version
    assert dp.next_version(base) == 1
    assert dp.publish(tiny(), base).version == 1
