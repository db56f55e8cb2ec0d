"""Hostile inputs to the loaders, doctor, verify's files and the folders forgekit deletes.

Each case is a reproduction that once ran a file's code, killed the process, hung it, read
gigabytes, or deleted a user's files. Cases that could hang or crash run in a fresh process with
a timeout, grouped (one process without TensorFlow, one with it) to keep the suite fast; the
child reports one JSON line per case as it goes, so a hang or a crash fails that case by name
instead of the run. The deletion cases cannot hang and run in-process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import forgekit
from forgekit.paths import MARKER, output_dir
from forgekit.widgets.base import WidgetError

ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 240  # a wide margin: the TF group takes ~30 s on 2 busy cores

# Shared by both children: run a case, print what happened as one JSON line.
PRELUDE = r'''
import json, os, sys, traceback
from pathlib import Path
W = Path(sys.argv[1])

def case(name, fn):
    out = {"case": name}
    try:
        value = fn()
        out.update(outcome="returned", value=value if isinstance(value, (str, int, float, bool,
                   list, dict, type(None))) else type(value).__name__)
    except Exception as exc:
        import forgekit.errors
        out.update(outcome=type(exc).__name__, forgekit=isinstance(exc, forgekit.errors.ForgekitError),
                   message=str(exc), first_line="\n" not in str(exc))
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child of a pytest worker that holds
    # TensorFlow would start at the worker's ~900 MiB; VmHWM is this program's own peak.
    with open("/proc/self/status") as status:
        hwm = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
    out["maxrss_mb"] = hwm / 1024
    print(json.dumps(out), flush=True)
'''

NO_TF = PRELUDE + r'''
import zipfile, zlib
import h5py, numpy as np
import forgekit
from forgekit.serving import deploy
from forgekit.serving.record import load_record

fifo = W / "fifo"
os.mkfifo(fifo)
with h5py.File(W / "ext_link.h5", "w") as f:  # an external link to a FIFO, where Keras looks
    f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": []}})
    f["model_weights"] = h5py.ExternalLink(str(fifo), "/x")
with h5py.File(W / "ext_data.h5", "w") as f:  # a dataset whose bytes live in the FIFO
    f.attrs["layer_names"] = [b"dense"]
    f.create_dataset("dense", (10,), dtype="f4", external=[(str(fifo), 0, 40)])
# a zip bomb: a 1 MB .keras whose config.json inflates to 1 GiB
with zipfile.ZipFile(W / "bomb.keras", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
    zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    with zf.open("config.json", "w", force_zip64=True) as member:
        member.write(b'{"class_name": "Sequential", "config": {"name": "')
        chunk = b"a" * (1 << 20)
        for _ in range(1024):
            member.write(chunk)
        member.write(b'"}}')
    zf.writestr("model.weights.h5", b"")
sizes = {"bomb_bytes": (W / "bomb.keras").stat().st_size}
print(json.dumps({"case": "setup", **sizes}), flush=True)

for label, path in [("fifo", fifo), ("dev_zero", "/dev/zero"), ("ext_link", W / "ext_link.h5"),
                    ("ext_data", W / "ext_data.h5"), ("bomb", W / "bomb.keras")]:
    case(f"detect {label}", lambda: forgekit.detect_format(path))
    case(f"load {label}", lambda: forgekit.load(path))
    case(f"doctor {label}", lambda: forgekit.doctor(path).ok)
case("tensorflow imported", lambda: "tensorflow" in sys.modules)
case("record fifo", lambda: load_record(fifo))
case("record dev_zero", lambda: load_record("/dev/zero"))
record = deploy.PublishRecord("m", str(W), 1, str(W / "1"), "x", str(fifo), "now")
case("canary fifo", lambda: record.canary())
'''

WITH_TF = PRELUDE + r'''
import random, shutil
os.environ.pop("TF_USE_LEGACY_KERAS", None)
import numpy as np
import keras, tf_keras
import forgekit, forgekit.errors

ran = W / "lambda_ran"  # the Lambda's code writes here when it runs
body = f"lambda t: t * 2.0 + float(open({str(ran)!r}, 'a').write('x')) * 0.0"
k2 = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Lambda(eval(body), name="sneaky"),
                          tf_keras.layers.Dense(2)])
k2.save(str(W / "k2.h5"))
k2.save(str(W / "k2_savedmodel"))
(W / "k2.json").write_text(k2.to_json())
k3 = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(eval(body), name="sneaky"),
                       keras.layers.Dense(2)])
k3.save(W / "k3.keras")
ran.unlink(missing_ok=True)  # saving traced the lambda; from here on it must not run

def refused(path, **kw):
    def attempt():
        try:
            forgekit.load(path, **kw)
        finally:
            if ran.exists():
                raise SystemExit(f"the Lambda ran while loading {path} with {kw}")
    return attempt

for label, kw in [("h5 tf_keras", {"loader": "tf_keras"}), ("h5", {})]:
    case(f"load k2 {label}", refused(W / "k2.h5", **kw))
case("load k2 savedmodel tf_keras", refused(W / "k2_savedmodel", loader="tf_keras"))
case("load k2 json tf_keras", refused(W / "k2.json", loader="tf_keras"))
case("load k3 keras", refused(W / "k3.keras"))
case("load k2 json keras3", refused(W / "k2.json"))
d = forgekit.doctor(W / "k2_savedmodel")
case("doctor k2 savedmodel", lambda: {"ok": d.ok, "lambdas": [x.name for x in d.lambda_layers],
                                      "text": str(d)})
case("savedmodel graph load runs no lambda", lambda: (forgekit.load(W / "k2_savedmodel") and 0)
     or ran.exists())
def trusted():
    forgekit.load(W / "k2.h5", loader="tf_keras", safe_mode=False)
    return ran.exists()
case("load k2 h5 tf_keras safe_mode=False", trusted)

# a SavedModel whose variables.data-* is a FIFO
small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
small.export(W / "export", verbose=False)
for shard in (W / "export" / "variables").glob("variables.data-*"):
    shard.unlink()
    os.mkfifo(shard)
case("load savedmodel fifo shard", lambda: forgekit.load(W / "export"))
case("doctor savedmodel fifo shard", lambda: forgekit.doctor(W / "export").ok)

# TFLite: random bytes behind the identifier, and a real file with bytes flipped
(W / "random.tflite").write_bytes(b"\x1c\0\0\0TFL3" + random.Random(0).randbytes(4000))
case("load tflite random", lambda: forgekit.load(W / "random.tflite"))
case("doctor tflite random", lambda: forgekit.doctor(W / "random.tflite").ok)
def lab():
    from forgekit.diagnose.failures import run_matrix
    matrix = run_matrix({"bad": str(W / "random.tflite")}, build=lambda: small)
    cells = {cell.loader.key: cell.outcome.error_type for cell in matrix.row("bad").cells}
    return {"surprises": matrix.surprises, "tflite": cells["tflite"]}
case("failure lab on random tflite", lab)
forgekit.save(small, W / "good.tflite")
good = (W / "good.tflite").read_bytes()
for seed in range(8):
    r, b = random.Random(seed), bytearray(good)
    for _ in range(r.choice([1, 4, 16])):
        b[r.randrange(len(b))] = r.randrange(256)
    p = W / f"flipped{seed}.tflite"
    p.write_bytes(bytes(b))
    def both(p=p):
        ok = forgekit.doctor(p).ok
        try:
            forgekit.load(p)
            return {"doctor_ok": ok, "loaded": True}
        except forgekit.errors.ForgekitError as exc:
            return {"doctor_ok": ok, "loaded": False, "error": type(exc).__name__}
    case(f"tflite flipped {seed}", both)
shutil.copy(W / "good.tflite", W / "copy.tflite")  # not this process's conversion: checked
case("load tflite good", lambda: forgekit.load(W / "copy.tflite"))
case("doctor tflite good", lambda: forgekit.doctor(W / "copy.tflite").ok)
'''


def _run(script: str, folder: Path) -> tuple[dict[str, dict], str]:
    """Run ``script`` in a fresh process; its cases by name, and why it stopped early if so."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "cases.jsonl"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1",
           "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONPATH": str(ROOT)}
    with open(out, "w") as stdout:
        proc = subprocess.Popen([sys.executable, "-c", script, str(folder)], stdout=stdout,
                                stderr=subprocess.PIPE, text=True, cwd=folder, env=env)
        try:
            _, stderr = proc.communicate(timeout=CHILD_TIMEOUT_S)
            stopped = "" if proc.returncode == 0 else (
                f"the child exited with {proc.returncode}: {stderr.strip()[-800:]}")
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
            stopped = f"the child hung (killed after {CHILD_TIMEOUT_S} s): {stderr[-400:]}"
    cases = {}
    for line in out.read_text().splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            cases[doc["case"]] = doc
    return cases, stopped


