"""tools/drift.py: what to install instead of the pins, and the verdict-by-verdict comparison.

The comparison is exercised on synthetic report.json / claims.json rows shaped exactly like the
ones forgekit.course.runner writes (RunResult.as_report() and Claim.as_record()).
"""

from __future__ import annotations

import json

import pytest

from forgekit.course.claims import Claim
from tools import drift


def _claim(notebook: str, text: str, holds: bool, **evidence) -> dict:
    c = Claim(text, holds, evidence, notebook)
    return c.as_record()


def _row(notebook: str, status: str = "ok", failed_cell: str | None = None) -> dict:
    return {"notebook": notebook, "status": status, "seconds": 3.0, "peak_rss_mb": 500.0,
            "failed_cell": failed_cell, "peak_tree_rss_mb": 500.0, "claims": 2,
            "claims_failed": 0}


PINNED_REPORT = [_row("01_a.ipynb"), _row("02_b.ipynb")]
PINNED_CLAIMS = [
    _claim("01_a", "the .keras file keeps the optimizer", True, slots=4),
    _claim("01_a", "H5 loses the compile config", True),
    _claim("02_b", "weights are 5x smaller", True, ratio=5.2),
    _claim("02_b", "weights are 5x smaller", True, ratio=5.1),  # same text, claimed twice
]


def test_identical_runs_change_nothing():
    result = drift.compare(PINNED_REPORT, PINNED_CLAIMS, PINNED_REPORT, PINNED_CLAIMS)
    assert not any(n["changed"] for n in result["notebooks"])
    report = {"requested": [], "pinned": {}, "tried": {}, "moved": {"keras": ["1", "2"]},
              "same_as_pinned": False, "comparison": result}
    assert "No notebook checked a claim" not in drift.render(report)
    no_claims = drift.compare(PINNED_REPORT, [], PINNED_REPORT, [])
    assert "No notebook checked a claim" in drift.render({**report, "comparison": no_claims})
    assert result["claims_changed"] == [] and result["claims_unchanged"] == 4
    assert result["claims_only_pinned"] == result["claims_only_tried"] == []


def test_a_claim_that_stops_holding_and_a_notebook_that_fails_are_reported():
    tried_report = [_row("01_a.ipynb"), _row("02_b.ipynb", "failed", "cell 7 ('x = 1'): Boom")]
    tried_claims = [
        _claim("01_a", "the .keras file keeps the optimizer", False, slots=0),
        _claim("01_a", "H5 loses the compile config", True),
        _claim("02_b", "weights are 5x smaller", True, ratio=5.2),  # the second one not reached
    ]
    result = drift.compare(PINNED_REPORT, PINNED_CLAIMS, tried_report, tried_claims)
    changed = result["claims_changed"]
    assert [(c["notebook"], c["text"], c["pinned"], c["tried"]) for c in changed] == [
        ("01_a", "the .keras file keeps the optimizer", "holds", "does not hold")]
    assert changed[0]["evidence"] == [{"slots": 4}, {"slots": 0}]
    assert result["claims_unchanged"] == 2
    assert [(c["text"], c["tried"]) for c in result["claims_only_pinned"]] == [
        ("weights are 5x smaller", None)]
    status = {n["notebook"]: (n["pinned"], n["tried"], n["changed"]) for n in result["notebooks"]}
    assert status == {"01_a.ipynb": ("ok", "ok", False), "02_b.ipynb": ("ok", "failed", True)}

    pins = {"tensorflow": "2.21.0", "keras": "3.15.1", "tf-keras": "2.21.0"}
    report = {"requested": ["keras==3.12.*"], "pinned": pins, "tried": {**pins, "keras": "3.12.4"},
              "moved": {"keras": ["3.15.1", "3.12.4"], "rich": ["14.0", "13.0"]},
              "same_as_pinned": False, "comparison": result}
    page = drift.render(report)
    assert "1 notebook(s) changed status, 1 claim(s) changed verdict" in page
    assert "| 02_b.ipynb | ok | failed ⚠ |" in page and "Boom" in page
    assert "keras 3.12.4, tf-keras 2.21.0 (asked for: keras==3.12.*)" in page
    assert "rich 14.0 → 13.0" in page
    assert "| 01_a | the .keras file keeps the optimizer | holds | does not hold |" in page


