"""Lesson 08's exercise: the SQL that names every deployment nobody verified.

The learner writes one ``SELECT`` against the lesson's plain tables (:data:`SCHEMA`, the DDL the
lesson runs in its first section) returning ``model_name`` and ``version`` of every deployment
with no *passing* verification. The checker builds fresh in-memory SQLite databases of its own,
runs the query on each and compares the rows with what they hold. Each database plants the
traps a first query falls into:

* a deployment checked twice, both failed (a JOIN returns it twice);
* a deployment whose first check failed and a later one passed (it *is* verified);
* deployments never checked at all (an inner JOIN drops them), one of them of a second model
  (a query filtered to one model misses it) sharing its version number with a verified one;
* a passing check with ``deployment_id`` NULL (a version checked that the store never saw
  published), which makes ``id NOT IN (SELECT deployment_id ...)`` return nothing;
* two databases with different model names, versions and row ids, so an answer that names
  models, versions or ids literally (``WHERE id IN (2, 4, 5)``) fails.

Each model's versions are unique in these databases (the prompt says so), so a right answer
returns each deployment once.
"""

from __future__ import annotations

import sqlite3

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong

# The lesson's tables, exactly as its first section creates them.
SCHEMA = """\
CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT NOT NULL, params TEXT NOT NULL,
  started_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE metrics (run_id INTEGER NOT NULL REFERENCES runs(id), epoch INTEGER NOT NULL,
  name TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (run_id, epoch, name));
CREATE TABLE artifacts (id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES runs(id),
  path TEXT NOT NULL, sha256 TEXT NOT NULL, recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE deployments (id INTEGER PRIMARY KEY, model_name TEXT NOT NULL,
  version INTEGER NOT NULL, artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
  published_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE verifications (id INTEGER PRIMARY KEY, ok INTEGER NOT NULL, detail TEXT NOT NULL,
  deployment_id INTEGER REFERENCES deployments(id),  -- NULL: a version never recorded
  checked_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
"""

# (model, version, [ok of each check in order]).
_WORLD = (("incident", 1, [1]),         # verified
          ("incident", 2, [0, 0]),      # checked twice, failed twice: NOT verified
          ("incident", 3, [0, 1]),      # failed, then passed: verified
          ("incident", 4, []),          # never checked
          ("ranker", 1, []),            # never checked; shares version 1 with a verified one
          ("ranker", 2, [1, 1]))        # verified twice


def _database(names: tuple[str, str], shift: int,
              first_id: int) -> tuple[sqlite3.Connection, set[tuple]]:
    """A fresh database of the lesson's tables; returns it and the right answer's rows.

    Versions are shifted by ``shift``; artifact and deployment ids start at ``first_id``.
    """
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    rename = {"incident": names[0], "ranker": names[1]}
    db.execute("INSERT INTO runs (name, params) VALUES ('baseline', '{}'), ('retrained', '{}')")
    expected = set()
    for i, (model, version, checks) in enumerate(_WORLD, start=1):
        model, version = rename[model], version + shift
        row_id = first_id + i - 1
        artifact = db.execute("INSERT INTO artifacts (id, run_id, path, sha256) VALUES (?, ?, ?, ?)",
                              (row_id, 1 + i % 2, f"/models/{model}/{version}",
                               f"{i:064x}")).lastrowid
        deployment = db.execute(
            "INSERT INTO deployments (id, model_name, version, artifact_id) VALUES (?, ?, ?, ?)",
            (row_id, model, version, artifact)).lastrowid
        for ok in checks:
            db.execute("INSERT INTO verifications (deployment_id, ok, detail) VALUES (?, ?, ?)",
                       (deployment, ok, "canary matched" if ok else "version 1 answered"))
        if 1 not in checks:
            expected.add((model, version))
    db.execute("INSERT INTO verifications (deployment_id, ok, detail) "
               "VALUES (NULL, 1, 'a version published by hand, never recorded')")
    return db, expected


# (model names, version shift, first row id): the second differs in all three.
_DATABASES = ((("incident", "ranker"), 0, 1), (("fraud", "churn"), 10, 101))


def _label(row: tuple) -> str:
    return f"{row[0]} v{row[1]}"


