"""Lesson 08's exercise: the SQL that names every deployment not serving its recorded bytes.

The learner writes one ``SELECT`` against the lesson's plain tables (:data:`SCHEMA`, the DDL the
lesson runs in its first section) returning ``model_name`` and ``version`` of every deployment
whose **latest** check found other bytes being served than the ones recorded for it
(``verifications.served_sha256`` differs from its artifact's ``sha256``), or that was never
checked. The checker builds fresh in-memory SQLite databases of its own, runs the query on each
and compares the rows with what they hold. Each database plants the traps a first query falls
into:

* a deployment whose first check matched and whose latest did not (verified, then overwritten
  in place): "no matching check exists" misses it;
* a deployment whose first check did not match and a later one did (fixed): "a mismatching check
  exists" wrongly returns it;
* a deployment serving *another* recorded artifact's bytes (version 1's): comparing with every
  recorded sha256 instead of its own artifact's misses it;
* deployments never checked (an inner JOIN drops them), one of them of a second model sharing
  its version number with a verified one (a filter on one model, or a match by version number,
  misses it);
* a deployment checked twice, both matching (a JOIN returns it twice);
* a check with ``deployment_id`` NULL (a version checked that the store never saw published);
* two databases with different model names, versions, row ids and hashes, so an answer that
  names them literally fails.

The latest check is the one with the highest ``id``; ``checked_at`` grows with it here, so
ordering by either is right.
"""

from __future__ import annotations

import hashlib
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
  served_sha256 TEXT NOT NULL,  -- the served folder, re-hashed when checked
  deployment_id INTEGER REFERENCES deployments(id),  -- NULL: a version never recorded
  checked_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
