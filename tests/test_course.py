"""README, CI script and course map agree; small forgekit helpers behave."""

from __future__ import annotations

import pytest

from forgekit.course.map import LESSONS, course_map
from forgekit.outcome import attempt, captured
from forgekit.paths import MARKER, output_dir, project_root, tree
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    commands = [ln.strip() for ln in script.splitlines()
                if ln.strip() and not ln.startswith(("#", "set ", "cd "))]
    assert commands == ["make test"]
    assert "make test" in README and "make lab" in README and "make run" in README


def test_readme_lists_every_lesson_and_binder_badge():
    for lesson in LESSONS:
        assert lesson.notebook in README, f"README course map misses {lesson.notebook}"
    assert "urlpath=lab/tree/notebooks/00_start_here.ipynb" in README


def test_readme_map_gives_each_lesson_its_minutes_and_names_the_source_article():
    import re

    for lesson in LESSONS:
        row = re.search(rf"^\| {lesson.number} \| `{lesson.notebook}` \| .*? \| (\d+) \|", README,
                        re.M)
        assert row and int(row.group(1)) == lesson.minutes, lesson.notebook
    flat = " ".join(README.split())
    assert "TF Model Save/Load — Avoid Wrong Version in Serving" in flat
    assert "## Who it is for" in README and "**What is emulated.**" in README


def test_course_map_marks_ready_lessons():
    rows = dict((lsn.notebook, ok) for lsn, ok in course_map(ROOT / "notebooks").rows())
    assert rows["00_start_here"] is True
    on_disk = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert {name for name, ok in rows.items() if ok} == on_disk


def test_output_dir_is_emptied_and_tree_shows_sizes(tmp_path):
    folder = output_dir(tmp_path / "lesson")
    (folder / "a.bin").write_bytes(b"x" * 2048)
    (folder / "sub").mkdir()
    assert "a.bin  (2.0 KB)" in tree(folder) and "sub/" in tree(folder)
    assert MARKER not in tree(folder)  # forgekit's bookkeeping is not the lesson's layout
    assert [p.name for p in output_dir(folder).iterdir()] == [MARKER]
    with pytest.raises(ValueError):
        output_dir("/")


def _project(tmp_path):
    """A project like this one: notebooks/ next to .git and pyproject.toml, with work in it."""
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\n")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "lesson.ipynb").write_text("{}")
    return root


@pytest.mark.parametrize("given", ["..", ".", "../..", "~"])
def test_output_dir_never_empties_the_project_cwd_an_ancestor_or_home(tmp_path, monkeypatch,
                                                                      given):
    root = _project(tmp_path)
    home = root / "notebooks" / "me" if given == "~" else tmp_path / "elsewhere"
    home.mkdir(parents=True, exist_ok=True)
    (home / "notes.txt").write_text("mine")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(root / "notebooks")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ValueError, match="Refusing to empty"):
        output_dir(given)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_output_dir_never_empties_a_folder_it_did_not_create(tmp_path):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "thesis.tex").write_text("months of work")
    with pytest.raises(ValueError, match="did not create it"):
        output_dir(mine)
    assert (mine / "thesis.tex").read_text() == "months of work"
    adopted = tmp_path / "empty"
    adopted.mkdir()
    assert (output_dir(adopted) / MARKER).is_file()  # an empty folder is adopted
    (adopted / "old.bin").write_bytes(b"x")
    assert [p.name for p in output_dir(adopted).iterdir()] == [MARKER]  # and emptied later


def test_project_root_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGEKIT_ROOT", str(tmp_path))
    assert project_root() == tmp_path.resolve()
    monkeypatch.delenv("FORGEKIT_ROOT")
    assert project_root(ROOT / "forgekit") == ROOT


def test_outcome_keeps_type_and_first_line():
    bad = attempt(int, "x")
    assert not bad.ok and bad.error_type == "ValueError" and "invalid literal" in bad.message
    with captured() as out:
        raise KeyError("line one\nline two")
    assert out.error_type == "KeyError" and "line two" not in out.message
    assert attempt(int, "3").value == 3


def test_readme_status_matches_notebooks_on_disk():
    import re

    from forgekit.course.site_pages import colab_url

    on_disk = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    rows = re.findall(r"^\| \d\d \| `(\w+)` \|.*\| \d+ \| (.*) \|$", README, re.M)
    assert len(rows) == len(LESSONS)
    for name, colab in rows:
        assert name in on_disk, f"README maps {name}, which has no notebook"
        assert colab == f"[Colab]({colab_url(name)})", f"{name}: the map's Colab link"
