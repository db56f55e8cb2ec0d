"""Which custom classes and functions does a saved model need? Read from its config, never run.

A ``.keras`` file (``config.json``), a legacy ``.h5`` (``model_config`` / ``training_config``
attributes) and a JSON architecture name every object Keras must rebuild. Built-ins carry a
``keras.*`` module; custom objects carry their own module and, when registered with
``keras.saving.register_keras_serializable(package=...)``, a ``"package>Name"`` key. Keras looks
custom objects up by that key and never imports their module, so a fresh process that has not
imported (or been given) them cannot load the file.

:func:`scan_file` lists them without importing the model's code (no TensorFlow either);
:func:`resolve` (imports Keras) drops the plain names Keras knows as built-ins, which the file
alone cannot tell apart from unregistered custom ones; :func:`missing` says which of them this
process cannot find; :func:`explain_load_error` turns Keras's error into a one-line
:class:`~forgekit.errors.ForgekitError` naming them and the fix. Lambda layers are reported too:
a Python ``lambda`` is stored as bytecode, and ``safe_mode=True`` refuses to run it.
"""

from __future__ import annotations

import importlib.util
import os
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from forgekit.artifacts.detect import (  # read_configs re-exported: lessons call it from here
    FormatInfo,
    read_configs,  # noqa: F401
    stored_configs,
)
from forgekit.errors import ForgekitError, WrongFormatError

# Packages whose objects Keras rebuilds by importing them itself: built-ins, not custom.
_KERAS_PACKAGES = ("keras", "keras_hub", "keras_cv", "keras_nlp")
# Where Keras 3 searches a plain function name ("relu", "mse") before calling it unknown.
_FUNCTION_NAMESPACES = ("activations", "losses", "metrics", "initializers", "regularizers",
                        "constraints")
_CLASS_NAMESPACES = ("layers", "models", "losses", "metrics", "optimizers", "initializers",
                     "regularizers", "constraints", "dtype_policies")
_STRUCTURAL = {"Functional", "Sequential", "Model"}
# Metric strings compile() resolves itself from the loss, not through a Keras namespace.
_COMPILE_ALIASES = {"acc", "accuracy", "crossentropy", "ce"}
# Config keys that hold no objects to rebuild (or, compile_config, are scanned separately).
_SKIP = {"compile_config", "build_config", "inbound_nodes", "input_layers", "output_layers"}


class MissingCustomObjectsError(ForgekitError, TypeError):
    """The file needs custom classes or functions this process has not registered or passed."""


class UnsafeLambdaError(ForgekitError, ValueError):
    """The file holds Python bytecode (a Lambda layer); ``safe_mode=True`` refuses to run it."""


@dataclass(frozen=True)
class CustomObject:
    """One custom class or function a saved config refers to.

    ``name`` is the key Keras looks up at load time (``"forgekit>Scale"`` when registered,
    ``"Scale"`` when not). ``module`` is where the class was defined when saved, ``None`` when
    the file does not record it (functions, legacy H5). ``certain`` is False for a plain name
    that may also be a Keras built-in; :func:`resolve` decides those.
    """

    name: str
    class_name: str
    module: str | None
    role: str  # model, layer, loss, metric, optimizer, function, object
    where: str  # where in the config, e.g. "compile_config.loss"
    certain: bool = True

    @property
    def registered(self) -> bool:
        """Saved under a registered ``"package>Name"`` key."""
        return ">" in self.name

    def describe(self) -> str:
        """One line: name, role and module, e.g. ``forgekit>Scale (layer, forgekit.zoo.m)``."""
        module = f", {self.module}" if self.module and self.module != "builtins" else ""
        return f"{self.name} ({self.role}{module})"


@dataclass(frozen=True)
class LambdaLayer:
    """A Lambda layer: ``bytecode`` when its function is a Python lambda stored as code."""

    name: str
    where: str
    bytecode: bool
    function: str | None = None  # the function's name when it is a named function

    def describe(self) -> str:
        """One line: the layer's name and what its function is."""
        what = "Python lambda stored as bytecode" if self.bytecode else f"function {self.function!r}"
        return f"Lambda layer {self.name!r} ({what})"


