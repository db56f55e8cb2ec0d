"""The rows of the article audit: for each claim, how it is measured and how it is judged.

Each row pairs a ``measure`` step, which calls the row's forgekit experiment (the function the
lesson uses for that topic) and returns plain numbers, with a
``judge``, which turns the numbers into named checks and a reason. Nothing here decides a
verdict: :func:`forgekit.course.article.verdict_of` does, from the checks, the same way for
every row. :func:`build_rows` is the registry, read as ``forgekit.course.article.ROWS``.

Rows read the lab's shared artifacts (one trained model, its export, one probe, one interrupted
run) but never write into them: a row that changes something (publishes a version, moves a
project) does it in a folder of its own, so no row's verdict depends on which rows ran before.
A row whose scenario did not happen (the run was not killed, did not overfit, Keras 2 could not
write its file) raises, so it reports ``error`` instead of a verdict nobody measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgekit.quiet import quiet_absl

if TYPE_CHECKING:  # article.py builds the rows from these functions: it imports this module
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
    written = folder / "my_model"
    return {"save_without_extension_refused": refused, "save_without_extension_error": error,
            "no_extension_kind": detect(written).kind if written.exists() else "nothing written",
            "save_keras_kind": detect(folder / "model.keras").kind,
            "export_kind": detect(lab.export()).kind}


def _j_save_writes_savedmodel(n: Numbers) -> Judgement:
    checks = {"model.save(path) with no extension writes a SavedModel folder":
              not n["save_without_extension_refused"] and n["no_extension_kind"] == "savedmodel",
              "model.save('name.keras') writes a SavedModel": n["save_keras_kind"] == "savedmodel"}
    reason = (f"model.save without an extension "
              f"{'raises ' + n['save_without_extension_error'] if n['save_without_extension_refused'] else 'works'}"
              f" ({n['no_extension_kind']} on disk); with .keras it writes a "
              f"{n['save_keras_kind']} file; the SavedModel comes from model.export() (found: "
              f"{n['export_kind']})")
    return checks, reason


# SavedModel keeps the optimizer state and the compile settings ---------------------------

def _m_savedmodel_training_state(matrix: Callable[..., Any], lab: Lab) -> Numbers:
    import keras
    import tensorflow as tf

    from forgekit.formats.detect import detect_format

    probed = _probe(matrix, lab)
    export, keras_file = probed["savedmodel"], probed["keras"]
    # The article's SavedModel came from Keras 2's model.save(folder); on Keras 3 the two ways
    # to write one are model.export() (what the probe measures) and tf.saved_model.save().
    written = lab.folder("tf_saved_model") / "saved_model"
    tf.saved_model.save(lab.model(), os.fspath(written))
    stored = [name for name, _ in tf.train.list_variables(os.fspath(written / "variables"
                                                                    / "variables"))]
    loaded = tf.saved_model.load(os.fspath(written))
    return {"export_optimizer_variables": bool(detect_format(export.path).has_optimizer),
            "export_optimizer_restored": bool(export.optimizer_restored),
            "export_compile_restored": bool(export.compile_restored),
            "export_weights_max_abs_diff": export.weights_max_abs_diff,
            "export_signatures": ", ".join(export.signatures),
            "tf_saved_model_save_optimizer_variables": sum("optimizer" in n for n in stored),
            "tf_saved_model_load_keras_optimizer": isinstance(getattr(loaded, "optimizer", None),
                                                              keras.optimizers.Optimizer),
            "tf_saved_model_load_compiled": callable(getattr(loaded, "fit", None)),
            "keras_optimizer_restored": bool(keras_file.optimizer_restored),
            "keras_compile_restored": bool(keras_file.compile_restored)}


def _j_savedmodel_training_state(n: Numbers) -> Judgement:
    saved = n["tf_saved_model_save_optimizer_variables"]
    back = (n["export_optimizer_restored"] or n["tf_saved_model_load_keras_optimizer"]) and (
        n["export_compile_restored"] or n["tf_saved_model_load_compiled"])
    checks = {"model.export() stores the optimizer's variables": n["export_optimizer_variables"],
              "tf.saved_model.save() stores the optimizer's variables": saved > 0,
              "loading a SavedModel brings back the optimizer and the compile settings": back}
    reason = (f"model.export() keeps weights (max |Δ| {n['export_weights_max_abs_diff']:.3g}) and "
              f"signatures ({n['export_signatures']}), optimizer variables "
              f"{_yes(n['export_optimizer_variables'])}; tf.saved_model.save() stores {saved} "
              f"optimizer variables; tf.saved_model.load of it gives a Keras optimizer: "
              f"{_yes(n['tf_saved_model_load_keras_optimizer'])}, a compiled model: "
              f"{_yes(n['tf_saved_model_load_compiled'])}; the .keras file restores optimizer "
              f"{_yes(n['keras_optimizer_restored'])} and compile "
              f"{_yes(n['keras_compile_restored'])}")
    return checks, reason


def _yes(flag: Any) -> str:
    return "yes" if flag else "no"


# H5 lacks what serving needs -------------------------------------------------------------

def _m_h5_lacks_serving(matrix: Callable[..., Any], lab: Lab) -> Numbers:
    import tensorflow as tf

    from forgekit.serving.servable import SavedModelServable

    probed = _probe(matrix, lab)
    # A model server's base path holds numbered version folders: put the .h5 in version 1, the
    # way a serving deploy of the file would, and hand that folder to the loaders servers use.
    version = lab.folder("h5_serving") / "forecast" / "1"
    version.mkdir(parents=True)
    shutil.copy(probed["h5_model"].path, version / "model.h5")
    control = SavedModelServable(probed["savedmodel"].path)  # the same loader, on the export
    if not control.signatures:  # the method itself must be able to succeed
        raise RuntimeError("the serving loader found no signature in the export either")
    served, served_error = _failed(SavedModelServable, version)
    loaded, loaded_error = _failed(tf.saved_model.load, os.fspath(version))
    return {"server_loader_refuses_h5_version": served, "server_loader_error": served_error,
            "saved_model_load_refuses_h5_version": loaded, "saved_model_load_error": loaded_error,
            "export_signatures": len(control.signatures), "server": "forgekit SavedModelServable"}


def _j_h5_lacks_serving(n: Numbers) -> Judgement:
    checks = {"the model server's loader cannot serve a version folder holding the .h5":
              n["server_loader_refuses_h5_version"],
              "tf.saved_model.load (the SavedModel loader) cannot read it":
              n["saved_model_load_refuses_h5_version"]}
    reason = (f"version folder 1/ holding model.h5: forgekit's server loader "
              f"{'raises ' + n['server_loader_error'] if n['server_loader_refuses_h5_version'] else 'loads it'}"
              f", tf.saved_model.load "
              f"{'raises ' + n['saved_model_load_error'] if n['saved_model_load_refuses_h5_version'] else 'loads it'}"
              f"; the same loader serves the export ({n['export_signatures']} signatures)")
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
    # a real YAML document of the architecture, as Keras 2's to_yaml wrote it (PyYAML comes
    # with Jupyter; without it the JSON text is itself a valid YAML 1.2 document)
    try:
        import yaml

        as_yaml = yaml.safe_dump(json.loads(model.to_json()))
    except ImportError:
        as_yaml = model.to_json()
    from_yaml_refused, _ = _failed(lambda: keras.models.model_from_yaml(as_yaml))
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
    # Keras 3 (3.13+) exports .tflite itself: model.export(..., format="litert")
    exported = folder / "exported.tflite"
    export_failed, export_error = _failed(model.export, exported, format="litert", verbose=False)
    export_diff = None if export_failed else float(np.max(np.abs(
        tflite.predict(tflite.interpreter(exported), x) - model.predict(x, verbose=0))))
    return {"tflite_kind": detect_format(path).kind, "tflite_bytes": path.stat().st_size,
            "max_abs_diff": diff, "direct_save_refused": refused, "direct_save_error": error,
            "litert_export_failed": export_failed, "litert_export_error": export_error,
            "litert_export_max_abs_diff": export_diff}


def _j_tflite(n: Numbers) -> Judgement:
    exported = not n.get("litert_export_failed", True)
    checks = {"the SavedModel converts to a .tflite that answers the same":
              n["tflite_kind"] == "tflite" and n["max_abs_diff"] <= 1e-5,
              "Keras cannot save .tflite directly": n["direct_save_refused"],
              "Keras cannot export .tflite either": not exported}
    reason = (f"from_saved_model wrote {n['tflite_bytes']:,} bytes of {n['tflite_kind']}, max |Δ| "
              f"{n['max_abs_diff']:.2g} against Keras; model.save('….tflite') "
              f"{'raises ' + n['direct_save_error'] if n['direct_save_refused'] else 'works'}")
    if "litert_export_failed" in n:
        reason += ("; but model.export(..., format='litert') writes one itself (max |Δ| "
                   f"{n['litert_export_max_abs_diff']:.2g})" if exported else
                   f"; model.export(..., format='litert') raises {n['litert_export_error']}")
    return checks, reason


# ModelCheckpoint: an interruption costs at most one epoch --------------------------------

def _interrupted(run_training: Callable[..., Any], lab: Lab) -> dict[str, Any]:
    """A real SIGKILL in the middle of the last epoch of an overfitting run that keeps a plain
    ModelCheckpoint of every epoch (the article's setup) and a best-only one beside it."""
    def run() -> dict[str, Any]:
        s = lab.settings
        folder = lab.folder("interrupted")
        model = {"width": s.checkpoint_units, "learning_rate": 3e-3}  # overfits within epochs
        steps = _checkpoint_task().steps_per_epoch(32)
        kill_at = (s.checkpoint_epochs - 1) * steps + steps // 2  # mid-way through the last
        killed = run_training(folder, s.checkpoint_epochs, task={"n_val": 256}, model=model,
                              epoch_checkpoint="epochs/ckpt-{epoch:02d}.keras",
                              checkpoint="best.keras", kill_after_batches=kill_at)
        if not killed.killed:  # the scenario needs the kill: no verdict without it
            raise RuntimeError(f"the training run was not killed ({killed}): not exercised")
        return {"killed": killed, "steps": steps, "folder": folder}

    return lab.shared("interrupted", run)


def _checkpoint_task() -> Any:
    from forgekit.training import make_task

    return make_task(n_val=256)  # what run_training(task={"n_val": 256}) trains on


def _m_checkpoint_loses_one_epoch(run_training: Callable[..., Any], lab: Lab) -> Numbers:
    import keras

    runs = _interrupted(run_training, lab)
    killed, steps, folder = runs["killed"], runs["steps"], runs["folder"]
    files = sorted((folder / "epochs").glob("ckpt-*.keras"))
    if not files:
        raise RuntimeError("the per-epoch ModelCheckpoint left no file: not exercised")
    newest = files[-1]
    saved_epochs = int(newest.stem.removeprefix("ckpt-"))  # {epoch} is 1-based in the name
    resumed = keras.models.load_model(newest)  # what a restart would load
    val = killed.history["val_loss"]
    # save_best_only writes on each new lowest val_loss: the file holds the last such epoch
    best_epoch = max(i for i, v in enumerate(val) if v < min(val[:i], default=float("inf"))) + 1
    return {"killed_by_sigkill": killed.killed, "batches_per_epoch": steps,
            "batches_done_at_kill": killed.batches, "per_epoch_files": len(files),
            "newest_file_epoch": saved_epochs,
            "batches_lost_with_per_epoch_file": killed.batches - saved_epochs * steps,
            "optimizer_steps_in_newest_file": int(resumed.optimizer.iterations),
            "best_only_file_epoch": best_epoch,
            "batches_lost_with_best_only": killed.batches - best_epoch * steps}


def _j_checkpoint_loses_one_epoch(n: Numbers) -> Judgement:
    steps, lost = n["batches_per_epoch"], n["batches_lost_with_per_epoch_file"]
    checks = {"the newest per-epoch checkpoint is less than one epoch behind the kill":
              0 <= lost < steps,
              "it holds that epoch's optimizer state, so training continues from it":
              n["optimizer_steps_in_newest_file"] == n["newest_file_epoch"] * steps}
    reason = (f"killed by SIGKILL after {n['batches_done_at_kill']} batches ({steps} per epoch): "
              f"the newest of {n['per_epoch_files']} per-epoch ModelCheckpoint files holds epoch "
              f"{n['newest_file_epoch']} ({n['optimizer_steps_in_newest_file']} optimizer steps), "
              f"{lost} batches lost. This is the file saved every epoch; the save_best_only "
              "file of the article's recipe lags further, by design (best_only_keeps_best_epoch)")
    return checks, reason


def _m_best_only(run_training: Callable[..., Any], lab: Lab) -> Numbers:
    import keras

    runs = _interrupted(run_training, lab)
    task = _checkpoint_task()
    val = runs["killed"].history["val_loss"]
    if min(val) >= val[-1]:  # the claim is about an overfitted last epoch: none here
        raise RuntimeError(f"the run did not overfit (last of {len(val)} epochs has the lowest "
                           f"val_loss {val[-1]:.4f}): not exercised")
    kept = keras.models.load_model(runs["folder"] / "best.keras")
    # save_best_only writes on each new lowest val_loss: the file holds the last such epoch
    best_epoch = max(i for i, v in enumerate(val) if v < min(val[:i], default=float("inf"))) + 1
    return {"best_file_val_loss": float(kept.evaluate(task.x_val, task.y_val, batch_size=32,
                                                      verbose=0)),
            "lowest_val_loss": min(val), "last_epoch_val_loss": val[-1],
            "epochs_completed": len(val), "best_only_file_epoch": best_epoch,
            "batches_lost_with_best_only": runs["killed"].batches - best_epoch * runs["steps"]}


def _j_best_only(n: Numbers) -> Judgement:
    checks = {"the file holds the lowest validation loss":
              abs(n["best_file_val_loss"] - n["lowest_val_loss"]) < 1e-5,
              "which is lower than the last epoch's":
              n["best_file_val_loss"] < n["last_epoch_val_loss"]}
    reason = (f"the best-only checkpoint evaluates to {n['best_file_val_loss']:.4f} (lowest "
              f"seen {n['lowest_val_loss']:.4f}, last of {n['epochs_completed']} epochs "
              f"{n['last_epoch_val_loss']:.4f})")
    if "batches_lost_with_best_only" in n:  # the price of keeping the best: it lags the run
        reason += (f"; when the run was killed it held epoch {n['best_only_file_epoch']}, "
                   f"{n['batches_lost_with_best_only']} batches behind")
    return checks, reason


# model.save() keeps the optimizer, so resumed training continues -------------------------

def _resumes(diff: Callable[..., Any], lab: Lab) -> Numbers:
    """Stop, save, resume every way (forgekit.training.compare_resumes, lesson 03's experiment in
    one call), each resumed run's end compared with the uninterrupted run's by ``diff``."""
    def run() -> Numbers:
        from forgekit.training import compare_resumes

        s = lab.settings
        r = compare_resumes(lab.folder("resume"), epochs=s.resume_epochs, resume_at=s.resume_at,
                            width=s.checkpoint_units)
        end = r.final_weights["uninterrupted"]
        return {"steps_saved": r.steps_saved,
                **{f"steps_after_{way}": n for way, n in r.steps_after.items()},
                **{f"max_abs_diff_{way}": diff(w, end) for way, w in r.final_weights.items()
                   if way != "uninterrupted"},
                "loss_jump_weights_only": r.first_loss["weights_only"]
                - r.first_loss["uninterrupted"]}

    return lab.shared("resume", run)


def _m_save_resume(max_abs_diff: Callable[..., Any], lab: Lab) -> Numbers:
    r = _resumes(max_abs_diff, lab)
    return {k: r[k] for k in ("steps_saved", "steps_after_load_model",
                              "max_abs_diff_load_model")}


def _j_save_resume(n: Numbers) -> Judgement:
    checks = {"load_model brings back the optimizer's step count":
              n["steps_after_load_model"] == n["steps_saved"] > 0,
              "the resumed run ends exactly where the uninterrupted run ends":
              n["max_abs_diff_load_model"] == 0.0}
    reason = (f"optimizer steps {n['steps_after_load_model']} after load_model (saved "
              f"{n['steps_saved']}); weights at the end differ from the uninterrupted run by "
              f"{n['max_abs_diff_load_model']:.3g}")
    return checks, reason


def _m_weights_resume(max_abs_diff: Callable[..., Any], lab: Lab) -> Numbers:
    r = _resumes(max_abs_diff, lab)
    return {k: v for k, v in r.items() if k != "steps_after_load_model"
            and k != "max_abs_diff_load_model"}


def _j_weights_resume(n: Numbers) -> Judgement:
    # The claim's setup: weights with no optimizer state. Keras 3's save_weights() file is not
    # that (it carries Adam's state); the reason says what it does, measured beside it.
    checks = {"loading weights without optimizer state starts the optimizer over":
              n["steps_after_weights_only"] == 0 < n["steps_saved"],
              "the resumed run leaves the uninterrupted run's path":
              n["max_abs_diff_weights_only"] > 0.0}
    reason = (f"a weights file without optimizer variables: optimizer steps "
              f"{n['steps_after_weights_only']} after loading (saved {n['steps_saved']}), the "
              f"run ends {n['max_abs_diff_weights_only']:.3g} away from the uninterrupted one "
              f"(loss jump {n['loss_jump_weights_only']:+.3g}). Keras 3's save_weights() file "
              f"does carry the optimizer state: loaded after optimizer.build() it restores "
              f"{n['steps_after_load_weights_built']} steps and ends "
              f"{n['max_abs_diff_load_weights_built']:.3g} away; into an unbuilt optimizer "
              f"Keras skips it ({n['steps_after_load_weights']} steps, "
              f"{n['max_abs_diff_load_weights']:.3g} away)")
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

# Who answered: the verdict is about TF Serving's rules, measured on forgekit's emulation of them.
SERVER_NOTE = ("forgekit's InProcessServer (TF Serving's version-folder rules; "
               "tensorflow_model_server not used)")


@contextlib.contextmanager
def _flat_deploy(server_cls: Callable[..., Any], lab: Lab, name: str) -> Iterator[dict[str, Any]]:
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


def _m_flat_path(server_cls: Callable[..., Any], lab: Lab) -> Numbers:
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


def _j_flat_path(n: Numbers) -> Judgement:
    checks = {"the server still answers as version 1": n["answering_version"] == 1,
              "its answers are v1's, not the retrained model's":
              n["max_diff_vs_v1"] <= 1e-5 < n["max_diff_vs_retrained"]}
    reason = (f"after three scans ({n['poll_seconds']} s each) version "
              f"{n['answering_version']} answers; max |Δ| {n['max_diff_vs_v1']:.2g} from v1, "
              f"{n['max_diff_vs_retrained']:.3g} from the retrained model saved as model.h5 "
              f"(server: {n['server']})")
    return checks, reason


def _m_checks_catch(verify: Callable[..., Any], lab: Lab) -> Numbers:
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
              f"{n['published_version']} {'passes' if n['published_ok'] else 'fails: ' + n['published_problems']}"
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


def _m_keras_versions(run_fresh_many: Callable[..., Any], lab: Lab) -> Numbers:
    import keras

    from forgekit.outcome import attempt

    folder = lab.folder("keras_versions")
    # Keras 3 refuses even its own .h5 compiled with loss="mse" (the metric name does not
    # deserialize), so the version test uses a loss both versions name alike; the "mse" files
    # of both versions are the control that shows that failure is not about versions.
    k2_file, k2_mse, k3_mse, k3_keras, k3_h5 = (folder / n for n in (
        "k2_model.h5", "k2_mse.h5", "k3_mse.h5", "k3_model.keras", "k3_model.h5"))
    for loss, paths in (("mean_squared_error", (k3_keras, k3_h5)), ("mse", (k3_mse,))):
        own = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        own.compile(optimizer="adam", loss=loss)
        for path in paths:
            own.save(path)
    steps = run_fresh_many({"keras 2": {  # one fresh process that imports only Keras 2
        "write": f"""
            import tf_keras
            for loss, path in (("mean_squared_error", {os.fspath(k2_file)!r}),
                               ("mse", {os.fspath(k2_mse)!r})):
                m = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
                m.compile(optimizer="adam", loss=loss)
                m.save(path)
            result = tf_keras.__version__""",
        "keras": f"tf_keras.models.load_model({os.fspath(k3_keras)!r})",
        "h5": f"tf_keras.models.load_model({os.fspath(k3_h5)!r})",
    }}, workers=1)
    if not (steps["write"].ok and k2_file.is_file() and k2_mse.is_file()):
        raise RuntimeError(f"Keras 2 (tf_keras) could not write its files, so nothing was "
                           f"measured: {steps['write'].error_type}: {steps['write'].message}")
    k3 = attempt(keras.models.load_model, k2_file)
    k3_on_mse, k3_on_own = (attempt(keras.models.load_model, f) for f in (k2_mse, k3_mse))
    return {"keras2_version": steps["write"].value,
            "keras2_reads_keras3_keras": not _load_failed(steps["keras"], "Keras 2 on the .keras"),
            "keras2_reads_keras3_h5": not _load_failed(steps["h5"], "Keras 2 on the .h5"),
            "keras3_reads_keras2_h5": not _load_failed(k3, "Keras 3 on the Keras 2 .h5"),
            "keras3_error": k3.error_type or "",
            "keras3_reads_keras2_mse_h5": bool(k3_on_mse.ok),
            "keras3_reads_own_mse_h5": bool(k3_on_own.ok),
            "mse_errors_identical": (not k3_on_mse.ok and not k3_on_own.ok
                                     and str(k3_on_mse.exception) == str(k3_on_own.exception)),
            "keras2_errors": ", ".join(filter(None, (steps["keras"].error_type,
                                                     steps["h5"].error_type)))}


def _j_keras_versions(n: Numbers) -> Judgement:
    # Only loads whose failure can be the version count: the Keras 2 file is compiled with a
    # loss name both versions read, since Keras 3 refuses its own loss="mse" .h5 as well.
    checks = {"Keras 2 fails on the Keras 3 .keras": not n["keras2_reads_keras3_keras"],
              "Keras 2 fails on the Keras 3 .h5": not n["keras2_reads_keras3_h5"],
              "Keras 3 fails on the Keras 2 .h5": not n["keras3_reads_keras2_h5"]}
    control = ("fails on the Keras 2 and on its own loss='mse' .h5 with the same error, so "
               "that failure is the loss name, not the version"
               if n["mse_errors_identical"] else
               f"reads the Keras 2 loss='mse' .h5: {n['keras3_reads_keras2_mse_h5']}, its own: "
               f"{n['keras3_reads_own_mse_h5']}")
    reason = (f"{sum(checks.values())} of 3 loads across tf_keras {n['keras2_version']} (Keras 2) "
              f"and Keras 3 fail (Keras 2: {n['keras2_errors'] or 'none'}; Keras 3 on the Keras "
              f"2 .h5: {n['keras3_error'] or 'reads it'}); Keras 3 {control}")
    return checks, reason


# absolute paths --------------------------------------------------------------------------

def _m_absolute_paths(project_path: Callable[..., Any], lab: Lab) -> Numbers:
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
            "after_move_error": ("" if after_move.ok else  # the folder is named, not the path
                                 after_move.summary.replace(os.fspath(baked_moved.parent.parent),
                                                            "before_move")),
            "hard_coded_path_inside_copy": baked.is_relative_to(moved.resolve()),
            "hard_coded_diff_vs_original": hard["original"], "hard_coded_diff_vs_copy": hard["copy"],
            "project_path_inside_copy": Path(found).resolve().is_relative_to(moved.resolve()),
            "project_path_diff_vs_copy": portable["copy"],
            "project_path_diff_vs_original": portable["original"]}


