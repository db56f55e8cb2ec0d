"""Pages of the course site: the shell every page shares (style, navigation) and the lesson pages.

A lesson page is its executed notebook rendered by nbconvert's ``lab`` template, with three
changes a static page needs: the ``<title>`` is the lesson's ``# NN · Title``; a header and a
footer link the course home, the previous and next lesson *of this build*, the claims and the
run report; and what cannot work without a kernel is replaced - a ``%%solution`` cell becomes a
closed ``<details>`` without its output, and an ipywidgets output becomes a note sending the
learner to JupyterLab or Binder (a static page would show an empty box or ``VBox(children=...)``).
"""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgekit.course.map import LESSONS

HOME_PAGE = "index.html"
REPORT_PAGE = "report.html"
CLAIMS_PAGE = "claims.html"
BINDER_REPO = "https://mybinder.org/v2/gh/forgekit/forgekit/main"
COLAB_REPO = "https://colab.research.google.com/github/forgekit/forgekit/blob/main"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "Interactive explorer: run this notebook in JupyterLab or on Binder"

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #1f2328; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d0d7de;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { background: #f6f8fa; border-radius: 4px; font-size: 90%; }
code { padding: .1rem .3rem; overflow-wrap: anywhere; } pre { padding: .8rem; overflow-x: auto; }
.ok { color: #1a7f37; } .failed { color: #b42318; } .coming, .partly { color: #9a6700; }
footer { margin-top: 2rem; color: #6e7781; font-size: 90%; }
table.article { font-size: 90%; table-layout: fixed; }
table.article th:nth-child(1) { width: 24%; } table.article th:nth-child(2) { width: 11%; }
table.article th:nth-child(3) { width: 22%; } table.article th:nth-child(4) { width: 23%; }
table.article td { overflow-wrap: anywhere; }
"""
# Navigation bars: also on nbconvert's lesson pages, so they must not rely on the style above.
NAV_STYLE = """
nav.fk-nav { font: 15px/1.6 system-ui, sans-serif; display: flex; flex-wrap: wrap;
  gap: .3rem 1.2rem; padding: .6rem 1rem; margin: 0 0 1rem; background: #f6f8fa;
  border: 1px solid #d0d7de; border-radius: 6px; }
nav.fk-nav a { color: #0969da; text-decoration: none; }
nav.fk-nav a:hover { text-decoration: underline; }
nav.fk-nav .fk-pager { margin-left: auto; display: flex; gap: 1.2rem; }
.fk-widget-note { padding: .6rem .9rem; border: 1px dashed #9a6700; border-radius: 6px;
  background: #fff8c5; color: #1f2328; font: 15px/1.5 system-ui, sans-serif; }
"""


def binder_url(notebook: str = "00_start_here") -> str:
    """The Binder link that opens ``notebooks/<notebook>.ipynb`` in JupyterLab."""
    return f"{BINDER_REPO}?urlpath=lab/tree/notebooks/{Path(notebook).stem}.ipynb"


def colab_url(notebook: str = "00_start_here") -> str:
    """The Colab link that opens ``notebooks/<notebook>.ipynb`` (its setup cell installs
    forgekit there, on Colab's own TensorFlow)."""
    return f"{COLAB_REPO}/notebooks/{Path(notebook).stem}.ipynb"


@dataclass(frozen=True)
class PageLink:
    """A page of this build: its file name and what a link to it says."""

    href: str
    label: str


def nav_bar(prev: PageLink | None = None, next_: PageLink | None = None,
            binder: str | None = None, colab: str | None = None) -> str:
    """The header/footer bar: course home, claims, run report, the lesson on Binder and on
    Colab, and the previous/next lesson if any."""
    run = f"<a href='{html.escape(binder)}'>Run it on Binder</a>" if binder else ""
    run += f"<a href='{html.escape(colab)}'>Open in Colab</a>" if colab else ""
    pager = []
    if prev:
        pager.append(f"<a rel='prev' href='{html.escape(prev.href)}'>&larr; "
                     f"{html.escape(prev.label)}</a>")
    if next_:
        pager.append(f"<a rel='next' href='{html.escape(next_.href)}'>"
                     f"{html.escape(next_.label)} &rarr;</a>")
    return (f"<nav class='fk-nav'><a href='{HOME_PAGE}'>forgekit course</a>"
            f"<a href='{CLAIMS_PAGE}'>Claims</a><a href='{REPORT_PAGE}'>Run report</a>{run}"
            f"<span class='fk-pager'>{''.join(pager)}</span></nav>")


def shell(title: str, body: str) -> str:
    """A whole site page (landing, report, claims) around ``body``, with the navigation bar."""
    return (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}{NAV_STYLE}</style></head>\n"
            f"<body>\n{nav_bar()}\n{body}\n</body></html>\n")


def lesson_title(nb: Any, stem: str) -> str:
    """``NN · Title`` from the notebook's first ``# `` heading, else from the course map."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = re.search(r"^#\s+(.+?)\s*$", cell.source, re.M)
            if heading:
                return heading.group(1)
            break
    lesson = next((lsn for lsn in LESSONS if lsn.notebook == stem), None)
    return f"{lesson.number} · {lesson.title}" if lesson else stem


def collapse_solutions(nb: Any) -> None:
    """Show each solution cell closed and without its output ("✓ Correct" would give it away)."""
    import nbformat

    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.metadata.get("jupyter", {}).get("source_hidden"):
            code = html.escape(cell.source)
            nb.cells[i] = nbformat.v4.new_markdown_cell(
                "<details><summary>Solution (click to show)</summary>\n\n"
                f"<pre><code>{code}</code></pre>\n\n</details>")


def degrade_widgets(nb: Any, notebook: str) -> int:
    """Replace every ipywidgets output by a note with the Binder link; returns how many.

    The widget state is dropped too, so nbconvert does not load the widget manager from a CDN.
    """
    link = html.escape(binder_url(notebook))
    note = (f"<div class='fk-widget-note'>{WIDGET_NOTE} (<a href='{link}'>open this lesson on "
            "Binder</a>). A static page cannot run Python, so the widget is not shown here.</div>")
    replaced = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if WIDGET_MIME in output.get("data", {}):
                output["data"] = {"text/html": note,
                                  "text/plain": f"{WIDGET_NOTE}: {binder_url(notebook)}"}
                replaced += 1
    nb.metadata.pop("widgets", None)
    return replaced


# Extends nbconvert's lab page: our title and navigation; no require.js or widget manager from a
# CDN (nothing on these pages uses them), MathJax only for a page with math, so a lesson reads
# offline.
_LESSON_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}
  {% if resources.forgekit.math %}{{ super() }}{% endif %}
{%- endblock html_head_js_mathjax -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block extra_css %}<style>{{ resources.forgekit.style }}</style>{% endblock extra_css %}
{%- block body_header -%}{{ super() }}{{ resources.forgekit.nav }}{%- endblock body_header -%}
{% block body_footer %}
<footer class="fk-footer">{{ resources.forgekit.nav }}</footer>{{ super() }}
{% endblock body_footer %}
"""


def read_executed(path: str | Path) -> Any:
    """The executed notebook at ``path``; a file that is not one raises
    :class:`~forgekit.errors.WrongFormatError` naming it (not nbformat's traceback)."""
    import nbformat

    from forgekit.errors import WrongFormatError

    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # JSON, schema or version errors: all mean "not a notebook we read"
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise WrongFormatError(
            f"cannot render it as a lesson page ({type(exc).__name__}: {detail})", path=path,
            found="not a readable notebook", expected="an executed Jupyter notebook (nbformat 4)",
            fix="execute it again with `forgekit run NOTEBOOK --out OUT`") from exc


def render_lesson(executed: str | Path, site: str | Path, prev: PageLink | None = None,
                  next_: PageLink | None = None) -> Path:
    """Render the executed notebook ``executed`` to ``site/<stem>.html``; returns the page."""
    import jinja2
    from nbconvert import HTMLExporter

    executed, site = Path(executed), Path(site)
    nb = read_executed(executed)
    nb.metadata["title"] = lesson_title(nb, executed.stem)
    # Math is looked for in the lesson's own prose, before solutions become markdown: a `$` in
    # solution code must not pull MathJax from a CDN onto a page that otherwise reads offline.
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    math = bool(re.search(r"\$[^$\n]+\$|\\\(|\\\[", markdown))
    collapse_solutions(nb)
    degrade_widgets(nb, executed.stem)
    exporter = HTMLExporter(template_name="lab", template_file="forgekit_lesson.html.j2",
                            extra_loaders=[jinja2.DictLoader(
                                {"forgekit_lesson.html.j2": _LESSON_TEMPLATE})])
    nav = nav_bar(prev, next_, binder_url(executed.stem), colab_url(executed.stem))
    resources = {"forgekit": {"nav": nav, "style": NAV_STYLE, "math": math}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    site.mkdir(parents=True, exist_ok=True)
    page = site / f"{executed.stem}.html"
    page.write_text(body, encoding="utf-8")
    return page


def render_lessons(executed: Sequence[str | Path], site: str | Path) -> dict[str, PageLink]:
    """Render every executed notebook that exists, in course order, each linked to its neighbours
    among *these* pages; returns ``{stem: PageLink}`` of the pages written.

    One unreadable notebook (a run killed while writing it) costs its page, with a warning
    naming it, not the whole site.
    """
    from forgekit.errors import WrongFormatError

    order = {lesson.notebook: i for i, lesson in enumerate(LESSONS)}
    paths, links = [], []
    for p in sorted((Path(p) for p in executed if Path(p).is_file()),
                    key=lambda p: (order.get(p.stem, len(order)), p.stem)):
        try:
            links.append(PageLink(f"{p.stem}.html", lesson_title(read_executed(p), p.stem)))
        except WrongFormatError as err:
            warnings.warn(f"no page for it: {err}", stacklevel=2)
            continue
        paths.append(p)
    for i, p in enumerate(paths):
        render_lesson(p, site, links[i - 1] if i else None,
                      links[i + 1] if i + 1 < len(links) else None)
    return {p.stem: link for p, link in zip(paths, links, strict=True)}
