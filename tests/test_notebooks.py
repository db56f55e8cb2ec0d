"""Every course notebook, executed top to bottom with its CI parameters: a failing cell fails CI."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from forgekit.course.runner import ci_parameters, discover, run_notebook
from tests.conftest import NOTEBOOK_PROPERTY, ROOT

NOTEBOOKS = discover([ROOT / "notebooks"])
RSS_BUDGET_MB = 1024  # 1.0 GiB. TF alone is ~0.6 GiB; a lesson that needs more does too much at once
# Binder's 2 GB covers JupyterLab, the kernel and every process it starts (servers, killed
# training runs, fresh interpreters, C/Java loaders): every lesson keeps the sum over the kernel's
# process tree within this, at the CI parameters that run the way Binder does (one fresh process
# at a time).
TREE_RSS_BUDGET_MB = 1536


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_runs_with_ci_parameters(notebook, tmp_path, record_property):
    params = {**ci_parameters(notebook), "output_dir": str(tmp_path / "artifacts")}
    result = run_notebook(notebook, tmp_path / notebook.name, params, strict_claims=True)
    record_property(NOTEBOOK_PROPERTY, asdict(result))  # summarised by tests/conftest.py
    assert result.ok, f"{notebook.name} failed at {result.failed_cell}"
    assert result.peak_rss_mb is not None and result.peak_rss_mb < RSS_BUDGET_MB, (
        f"{notebook.name}: kernel peak RSS {result.peak_rss_mb} MiB exceeds {RSS_BUDGET_MB} MiB")
    assert result.peak_tree_rss_mb is not None and result.peak_tree_rss_mb <= TREE_RSS_BUDGET_MB, (
        f"{notebook.name}: process-tree RSS {result.peak_tree_rss_mb} MiB exceeds "
        f"{TREE_RSS_BUDGET_MB} MiB")
    assert (tmp_path / "artifacts").is_dir(), "the notebook did not create its output_dir"
