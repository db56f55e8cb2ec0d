"""Lesson 08's exercise: the SQL that names every deployment whose latest check failed.

The learner writes one ``SELECT`` against the lesson's plain tables (:data:`SCHEMA`, the DDL the
lesson runs in its first section) returning ``model_name`` and ``version`` of every deployment
whose **latest** check failed either part (the served folder's ``served_sha256`` differs from its
artifact's ``sha256``, or ``golden_ok`` is 0), or that was never checked. The checker builds
fresh in-memory SQLite databases of its own, runs the query on each and compares the rows with
what they hold. Each database plants the traps a first query falls into:

* a deployment whose first check passed and whose latest did not (overwritten in place):
  "no passing check exists" misses it;
* a deployment whose first check failed and a later one passed (fixed): "a failing check
  exists" wrongly returns it;
* a deployment whose golden rows still match but whose folder holds other bytes (re-exported:
  a new ``fingerprint.pb``): a query on ``golden_ok`` alone misses it;
* a deployment whose folder holds its recorded bytes but whose golden rows failed (a server
  still answering with an older load of that number): a query on the bytes alone misses it;
* a deployment serving *another* recorded artifact's bytes (version 1's): comparing with every
  recorded sha256 instead of its own artifact's misses it;
* a healthy deployment sharing its version number with another model's failing one, checked
  before it: picking "the latest check of that version number" returns it;
* deployments never checked (an inner JOIN drops them);
* a deployment checked twice, both passing (a JOIN returns it twice);
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
CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT NOT NULL, params TEXT NOT NULL);
CREATE TABLE metrics (run_id INTEGER NOT NULL REFERENCES runs(id), epoch INTEGER NOT NULL,
  name TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (run_id, epoch, name));
CREATE TABLE artifacts (id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES runs(id),
  path TEXT NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE deployments (id INTEGER PRIMARY KEY, model_name TEXT NOT NULL,
  version INTEGER NOT NULL, artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
  golden TEXT NOT NULL);  -- JSON: inputs, and the outputs the published model gave them
CREATE TABLE verifications (id INTEGER PRIMARY KEY,
  deployment_id INTEGER REFERENCES deployments(id),  -- NULL: a version never recorded
  served_sha256 TEXT NOT NULL,  -- the version folder on disk, at the check
  golden_ok INTEGER NOT NULL, checked_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
"""

# The deployments, in row order: (model, version).
_DEPLOYMENTS = (("incident", 1), ("incident", 2), ("incident", 3), ("incident", 4),
                ("incident", 5), ("incident", 6), ("ranker", 1), ("ranker", 2), ("ranker", 3))
# Every check, in time order: (model, version, bytes found, golden_ok). Bytes: "own" = the
# deployment's own artifact's, "v1" = version 1's artifact's, "stranger" = recorded nowhere.
_CHECKS = (("incident", 1, "own", 1),        # healthy
           ("incident", 2, "own", 1),        # passed, then ...
           ("incident", 3, "stranger", 0),   # failed, then ...
           ("ranker", 2, "own", 1),
           ("incident", 4, "v1", 1),         # serves version 1's (recorded) bytes
           ("incident", 2, "stranger", 0),   # ... overwritten in place: fails
           ("incident", 3, "own", 1),        # ... fixed: passes
           ("ranker", 1, "stranger", 0),     # fails, after incident v1's pass: same number
           ("incident", 6, "own", 0),        # recorded bytes, other answers: an older load
           ("ranker", 2, "own", 1),          # checked twice, both passing
           ("ranker", 3, "restamp", 1))      # re-exported: same answers, other bytes
