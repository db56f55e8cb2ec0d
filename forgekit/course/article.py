"""The original article's factual claims, each re-measured on the installed TensorFlow.

The course grew out of a Keras-2-era article on saving and serving models. :data:`ROWS` holds
every factual claim it makes, restated in the course's own words (:class:`ArticleClaim`), with
the forgekit function a lesson uses to measure that topic (``experiment``) and the verdict the
course's prose states for the pinned versions (``expected``). :func:`audit` runs each
experiment, turns the numbers into a verdict by code (``holds``, ``does not hold``, ``partly``;
``error`` when the experiment itself failed) with a reason computed from the same numbers, and
records each row as a course claim (:func:`forgekit.claim`): the claim holds while the measured
verdict is the one the course states, so a TensorFlow release that changes a verdict fails the
build and sends someone back to the prose.

Each row is three pieces: the experiment (a forgekit function its lesson's notebook calls,
never defined here), a ``measure`` step that calls it and returns plain numbers, and a ``judge``
that turns those numbers into named checks and a reason (its first line the one-line summary a
table shows, the lines after it the evidence); the pairs live by topic in
``article_files``, ``article_training`` and ``article_serving``, and the registry in
:mod:`forgekit.course.article_rows`. Rows read the audit's shared artifacts (:class:`Workbench`) and
write only into folders of their own, so a row's verdict never depends on the rows before it; a
row whose scenario did not happen raises (verdict ``error``). The verdict is the same rule for
every row (:func:`verdict_of`): every check true, none, or some.

To audit another claim: write its ``measure``/``judge`` pair in the topic's module around the
forgekit function the lesson on that topic uses (move it into forgekit first if it only exists in
a notebook), add the :class:`ArticleClaim` to ``build_rows()``, and state its verdict in the
lesson's prose; ``tests/test_article.py`` checks the registry.
"""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgekit.course.article_workbench import AuditSettings, Workbench
from forgekit.table import Table

VERDICTS = ("holds", "does not hold", "partly")
ERROR = "error"  # the experiment raised: no verdict was measured
# The evidence keys each row's claim carries (the site's claims page reads exactly these).
EVIDENCE_KEYS = ("article_row", "article_claim", "measured_verdict", "reason", "experiment",
                 "lesson")

# The audit's own modules: an experiment defined here would be the audit measuring itself.
_HERE = (__name__, *(f"{__name__}_{part}" for part in
                     ("rows", "files", "training", "serving", "workbench")))
Numbers = dict[str, Any]  # measured values: numbers, booleans, short strings
Judgement = tuple[dict[str, bool], str]  # named checks, the reason in words


# --------------------------------------------------------------------------------------------
# the data model