def test_a_notebook_missing_from_one_run_is_not_run_there():
    result = drift.compare(PINNED_REPORT, PINNED_CLAIMS, PINNED_REPORT[:1], PINNED_CLAIMS[:2])
    row = [n for n in result["notebooks"] if n["notebook"] == "02_b.ipynb"][0]
    assert (row["tried"], row["changed"]) == ("not run", True)
    assert len(result["claims_only_pinned"]) == 2


def test_same_versions_say_so_and_write_both_files(tmp_path):
    pins = {"tensorflow": "2.21.0", "keras": "3.15.1", "tf-keras": "2.21.0"}
    report = {"requested": [], "pinned": pins, "tried": pins, "moved": drift.moved(pins, pins),
              "same_as_pinned": True, "comparison": None}
    page = drift.write(report, tmp_path)
    assert "versions tried are the pinned ones" in page.read_text()
    assert "tensorflow 2.21.0, keras 3.15.1, tf-keras 2.21.0 (newest on PyPI)" in page.read_text()
    assert json.loads((tmp_path / "drift.json").read_text())[0]["same_as_pinned"] is True


def test_the_matrix_spans_the_supported_range_and_reports_each_variant(tmp_path):
    """`make drift` with no --with tries both ends of the range; the previous release the way
    Colab runs it (another Python, TensorFlow preinstalled, forgekit from a wheel)."""
    names = [v.name for v in drift.MATRIX]
    assert names == ["previous", "newest"]
    previous = drift.MATRIX[0]
    assert previous.colab_like and previous.python == "3.12"
    assert "tensorflow==2.20.*" in previous.requested and "tf-keras==2.20.*" in previous.requested
    pins = {"tensorflow": "2.21.0", "keras": "3.15.1", "tf-keras": "2.21.0"}
    old = {"tensorflow": "2.20.0", "keras": "3.10.0", "tf-keras": "2.20.1"}
    reports = [
        {"variant": "previous", "requested": list(previous.requested), "pinned": pins,
         "tried": old, "moved": drift.moved(pins, old), "same_as_pinned": False,
         "install": "Python 3.12, ... preinstalled: the TensorFlow stack already there was kept",
         "comparison": drift.compare(PINNED_REPORT, PINNED_CLAIMS, PINNED_REPORT, PINNED_CLAIMS)},
        {"variant": "newest", "requested": [], "pinned": pins, "tried": pins,
         "moved": {}, "same_as_pinned": True, "comparison": None}]
    text = drift.write(reports, tmp_path).read_text()
    assert "# `previous`: the course on tensorflow 2.20.0, keras 3.10.0, tf-keras 2.20.1" in text
    assert "stack already there was kept" in text
    assert "# `newest`: " in text and "versions tried are the pinned ones" in text
    assert [r["variant"] for r in json.loads((tmp_path / "drift.json").read_text())] == names


def test_what_is_installed_instead_of_the_pins():
    assert drift.overrides() == ["keras", "tensorflow", "tf-keras"]
    assert drift.overrides(["Keras==3.12.*"]) == ["Keras==3.12.*", "tensorflow", "tf-keras"]
    assert drift.overrides(["h5py<3.14"]) == ["h5py<3.14", "keras", "tensorflow", "tf-keras"]
    with pytest.raises(SystemExit, match="not a requirement"):
        drift.overrides(["keras 3.12"])
    assert drift.moved({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "1"}) == {
        "b": ("2", "3"), "c": (None, "1")}
