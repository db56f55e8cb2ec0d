"""verify_deployment and ``forgekit verify``: each broken deployment fails for its named reason."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from forgekit.serving import InProcessServer
from forgekit.serving import deploy as dp
from forgekit.serving.config import ModelEntry, write_model_config
from forgekit.serving.record import load_record
from forgekit.serving.verify import verify_deployment
from tests.conftest import ROOT
from tests.test_deploy import FakeStore, tiny


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Models deployed right and wrong, served by one in-process server.

    flat: v1 published, the new model saved as model.h5 beside it (the article's incident);
    inplace: v1 published, the new model exported over folder 1; broken: v2 half-written;
    plain: v1 exported with plain model.export (no identity signature).
    """
    root = tmp_path_factory.mktemp("served")
    old, new = tiny(1.0), tiny(2.0)
    records = {name: dp.publish(old, root / name) for name in ("flat", "inplace", "broken")}
    old.export(str(root / "plain" / "1"), verbose=False)
    records["plain"] = dp.record_for(old, root / "plain", 1, canary_path=root / "plain.json")
    records["flat_new"] = dp.record_for(new, root / "flat", 2, canary_path=root / "f2.json")
    records["inplace_new"] = dp.record_for(new, root / "inplace", 1, canary_path=root / "i.json")
    records["broken_new"] = dp.record_for(new, root / "broken", 2, canary_path=root / "b.json")
    config = root / "models.config"
    write_model_config(config, [ModelEntry(n, root / n)
                                   for n in ("flat", "inplace", "broken", "plain")])
    # no load retries: the broken version is given up at once (TF Serving with this flag)
    server = InProcessServer(model_config_file=config, file_system_poll_wait_seconds=0.05,
                             extra_args=["--max_num_load_retries=0"])
    with server, server.client() as client:
        # months later, while v1 serves: the new model deployed the wrong ways
        new.save(root / "flat" / "model.h5")
        new.export(str(root / "inplace" / "1"), verbose=False)
        (root / "broken" / "2" / "variables").mkdir(parents=True)  # an export killed mid-write
        time.sleep(0.3)
        yield root, client, server, records, new


def test_the_flat_file_incident_is_a_stale_version(world):
    _, client, _, records, _ = world
    report = verify_deployment(client, "flat", records["flat_new"], wait=0.3)
    assert not report.ok and report.answering_version == 1
    assert {"version_missing", "stale_version", "canary_mismatch",
            "fingerprint_mismatch"} == set(report.problems), report
    assert report.max_canary_diff > 0.01
    assert "metadata model_spec.version = 1 for requests without a version, expected 2" \
        in report.text()


def test_an_in_place_overwrite_passes_the_version_check_and_fails_the_canary(world):
    _, client, _, records, _ = world
    report = verify_deployment(client, "inplace", records["inplace_new"])
    assert report.answering_version == 1 == report.expected_version
    assert set(report.problems) == {"canary_mismatch", "fingerprint_mismatch"}, report
    assert verify_deployment(client, "inplace", records["inplace"]).ok  # the old one answers


def test_a_failed_load_is_reported_with_the_servers_error(world):
    _, client, _, records, _ = world
    report = verify_deployment(client, "broken", records["broken_new"])
    assert "version_failed" in report.problems and "stale_version" in report.problems
    failed = next(c for c in report.checks if c.name == "version_failed")
    assert "NOT_FOUND: Could not find SavedModel .pb" in failed.detail


def test_missing_model_and_missing_identity_are_named(world):
    _, client, _, records, _ = world
    assert verify_deployment(client, "nope", records["flat"]).problems == ["model_missing"]
    plain = verify_deployment(client, "plain", records["plain"])
    assert plain.problems == ["identity_missing"], plain  # canary and version do match


def test_the_fix_passes_over_rest_and_grpc_and_reaches_the_store(world):
    root, client, server, _, new = world
    fixed = dp.publish(new, root / "flat")
    store = FakeStore()
    report = verify_deployment(client, "flat", fixed, wait=10, store=store)
    assert report.ok and report.problems == [], report
    with server.client("grpc") as grpc_client:
        assert verify_deployment(grpc_client, "flat", fixed).ok
    assert store.calls == [("record_verification", {
        "model_name": "flat", "version": 2, "ok": True, "detail": report.text()})]
    assert report.html().count("✓") == len(report.checks)


def test_a_changed_signature_is_named(world, tmp_path):
    root, client, _, records, _ = world
    wider = dp.record_for(tiny(1.0), root / "inplace", 1, canary_path=tmp_path / "c.json")
    wider.signature = {**wider.signature, "inputs": {"x": ["DT_FLOAT", [-1, 5]]}}
    assert "signature_changed" in verify_deployment(client, "inplace", wider).problems


