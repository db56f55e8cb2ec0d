"""The course site in ``build/site``, written by ``make run`` after it executed the notebooks.

``index.html`` says what the course is, lists the lessons of the course map (linking the ones this
build executed) and how to run them; each executed notebook is a page (``site_pages``) linked to
its neighbours; ``claims.html`` (``site_claims``) is the article's claims re-measured and every
claim the lessons check; ``report.html`` is for maintainers: seconds, memory, claims per notebook.
The site is plain static files: nbconvert renders it offline, with no theme to download.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from forgekit.course.claims import write_claims_json
from forgekit.course.map import LESSONS
from forgekit.course.report import RunResult
from forgekit.course.site_claims import CLAIMS_JSON, claims_page
from forgekit.course.site_pages import (
    CLAIMS_PAGE,
    REPORT_PAGE,
    PageLink,
    binder_url,
    render_lessons,
    shell,
)

BINDER_URL = binder_url("00_start_here")


def _inline(text: str) -> str:
    """Escape ``text`` and render its `code` spans (the course map's summaries use them)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed)"


def _stem(result: RunResult) -> str:
    return Path(result.notebook).stem


def _lesson_rows(results: Sequence[RunResult], pages: Mapping[str, PageLink]) -> str:
    by_stem = {Path(r.notebook).stem: r for r in results}
    rows = []
    for lesson in LESSONS:
        result = by_stem.get(lesson.notebook)
        title = _inline(lesson.title)
        if result is None:
            state = "<span class='coming'>coming</span>"
        else:
            if lesson.notebook in pages:
                title = f"<a href='{html.escape(pages[lesson.notebook].href)}'>{title}</a>"
            if not result.ok:
                state = (f"<span class='failed'>failed in this build</span> "
                         f"(<a href='{REPORT_PAGE}'>report</a>)")
            elif lesson.notebook not in pages:  # ran, but its executed notebook was unreadable
                state = ("<span class='failed'>no page: its executed notebook could not be "
                         f"read</span> (<a href='{REPORT_PAGE}'>report</a>)")
            else:
                state = "<span class='ok'>ready</span>"
        rows.append(f"<tr><td>{lesson.number}</td><td>{title}</td>"
                    f"<td>{_inline(lesson.summary)}</td><td class='num'>{lesson.minutes}</td>"
                    f"<td>{state}</td></tr>")
    return "".join(rows)


def landing_page(results: Sequence[RunResult], pages: Mapping[str, PageLink]) -> str:
    """``index.html``: what the course is, the lesson map (linking ``pages``, the lesson pages
    this build wrote) and how to run it."""
    lessons = {lesson.notebook for lesson in LESSONS}
    others = [r for r in results if Path(r.notebook).stem not in lessons]
    extra = ""
    if others:
        items = "".join(f"<li><a href='{html.escape(pages[_stem(r)].href)}'>"
                        f"{html.escape(pages[_stem(r)].label)}</a></li>"
                        for r in others if _stem(r) in pages)
        extra = f"<h3>Other notebooks in this build</h3><ul>{items}</ul>" if items else ""
    body = f"""
<h1>forgekit: save, load, version and serve TensorFlow/Keras models</h1>
<p>A hands-on course in Jupyter notebooks. Each lesson runs real experiments on TensorFlow
{_version("tensorflow")} and Keras {_version("keras")}: it saves models in every format, reloads
them, breaks them on purpose and serves them, and every statement it makes is checked by the code that measured it. The pages below are the
lessons as this build executed them, outputs included.</p>

<h2>Who it is for</h2>
<p>Anyone who trains Keras models and hands them on: to a server, a phone, a Java service, a
colleague, or their own run resumed next week. You need Python and Keras basics (build a model,
<code>compile</code>, <code>fit</code>, <code>predict</code>); no TF Serving, Docker or GPU. Each
lesson takes about {min(lsn.minutes for lsn in LESSONS)}–{max(lsn.minutes for lsn in LESSONS)} minutes to read and run, and ends with an exercise in which you write the
plain Keras, TensorFlow or HTTP call yourself and a checker tests what it does.</p>

<h2>Lessons</h2>
<table><thead><tr><th>#</th><th>Lesson</th><th>What you will see</th><th>Minutes</th><th></th>
</tr></thead>
<tbody>{_lesson_rows(results, pages)}</tbody></table>
<p>About {sum(lesson.minutes for lesson in LESSONS)} minutes in all; 00–03 are the core path,
the others stand on their own after it.</p>
{extra}
<h2>Run it yourself</h2>
<p><strong>In the browser, nothing to install:</strong> <a href="{html.escape(BINDER_URL)}">open
the course on Binder</a>; it starts in lesson 00. Run the cells top to bottom with
<kbd>Shift</kbd>+<kbd>Enter</kbd>.</p>
<p><strong>On Colab:</strong> every lesson page has an <em>Open in Colab</em> link; its first cell
installs forgekit into Colab's own TensorFlow (nothing else is replaced), and a claim that does not
hold on that TensorFlow is shown as drift, with the numbers, instead of stopping the lesson.</p>
<p><strong>On your machine</strong> (Python 3.11, 3.12 or 3.13 and <code>make</code>), in the
project folder:</p>
<pre>make lab    # creates .venv, installs the pinned versions, opens lesson 00 in JupyterLab
make run    # executes every lesson headless and rebuilds this site in build/site/</pre>
<p>Every lesson starts with a <em>parameters</em> cell: lower its sizes on a small machine.</p>
<h2>Where it comes from, and what is emulated</h2>
<p>The course grew out of the article <em>TF Model Save/Load — Avoid Wrong Version in
Serving</em> (TheCodeForge), written for Keras 2. The lessons say it in their own words and
re-measure each of its factual claims on this build's TensorFlow; some no longer hold (the
claims page gives the verdicts and their numbers).</p>
<p>Some production parts are stood in for, and the lessons say so where it matters: the model
server is forgekit's local server speaking TF Serving's REST and gRPC APIs, since neither
<code>tensorflow_model_server</code> nor Docker is available on Binder; the Java loader calls the
TensorFlow C API from the pip wheel through JNI rather than TensorFlow Java; object storage and
Kubernetes are described, not run. The SQL audit trail is real SQLite (or PostgreSQL by DSN).</p>
<h2>Claims, measured</h2>
<p>Every verdict in these lessons is computed by the cell that measured it. <a
href="{CLAIMS_PAGE}">The claims page</a> lists them all, with the original article's claims
re-measured on this build's TensorFlow.</p>
<footer>For maintainers: <a href="{REPORT_PAGE}">run report</a> (status, seconds, peak memory and
checked claims of each notebook in this build).</footer>
"""
    return shell("forgekit course", body)


def report_page(results: Sequence[RunResult], pages: Mapping[str, PageLink]) -> str:
    """``report.html``: status, seconds, peak memory and claims of each notebook run."""
    rows = []
    for r in results:
        failed = [c for c in r.claims if not c.get("holds")]
        claims = f"{len(r.claims)}" + (f" ({len(failed)} do not hold)" if failed else "")
        name = html.escape(r.notebook)
        if _stem(r) in pages:
            name = f"<a href='{html.escape(pages[_stem(r)].href)}'>{name}</a>"
        rows.append(
            f"<tr><td>{name}</td>"
            f"<td class='{'ok' if r.ok else 'failed'}'>{html.escape(r.status)}</td>"
            f"<td class='num'>{r.seconds:.1f}</td>"
            + "".join(f"<td class='num'>{'-' if v is None else f'{v:.0f}'}</td>"
                      for v in (r.peak_rss_mb, r.peak_tree_anon_mb, r.peak_tree_pss_mb, r.peak_tree_rss_mb,
                                r.cgroup_peak_mb)) +
            f"<td class='num'>{claims}</td><td>{html.escape(r.failed_cell or '')}</td></tr>")
    unmet = "".join(f"<li>{html.escape(r.notebook)}: {html.escape(str(c.get('text')))}</li>"
                    for r in results for c in r.claims if not c.get("holds"))
    body = f"""
<h1>Run report</h1>
<table><thead><tr><th>notebook</th><th>status</th><th>seconds</th>
<th>peak RSS (MiB)</th><th>tree anon (MiB)</th><th>tree PSS (MiB)</th><th>tree RSS (MiB)</th><th>cgroup (MiB)</th>
<th>claims</th><th>failed cell</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
{f"<h2>Claims that do not hold</h2><ul>{unmet}</ul>" if unmet else ""}
<p>Peak RSS is the exact high-water mark of the largest process (the kernel, or a process it
started). The tree's peaks are sampled over the kernel and every process it started. PSS splits each shared
page between the processes that map it, so the tree's PSS is what the machine pays; the tree's RSS
counts shared libraries once per process and overstates it. Tree anon is PSS's anonymous part,
what the lessons themselves allocated: unlike the file part (libraries shared with every process
on the machine that maps them) it does not depend on what else runs. The
cgroup column is the container's own charge (page cache included), shown when the run is inside a
memory-limited cgroup such as a Binder pod. The same numbers are in
<code>report.json</code> and each claim with its evidence in <code>claims.json</code>, next to
this site's folder; <a href="{CLAIMS_PAGE}">the claims page</a> shows them by lesson.</p>
"""
    return shell("forgekit run report", body)


def write_site(site: str | Path, results: Sequence[RunResult],
               claims: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Write the whole site into ``site``; returns the landing page.

    Each result whose executed notebook (``result.output``) exists becomes a lesson page; then
    ``index.html``, ``report.html`` and ``claims.html`` (from ``claims``, the rows of
    ``claims.json``; by default the claims the results collected).
    """
    site = Path(site)
    site.mkdir(parents=True, exist_ok=True)
    # Only pages written now are linked: one left by an earlier build is not this build's.
    pages = render_lessons([r.output for r in results if r.output], site)
    rows = list(claims) if claims is not None else [c for r in results for c in r.claims]
    versions = {"TensorFlow": _version("tensorflow"), "Keras": _version("keras")}
    write_claims_json(rows, site / CLAIMS_JSON)  # beside the page that links it: hosts copy both
    (site / CLAIMS_PAGE).write_text(claims_page(rows, pages, versions), encoding="utf-8")
    (site / REPORT_PAGE).write_text(report_page(results, pages), encoding="utf-8")
    index = site / "index.html"
    index.write_text(landing_page(results, pages), encoding="utf-8")
    return index


def build_site(out: str | Path = "build") -> Path:
    """Rebuild ``out/site`` from what ``forgekit run`` left in ``out`` (executed notebooks,
    ``report.json``, ``claims.json``) without executing anything; returns the landing page."""
    out = Path(out)
    report, claims = out / "report.json", out / "claims.json"
    if not report.is_file():
        raise FileNotFoundError(f"{report}: no run report; `forgekit run NOTEBOOKS --out {out}` "
                                "executes the notebooks and writes it")
    rows = _read_json(claims, "the claims.json `forgekit run` writes (a list of claim rows)") \
        if claims.is_file() else []
    results = []
    for row in _read_json(report, "the report.json `forgekit run` writes (a list of runs)"):
        stem = Path(row["notebook"]).stem
        results.append(RunResult.from_report(row, str(out / "executed" / row["notebook"]),
                                             [c for c in rows if c.get("notebook") == stem]))
    return write_site(out / "site", results, rows)


def _read_json(path: Path, expected: str) -> list[dict[str, Any]]:
    from forgekit.errors import WrongFormatError

    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(rows, list) and all(isinstance(r, dict) and "notebook" in r for r in rows):
            return rows
        found = f"JSON {type(rows).__name__} without a notebook per row"
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        found = f"not JSON ({exc})"
    raise WrongFormatError("cannot rebuild the site from it", path=path, found=found,
                           expected=expected, fix="run `forgekit run NOTEBOOKS --out OUT` again")
