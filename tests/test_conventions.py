"""The notebook rules from CONTRIBUTING.md, checked on every notebook in the course."""

from __future__ import annotations

import re

import nbformat
import papermill
import pytest

from forgekit.course.map import LESSONS
from forgekit.course.runner import ci_parameters, discover
from tests.conftest import ROOT

NOTEBOOKS = discover([ROOT / "notebooks"])


def _cells(nb, kind):
    return [c for c in nb.cells if c.cell_type == kind]


@pytest.fixture(params=NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_course_has_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].stem == "00_start_here"


def test_valid_and_output_free(notebook):
    path, nb = notebook
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == "python3"
    for i, cell in enumerate(_cells(nb, "code")):
        assert not cell.outputs, f"{path.name}: code cell {i} has stored outputs"
        assert cell.execution_count is None, f"{path.name}: code cell {i} has an execution count"


def test_named_after_the_course_map(notebook):
    path, _ = notebook
    assert path.stem in {lesson.notebook for lesson in LESSONS}, f"{path.name} not in course map"


def test_parameters_cell_and_ci_parameters(notebook):
    path, nb = notebook
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected exactly one cell tagged 'parameters'"
    declared = {p["name"]: p for p in papermill.inspect_notebook(str(path)).values()}
    assert "output_dir" in declared, f"{path.name}: parameters must define output_dir"
    assert declared["output_dir"]["default"].strip("'\"").startswith("../artifacts/")
    unknown = set(ci_parameters(path)) - set(declared)
    assert not unknown, f"{path.name}: CI parameters not in the parameters cell: {unknown}"
    sources = [c.source for c in _cells(nb, "code")]
    assert any("forgekit.paths.output_dir(output_dir)" in s for s in sources)


def test_lesson_shape(notebook):
    path, nb = notebook
    number = path.stem[:2]
    markdown = [c.source for c in _cells(nb, "markdown")]
    code = _cells(nb, "code")
    assert markdown[0].startswith(f"# {number} · "), f"{path.name}: title cell '# {number} · …'"
    assert any(s.startswith("## Objectives") for s in markdown)
    assert "forgekit.quiet_tf()" in code[0].source, "setup cell calls forgekit.quiet_tf() first"
    assert "parameters" in code[1].metadata.get("tags", []), "parameters cell follows setup"
    assert any("Predict, then run" in s for s in markdown), f"{path.name}: no predict-then-run"
    assert any(s.startswith("## Exercise") for s in markdown)
    assert any(s.startswith("## Summary") for s in markdown)
    solutions = [c for c in code if c.metadata.get("jupyter", {}).get("source_hidden")]
    assert solutions, f"{path.name}: no hidden solution cell"
    assert all("assert feedback.passed" in c.source for c in solutions)
    # A learner running top to bottom never has the exercise solved for them (runner runs it).
    assert all(c.source.startswith("%%solution\n") for c in solutions), (
        f"{path.name}: a solution cell must start with %%solution")
    assert "%load_ext forgekit.exercises" in code[0].source, "setup cell loads %%solution"
    # Colab (or any Jupyter without forgekit): the setup cell installs it first, and only then.
    setup = code[0].source
    guard = 'if importlib.util.find_spec("forgekit") is None:'
    assert guard in setup and "%pip install" in setup, f"{path.name}: no install-if-missing line"
    assert setup.index(guard) < setup.index("import forgekit\n"), "install before import"


def test_no_absolute_paths(notebook):
    path, nb = notebook
    for cell in _cells(nb, "code"):
        hit = re.search(r"""["'](/(home|work|tmp|root|Users|mnt)/|[A-Z]:\\\\)""", cell.source)
        assert not hit, f"{path.name}: absolute path in code: {cell.source[:80]!r}"


def test_parameters_cell_is_labelled(notebook):
    # A learner sees what the cell is for; `make strip` adds the label.
    from tools.strip_notebooks import PREFIX

    path, nb = notebook
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert tagged and tagged[0].source.startswith(PREFIX), (
        f"{path.name}: the parameters cell's first line must be a comment starting "
        f"{PREFIX!r}; run `make strip`")
