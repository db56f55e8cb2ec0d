"""Build the C loader and the Java loader (with its JNI shim) on demand, cached by content.

A build's key hashes everything that decides its result: the shipped sources, the exact
command lines, the compiler and JDK versions, and the TensorFlow libraries linked against.
The outputs go to ``<cache>/<language>-<key>/``; an identical request later reuses them,
and any change (an edited source, another TensorFlow) builds anew next to the old one.
A build is written to a temporary folder and renamed into place, so an interrupted or failed
build never leaves a half-built entry that a later call would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from forgekit.crosslang.toolchain import TF_LIBS, Toolchain, find_toolchain
from forgekit.errors import ForgekitError

SOURCES = {"c": ("forgekit_tf.h", "tf_loader.c"),
           "java": ("forgekit_tf.h", "tf_loader_jni.c", "TfLoader.java")}
PROGRAM = {"c": "tf_loader", "java": "TfLoader.class"}
MANIFEST = "build.json"


class BuildError(ForgekitError, RuntimeError):
    """A compiler refused the shipped sources; the message carries its output whole."""


@dataclass(frozen=True)
class Build:
    """A built loader: where it is, the commands that built it and how long that took."""

    language: str  # "c" or "java"
    folder: Path
    commands: list[list[str]]
    seconds: float  # wall time of the build that produced this folder
    cached: bool  # True when this call reused an earlier build
    key: str

    @property
    def program(self) -> Path:
        """The executable (C) or class file (Java)."""
        return self.folder / PROGRAM[self.language]

    def __str__(self) -> str:
        how = "reused from the cache (built earlier in" if self.cached else "built in"
        name = {"c": "C", "java": "Java"}[self.language]
        return (f"{name} loader {how} {self.seconds:.1f} s"
                f"{')' if self.cached else ''}: {self.program}")


def native_dir() -> Path:
    """The folder of the shipped C/Java sources (package data of forgekit.crosslang)."""
    return Path(str(resources.files("forgekit.crosslang") / "native"))


def default_cache() -> Path:
    """``artifacts/_build`` in the project (next to the lessons' output folders)."""
    from forgekit.paths import project_path

    try:
        return project_path("artifacts", "_build")
    except FileNotFoundError:  # installed outside a checkout
        return Path.cwd() / "artifacts" / "_build"


def _tool_version(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return (done.stdout + done.stderr).strip().splitlines()[0] if done.returncode == 0 else ""


def _link_flags(tc: Toolchain) -> list[str]:
    tf = os.fspath(tc.tf_dir)
    gold = ["-fuse-ld=gold"] if tc.gold else []
    # -l:NAME links the exact file name (there is no libtensorflow_cc.so symlink in the wheel);
    # the rpath lets the program find the wheel's libraries at run time without LD_LIBRARY_PATH.
    return gold + [f"-L{tf}", *[f"-l:{lib}" for lib in TF_LIBS], f"-Wl,-rpath,{tf}"]


def _commands(language: str, tc: Toolchain, src: Path, out: Path) -> list[list[str]]:
    cflags = ["-O2", "-std=c11", "-D_POSIX_C_SOURCE=199309L", "-Wall", "-Wextra",
              f"-I{tc.tf_include}", f"-I{src}"]
    if language == "c":
        return [[tc.gcc, *cflags, os.fspath(src / "tf_loader.c"), "-o",
                 os.fspath(out / "tf_loader"), *_link_flags(tc)]]
    jni = [f"-I{tc.java_home / 'include'}", f"-I{tc.java_home / 'include' / 'linux'}"]
    return [[tc.gcc, *cflags, *jni, "-fPIC", "-shared", os.fspath(src / "tf_loader_jni.c"),
             "-o", os.fspath(out / "libforgekit_tf_jni.so"), *_link_flags(tc)],
            [tc.javac, "-d", os.fspath(out), os.fspath(src / "TfLoader.java")]]


def _key(language: str, tc: Toolchain, src: Path) -> str:
    h = hashlib.sha256()
    for name in SOURCES[language]:
        h.update(name.encode() + b"\0" + (src / name).read_bytes())
    h.update(json.dumps(_commands(language, tc, Path("SRC"), Path("OUT"))).encode())
    h.update(_tool_version([tc.gcc, "--version"]).encode())
    if language == "java":
        h.update(_tool_version([tc.javac, "-version"]).encode())
    with contextlib.suppress(PackageNotFoundError):
        h.update(version("tensorflow").encode())
    for lib in TF_LIBS:  # another wheel in the same place has another size or mtime
        st = (tc.tf_dir / lib).stat()
        h.update(f"{lib}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def build(language: str, cache: str | os.PathLike[str] | None = None, *,
          force: bool = False, toolchain: Toolchain | None = None) -> Build:
    """Build the ``"c"`` or ``"java"`` loader into ``cache`` (default :func:`default_cache`).

    Reuses an earlier build with the same content key unless ``force``. Raises
    :class:`~forgekit.crosslang.toolchain.ToolchainMissingError` when gcc/the JDK/the C API
    files are absent, and :class:`BuildError` with the compiler's output when a step fails.
    """
    if language not in SOURCES:
        raise ValueError(f"language must be 'c' or 'java', not {language!r}")
    tc = toolchain or find_toolchain()
    tc.require(language)
    src = native_dir()
    root = Path(cache) if cache is not None else default_cache()
    key = _key(language, tc, src)
    folder = root / f"{language}-{key}"
    if folder.is_dir() and not force:
        manifest = json.loads((folder / MANIFEST).read_text())
        return Build(language, folder, manifest["commands"], manifest["seconds"], True, key)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{language}-{key}-", dir=root))
    try:
        commands = _commands(language, tc, src, tmp)
        start = time.perf_counter()
        for argv in commands:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise BuildError(
                    f"{Path(argv[0]).name} exited with status {done.returncode}:\n"
                    f"{done.stderr.strip() or done.stdout.strip()}\ncommand: {' '.join(argv)}",
                    path=src, found="a failed build", expected=f"a built {language} loader",
                    fix="check the toolchain with forgekit.crosslang.find_toolchain().describe()")
        seconds = time.perf_counter() - start
        final = [[a.replace(os.fspath(tmp), os.fspath(folder)) for a in argv] for argv in commands]
        (tmp / MANIFEST).write_text(json.dumps({"commands": final, "seconds": seconds}, indent=1))
        if folder.exists():  # force=True over an existing entry
            shutil.rmtree(folder)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same build first: its result is as good
            if not (folder / MANIFEST).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Build(language, folder, final, seconds, False, key)
