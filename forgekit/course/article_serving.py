"""Article rows about serving, other languages, Keras versions and project paths (lessons
05-09, 11). Each row is a ``measure_*`` / ``judge_*`` pair; see
:mod:`forgekit.course.article_rows`."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgekit.course.article_files import probe_kinds
from forgekit.quiet import quiet_absl

if TYPE_CHECKING:
    from forgekit.course.article import Judgement, Numbers
    from forgekit.course.article_workbench import Workbench

# SavedModel loads from other languages ---------------------------------------------------

def measure_cross_language(run_c: Callable[..., Any], lab: Workbench) -> Numbers:
    from forgekit import crosslang

    export, x, folder = lab.export(), lab.inputs(), lab.folder("crosslang")
    sig = crosslang.signature_tensors(export)
    python = crosslang.signature_call(export, x)

    def gap(run: Any) -> float:  # the loader's answers against Python's, by output
        if not run.ok:
            return float("inf")
        return max(float(abs(run.outputs[name] - python[sig.key_of(name)]).max())
                   for name in sig.output_names)

    c_build = crosslang.build("c")
    c_run = run_c(c_build, export, x, check=False, workdir=folder)
    on_h5 = run_c(c_build, probe_kinds(lab)["h5_model"].path, x, input_name=sig.input_name,
                  output_names=sig.output_names, check=False, workdir=folder)
    numbers = {"c_exit_code": c_run.returncode, "c_max_abs_diff": gap(c_run),
               "c_seconds": round(c_run.seconds, 2), "c_exit_code_on_h5": on_h5.returncode,
               "java": "not installed"}
    if crosslang.find_toolchain().java_ok:  # the article's own example is a Java service
        java_run = crosslang.run_java(crosslang.build("java"), export, x, check=False,
                                      workdir=folder)
        numbers.update(java="run", java_exit_code=java_run.returncode,
                       java_max_abs_diff=gap(java_run), java_seconds=round(java_run.seconds, 2))
    return numbers


def judge_cross_language(n: Numbers) -> Judgement:
    checks = {"a C program loads the SavedModel and answers like Python":
              n["c_exit_code"] == 0 and n["c_max_abs_diff"] <= 1e-5}
    langs = "C and Java" if n["java"] == "run" else "C (no JDK here for Java)"
    reason = (f"{langs} loaded the SavedModel; max |Δ| against Python "
              f"{max(n['c_max_abs_diff'], n.get('java_max_abs_diff', 0.0)):.2g}\n"
              f"the C loader (TensorFlow C API) exits {n['c_exit_code']}, max |Δ| "
              f"{n['c_max_abs_diff']:.2g} against Python, in {n['c_seconds']} s")
    if n["java"] == "run":
        checks["a Java program loads the SavedModel and answers like Python"] = (
            n["java_exit_code"] == 0 and n["java_max_abs_diff"] <= 1e-5)
        reason += (f"; the Java loader (JNI) exits {n['java_exit_code']}, max |Δ| "
                   f"{n['java_max_abs_diff']:.2g}, in {n['java_seconds']} s")
    else:
        reason += "; Java not checked (no JDK here)"
    return checks, reason + f"; fed the .h5, the C loader exits {n['c_exit_code_on_h5']}"


# flat paths and the checks that catch them -----------------------------------------------

# Who answered: the verdict is about TF Serving's rules, measured on forgekit's emulation of them.
SERVER_NOTE = ("forgekit's InProcessServer (TF Serving's version-folder rules; "
               "tensorflow_model_server not used)")


@contextlib.contextmanager
def _flat_deploy(server_cls: Callable[..., Any], lab: Workbench, name: str) -> Iterator[dict[str, Any]]:
    """A row's own deployment under ``name``: v1 published and served, then the retrained model
    saved as a flat .h5 beside it. The server stops when the row ends; no other row reads this
    base path, so what one row publishes cannot change another's measurement."""
    from forgekit.serving import deploy

    poll = lab.settings.poll_seconds
    base = lab.folder(name) / "forecast"
    current, retrained = lab.served_models()
    v1 = deploy.publish(current, base, model_name="forecast")
    server = server_cls(base, "forecast", file_system_poll_wait_seconds=poll)
    server.start()
    try:
        client = server.client()
        client.wait_until_available("forecast", version=1, timeout=30)
        with quiet_absl():  # Keras's "HDF5 is legacy" warning: the row is about that very file
            retrained.save(base / "model.h5")  # the flat save
        time.sleep(3 * poll)  # three scans of the base path
        yield {"base": base, "v1": v1, "client": client}
    finally:
        server.stop()