def _verify_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "forgekit.cli", "verify", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_forgekit_verify_exit_codes(world, tmp_path):
    root, _, server, records, _ = world
    good = _verify_cli("--url", server.rest_url, "--expect", str(records["inplace"].record_path),
                       "--model", "inplace", "--html", str(tmp_path / "r.html"))
    assert good.returncode == 0, good.stdout + good.stderr
    assert ": OK" in good.stdout and (tmp_path / "r.html").read_text().startswith("<div")
    records["inplace_new"].save(tmp_path / "new.record.json")
    bad = _verify_cli("--url", server.grpc_url, "--expect", str(tmp_path / "new.record.json"))
    assert bad.returncode == 1 and "fingerprint_mismatch" in bad.stdout, bad.stdout + bad.stderr
    (tmp_path / "junk.json").write_text("not json")
    junk = _verify_cli("--url", server.rest_url, "--expect", str(tmp_path / "junk.json"))
    assert junk.returncode == 2 and "junk.json: not JSON" in junk.stderr
    doc = json.loads(records["inplace"].to_json())
    (tmp_path / "abc.json").write_text(json.dumps({**doc, "version": "abc"}))
    abc = _verify_cli("--url", server.rest_url, "--expect", str(tmp_path / "abc.json"))
    assert abc.returncode == 2 and "version is 'abc' (str)" in abc.stderr, abc.stderr
    wider = dp.record_for(tiny(1.0), root / "inplace", 1, canary_path=tmp_path / "w.json")
    wider.signature = {**wider.signature, "inputs": {"features": ["DT_FLOAT", [-1, 3]]}}
    wider.save(tmp_path / "wider.record.json")
    changed = _verify_cli("--url", server.rest_url, "--expect", str(tmp_path / "wider.record.json"),
                          "--model", "inplace")
    assert changed.returncode == 1 and "signature_changed" in changed.stdout, changed.stdout
    # published -> served: the record's input is gone, the served one is new
    assert "input 'features' removed" in changed.stdout and "input 'x' added" in changed.stdout


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("version", "abc", "version is 'abc' (str)"),
    ("version", 1.9, "version is 1.9 (float)"),
    ("version", True, "version is True (bool)"),
    ("version", 0, "version is 0 (int)"),
    ("fingerprint", "", "fingerprint is '' (str)"),
    ("model_name", None, "model_name is None"),
])
def test_a_record_that_cannot_be_verified_is_refused_not_misread(tmp_path, field, value,
                                                                 fragment):
    record = dp.PublishRecord("m", "/srv/m", 1, "/srv/m/1", "sha256:0", "/srv/c.json", "t")
    doc = {**json.loads(record.to_json()), field: value}
    (tmp_path / "r.json").write_text(json.dumps(doc))
    with pytest.raises(dp.DeployError, match="expected") as refused:
        load_record(tmp_path / "r.json")
    assert fragment in str(refused.value) and "r.json" in str(refused.value)


def test_an_unreachable_server_is_named_not_raised():
    from forgekit.serving import Client
    from forgekit.serving.process import free_port

    record = dp.PublishRecord("m", "/srv/m", 1, "/srv/m/1", "sha256:0", "/srv/c.json", "t")
    with Client(f"http://127.0.0.1:{free_port()}", timeout=2) as client:
        report = verify_deployment(client, "m", record, wait=0.3)
    assert report.problems == ["server_unreachable"] and not report.ok
    assert "UNAVAILABLE" in report.text()


def test_a_label_left_on_a_version_the_policy_unloaded_is_caught(tmp_path):
    """TF Serving checks labels only when it reads its config (UpdateModelVersionLabelMap):
    v1 unloaded by ``latest {num_versions: 2}`` keeps label ``stable``, whose requests then
    get NOT_FOUND, while the newest version verifies."""
    base = tmp_path / "m"
    records = {v: dp.publish(tiny(float(v)), base) for v in (1, 2)}
    config = tmp_path / "models.config"
    write_model_config(config, [ModelEntry("m", base, policy="latest", num_versions=2,
                                                 labels={"stable": 1, "canary": 2})])
    server = InProcessServer(model_config_file=config, file_system_poll_wait_seconds=0.05,
                             extra_args=["--allow_version_labels_for_unavailable_models"])
    with server, server.client() as client:
        before = verify_deployment(client, "m", records[2], labels={"stable": 1, "canary": 2},
                                   wait=20)
        assert before.ok, before
        records[3] = dp.publish(tiny(3.0), base)
        assert verify_deployment(client, "m", records[3], wait=20).ok  # the usual check passes
        deadline = time.monotonic() + 20  # v1 is unloaded right after v3 loads, in that scan
        while _state(client, "m", 1) != "END" and time.monotonic() < deadline:
            time.sleep(0.05)
        report = verify_deployment(client, "m", records[3], labels={"stable": 1, "canary": 2})
        assert set(report.problems) == {"label_unloaded"}, report
        assert "Servable not found for request: Specific(m, 1)" in report.text()
        moved = verify_deployment(client, "m", records[3], labels={"canary": 3})
        assert moved.problems == ["label_version"], moved
        by_label = verify_deployment(client, "m", records[1], label="stable")
        assert "label_unloaded" in by_label.problems, by_label


def _state(client, model, version):
    states = {s["version"]: s["state"] for s in client.status(model)["model_version_status"]}
    return states.get(str(version))
