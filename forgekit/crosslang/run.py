"""Run the built C and Java loaders on a SavedModel and read their answers back.

The tensor names the loaders need (``serving_default_input:0``, ``StatefulPartitionedCall:0``)
are read from the SavedModel's signature, the same table ``saved_model_cli show`` prints. The
batch goes to the program as text with 9 significant digits, which carries every float32
exactly, and comes back the same way, so a difference measured afterwards is the program's,
not the text's. Each program runs as a separate process; its peak RSS is read from the kernel
(``wait4`` in a small launcher), exactly, for that process alone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forgekit.crosslang.builder import Build
from forgekit.errors import ForgekitError, WrongFormatError
from forgekit.quiet import child_env

# TensorFlow's own log lines (glog/absl prefixes) are noise around the loader's message.
_LOG_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl|To enable the "
                       r"following instructions)")


# Runs the loader as its grandchild and reports that process's peak RSS. A child forked from
# this Python process would not do: Linux carries the RSS high-water mark of the memory a
# child had before exec (a copy of a kernel with TensorFlow loaded) into its ru_maxrss.
_RSS_SHIM = """import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""
LANGUAGE = {"c": "C", "java": "Java"}


class LoaderError(ForgekitError, RuntimeError):
    """A C/Java loader process failed; the message carries what the program printed, whole."""


@dataclass(frozen=True)
class TensorInfo:
    """One entry of a signature: the graph tensor a non-Python caller feeds or fetches."""

    key: str  # the name Python callers use (signature keyword / output dict key)
    name: str  # the graph tensor, "op:index", what the C API looks up
    dtype: str
    shape: tuple[int, ...]  # -1 for an unknown dimension


@dataclass(frozen=True)
class SignatureTensors:
    """A SavedModel signature's inputs and outputs, keyed like Python sees them."""

    path: Path
    signature: str
    tag: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]

    @property
    def input_name(self) -> str:
        """The graph name of the only input (the loaders feed one float32 tensor)."""
        if len(self.inputs) != 1:
            raise WrongFormatError(
                f"signature {self.signature!r} has {len(self.inputs)} inputs; the loaders feed one",
                path=self.path, found=f"{len(self.inputs)} inputs", expected="1 input",
                fix="pass input_name= explicitly, or export a model with one input")
        return next(iter(self.inputs.values())).name

    @property
    def output_names(self) -> list[str]:
        """Graph names of every output, in the signature's (sorted) key order."""
        return [info.name for info in self.outputs.values()]

    def key_of(self, tensor_name: str) -> str | None:
        """The output key whose graph tensor is ``tensor_name`` (None if no output is)."""
        return next((k for k, v in self.outputs.items() if v.name == tensor_name), None)


def signature_tensors(export_dir: str | os.PathLike[str], signature: str = "serving_default",
                      tag: str = "serve") -> SignatureTensors:
    """Read ``signature``'s input and output tensor names from ``saved_model.pb``.

    Raises :class:`~forgekit.errors.WrongFormatError` when the path is not a SavedModel (naming
    what it is) or has no such tag or signature (naming those it has).
    """
    from forgekit import detect_format

    path = Path(export_dir)
    info = detect_format(path)
    if info.kind != "savedmodel":
        raise WrongFormatError(
            "the C and Java loaders read SavedModel folders only", path=path, found=info.kind,
            expected="savedmodel", fix=f"model.export({os.fspath(path)!r}) from Keras, then "
            "pass that folder")
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((info.load_path / "saved_model.pb").read_bytes())
    graphs = [g for g in proto.meta_graphs if tag in g.meta_info_def.tags]
    if not graphs:
        tags = sorted({t for g in proto.meta_graphs for t in g.meta_info_def.tags})
        raise WrongFormatError(f"no MetaGraph tagged {tag!r}", path=path, found=f"tags {tags}",
                               expected=f"tag {tag!r}", fix=f"pass tag={tags[0]!r}" if tags else None)
    defs = graphs[0].signature_def
    if signature not in defs:
        raise WrongFormatError(f"no signature {signature!r}", path=path,
                               found=f"signatures {sorted(defs)}", expected=repr(signature),
                               fix=f"pass signature={sorted(defs)[0]!r}" if defs else None)
    import tensorflow as tf

    def table(entries: Any) -> dict[str, TensorInfo]:
        return {key: TensorInfo(key, t.name, tf.dtypes.as_dtype(t.dtype).name,
                                tuple(d.size for d in t.tensor_shape.dim))
                for key, t in sorted(entries.items())}

    sig = defs[signature]
    return SignatureTensors(path, signature, tag, table(sig.inputs), table(sig.outputs))


