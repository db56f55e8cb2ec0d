"""forgekit.widgets, headless: set the controls, click the buttons, check state, files, outputs.

The serving timeline runs against a real local server (in-process, as lessons 06 and 07 run it).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from forgekit.quiet import child_env
from forgekit.widgets import (
    FormatExplorer,
    LoaderPlayground,
    ServingTimeline,
    WidgetError,
    base,
    close_all,
)
from forgekit.widgets.base import FALLBACK, Explorer
from forgekit.widgets.loader_playground import _describe

PNG = b"\x89PNG"


def test_importing_the_widgets_imports_neither_tensorflow_nor_ipywidgets():
    code = ("import sys, json, forgekit, forgekit.widgets as w\n"
            "w.FormatExplorer, w.LoaderPlayground, w.ServingTimeline\n"
            "print(json.dumps([m for m in ('tensorflow', 'keras', 'ipywidgets') "
            "if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=child_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    import forgekit

    assert "widgets" in dir(forgekit)


def test_display_gives_the_widget_and_a_static_fallback(tmp_path):
    with LoaderPlayground(tmp_path, prefetch=False) as lp:
        bundle = lp._repr_mimebundle_()
        assert "model_id" in bundle["application/vnd.jupyter.widget-view+json"]
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == lp.ui.model_id
        assert FALLBACK in bundle["text/plain"] and "Loader playground" in bundle["text/plain"]
        assert "forgekit-widget-fallback" in bundle["text/html"]
        assert "JupyterLab or on Binder" in bundle["text/html"]
    assert lp.closed and not (tmp_path / "loaders").exists()
    first = LoaderPlayground(tmp_path, prefetch=False)
    again = LoaderPlayground(tmp_path, prefetch=False)  # the same cell run twice
    assert first.closed and not again.closed and again.root.is_dir()
    again.close()


def test_bad_input_names_what_and_the_fix(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(WidgetError) as err:
        FormatExplorer(blocker / "explorer")
    assert str(blocker) in str(err.value) and err.value.fix
    with pytest.raises(WidgetError) as err:
        FormatExplorer(tmp_path, formats=["keras", "pickle"])
    assert "'pickle'" in str(err.value) and "h5_model" in err.value.expected
    with LoaderPlayground(tmp_path, prefetch=False) as lp:
        with pytest.raises(WidgetError) as err:
            lp.try_load("keras", "torch.load")
        assert "load_model" in err.value.expected and err.value.fix
        with pytest.raises(WidgetError) as err:
            lp.try_load("model.pkl", "load_model")
        assert "misnamed" in err.value.expected

    from forgekit.serving import process

    def refuse(self):
        raise RuntimeError("forgekit serve (in-process) stopped while starting: port in use")

    monkeypatch.setattr(process.InProcessServer, "start", refuse)
    with pytest.raises(WidgetError) as err:
        ServingTimeline(tmp_path / "t")
    assert "did not start" in str(err.value) and "port in use" in str(err.value)
    assert err.value.fix
    # the half-built timeline is not left registered, nor its folder
    assert not any(isinstance(e, ServingTimeline) for e in base._OPEN)
    assert not (tmp_path / "t" / "serving").exists()
    close_all()


def test_a_failing_constructor_leaves_the_open_explorer_alone(tmp_path):
    fx = FormatExplorer(tmp_path)
    (fx.root / "kept.txt").write_text("the learner's explorer is still working")
    with pytest.raises(WidgetError):
        FormatExplorer(tmp_path, formats=["keras", "nope"])
    with pytest.raises(WidgetError):
        FormatExplorer(tmp_path, units=0)
    assert not fx.closed and (fx.root / "kept.txt").is_file()
    assert [e for e in base._OPEN if isinstance(e, FormatExplorer)] == [fx]  # nothing half-built
    lp = LoaderPlayground(tmp_path, prefetch=False)
    with pytest.raises(WidgetError):
        LoaderPlayground(tmp_path, artifacts=["keras", "model.pkl"])
    assert not lp.closed and [e for e in base._OPEN if isinstance(e, LoaderPlayground)] == [lp]
    fx.close()
    lp.close()


def test_close_all_closes_every_explorer_even_when_one_fails_to_release(tmp_path):
    class Stuck(Explorer):
        folder = "stuck"

        def _release(self):
            raise RuntimeError("the server did not stop")

    stuck, fine = Stuck(tmp_path), LoaderPlayground(tmp_path, prefetch=False)
    with pytest.raises(WidgetError) as err:
        close_all()
    assert "the server did not stop" in str(err.value)
    assert stuck.closed and fine.closed and not base._OPEN
    assert not stuck.root.exists() and not fine.root.exists()  # folders removed all the same


def test_reading_predictions_allows_float_noise():
    same = _describe(object(), lambda value: 1.19e-07)  # a SavedModel graph's rounding
    assert "the same predictions as the model that was saved (max |Δ| 1.2e-07)" in same
    differ = _describe(object(), lambda value: 1e-3)
    assert "predictions differ from those of the model that was saved by up to 0.001" in differ


def test_format_explorer_saves_for_real_and_measures(tmp_path):
    fx = FormatExplorer(tmp_path, units=8)
    ui = fx.ui
    fx.size_slider.value, fx.format_picker.value, fx.optimizer_box.value = 8, "h5_model", False
    fx.button.click()
    without = fx.history[-1]
    assert ui is fx.ui and fx.status_text.startswith("done")
    assert without.path.is_file() and without.path.stat().st_size == without.size_bytes
    assert without.files == [("model.h5", without.size_bytes)]
    assert without.probe.optimizer_restored is False
    assert "passed to legacy .h5 and used" in fx.note.value
    assert "What survived" in fx.result.value and bytes(fx.chart.value).startswith(PNG)
    # every offered format measured at this size, for the chart
    assert set(without.sizes) == {f.label for f in fx.formats.values()}
    assert all(size > 0 for size in without.sizes.values())

    with_opt = fx.run(units=8, fmt="legacy .h5", include_optimizer=True)
    assert with_opt.size_bytes > without.size_bytes  # the optimizer's slots are in the file
    assert with_opt.probe.compile_restored and not without.probe.compile_restored

    # .keras accepts include_optimizer and ignores it: the state still comes back
    fx._measure = None  # the sizes at (8, False) are cached: no other format is saved again
    keras_run = fx.run(units=8, fmt="keras", include_optimizer=False)
    assert keras_run.probe.optimizer_restored is True
    assert "IGNORED" in keras_run.optimizer_note
    assert keras_run.survived().rows[0][1] == "✓"  # architecture
    assert "model.keras" in keras_run.tree()
    fig = keras_run.figure()
    colors = [bar.get_facecolor() for bar in fig.axes[0].patches]
    mine = colors[list(keras_run.sizes).index(".keras")]
    assert colors.count(mine) == 1 and len(colors) == len(keras_run.sizes)  # this run stands out
    fx.close()
    fx.close()
    assert not (tmp_path / "formats").exists() and fx.button.disabled


def test_loader_playground_runs_the_real_call_beside_the_diagnosis(tmp_path):
    import keras

    lp = LoaderPlayground(tmp_path)
    right = lp.try_load("keras", "load_model")
    assert right.ok and "the same predictions as the model that was saved" in right.returned
    wrong = lp.try_load("savedmodel", "keras.models.load_model")  # a name works as well as a key
    assert not wrong.ok and wrong.error_type == "ValueError"
    assert "TFSMLayer" in wrong.message and "this is savedmodel" in wrong.forgekit_says
    misnamed = lp.try_load("misnamed", "load_model")
    assert not misnamed.ok and misnamed.diagnosis.kind == "h5_model"
    assert "File not found" in misnamed.message and "compile" not in misnamed.forgekit_says
    renamed = shutil.copy(lp.path("misnamed"), tmp_path / "renamed.h5")
    assert keras.models.load_model(renamed) is not None  # the name was the only problem
    too_low = lp.try_load("too_low", "saved_model_load")
    assert not too_low.ok and too_low.diagnosis.fix.endswith("export')")
    keras2 = lp.try_load("keras2", "load_model")  # the file is written in a fresh process
    assert not keras2.ok and keras2.diagnosis.info.keras2
    bridge = lp.try_load("keras2", "load_weights")
    assert bridge.ok and "the same predictions" in bridge.returned
    assert all(attempt.agrees for attempt in lp.history), [
        (a.artifact.key, a.loader.key) for a in lp.history if not a.agrees]

    assert lp.ui is not None  # builds the view
    busy = threading.Event()
    writer, lp._keras2 = lp._keras2, threading.Thread(target=busy.wait)  # a write in progress
    lp._keras2.start()
    lp.artifact_picker.value, lp.loader_picker.value = "keras2", "load_model"
    before = len(lp.history)
    lp.button.click()  # returns at once: the kernel is not blocked on the fresh process
    assert len(lp.history) == before and "still being written" in lp.status_text
    busy.set()
    lp._keras2.join()
    lp._keras2 = writer
    lp.artifact_picker.value, lp.loader_picker.value = "too_low", "tfsm_layer"
    lp.button.click()
    assert lp.history[-1].loader.key == "tfsm_layer" and not lp.history[-1].ok
    assert "What really happened" in lp.result.value and "forgekit doctor" in lp.result.value
    assert lp.history[-1].message[:40] in lp.result.value.replace("&#x27;", "'")
    served = lp.try_load("savedmodel", "tfsm_layer")  # another graph: float noise at most
    assert served.ok and "the same predictions" in served.returned, served.returned
    lp.close()


def test_a_rerun_playground_kills_the_keras2_writer_instead_of_waiting(tmp_path):
    lp = LoaderPlayground(tmp_path)  # prefetch: a fresh tf-keras process starts at once
    deadline = time.monotonic() + 60
    while lp._writer is None and time.monotonic() < deadline:
        time.sleep(0.01)
    writer = lp._writer
    assert writer is not None and writer.poll() is None  # importing TF: seconds from done
    started = time.perf_counter()
    again = LoaderPlayground(tmp_path, prefetch=False)  # the same cell run again
    print(f"re-run while the writer runs: {time.perf_counter() - started:.2f} s")
    assert lp.closed and writer.returncode == -signal.SIGKILL  # killed, not waited for
    assert not lp._keras2.is_alive() and lp._writer is None
    assert "closed" in str(lp._keras2_error)
    assert again.root.is_dir() and not (again.root / "keras2").exists()
    again.close()

    early = LoaderPlayground(tmp_path)  # closed before its thread may even start the process
    early.close()
    assert not early._keras2.is_alive() and early._writer is None
    assert not early.root.exists()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_serving_timeline_against_a_real_server(tmp_path, monkeypatch):
    tl = ServingTimeline(tmp_path, model_name="demo", poll_seconds=0.2)
    port = tl.server.rest_api_port
    assert _port_open(port)
    for bad in ({"workdir": tmp_path / "a-file" / "x"}, {"model_name": "a b"}):
        (tmp_path / "a-file").write_text("not a folder")
        with pytest.raises(WidgetError):  # a bad argument does not stop the running server
            ServingTimeline(**{"workdir": tmp_path, **bad})
        assert not tl.closed and _port_open(port)
    assert tl.ui is not None  # builds the view
    tl.buttons["roll back"].click()  # nothing to roll back to: the error is shown, not raised
    assert "WidgetError" in tl.report.value and "no earlier published version" in tl.report.value
    assert tl.status_text == "failed: WidgetError" and not tl.history
    v1, v2 = tl.publish(), tl.publish()
    assert (v1.answering_version, v1.verified, v1.answers_like) == (1, True, "v1")
    assert (v2.answering_version, v2.verified, v2.answers_like) == (2, True, "v2")

    flat = tl.plant_flat_deploy()
    assert (tl.base / "model.h5").is_file()
    assert not flat.verified and flat.answering_version == 2 and flat.expected_version == 3
    assert {"stale_version", "canary_mismatch"} <= set(flat.problems)

    back = tl.rollback()  # to the version before the newest: 1
    assert back.verified and back.answering_version == 1 and back.answers_like == "v1"

    tl.buttons["check"].click()
    assert tl.history[-1].action == "check" and tl.history[-1].verified
    assert bytes(tl.chart.value).startswith(PNG) and "verify_deployment" in tl.steps.value
    assert [s.step for s in tl.history] == [1, 2, 3, 4, 5]
    fig = tl.plot()
    assert len(fig.axes[0].texts) == len(tl.history)  # one action label per step

    # A label rollback whose wait times out: models.config already serves v2 (no label yet).
    def too_slow(*args, **kwargs):
        raise TimeoutError("demo version 2 not AVAILABLE after 10s")

    monkeypatch.setattr(tl.client, "wait_until_available", too_slow)
    slow = tl.set_label("stable", 2)
    monkeypatch.undo()
    from forgekit.serving.config import read_model_config

    (entry,) = read_model_config(tl.config)
    assert tl.history[-1] is slow and not slow.verified and "action_failed" in slow.problems
    assert "stable" not in entry.labels and tl.label is None  # the timeline follows the config
    assert entry.versions == (1, 2) and tl.expected.version == 2 == slow.expected_version
    after = tl.check()  # the server catches up: what the timeline expects is what answers
    assert after.verified and after.answering_version == 2 and after.answers_like == "v2"

    with ServingTimeline(tmp_path / "second", poll_seconds=0.2) as second:
        assert tl.closed, "a second timeline closes the first: one server at a time"
        assert not _port_open(port) and not (tmp_path / "serving").exists()
        second_port = second.server.rest_api_port
    assert second.closed and not _port_open(second_port)
    tl.close()  # idempotent
    with pytest.raises(WidgetError):
        tl.publish()

    third = ServingTimeline(tmp_path / "third", poll_seconds=0.2)
    third_port, stop = third.server.rest_api_port, third.server.stop

    def stop_then_fail():
        stop()
        raise RuntimeError("the server's thread did not report back")

    monkeypatch.setattr(third.server, "stop", stop_then_fail)
    with pytest.raises(RuntimeError):
        third.close()
    assert third.closed and not (tmp_path / "third" / "serving").exists()  # folder removed
    assert not _port_open(third_port) and third not in base._OPEN
