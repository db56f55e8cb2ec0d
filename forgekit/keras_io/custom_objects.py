"""Which custom classes and functions does a saved model need, and does this process have them?

:mod:`forgekit.formats.configs` lists what a file's config names without importing anything;
here the names are resolved against the running Keras: :func:`resolve` drops the plain names
Keras knows as built-ins (the file alone cannot tell them from unregistered custom ones),
:func:`missing` says which this process cannot find, :func:`explain_load_error` turns Keras's
error into a one-line :class:`~forgekit.errors.ForgekitError` naming them and the fix. Keras
looks custom objects up by their saved key and never imports their module, so a fresh process
that has not imported (or been given) them cannot load the file.
"""

from __future__ import annotations

import importlib.util
import os
import zipfile
from collections.abc import Mapping
from typing import Any

from forgekit.errors import ForgekitError, WrongFormatError
from forgekit.formats.configs import (  # re-exported: lessons call them from here
    STRUCTURAL,
    ConfigScan,
    CustomObject,
    LambdaLayer,  # noqa: F401
    read_configs,  # noqa: F401
    scan_config,  # noqa: F401
    scan_file,
    stored_configs,  # noqa: F401
)

# Where Keras 3 searches a plain function name ("relu", "mse") before calling it unknown.
_FUNCTION_NAMESPACES = ("activations", "losses", "metrics", "initializers", "regularizers",
                        "constraints")
_CLASS_NAMESPACES = ("layers", "models", "losses", "metrics", "optimizers", "initializers",
                     "regularizers", "constraints", "dtype_policies")


class MissingCustomObjectsError(ForgekitError, TypeError):
    """The file needs custom classes or functions this process has not registered or passed."""


class UnsafeLambdaError(ForgekitError, ValueError):
    """The file holds Python bytecode (a Lambda layer); ``safe_mode=True`` refuses to run it."""

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
    return name in STRUCTURAL or any(
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