def measure_flat_path(server_cls: Callable[..., Any], lab: Workbench) -> Numbers:
    import numpy as np

    from forgekit.measure.compare import fixed_inputs

    current, retrained = lab.served_models()
    x = fixed_inputs(current)
    with _flat_deploy(server_cls, lab, "serving_flat") as world:
        client = world["client"]
        served = np.asarray(client.predict("forecast", x)["predictions"])
        version = int(client.metadata("forecast")["model_spec"]["version"])
    return {"answering_version": version,
            "max_diff_vs_v1": float(np.max(np.abs(served - current.predict(x, verbose=0)))),
            "max_diff_vs_retrained": float(np.max(np.abs(served - retrained.predict(x, verbose=0)))),
            "poll_seconds": lab.settings.poll_seconds, "server": SERVER_NOTE}


def judge_flat_path(n: Numbers) -> Judgement:
    checks = {"the server still answers as version 1": n["answering_version"] == 1,
              "its answers are v1's, not the retrained model's":
              n["max_diff_vs_v1"] <= 1e-5 < n["max_diff_vs_retrained"]}
    reason = (f"after three scans the server answers as version {n['answering_version']}, "
              f"max |Δ| {n['max_diff_vs_v1']:.2g} from v1 and {n['max_diff_vs_retrained']:.3g} "
              "from the retrained model\n"
              f"after three scans ({n['poll_seconds']} s each) version "
              f"{n['answering_version']} answers; max |Δ| {n['max_diff_vs_v1']:.2g} from v1, "
              f"{n['max_diff_vs_retrained']:.3g} from the retrained model saved as model.h5, on "
              "the audit's fixed inputs "
              f"(server: {n['server']})")
    return checks, reason


def measure_checks_catch(verify: Callable[..., Any], lab: Workbench) -> Numbers:
    from forgekit.serving import InProcessServer, deploy

    poll, retrained = lab.settings.poll_seconds, lab.served_models()[1]
    with _flat_deploy(InProcessServer, lab, "serving_checks") as world:
        client, base = world["client"], world["base"]
        expected = deploy.record_for(retrained, base, 2, model_name="forecast",
                                     canary_path=base.parent / "expected.canary.json")
        flat = verify(client, "forecast", expected, wait=3 * poll)
        v2 = deploy.publish(retrained, base, model_name="forecast")
        fixed = verify(client, "forecast", v2, wait=10 + 3 * poll)
    return {"flat_problems": ", ".join(flat.problems), "flat_answering": flat.answering_version,
            "flat_max_canary_diff": flat.max_canary_diff, "published_version": v2.version,
            "published_ok": fixed.ok, "published_problems": ", ".join(fixed.problems),
            "server": SERVER_NOTE}


# lesson 07's problem names, in words
PROBLEMS = {"version_missing": "the server knows no version 2 (version_missing)",
            "stale_version": "the metadata endpoint names version 1 (stale_version)",
            "canary_mismatch": "the known inputs get other answers (canary_mismatch)",
            "fingerprint_mismatch": "the served model's identity signature reports another "
                                    "model's fingerprint (fingerprint_mismatch)"}


