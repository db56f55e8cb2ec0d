"""forgekit.save and forgekit.serving.publish record into a real audit store when given one."""

from __future__ import annotations

import pytest

from forgekit.audit import open_store
from forgekit.audit.queries import lineage

pytestmark = pytest.mark.slow


@pytest.fixture
def model():
    import keras

    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    m.compile(optimizer="adam", loss="mse")
    return m


def test_save_and_publish_are_traced_to_their_run(model, tmp_path):
    import forgekit
    from forgekit.serving import publish

    store = open_store(tmp_path / "audit.sqlite")
    run = store.start_run("wiring", params={"width": 2})
    store.log_metrics(run, 0, {"loss": 0.5})
    info = forgekit.save(model, tmp_path / "m.keras", store=store, run_id=run)
    saved = store.query("SELECT kind, run_id FROM artifacts WHERE path = :p",
                        p=str((tmp_path / "m.keras").absolute()))
    assert saved == [{"kind": info.kind, "run_id": run}]

    record = publish(model, tmp_path / "models" / "wiring", store=store, run_id=run)
    traced = lineage(store, "wiring", record.version)
    assert traced.run_id == run and traced.run_name == "wiring"
    assert traced.final_metrics == {"loss": 0.5}
    store.close()
