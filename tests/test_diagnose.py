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
from forgekit.diagnose.diagnosis import ArtifactDiagnosis
from forgekit.errors import (
    ArtifactNotFoundError,
    CorruptArtifactError,
    ForgekitError,
    UnreadableArtifactError,
    WrongFormatError,
)
from tests.conftest import HANG_GUARD_S, as_nobody, locked_copy


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
    """A file this user may not read: doctor and load both say so (the OS refuses the read)."""

    def both(target: str) -> str:  # "<doctor error class>,<load error class>,<ok>"
        report = forgekit.doctor(target)
        try:
            forgekit.load(target)
            loaded = "loaded"
        except ForgekitError as exc:
            loaded = type(exc).__name__
        return f"{type(report.error).__name__},{loaded},{report.ok}"

    with locked_copy(good / "model.keras") as target:
        before = _snapshot(os.path.dirname(target))
        expected = UnreadableArtifactError.__name__
        assert as_nobody(lambda: both(target)) == f"{expected},{expected},False"
        assert _snapshot(os.path.dirname(target)) == before


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


# --------------------------------------------------------------------------------------------
# doctor never prints a traceback; what it cannot check, it says


def _cli_doctor(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "forgekit.cli", "doctor", os.fspath(path)],
                          capture_output=True, text=True, timeout=120)


def test_a_version_folder_named_superscript_two_is_not_a_version(good, tmp_path):
    """"²".isdigit() is True but int("²") raises: TF Serving reads ASCII digits only."""
    base = tmp_path / "base"
    shutil.copytree(good / "export", base / "1")
    (base / "²").mkdir()
    info = forgekit.detect_format(base)
    assert info.kind == "serving_base" and info.details["versions"] == [1]
    assert any("²" in w for w in info.warnings)  # named as ignored, like any other entry
    done = _cli_doctor(base)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert "serving_base" in done.stdout
    (base / "1").rename(base / "³")
    assert forgekit.detect_format(base).kind == "unknown"


def test_deeply_nested_json_is_diagnosed_not_a_traceback(tmp_path):
    deep = tmp_path / "deep.json"  # json.loads raises RecursionError on this
    deep.write_text('{"class_name": "Sequential", "config": ' + "[" * 100_000 + "]" * 100_000
                    + "}")
    with pytest.raises(CorruptArtifactError, match="does not parse"):
        forgekit.detect_format(deep)
    report = forgekit.doctor(deep)
    assert not report.ok and isinstance(report.error, CorruptArtifactError)
    done = _cli_doctor(deep)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert "does not parse" in done.stdout


@pytest.mark.parametrize("failure", [OSError(5, "Input/output error"),
                                     RecursionError("maximum recursion depth exceeded")])
def test_a_config_scan_that_fails_says_could_not_check(good, monkeypatch, failure):
    """The custom-object scan failing used to leave no trace: a silent ✓."""
    from forgekit.formats import configs
    from forgekit.keras_io import custom_objects

    def failing(path):
        raise failure

    monkeypatch.setattr(configs, "scan_file", failing)
    monkeypatch.setattr(custom_objects, "scan_file", failing)
    info = forgekit.detect_format(good / "model.h5")
    assert any("could not check" in w and type(failure).__name__ in w for w in info.warnings)
    report = forgekit.doctor(good / "model.h5")
    assert any("could not check" in n and type(failure).__name__ in n for n in report.notes)


def test_a_missing_private_keras_helper_is_reported_not_skipped(good, monkeypatch):
    """The legacy-H5 compile dry run imports a private keras.src helper; when this Keras has
    none, doctor says it could not check instead of a silent ✓."""
    forgekit.doctor(good / "model.h5")  # the helper imported for real once
    monkeypatch.setitem(sys.modules, "keras.src.legacy.saving.saving_utils", None)
    report = forgekit.doctor(good / "model.h5")
    assert any("could not check" in n and "keras.src" in n for n in report.notes), report.notes
