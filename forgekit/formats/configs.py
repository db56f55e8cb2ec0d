"""The configs a saved model stores, and the custom objects and Lambda layers they name.

A ``.keras`` file (``config.json``), a legacy ``.h5`` (``model_config`` / ``training_config``
attributes) and a JSON architecture name every object Keras must rebuild. Built-ins carry a
``keras.*`` module; custom objects carry their own module and, when registered with
``keras.saving.register_keras_serializable(package=...)``, a ``"package>Name"`` key.
:func:`scan_file` lists them without importing the model's code (no Keras, no TensorFlow);
:mod:`forgekit.keras_io.custom_objects` resolves them against the running Keras. Lambda layers
are reported too: a Python ``lambda`` is stored as bytecode, and ``safe_mode=True`` refuses it.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgekit.formats import bounded, hdf5, keras_zip, savedmodel
from forgekit.formats.info import FormatInfo

# Packages whose objects Keras rebuilds by importing them itself: built-ins, not custom.
_KERAS_PACKAGES = ("keras", "keras_hub", "keras_cv", "keras_nlp")
STRUCTURAL = {"Functional", "Sequential", "Model"}
# Metric strings compile() resolves itself from the loss, not through a Keras namespace.
_COMPILE_ALIASES = {"acc", "accuracy", "crossentropy", "ce"}
# Config keys that hold no objects to rebuild (or, compile_config, are scanned separately).
_SKIP = {"compile_config", "build_config", "inbound_nodes", "input_layers", "output_layers"}
# The keys of a Lambda layer's config that may hold a function, as code (Keras 2 and 3).
_LAMBDA_CODE = ("function", "output_shape", "mask")


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
        return "" if self.model_class in STRUCTURAL else self.model_class

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
    """:func:`scan_config` on the configs stored in a ``.keras``, legacy ``.h5`` or JSON file,
    or in the ``keras_metadata.pb`` of a Keras 2 SavedModel folder."""
    kind, model_config, compile_config = stored_configs(path)
    if compile_config and "optimizer_config" in compile_config:  # legacy H5 training_config
        compile_config = {k: v for k, v in compile_config.items() if k != "optimizer_config"}
    scan = scan_config(model_config, compile_config)
    scan.kind = kind
    if kind == "savedmodel":  # every saved object's own config: a subclassed model has no
        seen = {layer.name for layer in scan.lambda_layers}  # layer list in the model's
        for doc in savedmodel.keras_metadata(Path(path))[1:]:
            for obj in _walk(doc, str(doc.get("name", "object")), role="layer"):
                if isinstance(obj, LambdaLayer) and obj.name not in seen:
                    seen.add(obj.name)
                    scan.lambda_layers.append(obj)
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
    if class_name == "__lambda__":  # Keras 3 stores any Python lambda so, not only a Lambda's
        yield LambdaLayer(where, where, bytecode=True)
        return
    if isinstance(class_name, str) and class_name.startswith("__"):
        return  # tensors, numpy arrays: data, not classes
    if isinstance(class_name, str):
        yield from _object(node, class_name, where, role)
        if class_name == "function":
            return  # its "config" is the function's name
        node = node.get("config")
        if not isinstance(node, Mapping):
            return
    for key, value in node.items():
        if (class_name == "Lambda" and key in _LAMBDA_CODE and isinstance(value, Mapping)
                and value.get("class_name") == "__lambda__"):
            continue  # already reported by _lambda, as this layer's
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
        if not name or (module not in (None, "builtins") and is_keras(module)):
            return
        # Keras records "builtins" as the module of every function, custom or not: a plain name
        # ("relu" or "my_loss") stays uncertain until resolve() asks Keras.
        recorded = None if module in (None, "builtins") else module
        yield CustomObject(name, "function", recorded, "function" if role == "object" else role,
                           where, certain=">" in name or recorded is not None)
        return
    if module is not None:  # Keras 3 object: the module says it all
        if is_keras(module):
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
    # Keras 2 marshals a lambda (function or output_shape) to base64 bytecode and says so in
    # *_type; Keras 3 stores it as a "__lambda__" object.
    if any(config.get(f"{key}_type") == "lambda" for key in _LAMBDA_CODE) or any(
            isinstance(config.get(key), Mapping) and config[key].get("class_name") == "__lambda__"
            for key in _LAMBDA_CODE):
        return LambdaLayer(name, where, bytecode=True)
    if isinstance(function, Mapping):
        return LambdaLayer(name, where, bytecode=False, function=str(function.get("config")))
    return LambdaLayer(name, where, bytecode=False, function=str(function))


def is_keras(module: str) -> bool:
    """The module belongs to Keras or a Keras package (its objects are built-ins)."""
    return module.split(".", 1)[0] in _KERAS_PACKAGES


def read_configs(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The stored model config and compile/training config of a ``.keras``, ``.h5`` or JSON file.

    Decided by content, with the same predicates as :func:`~forgekit.formats.detect.detect_format`; reads no weights and
    imports no TensorFlow. Raises ``ValueError`` for anything that holds no model config (a
    weights file, a SavedModel, ...) and ``OSError`` / ``zipfile.BadZipFile`` for unreadable
    bytes (callers that need a forgekit error run :func:`~forgekit.formats.detect.detect_format` first).
    """
    return stored_configs(path)[1:]


