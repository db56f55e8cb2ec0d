"""``claims.html``: the original article's claims as re-measured, and every claim the lessons check.

Both come from the rows of ``build/claims.json`` (:mod:`forgekit.course.claims`). A row whose
evidence has ``article_row`` is one claim of the article, audited by
:mod:`forgekit.course.article`; its evidence also carries ``article_claim`` (the claim in the
course's words), ``measured_verdict``, ``reason``, ``experiment``, ``lesson`` and the measured
numbers. Every other row is one of the course's own claims, shown under the lesson that checked it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from forgekit.course.claims import _shown
from forgekit.course.map import LESSONS
from forgekit.course.site_pages import PageLink, shell

# Evidence keys that describe an article row rather than measure it.
ARTICLE_KEYS = ("article_row", "article_claim", "measured_verdict", "reason", "experiment",
                "lesson", "expected", "expected_verdict", "seconds")
CLAIMS_JSON = "claims.json"  # the rows, written next to the page
_VERDICT_CLASS = {"holds": "ok", "does not hold": "failed", "partly": "partly", "error": "failed"}


def is_article_row(row: Mapping[str, Any]) -> bool:
    """Whether a claims.json row is one claim of the article's audit."""
    return "article_row" in (row.get("evidence") or {})


def _numbers(evidence: Mapping[str, Any], skip: Sequence[str] = ()) -> str:
    return " ".join(f"<code>{html.escape(str(k))} = {html.escape(_shown(v))}</code>"
                    for k, v in evidence.items() if k not in skip)


def _lesson_link(stem: str | None, pages: Mapping[str, PageLink]) -> str:
    if stem in pages:
        return f"<a href='{html.escape(pages[stem].href)}'>{html.escape(pages[stem].label)}</a>"
    return html.escape(stem or "outside a lesson")


def article_table(rows: Sequence[Mapping[str, Any]], pages: Mapping[str, PageLink]) -> str:
    """The article audit as a table, one row per article claim (the last measurement of each)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        latest[str(row["evidence"]["article_row"])] = row  # keeps first-seen order, last value
    out = []
    for row_id, row in latest.items():
        ev = row["evidence"]
        verdict = str(ev.get("measured_verdict", row.get("verdict", "")))
        expected = ev.get("expected_verdict", ev.get("expected"))
        changed = "" if row.get("holds", True) else (
            "<br><small class='failed'>✗ differs from the verdict the course states"
            + (f" ({html.escape(str(expected))})" if expected else "") + "</small>")
        claim = html.escape(str(ev.get("article_claim", row.get("text", ""))))
        experiment = f"<code>{html.escape(str(ev.get('experiment', '')))}</code>"
        if "seconds" in ev:
            experiment += f"<br><small>{_shown(ev['seconds'])} s</small>"
        cells = [
            f"<td>{claim}<br><small class='coming'>{html.escape(row_id)}</small></td>",
            f"<td class='{_VERDICT_CLASS.get(verdict, '')}'><b>{html.escape(verdict)}</b>"
            f"{changed}</td>",
            f"<td>{html.escape(str(ev.get('reason', '')))}</td>",
            f"<td><small>{_numbers(ev, ARTICLE_KEYS)}</small></td>",
            f"<td>{experiment}</td>",
            f"<td>{_lesson_link(ev.get('lesson') or row.get('notebook'), pages)}</td>",
        ]
        out.append(f"<tr id='article-{html.escape(row_id)}'>{''.join(cells)}</tr>")
    return ("<table class='article'><thead><tr>"
            "<th>The article's claim, in the course's words</th><th>Verdict</th>"
            "<th>Why (from the numbers)</th><th>Measured</th><th>Experiment</th><th>Lesson</th>"
            f"</tr></thead><tbody>{''.join(out)}</tbody></table>")


def course_claims(rows: Sequence[Mapping[str, Any]], pages: Mapping[str, PageLink]) -> str:
    """The course's own claims, grouped by the lesson that checked them, in course order."""
    order = {lesson.notebook: i for i, lesson in enumerate(LESSONS)}
    groups: dict[str | None, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row.get("notebook"), []).append(row)
    out, summary = [], []
    for stem in sorted(groups, key=lambda s: (s is None, order.get(s or "", len(order)), s or "")):
        held = sum(1 for r in groups[stem] if r.get("holds"))
        anchor = f"claims-{html.escape(stem or 'none')}"
        label = html.escape(pages[stem].label if stem in pages else stem or "outside a lesson")
        summary.append(f"<tr><td><a href='#{anchor}'>{label}</a></td>"
                       f"<td class='num'>{len(groups[stem])}</td><td class='num "
                       f"{'ok' if held == len(groups[stem]) else 'failed'}'>{held}</td></tr>")
        items = "".join(
            f"<li class='{'ok' if r.get('holds') else 'failed'}'>"
            f"<b>{'✓' if r.get('holds') else '✗'}</b> <span style='color:#1f2328'>"
            f"{html.escape(str(r.get('text', '')))}</span><br><small>"
            f"{_numbers(r.get('evidence') or {})}</small></li>" for r in groups[stem])
        out.append(f"<h3 id='{anchor}'>{_lesson_link(stem, pages)} <small>({held} of "
                   f"{len(groups[stem])} hold)</small></h3><ul class='claims'>{items}</ul>")
    if not out:
        return ""
    return ("<table class='claims-summary'><thead><tr><th>lesson</th><th>claims</th><th>hold</th>"
            f"</tr></thead><tbody>{''.join(summary)}</tbody></table>{''.join(out)}")


