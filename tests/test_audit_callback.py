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


def test_a_nan_loss_or_a_refusing_store_never_stops_fit(tmp_path, caplog):
    """A diverging fit is recorded as it is (NaN kept), and a store that refuses every write
    costs warnings, never the training (issue 23: AuditCallback aborted fit on a NaN loss)."""
    import math

    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.full((8, 2), np.nan, dtype="float32")  # every loss is NaN
    y = np.zeros((8, 1), dtype="float32")
    db = tmp_path / "audit.sqlite"
    with open_store(db) as store:
        audit = AuditCallback(store, "diverged")
        history = model.fit(x, y, epochs=2, verbose=0, callbacks=[audit])
        assert len(history.history["loss"]) == 2 and audit.failures == []
        rows = store.query("SELECT epoch, value FROM metrics WHERE run_id = :r ORDER BY epoch",
                           r=audit.run_id)
        assert [r["epoch"] for r in rows] == [0, 1]
        assert all(math.isnan(float(r["value"])) for r in rows)
    with open_store(db, read_only=True) as reader, caplog.at_level("WARNING", "forgekit.audit"):
        audit = AuditCallback(reader, "not recorded")
        history = model.fit(x, y, epochs=2, verbose=0, callbacks=[audit])
    assert len(history.history["loss"]) == 2 and audit.run_id is None
    assert len(audit.failures) == 1 and "opened read-only" in audit.failures[0]
    assert "training continues" in caplog.text
