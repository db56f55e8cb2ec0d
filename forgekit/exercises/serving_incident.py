"""Lesson 06 (the serving incident): its drifting world, a wait, and the exercise's checker.

``week_data`` / ``train_week`` are plumbing: a relation between 8 features and a target that
drifts week by week, so a model gets worse after the week it was trained on. ``wait_for``
polls the metadata endpoint until a version answers (the lesson shows the call itself first).

The learner writes ``my_check(url, model_name, expected) -> bool`` with plain HTTP (``urllib``):
True only when the server at ``url`` answers ``model_name`` with ``expected["version"]`` and
its outputs for ``expected["inputs"]`` match ``expected["outputs"]``. The checker serves four
deployments on a server of its own (in a new sub-folder of ``workdir`` each run), under neutral
model names ``forecast_a`` .. ``forecast_d`` shuffled each run (so the name tells nothing), and
calls the function on each, over HTTP:

* ``healthy``: v1, then the new model exported as version 2 (expected: version 2, new model);
* ``flat``: v1 serving, the new model saved as ``model.h5`` beside it (expected: version 2);
* ``in_place``: v1 serving, the new model exported over folder ``1`` (expected: version 1, new
  model) -- the number is right, the weights answering are the old ones;
* ``renumbered``: the new model exported twice (a retried job), so version 3 answers where the
  release expected 2 -- the outputs are right, the number every label and rollback names is not.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, is_placeholder, unused_path, wrong

FEATURES = 8


def week_data(week: int, n: int, sample_seed: int = 0, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` requests ``x`` of ``week`` and their outcomes ``y``; the relation drifts weekly.

    ``sample_seed=1`` draws held-out requests no model is trained on (training uses 0). The
    drift is slow enough that a model a year stale still beats always predicting 0.
    """
    w_start, w_drift = np.random.default_rng(seed).normal(size=(2, FEATURES, 1))
    r = np.random.default_rng([seed, week, sample_seed])
    x = r.normal(size=(n, FEATURES)).astype("float32")
    y = np.tanh(x @ (w_start + w_drift * week / 78)) + 0.05 * r.normal(size=(n, 1))
    return x, y.astype("float32")


def train_week(week: int, samples: int, epochs: int, seed: int = 0) -> Any:
    """A small Keras regressor (input named ``x``) trained on ``week``'s data."""
    import keras

    keras.utils.set_random_seed(seed + week)
    model = keras.Sequential([keras.Input((FEATURES,), name="x"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(*week_data(week, samples, seed=seed), epochs=epochs, batch_size=64, verbose=0)
    return model


def wait_for(url: str, version: int, timeout: float = 30.0) -> float:
    """Seconds until ``GET {url}/metadata`` names ``version`` (``url`` ends in the model path)."""
    start = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"{url}/metadata", timeout=5) as response:
                if int(json.loads(response.read())["model_spec"]["version"]) == int(version):
                    return time.monotonic() - start
        except urllib.error.HTTPError:
            pass  # not loaded yet (404) or a label not applied yet
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{url} did not answer version {version} within {timeout:g} s")
        time.sleep(0.05)


def _model(scale: float) -> Any:
    import keras

    model = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(4),
                              keras.layers.Dense(1)])
    model.set_weights([scale * np.linspace(-1, 1, w.size, dtype=np.float32).reshape(w.shape)
                       for w in model.get_weights()])
    return model


def _export(model: Any, folder: Path) -> None:
    """A plain numbered export: hidden folder, then one rename (the lesson's recipe)."""
    tmp = folder.parent / f".tmp-{folder.name}"
    model.export(str(tmp), verbose=False)
    os.rename(tmp, folder)