"""

# (model, version, [what each check found served, in order]): "own" = the deployment's own
# artifact's bytes, "v1" = version 1's artifact's bytes, "stranger" = bytes recorded nowhere.
_WORLD = (("incident", 1, ["own"]),               # serving what was recorded
          ("incident", 2, ["own", "stranger"]),   # verified, then overwritten in place
          ("incident", 3, ["stranger", "own"]),   # wrong bytes, then fixed
          ("incident", 4, ["v1"]),                # serves version 1's (recorded) bytes
          ("incident", 5, []),                    # never checked
          ("ranker", 1, []),                      # never checked; shares version 1
          ("ranker", 2, ["own", "own"]))          # checked twice, both matching
PASS_THEN_FAIL, FIXED, OTHERS_BYTES = 2, 3, 4


def _sha(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _database(names: tuple[str, str], shift: int,
              first_id: int) -> tuple[sqlite3.Connection, set[tuple]]:
    """A fresh database of the lesson's tables; returns it and the right answer's rows.

    Versions are shifted by ``shift``; artifact and deployment ids start at ``first_id``.
    """
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    rename = {"incident": names[0], "ranker": names[1]}
    db.execute("INSERT INTO runs (name, params) VALUES ('baseline', '{}'), ('retrained', '{}')")
    expected, own = set(), {}
    clock = 0
    for i, (model, version, _) in enumerate(_WORLD):
        name, number = rename[model], version + shift
        own[model, version] = _sha(names, model, version)
        db.execute("INSERT INTO artifacts (id, run_id, path, sha256) VALUES (?, ?, ?, ?)",
                   (first_id + i, 1 + i % 2, f"/models/{name}/{number}", own[model, version]))
        db.execute("INSERT INTO deployments (id, model_name, version, artifact_id) "
                   "VALUES (?, ?, ?, ?)", (first_id + i, name, number, first_id + i))
    for i, (model, version, checks) in enumerate(_WORLD):
        for found in checks:
            served = {"own": own[model, version], "v1": own["incident", 1],
                      "stranger": _sha(names, "stranger", version)}[found]
            clock += 1
            db.execute("INSERT INTO verifications (deployment_id, ok, detail, served_sha256, "
                       "checked_at) VALUES (?, ?, ?, ?, ?)",
                       (first_id + i, found == "own", f"served {served[:12]}", served,
                        f"2026-03-01 09:{clock:02d}:00"))
        if not checks or checks[-1] != "own":
            expected.add((rename[model], version + shift))
    clock += 1
    db.execute("INSERT INTO verifications (deployment_id, ok, detail, served_sha256, checked_at) "
               "VALUES (NULL, 1, 'a version published by hand, never recorded', ?, ?)",
               (_sha(names, "by hand"), f"2026-03-01 09:{clock:02d}:00"))
    return db, expected


# (model names, version shift, first row id): the second differs in all three.
_DATABASES = ((("incident", "ranker"), 0, 1), (("fraud", "churn"), 10, 101))


def _label(row: tuple) -> str:
    return f"{row[0]} v{row[1]}"


def check_served_bytes(sql: str | None) -> Feedback:
    """Check a query meant to return ``model_name, version`` of every deployment whose latest
    check found other bytes served than recorded, or none; say why a wrong one is wrong."""
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
                             "one with other model names, versions, row ids and hashes: it "
                             f"should return {', '.join(sorted(_label(r) for r in expected))} "
                             f"and returned {found}. Does your query name models, versions, "
                             "ids or hashes literally?")
            return verdict
    return correct("Your query judges each deployment by its latest check against its own "
                   "artifact's sha256: it names the one verified and later overwritten, the one "
                   "serving version 1's bytes and the ones never checked, and not the one fixed "
                   "since. Run daily, it names a deployment whose bytes changed on the day.")


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
                     "a check, and compares every check; the ones you want may have none. Pick "
                     "each deployment's latest check with a LEFT JOIN (or a subquery on MAX(id)).")
    if len(rows) != len(got):
        twice = sorted(_label(r) for r in got if rows.count(r) > 1)
        return wrong(f"{', '.join(twice)} comes back more than once: a JOIN repeats a deployment "
                     "once per verification. Join only each deployment's latest check "
                     "(v.id = (SELECT MAX(id) ... WHERE deployment_id = d.id)).")
    label = {v: (names[0], v + shift) for v in (PASS_THEN_FAIL, FIXED, OTHERS_BYTES)}
    if got - expected == {label[FIXED]}:
        return wrong(f"It returns {_label(label[FIXED])}: its first check found other bytes, but "
                     "its latest found the recorded ones (it was fixed). An old mismatch is "
                     "history; judge each deployment by its latest check only.")
    if got - expected:
        extra = sorted(_label(r) for r in got - expected)
        return wrong(f"It also returns {', '.join(extra)}, whose latest check found the recorded "
                     "bytes served. Compare served_sha256 with the sha256 of the deployment's "
                     "own artifact (a.id = d.artifact_id).")
    if label[PASS_THEN_FAIL] not in got:
        return wrong(f"It misses {_label(label[PASS_THEN_FAIL])}: its first check matched, its "
                     "latest found other bytes (the folder was overwritten in place after it "
                     "was verified). A passing check is not forever: judge the latest check.")
    if label[OTHERS_BYTES] not in got:
        return wrong(f"It misses {_label(label[OTHERS_BYTES])}, whose latest check found version "
                     f"{1 + shift}'s bytes served: a recorded artifact, but not this deployment's. "
                     "Compare with the sha256 of its own artifact (a.id = d.artifact_id), not "
                     "with any sha256 in artifacts.")
    missing = expected - got
    if missing == {(names[1], 1 + shift)}:
        return wrong(f"It misses {_label((names[1], 1 + shift))}, never checked, a deployment of "
                     "another model with the same version number as a checked one. Do not "
                     "filter on model_name, and match checks to deployments by id "
                     "(v.deployment_id = d.id), not by version number.")
    if missing:
        return wrong(f"It misses {', '.join(sorted(_label(r) for r in missing))}, never checked "
                     "at all: an inner JOIN with verifications drops a deployment that has no "
                     "row there, and nobody knows what it serves. Use a LEFT JOIN and keep the "
                     "rows where no check matched (v.id IS NULL).")
    return None
