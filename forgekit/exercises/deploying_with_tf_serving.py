"""Checker for lesson 07 (deploying with TF Serving): the ``models.config`` edit that promotes.

The task: versions 1-4 of ``forecast`` are on disk; ``stable`` names version 2, which the
``latest {num_versions: 2}`` policy has unloaded. Write the ``models.config`` text that
promotes version 3 to ``stable``, keeps ``canary`` on 4, loads only those two, and still holds
after the next version is published.

The checker serves the text, on a server of its own, over a copy of the numbered versions
(the lesson's server is left alone), then asks over HTTP, as a post-deployment check would:

1. ``GET /v1/models/forecast/labels/{stable,canary}/metadata``: each label answers its version;
2. ``GET /v1/models/forecast``: only the labelled versions are AVAILABLE;
3. version 5 is exported into the copy (hidden folder, one rename) and, once the server had
   many scans to act on it, both labels, the loaded set and the un-labelled version are asked
   again.

The copy's path is set in the parsed config (any spelling of ``base`` the learner wrote).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong

MODEL = "forecast"
WANTED = {"stable": 3, "canary": 4}
POLL_SECONDS = 0.1


def _get(url: str) -> tuple[int, Any]:
    """(HTTP status, JSON body) of a GET; an HTTP error is an answer, not an exception."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _labels(url: str) -> dict[str, tuple[int, Any]]:
    """Each wanted label: (HTTP status, answering version or the server's error text)."""
    seen = {}
    for label in WANTED:
        code, body = _get(f"{url}/labels/{label}/metadata")
        seen[label] = (code, int(body["model_spec"]["version"]) if code == 200
                       else body.get("error", body))
    return seen


def _available(url: str) -> set[int]:
    code, body = _get(url)
    if code != 200:
        return set()
    return {int(s["version"]) for s in body["model_version_status"] if s["state"] == "AVAILABLE"}


def _settle(url: str, seconds: float) -> None:
    """Wait ``seconds`` of scans, then until no version is LOADING or UNLOADING (<= 60 s)."""
    time.sleep(seconds)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        code, body = _get(url)
        states = {s["state"] for s in body.get("model_version_status", [])} if code == 200 else set()
        if not states & {"START", "LOADING", "UNLOADING"}:
            break
        time.sleep(POLL_SECONDS)
    time.sleep(3 * POLL_SECONDS)  # a scan that loaded a version unloads the unwanted one next


def _label_problem(seen: dict[str, tuple[int, Any]], when: str) -> Feedback | None:
    for label, want in WANTED.items():
        code, got = seen[label]
        if code == 200 and got == want:
            continue
        if code == 200:
            swap = " (stable and canary swapped?)" if seen[label][1] in WANTED.values() else ""
            return wrong(f"{when}, /labels/{label} answers version {got}; it should be "
                         f"{want}{swap}. A label is one line: "
                         f'version_labels {{ key: "{label}" value: {want} }}.')
        if code == 404:
            return wrong(f"{when}, GET .../labels/{label}/metadata answers 404: {got}. The "
                         f"label names a version number the server does not hold loaded; TF "
                         "Serving checks labels only when it reads the config, so nothing "
                         "stopped it. Make the version policy load what the labels name.")
        return wrong(f"{when}, GET .../labels/{label}/metadata answers {code}: {got}. Every "
                     "client of that label gets this error; add the label to the config.")
    return None


