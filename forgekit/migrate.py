"""Keras 2 artifacts moved to Keras 3, and proven: what ``forgekit migrate SRC DEST`` does.

A fresh tf-keras process loads the Keras 2 SavedModel, ``.h5`` or weights + JSON and answers
probe inputs; Keras 3 rebuilds the architecture from the Keras 2 config (every translation
reported), takes the weights by layer and weight name (refusing to guess), the optimizer's
slots and step count where both sides name them, and the compile settings it resolves. The
``.keras`` is written aside, reloaded, and renamed to DEST only if it answers as Keras 2 did.
Lambda bytecode never runs unless asked; an unrebuildable SavedModel can be wrapped in TFSMLayer.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.errors import ForgekitError
from forgekit.keras_io.keras2 import (
    MigrationError,
    child_step,
    load_npz,
    read_source,
    rebuild_blocker,
)
from forgekit.measure.compare import max_abs_diff
from forgekit.measure.fresh import run_steps
from forgekit.outcome import first_line
from forgekit.table import Fields

TOLERANCE = 1e-6  # largest |Keras 2 answer - Keras 3 answer| that counts as the same model
# Keras 2 slot name -> Keras 3 slot name, per optimizer class both Kerases have
_ADAM = {"m": "momentum", "v": "velocity", "vhat": "velocity_hat"}
SLOTS = {"Adam": _ADAM, "AdamW": _ADAM, "SGD": {"m": "momentum"}, "Adagrad": {"accumulator":
         "accumulator"}, "RMSprop": {k: k for k in ("velocity", "momentum", "average_gradient")}}
# Keras 2 layer settings Keras 3 has no argument for, and the value that makes dropping them safe
KERAS2_ONLY = {"time_major": False}
FALLBACK_LOSSES = ("training (TFSMLayer is for inference; fit fails on it)",
                   "the optimizer and its state", "the layer structure (one opaque layer)",
                   "portability: the .keras file refers to the SavedModel folder by its path")


@dataclass(repr=False)
class Migration:
    """What one migration did. ``outcome``: ``proven``, ``fallback`` (inference-only TFSMLayer
    model, proven), ``differs`` (rebuilt, answers differ: DEST not written) or ``failed``."""

    source: str
    dest: str
    kind: str = ""
    outcome: str = "failed"
    max_diff: float | None = None
    mapping: list[tuple[str, str, tuple[int, ...]]] = field(default_factory=list)
    optimizer: str = "not carried: the source records no optimizer"
    optimizer_carried: bool = False
    compile: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""
    fix: str = ""
    export: str | None = None
    seconds: float = 0.0  # this migration's share: its tf-keras step plus the Keras 3 side

    @property
    def exit_code(self) -> int:
        """0 migrated and proven, 1 migrated but answers differ, 2 could not migrate."""
        return {"proven": 0, "fallback": 0, "differs": 1}.get(self.outcome, 2)

    def _rows(self) -> list[tuple[str, str]]:
        diff = f"largest difference {self.max_diff:.3g}" if self.max_diff is not None else ""
        verdict = {"proven": f"migrated and proven ({diff} <= {TOLERANCE:g})",
                   "fallback": f"inference-only TFSMLayer fallback, proven ({diff})",
                   "differs": f"rebuilt, but the answers differ ({diff}): DEST not written",
                   "failed": f"could not migrate: {self.error}"}[self.outcome]
        rows = [("source", f"{self.source} ({self.kind or 'unknown'})"), ("outcome", verdict)]
        if self.exit_code == 0:
            rows.append(("written", self.dest + (f" and {self.export}" if self.export else "")))
        rows += [("fix", self.fix)] if self.fix else []
        if self.mapping:
            values = sum(int(np.prod(s)) for _, _, s in self.mapping)
            rows.append(("weights", f"{len(self.mapping)} copied by name, {values:,} values"))
            rows += [("", f"{a} -> {b} {list(s)}") for a, b, s in self.mapping]
        rows += [("optimizer", self.optimizer)] if self.outcome != "failed" else []
        rows += [("compile", c) for c in self.compile] + [("note", n) for n in self.notes]
        return rows + [("took", f"{self.seconds:.1f} s")]

    def __str__(self) -> str:
        return str(Fields(self._rows()))

    __repr__ = __str__  # a report reads the same in a notebook cell and in print()

    def _repr_html_(self) -> str:
        return Fields(self._rows(), code={"source", "written", "fix"})._repr_html_()


# The Keras 3 side: translate the config, rebuild, pour the weights in, carry the optimizer.
def _accepted(cls: type) -> set[str] | None:
    """Constructor arguments a Keras 3 layer class takes (None: it takes any)."""
    import keras

    names = {"name", "dtype", "trainable", "autocast", "activity_regularizer", "input_shape",
             "input_dim"}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if klass in (keras.layers.Layer, object) or not any(p.kind == p.VAR_KEYWORD
                                                              for p in params):
            return names
    return None


def translate(node: Any, notes: list[str], in_layers: bool = False) -> Any:
    """A Keras 2 config in the form Keras 3's legacy deserializer rebuilds (changes in ``notes``).

    Tuples stored as ``__tuple__`` become lists, ``batch_input_shape`` moves to the InputLayer
    (``batch_shape``), a one-element BatchNormalization ``axis`` becomes an int, and settings
    Keras 3 has no argument for are dropped - only when their value is the one Keras 3 assumes.
    """
    import keras

    if isinstance(node, list):
        return [translate(v, notes, in_layers) for v in node]
    if not isinstance(node, dict):
        return node
    if node.get("class_name") == "__tuple__":
        return [translate(v, notes) for v in node["items"]]
    out = {k: translate(v, notes, k == "layers") for k, v in node.items()
           if k != "shared_object_id"}
    cfg, cls_name = out.get("config"), out.get("class_name")
    if in_layers and isinstance(cfg, dict) and isinstance(cls_name, str):
        shape = cfg.pop("batch_input_shape", None)
        if cls_name == "InputLayer" and shape is not None:
            cfg["batch_shape"] = shape
        if isinstance(cfg.get("axis"), list) and len(cfg["axis"]) == 1:
            cfg["axis"] = cfg["axis"][0]
        if cls_name == "Lambda" and isinstance(cfg.get("function"), list):  # Keras 2 bytecode
            code, defaults, closure = cfg["function"]
            cfg["function"] = {"class_name": "__lambda__",
                               "config": {"code": code, "defaults": defaults, "closure": closure}}
        cls = getattr(keras.layers, cls_name, None)
        accepted = _accepted(cls) if isinstance(cls, type) else None
        for key in sorted(set(cfg) - accepted) if accepted is not None else ():
            value = cfg.pop(key)
            if key in KERAS2_ONLY and value != KERAS2_ONLY[key]:
                raise MigrationError(f"layer {cfg.get('name')!r} sets {key}={value!r}, which "
                                     "Keras 3 cannot express", found=cls_name,
                                     expected=f"{key}={KERAS2_ONLY[key]!r}",
                                     fix="change the model in Keras 2, retrain or re-save")
            notes.append(f"{cls_name} {cfg.get('name')!r}: dropped {key}={value!r} "
                         "(no such argument in Keras 3)")
    return out


def rebuild(config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None,
            notes: list[str] | None = None, unsafe_lambda: bool = False) -> Any:
    """A Keras 3 model (fresh weights) from a Keras 2 model config, via ``keras.legacy.saving``."""
    import keras

    config = translate(dict(config), [] if notes is None else notes)
    if config["class_name"] == "Sequential":
        layers = config["config"]["layers"]
        first = layers[0]["config"] if layers else {}
        if layers and layers[0]["class_name"] != "InputLayer" and "input_shape" in first:
            layers.insert(0, {"class_name": "InputLayer",
                              "config": {"batch_shape": first.pop("input_shape")}})
    objects = {**vars(keras.layers), "Functional": keras.Model, "Model": keras.Model,
               "Sequential": keras.Sequential}  # Keras 2 configs name classes, not modules
    # Private, but Keras has no public scope: enable_unsafe_deserialization() would stay on for
    # the whole process. tests/test_migrate.py::test_lambda_needs_permission fails if it moves.
    from keras.src.saving.serialization_lib import SafeModeScope

    with SafeModeScope(not unsafe_lambda):  # unsafe only when asked: the Lambda's code runs
        return keras.legacy.saving.deserialize_keras_object(
            config, module_objects=objects, custom_objects=dict(custom_objects or {}))


def copy_weights(model: Any, names: Sequence[Sequence[Any]], arrays: Sequence[Any]
                 ) -> list[tuple[str, str, tuple[int, ...]]]:
    """Set every weight of ``model`` from the Keras 2 ``names`` ([layer, weight name, shape]) by
    layer name and weight name; refuses (MigrationError) unless they pair one to one."""
    source: dict[tuple[str, str], list[int]] = {}
    for i, (layer, name, _) in enumerate(names):
        source.setdefault((layer, name.split(":")[0].split("/")[-1]), []).append(i)
    used, pairs, problems = set(), [], []
    for layer in model.layers:
        for w in layer.weights:
            key = (layer.name, w.path.split("/")[-1])
            free = [i for i in source.get(key, []) if i not in used]
            if len(source.get(key, [])) > 1 and not problems:  # names repeat: order decides
                problems.append(f"{key[0]}/{key[1]} is not a unique name")
            if not free:
                problems.append(f"no Keras 2 weight {key[0]}/{key[1]} for {w.path}")
                continue
            i = free[0]
            if tuple(arrays[i].shape) != tuple(w.shape):
                problems.append(f"{names[i][1]} has shape {list(arrays[i].shape)}, "
                                f"{w.path} needs {list(w.shape)}")
            used.add(i)
            pairs.append((w, i))
    problems += [f"Keras 2 weight {names[i][0]}: {names[i][1]} has no place in the rebuilt "
                 "model" for i in range(len(names)) if i not in used]
    if problems:
        raise MigrationError("the weights do not pair one to one by name and shape: "
                             + "; ".join(problems[:4]) + ("; ..." if len(problems) > 4 else ""),
                             found="a mismatch", expected="the same layer and weight names",
                             fix="check the architecture JSON belongs to these weights")
    for w, i in pairs:
        w.assign(arrays[i])
    return [(names[i][1], w.path, tuple(w.shape)) for w, i in pairs]


def carry_optimizer(model: Any, training: Mapping[str, Any] | None, info: Mapping[str, Any] | None,
                    values: Sequence[Any], mapping: Sequence[tuple[str, str, Any]]
                    ) -> tuple[Any, str, bool]:
    """The Keras 3 optimizer for ``model`` and, where both sides name them, the Keras 2 slots and
    step count poured in. Returns (optimizer or None, what happened in words, carried?)."""
    import keras

    spec = (training or {}).get("optimizer_config")
    if not spec:
        return None, "not carried: the source records no optimizer", False
    cls_name = str(spec.get("class_name", "")).split(">")[-1]
    cls = getattr(keras.optimizers, cls_name, None)
    if cls is None:
        return None, f"not carried: Keras 3 has no optimizer {cls_name!r}", False
    accepted = _accepted(cls) or set()
    config = spec.get("config", {})
    optimizer = cls(**{k: v for k, v in config.items() if k in accepted})
    dropped = sorted(k for k, v in config.items() if k not in accepted and v not in (False, None))
    said = f"{cls_name}, settings kept" + (f" (Keras 2 only, dropped: {', '.join(dropped)})"
                                           if dropped else "")
    if not info:
        return optimizer, f"{said}; state not carried: tf-keras restored no optimizer", False
    slots = SLOTS.get(cls_name)
    if info.get("legacy") or slots is None:
        return optimizer, (f"{said}; state not carried: no slot mapping for "
                           f"{'a legacy ' if info.get('legacy') else ''}{cls_name}"), False
    optimizer.build(model.trainable_variables)
    by_name = {v.name: v for v in optimizer.variables}
    target = {k2.split(":")[0]: k3 for k2, k3, _ in mapping}  # d1/kernel -> d1/kernel (Keras 3)
    assigned, unknown = set(), []
    for name, value in zip(info["variables"], values, strict=True):
        if name.split(":")[0] in ("iteration", "iterations"):
            continue
        parts = name.split(":")[0].split("/")  # [Adam/]m/dense/kernel
        at = next((i for i in (0, 1) if len(parts) > i + 1 and parts[i] in slots), None)
        k3 = None if at is None else target.get("/".join(parts[at + 1:]))
        slot = None if at is None else slots[parts[at]]
        var = by_name.get(f"{k3.replace('/', '_')}_{slot}") if k3 and slot else None
        if var is None or tuple(var.shape) != tuple(value.shape):
            unknown.append(name)
            continue
        var.assign(value)
        assigned.add(var.name)
    left = [v.name for v in optimizer.variables
            if v.name not in assigned | {"iteration", "learning_rate"}]
    if unknown or left:
        fresh = cls(**{k: v for k, v in config.items() if k in accepted})
        return fresh, (f"{said}; state not carried: slots that do not pair "
                       f"({', '.join((unknown + left)[:3])})"), False
    optimizer.iterations.assign(info["iterations"])
    return optimizer, (f"{said}; {len(assigned)} slot variables and the step count "
                       f"({info['iterations']}) carried"), True


def compile_settings(training: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """The compile() arguments Keras 3 resolves from a Keras 2 training config, and notes on
    what was kept and dropped."""
    import keras

    if not training:
        return {}, ["not compiled in the source"]
    notes: list[str] = []

    def resolve(entry: Any, module: Any, what: str) -> Any:
        if isinstance(entry, list):
            items = [resolve(e, module, what) for e in entry]
            return [i for i in items if i is not None]
        if isinstance(entry, dict) and entry.get("class_name") == "MeanMetricWrapper":
            entry = entry.get("config", {}).get("fn", entry)
        try:
            obj = (module.get(entry) if isinstance(entry, str) else
                   keras.legacy.saving.deserialize_keras_object(entry, module_objects=vars(module)))
        except (ValueError, TypeError, AttributeError):
            obj = None
        if obj is None:
            notes.append(f"{what} {entry!r} dropped: Keras 3 does not resolve it")
        return entry if isinstance(entry, str) and obj is not None else obj

    args = {"loss": resolve(training.get("loss"), keras.losses, "loss")}
    if args["loss"] is None:
        args.pop("loss")
    for key in ("metrics", "weighted_metrics"):
        if training.get(key):
            args[key] = resolve(training[key], keras.metrics, key[:-1])
    if training.get("loss_weights") is not None:
        args["loss_weights"] = training["loss_weights"]
    notes.insert(0, "kept: " + ", ".join(f"{k}={v!r}" for k, v in args.items())[:200])
    return args, notes


def _custom(custom: Sequence[str]) -> dict[str, Any]:
    """``module:Name`` strings -> custom_objects, under the class name and its registered key."""
    import keras

    objects = {}
    for spec in custom:
        module, _, name = spec.partition(":")
        obj = getattr(importlib.import_module(module), name)
        objects[name] = obj
        objects[keras.saving.get_registered_name(obj)] = obj
    return objects


# The migration: prepare each job, one tf-keras process for all of them, finish each.
def _prepare(job: Mapping[str, Any], report: Migration) -> dict[str, Any]:
    """Check DEST and SRC and decide how the child loads SRC (MigrationError when it cannot)."""
    src, dest = Path(job["src"]), Path(job["dest"])
    if dest.suffix != ".keras" or dest.exists() or not dest.parent.is_dir():
        raise MigrationError("DEST must be a new .keras file in an existing folder; migrate "
                             "never overwrites", path=dest, found="something already there"
                             if dest.exists() else dest.suffix != ".keras" and "another suffix"
                             or "no such folder",
                             expected="a new *.keras path", fix="choose another DEST")
    arch = job.get("architecture")
    source = read_source(src, Path(arch) if arch else None)
    report.kind = source["kind"]
    why = rebuild_blocker(source, job.get("unsafe_lambda", False))
    savedmodel = source["info"].kind == "savedmodel"
    if why and not (job.get("fallback") and savedmodel):
        raise MigrationError(
            f"the architecture cannot be rebuilt: {why}", path=src, found=source["kind"],
            expected="a Functional or Sequential config",
            fix="fallback=True (--fallback) writes an inference-only Keras 3 model wrapping the "
                "SavedModel in keras.layers.TFSMLayer, losing " + "; ".join(FALLBACK_LOSSES)
            if savedmodel else "save it from Keras 2 as a SavedModel (model.save(dir)) and use "
                               "the TFSMLayer fallback, or rebuild the class in Keras 3")
    source["fallback"] = bool(why)
    source["mode"] = "graph" if why else source["mode"]
    return source


def migrate_many(jobs: Sequence[Mapping[str, Any]], *, timeout: float = 300) -> list[Migration]:
    """Several :func:`migrate` calls (each a dict of its arguments) with ONE tf-keras process."""
    reports = [Migration(os.fspath(job["src"]), os.fspath(job["dest"])) for job in jobs]
    sources: list[dict[str, Any] | None] = []
    steps = {}
    with tempfile.TemporaryDirectory(prefix="forgekit-migrate-") as work:
        for n, (job, report) in enumerate(zip(jobs, reports, strict=True)):
            try:
                source = _prepare(job, report)
            except ForgekitError as exc:
                report.error = f"{exc.path}: {exc.reason} (found {exc.found})"
                report.fix, source = exc.fix or "", None
            sources.append(source)
            if source is not None:
                source["out"] = Path(work) / f"job{n}"
                source["out"].mkdir()
                steps[f"job{n}"] = child_step(Path(job["src"]), source["mode"], source["out"],
                                               job.get("architecture"),
                                               job.get("keras2_modules", ()))
        outcomes = run_steps(steps, timeout=timeout) if steps else {}
        for job, report, source in zip(jobs, reports, sources, strict=True):
            if source is None:
                continue
            started, done = time.perf_counter(), outcomes[source["out"].name]
            if done.ok:
                _finish(report, job, source, source["out"], done.value)
            else:
                report.error = (f"tf-keras could not run the Keras 2 artifact "
                                f"({done.error_type}: {done.message})")
                report.fix = "name the modules that register its custom classes for tf-keras " \
                             "(keras2_modules=, --keras2-module)"
            report.seconds = done.seconds + time.perf_counter() - started
    return reports


def migrate(src: str | os.PathLike[str], dest: str | os.PathLike[str], *,
            architecture: str | os.PathLike[str] | None = None,
            export: str | os.PathLike[str] | None = None, custom: Sequence[str] = (),
            keras2_modules: Sequence[str] = (), unsafe_lambda: bool = False,
            fallback: bool = False) -> Migration:
    """Migrate one Keras 2 artifact ``src`` to the Keras 3 file ``dest`` (``.keras``), proven.

    Args:
        architecture: the JSON architecture, for a weights file or TF checkpoint ``src``.
        export: also write a SavedModel export (``model.export``) to this new folder.
        custom: Keras 3 custom classes as ``"module:Name"``.
        keras2_modules: modules tf-keras imports first (they register its custom classes).
        unsafe_lambda: rebuild Lambda layers from their stored bytecode (runs the file's code).
        fallback: when the architecture cannot be rebuilt, write an inference-only model that
            wraps the SavedModel in ``keras.layers.TFSMLayer``.
    Returns the :class:`Migration` report; ``exit_code`` is what ``forgekit migrate`` exits with.
    """
    return migrate_many([{"src": src, "dest": dest, "architecture": architecture,
                          "export": export, "custom": custom, "keras2_modules": keras2_modules,
                          "unsafe_lambda": unsafe_lambda, "fallback": fallback}])[0]


def _finish(report: Migration, job: Mapping[str, Any], source: dict[str, Any], out: Path,
            meta: Mapping[str, Any]) -> None:
    import keras

    dest = Path(job["dest"])
    aside = dest.with_name(f".{dest.stem}.migrating-{os.getpid()}.keras")
    export = Path(job.get("export") or dest.with_suffix(".export"))
    partial = export.with_name(f".{export.name}.migrating-{os.getpid()}")
    report.notes += list(meta.get("notes", []))
    xs, answers = load_npz(out / "probe.npz"), load_npz(out / "answers.npz")
    custom = _custom(job.get("custom", ()))
    try:
        if source["fallback"]:
            model = _tfsm_model(source["info"].path, meta["inputs"])
            report.optimizer = "lost: " + "; ".join(FALLBACK_LOSSES)
            report.notes.append("load it with keras.models.load_model(dest, safe_mode=False): "
                                "Keras asks for that before it opens an external SavedModel")
        else:
            model = rebuild(source["config"], custom, report.notes, job.get("unsafe_lambda", False))
            report.mapping = copy_weights(model, meta["weights"], load_npz(out / "weights.npz"))
            opt_values = load_npz(out / "optimizer.npz") if meta.get("optimizer") else []
            optimizer, report.optimizer, report.optimizer_carried = carry_optimizer(
                model, source["training"], meta.get("optimizer"), opt_values, report.mapping)
            args, report.compile = compile_settings(source["training"])
            if optimizer is not None or args:
                model.compile(optimizer=optimizer or "rmsprop", **args)
                if optimizer is None:
                    report.notes.append("compiled with the default optimizer (none recorded)")
        model.save(aside)
        # a TFSMLayer loads an external SavedModel: Keras asks for safe_mode=False to allow it
        trusted = source["fallback"] or job.get("unsafe_lambda", False)
        reloaded = keras.models.load_model(aside, custom_objects=custom, safe_mode=not trusted)
        with warnings.catch_warnings():  # a one-input Functional warns about [x] vs x
            warnings.simplefilter("ignore")
            got = reloaded(xs if len(xs) > 1 else xs[0], training=False)
        got = [got[k] for k in sorted(got)] if isinstance(got, dict) else keras.tree.flatten(got)
        report.max_diff = max_abs_diff(answers, [keras.ops.convert_to_numpy(g) for g in got])
        if report.optimizer_carried and int(reloaded.optimizer.iterations) != int(
                meta["optimizer"]["iterations"]):
            report.optimizer_carried = False
            report.optimizer += "; but the reloaded file lost it"
        if report.max_diff > job.get("tolerance", TOLERANCE):
            report.outcome = "differs"
            report.fix = "the mapping above shows which weights went where; compare layer by layer"
            return
        if job.get("export"):
            if export.exists():
                report.notes.append(f"export skipped: {export} already exists")
            elif source["fallback"]:
                report.notes.append("export skipped: the source SavedModel serves as it is")
            else:
                reloaded.export(partial, verbose=False)
                os.replace(partial, export)
                report.export = os.fspath(export)
        os.replace(aside, dest)  # only a proven model reaches DEST
        report.outcome = "fallback" if source["fallback"] else "proven"
    except ForgekitError as exc:
        report.error, report.fix = f"{exc.reason} (found {exc.found})", exc.fix or ""
    except (TypeError, ValueError, KeyError, ImportError, AttributeError) as exc:
        report.error = f"Keras 3 could not rebuild it ({type(exc).__name__}: {first_line(str(exc))})"
        report.fix = ("name its custom classes for Keras 3 (custom=['module:Name'], --custom); "
                      "a class missing here is named in the error")
    finally:  # what this call wrote aside and did not rename into place
        if aside.exists():
            aside.unlink()
        if partial.exists():
            shutil.rmtree(partial)


def _tfsm_model(folder: Path, inputs: Sequence[Sequence[Any]]) -> Any:
    """An inference-only Keras 3 model: the SavedModel's serving signature as one TFSMLayer."""
    import keras

    if len(inputs) != 1:
        raise MigrationError("TFSMLayer calls a signature with one tensor; this one takes "
                             f"{len(inputs)} inputs (keras #20813)", path=folder,
                             found=f"{len(inputs)} inputs", expected="one input",
                             fix="serve the SavedModel itself (tf.saved_model.load, TF Serving)")
    name, shape, dtype = inputs[0]
    inp = keras.Input(shape=tuple(shape[1:]), dtype=dtype, name=name)
    out = keras.layers.TFSMLayer(os.fspath(folder.resolve()), call_endpoint="serving_default",
                                 name="keras2_savedmodel")(inp)
    keys = sorted(out)
    return keras.Model(inp, out[keys[0]] if len(keys) == 1 else [out[k] for k in keys])