def signature_call(export_dir: str | os.PathLike[str], x: np.ndarray,
                   signature: str = "serving_default") -> dict[str, np.ndarray]:
    """Python's answer: ``tf.saved_model.load(...).signatures[signature](key=x)``, by output key."""
    import tensorflow as tf

    fn = tf.saved_model.load(os.fspath(export_dir)).signatures[signature]
    (key,) = fn.structured_input_signature[1]
    return {k: v.numpy() for k, v in fn(**{key: tf.constant(x)}).items()}


@dataclass
class LoaderRun:
    """What one loader process did: its answers, exit status, time and memory."""

    language: str
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float  # wall time of the whole process (start-up, load, run, print)
    peak_rss_mb: float  # the process's own high-water mark (ru_maxrss)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # by graph tensor name
    timing: dict[str, float] = field(default_factory=dict)  # the program's own clock, in ms

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def error(self) -> str:
        """The program's error message, whole, without TensorFlow's log lines around it."""
        lines = [ln for ln in self.stderr.splitlines()
                 if not _LOG_LINE.match(ln) and not ln.startswith("timing ")]
        text = "\n".join(lines).strip()
        start = text.find("error:")
        return text[start:] if start >= 0 else text

    def __str__(self) -> str:
        status = "ok" if self.ok else f"exit {self.returncode}"
        return (f"{LANGUAGE[self.language]} loader: {status}, {self.seconds:.2f} s, "
                f"peak RSS {self.peak_rss_mb:.0f} MiB")


def write_batch(x: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """The loaders' input file: the shape on the first line, then one row per line (%.9g)."""
    x = np.asarray(x, dtype=np.float32)
    rows = x.reshape(x.shape[0], -1) if x.ndim > 1 else x[None]
    body = "\n".join(" ".join(f"{v:.9g}" for v in row) for row in rows)
    Path(path).write_text(" ".join(map(str, x.shape)) + "\n" + body + "\n")
    return Path(path)


def parse_outputs(text: str) -> dict[str, np.ndarray]:
    """Read the loaders' output text: ``# NAME shape D0 D1 ...`` then the values."""
    outputs: dict[str, np.ndarray] = {}
    blocks = re.split(r"^# ", text, flags=re.M)
    for block in blocks[1:]:
        header, _, body = block.partition("\n")
        name, _, dims = header.partition(" shape")
        shape = tuple(int(d) for d in dims.split())
        values = np.array(body.split(), dtype=np.float32)
        outputs[name] = values.reshape(shape)
    return outputs


def _run(language: str, argv: list[str], cwd: Path,
         extra_env: dict[str, str] | None = None) -> LoaderRun:
    env = {**child_env(), **(extra_env or {})}
    out_path, err_path = cwd / f"{language}.stdout", cwd / f"{language}.stderr"
    rss_path = cwd / f"{language}.maxrss"
    start = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        # -I -S: the shim starts without site-packages, a few MiB, far below any loader
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", _RSS_SHIM, os.fspath(rss_path),
                               *argv], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                              env=env, timeout=600)
    seconds = time.perf_counter() - start
    peak_kib = int(rss_path.read_text()) if rss_path.exists() else 0
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    timing = {}
    for line in stderr.splitlines():
        if line.startswith("timing "):
            timing = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    run = LoaderRun(language, argv, proc.returncode, stdout, stderr, seconds, peak_kib / 1024,
                    timing=timing)
    if run.ok:
        run.outputs = parse_outputs(stdout)
    return run


