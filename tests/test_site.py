"""The built site: a page per executed lesson with its title and navigation, the landing page,
the run report and the claims page; widgets and solutions degrade on the static pages.

Stand-in executed notebooks named like the lessons keep this fast (no TensorFlow); the widget
test executes a real ipywidgets output with nbclient, and the last test runs ``run_course``."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from forgekit.course import LESSONS
from forgekit.course.runner import RunResult, run_course
from forgekit.course.site import BINDER_URL, build_site, write_site
from forgekit.course.site_pages import (
    WIDGET_MIME,
    WIDGET_NOTE,
    binder_url,
    colab_url,
    render_lesson,
)
from tests.conftest import ROOT

KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def _result(notebook, status="ok", claims=(), output=""):
    return RunResult(notebook, status, 12.3, 456.0, None if status == "ok" else "cell 4 ('x'): E",
                     output, peak_tree_rss_mb=789.0, claims=list(claims))


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (tag, target)
        self.rel: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("href", "src"):
            if a.get(key):
                self.links.append((tag, a[key]))
        if tag == "a" and a.get("rel") and a.get("href"):
            self.rel[a["rel"]] = a["href"]


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _links(page):
    return set(re.findall(r"href='([^']+)'", page)) | set(re.findall(r'href="([^"]+)"', page))


def _local(target: str) -> bool:
    return not re.match(r"^([a-z][a-z0-9+.-]*:|//|#)", target, re.I)


def _title(page: Path) -> str:
    import html

    return html.unescape(re.search(r"<title>(.*?)</title>", page.read_text(), re.S).group(1))


def _stand_in(folder: Path, lesson, extra_cells=()) -> Path:
    """An executed notebook named like ``lesson``, with its title cell and one output."""
    cells = [new_markdown_cell(f"# {lesson.number} · {lesson.title}\n\nOne promise."),
             new_code_cell("print('measured', 6 * 7)", execution_count=1,
                           outputs=[new_output("stream", name="stdout", text="measured 42\n")]),
             *extra_cells]
    path = folder / f"{lesson.notebook}.ipynb"
    nbformat.write(new_notebook(cells=cells, metadata=KERNEL), path)
    return path


# claims.json rows as forgekit.course.claims writes them; article rows as forgekit.course.article
# records them (evidence keys agreed with it).
def _claims_fixture() -> list[dict]:
    def row(text, holds, evidence, notebook):
        return {"text": text, "holds": holds, "evidence": evidence, "notebook": notebook,
                "recorded_at": 0.0, "verdict": "holds" if holds else "does not hold"}

    article = [
        row("article: weights-only files are 5-10x smaller", True,
            {"article_row": "weights_smaller", "article_claim": "Weights-only files are 5 to 10 "
             "times smaller than the whole model", "measured_verdict": "does not hold",
             "reason": "ratio 1.1x: both files hold the same float32 weights",
             "experiment": "forgekit.sizes.breakdown", "lesson": "02_weights_and_architecture",
             "ratio": 1.1, "expected_verdict": "does not hold", "seconds": 0.52},
            "10_explorer_and_claims"),
        row("article: SavedModel keeps the optimizer", True,
            {"article_row": "savedmodel_optimizer", "article_claim": "A SavedModel keeps the "
             "optimizer state", "measured_verdict": "partly", "reason": "model.export drops it",
             "experiment": "forgekit.measure.probe.matrix", "lesson": "01_whole_model_formats",
             "optimizer_restored": 0, "expected_verdict": "partly"}, "10_explorer_and_claims"),
        row("article: flat paths serve the wrong version", False,
            {"article_row": "flat_path", "article_claim": "A model saved at a flat path is "
             "served as the wrong version", "measured_verdict": "error",
             "reason": "RuntimeError: server did not start", "experiment":
             "forgekit.serving.deploy.publish", "lesson": "06_serving_incident",
             "expected_verdict": "holds"}, "10_explorer_and_claims"),
    ]
    course = [
        row("the .keras file restores the optimizer", True, {"slots": 4},
            "01_whole_model_formats"),
        row("the export has no optimizer", True, {"optimizer_vars": 0}, "01_whole_model_formats"),
        row("the resumed run continues from the checkpoint's epoch", False, {"epoch": 3},
            "03_checkpoints_and_resume"),
        row("the stale v1 still answers", True, {"answering": 1}, "06_serving_incident"),
    ]
    return article + course


def _fake_build(tmp_path: Path, lessons, claims=()) -> Path:
    """What ``forgekit run`` leaves in ``out``: executed notebooks, report.json, claims.json."""
    out = tmp_path / "build"
    (out / "executed").mkdir(parents=True)
    report = []
    for lesson in lessons:
        _stand_in(out / "executed", lesson)
        report.append(_result(f"{lesson.notebook}.ipynb").as_report())
    (out / "report.json").write_text(json.dumps(report))
    (out / "claims.json").write_text(json.dumps(list(claims)))
    return out


def test_every_lesson_gets_a_titled_page_linked_to_its_neighbours(tmp_path):
    out = _fake_build(tmp_path, LESSONS, _claims_fixture())
    site = build_site(out).parent
    for i, lesson in enumerate(LESSONS):
        page = site / f"{lesson.notebook}.html"
        assert page.is_file(), f"no page for {lesson.notebook}"
        assert _title(page) == f"{lesson.number} · {lesson.title}"
        assert "measured 42" in page.read_text(), "the executed outputs are on the page"
        rel = _parse(page).rel
        assert rel.get("prev") == (f"{LESSONS[i - 1].notebook}.html" if i else None)
        assert rel.get("next") == (f"{LESSONS[i + 1].notebook}.html" if i + 1 < len(LESSONS)
                                   else None)
        links = {t for _, t in _parse(page).links}
        assert {"index.html", "claims.html", "report.html", binder_url(lesson.notebook),
                colab_url(lesson.notebook)} <= links
        assert colab_url(lesson.notebook).endswith(f"/blob/main/notebooks/{lesson.notebook}.ipynb")
    index = (site / "index.html").read_text()
    assert {f"{lesson.notebook}.html" for lesson in LESSONS} | {"claims.html"} <= _links(index)
    assert "claims.html" in _links((site / "report.html").read_text())


def test_navigation_skips_lessons_missing_from_the_build_and_every_local_link_resolves(tmp_path):
    built = [LESSONS[0], LESSONS[2], LESSONS[5]]
    out = _fake_build(tmp_path, built, _claims_fixture())
    site = build_site(out).parent
    middle = _parse(site / f"{LESSONS[2].notebook}.html").rel
    assert middle == {"prev": f"{LESSONS[0].notebook}.html", "next": f"{LESSONS[5].notebook}.html"}
    assert sorted(p.name for p in site.glob("*.html")) == sorted(
        ["index.html", "report.html", "claims.html", *(f"{lsn.notebook}.html" for lsn in built)])
    checked = 0
    for page in site.glob("*.html"):
        for tag, target in _parse(page).links:
            if _local(target):
                assert (site / target.split("#")[0]).is_file(), f"{page.name}: <{tag}> {target}"
                checked += 1
    assert checked > 20, "the pages link each other"
    # No page pulls a script from a CDN (require.js, the widget manager, MathJax without math).
    for page in site.glob("*.html"):
        assert not re.findall(r"<script[^>]+src=", page.read_text()), page.name


def test_claims_page_lists_every_article_row_and_every_course_claim(tmp_path):
    import html

    claims = _claims_fixture()
    out = _fake_build(tmp_path, LESSONS, claims)
    site = build_site(out).parent
    page = (site / "claims.html").read_text()
    text = html.unescape(page)
    from importlib.metadata import version

    assert f"TensorFlow {version('tensorflow')}" in text and f"Keras {version('keras')}" in text
    articles = [c for c in claims if "article_row" in c["evidence"]]
    for row in articles:
        ev = row["evidence"]
        tr = re.search(rf"<tr id='article-{ev['article_row']}'>(.*?)</tr>", page, re.S)
        assert tr, f"article row {ev['article_row']} missing"
        cells = html.unescape(tr.group(1))
        for key in ("article_claim", "measured_verdict", "reason", "experiment"):
            assert ev[key] in cells, (ev["article_row"], key)
        assert f"href='{ev['lesson']}.html'" in tr.group(1), "the row links its lesson's page"
    assert "ratio = 1.1" in text and "optimizer_restored = 0" in text, "measured numbers shown"
    assert "expected_verdict =" not in text and "0.52 s" in text
    assert "✗ differs from the verdict the course states (holds)" in text
    assert text.count("article: ") == 0, "article rows are shown in the course's words"
    own = [c for c in claims if "article_row" not in c["evidence"]]
    for row in own:
        assert row["text"] in text
    assert "slots = 4" in text and "(2 of 2 hold)" in text and "(0 of 1 hold)" in text
    # Grouped by lesson, in course order, each group linked to its page.
    positions = [page.index(f"href='{stem}.html'>{lesson_title}")
                 for stem, lesson_title in (("01_whole_model_formats", "01 · Whole-model formats"),
                                            ("03_checkpoints_and_resume",
                                             "03 · Checkpoints and resume"))]
    assert positions == sorted(positions)
    # the counts come first, and the rows behind them sit next to the page that links them
    held, article_ids = sum(1 for r in own if r["holds"]), {r["evidence"]["article_row"]
                                                             for r in articles}
    plain = re.sub(r"<[^>]+>", "", text)
    assert f"{len(own)} claims checked in" in plain and f"lessons, {held} hold" in plain
    assert plain.index("claims checked") < plain.index("The original article's claims")
    assert f"article's {len(article_ids)} claims re-measured" in plain
    assert "href=\"claims.json\"" in page
    assert json.loads((site / "claims.json").read_text()) == claims


def test_landing_page_says_who_it_is_for_how_long_each_lesson_takes_and_its_source(tmp_path):
    import html

    index = " ".join(html.unescape(write_site(tmp_path / "site", []).read_text()).split())
    assert "Who it is for" in index and "compile" in index and "no TF Serving, Docker or GPU" \
        in index
    for lesson in LESSONS:
        assert re.search(rf"<td>{re.escape(lesson.summary)}</td><td class='num'>"
                         rf"{lesson.minutes}</td>", index), lesson.notebook
    assert f"About {sum(lesson.minutes for lesson in LESSONS)} minutes in all" in index
    assert "TF Model Save/Load — Avoid Wrong Version in Serving" in index
    assert "tensorflow_model_server" in index, "what is emulated is said"


def test_landing_page_links_executed_lessons_and_the_report(tmp_path):
    ran = [LESSONS[0], LESSONS[2]]
    site = tmp_path / "site"
    site.mkdir()
    stale = site / f"{LESSONS[3].notebook}.html"
    stale.write_text("<p>from an earlier build</p>")
    results = [_result(f"{ran[0].notebook}.ipynb", output=str(_stand_in(tmp_path, ran[0]))),
               _result(f"{ran[1].notebook}.ipynb", "failed",
                       output=str(_stand_in(tmp_path, ran[1])),
                       claims=[{"text": "the file is smaller", "holds": False}]),
               _result(f"{LESSONS[3].notebook}.ipynb", "failed")]  # crashed: no executed notebook
    index = write_site(site, results).read_text()

    links = _links(index)
    assert {f"{lesson.notebook}.html" for lesson in ran} <= links
    assert {"report.html", "claims.html"} <= links and BINDER_URL.replace("&", "&amp;") in index
    assert f"{LESSONS[1].notebook}.html" not in links, "a lesson not executed has no link"
    assert all(html.escape(lesson.title) in index for lesson in LESSONS), "the whole course map is listed"
    assert "make lab" in index and "failed in this build" in index
    assert "456" not in index, "the run's numbers belong on the report page"

    report = (site / "report.html").read_text()
    assert {f"{lesson.notebook}.html" for lesson in ran} | {"index.html"} <= _links(report)
    assert stale.name not in _links(report) | links, "a page this build did not write is not linked"
    for number in ("12.3", "456", "789", "cell 4", "the file is smaller"):
        assert number in report, number
    assert "the file is smaller" in (site / "claims.html").read_text()


def test_readme_points_at_the_same_binder_and_says_where_the_site_and_claims_are():
    readme = (ROOT / "README.md").read_text()
    assert BINDER_URL in readme
    assert "build/site/claims.html" in readme and "python -m http.server" in readme


def test_solution_cells_stay_collapsed_without_their_output(tmp_path):
    solution = new_code_cell("%%solution\nanswer = 42\nprint('SOLVED', answer)",
                             metadata={"jupyter": {"source_hidden": True}}, execution_count=2,
                             outputs=[new_output("stream", name="stdout", text="SOLVED 42\n")])
    page = render_lesson(_stand_in(tmp_path, LESSONS[4], [solution]), tmp_path / "site")
    body = page.read_text()
    assert "<details><summary>Solution (click to show)" in body
    assert "SOLVED 42" not in body and "print('SOLVED', answer)" in body


def test_widget_outputs_become_a_note_with_the_binder_link(tmp_path):
    from nbclient import NotebookClient

    lesson = LESSONS[10]
    nb = new_notebook(cells=[
        new_markdown_cell(f"# {lesson.number} · {lesson.title}"),
        new_code_cell("import ipywidgets as w\n"
                      "w.VBox([w.IntSlider(value=3, description='units'), w.Checkbox()])"),
        new_code_cell("print('after the widget')")], metadata=KERNEL)
    NotebookClient(nb, timeout=60, kernel_name="python3", store_widget_state=True).execute()
    shown = nb.cells[1].outputs
    assert any(WIDGET_MIME in o.get("data", {}) for o in shown), "the kernel showed a widget"
    assert "widgets" in nb.metadata, "nbclient saved the widget state"
    executed = tmp_path / f"{lesson.notebook}.ipynb"
    nbformat.write(nb, executed)

    body = render_lesson(executed, tmp_path / "site").read_text()
    assert body.count(WIDGET_NOTE) == 1
    assert binder_url(lesson.notebook).replace("&", "&amp;") in body
    assert binder_url(lesson.notebook).endswith("notebooks/10_explorer_and_claims.ipynb")
    for trace in ("VBox(children", "IntSlider(value", WIDGET_MIME, "widget-state+json"):
        assert trace not in body, trace
    assert "after the widget" in body


def test_run_course_builds_pages_navigation_claims_and_report(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for lesson, source in ((LESSONS[0], "x = 1"),
                           (LESSONS[1], "from forgekit import claim\n"
                                        "claim('one and one make two', 1 + 1 == 2, "
                                        "evidence={'sum': 1 + 1})")):
        nb = new_notebook(cells=[new_markdown_cell(f"# {lesson.number} · {lesson.title}"),
                                 new_code_cell(source)], metadata=KERNEL)
        nbformat.write(nb, folder / f"{lesson.notebook}.ipynb")
    results = run_course([folder], out=tmp_path / "build")
    assert all(r.ok for r in results), [r.failed_cell for r in results]
    site = tmp_path / "build" / "site"
    first, second = (site / f"{lsn.notebook}.html" for lsn in LESSONS[:2])
    assert _title(first) == f"{LESSONS[0].number} · {LESSONS[0].title}"
    assert _parse(first).rel == {"next": second.name}
    assert _parse(second).rel == {"prev": first.name}
    assert second.name in _links((site / "index.html").read_text())
    assert f"{LESSONS[0].notebook}.ipynb" in (site / "report.html").read_text()
    claims = (site / "claims.html").read_text()
    assert "one and one make two" in claims and "sum = 2" in claims
    assert json.loads((tmp_path / "build" / "claims.json").read_text())[0]["evidence"] == {"sum": 2}


def test_forgekit_site_rebuilds_from_the_last_run_and_names_a_missing_one(tmp_path, capsys):
    from forgekit.cli import main

    assert main(["site", "--out", str(tmp_path / "nothing")]) == 2
    assert "forgekit run" in capsys.readouterr().err
    out = _fake_build(tmp_path, LESSONS[:2])
    assert main(["site", "--out", str(out)]) == 0
    assert (out / "site" / f"{LESSONS[1].notebook}.html").is_file()
    assert "No article claims were measured" in (out / "site" / "claims.html").read_text()


def test_mathjax_is_loaded_only_for_a_page_with_math(tmp_path):
    plain = render_lesson(_stand_in(tmp_path, LESSONS[0]), tmp_path / "site").read_text()
    math = render_lesson(_stand_in(tmp_path, LESSONS[1], [new_markdown_cell("Loss $L = x^2$.")]),
                         tmp_path / "site").read_text()
    assert "mathjax" not in plain.lower() and "mathjax" in math.lower()
    dollars = new_code_cell("%%solution\nprice = '$5' + '$6'", metadata={"jupyter": {"source_hidden": True}})
    solved = render_lesson(_stand_in(tmp_path, LESSONS[2], [dollars]), tmp_path / "site").read_text()
    assert "price" in solved and "mathjax" not in solved.lower(), "dollars in a solution are not math"


def test_a_broken_executed_notebook_costs_its_page_not_the_site(tmp_path):
    import pytest

    out = _fake_build(tmp_path, LESSONS[:3])
    broken = out / "executed" / f"{LESSONS[1].notebook}.ipynb"
    broken.write_text(broken.read_text()[:200])  # a run killed while writing it
    with pytest.warns(UserWarning, match=rf"{broken.name}.*not a readable notebook.*forgekit run"):
        site = build_site(out).parent
    assert not (site / f"{LESSONS[1].notebook}.html").exists()
    index = (site / "index.html").read_text()
    assert "no page: its executed notebook could not be read" in index, "not called ready"
    assert _parse(site / f"{LESSONS[0].notebook}.html").rel == {
        "next": f"{LESSONS[2].notebook}.html"}, "navigation skips the missing page"
    (out / "report.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"report\.json.*found not JSON.*expected the report"):
        build_site(out)


def test_the_claims_page_lists_every_row_of_the_article_audit(tmp_path):
    """Built from the records the audit itself writes (forgekit.course.article), not a fixture:
    a row the audit adds or a key it renames cannot silently drop off the page."""
    from forgekit.course import article
    from forgekit.course.claims import Claim
    from forgekit.course.site_claims import claims_page

    records = []
    for i, spec in enumerate(article.ROWS):
        verdict = article.VERDICTS[i % len(article.VERDICTS)]
        row = article.AuditRow(spec.id, spec.statement, spec.experiment_name, spec.lesson,
                               {"measured <number>": i}, verdict, f"reason {i} & more",
                               spec.expected, 0.1 * i)
        records.append(Claim(spec.claim_text, row.as_expected, row.evidence(),
                             f"{LESSONS[-1].notebook}.ipynb").as_record())
    page = claims_page(records, {}, {"TensorFlow": "2.x"})
    for spec in article.ROWS:
        assert spec.id in page and html.escape(spec.statement) in page, spec.id
    assert page.count("measured &lt;number&gt;") == len(article.ROWS)
    assert "reason 0 &amp; more" in page
