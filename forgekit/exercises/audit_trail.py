"""Lesson 08's exercise: write the SQL that finds artifacts no deployment points at.

The checker runs the learner's query against the lesson's own store, inside a transaction it
rolls back, after adding two probe rows: one more artifact that was never deployed and one that
was. So an answer that names the lesson's file, or filters by kind or file name instead of by
the deployments table, is caught and told why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong

PROBE_UNDEPLOYED = "/probe/never_published.keras"
PROBE_DEPLOYED = "/probe/published/7"


def _run(store: Any, sql: str) -> tuple[list[str], list[tuple], set[str]]:
    """Columns and rows of ``sql`` with the probe rows present; then every row is rolled back."""
    import sqlalchemy as sa

    from forgekit.audit.schema import artifacts, deployments, now

    with store.engine.connect() as conn:
        trans = conn.begin()
        try:
            stamp = now()
            conn.execute(artifacts.insert(), [
                {"path": PROBE_UNDEPLOYED, "kind": "keras", "fingerprint": "0" * 64, "bytes": 1,
                 "created_at": stamp},
                {"path": PROBE_DEPLOYED, "kind": "savedmodel", "fingerprint": "1" * 64,
                 "bytes": 1, "created_at": stamp}])
            deployed_id = conn.execute(sa.select(artifacts.c.id).where(
                artifacts.c.path == PROBE_DEPLOYED)).scalar_one()
            conn.execute(deployments.insert().values(
                model_name="probe", version=7, artifact_id=deployed_id, path=PROBE_DEPLOYED,
                published_at=stamp))
            expected = {r[0] for r in conn.execute(sa.text(
                "SELECT a.path FROM artifacts a WHERE NOT EXISTS "
                "(SELECT 1 FROM deployments d WHERE d.artifact_id = a.id)"))}
            result = conn.execute(sa.text(sql))
            columns = list(result.keys())
            rows = [tuple(r) for r in result]
        finally:
            trans.rollback()
    return columns, rows, expected


def check_never_deployed(store: Any, sql: str | None) -> Feedback:
    """Check a query meant to return the ``path`` of every artifact no deployment points at."""
    import sqlalchemy as sa

    if not sql or not sql.strip() or sql.strip().startswith("--") and "select" not in sql.lower():
        return NOT_ANSWERED
    try:
        columns, rows, expected = _run(store, sql)
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return wrong(f"{store.backend} could not run it: {first}. Check table and column names "
                     "against the CREATE TABLE statements above.")
    except sa.exc.ResourceClosedError:
        return wrong("That statement returns no rows: write a SELECT.")
    if len(columns) != 1 or columns[0].lower() != "path":
        return wrong(f"It returns the columns {columns}; return exactly one column named path "
                     "(SELECT a.path ...).")
    paths = [r[0] for r in rows]
    got = set(paths)
    lesson = {p for p in expected if not p.startswith("/probe/")}
    if len(paths) != len(got):
        return wrong("Some paths come back more than once: joining deployments repeats an "
                     "artifact once per deployment. Ask whether a deployment EXISTS instead.")
    if not got:
        return wrong("No rows. If you joined artifacts to deployments with an inner JOIN, you "
                     "kept only artifacts that HAVE a deployment; the ones you want have none. "
                     "Use NOT EXISTS, or a LEFT JOIN keeping the rows where the deployment is NULL.")
    if PROBE_DEPLOYED in got or got - expected:
        extra = sorted("/".join(Path(p).parts[-2:]) for p in got - expected)
        return wrong(f"It also returns artifacts that a deployment points at ({', '.join(extra)}):"
                     " the question is which artifacts have NO row in deployments.")
    if PROBE_UNDEPLOYED not in got:
        return wrong("It finds the lesson's own file but misses another never-deployed artifact "
                     "the checker added (a .keras file): did you select by name or kind? Decide "
                     "by the deployments table, not by what the path looks like.")
    if got != expected:
        missing = sorted("/".join(Path(p).parts[-2:]) for p in expected - got)
        return wrong(f"It misses never-deployed artifacts: {', '.join(missing)}.")
    return correct(f"It returns {', '.join(sorted(Path(p).name for p in lesson))} and the "
                   "checker's probe, and nothing with a deployment: an artifact that was saved "
                   "and recorded but never published. Run daily, that query names the incident's "
                   "retrained model on the day it was saved, not six months later.")