def _names(export_dir: Path, input_name: str | None, output_names: list[str] | None,
           signature: str, tag: str) -> tuple[str, list[str]]:
    if input_name is None or output_names is None:
        sig = signature_tensors(export_dir, signature, tag)
        input_name = input_name or sig.input_name
        output_names = output_names or sig.output_names
    return input_name, list(output_names)


def _check(run: LoaderRun, export_dir: Path) -> LoaderRun:
    if run.ok:
        return run
    from forgekit import detect_format

    try:
        found = detect_format(export_dir).kind
    except ForgekitError as exc:
        found = exc.found or "nothing readable"
    raise LoaderError(
        f"the {LANGUAGE[run.language]} loader exited with status {run.returncode}:\n{run.error}",
        path=export_dir, found=found, expected="savedmodel",
        fix="pass a SavedModel folder (model.export(path)) and the tensor names from "
            "forgekit.crosslang.signature_tensors(path)")


def run_c(build: Build, export_dir: str | os.PathLike[str], x: np.ndarray, *,
          input_name: str | None = None, output_names: list[str] | None = None,
          signature: str = "serving_default", tag: str = "serve", repeat: int = 0,
          workdir: str | os.PathLike[str] | None = None, check: bool = True,
          unchecked: bool = False) -> LoaderRun:
    """Run the C loader on ``export_dir`` with batch ``x``; outputs keyed by tensor name.

    Tensor names default to those of ``signature``. ``repeat`` > 0 makes the program time that
    many more runs of the same batch (``timing["median_run_ms"]``). With ``check`` a failing
    program raises :class:`LoaderError`; without, the failed run is returned as it is.
    ``unchecked`` makes the program look names up as a plain caller does (no NULL check), to
    show what a wrong name does then.
    """
    return _launch("c", build, export_dir, x, input_name, output_names, signature, tag,
                   [str(repeat)] if repeat else [], workdir, check,
                   {"FORGEKIT_UNCHECKED": "1"} if unchecked else None)


def run_java(build: Build, export_dir: str | os.PathLike[str], x: np.ndarray, *,
             input_name: str | None = None, output_names: list[str] | None = None,
             signature: str = "serving_default", tag: str = "serve",
             workdir: str | os.PathLike[str] | None = None, check: bool = True) -> LoaderRun:
    """Run the Java loader (``java TfLoader`` over JNI) like :func:`run_c`."""
    return _launch("java", build, export_dir, x, input_name, output_names, signature, tag, [],
                   workdir, check)


def _launch(language: str, build: Build, export_dir: str | os.PathLike[str], x: np.ndarray,
            input_name: str | None, output_names: list[str] | None, signature: str, tag: str,
            extra: list[str], workdir: str | os.PathLike[str] | None, check: bool,
            extra_env: dict[str, str] | None = None) -> LoaderRun:
    if build.language != language:
        raise ValueError(f"run_{language} needs a {language} build, got a {build.language} one")
    export = Path(export_dir)
    input_name, output_names = _names(export, input_name, output_names, signature, tag)
    if export.name == "saved_model.pb" and export.is_file():  # the C API wants the folder
        export = export.parent
    with tempfile.TemporaryDirectory(prefix=f"forgekit-{language}-", dir=workdir) as tmp:
        batch = write_batch(x, Path(tmp) / "batch.txt")
        args = [os.fspath(export.resolve()), tag, input_name, ",".join(output_names),
                os.fspath(batch), *extra]
        if language == "c":
            argv = [os.fspath(build.program), *args]
        else:
            from forgekit.crosslang.toolchain import find_toolchain

            java = find_toolchain().java or "java"
            # a small heap and the serial GC: the tensors live in native memory, not the heap
            argv = [java, "-Xmx256m", "-XX:+UseSerialGC",
                    f"-Djava.library.path={build.folder}", "-cp", os.fspath(build.folder),
                    "TfLoader", *args]
        run = _run(language, argv, Path(tmp), extra_env)
    return _check(run, export) if check else run
