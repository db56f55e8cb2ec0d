"""Check a deployment through TF Serving's standard API: is the expected model the one answering?

:func:`verify_deployment` makes the checks a post-deployment step should make, each with the
calls any TF Serving server answers (so it works unchanged against ``tensorflow/serving``):

1. ``GET /v1/models/<name>`` (status): the expected version is AVAILABLE, not missing, not
   still loading, not failed (the server's load error is shown);
2. ``GET .../metadata``: the version that answers (``model_spec.version``) is the expected
   one, and ``serving_default``'s inputs and outputs are the ones published;
3. ``:predict`` with the canary's inputs: the outputs are the published ones, within tolerance;
4. ``:predict`` with ``signature_name="forgekit_identity"``: the served model's fingerprint is
   the published one;
5. with ``labels={"stable": 2, ...}``: ``GET .../labels/<label>/metadata`` answers each
   label's version. TF Serving checks a label only when it (re)reads its model config
   (``ServerCore::UpdateModelVersionLabelMap``): a version unloaded later by its policy keeps
   its labels, and every request to them gets NOT_FOUND (``label_unloaded``).

The report names each problem (``stale_version``, ``canary_mismatch``, ...) and renders as
text and HTML. ``forgekit verify`` runs it from a CD pipeline and exits 1 on any problem.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forgekit.serving.client import poll
from forgekit.serving.contract import describe, from_metadata, signature_differences
from forgekit.serving.error_codes import ServingError
from forgekit.serving.record import (
    IDENTITY_SIGNATURE,
    DeployError,
    PublishRecord,
    load_record,
    validate_record,
)

# Problems a server still picking up a new version or config shows for a moment: with ``wait``,
# a report that has one of them is retried (its other problems may be their consequence).
TRANSIENT = frozenset({"version_missing", "version_loading", "version_not_loaded",
                       "stale_version", "label_unknown", "label_unloaded", "label_version",
                       "server_unreachable"})


@dataclass(frozen=True)
class Check:
    """One check: its name, whether it passed, and what was seen. A failed check is a problem."""

    name: str  # the check, or the problem's name when it failed
    ok: bool
    detail: str


@dataclass
class VerificationReport:
    """The outcome of :func:`verify_deployment`: every check, and the named problems."""

    model_name: str
    expected_version: int
    answering_version: int | None
    url: str
    label: str | None = None
    checks: list[Check] = field(default_factory=list)
    max_canary_diff: float | None = None
    seconds: float = 0.0

    @property
    def problems(self) -> list[str]:
        """Names of the failed checks (``[]`` when the deployment is right)."""
        return [c.name for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return bool(self.checks) and not self.problems

    def text(self) -> str:
        """The report as plain text (what ``forgekit verify`` prints)."""
        target = f"label {self.label!r} -> version" if self.label else "version"
        verdict = "OK" if self.ok else f"FAILED: {', '.join(self.problems)}"
        lines = [f"deployment check of {self.model_name!r} at {self.url}: expected {target} "
                 f"{self.expected_version}, answering "
                 f"{'-' if self.answering_version is None else self.answering_version}: {verdict}"]
        lines += [f"  {'✓' if c.ok else '✗'} {c.name:<22} {c.detail}" for c in self.checks]
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:
        return self.text()

    def html(self) -> str:
        """The report as an HTML fragment."""
        color = "#1a7f37" if self.ok else "#b42318"
        rows = "".join(
            f'<tr><td style="color:{"#1a7f37" if c.ok else "#b42318"}">{"✓" if c.ok else "✗"}'
            f"</td><td><code>{html.escape(c.name)}</code></td><td>{html.escape(c.detail)}"
            "</td></tr>" for c in self.checks)
        head = html.escape(self.text().splitlines()[0])
        return (f'<div style="border-left:4px solid {color};padding-left:8px">'
                f'<b style="color:{color}">{head}</b><table>{rows}</table></div>')

    _repr_html_ = html


def _version_of(entry: Mapping[str, Any]) -> int:
    return int(entry.get("version", 0))


def verify_deployment(client: Any, model_name: str, expected: PublishRecord | str | Any, *,
                      label: str | None = None, labels: Mapping[str, int] | None = None,
                      store: Any = None, wait: float = 0.0,
                      atol: float = 1e-5, rtol: float = 1e-4) -> VerificationReport:
    """Check that ``expected`` (a :class:`PublishRecord` or its path) is what ``client`` serves.

    Args:
        client: a :class:`forgekit.serving.Client` (REST or gRPC, any TF Serving server).
        model_name: the served model's name.
        expected: the publish record of the version that should answer.
        label: check the version a label points at (after a label rollback) instead of the
            version that answers un-addressed requests.
        labels: every label clients use and the version it must answer with
            (``{"stable": 2, "canary": 3}``); a label that names an unloaded version, is
            unknown, or answers another version is a problem.
        store: optional audit trail; ``store.record_verification(...)`` gets the verdict.
        wait: seconds to keep retrying while a problem is one of a version not yet picked up
            (missing, loading, unloaded, an older one still answering, a label not yet
            applied): a server polls its base path and its config, so a check right after a
            deployment may run before it is applied.
        atol / rtol: tolerance of the canary comparison (``numpy.isclose`` semantics).
    """
    record = validate_record(expected) if isinstance(expected, PublishRecord) \
        else load_record(expected)
    started = time.monotonic()
    last: list[VerificationReport] = []

    def settled() -> VerificationReport | None:
        report = _verify_once(client, model_name, record, label, atol, rtol)
        if labels:
            report.checks += _label_checks(client, model_name, labels)
        last[:] = [report]
        return report if report.ok or not TRANSIENT & set(report.problems) else None

    try:
        report = poll(settled, timeout=wait, interval=0.1, what="settled deployment")
    except TimeoutError:  # still a transient problem when time ran out: that is the verdict
        report = last[0]
    report.seconds = time.monotonic() - started
    if store is not None:
        store.record_verification(model_name=model_name, version=int(record.version),
                                  ok=report.ok, detail=report.text())
    return report


def _verify_once(client: Any, model_name: str, record: PublishRecord, label: str | None,
                 atol: float, rtol: float) -> VerificationReport:
    expected = int(record.version)
    report = VerificationReport(model_name, expected, None, getattr(client, "url", "?"), label)
    add = report.checks.append

    # 1. status: is the expected version there and loaded?
    try:
        statuses = list(client.status(model_name).get("model_version_status", []))
    except ServingError as err:
        name = "model_missing" if err.code == "NOT_FOUND" else "server_unreachable"
        add(Check(name, False, f"status of {model_name!r}: {err.code}: {err.message}"))
        return report
    states = {_version_of(s): s for s in statuses}
    seen = ", ".join(f"{v} {s.get('state')}" for v, s in sorted(states.items()))
    mine = states.get(expected)
    if mine is None:
        add(Check("version_missing", False, f"the server knows no version {expected} "
                  f"(versions: {seen or 'none'}); was it written into a numbered folder?"))
    elif mine.get("state") == "AVAILABLE":
        add(Check("version_available", True, f"version {expected} AVAILABLE ({seen})"))
    else:
        status = mine.get("status") or {}
        code = status.get("error_code", "OK")
        if code not in ("OK", 0, "0"):
            add(Check("version_failed", False, f"version {expected} {mine.get('state')}: "
                      f"{code}: {status.get('error_message', '')}"))
        elif mine.get("state") == "END":
            add(Check("version_not_loaded", False, f"version {expected} is END: unloaded, "
                      f"not served by the version policy ({seen})"))
        else:
            add(Check("version_loading", False, f"version {expected} is {mine.get('state')} "
                      f"({seen})"))

    # 2. metadata: which version answers, with which signature?
    try:
        meta = client.metadata(model_name, label=label)
    except ServingError as err:
        unknown = label is not None and "label" in err.message.lower()
        unloaded = label is not None and err.code == "NOT_FOUND"
        name = "label_unknown" if unknown else "label_unloaded" if unloaded else "metadata_failed"
        add(Check(name, False, f"metadata of label {label!r}: {err.code}: {err.message}"
                  if label else f"metadata: {err.code}: {err.message}"))
        return report
    try:
        report.answering_version = int(meta["model_spec"]["version"])
    except (KeyError, TypeError, ValueError):
        add(Check("metadata_failed", False, f"metadata has no model_spec.version: "
                  f"{str(meta)[:200]}"))
        return report
    addressed = f"label {label!r}" if label else "requests without a version"
    if report.answering_version == expected:
        add(Check("answering_version", True, f"metadata model_spec.version = "
                  f"{report.answering_version} for {addressed}"))
    else:
        add(Check("stale_version", False, f"metadata model_spec.version = "
                  f"{report.answering_version} for {addressed}, expected {expected}"))
    served = from_metadata(meta)
    if record.signature and served is not None:
        if served == record.signature:
            add(Check("signature", True, "serving_default inputs/outputs as published: "
                      + describe(served)))
        else:
            add(Check("signature_changed", False, f"serving_default is {describe(served)}; "
                      f"published {describe(record.signature)} ("
                      + "; ".join(signature_differences(record.signature, served)) + ")"))

    # 3. canary: the published outputs for known inputs, from what answers.
    try:
        canary = record.canary()
    except DeployError as exc:  # a missing/broken canary file is a finding, not a crash
        add(Check("canary_missing", False, f"{record.canary_path}: {exc}"))
        canary = None
    if canary is not None:
        try:
            response = client.predict(model_name, inputs=canary.inputs, label=label)
            got = _as_named(response["outputs"], list(canary.outputs))
            diff = max(float(np.max(np.abs(np.asarray(got[k], np.float64) - v)))
                       if v.size else 0.0 for k, v in canary.outputs.items())
            close = all(np.allclose(np.asarray(got[k]), v, atol=atol, rtol=rtol)
                        for k, v in canary.outputs.items())
            report.max_canary_diff = diff
            rows = len(next(iter(canary.inputs.values())))
            add(Check("canary" if close else "canary_mismatch", close,
                      f"{rows} known inputs: max |served - published| = {diff:.3g} "
                      f"(tolerance atol={atol:g}, rtol={rtol:g})"))
        except (ServingError, KeyError, ValueError) as exc:
            add(Check("canary_mismatch", False, f"canary predict failed: {exc}"))

    # 4. identity: the fingerprint the served model itself answers.
    if record.fingerprint:
        try:
            response = client.predict(model_name, inputs={"probe": [0]}, label=label,
                                      signature_name=IDENTITY_SIGNATURE)
            outs = response["outputs"]
            got_print = _text(outs["fingerprint"][0])
            got_version = int(outs["version"][0])
            if got_print == record.fingerprint:
                add(Check("fingerprint", True, f"{IDENTITY_SIGNATURE} answers "
                          f"{got_print[:19]}… (published as version {got_version})"))
            else:
                add(Check("fingerprint_mismatch", False, f"{IDENTITY_SIGNATURE} answers "
                          f"{got_print[:19]}… (published as version {got_version}), expected "
                          f"{record.fingerprint[:19]}…"))
        except ServingError as err:
            add(Check("identity_missing", False, f"the served model has no usable "
                      f"{IDENTITY_SIGNATURE} signature ({err.code}: {err.message[:120]}); it "
                      "was not exported by publish()"))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            add(Check("identity_missing", False, f"{IDENTITY_SIGNATURE} answered something "
                      f"else than a fingerprint and a version ({type(exc).__name__}: {exc})"))
    return report


def _label_checks(client: Any, model_name: str, labels: Mapping[str, int]) -> list[Check]:
    """One check per label: its metadata answers the version it must name."""
    checks = []
    for label, want in sorted(labels.items()):
        try:
            got = int(client.metadata(model_name, label=label)["model_spec"]["version"])
        except ServingError as err:
            # NOT_FOUND: the label resolves to a version number nothing serves (TF Serving's
            # "Servable not found for request: Specific(name, N)").
            name = "label_unloaded" if err.code == "NOT_FOUND" else "label_unknown"
            checks.append(Check(name, False, f"label {label!r} (expected version {want}): "
                                f"{err.code}: {err.message}"))
            continue
        except (KeyError, TypeError, ValueError) as exc:
            checks.append(Check("metadata_failed", False, f"label {label!r}: {exc}"))
            continue
        checks.append(Check("label" if got == int(want) else "label_version", got == int(want),
                            f"label {label!r} answers version {got}, expected {want}"))
    return checks


def _text(value: Any) -> str:
    if isinstance(value, Mapping) and "b64" in value:
        import base64

        return base64.b64decode(value["b64"]).decode()
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_named(outputs: Any, names: list[str]) -> dict[str, Any]:
    """Columnar ``outputs`` by tensor name (a single output comes back unnamed)."""
    if isinstance(outputs, Mapping) and set(names) <= set(outputs):
        return dict(outputs)
    if len(names) == 1:
        return {names[0]: outputs}
    raise KeyError(f"served outputs {sorted(outputs) if isinstance(outputs, Mapping) else '?'}"
                   f", published {names}")