def judge_checks_catch(n: Numbers) -> Judgement:
    problems = set(filter(None, n["flat_problems"].split(", ")))
    checks = {"the metadata check names the stale version": "stale_version" in problems,
              "the known-input check sees other answers": "canary_mismatch" in problems
              and (n["flat_max_canary_diff"] or 0.0) > 1e-5,
              "a correct deployment passes both": n["published_ok"]}
    diff = n["flat_max_canary_diff"]
    gap = "-" if diff is None else format(diff, ".3g")
    reason = (f"the flat deploy fails both: version {n['flat_answering']} answers, not 2; known "
              f"inputs come back {gap} off; published as version {n['published_version']} it "
              f"{'passes' if n['published_ok'] else 'fails'}\n"
              f"Lesson 07's verify_deployment against the flat deploy reports "
              f"{n['flat_problems'] or 'nothing'}: " + "; ".join(
                  PROBLEMS[p] for p in n["flat_problems"].split(", ") if p in PROBLEMS)
              + f". The known-input (canary) answers are {gap} away from the retrained model's "
              "recorded outputs, on the canary's own inputs (the flat-path row's figure is the same "
              "retrained model on the audit's fixed inputs). The new model published as "
              f"version {n['published_version']} "
              f"{'passes' if n['published_ok'] else 'fails: ' + n['published_problems']}"
              f" (server: {n['server']})")
    return checks, reason


# Keras version mismatch ------------------------------------------------------------------

# A load "fails" only when reading the file itself failed: a missing file, a missing module, a
# crashed or hung process, or a NameError from an earlier failed step measure nothing.
NOT_A_LOAD_FAILURE = {"FileNotFoundError", "ModuleNotFoundError", "ImportError", "NameError",
                      "ProcessCrashed", "TimeoutExpired"}


def _load_failed(outcome: Any, what: str) -> bool:
    """True when ``outcome`` (a load) failed deserialising the file; raises when it failed for
    another reason, so the row reports an error rather than a verdict nobody measured."""
    if outcome.ok:
        return False
    if outcome.error_type in NOT_A_LOAD_FAILURE:
        raise RuntimeError(f"{what} did not get to read the file: {outcome.error_type}: "
                           f"{outcome.message}")
    return True


# The plain tf_keras lines the row runs in a fresh process (one process cannot import both
# Keras versions), in the row's folder: Keras 2 writes its files the way Keras 3 writes its own
# (below), then loads each file in LOADS, its own first (the control), printing any error whole.
KERAS2_WRITE = """\
import tf_keras
for loss, names in (("mean_squared_error", ("k2_model.h5", "k2_model.keras")), ("mse", ("k2_mse.h5",))):
    m = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
    m.compile(optimizer="adam", loss=loss)
    for name in names:
        m.save(name)
result = tf_keras.__version__
"""
KERAS2_LOAD = """\
try:
    tf_keras.models.load_model({name!r})
except Exception as error:
    print(f"{{type(error).__name__}}: {{error}}")  # the whole message: a lesson shows it
    raise
"""
KERAS2_LOADS = {"own_h5": "k2_model.h5", "own_keras": "k2_model.keras",
                "keras": "k3_model.keras", "h5": "k3_model.h5"}