def _dotted(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


@dataclass(frozen=True)
class ArticleClaim:
    """One claim of the article: the statement in the course's words, the lesson that teaches
    it, the forgekit function that measures it, and the verdict the course states.

    ``measure(experiment, lab)`` calls ``experiment`` on the audit's shared artifacts and
    returns the numbers; ``judge(numbers)`` returns named checks and the reason. Registration
    refuses a row without a real forgekit experiment.
    """

    id: str
    statement: str
    lesson: str
    experiment: Callable[..., Any]
    expected: str
    measure: Callable[[Callable[..., Any], Workbench], Numbers] = field(repr=False)
    judge: Callable[[Numbers], Judgement] = field(repr=False)

    def __post_init__(self) -> None:
        from forgekit.course.map import LESSONS

        where = f"article row {self.id!r}"
        fn = self.experiment
        if fn is None or not callable(fn):
            raise ValueError(f"{where} has no experiment: give the forgekit function that "
                             "measures it")
        module, name = getattr(fn, "__module__", "") or "", getattr(fn, "__qualname__", "")
        if not module.startswith("forgekit.") or module in _HERE or "<" in name:
            raise ValueError(f"{where}: the experiment must be a named forgekit function a "
                             f"lesson uses, not {module}.{name or fn!r}")
        if self.expected not in VERDICTS:
            raise ValueError(f"{where}: expected must be one of {VERDICTS}, not "
                             f"{self.expected!r}")
        if self.lesson not in {lesson.notebook for lesson in LESSONS}:
            raise ValueError(f"{where}: {self.lesson!r} is not a lesson of the course map")

    @property
    def experiment_name(self) -> str:
        """The experiment's dotted name (``forgekit.sizes.breakdown``)."""
        return _dotted(self.experiment)

    @property
    def claim_text(self) -> str:
        """The fixed text of this row's course claim (numbers go in its evidence)."""
        return f"article row {self.id}: the measured verdict is still '{self.expected}'"


@dataclass
class AuditRow:
    """One claim as measured: numbers, the verdict they give, and why.

    ``reason``'s first line is the one-line summary a table shows (:attr:`headline`); the
    lines after it, with it, are the whole evidence."""

    id: str
    statement: str
    experiment: str
    lesson: str
    measured: Numbers
    verdict: str
    reason: str
    expected: str
    seconds: float
    checks: dict[str, bool] = field(default_factory=dict)
    reused: tuple[str, ...] = ()  # shared artifacts an earlier row built (its seconds are not here)

    @property
    def as_expected(self) -> bool:
        """The measured verdict is the one the course's prose states."""
        return self.verdict == self.expected

    @property
    def headline(self) -> str:
        """The reason in one line."""
        return self.reason.split("\n", 1)[0]

    @property
    def evidence_text(self) -> str:
        """The evidence after the headline (the whole reason when it is one line)."""
        rest = self.reason.split("\n", 1)[1:]
        return rest[0] if rest and rest[0].strip() else self.reason

    def line(self) -> str:
        """Verdict, id, lesson and the one-line reason (and the course's verdict if it differs)."""
        said = "" if self.as_expected else f" [the course says {self.expected}]"
        return f"{_MARKS[self.verdict]:<16} {self.id} ({self.lesson[:2]}): {self.headline}{said}"

    def _timing(self) -> str:
        took = f"{self.seconds:.1f} s"
        if self.reused:
            took += f", reusing the {' and the '.join(self.reused)} an earlier row built"
        return took

    def __str__(self) -> str:
        """The row whole, wrapped: verdict, id, claim, each check, the evidence, the timing."""
        import textwrap

        def wrapped(label: str, text: str) -> str:
            return textwrap.fill(" ".join(text.split()), 100, initial_indent=f"  {label:<9} ",
                                 subsequent_indent=" " * 12)

        said = "" if self.as_expected else f"; the course says {self.expected}"
        return "\n".join([
            f"{_MARKS[self.verdict]} · {self.id} (lesson {self.lesson[:2]}{said})",
            wrapped("claim:", self.statement),
            *(wrapped("check:", f"{'✓' if ok else '✗'} {name}") for name, ok in self.checks.items()),
            wrapped("evidence:", self.evidence_text),
            wrapped("measured:", f"by {self.experiment} in {self._timing()}")])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        color = _COLORS[self.verdict]
        said = "" if self.as_expected else f" (the course says {html.escape(self.expected)})"
        return (f"<div style='margin:0.4em 0'><b style='color:{color}'>"
                f"{html.escape(_MARKS[self.verdict])}</b> · <b>{html.escape(self.id)}</b> "
                f"(lesson {html.escape(self.lesson[:2])}){said}<br>{html.escape(self.statement)}"
                f"{_checks_html(self.checks)}<br><small>{html.escape(' '.join(self.evidence_text.split()))}"
                f"<br>measured by <code>{html.escape(self.experiment)}</code> in "
                f"{html.escape(self._timing())}</small></div>")

    def evidence(self) -> dict[str, Any]:
        """The claim's evidence: the fixed keys, then the numbers (never over a fixed key)."""
        fixed = {"article_row": self.id, "article_claim": self.statement,
                 "measured_verdict": self.verdict,
                 # one paragraph for the claims page: the headline, then the evidence
                 "reason": " — ".join(x for x in self.reason.splitlines() if x.strip()),
                 "experiment": self.experiment, "lesson": self.lesson,
                 "expected": self.expected, "seconds": round(self.seconds, 2)}
        return fixed | {k: v for k, v in self.measured.items() if k not in fixed}


def verdict_of(checks: Mapping[str, bool]) -> str:
    """``holds`` when every check is true, ``does not hold`` when none is, else ``partly``."""
    if not checks:
        raise ValueError("a verdict needs at least one check")
    passed = sum(bool(v) for v in checks.values())
    return "holds" if passed == len(checks) else "does not hold" if passed == 0 else "partly"


# The shared artifacts' keys (article_workbench) in words, for "reusing the ... an earlier row built".
_ARTIFACTS = {"task": "data", "model": "trained model", "inputs": "fixed inputs",
              "export": "SavedModel export", "probe": "probe of every format",
              "interrupted": "killed training run", "resume": "stop-and-resume runs",
              "served_models": "served models"}
_MARKS = {"holds": "✓ holds", "does not hold": "✗ does not hold", "partly": "◐ partly",
          ERROR: "✗ error"}
_COLORS = {"holds": "#1a7f37", "does not hold": "#b42318", "partly": "#bf8700", ERROR: "#6e7781"}


@dataclass
class ArticleAudit:
    """Every audited row, the versions it ran on and the settings it used."""

    rows: list[AuditRow]
    versions: dict[str, str | None]
    settings: AuditSettings
    seconds: float = 0.0

    def row(self, row_id: str) -> AuditRow:
        """The row with id ``row_id``."""
        for r in self.rows:
            if r.id == row_id:
                return r
        raise KeyError(f"no audited row {row_id!r}; have {[r.id for r in self.rows]}")

    def counts(self) -> dict[str, int]:
        """Rows per verdict."""
        return {v: sum(r.verdict == v for r in self.rows) for v in (*VERDICTS, ERROR)}

    def _on(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.versions.items() if v)

    def _note(self) -> str:
        counts = ", ".join(f"{n} {v}" for v, n in self.counts().items() if n)
        return f"{len(self.rows)} claims: {counts}; {self.seconds:.0f} s in all."

    def table(self) -> Table:
        """One line per claim: verdict, id, lesson, the reason in one line."""
        table = Table(["verdict", "claim", "lesson", "why (one line; the evidence is below)"],
                      title=f"The article's claims, measured on {self._on()}", max_width=110)
        for r in self.rows:
            said = "" if r.as_expected else f" [the course says {r.expected}]"
            table.add(_MARKS[r.verdict], r.id, r.lesson[:2], r.headline + said)
        table.notes = [self._note()]
        return table

    def details(self) -> Any:
        """Every row whole (claim, checks, evidence, timing) under a closed summary."""
        from forgekit.details import details

        these = "this row" if len(self.rows) == 1 else f"these {len(self.rows)} rows"
        return details(f"The checks and evidence of {these}",
                       _Rows(self.rows))

    def __str__(self) -> str:
        """One line per row; ``print(audit.details())`` prints every row whole."""
        lines = [f"The article's claims, measured on {self._on()}", *(r.line() for r in self.rows)]
        return "\n".join([*lines, self._note(),
                          "Each row's checks and evidence: print(<this audit>.details())"])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr style='vertical-align:top'>"
            f"<td style='text-align:left;color:{_COLORS[r.verdict]};white-space:nowrap'><b>"
            f"{html.escape(_MARKS[r.verdict])}</b></td>"
            f"<td style='text-align:left'><code>{html.escape(r.id)}</code></td>"
            f"<td>{html.escape(r.lesson[:2])}</td>"
            f"<td style='text-align:left'>{html.escape(r.headline)}"
            + ("" if r.as_expected else
               f" <b style='color:{_COLORS[ERROR]}'>[the course says {html.escape(r.expected)}]</b>")
            + "</td></tr>" for r in self.rows)
        head = "".join(f"<th style='text-align:left'>{h}</th>" for h in
                       ("verdict", "claim", "lesson", "why"))
        return (f"<table><caption style='text-align:left'><b>The article's claims, measured on "
                f"{html.escape(self._on())}</b></caption><tr>{head}</tr>{rows}</table>"
                f"<p style='font-size:90%'>{html.escape(self._note())}</p>"
                f"{self.details()._repr_html_()}")

    def plot(self, ax: Any = None) -> Any:
        """The verdict of each claim, one coloured tile per row, and (without ``ax``) its
        experiment's seconds beside it; returns the matplotlib Figure."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, (ax, timing) = plt.subplots(
                1, 2, sharey=True, figsize=(10, 0.3 * len(self.rows) + 1.4),
                gridspec_kw={"width_ratios": [1, 2]}, layout="constrained")
        else:
            fig, timing = ax.figure, None
        ids = [r.id for r in self.rows]
        colors = [_COLORS[r.verdict] for r in self.rows]
        ax.barh(ids, [1.0] * len(ids), color=colors)
        for i, r in enumerate(self.rows):
            ax.text(0.5, i, r.verdict if r.as_expected else f"{r.verdict} (course: {r.expected})",
                    ha="center", va="center", fontsize=8, color="white")
        ax.set_xlim(0, 1)
        ax.set_xticks([])
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=8)
        ax.set_title(f"Measured verdict ({self._on()})", fontsize=10)
        if timing is not None:
            timing.barh(ids, [r.seconds for r in self.rows], color=colors)
            timing.set(xlabel="seconds (shared artifacts count in the first row that needs them)")
            timing.set_title("Seconds of each experiment", fontsize=10)
        return fig

    def as_dict(self) -> dict[str, Any]:
        """Plain data: versions, settings, seconds and every row with its evidence."""
        return {"versions": self.versions, "settings": asdict(self.settings),
                "seconds": round(self.seconds, 2),
                "rows": [{**asdict(r), "seconds": round(r.seconds, 2)} for r in self.rows]}

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`as_dict` as JSON to ``path``."""
        from forgekit.course.claims import _plain

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(_plain(self.as_dict()), indent=2, ensure_ascii=False) + "\n",
                          encoding="utf-8")
        return target


