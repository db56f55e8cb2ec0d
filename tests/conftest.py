"""Shared test setup: quiet CPU-only TensorFlow, and a summary of notebook runs at the end."""

from __future__ import annotations

import os
from pathlib import Path

from forgekit.quiet import QUIET_ENV

for _key, _value in QUIET_ENV.items():
    os.environ.setdefault(_key, _value)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_RESULTS: list = []  # RunResults recorded by tests/test_notebooks.py
NOTEBOOK_PROPERTY = "notebook_result"


def pytest_runtest_logreport(report):
    # Notebook tests record their RunResult as a user property: it travels with the report, so
    # the summary below also sees results from pytest-xdist workers (`make test PYTEST_ARGS=-n2`).
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key == NOTEBOOK_PROPERTY:
            from forgekit.runner import RunResult

            NOTEBOOK_RESULTS.append(RunResult(**value))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not NOTEBOOK_RESULTS:
        return
    from forgekit.runner import summary_table

    terminalreporter.section("notebooks (CI parameters)")
    terminalreporter.write_line(summary_table(sorted(NOTEBOOK_RESULTS, key=lambda r: r.notebook)))