def check_never_verified(sql: str | None) -> Feedback:
    """Check a query meant to return ``model_name, version`` of every deployment with no
    passing verification, on fresh databases the checker builds; say why a wrong one is wrong."""
    text = "\n".join(line.split("--")[0] for line in (sql or "").splitlines()).strip()
    if not text:
        return NOT_ANSWERED
    for n, (names, shift, first_id) in enumerate(_DATABASES):
        db, expected = _database(names, shift, first_id)
        try:
            cursor = db.execute(sql)
            columns = [c[0].lower() for c in cursor.description or ()]
            rows = [tuple(r) for r in cursor.fetchall()]
        except (sqlite3.Error, sqlite3.Warning) as exc:
            return wrong(f"SQLite could not run it: {type(exc).__name__}: {str(exc).rstrip('.')}. "
                         "Write one SELECT, and check table and "
                         "column names against the CREATE TABLE statements of section 1.")
        finally:
            db.close()
        verdict = _judge(sql, columns, rows, expected, names, shift)
        if verdict is not None:
            if n:  # right on the first database, so the query depends on its names or numbers
                found = ", ".join(sorted(_label(r) for r in set(rows))) or "no rows"
                return wrong("Right on the first database the checker built, wrong on a second "
                             "one with other model names, versions and row ids: it should return "
                             f"{', '.join(sorted(_label(r) for r in expected))} and returned "
                             f"{found}. Does your query name models, versions or ids literally?")
            return verdict
    return correct("Your query returns every deployment with no passing check, once each: the "
                   "one checked twice and failed twice, and the ones never checked, and not the "
                   "one that failed first and passed later. A daily job running it names a "
                   "deployment nobody verified on the day it happens.")


def _judge(sql: str, columns: list[str], rows: list[tuple], expected: set[tuple],
           names: tuple[str, str], shift: int) -> Feedback | None:
    """Why these rows are not the answer for this database, or None when they are."""
    if not columns:
        return wrong("That statement returns no result rows at all: write a SELECT.")
    if columns != ["model_name", "version"]:
        return wrong(f"It returns the columns {columns}; return exactly model_name, version "
                     "(SELECT d.model_name, d.version ...).")
    got = set(rows)
    if not rows:
        if "not in" in sql.lower():
            return wrong("No rows. `NOT IN (SELECT deployment_id FROM verifications ...)` is "
                         "never true when the subquery returns a NULL, and one check here has "
                         "deployment_id NULL (a version checked that was never recorded). Use "
                         "NOT EXISTS, or exclude the NULLs in the subquery.")
        return wrong("No rows. An inner JOIN with verifications keeps only deployments that HAVE "
                     "a check; the ones you want may have none. Use NOT EXISTS, or a LEFT JOIN "
                     "keeping the rows where no passing check matched.")
    if len(rows) != len(got):
        twice = sorted(_label(r) for r in got if rows.count(r) > 1)
        return wrong(f"{', '.join(twice)} comes back more than once: a JOIN repeats a deployment "
                     "once per verification. Ask whether a passing verification EXISTS instead "
                     "(or SELECT DISTINCT).")
    fail_then_pass = (names[0], 3 + shift)
    if got - expected == {fail_then_pass}:
        return wrong(f"It returns {_label(fail_then_pass)}, whose first check failed and a later "
                     "one passed: it has a passing verification. Ask whether a check with "
                     "ok = 1 exists, not whether a failed one does.")
    if got - expected:
        extra = sorted(_label(r) for r in got - expected)
        return wrong(f"It also returns {', '.join(extra)}, which passed a verification. The "
                     "question is which deployments have NO check with ok = 1.")
    passing_versions = {version for _, version, checks in _WORLD if 1 in checks}
    by_version = {((names[0], names[1])[model != "incident"], version + shift)
                  for model, version, _ in _WORLD if version not in passing_versions}
    if got == by_version:
        return wrong(f"It returns only {', '.join(sorted(_label(r) for r in got))}: it counts "
                     "a check of another model's deployment with the same version number. "
                     "Match the verification to the deployment by id, not by version number "
                     "(v.deployment_id = d.id).")
    failed_twice = (names[0], 2 + shift)
    if failed_twice not in got:
        return wrong(f"It misses {_label(failed_twice)}, which was checked twice and failed "
                     "both times: a failed check is not a verification. Count only checks with "
                     "ok = 1.")
    if expected - got and all(r[0] == names[1] for r in expected - got):
        return wrong(f"It misses {', '.join(sorted(_label(r) for r in expected - got))}, a "
                     "deployment of another model: the question is about every model, so do "
                     "not filter on model_name.")
    if expected - got:
        missing = sorted(_label(r) for r in expected - got)
        return wrong(f"It misses {', '.join(missing)}, never checked at all: an inner JOIN with "
                     "verifications drops a deployment that has no row there. Use NOT EXISTS, "
                     "or a LEFT JOIN.")
    return None

