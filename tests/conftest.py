"""Shared test setup: quiet CPU-only TensorFlow, and a summary of notebook runs at the end."""

from __future__ import annotations

import os
from pathlib import Path

from forgekit.quiet import QUIET_ENV

for _key, _value in QUIET_ENV.items():
    os.environ.setdefault(_key, _value)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_RESULTS: list = []  # filled by tests/test_notebooks.py


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not NOTEBOOK_RESULTS:
        return
    from forgekit.course.runner import summary_table

    terminalreporter.section("notebooks (CI parameters)")
    terminalreporter.write_line(summary_table(sorted(NOTEBOOK_RESULTS, key=lambda r: r.notebook)))
