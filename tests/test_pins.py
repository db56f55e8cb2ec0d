"""Versions are pinned once, in pyproject.toml, and resolved once, into requirements.lock.

The venv, conda's environment.yml and Binder all install from the lock; these tests fail when
any of them drifts from it, or the lock from pyproject.toml.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tools import lock, sync_env

LOCK = ROOT / lock.LOCK_NAME


def test_generated_files_are_current():
    for path, expected in sync_env.files(ROOT).items():
        assert path.exists(), f"{path.name} missing: run `make lock`"
        assert path.read_text() == expected, f"{path} is stale: run `make lock`"
    for name in sync_env.OBSOLETE:
        assert not (ROOT / name).exists(), f"{name} would override binder/requirements.txt"


def test_every_requirement_in_pyproject_is_met_by_the_lock_on_every_python():
    names = {lock.normalize(r.name) for r in lock.requirements(ROOT)}
    assert {"tensorflow", "keras", "tf-keras", "uv", "jupyterlab", "papermill"} <= names
    assert lock.disagreements(ROOT) == [], "run `make lock` and commit requirements.lock"


def test_pyproject_declares_ranges_and_the_lock_alone_pins():
    """A learner's `pip install forgekit` keeps their TensorFlow: no exact pins in the package's
    requirements (actionlint's extra is outside the lock, so it is pinned where it is declared)."""
    exact = [str(r) for r in lock.requirements(ROOT) if any(s.operator in ("==", "===")
                                                           for s in r.specifier)]
    assert exact == [], f"exact pins in pyproject.toml: {exact}"
    tf = next(r for r in lock.requirements(ROOT) if r.name == "tensorflow")
    assert tf.specifier.contains("2.20.0") and tf.specifier.contains("2.21.0"), tf
    assert lock.locked_version("tensorflow").startswith("2.21."), "the course's pinned run is 2.21"
    assert lock.python_version(ROOT) == "3.11" and lock.PYTHONS == ("3.11", "3.12", "3.13")


def test_the_lock_installs_on_python_311_to_313():
    entries = lock.parse(LOCK)
    for python in lock.PYTHONS:
        names = {e.name for e in entries if e.applies(lock.environment(python))}
        assert {"tensorflow", "keras", "numpy", "h5py"} <= names, python


def test_a_requirement_the_lock_does_not_meet_is_reported(tmp_path):
    text = (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(text.replace('"keras>=3.10,<4"', '"keras>=99"').replace(
        '"psutil>=', '"psutil-missing>=', 1))
    problems = lock.disagreements(tmp_path, LOCK)
    assert any(p.startswith("keras: pyproject.toml requires >=99") for p in problems), problems
    assert any(p.startswith("psutil-missing>=") and "not in the lock" in p for p in problems)


def test_lock_is_complete_hashed_and_names_no_other_index():
    entries = lock.parse(LOCK)
    assert len(entries) > 100, "the lock holds every transitive dependency, not only the pins"
    unhashed = [e.name for e in entries if not e.hashes]
    assert not unhashed, f"entries without hashes: {unhashed}"
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for e in entries for h in e.hashes)
    text = LOCK.read_text()
    for needle in ("--index-url", "--extra-index-url", "--find-links", "file:", "://"):
        assert needle not in text, f"the lock mentions {needle!r}: it must resolve against PyPI only"
    assert not re.search(r"(^|\s)/\w", text, re.M), "the lock names an absolute local path"


def _frozen() -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True,
                         text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        if line.startswith(("#", "-e ")) or "==" not in line:
            continue  # the editable forgekit itself
        name, _, version = line.partition("==")
        found[lock.normalize(name)] = version.strip()
    return found


def test_the_venv_holds_exactly_the_locked_versions():
    locked, frozen = lock.installable(LOCK), _frozen()
    frozen.pop("forgekit", None)
    missing = {n: v for n, v in locked.items() if frozen.get(n) != v}
    extra = {n: v for n, v in frozen.items() if n not in locked}
    assert not missing and not extra, (
        f"venv differs from requirements.lock (run `make`; `rm -rf .venv` forces a clean one): "
        f"not as locked {missing}, not in the lock {extra}")


@pytest.mark.slow
def test_make_lock_is_idempotent(tmp_path):
    """Resolving the unchanged pyproject.toml again (PyPI, uv's cache) rewrites the same lock."""
    if shutil.which(lock.uv()) is None:
        pytest.fail("uv is not installed in this venv: run `make`")
    again = tmp_path / lock.LOCK_NAME
    shutil.copy(LOCK, again)  # uv keeps the versions of the lock it is told to rewrite
    lock.compile_lock(again, ROOT)
    assert again.read_text() == LOCK.read_text(), "`make lock` changed the lock without a pin change"


def test_binder_installs_the_lock_and_the_package():
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    assert lock.parse(ROOT / "binder" / "requirements.txt") == lock.parse(LOCK)
    assert "pip install --no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()


def test_a_lock_not_written_by_make_lock_is_refused_with_the_expected_format(tmp_path):
    bad = tmp_path / "requirements.lock"
    bad.write_text("numpy>=2\n")
    with pytest.raises(ValueError, match=r"requirements.lock:1: expected 'name==version"):
        lock.parse(bad)
    marker = tmp_path / "marker.lock"
    marker.write_text("appnope==1.0.0 ; sys_platform == 'darwin' \\\n    --hash=sha256:" + "a" * 64
                      + "\n")
    [entry] = lock.parse(marker)
    assert (entry.name, entry.version, entry.marker) == ("appnope", "1.0.0",
                                                         "sys_platform == 'darwin'")
    assert entry.applies({"sys_platform": "darwin"}) is True
    assert entry.applies({"sys_platform": "linux"}) is False


def test_the_course_versions_the_lessons_name_are_the_locked_ones():
    """Claims call a verdict 'drift' against forgekit.package_versions.COURSE_VERSIONS: they must be the
    versions the lock (and so CI, which measured the prose) installs."""
    from forgekit.package_versions import COURSE_VERSIONS

    for name, version in COURSE_VERSIONS.items():
        assert lock.locked_version(name) == version, name