def plant(workdir: str | os.PathLike[str]) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Serve v1 of four models, deploy the new model four ways; return (server, expected).

    ``expected`` is keyed by role (healthy, flat, in_place, renumbered); ``expected[role]["model"]``
    is the neutral name it is served under, shuffled each call. ``workdir`` must not hold an
    earlier run's folders (``check_deploy_check`` picks a new one).
    """
    from forgekit.quiet import quiet_absl
    from forgekit.serving import InProcessServer
    from forgekit.serving.config import ModelEntry, write_model_config

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    old, new = _model(1.0), _model(1.5)
    roles = ("healthy", "flat", "in_place", "renumbered")
    served = dict(zip(roles, random.sample([f"forecast_{c}" for c in "abcd"], 4), strict=True))
    names = tuple(served.values())
    healthy, flat, in_place, renumbered = (workdir / served[r] for r in roles)
    healthy.mkdir()
    _export(old, healthy / "1")
    for folder in (flat, in_place, renumbered):  # the same v1, copied rather than exported again
        shutil.copytree(healthy / "1", folder / "1")
    config = workdir / "models.config"
    write_model_config(config, [ModelEntry(n, workdir / n) for n in names])
    server = InProcessServer(model_config_file=config, file_system_poll_wait_seconds=0.1).start()
    try:
        _export(new, healthy / "2")
        with quiet_absl():  # Keras warns that HDF5 is legacy: not the learner's concern here
            new.save(flat / "model.h5")
        # the new model's files written over folder 1 (what model.export(".../1") does)
        shutil.copytree(healthy / "2", in_place / "1", dirs_exist_ok=True)
        for again in ("2", "3"):  # the job ran twice: the same model as 2 and as 3
            shutil.copytree(healthy / "2", renumbered / again)
        wait_for(f"{server.rest_url}/v1/models/{served['healthy']}", 2)
        wait_for(f"{server.rest_url}/v1/models/{served['renumbered']}", 3)
        time.sleep(0.3)  # three poll intervals: the server had every chance to pick changes up
    except BaseException:
        server.stop()
        raise
    x = np.round(np.random.default_rng(3).normal(size=(4, 3)), 2).astype("float32")
    outputs = np.asarray(new(x)).tolist()
    inputs = {"x": x.tolist()}
    versions = {"healthy": 2, "flat": 2, "in_place": 1, "renumbered": 2}
    expected = {r: {"model": served[r], "version": versions[r], "inputs": inputs,
                    "outputs": outputs} for r in roles}
    return server, expected


# forgekit names that would do the requests for the learner (the lesson teaches the requests)
_HELPERS = ("verify_deployment", "Client", "ServingClient", "wait_for_version", "wait_for")


def judge(check: Any, url: str, expected: dict[str, dict[str, Any]]) -> Feedback:
    """Run ``check(url, model, expected)`` on each planted deployment; say what is wrong.

    ``expected`` is ``plant``'s: keyed by role, each served under its ``"model"`` name.
    """
    if check is None or is_placeholder(check):
        return NOT_ANSWERED
    if not callable(check):
        return wrong(f"`my_check` should be a function of (url, model_name, expected), got "
                     f"{type(check).__name__}.")
    used = set(getattr(getattr(check, "__code__", None), "co_names", ()))
    if used & set(_HELPERS):
        return wrong(f"Your check uses {sorted(used & set(_HELPERS))}: write the two HTTP "
                     "requests yourself with urllib.request (GET .../metadata, POST ...:predict) "
                     "so you can run them anywhere, with no forgekit installed.")
    verdicts: dict[str, Any] = {}
    for role, exp in expected.items():
        name = exp["model"]
        try:
            verdicts[role] = check(url, name, {k: (dict(v) if isinstance(v, dict) else v)
                                               for k, v in exp.items() if k != "model"})
        except urllib.error.HTTPError as exc:
            if exc.code != 404 or "/versions/" not in str(exc.url):
                return wrong(f"Your check raised on {name!r}: HTTPError: {exc} ({exc.url}). The "
                             f"paths are {url}/v1/models/{name}/metadata and "
                             f"{url}/v1/models/{name}:predict with a JSON body "
                             '{"inputs": expected["inputs"]}.')
            return wrong(f"Your check asks a pinned version ({exc.url}) and got HTTP 404 on "
                         f"{name!r}: that is a valid check (the version is not served), but "
                         "it must catch urllib.error.HTTPError and return False, not raise.")
        except Exception as exc:  # the learner's bug, reported as feedback
            return wrong(f"Your check raised on {name!r}: {type(exc).__name__}: {exc}")
        if isinstance(verdicts[role], np.bool_):  # e.g. straight from np.allclose
            verdicts[role] = bool(verdicts[role])
        if not isinstance(verdicts[role], bool):
            return wrong(f"Your check returned {verdicts[role]!r} for {name!r}; return True (the "
                         "expected model answers) or False.")
    if not verdicts["healthy"]:
        return wrong(f"Your check rejects the healthy deployment, {expected['healthy']['model']} (version 2 exported properly "
                     "and answering): a check that always fails gets switched off. Compare "
                     "int(model_spec.version) with expected['version'], and the outputs within "
                     "a tolerance (np.allclose), not exact equality.")
    if verdicts["flat"]:
        return wrong(f"Your check passes the flat-file deployment, {expected['flat']['model']}: model.h5 sits beside folder 1, "
                     "the server never reads it and version 1 answers while version 2 is "
                     "expected. Read the answering version from GET "
                     "/v1/models/<name>/metadata, field model_spec.version.")
    if verdicts["in_place"]:
        return wrong(f"Your check passes the in-place overwrite, {expected['in_place']['model']}: the answering version IS 1, as "
                     "expected, but a running server never reloads a number it has loaded, so "
                     "the old weights answer. A version number cannot tell: POST the canary "
                     "inputs to /v1/models/<name>:predict and compare the outputs.")
    if verdicts["renumbered"]:
        return wrong(f"Your check passes the renumbered deployment, {expected['renumbered']['model']}: the new model answers, but as "
                     "version 3 (the job ran twice) where the release expected 2, so every label, "
                     "pinned /versions/2 request and rollback that names 2 is wrong. The outputs "
                     "alone cannot tell: compare model_spec.version with expected['version'] too.")
    answered = "; ".join(f"{e['model']} ({role}): version {v}, max output diff {d:.2g}"
                         for role, e in expected.items() for v, d in [_answer(url, e)])
    return correct("It passes the healthy deployment and catches the three wrong ones: the flat "
                   "file and the renumbered export by the version number, the in-place "
                   f"overwrite by what the model answers. They answered: {answered}.")


def _answer(url: str, exp: dict[str, Any]) -> tuple[int, float]:
    """(answering version, max |output - expected output|) of one planted deployment."""
    model = f"{url}/v1/models/{exp['model']}"
    with urllib.request.urlopen(f"{model}/metadata", timeout=10) as response:
        version = int(json.loads(response.read())["model_spec"]["version"])
    request = urllib.request.Request(f"{model}:predict",
                                     json.dumps({"inputs": exp["inputs"]}).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        outputs = np.asarray(json.loads(response.read())["outputs"])
    return version, float(np.max(np.abs(outputs - np.asarray(exp["outputs"]))))


def check_deploy_check(check: Callable[[str, str, dict[str, Any]], bool] | None,
                       workdir: str | os.PathLike[str]) -> Feedback:
    """Serve a healthy and three wrong deployments; run ``check(url, name, expected)`` on each.

    Each call plants them in a new sub-folder of ``workdir``, so the check can be run again.
    """
    if check is None or is_placeholder(check) or not callable(check):
        return judge(check, "", {})
    server, expected = plant(unused_path(workdir, "serving_incident_"))
    try:
        return judge(check, server.rest_url, expected)
    finally:
        server.stop()