class _Rows:
    """Audited rows shown whole, one after the other (the body of :meth:`ArticleAudit.details`)."""

    def __init__(self, rows: list[AuditRow]) -> None:
        self.rows = rows

    def __str__(self) -> str:
        return "\n\n".join(map(str, self.rows))

    def _repr_html_(self) -> str:
        return "".join(r._repr_html_() for r in self.rows)


def _checks_html(checks: Mapping[str, bool]) -> str:
    """The checks a verdict was computed from, one per line, ✓ or ✗."""
    return "".join(f"<br><small style='color:{_COLORS['holds' if ok else 'does not hold']};"
                   f"white-space:normal'>{'✓' if ok else '✗'} {html.escape(name)}</small>"
                   for name, ok in checks.items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# ROWS is built on first use (module __getattr__): the registry names forgekit functions
# from serving, crosslang, training..., and importing them all is not free.
_ROWS: tuple[ArticleClaim, ...] | None = None


def all_rows() -> tuple[ArticleClaim, ...]:
    """Every article claim (the same tuple as :data:`ROWS`)."""
    global _ROWS
    if _ROWS is None:
        from forgekit.course.article_rows import build_rows

        built = build_rows(ArticleClaim)
        ids = [r.id for r in built]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"article rows registered twice: {duplicates}")
        _ROWS = built
    return _ROWS


