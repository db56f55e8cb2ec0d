"""Versions are pinned once, in pyproject.toml; conda and Binder files are generated from it."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import ROOT
from tools import sync_env


def _pip_lines(path):
    return {line.strip()[2:] for line in path.read_text().splitlines()
            if re.match(r"\s+- [A-Za-z]", line) and "==" in line}


def test_generated_files_are_current():
    for path, expected in sync_env.files(ROOT).items():
        assert path.exists(), f"{path.name} missing: run `make env-files`"
        assert path.read_text() == expected, f"{path} is stale: run `make env-files`"


def test_pins_agree_across_pyproject_conda_and_binder():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    assert all("==" in req for req in pinned), "every requirement is pinned exactly"
    for name in ("tensorflow==2.21.0", "tf-keras==2.21.0"):
        assert name in pinned
    for path in (ROOT / "environment.yml", ROOT / "binder" / "environment.yml"):
        assert _pip_lines(path) == pinned, path
        assert "python=3.11" in path.read_text()


def test_binder_installs_the_package():
    assert "pip install --no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()