# incident 5 is never checked.
PASS_THEN_FAIL, FIXED, OTHERS_BYTES, STALE_LOAD = 2, 3, 4, 6
RE_EXPORTED = 3  # of the second model


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
    row, own = {}, {}
    for i, (model, version) in enumerate(_DEPLOYMENTS):
        name, number = rename[model], version + shift
        row[model, version], own[model, version] = first_id + i, _sha(names, model, version)
        db.execute("INSERT INTO artifacts (id, run_id, path, sha256) VALUES (?, ?, ?, ?)",
                   (first_id + i, 1 + i % 2, f"/models/{name}/{number}", own[model, version]))
        db.execute("INSERT INTO deployments (id, model_name, version, artifact_id, golden) "
                   "VALUES (?, ?, ?, ?, '{}')", (first_id + i, name, number, first_id + i))
    latest = {}
    for clock, (model, version, found, golden_ok) in enumerate(_CHECKS, start=1):
        served = {"own": own[model, version], "v1": own["incident", 1]}.get(
            found, _sha(names, found, model, version))
        db.execute("INSERT INTO verifications (deployment_id, served_sha256, golden_ok, "
                   "checked_at) VALUES (?, ?, ?, ?)",
                   (row[model, version], served, golden_ok, f"2026-03-01 09:{clock:02d}:00"))
        latest[model, version] = found == "own" and golden_ok
    # a version published by hand, checked but never recorded
    db.execute("INSERT INTO verifications (deployment_id, served_sha256, golden_ok, checked_at) "
               "VALUES (NULL, ?, 1, '2026-03-01 09:59:00')", (_sha(names, "by hand"),))
    expected = {(rename[m], v + shift) for m, v in _DEPLOYMENTS if not latest.get((m, v))}
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
    return correct("Your query judges each deployment by its latest check, both parts: it "
                   "names the one passed and later overwritten, the re-exported one whose golden "
                   "rows still match, the one whose recorded bytes answer differently, the one "
                   "serving version 1's bytes and the ones never checked, and not the one fixed "
                   "since. Run daily, it names a deployment on the day its check first fails.")


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
    first = {v: (names[0], v + shift) for v in (1, PASS_THEN_FAIL, FIXED, OTHERS_BYTES,
                                                STALE_LOAD)}
    second = {v: (names[1], v + shift) for v in (1, 2, RE_EXPORTED)}
    extra = got - expected
    if extra == {first[FIXED]}:
        return wrong(f"It returns {_label(first[FIXED])}: its first check failed, but its latest "
                     "passed (it was fixed). An old failure is history; judge each deployment "
                     "by its latest check only.")
    if first[1] in extra and second[2] not in extra:
        return wrong(f"It returns {_label(first[1])}, whose own latest check passed. The check "
                     f"you judged it by is {_label(second[1])}'s, another model's deployment "
                     "with the same version number, checked later. Match checks to deployments "
                     "by id (v.deployment_id = d.id), not by version number.")
    if extra:
        return wrong(f"It also returns {', '.join(sorted(_label(r) for r in extra))}: each "
                     "one's latest check passed, with the sha256 of its own artifact served "
                     "(a.id = d.artifact_id) and golden_ok 1.")
    missing = expected - got
    if missing == {r for r in expected if r[0] == names[1]}:
        return wrong(f"It misses {', '.join(sorted(_label(r) for r in missing))}, every "
                     f"deployment of a second model, {names[1]}: do not filter on model_name.")
    if first[PASS_THEN_FAIL] in missing:
        return wrong(f"It misses {_label(first[PASS_THEN_FAIL])}: its first check passed, its "
                     "latest failed (the folder was overwritten in place after it was "
                     "checked). A passing check is not forever: judge the latest check.")
    if second[RE_EXPORTED] in missing and first[STALE_LOAD] not in missing:
        return wrong(f"It misses {_label(second[RE_EXPORTED])}: its golden rows still got their "
                     "recorded outputs, but its folder holds other bytes (re-exported: a new "
                     "fingerprint.pb, a new saved_model.pb), so the record no longer says what "
                     "serves. golden_ok alone misses it: compare served_sha256 with the "
                     "artifact's sha256 too.")
    if first[STALE_LOAD] in missing and second[RE_EXPORTED] not in missing:
        return wrong(f"It misses {_label(first[STALE_LOAD])}: its folder holds the recorded "
                     "bytes, but its golden rows got other outputs (the server still answers "
                     "with an older load of that number; a loaded version is not re-read when "
                     "its folder changes). The bytes alone miss it: check golden_ok too.")
    if first[OTHERS_BYTES] in missing:
        return wrong(f"It misses {_label(first[OTHERS_BYTES])}, whose latest check found version "
                     f"{1 + shift}'s bytes served: a recorded artifact, but not this deployment's. "
                     "Compare with the sha256 of its own artifact (a.id = d.artifact_id), not "
                     "with any sha256 in artifacts.")
    if missing == {(names[0], 5 + shift)}:
        return wrong(f"It misses {_label((names[0], 5 + shift))}, never checked at all: an inner "
                     "JOIN with verifications drops a deployment that has no row there, and "
                     "nobody knows what it serves. Use a LEFT JOIN and keep the rows where no "
                     "check matched (v.id IS NULL).")
    if missing:
        return wrong(f"It misses {', '.join(sorted(_label(r) for r in missing))}: a failed "
                     "check's two parts are other bytes (served_sha256 <> a.sha256) or other "
                     "answers (golden_ok = 0), and a deployment never checked at all counts too "
                     "(an inner JOIN drops it; use a LEFT JOIN and keep v.id IS NULL).")
    return None