def __getattr__(name: str) -> Any:
    if name == "ROWS":
        return all_rows()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# the audit


def _versions() -> dict[str, str | None]:
    from forgekit.package_versions import installed_version

    return {"TensorFlow": installed_version("tensorflow"), "Keras": installed_version("keras")}


def run_row(row: ArticleClaim, lab: Workbench) -> AuditRow:
    """Measure one row. An exception in its experiment gives the verdict ``error``, naming it."""
    import warnings

    from forgekit.outcome import first_line
    from forgekit.quiet import muted_stderr, quiet_absl

    started, before, asked = time.perf_counter(), lab.built(), len(lab.asked)
    measured: Numbers = {}
    try:
        # The rows report numbers; what Keras, absl and TFLite's C++ print along the way (legacy
        # HDF5, skipped optimizer variables, the XNNPACK delegate) is noise around the table.
        with warnings.catch_warnings(), quiet_absl(), muted_stderr():
            warnings.simplefilter("ignore")
            measured = row.measure(row.experiment, lab)
        checks, reason = row.judge(measured)
        verdict = verdict_of(checks)
    except Exception as exc:  # one row's failure must not lose the others
        checks, verdict = {}, ERROR
        reason = f"the experiment raised {type(exc).__name__}: {first_line(str(exc), 200)}"
    reused = tuple(k for k in dict.fromkeys(lab.asked[asked:]) if k in before)
    return AuditRow(row.id, row.statement, row.experiment_name, row.lesson, measured, verdict,
                    reason, row.expected, time.perf_counter() - started, checks,
                    reused=tuple(_ARTIFACTS.get(k, k) for k in reused))