def measure_keras_versions(run_fresh_many: Callable[..., Any], lab: Workbench) -> Numbers:
    import keras

    from forgekit.outcome import attempt

    folder = lab.folder("keras_versions")
    # Keras 3 refuses even its own .h5 compiled with loss="mse" (the metric name does not
    # deserialize), so the version test uses a loss both versions name alike; the "mse" files
    # of both versions are the control that shows that failure is not about versions.
    k2_file, k2_keras, k2_mse, k3_mse = (folder / n for n in (
        "k2_model.h5", "k2_model.keras", "k2_mse.h5", "k3_mse.h5"))
    for loss, names in (("mean_squared_error", ("k3_model.keras", "k3_model.h5")),
                        ("mse", ("k3_mse.h5",))):
        own = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        own.compile(optimizer="adam", loss=loss)
        for name in names:
            own.save(folder / name)
    steps = run_fresh_many({"keras 2": {  # one fresh process that imports only Keras 2
        "write": KERAS2_WRITE,
        **{step: KERAS2_LOAD.format(name=name) for step, name in KERAS2_LOADS.items()},
    }}, workers=1, cwd=folder)
    if not (steps["write"].ok and k2_file.is_file() and k2_mse.is_file()):
        raise RuntimeError(f"Keras 2 (tf_keras) could not write its files, so nothing was "
                           f"measured: {steps['write'].error_type}: {steps['write'].message}")
    k3 = attempt(keras.models.load_model, k2_file)
    k3_on_mse, k3_on_own = (attempt(keras.models.load_model, f) for f in (k2_mse, k3_mse))
    k3_on_keras = attempt(keras.models.load_model, k2_keras)

    def whole(step: str) -> str:  # the error the step printed, whole ("" when it loaded)
        out = steps[step]
        return "" if out.ok else (out.stdout.strip() or f"{out.error_type}: {out.message}")

    cross = {"keras2_reads_keras3_keras": not _load_failed(steps["keras"], "Keras 2 on the .keras"),
             "keras2_reads_keras3_h5": not _load_failed(steps["h5"], "Keras 2 on the .h5")}
    return {"keras2_version": steps["write"].value, **cross,
            "keras2_reads_own": all(steps.get(s) is not None and steps[s].ok
                                    for s in ("own_h5", "own_keras")),
            "keras2_own_errors": ", ".join(filter(None, (whole(s) for s in ("own_h5", "own_keras")
                                                         if s in steps))),
            "keras3_reads_keras2_h5": not _load_failed(k3, "Keras 3 on the Keras 2 .h5"),
            "keras3_error": k3.error_type or "",
            "keras3_reads_keras2_keras": bool(k3_on_keras.ok),
            "keras3_reads_keras2_mse_h5": bool(k3_on_mse.ok),
            "keras3_reads_own_mse_h5": bool(k3_on_own.ok),
            "mse_errors_identical": (not k3_on_mse.ok and not k3_on_own.ok
                                     and str(k3_on_mse.exception) == str(k3_on_own.exception)),
            "keras2_errors": ", ".join(filter(None, (steps["keras"].error_type,
                                                     steps["h5"].error_type))),
            "keras2_error_keras": whole("keras"), "keras2_error_h5": whole("h5")}


def judge_keras_versions(n: Numbers) -> Judgement:
    # Only loads whose failure can be the version count: the Keras 2 file is compiled with a
    # loss name both versions read, since Keras 3 refuses its own loss="mse" .h5 as well. The
    # control (Keras 2 loads its own .h5 and .keras) is not a check: without it Keras 2's
    # refusals measure nothing, so the row is an error, as a row whose scenario did not happen.
    if not n["keras2_reads_own"]:
        raise RuntimeError(f"the control failed: Keras 2 (tf_keras) could not load its own files "
                           f"({n.get('keras2_own_errors') or 'no error shown'}), so its refusals "
                           "of Keras 3's files measure nothing")
    checks = {"Keras 2 fails on the Keras 3 .keras": not n["keras2_reads_keras3_keras"],
              "Keras 2 fails on the Keras 3 .h5": not n["keras2_reads_keras3_h5"],
              "Keras 3 fails on the Keras 2 .h5": not n["keras3_reads_keras2_h5"]}
    control = ("fails on the Keras 2 and on its own loss='mse' .h5 with the same error, so "
               "that failure is the loss name, not the version"
               if n["mse_errors_identical"] else
               f"reads the Keras 2 loss='mse' .h5: {n['keras3_reads_keras2_mse_h5']}, its own: "
               f"{n['keras3_reads_own_mse_h5']}")
    refuses = not n["keras2_reads_keras3_keras"] and not n["keras2_reads_keras3_h5"]
    k3_reads = [ext for ext, ok in ((".h5", n["keras3_reads_keras2_h5"]),
                                    (".keras", n["keras3_reads_keras2_keras"])) if ok]
    reason = (f"Keras 2 {'refuses both' if refuses else 'reads'} Keras 3 files; Keras 3 "
              f"{'reads the Keras 2 ' + ' and '.join(k3_reads) if k3_reads else 'refuses both Keras 2 files'}\n"
              f"tf_keras {n['keras2_version']} (Keras 2) loads its own .h5 and .keras (the "
              f"control); on Keras 3's files it raises {n['keras2_errors'] or 'nothing'}; Keras 3 "
              f"on the Keras 2 .h5: {n['keras3_error'] or 'reads it'}, on the Keras 2 .keras: "
              f"{'reads it' if n['keras3_reads_keras2_keras'] else 'fails'}; Keras 3 {control}")
    return checks, reason