@pytest.fixture(scope="module")
def no_tf(tmp_path_factory):
    return _run(NO_TF, tmp_path_factory.mktemp("hostile_no_tf"))


@pytest.fixture(scope="module")
def with_tf(tmp_path_factory):
    return _run(WITH_TF, tmp_path_factory.mktemp("hostile_tf"))


def _case(group, name):
    cases, stopped = group
    assert name in cases, f"{name!r} never reported: {stopped or 'the child skipped it'}"
    return cases[name]


def _refused(group, name, error):
    got = _case(group, name)
    assert got["outcome"] == error, got
    assert got["forgekit"] and got["first_line"], got  # one line, path, found, expected, fix
    assert "Fix:" in got["message"], got
    return got


# ------------------------------------------------------------------ no hang, no unbounded read


@pytest.mark.parametrize("label", ["fifo", "dev_zero"])
@pytest.mark.parametrize("call", ["detect", "load"])
def test_a_fifo_or_a_device_is_refused_unopened(no_tf, call, label):
    got = _refused(no_tf, f"{call} {label}", "NotRegularFileError")
    assert "not a regular file" in got["message"]


@pytest.mark.parametrize("label", ["ext_link", "ext_data"])
@pytest.mark.parametrize("call", ["detect", "load"])
def test_an_hdf5_pointing_outside_itself_is_refused_without_following(no_tf, call, label):
    got = _refused(no_tf, f"{call} {label}", "CorruptArtifactError")
    assert "points outside itself" in got["message"]


