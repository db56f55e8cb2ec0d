"""AuditCallback records a real Keras fit: the run, its parameters and versions, every epoch."""

from __future__ import annotations

import json
import subprocess

import pytest

from forgekit.audit import AuditCallback, lineage, open_store
from forgekit.training import build_model, make_task
from tests.conftest import ROOT


@pytest.mark.slow
def test_callback_records_run_params_versions_and_every_epoch(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # inside the project's git checkout, if it is one
    task = make_task(n_train=64, n_val=64, n_features=8)
    model = build_model(task, width=4)
    with open_store(tmp_path / "audit.sqlite") as store:
        audit = AuditCallback(store, "tiny", params={"width": 4, "note": "test"})
        history = model.fit(task.x_train, task.y_train, validation_data=task.validation_data,
                            epochs=3, batch_size=32, verbose=0, callbacks=[audit])
        run = store.query("SELECT * FROM runs WHERE id = :r", r=audit.run_id)[0]
        assert run["name"] == "tiny" and run["status"] == "finished" and run["ended_at"]
        params = json.loads(run["params"])
        assert params["width"] == 4 and params["note"] == "test" and params["epochs"] == 3
        assert params["optimizer"] == "Adam" and params["parameters"] == model.count_params()
        versions = json.loads(run["versions"])
        assert {"python", "tensorflow", "keras", "numpy", "forgekit"} <= set(versions)
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=ROOT)
        assert run["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)

        rows = store.query("SELECT epoch, name, value FROM metrics WHERE run_id = :r "
                           "ORDER BY epoch, name", r=audit.run_id)
        assert len(rows) == 3 * len(history.history)
        for row in rows:  # exactly what Keras reported, epoch by epoch
            assert row["value"] == pytest.approx(history.history[row["name"]][row["epoch"]])

        export = tmp_path / "serving" / "1"
        model.export(export, verbose=False)
        store.record_deployment(model_name="tiny", version=1, path=export, run_id=audit.run_id)
        trace = lineage(store, "tiny", 1)
        assert trace.row["kind"] == "savedmodel" and trace.run_id == audit.run_id
        assert trace.final_metrics["val_loss"] == pytest.approx(history.history["val_loss"][-1])
