"""Best-effort fallbacks catch what they expect and log the rest (issue 25: no bare
``except Exception: pass`` in the runner, no ``suppress(Exception)`` in the canary)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest


class _CellError(Exception):
    cell_index, ename, evalue = 0, "ValueError", "boom"


def test_describe_failure_is_quiet_about_a_missing_notebook_and_logs_a_surprise(
        tmp_path, monkeypatch, caplog):
    import nbformat

    from forgekit.course import runner

    with caplog.at_level(logging.WARNING, "forgekit.course.runner"):
        text = runner._describe_failure(tmp_path / "never-written.ipynb", _CellError())
    assert text == "a cell: ValueError: boom" and caplog.records == []

    def surprise(*_a, **_k):
        raise RuntimeError("a bug while reading the notebook")

    monkeypatch.setattr(nbformat, "read", surprise)
    with caplog.at_level(logging.WARNING, "forgekit.course.runner"):
        text = runner._describe_failure(tmp_path / "out.ipynb", _CellError())
    assert text == "a cell: ValueError: boom"  # the error itself is still reported
    assert "cannot name the failing cell" in caplog.text and "a bug while reading" in caplog.text


def test_canary_logs_an_unexpected_failure_before_falling_back(tmp_path, caplog):
    pytest.importorskip("tensorflow")
    from forgekit.serving import deploy

    class Endpoints:
        def serve(self, x):
            raise RuntimeError("unexpected inside serve")

    signature = {"inputs": {"x": {}}, "outputs": {"y": {}}}
    with caplog.at_level(logging.DEBUG, "forgekit.serving.deploy"), \
            pytest.raises(OSError):  # the fallback reload of a missing export fails, as it must
        deploy._canary(None, Endpoints(), Path(tmp_path / "missing"), signature,
                       {"x": [[1.0]]}, 1, 0)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "unexpected inside serve" in caplog.text
