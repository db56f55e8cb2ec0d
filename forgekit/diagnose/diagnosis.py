"""``forgekit doctor``: one place to ask "what is wrong here?".

Without a path it reports the environment (versions, devices, memory, known-bad combinations).
With a path it diagnoses a saved model: what kind it is (by content), its layout, which Keras
wrote it and which one reads it here, optimizer state, signatures, the custom objects and Lambda
layers it needs, the traps in the path as typed (a trailing slash, a folder one level too high or
too low, a misleading extension), which loaders will work on it, and the one call that loads it.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgekit.diagnose.environment import EnvironmentReport, environment_report
from forgekit.diagnose.loaders import LOADERS
from forgekit.errors import ForgekitError
from forgekit.formats.detect import detect_format
from forgekit.formats.info import FormatInfo
from forgekit.formats.kinds import KINDS, how_to_load, keras_reads_name, keras_suffix, kind
from forgekit.outcome import first_line
from forgekit.table import Fields


def doctor(path: str | os.PathLike[str] | None = None,
           check_devices: bool = True) -> EnvironmentReport | ArtifactDiagnosis:
    """Diagnose the environment, or the saved model at ``path``. Display or ``print`` the result.

    For a path this never raises on a bad artifact: a missing, unreadable, empty or corrupt one
    gives a diagnosis whose ``ok`` is False and whose ``error`` says what and how to fix it.
    """
    if path is not None:
        return diagnose_artifact(path)
    return environment_report(check_devices=check_devices)


@dataclass(repr=False)
class ArtifactDiagnosis:
    """What :func:`doctor` found at a path. Prints as text; renders as an HTML table.

    ``path`` is the path exactly as given (a trailing slash matters to Keras). ``target`` is the
    path a loader should be given (the SavedModel above ``variables/``, a serving base's latest
    version, a checkpoint's prefix). ``works_with`` lists the loaders (keys of
    :data:`forgekit.diagnose.loaders.LOADERS`) predicted to work on ``path`` as given, ``fix`` is the one
    call that loads the artifact, ``problems`` what stops its usual loader here.
    """

    path: str
    info: FormatInfo | None = None
    error: ForgekitError | None = None
    target: str = ""
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    custom_objects: list[Any] = field(default_factory=list)  # custom_objects.CustomObject
    missing_objects: list[Any] = field(default_factory=list)
    lambda_layers: list[Any] = field(default_factory=list)  # custom_objects.LambdaLayer
    version: Any = None  # keras_versions.VersionCheck
    compile_problem: str | None = None
    works_with: list[str] = field(default_factory=list)
    fix: str = ""
    refusal: ForgekitError | None = None  # why forgekit.load refuses it before its loader runs
    target_kind: str = ""  # the kind at ``target`` when the path points next to the artifact
    subclassed: str = ""  # class name of a subclassed model stored in legacy HDF5

    @property
    def kind(self) -> str:
        """The detected kind, or ``"unreadable"`` when detection failed."""
        return self.info.kind if self.info else "unreadable"

    @property
    def ok(self) -> bool:
        """True when the artifact loads as given with its usual loader, in this process."""
        return (self.error is None and not self.problems
                and kind(self.kind).loader in self.works_with)

    @property
    def bytecode_lambdas(self) -> bool:
        """A Lambda layer stores Python bytecode (``safe_mode=True`` refuses it)."""
        return any(layer.bytecode for layer in self.lambda_layers)

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs: the report, in the order it is read."""
        if self.error is not None:
            rows = [("path", self.path), ("verdict", f"✗ {self.error.reason}")]
            if self.error.found:
                rows.append(("found", self.error.found))
            if self.error.expected:
                rows.append(("expected", self.error.expected))
            if self.error.fix:
                rows.append(("fix", self.error.fix))
            return rows
        info = self.info
        assert info is not None
        rows = [("path", self.path), ("kind", _kind_line(info)), ("layout", _layout(info))]
        if self.version is not None:
            rows.append(("keras versions", self.version.message))
        rows.append(("optimizer state", info.optimizer_text))
        if info.signatures:
            rows.append(("signatures", ", ".join(info.signatures)))
        if self.custom_objects:
            missing = {obj.name for obj in self.missing_objects}
            rows.append(("custom objects", "; ".join(
                obj.describe() + (" - not registered in this process" if obj.name in missing
                                  else " - registered here") for obj in self.custom_objects)))
        if self.lambda_layers:
            rows.append(("lambda layers", "; ".join(x.describe() for x in self.lambda_layers)))
        rows += [("note", note) for note in self.notes]
        rows += [("warning", w) for w in info.warnings if not w.startswith("needs custom")]
        if info.mismatch:
            rows.append(("warning", info.mismatch))
        rows += [("problem", p) for p in self.problems]

        calls = [LOADERS[key].name for key in self.works_with]
        rows.append(("loaders that work", ", ".join(calls) if calls else "none, as given"))
        if self.fix:
            rows.append(("load it with", self.fix))
        rows.append(("verdict", "✓ ok" if self.ok else "✗ needs the fix above"))
        return rows

    def __str__(self) -> str:
        return str(Fields(self.rows()))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return Fields(self.rows(), code=("path", "load it with", "fix"))._repr_html_()


