"""``forgekit doctor PATH`` and ``forgekit.load`` on bad inputs: a documented error, fast, and
nothing on disk changed. Plus the report itself: text, HTML, CLI exit codes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import forgekit
from forgekit.diagnose.doctor import ArtifactDiagnosis
from forgekit.errors import (
    ArtifactNotFoundError,
    CorruptArtifactError,
    ForgekitError,
    UnreadableArtifactError,
    WrongFormatError,
)

HANG_GUARD_S = 20  # a hang (e.g. a blocking read) fails the test instead of stalling CI


@contextlib.contextmanager
def no_hang(seconds: int = HANG_GUARD_S):
    def alarm(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _snapshot(folder):
    out = []
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            out.append((p, st.st_mode, st.st_size, st.st_mtime_ns))
    return sorted(out)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    from forgekit.quiet import quiet_tf

    quiet_tf()
    import keras

    d = tmp_path_factory.mktemp("good")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mean_squared_error")
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), verbose=0)
    model.save(d / "model.keras")
    model.save(d / "model.h5")
    model.export(d / "export", verbose=False)
    return d


def _bad_inputs(good, d):
    """name -> (path, expected error class for doctor and load)."""
    keras_bytes = (good / "model.keras").read_bytes()
    h5_bytes = (good / "model.h5").read_bytes()
    (d / "empty.keras").write_bytes(b"")
    (d / "truncated.keras").write_bytes(keras_bytes[: len(keras_bytes) // 2])
    (d / "truncated.h5").write_bytes(h5_bytes[: len(h5_bytes) // 3])
    (d / "random.keras").write_bytes(np.random.default_rng(0).bytes(4096))
    with zipfile.ZipFile(d / "other_zip.keras", "w") as zf:
        zf.writestr("readme.txt", "not a model")
    shutil.copytree(good / "export", d / "bad_export")
    pb = d / "bad_export" / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:100])
    (d / "empty_dir").mkdir()
    os.symlink(d / "loop_b", d / "loop_a")
    os.symlink(d / "loop_a", d / "loop_b")
    os.symlink(d / "nowhere.keras", d / "dangling.keras")
    os.mkfifo(d / "fifo.keras")  # opening it for reading would block forever
    return {
        "empty file": (d / "empty.keras", CorruptArtifactError),
        "truncated .keras": (d / "truncated.keras", CorruptArtifactError),
        "truncated .h5": (d / "truncated.h5", CorruptArtifactError),
        "random bytes named .keras": (d / "random.keras", CorruptArtifactError),
        "zip that is no model": (d / "other_zip.keras", CorruptArtifactError),
        "truncated saved_model.pb": (d / "bad_export", CorruptArtifactError),
        "empty folder": (d / "empty_dir", CorruptArtifactError),
        "symlink loop": (d / "loop_a", ArtifactNotFoundError),
        "dangling symlink": (d / "dangling.keras", ArtifactNotFoundError),
        "named pipe": (d / "fifo.keras", CorruptArtifactError),
        "missing": (d / "missing.keras", ArtifactNotFoundError),
    }


@pytest.fixture(scope="module")
def bad(good, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    return d, _bad_inputs(good, d)


BAD = ["empty file", "truncated .keras", "truncated .h5", "random bytes named .keras",
       "zip that is no model", "truncated saved_model.pb", "empty folder", "symlink loop",
       "dangling symlink", "named pipe", "missing"]


@pytest.mark.parametrize("name", BAD)
def test_doctor_on_bad_input_reports_and_changes_nothing(bad, name):
    folder, cases = bad
    path, error = cases[name]
    before = _snapshot(folder)
    with no_hang():
        report = forgekit.doctor(path)
    assert _snapshot(folder) == before
    assert isinstance(report, ArtifactDiagnosis) and not report.ok
    if report.error is not None:
        assert isinstance(report.error, error), f"{name}: {report.error!r}"
        text = str(report)
        assert os.fspath(path) in text and "fix" in text and report.error.fix
    else:  # readable, but nothing forgekit knows: kind unknown and a problem said so
        assert report.kind == "unknown" and report.problems


@pytest.mark.parametrize("name", BAD)
def test_load_on_bad_input_raises_a_forgekit_error(bad, name):
    folder, cases = bad
    path, error = cases[name]
    before = _snapshot(folder)
    with no_hang(), pytest.raises(ForgekitError) as info:
        forgekit.load(path)
    assert _snapshot(folder) == before
    assert isinstance(info.value, error), f"{name}: {info.value!r}"
    message = str(info.value)
    assert "\n" not in message and os.fspath(path) in message and "Fix:" in message


def test_misnamed_file_is_diagnosed_and_loaded_by_content(good, tmp_path):
    misnamed = tmp_path / "model.keras"
    shutil.copy(good / "model.h5", misnamed)  # HDF5 content, .keras name
    before = _snapshot(tmp_path)
    report = forgekit.doctor(misnamed)
    assert report.kind == "h5_model" and not report.ok
    assert "h5_model" in report.info.mismatch and "forgekit.load(" in report.fix
    model = forgekit.load(misnamed)  # read through a correctly named link, file untouched
    assert model.count_params() == 8
    assert _snapshot(tmp_path) == before
    with pytest.raises(WrongFormatError):
        forgekit.load(misnamed, expect="keras")


def test_unreadable_file_under_doctor_and_load(good):
    """A file this user may not read: root ignores permission bits, so the check runs in a
    forked child that drops to the ``nobody`` user; the OS, not a mock, refuses the read."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="forgekit-perm-")
    try:
        os.chmod(folder, 0o755)
        target = os.path.join(folder, "model.keras")
        shutil.copy(good / "model.keras", target)
        os.chmod(target, 0o000)
        before = _snapshot(folder)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: report "<doctor error class>,<load error class>"
            signal.alarm(HANG_GUARD_S)  # a forked child that hangs dies instead (default action)
            answer = b"?"
            try:
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                report = forgekit.doctor(target)
                try:
                    forgekit.load(target)
                    loaded = "loaded"
                except ForgekitError as exc:
                    loaded = type(exc).__name__
                answer = f"{type(report.error).__name__},{loaded},{report.ok}".encode()
            except BaseException as exc:
                answer = f"crash:{type(exc).__name__}".encode()
            os.write(write_end, answer)
            os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        answer = os.read(read_end, 1000).decode()
        os.close(read_end)
        expected = UnreadableArtifactError.__name__
        assert answer == f"{expected},{expected},False"
        assert _snapshot(folder) == before
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_report_has_every_section_as_text_and_html(good):
    report = forgekit.doctor(good / "model.keras")
    assert report.ok, str(report)
    labels = [label for label, _ in report.rows()]
    for label in ("path", "kind", "layout", "keras versions", "optimizer state",
                  "loaders that work", "load it with", "verdict"):
        assert label in labels
    assert "config.json" in dict(report.rows())["layout"]
    assert set(report.works_with) == {"load_model", "load_weights"}
    html = report._repr_html_()
    assert html.startswith("<table>") and "<code>keras.models.load_model(" in html
    export = forgekit.doctor(good / "export")
    assert "serving_default" in dict(export.rows())["signatures"]
    assert export.fix.startswith("tf.saved_model.load(")


def test_doctor_without_path_is_the_environment_report():
    from forgekit.diagnose.environment import EnvironmentReport

    assert isinstance(forgekit.doctor(check_devices=False), EnvironmentReport)


def test_cli_exit_code_says_whether_the_path_loads_as_given(good, tmp_path):
    def cli(path):
        return subprocess.run([sys.executable, "-m", "forgekit.cli", "doctor", str(path)],
                              capture_output=True, text=True, timeout=120)

    ok = cli(good / "model.keras")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "load it with" in ok.stdout and "keras.models.load_model(" in ok.stdout
    trap = cli(str(good / "model.keras") + "/")
    assert trap.returncode == 1 and "ends with a slash" in trap.stdout
    missing = cli(tmp_path / "nothing.keras")
    assert missing.returncode == 1 and "nothing exists" in missing.stdout
    assert "Traceback" not in ok.stderr + trap.stderr + missing.stderr