@dataclass
class ConfigScan:
    """Everything :func:`scan_config` found: custom objects (unique by name) and Lambda layers.

    ``model_class`` is the saved model's class name (``"Functional"``, or a subclass's name);
    ``kind`` the artifact kind the configs came from (set by :func:`scan_file`).
    """

    custom_objects: list[CustomObject] = field(default_factory=list)
    lambda_layers: list[LambdaLayer] = field(default_factory=list)
    model_class: str = ""
    kind: str = ""

    @property
    def subclassed(self) -> str:
        """The class name of a subclassed model, ``""`` for Functional / Sequential."""
        return "" if self.model_class in _STRUCTURAL else self.model_class

    @property
    def names(self) -> list[str]:
        """The names Keras looks the custom objects up by."""
        return [obj.name for obj in self.custom_objects]

    @property
    def has_bytecode(self) -> bool:
        """At least one Lambda layer stores a Python lambda as bytecode."""
        return any(layer.bytecode for layer in self.lambda_layers)


# --------------------------------------------------------------------------------------------
# scanning


def scan_config(model_config: Mapping[str, Any],
                compile_config: Mapping[str, Any] | None = None) -> ConfigScan:
    """Custom objects and Lambda layers named by a model config (pure: reads dicts only).

    Handles Keras 3 configs (``module`` + ``registered_name`` on every object) and legacy ones
    written by Keras 2 or by Keras 3's H5 writer (``class_name`` only; registered objects as
    ``"package>Name"``). In a legacy H5 ``training_config`` only losses and metrics are scanned:
    its optimizer entries use names Keras maps itself.
    """
    scan = ConfigScan(model_class=str(model_config.get("class_name", "")).split(">")[-1])
    seen: set[str] = set()
    for obj in _walk(model_config, "config", role="model"):
        if isinstance(obj, LambdaLayer):
            scan.lambda_layers.append(obj)
        elif obj.name not in seen:
            seen.add(obj.name)
            scan.custom_objects.append(obj)
    if isinstance(compile_config, Mapping):
        for key in ("loss", "metrics", "weighted_metrics", "optimizer"):
            role = {"metrics": "metric", "weighted_metrics": "metric"}.get(key, key)
            for obj in _walk(compile_config.get(key), f"compile_config.{key}", role=role):
                if isinstance(obj, CustomObject) and obj.name not in seen:
                    seen.add(obj.name)
                    scan.custom_objects.append(obj)
    return scan


def scan_file(path: str | os.PathLike[str]) -> ConfigScan:
    """:func:`scan_config` on the configs stored in a ``.keras``, legacy ``.h5`` or JSON file."""
    kind, model_config, compile_config = stored_configs(path)
    if compile_config and "optimizer_config" in compile_config:  # legacy H5 training_config
        compile_config = {k: v for k, v in compile_config.items() if k != "optimizer_config"}
    scan = scan_config(model_config, compile_config)
    scan.kind = kind
    return scan