def judge(text: Any, base: str | os.PathLike[str], workdir: str | os.PathLike[str]) -> Feedback:
    """Serve ``text`` over a copy of ``base``'s numbered versions; check the labels by HTTP."""
    if text is None or text is Ellipsis:
        return NOT_ANSWERED
    if not isinstance(text, str) or not text.strip():
        return wrong(f"`my_config` should be the models.config text (a str), got "
                     f"{type(text).__name__}.")
    from forgekit.serving import InProcessServer
    from forgekit.serving.config import parse_model_config
    from forgekit.serving.error_codes import ServingError

    try:
        models = {m.name: m for m in parse_model_config(text, "my_config")}
    except ServingError as err:
        return wrong(f"TF Serving would not start on this file: {err.message}")
    if MODEL not in models:
        return wrong(f"The config names no model {MODEL!r} (it names {sorted(models)}).")
    base = Path(base).resolve()
    if Path(models[MODEL].base_path).resolve() != base:
        return wrong(f"base_path is {models[MODEL].base_path}; the versions are in {base}.")

    from forgekit.paths import output_dir

    try:  # empties only a folder it created itself (an earlier run of this checker)
        workdir = output_dir(workdir)
    except ValueError as err:
        return wrong(str(err))
    copy = workdir / MODEL
    for version in sorted(int(p.name) for p in base.iterdir() if p.name.isdigit()):
        if version <= max(WANTED.values()):
            shutil.copytree(base / str(version), copy / str(version))
    config = workdir / "models.config"
    from google.protobuf import text_format

    try:
        pointed = _pointed_at(text, copy.resolve())
    except text_format.ParseError as err:  # the same reader TF Serving uses for the file
        return wrong(f"TF Serving would not start on this file: {err}")
    config.write_text(pointed, encoding="utf-8")
    served = {m.name: m for m in parse_model_config(config.read_text(), str(config))}
    assert Path(served[MODEL].base_path) == copy.resolve(), "the checker serves its own copy"
    server = InProcessServer(model_config_file=config, file_system_poll_wait_seconds=POLL_SECONDS,
                             extra_args=["--allow_version_labels_for_unavailable_models"])
    try:
        server.start()
    except (RuntimeError, TimeoutError) as exc:
        return wrong(f"The server refused this config: {str(exc).splitlines()[0]}")
    url = f"{server.rest_url}/v1/models/{MODEL}"
    try:
        _settle(url, 5 * POLL_SECONDS)
        problem = _label_problem(_labels(url), "Served")
        if problem is not None:
            return problem
        loaded = _available(url)
        if loaded != set(WANTED.values()):
            return wrong(f"The labels answer, but versions {sorted(loaded)} are loaded: each "
                         "one holds its weights in memory and un-labelled requests reach the "
                         f"highest. Load only {sorted(WANTED.values())}.")
        tmp = copy / ".tmp-5"  # the next publish: a plain numbered export (lesson 06)
        shutil.copytree(copy / "4", tmp)
        os.rename(tmp, copy / "5")
        _settle(url, 20 * POLL_SECONDS)
        problem = _label_problem(_labels(url), "After version 5 was published")
        if problem is not None:
            return wrong(f"{problem.message} Your config was right until the next publish: "
                         f"{models[MODEL].policy.describe()} follows the newest numbers on "
                         "disk, and labels do not move with it. Name the versions instead.")
        loaded = _available(url)
        plain = _get(f"{url}/metadata")[1]["model_spec"]["version"]
    finally:
        server.stop()
    policy = models[MODEL].policy.describe()
    if loaded != set(WANTED.values()):
        return wrong(f"After version 5 was published, versions {sorted(loaded)} are loaded and "
                     f"un-labelled requests reach version {plain}: {policy} let the new number "
                     f"in. Name only {sorted(WANTED.values())}.")
    return correct(f"Your policy {policy} kept exactly versions {sorted(loaded)} loaded, before "
                   f"and after version 5 landed in the served copy; stable answers 3, canary 4, "
                   f"and un-labelled requests get version {plain}, the highest loaded. A new "
                   "number changes nothing until you edit the config.")


def _pointed_at(text: str, copy: Path) -> str:
    """``text`` with model ``forecast``'s base_path set to ``copy`` (parsed, not replaced)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    for entry in config.model_config_list.config:
        if entry.name == MODEL:
            entry.base_path = str(copy)
    return text_format.MessageToString(config)


def check_promotion(text: str | None, base: str | os.PathLike[str],
                    workdir: str | os.PathLike[str]) -> Feedback:
    """Judge a ``models.config`` text for ``forecast``: serve it, ask its labels over HTTP."""
    return judge(text, base, workdir)
