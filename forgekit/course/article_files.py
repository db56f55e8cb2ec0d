"""Article rows about what is on disk: formats, weights, architecture files and TFLite
(lessons 01, 02, 04, 05). Each row is a ``measure_*`` / ``judge_*`` pair; see
:mod:`forgekit.course.article_rows`."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forgekit.course.article import Judgement, Numbers
    from forgekit.course.article_workbench import Workbench


PROBE_KINDS = ("keras", "savedmodel", "h5_model", "weights_h5", "tf_checkpoint",
               "json_architecture")


def _probe(experiment: Callable[..., Any], lab: Workbench) -> Any:
    """The shared probe of every whole-model and weights format (lessons 01 and 02)."""
    return lab.shared("probe", lambda: experiment(lab.model(), PROBE_KINDS, lab.folder("probe"),
                                                  x=lab.inputs()))


def probe_kinds(lab: Workbench) -> Any:
    from forgekit.measure.probe import matrix

    return _probe(matrix, lab)


def _failed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, str]:
    """(the call raised, the exception type) for a call that is expected to be refused."""
    from forgekit.outcome import attempt

    outcome = attempt(call, *args, **kwargs)
    return (not outcome.ok), (outcome.error_type or "")


def _outcome(n: Numbers, refused: str, error: str, ok: str = "works") -> str:
    """``raises <the error>`` when the numbers say the call was refused, else ``ok``."""
    return f"raises {n[error]}" if n[refused] else ok


def _in(value: float, low: float, high: float) -> bool:
    return low <= value <= high


# model.save() writes a SavedModel --------------------------------------------------------

def measure_save_writes_savedmodel(detect: Callable[..., Any], lab: Workbench) -> Numbers:
    model, folder = lab.model(), lab.folder("save_calls")
    refused, error = _failed(model.save, folder / "my_model")
    model.save(folder / "model.keras")
    written = folder / "my_model"
    return {"save_without_extension_refused": refused, "save_without_extension_error": error,
            "no_extension_kind": detect(written).kind if written.exists() else "nothing written",
            "save_keras_kind": detect(folder / "model.keras").kind,
            "export_kind": detect(lab.export()).kind}


def judge_save_writes_savedmodel(n: Numbers) -> Judgement:
    checks = {"model.save(path) with no extension writes a SavedModel folder":
              not n["save_without_extension_refused"] and n["no_extension_kind"] == "savedmodel",
              "model.save('name.keras') writes a SavedModel": n["save_keras_kind"] == "savedmodel"}
    reason = (f"model.save('my_model') "
              f"{_outcome(n, 'save_without_extension_refused', 'save_without_extension_error')}"
              f"; model.save('model.keras') writes a {n['save_keras_kind']} file, model.export() a "
              f"{n['export_kind']} folder\n"
              f"model.save without an extension "
              f"{_outcome(n, 'save_without_extension_refused', 'save_without_extension_error')}"
              f" ({n['no_extension_kind']} on disk); with .keras it writes a "
              f"{n['save_keras_kind']} file; the SavedModel comes from model.export() (found: "
              f"{n['export_kind']})")
    return checks, reason


# SavedModel keeps the optimizer state and the compile settings ---------------------------

def measure_savedmodel_training_state(matrix: Callable[..., Any], lab: Workbench) -> Numbers:
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


def judge_savedmodel_training_state(n: Numbers) -> Judgement:
    saved = n["tf_saved_model_save_optimizer_variables"]
    back = (n["export_optimizer_restored"] or n["tf_saved_model_load_keras_optimizer"]) and (
        n["export_compile_restored"] or n["tf_saved_model_load_compiled"])
    checks = {"model.export() stores the optimizer's variables": n["export_optimizer_variables"],
              "tf.saved_model.save() stores the optimizer's variables": saved > 0,
              "loading a SavedModel brings back the optimizer and the compile settings": back}
    reason = (f"model.export() stores no optimizer; tf.saved_model.save() stores {saved} optimizer "
              f"variables, but loading it gives {'a' if back else 'no'} Keras optimizer and "
              "compile settings\n"
              f"model.export() keeps weights (max |Δ| {n['export_weights_max_abs_diff']:.3g}) and "
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

def measure_h5_lacks_serving(matrix: Callable[..., Any], lab: Workbench) -> Numbers:
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


def judge_h5_lacks_serving(n: Numbers) -> Judgement:
    checks = {"forgekit's emulated server refuses a version folder holding the .h5 (TF Serving's "
              "loader, too, needs a saved_model.pb there)":
              n["server_loader_refuses_h5_version"],
              "tf.saved_model.load (the SavedModel loader) cannot read it":
              n["saved_model_load_refuses_h5_version"]}
    both = n["server_loader_refuses_h5_version"] and n["saved_model_load_refuses_h5_version"]
    reason = (("a version folder holding only model.h5: the server loader and "
               "tf.saved_model.load both refuse it" if both else
               "a version folder holding only model.h5 is read by a SavedModel loader")
              + f"; the same server loader serves the export\n"
              f"version folder 1/ holding model.h5: forgekit's server loader "
              f"{_outcome(n, 'server_loader_refuses_h5_version', 'server_loader_error', 'loads it')}"
              f", tf.saved_model.load "
              f"{_outcome(n, 'saved_model_load_refuses_h5_version', 'saved_model_load_error', 'loads it')}"
              f"; the same loader serves the export ({n['export_signatures']} signatures)")
    return checks, reason


# loading H5 through a SavedModel path (and the reverse) ----------------------------------

def measure_h5_savedmodel_mixup(run_matrix: Callable[..., Any], lab: Workbench) -> Numbers:
    probed = probe_kinds(lab)
    found = run_matrix({"legacy .h5": os.fspath(probed["h5_model"].path),
                        "SavedModel": os.fspath(lab.export())}, lab.build)
    works = {(row.label, cell.loader.key): bool(cell.outcome.ok)
             for row in found.rows for cell in row.cells}
    errors = {(row.label, cell.loader.key): cell.outcome.message or ""
              for row in found.rows for cell in row.cells}
    reading = {label: ", ".join(key for (a, key), ok in works.items() if a == label and ok)
               or "none" for label in ("legacy .h5", "SavedModel")}
    return {"saved_model_load_on_h5": works[("legacy .h5", "saved_model_load")],
            "load_model_on_savedmodel": works[("SavedModel", "load_model")],
            "loaders_reading_h5": sum(v for (a, _), v in works.items() if a == "legacy .h5"),
            "loaders_reading_savedmodel": sum(v for (a, _), v in works.items() if a == "SavedModel"),
            "loaders": len(found.loaders), "forgekit_surprises": len(found.surprises),
            "loaders_names": ", ".join(loader.key for loader in found.loaders),
            "h5_read_by": reading["legacy .h5"], "savedmodel_read_by": reading["SavedModel"],
            "load_model_on_h5_error": errors[("legacy .h5", "load_model")]}


def judge_h5_savedmodel_mixup(n: Numbers) -> Judgement:
    checks = {"the SavedModel loader fails on the .h5": not n["saved_model_load_on_h5"],
              "the Keras file loader fails on the SavedModel folder":
              not n["load_model_on_savedmodel"]}
    reason = (f"tf.saved_model.load on the .h5 "
              f"{'works' if n['saved_model_load_on_h5'] else 'fails'}; keras.models.load_model on "
              f"the SavedModel folder {'works' if n['load_model_on_savedmodel'] else 'fails'}\n"
              f"Of lesson 05's {n['loaders']} loaders ({n['loaders_names']}), the .h5 is read by "
              f"{n['h5_read_by']}, the SavedModel folder by {n['savedmodel_read_by']}"
              + (" (load_model refuses this .h5 for its loss='mse': lesson 10's section 2)"
                 if "keras.metrics.mse" in n.get("load_model_on_h5_error", "") else ""))
    return checks, reason


# weights-only is 5-10x smaller -----------------------------------------------------------

def measure_weights_smaller(breakdown: Callable[..., Any], lab: Workbench) -> Numbers:
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
            "optimizer_over_weights": weights.optimizer / weights.weights,
            "parameters": model.count_params(),
            "overhead_share_without_optimizer": bare.overhead / bare.total}


def judge_weights_smaller(n: Numbers) -> Judgement:
    checks = {".keras / .weights.h5 is 5-10x": _in(n["ratio"], 5, 10),
              ".keras / a weights file without optimizer is 5-10x":
              _in(n["ratio_without_optimizer"], 5, 10)}
    slots = n["optimizer_over_weights"]
    reason = (f"ratio {n['ratio']:.2f}x: " + ("the .weights.h5 holds Adam's slots too"
                                             if slots else "the .weights.h5 holds no slots")
              + f"; without them {n['ratio_without_optimizer']:.2f}x\n"
              f"ratio {n['ratio']:.2f}x, {'' if checks['.keras / .weights.h5 is 5-10x'] else 'not '}"
              "within 5-10x: " + (f"Keras 3's .weights.h5 holds the optimizer's slots too "
                                  f"({slots:.1f}x the weights)" if slots else
                                  "the .weights.h5 holds no optimizer slots")
              + f"; a weights file without them gives {n['ratio_without_optimizer']:.2f}x")
    if "parameters" in n:  # why not lesson 02's 3.00x: a small model's fixed bytes weigh more
        reason += (f". Below the 3x that weights plus Adam's two slots make, and below lesson 02's "
                   f"ratio: lesson 02 measures a 1M-parameter model, this one has "
                   f"{n['parameters']:,}, so each file's fixed bytes (HDF5 headers, the .keras "
                   f"config) weigh more: {n['overhead_share_without_optimizer']:.0%} of the bare "
                   "weights file")
    return checks, reason


# save_weights() writes a TensorFlow checkpoint -------------------------------------------

def measure_save_weights_format(detect: Callable[..., Any], lab: Workbench) -> Numbers:
    model, folder = lab.model(), lab.folder("save_weights")
    refused, error = _failed(model.save_weights, os.fspath(folder / "ckpt"))
    model.save_weights(folder / "model.weights.h5")
    return {"checkpoint_prefix_refused": refused, "checkpoint_prefix_error": error,
            "weights_kind": detect(folder / "model.weights.h5").kind}


def judge_save_weights_format(n: Numbers) -> Judgement:
    checks = {"save_weights writes a TF checkpoint": n["weights_kind"] == "tf_checkpoint",
              "save_weights accepts a checkpoint prefix": not n["checkpoint_prefix_refused"]}
    reason = (f"save_weights writes {n['weights_kind']} (Keras 3's HDF5 file); a checkpoint "
              f"prefix {_outcome(n, 'checkpoint_prefix_refused', 'checkpoint_prefix_error')}\n"
              f"save_weights('model.weights.h5') writes {n['weights_kind']}; a checkpoint-style "
              f"prefix {_outcome(n, 'checkpoint_prefix_refused', 'checkpoint_prefix_error')}")
    return checks, reason


# checkpoints hold weights only -----------------------------------------------------------

def measure_checkpoints_weights_only(matrix: Callable[..., Any], lab: Workbench) -> Numbers:
    probed = _probe(matrix, lab)
    return {f"{kind}_optimizer_restored": bool(probed[kind].optimizer_restored)
            for kind in ("weights_h5", "tf_checkpoint")} | {
            f"{kind}_weights_max_abs_diff": probed[kind].weights_max_abs_diff
            for kind in ("weights_h5", "tf_checkpoint")}


def judge_checkpoints_weights_only(n: Numbers) -> Judgement:
    checks = {".weights.h5 holds no optimizer state": not n["weights_h5_optimizer_restored"],
              "tf.train.Checkpoint holds no optimizer state":
              not n["tf_checkpoint_optimizer_restored"]}
    both = n["weights_h5_optimizer_restored"] and n["tf_checkpoint_optimizer_restored"]
    reason = ("both .weights.h5 and tf.train.Checkpoint bring back Adam's state exactly\n"
              if both else "not every checkpoint file brings back Adam's state\n")
    reason += (f"optimizer state restored exactly from .weights.h5: "
              f"{_yes(n['weights_h5_optimizer_restored'])}, from tf.train.Checkpoint: "
              f"{_yes(n['tf_checkpoint_optimizer_restored'])} (the optimizer built first)")
    return checks, reason


# JSON / YAML store the architecture ------------------------------------------------------

def measure_json_yaml(matrix: Callable[..., Any], lab: Workbench) -> Numbers:
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


def judge_json_yaml(n: Numbers) -> Judgement:
    checks = {"JSON rebuilds the architecture": n["json_architecture_restored"],
              "JSON holds no weights": n["json_weights_max_abs_diff"] > 0,
              "YAML still works": not n["to_yaml_refused"] and not n["model_from_yaml_refused"]}
    reason = (f"JSON rebuilds the architecture without weights; to_yaml "
              f"{'raises ' + n['to_yaml_error'] + ' (removed in TF 2.6)' if n['to_yaml_refused'] else 'works'}\n"
              f"JSON: architecture {_yes(n['json_architecture_restored'])}, fresh weights "
              f"(max |Δ| {n['json_weights_max_abs_diff']:.3g}) in {n['json_bytes']:,} bytes; "
              f"YAML: to_yaml {_outcome(n, 'to_yaml_refused', 'to_yaml_error')}")
    return checks, reason


# TFLite is converted from a SavedModel ---------------------------------------------------

def measure_tflite(convert: Callable[..., Any], lab: Workbench) -> Numbers:
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


def judge_tflite(n: Numbers) -> Judgement:
    exported = not n.get("litert_export_failed", True)
    checks = {"the SavedModel converts to a .tflite that answers the same":
              n["tflite_kind"] == "tflite" and n["max_abs_diff"] <= 1e-5,
              "Keras cannot save .tflite directly": n["direct_save_refused"],
              "Keras cannot export .tflite either": not exported}
    reason = (f"converting the SavedModel works (max |Δ| {n['max_abs_diff']:.2g}); "
              + ("but Keras 3 exports a .tflite itself: model.export(format='litert')\n"
                 if exported else "Keras writes none itself\n")
              + f"from_saved_model wrote {n['tflite_bytes']:,} bytes of {n['tflite_kind']}, max |Δ| "
              f"{n['max_abs_diff']:.2g} against Keras; model.save('….tflite') "
              f"{_outcome(n, 'direct_save_refused', 'direct_save_error')}")
    if "litert_export_failed" in n:
        reason += ("; but model.export(..., format='litert') writes one itself (max |Δ| "
                   f"{n['litert_export_max_abs_diff']:.2g})" if exported else
                   f"; model.export(..., format='litert') raises {n['litert_export_error']}")
    return checks, reason
