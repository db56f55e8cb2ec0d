"""What building the C and Java loaders needs, and whether this machine has it.

The TensorFlow C API comes from the installed tensorflow wheel itself: its headers under
``tensorflow/include`` and the two shared libraries next to the package. The compilers come
from the system (``gcc``; ``javac``/``java`` with the JNI headers of a JDK); ``binder/apt.txt``
lists them for Binder. Nothing here imports TensorFlow: the paths are found on disk.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from forgekit.errors import ForgekitError

TF_LIBS = ("libtensorflow_cc.so.2", "libtensorflow_framework.so.2")
C_API_HEADER = Path("tensorflow") / "c" / "c_api.h"


class ToolchainMissingError(ForgekitError, RuntimeError):
    """A compiler, JDK or the TensorFlow C API files needed for a build are not on this machine."""


@dataclass(frozen=True)
class Toolchain:
    """Paths to everything a build uses; ``missing_c``/``missing_java`` say what is absent."""

    gcc: str | None
    javac: str | None
    java: str | None
    java_home: Path | None
    tf_dir: Path | None  # the tensorflow package folder: headers under include/, libs inside
    gold: bool = False  # ld.gold links against the 1 GB libtensorflow_cc ~4x faster than ld.bfd
    missing_c: list[str] = field(default_factory=list)
    missing_java: list[str] = field(default_factory=list)

    @property
    def c_ok(self) -> bool:
        """Can the C loader be built here?"""
        return not self.missing_c

    @property
    def java_ok(self) -> bool:
        """Can the Java loader (and its JNI shim) be built here?"""
        return not self.missing_c and not self.missing_java

    @property
    def tf_include(self) -> Path:
        return (self.tf_dir or Path()) / "include"

    def require(self, language: str) -> None:
        """Raise :class:`ToolchainMissingError` naming what ``language`` ("c"/"java") lacks."""
        missing = self.missing_c + (self.missing_java if language == "java" else [])
        if missing:
            raise ToolchainMissingError(
                f"cannot build the {language.upper()} loader: missing " + "; ".join(missing),
                found="no toolchain", expected=f"{language.upper()} toolchain",
                fix="install them (Debian/Ubuntu: apt-get install gcc libc6-dev binutils "
                    "openjdk-17-jdk-headless; binder/apt.txt lists the same packages)")

    def why_not(self, language: str) -> str:
        """Empty when ``language`` can be built; otherwise what is missing and how to get it."""
        missing = self.missing_c + (self.missing_java if language == "java" else [])
        if not missing:
            return ""
        name = {"c": "C", "java": "Java"}[language]
        return (f"The {name} loader cannot be built on this machine (missing: {'; '.join(missing)}), "
                f"so this cell skips it. Install gcc, libc6-dev, binutils and "
                f"openjdk-17-jdk-headless (binder/apt.txt does this on Binder) and run it again.")

    def describe(self) -> str:
        """One line per tool: where it is, or what is missing."""
        lines = [f"gcc        {self.gcc or 'missing'}" + ("  (linker: gold)" if self.gold else ""),
                 f"javac      {self.javac or 'missing'}",
                 f"JAVA_HOME  {self.java_home or 'missing'}",
                 f"TF C API   {self.tf_include / C_API_HEADER if self.tf_dir else 'missing'}"]
        return "\n".join(lines + [f"missing: {m}" for m in self.missing_c + self.missing_java])


def _tf_dir() -> Path | None:
    spec = importlib.util.find_spec("tensorflow")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _java_home(javac: str | None) -> Path | None:
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    if javac:  # /usr/bin/javac -> /usr/lib/jvm/<jdk>/bin/javac
        return Path(javac).resolve().parent.parent
    return None


def _has_gold(gcc: str) -> bool:
    try:
        probe = subprocess.run([gcc, "-fuse-ld=gold", "-Wl,--version"], capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and "gold" in probe.stdout.lower()


def find_toolchain() -> Toolchain:
    """Look for gcc, a JDK with JNI headers, and the C API inside the installed tensorflow."""
    gcc = shutil.which(os.environ.get("CC", "gcc"))
    javac = shutil.which("javac")
    java_home = _java_home(javac)
    java = str(java_home / "bin" / "java") if java_home and (java_home / "bin" / "java").exists() \
        else shutil.which("java")
    tf_dir = _tf_dir()
    missing_c, missing_java = [], []
    if gcc is None:
        missing_c.append("a C compiler (gcc not on PATH)")
    if tf_dir is None:
        missing_c.append("the tensorflow package")
    else:
        if not (tf_dir / "include" / C_API_HEADER).exists():
            missing_c.append(f"the C API header {C_API_HEADER} under {tf_dir / 'include'}")
        missing_c += [f"{lib} in {tf_dir}" for lib in TF_LIBS if not (tf_dir / lib).exists()]
    if javac is None:
        missing_java.append("a JDK (javac not on PATH)")
    elif java_home is None or not (java_home / "include" / "jni.h").exists():
        missing_java.append(f"the JNI header jni.h under {java_home}/include (set JAVA_HOME to a JDK)")
    if java is None:
        missing_java.append("a java launcher")
    return Toolchain(gcc, javac, java, java_home, tf_dir, bool(gcc) and _has_gold(gcc),
                     missing_c, missing_java)
