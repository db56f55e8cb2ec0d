"""forgekit.course.claims: a verdict shown with its numbers, recorded, and fatal only in strict mode."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forgekit.course.claims import ClaimError, claim, read_claims, write_claims_json


def test_holding_claim_renders_check_and_evidence(monkeypatch):
    monkeypatch.delenv("FORGEKIT_CLAIMS_FILE", raising=False)
    c = claim("ratio is near one", abs(np.float32(1.004) - 1) < 0.01,
              evidence={"ratio": np.float32(1.004), "n": np.int64(3)})
    assert c.holds and c.verdict == "holds"
    assert str(c).startswith("✓ ratio is near one") and "ratio = 1.004" in str(c)
    assert c.evidence == {"ratio": pytest.approx(1.004, rel=1e-6), "n": 3}
    assert type(c.evidence["n"]) is int  # NumPy scalars become JSON-friendly Python values


def test_unmet_claim_is_loud_and_raises_only_when_strict(monkeypatch):
    monkeypatch.setenv("FORGEKIT_STRICT_CLAIMS", "0")
    c = claim("one is more than two", 1 > 2, evidence={"a": 1})
    assert not c.holds and "DOES NOT HOLD" in str(c) and "does not hold" in c._repr_html_()
    monkeypatch.setenv("FORGEKIT_STRICT_CLAIMS", "1")
    with pytest.raises(ClaimError, match="one is more than two.*a = 1"):
        claim("one is more than two", 1 > 2, evidence={"a": 1})


def test_claims_are_appended_to_the_claims_file(tmp_path, monkeypatch):
    target = tmp_path / "nb.claims.jsonl"
    monkeypatch.setenv("FORGEKIT_CLAIMS_FILE", str(target))
    monkeypatch.setenv("FORGEKIT_NOTEBOOK", "01_x")
    claim("first", True)
    claim("second", False, evidence={"inf": float("inf"), "path": tmp_path})
    rows = read_claims(target)
    assert [(r["text"], r["verdict"], r["notebook"]) for r in rows] == [
        ("first", "holds", "01_x"), ("second", "does not hold", "01_x")]
    assert rows[1]["evidence"] == {"inf": "inf", "path": str(tmp_path)}
    out = write_claims_json(rows, tmp_path / "build" / "claims.json")
    assert json.loads(out.read_text()) == rows


def test_a_claim_needs_text():
    with pytest.raises(ValueError):
        claim("  ", True)


def test_an_unmet_claim_on_other_versions_is_shown_as_drift(monkeypatch):
    """On a learner's own TensorFlow (Colab) a ✗ names both versions instead of calling the
    lesson wrong; under the course's versions it stays a plain ✗."""
    from forgekit import package_versions as versions
    from forgekit.course import claims as claims_module

    monkeypatch.delenv(claims_module.STRICT_ENV, raising=False)
    monkeypatch.delenv(claims_module.CLAIMS_FILE_ENV, raising=False)
    here = dict(versions.COURSE_VERSIONS)
    monkeypatch.setattr(versions, "installed_version", lambda name: here.get(name))
    same = claims_module.claim("a fact", False, {"n": 3})
    assert same.drift is None and "CLAIM DOES NOT HOLD" in str(same)
    here["tensorflow"] = "2.20.0"
    moved = claims_module.claim("a fact", False, {"n": 3})
    assert moved.drift == f"TensorFlow 2.20.0 (the course: {versions.COURSE_VERSIONS['tensorflow']})"
    assert "DRIFT - on your TensorFlow 2.20.0" in str(moved) and "n = 3" in str(moved)
    assert "Drift: on your TensorFlow 2.20.0" in moved._repr_html_()
    assert moved.as_record()["drift"] == moved.drift
    assert claims_module.claim("a fact", True).drift is None


@pytest.mark.parametrize("holds", ["False", [0], [], None, 1, 0.0, np.array([True, True])])
def test_only_a_real_boolean_is_a_verdict(holds, tmp_path, monkeypatch):
    target = tmp_path / "nb.claims.jsonl"
    monkeypatch.setenv("FORGEKIT_CLAIMS_FILE", str(target))
    with pytest.raises(TypeError, match="needs True or False") as err:
        claim("the thing holds", holds)
    assert type(holds).__name__ in str(err.value)
    assert not target.exists()  # nothing recorded for a call that is a mistake


def test_an_outcome_is_not_a_verdict():
    from forgekit.outcome import Outcome

    with pytest.raises(TypeError, match="got Outcome"):
        claim("the load failed", Outcome(ok=False))
    assert claim("the load failed", Outcome(ok=False).ok is False).holds


def test_numpy_booleans_are_verdicts(monkeypatch):
    monkeypatch.delenv("FORGEKIT_CLAIMS_FILE", raising=False)
    assert claim("equal", np.float32(1) == np.float32(1)).holds is True
    assert claim("all equal", np.all(np.zeros(3) == 0)).holds is True
    assert claim("not equal", np.bool_(False)).holds is False
