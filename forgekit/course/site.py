"""The course site in ``build/site``: a landing page for learners and the run report.

``index.html`` says what the course is, lists the lessons of the course map (linking the ones this
build executed) and how to run them; ``report.html`` is for maintainers: seconds, memory, claims.
The runner writes both after executing the notebooks (``make run``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from forgekit.course import LESSONS

if TYPE_CHECKING:
    from forgekit.course.runner import RunResult

BINDER_URL = ("https://mybinder.org/v2/gh/forgekit/forgekit/main"
              "?urlpath=lab/tree/notebooks/00_start_here.ipynb")
REPORT_PAGE = "report.html"

_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #1f2328; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d0d7de;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { background: #f6f8fa; border-radius: 4px; font-size: 90%; }
code { padding: .1rem .3rem; } pre { padding: .8rem; overflow-x: auto; }
.ok { color: #1a7f37; } .failed { color: #b42318; } .coming { color: #6e7781; }
footer { margin-top: 2rem; color: #6e7781; font-size: 90%; }
"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")


def _inline(text: str) -> str:
    """Escape ``text`` and render its `code` spans (the course map's summaries use them)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed)"


def _page_name(result: RunResult) -> str:
    return Path(result.notebook).stem + ".html"


def _lesson_rows(results: Sequence[RunResult], site: Path) -> str:
    by_stem = {Path(r.notebook).stem: r for r in results}
    rows = []
    for lesson in LESSONS:
        result = by_stem.get(lesson.notebook)
        title = _inline(lesson.title)
        if result is None:
            state = "<span class='coming'>coming</span>"
        else:
            if (site / _page_name(result)).exists():
                title = f"<a href='{html.escape(_page_name(result))}'>{title}</a>"
            state = ("<span class='ok'>ready</span>" if result.ok else
                     f"<span class='failed'>failed in this build</span> "
                     f"(<a href='{REPORT_PAGE}'>report</a>)")
        rows.append(f"<tr><td>{lesson.number}</td><td>{title}</td>"
                    f"<td>{_inline(lesson.summary)}</td><td>{state}</td></tr>")
    return "".join(rows)


def landing_page(results: Sequence[RunResult], site: Path) -> str:
    """``index.html``: what the course is, the lesson map and how to run it."""
    lessons = {lesson.notebook for lesson in LESSONS}
    others = [r for r in results if Path(r.notebook).stem not in lessons]
    extra = ""
    if others:
        items = "".join(f"<li><a href='{html.escape(_page_name(r))}'>{html.escape(r.notebook)}"
                        f"</a></li>" for r in others if (site / _page_name(r)).exists())
        extra = f"<h3>Other notebooks in this build</h3><ul>{items}</ul>" if items else ""
    body = f"""
<h1>forgekit: save, load, version and serve TensorFlow/Keras models</h1>
<p>A hands-on course in Jupyter notebooks. Each lesson runs real experiments on TensorFlow
{_version("tensorflow")} and Keras {_version("keras")}: it saves models in every format, reloads them, breaks them on purpose and serves them,
and every statement it makes is checked by the code that measured it. The pages below are the
lessons as this build executed them, outputs included.</p>

<h2>Lessons</h2>
<table><thead><tr><th>#</th><th>Lesson</th><th>What you will see</th><th></th></tr></thead>
<tbody>{_lesson_rows(results, site)}</tbody></table>
{extra}
<h2>Run it yourself</h2>
<p><strong>In the browser, nothing to install:</strong> <a href="{html.escape(BINDER_URL)}">open
the course on Binder</a>; it starts in lesson 00. Run the cells top to bottom with
<kbd>Shift</kbd>+<kbd>Enter</kbd>.</p>
<p><strong>On your machine</strong> (Python 3.11 and <code>make</code>), in the project folder:</p>
<pre>make lab    # creates .venv, installs the pinned versions, opens lesson 00 in JupyterLab
make run    # executes every lesson headless and rebuilds this site in build/site/</pre>
<p>Every lesson starts with a <em>parameters</em> cell: lower its sizes on a small machine.</p>
<footer>For maintainers: <a href="{REPORT_PAGE}">run report</a> (status, seconds, peak memory and
checked claims of each notebook in this build).</footer>
"""
    return _page("forgekit course", body)


def report_page(results: Sequence[RunResult]) -> str:
    """``report.html``: status, seconds, peak memory and claims of each notebook run."""
    rows = []
    for r in results:
        failed = [c for c in r.claims if not c.get("holds")]
        claims = f"{len(r.claims)}" + (f" ({len(failed)} do not hold)" if failed else "")
        rows.append(
            f"<tr><td><a href='{html.escape(_page_name(r))}'>{html.escape(r.notebook)}</a></td>"
            f"<td class='{'ok' if r.ok else 'failed'}'>{html.escape(r.status)}</td>"
            f"<td class='num'>{r.seconds:.1f}</td>"
            f"<td class='num'>{'-' if r.peak_rss_mb is None else f'{r.peak_rss_mb:.0f}'}</td>"
            f"<td class='num'>"
            f"{'-' if r.peak_tree_rss_mb is None else f'{r.peak_tree_rss_mb:.0f}'}</td>"
            f"<td class='num'>{claims}</td><td>{html.escape(r.failed_cell or '')}</td></tr>")
    unmet = "".join(f"<li>{html.escape(r.notebook)}: {html.escape(str(c.get('text')))}</li>"
                    for r in results for c in r.claims if not c.get("holds"))
    body = f"""
<p><a href="index.html">&larr; course</a></p>
<h1>Run report</h1>
<table><thead><tr><th>notebook</th><th>status</th><th>seconds</th>
<th>peak RSS (MiB)</th><th>tree RSS (MiB)</th><th>claims</th><th>failed cell</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
{f"<h2>Claims that do not hold</h2><ul>{unmet}</ul>" if unmet else ""}
<p>Peak RSS is the high-water mark of the largest process of the kernel; tree RSS is the sampled
sum over the kernel and every process it started. The same numbers are in
<code>report.json</code> and each claim with its evidence in <code>claims.json</code>, next to
this site's folder.</p>
"""
    return _page("forgekit run report", body)


def write_site(site: str | Path, results: Sequence[RunResult]) -> Path:
    """Write ``index.html`` and ``report.html`` into ``site``; returns the landing page."""
    site = Path(site)
    site.mkdir(parents=True, exist_ok=True)
    (site / REPORT_PAGE).write_text(report_page(results), encoding="utf-8")
    index = site / "index.html"
    index.write_text(landing_page(results, site), encoding="utf-8")
    return index