def diagnose_artifact(path: str | os.PathLike[str]) -> ArtifactDiagnosis:
    """The artifact half of :func:`doctor` (always returns, never raises ForgekitError)."""
    raw = os.fspath(path)
    diagnosis = ArtifactDiagnosis(path=raw, target=raw)
    try:
        info = detect_format(raw)
    except ForgekitError as exc:
        diagnosis.error = exc
        return diagnosis
    except Exception as exc:  # noqa: BLE001 - doctor reports, it never shows a traceback
        diagnosis.error = ForgekitError(
            f"could not be inspected ({type(exc).__name__}: {first_line(str(exc), 160)})",
            path=raw, found="uninspectable", expected="a model artifact",
            fix=f"python -c \"import forgekit; forgekit.detect_format({raw!r})\" shows the "
                "traceback; please report it")
        return diagnosis
    diagnosis.info = info
    _path_traps(diagnosis, raw, info)
    _config_checks(diagnosis, info)
    from forgekit.keras_io.keras_versions import compare

    if info.keras_version:
        diagnosis.version = compare(info.keras_version)
        if not diagnosis.version.ok:
            diagnosis.problems.append(diagnosis.version.message)

    _preflight(diagnosis, info)
    diagnosis.works_with = [key for key, loader in LOADERS.items() if loader.works(diagnosis)]
    diagnosis.fix = _fix(diagnosis)
    primary = KINDS[info.kind].loader
    if info.kind == "unknown":
        diagnosis.problems.append("the content matches no model format forgekit knows")
    elif primary and primary not in diagnosis.works_with and not diagnosis.problems:
        diagnosis.problems.append(f"{LOADERS[primary].name} will fail on this path as given")
    return diagnosis


def _preflight(d: ArtifactDiagnosis, info: FormatInfo) -> None:
    """What forgekit.load checks before its loader runs (the same function): doctor's verdict
    is never ok for a file that load refuses, or that its loader cannot open without dying."""
    from forgekit.keras_io.custom_objects import UnsafeLambdaError
    from forgekit.keras_io.safety import preflight

    loader = KINDS[info.kind].loader
    if loader is None:
        return
    try:
        preflight(info, loader)
    except UnsafeLambdaError as exc:  # _config_checks names the Lambda layers already
        d.refusal = exc
        if not d.bytecode_lambdas:
            d.problems.append(exc.reason)
    except ForgekitError as exc:
        d.refusal = exc
        d.problems.append(exc.reason)