def stored_configs(
    path: str | os.PathLike[str],
) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """:func:`read_configs` with the kind holding them first: ``keras``, ``h5_model`` or
    ``json_architecture``."""
    p = Path(path)
    if p.is_dir():
        objects = savedmodel.keras_metadata(p)
        if not objects:
            raise ValueError(f"{p}: a folder without keras_metadata.pb (not a Keras 2 SavedModel)")
        root = objects[0]
        config = root.get("model_config")
        if not isinstance(config, dict):  # a subclassed model: its class and its own config
            config = {"class_name": root.get("class_name"), "config": root.get("config")}
        return "savedmodel", config, root.get("training_config")
    with bounded.open_regular(p) as f:
        head = f.read(2056)
    if keras_zip.matches(head):
        with zipfile.ZipFile(p) as zf:
            config = json.loads(bounded.zip_member(zf, "config.json", p, expected="keras"))
        return "keras", config, config.get("compile_config")
    if hdf5.matches(head):
        import h5py

        with h5py.File(p, "r") as h5:
            hdf5.check_links(h5, p)
            model_config = hdf5.attr(h5, "model_config")
            training_config = hdf5.attr(h5, "training_config")
        if model_config is None:
            raise ValueError(f"{p}: an HDF5 file without a model_config (weights only?)")
        training = None if training_config is None else json.loads(training_config)
        return "h5_model", json.loads(model_config), training
    doc = json.loads(bounded.read_text(p, encoding="utf-8-sig"))
    if not (isinstance(doc, dict) and "class_name" in doc):
        raise ValueError(f"{p}: JSON, but not a Keras model config")
    return "json_architecture", doc, doc.get("compile_config")



def annotate(info: FormatInfo) -> None:
    """Add custom objects and Lambda layers to a :class:`~forgekit.formats.info.FormatInfo`.

    Called by :func:`forgekit.detect_format` for ``keras``, ``h5_model``,
    ``json_architecture`` and a Keras 2 SavedModel (its ``keras_metadata.pb``). Fills
    ``details["custom_objects"]`` (names Keras will look up that are certainly custom),
    ``details["lambda_layers"]``, ``details["bytecode_lambdas"]`` (the names of those holding
    Python bytecode, read by :func:`forgekit.keras_io.safety.check_safe`) and matching
    warnings. Never imports the model's code or TensorFlow; a config it cannot read gives a
    "could not check" warning and ``details["code_unchecked"]`` (the safe rule then refuses
    the loaders that would deserialize it).
    """
    keras2_export = info.kind == "savedmodel" and info.keras2
    if info.kind not in ("keras", "h5_model", "json_architecture") and not keras2_export:
        return
    try:
        if info.kind == "keras" and isinstance(info.details.get("config"), Mapping):
            config = info.details["config"]
            scan = scan_config(config, config.get("compile_config"))
        else:
            scan = scan_file(info.path)
    except (OSError, ValueError, KeyError, RecursionError, zipfile.BadZipFile) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        info.details["code_unchecked"] = reason
        info.warnings.append(f"custom objects and Lambda layers: could not check ({reason})")
        return
    bytecode = [layer for layer in scan.lambda_layers if layer.bytecode]
    info.details["lambda_layers"] = [layer.describe() for layer in scan.lambda_layers]
    info.details["bytecode_lambdas"] = [layer.name for layer in bytecode]
    if keras2_export:  # tf.saved_model.load needs no custom objects: only the Lambdas matter
        if bytecode:
            info.warnings.append(
                f"{len(bytecode)} Lambda layer(s) hold Python bytecode in keras_metadata.pb "
                f"({', '.join(repr(layer.name) for layer in bytecode)}): "
                "tf_keras.models.load_model would run it; tf.saved_model.load runs only the "
                "traced graph")
        return
    certain = [obj for obj in scan.custom_objects if obj.certain]
    info.details["custom_objects"] = [
        {"name": o.name, "class_name": o.class_name, "module": o.module, "role": o.role}
        for o in certain]
    if certain:
        info.warnings.append(
            "needs custom objects at load time: " + ", ".join(o.describe() for o in certain)
            + "; import the module that registers them, or pass custom_objects=")
    if bytecode:
        info.warnings.append(
            f"{len(bytecode)} Lambda layer(s) hold Python bytecode "
            f"({', '.join(repr(layer.name) for layer in bytecode)}): safe_mode=True refuses to "
            "load them, and safe_mode=False runs code from the file")
