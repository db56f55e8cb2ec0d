"""Every verdict a lesson states has a checked claim behind it, and a broken fact fails the build.

The rule, simple enough to enforce: a lesson is cut into its ``##`` sections; every section that
runs code (other than the exercise) must call ``claim(`` in one of its cells. Prose never types a
measured number: decimals, percentages and ratios in markdown are allowed only as version
numbers, in code spans, or inside a quotation of someone else's claim.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from forgekit.course.runner import ci_parameters, run_notebook
from tests.conftest import ROOT

# Lessons held to the section rule (every experiment section checks a claim). A lesson joins
# once each of its sections that runs code states its verdict as a claim; 04 and 06-09 have
# set-up sections (a model to convert, a drifting world, a store) with no verdict yet.
CHECKED = ("00_start_here", "01_whole_model_formats", "02_weights_and_architecture",
           "03_checkpoints_and_resume", "05_wrong_path_failures", "10_explorer_and_claims",
           "11_migrating_keras2")
# Every lesson: no measured number typed into prose.
ALL_LESSONS = tuple(sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
NOT_EXPERIMENTS = ("## Objectives", "## Exercise", "## Summary")
MIN_CLAIMS = 4
_VERSION = re.compile(r"(TensorFlow|Keras|Python|tf-keras|tf_keras|TF|h5py|NumPy)\s+\d+(\.\d+)+")


def _sections(nb):
    """(heading, [cells]) for each ``##`` section; cells before the first heading are skipped,
    and so are the setup, parameters and output-folder cells (plumbing, not experiments)."""
    sections, current = [], None
    for cell in nb.cells:
        if cell.cell_type == "code" and ("%load_ext" in cell.source
                                         or "parameters" in cell.metadata.get("tags", [])
                                         or "forgekit.paths.output_dir(output_dir)" in cell.source):
            continue
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            current = (cell.source.splitlines()[0], [])
            sections.append(current)
        elif current is not None:
            current[1].append(cell)
    return sections


def _lesson(stem):
    path = ROOT / "notebooks" / f"{stem}.ipynb"
    if not path.exists():
        pytest.skip(f"{stem} is not in this checkout")
    return path, nbformat.read(path, as_version=4)


@pytest.mark.parametrize("stem", CHECKED)
def test_every_experiment_section_checks_a_claim(stem):
    path, nb = _lesson(stem)
    unchecked = [heading for heading, cells in _sections(nb)
                 if not heading.startswith(NOT_EXPERIMENTS)
                 and any(c.cell_type == "code" for c in cells)
                 and not any(c.cell_type == "code" and "claim(" in c.source for c in cells)]
    assert not unchecked, f"{path.name}: sections that run code but check no claim: {unchecked}"
    count = sum(c.source.count("claim(") for c in nb.cells if c.cell_type == "code")
    assert count >= MIN_CLAIMS, f"{path.name}: {count} claims, fewer than {MIN_CLAIMS}"


@pytest.mark.parametrize("stem", ALL_LESSONS)
def test_every_lesson_checks_its_verdicts_as_claims(stem):
    _, nb = _lesson(stem)
    count = sum(c.source.count("claim(") for c in nb.cells if c.cell_type == "code")
    assert count >= MIN_CLAIMS, f"{stem}: {count} claims, fewer than {MIN_CLAIMS}"


@pytest.mark.parametrize("stem", ALL_LESSONS)
def test_prose_types_no_measured_number(stem):
    path, nb = _lesson(stem)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        text = re.sub(r"`[^`]*`", "", cell.source)  # code spans name calls and files, not results
        text = re.sub(r'"[^"]*"', "", text)  # a quoted claim (the article's) is not a measurement
        text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
        text = _VERSION.sub("", text)
        hit = re.search(r"\d+\.\d+|\d+(\.\d+)?\s?%|\d+\.?\d*x\b", text)
        assert not hit, f"{path.name}: prose types the number {hit.group(0)!r}: {cell.source[:120]!r}"


@pytest.mark.notebook
def test_breaking_a_measured_fact_fails_the_notebook_with_the_claims_text(tmp_path):
    """Lesson 00, cut after its reload claim, with ``load_model`` made to return changed weights."""
    path, nb = _lesson("00_start_here")
    text = "the reloaded model's predictions are exactly equal"
    at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and text in c.source)
    sabotage = nbformat.v4.new_code_cell(
        "_load_model = keras.models.load_model\n\n"
        "def _nudged(*args, **kwargs):  # a reload that no longer gives back the same weights\n"
        "    m = _load_model(*args, **kwargs)\n"
        "    m.set_weights([w + 1e-3 for w in m.get_weights()])\n"
        "    return m\n\n"
        "keras.models.load_model = _nudged")
    nb.cells = nb.cells[:at] + [sabotage] + nb.cells[at:at + 1]
    broken = tmp_path / path.name
    nbformat.write(nb, broken)
    params = {**ci_parameters(path), "output_dir": str(tmp_path / "artifacts")}
    result = run_notebook(broken, tmp_path / "out" / path.name, params, strict_claims=True)
    assert not result.ok
    assert "ClaimError" in result.failed_cell and text in result.failed_cell, result.failed_cell
    failed = [c for c in result.claims if not c["holds"]]
    assert [c["text"].startswith(text) for c in failed] == [True]


@pytest.mark.parametrize("stem", ALL_LESSONS)
def test_claim_texts_are_fixed_so_runs_can_be_compared(stem):
    # `make drift` matches claims across TensorFlow versions by their text: a measured number in
    # the text makes the same claim look new. Numbers go in evidence=.
    _, nb = _lesson(stem)
    formatted = [c.source[:80] for c in nb.cells
                 if c.cell_type == "code" and re.search(r"\bclaim\(\s*f[\"']", c.source)]
    assert not formatted, f"{stem}: claim text built with an f-string: {formatted}"