def _path_traps(d: ArtifactDiagnosis, raw: str, info: FormatInfo) -> None:
    """Notes and a corrected target for paths that name the right thing the wrong way."""
    p = Path(raw)
    if raw.endswith(("/", os.sep)) and p.is_file():
        d.notes.append(f"the path ends with a slash: Keras picks its reader from the path text, "
                       f"and {raw!r} does not end with the file's extension; drop the slash")
    if p.is_dir() and p.name == "variables" and (p.parent / "saved_model.pb").is_file():
        d.notes.append("this is the variables/ folder inside a SavedModel: one level too low; "
                       f"load the folder above, {os.fspath(p.parent)!r}")
        d.target, d.target_kind = os.fspath(p.parent), "savedmodel"
        return
    if info.kind == "serving_base":
        latest = info.details.get("load_path")
        d.notes.append("a TF Serving base folder (numbered versions): one level too high for a "
                       "loader" + (f"; the latest version is {latest!r}" if latest else ""))
        d.target = latest or raw
    elif info.kind == "tf_checkpoint" or p.name == "saved_model.pb":
        prefix = info.details.get("prefix") or os.fspath(info.load_path)
        if p.name == "saved_model.pb":
            prefix = os.fspath(p.parent)
        if os.path.normpath(raw) != os.path.normpath(prefix):
            d.notes.append(f"loaders need {prefix!r}, not {raw!r}"
                           + (" (the checkpoint prefix, not the folder or one of its files)"
                              if info.kind == "tf_checkpoint" else ""))
        d.target = prefix
    elif p.is_file() or raw.endswith(("/", os.sep)):
        d.target = os.fspath(p)  # pathlib drops the trailing slash


def _config_checks(d: ArtifactDiagnosis, info: FormatInfo) -> None:
    """Custom objects, Lambda layers and the stored compile config (needs Keras imported)."""
    from forgekit.keras_io import custom_objects as co

    if info.kind == "savedmodel" and info.keras2:  # only the Lambdas: tf-keras would run them
        try:
            d.lambda_layers = co.scan_file(info.path).lambda_layers
        except (OSError, ValueError, KeyError, RecursionError) as exc:
            d.notes.append(f"Lambda layers in keras_metadata.pb: could not check "
                           f"({type(exc).__name__}: {first_line(str(exc), 160)})")
        if d.bytecode_lambdas:
            d.notes.append("tf.saved_model.load runs the traced graph, not the Lambda's Python; "
                           "tf_keras.models.load_model would run the bytecode (forgekit.load "
                           "refuses it without safe_mode=False)")
        return
    if not KINDS[info.kind].stores_config:
        return

    try:
        scan = co.scan_file(info.path)
    except (OSError, ValueError, KeyError, RecursionError, zipfile.BadZipFile) as exc:
        d.notes.append(f"custom objects, Lambda layers and compile config: could not check "
                       f"({type(exc).__name__}: {first_line(str(exc), 160)})")
        return
    d.lambda_layers = scan.lambda_layers
    if scan.custom_objects:
        d.custom_objects = co.resolve(scan)
        d.missing_objects = co.missing(scan)
    if d.missing_objects:
        d.problems.append("custom objects not registered in this process: "
                          + ", ".join(obj.name for obj in d.missing_objects))
    if d.bytecode_lambdas:
        d.problems.append("Lambda bytecode: keras.models.load_model refuses it under its default "
                          "safe_mode=True (loading would run code stored in the file)")
    if info.kind == "h5_model":
        d.subclassed = scan.subclassed
        if d.subclassed:
            d.problems.append(f"{co.subclassed_h5_reason(d.subclassed)}; build it in code and "
                              "use model.load_weights, or save it as .keras")
        if not d.missing_objects:  # with custom objects missing it would only fail on them again
            d.compile_problem, unchecked = _legacy_compile_problem(co.read_configs(info.path)[1])
            if unchecked:
                d.notes.append(f"the stored compile config: could not check ({unchecked})")
        if d.compile_problem:
            d.notes.append(f"the stored compile config does not deserialize here "
                           f"({d.compile_problem}): load with compile=False, then compile again")


