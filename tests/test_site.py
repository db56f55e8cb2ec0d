"""The built site: a landing page for learners linking each executed lesson, and the run report
on its own page."""

from __future__ import annotations

import re

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from forgekit.course import LESSONS
from forgekit.course.runner import RunResult, run_course
from forgekit.course.site import BINDER_URL, write_site
from tests.conftest import ROOT


def _result(notebook, status="ok", claims=()):
    return RunResult(notebook, status, 12.3, 456.0, None if status == "ok" else "cell 4 ('x'): E",
                     "", peak_tree_rss_mb=789.0, claims=list(claims))


def _links(page):
    return set(re.findall(r"href='([^']+)'", page)) | set(re.findall(r'href="([^"]+)"', page))


def test_landing_page_links_executed_lessons_and_the_report(tmp_path):
    ran = [LESSONS[0], LESSONS[2]]
    for lesson in ran:
        (tmp_path / f"{lesson.notebook}.html").write_text("<p>executed</p>")
    results = [_result(f"{ran[0].notebook}.ipynb"),
               _result(f"{ran[1].notebook}.ipynb", "failed",
                       claims=[{"text": "the file is smaller", "holds": False}])]
    index = write_site(tmp_path, results).read_text()

    links = _links(index)
    assert {f"{lesson.notebook}.html" for lesson in ran} <= links
    assert "report.html" in links and BINDER_URL.replace("&", "&amp;") in index
    assert f"{LESSONS[1].notebook}.html" not in links, "a lesson not executed has no link"
    assert all(lesson.title in index for lesson in LESSONS), "the whole course map is listed"
    assert "make lab" in index and "failed in this build" in index
    assert "456" not in index, "the run's numbers belong on the report page"

    report = (tmp_path / "report.html").read_text()
    assert {f"{lesson.notebook}.html" for lesson in ran} | {"index.html"} <= _links(report)
    for number in ("12.3", "456", "789", "cell 4", "the file is smaller"):
        assert number in report, number


def test_readme_points_at_the_same_binder():
    assert BINDER_URL in (ROOT / "README.md").read_text()


def test_run_course_writes_the_landing_page_and_the_report(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = new_notebook(cells=[new_markdown_cell("# 00 · tiny"), new_code_cell("x = 1")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"}})
    nbformat.write(nb, folder / f"{LESSONS[0].notebook}.ipynb")
    run_course([folder], out=tmp_path / "build")
    site = tmp_path / "build" / "site"
    assert f"{LESSONS[0].notebook}.html" in _links((site / "index.html").read_text())
    assert (site / f"{LESSONS[0].notebook}.html").exists()
    assert f"{LESSONS[0].notebook}.ipynb" in (site / "report.html").read_text()