def _yes(flag: Any) -> str:
    return "yes" if flag else "no"


# absolute paths --------------------------------------------------------------------------

def measure_absolute_paths(project_path: Callable[..., Any], lab: Workbench) -> Numbers:
    import keras
    import numpy as np

    from forgekit.outcome import attempt

    root, x = lab.folder("paths"), lab.inputs()
    original, other = lab.model(), lab.build()  # the copy gets its own model (untrained)

    def project(folder: Path) -> Path:
        """A project folder holding the original model; the path a script would hard-code."""
        (folder / "models").mkdir(parents=True)
        (folder / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0"\n')
        original.save(folder / "models" / "model.keras")
        return (folder / "models" / "model.keras").resolve()

    def answers_like(path: Any) -> dict[str, float]:
        got = keras.models.load_model(path).predict(x, verbose=0)
        return {name: float(np.max(np.abs(got - m.predict(x, verbose=0))))
                for name, m in (("original", original), ("copy", other))}

    # 1. the project moves: its old folder is gone, so the hard-coded path points at nothing
    baked_moved = project(root / "before_move")
    (root / "before_move").rename(root / "after_move")
    after_move = attempt(keras.models.load_model, baked_moved)
    # 2. the project is copied elsewhere (a new checkout) and the copy gets its own model, while
    # the old folder stays: the copied script's hard-coded path still reads the old model
    project_dir, moved = root / "project", root / "moved"
    baked = project(project_dir)
    shutil.copytree(project_dir, moved)
    other.save(moved / "models" / "model.keras")
    script = moved / "predict.py"
    script.write_text("# a script inside the copied project\n")
    hard = answers_like(baked)
    found = project_path("models", "model.keras", start=script)
    portable = answers_like(found)
    return {"after_move_load_fails": not after_move.ok,
            "after_move_error": "" if after_move.ok else after_move.summary,
            "hard_coded_path_inside_copy": baked.is_relative_to(moved.resolve()),
            "hard_coded_diff_vs_original": hard["original"], "hard_coded_diff_vs_copy": hard["copy"],
            "project_path_inside_copy": Path(found).resolve().is_relative_to(moved.resolve()),
            "project_path_diff_vs_copy": portable["copy"],
            "project_path_diff_vs_original": portable["original"]}


def judge_absolute_paths(n: Numbers) -> Judgement:
    silent = (not n["hard_coded_path_inside_copy"] and n["hard_coded_diff_vs_original"] <= 1e-6
              < n["hard_coded_diff_vs_copy"])
    checks = {"after a move, loading the hard-coded path fails": n["after_move_load_fails"],
              "in a copy (old folder kept), the hard-coded path loads the old project's model":
              silent,
              "a path built from the project root loads the copy's model":
              n["project_path_inside_copy"] and n["project_path_diff_vs_copy"] <= 1e-6
              < n["project_path_diff_vs_original"]}
    moved = (f"after a move the hard-coded path fails ({n['after_move_error']})"
             if n["after_move_load_fails"] else "after a move the hard-coded path still loads")
    copied = (f"in a copy with the old folder kept it raises nothing and answers max |Δ| "
              f"{n['hard_coded_diff_vs_original']:.2g} from the old project's model, "
              f"{n['hard_coded_diff_vs_copy']:.3g} from the copy's")
    reason = ((("after a move the hard-coded path fails; " if n["after_move_load_fails"] else
                "after a move the hard-coded path still loads; ")
               + ("in a copy it loads the old project's model, silently\n" if silent else
                  "in a copy it does not load the old model\n"))
              + f"{moved}; {copied}; project_path(...) answers max |Δ| "
              f"{n['project_path_diff_vs_copy']:.2g} from the copy's")
    return checks, reason