def _legacy_compile_problem(config: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """Dry-run a legacy H5 ``training_config`` the way ``load_model`` will (no weights read).

    Keras 3's legacy reader rebuilds the loss and metrics from ``training_config`` with its
    own helper; some strings Keras 2 and Keras 3 both write (``"mse"``) fail there. Returns
    ``(problem, unchecked)``: the error's first line (None when it deserializes), and why the
    dry run could not be made (None when it was).
    """
    if config is None:
        return None, None
    helper = "keras.src.legacy.saving.saving_utils.compile_args_from_training_config"
    try:  # a private helper: another Keras may have moved it
        from keras.src.legacy.saving.saving_utils import compile_args_from_training_config
    except ImportError as exc:
        return None, f"this Keras has no {helper} ({first_line(str(exc), 120)})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile_args_from_training_config(config)
    except Exception as exc:  # whatever Keras raises is what load_model would raise
        return f"{type(exc).__name__}: {first_line(str(exc), 160)}", None
    return None, None


def _fix(d: ArtifactDiagnosis) -> str:
    """The one call that loads the artifact, for its kind and the problems found."""
    info = d.info
    assert info is not None
    target, kind = d.target, d.target_kind or info.kind
    name = Path(target).name
    if d.refusal is not None and not d.bytecode_lambdas and d.refusal.fix:
        return d.refusal.fix
    if kind in ("keras", "h5_model") and d.bytecode_lambdas:
        return (f"model.load_weights({target!r})  # into the architecture rebuilt in code; "
                f"keras.models.load_model({target!r}, safe_mode=False) only for a file you trust")
    if kind == "h5_model" and d.subclassed:
        return (f"model.load_weights({target!r})  # model = {d.subclassed}(...) built in code "
                "and called once on data")
    if kind in ("keras", "h5_model"):
        extra = ", compile=False" if d.compile_problem else ""
        call = f"keras.models.load_model({target!r}{extra})"
        if not keras_reads_name(name, kind):
            call = f"forgekit.load({target!r}{extra})  # or rename it to *{keras_suffix(kind)}"
    elif kind == "json_architecture":
        module = "tf_keras" if info.keras2 else "keras"
        call = f"{module}.models.model_from_json(open({target!r}).read())"
    elif kind == "weights_h5" and not keras_reads_name(name, kind, info.keras2, weights=True):
        return f"forgekit.load({target!r}, model=model)  # or rename it"
    elif kind == "tf_checkpoint":  # the assertion is what tells a restore matched nothing
        objects = "model=model, optimizer=model.optimizer" if info.has_optimizer else "model=model"
        return (f"tf.train.Checkpoint({objects}).restore({target!r})"
                ".assert_existing_objects_matched()")
    else:
        return how_to_load("savedmodel" if kind == "serving_base" else kind, target)
    if d.missing_objects:
        from forgekit.keras_io.custom_objects import fix_for

        return fix_for(d.missing_objects, call)
    return call


def _kind_line(info: FormatInfo) -> str:
    writer = info.details.get("writer")
    text = f"{info.kind} ({kind(info.kind).label})"
    return f"{text}, written by {writer}" if writer else text


def _layout(info: FormatInfo) -> str:
    d = info.details
    size = f"{info.size_bytes:,} bytes"
    if "zip_entries" in d:
        return f"zip of {', '.join(d['zip_entries'])}; {size}"
    if "groups" in d:
        return f"HDF5 groups {', '.join(d['groups'])}; {size}"
    if info.kind == "tf_checkpoint":
        return f"prefix {Path(d['prefix']).name}: .index + {d.get('shards', '?')} data shard(s); {size}"
    if info.kind == "serving_base":
        return f"versions {d.get('versions')} (servable {d.get('servable_versions')}); {size}"
    if "entries" in d:
        return f"folder with {', '.join(d['entries'])}; {size}"
    return size
