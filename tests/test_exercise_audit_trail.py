"""Lesson 08's checker: a right query passes, each typical wrong one fails with its reason.

The checker builds its own in-memory databases of the lesson's tables, so these tests need no
store, no TensorFlow and no server.
"""

from __future__ import annotations

import json

import pytest

from forgekit.exercises import NOT_ANSWERED
from forgekit.exercises.audit_trail import SCHEMA, check_served_bytes
from tests.conftest import ROOT

LATEST = "(SELECT MAX(id) FROM verifications WHERE deployment_id = d.id)"
FAILED = "v.id IS NULL OR v.served_sha256 <> a.sha256 OR v.golden_ok = 0"
RIGHT = {
    "latest by id": "SELECT d.model_name, d.version FROM deployments d "
                    "JOIN artifacts a ON a.id = d.artifact_id "
                    f"LEFT JOIN verifications v ON v.id = {LATEST} WHERE {FAILED}",
    "latest by checked_at": "SELECT d.model_name, d.version FROM deployments d "
                            "JOIN artifacts a ON a.id = d.artifact_id WHERE COALESCE("
                            "(SELECT v.served_sha256 = a.sha256 AND v.golden_ok FROM "
                            "verifications v WHERE v.deployment_id = d.id "
                            "ORDER BY v.checked_at DESC LIMIT 1), 0) = 0",
    "no later check": "SELECT d.model_name, d.version FROM deployments d "
                      "JOIN artifacts a ON a.id = d.artifact_id "
                      "LEFT JOIN verifications v ON v.deployment_id = d.id AND NOT EXISTS "
                      "(SELECT 1 FROM verifications w WHERE w.deployment_id = d.id AND w.id > v.id) "
                      "WHERE v.id IS NULL OR v.served_sha256 != a.sha256 OR NOT v.golden_ok",
}

WRONG = {
    "any failure ever":
        ("SELECT DISTINCT d.model_name, d.version FROM deployments d JOIN artifacts a ON "
         f"a.id = d.artifact_id LEFT JOIN verifications v ON v.deployment_id = d.id WHERE {FAILED}",
         "it was fixed"),
    "no passing check ever":
        ("SELECT d.model_name, d.version FROM deployments d JOIN artifacts a ON "
         "a.id = d.artifact_id WHERE NOT EXISTS (SELECT 1 FROM verifications v WHERE "
         "v.deployment_id = d.id AND v.served_sha256 = a.sha256 AND v.golden_ok)",
         "A passing check is not forever"),
    "golden rows only, never the bytes":
        ("SELECT d.model_name, d.version FROM deployments d "
         f"LEFT JOIN verifications v ON v.id = {LATEST} WHERE v.id IS NULL OR v.golden_ok = 0",
         "golden_ok alone misses it"),
    "the bytes only, never the golden rows":
        ("SELECT d.model_name, d.version FROM deployments d JOIN artifacts a ON "
         f"a.id = d.artifact_id LEFT JOIN verifications v ON v.id = {LATEST} "
         "WHERE v.id IS NULL OR v.served_sha256 <> a.sha256", "check golden_ok too"),
    "latest check of that version number":
        ("SELECT d.model_name, d.version FROM deployments d JOIN artifacts a ON "
         "a.id = d.artifact_id LEFT JOIN verifications v ON v.id = (SELECT MAX(v2.id) FROM "
         "verifications v2 JOIN deployments d2 ON d2.id = v2.deployment_id "
         f"WHERE d2.version = d.version) WHERE {FAILED}", "not by version number"),
    "any recorded sha256":
        ("SELECT d.model_name, d.version FROM deployments d "
         f"LEFT JOIN verifications v ON v.id = {LATEST} WHERE v.id IS NULL OR v.golden_ok = 0 OR "
         "v.served_sha256 NOT IN (SELECT sha256 FROM artifacts)", "not this deployment's"),
    "inner join drops the unchecked":
        ("SELECT d.model_name, d.version FROM deployments d JOIN artifacts a ON "
         f"a.id = d.artifact_id JOIN verifications v ON v.id = {LATEST} "
         "WHERE v.served_sha256 <> a.sha256 OR v.golden_ok = 0", "never checked at all"),
    "join repeats rows":
        ("SELECT d.model_name, d.version FROM deployments d JOIN verifications v "
         "ON v.deployment_id = d.id", "more than once"),
    "every deployment":
        ("SELECT model_name, version FROM deployments", "latest check passed"),
    "one model only":
        ("SELECT d.model_name, d.version FROM deployments d JOIN artifacts a ON "
         f"a.id = d.artifact_id LEFT JOIN verifications v ON v.id = {LATEST} "
         f"WHERE d.model_name = 'incident' AND ({FAILED})", "do not filter on model_name"),
    "ids typed in":
        ("SELECT model_name, version FROM deployments WHERE id IN (2, 4, 5, 6, 7, 9)",
         "literally"),
    "inner join, then IS NULL":
        ("SELECT d.model_name, d.version FROM deployments d JOIN verifications v "
         "ON v.deployment_id = d.id WHERE v.id IS NULL", "An inner JOIN"),
    "NOT IN meets a NULL":
        ("SELECT model_name, version FROM deployments WHERE id NOT IN "
         "(SELECT deployment_id FROM verifications WHERE golden_ok = 1)",
         "never true when the subquery"),
    "wrong columns": ("SELECT d.model_name FROM deployments d", "exactly model_name, version"),
    "unknown column": ("SELECT vers FROM deployments", "no such column: vers"),
    "two statements": ("SELECT 1; SELECT 2", "one statement at a time"),
    "not a query": ("DELETE FROM deployments WHERE 0", "write a SELECT"),
}


@pytest.mark.parametrize("sql", RIGHT.values(), ids=RIGHT.keys())
def test_a_right_query_passes(sql):
    feedback = check_served_bytes(sql)
    assert feedback.passed, feedback.message


@pytest.mark.parametrize("sql, why", WRONG.values(), ids=WRONG.keys())
def test_a_wrong_query_is_told_why(sql, why):
    feedback = check_served_bytes(sql)
    assert not feedback.passed and why in feedback.message, feedback.message


@pytest.mark.parametrize("sql", [None, "", "-- your query here\n", "\n  -- SELECT ...\n"])
def test_no_query_is_not_an_answer(sql):
    assert check_served_bytes(sql) is NOT_ANSWERED


def test_the_checker_builds_the_lessons_own_tables():
    """The exercise's databases hold the tables the lesson's section 1 creates, word for word."""
    cells = json.loads((ROOT / "notebooks" / "08_audit_trail.ipynb").read_text())["cells"]
    ddl = next("".join(c["source"]) for c in cells
               if c["cell_type"] == "code" and "CREATE TABLE runs" in "".join(c["source"]))
    assert " ".join(SCHEMA.split()) in " ".join(ddl.split())
