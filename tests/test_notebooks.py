"""Every course notebook, executed top to bottom with its CI parameters: a failing cell fails CI."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict

import pytest

from forgekit.course.runner import ci_parameters, discover, run_notebook
from tests.conftest import NOTEBOOK_PROPERTY, ROOT

NOTEBOOKS = discover([ROOT / "notebooks"])
# Memory bounds, on the anonymous part of PSS (forgekit.measure.memory): what the lesson's
# processes allocated, counted once however they share it. A sum of RSS counts libtensorflow's
# ~450 MiB once per process and moves with the page cache; PSS's file part is split with every
# other process mapping the same library (the other xdist worker's kernel), so it moves with the
# machine's load (tree PSS 373-983 MiB here for the same lessons). The anonymous part does not.
#
# Each bound is the lesson's peak at CI parameters (2 workers, 2 cores) plus at least 25 %,
# rounded up to 50 MiB: a second TensorFlow process at once (+~230 MiB of anonymous memory at
# import alone) or a model kept twice breaks it on any machine of this kind; exact figures are
# in `make run`'s report. Against Binder's 2 GiB: the largest bound (850 MiB) + one copy of the
# libraries the tree maps (~450 MiB of file pages) + the Jupyter server (76 MiB PSS, 72 of it
# anonymous, measured idle with JupyterLab served) leaves over 600 MiB of headroom.
TREE_ANON_PEAK_MB = {  # measured peaks, MiB
    "00_start_here": 268, "01_whole_model_formats": 530, "02_weights_and_architecture": 374,
    "03_checkpoints_and_resume": 610, "04_tflite": 290, "05_wrong_path_failures": 480,
    "06_serving_incident": 525, "07_deploying_with_tf_serving": 484, "08_audit_trail": 519,
    "09_cross_language": 534, "10_explorer_and_claims": 638, "11_migrating_keras2": 520,
}
KERNEL_ANON_PEAK_MB = 416  # the largest single process of any lesson (03's kernel)


def _bound(peak_mb: float) -> int:
    return int(math.ceil(peak_mb * 1.25 / 50) * 50)


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_runs_with_ci_parameters(notebook, tmp_path, record_property):
    params = {**ci_parameters(notebook), "output_dir": str(tmp_path / "artifacts")}
    result = run_notebook(notebook, tmp_path / notebook.name, params, strict_claims=True)
    record_property(NOTEBOOK_PROPERTY, asdict(result))  # summarised by tests/conftest.py
    assert result.ok, f"{notebook.name} failed at {result.failed_cell}"
    # A lesson without a figure of its own yet gets the largest lesson's bound.
    tree_bound = _bound(TREE_ANON_PEAK_MB.get(notebook.stem, max(TREE_ANON_PEAK_MB.values())))
    if result.peak_tree_anon_mb is not None:  # Linux: smaps_rollup is readable
        assert result.peak_tree_anon_mb <= tree_bound, (
            f"{notebook.name}: its processes allocated {result.peak_tree_anon_mb} MiB at once "
            f"(anonymous PSS), over its bound of {tree_bound} MiB: a second TensorFlow process "
            "at the same time, or a model kept twice? (tree PSS "
            f"{result.peak_tree_pss_mb} MiB, tree RSS {result.peak_tree_rss_mb} MiB)")
        assert result.peak_largest_anon_mb <= _bound(KERNEL_ANON_PEAK_MB), (
            f"{notebook.name}: one process allocated {result.peak_largest_anon_mb} MiB, over "
            f"{_bound(KERNEL_ANON_PEAK_MB)} MiB")
    else:
        assert sys.platform != "linux", "on Linux the sampler must read smaps_rollup"
    assert (tmp_path / "artifacts").is_dir(), "the notebook did not create its output_dir"
