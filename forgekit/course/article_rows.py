"""The rows of the article audit: for each claim, how it is measured and how it is judged.

Each row pairs a ``measure`` step, which calls the row's forgekit experiment (the function the
lesson uses for that topic) on the audit's shared artifacts and returns plain numbers, with a
``judge``, which turns the numbers into named checks and a reason. Nothing here decides a
verdict: :func:`forgekit.course.article.verdict_of` does, from the checks, the same way for
every row. :func:`build_rows` is the registry, read as ``forgekit.course.article.ROWS``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import Any

from forgekit.course.article import ArticleClaim, Judgement, Lab, Numbers

PROBE_KINDS = ("keras", "savedmodel", "h5_model", "weights_h5", "tf_checkpoint",
               "json_architecture")


def _probe(experiment: Callable[..., Any], lab: Lab) -> Any:
    """The shared probe of every whole-model and weights format (lessons 01 and 02)."""
    return lab.shared("probe", lambda: experiment(lab.model(), PROBE_KINDS, lab.folder("probe"),
                                                  x=lab.inputs()))


def _probe_kinds(lab: Lab) -> Any:
    from forgekit.measure.probe import matrix

    return _probe(matrix, lab)


def _failed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, str]:
    """(the call raised, the exception type) for a call that is expected to be refused."""
    from forgekit.outcome import attempt

    outcome = attempt(call, *args, **kwargs)
    return (not outcome.ok), (outcome.error_type or "")


def _in(value: float, low: float, high: float) -> bool:
    return low <= value <= high


# model.save() writes a SavedModel --------------------------------------------------------

def _m_save_writes_savedmodel(detect: Callable[..., Any], lab: Lab) -> Numbers:
    model, folder = lab.model(), lab.folder("save_calls")
    refused, error = _failed(model.save, folder / "my_model")
    model.save(folder / "model.keras")
    exported = detect(lab.export()).kind
    return {"save_without_extension_refused": refused, "save_without_extension_error": error,
            "folder_written": (folder / "my_model").exists(),
            "save_keras_kind": detect(folder / "model.keras").kind, "export_kind": exported}


def _j_save_writes_savedmodel(n: Numbers) -> Judgement:
    checks = {"model.save(path) with no extension writes a SavedModel folder":
              not n["save_without_extension_refused"] and n["folder_written"],
              "model.save('name.keras') writes a SavedModel": n["save_keras_kind"] == "savedmodel"}
    reason = (f"model.save without an extension "
              f"{'raises ' + n['save_without_extension_error'] if n['save_without_extension_refused'] else 'works'}"
              f"; with .keras it writes a {n['save_keras_kind']} file; the SavedModel comes from "
              f"model.export() (found: {n['export_kind']})")
    return checks, reason


# SavedModel keeps the optimizer state and the compile settings ---------------------------

def _m_savedmodel_training_state(matrix: Callable[..., Any], lab: Lab) -> Numbers:
    from forgekit.formats.detect import detect_format

    probed = _probe(matrix, lab)
    export, keras_file = probed["savedmodel"], probed["keras"]
    return {"export_optimizer_variables": bool(detect_format(export.path).has_optimizer),
            "export_optimizer_restored": bool(export.optimizer_restored),
            "export_compile_restored": bool(export.compile_restored),
            "export_weights_max_abs_diff": export.weights_max_abs_diff,
            "export_signatures": ", ".join(export.signatures),
            "keras_optimizer_restored": bool(keras_file.optimizer_restored),
            "keras_compile_restored": bool(keras_file.compile_restored)}


def _j_savedmodel_training_state(n: Numbers) -> Judgement:
    checks = {"the export stores optimizer state": n["export_optimizer_variables"]
              and n["export_optimizer_restored"],
              "the export brings back the compile settings": n["export_compile_restored"]}
    reason = (f"model.export() keeps weights (max |Δ| {n['export_weights_max_abs_diff']:.3g}) and "
              f"signatures ({n['export_signatures']}), optimizer variables "
              f"{_yes(n['export_optimizer_variables'])}, compile settings "
              f"{_yes(n['export_compile_restored'])}; the .keras file restores optimizer "
              f"{_yes(n['keras_optimizer_restored'])} and compile "
              f"{_yes(n['keras_compile_restored'])}")
    return checks, reason


def _yes(flag: Any) -> str:
    return "yes" if flag else "no"


# H5 lacks what serving needs -------------------------------------------------------------

def _m_h5_lacks_serving(matrix: Callable[..., Any], lab: Lab) -> Numbers:
    import tensorflow as tf

    probed = _probe(matrix, lab)
    h5 = probed["h5_model"]
    refused, error = _failed(tf.saved_model.load, os.fspath(h5.path))
    return {"h5_signatures": len(h5.signatures), "export_signatures": len(probed["savedmodel"].signatures),
            "saved_model_load_refuses_h5": refused, "saved_model_load_error": error}


def _j_h5_lacks_serving(n: Numbers) -> Judgement:
    checks = {"the .h5 has no serving signature": n["h5_signatures"] == 0,
              "tf.saved_model.load (the serving loader) refuses it": n["saved_model_load_refuses_h5"]}
    reason = (f".h5: {n['h5_signatures']} serving signatures (the export: "
              f"{n['export_signatures']}); tf.saved_model.load on it: "
              f"{'raises ' + n['saved_model_load_error'] if n['saved_model_load_refuses_h5'] else 'loads'}")
    return checks, reason


# loading H5 through a SavedModel path (and the reverse) ----------------------------------

def _m_h5_savedmodel_mixup(run_matrix: Callable[..., Any], lab: Lab) -> Numbers:
    probed = _probe_kinds(lab)
    found = run_matrix({"legacy .h5": os.fspath(probed["h5_model"].path),
                        "SavedModel": os.fspath(lab.export())}, lab.build)
    works = {(row.label, cell.loader.key): bool(cell.outcome.ok)
             for row in found.rows for cell in row.cells}
    return {"saved_model_load_on_h5": works[("legacy .h5", "saved_model_load")],
            "load_model_on_savedmodel": works[("SavedModel", "load_model")],
            "loaders_reading_h5": sum(v for (a, _), v in works.items() if a == "legacy .h5"),
            "loaders_reading_savedmodel": sum(v for (a, _), v in works.items() if a == "SavedModel"),
            "loaders": len(found.loaders), "forgekit_surprises": len(found.surprises)}


def _j_h5_savedmodel_mixup(n: Numbers) -> Judgement:
    checks = {"the SavedModel loader fails on the .h5": not n["saved_model_load_on_h5"],
              "the Keras file loader fails on the SavedModel folder":
              not n["load_model_on_savedmodel"]}
    reason = (f"of {n['loaders']} loaders, {n['loaders_reading_h5']} read the .h5 and "
              f"{n['loaders_reading_savedmodel']} the SavedModel; tf.saved_model.load on the .h5 "
              f"{'works' if n['saved_model_load_on_h5'] else 'fails'}, load_model on the folder "
              f"{'works' if n['load_model_on_savedmodel'] else 'fails'}")
    return checks, reason


# weights-only is 5-10x smaller -----------------------------------------------------------

def _m_weights_smaller(breakdown: Callable[..., Any], lab: Lab) -> Numbers:
    import keras

    model, folder = lab.model(), lab.folder("sizes")
    model.save(folder / "model.keras")
    model.save_weights(folder / "model.weights.h5")
    inference = keras.Sequential.from_config(model.get_config())  # never compiled: no optimizer
    inference.set_weights(model.get_weights())
    inference.save_weights(folder / "inference.weights.h5")
    whole, weights, bare = (breakdown(folder / name) for name in
                            ("model.keras", "model.weights.h5", "inference.weights.h5"))
    return {"keras_bytes": whole.total, "weights_h5_bytes": weights.total,
            "weights_h5_without_optimizer_bytes": bare.total,
            "ratio": whole.total / weights.total,
            "ratio_without_optimizer": whole.total / bare.total,
            "optimizer_over_weights": weights.optimizer / weights.weights}


def _j_weights_smaller(n: Numbers) -> Judgement:
    checks = {".keras / .weights.h5 is 5-10x": _in(n["ratio"], 5, 10),
              ".keras / a weights file without optimizer is 5-10x":
              _in(n["ratio_without_optimizer"], 5, 10)}
    slots = n["optimizer_over_weights"]
    reason = (f"ratio {n['ratio']:.2f}x, {'' if checks['.keras / .weights.h5 is 5-10x'] else 'not '}"
              "within 5-10x: " + (f"Keras 3's .weights.h5 holds the optimizer's slots too "
                                  f"({slots:.1f}x the weights)" if slots else
                                  "the .weights.h5 holds no optimizer slots")
              + f"; a weights file without them gives {n['ratio_without_optimizer']:.2f}x")
    return checks, reason


# save_weights() writes a TensorFlow checkpoint -------------------------------------------

def _m_save_weights_format(detect: Callable[..., Any], lab: Lab) -> Numbers:
    model, folder = lab.model(), lab.folder("save_weights")
    refused, error = _failed(model.save_weights, os.fspath(folder / "ckpt"))
    model.save_weights(folder / "model.weights.h5")
    return {"checkpoint_prefix_refused": refused, "checkpoint_prefix_error": error,
            "weights_kind": detect(folder / "model.weights.h5").kind}


def _j_save_weights_format(n: Numbers) -> Judgement:
    checks = {"save_weights writes a TF checkpoint": n["weights_kind"] == "tf_checkpoint",
              "save_weights accepts a checkpoint prefix": not n["checkpoint_prefix_refused"]}
    reason = (f"save_weights('model.weights.h5') writes {n['weights_kind']}; a checkpoint-style "
              f"prefix {'raises ' + n['checkpoint_prefix_error'] if n['checkpoint_prefix_refused'] else 'works'}")
    return checks, reason


# checkpoints hold weights only -----------------------------------------------------------

def _m_checkpoints_weights_only(matrix: Callable[..., Any], lab: Lab) -> Numbers:
    probed = _probe(matrix, lab)
    return {f"{kind}_optimizer_restored": bool(probed[kind].optimizer_restored)
            for kind in ("weights_h5", "tf_checkpoint")} | {
            f"{kind}_weights_max_abs_diff": probed[kind].weights_max_abs_diff
            for kind in ("weights_h5", "tf_checkpoint")}


def _j_checkpoints_weights_only(n: Numbers) -> Judgement:
    checks = {".weights.h5 holds no optimizer state": not n["weights_h5_optimizer_restored"],
              "tf.train.Checkpoint holds no optimizer state":
              not n["tf_checkpoint_optimizer_restored"]}
    reason = (f"optimizer state restored exactly from .weights.h5: "
              f"{_yes(n['weights_h5_optimizer_restored'])}, from tf.train.Checkpoint: "
              f"{_yes(n['tf_checkpoint_optimizer_restored'])} (the optimizer built first)")
    return checks, reason


# JSON / YAML store the architecture ------------------------------------------------------

def _m_json_yaml(matrix: Callable[..., Any], lab: Lab) -> Numbers:
    import keras

    json_arch = _probe(matrix, lab)["json_architecture"]
    model = lab.model()
    yaml_refused, yaml_error = _failed(lambda: model.to_yaml())
    from_yaml_refused, _ = _failed(lambda: keras.models.model_from_yaml("{}"))
    return {"json_architecture_restored": bool(json_arch.architecture_restored),
            "json_weights_max_abs_diff": json_arch.weights_max_abs_diff,
            "json_bytes": json_arch.size_bytes, "to_yaml_refused": yaml_refused,
            "to_yaml_error": yaml_error, "model_from_yaml_refused": from_yaml_refused}


def _j_json_yaml(n: Numbers) -> Judgement:
    checks = {"JSON rebuilds the architecture": n["json_architecture_restored"],
              "JSON holds no weights": n["json_weights_max_abs_diff"] > 0,
              "YAML still works": not n["to_yaml_refused"] and not n["model_from_yaml_refused"]}
    reason = (f"JSON: architecture {_yes(n['json_architecture_restored'])}, fresh weights "
              f"(max |Δ| {n['json_weights_max_abs_diff']:.3g}) in {n['json_bytes']:,} bytes; "
              f"YAML: to_yaml {'raises ' + n['to_yaml_error'] if n['to_yaml_refused'] else 'works'}")
    return checks, reason


# TFLite is converted from a SavedModel ---------------------------------------------------

def _m_tflite(convert: Callable[..., Any], lab: Lab) -> Numbers:
    import numpy as np

    from forgekit import tflite
    from forgekit.formats.detect import detect_format

    folder, model, x = lab.folder("tflite"), lab.model(), lab.inputs()
    path = convert(lab.export(), "float32", folder / "model.tflite")
    diff = float(np.max(np.abs(tflite.predict(tflite.interpreter(path), x)
                               - model.predict(x, verbose=0))))
    refused, error = _failed(model.save, folder / "direct.tflite")
    return {"tflite_kind": detect_format(path).kind, "tflite_bytes": path.stat().st_size,
            "max_abs_diff": diff, "direct_save_refused": refused, "direct_save_error": error}


def _j_tflite(n: Numbers) -> Judgement:
    checks = {"the SavedModel converts to a .tflite that answers the same":
              n["tflite_kind"] == "tflite" and n["max_abs_diff"] <= 1e-5,
              "Keras cannot save .tflite directly": n["direct_save_refused"]}
    reason = (f"from_saved_model wrote {n['tflite_bytes']:,} bytes of {n['tflite_kind']}, max |Δ| "
              f"{n['max_abs_diff']:.2g} against Keras; model.save('….tflite') "
              f"{'raises ' + n['direct_save_error'] if n['direct_save_refused'] else 'works'}")
    return checks, reason


# ModelCheckpoint: an interruption costs at most one epoch --------------------------------

def _interrupted(run_training: Callable[..., Any], lab: Lab) -> dict[str, Any]:
    """A real SIGKILL in the middle of the last epoch of an overfitting run that keeps both a
    whole-state backup (BackupAndRestore) and a best-only ModelCheckpoint, then the resume."""
    def run() -> dict[str, Any]:
        s = lab.settings
        folder = lab.folder("interrupted")
        model = {"width": s.checkpoint_units, "learning_rate": 3e-3}  # overfits within epochs
        steps = _checkpoint_task().steps_per_epoch(32)
        kill_at = (s.checkpoint_epochs - 1) * steps + steps // 2  # mid-way through the last
        killed = run_training(folder, s.checkpoint_epochs, task={"n_val": 256}, model=model,
                              backup_dir="backup", checkpoint="best.keras",
                              kill_after_batches=kill_at)
        return {"killed": killed, "steps": steps, "folder": folder,
                "restarted_at": _resume_from_backup(folder / "backup", model, lab)}

    return lab.shared("interrupted", run)


def _checkpoint_task() -> Any:
    from forgekit.training import make_task

    return make_task(n_val=256)  # what run_training(task={"n_val": 256}) trains on


def _resume_from_backup(backup: Any, model_args: dict[str, Any], lab: Lab) -> int:
    """Restart the killed run the way BackupAndRestore is meant to be used (same folder, same
    fit); returns the epoch (0-based) the restarted fit begins with. In this process: only the
    kill needs a process of its own."""
    import keras

    from forgekit.training import build_model

    task, started = _checkpoint_task(), []
    build_model(task, **model_args).fit(
        task.x_train, task.y_train, validation_data=task.validation_data, batch_size=32,
        shuffle=False, epochs=lab.settings.checkpoint_epochs, verbose=0, callbacks=[
            keras.callbacks.BackupAndRestore(backup),
            keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: started.append(e))])
    return started[0] if started else lab.settings.checkpoint_epochs


def _m_checkpoint_loses_one_epoch(run_training: Callable[..., Any], lab: Lab) -> Numbers:
    runs = _interrupted(run_training, lab)
    killed, restarted, steps = runs["killed"], runs["restarted_at"], runs["steps"]
    val = killed.history["val_loss"]
    # save_best_only writes on each new lowest val_loss: the file holds the last such epoch
    improvements = [i for i, v in enumerate(val) if v < min(val[:i], default=float("inf"))]
    best_epoch = improvements[-1]  # 0-based
    return {"killed_by_sigkill": killed.killed, "batches_per_epoch": steps,
            "batches_done_at_kill": killed.batches, "backup_restarts_after_epochs": restarted,
            "batches_lost_with_backup": killed.batches - restarted * steps,
            "best_only_file_epoch": best_epoch + 1,
            "best_only_saves": sum(1 for s in killed.saves if s["phase"] == "written"),
            "val_loss_improvements": len(improvements),
            "batches_lost_with_best_only": killed.batches - (best_epoch + 1) * steps}


def _j_checkpoint_loses_one_epoch(n: Numbers) -> Judgement:
    steps = n["batches_per_epoch"]
    checks = {"a whole-state backup every epoch loses at most one epoch":
              n["killed_by_sigkill"] and n["batches_lost_with_backup"] <= steps,
              "a best-only ModelCheckpoint loses at most one epoch":
              n["killed_by_sigkill"] and n["batches_lost_with_best_only"] <= steps}
    reason = (f"killed after {n['batches_done_at_kill']} batches ({steps} per epoch): "
              f"BackupAndRestore resumed after epoch {n['backup_restarts_after_epochs']}, "
              f"{n['batches_lost_with_backup']} batches lost; the save_best_only file holds epoch "
              f"{n['best_only_file_epoch']}, {n['batches_lost_with_best_only']} batches behind")
    return checks, reason


def _m_best_only(run_training: Callable[..., Any], lab: Lab) -> Numbers:
    import keras

    runs = _interrupted(run_training, lab)
    task = _checkpoint_task()
    kept = keras.models.load_model(runs["folder"] / "best.keras")
    val = runs["killed"].history["val_loss"]
    return {"best_file_val_loss": float(kept.evaluate(task.x_val, task.y_val, batch_size=32,
                                                      verbose=0)),
            "lowest_val_loss": min(val), "last_epoch_val_loss": val[-1],
            "epochs_completed": len(val)}


def _j_best_only(n: Numbers) -> Judgement:
    checks = {"the file holds the lowest validation loss":
              abs(n["best_file_val_loss"] - n["lowest_val_loss"]) < 1e-5,
              "which is lower than the last epoch's":
              n["best_file_val_loss"] < n["last_epoch_val_loss"]}
    reason = (f"best.keras evaluates to {n['best_file_val_loss']:.4f} (lowest seen "
              f"{n['lowest_val_loss']:.4f}, last of {n['epochs_completed']} epochs "
              f"{n['last_epoch_val_loss']:.4f})")
    return checks, reason


# model.save() keeps the optimizer, so resumed training continues -------------------------

def _resumes(compare: Callable[..., Any], lab: Lab) -> Any:
    s = lab.settings
    return lab.shared("resume", lambda: compare(lab.folder("resume"), epochs=s.resume_epochs,
                                                resume_at=s.resume_at, width=s.checkpoint_units))


def _m_save_resume(compare: Callable[..., Any], lab: Lab) -> Numbers:
    r = _resumes(compare, lab)
    return {"steps_saved": r.steps_saved, "steps_after_load_model": r.steps_after_load_model,
            "max_abs_diff_from_uninterrupted": r.full_diff}


def _j_save_resume(n: Numbers) -> Judgement:
    checks = {"load_model brings back the optimizer's step count":
              n["steps_after_load_model"] == n["steps_saved"] > 0,
              "the resumed run ends exactly where the uninterrupted run ends":
              n["max_abs_diff_from_uninterrupted"] == 0.0}
    reason = (f"optimizer steps {n['steps_after_load_model']} after load_model (saved "
              f"{n['steps_saved']}); weights at the end differ from the uninterrupted run by "
              f"{n['max_abs_diff_from_uninterrupted']:.3g}")
    return checks, reason


def _m_weights_resume(compare: Callable[..., Any], lab: Lab) -> Numbers:
    r = _resumes(compare, lab)
    return {"steps_saved": r.steps_saved, "steps_after_load_weights": r.steps_after_load_weights,
            "max_abs_diff_from_uninterrupted": r.weights_only_diff, "loss_jump": r.loss_jump}


def _j_weights_resume(n: Numbers) -> Judgement:
    checks = {"load_weights into a fresh model starts the optimizer over":
              n["steps_after_load_weights"] == 0 < n["steps_saved"],
              "the resumed run leaves the uninterrupted run's path":
              n["max_abs_diff_from_uninterrupted"] > 0.0}
    reason = (f"optimizer steps {n['steps_after_load_weights']} after load_weights (saved "
              f"{n['steps_saved']}); the run ends {n['max_abs_diff_from_uninterrupted']:.3g} away "
              f"from the uninterrupted one (loss jump {n['loss_jump']:+.3g} after the resume)")
    return checks, reason


# SavedModel loads from other languages ---------------------------------------------------

def _m_cross_language(run_c: Callable[..., Any], lab: Lab) -> Numbers:
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
    on_h5 = run_c(c_build, _probe_kinds(lab)["h5_model"].path, x, input_name=sig.input_name,
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


def _j_cross_language(n: Numbers) -> Judgement:
    checks = {"a C program loads the SavedModel and answers like Python":
              n["c_exit_code"] == 0 and n["c_max_abs_diff"] <= 1e-5}
    reason = (f"the C loader (TensorFlow C API) exits {n['c_exit_code']}, max |Δ| "
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

def _serving(server_cls: Callable[..., Any], lab: Lab) -> dict[str, Any]:
    """v1 published and served; the retrained model then saved as a flat .h5 beside it."""
    def deploy_flat() -> dict[str, Any]:
        from forgekit.serving import deploy

        poll = lab.settings.poll_seconds
        base = lab.folder("serving") / "forecast"
        current, retrained = lab.served_models()
        v1 = deploy.publish(current, base, model_name="forecast")
        server = server_cls(base, "forecast", file_system_poll_wait_seconds=poll)
        server.start()
        lab.on_close(server.stop)
        client = server.client()
        client.wait_until_available("forecast", version=1, timeout=30)
        retrained.save(base / "model.h5")  # the flat save
        time.sleep(3 * poll)  # three scans of the base path
        return {"base": base, "v1": v1, "server": server, "client": client}

    return lab.shared("serving", deploy_flat)


def _m_flat_path(server_cls: Callable[..., Any], lab: Lab) -> Numbers:
    import numpy as np

    from forgekit.measure.compare import fixed_inputs

    world = _serving(server_cls, lab)
    current, retrained = lab.served_models()
    client, x = world["client"], fixed_inputs(current)
    served = np.asarray(client.predict("forecast", x)["predictions"])
    return {"answering_version": int(client.metadata("forecast")["model_spec"]["version"]),
            "max_diff_vs_v1": float(np.max(np.abs(served - current.predict(x, verbose=0)))),
            "max_diff_vs_retrained": float(np.max(np.abs(served - retrained.predict(x, verbose=0)))),
            "poll_seconds": lab.settings.poll_seconds}


def _j_flat_path(n: Numbers) -> Judgement:
    checks = {"the server still answers as version 1": n["answering_version"] == 1,
              "its answers are v1's, not the retrained model's":
              n["max_diff_vs_v1"] <= 1e-5 < n["max_diff_vs_retrained"]}
    reason = (f"after three scans ({n['poll_seconds']} s each) version "
              f"{n['answering_version']} answers; max |Δ| {n['max_diff_vs_v1']:.2g} from v1, "
              f"{n['max_diff_vs_retrained']:.3g} from the retrained model saved as model.h5")
    return checks, reason


def _m_checks_catch(verify: Callable[..., Any], lab: Lab) -> Numbers:
    from forgekit.serving import InProcessServer, deploy

    world = _serving(InProcessServer, lab)
    client, base, poll = world["client"], world["base"], lab.settings.poll_seconds
    retrained = lab.served_models()[1]
    expected = deploy.record_for(retrained, base, 2, model_name="forecast",
                                 canary_path=lab.workdir / "serving" / "expected.canary.json")
    flat = verify(client, "forecast", expected, wait=3 * poll)
    v2 = deploy.publish(retrained, base, model_name="forecast")
    fixed = verify(client, "forecast", v2, wait=10 + 3 * poll)
    return {"flat_problems": ", ".join(flat.problems), "flat_answering": flat.answering_version,
            "flat_max_canary_diff": flat.max_canary_diff, "published_version": v2.version,
            "published_ok": fixed.ok, "published_problems": ", ".join(fixed.problems)}


def _j_checks_catch(n: Numbers) -> Judgement:
    problems = set(filter(None, n["flat_problems"].split(", ")))
    checks = {"the metadata check names the stale version": "stale_version" in problems,
              "the known-input check sees other answers": "canary_mismatch" in problems
              and (n["flat_max_canary_diff"] or 0.0) > 1e-5,
              "a correct deployment passes both": n["published_ok"]}
    diff = n["flat_max_canary_diff"]
    reason = (f"against the flat deploy the checks report {n['flat_problems'] or 'nothing'} "
              f"(version {n['flat_answering']} answers; known inputs answered "
              f"{'-' if diff is None else format(diff, '.3g')} away from the new model's outputs); the new model published as version "
              f"{n['published_version']} {'passes' if n['published_ok'] else 'fails: ' + n['published_problems']}")
    return checks, reason


# Keras version mismatch ------------------------------------------------------------------

def _m_keras_versions(run_steps: Callable[..., Any], lab: Lab) -> Numbers:
    import keras

    probed = _probe_kinds(lab)
    folder = lab.folder("keras_versions")
    k2_file = folder / "k2_model.h5"
    steps = run_steps({
        "write": f"""
            import tf_keras
            m = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
            m.compile(optimizer="adam", loss="mse")
            m.save({os.fspath(k2_file)!r})
            result = tf_keras.__version__""",
        "keras": f"tf_keras.models.load_model({os.fspath(probed['keras'].path)!r})",
        "h5": f"tf_keras.models.load_model({os.fspath(probed['h5_model'].path)!r})",
    })
    k3_refused, k3_error = _failed(keras.models.load_model, k2_file)
    bridge_refused, _ = _failed(keras.models.load_model, k2_file, compile=False)
    return {"keras2_version": steps["write"].value if steps["write"].ok else "",
            "keras2_reads_keras3_keras": bool(steps["keras"].ok),
            "keras2_reads_keras3_h5": bool(steps["h5"].ok),
            "keras3_reads_keras2_h5": not k3_refused, "keras3_error": k3_error,
            "keras3_reads_keras2_h5_compile_false": not bridge_refused,
            "keras2_errors": ", ".join(filter(None, (steps["keras"].error_type,
                                                     steps["h5"].error_type)))}


def _j_keras_versions(n: Numbers) -> Judgement:
    checks = {"Keras 2 fails on the Keras 3 .keras": not n["keras2_reads_keras3_keras"],
              "Keras 2 fails on the Keras 3 .h5": not n["keras2_reads_keras3_h5"],
              "Keras 3 fails on the Keras 2 .h5": not n["keras3_reads_keras2_h5"]}
    failed = sum(checks.values())
    reason = (f"{failed} of 3 direct loads across Keras {n['keras2_version'] or '2'} and 3 fail "
              f"({n['keras2_errors'] or 'none'}; {n['keras3_error'] or 'none'}); Keras 3 with "
              f"compile=False {'reads' if n['keras3_reads_keras2_h5_compile_false'] else 'fails on'}"
              " the Keras 2 file")
    return checks, reason


# absolute paths --------------------------------------------------------------------------

def _m_absolute_paths(project_path: Callable[..., Any], lab: Lab) -> Numbers:
    import keras

    root = lab.folder("paths")
    project, moved = root / "project", root / "moved"
    (project / "models").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0"\n')
    lab.model().save(project / "models" / "model.keras")
    baked = (project / "models" / "model.keras").resolve()  # what a script would hard-code
    script = moved / "predict.py"
    shutil.copytree(project, moved)
    script.write_text("# a script inside the moved project\n")
    shutil.rmtree(project)  # the original location is gone, as on another machine
    baked_refused, error = _failed(keras.models.load_model, baked)
    found = project_path("models", "model.keras", start=script)
    found_refused, _ = _failed(keras.models.load_model, found)
    return {"hard_coded_loads": not baked_refused, "hard_coded_error": error,
            "project_relative_loads": not found_refused}


def _j_absolute_paths(n: Numbers) -> Judgement:
    checks = {"the hard-coded path fails once the project moves": not n["hard_coded_loads"],
              "a path built from the project root still loads": n["project_relative_loads"]}
    reason = (f"after the move, load_model on the hard-coded path "
              f"{'raises ' + n['hard_coded_error'] if not n['hard_coded_loads'] else 'loads'}; "
              f"project_path(...) {'loads' if n['project_relative_loads'] else 'fails'}")
    return checks, reason


# --------------------------------------------------------------------------------------------
# the registry


def build_rows() -> tuple[ArticleClaim, ...]:
    """Every row, in the course's order (lesson by lesson, roughly)."""
    from forgekit import crosslang, sizes, tflite
    from forgekit.diagnose import failures
    from forgekit.formats.detect import detect_format
    from forgekit.measure import fresh, probe
    from forgekit.paths import project_path
    from forgekit.serving.process import InProcessServer
    from forgekit.serving.verify import verify_deployment
    from forgekit.training import resume, run

    return (
        ArticleClaim(
            "save_writes_savedmodel",
            "model.save(path) writes a SavedModel folder.",
            "01_whole_model_formats", detect_format, "does not hold",
            _m_save_writes_savedmodel, _j_save_writes_savedmodel),
        ArticleClaim(
            "savedmodel_keeps_training_state",
            "A SavedModel carries the optimizer state and the compile settings (the article's "
            "\"compilation labels\") along with the weights.",
            "01_whole_model_formats", probe.matrix, "does not hold",
            _m_savedmodel_training_state, _j_savedmodel_training_state),
        ArticleClaim(
            "h5_lacks_serving",
            "A legacy .h5 file lacks what a model server needs: no serving signature, and the "
            "SavedModel loader servers use cannot read it.",
            "01_whole_model_formats", probe.matrix, "holds",
            _m_h5_lacks_serving, _j_h5_lacks_serving),
        ArticleClaim(
            "h5_savedmodel_mixup",
            "Reading an .h5 file through the SavedModel loader, or a SavedModel folder through "
            "the Keras file loader, fails: the two are laid out differently.",
            "05_wrong_path_failures", failures.run_matrix, "holds",
            _m_h5_savedmodel_mixup, _j_h5_savedmodel_mixup),
        ArticleClaim(
            "weights_5_10x_smaller",
            "A weights-only file takes 5 to 10 times less disk space than the whole model.",
            "02_weights_and_architecture", sizes.breakdown, "does not hold",
            _m_weights_smaller, _j_weights_smaller),
        ArticleClaim(
            "save_weights_tf_checkpoint",
            "model.save_weights() writes a TensorFlow checkpoint.",
            "02_weights_and_architecture", detect_format, "does not hold",
            _m_save_weights_format, _j_save_weights_format),
        ArticleClaim(
            "checkpoints_weights_only",
            "Checkpoint files keep the weights and nothing else.",
            "02_weights_and_architecture", probe.matrix, "does not hold",
            _m_checkpoints_weights_only, _j_checkpoints_weights_only),
        ArticleClaim(
            "json_yaml_architecture",
            "JSON or YAML files hold the architecture alone, so the design can be versioned "
            "apart from the weights.",
            "02_weights_and_architecture", probe.matrix, "partly",
            _m_json_yaml, _j_json_yaml),
        ArticleClaim(
            "tflite_from_savedmodel",
            "A .tflite model comes from converting a SavedModel; Keras does not write one itself.",
            "04_tflite", tflite.convert, "holds",
            _m_tflite, _j_tflite),
        ArticleClaim(
            "checkpoint_loses_one_epoch",
            "With a ModelCheckpoint callback, an interruption costs at most the epoch in progress.",
            "03_checkpoints_and_resume", run.run_training, "partly",
            _m_checkpoint_loses_one_epoch, _j_checkpoint_loses_one_epoch),
        ArticleClaim(
            "best_only_keeps_best_epoch",
            "ModelCheckpoint(save_best_only=True) keeps the best epoch, so an overfitted last "
            "epoch does not replace it.",
            "03_checkpoints_and_resume", run.run_training, "holds",
            _m_best_only, _j_best_only),
        ArticleClaim(
            "save_keeps_optimizer_for_resume",
            "model.save() keeps the optimizer, so training resumed after load_model continues "
            "from where it stopped.",
            "03_checkpoints_and_resume", resume.compare_resumes, "holds",
            _m_save_resume, _j_save_resume),
        ArticleClaim(
            "weights_only_resume_restarts_optimizer",
            "Resuming from weights alone, without the optimizer state, does not continue the "
            "same training run.",
            "03_checkpoints_and_resume", resume.compare_resumes, "holds",
            _m_weights_resume, _j_weights_resume),
        ArticleClaim(
            "savedmodel_cross_language",
            "A SavedModel can be loaded from languages other than Python, such as C or Java.",
            "09_cross_language", crosslang.run_c, "holds",
            _m_cross_language, _j_cross_language),
        ArticleClaim(
            "keras_version_mismatch",
            "A model saved by one Keras version fails to load in a different one.",
            "05_wrong_path_failures", fresh.run_steps, "holds",
            _m_keras_versions, _j_keras_versions),
        ArticleClaim(
            "absolute_paths_break",
            "Hard-coding a model's absolute path in a script breaks the script once the project "
            "moves elsewhere.",
            "05_wrong_path_failures", project_path, "holds",
            _m_absolute_paths, _j_absolute_paths),
        ArticleClaim(
            "flat_path_serves_wrong_version",
            "Saving a retrained model to a flat file beside the served versions leaves the "
            "server answering with the old version.",
            "06_serving_incident", InProcessServer, "holds",
            _m_flat_path, _j_flat_path),
        ArticleClaim(
            "metadata_and_known_input_catch_it",
            "Asking the server which version answers (its metadata endpoint) and comparing its "
            "answer to a fixed input with the expected output catch a wrong version.",
            "06_serving_incident", verify_deployment, "holds",
            _m_checks_catch, _j_checks_catch),
    )
