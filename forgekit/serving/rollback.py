"""Roll back: serve an earlier version again by editing ``models.config``, then verify it.

A label rollback moves only the clients that ask for the label; a policy rollback moves every
client. Either way the result is checked against the version's publish record when a client is
given (:func:`forgekit.serving.verify.verify_deployment`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgekit.formats.serving_base import version_numbers
from forgekit.serving.config import ModelEntry, read_model_config, write_model_config
from forgekit.serving.record import RECORDS_DIR, DeployError, PublishRecord, load_record
from forgekit.serving.verify import verify_deployment
from forgekit.serving.versions import VersionPolicy


@dataclass
class Rollback:
    """What :func:`rollback` did: the config written, the record rolled back to, its check."""

    model_name: str
    version: int
    label: str | None
    config_text: str
    record: PublishRecord | None
    report: Any = None  # a VerificationReport when a client was given

    def __str__(self) -> str:
        how = f"label {self.label!r} -> {self.version}" if self.label else \
            f"policy specific [{self.version}]"
        head = f"rolled back {self.model_name}: {how}"
        return head + (f"\n{self.report}" if self.report is not None else "")


def rollback(config_file: str | os.PathLike[str], model_name: str, version: int, *,
             label: str | None = None, client: Any = None, wait: float = 30.0,
             store: Any = None) -> Rollback:
    """Serve an earlier ``version`` again by editing ``config_file``; verify it if given a client.

    Without ``label``: the version policy becomes ``specific [version]``; the server loads
    it, and only then unloads the others (labels on other versions are dropped: TF Serving
    refuses labels on versions it does not serve). With ``label`` (e.g. ``"stable"``): the
    label is pointed at ``version``; if the policy does not serve it yet, it is added first and,
    with a ``client``, the label is written only once the version is AVAILABLE (TF Serving
    refuses a label on an unavailable version). With a ``client`` the result is checked with
    :func:`~forgekit.serving.verify.verify_deployment` against the version's publish record.
    """
    entries = read_model_config(config_file)
    try:
        entry = next(e for e in entries if e.name == model_name)
    except StopIteration:
        raise DeployError(f"{config_file}: no model named {model_name!r} (has "
                          f"{[e.name for e in entries]})") from None
    version = int(version)
    if not (Path(entry.base_path) / str(version)).is_dir():
        raise DeployError(f"{Path(entry.base_path) / str(version)}: no such version folder; "
                          f"cannot roll {model_name} back to version {version}.")

    def replaced(new: ModelEntry) -> list[ModelEntry]:
        return [new if e.name == model_name else e for e in entries]

    if label is None:
        labels = {k: v for k, v in entry.labels.items() if v == version}
        new = ModelEntry(model_name, entry.base_path, "specific", (version,), 1, labels)
        text = write_model_config(config_file, replaced(new))
    else:
        served = _served_by(entry, Path(entry.base_path))
        if version not in served:
            versions = tuple(sorted(served | {version}))
            keep = {k: v for k, v in entry.labels.items() if v in served}
            step = ModelEntry(model_name, entry.base_path, "specific", versions, 1, keep)
            write_model_config(config_file, replaced(step))
            entries = read_model_config(config_file)
            entry = step
            if client is not None:
                client.wait_until_available(model_name, version=version, timeout=wait)
        new = ModelEntry(model_name, entry.base_path, entry.policy, entry.versions,
                         entry.num_versions, {**entry.labels, label: version})
        text = write_model_config(config_file, replaced(new))
    record = None
    with contextlib.suppress(DeployError):
        record = load_record(entry.base_path, version)
    result = Rollback(model_name, version, label, text, record)
    if client is not None:
        if record is None:
            raise DeployError(f"no publish record for {model_name} version {version} under "
                              f"{Path(entry.base_path) / RECORDS_DIR}: nothing to verify against")
        result.report = verify_deployment(client, model_name, record, label=label,
                                          wait=wait, store=store)
    return result


def _served_by(entry: ModelEntry, base: Path) -> set[int]:
    """The versions ``entry``'s policy serves given the folders on disk (the server's rule)."""
    policy = VersionPolicy(entry.policy, entry.num_versions, frozenset(entry.versions))
    return policy.select(version_numbers(base) if base.is_dir() else [])
