"""Kill a deployment part-way, for real: a child process that ``SIGKILL``s itself mid-export.

``killed_deploy(model_file, base_path, how="export")`` starts a Python process that loads the
model and runs the plain ``model.export(<base>/<next version>)``; ``how="publish"`` runs
:func:`forgekit.serving.publish` instead. The child sends itself ``SIGKILL`` at a chosen point:

* ``"saved_model.pb"``: the moment TensorFlow is about to write ``saved_model.pb`` (variables
  are already on disk, the graph is not): a version folder that cannot load;
* ``"commit"``: for ``publish``, just before the rename that makes the version visible.

No exception, no ``finally``: what is left on disk is what a power cut would leave.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from forgekit.quiet import child_env

KILL_POINTS = ("saved_model.pb", "commit")


@dataclass
class KilledDeploy:
    """What a killed deployment left: exit status, and the base path's entries afterwards."""

    how: str
    kill_at: str
    returncode: int
    seconds: float
    entries: list[str]
    stderr: str = ""

    @property
    def killed(self) -> bool:
        """True when the child died of SIGKILL (the kill point was reached)."""
        return self.returncode == -signal.SIGKILL

    def __str__(self) -> str:
        status = "killed by SIGKILL" if self.killed else f"exit {self.returncode}"
        return (f"{self.how} killed at {self.kill_at!r}: {status} after {self.seconds:.1f}s; "
                f"base path now holds {self.entries}")


def killed_deploy(model_file: str | os.PathLike[str], base_path: str | os.PathLike[str], *,
                  how: str = "export", kill_at: str = "saved_model.pb",
                  timeout: float = 180.0) -> KilledDeploy:
    """Deploy ``model_file`` (a ``.keras`` file) into ``base_path`` in a child killed part-way."""
    if how not in ("export", "publish"):
        raise ValueError("how must be 'export' (plain model.export) or 'publish'")
    if kill_at not in KILL_POINTS or (how == "export" and kill_at == "commit"):
        raise ValueError(f"kill_at must be one of {KILL_POINTS} ('commit' only for publish)")
    base = Path(base_path).absolute()
    job = {"model": str(Path(model_file).absolute()), "base": str(base), "how": how,
           "kill_at": kill_at}
    env = child_env()
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "forgekit.serving.crash", json.dumps(job)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    entries = sorted(p.name for p in base.iterdir()) if base.is_dir() else []
    return KilledDeploy(how, kill_at, proc.returncode, time.perf_counter() - started, entries,
                        proc.stderr[-2000:])


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _child(job: dict) -> None:
    import keras
    from tensorflow.python.lib.io import file_io

    from forgekit.serving import deploy

    write = file_io.atomic_write_string_to_file

    def killing_write(filename, contents, overwrite=True):
        if str(filename).endswith(job["kill_at"]):
            _die()
        return write(filename, contents, overwrite)

    file_io.atomic_write_string_to_file = killing_write
    if job["kill_at"] == "commit":
        def killing_rename(src, dst, *a, **k):
            _die()
        deploy.os.rename = killing_rename  # publish's one rename is its commit point
    model = keras.models.load_model(job["model"])
    base = Path(job["base"])
    if job["how"] == "export":
        model.export(str(base / str(deploy.next_version(base))), verbose=False)
    else:
        deploy.publish(model, base)


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
