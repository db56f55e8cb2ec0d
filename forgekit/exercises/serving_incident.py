"""Checker for lesson 06 (the serving incident): a post-deployment check that catches it.

The learner writes ``check(client, model_name, record) -> bool``: True when the model that
answers is the one ``record`` describes. The checker plants three deployments on a server of
its own and runs the learner's function on each:

* ``healthy``: v1, then the new model published properly as v2 (expected: v2);
* ``flat``: v1 serving, the new model saved as ``model.h5`` beside it (expected: v2);
* ``in_place``: v1 serving, the new model exported over folder ``1`` (expected: v1, new model).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong


def _model(scale: float):
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(4),
                              keras.layers.Dense(1)])
    model.set_weights([scale * np.linspace(-1, 1, w.size, dtype=np.float32).reshape(w.shape)
                       for w in model.get_weights()])
    return model


def _plant(workdir: Path) -> tuple[Any, dict[str, Any]]:
    """Publish v1 everywhere, start a server, then deploy the new model three ways."""
    import dataclasses
    import shutil

    from forgekit.quiet import quiet_absl
    from forgekit.serving import InProcessServer
    from forgekit.serving import deploy as dp

    old, new = _model(1.0), _model(1.5)
    names = ("healthy", "flat", "in_place")
    dp.publish(old, workdir / "healthy", model_name="healthy")
    for name in names[1:]:  # the same v1, copied rather than exported again
        shutil.copytree(workdir / "healthy" / "1", workdir / name / "1")
    config = workdir / "models.config"
    dp.write_model_config(config, [dp.ModelEntry(n, workdir / n) for n in names])
    server = InProcessServer(model_config_file=config, file_system_poll_wait_seconds=0.1).start()
    healthy = dp.publish(new, workdir / "healthy", model_name="healthy")
    with quiet_absl():  # Keras warns that HDF5 is legacy: not the learner's concern here
        new.save(workdir / "flat" / "model.h5")
    # the new model's files written over folder 1 (what model.export(".../1") does)
    shutil.copytree(workdir / "healthy" / "2", workdir / "in_place" / "1", dirs_exist_ok=True)
    expected = {  # what each team meant to deploy: the new model, as version 2 or over 1
        "healthy": healthy,
        "flat": dataclasses.replace(healthy, model_name="flat", base_path=str(workdir / "flat"),
                                    path=str(workdir / "flat" / "2")),
        "in_place": dataclasses.replace(healthy, model_name="in_place", version=1,
                                        base_path=str(workdir / "in_place"),
                                        path=str(workdir / "in_place" / "1")),
    }
    try:
        with server.client() as client:
            deadline = time.monotonic() + 30
            while client.metadata("healthy")["model_spec"]["version"] != "2":
                if time.monotonic() > deadline:
                    raise TimeoutError("the checker's server did not pick up version 2 in 30 s")
                time.sleep(0.05)
    except BaseException:
        server.stop()
        raise
    time.sleep(0.3)  # three poll intervals: the server had every chance to pick changes up
    return server, expected


def check_deploy_check(check: Callable[[Any, str, Any], bool] | None,
                       workdir: str | os.PathLike[str]) -> Feedback:
    """Run ``check(client, model_name, record)`` on a healthy and two stale deployments."""
    if check is None or check is Ellipsis:
        return NOT_ANSWERED
    if not callable(check):
        return wrong("`my_check` should be a function taking (client, model_name, record).")
    import forgekit.serving.verify as verify_module

    if "verify_deployment" in getattr(getattr(check, "__code__", None), "co_names", ()):
        return wrong("verify_deployment is the answer key: write the check yourself with "
                     "client.metadata(...) and client.predict(...).")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    server, expected = _plant(workdir)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("verify_deployment is the answer key: write the check with "
                           "client.metadata(...) and client.predict(...)")

    saved = verify_module.verify_deployment
    verify_module.verify_deployment = refuse
    verdicts: dict[str, Any] = {}
    try:
        with server.client() as client:
            for name, record in expected.items():
                try:
                    verdicts[name] = check(client, name, record)
                except Exception as exc:  # the learner's bug, reported as feedback
                    verdicts[name] = exc
    finally:
        verify_module.verify_deployment = saved
        server.stop()
    for name, verdict in verdicts.items():
        if isinstance(verdict, Exception):
            return wrong(f"Your check raised on the {name!r} deployment: "
                         f"{type(verdict).__name__}: {verdict}")
        if type(verdict).__name__ == "bool_":  # numpy's bool, e.g. from np.allclose
            verdicts[name] = verdict = bool(verdict)
        if not isinstance(verdict, bool):
            return wrong(f"Your check returned {verdict!r} for {name!r}; return True (the "
                         "expected model answers) or False.")
    if not verdicts["healthy"]:
        return wrong("Your check rejects the healthy deployment (v2 published properly and "
                     "answering): a check that always fails gets switched off. Compare with "
                     "record.version and the canary's outputs within a tolerance "
                     "(np.allclose), not exact equality.")
    if verdicts["flat"]:
        return wrong("Your check passes the flat-file deployment: model.h5 sits beside folder "
                     "1, the server never looks at it and version 1 answers while the record "
                     "expects version 2. Read the answering version from "
                     "client.metadata(name)['model_spec']['version'].")
    if verdicts["in_place"]:
        return wrong("Your check passes the in-place overwrite: the answering version IS 1, as "
                     "expected, but the server never reloaded folder 1, so the old weights "
                     "answer. A version number cannot tell; send the canary inputs "
                     "(record.canary().inputs) and compare the outputs.")
    return correct("It passes the healthy deployment and catches both stale ones: the flat "
                   "file by the version number, the in-place overwrite by what the model "
                   "answers.")
