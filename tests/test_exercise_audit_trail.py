"""Lesson 08's checker: a right query passes, each typical wrong one fails with its reason.

The checker builds its own in-memory databases of the lesson's tables, so these tests need no
store, no TensorFlow and no server.
"""

from __future__ import annotations

import json

import pytest

from forgekit.exercises import NOT_ANSWERED
from forgekit.exercises.audit_trail import SCHEMA, check_never_verified
from tests.conftest import ROOT

RIGHT = {
    "not exists": "SELECT d.model_name, d.version FROM deployments d WHERE NOT EXISTS "
                  "(SELECT 1 FROM verifications v WHERE v.deployment_id = d.id AND v.ok = 1)",
    "left join": "SELECT d.model_name, d.version FROM deployments d LEFT JOIN verifications v "
                 "ON v.deployment_id = d.id AND v.ok = 1 WHERE v.id IS NULL",
    "not in, nulls excluded": "SELECT model_name, version FROM deployments WHERE id NOT IN "
                              "(SELECT deployment_id FROM verifications "
                              "WHERE ok = 1 AND deployment_id IS NOT NULL)",
    "group by": "SELECT d.model_name, d.version FROM deployments d LEFT JOIN verifications v "
                "ON v.deployment_id = d.id GROUP BY d.id "
                "HAVING COALESCE(MAX(v.ok), 0) = 0",
}

WRONG = {
    "no passing-check filter":
        ("SELECT d.model_name, d.version FROM deployments d WHERE NOT EXISTS "
         "(SELECT 1 FROM verifications v WHERE v.deployment_id = d.id)",
         "checked twice and failed both times"),
    "NOT IN meets a NULL":
        ("SELECT model_name, version FROM deployments WHERE id NOT IN "
         "(SELECT deployment_id FROM verifications WHERE ok = 1)", "never true when the subquery"),
    "join repeats rows":
        ("SELECT d.model_name, d.version FROM deployments d JOIN verifications v "
         "ON v.deployment_id = d.id WHERE v.ok = 0", "more than once"),
    "a failed check taken for the last word":
        ("SELECT DISTINCT d.model_name, d.version FROM deployments d LEFT JOIN verifications v "
         "ON v.deployment_id = d.id WHERE v.ok = 0 OR v.id IS NULL", "a later one passed"),
    "only the never-checked":
        ("SELECT d.model_name, d.version FROM deployments d LEFT JOIN verifications v "
         "ON v.deployment_id = d.id WHERE v.id IS NULL", "checked twice and failed"),
    "only the failed":
        ("SELECT DISTINCT d.model_name, d.version FROM deployments d JOIN verifications v "
         "ON v.deployment_id = d.id GROUP BY d.id HAVING MAX(v.ok) = 0", "never checked at all"),
    "inner join, then IS NULL":
        ("SELECT d.model_name, d.version FROM deployments d JOIN verifications v "
         "ON v.deployment_id = d.id WHERE v.id IS NULL", "An inner JOIN"),
    "every deployment":
        ("SELECT model_name, version FROM deployments", "which passed a verification"),
    "rows typed in":
        ("SELECT model_name, version FROM deployments WHERE (model_name, version) IN "
         "(VALUES ('incident', 2), ('incident', 4), ('ranker', 1))", "literally"),
    "ids typed in":
        ("SELECT model_name, version FROM deployments WHERE id IN (2, 4, 5)", "ids literally"),
    "one model only":
        ("SELECT d.model_name, d.version FROM deployments d WHERE d.model_name = 'incident' AND "
         "NOT EXISTS (SELECT 1 FROM verifications v WHERE v.deployment_id = d.id AND v.ok = 1)",
         "another model"),
    "matched by version, not id":
        ("SELECT d.model_name, d.version FROM deployments d WHERE NOT EXISTS "
         "(SELECT 1 FROM verifications v JOIN deployments d2 ON d2.id = v.deployment_id "
         "WHERE d2.version = d.version AND v.ok = 1)", "by id, not by version number"),
    "wrong columns": ("SELECT d.model_name FROM deployments d", "exactly model_name, version"),
    "unknown column": ("SELECT vers FROM deployments", "no such column: vers"),
    "two statements": ("SELECT 1; SELECT 2", "one statement at a time"),
    "not a query": ("DELETE FROM deployments WHERE 0", "write a SELECT"),
}


@pytest.mark.parametrize("sql", RIGHT.values(), ids=RIGHT.keys())
def test_a_right_query_passes(sql):
    feedback = check_never_verified(sql)
    assert feedback.passed, feedback.message


@pytest.mark.parametrize("sql, why", WRONG.values(), ids=WRONG.keys())
def test_a_wrong_query_is_told_why(sql, why):
    feedback = check_never_verified(sql)
    assert not feedback.passed and why in feedback.message, feedback.message


@pytest.mark.parametrize("sql", [None, "", "-- your query here\n", "\n  -- SELECT ...\n"])
def test_no_query_is_not_an_answer(sql):
    assert check_never_verified(sql) is NOT_ANSWERED


def test_the_checker_builds_the_lessons_own_tables():
    """The exercise's databases hold the tables the lesson's section 1 creates, word for word."""
    cells = json.loads((ROOT / "notebooks" / "08_audit_trail.ipynb").read_text())["cells"]
    ddl = next("".join(c["source"]) for c in cells
               if c["cell_type"] == "code" and "CREATE TABLE runs" in "".join(c["source"]))
    assert " ".join(SCHEMA.split()) in " ".join(ddl.split())
