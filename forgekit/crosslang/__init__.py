"""Load a SavedModel outside Python: a C program and a Java program over the TensorFlow C API.

The sources ship with the package (``native/``): ``forgekit_tf.h`` holds the C API calls,
``tf_loader.c`` is the command-line program, ``TfLoader.java`` + ``tf_loader_jni.c`` the Java
one (JNI: JDK 17 has no final Foreign Function & Memory API). :func:`build` compiles either on
demand with the headers and libraries inside the installed tensorflow wheel and caches it by
content; :func:`run_c` / :func:`run_java` feed them a batch with the tensor names read from the
SavedModel's signature (:func:`signature_tensors`) and parse their answers.

Nothing here imports TensorFlow at import time.
"""

from __future__ import annotations

from forgekit.crosslang.builder import Build, BuildError, build, default_cache, native_dir
from forgekit.crosslang.run import (
    LoaderError,
    LoaderRun,
    SignatureTensors,
    TensorInfo,
    parse_outputs,
    run_c,
    run_java,
    signature_call,
    signature_tensors,
    write_batch,
)
from forgekit.crosslang.toolchain import Toolchain, ToolchainMissingError, find_toolchain


def excerpt(source: str, part: str) -> str:
    """The ``/* --- lesson: PART --- */`` region of a shipped source file, for display."""
    text = (native_dir() / source).read_text()
    start = text.index(f"/* --- lesson: {part} ")
    start = text.index("\n", start) + 1
    return text[start:text.index("/* --- end", start)].rstrip()


__all__ = [
    "Build", "BuildError", "LoaderError", "LoaderRun", "SignatureTensors", "TensorInfo",
    "Toolchain", "ToolchainMissingError", "build", "default_cache", "excerpt", "find_toolchain",
    "native_dir", "parse_outputs", "run_c", "run_java", "signature_call", "signature_tensors",
    "write_batch",
]