def summary(article: Sequence[Mapping[str, Any]], own: Sequence[Mapping[str, Any]]) -> str:
    """The counts a reader wants first: claims checked and held, article verdicts by kind."""
    held = sum(1 for r in own if r.get("holds"))
    lessons = len({r.get("notebook") for r in own})
    latest = {str(r["evidence"]["article_row"]): r for r in article}
    verdicts: dict[str, int] = {}
    for row in latest.values():
        verdict = str(row["evidence"].get("measured_verdict", row.get("verdict", "")))
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    changed = sum(1 for r in latest.values() if not r.get("holds", True))
    parts = [f"<b>{len(own)}</b> claims checked in {lessons} lesson{'s' * (lessons != 1)}, "
             f"<b class='{'ok' if held == len(own) else 'failed'}'>{held}</b> hold"]
    if latest:
        counts = ", ".join(f"<span class='{_VERDICT_CLASS.get(v, '')}'>{n} {html.escape(v)}"
                           "</span>" for v, n in sorted(verdicts.items(), key=lambda kv: -kv[1]))
        parts.append(f"the article's <b>{len(latest)}</b> claims re-measured: {counts}"
                     + (f"; <b class='failed'>{changed}</b> differ from the course's prose"
                        if changed else ""))
    return f"<p class='summary'>{'. '.join(parts)}.</p>"


def claims_page(rows: Sequence[Mapping[str, Any]], pages: Mapping[str, PageLink],
                versions: Mapping[str, str]) -> str:
    """The whole ``claims.html``: versions measured on, the article table, the course's claims."""
    article = [r for r in rows if is_article_row(r)]
    own = [r for r in rows if not is_article_row(r)]
    measured_on = ", ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in versions.items())
    article_part = (article_table(article, pages) if article else
                    "<p class='coming'>No article claims were measured in this build (lesson 10 "
                    "runs the audit).</p>")
    body = f"""
<h1>Claims, measured</h1>
{summary(article, own)}
<p>Measured on <b>{measured_on}</b>, the versions installed where this build ran. Every verdict
below was computed by the cell or experiment that measured it; none is typed by hand. The raw rows,
evidence included: <a href="{CLAIMS_JSON}"><code>{CLAIMS_JSON}</code></a>.</p>
<h2>The original article's claims</h2>
<p>Each factual claim of the article the course is built from, restated, re-measured by a forgekit
experiment (the same one its lesson uses) and judged from the numbers.</p>
{article_part}
<h2>The course's own claims</h2>
<p>Every statement a lesson makes is checked next to its measurement (✓ holds, ✗ does not hold
on this installation).</p>
{course_claims(own, pages) or "<p class='coming'>No lesson recorded a claim in this build.</p>"}
"""
    return shell("forgekit claims, measured", body)
