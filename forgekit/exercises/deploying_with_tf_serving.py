"""Checker for lesson 07 (deploying with TF Serving): a models.config with a policy and labels.

The task: versions 1, 2 and 3 of ``forecast`` are on disk; serve versions 1 and 3 only, with the
label ``stable`` on 1 and ``canary`` on 3. The text is parsed with TF Serving's own protos and
judged the way the server would apply it.
"""

from __future__ import annotations

import os
from pathlib import Path

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong

WANTED_VERSIONS = {1, 3}
WANTED_LABELS = {"stable": 1, "canary": 3}


def check_label_config(text: str | None, base_path: str | os.PathLike[str]) -> Feedback:
    """Judge a ``model_config_list`` text for the model ``forecast`` under ``base_path``."""
    if text is None or text is Ellipsis or not str(text).strip():
        return NOT_ANSWERED
    from forgekit.formats.serving_base import version_numbers
    from forgekit.serving.config import parse_model_config
    from forgekit.serving.errors import ServingError

    try:
        models = parse_model_config(str(text), "my_config")
    except ServingError as err:
        return wrong(f"TF Serving would refuse this file: {err.message}")
    by_name = {m.name: m for m in models}
    if "forecast" not in by_name:
        return wrong(f"No model named 'forecast' in the config (found {sorted(by_name)}).")
    model = by_name["forecast"]
    if Path(model.base_path).resolve() != Path(base_path).resolve():
        return wrong(f"base_path is {model.base_path}; the versions live in {base_path} "
                     "(an absolute path, as TF Serving requires).")
    served = model.policy.select(version_numbers(base_path))
    if served != WANTED_VERSIONS:
        hint = (" `latest` always takes the newest ones, so it can never skip version 2; "
                "name the versions with `specific { versions: 1 versions: 3 }`."
                if model.policy.kind == "latest" else "")
        return wrong(f"Your policy ({model.policy.describe()}) serves versions "
                     f"{sorted(served)} of those on disk, not {sorted(WANTED_VERSIONS)}.{hint}")
    labels = dict(model.labels)
    for label, version in labels.items():
        if version not in served:
            return wrong(f"Label {label!r} points at version {version}, which your policy does "
                         "not serve: TF Serving refuses the whole config.")
    if labels != WANTED_LABELS:
        return wrong(f"Labels are {labels}; clients expect {WANTED_LABELS} "
                     "(version_labels { key: \"stable\" value: 1 } ...).")
    return correct("Versions 1 and 3 are served, 2 is not loaded at all, and each label names a "
                   "version the server holds: clients of `stable` and `canary` get what they "
                   "expect, and un-addressed requests get the newest served version, 3.")