@pytest.mark.parametrize("call", ["detect", "load"])
def test_a_zip_bomb_is_refused_before_it_inflates(no_tf, call):
    setup = _case(no_tf, "setup")
    assert setup["bomb_bytes"] < 16 * 1024 * 1024  # small on disk, 1 GiB inflated
    got = _refused(no_tf, f"{call} bomb", "OversizeError")
    assert "config.json" in got["message"]
    # 2 GiB before (the member read whole, then parsed): now nothing near its 1 GiB
    assert got["maxrss_mb"] < 512, got


@pytest.mark.parametrize("label", ["fifo", "dev_zero", "ext_link", "ext_data", "bomb"])
def test_doctor_never_says_ok_for_what_load_refuses(no_tf, label):
    got = _case(no_tf, f"doctor {label}")
    assert got["outcome"] == "returned" and got["value"] is False, got
    assert got["maxrss_mb"] < 512, got


def test_refusing_at_detection_needs_no_tensorflow(no_tf):
    assert _case(no_tf, "tensorflow imported")["value"] is False


@pytest.mark.parametrize("name", ["record fifo", "record dev_zero", "canary fifo"])
def test_verify_files_are_read_bounded(no_tf, name):
    got = _case(no_tf, name)
    assert got["outcome"] == "DeployError" and "not a regular file" in got["message"], got


def test_verify_cli_on_a_fifo_exits_2_at_once(tmp_path):
    fifo = tmp_path / "record.json"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "forgekit.cli", "verify", "--expect", str(fifo),
                           "--url", "http://127.0.0.1:9"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and "not a regular file" in proc.stderr, proc.stderr


# ------------------------------------------------------------------ no code run, no crash


@pytest.mark.parametrize("name", ["load k2 h5 tf_keras", "load k2 h5", "load k2 savedmodel tf_keras",
                                  "load k2 json tf_keras", "load k3 keras", "load k2 json keras3"])
def test_no_loader_runs_lambda_bytecode_unless_asked(with_tf, name):
    got = _refused(with_tf, name, "UnsafeLambdaError")
    assert "'sneaky'" in got["message"] and "safe_mode=False" in got["message"]


def test_safe_mode_false_is_what_lets_the_lambda_run(with_tf):
    # the same call the guard refuses really runs the file's code when asked: the refusal above
    # is forgekit's, not a file that could not have run anyway
    assert _case(with_tf, "load k2 h5 tf_keras safe_mode=False")["value"] is True


def test_doctor_sees_the_lambda_of_a_keras2_savedmodel(with_tf):
    got = _case(with_tf, "doctor k2 savedmodel")["value"]
    assert got["lambdas"] == ["sneaky"], got
    assert "tf_keras.models.load_model would run" in got["text"]
    # its usual loader, tf.saved_model.load, runs the traced graph, not the Lambda's Python
    assert got["ok"] is True
    assert _case(with_tf, "savedmodel graph load runs no lambda")["value"] is False


def test_a_savedmodel_with_a_fifo_shard_is_refused(with_tf):
    _refused(with_tf, "load savedmodel fifo shard", "NotRegularFileError")
    assert _case(with_tf, "doctor savedmodel fifo shard")["value"] is False


def test_a_corrupt_tflite_is_refused_not_a_crash(with_tf):
    got = _refused(with_tf, "load tflite random", "CorruptArtifactError")
    assert "TFLite runtime refused it" in got["message"] or "crashed" in got["message"]
    assert _case(with_tf, "doctor tflite random")["value"] is False
    lab = _case(with_tf, "failure lab on random tflite")["value"]  # its plain calls, guarded
    assert lab == {"surprises": [], "tflite": "CorruptArtifactError"}, lab