def audit(workdir: str | os.PathLike[str], *, rows: Iterable[ArticleClaim | str] | None = None,
          settings: AuditSettings | None = None,
          progress: Callable[[int, int, str], Any] | None = None) -> ArticleAudit:
    """Re-measure the article's claims, one experiment at a time, and record each as a claim.

    Args:
        workdir: folder for every file the experiments write (created; sub-folders replaced).
        rows: the rows (or their ids) to run; default every row of :data:`ROWS`.
        settings: sizes; default :class:`AuditSettings` (workshop), ``AuditSettings.ci()`` small.
        progress: called as ``progress(i, n, row_id)`` before row ``i`` (0-based) of ``n``.

    Each row becomes ``forgekit.claim(row.claim_text, measured verdict == expected, evidence)``
    with the evidence keys of :data:`EVIDENCE_KEYS` plus the numbers. Under strict claims
    (the test suite) every row is still measured and recorded before the first disagreement is
    raised, naming every row that disagreed.
    """
    from forgekit.course.claims import ClaimError, claim

    by_id = {r.id: r for r in all_rows()}
    wanted = list(by_id.values()) if rows is None else list(rows)
    unknown = [r for r in wanted if isinstance(r, str) and r not in by_id]
    if unknown:
        raise ValueError(f"no article row {', '.join(map(repr, unknown))}; the rows are "
                         f"{', '.join(by_id)}")
    chosen = [by_id[r] if isinstance(r, str) else r for r in wanted]
    settings = settings or AuditSettings()
    lab = Workbench(workdir, settings)
    lab.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    measured: list[AuditRow] = []
    try:
        for i, row in enumerate(chosen):
            if progress is not None:
                progress(i, len(chosen), row.id)
            measured.append(run_row(row, lab))
    finally:
        lab.close()
    result = ArticleAudit(measured, _versions(), settings, time.perf_counter() - started)
    disagreements = []
    for row, done in zip(chosen, measured, strict=True):
        try:
            claim(row.claim_text, done.as_expected, evidence=done.evidence())
        except ClaimError as exc:
            disagreements.append(str(exc))
    if disagreements:
        raise ClaimError("\n".join(disagreements))
    return result