def _walk(node: Any, where: str, role: str) -> Iterator[CustomObject | LambdaLayer]:
    """Yield the custom objects and Lambda layers in a config tree, depth first."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk(item, f"{where}[{i}]", role)
        return
    if isinstance(node, str) and role in ("loss", "metric"):
        # a loss or metric given by name: "mse", or in legacy H5 "package>name" / "my_loss"
        if node not in _COMPILE_ALIASES:
            yield CustomObject(node, "function", None, role, where, certain=">" in node)
        return
    if not isinstance(node, Mapping):
        return
    class_name = node.get("class_name")
    if isinstance(class_name, str) and class_name.startswith("__"):
        return  # tensors, lambdas' bytecode, numpy arrays: data, not classes
    if isinstance(class_name, str):
        yield from _object(node, class_name, where, role)
        if class_name == "function":
            return  # its "config" is the function's name
        node = node.get("config")
        if not isinstance(node, Mapping):
            return
    for key, value in node.items():
        if key not in _SKIP and isinstance(value, Mapping | list):
            yield from _walk(value, f"{where}.{key}", "layer" if key == "layers" else "object")


def _object(node: Mapping[str, Any], class_name: str, where: str,
            role: str) -> Iterator[CustomObject | LambdaLayer]:
    module = node.get("module")
    config = node.get("config")
    if class_name == "Lambda" and isinstance(config, Mapping):
        yield _lambda(config, where)
    if class_name == "function":  # Keras 3 function: the name looked up is its "config"
        name = config if isinstance(config, str) else ""
        if not name or (module not in (None, "builtins") and _is_keras(module)):
            return
        # Keras records "builtins" as the module of every function, custom or not: a plain name
        # ("relu" or "my_loss") stays uncertain until resolve() asks Keras.
        recorded = None if module in (None, "builtins") else module
        yield CustomObject(name, "function", recorded, "function" if role == "object" else role,
                           where, certain=">" in name or recorded is not None)
        return
    if module is not None:  # Keras 3 object: the module says it all
        if _is_keras(module):
            return
        name = node.get("registered_name") or class_name
        yield CustomObject(name, class_name, module, role, where)
        return
    # legacy config: a class name only; "package>Name" is registered, a plain name may be built-in
    yield CustomObject(class_name, class_name.split(">")[-1], None, role, where,
                       certain=">" in class_name)


def _lambda(config: Mapping[str, Any], where: str) -> LambdaLayer:
    function = config.get("function")
    name = str(config.get("name", "lambda"))
    if config.get("function_type") == "lambda":  # Keras 2: marshalled code, base64
        return LambdaLayer(name, where, bytecode=True)
    if isinstance(function, Mapping) and function.get("class_name") == "__lambda__":
        return LambdaLayer(name, where, bytecode=True)
    if isinstance(function, Mapping):
        return LambdaLayer(name, where, bytecode=False, function=str(function.get("config")))
    return LambdaLayer(name, where, bytecode=False, function=str(function))


def _is_keras(module: str) -> bool:
    return module.split(".", 1)[0] in _KERAS_PACKAGES


# --------------------------------------------------------------------------------------------
# resolving against the running Keras


def keras_knows(name: str, class_name: str) -> bool:
    """Does the installed Keras 3 resolve this plain name as a built-in? (imports Keras)"""
    import keras

    if class_name == "function":
        for namespace in _FUNCTION_NAMESPACES:
            getter = getattr(getattr(keras, namespace), "get", None)
            try:
                if getter is not None and getter(name) is not None:
                    return True
            except (ValueError, TypeError):
                continue
        return False
    return name in _STRUCTURAL or any(
        hasattr(getattr(keras, namespace, None), name) for namespace in _CLASS_NAMESPACES)


def resolve(scan: ConfigScan) -> list[CustomObject]:
    """The exact custom objects: uncertain plain names that Keras knows as built-ins dropped."""
    return [obj for obj in scan.custom_objects
            if obj.certain or not keras_knows(obj.name, obj.class_name)]


def missing(scan: ConfigScan, custom_objects: Mapping[str, Any] | None = None
            ) -> list[CustomObject]:
    """The custom objects this process cannot resolve: neither registered, nor in scope, nor in
    ``custom_objects`` (the argument you would pass to ``load_model``). Imports Keras."""
    import keras

    return [obj for obj in resolve(scan)
            if keras.saving.get_registered_object(obj.name, custom_objects=custom_objects)
            is None]


def fix_for(needed: list[CustomObject], call: str = "keras.models.load_model(path)") -> str:
    """The one-line fix for missing custom objects: import what registers them, else pass them.

    Importing a module a registered object was saved from registers it again. A registered
    function records no module; it is assumed to come with the modules of its package's other
    objects. Everything else must be passed as ``custom_objects``, keyed by the saved name.
    """
    modules = list(dict.fromkeys(o.module for o in needed
                                 if o.registered and o.module and _module_exists(o.module)))
    packages = {o.name.split(">")[0] for o in needed if o.registered and o.module in modules}

    def covered(obj: CustomObject) -> bool:
        return obj.registered and (obj.module in modules or (
            obj.module is None and obj.name.split(">")[0] in packages))

    passed = [o for o in needed if not covered(o)]
    parts = [f"import {module}" for module in modules]
    if passed:
        parts += sorted({f"from {o.module} import {o.class_name}" for o in passed
                         if o.module and _module_exists(o.module)})
        entries = ", ".join(f"{o.name!r}: {_python_name(o)}" for o in passed)
        opened = call[:-1] if call.endswith(")") else call + "("
        sep = "" if opened.endswith("(") else ", "
        parts.append(f"{opened}{sep}custom_objects={{{entries}}})")
    else:
        parts.append(call)
    text = "; ".join(parts)
    unknown = [o.name for o in passed if not (o.module and _module_exists(o.module))]
    if unknown:
        text += (f"  # the file does not say where {', '.join(unknown)} "
                 f"{'is' if len(unknown) == 1 else 'are'} defined: import or define "
                 f"{'it' if len(unknown) == 1 else 'them'} first")
    return text


def _python_name(obj: CustomObject) -> str:
    return obj.name.split(">")[-1] if obj.class_name == "function" else obj.class_name


def _module_exists(module: str) -> bool:
    if module == "__main__":  # defined in a notebook or script: not importable elsewhere
        return False
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def subclassed_h5_reason(class_name: str) -> str:
    """Why Keras 3 cannot reload a subclassed model from legacy HDF5 (one sentence)."""
    return (f"a subclassed model ({class_name}) in legacy HDF5: Keras 3 rebuilds the class but "
            "finds no built layers to pour the saved weights into")


def explain_load_error(path: str | os.PathLike[str], exc: BaseException,
                       custom_objects: Mapping[str, Any] | None = None
                       ) -> ForgekitError | None:
    """A one-line forgekit error for a load that failed on custom objects or Lambda layers.

    Also recognises a subclassed model stored in legacy HDF5, which Keras 3 cannot reload
    whatever the custom objects. Returns ``None`` when the file's config does not explain
    ``exc``, so the caller re-raises the original.
    """
    try:
        scan = scan_file(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    # "path": the message names it already
    call = ("keras.models.model_from_json(open(path).read())"
            if scan.kind == "json_architecture" else "keras.models.load_model(path)")
    top = scan.subclassed
    if scan.kind == "h5_model" and top:
        return WrongFormatError(
            subclassed_h5_reason(top),
            path=path, found=f"h5_model (subclassed {top})",
            expected="a Functional or Sequential model in .h5, or any model in .keras",
            fix=f"model = {top}(...); model(sample_batch); model.load_weights({os.fspath(path)!r})"
                "; save it as .keras from then on")
    lacking = missing(scan, custom_objects)
    if lacking:
        # names only: the one-line message must fit; modules appear in the fix
        return MissingCustomObjectsError(
            f"needs custom objects this process has not registered: "
            f"{', '.join(obj.name for obj in lacking)}",
            path=path, found=scan.kind,
            expected="them registered or passed", fix=fix_for(lacking, call))
    if scan.has_bytecode and "safe_mode" in str(exc):
        layers = ", ".join(repr(layer.name) for layer in scan.lambda_layers if layer.bytecode)
        return UnsafeLambdaError(
            f"Lambda layer(s) {layers} hold Python bytecode, and loading would run it; "
            "safe_mode=True refuses code from a file",
            path=path, found="Lambda bytecode", expected="a model without Python lambdas",
            fix="only for a file you trust: keras.models.load_model(path, safe_mode=False); "
                "better: replace the lambda by a registered custom layer and save again")
    return None


# --------------------------------------------------------------------------------------------
# detect_format hook


def annotate(info: FormatInfo) -> None:
    """Add custom objects and Lambda layers to a :class:`~forgekit.artifacts.detect.FormatInfo`.

    Called by :func:`forgekit.detect_format` for ``keras``, ``h5_model`` and
    ``json_architecture``. Fills ``details["custom_objects"]`` (names Keras will look up that
    are certainly custom), ``details["lambda_layers"]`` and matching warnings. Never imports the
    model's code or TensorFlow; a config it cannot read is left alone (detection owns errors).
    """
    if info.kind not in ("keras", "h5_model", "json_architecture"):
        return
    try:
        if info.kind == "keras" and isinstance(info.details.get("config"), Mapping):
            config = info.details["config"]
            scan = scan_config(config, config.get("compile_config"))
        else:
            scan = scan_file(info.path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return
    certain = [obj for obj in scan.custom_objects if obj.certain]
    info.details["custom_objects"] = [
        {"name": o.name, "class_name": o.class_name, "module": o.module, "role": o.role}
        for o in certain]
    info.details["lambda_layers"] = [layer.describe() for layer in scan.lambda_layers]
    if certain:
        info.warnings.append(
            "needs custom objects at load time: " + ", ".join(o.describe() for o in certain)
            + "; import the module that registers them, or pass custom_objects=")
    bytecode = [layer for layer in scan.lambda_layers if layer.bytecode]
    if bytecode:
        info.warnings.append(
            f"{len(bytecode)} Lambda layer(s) hold Python bytecode "
            f"({', '.join(repr(layer.name) for layer in bytecode)}): safe_mode=True refuses to "
            "load them, and safe_mode=False runs code from the file")