def test_flipped_tflite_bytes_never_kill_the_process_and_doctor_agrees_with_load(with_tf):
    results = [_case(with_tf, f"tflite flipped {seed}")["value"] for seed in range(8)]
    assert all(r["loaded"] == r["doctor_ok"] for r in results), results
    assert any(not r["loaded"] for r in results), results  # the damage was real for some
    assert _case(with_tf, "load tflite good")["value"] == "Interpreter"
    assert _case(with_tf, "doctor tflite good")["value"] is True


# ------------------------------------------------------------------ deletes only its own


def test_an_explorer_refuses_a_folder_it_did_not_create(tmp_path):
    from forgekit.widgets import FormatExplorer, LoaderPlayground

    for cls, folder in ((FormatExplorer, "formats"), (LoaderPlayground, "loaders")):
        work = tmp_path / cls.__name__
        (work / folder).mkdir(parents=True)
        (work / folder / "thesis.txt").write_text("months of work")
        kwargs = {"prefetch": False} if cls is LoaderPlayground else {}
        with pytest.raises(WidgetError, match="forgekit did not create"):
            cls(work, **kwargs)
        assert (work / folder / "thesis.txt").read_text() == "months of work"


def test_an_explorer_removes_only_the_folder_it_made(tmp_path):
    from forgekit.widgets import FormatExplorer

    explorer = FormatExplorer(tmp_path)
    assert (explorer.root / MARKER).is_file()
    explorer.close()
    assert not explorer.root.exists()
    (tmp_path / "formats").mkdir()  # an empty folder is adopted, then removed like its own
    FormatExplorer(tmp_path).close()
    assert not (tmp_path / "formats").exists() and tmp_path.exists()


def test_output_dir_clean_false_never_marks_a_user_folder(tmp_path):
    mine = tmp_path / "mine"
    (mine / "repo" / ".git").mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    assert output_dir(mine, clean=False) == mine.resolve()
    assert not (mine / MARKER).exists()
    with pytest.raises(ValueError, match="did not create"):
        output_dir(mine)
    assert (mine / "notes.txt").exists() and (mine / "repo" / ".git").is_dir()


def test_output_dir_refuses_a_folder_holding_a_repository(tmp_path):
    folder = output_dir(tmp_path / "out")
    (folder / "clone" / ".git").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds a repository"):
        output_dir(folder)
    assert (folder / "clone" / ".git").is_dir()


def test_publish_removes_only_its_own_dead_temp_folders(tmp_path):
    from forgekit.paths import claim_dir
    from forgekit.serving import deploy

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    base = tmp_path / "base"
    users = base / f"{deploy.TEMP_PREFIX}{dead}-mine"  # a name, but no marker: a user's
    users.mkdir(parents=True)
    (users / "keep.txt").write_text("x")
    elsewhere = claim_dir(base / f"{deploy.TEMP_PREFIX}{dead}-other")  # a live publisher on
    (elsewhere / MARKER).write_text(json.dumps(  # another host sharing the base path
        {"host": socket.gethostname() + "-other", "pid": int(dead), "started": 1}))
    alive = claim_dir(base / f"{deploy.TEMP_PREFIX}{os.getpid()}-live")  # this process
    killed = claim_dir(base / f"{deploy.TEMP_PREFIX}{dead}-killed")
    (killed / MARKER).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": int(dead), "started": 1}))
    deploy._remove_stale_temps(base)
    assert (users / "keep.txt").exists() and elsewhere.exists() and alive.exists()
    assert not killed.exists()


def test_load_docstring_names_the_safe_rule():
    assert "safe_mode" in forgekit.load.__doc__


# ------------------------------------------------------------------ the bounded reader itself


def test_check_tree_follows_links_once_and_finds_a_fifo_behind_one(tmp_path):
    from forgekit.formats import bounded

    (tmp_path / "sm").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "loop").symlink_to("..")  # a cycle: walked once, not forever
    (tmp_path / "sm" / "variables").symlink_to(tmp_path / "elsewhere")
    bounded.check_tree(tmp_path / "sm")  # only folders and links so far
    os.mkfifo(tmp_path / "elsewhere" / "variables.data-00000-of-00001")
    with pytest.raises(bounded.NotRegularFileError, match="FIFO"):
        bounded.check_tree(tmp_path / "sm")


def test_reads_stop_at_the_cap(tmp_path):
    import zipfile

    from forgekit.formats import bounded

    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    assert len(bounded.read_bytes(big, 2048)) == 2048
    with pytest.raises(bounded.OversizeError, match="2,048 bytes"):
        bounded.read_bytes(big, 1024)
    with zipfile.ZipFile(tmp_path / "z.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", b"{" * 4096)
    with zipfile.ZipFile(tmp_path / "z.zip") as zf, pytest.raises(bounded.OversizeError):
        bounded.zip_member(zf, "config.json", tmp_path / "z.zip", limit=1024)
