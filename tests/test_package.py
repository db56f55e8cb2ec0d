"""Package-level promises: a cheap import, a working CLI, a quiet TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import forgekit
from tests.conftest import ROOT


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_import_forgekit_does_not_import_tensorflow():
    probe = _python(
        "import sys, forgekit, forgekit.cli, forgekit.course.runner, forgekit.diagnose.environment\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'tf_keras', 'h5py') if m in sys.modules]\n"
        "print(','.join(heavy))")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "", f"import forgekit imported: {probe.stdout.strip()}"


def test_public_names_resolve_lazily():
    for name in ("quiet_tf", "doctor", "environment_report", "run_notebook", "course_map"):
        assert callable(getattr(forgekit, name))
    assert "doctor" in dir(forgekit)


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