def _j_absolute_paths(n: Numbers) -> Judgement:
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
    reason = (f"{moved}; {copied}; project_path(...) answers max |Δ| "
              f"{n['project_path_diff_vs_copy']:.2g} from the copy's")
    return checks, reason


# --------------------------------------------------------------------------------------------
# the registry


def build_rows(row: type[ArticleClaim]) -> tuple[ArticleClaim, ...]:
    """Every row, in the course's order (lesson by lesson, roughly), made with ``row``
    (:class:`~forgekit.course.article.ArticleClaim`, passed in so this module never imports
    the one that imports it)."""
    from forgekit import crosslang, sizes, tflite
    from forgekit.diagnose import failures
    from forgekit.formats.detect import detect_format
    from forgekit.measure import fresh, probe
    from forgekit.measure.compare import max_abs_diff
    from forgekit.paths import project_path
    from forgekit.serving.process import InProcessServer
    from forgekit.serving.verify import verify_deployment
    from forgekit.training import run

    return (
        row(
            "save_writes_savedmodel",
            "model.save(path) writes a SavedModel folder.",
            "01_whole_model_formats", detect_format, "does not hold",
            _m_save_writes_savedmodel, _j_save_writes_savedmodel),
        row(
            "savedmodel_keeps_training_state",
            "A SavedModel carries the optimizer state and the compile settings (the article's "
            "\"compilation labels\") along with the weights.",
            "01_whole_model_formats", probe.matrix, "partly",
            _m_savedmodel_training_state, _j_savedmodel_training_state),
        row(
            "h5_lacks_serving",
            "A legacy .h5 file lacks what a model server needs: no serving signature, and the "
            "SavedModel loader servers use cannot read it.",
            "01_whole_model_formats", probe.matrix, "holds",
            _m_h5_lacks_serving, _j_h5_lacks_serving),
        row(
            "h5_savedmodel_mixup",
            "Reading an .h5 file through the SavedModel loader, or a SavedModel folder through "
            "the Keras file loader, fails: the two are laid out differently.",
            "05_wrong_path_failures", failures.run_matrix, "holds",
            _m_h5_savedmodel_mixup, _j_h5_savedmodel_mixup),
        row(
            "weights_5_10x_smaller",
            "A weights-only file takes 5 to 10 times less disk space than the whole model.",
            "02_weights_and_architecture", sizes.breakdown, "does not hold",
            _m_weights_smaller, _j_weights_smaller),
        row(
            "save_weights_tf_checkpoint",
            "model.save_weights() writes a TensorFlow checkpoint.",
            "02_weights_and_architecture", detect_format, "does not hold",
            _m_save_weights_format, _j_save_weights_format),
        row(
            "checkpoints_weights_only",
            "Checkpoint files keep the weights and nothing else.",
            "02_weights_and_architecture", probe.matrix, "does not hold",
            _m_checkpoints_weights_only, _j_checkpoints_weights_only),
        row(
            "json_yaml_architecture",
            "JSON or YAML files hold the architecture alone, so the design can be versioned "
            "apart from the weights.",
            "02_weights_and_architecture", probe.matrix, "partly",
            _m_json_yaml, _j_json_yaml),
        row(
            "tflite_from_savedmodel",
            "A .tflite model comes from converting a SavedModel; Keras does not write one itself.",
            "04_tflite", tflite.convert, "partly",
            _m_tflite, _j_tflite),
        row(
            "checkpoint_loses_one_epoch",
            "With a ModelCheckpoint callback saving every epoch, an interruption costs at most "
            "the epoch in progress.",
            "03_checkpoints_and_resume", run.run_training, "holds",
            _m_checkpoint_loses_one_epoch, _j_checkpoint_loses_one_epoch),
        row(
            "best_only_keeps_best_epoch",
            "ModelCheckpoint(save_best_only=True) keeps the best epoch, so an overfitted last "
            "epoch does not replace it.",
            "03_checkpoints_and_resume", run.run_training, "holds",
            _m_best_only, _j_best_only),
        row(
            "save_keeps_optimizer_for_resume",
            "model.save() keeps the optimizer, so training resumed after load_model continues "
            "from where it stopped.",
            "03_checkpoints_and_resume", max_abs_diff, "holds",
            _m_save_resume, _j_save_resume),
        row(
            "weights_only_resume_restarts_optimizer",
            "Resuming from a weights file without optimizer variables does not continue the "
            "same training run.",
            "03_checkpoints_and_resume", max_abs_diff, "holds",
            _m_weights_resume, _j_weights_resume),
        row(
            "savedmodel_cross_language",
            "A SavedModel can be loaded from languages other than Python, such as C or Java.",
            "09_cross_language", crosslang.run_c, "holds",
            _m_cross_language, _j_cross_language),
        row(
            "keras_version_mismatch",
            "A model saved by one Keras version fails to load in a different one.",
            "05_wrong_path_failures", fresh.run_fresh_many, "partly",
            _m_keras_versions, _j_keras_versions),
        row(
            "absolute_paths_break",
            "Hard-coding a model's absolute path in a script breaks the script once the project "
            "moves elsewhere.",
            "05_wrong_path_failures", project_path, "holds",
            _m_absolute_paths, _j_absolute_paths),
        row(
            "flat_path_serves_wrong_version",
            "Saving a retrained model to a flat file beside the served versions leaves the "
            "server answering with the old version.",
            "06_serving_incident", InProcessServer, "holds",
            _m_flat_path, _j_flat_path),
        row(
            "metadata_and_known_input_catch_it",
            "Asking the server which version answers (its metadata endpoint) and comparing its "
            "answer to a fixed input with the expected output catch a wrong version.",
            "07_deploying_with_tf_serving", verify_deployment, "holds",
            _m_checks_catch, _j_checks_catch),
    )
